//===- Config.cpp - Jamba config.json -------------------------------------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//

#include "jamba/Checkpoint/Config.h"
#include "jamba/Checkpoint/Json.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>

#include <sys/stat.h>

using namespace jamba;
using namespace jamba::ckpt;

bool JambaConfig::operator==(const JambaConfig &o) const {
  return architectures == o.architectures && modelType == o.modelType &&
         vocabSize == o.vocabSize && tieWordEmbeddings == o.tieWordEmbeddings &&
         hiddenSize == o.hiddenSize && intermediateSize == o.intermediateSize &&
         numHiddenLayers == o.numHiddenLayers &&
         numAttentionHeads == o.numAttentionHeads &&
         numKeyValueHeads == o.numKeyValueHeads && hiddenAct == o.hiddenAct &&
         initializerRange == o.initializerRange && rmsNormEps == o.rmsNormEps &&
         useCache == o.useCache && numLogitsToKeep == o.numLogitsToKeep &&
         outputRouterLogits == o.outputRouterLogits &&
         routerAuxLossCoef == o.routerAuxLossCoef &&
         padTokenId == o.padTokenId && bosTokenId == o.bosTokenId &&
         eosTokenIds == o.eosTokenIds && slidingWindow == o.slidingWindow &&
         maxPositionEmbeddings == o.maxPositionEmbeddings &&
         attentionDropout == o.attentionDropout &&
         numExpertsPerTok == o.numExpertsPerTok && numExperts == o.numExperts &&
         expertLayerPeriod == o.expertLayerPeriod &&
         expertLayerOffset == o.expertLayerOffset &&
         attnLayerPeriod == o.attnLayerPeriod &&
         attnLayerOffset == o.attnLayerOffset &&
         useMambaKernels == o.useMambaKernels && mambaDState == o.mambaDState &&
         mambaDConv == o.mambaDConv && mambaExpand == o.mambaExpand &&
         mambaDtRank == o.mambaDtRank && mambaConvBias == o.mambaConvBias &&
         mambaProjBias == o.mambaProjBias && torchDtype == o.torchDtype &&
         quantMethod == o.quantMethod && quantDenseMlp == o.quantDenseMlp;
}

Status jamba::ckpt::readFileToString(const std::string &path, std::string &out,
                                     size_t maxBytes) {
  out.clear();
  // Only a regular file: opening a FIFO would wait for a writer forever, and
  // a device may never end.
  struct stat info;
  if (::stat(path.c_str(), &info) == 0 && !S_ISREG(info.st_mode))
    return makeError(path, ": not a regular file");
  FILE *f = std::fopen(path.c_str(), "rb");
  if (!f)
    return makeError(path, ": cannot open: ", std::strerror(errno));
  char buf[1 << 16];
  while (true) {
    size_t n = std::fread(buf, 1, sizeof(buf), f);
    if (n > 0) {
      if (out.size() + n > maxBytes) {
        std::fclose(f);
        return makeError(path, ": file is larger than the limit of ", maxBytes,
                         " bytes");
      }
      out.append(buf, n);
    }
    if (n < sizeof(buf)) {
      bool bad = std::ferror(f);
      std::fclose(f);
      if (bad)
        return makeError(path, ": read error");
      return Status::success();
    }
  }
}

//===----------------------------------------------------------------------===//
// Parsing
//===----------------------------------------------------------------------===//

namespace {

/// Describes what was found for a type error, e.g. "string", "-3",
/// "non-integer number 1.5".
std::string describe(const JsonValue &v) {
  if (v.isInteger())
    return concat(v.getInt());
  if (v.isNumber()) {
    // 64.0 prints as "64" by default, which looks like an integer.
    double d = v.getDouble();
    if (std::isfinite(d) && std::floor(d) == d && std::abs(d) < 1e15)
      return concat("non-integer number ", static_cast<int64_t>(d), ".0");
    return concat("non-integer number ", d);
  }
  return v.kindName();
}

/// Reads typed keys out of the top-level object, remembering the first error.
class ConfigReader {
public:
  ConfigReader(const JsonValue &root, const std::string &path)
      : root(root), path(path) {}

  Status status() const { return st; }

  /// A value present and not null, or nullptr.
  const JsonValue *present(const char *key) const {
    const JsonValue *v = root.get(key);
    return v && !v->isNull() ? v : nullptr;
  }

  void typeError(const char *key, const char *expected, const JsonValue &v) {
    if (st.ok())
      st = makeError(path, ": key '", key, "': expected ", expected, ", got ",
                     describe(v));
  }

  /// A positive integer, bounded by kMaxConfigDim. Null is a type error.
  void positiveInt(const char *key, int64_t &out) {
    const JsonValue *v = root.get(key);
    if (!v)
      return;
    readPositive(key, *v, out);
  }

  void readPositive(const char *key, const JsonValue &v, int64_t &out) {
    if (!v.isInteger() || v.getInt() <= 0)
      return typeError(key, "a positive integer", v);
    if (v.getInt() > kMaxConfigDim) {
      if (st.ok())
        st = makeError(path, ": key '", key, "': value ", v.getInt(),
                       " exceeds the limit of ", kMaxConfigDim);
      return;
    }
    out = v.getInt();
  }

  /// A non-negative integer (period offsets, num_logits_to_keep).
  void nonNegativeInt(const char *key, int64_t &out) {
    const JsonValue *v = root.get(key);
    if (!v)
      return;
    if (!v->isInteger() || v->getInt() < 0)
      return typeError(key, "a non-negative integer", *v);
    out = v->getInt();
  }

  /// An integer or null (token ids).
  void optionalInt(const char *key, std::optional<int64_t> &out) {
    const JsonValue *v = root.get(key);
    if (!v)
      return;
    if (v->isNull()) {
      out.reset();
      return;
    }
    if (!v->isInteger())
      return typeError(key, "an integer or null", *v);
    out = v->getInt();
  }

  void boolean(const char *key, bool &out) {
    const JsonValue *v = root.get(key);
    if (!v)
      return;
    if (!v->isBool())
      return typeError(key, "a boolean", *v);
    out = v->getBool();
  }

  /// A finite number (integers accepted).
  void number(const char *key, double &out) {
    const JsonValue *v = root.get(key);
    if (!v)
      return;
    if (!v->isNumber())
      return typeError(key, "a number", *v);
    out = v->getDouble();
  }

  void string(const char *key, std::string &out) {
    const JsonValue *v = root.get(key);
    if (!v)
      return;
    if (!v->isString())
      return typeError(key, "a string", *v);
    out = v->getString();
  }

  /// A string or null.
  void optionalString(const char *key, std::optional<std::string> &out) {
    const JsonValue *v = root.get(key);
    if (!v)
      return;
    if (v->isNull()) {
      out.reset();
      return;
    }
    if (!v->isString())
      return typeError(key, "a string or null", *v);
    out = v->getString();
  }

  Status st;

private:
  const JsonValue &root;
  const std::string &path;
};

} // namespace

StatusOr<JambaConfig> jamba::ckpt::parseConfig(std::string_view jsonText,
                                               const std::string &path) {
  StatusOr<JsonValue> parsed = parseJson(jsonText, path);
  if (!parsed.ok())
    return parsed.status();
  const JsonValue &root = *parsed;
  if (!root.isObject())
    return makeError(path, ": expected a JSON object at the top level, got ",
                     root.kindName());

  JambaConfig c;
  ConfigReader r(root, path);

  if (const JsonValue *v = r.present("architectures")) {
    if (!v->isArray()) {
      r.typeError("architectures", "a list of strings", *v);
    } else {
      for (const JsonValue &e : v->getArray()) {
        if (!e.isString()) {
          r.typeError("architectures", "a list of strings", e);
          break;
        }
        c.architectures.push_back(e.getString());
      }
    }
  }
  r.optionalString("model_type", c.modelType);

  r.positiveInt("vocab_size", c.vocabSize);
  r.boolean("tie_word_embeddings", c.tieWordEmbeddings);
  r.positiveInt("hidden_size", c.hiddenSize);
  r.positiveInt("intermediate_size", c.intermediateSize);
  r.positiveInt("num_hidden_layers", c.numHiddenLayers);
  r.positiveInt("num_attention_heads", c.numAttentionHeads);
  // num_key_value_heads: null -> num_attention_heads (HF backward compat).
  if (const JsonValue *v = root.get("num_key_value_heads")) {
    if (v->isNull())
      c.numKeyValueHeads = c.numAttentionHeads;
    else
      r.readPositive("num_key_value_heads", *v, c.numKeyValueHeads);
  }
  r.string("hidden_act", c.hiddenAct);
  r.number("initializer_range", c.initializerRange);
  r.number("rms_norm_eps", c.rmsNormEps);
  r.boolean("use_cache", c.useCache);
  r.nonNegativeInt("num_logits_to_keep", c.numLogitsToKeep);
  r.boolean("output_router_logits", c.outputRouterLogits);
  r.number("router_aux_loss_coef", c.routerAuxLossCoef);

  r.optionalInt("pad_token_id", c.padTokenId);
  r.optionalInt("bos_token_id", c.bosTokenId);
  if (const JsonValue *v = root.get("eos_token_id")) {
    c.eosTokenIds.clear();
    if (v->isInteger()) {
      c.eosTokenIds.push_back(v->getInt());
    } else if (v->isArray()) {
      for (const JsonValue &e : v->getArray()) {
        if (!e.isInteger()) {
          r.typeError("eos_token_id", "an integer or a list of integers", e);
          break;
        }
        c.eosTokenIds.push_back(e.getInt());
      }
    } else if (!v->isNull()) {
      r.typeError("eos_token_id", "an integer or a list of integers", *v);
    }
  }

  if (const JsonValue *v = r.present("sliding_window")) {
    int64_t w = 0;
    r.readPositive("sliding_window", *v, w);
    if (w > 0)
      c.slidingWindow = w;
  }
  r.positiveInt("max_position_embeddings", c.maxPositionEmbeddings);
  r.number("attention_dropout", c.attentionDropout);

  r.positiveInt("num_experts_per_tok", c.numExpertsPerTok);
  r.positiveInt("num_experts", c.numExperts);
  r.positiveInt("expert_layer_period", c.expertLayerPeriod);
  r.nonNegativeInt("expert_layer_offset", c.expertLayerOffset);
  r.positiveInt("attn_layer_period", c.attnLayerPeriod);
  r.nonNegativeInt("attn_layer_offset", c.attnLayerOffset);

  r.boolean("use_mamba_kernels", c.useMambaKernels);
  r.positiveInt("mamba_d_state", c.mambaDState);
  r.positiveInt("mamba_d_conv", c.mambaDConv);
  r.positiveInt("mamba_expand", c.mambaExpand);
  // mamba_dt_rank: a positive integer or "auto" (the default) -> ceil(H/16).
  c.mambaDtRank = (c.hiddenSize + 15) / 16;
  if (const JsonValue *v = root.get("mamba_dt_rank")) {
    if (v->isString()) {
      if (v->getString() != "auto")
        r.typeError("mamba_dt_rank", "a positive integer or \"auto\"", *v);
    } else if (v->isInteger()) {
      r.readPositive("mamba_dt_rank", *v, c.mambaDtRank);
    } else {
      r.typeError("mamba_dt_rank", "a positive integer or \"auto\"", *v);
    }
  }
  r.boolean("mamba_conv_bias", c.mambaConvBias);
  r.boolean("mamba_proj_bias", c.mambaProjBias);
  r.optionalString("torch_dtype", c.torchDtype);

  // quantization_config: {"quant_method": "experts_int8", "dense_mlp": bool}.
  // Unknown members are ignored like unknown top-level keys.
  if (const JsonValue *q = r.present("quantization_config")) {
    if (!q->isObject()) {
      r.typeError("quantization_config", "an object", *q);
    } else {
      const JsonValue *method = q->get("quant_method");
      const JsonValue *dense = q->get("dense_mlp");
      if (!method) {
        if (r.st.ok())
          r.st = makeError(path, ": key 'quantization_config': missing "
                                 "'quant_method'");
      } else if (!method->isString()) {
        r.typeError("quantization_config.quant_method", "a string", *method);
      } else {
        c.quantMethod = method->getString();
      }
      if (dense && !dense->isBool())
        r.typeError("quantization_config.dense_mlp", "a boolean", *dense);
      else if (dense)
        c.quantDenseMlp = dense->getBool();
    }
  }

  if (!r.st.ok())
    return r.st;
  Status valid = validateConfig(c, path);
  if (!valid.ok())
    return valid;
  return c;
}

StatusOr<JambaConfig> jamba::ckpt::loadConfig(const std::string &path) {
  std::string text;
  Status st = readFileToString(path, text, size_t(16) << 20);
  if (!st.ok())
    return st;
  return parseConfig(text, path);
}

//===----------------------------------------------------------------------===//
// Validation
//===----------------------------------------------------------------------===//

namespace {

/// Multiplies `factors`, returning false on int64 overflow. Also reserves a
/// factor of 8 so that byte sizes in the widest dtype (F64) stay in range.
bool checkedProduct(const std::vector<int64_t> &factors, int64_t &result) {
  int64_t p = 8;
  for (int64_t f : factors)
    if (__builtin_mul_overflow(p, f, &p))
      return false;
  result = p / 8;
  return true;
}

} // namespace

Status jamba::ckpt::validateConfig(const JambaConfig &c,
                                   const std::string &path) {
  if (c.modelType && *c.modelType != "jamba")
    return makeError(path, ": key 'model_type': expected \"jamba\", got \"",
                     *c.modelType, "\"");

  // Every size positive and bounded (parseConfig checks this per key; repeat
  // it here for configs built or edited in code).
  struct Dim {
    const char *key;
    int64_t value;
  };
  const Dim dims[] = {
      {"vocab_size", c.vocabSize},
      {"hidden_size", c.hiddenSize},
      {"intermediate_size", c.intermediateSize},
      {"num_hidden_layers", c.numHiddenLayers},
      {"num_attention_heads", c.numAttentionHeads},
      {"num_key_value_heads", c.numKeyValueHeads},
      {"max_position_embeddings", c.maxPositionEmbeddings},
      {"num_experts_per_tok", c.numExpertsPerTok},
      {"num_experts", c.numExperts},
      {"expert_layer_period", c.expertLayerPeriod},
      {"attn_layer_period", c.attnLayerPeriod},
      {"mamba_d_state", c.mambaDState},
      {"mamba_d_conv", c.mambaDConv},
      {"mamba_expand", c.mambaExpand},
      {"mamba_dt_rank", c.mambaDtRank},
  };
  for (const Dim &d : dims) {
    if (d.value <= 0)
      return makeError(path, ": key '", d.key,
                       "': expected a positive integer, got ", d.value);
    if (d.value > kMaxConfigDim)
      return makeError(path, ": key '", d.key, "': value ", d.value,
                       " exceeds the limit of ", kMaxConfigDim);
  }
  if (c.slidingWindow && *c.slidingWindow <= 0)
    return makeError(path,
                     ": key 'sliding_window': expected a positive "
                     "integer or null, got ",
                     *c.slidingWindow);
  // Sliding-window attention is not implemented (SPEC: null; no released
  // Jamba uses it). A window that covers every position masks nothing.
  if (c.slidingWindow && *c.slidingWindow < c.maxPositionEmbeddings)
    return makeError(path, ": key 'sliding_window': a window of ",
                     *c.slidingWindow,
                     " tokens is not supported (only null, or a window of at "
                     "least max_position_embeddings ",
                     c.maxPositionEmbeddings, ", which masks nothing)");
  if (c.numLogitsToKeep < 0)
    return makeError(path,
                     ": key 'num_logits_to_keep': expected a "
                     "non-negative integer, got ",
                     c.numLogitsToKeep);

  if (c.quantMethod && *c.quantMethod != kQuantMethodExpertsInt8)
    return makeError(path, ": key 'quantization_config.quant_method': only \"",
                     kQuantMethodExpertsInt8, "\" is supported, got \"",
                     *c.quantMethod, "\"");
  if (c.quantDenseMlp && !c.quantMethod)
    return makeError(path, ": key 'quantization_config.dense_mlp' is set "
                           "without a quant_method");

  // Layer schedules (HF raises ValueError for offset >= period).
  if (c.attnLayerOffset < 0 || c.attnLayerOffset >= c.attnLayerPeriod)
    return makeError(path, ": key 'attn_layer_offset' (", c.attnLayerOffset,
                     ") must be in [0, attn_layer_period) = [0, ",
                     c.attnLayerPeriod, ")");
  if (c.expertLayerOffset < 0 || c.expertLayerOffset >= c.expertLayerPeriod)
    return makeError(path, ": key 'expert_layer_offset' (", c.expertLayerOffset,
                     ") must be in [0, expert_layer_period) = [0, ",
                     c.expertLayerPeriod, ")");

  // Attention geometry.
  if (c.hiddenSize % c.numAttentionHeads != 0)
    return makeError(path, ": key 'hidden_size' (", c.hiddenSize,
                     ") must be divisible by 'num_attention_heads' (",
                     c.numAttentionHeads, ")");
  if (c.numAttentionHeads % c.numKeyValueHeads != 0)
    return makeError(path, ": key 'num_attention_heads' (", c.numAttentionHeads,
                     ") must be divisible by 'num_key_value_heads' (",
                     c.numKeyValueHeads, ")");

  // Routing.
  if (c.numExpertsPerTok > c.numExperts)
    return makeError(path, ": key 'num_experts_per_tok' (", c.numExpertsPerTok,
                     ") must not exceed 'num_experts' (", c.numExperts, ")");

  if (c.hiddenAct != "silu")
    return makeError(path,
                     ": key 'hidden_act': only \"silu\" is supported, "
                     "got \"",
                     c.hiddenAct, "\"");
  if (!(c.rmsNormEps > 0.0) || !std::isfinite(c.rmsNormEps))
    return makeError(path,
                     ": key 'rms_norm_eps': expected a positive finite "
                     "number, got ",
                     c.rmsNormEps);
  // The kernels compute in f32: an epsilon that is 0 or infinite there
  // would divide by zero or zero every norm.
  if (float eps = static_cast<float>(c.rmsNormEps);
      eps == 0.0f || !std::isfinite(eps))
    return makeError(path, ": key 'rms_norm_eps': ", c.rmsNormEps,
                     " is not a positive finite f32 (the kernels compute in "
                     "f32)");
  // The special token ids are ids of the vocabulary (generation stops at
  // an eos id; an id outside it would never match, or match nothing real).
  auto checkTokenId = [&](const char *key, int64_t id) -> Status {
    if (id < 0 || id >= c.vocabSize)
      return makeError(path, ": key '", key, "': token id ", id,
                       " is outside the vocabulary [0, ", c.vocabSize, ")");
    return Status::success();
  };
  for (int64_t id : c.eosTokenIds)
    JAMBA_CKPT_RETURN_IF_ERROR(checkTokenId("eos_token_id", id));
  if (c.bosTokenId)
    JAMBA_CKPT_RETURN_IF_ERROR(checkTokenId("bos_token_id", *c.bosTokenId));
  if (c.padTokenId)
    JAMBA_CKPT_RETURN_IF_ERROR(checkTokenId("pad_token_id", *c.padTokenId));

  // Products that size tensors must not overflow int64 bytes.
  int64_t dInner = 0, p = 0;
  if (!checkedProduct({c.mambaExpand, c.hiddenSize}, dInner) ||
      dInner > kMaxConfigDim)
    return makeError(path,
                     ": 'mamba_expand' * 'hidden_size' (d_inner) is "
                     "larger than ",
                     kMaxConfigDim);
  struct Product {
    const char *what;
    std::vector<int64_t> factors;
  };
  const Product products[] = {
      {"vocab_size * hidden_size", {c.vocabSize, c.hiddenSize}},
      {"num_experts * 2 * intermediate_size * hidden_size",
       {c.numExperts, 2, c.intermediateSize, c.hiddenSize}},
      {"2 * d_inner * hidden_size", {2, dInner, c.hiddenSize}},
      {"d_inner * (mamba_dt_rank + 2 * mamba_d_state)",
       {dInner, c.mambaDtRank + 2 * c.mambaDState}},
      {"d_inner * mamba_d_conv", {dInner, c.mambaDConv}},
      {"d_inner * mamba_d_state", {dInner, c.mambaDState}},
      {"num_hidden_layers * hidden_size", {c.numHiddenLayers, c.hiddenSize}},
  };
  for (const Product &prod : products)
    if (!checkedProduct(prod.factors, p))
      return makeError(path, ": sizes too large: ", prod.what,
                       " overflows 64-bit byte counts");
  return Status::success();
}

//===----------------------------------------------------------------------===//
// Serialization
//===----------------------------------------------------------------------===//

std::string jamba::ckpt::configToJson(const JambaConfig &c) {
  JsonValue o = JsonValue::makeObject();
  auto optInt = [](const std::optional<int64_t> &v) {
    return v ? JsonValue::makeInt(*v) : JsonValue::makeNull();
  };
  if (!c.architectures.empty()) {
    JsonValue a = JsonValue::makeArray();
    for (const std::string &s : c.architectures)
      a.push(JsonValue::makeString(s));
    o.set("architectures", std::move(a));
  }
  o.set("attention_dropout", JsonValue::makeDouble(c.attentionDropout));
  o.set("attn_layer_offset", JsonValue::makeInt(c.attnLayerOffset));
  o.set("attn_layer_period", JsonValue::makeInt(c.attnLayerPeriod));
  o.set("bos_token_id", optInt(c.bosTokenId));
  if (c.eosTokenIds.size() == 1) {
    o.set("eos_token_id", JsonValue::makeInt(c.eosTokenIds[0]));
  } else if (c.eosTokenIds.empty()) {
    o.set("eos_token_id", JsonValue::makeNull());
  } else {
    JsonValue a = JsonValue::makeArray();
    for (int64_t id : c.eosTokenIds)
      a.push(JsonValue::makeInt(id));
    o.set("eos_token_id", std::move(a));
  }
  o.set("expert_layer_offset", JsonValue::makeInt(c.expertLayerOffset));
  o.set("expert_layer_period", JsonValue::makeInt(c.expertLayerPeriod));
  o.set("hidden_act", JsonValue::makeString(c.hiddenAct));
  o.set("hidden_size", JsonValue::makeInt(c.hiddenSize));
  o.set("initializer_range", JsonValue::makeDouble(c.initializerRange));
  o.set("intermediate_size", JsonValue::makeInt(c.intermediateSize));
  o.set("mamba_conv_bias", JsonValue::makeBool(c.mambaConvBias));
  o.set("mamba_d_conv", JsonValue::makeInt(c.mambaDConv));
  o.set("mamba_d_state", JsonValue::makeInt(c.mambaDState));
  o.set("mamba_dt_rank", JsonValue::makeInt(c.mambaDtRank));
  o.set("mamba_expand", JsonValue::makeInt(c.mambaExpand));
  o.set("mamba_proj_bias", JsonValue::makeBool(c.mambaProjBias));
  o.set("max_position_embeddings", JsonValue::makeInt(c.maxPositionEmbeddings));
  if (c.modelType)
    o.set("model_type", JsonValue::makeString(*c.modelType));
  o.set("num_attention_heads", JsonValue::makeInt(c.numAttentionHeads));
  o.set("num_experts", JsonValue::makeInt(c.numExperts));
  o.set("num_experts_per_tok", JsonValue::makeInt(c.numExpertsPerTok));
  o.set("num_hidden_layers", JsonValue::makeInt(c.numHiddenLayers));
  o.set("num_key_value_heads", JsonValue::makeInt(c.numKeyValueHeads));
  o.set("num_logits_to_keep", JsonValue::makeInt(c.numLogitsToKeep));
  o.set("output_router_logits", JsonValue::makeBool(c.outputRouterLogits));
  o.set("pad_token_id", optInt(c.padTokenId));
  if (c.quantMethod) {
    JsonValue q = JsonValue::makeObject();
    q.set("dense_mlp", JsonValue::makeBool(c.quantDenseMlp));
    q.set("quant_method", JsonValue::makeString(*c.quantMethod));
    o.set("quantization_config", std::move(q));
  }
  o.set("rms_norm_eps", JsonValue::makeDouble(c.rmsNormEps));
  o.set("router_aux_loss_coef", JsonValue::makeDouble(c.routerAuxLossCoef));
  o.set("sliding_window", optInt(c.slidingWindow));
  o.set("tie_word_embeddings", JsonValue::makeBool(c.tieWordEmbeddings));
  if (c.torchDtype)
    o.set("torch_dtype", JsonValue::makeString(*c.torchDtype));
  o.set("use_cache", JsonValue::makeBool(c.useCache));
  o.set("use_mamba_kernels", JsonValue::makeBool(c.useMambaKernels));
  o.set("vocab_size", JsonValue::makeInt(c.vocabSize));
  return writeJson(o, 2) + "\n";
}

//===- MemoryPlan.cpp - Per-device memory plan of a Jamba model -----------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// The byte counts of MemoryPlan.h. Every count is a product of config sizes,
// computed in saturating uint64 arithmetic: a product that overflows sticks
// at UINT64_MAX, so a plan whose total saturated is reported as an overflow
// and, while searching for the largest context, simply does not fit.
//
//===----------------------------------------------------------------------===//

#include "jamba/Checkpoint/MemoryPlan.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <initializer_list>
#include <limits>

using namespace jamba;
using namespace jamba::ckpt;

namespace {

//===----------------------------------------------------------------------===//
// Saturating arithmetic
//===----------------------------------------------------------------------===//

constexpr uint64_t kSaturated = std::numeric_limits<uint64_t>::max();

/// The product of `factors` (integers >= 0), or kSaturated on overflow. A
/// saturated factor stays saturated unless another factor is 0.
template <class... Factors> uint64_t mul(Factors... factors) {
  uint64_t p = 1;
  bool overflow = false, zero = false;
  for (uint64_t f : {static_cast<uint64_t>(factors)...}) {
    zero |= f == 0;
    overflow |= __builtin_mul_overflow(p, f, &p);
  }
  if (zero)
    return 0;
  return overflow ? kSaturated : p;
}

/// The sum of `terms`, or kSaturated on overflow.
uint64_t add(std::initializer_list<uint64_t> terms) {
  uint64_t s = 0;
  for (uint64_t t : terms)
    if (__builtin_add_overflow(s, t, &s))
      return kSaturated;
  return s;
}

int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

//===----------------------------------------------------------------------===//
// The plan for one context
//===----------------------------------------------------------------------===//

/// Bytes of one expert-shaped FFN slice (gate, up: [I_r, H]; down: [H, I_r])
/// in `elementBytes`, or in int8 with one f32 scale per output row.
uint64_t ffnBytes(int64_t hidden, int64_t widthPerRank, bool int8,
                  int64_t elementBytes) {
  if (!int8)
    return mul(3, widthPerRank, hidden, elementBytes);
  return add({mul(3, widthPerRank, hidden), mul(4, 2 * widthPerRank + hidden)});
}

/// The plan for `context` tokens per sequence. The request must be valid.
DeviceMemoryPlan computePlan(const JambaConfig &c, const PlanRequest &r,
                             int64_t context) {
  DeviceMemoryPlan p;
  p.request = r;
  p.request.context = context;
  const int64_t tp = r.tensorParallel, ep = r.expertParallel;
  p.devices = tp * ep;

  for (int64_t i = 0; i < c.numHiddenLayers; ++i) {
    (c.isAttentionLayer(i) ? p.attentionLayers : p.mambaLayers) += 1;
    (c.isMoELayer(i) ? p.moeLayers : p.denseMlpLayers) += 1;
  }

  const int64_t h = c.hiddenSize, hd = c.headDim(), di = c.dInner();
  const int64_t rank = c.mambaDtRank, n = c.mambaDState, k = c.mambaDConv;
  p.headsPerRank = c.numAttentionHeads / tp;
  p.kvHeadsPerRank =
      c.numKeyValueHeads >= tp ? c.numKeyValueHeads / tp : int64_t(1);
  p.dInnerPerRank = di / tp;
  p.intermediatePerRank = c.intermediateSize / tp;
  p.expertsPerRank = p.moeLayers > 0 ? c.numExperts / ep : 0;
  p.vocabPerRank = ceilDiv(c.vocabSize, tp);
  p.numKeyValueHeads = c.numKeyValueHeads;
  p.vocabSize = c.vocabSize;
  p.maxPositionEmbeddings = c.maxPositionEmbeddings;
  p.chunk = std::min(r.prefillChunk, context);

  const bool f32 = r.weights == WeightFormat::F32;
  const bool int8Experts = r.weights == WeightFormat::ExpertsInt8;
  const bool int8Dense = int8Experts && r.int8DenseMlp;
  // Non-int8 parameters and activations share one element type.
  const int64_t w = f32 ? 4 : 2, a = w;
  p.activationElementBytes = a;

  // Weights, per layer kind (SPEC.md 1.4 shapes, split per SPEC.md 1.9).
  const int64_t dr = p.dInnerPerRank, ir = p.intermediatePerRank;
  const uint64_t attentionLayer =
      mul((2 * p.headsPerRank + 2 * p.kvHeadsPerRank) * hd, h, w);
  const uint64_t mambaLayer =
      mul(add({mul(2, dr, h),                     // in_proj
               mul(c.mambaProjBias ? 2 * dr : 0), // in_proj.bias
               mul(dr, k),                        // conv1d.weight
               mul(c.mambaConvBias ? dr : 0),     // conv1d.bias
               mul(rank + 2 * n, dr),             // x_proj (row-parallel)
               mul(rank + 2 * n),                 // dt/B/C norms (replicated)
               mul(dr, rank), mul(dr),            // dt_proj weight, bias
               mul(dr, n), mul(dr),               // A_log, D
               mul(h, dr),                        // out_proj (row-parallel)
               mul(c.mambaProjBias ? h : 0)}),    // out_proj.bias
          static_cast<uint64_t>(w));
  const uint64_t expert = ffnBytes(h, ir, int8Experts, w);
  const uint64_t denseMlp = ffnBytes(h, ir, int8Dense, w);

  WeightBytes &wb = p.weights;
  wb.attention = mul(attentionLayer, p.attentionLayers);
  wb.mamba = mul(mambaLayer, p.mambaLayers);
  wb.denseMlp = mul(denseMlp, p.denseMlpLayers);
  wb.experts = mul(mul(expert, p.expertsPerRank), p.moeLayers);
  wb.router = mul(p.moeLayers, c.numExperts, h, w);
  wb.norms = mul(2 * c.numHiddenLayers + 1, h, w);
  wb.embedding = mul(p.vocabPerRank, h, w);
  wb.lmHead = c.tieWordEmbeddings ? 0 : mul(p.vocabPerRank, h, w);
  p.weightBytes = wb.total();

  // State: KV cache per attention layer, conv + SSM state per Mamba layer.
  p.kvBytesPerToken = mul(p.attentionLayers, 2, p.kvHeadsPerRank, hd, a);
  p.kvCacheBytes = mul(p.kvBytesPerToken, mul(r.batch, context));
  p.convStateBytes = mul(r.batch, p.mambaLayers, dr, k - 1, a);
  p.ssmStateBytes = mul(r.batch, p.mambaLayers, dr, n, 4);
  p.mambaStateBytes = add({p.convStateBytes, p.ssmStateBytes});

  // Activations of one prefill step of T tokens.
  const uint64_t t = mul(r.batch, p.chunk);
  ActivationBytes &act = p.activations;
  act.hidden = mul(3, t, h, a);
  if (p.attentionLayers > 0)
    act.attention =
        add({mul(t, (2 * p.headsPerRank + 2 * p.kvHeadsPerRank) * hd, a),
             mul(t, p.headsPerRank, 2, 4)});
  if (p.mambaLayers > 0)
    act.mamba =
        add({mul(t, 4 * dr, a), mul(t, rank + 2 * n, 4), mul(t, dr, 4)});
  if (p.denseMlpLayers > 0)
    act.denseMlp = mul(t, 3 * ir, a);
  if (p.moeLayers > 0) {
    uint64_t rows = mul(t, std::min(c.numExpertsPerTok, p.expertsPerRank));
    act.moe = add({mul(t, c.numExperts, 4), mul(t, c.numExpertsPerTok, 8),
                   mul(rows, 2 * h + 3 * ir, a)});
  }
  uint64_t logitRows = mul(r.batch, c.numLogitsToKeep == 0
                                        ? p.chunk
                                        : std::min(c.numLogitsToKeep, p.chunk));
  act.logits =
      add({mul(logitRows, p.vocabPerRank, a), mul(logitRows, c.vocabSize, 4)});
  p.activationBytes = act.peak();

  p.collectiveBytes = p.devices > 1 ? mul(t, h, a) : 0;
  p.reserveBytes = r.reserveBytes;
  p.workspaceBytes = add({p.collectiveBytes, p.reserveBytes});

  p.totalBytes = add({p.weightBytes, p.kvCacheBytes, p.mambaStateBytes,
                      p.activationBytes, p.workspaceBytes});
  p.fits = r.deviceBytes == 0 || p.totalBytes <= r.deviceBytes;
  return p;
}

/// The largest context in [1, kMaxPlanContext] whose plan fits the device,
/// or 0. The total never decreases with the context (the KV cache grows
/// linearly, the chunk is min(prefill_chunk, context)), so bisect.
int64_t largestContext(const JambaConfig &c, const PlanRequest &r) {
  auto fitsAt = [&](int64_t context) {
    return computePlan(c, r, context).fits;
  };
  if (!fitsAt(1))
    return 0;
  if (fitsAt(kMaxPlanContext))
    return kMaxPlanContext;
  int64_t lo = 1, hi = kMaxPlanContext; // fitsAt(lo) && !fitsAt(hi)
  while (hi - lo > 1) {
    int64_t mid = lo + (hi - lo) / 2;
    (fitsAt(mid) ? lo : hi) = mid;
  }
  return lo;
}

//===----------------------------------------------------------------------===//
// Formatting
//===----------------------------------------------------------------------===//

std::string gib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f", double(bytes) / double(1ull << 30));
  return buf;
}

/// One table row: label, GiB, bytes, optional note.
void row(std::string &out, const char *label, uint64_t bytes,
         const std::string &note = "") {
  char buf[160];
  std::snprintf(buf, sizeof(buf), "  %-22s %10s %16" PRIu64, label,
                gib(bytes).c_str(), bytes);
  out += buf;
  if (!note.empty())
    out += "  " + note;
  out += '\n';
}

} // namespace

//===----------------------------------------------------------------------===//
// Public API
//===----------------------------------------------------------------------===//

const char *jamba::ckpt::weightFormatName(WeightFormat format) {
  switch (format) {
  case WeightFormat::F32:
    return "f32";
  case WeightFormat::BF16:
    return "bf16";
  case WeightFormat::ExpertsInt8:
    return "int8-experts";
  }
  return "?";
}

std::optional<WeightFormat> jamba::ckpt::parseWeightFormat(std::string_view s) {
  if (s == "f32" || s == "float32")
    return WeightFormat::F32;
  if (s == "bf16" || s == "bfloat16")
    return WeightFormat::BF16;
  if (s == "int8-experts" || s == kQuantMethodExpertsInt8)
    return WeightFormat::ExpertsInt8;
  return std::nullopt;
}

WeightFormat jamba::ckpt::defaultWeightFormat(const JambaConfig &config) {
  if (config.quantMethod)
    return WeightFormat::ExpertsInt8;
  if (config.torchDtype && *config.torchDtype == "float32")
    return WeightFormat::F32;
  return WeightFormat::BF16;
}

uint64_t WeightBytes::total() const {
  return add(
      {attention, mamba, denseMlp, experts, router, norms, embedding, lmHead});
}

uint64_t ActivationBytes::peak() const {
  return add({hidden, std::max({attention, mamba, denseMlp, moe, logits})});
}

const char *ActivationBytes::largest() const {
  const char *name = "attention";
  uint64_t best = attention;
  auto consider = [&](uint64_t v, const char *n) {
    if (v > best) {
      best = v;
      name = n;
    }
  };
  consider(mamba, "Mamba");
  consider(denseMlp, "dense MLP");
  consider(moe, "MoE");
  consider(logits, "logits");
  return name;
}

Status jamba::ckpt::validatePlanRequest(const JambaConfig &c,
                                        const PlanRequest &r) {
  struct Range {
    const char *field;
    int64_t value, max;
  };
  const Range ranges[] = {
      {"tp", r.tensorParallel, kMaxPlanDevices},
      {"ep", r.expertParallel, kMaxPlanDevices},
      {"batch", r.batch, kMaxPlanBatch},
      {"context", r.maximizeContext ? 1 : r.context, kMaxPlanContext},
      {"prefill_chunk", r.prefillChunk, kMaxPlanContext},
  };
  for (const Range &range : ranges)
    if (range.value < 1 || range.value > range.max)
      return makeError(range.field, ": expected an integer in [1, ", range.max,
                       "], got ", range.value);
  const int64_t tp = r.tensorParallel, ep = r.expertParallel;
  if (tp * ep > kMaxPlanDevices)
    return makeError("tp x ep (", tp, " x ", ep, " = ", tp * ep,
                     " devices) exceeds the limit of ", kMaxPlanDevices);

  bool anyAttention = false, anyMamba = false, anyMoE = false;
  for (int64_t i = 0; i < c.numHiddenLayers; ++i) {
    (c.isAttentionLayer(i) ? anyAttention : anyMamba) = true;
    anyMoE |= c.isMoELayer(i);
  }
  if (anyAttention) {
    if (c.numAttentionHeads % tp != 0)
      return makeError("tp (", tp, ") must divide num_attention_heads (",
                       c.numAttentionHeads,
                       "): query heads are split over the tp ranks");
    if (c.numKeyValueHeads % tp != 0 && tp % c.numKeyValueHeads != 0)
      return makeError("tp (", tp, ") and num_key_value_heads (",
                       c.numKeyValueHeads,
                       "): one must divide the other (kv heads are split "
                       "over the ranks, or replicated when fewer than tp)");
  }
  if (anyMamba && c.dInner() % tp != 0)
    return makeError("tp (", tp,
                     ") must divide d_inner = mamba_expand x hidden_size (",
                     c.dInner(), "): Mamba channels are split over the ranks");
  if (c.intermediateSize % tp != 0)
    return makeError("tp (", tp, ") must divide intermediate_size (",
                     c.intermediateSize,
                     "): dense MLPs and experts are split over the ranks");
  if (!anyMoE && ep != 1)
    return makeError("ep (", ep,
                     ") must be 1: the model has no MoE layers to split");
  if (anyMoE && c.numExperts % ep != 0)
    return makeError("ep (", ep, ") must divide num_experts (", c.numExperts,
                     "): each expert-parallel group holds num_experts / ep "
                     "experts");

  if (r.int8DenseMlp && r.weights != WeightFormat::ExpertsInt8)
    return makeError("int8_dense_mlp: needs weights int8-experts, got ",
                     weightFormatName(r.weights));
  if (r.maximizeContext && r.deviceBytes == 0)
    return makeError("device_bytes: the largest context that fits needs a "
                     "device size");
  return Status::success();
}

StatusOr<DeviceMemoryPlan>
jamba::ckpt::planDeviceMemory(const JambaConfig &config,
                              const PlanRequest &request) {
  JAMBA_CKPT_RETURN_IF_ERROR(validateConfig(config, "config"));
  JAMBA_CKPT_RETURN_IF_ERROR(validatePlanRequest(config, request));

  std::optional<int64_t> maxContext;
  if (request.deviceBytes != 0)
    maxContext = largestContext(config, request);
  int64_t context = request.context;
  if (request.maximizeContext)
    context = std::max<int64_t>(*maxContext, 1);

  DeviceMemoryPlan plan = computePlan(config, request, context);
  plan.maxContext = maxContext;
  if (plan.totalBytes == kSaturated)
    return makeError("batch (", request.batch, ") x context (", context,
                     "): the per-device byte counts overflow 64 bits");
  return plan;
}

std::string jamba::ckpt::formatDeviceMemoryPlan(const DeviceMemoryPlan &p,
                                                const std::string &modelName) {
  const PlanRequest &r = p.request;
  const char *actType = p.activationElementBytes == 4 ? "f32" : "bf16";
  std::string out = "memory plan: " + modelName + "\n";
  auto line = [&](const char *label, const std::string &text) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "  %-14s", label);
    out += buf + text + "\n";
  };

  line("layers",
       concat(p.attentionLayers + p.mambaLayers, ": ", p.attentionLayers,
              " attention + ", p.mambaLayers, " Mamba; ", p.moeLayers,
              " MoE + ", p.denseMlpLayers, " dense MLP"));
  line("devices", concat(p.devices, " = tp ", r.tensorParallel, " x ep ",
                         r.expertParallel));
  std::string format = weightFormatName(r.weights);
  if (r.weights == WeightFormat::ExpertsInt8)
    format += r.int8DenseMlp ? " (experts and dense MLPs int8 + f32 row "
                               "scales, other weights bf16)"
                             : " (experts int8 + f32 row scales, other "
                               "weights bf16)";
  line("weights", format);
  line("activations",
       concat(actType, " (KV cache and conv state too; SSM state f32)"));
  line("batch", concat(r.batch, r.batch == 1 ? " sequence" : " sequences"));
  line("context", concat(r.context, " tokens per sequence",
                         r.maximizeContext ? " (the largest that fits)" : ""));
  line("prefill chunk", concat(p.chunk, " tokens per sequence (",
                               mul(r.batch, p.chunk), " tokens per step)"));
  std::string split;
  auto part = [&](int64_t mine, int64_t all, const char *what) {
    split += concat(split.empty() ? "" : ", ", mine, "/", all, " ", what);
  };
  if (p.attentionLayers > 0) {
    part(p.headsPerRank, r.tensorParallel * p.headsPerRank, "query heads");
    part(p.kvHeadsPerRank, p.numKeyValueHeads,
         p.numKeyValueHeads < r.tensorParallel ? "kv heads (replicated)"
                                               : "kv heads");
  }
  if (p.mambaLayers > 0)
    part(p.dInnerPerRank, p.dInnerPerRank * r.tensorParallel, "d_inner");
  part(p.intermediatePerRank, p.intermediatePerRank * r.tensorParallel,
       "intermediate");
  if (p.moeLayers > 0)
    part(p.expertsPerRank, p.expertsPerRank * r.expertParallel, "experts");
  part(p.vocabPerRank, p.vocabSize, "vocab rows");
  line("each device", split);

  out += "\n";
  char header[128];
  std::snprintf(header, sizeof(header), "  %-22s %10s %16s\n", "per device",
                "GiB", "bytes");
  out += header;
  const WeightBytes &w = p.weights;
  row(out, "weights", p.weightBytes);
  row(out, "  attention", w.attention);
  row(out, "  Mamba", w.mamba);
  row(out, "  dense MLP", w.denseMlp);
  row(out, "  experts", w.experts);
  row(out, "  router", w.router);
  row(out, "  norms", w.norms);
  row(out, "  embedding", w.embedding);
  row(out, "  lm_head", w.lmHead);
  row(out, "KV cache", p.kvCacheBytes,
      concat(p.kvBytesPerToken, " bytes per token"));
  row(out, "Mamba state", p.mambaStateBytes);
  row(out, "  conv", p.convStateBytes);
  row(out, "  SSM", p.ssmStateBytes);
  row(out, "activations", p.activationBytes,
      concat("peak: ", p.activations.largest()));
  row(out, "workspace", p.workspaceBytes);
  row(out, "  all-reduce staging", p.collectiveBytes);
  row(out, "  reserve", p.reserveBytes);
  row(out, "total", p.totalBytes);
  out += "\n";

  if (r.deviceBytes == 0) {
    line("device", "no capacity given");
    return out;
  }
  if (p.fits)
    line("device", concat(gib(r.deviceBytes), " GiB: fits, ",
                          gib(r.deviceBytes - p.totalBytes), " GiB free"));
  else
    line("device", concat(gib(r.deviceBytes), " GiB: does not fit, ",
                          gib(p.totalBytes - r.deviceBytes), " GiB over"));
  int64_t maxContext = p.maxContext.value_or(0);
  std::string text;
  if (maxContext == 0)
    text = "none: even a context of 1 token does not fit";
  else if (maxContext == kMaxPlanContext)
    text = concat(maxContext, " tokens or more (the planner's limit)");
  else
    text = concat(maxContext, " tokens");
  if (maxContext > p.maxPositionEmbeddings)
    text += concat(" (more than max_position_embeddings, ",
                   p.maxPositionEmbeddings, ")");
  line("max context", text);
  return out;
}

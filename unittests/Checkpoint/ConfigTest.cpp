//===- ConfigTest.cpp - Tests for config.json parsing and validation ------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//

#include "jamba/Checkpoint/Config.h"

#include "TestUtil.h"

#include "gtest/gtest.h"

#include <string>
#include <sys/stat.h>
#include <vector>

using namespace jamba::ckpt;

namespace {

JambaConfig parseOk(const std::string &text) {
  StatusOr<JambaConfig> c = parseConfig(text, "config.json");
  EXPECT_TRUE(c.ok()) << c.status().message();
  return c.ok() ? *c : JambaConfig();
}

std::string parseError(const std::string &text) {
  StatusOr<JambaConfig> c = parseConfig(text, "config.json");
  EXPECT_FALSE(c.ok()) << "unexpectedly valid: " << text;
  return c.ok() ? std::string() : c.status().message();
}

/// The directory of the shared model configs, or "" if it is not there.
std::string sharedModelsDir() {
#ifdef JAMBA_SHARED_MODELS_DIR
  struct stat st;
  if (::stat(JAMBA_SHARED_MODELS_DIR, &st) == 0 && S_ISDIR(st.st_mode))
    return JAMBA_SHARED_MODELS_DIR;
#endif
  return "";
}

#define REQUIRE_SHARED_MODELS(dirVar)                                          \
  std::string dirVar = sharedModelsDir();                                      \
  if (dirVar.empty())                                                          \
  GTEST_SKIP() << "shared model configs not found (JAMBA_SHARED_MODELS_DIR)"

TEST(ConfigTest, DefaultsWhenKeysAreMissing) {
  JambaConfig c = parseOk("{}");
  EXPECT_EQ(c.vocabSize, 65536);
  EXPECT_FALSE(c.tieWordEmbeddings);
  EXPECT_EQ(c.hiddenSize, 4096);
  EXPECT_EQ(c.intermediateSize, 14336);
  EXPECT_EQ(c.numHiddenLayers, 32);
  EXPECT_EQ(c.numAttentionHeads, 32);
  EXPECT_EQ(c.numKeyValueHeads, 8);
  EXPECT_EQ(c.hiddenAct, "silu");
  EXPECT_DOUBLE_EQ(c.rmsNormEps, 1e-6);
  EXPECT_EQ(c.numLogitsToKeep, 1);
  EXPECT_EQ(c.padTokenId, std::optional<int64_t>(0));
  EXPECT_EQ(c.bosTokenId, std::optional<int64_t>(1));
  EXPECT_EQ(c.eosTokenIds, std::vector<int64_t>{2});
  EXPECT_FALSE(c.slidingWindow.has_value());
  EXPECT_EQ(c.maxPositionEmbeddings, 262144);
  EXPECT_EQ(c.numExpertsPerTok, 2);
  EXPECT_EQ(c.numExperts, 16);
  EXPECT_EQ(c.expertLayerPeriod, 2);
  EXPECT_EQ(c.expertLayerOffset, 1);
  EXPECT_EQ(c.attnLayerPeriod, 8);
  EXPECT_EQ(c.attnLayerOffset, 4);
  EXPECT_EQ(c.mambaDState, 16);
  EXPECT_EQ(c.mambaDConv, 4);
  EXPECT_EQ(c.mambaExpand, 2);
  EXPECT_EQ(c.mambaDtRank, 256); // "auto" -> ceil(4096 / 16)
  EXPECT_TRUE(c.mambaConvBias);
  EXPECT_FALSE(c.mambaProjBias);
  EXPECT_FALSE(c.torchDtype.has_value());
  EXPECT_FALSE(c.modelType.has_value());
  EXPECT_EQ(c.headDim(), 128);
  EXPECT_EQ(c.dInner(), 8192);
  EXPECT_EQ(c, JambaConfig());
}

TEST(ConfigTest, AutoDtRankRoundsUp) {
  EXPECT_EQ(parseOk(R"({"hidden_size": 1000, "num_attention_heads": 8,
                        "num_key_value_heads": 8, "mamba_dt_rank": "auto"})")
                .mambaDtRank,
            63);
  EXPECT_EQ(parseOk(R"({"hidden_size": 64, "num_attention_heads": 4,
                        "num_key_value_heads": 2})")
                .mambaDtRank,
            4);
  EXPECT_EQ(parseOk(R"({"mamba_dt_rank": 7})").mambaDtRank, 7);
  EXPECT_EQ(parseError(R"({"mamba_dt_rank": "big"})"),
            "config.json: key 'mamba_dt_rank': expected a positive integer or "
            "\"auto\", got string");
}

TEST(ConfigTest, NullKeyValueHeadsMeansAttentionHeads) {
  JambaConfig c = parseOk(R"({"num_attention_heads": 16, "hidden_size": 256,
                              "num_key_value_heads": null})");
  EXPECT_EQ(c.numKeyValueHeads, 16);
}

TEST(ConfigTest, TokenIds) {
  JambaConfig c = parseOk(R"({"eos_token_id": [2, 518], "pad_token_id": null,
                              "bos_token_id": 5})");
  EXPECT_EQ(c.eosTokenIds, (std::vector<int64_t>{2, 518}));
  EXPECT_FALSE(c.padTokenId.has_value());
  EXPECT_EQ(c.bosTokenId, std::optional<int64_t>(5));
  EXPECT_EQ(parseOk(R"({"eos_token_id": 519})").eosTokenIds,
            std::vector<int64_t>{519});
  EXPECT_TRUE(parseOk(R"({"eos_token_id": null})").eosTokenIds.empty());
  EXPECT_EQ(parseError(R"({"eos_token_id": "2"})"),
            "config.json: key 'eos_token_id': expected an integer or a list of "
            "integers, got string");
  EXPECT_EQ(parseError(R"({"eos_token_id": [2, 1.5]})"),
            "config.json: key 'eos_token_id': expected an integer or a list of "
            "integers, got non-integer number 1.5");
}

TEST(ConfigTest, UnknownKeysAreIgnored) {
  JambaConfig c = parseOk(R"({"mamba_inner_layernorms": true, "n_ctx": 262144,
                              "calc_logits_for_entire_prompt": false,
                              "transformers_version": "4.40.0",
                              "whatever": {"nested": [1, 2]}})");
  EXPECT_EQ(c, JambaConfig());
}

TEST(ConfigTest, WrongTypesNameTheKey) {
  EXPECT_EQ(parseError(R"({"hidden_size": "4096"})"),
            "config.json: key 'hidden_size': expected a positive integer, got "
            "string");
  EXPECT_EQ(parseError(R"({"hidden_size": 4096.0})"),
            "config.json: key 'hidden_size': expected a positive integer, got "
            "non-integer number 4096.0");
  EXPECT_EQ(parseError(R"({"num_experts": null})"),
            "config.json: key 'num_experts': expected a positive integer, got "
            "null");
  EXPECT_EQ(
      parseError(R"({"tie_word_embeddings": 1})"),
      "config.json: key 'tie_word_embeddings': expected a boolean, got 1");
  EXPECT_EQ(parseError(R"({"rms_norm_eps": "1e-6"})"),
            "config.json: key 'rms_norm_eps': expected a number, got string");
  EXPECT_EQ(parseError(R"({"hidden_act": 3})"),
            "config.json: key 'hidden_act': expected a string, got 3");
  EXPECT_EQ(parseError(R"({"torch_dtype": ["bfloat16"]})"),
            "config.json: key 'torch_dtype': expected a string or null, got "
            "array");
  EXPECT_EQ(parseError(R"({"architectures": "JambaForCausalLM"})"),
            "config.json: key 'architectures': expected a list of strings, got "
            "string");
  EXPECT_EQ(parseError(R"({"pad_token_id": true})"),
            "config.json: key 'pad_token_id': expected an integer or null, got "
            "boolean");
  EXPECT_EQ(parseError(R"({"sliding_window": 0})"),
            "config.json: key 'sliding_window': expected a positive integer, "
            "got 0");
  // Not implemented: a window that masks something is refused, not ignored.
  EXPECT_EQ(parseError(R"({"max_position_embeddings": 8192,
      "sliding_window": 4096})"),
            "config.json: key 'sliding_window': a window of 4096 tokens is "
            "not supported (only null, or a window of at least "
            "max_position_embeddings 8192, which masks nothing)");
  EXPECT_EQ(parseOk(R"({"max_position_embeddings": 8192,
      "sliding_window": 8192})")
                .slidingWindow,
            std::optional<int64_t>(8192));
  EXPECT_EQ(parseError("[1]"),
            "config.json: expected a JSON object at the top level, got array");
  EXPECT_EQ(parseError("{\"hidden_size\": }"),
            "config.json:1:17: expected a JSON value, got '}'");
}

TEST(ConfigTest, ModelTypeMustBeJamba) {
  EXPECT_EQ(parseOk(R"({"model_type": "jamba"})").modelType,
            std::optional<std::string>("jamba"));
  EXPECT_EQ(parseError(R"({"model_type": "llama"})"),
            "config.json: key 'model_type': expected \"jamba\", got \"llama\"");
}

TEST(ConfigTest, OffsetMustBeLessThanPeriod) {
  EXPECT_EQ(parseError(R"({"attn_layer_period": 8, "attn_layer_offset": 8})"),
            "config.json: key 'attn_layer_offset' (8) must be in [0, "
            "attn_layer_period) = [0, 8)");
  EXPECT_EQ(
      parseError(R"({"expert_layer_period": 2, "expert_layer_offset": 5})"),
      "config.json: key 'expert_layer_offset' (5) must be in [0, "
      "expert_layer_period) = [0, 2)");
  EXPECT_EQ(parseError(R"({"attn_layer_offset": -1})"),
            "config.json: key 'attn_layer_offset': expected a non-negative "
            "integer, got -1");
  EXPECT_EQ(parseError(R"({"attn_layer_period": 0})"),
            "config.json: key 'attn_layer_period': expected a positive "
            "integer, got 0");
  EXPECT_EQ(parseError(R"({"expert_layer_period": -2})"),
            "config.json: key 'expert_layer_period': expected a positive "
            "integer, got -2");
  // Offset 0 is allowed.
  EXPECT_TRUE(parseOk(R"({"attn_layer_offset": 0})").isAttentionLayer(8));
}

TEST(ConfigTest, SizesMustBePositive) {
  for (const char *key :
       {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
        "num_attention_heads", "num_key_value_heads", "num_experts",
        "num_experts_per_tok", "mamba_d_state", "mamba_d_conv", "mamba_expand",
        "mamba_dt_rank", "max_position_embeddings"}) {
    std::string text = std::string("{\"") + key + "\": 0}";
    EXPECT_EQ(parseError(text), std::string("config.json: key '") + key +
                                    "': expected a positive integer, got 0");
  }
}

TEST(ConfigTest, AbsurdSizesAreRejected) {
  EXPECT_EQ(parseError(R"({"vocab_size": 2147483649})"),
            "config.json: key 'vocab_size': value 2147483649 exceeds the limit "
            "of 2147483648");
  EXPECT_EQ(parseError(R"({"hidden_size": 99999999999999999999})"),
            "config.json: key 'hidden_size': expected a positive integer, got "
            "non-integer number 1e+20");
  // Each dimension is in range, but the product of the largest tensor's
  // dimensions would overflow 64-bit byte counts.
  EXPECT_EQ(parseError(R"({"num_experts": 2147483648,
                           "intermediate_size": 2147483648,
                           "hidden_size": 2048, "num_attention_heads": 2048,
                           "num_key_value_heads": 2048})"),
            "config.json: sizes too large: num_experts * 2 * intermediate_size "
            "* hidden_size overflows 64-bit byte counts");
  EXPECT_EQ(parseError(R"({"mamba_expand": 2147483648})"),
            "config.json: 'mamba_expand' * 'hidden_size' (d_inner) is larger "
            "than 2147483648");
}

TEST(ConfigTest, HeadsMustDivide) {
  EXPECT_EQ(parseError(R"({"hidden_size": 100, "num_attention_heads": 8})"),
            "config.json: key 'hidden_size' (100) must be divisible by "
            "'num_attention_heads' (8)");
  EXPECT_EQ(parseError(R"({"num_attention_heads": 32,
                           "num_key_value_heads": 5})"),
            "config.json: key 'num_attention_heads' (32) must be divisible by "
            "'num_key_value_heads' (5)");
}

TEST(ConfigTest, TopKMustNotExceedExperts) {
  EXPECT_EQ(parseError(R"({"num_experts": 4, "num_experts_per_tok": 5})"),
            "config.json: key 'num_experts_per_tok' (5) must not exceed "
            "'num_experts' (4)");
  EXPECT_EQ(
      parseOk(R"({"num_experts": 1, "num_experts_per_tok": 1})").numExperts, 1);
}

TEST(ConfigTest, OnlySiluActivation) {
  EXPECT_EQ(parseError(R"({"hidden_act": "gelu"})"),
            "config.json: key 'hidden_act': only \"silu\" is supported, got "
            "\"gelu\"");
}

TEST(ConfigTest, EpsMustBePositive) {
  EXPECT_EQ(parseError(R"({"rms_norm_eps": 0})"),
            "config.json: key 'rms_norm_eps': expected a positive finite "
            "number, got 0");
  EXPECT_DOUBLE_EQ(parseOk(R"({"rms_norm_eps": 1})").rmsNormEps, 1.0);
  // Finite as a double but not as the kernels' f32: inf there made every
  // norm 0 (and the logits with it), 0 would divide by zero.
  EXPECT_EQ(parseError(R"({"rms_norm_eps": 1e300})"),
            "config.json: key 'rms_norm_eps': 1e+300 is not a positive finite "
            "f32 (the kernels compute in f32)");
  EXPECT_EQ(parseError(R"({"rms_norm_eps": 1e-50})"),
            "config.json: key 'rms_norm_eps': 1e-50 is not a positive finite "
            "f32 (the kernels compute in f32)");
}

TEST(ConfigTest, AFloatWithoutFractionIsNamedAsAFloat) {
  EXPECT_EQ(parseError(R"({"hidden_size": 64.0})"),
            "config.json: key 'hidden_size': expected a positive integer, got "
            "non-integer number 64.0");
  EXPECT_EQ(parseError(R"({"hidden_size": 64.5})"),
            "config.json: key 'hidden_size': expected a positive integer, got "
            "non-integer number 64.5");
}

TEST(ConfigTest, SpecialTokenIdsAreInTheVocabulary) {
  EXPECT_EQ(parseError(R"({"vocab_size": 128, "eos_token_id": [2, 128]})"),
            "config.json: key 'eos_token_id': token id 128 is outside the "
            "vocabulary [0, 128)");
  EXPECT_EQ(parseError(R"({"vocab_size": 128, "eos_token_id": -5})"),
            "config.json: key 'eos_token_id': token id -5 is outside the "
            "vocabulary [0, 128)");
  EXPECT_EQ(parseError(R"({"vocab_size": 128, "bos_token_id": 1000})"),
            "config.json: key 'bos_token_id': token id 1000 is outside the "
            "vocabulary [0, 128)");
  EXPECT_EQ(parseError(R"({"vocab_size": 128, "pad_token_id": -1})"),
            "config.json: key 'pad_token_id': token id -1 is outside the "
            "vocabulary [0, 128)");
  JambaConfig c = parseOk(R"({"vocab_size": 128, "eos_token_id": 127,
      "bos_token_id": null, "pad_token_id": 0})");
  EXPECT_EQ(c.eosTokenIds, std::vector<int64_t>{127});
  EXPECT_FALSE(c.bosTokenId.has_value());
}

TEST(ConfigTest, ValidateConfigChecksEditedConfigs) {
  JambaConfig c;
  c.numAttentionHeads = 0;
  Status st = validateConfig(c, "edited");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message(), "edited: key 'num_attention_heads': expected a "
                          "positive integer, got 0");
}

TEST(ConfigTest, RoundTripsThroughJson) {
  JambaConfig c = parseOk(R"({"model_type": "jamba", "hidden_size": 256,
      "num_attention_heads": 8, "num_key_value_heads": null,
      "eos_token_id": [2, 518], "pad_token_id": null, "sliding_window": 4096,
      "max_position_embeddings": 4096,
      "tie_word_embeddings": true, "mamba_proj_bias": true,
      "torch_dtype": "bfloat16", "rms_norm_eps": 1e-05,
      "architectures": ["JambaForCausalLM"]})");
  std::string text = configToJson(c);
  JambaConfig back = parseOk(text);
  EXPECT_EQ(back, c);
  EXPECT_EQ(configToJson(back), text);
  EXPECT_EQ(back.numKeyValueHeads, 8);
  EXPECT_EQ(back.mambaDtRank, 16);
  // Defaults round-trip too.
  EXPECT_EQ(parseOk(configToJson(JambaConfig())), JambaConfig());
}

TEST(ConfigTest, QuantizationConfig) {
  JambaConfig plain = parseOk("{}");
  EXPECT_FALSE(plain.quantMethod.has_value());
  EXPECT_FALSE(plain.quantDenseMlp);
  EXPECT_EQ(configToJson(plain).find("quantization_config"), std::string::npos);
  EXPECT_EQ(parseOk(R"({"quantization_config": null})"), plain);

  JambaConfig q =
      parseOk(R"({"quantization_config": {"quant_method": "experts_int8"}})");
  EXPECT_EQ(q.quantMethod, std::optional<std::string>("experts_int8"));
  EXPECT_FALSE(q.quantDenseMlp);
  EXPECT_NE(q, plain);
  JambaConfig d = parseOk(R"({"quantization_config": {
      "quant_method": "experts_int8", "dense_mlp": true, "other": 1}})");
  EXPECT_TRUE(d.quantDenseMlp);
  EXPECT_NE(d, q);
  for (const JambaConfig &c : {q, d}) {
    std::string text = configToJson(c);
    EXPECT_NE(text.find("\"quantization_config\""), std::string::npos);
    EXPECT_EQ(parseOk(text), c);
    EXPECT_EQ(configToJson(parseOk(text)), text);
  }

  EXPECT_EQ(parseError(R"({"quantization_config": {"quant_method": "fp8"}})"),
            "config.json: key 'quantization_config.quant_method': only "
            "\"experts_int8\" is supported, got \"fp8\"");
  EXPECT_EQ(parseError(R"({"quantization_config": "experts_int8"})"),
            "config.json: key 'quantization_config': expected an object, got "
            "string");
  EXPECT_EQ(parseError(R"({"quantization_config": {"quant_method": 8}})"),
            "config.json: key 'quantization_config.quant_method': expected a "
            "string, got 8");
  EXPECT_EQ(parseError(R"({"quantization_config": {"dense_mlp": true}})"),
            "config.json: key 'quantization_config': missing 'quant_method'");
  EXPECT_EQ(parseError(R"({"quantization_config":
                {"quant_method": "experts_int8", "dense_mlp": "yes"}})"),
            "config.json: key 'quantization_config.dense_mlp': expected a "
            "boolean, got string");

  JambaConfig edited;
  edited.quantDenseMlp = true;
  Status st = validateConfig(edited, "edited");
  EXPECT_EQ(st.message(), "edited: key 'quantization_config.dense_mlp' is set "
                          "without a quant_method");
}

TEST(ConfigTest, LoadConfigNamesMissingFile) {
  StatusOr<JambaConfig> c = loadConfig("/nonexistent/dir/config.json");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(),
            "/nonexistent/dir/config.json: cannot open: No such file or "
            "directory");
}

TEST(ConfigTest, TinySchedule) {
  REQUIRE_SHARED_MODELS(dir);
  StatusOr<JambaConfig> c = loadConfig(dir + "/jamba-tiny.json");
  ASSERT_TRUE(c.ok()) << c.status().message();
  std::vector<int64_t> attention, moe;
  for (int64_t i = 0; i < c->numHiddenLayers; ++i) {
    if (c->isAttentionLayer(i))
      attention.push_back(i);
    if (c->isMoELayer(i))
      moe.push_back(i);
  }
  EXPECT_EQ(attention, (std::vector<int64_t>{1, 4}));
  EXPECT_EQ(moe, (std::vector<int64_t>{1, 3, 5}));
  EXPECT_EQ(c->headDim(), 16);
  EXPECT_EQ(c->dInner(), 128);
  EXPECT_EQ(c->torchDtype, std::optional<std::string>("float32"));
  // All four layer kinds appear.
  EXPECT_TRUE(c->isAttentionLayer(4) && !c->isMoELayer(4));
  EXPECT_TRUE(c->isAttentionLayer(1) && c->isMoELayer(1));
  EXPECT_TRUE(!c->isAttentionLayer(3) && c->isMoELayer(3));
  EXPECT_TRUE(!c->isAttentionLayer(0) && !c->isMoELayer(0));
}

TEST(ConfigTest, SingleExpertLayersAreDense) {
  // transformers builds a JambaMLP, not a sparse block, when a layer the
  // schedule makes MoE has only one expert.
  JambaConfig c;
  c.numExperts = 1;
  c.numExpertsPerTok = 1;
  EXPECT_FALSE(c.isMoELayer(1));
  c.numExperts = 2;
  EXPECT_TRUE(c.isMoELayer(1));
  EXPECT_FALSE(c.isMoELayer(0));
}

TEST(ConfigTest, Mini15Schedule) {
  REQUIRE_SHARED_MODELS(dir);
  StatusOr<JambaConfig> c = loadConfig(dir + "/jamba-1.5-mini.json");
  ASSERT_TRUE(c.ok()) << c.status().message();
  std::vector<int64_t> attention, moe, expectedMoE;
  for (int64_t i = 0; i < c->numHiddenLayers; ++i) {
    if (c->isAttentionLayer(i))
      attention.push_back(i);
    if (c->isMoELayer(i))
      moe.push_back(i);
    if (i % 2 == 1)
      expectedMoE.push_back(i);
  }
  EXPECT_EQ(attention, (std::vector<int64_t>{4, 12, 20, 28}));
  EXPECT_EQ(moe, expectedMoE);
  EXPECT_EQ(c->headDim(), 128);
  EXPECT_EQ(c->dInner(), 8192);
  EXPECT_EQ(c->mambaDtRank, 256);
  EXPECT_EQ(c->numKeyValueHeads, 8);
}

TEST(ConfigTest, SharedConfigsRoundTrip) {
  REQUIRE_SHARED_MODELS(dir);
  for (const char *name : {"jamba-tiny.json", "jamba-small.json",
                           "jamba-1.5-mini.json", "jamba-1.5-large.json"}) {
    StatusOr<JambaConfig> c = loadConfig(dir + "/" + name);
    ASSERT_TRUE(c.ok()) << c.status().message();
    StatusOr<JambaConfig> back = parseConfig(configToJson(*c), name);
    ASSERT_TRUE(back.ok()) << back.status().message();
    EXPECT_EQ(*back, *c) << name;
  }
}

} // namespace

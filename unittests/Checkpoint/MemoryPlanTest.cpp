//===- MemoryPlanTest.cpp - Tests for the per-device memory plan ----------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// The expected byte counts are worked out by hand from the config numbers
// (each term written out with the tensor it stands for), not by calling the
// code under test; the single-device weight totals are also checked against
// the bytes of real checkpoints written by writeRandomCheckpoint and
// writeQuantizedCheckpoint.
//
//===----------------------------------------------------------------------===//

#include "jamba/Checkpoint/MemoryPlan.h"
#include "jamba/Checkpoint/Checkpoint.h"
#include "jamba/Checkpoint/Quantize.h"
#include "jamba/Checkpoint/RandomCheckpoint.h"

#include "TestUtil.h"

#include "gtest/gtest.h"

#include <string>
#include <sys/stat.h>

using namespace jamba::ckpt;

namespace {

constexpr uint64_t kGiB = uint64_t(1) << 30;

/// jamba-tiny.json, built in code so the test does not need the shared
/// models: H 64, I 128, 6 layers, 4 heads / 2 kv heads (head_dim 16),
/// d_inner 128, dt_rank 8, d_state 8, d_conv 4, 4 experts top-2, vocab 128;
/// attention at layers 1 and 4 (i % 3 == 1), MoE at 1, 3, 5 (i % 2 == 1).
JambaConfig tinyConfig() {
  JambaConfig c;
  c.vocabSize = 128;
  c.hiddenSize = 64;
  c.intermediateSize = 128;
  c.numHiddenLayers = 6;
  c.numAttentionHeads = 4;
  c.numKeyValueHeads = 2;
  c.numExperts = 4;
  c.numExpertsPerTok = 2;
  c.attnLayerPeriod = 3;
  c.attnLayerOffset = 1;
  c.expertLayerPeriod = 2;
  c.expertLayerOffset = 1;
  c.mambaDState = 8;
  c.mambaDConv = 4;
  c.mambaExpand = 2;
  c.mambaDtRank = 8;
  c.torchDtype = "float32";
  c.useMambaKernels = false;
  return c;
}

DeviceMemoryPlan planOk(const JambaConfig &c, const PlanRequest &r) {
  StatusOr<DeviceMemoryPlan> p = planDeviceMemory(c, r);
  EXPECT_TRUE(p.ok()) << p.status().message();
  return p.ok() ? *p : DeviceMemoryPlan();
}

std::string planError(const JambaConfig &c, const PlanRequest &r) {
  StatusOr<DeviceMemoryPlan> p = planDeviceMemory(c, r);
  EXPECT_FALSE(p.ok()) << "unexpectedly valid";
  return p.ok() ? std::string() : p.status().message();
}

/// The sum of every tensor's bytes in the checkpoint at `dir`.
uint64_t checkpointBytes(const std::string &dir) {
  StatusOr<std::unique_ptr<Checkpoint>> ck = Checkpoint::open(dir);
  EXPECT_TRUE(ck.ok()) << ck.status().message();
  if (!ck.ok())
    return 0;
  uint64_t sum = 0;
  for (const std::string &name : (*ck)->names())
    sum += (*ck)->find(name)->nbytes;
  return sum;
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

#define LOAD_SHARED_MODEL(var, file)                                           \
  std::string var##Dir = sharedModelsDir();                                    \
  if (var##Dir.empty())                                                        \
    GTEST_SKIP()                                                               \
        << "shared model configs not found (JAMBA_SHARED_MODELS_DIR)";         \
  StatusOr<JambaConfig> var##Loaded = loadConfig(var##Dir + "/" file);         \
  ASSERT_TRUE(var##Loaded.ok()) << var##Loaded.status().message();             \
  const JambaConfig &var = *var##Loaded

//===----------------------------------------------------------------------===//
// jamba-tiny, by hand
//===----------------------------------------------------------------------===//

// Per layer, in elements (see tinyConfig):
//   attention: q 4*16*64 + k 2*16*64 + v 2*16*64 + o 64*4*16   = 12288
//   Mamba:     in_proj 2*128*64 = 16384, conv1d 128*4 + bias 128 = 640,
//              x_proj (8 + 2*8)*128 = 3072, dt/B/C norms 8+8+8 = 24,
//              dt_proj 128*8 + bias 128 = 1152, A_log 128*8 = 1024,
//              D 128, out_proj 64*128 = 8192                     = 30616
//   MLP / one expert: gate, up 128*64 each + down 64*128         = 24576
//   router 4*64 = 256; norms 2*64 per layer + final 64 = 13*64 = 832;
//   embed_tokens and lm_head 128*64 = 8192 each.
TEST(MemoryPlanTest, TinyF32OneDeviceByHand) {
  PlanRequest r;
  r.weights = WeightFormat::F32;
  r.batch = 2;
  r.context = 100;
  DeviceMemoryPlan p = planOk(tinyConfig(), r);

  EXPECT_EQ(p.devices, 1);
  EXPECT_EQ(p.attentionLayers, 2);
  EXPECT_EQ(p.mambaLayers, 4);
  EXPECT_EQ(p.moeLayers, 3);
  EXPECT_EQ(p.denseMlpLayers, 3);
  EXPECT_EQ(p.activationElementBytes, 4);

  EXPECT_EQ(p.weights.attention, 2u * 12288 * 4);
  EXPECT_EQ(p.weights.mamba, 4u * 30616 * 4);
  EXPECT_EQ(p.weights.denseMlp, 3u * 24576 * 4);
  EXPECT_EQ(p.weights.experts, 3u * 4 * 24576 * 4);
  EXPECT_EQ(p.weights.router, 3u * 256 * 4);
  EXPECT_EQ(p.weights.norms, 832u * 4);
  EXPECT_EQ(p.weights.embedding, 8192u * 4);
  EXPECT_EQ(p.weights.lmHead, 8192u * 4);
  const uint64_t weights = 98304 + 489856 + 294912 + 1179648 + 3072 + 3328 +
                           32768 + 32768; // = 2134656
  EXPECT_EQ(p.weightBytes, weights);

  // KV: 2 attention layers x (K, V) x 2 kv heads x 16 x f32 = 512 bytes per
  // token, for 2 sequences x 100 tokens.
  EXPECT_EQ(p.kvBytesPerToken, 512u);
  EXPECT_EQ(p.kvCacheBytes, 512u * 2 * 100);
  // conv: 2 sequences x 4 Mamba layers x 128 channels x (4 - 1) x f32;
  // SSM: 2 x 4 x 128 x 8 x f32.
  EXPECT_EQ(p.convStateBytes, 2u * 4 * 128 * 3 * 4);
  EXPECT_EQ(p.ssmStateBytes, 2u * 4 * 128 * 8 * 4);
  EXPECT_EQ(p.mambaStateBytes, 12288u + 32768u);

  // One prefill step: chunk = min(2048, 100) = 100, T = 2 x 100 = 200.
  EXPECT_EQ(p.chunk, 100);
  const ActivationBytes &a = p.activations;
  EXPECT_EQ(a.hidden, 3u * 200 * 64 * 4);
  // q 4*16 + k, v 2*16 each + attention output 4*16 = 192 values per token,
  // plus the softmax max and sum per head (f32).
  EXPECT_EQ(a.attention, 200u * 192 * 4 + 200u * 4 * 2 * 4);
  // x and z (2*128), conv output (128), gated output (128) in f32 = 4*128;
  // x_proj output 24 in f32; delta 128 in f32.
  EXPECT_EQ(a.mamba, 200u * 4 * 128 * 4 + 200u * 24 * 4 + 200u * 128 * 4);
  EXPECT_EQ(a.denseMlp, 200u * 3 * 128 * 4);
  // Router logits 4 (f32), top-2 ids + weights (8 bytes each), and 400
  // routed rows (200 tokens x 2, all on this device) of gathered input (64),
  // gate/up (256), SiLU * up (128) and down output (64).
  EXPECT_EQ(a.moe,
            200u * 4 * 4 + 200u * 2 * 8 + 400u * (64 + 256 + 128 + 64) * 4);
  // Last position of each sequence: f32 logits, and the f32 gathered copy.
  EXPECT_EQ(a.logits, 2u * 128 * 4 + 2u * 128 * 4);
  EXPECT_EQ(p.activationBytes, a.hidden + a.moe);
  EXPECT_STREQ(a.largest(), "MoE");

  EXPECT_EQ(p.collectiveBytes, 0u); // one device: no all-reduce
  EXPECT_EQ(p.reserveBytes, kGiB);
  EXPECT_EQ(p.workspaceBytes, kGiB);
  EXPECT_EQ(p.totalBytes, weights + 102400 + 45056 + 153600 + 825600 + kGiB);
  EXPECT_TRUE(p.fits);
  EXPECT_FALSE(p.maxContext.has_value());
}

TEST(MemoryPlanTest, TinyBf16ShardedByHand) {
  // tp 2 x ep 2: 2/4 query heads, 1/2 kv heads, d_inner 64, intermediate
  // 64, 2/4 experts, 64/128 vocab rows; bf16.
  PlanRequest r;
  r.tensorParallel = 2;
  r.expertParallel = 2;
  r.weights = WeightFormat::BF16;
  r.context = 1000;
  r.prefillChunk = 16;
  r.reserveBytes = 0;
  DeviceMemoryPlan p = planOk(tinyConfig(), r);
  EXPECT_EQ(p.devices, 4);
  EXPECT_EQ(p.headsPerRank, 2);
  EXPECT_EQ(p.kvHeadsPerRank, 1);
  EXPECT_EQ(p.dInnerPerRank, 64);
  EXPECT_EQ(p.intermediatePerRank, 64);
  EXPECT_EQ(p.expertsPerRank, 2);
  EXPECT_EQ(p.vocabPerRank, 64);

  // attention: q 2*16*64 + k, v 1*16*64 + o 64*2*16 = 6144 per layer.
  EXPECT_EQ(p.weights.attention, 2u * 6144 * 2);
  // Mamba: in_proj 2*64*64 8192, conv 64*4 + 64, x_proj 24*64 1536 (row-
  // parallel), norms 24 (replicated), dt_proj 64*8 + 64, A_log 64*8, D 64,
  // out_proj 64*64 4096 (row-parallel).
  const uint64_t mamba =
      8192 + 256 + 64 + 1536 + 24 + 512 + 64 + 512 + 64 + 4096; // 15320
  EXPECT_EQ(p.weights.mamba, 4u * mamba * 2);
  // FFN slice: gate, up 64*64 + down 64*64 = 12288.
  EXPECT_EQ(p.weights.denseMlp, 3u * 12288 * 2);
  EXPECT_EQ(p.weights.experts, 3u * 2 * 12288 * 2);
  EXPECT_EQ(p.weights.router, 3u * 4 * 64 * 2); // replicated
  EXPECT_EQ(p.weights.norms, 13u * 64 * 2);     // replicated
  EXPECT_EQ(p.weights.embedding, 64u * 64 * 2);
  EXPECT_EQ(p.weights.lmHead, 64u * 64 * 2);

  // KV: 2 layers x 2 x 1 kv head x 16 x bf16 = 128 bytes per token.
  EXPECT_EQ(p.kvBytesPerToken, 128u);
  EXPECT_EQ(p.kvCacheBytes, 128u * 1000);
  EXPECT_EQ(p.convStateBytes, 4u * 64 * 3 * 2);
  EXPECT_EQ(p.ssmStateBytes, 4u * 64 * 8 * 4); // SSM state stays f32

  // T = 16: MoE rows 16 x min(2, 2 local experts) = 32.
  EXPECT_EQ(p.activations.moe,
            16u * 4 * 4 + 16u * 2 * 8 + 32u * (64 + 128 + 64 + 64) * 2);
  // The all-reduce staging buffer [T, H] in bf16.
  EXPECT_EQ(p.collectiveBytes, 16u * 64 * 2);
  EXPECT_EQ(p.workspaceBytes, 16u * 64 * 2);
}

TEST(MemoryPlanTest, TinyExpertsInt8ByHand) {
  // ExpertsInt8 slice per expert at tp 2: int8 gate, up 64*64 + down 64*64,
  // f32 scales: one per output row = 64 (gate) + 64 (up) + 64 (down: H rows).
  PlanRequest r;
  r.tensorParallel = 2;
  r.expertParallel = 2;
  r.weights = WeightFormat::ExpertsInt8;
  DeviceMemoryPlan p = planOk(tinyConfig(), r);
  const uint64_t slice = 3 * 64 * 64 + 4 * (64 + 64 + 64); // 13056
  EXPECT_EQ(p.weights.experts, 3u * 2 * slice);
  EXPECT_EQ(p.weights.denseMlp, 3u * 12288 * 2); // bf16
  EXPECT_EQ(p.weights.attention, 2u * 6144 * 2);
  EXPECT_EQ(p.activationElementBytes, 2);

  r.int8DenseMlp = true;
  p = planOk(tinyConfig(), r);
  EXPECT_EQ(p.weights.denseMlp, 3u * slice);
}

TEST(MemoryPlanTest, KvHeadsReplicatedWhenFewerThanRanks) {
  // tp 4 > 2 kv heads: each rank keeps 1 kv head (each held by 2 ranks), 1
  // query head, d_inner 32, intermediate 32, vocab 32.
  PlanRequest r;
  r.tensorParallel = 4;
  r.weights = WeightFormat::F32;
  DeviceMemoryPlan p = planOk(tinyConfig(), r);
  EXPECT_EQ(p.headsPerRank, 1);
  EXPECT_EQ(p.kvHeadsPerRank, 1);
  EXPECT_EQ(p.dInnerPerRank, 32);
  EXPECT_EQ(p.intermediatePerRank, 32);
  EXPECT_EQ(p.vocabPerRank, 32);
  // q 1*16*64 + k, v 1*16*64 + o 64*16 = 4096 per layer.
  EXPECT_EQ(p.weights.attention, 2u * 4096 * 4);
  EXPECT_EQ(p.kvBytesPerToken, 2u * 2 * 1 * 16 * 4);
}

TEST(MemoryPlanTest, VocabIsPaddedNotDivided) {
  // vocab 130 over 4 ranks: ceil(130 / 4) = 33 rows each.
  JambaConfig c = tinyConfig();
  c.vocabSize = 130;
  PlanRequest r;
  r.tensorParallel = 4;
  r.weights = WeightFormat::F32;
  DeviceMemoryPlan p = planOk(c, r);
  EXPECT_EQ(p.vocabPerRank, 33);
  EXPECT_EQ(p.weights.embedding, 33u * 64 * 4);
  c.tieWordEmbeddings = true;
  p = planOk(c, r);
  EXPECT_EQ(p.weights.lmHead, 0u);
}

TEST(MemoryPlanTest, WeightsMatchRealCheckpoints) {
  // One device, no split: the plan's weights are every tensor of the
  // checkpoint, f32 as written, and int8 experts + scales after quantizing a
  // bf16 checkpoint (which keeps every other tensor bf16).
  jamba::ckpt::testing::TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  JambaConfig c = tinyConfig();
  RandomCheckpointOptions f32;
  ASSERT_TRUE(writeRandomCheckpoint(c, dir.file("f32"), f32).ok());
  PlanRequest r;
  r.weights = WeightFormat::F32;
  EXPECT_EQ(planOk(c, r).weightBytes, checkpointBytes(dir.file("f32")));

  RandomCheckpointOptions bf16;
  bf16.dtype = DType::BF16;
  ASSERT_TRUE(writeRandomCheckpoint(c, dir.file("bf16"), bf16).ok());
  r.weights = WeightFormat::BF16;
  EXPECT_EQ(planOk(c, r).weightBytes, checkpointBytes(dir.file("bf16")));

  StatusOr<std::unique_ptr<Checkpoint>> in = Checkpoint::open(dir.file("bf16"));
  ASSERT_TRUE(in.ok()) << in.status().message();
  for (bool denseMlp : {false, true}) {
    QuantizeOptions q;
    q.denseMlp = denseMlp;
    std::string out = dir.file(denseMlp ? "int8-mlp" : "int8");
    ASSERT_TRUE(writeQuantizedCheckpoint(**in, out, q).ok());
    r.weights = WeightFormat::ExpertsInt8;
    r.int8DenseMlp = denseMlp;
    EXPECT_EQ(planOk(c, r).weightBytes, checkpointBytes(out)) << out;
  }
}

//===----------------------------------------------------------------------===//
// Fitting and the largest context
//===----------------------------------------------------------------------===//

TEST(MemoryPlanTest, LargestContextIsTheEdge) {
  JambaConfig c = tinyConfig();
  PlanRequest r;
  r.weights = WeightFormat::F32;
  r.reserveBytes = 0;
  r.deviceBytes = 4u << 20; // 4 MiB
  r.context = 1;
  DeviceMemoryPlan p = planOk(c, r);
  ASSERT_TRUE(p.maxContext.has_value());
  int64_t edge = *p.maxContext;
  ASSERT_GT(edge, 1);

  r.context = edge;
  EXPECT_TRUE(planOk(c, r).fits);
  r.context = edge + 1;
  DeviceMemoryPlan over = planOk(c, r);
  EXPECT_FALSE(over.fits);
  EXPECT_GT(over.totalBytes, r.deviceBytes);
  EXPECT_EQ(over.maxContext, edge);

  r.maximizeContext = true;
  DeviceMemoryPlan max = planOk(c, r);
  EXPECT_EQ(max.request.context, edge);
  EXPECT_TRUE(max.fits);
}

TEST(MemoryPlanTest, NothingFits) {
  PlanRequest r;
  r.deviceBytes = 1u << 20; // less than the 1 GiB reserve
  r.maximizeContext = true;
  DeviceMemoryPlan p = planOk(tinyConfig(), r);
  EXPECT_EQ(p.maxContext, 0);
  EXPECT_EQ(p.request.context, 1);
  EXPECT_FALSE(p.fits);
  EXPECT_NE(formatDeviceMemoryPlan(p, "tiny").find(
                "none: even a context of 1 token does not fit"),
            std::string::npos);
}

TEST(MemoryPlanTest, WithoutAttentionTheContextIsFree) {
  // attention offset 7 in 6 layers: no attention layer, no KV cache, so the
  // search reaches its limit.
  JambaConfig c = tinyConfig();
  c.attnLayerPeriod = 8;
  c.attnLayerOffset = 7;
  PlanRequest r;
  r.deviceBytes = 2 * kGiB;
  DeviceMemoryPlan p = planOk(c, r);
  EXPECT_EQ(p.attentionLayers, 0);
  EXPECT_EQ(p.kvCacheBytes, 0u);
  EXPECT_EQ(p.maxContext, kMaxPlanContext);
}

//===----------------------------------------------------------------------===//
// Errors
//===----------------------------------------------------------------------===//

TEST(MemoryPlanTest, RangeErrorsNameTheField) {
  JambaConfig c = tinyConfig();
  PlanRequest r;
  r.tensorParallel = 0;
  EXPECT_EQ(planError(c, r), "tp: expected an integer in [1, 4096], got 0");
  r = PlanRequest();
  r.expertParallel = -2;
  EXPECT_EQ(planError(c, r), "ep: expected an integer in [1, 4096], got -2");
  r = PlanRequest();
  r.batch = 0;
  EXPECT_EQ(planError(c, r),
            "batch: expected an integer in [1, 2147483648], got 0");
  r = PlanRequest();
  r.context = -1;
  EXPECT_EQ(planError(c, r),
            "context: expected an integer in [1, 4294967296], got -1");
  r = PlanRequest();
  r.prefillChunk = 0;
  EXPECT_EQ(planError(c, r),
            "prefill_chunk: expected an integer in [1, 4294967296], got 0");
  r = PlanRequest();
  r.tensorParallel = 4;
  r.expertParallel = 2048;
  EXPECT_EQ(planError(c, r),
            "tp x ep (4 x 2048 = 8192 devices) exceeds the limit of 4096");
  r = PlanRequest();
  r.int8DenseMlp = true;
  EXPECT_EQ(planError(c, r), "int8_dense_mlp: needs weights int8-experts, "
                             "got bf16");
  r = PlanRequest();
  r.maximizeContext = true;
  EXPECT_EQ(planError(c, r), "device_bytes: the largest context that fits "
                             "needs a device size");
}

TEST(MemoryPlanTest, DivisibilityErrors) {
  JambaConfig c = tinyConfig();
  PlanRequest r;
  r.tensorParallel = 3;
  EXPECT_EQ(planError(c, r),
            "tp (3) must divide num_attention_heads (4): query heads are "
            "split over the tp ranks");
  r.tensorParallel = 8;
  EXPECT_EQ(planError(c, r).substr(0, 40),
            "tp (8) must divide num_attention_heads (");

  // 6 heads, 2 kv heads, tp 3: 3 divides 6, but neither of 2 and 3 divides
  // the other.
  JambaConfig kv = tinyConfig();
  kv.hiddenSize = 96;
  kv.numAttentionHeads = 6;
  r.tensorParallel = 3;
  EXPECT_EQ(planError(kv, r),
            "tp (3) and num_key_value_heads (2): one must divide the other "
            "(kv heads are split over the ranks, or replicated when fewer "
            "than tp)");

  // Without attention layers the heads do not constrain tp; d_inner does.
  JambaConfig mambaOnly = tinyConfig();
  mambaOnly.attnLayerPeriod = 8;
  mambaOnly.attnLayerOffset = 7;
  EXPECT_EQ(planError(mambaOnly, r),
            "tp (3) must divide d_inner = mamba_expand x hidden_size (128): "
            "Mamba channels are split over the ranks");

  JambaConfig wide = tinyConfig();
  wide.intermediateSize = 102;
  r.tensorParallel = 4;
  EXPECT_EQ(planError(wide, r),
            "tp (4) must divide intermediate_size (102): dense MLPs and "
            "experts are split over the ranks");

  r = PlanRequest();
  r.expertParallel = 3;
  EXPECT_EQ(planError(c, r),
            "ep (3) must divide num_experts (4): each expert-parallel group "
            "holds num_experts / ep experts");
  JambaConfig dense = tinyConfig();
  dense.numExperts = 1;
  dense.numExpertsPerTok = 1;
  r.expertParallel = 2;
  EXPECT_EQ(planError(dense, r),
            "ep (2) must be 1: the model has no MoE layers to split");
}

TEST(MemoryPlanTest, InvalidConfigAndOverflow) {
  JambaConfig c = tinyConfig();
  c.hiddenSize = 0;
  EXPECT_EQ(planError(c, PlanRequest()),
            "config: key 'hidden_size': expected a positive integer, got 0");

  // 2^31 sequences x 2^32 tokens x 512 KV bytes per token overflows.
  PlanRequest r;
  r.weights = WeightFormat::F32;
  r.batch = kMaxPlanBatch;
  r.context = kMaxPlanContext;
  EXPECT_EQ(planError(tinyConfig(), r),
            "batch (2147483648) x context (4294967296): the per-device byte "
            "counts overflow 64 bits");
}

TEST(MemoryPlanTest, WeightFormatNames) {
  EXPECT_EQ(parseWeightFormat("f32"), WeightFormat::F32);
  EXPECT_EQ(parseWeightFormat("bfloat16"), WeightFormat::BF16);
  EXPECT_EQ(parseWeightFormat("int8-experts"), WeightFormat::ExpertsInt8);
  EXPECT_EQ(parseWeightFormat("experts_int8"), WeightFormat::ExpertsInt8);
  EXPECT_FALSE(parseWeightFormat("int4").has_value());
  EXPECT_STREQ(weightFormatName(WeightFormat::ExpertsInt8), "int8-experts");

  JambaConfig c = tinyConfig();
  EXPECT_EQ(defaultWeightFormat(c), WeightFormat::F32);
  c.torchDtype = "bfloat16";
  EXPECT_EQ(defaultWeightFormat(c), WeightFormat::BF16);
  c.torchDtype.reset();
  EXPECT_EQ(defaultWeightFormat(c), WeightFormat::BF16);
  c.quantMethod = kQuantMethodExpertsInt8;
  EXPECT_EQ(defaultWeightFormat(c), WeightFormat::ExpertsInt8);
}

TEST(MemoryPlanTest, FormattedTable) {
  PlanRequest r;
  r.tensorParallel = 2;
  r.expertParallel = 2;
  r.weights = WeightFormat::F32;
  r.deviceBytes = 2 * kGiB;
  std::string text = formatDeviceMemoryPlan(planOk(tinyConfig(), r), "tiny");
  for (const char *expected :
       {"memory plan: tiny\n", "  devices       4 = tp 2 x ep 2\n",
        "  weights       f32\n",
        "  each device   2/4 query heads, 1/2 kv heads, 64/128 d_inner, "
        "64/128 intermediate, 2/4 experts, 64/128 vocab rows\n",
        "  reserve                    1.00       1073741824\n",
        "  device        2.00 GiB: fits, "})
    EXPECT_NE(text.find(expected), std::string::npos)
        << "missing: " << expected << "\nin:\n"
        << text;
}

//===----------------------------------------------------------------------===//
// The acceptance facts (shared model configs)
//===----------------------------------------------------------------------===//

TEST(MemoryPlanTest, LargeExpertsInt8FitsEightGpusAt256K) {
  LOAD_SHARED_MODEL(large, "jamba-1.5-large.json");
  PlanRequest r;
  r.tensorParallel = 8;
  r.weights = WeightFormat::ExpertsInt8;
  r.context = 262144;
  r.deviceBytes = 80 * kGiB;
  DeviceMemoryPlan p = planOk(large, r);
  EXPECT_TRUE(p.fits) << formatDeviceMemoryPlan(p, "large");
  // SPEC.md 1.8: 9 GiB of KV at 256K in all (9 attention layers x 8 kv
  // heads x 128 x 2 x bf16 = 36 KiB per token); one kv head per rank.
  EXPECT_EQ(p.kvCacheBytes, 9 * kGiB / 8);
  // SSM state 63 x 16384 x 16 x 4 = 66060288 bytes per sequence, over 8.
  EXPECT_EQ(p.ssmStateBytes, 63u * 16384 * 16 * 4 / 8);
  EXPECT_GE(p.maxContext.value_or(0), 262144);
  // Also on an H100's 81559 MiB.
  r.deviceBytes = uint64_t(81559) << 20;
  EXPECT_TRUE(planOk(large, r).fits);

  // The same 8 devices as tp 4 x ep 2 hold the same expert bytes (up to the
  // replicated down_proj scales) but twice the non-expert weights and KV.
  PlanRequest mixed = r;
  mixed.tensorParallel = 4;
  mixed.expertParallel = 2;
  DeviceMemoryPlan q = planOk(large, mixed);
  EXPECT_EQ(q.devices, 8);
  EXPECT_LE(q.weights.experts, p.weights.experts);
  EXPECT_EQ(q.kvCacheBytes, 2 * p.kvCacheBytes);
  EXPECT_GT(q.totalBytes, p.totalBytes);
}

TEST(MemoryPlanTest, LargeBf16IsRefused) {
  LOAD_SHARED_MODEL(large, "jamba-1.5-large.json");
  PlanRequest r;
  r.tensorParallel = 8;
  r.weights = WeightFormat::BF16;
  r.context = 262144;
  r.deviceBytes = 80 * kGiB;
  DeviceMemoryPlan p = planOk(large, r);
  EXPECT_FALSE(p.fits);
  // About 398.5B bf16 parameters over 8 devices: the weights alone exceed
  // 80 GiB, so no context fits.
  EXPECT_GT(p.weightBytes, 80 * kGiB);
  EXPECT_EQ(p.maxContext, 0);
  std::string text = formatDeviceMemoryPlan(p, "large");
  EXPECT_NE(text.find("80.00 GiB: does not fit"), std::string::npos) << text;
}

TEST(MemoryPlanTest, MiniExpertsInt8FitsOneGpu) {
  LOAD_SHARED_MODEL(mini, "jamba-1.5-mini.json");
  PlanRequest r;
  r.weights = WeightFormat::ExpertsInt8;
  r.context = 262144;
  r.deviceBytes = 80 * kGiB;
  DeviceMemoryPlan p = planOk(mini, r);
  EXPECT_TRUE(p.fits) << formatDeviceMemoryPlan(p, "mini");
  // SPEC.md 1.8: 16 KiB of KV per token, 4 GiB at 256K; SSM state
  // 28 x 8192 x 16 x 4, conv state 28 x 8192 x 3 x 2 bytes per sequence.
  EXPECT_EQ(p.kvBytesPerToken, 16384u);
  EXPECT_EQ(p.kvCacheBytes, 4 * kGiB);
  EXPECT_EQ(p.ssmStateBytes, 28u * 8192 * 16 * 4);
  EXPECT_EQ(p.convStateBytes, 28u * 8192 * 3 * 2);
  // 16 MoE layers x 16 experts x (3 x 14336 x 4096 int8 + (2 x 14336 +
  // 4096) f32 scales).
  EXPECT_EQ(p.weights.experts, uint64_t(16 * 16) * (uint64_t(3) * 14336 * 4096 +
                                                    4 * (2 * 14336 + 4096)));

  ASSERT_TRUE(p.maxContext.has_value());
  int64_t edge = *p.maxContext;
  EXPECT_GT(edge, 262144);
  r.context = edge;
  EXPECT_TRUE(planOk(mini, r).fits);
  r.context = edge + 1;
  EXPECT_FALSE(planOk(mini, r).fits);

  // In bf16 it does not fit one 80 GiB device at all.
  r.weights = WeightFormat::BF16;
  EXPECT_EQ(planOk(mini, r).maxContext, 0);
}

} // namespace

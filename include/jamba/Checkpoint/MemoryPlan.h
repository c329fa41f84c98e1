//===- MemoryPlan.h - Per-device memory plan of a Jamba model ---*- C++ -*-===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// How many bytes one device needs to run a Jamba model, computed from the
// config alone (no checkpoint, no artifact), for a tensor-parallel size TP, an
// expert-parallel size EP, a weight format, a batch size and a context length:
//
//   weights       every parameter of SPEC.md 1.4 this device holds
//   KV cache      attention layers: K and V for batch x context tokens
//   Mamba state   Mamba layers: conv state (K-1 columns) and f32 SSM state
//   activations   the peak working set of one prefill chunk (a decode step
//                 is the same computation with one token per sequence, so it
//                 never needs more)
//   workspace     the all-reduce staging buffer plus a fixed reserve for the
//                 CUDA context, cuBLAS(Lt) and NCCL
//
// and whether the total fits a device of a given capacity, and the largest
// context that would.
//
// Device layout: TP x EP devices, as EP groups of TP ranks (SPEC.md 1.9 for
// the TP part). Inside a group every layer is tensor-parallel: attention by
// heads (kv heads replicated when there are fewer than TP), Mamba by d_inner
// (x_proj and out_proj row-parallel), dense MLPs and experts by the
// intermediate width; embed_tokens and lm_head are vocab-parallel (each rank
// holds ceil(V / TP) rows, the last rank padded, as vLLM's
// VocabParallelEmbedding / ParallelLMHead); the router and every RMSNorm are
// replicated. The EP groups split the experts (E / EP each) and replicate
// everything else, and every group runs the whole batch through the
// non-expert layers, so the KV cache and the Mamba state per device do not
// shrink with EP. For a fixed device count, EP > 1 therefore only adds bytes
// (the non-expert weights and the state are split fewer ways, the expert
// bytes per device stay the same); it exists for its communication pattern,
// not for memory. docs/MemoryPlan.md has the details and the figures.
//
// This is the plan of the model, before compilation. rt::planMemory (Runtime
// library) is the plan of a compiled artifact: its buffers as the compiler
// laid them out.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_CHECKPOINT_MEMORYPLAN_H
#define JAMBA_CHECKPOINT_MEMORYPLAN_H

#include "jamba/Checkpoint/Config.h"
#include "jamba/Checkpoint/Status.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace jamba {
namespace ckpt {

/// How the weights are stored on the device.
enum class WeightFormat {
  /// Every parameter in f32; activations, KV cache and conv state in f32.
  F32,
  /// Every parameter in bf16; activations, KV cache and conv state in bf16.
  BF16,
  /// ExpertsInt8 (SPEC.md 1.11, docs/ExpertsInt8.md): every expert
  /// projection int8 plus one f32 scale per output row, every other
  /// parameter bf16 (optionally the dense MLPs int8 too:
  /// PlanRequest::int8DenseMlp); activations in bf16.
  ExpertsInt8,
};

/// "f32", "bf16" or "int8-experts".
const char *weightFormatName(WeightFormat format);

/// Parses the names of weightFormatName (plus "float32", "bfloat16" and
/// "experts_int8"); nullopt for anything else.
std::optional<WeightFormat> parseWeightFormat(std::string_view name);

/// The format a config's checkpoint is in: ExpertsInt8 when it has a
/// quantization_config, F32 when torch_dtype is "float32", else BF16.
WeightFormat defaultWeightFormat(const JambaConfig &config);

/// The largest TP x EP accepted (the artifact's `ranks` limit).
constexpr int64_t kMaxPlanDevices = 4096;
/// The largest batch accepted.
constexpr int64_t kMaxPlanBatch = int64_t(1) << 31;
/// The largest context (and prefill chunk) accepted, and the upper end of
/// the search for the largest context that fits.
constexpr int64_t kMaxPlanContext = int64_t(1) << 32;

/// What to plan for.
struct PlanRequest {
  /// Ranks each layer is split over (TP).
  int64_t tensorParallel = 1;
  /// Groups the experts are split over (EP); the device count is TP x EP.
  int64_t expertParallel = 1;
  WeightFormat weights = WeightFormat::BF16;
  /// With ExpertsInt8: the dense-MLP projections are int8 (+ f32 row
  /// scales) too, as docs/ExpertsInt8.md's `dense_mlp` option.
  bool int8DenseMlp = false;
  /// Sequences decoded at once.
  int64_t batch = 1;
  /// Tokens the KV cache holds per sequence. Ignored when maximizeContext.
  int64_t context = 4096;
  /// Plan for the largest context that fits `deviceBytes` (which must then
  /// be set) instead of `context`.
  bool maximizeContext = false;
  /// Tokens per sequence in one prefill step (the runtime's `seq`); the
  /// step processes batch x min(prefillChunk, context) tokens.
  int64_t prefillChunk = 2048;
  /// Capacity of one device; 0 = no limit (fits is then always true and
  /// maxContext unset).
  uint64_t deviceBytes = 0;
  /// Fixed per-device reserve counted in the workspace: CUDA context,
  /// cuBLAS(Lt) workspace, NCCL buffers, allocator slack. An estimate, not
  /// a measurement; 0 is allowed.
  uint64_t reserveBytes = uint64_t(1) << 30;
};

/// Weight bytes on one device, by part of the model.
struct WeightBytes {
  uint64_t attention = 0; ///< q/k/v/o_proj
  uint64_t mamba = 0;     ///< in_proj ... out_proj, dt/B/C norms
  uint64_t denseMlp = 0;  ///< gate/up/down of the dense-MLP layers (+ scales)
  uint64_t experts = 0;   ///< this device's experts (+ scales)
  uint64_t router = 0;    ///< MoE routers (replicated)
  uint64_t norms = 0;     ///< input/pre_ff/final RMSNorms (replicated)
  uint64_t embedding = 0; ///< embed_tokens, vocab-parallel
  uint64_t lmHead = 0;    ///< lm_head, vocab-parallel; 0 when tied
  uint64_t total() const;
};

/// The working set of one prefill step on one device, in bytes. The peak is
/// `hidden` plus the largest of the others: the per-layer temporaries are
/// dead before the next layer (or the logits) start.
struct ActivationBytes {
  /// Residual stream, normed input and block output: 3 x [T, H].
  uint64_t hidden = 0;
  /// q, k, v, attention output, softmax row statistics (attention is a
  /// tiled kernel: the [T, context] scores are never stored).
  uint64_t attention = 0;
  /// in_proj output (x, z), conv output, x_proj output (f32), delta (f32),
  /// gated scan output.
  uint64_t mamba = 0;
  /// gate/up output and SiLU(gate) * up.
  uint64_t denseMlp = 0;
  /// Router logits (f32), top-k ids and weights, and, for the worst case
  /// where every routed row lands on this device's experts, the tokens
  /// gathered in expert order, the gate/up output, SiLU(gate) * up and the
  /// down output.
  uint64_t moe = 0;
  /// This rank's logits in the activation type and the gathered
  /// full-vocabulary f32 logits the sampler reads.
  uint64_t logits = 0;
  /// hidden + the largest of the others.
  uint64_t peak() const;
  /// "attention", "Mamba", "dense MLP", "MoE" or "logits": the largest term.
  const char *largest() const;
};

/// The plan for one device of the TP x EP layout.
struct DeviceMemoryPlan {
  /// The request, with `context` the planned context (resolved when
  /// maximizeContext).
  PlanRequest request;
  int64_t devices = 1; ///< TP x EP

  // The model's schedule (SPEC.md 1.3).
  int64_t attentionLayers = 0, mambaLayers = 0;
  int64_t moeLayers = 0, denseMlpLayers = 0;

  // What one rank holds of each split dimension.
  int64_t headsPerRank = 0;        ///< query heads
  int64_t kvHeadsPerRank = 0;      ///< kv heads (replicated if nKV < TP)
  int64_t dInnerPerRank = 0;       ///< Mamba channels
  int64_t intermediatePerRank = 0; ///< dense MLP / expert width
  int64_t expertsPerRank = 0;      ///< experts held (of each MoE layer)
  int64_t vocabPerRank = 0;        ///< embedding / lm_head rows (padded)

  // Config values the formatted plan quotes.
  int64_t numKeyValueHeads = 0, vocabSize = 0, maxPositionEmbeddings = 0;

  /// Tokens per sequence in one prefill step: min(prefillChunk, context).
  int64_t chunk = 0;
  /// Bytes of the activation type (and of the KV cache and conv state).
  int64_t activationElementBytes = 2;

  WeightBytes weights;
  uint64_t kvCacheBytes = 0;
  uint64_t convStateBytes = 0;
  uint64_t ssmStateBytes = 0;
  ActivationBytes activations;
  /// Staging for the all-reduce of [T, H] partial sums (0 on one device).
  uint64_t collectiveBytes = 0;
  uint64_t reserveBytes = 0;

  uint64_t weightBytes = 0;     ///< weights.total()
  uint64_t mambaStateBytes = 0; ///< conv + SSM
  uint64_t activationBytes = 0; ///< activations.peak()
  uint64_t workspaceBytes = 0;  ///< collective + reserve
  uint64_t totalBytes = 0;      ///< the five above
  uint64_t kvBytesPerToken = 0; ///< KV cache bytes per token of one sequence

  /// totalBytes <= deviceBytes, or no device limit.
  bool fits = true;
  /// With a device limit: the largest context in [1, kMaxPlanContext] whose
  /// plan fits (0 if none does), other settings unchanged.
  std::optional<int64_t> maxContext;
};

/// Checks `request` against `config` (which must itself be valid). Every
/// message names the field at fault (tp, ep, batch, context, prefill_chunk,
/// int8_dense_mlp, device_bytes) and, for a divisibility rule, the config key
/// it is checked against:
///   tp, ep in [1, 4096] and tp x ep <= 4096;
///   tp divides num_attention_heads (query heads split over the ranks);
///   tp divides num_key_value_heads, or num_key_value_heads divides tp (kv
///     heads split, or each replicated on tp / num_key_value_heads ranks);
///   tp divides d_inner = mamba_expand x hidden_size;
///   tp divides intermediate_size (dense MLPs and experts);
///   ep divides num_experts, and ep is 1 for a model without MoE layers;
///   the head and d_inner rules apply only when the model has attention,
///   respectively Mamba, layers; vocab_size need not divide (padded);
///   batch in [1, 2^31]; context and prefill_chunk in [1, 2^32];
///   int8_dense_mlp only with ExpertsInt8; maximizeContext needs a device.
Status validatePlanRequest(const JambaConfig &config,
                           const PlanRequest &request);

/// Validates and plans. Fails on an invalid request, or when a byte count
/// would overflow 64 bits.
StatusOr<DeviceMemoryPlan> planDeviceMemory(const JambaConfig &config,
                                            const PlanRequest &request);

/// A readable table of `plan`: the request, the per-rank split, each
/// category in GiB (two decimals) and bytes, and the verdict. `modelName`
/// (e.g. the config path) heads it.
std::string formatDeviceMemoryPlan(const DeviceMemoryPlan &plan,
                                   const std::string &modelName);

} // namespace ckpt
} // namespace jamba

#endif // JAMBA_CHECKPOINT_MEMORYPLAN_H

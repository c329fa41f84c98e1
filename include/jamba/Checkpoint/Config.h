//===- Config.h - Jamba config.json -----------------------------*- C++ -*-===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// The Hugging Face `config.json` of a Jamba model (SPEC.md section 1.2), with
// the defaults of transformers' JambaConfig, strict type checking and the
// validation rules of SPEC.md 1.2/1.3, plus the layer schedule helpers.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_CHECKPOINT_CONFIG_H
#define JAMBA_CHECKPOINT_CONFIG_H

#include "jamba/Checkpoint/Status.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace jamba {
namespace ckpt {

/// Every key of SPEC.md 1.2, initialised to its HF default. Derived values
/// are already resolved: `numKeyValueHeads` null -> `numAttentionHeads`,
/// `mambaDtRank` "auto" -> ceil(hiddenSize / 16).
struct JambaConfig {
  std::vector<std::string> architectures; ///< Absent -> empty.
  std::optional<std::string> modelType;   ///< "jamba" when present.

  int64_t vocabSize = 65536;
  bool tieWordEmbeddings = false;
  int64_t hiddenSize = 4096;
  int64_t intermediateSize = 14336;
  int64_t numHiddenLayers = 32;
  int64_t numAttentionHeads = 32;
  int64_t numKeyValueHeads = 8;
  std::string hiddenAct = "silu";
  double initializerRange = 0.02;
  double rmsNormEps = 1e-6;
  bool useCache = true;
  /// 0 means "all positions" in HF.
  int64_t numLogitsToKeep = 1;
  bool outputRouterLogits = false;
  double routerAuxLossCoef = 0.001;

  std::optional<int64_t> padTokenId = 0;
  std::optional<int64_t> bosTokenId = 1;
  /// `eos_token_id` may be an integer or a list of integers; null -> empty.
  std::vector<int64_t> eosTokenIds = {2};

  std::optional<int64_t> slidingWindow; ///< null -> none.
  int64_t maxPositionEmbeddings = 262144;
  double attentionDropout = 0.0;

  int64_t numExpertsPerTok = 2;
  int64_t numExperts = 16;
  int64_t expertLayerPeriod = 2;
  int64_t expertLayerOffset = 1;
  int64_t attnLayerPeriod = 8;
  int64_t attnLayerOffset = 4;

  bool useMambaKernels = true;
  int64_t mambaDState = 16;
  int64_t mambaDConv = 4;
  int64_t mambaExpand = 2;
  int64_t mambaDtRank = 256; ///< ceil(4096 / 16) for the default hidden size.
  bool mambaConvBias = true;
  bool mambaProjBias = false;

  /// "float32", "bfloat16", ... when present.
  std::optional<std::string> torchDtype;

  /// `quantization_config.quant_method` when the key is present; the only
  /// accepted method is "experts_int8" (kQuantMethodExpertsInt8; see
  /// docs/ExpertsInt8.md). Absent -> no quantization.
  std::optional<std::string> quantMethod;
  /// `quantization_config.dense_mlp` (default false): the dense-MLP layers'
  /// projections are int8 too, not only the MoE experts.
  bool quantDenseMlp = false;

  /// True if layer `i` has an attention mixer (else a Mamba mixer).
  bool isAttentionLayer(int64_t i) const {
    return i >= 0 && i % attnLayerPeriod == attnLayerOffset;
  }
  /// True if layer `i` has a sparse MoE FFN (else a dense MLP). As in
  /// transformers, a layer the schedule makes MoE is a dense MLP when
  /// there is a single expert (`layers_num_experts[i] > 1`).
  bool isMoELayer(int64_t i) const {
    return i >= 0 && i % expertLayerPeriod == expertLayerOffset &&
           numExperts > 1;
  }
  /// hidden_size / num_attention_heads.
  int64_t headDim() const { return hiddenSize / numAttentionHeads; }
  /// Mamba d_inner = mamba_expand * hidden_size.
  int64_t dInner() const { return mambaExpand * hiddenSize; }

  bool operator==(const JambaConfig &other) const;
  bool operator!=(const JambaConfig &other) const { return !(*this == other); }
};

/// The `quant_method` of an ExpertsInt8 checkpoint.
constexpr const char kQuantMethodExpertsInt8[] = "experts_int8";

/// The largest value accepted for any single dimension (2^31). Together with
/// the product checks in validateConfig this keeps every tensor's element
/// count and byte size inside int64.
constexpr int64_t kMaxConfigDim = int64_t(1) << 31;

/// Parses and validates the text of a config.json. Unknown keys are ignored;
/// a known key of the wrong JSON type is an error naming the key. Messages
/// start with `pathForMessages`.
StatusOr<JambaConfig> parseConfig(std::string_view jsonText,
                                  const std::string &pathForMessages);

/// Reads and parses the file at `path`.
StatusOr<JambaConfig> loadConfig(const std::string &path);

/// Checks the cross-key rules (sizes positive and bounded, divisibility,
/// schedules, activation). parseConfig calls it; call it again after editing
/// a config by hand.
Status validateConfig(const JambaConfig &config,
                      const std::string &pathForMessages);

/// Serializes `config` as a pretty-printed config.json with keys sorted like
/// Hugging Face writes them. parseConfig(configToJson(c)) == c.
std::string configToJson(const JambaConfig &config);

/// Reads a whole file into `out`. Shared helper for the checkpoint library.
Status readFileToString(const std::string &path, std::string &out,
                        size_t maxBytes = size_t(1) << 30);

} // namespace ckpt
} // namespace jamba

#endif // JAMBA_CHECKPOINT_CONFIG_H

//===- Quantize.h - ExpertsInt8 quantization of checkpoints -----*- C++ -*-===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// vLLM's ExpertsInt8 scheme (SPEC.md 1.11): symmetric, per output row of a
// PyTorch [out, in] weight, no zero point, computed in float32:
//
//   scale[r] = max_k |w[r, k]| / 127.0f                 (an f32 division)
//   q[r, k]  = clamp(nearbyint(w[r, k] / scale[r]), -127, 127)   (as int8)
//
// with `w / scale` an f32 division and nearbyint rounding half to even (the
// default FE_TONEAREST mode, as torch.round_), so -128 is never produced.
// This is, bit for bit, what vLLM's `quantize_in_place_and_get_scales`
// (vllm/model_executor/layers/quantization/experts_int8.py) computes for an
// f32 tensor on the CPU:
//
//   scales = torch.max(torch.abs(w), dim=1, keepdim=True)[0] / 127
//   w.div_(scales); w.round_(); w.clamp_(-127, 127)
//
// Differences from vLLM, all deliberate:
//
// * All-zero rows. vLLM divides 0 by a zero scale (NaN, then an unspecified
//   int8 conversion); here a row whose scale is 0 (all zeros, or a maximum
//   so small that max / 127 underflows to 0) gets scale 1.0f and q = 0.
//
// * CUDA. vLLM quantizes on the GPU (`loaded_weight.to(device)`), where
//   PyTorch turns a division by a Python scalar into a multiplication by its
//   reciprocal, so vLLM-on-CUDA's scale is fl(max * fl(1 / 127)), which is
//   one ulp away from fl(max / 127) for some maxima. ScaleRule::CudaReciprocal
//   reproduces that; the default ScaleRule::Divide is the formula above
//   (PyTorch on the CPU). `w / scale` is a tensor-by-tensor division, a true
//   IEEE division on both devices.
//
// * bf16 checkpoints. vLLM quantizes the checkpoint tensor in its stored
//   dtype, so for a bf16 checkpoint every step is bf16 arithmetic (each
//   operation computed in f32 and rounded to bf16): the scale is
//   bf16(max / 127) (on CUDA bf16(max * fl32(1 / 127))), then each quotient
//   is rounded to bf16 before torch.round, i.e.
//   q = clamp(nearbyint(bf16(w / s_bf16))). Here a bf16 value is widened
//   exactly to f32 and the f32 formula above is used: the scale is the
//   unrounded f32 quotient (vLLM's is that rounded to 8 significant bits,
//   a relative difference up to 2^-9), and there is no double rounding of
//   the quotient (in bf16 a quotient in [64, 128) is a multiple of 0.5, in
//   [32, 64) of 0.25, so vLLM rounds e.g. 101.3 -> 101.5 -> 102 where the f32
//   path gives 101). The f32 result is the more accurate one; q can differ
//   from vLLM's bf16 result by 1 and the scale in its low mantissa bits.
//   docs/ExpertsInt8.md ("bf16 rounding vs vLLM") has the details.
//
// writeQuantizedCheckpoint streams a whole checkpoint through this scheme;
// docs/ExpertsInt8.md ("Quantized checkpoint format") documents the output.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_CHECKPOINT_QUANTIZE_H
#define JAMBA_CHECKPOINT_QUANTIZE_H

#include "jamba/Checkpoint/Checkpoint.h"
#include "jamba/Checkpoint/Status.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace jamba {
namespace ckpt {

/// How the per-row scale max|w| / 127 is rounded to f32.
enum class ScaleRule {
  /// fl(max / 127.0f), an IEEE f32 division (PyTorch on the CPU).
  Divide,
  /// fl(max * fl(1 / 127)): PyTorch on CUDA, which multiplies by the
  /// reciprocal when dividing by a Python scalar.
  CudaReciprocal,
};

/// The ExpertsInt8 scale of a row whose largest magnitude is `absMax`
/// (finite, >= 0), before the zero guard (see quantizeRowsInt8).
float int8ScaleFor(float absMax, ScaleRule rule = ScaleRule::Divide);

/// Quantizes a row-major [rows, cols] f32 matrix `w` to `q` (rows * cols
/// int8) and `scales` (rows f32) with the scheme of the file comment: per row
/// scale = max|w| / 127 (per `rule`), q = clamp(nearbyint(w / scale), -127,
/// 127) in f32 arithmetic, rounding half to even. A row whose scale is 0 gets
/// scale 1.0f and q = 0. Returns the number of rows holding a NaN or an
/// infinity; such rows get scale 1.0f and q = 0 as well, so the output never
/// holds a NaN (callers should treat a non-zero result as an error).
int64_t quantizeRowsInt8(const float *w, int64_t rows, int64_t cols, int8_t *q,
                         float *scales, ScaleRule rule = ScaleRule::Divide);

/// As quantizeRowsInt8 for a bf16 matrix given as raw bits: each value is
/// widened exactly to f32 and the f32 scheme is applied (this differs from
/// vLLM's bf16 arithmetic; see the file comment).
int64_t quantizeRowsInt8Bf16(const uint16_t *w, int64_t rows, int64_t cols,
                             int8_t *q, float *scales,
                             ScaleRule rule = ScaleRule::Divide);

/// As quantizeRowsInt8, with the rows split over `threads` threads (0: one
/// per hardware thread). The result does not depend on the thread count.
int64_t quantizeRowsInt8Parallel(const float *w, int64_t rows, int64_t cols,
                                 int8_t *q, float *scales, int threads = 0,
                                 ScaleRule rule = ScaleRule::Divide);

/// The inverse map used by consumers: out[r, k] = float(q[r, k]) * scales[r]
/// (one f32 multiplication). |out - w| <= scale / 2 for every element of a
/// finite row quantized by quantizeRowsInt8.
void dequantizeRowsInt8(const int8_t *q, const float *scales, int64_t rows,
                        int64_t cols, float *out);

/// Options of writeQuantizedCheckpoint.
struct QuantizeOptions {
  /// Also quantize the dense-MLP layers' gate/up/down projections (the
  /// mid-2024 vLLM Jamba loader treated them as one-expert MoEs).
  bool denseMlp = false;
  /// Worker threads for the per-row quantization; 0 = one per hardware
  /// thread. The output does not depend on it.
  int threads = 0;
  /// Scale rounding; the default matches SPEC.md's formula (and vLLM on the
  /// CPU), CudaReciprocal matches vLLM on a GPU for f32 weights.
  ScaleRule scaleRule = ScaleRule::Divide;
  /// Print progress to stderr (at most once per second, only once the run
  /// has lasted a second): `quantize: 1.2 GB / 3.4 GB (35%), 410 MB/s, ETA
  /// 5 s`, and a summary line at the end of such a run.
  bool progress = false;
  /// When set, called instead of printing with (input bytes done, total
  /// input bytes) after every tensor; `progress` is then ignored. Called
  /// from the thread that produces the tensors (SafeTensorsWriter), one
  /// call at a time, not from the caller's.
  std::function<void(uint64_t done, uint64_t total)> progressCallback;
};

/// The name of the f32 scale tensor of quantized weight `weightName`:
/// `...gate_proj.weight` -> `...gate_proj.weight_scale`.
std::string int8ScaleName(const std::string &weightName);

/// Writes an ExpertsInt8 copy of checkpoint `in` to `outDir` (created if
/// missing; must not be the input directory): `outDir/config.json` is the
/// input config with `quantization_config` = {"quant_method":
/// "experts_int8", "dense_mlp": options.denseMlp}, and
/// `outDir/model.safetensors` holds, in the order of expectedTensorNames():
///  * for every MoE layer (config.isMoELayer(i): never with one expert), expert
///    e and proj in {gate_proj, up_proj, down_proj}:
///    `model.layers.{i}.feed_forward.experts.{e}.{proj}.weight` as I8 with
///    the original [rows, cols] shape, followed by `...{proj}.weight_scale`
///    F32 [rows]; read from per-expert, transformers-v5 fused or `.moe.`
///    tensors;
///  * with options.denseMlp, likewise every other layer's
///    `feed_forward.{gate,up,down}_proj.weight` (+ `_scale`);
///  * every other tensor of expectedTensorNames() copied byte for byte
///    (same dtype) under its canonical name (`.moe.` and dense `experts.0`
///    variants normalised; a tied lm_head stays absent).
/// Earlier weight files of another checkpoint in `outDir` (index, shards)
/// are removed. Every source tensor is located and shape-checked before
/// anything is written; data is produced tensor by tensor at write time, so
/// memory stays near the largest tensor. Source dtypes: F32, BF16, F16
/// (exact in f32) and F64 (rounded to f32 first). Errors name the tensor or
/// the path at fault.
Status writeQuantizedCheckpoint(const Checkpoint &in, const std::string &outDir,
                                const QuantizeOptions &options);

/// An unquantized checkpoint read as its ExpertsInt8 copy, with nothing
/// written: config() and every weight loadWeightF32 returns are, bit for
/// bit, what Checkpoint::open would read from the directory
/// writeQuantizedCheckpoint(in, dir, options) writes (the scales of weight
/// W under int8ScaleName(W), experts stacked through `{e}` patterns), but a
/// quantized weight is computed when it is loaded. jamba-compile
/// --experts-int8 and jamba-rebind stream an artifact's weights through it:
/// no quantized copy of the checkpoint on disk. Loading a weight keeps its
/// scales for the load of its scale tensor that follows (the writers' order);
/// a scale loaded first quantizes its weight itself. options.progress and
/// options.progressCallback are not used. `in` must outlive the reader.
/// Thread-safe (the kept scales help a thread that loads a weight and then
/// its scales).
class ExpertsInt8Reader final : public WeightReader {
public:
  /// Checks what writeQuantizedCheckpoint checks before writing: `in` is not
  /// quantized, every tensor of the copy is found with its shape, every
  /// weight to quantize has a float dtype.
  static StatusOr<std::unique_ptr<ExpertsInt8Reader>>
  open(const Checkpoint &in, const QuantizeOptions &options);

  /// The input's config with quantization_config {"quant_method":
  /// "experts_int8", "dense_mlp": options.denseMlp}.
  const JambaConfig &config() const override { return cfg; }
  Status loadWeightF32(const std::string &name,
                       const std::vector<int64_t> &expectedShape,
                       std::vector<float> &out) const override;
  Status checkWeight(const std::string &name,
                     const std::vector<int64_t> &expectedShape) const override;
  /// One expert of a stacked pattern, a weight or its scales (the pattern
  /// of a scale tensor, e.g. `...experts.{e}.up_proj.weight_scale`, and
  /// `expectedShape` then one expert's scales), the same values as that
  /// expert's slice of loadWeightF32(pattern); only that expert is read and
  /// quantized. The scales of the experts of the last weight pattern loaded
  /// are kept for the loads of its scale pattern that follow.
  Status loadExpertWeightF32(const std::string &pattern, int64_t expert,
                             const std::vector<int64_t> &expectedShape,
                             std::vector<float> &out) const override;
  /// The input's bytes for a tensor the copy keeps as it is; false for the
  /// quantized weights and their scales, which are made when loaded.
  StatusOr<bool> copyStoredBytes(const std::string &name, int64_t expert,
                                 const std::vector<int64_t> &expectedShape,
                                 DType dtype, uint8_t *dst,
                                 size_t nbytes) const override;

  /// Whether every tensor of the copy that is not quantized (all but the
  /// int8 weights and their scales) is BF16, at least one.
  bool keptTensorsAllBF16() const { return keptAllBF16; }

private:
  ExpertsInt8Reader(const Checkpoint &in, const QuantizeOptions &options)
      : in(in), options(options) {}

  /// Whether `name` (a canonical name or an expert `{e}` pattern) is a
  /// quantized weight (`isScale` false) or its scales (true); `weight` is
  /// then the weight's name.
  bool isQuantized(const std::string &name, std::string &weight,
                   bool &isScale) const;
  /// The weight's shape, and the shape of its scales (all but the last
  /// dimension) when `isScale`; an error names `name` if `expectedShape`
  /// is not that.
  Status weightShape(const std::string &name, const std::string &weight,
                     bool isScale, const std::vector<int64_t> &expectedShape,
                     std::vector<int64_t> &shape) const;
  /// Quantizes `values` (the weight `weight` of `shape`, row-major) in
  /// place, each row replaced by its int8 values, and returns each row's
  /// scale in `scales`; an error names `weight` if a row is not finite.
  Status quantizeInPlace(const std::string &weight,
                         const std::vector<int64_t> &shape,
                         std::vector<float> &values,
                         std::vector<float> &scales) const;

  const Checkpoint &in;
  QuantizeOptions options;
  JambaConfig cfg;
  /// The quantized weights' canonical names (an expert's with its index).
  std::set<std::string> quantized;
  bool keptAllBF16 = false;

  /// The scales of the last weight loaded.
  mutable std::mutex cacheMutex;
  mutable std::string cachedWeight;
  mutable std::vector<int64_t> cachedShape;
  mutable std::vector<float> cachedScales;
  /// The scales of the experts of the last stacked weight pattern loaded
  /// by expert, indexed by expert (empty: not loaded, or given out).
  mutable std::string cachedExpertPattern;
  mutable std::vector<std::vector<float>> cachedExpertScales;
};

} // namespace ckpt
} // namespace jamba

#endif // JAMBA_CHECKPOINT_QUANTIZE_H

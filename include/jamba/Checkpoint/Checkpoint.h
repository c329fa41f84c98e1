//===- Checkpoint.h - A Hugging Face Jamba checkpoint directory -*- C++ -*-===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// A checkpoint directory holds config.json and the weights in one of three
// layouts, tried in this order:
//   1. model.safetensors.index.json ({"weight_map": {tensor: file}}) plus the
//      shard files it names;
//   2. model.safetensors;
//   3. every *.safetensors file in the directory, in sorted order.
//
// On top of the raw tensors, loadWeightF32/F64 resolve the canonical names of
// SPEC.md 1.4 against the variants found in the wild (`.moe.` for
// `.feed_forward.`, dense MLPs stored as `experts.0`, tied lm_head, and the
// transformers-v5 fused expert tensors) and check the shape.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_CHECKPOINT_CHECKPOINT_H
#define JAMBA_CHECKPOINT_CHECKPOINT_H

#include "jamba/Checkpoint/Config.h"
#include "jamba/Checkpoint/SafeTensors.h"
#include "jamba/Checkpoint/Status.h"

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace jamba {
namespace ckpt {

/// Where the elements of one weight are stored: elements [first, first +
/// count) of `tensor`, in row-major order (a whole tensor, or one expert's
/// rows of a transformers-v5 fused expert tensor).
struct WeightSlice {
  const TensorInfo *tensor = nullptr;
  size_t first = 0;
  size_t count = 0;
};

/// Read access to a model's weights by canonical name (SPEC.md 1.4), what
/// the artifact writers (jamba-compile, jamba-rebind) need: a checkpoint
/// directory (Checkpoint), or an unquantized one read as its ExpertsInt8
/// copy (ExpertsInt8Reader, Quantize.h).
class WeightReader {
public:
  virtual ~WeightReader();

  /// The model's config.
  virtual const JambaConfig &config() const = 0;
  /// As Checkpoint::loadWeightF32.
  virtual Status loadWeightF32(const std::string &name,
                               const std::vector<int64_t> &expectedShape,
                               std::vector<float> &out) const = 0;
  /// As Checkpoint::checkWeight: whether loadWeightF32 would find the
  /// weight with this shape, without reading its data.
  virtual Status
  checkWeight(const std::string &name,
              const std::vector<int64_t> &expectedShape) const = 0;
  /// As Checkpoint::loadExpertWeightF32: expert `expert` of a stacked-expert
  /// pattern (`{e}`), `expectedShape` one expert's shape; the values are
  /// those of that expert's slice of loadWeightF32(pattern, [E] +
  /// expectedShape), but only that expert is read (and made).
  virtual Status loadExpertWeightF32(const std::string &pattern, int64_t expert,
                                     const std::vector<int64_t> &expectedShape,
                                     std::vector<float> &out) const = 0;
  /// Copies the stored bytes of weight `name` into `dst` (`nbytes`) when
  /// the reader holds them as `dtype`, and returns true; returns false,
  /// writing nothing, when the values must be loaded and converted instead
  /// (stored in another dtype, or made by the reader). `expert` < 0: `name`
  /// and `expectedShape` as for loadWeightF32 (a `{e}` stack gives false);
  /// otherwise one expert, as for loadExpertWeightF32. The bytes are those
  /// that converting the loaded values back to `dtype` gives (exact for F32,
  /// BF16 and I8), except that a signalling NaN stays signalling. The
  /// artifact writers copy a weight this way instead of widening it to f32
  /// and narrowing it again. Errors as loadWeightF32's, and an `nbytes`
  /// that is not the weight's size. The default: false.
  virtual StatusOr<bool>
  copyStoredBytes(const std::string &name, int64_t expert,
                  const std::vector<int64_t> &expectedShape, DType dtype,
                  uint8_t *dst, size_t nbytes) const;
};

/// An open checkpoint directory: the validated config and the memory-mapped
/// tensors of every weight file.
class Checkpoint final : public WeightReader {
public:
  /// Opens `dir`: reads and validates dir/config.json, then the weights (see
  /// the file comment for the layouts). Shard file names from an index must
  /// be plain names inside the directory (no '/', no ".."); every tensor the
  /// index lists must be in the file it names; a tensor name may appear in
  /// only one of the opened files. With an index, only the tensors it lists
  /// are visible (as with Hugging Face's loader).
  static StatusOr<std::unique_ptr<Checkpoint>> open(const std::string &dir);

  const JambaConfig &config() const override { return cfg; }
  const std::string &directory() const { return dir; }

  /// The stored tensor with exactly this name, or nullptr (no fallbacks).
  const TensorInfo *find(std::string_view name) const;
  /// Every tensor name, in index order (sharded) or file/header order.
  const std::vector<std::string> &names() const { return nameList; }
  /// The open weight files.
  const std::vector<std::unique_ptr<SafeTensorsFile>> &files() const {
    return fileList;
  }

  /// Finds the stored tensor for a plain canonical name, trying in order:
  /// the exact name; the `.moe.` <-> `.feed_forward.` variant; for dense MLP
  /// weights `...feed_forward.{gate,up,down}_proj.weight` the community form
  /// `...feed_forward.experts.0.<proj>.weight` (and its `.moe.` variant); for
  /// `lm_head.weight` with tied embeddings, `model.embed_tokens.weight`.
  /// Returns nullptr if none exists; `tried` (optional) receives every name
  /// tried.
  const TensorInfo *resolve(const std::string &name,
                            std::vector<std::string> *tried = nullptr) const;

  /// Loads a weight converted to float, checking its shape.
  ///
  /// `name` is a canonical name (resolved as in resolve()) or a stacked-expert
  /// pattern containing `{e}`, e.g.
  /// `model.layers.3.feed_forward.experts.{e}.gate_proj.weight`, meaning the
  /// experts e = 0..E-1 stacked along a new leading axis; `expectedShape`
  /// then starts with E. Per-expert tensors are used when present, else the
  /// transformers-v5 fused tensors `...experts.gate_up_proj` [E, 2I, H] (gate
  /// rows first; with or without a `.weight` suffix) and
  /// `...experts.down_proj` [E, H, I].
  ///
  /// Errors name the checkpoint and the tensor, and give expected and actual
  /// shapes on a mismatch.
  Status loadWeightF32(const std::string &name,
                       const std::vector<int64_t> &expectedShape,
                       std::vector<float> &out) const override;
  /// As loadWeightF32, converting to double.
  Status loadWeightF64(const std::string &name,
                       const std::vector<int64_t> &expectedShape,
                       std::vector<double> &out) const;

  /// Checks, without reading any data, that loadWeightF32(name,
  /// expectedShape) would find its tensors with the right shapes.
  Status checkWeight(const std::string &name,
                     const std::vector<int64_t> &expectedShape) const override;

  /// Finds, without reading any data, where one weight is stored, checking
  /// its shape. With `expert` < 0, `name` is a canonical name (resolved as in
  /// resolve()) and `expectedShape` its shape. With `expert` >= 0, `name` is
  /// a stacked-expert pattern containing `{e}` (as for loadWeightF32) and
  /// `expectedShape` the shape of one expert's matrix, without the leading E:
  /// the per-expert tensor is used when present, else that expert's rows of
  /// the transformers-v5 fused tensor (which must hold config().numExperts
  /// experts). Errors are worded as loadWeightF32's.
  Status locateWeight(const std::string &name,
                      const std::vector<int64_t> &expectedShape,
                      WeightSlice &out, int64_t expert = -1) const;
  /// Loads expert `expert` of a stacked-expert pattern (see locateWeight)
  /// converted to float, reading only that expert's data.
  Status loadExpertWeightF32(const std::string &pattern, int64_t expert,
                             const std::vector<int64_t> &expectedShape,
                             std::vector<float> &out) const override;
  /// The weight's bytes where locateWeight finds it, when its tensor's
  /// dtype is `dtype` (a fused expert tensor's rows of that expert too).
  StatusOr<bool> copyStoredBytes(const std::string &name, int64_t expert,
                                 const std::vector<int64_t> &expectedShape,
                                 DType dtype, uint8_t *dst,
                                 size_t nbytes) const override;

private:
  Checkpoint() = default;

  template <class T>
  Status loadWeight(const std::string &name,
                    const std::vector<int64_t> &expectedShape,
                    std::vector<T> &out, bool convert = true) const;
  template <class T>
  Status loadStacked(const std::string &pattern,
                     const std::vector<int64_t> &expectedShape,
                     std::vector<T> &out, bool convert) const;
  /// The v5 fused tensor holding `pattern`'s weights (gate/up/down of an
  /// `experts.{e}.` pattern), or nullptr; `isUp`/`isDown` say which part.
  const TensorInfo *findFused(const std::string &pattern, bool &isUp,
                              bool &isDown) const;
  template <class T>
  Status loadFused(const std::string &pattern,
                   const std::vector<int64_t> &expectedShape,
                   std::vector<T> &out, bool &found, bool convert) const;

  std::string dir;
  JambaConfig cfg;
  std::vector<std::unique_ptr<SafeTensorsFile>> fileList;
  std::vector<std::string> nameList;
  std::unordered_map<std::string, const TensorInfo *> tensorMap;
};

/// The on-disk tensor names of SPEC.md 1.4 for `config` (per-expert layout,
/// lm_head omitted when tied, biases only when configured), in a stable order:
/// embeddings, then per layer input norm, mixer, pre-FFN norm, FFN, then the
/// final norm and lm_head.
std::vector<std::string> expectedTensorNames(const JambaConfig &config);

/// The shape SPEC.md 1.4 gives `canonicalName` under `config`. Also accepts a
/// `{e}` expert pattern (shape gets a leading E) and the v5 fused names
/// `...experts.gate_up_proj` [E, 2I, H] and `...experts.down_proj` [E, H, I].
/// Errors for names that do not exist in this config (e.g. attention weights
/// of a Mamba layer, a layer index out of range, a bias that is disabled).
StatusOr<std::vector<int64_t>> expectedShape(const JambaConfig &config,
                                             const std::string &canonicalName);

} // namespace ckpt
} // namespace jamba

#endif // JAMBA_CHECKPOINT_CHECKPOINT_H

//===- WeightFiles.h - An artifact's weights from a checkpoint --*- C++ -*-===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// An artifact's weights files hold its checkpoint's tensors in the dtypes
// and shapes its manifest records, each rank's cut as the weight's "from"
// says (WeightOrigin, docs/ArtifactFormat.md). writeWeightFiles makes them
// from a checkpoint: jamba-compile calls it once the manifest is known, and
// jamba-rebind with another checkpoint of the same config, so the two write
// the same bytes from the same checkpoint.
//
// Like the rest of the artifact library it uses only the standard library,
// POSIX and the checkpoint library.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_RUNTIME_WEIGHTFILES_H
#define JAMBA_RUNTIME_WEIGHTFILES_H

#include "jamba/Checkpoint/Checkpoint.h"
#include "jamba/Runtime/Artifact.h"

#include <cstdint>
#include <string>
#include <vector>

namespace jamba {
namespace rt {

/// Stores `values` into `dst` as an artifact weight of `dtype`: F32 as is,
/// BF16 rounded to nearest even (exact for values that were bf16), I8 as the
/// integer each value holds (quantized expert weights). Other dtypes are a
/// precondition violation.
void encodeWeightValues(const std::vector<float> &values, ckpt::DType dtype,
                        uint8_t *dst);

/// The elements of `full` (row-major, of shape `from.shape`) that a Slice
/// origin takes, row-major in the weight's shape, into `out`. Precondition:
/// `from` is a valid Slice of a tensor of `full.size()` elements
/// (validateManifest checks one).
void sliceWeightValues(const std::vector<float> &full, const WeightOrigin &from,
                       std::vector<float> &out);
/// The elements a Slice origin takes (the product of its runs' counts).
size_t sliceElements(const WeightOrigin &from);
/// sliceWeightValues over elements of `elementBytes` bytes each: the
/// elements of `full` (row-major, of shape `from.shape`) that `from` takes,
/// into `out` (sliceElements(from) elements). Same precondition.
void sliceWeightBytes(const uint8_t *full, size_t elementBytes,
                      const WeightOrigin &from, uint8_t *out);

/// Writes every weights file `manifest` names, as `dir`/FILE (the
/// directories created), each holding its weights in the manifest's order
/// with the metadata "format": "jamba-artifact", made from `source` as
/// their "from" says. Every checkpoint tensor is checked (present, of the
/// shape the manifest expects) before anything is written. The files that
/// hold the same tensors (every rank's file of one part of the weights),
/// whatever their order in the manifest, are written together in rounds
/// (ckpt::SafeTensorsWriter::writeFiles), so a tensor that several ranks
/// cut is read once; then the next such batch. A failure can leave the
/// earlier batches' files in `dir` (the callers write into a scratch
/// directory). A stack of experts (`{e}`), whole or cut (expert parallelism
/// takes some experts, tensor parallelism some rows or columns of each), is
/// read expert by expert (WeightReader::loadExpertWeightF32), one expert in
/// memory at a time; each expert is read once for every rank's cut over the
/// same experts, the cuts of the ranks whose turn has not come yet kept in
/// their dtype until then. A weight or expert in the dtype the checkpoint
/// stores it in (a bf16 checkpoint's bf16 weights, a quantized one's int8
/// experts) is copied as stored (WeightReader::copyStoredBytes), or cut
/// from one copy of its stored bytes for all the ranks that cut it, not
/// widened to f32 and narrowed again. Returns the files (artifact paths, in
/// the order of their first weight) with their sizes and SHA-256, taken as they
/// were written. Precondition: validateManifest(manifest).
ckpt::StatusOr<std::vector<FileDesc>>
writeWeightFiles(const ckpt::WeightReader &source,
                 const ArtifactManifest &manifest, const std::string &dir);

} // namespace rt
} // namespace jamba

#endif // JAMBA_RUNTIME_WEIGHTFILES_H

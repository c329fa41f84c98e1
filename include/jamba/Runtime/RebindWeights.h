//===- RebindWeights.h - New weights for a compiled artifact ----*- C++ -*-===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// An artifact's code depends on the model's config, not on its weights. Given
// a compiled artifact (of any number of ranks) and a checkpoint of the same
// config (a fine-tune, or the same seeded random model made on another
// machine), rebindWeights writes a copy of the artifact whose weights come from
// that checkpoint, without recompiling: the weights files are rewritten tensor
// by tensor in the dtypes and shapes the manifest records, each rank's cut as
// the manifest says, as jamba-compile would have written them
// (writeWeightFiles, WeightFiles.h). The source artifact's weights files are
// not read, so an artifact shipped without them (its code alone) can be
// completed where the checkpoint lives. `jamba-rebind` is the command-line
// driver.
//
// Like the rest of the artifact library it uses only the standard library,
// POSIX and the checkpoint library.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_RUNTIME_REBINDWEIGHTS_H
#define JAMBA_RUNTIME_REBINDWEIGHTS_H

#include "jamba/Checkpoint/Status.h"

#include <cstdint>
#include <string>
#include <vector>

namespace jamba {
namespace rt {

/// Options of rebindWeights.
struct RebindOptions {
  /// Replace an existing output directory.
  bool overwrite = false;
  /// Worker threads when the checkpoint must first be quantized (an
  /// ExpertsInt8 artifact and an unquantized checkpoint); 0 = one per
  /// hardware thread.
  int threads = 0;
};

/// Writes to `outDir` the artifact in `artifactDir` with its weights taken
/// from the checkpoint in `checkpointDir`. Checks, before writing anything:
/// the manifest (as Artifact::open does, but the weights files may be
/// absent), every other file against its recorded size and SHA-256, that a
/// multi-rank manifest records its weights' cuts (schema 1.2), the
/// checkpoint's config against the artifact's (every field but torch_dtype;
/// an unquantized checkpoint of an ExpertsInt8 artifact is read quantized,
/// through ckpt::ExpertsInt8Reader, as jamba-compile --experts-int8 does)
/// and every weight's shape. Errors
/// name the artifact, the checkpoint, the field or the tensor at fault.
ckpt::Status rebindWeights(const std::string &artifactDir,
                           const std::string &checkpointDir,
                           const std::string &outDir,
                           const RebindOptions &options = {});

} // namespace rt
} // namespace jamba

#endif // JAMBA_RUNTIME_REBINDWEIGHTS_H

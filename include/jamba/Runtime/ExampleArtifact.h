//===- ExampleArtifact.h - A tiny artifact for tests ------------*- C++ -*-===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// A testing aid: a small, valid artifact with a two-layer model (one Mamba
// layer, one attention layer), a handful of seeded weights and a placeholder
// kernels file that holds no machine code. The unit tests and
// `jamba-dump --write-example` write it, then corrupt copies of it; it is not
// runnable.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_RUNTIME_EXAMPLEARTIFACT_H
#define JAMBA_RUNTIME_EXAMPLEARTIFACT_H

#include "jamba/Runtime/Artifact.h"

#include <string>

namespace jamba {
namespace rt {

/// The example's model: vocab 128, hidden 64, 2 layers (0: Mamba + dense
/// MLP, 1: attention + MoE), 4 heads (2 KV), 4 experts (top 2).
ckpt::JambaConfig exampleConfig();

/// The example's manifest ("files" empty: writeArtifact fills it).
ArtifactManifest exampleManifest();

/// Writes the example artifact into `dir` (which must not exist unless
/// `overwrite`).
Status writeExampleArtifact(const std::string &dir, bool overwrite = false);

} // namespace rt
} // namespace jamba

#endif // JAMBA_RUNTIME_EXAMPLEARTIFACT_H

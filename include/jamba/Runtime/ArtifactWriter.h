//===- ArtifactWriter.h - Writing artifact directories ----------*- C++ -*-===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// Writes an artifact directory (docs/ArtifactFormat.md). The compiler builds
// an ArtifactManifest (without "files") and names the files to put in; the
// writer copies them, records their sizes and SHA-256, writes the canonical
// manifest and then re-opens the result with Artifact::open, so that nothing
// the runtime would refuse is ever left under the final name.
//
// The writer lives in the runtime library because the runtime owns the
// schema (DESIGN.md section 2); it uses only the standard library and POSIX.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_RUNTIME_ARTIFACTWRITER_H
#define JAMBA_RUNTIME_ARTIFACTWRITER_H

#include "jamba/Runtime/Artifact.h"

#include <string>
#include <vector>

namespace jamba {
namespace rt {

/// One file to put into the artifact: copied from `sourcePath`, or, when
/// that is empty, written from `contents`.
struct ArtifactFileSource {
  std::string path; ///< Artifact-relative, e.g. "weights/rank-0.safetensors".
  std::string sourcePath;
  std::string contents;

  static ArtifactFileSource fromFile(std::string path, std::string source) {
    return {std::move(path), std::move(source), {}};
  }
  static ArtifactFileSource fromBytes(std::string path, std::string bytes) {
    return {std::move(path), {}, std::move(bytes)};
  }
};

/// Options for writeArtifact.
struct WriteOptions {
  /// Replace an existing `dir` (else an existing `dir` is an error).
  bool overwrite = false;
};

/// Writes the artifact into `dir`: validates `manifest` (its "files" are
/// ignored and recomputed from `files`, in that order), builds everything
/// in `dir.tmp-PID`, checks it with Artifact::open and renames it into
/// place. Errors name `dir` and the field or file at fault.
Status writeArtifact(const ArtifactManifest &manifest, const std::string &dir,
                     const std::vector<ArtifactFileSource> &files,
                     const WriteOptions &options = {});

} // namespace rt
} // namespace jamba

#endif // JAMBA_RUNTIME_ARTIFACTWRITER_H

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
  /// `sourcePath` is a scratch file the writer may rename into the
  /// artifact instead of copying it (it is then gone); where the rename
  /// fails (another file system), it is copied.
  bool movable = false;
  /// A movable file's size and SHA-256, when its writer took them as it
  /// wrote it (the file is then not read again); empty: not known.
  std::string sha256;
  uint64_t size = 0;

  static ArtifactFileSource fromFile(std::string path, std::string source) {
    ArtifactFileSource file;
    file.path = std::move(path);
    file.sourcePath = std::move(source);
    return file;
  }
  /// A file written for this artifact only: moved in, not copied.
  static ArtifactFileSource fromScratchFile(std::string path,
                                            std::string source) {
    ArtifactFileSource file = fromFile(std::move(path), std::move(source));
    file.movable = true;
    return file;
  }
  /// The same, with its size and SHA-256 as its writer saw them.
  static ArtifactFileSource fromScratchFile(std::string path,
                                            std::string source, uint64_t size,
                                            std::string sha256) {
    ArtifactFileSource file =
        fromScratchFile(std::move(path), std::move(source));
    file.size = size;
    file.sha256 = std::move(sha256);
    return file;
  }
  static ArtifactFileSource fromBytes(std::string path, std::string bytes) {
    ArtifactFileSource file;
    file.path = std::move(path);
    file.contents = std::move(bytes);
    return file;
  }
};

/// Whether the existing `dir` may be replaced (WriteOptions::overwrite),
/// which removes its whole tree: only an artifact's (a `manifest.json`
/// inside), and never one holding the working directory. The error says
/// which, without the directory's name.
Status checkReplaceable(const std::string &dir);

/// A scratch directory for the files of an artifact being written, removed
/// with everything in it when this goes. Created beside the artifact's
/// directory (`<dir>.scratch-XXXXXX`), on its file system, so that its
/// files can be renamed into the artifact: a model's weights are then
/// written once, and the disk never holds two copies of them.
class ScratchDir {
public:
  ScratchDir() = default;
  ScratchDir(const ScratchDir &) = delete;
  ScratchDir &operator=(const ScratchDir &) = delete;
  ~ScratchDir();
  /// Creates it beside `artifactDir` (and the directories above it).
  Status createBeside(const std::string &artifactDir);
  const std::string &path() const { return dir; }

private:
  std::string dir;
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

//===- RebindWeights.cpp - New weights for a compiled artifact ------------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//

#include "jamba/Runtime/RebindWeights.h"

#include "jamba/Checkpoint/Checkpoint.h"
#include "jamba/Checkpoint/Config.h"
#include "jamba/Checkpoint/Json.h"
#include "jamba/Checkpoint/Quantize.h"
#include "jamba/Runtime/Artifact.h"
#include "jamba/Runtime/ArtifactWriter.h"
#include "jamba/Runtime/Sha256.h"
#include "jamba/Runtime/WeightFiles.h"

#include <memory>
#include <set>

#include <unistd.h>

using namespace jamba;
using namespace jamba::rt;
using ckpt::makeError;
using ckpt::Status;

namespace {

/// The first config field (other than torch_dtype) in which `checkpoint`
/// differs from the artifact's `compiled`, as a message; empty if none.
std::string configMismatch(const ckpt::JambaConfig &compiled,
                           const ckpt::JambaConfig &checkpoint) {
  auto parse = [](const ckpt::JambaConfig &c) {
    ckpt::StatusOr<ckpt::JsonValue> json =
        ckpt::parseJson(ckpt::configToJson(c), "config");
    return json.ok() ? std::move(*json) : ckpt::JsonValue::makeObject();
  };
  ckpt::JsonValue a = parse(compiled), b = parse(checkpoint);
  std::set<std::string> keys;
  for (const auto &[key, value] : a.getObject())
    keys.insert(key);
  for (const auto &[key, value] : b.getObject())
    keys.insert(key);
  for (const std::string &key : keys) {
    if (key == "torch_dtype")
      continue;
    const ckpt::JsonValue *x = a.get(key), *y = b.get(key);
    if (x && y && *x == *y)
      continue;
    return "config field '" + key + "': the artifact was compiled for " +
           (x ? ckpt::writeJson(*x) : std::string("no value")) +
           ", the checkpoint has " +
           (y ? ckpt::writeJson(*y) : std::string("no value"));
  }
  return {};
}

} // namespace

Status jamba::rt::rebindWeights(const std::string &artifactDir,
                                const std::string &checkpointDir,
                                const std::string &outDir,
                                const RebindOptions &options) {
  const std::string context = "artifact " + artifactDir;
  auto fail = [&](auto &&...parts) {
    return makeError(context, ": ", std::forward<decltype(parts)>(parts)...);
  };
  if (::access(outDir.c_str(), F_OK) == 0) {
    if (!options.overwrite)
      return makeError(outDir, " already exists (use --force to replace it)");
    if (Status replaceable = checkReplaceable(outDir); !replaceable.ok())
      return makeError(outDir, ": ", replaceable.message());
  }

  // The manifest, checked as Artifact::open checks it.
  std::string text;
  if (Status st = ckpt::readFileToString(artifactDir + "/" + kManifestFileName,
                                         text, kMaxManifestBytes);
      !st.ok())
    return fail("cannot read ", kManifestFileName, ": ", st.message());
  ckpt::StatusOr<ArtifactManifest> parsed = parseManifest(text, context);
  if (!parsed.ok())
    return parsed.status();
  ArtifactManifest manifest = std::move(*parsed);
  JAMBA_CKPT_RETURN_IF_ERROR(validateManifest(manifest, context));
  // Before schema 1.2 the manifest did not record how each rank's weights
  // were cut from the checkpoint.
  if (manifest.ranks != 1 && manifest.version.minor < 2)
    return fail("it has ", manifest.ranks, " ranks and schema ",
                manifest.version.major, ".", manifest.version.minor,
                ", which does not record how their weights were cut from "
                "the checkpoint (1.2 does): recompile it");
  std::set<std::string> weightFiles;
  for (const WeightDesc &w : manifest.weights)
    weightFiles.insert(w.file);

  // Every other file (the kernels, the tokenizer): present and as
  // recorded. The files keep their order, the weights files' slots filled
  // below.
  std::vector<ArtifactFileSource> files;
  for (const FileDesc &f : manifest.files) {
    if (weightFiles.count(f.path)) {
      files.push_back(ArtifactFileSource::fromFile(f.path, ""));
      continue;
    }
    std::string path = artifactDir + "/" + f.path;
    uint64_t size = 0;
    ckpt::StatusOr<std::string> hash = sha256File(path, &size);
    if (!hash.ok())
      return fail("file '", f.path, "': ", hash.status().message());
    if (size != f.size || *hash != f.sha256)
      return fail("file '", f.path, "' has ", size, " bytes and SHA-256 ",
                  *hash, ", the manifest records ", f.size, " and ", f.sha256,
                  " (corrupted or replaced)");
    files.push_back(ArtifactFileSource::fromFile(f.path, path));
  }

  // The checkpoint: quantized as the artifact's weights are, the same
  // config.
  auto opened = ckpt::Checkpoint::open(checkpointDir);
  if (!opened.ok())
    return opened.status();
  std::unique_ptr<ckpt::Checkpoint> source = std::move(*opened);
  std::unique_ptr<ckpt::ExpertsInt8Reader> quantized;
  const ckpt::JambaConfig &compiled = manifest.config;
  if (compiled.quantMethod && !source->config().quantMethod) {
    // Quantized while the weights are written.
    ckpt::QuantizeOptions quantize;
    quantize.denseMlp = compiled.quantDenseMlp;
    quantize.threads = options.threads;
    auto reader = ckpt::ExpertsInt8Reader::open(*source, quantize);
    if (!reader.ok())
      return reader.status();
    quantized = std::move(*reader);
  } else if (!compiled.quantMethod && source->config().quantMethod) {
    return makeError("checkpoint ", checkpointDir, ": it is quantized (",
                     *source->config().quantMethod,
                     "), the artifact's weights are not: rebind an "
                     "unquantized checkpoint");
  }
  const ckpt::WeightReader *src =
      quantized ? static_cast<ckpt::WeightReader *>(quantized.get())
                : source.get();
  if (std::string mismatch = configMismatch(compiled, src->config());
      !mismatch.empty())
    return makeError("checkpoint ", checkpointDir, ": does not match artifact ",
                     artifactDir, ": ", mismatch);

  // The weights, in the manifest's order, dtypes and shapes, every rank's
  // cut as its "from" says; every tensor checked before anything is
  // written.
  ScratchDir scratch;
  JAMBA_CKPT_RETURN_IF_ERROR(scratch.createBeside(outDir));
  ckpt::StatusOr<std::vector<FileDesc>> written =
      writeWeightFiles(*src, manifest, scratch.path());
  if (!written.ok())
    return written.status();
  for (const FileDesc &w : *written)
    for (ArtifactFileSource &file : files)
      if (file.path == w.path)
        file = ArtifactFileSource::fromScratchFile(
            w.path, scratch.path() + "/" + w.path, w.size, w.sha256);

  WriteOptions write;
  write.overwrite = options.overwrite;
  return writeArtifact(manifest, outDir, files, write);
}

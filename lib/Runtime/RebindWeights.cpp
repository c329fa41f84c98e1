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

#include <cassert>
#include <cstring>
#include <memory>
#include <set>

#include <unistd.h>

using namespace jamba;
using namespace jamba::rt;
using ckpt::makeError;
using ckpt::Status;

void jamba::rt::encodeWeightValues(const std::vector<float> &values,
                                   ckpt::DType dtype, uint8_t *dst) {
  switch (dtype) {
  case ckpt::DType::F32:
    std::memcpy(dst, values.data(), values.size() * sizeof(float));
    return;
  case ckpt::DType::BF16:
    ckpt::f32ToBf16Bytes(values.data(), values.size(), dst);
    return;
  case ckpt::DType::I8:
    for (size_t i = 0; i < values.size(); ++i)
      dst[i] = static_cast<uint8_t>(static_cast<int8_t>(values[i]));
    return;
  default:
    assert(false && "artifact weights are f32, bf16 or i8");
  }
}

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
  if (manifest.ranks != 1)
    return fail("it has ", manifest.ranks,
                " ranks, whose weights jamba-compile cut from the checkpoint; "
                "rebinding handles one rank: recompile it instead");
  std::set<std::string> weightFiles;
  for (const WeightDesc &w : manifest.weights)
    weightFiles.insert(w.file);
  if (weightFiles.size() != 1)
    return fail("expected one weights file, the manifest names ",
                weightFiles.size());
  const std::string weightsFile = *weightFiles.begin();

  // Every other file (the kernels, the tokenizer): present and as
  // recorded. The files keep their order, the weights' slot filled below.
  std::vector<ArtifactFileSource> files;
  size_t weightsSlot = 0;
  for (const FileDesc &f : manifest.files) {
    if (f.path == weightsFile) {
      weightsSlot = files.size();
      files.push_back(ArtifactFileSource::fromFile(weightsFile, ""));
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

  // The weights, in the manifest's order, dtypes and shapes; every tensor
  // checked before anything is written.
  for (const WeightDesc &w : manifest.weights) {
    if (w.dtype != ckpt::DType::F32 && w.dtype != ckpt::DType::BF16 &&
        w.dtype != ckpt::DType::I8)
      return fail("weight '", w.name, "' is ", ckpt::dtypeName(w.dtype),
                  "; rebinding writes f32, bf16 and i8 weights");
    JAMBA_CKPT_RETURN_IF_ERROR(src->checkWeight(w.name, w.shape));
  }
  ScratchDir scratch;
  JAMBA_CKPT_RETURN_IF_ERROR(scratch.createBeside(outDir));
  Status loadError = Status::success();
  // One f32 buffer for every tensor: the producers run one at a time.
  std::vector<float> values;
  ckpt::SafeTensorsWriter writer;
  writer.setMetadata("format", "jamba-artifact");
  for (const WeightDesc &w : manifest.weights) {
    JAMBA_CKPT_RETURN_IF_ERROR(writer.addLazy(
        w.name, w.dtype, w.shape,
        [src, &w, &loadError, &values](uint8_t *dst, size_t nbytes) {
          Status st = src->loadWeightF32(w.name, w.shape, values);
          if (!st.ok()) {
            if (loadError.ok())
              loadError = st;
            std::memset(dst, 0, nbytes);
            return;
          }
          encodeWeightValues(values, w.dtype, dst);
        }));
  }
  std::string weightsPath = scratch.path() + "/weights.safetensors";
  JAMBA_CKPT_RETURN_IF_ERROR(writer.write(weightsPath));
  JAMBA_CKPT_RETURN_IF_ERROR(loadError);
  files[weightsSlot] =
      ArtifactFileSource::fromScratchFile(weightsFile, weightsPath);

  WriteOptions write;
  write.overwrite = options.overwrite;
  return writeArtifact(manifest, outDir, files, write);
}

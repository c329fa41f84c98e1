//===- WeightFiles.cpp - An artifact's weights, made from a checkpoint ----===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//

#include "jamba/Runtime/WeightFiles.h"

#include "jamba/Runtime/Sha256.h"

#include <cassert>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>

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

size_t jamba::rt::sliceElements(const WeightOrigin &from) {
  size_t n = 1;
  for (const std::vector<IndexRun> &runs : from.take) {
    size_t taken = 0;
    for (const IndexRun &run : runs)
      taken += static_cast<size_t>(run.count);
    n *= taken;
  }
  return n;
}

void jamba::rt::sliceWeightBytes(const uint8_t *full, size_t elementBytes,
                                 const WeightOrigin &from, uint8_t *out) {
  assert(from.kind == WeightOrigin::Kind::Slice &&
         from.take.size() == from.shape.size());
  const size_t dims = from.shape.size();
  if (dims == 0) {
    std::memcpy(out, full, elementBytes);
    return;
  }
  std::vector<int64_t> strides(dims, 1);
  for (size_t d = dims; d-- > 1;)
    strides[d - 1] = strides[d] * from.shape[d];
  // The leading dimensions' indices, listed; the last dimension's runs are
  // copied whole.
  std::vector<std::vector<int64_t>> lead(dims - 1);
  size_t rows = 1;
  for (size_t d = 0; d + 1 < dims; ++d) {
    for (const IndexRun &run : from.take[d])
      for (int64_t i = 0; i < run.count; ++i)
        lead[d].push_back(run.begin + i);
    rows *= lead[d].size();
  }
  std::vector<size_t> at(dims - 1, 0);
  for (size_t n = 0; n < rows; ++n) {
    int64_t offset = 0;
    for (size_t d = 0; d + 1 < dims; ++d)
      offset += lead[d][at[d]] * strides[d];
    for (const IndexRun &run : from.take.back()) {
      size_t bytes = static_cast<size_t>(run.count) * elementBytes;
      std::memcpy(out,
                  full + static_cast<size_t>(offset + run.begin) * elementBytes,
                  bytes);
      out += bytes;
    }
    // The next index of the leading dimensions, row-major.
    for (size_t d = dims - 1; d-- > 0;) {
      if (++at[d] < lead[d].size())
        break;
      at[d] = 0;
    }
  }
}

void jamba::rt::sliceWeightValues(const std::vector<float> &full,
                                  const WeightOrigin &from,
                                  std::vector<float> &out) {
  out.resize(sliceElements(from));
  if (!out.empty())
    sliceWeightBytes(reinterpret_cast<const uint8_t *>(full.data()),
                     sizeof(float), from,
                     reinterpret_cast<uint8_t *>(out.data()));
}

namespace {

/// The checkpoint tensor the producers loaded last, whole: the files are
/// written in rounds, so the ranks' cuts of one tensor are made one after
/// another from one read (and, with ExpertsInt8, one quantization).
struct LoadedTensor {
  std::string name;
  /// The values as f32, or (`stored`) the checkpoint's bytes of `dtype`.
  std::vector<float> values;
  std::vector<uint8_t> bytes;
  bool stored = false;
  ckpt::DType dtype = ckpt::DType::F32;
};

/// How a stack of experts (`{e}` in its name, E experts along its first
/// dimension) is made expert by expert: the experts it takes, in order, and
/// what it takes of each (the Slice's other dimensions; unset when it takes
/// each expert whole). One expert is in memory at a time instead of the
/// stack: 0.8 GB instead of 12.9 GB of f32 for one of Jamba-1.5-Large's.
struct ExpertCut {
  std::vector<int64_t> experts;
  std::optional<WeightOrigin> ofEach;
};

/// The ExpertCut of a stack of experts made Whole or a Slice (a single
/// rank, expert parallelism, tensor parallelism or both); none for other
/// weights.
std::optional<ExpertCut> expertCut(const WeightDesc &w) {
  if (w.name.find("{e}") == std::string::npos)
    return std::nullopt;
  std::vector<int64_t> shape = w.checkpointShape();
  if (shape.size() < 2)
    return std::nullopt;
  ExpertCut cut;
  if (w.from.kind == WeightOrigin::Kind::Whole) {
    for (int64_t e = 0; e < shape[0]; ++e)
      cut.experts.push_back(e);
    return cut;
  }
  if (w.from.kind != WeightOrigin::Kind::Slice ||
      w.from.take.size() != shape.size())
    return std::nullopt;
  for (const IndexRun &run : w.from.take[0])
    for (int64_t i = 0; i < run.count; ++i)
      cut.experts.push_back(run.begin + i);
  for (size_t d = 1; d < shape.size(); ++d) {
    const std::vector<IndexRun> &runs = w.from.take[d];
    if (runs.size() != 1 || runs[0].begin != 0 || runs[0].count != shape[d]) {
      cut.ofEach = WeightOrigin::slice(
          std::vector<int64_t>(shape.begin() + 1, shape.end()),
          std::vector<std::vector<IndexRun>>(w.from.take.begin() + 1,
                                             w.from.take.end()));
      break;
    }
  }
  return cut;
}

} // namespace

ckpt::StatusOr<std::vector<FileDesc>>
jamba::rt::writeWeightFiles(const ckpt::WeightReader &source,
                            const ArtifactManifest &manifest,
                            const std::string &dir) {
  // Everything the checkpoint must hold, checked before anything is written.
  for (const WeightDesc &w : manifest.weights) {
    if (w.from.kind == WeightOrigin::Kind::Value)
      continue;
    if (w.dtype != ckpt::DType::F32 && w.dtype != ckpt::DType::BF16 &&
        w.dtype != ckpt::DType::I8)
      return makeError("weight '", w.name, "' (rank ", w.rank, ") is ",
                       ckpt::dtypeName(w.dtype),
                       "; a checkpoint gives F32, BF16 and I8 weights");
    JAMBA_CKPT_RETURN_IF_ERROR(source.checkWeight(w.name, w.checkpointShape()));
  }

  std::vector<std::string> files;
  std::map<std::string, size_t> fileIndex;
  for (const WeightDesc &w : manifest.weights)
    if (fileIndex.emplace(w.file, files.size()).second)
      files.push_back(w.file);
  std::vector<ckpt::SafeTensorsWriter> writers(files.size());
  for (ckpt::SafeTensorsWriter &writer : writers)
    writer.setMetadata("format", "jamba-artifact");

  // The stacks of experts made expert by expert, their sizes in bytes, and
  // the weights of each name that are (every rank's cut of one stack).
  const size_t numWeights = manifest.weights.size();
  std::vector<std::optional<ExpertCut>> expertCuts(numWeights);
  std::vector<uint64_t> cutBytes(numWeights, 0);
  std::map<std::string, std::vector<size_t>> cutsOfStack;
  for (size_t i = 0; i < numWeights; ++i) {
    const WeightDesc &w = manifest.weights[i];
    if (!(expertCuts[i] = expertCut(w)))
      continue;
    uint64_t elements = 0;
    if (!ckpt::computeByteSize(w.shape, ckpt::dtypeSize(w.dtype), elements,
                               cutBytes[i]))
      return makeError("weight '", w.name, "' (rank ", w.rank, "): shape ",
                       ckpt::formatShape(w.shape), " is too large");
    cutsOfStack[w.name].push_back(i);
  }

  // The producers run one at a time (SafeTensorsWriter::Producer), so they
  // share the loaded tensor, one expert, one buffer for a slice, and the
  // stacks' cuts made ahead for the ranks whose turn is still to come.
  LoadedTensor loaded;
  std::vector<float> expert, cut;
  std::vector<uint8_t> expertBytes;
  std::vector<bool> produced(numWeights, false);
  std::map<size_t, std::vector<uint8_t>> madeAhead;
  Status loadError = Status::success();
  auto noteError = [&loadError](Status st) {
    if (loadError.ok())
      loadError = std::move(st);
  };
  for (size_t index = 0; index < numWeights; ++index) {
    const WeightDesc &w = manifest.weights[index];
    ckpt::SafeTensorsWriter &writer = writers[fileIndex[w.file]];
    if (w.from.kind == WeightOrigin::Kind::Value) {
      const int64_t value = w.from.value;
      JAMBA_CKPT_RETURN_IF_ERROR(writer.addLazy(
          w.name, w.dtype, w.shape, [value](uint8_t *dst, size_t nbytes) {
            for (size_t i = 0; i + sizeof(value) <= nbytes; i += sizeof(value))
              std::memcpy(dst + i, &value, sizeof(value));
          }));
      continue;
    }
    if (w.from.kind == WeightOrigin::Kind::Zeros) {
      JAMBA_CKPT_RETURN_IF_ERROR(writer.addLazy(
          w.name, w.dtype, w.shape,
          [](uint8_t *dst, size_t nbytes) { std::memset(dst, 0, nbytes); }));
      continue;
    }
    if (expertCuts[index]) {
      // Each expert is read once for this weight and for the other ranks'
      // cuts of the stack over the same experts not made yet (tensor
      // parallelism: every rank's), whose bytes are kept until their turn:
      // a rank's share of the stack in its dtype each, not the stack in f32.
      JAMBA_CKPT_RETURN_IF_ERROR(writer.addLazy(
          w.name, w.dtype, w.shape, [&, index](uint8_t *dst, size_t nbytes) {
            produced[index] = true;
            if (auto ahead = madeAhead.find(index); ahead != madeAhead.end()) {
              std::memcpy(dst, ahead->second.data(),
                          std::min(nbytes, ahead->second.size()));
              madeAhead.erase(ahead);
              return;
            }
            // The last whole tensor is not needed again.
            loaded = LoadedTensor();
            const std::vector<int64_t> &experts = expertCuts[index]->experts;
            std::vector<std::pair<size_t, uint8_t *>> targets{{index, dst}};
            for (size_t other : cutsOfStack[w.name]) {
              if (produced[other] || expertCuts[other]->experts != experts)
                continue;
              std::vector<uint8_t> &bytes = madeAhead[other];
              bytes.assign(cutBytes[other], 0);
              targets.emplace_back(other, bytes.data());
              produced[other] = true;
            }
            std::vector<int64_t> expertShape = w.checkpointShape();
            expertShape.erase(expertShape.begin());
            // Whether each target took its cut of the expert from the
            // expert's stored bytes (it is stored in the target's dtype):
            // copied whole, or cut from one copy of the expert.
            std::vector<bool> copied(targets.size());
            uint64_t expertElements = 1;
            for (int64_t d : expertShape)
              expertElements *= static_cast<uint64_t>(d);
            for (size_t i = 0; i < experts.size(); ++i) {
              Status st = Status::success();
              bool allCopied = true;
              std::optional<ckpt::DType> storedIn;
              for (size_t k = 0; k < targets.size() && st.ok(); ++k) {
                auto [target, bytes] = targets[k];
                copied[k] = false;
                const WeightDesc &t = manifest.weights[target];
                const size_t perExpert = cutBytes[target] / experts.size();
                const size_t esize = ckpt::dtypeSize(t.dtype);
                const std::optional<WeightOrigin> &ofEach =
                    expertCuts[target]->ofEach;
                if (!ofEach) {
                  ckpt::StatusOr<bool> raw = source.copyStoredBytes(
                      w.name, experts[i], expertShape, t.dtype,
                      bytes + i * perExpert, perExpert);
                  if (!raw.ok())
                    st = raw.status();
                  else
                    copied[k] = *raw;
                } else if (sliceElements(*ofEach) * esize == perExpert) {
                  if (storedIn != t.dtype) {
                    storedIn.reset();
                    expertBytes.resize(expertElements * esize);
                    ckpt::StatusOr<bool> raw = source.copyStoredBytes(
                        w.name, experts[i], expertShape, t.dtype,
                        expertBytes.data(), expertBytes.size());
                    if (!raw.ok())
                      st = raw.status();
                    else if (*raw)
                      storedIn = t.dtype;
                  }
                  if (st.ok() && storedIn == t.dtype) {
                    sliceWeightBytes(expertBytes.data(), esize, *ofEach,
                                     bytes + i * perExpert);
                    copied[k] = true;
                  }
                }
                allCopied = allCopied && copied[k];
              }
              if (st.ok() && !allCopied)
                st = source.loadExpertWeightF32(w.name, experts[i], expertShape,
                                                expert);
              for (size_t k = 0; k < targets.size() && !allCopied; ++k) {
                auto [target, bytes] = targets[k];
                if (!st.ok())
                  break;
                if (copied[k])
                  continue;
                const WeightDesc &t = manifest.weights[target];
                const std::optional<WeightOrigin> &ofEach =
                    expertCuts[target]->ofEach;
                if (ofEach)
                  sliceWeightValues(expert, *ofEach, cut);
                const std::vector<float> &values = ofEach ? cut : expert;
                const size_t perExpert = cutBytes[target] / experts.size();
                if (values.size() * ckpt::dtypeSize(t.dtype) != perExpert) {
                  st = makeError("weight '", t.name, "' (rank ", t.rank,
                                 "): expert ", experts[i], " gives ",
                                 values.size(), " elements, not ",
                                 perExpert / ckpt::dtypeSize(t.dtype));
                  break;
                }
                encodeWeightValues(values, t.dtype, bytes + i * perExpert);
              }
              if (!st.ok()) {
                // Every target's bytes zeros; the write then fails.
                noteError(st);
                std::memset(dst, 0, nbytes);
                for (auto [target, bytes] : targets)
                  if (target != index)
                    std::memset(bytes, 0, madeAhead[target].size());
                return;
              }
            }
          }));
      continue;
    }
    JAMBA_CKPT_RETURN_IF_ERROR(writer.addLazy(
        w.name, w.dtype, w.shape,
        [&source, &w, &loaded, &cut, &noteError](uint8_t *dst, size_t nbytes) {
          auto fail = [&](Status st) {
            noteError(std::move(st));
            std::memset(dst, 0, nbytes);
          };
          if (w.from.kind == WeightOrigin::Kind::Whole) {
            // Stored in the weight's dtype: its bytes as they are.
            ckpt::StatusOr<bool> raw = source.copyStoredBytes(
                w.name, /*expert=*/-1, w.checkpointShape(), w.dtype, dst,
                nbytes);
            if (!raw.ok())
              return fail(raw.status());
            if (*raw)
              return;
          } else {
            // A cut of a tensor stored in the weight's dtype: the stored
            // bytes, loaded once for every rank that cuts the tensor.
            bool haveBytes = loaded.name == w.name && loaded.stored &&
                             loaded.dtype == w.dtype;
            bool haveValues = loaded.name == w.name && !loaded.stored;
            uint64_t elements = 0, bytes = 0;
            std::vector<int64_t> shape = w.checkpointShape();
            if (!haveBytes && !haveValues &&
                ckpt::computeByteSize(shape, ckpt::dtypeSize(w.dtype), elements,
                                      bytes)) {
              loaded = LoadedTensor();
              loaded.bytes.resize(bytes);
              ckpt::StatusOr<bool> raw =
                  source.copyStoredBytes(w.name, /*expert=*/-1, shape, w.dtype,
                                         loaded.bytes.data(), bytes);
              if (!raw.ok())
                return fail(raw.status());
              if (*raw) {
                loaded.name = w.name;
                loaded.stored = true;
                loaded.dtype = w.dtype;
                haveBytes = true;
              } else {
                loaded.bytes = std::vector<uint8_t>();
              }
            }
            if (haveBytes) {
              sliceWeightBytes(loaded.bytes.data(), ckpt::dtypeSize(w.dtype),
                               w.from, dst);
              return;
            }
          }
          if (loaded.name != w.name || loaded.stored) {
            loaded = LoadedTensor();
            // Checked above, but the file may still fail to read: remember
            // the first error, and fail once the files are written.
            Status st = source.loadWeightF32(w.name, w.checkpointShape(),
                                             loaded.values);
            if (!st.ok())
              return fail(st);
            loaded.name = w.name;
          }
          if (w.from.kind == WeightOrigin::Kind::Whole) {
            encodeWeightValues(loaded.values, w.dtype, dst);
            return;
          }
          sliceWeightValues(loaded.values, w.from, cut);
          encodeWeightValues(cut, w.dtype, dst);
        }));
  }

  // The files in batches: the files that hold the same tensors (one rank's
  // cut each, e.g. every rank's file of one part of the weights), in the
  // order of their first file, are written together in rounds, so that
  // every rank's cut of a tensor is made from one load of it; each batch is
  // written before the next, so that between an expert stack and its scales
  // (ExpertsInt8Reader keeps the scales of the last stack only) come only
  // the other ranks' cuts of that stack.
  std::vector<std::vector<std::string>> names(files.size());
  for (const WeightDesc &w : manifest.weights)
    names[fileIndex[w.file]].push_back(w.name);
  std::map<std::vector<std::string>, size_t> batchOf;
  std::vector<std::vector<size_t>> batches;
  for (size_t i = 0; i < files.size(); ++i) {
    auto [it, fresh] = batchOf.emplace(names[i], batches.size());
    if (fresh)
      batches.emplace_back();
    batches[it->second].push_back(i);
  }
  // Each file hashed as it is written, not read back.
  std::vector<Sha256> hashers(files.size());
  std::vector<FileDesc> written(files.size());
  for (const std::vector<size_t> &batch : batches) {
    std::vector<const ckpt::SafeTensorsWriter *> order;
    std::vector<std::string> paths;
    std::vector<ckpt::SafeTensorsWriter::ByteSink> sinks;
    for (size_t i : batch) {
      paths.push_back(dir + "/" + files[i]);
      std::error_code ec;
      std::filesystem::create_directories(
          std::filesystem::path(paths.back()).parent_path(), ec);
      if (ec)
        return makeError(paths.back(),
                         ": cannot create the directory: ", ec.message());
      order.push_back(&writers[i]);
      sinks.push_back([&hasher = hashers[i],
                       &file = written[i]](const uint8_t *data, size_t size) {
        hasher.update(data, size);
        file.size += size;
      });
    }
    JAMBA_CKPT_RETURN_IF_ERROR(
        ckpt::SafeTensorsWriter::writeFiles(order, paths, sinks));
    JAMBA_CKPT_RETURN_IF_ERROR(loadError);
  }
  for (size_t i = 0; i < files.size(); ++i) {
    written[i].path = files[i];
    written[i].sha256 = Sha256::toHex(hashers[i].finish());
  }
  return written;
}

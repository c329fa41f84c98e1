//===- Checkpoint.cpp - A Hugging Face Jamba checkpoint directory ---------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//

#include "jamba/Checkpoint/Checkpoint.h"
#include "jamba/Checkpoint/Json.h"
#include "jamba/Checkpoint/Quantize.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>

#include <dirent.h>
#include <sys/stat.h>

using namespace jamba;
using namespace jamba::ckpt;

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

namespace {

std::string joinPath(const std::string &dir, const std::string &name) {
  if (dir.empty())
    return name;
  if (dir.back() == '/')
    return dir + name;
  return dir + "/" + name;
}

bool fileExists(const std::string &path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

bool endsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool startsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

/// Replaces the first occurrence of `from` in `s` by `to`; returns false if
/// there is none.
bool replaceFirst(std::string &s, std::string_view from, std::string_view to) {
  size_t pos = s.find(from);
  if (pos == std::string::npos)
    return false;
  s.replace(pos, from.size(), to);
  return true;
}

/// The `.feed_forward.` <-> `.moe.` variant of `name`, or "" if it has
/// neither component.
std::string moeVariant(const std::string &name) {
  std::string v = name;
  if (replaceFirst(v, ".feed_forward.", ".moe."))
    return v;
  v = name;
  if (replaceFirst(v, ".moe.", ".feed_forward."))
    return v;
  return "";
}

/// True if a shard file name from an index stays inside the directory.
bool isPlainFileName(const std::string &name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find('/') == std::string::npos &&
         name.find('\\') == std::string::npos &&
         name.find('\0') == std::string::npos;
}

std::string quoteList(const std::vector<std::string> &names, size_t from) {
  std::string s;
  for (size_t i = from; i < names.size(); ++i) {
    if (i > from)
      s += ", ";
    s += "'" + names[i] + "'";
  }
  return s;
}

} // namespace

//===----------------------------------------------------------------------===//
// Opening
//===----------------------------------------------------------------------===//

StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::open(const std::string &dir) {
  std::unique_ptr<Checkpoint> ckpt(new Checkpoint());
  ckpt->dir = dir;
  auto fail = [&](auto &&...parts) {
    return makeError("checkpoint ", dir, ": ", parts...);
  };

  struct stat st;
  if (::stat(dir.c_str(), &st) != 0)
    return fail("cannot access directory: ", std::strerror(errno));
  if (!S_ISDIR(st.st_mode))
    return fail("not a directory");

  StatusOr<JambaConfig> config = loadConfig(joinPath(dir, "config.json"));
  if (!config.ok())
    return config.status();
  ckpt->cfg = *config;

  // Opens `fileName` (relative to dir) and appends it to fileList.
  auto openFile =
      [&](const std::string &fileName) -> StatusOr<SafeTensorsFile *> {
    StatusOr<std::unique_ptr<SafeTensorsFile>> file =
        SafeTensorsFile::open(joinPath(dir, fileName));
    if (!file.ok())
      return file.status();
    ckpt->fileList.push_back(std::move(*file));
    return ckpt->fileList.back().get();
  };

  // A tensor name may appear in only one file, whatever the layout.
  std::unordered_map<std::string, const SafeTensorsFile *> owner;
  auto registerFileTensors = [&](const SafeTensorsFile &file) -> Status {
    for (const TensorInfo &t : file.tensors()) {
      auto inserted = owner.emplace(t.name, &file);
      if (!inserted.second)
        return fail("tensor '", t.name, "' appears in both ",
                    inserted.first->second->path(), " and ", file.path());
    }
    return Status::success();
  };

  // Integer weights are ExpertsInt8's, whose per-row scales only a config
  // naming the scheme makes anyone read: without it they would be taken
  // for float weights of -127..127.
  // With the scheme, the row scales multiply every weight of their row: a
  // negative one flips the row's sign, a NaN or infinite one poisons the
  // logits far from the tensor that caused it.
  auto checkQuantizedWeights = [&]() -> Status {
    if (!ckpt->cfg.quantMethod) {
      for (const std::string &name : ckpt->nameList)
        if (ckpt->tensorMap.at(name)->dtype == DType::I8)
          return fail("tensor '", name,
                      "' is I8, but config.json has no quantization_config "
                      "(\"quant_method\": \"experts_int8\"), so its row "
                      "scales would be ignored");
      return Status::success();
    }
    std::vector<float> values;
    for (const std::string &weight : ckpt->nameList) {
      if (ckpt->tensorMap.at(weight)->dtype != DType::I8)
        continue;
      // (A missing scale is reported where the weight is read.)
      std::string name = int8ScaleName(weight);
      auto scale = ckpt->tensorMap.find(name);
      if (scale == ckpt->tensorMap.end())
        continue;
      const TensorInfo &t = *scale->second;
      values.resize(static_cast<size_t>(t.numElements()));
      if (Status st = convertToF32(t, 0, values.size(), values.data());
          !st.ok())
        return fail(st.message());
      for (size_t i = 0; i < values.size(); ++i)
        if (!std::isfinite(values[i]) || values[i] < 0)
          return fail("tensor '", name, "': row scale ", i, " is ", values[i],
                      " (a row scale is finite and not negative)");
    }
    return Status::success();
  };

  std::string indexPath = joinPath(dir, "model.safetensors.index.json");
  if (fileExists(indexPath)) {
    std::string text;
    JAMBA_CKPT_RETURN_IF_ERROR(
        readFileToString(indexPath, text, size_t(256) << 20));
    StatusOr<JsonValue> index = parseJson(text, indexPath);
    if (!index.ok())
      return index.status();
    const JsonValue *weightMap = index->get("weight_map");
    if (!index->isObject() || !weightMap || !weightMap->isObject())
      return makeError(indexPath, ": expected an object with a 'weight_map' "
                                  "object");
    std::unordered_map<std::string, SafeTensorsFile *> opened;
    for (const JsonValue::Member &m : weightMap->getObject()) {
      if (!m.second.isString())
        return makeError(indexPath, ": weight_map entry '", m.first,
                         "': expected a file name string, got ",
                         m.second.kindName());
      const std::string &fileName = m.second.getString();
      if (!isPlainFileName(fileName))
        return makeError(indexPath, ": weight_map entry '", m.first,
                         "': file name '", fileName,
                         "' must be a plain name inside the checkpoint "
                         "directory");
      auto it = opened.find(fileName);
      if (it == opened.end()) {
        StatusOr<SafeTensorsFile *> file = openFile(fileName);
        if (!file.ok())
          return makeError(indexPath, ": weight_map entry '", m.first,
                           "': ", file.status().message());
        JAMBA_CKPT_RETURN_IF_ERROR(registerFileTensors(**file));
        it = opened.emplace(fileName, *file).first;
      }
      const TensorInfo *t = it->second->find(m.first);
      if (!t)
        return makeError(indexPath, ": tensor '", m.first, "' is listed in '",
                         fileName, "' but that file does not contain it");
      ckpt->tensorMap.emplace(m.first, t);
      ckpt->nameList.push_back(m.first);
    }
    JAMBA_CKPT_RETURN_IF_ERROR(checkQuantizedWeights());
    return ckpt;
  }

  std::vector<std::string> fileNames;
  if (fileExists(joinPath(dir, "model.safetensors"))) {
    fileNames.push_back("model.safetensors");
  } else {
    DIR *d = ::opendir(dir.c_str());
    if (!d)
      return fail("cannot list directory: ", std::strerror(errno));
    while (struct dirent *entry = ::readdir(d)) {
      std::string name = entry->d_name;
      if (endsWith(name, ".safetensors") && name != ".safetensors")
        fileNames.push_back(name);
    }
    ::closedir(d);
    std::sort(fileNames.begin(), fileNames.end());
    if (fileNames.empty())
      return fail("no weights found (expected model.safetensors.index.json, "
                  "model.safetensors or *.safetensors)");
  }
  for (const std::string &fileName : fileNames) {
    StatusOr<SafeTensorsFile *> file = openFile(fileName);
    if (!file.ok())
      return file.status();
    JAMBA_CKPT_RETURN_IF_ERROR(registerFileTensors(**file));
    for (const TensorInfo &t : (*file)->tensors()) {
      ckpt->tensorMap.emplace(t.name, &t);
      ckpt->nameList.push_back(t.name);
    }
  }
  JAMBA_CKPT_RETURN_IF_ERROR(checkQuantizedWeights());
  return ckpt;
}

const TensorInfo *Checkpoint::find(std::string_view name) const {
  auto it = tensorMap.find(std::string(name));
  return it == tensorMap.end() ? nullptr : it->second;
}

//===----------------------------------------------------------------------===//
// Name resolution
//===----------------------------------------------------------------------===//

const TensorInfo *Checkpoint::resolve(const std::string &name,
                                      std::vector<std::string> *tried) const {
  std::vector<std::string> candidates{name};
  std::string variant = moeVariant(name);
  if (!variant.empty())
    candidates.push_back(variant);

  // Dense MLP weights stored as a one-expert MoE (community checkpoints).
  static const char *const kProjs[] = {"gate_proj.weight", "up_proj.weight",
                                       "down_proj.weight"};
  for (const char *proj : kProjs) {
    std::string dense = std::string(".feed_forward.") + proj;
    if (startsWith(name, "model.layers.") && endsWith(name, dense)) {
      std::string expert0 = name.substr(0, name.size() - dense.size()) +
                            ".feed_forward.experts.0." + proj;
      candidates.push_back(expert0);
      candidates.push_back(moeVariant(expert0));
    }
  }
  if (name == "lm_head.weight" && cfg.tieWordEmbeddings)
    candidates.push_back("model.embed_tokens.weight");

  for (const std::string &c : candidates) {
    if (tried)
      tried->push_back(c);
    if (const TensorInfo *t = find(c))
      return t;
  }
  return nullptr;
}

template <class T>
static Status convertTo(const TensorInfo &t, size_t first, size_t count,
                        T *out);
template <>
Status convertTo<float>(const TensorInfo &t, size_t first, size_t count,
                        float *out) {
  return convertToF32(t, first, count, out);
}
template <>
Status convertTo<double>(const TensorInfo &t, size_t first, size_t count,
                         double *out) {
  return convertToF64(t, first, count, out);
}

template <class T>
Status Checkpoint::loadWeight(const std::string &name,
                              const std::vector<int64_t> &expectedShape,
                              std::vector<T> &out, bool convert) const {
  out.clear();
  if (name.find("{e}") != std::string::npos)
    return loadStacked(name, expectedShape, out, convert);

  std::vector<std::string> tried;
  const TensorInfo *t = resolve(name, &tried);
  if (!t)
    return makeError("checkpoint ", dir, ": tensor '", name, "' not found",
                     tried.size() > 1
                         ? concat(" (also tried ", quoteList(tried, 1), ")")
                         : std::string());
  std::string stored =
      t->name == name ? std::string() : concat(" (stored as '", t->name, "')");
  if (t->shape != expectedShape)
    return makeError("checkpoint ", dir, ": tensor '", name, "'", stored,
                     ": expected shape ", formatShape(expectedShape), ", got ",
                     formatShape(t->shape));
  if (!convert)
    return Status::success();
  out.resize(static_cast<size_t>(t->numElements()));
  Status st = convertTo(*t, 0, out.size(), out.data());
  if (!st.ok()) {
    out.clear();
    return makeError("checkpoint ", dir, ": ", st.message());
  }
  return Status::success();
}

template <class T>
Status Checkpoint::loadStacked(const std::string &pattern,
                               const std::vector<int64_t> &expectedShape,
                               std::vector<T> &out, bool convert) const {
  size_t pos = pattern.find("{e}");
  if (pattern.find("{e}", pos + 1) != std::string::npos)
    return makeError("checkpoint ", dir, ": tensor pattern '", pattern,
                     "' has more than one '{e}'");
  if (expectedShape.empty() || expectedShape[0] <= 0)
    return makeError("checkpoint ", dir, ": tensor pattern '", pattern,
                     "': expected shape ", formatShape(expectedShape),
                     " must start with a positive number of experts");
  int64_t numExperts = expectedShape[0];
  std::vector<int64_t> perExpertShape(expectedShape.begin() + 1,
                                      expectedShape.end());
  auto nameFor = [&](int64_t e) {
    std::string n = pattern;
    n.replace(pos, 3, std::to_string(e));
    return n;
  };

  std::vector<std::string> tried;
  const TensorInfo *first = resolve(nameFor(0), &tried);
  if (!first) {
    bool found = false;
    JAMBA_CKPT_RETURN_IF_ERROR(
        loadFused(pattern, expectedShape, out, found, convert));
    if (found)
      return Status::success();
    std::string alternatives = quoteList(tried, 1);
    return makeError("checkpoint ", dir, ": tensor '", nameFor(0),
                     "' not found (also tried ", alternatives,
                     alternatives.empty() ? "" : " and ",
                     "the fused transformers-v5 expert tensors)");
  }

  uint64_t perExpert = 0, unusedBytes = 0;
  if (!computeByteSize(perExpertShape, 1, perExpert, unusedBytes))
    return makeError("checkpoint ", dir, ": tensor pattern '", pattern,
                     "': invalid expected shape ", formatShape(expectedShape));
  if (convert)
    out.resize(static_cast<size_t>(perExpert) *
               static_cast<size_t>(numExperts));
  for (int64_t e = 0; e < numExperts; ++e) {
    std::string name = nameFor(e);
    const TensorInfo *t = e == 0 ? first : resolve(name);
    if (!t) {
      out.clear();
      return makeError("checkpoint ", dir, ": tensor '", name,
                       "' not found (expert ", e, " of ", numExperts, ")");
    }
    if (t->shape != perExpertShape) {
      out.clear();
      std::string stored = t->name == name
                               ? std::string()
                               : concat(" (stored as '", t->name, "')");
      return makeError("checkpoint ", dir, ": tensor '", name, "'", stored,
                       ": expected shape ", formatShape(perExpertShape),
                       ", got ", formatShape(t->shape));
    }
    if (!convert)
      continue;
    Status st = convertTo(*t, 0, static_cast<size_t>(perExpert),
                          out.data() + static_cast<size_t>(e) * perExpert);
    if (!st.ok()) {
      out.clear();
      return makeError("checkpoint ", dir, ": ", st.message());
    }
  }
  return Status::success();
}

const TensorInfo *Checkpoint::findFused(const std::string &pattern, bool &isUp,
                                        bool &isDown) const {
  // Only `<prefix>experts.{e}.<proj>[.weight]` with a gate/up/down projection
  // has a fused form.
  static const std::string kExperts = "experts.{e}.";
  size_t pos = pattern.find(kExperts);
  if (pos == std::string::npos)
    return nullptr;
  std::string prefix = pattern.substr(0, pos);
  std::string proj = pattern.substr(pos + kExperts.size());
  if (endsWith(proj, ".weight"))
    proj.resize(proj.size() - 7);
  bool isGate = proj == "gate_proj";
  isUp = proj == "up_proj";
  isDown = proj == "down_proj";
  if (!isGate && !isUp && !isDown)
    return nullptr;

  std::string base =
      prefix + (isDown ? "experts.down_proj" : "experts.gate_up_proj");
  std::vector<std::string> candidates{base, base + ".weight"};
  std::string variant = moeVariant(base);
  if (!variant.empty()) {
    candidates.push_back(variant);
    candidates.push_back(variant + ".weight");
  }
  for (const std::string &c : candidates)
    if (const TensorInfo *t = find(c))
      return t;
  return nullptr;
}

template <class T>
Status Checkpoint::loadFused(const std::string &pattern,
                             const std::vector<int64_t> &expectedShape,
                             std::vector<T> &out, bool &found,
                             bool convert) const {
  found = false;
  if (expectedShape.size() != 3)
    return Status::success();
  bool isUp = false, isDown = false;
  const TensorInfo *t = findFused(pattern, isUp, isDown);
  if (!t)
    return Status::success();
  found = true;

  int64_t numExperts = expectedShape[0], rows = expectedShape[1],
          cols = expectedShape[2];
  std::vector<int64_t> fusedShape = expectedShape;
  if (!isDown)
    fusedShape[1] = 2 * rows;
  if (t->shape != fusedShape)
    return makeError("checkpoint ", dir, ": tensor '", t->name,
                     "' (fused experts for '", pattern, "'): expected shape ",
                     formatShape(fusedShape), ", got ", formatShape(t->shape));
  if (!convert)
    return Status::success();

  // Copy rows [rowOffset, rowOffset + rows) of every expert's fused matrix.
  size_t perExpert = static_cast<size_t>(rows) * static_cast<size_t>(cols);
  size_t fusedPerExpert =
      static_cast<size_t>(fusedShape[1]) * static_cast<size_t>(cols);
  size_t rowOffset = isUp ? static_cast<size_t>(rows) : 0;
  out.resize(perExpert * static_cast<size_t>(numExperts));
  for (int64_t e = 0; e < numExperts; ++e) {
    Status st =
        convertTo(*t,
                  static_cast<size_t>(e) * fusedPerExpert +
                      rowOffset * static_cast<size_t>(cols),
                  perExpert, out.data() + static_cast<size_t>(e) * perExpert);
    if (!st.ok()) {
      out.clear();
      return makeError("checkpoint ", dir, ": ", st.message());
    }
  }
  return Status::success();
}

Status Checkpoint::locateWeight(const std::string &name,
                                const std::vector<int64_t> &expectedShape,
                                WeightSlice &out, int64_t expert) const {
  out = WeightSlice();
  uint64_t numel = 0, unusedBytes = 0;
  if (!computeByteSize(expectedShape, 1, numel, unusedBytes))
    return makeError("checkpoint ", dir, ": tensor '", name,
                     "': invalid expected shape ", formatShape(expectedShape));
  std::string tensorName = name;
  if (expert >= 0) {
    size_t pos = name.find("{e}");
    if (pos == std::string::npos ||
        name.find("{e}", pos + 1) != std::string::npos)
      return makeError("checkpoint ", dir, ": tensor pattern '", name,
                       "' must contain exactly one '{e}'");
    if (expert >= cfg.numExperts)
      return makeError("checkpoint ", dir, ": tensor pattern '", name,
                       "': expert ", expert, " is not in [0, ", cfg.numExperts,
                       ")");
    tensorName.replace(pos, 3, std::to_string(expert));
  }

  std::vector<std::string> tried;
  if (const TensorInfo *t = resolve(tensorName, &tried)) {
    if (t->shape != expectedShape) {
      std::string stored = t->name == tensorName
                               ? std::string()
                               : concat(" (stored as '", t->name, "')");
      return makeError("checkpoint ", dir, ": tensor '", tensorName, "'",
                       stored, ": expected shape ", formatShape(expectedShape),
                       ", got ", formatShape(t->shape));
    }
    out = WeightSlice{t, 0, static_cast<size_t>(numel)};
    return Status::success();
  }

  bool isUp = false, isDown = false;
  const TensorInfo *fused = nullptr;
  if (expert >= 0 && expectedShape.size() == 2)
    fused = findFused(name, isUp, isDown);
  if (!fused) {
    std::string alternatives = quoteList(tried, 1);
    if (expert < 0)
      return makeError(
          "checkpoint ", dir, ": tensor '", tensorName, "' not found",
          alternatives.empty() ? std::string()
                               : concat(" (also tried ", alternatives, ")"));
    return makeError("checkpoint ", dir, ": tensor '", tensorName,
                     "' not found (also tried ", alternatives,
                     alternatives.empty() ? "" : " and ",
                     "the fused transformers-v5 expert tensors)");
  }
  int64_t rows = expectedShape[0], cols = expectedShape[1];
  std::vector<int64_t> fusedShape{cfg.numExperts, isDown ? rows : 2 * rows,
                                  cols};
  if (fused->shape != fusedShape)
    return makeError("checkpoint ", dir, ": tensor '", fused->name,
                     "' (fused experts for '", name, "'): expected shape ",
                     formatShape(fusedShape), ", got ",
                     formatShape(fused->shape));
  size_t perExpert = static_cast<size_t>(numel);
  size_t first = static_cast<size_t>(expert) * (isDown ? 1 : 2) * perExpert +
                 (isUp ? perExpert : 0);
  out = WeightSlice{fused, first, perExpert};
  return Status::success();
}

Status
Checkpoint::loadExpertWeightF32(const std::string &pattern, int64_t expert,
                                const std::vector<int64_t> &expectedShape,
                                std::vector<float> &out) const {
  out.clear();
  if (expert < 0)
    return makeError("checkpoint ", dir, ": tensor pattern '", pattern,
                     "': negative expert index ", expert);
  WeightSlice slice;
  JAMBA_CKPT_RETURN_IF_ERROR(
      locateWeight(pattern, expectedShape, slice, expert));
  out.resize(slice.count);
  Status st = convertToF32(*slice.tensor, slice.first, slice.count, out.data());
  if (!st.ok()) {
    out.clear();
    return makeError("checkpoint ", dir, ": ", st.message());
  }
  return Status::success();
}

WeightReader::~WeightReader() = default;

StatusOr<bool> WeightReader::copyStoredBytes(const std::string &, int64_t,
                                             const std::vector<int64_t> &,
                                             DType, uint8_t *, size_t) const {
  return false;
}

StatusOr<bool>
Checkpoint::copyStoredBytes(const std::string &name, int64_t expert,
                            const std::vector<int64_t> &expectedShape,
                            DType dtype, uint8_t *dst, size_t nbytes) const {
  // A whole stack of experts may be stored as several tensors: the
  // caller converts it (the writers take stacks expert by expert).
  if (expert < 0 && name.find("{e}") != std::string::npos)
    return false;
  WeightSlice slice;
  JAMBA_CKPT_RETURN_IF_ERROR(locateWeight(name, expectedShape, slice, expert));
  const TensorInfo &t = *slice.tensor;
  if (t.dtype != dtype)
    return false;
  size_t esize = dtypeSize(dtype);
  size_t numel = t.nbytes / esize;
  if (slice.first > numel || slice.count > numel - slice.first)
    return makeError("checkpoint ", dir, ": tensor '", t.name,
                     "': element range [", slice.first, ", ",
                     slice.first + slice.count, ") is outside its ", numel,
                     " elements");
  if (slice.count * esize != nbytes)
    return makeError(
        "checkpoint ", dir, ": tensor '", name, "'",
        expert >= 0 ? concat(" (expert ", expert, ")") : std::string(), ": ",
        slice.count * esize, " bytes of ", dtypeName(dtype), ", not ", nbytes);
  std::memcpy(dst, t.data + slice.first * esize, nbytes);
  return true;
}

Status Checkpoint::loadWeightF32(const std::string &name,
                                 const std::vector<int64_t> &expectedShape,
                                 std::vector<float> &out) const {
  return loadWeight(name, expectedShape, out);
}

Status Checkpoint::loadWeightF64(const std::string &name,
                                 const std::vector<int64_t> &expectedShape,
                                 std::vector<double> &out) const {
  return loadWeight(name, expectedShape, out);
}

Status
Checkpoint::checkWeight(const std::string &name,
                        const std::vector<int64_t> &expectedShape) const {
  std::vector<float> unused;
  return loadWeight(name, expectedShape, unused, /*convert=*/false);
}

//===----------------------------------------------------------------------===//
// SPEC.md 1.4 names and shapes
//===----------------------------------------------------------------------===//

std::vector<std::string>
jamba::ckpt::expectedTensorNames(const JambaConfig &c) {
  std::vector<std::string> names;
  names.push_back("model.embed_tokens.weight");
  for (int64_t i = 0; i < c.numHiddenLayers; ++i) {
    std::string p = "model.layers." + std::to_string(i) + ".";
    names.push_back(p + "input_layernorm.weight");
    if (c.isAttentionLayer(i)) {
      for (const char *w : {"q_proj", "k_proj", "v_proj", "o_proj"})
        names.push_back(p + "self_attn." + w + ".weight");
    } else {
      std::string m = p + "mamba.";
      names.push_back(m + "in_proj.weight");
      if (c.mambaProjBias)
        names.push_back(m + "in_proj.bias");
      names.push_back(m + "conv1d.weight");
      if (c.mambaConvBias)
        names.push_back(m + "conv1d.bias");
      names.push_back(m + "x_proj.weight");
      names.push_back(m + "dt_layernorm.weight");
      names.push_back(m + "b_layernorm.weight");
      names.push_back(m + "c_layernorm.weight");
      names.push_back(m + "dt_proj.weight");
      names.push_back(m + "dt_proj.bias");
      names.push_back(m + "A_log");
      names.push_back(m + "D");
      names.push_back(m + "out_proj.weight");
      if (c.mambaProjBias)
        names.push_back(m + "out_proj.bias");
    }
    names.push_back(p + "pre_ff_layernorm.weight");
    std::string f = p + "feed_forward.";
    if (c.isMoELayer(i)) {
      names.push_back(f + "router.weight");
      for (int64_t e = 0; e < c.numExperts; ++e)
        for (const char *w : {"gate_proj", "up_proj", "down_proj"})
          names.push_back(f + "experts." + std::to_string(e) + "." + w +
                          ".weight");
    } else {
      for (const char *w : {"gate_proj", "up_proj", "down_proj"})
        names.push_back(f + w + ".weight");
    }
  }
  names.push_back("model.final_layernorm.weight");
  if (!c.tieWordEmbeddings)
    names.push_back("lm_head.weight");
  return names;
}

/// Parses a non-negative decimal index (no sign, no leading '+', bounded).
static bool parseIndex(std::string_view s, int64_t &out) {
  if (s.empty() || s.size() > 10)
    return false;
  int64_t v = 0;
  for (char ch : s) {
    if (ch < '0' || ch > '9')
      return false;
    v = v * 10 + (ch - '0');
  }
  out = v;
  return true;
}

StatusOr<std::vector<int64_t>>
jamba::ckpt::expectedShape(const JambaConfig &c, const std::string &name) {
  using Shape = std::vector<int64_t>;
  const int64_t h = c.hiddenSize, di = c.dInner(), r = c.mambaDtRank,
                n = c.mambaDState, k = c.mambaDConv, e = c.numExperts,
                im = c.intermediateSize, hd = c.headDim();
  auto unknown = [&](const char *why) {
    return makeError("tensor '", name, "': ", why);
  };
  if (name == "model.embed_tokens.weight")
    return Shape{c.vocabSize, h};
  if (name == "lm_head.weight")
    return Shape{c.vocabSize, h};
  if (name == "model.final_layernorm.weight")
    return Shape{h};

  static const std::string kLayers = "model.layers.";
  if (!startsWith(name, kLayers))
    return unknown("not a Jamba tensor name");
  size_t dot = name.find('.', kLayers.size());
  int64_t layer = 0;
  if (dot == std::string::npos ||
      !parseIndex(
          std::string_view(name).substr(kLayers.size(), dot - kLayers.size()),
          layer))
    return unknown("malformed layer index");
  if (layer >= c.numHiddenLayers)
    return makeError(
        "tensor '", name, "': layer ", layer,
        " is out of range (num_hidden_layers = ", c.numHiddenLayers, ")");
  std::string rest = name.substr(dot + 1);
  if (startsWith(rest, "moe."))
    rest = "feed_forward." + rest.substr(4);

  if (rest == "input_layernorm.weight" || rest == "pre_ff_layernorm.weight")
    return Shape{h};

  if (startsWith(rest, "self_attn.")) {
    if (!c.isAttentionLayer(layer))
      return unknown("attention weight of a Mamba layer");
    std::string w = rest.substr(10);
    if (w == "q_proj.weight")
      return Shape{c.numAttentionHeads * hd, h};
    if (w == "k_proj.weight" || w == "v_proj.weight")
      return Shape{c.numKeyValueHeads * hd, h};
    if (w == "o_proj.weight")
      return Shape{h, c.numAttentionHeads * hd};
    return unknown("unknown attention weight");
  }

  if (startsWith(rest, "mamba.")) {
    if (c.isAttentionLayer(layer))
      return unknown("Mamba weight of an attention layer");
    std::string w = rest.substr(6);
    if (w == "in_proj.weight")
      return Shape{2 * di, h};
    if (w == "in_proj.bias") {
      if (!c.mambaProjBias)
        return unknown("in_proj.bias exists only with mamba_proj_bias");
      return Shape{2 * di};
    }
    if (w == "conv1d.weight")
      return Shape{di, 1, k};
    if (w == "conv1d.bias") {
      if (!c.mambaConvBias)
        return unknown("conv1d.bias exists only with mamba_conv_bias");
      return Shape{di};
    }
    if (w == "x_proj.weight")
      return Shape{r + 2 * n, di};
    if (w == "dt_layernorm.weight")
      return Shape{r};
    if (w == "b_layernorm.weight" || w == "c_layernorm.weight")
      return Shape{n};
    if (w == "dt_proj.weight")
      return Shape{di, r};
    if (w == "dt_proj.bias" || w == "D")
      return Shape{di};
    if (w == "A_log")
      return Shape{di, n};
    if (w == "out_proj.weight")
      return Shape{h, di};
    if (w == "out_proj.bias") {
      if (!c.mambaProjBias)
        return unknown("out_proj.bias exists only with mamba_proj_bias");
      return Shape{h};
    }
    return unknown("unknown Mamba weight");
  }

  if (startsWith(rest, "feed_forward.")) {
    std::string w = rest.substr(13);
    auto projShape = [&](const std::string &proj, Shape &out) {
      if (proj == "gate_proj.weight" || proj == "up_proj.weight") {
        out = {im, h};
        return true;
      }
      if (proj == "down_proj.weight") {
        out = {h, im};
        return true;
      }
      return false;
    };
    Shape s;
    if (!c.isMoELayer(layer)) {
      if (projShape(w, s))
        return s;
      return unknown("unknown dense-MLP weight (layer is not an MoE layer)");
    }
    if (w == "router.weight")
      return Shape{e, h};
    if (w == "experts.gate_up_proj" || w == "experts.gate_up_proj.weight")
      return Shape{e, 2 * im, h};
    if (w == "experts.down_proj" || w == "experts.down_proj.weight")
      return Shape{e, h, im};
    if (startsWith(w, "experts.")) {
      size_t d = w.find('.', 8);
      if (d == std::string::npos)
        return unknown("malformed expert weight name");
      std::string idx = w.substr(8, d - 8);
      if (!projShape(w.substr(d + 1), s))
        return unknown("unknown expert weight");
      if (idx == "{e}") {
        s.insert(s.begin(), e);
        return s;
      }
      int64_t expert = 0;
      if (!parseIndex(idx, expert) || expert >= e)
        return makeError("tensor '", name, "': expert index '", idx,
                         "' is not in [0, ", e, ")");
      return s;
    }
    return unknown("unknown MoE weight");
  }
  return unknown("unknown layer weight");
}

//===- RandomCheckpoint.cpp - Seeded random Jamba checkpoints -------------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//

#include "jamba/Checkpoint/RandomCheckpoint.h"

#include "jamba/Checkpoint/Checkpoint.h"
#include "jamba/Checkpoint/Json.h"
#include "jamba/Checkpoint/Tokenizer.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace jamba::ckpt;

namespace {

//===----------------------------------------------------------------------===//
// Deterministic random numbers
//===----------------------------------------------------------------------===//

uint64_t fnv1a(const std::string &s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

/// splitmix64 stream with Box-Muller normals.
class Rng {
public:
  static constexpr uint64_t kGamma = 0x9E3779B97F4A7C15ull;

  explicit Rng(uint64_t seed) : state(seed) {}

  /// Moves the stream `draws` outputs of next() ahead: splitmix64's state is
  /// a counter, so this is O(1) and a chunk of a tensor can be generated
  /// without the values before it. Drops a pending Box-Muller spare.
  void skip(uint64_t draws) {
    state += draws * kGamma;
    hasSpare = false;
  }

  uint64_t next() {
    uint64_t z = (state += kGamma);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  /// Uniform in (0, 1].
  double uniform() {
    return (static_cast<double>(next() >> 11) + 1.0) * 0x1.0p-53;
  }
  double normal() {
    if (hasSpare) {
      hasSpare = false;
      return spare;
    }
    double u1 = uniform(), u2 = uniform();
    double radius = std::sqrt(-2.0 * std::log(u1));
    double angle = 2.0 * M_PI * u2;
    spare = radius * std::sin(angle);
    hasSpare = true;
    return radius * std::cos(angle);
  }

private:
  uint64_t state;
  bool hasSpare = false;
  double spare = 0.0;
};

//===----------------------------------------------------------------------===//
// Weight generation
//===----------------------------------------------------------------------===//

/// Runs `body(begin, end)` over [0, numel) in chunks on up to `threads`
/// threads (0: one per hardware thread). Chunks start at even indices, so
/// that no Box-Muller pair is split between two of them.
void parallelChunks(size_t numel, int threads,
                    const std::function<void(size_t, size_t)> &body) {
  constexpr size_t kMinChunk = size_t(1) << 18;
  size_t workers = threads > 0
                       ? static_cast<size_t>(threads)
                       : std::max(1u, std::thread::hardware_concurrency());
  workers = std::min(workers, (numel + kMinChunk - 1) / kMinChunk);
  if (workers <= 1) {
    body(0, numel);
    return;
  }
  size_t chunk = ((numel + workers - 1) / workers + 1) & ~size_t(1);
  std::vector<std::thread> pool;
  for (size_t begin = chunk; begin < numel; begin += chunk)
    pool.emplace_back(body, begin, std::min(numel, begin + chunk));
  body(0, std::min(numel, chunk));
  for (std::thread &t : pool)
    t.join();
}

struct Generator {
  const JambaConfig &config;
  uint64_t seed;
  /// Threads per tensor (RandomCheckpointOptions::threads); the values do
  /// not depend on it.
  int threads = 0;

  /// Generates the values of the per-expert / plain tensor `name` with
  /// `numel` elements, row-major. Element i takes draw i of the tensor's
  /// stream (uniform fills) or the pair of draws 2*(i/2), 2*(i/2)+1 (normal
  /// fills, cosine for even i, sine for odd i).
  std::vector<float> generate(const std::string &name, size_t numel) const {
    Rng start(seed ^ (fnv1a(name) * Rng::kGamma));
    start.next();
    std::vector<float> v(numel);
    auto endsWith = [&](const char *suffix) {
      size_t n = std::strlen(suffix);
      return name.size() >= n && name.compare(name.size() - n, n, suffix) == 0;
    };
    // Fills v[begin, end) from `rng`, positioned at draw `begin`.
    std::function<void(Rng &, size_t, size_t)> fill;
    auto normal = [&v](double mean, double std) {
      return [&v, mean, std](Rng &rng, size_t begin, size_t end) {
        for (size_t i = begin; i < end; ++i)
          v[i] = static_cast<float>(mean + std * rng.normal());
      };
    };
    if (endsWith("layernorm.weight")) {
      fill = normal(1.0, 0.1);
    } else if (endsWith("router.weight")) {
      fill =
          normal(0.0, 1.0 / std::sqrt(static_cast<double>(config.hiddenSize)));
    } else if (endsWith("x_proj.weight")) {
      fill = normal(0.0, 1.0 / std::sqrt(static_cast<double>(config.dInner())));
    } else if (endsWith("dt_proj.weight")) {
      double bound = 1.0 / std::sqrt(static_cast<double>(config.mambaDtRank));
      fill = [&v, bound](Rng &rng, size_t begin, size_t end) {
        for (size_t i = begin; i < end; ++i)
          v[i] = static_cast<float>(bound * (2.0 * rng.uniform() - 1.0));
      };
    } else if (endsWith("dt_proj.bias")) {
      fill = [&v](Rng &rng, size_t begin, size_t end) {
        const double lo = std::log(1e-3), hi = std::log(1e-1);
        for (size_t i = begin; i < end; ++i) {
          double dt = std::exp(lo + (hi - lo) * rng.uniform());
          // softplus^-1(dt) = dt + log(1 - exp(-dt)).
          v[i] = static_cast<float>(dt + std::log(-std::expm1(-dt)));
        }
      };
    } else if (endsWith("A_log")) {
      size_t n = static_cast<size_t>(config.mambaDState);
      fill = [&v, n](Rng &, size_t begin, size_t end) {
        for (size_t i = begin; i < end; ++i)
          v[i] = static_cast<float>(std::log(static_cast<double>(i % n + 1)));
      };
    } else if (endsWith("mamba.D")) {
      fill = normal(1.0, 0.02);
    } else if (endsWith("conv1d.weight")) {
      fill = normal(0.0, 0.2);
    } else {
      // Embeddings, lm_head, projections, MLP/expert weights and biases.
      fill = normal(0.0, 0.02);
    }
    parallelChunks(numel, threads, [&](size_t begin, size_t end) {
      Rng rng = start;
      rng.skip(begin);
      fill(rng, begin, end);
    });
    return v;
  }
};

/// Stores `values` into `dst` as `dtype` (F32 or BF16).
void store(const std::vector<float> &values, DType dtype, uint8_t *dst) {
  if (dtype == DType::F32) {
    std::memcpy(dst, values.data(), values.size() * 4);
    return;
  }
  for (size_t i = 0; i < values.size(); ++i) {
    uint16_t b = f32ToBf16(values[i]);
    std::memcpy(dst + 2 * i, &b, 2);
  }
}

/// One tensor to write: its name, shape and a producer of its bytes.
struct PlannedTensor {
  std::string name;
  std::vector<int64_t> shape;
  uint64_t nbytes;
  SafeTensorsWriter::Producer producer;
};

size_t product(const std::vector<int64_t> &shape) {
  size_t n = 1;
  for (int64_t d : shape)
    n *= static_cast<size_t>(d);
  return n;
}

std::string joinPath(const std::string &dir, const std::string &name) {
  return !dir.empty() && dir.back() == '/' ? dir + name : dir + "/" + name;
}

Status writeTextFile(const std::string &path, const std::string &text) {
  std::string tmp = path + ".tmp";
  FILE *f = std::fopen(tmp.c_str(), "wb");
  if (!f)
    return makeError(tmp, ": cannot create: ", std::strerror(errno));
  bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  ok = std::fclose(f) == 0 && ok;
  if (!ok) {
    std::remove(tmp.c_str());
    return makeError(tmp, ": write failed");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return makeError(path, ": cannot rename from ", tmp);
  }
  return Status::success();
}

std::string shardName(int64_t k, int64_t n) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "model-%05lld-of-%05lld.safetensors",
                static_cast<long long>(k), static_cast<long long>(n));
  return buf;
}

/// Removes weight files of an earlier run that this run does not overwrite.
void removeStaleWeights(const std::string &dir,
                        const std::vector<std::string> &keep) {
  DIR *d = ::opendir(dir.c_str());
  if (!d)
    return;
  std::vector<std::string> stale;
  while (struct dirent *e = ::readdir(d)) {
    std::string name = e->d_name;
    bool ours = name == "model.safetensors" ||
                name == "model.safetensors.index.json" ||
                (name.rfind("model-", 0) == 0 &&
                 name.find("-of-") != std::string::npos && name.size() > 12 &&
                 name.compare(name.size() - 12, 12, ".safetensors") == 0);
    bool kept = false;
    for (const std::string &k : keep)
      kept = kept || k == name;
    if (ours && !kept)
      stale.push_back(name);
  }
  ::closedir(d);
  for (const std::string &name : stale)
    ::unlink(joinPath(dir, name).c_str());
}

} // namespace

Status
jamba::ckpt::writeRandomCheckpoint(const JambaConfig &source,
                                   const std::string &outDir,
                                   const RandomCheckpointOptions &options) {
  if (options.dtype != DType::F32 && options.dtype != DType::BF16)
    return makeError("random checkpoints are f32 or bf16, not ",
                     dtypeName(options.dtype));
  if (options.shards < 1)
    return makeError("the shard count must be positive");
  JambaConfig config = source;
  config.torchDtype = options.dtype == DType::F32 ? "float32" : "bfloat16";

  if (::mkdir(outDir.c_str(), 0755) != 0 && errno != EEXIST)
    return makeError(outDir,
                     ": cannot create directory: ", std::strerror(errno));
  struct stat dirStat;
  if (::stat(outDir.c_str(), &dirStat) != 0 || !S_ISDIR(dirStat.st_mode))
    return makeError(outDir, ": not a directory");

  // Plan every tensor in SPEC order; in the fused layout, replace each MoE
  // layer's per-expert weights by the two fused tensors at the position of
  // its first expert weight.
  Generator gen{config, options.seed, options.threads};
  const DType dtype = options.dtype;
  const size_t esize = dtypeSize(dtype);
  std::vector<PlannedTensor> plan;
  for (const std::string &name : expectedTensorNames(config)) {
    std::string fusedPrefix;
    size_t expertsPos = name.find(".feed_forward.experts.");
    if (options.fusedExperts && expertsPos != std::string::npos) {
      std::string prefix =
          name.substr(0, expertsPos) + ".feed_forward.experts.";
      if (name != prefix + "0.gate_proj.weight")
        continue; // Covered by the fused tensors planned at expert 0.
      const int64_t numExperts = config.numExperts;
      const size_t rows = static_cast<size_t>(config.intermediateSize);
      const size_t cols = static_cast<size_t>(config.hiddenSize);
      std::string base = prefix;
      plan.push_back(PlannedTensor{
          prefix + "gate_up_proj",
          {numExperts, 2 * config.intermediateSize, config.hiddenSize},
          0,
          [gen, base, numExperts, rows, cols, dtype, esize](uint8_t *dst,
                                                            size_t) {
            size_t block = rows * cols;
            for (int64_t e = 0; e < numExperts; ++e) {
              std::string p = base + std::to_string(e) + ".";
              store(gen.generate(p + "gate_proj.weight", block), dtype,
                    dst + (2 * e) * block * esize);
              store(gen.generate(p + "up_proj.weight", block), dtype,
                    dst + (2 * e + 1) * block * esize);
            }
          }});
      plan.push_back(PlannedTensor{
          prefix + "down_proj",
          {numExperts, config.hiddenSize, config.intermediateSize},
          0,
          [gen, base, numExperts, rows, cols, dtype, esize](uint8_t *dst,
                                                            size_t) {
            size_t block = rows * cols;
            for (int64_t e = 0; e < numExperts; ++e)
              store(gen.generate(base + std::to_string(e) + ".down_proj.weight",
                                 block),
                    dtype, dst + e * block * esize);
          }});
      continue;
    }
    StatusOr<std::vector<int64_t>> shape = expectedShape(config, name);
    if (!shape.ok())
      return makeError("internal error: ", shape.status().message());
    size_t numel = product(*shape);
    plan.push_back(PlannedTensor{
        name, *shape, 0, [gen, name, numel, dtype](uint8_t *dst, size_t) {
          store(gen.generate(name, numel), dtype, dst);
        }});
  }
  uint64_t totalBytes = 0;
  for (PlannedTensor &t : plan) {
    t.nbytes = product(t.shape) * esize;
    totalBytes += t.nbytes;
  }
  if (options.shards > static_cast<int64_t>(plan.size()))
    return makeError("cannot split ", plan.size(), " tensors into ",
                     options.shards, " shards");

  // Split in order into shards of about equal size, none empty.
  std::vector<int64_t> shardOf(plan.size());
  {
    int64_t cur = 0;
    uint64_t cum = 0;
    size_t inCur = 0;
    for (size_t j = 0; j < plan.size(); ++j) {
      int64_t shardsLeft = options.shards - 1 - cur;
      uint64_t target = static_cast<uint64_t>(
          (static_cast<long double>(totalBytes) * (cur + 1)) / options.shards);
      if (inCur > 0 && shardsLeft > 0 &&
          (cum >= target ||
           static_cast<int64_t>(plan.size() - j) == shardsLeft)) {
        ++cur;
        inCur = 0;
      }
      shardOf[j] = cur;
      cum += plan[j].nbytes;
      ++inCur;
    }
  }

  std::vector<std::string> fileNames;
  for (int64_t k = 0; k < options.shards; ++k)
    fileNames.push_back(options.shards == 1 ? "model.safetensors"
                                            : shardName(k + 1, options.shards));

  JsonValue weightMap = JsonValue::makeObject();
  for (int64_t k = 0; k < options.shards; ++k) {
    SafeTensorsWriter writer;
    writer.setMetadata("format", "pt");
    for (size_t j = 0; j < plan.size(); ++j) {
      if (shardOf[j] != k)
        continue;
      Status st =
          writer.addLazy(plan[j].name, dtype, plan[j].shape, plan[j].producer);
      if (!st.ok())
        return st;
      weightMap.getObject().emplace_back(plan[j].name,
                                         JsonValue::makeString(fileNames[k]));
    }
    Status st = writer.write(joinPath(outDir, fileNames[k]));
    if (!st.ok())
      return st;
  }

  std::vector<std::string> keep = fileNames;
  if (options.shards > 1) {
    JsonValue index = JsonValue::makeObject();
    JsonValue metadata = JsonValue::makeObject();
    metadata.set("total_size",
                 JsonValue::makeInt(static_cast<int64_t>(totalBytes)));
    index.set("metadata", std::move(metadata));
    index.set("weight_map", std::move(weightMap));
    Status st = writeTextFile(joinPath(outDir, "model.safetensors.index.json"),
                              writeJson(index, 2) + "\n");
    if (!st.ok())
      return st;
    keep.push_back("model.safetensors.index.json");
  }
  removeStaleWeights(outDir, keep);

  Status st =
      writeTextFile(joinPath(outDir, "config.json"), configToJson(config));
  if (!st.ok())
    return st;
  return writeTextFile(joinPath(outDir, kTokenizerFileName),
                       randomCheckpointTokenizerJson(config));
}
std::string
jamba::ckpt::randomCheckpointTokenizerJson(const JambaConfig &config) {
  const int64_t vocab = config.vocabSize;
  std::vector<std::string> tokens(
      static_cast<size_t>(std::max<int64_t>(0, vocab)));
  auto obj = [](std::initializer_list<std::pair<const char *, JsonValue>> m) {
    JsonValue o = JsonValue::makeObject();
    for (const auto &[key, value] : m)
      o.set(key, value);
    return o;
  };
  auto str = [](const std::string &s) { return JsonValue::makeString(s); };

  // The config's special ids, as special added tokens.
  JsonValue added = JsonValue::makeArray();
  auto special = [&](std::optional<int64_t> id, const std::string &content) {
    if (!id || *id < 0 || *id >= vocab || !tokens[size_t(*id)].empty())
      return;
    tokens[size_t(*id)] = content;
    added.push(obj({{"id", JsonValue::makeInt(*id)},
                    {"content", str(content)},
                    {"single_word", JsonValue::makeBool(false)},
                    {"lstrip", JsonValue::makeBool(false)},
                    {"rstrip", JsonValue::makeBool(false)},
                    {"normalized", JsonValue::makeBool(false)},
                    {"special", JsonValue::makeBool(true)}}));
  };
  special(config.padTokenId, "<|pad|>");
  special(config.bosTokenId, "<|startoftext|>");
  for (size_t k = 0; k < config.eosTokenIds.size(); ++k)
    special(config.eosTokenIds[k],
            k == 0 ? "<|endoftext|>" : "<|eos_" + std::to_string(k) + "|>");

  // The free ids in order: <|unk|>, "▁", the printable ASCII characters,
  // the 256 byte tokens when they all fit, the merges, then fillers.
  int64_t next = 0;
  auto place = [&](const std::string &content) {
    while (next < vocab && !tokens[size_t(next)].empty())
      ++next;
    if (next >= vocab)
      return false;
    tokens[size_t(next)] = content;
    return true;
  };
  const std::string space = "\xE2\x96\x81"; // U+2581, SentencePiece's space.
  const bool haveUnk = place("<|unk|>");
  place(space);
  for (char c = '!'; c <= '~'; ++c)
    place(std::string(1, c));
  const bool byteFallback =
      vocab - std::count_if(tokens.begin(), tokens.end(),
                            [](const std::string &t) { return !t.empty(); }) >=
      256;
  if (byteFallback)
    for (int b = 0; b < 256; ++b) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
      place(buf);
    }
  // Common English pairs; each part is a character or an earlier merge.
  const std::string s = space;
  const std::pair<std::string, std::string> kMerges[] = {
      {s, "t"}, {"h", "e"}, {s + "t", "he"}, {"i", "n"}, {"e", "r"}, {"a", "n"},
      {s, "a"}, {"o", "n"}, {"r", "e"},      {"e", "n"}, {s, "s"},   {"o", "r"},
      {s, "w"}, {"a", "t"}, {"e", "s"},      {s, "o"},   {"i", "s"}, {"i", "t"},
      {s, "b"}, {s, "c"},   {"e", "d"},      {s, "f"},   {"a", "l"}, {"o", "u"},
      {s, "m"}, {s, "p"},   {"a", "r"},      {"n", "g"}, {"in", "g"}};
  JsonValue merges = JsonValue::makeArray();
  for (const auto &[left, right] : kMerges) {
    if (!place(left + right))
      break;
    merges.push(str(left + " " + right));
  }
  for (int64_t k = 0; place("<|extra_" + std::to_string(k) + "|>"); ++k) {
  }

  JsonValue vocabJson = JsonValue::makeObject();
  for (size_t id = 0; id < tokens.size(); ++id)
    vocabJson.getObject().push_back(
        {tokens[id], JsonValue::makeInt(static_cast<int64_t>(id))});

  JsonValue single = JsonValue::makeArray();
  JsonValue specials = JsonValue::makeObject();
  if (config.bosTokenId && *config.bosTokenId >= 0 &&
      *config.bosTokenId < vocab) {
    const std::string &bos = tokens[size_t(*config.bosTokenId)];
    single.push(
        obj({{"SpecialToken",
              obj({{"id", str(bos)}, {"type_id", JsonValue::makeInt(0)}})}}));
    specials.set(bos, obj({{"id", str(bos)},
                           {"ids", JsonValue::makeArray({JsonValue::makeInt(
                                       *config.bosTokenId)})},
                           {"tokens", JsonValue::makeArray({str(bos)})}}));
  }
  single.push(obj({{"Sequence", obj({{"id", str("A")},
                                     {"type_id", JsonValue::makeInt(0)}})}}));
  auto replace = [&](const std::string &from, const std::string &to) {
    return obj({{"type", str("Replace")},
                {"pattern", obj({{"String", str(from)}})},
                {"content", str(to)}});
  };

  JsonValue doc = obj(
      {{"version", str("1.0")},
       {"truncation", JsonValue()},
       {"padding", JsonValue()},
       {"added_tokens", added},
       {"normalizer", obj({{"type", str("Sequence")},
                           {"normalizers", JsonValue::makeArray(
                                               {obj({{"type", str("Prepend")},
                                                     {"prepend", str(space)}}),
                                                replace(" ", space)})}})},
       {"pre_tokenizer", JsonValue()},
       {"post_processor", obj({{"type", str("TemplateProcessing")},
                               {"single", single},
                               {"pair", JsonValue::makeArray()},
                               {"special_tokens", specials}})},
       {"decoder",
        obj({{"type", str("Sequence")},
             {"decoders",
              JsonValue::makeArray(
                  {replace(space, " "), obj({{"type", str("ByteFallback")}}),
                   obj({{"type", str("Fuse")}}),
                   obj({{"type", str("Strip")},
                        {"content", str(" ")},
                        {"start", JsonValue::makeInt(1)},
                        {"stop", JsonValue::makeInt(0)}})})}})},
       {"model", obj({{"type", str("BPE")},
                      {"dropout", JsonValue()},
                      {"unk_token", haveUnk ? str("<|unk|>") : JsonValue()},
                      {"continuing_subword_prefix", JsonValue()},
                      {"end_of_word_suffix", JsonValue()},
                      {"fuse_unk", JsonValue::makeBool(true)},
                      {"byte_fallback", JsonValue::makeBool(byteFallback)},
                      {"vocab", vocabJson},
                      {"merges", merges}})}});
  return writeJson(doc, 2) + "\n";
}

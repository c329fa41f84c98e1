//===- Quantize.cpp - ExpertsInt8 quantization of checkpoints -------------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//

#include "jamba/Checkpoint/Quantize.h"

#include "jamba/Checkpoint/Tokenizer.h"

#include "jamba/Checkpoint/SafeTensors.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace jamba;
using namespace jamba::ckpt;

//===----------------------------------------------------------------------===//
// Per-row quantization
//===----------------------------------------------------------------------===//

float jamba::ckpt::int8ScaleFor(float absMax, ScaleRule rule) {
  if (rule == ScaleRule::CudaReciprocal) {
    // PyTorch computes the reciprocal in double and rounds it to the f32
    // operation type (older releases divide in f32; both give fl(1/127)).
    const float inv = static_cast<float>(1.0 / 127.0);
    return absMax * inv;
  }
  return absMax / 127.0f;
}

namespace {

/// Quantizes one finite row with a non-zero scale. The quotient is clamped
/// to [-127, 127] before rounding, which gives the same result as rounding
/// first (the bounds are integers and rounding is monotonic); inside that
/// range adding and subtracting 1.5 * 2^23 rounds to an integer in the
/// current rounding mode (to nearest even by default), exactly as nearbyint,
/// and the loop vectorizes.
void quantizeRow(const float *w, int64_t cols, float scale, int8_t *q) {
  const float kMagic = 12582912.0f; // 1.5 * 2^23
  for (int64_t k = 0; k < cols; ++k) {
    float x = w[k] / scale;
    x = x < -127.0f ? -127.0f : x;
    x = x > 127.0f ? 127.0f : x;
    x = (x + kMagic) - kMagic;
    q[k] = static_cast<int8_t>(static_cast<int32_t>(x));
  }
}

/// Largest |w[k]|; `finite` is cleared if the row holds a NaN or infinity.
float rowAbsMax(const float *w, int64_t cols, bool &finite) {
  float m = 0.0f;
  bool bad = false;
  for (int64_t k = 0; k < cols; ++k) {
    float a = std::fabs(w[k]);
    bad |= !(a <= 3.40282347e+38f);
    m = a > m ? a : m;
  }
  finite = !bad;
  return m;
}

/// Runs fn(begin, end) over [0, n) split into `threads` contiguous parts.
template <class Fn> void parallelFor(int64_t n, int threads, Fn fn) {
  if (threads <= 0)
    threads =
        static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int64_t parts = std::min<int64_t>(threads, n);
  if (parts <= 1) {
    if (n > 0)
      fn(int64_t(0), n);
    return;
  }
  std::vector<std::thread> workers;
  workers.reserve(static_cast<size_t>(parts - 1));
  int64_t chunk = n / parts, extra = n % parts, begin = 0;
  int64_t firstEnd = 0;
  for (int64_t p = 0; p < parts; ++p) {
    int64_t end = begin + chunk + (p < extra ? 1 : 0);
    if (p == 0)
      firstEnd = end;
    else
      workers.emplace_back(fn, begin, end);
    begin = end;
  }
  fn(int64_t(0), firstEnd);
  for (std::thread &t : workers)
    t.join();
}

} // namespace

int64_t jamba::ckpt::quantizeRowsInt8(const float *w, int64_t rows,
                                      int64_t cols, int8_t *q, float *scales,
                                      ScaleRule rule) {
  int64_t badRows = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float *row = w + r * cols;
    int8_t *qrow = q + r * cols;
    bool finite = true;
    float scale = int8ScaleFor(rowAbsMax(row, cols, finite), rule);
    if (!finite)
      ++badRows;
    if (!finite || scale == 0.0f) {
      scales[r] = 1.0f;
      std::memset(qrow, 0, static_cast<size_t>(cols));
      continue;
    }
    scales[r] = scale;
    quantizeRow(row, cols, scale, qrow);
  }
  return badRows;
}

int64_t jamba::ckpt::quantizeRowsInt8Bf16(const uint16_t *w, int64_t rows,
                                          int64_t cols, int8_t *q,
                                          float *scales, ScaleRule rule) {
  std::vector<float> row(static_cast<size_t>(cols));
  int64_t badRows = 0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = 0; k < cols; ++k)
      row[k] = bf16ToF32(w[r * cols + k]);
    badRows +=
        quantizeRowsInt8(row.data(), 1, cols, q + r * cols, scales + r, rule);
  }
  return badRows;
}

int64_t jamba::ckpt::quantizeRowsInt8Parallel(const float *w, int64_t rows,
                                              int64_t cols, int8_t *q,
                                              float *scales, int threads,
                                              ScaleRule rule) {
  std::atomic<int64_t> badRows{0};
  parallelFor(rows, threads, [&](int64_t begin, int64_t end) {
    badRows += quantizeRowsInt8(w + begin * cols, end - begin, cols,
                                q + begin * cols, scales + begin, rule);
  });
  return badRows.load();
}

void jamba::ckpt::dequantizeRowsInt8(const int8_t *q, const float *scales,
                                     int64_t rows, int64_t cols, float *out) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < cols; ++k)
      out[r * cols + k] = static_cast<float>(q[r * cols + k]) * scales[r];
}

std::string jamba::ckpt::int8ScaleName(const std::string &weightName) {
  return weightName + "_scale";
}

//===----------------------------------------------------------------------===//
// Checkpoint quantization
//===----------------------------------------------------------------------===//

namespace {

std::string joinPath(const std::string &dir, const std::string &name) {
  return !dir.empty() && dir.back() == '/' ? dir + name : dir + "/" + name;
}

/// One output tensor: a raw copy of a source slice, or an int8 weight whose
/// scales tensor follows it.
struct Planned {
  std::string name;
  std::vector<int64_t> shape; ///< Output shape.
  WeightSlice source;
  bool quantize = false;
};

/// Shared state of one run: progress accounting and the first error raised
/// inside a producer (producers cannot return a Status).
struct RunState {
  const QuantizeOptions &options;
  uint64_t totalBytes = 0;
  uint64_t doneBytes = 0;
  std::chrono::steady_clock::time_point start =
      std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point lastPrint = start;
  bool printed = false;
  Status error;

  explicit RunState(const QuantizeOptions &options) : options(options) {}

  void fail(Status st) {
    if (error.ok())
      error = std::move(st);
  }

  static std::string formatBytes(double bytes) {
    char buf[32];
    if (bytes >= 1e9)
      std::snprintf(buf, sizeof(buf), "%.1f GB", bytes / 1e9);
    else
      std::snprintf(buf, sizeof(buf), "%.0f MB", bytes / 1e6);
    return buf;
  }

  void advance(uint64_t bytes) {
    doneBytes += bytes;
    if (options.progressCallback) {
      options.progressCallback(doneBytes, totalBytes);
      return;
    }
    if (!options.progress)
      return;
    auto now = std::chrono::steady_clock::now();
    double elapsed = std::chrono::duration<double>(now - start).count();
    if (elapsed < 1.0 ||
        std::chrono::duration<double>(now - lastPrint).count() < 1.0 ||
        doneBytes >= totalBytes)
      return;
    lastPrint = now;
    printed = true;
    double rate = doneBytes / elapsed;
    double eta = rate > 0 ? (totalBytes - doneBytes) / rate : 0.0;
    std::fprintf(
        stderr, "quantize: %s / %s (%.0f%%), %.0f MB/s, ETA %.0f s\n",
        formatBytes(doneBytes).c_str(), formatBytes(totalBytes).c_str(),
        100.0 * doneBytes / std::max<uint64_t>(totalBytes, 1), rate / 1e6, eta);
  }

  void finish() {
    if (!options.progress || options.progressCallback)
      return;
    double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    if (!printed && elapsed < 1.0)
      return;
    std::fprintf(stderr, "quantize: %s in %.1f s, %.0f MB/s\n",
                 formatBytes(totalBytes).c_str(), elapsed,
                 totalBytes / std::max(elapsed, 1e-9) / 1e6);
  }
};

/// Elements converted per block inside a worker (keeps the f32
/// staging buffer small for bf16 sources).
constexpr int64_t kBlockElements = int64_t(1) << 16;

/// Quantizes `p.source` (rows x cols) into `dst` and `scales`.
void quantizeSlice(const Planned &p, int threads, ScaleRule rule, int8_t *dst,
                   float *scales, RunState &state, std::mutex &errorMutex) {
  const TensorInfo &t = *p.source.tensor;
  const int64_t rows = p.shape[0], cols = p.shape[1];
  const size_t esize = dtypeSize(t.dtype);
  const uint8_t *base = t.data + p.source.first * esize;
  // An aligned F32 source is quantized straight from the mapping.
  bool direct = t.dtype == DType::F32 &&
                reinterpret_cast<uintptr_t>(base) % alignof(float) == 0;
  std::atomic<int64_t> badRows{0};
  parallelFor(rows, threads, [&](int64_t begin, int64_t end) {
    if (direct) {
      badRows += quantizeRowsInt8(
          reinterpret_cast<const float *>(base) + begin * cols, end - begin,
          cols, dst + begin * cols, scales + begin, rule);
      return;
    }
    int64_t blockRows = std::max<int64_t>(1, kBlockElements / cols);
    std::vector<float> buf(
        static_cast<size_t>(std::min(blockRows, end - begin) * cols));
    for (int64_t r = begin; r < end; r += blockRows) {
      int64_t n = std::min(blockRows, end - r);
      Status st =
          convertToF32(t, p.source.first + static_cast<size_t>(r * cols),
                       static_cast<size_t>(n * cols), buf.data());
      if (!st.ok()) {
        std::lock_guard<std::mutex> lock(errorMutex);
        state.fail(st);
        return;
      }
      badRows += quantizeRowsInt8(buf.data(), n, cols, dst + r * cols,
                                  scales + r, rule);
    }
  });
  if (badRows.load() > 0) {
    std::lock_guard<std::mutex> lock(errorMutex);
    std::string stored = t.name == p.name
                             ? std::string()
                             : concat(" (stored as '", t.name, "')");
    state.fail(makeError("tensor '", p.name, "'", stored, ": ", badRows.load(),
                         " row(s) hold a NaN or an infinity; cannot quantize"));
  }
}

/// Removes model.safetensors.index.json and model-*-of-*.safetensors shards
/// of an earlier checkpoint in `dir`, so that the directory holds one
/// consistent checkpoint (an index would otherwise take precedence).
void removeStaleWeights(const std::string &dir) {
  DIR *d = ::opendir(dir.c_str());
  if (!d)
    return;
  std::vector<std::string> stale;
  while (struct dirent *e = ::readdir(d)) {
    std::string name = e->d_name;
    bool shard = name.rfind("model-", 0) == 0 &&
                 name.find("-of-") != std::string::npos && name.size() > 12 &&
                 name.compare(name.size() - 12, 12, ".safetensors") == 0;
    if (shard || name == "model.safetensors.index.json")
      stale.push_back(name);
  }
  ::closedir(d);
  for (const std::string &name : stale)
    ::unlink(joinPath(dir, name).c_str());
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
    int err = errno;
    std::remove(tmp.c_str());
    return makeError(path, ": cannot rename from ", tmp, ": ",
                     std::strerror(err));
  }
  return Status::success();
}

/// True for `...feed_forward.{gate,up,down}_proj.weight` and the expert
/// form `...feed_forward.experts.{e}.{gate,up,down}_proj.weight`.
bool isFfnProjection(const std::string &name) {
  for (const char *proj :
       {".gate_proj.weight", ".up_proj.weight", ".down_proj.weight"}) {
    size_t n = std::strlen(proj);
    if (name.size() > n && name.compare(name.size() - n, n, proj) == 0 &&
        name.find(".feed_forward.") != std::string::npos)
      return true;
  }
  return false;
}

/// Splits `model.layers.L.feed_forward.experts.E.<rest>` into the stacked
/// pattern (`...experts.{e}.<rest>`) and E; false for other names.
bool splitExpertName(const std::string &name, std::string &pattern,
                     int64_t &expert) {
  static const std::string kExperts = ".feed_forward.experts.";
  size_t pos = name.find(kExperts);
  if (pos == std::string::npos)
    return false;
  size_t idx = pos + kExperts.size();
  size_t dot = name.find('.', idx);
  if (dot == std::string::npos || dot == idx)
    return false;
  int64_t e = 0;
  for (size_t i = idx; i < dot; ++i) {
    if (name[i] < '0' || name[i] > '9')
      return false;
    e = e * 10 + (name[i] - '0');
  }
  pattern = name.substr(0, idx) + "{e}" + name.substr(dot);
  expert = e;
  return true;
}

/// Parses the layer index of `model.layers.L....`, or -1.
int64_t layerOf(const std::string &name) {
  static const std::string kLayers = "model.layers.";
  if (name.compare(0, kLayers.size(), kLayers) != 0)
    return -1;
  int64_t layer = 0;
  size_t i = kLayers.size();
  if (i >= name.size() || name[i] < '0' || name[i] > '9')
    return -1;
  for (; i < name.size() && name[i] != '.'; ++i) {
    if (name[i] < '0' || name[i] > '9')
      return -1;
    layer = layer * 10 + (name[i] - '0');
  }
  return layer;
}

/// The config of `config`'s quantized copy.
JambaConfig quantizedConfig(const JambaConfig &config,
                            const QuantizeOptions &options) {
  JambaConfig out = config;
  out.quantMethod = kQuantMethodExpertsInt8;
  out.quantDenseMlp = options.denseMlp;
  return out;
}

/// Plans the quantized copy of `in`: every tensor of it located in `in`
/// and shape-checked, the weights to quantize of a float dtype.
Status planCopy(const Checkpoint &in, const QuantizeOptions &options,
                std::vector<Planned> &plan) {
  const JambaConfig &config = in.config();
  if (config.quantMethod)
    return makeError("checkpoint ", in.directory(),
                     ": already quantized (quantization_config.quant_method = "
                     "\"",
                     *config.quantMethod, "\")");
  if (options.threads < 0)
    return makeError("quantize: the thread count must not be negative, got ",
                     options.threads);

  for (const std::string &name : expectedTensorNames(config)) {
    StatusOr<std::vector<int64_t>> shape = expectedShape(config, name);
    if (!shape.ok())
      return makeError("internal error: ", shape.status().message());
    Planned p;
    p.name = name;
    p.shape = *shape;
    int64_t layer = layerOf(name);
    bool moeLayer = layer >= 0 && config.isMoELayer(layer);
    std::string pattern;
    int64_t expert = -1;
    bool isExpert = splitExpertName(name, pattern, expert);
    if (isFfnProjection(name))
      p.quantize = moeLayer ? isExpert : options.denseMlp;
    JAMBA_CKPT_RETURN_IF_ERROR(
        isExpert ? in.locateWeight(pattern, p.shape, p.source, expert)
                 : in.locateWeight(name, p.shape, p.source));
    if (p.quantize && !isFloatingPoint(p.source.tensor->dtype))
      return makeError("checkpoint ", in.directory(), ": tensor '",
                       p.source.tensor->name, "': dtype ",
                       dtypeName(p.source.tensor->dtype),
                       " cannot be quantized (expected F32, BF16, F16 or F64)");
    plan.push_back(std::move(p));
  }
  return Status::success();
}

} // namespace

Status jamba::ckpt::writeQuantizedCheckpoint(const Checkpoint &in,
                                             const std::string &outDir,
                                             const QuantizeOptions &options) {
  const JambaConfig &config = in.config();
  // Plan and check every tensor before writing anything.
  std::vector<Planned> plan;
  JAMBA_CKPT_RETURN_IF_ERROR(planCopy(in, options, plan));

  // The output directory: created if missing, not the input directory.
  if (::mkdir(outDir.c_str(), 0755) != 0 && errno != EEXIST)
    return makeError(outDir,
                     ": cannot create directory: ", std::strerror(errno));
  struct stat outStat, inStat;
  if (::stat(outDir.c_str(), &outStat) != 0 || !S_ISDIR(outStat.st_mode))
    return makeError(outDir, ": not a directory");
  if (::stat(in.directory().c_str(), &inStat) == 0 &&
      inStat.st_dev == outStat.st_dev && inStat.st_ino == outStat.st_ino)
    return makeError(outDir, ": the output directory must not be the input "
                             "checkpoint directory");
  if (::access(outDir.c_str(), W_OK) != 0)
    return makeError(outDir,
                     ": directory is not writable: ", std::strerror(errno));

  RunState state(options);
  std::mutex errorMutex;
  SafeTensorsWriter writer;
  writer.setMetadata("format", "pt");
  writer.setMetadata("quant_method", kQuantMethodExpertsInt8);
  for (const Planned &p : plan) {
    const TensorInfo &src = *p.source.tensor;
    const uint64_t srcBytes = p.source.count * dtypeSize(src.dtype);
    state.totalBytes += srcBytes;
    if (!p.quantize) {
      const uint8_t *data = src.data + p.source.first * dtypeSize(src.dtype);
      JAMBA_CKPT_RETURN_IF_ERROR(
          writer.addLazy(p.name, src.dtype, p.shape,
                         [data, srcBytes, &state](uint8_t *dst, size_t nbytes) {
                           if (nbytes == srcBytes)
                             std::memcpy(dst, data, nbytes);
                           state.advance(srcBytes);
                         }));
      continue;
    }
    // The weight's producer fills the scales that the next tensor writes.
    auto scales =
        std::make_shared<std::vector<float>>(static_cast<size_t>(p.shape[0]));
    const Planned *planned = &p;
    JAMBA_CKPT_RETURN_IF_ERROR(writer.addLazy(
        p.name, DType::I8, p.shape,
        [planned, scales, srcBytes, &options, &state, &errorMutex](uint8_t *dst,
                                                                   size_t) {
          quantizeSlice(*planned, options.threads, options.scaleRule,
                        reinterpret_cast<int8_t *>(dst), scales->data(), state,
                        errorMutex);
          state.advance(srcBytes);
        }));
    JAMBA_CKPT_RETURN_IF_ERROR(
        writer.addLazy(int8ScaleName(p.name), DType::F32, {p.shape[0]},
                       [scales](uint8_t *dst, size_t nbytes) {
                         if (nbytes == scales->size() * sizeof(float))
                           std::memcpy(dst, scales->data(), nbytes);
                       }));
  }

  removeStaleWeights(outDir);
  std::string weightsPath = joinPath(outDir, "model.safetensors");
  Status st = writer.write(weightsPath);
  if (!st.ok())
    return st;
  if (!state.error.ok()) {
    ::unlink(weightsPath.c_str());
    return makeError("checkpoint ", in.directory(), ": ",
                     state.error.message());
  }
  state.finish();

  JambaConfig outConfig = quantizedConfig(config, options);
  JAMBA_CKPT_RETURN_IF_ERROR(
      writeTextFile(joinPath(outDir, "config.json"), configToJson(outConfig)));
  // The tokenizer goes with the weights, unchanged.
  std::string tokenizer = joinPath(in.directory(), kTokenizerFileName);
  if (::access(tokenizer.c_str(), F_OK) != 0)
    return Status::success();
  std::string text;
  JAMBA_CKPT_RETURN_IF_ERROR(
      readFileToString(tokenizer, text, size_t(256) << 20));
  return writeTextFile(joinPath(outDir, kTokenizerFileName), text);
}

//===----------------------------------------------------------------------===//
// ExpertsInt8Reader
//===----------------------------------------------------------------------===//

StatusOr<std::unique_ptr<ExpertsInt8Reader>>
ExpertsInt8Reader::open(const Checkpoint &in, const QuantizeOptions &options) {
  std::vector<Planned> plan;
  JAMBA_CKPT_RETURN_IF_ERROR(planCopy(in, options, plan));
  std::unique_ptr<ExpertsInt8Reader> reader(new ExpertsInt8Reader(in, options));
  reader->cfg = quantizedConfig(in.config(), options);
  bool anyKept = false, allBF16 = true;
  for (const Planned &p : plan) {
    if (p.quantize) {
      reader->quantized.insert(p.name);
      continue;
    }
    anyKept = true;
    allBF16 &= p.source.tensor->dtype == DType::BF16;
  }
  reader->keptAllBF16 = anyKept && allBF16;
  return reader;
}

bool ExpertsInt8Reader::isQuantized(const std::string &name,
                                    std::string &weight, bool &isScale) const {
  static const std::string kScale = int8ScaleName("");
  isScale =
      name.size() > kScale.size() &&
      name.compare(name.size() - kScale.size(), kScale.size(), kScale) == 0;
  weight = isScale ? name.substr(0, name.size() - kScale.size()) : name;
  // An expert pattern is quantized when its experts are (all or none).
  std::string canonical = weight;
  if (size_t at = canonical.find("{e}"); at != std::string::npos)
    canonical.replace(at, 3, "0");
  return quantized.count(canonical) != 0;
}

Status ExpertsInt8Reader::weightShape(const std::string &name,
                                      const std::string &weight, bool isScale,
                                      const std::vector<int64_t> &requested,
                                      std::vector<int64_t> &shape) const {
  if (!isScale) {
    shape = requested; // Checked against the stored tensor.
    return Status::success();
  }
  StatusOr<std::vector<int64_t>> full = expectedShape(cfg, weight);
  if (!full.ok())
    return makeError("checkpoint ", in.directory(), ": ",
                     full.status().message());
  std::vector<int64_t> scales(full->begin(), full->end() - 1);
  if (scales != requested)
    return makeError("checkpoint ", in.directory(), ": tensor '", name,
                     "': expected shape ", formatShape(requested), ", got ",
                     formatShape(scales));
  shape = *full;
  return Status::success();
}

Status ExpertsInt8Reader::checkWeight(
    const std::string &name, const std::vector<int64_t> &expectedShape) const {
  std::string weight;
  bool isScale = false;
  if (!isQuantized(name, weight, isScale))
    return in.checkWeight(name, expectedShape);
  std::vector<int64_t> shape;
  JAMBA_CKPT_RETURN_IF_ERROR(
      weightShape(name, weight, isScale, expectedShape, shape));
  // One expert's weight by its own name: found as the copy's loader finds
  // it, in a per-expert or a fused tensor.
  std::string pattern;
  int64_t expert = -1;
  if (splitExpertName(weight, pattern, expert)) {
    WeightSlice unused;
    return in.locateWeight(pattern, shape, unused, expert);
  }
  return in.checkWeight(weight, shape);
}

Status ExpertsInt8Reader::quantizeInPlace(const std::string &weight,
                                          const std::vector<int64_t> &shape,
                                          std::vector<float> &values,
                                          std::vector<float> &scales) const {
  // A row is quantized as quantizeSlice does; its values do not depend on
  // how the rows are stored or stacked.
  const int64_t cols = shape.empty() ? 0 : shape.back();
  int64_t rows = 1;
  for (size_t d = 0; d + 1 < shape.size(); ++d)
    rows *= shape[d];
  scales.assign(static_cast<size_t>(rows), 0.0f);
  std::atomic<int64_t> badRows{0};
  parallelFor(rows, options.threads, [&](int64_t begin, int64_t end) {
    std::vector<int8_t> q(static_cast<size_t>(cols));
    for (int64_t r = begin; r < end; ++r) {
      float *row = values.data() + r * cols;
      badRows += quantizeRowsInt8(row, 1, cols, q.data(), &scales[r],
                                  options.scaleRule);
      for (int64_t k = 0; k < cols; ++k)
        row[k] = q[k];
    }
  });
  if (badRows.load() > 0) {
    values.clear();
    return makeError("checkpoint ", in.directory(), ": tensor '", weight,
                     "': ", badRows.load(),
                     " row(s) hold a NaN or an infinity; cannot quantize");
  }
  return Status::success();
}

Status
ExpertsInt8Reader::loadWeightF32(const std::string &name,
                                 const std::vector<int64_t> &expectedShape,
                                 std::vector<float> &out) const {
  std::string weight;
  bool isScale = false;
  if (!isQuantized(name, weight, isScale))
    return in.loadWeightF32(name, expectedShape, out);
  std::vector<int64_t> shape;
  JAMBA_CKPT_RETURN_IF_ERROR(
      weightShape(name, weight, isScale, expectedShape, shape));
  if (isScale) {
    std::lock_guard<std::mutex> lock(cacheMutex);
    if (cachedWeight == weight && cachedShape == shape) {
      out.assign(cachedScales.begin(), cachedScales.end());
      cachedWeight.clear();
      return Status::success();
    }
  }
  // The weight as f32 in `out` (the caller's buffer, reused), each row then
  // replaced by its int8 values: no other buffer as large as the weight.
  std::string pattern;
  int64_t expert = -1;
  JAMBA_CKPT_RETURN_IF_ERROR(
      splitExpertName(weight, pattern, expert)
          ? in.loadExpertWeightF32(pattern, expert, shape, out)
          : in.loadWeightF32(weight, shape, out));
  std::vector<float> scales;
  JAMBA_CKPT_RETURN_IF_ERROR(quantizeInPlace(weight, shape, out, scales));
  if (isScale) {
    out.assign(scales.begin(), scales.end());
    return Status::success();
  }
  std::lock_guard<std::mutex> lock(cacheMutex);
  cachedWeight = weight;
  cachedShape = shape;
  cachedScales = std::move(scales);
  return Status::success();
}

StatusOr<bool>
ExpertsInt8Reader::copyStoredBytes(const std::string &name, int64_t expert,
                                   const std::vector<int64_t> &expectedShape,
                                   DType dtype, uint8_t *dst,
                                   size_t nbytes) const {
  std::string weight;
  bool isScale = false;
  if (isQuantized(name, weight, isScale))
    return false;
  return in.copyStoredBytes(name, expert, expectedShape, dtype, dst, nbytes);
}

Status ExpertsInt8Reader::loadExpertWeightF32(
    const std::string &pattern, int64_t expert,
    const std::vector<int64_t> &requested, std::vector<float> &out) const {
  out.clear();
  std::string weight;
  bool isScale = false;
  if (!isQuantized(pattern, weight, isScale))
    return in.loadExpertWeightF32(pattern, expert, requested, out);
  if (expert < 0 || expert >= cfg.numExperts)
    return makeError("checkpoint ", in.directory(), ": tensor pattern '",
                     pattern, "': expert ", expert, " is not in [0, ",
                     cfg.numExperts, ")");
  // One expert's weight shape: a scale pattern's is its weight's stacked
  // shape without E.
  std::vector<int64_t> shape = requested;
  if (isScale) {
    StatusOr<std::vector<int64_t>> full = expectedShape(cfg, weight);
    if (!full.ok())
      return makeError("checkpoint ", in.directory(), ": ",
                       full.status().message());
    if (full->size() < 2 || (*full)[0] != cfg.numExperts)
      return makeError("checkpoint ", in.directory(), ": tensor '", pattern,
                       "' is not a stacked expert weight's scales");
    shape.assign(full->begin() + 1, full->end());
    std::vector<int64_t> scaleShape(shape.begin(), shape.end() - 1);
    if (scaleShape != requested)
      return makeError("checkpoint ", in.directory(), ": tensor '", pattern,
                       "' (expert ", expert, "): expected shape ",
                       formatShape(requested), ", got ",
                       formatShape(scaleShape));
    std::lock_guard<std::mutex> lock(cacheMutex);
    if (cachedExpertPattern == weight &&
        !cachedExpertScales[static_cast<size_t>(expert)].empty()) {
      out = std::move(cachedExpertScales[static_cast<size_t>(expert)]);
      cachedExpertScales[static_cast<size_t>(expert)].clear();
      return Status::success();
    }
  }
  JAMBA_CKPT_RETURN_IF_ERROR(
      in.loadExpertWeightF32(weight, expert, shape, out));
  std::vector<float> scales;
  JAMBA_CKPT_RETURN_IF_ERROR(quantizeInPlace(weight, shape, out, scales));
  if (isScale) {
    out = std::move(scales);
    return Status::success();
  }
  std::lock_guard<std::mutex> lock(cacheMutex);
  if (cachedExpertPattern != weight) {
    cachedExpertPattern = weight;
    cachedExpertScales.assign(static_cast<size_t>(cfg.numExperts), {});
  }
  cachedExpertScales[static_cast<size_t>(expert)] = std::move(scales);
  return Status::success();
}

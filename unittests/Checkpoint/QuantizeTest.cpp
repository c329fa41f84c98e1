//===- QuantizeTest.cpp - Tests for ExpertsInt8 quantization --------------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//

#include "jamba/Checkpoint/Quantize.h"

#include "jamba/Checkpoint/Checkpoint.h"
#include "jamba/Checkpoint/RandomCheckpoint.h"

#include "TestUtil.h"

#include "gtest/gtest.h"

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <sys/stat.h>
#include <vector>

using namespace jamba::ckpt;
using namespace jamba::ckpt::testing;

namespace {

struct Quantized {
  std::vector<int8_t> q;
  std::vector<float> scales;
};

Quantized quantize(const std::vector<float> &w, int64_t rows,
                   ScaleRule rule = ScaleRule::Divide) {
  int64_t cols = static_cast<int64_t>(w.size()) / rows;
  Quantized r;
  r.q.assign(w.size(), 99);
  r.scales.assign(static_cast<size_t>(rows), -1.0f);
  EXPECT_EQ(
      quantizeRowsInt8(w.data(), rows, cols, r.q.data(), r.scales.data(), rule),
      0);
  return r;
}

std::vector<int8_t> q8(std::initializer_list<int> values) {
  std::vector<int8_t> v;
  for (int x : values)
    v.push_back(static_cast<int8_t>(x));
  return v;
}

//===----------------------------------------------------------------------===//
// Per-row quantization
//===----------------------------------------------------------------------===//

TEST(QuantizeRowsTest, HandComputedRow) {
  // max |w| = 127 -> scale 1; 0.5 rounds to the even 0.
  Quantized r = quantize({1.0f, -2.0f, 0.5f, 127.0f}, 1);
  EXPECT_EQ(r.scales[0], 1.0f);
  EXPECT_EQ(r.q, q8({1, -2, 0, 127}));
}

TEST(QuantizeRowsTest, TiesRoundHalfToEven) {
  Quantized r =
      quantize({2.5f, -3.5f, 1.5f, -0.5f, 126.5f, -125.5f, 127.0f}, 1);
  EXPECT_EQ(r.scales[0], 1.0f);
  EXPECT_EQ(r.q, q8({2, -4, 2, 0, 126, -126, 127}));
}

TEST(QuantizeRowsTest, TwoRowsHaveTheirOwnScales) {
  // Row 0: max 254 -> scale 2; row 1: max 12.7 -> scale 0.1f.
  Quantized r = quantize({254.0f, 3.0f, -5.0f, 1.0f, 1.27f, -12.7f}, 2);
  EXPECT_EQ(r.scales[0], 2.0f);
  EXPECT_EQ(r.scales[1], 12.7f / 127.0f);
  EXPECT_EQ(r.q[0], 127);
  EXPECT_EQ(r.q[1], 2);  // 1.5 -> 2
  EXPECT_EQ(r.q[2], -2); // -2.5 -> -2
  EXPECT_EQ(r.q[3], 10);
  EXPECT_EQ(r.q[4], 13);
  EXPECT_EQ(r.q[5], -127);
}

TEST(QuantizeRowsTest, AllZeroRowGetsScaleOne) {
  Quantized r = quantize({0.0f, -0.0f, 0.0f, 3.0f, 0.0f, -1.5f}, 2);
  EXPECT_EQ(r.scales[0], 1.0f);
  EXPECT_EQ(r.q[0], 0);
  EXPECT_EQ(r.q[1], 0);
  EXPECT_EQ(r.q[2], 0);
  EXPECT_EQ(r.scales[1], 3.0f / 127.0f);
  EXPECT_EQ(r.q[3], 127);
  EXPECT_EQ(r.q[5], static_cast<int8_t>(std::nearbyint(-1.5f / r.scales[1])));
  for (float s : r.scales)
    EXPECT_FALSE(std::isnan(s));
}

TEST(QuantizeRowsTest, NegativeMaximum) {
  // max |w| = |-254| -> scale 2: 1 -> 0.5 -> 0, 3 -> 1.5 -> 2.
  Quantized r = quantize({-254.0f, 1.0f, 3.0f, -1.0f}, 1);
  EXPECT_EQ(r.scales[0], 2.0f);
  EXPECT_EQ(r.q, q8({-127, 0, 2, 0}));
}

TEST(QuantizeRowsTest, QuotientAbove127IsClamped) {
  // Find a maximum m whose quotient m / fl(m / 127) rounds above 127 in f32
  // and check that it quantizes to +-127, never to -128 or a wrapped value.
  int found = 0;
  std::mt19937 gen(7);
  std::uniform_real_distribution<float> dist(0.001f, 1000.0f);
  for (int i = 0; i < 200000 && found < 20; ++i) {
    float m = dist(gen);
    for (ScaleRule rule : {ScaleRule::Divide, ScaleRule::CudaReciprocal}) {
      float s = int8ScaleFor(m, rule);
      if (m / s <= 127.0f)
        continue;
      ++found;
      Quantized r = quantize({m, -m, m / 2}, 1, rule);
      EXPECT_EQ(r.q[0], 127) << m;
      EXPECT_EQ(r.q[1], -127) << m;
    }
  }
  EXPECT_GT(found, 0) << "no maximum with a quotient above 127 found";
}

TEST(QuantizeRowsTest, RoundingMatchesNearbyint) {
  // With max 127 the scale is exactly 1 and q = clamp(nearbyint(w)); sweep
  // every half-integer tie, its neighbours and random values.
  std::vector<float> w;
  for (int k = -128; k <= 127; ++k) {
    float tie = k + 0.5f;
    w.push_back(tie);
    w.push_back(std::nextafter(tie, 1000.0f));
    w.push_back(std::nextafter(tie, -1000.0f));
    w.push_back(static_cast<float>(k));
  }
  std::mt19937 gen(3);
  std::uniform_real_distribution<float> dist(-127.0f, 127.0f);
  for (int i = 0; i < 100000; ++i)
    w.push_back(dist(gen));
  for (float &x : w)
    x = std::max(-127.0f, std::min(127.0f, x));
  w.push_back(127.0f);
  Quantized r = quantize(w, 1);
  ASSERT_EQ(r.scales[0], 1.0f);
  for (size_t i = 0; i < w.size(); ++i)
    ASSERT_EQ(r.q[i], static_cast<int8_t>(std::nearbyint(w[i]))) << w[i];
}

TEST(QuantizeRowsTest, RandomRowsMatchDoubleFormula) {
  // Independent reference in double: the scale is the f32 rounding of the
  // exact quotient max / 127 (double rounding through double is exact for a
  // division of floats); q is the nearest integer to the exact quotient
  // w / scale, checked wherever that quotient is not within 1e-4 of a tie
  // (where the f32 rounding of the quotient could decide).
  std::mt19937 gen(11);
  std::normal_distribution<float> dist(0.0f, 0.02f);
  const int64_t rows = 64, cols = 257;
  std::vector<float> w(rows * cols);
  for (float &x : w)
    x = dist(gen);
  w[5] = 3.0f; // An outlier: most of row 0 quantizes to 0.
  Quantized r = quantize(w, rows);
  int64_t checked = 0;
  for (int64_t i = 0; i < rows; ++i) {
    double m = 0.0;
    for (int64_t k = 0; k < cols; ++k)
      m = std::max(m, std::fabs(static_cast<double>(w[i * cols + k])));
    float s = static_cast<float>(m / 127.0);
    ASSERT_EQ(r.scales[i], s) << "row " << i;
    for (int64_t k = 0; k < cols; ++k) {
      double x = static_cast<double>(w[i * cols + k]) / s;
      double frac = x - std::floor(x);
      if (std::fabs(frac - 0.5) < 1e-4)
        continue;
      double ref = std::max(-127.0, std::min(127.0, std::floor(x + 0.5)));
      ASSERT_EQ(r.q[i * cols + k], static_cast<int8_t>(ref))
          << "row " << i << " col " << k << " x = " << x;
      ++checked;
    }
  }
  EXPECT_GT(checked, rows * cols * 99 / 100);
}

TEST(QuantizeRowsTest, DequantizedWithinHalfAScale) {
  std::mt19937 gen(5);
  std::uniform_real_distribution<float> dist(-3.0f, 3.0f);
  const int64_t rows = 16, cols = 100;
  std::vector<float> w(rows * cols);
  for (float &x : w)
    x = dist(gen);
  Quantized r = quantize(w, rows);
  std::vector<float> back(w.size());
  dequantizeRowsInt8(r.q.data(), r.scales.data(), rows, cols, back.data());
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t k = 0; k < cols; ++k)
      EXPECT_LE(std::fabs(back[i * cols + k] - w[i * cols + k]),
                r.scales[i] * 0.5f * (1.0f + 1e-5f));
}

TEST(QuantizeRowsTest, CudaReciprocalScale) {
  const float inv = static_cast<float>(1.0 / 127.0);
  int differ = 0;
  std::mt19937 gen(9);
  std::uniform_real_distribution<float> dist(0.01f, 1.0f);
  for (int i = 0; i < 1000; ++i) {
    float m = dist(gen);
    EXPECT_EQ(int8ScaleFor(m, ScaleRule::CudaReciprocal), m * inv);
    EXPECT_EQ(int8ScaleFor(m, ScaleRule::Divide), m / 127.0f);
    differ += int8ScaleFor(m, ScaleRule::CudaReciprocal) !=
              int8ScaleFor(m, ScaleRule::Divide);
  }
  EXPECT_GT(differ, 0); // The two rules are not the same function.
  Quantized r = quantize({0.3f, -0.1f}, 1, ScaleRule::CudaReciprocal);
  EXPECT_EQ(r.scales[0], 0.3f * inv);
}

TEST(QuantizeRowsTest, NonFiniteRowsAreCounted) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> w = {1.0f, nan, 2.0f, inf, 1.0f, 1.0f, 4.0f, -2.0f, 1.0f};
  std::vector<int8_t> q(9, 99);
  std::vector<float> s(3);
  EXPECT_EQ(quantizeRowsInt8(w.data(), 3, 3, q.data(), s.data()), 2);
  EXPECT_EQ(s[0], 1.0f);
  EXPECT_EQ(s[1], 1.0f);
  for (int i = 0; i < 6; ++i)
    EXPECT_EQ(q[i], 0);
  EXPECT_EQ(s[2], 4.0f / 127.0f);
}

TEST(QuantizeRowsTest, Bf16PathWidensExactly) {
  std::mt19937 gen(13);
  std::normal_distribution<float> dist(0.0f, 0.02f);
  const int64_t rows = 8, cols = 33;
  std::vector<uint16_t> bits(rows * cols);
  std::vector<float> widened(rows * cols);
  for (size_t i = 0; i < bits.size(); ++i) {
    bits[i] = f32ToBf16(dist(gen));
    widened[i] = bf16ToF32(bits[i]);
  }
  bits[7] = 0; // Exercise a zero element.
  widened[7] = 0.0f;
  Quantized ref = quantize(widened, rows);
  std::vector<int8_t> q(bits.size());
  std::vector<float> s(rows);
  EXPECT_EQ(quantizeRowsInt8Bf16(bits.data(), rows, cols, q.data(), s.data()),
            0);
  EXPECT_EQ(q, ref.q);
  EXPECT_EQ(s, ref.scales);
}

TEST(QuantizeRowsTest, ParallelMatchesSerial) {
  std::mt19937 gen(17);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  const int64_t rows = 37, cols = 50;
  std::vector<float> w(rows * cols);
  for (float &x : w)
    x = dist(gen);
  Quantized ref = quantize(w, rows);
  for (int threads : {0, 1, 2, 3, 8, 64}) {
    std::vector<int8_t> q(w.size());
    std::vector<float> s(rows);
    EXPECT_EQ(quantizeRowsInt8Parallel(w.data(), rows, cols, q.data(), s.data(),
                                       threads),
              0);
    EXPECT_EQ(q, ref.q) << threads;
    EXPECT_EQ(s, ref.scales) << threads;
  }
}

TEST(QuantizeRowsTest, ScaleName) {
  EXPECT_EQ(int8ScaleName("model.layers.1.feed_forward.experts.0.up_proj."
                          "weight"),
            "model.layers.1.feed_forward.experts.0.up_proj.weight_scale");
}

//===----------------------------------------------------------------------===//
// writeQuantizedCheckpoint
//===----------------------------------------------------------------------===//

std::string sharedModelsDir() {
#ifdef JAMBA_SHARED_MODELS_DIR
  struct stat st;
  if (::stat(JAMBA_SHARED_MODELS_DIR, &st) == 0 && S_ISDIR(st.st_mode))
    return JAMBA_SHARED_MODELS_DIR;
#endif
  return "";
}

#define REQUIRE_TINY_CONFIG(configVar)                                         \
  std::string configVar##Dir = sharedModelsDir();                              \
  if (configVar##Dir.empty())                                                  \
    GTEST_SKIP()                                                               \
        << "shared model configs not found (JAMBA_SHARED_MODELS_DIR)";         \
  StatusOr<JambaConfig> configVar##Or =                                        \
      loadConfig(configVar##Dir + "/jamba-tiny.json");                         \
  ASSERT_TRUE(configVar##Or.ok()) << configVar##Or.status().message();         \
  JambaConfig configVar = *configVar##Or

std::unique_ptr<Checkpoint> openOk(const std::string &dir) {
  StatusOr<std::unique_ptr<Checkpoint>> c = Checkpoint::open(dir);
  EXPECT_TRUE(c.ok()) << c.status().message();
  return c.ok() ? std::move(*c) : nullptr;
}

/// True for the names writeQuantizedCheckpoint quantizes under `config`.
bool isQuantized(const JambaConfig &config, const std::string &name,
                 bool denseMlp) {
  bool proj = name.find(".feed_forward.") != std::string::npos &&
              (name.find("gate_proj.weight") != std::string::npos ||
               name.find("up_proj.weight") != std::string::npos ||
               name.find("down_proj.weight") != std::string::npos);
  if (!proj)
    return false;
  bool expert = name.find(".experts.") != std::string::npos;
  return (expert && config.numExperts > 1) || (!expert && denseMlp);
}

/// The source values of `name` (an expert name is loaded as one expert).
std::vector<float> sourceValues(const Checkpoint &in, const std::string &name,
                                const std::vector<int64_t> &shape) {
  std::vector<float> out;
  size_t pos = name.find(".experts.");
  if (pos == std::string::npos) {
    Status st = in.loadWeightF32(name, shape, out);
    EXPECT_TRUE(st.ok()) << st.message();
    return out;
  }
  size_t idx = pos + 9, dot = name.find('.', idx);
  int64_t e = std::stoll(name.substr(idx, dot - idx));
  std::string pattern = name.substr(0, idx) + "{e}" + name.substr(dot);
  Status st = in.loadExpertWeightF32(pattern, e, shape, out);
  EXPECT_TRUE(st.ok()) << st.message();
  return out;
}

/// Checks every tensor of `out` against `in` (see the test names).
void expectQuantizedCopy(const Checkpoint &in, const Checkpoint &out,
                         bool denseMlp) {
  const JambaConfig &config = in.config();
  JambaConfig expectedConfig = config;
  expectedConfig.quantMethod = "experts_int8";
  expectedConfig.quantDenseMlp = denseMlp;
  EXPECT_TRUE(out.config() == expectedConfig);

  size_t expectedCount = 0;
  int64_t quantizedCount = 0;
  for (const std::string &name : expectedTensorNames(config)) {
    ++expectedCount;
    StatusOr<std::vector<int64_t>> shape = expectedShape(config, name);
    ASSERT_TRUE(shape.ok());
    const TensorInfo *t = out.find(name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_EQ(t->shape, *shape) << name;
    if (!isQuantized(config, name, denseMlp)) {
      // Byte-identical copy of the resolved source tensor.
      const TensorInfo *src = in.resolve(name);
      ASSERT_NE(src, nullptr) << name;
      EXPECT_EQ(t->dtype, src->dtype) << name;
      ASSERT_EQ(t->nbytes, src->nbytes) << name;
      EXPECT_EQ(std::memcmp(t->data, src->data, t->nbytes), 0) << name;
      continue;
    }
    ++expectedCount;
    ++quantizedCount;
    EXPECT_EQ(t->dtype, DType::I8) << name;
    const TensorInfo *s = out.find(int8ScaleName(name));
    ASSERT_NE(s, nullptr) << name;
    EXPECT_EQ(s->dtype, DType::F32);
    EXPECT_EQ(s->shape, std::vector<int64_t>{(*shape)[0]});
    std::vector<float> q, scales;
    ASSERT_TRUE(readAsF32(*t, q).ok());
    ASSERT_TRUE(readAsF32(*s, scales).ok());
    std::vector<float> orig = sourceValues(in, name, *shape);
    ASSERT_EQ(orig.size(), q.size());
    int64_t rows = (*shape)[0], cols = (*shape)[1];
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t k = 0; k < cols; ++k) {
        float deq = q[r * cols + k] * scales[r];
        ASSERT_LE(std::fabs(deq - orig[r * cols + k]),
                  scales[r] * 0.5f * (1.0f + 1e-5f))
            << name << " [" << r << ", " << k << "]";
      }
    }
  }
  EXPECT_GT(quantizedCount, 0);
  EXPECT_EQ(out.names().size(), expectedCount);
}

/// Loads `name` from both and expects the same shape check and the same
/// f32 values, bit for bit.
void expectSameWeight(const WeightReader &reader, const Checkpoint &copy,
                      const std::string &name,
                      const std::vector<int64_t> &shape) {
  std::vector<float> got, want;
  Status wantSt = copy.loadWeightF32(name, shape, want);
  ASSERT_TRUE(wantSt.ok()) << wantSt.message();
  Status checked = reader.checkWeight(name, shape);
  EXPECT_TRUE(checked.ok()) << name << ": " << checked.message();
  Status st = reader.loadWeightF32(name, shape, got);
  ASSERT_TRUE(st.ok()) << name << ": " << st.message();
  ASSERT_EQ(got.size(), want.size()) << name;
  EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0)
      << name;
}

/// Expert by expert, `reader` gives what `copy` holds for the stacked
/// `pattern` of shape `shape` and for its scales: every weight then every
/// scale tensor (the scales kept from the weights' loads), then every scale
/// first (each quantizing its expert again), then each expert's weight and
/// scales in turn.
void expectSameExperts(const ExpertsInt8Reader &reader, const Checkpoint &copy,
                       const std::string &pattern,
                       const std::vector<int64_t> &shape) {
  std::vector<int64_t> weightShape(shape.begin() + 1, shape.end());
  std::vector<int64_t> scaleShape(shape.begin() + 1, shape.end() - 1);
  std::string scales = int8ScaleName(pattern);
  auto expectExpert = [&](const std::string &name, int64_t expert) {
    const std::vector<int64_t> &expertShape =
        name == pattern ? weightShape : scaleShape;
    std::vector<float> got, want;
    Status st = copy.loadExpertWeightF32(name, expert, expertShape, want);
    ASSERT_TRUE(st.ok()) << st.message();
    st = reader.loadExpertWeightF32(name, expert, expertShape, got);
    ASSERT_TRUE(st.ok()) << name << " " << expert << ": " << st.message();
    ASSERT_EQ(got.size(), want.size()) << name << " " << expert;
    EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)),
              0)
        << name << " " << expert;
  };
  const int64_t experts = shape[0];
  for (const std::string &name : {pattern, scales})
    for (int64_t e = 0; e < experts; ++e)
      expectExpert(name, e);
  for (const std::string &name : {scales, pattern})
    for (int64_t e = 0; e < experts; ++e)
      expectExpert(name, e);
  for (int64_t e = 0; e < experts; ++e) {
    expectExpert(pattern, e);
    expectExpert(scales, e);
  }
}

/// ExpertsInt8Reader over `in` reads what Checkpoint reads from `copy`,
/// writeQuantizedCheckpoint's output with the same options: the config,
/// every tensor of the copy by its name (a weight, then its scales: the
/// scales kept from the weight's load; then in reverse, each scale
/// quantizing its weight again) and the stacked expert patterns the
/// importer's weights use.
void expectReaderReadsTheCopy(const Checkpoint &in, const Checkpoint &copy,
                              const QuantizeOptions &options) {
  StatusOr<std::unique_ptr<ExpertsInt8Reader>> opened =
      ExpertsInt8Reader::open(in, options);
  ASSERT_TRUE(opened.ok()) << opened.status().message();
  const ExpertsInt8Reader &reader = **opened;
  EXPECT_TRUE(reader.config() == copy.config());
  std::vector<std::string> names = copy.names();
  ASSERT_GT(names.size(), 0u);
  for (const std::string &name : names)
    expectSameWeight(reader, copy, name, copy.find(name)->shape);
  for (auto it = names.rbegin(); it != names.rend(); ++it)
    expectSameWeight(reader, copy, *it, copy.find(*it)->shape);
  const JambaConfig &config = in.config();
  int64_t patterns = 0;
  for (int64_t layer = 0; layer < config.numHiddenLayers; ++layer) {
    if (!config.isMoELayer(layer))
      continue;
    for (const char *proj : {"gate_proj", "up_proj", "down_proj"}) {
      std::string pattern = "model.layers." + std::to_string(layer) +
                            ".feed_forward.experts.{e}." + proj + ".weight";
      StatusOr<std::vector<int64_t>> shape = expectedShape(config, pattern);
      ASSERT_TRUE(shape.ok()) << shape.status().message();
      expectSameWeight(reader, copy, pattern, *shape);
      std::vector<int64_t> scales(shape->begin(), shape->end() - 1);
      expectSameWeight(reader, copy, int8ScaleName(pattern), scales);
      expectSameExperts(reader, copy, pattern, *shape);
      ++patterns;
    }
  }
  EXPECT_GT(patterns, 0);
  // The tensors the copy keeps come as stored (the input's bytes are the
  // copy's); the int8 weights and their scales are made, not copied.
  const std::string scaleSuffix = int8ScaleName("");
  for (const std::string &name : names) {
    const TensorInfo *t = copy.find(name);
    std::vector<uint8_t> bytes(t->nbytes, 0xA5);
    StatusOr<bool> copied = reader.copyStoredBytes(
        name, /*expert=*/-1, t->shape, t->dtype, bytes.data(), bytes.size());
    ASSERT_TRUE(copied.ok()) << name << ": " << copied.status().message();
    bool made = t->dtype == DType::I8 ||
                (name.size() > scaleSuffix.size() &&
                 name.compare(name.size() - scaleSuffix.size(),
                              scaleSuffix.size(), scaleSuffix) == 0);
    EXPECT_EQ(*copied, !made) << name;
    if (*copied)
      EXPECT_EQ(std::memcmp(bytes.data(), t->data, t->nbytes), 0) << name;
    else
      EXPECT_EQ(bytes, std::vector<uint8_t>(t->nbytes, 0xA5)) << name;
  }
  // Whether the kept tensors are all BF16 is the copy's answer.
  bool keptBF16 = true;
  for (const std::string &name : names) {
    const TensorInfo *t = copy.find(name);
    if (t->dtype != DType::I8 && name.find("_scale") == std::string::npos)
      keptBF16 &= t->dtype == DType::BF16;
  }
  EXPECT_EQ(reader.keptTensorsAllBF16(), keptBF16);
}

struct Case {
  DType dtype;
  bool fused;
  bool denseMlp;
};

void runRoundTrip(const Case &c) {
  REQUIRE_TINY_CONFIG(config);
  TempDir dir;
  std::string src = dir.file("src"), dst = dir.file("dst");
  RandomCheckpointOptions ro;
  ro.seed = 1;
  ro.dtype = c.dtype;
  ro.fusedExperts = c.fused;
  Status st = writeRandomCheckpoint(config, src, ro);
  ASSERT_TRUE(st.ok()) << st.message();
  std::unique_ptr<Checkpoint> in = openOk(src);
  ASSERT_TRUE(in);
  QuantizeOptions qo;
  qo.denseMlp = c.denseMlp;
  qo.threads = 2;
  st = writeQuantizedCheckpoint(*in, dst, qo);
  ASSERT_TRUE(st.ok()) << st.message();
  std::unique_ptr<Checkpoint> out = openOk(dst);
  ASSERT_TRUE(out);
  expectQuantizedCopy(*in, *out, c.denseMlp);
  expectReaderReadsTheCopy(*in, *out, qo);
}

TEST(QuantizeCheckpointTest, PerExpertF32) {
  runRoundTrip({DType::F32, false, false});
}
TEST(QuantizeCheckpointTest, FusedF32) {
  runRoundTrip({DType::F32, true, false});
}
TEST(QuantizeCheckpointTest, PerExpertBf16) {
  runRoundTrip({DType::BF16, false, false});
}
TEST(QuantizeCheckpointTest, FusedBf16DenseMlp) {
  runRoundTrip({DType::BF16, true, true});
}

TEST(QuantizeCheckpointTest, LayoutAndThreadsDoNotChangeTheOutput) {
  REQUIRE_TINY_CONFIG(config);
  TempDir dir;
  RandomCheckpointOptions ro;
  ro.seed = 4;
  ASSERT_TRUE(writeRandomCheckpoint(config, dir.file("a"), ro).ok());
  ro.fusedExperts = true;
  ro.shards = 3;
  ASSERT_TRUE(writeRandomCheckpoint(config, dir.file("b"), ro).ok());
  std::unique_ptr<Checkpoint> a = openOk(dir.file("a"));
  std::unique_ptr<Checkpoint> b = openOk(dir.file("b"));
  ASSERT_TRUE(a && b);
  QuantizeOptions qo;
  qo.threads = 1;
  ASSERT_TRUE(writeQuantizedCheckpoint(*a, dir.file("qa"), qo).ok());
  qo.threads = 3;
  ASSERT_TRUE(writeQuantizedCheckpoint(*b, dir.file("qb"), qo).ok());
  EXPECT_EQ(readAll(dir.file("qa/model.safetensors")),
            readAll(dir.file("qb/model.safetensors")));
  EXPECT_EQ(readAll(dir.file("qa/config.json")),
            readAll(dir.file("qb/config.json")));
}

// The random checkpoint's stream as jamba-make-checkpoint --help documents
// it, computed here independently: splitmix64 from seed ^ (FNV-1a(name) *
// gamma), one draw discarded, then Box-Muller pairs of uniforms in (0, 1].
double documentedNormal(uint64_t seed, const std::string &name, size_t i) {
  const uint64_t gamma = 0x9E3779B97F4A7C15ull;
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : name)
    h = (h ^ c) * 0x100000001b3ull;
  auto draw = [&](uint64_t k) { // The k-th output, k >= 1.
    uint64_t z = (seed ^ (h * gamma)) + k * gamma;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (static_cast<double>(z >> 11) + 1.0) * 0x1.0p-53;
  };
  uint64_t pair = i / 2;
  double u1 = draw(2 + 2 * pair), u2 = draw(3 + 2 * pair);
  double r = std::sqrt(-2.0 * std::log(u1)), a = 2.0 * M_PI * u2;
  return i % 2 == 0 ? r * std::cos(a) : r * std::sin(a);
}

// A tensor large enough to be generated in chunks on several threads holds
// the documented stream at and around the chunk boundaries, and the bytes do
// not depend on the thread count.
TEST(RandomCheckpointTest, ThreadedGenerationFollowsTheDocumentedStream) {
  REQUIRE_TINY_CONFIG(config);
  config.vocabSize = 4099; // 4099 x 64 values: two chunks of 2^17 and more.
  TempDir dir;
  RandomCheckpointOptions ro;
  ro.seed = 11;
  ro.threads = 1;
  ASSERT_TRUE(writeRandomCheckpoint(config, dir.file("one"), ro).ok());
  ro.threads = 3;
  ASSERT_TRUE(writeRandomCheckpoint(config, dir.file("three"), ro).ok());
  EXPECT_EQ(readAll(dir.file("one/model.safetensors")),
            readAll(dir.file("three/model.safetensors")));

  std::unique_ptr<Checkpoint> ckpt = openOk(dir.file("three"));
  ASSERT_TRUE(ckpt);
  const std::string name = "model.embed_tokens.weight";
  std::vector<float> values;
  ASSERT_TRUE(
      ckpt->loadWeightF32(name, {config.vocabSize, config.hiddenSize}, values)
          .ok());
  ASSERT_EQ(values.size(), size_t(4099 * 64));
  // With two workers the second chunk starts at 131168.
  for (size_t i : {size_t(0), size_t(1), size_t(131166), size_t(131167),
                   size_t(131168), size_t(131169), values.size() - 1})
    EXPECT_FLOAT_EQ(values[i],
                    static_cast<float>(0.02 * documentedNormal(11, name, i)))
        << "element " << i;
}

TEST(QuantizeCheckpointTest, ProgressCallbackReachesTotal) {
  REQUIRE_TINY_CONFIG(config);
  TempDir dir;
  ASSERT_TRUE(writeRandomCheckpoint(config, dir.file("src"), {}).ok());
  std::unique_ptr<Checkpoint> in = openOk(dir.file("src"));
  ASSERT_TRUE(in);
  uint64_t lastDone = 0, lastTotal = 0;
  int calls = 0;
  QuantizeOptions qo;
  qo.progressCallback = [&](uint64_t done, uint64_t total) {
    EXPECT_GE(done, lastDone);
    lastDone = done;
    lastTotal = total;
    ++calls;
  };
  ASSERT_TRUE(writeQuantizedCheckpoint(*in, dir.file("dst"), qo).ok());
  EXPECT_GT(calls, 0);
  EXPECT_EQ(lastDone, lastTotal);
  // The source is one f32 model.safetensors of exactly the expected tensors.
  uint64_t bytes = 0;
  for (const std::string &name : in->names())
    bytes += in->find(name)->nbytes;
  EXPECT_EQ(lastTotal, bytes);
}

/// Rewrites `dir`/model.safetensors through `edit`, which may change a
/// tensor's bytes or return false to drop it.
void rewriteWeights(
    const TempDir &tmp, const std::string &dir,
    const std::function<bool(const TensorInfo &, std::string &bytes)> &edit) {
  {
    StatusOr<std::unique_ptr<SafeTensorsFile>> f =
        SafeTensorsFile::open(dir + "/model.safetensors");
    ASSERT_TRUE(f.ok());
    SafeTensorsWriter w;
    for (const TensorInfo &t : (*f)->tensors()) {
      std::string bytes(reinterpret_cast<const char *>(t.data), t.nbytes);
      if (edit(t, bytes))
        ASSERT_TRUE(w.add(t.name, t.dtype, t.shape, bytes).ok());
    }
    ASSERT_TRUE(w.write(tmp.file("weights.tmp")).ok());
  }
  ASSERT_EQ(std::rename(tmp.file("weights.tmp").c_str(),
                        (dir + "/model.safetensors").c_str()),
            0);
}

TEST(QuantizeCheckpointTest, MissingTensorIsNamed) {
  REQUIRE_TINY_CONFIG(config);
  TempDir dir;
  std::string src = dir.file("src");
  ASSERT_TRUE(writeRandomCheckpoint(config, src, {}).ok());
  const std::string missing =
      "model.layers.3.feed_forward.experts.2.down_proj.weight";
  rewriteWeights(dir, src, [&](const TensorInfo &t, std::string &) {
    return t.name != missing;
  });
  std::unique_ptr<Checkpoint> in = openOk(src);
  ASSERT_TRUE(in);
  Status st = writeQuantizedCheckpoint(*in, dir.file("dst"), {});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("'" + missing + "' not found"), std::string::npos)
      << st.message();
  // Nothing was written.
  struct stat sb;
  EXPECT_NE(::stat(dir.file("dst").c_str(), &sb), 0);
}

/// Writes a random f32 checkpoint of `config` to dir/src whose tensor `bad`
/// holds `value` at element 200, and opens it.
std::unique_ptr<Checkpoint> openWithValue(const JambaConfig &config,
                                          TempDir &dir, const std::string &bad,
                                          float value) {
  std::string src = dir.file("src");
  EXPECT_TRUE(writeRandomCheckpoint(config, src, {}).ok());
  rewriteWeights(dir, src, [&](const TensorInfo &t, std::string &bytes) {
    if (t.name == bad)
      std::memcpy(&bytes[4 * 200], &value, 4);
    return true;
  });
  return openOk(src);
}

TEST(QuantizeCheckpointTest, NonFiniteWeightIsNamed) {
  REQUIRE_TINY_CONFIG(config);
  TempDir dir;
  const std::string bad =
      "model.layers.1.feed_forward.experts.3.up_proj.weight";
  std::unique_ptr<Checkpoint> in =
      openWithValue(config, dir, bad, std::numeric_limits<float>::quiet_NaN());
  ASSERT_TRUE(in);
  Status st = writeQuantizedCheckpoint(*in, dir.file("dst"), {});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("tensor '" + bad + "'"), std::string::npos)
      << st.message();
  EXPECT_NE(st.message().find("1 row(s) hold a NaN or an infinity"),
            std::string::npos)
      << st.message();
  // The half-written weights were removed and no config was written.
  struct stat sb;
  EXPECT_NE(::stat(dir.file("dst/model.safetensors").c_str(), &sb), 0);
  EXPECT_NE(::stat(dir.file("dst/config.json").c_str(), &sb), 0);
}

TEST(QuantizeCheckpointTest, BadOutputDirectoriesAreNamed) {
  REQUIRE_TINY_CONFIG(config);
  TempDir dir;
  std::string src = dir.file("src");
  ASSERT_TRUE(writeRandomCheckpoint(config, src, {}).ok());
  std::unique_ptr<Checkpoint> in = openOk(src);
  ASSERT_TRUE(in);

  writeFile(dir.file("plain-file"), "x");
  std::string under = dir.file("plain-file") + "/out";
  Status st = writeQuantizedCheckpoint(*in, under, {});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message().rfind(under + ": cannot create directory", 0), 0u)
      << st.message();

  st = writeQuantizedCheckpoint(*in, dir.file("plain-file"), {});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message(), dir.file("plain-file") + ": not a directory");

  st = writeQuantizedCheckpoint(*in, src + "/", {});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("must not be the input"), std::string::npos)
      << st.message();
}

TEST(QuantizeCheckpointTest, AlreadyQuantizedIsAnError) {
  REQUIRE_TINY_CONFIG(config);
  TempDir dir;
  ASSERT_TRUE(writeRandomCheckpoint(config, dir.file("src"), {}).ok());
  std::unique_ptr<Checkpoint> in = openOk(dir.file("src"));
  ASSERT_TRUE(in);
  ASSERT_TRUE(writeQuantizedCheckpoint(*in, dir.file("q"), {}).ok());
  std::unique_ptr<Checkpoint> q = openOk(dir.file("q"));
  ASSERT_TRUE(q);
  Status st = writeQuantizedCheckpoint(*q, dir.file("qq"), {});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("already quantized"), std::string::npos)
      << st.message();
  StatusOr<std::unique_ptr<ExpertsInt8Reader>> reader =
      ExpertsInt8Reader::open(*q, {});
  ASSERT_FALSE(reader.ok());
  EXPECT_NE(reader.status().message().find("already quantized"),
            std::string::npos)
      << reader.status().message();
}

TEST(ExpertsInt8ReaderTest, ErrorsNameTheTensor) {
  REQUIRE_TINY_CONFIG(config);
  TempDir dir;
  // An infinity in one expert's row: loading its stack (or the stack's
  // scales) fails, naming the weight; other weights still load.
  std::unique_ptr<Checkpoint> in = openWithValue(
      config, dir, "model.layers.1.feed_forward.experts.3.up_proj.weight",
      std::numeric_limits<float>::infinity());
  ASSERT_TRUE(in);
  StatusOr<std::unique_ptr<ExpertsInt8Reader>> reader =
      ExpertsInt8Reader::open(*in, {});
  ASSERT_TRUE(reader.ok()) << reader.status().message();
  const std::string pattern =
      "model.layers.1.feed_forward.experts.{e}.up_proj.weight";
  StatusOr<std::vector<int64_t>> shape = expectedShape(config, pattern);
  ASSERT_TRUE(shape.ok());
  std::vector<int64_t> scaleShape(shape->begin(), shape->end() - 1);
  std::vector<float> values;
  for (const std::string &name : {pattern, int8ScaleName(pattern)}) {
    Status st = (*reader)->loadWeightF32(
        name, name == pattern ? *shape : scaleShape, values);
    ASSERT_FALSE(st.ok()) << name;
    EXPECT_NE(st.message().find("tensor '" + pattern +
                                "': 1 row(s) hold a NaN or an infinity"),
              std::string::npos)
        << st.message();
  }
  Status st = (*reader)->loadWeightF32(
      "model.layers.1.feed_forward.experts.{e}.gate_proj.weight", *shape,
      values);
  EXPECT_TRUE(st.ok()) << st.message();
  // Expert by expert: only expert 3's load fails.
  std::vector<int64_t> expertShape(shape->begin() + 1, shape->end());
  std::vector<int64_t> expertScales(shape->begin() + 1, shape->end() - 1);
  for (int64_t e = 0; e < config.numExperts; ++e)
    for (const std::string &name : {pattern, int8ScaleName(pattern)}) {
      Status st = (*reader)->loadExpertWeightF32(
          name, e, name == pattern ? expertShape : expertScales, values);
      EXPECT_EQ(st.ok(), e != 3) << name << " " << e;
      if (e == 3)
        EXPECT_NE(st.message().find("tensor '" + pattern +
                                    "': 1 row(s) hold a NaN or an infinity"),
                  std::string::npos)
            << st.message();
    }
  // An expert the model does not have, and scales of another shape.
  for (int64_t e : {int64_t(-1), int64_t(config.numExperts)}) {
    Status st = (*reader)->loadExpertWeightF32(int8ScaleName(pattern), e,
                                               expertScales, values);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.message().find("': expert " + std::to_string(e) +
                                " is not in [0, " +
                                std::to_string(config.numExperts) + ")"),
              std::string::npos)
        << st.message();
  }
  {
    std::vector<int64_t> wrong = expertScales;
    wrong.back() += 1;
    Status st = (*reader)->loadExpertWeightF32(int8ScaleName(pattern), 0, wrong,
                                               values);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.message().find("tensor '" + int8ScaleName(pattern) +
                                "' (expert 0): expected shape"),
              std::string::npos)
        << st.message();
  }
  // Scales asked for with a shape that is not the weight's rows.
  std::vector<int64_t> wrong = scaleShape;
  wrong.back() += 1;
  st = (*reader)->checkWeight(int8ScaleName(pattern), wrong);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("tensor '" + int8ScaleName(pattern) +
                              "': expected shape"),
            std::string::npos)
      << st.message();
  // A name the model does not have.
  st = (*reader)->checkWeight("model.layers.1.nothing.weight", {4});
  EXPECT_FALSE(st.ok());
}

TEST(QuantizeCheckpointTest, StaleIndexInOutputIsRemoved) {
  REQUIRE_TINY_CONFIG(config);
  TempDir dir;
  RandomCheckpointOptions ro;
  ro.shards = 2;
  // A sharded checkpoint already in the output directory.
  ASSERT_TRUE(writeRandomCheckpoint(config, dir.file("dst"), ro).ok());
  ASSERT_TRUE(writeRandomCheckpoint(config, dir.file("src"), {}).ok());
  std::unique_ptr<Checkpoint> in = openOk(dir.file("src"));
  ASSERT_TRUE(in);
  ASSERT_TRUE(writeQuantizedCheckpoint(*in, dir.file("dst"), {}).ok());
  struct stat sb;
  EXPECT_NE(::stat(dir.file("dst/model.safetensors.index.json").c_str(), &sb),
            0);
  std::unique_ptr<Checkpoint> out = openOk(dir.file("dst"));
  ASSERT_TRUE(out);
  expectQuantizedCopy(*in, *out, false);
}

} // namespace

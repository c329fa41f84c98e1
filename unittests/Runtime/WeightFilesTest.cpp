//===- WeightFilesTest.cpp - An artifact's weights from a checkpoint ------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// sliceWeightValues on hand-computed cuts, and writeWeightFiles over an
// in-memory checkpoint: every rank's file holds its cut of each tensor (a
// slice, zeros, a value), each tensor is read once for all ranks, and a
// missing or misshapen tensor is an error before anything is written.
// rebindWeights refuses a multi-rank manifest that does not record its cuts
// (test/Tools/jamba-rebind.test rebinds real ones).
//
//===----------------------------------------------------------------------===//

#include "jamba/Runtime/WeightFiles.h"
#include "jamba/Runtime/ExampleArtifact.h"
#include "jamba/Runtime/RebindWeights.h"
#include "jamba/Runtime/Sha256.h"

#include "gtest/gtest.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <system_error>
#include <vector>

#include <unistd.h>

using namespace jamba;
using namespace jamba::rt;

namespace {

/// A checkpoint in memory: each tensor's shape and values; counts the
/// loads, and fails those of `failingLoad` (which checkWeight accepts).
class FakeCheckpoint final : public ckpt::WeightReader {
public:
  struct Tensor {
    std::vector<int64_t> shape;
    std::vector<float> values;
  };
  std::map<std::string, Tensor> tensors;
  std::string failingLoad;
  mutable std::map<std::string, int> loads;
  /// Every load, in order (experts as "name[e]").
  mutable std::vector<std::string> loadOrder;

  const ckpt::JambaConfig &config() const override { return cfg; }
  ckpt::Status loadWeightF32(const std::string &name,
                             const std::vector<int64_t> &expectedShape,
                             std::vector<float> &out) const override {
    ++loads[name];
    loadOrder.push_back(name);
    if (name == failingLoad)
      return ckpt::makeError("fake: cannot read '", name, "'");
    JAMBA_CKPT_RETURN_IF_ERROR(checkWeight(name, expectedShape));
    out = tensors.at(name).values;
    return ckpt::Status::success();
  }
  /// Counted in `loads` as "name[e]".
  ckpt::Status loadExpertWeightF32(const std::string &pattern, int64_t expert,
                                   const std::vector<int64_t> &expectedShape,
                                   std::vector<float> &out) const override {
    ++loads[pattern + "[" + std::to_string(expert) + "]"];
    loadOrder.push_back(pattern + "[" + std::to_string(expert) + "]");
    if (pattern == failingLoad)
      return ckpt::makeError("fake: cannot read '", pattern, "'");
    return loadExpert(pattern, expert, expectedShape, out);
  }
  /// Expert `expert` of the stack `pattern`, not counted.
  ckpt::Status loadExpert(const std::string &pattern, int64_t expert,
                          const std::vector<int64_t> &expectedShape,
                          std::vector<float> &out) const {
    auto it = tensors.find(pattern);
    if (it == tensors.end() || it->second.shape.empty() ||
        std::vector<int64_t>(it->second.shape.begin() + 1,
                             it->second.shape.end()) != expectedShape ||
        expert < 0 || expert >= it->second.shape[0])
      return ckpt::makeError("fake: no expert ", expert, " of '", pattern,
                             "' of shape ", ckpt::formatShape(expectedShape));
    size_t size = it->second.values.size() / it->second.shape[0];
    out.assign(it->second.values.begin() + expert * size,
               it->second.values.begin() + (expert + 1) * size);
    return ckpt::Status::success();
  }
  /// The tensors named here are stored in that dtype: copyStoredBytes
  /// gives their bytes (encoded from `values`) when asked for it, counted
  /// in `copies` (experts as "name[e]").
  std::map<std::string, ckpt::DType> stored;
  mutable std::map<std::string, int> copies;
  ckpt::StatusOr<bool>
  copyStoredBytes(const std::string &name, int64_t expert,
                  const std::vector<int64_t> &expectedShape, ckpt::DType dtype,
                  uint8_t *dst, size_t nbytes) const override {
    auto it = stored.find(name);
    if (it == stored.end() || it->second != dtype)
      return false;
    std::vector<float> values;
    JAMBA_CKPT_RETURN_IF_ERROR(
        expert < 0 ? checkWeight(name, expectedShape)
                   : loadExpert(name, expert, expectedShape, values));
    if (expert < 0)
      values = tensors.at(name).values;
    if (values.size() * ckpt::dtypeSize(dtype) != nbytes)
      return ckpt::makeError("fake: ", nbytes, " bytes for '", name, "'");
    ++copies[expert < 0 ? name : name + "[" + std::to_string(expert) + "]"];
    encodeWeightValues(values, dtype, dst);
    return true;
  }
  ckpt::Status
  checkWeight(const std::string &name,
              const std::vector<int64_t> &expectedShape) const override {
    auto it = tensors.find(name);
    if (it == tensors.end())
      return ckpt::makeError("fake: no tensor '", name, "'");
    if (it->second.shape != expectedShape)
      return ckpt::makeError("fake: tensor '", name, "' has shape ",
                             ckpt::formatShape(it->second.shape), ", expected ",
                             ckpt::formatShape(expectedShape));
    return ckpt::Status::success();
  }

private:
  ckpt::JambaConfig cfg;
};

/// Random values that are exact in bf16 (and integers for I8 tensors).
std::vector<float> randomValues(size_t n, unsigned seed, bool integers) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> dist(-127, 127);
  std::vector<float> v(n);
  for (float &x : v)
    x = integers ? static_cast<float>(dist(rng))
                 : static_cast<float>(dist(rng)) / 64.0f;
  return v;
}

/// A fresh directory, removed with its contents on destruction.
class TempDir {
public:
  TempDir() {
    std::string tmpl = std::filesystem::temp_directory_path().string() +
                       "/jamba-weight-files-XXXXXX";
    if (::mkdtemp(tmpl.data()))
      dir = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  const std::string &path() const { return dir; }

private:
  std::string dir;
};

WeightDesc weight(std::string name, int64_t rank, ckpt::DType dtype,
                  std::vector<int64_t> shape, WeightOrigin from = {}) {
  WeightDesc w;
  w.name = std::move(name);
  w.rank = rank;
  w.file = "weights/rank-" + std::to_string(rank) + ".safetensors";
  w.dtype = dtype;
  w.shape = std::move(shape);
  w.from = std::move(from);
  return w;
}

/// Tensor `name` of the file at `path`, as floats.
std::vector<float> readTensor(const std::string &path,
                              const std::string &name) {
  auto file = ckpt::SafeTensorsFile::open(path);
  EXPECT_TRUE(file.ok()) << file.status().message();
  if (!file.ok())
    return {};
  const ckpt::TensorInfo *info = (*file)->find(name);
  EXPECT_NE(info, nullptr) << name;
  if (!info)
    return {};
  std::vector<float> out;
  ckpt::Status st = ckpt::readAsF32(*info, out);
  EXPECT_TRUE(st.ok()) << st.message();
  return out;
}

// Hand-computed: a [2, 3, 4] tensor holding 0..23 (element (i, j, k) =
// 12 i + 4 j + k). Taking i = 1, j in {0, 2}, k in {1, 2} gives 13, 14, 21,
// 22; a last dimension of two runs is taken run by run.
TEST(WeightFilesTest, SliceTakesTheRunsRowMajor) {
  std::vector<float> full(24);
  for (int i = 0; i < 24; ++i)
    full[i] = static_cast<float>(i);
  std::vector<float> out;
  sliceWeightValues(
      full,
      WeightOrigin::slice({2, 3, 4}, {{{1, 1}}, {{0, 1}, {2, 1}}, {{1, 2}}}),
      out);
  EXPECT_EQ(out, (std::vector<float>{13, 14, 21, 22}));
  sliceWeightValues(
      full,
      WeightOrigin::slice({2, 3, 4}, {{{0, 2}}, {{1, 1}}, {{3, 1}, {0, 1}}}),
      out);
  EXPECT_EQ(out, (std::vector<float>{7, 4, 19, 16}));
  sliceWeightValues(full, WeightOrigin::slice({24}, {{{5, 3}, {20, 2}}}), out);
  EXPECT_EQ(out, (std::vector<float>{5, 6, 7, 20, 21}));
  // Nothing taken along a dimension of size 0.
  sliceWeightValues({}, WeightOrigin::slice({0, 4}, {{}, {{0, 4}}}), out);
  EXPECT_TRUE(out.empty());
  // The same cut of 2-byte elements (bf16's size), byte for byte.
  std::vector<uint16_t> narrow(24);
  for (int i = 0; i < 24; ++i)
    narrow[i] = static_cast<uint16_t>(0x100 * i + i);
  WeightOrigin cut =
      WeightOrigin::slice({2, 3, 4}, {{{0, 2}}, {{1, 1}}, {{3, 1}, {0, 1}}});
  ASSERT_EQ(sliceElements(cut), 4u);
  std::vector<uint16_t> narrowOut(4);
  sliceWeightBytes(reinterpret_cast<const uint8_t *>(narrow.data()), 2, cut,
                   reinterpret_cast<uint8_t *>(narrowOut.data()));
  EXPECT_EQ(narrowOut, (std::vector<uint16_t>{0x707, 0x404, 0x1313, 0x1010}));
}

// Two ranks of a tensor-parallel pair: a weight split by columns, a bias
// whole on rank 0 and zeros on rank 1, an I8 weight split by rows, a whole
// norm, and the synthetic expert offset. Each checkpoint tensor is read
// once for both ranks.
TEST(WeightFilesTest, WritesEveryRanksCut) {
  FakeCheckpoint ckpt;
  ckpt.tensors["w"] = {{4, 4}, randomValues(16, 1, false)};
  ckpt.tensors["b"] = {{3}, randomValues(3, 2, false)};
  ckpt.tensors["q"] = {{4, 2}, randomValues(8, 3, true)};
  ckpt.tensors["norm"] = {{4}, randomValues(4, 4, false)};
  ArtifactManifest m;
  m.ranks = 2;
  for (int64_t r = 0; r < 2; ++r) {
    m.weights.push_back(weight("b", r, ckpt::DType::BF16, {3}));
    if (r == 1)
      m.weights.back().from = WeightOrigin::zeros({3});
    m.weights.push_back(weight("norm", r, ckpt::DType::F32, {4}));
    m.weights.push_back(
        weight("q", r, ckpt::DType::I8, {2, 2},
               WeightOrigin::slice({4, 2}, {{{2 * r, 2}}, {{0, 2}}})));
    m.weights.push_back(
        weight("w", r, ckpt::DType::F32, {4, 2},
               WeightOrigin::slice({4, 4}, {{{0, 4}}, {{2 * r, 2}}})));
    WeightDesc offset =
        weight("jamba.rank.expert_offset", r, ckpt::DType::I64, {1});
    offset.from = WeightOrigin::constant(8 * r + 3);
    m.weights.push_back(offset);
  }
  TempDir dir;
  ckpt::StatusOr<std::vector<FileDesc>> files =
      writeWeightFiles(ckpt, m, dir.path());
  ASSERT_TRUE(files.ok()) << files.status().message();
  ASSERT_EQ(files->size(), 2u);
  for (int64_t r = 0; r < 2; ++r) {
    // Hashed as written: what reading the file back gives.
    const FileDesc &file = (*files)[r];
    EXPECT_EQ(file.path, "weights/rank-" + std::to_string(r) + ".safetensors");
    uint64_t size = 0;
    ckpt::StatusOr<std::string> hash =
        sha256File(dir.path() + "/" + file.path, &size);
    ASSERT_TRUE(hash.ok()) << hash.status().message();
    EXPECT_EQ(file.sha256, *hash);
    EXPECT_EQ(file.size, size);
  }
  // Zeros are not read; everything else once.
  EXPECT_EQ(ckpt.loads, (std::map<std::string, int>{
                            {"b", 1}, {"norm", 1}, {"q", 1}, {"w", 1}}));

  const std::vector<float> &w = ckpt.tensors["w"].values;
  const std::vector<float> &q = ckpt.tensors["q"].values;
  for (int64_t r = 0; r < 2; ++r) {
    std::string path = dir.path() + "/" + (*files)[r].path;
    auto file = ckpt::SafeTensorsFile::open(path);
    ASSERT_TRUE(file.ok()) << file.status().message();
    EXPECT_EQ((*file)->names(),
              (std::vector<std::string>{"b", "norm", "q", "w",
                                        "jamba.rank.expert_offset"}));
    EXPECT_EQ((*file)->find("b")->dtype, ckpt::DType::BF16);
    EXPECT_EQ((*file)->find("q")->dtype, ckpt::DType::I8);
    EXPECT_EQ((*file)->metadata(),
              (std::vector<std::pair<std::string, std::string>>{
                  {"format", "jamba-artifact"}}));
    EXPECT_EQ(readTensor(path, "b"),
              r == 0 ? ckpt.tensors["b"].values : std::vector<float>(3, 0.0f));
    EXPECT_EQ(readTensor(path, "norm"), ckpt.tensors["norm"].values);
    // Rows 2r, 2r + 1 of q; columns 2r, 2r + 1 of w.
    EXPECT_EQ(readTensor(path, "q"),
              (std::vector<float>(q.begin() + 4 * r, q.begin() + 4 * r + 4)));
    std::vector<float> columns;
    for (int row = 0; row < 4; ++row)
      for (int col = 0; col < 2; ++col)
        columns.push_back(w[4 * row + 2 * r + col]);
    EXPECT_EQ(readTensor(path, "w"), columns);
    const ckpt::TensorInfo *offset = (*file)->find("jamba.rank.expert_offset");
    ASSERT_NE(offset, nullptr);
    ASSERT_EQ(offset->dtype, ckpt::DType::I64);
    int64_t value = 0;
    std::memcpy(&value, offset->data, sizeof(value));
    EXPECT_EQ(value, 8 * r + 3);
  }
}

// A stack of experts ("{e}") is made expert by expert, each expert read
// once: one rank taking them all, two ranks of expert parallelism taking
// three experts each, two ranks of tensor parallelism taking some columns
// of every expert, and 2 x 2 ranks taking both. The stack is never loaded
// whole.
TEST(WeightFilesTest, WritesAStackOfExpertsExpertByExpert) {
  FakeCheckpoint ckpt;
  const std::string up = "layer.experts.{e}.up",
                    down = "layer.experts.{e}.down";
  ckpt.tensors[up] = {{6, 3, 4}, randomValues(72, 5, true)};
  ckpt.tensors[down] = {{6, 4, 3}, randomValues(72, 6, false)};
  const std::vector<float> &upValues = ckpt.tensors[up].values;
  const std::vector<float> &downValues = ckpt.tensors[down].values;

  ArtifactManifest m;
  m.weights.push_back(weight(up, 0, ckpt::DType::I8, {6, 3, 4}));
  m.weights.push_back(weight(down, 0, ckpt::DType::BF16, {6, 4, 3}));
  TempDir one;
  ckpt::StatusOr<std::vector<FileDesc>> files =
      writeWeightFiles(ckpt, m, one.path());
  ASSERT_TRUE(files.ok()) << files.status().message();
  std::map<std::string, int> loads;
  for (int e = 0; e < 6; ++e) {
    loads[up + "[" + std::to_string(e) + "]"] = 1;
    loads[down + "[" + std::to_string(e) + "]"] = 1;
  }
  EXPECT_EQ(ckpt.loads, loads);
  std::string path = one.path() + "/" + (*files)[0].path;
  EXPECT_EQ(readTensor(path, up), upValues);
  EXPECT_EQ(readTensor(path, down), downValues);

  // Expert parallelism: rank r takes experts 3r .. 3r + 2 (rank 1 as two
  // runs, 3 and 4..5).
  ckpt.loads.clear();
  m.ranks = 2;
  m.weights.clear();
  for (int64_t r = 0; r < 2; ++r) {
    std::vector<IndexRun> experts = r == 0
                                        ? std::vector<IndexRun>{{0, 3}}
                                        : std::vector<IndexRun>{{3, 1}, {4, 2}};
    m.weights.push_back(
        weight(up, r, ckpt::DType::I8, {3, 3, 4},
               WeightOrigin::slice({6, 3, 4}, {experts, {{0, 3}}, {{0, 4}}})));
    // A tensor-parallel cut: columns 0..1 of rank 0, 2 of rank 1.
    m.weights.push_back(
        weight(down, r, ckpt::DType::F32, {6, 4, r == 0 ? 2 : 1},
               WeightOrigin::slice(
                   {6, 4, 3},
                   {{{0, 6}}, {{0, 4}}, {{r == 0 ? 0 : 2, r == 0 ? 2 : 1}}})));
  }
  TempDir two;
  files = writeWeightFiles(ckpt, m, two.path());
  ASSERT_TRUE(files.ok()) << files.status().message();
  // Rank 0's cut of `down` made each expert's cut of rank 1 too.
  loads.clear();
  for (int e = 0; e < 6; ++e) {
    loads[up + "[" + std::to_string(e) + "]"] = 1;
    loads[down + "[" + std::to_string(e) + "]"] = 1;
  }
  EXPECT_EQ(ckpt.loads, loads);
  for (int64_t r = 0; r < 2; ++r) {
    path = two.path() + "/" + (*files)[r].path;
    EXPECT_EQ(readTensor(path, up),
              std::vector<float>(upValues.begin() + 36 * r,
                                 upValues.begin() + 36 * (r + 1)));
    std::vector<float> columns;
    for (int row = 0; row < 24; ++row)
      for (int col = r == 0 ? 0 : 2; col < (r == 0 ? 2 : 3); ++col)
        columns.push_back(downValues[3 * row + col]);
    EXPECT_EQ(readTensor(path, down), columns);
  }

  // 2 x 2 ranks, listed rank 3 first: rank 2p + t takes experts 3p .. 3p + 2
  // and columns {t, 2 + t} of each (two runs) of `up`, as I8, and the
  // same experts of `down` whole, as BF16. Each expert is read once; the
  // two ranks of an expert group are made from the same reads.
  ckpt.loads.clear();
  ckpt.loadOrder.clear();
  m.ranks = 4;
  m.weights.clear();
  for (int64_t r = 4; r-- > 0;) {
    const int64_t p = r / 2, t = r % 2;
    m.weights.push_back(
        weight(up, r, ckpt::DType::I8, {3, 3, 2},
               WeightOrigin::slice(
                   {6, 3, 4}, {{{3 * p, 3}}, {{0, 3}}, {{t, 1}, {2 + t, 1}}})));
    m.weights.push_back(weight(
        down, r, ckpt::DType::BF16, {3, 4, 3},
        WeightOrigin::slice({6, 4, 3}, {{{3 * p, 3}}, {{0, 4}}, {{0, 3}}})));
  }
  TempDir four;
  files = writeWeightFiles(ckpt, m, four.path());
  ASSERT_TRUE(files.ok()) << files.status().message();
  EXPECT_EQ(ckpt.loads, loads);
  // Rank 3's file comes first: experts 3..5 of `up`, then 0..2 (rank 1).
  ASSERT_GE(ckpt.loadOrder.size(), 6u);
  EXPECT_EQ(std::vector<std::string>(ckpt.loadOrder.begin(),
                                     ckpt.loadOrder.begin() + 6),
            (std::vector<std::string>{up + "[3]", up + "[4]", up + "[5]",
                                      up + "[0]", up + "[1]", up + "[2]"}));
  ASSERT_EQ(files->size(), 4u);
  for (int64_t r = 0; r < 4; ++r) {
    const int64_t p = r / 2, t = r % 2;
    path = four.path() + "/weights/rank-" + std::to_string(r) + ".safetensors";
    std::vector<float> columns;
    for (int64_t e = 3 * p; e < 3 * p + 3; ++e)
      for (int64_t row = 0; row < 3; ++row)
        for (int64_t col : {t, 2 + t})
          columns.push_back(upValues[12 * e + 4 * row + col]);
    EXPECT_EQ(readTensor(path, up), columns) << "rank " << r;
    EXPECT_EQ(readTensor(path, down),
              std::vector<float>(downValues.begin() + 36 * p,
                                 downValues.begin() + 36 * (p + 1)))
        << "rank " << r;
  }

  // An expert that fails to read is an error, as a whole tensor's is.
  m.ranks = 1;
  m.weights = {weight(up, 0, ckpt::DType::I8, {6, 3, 4})};
  ckpt.failingLoad = up;
  TempDir failing;
  files = writeWeightFiles(ckpt, m, failing.path());
  ASSERT_FALSE(files.ok());
  EXPECT_EQ(files.status().message(), "fake: cannot read '" + up + "'");
}

// A weight or an expert in the dtype the checkpoint stores it in is copied
// as stored, or cut from its stored bytes, not loaded as f32 and converted
// back; a weight in another dtype is loaded. Both give the same bytes.
TEST(WeightFilesTest, CopiesWhatIsStoredInItsDtype) {
  FakeCheckpoint ckpt;
  const std::string a = "a", b = "b", up = "layer.experts.{e}.up",
                    down = "layer.experts.{e}.down";
  ckpt.tensors[a] = {{3, 4}, randomValues(12, 1, false)};
  ckpt.tensors[b] = {{4, 2}, randomValues(8, 2, false)};
  ckpt.tensors[up] = {{4, 3, 4}, randomValues(48, 3, false)};
  ckpt.tensors[down] = {{4, 4, 3}, randomValues(48, 4, true)};
  for (const std::string &name : {a, b, up, down})
    ckpt.stored[name] = ckpt::DType::BF16;
  auto experts = [](const std::string &pattern, int count) {
    std::map<std::string, int> n;
    for (int e = 0; e < 4; ++e)
      n[pattern + "[" + std::to_string(e) + "]"] = count;
    return n;
  };

  // One rank: `a` and `up` BF16 as stored, `b` F32 and `down` I8 converted.
  ArtifactManifest m;
  m.weights = {weight(a, 0, ckpt::DType::BF16, {3, 4}),
               weight(b, 0, ckpt::DType::F32, {4, 2}),
               weight(up, 0, ckpt::DType::BF16, {4, 3, 4}),
               weight(down, 0, ckpt::DType::I8, {4, 4, 3})};
  TempDir one;
  ckpt::StatusOr<std::vector<FileDesc>> files =
      writeWeightFiles(ckpt, m, one.path());
  ASSERT_TRUE(files.ok()) << files.status().message();
  std::map<std::string, int> copies = experts(up, 1), loads = experts(down, 1);
  copies[a] = 1;
  loads[b] = 1;
  EXPECT_EQ(ckpt.copies, copies);
  EXPECT_EQ(ckpt.loads, loads);
  std::string path = one.path() + "/" + (*files)[0].path;
  for (const std::string &name : {a, b, up, down})
    EXPECT_EQ(readTensor(path, name), ckpt.tensors[name].values) << name;

  // The same files from a checkpoint that gives no stored bytes.
  FakeCheckpoint converted = ckpt;
  converted.stored.clear();
  converted.loads.clear();
  converted.copies.clear();
  TempDir same;
  ckpt::StatusOr<std::vector<FileDesc>> sameFiles =
      writeWeightFiles(converted, m, same.path());
  ASSERT_TRUE(sameFiles.ok()) << sameFiles.status().message();
  EXPECT_TRUE(converted.copies.empty());
  EXPECT_EQ((*sameFiles)[0].sha256, (*files)[0].sha256);

  // 2 x 2 ranks: rank 2p + t takes experts 2p, 2p + 1 of `up` whole (its
  // two ranks copy each expert) and column t of each of `down`'s (each
  // expert copied once and cut for both), row t of `a` (copied once for
  // all four ranks and cut), and rows 2t, 2t + 1 of `b` as F32 (loaded
  // once).
  ckpt.copies.clear();
  ckpt.loads.clear();
  m.ranks = 4;
  m.weights.clear();
  for (int64_t r = 0; r < 4; ++r) {
    const int64_t p = r / 2, t = r % 2;
    m.weights.push_back(
        weight(a, r, ckpt::DType::BF16, {1, 4},
               WeightOrigin::slice({3, 4}, {{{t, 1}}, {{0, 4}}})));
    m.weights.push_back(
        weight(b, r, ckpt::DType::F32, {2, 2},
               WeightOrigin::slice({4, 2}, {{{2 * t, 2}}, {{0, 2}}})));
    m.weights.push_back(weight(
        up, r, ckpt::DType::BF16, {2, 3, 4},
        WeightOrigin::slice({4, 3, 4}, {{{2 * p, 2}}, {{0, 3}}, {{0, 4}}})));
    m.weights.push_back(weight(
        down, r, ckpt::DType::BF16, {2, 4, 1},
        WeightOrigin::slice({4, 4, 3}, {{{2 * p, 2}}, {{0, 4}}, {{t, 1}}})));
  }
  TempDir four;
  files = writeWeightFiles(ckpt, m, four.path());
  ASSERT_TRUE(files.ok()) << files.status().message();
  copies = experts(up, 2);
  for (const auto &kv : experts(down, 1))
    copies.insert(kv);
  copies[a] = 1;
  EXPECT_EQ(ckpt.copies, copies);
  EXPECT_EQ(ckpt.loads, (std::map<std::string, int>{{b, 1}}));
  const std::vector<float> &aValues = ckpt.tensors[a].values,
                           &bValues = ckpt.tensors[b].values,
                           &upValues = ckpt.tensors[up].values,
                           &downValues = ckpt.tensors[down].values;
  for (int64_t r = 0; r < 4; ++r) {
    const int64_t p = r / 2, t = r % 2;
    path = four.path() + "/weights/rank-" + std::to_string(r) + ".safetensors";
    EXPECT_EQ(readTensor(path, a),
              std::vector<float>(aValues.begin() + 4 * t,
                                 aValues.begin() + 4 * (t + 1)))
        << "rank " << r;
    EXPECT_EQ(readTensor(path, b),
              std::vector<float>(bValues.begin() + 4 * t,
                                 bValues.begin() + 4 * (t + 1)))
        << "rank " << r;
    EXPECT_EQ(readTensor(path, up),
              std::vector<float>(upValues.begin() + 24 * p,
                                 upValues.begin() + 24 * (p + 1)))
        << "rank " << r;
    std::vector<float> column;
    for (int64_t row = 8 * p; row < 8 * (p + 1); ++row)
      column.push_back(downValues[3 * row + t]);
    EXPECT_EQ(readTensor(path, down), column) << "rank " << r;
  }

  // The same files from a checkpoint that gives no stored bytes.
  converted.loads.clear();
  TempDir fourConverted;
  sameFiles = writeWeightFiles(converted, m, fourConverted.path());
  ASSERT_TRUE(sameFiles.ok()) << sameFiles.status().message();
  EXPECT_TRUE(converted.copies.empty());
  ASSERT_EQ(sameFiles->size(), files->size());
  for (size_t f = 0; f < files->size(); ++f)
    EXPECT_EQ((*sameFiles)[f].sha256, (*files)[f].sha256) << "file " << f;
}

// Each rank's weights in two parts (jamba-compile --weights-file-size): the
// files of one part, one per rank, are written together, every tensor read
// once for both ranks' cuts, and before the next part's. Rounds over all
// four files would read part 1's "c" between part 0's "a" and "b": between
// an expert stack and its scales, ExpertsInt8Reader would quantize another
// stack and then that one again for its scales.
TEST(WeightFilesTest, WritesThePartsOfEveryRankPartByPart) {
  FakeCheckpoint ckpt;
  ckpt.tensors["a"] = {{4, 2}, randomValues(8, 7, false)};
  ckpt.tensors["b"] = {{4}, randomValues(4, 8, false)};
  ckpt.tensors["c"] = {{2, 4}, randomValues(8, 9, false)};
  ArtifactManifest m;
  m.ranks = 2;
  auto file = [](int64_t rank, int part) {
    return "weights/rank-" + std::to_string(rank) + "-part-" +
           std::to_string(part) + ".safetensors";
  };
  for (int part = 0; part < 2; ++part) {
    for (int64_t r = 0; r < 2; ++r) {
      if (part == 0) {
        m.weights.push_back(
            weight("a", r, ckpt::DType::F32, {2, 2},
                   WeightOrigin::slice({4, 2}, {{{2 * r, 2}}, {{0, 2}}})));
        m.weights.back().file = file(r, part);
        m.weights.push_back(weight("b", r, ckpt::DType::F32, {4}));
        m.weights.back().file = file(r, part);
      } else {
        m.weights.push_back(
            weight("c", r, ckpt::DType::F32, {2, 2},
                   WeightOrigin::slice({2, 4}, {{{0, 2}}, {{2 * r, 2}}})));
        m.weights.back().file = file(r, part);
      }
    }
  }
  TempDir dir;
  ckpt::StatusOr<std::vector<FileDesc>> files =
      writeWeightFiles(ckpt, m, dir.path());
  ASSERT_TRUE(files.ok()) << files.status().message();
  EXPECT_EQ(ckpt.loadOrder, (std::vector<std::string>{"a", "b", "c"}));
  ASSERT_EQ(files->size(), 4u);
  const std::vector<float> &a = ckpt.tensors["a"].values;
  const std::vector<float> &c = ckpt.tensors["c"].values;
  for (int64_t r = 0; r < 2; ++r) {
    const FileDesc &part0 = (*files)[r], &part1 = (*files)[2 + r];
    EXPECT_EQ(part0.path, file(r, 0));
    EXPECT_EQ(part1.path, file(r, 1));
    for (const FileDesc *f : {&part0, &part1}) {
      uint64_t size = 0;
      ckpt::StatusOr<std::string> hash =
          sha256File(dir.path() + "/" + f->path, &size);
      ASSERT_TRUE(hash.ok()) << hash.status().message();
      EXPECT_EQ(f->sha256, *hash);
      EXPECT_EQ(f->size, size);
    }
    std::string path0 = dir.path() + "/" + part0.path;
    std::string path1 = dir.path() + "/" + part1.path;
    EXPECT_EQ(readTensor(path0, "a"),
              (std::vector<float>(a.begin() + 4 * r, a.begin() + 4 * r + 4)));
    EXPECT_EQ(readTensor(path0, "b"), ckpt.tensors["b"].values);
    EXPECT_EQ(readTensor(path1, "c"),
              (std::vector<float>{c[2 * r], c[2 * r + 1], c[4 + 2 * r],
                                  c[5 + 2 * r]}));
  }

  // The same weights listed rank by rank (rank 0's parts, then rank 1's):
  // the files of a part are still written together, each tensor read once.
  ArtifactManifest rankMajor = m;
  rankMajor.weights.clear();
  for (int64_t r = 0; r < 2; ++r)
    for (const WeightDesc &w : m.weights)
      if (w.rank == r)
        rankMajor.weights.push_back(w);
  ckpt.loadOrder.clear();
  TempDir again;
  files = writeWeightFiles(ckpt, rankMajor, again.path());
  ASSERT_TRUE(files.ok()) << files.status().message();
  EXPECT_EQ(ckpt.loadOrder, (std::vector<std::string>{"a", "b", "c"}));
  ASSERT_EQ(files->size(), 4u);
  EXPECT_EQ((*files)[0].path, file(0, 0));
  EXPECT_EQ((*files)[1].path, file(0, 1));
  for (int64_t r = 0; r < 2; ++r)
    for (int part = 0; part < 2; ++part) {
      const FileDesc &f = (*files)[2 * r + part];
      EXPECT_EQ(f.path, file(r, part));
      // The bytes of the part-major manifest's file.
      EXPECT_EQ(f.sha256, sha256File(dir.path() + "/" + f.path).value());
    }
}

// A tensor the checkpoint lacks, or has in another shape, is refused before
// anything is written; one that fails to read when written is an error too.
TEST(WeightFilesTest, ErrorsNameTheTensor) {
  FakeCheckpoint ckpt;
  ckpt.tensors["w"] = {{4, 4}, randomValues(16, 1, false)};
  ArtifactManifest m;
  m.weights.push_back(
      weight("w", 0, ckpt::DType::F32, {4, 2},
             WeightOrigin::slice({4, 4}, {{{0, 4}}, {{0, 2}}})));
  m.weights.push_back(weight("missing", 0, ckpt::DType::F32, {2}));
  TempDir dir;
  ckpt::StatusOr<std::vector<FileDesc>> files =
      writeWeightFiles(ckpt, m, dir.path());
  ASSERT_FALSE(files.ok());
  EXPECT_EQ(files.status().message(), "fake: no tensor 'missing'");
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));

  m.weights = {weight("w", 0, ckpt::DType::F32, {4, 4},
                      WeightOrigin::slice({4, 8}, {{{0, 4}}, {{0, 4}}}))};
  files = writeWeightFiles(ckpt, m, dir.path());
  ASSERT_FALSE(files.ok());
  EXPECT_EQ(files.status().message(),
            "fake: tensor 'w' has shape [4, 4], expected [4, 8]");
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));

  m.weights = {weight("w2", 0, ckpt::DType::I64, {2})};
  files = writeWeightFiles(ckpt, m, dir.path());
  ASSERT_FALSE(files.ok());
  EXPECT_EQ(files.status().message(), "weight 'w2' (rank 0) is I64; a "
                                      "checkpoint gives F32, BF16 and I8 "
                                      "weights");

  m.weights = {weight("w", 0, ckpt::DType::F32, {4, 2},
                      WeightOrigin::slice({4, 4}, {{{0, 4}}, {{0, 2}}}))};
  ckpt.failingLoad = "w";
  files = writeWeightFiles(ckpt, m, dir.path());
  ASSERT_FALSE(files.ok());
  EXPECT_EQ(files.status().message(), "fake: cannot read 'w'");
}

// Before schema 1.2 a manifest did not say how its ranks' weights were cut:
// rebinding such a multi-rank artifact is refused, before the checkpoint is
// opened and before anything is written.
TEST(WeightFilesTest, RebindRefusesUncutMultiRankManifests) {
  TempDir dir;
  std::string artifact = dir.path() + "/a";
  ASSERT_TRUE(writeExampleArtifact(artifact).ok());
  std::string path = artifact + "/" + kManifestFileName;
  std::string text;
  ASSERT_TRUE(ckpt::readFileToString(path, text, kMaxManifestBytes).ok());
  ckpt::StatusOr<ckpt::JsonValue> doc = ckpt::parseJson(text, "manifest");
  ASSERT_TRUE(doc.ok());
  doc->set("schema_version",
           ckpt::JsonValue::makeArray(
               {ckpt::JsonValue::makeInt(1), ckpt::JsonValue::makeInt(1)}));
  doc->set("ranks", ckpt::JsonValue::makeInt(2));
  // Rank 1: the same weights in a file of its own.
  const std::string rank0 = "weights/rank-0.safetensors",
                    rank1 = "weights/rank-1.safetensors";
  for (ckpt::JsonValue::Member &member : doc->getObject()) {
    if (member.first != "weights" && member.first != "files")
      continue;
    std::vector<ckpt::JsonValue> copies;
    for (const ckpt::JsonValue &entry : member.second.getArray()) {
      const ckpt::JsonValue *file =
          entry.get(member.first == "weights" ? "file" : "path");
      if (!file || file->getString() != rank0)
        continue;
      ckpt::JsonValue copy = entry;
      copy.set(member.first == "weights" ? "file" : "path",
               ckpt::JsonValue::makeString(rank1));
      if (member.first == "weights")
        copy.set("rank", ckpt::JsonValue::makeInt(1));
      copies.push_back(std::move(copy));
    }
    for (ckpt::JsonValue &copy : copies)
      member.second.push(std::move(copy));
  }
  doc->set("content_hash",
           ckpt::JsonValue::makeString(computeContentHash(*doc)));
  FILE *f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  std::string out = ckpt::writeJson(*doc, 2);
  ASSERT_EQ(std::fwrite(out.data(), 1, out.size(), f), out.size());
  ASSERT_EQ(std::fclose(f), 0);

  ckpt::Status st = rebindWeights(artifact, dir.path() + "/no-checkpoint",
                                  dir.path() + "/out");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message(),
            "artifact " + artifact +
                ": it has 2 ranks and schema 1.1, which does not record how "
                "their weights were cut from the checkpoint (1.2 does): "
                "recompile it");
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/out"));
}

} // namespace

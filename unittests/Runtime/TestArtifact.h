//===- TestArtifact.h - Runnable artifacts for the executor tests -*- C++
//-*-===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// Test code: a manifest following the agreed model ABI (docs/Runtime.md)
// over the example model (layer 0 Mamba, layer 1 attention, vocab 128),
// whose kernels are the test shared object built from TestKernels.cpp
// (its path comes from CMake as JAMBA_TEST_KERNELS).
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_UNITTESTS_RUNTIME_TESTARTIFACT_H
#define JAMBA_UNITTESTS_RUNTIME_TESTARTIFACT_H

#include "jamba/Runtime/Artifact.h"
#include "jamba/Runtime/ArtifactWriter.h"
#include "jamba/Runtime/ExampleArtifact.h"

#include "gtest/gtest.h"

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace jamba {
namespace rt {
namespace testing {

struct TestArtifactOptions {
  int64_t maxBatch = 4, maxSeq = 8, maxCapacity = 64;
  std::string prefillSymbol = "jamba_test_prefill";
  /// Empty: the built test kernels; else these bytes are the kernels file.
  std::string kernelBytes;
  std::vector<int64_t> eosIds = {2};
  /// Prefill keeps only the last position's logits ([batch, 1, vocab]).
  bool prefillLastLogitsOnly = false;
  /// The kernels sum their logits over the ranks (jamba_rt_all_reduce_f32;
  /// on CUDA, jamba_rt_cuda_all_reduce_f32).
  bool allReduceLogits = false;
  /// The artifact's `ranks`: every rank gets the same weights, in
  /// weights/rank-K.safetensors.
  int64_t ranks = 1;
  /// A CUDA artifact (target cuda sm_90, kernels/cuda-sm_90.so): its
  /// kernels are TestCudaKernels.cpp's, which run under the fake driver
  /// (FakeCuda.h) only.
  bool cuda = false;
  /// Non-empty: the artifact carries this tokenizer.json (schema 1.1).
  std::string tokenizerJson;
  /// The entry points also return their greedy ids, the last output (io
  /// I32 `greedy_ids` [batch, seq or 1], `decode.greedy_ids` [batch, 1]), as
  /// jamba-compile --greedy-ids makes them: the kernels' `_ids` variants
  /// write each row's argmax (TestKernels.cpp; JAMBA_TEST_GREEDY_IDS bends
  /// it). CPU only.
  bool greedyIds = false;
  /// Applied to the manifest before it is written (a test of what the
  /// runtime refuses).
  std::function<void(ArtifactManifest &)> editManifest;
};

/// The kernels file of a test artifact.
inline const char *testKernelsFile(const TestArtifactOptions &o) {
  return o.cuda ? "kernels/cuda-sm_90.so" : "kernels/cpu.so";
}

/// bias[v] of the test artifact's single weight.
inline float testBias(int64_t v) { return float(v % 7) * 0.125f; }

inline ArtifactManifest testManifest(const TestArtifactOptions &o) {
  using Kind = BufferDesc::Kind;
  using Role = BufferDesc::Role;
  ckpt::JambaConfig config = exampleConfig();
  config.eosTokenIds = o.eosIds;
  ArtifactManifest m;
  m.generator = "jamba-mlir runtime tests";
  m.setModelConfig(config);
  m.dims = {{kDimBatch, o.maxBatch},
            {kDimSeq, o.maxSeq},
            {kDimCapacity, o.maxCapacity}};
  auto buf = [](std::string id, DType dtype, std::vector<DimExpr> shape,
                Kind kind, Role role = Role::None, int64_t layer = -1) {
    BufferDesc b;
    b.id = std::move(id);
    b.dtype = dtype;
    b.shape = std::move(shape);
    b.kind = kind;
    b.role = role;
    b.layer = layer;
    return b;
  };
  auto sym = [](const char *n) { return DimExpr::symbol(n); };
  auto num = [](int64_t v) { return DimExpr::constant(v); };
  m.buffers = {
      buf("ids", DType::I32, {sym("batch"), sym("seq")}, Kind::Io),
      buf("cache_len", DType::I64, {sym("batch")}, Kind::Io),
      buf("logits", DType::F32,
          {sym("batch"), o.prefillLastLogitsOnly ? num(1) : sym("seq"),
           num(128)},
          Kind::Io),
      buf("decode.ids", DType::I32, {sym("batch"), num(1)}, Kind::Io),
      buf("decode.logits", DType::F32, {sym("batch"), num(1), num(128)},
          Kind::Io),
      buf("layers.0.conv_state", DType::F32, {sym("batch"), num(128), num(3)},
          Kind::State, Role::Conv, 0),
      buf("layers.0.ssm_state", DType::F32, {sym("batch"), num(128), num(8)},
          Kind::State, Role::Ssm, 0),
      buf("layers.1.k_cache", DType::F32,
          {sym("batch"), num(2), sym("capacity"), num(16)}, Kind::State,
          Role::KvKey, 1),
      buf("layers.1.v_cache", DType::F32,
          {sym("batch"), num(2), sym("capacity"), num(16)}, Kind::State,
          Role::KvValue, 1),
  };
  if (o.greedyIds) {
    m.buffers.push_back(
        buf("greedy_ids", DType::I32,
            {sym("batch"), o.prefillLastLogitsOnly ? num(1) : sym("seq")},
            Kind::Io));
    m.buffers.push_back(
        buf("decode.greedy_ids", DType::I32, {sym("batch"), num(1)}, Kind::Io));
  }
  KernelDesc pre, dec;
  pre.name = "prefill_model";
  pre.symbol = o.prefillLastLogitsOnly ? "jamba_test_prefill_last"
               : o.allReduceLogits     ? "jamba_test_prefill_allreduce"
                                       : o.prefillSymbol;
  pre.file = testKernelsFile(o);
  pre.numArgs = 15;
  dec = pre;
  dec.name = "decode_model";
  dec.symbol =
      o.allReduceLogits ? "jamba_test_decode_allreduce" : "jamba_test_decode";
  if (o.cuda) {
    m.target.kind = TargetDesc::Kind::Cuda;
    m.target.archs = {"sm_90"};
    const char *suffix = o.allReduceLogits ? "_allreduce" : "";
    pre.symbol = std::string("jamba_test_prefill_gpu") + suffix;
    dec.symbol = std::string("jamba_test_decode_gpu") + suffix;
  }
  if (o.greedyIds) {
    pre.symbol += "_ids";
    dec.symbol += "_ids";
    pre.numArgs = dec.numArgs = 16;
  }
  m.kernels = {pre, dec};
  m.ranks = o.ranks;
  for (int64_t r = 0; r < o.ranks; ++r) {
    WeightDesc bias;
    bias.name = "test.bias";
    bias.rank = r;
    bias.file = "weights/rank-" + std::to_string(r) + ".safetensors";
    bias.dtype = DType::F32;
    bias.shape = {128};
    m.weights.push_back(bias);
  }
  std::vector<std::string> states = {"layers.0.conv_state",
                                     "layers.0.ssm_state", "layers.1.k_cache",
                                     "layers.1.v_cache"};
  for (int decode = 0; decode < 2; ++decode) {
    EntryPoint e;
    e.name = decode ? "decode" : "prefill";
    std::string ids = decode ? "decode.ids" : "ids";
    std::string logits = decode ? "decode.logits" : "logits";
    e.inputs = {ids, "cache_len"};
    e.inputs.insert(e.inputs.end(), states.begin(), states.end());
    e.outputs = {logits};
    e.outputs.insert(e.outputs.end(), states.begin(), states.end());
    std::string greedy = decode ? "decode.greedy_ids" : "greedy_ids";
    if (o.greedyIds)
      e.outputs.push_back(greedy);
    Step s;
    s.kernel = decode ? "decode_model" : "prefill_model";
    s.args = {StepArg::dim("batch"), StepArg::dim("seq"),
              StepArg::dim("capacity"), StepArg::buffer(ids),
              StepArg::buffer("cache_len")};
    for (const std::string &st : states)
      s.args.push_back(StepArg::buffer(st));
    s.args.push_back(StepArg::weight("test.bias"));
    s.args.push_back(StepArg::buffer(logits));
    for (const std::string &st : states)
      s.args.push_back(StepArg::buffer(st));
    if (o.greedyIds)
      s.args.push_back(StepArg::buffer(greedy));
    e.steps = {s};
    m.entryPoints.push_back(std::move(e));
  }
  return m;
}

/// Writes the test artifact into `dir` (replacing it).
inline Status writeTestArtifact(const std::string &dir,
                                const TestArtifactOptions &o = {}) {
  ArtifactManifest m = testManifest(o);
  if (o.editManifest)
    o.editManifest(m);
  ckpt::SafeTensorsWriter writer;
  std::vector<float> bias(128);
  for (int64_t v = 0; v < 128; ++v)
    bias[size_t(v)] = testBias(v);
  JAMBA_CKPT_RETURN_IF_ERROR(
      writer.addFloats("test.bias", DType::F32, {128}, bias));
  std::string weights = dir + ".weights";
  JAMBA_CKPT_RETURN_IF_ERROR(writer.write(weights));
#ifdef JAMBA_TEST_CUDA_KERNELS
  const char *built = o.cuda ? JAMBA_TEST_CUDA_KERNELS : JAMBA_TEST_KERNELS;
#else
  const char *built = JAMBA_TEST_KERNELS;
#endif
  std::vector<ArtifactFileSource> files = {
      o.kernelBytes.empty()
          ? ArtifactFileSource::fromFile(testKernelsFile(o), built)
          : ArtifactFileSource::fromBytes(testKernelsFile(o), o.kernelBytes)};
  for (int64_t r = 0; r < o.ranks; ++r)
    files.push_back(ArtifactFileSource::fromFile(
        "weights/rank-" + std::to_string(r) + ".safetensors", weights));
  if (!o.tokenizerJson.empty()) {
    m.tokenizerFile = "tokenizer.json";
    files.push_back(
        ArtifactFileSource::fromBytes("tokenizer.json", o.tokenizerJson));
  }
  WriteOptions w;
  w.overwrite = true;
  Status s = writeArtifact(m, dir, files, w);
  std::remove(weights.c_str());
  return s;
}

/// A fresh directory under $TMPDIR (else /tmp), `<prefix>-XXXXXX`, removed
/// with its contents when destroyed; the test artifacts of a test live in
/// it. path() is empty when the directory could not be made.
class TestArtifactDir {
public:
  explicit TestArtifactDir(const std::string &prefix) {
    const char *base = std::getenv("TMPDIR");
    std::string tmpl =
        std::string(base && *base ? base : "/tmp") + "/" + prefix + "-XXXXXX";
    if (::mkdtemp(tmpl.data()))
      root = tmpl;
  }
  ~TestArtifactDir() {
    std::error_code ec;
    if (!root.empty())
      std::filesystem::remove_all(root, ec);
  }
  TestArtifactDir(const TestArtifactDir &) = delete;
  TestArtifactDir &operator=(const TestArtifactDir &) = delete;

  const std::string &path() const { return root; }

  /// Writes a test artifact with `o` into a new subdirectory and opens it
  /// (null, with a test failure, if either fails).
  std::unique_ptr<Artifact> open(const TestArtifactOptions &o = {}) {
    std::string dir = root + "/a" + std::to_string(counter++);
    Status s = writeTestArtifact(dir, o);
    EXPECT_TRUE(s.ok()) << s.message();
    auto opened = Artifact::open(dir);
    EXPECT_TRUE(opened.ok()) << opened.status().message();
    return opened.ok() ? std::move(*opened) : nullptr;
  }

private:
  std::string root;
  int counter = 0;
};

/// The toy rule of TestKernels.cpp: the id the logits after `history` favour.
inline int64_t testNext(const std::vector<int64_t> &history) {
  int64_t h = 0;
  for (size_t q = 0; q < history.size(); ++q)
    h += history[q] * int64_t(q + 1);
  return (h * 31 + 7) % 128;
}

} // namespace testing
} // namespace rt
} // namespace jamba

#endif // JAMBA_UNITTESTS_RUNTIME_TESTARTIFACT_H

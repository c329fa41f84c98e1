//===- JambaToLinalgNumericsTest.cpp - Compiled CPU kernels vs reference --===//
//
// Part of jamba-mlir. Each test parses a small function holding one jamba
// primitive (static shapes, llvm.emit_c_interface), lowers it with
// jamba-cpu-lower-pipeline, JIT-compiles it with the ExecutionEngine, runs it
// on seeded random inputs and compares with the reference kernel
// (jamba::ref, Kernels.h): the proof that the CPU backend computes what the
// reference computes.
//
// Error measure: max |test - ref| / max |ref| over the tensor (the
// project's per-row relative error, over the whole tensor); f32 tolerance
// 1e-5. Integer results (expert indices) must be equal.
//
//===----------------------------------------------------------------------===//

#include "jamba/Conversion/Passes.h"
#include "jamba/Dialect/Jamba/IR/JambaDialect.h"
#include "jamba/Reference/Kernels.h"

#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "llvm/ExecutionEngine/Orc/Core.h"
#include "llvm/ExecutionEngine/Orc/Mangling.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>

using namespace mlir;
namespace ref = ::jamba::ref;
using ref::Tensor;

namespace {

constexpr double kF32Tolerance = 1e-5;

/// A host buffer passed to or returned by a compiled function.
struct Buffer {
  void *data = nullptr;
  std::vector<int64_t> shape;
  /// Elements before the first one (results only).
  int64_t offset = 0;

  template <typename T> const T *elements() const {
    return static_cast<const T *>(data) + offset;
  }
};

/// Builds the memref descriptor {base, aligned, offset, sizes, strides} of a
/// contiguous row-major buffer: every field is 8 bytes on the 64-bit hosts
/// we run on, so a vector of int64_t holds it.
std::vector<int64_t> descriptorOf(const Buffer &b) {
  std::vector<int64_t> d{reinterpret_cast<int64_t>(b.data),
                         reinterpret_cast<int64_t>(b.data), 0};
  d.insert(d.end(), b.shape.begin(), b.shape.end());
  std::vector<int64_t> strides(b.shape.size(), 1);
  for (int64_t i = static_cast<int64_t>(b.shape.size()) - 2; i >= 0; --i)
    strides[i] = strides[i + 1] * b.shape[i + 1];
  d.insert(d.end(), strides.begin(), strides.end());
  return d;
}

/// What a test adds to a Kernel's compilation: passes run before
/// jamba-cpu-lower-pipeline, and host functions the compiled code calls
/// (by symbol name).
struct KernelExtras {
  std::function<void(PassManager &)> prelude;
  std::vector<std::pair<std::string, void *>> symbols;
};

/// Compiles `ir` (one function `@f`) with jamba-cpu-lower-pipeline and runs
/// it. `resultRanks` gives the rank of each returned tensor.
class Kernel {
public:
  explicit Kernel(const std::string &ir,
                  const mlir::jamba::CPULowerPipelineOptions &pipeline =
                      mlir::jamba::CPULowerPipelineOptions(),
                  const KernelExtras &extras = KernelExtras()) {
    DialectRegistry registry;
    registerAllDialects(registry);
    registerAllExtensions(registry);
    registry.insert<mlir::jamba::JambaDialect>();
    registerBuiltinDialectTranslation(registry);
    registerLLVMDialectTranslation(registry);
    context.appendDialectRegistry(registry);
    context.loadAllAvailableDialects();

    module = parseSourceString<ModuleOp>(ir, &context);
    if (!module) {
      error = "parse failed";
      return;
    }
    PassManager pm(&context, "builtin.module");
    if (extras.prelude)
      extras.prelude(pm);
    mlir::jamba::buildCPULowerPipeline(pm, pipeline);
    if (failed(pm.run(*module))) {
      error = "lowering failed";
      return;
    }
    auto transformer = makeOptimizingTransformer(3, 0, nullptr);
    ExecutionEngineOptions options;
    options.transformer = transformer;
    auto created = ExecutionEngine::create(*module, options);
    if (!created) {
      error = llvm::toString(created.takeError());
      return;
    }
    engine = std::move(*created);
    if (!extras.symbols.empty())
      engine->registerSymbols([&](llvm::orc::MangleAndInterner interner) {
        llvm::orc::SymbolMap map;
        for (const auto &[name, address] : extras.symbols)
          map[interner(name)] = {llvm::orc::ExecutorAddr::fromPtr(address),
                                 llvm::JITSymbolFlags::Exported};
        return map;
      });
  }

  /// Runs `@f` on `inputs`; returns the results (malloc'ed by the kernel,
  /// released with `release`).
  std::vector<Buffer> run(const std::vector<Buffer> &inputs,
                          const std::vector<int64_t> &resultRanks) {
    std::vector<std::vector<int64_t>> descs;
    for (const Buffer &b : inputs)
      descs.push_back(descriptorOf(b));
    size_t resultWords = 0;
    for (int64_t r : resultRanks)
      resultWords += 3 + 2 * r;
    std::vector<int64_t> results(resultWords, 0);
    std::vector<void *> pointers{results.data()};
    for (auto &d : descs)
      pointers.push_back(d.data());
    std::vector<void *> args;
    for (void *&p : pointers)
      args.push_back(&p);
    llvm::Error err = engine->invokePacked("_mlir_ciface_f", args);
    EXPECT_FALSE(static_cast<bool>(err)) << llvm::toString(std::move(err));

    std::vector<Buffer> out;
    size_t at = 0;
    for (int64_t r : resultRanks) {
      Buffer b;
      auto *base = reinterpret_cast<char *>(results[at]);
      auto *aligned = reinterpret_cast<char *>(results[at + 1]);
      int64_t offset = results[at + 2];
      b.shape.assign(results.begin() + at + 3, results.begin() + at + 3 + r);
      b.data = aligned;
      b.offset = offset;
      bases.push_back(base);
      for (const Buffer &in : inputs)
        if (in.data == base)
          bases.pop_back(); // Returned an input in place: not ours to free.
      out.push_back(b);
      at += 3 + 2 * r;
    }
    return out;
  }

  ~Kernel() {
    for (void *p : bases)
      std::free(p);
  }

  std::string error;

private:
  MLIRContext context;
  OwningOpRef<ModuleOp> module;
  std::unique_ptr<ExecutionEngine> engine;
  std::vector<void *> bases;
};

/// Seeded uniform values in [lo, hi).
std::vector<float> randomFloats(size_t n, unsigned seed, float lo = -1.0f,
                                float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float &x : v)
    x = dist(rng);
  return v;
}

/// Seeded int8 values in [-127, 127].
std::vector<int8_t> randomInt8(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> dist(-127, 127);
  std::vector<int8_t> v(n);
  for (int8_t &x : v)
    x = static_cast<int8_t>(dist(rng));
  return v;
}

/// bf16 bits of `f`, rounded to nearest even (finite values).
uint16_t toBF16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  bits += 0x7fff + ((bits >> 16) & 1);
  return static_cast<uint16_t>(bits >> 16);
}

float fromBF16(uint16_t h) {
  uint32_t bits = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

template <typename T>
Tensor<float> toRef(const std::vector<T> &v, std::vector<int64_t> shape) {
  return Tensor<float>(std::move(shape),
                       std::vector<float>(v.begin(), v.end()));
}

template <typename T> Buffer buf(std::vector<T> &v, std::vector<int64_t> s) {
  return Buffer{v.data(), std::move(s)};
}

/// max |test - ref| / max |ref|, after checking the shapes agree; infinite
/// where a test value is NaN or infinite and its reference is not (a NaN
/// difference would otherwise drop out of the maximum: std::max(x, NaN) is
/// x).
double relativeError(const Buffer &test, const Tensor<float> &ref) {
  EXPECT_EQ(test.shape, ref.shape);
  const float *t = test.elements<float>();
  double maxDiff = 0, maxRef = 0;
  for (int64_t i = 0; i < ref.numel(); ++i) {
    if (!std::isfinite(t[i]) && std::isfinite(ref[i]))
      return INFINITY;
    maxDiff = std::max(maxDiff, std::fabs(double(t[i]) - double(ref[i])));
    maxRef = std::max(maxRef, std::fabs(double(ref[i])));
  }
  return maxRef > 0 ? maxDiff / maxRef : maxDiff;
}

/// Expects `test` within `tolerance` of `ref`, and prints the error.
void expectClose(const Buffer &test, const Tensor<float> &ref, const char *what,
                 double tolerance = kF32Tolerance) {
  double err = relativeError(test, ref);
  llvm::outs() << "[ numerics ] " << what << ": max rel err " << err << "\n";
  EXPECT_LE(err, tolerance) << what;
}

/// Expects the integer results to equal the reference's.
template <typename I>
void expectSameIndices(const Buffer &test, const Tensor<float> &ref) {
  EXPECT_EQ(test.shape, ref.shape);
  const I *t = test.elements<I>();
  for (int64_t i = 0; i < ref.numel(); ++i)
    EXPECT_EQ(static_cast<int64_t>(t[i]), static_cast<int64_t>(ref[i]))
        << "at " << i;
}

class JambaToLinalgNumerics : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
  }
};

/// The primitives jamba-gpu-kernels lowers (the GPU backend's loop nests),
/// each run through both lowerings on the CPU: convert-jamba-to-linalg
/// (and the microkernels), and jamba-gpu-kernels (`GpuKernels`), so the GPU
/// kernels' arithmetic is checked against the reference without a GPU.
class SequenceKernels : public JambaToLinalgNumerics,
                        public ::testing::WithParamInterface<bool> {
protected:
  std::unique_ptr<mlir::jamba::CPULowerPipelineOptions> lowering() const {
    auto options = std::make_unique<mlir::jamba::CPULowerPipelineOptions>();
    options->gpuKernels = GetParam();
    return options;
  }
};

TEST_F(JambaToLinalgNumerics, LinearF32WithBias) {
  Kernel k(R"mlir(
    func.func @f(%x: tensor<2x3x16xf32>, %w: tensor<8x16xf32>, %b: tensor<8xf32>)
        -> tensor<2x3x8xf32> attributes {llvm.emit_c_interface} {
      %y = jamba.linear %x, %w bias(%b)
          : (tensor<2x3x16xf32>, tensor<8x16xf32>, tensor<8xf32>) -> tensor<2x3x8xf32>
      return %y : tensor<2x3x8xf32>
    })mlir");
  ASSERT_EQ(k.error, "");
  auto x = randomFloats(96, 1), w = randomFloats(128, 2),
       b = randomFloats(8, 3);
  auto out = k.run({buf(x, {2, 3, 16}), buf(w, {8, 16}), buf(b, {8})}, {3});
  Tensor<float> rb = toRef(b, {8});
  expectClose(
      out[0],
      ref::linear<float>(toRef(x, {2, 3, 16}), toRef(w, {8, 16}), nullptr, &rb),
      "linear f32 + bias");
}

TEST_F(JambaToLinalgNumerics, LinearInt8WithScaleAndBias) {
  Kernel k(R"mlir(
    func.func @f(%x: tensor<5x32xf32>, %q: tensor<16x32xi8>, %s: tensor<16xf32>,
                 %b: tensor<16xf32>) -> tensor<5x16xf32> attributes {llvm.emit_c_interface} {
      %y = jamba.linear %x, %q scale(%s) bias(%b)
          : (tensor<5x32xf32>, tensor<16x32xi8>, tensor<16xf32>, tensor<16xf32>) -> tensor<5x16xf32>
      return %y : tensor<5x16xf32>
    })mlir");
  ASSERT_EQ(k.error, "");
  auto x = randomFloats(160, 4), s = randomFloats(16, 5, 0.001f, 0.02f),
       b = randomFloats(16, 6);
  auto q = randomInt8(512, 7);
  auto out = k.run(
      {buf(x, {5, 32}), buf(q, {16, 32}), buf(s, {16}), buf(b, {16})}, {2});
  Tensor<float> rs = toRef(s, {16}), rb = toRef(b, {16});
  expectClose(
      out[0],
      ref::linear<float>(toRef(x, {5, 32}), toRef(q, {16, 32}), &rs, &rb),
      "linear int8 + scale + bias");
}

TEST_F(JambaToLinalgNumerics, LinearDynamicRows) {
  // The row count is only known at run time (tensor.dim in the kernel).
  Kernel k(R"mlir(
    func.func @f(%x: tensor<?x16xf32>, %w: tensor<8x16xf32>) -> tensor<?x8xf32>
        attributes {llvm.emit_c_interface} {
      %y = jamba.linear %x, %w : (tensor<?x16xf32>, tensor<8x16xf32>) -> tensor<?x8xf32>
      return %y : tensor<?x8xf32>
    })mlir");
  ASSERT_EQ(k.error, "");
  for (int64_t rows : {1, 7}) {
    auto x = randomFloats(rows * 16, 40 + rows), w = randomFloats(128, 41);
    auto out = k.run({buf(x, {rows, 16}), buf(w, {8, 16})}, {2});
    expectClose(out[0],
                ref::linear<float>(toRef(x, {rows, 16}), toRef(w, {8, 16}),
                                   nullptr, nullptr),
                "linear f32, dynamic rows");
  }
}

TEST_F(JambaToLinalgNumerics, LinearDynamicOutputs) {
  // The output width comes from the weight at run time: the microkernels
  // allocated the result without it (invalid IR) before.
  Kernel k(R"mlir(
    func.func @f(%x: tensor<3x16xf32>, %w: tensor<?x16xf32>) -> tensor<3x?xf32>
        attributes {llvm.emit_c_interface} {
      %y = jamba.linear %x, %w : (tensor<3x16xf32>, tensor<?x16xf32>) -> tensor<3x?xf32>
      return %y : tensor<3x?xf32>
    })mlir");
  ASSERT_EQ(k.error, "");
  for (int64_t n : {1, 9}) {
    auto x = randomFloats(48, 50 + n), w = randomFloats(n * 16, 51 + n);
    auto out = k.run({buf(x, {3, 16}), buf(w, {n, 16})}, {2});
    expectClose(out[0],
                ref::linear<float>(toRef(x, {3, 16}), toRef(w, {n, 16}),
                                   nullptr, nullptr),
                "linear f32, dynamic outputs");
  }
}

TEST_F(JambaToLinalgNumerics, RMSNormCarriedByALoop) {
  // A jamba op inside scf.for whose result is the next iteration's input
  // (a new buffer yielded each time): bufferization refused it before.
  // Three iterations are the norm applied three times.
  Kernel k(R"mlir(
    func.func @f(%x: tensor<2x32xf32>, %w: tensor<32xf32>) -> tensor<2x32xf32>
        attributes {llvm.emit_c_interface} {
      %c0 = arith.constant 0 : index
      %c1 = arith.constant 1 : index
      %c3 = arith.constant 3 : index
      %r = scf.for %i = %c0 to %c3 step %c1 iter_args(%a = %x) -> tensor<2x32xf32> {
        %y = jamba.rms_norm %a, %w {epsilon = 1.0e-06 : f64} : tensor<2x32xf32>, tensor<32xf32>
        scf.yield %y : tensor<2x32xf32>
      }
      return %r : tensor<2x32xf32>
    })mlir");
  ASSERT_EQ(k.error, "");
  auto x = randomFloats(64, 60), w = randomFloats(32, 61);
  auto out = k.run({buf(x, {2, 32}), buf(w, {32})}, {2});
  Tensor<float> expected = toRef(x, {2, 32});
  for (int i = 0; i < 3; ++i)
    expected = ref::rmsNorm(expected, toRef(w, {32}), 1e-6);
  expectClose(out[0], expected, "rms_norm three times in a loop");
}

TEST_F(JambaToLinalgNumerics, LinearBF16) {
  // bf16 activations and weights, f32 accumulation, one rounding to bf16
  // (nearest even): the reference runs in f32 on the same bf16 values and
  // its result, rounded the same way, must come out bit for bit.
  Kernel k(R"mlir(
    func.func @f(%x: tensor<3x32xbf16>, %w: tensor<8x32xbf16>) -> tensor<3x8xbf16>
        attributes {llvm.emit_c_interface} {
      %y = jamba.linear %x, %w : (tensor<3x32xbf16>, tensor<8x32xbf16>) -> tensor<3x8xbf16>
      return %y : tensor<3x8xbf16>
    })mlir");
  ASSERT_EQ(k.error, "");
  auto xf = randomFloats(96, 42), wf = randomFloats(256, 43);
  std::vector<uint16_t> x, w;
  for (float &v : xf)
    x.push_back(toBF16(v)), v = fromBF16(x.back());
  for (float &v : wf)
    w.push_back(toBF16(v)), v = fromBF16(w.back());
  auto out = k.run({buf(x, {3, 32}), buf(w, {8, 32})}, {2});
  Tensor<float> expected = ref::linear<float>(
      toRef(xf, {3, 32}), toRef(wf, {8, 32}), nullptr, nullptr);
  std::vector<float> yf;
  for (int i = 0; i < 24; ++i) {
    yf.push_back(fromBF16(out[0].elements<uint16_t>()[i]));
    expected[i] = fromBF16(toBF16(expected[i]));
  }
  expectClose(Buffer{yf.data(), out[0].shape}, expected,
              "linear bf16 (vs the reference rounded to bf16)");
}

/// `ir` with its shape placeholders set: each `pattern` ("xQx", "= H :")
/// has its middle character replaced by `value`.
std::string withPlaceholders(
    std::string ir,
    std::initializer_list<std::pair<const char *, int64_t>> values) {
  for (auto [pattern, value] : values)
    for (size_t at = ir.find(pattern); at != std::string::npos;
         at = ir.find(pattern, at))
      ir.replace(at + std::strlen(pattern) / 2, 1, std::to_string(value));
  return ir;
}

/// A rank-2 memref descriptor (the C interface's struct).
template <typename T> struct Memref2D {
  T *base, *aligned;
  int64_t offset, sizes[2], strides[2];
  T at(int64_t i, int64_t j) const {
    return aligned[offset + i * strides[0] + j * strides[1]];
  }
};

/// A CPU stand-in for the runtime's cuBLAS bf16 GEMM (y = x w^T, bf16
/// inputs, f32 accumulation), which counts the rows it was called with.
int64_t standInGemmRows = 0;
void standInGemmBF16(Memref2D<float> *y, Memref2D<uint16_t> *x,
                     Memref2D<uint16_t> *w) {
  standInGemmRows += x->sizes[0];
  for (int64_t m = 0; m < x->sizes[0]; ++m)
    for (int64_t n = 0; n < w->sizes[0]; ++n) {
      float sum = 0;
      for (int64_t k = 0; k < x->sizes[1]; ++k)
        sum += fromBF16(x->at(m, k)) * fromBF16(w->at(n, k));
      y->aligned[y->offset + m * y->strides[0] + n * y->strides[1]] = sum;
    }
}

TEST_F(JambaToLinalgNumerics, LinearGemvKernelAndItsCublasSplit) {
  // jamba-gpu-library-gemms as the CUDA pipeline runs it, its GEMV kernel's
  // warps emulated and the cuBLAS call served by the stand-in: up to 2 rows
  // the kernel computes the linear and the call is skipped, beyond that the
  // call computes it (the kernel has no rows). K = 64 (one vector per lane
  // for 8 lanes), 2048 (8 per lane: the loop of 4 loads in flight), 1000
  // (3 or 4 per lane: that loop and its remainder) and 37 (not a multiple of
  // 8 bf16: scalar loads). Inputs are rounded to bf16 as the pass does, the
  // reference multiplies the same bf16 values in f32: tolerance 1e-5.
  for (int64_t kDim : {64, 2048, 1000, 37}) {
    const int64_t n = 40;
    const std::string ir = withPlaceholders(
        R"mlir(
      func.func @f(%x: tensor<?xKxf32>, %w: tensor<NxKxbf16>) -> tensor<?xNxf32>
          attributes {llvm.emit_c_interface} {
        %y = jamba.linear %x, %w : (tensor<?xKxf32>, tensor<NxKxbf16>) -> tensor<?xNxf32>
        return %y : tensor<?xNxf32>
      })mlir",
        {{"xKx", kDim}, {"<Nx", n}, {"xNx", n}});
    KernelExtras extras;
    extras.prelude = [](PassManager &pm) {
      mlir::jamba::JambaGpuLibraryGemmsPassOptions gemms;
      gemms.gemvRows = 2;
      gemms.emulateWarps = true;
      pm.addPass(mlir::jamba::createJambaGpuLibraryGemmsPass(gemms));
    };
    extras.symbols = {{"_mlir_ciface_jamba_rt_cuda_gemm_bf16",
                       reinterpret_cast<void *>(&standInGemmBF16)}};
    Kernel k(ir, mlir::jamba::CPULowerPipelineOptions(), extras);
    ASSERT_EQ(k.error, "") << "K = " << kDim;
    for (int64_t rows : {1, 2, 3, 5}) {
      auto xf = randomFloats(rows * kDim, 50 + rows),
           wf = randomFloats(n * kDim, 60 + kDim);
      std::vector<uint16_t> w;
      for (float &v : wf)
        w.push_back(toBF16(v)), v = fromBF16(w.back());
      std::vector<float> xr(xf);
      for (float &v : xr)
        v = fromBF16(toBF16(v));
      standInGemmRows = 0;
      auto out = k.run({buf(xf, {rows, kDim}), buf(w, {n, kDim})}, {2});
      EXPECT_EQ(standInGemmRows, rows <= 2 ? 0 : rows)
          << "cuBLAS rows, K = " << kDim << ", " << rows << " rows";
      std::string what = "linear GEMV split, K = " + std::to_string(kDim) +
                         ", " + std::to_string(rows) + " rows";
      expectClose(out[0],
                  ref::linear<float>(toRef(xr, {rows, kDim}),
                                     toRef(wf, {n, kDim}), nullptr, nullptr),
                  what.c_str());
    }
  }
}

TEST_F(JambaToLinalgNumerics, RMSNorm) {
  Kernel k(R"mlir(
    func.func @f(%x: tensor<2x3x32xf32>, %w: tensor<32xf32>) -> tensor<2x3x32xf32>
        attributes {llvm.emit_c_interface} {
      %y = jamba.rms_norm %x, %w {epsilon = 1.0e-06 : f64} : tensor<2x3x32xf32>, tensor<32xf32>
      return %y : tensor<2x3x32xf32>
    })mlir");
  ASSERT_EQ(k.error, "");
  auto x = randomFloats(192, 8), w = randomFloats(32, 9);
  auto out = k.run({buf(x, {2, 3, 32}), buf(w, {32})}, {3});
  expectClose(out[0], ref::rmsNorm(toRef(x, {2, 3, 32}), toRef(w, {32}), 1e-6),
              "rms_norm");
}

TEST_F(JambaToLinalgNumerics, SwiGLU) {
  Kernel k(R"mlir(
    func.func @f(%g: tensor<3x2x16xf32>, %u: tensor<3x2x16xf32>) -> tensor<3x2x16xf32>
        attributes {llvm.emit_c_interface} {
      %a = jamba.swiglu %g, %u : tensor<3x2x16xf32>
      return %a : tensor<3x2x16xf32>
    })mlir");
  ASSERT_EQ(k.error, "");
  auto g = randomFloats(96, 10, -4.0f, 4.0f), u = randomFloats(96, 11);
  auto out = k.run({buf(g, {3, 2, 16}), buf(u, {3, 2, 16})}, {3});
  expectClose(out[0], ref::swiglu(toRef(g, {3, 2, 16}), toRef(u, {3, 2, 16})),
              "swiglu");
}

TEST_F(JambaToLinalgNumerics, CombineSlots) {
  Kernel k(R"mlir(
    func.func @f(%d: tensor<3x2x16xf32>) -> tensor<3x16xf32> attributes {llvm.emit_c_interface} {
      %y = jamba.combine_slots %d : tensor<3x2x16xf32> -> tensor<3x16xf32>
      return %y : tensor<3x16xf32>
    })mlir");
  ASSERT_EQ(k.error, "");
  auto d = randomFloats(96, 12);
  auto out = k.run({buf(d, {3, 2, 16})}, {2});
  expectClose(out[0], ref::combineSlots(toRef(d, {3, 2, 16})), "combine_slots");
}

TEST_F(JambaToLinalgNumerics, Dequant) {
  Kernel k(R"mlir(
    func.func @f(%q: tensor<4x8x16xi8>, %s: tensor<4x8xf32>) -> tensor<4x8x16xf32>
        attributes {llvm.emit_c_interface} {
      %w = jamba.dequant %q, %s : tensor<4x8x16xi8>, tensor<4x8xf32> -> tensor<4x8x16xf32>
      return %w : tensor<4x8x16xf32>
    })mlir");
  ASSERT_EQ(k.error, "");
  auto q = randomInt8(512, 13);
  auto s = randomFloats(32, 14, 0.001f, 0.02f);
  auto out = k.run({buf(q, {4, 8, 16}), buf(s, {4, 8})}, {3});
  expectClose(out[0], ref::dequant(toRef(q, {4, 8, 16}), toRef(s, {4, 8})),
              "dequant");
}

TEST_F(JambaToLinalgNumerics, ExpertGemmFloatSharedInput) {
  Kernel k(R"mlir(
    func.func @f(%x: tensor<5x16xf32>, %w: tensor<4x8x16xf32>, %idx: tensor<5x2xi32>)
        -> tensor<5x2x8xf32> attributes {llvm.emit_c_interface} {
      %y = jamba.expert_gemm %x, %w indices(%idx)
          : (tensor<5x16xf32>, tensor<4x8x16xf32>, tensor<5x2xi32>) -> tensor<5x2x8xf32>
      return %y : tensor<5x2x8xf32>
    })mlir");
  ASSERT_EQ(k.error, "");
  auto x = randomFloats(80, 15), w = randomFloats(512, 16);
  std::vector<int32_t> idx{0, 3, 2, 1, 3, 3, 1, 0, 2, 0};
  auto out =
      k.run({buf(x, {5, 16}), buf(w, {4, 8, 16}), buf(idx, {5, 2})}, {3});
  expectClose(out[0],
              ref::expertGemm<float>(toRef(x, {5, 16}), toRef(w, {4, 8, 16}),
                                     nullptr, toRef(idx, {5, 2}), nullptr),
              "expert_gemm f32");
}

TEST_F(JambaToLinalgNumerics, ExpertGemmInt8PerSlotWithRouteWeights) {
  Kernel k(R"mlir(
    func.func @f(%x: tensor<5x2x16xf32>, %q: tensor<4x8x16xi8>, %s: tensor<4x8xf32>,
                 %idx: tensor<5x2xi32>, %rw: tensor<5x2xf32>)
        -> tensor<5x2x8xf32> attributes {llvm.emit_c_interface} {
      %y = jamba.expert_gemm %x, %q scale(%s) indices(%idx) route_weights(%rw)
          : (tensor<5x2x16xf32>, tensor<4x8x16xi8>, tensor<4x8xf32>, tensor<5x2xi32>,
             tensor<5x2xf32>) -> tensor<5x2x8xf32>
      return %y : tensor<5x2x8xf32>
    })mlir");
  ASSERT_EQ(k.error, "");
  auto x = randomFloats(160, 17), s = randomFloats(32, 18, 0.001f, 0.02f),
       rw = randomFloats(10, 19, 0.1f, 0.9f);
  auto q = randomInt8(512, 20);
  std::vector<int32_t> idx{1, 2, 0, 3, 3, 2, 2, 1, 0, 1};
  auto out = k.run({buf(x, {5, 2, 16}), buf(q, {4, 8, 16}), buf(s, {4, 8}),
                    buf(idx, {5, 2}), buf(rw, {5, 2})},
                   {3});
  Tensor<float> rs = toRef(s, {4, 8}), rrw = toRef(rw, {5, 2});
  expectClose(out[0],
              ref::expertGemm<float>(toRef(x, {5, 2, 16}), toRef(q, {4, 8, 16}),
                                     &rs, toRef(idx, {5, 2}), &rrw),
              "expert_gemm int8 + scale + route weights");
}

/// Pipeline options with the GEMM microkernels on or off: the odd-shape
/// GEMM tests run both lowerings of jamba.linear / expert_gemm.
std::unique_ptr<mlir::jamba::CPULowerPipelineOptions>
withMicrokernels(bool on) {
  auto options = std::make_unique<mlir::jamba::CPULowerPipelineOptions>();
  options->microkernels = on;
  return options;
}

/// The lowerings the expert GEMM tests run: the microkernels, linalg, and
/// jamba-gpu-kernels' lane-split form with 32 lanes (the default) and with
/// 3 (uneven shares of K), and its grouped form (rows sorted by expert, 8
/// per thread) for every row count.
struct ExpertGemmLowering {
  const char *name;
  bool microkernels, gpuKernels;
  int64_t lanes;
  int64_t groupedRows = 1 << 30;
};
constexpr ExpertGemmLowering kExpertGemmLowerings[] = {
    {"microkernel", true, false, 32},
    {"linalg", false, false, 32},
    {"gpu-kernels (32 lanes)", true, true, 32},
    {"gpu-kernels (3 lanes)", true, true, 3},
    {"gpu-kernels (grouped)", true, true, 32, 0}};

std::unique_ptr<mlir::jamba::CPULowerPipelineOptions>
expertGemmOptions(const ExpertGemmLowering &lowering) {
  auto options = withMicrokernels(lowering.microkernels);
  options->gpuKernels = lowering.gpuKernels;
  options->expertGemmLanes = lowering.lanes;
  options->expertGemmGroupedRows = lowering.groupedRows;
  return options;
}

TEST_F(JambaToLinalgNumerics, LinearOddShapesEveryRowCount) {
  // K = 37 and N = 13 are not multiples of the vector step (8, 16, 32) or
  // the 4-row register tile; rank-3 input with dynamic leading dims; row
  // counts 1 (GEMV tile), 2 (one pair), 3, 5 and 9 (pairs + the last row).
  // int8 weights with scale and bias, bf16 weights with f32 activations
  // (the reference on the same bf16 values) and f32 weights.
  const char *ir = R"mlir(
    func.func @f(%x: tensor<?x?x37xf32>, %w: tensor<13x37xf32>, %q: tensor<13x37xi8>,
                 %s: tensor<13xf32>, %b: tensor<13xf32>, %h: tensor<13x37xbf16>)
        -> (tensor<?x?x13xf32>, tensor<?x?x13xf32>, tensor<?x?x13xf32>)
        attributes {llvm.emit_c_interface} {
      %y = jamba.linear %x, %w : (tensor<?x?x37xf32>, tensor<13x37xf32>) -> tensor<?x?x13xf32>
      %z = jamba.linear %x, %q scale(%s) bias(%b)
          : (tensor<?x?x37xf32>, tensor<13x37xi8>, tensor<13xf32>, tensor<13xf32>) -> tensor<?x?x13xf32>
      %v = jamba.linear %x, %h : (tensor<?x?x37xf32>, tensor<13x37xbf16>) -> tensor<?x?x13xf32>
      return %y, %z, %v : tensor<?x?x13xf32>, tensor<?x?x13xf32>, tensor<?x?x13xf32>
    })mlir";
  auto w = randomFloats(13 * 37, 60), s = randomFloats(13, 61, 0.001f, 0.02f),
       b = randomFloats(13, 62), hf = randomFloats(13 * 37, 63);
  auto q = randomInt8(13 * 37, 64);
  std::vector<uint16_t> h;
  for (float &v : hf)
    h.push_back(toBF16(v)), v = fromBF16(h.back());
  Tensor<float> rs = toRef(s, {13}), rb = toRef(b, {13});
  for (bool microkernels : {true, false}) {
    Kernel k(ir, *withMicrokernels(microkernels));
    ASSERT_EQ(k.error, "");
    for (auto [b0, b1] : std::vector<std::pair<int64_t, int64_t>>{
             {1, 1}, {1, 2}, {3, 1}, {1, 5}, {3, 3}}) {
      auto x = randomFloats(b0 * b1 * 37, 65 + b0 * 7 + b1);
      auto out =
          k.run({buf(x, {b0, b1, 37}), buf(w, {13, 37}), buf(q, {13, 37}),
                 buf(s, {13}), buf(b, {13}), buf(h, {13, 37})},
                {3, 3, 3});
      Tensor<float> rx = toRef(x, {b0, b1, 37});
      std::string what = std::string(microkernels ? "microkernel" : "linalg") +
                         " linear 37->13, rows " + std::to_string(b0 * b1);
      expectClose(out[0],
                  ref::linear<float>(rx, toRef(w, {13, 37}), nullptr, nullptr),
                  (what + ", f32").c_str());
      expectClose(out[1], ref::linear<float>(rx, toRef(q, {13, 37}), &rs, &rb),
                  (what + ", int8 + scale + bias").c_str());
      expectClose(out[2],
                  ref::linear<float>(rx, toRef(hf, {13, 37}), nullptr, nullptr),
                  (what + ", bf16 weights").c_str());
    }
  }
}

TEST_F(JambaToLinalgNumerics, ExpertGemmOddShapesUnevenRouting) {
  // 9 tokens ([3, 3], dynamic) x 2 slots over 5 experts, expert 4 never
  // chosen and expert 0 chosen 7 times (odd: pairs + a single row), K = 37,
  // N = 13; int8 with scale and route weights (per-slot input, as the down
  // projection) and f32 with a shared input (as gate/up).
  const char *ir = R"mlir(
    func.func @f(%x: tensor<?x?x37xf32>, %xs: tensor<?x?x2x37xf32>,
                 %w: tensor<5x13x37xf32>, %q: tensor<5x13x37xi8>, %s: tensor<5x13xf32>,
                 %idx: tensor<?x?x2xi64>, %rw: tensor<?x?x2xf32>)
        -> (tensor<?x?x2x13xf32>, tensor<?x?x2x13xf32>)
        attributes {llvm.emit_c_interface} {
      %y = jamba.expert_gemm %x, %w indices(%idx)
          : (tensor<?x?x37xf32>, tensor<5x13x37xf32>, tensor<?x?x2xi64>) -> tensor<?x?x2x13xf32>
      %z = jamba.expert_gemm %xs, %q scale(%s) indices(%idx) route_weights(%rw)
          : (tensor<?x?x2x37xf32>, tensor<5x13x37xi8>, tensor<5x13xf32>, tensor<?x?x2xi64>,
             tensor<?x?x2xf32>) -> tensor<?x?x2x13xf32>
      return %y, %z : tensor<?x?x2x13xf32>, tensor<?x?x2x13xf32>
    })mlir";
  auto x = randomFloats(9 * 37, 70), xs = randomFloats(18 * 37, 71),
       w = randomFloats(5 * 13 * 37, 72),
       s = randomFloats(65, 73, 0.001f, 0.02f),
       rw = randomFloats(18, 74, 0.1f, 0.9f);
  auto q = randomInt8(5 * 13 * 37, 75);
  std::vector<int64_t> idx{0, 1, 0, 2, 3, 0, 1, 0, 0,
                           2, 3, 1, 0, 3, 2, 0, 1, 3};
  Tensor<float> rs = toRef(s, {5, 13}), rrw = toRef(rw, {3, 3, 2}),
                ridx = toRef(idx, {3, 3, 2});
  for (const ExpertGemmLowering &lowering : kExpertGemmLowerings) {
    Kernel k(ir, *expertGemmOptions(lowering));
    ASSERT_EQ(k.error, "");
    auto out = k.run({buf(x, {3, 3, 37}), buf(xs, {3, 3, 2, 37}),
                      buf(w, {5, 13, 37}), buf(q, {5, 13, 37}), buf(s, {5, 13}),
                      buf(idx, {3, 3, 2}), buf(rw, {3, 3, 2})},
                     {4, 4});
    std::string what = lowering.name;
    expectClose(out[0],
                ref::expertGemm<float>(toRef(x, {3, 3, 37}),
                                       toRef(w, {5, 13, 37}), nullptr, ridx,
                                       nullptr),
                (what + " expert_gemm f32, shared input").c_str());
    expectClose(out[1],
                ref::expertGemm<float>(toRef(xs, {3, 3, 2, 37}),
                                       toRef(q, {5, 13, 37}), &rs, ridx, &rrw),
                (what + " expert_gemm int8, per slot, route weights").c_str());
  }
}

TEST_F(JambaToLinalgNumerics, ExpertGemmGroupsLongRowCounts) {
  // jamba-gpu-kernels with its default threshold: up to 64 (token, slot)
  // rows the lane form, above it the rows sorted by expert in tiles of 8.
  // 3, 32 and 45 tokens x 2 slots (6, 64 and 90 rows) over 5 experts:
  // expert 3 never chosen, expert 0 in 2 of every 3 tokens (tiles of 8 and
  // a partial one), K = 37; int8 with scales and route weights on a
  // per-slot input, and f32 on a shared one.
  const char *ir = R"mlir(
    func.func @f(%x: tensor<?x37xf32>, %xs: tensor<?x2x37xf32>,
                 %w: tensor<5x13x37xf32>, %q: tensor<5x13x37xi8>, %s: tensor<5x13xf32>,
                 %idx: tensor<?x2xi64>, %rw: tensor<?x2xf32>)
        -> (tensor<?x2x13xf32>, tensor<?x2x13xf32>)
        attributes {llvm.emit_c_interface} {
      %y = jamba.expert_gemm %x, %w indices(%idx)
          : (tensor<?x37xf32>, tensor<5x13x37xf32>, tensor<?x2xi64>) -> tensor<?x2x13xf32>
      %z = jamba.expert_gemm %xs, %q scale(%s) indices(%idx) route_weights(%rw)
          : (tensor<?x2x37xf32>, tensor<5x13x37xi8>, tensor<5x13xf32>, tensor<?x2xi64>,
             tensor<?x2xf32>) -> tensor<?x2x13xf32>
      return %y, %z : tensor<?x2x13xf32>, tensor<?x2x13xf32>
    })mlir";
  auto w = randomFloats(5 * 13 * 37, 110),
       s = randomFloats(65, 111, 0.001f, 0.02f);
  auto q = randomInt8(5 * 13 * 37, 112);
  Tensor<float> rs = toRef(s, {5, 13});
  mlir::jamba::CPULowerPipelineOptions options;
  options.gpuKernels = true;
  Kernel k(ir, options);
  ASSERT_EQ(k.error, "");
  for (int64_t tokens : {3, 32, 45}) {
    SCOPED_TRACE(::testing::Message() << tokens << " tokens");
    auto x = randomFloats(size_t(tokens * 37), 113 + unsigned(tokens)),
         xs = randomFloats(size_t(tokens * 2 * 37), 114 + unsigned(tokens)),
         rw = randomFloats(size_t(tokens * 2), 115, 0.1f, 0.9f);
    std::vector<int64_t> idx;
    for (int64_t t = 0; t < tokens; ++t) {
      idx.push_back(t % 3 == 2 ? 1 : 0);
      idx.push_back(t % 3 == 0 ? 2 : 4);
    }
    auto out = k.run({buf(x, {tokens, 37}), buf(xs, {tokens, 2, 37}),
                      buf(w, {5, 13, 37}), buf(q, {5, 13, 37}), buf(s, {5, 13}),
                      buf(idx, {tokens, 2}), buf(rw, {tokens, 2})},
                     {3, 3});
    Tensor<float> ridx = toRef(idx, {tokens, 2}), rrw = toRef(rw, {tokens, 2});
    expectClose(out[0],
                ref::expertGemm<float>(toRef(x, {tokens, 37}),
                                       toRef(w, {5, 13, 37}), nullptr, ridx,
                                       nullptr),
                "expert_gemm f32, shared input");
    expectClose(out[1],
                ref::expertGemm<float>(toRef(xs, {tokens, 2, 37}),
                                       toRef(q, {5, 13, 37}), &rs, ridx, &rrw),
                "expert_gemm int8, per slot, route weights");
  }
}

TEST_F(JambaToLinalgNumerics, ExpertGemmTensorCoresEmulated) {
  // The tensor-core grouped expert GEMM (tiles of 32 rows of one expert in
  // two m-blocks of 16, a warp per 64 outputs, mma.sync m16n8k16 on bf16
  // operands) with each warp's mma.sync emulated as the PTX ISA defines it,
  // on a CPU: the fragments, their packing, the k permutation and the
  // epilogue. K = 128 (two steps of 64), N = 40 (the warp's n range is
  // partial), 5 experts: expert 0 in 2 of every 3 tokens, expert 3 never;
  // 3, 20, 45 and 100 tokens, all grouped. At 45 tokens experts 0 and 4
  // have 30 rows each (the second m-block partial), at 100 tokens 67 and 66
  // (two whole tiles, then a partial first m-block and an unused second);
  // tiles of at most 16 rows run a K loop of one m-block. bf16 weights on a
  // shared input (as gate/up), int8 weights with scales and route weights
  // on a per-slot input (as down), int8 weights on a view of the input
  // that starts 1 float into rows of 129 (f32 inputs are first copied to
  // bf16, so the tiles read that aligned copy), and the same on a bf16
  // input view 1 element into rows of 129, which the tiles read as it is
  // (misaligned: the K loops of element loads). The kernel rounds its
  // inputs to bf16, so the reference gets the rounded inputs: the products
  // are then exact in f32 and only the order of the sums differs.
  const char *ir = R"mlir(
    func.func @f(%x: tensor<?x128xf32>, %xs: tensor<?x2x128xf32>, %xw: tensor<?x129xf32>,
                 %h: tensor<5x40x128xbf16>, %q: tensor<5x40x128xi8>, %s: tensor<5x40xf32>,
                 %idx: tensor<?x2xi64>, %rw: tensor<?x2xf32>, %xbw: tensor<?x129xbf16>)
        -> (tensor<?x2x40xf32>, tensor<?x2x40xf32>, tensor<?x2x40xf32>, tensor<?x2x40xf32>)
        attributes {llvm.emit_c_interface} {
      %y = jamba.expert_gemm %x, %h indices(%idx)
          : (tensor<?x128xf32>, tensor<5x40x128xbf16>, tensor<?x2xi64>) -> tensor<?x2x40xf32>
      %z = jamba.expert_gemm %xs, %q scale(%s) indices(%idx) route_weights(%rw)
          : (tensor<?x2x128xf32>, tensor<5x40x128xi8>, tensor<5x40xf32>, tensor<?x2xi64>,
             tensor<?x2xf32>) -> tensor<?x2x40xf32>
      %c0 = arith.constant 0 : index
      %t = tensor.dim %x, %c0 : tensor<?x128xf32>
      %xv = tensor.extract_slice %xw[0, 1] [%t, 128] [1, 1]
          : tensor<?x129xf32> to tensor<?x128xf32>
      %v = jamba.expert_gemm %xv, %q scale(%s) indices(%idx)
          : (tensor<?x128xf32>, tensor<5x40x128xi8>, tensor<5x40xf32>, tensor<?x2xi64>)
          -> tensor<?x2x40xf32>
      %xbv = tensor.extract_slice %xbw[0, 1] [%t, 128] [1, 1]
          : tensor<?x129xbf16> to tensor<?x128xbf16>
      %ub = jamba.expert_gemm %xbv, %q scale(%s) indices(%idx)
          : (tensor<?x128xbf16>, tensor<5x40x128xi8>, tensor<5x40xf32>, tensor<?x2xi64>)
          -> tensor<?x2x40xbf16>
      %u = arith.extf %ub : tensor<?x2x40xbf16> to tensor<?x2x40xf32>
      return %y, %z, %v, %u
          : tensor<?x2x40xf32>, tensor<?x2x40xf32>, tensor<?x2x40xf32>, tensor<?x2x40xf32>
    })mlir";
  auto hf = randomFloats(5 * 40 * 128, 120),
       s = randomFloats(200, 121, 0.001f, 0.02f);
  std::vector<uint16_t> h;
  for (float &v : hf)
    h.push_back(toBF16(v)), v = fromBF16(h.back());
  auto q = randomInt8(5 * 40 * 128, 122);
  Tensor<float> rs = toRef(s, {5, 40});
  mlir::jamba::CPULowerPipelineOptions options;
  options.gpuKernels = true;
  options.tensorCores = true;
  options.expertGemmGroupedRows = 0;
  Kernel k(ir, options);
  ASSERT_EQ(k.error, "");
  auto roundedToBF16 = [](std::vector<float> v) {
    for (float &e : v)
      e = fromBF16(toBF16(e));
    return v;
  };
  for (int64_t tokens : {3, 20, 45, 100}) {
    SCOPED_TRACE(::testing::Message() << tokens << " tokens");
    auto x = randomFloats(size_t(tokens * 128), 123 + unsigned(tokens)),
         xs = randomFloats(size_t(tokens * 2 * 128), 124 + unsigned(tokens)),
         rw = randomFloats(size_t(tokens * 2), 125, 0.1f, 0.9f);
    std::vector<int64_t> idx;
    for (int64_t t = 0; t < tokens; ++t) {
      idx.push_back(t % 3 == 2 ? 1 : 0);
      idx.push_back(t % 3 == 0 ? 2 : 4);
    }
    // %xw's columns 1..128 are x; column 0 is never read. %xbw the same
    // in bf16.
    std::vector<float> xw(size_t(tokens * 129), 7.0f);
    std::vector<uint16_t> xbw(size_t(tokens * 129), toBF16(7.0f));
    for (int64_t t = 0; t < tokens; ++t) {
      std::copy_n(x.begin() + t * 128, 128, xw.begin() + t * 129 + 1);
      for (int64_t c = 0; c < 128; ++c)
        xbw[size_t(t * 129 + 1 + c)] = toBF16(x[size_t(t * 128 + c)]);
    }
    auto out =
        k.run({buf(x, {tokens, 128}), buf(xs, {tokens, 2, 128}),
               buf(xw, {tokens, 129}), buf(h, {5, 40, 128}),
               buf(q, {5, 40, 128}), buf(s, {5, 40}), buf(idx, {tokens, 2}),
               buf(rw, {tokens, 2}), buf(xbw, {tokens, 129})},
              {3, 3, 3, 3});
    Tensor<float> ridx = toRef(idx, {tokens, 2}), rrw = toRef(rw, {tokens, 2});
    expectClose(out[0],
                ref::expertGemm<float>(toRef(roundedToBF16(x), {tokens, 128}),
                                       toRef(hf, {5, 40, 128}), nullptr, ridx,
                                       nullptr),
                "tensor-core expert_gemm bf16, shared input");
    expectClose(
        out[1],
        ref::expertGemm<float>(toRef(roundedToBF16(xs), {tokens, 2, 128}),
                               toRef(q, {5, 40, 128}), &rs, ridx, &rrw),
        "tensor-core expert_gemm int8, per slot, route weights");
    expectClose(out[2],
                ref::expertGemm<float>(toRef(roundedToBF16(x), {tokens, 128}),
                                       toRef(q, {5, 40, 128}), &rs, ridx,
                                       nullptr),
                "tensor-core expert_gemm int8, misaligned input view");
    // A bf16 input's result is bf16 too: rounded to nearest, within half
    // an ulp, 2^-8 of its magnitude.
    expectClose(out[3],
                ref::expertGemm<float>(toRef(roundedToBF16(x), {tokens, 128}),
                                       toRef(q, {5, 40, 128}), &rs, ridx,
                                       nullptr),
                "tensor-core expert_gemm int8, misaligned bf16 input view",
                /*tolerance=*/3.91e-3);
    // The inputs' rounding is what separates the kernel from the exact f32
    // reference: it must show, or the kernel did not round them.
    EXPECT_GT(relativeError(out[1],
                            ref::expertGemm<float>(toRef(xs, {tokens, 2, 128}),
                                                   toRef(q, {5, 40, 128}), &rs,
                                                   ridx, &rrw)),
              kF32Tolerance)
        << "the tensor-core kernel's inputs were not rounded to bf16";
  }
}

TEST_F(JambaToLinalgNumerics, ExpertGemmWithExpertOffset) {
  // Expert parallelism: this rank holds experts 2, 3, 4 of 5 (offset 2);
  // slots routed to experts 0 and 1 (other ranks) give zero rows. Every
  // lowering against the reference kernel, which skips those slots.
  const char *ir = R"mlir(
    func.func @f(%x: tensor<?x37xf32>, %q: tensor<3x13x37xi8>, %s: tensor<3x13xf32>,
                 %idx: tensor<?x2xi32>, %rw: tensor<?x2xf32>, %off: tensor<1xi64>)
        -> tensor<?x2x13xf32> attributes {llvm.emit_c_interface} {
      %y = jamba.expert_gemm %x, %q scale(%s) indices(%idx) route_weights(%rw)
          expert_offset(%off)
          : (tensor<?x37xf32>, tensor<3x13x37xi8>, tensor<3x13xf32>, tensor<?x2xi32>,
             tensor<?x2xf32>, tensor<1xi64>) -> tensor<?x2x13xf32>
      return %y : tensor<?x2x13xf32>
    })mlir";
  auto x = randomFloats(7 * 37, 90), s = randomFloats(39, 91, 0.001f, 0.02f),
       rw = randomFloats(14, 92, 0.1f, 0.9f);
  auto q = randomInt8(3 * 13 * 37, 93);
  std::vector<int32_t> idx{0, 2, 4, 1, 3, 2, 1, 0, 2, 4, 3, 3, 4, 2};
  std::vector<int64_t> off{2};
  Tensor<float> rs = toRef(s, {3, 13}), rrw = toRef(rw, {7, 2}),
                roff = toRef(off, {1});
  Tensor<float> expected =
      ref::expertGemm<float>(toRef(x, {7, 37}), toRef(q, {3, 13, 37}), &rs,
                             toRef(idx, {7, 2}), &rrw, &roff);
  for (const ExpertGemmLowering &lowering : kExpertGemmLowerings) {
    Kernel k(ir, *expertGemmOptions(lowering));
    ASSERT_EQ(k.error, "");
    auto out = k.run({buf(x, {7, 37}), buf(q, {3, 13, 37}), buf(s, {3, 13}),
                      buf(idx, {7, 2}), buf(rw, {7, 2}), buf(off, {1})},
                     {3});
    std::string what =
        std::string(lowering.name) + " expert_gemm with expert offset";
    expectClose(out[0], expected, what.c_str());
    // The slots of other ranks' experts are exactly zero.
    const float *y = out[0].elements<float>();
    for (size_t slot = 0; slot < idx.size(); ++slot)
      if (idx[slot] < 2)
        for (int n = 0; n < 13; ++n)
          EXPECT_EQ(y[slot * 13 + n], 0.0f) << what << " slot " << slot;
  }
}

TEST_F(JambaToLinalgNumerics, ExpertGemmTensorCoresWithExpertOffset) {
  // Expert parallelism on the emulated tensor cores: this rank holds
  // experts 2, 3, 4 of 5 (offset 2), K = 128, N = 40, 60 tokens routed so
  // that expert 2 gets 40 rows (a tile of 32, both m-blocks, then one of
  // 8), expert 4 20 and expert 3 none; the slots of experts 0 and 1 (other
  // ranks) are exactly zero. Against the reference on the inputs rounded
  // to bf16, as the kernel rounds them.
  const char *ir = R"mlir(
    func.func @f(%x: tensor<?x128xf32>, %q: tensor<3x40x128xi8>, %s: tensor<3x40xf32>,
                 %idx: tensor<?x2xi32>, %rw: tensor<?x2xf32>, %off: tensor<1xi64>)
        -> tensor<?x2x40xf32> attributes {llvm.emit_c_interface} {
      %y = jamba.expert_gemm %x, %q scale(%s) indices(%idx) route_weights(%rw)
          expert_offset(%off)
          : (tensor<?x128xf32>, tensor<3x40x128xi8>, tensor<3x40xf32>, tensor<?x2xi32>,
             tensor<?x2xf32>, tensor<1xi64>) -> tensor<?x2x40xf32>
      return %y : tensor<?x2x40xf32>
    })mlir";
  constexpr int64_t kTokens = 60;
  auto x = randomFloats(kTokens * 128, 94),
       s = randomFloats(120, 95, 0.001f, 0.02f),
       rw = randomFloats(kTokens * 2, 96, 0.1f, 0.9f);
  auto q = randomInt8(3 * 40 * 128, 97);
  std::vector<int32_t> idx;
  for (int64_t t = 0; t < kTokens; ++t) {
    idx.push_back(t % 3 == 2 ? 4 : 2); // expert 2: 40 rows, expert 4: 20
    idx.push_back(int32_t(t % 2));     // experts 0 and 1: other ranks'
  }
  std::vector<int64_t> off{2};
  std::vector<float> xRounded(x);
  for (float &e : xRounded)
    e = fromBF16(toBF16(e));
  Tensor<float> rs = toRef(s, {3, 40}), rrw = toRef(rw, {kTokens, 2}),
                roff = toRef(off, {1});
  Tensor<float> expected = ref::expertGemm<float>(
      toRef(xRounded, {kTokens, 128}), toRef(q, {3, 40, 128}), &rs,
      toRef(idx, {kTokens, 2}), &rrw, &roff);
  mlir::jamba::CPULowerPipelineOptions options;
  options.gpuKernels = true;
  options.tensorCores = true;
  options.expertGemmGroupedRows = 0;
  Kernel k(ir, options);
  ASSERT_EQ(k.error, "");
  auto out =
      k.run({buf(x, {kTokens, 128}), buf(q, {3, 40, 128}), buf(s, {3, 40}),
             buf(idx, {kTokens, 2}), buf(rw, {kTokens, 2}), buf(off, {1})},
            {3});
  expectClose(out[0], expected, "tensor-core expert_gemm with expert offset");
  const float *y = out[0].elements<float>();
  for (size_t slot = 0; slot < idx.size(); ++slot)
    if (idx[slot] < 2)
      for (int n = 0; n < 40; ++n)
        ASSERT_EQ(y[slot * 40 + n], 0.0f) << "slot " << slot;
}

TEST_F(JambaToLinalgNumerics, ExpertGemmVectorLoadsAndTheirFallback) {
  // K = 80, a multiple of every vector width (16 int8, 8 bf16, 4 f32
  // weights), so jamba-gpu-kernels reads aligned rows as 16-byte vectors:
  // 5, 10 and 20 chunks per row, shared unevenly by 3 lanes (up to 7 each:
  // the unrolled loop of kLoadsInFlight loads, then the rest one at a time)
  // and by 5, 10 or 20 of 32; the int8 chunks are widened without
  // int-to-float conversions. Views into wider tensors test the alignment
  // check: %qa starts 16 int8 into rows of 96 (aligned: vectors), %qb 1 int8 in
  // (misaligned) and %xb 1 float in (misaligned input): those two must take the
  // scalar loop. Every lowering against the reference.
  const char *ir = R"mlir(
    func.func @f(%x: tensor<?x80xf32>, %xs: tensor<?x2x80xf32>, %xw: tensor<?x81xf32>,
                 %q: tensor<3x5x80xi8>, %h: tensor<3x5x80xbf16>, %w: tensor<3x5x80xf32>,
                 %qw: tensor<3x5x96xi8>, %s: tensor<3x5xf32>,
                 %idx: tensor<?x2xi64>, %rw: tensor<?x2xf32>)
        -> (tensor<?x2x5xf32>, tensor<?x2x5xf32>, tensor<?x2x5xf32>,
            tensor<?x2x5xf32>, tensor<?x2x5xf32>, tensor<?x2x5xf32>)
        attributes {llvm.emit_c_interface} {
      %c0 = arith.constant 0 : index
      %t = tensor.dim %x, %c0 : tensor<?x80xf32>
      %y0 = jamba.expert_gemm %x, %q scale(%s) indices(%idx)
          : (tensor<?x80xf32>, tensor<3x5x80xi8>, tensor<3x5xf32>, tensor<?x2xi64>)
          -> tensor<?x2x5xf32>
      %y1 = jamba.expert_gemm %xs, %h indices(%idx) route_weights(%rw)
          : (tensor<?x2x80xf32>, tensor<3x5x80xbf16>, tensor<?x2xi64>, tensor<?x2xf32>)
          -> tensor<?x2x5xf32>
      %y2 = jamba.expert_gemm %x, %w indices(%idx)
          : (tensor<?x80xf32>, tensor<3x5x80xf32>, tensor<?x2xi64>) -> tensor<?x2x5xf32>
      %qa = tensor.extract_slice %qw[0, 0, 16] [3, 5, 80] [1, 1, 1]
          : tensor<3x5x96xi8> to tensor<3x5x80xi8>
      %y3 = jamba.expert_gemm %x, %qa scale(%s) indices(%idx)
          : (tensor<?x80xf32>, tensor<3x5x80xi8>, tensor<3x5xf32>, tensor<?x2xi64>)
          -> tensor<?x2x5xf32>
      %qb = tensor.extract_slice %qw[0, 0, 1] [3, 5, 80] [1, 1, 1]
          : tensor<3x5x96xi8> to tensor<3x5x80xi8>
      %y4 = jamba.expert_gemm %x, %qb scale(%s) indices(%idx)
          : (tensor<?x80xf32>, tensor<3x5x80xi8>, tensor<3x5xf32>, tensor<?x2xi64>)
          -> tensor<?x2x5xf32>
      %xb = tensor.extract_slice %xw[0, 1] [%t, 80] [1, 1]
          : tensor<?x81xf32> to tensor<?x80xf32>
      %y5 = jamba.expert_gemm %xb, %q scale(%s) indices(%idx)
          : (tensor<?x80xf32>, tensor<3x5x80xi8>, tensor<3x5xf32>, tensor<?x2xi64>)
          -> tensor<?x2x5xf32>
      return %y0, %y1, %y2, %y3, %y4, %y5 : tensor<?x2x5xf32>, tensor<?x2x5xf32>,
          tensor<?x2x5xf32>, tensor<?x2x5xf32>, tensor<?x2x5xf32>, tensor<?x2x5xf32>
    })mlir";
  constexpr int64_t kTokens = 4, kK = 80, kWide = 96;
  auto x = randomFloats(kTokens * kK, 100),
       xs = randomFloats(kTokens * 2 * kK, 101),
       w = randomFloats(3 * 5 * kK, 102), hf = randomFloats(3 * 5 * kK, 103),
       s = randomFloats(15, 104, 0.001f, 0.02f),
       rw = randomFloats(kTokens * 2, 105, 0.1f, 0.9f);
  auto q = randomInt8(3 * 5 * kK, 106), qw = randomInt8(3 * 5 * kWide, 107);
  std::vector<uint16_t> h;
  for (float &v : hf)
    h.push_back(toBF16(v)), v = fromBF16(h.back());
  // %xw's columns 1..80 are x.
  std::vector<float> xw(kTokens * (kK + 1), 7.0f);
  for (int64_t t = 0; t < kTokens; ++t)
    for (int64_t k = 0; k < kK; ++k)
      xw[t * (kK + 1) + 1 + k] = x[t * kK + k];
  // The two views of %qw as dense tensors, for the reference.
  auto view = [&](int64_t start) {
    std::vector<int8_t> out;
    for (int64_t row = 0; row < 3 * 5; ++row)
      for (int64_t k = 0; k < kK; ++k)
        out.push_back(qw[row * kWide + start + k]);
    return out;
  };
  std::vector<int64_t> idx{0, 2, 1, 1, 2, 0, 2, 2};
  Tensor<float> rs = toRef(s, {3, 5}), rrw = toRef(rw, {kTokens, 2}),
                ridx = toRef(idx, {kTokens, 2}), rx = toRef(x, {kTokens, kK}),
                rq = toRef(q, {3, 5, kK});
  Tensor<float> expected[] = {
      ref::expertGemm<float>(rx, rq, &rs, ridx, nullptr),
      ref::expertGemm<float>(toRef(xs, {kTokens, 2, kK}), toRef(hf, {3, 5, kK}),
                             nullptr, ridx, &rrw),
      ref::expertGemm<float>(rx, toRef(w, {3, 5, kK}), nullptr, ridx, nullptr),
      ref::expertGemm<float>(rx, toRef(view(16), {3, 5, kK}), &rs, ridx,
                             nullptr),
      ref::expertGemm<float>(rx, toRef(view(1), {3, 5, kK}), &rs, ridx,
                             nullptr),
      ref::expertGemm<float>(rx, rq, &rs, ridx, nullptr)};
  const char *cases[] = {"int8 (16 per vector)",
                         "bf16, per slot, route weights (8 per vector)",
                         "f32 (4 per vector)",
                         "int8 view, aligned",
                         "int8 view, misaligned (scalar loop)",
                         "misaligned input view (scalar loop)"};
  for (const ExpertGemmLowering &lowering : kExpertGemmLowerings) {
    Kernel k(ir, *expertGemmOptions(lowering));
    ASSERT_EQ(k.error, "");
    auto out =
        k.run({buf(x, {kTokens, kK}), buf(xs, {kTokens, 2, kK}),
               buf(xw, {kTokens, kK + 1}), buf(q, {3, 5, kK}),
               buf(h, {3, 5, kK}), buf(w, {3, 5, kK}), buf(qw, {3, 5, kWide}),
               buf(s, {3, 5}), buf(idx, {kTokens, 2}), buf(rw, {kTokens, 2})},
              {3, 3, 3, 3, 3, 3});
    for (int i = 0; i < 6; ++i)
      expectClose(
          out[i], expected[i],
          (std::string(lowering.name) + " expert_gemm K = 80, " + cases[i])
              .c_str());
  }
}

/// router_topk on `logits` [6, 8], k = 2, with or without renormalisation.
void checkRouter(const std::vector<float> &logitsIn, bool normalize,
                 const mlir::jamba::CPULowerPipelineOptions &lowering) {
  std::string ir = std::string(R"mlir(
    func.func @f(%l: tensor<6x8xf32>) -> (tensor<6x2xf32>, tensor<6x2xi32>)
        attributes {llvm.emit_c_interface} {
      %w, %i = jamba.router_topk %l {top_k = 2 : i64)mlir") +
                   (normalize ? ", normalize" : "") + R"mlir(}
          : tensor<6x8xf32> -> tensor<6x2xf32>, tensor<6x2xi32>
      return %w, %i : tensor<6x2xf32>, tensor<6x2xi32>
    })mlir";
  Kernel k(ir, lowering);
  ASSERT_EQ(k.error, "");
  std::vector<float> logits = logitsIn;
  auto out = k.run({buf(logits, {6, 8})}, {2, 2});
  auto [w, idx] = ref::routerTopK(toRef(logits, {6, 8}), 2, normalize);
  expectClose(out[0], w,
              normalize ? "router_topk weights (normalize)"
                        : "router_topk weights");
  expectSameIndices<int32_t>(out[1], idx);
}

TEST_P(SequenceKernels, RouterTopK) {
  checkRouter(randomFloats(48, 21, -3.0f, 3.0f), false, *lowering());
  checkRouter(randomFloats(48, 22, -3.0f, 3.0f), true, *lowering());
}

TEST_P(SequenceKernels, RouterTopKTiesGoToTheLowerIndex) {
  // Rows with tied maxima, a tie for second place, and all-equal logits.
  std::vector<float> logits = randomFloats(48, 23);
  float *r = logits.data();
  for (int e = 0; e < 8; ++e)
    r[e] = 0.5f;              // Row 0: all equal -> experts 0, 1.
  r[8 + 6] = r[8 + 2] = 2.0f; // Row 1: tie for first -> 2, 6.
  r[16 + 1] = 3.0f;
  r[16 + 7] = r[16 + 4] = 2.5f; // Row 2: 1 first, then the tie -> 4.
  checkRouter(logits, false, *lowering());
}

TEST_P(SequenceKernels, RouterTopKRank3Dynamic) {
  // [2, ?, 8] logits: collapsed to [rows, experts] and expanded back.
  Kernel k(R"mlir(
    func.func @f(%l: tensor<2x?x8xf32>) -> (tensor<2x?x2xf32>, tensor<2x?x2xi32>)
        attributes {llvm.emit_c_interface} {
      %w, %i = jamba.router_topk %l {top_k = 2 : i64, normalize}
          : tensor<2x?x8xf32> -> tensor<2x?x2xf32>, tensor<2x?x2xi32>
      return %w, %i : tensor<2x?x2xf32>, tensor<2x?x2xi32>
    })mlir",
           *lowering());
  ASSERT_EQ(k.error, "");
  auto logits = randomFloats(48, 44, -3.0f, 3.0f);
  auto out = k.run({buf(logits, {2, 3, 8})}, {3, 3});
  auto [w, idx] = ref::routerTopK(toRef(logits, {2, 3, 8}), 2, true);
  expectClose(out[0], w, "router_topk rank 3, dynamic");
  expectSameIndices<int32_t>(out[1], idx);
}

TEST_F(JambaToLinalgNumerics, Embedding) {
  Kernel k(R"mlir(
    func.func @f(%t: tensor<32x16xf32>, %ids: tensor<2x5xi32>) -> tensor<2x5x16xf32>
        attributes {llvm.emit_c_interface} {
      %h = jamba.embedding %t, %ids : tensor<32x16xf32>, tensor<2x5xi32> -> tensor<2x5x16xf32>
      return %h : tensor<2x5x16xf32>
    })mlir");
  ASSERT_EQ(k.error, "");
  auto t = randomFloats(512, 24);
  std::vector<int32_t> ids{0, 31, 7, 7, 12, 3, 30, 1, 16, 9};
  auto out = k.run({buf(t, {32, 16}), buf(ids, {2, 5})}, {3});
  expectClose(out[0], ref::embedding(toRef(t, {32, 16}), toRef(ids, {2, 5})),
              "embedding");
}

TEST_P(SequenceKernels, CausalConv1dWithStateBiasAndSiLU) {
  Kernel k(R"mlir(
    func.func @f(%x: tensor<2x7x8xf32>, %w: tensor<8x4xf32>, %b: tensor<8xf32>,
                 %s: tensor<2x8x3xf32>) -> (tensor<2x7x8xf32>, tensor<2x8x3xf32>)
        attributes {llvm.emit_c_interface} {
      %y, %st = jamba.causal_conv1d %x, %w bias(%b) state(%s) {silu}
          : (tensor<2x7x8xf32>, tensor<8x4xf32>, tensor<8xf32>, tensor<2x8x3xf32>)
          -> (tensor<2x7x8xf32>, tensor<2x8x3xf32>)
      return %y, %st : tensor<2x7x8xf32>, tensor<2x8x3xf32>
    })mlir",
           *lowering());
  ASSERT_EQ(k.error, "");
  auto x = randomFloats(112, 25), w = randomFloats(32, 26),
       b = randomFloats(8, 27), s = randomFloats(48, 28);
  Tensor<float> rb = toRef(b, {8});
  auto [y, st] = ref::causalConv1d(toRef(x, {2, 7, 8}), toRef(w, {8, 4}), &rb,
                                   toRef(s, {2, 8, 3}), true);
  auto out =
      k.run({buf(x, {2, 7, 8}), buf(w, {8, 4}), buf(b, {8}), buf(s, {2, 8, 3})},
            {3, 3});
  expectClose(out[0], y, "causal_conv1d output");
  expectClose(out[1], st, "causal_conv1d new state");
}

TEST_P(SequenceKernels, CausalConv1dShortAndLongCalls) {
  // A dynamic length: jamba-gpu-kernels runs a call of at most 8 steps one
  // thread per channel and a longer one one thread per output, then the
  // new states in a kernel of their own; lengths 1, 8, 9 and 20 against the
  // reference (output and new state).
  Kernel k(R"mlir(
    func.func @f(%x: tensor<2x?x8xf32>, %w: tensor<8x4xf32>, %b: tensor<8xf32>,
                 %s: tensor<2x8x3xf32>) -> (tensor<2x?x8xf32>, tensor<2x8x3xf32>)
        attributes {llvm.emit_c_interface} {
      %y, %st = jamba.causal_conv1d %x, %w bias(%b) state(%s) {silu}
          : (tensor<2x?x8xf32>, tensor<8x4xf32>, tensor<8xf32>, tensor<2x8x3xf32>)
          -> (tensor<2x?x8xf32>, tensor<2x8x3xf32>)
      return %y, %st : tensor<2x?x8xf32>, tensor<2x8x3xf32>
    })mlir",
           *lowering());
  ASSERT_EQ(k.error, "");
  auto w = randomFloats(32, 36), b = randomFloats(8, 37),
       s = randomFloats(48, 38);
  Tensor<float> rb = toRef(b, {8});
  for (int64_t seq : {1, 8, 9, 20}) {
    SCOPED_TRACE(::testing::Message() << seq << " steps");
    auto x = randomFloats(size_t(16 * seq), 40 + unsigned(seq));
    auto [y, st] = ref::causalConv1d(toRef(x, {2, seq, 8}), toRef(w, {8, 4}),
                                     &rb, toRef(s, {2, 8, 3}), true);
    auto out = k.run(
        {buf(x, {2, seq, 8}), buf(w, {8, 4}), buf(b, {8}), buf(s, {2, 8, 3})},
        {3, 3});
    expectClose(out[0], y, "causal_conv1d output");
    expectClose(out[1], st, "causal_conv1d new state");
  }
}

/// Random operands of a selective scan with every optional operand (D, z,
/// a delta bias, an initial state, softplus), seeds `seed`, `seed` + 1, ...
/// in the tests' argument order (u, delta, A, B, C, D, z, delta_bias,
/// init_state), and the reference's output and final state.
struct FullScan {
  FullScan(int64_t batch, int64_t seq, int64_t channels, int64_t width,
           unsigned seed)
      : tokens({batch, seq, channels}), perStep({batch, seq, width}),
        rowsOfA({channels, width}), states({batch, channels, width}) {
    const size_t t = size_t(batch * seq);
    u = randomFloats(t * channels, seed);
    delta = randomFloats(t * channels, seed + 1, -3.0f, 1.0f);
    A = randomFloats(size_t(channels * width), seed + 2, -2.0f, -0.1f);
    B = randomFloats(t * width, seed + 3);
    C = randomFloats(t * width, seed + 4);
    D = randomFloats(size_t(channels), seed + 5);
    z = randomFloats(t * channels, seed + 6);
    db = randomFloats(size_t(channels), seed + 7);
    h0 = randomFloats(size_t(batch * channels * width), seed + 8);
  }

  std::pair<Tensor<float>, Tensor<float>> reference() const {
    Tensor<float> ru = toRef(u, tokens), rd = toRef(delta, tokens),
                  rA = toRef(A, rowsOfA), rB = toRef(B, perStep),
                  rC = toRef(C, perStep), rD = toRef(D, {tokens[2]}),
                  rz = toRef(z, tokens), rdb = toRef(db, {tokens[2]}),
                  rh0 = toRef(h0, states);
    ref::ScanOperands<float> ops{&ru, &rd, &rA, &rB, &rC};
    ops.D = &rD;
    ops.z = &rz;
    ops.deltaBias = &rdb;
    ops.initState = &rh0;
    ops.deltaSoftplus = true;
    return ref::selectiveScan(ops);
  }

  std::vector<Buffer> buffers() {
    return {buf(u, tokens),  buf(delta, tokens),   buf(A, rowsOfA),
            buf(B, perStep), buf(C, perStep),      buf(D, {tokens[2]}),
            buf(z, tokens),  buf(db, {tokens[2]}), buf(h0, states)};
  }

  std::vector<int64_t> tokens, perStep, rowsOfA, states;
  std::vector<float> u, delta, A, B, C, D, z, db, h0;
};

TEST_P(SequenceKernels, SelectiveScanWithAllOperands) {
  Kernel k(R"mlir(
    func.func @f(%u: tensor<2x6x8xf32>, %delta: tensor<2x6x8xf32>, %A: tensor<8x4xf32>,
                 %B: tensor<2x6x4xf32>, %C: tensor<2x6x4xf32>, %D: tensor<8xf32>,
                 %z: tensor<2x6x8xf32>, %db: tensor<8xf32>, %h0: tensor<2x8x4xf32>)
        -> (tensor<2x6x8xf32>, tensor<2x8x4xf32>) attributes {llvm.emit_c_interface} {
      %y, %h = jamba.selective_scan %u, %delta, %A, %B, %C D(%D) z(%z) delta_bias(%db)
          init_state(%h0) {delta_softplus}
          : (tensor<2x6x8xf32>, tensor<2x6x8xf32>, tensor<8x4xf32>, tensor<2x6x4xf32>,
             tensor<2x6x4xf32>, tensor<8xf32>, tensor<2x6x8xf32>, tensor<8xf32>,
             tensor<2x8x4xf32>) -> (tensor<2x6x8xf32>, tensor<2x8x4xf32>)
      return %y, %h : tensor<2x6x8xf32>, tensor<2x8x4xf32>
    })mlir",
           *lowering());
  ASSERT_EQ(k.error, "");
  FullScan scan(2, 6, 8, 4, 29);
  auto [y, h] = scan.reference();
  auto out = k.run(scan.buffers(), {3, 3});
  expectClose(out[0], y, "selective_scan output");
  expectClose(out[1], h, "selective_scan final state");
}

TEST_P(SequenceKernels, SelectiveScanWithADynamicStateWidth) {
  // The state width unknown at compile time: jamba-gpu-kernels keeps the
  // state in the final-state buffer instead of in registers.
  Kernel k(R"mlir(
    func.func @f(%u: tensor<2x6x8xf32>, %delta: tensor<2x6x8xf32>, %A: tensor<8x?xf32>,
                 %B: tensor<2x6x?xf32>, %C: tensor<2x6x?xf32>, %D: tensor<8xf32>,
                 %h0: tensor<2x8x?xf32>)
        -> (tensor<2x6x8xf32>, tensor<2x8x?xf32>) attributes {llvm.emit_c_interface} {
      %y, %h = jamba.selective_scan %u, %delta, %A, %B, %C D(%D) init_state(%h0)
          {delta_softplus}
          : (tensor<2x6x8xf32>, tensor<2x6x8xf32>, tensor<8x?xf32>, tensor<2x6x?xf32>,
             tensor<2x6x?xf32>, tensor<8xf32>, tensor<2x8x?xf32>)
          -> (tensor<2x6x8xf32>, tensor<2x8x?xf32>)
      return %y, %h : tensor<2x6x8xf32>, tensor<2x8x?xf32>
    })mlir",
           *lowering());
  ASSERT_EQ(k.error, "");
  auto u = randomFloats(96, 39), delta = randomFloats(96, 40, -3.0f, 1.0f),
       A = randomFloats(24, 41, -2.0f, -0.1f), B = randomFloats(36, 42),
       C = randomFloats(36, 43), D = randomFloats(8, 44),
       h0 = randomFloats(48, 45);
  Tensor<float> ru = toRef(u, {2, 6, 8}), rd = toRef(delta, {2, 6, 8}),
                rA = toRef(A, {8, 3}), rB = toRef(B, {2, 6, 3}),
                rC = toRef(C, {2, 6, 3}), rD = toRef(D, {8}),
                rh0 = toRef(h0, {2, 8, 3});
  ref::ScanOperands<float> ops{&ru, &rd, &rA, &rB, &rC};
  ops.D = &rD;
  ops.initState = &rh0;
  ops.deltaSoftplus = true;
  auto [y, h] = ref::selectiveScan(ops);
  auto out = k.run({buf(u, {2, 6, 8}), buf(delta, {2, 6, 8}), buf(A, {8, 3}),
                    buf(B, {2, 6, 3}), buf(C, {2, 6, 3}), buf(D, {8}),
                    buf(h0, {2, 8, 3})},
                   {3, 3});
  expectClose(out[0], y, "selective_scan (dynamic width) output");
  expectClose(out[1], h, "selective_scan (dynamic width) final state");
}

TEST_F(JambaToLinalgNumerics, SelectiveScanBlocksAndLengths) {
  // d_inner = 24 (three 8-channel blocks of the microkernel), d_state = 5,
  // dynamic batch and length (3 sequences; 1 step as in decode, 7 as in a
  // prefill chunk), no initial state (zeros), softplus with a bias; run with
  // the microkernels and with the generic lowering.
  const char *ir = R"mlir(
    func.func @f(%u: tensor<?x?x24xf32>, %delta: tensor<?x?x24xf32>, %A: tensor<24x5xf32>,
                 %B: tensor<?x?x5xf32>, %C: tensor<?x?x5xf32>, %D: tensor<24xf32>,
                 %z: tensor<?x?x24xf32>, %db: tensor<24xf32>)
        -> (tensor<?x?x24xf32>, tensor<?x24x5xf32>) attributes {llvm.emit_c_interface} {
      %y, %h = jamba.selective_scan %u, %delta, %A, %B, %C D(%D) z(%z) delta_bias(%db)
          {delta_softplus}
          : (tensor<?x?x24xf32>, tensor<?x?x24xf32>, tensor<24x5xf32>, tensor<?x?x5xf32>,
             tensor<?x?x5xf32>, tensor<24xf32>, tensor<?x?x24xf32>, tensor<24xf32>)
          -> (tensor<?x?x24xf32>, tensor<?x24x5xf32>)
      return %y, %h : tensor<?x?x24xf32>, tensor<?x24x5xf32>
    })mlir";
  for (bool microkernels : {true, false}) {
    Kernel k(ir, *withMicrokernels(microkernels));
    ASSERT_EQ(k.error, "");
    for (int64_t seq : {1, 7}) {
      int64_t n = 3 * seq;
      auto u = randomFloats(n * 24, 80 + seq),
           delta = randomFloats(n * 24, 81 + seq, -3.0f, 1.0f),
           A = randomFloats(120, 82, -2.0f, -0.1f),
           B = randomFloats(n * 5, 83 + seq), C = randomFloats(n * 5, 84 + seq),
           D = randomFloats(24, 85), z = randomFloats(n * 24, 86 + seq),
           db = randomFloats(24, 87);
      Tensor<float> ru = toRef(u, {3, seq, 24}),
                    rd = toRef(delta, {3, seq, 24}), rA = toRef(A, {24, 5}),
                    rB = toRef(B, {3, seq, 5}), rC = toRef(C, {3, seq, 5}),
                    rD = toRef(D, {24}), rz = toRef(z, {3, seq, 24}),
                    rdb = toRef(db, {24});
      ref::ScanOperands<float> ops{&ru, &rd, &rA, &rB, &rC};
      ops.D = &rD;
      ops.z = &rz;
      ops.deltaBias = &rdb;
      ops.deltaSoftplus = true;
      auto [y, h] = ref::selectiveScan(ops);
      auto out =
          k.run({buf(u, {3, seq, 24}), buf(delta, {3, seq, 24}),
                 buf(A, {24, 5}), buf(B, {3, seq, 5}), buf(C, {3, seq, 5}),
                 buf(D, {24}), buf(z, {3, seq, 24}), buf(db, {24})},
                {3, 3});
      std::string what = std::string(microkernels ? "microkernel" : "linalg") +
                         " selective_scan, length " + std::to_string(seq);
      expectClose(out[0], y, (what + ", output").c_str());
      expectClose(out[1], h, (what + ", final state").c_str());
    }
  }
}

TEST_F(JambaToLinalgNumerics, SelectiveScanWithAsManyStatesAsChannels) {
  // d_inner = d_state = 16 (two 8-channel blocks of the microkernel): A,
  // the state's rows and B, C against delta, u, z have the same shapes, so
  // an operand taken for another of its shape would still compile. With an
  // initial state, 2 sequences of 1 and 5 steps; the microkernels and the
  // generic lowering against the reference.
  const char *ir = R"mlir(
    func.func @f(%u: tensor<?x?x16xf32>, %delta: tensor<?x?x16xf32>, %A: tensor<16x16xf32>,
                 %B: tensor<?x?x16xf32>, %C: tensor<?x?x16xf32>, %D: tensor<16xf32>,
                 %z: tensor<?x?x16xf32>, %db: tensor<16xf32>, %h0: tensor<?x16x16xf32>)
        -> (tensor<?x?x16xf32>, tensor<?x16x16xf32>) attributes {llvm.emit_c_interface} {
      %y, %h = jamba.selective_scan %u, %delta, %A, %B, %C D(%D) z(%z) delta_bias(%db)
          init_state(%h0) {delta_softplus}
          : (tensor<?x?x16xf32>, tensor<?x?x16xf32>, tensor<16x16xf32>, tensor<?x?x16xf32>,
             tensor<?x?x16xf32>, tensor<16xf32>, tensor<?x?x16xf32>, tensor<16xf32>,
             tensor<?x16x16xf32>)
          -> (tensor<?x?x16xf32>, tensor<?x16x16xf32>)
      return %y, %h : tensor<?x?x16xf32>, tensor<?x16x16xf32>
    })mlir";
  for (bool microkernels : {true, false}) {
    Kernel k(ir, *withMicrokernels(microkernels));
    ASSERT_EQ(k.error, "");
    for (int64_t seq : {1, 5}) {
      int64_t n = 2 * seq;
      auto u = randomFloats(n * 16, 90 + seq),
           delta = randomFloats(n * 16, 91 + seq, -3.0f, 1.0f),
           A = randomFloats(256, 92, -2.0f, -0.1f),
           B = randomFloats(n * 16, 93 + seq),
           C = randomFloats(n * 16, 94 + seq), D = randomFloats(16, 95),
           z = randomFloats(n * 16, 96 + seq), db = randomFloats(16, 97),
           h0 = randomFloats(2 * 256, 98 + seq);
      Tensor<float> ru = toRef(u, {2, seq, 16}),
                    rd = toRef(delta, {2, seq, 16}), rA = toRef(A, {16, 16}),
                    rB = toRef(B, {2, seq, 16}), rC = toRef(C, {2, seq, 16}),
                    rD = toRef(D, {16}), rz = toRef(z, {2, seq, 16}),
                    rdb = toRef(db, {16}), rh0 = toRef(h0, {2, 16, 16});
      ref::ScanOperands<float> ops{&ru, &rd, &rA, &rB, &rC};
      ops.D = &rD;
      ops.z = &rz;
      ops.deltaBias = &rdb;
      ops.deltaSoftplus = true;
      ops.initState = &rh0;
      auto [y, h] = ref::selectiveScan(ops);
      auto out = k.run(
          {buf(u, {2, seq, 16}), buf(delta, {2, seq, 16}), buf(A, {16, 16}),
           buf(B, {2, seq, 16}), buf(C, {2, seq, 16}), buf(D, {16}),
           buf(z, {2, seq, 16}), buf(db, {16}), buf(h0, {2, 16, 16})},
          {3, 3});
      std::string what = std::string(microkernels ? "microkernel" : "linalg") +
                         " square selective_scan, length " +
                         std::to_string(seq);
      expectClose(out[0], y, (what + ", output").c_str());
      expectClose(out[1], h, (what + ", final state").c_str());
    }
  }
}

/// A selective scan with every optional operand (FullScan's argument
/// order) over a dynamic batch and length, 6 channels and `width` states.
std::string fullScanIr(int64_t width) {
  std::string ir = R"mlir(
    func.func @f(%u: tensor<?x?x6xf32>, %delta: tensor<?x?x6xf32>, %A: tensor<6xNxf32>,
                 %B: tensor<?x?xNxf32>, %C: tensor<?x?xNxf32>, %D: tensor<6xf32>,
                 %z: tensor<?x?x6xf32>, %db: tensor<6xf32>, %h0: tensor<?x6xNxf32>)
        -> (tensor<?x?x6xf32>, tensor<?x6xNxf32>) attributes {llvm.emit_c_interface} {
      %y, %h = jamba.selective_scan %u, %delta, %A, %B, %C D(%D) z(%z) delta_bias(%db)
          init_state(%h0) {delta_softplus}
          : (tensor<?x?x6xf32>, tensor<?x?x6xf32>, tensor<6xNxf32>, tensor<?x?xNxf32>,
             tensor<?x?xNxf32>, tensor<6xf32>, tensor<?x?x6xf32>, tensor<6xf32>,
             tensor<?x6xNxf32>)
          -> (tensor<?x?x6xf32>, tensor<?x6xNxf32>)
      return %y, %h : tensor<?x?x6xf32>, tensor<?x6xNxf32>
    })mlir";
  const std::string n = "x" + std::to_string(width) + "x";
  for (size_t at = ir.find("xNx"); at != std::string::npos;
       at = ir.find("xNx", at + n.size()))
    ir.replace(at, 3, n);
  return ir;
}

TEST_F(JambaToLinalgNumerics, SelectiveScanInChunks) {
  // jamba-gpu-kernels cuts the time loop into chunks of at least
  // scan-chunk-steps steps when (batch x channels) threads are too few to
  // fill a GPU (always, at these sizes): each chunk's state from zero, the
  // chunks' initial states carried from the op's initial state, then each
  // chunk again from its own. 1, 3 and 5 steps per chunk over lengths 1, 7
  // and 20 (uneven, and an empty last chunk at 3 steps and length 7),
  // with an initial state, D, z, a bias and softplus, against the
  // reference; the default (64) keeps every length here in one chunk.
  const std::string ir = fullScanIr(4);
  for (int64_t chunkSteps : {1, 3, 5, 64}) {
    mlir::jamba::CPULowerPipelineOptions options;
    options.gpuKernels = true;
    options.scanChunkSteps = chunkSteps;
    Kernel k(ir, options);
    ASSERT_EQ(k.error, "");
    for (int64_t seq : {1, 7, 20}) {
      SCOPED_TRACE(::testing::Message()
                   << chunkSteps << " steps per chunk, " << seq << " steps");
      FullScan scan(2, seq, 6, 4, 120 + 10 * unsigned(seq));
      auto [y, h] = scan.reference();
      auto out = k.run(scan.buffers(), {3, 3});
      expectClose(out[0], y, "chunked selective_scan, output");
      expectClose(out[1], h, "chunked selective_scan, final state");
    }
  }
}

TEST_F(JambaToLinalgNumerics, SelectiveScanRowsOfBByVectorsOrNot) {
  // The register form reads B_t in vectors of 4 where every row starts
  // 16-byte aligned, else element by element; a state width that is not a
  // multiple of 4 element by element always. Three kernels of 20 steps (3
  // per chunk: beyond the decode form's 8), against the reference: B and C
  // as they come (aligned), B and C as column slices of one [.., .., 9]
  // tensor (rows of stride 9 at offsets 0 and 5: the fallback), and 6
  // states.
  const std::string direct = fullScanIr(4), sixStates = fullScanIr(6);
  const std::string sliced = R"mlir(
    func.func @f(%u: tensor<?x?x6xf32>, %delta: tensor<?x?x6xf32>, %A: tensor<6x4xf32>,
                 %BC: tensor<?x?x9xf32>, %D: tensor<6xf32>,
                 %z: tensor<?x?x6xf32>, %db: tensor<6xf32>, %h0: tensor<?x6x4xf32>)
        -> (tensor<?x?x6xf32>, tensor<?x6x4xf32>) attributes {llvm.emit_c_interface} {
      %c0 = arith.constant 0 : index
      %c1 = arith.constant 1 : index
      %n = tensor.dim %BC, %c0 : tensor<?x?x9xf32>
      %t = tensor.dim %BC, %c1 : tensor<?x?x9xf32>
      %B = tensor.extract_slice %BC[0, 0, 0] [%n, %t, 4] [1, 1, 1] : tensor<?x?x9xf32> to tensor<?x?x4xf32>
      %C = tensor.extract_slice %BC[0, 0, 5] [%n, %t, 4] [1, 1, 1] : tensor<?x?x9xf32> to tensor<?x?x4xf32>
      %y, %h = jamba.selective_scan %u, %delta, %A, %B, %C D(%D) z(%z) delta_bias(%db)
          init_state(%h0) {delta_softplus}
          : (tensor<?x?x6xf32>, tensor<?x?x6xf32>, tensor<6x4xf32>, tensor<?x?x4xf32>,
             tensor<?x?x4xf32>, tensor<6xf32>, tensor<?x?x6xf32>, tensor<6xf32>,
             tensor<?x6x4xf32>)
          -> (tensor<?x?x6xf32>, tensor<?x6x4xf32>)
      return %y, %h : tensor<?x?x6xf32>, tensor<?x6x4xf32>
    })mlir";
  mlir::jamba::CPULowerPipelineOptions options;
  options.gpuKernels = true;
  options.scanChunkSteps = 3;
  const int64_t seq = 20;
  for (int form = 0; form < 3; ++form) {
    SCOPED_TRACE(form == 0   ? "B and C aligned"
                 : form == 1 ? "B and C slices of stride 9"
                             : "6 states");
    Kernel k(form == 0 ? direct : form == 1 ? sliced : sixStates, options);
    ASSERT_EQ(k.error, "");
    const int64_t width = form == 2 ? 6 : 4;
    FullScan scan(2, seq, 6, width, 300 + 10 * unsigned(form));
    auto [y, h] = scan.reference();
    // The aligned form needs B's storage 16-byte aligned (malloc's is).
    // Which path each form takes was checked by breaking one: a wrong
    // vector path fails the aligned form alone, a wrong fallback the other
    // two.
    if (form == 0)
      ASSERT_EQ(reinterpret_cast<uintptr_t>(scan.B.data()) % 16, 0u);
    std::vector<Buffer> args = scan.buffers();
    std::vector<float> bc;
    if (form == 1) {
      // B in columns 0-3 and C in 5-8 of each row of 9; column 4 unread.
      bc = randomFloats(size_t(2 * seq * 9), 399);
      for (int64_t r = 0; r < 2 * seq; ++r)
        for (int64_t n = 0; n < 4; ++n) {
          bc[size_t(r * 9 + n)] = scan.B[size_t(r * 4 + n)];
          bc[size_t(r * 9 + 5 + n)] = scan.C[size_t(r * 4 + n)];
        }
      args.erase(args.begin() + 3, args.begin() + 5);
      args.insert(args.begin() + 3, buf(bc, {2, seq, 9}));
    }
    auto out = k.run(args, {3, 3});
    expectClose(out[0], y, "selective_scan output");
    expectClose(out[1], h, "selective_scan final state");
  }
}

TEST_F(JambaToLinalgNumerics, SelectiveScanInOnePassOverLanes) {
  // With scan-lane-threads=0 every call of more than 8 steps runs the
  // one-pass lane form (each channel's states over min(width, 8) lanes,
  // the steps in batches of that many, their sums by a reduce-scatter),
  // emulated lane by lane: 1, 4, 8, 16, 24, 32 and 64 states (1 to 8 per
  // lane; 3 per lane without vector loads), 6 channels (a warp's last lanes
  // past them), lengths 9, 16 and 21 (a last batch cut short, or not),
  // every optional operand, against the reference; 5 steps take the decode
  // form (widths dividing 32) or the chunked one. 6 states do not split
  // into lanes evenly: the chunked form.
  // Broken on purpose: the reduce-scatter's halves swapped fails every
  // width of more than one lane; a step past the end allowed to change the
  // states fails those widths at lengths 9 and 21.
  mlir::jamba::CPULowerPipelineOptions options;
  options.gpuKernels = true;
  options.scanLaneThreads = 0;
  for (int64_t width : {1, 4, 6, 8, 16, 24, 32, 64}) {
    Kernel k(fullScanIr(width), options);
    ASSERT_EQ(k.error, "");
    for (int64_t seq : {5, 9, 16, 21}) {
      SCOPED_TRACE(::testing::Message()
                   << width << " states, " << seq << " steps");
      FullScan scan(2, seq, 6, width, 500 + unsigned(width * 7 + seq));
      auto [y, h] = scan.reference();
      auto out = k.run(scan.buffers(), {3, 3});
      expectClose(out[0], y, "one-pass selective_scan, output");
      expectClose(out[1], h, "one-pass selective_scan, final state");
    }
  }
}

TEST_F(JambaToLinalgNumerics, SelectiveScanOfAComputedA) {
  // A = -exp(A_log) from a bf16 A_log, as imported Mamba layers compute it:
  // jamba-gpu-kernels evaluates the elementwise ops where the scan's
  // register form reads A (every nest of the chunked form: 2 steps per
  // chunk over 7 steps; one chunk), and no tensor op is left for them; a
  // state width only known at run time reads A as computed by its own
  // kernel. Against the reference on the same A.
  const char *ir = R"mlir(
    func.func @f(%u: tensor<2x7x6xf32>, %delta: tensor<2x7x6xf32>, %alog: tensor<6x4xbf16>,
                 %B: tensor<2x7x4xf32>, %C: tensor<2x7x4xf32>, %h0: tensor<2x6x4xf32>,
                 %alogd: tensor<6x?xbf16>)
        -> (tensor<2x7x6xf32>, tensor<2x6x4xf32>, tensor<2x7x6xf32>, tensor<2x6x?xf32>)
        attributes {llvm.emit_c_interface} {
      %w = arith.extf %alog : tensor<6x4xbf16> to tensor<6x4xf32>
      %e = math.exp %w : tensor<6x4xf32>
      %A = arith.negf %e : tensor<6x4xf32>
      %y, %h = jamba.selective_scan %u, %delta, %A, %B, %C init_state(%h0) {delta_softplus}
          : (tensor<2x7x6xf32>, tensor<2x7x6xf32>, tensor<6x4xf32>, tensor<2x7x4xf32>,
             tensor<2x7x4xf32>, tensor<2x6x4xf32>) -> (tensor<2x7x6xf32>, tensor<2x6x4xf32>)
      %wd = arith.extf %alogd : tensor<6x?xbf16> to tensor<6x?xf32>
      %ed = math.exp %wd : tensor<6x?xf32>
      %Ad = arith.negf %ed : tensor<6x?xf32>
      %B2 = tensor.cast %B : tensor<2x7x4xf32> to tensor<2x7x?xf32>
      %C2 = tensor.cast %C : tensor<2x7x4xf32> to tensor<2x7x?xf32>
      %h2 = tensor.cast %h0 : tensor<2x6x4xf32> to tensor<2x6x?xf32>
      %yd, %hd = jamba.selective_scan %u, %delta, %Ad, %B2, %C2 init_state(%h2) {delta_softplus}
          : (tensor<2x7x6xf32>, tensor<2x7x6xf32>, tensor<6x?xf32>, tensor<2x7x?xf32>,
             tensor<2x7x?xf32>, tensor<2x6x?xf32>) -> (tensor<2x7x6xf32>, tensor<2x6x?xf32>)
      return %y, %h, %yd, %hd
          : tensor<2x7x6xf32>, tensor<2x6x4xf32>, tensor<2x7x6xf32>, tensor<2x6x?xf32>
    })mlir";
  auto u = randomFloats(84, 170), delta = randomFloats(84, 171, -3.0f, 1.0f),
       alogF = randomFloats(24, 172, -1.0f, 1.0f), B = randomFloats(56, 173),
       C = randomFloats(56, 174), h0 = randomFloats(48, 175);
  std::vector<uint16_t> alog;
  std::vector<float> A;
  for (float v : alogF) {
    alog.push_back(toBF16(v));
    A.push_back(-std::exp(fromBF16(alog.back())));
  }
  Tensor<float> ru = toRef(u, {2, 7, 6}), rd = toRef(delta, {2, 7, 6}),
                rA = toRef(A, {6, 4}), rB = toRef(B, {2, 7, 4}),
                rC = toRef(C, {2, 7, 4}), rh0 = toRef(h0, {2, 6, 4});
  ref::ScanOperands<float> ops{&ru, &rd, &rA, &rB, &rC};
  ops.initState = &rh0;
  ops.deltaSoftplus = true;
  auto [y, h] = ref::selectiveScan(ops);
  for (int64_t chunkSteps : {2, 64}) {
    SCOPED_TRACE(::testing::Message() << chunkSteps << " steps per chunk");
    mlir::jamba::CPULowerPipelineOptions options;
    options.gpuKernels = true;
    options.scanChunkSteps = chunkSteps;
    Kernel k(ir, options);
    ASSERT_EQ(k.error, "");
    auto out = k.run({buf(u, {2, 7, 6}), buf(delta, {2, 7, 6}),
                      buf(alog, {6, 4}), buf(B, {2, 7, 4}), buf(C, {2, 7, 4}),
                      buf(h0, {2, 6, 4}), buf(alog, {6, 4})},
                     {3, 3, 3, 3});
    expectClose(out[0], y, "selective_scan of -exp(A_log), output");
    expectClose(out[1], h, "selective_scan of -exp(A_log), final state");
    expectClose(out[2], y, "dynamic width, output");
    expectClose(out[3], h, "dynamic width, final state");
  }
}

TEST_F(JambaToLinalgNumerics, MambaStatesUpdatedInPlace) {
  // jamba-states-in-place with the GPU kernels' form: the conv and the scan
  // write their new states over the old ones in the state arguments (no
  // copy), which is only right if every thread reads its row of the old
  // state before any thread writes it. 7 steps in chunks of 2 (the scan's
  // last chunk writes the final state while other chunks run) and in one
  // chunk, from random states, against the reference.
  const char *ir = R"mlir(
    func.func @f(%x: tensor<2x7x6xf32>, %w: tensor<6x4xf32>,
                 %cs: tensor<2x6x3xf32> {jamba.state = "layers.0.conv_state"},
                 %delta: tensor<2x7x6xf32>, %A: tensor<6x4xf32>, %B: tensor<2x7x4xf32>,
                 %C: tensor<2x7x4xf32>,
                 %h0: tensor<2x6x4xf32> {jamba.state = "layers.0.ssm_state"})
        -> (tensor<2x7x6xf32>, tensor<2x6x3xf32> {jamba.state = "layers.0.conv_state"},
            tensor<2x6x4xf32> {jamba.state = "layers.0.ssm_state"})
        attributes {llvm.emit_c_interface} {
      %u, %s = jamba.causal_conv1d %x, %w state(%cs) {silu}
          : (tensor<2x7x6xf32>, tensor<6x4xf32>, tensor<2x6x3xf32>)
          -> (tensor<2x7x6xf32>, tensor<2x6x3xf32>)
      %y, %h = jamba.selective_scan %u, %delta, %A, %B, %C init_state(%h0) {delta_softplus}
          : (tensor<2x7x6xf32>, tensor<2x7x6xf32>, tensor<6x4xf32>, tensor<2x7x4xf32>,
             tensor<2x7x4xf32>, tensor<2x6x4xf32>) -> (tensor<2x7x6xf32>, tensor<2x6x4xf32>)
      return %y, %s, %h : tensor<2x7x6xf32>, tensor<2x6x3xf32>, tensor<2x6x4xf32>
    })mlir";
  const auto x = randomFloats(84, 180), w = randomFloats(24, 181),
             cs = randomFloats(36, 182),
             delta = randomFloats(84, 183, -3.0f, 1.0f),
             A = randomFloats(24, 184, -2.0f, -0.1f), B = randomFloats(56, 185),
             C = randomFloats(56, 186), h0 = randomFloats(48, 187);
  auto [u, s1] = ref::causalConv1d(toRef(x, {2, 7, 6}), toRef(w, {6, 4}),
                                   static_cast<const Tensor<float> *>(nullptr),
                                   toRef(cs, {2, 6, 3}), true);
  Tensor<float> rd = toRef(delta, {2, 7, 6}), rA = toRef(A, {6, 4}),
                rB = toRef(B, {2, 7, 4}), rC = toRef(C, {2, 7, 4}),
                rh0 = toRef(h0, {2, 6, 4});
  ref::ScanOperands<float> ops{&u, &rd, &rA, &rB, &rC};
  ops.initState = &rh0;
  ops.deltaSoftplus = true;
  auto [y, h] = ref::selectiveScan(ops);
  for (int64_t chunkSteps : {2, 64}) {
    SCOPED_TRACE(::testing::Message() << chunkSteps << " steps per chunk");
    mlir::jamba::CPULowerPipelineOptions options;
    options.gpuKernels = true;
    options.statesInPlace = true;
    options.scanChunkSteps = chunkSteps;
    Kernel k(ir, options);
    ASSERT_EQ(k.error, "");
    // Fresh copies: the call updates the states in them.
    auto xs = x, ws = w, css = cs, ds = delta, As = A, Bs = B, Cs = C, hs = h0;
    auto out = k.run({buf(xs, {2, 7, 6}), buf(ws, {6, 4}), buf(css, {2, 6, 3}),
                      buf(ds, {2, 7, 6}), buf(As, {6, 4}), buf(Bs, {2, 7, 4}),
                      buf(Cs, {2, 7, 4}), buf(hs, {2, 6, 4})},
                     {3});
    expectClose(out[0], y, "output");
    expectClose(buf(css, {2, 6, 3}), s1, "conv state, updated in place");
    expectClose(buf(hs, {2, 6, 4}), h, "ssm state, updated in place");
  }
}

TEST_P(SequenceKernels, MambaStatesCarryOverDynamicLengths) {
  // The Mamba primitives as the decomposed model uses them: a dynamic
  // sequence length, x and z slices of one in_proj output, the conv state
  // and the SSM state passed in and returned.
  Kernel k(R"mlir(
    func.func @f(%xz: tensor<1x?x16xf32>, %w: tensor<8x4xf32>, %b: tensor<8xf32>,
                 %s: tensor<1x8x3xf32>, %delta: tensor<1x?x8xf32>, %A: tensor<8x4xf32>,
                 %B: tensor<1x?x4xf32>, %C: tensor<1x?x4xf32>, %D: tensor<8xf32>,
                 %db: tensor<8xf32>, %h0: tensor<1x8x4xf32>)
        -> (tensor<1x?x8xf32>, tensor<1x8x3xf32>, tensor<1x8x4xf32>)
        attributes {llvm.emit_c_interface} {
      %c1 = arith.constant 1 : index
      %n = tensor.dim %xz, %c1 : tensor<1x?x16xf32>
      %x = tensor.extract_slice %xz[0, 0, 0] [1, %n, 8] [1, 1, 1] : tensor<1x?x16xf32> to tensor<1x?x8xf32>
      %z = tensor.extract_slice %xz[0, 0, 8] [1, %n, 8] [1, 1, 1] : tensor<1x?x16xf32> to tensor<1x?x8xf32>
      %xc, %st = jamba.causal_conv1d %x, %w bias(%b) state(%s) {silu}
          : (tensor<1x?x8xf32>, tensor<8x4xf32>, tensor<8xf32>, tensor<1x8x3xf32>)
          -> (tensor<1x?x8xf32>, tensor<1x8x3xf32>)
      %y, %h = jamba.selective_scan %xc, %delta, %A, %B, %C D(%D) z(%z) delta_bias(%db)
          init_state(%h0) {delta_softplus}
          : (tensor<1x?x8xf32>, tensor<1x?x8xf32>, tensor<8x4xf32>, tensor<1x?x4xf32>,
             tensor<1x?x4xf32>, tensor<8xf32>, tensor<1x?x8xf32>, tensor<8xf32>,
             tensor<1x8x4xf32>) -> (tensor<1x?x8xf32>, tensor<1x8x4xf32>)
      return %y, %st, %h : tensor<1x?x8xf32>, tensor<1x8x3xf32>, tensor<1x8x4xf32>
    })mlir",
           *lowering());
  ASSERT_EQ(k.error, "");
  for (int64_t seq : {5, 1}) {
    auto xz = randomFloats(seq * 16, 60 + seq), w = randomFloats(32, 61),
         b = randomFloats(8, 62), s = randomFloats(24, 63),
         delta = randomFloats(seq * 8, 64, -3.0f, 1.0f),
         A = randomFloats(32, 65, -2.0f, -0.1f), B = randomFloats(seq * 4, 66),
         C = randomFloats(seq * 4, 67), D = randomFloats(8, 68),
         db = randomFloats(8, 69), h0 = randomFloats(32, 70);
    std::vector<float> x, z;
    for (int64_t t = 0; t < seq; ++t)
      for (int64_t c = 0; c < 16; ++c)
        (c < 8 ? x : z).push_back(xz[t * 16 + c]);
    Tensor<float> rb = toRef(b, {8});
    auto [xc, st] = ref::causalConv1d(toRef(x, {1, seq, 8}), toRef(w, {8, 4}),
                                      &rb, toRef(s, {1, 8, 3}), true);
    Tensor<float> rd = toRef(delta, {1, seq, 8}), rA = toRef(A, {8, 4}),
                  rB = toRef(B, {1, seq, 4}), rC = toRef(C, {1, seq, 4}),
                  rD = toRef(D, {8}), rz = toRef(z, {1, seq, 8}),
                  rdb = toRef(db, {8}), rh0 = toRef(h0, {1, 8, 4});
    ref::ScanOperands<float> ops{&xc, &rd, &rA, &rB, &rC};
    ops.D = &rD;
    ops.z = &rz;
    ops.deltaBias = &rdb;
    ops.initState = &rh0;
    ops.deltaSoftplus = true;
    auto [y, h] = ref::selectiveScan(ops);
    auto out = k.run({buf(xz, {1, seq, 16}), buf(w, {8, 4}), buf(b, {8}),
                      buf(s, {1, 8, 3}), buf(delta, {1, seq, 8}),
                      buf(A, {8, 4}), buf(B, {1, seq, 4}), buf(C, {1, seq, 4}),
                      buf(D, {8}), buf(db, {8}), buf(h0, {1, 8, 4})},
                     {3, 3, 3});
    expectClose(out[0], y, "conv + scan output, dynamic length");
    expectClose(out[1], st, "conv state, dynamic length");
    expectClose(out[2], h, "SSM state, dynamic length");
  }
}

/// Cached attention over two sequences, 4 query heads over 2 kv heads,
/// head_dim 8, dynamic token count and capacity.
constexpr const char *kCachedAttentionGqa = R"mlir(
    func.func @f(%q: tensor<2x?x32xf32>, %k: tensor<2x?x16xf32>, %v: tensor<2x?x16xf32>,
                 %kc: tensor<2x2x?x8xf32>, %vc: tensor<2x2x?x8xf32>, %len: tensor<2xi64>)
        -> (tensor<2x?x32xf32>, tensor<2x2x?x8xf32>, tensor<2x2x?x8xf32>)
        attributes {llvm.emit_c_interface} {
      %o, %k2, %v2 = jamba.cached_attention %q, %k, %v, cache(%kc, %vc, %len)
          {num_heads = 4 : i64, num_kv_heads = 2 : i64}
          : (tensor<2x?x32xf32>, tensor<2x?x16xf32>, tensor<2x?x16xf32>, tensor<2x2x?x8xf32>,
             tensor<2x2x?x8xf32>, tensor<2xi64>)
          -> (tensor<2x?x32xf32>, tensor<2x2x?x8xf32>, tensor<2x2x?x8xf32>)
      return %o, %k2, %v2 : tensor<2x?x32xf32>, tensor<2x2x?x8xf32>, tensor<2x2x?x8xf32>
    })mlir";

TEST_P(SequenceKernels, CachedAttentionGQAWithHistory) {
  // Two sequences with 3 and 5 cached positions, 4 new tokens each, 4 query
  // heads over 2 kv heads (head_dim 8, capacity 12): the new rows land at
  // cache_len[b] + s, rows past them stay as they were, and each query sees
  // positions 0 .. cache_len[b] + s.
  Kernel k(kCachedAttentionGqa, *lowering());
  ASSERT_EQ(k.error, "");
  auto q = randomFloats(256, 50, -2.0f, 2.0f), kk = randomFloats(128, 51),
       v = randomFloats(128, 52), kc = randomFloats(384, 53),
       vc = randomFloats(384, 54);
  std::vector<int64_t> len{3, 5};
  // The reference first: the kernel may update the caches in place.
  auto [o, rk, rv] = ref::cachedAttention<float>(
      toRef(q, {2, 4, 32}), toRef(kk, {2, 4, 16}), toRef(v, {2, 4, 16}),
      toRef(kc, {2, 2, 12, 8}), toRef(vc, {2, 2, 12, 8}), toRef(len, {2}), 4,
      2);
  auto out =
      k.run({buf(q, {2, 4, 32}), buf(kk, {2, 4, 16}), buf(v, {2, 4, 16}),
             buf(kc, {2, 2, 12, 8}), buf(vc, {2, 2, 12, 8}), buf(len, {2})},
            {3, 4, 4});
  expectClose(out[0], o, "cached_attention output");
  expectClose(out[1], rk, "cached_attention k cache");
  expectClose(out[2], rv, "cached_attention v cache");
}

/// `ir` with the width placeholder W of its shapes ("xWx", "<Wx") set to
/// `width`.
std::string withWidth(std::string ir, int64_t width) {
  for (const char *pattern : {"xWx", "<Wx"})
    for (size_t at = ir.find(pattern); at != std::string::npos;
         at = ir.find(pattern, at))
      ir.replace(at + 1, 1, std::to_string(width));
  return ir;
}

TEST_P(SequenceKernels, RMSNormRowsOfOddWidths) {
  // Widths 37 (one thread per row in the GPU kernels' form, up to 64), 301
  // (a warp per row, uneven shares of its 32 lanes, one element per load)
  // and 516 (the same in vectors of 4: lane 0 has 5 of the 129, four ahead
  // and one after), dynamic rows: 1 (a decode step), 6, and 2 x 20.
  for (int64_t width : {37, 301, 516}) {
    SCOPED_TRACE(::testing::Message() << "width " << width);
    std::string ir = R"mlir(
      func.func @f(%x: tensor<?x?xWxf32>, %w: tensor<Wxf32>) -> tensor<?x?xWxf32>
          attributes {llvm.emit_c_interface} {
        %y = jamba.rms_norm %x, %w {epsilon = 1.0e-05 : f64} : tensor<?x?xWxf32>, tensor<Wxf32>
        return %y : tensor<?x?xWxf32>
      })mlir";
    ir = withWidth(ir, width);
    Kernel k(ir, *lowering());
    ASSERT_EQ(k.error, "");
    auto w = randomFloats(size_t(width), 47, 0.5f, 1.5f);
    for (auto [b0, b1] :
         std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {2, 3}, {2, 20}}) {
      auto x = randomFloats(size_t(b0 * b1 * width), uint32_t(48 + b0 * b1),
                            -3.0f, 3.0f);
      auto out = k.run({buf(x, {b0, b1, width}), buf(w, {width})}, {3});
      expectClose(
          out[0],
          ref::rmsNorm(toRef(x, {b0, b1, width}), toRef(w, {width}), 1e-5),
          ("rms_norm, width " + std::to_string(width) + ", " +
           std::to_string(b0 * b1) + " rows")
              .c_str());
    }
  }
}

/// Rows of logits [rows, width] with the cases the greedy ids must get
/// right, over seeded random values: row 0 as drawn; row 1 its maximum
/// tied at a later id, in another chunk of 1024 where the row has several
/// (the lower id wins); row 2 a NaN after its maximum (-1); row 3 all -inf
/// (-1); row 4 zeros of both signs with one -inf (-0 == +0: the first id);
/// row 5 a +inf among large values; further rows as drawn.
std::vector<float> greedyIdRows(int64_t rows, int64_t width, unsigned seed) {
  std::vector<float> v = randomFloats(size_t(rows * width), seed, -8.0f, 8.0f);
  auto row = [&](int64_t r) { return v.data() + r * width; };
  if (rows > 1) {
    float *r1 = row(1);
    int64_t at = int64_t(std::max_element(r1, r1 + width) - r1);
    int64_t later = std::min(width - 1, at + 1 + width / 2);
    if (later != at)
      r1[later] = r1[at];
  }
  if (rows > 2) {
    float *r2 = row(2);
    int64_t at = int64_t(std::max_element(r2, r2 + width) - r2);
    r2[std::min(width - 1, at + 1)] = NAN;
  }
  if (rows > 3)
    std::fill(row(3), row(3) + width, -INFINITY);
  if (rows > 4)
    for (int64_t k = 0; k < width; ++k)
      row(4)[k] = k == 0 && width > 1 ? -INFINITY : (k % 2 ? 0.0f : -0.0f);
  if (rows > 5)
    row(5)[width / 3] = INFINITY;
  return v;
}

TEST_P(SequenceKernels, ArgmaxGreedyIds) {
  // jamba.argmax against the reference: widths 1, 7 and 2050 (one element
  // per load; 2050 is three chunks of the GPU kernels' first pass), 128
  // and 4100 (vectors of 4; 4100 ends in a chunk of 4), f32 and bf16
  // logits, 1 and 7 rows (greedyIdRows' cases).
  for (const char *type : {"f32", "bf16"})
    for (int64_t width : {1, 7, 128, 2050, 4100}) {
      SCOPED_TRACE(::testing::Message() << type << ", width " << width);
      std::string ir = R"mlir(
        func.func @f(%l: tensor<?x1xWxTT>) -> tensor<?x1xi32>
            attributes {llvm.emit_c_interface} {
          %i = jamba.argmax %l : tensor<?x1xWxTT> -> tensor<?x1xi32>
          return %i : tensor<?x1xi32>
        })mlir";
      ir = withWidth(ir, width);
      for (size_t at = ir.find("TT"); at != std::string::npos;
           at = ir.find("TT", at))
        ir.replace(at, 2, type);
      Kernel k(ir, *lowering());
      ASSERT_EQ(k.error, "");
      for (int64_t rows : {1, 7}) {
        std::vector<float> logits =
            greedyIdRows(rows, width, unsigned(50 + width + rows));
        Buffer in;
        std::vector<uint16_t> halves;
        if (std::string(type) == "bf16") {
          // The reference reads the values the kernel reads.
          for (float &x : logits) {
            halves.push_back(std::isnan(x) ? uint16_t(0x7fc0) : toBF16(x));
            x = fromBF16(halves.back());
          }
          in = buf(halves, {rows, 1, width});
        } else {
          in = buf(logits, {rows, 1, width});
        }
        auto out = k.run({in}, {2});
        Tensor<float> want = ref::argmax(toRef(logits, {rows, 1, width}));
        expectSameIndices<int32_t>(out[0], want);
        if (rows > 3) {
          // The cases are what they claim to be.
          EXPECT_EQ(want[2], -1);
          EXPECT_EQ(want[3], -1);
          EXPECT_EQ(want[4], width > 1 ? 1 : 0);
        }
      }
    }
}

TEST_P(SequenceKernels, RMSNormOfAResidualAdd) {
  // The norm of a residual add x = a + r whose sum is read after the norm
  // (the next residual add, and returned): the GPU kernels' form computes
  // the add inside the norm's kernel and writes x there. Widths 37 (one
  // thread per row), 301 (a warp, one element per load) and 516 (a warp,
  // vectors of 4), rows 1, 6 and 40.
  for (int64_t width : {37, 301, 516}) {
    SCOPED_TRACE(::testing::Message() << "width " << width);
    std::string ir = R"mlir(
      func.func @f(%a: tensor<?x?xWxf32>, %r: tensor<?x?xWxf32>, %w: tensor<Wxf32>,
                   %u: tensor<?x?xWxf32>)
          -> (tensor<?x?xWxf32>, tensor<?x?xWxf32>, tensor<?x?xWxf32>)
          attributes {llvm.emit_c_interface} {
        %x = arith.addf %a, %r : tensor<?x?xWxf32>
        %y = jamba.rms_norm %x, %w {epsilon = 1.0e-05 : f64} : tensor<?x?xWxf32>, tensor<Wxf32>
        %z = arith.addf %x, %u : tensor<?x?xWxf32>
        return %y, %z, %x : tensor<?x?xWxf32>, tensor<?x?xWxf32>, tensor<?x?xWxf32>
      })mlir";
    ir = withWidth(ir, width);
    Kernel k(ir, *lowering());
    ASSERT_EQ(k.error, "");
    auto w = randomFloats(size_t(width), 150, 0.5f, 1.5f);
    for (auto [b0, b1] :
         std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {2, 3}, {2, 20}}) {
      const size_t n = size_t(b0 * b1 * width);
      auto a = randomFloats(n, uint32_t(151 + b0 * b1), -3.0f, 3.0f),
           r = randomFloats(n, uint32_t(152 + b0 * b1), -3.0f, 3.0f),
           u = randomFloats(n, uint32_t(153 + b0 * b1));
      std::vector<float> x(n), z(n);
      for (size_t i = 0; i < n; ++i)
        x[i] = a[i] + r[i], z[i] = x[i] + u[i];
      auto out = k.run({buf(a, {b0, b1, width}), buf(r, {b0, b1, width}),
                        buf(w, {width}), buf(u, {b0, b1, width})},
                       {3, 3, 3});
      std::string what = "width " + std::to_string(width) + ", " +
                         std::to_string(b0 * b1) + " rows";
      expectClose(
          out[0],
          ref::rmsNorm(toRef(x, {b0, b1, width}), toRef(w, {width}), 1e-5),
          ("rms_norm of a residual add, " + what).c_str());
      expectClose(out[1], toRef(z, {b0, b1, width}),
                  ("the next residual add, " + what).c_str());
      expectClose(out[2], toRef(x, {b0, b1, width}),
                  ("the residual stream, " + what).c_str());
    }
  }
}

TEST_P(SequenceKernels, ConvAndScanReadInBf16) {
  // The conv's output read by the scan and converted to bf16 (as a cuBLAS
  // GEMM's input is), the scan's output only converted: the GPU kernels'
  // form writes the bf16 copies itself (the conv both types, the scan bf16
  // alone). The copies, widened back to f32, against the reference rounded
  // to bf16 (tolerance one bf16 step, 2^-8 relative), the conv's f32 output
  // and the final state against the reference (1e-5).
  Kernel k(R"mlir(
    #id = affine_map<(a, b, c) -> (a, b, c)>
    func.func @f(%x: tensor<2x7x8xf32>, %w: tensor<8x4xf32>, %s: tensor<2x8x3xf32>,
                 %delta: tensor<2x7x8xf32>, %A: tensor<8x4xf32>, %B: tensor<2x7x4xf32>,
                 %C: tensor<2x7x4xf32>)
        -> (tensor<2x7x8xf32>, tensor<2x7x8xf32>, tensor<2x7x8xf32>, tensor<2x8x4xf32>)
        attributes {llvm.emit_c_interface} {
      %u, %st = jamba.causal_conv1d %x, %w state(%s) {silu}
          : (tensor<2x7x8xf32>, tensor<8x4xf32>, tensor<2x8x3xf32>)
          -> (tensor<2x7x8xf32>, tensor<2x8x3xf32>)
      %y, %h = jamba.selective_scan %u, %delta, %A, %B, %C {delta_softplus}
          : (tensor<2x7x8xf32>, tensor<2x7x8xf32>, tensor<8x4xf32>, tensor<2x7x4xf32>,
             tensor<2x7x4xf32>) -> (tensor<2x7x8xf32>, tensor<2x8x4xf32>)
      %e = tensor.empty() : tensor<2x7x8xbf16>
      %f = tensor.empty() : tensor<2x7x8xf32>
      %ub = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel", "parallel"]}
          ins(%u : tensor<2x7x8xf32>) outs(%e : tensor<2x7x8xbf16>) {
      ^bb0(%in: f32, %out: bf16):
        %t = arith.truncf %in : f32 to bf16
        linalg.yield %t : bf16
      } -> tensor<2x7x8xbf16>
      %yb = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel", "parallel"]}
          ins(%y : tensor<2x7x8xf32>) outs(%e : tensor<2x7x8xbf16>) {
      ^bb0(%in: f32, %out: bf16):
        %t = arith.truncf %in : f32 to bf16
        linalg.yield %t : bf16
      } -> tensor<2x7x8xbf16>
      %uw = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel", "parallel"]}
          ins(%ub : tensor<2x7x8xbf16>) outs(%f : tensor<2x7x8xf32>) {
      ^bb0(%in: bf16, %out: f32):
        %t = arith.extf %in : bf16 to f32
        linalg.yield %t : f32
      } -> tensor<2x7x8xf32>
      %yw = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel", "parallel"]}
          ins(%yb : tensor<2x7x8xbf16>) outs(%f : tensor<2x7x8xf32>) {
      ^bb0(%in: bf16, %out: f32):
        %t = arith.extf %in : bf16 to f32
        linalg.yield %t : f32
      } -> tensor<2x7x8xf32>
      return %u, %uw, %yw, %h
          : tensor<2x7x8xf32>, tensor<2x7x8xf32>, tensor<2x7x8xf32>, tensor<2x8x4xf32>
    })mlir",
           *lowering());
  ASSERT_EQ(k.error, "");
  auto x = randomFloats(112, 160), w = randomFloats(32, 161),
       s = randomFloats(48, 162), delta = randomFloats(112, 163, -3.0f, 1.0f),
       A = randomFloats(32, 164, -2.0f, -0.1f), B = randomFloats(56, 165),
       C = randomFloats(56, 166);
  auto [u, st] = ref::causalConv1d(toRef(x, {2, 7, 8}), toRef(w, {8, 4}),
                                   static_cast<const Tensor<float> *>(nullptr),
                                   toRef(s, {2, 8, 3}), true);
  Tensor<float> rd = toRef(delta, {2, 7, 8}), rA = toRef(A, {8, 4}),
                rB = toRef(B, {2, 7, 4}), rC = toRef(C, {2, 7, 4});
  ref::ScanOperands<float> ops{&u, &rd, &rA, &rB, &rC};
  ops.deltaSoftplus = true;
  auto [y, h] = ref::selectiveScan(ops);
  auto out = k.run({buf(x, {2, 7, 8}), buf(w, {8, 4}), buf(s, {2, 8, 3}),
                    buf(delta, {2, 7, 8}), buf(A, {8, 4}), buf(B, {2, 7, 4}),
                    buf(C, {2, 7, 4})},
                   {3, 3, 3, 3});
  auto toBf16 = [](Tensor<float> t) {
    for (int64_t i = 0; i < t.numel(); ++i)
      t[i] = fromBF16(toBF16(t[i]));
    return t;
  };
  expectClose(out[0], u, "causal_conv1d output in f32");
  expectClose(out[1], toBf16(u), "causal_conv1d output read in bf16",
              1.0 / 256);
  expectClose(out[2], toBf16(y), "selective_scan output read in bf16",
              1.0 / 256);
  expectClose(out[3], h, "selective_scan final state");
}

TEST_P(SequenceKernels, RMSNormReadOnlyInBf16) {
  // A norm whose only reader converts it to bf16 (as a cuBLAS GEMM's input
  // is): the GPU kernels' form writes bf16 itself. The result, widened back
  // to f32, against the reference rounded to bf16 (tolerance: one bf16
  // step, 2^-8 relative; the rounding of a value the f32 sum order moves
  // across a bf16 boundary). Widths 64 (one thread per row) and 300.
  for (int64_t width : {64, 300}) {
    SCOPED_TRACE(::testing::Message() << "width " << width);
    std::string ir = R"mlir(
      #id = affine_map<(a, b) -> (a, b)>
      func.func @f(%x: tensor<?xWxf32>, %w: tensor<Wxf32>) -> tensor<?xWxf32>
          attributes {llvm.emit_c_interface} {
        %y = jamba.rms_norm %x, %w {epsilon = 1.0e-05 : f64} : tensor<?xWxf32>, tensor<Wxf32>
        %c0 = arith.constant 0 : index
        %d = tensor.dim %y, %c0 : tensor<?xWxf32>
        %e = tensor.empty(%d) : tensor<?xWxbf16>
        %b = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
            ins(%y : tensor<?xWxf32>) outs(%e : tensor<?xWxbf16>) {
        ^bb0(%in: f32, %out: bf16):
          %t = arith.truncf %in : f32 to bf16
          linalg.yield %t : bf16
        } -> tensor<?xWxbf16>
        %f = tensor.empty(%d) : tensor<?xWxf32>
        %r = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
            ins(%b : tensor<?xWxbf16>) outs(%f : tensor<?xWxf32>) {
        ^bb0(%in: bf16, %out: f32):
          %t = arith.extf %in : bf16 to f32
          linalg.yield %t : f32
        } -> tensor<?xWxf32>
        return %r : tensor<?xWxf32>
      })mlir";
    ir = withWidth(ir, width);
    Kernel k(ir, *lowering());
    ASSERT_EQ(k.error, "");
    auto w = randomFloats(size_t(width), 57, 0.5f, 1.5f);
    auto x = randomFloats(size_t(5 * width), 58, -3.0f, 3.0f);
    auto out = k.run({buf(x, {5, width}), buf(w, {width})}, {2});
    Tensor<float> expected =
        ref::rmsNorm(toRef(x, {5, width}), toRef(w, {width}), 1e-5);
    for (int64_t i = 0; i < expected.numel(); ++i)
      expected[i] = fromBF16(toBF16(expected[i]));
    expectClose(out[0], expected, "rms_norm read in bf16", 1.0 / 256);
  }
}

TEST_F(JambaToLinalgNumerics, SplitKvAttentionCombinesItsSplits) {
  // jamba-gpu-kernels' split-KV attention with few keys per split, so that
  // the keys are cut into several ranges (uneven ones, and empty ones when
  // a query sees fewer keys than there are splits), against the reference.
  // Prefill: 4 new tokens over 3 and 5 cached positions (capacity 12);
  // decode: 1 token over 29 and 7 cached positions (capacity 40). A split
  // scores its keys in blocks of 8: 1 and 3 keys per split give each split
  // one partial block, 20 and 64 (a decode's 30 keys in 2 splits and in 1)
  // several blocks, the last partial.

  struct Case {
    int64_t tokens, capacity;
    std::vector<int64_t> len;
  };
  for (int64_t keysPerSplit : {1, 3, 20, 64}) {
    mlir::jamba::CPULowerPipelineOptions options;
    options.gpuKernels = true;
    options.attentionKeysPerSplit = keysPerSplit;
    Kernel k(kCachedAttentionGqa, options);
    ASSERT_EQ(k.error, "");
    for (const Case &c : {Case{4, 12, {3, 5}}, Case{1, 40, {29, 7}}}) {
      SCOPED_TRACE(::testing::Message()
                   << "keys per split " << keysPerSplit << ", " << c.tokens
                   << " tokens, capacity " << c.capacity);
      const int64_t t = c.tokens, cap = c.capacity;
      std::vector<int64_t> len = c.len;
      auto q = randomFloats(size_t(2 * t * 32), 60, -2.0f, 2.0f),
           kk = randomFloats(size_t(2 * t * 16), 61),
           v = randomFloats(size_t(2 * t * 16), 62),
           kc = randomFloats(size_t(2 * 2 * cap * 8), 63),
           vc = randomFloats(size_t(2 * 2 * cap * 8), 64);
      auto [o, rk, rv] = ref::cachedAttention<float>(
          toRef(q, {2, t, 32}), toRef(kk, {2, t, 16}), toRef(v, {2, t, 16}),
          toRef(kc, {2, 2, cap, 8}), toRef(vc, {2, 2, cap, 8}), toRef(len, {2}),
          4, 2);
      auto out = k.run({buf(q, {2, t, 32}), buf(kk, {2, t, 16}),
                        buf(v, {2, t, 16}), buf(kc, {2, 2, cap, 8}),
                        buf(vc, {2, 2, cap, 8}), buf(len, {2})},
                       {3, 4, 4});
      expectClose(out[0], o, "split-KV attention output");
      expectClose(out[1], rk, "split-KV attention k cache");
      expectClose(out[2], rv, "split-KV attention v cache");
    }
  }
}

/// Cached attention over two sequences with placeholders for the widths
/// (withPlaceholders): Q = heads x hd, K = kv heads x hd, D = hd, G = kv
/// heads, H = heads.
constexpr const char *kCachedAttentionTemplate = R"mlir(
    func.func @f(%q: tensor<2x?xQxf32>, %k: tensor<2x?xKxf32>, %v: tensor<2x?xKxf32>,
                 %kc: tensor<2xGx?xDxf32>, %vc: tensor<2xGx?xDxf32>, %len: tensor<2xi64>)
        -> (tensor<2x?xQxf32>, tensor<2xGx?xDxf32>, tensor<2xGx?xDxf32>)
        attributes {llvm.emit_c_interface} {
      %o, %k2, %v2 = jamba.cached_attention %q, %k, %v, cache(%kc, %vc, %len)
          {num_heads = H : i64, num_kv_heads = G : i64}
          : (tensor<2x?xQxf32>, tensor<2x?xKxf32>, tensor<2x?xKxf32>, tensor<2xGx?xDxf32>,
             tensor<2xGx?xDxf32>, tensor<2xi64>)
          -> (tensor<2x?xQxf32>, tensor<2xGx?xDxf32>, tensor<2xGx?xDxf32>)
      return %o, %k2, %v2 : tensor<2x?xQxf32>, tensor<2xGx?xDxf32>, tensor<2xGx?xDxf32>
    })mlir";

/// kCachedAttentionTemplate for `heads` query heads and `kvHeads` kv heads
/// of `hd` channels.
std::string cachedAttentionIr(int64_t heads, int64_t kvHeads, int64_t hd) {
  return withPlaceholders(kCachedAttentionTemplate, {{"xQx", heads * hd},
                                                     {"xKx", kvHeads * hd},
                                                     {"xDx", hd},
                                                     {"xGx", kvHeads},
                                                     {"= H :", heads},
                                                     {"= G :", kvHeads}});
}

/// Whether jamba-cpu-microkernels alone replaces every `opName` op of `ir`
/// (rather than leaving it to the generic lowerings).
bool microkernelsReplace(const std::string &ir, llvm::StringRef opName) {
  DialectRegistry registry;
  registerAllDialects(registry);
  registry.insert<mlir::jamba::JambaDialect>();
  MLIRContext context(registry);
  context.loadAllAvailableDialects();
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(ir, &context);
  if (!module)
    return false;
  PassManager pm(&context, "builtin.module");
  pm.addNestedPass<func::FuncOp>(mlir::jamba::createJambaCpuMicrokernelsPass());
  if (failed(pm.run(*module)))
    return false;
  bool left = false;
  module->walk(
      [&](Operation *op) { left |= op->getName().getStringRef() == opName; });
  return !left;
}

TEST_F(JambaToLinalgNumerics, AttentionMicrokernelAgainstReference) {
  // jamba-cpu-microkernels' attention (tiles of (token, head) rows, an
  // online softmax over blocks of 8 keys, the head dimension in vectors of
  // 8 lanes) and the generic loops it replaces (microkernels off), against
  // the reference. Shapes (heads, kv heads, head dim): (4, 2, 8) one vector
  // per row, groups of 2 (tiles of 8 tokens x 2 heads); (8, 2, 24) three
  // vectors, groups of 4 (4 tokens); (2, 2, 32) groups of 1 (16 tokens);
  // (6, 2, 8) groups of 3 (5 tokens, 15 rows); (32, 1, 8) a group of 32
  // (one token, 32 rows); (2, 1, 80) ten vectors, whose output rows the
  // kernel updates 8 vectors and then 2 at a time; and (4, 2, 12), not
  // whole vectors, which the
  // microkernel leaves to the generic loops; the microkernel with and
  // without split-KV (below). Capacity 40. Calls: 20 tokens over
  // 3 and 9 cached positions (blocks of 8 keys, the last partial), 16 over 0
  // and 24 (the second fills the cache), a decode step over 29 and 7, 9 tokens
  // over 31 and 0. Tolerance 1e-5: the sums run in another order.
  struct Shape {
    int64_t heads, kvHeads, hd;
  };
  for (const Shape &sh :
       {Shape{4, 2, 8}, Shape{8, 2, 24}, Shape{2, 2, 32}, Shape{6, 2, 8},
        Shape{32, 1, 8}, Shape{2, 1, 80}, Shape{4, 2, 12}}) {
    const int64_t hd = sh.hd, qw = sh.heads * hd, kw = sh.kvHeads * hd;
    std::string ir = cachedAttentionIr(sh.heads, sh.kvHeads, hd);
    // The kernel takes whole vectors of the head dimension only.
    EXPECT_EQ(microkernelsReplace(ir, "jamba.cached_attention"), hd % 8 == 0)
        << "head dim " << hd;
    // The microkernel with its default split-KV (which does not split
    // these short caches), splitting into ranges of 8 keys (4 or 5 splits,
    // some of them empty for the shorter sequence or the earlier tiles)
    // and of 1 (up to 32 splits of a block each), and without splits; then
    // the generic loops.
    for (int64_t splitKeys : {2048, 8, 1, 0, -1}) {
      const bool microkernels = splitKeys >= 0;
      mlir::jamba::CPULowerPipelineOptions options;
      options.microkernels = microkernels;
      if (microkernels)
        options.cpuAttentionSplitKeys = splitKeys;
      Kernel k(ir, options);
      ASSERT_EQ(k.error, "");
      struct Case {
        int64_t tokens;
        std::vector<int64_t> len;
      };
      const int64_t cap = 40;
      for (const Case &c : {Case{20, {3, 9}}, Case{16, {0, 24}},
                            Case{1, {29, 7}}, Case{9, {31, 0}}}) {
        SCOPED_TRACE(::testing::Message()
                     << sh.heads << " heads over " << sh.kvHeads
                     << ", head dim " << hd << ", microkernels " << microkernels
                     << ", split keys " << splitKeys << ", " << c.tokens
                     << " tokens over " << c.len[0] << " and " << c.len[1]);
        const int64_t t = c.tokens;
        const unsigned seed = unsigned(7 * hd + t + sh.heads);
        std::vector<int64_t> len = c.len;
        auto q = randomFloats(size_t(2 * t * qw), seed, -2.0f, 2.0f),
             kk = randomFloats(size_t(2 * t * kw), seed + 1),
             v = randomFloats(size_t(2 * t * kw), seed + 2),
             kc = randomFloats(size_t(2 * kw * cap), seed + 3),
             vc = randomFloats(size_t(2 * kw * cap), seed + 4);
        const std::vector<int64_t> cacheShape{2, sh.kvHeads, cap, hd};
        auto [o, rk, rv] = ref::cachedAttention<float>(
            toRef(q, {2, t, qw}), toRef(kk, {2, t, kw}), toRef(v, {2, t, kw}),
            toRef(kc, cacheShape), toRef(vc, cacheShape), toRef(len, {2}),
            sh.heads, sh.kvHeads);
        auto out =
            k.run({buf(q, {2, t, qw}), buf(kk, {2, t, kw}), buf(v, {2, t, kw}),
                   buf(kc, cacheShape), buf(vc, cacheShape), buf(len, {2})},
                  {3, 4, 4});
        expectClose(out[0], o, "attention output");
        expectClose(out[1], rk, "attention k cache");
        expectClose(out[2], rv, "attention v cache");
      }
    }
  }

  // Over bf16 caches: queries, keys, values and output of type ACT (f32,
  // then bf16), 4 heads over 2 kv heads of dim 16.
  auto bf16CachesIr = [](const std::string &act) {
    std::string ir = R"mlir(
    func.func @f(%q: tensor<1x?x64xACT>, %k: tensor<1x?x32xACT>, %v: tensor<1x?x32xACT>,
                 %kc: tensor<1x2x?x16xbf16>, %vc: tensor<1x2x?x16xbf16>, %len: tensor<1xi32>)
        -> tensor<1x?x64xACT> attributes {llvm.emit_c_interface} {
      %o, %k2, %v2 = jamba.cached_attention %q, %k, %v, cache(%kc, %vc, %len)
          {num_heads = 4 : i64, num_kv_heads = 2 : i64}
          : (tensor<1x?x64xACT>, tensor<1x?x32xACT>, tensor<1x?x32xACT>, tensor<1x2x?x16xbf16>,
             tensor<1x2x?x16xbf16>, tensor<1xi32>)
          -> (tensor<1x?x64xACT>, tensor<1x2x?x16xbf16>, tensor<1x2x?x16xbf16>)
      return %o : tensor<1x?x64xACT>
    })mlir";
    for (size_t at = ir.find("ACT"); at != std::string::npos;
         at = ir.find("ACT", at))
      ir.replace(at, 3, act);
    return ir;
  };
  // `x` rounded to bf16 in place; its bits.
  auto bits = [](std::vector<float> &x) {
    std::vector<uint16_t> h;
    for (float &e : x)
      h.push_back(toBF16(e)), e = fromBF16(h.back());
    return h;
  };

  // f32 queries: the new rows are rounded as they are appended, and the
  // kernel widens the cached rows as it reads them.
  Kernel k(bf16CachesIr("f32"));
  ASSERT_EQ(k.error, "");
  const int64_t t = 11, cap = 30;
  std::vector<int32_t> len{13};
  auto q = randomFloats(size_t(t * 64), 90, -2.0f, 2.0f),
       kk = randomFloats(size_t(t * 32), 91), v = randomFloats(t * 32, 92),
       kcf = randomFloats(size_t(2 * cap * 16), 93),
       vcf = randomFloats(size_t(2 * cap * 16), 94);
  std::vector<uint16_t> kc = bits(kcf), vc = bits(vcf);
  auto rounded = [&](std::vector<float> x) {
    bits(x);
    return x;
  };
  auto [o, rk, rv] = ref::cachedAttention<float>(
      toRef(q, {1, t, 64}), toRef(rounded(kk), {1, t, 32}),
      toRef(rounded(v), {1, t, 32}), toRef(kcf, {1, 2, cap, 16}),
      toRef(vcf, {1, 2, cap, 16}), toRef(len, {1}), 4, 2);
  auto out =
      k.run({buf(q, {1, t, 64}), buf(kk, {1, t, 32}), buf(v, {1, t, 32}),
             buf(kc, {1, 2, cap, 16}), buf(vc, {1, 2, cap, 16}), buf(len, {1})},
            {3});
  expectClose(out[0], o, "attention output over bf16 caches");

  // bf16 throughout: the kernel widens every operand and rounds the output
  // once, so it is the reference's on the same bf16 values within one bf16
  // step (2^-8).
  const std::string allBf16 = bf16CachesIr("bf16");
  ASSERT_TRUE(microkernelsReplace(allBf16, "jamba.cached_attention"));
  Kernel kb(allBf16);
  ASSERT_EQ(kb.error, "");
  std::vector<uint16_t> qh = bits(q), kh = bits(kk), vh = bits(v);
  auto [ob, rkb, rvb] = ref::cachedAttention<float>(
      toRef(q, {1, t, 64}), toRef(kk, {1, t, 32}), toRef(v, {1, t, 32}),
      toRef(kcf, {1, 2, cap, 16}), toRef(vcf, {1, 2, cap, 16}), toRef(len, {1}),
      4, 2);
  auto outb = kb.run({buf(qh, {1, t, 64}), buf(kh, {1, t, 32}),
                      buf(vh, {1, t, 32}), buf(kc, {1, 2, cap, 16}),
                      buf(vc, {1, 2, cap, 16}), buf(len, {1})},
                     {3});
  std::vector<float> widened;
  for (int64_t i = 0; i < ob.numel(); ++i)
    widened.push_back(fromBF16(outb[0].elements<uint16_t>()[i]));
  expectClose(Buffer{widened.data(), outb[0].shape}, ob,
              "attention output, all bf16", 1.0 / 256);
}

TEST_F(JambaToLinalgNumerics, AttentionTensorCoresEmulated) {
  // The tensor-core attention (a warp per 16 rows of (token, head) pairs of
  // one kv head's group, S = Q K^T and O += P V on mma.sync m16n8k16, an
  // online softmax whose row maxima and sums combine a quad's lanes) with
  // each warp emulated as the PTX ISA defines mma.sync and shuffles, on a
  // CPU: the fragments, the channel, key and row mappings, the masks, the
  // rescaling, the splits and the stores.
  //
  // Shapes (heads, kv heads, head dim): (4, 2, 16): groups of 2, 8 tokens
  // per tile, one Q K^T slice; (8, 2, 48): groups of 4, 3 slices and 6
  // value n-blocks (a head dim not a power of two); (2, 2, 32): groups of
  // 1. Capacity 40. Calls: 20 tokens over 3 and 9 cached positions (tiles
  // of which the last is partial; key steps the last partial), 16 over 0
  // and 24 (the second sequence fills the cache), a decode step over 29
  // and 7, and 5 tokens over 3 and 12. With 64 keys per split every call
  // has one split; with 3, the decode step has 14 (two of 16 keys, the
  // rest empty) and the 5 tokens 2 (over 12 cached positions the second
  // holds key 16 only: the first four tokens see none of it).
  //
  // The kernel rounds the queries, keys and values to bf16, so the
  // reference gets them rounded; what is left is the rounding of the
  // softmax weights to bf16 (2^-9 relative each) and the order of the
  // sums: tolerance one bf16 step, 2^-8, of the largest output.
  struct Shape {
    int64_t heads, kvHeads, hd;
  };
  for (const Shape &sh : {Shape{4, 2, 16}, Shape{8, 2, 48}, Shape{2, 2, 32}}) {
    const int64_t hd = sh.hd, qw = sh.heads * hd, kw = sh.kvHeads * hd;
    std::string ir = cachedAttentionIr(sh.heads, sh.kvHeads, hd);
    for (int64_t keysPerSplit : {64, 3}) {
      mlir::jamba::CPULowerPipelineOptions options;
      options.gpuKernels = true;
      options.tensorCores = true;
      options.attentionKeysPerSplit = keysPerSplit;
      Kernel k(ir, options);
      ASSERT_EQ(k.error, "");
      struct Case {
        int64_t tokens;
        std::vector<int64_t> len;
      };
      const int64_t cap = 40;
      for (const Case &c : {Case{20, {3, 9}}, Case{16, {0, 24}},
                            Case{1, {29, 7}}, Case{5, {3, 12}}}) {
        SCOPED_TRACE(::testing::Message()
                     << sh.heads << " heads over " << sh.kvHeads
                     << ", head dim " << hd << ", " << keysPerSplit
                     << " keys per split, " << c.tokens << " tokens over "
                     << c.len[0] << " and " << c.len[1]);
        const int64_t t = c.tokens;
        const unsigned seed = unsigned(hd + t + sh.heads);
        std::vector<int64_t> len = c.len;
        auto q = randomFloats(size_t(2 * t * qw), seed, -2.0f, 2.0f),
             kk = randomFloats(size_t(2 * t * kw), seed + 1),
             v = randomFloats(size_t(2 * t * kw), seed + 2),
             kc = randomFloats(size_t(2 * kw * cap), seed + 3),
             vc = randomFloats(size_t(2 * kw * cap), seed + 4);
        auto rounded = [](std::vector<float> x) {
          for (float &e : x)
            e = fromBF16(toBF16(e));
          return x;
        };
        const std::vector<int64_t> cacheShape{2, sh.kvHeads, cap, hd};
        auto [o, rk, rv] = ref::cachedAttention<float>(
            toRef(rounded(q), {2, t, qw}), toRef(rounded(kk), {2, t, kw}),
            toRef(rounded(v), {2, t, kw}), toRef(rounded(kc), cacheShape),
            toRef(rounded(vc), cacheShape), toRef(len, {2}), sh.heads,
            sh.kvHeads);
        auto [exact, ek, ev] = ref::cachedAttention<float>(
            toRef(q, {2, t, qw}), toRef(kk, {2, t, kw}), toRef(v, {2, t, kw}),
            toRef(kc, cacheShape), toRef(vc, cacheShape), toRef(len, {2}),
            sh.heads, sh.kvHeads);
        auto out =
            k.run({buf(q, {2, t, qw}), buf(kk, {2, t, kw}), buf(v, {2, t, kw}),
                   buf(kc, cacheShape), buf(vc, cacheShape), buf(len, {2})},
                  {3, 4, 4});
        expectClose(out[0], o, "tensor-core attention output", 1.0 / 256);
        // The rounding to bf16 must show against the exact reference, or
        // the kernel did not run on bf16 operands.
        EXPECT_GT(relativeError(out[0], exact), kF32Tolerance)
            << "the tensor-core attention's operands were not rounded";
        expectClose(out[1], ek, "attention k cache");
        expectClose(out[2], ev, "attention v cache");
      }
    }
  }
}

TEST_F(JambaToLinalgNumerics, AttentionTensorCoresElementLoads) {
  // The tensor-core attention's second copy, with element loads: the
  // queries are a view one column into a wider tensor, so the run-time test
  // for 16-byte vectors fails (as in ExpertGemmVectorLoadsAndTheirFallback).
  // 4 heads over 2 kv heads, head dim 16, capacity 40; 20 tokens over 3 and
  // 9 cached positions and a decode step over 29 and 7, 3 keys per split
  // (the decode step split). Against the reference fed bf16-rounded
  // queries, keys and values, within one bf16 step (2^-8), as the vector
  // copy.
  const char *ir = R"mlir(
    func.func @f(%qw: tensor<2x?x65xf32>, %k: tensor<2x?x32xf32>, %v: tensor<2x?x32xf32>,
                 %kc: tensor<2x2x?x16xf32>, %vc: tensor<2x2x?x16xf32>, %len: tensor<2xi64>)
        -> tensor<2x?x64xf32> attributes {llvm.emit_c_interface} {
      %c1 = arith.constant 1 : index
      %t = tensor.dim %qw, %c1 : tensor<2x?x65xf32>
      %q = tensor.extract_slice %qw[0, 0, 1] [2, %t, 64] [1, 1, 1]
          : tensor<2x?x65xf32> to tensor<2x?x64xf32>
      %o, %k2, %v2 = jamba.cached_attention %q, %k, %v, cache(%kc, %vc, %len)
          {num_heads = 4 : i64, num_kv_heads = 2 : i64}
          : (tensor<2x?x64xf32>, tensor<2x?x32xf32>, tensor<2x?x32xf32>, tensor<2x2x?x16xf32>,
             tensor<2x2x?x16xf32>, tensor<2xi64>)
          -> (tensor<2x?x64xf32>, tensor<2x2x?x16xf32>, tensor<2x2x?x16xf32>)
      return %o : tensor<2x?x64xf32>
    })mlir";
  mlir::jamba::CPULowerPipelineOptions options;
  options.gpuKernels = true;
  options.tensorCores = true;
  options.attentionKeysPerSplit = 3;
  Kernel k(ir, options);
  ASSERT_EQ(k.error, "");
  const int64_t cap = 40;
  auto rounded = [](std::vector<float> x) {
    for (float &e : x)
      e = fromBF16(toBF16(e));
    return x;
  };
  for (auto [t, len] :
       {std::pair<int64_t, std::vector<int64_t>>{20, {3, 9}}, {1, {29, 7}}}) {
    SCOPED_TRACE(::testing::Message() << t << " tokens");
    auto qw = randomFloats(size_t(2 * t * 65), 70 + unsigned(t), -2.0f, 2.0f),
         kk = randomFloats(size_t(2 * t * 32), 71),
         v = randomFloats(size_t(2 * t * 32), 72),
         kc = randomFloats(size_t(2 * 2 * cap * 16), 73),
         vc = randomFloats(size_t(2 * 2 * cap * 16), 74);
    std::vector<float> q;
    for (int64_t r = 0; r < 2 * t; ++r)
      q.insert(q.end(), qw.begin() + r * 65 + 1, qw.begin() + (r + 1) * 65);
    auto [o, rk, rv] = ref::cachedAttention<float>(
        toRef(rounded(q), {2, t, 64}), toRef(rounded(kk), {2, t, 32}),
        toRef(rounded(v), {2, t, 32}), toRef(rounded(kc), {2, 2, cap, 16}),
        toRef(rounded(vc), {2, 2, cap, 16}), toRef(len, {2}), 4, 2);
    auto out = k.run({buf(qw, {2, t, 65}), buf(kk, {2, t, 32}),
                      buf(v, {2, t, 32}), buf(kc, {2, 2, cap, 16}),
                      buf(vc, {2, 2, cap, 16}), buf(len, {2})},
                     {3});
    expectClose(out[0], o, "tensor-core attention, element loads", 1.0 / 256);
  }
}

INSTANTIATE_TEST_SUITE_P(Lowerings, SequenceKernels, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool> &info) {
                           return info.param ? "GpuKernels" : "Linalg";
                         });

} // namespace

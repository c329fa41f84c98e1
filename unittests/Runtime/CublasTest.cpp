//===- CublasTest.cpp - jamba_rt_cuda_gemm, without a GPU -----------------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// The cuBLAS GEMM that compiled CUDA kernels call (CudaKernelAbi.h), run in a
// CUDA session over the fake driver, whose library is a fake cuBLAS too
// (FakeCuda.h). The fake's cublasGemmEx is textbook column-major BLAS, so
// comparing the GEMM with a plain row-major loop checks the runtime's
// mapping of y = x * w^T onto it. Also: the handle is made once per
// session, on its stream, with its workspace, and goes with the session; a
// first GEMM inside a graph capture is captured; no cuBLAS, bad arguments
// and cuBLAS failures are sticky errors with their messages.
//
//===----------------------------------------------------------------------===//

#include "FakeCudaFixture.h"

#include "jamba/Runtime/Cublas.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <dlfcn.h>
#include <iterator>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

using namespace jamba;
using namespace jamba::rt;
using namespace jamba::rt::testing;
using ckpt::Status;

namespace {

/// Round to nearest even (the inputs are finite).
uint16_t toBf16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  return uint16_t(bits >> 16);
}

float fromBf16(uint16_t half) {
  uint32_t bits = uint32_t(half) << 16;
  float value;
  std::memcpy(&value, &bits, 4);
  return value;
}

std::vector<float> randomValues(size_t count, std::mt19937 &rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> values(count);
  for (float &v : values)
    v = dist(rng);
  return values;
}

/// y[i, j] = sum_l x[i, l] * w[j, l], row-major, in double; `scale` gets
/// sum_l |x[i, l] * w[j, l]|, the size rounding errors are relative to.
std::vector<double> referenceGemm(const std::vector<float> &x,
                                  const std::vector<float> &w, int64_t m,
                                  int64_t n, int64_t k,
                                  std::vector<double> &scale) {
  std::vector<double> y(size_t(m * n));
  scale.assign(size_t(m * n), 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double sum = 0.0, size = 0.0;
      for (int64_t l = 0; l < k; ++l) {
        double p = double(x[size_t(i * k + l)]) * double(w[size_t(j * k + l)]);
        sum += p;
        size += std::fabs(p);
      }
      y[size_t(i * n + j)] = sum;
      scale[size_t(i * n + j)] = size;
    }
  return y;
}

/// Relative error at most 1e-5 (relative to the sum of the products'
/// magnitudes, which bounds a sum's rounding error).
void expectMatches(const std::vector<float> &got,
                   const std::vector<double> &expected,
                   const std::vector<double> &scale, const std::string &what) {
  ASSERT_GE(got.size(), expected.size()) << what;
  for (size_t i = 0; i < expected.size(); ++i)
    EXPECT_LE(std::fabs(double(got[i]) - expected[i]),
              1e-5 * std::max(scale[i], 1e-30))
        << what << ": y[" << i << "] = " << got[i] << ", expected "
        << expected[i];
}

struct Shape {
  int64_t m, n, k;
};

/// Odd, distinct sizes: a transposition or leading-dimension slip shows.
const Shape kShapes[] = {{3, 5, 7}, {1, 13, 37}, {6, 2, 9}, {5, 3, 1}};

constexpr float kGuard = 12345.0f;
constexpr size_t kGuardCount = 8;

class CublasTest : public FakeCudaSessionTest {
protected:
  template <class T> void *toDevice(const std::vector<T> &host) {
    uint64_t bytes = host.size() * sizeof(T);
    auto p = session->allocate(bytes, "test data");
    EXPECT_TRUE(p.ok()) << p.status().message();
    if (!p.ok())
      return nullptr;
    upload(*p, host);
    return *p;
  }

  template <class T> void upload(void *device, const std::vector<T> &host) {
    Status s = session->upload(device, host.data(), host.size() * sizeof(T));
    EXPECT_TRUE(s.ok()) << s.message();
    s = session->finish();
    EXPECT_TRUE(s.ok()) << s.message();
  }

  std::vector<float> fromDevice(const void *device, size_t count) {
    std::vector<float> host(count);
    Status s = session->download(host.data(), device, count * sizeof(float));
    EXPECT_TRUE(s.ok()) << s.message();
    return host;
  }

  /// y for an m x n result: NaN (beta = 0 must not read it), then
  /// kGuardCount guard values the GEMM must not touch.
  void *outputFor(int64_t m, int64_t n) {
    std::vector<float> y(size_t(m * n),
                         std::numeric_limits<float>::quiet_NaN());
    y.insert(y.end(), kGuardCount, kGuard);
    return toDevice(y);
  }

  void expectGuardIntact(const std::vector<float> &y, size_t count,
                         const std::string &what) {
    for (size_t i = count; i < count + kGuardCount; ++i)
      EXPECT_EQ(y[i], kGuard) << what << ": the GEMM wrote past y";
  }
};

//===----------------------------------------------------------------------===//
// The oracle
//===----------------------------------------------------------------------===//

TEST_F(CublasTest, TheFakeIsTextbookBlas) {
  // A hand-worked GEMM through the fake's cublasGemmEx alone, so that the
  // oracle of the tests below is checked against the BLAS definition.
  auto loaded = cuda::loadCublas();
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  const cuda::CublasLibrary &l = **loaded;
  cuda::cublasHandle_t h = nullptr;
  ASSERT_EQ(l.cublasCreate_v2(&h), cuda::CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(l.cublasSetStream_v2(h, session->kernelTarget().stream),
            cuda::CUBLAS_STATUS_SUCCESS);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  // A = [[1, 2, 3], [4, 5, 6]], column-major with lda 3 (row 2 is padding,
  // never read); B = [[1, 0], [0, 1], [1, 1]], ldb 3.
  void *a = toDevice(std::vector<float>{1, 4, nan, 2, 5, nan, 3, 6, nan});
  void *b = toDevice(std::vector<float>{1, 0, 1, 0, 1, 1});
  void *c = toDevice(std::vector<float>(9, 1.0f));
  float alpha = 1.0f, beta = 0.0f, one = 1.0f;
  using cuda::CUBLAS_OP_N;
  using cuda::CUBLAS_OP_T;
  using cuda::CUDA_R_32F;

  // N, N: C (2 x 2, ldc 2) = A * B = [[4, 5], [10, 11]].
  ASSERT_EQ(l.cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 3, &alpha, a,
                           CUDA_R_32F, 3, b, CUDA_R_32F, 3, &beta, c,
                           CUDA_R_32F, 2, cuda::CUBLAS_COMPUTE_32F,
                           cuda::CUBLAS_GEMM_DEFAULT),
            cuda::CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(fromDevice(c, 4), (std::vector<float>{4, 10, 5, 11}));
  // beta 1 adds C: [[8, 10], [20, 22]].
  ASSERT_EQ(l.cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 3, &alpha, a,
                           CUDA_R_32F, 3, b, CUDA_R_32F, 3, &one, c, CUDA_R_32F,
                           2, cuda::CUBLAS_COMPUTE_32F,
                           cuda::CUBLAS_GEMM_DEFAULT),
            cuda::CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(fromDevice(c, 4), (std::vector<float>{8, 20, 10, 22}));
  // T, T: the same buffers read as A (2 x 3, lda 3) and B (3 x 2, ldb 3);
  // C (3 x 3, ldc 3) = A^T * B^T = [[1, 4, 5], [2, 5, 7], [3, 6, 9]].
  ASSERT_EQ(l.cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_T, 3, 3, 2, &alpha, a,
                           CUDA_R_32F, 3, b, CUDA_R_32F, 3, &beta, c,
                           CUDA_R_32F, 3, cuda::CUBLAS_COMPUTE_32F,
                           cuda::CUBLAS_GEMM_DEFAULT),
            cuda::CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(fromDevice(c, 9), (std::vector<float>{1, 2, 3, 4, 5, 6, 5, 7, 9}));
  // A leading dimension below the stored rows is refused, as xGEMM does.
  EXPECT_EQ(l.cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 3, &alpha, a,
                           CUDA_R_32F, 1, b, CUDA_R_32F, 3, &beta, c,
                           CUDA_R_32F, 2, cuda::CUBLAS_COMPUTE_32F,
                           cuda::CUBLAS_GEMM_DEFAULT),
            cuda::CUBLAS_STATUS_INVALID_VALUE);
  // So is a read past the allocation (B is 6 floats, not 3 x 3).
  EXPECT_EQ(l.cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 3, 3, 3, &alpha, a,
                           CUDA_R_32F, 3, b, CUDA_R_32F, 3, &beta, c,
                           CUDA_R_32F, 3, cuda::CUBLAS_COMPUTE_32F,
                           cuda::CUBLAS_GEMM_DEFAULT),
            cuda::CUBLAS_STATUS_EXECUTION_FAILED);
  EXPECT_EQ(l.cublasDestroy_v2(h), cuda::CUBLAS_STATUS_SUCCESS);
}

//===----------------------------------------------------------------------===//
// Results
//===----------------------------------------------------------------------===//

TEST_F(CublasTest, F32MatchesTheRowMajorReference) {
  std::mt19937 rng(7);
  for (const Shape &s : kShapes) {
    std::string what = "f32 m " + std::to_string(s.m) + " n " +
                       std::to_string(s.n) + " k " + std::to_string(s.k);
    std::vector<float> x = randomValues(size_t(s.m * s.k), rng);
    std::vector<float> w = randomValues(size_t(s.n * s.k), rng);
    void *xd = toDevice(x), *wd = toDevice(w);
    auto *yd = static_cast<float *>(outputFor(s.m, s.n));
    jamba_rt_cuda_gemm(yd, xd, wd, s.m, s.n, s.k, cuda::kGemmDtypeF32);
    ASSERT_EQ(takeError(), "") << what;
    std::vector<double> scale;
    std::vector<double> expected = referenceGemm(x, w, s.m, s.n, s.k, scale);
    std::vector<float> y = fromDevice(yd, size_t(s.m * s.n) + kGuardCount);
    expectMatches(y, expected, scale, what);
    expectGuardIntact(y, size_t(s.m * s.n), what);
  }
  EXPECT_EQ(blasFake->gemmRuns - blasBaseline.gemmRuns,
            int64_t(std::size(kShapes)));
}

TEST_F(CublasTest, ProfiledGemmsAreNamedByTypeAndShape) {
  // A profiling session times each GEMM with events around the cuBLAS call
  // and names it by input type and shape (m x n x k).
  session->startProfile();
  std::mt19937 rng(9);
  std::vector<float> x = randomValues(3 * 7, rng), w = randomValues(5 * 7, rng);
  void *xd = toDevice(x), *wd = toDevice(w);
  auto *yd = static_cast<float *>(outputFor(3, 5));
  jamba_rt_cuda_gemm(yd, xd, wd, 3, 5, 7, cuda::kGemmDtypeF32);
  jamba_rt_cuda_gemm(yd, xd, wd, 3, 5, 7, cuda::kGemmDtypeF32);
  jamba_rt_cuda_gemm(yd, xd, wd, 1, 5, 7, cuda::kGemmDtypeBF16);
  ASSERT_EQ(takeError(), "");
  ASSERT_TRUE(session->finish().ok());
  Status collected = session->profile()->collect();
  ASSERT_TRUE(collected.ok()) << collected.message();
  std::map<std::string, int64_t> launches;
  for (const auto &e : session->profile()->entries())
    launches[e.name] = e.launches;
  EXPECT_EQ(launches,
            (std::map<std::string, int64_t>{{"cublas_gemm_f32 3x5x7", 2},
                                            {"cublas_gemm_bf16 1x5x7", 1}}));
}

TEST_F(CublasTest, Bf16MatchesTheReferenceOnRoundedInputs) {
  std::mt19937 rng(11);
  for (const Shape &s : kShapes) {
    std::string what = "bf16 m " + std::to_string(s.m) + " n " +
                       std::to_string(s.n) + " k " + std::to_string(s.k);
    std::vector<float> x = randomValues(size_t(s.m * s.k), rng);
    std::vector<float> w = randomValues(size_t(s.n * s.k), rng);
    std::vector<uint16_t> xh(x.size()), wh(w.size());
    for (size_t i = 0; i < x.size(); ++i) {
      xh[i] = toBf16(x[i]);
      x[i] = fromBf16(xh[i]);
    }
    for (size_t i = 0; i < w.size(); ++i) {
      wh[i] = toBf16(w[i]);
      w[i] = fromBf16(wh[i]);
    }
    void *xd = toDevice(xh), *wd = toDevice(wh);
    auto *yd = static_cast<float *>(outputFor(s.m, s.n));
    jamba_rt_cuda_gemm(yd, xd, wd, s.m, s.n, s.k, cuda::kGemmDtypeBF16);
    ASSERT_EQ(takeError(), "") << what;
    std::vector<double> scale;
    std::vector<double> expected = referenceGemm(x, w, s.m, s.n, s.k, scale);
    std::vector<float> y = fromDevice(yd, size_t(s.m * s.n) + kGuardCount);
    expectMatches(y, expected, scale, what);
    expectGuardIntact(y, size_t(s.m * s.n), what);
  }
}

/// A dense row-major [rows, cols] descriptor over `data`, starting
/// `offset` elements in.
JambaMemRef2D descriptor(void *data, int64_t rows, int64_t cols,
                         int64_t offset = 0) {
  return JambaMemRef2D{data, data, offset, {rows, cols}, {cols, 1}};
}

TEST_F(CublasTest, CompilerEntryPointsTakeMemRefDescriptors) {
  // What jamba-gpu-library-gemms emits: y = x * w^T through the C interface,
  // f32 and bf16, with a non-zero descriptor offset on x (a view).
  std::mt19937 rng(13);
  const int64_t m = 3, n = 5, k = 7, skip = 4;
  std::vector<float> x = randomValues(size_t(skip + m * k), rng);
  std::vector<float> w = randomValues(size_t(n * k), rng);
  std::vector<float> xView(x.begin() + skip, x.end());
  std::vector<double> scale;
  std::vector<double> expected = referenceGemm(xView, w, m, n, k, scale);
  void *xd = toDevice(x), *wd = toDevice(w), *yd = outputFor(m, n);
  JambaMemRef2D yDesc = descriptor(yd, m, n),
                xDesc = descriptor(xd, m, k, skip),
                wDesc = descriptor(wd, n, k);
  _mlir_ciface_jamba_rt_cuda_gemm_f32(&yDesc, &xDesc, &wDesc);
  ASSERT_EQ(takeError(), "");
  std::vector<float> y = fromDevice(yd, size_t(m * n) + kGuardCount);
  expectMatches(y, expected, scale, "f32 through descriptors");
  expectGuardIntact(y, size_t(m * n), "f32 through descriptors");

  std::vector<uint16_t> xh(xView.size()), wh(w.size());
  for (size_t i = 0; i < xView.size(); ++i)
    xView[i] = fromBf16(xh[i] = toBf16(xView[i]));
  for (size_t i = 0; i < w.size(); ++i)
    w[i] = fromBf16(wh[i] = toBf16(w[i]));
  expected = referenceGemm(xView, w, m, n, k, scale);
  xd = toDevice(xh);
  wd = toDevice(wh);
  yd = outputFor(m, n);
  yDesc = descriptor(yd, m, n);
  xDesc = descriptor(xd, m, k);
  wDesc = descriptor(wd, n, k);
  _mlir_ciface_jamba_rt_cuda_gemm_bf16(&yDesc, &xDesc, &wDesc);
  ASSERT_EQ(takeError(), "");
  y = fromDevice(yd, size_t(m * n) + kGuardCount);
  expectMatches(y, expected, scale, "bf16 through descriptors");
}

TEST_F(CublasTest, CompilerEntryPointsRefuseBadDescriptors) {
  std::vector<float> data(64, 1.0f);
  void *d = toDevice(data);
  // Shapes that do not make y = x * w^T.
  JambaMemRef2D y = descriptor(d, 2, 3), x = descriptor(d, 2, 4),
                w = descriptor(d, 3, 5);
  _mlir_ciface_jamba_rt_cuda_gemm_f32(&y, &x, &w);
  EXPECT_EQ(takeError(), "jamba_rt_cuda_gemm_f32: shapes y [2, 3], x [2, 4], "
                         "w [3, 5] do not make y = x * w^T");
  // A strided (non-dense) input.
  w = descriptor(d, 3, 4);
  x.strides[0] = 8;
  _mlir_ciface_jamba_rt_cuda_gemm_bf16(&y, &x, &w);
  EXPECT_EQ(takeError(), "jamba_rt_cuda_gemm_bf16: x [2, 4] has strides [8, "
                         "1], not a dense row-major matrix");
  EXPECT_EQ(blasFake->gemmRuns, blasBaseline.gemmRuns);
}

//===----------------------------------------------------------------------===//
// The handle
//===----------------------------------------------------------------------===//

TEST_F(CublasTest, OneHandlePerSessionOnItsStreamWithItsWorkspace) {
  cuda::CublasHandle &blas = session->cublas();
  EXPECT_EQ(session->kernelTarget().blas, &blas);
  // Nothing is created before the first GEMM.
  EXPECT_EQ(blas.handle(), nullptr);
  EXPECT_EQ(blas.library(), nullptr);
  EXPECT_EQ(blasFake->handlesCreated, blasBaseline.handlesCreated);

  std::mt19937 rng(3);
  void *x = toDevice(randomValues(3 * 7, rng));
  void *w = toDevice(randomValues(5 * 7, rng));
  auto *y = static_cast<float *>(outputFor(3, 5));
  jamba_rt_cuda_gemm(y, x, w, 3, 5, 7, cuda::kGemmDtypeF32);
  jamba_rt_cuda_gemm(y, x, w, 3, 5, 7, cuda::kGemmDtypeBF16);
  ASSERT_EQ(takeError(), "");
  EXPECT_EQ(blasFake->handlesCreated - blasBaseline.handlesCreated, 1);
  EXPECT_EQ(blasFake->liveHandles - blasBaseline.liveHandles, 1);
  EXPECT_EQ(blasFake->gemmCalls - blasBaseline.gemmCalls, 2);
  ASSERT_NE(blas.library(), nullptr);
  EXPECT_EQ(blas.library()->library, JAMBA_FAKE_CUDA_DRIVER);

  // The GEMMs ran on the session's stream with the session's workspace
  // (set after the stream, which resets it) in the default (FP32) math.
  EXPECT_EQ(blasFake->lastStream, session->kernelTarget().stream);
  EXPECT_NE(blasFake->lastWorkspace, nullptr);
  EXPECT_EQ(blasFake->lastWorkspace, blas.workspace());
  EXPECT_EQ(blasFake->lastWorkspaceBytes, cuda::kCublasWorkspaceBytes);
  EXPECT_EQ(blas.workspaceBytes(), cuda::kCublasWorkspaceBytes);
  EXPECT_EQ(blasFake->lastMathMode, cuda::CUBLAS_DEFAULT_MATH);

  // The session destroys the handle and frees the workspace.
  scope.reset();
  session.reset();
  EXPECT_EQ(blasFake->liveHandles, blasBaseline.liveHandles);
  EXPECT_EQ(cudaFake->liveAllocations, baseline.liveAllocations);
}

TEST_F(CublasTest, AFirstGemmInsideAGraphCaptureIsCaptured) {
  std::mt19937 rng(5);
  std::vector<float> x = randomValues(3 * 7, rng);
  std::vector<float> w = randomValues(5 * 7, rng);
  void *xd = toDevice(x), *wd = toDevice(w);
  auto *yd = static_cast<float *>(outputFor(3, 5));

  // The fake refuses a synchronous allocation during a capture, as the
  // driver does (so the relaxed mode below is needed).
  ASSERT_TRUE(session->beginCapture().ok());
  cuda::CUdeviceptr probe = 0;
  EXPECT_NE(session->driver().cuMemAlloc_v2(&probe, 64), cuda::CUDA_SUCCESS);
  session->abandonCapture();

  // The handle is created during the capture; the GEMM is recorded, not
  // run.
  ASSERT_TRUE(session->beginCapture().ok());
  jamba_rt_cuda_gemm(yd, xd, wd, 3, 5, 7, cuda::kGemmDtypeF32);
  ASSERT_EQ(takeError(), "");
  EXPECT_NE(session->cublas().handle(), nullptr);
  EXPECT_EQ(blasFake->gemmRuns, blasBaseline.gemmRuns);
  auto graph = session->endCapture({0, 1, 1});
  ASSERT_TRUE(graph.ok()) << graph.status().message();
  EXPECT_TRUE(std::isnan(fromDevice(yd, 1)[0]));
  // The thread's capture mode was restored.
  cuda::CUstreamCaptureMode mode = cuda::CU_STREAM_CAPTURE_MODE_RELAXED;
  ASSERT_EQ(session->driver().cuThreadExchangeStreamCaptureMode(&mode),
            cuda::CUDA_SUCCESS);
  EXPECT_EQ(mode, cuda::CU_STREAM_CAPTURE_MODE_GLOBAL);
  ASSERT_EQ(session->driver().cuThreadExchangeStreamCaptureMode(&mode),
            cuda::CUDA_SUCCESS);

  std::vector<double> scale;
  ASSERT_TRUE(session->launch(*graph).ok());
  ASSERT_TRUE(session->finish().ok());
  expectMatches(fromDevice(yd, 15), referenceGemm(x, w, 3, 5, 7, scale), scale,
                "first launch");
  // A replay reads the inputs by address: new data, new result.
  std::vector<float> x2 = randomValues(3 * 7, rng);
  upload(xd, x2);
  ASSERT_TRUE(session->launch(*graph).ok());
  ASSERT_TRUE(session->finish().ok());
  expectMatches(fromDevice(yd, 15), referenceGemm(x2, w, 3, 5, 7, scale), scale,
                "replay");
  EXPECT_EQ(blasFake->gemmRuns - blasBaseline.gemmRuns, 2);
  EXPECT_EQ(blasFake->gemmCalls - blasBaseline.gemmCalls, 1);
}

//===----------------------------------------------------------------------===//
// Errors
//===----------------------------------------------------------------------===//

TEST_F(CublasTest, WithoutCublasTheErrorNamesTheLibraries) {
  cuda::setCublasLibrary("");
  EXPECT_EQ(cuda::cublasLibraries(),
            (std::vector<std::string>{"libcublas.so.13", "libcublas.so.12",
                                      "libcublas.so"}));
  // The default list's message, with names that exist nowhere.
  auto none =
      cuda::loadCublas({"libjamba-no-blas.so.13", "libjamba-no-blas.so.12",
                        "libjamba-no-blas.so"});
  ASSERT_FALSE(none.ok());
  const std::string &message = none.status().message();
  EXPECT_TRUE(startsWith(message, "no cuBLAS: dlopen(libjamba-no-blas.so.13): "
                                  "libjamba-no-blas.so.13: cannot open shared "
                                  "object file"))
      << message;
  EXPECT_TRUE(endsWith(message, " (tried libjamba-no-blas.so.13, "
                                "libjamba-no-blas.so.12, libjamba-no-blas.so)"))
      << message;
  // A library without the entry points is named too.
  auto old = cuda::loadCublas({JAMBA_TEST_KERNELS});
  ASSERT_FALSE(old.ok());
  EXPECT_EQ(old.status().message(),
            std::string("no cuBLAS: ") + JAMBA_TEST_KERNELS +
                " lacks cublasCreate_v2 (a cuBLAS older than CUDA 12?)");

  // Through the GEMM: a sticky error, nothing created.
  cuda::setCublasLibrary("libjamba-no-blas.so.13");
  EXPECT_EQ(cuda::cublasLibraries(),
            std::vector<std::string>{"libjamba-no-blas.so.13"});
  std::mt19937 rng(1);
  void *x = toDevice(randomValues(3 * 7, rng));
  void *w = toDevice(randomValues(5 * 7, rng));
  auto *y = static_cast<float *>(outputFor(3, 5));
  int64_t allocations = cudaFake->liveAllocations;
  jamba_rt_cuda_gemm(y, x, w, 3, 5, 7, cuda::kGemmDtypeF32);
  EXPECT_TRUE(cuda::hasCudaError());
  EXPECT_EQ(session->cublas().handle(), nullptr);
  EXPECT_EQ(cudaFake->liveAllocations, allocations);
  // Later calls do nothing until the error is taken, even with cuBLAS back.
  cuda::setCublasLibrary(JAMBA_FAKE_CUDA_DRIVER);
  jamba_rt_cuda_gemm(y, x, w, 3, 5, 7, cuda::kGemmDtypeF32);
  EXPECT_EQ(blasFake->gemmCalls, blasBaseline.gemmCalls);
  std::string error = takeError();
  EXPECT_TRUE(startsWith(error, "jamba_rt_cuda_gemm: no cuBLAS: "
                                "dlopen(libjamba-no-blas.so.13): "
                                "libjamba-no-blas.so.13: cannot open"))
      << error;
  EXPECT_TRUE(endsWith(error, " (tried libjamba-no-blas.so.13)")) << error;
  // The failure is not remembered.
  jamba_rt_cuda_gemm(y, x, w, 3, 5, 7, cuda::kGemmDtypeF32);
  EXPECT_EQ(takeError(), "");
  EXPECT_EQ(blasFake->gemmRuns - blasBaseline.gemmRuns, 1);
}

TEST_F(CublasTest, BadArgumentsAreErrors) {
  std::mt19937 rng(2);
  void *x = toDevice(randomValues(3 * 7, rng));
  void *w = toDevice(randomValues(5 * 7, rng));
  auto *y = static_cast<float *>(outputFor(3, 5));
  jamba_rt_cuda_gemm(y, x, w, 3, 5, 7, 2);
  EXPECT_EQ(takeError(),
            "jamba_rt_cuda_gemm: dtype 2 is neither 0 (f32) nor 1 (bf16)");
  jamba_rt_cuda_gemm(y, x, w, 0, 5, 7, cuda::kGemmDtypeF32);
  EXPECT_EQ(takeError(), "jamba_rt_cuda_gemm: m = 0 is outside [1, "
                         "2147483647] (cuBLAS takes int dimensions)");
  jamba_rt_cuda_gemm(y, x, w, 3, -5, 7, cuda::kGemmDtypeF32);
  EXPECT_EQ(takeError(), "jamba_rt_cuda_gemm: n = -5 is outside [1, "
                         "2147483647] (cuBLAS takes int dimensions)");
  jamba_rt_cuda_gemm(y, x, w, 3, 5, int64_t(1) << 31, cuda::kGemmDtypeF32);
  EXPECT_EQ(takeError(), "jamba_rt_cuda_gemm: k = 2147483648 is outside [1, "
                         "2147483647] (cuBLAS takes int dimensions)");
  jamba_rt_cuda_gemm(y, nullptr, w, 3, 5, 7, cuda::kGemmDtypeF32);
  EXPECT_EQ(takeError(), "jamba_rt_cuda_gemm: a null x pointer");
  // None of them reached cuBLAS.
  EXPECT_EQ(blasFake->gemmCalls, blasBaseline.gemmCalls);
  EXPECT_EQ(session->cublas().handle(), nullptr);

  // No session active, and a target without a handle.
  scope.reset();
  jamba_rt_cuda_gemm(y, x, w, 3, 5, 7, cuda::kGemmDtypeF32);
  EXPECT_EQ(takeError(), "jamba_rt_cuda_gemm: no CUDA session is active (a "
                         "kernel called the runtime outside a CUDA run)");
  cuda::CudaKernelTarget bare = session->kernelTarget();
  bare.blas = nullptr;
  {
    cuda::ActiveCudaTargetScope bareScope(&bare);
    jamba_rt_cuda_gemm(y, x, w, 3, 5, 7, cuda::kGemmDtypeF32);
  }
  EXPECT_EQ(takeError(),
            "jamba_rt_cuda_gemm: the active CUDA target has no cuBLAS handle");
  EXPECT_EQ(blasFake->gemmCalls, blasBaseline.gemmCalls);
}

TEST_F(CublasTest, CublasFailuresAreErrors) {
  std::mt19937 rng(4);
  void *x = toDevice(randomValues(3 * 7, rng));
  void *w = toDevice(randomValues(5 * 7, rng));
  auto *y = static_cast<float *>(outputFor(3, 5));
  int64_t allocations = cudaFake->liveAllocations;
  blasFake->failCreateWith = cuda::CUBLAS_STATUS_NOT_INITIALIZED;
  jamba_rt_cuda_gemm(y, x, w, 3, 5, 7, cuda::kGemmDtypeF32);
  EXPECT_EQ(takeError(), "jamba_rt_cuda_gemm: cublasCreate: "
                         "CUBLAS_STATUS_NOT_INITIALIZED (fake cuBLAS error)");
  EXPECT_EQ(session->cublas().handle(), nullptr);
  EXPECT_EQ(cudaFake->liveAllocations, allocations);
  blasFake->failCreateWith = 0;

  blasFake->failGemmWith = cuda::CUBLAS_STATUS_EXECUTION_FAILED;
  jamba_rt_cuda_gemm(y, x, w, 3, 5, 7, cuda::kGemmDtypeBF16);
  EXPECT_EQ(takeError(), "jamba_rt_cuda_gemm: cublasGemmEx: "
                         "CUBLAS_STATUS_EXECUTION_FAILED (fake cuBLAS error) "
                         "(m 3, n 5, k 7, bf16)");
  // A status cuBLAS cannot name is reported by its number.
  blasFake->failGemmWith = 99;
  jamba_rt_cuda_gemm(y, x, w, 3, 5, 7, cuda::kGemmDtypeF32);
  EXPECT_EQ(takeError(), "jamba_rt_cuda_gemm: cublasGemmEx: cuBLAS status 99 "
                         "(m 3, n 5, k 7, f32)");
  blasFake->failGemmWith = 0;
}

TEST(CublasExportTest, TheGemmIsExportedForKernelFiles) {
  // Kernel files resolve it from the process (--export-dynamic-symbol).
  void *symbol = ::dlsym(RTLD_DEFAULT, "jamba_rt_cuda_gemm");
  EXPECT_EQ(symbol, reinterpret_cast<void *>(&jamba_rt_cuda_gemm));
  EXPECT_EQ(::dlsym(RTLD_DEFAULT, "_mlir_ciface_jamba_rt_cuda_gemm_f32"),
            reinterpret_cast<void *>(&_mlir_ciface_jamba_rt_cuda_gemm_f32));
  EXPECT_EQ(::dlsym(RTLD_DEFAULT, "_mlir_ciface_jamba_rt_cuda_gemm_bf16"),
            reinterpret_cast<void *>(&_mlir_ciface_jamba_rt_cuda_gemm_bf16));
}

} // namespace

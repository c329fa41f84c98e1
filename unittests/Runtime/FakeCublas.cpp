//===- FakeCublas.cpp - A fake cuBLAS for the runtime tests ---------------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// Test code, part of the fake driver library (FakeCuda.h): the cuBLAS entry
// points the runtime resolves (Cublas.cpp), over the fake's host-memory
// "device". Its cublasGemmEx is the oracle of the runtime's row-major to
// column-major mapping, so it follows the BLAS definition of xGEMM and
// nothing of how the runtime calls it:
//
//   C := alpha * op(A) * op(B) + beta * C
//
// with op(X) = X or X^T, op(A) m x k, op(B) k x n, C m x n, every matrix
// column-major (element (i, j) of X at X[i + j * ldX]); A is stored m x k
// (transa N) or k x m (T), B k x n (N) or n x k (T). Its argument checks
// are the reference BLAS ones (ld at least the stored rows, and at least
// 1), and beta = 0 means C is not read. Every element it reads or writes
// must lie in a live fake allocation (a real GPU would fault). Like the
// real library, cublasSetStream_v2 resets a handle's workspace, and
// cublasCreate_v2 allocates device memory, which a capture refuses unless
// the thread's capture mode is relaxed.
//
// The signatures are the runtime's declarations (Cublas.h).
//
//===----------------------------------------------------------------------===//

#include "FakeCuda.h"

#include "jamba/Runtime/Cublas.h"

#include <algorithm>
#include <cstring>

using namespace jamba::rt::cuda;
using jamba::rt::testing::FakeCublasControl;
namespace fake = jamba::rt::testing::fake;

namespace {

constexpr cublasOperation_t kOpC = 2;

FakeCublasControl control;

struct FakeHandle {
  CUstream stream = nullptr;
  void *workspace = nullptr;
  size_t workspaceBytes = 0;
  cublasMath_t mathMode = CUBLAS_DEFAULT_MATH;
};

FakeHandle *handleOf(cublasHandle_t handle) {
  return reinterpret_cast<FakeHandle *>(handle);
}

size_t elementBytes(cudaDataType type) { return type == CUDA_R_32F ? 4 : 2; }

/// Element `index` of a CUDA_R_32F or CUDA_R_16BF array, as a float (a
/// bf16 is the high half of an f32).
float element(const void *base, cudaDataType type, size_t index) {
  float value;
  if (type == CUDA_R_32F) {
    std::memcpy(&value, static_cast<const char *>(base) + index * 4, 4);
    return value;
  }
  uint16_t half;
  std::memcpy(&half, static_cast<const char *>(base) + index * 2, 2);
  uint32_t bits = uint32_t(half) << 16;
  std::memcpy(&value, &bits, 4);
  return value;
}

/// The elements a column-major `rows` x `cols` matrix with leading dimension
/// `ld` spans.
size_t span(int rows, int cols, int ld) {
  return rows == 0 || cols == 0 ? 0 : size_t(cols - 1) * size_t(ld) + rows;
}

bool isTranspose(cublasOperation_t op) {
  return op == CUBLAS_OP_T || op == kOpC;
}

} // namespace

#define FAKE_EXPORT extern "C" __attribute__((visibility("default")))

FAKE_EXPORT FakeCublasControl *jamba_fake_cublas_control() { return &control; }

FAKE_EXPORT cublasStatus_t cublasCreate_v2(cublasHandle_t *handle) {
  FAKE_LOCK();
  if (!handle)
    return CUBLAS_STATUS_INVALID_VALUE;
  if (control.failCreateWith)
    return control.failCreateWith;
  // The real one allocates device memory.
  if (fake::refusesUnsafeCall())
    return CUBLAS_STATUS_ALLOC_FAILED;
  *handle = reinterpret_cast<cublasHandle_t>(new FakeHandle());
  ++control.handlesCreated;
  ++control.liveHandles;
  return CUBLAS_STATUS_SUCCESS;
}

FAKE_EXPORT cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) {
  FAKE_LOCK();
  if (!handle)
    return CUBLAS_STATUS_NOT_INITIALIZED;
  delete handleOf(handle);
  --control.liveHandles;
  return CUBLAS_STATUS_SUCCESS;
}

FAKE_EXPORT cublasStatus_t cublasSetStream_v2(cublasHandle_t handle,
                                              CUstream stream) {
  FAKE_LOCK();
  if (!handle)
    return CUBLAS_STATUS_NOT_INITIALIZED;
  FakeHandle &h = *handleOf(handle);
  h.stream = stream;
  // Back to the library's own workspace pool.
  h.workspace = nullptr;
  h.workspaceBytes = 0;
  return CUBLAS_STATUS_SUCCESS;
}

FAKE_EXPORT cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t handle,
                                                 void *workspace,
                                                 size_t bytes) {
  FAKE_LOCK();
  if (!handle)
    return CUBLAS_STATUS_NOT_INITIALIZED;
  if (reinterpret_cast<uintptr_t>(workspace) % 256 != 0 ||
      (workspace && !fake::isDeviceRange(workspace, bytes)))
    return CUBLAS_STATUS_INVALID_VALUE;
  handleOf(handle)->workspace = workspace;
  handleOf(handle)->workspaceBytes = workspace ? bytes : 0;
  return CUBLAS_STATUS_SUCCESS;
}

FAKE_EXPORT cublasStatus_t cublasSetMathMode(cublasHandle_t handle,
                                             cublasMath_t mode) {
  FAKE_LOCK();
  if (!handle)
    return CUBLAS_STATUS_NOT_INITIALIZED;
  handleOf(handle)->mathMode = mode;
  return CUBLAS_STATUS_SUCCESS;
}

FAKE_EXPORT const char *cublasGetStatusName(cublasStatus_t status) {
  FAKE_LOCK();
  switch (status) {
  case CUBLAS_STATUS_SUCCESS:
    return "CUBLAS_STATUS_SUCCESS";
  case CUBLAS_STATUS_NOT_INITIALIZED:
    return "CUBLAS_STATUS_NOT_INITIALIZED";
  case CUBLAS_STATUS_ALLOC_FAILED:
    return "CUBLAS_STATUS_ALLOC_FAILED";
  case CUBLAS_STATUS_INVALID_VALUE:
    return "CUBLAS_STATUS_INVALID_VALUE";
  case CUBLAS_STATUS_EXECUTION_FAILED:
    return "CUBLAS_STATUS_EXECUTION_FAILED";
  case CUBLAS_STATUS_NOT_SUPPORTED:
    return "CUBLAS_STATUS_NOT_SUPPORTED";
  default:
    return "unrecognized status";
  }
}

FAKE_EXPORT const char *cublasGetStatusString(cublasStatus_t status) {
  FAKE_LOCK();
  return status == CUBLAS_STATUS_SUCCESS ? "success" : "fake cuBLAS error";
}

FAKE_EXPORT cublasStatus_t cublasGemmEx(
    cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
    int m, int n, int k, const void *alpha, const void *a, cudaDataType aType,
    int lda, const void *b, cudaDataType bType, int ldb, const void *beta,
    void *c, cudaDataType cType, int ldc, cublasComputeType_t computeType,
    cublasGemmAlgo_t) {
  FAKE_LOCK();
  ++control.gemmCalls;
  if (!handle)
    return CUBLAS_STATUS_NOT_INITIALIZED;
  const FakeHandle &h = *handleOf(handle);
  control.lastStream = h.stream;
  control.lastWorkspace = h.workspace;
  control.lastWorkspaceBytes = h.workspaceBytes;
  control.lastMathMode = h.mathMode;
  if (control.failGemmWith)
    return control.failGemmWith;

  // The reference BLAS checks. A is stored rowsA x colsA, B rowsB x colsB.
  auto isOp = [](cublasOperation_t op) {
    return op == CUBLAS_OP_N || isTranspose(op);
  };
  if (!isOp(transa) || !isOp(transb) || m < 0 || n < 0 || k < 0)
    return CUBLAS_STATUS_INVALID_VALUE;
  const bool ta = isTranspose(transa), tb = isTranspose(transb);
  const int rowsA = ta ? k : m, colsA = ta ? m : k;
  const int rowsB = tb ? n : k, colsB = tb ? k : n;
  if (lda < std::max(1, rowsA) || ldb < std::max(1, rowsB) ||
      ldc < std::max(1, m))
    return CUBLAS_STATUS_INVALID_VALUE;
  if (!alpha || !beta)
    return CUBLAS_STATUS_INVALID_VALUE;
  // The types of the runtime's GEMMs: f32 or bf16 inputs, f32 output and
  // scale, FP32 compute.
  if (aType != bType || (aType != CUDA_R_32F && aType != CUDA_R_16BF) ||
      cType != CUDA_R_32F || computeType != CUBLAS_COMPUTE_32F)
    return CUBLAS_STATUS_NOT_SUPPORTED;
  if (m == 0 || n == 0)
    return CUBLAS_STATUS_SUCCESS;
  if (!fake::isDeviceRange(a, span(rowsA, colsA, lda) * elementBytes(aType)) ||
      !fake::isDeviceRange(b, span(rowsB, colsB, ldb) * elementBytes(bType)) ||
      !fake::isDeviceRange(c, span(m, n, ldc) * 4))
    return CUBLAS_STATUS_EXECUTION_FAILED;

  // Host pointer mode: the scalars are read now (a graph keeps the values).
  float alphaValue, betaValue;
  std::memcpy(&alphaValue, alpha, 4);
  std::memcpy(&betaValue, beta, 4);
  auto *out = static_cast<float *>(c);
  int result = fake::enqueue(h.stream, [=] {
    ++control.gemmRuns;
    for (int j = 0; j < n; ++j)
      for (int i = 0; i < m; ++i) {
        // op(A)(i, l) * op(B)(l, j), summed over l.
        float sum = 0.0f;
        for (int l = 0; l < k; ++l) {
          size_t ai =
              ta ? size_t(l) + size_t(i) * lda : size_t(i) + size_t(l) * lda;
          size_t bi =
              tb ? size_t(j) + size_t(l) * ldb : size_t(l) + size_t(j) * ldb;
          sum += element(a, aType, ai) * element(b, bType, bi);
        }
        float &cij = out[size_t(i) + size_t(j) * ldc];
        cij = betaValue == 0.0f ? alphaValue * sum
                                : alphaValue * sum + betaValue * cij;
      }
  });
  return result == CUDA_SUCCESS ? CUBLAS_STATUS_SUCCESS
                                : CUBLAS_STATUS_EXECUTION_FAILED;
}

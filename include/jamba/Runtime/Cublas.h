//===- Cublas.h - cuBLAS, through dlopen, for compiled kernels --*- C++ -*-===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// The compiler lowers dense `jamba.linear` ops on the CUDA target to calls of
// jamba_rt_cuda_gemm (CudaKernelAbi.h), which runs them with cuBLAS. Like the
// driver (CudaDriver.h), cuBLAS is reached only through dlopen and dlsym: no
// cublas_v2.h, no link to libcublas, so the runtime builds and starts where
// there is no CUDA, and a model without GEMMs on the GPU never loads it.
//
// The loader tries "libcublas.so.13", "libcublas.so.12", then "libcublas.so"
// (setCublasLibrary() replaces the list with one name). The few cuBLAS types
// and constants the runtime needs are declared here with the values of
// cuBLAS's public headers (cublas_api.h, library_types.h), which NVIDIA keeps
// stable across releases.
//
// A CUDA session owns one CublasHandle: the cuBLAS handle, created on the
// session's first GEMM, bound to the session's stream and given a workspace
// the session owns, so that the GEMMs of a decode step can be captured into
// its CUDA graph (docs/Runtime.md, "CUDA"). No MLIR or LLVM header.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_RUNTIME_CUBLAS_H
#define JAMBA_RUNTIME_CUBLAS_H

#include "jamba/Runtime/CudaDriver.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace jamba {
namespace rt {
namespace cuda {

//===----------------------------------------------------------------------===//
// cuBLAS's types and constants (cublas_api.h, library_types.h values)
//===----------------------------------------------------------------------===//

/// cublasStatus_t, cublasOperation_t, cudaDataType, cublasComputeType_t,
/// cublasGemmAlgo_t and cublasMath_t are C enums: int-sized.
using cublasStatus_t = int;
using cublasHandle_t = struct cublasContext *;
using cublasOperation_t = int;
using cudaDataType = int;
using cublasComputeType_t = int;
using cublasGemmAlgo_t = int;
using cublasMath_t = int;

constexpr cublasStatus_t CUBLAS_STATUS_SUCCESS = 0;
constexpr cublasStatus_t CUBLAS_STATUS_NOT_INITIALIZED = 1;
constexpr cublasStatus_t CUBLAS_STATUS_ALLOC_FAILED = 3;
constexpr cublasStatus_t CUBLAS_STATUS_INVALID_VALUE = 7;
constexpr cublasStatus_t CUBLAS_STATUS_EXECUTION_FAILED = 13;
constexpr cublasStatus_t CUBLAS_STATUS_NOT_SUPPORTED = 15;

constexpr cublasOperation_t CUBLAS_OP_N = 0;
constexpr cublasOperation_t CUBLAS_OP_T = 1;

/// cudaDataType (library_types.h).
constexpr cudaDataType CUDA_R_32F = 0;
constexpr cudaDataType CUDA_R_16BF = 14;

/// FP32 accumulation (and, with f32 inputs, FP32 multiplication: no TF32
/// unless the math mode allows it, see below).
constexpr cublasComputeType_t CUBLAS_COMPUTE_32F = 68;

/// The heuristic's choice of algorithm (tensor cores where the types and
/// math mode allow them).
constexpr cublasGemmAlgo_t CUBLAS_GEMM_DEFAULT = -1;

/// Default math: an f32 GEMM with CUBLAS_COMPUTE_32F runs in FP32, not TF32
/// (TF32 needs CUBLAS_TF32_TENSOR_OP_MATH = 3 or
/// CUBLAS_COMPUTE_32F_FAST_TF32 = 77); a bf16 GEMM still uses tensor cores.
/// CUBLAS_PEDANTIC_MATH (2) would also forbid those, so it is not used.
constexpr cublasMath_t CUBLAS_DEFAULT_MATH = 0;

//===----------------------------------------------------------------------===//
// The library's entry points
//===----------------------------------------------------------------------===//

/// The cuBLAS functions the runtime calls, resolved once from the library.
/// Every member is non-null in a loaded library except the two status-text
/// functions (cuBLAS 11.4.2 and later).
struct CublasLibrary {
  /// The library name it was loaded from ("libcublas.so.13").
  std::string library;

  cublasStatus_t (*cublasCreate_v2)(cublasHandle_t *handle) = nullptr;
  cublasStatus_t (*cublasDestroy_v2)(cublasHandle_t handle) = nullptr;
  cublasStatus_t (*cublasSetStream_v2)(cublasHandle_t handle,
                                       CUstream stream) = nullptr;
  cublasStatus_t (*cublasSetWorkspace_v2)(cublasHandle_t handle,
                                          void *workspace,
                                          size_t bytes) = nullptr;
  cublasStatus_t (*cublasSetMathMode)(cublasHandle_t handle,
                                      cublasMath_t mode) = nullptr;
  cublasStatus_t (*cublasGemmEx)(
      cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
      int m, int n, int k, const void *alpha, const void *a, cudaDataType aType,
      int lda, const void *b, cudaDataType bType, int ldb, const void *beta,
      void *c, cudaDataType cType, int ldc, cublasComputeType_t computeType,
      cublasGemmAlgo_t algo) = nullptr;
  /// Optional.
  const char *(*cublasGetStatusName)(cublasStatus_t status) = nullptr;
  const char *(*cublasGetStatusString)(cublasStatus_t status) = nullptr;

  /// "NAME (description)" for `status`, e.g. "CUBLAS_STATUS_INVALID_VALUE
  /// (an unsupported value or parameter was passed to the function)";
  /// "cuBLAS status N" when the library cannot name it.
  std::string statusText(cublasStatus_t status) const;

  /// Success, or "`call`: NAME (description)".
  Status check(cublasStatus_t status, const char *call) const;
};

/// The libraries loadCublas() tries, in order: "libcublas.so.13",
/// "libcublas.so.12", "libcublas.so", or the one setCublasLibrary() named.
std::vector<std::string> cublasLibraries();

/// Makes loadCublas() try only `library` (an empty name restores the
/// default list). For tests, which substitute a fake cuBLAS, and for unusual
/// installs; a library already loaded stays loaded (handles may use it).
void setCublasLibrary(const std::string &library);

/// The process-wide cuBLAS from cublasLibraries(): the first of them that
/// dlopen() opens, every entry point resolved, once per library name; later
/// calls return the same library. Fails with "no cuBLAS: dlopen(FIRST):
/// WHY (tried A, B, C)" (WHY: the first library's dlopen error) when none
/// opens, and "no cuBLAS: LIB lacks SYMBOL ..." when the one that opens is
/// too old. A failure is not remembered: the next call tries again.
StatusOr<const CublasLibrary *> loadCublas();
/// The same for the given list (a test names libraries that do not exist).
StatusOr<const CublasLibrary *>
loadCublas(const std::vector<std::string> &libraries);

//===----------------------------------------------------------------------===//
// A session's handle
//===----------------------------------------------------------------------===//

/// The workspace a handle gets: cuBLAS's recommendation for Hopper (it asks
/// for 4 MiB on older GPUs; the larger size serves both).
constexpr size_t kCublasWorkspaceBytes = size_t(32) << 20;

/// A CUDA session's cuBLAS handle, created on first use. Not thread-safe:
/// one thread uses a session at a time.
class CublasHandle {
public:
  /// Nothing is loaded or created yet. `driver` and `stream` (the
  /// session's) must outlive the handle.
  CublasHandle(const CudaDriver &driver, CUstream stream,
               size_t workspaceBytes = kCublasWorkspaceBytes);
  /// Destroys the handle and frees the workspace; the session's context
  /// must be current and the stream idle. Errors are ignored.
  ~CublasHandle();
  CublasHandle(const CublasHandle &) = delete;
  CublasHandle &operator=(const CublasHandle &) = delete;

  /// The handle, created on the first call with the session's context
  /// current: loads cuBLAS (loadCublas), creates the handle, binds it to the
  /// session's stream (cublasSetStream_v2, which also resets the workspace),
  /// then gives it the workspace (cuMemAlloc, cublasSetWorkspace_v2) and the
  /// default math mode. While the stream is being captured into a CUDA graph
  /// the creation runs with the thread's capture mode relaxed
  /// (cuThreadExchangeStreamCaptureMode): its allocations are not part of
  /// the graph. A failure leaves nothing behind, and the next call tries
  /// again.
  StatusOr<cublasHandle_t> get();

  /// Null until get() succeeded.
  const CublasLibrary *library() const { return lib; }
  cublasHandle_t handle() const { return blas; }
  CUstream stream() const { return boundStream; }
  void *workspace() const;
  size_t workspaceBytes() const { return workspaceSize; }

private:
  Status create();
  void release();

  const CudaDriver &driver;
  CUstream boundStream;
  size_t workspaceSize;
  const CublasLibrary *lib = nullptr;
  cublasHandle_t blas = nullptr;
  CUdeviceptr workspaceMemory = 0;
};

} // namespace cuda
} // namespace rt
} // namespace jamba

#endif // JAMBA_RUNTIME_CUBLAS_H

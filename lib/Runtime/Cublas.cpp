//===- Cublas.cpp - cuBLAS, reached through dlopen ------------------------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// Loads cuBLAS once per library name and resolves the entry points the
// runtime uses; creates a session's handle on first use. Nothing here
// includes a cuBLAS header or links to libcublas (Cublas.h says why).
//
//===----------------------------------------------------------------------===//

#include "jamba/Runtime/Cublas.h"

#include "DynamicLibrary.h"

#include <cstring>
#include <memory>

using namespace jamba;
using namespace jamba::rt;
using namespace jamba::rt::cuda;
using ckpt::makeError;

namespace {

/// Fills every entry point from the open library, or says what is missing
/// (and closes it).
StatusOr<std::unique_ptr<CublasLibrary>>
resolveLibrary(LibrarySymbols &symbols) {
  auto l = std::make_unique<CublasLibrary>();
  l->library = symbols.library();
#define JAMBA_CUBLAS_RESOLVE(fn) symbols.require(#fn, l->fn);
  JAMBA_CUBLAS_RESOLVE(cublasCreate_v2)
  JAMBA_CUBLAS_RESOLVE(cublasDestroy_v2)
  JAMBA_CUBLAS_RESOLVE(cublasSetStream_v2)
  JAMBA_CUBLAS_RESOLVE(cublasSetWorkspace_v2)
  JAMBA_CUBLAS_RESOLVE(cublasSetMathMode)
  JAMBA_CUBLAS_RESOLVE(cublasGemmEx)
#undef JAMBA_CUBLAS_RESOLVE
  JAMBA_CKPT_RETURN_IF_ERROR(
      symbols.checkRequired("(a cuBLAS older than CUDA 12?)"));
  // Optional: without them a status is reported by its number.
  symbols.optional("cublasGetStatusName", l->cublasGetStatusName);
  symbols.optional("cublasGetStatusString", l->cublasGetStatusString);
  return l;
}

/// The sonames of cuBLAS 13 and 12, then the development symlink. Never
/// destroyed: loaded libraries live as long as the process, as the driver
/// does (CudaDriver.cpp), since a session's handle may use one at any time.
LibraryLoader<CublasLibrary> &loader() {
  static auto *cublas = new LibraryLoader<CublasLibrary>(
      "cuBLAS", {"libcublas.so.13", "libcublas.so.12", "libcublas.so"},
      resolveLibrary);
  return *cublas;
}

void *hostView(CUdeviceptr p) {
  return reinterpret_cast<void *>(static_cast<uintptr_t>(p));
}

} // namespace

//===----------------------------------------------------------------------===//
// The library
//===----------------------------------------------------------------------===//

std::string CublasLibrary::statusText(cublasStatus_t status) const {
  // cuBLAS names a status it does not know "unrecognized status".
  const char *name =
      cublasGetStatusName ? cublasGetStatusName(status) : nullptr;
  if (!name || std::strncmp(name, "CUBLAS_STATUS_", 14) != 0)
    return ckpt::concat("cuBLAS status ", status);
  const char *text =
      cublasGetStatusString ? cublasGetStatusString(status) : nullptr;
  if (!text || !*text)
    return name;
  return ckpt::concat(name, " (", text, ")");
}

Status CublasLibrary::check(cublasStatus_t status, const char *call) const {
  if (status == CUBLAS_STATUS_SUCCESS)
    return Status::success();
  return makeError(call, ": ", statusText(status));
}

std::vector<std::string> cuda::cublasLibraries() {
  return loader().libraries();
}

void cuda::setCublasLibrary(const std::string &library) {
  loader().setLibrary(library);
}

StatusOr<const CublasLibrary *> cuda::loadCublas() {
  return loadCublas(cublasLibraries());
}

StatusOr<const CublasLibrary *>
cuda::loadCublas(const std::vector<std::string> &libraries) {
  return loader().loadFirst(libraries);
}

//===----------------------------------------------------------------------===//
// A session's handle
//===----------------------------------------------------------------------===//

CublasHandle::CublasHandle(const CudaDriver &cudaDriver, CUstream stream,
                           size_t workspaceBytes)
    : driver(cudaDriver), boundStream(stream), workspaceSize(workspaceBytes) {}

CublasHandle::~CublasHandle() { release(); }

void *CublasHandle::workspace() const { return hostView(workspaceMemory); }

StatusOr<cublasHandle_t> CublasHandle::get() {
  if (blas)
    return blas;
  // The first GEMM of a session normally runs outside a capture (prefill
  // comes first). When it is the first step of a decode graph instead,
  // creating the handle and allocating the workspace are calls a
  // thread-local capture refuses: the driver's documented way out for a
  // library's lazy initialisation is to relax this thread's capture mode
  // around them. They run at once and are not recorded; the graph records
  // only the GEMM, which uses the workspace by address.
  CUstreamCaptureStatus capture = CU_STREAM_CAPTURE_STATUS_NONE;
  JAMBA_CKPT_RETURN_IF_ERROR(
      driver.check(driver.cuStreamIsCapturing(boundStream, &capture),
                   "cuStreamIsCapturing"));
  if (capture == CU_STREAM_CAPTURE_STATUS_NONE) {
    JAMBA_CKPT_RETURN_IF_ERROR(create());
    return blas;
  }
  CUstreamCaptureMode mode = CU_STREAM_CAPTURE_MODE_RELAXED;
  JAMBA_CKPT_RETURN_IF_ERROR(
      driver.check(driver.cuThreadExchangeStreamCaptureMode(&mode),
                   "cuThreadExchangeStreamCaptureMode"));
  Status created = create();
  Status restored =
      driver.check(driver.cuThreadExchangeStreamCaptureMode(&mode),
                   "cuThreadExchangeStreamCaptureMode");
  JAMBA_CKPT_RETURN_IF_ERROR(created);
  if (!restored.ok()) {
    release();
    return restored;
  }
  return blas;
}

Status CublasHandle::create() {
  StatusOr<const CublasLibrary *> loaded = loadCublas();
  if (!loaded.ok())
    return loaded.status();
  const CublasLibrary &l = **loaded;
  cublasHandle_t h = nullptr;
  JAMBA_CKPT_RETURN_IF_ERROR(l.check(l.cublasCreate_v2(&h), "cublasCreate"));
  lib = &l;
  blas = h;
  // cublasSetStream resets the handle's workspace to cuBLAS's own pool
  // (which may allocate during a capture): the stream first, then the
  // session's workspace.
  Status s =
      l.check(l.cublasSetStream_v2(blas, boundStream), "cublasSetStream");
  if (s.ok()) {
    CUresult r = driver.cuMemAlloc_v2(&workspaceMemory, workspaceSize);
    if (r != CUDA_SUCCESS) {
      workspaceMemory = 0;
      s = makeError("cannot allocate the cuBLAS workspace (", workspaceSize,
                    " bytes): cuMemAlloc: ", driver.errorText(r));
    }
  }
  if (s.ok())
    s = l.check(l.cublasSetWorkspace_v2(blas, workspace(), workspaceSize),
                "cublasSetWorkspace");
  if (s.ok())
    s = l.check(l.cublasSetMathMode(blas, CUBLAS_DEFAULT_MATH),
                "cublasSetMathMode");
  if (!s.ok())
    release();
  return s;
}

void CublasHandle::release() {
  // cublasDestroy waits for the device; the workspace is free to go after.
  if (blas)
    lib->cublasDestroy_v2(blas);
  blas = nullptr;
  lib = nullptr;
  if (workspaceMemory)
    driver.cuMemFree_v2(workspaceMemory);
  workspaceMemory = 0;
}

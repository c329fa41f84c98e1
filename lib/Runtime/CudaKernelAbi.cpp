//===- CudaKernelAbi.cpp - The C functions CUDA kernels call --------------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// The process-wide active CUDA target, the sticky error and the mgpu*
// functions, the GEMM and the all-reduces the kernels' host code calls
// (CudaKernelAbi.h). Each
// function checks, in order: no error recorded (else it does nothing), a target
// active (else it records that), its arguments, then every driver call.
//
//===----------------------------------------------------------------------===//

#include "jamba/Runtime/CudaKernelAbi.h"
#include "jamba/Runtime/Cublas.h"
#include "jamba/Runtime/CudaProfile.h"
#include "jamba/Runtime/Nccl.h"

#include <atomic>
#include <cstring>
#include <mutex>
#include <set>
#include <string>
#include <utility>

using namespace jamba;
using namespace jamba::rt;
using namespace jamba::rt::cuda;
using ckpt::makeError;

namespace {

/// The calling thread's active target and sticky error: ranks that are
/// threads of one process (one process driving several GPUs) each run
/// their kernels on their own session. Trivially destructible (the error
/// lives on the heap, never freed), because a kernels file whose
/// destructors run at exit (one never closed) may still call in after the
/// thread's objects are gone.
thread_local const CudaKernelTarget *active = nullptr;
thread_local Status *firstError = nullptr; ///< Null or ok: no error.

/// What the functions share across threads, allocated once and never
/// destroyed (as above).
struct SharedState {
  /// Managed allocations (mgpuMemAlloc with isHostShared), which
  /// mgpuMemFree must free with cuMemFree rather than cuMemFreeAsync.
  std::mutex managedMutex;
  std::set<CUdeviceptr> managed; ///< Guarded by managedMutex.
};

SharedState &shared() {
  static SharedState *state = new SharedState();
  return *state;
}

/// The active target for `call`, or nullptr when the call must do nothing:
/// an error is recorded already, or no session is active (recorded now).
const CudaKernelTarget *targetFor(const char *call) {
  if (cuda::hasCudaError())
    return nullptr;
  const CudaKernelTarget *t = active;
  if (!t || !t->driver) {
    recordCudaError(makeError(call, ": no CUDA session is active (a kernel "
                                    "called the runtime outside a CUDA run)"));
    return nullptr;
  }
  return t;
}

/// True on success; otherwise records "call: driverCall: NAME (text)".
bool succeeded(const CudaKernelTarget &t, CUresult result, const char *call,
               const char *driverCall) {
  if (result == CUDA_SUCCESS)
    return true;
  recordCudaError(
      makeError(call, ": ", driverCall, ": ", t.driver->errorText(result)));
  return false;
}

CUstream streamOf(const CudaKernelTarget &t, void *stream) {
  return stream ? static_cast<CUstream>(stream) : t.stream;
}

/// With a profiling target, times the work enqueued during its lifetime
/// (KernelProfile::begin before, end after) under the name `name()` gives;
/// nothing otherwise. A failing event call is recorded as `call`'s error
/// (ok() is then false and the caller enqueues nothing).
class ProfiledScope {
public:
  template <class NameFn>
  ProfiledScope(const CudaKernelTarget &t, CUstream stream, const char *call,
                NameFn name)
      : profile(t.profile), stream(stream), call(call) {
    if (!profile)
      return;
    Status begun = profile->begin(name(), stream);
    if (!begun.ok()) {
      recordCudaError(makeError(call, ": profiling: ", begun.message()));
      failed = true;
    }
  }
  ~ProfiledScope() {
    if (!profile || failed)
      return;
    Status ended = profile->end(stream);
    if (!ended.ok())
      recordCudaError(makeError(call, ": profiling: ", ended.message()));
  }
  ProfiledScope(const ProfiledScope &) = delete;
  ProfiledScope &operator=(const ProfiledScope &) = delete;
  bool ok() const { return !failed; }

private:
  KernelProfile *profile;
  CUstream stream;
  const char *call;
  bool failed = false;
};

/// Waits for `s`; true on success, otherwise records the error. The
/// session's stream of a GPU rank is waited for by NcclRanks::waitStream,
/// which gives up on a collective whose peer is stuck (and aborts the
/// communicators) instead of hanging in cuStreamSynchronize.
bool synchronize(const CudaKernelTarget &t, CUstream s, const char *call) {
  if (t.nccl && s == t.stream) {
    Status waited = t.nccl->waitStream();
    if (!waited.ok())
      recordCudaError(makeError(call, ": ", waited.message()));
    return waited.ok();
  }
  return succeeded(t, t.driver->cuStreamSynchronize(s), call,
                   "cuStreamSynchronize");
}

CUdeviceptr devicePtr(const void *p) {
  return static_cast<CUdeviceptr>(reinterpret_cast<uintptr_t>(p));
}

void *hostView(CUdeviceptr p) {
  return reinterpret_cast<void *>(static_cast<uintptr_t>(p));
}

/// True while `stream` is being captured into a graph. A failing query is
/// recorded (and then answers true, so that nothing synchronises).
bool capturing(const CudaKernelTarget &t, CUstream stream, const char *call) {
  CUstreamCaptureStatus status = CU_STREAM_CAPTURE_STATUS_NONE;
  if (!succeeded(t, t.driver->cuStreamIsCapturing(stream, &status), call,
                 "cuStreamIsCapturing"))
    return true;
  return status != CU_STREAM_CAPTURE_STATUS_NONE;
}

/// The JIT error log as one line: its lines joined by "; ", at most 2000
/// characters.
std::string oneLine(const char *log) {
  std::string out;
  for (const char *c = log; *c && out.size() < 2000; ++c) {
    if (*c == '\n') {
      if (c[1])
        out += "; ";
    } else if (*c != '\r') {
      out += *c;
    }
  }
  return out;
}

} // namespace

//===----------------------------------------------------------------------===//
// The active target and the sticky error
//===----------------------------------------------------------------------===//

void cuda::setActiveCudaTarget(const CudaKernelTarget *target) {
  active = target;
}

const CudaKernelTarget *cuda::activeCudaTarget() { return active; }

void cuda::recordCudaError(const Status &error) {
  if (error.ok())
    return;
  if (!firstError)
    firstError = new Status();
  if (firstError->ok())
    *firstError = error;
}

bool cuda::hasCudaError() { return firstError && !firstError->ok(); }

Status cuda::takeCudaError() {
  if (!firstError)
    return Status::success();
  Status error = *firstError;
  *firstError = Status::success();
  return error;
}

//===----------------------------------------------------------------------===//
// The kernel ABI
//===----------------------------------------------------------------------===//

void *mgpuModuleLoad(void *data, size_t /*sizeBytes*/) {
  const CudaKernelTarget *t = targetFor("mgpuModuleLoad");
  if (!t)
    return nullptr;
  if (!data) {
    recordCudaError(makeError("mgpuModuleLoad: a null image"));
    return nullptr;
  }
  CUmodule module = nullptr;
  if (!succeeded(*t, t->driver->cuModuleLoadData(&module, data),
                 "mgpuModuleLoad", "cuModuleLoadData"))
    return nullptr;
  return module;
}

void *mgpuModuleLoadJIT(void *data, int optLevel) {
  // MLIR's lowering may pass a third argument (the PTX's size); the PTX is
  // NUL-terminated either way, and the SysV calling convention lets this
  // two-argument definition ignore it.
  const CudaKernelTarget *t = targetFor("mgpuModuleLoadJIT");
  if (!t)
    return nullptr;
  if (!data) {
    recordCudaError(makeError("mgpuModuleLoadJIT: a null PTX image"));
    return nullptr;
  }
  char log[8192] = {0};
  CUjit_option options[3] = {CU_JIT_ERROR_LOG_BUFFER,
                             CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES,
                             CU_JIT_OPTIMIZATION_LEVEL};
  // Option values travel in pointer-sized slots: the buffer, then integers.
  void *values[3] = {log, reinterpret_cast<void *>(uintptr_t(sizeof(log) - 1)),
                     reinterpret_cast<void *>(uintptr_t(unsigned(optLevel)))};
  unsigned count = optLevel >= 0 && optLevel <= 4 ? 3 : 2;
  CUmodule module = nullptr;
  CUresult result =
      t->driver->cuModuleLoadDataEx(&module, data, count, options, values);
  if (result != CUDA_SUCCESS) {
    std::string message =
        ckpt::concat("mgpuModuleLoadJIT: cuModuleLoadDataEx: ",
                     t->driver->errorText(result));
    if (log[0])
      message += ": " + oneLine(log);
    recordCudaError(Status::error(message));
    return nullptr;
  }
  return module;
}

void mgpuModuleUnload(void *module) {
  if (!module)
    return;
  const CudaKernelTarget *t = targetFor("mgpuModuleUnload");
  if (!t)
    return;
  succeeded(*t, t->driver->cuModuleUnload(static_cast<CUmodule>(module)),
            "mgpuModuleUnload", "cuModuleUnload");
}

void *mgpuModuleGetFunction(void *module, const char *name) {
  const CudaKernelTarget *t = targetFor("mgpuModuleGetFunction");
  if (!t)
    return nullptr;
  if (!module || !name) {
    recordCudaError(
        makeError("mgpuModuleGetFunction: a null ",
                  module ? "name"
                         : "module (the kernels file's global constructors "
                           "did not load it)"));
    return nullptr;
  }
  CUfunction function = nullptr;
  CUresult result = t->driver->cuModuleGetFunction(
      &function, static_cast<CUmodule>(module), name);
  if (result != CUDA_SUCCESS) {
    recordCudaError(makeError("mgpuModuleGetFunction: cuModuleGetFunction(",
                              name, "): ", t->driver->errorText(result)));
    return nullptr;
  }
  if (t->profile)
    t->profile->nameFunction(function, name);
  return function;
}

void mgpuLaunchKernel(void *function, intptr_t gridX, intptr_t gridY,
                      intptr_t gridZ, intptr_t blockX, intptr_t blockY,
                      intptr_t blockZ, int32_t smem, void *stream,
                      void **params, void **extra, size_t /*paramsCount*/) {
  const CudaKernelTarget *t = targetFor("mgpuLaunchKernel");
  if (!t)
    return;
  if (!function) {
    recordCudaError(makeError("mgpuLaunchKernel: a null function"));
    return;
  }
  // An empty grid is a loop nest with no iterations this call (the
  // compiler gives the form of an op it does not run zero iterations, e.g.
  // the expert GEMM's lane nests when it groups the rows): nothing to run.
  if (gridX == 0 || gridY == 0 || gridZ == 0)
    return;
  const intptr_t extents[6] = {gridX, gridY, gridZ, blockX, blockY, blockZ};
  for (intptr_t e : extents)
    if (e < 1 || uint64_t(e) > UINT32_MAX) {
      recordCudaError(makeError("mgpuLaunchKernel: grid (", gridX, ", ", gridY,
                                ", ", gridZ, ") or block (", blockX, ", ",
                                blockY, ", ", blockZ,
                                ") has an extent outside [1, 2^32)"));
      return;
    }
  auto fn = static_cast<CUfunction>(function);
  if (smem < 0) {
    recordCudaError(makeError("mgpuLaunchKernel: negative dynamic shared "
                              "memory (",
                              smem, " bytes)"));
    return;
  }
  if (smem > kDefaultDynamicSharedBytes) {
    // Above 48 KiB a kernel must opt in, up to the device's limit.
    if (smem > t->maxDynamicSharedBytes) {
      recordCudaError(makeError(
          "mgpuLaunchKernel: the kernel asks for ", smem,
          " bytes of dynamic shared memory; the device allows at most ",
          t->maxDynamicSharedBytes));
      return;
    }
    if (!succeeded(
            *t,
            t->driver->cuFuncSetAttribute(
                fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, smem),
            "mgpuLaunchKernel", "cuFuncSetAttribute"))
      return;
  }
  ProfiledScope profiled(*t, streamOf(*t, stream), "mgpuLaunchKernel",
                         [&] { return t->profile->functionName(fn); });
  if (!profiled.ok())
    return;
  succeeded(*t,
            t->driver->cuLaunchKernel(
                fn, unsigned(gridX), unsigned(gridY), unsigned(gridZ),
                unsigned(blockX), unsigned(blockY), unsigned(blockZ),
                unsigned(smem), streamOf(*t, stream), params, extra),
            "mgpuLaunchKernel", "cuLaunchKernel");
}

void *mgpuStreamCreate() {
  const CudaKernelTarget *t = targetFor("mgpuStreamCreate");
  return t ? t->stream : nullptr;
}

void mgpuStreamSynchronize(void *stream) {
  const CudaKernelTarget *t = targetFor("mgpuStreamSynchronize");
  if (!t)
    return;
  CUstream s = streamOf(*t, stream);
  // Inside a graph capture nothing runs yet, so there is nothing to wait
  // for (and synchronising would invalidate the capture).
  if (capturing(*t, s, "mgpuStreamSynchronize"))
    return;
  synchronize(*t, s, "mgpuStreamSynchronize");
}

void mgpuStreamDestroy(void *stream) {
  const CudaKernelTarget *t = targetFor("mgpuStreamDestroy");
  if (!t || !stream || stream == t->stream)
    return;
  succeeded(*t, t->driver->cuStreamDestroy_v2(static_cast<CUstream>(stream)),
            "mgpuStreamDestroy", "cuStreamDestroy");
}

void *mgpuMemAlloc(uint64_t sizeBytes, void *stream, bool isHostShared) {
  const CudaKernelTarget *t = targetFor("mgpuMemAlloc");
  if (!t || sizeBytes == 0)
    return nullptr;
  CUdeviceptr p = 0;
  if (isHostShared) {
    if (!succeeded(*t,
                   t->driver->cuMemAllocManaged(&p, size_t(sizeBytes),
                                                CU_MEM_ATTACH_GLOBAL),
                   "mgpuMemAlloc", "cuMemAllocManaged"))
      return nullptr;
    std::lock_guard<std::mutex> lock(shared().managedMutex);
    shared().managed.insert(p);
    return hostView(p);
  }
  if (!succeeded(*t,
                 t->driver->cuMemAllocAsync(&p, size_t(sizeBytes),
                                            streamOf(*t, stream)),
                 "mgpuMemAlloc", "cuMemAllocAsync"))
    return nullptr;
  return hostView(p);
}

void mgpuMemFree(void *ptr, void *stream) {
  if (!ptr)
    return;
  const CudaKernelTarget *t = targetFor("mgpuMemFree");
  if (!t)
    return;
  CUdeviceptr p = devicePtr(ptr);
  CUstream s = streamOf(*t, stream);
  bool isManaged;
  {
    std::lock_guard<std::mutex> lock(shared().managedMutex);
    isManaged = shared().managed.erase(p) > 0;
  }
  if (!isManaged) {
    succeeded(*t, t->driver->cuMemFreeAsync(p, s), "mgpuMemFree",
              "cuMemFreeAsync");
    return;
  }
  // cuMemFree is not stream-ordered: wait for the work that may use it.
  if (capturing(*t, s, "mgpuMemFree")) {
    recordCudaError(makeError("mgpuMemFree: managed memory cannot be freed "
                              "while a CUDA graph is being captured"));
    return;
  }
  if (synchronize(*t, s, "mgpuMemFree"))
    succeeded(*t, t->driver->cuMemFree_v2(p), "mgpuMemFree", "cuMemFree");
}

void mgpuMemcpy(void *dst, void *src, size_t sizeBytes, void *stream) {
  const CudaKernelTarget *t = targetFor("mgpuMemcpy");
  if (!t || sizeBytes == 0)
    return;
  succeeded(*t,
            t->driver->cuMemcpyAsync(devicePtr(dst), devicePtr(src), sizeBytes,
                                     streamOf(*t, stream)),
            "mgpuMemcpy", "cuMemcpyAsync");
}

void mgpuMemset32(void *dst, unsigned int value, size_t count, void *stream) {
  const CudaKernelTarget *t = targetFor("mgpuMemset32");
  if (!t || count == 0)
    return;
  succeeded(*t,
            t->driver->cuMemsetD32Async(devicePtr(dst), value, count,
                                        streamOf(*t, stream)),
            "mgpuMemset32", "cuMemsetD32Async");
}

void mgpuMemset16(void *dst, unsigned short value, size_t count, void *stream) {
  const CudaKernelTarget *t = targetFor("mgpuMemset16");
  if (!t || count == 0)
    return;
  succeeded(*t,
            t->driver->cuMemsetD16Async(devicePtr(dst), value, count,
                                        streamOf(*t, stream)),
            "mgpuMemset16", "cuMemsetD16Async");
}

//===----------------------------------------------------------------------===//
// The GEMM
//===----------------------------------------------------------------------===//
//
// cuBLAS is column-major. A row-major matrix R [r, c] (leading dimension c)
// is, read column-major, its transpose: a [c, r] matrix with leading
// dimension c. So the row-major y = x * w^T is, column-major, its transpose
//
//   y^T [n, m] = w [n, k] * x^T [k, m]
//
// where the buffers, read column-major, are y^T (ld n), x^T [k, m] (ld k)
// and w^T [k, n] (ld k): A = w^T taken transposed (CUBLAS_OP_T, lda k),
// B = x^T as it is (CUBLAS_OP_N, ldb k), C = y^T (ldc n), and cuBLAS's
// (m, n, k) are our (n, m, k).

void jamba_rt_cuda_gemm(float *y, const void *x, const void *w, int64_t m,
                        int64_t n, int64_t k, int32_t dtype) {
  const char *call = "jamba_rt_cuda_gemm";
  const CudaKernelTarget *t = targetFor(call);
  if (!t)
    return;
  const std::pair<const char *, int64_t> dims[3] = {
      {"m", m}, {"n", n}, {"k", k}};
  for (const auto &[name, value] : dims)
    if (value < 1 || value > INT32_MAX) {
      recordCudaError(makeError(call, ": ", name, " = ", value,
                                " is outside [1, ", INT32_MAX,
                                "] (cuBLAS takes int dimensions)"));
      return;
    }
  if (dtype != kGemmDtypeF32 && dtype != kGemmDtypeBF16) {
    recordCudaError(
        makeError(call, ": dtype ", dtype, " is neither 0 (f32) nor 1 (bf16)"));
    return;
  }
  if (!y || !x || !w) {
    recordCudaError(makeError(call, ": a null ",
                              !y   ? "y"
                              : !x ? "x"
                                   : "w",
                              " pointer"));
    return;
  }
  if (!t->blas) {
    recordCudaError(
        makeError(call, ": the active CUDA target has no cuBLAS handle"));
    return;
  }
  StatusOr<cublasHandle_t> handle = t->blas->get();
  if (!handle.ok()) {
    recordCudaError(makeError(call, ": ", handle.status().message()));
    return;
  }
  const CublasLibrary &l = *t->blas->library();
  cudaDataType inputType = dtype == kGemmDtypeF32 ? CUDA_R_32F : CUDA_R_16BF;
  // Host scalars (the default pointer mode): a graph captures their values.
  const float alpha = 1.0f, beta = 0.0f;
  ProfiledScope profiled(*t, t->stream, call, [&] {
    return std::string(dtype == kGemmDtypeF32 ? "cublas_gemm_f32 "
                                              : "cublas_gemm_bf16 ") +
           std::to_string(m) + "x" + std::to_string(n) + "x" +
           std::to_string(k);
  });
  if (!profiled.ok())
    return;
  cublasStatus_t status = l.cublasGemmEx(
      *handle, CUBLAS_OP_T, CUBLAS_OP_N, int(n), int(m), int(k), &alpha, w,
      inputType, int(k), x, inputType, int(k), &beta, y, CUDA_R_32F, int(n),
      CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  if (status != CUBLAS_STATUS_SUCCESS)
    recordCudaError(makeError(call, ": cublasGemmEx: ", l.statusText(status),
                              " (m ", m, ", n ", n, ", k ", k, ", ",
                              dtype == kGemmDtypeF32 ? "f32" : "bf16", ")"));
}

namespace {

/// The address of element [0, 0] of a dense row-major `m`, or null after
/// recording why it is not one.
const void *denseStart(const char *call, const char *name,
                       const JambaMemRef2D &m, size_t elementBytes) {
  if (m.strides[1] != 1 || m.strides[0] != m.sizes[1]) {
    recordCudaError(makeError(call, ": ", name, " [", m.sizes[0], ", ",
                              m.sizes[1], "] has strides [", m.strides[0], ", ",
                              m.strides[1], "], not a dense row-major matrix"));
    return nullptr;
  }
  return static_cast<const char *>(m.aligned) + m.offset * elementBytes;
}

void gemmFromDescriptors(const char *call, JambaMemRef2D *y, JambaMemRef2D *x,
                         JambaMemRef2D *w, int32_t dtype, size_t inputBytes) {
  if (!y || !x || !w) {
    recordCudaError(makeError(call, ": a null descriptor"));
    return;
  }
  const int64_t m = x->sizes[0], k = x->sizes[1], n = w->sizes[0];
  if (w->sizes[1] != k || y->sizes[0] != m || y->sizes[1] != n) {
    recordCudaError(makeError(call, ": shapes y [", y->sizes[0], ", ",
                              y->sizes[1], "], x [", m, ", ", k, "], w [", n,
                              ", ", w->sizes[1], "] do not make y = x * w^T"));
    return;
  }
  const void *yStart = denseStart(call, "y", *y, sizeof(float));
  const void *xStart = yStart ? denseStart(call, "x", *x, inputBytes) : nullptr;
  const void *wStart = xStart ? denseStart(call, "w", *w, inputBytes) : nullptr;
  if (!wStart)
    return;
  jamba_rt_cuda_gemm(static_cast<float *>(const_cast<void *>(yStart)), xStart,
                     wStart, m, n, k, dtype);
}

} // namespace

void _mlir_ciface_jamba_rt_cuda_gemm_f32(JambaMemRef2D *y, JambaMemRef2D *x,
                                         JambaMemRef2D *w) {
  gemmFromDescriptors("jamba_rt_cuda_gemm_f32", y, x, w, kGemmDtypeF32,
                      sizeof(float));
}

void _mlir_ciface_jamba_rt_cuda_gemm_bf16(JambaMemRef2D *y, JambaMemRef2D *x,
                                          JambaMemRef2D *w) {
  gemmFromDescriptors("jamba_rt_cuda_gemm_bf16", y, x, w, kGemmDtypeBF16,
                      sizeof(uint16_t));
}

//===----------------------------------------------------------------------===//
// The all-reduces
//===----------------------------------------------------------------------===//

namespace {

/// Both all-reduces: the arguments, then ncclAllReduce on the session's
/// stream, on the communicator of the group (made on first use). On a stream
/// being captured, NCCL (2.9 and later) records the collective into the
/// graph like a kernel launch; the executor turns graphs off for an older
/// NCCL.
void allReduce(const char *call, float *data, int64_t count,
               int64_t groupSize) {
  const CudaKernelTarget *t = targetFor(call);
  if (!t)
    return;
  if (count < 0) {
    recordCudaError(makeError(call, ": a negative count (", count, ")"));
    return;
  }
  if (count > 0 && !data) {
    recordCudaError(makeError(call, ": ", count, " floats at a null address"));
    return;
  }
  const int64_t ranks = t->nccl ? t->nccl->size() : 1;
  if (groupSize < 0 || (groupSize > 0 && ranks % groupSize != 0)) {
    recordCudaError(makeError(call, ": groups of ", groupSize,
                              " ranks do not divide the ", ranks,
                              ranks == 1 ? " rank" : " ranks"));
    return;
  }
  const int64_t group = groupSize == 0 ? ranks : groupSize;
  // One rank (a single-rank session, or groups of one): the sum is the
  // data. No count: nothing to sum (every rank passes the same count).
  if (group == 1 || count == 0)
    return;
  NcclRanks &nccl = *t->nccl;
  StatusOr<ncclComm_t> comm = nccl.comm(group);
  if (!comm.ok()) {
    recordCudaError(makeError(call, ": ", comm.status().message()));
    return;
  }
  const NcclLibrary &l = nccl.library();
  ProfiledScope profiled(*t, t->stream, call,
                         [] { return std::string("nccl_all_reduce"); });
  if (!profiled.ok())
    return;
  Status done =
      nccl.complete(group,
                    l.ncclAllReduce(data, data, size_t(count), ncclFloat32,
                                    ncclSum, *comm, t->stream),
                    "ncclAllReduce");
  if (!done.ok())
    recordCudaError(makeError(call, ": ", done.message(), " (", count,
                              " floats over ", group, " of ", ranks,
                              " ranks)"));
}

} // namespace

void jamba_rt_cuda_all_reduce_f32(float *data, int64_t count) {
  allReduce("jamba_rt_cuda_all_reduce_f32", data, count, 0);
}

void jamba_rt_cuda_all_reduce_group_f32(float *data, int64_t count,
                                        int64_t groupSize) {
  allReduce("jamba_rt_cuda_all_reduce_group_f32", data, count, groupSize);
}

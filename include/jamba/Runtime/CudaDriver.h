//===- CudaDriver.h - The CUDA driver API, through dlopen -------*- C++ -*-===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// The runtime reaches the CUDA driver only through dlopen("libcuda.so.1") and
// dlsym (DESIGN.md section 3, "Builds and runs without a GPU"): no cuda.h, no
// link to libcuda or the CUDA runtime. One binary therefore starts on every
// machine, and a machine without a driver or a device gets an error, not a
// missing-library failure at start-up:
//
//   no CUDA driver: dlopen(libcuda.so.1): libcuda.so.1: cannot open shared
//   object file: No such file or directory
//   no CUDA device: cuInit: CUDA_ERROR_NO_DEVICE (no CUDA-capable device is
//   detected)
//
// The handful of driver types and constants the runtime needs are declared
// here with the values of the driver's public ABI (cuda.h), which NVIDIA
// keeps stable across releases; the entry points are the versioned names the
// driver exports (cuMemAlloc_v2 and so on). No MLIR or LLVM header.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_RUNTIME_CUDADRIVER_H
#define JAMBA_RUNTIME_CUDADRIVER_H

#include "jamba/Checkpoint/Status.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace jamba {
namespace rt {
namespace cuda {

using ckpt::Status;
using ckpt::StatusOr;

//===----------------------------------------------------------------------===//
// The driver's types and constants (cuda.h values)
//===----------------------------------------------------------------------===//

using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;
using CUcontext = struct CUctx_st *;
using CUmodule = struct CUmod_st *;
using CUfunction = struct CUfunc_st *;
using CUstream = struct CUstream_st *;
using CUgraph = struct CUgraph_st *;
using CUgraphExec = struct CUgraphExec_st *;
using CUevent = struct CUevent_st *;
using CUmemoryPool = struct CUmemPoolHandle_st *;
/// CUjit_option, CUstreamCaptureMode, CUstreamCaptureStatus,
/// CUdevice_attribute and CUfunction_attribute are C enums: int-sized.
using CUjit_option = int;
using CUstreamCaptureMode = int;
using CUstreamCaptureStatus = int;
using CUdevice_attribute = int;
using CUfunction_attribute = int;
using CUmemPool_attribute = int;

constexpr CUresult CUDA_SUCCESS = 0;
constexpr CUresult CUDA_ERROR_NO_DEVICE = 100;
/// cuStreamQuery's answer while work queued on the stream is still running.
constexpr CUresult CUDA_ERROR_NOT_READY = 600;

constexpr CUjit_option CU_JIT_ERROR_LOG_BUFFER = 5;
constexpr CUjit_option CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6;
constexpr CUjit_option CU_JIT_OPTIMIZATION_LEVEL = 7;

/// Stream capture: THREAD_LOCAL refuses (and so reports) calls that are not
/// safe during a capture made from this thread, such as a synchronous
/// allocation. A thread whose own mode is RELAXED
/// (cuThreadExchangeStreamCaptureMode) may make them: a library's lazy
/// initialisation does so (Cublas.h).
constexpr CUstreamCaptureMode CU_STREAM_CAPTURE_MODE_GLOBAL = 0;
constexpr CUstreamCaptureMode CU_STREAM_CAPTURE_MODE_THREAD_LOCAL = 1;
constexpr CUstreamCaptureMode CU_STREAM_CAPTURE_MODE_RELAXED = 2;
constexpr CUstreamCaptureStatus CU_STREAM_CAPTURE_STATUS_NONE = 0;
constexpr CUstreamCaptureStatus CU_STREAM_CAPTURE_STATUS_ACTIVE = 1;
constexpr CUstreamCaptureStatus CU_STREAM_CAPTURE_STATUS_INVALIDATED = 2;

/// cuStreamCreate: no implicit synchronization with the legacy stream.
constexpr unsigned CU_STREAM_NON_BLOCKING = 1;
/// cuMemAllocManaged: accessible from any stream.
constexpr unsigned CU_MEM_ATTACH_GLOBAL = 1;
/// cuGraphInstantiateWithFlags: free a graph's own allocations before it is
/// launched again.
constexpr unsigned long long CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH =
    1;

constexpr CUdevice_attribute CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
constexpr CUdevice_attribute CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;
constexpr CUdevice_attribute
    CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97;
constexpr CUfunction_attribute CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES =
    8;

/// cuMemPoolSetAttribute: the bytes a pool keeps reserved (a cuuint64_t)
/// rather than give back to the OS at the next synchronization.
constexpr CUmemPool_attribute CU_MEMPOOL_ATTR_RELEASE_THRESHOLD = 4;

/// Dynamic shared memory a kernel may use without opting in (48 KiB).
constexpr int32_t kDefaultDynamicSharedBytes = 48 * 1024;

//===----------------------------------------------------------------------===//
// The driver's entry points
//===----------------------------------------------------------------------===//

/// The driver API functions the runtime calls, resolved once from the
/// library. Every member is non-null in a loaded driver.
struct CudaDriver {
  /// The library name it was loaded from ("libcuda.so.1").
  std::string library;

  CUresult (*cuInit)(unsigned flags) = nullptr;
  CUresult (*cuGetErrorName)(CUresult error, const char **name) = nullptr;
  CUresult (*cuGetErrorString)(CUresult error, const char **text) = nullptr;
  CUresult (*cuDriverGetVersion)(int *version) = nullptr;

  CUresult (*cuDeviceGetCount)(int *count) = nullptr;
  CUresult (*cuDeviceGet)(CUdevice *device, int ordinal) = nullptr;
  CUresult (*cuDeviceGetName)(char *name, int length,
                              CUdevice device) = nullptr;
  CUresult (*cuDeviceTotalMem_v2)(size_t *bytes, CUdevice device) = nullptr;
  CUresult (*cuDeviceGetAttribute)(int *value, CUdevice_attribute attribute,
                                   CUdevice device) = nullptr;

  CUresult (*cuDevicePrimaryCtxRetain)(CUcontext *context,
                                       CUdevice device) = nullptr;
  CUresult (*cuDevicePrimaryCtxRelease_v2)(CUdevice device) = nullptr;
  CUresult (*cuCtxSetCurrent)(CUcontext context) = nullptr;
  CUresult (*cuMemGetInfo_v2)(size_t *free, size_t *total) = nullptr;

  CUresult (*cuStreamCreate)(CUstream *stream, unsigned flags) = nullptr;
  CUresult (*cuStreamDestroy_v2)(CUstream stream) = nullptr;
  CUresult (*cuStreamSynchronize)(CUstream stream) = nullptr;
  /// CUDA_SUCCESS when everything queued on the stream has finished,
  /// CUDA_ERROR_NOT_READY while it runs.
  CUresult (*cuStreamQuery)(CUstream stream) = nullptr;
  CUresult (*cuStreamBeginCapture_v2)(CUstream stream,
                                      CUstreamCaptureMode mode) = nullptr;
  CUresult (*cuStreamEndCapture)(CUstream stream, CUgraph *graph) = nullptr;
  CUresult (*cuStreamIsCapturing)(CUstream stream,
                                  CUstreamCaptureStatus *status) = nullptr;
  CUresult (*cuThreadExchangeStreamCaptureMode)(CUstreamCaptureMode *mode) =
      nullptr;

  CUresult (*cuGraphInstantiateWithFlags)(CUgraphExec *exec, CUgraph graph,
                                          unsigned long long flags) = nullptr;
  CUresult (*cuGraphLaunch)(CUgraphExec exec, CUstream stream) = nullptr;
  CUresult (*cuGraphDestroy)(CUgraph graph) = nullptr;
  CUresult (*cuGraphExecDestroy)(CUgraphExec exec) = nullptr;

  CUresult (*cuMemAlloc_v2)(CUdeviceptr *ptr, size_t bytes) = nullptr;
  CUresult (*cuMemFree_v2)(CUdeviceptr ptr) = nullptr;
  CUresult (*cuMemAllocAsync)(CUdeviceptr *ptr, size_t bytes,
                              CUstream stream) = nullptr;
  CUresult (*cuMemFreeAsync)(CUdeviceptr ptr, CUstream stream) = nullptr;
  CUresult (*cuMemAllocManaged)(CUdeviceptr *ptr, size_t bytes,
                                unsigned flags) = nullptr;
  /// The pool cuMemAllocAsync takes from (the device's default one).
  CUresult (*cuDeviceGetDefaultMemPool)(CUmemoryPool *pool,
                                        CUdevice device) = nullptr;
  CUresult (*cuMemPoolSetAttribute)(CUmemoryPool pool,
                                    CUmemPool_attribute attribute,
                                    void *value) = nullptr;
  CUresult (*cuMemPoolTrimTo)(CUmemoryPool pool, size_t keepBytes) = nullptr;
  /// Page-locks host memory, so that copies to and from it are direct DMA
  /// (optional: null when the driver lacks them; the copies then go
  /// through the driver's staging buffers).
  CUresult (*cuMemHostRegister)(void *ptr, size_t bytes,
                                unsigned flags) = nullptr;
  CUresult (*cuMemHostUnregister)(void *ptr) = nullptr;
  CUresult (*cuMemcpyHtoDAsync_v2)(CUdeviceptr dst, const void *src,
                                   size_t bytes, CUstream stream) = nullptr;
  CUresult (*cuMemcpyDtoHAsync_v2)(void *dst, CUdeviceptr src, size_t bytes,
                                   CUstream stream) = nullptr;
  CUresult (*cuMemcpyAsync)(CUdeviceptr dst, CUdeviceptr src, size_t bytes,
                            CUstream stream) = nullptr;
  CUresult (*cuMemsetD8Async)(CUdeviceptr dst, unsigned char value,
                              size_t count, CUstream stream) = nullptr;
  CUresult (*cuMemsetD16Async)(CUdeviceptr dst, unsigned short value,
                               size_t count, CUstream stream) = nullptr;
  CUresult (*cuMemsetD32Async)(CUdeviceptr dst, unsigned value, size_t count,
                               CUstream stream) = nullptr;

  CUresult (*cuModuleLoadData)(CUmodule *module, const void *image) = nullptr;
  CUresult (*cuModuleLoadDataEx)(CUmodule *module, const void *image,
                                 unsigned numOptions, CUjit_option *options,
                                 void **optionValues) = nullptr;
  CUresult (*cuModuleUnload)(CUmodule module) = nullptr;
  CUresult (*cuModuleGetFunction)(CUfunction *function, CUmodule module,
                                  const char *name) = nullptr;
  CUresult (*cuFuncSetAttribute)(CUfunction function,
                                 CUfunction_attribute attribute,
                                 int value) = nullptr;
  CUresult (*cuLaunchKernel)(CUfunction function, unsigned gridX,
                             unsigned gridY, unsigned gridZ, unsigned blockX,
                             unsigned blockY, unsigned blockZ,
                             unsigned sharedBytes, CUstream stream,
                             void **params, void **extra) = nullptr;

  // Events time the kernels when a session profiles them (CudaProfile.h).
  CUresult (*cuEventCreate)(CUevent *event, unsigned flags) = nullptr;
  CUresult (*cuEventRecord)(CUevent event, CUstream stream) = nullptr;
  CUresult (*cuEventElapsedTime)(float *milliseconds, CUevent start,
                                 CUevent end) = nullptr;
  CUresult (*cuEventDestroy_v2)(CUevent event) = nullptr;

  /// "NAME (description)" for `error`, e.g. "CUDA_ERROR_NO_DEVICE (no
  /// CUDA-capable device is detected)"; "CUDA error N" when the driver does
  /// not know the code.
  std::string errorText(CUresult error) const;

  /// Success, or "`call`: NAME (description)".
  Status check(CUresult result, const char *call) const;
};

/// The library loadCudaDriver() opens: "libcuda.so.1" unless
/// setCudaDriverLibrary() changed it.
std::string cudaDriverLibrary();

/// Makes loadCudaDriver() open `library` instead of "libcuda.so.1" (an empty
/// name restores the default). For tests, which substitute a fake driver,
/// and for unusual installs; a driver already loaded from another name stays
/// loaded (sessions may use it).
void setCudaDriverLibrary(const std::string &library);

/// The process-wide driver from cudaDriverLibrary(): dlopen()ed, every entry
/// point resolved and cuInit(0) called, once per library name; later calls
/// return the same driver. Fails with "no CUDA driver: dlopen(LIB): ..." when
/// the library cannot be opened, "no CUDA driver: LIB lacks SYMBOL ..." when
/// it is too old, and "no CUDA device: cuInit: ..." when cuInit fails (a
/// machine with a driver but no device, or the toolkit's stub library). A
/// failure is not remembered: the next call tries again.
StatusOr<const CudaDriver *> loadCudaDriver();
/// The same for the named library (a test names one that does not exist).
StatusOr<const CudaDriver *> loadCudaDriver(const std::string &library);

/// Device `ordinal`'s handle after checking that it exists: fails with "no
/// CUDA device: cuDeviceGetCount found none" on a machine with none, and
/// "CUDA device N does not exist: this machine has C (0..C-1)" for an
/// ordinal out of range.
StatusOr<CUdevice> openCudaDevice(const CudaDriver &driver, int ordinal);

/// "NVIDIA H200 (sm_90, 139.8 GiB)" for messages and notes.
std::string describeCudaDevice(const CudaDriver &driver, CUdevice device);

/// The device that rank `rank` of a run with one process per GPU uses unless
/// told otherwise: `localRank` (the launcher's rank among the processes on
/// this machine; -1: unknown) when known, else `rank` modulo `deviceCount`
/// when that is positive, else 0. A local rank at or above the machine's
/// device count is kept, so that opening it says the device does not exist
/// (two ranks cannot share a GPU in one NCCL communicator).
int cudaDeviceForRank(int64_t localRank, int64_t rank, int deviceCount);

/// cudaDeviceForRank with the launcher's local rank (mpiLaunchLocalRank(),
/// Communicator.h) and, when it does not say, the driver's device count
/// (0 without a driver or device: opening device 0 then says why).
int defaultCudaDevice(int64_t rank);

} // namespace cuda
} // namespace rt
} // namespace jamba

#endif // JAMBA_RUNTIME_CUDADRIVER_H

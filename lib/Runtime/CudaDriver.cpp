//===- CudaDriver.cpp - The CUDA driver API, reached through dlopen -------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// Loads the driver library once per name, resolves every entry point the
// runtime uses and calls cuInit; describes devices and errors, and picks a
// GPU rank's default device. Nothing here
// includes cuda.h or links to libcuda (CudaDriver.h says why).
//
//===----------------------------------------------------------------------===//

#include "jamba/Runtime/CudaDriver.h"

#include "DynamicLibrary.h"
#include "jamba/Runtime/Communicator.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>

using namespace jamba;
using namespace jamba::rt;
using namespace jamba::rt::cuda;
using ckpt::makeError;

namespace {

/// Fills every entry point from the open library and calls cuInit, or says
/// what is missing.
StatusOr<std::unique_ptr<CudaDriver>> resolveDriver(LibrarySymbols &symbols) {
  auto d = std::make_unique<CudaDriver>();
  d->library = symbols.library();
#define JAMBA_CUDA_RESOLVE(fn) symbols.require(#fn, d->fn);
  JAMBA_CUDA_RESOLVE(cuInit)
  JAMBA_CUDA_RESOLVE(cuGetErrorName)
  JAMBA_CUDA_RESOLVE(cuGetErrorString)
  JAMBA_CUDA_RESOLVE(cuDriverGetVersion)
  JAMBA_CUDA_RESOLVE(cuDeviceGetCount)
  JAMBA_CUDA_RESOLVE(cuDeviceGet)
  JAMBA_CUDA_RESOLVE(cuDeviceGetName)
  JAMBA_CUDA_RESOLVE(cuDeviceTotalMem_v2)
  JAMBA_CUDA_RESOLVE(cuDeviceGetAttribute)
  JAMBA_CUDA_RESOLVE(cuDevicePrimaryCtxRetain)
  JAMBA_CUDA_RESOLVE(cuDevicePrimaryCtxRelease_v2)
  JAMBA_CUDA_RESOLVE(cuCtxSetCurrent)
  JAMBA_CUDA_RESOLVE(cuMemGetInfo_v2)
  JAMBA_CUDA_RESOLVE(cuStreamCreate)
  JAMBA_CUDA_RESOLVE(cuStreamDestroy_v2)
  JAMBA_CUDA_RESOLVE(cuStreamSynchronize)
  JAMBA_CUDA_RESOLVE(cuStreamQuery)
  JAMBA_CUDA_RESOLVE(cuStreamBeginCapture_v2)
  JAMBA_CUDA_RESOLVE(cuStreamEndCapture)
  JAMBA_CUDA_RESOLVE(cuStreamIsCapturing)
  JAMBA_CUDA_RESOLVE(cuThreadExchangeStreamCaptureMode)
  JAMBA_CUDA_RESOLVE(cuGraphInstantiateWithFlags)
  JAMBA_CUDA_RESOLVE(cuGraphLaunch)
  JAMBA_CUDA_RESOLVE(cuGraphDestroy)
  JAMBA_CUDA_RESOLVE(cuGraphExecDestroy)
  JAMBA_CUDA_RESOLVE(cuMemAlloc_v2)
  JAMBA_CUDA_RESOLVE(cuMemFree_v2)
  JAMBA_CUDA_RESOLVE(cuMemAllocAsync)
  JAMBA_CUDA_RESOLVE(cuMemFreeAsync)
  JAMBA_CUDA_RESOLVE(cuMemAllocManaged)
  JAMBA_CUDA_RESOLVE(cuDeviceGetDefaultMemPool)
  JAMBA_CUDA_RESOLVE(cuMemPoolSetAttribute)
  JAMBA_CUDA_RESOLVE(cuMemPoolTrimTo)
  JAMBA_CUDA_RESOLVE(cuMemcpyHtoDAsync_v2)
  JAMBA_CUDA_RESOLVE(cuMemcpyDtoHAsync_v2)
  JAMBA_CUDA_RESOLVE(cuMemcpyAsync)
  JAMBA_CUDA_RESOLVE(cuMemsetD8Async)
  JAMBA_CUDA_RESOLVE(cuMemsetD16Async)
  JAMBA_CUDA_RESOLVE(cuMemsetD32Async)
  JAMBA_CUDA_RESOLVE(cuModuleLoadData)
  JAMBA_CUDA_RESOLVE(cuModuleLoadDataEx)
  JAMBA_CUDA_RESOLVE(cuModuleUnload)
  JAMBA_CUDA_RESOLVE(cuModuleGetFunction)
  JAMBA_CUDA_RESOLVE(cuFuncSetAttribute)
  JAMBA_CUDA_RESOLVE(cuLaunchKernel)
  JAMBA_CUDA_RESOLVE(cuEventCreate)
  JAMBA_CUDA_RESOLVE(cuEventRecord)
  // CUDA 12.8 added cuEventElapsedTime_v2 (the same signature); cuda.h 13
  // maps the name to it, older drivers have only the first.
  if (!symbols.optional("cuEventElapsedTime_v2", d->cuEventElapsedTime))
    JAMBA_CUDA_RESOLVE(cuEventElapsedTime)
  JAMBA_CUDA_RESOLVE(cuEventDestroy_v2)
  // Both or neither (see CudaSession::pinHost).
  if (!symbols.optional("cuMemHostRegister_v2", d->cuMemHostRegister) ||
      !symbols.optional("cuMemHostUnregister", d->cuMemHostUnregister))
    d->cuMemHostRegister = nullptr, d->cuMemHostUnregister = nullptr;
#undef JAMBA_CUDA_RESOLVE
  JAMBA_CKPT_RETURN_IF_ERROR(
      symbols.checkRequired("(a driver older than CUDA 11.4?)"));
  // The library stays open for the life of the process (see loader), and
  // also when cuInit fails: the next attempt gets the same handle.
  Status init = d->check(d->cuInit(0), "cuInit");
  if (!init.ok())
    return makeError("no CUDA device: ", init.message());
  return d;
}

/// Never destroyed: loaded drivers live as long as the process, past its
/// static destructors, since a session or a kernel's mgpu* call may use one
/// at any time, and libcuda is not meant to be unloaded.
LibraryLoader<CudaDriver> &loader() {
  static auto *drivers = new LibraryLoader<CudaDriver>(
      "CUDA driver", {"libcuda.so.1"}, resolveDriver);
  return *drivers;
}

} // namespace

std::string CudaDriver::errorText(CUresult error) const {
  const char *name = nullptr, *text = nullptr;
  if (cuGetErrorName(error, &name) != CUDA_SUCCESS || !name)
    return ckpt::concat("CUDA error ", error);
  if (cuGetErrorString(error, &text) != CUDA_SUCCESS || !text)
    return name;
  return ckpt::concat(name, " (", text, ")");
}

Status CudaDriver::check(CUresult result, const char *call) const {
  if (result == CUDA_SUCCESS)
    return Status::success();
  return makeError(call, ": ", errorText(result));
}

std::string cuda::cudaDriverLibrary() { return loader().libraries().front(); }

void cuda::setCudaDriverLibrary(const std::string &library) {
  loader().setLibrary(library);
}

StatusOr<const CudaDriver *> cuda::loadCudaDriver() {
  return loadCudaDriver(cudaDriverLibrary());
}

StatusOr<const CudaDriver *> cuda::loadCudaDriver(const std::string &library) {
  return loader().load(library);
}

StatusOr<CUdevice> cuda::openCudaDevice(const CudaDriver &driver, int ordinal) {
  int count = 0;
  Status s = driver.check(driver.cuDeviceGetCount(&count), "cuDeviceGetCount");
  if (!s.ok())
    return makeError("no CUDA device: ", s.message());
  if (count <= 0)
    return makeError("no CUDA device: cuDeviceGetCount found none");
  if (ordinal < 0 || ordinal >= count)
    return makeError("CUDA device ", ordinal,
                     " does not exist: this machine has ", count, " (0..",
                     count - 1, ")");
  CUdevice device = 0;
  JAMBA_CKPT_RETURN_IF_ERROR(
      driver.check(driver.cuDeviceGet(&device, ordinal), "cuDeviceGet"));
  return device;
}

std::string cuda::describeCudaDevice(const CudaDriver &driver,
                                     CUdevice device) {
  // A description for messages: a query that fails leaves its part out
  // rather than failing the message.
  char name[256] = {0};
  if (driver.cuDeviceGetName(name, int(sizeof(name)) - 1, device) !=
          CUDA_SUCCESS ||
      !name[0])
    std::snprintf(name, sizeof(name), "CUDA device %d", device);
  std::string out = name;
  int major = 0, minor = 0;
  if (driver.cuDeviceGetAttribute(&major,
                                  CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                                  device) == CUDA_SUCCESS &&
      driver.cuDeviceGetAttribute(&minor,
                                  CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
                                  device) == CUDA_SUCCESS)
    out += ckpt::concat(" (sm_", major, minor);
  else
    out += " (sm_?";
  size_t total = 0;
  if (driver.cuDeviceTotalMem_v2(&total, device) == CUDA_SUCCESS) {
    char memory[64];
    std::snprintf(memory, sizeof(memory), ", %.1f GiB",
                  double(total) / double(uint64_t(1) << 30));
    out += memory;
  }
  return out + ")";
}

int cuda::cudaDeviceForRank(int64_t localRank, int64_t rank, int deviceCount) {
  if (localRank >= 0)
    return int(std::min<int64_t>(localRank, INT32_MAX));
  if (deviceCount > 0 && rank >= 0)
    return int(rank % deviceCount);
  return 0;
}

int cuda::defaultCudaDevice(int64_t rank) {
  int64_t localRank = mpiLaunchLocalRank();
  int count = 0;
  if (localRank < 0) {
    StatusOr<const CudaDriver *> driver = loadCudaDriver();
    if (!driver.ok() || (*driver)->cuDeviceGetCount(&count) != CUDA_SUCCESS)
      count = 0;
  }
  return cudaDeviceForRank(localRank, rank, count);
}

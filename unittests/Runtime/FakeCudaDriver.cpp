//===- FakeCudaDriver.cpp - A fake CUDA driver for the runtime tests ------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// Test code: a shared object exporting the CUDA driver entry points the
// runtime resolves (CudaDriver.cpp), implemented over host memory, and (with
// FakeCublas.cpp and FakeNccl.cpp) the cuBLAS and NCCL ones. FakeCuda.h says
// what it models. The signatures are the runtime's declarations (CudaDriver.h),
// so this checks the runtime's logic, not its declarations of the real driver's
// ABI.
//
//===----------------------------------------------------------------------===//

#include "FakeCuda.h"

#include "jamba/Runtime/CudaDriver.h"

#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <thread>
#include <vector>

using namespace jamba::rt::cuda;
using jamba::rt::testing::FakeCudaControl;
using jamba::rt::testing::FakeKernel;
using jamba::rt::testing::FakeModuleImage;
using jamba::rt::testing::kFakeModuleMagic;

namespace {

constexpr CUresult kInvalidValue = 1, kNotInitialized = 3, kInvalidDevice = 101,
                   kInvalidImage = 200, kInvalidPtx = 218, kNotFound = 500,
                   kIllegalAddress = 700, kNotSupported = 801,
                   kCaptureUnsupported = 900, kCaptureInvalidated = 901,
                   kNotReady = 600, kLaunchTimeout = 702,
                   kHostMemoryAlreadyRegistered = 712,
                   kHostMemoryNotRegistered = 713;

FakeCudaControl control;
bool initialised = false;
/// Page-locked host ranges: start -> bytes.
std::map<uintptr_t, size_t> pinnedRanges;

/// Whether [p, p + bytes) lies in one registered range.
bool inPinnedRange(const void *p, size_t bytes) {
  uintptr_t at = reinterpret_cast<uintptr_t>(p);
  auto it = pinnedRanges.upper_bound(at);
  if (it == pinnedRanges.begin())
    return false;
  --it;
  return at + bytes <= it->first + it->second;
}

struct Op {
  std::function<void()> run;
};

struct FakeGraph {
  std::vector<Op> ops;
};

struct FakeStream {
  bool capturing = false;
  bool invalidated = false;
  CUstreamCaptureMode mode = CU_STREAM_CAPTURE_MODE_GLOBAL;
  std::vector<Op> captured;
  /// The thread that began the capture.
  std::thread::id captureThread;
  /// While positive, the stream is stuck (a collective waiting for a peer,
  /// fake::blockStream): work queued on it is held, not run.
  int blockers = 0;
  std::vector<Op> held;
};

std::map<CUdeviceptr, size_t> allocations;
/// The streams being captured.
std::set<FakeStream *> capturingStreams;
/// The calling thread's capture interaction mode
/// (cuThreadExchangeStreamCaptureMode).
thread_local CUstreamCaptureMode threadMode = CU_STREAM_CAPTURE_MODE_GLOBAL;
/// The calling thread's current context (cuCtxSetCurrent).
thread_local CUcontext currentContext = nullptr;

/// Runs `op` now, or records it when `stream` is being captured.
CUresult enqueue(CUstream stream, std::function<void()> op) {
  auto *s = reinterpret_cast<FakeStream *>(stream);
  if (s && s->capturing) {
    s->captured.push_back({std::move(op)});
    return CUDA_SUCCESS;
  }
  if (s && (s->blockers > 0 || !s->held.empty())) {
    s->held.push_back({std::move(op)});
    return CUDA_SUCCESS;
  }
  op();
  return CUDA_SUCCESS;
}

/// Runs the work a stream held once nothing blocks it any more.
void drain(FakeStream *s) {
  while (s->blockers == 0 && !s->held.empty()) {
    Op op = std::move(s->held.front());
    s->held.erase(s->held.begin());
    op.run();
  }
}

/// Fails a call that cannot be captured while `stream` is being captured
/// (and invalidates the capture, as the driver does).
bool refusedInCapture(CUstream stream) {
  auto *s = reinterpret_cast<FakeStream *>(stream);
  if (!s || !s->capturing)
    return false;
  s->invalidated = true;
  return true;
}

void *hostPtr(CUdeviceptr p) {
  return reinterpret_cast<void *>(static_cast<uintptr_t>(p));
}

/// Device memory is 256-byte aligned (cuMemAlloc's is, and cuBLAS wants
/// its workspace so).
constexpr size_t kDeviceAlignment = 256;

CUdeviceptr allocate(size_t bytes) {
  size_t rounded =
      (bytes + kDeviceAlignment - 1) / kDeviceAlignment * kDeviceAlignment;
  void *p = std::aligned_alloc(kDeviceAlignment, rounded ? rounded : 256);
  std::memset(p, 0xAB, bytes);
  CUdeviceptr d = static_cast<CUdeviceptr>(reinterpret_cast<uintptr_t>(p));
  allocations[d] = bytes;
  ++control.liveAllocations;
  return d;
}

CUresult release(CUdeviceptr p) {
  auto it = allocations.find(p);
  if (it == allocations.end())
    return kInvalidValue;
  std::free(hostPtr(p));
  allocations.erase(it);
  --control.liveAllocations;
  return CUDA_SUCCESS;
}

CUresult loadModule(CUmodule *module, const void *image) {
  const auto *m = static_cast<const FakeModuleImage *>(image);
  if (!m || std::memcmp(m->magic, kFakeModuleMagic, sizeof(m->magic)) != 0)
    return kInvalidImage;
  *module = reinterpret_cast<CUmodule>(const_cast<FakeModuleImage *>(m));
  ++control.modulesLoaded;
  return CUDA_SUCCESS;
}

} // namespace

//===----------------------------------------------------------------------===//
// For the fake cuBLAS (FakeCublas.cpp)
//===----------------------------------------------------------------------===//

int jamba::rt::testing::fake::enqueue(void *stream, std::function<void()> op) {
  return ::enqueue(static_cast<CUstream>(stream), std::move(op));
}

bool jamba::rt::testing::fake::isDeviceRange(const void *p, uint64_t bytes) {
  auto address = static_cast<CUdeviceptr>(reinterpret_cast<uintptr_t>(p));
  auto it = allocations.upper_bound(address);
  if (it == allocations.begin())
    return false;
  --it;
  return address >= it->first && address - it->first <= it->second &&
         bytes <= it->second - (address - it->first);
}

bool jamba::rt::testing::fake::refusesUnsafeCall() {
  // The driver's rule (cuThreadExchangeStreamCaptureMode): unsafe calls
  // are refused while a capture begun in global mode (by any thread) or in
  // thread-local mode (by this thread) runs, unless this thread's own mode
  // is relaxed.
  if (threadMode == CU_STREAM_CAPTURE_MODE_RELAXED)
    return false;
  bool refused = false;
  for (FakeStream *s : capturingStreams) {
    if (s->mode == CU_STREAM_CAPTURE_MODE_RELAXED ||
        (s->mode == CU_STREAM_CAPTURE_MODE_THREAD_LOCAL &&
         s->captureThread != std::this_thread::get_id()))
      continue;
    s->invalidated = true;
    refused = true;
  }
  return refused;
}

void *jamba::rt::testing::fake::currentContext() { return ::currentContext; }

std::recursive_mutex &jamba::rt::testing::fake::mutex() {
  static auto *m = new std::recursive_mutex();
  return *m;
}

void jamba::rt::testing::fake::blockStream(void *stream) {
  if (auto *s = static_cast<FakeStream *>(stream))
    ++s->blockers;
}

void jamba::rt::testing::fake::unblockStream(void *stream) {
  auto *s = static_cast<FakeStream *>(stream);
  if (!s || s->blockers == 0)
    return;
  --s->blockers;
  drain(s);
}

#define FAKE_EXPORT extern "C" __attribute__((visibility("default")))

FAKE_EXPORT FakeCudaControl *jamba_fake_cuda_control() { return &control; }

FAKE_EXPORT CUresult cuInit(unsigned) {
  FAKE_LOCK();
  initialised = true;
  ++control.inits;
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuGetErrorName(CUresult error, const char **name) {
  FAKE_LOCK();
  switch (error) {
  case CUDA_SUCCESS:
    *name = "CUDA_SUCCESS";
    return CUDA_SUCCESS;
  case kInvalidValue:
    *name = "CUDA_ERROR_INVALID_VALUE";
    return CUDA_SUCCESS;
  case kInvalidPtx:
    *name = "CUDA_ERROR_INVALID_PTX";
    return CUDA_SUCCESS;
  case kIllegalAddress:
    *name = "CUDA_ERROR_ILLEGAL_ADDRESS";
    return CUDA_SUCCESS;
  case kCaptureUnsupported:
    *name = "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED";
    return CUDA_SUCCESS;
  case kNotReady:
    *name = "CUDA_ERROR_NOT_READY";
    return CUDA_SUCCESS;
  case kLaunchTimeout:
    *name = "CUDA_ERROR_LAUNCH_TIMEOUT";
    return CUDA_SUCCESS;
  default:
    *name = nullptr;
    return kInvalidValue;
  }
}

FAKE_EXPORT CUresult cuGetErrorString(CUresult error, const char **text) {
  FAKE_LOCK();
  switch (error) {
  case kInvalidPtx:
    *text = "a PTX JIT compilation failed";
    return CUDA_SUCCESS;
  case kIllegalAddress:
    *text = "an illegal memory access was encountered";
    return CUDA_SUCCESS;
  default:
    *text = "fake error";
    return CUDA_SUCCESS;
  }
}

FAKE_EXPORT CUresult cuDriverGetVersion(int *version) {
  FAKE_LOCK();
  *version = 13000;
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuDeviceGetCount(int *count) {
  FAKE_LOCK();
  if (!initialised)
    return kNotInitialized;
  *count = control.deviceCount;
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuDeviceGet(CUdevice *device, int ordinal) {
  FAKE_LOCK();
  if (ordinal < 0 || ordinal >= control.deviceCount ||
      ordinal >= FakeCudaControl::kMaxDevices)
    return kInvalidDevice;
  *device = ordinal;
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuDeviceGetName(char *name, int length, CUdevice) {
  FAKE_LOCK();
  std::strncpy(name, "Fake CUDA device", size_t(length));
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice) {
  FAKE_LOCK();
  *bytes = size_t(control.totalMemory);
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuDeviceGetAttribute(int *value,
                                          CUdevice_attribute attribute,
                                          CUdevice) {
  FAKE_LOCK();
  switch (attribute) {
  case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR:
    *value = control.computeMajor;
    return CUDA_SUCCESS;
  case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR:
    *value = control.computeMinor;
    return CUDA_SUCCESS;
  case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN:
    *value = 227 * 1024;
    return CUDA_SUCCESS;
  default:
    return kInvalidValue;
  }
}

FAKE_EXPORT CUresult cuDevicePrimaryCtxRetain(CUcontext *context,
                                              CUdevice device) {
  FAKE_LOCK();
  // One primary context per device: a distinct address each.
  static char contexts[FakeCudaControl::kMaxDevices];
  if (device < 0 || device >= FakeCudaControl::kMaxDevices)
    return kInvalidDevice;
  *context = reinterpret_cast<CUcontext>(&contexts[device]);
  ++control.contextsRetained;
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuDevicePrimaryCtxRelease_v2(CUdevice) {
  FAKE_LOCK();
  --control.contextsRetained;
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuCtxSetCurrent(CUcontext context) {
  FAKE_LOCK();
  currentContext = context;
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuMemGetInfo_v2(size_t *free, size_t *total) {
  FAKE_LOCK();
  size_t used = 0;
  for (const auto &entry : allocations)
    used += entry.second;
  *total = size_t(control.totalMemory);
  *free = used < *total ? *total - used : 0;
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuStreamCreate(CUstream *stream, unsigned) {
  FAKE_LOCK();
  *stream = reinterpret_cast<CUstream>(new FakeStream());
  ++control.liveStreams;
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuStreamDestroy_v2(CUstream stream) {
  FAKE_LOCK();
  capturingStreams.erase(reinterpret_cast<FakeStream *>(stream));
  delete reinterpret_cast<FakeStream *>(stream);
  --control.liveStreams;
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuStreamSynchronize(CUstream stream) {
  FAKE_LOCK();
  if (refusedInCapture(stream))
    return kCaptureUnsupported;
  // A stuck stream would never finish: the real call would hang. The fake
  // fails instead, so that a test of a wait that should have been bounded
  // fails rather than hangs.
  auto *s = reinterpret_cast<FakeStream *>(stream);
  if (s && s->blockers > 0) {
    ++control.hungSynchronizes;
    return kLaunchTimeout;
  }
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuStreamQuery(CUstream stream) {
  FAKE_LOCK();
  ++control.streamQueries;
  auto *s = reinterpret_cast<FakeStream *>(stream);
  if (s && s->capturing)
    return kCaptureUnsupported;
  if (s && (s->blockers > 0 || !s->held.empty()))
    return kNotReady;
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuStreamBeginCapture_v2(CUstream stream,
                                             CUstreamCaptureMode mode) {
  FAKE_LOCK();
  auto *s = reinterpret_cast<FakeStream *>(stream);
  if (!s || s->capturing)
    return kInvalidValue;
  s->capturing = true;
  s->invalidated = false;
  s->mode = mode;
  s->captureThread = std::this_thread::get_id();
  capturingStreams.insert(s);
  s->captured.clear();
  ++control.captures;
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuStreamEndCapture(CUstream stream, CUgraph *graph) {
  FAKE_LOCK();
  auto *s = reinterpret_cast<FakeStream *>(stream);
  if (!s || !s->capturing)
    return kInvalidValue;
  s->capturing = false;
  capturingStreams.erase(s);
  *graph = nullptr;
  if (s->invalidated)
    return kCaptureInvalidated;
  *graph = reinterpret_cast<CUgraph>(new FakeGraph{std::move(s->captured)});
  ++control.liveGraphs;
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuStreamIsCapturing(CUstream stream,
                                         CUstreamCaptureStatus *status) {
  FAKE_LOCK();
  auto *s = reinterpret_cast<FakeStream *>(stream);
  *status = !s || !s->capturing ? CU_STREAM_CAPTURE_STATUS_NONE
            : s->invalidated    ? CU_STREAM_CAPTURE_STATUS_INVALIDATED
                                : CU_STREAM_CAPTURE_STATUS_ACTIVE;
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult
cuThreadExchangeStreamCaptureMode(CUstreamCaptureMode *mode) {
  FAKE_LOCK();
  if (!mode)
    return kInvalidValue;
  CUstreamCaptureMode previous = threadMode;
  threadMode = *mode;
  *mode = previous;
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuGraphInstantiateWithFlags(CUgraphExec *exec,
                                                 CUgraph graph,
                                                 unsigned long long) {
  FAKE_LOCK();
  *exec = reinterpret_cast<CUgraphExec>(
      new FakeGraph(*reinterpret_cast<FakeGraph *>(graph)));
  ++control.liveGraphs;
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuGraphLaunch(CUgraphExec exec, CUstream stream) {
  FAKE_LOCK();
  if (refusedInCapture(stream))
    return kCaptureUnsupported;
  ++control.graphLaunches;
  // Each op goes through the stream, so that one blocking it (a stuck
  // collective) holds the rest.
  for (const Op &op : reinterpret_cast<FakeGraph *>(exec)->ops)
    enqueue(stream, op.run);
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuGraphDestroy(CUgraph graph) {
  FAKE_LOCK();
  delete reinterpret_cast<FakeGraph *>(graph);
  --control.liveGraphs;
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuGraphExecDestroy(CUgraphExec exec) {
  FAKE_LOCK();
  delete reinterpret_cast<FakeGraph *>(exec);
  --control.liveGraphs;
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuMemAlloc_v2(CUdeviceptr *ptr, size_t bytes) {
  FAKE_LOCK();
  if (bytes == 0)
    return kInvalidValue;
  if (jamba::rt::testing::fake::refusesUnsafeCall())
    return kCaptureUnsupported;
  *ptr = allocate(bytes);
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuMemFree_v2(CUdeviceptr ptr) { return release(ptr); }

FAKE_EXPORT CUresult cuMemAllocAsync(CUdeviceptr *ptr, size_t bytes,
                                     CUstream stream) {
  FAKE_LOCK();
  // The fake does not model graph allocation nodes.
  if (bytes == 0 || refusedInCapture(stream))
    return bytes == 0 ? kInvalidValue : kNotSupported;
  *ptr = allocate(bytes);
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuMemFreeAsync(CUdeviceptr ptr, CUstream stream) {
  FAKE_LOCK();
  if (refusedInCapture(stream))
    return kNotSupported;
  return release(ptr);
}

/// The default pool of device d is the handle d + 1.
FAKE_EXPORT CUresult cuDeviceGetDefaultMemPool(CUmemoryPool *pool,
                                               CUdevice device) {
  FAKE_LOCK();
  if (device < 0 || device >= control.deviceCount ||
      device >= FakeCudaControl::kMaxDevices)
    return kInvalidDevice;
  *pool = reinterpret_cast<CUmemoryPool>(uintptr_t(device) + 1);
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuMemPoolSetAttribute(CUmemoryPool pool,
                                           CUmemPool_attribute attribute,
                                           void *value) {
  FAKE_LOCK();
  // Only the release threshold is modelled.
  if (!pool || !value || attribute != CU_MEMPOOL_ATTR_RELEASE_THRESHOLD)
    return kInvalidValue;
  if (reinterpret_cast<uintptr_t>(pool) == 1)
    std::memcpy(&control.poolReleaseThreshold, value, sizeof(uint64_t));
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuMemPoolTrimTo(CUmemoryPool pool, size_t) {
  FAKE_LOCK();
  if (!pool)
    return kInvalidValue;
  if (reinterpret_cast<uintptr_t>(pool) == 1)
    ++control.poolTrims;
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuMemAllocManaged(CUdeviceptr *ptr, size_t bytes,
                                       unsigned) {
  FAKE_LOCK();
  if (bytes == 0)
    return kInvalidValue;
  *ptr = allocate(bytes);
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src,
                                          size_t bytes, CUstream stream) {
  FAKE_LOCK();
  return enqueue(stream, [=] { std::memcpy(hostPtr(dst), src, bytes); });
}

FAKE_EXPORT CUresult cuMemHostRegister_v2(void *p, size_t bytes,
                                          unsigned flags) {
  FAKE_LOCK();
  if (control.failHostRegisterWith)
    return CUresult(control.failHostRegisterWith);
  if (!p || bytes == 0 || flags != 0)
    return kInvalidValue;
  uintptr_t at = reinterpret_cast<uintptr_t>(p);
  // Overlapping an existing range is refused, as the driver refuses it.
  auto next = pinnedRanges.lower_bound(at);
  if ((next != pinnedRanges.end() && next->first < at + bytes) ||
      inPinnedRange(p, 1))
    return kHostMemoryAlreadyRegistered;
  pinnedRanges[at] = bytes;
  ++control.hostRegisters;
  ++control.livePinnedRanges;
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuMemHostUnregister(void *p) {
  FAKE_LOCK();
  if (pinnedRanges.erase(reinterpret_cast<uintptr_t>(p)) == 0)
    return kHostMemoryNotRegistered;
  --control.livePinnedRanges;
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src,
                                          size_t bytes, CUstream stream) {
  FAKE_LOCK();
  control.pinnedDownloads += inPinnedRange(dst, bytes);
  return enqueue(stream, [=] { std::memcpy(dst, hostPtr(src), bytes); });
}

FAKE_EXPORT CUresult cuMemcpyAsync(CUdeviceptr dst, CUdeviceptr src,
                                   size_t bytes, CUstream stream) {
  FAKE_LOCK();
  return enqueue(stream,
                 [=] { std::memmove(hostPtr(dst), hostPtr(src), bytes); });
}

FAKE_EXPORT CUresult cuMemsetD8Async(CUdeviceptr dst, unsigned char value,
                                     size_t count, CUstream stream) {
  FAKE_LOCK();
  return enqueue(stream, [=] { std::memset(hostPtr(dst), value, count); });
}

FAKE_EXPORT CUresult cuMemsetD16Async(CUdeviceptr dst, unsigned short value,
                                      size_t count, CUstream stream) {
  FAKE_LOCK();
  return enqueue(stream, [=] {
    auto *p = static_cast<unsigned short *>(hostPtr(dst));
    for (size_t i = 0; i < count; ++i)
      p[i] = value;
  });
}

FAKE_EXPORT CUresult cuMemsetD32Async(CUdeviceptr dst, unsigned value,
                                      size_t count, CUstream stream) {
  FAKE_LOCK();
  return enqueue(stream, [=] {
    auto *p = static_cast<unsigned *>(hostPtr(dst));
    for (size_t i = 0; i < count; ++i)
      p[i] = value;
  });
}

FAKE_EXPORT CUresult cuModuleLoadData(CUmodule *module, const void *image) {
  FAKE_LOCK();
  return loadModule(module, image);
}

FAKE_EXPORT CUresult cuModuleLoadDataEx(CUmodule *module, const void *image,
                                        unsigned numOptions,
                                        CUjit_option *options,
                                        void **optionValues) {
  FAKE_LOCK();
  CUresult r = loadModule(module, image);
  if (r == CUDA_SUCCESS)
    return r;
  // A JIT failure writes its log where the caller asked.
  for (unsigned i = 0; i < numOptions; ++i)
    if (options[i] == CU_JIT_ERROR_LOG_BUFFER)
      std::strcpy(static_cast<char *>(optionValues[i]),
                  "ptxas fatal: fake error one\nfake error two\n");
  return kInvalidPtx;
}

FAKE_EXPORT CUresult cuModuleUnload(CUmodule) {
  FAKE_LOCK();
  ++control.modulesUnloaded;
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuModuleGetFunction(CUfunction *function, CUmodule module,
                                         const char *name) {
  FAKE_LOCK();
  const auto *m = reinterpret_cast<const FakeModuleImage *>(module);
  for (int64_t i = 0; i < m->count; ++i)
    if (std::strcmp(m->kernels[i].name, name) == 0) {
      *function = reinterpret_cast<CUfunction>(
          const_cast<FakeKernel *>(&m->kernels[i]));
      return CUDA_SUCCESS;
    }
  return kNotFound;
}

FAKE_EXPORT CUresult cuFuncSetAttribute(CUfunction, CUfunction_attribute, int) {
  FAKE_LOCK();
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuLaunchKernel(CUfunction function, unsigned, unsigned,
                                    unsigned, unsigned, unsigned, unsigned,
                                    unsigned, CUstream stream, void **params,
                                    void **) {
  FAKE_LOCK();
  ++control.kernelLaunches;
  if (control.failLaunchWith)
    return control.failLaunchWith;
  const auto *k = reinterpret_cast<const FakeKernel *>(function);
  // The parameters are copied at launch, as the driver does: a graph
  // replays the values of the capture.
  std::vector<uint64_t> values(size_t(k->numParams));
  for (int64_t i = 0; i < k->numParams; ++i)
    std::memcpy(&values[size_t(i)], params[i], sizeof(uint64_t));
  return enqueue(stream, [k, values]() mutable {
    std::vector<void *> args(values.size());
    for (size_t i = 0; i < values.size(); ++i)
      args[i] = &values[i];
    ++control.kernelRuns;
    k->fn(args.data());
  });
}

// Events: a record stamps the event when its stream reaches it, from a clock
// that advances one microsecond per stamp.

namespace {
struct FakeEvent {
  int64_t stamp = 0;
};
int64_t eventClock = 0;
} // namespace

FAKE_EXPORT CUresult cuEventCreate(CUevent *event, unsigned) {
  FAKE_LOCK();
  if (!event)
    return kInvalidValue;
  *event = reinterpret_cast<CUevent>(new FakeEvent);
  ++control.liveEvents;
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuEventRecord(CUevent event, CUstream stream) {
  FAKE_LOCK();
  ++control.eventRecords;
  if (control.failEventRecordWith)
    return control.failEventRecordWith;
  auto *e = reinterpret_cast<FakeEvent *>(event);
  if (!e)
    return kInvalidValue;
  e->stamp = 0;
  return enqueue(stream, [e] { e->stamp = ++eventClock; });
}

FAKE_EXPORT CUresult cuEventElapsedTime(float *milliseconds, CUevent start,
                                        CUevent end) {
  FAKE_LOCK();
  auto *a = reinterpret_cast<FakeEvent *>(start);
  auto *b = reinterpret_cast<FakeEvent *>(end);
  if (!milliseconds || !a || !b)
    return kInvalidValue;
  if (!a->stamp || !b->stamp)
    return kNotReady;
  *milliseconds = float(b->stamp - a->stamp) * 1e-3f;
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuEventDestroy_v2(CUevent event) {
  FAKE_LOCK();
  if (!event)
    return kInvalidValue;
  delete reinterpret_cast<FakeEvent *>(event);
  --control.liveEvents;
  return CUDA_SUCCESS;
}

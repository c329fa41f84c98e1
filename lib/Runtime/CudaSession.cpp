//===- CudaSession.cpp - One executor's CUDA device, memory, graphs -------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//

#include "CudaSession.h"

#include <algorithm>

using namespace jamba;
using namespace jamba::rt;
using namespace jamba::rt::cuda;
using ckpt::makeError;

namespace {

CUdeviceptr devicePtr(const void *p) {
  return static_cast<CUdeviceptr>(reinterpret_cast<uintptr_t>(p));
}

} // namespace

StatusOr<std::unique_ptr<CudaSession>> CudaSession::open(int ordinal) {
  StatusOr<const CudaDriver *> loaded = loadCudaDriver();
  if (!loaded.ok())
    return loaded.status();
  std::unique_ptr<CudaSession> s(new CudaSession());
  s->api = *loaded;
  const CudaDriver &d = *s->api;
  StatusOr<CUdevice> device = openCudaDevice(d, ordinal);
  if (!device.ok())
    return device.status();
  s->device = *device;
  s->deviceText = ckpt::concat("CUDA device ", ordinal, ": ",
                               describeCudaDevice(d, s->device));
  int major = 0, minor = 0, sharedOptIn = 0;
  JAMBA_CKPT_RETURN_IF_ERROR(d.check(
      d.cuDeviceGetAttribute(
          &major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, s->device),
      "cuDeviceGetAttribute"));
  JAMBA_CKPT_RETURN_IF_ERROR(d.check(
      d.cuDeviceGetAttribute(
          &minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, s->device),
      "cuDeviceGetAttribute"));
  JAMBA_CKPT_RETURN_IF_ERROR(d.check(
      d.cuDeviceGetAttribute(
          &sharedOptIn, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
          s->device),
      "cuDeviceGetAttribute"));
  s->capability = major * 10 + minor;

  // The primary context is the one the CUDA runtime and libraries (cuBLAS,
  // NCCL) use too, so that they can later share the session's memory.
  JAMBA_CKPT_RETURN_IF_ERROR(
      d.check(d.cuDevicePrimaryCtxRetain(&s->context, s->device),
              "cuDevicePrimaryCtxRetain"));
  s->retained = true;
  JAMBA_CKPT_RETURN_IF_ERROR(s->makeCurrent());
  // Each stage allocates its temporaries on the stream (cuMemAllocAsync)
  // and frees them at its end. With the pool's default release threshold,
  // 0, every synchronization (a prefill synchronizes before each cuBLAS
  // call and at its end) hands the freed memory back to the OS, so that
  // the next stage maps it again; kept reserved, the stages reuse it. The
  // session gives it back when it ends.
  // The pool is the device's: the setting holds for the whole process (as
  // a caching allocator's would), and a session's end trims only what no
  // one uses. A speed-up only: a driver that refuses it leaves the default.
  uint64_t keepAll = UINT64_MAX;
  if (d.cuDeviceGetDefaultMemPool(&s->pool, s->device) != CUDA_SUCCESS ||
      d.cuMemPoolSetAttribute(s->pool, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
                              &keepAll) != CUDA_SUCCESS)
    s->pool = nullptr;
  // Non-blocking: the legacy default stream (which a library might use)
  // does not serialise with the session's work.
  JAMBA_CKPT_RETURN_IF_ERROR(d.check(
      d.cuStreamCreate(&s->stream, CU_STREAM_NON_BLOCKING), "cuStreamCreate"));
  // The handle is created by the first GEMM: a model without any does not
  // load cuBLAS.
  s->blas = std::make_unique<CublasHandle>(d, s->stream);
  s->target.driver = s->api;
  s->target.stream = s->stream;
  s->target.blas = s->blas.get();
  s->target.maxDynamicSharedBytes =
      sharedOptIn > 0 ? sharedOptIn : kDefaultDynamicSharedBytes;
  return s;
}

CudaSession::~CudaSession() {
  if (!api)
    return;
  const CudaDriver &d = *api;
  if (retained)
    d.cuCtxSetCurrent(context);
  // A GPU rank's wait gives up (aborting the communicators) when a
  // collective's peer is gone, rather than hanging here.
  if (stream && ncclRanks)
    (void)ncclRanks->waitStream();
  else if (stream)
    d.cuStreamSynchronize(stream);
  for (auto &entry : graphs)
    d.cuGraphExecDestroy(entry.second);
  // The graphs' all-reduces used the NCCL communicators, and their GEMMs
  // the handle's workspace: they go after them.
  ncclRanks.reset();
  blas.reset();
  kernelProfile.reset();
  for (CUdeviceptr p : allocations)
    d.cuMemFree_v2(p);
  for (void *p : pinned)
    d.cuMemHostUnregister(p);
  if (stream)
    d.cuStreamDestroy_v2(stream);
  // What the pool kept of the kernels' temporaries goes back (the stream
  // is synchronized: nothing of this session's is still in use).
  if (pool)
    d.cuMemPoolTrimTo(pool, 0);
  if (retained)
    d.cuDevicePrimaryCtxRelease_v2(device);
}

void CudaSession::startProfile() {
  if (!kernelProfile)
    kernelProfile = std::make_unique<KernelProfile>(*api);
  target.profile = kernelProfile.get();
}

Status CudaSession::startRanks(Communicator &ranks) {
  StatusOr<const NcclLibrary *> loaded = loadNccl();
  if (!loaded.ok())
    return loaded.status();
  JAMBA_CKPT_RETURN_IF_ERROR(makeCurrent());
  auto created = std::make_unique<NcclRanks>(**loaded, *api, stream, ranks);
  StatusOr<ncclComm_t> world = created->comm(0);
  if (!world.ok())
    return world.status();
  ncclRanks = std::move(created);
  target.nccl = ncclRanks.get();
  return Status::success();
}

Status CudaSession::makeCurrent() {
  return api->check(api->cuCtxSetCurrent(context), "cuCtxSetCurrent");
}

Status CudaSession::memoryInfo(uint64_t &freeBytes, uint64_t &totalBytes) {
  size_t free = 0, total = 0;
  JAMBA_CKPT_RETURN_IF_ERROR(
      api->check(api->cuMemGetInfo_v2(&free, &total), "cuMemGetInfo"));
  freeBytes = free;
  totalBytes = total;
  return Status::success();
}

StatusOr<void *> CudaSession::allocate(uint64_t bytes,
                                       const std::string &what) {
  CUdeviceptr p = 0;
  CUresult r = api->cuMemAlloc_v2(&p, size_t(bytes ? bytes : 1));
  if (r != CUDA_SUCCESS)
    return makeError("cannot allocate ", bytes, " bytes of device memory for ",
                     what, ": cuMemAlloc: ", api->errorText(r));
  allocations.push_back(p);
  return reinterpret_cast<void *>(static_cast<uintptr_t>(p));
}

// The copies are stream-ordered on the session's stream (the kernels' work
// is queued there too), so an upload before a run and a download after it
// need no other synchronisation; a download waits for its data.

Status CudaSession::upload(void *deviceDst, const void *hostSrc,
                           uint64_t bytes) {
  if (bytes == 0)
    return Status::success();
  return api->check(api->cuMemcpyHtoDAsync_v2(devicePtr(deviceDst), hostSrc,
                                              size_t(bytes), stream),
                    "cuMemcpyHtoDAsync");
}

Status CudaSession::download(void *hostDst, const void *deviceSrc,
                             uint64_t bytes) {
  if (bytes == 0)
    return Status::success();
  JAMBA_CKPT_RETURN_IF_ERROR(
      api->check(api->cuMemcpyDtoHAsync_v2(hostDst, devicePtr(deviceSrc),
                                           size_t(bytes), stream),
                 "cuMemcpyDtoHAsync"));
  return finish();
}

bool CudaSession::pinHost(void *p, uint64_t bytes) {
  if (!api->cuMemHostRegister || !p || bytes == 0)
    return false;
  // No error to report: unpinned memory works, only slower.
  if (api->cuMemHostRegister(p, size_t(bytes), /*flags=*/0) != CUDA_SUCCESS)
    return false;
  pinned.push_back(p);
  return true;
}

void CudaSession::unpinHost(void *p) {
  auto it = std::find(pinned.begin(), pinned.end(), p);
  if (it == pinned.end())
    return;
  api->cuMemHostUnregister(p);
  pinned.erase(it);
}

Status CudaSession::zero(void *deviceDst, uint64_t bytes) {
  if (bytes == 0)
    return Status::success();
  return api->check(
      api->cuMemsetD8Async(devicePtr(deviceDst), 0, size_t(bytes), stream),
      "cuMemsetD8Async");
}

Status CudaSession::finish() {
  if (ncclRanks)
    return ncclRanks->waitStream();
  return api->check(api->cuStreamSynchronize(stream), "cuStreamSynchronize");
}

//===----------------------------------------------------------------------===//
// CUDA graphs
//===----------------------------------------------------------------------===//
//
// A decode step is many small kernels whose launch overhead is a large part
// of its time. Capturing them once into a graph and replaying the graph
// launches all of them with one call. A graph replays exactly the launches
// (and stream-ordered copies, fills, allocations) recorded while capturing,
// with the same arguments: it is valid as long as the host code in the
// kernels file issues the same work for the same call dims, which holds for
// the compiler's schedules (their host code depends only on the dims and the
// fixed buffer addresses; it never reads device data back to decide). The
// executor therefore keys the graphs by (first row, batch, seq).

CUgraphExec CudaSession::findGraph(const GraphKey &key) const {
  auto it = graphs.find(key);
  return it == graphs.end() ? nullptr : it->second;
}

Status CudaSession::beginCapture() {
  // Thread-local mode: a call from this thread that cannot be captured
  // (a synchronous copy, cuMemAllocManaged) fails and invalidates the
  // capture instead of silently running outside the graph.
  return api->check(
      api->cuStreamBeginCapture_v2(stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL),
      "cuStreamBeginCapture");
}

StatusOr<CUgraphExec> CudaSession::endCapture(const GraphKey &key) {
  CUgraph graph = nullptr;
  JAMBA_CKPT_RETURN_IF_ERROR(api->check(api->cuStreamEndCapture(stream, &graph),
                                        "cuStreamEndCapture"));
  CUgraphExec exec = nullptr;
  // The graph's own allocations (mgpuMemAlloc's cuMemAllocAsync) are freed
  // before it is launched again, should its host code not free them.
  Status s = api->check(
      api->cuGraphInstantiateWithFlags(
          &exec, graph, CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH),
      "cuGraphInstantiateWithFlags");
  // The executable graph is independent of the graph it came from.
  Status destroyed = api->check(api->cuGraphDestroy(graph), "cuGraphDestroy");
  JAMBA_CKPT_RETURN_IF_ERROR(s);
  if (!destroyed.ok()) {
    api->cuGraphExecDestroy(exec);
    return destroyed;
  }
  graphs[key] = exec;
  return exec;
}

void CudaSession::abandonCapture() {
  CUstreamCaptureStatus status = CU_STREAM_CAPTURE_STATUS_NONE;
  if (api->cuStreamIsCapturing(stream, &status) != CUDA_SUCCESS ||
      status == CU_STREAM_CAPTURE_STATUS_NONE)
    return;
  CUgraph graph = nullptr;
  api->cuStreamEndCapture(stream, &graph);
  if (graph)
    api->cuGraphDestroy(graph);
}

Status CudaSession::launch(CUgraphExec graph) {
  return api->check(api->cuGraphLaunch(graph, stream), "cuGraphLaunch");
}

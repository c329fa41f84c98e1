//===- CudaSession.h - An executor's CUDA device and graphs -----*- C++ -*-===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// Private to lib/Runtime: what the executor (Executor.cpp) holds when its
// session runs on a CUDA device. The device's primary context, one stream
// (all of the session's work, the kernels' included, is ordered on it), the
// device allocations, host<->device copies, the cuBLAS handle of the
// kernels' GEMMs, the NCCL communicators of a session that is one of several
// GPU ranks and the cache of CUDA graphs captured for decode. Every driver
// call is checked; failures are Status values naming the call.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_LIB_RUNTIME_CUDASESSION_H
#define JAMBA_LIB_RUNTIME_CUDASESSION_H

#include "jamba/Runtime/Cublas.h"
#include "jamba/Runtime/CudaDriver.h"
#include "jamba/Runtime/CudaKernelAbi.h"
#include "jamba/Runtime/CudaProfile.h"
#include "jamba/Runtime/Nccl.h"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

namespace jamba {
namespace rt {
namespace cuda {

class CudaSession {
public:
  /// Loads the driver (loadCudaDriver), checks that device `ordinal`
  /// exists, retains its primary context, makes it current on this thread
  /// and creates the session's stream.
  static StatusOr<std::unique_ptr<CudaSession>> open(int ordinal);

  /// Destroys the graphs, the NCCL communicators and the cuBLAS handle, frees
  /// the allocations,
  /// destroys the stream and releases the primary context (errors are ignored:
  /// nothing is left to report them to).
  ~CudaSession();
  CudaSession(const CudaSession &) = delete;
  CudaSession &operator=(const CudaSession &) = delete;

  const CudaDriver &driver() const { return *api; }
  /// "CUDA device 0: NVIDIA H200 (sm_90, 139.8 GiB)".
  const std::string &description() const { return deviceText; }
  /// The device's compute capability as major * 10 + minor (90: sm_90).
  int computeCapability() const { return capability; }
  /// What the kernels' mgpu* calls run on (make it active around them).
  const CudaKernelTarget &kernelTarget() const { return target; }
  /// The cuBLAS handle of jamba_rt_cuda_gemm (kernelTarget().blas), bound
  /// to the session's stream; created by the first GEMM.
  CublasHandle &cublas() { return *blas; }

  /// Makes the session one of the GPU ranks of `ranks` (size > 1, which must
  /// outlive the session): loads NCCL (loadNccl) and makes the NCCL
  /// communicator of all the ranks (NcclRanks::comm(0)) with the session's
  /// context current; every rank calls it at the same point. The kernels'
  /// all-reduces then use it (kernelTarget().nccl). A failure leaves the
  /// session single-rank.
  Status startRanks(Communicator &ranks);
  /// The NCCL communicators; null until startRanks() succeeded.
  NcclRanks *nccl() { return ncclRanks.get(); }

  /// Times every launch of the kernels from now on (CudaProfile.h,
  /// kernelTarget().profile); collect it after each run's finish().
  void startProfile();
  /// The profile; null unless startProfile() was called.
  KernelProfile *profile() { return kernelProfile.get(); }

  /// Makes the session's context current on the calling thread.
  Status makeCurrent();
  /// Free and total bytes of device memory now (cuMemGetInfo).
  Status memoryInfo(uint64_t &freeBytes, uint64_t &totalBytes);

  /// A device allocation of `bytes` (at least 1), freed with the session.
  /// `what` names it in the error ("buffer 'x'").
  StatusOr<void *> allocate(uint64_t bytes, const std::string &what);
  /// Stream-ordered copies and fill; `download` and `finish` wait for the
  /// stream, `upload` and `zero` do not (call finish() before the source of
  /// an upload goes away).
  Status upload(void *deviceDst, const void *hostSrc, uint64_t bytes);
  Status download(void *hostDst, const void *deviceSrc, uint64_t bytes);
  Status zero(void *deviceDst, uint64_t bytes);
  /// Waits for everything queued on the stream.
  Status finish();
  /// Page-locks `bytes` of host memory at `p` (cuMemHostRegister), so that
  /// downloads into it are direct; false when the driver cannot (it lacks
  /// the call, or refuses: the memory is then used as it is). Undone by
  /// unpinHost, or by the session's end.
  bool pinHost(void *p, uint64_t bytes);
  void unpinHost(void *p);

  //===--------------------------------------------------------------------===//
  // CUDA graphs (decode)
  //===--------------------------------------------------------------------===//

  /// What a captured graph depends on: the call's first row, batch and
  /// seq. Everything else the steps pass (buffer addresses, the bound
  /// capacity) is fixed for the session.
  using GraphKey = std::tuple<int64_t, int64_t, int64_t>;

  /// The graph captured for `key`, or nullptr.
  CUgraphExec findGraph(const GraphKey &key) const;
  /// Starts capturing the stream (nothing queued on it runs until the
  /// graph is launched).
  Status beginCapture();
  /// Ends the capture, instantiates the graph and keeps it for `key`.
  StatusOr<CUgraphExec> endCapture(const GraphKey &key);
  /// Ends a capture that failed part way, discarding what it recorded.
  void abandonCapture();
  /// Queues a captured graph on the stream.
  Status launch(CUgraphExec graph);
  /// The number of graphs kept (one per distinct GraphKey run so far).
  size_t graphCount() const { return graphs.size(); }

private:
  CudaSession() = default;

  const CudaDriver *api = nullptr;
  CUdevice device = 0;
  CUcontext context = nullptr;
  bool retained = false;
  /// The device's default memory pool, which the kernels' temporaries
  /// (mgpuMemAlloc: cuMemAllocAsync) come from.
  CUmemoryPool pool = nullptr;
  CUstream stream = nullptr;
  std::unique_ptr<CublasHandle> blas;
  std::unique_ptr<NcclRanks> ncclRanks;
  std::unique_ptr<KernelProfile> kernelProfile;
  CudaKernelTarget target;
  std::string deviceText;
  int capability = 0;
  std::vector<CUdeviceptr> allocations;
  /// Host memory pinHost page-locked and unpinHost has not released.
  std::vector<void *> pinned;
  std::map<GraphKey, CUgraphExec> graphs;
};

} // namespace cuda
} // namespace rt
} // namespace jamba

#endif // JAMBA_LIB_RUNTIME_CUDASESSION_H

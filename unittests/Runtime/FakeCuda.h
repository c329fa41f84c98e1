//===- FakeCuda.h - A fake CUDA driver for the tests ------------*- C++ -*-===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// Test code. The CUDA path of the executor cannot run on the machines that
// build and test this project (no GPU, no driver), so the tests substitute a
// fake driver library (FakeCudaDriver.cpp, loaded with
// rt::cuda::setCudaDriverLibrary) that exports the driver entry points the
// runtime uses over host memory:
//
// - "device memory" is host memory (filled with 0xAB when allocated, as real
//   device memory is not zeroed), so the CPU test kernels can run on it;
// - a "module" is a FakeModuleImage below; its "kernels" are host functions
//   taking the packed argument array, and a launch calls one with copies of
//   the parameters taken at launch time (as the driver does);
// - work on a stream runs at once, unless the stream is being captured:
//   then it is recorded into the graph, which runs it when launched;
// - a synchronize during a capture fails, as the real driver's does;
// - every entry point holds one library-wide lock, so that ranks that are
//   threads of one process can use it at once (work runs at once, so no
//   call waits for another thread);
// - cuDeviceGetCount reports FakeCudaControl::deviceCount devices, each
//   with its own primary context; a capture's mode is honoured per thread
//   (THREAD_LOCAL restricts only the capturing thread);
// - events are stamped with a clock that advances 1 us per recorded event
//   (only cuEventElapsedTime, not the CUDA 12.8 _v2, is exported).
//
// - a synchronous allocation (cuMemAlloc) during a capture fails unless the
//   capture or the calling thread's mode (cuThreadExchangeStreamCaptureMode)
//   is relaxed, as the real driver's does; device memory is 256-byte
//   aligned.
// - cuMemHostRegister_v2 and cuMemHostUnregister keep the page-locked host
//   ranges (refusing an overlap, or an unregister of what is not
//   registered, as the driver does), and a download into one is counted.
//
// The test kernels for a CUDA artifact (TestCudaKernels.cpp) carry such an
// image and launch through the runtime's mgpu* functions. FakeCudaControl is
// how a test reads counters and injects failures.
//
// The same library is a fake cuBLAS too (FakeCublas.cpp, loaded with
// rt::cuda::setCublasLibrary): handles, their stream, workspace and math
// mode, and a cublasGemmEx that computes the textbook column-major GEMM on
// the host on the handle's stream (so a graph captures it).
// FakeCublasControl is its control block.
//
// And a fake NCCL (FakeNccl.cpp, loaded with rt::cuda::setNcclLibrary) for
// one process that stands for every rank: ncclGetUniqueId makes the
// recognisable id "fake-nccl-id-N" (N counts the calls), ncclCommInitRank
// records its (nranks, rank, id) and the context current then, and
// ncclAllReduce, on the stream given (so a graph captures it), sets
//
//   recv[i] = nranks * send[i]    for i in [0, count)
//
// the sum over the communicator's ranks when every rank holds the same data.
// Its checks: a live communicator, ncclFloat32 and ncclSum, and every element
// inside a live device allocation (a real GPU would fault). Like the real
// one, ncclCommInitRank allocates device memory, which a capture refuses
// unless the thread's capture mode is relaxed. FakeNcclControl is its control
// block.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_UNITTESTS_RUNTIME_FAKECUDA_H
#define JAMBA_UNITTESTS_RUNTIME_FAKECUDA_H

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace jamba {
namespace rt {
namespace testing {

/// A fake kernel: called with an array of `numParams` pointers, each at an
/// 8-byte parameter value.
struct FakeKernel {
  const char *name;
  void (*fn)(void **params);
  int64_t numParams;
};

constexpr const char kFakeModuleMagic[] = "jamba-fake-cuda-module";

/// What a fake "cubin" or "PTX" image is.
struct FakeModuleImage {
  char magic[sizeof(kFakeModuleMagic)];
  int64_t count;
  const FakeKernel *kernels;
};

/// Counters and knobs of the fake driver (jamba_fake_cuda_control()).
struct FakeCudaControl {
  // Knobs (set before the call they affect).
  int computeMajor = 9, computeMinor = 0;
  uint64_t totalMemory = uint64_t(1) << 30;
  /// Non-zero: cuLaunchKernel returns this error.
  int failLaunchWith = 0;
  /// The devices cuDeviceGetCount reports (at most kMaxDevices), each with
  /// a primary context of its own.
  int deviceCount = 1;
  static constexpr int kMaxDevices = 8;
  /// Non-zero: cuEventRecord returns this error.
  int failEventRecordWith = 0;
  /// Non-zero: cuMemHostRegister returns this error.
  int failHostRegisterWith = 0;
  /// Sets the knobs back to their defaults; the counters stay.
  void resetKnobs() {
    const FakeCudaControl defaults;
    computeMajor = defaults.computeMajor;
    computeMinor = defaults.computeMinor;
    totalMemory = defaults.totalMemory;
    failLaunchWith = 0;
    deviceCount = defaults.deviceCount;
    failEventRecordWith = 0;
    failHostRegisterWith = 0;
  }

  // Counters.
  int64_t inits = 0;
  int64_t contextsRetained = 0; ///< Retains minus releases.
  int64_t liveAllocations = 0;  ///< Device and managed allocations.
  int64_t liveStreams = 0;
  int64_t modulesLoaded = 0, modulesUnloaded = 0;
  int64_t kernelLaunches = 0; ///< cuLaunchKernel calls.
  int64_t kernelRuns = 0;     ///< Kernels run (at once or in a graph).
  int64_t captures = 0, graphLaunches = 0, liveGraphs = 0;
  int64_t streamQueries = 0; ///< cuStreamQuery calls.
  /// cuStreamSynchronize calls on a stuck stream (which would hang on a
  /// real device; the fake fails them with CUDA_ERROR_LAUNCH_TIMEOUT).
  int64_t hungSynchronizes = 0;
  /// Events: live ones and cuEventRecord calls. A recorded event is stamped
  /// (when its stream reaches it) with a clock that advances 1 us per
  /// stamp, so one launch between two records takes 1 us of "GPU time".
  int64_t liveEvents = 0, eventRecords = 0;
  /// Device 0's default memory pool: its release threshold (the driver's
  /// default, 0, until set) and the cuMemPoolTrimTo calls on it.
  uint64_t poolReleaseThreshold = 0;
  int64_t poolTrims = 0;
  /// Page-locked host memory: cuMemHostRegister calls that succeeded, the
  /// ranges registered and not unregistered, and downloads
  /// (cuMemcpyDtoHAsync) whose whole destination lies in one of them.
  int64_t hostRegisters = 0, livePinnedRanges = 0, pinnedDownloads = 0;
};

/// Counters and knobs of the fake cuBLAS (jamba_fake_cublas_control()).
struct FakeCublasControl {
  // Knobs.
  /// Non-zero: cublasCreate_v2 returns this status.
  int failCreateWith = 0;
  /// Non-zero: cublasGemmEx returns this status.
  int failGemmWith = 0;
  /// Sets the knobs back to their defaults; the counters stay.
  void resetKnobs() {
    failCreateWith = 0;
    failGemmWith = 0;
  }

  // Counters.
  int64_t handlesCreated = 0;
  int64_t liveHandles = 0;
  int64_t gemmCalls = 0; ///< cublasGemmEx calls.
  int64_t gemmRuns = 0;  ///< GEMMs computed (at once or in a graph).
  /// The state of the handle the last cublasGemmEx call was given.
  void *lastStream = nullptr;
  void *lastWorkspace = nullptr;
  uint64_t lastWorkspaceBytes = 0;
  int lastMathMode = -1;
};

/// Counters and knobs of the fake NCCL (jamba_fake_nccl_control()).
struct FakeNcclControl {
  // Knobs.
  /// What ncclGetVersion reports (NCCL_VERSION_CODE).
  int version = 22809;
  /// Non-zero: ncclGetUniqueId, ncclCommInitRank or ncclAllReduce returns
  /// this result.
  int failUniqueIdWith = 0;
  int failInitWith = 0;
  int failAllReduceWith = 0;
  /// What ncclCommGetAsyncError reports for every communicator (0: each
  /// communicator's own state, below).
  int asyncError = 0;
  /// A non-blocking initialisation (ncclCommInitRankConfig, blocking = 0)
  /// returns ncclInProgress and its communicator's state stays so for this
  /// many polls, or for ever with hangInit (a peer that never joins: only
  /// an abort ends it; a blocking ncclCommInitRank fails with
  /// ncclInternalError instead of hanging).
  int64_t initPendingPolls = 0;
  bool hangInit = false;
  /// A non-blocking ncclAllReduce returns ncclInProgress and the state
  /// stays so for this many polls.
  int64_t allReducePendingPolls = 0;
  /// An all-reduce, when it runs, never finishes: its stream is stuck
  /// (fake::blockStream) until the communicator is aborted.
  bool hangAllReduce = false;
  /// A non-blocking ncclCommFinalize never completes.
  bool hangFinalize = false;
  /// Sets the knobs back to their defaults; the counters stay.
  void resetKnobs() {
    const FakeNcclControl defaults;
    version = defaults.version;
    failUniqueIdWith = 0;
    failInitWith = 0;
    failAllReduceWith = 0;
    asyncError = 0;
    initPendingPolls = 0;
    hangInit = false;
    allReducePendingPolls = 0;
    hangAllReduce = false;
    hangFinalize = false;
  }

  // Counters.
  int64_t uniqueIds = 0; ///< ncclGetUniqueId calls that made an id.
  int64_t liveComms = 0;
  int64_t commsDestroyed = 0, commsAborted = 0;
  int64_t allReduceCalls = 0; ///< ncclAllReduce calls.
  int64_t allReduceRuns = 0;  ///< All-reduces computed (at once or in a graph).
  int64_t finalizes = 0;      ///< ncclCommFinalize calls.
  int64_t asyncErrorPolls = 0; ///< ncclCommGetAsyncError calls.

  /// One ncclCommInitRank that made a communicator.
  struct Init {
    int nranks = 0, rank = 0;
    /// The id's bytes up to the first NUL.
    std::string id;
    /// The context current on the calling thread (cuCtxSetCurrent).
    void *context = nullptr;
    /// The config's `blocking` (ncclCommInitRankConfig), -1 for
    /// ncclCommInitRank.
    int blocking = -1;
  };
  std::vector<Init> inits;

  /// The last ncclAllReduce call's arguments.
  const void *lastSend = nullptr;
  void *lastRecv = nullptr;
  uint64_t lastCount = 0;
  int lastType = -1, lastOp = -1;
  int lastRanks = 0; ///< Its communicator's nranks.
  void *lastStream = nullptr;
};

/// Inside the fake library: what FakeCudaDriver.cpp lends FakeCublas.cpp
/// and FakeNccl.cpp.
namespace fake {
/// Runs `op` now, or records it when `stream` (a CUstream) is being
/// captured. Returns a CUresult.
int enqueue(void *stream, std::function<void()> op);
/// True when [p, p + bytes) lies inside one live device allocation.
bool isDeviceRange(const void *p, uint64_t bytes);
/// True when a call that is unsafe during a capture (a synchronous
/// allocation) must fail now; the captures it breaks are invalidated.
bool refusesUnsafeCall();
/// The context current on the calling thread (cuCtxSetCurrent).
void *currentContext();
/// The library-wide lock every entry point holds (FAKE_LOCK).
std::recursive_mutex &mutex();
/// Makes `stream` stuck (a collective waiting for a peer): work queued on it
/// is held and cuStreamQuery says CUDA_ERROR_NOT_READY until as many
/// unblockStream calls; then the held work runs.
void blockStream(void *stream);
void unblockStream(void *stream);
} // namespace fake

/// The first statement of every exported fake entry point.
#define FAKE_LOCK()                                                            \
  std::lock_guard<std::recursive_mutex> fakeLock(                              \
      ::jamba::rt::testing::fake::mutex())

} // namespace testing
} // namespace rt
} // namespace jamba

/// The fake driver's control block (exported by the fake library).
extern "C" jamba::rt::testing::FakeCudaControl *jamba_fake_cuda_control();
/// The fake cuBLAS's control block (exported by the same library).
extern "C" jamba::rt::testing::FakeCublasControl *jamba_fake_cublas_control();
/// The fake NCCL's control block (exported by the same library).
extern "C" jamba::rt::testing::FakeNcclControl *jamba_fake_nccl_control();

#endif // JAMBA_UNITTESTS_RUNTIME_FAKECUDA_H

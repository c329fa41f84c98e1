//===- Nccl.h - NCCL, through dlopen, for GPU ranks -------------*- C++ -*-===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// A sharded CUDA artifact runs as one process per GPU (started by mpirun,
// like the CPU ranks), and its kernels' host code sums partial results over
// the ranks with jamba_rt_cuda_all_reduce_f32 (CudaKernelAbi.h), which runs
// ncclAllReduce on the session's stream. Like the driver (CudaDriver.h) and
// cuBLAS (Cublas.h), NCCL is reached only through dlopen and dlsym: no
// nccl.h, no link to libnccl, so the runtime builds and starts where there is
// no NCCL, and a single-rank model never loads it.
//
// The loader tries "libnccl.so.2", then "libnccl.so" (setNcclLibrary()
// replaces the list with one name). The few NCCL types and constants the
// runtime needs are declared here with the values of NCCL's public header
// (nccl.h, checked against NCCL 2.28.9), which NCCL keeps stable across
// releases.
//
// NCCL's communicators are bootstrapped over the run's rt::Communicator (MPI):
// the first rank of each group makes NCCL's unique id (ncclGetUniqueId), the
// communicator broadcasts it (Communicator::broadcastBytes) and every rank of
// the group calls ncclCommInitRank with it on the session's device. A CUDA
// session with several ranks owns one NcclRanks, which holds those
// communicators.
//
// No NCCL wait is unbounded: communicators are made non-blocking (NCCL 2.14
// and later), so that ncclCommInitRank's rendezvous and a collective whose
// peer is stuck can be given up after JAMBA_COLLECTIVE_TIMEOUT seconds
// (rt::collectiveTimeoutSeconds) and the communicators aborted, and the
// session's stream is waited for by polling it and NCCL's asynchronous
// errors instead of cuStreamSynchronize. docs/Runtime.md, "GPU ranks
// (NCCL)", says how the pieces fit. No MLIR or LLVM header.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_RUNTIME_NCCL_H
#define JAMBA_RUNTIME_NCCL_H

#include "jamba/Runtime/CudaDriver.h"

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace jamba {
namespace rt {

class Communicator;

namespace cuda {

//===----------------------------------------------------------------------===//
// NCCL's types and constants (nccl.h values)
//===----------------------------------------------------------------------===//

/// ncclResult_t, ncclDataType_t and ncclRedOp_t are C enums: int-sized.
using ncclResult_t = int;
using ncclComm_t = struct ncclComm *;
using ncclDataType_t = int;
using ncclRedOp_t = int;

constexpr ncclResult_t ncclSuccess = 0;
constexpr ncclResult_t ncclUnhandledCudaError = 1;
constexpr ncclResult_t ncclSystemError = 2;
constexpr ncclResult_t ncclInternalError = 3;
constexpr ncclResult_t ncclInvalidArgument = 4;
constexpr ncclResult_t ncclInvalidUsage = 5;
constexpr ncclResult_t ncclRemoteError = 6;
constexpr ncclResult_t ncclInProgress = 7;

/// NCCL_CONFIG_UNDEF_INT: a config field NCCL chooses.
constexpr int kNcclConfigUndefined = -2147483647 - 1;
/// ncclConfig_t's magic (NCCL_CONFIG_INITIALIZER).
constexpr unsigned kNcclConfigMagic = 0xcafebeef;
/// NCCL_VERSION(2, 14, 0): the config version this runtime declares.
constexpr unsigned kNcclConfigVersion = 21400;

/// ncclConfig_t as NCCL 2.14 declared it, the first version with the
/// config: its size, magic and version, then `blocking`. NCCL reads a
/// config by the size and version it carries and gives the fields a newer
/// header added their defaults, so this prefix stays valid for later
/// releases (checked against NCCL 2.28.9's nccl.h and init.cc).
struct ncclConfig_t {
  size_t size = sizeof(ncclConfig_t);
  unsigned magic = kNcclConfigMagic;
  unsigned version = kNcclConfigVersion;
  /// 0: the communicator's calls return at once (ncclInProgress while
  /// their work is set up); 1: they block; undefined: NCCL's default
  /// (blocking).
  int blocking = kNcclConfigUndefined;
};

constexpr ncclDataType_t ncclFloat32 = 7;
constexpr ncclRedOp_t ncclSum = 0;

/// NCCL_UNIQUE_ID_BYTES: ncclUniqueId is an opaque 128-byte value, passed
/// by value to ncclCommInitRank.
constexpr size_t kNcclUniqueIdBytes = 128;
struct ncclUniqueId {
  char internal[kNcclUniqueIdBytes];
};

/// NCCL_VERSION_CODE of the first NCCL whose collectives can be captured
/// into a CUDA graph (2.9.0; codes from 2.9 on are major * 10000 + minor *
/// 100 + patch, before it major * 1000 + minor * 100 + patch).
constexpr int kNcclFirstCapturableVersion = 20900;

//===----------------------------------------------------------------------===//
// The library's entry points
//===----------------------------------------------------------------------===//

/// The NCCL functions the runtime calls, resolved once from the library.
/// Every member is non-null in a loaded library except the optional ones
/// (ncclCommGetAsyncError, ncclCommInitRankConfig, ncclCommFinalize).
struct NcclLibrary {
  /// The library name it was loaded from ("libnccl.so.2").
  std::string library;
  /// Its NCCL_VERSION_CODE (ncclGetVersion), e.g. 22809 for 2.28.9.
  int version = 0;

  ncclResult_t (*ncclGetVersion)(int *version) = nullptr;
  ncclResult_t (*ncclGetUniqueId)(ncclUniqueId *id) = nullptr;
  ncclResult_t (*ncclCommInitRank)(ncclComm_t *comm, int nranks,
                                   ncclUniqueId id, int rank) = nullptr;
  ncclResult_t (*ncclCommDestroy)(ncclComm_t comm) = nullptr;
  ncclResult_t (*ncclCommAbort)(ncclComm_t comm) = nullptr;
  /// The stream is a cudaStream_t, which is a CUstream.
  ncclResult_t (*ncclAllReduce)(const void *send, void *recv, size_t count,
                                ncclDataType_t type, ncclRedOp_t op,
                                ncclComm_t comm, CUstream stream) = nullptr;
  const char *(*ncclGetErrorString)(ncclResult_t result) = nullptr;
  /// Optional.
  ncclResult_t (*ncclCommGetAsyncError)(ncclComm_t comm,
                                        ncclResult_t *error) = nullptr;
  /// Optional (NCCL 2.14 and later): with ncclCommGetAsyncError, what
  /// non-blocking communicators need.
  ncclResult_t (*ncclCommInitRankConfig)(ncclComm_t *comm, int nranks,
                                         ncclUniqueId id, int rank,
                                         ncclConfig_t *config) = nullptr;
  ncclResult_t (*ncclCommFinalize)(ncclComm_t comm) = nullptr;

  /// True when communicators can be made non-blocking, so that every wait
  /// on NCCL can be bounded (ncclCommInitRankConfig, ncclCommFinalize and
  /// ncclCommGetAsyncError are all there).
  bool canBeNonBlocking() const {
    return ncclCommInitRankConfig && ncclCommFinalize && ncclCommGetAsyncError;
  }

  /// "NAME (NCCL's string)" for `result`, e.g. "ncclInvalidArgument
  /// (invalid argument ...)"; "NCCL result N (...)" for a code this
  /// runtime cannot name.
  std::string resultText(ncclResult_t result) const;

  /// Success, or "`call`: NAME (NCCL's string)".
  Status check(ncclResult_t result, const char *call) const;
};

/// "2.28.9" for NCCL_VERSION_CODE 22809 (and "2.8.4" for 2804).
std::string ncclVersionText(int code);

/// True when NCCL of version `code` can be captured into a CUDA graph.
bool ncclCanBeCaptured(int code);

/// The libraries loadNccl() tries, in order: "libnccl.so.2",
/// "libnccl.so", or the one setNcclLibrary() named.
std::vector<std::string> ncclLibraries();

/// Makes loadNccl() try only `library` (an empty name restores the default
/// list). For tests, which substitute a fake NCCL, and for unusual installs;
/// a library already loaded stays loaded (communicators may use it).
void setNcclLibrary(const std::string &library);

/// The process-wide NCCL from ncclLibraries(): the first of them that
/// dlopen() opens, every entry point resolved and its version read, once
/// per library name; later calls return the same library. Fails with "no
/// NCCL: dlopen(FIRST): WHY (tried A, B)" (WHY: the first library's dlopen
/// error) when none opens, and "no NCCL: LIB lacks SYMBOL ..." when the one
/// that opens is too old. A failure is not remembered: the next call tries
/// again.
StatusOr<const NcclLibrary *> loadNccl();
/// The same for the given list (a test names libraries that do not exist).
StatusOr<const NcclLibrary *>
loadNccl(const std::vector<std::string> &libraries);

//===----------------------------------------------------------------------===//
// A session's NCCL communicators
//===----------------------------------------------------------------------===//

/// What the first rank of a group broadcasts when a communicator is made:
/// NCCL's unique id (kNcclUniqueIdBytes), then one byte, 1 when the id is
/// valid and 0 when ncclGetUniqueId failed there (the other ranks then fail
/// at once instead of waiting for an id that never comes).
constexpr size_t kNcclBootstrapBytes = kNcclUniqueIdBytes + 1;

/// The NCCL communicators of a CUDA session that is one of several ranks:
/// one per group size, over the ranks of an rt::Communicator. Not
/// thread-safe: one thread uses a session at a time.
class NcclRanks {
public:
  /// Nothing is created yet. `nccl`, `driver`, `stream` (the session's) and
  /// `ranks` (size > 1) must outlive this. Its waits on NCCL give up after
  /// rt::collectiveTimeoutSeconds() (JAMBA_COLLECTIVE_TIMEOUT), read now.
  NcclRanks(const NcclLibrary &nccl, const CudaDriver &driver, CUstream stream,
            Communicator &ranks);
  /// Destroys every communicator, in the order of their group sizes (the
  /// same on every rank): ncclCommFinalize, waited for within the timeout,
  /// then ncclCommDestroy; ncclCommAbort once an NCCL call has failed
  /// (markFailed) or the finalisation does not complete. The session's
  /// context must be current and its stream idle (waitStream).
  ~NcclRanks();
  NcclRanks(const NcclRanks &) = delete;
  NcclRanks &operator=(const NcclRanks &) = delete;

  int64_t rank() const;
  int64_t size() const;
  const NcclLibrary &library() const { return nccl; }
  Communicator &communicator() const { return ranks; }

  /// The NCCL communicator of this rank's group of `groupSize` consecutive
  /// ranks (0: all ranks; at least 2, dividing size()), made on first use
  /// with the session's context current: rank 0 of the group calls
  /// ncclGetUniqueId, the rt::Communicator broadcasts the id from there over
  /// the group (kNcclBootstrapBytes), and ncclCommInitRank(groupSize, id,
  /// rank() % groupSize) joins it. Every rank of the group must ask for it
  /// at the same point (with MPI, every rank of the run, as with
  /// Communicator::allReduceSumF32Group). While the session's stream is
  /// being captured into a CUDA graph the creation runs with the thread's
  /// capture mode relaxed (NCCL allocates device memory; it is not part of
  /// the graph). Errors name the group and the call.
  StatusOr<ncclComm_t> comm(int64_t groupSize);

  /// The group sizes with a communicator made, in order.
  std::vector<int64_t> groupSizes() const;

  /// Success, or the first error ncclCommGetAsyncError reports on a
  /// communicator (an error on another rank or the network, which NCCL
  /// reports asynchronously); nothing to check when the library lacks it.
  Status asyncErrors();

  /// What to do with `result`, what `call` on the communicator of
  /// `groupSize` returned: ncclSuccess is done; ncclInProgress (a
  /// non-blocking communicator setting the call up) is waited for by
  /// polling the communicator's state, within the timeout; anything else,
  /// and a wait that fails or times out, aborts the communicators and is an
  /// error naming the group and the call.
  Status complete(int64_t groupSize, ncclResult_t result, const char *call);

  /// Waits until everything queued on the session's stream has finished,
  /// as cuStreamSynchronize would, but polling (cuStreamQuery) so that an
  /// asynchronous NCCL error, or the timeout passing (a collective waiting
  /// for a rank that is stuck or gone), aborts the communicators and fails
  /// the wait instead of hanging. Not during a capture.
  Status waitStream();

  /// True when the communicators are made non-blocking (the library can).
  bool nonBlocking() const { return nccl.canBeNonBlocking(); }
  /// The seconds a wait on NCCL may take.
  double timeoutSeconds() const { return timeout; }

  /// Makes the destructor abort the communicators instead of destroying
  /// them (a failed NCCL call can leave a collective that never ends).
  void markFailed() { failed = true; }
  /// Aborts every communicator now (ncclCommAbort ends the collectives
  /// still running on the device); later calls of comm() fail.
  void abortAll();
  /// True once abortAll() ran.
  bool aborted() const { return abortedAll; }

private:
  std::string describe(int64_t groupSize) const;
  StatusOr<ncclComm_t> create(int64_t groupSize);
  /// Polls `c`'s state until it is no longer ncclInProgress: success, the
  /// state's error ("`call`: NAME (text)") or "`call` did not complete
  /// within T s ...".
  Status settle(ncclComm_t c, const char *call);

  const NcclLibrary &nccl;
  const CudaDriver &driver;
  CUstream stream;
  Communicator &ranks;
  std::map<int64_t, ncclComm_t> comms;
  double timeout;
  bool failed = false;
  bool abortedAll = false;
};

} // namespace cuda
} // namespace rt
} // namespace jamba

#endif // JAMBA_RUNTIME_NCCL_H

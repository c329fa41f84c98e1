//===- Nccl.cpp - NCCL, reached through dlopen ----------------------------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// Loads NCCL once per library name and resolves the entry points the runtime
// uses; makes a session's NCCL communicators, bootstrapped over the run's
// rt::Communicator. Nothing here includes nccl.h or links to libnccl
// (Nccl.h says why).
//
//===----------------------------------------------------------------------===//

#include "jamba/Runtime/Nccl.h"

#include "DynamicLibrary.h"
#include "jamba/Runtime/Communicator.h"

#include <chrono>
#include <cstring>
#include <iterator>
#include <memory>
#include <thread>

using namespace jamba;
using namespace jamba::rt;
using namespace jamba::rt::cuda;
using ckpt::makeError;

namespace {

/// ncclResult_t's names, by value (nccl.h).
const char *const kResultNames[] = {
    "ncclSuccess",       "ncclUnhandledCudaError", "ncclSystemError",
    "ncclInternalError", "ncclInvalidArgument",    "ncclInvalidUsage",
    "ncclRemoteError",   "ncclInProgress"};

/// Fills every entry point from the open library and reads the version, or
/// says what is missing (and closes it).
StatusOr<std::unique_ptr<NcclLibrary>> resolveLibrary(LibrarySymbols &symbols) {
  auto l = std::make_unique<NcclLibrary>();
  l->library = symbols.library();
#define JAMBA_NCCL_RESOLVE(fn) symbols.require(#fn, l->fn);
  JAMBA_NCCL_RESOLVE(ncclGetVersion)
  JAMBA_NCCL_RESOLVE(ncclGetUniqueId)
  JAMBA_NCCL_RESOLVE(ncclCommInitRank)
  JAMBA_NCCL_RESOLVE(ncclCommDestroy)
  JAMBA_NCCL_RESOLVE(ncclCommAbort)
  JAMBA_NCCL_RESOLVE(ncclAllReduce)
  JAMBA_NCCL_RESOLVE(ncclGetErrorString)
#undef JAMBA_NCCL_RESOLVE
  JAMBA_CKPT_RETURN_IF_ERROR(
      symbols.checkRequired("(an NCCL older than 2.4?)"));
  // Optional: without it asynchronous errors are not looked for.
  symbols.optional("ncclCommGetAsyncError", l->ncclCommGetAsyncError);
  // Optional (2.14 and later): without them communicators block, and a
  // wait inside NCCL cannot be bounded.
  symbols.optional("ncclCommInitRankConfig", l->ncclCommInitRankConfig);
  symbols.optional("ncclCommFinalize", l->ncclCommFinalize);
  Status version = l->check(l->ncclGetVersion(&l->version), "ncclGetVersion");
  if (!version.ok()) {
    symbols.close();
    return makeError("no NCCL: ", l->library, ": ", version.message());
  }
  return l;
}

/// NCCL 2's soname, then the development symlink. Never destroyed: loaded
/// libraries live as long as the process, as the driver does
/// (CudaDriver.cpp), since a session's communicators may use one at any
/// time.
LibraryLoader<NcclLibrary> &loader() {
  static auto *nccl = new LibraryLoader<NcclLibrary>(
      "NCCL", {"libnccl.so.2", "libnccl.so"}, resolveLibrary);
  return *nccl;
}

/// Seconds since `start`.
double secondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

/// Between two polls of a wait: spin (yielding) for the first ones, since
/// most waits are short (a decode step), then sleep 20 us.
void pause(int polls) {
  if (polls < 1000)
    std::this_thread::yield();
  else
    std::this_thread::sleep_for(std::chrono::microseconds(20));
}

} // namespace

//===----------------------------------------------------------------------===//
// The library
//===----------------------------------------------------------------------===//

std::string NcclLibrary::resultText(ncclResult_t result) const {
  std::string name = result >= 0 && size_t(result) < std::size(kResultNames)
                         ? kResultNames[result]
                         : ckpt::concat("NCCL result ", result);
  const char *text = ncclGetErrorString ? ncclGetErrorString(result) : nullptr;
  if (!text || !*text)
    return name;
  return ckpt::concat(name, " (", text, ")");
}

Status NcclLibrary::check(ncclResult_t result, const char *call) const {
  if (result == ncclSuccess)
    return Status::success();
  return makeError(call, ": ", resultText(result));
}

std::string cuda::ncclVersionText(int code) {
  if (code >= 10000)
    return ckpt::concat(code / 10000, ".", code / 100 % 100, ".", code % 100);
  return ckpt::concat(code / 1000, ".", code / 100 % 10, ".", code % 100);
}

bool cuda::ncclCanBeCaptured(int code) {
  return code >= kNcclFirstCapturableVersion;
}

std::vector<std::string> cuda::ncclLibraries() { return loader().libraries(); }

void cuda::setNcclLibrary(const std::string &library) {
  loader().setLibrary(library);
}

StatusOr<const NcclLibrary *> cuda::loadNccl() {
  return loadNccl(ncclLibraries());
}

StatusOr<const NcclLibrary *>
cuda::loadNccl(const std::vector<std::string> &libraries) {
  return loader().loadFirst(libraries);
}

//===----------------------------------------------------------------------===//
// A session's NCCL communicators
//===----------------------------------------------------------------------===//

NcclRanks::NcclRanks(const NcclLibrary &library, const CudaDriver &cudaDriver,
                     CUstream sessionStream, Communicator &communicator)
    : nccl(library), driver(cudaDriver), stream(sessionStream),
      ranks(communicator), timeout(collectiveTimeoutSeconds()) {}

NcclRanks::~NcclRanks() {
  for (auto &[groupSize, c] : comms) {
    if (failed) {
      nccl.ncclCommAbort(c);
      continue;
    }
    // A non-blocking communicator is finalised first (NCCL's collective
    // flush), waited for within the timeout, so that ncclCommDestroy only
    // frees local resources; a finalisation that fails or does not end
    // (another rank gone) is given up with an abort.
    if (nonBlocking()) {
      ncclResult_t r = nccl.ncclCommFinalize(c);
      if ((r != ncclSuccess && r != ncclInProgress) ||
          !settle(c, "ncclCommFinalize").ok()) {
        failed = true;
        nccl.ncclCommAbort(c);
        continue;
      }
    }
    nccl.ncclCommDestroy(c);
  }
}

void NcclRanks::abortAll() {
  for (auto &[groupSize, c] : comms)
    nccl.ncclCommAbort(c);
  comms.clear();
  failed = true;
  abortedAll = true;
}

int64_t NcclRanks::rank() const { return ranks.rank(); }

int64_t NcclRanks::size() const { return ranks.size(); }

std::vector<int64_t> NcclRanks::groupSizes() const {
  std::vector<int64_t> sizes;
  for (const auto &entry : comms)
    sizes.push_back(entry.first);
  return sizes;
}

std::string NcclRanks::describe(int64_t groupSize) const {
  if (groupSize == size())
    return ckpt::concat("the NCCL communicator of all ", size(), " ranks");
  int64_t first = rank() / groupSize * groupSize;
  return ckpt::concat("the NCCL communicator of ranks ", first, "..",
                      first + groupSize - 1, " (groups of ", groupSize, " of ",
                      size(), " ranks)");
}

StatusOr<ncclComm_t> NcclRanks::comm(int64_t groupSize) {
  const int64_t n = size();
  if (groupSize < 0 || (groupSize > 0 && n % groupSize != 0))
    return makeError("groups of ", groupSize, " ranks do not divide the ", n,
                     " ranks");
  const int64_t g = groupSize == 0 ? n : groupSize;
  if (g < 2)
    return makeError("a group of one rank has no NCCL communicator");
  if (abortedAll)
    return makeError(describe(g), ": the session's NCCL communicators were "
                                  "aborted after an earlier error");
  auto it = comms.find(g);
  if (it != comms.end())
    return it->second;

  // A group's communicator is normally made by the first all-reduce of a
  // prefill. If it is a decode step's being captured instead, NCCL's
  // initialisation (device allocations, streams of its own) is not
  // capturable: as for cuBLAS's handle (Cublas.cpp), this thread's capture
  // mode is relaxed around it, so it runs at once and is not recorded.
  CUstreamCaptureStatus capture = CU_STREAM_CAPTURE_STATUS_NONE;
  JAMBA_CKPT_RETURN_IF_ERROR(driver.check(
      driver.cuStreamIsCapturing(stream, &capture), "cuStreamIsCapturing"));
  if (capture == CU_STREAM_CAPTURE_STATUS_NONE)
    return create(g);
  CUstreamCaptureMode mode = CU_STREAM_CAPTURE_MODE_RELAXED;
  JAMBA_CKPT_RETURN_IF_ERROR(
      driver.check(driver.cuThreadExchangeStreamCaptureMode(&mode),
                   "cuThreadExchangeStreamCaptureMode"));
  StatusOr<ncclComm_t> created = create(g);
  Status restored =
      driver.check(driver.cuThreadExchangeStreamCaptureMode(&mode),
                   "cuThreadExchangeStreamCaptureMode");
  if (!created.ok())
    return created;
  JAMBA_CKPT_RETURN_IF_ERROR(restored);
  return created;
}

StatusOr<ncclComm_t> NcclRanks::create(int64_t g) {
  const std::string what = describe(g);
  const int64_t groupRank = rank() % g;
  // The first rank of the group makes the id, and sends it even when that
  // failed (flag 0), so that the others fail at once too.
  char message[kNcclBootstrapBytes] = {};
  Status made = Status::success();
  if (groupRank == 0) {
    ncclUniqueId id;
    made = nccl.check(nccl.ncclGetUniqueId(&id), "ncclGetUniqueId");
    if (made.ok()) {
      std::memcpy(message, id.internal, kNcclUniqueIdBytes);
      message[kNcclUniqueIdBytes] = 1;
    }
  }
  Status sent = ranks.broadcastBytes(message, sizeof(message), 0, g);
  if (!made.ok())
    return makeError(what, ": ", made.message());
  if (!sent.ok())
    return makeError(what, ": broadcasting NCCL's unique id (", ranks.name(),
                     "): ", sent.message());
  if (message[kNcclUniqueIdBytes] != 1)
    return makeError(what, ": rank ", rank() - groupRank,
                     " could not make NCCL's unique id (its own error says "
                     "why)");
  ncclUniqueId id;
  std::memcpy(id.internal, message, kNcclUniqueIdBytes);
  // Collective: it completes once every rank of the group has joined, on
  // the device of the current context (the session's). A non-blocking
  // communicator returns at once and is polled until it has, within the
  // timeout: a rank that never joins is given up, not waited for forever.
  ncclComm_t c = nullptr;
  const char *call =
      nonBlocking() ? "ncclCommInitRankConfig" : "ncclCommInitRank";
  ncclResult_t result;
  if (nonBlocking()) {
    ncclConfig_t config;
    config.blocking = 0;
    result =
        nccl.ncclCommInitRankConfig(&c, int(g), id, int(groupRank), &config);
  } else {
    result = nccl.ncclCommInitRank(&c, int(g), id, int(groupRank));
  }
  Status joined = nccl.check(result, call);
  if (result == ncclInProgress && c)
    joined = settle(c, call);
  if (!joined.ok()) {
    failed = true;
    if (c)
      nccl.ncclCommAbort(c);
    return makeError(what, ": ", joined.message());
  }
  comms[g] = c;
  return c;
}

Status NcclRanks::settle(ncclComm_t c, const char *call) {
  if (!nccl.ncclCommGetAsyncError)
    return Status::success();
  auto start = std::chrono::steady_clock::now();
  for (int polls = 0;; ++polls) {
    ncclResult_t state = ncclSuccess;
    JAMBA_CKPT_RETURN_IF_ERROR(nccl.check(nccl.ncclCommGetAsyncError(c, &state),
                                          "ncclCommGetAsyncError"));
    if (state != ncclInProgress)
      return nccl.check(state, call);
    if (secondsSince(start) > timeout)
      return makeError(call, " did not complete within ", timeout,
                       " s: another rank is stuck or gone "
                       "(JAMBA_COLLECTIVE_TIMEOUT sets the limit)");
    pause(polls);
  }
}

Status NcclRanks::complete(int64_t groupSize, ncclResult_t result,
                           const char *call) {
  if (result == ncclSuccess)
    return Status::success();
  const int64_t g = groupSize == 0 ? size() : groupSize;
  Status done = nccl.check(result, call);
  auto it = comms.find(g);
  if (result == ncclInProgress && nonBlocking() && it != comms.end())
    done = settle(it->second, call);
  if (done.ok())
    return done;
  abortAll();
  return makeError(describe(g), ": ", done.message());
}

Status NcclRanks::waitStream() {
  auto start = std::chrono::steady_clock::now();
  for (int polls = 0;; ++polls) {
    CUresult r = driver.cuStreamQuery(stream);
    if (r == CUDA_SUCCESS)
      break;
    if (r != CUDA_ERROR_NOT_READY)
      return driver.check(r, "cuStreamQuery");
    // An error NCCL saw (another rank's, or the network's) would leave the
    // collective waiting: abort rather than wait for the timeout.
    Status async = asyncErrors();
    if (!async.ok()) {
      abortAll();
      return async;
    }
    if (secondsSince(start) > timeout) {
      abortAll();
      return makeError("the session's stream did not finish within ", timeout,
                       " s: a collective is waiting for a rank that is stuck "
                       "or gone, so the NCCL communicators were aborted "
                       "(JAMBA_COLLECTIVE_TIMEOUT sets the limit)");
    }
    pause(polls);
  }
  return asyncErrors();
}

Status NcclRanks::asyncErrors() {
  if (!nccl.ncclCommGetAsyncError)
    return Status::success();
  for (const auto &[groupSize, c] : comms) {
    ncclResult_t async = ncclSuccess;
    Status queried = nccl.check(nccl.ncclCommGetAsyncError(c, &async),
                                "ncclCommGetAsyncError");
    if (queried.ok() && (async == ncclSuccess || async == ncclInProgress))
      continue;
    failed = true;
    if (!queried.ok())
      return makeError(describe(groupSize), ": ", queried.message());
    return makeError(describe(groupSize),
                     ": ncclCommGetAsyncError: ", nccl.resultText(async));
  }
  return Status::success();
}

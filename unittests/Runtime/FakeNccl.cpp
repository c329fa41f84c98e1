//===- FakeNccl.cpp - A fake NCCL for the runtime tests -------------------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// Test code, part of the fake driver library (FakeCuda.h): the NCCL entry
// points the runtime resolves (Nccl.cpp), over the fake's host-memory
// "device", for one process that stands for every rank. FakeCuda.h says
// what its calls do; in short, ids are recognisable, communicators remember
// how they were made, and an all-reduce multiplies by the communicator's
// rank count (the sum of that many equal ranks) on the given stream.
//
// The signatures are the runtime's declarations (Nccl.h), so this checks the
// runtime's logic, not its declarations of NCCL's ABI.
//
//===----------------------------------------------------------------------===//

#include "FakeCuda.h"

#include "jamba/Runtime/Nccl.h"

#include <cstdio>
#include <cstring>
#include <set>
#include <vector>

using namespace jamba::rt::cuda;
using jamba::rt::testing::FakeNcclControl;
namespace fake = jamba::rt::testing::fake;

namespace {

FakeNcclControl control;

struct FakeComm {
  int nranks = 0;
  int rank = 0;
  bool nonBlocking = false;
  /// The state ncclCommGetAsyncError reports is ncclInProgress for this
  /// many more polls (a non-blocking call being set up), or for ever while
  /// `hung` (a peer that never joins), until the communicator is aborted.
  int64_t pendingPolls = 0;
  bool hung = false;
  /// The streams its stuck all-reduces block (FakeNcclControl::hangAllReduce).
  std::vector<void *> blocked;
};

std::set<FakeComm *> liveComms;

FakeComm *commOf(ncclComm_t comm) {
  auto *c = reinterpret_cast<FakeComm *>(comm);
  return liveComms.count(c) ? c : nullptr;
}

ncclResult_t release(ncclComm_t comm) {
  FakeComm *c = commOf(comm);
  if (!c)
    return ncclInvalidArgument;
  // Aborting (or destroying) ends the collectives still running: the
  // streams they held go on.
  for (void *stream : c->blocked)
    fake::unblockStream(stream);
  liveComms.erase(c);
  delete c;
  --control.liveComms;
  return ncclSuccess;
}

} // namespace

#define FAKE_EXPORT extern "C" __attribute__((visibility("default")))

FAKE_EXPORT FakeNcclControl *jamba_fake_nccl_control() { return &control; }

FAKE_EXPORT ncclResult_t ncclGetVersion(int *version) {
  FAKE_LOCK();
  if (!version)
    return ncclInvalidArgument;
  *version = control.version;
  return ncclSuccess;
}

FAKE_EXPORT const char *ncclGetErrorString(ncclResult_t result) {
  FAKE_LOCK();
  switch (result) {
  case ncclSuccess:
    return "no error (fake NCCL)";
  case ncclUnhandledCudaError:
    return "unhandled cuda error (fake NCCL)";
  case ncclInvalidArgument:
    return "invalid argument (fake NCCL)";
  case ncclInvalidUsage:
    return "invalid usage (fake NCCL)";
  case ncclRemoteError:
    return "remote process exited (fake NCCL)";
  default:
    return "other error (fake NCCL)";
  }
}

FAKE_EXPORT ncclResult_t ncclGetUniqueId(ncclUniqueId *id) {
  FAKE_LOCK();
  if (!id)
    return ncclInvalidArgument;
  if (control.failUniqueIdWith)
    return control.failUniqueIdWith;
  std::memset(id->internal, 0, sizeof(id->internal));
  std::snprintf(id->internal, sizeof(id->internal), "fake-nccl-id-%lld",
                static_cast<long long>(++control.uniqueIds));
  return ncclSuccess;
}

namespace {

/// Both initialisations; `blocking` is -1 for ncclCommInitRank.
ncclResult_t initRank(ncclComm_t *comm, int nranks, ncclUniqueId id, int rank,
                      int blocking) {
  if (!comm || nranks < 1 || rank < 0 || rank >= nranks)
    return ncclInvalidArgument;
  *comm = nullptr;
  if (control.failInitWith)
    return control.failInitWith;
  // The real one allocates device memory (its cudaMalloc fails during a
  // capture that refuses it).
  if (fake::refusesUnsafeCall())
    return ncclUnhandledCudaError;
  const bool nonBlocking = blocking == 0;
  // A blocking initialisation whose peer never joins would hang: the fake
  // fails it instead, so that a test expecting a bounded wait fails.
  if (control.hangInit && !nonBlocking)
    return ncclInternalError;
  FakeNcclControl::Init init;
  init.nranks = nranks;
  init.rank = rank;
  init.id.assign(id.internal, strnlen(id.internal, sizeof(id.internal)));
  init.context = fake::currentContext();
  init.blocking = blocking;
  control.inits.push_back(init);
  auto *c = new FakeComm();
  c->nranks = nranks;
  c->rank = rank;
  c->nonBlocking = nonBlocking;
  liveComms.insert(c);
  ++control.liveComms;
  *comm = reinterpret_cast<ncclComm_t>(c);
  if (!nonBlocking)
    return ncclSuccess;
  c->hung = control.hangInit;
  c->pendingPolls = control.initPendingPolls;
  return c->hung || c->pendingPolls > 0 ? ncclInProgress : ncclSuccess;
}

} // namespace

FAKE_EXPORT ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks,
                                          ncclUniqueId id, int rank) {
  FAKE_LOCK();
  return initRank(comm, nranks, id, rank, -1);
}

FAKE_EXPORT ncclResult_t ncclCommInitRankConfig(ncclComm_t *comm, int nranks,
                                                ncclUniqueId id, int rank,
                                                ncclConfig_t *config) {
  FAKE_LOCK();
  // NCCL's own checks of a config: its size covers the version's fields,
  // and it was made by NCCL_CONFIG_INITIALIZER.
  if (!config || config->size < sizeof(ncclConfig_t) ||
      config->magic != kNcclConfigMagic || config->version < kNcclConfigVersion)
    return ncclInvalidArgument;
  int blocking =
      config->blocking == kNcclConfigUndefined ? 1 : config->blocking;
  return initRank(comm, nranks, id, rank, blocking);
}

FAKE_EXPORT ncclResult_t ncclCommFinalize(ncclComm_t comm) {
  FAKE_LOCK();
  FakeComm *c = commOf(comm);
  if (!c)
    return ncclInvalidArgument;
  ++control.finalizes;
  if (!c->nonBlocking)
    return ncclSuccess;
  c->hung = control.hangFinalize;
  return c->hung ? ncclInProgress : ncclSuccess;
}

FAKE_EXPORT ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  FAKE_LOCK();
  ncclResult_t result = release(comm);
  if (result == ncclSuccess)
    ++control.commsDestroyed;
  return result;
}

FAKE_EXPORT ncclResult_t ncclCommAbort(ncclComm_t comm) {
  FAKE_LOCK();
  ncclResult_t result = release(comm);
  if (result == ncclSuccess)
    ++control.commsAborted;
  return result;
}

FAKE_EXPORT ncclResult_t ncclCommGetAsyncError(ncclComm_t comm,
                                               ncclResult_t *error) {
  FAKE_LOCK();
  FakeComm *c = commOf(comm);
  if (!c || !error)
    return ncclInvalidArgument;
  ++control.asyncErrorPolls;
  if (control.asyncError) {
    *error = control.asyncError;
  } else if (c->hung) {
    *error = ncclInProgress;
  } else if (c->pendingPolls > 0) {
    --c->pendingPolls;
    *error = ncclInProgress;
  } else {
    *error = ncclSuccess;
  }
  return ncclSuccess;
}

FAKE_EXPORT ncclResult_t ncclAllReduce(const void *send, void *recv,
                                       size_t count, ncclDataType_t type,
                                       ncclRedOp_t op, ncclComm_t comm,
                                       CUstream stream) {
  FAKE_LOCK();
  ++control.allReduceCalls;
  control.lastSend = send;
  control.lastRecv = recv;
  control.lastCount = count;
  control.lastType = type;
  control.lastOp = op;
  control.lastStream = stream;
  FakeComm *c = commOf(comm);
  control.lastRanks = c ? c->nranks : 0;
  if (control.failAllReduceWith)
    return control.failAllReduceWith;
  if (!c || type != ncclFloat32 || op != ncclSum)
    return ncclInvalidArgument;
  if (count == 0)
    return ncclSuccess;
  if (!fake::isDeviceRange(send, count * sizeof(float)) ||
      !fake::isDeviceRange(recv, count * sizeof(float)))
    return ncclInvalidArgument;
  const float factor = float(c->nranks);
  auto *in = static_cast<const float *>(send);
  auto *out = static_cast<float *>(recv);
  int result = fake::enqueue(stream, [=] {
    // A peer that never arrives: the collective keeps the stream until
    // the communicator is aborted.
    if (control.hangAllReduce) {
      if (FakeComm *live = commOf(reinterpret_cast<ncclComm_t>(c))) {
        live->blocked.push_back(stream);
        fake::blockStream(stream);
      }
      return;
    }
    ++control.allReduceRuns;
    for (size_t i = 0; i < count; ++i)
      out[i] = factor * in[i];
  });
  if (result != 0)
    return ncclUnhandledCudaError;
  if (c->nonBlocking && control.allReducePendingPolls > 0) {
    c->pendingPolls = control.allReducePendingPolls;
    return ncclInProgress;
  }
  return ncclSuccess;
}

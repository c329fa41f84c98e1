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

using namespace jamba::rt::cuda;
using jamba::rt::testing::FakeNcclControl;
namespace fake = jamba::rt::testing::fake;

namespace {

FakeNcclControl control;

struct FakeComm {
  int nranks = 0;
  int rank = 0;
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
  liveComms.erase(c);
  delete c;
  --control.liveComms;
  return ncclSuccess;
}

} // namespace

#define FAKE_EXPORT extern "C" __attribute__((visibility("default")))

FAKE_EXPORT FakeNcclControl *jamba_fake_nccl_control() { return &control; }

FAKE_EXPORT ncclResult_t ncclGetVersion(int *version) {
  if (!version)
    return ncclInvalidArgument;
  *version = control.version;
  return ncclSuccess;
}

FAKE_EXPORT const char *ncclGetErrorString(ncclResult_t result) {
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
  if (!id)
    return ncclInvalidArgument;
  if (control.failUniqueIdWith)
    return control.failUniqueIdWith;
  std::memset(id->internal, 0, sizeof(id->internal));
  std::snprintf(id->internal, sizeof(id->internal), "fake-nccl-id-%lld",
                static_cast<long long>(++control.uniqueIds));
  return ncclSuccess;
}

FAKE_EXPORT ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks,
                                          ncclUniqueId id, int rank) {
  if (!comm || nranks < 1 || rank < 0 || rank >= nranks)
    return ncclInvalidArgument;
  if (control.failInitWith)
    return control.failInitWith;
  // The real one allocates device memory (its cudaMalloc fails during a
  // capture that refuses it).
  if (fake::refusesUnsafeCall())
    return ncclUnhandledCudaError;
  FakeNcclControl::Init init;
  init.nranks = nranks;
  init.rank = rank;
  init.id.assign(id.internal, strnlen(id.internal, sizeof(id.internal)));
  init.context = fake::currentContext();
  control.inits.push_back(init);
  auto *c = new FakeComm{nranks, rank};
  liveComms.insert(c);
  ++control.liveComms;
  *comm = reinterpret_cast<ncclComm_t>(c);
  return ncclSuccess;
}

FAKE_EXPORT ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  ncclResult_t result = release(comm);
  if (result == ncclSuccess)
    ++control.commsDestroyed;
  return result;
}

FAKE_EXPORT ncclResult_t ncclCommAbort(ncclComm_t comm) {
  ncclResult_t result = release(comm);
  if (result == ncclSuccess)
    ++control.commsAborted;
  return result;
}

FAKE_EXPORT ncclResult_t ncclCommGetAsyncError(ncclComm_t comm,
                                               ncclResult_t *error) {
  if (!commOf(comm) || !error)
    return ncclInvalidArgument;
  *error = control.asyncError;
  return ncclSuccess;
}

FAKE_EXPORT ncclResult_t ncclAllReduce(const void *send, void *recv,
                                       size_t count, ncclDataType_t type,
                                       ncclRedOp_t op, ncclComm_t comm,
                                       CUstream stream) {
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
    ++control.allReduceRuns;
    for (size_t i = 0; i < count; ++i)
      out[i] = factor * in[i];
  });
  return result == 0 ? ncclSuccess : ncclUnhandledCudaError;
}

//===- Communicator.h - Ranks and collectives for sharded runs --*- C++ -*-===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// A tensor- or expert-parallel artifact is run by one process per rank. Its
// compiled kernels call one collective between layers, an in-place sum over
// the ranks, through the C symbol
//
//   extern "C" void jamba_rt_all_reduce_f32(float *data, int64_t count);
//
// which the runtime defines and every executable linking JambaRuntime
// exports, so that the kernels' shared object (dlopen(RTLD_NOW |
// RTLD_LOCAL)) resolves it from the process. The symbol forwards to the
// calling thread's *active* communicator, which the executor sets around each
// run(); with none active it is a no-op (a single rank).
//
// A kernel cannot return a Status, so a failed all-reduce is recorded in the
// active communicator (the first error sticks) and the executor reports it
// after the step (Communicator::takeError()).
//
// No MLIR or LLVM header; MPI only inside Communicator.cpp, and only when the
// build found it (JAMBA_HAVE_MPI). docs/Runtime.md, "Ranks and the
// communicator", says how the pieces fit.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_RUNTIME_COMMUNICATOR_H
#define JAMBA_RUNTIME_COMMUNICATOR_H

#include "jamba/Checkpoint/Status.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace jamba {
namespace rt {

using ckpt::Status;
using ckpt::StatusOr;

/// The ranks of one sharded run and the collective its kernels call.
/// Only one thread calls a communicator at a time (the thread that runs
/// the kernels).
class Communicator {
public:
  virtual ~Communicator();

  /// This process's rank, in [0, size()).
  virtual int64_t rank() const = 0;
  /// The number of ranks.
  virtual int64_t size() const = 0;
  /// A short name for messages ("single", "mpi").
  virtual std::string name() const = 0;

  /// In place: data[i] = the sum over the ranks of data[i], for i in
  /// [0, count). Every rank must call it with the same count. A negative
  /// count, or a null `data` with a positive count, is an error.
  virtual Status allReduceSumF32(float *data, int64_t count) = 0;

  /// The same over this rank's group: the `groupSize` consecutive ranks r
  /// with r / groupSize == rank() / groupSize (the tensor-parallel group of
  /// a model that is also expert-parallel). 0 or size(): all ranks; 1:
  /// nothing to sum. A size that does not divide size() is an error; the
  /// base class has no groups otherwise (MPI has).
  virtual Status allReduceSumF32Group(float *data, int64_t count,
                                      int64_t groupSize);

  /// Copies the `bytes` bytes at `data` on rank `root` of this rank's group
  /// of `groupSize` consecutive ranks (as allReduceSumF32Group counts them;
  /// 0 or size(): all ranks) to `data` on every other rank of the group;
  /// `root` counts from the group's first rank. For setup data, such as
  /// NCCL's unique id (Nccl.h), not for the kernels. Every rank of the group
  /// calls it with the same bytes, root and group size (with groups, every
  /// rank: MPI makes a group's communicator on first use, collectively). A
  /// group size that does not divide size(), a root outside the group and a
  /// null `data` with bytes are errors; a group of one rank has nothing to
  /// send. The base class has no larger groups (MPI has).
  virtual Status broadcastBytes(void *data, size_t bytes, int64_t root,
                                int64_t groupSize = 0);

  /// Makes every rank stop with exit status `code` (MPI_Abort), so that a
  /// rank that failed does not leave the others waiting in a collective.
  /// The single-rank communicator has no one else to stop and returns; the
  /// caller then exits with `code` itself.
  virtual void abort(int code);

  /// Records `error` unless an error is already recorded: the first one
  /// sticks until takeError(). Thread-safe. A success is ignored.
  void recordError(const Status &error);
  /// True while an error is recorded.
  bool hasError() const;
  /// Returns the recorded error (success when none) and clears it.
  Status takeError();

private:
  mutable std::mutex errorMutex;
  Status firstError;
};

/// One rank, no one to talk to: allReduceSumF32 leaves the data as it is.
class SingleRankCommunicator : public Communicator {
public:
  int64_t rank() const override { return 0; }
  int64_t size() const override { return 1; }
  std::string name() const override { return "single"; }
  Status allReduceSumF32(float *data, int64_t count) override;
};

/// True when this build of the runtime has MPI (createMpiCommunicator can
/// work).
bool haveMpi();

/// The ranks of MPI_COMM_WORLD (a duplicate of it, so that an application's
/// own MPI traffic cannot mix with the kernels'). Initialises MPI
/// (MPI_Init_thread, MPI_THREAD_FUNNELED: only the thread that initialised
/// MPI calls it, so run the executor on that thread) unless it already is,
/// and then finalises it when the last communicator created here is
/// destroyed. MPI_COMM_WORLD gets
/// MPI_ERRORS_RETURN, so that a failed MPI call becomes a Status naming the
/// call and MPI's error string. Without MPI in the build it fails with
/// "this build has no MPI (install libopenmpi-dev and reconfigure)".
StatusOr<std::unique_ptr<Communicator>> createMpiCommunicator();

/// True when the environment says this process was started by an MPI
/// launcher (mpirun, mpiexec, srun): OMPI_COMM_WORLD_SIZE, PMI_SIZE or
/// PMIX_RANK is set.
bool launchedByMpi();
/// The number of processes the launcher started, from OMPI_COMM_WORLD_SIZE
/// or PMI_SIZE; 0 when not launched by MPI or the launcher does not say.
int64_t mpiLaunchSize();
/// This process's rank as the launcher says (OMPI_COMM_WORLD_RANK,
/// PMI_RANK, PMIX_RANK); -1 when it does not say. For messages written
/// before a communicator exists.
int64_t mpiLaunchRank();
/// This process's rank among the processes the launcher started on this
/// machine (OMPI_COMM_WORLD_LOCAL_RANK, MPICH's MPI_LOCALRANKID); -1 when it
/// does not say. A GPU rank's default device (cuda::defaultCudaDevice).
int64_t mpiLaunchLocalRank();

/// Seconds a collective may wait for the other ranks before this rank gives
/// up (a rank that hangs, rather than fails, would otherwise keep the others
/// waiting forever): JAMBA_COLLECTIVE_TIMEOUT, a positive number, default
/// 300. MPI's collectives and NCCL's (Nccl.h) both use it.
double collectiveTimeoutSeconds();

/// `size` ranks that are threads of this process ("threads"): element k is
/// rank k's communicator, for the thread that runs rank k (one process
/// driving every GPU of a machine, or several CPU ranks in one process).
/// Their collectives meet in shared memory: the all-reduce sums in rank
/// order, so every rank gets the same bits; every wait gives up after
/// collectiveTimeoutSeconds(); abort() breaks the ranks, so that the others'
/// collectives fail at once (it does not end the process). Empty when
/// `size` < 1. The communicators share their state: destroy them after
/// their threads are done.
std::vector<std::unique_ptr<Communicator>>
createThreadCommunicators(int64_t size);

/// The calling thread's communicator that jamba_rt_all_reduce_f32 forwards
/// to; nullptr (the default) means a single rank. The executor sets it
/// around each run(), on the thread that runs it (ranks that are threads of
/// one process each have their own).
void setActiveCommunicator(Communicator *communicator);
Communicator *activeCommunicator();

/// Makes `communicator` the active one for the scope's lifetime, then
/// restores the one active before.
class ActiveCommunicatorScope {
public:
  explicit ActiveCommunicatorScope(Communicator *communicator)
      : previous(activeCommunicator()) {
    setActiveCommunicator(communicator);
  }
  ~ActiveCommunicatorScope() { setActiveCommunicator(previous); }
  ActiveCommunicatorScope(const ActiveCommunicatorScope &) = delete;
  ActiveCommunicatorScope &operator=(const ActiveCommunicatorScope &) = delete;

private:
  Communicator *previous;
};

} // namespace rt
} // namespace jamba

/// The collective of the kernel ABI (docs/Runtime.md, "Ranks and the
/// communicator"): in place, data[i] = the sum over the ranks of the active
/// communicator of data[i]. No active communicator: nothing to do. A failure
/// is recorded in the active communicator (see Communicator::recordError);
/// once one is recorded, later calls do nothing until it is taken.
extern "C" __attribute__((visibility("default"))) void
jamba_rt_all_reduce_f32(float *data, int64_t count);

/// The group collective of the kernel ABI: the sum over the ranks of this
/// rank's group of `group_size` consecutive ranks (0: all ranks), see
/// Communicator::allReduceSumF32Group. Errors as jamba_rt_all_reduce_f32.
extern "C" __attribute__((visibility("default"))) void
jamba_rt_all_reduce_group_f32(float *data, int64_t count, int64_t group_size);

#endif // JAMBA_RUNTIME_COMMUNICATOR_H

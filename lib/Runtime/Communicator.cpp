//===- Communicator.cpp - Ranks and collectives for sharded runs ----------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// The single-rank and MPI communicators, the process-wide active
// communicator and the kernels' collective `jamba_rt_all_reduce_f32`. MPI is
// compiled in only when CMake found it (JAMBA_HAVE_MPI); its C API is used,
// never the deprecated C++ bindings.
//
//===----------------------------------------------------------------------===//

#include "jamba/Runtime/Communicator.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdlib>
#include <initializer_list>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#if JAMBA_HAVE_MPI
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

using namespace jamba;
using namespace jamba::rt;
using ckpt::makeError;

namespace {

/// The calling thread's active communicator: ranks that are threads of one
/// process (createThreadCommunicators) each run their kernels with their
/// own.
thread_local Communicator *active = nullptr;

/// The arguments every all-reduce checks before touching anything.
Status checkAllReduceArgs(const float *data, int64_t count) {
  if (count < 0)
    return makeError("all-reduce of a negative count (", count, ")");
  if (count > 0 && !data)
    return makeError("all-reduce of ", count, " floats at a null address");
  return Status::success();
}

/// The arguments every broadcast checks before touching anything.
Status checkBroadcastArgs(const void *data, size_t bytes, int64_t root,
                          int64_t groupSize, int64_t size) {
  if (groupSize < 0 || (groupSize > 0 && size % groupSize != 0))
    return makeError("broadcast over groups of ", groupSize, " of ", size,
                     " ranks: the group size must divide the rank count");
  int64_t group = groupSize == 0 ? size : groupSize;
  if (root < 0 || root >= group)
    return makeError("broadcast from rank ", root,
                     ": the group's ranks are 0..", group - 1);
  if (bytes > 0 && !data)
    return makeError("broadcast of ", bytes, " bytes at a null address");
  return Status::success();
}

/// The value of environment variable `name`, or nullptr when it is unset or
/// empty.
const char *env(const char *name) {
  const char *v = std::getenv(name);
  return v && *v ? v : nullptr;
}

/// The first of `names` that is set to a non-negative integer; -1 if none.
int64_t envInteger(std::initializer_list<const char *> names) {
  for (const char *name : names) {
    const char *v = env(name);
    if (!v)
      continue;
    char *end = nullptr;
    long long n = std::strtoll(v, &end, 10);
    if (*end == '\0' && n >= 0)
      return n;
  }
  return -1;
}

} // namespace

//===----------------------------------------------------------------------===//
// Communicator
//===----------------------------------------------------------------------===//

Communicator::~Communicator() = default;

void Communicator::abort(int) {}

void Communicator::recordError(const Status &error) {
  if (error.ok())
    return;
  std::lock_guard<std::mutex> lock(errorMutex);
  if (firstError.ok())
    firstError = error;
}

bool Communicator::hasError() const {
  std::lock_guard<std::mutex> lock(errorMutex);
  return !firstError.ok();
}

Status Communicator::takeError() {
  std::lock_guard<std::mutex> lock(errorMutex);
  Status error = firstError;
  firstError = Status::success();
  return error;
}

Status SingleRankCommunicator::allReduceSumF32(float *data, int64_t count) {
  return checkAllReduceArgs(data, count);
}

Status Communicator::allReduceSumF32Group(float *data, int64_t count,
                                          int64_t groupSize) {
  if (groupSize < 0 || (groupSize > 0 && size() % groupSize != 0))
    return makeError("all-reduce over groups of ", groupSize, " of ", size(),
                     " ranks: the group size must divide the rank count");
  if (groupSize == 0 || groupSize == size())
    return allReduceSumF32(data, count);
  if (groupSize == 1)
    return checkAllReduceArgs(data, count);
  return makeError("the ", name(), " communicator has no groups of ", groupSize,
                   " ranks");
}

Status Communicator::broadcastBytes(void *data, size_t bytes, int64_t root,
                                    int64_t groupSize) {
  JAMBA_CKPT_RETURN_IF_ERROR(
      checkBroadcastArgs(data, bytes, root, groupSize, size()));
  int64_t group = groupSize == 0 ? size() : groupSize;
  if (group == 1)
    return Status::success();
  return makeError("the ", name(), " communicator cannot broadcast over ",
                   group, " ranks");
}

//===----------------------------------------------------------------------===//
// Ranks that are threads of one process
//===----------------------------------------------------------------------===//
//
// Each collective of a group is two barriers over the group's ranks: every
// rank posts its buffer's address and arrives; between the barriers each
// rank reads the others' buffers (the all-reduce sums them, in rank order,
// into a temporary of its own; a broadcast copies the root's); after the
// second barrier, which no rank passes before every rank has read, each rank
// writes its own buffer. The barriers count generations, so a group's next
// collective can start while slow ranks are still leaving the last one.
// Every wait gives up after the collective timeout, and a rank that gave up
// or aborted breaks the ranks: every later wait fails at once.

namespace {

class ThreadRanksState {
public:
  explicit ThreadRanksState(int64_t size)
      : size(size), timeoutSeconds(collectiveTimeoutSeconds()) {}

  /// One group's barrier and posted buffers.
  struct Group {
    explicit Group(int64_t members) : posted(size_t(members), nullptr) {}
    std::vector<void *> posted;
    int64_t arrived = 0;
    uint64_t generation = 0;
  };

  /// The group of `rank` among groups of `groupSize` (>= 2) ranks.
  Group &group(int64_t rank, int64_t groupSize) {
    auto key = std::make_pair(groupSize, rank / groupSize);
    auto it = groups.find(key);
    if (it == groups.end())
      it = groups.emplace(key, Group(groupSize)).first;
    return it->second;
  }

  /// Waits until every rank of `g` (of `members` ranks) has arrived, or
  /// fails: the ranks are broken, or the timeout passed (which breaks
  /// them). `lock` holds `mutex`.
  Status barrier(Group &g, int64_t members, std::unique_lock<std::mutex> &lock,
                 const char *call) {
    if (!broken.empty())
      return makeError(call, ": ", broken);
    const uint64_t generation = g.generation;
    if (++g.arrived == members) {
      g.arrived = 0;
      ++g.generation;
      changed.notify_all();
      return Status::success();
    }
    auto deadline =
        std::chrono::steady_clock::now() +
        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
            std::chrono::duration<double>(timeoutSeconds));
    bool done = changed.wait_until(lock, deadline, [&] {
      return g.generation != generation || !broken.empty();
    });
    if (g.generation != generation)
      return Status::success();
    if (done)
      return makeError(call, ": ", broken);
    broken = ckpt::concat("a collective of these ranks did not complete "
                          "within ",
                          timeoutSeconds,
                          " s (JAMBA_COLLECTIVE_TIMEOUT sets the limit)");
    changed.notify_all();
    return makeError(call, " did not complete within ", timeoutSeconds,
                     " s: another rank is stuck or gone "
                     "(JAMBA_COLLECTIVE_TIMEOUT sets the limit)");
  }

  void breakRanks(const std::string &why) {
    std::lock_guard<std::mutex> lock(mutex);
    if (broken.empty())
      broken = why;
    changed.notify_all();
  }

  const int64_t size;
  const double timeoutSeconds;
  std::mutex mutex;
  std::condition_variable changed;
  std::map<std::pair<int64_t, int64_t>, Group> groups; ///< Guarded by mutex.
  std::string broken; ///< Non-empty once the ranks are broken; guarded.
};

class ThreadRankCommunicator : public Communicator {
public:
  ThreadRankCommunicator(std::shared_ptr<ThreadRanksState> state, int64_t rank)
      : state(std::move(state)), myRank(rank) {}

  int64_t rank() const override { return myRank; }
  int64_t size() const override { return state->size; }
  std::string name() const override { return "threads"; }

  Status allReduceSumF32(float *data, int64_t count) override {
    return allReduceSumF32Group(data, count, 0);
  }

  Status allReduceSumF32Group(float *data, int64_t count,
                              int64_t groupSize) override {
    const int64_t n = state->size;
    if (groupSize < 0 || (groupSize > 0 && n % groupSize != 0))
      return makeError("all-reduce over groups of ", groupSize, " of ", n,
                       " ranks: the group size must divide the rank count");
    JAMBA_CKPT_RETURN_IF_ERROR(checkAllReduceArgs(data, count));
    const int64_t members = groupSize == 0 ? n : groupSize;
    if (members == 1)
      return Status::success();
    std::vector<float> sum(size_t(count), 0.0f);
    return collective(
        members, data, "all-reduce",
        [&](void **posted) {
          // In rank order on every rank: every rank gets the same bits.
          for (int64_t r = 0; r < members; ++r) {
            const float *in = static_cast<const float *>(posted[r]);
            for (int64_t i = 0; i < count; ++i)
              sum[size_t(i)] += in[i];
          }
        },
        [&] { std::copy(sum.begin(), sum.end(), data); });
  }

  Status broadcastBytes(void *data, size_t bytes, int64_t root,
                        int64_t groupSize) override {
    const int64_t n = state->size;
    JAMBA_CKPT_RETURN_IF_ERROR(
        checkBroadcastArgs(data, bytes, root, groupSize, n));
    const int64_t members = groupSize == 0 ? n : groupSize;
    if (members == 1)
      return Status::success();
    std::vector<char> copy;
    const bool isRoot = myRank % members == root;
    return collective(
        members, data, "broadcast",
        [&](void **posted) {
          if (!isRoot) {
            const char *from = static_cast<const char *>(posted[root]);
            copy.assign(from, from + bytes);
          }
        },
        [&] {
          if (!isRoot && bytes > 0)
            std::copy(copy.begin(), copy.end(), static_cast<char *>(data));
        });
  }

  /// Breaks the ranks: the others' collectives fail at once instead of
  /// waiting for this rank. The process is not ended (the threads are its
  /// caller's to join).
  void abort(int code) override {
    state->breakRanks(
        ckpt::concat("rank ", myRank, " stopped the run (code ", code, ")"));
  }

private:
  /// Posts `mine`, waits for the group, runs `read` on every member's
  /// posted address, waits until every member has read, then runs `write`.
  template <class Read, class Write>
  Status collective(int64_t members, void *mine, const char *call, Read read,
                    Write write) {
    std::unique_lock<std::mutex> lock(state->mutex);
    ThreadRanksState::Group &g = state->group(myRank, members);
    g.posted[size_t(myRank % members)] = mine;
    JAMBA_CKPT_RETURN_IF_ERROR(state->barrier(g, members, lock, call));
    // The posted addresses stay until every member has passed the second
    // barrier (a member posts its next one only after it).
    std::vector<void *> posted = g.posted;
    lock.unlock();
    read(posted.data());
    lock.lock();
    JAMBA_CKPT_RETURN_IF_ERROR(state->barrier(g, members, lock, call));
    lock.unlock();
    write();
    return Status::success();
  }

  std::shared_ptr<ThreadRanksState> state;
  int64_t myRank;
};

} // namespace

std::vector<std::unique_ptr<Communicator>>
rt::createThreadCommunicators(int64_t size) {
  std::vector<std::unique_ptr<Communicator>> ranks;
  if (size < 1)
    return ranks;
  auto state = std::make_shared<ThreadRanksState>(size);
  for (int64_t r = 0; r < size; ++r)
    ranks.push_back(std::make_unique<ThreadRankCommunicator>(state, r));
  return ranks;
}

//===----------------------------------------------------------------------===//
// MPI
//===----------------------------------------------------------------------===//

#if JAMBA_HAVE_MPI
namespace {

std::string mpiErrorText(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS || length <= 0)
    return ckpt::concat("MPI error code ", code);
  return std::string(text, size_t(length));
}

/// A failed MPI call as a Status naming the call and MPI's error string.
Status mpiCheck(int code, const char *call) {
  if (code == MPI_SUCCESS)
    return Status::success();
  return makeError(call, " failed: ", mpiErrorText(code));
}

/// Whether MPI was initialised by createMpiCommunicator, and how many of its
/// communicators are alive: the last one to go finalises what it started.
std::mutex mpiMutex;
bool initialisedHere = false;
int liveCommunicators = 0;

class MpiCommunicator : public Communicator {
public:
  MpiCommunicator(MPI_Comm comm, int rank, int size)
      : comm(comm), myRank(rank), mySize(size),
        timeoutSeconds(rt::collectiveTimeoutSeconds()) {}

  ~MpiCommunicator() override {
    std::lock_guard<std::mutex> lock(mpiMutex);
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized)
      return; // Someone else finalised MPI: nothing can be freed any more.
    for (auto &[size, group] : groups)
      MPI_Comm_free(&group);
    MPI_Comm_free(&comm);
    if (--liveCommunicators == 0 && initialisedHere) {
      MPI_Finalize();
      initialisedHere = false;
    }
  }

  int64_t rank() const override { return myRank; }
  int64_t size() const override { return mySize; }
  std::string name() const override { return "mpi"; }

  Status allReduceSumF32(float *data, int64_t count) override {
    JAMBA_CKPT_RETURN_IF_ERROR(checkAllReduceArgs(data, count));
    return allReduceOn(comm, data, count, "MPI_Allreduce");
  }

  Status allReduceSumF32Group(float *data, int64_t count,
                              int64_t groupSize) override {
    if (groupSize <= 1 || groupSize == mySize || mySize % groupSize != 0)
      return Communicator::allReduceSumF32Group(data, count, groupSize);
    JAMBA_CKPT_RETURN_IF_ERROR(checkAllReduceArgs(data, count));
    StatusOr<MPI_Comm> group = groupComm(groupSize);
    if (!group.ok())
      return group.status();
    return allReduceOn(*group, data, count, "MPI_Allreduce (group)");
  }

  Status broadcastBytes(void *data, size_t bytes, int64_t root,
                        int64_t groupSize) override {
    JAMBA_CKPT_RETURN_IF_ERROR(
        checkBroadcastArgs(data, bytes, root, groupSize, mySize));
    int64_t group = groupSize == 0 ? mySize : groupSize;
    if (group == 1)
      return Status::success();
    MPI_Comm on = comm;
    if (group != mySize) {
      StatusOr<MPI_Comm> split = groupComm(group);
      if (!split.ok())
        return split.status();
      on = *split;
    }
    // In pieces of at most INT_MAX bytes (MPI counts are int), each given
    // up after `timeoutSeconds`, like an all-reduce.
    auto *p = static_cast<char *>(data);
    while (bytes > 0) {
      int n = int(std::min<size_t>(bytes, INT_MAX));
      MPI_Request request;
      JAMBA_CKPT_RETURN_IF_ERROR(mpiCheck(
          MPI_Ibcast(p, n, MPI_BYTE, int(root), on, &request), "MPI_Bcast"));
      JAMBA_CKPT_RETURN_IF_ERROR(waitFor(request, "MPI_Bcast"));
      p += n;
      bytes -= size_t(n);
    }
    return Status::success();
  }

  void abort(int code) override { MPI_Abort(MPI_COMM_WORLD, code); }

private:
  /// The communicator of this rank's group of `groupSize` ranks (2 or more,
  /// dividing mySize, less than mySize): one per group size, made on first
  /// use (every rank makes it at the same collective, in the same order),
  /// its ranks numbered from the group's first (MPI_Comm_split's key).
  StatusOr<MPI_Comm> groupComm(int64_t groupSize) {
    auto it = groups.find(groupSize);
    if (it == groups.end()) {
      MPI_Comm group;
      JAMBA_CKPT_RETURN_IF_ERROR(mpiCheck(
          MPI_Comm_split(comm, int(myRank / groupSize), myRank, &group),
          "MPI_Comm_split"));
      it = groups.emplace(groupSize, group).first;
    }
    return it->second;
  }

  /// The sum over `on`, in pieces of at most INT_MAX floats (MPI counts
  /// are int), each given up after `timeoutSeconds` (waitFor).
  Status allReduceOn(MPI_Comm on, float *data, int64_t count,
                     const char *call) {
    while (count > 0) {
      int n = int(std::min<int64_t>(count, INT_MAX));
      MPI_Request request;
      JAMBA_CKPT_RETURN_IF_ERROR(
          mpiCheck(MPI_Iallreduce(MPI_IN_PLACE, data, n, MPI_FLOAT, MPI_SUM, on,
                                  &request),
                   call));
      JAMBA_CKPT_RETURN_IF_ERROR(waitFor(request, call));
      data += n;
      count -= n;
    }
    return Status::success();
  }

  /// Polls `request` until it completes, or gives up after
  /// `timeoutSeconds`: a rank that hangs (rather than fails, which
  /// MPI_Abort covers) would otherwise keep the others waiting forever. The
  /// run then fails and stops every rank.
  Status waitFor(MPI_Request &request, const char *call) {
    auto start = std::chrono::steady_clock::now();
    for (int polls = 0;; ++polls) {
      int done = 0;
      JAMBA_CKPT_RETURN_IF_ERROR(
          mpiCheck(MPI_Test(&request, &done, MPI_STATUS_IGNORE), call));
      if (done)
        return Status::success();
      // Spin briefly (collectives are short), then poll every 50 us.
      if (polls > 1000)
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      double waited = std::chrono::duration<double>(
                          std::chrono::steady_clock::now() - start)
                          .count();
      if (waited > timeoutSeconds)
        return makeError(call, " did not complete within ", timeoutSeconds,
                         " s: another rank is stuck or gone "
                         "(JAMBA_COLLECTIVE_TIMEOUT sets the limit)");
    }
  }

  MPI_Comm comm;
  int myRank, mySize;
  double timeoutSeconds;
  std::map<int64_t, MPI_Comm> groups;
};

} // namespace

bool rt::haveMpi() { return true; }

StatusOr<std::unique_ptr<Communicator>> rt::createMpiCommunicator() {
  std::lock_guard<std::mutex> lock(mpiMutex);
  int finalized = 0, initialized = 0;
  JAMBA_CKPT_RETURN_IF_ERROR(
      mpiCheck(MPI_Finalized(&finalized), "MPI_Finalized"));
  if (finalized)
    return makeError("MPI was already finalised in this process; it cannot "
                     "be initialised again");
  JAMBA_CKPT_RETURN_IF_ERROR(
      mpiCheck(MPI_Initialized(&initialized), "MPI_Initialized"));
  if (!initialized) {
    // Only this thread (the one that runs the kernels) calls MPI; kernels
    // may use threads of their own for the arithmetic.
    int provided = 0;
    JAMBA_CKPT_RETURN_IF_ERROR(mpiCheck(
        MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided),
        "MPI_Init_thread"));
    initialisedHere = true;
  }
  JAMBA_CKPT_RETURN_IF_ERROR(
      mpiCheck(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN),
               "MPI_Comm_set_errhandler"));
  // A duplicate keeps the kernels' collectives apart from any MPI traffic of
  // an embedding application; it inherits MPI_ERRORS_RETURN.
  MPI_Comm comm = MPI_COMM_NULL;
  JAMBA_CKPT_RETURN_IF_ERROR(
      mpiCheck(MPI_Comm_dup(MPI_COMM_WORLD, &comm), "MPI_Comm_dup"));
  int rank = 0, size = 0;
  Status s = mpiCheck(MPI_Comm_rank(comm, &rank), "MPI_Comm_rank");
  if (s.ok())
    s = mpiCheck(MPI_Comm_size(comm, &size), "MPI_Comm_size");
  if (!s.ok()) {
    MPI_Comm_free(&comm);
    return s;
  }
  ++liveCommunicators;
  return std::unique_ptr<Communicator>(new MpiCommunicator(comm, rank, size));
}

#else // !JAMBA_HAVE_MPI

bool rt::haveMpi() { return false; }

StatusOr<std::unique_ptr<Communicator>> rt::createMpiCommunicator() {
  return makeError(
      "this build has no MPI (install libopenmpi-dev and reconfigure)");
}

#endif // JAMBA_HAVE_MPI

//===----------------------------------------------------------------------===//
// The launcher's environment
//===----------------------------------------------------------------------===//

bool rt::launchedByMpi() {
  return env("OMPI_COMM_WORLD_SIZE") || env("PMI_SIZE") || env("PMIX_RANK");
}

int64_t rt::mpiLaunchSize() {
  return std::max<int64_t>(0, envInteger({"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"}));
}

double rt::collectiveTimeoutSeconds() {
  if (const char *v = std::getenv("JAMBA_COLLECTIVE_TIMEOUT")) {
    char *end = nullptr;
    double t = std::strtod(v, &end);
    if (end != v && *end == '\0' && t > 0)
      return t;
  }
  return 300.0;
}

int64_t rt::mpiLaunchRank() {
  return envInteger({"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"});
}

int64_t rt::mpiLaunchLocalRank() {
  return envInteger({"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID"});
}

//===----------------------------------------------------------------------===//
// The active communicator and the kernels' collective
//===----------------------------------------------------------------------===//

void rt::setActiveCommunicator(Communicator *communicator) {
  active = communicator;
}

Communicator *rt::activeCommunicator() { return active; }

extern "C" void jamba_rt_all_reduce_group_f32(float *data, int64_t count,
                                              int64_t group_size) {
  Communicator *c = activeCommunicator();
  if (!c || c->hasError())
    return;
  Status s = c->allReduceSumF32Group(data, count, group_size);
  if (!s.ok())
    c->recordError(Status::error(ckpt::concat(
        "all-reduce of ", count, " floats over groups of ", group_size, " of ",
        c->size(), " ranks (", c->name(), "): ", s.message())));
}

extern "C" void jamba_rt_all_reduce_f32(float *data, int64_t count) {
  Communicator *c = activeCommunicator();
  // A recorded error stops the collectives of this rank: the executor
  // reports it after the step, and the launcher stops the other ranks.
  if (!c || c->hasError())
    return;
  Status s = c->allReduceSumF32(data, count);
  if (!s.ok())
    c->recordError(Status::error(
        ckpt::concat("all-reduce of ", count, " floats over ", c->size(),
                     c->size() == 1 ? " rank (" : " ranks (", c->name(),
                     "): ", s.message())));
}

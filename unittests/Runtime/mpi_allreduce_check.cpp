//===- mpi_allreduce_check.cpp - Real MPI ranks through the runtime -------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// Test program, built only when MPI is found; run under mpirun by
// test/Runtime/mpi.test. Each rank creates the MPI communicator, checks its
// rank and size against the launcher's environment, and all-reduces rank+1
// over 3 floats twice: once through Communicator::allReduceSumF32 and once
// through the kernels' symbol `jamba_rt_all_reduce_f32` with the
// communicator active. Every sum must be size*(size+1)/2. Prints one line per
// rank, `rank R of N: ok`, and exits 0; otherwise a line saying what went
// wrong and exit status 1.
//
// With `--abort-rank R`, rank R calls Communicator::abort(3) instead while
// the others wait in the all-reduce: MPI must stop them all (exit status 3)
// rather than leave them hanging. With `--stall-rank R`, rank R sleeps 30 s
// before joining: the others must give up after JAMBA_COLLECTIVE_TIMEOUT
// seconds with an error naming the timeout (and exit 1, which makes mpirun
// stop the sleeper), not wait for it.
//
//===----------------------------------------------------------------------===//

#include "jamba/Runtime/Communicator.h"

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

using namespace jamba;
using namespace jamba::rt;

namespace {

int failed(int64_t rank, const std::string &what) {
  std::fprintf(stderr, "mpi_allreduce_check: rank %" PRId64 ": %s\n", rank,
               what.c_str());
  return 1;
}

/// Checks that every element of `data` is `expected`.
std::string checkSums(const float *data, float expected, const char *how) {
  for (int i = 0; i < 3; ++i)
    if (data[i] != expected)
      return ckpt::concat(how, ": element ", i, " is ", data[i], ", expected ",
                          expected);
  return "";
}

} // namespace

int main(int argc, char **argv) {
  int64_t abortRank = -1, stallRank = -1;
  if (argc == 3 && std::strcmp(argv[1], "--abort-rank") == 0)
    abortRank = std::atoll(argv[2]);
  else if (argc == 3 && std::strcmp(argv[1], "--stall-rank") == 0)
    stallRank = std::atoll(argv[2]);
  else if (argc != 1)
    return failed(-1, "usage: mpirun -np N mpi_allreduce_check "
                      "[--abort-rank R | --stall-rank R]");
  if (!launchedByMpi())
    return failed(-1, "not started by an MPI launcher (run it with mpirun)");
  auto created = createMpiCommunicator();
  if (!created.ok())
    return failed(mpiLaunchRank(), created.status().message());
  Communicator &c = **created;
  int64_t rank = c.rank(), size = c.size();
  if (c.name() != "mpi")
    return failed(rank, "the communicator is '" + c.name() + "', not 'mpi'");
  if (mpiLaunchSize() > 0 && size != mpiLaunchSize())
    return failed(rank, ckpt::concat("size ", size, " but the launcher says ",
                                     mpiLaunchSize()));
  if (mpiLaunchRank() >= 0 && rank != mpiLaunchRank())
    return failed(rank, ckpt::concat("rank ", rank, " but the launcher says ",
                                     mpiLaunchRank()));
  float expected = float(size * (size + 1) / 2);
  if (rank == abortRank) {
    std::fprintf(stderr, "mpi_allreduce_check: rank %" PRId64 ": aborting\n",
                 rank);
    c.abort(3);
    return failed(rank, "Communicator::abort returned");
  }

  if (rank == stallRank)
    std::this_thread::sleep_for(std::chrono::seconds(30));
  float direct[3];
  for (float &v : direct)
    v = float(rank + 1);
  Status s = c.allReduceSumF32(direct, 3);
  if (!s.ok())
    return failed(rank, s.message());
  std::string wrong = checkSums(direct, expected, "allReduceSumF32");
  if (!wrong.empty())
    return failed(rank, wrong);

  float viaSymbol[3];
  for (float &v : viaSymbol)
    v = float(rank + 1);
  {
    ActiveCommunicatorScope scope(&c);
    jamba_rt_all_reduce_f32(viaSymbol, 3);
  }
  s = c.takeError();
  if (!s.ok())
    return failed(rank, s.message());
  wrong = checkSums(viaSymbol, expected, "jamba_rt_all_reduce_f32");
  if (!wrong.empty())
    return failed(rank, wrong);

  std::printf("rank %" PRId64 " of %" PRId64 ": ok\n", rank, size);
  std::fflush(stdout);
  return 0;
}

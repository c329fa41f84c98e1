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
// communicator active. Every sum must be size*(size+1)/2. Then it broadcasts
// bytes (Communicator::broadcastBytes, which carries NCCL's unique id for GPU
// ranks): 300 bytes from rank 0 to all, and, when the size is even, from
// the second rank of each group of 2 to its group. Prints one line per rank,
// `rank R of N: ok`, and exits 0; otherwise a line saying what went wrong
// and exit status 1.
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

  // Broadcasts: rank 0's bytes to every rank, then within groups of 2 the
  // bytes of each group's second rank.
  std::string bytes(300, '\0');
  if (rank == 0)
    for (size_t i = 0; i < bytes.size(); ++i)
      bytes[i] = char('a' + i % 26);
  s = c.broadcastBytes(bytes.data(), bytes.size(), 0);
  if (!s.ok())
    return failed(rank, s.message());
  for (size_t i = 0; i < bytes.size(); ++i)
    if (bytes[i] != char('a' + i % 26))
      return failed(rank, ckpt::concat("broadcastBytes: byte ", i, " is ",
                                       int(bytes[i]), ", not rank 0's"));
  if (size % 2 == 0) {
    int64_t sender = rank / 2 * 2 + 1;
    bytes.assign(5, rank == sender ? char(sender) : char(-1));
    s = c.broadcastBytes(bytes.data(), bytes.size(), 1, 2);
    if (!s.ok())
      return failed(rank, s.message());
    if (bytes != std::string(5, char(sender)))
      return failed(rank,
                    ckpt::concat("broadcastBytes over groups of 2: "
                                 "got byte ",
                                 int(bytes[0]), ", not rank ", sender, "'s"));
  }

  std::printf("rank %" PRId64 " of %" PRId64 ": ok\n", rank, size);
  std::fflush(stdout);
  return 0;
}

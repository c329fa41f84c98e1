//===- CommunicatorTest.cpp - Ranks, the all-reduce symbol, the executor --===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// The communicators and the kernels' collective `jamba_rt_all_reduce_f32`:
// the single rank is a no-op, the symbol does nothing without an active
// communicator and forwards to one that is, a failed all-reduce sticks until
// taken, a broadcast within one rank is trivial and larger ones are refused
// by the base class (with its argument checks). Then through the executor, with
// the `_allreduce` test kernels (TestKernels.cpp) resolving the symbol from
// this process: the communicator is active during run() only, its error fails
// the run after the step, and the rank checks (the artifact's rank count
// against the communicator's size, the rank, its weights), and generation on
// several ranks: every rank returns the ids rank 0 chose and broadcast, and
// refuses a message it cannot follow. A fake communicator
// stands for N ranks that hold equal data: its sum multiplies by N. Real MPI
// ranks are tested by mpi_allreduce_check (test/Runtime/mpi.test) and
// JambaRunTest.
//
//===----------------------------------------------------------------------===//

#include "TestArtifact.h"

#include "jamba/Runtime/Communicator.h"
#include "jamba/Runtime/Executor.h"
#include "jamba/Runtime/Generate.h"

#include "gtest/gtest.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

using namespace jamba;
using namespace jamba::rt;
using namespace jamba::rt::testing;

namespace fs = std::filesystem;

namespace {

/// `size` ranks that hold equal data: the sum multiplies by `size`. With
/// `failure` set, every all-reduce fails with it.
class FakeCommunicator : public Communicator {
public:
  FakeCommunicator(int64_t rank, int64_t size) : myRank(rank), mySize(size) {}
  int64_t rank() const override { return myRank; }
  int64_t size() const override { return mySize; }
  std::string name() const override { return "fake"; }
  Status allReduceSumF32(float *data, int64_t count) override {
    ++calls;
    /// What the kernels saw as the active communicator.
    sawActive = activeCommunicator() == this;
    if (!failure.empty())
      return Status::error(failure);
    for (int64_t i = 0; i < count; ++i)
      data[i] *= float(mySize);
    return Status::success();
  }
  std::string failure;
  int calls = 0;
  bool sawActive = false;

private:
  int64_t myRank, mySize;
};

/// A FakeCommunicator that broadcasts from rank 0: rank 0 keeps what it
/// sends, another rank receives what `fromRoot` writes (nothing without
/// it). With `broadcastFailure` set, every broadcast fails with it.
class BroadcastingFake : public FakeCommunicator {
public:
  using FakeCommunicator::FakeCommunicator;
  Status broadcastBytes(void *data, size_t bytes, int64_t root,
                        int64_t groupSize) override {
    if (root != 0 || groupSize != 0)
      return Status::error("the fake broadcasts from rank 0 to all");
    if (!broadcastFailure.empty() &&
        (failOnlyBytes == 0 || bytes == failOnlyBytes))
      return Status::error(broadcastFailure);
    auto *p = static_cast<char *>(data);
    if (rank() == 0)
      broadcasts.emplace_back(p, p + bytes);
    else if (fromRoot)
      fromRoot(data, bytes);
    return Status::success();
  }
  std::string broadcastFailure;
  size_t failOnlyBytes = 0; ///< Not 0: only broadcasts of these bytes fail.
  std::vector<std::vector<char>> broadcasts;
  std::function<void(void *, size_t)> fromRoot;
};

TEST(CommunicatorTest, SingleRankIsANoOp) {
  SingleRankCommunicator single;
  EXPECT_EQ(single.rank(), 0);
  EXPECT_EQ(single.size(), 1);
  EXPECT_EQ(single.name(), "single");
  std::vector<float> data = {1.5f, -2.0f, 3.25f};
  Status s = single.allReduceSumF32(data.data(), 3);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(data, (std::vector<float>{1.5f, -2.0f, 3.25f}));
  EXPECT_TRUE(single.allReduceSumF32(nullptr, 0).ok());
  single.abort(1); // Nobody else to stop: returns.
}

TEST(CommunicatorTest, BadArgumentsAreErrors) {
  SingleRankCommunicator single;
  float x = 1;
  Status s = single.allReduceSumF32(&x, -1);
  EXPECT_EQ(s.message(), "all-reduce of a negative count (-1)");
  s = single.allReduceSumF32(nullptr, 4);
  EXPECT_EQ(s.message(), "all-reduce of 4 floats at a null address");
}

TEST(CommunicatorTest, NoActiveCommunicatorLeavesDataUnchanged) {
  ASSERT_EQ(activeCommunicator(), nullptr);
  std::vector<float> data = {1, 2, 3};
  jamba_rt_all_reduce_f32(data.data(), 3);
  EXPECT_EQ(data, (std::vector<float>{1, 2, 3}));
  jamba_rt_all_reduce_f32(nullptr, -5); // Nothing to check it against.
}

TEST(CommunicatorTest, ForwardsToTheActiveCommunicator) {
  FakeCommunicator two(0, 2);
  std::vector<float> data = {1, 2, 3};
  {
    ActiveCommunicatorScope scope(&two);
    EXPECT_EQ(activeCommunicator(), &two);
    jamba_rt_all_reduce_f32(data.data(), 3);
    {
      // Scopes nest: the inner one restores the outer one.
      ActiveCommunicatorScope none(nullptr);
      jamba_rt_all_reduce_f32(data.data(), 3);
    }
    EXPECT_EQ(activeCommunicator(), &two);
  }
  EXPECT_EQ(activeCommunicator(), nullptr);
  EXPECT_EQ(data, (std::vector<float>{2, 4, 6}));
  EXPECT_EQ(two.calls, 1);
  EXPECT_TRUE(two.sawActive);
  EXPECT_FALSE(two.hasError());
}

TEST(CommunicatorTest, GroupSumsFallBackOrRefuse) {
  // The group collective on a communicator without groups of its own (the
  // fake multiplies by its size, as 4 ranks of equal data would): all ranks
  // for group
  // size 0 or size(); nothing to sum for 1; a size that does not divide the
  // rank count, or a real subgroup, is an error naming the numbers; the
  // kernels' symbol forwards the group size.
  FakeCommunicator fake(/*rank=*/1, /*size=*/4);
  std::vector<float> data{1.0f, 2.0f};
  ASSERT_TRUE(fake.allReduceSumF32Group(data.data(), 2, 0).ok());
  EXPECT_EQ(data, (std::vector<float>{4.0f, 8.0f}));
  ASSERT_TRUE(fake.allReduceSumF32Group(data.data(), 2, 4).ok());
  EXPECT_EQ(data, (std::vector<float>{16.0f, 32.0f}));
  ASSERT_TRUE(fake.allReduceSumF32Group(data.data(), 2, 1).ok());
  EXPECT_EQ(data, (std::vector<float>{16.0f, 32.0f}));
  Status three = fake.allReduceSumF32Group(data.data(), 2, 3);
  EXPECT_FALSE(three.ok());
  EXPECT_NE(three.message().find("groups of 3 of 4 ranks"), std::string::npos)
      << three.message();
  Status two = fake.allReduceSumF32Group(data.data(), 2, 2);
  EXPECT_FALSE(two.ok());
  EXPECT_NE(two.message().find("no groups of 2 ranks"), std::string::npos)
      << two.message();
  {
    ActiveCommunicatorScope scope(&fake);
    jamba_rt_all_reduce_group_f32(data.data(), 2, 0);
    EXPECT_EQ(data, (std::vector<float>{64.0f, 128.0f}));
    jamba_rt_all_reduce_group_f32(data.data(), 2, 2);
    EXPECT_TRUE(fake.hasError());
    Status recorded = fake.takeError();
    EXPECT_NE(recorded.message().find("over groups of 2 of 4 ranks"),
              std::string::npos)
        << recorded.message();
  }
}

TEST(CommunicatorTest, FirstErrorSticksUntilTaken) {
  FakeCommunicator two(0, 2);
  two.failure = "the network is down";
  float x = 1;
  {
    ActiveCommunicatorScope scope(&two);
    jamba_rt_all_reduce_f32(&x, 1);
    two.failure = "a second failure";
    jamba_rt_all_reduce_f32(&x, 1); // Skipped: an error is recorded.
  }
  EXPECT_EQ(two.calls, 1);
  EXPECT_TRUE(two.hasError());
  two.recordError(Status::error("a third failure")); // Does not replace it.
  two.recordError(Status::success());                // Ignored.
  Status first = two.takeError();
  EXPECT_EQ(first.message(),
            "all-reduce of 1 floats over 2 ranks (fake): the network is down");
  EXPECT_FALSE(two.hasError());
  EXPECT_TRUE(two.takeError().ok());

  // The communicator's own argument checks are recorded the same way.
  SingleRankCommunicator single;
  {
    ActiveCommunicatorScope scope(&single);
    jamba_rt_all_reduce_f32(&x, -3);
  }
  EXPECT_EQ(single.takeError().message(),
            "all-reduce of -3 floats over 1 rank (single): all-reduce of a "
            "negative count (-3)");
}

TEST(CommunicatorTest, BroadcastsOfOneRankAndTheirChecks) {
  // One rank, or groups of one: nothing to send, the data stays.
  SingleRankCommunicator single;
  char data[4] = {'a', 'b', 'c', 'd'};
  EXPECT_TRUE(single.broadcastBytes(data, 4, 0).ok());
  EXPECT_TRUE(single.broadcastBytes(data, 4, 0, 1).ok());
  EXPECT_TRUE(single.broadcastBytes(nullptr, 0, 0).ok());
  EXPECT_EQ(std::string(data, 4), "abcd");
  FakeCommunicator four(/*rank=*/2, /*size=*/4);
  EXPECT_TRUE(four.broadcastBytes(data, 4, 0, 1).ok());
  // The base class has no larger broadcast (MPI's is tested by
  // mpi_allreduce_check).
  EXPECT_EQ(four.broadcastBytes(data, 4, 0).message(),
            "the fake communicator cannot broadcast over 4 ranks");
  EXPECT_EQ(four.broadcastBytes(data, 4, 1, 2).message(),
            "the fake communicator cannot broadcast over 2 ranks");
  // The arguments.
  EXPECT_EQ(four.broadcastBytes(data, 4, 0, 3).message(),
            "broadcast over groups of 3 of 4 ranks: the group size must "
            "divide the rank count");
  EXPECT_EQ(four.broadcastBytes(data, 4, 2, 2).message(),
            "broadcast from rank 2: the group's ranks are 0..1");
  EXPECT_EQ(single.broadcastBytes(data, 4, -1).message(),
            "broadcast from rank -1: the group's ranks are 0..0");
  EXPECT_EQ(single.broadcastBytes(nullptr, 4, 0).message(),
            "broadcast of 4 bytes at a null address");
  EXPECT_EQ(std::string(data, 4), "abcd");
}

//===----------------------------------------------------------------------===//
// Ranks that are threads of one process
//===----------------------------------------------------------------------===//

/// Sets JAMBA_COLLECTIVE_TIMEOUT for the scope's lifetime (the thread
/// communicators read it when they are made), then unsets it.
class CollectiveTimeout {
public:
  explicit CollectiveTimeout(const char *seconds) {
    setenv("JAMBA_COLLECTIVE_TIMEOUT", seconds, 1);
  }
  ~CollectiveTimeout() { unsetenv("JAMBA_COLLECTIVE_TIMEOUT"); }
};

/// Runs `body(rank)` on one thread per rank and waits for them all.
template <class Body> void onThreads(int64_t ranks, Body body) {
  std::vector<std::thread> threads;
  for (int64_t r = 0; r < ranks; ++r)
    threads.emplace_back([&body, r] { body(r); });
  for (std::thread &t : threads)
    t.join();
}

/// `count` random floats in [-1, 1) from `seed`.
std::vector<float> randomData(uint32_t seed, size_t count) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(count);
  for (float &x : v)
    x = dist(rng);
  return v;
}

TEST(ThreadRanksTest, AllReducesSumInRankOrderOnEveryRank) {
  constexpr int64_t kRanks = 4;
  constexpr size_t kCount = 1000;
  auto ranks = createThreadCommunicators(kRanks);
  ASSERT_EQ(ranks.size(), size_t(kRanks));
  std::vector<std::vector<float>> input, data;
  for (int64_t r = 0; r < kRanks; ++r)
    input.push_back(randomData(uint32_t(100 + r), kCount));
  data = input;
  std::vector<Status> world(kRanks), pairs(kRanks);
  onThreads(kRanks, [&](int64_t r) {
    EXPECT_EQ(ranks[size_t(r)]->rank(), r);
    EXPECT_EQ(ranks[size_t(r)]->size(), kRanks);
    EXPECT_EQ(ranks[size_t(r)]->name(), "threads");
    world[size_t(r)] =
        ranks[size_t(r)]->allReduceSumF32(data[size_t(r)].data(), kCount);
    // Then within groups of 2: {0, 1} and {2, 3}.
    pairs[size_t(r)] = ranks[size_t(r)]->allReduceSumF32Group(
        data[size_t(r)].data(), kCount, 2);
  });
  // Computed here in the same order: rank 0's + rank 1's + ... (exact).
  std::vector<float> sum(kCount, 0.0f);
  for (int64_t r = 0; r < kRanks; ++r)
    for (size_t i = 0; i < kCount; ++i)
      sum[i] += input[size_t(r)][i];
  std::vector<float> twice(kCount, 0.0f);
  for (size_t i = 0; i < kCount; ++i)
    twice[i] = (0.0f + sum[i]) + sum[i];
  for (int64_t r = 0; r < kRanks; ++r) {
    EXPECT_TRUE(world[size_t(r)].ok()) << world[size_t(r)].message();
    EXPECT_TRUE(pairs[size_t(r)].ok()) << pairs[size_t(r)].message();
    EXPECT_EQ(data[size_t(r)], twice) << "rank " << r;
  }
}

TEST(ThreadRanksTest, GroupsSumOnlyTheirRanks) {
  auto ranks = createThreadCommunicators(4);
  std::vector<std::vector<float>> data;
  for (int64_t r = 0; r < 4; ++r)
    data.push_back({float(r + 1), float(10 * (r + 1))});
  onThreads(4, [&](int64_t r) {
    Status s =
        ranks[size_t(r)]->allReduceSumF32Group(data[size_t(r)].data(), 2, 2);
    EXPECT_TRUE(s.ok()) << s.message();
  });
  EXPECT_EQ(data[0], (std::vector<float>{3, 30}));
  EXPECT_EQ(data[1], (std::vector<float>{3, 30}));
  EXPECT_EQ(data[2], (std::vector<float>{7, 70}));
  EXPECT_EQ(data[3], (std::vector<float>{7, 70}));
  // Groups of one rank and counts of 0 have nothing to wait for.
  EXPECT_TRUE(ranks[0]->allReduceSumF32Group(data[0].data(), 2, 1).ok());
  EXPECT_TRUE(ranks[0]->allReduceSumF32Group(nullptr, 0, 1).ok());
  // Bad arguments are refused before any wait.
  EXPECT_EQ(ranks[0]->allReduceSumF32Group(data[0].data(), 2, 3).message(),
            "all-reduce over groups of 3 of 4 ranks: the group size must "
            "divide the rank count");
  EXPECT_EQ(ranks[1]->allReduceSumF32(data[1].data(), -1).message(),
            "all-reduce of a negative count (-1)");
  EXPECT_TRUE(createThreadCommunicators(0).empty());
}

TEST(ThreadRanksTest, BroadcastsCopyTheRootsBytes) {
  auto ranks = createThreadCommunicators(4);
  std::vector<std::string> data = {"rank-0", "rank-1", "rank-2", "rank-3"};
  onThreads(4, [&](int64_t r) {
    // From each pair's second rank, then from rank 0 to all.
    Status s =
        ranks[size_t(r)]->broadcastBytes(data[size_t(r)].data(), 6, 1, 2);
    EXPECT_TRUE(s.ok()) << s.message();
  });
  EXPECT_EQ(data,
            (std::vector<std::string>{"rank-1", "rank-1", "rank-3", "rank-3"}));
  onThreads(4, [&](int64_t r) {
    Status s =
        ranks[size_t(r)]->broadcastBytes(data[size_t(r)].data(), 6, 0, 0);
    EXPECT_TRUE(s.ok()) << s.message();
  });
  EXPECT_EQ(data, std::vector<std::string>(4, "rank-1"));
  EXPECT_EQ(ranks[0]->broadcastBytes(data[0].data(), 6, 4, 0).message(),
            "broadcast from rank 4: the group's ranks are 0..3");
}

TEST(ThreadRanksTest, EachThreadsKernelsUseItsOwnCommunicator) {
  // The kernels' symbol forwards to the calling thread's active
  // communicator: ranks on threads each sum through their own.
  auto ranks = createThreadCommunicators(3);
  std::vector<std::vector<float>> data = {{1, 2}, {10, 20}, {100, 200}};
  std::vector<std::string> errors(3);
  onThreads(3, [&](int64_t r) {
    ActiveCommunicatorScope scope(ranks[size_t(r)].get());
    jamba_rt_all_reduce_f32(data[size_t(r)].data(), 2);
    Status s = ranks[size_t(r)]->takeError();
    errors[size_t(r)] = s.ok() ? "" : s.message();
  });
  EXPECT_EQ(activeCommunicator(), nullptr);
  for (size_t r = 0; r < 3; ++r) {
    EXPECT_EQ(errors[r], "") << r;
    EXPECT_EQ(data[r], (std::vector<float>{111, 222})) << r;
  }
}

TEST(ThreadRanksTest, ARankThatNeverArrivesIsGivenUp) {
  CollectiveTimeout timeout("0.2");
  auto ranks = createThreadCommunicators(2);
  std::vector<float> data = {1, 2};
  // Rank 1 never calls: rank 0 gives up after the timeout, and the ranks
  // are broken, so rank 1's later call fails at once.
  EXPECT_EQ(ranks[0]->allReduceSumF32(data.data(), 2).message(),
            "all-reduce did not complete within 0.2 s: another rank is stuck "
            "or gone (JAMBA_COLLECTIVE_TIMEOUT sets the limit)");
  EXPECT_EQ(ranks[1]->allReduceSumF32(data.data(), 2).message(),
            "all-reduce: a collective of these ranks did not complete within "
            "0.2 s (JAMBA_COLLECTIVE_TIMEOUT sets the limit)");
  EXPECT_EQ(data, (std::vector<float>{1, 2}));
}

TEST(ThreadRanksTest, ARankThatAbortsReleasesTheOthersAtOnce) {
  // A timeout the test would notice: the abort must end the waits first.
  CollectiveTimeout timeout("30");
  auto ranks = createThreadCommunicators(3);
  std::vector<std::string> errors(3);
  auto start = std::chrono::steady_clock::now();
  onThreads(3, [&](int64_t r) {
    if (r == 2) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      ranks[2]->abort(1);
      return;
    }
    float x = 1;
    errors[size_t(r)] = ranks[size_t(r)]->allReduceSumF32(&x, 1).message();
  });
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  EXPECT_EQ(errors[0], "all-reduce: rank 2 stopped the run (code 1)");
  EXPECT_EQ(errors[1], "all-reduce: rank 2 stopped the run (code 1)");
  EXPECT_LT(seconds, 30.0) << "the waits ran into the timeout";
}

TEST(CommunicatorTest, MpiInThisBuild) {
  if (haveMpi())
    GTEST_SKIP() << "MPI is built in: mpi_allreduce_check (test/Runtime/"
                    "mpi.test) and JambaRunTest.MpiRanks run real ranks";
  auto c = createMpiCommunicator();
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(),
            "this build has no MPI (install libopenmpi-dev and reconfigure)");
}

TEST(CommunicatorTest, LaunchedByMpiReadsTheEnvironment) {
  const char *names[] = {"OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK",
                         "PMI_SIZE", "PMI_RANK", "PMIX_RANK"};
  std::vector<std::pair<std::string, std::string>> saved;
  for (const char *n : names)
    if (const char *v = std::getenv(n)) {
      saved.emplace_back(n, v);
      ::unsetenv(n);
    }
  EXPECT_FALSE(launchedByMpi());
  EXPECT_EQ(mpiLaunchSize(), 0);
  EXPECT_EQ(mpiLaunchRank(), -1);
  ::setenv("OMPI_COMM_WORLD_SIZE", "4", 1);
  ::setenv("OMPI_COMM_WORLD_RANK", "3", 1);
  EXPECT_TRUE(launchedByMpi());
  EXPECT_EQ(mpiLaunchSize(), 4);
  EXPECT_EQ(mpiLaunchRank(), 3);
  ::unsetenv("OMPI_COMM_WORLD_SIZE");
  ::unsetenv("OMPI_COMM_WORLD_RANK");
  ::setenv("PMI_SIZE", "2", 1);
  EXPECT_TRUE(launchedByMpi());
  EXPECT_EQ(mpiLaunchSize(), 2);
  ::unsetenv("PMI_SIZE");
  ::setenv("PMIX_RANK", "1", 1);
  EXPECT_TRUE(launchedByMpi());
  EXPECT_EQ(mpiLaunchSize(), 0); // PMIx alone does not say.
  EXPECT_EQ(mpiLaunchRank(), 1);
  ::unsetenv("PMIX_RANK");
  for (const auto &[n, v] : saved)
    ::setenv(n.c_str(), v.c_str(), 1);
}

//===----------------------------------------------------------------------===//
// Through the executor
//===----------------------------------------------------------------------===//

class ExecutorRanksTest : public ::testing::Test {
protected:
  void SetUp() override {
    dir = std::make_unique<TestArtifactDir>("jamba-ranks-test");
    ASSERT_FALSE(dir->path().empty());
  }
  void TearDown() override { dir.reset(); }

  std::unique_ptr<Artifact> open(int64_t ranks) {
    TestArtifactOptions o;
    o.allReduceLogits = true;
    o.ranks = ranks;
    return dir->open(o);
  }

  static SessionOptions options(Communicator *c, int64_t rank) {
    SessionOptions o;
    o.batch = 1;
    o.contextLength = 16;
    o.rank = rank;
    o.communicator = c;
    return o;
  }

  /// Prefills ids {1, 17, 42}; returns the logits of position 0.
  std::vector<float> prefill(Executor &ex, Status &status) {
    auto *ids = static_cast<int32_t *>(ex.bufferData("ids"));
    ids[0] = 1;
    ids[1] = 17;
    ids[2] = 42;
    static_cast<int64_t *>(ex.bufferData("cache_len"))[0] = 0;
    status = ex.run(kEntryPrefill, CallDims{0, 1, 3});
    const float *logits = static_cast<const float *>(ex.bufferData("logits"));
    return std::vector<float>(logits, logits + 128);
  }

  std::unique_ptr<TestArtifactDir> dir;
};

TEST_F(ExecutorRanksTest, SingleRankKernelsResolveTheSymbol) {
  // dlopen(RTLD_NOW) of kernels that call jamba_rt_all_reduce_f32 works
  // only if this executable exports it.
  auto art = open(1);
  ASSERT_TRUE(art);
  auto ex = Executor::create(*art, options(nullptr, 0));
  ASSERT_TRUE(ex.ok()) << ex.status().message();
  EXPECT_EQ((*ex)->communicator(), nullptr);
  Status s;
  std::vector<float> logits = prefill(**ex, s);
  ASSERT_TRUE(s.ok()) << s.message();
  int64_t next = testNext({1});
  EXPECT_EQ(logits[size_t(next)], testBias(next) + 10.0f);
  EXPECT_EQ(logits[size_t((next + 1) % 128)], testBias((next + 1) % 128));
}

TEST_F(ExecutorRanksTest, TheCommunicatorIsActiveDuringRun) {
  auto art = open(2);
  ASSERT_TRUE(art);
  FakeCommunicator two(1, 2);
  auto ex = Executor::create(*art, options(&two, 1));
  ASSERT_TRUE(ex.ok()) << ex.status().message();
  EXPECT_EQ((*ex)->rank(), 1);
  EXPECT_EQ((*ex)->communicator(), &two);
  Status s;
  std::vector<float> logits = prefill(**ex, s);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(two.calls, 1);
  EXPECT_TRUE(two.sawActive);
  EXPECT_EQ(activeCommunicator(), nullptr);
  int64_t next = testNext({1});
  EXPECT_EQ(logits[size_t(next)], 2 * (testBias(next) + 10.0f));
  EXPECT_EQ(logits[size_t((next + 1) % 128)], 2 * testBias((next + 1) % 128));
}

TEST_F(ExecutorRanksTest, AnAllReduceErrorFailsTheRun) {
  auto art = open(2);
  ASSERT_TRUE(art);
  FakeCommunicator two(0, 2);
  auto ex = Executor::create(*art, options(&two, 0));
  ASSERT_TRUE(ex.ok()) << ex.status().message();
  two.failure = "MPI_Allreduce failed: MPI_ERR_TRUNCATE: message truncated";
  Status s;
  prefill(**ex, s);
  EXPECT_EQ(s.message(),
            "entry point 'prefill': steps[0] (kernel 'prefill_model'): "
            "all-reduce of 384 floats over 2 ranks (fake): MPI_Allreduce "
            "failed: MPI_ERR_TRUNCATE: message truncated");
  EXPECT_FALSE(two.hasError()); // The run took it.
  // The next run works again.
  two.failure.clear();
  prefill(**ex, s);
  EXPECT_TRUE(s.ok()) << s.message();
  // An error recorded outside a run is reported before any kernel runs.
  two.recordError(Status::error("stale"));
  int before = two.calls;
  prefill(**ex, s);
  EXPECT_EQ(s.message(), "entry point 'prefill': the fake communicator holds "
                         "an error from before this run: stale");
  EXPECT_EQ(two.calls, before);
}

TEST_F(ExecutorRanksTest, RankChecks) {
  auto art = open(2);
  ASSERT_TRUE(art);
  auto refused = [&](Communicator *c, int64_t rank) {
    auto ex = Executor::create(*art, options(c, rank));
    EXPECT_FALSE(ex.ok());
    return ex.ok() ? std::string() : ex.status().message();
  };
  EXPECT_EQ(
      refused(nullptr, 0),
      "the artifact is compiled for 2 ranks, but this run has 1 (no "
      "communicator): start it with mpirun -np 2 (or jamba-run --ranks 2)");
  FakeCommunicator three(0, 3);
  EXPECT_EQ(refused(&three, 0),
            "the artifact is compiled for 2 ranks, but this run has 3 (the "
            "fake communicator): start it with mpirun -np 2 (or jamba-run "
            "--ranks 2)");
  FakeCommunicator two(1, 2);
  EXPECT_EQ(refused(&two, 0), "rank 0 was asked for, but this process is "
                              "rank 1 of the fake communicator");

  auto single = open(1);
  ASSERT_TRUE(single);
  FakeCommunicator four(0, 4);
  auto ex = Executor::create(*single, options(&four, 0));
  ASSERT_FALSE(ex.ok());
  EXPECT_EQ(ex.status().message(),
            "the artifact is compiled for 1 rank, but this run has 4 (the "
            "fake communicator): start it with mpirun -np 1 (or jamba-run "
            "--ranks 1)");
  // A single-rank communicator runs a single-rank artifact.
  SingleRankCommunicator one;
  auto ok = Executor::create(*single, options(&one, 0));
  EXPECT_TRUE(ok.ok()) << ok.status().message();
}

//===----------------------------------------------------------------------===//
// Generation: rank 0 chooses the ids
//===----------------------------------------------------------------------===//

/// Sampled generation of two sequences (temperature 3 over the test
/// kernels' logits, so that each seed picks other ids), 5 ids each.
GenerateOptions sampled(uint64_t seed) {
  GenerateOptions g;
  g.maxNewTokens = 5;
  g.stopOnEos = false;
  g.sampling.temperature = 3.0;
  g.sampling.seed = seed;
  return g;
}

const std::vector<std::vector<int64_t>> kTwoPrompts = {{1, 17, 42}, {4, 8}};

/// Generates kTwoPrompts on two thread ranks, rank k with options[k];
/// returns each rank's ids per sequence (empty with an error in `errors`).
/// A rank that fails stops the other (jamba-run's way) unless `alone`.
std::vector<std::vector<std::vector<int64_t>>>
generateOnTwoRanks(const Artifact &art, const GenerateOptions (&options)[2],
                   std::vector<std::string> &errors, bool alone = false) {
  auto comms = createThreadCommunicators(2);
  std::vector<std::vector<std::vector<int64_t>>> ids(2);
  errors.assign(2, "");
  auto runRank = [&](int k) {
    SessionOptions o;
    o.batch = 2;
    o.contextLength = 16;
    o.rank = k;
    o.communicator = comms[size_t(k)].get();
    auto ex = Executor::create(art, o);
    StatusOr<GenerationResult> r =
        ex.ok() ? generate(**ex, kTwoPrompts, options[k])
                : StatusOr<GenerationResult>(ex.status());
    if (!r.ok()) {
      errors[size_t(k)] = r.status().message();
      if (!alone)
        comms[size_t(k)]->abort(1);
      return;
    }
    for (const SequenceOutput &out : r->sequences)
      ids[size_t(k)].push_back(out.ids);
  };
  std::thread second(runRank, 1);
  runRank(0);
  second.join();
  return ids;
}

TEST_F(ExecutorRanksTest, EveryRankGeneratesRankZerosIds) {
  // Each rank samples with a seed of its own, as if its logits differed
  // from rank 0's: every rank must still feed and return rank 0's ids.
  auto art = open(2);
  ASSERT_TRUE(art);
  std::vector<std::string> errors;
  auto a = generateOnTwoRanks(*art, {sampled(11), sampled(12)}, errors);
  ASSERT_EQ(errors, (std::vector<std::string>{"", ""}));
  auto b = generateOnTwoRanks(*art, {sampled(12), sampled(11)}, errors);
  ASSERT_EQ(errors, (std::vector<std::string>{"", ""}));
  ASSERT_EQ(a[0].size(), 2u);
  EXPECT_EQ(a[1], a[0]);
  EXPECT_EQ(b[1], b[0]);
  // The seeds choose different ids, so rank 1 did not just happen to agree.
  EXPECT_NE(a[0], b[0]);

  // Rank 0's ids are those it chooses alone: rank 0 of a fake pair (its
  // all-reduce doubles, as two equal ranks' does) with seed 11.
  BroadcastingFake rank0(0, 2);
  SessionOptions o;
  o.batch = 2;
  o.contextLength = 16;
  o.communicator = &rank0;
  auto ex = Executor::create(*art, o);
  ASSERT_TRUE(ex.ok()) << ex.status().message();
  auto alone = generate(**ex, kTwoPrompts, sampled(11));
  ASSERT_TRUE(alone.ok()) << alone.status().message();
  for (size_t s = 0; s < 2; ++s)
    EXPECT_EQ(alone->sequences[s].ids, a[0][s]) << s;
  // First the request's hash (agreeOnRequest), then one broadcast per
  // round of choices: after the prefill and after each decode call, each
  // [failed row, id per row] (-1: none).
  ASSERT_EQ(int64_t(rank0.broadcasts.size()), 2 + alone->decodeCalls);
  EXPECT_EQ(rank0.broadcasts[0].size(), sizeof(uint64_t));
  for (size_t round = 0; round + 1 < rank0.broadcasts.size(); ++round) {
    const std::vector<char> &bytes = rank0.broadcasts[round + 1];
    ASSERT_EQ(bytes.size(), 3 * sizeof(int64_t));
    int64_t message[3];
    std::memcpy(message, bytes.data(), bytes.size());
    EXPECT_EQ(message[0], -1);
    for (size_t s = 0; s < 2; ++s)
      EXPECT_EQ(message[1 + s], round < 5 ? alone->sequences[s].ids[round] : -1)
          << round << " " << s;
  }
}

TEST_F(ExecutorRanksTest, RanksAgreeOnTheGenerationBeforeItRuns) {
  // A rank asked for another generation, or refusing its own, fails every
  // rank before the first call, none waiting in a collective: the ranks do
  // not stop each other here, and a wait would run into this timeout.
  CollectiveTimeout timeout("30");
  auto art = open(2);
  ASSERT_TRUE(art);
  std::vector<std::string> errors;
  GenerateOptions fewer = sampled(11);
  fewer.maxNewTokens = 4;
  auto ids = generateOnTwoRanks(*art, {sampled(11), fewer}, errors,
                                /*alone=*/true);
  EXPECT_EQ(errors[0], "another rank refused this generation (its error "
                       "says why)");
  EXPECT_EQ(errors[1], "rank 0 was asked for another generation (the "
                       "prompts, the number of ids to generate or when to "
                       "stop differ): every rank must generate from the "
                       "same prompts and options");
  GenerateOptions hot = sampled(11);
  hot.sampling.temperature = -1;
  ids = generateOnTwoRanks(*art, {sampled(11), hot}, errors, /*alone=*/true);
  EXPECT_EQ(errors[0], "another rank refused this generation (its error "
                       "says why)");
  EXPECT_EQ(errors[1], "temperature must be a finite number >= 0, got -1");
  ids = generateOnTwoRanks(*art, {hot, sampled(11)}, errors, /*alone=*/true);
  EXPECT_EQ(errors[0], "temperature must be a finite number >= 0, got -1");
  EXPECT_EQ(errors[1], "another rank refused this generation (its error "
                       "says why)");
  // Sampling values may differ (rank 0 chooses); the rest agrees.
  GenerateOptions greedy = sampled(11);
  greedy.sampling.temperature = 0;
  ids = generateOnTwoRanks(*art, {sampled(11), greedy}, errors,
                           /*alone=*/true);
  EXPECT_EQ(errors, (std::vector<std::string>{"", ""}));
  EXPECT_EQ(ids[1], ids[0]);
}

TEST_F(ExecutorRanksTest, ARankFeedsWhatRankZeroSent) {
  auto art = open(2);
  ASSERT_TRUE(art);
  BroadcastingFake rank1(1, 2);
  // Rank 0 says: sequence b's id of round r is 20 + 10 b + r, for rounds
  // 0 to 3 (3 ids each, stopOnEos off: round 3 chooses none).
  int round = 0;
  std::function<void(int64_t *)> say = [&](int64_t *message) {
    message[0] = -1;
    for (int b = 0; b < 2; ++b)
      message[1 + b] = round < 3 ? 20 + 10 * b + round : -1;
  };
  rank1.fromRoot = [&](void *data, size_t bytes) {
    // The request's hash: rank 0's is this rank's.
    if (bytes == sizeof(uint64_t))
      return;
    ASSERT_EQ(bytes, 3 * sizeof(int64_t));
    say(static_cast<int64_t *>(data));
    ++round;
  };
  SessionOptions o;
  o.batch = 2;
  o.contextLength = 16;
  o.rank = 1;
  o.communicator = &rank1;
  auto ex = Executor::create(*art, o);
  ASSERT_TRUE(ex.ok()) << ex.status().message();
  GenerateOptions g = sampled(5);
  g.maxNewTokens = 3;
  auto got = generate(**ex, kTwoPrompts, g);
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_EQ(round, 4);
  EXPECT_EQ(got->sequences[0].ids, (std::vector<int64_t>{20, 21, 22}));
  EXPECT_EQ(got->sequences[1].ids, (std::vector<int64_t>{30, 31, 32}));
  // The test kernels keep each fed id in the k cache ([b, head 0, p, 0]):
  // after the prompt, the ids rank 0 sent (every one is fed, the last
  // too, so that its logits exist).
  const float *k =
      static_cast<const float *>((*ex)->bufferData("layers.1.k_cache"));
  ASSERT_NE(k, nullptr);
  const int64_t capacity = (*ex)->capacity();
  auto cached = [&](int64_t b, int64_t p) {
    return int64_t(k[((b * 2) * capacity + p) * 16]);
  };
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t j = 0; j < 3; ++j)
      EXPECT_EQ(cached(b, int64_t(kTwoPrompts[size_t(b)].size()) + j),
                20 + 10 * b + j)
          << b << " " << j;

  // What rank 1 refuses of rank 0's messages, and a failed broadcast.
  auto refused = [&](std::function<void(int64_t *)> message) {
    round = 0;
    say = std::move(message);
    auto r = generate(**ex, kTwoPrompts, g);
    EXPECT_FALSE(r.ok());
    return r.ok() ? std::string() : r.status().message();
  };
  EXPECT_EQ(refused([&](int64_t *m) {
              m[0] = round == 1 ? 1 : -1;
              m[1] = round == 1 ? -1 : 5;
              m[2] = round == 1 ? -1 : 6;
            }),
            "sequence 1, generated id 1: rank 0 could not choose it (rank "
            "0's error says why)");
  EXPECT_EQ(refused([&](int64_t *m) { m[0] = 2, m[1] = m[2] = 5; }),
            "rank 0 sent a failed sequence 2 outside the batch of 2");
  EXPECT_EQ(refused([&](int64_t *m) { m[0] = -1, m[1] = 5, m[2] = 128; }),
            "sequence 1: rank 0 sent id 128, outside the vocabulary [0, "
            "128)");
  EXPECT_EQ(refused([&](int64_t *m) { m[0] = -1, m[1] = -1, m[2] = 5; }),
            "the ranks disagree on the sequences still generating: rank 0 "
            "sent -1 for sequence 0, which this rank continues (every rank "
            "must generate from the same prompts and options)");
  EXPECT_EQ(refused([&](int64_t *m) { m[0] = -1, m[1] = 5, m[2] = -7; }),
            "the ranks disagree on the sequences still generating: rank 0 "
            "sent -7 for sequence 1, which this rank continues (every rank "
            "must generate from the same prompts and options)");
  // The last round chooses no id: rank 0 sending one there disagrees.
  EXPECT_EQ(refused([&](int64_t *m) { m[0] = -1, m[1] = 5, m[2] = 6; }),
            "the ranks disagree on the sequences still generating: rank 0 "
            "sent 5 for sequence 0, which this rank does not continue "
            "(every rank must generate from the same prompts and options)");
  rank1.broadcastFailure = "MPI_Bcast failed: the collective timed out";
  EXPECT_EQ(refused(say), "agreeing on the generation with the other "
                          "ranks: MPI_Bcast failed: the collective timed "
                          "out");
  rank1.failOnlyBytes = 3 * sizeof(int64_t);
  EXPECT_EQ(refused(say), "broadcasting rank 0's next ids: MPI_Bcast "
                          "failed: the collective timed out");
  rank1.broadcastFailure.clear();
  rank1.failure = "MPI_Allreduce failed: MPI_ERR_OTHER";
  EXPECT_EQ(refused(say), "agreeing on the generation with the other "
                          "ranks: MPI_Allreduce failed: MPI_ERR_OTHER");
}

TEST_F(ExecutorRanksTest, ThePlanCountsThisRanksWeights) {
  auto art = open(2);
  ASSERT_TRUE(art);
  FakeCommunicator two(1, 2);
  auto plan = planSession(*art, options(&two, 1));
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  EXPECT_EQ(plan->weightBytes, 128u * 4u);
}

} // namespace

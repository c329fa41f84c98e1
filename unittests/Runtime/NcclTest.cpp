//===- NcclTest.cpp - GPU ranks through NCCL, without a GPU ---------------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// The NCCL side of GPU ranks (Nccl.h) and the kernels' all-reduces
// (jamba_rt_cuda_all_reduce_f32 and its group variant, CudaKernelAbi.h), in
// a CUDA session over the fake driver, whose library is a fake NCCL too
// (FakeCuda.h: recognisable ids, communicators that remember how they were
// made, an all-reduce that multiplies by the rank count). One process
// pretends to be one rank of several (PretendRanks below): its broadcast
// delivers what the group's first rank would have sent. Checked:
// - the loader names the libraries it tried, and an NCCL without the entry
//   points; where NCCL is installed, its library resolves;
// - a session joins the NCCL communicator of all ranks with the right
//   (nranks, rank, id), on its context; the first rank makes the id and the
//   others take it from the broadcast; a failing id, broadcast or
//   ncclCommInitRank is an error naming the communicator;
// - the all-reduce runs ncclAllReduce in place, on the session's stream,
//   with the count and pointer given; groups of 2 of 4 ranks make the right
//   communicator once; a single rank and groups of one sum nothing;
// - bad counts, pointers and group sizes, and NCCL failures, are sticky
//   errors with their messages (and the communicators are then aborted);
// - a graph capture records the all-reduce, and a group's communicator made
//   during a capture is made outside it;
// - asynchronous NCCL errors are reported; a rank's default device;
// - no wait is unbounded: communicators are non-blocking and polled while
//   they are set up; a rank that never joins, a stuck collective and a
//   finalisation that never ends are given up after the collective timeout
//   and the communicators aborted; an asynchronous error ends a wait at
//   once; an NCCL without ncclCommInitRankConfig gets blocking ones.
//
//===----------------------------------------------------------------------===//

#include "FakeCudaFixture.h"

#include "jamba/Runtime/Communicator.h"
#include "jamba/Runtime/Nccl.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <optional>
#include <string>
#include <vector>

using namespace jamba;
using namespace jamba::rt;
using namespace jamba::rt::testing;
using ckpt::Status;

namespace {

/// What the first rank of a group broadcasts (Nccl.h,
/// kNcclBootstrapBytes): the id, zero-padded, then the flag.
std::string bootstrapMessage(const std::string &id, bool valid = true) {
  std::string message(cuda::kNcclBootstrapBytes, '\0');
  std::memcpy(message.data(), id.data(),
              std::min(id.size(), cuda::kNcclUniqueIdBytes));
  message[cuda::kNcclUniqueIdBytes] = valid ? 1 : 0;
  return message;
}

/// Rank `rank` of `size`, alone in this process. A broadcast is recorded;
/// on a rank that is not the group's root it delivers `fromRoot` (what the
/// root would have sent), on the root it leaves the data as it is. The
/// all-reduce is not used here.
class PretendRanks : public Communicator {
public:
  struct Broadcast {
    int64_t root, groupSize;
    std::string bytes; ///< The root's data as it was sent.
  };

  PretendRanks(int64_t rank, int64_t size) : myRank(rank), mySize(size) {}
  int64_t rank() const override { return myRank; }
  int64_t size() const override { return mySize; }
  std::string name() const override { return "pretend"; }
  Status allReduceSumF32(float *, int64_t) override {
    return Status::error("the pretend ranks do not all-reduce");
  }
  Status broadcastBytes(void *data, size_t bytes, int64_t root,
                        int64_t groupSize) override {
    int64_t group = groupSize == 0 ? mySize : groupSize;
    if (!failWith.empty())
      return Status::error(failWith);
    auto *p = static_cast<char *>(data);
    if (myRank % group != root)
      std::memcpy(p, fromRoot.data(), std::min(bytes, fromRoot.size()));
    broadcasts.push_back({root, group, std::string(p, bytes)});
    return Status::success();
  }

  std::string fromRoot = bootstrapMessage("sent-by-the-root");
  std::string failWith; ///< Non-empty: every broadcast fails so.
  std::vector<Broadcast> broadcasts;

private:
  int64_t myRank, mySize;
};

/// Rank 0 of 2 without a broadcast (the base class refuses it).
class NoBroadcast : public Communicator {
public:
  int64_t rank() const override { return 0; }
  int64_t size() const override { return 2; }
  std::string name() const override { return "mute"; }
  Status allReduceSumF32(float *, int64_t) override {
    return Status::success();
  }
};

class NcclTest : public FakeCudaSessionTest {
protected:
  /// Device memory holding `values`, then kGuardCount guards.
  float *toDevice(const std::vector<float> &values) {
    std::vector<float> host = values;
    host.insert(host.end(), kGuardCount, kGuard);
    auto p = session->allocate(host.size() * sizeof(float), "test data");
    EXPECT_TRUE(p.ok()) << p.status().message();
    if (!p.ok())
      return nullptr;
    Status s = session->upload(*p, host.data(), host.size() * sizeof(float));
    if (s.ok())
      s = session->finish();
    EXPECT_TRUE(s.ok()) << s.message();
    return static_cast<float *>(*p);
  }

  /// `count` floats of device memory, and the guards after them.
  std::vector<float> fromDevice(const float *device, size_t count) {
    std::vector<float> host(count + kGuardCount);
    Status s =
        session->download(host.data(), device, host.size() * sizeof(float));
    EXPECT_TRUE(s.ok()) << s.message();
    for (size_t i = count; i < host.size(); ++i)
      EXPECT_EQ(host[i], kGuard) << "the all-reduce wrote past its data";
    host.resize(count);
    return host;
  }

  /// The fake's ncclCommInitRank records since the fixture started.
  std::vector<FakeNcclControl::Init> newInits() const {
    return {ncclFake->inits.begin() + ptrdiff_t(ncclBaseline.inits.size()),
            ncclFake->inits.end()};
  }

  static constexpr float kGuard = 4321.0f;
  static constexpr size_t kGuardCount = 4;
};

//===----------------------------------------------------------------------===//
// The library
//===----------------------------------------------------------------------===//

TEST_F(NcclTest, WithoutNcclTheErrorNamesTheLibraries) {
  cuda::setNcclLibrary("");
  EXPECT_EQ(cuda::ncclLibraries(),
            (std::vector<std::string>{"libnccl.so.2", "libnccl.so"}));
  auto none = cuda::loadNccl({"libjamba-no-nccl.so.2", "libjamba-no-nccl.so"});
  ASSERT_FALSE(none.ok());
  const std::string &message = none.status().message();
  EXPECT_TRUE(startsWith(message, "no NCCL: dlopen(libjamba-no-nccl.so.2): "
                                  "libjamba-no-nccl.so.2: cannot open shared "
                                  "object file"))
      << message;
  EXPECT_TRUE(
      endsWith(message, " (tried libjamba-no-nccl.so.2, libjamba-no-nccl.so)"))
      << message;
  // A library without the entry points is named too.
  auto old = cuda::loadNccl({JAMBA_TEST_KERNELS});
  ASSERT_FALSE(old.ok());
  EXPECT_EQ(old.status().message(),
            std::string("no NCCL: ") + JAMBA_TEST_KERNELS +
                " lacks ncclGetVersion (an NCCL older than 2.4?)");

  // A session without NCCL stays single-rank.
  cuda::setNcclLibrary("libjamba-no-nccl.so.2");
  EXPECT_EQ(cuda::ncclLibraries(),
            std::vector<std::string>{"libjamba-no-nccl.so.2"});
  PretendRanks ranks(0, 2);
  Status started = session->startRanks(ranks);
  EXPECT_TRUE(
      startsWith(started.message(), "no NCCL: dlopen(libjamba-no-nccl.so.2): "))
      << started.message();
  EXPECT_EQ(session->nccl(), nullptr);
  EXPECT_EQ(session->kernelTarget().nccl, nullptr);
  EXPECT_TRUE(ranks.broadcasts.empty());
}

TEST_F(NcclTest, TheFakeLoadsWithItsVersion) {
  auto loaded = cuda::loadNccl();
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  const cuda::NcclLibrary &l = **loaded;
  EXPECT_EQ(l.library, JAMBA_FAKE_CUDA_DRIVER);
  EXPECT_EQ(l.version, 22809);
  EXPECT_NE(l.ncclCommGetAsyncError, nullptr);
  EXPECT_EQ(l.resultText(cuda::ncclInvalidArgument),
            "ncclInvalidArgument (invalid argument (fake NCCL))");
  EXPECT_EQ(l.resultText(42), "NCCL result 42 (other error (fake NCCL))");
  EXPECT_EQ(l.check(cuda::ncclSuccess, "ncclX").message(), "");
  EXPECT_EQ(l.check(cuda::ncclInvalidUsage, "ncclX").message(),
            "ncclX: ncclInvalidUsage (invalid usage (fake NCCL))");
  // NCCL_VERSION_CODE's two schemes, and the first capturable version.
  EXPECT_EQ(cuda::ncclVersionText(22809), "2.28.9");
  EXPECT_EQ(cuda::ncclVersionText(2804), "2.8.4");
  EXPECT_EQ(cuda::ncclVersionText(20900), "2.9.0");
  EXPECT_TRUE(cuda::ncclCanBeCaptured(22809));
  EXPECT_TRUE(cuda::ncclCanBeCaptured(20900));
  EXPECT_FALSE(cuda::ncclCanBeCaptured(2804));
}

TEST(NcclLibraryTest, ARealNcclResolves) {
  // Where NCCL is installed, its library has every entry point the runtime
  // declares, by name (their signatures only a run on GPUs checks), and
  // names its results as the runtime expects.
  auto real = cuda::loadNccl({"libnccl.so.2"});
  if (!real.ok())
    GTEST_SKIP() << "no NCCL here: " << real.status().message();
  const cuda::NcclLibrary &l = **real;
  EXPECT_GE(l.version, cuda::kNcclFirstCapturableVersion)
      << cuda::ncclVersionText(l.version);
  EXPECT_NE(l.ncclCommGetAsyncError, nullptr);
  // 2.14 and later: non-blocking communicators, so every wait is bounded.
  if (l.version >= int(cuda::kNcclConfigVersion))
    EXPECT_TRUE(l.canBeNonBlocking());
  EXPECT_TRUE(startsWith(l.resultText(cuda::ncclInvalidArgument),
                         "ncclInvalidArgument (invalid argument"))
      << l.resultText(cuda::ncclInvalidArgument);
}

//===----------------------------------------------------------------------===//
// Joining the ranks
//===----------------------------------------------------------------------===//

TEST_F(NcclTest, TheFirstRankMakesTheIdAndJoins) {
  PretendRanks ranks(0, 2);
  Status started = session->startRanks(ranks);
  ASSERT_TRUE(started.ok()) << started.message();
  ASSERT_NE(session->nccl(), nullptr);
  EXPECT_EQ(session->kernelTarget().nccl, session->nccl());
  EXPECT_EQ(session->nccl()->groupSizes(), std::vector<int64_t>{2});
  EXPECT_EQ(session->nccl()->rank(), 0);
  EXPECT_EQ(session->nccl()->size(), 2);

  // One id, made here and broadcast from rank 0 over all the ranks.
  EXPECT_EQ(ncclFake->uniqueIds - ncclBaseline.uniqueIds, 1);
  std::string id = "fake-nccl-id-" + std::to_string(ncclFake->uniqueIds);
  ASSERT_EQ(ranks.broadcasts.size(), 1u);
  EXPECT_EQ(ranks.broadcasts[0].root, 0);
  EXPECT_EQ(ranks.broadcasts[0].groupSize, 2);
  EXPECT_EQ(ranks.broadcasts[0].bytes, bootstrapMessage(id));
  // ncclCommInitRank(2 ranks, that id, rank 0), the session's context
  // current.
  auto inits = newInits();
  ASSERT_EQ(inits.size(), 1u);
  EXPECT_EQ(inits[0].nranks, 2);
  EXPECT_EQ(inits[0].rank, 0);
  EXPECT_EQ(inits[0].id, id);
  EXPECT_NE(inits[0].context, nullptr);
  EXPECT_EQ(ncclFake->liveComms - ncclBaseline.liveComms, 1);

  // The session destroys it (not aborts: nothing failed).
  scope.reset();
  session.reset();
  EXPECT_EQ(ncclFake->liveComms, ncclBaseline.liveComms);
  EXPECT_EQ(ncclFake->commsDestroyed - ncclBaseline.commsDestroyed, 1);
  EXPECT_EQ(ncclFake->commsAborted, ncclBaseline.commsAborted);
}

TEST_F(NcclTest, TheOtherRanksTakeTheIdFromTheBroadcast) {
  PretendRanks ranks(1, 2);
  ranks.fromRoot = bootstrapMessage("the-id-of-rank-0");
  Status started = session->startRanks(ranks);
  ASSERT_TRUE(started.ok()) << started.message();
  EXPECT_EQ(ncclFake->uniqueIds, ncclBaseline.uniqueIds);
  auto inits = newInits();
  ASSERT_EQ(inits.size(), 1u);
  EXPECT_EQ(inits[0].nranks, 2);
  EXPECT_EQ(inits[0].rank, 1);
  EXPECT_EQ(inits[0].id, "the-id-of-rank-0");
}

TEST_F(NcclTest, JoiningErrorsNameTheCommunicator) {
  // The first rank could not make the id: it still broadcasts (flag 0),
  // and fails with NCCL's error.
  ncclFake->failUniqueIdWith = cuda::ncclInternalError;
  PretendRanks first(0, 2);
  Status s = session->startRanks(first);
  EXPECT_EQ(s.message(), "the NCCL communicator of all 2 ranks: "
                         "ncclGetUniqueId: ncclInternalError (other error "
                         "(fake NCCL))");
  ASSERT_EQ(first.broadcasts.size(), 1u);
  EXPECT_EQ(first.broadcasts[0].bytes.back(), 0);
  ncclFake->failUniqueIdWith = 0;
  // The others fail at once on the flag.
  PretendRanks second(1, 2);
  second.fromRoot = bootstrapMessage("", false);
  s = session->startRanks(second);
  EXPECT_EQ(s.message(), "the NCCL communicator of all 2 ranks: rank 0 could "
                         "not make NCCL's unique id (its own error says why)");
  // A communicator without a broadcast, or a failing one.
  NoBroadcast mute;
  s = session->startRanks(mute);
  EXPECT_EQ(s.message(),
            "the NCCL communicator of all 2 ranks: broadcasting NCCL's unique "
            "id (mute): the mute communicator cannot broadcast over 2 ranks");
  PretendRanks broken(1, 2);
  broken.failWith = "MPI_Bcast did not complete within 2 s";
  s = session->startRanks(broken);
  EXPECT_EQ(s.message(), "the NCCL communicator of all 2 ranks: broadcasting "
                         "NCCL's unique id (pretend): MPI_Bcast did not "
                         "complete within 2 s");
  // ncclCommInitRankConfig fails.
  ncclFake->failInitWith = cuda::ncclInvalidUsage;
  PretendRanks third(0, 2);
  s = session->startRanks(third);
  EXPECT_EQ(s.message(), "the NCCL communicator of all 2 ranks: "
                         "ncclCommInitRankConfig: ncclInvalidUsage (invalid "
                         "usage (fake NCCL))");
  ncclFake->failInitWith = 0;
  // None of them left a communicator behind or made the session ranked.
  EXPECT_EQ(session->nccl(), nullptr);
  EXPECT_EQ(ncclFake->liveComms, ncclBaseline.liveComms);
  EXPECT_TRUE(newInits().empty());
}

//===----------------------------------------------------------------------===//
// The all-reduces
//===----------------------------------------------------------------------===//

TEST_F(NcclTest, TheAllReduceRunsInPlaceOnTheSessionStream) {
  PretendRanks ranks(0, 2);
  ASSERT_TRUE(session->startRanks(ranks).ok());
  float *data = toDevice({1, 2, 3, -4, 0.5f});
  jamba_rt_cuda_all_reduce_f32(data, 5);
  ASSERT_EQ(takeError(), "");
  EXPECT_EQ(ncclFake->allReduceCalls - ncclBaseline.allReduceCalls, 1);
  EXPECT_EQ(ncclFake->lastSend, data);
  EXPECT_EQ(ncclFake->lastRecv, data);
  EXPECT_EQ(ncclFake->lastCount, 5u);
  EXPECT_EQ(ncclFake->lastType, cuda::ncclFloat32);
  EXPECT_EQ(ncclFake->lastOp, cuda::ncclSum);
  EXPECT_EQ(ncclFake->lastRanks, 2);
  EXPECT_EQ(ncclFake->lastStream, session->kernelTarget().stream);
  // Two ranks of equal data: twice the data, nothing past it.
  EXPECT_EQ(fromDevice(data, 5), (std::vector<float>{2, 4, 6, -8, 1}));
  // Group 0 and a group of all ranks are the same communicator.
  jamba_rt_cuda_all_reduce_group_f32(data, 5, 0);
  jamba_rt_cuda_all_reduce_group_f32(data, 2, 2);
  ASSERT_EQ(takeError(), "");
  EXPECT_EQ(fromDevice(data, 5), (std::vector<float>{8, 16, 12, -16, 2}));
  EXPECT_EQ(session->nccl()->groupSizes(), std::vector<int64_t>{2});
  EXPECT_EQ(newInits().size(), 1u);
  // A count of 0 and groups of one rank have nothing to sum.
  jamba_rt_cuda_all_reduce_f32(data, 0);
  jamba_rt_cuda_all_reduce_f32(nullptr, 0);
  jamba_rt_cuda_all_reduce_group_f32(data, 5, 1);
  ASSERT_EQ(takeError(), "");
  EXPECT_EQ(ncclFake->allReduceCalls - ncclBaseline.allReduceCalls, 3);
}

TEST_F(NcclTest, GroupsOfTwoOfFourRanksMakeTheirCommunicator) {
  // Rank 2 of 4: the first rank of the group {2, 3}.
  PretendRanks ranks(2, 4);
  ranks.fromRoot = bootstrapMessage("world-id");
  ASSERT_TRUE(session->startRanks(ranks).ok());
  float *data = toDevice({1, 2, 3});
  jamba_rt_cuda_all_reduce_group_f32(data, 3, 2);
  ASSERT_EQ(takeError(), "");
  EXPECT_EQ(fromDevice(data, 3), (std::vector<float>{2, 4, 6}));
  auto inits = newInits();
  ASSERT_EQ(inits.size(), 2u);
  EXPECT_EQ(inits[0].nranks, 4);
  EXPECT_EQ(inits[0].rank, 2);
  EXPECT_EQ(inits[0].id, "world-id");
  std::string id = "fake-nccl-id-" + std::to_string(ncclFake->uniqueIds);
  EXPECT_EQ(ncclFake->uniqueIds - ncclBaseline.uniqueIds, 1);
  EXPECT_EQ(inits[1].nranks, 2);
  EXPECT_EQ(inits[1].rank, 0);
  EXPECT_EQ(inits[1].id, id);
  ASSERT_EQ(ranks.broadcasts.size(), 2u);
  EXPECT_EQ(ranks.broadcasts[1].root, 0);
  EXPECT_EQ(ranks.broadcasts[1].groupSize, 2);
  EXPECT_EQ(ranks.broadcasts[1].bytes, bootstrapMessage(id));
  // Made once; the world is the other communicator.
  jamba_rt_cuda_all_reduce_group_f32(data, 3, 2);
  jamba_rt_cuda_all_reduce_f32(data, 3);
  ASSERT_EQ(takeError(), "");
  EXPECT_EQ(fromDevice(data, 3), (std::vector<float>{16, 32, 48}));
  EXPECT_EQ(session->nccl()->groupSizes(), (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(newInits().size(), 2u);
  EXPECT_EQ(ranks.broadcasts.size(), 2u);

  // Rank 3 of 4 takes its group's id from rank 2.
  ASSERT_NO_FATAL_FAILURE(reopenSession());
  PretendRanks last(3, 4);
  ASSERT_TRUE(session->startRanks(last).ok());
  last.fromRoot = bootstrapMessage("the-id-of-rank-2");
  data = toDevice({5});
  jamba_rt_cuda_all_reduce_group_f32(data, 1, 2);
  ASSERT_EQ(takeError(), "");
  inits = newInits();
  ASSERT_EQ(inits.size(), 4u);
  EXPECT_EQ(inits[3].nranks, 2);
  EXPECT_EQ(inits[3].rank, 1);
  EXPECT_EQ(inits[3].id, "the-id-of-rank-2");
  EXPECT_EQ(ncclFake->uniqueIds - ncclBaseline.uniqueIds, 1);
}

TEST_F(NcclTest, BadArgumentsAreErrors) {
  PretendRanks ranks(0, 4);
  ASSERT_TRUE(session->startRanks(ranks).ok());
  float *data = toDevice({1, 2, 3});
  jamba_rt_cuda_all_reduce_f32(data, -1);
  EXPECT_EQ(takeError(), "jamba_rt_cuda_all_reduce_f32: a negative count (-1)");
  jamba_rt_cuda_all_reduce_f32(nullptr, 3);
  EXPECT_EQ(takeError(),
            "jamba_rt_cuda_all_reduce_f32: 3 floats at a null address");
  jamba_rt_cuda_all_reduce_group_f32(data, 3, 3);
  EXPECT_EQ(takeError(), "jamba_rt_cuda_all_reduce_group_f32: groups of 3 "
                         "ranks do not divide the 4 ranks");
  jamba_rt_cuda_all_reduce_group_f32(data, 3, -2);
  EXPECT_EQ(takeError(), "jamba_rt_cuda_all_reduce_group_f32: groups of -2 "
                         "ranks do not divide the 4 ranks");
  jamba_rt_cuda_all_reduce_group_f32(data, 3, 8);
  EXPECT_EQ(takeError(), "jamba_rt_cuda_all_reduce_group_f32: groups of 8 "
                         "ranks do not divide the 4 ranks");
  // None of them reached NCCL or made a communicator.
  EXPECT_EQ(ncclFake->allReduceCalls, ncclBaseline.allReduceCalls);
  EXPECT_EQ(session->nccl()->groupSizes(), std::vector<int64_t>{4});
  EXPECT_EQ(fromDevice(data, 3), (std::vector<float>{1, 2, 3}));

  // No session active.
  scope.reset();
  jamba_rt_cuda_all_reduce_f32(data, 3);
  EXPECT_EQ(takeError(), "jamba_rt_cuda_all_reduce_f32: no CUDA session is "
                         "active (a kernel called the runtime outside a CUDA "
                         "run)");
}

TEST_F(NcclTest, NcclFailuresAreStickyAndAbortTheCommunicators) {
  PretendRanks ranks(0, 2);
  ASSERT_TRUE(session->startRanks(ranks).ok());
  float *data = toDevice({1, 2, 3});
  ncclFake->failAllReduceWith = cuda::ncclRemoteError;
  jamba_rt_cuda_all_reduce_f32(data, 3);
  EXPECT_TRUE(cuda::hasCudaError());
  // Later calls do nothing until the error is taken, even once NCCL works.
  ncclFake->failAllReduceWith = 0;
  jamba_rt_cuda_all_reduce_group_f32(data, 3, 2);
  EXPECT_EQ(ncclFake->allReduceCalls - ncclBaseline.allReduceCalls, 1);
  EXPECT_EQ(takeError(), "jamba_rt_cuda_all_reduce_f32: the NCCL "
                         "communicator of all 2 ranks: ncclAllReduce: "
                         "ncclRemoteError (remote process exited (fake "
                         "NCCL)) (3 floats over 2 of 2 ranks)");
  // The communicators were aborted at once: a later call cannot use them.
  EXPECT_TRUE(session->nccl()->aborted());
  EXPECT_EQ(ncclFake->commsAborted - ncclBaseline.commsAborted, 1);
  jamba_rt_cuda_all_reduce_f32(data, 3);
  EXPECT_EQ(takeError(), "jamba_rt_cuda_all_reduce_f32: the NCCL "
                         "communicator of all 2 ranks: the session's NCCL "
                         "communicators were aborted after an earlier error");
  EXPECT_EQ(fromDevice(data, 3), (std::vector<float>{1, 2, 3}));
  // A group's communicator that cannot be made.
  PretendRanks four(0, 4);
  ASSERT_NO_FATAL_FAILURE(reopenSession());
  EXPECT_EQ(ncclFake->commsAborted - ncclBaseline.commsAborted, 1);
  ASSERT_TRUE(session->startRanks(four).ok());
  data = toDevice({1});
  ncclFake->failInitWith = cuda::ncclSystemError;
  jamba_rt_cuda_all_reduce_group_f32(data, 1, 2);
  EXPECT_EQ(takeError(), "jamba_rt_cuda_all_reduce_group_f32: the NCCL "
                         "communicator of ranks 0..1 (groups of 2 of 4 "
                         "ranks): ncclCommInitRankConfig: ncclSystemError "
                         "(other error (fake NCCL))");
  ncclFake->failInitWith = 0;
  EXPECT_EQ(session->nccl()->groupSizes(), std::vector<int64_t>{4});
}

TEST_F(NcclTest, ASingleRankHasNothingToSum) {
  // No startRanks: a single-rank session.
  float *data = toDevice({1, 2, 3});
  jamba_rt_cuda_all_reduce_f32(data, 3);
  jamba_rt_cuda_all_reduce_group_f32(data, 3, 0);
  jamba_rt_cuda_all_reduce_group_f32(data, 3, 1);
  ASSERT_EQ(takeError(), "");
  EXPECT_EQ(fromDevice(data, 3), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(ncclFake->allReduceCalls, ncclBaseline.allReduceCalls);
  // Its arguments are still checked.
  jamba_rt_cuda_all_reduce_f32(nullptr, 3);
  EXPECT_EQ(takeError(),
            "jamba_rt_cuda_all_reduce_f32: 3 floats at a null address");
  jamba_rt_cuda_all_reduce_group_f32(data, 3, 2);
  EXPECT_EQ(takeError(), "jamba_rt_cuda_all_reduce_group_f32: groups of 2 "
                         "ranks do not divide the 1 rank");
}

//===----------------------------------------------------------------------===//
// Graphs and asynchronous errors
//===----------------------------------------------------------------------===//

TEST_F(NcclTest, AGraphCaptureRecordsTheAllReduce) {
  PretendRanks ranks(0, 4);
  ASSERT_TRUE(session->startRanks(ranks).ok());
  float *data = toDevice({1, 2});

  // The fake refuses NCCL's initialisation during a capture, as the real
  // one's allocations are (so the relaxed mode below is needed).
  ASSERT_TRUE(session->beginCapture().ok());
  auto loaded = cuda::loadNccl();
  ASSERT_TRUE(loaded.ok());
  cuda::ncclComm_t probe = nullptr;
  cuda::ncclUniqueId id{};
  EXPECT_EQ((*loaded)->ncclCommInitRank(&probe, 1, id, 0),
            cuda::ncclUnhandledCudaError);
  session->abandonCapture();

  // The world's all-reduce and a group's, whose communicator is made
  // during the capture: both recorded, not run.
  ASSERT_TRUE(session->beginCapture().ok());
  jamba_rt_cuda_all_reduce_f32(data, 2);
  jamba_rt_cuda_all_reduce_group_f32(data, 2, 2);
  ASSERT_EQ(takeError(), "");
  EXPECT_EQ(session->nccl()->groupSizes(), (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(ncclFake->allReduceRuns, ncclBaseline.allReduceRuns);
  auto graph = session->endCapture({0, 1, 1});
  ASSERT_TRUE(graph.ok()) << graph.status().message();
  EXPECT_EQ(fromDevice(data, 2), (std::vector<float>{1, 2}));
  // The thread's capture mode was restored.
  cuda::CUstreamCaptureMode mode = cuda::CU_STREAM_CAPTURE_MODE_RELAXED;
  ASSERT_EQ(session->driver().cuThreadExchangeStreamCaptureMode(&mode),
            cuda::CUDA_SUCCESS);
  EXPECT_EQ(mode, cuda::CU_STREAM_CAPTURE_MODE_GLOBAL);
  ASSERT_EQ(session->driver().cuThreadExchangeStreamCaptureMode(&mode),
            cuda::CUDA_SUCCESS);

  // Each launch runs both: x 4, then x 2.
  ASSERT_TRUE(session->launch(*graph).ok());
  ASSERT_TRUE(session->finish().ok());
  EXPECT_EQ(fromDevice(data, 2), (std::vector<float>{8, 16}));
  ASSERT_TRUE(session->launch(*graph).ok());
  ASSERT_TRUE(session->finish().ok());
  EXPECT_EQ(fromDevice(data, 2), (std::vector<float>{64, 128}));
  EXPECT_EQ(ncclFake->allReduceCalls - ncclBaseline.allReduceCalls, 2);
  EXPECT_EQ(ncclFake->allReduceRuns - ncclBaseline.allReduceRuns, 4);
}

TEST_F(NcclTest, AsynchronousErrorsAreReported) {
  PretendRanks ranks(1, 2);
  ASSERT_TRUE(session->startRanks(ranks).ok());
  EXPECT_TRUE(session->nccl()->asyncErrors().ok());
  ncclFake->asyncError = cuda::ncclRemoteError;
  EXPECT_EQ(session->nccl()->asyncErrors().message(),
            "the NCCL communicator of all 2 ranks: ncclCommGetAsyncError: "
            "ncclRemoteError (remote process exited (fake NCCL))");
  ncclFake->asyncError = 0;
  // The communicators are aborted, not destroyed.
  scope.reset();
  session.reset();
  EXPECT_EQ(ncclFake->commsAborted - ncclBaseline.commsAborted, 1);
  EXPECT_EQ(ncclFake->commsDestroyed, ncclBaseline.commsDestroyed);
}

//===----------------------------------------------------------------------===//
// Bounded waits: non-blocking communicators, polled streams, timeouts
//===----------------------------------------------------------------------===//

/// Sets JAMBA_COLLECTIVE_TIMEOUT for the scope's lifetime (NcclRanks reads
/// it when it is made, in startRanks), then unsets it.
class CollectiveTimeout {
public:
  explicit CollectiveTimeout(const char *seconds) {
    setenv("JAMBA_COLLECTIVE_TIMEOUT", seconds, 1);
  }
  ~CollectiveTimeout() { unsetenv("JAMBA_COLLECTIVE_TIMEOUT"); }
};

TEST_F(NcclTest, CommunicatorsAreNonBlockingAndPolledUntilJoined) {
  // The fake NCCL has ncclCommInitRankConfig: the communicator is made
  // with blocking = 0, and its state is polled while NCCL sets it up.
  ncclFake->initPendingPolls = 3;
  PretendRanks ranks(0, 2);
  Status started = session->startRanks(ranks);
  ASSERT_TRUE(started.ok()) << started.message();
  EXPECT_TRUE(session->nccl()->nonBlocking());
  auto inits = newInits();
  ASSERT_EQ(inits.size(), 1u);
  EXPECT_EQ(inits[0].blocking, 0);
  EXPECT_GE(ncclFake->asyncErrorPolls - ncclBaseline.asyncErrorPolls, 4);
  // An all-reduce NCCL is still setting up is waited for too.
  ncclFake->allReducePendingPolls = 2;
  float *data = toDevice({1.5f, -2});
  jamba_rt_cuda_all_reduce_f32(data, 2);
  ASSERT_EQ(takeError(), "");
  EXPECT_EQ(fromDevice(data, 2), (std::vector<float>{3, -4}));
  // The session's waits poll the stream rather than block in
  // cuStreamSynchronize.
  const int64_t queries = cudaFake->streamQueries;
  ASSERT_TRUE(session->finish().ok());
  EXPECT_GT(cudaFake->streamQueries, queries);
  // Destroyed after a finalisation.
  scope.reset();
  session.reset();
  EXPECT_EQ(ncclFake->finalizes - ncclBaseline.finalizes, 1);
  EXPECT_EQ(ncclFake->commsDestroyed - ncclBaseline.commsDestroyed, 1);
  EXPECT_EQ(ncclFake->commsAborted, ncclBaseline.commsAborted);
}

TEST_F(NcclTest, ARankThatNeverJoinsIsGivenUp) {
  CollectiveTimeout timeout("0.2");
  ncclFake->hangInit = true;
  PretendRanks ranks(1, 2);
  Status s = session->startRanks(ranks);
  EXPECT_EQ(s.message(), "the NCCL communicator of all 2 ranks: "
                         "ncclCommInitRankConfig did not complete within 0.2 "
                         "s: another rank is stuck or gone "
                         "(JAMBA_COLLECTIVE_TIMEOUT sets the limit)");
  EXPECT_EQ(session->nccl(), nullptr);
  EXPECT_EQ(ncclFake->commsAborted - ncclBaseline.commsAborted, 1);
  EXPECT_EQ(ncclFake->liveComms, ncclBaseline.liveComms);
}

TEST_F(NcclTest, AStuckCollectiveIsGivenUpAndTheCommunicatorsAborted) {
  CollectiveTimeout timeout("0.2");
  PretendRanks ranks(0, 2);
  ASSERT_TRUE(session->startRanks(ranks).ok());
  float *data = toDevice({1, 2});
  // The all-reduce is queued, but its peer never comes: the stream is
  // stuck. The session's wait gives up after the timeout, aborts the
  // communicators (which ends the collective) and says why.
  ncclFake->hangAllReduce = true;
  jamba_rt_cuda_all_reduce_f32(data, 2);
  ASSERT_EQ(takeError(), "");
  Status waited = session->finish();
  EXPECT_EQ(waited.message(),
            "the session's stream did not finish within 0.2 s: a collective "
            "is waiting for a rank that is stuck or gone, so the NCCL "
            "communicators were aborted (JAMBA_COLLECTIVE_TIMEOUT sets the "
            "limit)");
  EXPECT_TRUE(session->nccl()->aborted());
  EXPECT_EQ(ncclFake->commsAborted - ncclBaseline.commsAborted, 1);
  EXPECT_EQ(cudaFake->hungSynchronizes, baseline.hungSynchronizes);
  ncclFake->hangAllReduce = false;
  // The stream goes on once the collective is aborted.
  EXPECT_EQ(session->driver().cuStreamQuery(session->kernelTarget().stream),
            cuda::CUDA_SUCCESS);

  // The kernels' own synchronisation is bounded the same way.
  ASSERT_NO_FATAL_FAILURE(reopenSession());
  PretendRanks again(0, 2);
  ASSERT_TRUE(session->startRanks(again).ok());
  data = toDevice({1, 2});
  ncclFake->hangAllReduce = true;
  jamba_rt_cuda_all_reduce_f32(data, 2);
  mgpuStreamSynchronize(nullptr);
  EXPECT_EQ(takeError(),
            "mgpuStreamSynchronize: the session's stream did not finish "
            "within 0.2 s: a collective is waiting for a rank that is stuck "
            "or gone, so the NCCL communicators were aborted "
            "(JAMBA_COLLECTIVE_TIMEOUT sets the limit)");
  EXPECT_EQ(cudaFake->hungSynchronizes, baseline.hungSynchronizes);
}

TEST_F(NcclTest, AnAsynchronousErrorEndsTheWaitAtOnce) {
  // A timeout the test would notice: the error must end the wait first.
  CollectiveTimeout timeout("30");
  PretendRanks ranks(1, 2);
  ASSERT_TRUE(session->startRanks(ranks).ok());
  float *data = toDevice({1});
  ncclFake->hangAllReduce = true;
  jamba_rt_cuda_all_reduce_f32(data, 1);
  ncclFake->asyncError = cuda::ncclRemoteError;
  auto start = std::chrono::steady_clock::now();
  Status waited = session->finish();
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  ncclFake->asyncError = 0;
  ncclFake->hangAllReduce = false;
  EXPECT_EQ(waited.message(),
            "the NCCL communicator of all 2 ranks: ncclCommGetAsyncError: "
            "ncclRemoteError (remote process exited (fake NCCL))");
  EXPECT_LT(seconds, 30.0) << "the wait ran into the timeout";
  EXPECT_TRUE(session->nccl()->aborted());
  EXPECT_EQ(ncclFake->commsAborted - ncclBaseline.commsAborted, 1);
}

TEST_F(NcclTest, AFinalisationThatNeverEndsIsAborted) {
  CollectiveTimeout timeout("0.2");
  PretendRanks ranks(0, 2);
  ASSERT_TRUE(session->startRanks(ranks).ok());
  ncclFake->hangFinalize = true;
  scope.reset();
  session.reset();
  ncclFake->hangFinalize = false;
  EXPECT_EQ(ncclFake->finalizes - ncclBaseline.finalizes, 1);
  EXPECT_EQ(ncclFake->commsAborted - ncclBaseline.commsAborted, 1);
  EXPECT_EQ(ncclFake->commsDestroyed, ncclBaseline.commsDestroyed);
  EXPECT_EQ(ncclFake->liveComms, ncclBaseline.liveComms);
}

TEST_F(NcclTest, AnNcclWithoutTheConfigBlocks) {
  // NCCL before 2.14 has no ncclCommInitRankConfig: communicators are made
  // with ncclCommInitRank and destroyed without a finalisation.
  auto loaded = cuda::loadNccl();
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  cuda::NcclLibrary old = **loaded;
  old.ncclCommInitRankConfig = nullptr;
  EXPECT_FALSE(old.canBeNonBlocking());
  EXPECT_TRUE((*loaded)->canBeNonBlocking());
  PretendRanks ranks(0, 2);
  {
    cuda::NcclRanks blocking(old, session->driver(),
                             session->kernelTarget().stream, ranks);
    EXPECT_FALSE(blocking.nonBlocking());
    auto comm = blocking.comm(0);
    ASSERT_TRUE(comm.ok()) << comm.status().message();
    auto inits = newInits();
    ASSERT_EQ(inits.size(), 1u);
    EXPECT_EQ(inits[0].blocking, -1);
  }
  EXPECT_EQ(ncclFake->finalizes, ncclBaseline.finalizes);
  EXPECT_EQ(ncclFake->commsDestroyed - ncclBaseline.commsDestroyed, 1);
}

TEST(NcclConfigTest, TheConfigIsNccl214sPrefix) {
  // ncclConfig_t of NCCL 2.14: size, magic, version, blocking (the fields
  // NCCL_CONFIG_INITIALIZER sets first in every later nccl.h).
  cuda::ncclConfig_t config;
  EXPECT_EQ(config.size, sizeof(cuda::ncclConfig_t));
  EXPECT_EQ(sizeof(cuda::ncclConfig_t), 24u);
  EXPECT_EQ(offsetof(cuda::ncclConfig_t, magic), 8u);
  EXPECT_EQ(offsetof(cuda::ncclConfig_t, version), 12u);
  EXPECT_EQ(offsetof(cuda::ncclConfig_t, blocking), 16u);
  EXPECT_EQ(config.magic, 0xcafebeefu);
  EXPECT_EQ(config.version, 21400u);
  EXPECT_EQ(config.blocking, INT_MIN);
}

//===----------------------------------------------------------------------===//
// A rank's device, and the exports
//===----------------------------------------------------------------------===//

TEST(NcclDeviceTest, ARankPicksItsDevice) {
  // The launcher's local rank, else the rank modulo the devices, else 0.
  EXPECT_EQ(cuda::cudaDeviceForRank(2, 5, 4), 2);
  EXPECT_EQ(cuda::cudaDeviceForRank(7, 0, 2), 7);
  EXPECT_EQ(cuda::cudaDeviceForRank(-1, 5, 4), 1);
  EXPECT_EQ(cuda::cudaDeviceForRank(-1, 5, 0), 0);

  const char *names[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID"};
  std::vector<std::optional<std::string>> saved;
  for (const char *name : names) {
    const char *v = std::getenv(name);
    saved.push_back(v ? std::optional<std::string>(v) : std::nullopt);
    ::unsetenv(name);
  }
  EXPECT_EQ(mpiLaunchLocalRank(), -1);
  ::setenv("MPI_LOCALRANKID", "3", 1);
  EXPECT_EQ(mpiLaunchLocalRank(), 3);
  ::setenv("OMPI_COMM_WORLD_LOCAL_RANK", "1", 1);
  EXPECT_EQ(mpiLaunchLocalRank(), 1);
  EXPECT_EQ(cuda::defaultCudaDevice(6), 1);
  ::unsetenv("OMPI_COMM_WORLD_LOCAL_RANK");
  ::unsetenv("MPI_LOCALRANKID");
  // Without the launcher's word: the rank modulo the fake's one device.
  cuda::setCudaDriverLibrary(JAMBA_FAKE_CUDA_DRIVER);
  EXPECT_EQ(cuda::defaultCudaDevice(5), 0);
  cuda::setCudaDriverLibrary("");
  for (size_t i = 0; i < saved.size(); ++i)
    if (saved[i])
      ::setenv(names[i], saved[i]->c_str(), 1);
}

TEST(NcclExportTest, TheAllReducesAreExportedForKernelFiles) {
  EXPECT_EQ(::dlsym(RTLD_DEFAULT, "jamba_rt_cuda_all_reduce_f32"),
            reinterpret_cast<void *>(&jamba_rt_cuda_all_reduce_f32));
  EXPECT_EQ(::dlsym(RTLD_DEFAULT, "jamba_rt_cuda_all_reduce_group_f32"),
            reinterpret_cast<void *>(&jamba_rt_cuda_all_reduce_group_f32));
}

} // namespace

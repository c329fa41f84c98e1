//===- CudaTest.cpp - The executor on CUDA, without a GPU -----------------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// What can be checked of the CUDA path on machines without a GPU:
// - the device must match the artifact's target kind, both ways;
// - without a driver or a device, a CUDA session fails with "no CUDA driver"
//   or "no CUDA device" (skipped where a device exists);
// - the driver loader names a library it cannot open;
// - the kernels' mgpu* functions record a sticky error when no session is
//   active;
// - through a fake driver (FakeCuda.h) that runs "device" work on the host:
//   generation on CUDA equals generation on the CPU, the weights are
//   uploaded and the buffers zeroed, decode is captured into one graph per
//   call shape and replayed (or not, with JAMBA_CUDA_GRAPH=0), kernel and
//   module-load errors fail the run or the session with the driver's
//   message, and everything is released with the session;
// - GPU ranks (with the fake NCCL, FakeCuda.h): a sharded artifact needs
//   NCCL, and with it the session joins the NCCL communicator of its ranks,
//   its kernels' all-reduces run (and are captured into the decode graphs),
//   their errors and NCCL's asynchronous ones fail the run, and an NCCL too
//   old to be captured turns graphs off. (NcclTest.cpp covers NCCL itself.)
//
//===----------------------------------------------------------------------===//

#include "FakeCudaFixture.h"
#include "TestArtifact.h"

#include "jamba/Runtime/Communicator.h"
#include "jamba/Runtime/CudaDriver.h"
#include "jamba/Runtime/CudaKernelAbi.h"
#include "jamba/Runtime/Executor.h"
#include "jamba/Runtime/Generate.h"
#include "jamba/Runtime/Nccl.h"
#include "jamba/Runtime/jamba_runtime.h"

#include "gtest/gtest.h"

#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <tuple>

#include <unistd.h>

using namespace jamba;
using namespace jamba::rt;
using namespace jamba::rt::testing;

namespace fs = std::filesystem;

namespace {

bool contains(const std::string &text, const std::string &part) {
  return text.find(part) != std::string::npos;
}

class CudaTest : public ::testing::Test {
protected:
  void SetUp() override {
    dir = std::make_unique<TestArtifactDir>("jamba-cuda-test");
    ASSERT_FALSE(dir->path().empty());
  }
  void TearDown() override {
    cuda::setCudaDriverLibrary("");
    cuda::setNcclLibrary("");
    ::unsetenv("JAMBA_CUDA_GRAPH");
    ::unsetenv("JAMBA_TEST_CUDA_BAD_MODULE");
    dir.reset();
  }

  std::unique_ptr<Artifact> open(const TestArtifactOptions &o) {
    return dir->open(o);
  }
  std::unique_ptr<Artifact> openCuda() {
    TestArtifactOptions o;
    o.cuda = true;
    return open(o);
  }

  static SessionOptions options(Device device, int64_t batch = 2,
                                int64_t context = 32) {
    SessionOptions o;
    o.device = device;
    o.batch = batch;
    o.contextLength = context;
    o.seq = 3;
    return o;
  }

  std::unique_ptr<TestArtifactDir> dir;
};

//===----------------------------------------------------------------------===//
// Without a driver
//===----------------------------------------------------------------------===//

TEST_F(CudaTest, TheDeviceMustMatchTheTarget) {
  auto cpuArt = open({});
  ASSERT_TRUE(cpuArt);
  auto onCuda = Executor::create(*cpuArt, options(Device::Cuda));
  ASSERT_FALSE(onCuda.ok());
  EXPECT_EQ(onCuda.status().message(),
            "the artifact targets cpu (x86_64-unknown-linux-gnu, x86-64-v3), "
            "but the session's device is cuda");
  // The plan is refused the same way, before anything is allocated.
  auto plan = planSession(*cpuArt, options(Device::Cuda));
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().message(), onCuda.status().message());

  auto cudaArt = openCuda();
  ASSERT_TRUE(cudaArt);
  auto onCpu = Executor::create(*cudaArt, options(Device::Cpu));
  ASSERT_FALSE(onCpu.ok());
  EXPECT_EQ(onCpu.status().message(), "the artifact targets cuda (sm_90), but "
                                      "the session's device is cpu");
}

TEST_F(CudaTest, NoDriverOrNoDeviceIsAnError) {
  auto driver = cuda::loadCudaDriver();
  if (driver.ok() && cuda::openCudaDevice(**driver, 0).ok())
    GTEST_SKIP() << "this machine has a CUDA device ("
                 << cuda::describeCudaDevice(**driver,
                                             *cuda::openCudaDevice(**driver, 0))
                 << "): the no-GPU errors cannot be seen here";
  auto art = openCuda();
  ASSERT_TRUE(art);
  auto ex = Executor::create(*art, options(Device::Cuda));
  ASSERT_FALSE(ex.ok());
  const std::string &message = ex.status().message();
  EXPECT_TRUE(message.rfind("no CUDA driver: ", 0) == 0 ||
              message.rfind("no CUDA device: ", 0) == 0)
      << message;
  if (!driver.ok())
    EXPECT_EQ(message, driver.status().message());

  // The C API picks the artifact's device and fails the same way.
  jamba_artifact *a = nullptr;
  ASSERT_EQ(jamba_artifact_open(art->directory().c_str(), &a), JAMBA_OK);
  jamba_session *s = nullptr;
  EXPECT_EQ(jamba_session_create(a, 1, 16, &s), JAMBA_ERROR);
  EXPECT_EQ(s, nullptr);
  EXPECT_EQ(std::string(jamba_last_error()), message);
  jamba_artifact_free(a);
}

TEST_F(CudaTest, AMissingDriverLibraryIsNamed) {
  auto driver = cuda::loadCudaDriver("libjamba-no-such-lib.so.1");
  ASSERT_FALSE(driver.ok());
  const std::string &message = driver.status().message();
  EXPECT_EQ(
      message.rfind("no CUDA driver: dlopen(libjamba-no-such-lib.so.1): ", 0),
      0u)
      << message;
  EXPECT_TRUE(contains(message, "cannot open shared object file")) << message;

  // A session made while the loader points at it fails with that message.
  cuda::setCudaDriverLibrary("libjamba-no-such-lib.so.1");
  EXPECT_EQ(cuda::cudaDriverLibrary(), "libjamba-no-such-lib.so.1");
  auto art = openCuda();
  ASSERT_TRUE(art);
  auto ex = Executor::create(*art, options(Device::Cuda));
  ASSERT_FALSE(ex.ok());
  EXPECT_EQ(ex.status().message(), message);
  cuda::setCudaDriverLibrary("");
  EXPECT_EQ(cuda::cudaDriverLibrary(), "libcuda.so.1");
}

TEST_F(CudaTest, KernelCallsOutsideASessionRecordAStickyError) {
  ASSERT_EQ(cuda::activeCudaTarget(), nullptr);
  ASSERT_TRUE(cuda::takeCudaError().ok());
  EXPECT_EQ(mgpuMemAlloc(64, nullptr, false), nullptr);
  EXPECT_TRUE(cuda::hasCudaError());
  // Later calls do nothing and do not replace the first error.
  EXPECT_EQ(mgpuStreamCreate(), nullptr);
  mgpuLaunchKernel(nullptr, 1, 1, 1, 1, 1, 1, 0, nullptr, nullptr, nullptr, 0);
  cuda::recordCudaError(Status::error("a later error"));
  Status first = cuda::takeCudaError();
  EXPECT_EQ(first.message(), "mgpuMemAlloc: no CUDA session is active (a "
                             "kernel called the runtime outside a CUDA run)");
  EXPECT_FALSE(cuda::hasCudaError());
  EXPECT_TRUE(cuda::takeCudaError().ok());
  // Null pointers need no session.
  mgpuMemFree(nullptr, nullptr);
  mgpuModuleUnload(nullptr);
  EXPECT_FALSE(cuda::hasCudaError());
}

/// The kernel ABI on a session over the fake driver.
class KernelAbiTest : public FakeCudaSessionTest {};

int countedRuns = 0;
void countRun(void **) { ++countedRuns; }

TEST_F(KernelAbiTest, AnEmptyGridLaunchesNothing) {
  // A loop nest with no iterations this call (the expert GEMM's form that
  // does not run) has a grid extent of 0: nothing is launched, no error.
  static const FakeKernel kernels[] = {{"count", countRun, 0}};
  static const FakeModuleImage image = {"jamba-fake-cuda-module", 1, kernels};
  void *module = mgpuModuleLoad(const_cast<FakeModuleImage *>(&image), 0);
  void *fn = mgpuModuleGetFunction(module, "count");
  ASSERT_NE(fn, nullptr) << takeError();
  const int64_t before = cudaFake->kernelLaunches;
  countedRuns = 0;
  mgpuLaunchKernel(fn, 0, 1, 1, 256, 1, 1, 0, nullptr, nullptr, nullptr, 0);
  mgpuLaunchKernel(fn, 4, 1, 0, 256, 1, 1, 0, nullptr, nullptr, nullptr, 0);
  EXPECT_EQ(takeError(), "");
  EXPECT_EQ(cudaFake->kernelLaunches, before);
  mgpuLaunchKernel(fn, 2, 1, 1, 256, 1, 1, 0, nullptr, nullptr, nullptr, 0);
  EXPECT_EQ(takeError(), "");
  EXPECT_EQ(cudaFake->kernelLaunches, before + 1);
  EXPECT_EQ(countedRuns, 1);
  // An empty block is still an error.
  mgpuLaunchKernel(fn, 2, 1, 1, 0, 1, 1, 0, nullptr, nullptr, nullptr, 0);
  EXPECT_NE(takeError().find("has an extent outside [1, 2^32)"),
            std::string::npos);
  mgpuModuleUnload(module);
  EXPECT_EQ(takeError(), "");
}

TEST_F(CudaTest, BufferAccessIsChecked) {
  // readBuffer and writeBuffer on the CPU: the same checks as on CUDA.
  auto art = open({});
  ASSERT_TRUE(art);
  auto ex = Executor::create(*art, options(Device::Cpu));
  ASSERT_TRUE(ex.ok()) << ex.status().message();
  Executor &e = **ex;
  EXPECT_EQ(e.device(), Device::Cpu);
  EXPECT_EQ(e.deviceDescription(), "cpu");
  EXPECT_FALSE(e.usesCudaGraphs());
  int64_t lens = e.bufferIndex("cache_len");
  ASSERT_GE(lens, 0);
  EXPECT_EQ(e.bufferIndex("no such buffer"), -1);
  int64_t values[2] = {7, 9}, back[2] = {0, 0};
  ASSERT_TRUE(e.writeBuffer(size_t(lens), values, sizeof(values)).ok());
  ASSERT_TRUE(
      e.readBuffer(size_t(lens), back, sizeof(int64_t), sizeof(int64_t)).ok());
  EXPECT_EQ(back[0], 9);
  EXPECT_EQ(static_cast<int64_t *>(e.bufferData("cache_len"))[0], 7);
  Status past = e.readBuffer(size_t(lens), back, 16, 8);
  EXPECT_EQ(past.message(), "cannot read 16 bytes at offset 8 of buffer "
                            "'cache_len': it has 16 bytes");
  Status index = e.writeBuffer(99, values, 8);
  EXPECT_EQ(index.message(), "cannot write buffer 99: the artifact has 9 "
                             "buffers");
}

//===----------------------------------------------------------------------===//
// Through the fake driver
//===----------------------------------------------------------------------===//

/// Rank 0 of 2, alone: the CPU all-reduce is not used, and a broadcast
/// (from rank 0, this one) has nothing to do; both are counted.
class TwoRanks : public Communicator {
public:
  int64_t rank() const override { return 0; }
  int64_t size() const override { return 2; }
  std::string name() const override { return "two"; }
  Status allReduceSumF32(float *, int64_t) override {
    ++allReduces;
    return Status::success();
  }
  Status broadcastBytes(void *, size_t, int64_t root,
                        int64_t groupSize) override {
    ++broadcasts;
    if (root != 0 || (groupSize != 0 && groupSize != 2))
      return Status::error("rank 0 of 2 is the only root here");
    return Status::success();
  }
  int64_t allReduces = 0, broadcasts = 0;
};

StatusOr<GenerationResult> generateTwo(Executor &ex, int64_t n = 6);

class FakeCudaTest : public CudaTest {
protected:
  void SetUp() override {
    CudaTest::SetUp();
    cuda::setCudaDriverLibrary(JAMBA_FAKE_CUDA_DRIVER);
    auto driver = cuda::loadCudaDriver();
    ASSERT_TRUE(driver.ok()) << driver.status().message();
    fake = fakeCudaControl();
    ASSERT_NE(fake, nullptr);
    fake->resetKnobs();
    // The same library is the fake NCCL (NcclTest.cpp says more).
    cuda::setNcclLibrary(JAMBA_FAKE_CUDA_DRIVER);
    nccl = fakeNcclControl();
    ASSERT_NE(nccl, nullptr);
    nccl->resetKnobs();
    ASSERT_TRUE(cuda::takeCudaError().ok());
  }

  std::unique_ptr<Executor> session(const Artifact &art,
                                    const SessionOptions &o) {
    auto ex = Executor::create(art, o);
    EXPECT_TRUE(ex.ok()) << ex.status().message();
    return ex.ok() ? std::move(*ex) : nullptr;
  }

  /// generateTwo on a CPU session of the plain test artifact: what a CUDA
  /// session of the same model must give.
  StatusOr<GenerationResult> cpuGeneration() {
    auto cpuArt = open({});
    if (!cpuArt)
      return Status::error("the CPU test artifact did not open");
    auto onCpu = session(*cpuArt, options(Device::Cpu));
    if (!onCpu)
      return Status::error("no CPU session");
    return generateTwo(*onCpu);
  }

  FakeCudaControl *fake = nullptr;
  FakeNcclControl *nccl = nullptr;
};

/// Two prompts of different lengths (a joint prefill, then one row alone,
/// chunked by seq 3), greedy, their logits recorded.
StatusOr<GenerationResult> generateTwo(Executor &ex, int64_t n) {
  GenerateOptions g;
  g.maxNewTokens = n;
  g.stopOnEos = false;
  g.recordLogits = true;
  return generate(ex, {{1, 17, 42, 5, 9}, {4, 8}}, g);
}

TEST_F(FakeCudaTest, GeneratesWhatTheCpuGenerates) {
  auto expected = cpuGeneration();
  ASSERT_TRUE(expected.ok()) << expected.status().message();
  auto cudaArt = openCuda();
  ASSERT_TRUE(cudaArt);

  FakeCudaControl before = *fake;
  {
    auto ex = session(*cudaArt, options(Device::Cuda));
    ASSERT_TRUE(ex);
    EXPECT_EQ(ex->device(), Device::Cuda);
    EXPECT_EQ(ex->deviceDescription(),
              "CUDA device 0: Fake CUDA device (sm_90, 1.0 GiB)");
    EXPECT_TRUE(ex->notes().empty());
    EXPECT_EQ(fake->modulesLoaded, before.modulesLoaded + 1);
    EXPECT_EQ(fake->contextsRetained, before.contextsRetained + 1);
    // Every state, io buffer and the arena was allocated and zeroed (the
    // fake fills new device memory with 0xAB).
    std::vector<float> ssm(2 * 128 * 8, 1.0f);
    int64_t ssmIndex = ex->bufferIndex("layers.0.ssm_state");
    ASSERT_TRUE(
        ex->readBuffer(size_t(ssmIndex), ssm.data(), ssm.size() * sizeof(float))
            .ok());
    EXPECT_EQ(ssm, std::vector<float>(ssm.size(), 0.0f));

    auto got = generateTwo(*ex);
    ASSERT_TRUE(got.ok()) << got.status().message();
    ASSERT_EQ(got->sequences.size(), 2u);
    for (size_t b = 0; b < 2; ++b) {
      EXPECT_EQ(got->sequences[b].ids, expected->sequences[b].ids) << b;
      EXPECT_EQ(got->sequences[b].rows, expected->sequences[b].rows) << b;
      EXPECT_EQ(got->sequences[b].logits, expected->sequences[b].logits) << b;
    }
    // Decode ran through graphs: one capture per call shape, one launch per
    // decode call, and no kernel ran outside them during decode.
    EXPECT_TRUE(ex->usesCudaGraphs());
    EXPECT_GE(ex->cudaGraphCount(), 1u);
    EXPECT_EQ(fake->captures - before.captures, int64_t(ex->cudaGraphCount()));
    EXPECT_EQ(fake->graphLaunches - before.graphLaunches, got->decodeCalls);
    EXPECT_EQ(fake->kernelRuns - before.kernelRuns,
              got->prefillCalls + got->decodeCalls);
    EXPECT_EQ(fake->kernelLaunches - before.kernelLaunches,
              got->prefillCalls + int64_t(ex->cudaGraphCount()));
    // The rows' logits were copied into page-locked memory (one range for
    // the generation, released at its end): every decode step's at least.
    EXPECT_EQ(fake->hostRegisters - before.hostRegisters, 1);
    EXPECT_EQ(fake->livePinnedRanges, before.livePinnedRanges);
    EXPECT_GE(fake->pinnedDownloads - before.pinnedDownloads, got->decodeCalls);

    // A second generation replays the graphs it captured.
    size_t graphs = ex->cudaGraphCount();
    auto again = generateTwo(*ex);
    ASSERT_TRUE(again.ok()) << again.status().message();
    EXPECT_EQ(again->sequences[0].ids, expected->sequences[0].ids);
    EXPECT_EQ(ex->cudaGraphCount(), graphs);
  }
  // Everything is released with the session.
  EXPECT_EQ(fake->modulesUnloaded, before.modulesUnloaded + 1);
  EXPECT_EQ(fake->liveAllocations, before.liveAllocations);
  EXPECT_EQ(fake->liveStreams, before.liveStreams);
  EXPECT_EQ(fake->liveGraphs, before.liveGraphs);
  EXPECT_EQ(fake->contextsRetained, before.contextsRetained);
  EXPECT_TRUE(cuda::takeCudaError().ok());
}

TEST_F(FakeCudaTest, UnpinnedLogitsGenerateTheSame) {
  // A driver that refuses to page-lock the host memory (or lacks the call)
  // costs only speed: the generation copies into ordinary memory.
  auto expected = cpuGeneration();
  ASSERT_TRUE(expected.ok()) << expected.status().message();
  auto cudaArt = openCuda();
  ASSERT_TRUE(cudaArt);
  FakeCudaControl before = *fake;
  fake->failHostRegisterWith = 2; // CUDA_ERROR_OUT_OF_MEMORY
  auto ex = session(*cudaArt, options(Device::Cuda));
  ASSERT_TRUE(ex);
  auto got = generateTwo(*ex);
  fake->resetKnobs();
  ASSERT_TRUE(got.ok()) << got.status().message();
  for (size_t b = 0; b < 2; ++b) {
    EXPECT_EQ(got->sequences[b].ids, expected->sequences[b].ids) << b;
    EXPECT_EQ(got->sequences[b].logits, expected->sequences[b].logits) << b;
  }
  EXPECT_EQ(fake->hostRegisters, before.hostRegisters);
  EXPECT_EQ(fake->pinnedDownloads, before.pinnedDownloads);
  EXPECT_TRUE(cuda::takeCudaError().ok());
}

TEST_F(FakeCudaTest, EachSessionLoadsItsOwnCopyOfTheKernels) {
  // A kernels file loads its GPU modules from its constructors, into the
  // context current then. Two sessions of one artifact (or sessions on two
  // devices of one process) must each load theirs: dlopen of the same file
  // would return the first session's handle without running them again.
  auto expected = cpuGeneration();
  ASSERT_TRUE(expected.ok()) << expected.status().message();
  auto cudaArt = openCuda();
  ASSERT_TRUE(cudaArt);
  FakeCudaControl before = *fake;
  {
    auto first = session(*cudaArt, options(Device::Cuda));
    auto second = session(*cudaArt, options(Device::Cuda));
    ASSERT_TRUE(first && second);
    EXPECT_EQ(fake->modulesLoaded, before.modulesLoaded + 2);
    // Each runs on its own, the other one alive.
    for (Executor *ex : {first.get(), second.get()}) {
      auto got = generateTwo(*ex);
      ASSERT_TRUE(got.ok()) << got.status().message();
      EXPECT_EQ(got->sequences[0].ids, expected->sequences[0].ids);
      EXPECT_EQ(got->sequences[1].logits, expected->sequences[1].logits);
    }
    first.reset();
    EXPECT_EQ(fake->modulesUnloaded, before.modulesUnloaded + 1);
    auto got = generateTwo(*second);
    ASSERT_TRUE(got.ok()) << got.status().message();
    EXPECT_EQ(got->sequences[1].ids, expected->sequences[1].ids);
  }
  EXPECT_EQ(fake->modulesUnloaded, before.modulesUnloaded + 2);
  EXPECT_EQ(fake->contextsRetained, before.contextsRetained);
}

TEST_F(FakeCudaTest, TheMemoryPoolKeepsTheTemporariesReserved) {
  // The stages' temporaries come from the device's default pool
  // (cuMemAllocAsync). A session keeps what the pool holds across
  // synchronizations (release threshold: all of it) instead of mapping it
  // again after each, and trims the pool when it ends.
  auto cudaArt = openCuda();
  ASSERT_TRUE(cudaArt);
  fake->poolReleaseThreshold = 0;
  const int64_t trims = fake->poolTrims;
  {
    auto ex = session(*cudaArt, options(Device::Cuda));
    ASSERT_TRUE(ex);
    EXPECT_EQ(fake->poolReleaseThreshold, UINT64_MAX);
    EXPECT_EQ(fake->poolTrims, trims);
    auto got = generateTwo(*ex);
    ASSERT_TRUE(got.ok()) << got.status().message();
  }
  EXPECT_EQ(fake->poolTrims, trims + 1);
}

TEST_F(FakeCudaTest, TheActiveTargetAndErrorsAreTheThreads) {
  // Ranks that are threads of one process each drive their own session:
  // the kernels' target and their sticky error belong to the thread.
  cuda::CudaKernelTarget mine;
  cuda::ActiveCudaTargetScope scope(&mine);
  cuda::recordCudaError(Status::error("this thread's error"));
  const cuda::CudaKernelTarget *seenThere = &mine;
  bool errorThere = true;
  std::string recordedThere;
  std::thread other([&] {
    seenThere = cuda::activeCudaTarget();
    errorThere = cuda::hasCudaError();
    cuda::recordCudaError(Status::error("the other thread's error"));
    recordedThere = cuda::takeCudaError().message();
  });
  other.join();
  EXPECT_EQ(seenThere, nullptr);
  EXPECT_FALSE(errorThere);
  EXPECT_EQ(recordedThere, "the other thread's error");
  EXPECT_EQ(cuda::activeCudaTarget(), &mine);
  EXPECT_EQ(cuda::takeCudaError().message(), "this thread's error");
}

TEST_F(FakeCudaTest, GraphsCanBeTurnedOff) {
  ::setenv("JAMBA_CUDA_GRAPH", "0", 1);
  auto cudaArt = openCuda();
  ASSERT_TRUE(cudaArt);
  auto ex = session(*cudaArt, options(Device::Cuda));
  ASSERT_TRUE(ex);
  EXPECT_FALSE(ex->usesCudaGraphs());
  FakeCudaControl before = *fake;
  auto got = generateTwo(*ex);
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_EQ(got->sequences[1].ids.size(), 6u);
  EXPECT_EQ(fake->captures, before.captures);
  EXPECT_EQ(fake->graphLaunches, before.graphLaunches);
  EXPECT_EQ(ex->cudaGraphCount(), 0u);
  EXPECT_EQ(fake->kernelLaunches - before.kernelLaunches,
            got->prefillCalls + got->decodeCalls);
}

TEST_F(FakeCudaTest, ProfilingTimesEveryLaunchByName) {
  // Each launch is timed by two events on the session's stream; the fake
  // clock gives it 1 us of GPU time. Profiling turns the graphs off.
  auto cudaArt = openCuda();
  ASSERT_TRUE(cudaArt);
  SessionOptions o = options(Device::Cuda);
  o.profileKernels = true;
  auto ex = session(*cudaArt, o);
  ASSERT_TRUE(ex);
  EXPECT_FALSE(ex->usesCudaGraphs());
  EXPECT_TRUE(ex->cudaKernelProfile().empty());
  FakeCudaControl before = *fake;
  auto got = generateTwo(*ex);
  ASSERT_TRUE(got.ok()) << got.status().message();
  auto expected = cpuGeneration();
  ASSERT_TRUE(expected.ok()) << expected.status().message();
  EXPECT_EQ(got->sequences[0].ids, expected->sequences[0].ids);
  EXPECT_EQ(ex->cudaGraphCount(), 0u);
  EXPECT_EQ(fake->captures, before.captures);
  const int64_t launches = got->prefillCalls + got->decodeCalls;
  EXPECT_EQ(fake->eventRecords - before.eventRecords, 2 * launches);

  auto entries = ex->cudaKernelProfile();
  ASSERT_EQ(entries.size(), 2u);
  std::map<std::string, cuda::KernelProfile::Entry> byName;
  for (const auto &e : entries)
    byName[e.name] = e;
  ASSERT_TRUE(byName.count("prefill") && byName.count("decode"));
  EXPECT_EQ(byName["prefill"].launches, got->prefillCalls);
  EXPECT_EQ(byName["decode"].launches, got->decodeCalls);
  EXPECT_NEAR(byName["decode"].milliseconds, 1e-3 * double(got->decodeCalls),
              1e-6);
  EXPECT_NEAR(byName["prefill"].milliseconds, 1e-3 * double(got->prefillCalls),
              1e-6);
  // Most time first.
  EXPECT_GE(entries[0].milliseconds, entries[1].milliseconds);

  // The table: both views, each row's share and mean.
  std::string table = cuda::formatKernelProfile(entries);
  EXPECT_NE(table.find("kernel profile by op: "), std::string::npos) << table;
  EXPECT_NE(table.find("kernel profile by kernel: "), std::string::npos)
      << table;
  EXPECT_NE(table.find(std::to_string(launches) + " launches"),
            std::string::npos)
      << table;
  EXPECT_NE(table.find("1.00  decode"), std::string::npos) << table;

  // The events are reused, and destroyed with the session.
  EXPECT_LE(fake->liveEvents - before.liveEvents, 2);
  ex.reset();
  EXPECT_EQ(fake->liveEvents, before.liveEvents);
}

TEST_F(FakeCudaTest, AFailingEventFailsTheRun) {
  auto cudaArt = openCuda();
  ASSERT_TRUE(cudaArt);
  SessionOptions o = options(Device::Cuda);
  o.profileKernels = true;
  auto ex = session(*cudaArt, o);
  ASSERT_TRUE(ex);
  fake->failEventRecordWith = 1; // CUDA_ERROR_INVALID_VALUE
  auto got = generateTwo(*ex);
  ASSERT_FALSE(got.ok());
  EXPECT_NE(
      got.status().message().find("mgpuLaunchKernel: profiling: cuEventRecord: "
                                  "CUDA_ERROR_INVALID_VALUE"),
      std::string::npos)
      << got.status().message();
  // The failed run's launches are dropped, not counted by the next run,
  // which succeeds.
  fake->failEventRecordWith = 0;
  ASSERT_TRUE(ex->zeroStates(0, 2).ok());
  auto again = generateTwo(*ex);
  ASSERT_TRUE(again.ok()) << again.status().message();
  int64_t launches = 0;
  for (const auto &e : ex->cudaKernelProfile())
    launches += e.launches;
  EXPECT_EQ(launches, again->prefillCalls + again->decodeCalls);
}

TEST_F(FakeCudaTest, AGraphIsKeptPerCallShape) {
  auto cudaArt = openCuda();
  ASSERT_TRUE(cudaArt);
  auto ex = session(*cudaArt, options(Device::Cuda, 4));
  ASSERT_TRUE(ex);
  ASSERT_TRUE(ex->zeroStates(0, 4).ok());
  int64_t ids = ex->bufferIndex("decode.ids");
  int64_t lens = ex->bufferIndex("cache_len");
  int64_t logits = ex->bufferIndex("decode.logits");
  // Rows 0..3, then rows 1..2, then 0..3 again: two graphs.
  std::vector<CallDims> calls = {{0, 4, 1}, {1, 2, 1}, {0, 4, 1}, {1, 2, 1}};
  std::vector<int64_t> cacheLen(4, 0);
  for (size_t c = 0; c < calls.size(); ++c) {
    const CallDims &d = calls[c];
    std::vector<int32_t> tokens(size_t(d.batch), int32_t(c + 3));
    std::vector<int64_t> callLens(cacheLen.begin() + d.firstRow,
                                  cacheLen.begin() + d.firstRow + d.batch);
    ASSERT_TRUE(
        ex->writeBuffer(size_t(ids), tokens.data(), tokens.size() * 4).ok());
    ASSERT_TRUE(
        ex->writeBuffer(size_t(lens), callLens.data(), callLens.size() * 8)
            .ok());
    Status s = ex->run(kEntryDecode, d);
    ASSERT_TRUE(s.ok()) << s.message();
    std::vector<float> row(128);
    ASSERT_TRUE(ex->readBuffer(size_t(logits), row.data(), 128 * 4).ok());
    // Row firstRow's history: the tokens fed to it so far, this one last.
    std::vector<int64_t> history;
    for (size_t k = 0; k <= c; ++k)
      if (calls[k].firstRow <= d.firstRow &&
          d.firstRow < calls[k].firstRow + calls[k].batch)
        history.push_back(int64_t(k + 3));
    int64_t next = testNext(history);
    EXPECT_EQ(row[size_t(next)], testBias(next) + 10.0f) << c;
    for (int64_t r = d.firstRow; r < d.firstRow + d.batch; ++r)
      ++cacheLen[size_t(r)];
  }
  EXPECT_EQ(ex->cudaGraphCount(), 2u);
}

TEST_F(FakeCudaTest, AKernelErrorFailsTheRunAfterItsStep) {
  auto cudaArt = openCuda();
  ASSERT_TRUE(cudaArt);
  auto ex = session(*cudaArt, options(Device::Cuda));
  ASSERT_TRUE(ex);
  fake->failLaunchWith = 700;
  auto failed = generateTwo(*ex);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().message(),
            "entry point 'prefill': steps[0] (kernel 'prefill_model'): "
            "mgpuLaunchKernel: cuLaunchKernel: CUDA_ERROR_ILLEGAL_ADDRESS (an "
            "illegal memory access was encountered)");
  // The error was taken: the session runs again once the fault is gone.
  EXPECT_FALSE(cuda::hasCudaError());
  fake->failLaunchWith = 0;
  auto got = generateTwo(*ex);
  ASSERT_TRUE(got.ok()) << got.status().message();

  // An error while capturing decode names the graph.
  auto fresh = session(*cudaArt, options(Device::Cuda));
  ASSERT_TRUE(fresh);
  ASSERT_TRUE(fresh->zeroStates(0, 2).ok());
  fake->failLaunchWith = 700;
  Status capture = fresh->run(kEntryDecode, CallDims{0, 1, 1});
  EXPECT_EQ(capture.message(),
            "entry point 'decode': steps[0] (kernel 'decode_model'): "
            "mgpuLaunchKernel: cuLaunchKernel: CUDA_ERROR_ILLEGAL_ADDRESS (an "
            "illegal memory access was encountered) (while capturing a CUDA "
            "graph; JAMBA_CUDA_GRAPH=0 runs decode without graphs)");
  EXPECT_EQ(fresh->cudaGraphCount(), 0u);
  fake->failLaunchWith = 0;
  Status retried = fresh->run(kEntryDecode, CallDims{0, 1, 1});
  EXPECT_TRUE(retried.ok()) << retried.message();
  EXPECT_EQ(fresh->cudaGraphCount(), 1u);
}

TEST_F(FakeCudaTest, AModuleThatFailsToLoadFailsTheSession) {
  ::setenv("JAMBA_TEST_CUDA_BAD_MODULE", "1", 1);
  auto cudaArt = openCuda();
  ASSERT_TRUE(cudaArt);
  FakeCudaControl before = *fake;
  auto ex = Executor::create(*cudaArt, options(Device::Cuda));
  ASSERT_FALSE(ex.ok());
  EXPECT_EQ(ex.status().message(),
            "kernel file 'kernels/cuda-sm_90.so': loading its GPU code "
            "failed: mgpuModuleLoadJIT: cuModuleLoadDataEx: "
            "CUDA_ERROR_INVALID_PTX (a PTX JIT compilation failed): ptxas "
            "fatal: fake error one; fake error two");
  EXPECT_FALSE(cuda::hasCudaError());
  EXPECT_EQ(fake->liveAllocations, before.liveAllocations);
  EXPECT_EQ(fake->contextsRetained, before.contextsRetained);
}

TEST_F(FakeCudaTest, ACacheLengthPastTheCapacityIsRefused) {
  // On CUDA the cache lengths live on the device; the executor checks what
  // writeBuffer wrote there before any kernel appends to the caches.
  auto cudaArt = openCuda();
  ASSERT_TRUE(cudaArt);
  auto ex = session(*cudaArt, options(Device::Cuda));
  ASSERT_TRUE(ex);
  const int64_t launches = fake->kernelLaunches;
  int64_t lens = ex->bufferIndex("cache_len");
  ASSERT_GE(lens, 0);
  const int64_t capacity = ex->capacity();
  int64_t values[2] = {0, capacity - 1};
  ASSERT_TRUE(ex->writeBuffer(size_t(lens), values, sizeof(values)).ok());
  CallDims d;
  d.batch = 2;
  d.seq = 2;
  Status s = ex->run("prefill", d);
  EXPECT_EQ(s.message(), "entry point 'prefill': cache length " +
                             std::to_string(capacity - 1) +
                             " of row 1 plus 2 tokens is outside the KV "
                             "capacity of " +
                             std::to_string(capacity));
  EXPECT_EQ(fake->kernelLaunches, launches);
  // Row 1's second half rewritten alone (an offset write) makes it fit.
  int64_t fits = capacity - 2;
  ASSERT_TRUE(
      ex->writeBuffer(size_t(lens), &fits, sizeof(fits), sizeof(int64_t)).ok());
  s = ex->run("prefill", d);
  EXPECT_TRUE(s.ok()) << s.message();
}

TEST_F(FakeCudaTest, DeviceRefusals) {
  auto cudaArt = openCuda();
  ASSERT_TRUE(cudaArt);
  SessionOptions o = options(Device::Cuda);
  o.cudaDevice = 3;
  auto missing = Executor::create(*cudaArt, o);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message(),
            "CUDA device 3 does not exist: this machine has 1 (0..0)");

  fake->computeMajor = 8;
  auto old = Executor::create(*cudaArt, options(Device::Cuda));
  ASSERT_FALSE(old.ok());
  EXPECT_EQ(old.status().message(),
            "the artifact targets cuda (sm_90); CUDA device 0: Fake CUDA "
            "device (sm_80, 1.0 GiB) is older");
  fake->computeMajor = 10;
  auto newer = Executor::create(*cudaArt, options(Device::Cuda));
  ASSERT_TRUE(newer.ok()) << newer.status().message();
  ASSERT_EQ((*newer)->notes().size(), 1u);
  EXPECT_TRUE(contains((*newer)->notes()[0], "run only if they carry PTX"))
      << (*newer)->notes()[0];
  newer->reset();
  fake->computeMajor = 9;

  // The plan must fit in the device's free memory (or the given limit).
  fake->totalMemory = 4096;
  auto small = Executor::create(*cudaArt, options(Device::Cuda));
  ASSERT_FALSE(small.ok());
  EXPECT_TRUE(contains(small.status().message(),
                       "; the free memory of CUDA device 0: Fake CUDA device "
                       "(sm_90, 0.0 GiB) is 4096 bytes (4.0 KiB)"))
      << small.status().message();
  EXPECT_EQ(small.status().message().rfind("the memory plan needs ", 0), 0u);
}

//===----------------------------------------------------------------------===//
// GPU ranks, through the fake NCCL
//===----------------------------------------------------------------------===//

class GpuRanksTest : public FakeCudaTest {
protected:
  std::unique_ptr<Artifact> openSharded() {
    TestArtifactOptions o;
    o.cuda = true;
    o.ranks = 2;
    o.allReduceLogits = true;
    return open(o);
  }
  SessionOptions twoRanks() {
    SessionOptions o = options(Device::Cuda);
    o.communicator = &ranks;
    return o;
  }

  TwoRanks ranks;
};

TEST_F(GpuRanksTest, AShardedArtifactNeedsNccl) {
  auto art = openSharded();
  ASSERT_TRUE(art);
  cuda::setNcclLibrary("libjamba-no-nccl.so.2");
  FakeCudaControl before = *fake;
  auto refused = Executor::create(*art, twoRanks());
  ASSERT_FALSE(refused.ok());
  const std::string &message = refused.status().message();
  EXPECT_EQ(message.rfind("the artifact is compiled for 2 ranks, and GPU "
                          "ranks all-reduce with NCCL: no NCCL: "
                          "dlopen(libjamba-no-nccl.so.2): "
                          "libjamba-no-nccl.so.2: cannot open",
                          0),
            0u)
      << message;
  EXPECT_TRUE(contains(message, " (tried libjamba-no-nccl.so.2)")) << message;
  // Said before the device was opened.
  EXPECT_EQ(fake->contextsRetained, before.contextsRetained);
  EXPECT_EQ(ranks.broadcasts, 0);
  // The C API (no communicator) refuses it with the rank check.
  jamba_artifact *a = nullptr;
  ASSERT_EQ(jamba_artifact_open(art->directory().c_str(), &a), JAMBA_OK);
  jamba_session *s = nullptr;
  EXPECT_EQ(jamba_session_create(a, 1, 16, &s), JAMBA_ERROR);
  EXPECT_TRUE(contains(jamba_last_error(), "compiled for 2 ranks, but this "
                                           "run has 1"))
      << jamba_last_error();
  jamba_artifact_free(a);
}

TEST_F(GpuRanksTest, RanksAllReduceThroughNccl) {
  auto expected = cpuGeneration();
  ASSERT_TRUE(expected.ok()) << expected.status().message();
  auto art = openSharded();
  ASSERT_TRUE(art);

  FakeCudaControl before = *fake;
  FakeNcclControl ncclBefore = *nccl;
  {
    auto ex = session(*art, twoRanks());
    ASSERT_TRUE(ex);
    // Rank 0 of 2 made the id, broadcast it, and joined with it.
    EXPECT_EQ(ranks.broadcasts, 1);
    ASSERT_EQ(nccl->inits.size(), ncclBefore.inits.size() + 1);
    const FakeNcclControl::Init &init = nccl->inits.back();
    EXPECT_EQ(init.nranks, 2);
    EXPECT_EQ(init.rank, 0);
    EXPECT_EQ(init.id, "fake-nccl-id-" + std::to_string(nccl->uniqueIds));
    EXPECT_EQ(nccl->liveComms, ncclBefore.liveComms + 1);
    EXPECT_TRUE(ex->usesCudaGraphs());
    EXPECT_TRUE(ex->notes().empty());

    // Both (pretended) ranks hold the same logits: the sum is twice one
    // rank's, which picks the same ids.
    auto got = generateTwo(*ex);
    ASSERT_TRUE(got.ok()) << got.status().message();
    for (size_t b = 0; b < 2; ++b) {
      EXPECT_EQ(got->sequences[b].ids, expected->sequences[b].ids) << b;
      std::vector<float> twice = expected->sequences[b].logits;
      for (float &v : twice)
        v *= 2;
      EXPECT_EQ(got->sequences[b].logits, twice) << b;
    }
    // One all-reduce per step, on the session's stream; decode's are
    // captured into its graphs and replayed.
    EXPECT_EQ(nccl->allReduceRuns - ncclBefore.allReduceRuns,
              got->prefillCalls + got->decodeCalls);
    EXPECT_EQ(nccl->allReduceCalls - ncclBefore.allReduceCalls,
              got->prefillCalls + int64_t(ex->cudaGraphCount()));
    EXPECT_GE(ex->cudaGraphCount(), 1u);
    EXPECT_EQ(fake->graphLaunches - before.graphLaunches, got->decodeCalls);
    EXPECT_EQ(nccl->lastRanks, 2);
    // The kernels' all-reduces go through NCCL; the host communicator
    // carries the generation's agreement (one all-reduce, a broadcast),
    // NCCL's id, and rank 0's ids after the prefill and each decode call.
    EXPECT_EQ(ranks.allReduces, 1);
    EXPECT_EQ(ranks.broadcasts, 1 + 1 + 1 + got->decodeCalls);
  }
  // The communicator goes with the session.
  EXPECT_EQ(nccl->liveComms, ncclBefore.liveComms);
  EXPECT_EQ(nccl->commsDestroyed, ncclBefore.commsDestroyed + 1);
  EXPECT_EQ(fake->liveAllocations, before.liveAllocations);
  EXPECT_EQ(fake->contextsRetained, before.contextsRetained);
}

TEST_F(GpuRanksTest, TwoRanksAsThreadsOfOneProcess) {
  // One process driving two (fake) GPUs: rank k on a thread of its own,
  // on device k, with the in-process communicators carrying NCCL's
  // bootstrap. Each session loads its own copy of the kernels into its
  // device's context, and the kernels' calls use their thread's session.
  auto expected = cpuGeneration();
  ASSERT_TRUE(expected.ok()) << expected.status().message();
  auto art = openSharded();
  ASSERT_TRUE(art);

  fake->deviceCount = 2;
  FakeCudaControl before = *fake;
  FakeNcclControl ncclBefore = *nccl;
  auto comms = createThreadCommunicators(2);
  std::vector<std::optional<StatusOr<GenerationResult>>> results(2);
  std::vector<std::string> errors(2);
  auto runRank = [&](int k) {
    SessionOptions o = options(Device::Cuda);
    o.cudaDevice = k;
    o.rank = k;
    o.communicator = comms[size_t(k)].get();
    auto ex = Executor::create(*art, o);
    if (!ex.ok()) {
      errors[size_t(k)] = ex.status().message();
      comms[size_t(k)]->abort(1);
      return;
    }
    results[size_t(k)].emplace(generateTwo(**ex));
    if (!results[size_t(k)]->ok())
      comms[size_t(k)]->abort(1);
  };
  std::thread second(runRank, 1);
  runRank(0);
  second.join();
  for (int k = 0; k < 2; ++k) {
    ASSERT_EQ(errors[size_t(k)], "") << "rank " << k;
    ASSERT_TRUE(results[size_t(k)] && results[size_t(k)]->ok())
        << "rank " << k << ": "
        << (results[size_t(k)] ? results[size_t(k)]->status().message() : "");
    // The fake all-reduce doubles (two ranks of equal data): every logit
    // twice the CPU's, the same ids.
    for (size_t b = 0; b < 2; ++b) {
      const SequenceOutput &got = (*results[size_t(k)])->sequences[b];
      EXPECT_EQ(got.ids, expected->sequences[b].ids) << k << " " << b;
      std::vector<float> twice = expected->sequences[b].logits;
      for (float &v : twice)
        v *= 2;
      EXPECT_EQ(got.logits, twice) << k << " " << b;
    }
  }
  // One NCCL id, joined by rank 0 and rank 1, each in its own device's
  // context; two copies of the kernels loaded (one per device).
  ASSERT_EQ(nccl->inits.size(), ncclBefore.inits.size() + 2);
  const FakeNcclControl::Init &a = nccl->inits[ncclBefore.inits.size()];
  const FakeNcclControl::Init &b = nccl->inits[ncclBefore.inits.size() + 1];
  EXPECT_EQ(nccl->uniqueIds, ncclBefore.uniqueIds + 1);
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.rank + b.rank, 1);
  EXPECT_EQ(a.nranks, 2);
  EXPECT_NE(a.context, b.context);
  EXPECT_EQ(fake->modulesLoaded, before.modulesLoaded + 2);
  EXPECT_EQ(fake->contextsRetained, before.contextsRetained);
  EXPECT_EQ(nccl->liveComms, ncclBefore.liveComms);
  EXPECT_FALSE(cuda::hasCudaError());
}

TEST_F(GpuRanksTest, NcclErrorsFailTheSessionOrTheRun) {
  auto art = openSharded();
  ASSERT_TRUE(art);
  FakeCudaControl before = *fake;
  FakeNcclControl ncclBefore = *nccl;
  nccl->failInitWith = cuda::ncclInvalidUsage;
  auto refused = Executor::create(*art, twoRanks());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().message(),
            "rank 0 of 2 (CUDA device 0: Fake CUDA device (sm_90, 1.0 GiB)): "
            "the NCCL communicator of all 2 ranks: ncclCommInitRankConfig: "
            "ncclInvalidUsage (invalid usage (fake NCCL))");
  EXPECT_EQ(fake->liveAllocations, before.liveAllocations);
  EXPECT_EQ(fake->contextsRetained, before.contextsRetained);
  nccl->failInitWith = 0;

  // A failing all-reduce fails the run after its step: the first prefill
  // call's logits, both rows' first 2 positions ([2, 2, 128]).
  auto ex = session(*art, twoRanks());
  ASSERT_TRUE(ex);
  nccl->failAllReduceWith = cuda::ncclRemoteError;
  auto failed = generateTwo(*ex);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().message(),
            "entry point 'prefill': steps[0] (kernel 'prefill_model'): "
            "jamba_rt_cuda_all_reduce_f32: the NCCL communicator of all 2 "
            "ranks: ncclAllReduce: ncclRemoteError (remote process exited "
            "(fake NCCL)) (512 floats over 2 of 2 ranks)");
  EXPECT_FALSE(cuda::hasCudaError());
  nccl->failAllReduceWith = 0;
  // The failure aborted the session's communicators: later runs fail
  // rather than wait in a collective the other ranks may never join.
  ASSERT_TRUE(ex->zeroStates(0, 2).ok());
  Status later = ex->run(kEntryDecode, CallDims{0, 1, 1});
  EXPECT_NE(later.message().find("the session's NCCL communicators were "
                                 "aborted after an earlier error"),
            std::string::npos)
      << later.message();
  EXPECT_EQ(nccl->commsAborted, ncclBefore.commsAborted + 1);

  // An asynchronous error fails the run once its work is done (a new
  // session).
  ex.reset();
  (void)cuda::takeCudaError();
  ex = session(*art, twoRanks());
  ASSERT_TRUE(ex);
  ASSERT_TRUE(ex->zeroStates(0, 2).ok());
  nccl->asyncError = cuda::ncclRemoteError;
  Status async = ex->run(kEntryDecode, CallDims{0, 1, 1});
  EXPECT_EQ(async.message(), "entry point 'decode': the NCCL communicator of "
                             "all 2 ranks: ncclCommGetAsyncError: "
                             "ncclRemoteError (remote process exited (fake "
                             "NCCL))");
  nccl->asyncError = 0;
  // After a failure the communicator is aborted, not destroyed.
  ex.reset();
  EXPECT_EQ(nccl->commsAborted, ncclBefore.commsAborted + 2);
  EXPECT_EQ(nccl->liveComms, ncclBefore.liveComms);
}

TEST_F(GpuRanksTest, AnNcclTooOldForGraphsTurnsThemOff) {
  auto art = openSharded();
  ASSERT_TRUE(art);
  // The version is read when a library is loaded: the fake under another
  // name (the same file) loads anew.
  std::string path = JAMBA_FAKE_CUDA_DRIVER;
  std::string alias =
      path.substr(0, path.rfind('/')) + "/." + path.substr(path.rfind('/'));
  cuda::setNcclLibrary(alias);
  nccl->version = 2804;
  auto ex = session(*art, twoRanks());
  nccl->version = FakeNcclControl().version;
  ASSERT_TRUE(ex);
  EXPECT_FALSE(ex->usesCudaGraphs());
  ASSERT_EQ(ex->notes().size(), 1u);
  EXPECT_EQ(ex->notes()[0], "NCCL 2.8.4 (" + alias +
                                ") cannot be captured into CUDA graphs (2.9 "
                                "and later can): decode runs without them");
  FakeCudaControl before = *fake;
  auto got = generateTwo(*ex);
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_EQ(fake->captures, before.captures);
  EXPECT_EQ(ex->cudaGraphCount(), 0u);
}

} // namespace

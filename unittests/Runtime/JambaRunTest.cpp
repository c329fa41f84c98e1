//===- JambaRunTest.cpp - jamba-run over a runnable test artifact ---------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// Runs the jamba-run tool (its path comes from CMake) over the test artifact
// of TestArtifact.h: ids on stdout, one line per sequence, the logits .npy
// files, the plan and tokens/s on stderr. (The lit tests in test/Runtime
// cover its errors; they have no runnable artifact.) Where MPI is built in
// and mpirun is on PATH, also real ranks: `mpirun -np 2 jamba-run` over a
// 2-rank artifact whose kernels all-reduce their logits. A CUDA artifact is
// refused on the CPU, and on a machine without a GPU fails with "no CUDA
// driver" or "no CUDA device"; so does a 2-rank CUDA artifact under mpirun,
// each rank on its own device (or, without NCCL, it says it needs NCCL).
//
//===----------------------------------------------------------------------===//

#include "TestArtifact.h"

#include "jamba/Checkpoint/Npy.h"
#include "jamba/Runtime/Communicator.h"
#include "jamba/Runtime/CudaDriver.h"

#include "gtest/gtest.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include <sys/wait.h>
#include <unistd.h>

using namespace jamba;
using namespace jamba::rt::testing;

namespace fs = std::filesystem;

namespace {

#ifdef JAMBA_RUN_TOOL

struct Outcome {
  int code = -1;
  std::string out, err;
};

std::string slurp(const std::string &path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

class JambaRunTest : public ::testing::Test {
protected:
  void SetUp() override {
    dir = std::make_unique<TestArtifactDir>("jamba-run-test");
    root = dir->path();
    ASSERT_FALSE(root.empty());
    ckpt::Status s = writeTestArtifact(root + "/art");
    ASSERT_TRUE(s.ok()) << s.message();
  }
  void TearDown() override { dir.reset(); }
  Outcome run(const std::string &args, const std::string &launcher = "",
              const std::string &artifact = "art") {
    std::string cmd = launcher + std::string(JAMBA_RUN_TOOL) + " " + root +
                      "/" + artifact + " " + args + " >" + root + "/out 2>" +
                      root + "/err";
    Outcome o;
    int status = std::system(cmd.c_str());
    o.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    o.out = slurp(root + "/out");
    o.err = slurp(root + "/err");
    return o;
  }
  std::unique_ptr<TestArtifactDir> dir;
  std::string root;
};

/// The line jamba-run prints for `n` ids after `history` under the test
/// artifact's rule, stopping after an id of `eos` (which is printed).
std::string expectedLine(std::vector<int64_t> history, int n,
                         std::optional<int64_t> eos = std::nullopt) {
  std::string line;
  for (int j = 0; j < n; ++j) {
    int64_t next = testNext(history);
    line += (j ? "," : "") + std::to_string(next);
    history.push_back(next);
    if (next == eos)
      break;
  }
  return line + "\n";
}

TEST_F(JambaRunTest, GeneratesAndWritesLogits) {
  Outcome o = run("--prompt-ids 1,17,42 -n 5 --ignore-eos --logits-out " +
                  root + "/l.npy");
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(o.out, expectedLine({1, 17, 42}, 5));
  EXPECT_NE(o.err.find("jamba-run: plan for batch 1, context 8, seq 8: "),
            std::string::npos)
      << o.err;
  EXPECT_NE(o.err.find("prefill 3 tokens in"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("decode 5 tokens in"), std::string::npos) << o.err;
  std::vector<int64_t> shape;
  std::vector<float> values;
  ckpt::Status s = ckpt::readNpyF32(root + "/l.npy", shape, values);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(shape, (std::vector<int64_t>{8, 128}));
  // Row 0: after the first prompt id.
  int64_t first = testNext({1});
  EXPECT_EQ(values[size_t(first)], testBias(first) + 10.0f);
}

TEST_F(JambaRunTest, SeveralSequences) {
  Outcome o = run("--prompt-ids 1,17,42 --batch 3 -n 3 --ignore-eos");
  ASSERT_EQ(o.code, 0) << o.err;
  std::string line = expectedLine({1, 17, 42}, 3);
  EXPECT_EQ(o.out, line + line + line);
  o = run("--prompt-ids 1,17,42 --prompt-ids 5 -n 2 --ignore-eos --seq 2 "
          "--logits-out " +
          root + "/m.npy");
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(o.out, expectedLine({1, 17, 42}, 2) + expectedLine({5}, 2));
  std::vector<int64_t> shape;
  std::vector<float> values;
  ASSERT_TRUE(ckpt::readNpyF32(root + "/m.1.npy", shape, values).ok());
  EXPECT_EQ(shape, (std::vector<int64_t>{3, 128}));
  ASSERT_TRUE(ckpt::readNpyF32(root + "/m.0.npy", shape, values).ok());
  EXPECT_EQ(shape, (std::vector<int64_t>{5, 128}));
}

TEST_F(JambaRunTest, SamplingIsSeeded) {
  std::string args = "--prompt-ids 3 -n 6 --ignore-eos --temperature 50 "
                     "--seed 9";
  Outcome a = run(args), b = run(args);
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
}

TEST_F(JambaRunTest, Refusals) {
  Outcome o = run("--prompt-ids 1,2,3 -n 100");
  EXPECT_EQ(o.code, 1);
  EXPECT_EQ(o.err, "jamba-run: error: the longest prompt (3 ids) + 100 "
                   "generated ids need a context of 103; the artifact "
                   "supports at most 64\n");
  o = run("--prompt-ids 1,2,3 -n 10 --context 8");
  EXPECT_EQ(o.code, 1);
  EXPECT_NE(o.err.find("jamba-run: error: sequence 0 needs 13 cache "
                       "positions (3 prompt + 10 generated ids) but the "
                       "context length (KV capacity) is 8\n"),
            std::string::npos)
      << o.err;
  o = run("--prompt-ids 1 --batch 5");
  EXPECT_EQ(o.code, 1);
  EXPECT_NE(o.err.find("batch (sequences at once) = 5 is outside what the "
                       "artifact supports (1..4)"),
            std::string::npos)
      << o.err;
  // On the CPU --profile-kernels times the steps: the test artifact's one
  // step per entry point, prefill once and decode three times (as
  // ExecutorTest.GreedyBatchOneMatchesTheRule counts a generation's calls:
  // one decode call per id).
  o = run("--prompt-ids 1,2 -n 3 --profile-kernels");
  EXPECT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.err.find("jamba-run: step profile by kind: "), std::string::npos)
      << o.err;
  EXPECT_NE(o.err.find("step profile by step: "), std::string::npos) << o.err;
  EXPECT_NE(o.err.find(" in 4 launches\n"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("         1 "), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("         3 "), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("  prefill_model\n"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("  decode_model\n"), std::string::npos) << o.err;
  o = run("--prompt-ids 1,500");
  EXPECT_EQ(o.code, 1);
  EXPECT_NE(o.err.find("prompt 0: id 500 at position 1 is outside the "
                       "vocabulary [0, 128)"),
            std::string::npos)
      << o.err;
  EXPECT_EQ(o.out, "");
}

size_t count(const std::string &text, const std::string &what);

TEST_F(JambaRunTest, CudaArtifactWithoutAGpu) {
  TestArtifactOptions o;
  o.cuda = true;
  ckpt::Status s = writeTestArtifact(root + "/cuda", o);
  ASSERT_TRUE(s.ok()) << s.message();
  // Asked to run it on the CPU, it is refused naming both.
  Outcome cpu = run("--prompt-ids 1,17,42 --device cpu", "", "cuda");
  EXPECT_EQ(cpu.code, 1);
  EXPECT_EQ(cpu.err, "jamba-run: error: the artifact targets cuda (sm_90), "
                     "but the session's device is cpu\n");
  auto driver = rt::cuda::loadCudaDriver();
  if (driver.ok() && rt::cuda::openCudaDevice(**driver, 0).ok())
    GTEST_SKIP() << "this machine has a CUDA device";
  // By default it runs on CUDA, which this machine lacks: one line, after
  // the plan, and nothing on stdout.
  Outcome gpu = run("--prompt-ids 1,17,42", "", "cuda");
  EXPECT_EQ(gpu.code, 1);
  EXPECT_EQ(gpu.out, "");
  EXPECT_EQ(count(gpu.err, "\n"), 2u) << gpu.err;
  EXPECT_TRUE(gpu.err.find("\njamba-run: error: no CUDA driver: ") !=
                  std::string::npos ||
              gpu.err.find("\njamba-run: error: no CUDA device: ") !=
                  std::string::npos)
      << gpu.err;
  Outcome ordinal =
      run("--prompt-ids 1,17,42 --device cuda --cuda-device 7", "", "cuda");
  EXPECT_EQ(ordinal.code, 1);
  EXPECT_NE(ordinal.err.find("jamba-run: error: no CUDA "), std::string::npos)
      << ordinal.err;
}

size_t count(const std::string &text, const std::string &what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos;
       at = text.find(what, at + 1))
    ++n;
  return n;
}

TEST_F(JambaRunTest, MpiRanks) {
  if (!rt::haveMpi())
    GTEST_SKIP() << "this build has no MPI";
  if (std::system("command -v mpirun >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "no mpirun on PATH";
  TestArtifactOptions two;
  two.allReduceLogits = true;
  two.ranks = 2;
  ckpt::Status s = writeTestArtifact(root + "/art2", two);
  ASSERT_TRUE(s.ok()) << s.message();
  // `timeout`: a rank left waiting in a collective fails the test, not
  // hangs it.
  auto mpirun = [](int ranks) {
    return "timeout 120 mpirun --allow-run-as-root --oversubscribe -np " +
           std::to_string(ranks) + " ";
  };

  // Two ranks of equal data: the all-reduced logits are twice one rank's,
  // the ids those of one rank, printed once; rank 1 is silent.
  Outcome o = run("--prompt-ids 1,17,42 -n 5 --ignore-eos --logits-out " +
                      root + "/l.npy",
                  mpirun(2), "art2");
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(o.out, expectedLine({1, 17, 42}, 5));
  EXPECT_EQ(count(o.err, "jamba-run: plan for batch 1"), 1u) << o.err;
  EXPECT_EQ(count(o.err, "jamba-run: load "), 1u) << o.err;
  EXPECT_EQ(count(o.err, "error"), 0u) << o.err;
  std::vector<int64_t> shape;
  std::vector<float> values;
  s = ckpt::readNpyF32(root + "/l.npy", shape, values);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(shape, (std::vector<int64_t>{8, 128}));
  int64_t first = testNext({1});
  EXPECT_EQ(values[size_t(first)], 2 * (testBias(first) + 10.0f));
  EXPECT_EQ(values[size_t((first + 1) % 128)], 2 * testBias((first + 1) % 128));

  // The wrong number of ranks: every rank says so, and they stop.
  o = run("--prompt-ids 1,17,42 -n 2", mpirun(3), "art2");
  EXPECT_NE(o.code, 0);
  EXPECT_NE(o.code, 124) << "timed out: " << o.err; // timeout's status.
  EXPECT_NE(o.err.find(": error: the artifact is compiled for 2 ranks, but "
                       "this run has 3 (the mpi communicator): start it with "
                       "mpirun -np 2"),
            std::string::npos)
      << o.err;
  EXPECT_NE(o.err.find("jamba-run: rank "), std::string::npos) << o.err;
  EXPECT_EQ(o.out, "");

  // Started alone, a 2-rank artifact is refused.
  o = run("--prompt-ids 1,17,42 -n 2", "", "art2");
  EXPECT_EQ(o.code, 1);
  EXPECT_EQ(o.err, "jamba-run: error: the artifact is compiled for 2 ranks, "
                   "but this run has 1 (no communicator): start it with "
                   "mpirun -np 2 (or jamba-run --ranks 2)\n");

  // One rank under mpirun runs a single-rank artifact as usual.
  o = run("--prompt-ids 1,17,42 -n 3 --ignore-eos", mpirun(1));
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(o.out, expectedLine({1, 17, 42}, 3));
}

TEST_F(JambaRunTest, RanksAsThreadsOfOneProcess) {
  TestArtifactOptions two;
  two.allReduceLogits = true;
  two.ranks = 2;
  ckpt::Status s = writeTestArtifact(root + "/art2", two);
  ASSERT_TRUE(s.ok()) << s.message();
  // --ranks 2: one thread per rank over the in-process communicators. As
  // with MPI ranks the logits are twice one rank's and the ids one rank's,
  // printed once. `timeout`: a rank left waiting fails the test.
  Outcome o = run("--ranks 2 --prompt-ids 1,17,42 -n 5 --ignore-eos "
                  "--logits-out " +
                      root + "/l.npy",
                  "timeout 120 ", "art2");
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(o.out, expectedLine({1, 17, 42}, 5));
  EXPECT_EQ(count(o.err, "jamba-run: plan for batch 1"), 1u) << o.err;
  EXPECT_EQ(count(o.err, "error"), 0u) << o.err;
  std::vector<int64_t> shape;
  std::vector<float> values;
  s = ckpt::readNpyF32(root + "/l.npy", shape, values);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(shape, (std::vector<int64_t>{8, 128}));
  int64_t first = testNext({1});
  EXPECT_EQ(values[size_t(first)], 2 * (testBias(first) + 10.0f));

  // The wrong count: every rank finds it and none waits for the others;
  // the error is printed once, with the count of the others.
  o = run("--ranks 3 --prompt-ids 1,17,42 -n 2", "timeout 120 ", "art2");
  EXPECT_EQ(o.code, 1) << o.err;
  EXPECT_EQ(count(o.err, ": error: the artifact is compiled for 2 ranks, but "
                         "this run has 3 (the threads communicator)"),
            1u)
      << o.err;
  EXPECT_NE(o.err.find("jamba-run: rank 0: error: "), std::string::npos)
      << o.err;
  EXPECT_NE(o.err.find("(and 2 other ranks alike)"), std::string::npos)
      << o.err;
  EXPECT_EQ(o.out, "");
  // A bad count, and --ranks under an MPI launcher.
  o = run("--ranks 0 --prompt-ids 1 -n 1", "", "art2");
  EXPECT_EQ(o.code, 1);
  EXPECT_EQ(o.err, "jamba-run: error: --ranks must be an integer in [1, "
                   "1024], got '0'\n");
  o = run("--ranks 2 --mpi --prompt-ids 1 -n 1", "", "art2");
  EXPECT_EQ(o.code, 1);
  EXPECT_EQ(o.err, "jamba-run: error: --ranks runs the ranks as threads of "
                   "this process; it cannot be combined with an MPI launcher "
                   "or --mpi\n");
}

TEST_F(JambaRunTest, RanksStopOnEosTogether) {
  // One of two sequences meets EOS partway: rank 0 chooses every id and
  // broadcasts it, the others apply the same stop rule to it, so all drop
  // the row at the same step and run the remaining steps together; a rank
  // that stopped early or went on alone would leave the others waiting in
  // a collective until `timeout` failed the test.
  std::vector<int64_t> stopping = {1, 17, 42}, other = {3, 3};
  std::vector<int64_t> afterOne = stopping;
  afterOne.push_back(testNext(afterOne));
  int64_t eos = testNext(afterOne); // stopping's second id.
  TestArtifactOptions two;
  two.allReduceLogits = true;
  two.ranks = 2;
  two.eosIds = {eos};
  ckpt::Status s = writeTestArtifact(root + "/eos2", two);
  ASSERT_TRUE(s.ok()) << s.message();
  std::string expected =
      expectedLine(stopping, 6, eos) + expectedLine(other, 6, eos);
  // The hand-computed lines: the first stops after two ids, the other
  // runs all six (else the test would not show a row dropped partway).
  ASSERT_EQ(count(expected, ","), 1u + 5u) << expected;
  std::string args = "--prompt-ids 1,17,42 --prompt-ids 3,3 -n 6";

  Outcome o = run("--ranks 2 " + args, "timeout 120 ", "eos2");
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(o.out, expected);
  EXPECT_EQ(count(o.err, "error"), 0u) << o.err;

  if (!rt::haveMpi() || std::system("command -v mpirun >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "the threads communicator passed; no MPI build or no "
                    "mpirun on PATH for real ranks";
  o = run(args, "timeout 120 mpirun --allow-run-as-root --oversubscribe -np 2 ",
          "eos2");
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(o.out, expected);
  EXPECT_EQ(count(o.err, "error"), 0u) << o.err;
}

TEST_F(JambaRunTest, CudaRanksWithoutAGpu) {
  if (!rt::haveMpi())
    GTEST_SKIP() << "this build has no MPI";
  if (std::system("command -v mpirun >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "no mpirun on PATH";
  auto driver = rt::cuda::loadCudaDriver();
  if (driver.ok() && rt::cuda::openCudaDevice(**driver, 0).ok())
    GTEST_SKIP() << "this machine has a CUDA device";
  TestArtifactOptions o;
  o.cuda = true;
  o.ranks = 2;
  o.allReduceLogits = true;
  ckpt::Status s = writeTestArtifact(root + "/cuda2", o);
  ASSERT_TRUE(s.ok()) << s.message();
  // Both ranks pass the rank checks and stop at the device (or at NCCL,
  // where there is none); the first to fail stops the other.
  Outcome ranks = run("--prompt-ids 1,17,42 -n 2",
                      "timeout 120 mpirun --allow-run-as-root "
                      "--oversubscribe -np 2 ",
                      "cuda2");
  EXPECT_NE(ranks.code, 0);
  EXPECT_NE(ranks.code, 124) << "timed out: " << ranks.err;
  EXPECT_EQ(ranks.out, "");
  bool noGpu =
      ranks.err.find(": error: no CUDA driver: ") != std::string::npos ||
      ranks.err.find(": error: no CUDA device: ") != std::string::npos;
  bool noNccl = ranks.err.find(": error: the artifact is compiled for 2 "
                               "ranks, and GPU ranks all-reduce with NCCL: no "
                               "NCCL: ") != std::string::npos;
  EXPECT_TRUE(noGpu || noNccl) << ranks.err;
  EXPECT_NE(ranks.err.find("jamba-run: rank "), std::string::npos) << ranks.err;
}

#endif // JAMBA_RUN_TOOL

} // namespace

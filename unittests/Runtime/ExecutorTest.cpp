//===- ExecutorTest.cpp - The CPU executor and generation -----------------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// The plumbing of Executor and rt::generate, checked with the test kernels
// of TestKernels.cpp (a toy rule over the KV cache, see there): argument
// order, per-call dims, in-place state across calls, cache lengths, chunked
// prefill, batch packing and row offsets, EOS; and the refusals (dims above
// the maxima, capacity too small, a kernels file that is no shared object,
// a missing symbol, a plan above the memory limit, a non-model artifact).
//
//===----------------------------------------------------------------------===//

#include "TestArtifact.h"

#include "jamba/Checkpoint/RandomCheckpoint.h"
#include "jamba/Runtime/Executor.h"
#include "jamba/Runtime/Generate.h"
#include "jamba/Runtime/jamba_runtime.h"

#include "gtest/gtest.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <thread>

#include <unistd.h>

using namespace jamba;
using namespace jamba::rt;
using namespace jamba::rt::testing;

namespace fs = std::filesystem;

namespace {

class ExecutorTest : public ::testing::Test {
protected:
  void SetUp() override {
    dir = std::make_unique<TestArtifactDir>("jamba-executor-test");
    root = dir->path();
    ASSERT_FALSE(root.empty());
  }
  void TearDown() override { dir.reset(); }

  std::unique_ptr<Artifact> open(const TestArtifactOptions &o = {}) {
    return dir->open(o);
  }

  /// Writes a 2-rank artifact whose kernels all-reduce their logits under
  /// `name` and opens it through the C API (nullptr on failure).
  jamba_artifact *openTwoRankArtifact(const std::string &name) {
    std::string path = root + "/" + name;
    TestArtifactOptions two;
    two.ranks = 2;
    two.allReduceLogits = true;
    if (!writeTestArtifact(path, two).ok())
      return nullptr;
    jamba_artifact *art = nullptr;
    EXPECT_EQ(jamba_artifact_open(path.c_str(), &art), JAMBA_OK)
        << jamba_last_error();
    return art;
  }

  /// Expects both ranks' `n` generated ids to be the test model's greedy
  /// continuation of `prompt` (the sum of two equal ranks doubles every
  /// logit, which keeps the argmax).
  static void expectBothRanksGenerate(std::vector<int64_t> prompt,
                                      const int32_t *rank0,
                                      const int32_t *rank1, int n) {
    for (int j = 0; j < n; ++j) {
      int64_t next = testNext(prompt);
      EXPECT_EQ(rank0[j], next) << "id " << j;
      EXPECT_EQ(rank1[j], next) << "id " << j;
      prompt.push_back(next);
    }
  }

  std::unique_ptr<Executor> session(const Artifact &a,
                                    const SessionOptions &o) {
    auto ex = Executor::create(a, o);
    EXPECT_TRUE(ex.ok()) << ex.status().message();
    return ex.ok() ? std::move(*ex) : nullptr;
  }

  std::unique_ptr<TestArtifactDir> dir;
  std::string root;
};

SessionOptions opts(int64_t batch, int64_t context,
                    std::optional<int64_t> seq = std::nullopt) {
  SessionOptions o;
  o.batch = batch;
  o.contextLength = context;
  o.seq = seq;
  return o;
}

/// The ids and logits rows the toy rule gives for `prompt` and n greedy ids.
void expectToyRun(const std::vector<int64_t> &prompt, int64_t n,
                  const SequenceOutput &out, bool logits) {
  std::vector<int64_t> history;
  std::vector<int64_t> expectedIds;
  std::vector<int64_t> favoured; // per logits row
  for (int64_t t : prompt) {
    history.push_back(t);
    favoured.push_back(testNext(history));
  }
  for (int64_t j = 0; j < n; ++j) {
    expectedIds.push_back(favoured.back());
    history.push_back(expectedIds.back());
    favoured.push_back(testNext(history));
  }
  EXPECT_EQ(out.ids, expectedIds);
  if (!logits)
    return;
  ASSERT_EQ(out.rows, int64_t(prompt.size()) + n);
  ASSERT_EQ(out.logits.size(), size_t(out.rows) * 128);
  for (int64_t r = 0; r < out.rows; ++r)
    for (int64_t v = 0; v < 128; ++v)
      ASSERT_EQ(out.logits[size_t(r * 128 + v)],
                testBias(v) + (v == favoured[size_t(r)] ? 10.0f : 0.0f))
          << "row " << r << " id " << v;
}

GenerateOptions greedy(int64_t n, bool logits = true) {
  GenerateOptions g;
  g.maxNewTokens = n;
  g.stopOnEos = false;
  g.recordLogits = logits;
  return g;
}

TEST_F(ExecutorTest, RunPassesDimsBuffersAndWeights) {
  auto a = open();
  ASSERT_TRUE(a);
  auto ex = session(*a, opts(3, 16, 4));
  ASSERT_TRUE(ex);
  EXPECT_EQ(ex->batch(), 3);
  EXPECT_EQ(ex->seq(), 4);
  EXPECT_EQ(ex->capacity(), 16);
  // Rows 1..2, 3 tokens each, packed with row stride 3.
  auto *ids = static_cast<int32_t *>(ex->bufferData("ids"));
  auto *len = static_cast<int64_t *>(ex->bufferData("cache_len"));
  for (int i = 0; i < 6; ++i)
    ids[i] = 10 + i;
  len[0] = len[1] = 0;
  CallDims d;
  d.firstRow = 1;
  d.batch = 2;
  d.seq = 3;
  Status s = ex->run("prefill", d);
  ASSERT_TRUE(s.ok()) << s.message();
  auto *logits = static_cast<float *>(ex->bufferData("logits"));
  for (int r = 0; r < 2; ++r)
    for (int t = 0; t < 3; ++t) {
      std::vector<int64_t> history(ids + r * 3, ids + r * 3 + t + 1);
      int64_t next = testNext(history);
      EXPECT_EQ(logits[(r * 3 + t) * 128 + next], testBias(next) + 10.0f);
      EXPECT_EQ(logits[(r * 3 + t) * 128 + (next + 1) % 128],
                testBias((next + 1) % 128));
    }
  auto *ssm = static_cast<float *>(ex->bufferData("layers.0.ssm_state"));
  auto *conv = static_cast<float *>(ex->bufferData("layers.0.conv_state"));
  const int64_t ssmRow = 128 * 8, convRow = 128 * 3;
  EXPECT_EQ(ssm[0], 0.0f) << "row 0 did not take part";
  EXPECT_EQ(conv[0], 0.0f);
  for (int r = 1; r <= 2; ++r) {
    EXPECT_EQ(ssm[r * ssmRow + 0], 1.0f);   // one call
    EXPECT_EQ(ssm[r * ssmRow + 1], 2.0f);   // call batch
    EXPECT_EQ(ssm[r * ssmRow + 2], 3.0f);   // call seq
    EXPECT_EQ(ssm[r * ssmRow + 3], 16.0f);  // capacity
    EXPECT_EQ(ssm[r * ssmRow + 4], 0.0f);   // prefill
    EXPECT_EQ(conv[r * convRow + 0], 3.0f); // tokens fed
  }

  // Out-of-range calls are refused without running.
  d.firstRow = 2;
  s = ex->run("prefill", d);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("outside the bound batch of 3"), std::string::npos)
      << s.message();
  d.firstRow = 0;
  d.seq = 5;
  s = ex->run("prefill", d);
  EXPECT_NE(s.message().find("seq 5 is outside 1..4"), std::string::npos)
      << s.message();
  EXPECT_FALSE(ex->run("nope", CallDims()).ok());
  // A cache length whose tokens would reach past the KV capacity (16), or
  // a negative one: the append would write outside the cache.
  d.seq = 3;
  for (int64_t bad : {int64_t(14), int64_t(-1)}) {
    len[1] = bad;
    s = ex->run("prefill", d);
    EXPECT_EQ(s.message(), "entry point 'prefill': cache length " +
                               std::to_string(bad) +
                               " of row 1 plus 3 tokens is outside the KV "
                               "capacity of 16");
  }
  EXPECT_EQ(ssm[1 * ssmRow], 1.0f) << "a refused call ran";
  len[1] = 13; // the last 3 positions: allowed
  EXPECT_TRUE(ex->run("prefill", d).ok());
  EXPECT_EQ(ssm[1 * ssmRow], 2.0f);
}

TEST_F(ExecutorTest, GreedyBatchOneMatchesTheRule) {
  auto a = open();
  ASSERT_TRUE(a);
  auto ex = session(*a, opts(1, 64));
  ASSERT_TRUE(ex);
  std::vector<int64_t> prompt = {1, 17, 42};
  auto r = generate(*ex, {prompt}, greedy(6));
  ASSERT_TRUE(r.ok()) << r.status().message();
  expectToyRun(prompt, 6, r->sequences[0], true);
  EXPECT_EQ(r->prefillCalls, 1);
  EXPECT_EQ(r->decodeCalls, 6);
  EXPECT_EQ(r->prefillTokens, 3);
  EXPECT_EQ(r->decodeTokens, 6);
  // The first decode call's share (jamba-run's steady decode rate leaves
  // it out): one token, part of the decode time.
  EXPECT_EQ(r->firstDecodeTokens, 1);
  EXPECT_GT(r->firstDecodeSeconds, 0.0);
  EXPECT_LE(r->firstDecodeSeconds, r->decodeSeconds);
  // State persisted across the calls: 3 + 6 tokens in 7 calls.
  auto *conv = static_cast<float *>(ex->bufferData("layers.0.conv_state"));
  auto *ssm = static_cast<float *>(ex->bufferData("layers.0.ssm_state"));
  EXPECT_EQ(conv[0], 9.0f);
  EXPECT_EQ(ssm[0], 7.0f);
  EXPECT_EQ(ssm[4], 1.0f); // last call was decode

  // A second run starts fresh (states zeroed, cache length 0).
  auto again = generate(*ex, {prompt}, greedy(6));
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(again->sequences[0].ids, r->sequences[0].ids);
  EXPECT_EQ(conv[0], 9.0f);

  // n = 0: the prompt's logits only.
  auto none = generate(*ex, {prompt}, greedy(0));
  ASSERT_TRUE(none.ok()) << none.status().message();
  expectToyRun(prompt, 0, none->sequences[0], true);
}

TEST_F(ExecutorTest, ChunkedPrefillEqualsOneShot) {
  auto a = open();
  ASSERT_TRUE(a);
  std::vector<int64_t> prompt = {5, 9, 100, 3, 77, 12, 1};
  auto ex = session(*a, opts(1, 32, 2));
  ASSERT_TRUE(ex);
  auto r = generate(*ex, {prompt}, greedy(4));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->prefillCalls, 4); // 2 + 2 + 2 + 1
  expectToyRun(prompt, 4, r->sequences[0], true);
  auto whole = session(*a, opts(1, 32, 8));
  auto w = generate(*whole, {prompt}, greedy(4));
  ASSERT_TRUE(w.ok()) << w.status().message();
  EXPECT_EQ(w->prefillCalls, 1);
  EXPECT_EQ(w->sequences[0].logits, r->sequences[0].logits);
}

// With profileKernels on the CPU every call of each step kernel is timed:
// as many launches as the generation made calls, most time first; nothing
// without it.
TEST_F(ExecutorTest, ProfilesTheStepsOnTheCpu) {
  auto a = open();
  ASSERT_TRUE(a);
  SessionOptions o = opts(1, 32, 2);
  o.profileKernels = true;
  auto ex = session(*a, o);
  ASSERT_TRUE(ex);
  auto r = generate(*ex, {{5, 9, 100, 3, 77}}, greedy(4));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->prefillCalls, 3); // 2 + 2 + 1
  std::vector<cuda::KernelProfile::Entry> steps = ex->stepProfile();
  ASSERT_EQ(steps.size(), 2u);
  std::map<std::string, int64_t> launches;
  for (const cuda::KernelProfile::Entry &e : steps) {
    launches[e.name] = e.launches;
    EXPECT_GE(e.milliseconds, 0.0) << e.name;
  }
  EXPECT_EQ(launches,
            (std::map<std::string, int64_t>{{"prefill_model", r->prefillCalls},
                                            {"decode_model", r->decodeCalls}}));
  EXPECT_GE(steps[0].milliseconds, steps[1].milliseconds);
  EXPECT_TRUE(ex->cudaKernelProfile().empty());
  // A second generation adds to the totals.
  ASSERT_TRUE(generate(*ex, {{5, 9}}, greedy(1)).ok());
  int64_t total = 0;
  for (const cuda::KernelProfile::Entry &e : ex->stepProfile())
    total += e.launches;
  EXPECT_EQ(total, r->prefillCalls + r->decodeCalls + 2);

  auto plain = session(*a, opts(1, 32, 2));
  ASSERT_TRUE(plain);
  ASSERT_TRUE(generate(*plain, {{5, 9}}, greedy(2)).ok());
  EXPECT_TRUE(plain->stepProfile().empty());
}

// Hand-computed: layer 0 is Mamba + MLP, layer 1 attention + MoE (period 2,
// offset 1 for both); the kinds sum their steps (decode layers 0 and 2:
// 3 + 1 ms in 4 calls, 1000 us each), sorted by time; other names stay.
TEST(StepProfileTest, SumsTheStepsByKindOfLayer) {
  ckpt::StatusOr<ckpt::JambaConfig> config = ckpt::parseConfig(
      R"({"model_type": "jamba", "vocab_size": 10, "hidden_size": 8,
          "intermediate_size": 4, "num_hidden_layers": 3,
          "num_attention_heads": 2, "num_key_value_heads": 1,
          "num_experts": 2, "num_experts_per_tok": 1,
          "attn_layer_period": 2, "attn_layer_offset": 1,
          "expert_layer_period": 2, "expert_layer_offset": 1,
          "mamba_d_state": 2, "mamba_d_conv": 3, "mamba_expand": 2,
          "mamba_dt_rank": 2})",
      "config.json");
  ASSERT_TRUE(config.ok()) << config.status().message();
  std::vector<cuda::KernelProfile::Entry> steps = {
      {"decode__layer0", 2, 3.0},  {"decode__layer1", 2, 2.0},
      {"decode__layer2", 2, 1.0},  {"prefill__embed", 1, 1.5},
      {"decode__layer9", 1, 0.25}, {"other", 1, 0.25}};
  EXPECT_EQ(formatStepProfile(steps, *config),
            "step profile by kind: 8.000 ms of wall time in 9 launches\n"
            "     wall ms      %  launches    mean us  name\n"
            "       4.000   50.0         4    1000.00  decode Mamba + MLP "
            "layer\n"
            "       2.000   25.0         2    1000.00  decode attention + MoE "
            "layer\n"
            "       1.500   18.8         1    1500.00  prefill embed\n"
            "       0.250    3.1         1     250.00  decode layer9\n"
            "       0.250    3.1         1     250.00  other\n"
            "step profile by step: 8.000 ms of wall time in 9 launches\n"
            "     wall ms      %  launches    mean us  name\n"
            "       3.000   37.5         2    1500.00  decode__layer0\n"
            "       2.000   25.0         2    1000.00  decode__layer1\n"
            "       1.000   12.5         2     500.00  decode__layer2\n"
            "       1.500   18.8         1    1500.00  prefill__embed\n"
            "       0.250    3.1         1     250.00  decode__layer9\n"
            "       0.250    3.1         1     250.00  other\n");
  // At most `limit` rows per table.
  std::string limited = formatStepProfile(steps, *config, 1);
  EXPECT_NE(limited.find("decode Mamba + MLP layer\n  ... 4 more\n"),
            std::string::npos)
      << limited;
}

TEST_F(ExecutorTest, SequencesOfDifferentLengthsAtOnce) {
  auto a = open();
  ASSERT_TRUE(a);
  std::vector<std::vector<int64_t>> prompts = {
      {1, 17, 42},
      {4, 4, 4, 4, 4},
      {99},
      {7, 8, 9, 10, 11, 12, 13, 14, 15, 16}};
  auto ex = session(*a, opts(4, 32, 4));
  ASSERT_TRUE(ex);
  auto r = generate(*ex, prompts, greedy(5));
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->sequences.size(), 4u);
  for (size_t b = 0; b < prompts.size(); ++b) {
    SCOPED_TRACE("sequence " + std::to_string(b));
    expectToyRun(prompts[b], 5, r->sequences[b], true);
  }
  // Common prefix 1 (one joint call), then per-row rests in chunks of 4:
  // row 0: 2 ids (1 call), row 1: 4 (1), row 2: none, row 3: 9 (3 calls).
  EXPECT_EQ(r->prefillCalls, 1 + 1 + 1 + 3);
  EXPECT_EQ(r->decodeCalls, 5);
  EXPECT_EQ(r->prefillTokens, 19);

  // Equal lengths: one joint prefill, the same ids as batch 1.
  auto eq = generate(*ex, {{3, 1, 4}, {1, 5, 9}, {2, 6, 5}}, greedy(3));
  ASSERT_TRUE(eq.ok()) << eq.status().message();
  EXPECT_EQ(eq->prefillCalls, 1);
  expectToyRun({2, 6, 5}, 3, eq->sequences[2], true);
}

TEST_F(ExecutorTest, PrefillKeepingTheLastLogitsOnly) {
  TestArtifactOptions o;
  o.prefillLastLogitsOnly = true;
  auto a = open(o);
  ASSERT_TRUE(a);
  auto ex = session(*a, opts(2, 32, 2));
  ASSERT_TRUE(ex);
  EXPECT_TRUE(ex->prefillEntry().lastLogitsOnly);
  std::vector<std::vector<int64_t>> prompts = {{1, 17, 42, 5, 6}, {8, 9}};
  auto r = generate(*ex, prompts, greedy(4, /*logits=*/false));
  ASSERT_TRUE(r.ok()) << r.status().message();
  expectToyRun(prompts[0], 4, r->sequences[0], false);
  expectToyRun(prompts[1], 4, r->sequences[1], false);
  auto logged = generate(*ex, prompts, greedy(4, /*logits=*/true));
  ASSERT_FALSE(logged.ok());
  EXPECT_EQ(logged.status().message(),
            "the artifact's prefill keeps only the last position's logits, so "
            "the logits of every prompt position cannot be recorded (compile "
            "it with jamba-compile --prefill-logits all)");
}

/// The test model's second greedy id after `prompt`: as the EOS id, the
/// prompt's sequence stops after two ids.
int64_t secondGreedyId(std::vector<int64_t> prompt) {
  prompt.push_back(testNext(prompt));
  return testNext(prompt);
}

TEST_F(ExecutorTest, StopsOnEos) {
  std::vector<int64_t> prompt = {1, 17, 42};
  int64_t second = secondGreedyId(prompt);
  TestArtifactOptions o;
  o.eosIds = {second};
  auto a = open(o);
  ASSERT_TRUE(a);
  auto ex = session(*a, opts(2, 32));
  ASSERT_TRUE(ex);
  GenerateOptions g = greedy(6);
  g.stopOnEos = true;
  std::vector<std::pair<int64_t, int64_t>> heard;
  g.onId = [&](int64_t sequence, int64_t id) {
    heard.emplace_back(sequence, id);
  };
  auto r = generate(*ex, {prompt, {3, 3}}, g);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(r->sequences[0].stoppedOnEos);
  ASSERT_EQ(r->sequences[0].ids.size(), 2u);
  EXPECT_EQ(r->sequences[0].ids[1], second);
  EXPECT_EQ(r->sequences[0].rows, 3 + 2); // the EOS id was fed too
  // The other sequence runs on, unaffected (unless it meets EOS itself).
  const SequenceOutput &other = r->sequences[1];
  if (!other.stoppedOnEos) {
    EXPECT_EQ(other.ids.size(), 6u);
    expectToyRun({3, 3}, 6, other, true);
  }
  // GenerateOptions::onId heard every id as it was chosen: round by round,
  // each round's in sequence order, the stopped sequence's no more.
  std::vector<std::pair<int64_t, int64_t>> expected;
  for (size_t j = 0; j < 6; ++j)
    for (int64_t b : {0, 1})
      if (j < r->sequences[size_t(b)].ids.size())
        expected.emplace_back(b, r->sequences[size_t(b)].ids[j]);
  EXPECT_EQ(heard, expected);
  EXPECT_EQ(heard.size(), 2 + other.ids.size());
  g.onId = nullptr;
  // Explicit EOS ids override the config's.
  g.eosIds = {999};
  auto r2 = generate(*ex, {prompt}, g);
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->sequences[0].ids.size(), 6u);
}

TEST_F(ExecutorTest, RowsAroundAStoppedRowRunOn) {
  // The middle of three sequences stops on EOS: the decode steps after it
  // still run rows 0..2 (one call) and read every row's logits, staged,
  // keeping only rows 0 and 2's (the rows that all take their logits read
  // them into place instead).
  std::vector<int64_t> prompt = {1, 17, 42};
  TestArtifactOptions o;
  o.eosIds = {secondGreedyId(prompt)};
  auto a = open(o);
  ASSERT_TRUE(a);
  auto ex = session(*a, opts(3, 32));
  ASSERT_TRUE(ex);
  GenerateOptions g = greedy(6);
  g.stopOnEos = true;
  std::vector<std::vector<int64_t>> prompts = {{3, 3}, prompt, {5, 9, 2}};
  auto r = generate(*ex, prompts, g);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(r->sequences[1].stoppedOnEos);
  ASSERT_EQ(r->sequences[1].ids.size(), 2u);
  EXPECT_EQ(r->sequences[1].rows, 3 + 2);
  int checked = 0;
  for (size_t b : {size_t(0), size_t(2)}) {
    const SequenceOutput &out = r->sequences[b];
    if (out.stoppedOnEos)
      continue;
    EXPECT_EQ(out.ids.size(), 6u);
    expectToyRun(prompts[b], 6, out, true);
    ++checked;
  }
  EXPECT_GT(checked, 0) << "both other prompts met the EOS id; pick others";
}

/// Sets JAMBA_TEST_GREEDY_IDS (TestKernels.cpp) while it lives.
class GreedyIdsRule {
public:
  explicit GreedyIdsRule(const char *rule) {
    ::setenv("JAMBA_TEST_GREEDY_IDS", rule, 1);
  }
  ~GreedyIdsRule() { ::unsetenv("JAMBA_TEST_GREEDY_IDS"); }
};

TEST_F(ExecutorTest, GreedyGenerationReadsTheArtifactsGreedyIds) {
  // Entry points returning their greedy ids (jamba-compile --greedy-ids):
  // greedy generation that records nothing reads the ids, 4 bytes a row,
  // after every call; the prompts of different lengths take a joint
  // prefill and per-row calls, a sequence stops on EOS while the others
  // run on, and the ids are the toy rule's, as from the logits.
  std::vector<int64_t> stopping = {1, 17, 42};
  for (bool lastOnly : {false, true}) {
    SCOPED_TRACE(lastOnly ? "prefill keeps the last logits" : "all logits");
    TestArtifactOptions o;
    o.greedyIds = true;
    o.prefillLastLogitsOnly = lastOnly;
    o.eosIds = {secondGreedyId(stopping)};
    auto a = open(o);
    ASSERT_TRUE(a);
    auto ex = session(*a, opts(3, 32, 4));
    ASSERT_TRUE(ex);
    ASSERT_TRUE(ex->prefillEntry().greedyIds);
    ASSERT_TRUE(ex->decodeEntry().greedyIds);
    EXPECT_EQ(ex->manifest().buffers[*ex->decodeEntry().greedyIds].id,
              "decode.greedy_ids");
    // Row 0 stops after two ids, so that the later decode calls start at
    // row 1; rows 1 and 2 take per-row prefill calls at their offsets.
    std::vector<std::vector<int64_t>> prompts = {
        stopping, {3, 3, 8, 1, 9, 4}, {5, 9}};
    GenerateOptions g = greedy(6, /*logits=*/false);
    g.stopOnEos = true;
    auto r = generate(*ex, prompts, g);
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r->greedyIdCalls, r->prefillCalls + r->decodeCalls);
    EXPECT_TRUE(r->sequences[0].stoppedOnEos);
    EXPECT_EQ(r->sequences[0].ids.size(), 2u);
    int checked = 0;
    for (size_t b : {size_t(1), size_t(2)})
      if (!r->sequences[b].stoppedOnEos) {
        expectToyRun(prompts[b], 6, r->sequences[b], false);
        ++checked;
      }
    EXPECT_GT(checked, 0) << "both other prompts met the EOS id; pick others";

    // The ids, not the logits, chose: ids bent to next + 1 are what comes
    // out (each fed back, so the history follows them).
    {
      GreedyIdsRule bent("plus1");
      auto plus = generate(*ex, {{1, 2, 3}}, greedy(4, /*logits=*/false));
      ASSERT_TRUE(plus.ok()) << plus.status().message();
      std::vector<int64_t> history = {1, 2, 3}, want;
      for (int j = 0; j < 4; ++j) {
        want.push_back((testNext(history) + 1) % 128);
        history.push_back(want.back());
      }
      EXPECT_EQ(plus->sequences[0].ids, want);
      // Sampling at a temperature, or recording the logits, reads the
      // logits (the bent ids are ignored): the rule's ids.
      GenerateOptions warm = greedy(4, /*logits=*/false);
      warm.sampling.temperature = 1e-3;
      auto sampled = generate(*ex, {{1, 2, 3}}, warm);
      ASSERT_TRUE(sampled.ok()) << sampled.status().message();
      EXPECT_EQ(sampled->greedyIdCalls, 0);
      expectToyRun({1, 2, 3}, 4, sampled->sequences[0], false);
      if (!lastOnly) {
        auto recorded = generate(*ex, {{1, 2, 3}}, greedy(4));
        ASSERT_TRUE(recorded.ok()) << recorded.status().message();
        EXPECT_EQ(recorded->greedyIdCalls, 0);
        expectToyRun({1, 2, 3}, 4, recorded->sequences[0], true);
      }
    }
    // An id of -1 is an error naming the sequence and the step, with what
    // the host finds in that row's logits: NaN (and where), or a greedy id
    // after all (the artifact is broken). So is an id past the vocabulary.
    {
      GreedyIdsRule nan("nan");
      auto bad = generate(*ex, {{1, 2}, {4}}, greedy(3, /*logits=*/false));
      ASSERT_FALSE(bad.ok());
      EXPECT_EQ(bad.status().message(),
                "sequence 0, generated id 0: the logits hold NaN (id 0)");
    }
    {
      GreedyIdsRule minus("minus1");
      auto bad = generate(*ex, {{1, 2}, {4}}, greedy(3, /*logits=*/false));
      ASSERT_FALSE(bad.ok());
      EXPECT_EQ(bad.status().message(),
                "sequence 0, generated id 0: the greedy id the artifact "
                "computed is -1, but its logits have one, " +
                    std::to_string(testNext({1, 2})));
    }
    {
      GreedyIdsRule outside("vocab");
      auto bad = generate(*ex, {{1, 2}}, greedy(3, /*logits=*/false));
      ASSERT_FALSE(bad.ok());
      EXPECT_EQ(bad.status().message(),
                "sequence 0, generated id 0: the greedy id the artifact "
                "computed, 128, is outside the vocabulary [0, 128)");
    }
  }
}

TEST_F(ExecutorTest, RefusesMisshapenGreedyIds) {
  // The greedy ids must be an io I32 [batch, positions of the logits], and
  // the only io output besides the logits.
  auto refusal = [&](std::function<void(ArtifactManifest &)> edit) {
    TestArtifactOptions o;
    o.greedyIds = true;
    o.editManifest = std::move(edit);
    auto a = open(o);
    if (!a)
      return std::string("no artifact");
    auto ex = Executor::create(*a, opts(1, 16));
    return ex.ok() ? std::string("accepted") : ex.status().message();
  };
  auto editBuffer = [](const char *id,
                       std::function<void(BufferDesc &)> change) {
    return [=](ArtifactManifest &m) {
      for (BufferDesc &b : m.buffers)
        if (b.id == id)
          change(b);
    };
  };
  EXPECT_EQ(refusal(editBuffer("decode.greedy_ids",
                               [](BufferDesc &b) { b.dtype = DType::I64; })),
            "entry point 'decode': outputs[5] 'decode.greedy_ids' must be the "
            "greedy ids, an io I32 buffer [batch, 1] (a row per row of "
            "logits); it is io I64 [batch, 1]");
  // Prefill's ids follow its logits: [batch, seq] for every position's.
  EXPECT_EQ(refusal(editBuffer(
                "greedy_ids",
                [](BufferDesc &b) { b.shape[1] = DimExpr::constant(1); })),
            "entry point 'prefill': outputs[5] 'greedy_ids' must be the "
            "greedy ids, an io I32 buffer [batch, seq] (a row per row of "
            "logits); it is io I32 [batch, 1]");
  // A second io output: the runtime could not tell which one holds ids.
  EXPECT_EQ(refusal([](ArtifactManifest &m) {
              for (EntryPoint &e : m.entryPoints)
                if (e.name == "decode")
                  e.outputs.push_back("decode.ids");
            }),
            "entry point 'decode': outputs[6] 'decode.ids' is an io output "
            "besides the logits; only the greedy ids 'decode.greedy_ids' may "
            "be one");
  // Another name: the runtime does not guess that it holds ids.
  EXPECT_EQ(refusal([](ArtifactManifest &m) {
              for (BufferDesc &b : m.buffers)
                if (b.id == "decode.greedy_ids")
                  b.id = "decode.choice";
              for (EntryPoint &e : m.entryPoints)
                for (std::string &out : e.outputs)
                  if (out == "decode.greedy_ids")
                    out = "decode.choice";
              for (EntryPoint &e : m.entryPoints)
                for (Step &s : e.steps)
                  for (StepArg &a : s.args)
                    if (a.ref == "decode.greedy_ids")
                      a.ref = "decode.choice";
            }),
            "entry point 'decode': outputs[5] 'decode.choice' is an io output "
            "besides the logits; only the greedy ids 'decode.greedy_ids' may "
            "be one");
}

TEST_F(ExecutorTest, RefusesBadBindingsAndRuns) {
  auto a = open();
  ASSERT_TRUE(a);
  auto big = Executor::create(*a, opts(5, 16));
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.status().message().find(
                "batch (sequences at once) = 5 is outside what the artifact "
                "supports (1..4)"),
            std::string::npos)
      << big.status().message();
  auto longer = Executor::create(*a, opts(1, 65));
  ASSERT_FALSE(longer.ok());
  EXPECT_NE(longer.status().message().find("capacity (context length) = 65"),
            std::string::npos)
      << longer.status().message();
  SessionOptions limited = opts(1, 64);
  limited.memoryLimitBytes = 1000;
  auto small = Executor::create(*a, limited);
  ASSERT_FALSE(small.ok());
  EXPECT_NE(small.status().message().find("the memory limit is 1000 bytes"),
            std::string::npos)
      << small.status().message();

  auto ex = session(*a, opts(2, 8));
  ASSERT_TRUE(ex);
  // Capacity: 5 + 4 > 8, refused before running (the state stays zero).
  auto r = generate(*ex, {{1, 2, 3, 4, 5}}, greedy(4));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "sequence 0 needs 9 cache positions (5 prompt + 4 generated ids) "
            "but the context length (KV capacity) is 8");
  auto *ssm = static_cast<float *>(ex->bufferData("layers.0.ssm_state"));
  EXPECT_EQ(ssm[0], 0.0f);
  EXPECT_TRUE(generate(*ex, {{1, 2, 3, 4, 5}}, greedy(3)).ok());

  auto bad = [&](std::vector<std::vector<int64_t>> prompts, GenerateOptions g) {
    auto res = generate(*ex, prompts, g);
    EXPECT_FALSE(res.ok());
    return res.ok() ? std::string() : res.status().message();
  };
  EXPECT_EQ(bad({{1}, {2}, {3}}, greedy(1)),
            "3 prompts but the session runs at most 2 sequences at once "
            "(its batch)");
  EXPECT_EQ(bad({}, greedy(1)), "no prompt given");
  EXPECT_EQ(bad({{1}, {}}, greedy(1)), "prompt 1 is empty");
  EXPECT_EQ(
      bad({{1, 128}}, greedy(1)),
      "prompt 0: id 128 at position 1 is outside the vocabulary [0, 128)");
  EXPECT_EQ(bad({{-1}}, greedy(1)),
            "prompt 0: id -1 at position 0 is outside the vocabulary [0, 128)");
  EXPECT_EQ(bad({{1}}, greedy(-1)),
            "the number of ids to generate must be >= 0, got -1");
  GenerateOptions hot = greedy(1);
  hot.sampling.temperature = -1;
  EXPECT_EQ(bad({{1}}, hot),
            "temperature must be a finite number >= 0, got -1");
}

TEST_F(ExecutorTest, KernelFileThatIsNotASharedObject) {
  TestArtifactOptions o;
  o.kernelBytes = "this is not an ELF file\n";
  auto a = open(o);
  ASSERT_TRUE(a);
  auto ex = Executor::create(*a, opts(1, 16));
  ASSERT_FALSE(ex.ok());
  const std::string &m = ex.status().message();
  EXPECT_NE(m.find("kernel file 'kernels/cpu.so': cannot load it: "),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("cpu.so"), m.find("cannot load it")) << m;
  // dlerror's own words follow (glibc: "... invalid ELF header" or
  // "file too short").
  EXPECT_TRUE(m.find("ELF") != std::string::npos ||
              m.find("too short") != std::string::npos)
      << m;
}

TEST_F(ExecutorTest, MissingSymbol) {
  TestArtifactOptions o;
  o.prefillSymbol = "jamba_no_such_kernel";
  auto a = open(o);
  ASSERT_TRUE(a);
  auto ex = Executor::create(*a, opts(1, 16));
  ASSERT_FALSE(ex.ok());
  const std::string &m = ex.status().message();
  EXPECT_NE(m.find("kernel 'prefill_model': symbol 'jamba_no_such_kernel' not "
                   "found in 'kernels/cpu.so': "),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("undefined symbol: jamba_no_such_kernel"), std::string::npos)
      << m;
}

TEST_F(ExecutorTest, RefusesAnArtifactWithoutTheModelAbi) {
  std::string dir = root + "/example";
  ASSERT_TRUE(writeExampleArtifact(dir).ok());
  auto a = Artifact::open(dir);
  ASSERT_TRUE(a.ok()) << a.status().message();
  auto ex = Executor::create(**a, opts(1, 16));
  ASSERT_FALSE(ex.ok());
  EXPECT_EQ(ex.status().message(),
            "entry point 'prefill': inputs[0] 'tokens' must be the token ids, "
            "an io I32 buffer [batch, seq]; it is io I64 [batch, seq]");
}

TEST_F(ExecutorTest, PlanBeforeAllocating) {
  auto a = open();
  ASSERT_TRUE(a);
  auto plan = planSession(*a, opts(2, 64, 8));
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  // k and v caches: 2 * (2 rows * 2 heads * 64 * 16 * 4 bytes).
  EXPECT_GE(plan->stateBytes, uint64_t(2 * 2 * 2 * 64 * 16 * 4));
  EXPECT_EQ(plan->weightBytes, 128u * 4);
  EXPECT_EQ(totalPlanBytes(*plan), plan->weightBytes + plan->stateBytes +
                                       plan->arenaBytes + plan->ioBytes);
  auto ex = session(*a, opts(2, 64, 8));
  ASSERT_TRUE(ex);
  EXPECT_EQ(ex->plan().stateBytes, plan->stateBytes);
  EXPECT_EQ(
      reinterpret_cast<uintptr_t>(ex->bufferData("layers.1.k_cache")) % 64, 0u);
}

//===----------------------------------------------------------------------===//
// The C API
//===----------------------------------------------------------------------===//

TEST_F(ExecutorTest, CApi) {
  std::string dir = root + "/capi";
  ASSERT_TRUE(writeTestArtifact(dir).ok());
  jamba_artifact *art = nullptr;
  ASSERT_EQ(jamba_artifact_open(dir.c_str(), &art), JAMBA_OK)
      << jamba_last_error();
  EXPECT_EQ(jamba_artifact_vocab_size(art), 128);
  jamba_session *s = nullptr;
  ASSERT_EQ(jamba_session_create(art, 2, 32, &s), JAMBA_OK)
      << jamba_last_error();
  EXPECT_GT(jamba_session_plan_bytes(s), 0u);
  jamba_artifact_free(art); // The session keeps what it needs.

  jamba_generate_options o;
  jamba_generate_options_init(&o);
  o.max_new_tokens = 4;
  o.stop_on_eos = 0;
  int32_t p0[] = {1, 17, 42}, p1[] = {9};
  const int32_t *prompts[] = {p0, p1};
  int64_t lengths[] = {3, 1};
  int32_t out[8] = {};
  int64_t outLengths[2] = {};
  ASSERT_EQ(jamba_generate(s, &o, 2, prompts, lengths, out, outLengths),
            JAMBA_OK)
      << jamba_last_error();
  EXPECT_EQ(outLengths[0], 4);
  EXPECT_EQ(outLengths[1], 4);
  std::vector<int64_t> h = {1, 17, 42};
  for (int j = 0; j < 4; ++j) {
    int64_t next = testNext(h);
    EXPECT_EQ(out[j], next);
    h.push_back(next);
  }
  // on_id hears each id as it is chosen, with the caller's data.
  std::vector<std::pair<int64_t, int32_t>> heard;
  o.user_data = &heard;
  o.on_id = [](void *data, int64_t sequence, int32_t id) {
    static_cast<std::vector<std::pair<int64_t, int32_t>> *>(data)->emplace_back(
        sequence, id);
  };
  ASSERT_EQ(jamba_generate(s, &o, 2, prompts, lengths, out, outLengths),
            JAMBA_OK)
      << jamba_last_error();
  std::vector<std::pair<int64_t, int32_t>> expected;
  for (int j = 0; j < 4; ++j)
    for (int64_t b : {0, 1})
      expected.emplace_back(b, out[b * 4 + j]);
  EXPECT_EQ(heard, expected);
  o.on_id = nullptr;

  // Errors: a code and a one-line message.
  EXPECT_EQ(jamba_generate(s, &o, 3, prompts, lengths, out, outLengths),
            JAMBA_INVALID_ARGUMENT);
  EXPECT_NE(std::string(jamba_last_error()).find("3 sequences"),
            std::string::npos);
  o.top_p = 0;
  EXPECT_EQ(jamba_generate(s, &o, 1, prompts, lengths, out, outLengths),
            JAMBA_INVALID_ARGUMENT);
  EXPECT_NE(std::string(jamba_last_error()).find("top-p"), std::string::npos);
  o.top_p = 1;
  int32_t badId[] = {1000};
  const int32_t *badPrompts[] = {badId};
  int64_t one[] = {1};
  EXPECT_EQ(jamba_generate(s, &o, 1, badPrompts, one, out, outLengths),
            JAMBA_ERROR);
  EXPECT_NE(std::string(jamba_last_error()).find("outside the vocabulary"),
            std::string::npos);
  EXPECT_EQ(jamba_generate(nullptr, &o, 1, prompts, lengths, out, outLengths),
            JAMBA_INVALID_ARGUMENT);
  jamba_session_free(s);

  jamba_artifact *missing = nullptr;
  EXPECT_EQ(jamba_artifact_open((root + "/nope").c_str(), &missing),
            JAMBA_ERROR);
  EXPECT_EQ(missing, nullptr);
  EXPECT_NE(std::string(jamba_last_error()).find("/nope"), std::string::npos);
  EXPECT_EQ(jamba_artifact_open(nullptr, &missing), JAMBA_INVALID_ARGUMENT);
  ASSERT_EQ(jamba_artifact_open(dir.c_str(), &art), JAMBA_OK);
  EXPECT_EQ(jamba_session_create(art, 9, 16, &s), JAMBA_ERROR);
  EXPECT_NE(std::string(jamba_last_error()).find("1..4"), std::string::npos)
      << jamba_last_error();
  jamba_artifact_free(art);
  jamba_session_free(nullptr);
  jamba_artifact_free(nullptr);
}

TEST_F(ExecutorTest, CApiTokenizer) {
  // The artifact's tokenizer through the C API: jamba-make-checkpoint's for
  // the test model's vocabulary of 128 (pad 0, bos 1, eos 2; <|unk|> 3,
  // "▁" 4, '!'..'~' 5..98, then the merges from 99: "▁t" 99, "he" 100).
  // "hello" is "▁hello", whose one merge is h e: 1,4,100,80,80,83, worked
  // out by hand.
  ckpt::JambaConfig config;
  config.vocabSize = 128;
  TestArtifactOptions o;
  o.tokenizerJson = ckpt::randomCheckpointTokenizerJson(config);
  std::string dir = root + "/tok";
  ASSERT_TRUE(writeTestArtifact(dir, o).ok());
  jamba_artifact *art = nullptr;
  ASSERT_EQ(jamba_artifact_open(dir.c_str(), &art), JAMBA_OK)
      << jamba_last_error();
  EXPECT_EQ(jamba_artifact_has_tokenizer(art), 1);
  EXPECT_EQ(jamba_artifact_has_tokenizer(nullptr), -1);

  int64_t length = -1;
  ASSERT_EQ(jamba_tokenize(art, "hello", nullptr, 0, &length), JAMBA_OK);
  EXPECT_EQ(length, 6);
  int32_t ids[6] = {};
  ASSERT_EQ(jamba_tokenize(art, "hello", ids, 6, &length), JAMBA_OK);
  EXPECT_EQ(std::vector<int32_t>(ids, ids + 6),
            (std::vector<int32_t>{1, 4, 100, 80, 80, 83}));
  EXPECT_EQ(jamba_tokenize(art, "hello", ids, 5, &length),
            JAMBA_INVALID_ARGUMENT);
  EXPECT_EQ(std::string(jamba_last_error()),
            "jamba_tokenize: 6 ids do not fit a capacity of 5");
  EXPECT_EQ(jamba_tokenize(art, "a\xff", ids, 6, &length), JAMBA_ERROR);
  EXPECT_EQ(std::string(jamba_last_error()),
            "jamba_tokenize: the text is not valid UTF-8 at byte 1");

  // Back to text: the BOS left out, the "▁" a space, the leading one cut.
  ASSERT_EQ(jamba_detokenize(art, ids, 6, nullptr, 0, &length), JAMBA_OK);
  EXPECT_EQ(length, 5);
  char text[6] = {'x', 'x', 'x', 'x', 'x', 'x'};
  ASSERT_EQ(jamba_detokenize(art, ids, 6, text, 6, &length), JAMBA_OK);
  EXPECT_EQ(std::string(text), "hello");
  EXPECT_EQ(jamba_detokenize(art, ids, 6, text, 5, &length),
            JAMBA_INVALID_ARGUMENT);
  EXPECT_EQ(jamba_detokenize(art, nullptr, 1, text, 6, &length),
            JAMBA_INVALID_ARGUMENT);

  // The same ids through a text stream, which outlives the artifact handle:
  // <s> gives nothing, "▁" nothing yet (the decoder strips a leading
  // space), then "he" gives "he" and so on; the pieces are "hello".
  jamba_text_stream *stream = nullptr;
  ASSERT_EQ(jamba_text_stream_create(art, &stream), JAMBA_OK)
      << jamba_last_error();
  jamba_artifact_free(art);
  std::vector<std::string> pieces;
  for (int32_t id : ids) {
    const char *piece = nullptr;
    int64_t bytes = -1;
    ASSERT_EQ(jamba_text_stream_push(stream, id, &piece, &bytes), JAMBA_OK)
        << jamba_last_error();
    EXPECT_EQ(bytes, int64_t(std::strlen(piece)));
    pieces.push_back(piece);
  }
  EXPECT_EQ(pieces, (std::vector<std::string>{"", "", "he", "l", "l", "o"}));
  const char *rest = nullptr;
  ASSERT_EQ(jamba_text_stream_finish(stream, &rest, nullptr), JAMBA_OK);
  EXPECT_EQ(std::string(rest), "");
  EXPECT_EQ(jamba_text_stream_push(stream, 4, &rest, nullptr),
            JAMBA_INVALID_ARGUMENT);
  EXPECT_EQ(std::string(jamba_last_error()),
            "jamba_text_stream_push: the stream is finished");
  EXPECT_EQ(jamba_text_stream_finish(stream, &rest, nullptr),
            JAMBA_INVALID_ARGUMENT);
  EXPECT_EQ(jamba_text_stream_push(nullptr, 4, &rest, nullptr),
            JAMBA_INVALID_ARGUMENT);
  jamba_text_stream_free(stream);
  jamba_text_stream_free(nullptr);

  // Without a tokenizer both are errors that say so.
  std::string bare = root + "/bare";
  ASSERT_TRUE(writeTestArtifact(bare).ok());
  ASSERT_EQ(jamba_artifact_open(bare.c_str(), &art), JAMBA_OK);
  EXPECT_EQ(jamba_artifact_has_tokenizer(art), 0);
  EXPECT_EQ(jamba_tokenize(art, "hi", ids, 6, &length), JAMBA_ERROR);
  EXPECT_EQ(std::string(jamba_last_error()),
            "jamba_tokenize: the artifact has no tokenizer (its checkpoint "
            "had no tokenizer.json)");
  EXPECT_EQ(jamba_text_stream_create(art, &stream), JAMBA_ERROR);
  EXPECT_EQ(stream, nullptr);
  EXPECT_EQ(std::string(jamba_last_error()),
            "jamba_text_stream_create: the artifact has no tokenizer (its "
            "checkpoint had no tokenizer.json)");
  jamba_artifact_free(art);

  // A tokenizer with ids past the model's vocabulary is refused at open.
  config.vocabSize = 300;
  o.tokenizerJson = ckpt::randomCheckpointTokenizerJson(config);
  std::string wide = root + "/wide";
  ASSERT_TRUE(writeTestArtifact(wide, o).ok());
  EXPECT_EQ(jamba_artifact_open(wide.c_str(), &art), JAMBA_ERROR);
  EXPECT_NE(std::string(jamba_last_error())
                .find("tokenizer.json: token id 299 is outside the model's "
                      "vocabulary of 128"),
            std::string::npos)
      << jamba_last_error();
}

TEST_F(ExecutorTest, CApiRankFreedBeforeItsSession) {
  // The session shares its rank's communicator: each thread frees its
  // jamba_rank (and the artifact handle goes too) right after creating its
  // session, then generates through the collectives. Before sessions shared
  // it, the first virtual call on the freed communicator jumped through a
  // vtable pointer that free() had overwritten.
  jamba_artifact *art = openTwoRankArtifact("capi2free");
  ASSERT_NE(art, nullptr);
  jamba_rank *ranks[2] = {};
  ASSERT_EQ(jamba_ranks_create_threads(2, ranks), JAMBA_OK);
  jamba_session *sessions[2] = {};
  jamba_status created[2] = {JAMBA_ERROR, JAMBA_ERROR};
  auto create = [&](int k) {
    created[k] =
        jamba_session_create_rank(art, 1, 16, ranks[k], -1, &sessions[k]);
    jamba_rank_free(ranks[k]);
  };
  // Creating a session broadcasts the bootstrap, so both ranks create theirs
  // at once.
  std::thread creator(create, 1);
  create(0);
  creator.join();
  jamba_artifact_free(art);
  ASSERT_EQ(created[0], JAMBA_OK);
  ASSERT_EQ(created[1], JAMBA_OK);

  int32_t out[2][4] = {};
  int64_t outLength[2] = {};
  jamba_status status[2] = {JAMBA_ERROR, JAMBA_ERROR};
  auto generate = [&](int k) {
    jamba_generate_options o;
    jamba_generate_options_init(&o);
    o.max_new_tokens = 4;
    o.stop_on_eos = 0;
    int32_t prompt[] = {3, 5};
    const int32_t *prompts[] = {prompt};
    int64_t lengths[] = {2};
    status[k] = jamba_generate(sessions[k], &o, 1, prompts, lengths, out[k],
                               &outLength[k]);
    jamba_session_free(sessions[k]);
  };
  std::thread other(generate, 1);
  generate(0);
  other.join();
  for (int k = 0; k < 2; ++k) {
    ASSERT_EQ(status[k], JAMBA_OK) << "rank " << k;
    EXPECT_EQ(outLength[k], 4);
  }
  expectBothRanksGenerate({3, 5}, out[0], out[1], 4);
}

TEST_F(ExecutorTest, CApiRanksAsThreads) {
  // A 2-rank artifact whose kernels all-reduce their logits, run by two
  // threads of this process through the C API: each creates its rank's
  // session and generates; the ids are those of one rank (the sum of two
  // equal ranks doubles every logit, which keeps the argmax).
  jamba_artifact *art = openTwoRankArtifact("capi2");
  ASSERT_NE(art, nullptr);
  jamba_rank *ranks[2] = {};
  ASSERT_EQ(jamba_ranks_create_threads(2, ranks), JAMBA_OK);
  EXPECT_EQ(jamba_rank_index(ranks[1]), 1);
  EXPECT_EQ(jamba_rank_count(ranks[0]), 2);

  int32_t out[2][5] = {};
  int64_t outLength[2] = {};
  jamba_status status[2] = {JAMBA_ERROR, JAMBA_ERROR};
  std::string error[2];
  auto runRank = [&](int k) {
    jamba_session *s = nullptr;
    status[k] = jamba_session_create_rank(art, 1, 16, ranks[k], -1, &s);
    if (status[k] == JAMBA_OK) {
      jamba_generate_options o;
      jamba_generate_options_init(&o);
      o.max_new_tokens = 5;
      o.stop_on_eos = 0;
      int32_t prompt[] = {1, 17, 42};
      const int32_t *prompts[] = {prompt};
      int64_t lengths[] = {3};
      status[k] =
          jamba_generate(s, &o, 1, prompts, lengths, out[k], &outLength[k]);
    }
    error[k] = jamba_last_error();
    jamba_session_free(s);
  };
  std::thread other(runRank, 1);
  runRank(0);
  other.join();
  for (int k = 0; k < 2; ++k) {
    ASSERT_EQ(status[k], JAMBA_OK) << "rank " << k << ": " << error[k];
    EXPECT_EQ(outLength[k], 5);
  }
  expectBothRanksGenerate({1, 17, 42}, out[0], out[1], 5);

  // Errors.
  jamba_session *s = nullptr;
  EXPECT_EQ(jamba_session_create_rank(art, 1, 16, nullptr, 0, &s),
            JAMBA_INVALID_ARGUMENT);
  EXPECT_EQ(std::string(jamba_last_error()),
            "jamba_session_create_rank: null rank");
  EXPECT_EQ(jamba_session_create_rank(art, 1, 16, ranks[0], -2, &s),
            JAMBA_INVALID_ARGUMENT);
  EXPECT_EQ(jamba_ranks_create_threads(0, ranks), JAMBA_INVALID_ARGUMENT);
  EXPECT_EQ(std::string(jamba_last_error()),
            "jamba_ranks_create_threads: the count must be in [1, 1024], got "
            "0");
  jamba_rank *alone = nullptr;
  ASSERT_EQ(jamba_ranks_create_threads(1, &alone), JAMBA_OK);
  EXPECT_EQ(jamba_session_create_rank(art, 1, 16, alone, -1, &s), JAMBA_ERROR);
  EXPECT_NE(std::string(jamba_last_error())
                .find("the artifact is compiled for 2 ranks, but this run "
                      "has 1 (the threads communicator)"),
            std::string::npos)
      << jamba_last_error();
  EXPECT_EQ(s, nullptr);
  EXPECT_EQ(jamba_rank_index(nullptr), -1);
  jamba_rank_free(alone);
  jamba_rank_free(ranks[0]);
  jamba_rank_free(ranks[1]);
  jamba_rank_free(nullptr);
  jamba_artifact_free(art);
}

} // namespace

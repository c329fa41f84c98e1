//===- FuzzCorpusTest.cpp - The fuzz targets' seeds, regressions, mutants -===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// Runs every fuzz target (fuzz/FuzzTargets.h) on
// - its seeds, each of which the reader must accept with every property
//   holding (a seed refused means the writer and the reader disagree);
// - each file under fuzz/regressions/<name>/: inputs that once crashed a
//   reader or broke a property, kept so that the fix stays;
// - deterministic mutants of the seeds (a fixed generator, so a failure
//   reproduces; JAMBA_FUZZ_MUTANTS sets how many per seed, default 1000):
//   bit flips, bytes set, inserted and deleted, ranges duplicated, cut, and
//   numbers replaced by boundary values. Every mutant must be refused with
//   a message or accepted with the properties holding, and the mutants must
//   reach both outcomes.
//
// The libFuzzer build (fuzz/CMakeLists.txt, scripts/fuzz.sh) searches
// further with sanitizers; what it finds goes into fuzz/regressions.
//
//===----------------------------------------------------------------------===//

#include "FuzzTargets.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

using namespace jamba::fuzz;

namespace {

/// Readable test names: "checkpoint-index" -> "checkpoint_index".
std::string testName(const ::testing::TestParamInfo<const FuzzTarget *> &info) {
  std::string name = info.param->name;
  for (char &c : name)
    if (c == '-')
      c = '_';
  return name;
}

class FuzzCorpusTest : public ::testing::TestWithParam<const FuzzTarget *> {};

std::string describe(const std::string &input) {
  std::string shown = input.substr(0, 200);
  for (char &c : shown)
    if (static_cast<unsigned char>(c) < 0x20 && c != '\n')
      c = '.';
  return shown + (input.size() > 200 ? "..." : "") + " (" +
         std::to_string(input.size()) + " bytes)";
}

TEST_P(FuzzCorpusTest, SeedsAreAccepted) {
  const FuzzTarget &t = *GetParam();
  std::vector<std::string> seeds = t.seeds();
  ASSERT_FALSE(seeds.empty()) << t.name << ": no seeds";
  for (const std::string &seed : seeds) {
    bool accepted = false;
    std::string failed = t.run(seed, accepted);
    EXPECT_EQ(failed, "") << "seed " << describe(seed);
    EXPECT_TRUE(accepted) << t.name << " refused its seed " << describe(seed)
                          << ": " << lastRefusal();
  }
}

/// Every directory under fuzz/regressions names a target, and each of its
/// inputs passes that target (a misspelt directory would never run).
TEST(FuzzRegressions, EveryInputPasses) {
  std::filesystem::path root(JAMBA_FUZZ_REGRESSIONS_DIR);
  ASSERT_TRUE(std::filesystem::is_directory(root)) << root;
  int count = 0;
  for (const auto &dir : std::filesystem::directory_iterator(root)) {
    if (!dir.is_directory())
      continue;
    std::string name = dir.path().filename().string();
    const FuzzTarget *t = findFuzzTarget(name);
    EXPECT_NE(t, nullptr) << dir.path() << " names no fuzz target";
    if (!t)
      continue;
    for (const auto &entry : std::filesystem::directory_iterator(dir)) {
      if (!entry.is_regular_file())
        continue;
      std::ifstream in(entry.path(), std::ios::binary);
      std::string input((std::istreambuf_iterator<char>(in)),
                        std::istreambuf_iterator<char>());
      bool accepted = false;
      EXPECT_EQ(t->run(input, accepted), "") << entry.path();
      ++count;
    }
  }
  EXPECT_GT(count, 0) << root << " holds no inputs";
}

/// One random edit of `s`.
void mutate(std::string &s, std::mt19937_64 &rng) {
  static const char kBytes[] = {'\0', '\xff', '"', '\\', '{', '}',
                                '[',  ']',    ',', ':',  '-', '9',
                                'e',  '\x80', ' ', '\n'};
  static const char *const kNumbers[] = {"0",
                                         "-1",
                                         "1",
                                         "9223372036854775807",
                                         "-9223372036854775808",
                                         "18446744073709551616",
                                         "1e308",
                                         "-0.0",
                                         "4294967296",
                                         "2147483648",
                                         "65536",
                                         "3.5",
                                         "1e-400",
                                         "NaN"};
  auto pick = [&](size_t n) { return n ? size_t(rng() % n) : size_t(0); };
  switch (rng() % 8) {
  case 0: // flip a bit
    if (!s.empty())
      s[pick(s.size())] ^= char(1u << (rng() % 8));
    break;
  case 1: // set a byte
    if (!s.empty())
      s[pick(s.size())] = kBytes[pick(sizeof(kBytes))];
    break;
  case 2: // insert a byte
    s.insert(s.begin() + pick(s.size() + 1), kBytes[pick(sizeof(kBytes))]);
    break;
  case 3: { // delete a range
    if (s.empty())
      break;
    size_t at = pick(s.size());
    s.erase(at, 1 + pick(std::min<size_t>(16, s.size() - at)));
    break;
  }
  case 4: { // duplicate a range
    if (s.empty())
      break;
    size_t at = pick(s.size());
    std::string piece = s.substr(at, 1 + pick(64));
    s.insert(pick(s.size() + 1), piece);
    break;
  }
  case 5: // cut the end
    s.resize(pick(s.size() + 1));
    break;
  default: { // replace a number (a run of digits) by a boundary value
    std::vector<size_t> starts;
    for (size_t i = 0; i < s.size(); ++i)
      if (s[i] >= '0' && s[i] <= '9' &&
          (i == 0 || s[i - 1] < '0' || s[i - 1] > '9'))
        starts.push_back(i);
    if (starts.empty())
      break;
    size_t at = starts[pick(starts.size())], end = at;
    while (end < s.size() && s[end] >= '0' && s[end] <= '9')
      ++end;
    s.replace(at, end - at,
              kNumbers[pick(sizeof(kNumbers) / sizeof(kNumbers[0]))]);
    break;
  }
  }
}

TEST_P(FuzzCorpusTest, MutantsAreRefusedOrHoldTheProperties) {
  const FuzzTarget &t = *GetParam();
  int mutantsPerSeed = 1000;
  if (const char *env = std::getenv("JAMBA_FUZZ_MUTANTS"))
    mutantsPerSeed = std::max(1, std::atoi(env));
  std::mt19937_64 rng(0x6a616d6261ull); // Fixed: a failure reproduces.
  int accepted = 0, refused = 0, failures = 0;
  for (const std::string &seed : t.seeds()) {
    for (int i = 0; i < mutantsPerSeed; ++i) {
      std::string mutant = seed;
      for (int edits = 1 + int(rng() % 4); edits > 0; --edits)
        mutate(mutant, rng);
      bool ok = false;
      std::string failed = t.run(mutant, ok);
      if (!failed.empty() && ++failures <= 5)
        ADD_FAILURE() << t.name << ": " << failed << "\n  on the mutant "
                      << describe(mutant);
      (ok ? accepted : refused) += 1;
    }
  }
  EXPECT_EQ(failures, 0);
  // Mutants that are all refused (or all accepted) would test one path.
  EXPECT_GT(refused, 0) << t.name;
  EXPECT_GT(accepted, 0) << t.name;
  std::printf("%s: %d mutants accepted, %d refused\n", t.name, accepted,
              refused);
}

std::vector<const FuzzTarget *> allTargets() {
  std::vector<const FuzzTarget *> targets;
  for (const FuzzTarget &t : fuzzTargets())
    targets.push_back(&t);
  return targets;
}

INSTANTIATE_TEST_SUITE_P(Readers, FuzzCorpusTest,
                         ::testing::ValuesIn(allTargets()), testName);

} // namespace

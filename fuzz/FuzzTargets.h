//===- FuzzTargets.h - The readers of untrusted input, as fuzz targets -*-===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// One function per reader of untrusted bytes (a JSON document, config.json,
// a safetensors file, a checkpoint's shard index, tokenizer.json, text to
// tokenize, an artifact manifest, a token id list, an .npy file). Each takes
// arbitrary bytes, runs the reader and, where the reader accepts them, the
// properties that must then hold (a value written back reads back equal, an
// accepted manifest can be planned, decoded ids came from the vocabulary).
// It returns "" or the property that failed; a crash is a crash.
//
// The same functions run in two places:
// - jamba-fuzz-<name> (fuzz/CMakeLists.txt, a separate build with clang's
//   libFuzzer, AddressSanitizer and UBSan; scripts/fuzz.sh), which searches;
// - JambaFuzzCorpusTests (unittests/Fuzz), in every build and in CI, which
//   replays each target's seeds, the inputs that once failed
//   (fuzz/regressions/<name>/) and a fixed set of mutations of the seeds.
//
// Nothing here links LLVM or MLIR: the readers are the checkpoint library
// and the runtime's artifact reader.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_FUZZ_FUZZTARGETS_H
#define JAMBA_FUZZ_FUZZTARGETS_H

#include <string>
#include <string_view>
#include <vector>

namespace jamba {
namespace fuzz {

struct FuzzTarget {
  /// The target's name: jamba-fuzz-<name>, fuzz/regressions/<name>/.
  const char *name;
  /// What the target reads, for --help and the test names.
  const char *reads;
  /// Runs the reader on `data`: "" or the property that failed. Sets
  /// `accepted` when the reader took the input (each seed must be).
  std::string (*run)(std::string_view data, bool &accepted);
  /// Valid inputs to start from (made by the project's writers, so they
  /// follow the formats as the code does).
  std::vector<std::string> (*seeds)();
};

/// Every target, in a fixed order.
const std::vector<FuzzTarget> &fuzzTargets();

/// The target called `name`, or nullptr.
const FuzzTarget *findFuzzTarget(std::string_view name);

/// The message of the last input a target refused (for a test's report).
const std::string &lastRefusal();

} // namespace fuzz
} // namespace jamba

#endif // JAMBA_FUZZ_FUZZTARGETS_H

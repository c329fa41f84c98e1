//===- FuzzMain.cpp - libFuzzer entry points for one fuzz target ----------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// jamba-fuzz-<name> is this file compiled with JAMBA_FUZZ_TARGET="<name>"
// and linked with libFuzzer (fuzz/CMakeLists.txt). A failed property aborts,
// which libFuzzer reports like a crash and saves the input.
//
// `--seeds=DIR` (libFuzzer passes flags starting with "--" through) writes
// the target's seeds into DIR as seed-<i> before fuzzing, so that a corpus
// directory starts from valid inputs; scripts/fuzz.sh uses it.
//
//===----------------------------------------------------------------------===//

#include "FuzzTargets.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#ifndef JAMBA_FUZZ_TARGET
#error "compile with -DJAMBA_FUZZ_TARGET=\"<name>\""
#endif

using namespace jamba::fuzz;

static const FuzzTarget &target() {
  static const FuzzTarget *t = findFuzzTarget(JAMBA_FUZZ_TARGET);
  if (!t) {
    std::fprintf(stderr, "jamba-fuzz: no target '%s'\n", JAMBA_FUZZ_TARGET);
    std::abort();
  }
  return *t;
}

extern "C" int LLVMFuzzerInitialize(int *argc, char ***argv) {
  for (int i = 1; i < *argc; ++i) {
    const char *arg = (*argv)[i];
    if (std::strncmp(arg, "--seeds=", 8) != 0)
      continue;
    std::string dir = arg + 8;
    int n = 0;
    for (const std::string &seed : target().seeds()) {
      std::string path = dir + "/seed-" + std::to_string(n++);
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      out.write(seed.data(), static_cast<std::streamsize>(seed.size()));
      if (!out) {
        std::fprintf(stderr, "jamba-fuzz-%s: cannot write %s\n", target().name,
                     path.c_str());
        std::exit(1);
      }
    }
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  bool accepted = false;
  std::string failed = target().run(
      std::string_view(reinterpret_cast<const char *>(data), size), accepted);
  if (!failed.empty()) {
    std::fprintf(stderr, "jamba-fuzz-%s: %s\n", target().name, failed.c_str());
    std::abort();
  }
  return 0;
}

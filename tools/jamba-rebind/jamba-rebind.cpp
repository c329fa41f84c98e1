//===- jamba-rebind.cpp - New weights for a compiled artifact -------------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// Writes a copy of a compiled single-rank artifact whose weights come from
// another checkpoint of the same config, without recompiling. A thin driver
// over rebindWeights (include/jamba/Runtime/RebindWeights.h). MLIR-free: it
// runs where the runtime runs.
//
//===----------------------------------------------------------------------===//

#include "jamba/Runtime/RebindWeights.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

static const char kUsage[] =
    R"(usage: jamba-rebind ARTIFACT CKPT_DIR -o OUT [options]

Writes OUT, a copy of the compiled artifact ARTIFACT whose weights are the
tensors of the Hugging Face checkpoint in CKPT_DIR, without recompiling: the
code depends on the model's config, not on its weights. The checkpoint must
have the artifact's config (every field but torch_dtype) and every weight the
manifest lists, in its shape; the weights are written in the manifest's
dtypes, as jamba-compile writes them (bf16 rounded to nearest even). For an
ExpertsInt8 artifact an unquantized checkpoint is quantized as the weights
are written, as jamba-compile --experts-int8 does. ARTIFACT's own weights
file is not read: it may be absent (an artifact shipped as its code alone).
Artifacts of several ranks cut their weights at compile time: recompile
those.

options:
  -o OUT        the artifact to write
  --force       replace OUT if it exists
  --threads N   threads quantizing an unquantized checkpoint (default 0:
                one per hardware thread)
  --help        print this message
)";

namespace {

int usageError(const std::string &message) {
  std::fprintf(stderr,
               "jamba-rebind: error: %s (run 'jamba-rebind --help' for "
               "usage)\n",
               message.c_str());
  return 2;
}

} // namespace

int main(int argc, char **argv) {
  jamba::rt::RebindOptions options;
  std::string out;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (arg == "-o") {
      if (i + 1 >= argc)
        return usageError("-o expects the output directory");
      out = argv[++i];
    } else if (arg == "--force") {
      options.overwrite = true;
    } else if (arg == "--threads") {
      const char *v = i + 1 < argc ? argv[++i] : "";
      char *end = nullptr;
      errno = 0;
      long n = std::strtol(v, &end, 10);
      if (!*v || *end || errno || n < 0 || n > 4096)
        return usageError("--threads expects an integer in [0, 4096]");
      options.threads = static_cast<int>(n);
    } else if (arg.size() > 1 && arg[0] == '-') {
      return usageError("unknown option '" + arg + "'");
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() != 2)
    return usageError("expected ARTIFACT and CKPT_DIR");
  if (out.empty())
    return usageError("expected -o OUT");
  jamba::ckpt::Status st =
      jamba::rt::rebindWeights(positional[0], positional[1], out, options);
  if (!st.ok()) {
    std::fprintf(stderr, "jamba-rebind: error: %s\n", st.message().c_str());
    return 1;
  }
  return 0;
}

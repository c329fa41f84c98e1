//===- jamba-make-checkpoint.cpp - Random seeded Jamba checkpoints --------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// Writes a Hugging Face-format Jamba checkpoint (config.json + safetensors)
// with deterministic random weights for a given config.json, so that tests and
// benchmarks can run without downloading real weights. Every value depends
// only on --seed and the tensor's name (not on write order, sharding or
// layout), so a per-expert and a fused checkpoint of the same seed hold the
// same numbers.
//
//===----------------------------------------------------------------------===//

#include "jamba/Checkpoint/Config.h"
#include "jamba/Checkpoint/RandomCheckpoint.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace jamba::ckpt;

static const char kUsage[] =
    R"(usage: jamba-make-checkpoint CONFIG.json OUT_DIR [options]

Writes OUT_DIR/config.json (the validated config, torch_dtype set to match
--dtype) and deterministic random weights in Hugging Face safetensors format,
with every tensor of SPEC.md section 1.4 for that config (lm_head omitted when
tie_word_embeddings; Mamba in/out_proj biases only with mamba_proj_bias;
conv1d.bias only with mamba_conv_bias; dt_proj.bias always), and a small
SentencePiece-style tokenizer.json over the config's vocabulary (the
special ids, the printable ASCII characters, byte fallback when 256 byte
tokens fit, 29 merges, fillers): docs/Runtime.md, "jamba-run".

options:
  --seed N                 PRNG seed (default 0)
  --dtype f32|bf16         stored element type (default f32)
  --shards N               split into N files model-0000k-of-0000N.safetensors
                           plus model.safetensors.index.json (default 1:
                           a single model.safetensors)
  --layout per-expert|fused
                           per-expert: experts.{e}.{gate,up,down}_proj.weight
                           as in the released checkpoints (default);
                           fused: the transformers-v5 tensors
                           feed_forward.experts.gate_up_proj [E, 2I, H] (gate
                           rows first) and feed_forward.experts.down_proj
                           [E, H, I], holding the same values
  --threads N              threads generating each tensor (default 0: one
                           per hardware thread); the values do not depend
                           on it
  --help                   print this message

Initialisation (N(0,s) = normal with standard deviation s). Each tensor's
values come from a splitmix64 stream seeded by --seed and an FNV-1a hash of
the tensor name, with Box-Muller normals:
  embed_tokens, lm_head, q/k/v/o_proj, in_proj, out_proj,
  gate/up/down_proj (dense and experts)      N(0, 0.02)   (HF initializer_range)
  router                                     N(0, 1/sqrt(H)): router logits
                                             are O(1), so top-k choices have
                                             clear margins (0.02 would make
                                             near-ties, and so backend
                                             disagreements, common)
  x_proj                                     N(0, 1/sqrt(Di)): dt/B/C are
                                             O(|x|) before their RMSNorms
  dt_proj.weight                             U(-R^-1/2, R^-1/2) (Mamba's
                                             dt_init "random")
  dt_proj.bias                               softplus^-1(dt), dt log-uniform
                                             in [1e-3, 1e-1] (Mamba's init)
  A_log[c, n]                                log(n + 1) (Mamba's S4D-real)
  D                                          1 + N(0, 0.02)
  conv1d.weight                              N(0, 0.2)
  conv1d.bias, in_proj.bias, out_proj.bias   N(0, 0.02)
  every RMSNorm weight                       1 + N(0, 0.1) (not trivially 1)

The values are reproducible for a given seed on one platform; normals go
through the C library's log/sin/cos, so another libm may differ in the last
bit of a few values.

Existing model.safetensors, model-*-of-*.safetensors and
model.safetensors.index.json files in OUT_DIR that this run does not write
are removed, so the directory always holds one consistent checkpoint.
)";

namespace {

//===----------------------------------------------------------------------===//
// Command line
//===----------------------------------------------------------------------===//

struct Options {
  std::string configPath, outDir;
  uint64_t seed = 0;
  DType dtype = DType::F32;
  int64_t shards = 1;
  bool fused = false;
  uint64_t threads = 0;
};

bool parseUnsigned(const char *s, uint64_t &out) {
  if (!*s)
    return false;
  char *end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s, &end, 10);
  if (errno || *end || s[0] == '-')
    return false;
  out = v;
  return true;
}

int usageError(const std::string &message) {
  std::fprintf(stderr, "jamba-make-checkpoint: error: %s\n", message.c_str());
  std::fprintf(stderr, "run 'jamba-make-checkpoint --help' for usage\n");
  return 2;
}

int fatal(const std::string &message) {
  std::fprintf(stderr, "jamba-make-checkpoint: error: %s\n", message.c_str());
  return 1;
}

} // namespace

int main(int argc, char **argv) {
  Options opts;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    // Consumes the value of the current option.
    auto value = [&](std::string &out) {
      if (i + 1 >= argc)
        return false;
      out = argv[++i];
      return true;
    };
    std::string v;
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (arg == "--seed") {
      if (!value(v) || !parseUnsigned(v.c_str(), opts.seed))
        return usageError("--seed expects a non-negative integer");
    } else if (arg == "--dtype") {
      if (!value(v))
        return usageError("--dtype expects f32 or bf16");
      if (v == "f32" || v == "float32")
        opts.dtype = DType::F32;
      else if (v == "bf16" || v == "bfloat16")
        opts.dtype = DType::BF16;
      else
        return usageError("--dtype expects f32 or bf16, got '" + v + "'");
    } else if (arg == "--shards") {
      uint64_t n = 0;
      if (!value(v) || !parseUnsigned(v.c_str(), n) || n < 1 || n > 99999)
        return usageError("--shards expects an integer in [1, 99999]");
      opts.shards = static_cast<int64_t>(n);
    } else if (arg == "--layout") {
      if (!value(v))
        return usageError("--layout expects per-expert or fused");
      if (v == "per-expert")
        opts.fused = false;
      else if (v == "fused")
        opts.fused = true;
      else
        return usageError("--layout expects per-expert or fused, got '" + v +
                          "'");
    } else if (arg == "--threads") {
      if (!value(v) || !parseUnsigned(v.c_str(), opts.threads) ||
          opts.threads > 4096)
        return usageError("--threads expects an integer in [0, 4096]");
    } else if (arg.size() > 1 && arg[0] == '-') {
      return usageError("unknown option '" + arg + "'");
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() != 2)
    return usageError("expected CONFIG.json and OUT_DIR");
  opts.configPath = positional[0];
  opts.outDir = positional[1];

  StatusOr<JambaConfig> loaded = loadConfig(opts.configPath);
  if (!loaded.ok())
    return fatal(loaded.status().message());
  RandomCheckpointOptions options;
  options.seed = opts.seed;
  options.dtype = opts.dtype;
  options.shards = opts.shards;
  options.fusedExperts = opts.fused;
  options.threads = static_cast<int>(opts.threads);
  Status st = writeRandomCheckpoint(*loaded, opts.outDir, options);
  if (!st.ok())
    return fatal(st.message());
  return 0;
}

//===- jamba-quantize.cpp - ExpertsInt8 quantization of a checkpoint ------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// Writes an ExpertsInt8 copy of a Hugging Face Jamba checkpoint: the MoE
// expert weights (and, with --dense-mlp, the dense MLP weights) as int8 with
// one f32 scale per output row, everything else unchanged. A thin driver over
// writeQuantizedCheckpoint (include/jamba/Checkpoint/Quantize.h); the format
// is documented in docs/ExpertsInt8.md.
//
//===----------------------------------------------------------------------===//

#include "jamba/Checkpoint/Checkpoint.h"
#include "jamba/Checkpoint/Quantize.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <unistd.h>

using namespace jamba::ckpt;

static const char kUsage[] =
    R"(usage: jamba-quantize CKPT_DIR OUT_DIR [options]

Reads the Jamba checkpoint in CKPT_DIR (f32, bf16, f16 or f64; per-expert,
transformers-v5 fused or `.moe.` expert layout; one file or shards) and writes
OUT_DIR/config.json (with "quantization_config": {"quant_method":
"experts_int8", "dense_mlp": ...}) and OUT_DIR/model.safetensors, where every
MoE expert weight model.layers.{i}.feed_forward.experts.{e}.{proj}.weight is
I8 [rows, cols] plus an F32 [rows] ...{proj}.weight_scale, quantized per
output row as vLLM's ExpertsInt8: scale = max|w| / 127, q = clamp(round-half-
even(w / scale), -127, 127), in f32 (bf16 values are widened exactly first).
Every other tensor is copied unchanged under its canonical name.

options:
  --dense-mlp            also quantize the dense-MLP layers' gate/up/down_proj
  --threads N            worker threads (default 0: one per hardware thread)
  --scale-rule div|cuda  div: scale = fl(max / 127), the formula (PyTorch on
                         the CPU; default); cuda: fl(max * fl(1/127)), as
                         PyTorch computes it on a GPU
  --progress             print progress to stderr (default when stderr is a
                         terminal)
  --no-progress          do not print progress
  --help                 print this message
)";

namespace {

int usageError(const std::string &message) {
  std::fprintf(stderr,
               "jamba-quantize: error: %s (run 'jamba-quantize --help' for "
               "usage)\n",
               message.c_str());
  return 2;
}

int fatal(const std::string &message) {
  std::fprintf(stderr, "jamba-quantize: error: %s\n", message.c_str());
  return 1;
}

bool parseThreads(const std::string &s, int &out) {
  if (s.empty() || s.size() > 6)
    return false;
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9')
      return false;
    v = v * 10 + (c - '0');
  }
  out = v;
  return true;
}

} // namespace

int main(int argc, char **argv) {
  QuantizeOptions options;
  options.progress = ::isatty(STDERR_FILENO) == 1;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (arg == "--dense-mlp") {
      options.denseMlp = true;
    } else if (arg == "--threads") {
      if (i + 1 >= argc || !parseThreads(argv[i + 1], options.threads))
        return usageError("--threads expects a non-negative integer");
      ++i;
    } else if (arg == "--scale-rule") {
      std::string v = i + 1 < argc ? argv[++i] : "";
      if (v == "div")
        options.scaleRule = ScaleRule::Divide;
      else if (v == "cuda")
        options.scaleRule = ScaleRule::CudaReciprocal;
      else
        return usageError("--scale-rule expects div or cuda");
    } else if (arg == "--progress") {
      options.progress = true;
    } else if (arg == "--no-progress") {
      options.progress = false;
    } else if (arg.size() > 1 && arg[0] == '-') {
      return usageError("unknown option '" + arg + "'");
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() != 2)
    return usageError("expected CKPT_DIR and OUT_DIR");

  StatusOr<std::unique_ptr<Checkpoint>> ckpt = Checkpoint::open(positional[0]);
  if (!ckpt.ok())
    return fatal(ckpt.status().message());
  Status st = writeQuantizedCheckpoint(**ckpt, positional[1], options);
  if (!st.ok())
    return fatal(st.message());
  return 0;
}

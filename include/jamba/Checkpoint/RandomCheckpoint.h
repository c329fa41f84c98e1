//===- RandomCheckpoint.h - Seeded random Jamba checkpoints -----*- C++ -*-===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// Writes a Hugging Face-format Jamba checkpoint (config.json + safetensors)
// with deterministic random weights, so that tests and benchmarks run without
// real weights. Every value depends only on the seed and the tensor's name
// (not on write order, sharding or layout); `jamba-make-checkpoint --help`
// documents the initialisation of each tensor.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_CHECKPOINT_RANDOMCHECKPOINT_H
#define JAMBA_CHECKPOINT_RANDOMCHECKPOINT_H

#include "jamba/Checkpoint/Config.h"
#include "jamba/Checkpoint/SafeTensors.h"
#include "jamba/Checkpoint/Status.h"

#include <cstdint>
#include <string>

namespace jamba {
namespace ckpt {

struct RandomCheckpointOptions {
  uint64_t seed = 0;
  /// F32 or BF16.
  DType dtype = DType::F32;
  /// 1: a single model.safetensors; N > 1: N shards plus an index.
  int64_t shards = 1;
  /// Write the transformers-v5 fused expert tensors instead of per-expert
  /// ones (same values).
  bool fusedExperts = false;
  /// Threads generating each tensor; 0 = one per hardware thread. The
  /// values do not depend on it.
  int threads = 0;
};

/// Writes `outDir`/config.json (with torch_dtype matching `options.dtype`),
/// the weights and a tokenizer.json (randomCheckpointTokenizerJson); creates
/// `outDir` if needed and removes weight files of an earlier checkpoint
/// there that this one does not overwrite.
Status writeRandomCheckpoint(const JambaConfig &config,
                             const std::string &outDir,
                             const RandomCheckpointOptions &options);

/// A small SentencePiece-style BPE tokenizer.json covering the config's
/// vocabulary: the config's pad, bos and eos ids as special tokens (bos
/// added in front of every encoding), then in the free ids <|unk|>, "▁"
/// (U+2581, a space) and the printable ASCII characters, the 256 byte
/// tokens <0x00>..<0xFF> when they all fit (byte fallback), 29 merges of
/// common English pairs ("▁ t", "h e", "▁t he", ...), and fillers
/// "<|extra_N|>". Deterministic; a random model's text is noise, but it
/// runs the text path end to end.
std::string randomCheckpointTokenizerJson(const JambaConfig &config);

} // namespace ckpt
} // namespace jamba

#endif // JAMBA_CHECKPOINT_RANDOMCHECKPOINT_H

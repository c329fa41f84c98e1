//===- Generate.h - Prefill, decode and sampling ----------------*- C++ -*-===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// Generation over an Executor (CPU or CUDA): several sequences at once, chunked
// prefill, decode steps, greedy or sampled next ids, stop on EOS or length.
// docs/Runtime.md ("Generation") states the semantics. The logits recorded
// follow the reference interpreter's convention
// (include/jamba/Reference/Generate.h): with P prompt ids and n generated
// ids, rows P + n; row p < P holds the logits at prompt position p, row
// P + j the logits after feeding generated id j.
//
// Sampling is the only arithmetic the runtime does itself (DESIGN.md).
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_RUNTIME_GENERATE_H
#define JAMBA_RUNTIME_GENERATE_H

#include "jamba/Runtime/Executor.h"

#include <cstdint>
#include <functional>
#include <vector>

namespace jamba {
namespace rt {

/// How the next id is chosen from a row of logits.
struct SamplingOptions {
  /// 0: greedy (argmax, lowest id on ties). Else logits are divided by it.
  double temperature = 0.0;
  /// Keep only the k most likely ids (0: all). 1 is greedy.
  int64_t topK = 0;
  /// Keep the smallest set of most likely ids whose probability reaches
  /// top_p (1: all). In (0, 1].
  double topP = 1.0;
  /// Seeds the per-sequence random streams.
  uint64_t seed = 0;

  bool isGreedy() const { return temperature == 0.0 || topK == 1; }
};

/// Checks the sampling options (temperature finite and >= 0, top_k >= 0,
/// top_p in (0, 1]); the message names the option.
Status validateSampling(const SamplingOptions &options);

/// A small deterministic generator (SplitMix64), our own so that a seed
/// gives the same ids on every platform and library.
class Rng {
public:
  explicit Rng(uint64_t seed = 0) : state(seed) {}
  uint64_t next();
  /// A double uniform in [0, 1) with 53 random bits.
  double uniform();

private:
  uint64_t state;
};

/// The index of the largest of `n` values, the lowest index on ties; NaN
/// values are never chosen (returns -1 when all are NaN or n == 0).
int64_t argmaxIndex(const float *values, int64_t n);

/// Chooses the next id from `logits[0..vocab)` (see SamplingOptions), in
/// double precision: temperature, then top-k, then top-p over the softmax
/// of the remaining ids (sorted by logit, lower id first on ties), then one
/// draw from `rng`. Fails on a NaN logit or when no id is finite.
StatusOr<int64_t> sampleNext(const float *logits, int64_t vocab,
                             const SamplingOptions &options, Rng &rng);

struct GenerateOptions {
  /// Ids to generate per sequence (at most; fewer on EOS).
  int64_t maxNewTokens = 8;
  SamplingOptions sampling;
  /// Stop a sequence after it emits one of `eosIds` (the EOS id is kept in
  /// its output).
  bool stopOnEos = true;
  /// The EOS ids; empty: the model config's eos_token_id.
  std::vector<int64_t> eosIds;
  /// Keep the logits of every prompt position and decode step (else only
  /// the rows needed to choose ids are read: none at all when the choice
  /// is greedy and the entry points compute their greedy ids, whose ids
  /// are read instead).
  bool recordLogits = false;
  /// Called with (sequence, id) as each id is chosen, in order, on every
  /// rank (the same ids everywhere); jamba-run --stream prints them. Its
  /// time counts in the decode's.
  std::function<void(int64_t sequence, int64_t id)> onId;
};

/// One sequence's outcome.
struct SequenceOutput {
  std::vector<int64_t> ids; ///< Generated ids (EOS included when hit).
  bool stoppedOnEos = false;
  /// With recordLogits: (prompt + ids.size()) rows x vocab, row-major.
  std::vector<float> logits;
  int64_t rows = 0;
};

struct GenerationResult {
  std::vector<SequenceOutput> sequences;
  int64_t vocab = 0;
  int64_t prefillTokens = 0; ///< Prompt ids fed, all sequences.
  int64_t decodeTokens = 0;  ///< Generated ids fed, all sequences.
  int64_t prefillCalls = 0, decodeCalls = 0;
  /// Calls (prefill and decode) whose next ids were read from the entry
  /// point's greedy ids rather than chosen from its logits: greedy
  /// generation that records nothing, on an artifact compiled with
  /// --greedy-ids. 0 on a rank other than rank 0, which reads nothing.
  int64_t greedyIdCalls = 0;
  double prefillSeconds = 0, decodeSeconds = 0;
  /// The first decode call's share of decodeSeconds and decodeTokens: on
  /// CUDA it captures the decode graph and makes the decode kernels' first
  /// launches, so the steady rate is that of the calls after it.
  double firstDecodeSeconds = 0;
  int64_t firstDecodeTokens = 0;
};

/// Runs the prompts (one per batch row, at most the executor's batch) to
/// completion. Every sequence starts fresh (its state rows are zeroed, its
/// cache length 0). Refused before anything runs: no prompts, an empty
/// prompt, an id outside [0, vocab), more prompts than the bound batch,
/// maxNewTokens < 0, bad sampling options, or a sequence whose prompt plus
/// maxNewTokens exceeds the KV capacity (the numbers in the message).
///
/// Prefill: the common prefix length L = min prompt length runs for all rows
/// together in chunks of at most the bound seq; each row's remaining prompt
/// ids then run for that row alone (batch 1 calls on its rows), in chunks.
/// Decode: one call per step over the rows from the first to the last
/// unfinished sequence (finished rows inside that range are fed their last
/// id again and their outputs ignored).
///
/// With several ranks (the executor's communicator), every rank calls this
/// with the same prompts and options: before anything runs the ranks agree
/// on that (all fail at once if one refuses its request or was asked for
/// another generation). Rank 0 then chooses each id and broadcasts it, and
/// every rank feeds and returns rank 0's ids (the others read no logits
/// back unless they record them).
StatusOr<GenerationResult>
generate(Executor &executor, const std::vector<std::vector<int64_t>> &prompts,
         const GenerateOptions &options);

} // namespace rt
} // namespace jamba

#endif // JAMBA_RUNTIME_GENERATE_H

//===- TestKernels.cpp - A test-only "model" for the executor tests -------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// Test code, not runtime code: compiled into a small shared object that the
// executor tests put into an artifact as kernels/cpu.so. Its two packed-ABI
// kernels follow the agreed model ABI (docs/Runtime.md) with a toy rule the
// tests can predict exactly, so that they check the plumbing: argument
// order, per-call dims, in-place state, cache lengths, row offsets, packing.
//
// Arguments: batch, seq, capacity, ids, cache_len, conv, ssm, k, v, bias,
// logits, conv, ssm, k, v (outputs alias the inputs).
//
// Rule: the token at position p of a sequence is stored in its k cache at
// [head 0, p, 0] and p + 1 in its v cache there. The logits at position p
// are bias[v] + (v == next ? 10 : 0) with
//   next = ((sum over q <= p of token_q * (q + 1)) * 31 + 7) mod vocab,
// so they depend on the whole history held in the cache. conv[row][0]
// counts the tokens fed to the row and ssm[row][0] the calls; ssm[row][1..4]
// record the call's batch, seq, capacity and whether it was decode. A broken
// history (a missing position) or an inconsistency turns the logits NaN.
//
// The `_ids` variants take a 16th argument, the greedy ids ([batch, seq],
// or [batch, 1] with the last position's logits only), and write each
// row's argmax there: `next`, or -1 for a row of NaN. With
// JAMBA_TEST_GREEDY_IDS set when they run they write another id instead,
// so that a test can tell which of the two the runtime used: `plus1`
// (next + 1 mod vocab), `minus1` (-1) or `vocab` (128, outside it); with
// `nan` every row of logits is NaN and its id, honestly, -1.
//
// The `_allreduce` variants then sum the logits over the ranks with the
// runtime's collective, as a sharded model's kernels do: the symbol
// `jamba_rt_all_reduce_f32` is left undefined here and resolved from the
// process that dlopen()s this object (docs/Runtime.md, "Ranks and the
// communicator").
//
//===----------------------------------------------------------------------===//

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace {

constexpr int64_t kVocab = 128, kInner = 128, kConv = 3, kState = 8,
                  kKvHeads = 2, kHeadDim = 16;

/// The id the `_ids` variants write for a row whose argmax is `next`
/// (-1: a row of NaN).
int32_t greedyId(int64_t next) {
  const char *rule = std::getenv("JAMBA_TEST_GREEDY_IDS");
  if (!rule || next < 0)
    return int32_t(next);
  if (std::strcmp(rule, "plus1") == 0)
    return int32_t((next + 1) % kVocab);
  if (std::strcmp(rule, "minus1") == 0)
    return -1;
  if (std::strcmp(rule, "vocab") == 0)
    return int32_t(kVocab);
  return int32_t(next);
}

void runModel(void **args, bool decode, bool lastOnly = false,
              bool greedyIds = false) {
  int64_t batch = *static_cast<int64_t *>(args[0]);
  int64_t seq = *static_cast<int64_t *>(args[1]);
  int64_t capacity = *static_cast<int64_t *>(args[2]);
  const int32_t *ids = *static_cast<int32_t **>(args[3]);
  const int64_t *cacheLen = *static_cast<int64_t **>(args[4]);
  float *conv = *static_cast<float **>(args[5]);
  float *ssm = *static_cast<float **>(args[6]);
  float *k = *static_cast<float **>(args[7]);
  float *v = *static_cast<float **>(args[8]);
  const float *bias = *static_cast<float **>(args[9]);
  float *logits = *static_cast<float **>(args[10]);
  int32_t *greedy = greedyIds ? *static_cast<int32_t **>(args[15]) : nullptr;
  bool aliased = *static_cast<float **>(args[11]) == conv &&
                 *static_cast<float **>(args[12]) == ssm &&
                 *static_cast<float **>(args[13]) == k &&
                 *static_cast<float **>(args[14]) == v;
  for (int64_t b = 0; b < batch; ++b) {
    float *kb = k + b * kKvHeads * capacity * kHeadDim;
    float *vb = v + b * kKvHeads * capacity * kHeadDim;
    for (int64_t s = 0; s < seq; ++s) {
      int64_t pos = cacheLen[b] + s;
      // lastOnly: the logits buffer is [batch, 1, vocab], the last position.
      float *row = lastOnly ? (s == seq - 1 ? logits + b * kVocab : nullptr)
                            : logits + (b * seq + s) * kVocab;
      bool ok = aliased && pos < capacity && (!decode || seq == 1);
      int64_t h = 0;
      if (ok) {
        kb[pos * kHeadDim] = float(ids[b * seq + s]);
        vb[pos * kHeadDim] = float(pos + 1);
        for (int64_t q = 0; q <= pos; ++q) {
          if (vb[q * kHeadDim] != float(q + 1))
            ok = false;
          h += int64_t(kb[q * kHeadDim]) * (q + 1);
        }
      }
      const char *rule =
          greedy ? std::getenv("JAMBA_TEST_GREEDY_IDS") : nullptr;
      if (rule && std::strcmp(rule, "nan") == 0)
        ok = false;
      int64_t next = (h * 31 + 7) % kVocab;
      for (int64_t t = 0; row && t < kVocab; ++t)
        row[t] = ok ? bias[t] + (t == next ? 10.0f : 0.0f) : NAN;
      if (greedy && row)
        greedy[lastOnly ? b : b * seq + s] = greedyId(ok ? next : -1);
    }
    conv[b * kInner * kConv] += float(seq);
    float *st = ssm + b * kInner * kState;
    st[0] += 1;
    st[1] = float(batch);
    st[2] = float(seq);
    st[3] = float(capacity);
    st[4] = decode ? 1 : 0;
  }
}

} // namespace

extern "C" void jamba_rt_all_reduce_f32(float *data, int64_t count);

namespace {

/// All-reduces the logits of a call: [batch, seq, vocab] packed.
void allReduceLogits(void **args, bool decode) {
  int64_t batch = *static_cast<int64_t *>(args[0]);
  int64_t seq = decode ? 1 : *static_cast<int64_t *>(args[1]);
  jamba_rt_all_reduce_f32(*static_cast<float **>(args[10]),
                          batch * seq * kVocab);
}

} // namespace

extern "C" {
__attribute__((visibility("default"))) void jamba_test_prefill(void **args) {
  runModel(args, false);
}
__attribute__((visibility("default"))) void
jamba_test_prefill_last(void **args) {
  runModel(args, false, true);
}
__attribute__((visibility("default"))) void jamba_test_decode(void **args) {
  runModel(args, true);
}
__attribute__((visibility("default"))) void
jamba_test_prefill_ids(void **args) {
  runModel(args, false, false, true);
}
__attribute__((visibility("default"))) void
jamba_test_prefill_last_ids(void **args) {
  runModel(args, false, true, true);
}
__attribute__((visibility("default"))) void jamba_test_decode_ids(void **args) {
  runModel(args, true, false, true);
}
__attribute__((visibility("default"))) void
jamba_test_prefill_allreduce(void **args) {
  runModel(args, false);
  allReduceLogits(args, false);
}
__attribute__((visibility("default"))) void
jamba_test_decode_allreduce(void **args) {
  runModel(args, true);
  allReduceLogits(args, true);
}
}

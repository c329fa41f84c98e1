//===- Compare.h - Comparing two runs' logits -------------------*- C++ -*-===//
//
// Part of jamba-mlir. The accuracy figures used for quantization reports and
// backend-vs-reference checks. Standard library only.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_REFERENCE_COMPARE_H
#define JAMBA_REFERENCE_COMPARE_H

#include <cstdint>

namespace jamba::ref {

/// How logits `test` differ from logits `reference`, both [rows, vocab].
struct LogitsComparison {
  int64_t rows = 0;
  /// Per row: max_v |test - ref| / max_v |ref|; the max and mean over rows.
  double maxRelErr = 0, meanRelErr = 0;
  /// Rows whose argmax (lowest index on ties) agrees.
  int64_t top1Agree = 0;
  /// KL(softmax(ref) || softmax(test)) per row in nats: mean and max.
  double meanKL = 0, maxKL = 0;
};

/// Index of the largest of `n` values (the lowest index on ties).
int64_t argmax(const float *values, int64_t n);

LogitsComparison compareLogits(const float *test, const float *reference,
                               int64_t rows, int64_t vocab);

} // namespace jamba::ref

#endif // JAMBA_REFERENCE_COMPARE_H

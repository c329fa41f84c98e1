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

/// max_v |test - ref| / max_v |ref| over one row of `vocab` values (the
/// absolute difference when the reference row is all zeros); infinite when
/// a value of either row is NaN or infinite (logits are finite).
double rowRelErr(const float *test, const float *reference, int64_t vocab);

LogitsComparison compareLogits(const float *test, const float *reference,
                               int64_t rows, int64_t vocab);

/// How the ids a greedy test run chose agree with the reference's logits:
/// `ids[j]` was chosen from row `firstRow + j` (fed the same tokens, e.g.
/// the reference run on the test's prompt and ids). An id agrees when it is
/// the row's argmax, or when its reference logit is within `tolerance` x
/// max_v |ref row| of the row's largest (a near-tie the logits' tolerance
/// allows to go either way).
struct ChosenIdsCheck {
  int64_t checked = 0, argmax = 0, nearTies = 0;
  /// The first id that does not agree (index into ids), or -1; its row's
  /// reference argmax and the gap of its logit below the row's largest.
  int64_t firstMismatch = -1, mismatchArgmax = 0;
  double mismatchGap = 0, mismatchAllowed = 0;
};

/// Preconditions: firstRow + ids.size() <= rows and every id in [0, vocab).
ChosenIdsCheck checkChosenIds(const float *reference, int64_t rows,
                              int64_t vocab, const int64_t *ids, int64_t numIds,
                              int64_t firstRow, double tolerance);

/// How a greedy test run is checked against the reference fed the same
/// tokens (checkRun).
struct RunCheckOptions {
  /// Per-row relative error bound (rowRelErr), and the near-tie scale of the
  /// chosen ids.
  double tolerance = 0;
  /// The ids the run chose, ids[j] from row idsFromRow + j; may be empty.
  const int64_t *ids = nullptr;
  int64_t numIds = 0, idsFromRow = 0;
  /// The reference's routing margin per row (minRoutingMargins), or null;
  /// a margin <= routingTolerance at a row or the one before is a routing
  /// near-tie.
  const float *routingMargins = nullptr;
  double routingTolerance = 0;
};

/// Row by row: each row within the tolerance and its chosen id, if any, the
/// argmax or a near-tie. The first row where either fails at a routing
/// near-tie is a routing swap (a router's top-k decided the other way): the
/// run follows another valid trajectory from there, and the rows from it on
/// are measured, not checked. A failure elsewhere is a failure.
struct RunCheck {
  ChosenIdsCheck ids;       ///< Over the rows before a swap.
  int64_t firstBadRow = -1; ///< Beyond the tolerance, not at a near-tie.
  int64_t swapRow = -1;
  double maxCompared = 0, maxFromSwap = 0;
  bool ok() const { return firstBadRow < 0 && ids.firstMismatch < 0; }
};

/// Preconditions: the ids lie in [0, vocab) and in rows; routingMargins,
/// if set, has `rows` entries.
RunCheck checkRun(const float *test, const float *reference, int64_t rows,
                  int64_t vocab, const RunCheckOptions &options);

} // namespace jamba::ref

#endif // JAMBA_REFERENCE_COMPARE_H

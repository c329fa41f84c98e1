//===- Compare.cpp - Comparing two runs' logits ---------------------------===//
//
// Part of jamba-mlir.
//
//===----------------------------------------------------------------------===//

#include "jamba/Reference/Compare.h"

#include <algorithm>
#include <cmath>
#include <vector>

using namespace jamba::ref;

/// log(sum(exp(x))) over `n` values, max-subtracted.
static double logSumExp(const float *x, int64_t n) {
  double m = *std::max_element(x, x + n), sum = 0;
  for (int64_t i = 0; i < n; ++i)
    sum += std::exp(double(x[i]) - m);
  return m + std::log(sum);
}

int64_t jamba::ref::argmax(const float *x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (x[i] > x[best])
      best = i;
  return best;
}

ChosenIdsCheck jamba::ref::checkChosenIds(const float *reference, int64_t rows,
                                          int64_t vocab, const int64_t *ids,
                                          int64_t numIds, int64_t firstRow,
                                          double tolerance) {
  ChosenIdsCheck c;
  for (int64_t j = 0; j < numIds && firstRow + j < rows; ++j) {
    const float *row = reference + (firstRow + j) * vocab;
    int64_t best = argmax(row, vocab);
    ++c.checked;
    if (ids[j] == best) {
      ++c.argmax;
      continue;
    }
    double scale = 0;
    for (int64_t v = 0; v < vocab; ++v)
      scale = std::max(scale, std::abs(double(row[v])));
    double gap = double(row[best]) - double(row[ids[j]]);
    if (gap <= tolerance * scale) {
      ++c.nearTies;
      continue;
    }
    if (c.firstMismatch < 0) {
      c.firstMismatch = j;
      c.mismatchArgmax = best;
      c.mismatchGap = gap;
      c.mismatchAllowed = tolerance * scale;
    }
  }
  return c;
}

double jamba::ref::rowRelErr(const float *test, const float *reference,
                             int64_t vocab) {
  double maxDiff = 0, maxRef = 0;
  for (int64_t v = 0; v < vocab; ++v) {
    // Logits are finite. A NaN difference would drop out of the maximum
    // (std::max(x, NaN) is x), so a row of NaNs would pass, and an infinite
    // reference would make the ratio NaN.
    if (!std::isfinite(test[v]) || !std::isfinite(reference[v]))
      return INFINITY;
    maxDiff =
        std::max(maxDiff, std::abs(double(test[v]) - double(reference[v])));
    maxRef = std::max(maxRef, std::abs(double(reference[v])));
  }
  return maxRef > 0 ? maxDiff / maxRef : maxDiff;
}

RunCheck jamba::ref::checkRun(const float *test, const float *reference,
                              int64_t rows, int64_t vocab,
                              const RunCheckOptions &o) {
  auto atRoutingNearTie = [&](int64_t r) {
    const float *m = o.routingMargins;
    return m && (m[r] <= o.routingTolerance ||
                 (r > 0 && m[r - 1] <= o.routingTolerance));
  };
  RunCheck c;
  for (int64_t r = 0; r < rows; ++r) {
    double err = rowRelErr(test + r * vocab, reference + r * vocab, vocab);
    if (c.swapRow >= 0) {
      c.maxFromSwap = std::max(c.maxFromSwap, err);
      continue;
    }
    const bool rowOk = err <= o.tolerance;
    // The id chosen from this row, if any.
    const int64_t j = r - o.idsFromRow;
    ChosenIdsCheck id;
    if (j >= 0 && j < o.numIds)
      id = checkChosenIds(reference, rows, vocab, o.ids + j, 1, r, o.tolerance);
    c.ids.checked += id.checked;
    c.ids.argmax += id.argmax;
    c.ids.nearTies += id.nearTies;
    const bool idOk = id.firstMismatch < 0;
    if (!(rowOk && idOk) && atRoutingNearTie(r)) {
      c.swapRow = r;
      c.maxFromSwap = err;
      continue;
    }
    c.maxCompared = std::max(c.maxCompared, err);
    if (!rowOk && c.firstBadRow < 0)
      c.firstBadRow = r;
    if (!idOk && c.ids.firstMismatch < 0) {
      c.ids.firstMismatch = j;
      c.ids.mismatchArgmax = id.mismatchArgmax;
      c.ids.mismatchGap = id.mismatchGap;
      c.ids.mismatchAllowed = id.mismatchAllowed;
    }
  }
  return c;
}

LogitsComparison jamba::ref::compareLogits(const float *test,
                                           const float *reference, int64_t rows,
                                           int64_t vocab) {
  LogitsComparison c;
  c.rows = rows;
  for (int64_t r = 0; r < rows; ++r) {
    const float *a = test + r * vocab, *b = reference + r * vocab;
    double rel = rowRelErr(a, b, vocab);
    c.maxRelErr = std::max(c.maxRelErr, rel);
    c.meanRelErr += rel / double(rows);
    c.top1Agree += argmax(a, vocab) == argmax(b, vocab);
    // KL(p || q) = sum p (log p - log q) with p = softmax(ref).
    double lseA = logSumExp(a, vocab), lseB = logSumExp(b, vocab), kl = 0;
    for (int64_t v = 0; v < vocab; ++v) {
      double logP = double(b[v]) - lseB, logQ = double(a[v]) - lseA;
      kl += std::exp(logP) * (logP - logQ);
    }
    kl = std::max(kl, 0.0); // Rounding can give -1e-17.
    c.meanKL += kl / double(rows);
    c.maxKL = std::max(c.maxKL, kl);
  }
  return c;
}

//===- CompareTest.cpp - Hand-computed cases of the logits comparison -----===//
//
// Part of jamba-mlir.
//
//===----------------------------------------------------------------------===//

#include "jamba/Reference/Compare.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

using namespace jamba::ref;

namespace {

TEST(ReferenceCompare, RowRelErrIsTheMaxDifferenceOverTheMaxMagnitude) {
  std::vector<float> ref = {2.0f, -4.0f, 1.0f}, test = {2.5f, -4.0f, 0.0f};
  EXPECT_DOUBLE_EQ(rowRelErr(test.data(), ref.data(), 3), 1.0 / 4.0);
  std::vector<float> zeros = {0.0f, 0.0f};
  std::vector<float> small = {0.0f, 0.5f};
  EXPECT_DOUBLE_EQ(rowRelErr(small.data(), zeros.data(), 2), 0.5);
}

TEST(ReferenceCompare, RowRelErrOfANonFiniteTestValueIsInfinite) {
  // A NaN would otherwise drop out of the maximum: a row of NaNs passed.
  std::vector<float> ref = {2.0f, -4.0f, 1.0f};
  for (float bad : {NAN, INFINITY, -INFINITY}) {
    std::vector<float> test = {2.0f, bad, 1.0f};
    EXPECT_EQ(rowRelErr(test.data(), ref.data(), 3), INFINITY) << bad;
    std::vector<float> all(3, bad);
    EXPECT_EQ(rowRelErr(all.data(), ref.data(), 3), INFINITY) << bad;
  }
}

TEST(ReferenceCompare, RowRelErrOfANonFiniteReferenceIsInfinite) {
  // A NaN reference dropped out of the maximum too (its row "agreed" with
  // anything), and an infinite one made the ratio NaN, which no tolerance
  // check catches and no maximum keeps.
  std::vector<float> test = {2.0f, -4.0f, 1.0f};
  for (float bad : {NAN, INFINITY, -INFINITY}) {
    std::vector<float> ref = {2.0f, bad, 1.0f};
    EXPECT_EQ(rowRelErr(test.data(), ref.data(), 3), INFINITY) << bad;
    EXPECT_EQ(rowRelErr(ref.data(), ref.data(), 3), INFINITY) << bad;
  }
}

TEST(ReferenceCompare, ChosenIdsAreTheArgmaxOrANearTie) {
  // Two rows of 4. Row 0: argmax 1 (4.0), id 3 scores 3.9: a gap of 0.1
  // within 0.05 * 4 = 0.2, a near-tie. Row 1: argmax 0 (2.0); id 2 at 1.0
  // is 1.0 below, beyond 0.05 * 2 = 0.1.
  std::vector<float> ref = {1.0f, 4.0f, 0.0f, 3.9f, 2.0f, -1.0f, 1.0f, 0.0f};
  std::vector<int64_t> ids = {3, 0};
  ChosenIdsCheck ok = checkChosenIds(ref.data(), 2, 4, ids.data(), 2, 0, 0.05);
  EXPECT_EQ(ok.checked, 2);
  EXPECT_EQ(ok.argmax, 1);
  EXPECT_EQ(ok.nearTies, 1);
  EXPECT_EQ(ok.firstMismatch, -1);

  ids = {1, 2};
  ChosenIdsCheck bad = checkChosenIds(ref.data(), 2, 4, ids.data(), 2, 0, 0.05);
  EXPECT_EQ(bad.argmax, 1);
  EXPECT_EQ(bad.firstMismatch, 1);
  EXPECT_EQ(bad.mismatchArgmax, 0);
  EXPECT_DOUBLE_EQ(bad.mismatchGap, 1.0);
  EXPECT_NEAR(bad.mismatchAllowed, 0.1, 1e-12);

  // From row 1 only: the one id is checked against row 1.
  ids = {0};
  ChosenIdsCheck second =
      checkChosenIds(ref.data(), 2, 4, ids.data(), 1, 1, 0.05);
  EXPECT_EQ(second.checked, 1);
  EXPECT_EQ(second.argmax, 1);
}

TEST(ReferenceCompare, RunCheckStopsAtARoutingSwapOnly) {
  // Three rows of 2, the reference's largest value 4. Row 1 is 10% off and
  // row 2 50% (after a swap, a state that went another way).
  std::vector<float> ref = {4, 1, 4, 2, 1, 4};
  std::vector<float> test = {4, 1, 4.4f, 2, 1, 6};
  RunCheckOptions o;
  o.tolerance = 0.05;
  RunCheck plain = checkRun(test.data(), ref.data(), 3, 2, o);
  EXPECT_FALSE(plain.ok());
  EXPECT_EQ(plain.firstBadRow, 1);
  EXPECT_EQ(plain.swapRow, -1);
  EXPECT_NEAR(plain.maxCompared, 0.5, 1e-6);

  // A near-tie at row 1 (or row 0: the state carries a swap one token on):
  // row 1 is the swap, row 2 is measured, not checked.
  for (std::vector<float> margins :
       {std::vector<float>{1, 0.001f, 1}, std::vector<float>{0.001f, 1, 1}}) {
    o.routingMargins = margins.data();
    o.routingTolerance = 0.01;
    RunCheck swap = checkRun(test.data(), ref.data(), 3, 2, o);
    EXPECT_TRUE(swap.ok());
    EXPECT_EQ(swap.swapRow, 1);
    EXPECT_NEAR(swap.maxFromSwap, 0.5, 1e-6);
    EXPECT_EQ(swap.maxCompared, 0.0);
  }

  // A margin above the routing tolerance is no near-tie.
  std::vector<float> wide = {1, 0.02f, 1};
  o.routingMargins = wide.data();
  EXPECT_EQ(checkRun(test.data(), ref.data(), 3, 2, o).firstBadRow, 1);

  // A wrong id at a row without a near-tie fails; from row 0, id 1 scores
  // 1 against 4.
  std::vector<int64_t> ids = {1};
  o.routingMargins = nullptr;
  o.ids = ids.data();
  o.numIds = 1;
  RunCheck id = checkRun(ref.data(), ref.data(), 3, 2, o);
  EXPECT_EQ(id.firstBadRow, -1);
  EXPECT_EQ(id.ids.firstMismatch, 0);
  EXPECT_EQ(id.ids.mismatchArgmax, 0);
}

} // namespace

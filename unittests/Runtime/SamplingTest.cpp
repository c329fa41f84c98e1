//===- SamplingTest.cpp - Greedy and sampled next ids ---------------------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//

#include "jamba/Runtime/Generate.h"

#include "gtest/gtest.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <vector>

using namespace jamba;
using namespace jamba::rt;

namespace {

int64_t draw(const std::vector<float> &logits, const SamplingOptions &o,
             Rng &rng) {
  auto id = sampleNext(logits.data(), int64_t(logits.size()), o, rng);
  EXPECT_TRUE(id.ok()) << id.status().message();
  return id.ok() ? *id : -1;
}

TEST(SamplingTest, GreedyIsArgmaxLowestOnTies) {
  std::vector<float> l = {0.5f, 3.0f, -1.0f, 3.0f, 2.0f};
  EXPECT_EQ(argmaxIndex(l.data(), 5), 1);
  Rng rng(1);
  SamplingOptions o; // temperature 0
  EXPECT_EQ(draw(l, o, rng), 1);
  std::vector<float> withNan = {NAN, 1.0f, 2.0f};
  EXPECT_EQ(argmaxIndex(withNan.data(), 3), 2);
  EXPECT_EQ(argmaxIndex(withNan.data(), 1), -1);
}

TEST(SamplingTest, ArgmaxMatchesItsDefinitionAcrossLanesAndTails) {
  // argmaxIndex scans 16 running maxima at once, then finds the first index
  // of the maximum: against the definition (the lowest index of the
  // largest non-NaN value) on random rows of every length up to 80 (whole
  // groups of 16 and tails), with ties planted across lanes and groups,
  // NaN, -inf, +inf and signed zeros.
  auto definition = [](const std::vector<float> &v) {
    int64_t best = -1;
    for (size_t i = 0; i < v.size(); ++i)
      if (!std::isnan(v[i]) && (best < 0 || v[i] > v[size_t(best)]))
        best = int64_t(i);
    return best;
  };
  Rng rng(11);
  const float specials[] = {NAN, -INFINITY, INFINITY, 0.0f, -0.0f};
  int checked = 0;
  for (int64_t n = 0; n <= 80; ++n)
    for (int trial = 0; trial < 40; ++trial) {
      std::vector<float> v(static_cast<size_t>(n));
      for (float &x : v) {
        // Few distinct values, so that ties are common.
        x = float(int(rng.uniform() * 7)) - 3.0f;
        if (rng.uniform() < 0.08)
          x = specials[int(rng.uniform() * 5)];
      }
      ASSERT_EQ(argmaxIndex(v.data(), n), definition(v))
          << "length " << n << ", trial " << trial;
      ++checked;
    }
  EXPECT_EQ(checked, 81 * 40);
  // The maximum in the tail past the last whole group; all NaN; all -inf.
  std::vector<float> tail(37, 1.0f);
  tail[36] = 2.0f;
  EXPECT_EQ(argmaxIndex(tail.data(), 37), 36);
  std::vector<float> nans(20, NAN);
  EXPECT_EQ(argmaxIndex(nans.data(), 20), -1);
  std::vector<float> ninf(20, -INFINITY);
  EXPECT_EQ(argmaxIndex(ninf.data(), 20), 0);
}

TEST(SamplingTest, GreedyRefusesNaNAnywhereInALongRow) {
  // A NaN in a whole group and one in the tail, each named by its id.
  Rng rng(1);
  SamplingOptions o;
  for (int64_t at : {0, 5, 17, 63, 64, 70}) {
    std::vector<float> l(71, 0.5f);
    l[size_t(at)] = NAN;
    auto r = sampleNext(l.data(), 71, o, rng);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().message(),
              "the logits hold NaN (id " + std::to_string(at) + ")");
  }
}

TEST(SamplingTest, TinyTemperatureIsThePointMassOnTheTopId) {
  // logit / 1e-308 overflows to inf; the draw must still be the top id,
  // never an arbitrary one (inf - inf = NaN would fail every comparison).
  std::vector<float> l = {0.5f, 3.0f, -1.0f, 2.0f};
  SamplingOptions o;
  o.temperature = 1e-308;
  for (uint64_t seed = 0; seed < 8; ++seed) {
    Rng rng(seed);
    EXPECT_EQ(draw(l, o, rng), 1);
  }
}

TEST(SamplingTest, TemperatureZeroAndTopKOneAreGreedy) {
  std::vector<float> l = {1.0f, 1.2f, 0.9f, 1.1f};
  Rng rng(7);
  SamplingOptions t0;
  t0.temperature = 0;
  t0.seed = 3;
  SamplingOptions k1;
  k1.temperature = 5.0;
  k1.topK = 1;
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(draw(l, t0, rng), 1);
    EXPECT_EQ(draw(l, k1, rng), 1);
  }
}

TEST(SamplingTest, SeededSamplingIsReproducible) {
  std::vector<float> l(64);
  for (size_t i = 0; i < l.size(); ++i)
    l[i] = float(std::sin(double(i)));
  SamplingOptions o;
  o.temperature = 1.0;
  Rng a(42), b(42), c(43);
  std::vector<int64_t> da, db, dc;
  for (int i = 0; i < 200; ++i) {
    da.push_back(draw(l, o, a));
    db.push_back(draw(l, o, b));
    dc.push_back(draw(l, o, c));
  }
  EXPECT_EQ(da, db);
  EXPECT_NE(da, dc);
  // The generator itself: fixed values for a fixed seed (SplitMix64).
  Rng r(0);
  EXPECT_EQ(r.next(), 0xe220a8397b1dcdafull);
  double u = Rng(5).uniform();
  EXPECT_GE(u, 0.0);
  EXPECT_LT(u, 1.0);
}

TEST(SamplingTest, SampledIdsFollowTheirDefinition) {
  // sampleNext orders the ids by a radix sort of their logits: against the
  // definition (every finite id, sorted by a comparison: larger logit
  // first, lower id on ties; softmax in double in that order; top-p; one
  // draw), the same ids draw for draw. Rows of 3000 logits with many equal
  // values, signed zeros and -inf, negative and positive, several
  // temperatures, top-p and top-k.
  auto definition = [](const std::vector<float> &l, const SamplingOptions &o,
                       Rng &rng) -> int64_t {
    std::vector<int64_t> order;
    for (size_t i = 0; i < l.size(); ++i)
      if (l[i] != -INFINITY)
        order.push_back(int64_t(i));
    auto before = [&](int64_t a, int64_t b) {
      float x = l[size_t(a)], y = l[size_t(b)];
      return x != y ? x > y : a < b;
    };
    std::sort(order.begin(), order.end(), before);
    size_t keep = order.size();
    if (o.topK > 0 && size_t(o.topK) < keep)
      keep = size_t(o.topK);
    std::vector<double> prob(keep);
    double top = double(l[size_t(order[0])]) / o.temperature, sum = 0;
    for (size_t i = 0; i < keep; ++i)
      sum += prob[i] =
          std::exp(double(l[size_t(order[i])]) / o.temperature - top);
    for (double &p : prob)
      p /= sum;
    if (o.topP < 1) {
      double cumulative = 0;
      size_t n = 0;
      while (n < keep) {
        cumulative += prob[n++];
        if (cumulative >= o.topP)
          break;
      }
      keep = n;
    }
    double total = 0;
    for (size_t i = 0; i < keep; ++i)
      total += prob[i];
    double u = rng.uniform() * total, cumulative = 0;
    for (size_t i = 0; i < keep; ++i) {
      cumulative += prob[i];
      if (u < cumulative)
        return order[i];
    }
    return order[keep - 1];
  };
  Rng values(5);
  std::vector<float> l(3000);
  for (float &x : l) {
    // Steps of 0.25 in [-6, 6): many ties; some -inf, -0 and +0.
    x = float(int(values.uniform() * 48)) * 0.25f - 6.0f;
    double r = values.uniform();
    if (r < 0.05)
      x = -INFINITY;
    else if (r < 0.08)
      x = r < 0.065 ? -0.0f : 0.0f;
  }
  int draws = 0;
  for (double temperature : {0.3, 1.0, 2.5})
    for (double topP : {1.0, 0.9})
      for (int64_t topK : {0, 40}) {
        SamplingOptions o;
        o.temperature = temperature;
        o.topP = topP;
        o.topK = topK;
        Rng a(17), b(17);
        for (int i = 0; i < 100; ++i, ++draws)
          ASSERT_EQ(draw(l, o, a), definition(l, o, b))
              << "temperature " << temperature << ", top-p " << topP
              << ", top-k " << topK << ", draw " << i;
      }
  EXPECT_EQ(draws, 1200);
}

TEST(SamplingTest, TopKAndTopPKeepTheRightSets) {
  // Probabilities at temperature 1: 0.5, 0.3, 0.2 (logits = log p).
  std::vector<float> l = {float(std::log(0.3)), float(std::log(0.5)),
                          float(std::log(0.2))};
  SamplingOptions o;
  o.temperature = 1.0;
  Rng rng(11);

  // top-p 0.5: the smallest set reaching 0.5 is {1}.
  o.topP = 0.5;
  for (int i = 0; i < 100; ++i)
    EXPECT_EQ(draw(l, o, rng), 1);
  // top-p 0.6: {1, 0}, never 2, and both seen.
  o.topP = 0.6;
  std::set<int64_t> seen;
  int zeros = 0;
  for (int i = 0; i < 2000; ++i) {
    int64_t id = draw(l, o, rng);
    seen.insert(id);
    zeros += id == 0;
  }
  EXPECT_EQ(seen, (std::set<int64_t>{0, 1}));
  EXPECT_NEAR(zeros / 2000.0, 0.3 / 0.8, 0.05);
  // top-k 2 has the same set.
  o.topP = 1;
  o.topK = 2;
  seen.clear();
  for (int i = 0; i < 500; ++i)
    seen.insert(draw(l, o, rng));
  EXPECT_EQ(seen, (std::set<int64_t>{0, 1}));
  // No filter: the frequencies follow the softmax.
  o.topK = 0;
  int counts[3] = {};
  for (int i = 0; i < 20000; ++i)
    ++counts[draw(l, o, rng)];
  EXPECT_NEAR(counts[0] / 20000.0, 0.3, 0.02);
  EXPECT_NEAR(counts[1] / 20000.0, 0.5, 0.02);
  EXPECT_NEAR(counts[2] / 20000.0, 0.2, 0.02);
  // A high temperature flattens, a low one sharpens.
  o.temperature = 0.05;
  int ones = 0;
  for (int i = 0; i < 200; ++i)
    ones += draw(l, o, rng) == 1;
  EXPECT_GT(ones, 195);
}

TEST(SamplingTest, RefusesBadLogitsAndOptions) {
  Rng rng(1);
  SamplingOptions o;
  std::vector<float> nan = {1.0f, NAN};
  auto r = sampleNext(nan.data(), 2, o, rng);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "the logits hold NaN (id 1)");
  std::vector<float> inf = {-INFINITY, -INFINITY};
  EXPECT_FALSE(sampleNext(inf.data(), 2, o, rng).ok());
  o.topP = 1.5;
  EXPECT_EQ(validateSampling(o).message(), "top-p must be in (0, 1], got 1.5");
  o.topP = 1;
  o.topK = -2;
  EXPECT_EQ(validateSampling(o).message(),
            "top-k must be >= 0 (0: all ids), got -2");
  o.topK = 0;
  o.temperature = NAN;
  EXPECT_FALSE(validateSampling(o).ok());
  // -inf logits are never sampled.
  SamplingOptions s;
  s.temperature = 1;
  std::vector<float> masked = {-INFINITY, 0.0f, -INFINITY, 0.0f};
  for (int i = 0; i < 100; ++i) {
    int64_t id = draw(masked, s, rng);
    EXPECT_TRUE(id == 1 || id == 3);
  }
}

} // namespace

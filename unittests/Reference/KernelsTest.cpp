//===- KernelsTest.cpp - Hand-computed cases of the reference kernels -----===//
//
// Part of jamba-mlir. Each test computes the expected value a second way:
// by hand, in closed form, or with an explicitly stepped recurrence written
// independently of Kernels.cpp.
//
//===----------------------------------------------------------------------===//

#include "jamba/Reference/Kernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace jamba::ref;

namespace {

/// Random values of the given std; never all zeros.
Tensor<double> randomTensor(std::vector<int64_t> shape, std::mt19937 &rng,
                            double stddev = 1.0, double mean = 0.0) {
  std::normal_distribution<double> dist(mean, stddev);
  Tensor<double> t(std::move(shape));
  for (double &v : t.data)
    v = dist(rng);
  return t;
}

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

TEST(ReferenceKernels, RMSNormHandComputed) {
  // x = [3, 4]: mean(x^2) = 12.5, so y = w * x / sqrt(12.5 + eps).
  Tensor<double> x({1, 2}, {3.0, 4.0}), w({2}, {1.0, 2.0});
  Tensor<double> y = rmsNorm(x, w, 0.5);
  EXPECT_NEAR(y[0], 3.0 / std::sqrt(13.0), 1e-15);
  EXPECT_NEAR(y[1], 8.0 / std::sqrt(13.0), 1e-15);
}

TEST(ReferenceKernels, LinearWithScaleAndBias) {
  // w = [[1, 2], [3, 4]] as int8 values, per-row scales 0.5 and 2, bias.
  Tensor<double> x({1, 2}, {1.0, -1.0}), w({2, 2}, {1, 2, 3, 4});
  Tensor<double> scale({2}, {0.5, 2.0}), bias({2}, {10.0, 20.0});
  Tensor<double> y = linear<double>(x, w, &scale, &bias);
  EXPECT_DOUBLE_EQ(y[0], 0.5 * (1 - 2) + 10.0);
  EXPECT_DOUBLE_EQ(y[1], 2.0 * (3 - 4) + 20.0);
}

TEST(ReferenceKernels, LinearRoundsItsInputToBF16WhenAsked) {
  // 1 + 2^-8 lies halfway between the bf16 values 1 and 1 + 2^-7: nearest
  // even gives 1. 1 + 3 * 2^-9 rounds up to 1 + 2^-7. 3 is exact.
  const double a = 1.0 + std::ldexp(1.0, -8), b = 1.0 + 3 * std::ldexp(1.0, -9);
  Tensor<double> x({1, 3}, {a, b, 3.0}), w({1, 3}, {1.0, 10.0, 100.0});
  EXPECT_DOUBLE_EQ(linear<double>(x, w, nullptr, nullptr)[0],
                   a + 10 * b + 300.0);
  EXPECT_DOUBLE_EQ(linear<double>(x, w, nullptr, nullptr, GemmInputs::BF16)[0],
                   1.0 + 10 * (1.0 + std::ldexp(1.0, -7)) + 300.0);
  // An ExpertsInt8 linear (with a scale) keeps its input.
  Tensor<double> scale({1}, std::vector<double>{0.5});
  EXPECT_DOUBLE_EQ(linear<double>(x, w, &scale, nullptr, GemmInputs::BF16)[0],
                   0.5 * (a + 10 * b + 300.0));
}

TEST(ReferenceKernels, ExpertGemmRoundsItsInputToBF16WhenAsked) {
  // The tensor-core expert GEMM's inputs: one token, 2 slots routed to
  // experts 1 and 0 of 2, int8-valued weights with scales and route
  // weights. Rounded as in LinearRoundsItsInputToBF16WhenAsked (nearest
  // even), before the product; the scale and route weight apply after.
  const double a = 1.0 + std::ldexp(1.0, -8), b = 1.0 + 3 * std::ldexp(1.0, -9);
  Tensor<double> x({1, 3}, {a, b, 3.0});
  Tensor<double> w({2, 1, 3}, {1, 10, 100, 2, 20, -7});
  Tensor<double> scale({2, 1}, {0.5, 0.25}), idx({1, 2}, {1.0, 0.0}),
      rw({1, 2}, {0.75, 0.25});
  const double rb = 1.0 + std::ldexp(1.0, -7);
  Tensor<double> exact = expertGemm<double>(x, w, &scale, idx, &rw);
  EXPECT_DOUBLE_EQ(exact[0], 0.25 * 0.75 * (2 * a + 20 * b - 21));
  EXPECT_DOUBLE_EQ(exact[1], 0.5 * 0.25 * (a + 10 * b + 300));
  Tensor<double> rounded =
      expertGemm<double>(x, w, &scale, idx, &rw, nullptr, GemmInputs::BF16);
  EXPECT_DOUBLE_EQ(rounded[0], 0.25 * 0.75 * (2 * 1.0 + 20 * rb - 21));
  EXPECT_DOUBLE_EQ(rounded[1], 0.5 * 0.25 * (1.0 + 10 * rb + 300));
}

TEST(ReferenceKernels, RoutingMarginsAreTheKthGapOverTheLargestLogit) {
  // Token 0: logits [3, 1, 2, -4], top-2 = {3, 2}, next 1: (2 - 1) / 4.
  // Token 1: [0.5, 0.5, -1, 0.25]: (0.5 - 0.25) / 1 = 0.25, but an earlier
  // layer's 0.1 is smaller and stays.
  Tensor<double> logits({2, 4}, {3, 1, 2, -4, 0.5, 0.5, -1, 0.25});
  std::vector<double> margins = {1.0, 0.1};
  minRoutingMargins(logits, 2, margins);
  EXPECT_DOUBLE_EQ(margins[0], 0.25);
  EXPECT_DOUBLE_EQ(margins[1], 0.1);
  // A tie at the k-th place has margin 0: [1, 2, 2, 0] with k = 1.
  Tensor<double> tie({1, 4}, {1, 2, 2, 0});
  std::vector<double> m = {1.0};
  minRoutingMargins(tie, 1, m);
  EXPECT_DOUBLE_EQ(m[0], 0.0);
}

TEST(ReferenceKernels, RouterTopKDoesNotRenormaliseAndBreaksTiesLow) {
  // Logits [1, 2, 2, 0]: experts 1 and 2 tie; the lower index comes first.
  Tensor<double> logits({1, 4}, {1.0, 2.0, 2.0, 0.0});
  auto [w, idx] = routerTopK(logits, 2, /*normalize=*/false);
  double z = std::exp(1.0) + 2 * std::exp(2.0) + 1.0;
  EXPECT_EQ(idx[0], 1.0);
  EXPECT_EQ(idx[1], 2.0);
  EXPECT_NEAR(w[0], std::exp(2.0) / z, 1e-15);
  EXPECT_NEAR(w[1], std::exp(2.0) / z, 1e-15);
  EXPECT_LT(w[0] + w[1], 1.0); // No renormalisation (SPEC 1.10, item 2).

  auto [wn, idxn] = routerTopK(logits, 2, /*normalize=*/true);
  EXPECT_NEAR(wn[0] + wn[1], 1.0, 1e-15);
}

TEST(ReferenceKernels, ArgmaxIsTheFirstLargestIdOrMinusOne) {
  // Rows of [2, 2, 4]: ties go to the lower id (-0 equals +0), a NaN
  // anywhere or a row of -inf has no id, +inf wins, -inf before a finite
  // value does not.
  const double inf = INFINITY, nan = NAN;
  Tensor<double> logits({2, 2, 4}, {1, 3, 3, 2,        //
                                    -0.0, 0.0, -1, -2, //
                                    1, 5, nan, 2,      //
                                    -inf, -inf, -inf, -inf});
  Tensor<double> ids = argmax(logits);
  EXPECT_EQ(ids.shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(ids[0], 1.0);
  EXPECT_EQ(ids[1], 0.0);
  EXPECT_EQ(ids[2], -1.0);
  EXPECT_EQ(ids[3], -1.0);
  Tensor<double> more({2, 3}, {-inf, -7, inf, /**/ -inf, 0.5, -inf});
  Tensor<double> moreIds = argmax(more);
  EXPECT_EQ(moreIds[0], 2.0);
  EXPECT_EQ(moreIds[1], 1.0);
}

TEST(ReferenceKernels, RouterTopKSwapTakesTheNextExpertForTheListedRowsOnly) {
  // Row 0 [0, 1, 3, 2] picks 2 then 3 (logits 3, 2); swapped, its second
  // choice is expert 1 (logit 1), the third best. Row 1 is not listed.
  Tensor<double> logits({2, 4}, {0, 1, 3, 2, /**/ 0, 1, 3, 2});
  std::vector<RoutingSwapMade> made;
  auto [w, idx] = routerTopK(logits, 2, /*normalize=*/true, {0}, &made);
  EXPECT_EQ(idx[0], 2.0);
  EXPECT_EQ(idx[1], 1.0);
  EXPECT_EQ(idx[2], 2.0);
  EXPECT_EQ(idx[3], 3.0);
  // Renormalised over the experts taken: e^3 / (e^3 + e^1) and the rest.
  EXPECT_NEAR(w[0], std::exp(3.0) / (std::exp(3.0) + std::exp(1.0)), 1e-15);
  EXPECT_NEAR(w[1], std::exp(1.0) / (std::exp(3.0) + std::exp(1.0)), 1e-15);
  EXPECT_NEAR(w[2], std::exp(3.0) / (std::exp(3.0) + std::exp(2.0)), 1e-15);
  ASSERT_EQ(made.size(), 1u);
  EXPECT_EQ(made[0].row, 0);
  EXPECT_EQ(made[0].left, 3);
  EXPECT_EQ(made[0].took, 1);
  // The margin: (2 - 1) / 3.
  EXPECT_DOUBLE_EQ(made[0].margin, 1.0 / 3.0);

  // Without renormalisation the swapped weight is the softmax's own.
  auto [wu, idxu] = routerTopK(logits, 2, /*normalize=*/false, {0});
  double z = 1 + std::exp(1.0) + std::exp(3.0) + std::exp(2.0);
  EXPECT_NEAR(wu[1], std::exp(1.0) / z, 1e-15);
  // k equal to the experts: nothing to swap in.
  std::vector<RoutingSwapMade> none;
  routerTopK(logits, 4, /*normalize=*/false, {0}, &none);
  EXPECT_TRUE(none.empty());
}

TEST(ReferenceKernels, MoEIsSoftmaxOverAllExpertsTopKWithoutRenormalisation) {
  // H = 2, I = 1, three experts, top-2; expected value computed by hand.
  Tensor<double> x({1, 1, 2}, {1.0, 2.0});
  Tensor<double> router({3, 2}, {0.1, 0.2, /**/ 0.3, -0.1, /**/ -0.2, 0.4});
  Tensor<double> gate({3, 1, 2}, {1, 0, /**/ 0, 1, /**/ 1, 1});
  Tensor<double> up({3, 1, 2}, {0.5, 0.5, /**/ 1, -1, /**/ 2, 0});
  Tensor<double> down({3, 2, 1}, {1, 2, /**/ 3, 4, /**/ 5, 6});
  Tensor<double> y = moe(x, router, gate, up, down, 2, false);

  // Router logits: 0.5, 0.1, 0.6 -> experts 2 then 0.
  double l[3] = {0.5, 0.1, 0.6}, z = 0;
  for (double v : l)
    z += std::exp(v);
  double p2 = std::exp(0.6) / z, p0 = std::exp(0.5) / z;
  // Expert 2: gate 3, up 2 -> a = silu(3) * 2; expert 0: gate 1, up 1.5.
  double a2 = 3 * sigmoid(3) * 2, a0 = 1 * sigmoid(1) * 1.5;
  EXPECT_NEAR(y[0], p2 * 5 * a2 + p0 * 1 * a0, 1e-14);
  EXPECT_NEAR(y[1], p2 * 6 * a2 + p0 * 2 * a0, 1e-14);
}

TEST(ReferenceKernels, CausalConvChunkedEqualsWhole) {
  std::mt19937 rng(7);
  Tensor<double> x = randomTensor({2, 6, 5}, rng),
                 w = randomTensor({5, 4}, rng);
  Tensor<double> bias = randomTensor({5}, rng), zero({2, 5, 3});
  auto [whole, wholeState] = causalConv1d(x, w, &bias, zero, true);

  // Hand-written check of one output: channel 1, time 2 of batch 0 sees
  // x[0..2] at kernel taps 1..3 (tap 0 reads the zero padding).
  double acc = bias[1];
  for (int j = 1; j < 4; ++j)
    acc += w[1 * 4 + j] * x[((0 * 6) + (j - 1)) * 5 + 1];
  EXPECT_NEAR(whole[(0 * 6 + 2) * 5 + 1], acc * sigmoid(acc), 1e-14);

  // Two chunks (2 + 4 tokens) carrying the state give the same result.
  Tensor<double> a({2, 2, 5}), b({2, 4, 5});
  for (int bt = 0; bt < 2; ++bt)
    for (int t = 0; t < 6; ++t)
      for (int c = 0; c < 5; ++c)
        (t < 2 ? a[(bt * 2 + t) * 5 + c] : b[(bt * 4 + t - 2) * 5 + c]) =
            x[(bt * 6 + t) * 5 + c];
  auto [ya, sa] = causalConv1d(a, w, &bias, zero, true);
  auto [yb, sb] = causalConv1d(b, w, &bias, sa, true);
  for (int bt = 0; bt < 2; ++bt)
    for (int t = 0; t < 6; ++t)
      for (int c = 0; c < 5; ++c)
        EXPECT_NEAR(t < 2 ? ya[(bt * 2 + t) * 5 + c]
                          : yb[(bt * 4 + t - 2) * 5 + c],
                    whole[(bt * 6 + t) * 5 + c], 1e-14);
  EXPECT_EQ(sb.data, wholeState.data);
  // The state holds the last K-1 pre-conv inputs, oldest first.
  EXPECT_EQ(sb[(1 * 5 + 2) * 3 + 2], x[(1 * 6 + 5) * 5 + 2]);
}

TEST(ReferenceKernels, SelectiveScanMatchesClosedFormForOneStep) {
  // From a zero state, one step gives y = delta*u*<B, C> + D*u, gated.
  std::mt19937 rng(11);
  Tensor<double> u = randomTensor({1, 1, 3}, rng),
                 delta = randomTensor({1, 1, 3}, rng),
                 A = randomTensor({3, 2}, rng),
                 B = randomTensor({1, 1, 2}, rng),
                 C = randomTensor({1, 1, 2}, rng), D = randomTensor({3}, rng),
                 z = randomTensor({1, 1, 3}, rng),
                 bias = randomTensor({3}, rng);
  ScanOperands<double> ops{&u, &delta, &A, &B, &C};
  ops.D = &D;
  ops.z = &z;
  ops.deltaBias = &bias;
  ops.deltaSoftplus = true;
  auto [y, h] = selectiveScan(ops);
  for (int c = 0; c < 3; ++c) {
    double d = std::log1p(std::exp(delta[c] + bias[c]));
    double bc = B[0] * C[0] + B[1] * C[1];
    double expected = (d * u[c] * bc + D[c] * u[c]) * z[c] * sigmoid(z[c]);
    EXPECT_NEAR(y[c], expected, 1e-14);
    EXPECT_NEAR(h[c * 2 + 1], d * B[1] * u[c], 1e-14);
  }
}

TEST(ReferenceKernels, AttentionWithZeroQueriesIsTheCausalRunningMeanOfV) {
  // q_proj = 0: all scores are equal, so position p averages v over 0..p.
  // GQA: 4 query heads share 2 kv heads (head h uses kv head h / 2).
  const int64_t heads = 4, kvHeads = 2, hd = 2, hidden = heads * hd, seq = 5;
  std::mt19937 rng(3);
  Tensor<double> x = randomTensor({1, seq, hidden}, rng);
  Tensor<double> wq({heads * hd, hidden}); // Zero.
  Tensor<double> wk = randomTensor({kvHeads * hd, hidden}, rng);
  Tensor<double> wv = randomTensor({kvHeads * hd, hidden}, rng);
  Tensor<double> wo({hidden, heads * hd});
  for (int64_t i = 0; i < hidden; ++i)
    wo[i * hidden + i] = 1.0; // Identity: the output is the head concat.
  Tensor<double> v = linear<double>(x, wv, nullptr, nullptr);

  auto expectRunningMean = [&](const Tensor<double> &out, int64_t first,
                               int64_t count) {
    for (int64_t s = 0; s < count; ++s)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t d = 0; d < hd; ++d) {
          const int64_t p = first + s, g = h / (heads / kvHeads);
          double mean = 0;
          for (int64_t j = 0; j <= p; ++j)
            mean += v[j * kvHeads * hd + g * hd + d];
          mean /= double(p + 1);
          EXPECT_NEAR(out[s * hidden + h * hd + d], mean, 1e-13)
              << "position " << p << " head " << h;
        }
  };

  // All five tokens at once.
  Tensor<double> cache({1, kvHeads, 8, hd}), len({1}, 0.0);
  auto [out, kc, vc] =
      attention(x, wq, wk, wv, wo, cache, cache, len, heads, kvHeads);
  expectRunningMean(out, 0, seq);

  // Three tokens, then one at a time through the KV cache.
  Tensor<double> x3(
      {1, 3, hidden},
      std::vector<double>(x.data.begin(), x.data.begin() + 3 * hidden));
  auto [o3, k3, v3] =
      attention(x3, wq, wk, wv, wo, cache, cache, len, heads, kvHeads);
  expectRunningMean(o3, 0, 3);
  Tensor<double> kPrev = k3, vPrev = v3;
  for (int64_t p = 3; p < seq; ++p) {
    Tensor<double> x1({1, 1, hidden},
                      std::vector<double>(x.data.begin() + p * hidden,
                                          x.data.begin() + (p + 1) * hidden));
    Tensor<double> l({1}, double(p));
    auto [o1, k1, v1] =
        attention(x1, wq, wk, wv, wo, kPrev, vPrev, l, heads, kvHeads);
    expectRunningMean(o1, p, 1);
    kPrev = k1;
    vPrev = v1;
  }
  EXPECT_EQ(kPrev.data, kc.data);
}

/// The Mamba mixer stepped one token at a time with an explicit rolling conv
/// window and state, written independently of mambaMixer().
struct SteppedMamba {
  int64_t hidden, dInner, dState, width, dtRank;
  std::vector<double> window; // [dInner, width]: oldest first.
  std::vector<double> h;      // [dInner, dState].
  const MambaWeights<double> &w;

  SteppedMamba(const MambaWeights<double> &w, int64_t hidden)
      : hidden(hidden), dInner(w.conv->dim(0)), dState(w.aLog->dim(1)),
        width(w.conv->dim(2)), dtRank(w.dtProj->dim(1)), window(dInner * width),
        h(dInner * dState), w(w) {}

  static double dot(const double *a, const double *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; ++i)
      s += a[i] * b[i];
    return s;
  }
  static void norm(std::vector<double> &v, const Tensor<double> &weight) {
    double ms = 0;
    for (double e : v)
      ms += e * e;
    double inv = 1 / std::sqrt(ms / v.size() + 1e-6);
    for (size_t i = 0; i < v.size(); ++i)
      v[i] = weight[i] * v[i] * inv;
  }

  std::vector<double> step(const double *u) {
    std::vector<double> xc(dInner), z(dInner);
    for (int64_t c = 0; c < dInner; ++c) {
      double xin = dot(&(*w.inProj)[c * hidden], u, hidden);
      z[c] = dot(&(*w.inProj)[(dInner + c) * hidden], u, hidden);
      for (int64_t j = 0; j + 1 < width; ++j)
        window[c * width + j] = window[c * width + j + 1];
      window[c * width + width - 1] = xin;
      double conv = (*w.convBias)[c] +
                    dot(&(*w.conv)[c * width], &window[c * width], width);
      xc[c] = conv * sigmoid(conv);
    }
    std::vector<double> dt(dtRank), B(dState), C(dState);
    for (int64_t r = 0; r < dtRank; ++r)
      dt[r] = dot(&(*w.xProj)[r * dInner], xc.data(), dInner);
    for (int64_t n = 0; n < dState; ++n) {
      B[n] = dot(&(*w.xProj)[(dtRank + n) * dInner], xc.data(), dInner);
      C[n] =
          dot(&(*w.xProj)[(dtRank + dState + n) * dInner], xc.data(), dInner);
    }
    norm(dt, *w.dtNorm);
    norm(B, *w.bNorm);
    norm(C, *w.cNorm);
    std::vector<double> y(dInner);
    for (int64_t c = 0; c < dInner; ++c) {
      double delta =
          std::log1p(std::exp(dot(&(*w.dtProj)[c * dtRank], dt.data(), dtRank) +
                              (*w.dtProjBias)[c]));
      double acc = 0;
      for (int64_t n = 0; n < dState; ++n) {
        double a = -std::exp((*w.aLog)[c * dState + n]);
        double &hn = h[c * dState + n];
        hn = std::exp(delta * a) * hn + delta * B[n] * xc[c];
        acc += C[n] * hn;
      }
      y[c] = (acc + (*w.D)[c] * xc[c]) * z[c] * sigmoid(z[c]);
    }
    std::vector<double> out(hidden);
    for (int64_t i = 0; i < hidden; ++i)
      out[i] = dot(&(*w.outProj)[i * dInner], y.data(), dInner);
    return out;
  }
};

TEST(ReferenceKernels, MambaMixerEqualsTheExplicitRecurrence) {
  const int64_t hidden = 6, dInner = 8, dState = 4, width = 4, dtRank = 3,
                seq = 7;
  std::mt19937 rng(5);
  Tensor<double> inProj = randomTensor({2 * dInner, hidden}, rng, 0.5);
  Tensor<double> conv = randomTensor({dInner, 1, width}, rng, 0.5);
  Tensor<double> convBias = randomTensor({dInner}, rng, 0.1);
  Tensor<double> xProj = randomTensor({dtRank + 2 * dState, dInner}, rng, 0.5);
  Tensor<double> dtNorm = randomTensor({dtRank}, rng, 0.1, 1.0);
  Tensor<double> bNorm = randomTensor({dState}, rng, 0.1, 1.0);
  Tensor<double> cNorm = randomTensor({dState}, rng, 0.1, 1.0);
  Tensor<double> dtProj = randomTensor({dInner, dtRank}, rng, 0.5);
  Tensor<double> dtBias = randomTensor({dInner}, rng, 0.5, -3.0);
  Tensor<double> aLog({dInner, dState});
  for (int64_t c = 0; c < dInner; ++c)
    for (int64_t n = 0; n < dState; ++n)
      aLog[c * dState + n] = std::log(double(n + 1));
  Tensor<double> D = randomTensor({dInner}, rng, 0.1, 1.0);
  Tensor<double> outProj = randomTensor({hidden, dInner}, rng, 0.5);
  MambaWeights<double> w{&inProj, nullptr, &conv,    &convBias, &xProj,
                         &dtNorm, &bNorm,  &cNorm,   &dtProj,   &dtBias,
                         &aLog,   &D,      &outProj, nullptr};
  Tensor<double> x = randomTensor({1, seq, hidden}, rng);

  SteppedMamba stepped(w, hidden);
  std::vector<std::vector<double>> expected;
  for (int64_t t = 0; t < seq; ++t)
    expected.push_back(stepped.step(&x[t * hidden]));

  // Prefill: the whole sequence from zero states.
  Tensor<double> conv0({1, dInner, width - 1}), ssm0({1, dInner, dState});
  auto [out, convState, ssmState] = mambaMixer(x, conv0, ssm0, w, 1e-6);
  for (int64_t t = 0; t < seq; ++t)
    for (int64_t i = 0; i < hidden; ++i)
      EXPECT_NEAR(out[t * hidden + i], expected[t][i], 1e-12)
          << "prefill t=" << t;
  for (int64_t i = 0; i < dInner * dState; ++i)
    EXPECT_NEAR(ssmState[i], stepped.h[i], 1e-12);

  // Decode: 5 tokens of prefill, then 2 single-token steps with the state.
  Tensor<double> x5(
      {1, 5, hidden},
      std::vector<double>(x.data.begin(), x.data.begin() + 5 * hidden));
  auto [o5, c5, s5] = mambaMixer(x5, conv0, ssm0, w, 1e-6);
  Tensor<double> cPrev = c5, sPrev = s5;
  for (int64_t t = 5; t < seq; ++t) {
    Tensor<double> x1({1, 1, hidden},
                      std::vector<double>(x.data.begin() + t * hidden,
                                          x.data.begin() + (t + 1) * hidden));
    auto [o1, c1, s1] = mambaMixer(x1, cPrev, sPrev, w, 1e-6);
    for (int64_t i = 0; i < hidden; ++i)
      EXPECT_NEAR(o1[i], expected[t][i], 1e-12) << "decode t=" << t;
    cPrev = c1;
    sPrev = s1;
  }
}

TEST(ReferenceKernels, FloatAndDoubleAgree) {
  std::mt19937 rng(9);
  Tensor<double> x = randomTensor({2, 3, 8}, rng), w = randomTensor({8}, rng);
  Tensor<float> xf(x.shape), wf(w.shape);
  for (int64_t i = 0; i < x.numel(); ++i)
    xf[i] = float(x[i]);
  for (int64_t i = 0; i < w.numel(); ++i)
    wf[i] = float(w[i]);
  Tensor<double> y = rmsNorm(x, w, 1e-6);
  Tensor<float> yf = rmsNorm(xf, wf, 1e-6);
  for (int64_t i = 0; i < y.numel(); ++i)
    EXPECT_NEAR(yf[i], y[i], 1e-5 * std::max(1.0, std::abs(y[i])));
}

} // namespace

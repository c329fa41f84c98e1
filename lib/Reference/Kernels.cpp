//===- Kernels.cpp - Reference semantics of the jamba ops -----------------===//
//
// Part of jamba-mlir. Straightforward loops, written for clarity, not speed.
//
//===----------------------------------------------------------------------===//

#include "jamba/Reference/Kernels.h"

#include "jamba/Checkpoint/SafeTensors.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <functional>
#include <sstream>

using namespace jamba::ref;

std::string jamba::ref::formatShape(const std::vector<int64_t> &shape) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < shape.size(); ++i)
    os << (i ? ", " : "") << shape[i];
  os << "]";
  return os.str();
}

//===----------------------------------------------------------------------===//
// Primitives
//===----------------------------------------------------------------------===//

template <typename T>
Tensor<T> jamba::ref::linear(const Tensor<T> &x, const Tensor<T> &w,
                             const Tensor<T> *scale, const Tensor<T> *bias,
                             GemmInputs inputs) {
  const int64_t n = w.dim(0), k = w.dim(1), rows = x.numel() / k;
  std::vector<int64_t> shape = x.shape;
  shape.back() = n;
  Tensor<T> y(shape);
  const bool roundInput = inputs == GemmInputs::BF16 && !scale;
  std::vector<T> rounded(roundInput ? k : 0);
  for (int64_t r = 0; r < rows; ++r) {
    const T *xr = &x[r * k];
    if (roundInput) {
      for (int64_t i = 0; i < k; ++i)
        rounded[i] = static_cast<T>(::jamba::ckpt::bf16ToF32(
            ::jamba::ckpt::f32ToBf16(static_cast<float>(xr[i]))));
      xr = rounded.data();
    }
    for (int64_t j = 0; j < n; ++j) {
      const T *wj = &w[j * k];
      T acc = 0;
      for (int64_t i = 0; i < k; ++i)
        acc += xr[i] * wj[i];
      // ExpertsInt8: the scale is applied once, after the K loop.
      if (scale)
        acc *= (*scale)[j];
      if (bias)
        acc += (*bias)[j];
      y[r * n + j] = acc;
    }
  }
  return y;
}

template <typename T>
Tensor<T> jamba::ref::rmsNorm(const Tensor<T> &x, const Tensor<T> &weight,
                              double eps) {
  const int64_t n = x.dim(-1), rows = x.numel() / n;
  Tensor<T> y(x.shape);
  for (int64_t r = 0; r < rows; ++r) {
    T sumSq = 0;
    for (int64_t i = 0; i < n; ++i)
      sumSq += x[r * n + i] * x[r * n + i];
    T inv = T(1) / std::sqrt(sumSq / T(n) + T(eps));
    for (int64_t i = 0; i < n; ++i)
      y[r * n + i] = weight[i] * (x[r * n + i] * inv);
  }
  return y;
}

template <typename T>
std::pair<Tensor<T>, Tensor<T>>
jamba::ref::causalConv1d(const Tensor<T> &x, const Tensor<T> &w,
                         const Tensor<T> *bias, const Tensor<T> &state,
                         bool applySilu) {
  const int64_t batch = x.dim(0), seq = x.dim(1), channels = x.dim(2),
                width = w.dim(1), past = width - 1;
  Tensor<T> y(x.shape), newState(state.shape);
  std::vector<T> ext(past + seq);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t c = 0; c < channels; ++c) {
      // The extended input: the K-1 cached inputs, then this call's inputs.
      for (int64_t j = 0; j < past; ++j)
        ext[j] = state[(b * channels + c) * past + j];
      for (int64_t t = 0; t < seq; ++t)
        ext[past + t] = x[(b * seq + t) * channels + c];
      for (int64_t t = 0; t < seq; ++t) {
        // w[c, K-1] multiplies the current input ext[past + t].
        T acc = bias ? (*bias)[c] : T(0);
        for (int64_t j = 0; j < width; ++j)
          acc += w[c * width + j] * ext[t + j];
        y[(b * seq + t) * channels + c] = applySilu ? silu(acc) : acc;
      }
      for (int64_t j = 0; j < past; ++j)
        newState[(b * channels + c) * past + j] = ext[seq + j];
    }
  }
  return {std::move(y), std::move(newState)};
}

template <typename T>
std::pair<Tensor<T>, Tensor<T>>
jamba::ref::selectiveScan(const ScanOperands<T> &ops) {
  const Tensor<T> &u = *ops.u, &delta = *ops.delta, &A = *ops.A, &B = *ops.B,
                  &C = *ops.C;
  const int64_t batch = u.dim(0), seq = u.dim(1), dInner = u.dim(2),
                dState = A.dim(1);
  Tensor<T> y(u.shape), last({batch, dInner, dState});
  std::vector<T> h(dState);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t c = 0; c < dInner; ++c) {
      for (int64_t n = 0; n < dState; ++n)
        h[n] = ops.initState ? (*ops.initState)[(b * dInner + c) * dState + n]
                             : T(0);
      for (int64_t t = 0; t < seq; ++t) {
        const int64_t btc = (b * seq + t) * dInner + c;
        const int64_t btn = (b * seq + t) * dState;
        T d = delta[btc] + (ops.deltaBias ? (*ops.deltaBias)[c] : T(0));
        if (ops.deltaSoftplus)
          d = softplus(d);
        const T uv = u[btc];
        T acc = 0;
        for (int64_t n = 0; n < dState; ++n) {
          h[n] = std::exp(d * A[c * dState + n]) * h[n] + d * B[btn + n] * uv;
          acc += C[btn + n] * h[n];
        }
        if (ops.D)
          acc += (*ops.D)[c] * uv;
        if (ops.z)
          acc *= silu((*ops.z)[btc]);
        y[btc] = acc;
      }
      for (int64_t n = 0; n < dState; ++n)
        last[(b * dInner + c) * dState + n] = h[n];
    }
  }
  return {std::move(y), std::move(last)};
}

/// The routing margin of the token whose router logits are `l[0, experts)`
/// (minRoutingMargins); `sorted` is scratch of `experts` entries.
template <typename T>
static double routingMargin(const T *l, int64_t experts, int64_t k,
                            std::vector<double> &sorted) {
  double scale = 0;
  for (int64_t e = 0; e < experts; ++e) {
    sorted[e] = static_cast<double>(l[e]);
    scale = std::max(scale, std::abs(sorted[e]));
  }
  std::nth_element(sorted.begin(), sorted.begin() + k, sorted.end(),
                   std::greater<double>());
  // sorted[k] is the (k+1)-th largest; the k-th is the smallest before it.
  double kth = *std::min_element(sorted.begin(), sorted.begin() + k);
  return scale > 0 ? (kth - sorted[k]) / scale : 0;
}

template <typename T>
void jamba::ref::minRoutingMargins(const Tensor<T> &logits, int64_t k,
                                   std::vector<double> &margins) {
  const int64_t experts = logits.dim(-1), tokens = logits.numel() / experts;
  if (k >= experts)
    return;
  std::vector<double> sorted(experts);
  for (int64_t t = 0; t < tokens; ++t)
    margins[t] = std::min(
        margins[t], routingMargin(&logits[t * experts], experts, k, sorted));
}

template <typename T>
std::pair<Tensor<T>, Tensor<T>>
jamba::ref::routerTopK(const Tensor<T> &logits, int64_t k, bool normalize,
                       const std::vector<int64_t> &swapRows,
                       std::vector<RoutingSwapMade> *made) {
  const int64_t experts = logits.dim(-1), rows = logits.numel() / experts;
  std::vector<int64_t> shape = logits.shape;
  shape.back() = k;
  Tensor<T> weights(shape), indices(shape);
  std::vector<T> p(experts);
  std::vector<bool> taken(experts);
  std::vector<double> sorted(experts);
  for (int64_t r = 0; r < rows; ++r) {
    const T *l = &logits[r * experts];
    // Softmax over all experts (max-subtracted for range).
    T maxLogit = *std::max_element(l, l + experts), sum = 0;
    for (int64_t e = 0; e < experts; ++e)
      sum += (p[e] = std::exp(l[e] - maxLogit));
    for (int64_t e = 0; e < experts; ++e)
      p[e] /= sum;
    // Top-k by repeated selection; strict '>' keeps the lower index on ties.
    // A swapped row selects k + 1 times and keeps the last in place of the
    // k-th.
    const bool swap = k < experts && std::find(swapRows.begin(), swapRows.end(),
                                               r) != swapRows.end();
    std::fill(taken.begin(), taken.end(), false);
    T picked = 0;
    for (int64_t j = 0; j < k + (swap ? 1 : 0); ++j) {
      int64_t best = -1;
      for (int64_t e = 0; e < experts; ++e)
        if (!taken[e] && (best < 0 || p[e] > p[best]))
          best = e;
      taken[best] = true;
      const int64_t slot = std::min(j, k - 1);
      if (j == k) {
        if (made)
          made->push_back({r, static_cast<int64_t>(indices[r * k + slot]), best,
                           routingMargin(l, experts, k, sorted)});
        picked -= weights[r * k + slot];
      }
      weights[r * k + slot] = p[best];
      indices[r * k + slot] = T(best);
      picked += p[best];
    }
    if (normalize)
      for (int64_t j = 0; j < k; ++j)
        weights[r * k + j] /= picked;
  }
  return {std::move(weights), std::move(indices)};
}

template <typename T>
Tensor<T>
jamba::ref::expertGemm(const Tensor<T> &x, const Tensor<T> &w,
                       const Tensor<T> *scale, const Tensor<T> &indices,
                       const Tensor<T> *routeWeights,
                       const Tensor<T> *expertOffset, GemmInputs inputs) {
  const int64_t slots = indices.dim(-1), tokens = indices.numel() / slots,
                n = w.dim(1), k = w.dim(2), experts = w.dim(0);
  // Expert parallelism: this weight holds experts offset .. offset + E - 1;
  // a slot routed elsewhere gives a zero row.
  const int64_t offset =
      expertOffset ? static_cast<int64_t>((*expertOffset)[0]) : 0;
  const bool perSlot = x.rank() == indices.rank() + 1;
  std::vector<int64_t> shape = indices.shape;
  shape.push_back(n);
  Tensor<T> y(shape);
  std::vector<T> rounded(inputs == GemmInputs::BF16 ? k : 0);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t j = 0; j < slots; ++j) {
      const int64_t e = static_cast<int64_t>(indices[t * slots + j]) - offset;
      if (expertOffset && (e < 0 || e >= experts))
        continue; // y is zero-initialised
      const T *xr = perSlot ? &x[(t * slots + j) * k] : &x[t * k];
      if (inputs == GemmInputs::BF16) {
        for (int64_t i = 0; i < k; ++i)
          rounded[i] = static_cast<T>(::jamba::ckpt::bf16ToF32(
              ::jamba::ckpt::f32ToBf16(static_cast<float>(xr[i]))));
        xr = rounded.data();
      }
      for (int64_t r = 0; r < n; ++r) {
        const T *wr = &w[(e * n + r) * k];
        T acc = 0;
        for (int64_t i = 0; i < k; ++i)
          acc += wr[i] * xr[i];
        if (scale)
          acc *= (*scale)[e * n + r];
        if (routeWeights)
          acc *= (*routeWeights)[t * slots + j];
        y[(t * slots + j) * n + r] = acc;
      }
    }
  }
  return y;
}

template <typename T> Tensor<T> jamba::ref::argmax(const Tensor<T> &logits) {
  const int64_t width = logits.dim(-1),
                rows = width == 0 ? 0 : logits.numel() / width;
  Tensor<T> ids(
      std::vector<int64_t>(logits.shape.begin(), logits.shape.end() - 1),
      T(-1));
  for (int64_t r = 0; r < rows; ++r) {
    const T *row = logits.data.data() + r * width;
    int64_t best = 0;
    bool nan = false;
    for (int64_t v = 0; v < width && !nan; ++v) {
      nan = std::isnan(row[v]);
      if (row[v] > row[best])
        best = v;
    }
    ids[r] = nan || row[best] == -INFINITY ? T(-1) : T(best);
  }
  return ids;
}

template <typename T> Tensor<T> jamba::ref::combineSlots(const Tensor<T> &x) {
  const int64_t n = x.dim(-1), slots = x.dim(-2),
                tokens = x.numel() / (slots * n);
  std::vector<int64_t> shape = x.shape;
  shape.erase(shape.end() - 2);
  Tensor<T> y(shape);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t j = 0; j < slots; ++j)
      for (int64_t i = 0; i < n; ++i)
        y[t * n + i] += x[(t * slots + j) * n + i];
  return y;
}

template <typename T>
Tensor<T> jamba::ref::dequant(const Tensor<T> &q, const Tensor<T> &scale) {
  const int64_t k = q.dim(-1);
  Tensor<T> y(q.shape);
  for (int64_t i = 0; i < q.numel(); ++i)
    y[i] = scale[i / k] * q[i];
  return y;
}

template <typename T>
Tensor<T> jamba::ref::swiglu(const Tensor<T> &gate, const Tensor<T> &up) {
  Tensor<T> y(gate.shape);
  for (int64_t i = 0; i < gate.numel(); ++i)
    y[i] = silu(gate[i]) * up[i];
  return y;
}

template <typename T>
Tensor<T> jamba::ref::slice(const Tensor<T> &source,
                            const std::vector<int64_t> &offsets,
                            const std::vector<int64_t> &sizes,
                            const std::vector<int64_t> &strides) {
  Tensor<T> y(sizes);
  const int64_t rank = source.rank();
  std::vector<int64_t> index(rank, 0);
  for (int64_t i = 0; i < y.numel(); ++i) {
    // Row-major source offset of the current multi-index.
    int64_t flat = 0;
    for (int64_t d = 0; d < rank; ++d)
      flat = flat * source.dim(d) + offsets[d] + index[d] * strides[d];
    y[i] = source[flat];
    for (int64_t d = rank - 1; d >= 0; --d) {
      if (++index[d] < sizes[d])
        break;
      index[d] = 0;
    }
  }
  return y;
}

template <typename T>
Tensor<T> jamba::ref::add(const Tensor<T> &a, const Tensor<T> &b) {
  Tensor<T> y(a.shape);
  for (int64_t i = 0; i < a.numel(); ++i)
    y[i] = a[i] + b[i];
  return y;
}

//===----------------------------------------------------------------------===//
// Layer ops
//===----------------------------------------------------------------------===//

template <typename T>
Tensor<T> jamba::ref::embedding(const Tensor<T> &table, const Tensor<T> &ids) {
  const int64_t hidden = table.dim(1);
  std::vector<int64_t> shape = ids.shape;
  shape.push_back(hidden);
  Tensor<T> y(shape);
  for (int64_t i = 0; i < ids.numel(); ++i) {
    const int64_t id = static_cast<int64_t>(ids[i]);
    std::copy_n(&table[id * hidden], hidden, &y[i * hidden]);
  }
  return y;
}

/// Copies channels [from, from + count) of the last dimension.
template <typename T>
static Tensor<T> sliceLast(const Tensor<T> &x, int64_t from, int64_t count) {
  const int64_t n = x.dim(-1), rows = x.numel() / n;
  std::vector<int64_t> shape = x.shape;
  shape.back() = count;
  Tensor<T> y(shape);
  for (int64_t r = 0; r < rows; ++r)
    std::copy_n(&x[r * n + from], count, &y[r * count]);
  return y;
}

template <typename T>
std::tuple<Tensor<T>, Tensor<T>, Tensor<T>>
jamba::ref::mambaMixer(const Tensor<T> &x, const Tensor<T> &convState,
                       const Tensor<T> &ssmState, const MambaWeights<T> &w,
                       double eps, GemmInputs inputs) {
  const int64_t dInner = w.conv->dim(0), width = w.conv->dim(2),
                dState = w.aLog->dim(1), dtRank = w.dtProj->dim(1);
  // 1. in_proj, split into x (first d_inner channels) and the gate z.
  Tensor<T> xz = linear<T>(x, *w.inProj, nullptr, w.inProjBias, inputs);
  Tensor<T> xs = sliceLast(xz, 0, dInner), z = sliceLast(xz, dInner, dInner);
  // 3. Causal depthwise conv1d + SiLU, continuing from the conv state.
  Tensor<T> convW({dInner, width}, w.conv->data);
  auto [xc, newConv] = causalConv1d(xs, convW, w.convBias, convState, true);
  // 4-5. x_proj split into dt, B, C (in this order), each RMS-normalised.
  Tensor<T> xdbl = linear<T>(xc, *w.xProj, nullptr, nullptr, inputs);
  Tensor<T> dt = rmsNorm<T>(sliceLast(xdbl, 0, dtRank), *w.dtNorm, eps);
  Tensor<T> B = rmsNorm<T>(sliceLast(xdbl, dtRank, dState), *w.bNorm, eps);
  Tensor<T> C =
      rmsNorm<T>(sliceLast(xdbl, dtRank + dState, dState), *w.cNorm, eps);
  // 6. dt_proj without its bias: the scan adds it once, before softplus.
  Tensor<T> delta = linear<T>(dt, *w.dtProj, nullptr, nullptr, inputs);
  // 7. A = -exp(A_log).
  Tensor<T> A(w.aLog->shape);
  for (int64_t i = 0; i < A.numel(); ++i)
    A[i] = -std::exp((*w.aLog)[i]);
  // 8. The selective scan with skip D and gate SiLU(z).
  ScanOperands<T> scan{&xc, &delta, &A, &B, &C};
  scan.D = w.D;
  scan.z = &z;
  scan.deltaBias = w.dtProjBias;
  scan.initState = &ssmState;
  scan.deltaSoftplus = true;
  auto [y, newSsm] = selectiveScan(scan);
  // 9. out_proj.
  Tensor<T> out = linear<T>(y, *w.outProj, nullptr, w.outProjBias, inputs);
  return {std::move(out), std::move(newConv), std::move(newSsm)};
}

template <typename T>
std::tuple<Tensor<T>, Tensor<T>, Tensor<T>>
jamba::ref::cachedAttention(const Tensor<T> &q, const Tensor<T> &k,
                            const Tensor<T> &v, const Tensor<T> &kCache,
                            const Tensor<T> &vCache, const Tensor<T> &cacheLen,
                            int64_t heads, int64_t kvHeads) {
  const int64_t batch = q.dim(0), seq = q.dim(1), headDim = kCache.dim(3),
                capacity = kCache.dim(2), group = heads / kvHeads;

  // Append the new keys and values (before head repetition) to the caches.
  Tensor<T> kc = kCache, vc = vCache;
  auto cacheAt = [&](int64_t b, int64_t g, int64_t pos) {
    return ((b * kvHeads + g) * capacity + pos) * headDim;
  };
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t past = static_cast<int64_t>(cacheLen[b]);
    assert(past >= 0 && past + seq <= capacity &&
           "cachedAttention: cacheLen[b] + seq exceeds the cache capacity");
    for (int64_t s = 0; s < seq; ++s)
      for (int64_t g = 0; g < kvHeads; ++g)
        for (int64_t d = 0; d < headDim; ++d) {
          const int64_t src =
              (b * seq + s) * kvHeads * headDim + g * headDim + d;
          kc[cacheAt(b, g, past + s) + d] = k[src];
          vc[cacheAt(b, g, past + s) + d] = v[src];
        }
  }

  // No positional encoding: order reaches attention only through the mask.
  const T scale = T(1) / std::sqrt(T(headDim));
  Tensor<T> o({batch, seq, heads * headDim});
  std::vector<T> p;
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t past = static_cast<int64_t>(cacheLen[b]);
    for (int64_t s = 0; s < seq; ++s) {
      const int64_t pos = past + s; // Sees keys 0..pos.
      p.assign(pos + 1, T(0));
      for (int64_t h = 0; h < heads; ++h) {
        const int64_t g = h / group;
        const T *qv = &q[((b * seq + s) * heads + h) * headDim];
        T maxScore = -INFINITY, sum = 0;
        for (int64_t j = 0; j <= pos; ++j) {
          T dot = 0;
          for (int64_t d = 0; d < headDim; ++d)
            dot += qv[d] * kc[cacheAt(b, g, j) + d];
          p[j] = dot * scale;
          maxScore = std::max(maxScore, p[j]);
        }
        for (int64_t j = 0; j <= pos; ++j)
          sum += (p[j] = std::exp(p[j] - maxScore));
        T *ov = &o[((b * seq + s) * heads + h) * headDim];
        for (int64_t j = 0; j <= pos; ++j)
          for (int64_t d = 0; d < headDim; ++d)
            ov[d] += p[j] / sum * vc[cacheAt(b, g, j) + d];
      }
    }
  }
  return {std::move(o), std::move(kc), std::move(vc)};
}

template <typename T>
std::tuple<Tensor<T>, Tensor<T>, Tensor<T>>
jamba::ref::attention(const Tensor<T> &x, const Tensor<T> &wq,
                      const Tensor<T> &wk, const Tensor<T> &wv,
                      const Tensor<T> &wo, const Tensor<T> &kCache,
                      const Tensor<T> &vCache, const Tensor<T> &cacheLen,
                      int64_t heads, int64_t kvHeads, GemmInputs inputs) {
  Tensor<T> q = linear<T>(x, wq, nullptr, nullptr, inputs);
  Tensor<T> k = linear<T>(x, wk, nullptr, nullptr, inputs);
  Tensor<T> v = linear<T>(x, wv, nullptr, nullptr, inputs);
  auto [o, kc, vc] =
      cachedAttention(q, k, v, kCache, vCache, cacheLen, heads, kvHeads);
  Tensor<T> out = linear<T>(o, wo, nullptr, nullptr, inputs);
  return {std::move(out), std::move(kc), std::move(vc)};
}

template <typename T>
Tensor<T>
jamba::ref::moe(const Tensor<T> &x, const Tensor<T> &router,
                const Tensor<T> &gate, const Tensor<T> &up,
                const Tensor<T> &down, int64_t topK, bool normalize,
                GemmInputs inputs, std::vector<double> *routingMargins,
                GemmInputs expertInputs, const std::vector<int64_t> &swapRows,
                std::vector<RoutingSwapMade> *made) {
  const int64_t hidden = x.dim(-1), tokens = x.numel() / hidden;
  Tensor<T> flat({tokens, hidden}, x.data);
  Tensor<T> logits = linear<T>(flat, router, nullptr, nullptr, inputs);
  auto [weights, indices] = routerTopK(logits, topK, normalize, swapRows, made);
  if (routingMargins)
    minRoutingMargins(logits, topK, *routingMargins);
  Tensor<T> g = expertGemm<T>(flat, gate, nullptr, indices, nullptr, nullptr,
                              expertInputs);
  Tensor<T> u =
      expertGemm<T>(flat, up, nullptr, indices, nullptr, nullptr, expertInputs);
  Tensor<T> a = swiglu(g, u);
  // The routing weight is applied in the down projection's epilogue.
  Tensor<T> d =
      expertGemm<T>(a, down, nullptr, indices, &weights, nullptr, expertInputs);
  Tensor<T> y = combineSlots(d);
  y.shape = x.shape;
  return y;
}

template <typename T>
Tensor<T> jamba::ref::mlp(const Tensor<T> &x, const Tensor<T> &gate,
                          const Tensor<T> &up, const Tensor<T> &down,
                          GemmInputs inputs) {
  return linear<T>(swiglu(linear<T>(x, gate, nullptr, nullptr, inputs),
                          linear<T>(x, up, nullptr, nullptr, inputs)),
                   down, nullptr, nullptr, inputs);
}

template <typename T>
Tensor<T> jamba::ref::lmHead(const Tensor<T> &x, const Tensor<T> &w,
                             int64_t keep, GemmInputs inputs) {
  const int64_t batch = x.dim(0), seq = x.dim(1), hidden = x.dim(2);
  const int64_t positions = keep == 0 ? seq : keep;
  Tensor<T> last({batch, positions, hidden});
  for (int64_t b = 0; b < batch; ++b)
    std::copy_n(&x[(b * seq + seq - positions) * hidden], positions * hidden,
                &last[b * positions * hidden]);
  return linear<T>(last, w, nullptr, nullptr, inputs);
}

//===----------------------------------------------------------------------===//
// Instantiations
//===----------------------------------------------------------------------===//

#define JAMBA_REF_INSTANTIATE(T)                                               \
  template Tensor<T> jamba::ref::linear(const Tensor<T> &, const Tensor<T> &,  \
                                        const Tensor<T> *, const Tensor<T> *,  \
                                        GemmInputs);                           \
  template Tensor<T> jamba::ref::rmsNorm(const Tensor<T> &, const Tensor<T> &, \
                                         double);                              \
  template std::pair<Tensor<T>, Tensor<T>> jamba::ref::causalConv1d(           \
      const Tensor<T> &, const Tensor<T> &, const Tensor<T> *,                 \
      const Tensor<T> &, bool);                                                \
  template std::pair<Tensor<T>, Tensor<T>> jamba::ref::selectiveScan(          \
      const ScanOperands<T> &);                                                \
  template std::pair<Tensor<T>, Tensor<T>> jamba::ref::routerTopK(             \
      const Tensor<T> &, int64_t, bool, const std::vector<int64_t> &,          \
      std::vector<RoutingSwapMade> *);                                         \
  template void jamba::ref::minRoutingMargins(const Tensor<T> &, int64_t,      \
                                              std::vector<double> &);          \
  template Tensor<T> jamba::ref::expertGemm(                                   \
      const Tensor<T> &, const Tensor<T> &, const Tensor<T> *,                 \
      const Tensor<T> &, const Tensor<T> *, const Tensor<T> *, GemmInputs);    \
  template Tensor<T> jamba::ref::argmax(const Tensor<T> &);                    \
  template Tensor<T> jamba::ref::dequant(const Tensor<T> &,                    \
                                         const Tensor<T> &);                   \
  template Tensor<T> jamba::ref::swiglu(const Tensor<T> &, const Tensor<T> &); \
  template Tensor<T> jamba::ref::slice(                                        \
      const Tensor<T> &, const std::vector<int64_t> &,                         \
      const std::vector<int64_t> &, const std::vector<int64_t> &);             \
  template Tensor<T> jamba::ref::add(const Tensor<T> &, const Tensor<T> &);    \
  template Tensor<T> jamba::ref::embedding(const Tensor<T> &,                  \
                                           const Tensor<T> &);                 \
  template std::tuple<Tensor<T>, Tensor<T>, Tensor<T>> jamba::ref::mambaMixer( \
      const Tensor<T> &, const Tensor<T> &, const Tensor<T> &,                 \
      const MambaWeights<T> &, double, GemmInputs);                            \
  template std::tuple<Tensor<T>, Tensor<T>, Tensor<T>>                         \
  jamba::ref::cachedAttention(const Tensor<T> &, const Tensor<T> &,            \
                              const Tensor<T> &, const Tensor<T> &,            \
                              const Tensor<T> &, const Tensor<T> &, int64_t,   \
                              int64_t);                                        \
  template std::tuple<Tensor<T>, Tensor<T>, Tensor<T>> jamba::ref::attention(  \
      const Tensor<T> &, const Tensor<T> &, const Tensor<T> &,                 \
      const Tensor<T> &, const Tensor<T> &, const Tensor<T> &,                 \
      const Tensor<T> &, const Tensor<T> &, int64_t, int64_t, GemmInputs);     \
  template Tensor<T> jamba::ref::moe(                                          \
      const Tensor<T> &, const Tensor<T> &, const Tensor<T> &,                 \
      const Tensor<T> &, const Tensor<T> &, int64_t, bool, GemmInputs,         \
      std::vector<double> *, GemmInputs, const std::vector<int64_t> &,         \
      std::vector<RoutingSwapMade> *);                                         \
  template Tensor<T> jamba::ref::mlp(const Tensor<T> &, const Tensor<T> &,     \
                                     const Tensor<T> &, const Tensor<T> &,     \
                                     GemmInputs);                              \
  template Tensor<T> jamba::ref::lmHead(const Tensor<T> &, const Tensor<T> &,  \
                                        int64_t, GemmInputs);

JAMBA_REF_INSTANTIATE(float)
JAMBA_REF_INSTANTIATE(double)

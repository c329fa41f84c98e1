//===- Kernels.h - Reference semantics of the jamba ops ---------*- C++ -*-===//
//
// Part of jamba-mlir. One function per jamba op, written as straightforward
// loops in the element type T (float or double) so that they can be read
// against SPEC.md line by line. They are the numerical truth every backend is
// tested against (DESIGN.md section 3). The layer-level functions are
// composed from the primitive ones exactly as the ops decompose.
//
// Shapes are assumed valid: the interpreter checks them (against the IR types
// and between operands) before calling a kernel.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_REFERENCE_KERNELS_H
#define JAMBA_REFERENCE_KERNELS_H

#include "jamba/Reference/Tensor.h"

#include <cmath>
#include <tuple>
#include <utility>

namespace jamba::ref {

template <typename T> inline T silu(T x) { return x / (T(1) + std::exp(-x)); }

/// log(1 + e^x), linear above 20 like torch.nn.functional.softplus and the
/// mamba_ssm kernels.
template <typename T> inline T softplus(T x) {
  return x > T(20) ? x : std::log1p(std::exp(x));
}

//===----------------------------------------------------------------------===//
// Primitives
//===----------------------------------------------------------------------===//

/// How the input of a dense linear (one without an int8 scale) enters the
/// product. `Exact` multiplies it as it is (SPEC's f32 activations, the
/// default). `BF16` rounds it to bf16 (nearest even) first, as a GEMM on
/// bf16 operands does: PyTorch's bf16 Linear, and the CUDA backend's cuBLAS
/// GEMMs for bf16 weights, the only place where its activations are
/// rounded. With bf16 weights this reproduces that arithmetic up to the
/// order of summation, so the routers' top-k picks what the GPU picks at a
/// near-tie. The experts' GEMMs (expertGemm) keep their inputs unless told
/// otherwise (their own `inputs`: the CUDA backend's tensor-core expert GEMM
/// rounds them to bf16).
enum class GemmInputs { Exact, BF16 };

/// `result[..., n] = scale[n] * sum_k x[..., k] * w[n, k] + bias[n]`; `w` is
/// [N, K]. `scale` (int8 weights) and `bias` may be null. `inputs` applies
/// when `scale` is null.
template <typename T>
Tensor<T> linear(const Tensor<T> &x, const Tensor<T> &w, const Tensor<T> *scale,
                 const Tensor<T> *bias, GemmInputs inputs = GemmInputs::Exact);

/// RMSNorm over the last dimension (SPEC 1.5.3).
template <typename T>
Tensor<T> rmsNorm(const Tensor<T> &x, const Tensor<T> &weight, double eps);

/// Causal depthwise conv1d with state: x [B, S, D], w [D, K], bias [D] or
/// null, state [B, D, K-1] (oldest first). Returns {y, new_state}.
template <typename T>
std::pair<Tensor<T>, Tensor<T>>
causalConv1d(const Tensor<T> &x, const Tensor<T> &w, const Tensor<T> *bias,
             const Tensor<T> &state, bool applySilu);

/// Operands of selectiveScan; the optional ones may be null.
template <typename T> struct ScanOperands {
  const Tensor<T> *u, *delta, *A, *B, *C;
  const Tensor<T> *D = nullptr, *z = nullptr, *deltaBias = nullptr,
                  *initState = nullptr;
  bool deltaSoftplus = false;
};

/// The Mamba-1 selective scan, selective_scan_ref semantics (SPEC 1.6):
/// u, delta, z [B, S, Di]; A [Di, N]; B, C [B, S, N]; D, delta_bias [Di];
/// init_state [B, Di, N]. Returns {y [B, S, Di], final_state [B, Di, N]}.
template <typename T>
std::pair<Tensor<T>, Tensor<T>> selectiveScan(const ScanOperands<T> &ops);

/// A routing swap routerTopK made: token `row` went to expert `took`, its
/// (k+1)-th choice, instead of `left`, its k-th; `margin` is the token's
/// routing margin (minRoutingMargins).
struct RoutingSwapMade {
  int64_t row = 0, left = 0, took = 0;
  double margin = 0;
};

/// Softmax over the last dimension, then the top `k` (descending; ties go to
/// the lower index). Returns {weights, indices} of shape [..., k].
///
/// `swapRows` (a diagnosis aid) lists tokens (rows of the flattened leading
/// dims) whose k-th choice is replaced by their (k+1)-th, as rounding may
/// choose at a near-tie; each swap made is appended to `made` if given. No
/// swap when k equals the number of experts.
template <typename T>
std::pair<Tensor<T>, Tensor<T>>
routerTopK(const Tensor<T> &logits, int64_t k, bool normalize,
           const std::vector<int64_t> &swapRows = {},
           std::vector<RoutingSwapMade> *made = nullptr);

/// How close each token's top-k routing is to choosing other experts: per
/// token (the leading dims of `logits` [..., E], flattened), the gap between
/// its k-th and (k+1)-th largest logits over max_e |logit|. A perturbation
/// of the logits larger than that can swap an expert in or out. Each entry
/// of `margins` (one per token, for a caller collecting several layers)
/// becomes the smaller of itself and this layer's margin; k = E leaves
/// them. Precondition: margins.size() == tokens.
template <typename T>
void minRoutingMargins(const Tensor<T> &logits, int64_t k,
                       std::vector<double> &margins);

/// result[..., j, :] = rw[..., j] * scale[e] * (w[e] . x[..., (j,) :]) with
/// e = idx[..., j]; x is [..., K] or [..., k, K], w [E, N, K]; the result is
/// [..., k, N]. `inputs` BF16 rounds x to bf16 first (nearest even), as the
/// CUDA backend's tensor-core expert GEMM does.
template <typename T>
Tensor<T> expertGemm(const Tensor<T> &x, const Tensor<T> &w,
                     const Tensor<T> *scale, const Tensor<T> &indices,
                     const Tensor<T> *routeWeights,
                     const Tensor<T> *expertOffset = nullptr,
                     GemmInputs inputs = GemmInputs::Exact);

/// Greedy ids: per row of `logits` (the last dim), the index of its largest
/// value, the lowest index on ties, or -1 when the row holds a NaN or
/// only -inf values. The result has the leading dims of `logits`.
template <typename T> Tensor<T> argmax(const Tensor<T> &logits);

/// result[..., n] = sum_j x[..., j, n].
template <typename T> Tensor<T> combineSlots(const Tensor<T> &x);

/// result[..., n, k] = scale[..., n] * q[..., n, k].
template <typename T>
Tensor<T> dequant(const Tensor<T> &q, const Tensor<T> &scale);

/// SiLU(gate) * up.
template <typename T>
Tensor<T> swiglu(const Tensor<T> &gate, const Tensor<T> &up);

/// The strided slice source[offsets + i * strides] of shape `sizes`.
template <typename T>
Tensor<T> slice(const Tensor<T> &source, const std::vector<int64_t> &offsets,
                const std::vector<int64_t> &sizes,
                const std::vector<int64_t> &strides);

/// Elementwise a + b (same shapes).
template <typename T> Tensor<T> add(const Tensor<T> &a, const Tensor<T> &b);

//===----------------------------------------------------------------------===//
// Layer ops
//===----------------------------------------------------------------------===//

/// result[b, s, :] = table[ids[b, s], :].
template <typename T>
Tensor<T> embedding(const Tensor<T> &table, const Tensor<T> &ids);

/// The Mamba mixer's weights (checkpoint shapes; optional ones may be null).
template <typename T> struct MambaWeights {
  const Tensor<T> *inProj, *inProjBias, *conv, *convBias, *xProj, *dtNorm,
      *bNorm, *cNorm, *dtProj, *dtProjBias, *aLog, *D, *outProj, *outProjBias;
};

/// The Mamba mixer (SPEC 1.5.5, 1.5.6). Returns {out, conv_state, ssm_state}.
template <typename T>
std::tuple<Tensor<T>, Tensor<T>, Tensor<T>>
mambaMixer(const Tensor<T> &x, const Tensor<T> &convState,
           const Tensor<T> &ssmState, const MambaWeights<T> &w, double eps,
           GemmInputs inputs = GemmInputs::Exact);

/// The attention core: q [B, S, nH*hd] and the new k, v [B, S, nKV*hd] are
/// appended to the caches at cacheLen[b] and attended causally (SPEC 1.5.4).
/// Returns {heads concatenated [B, S, nH*hd], k_cache, v_cache}.
/// Precondition: 0 <= cacheLen[b] and cacheLen[b] + S <= the caches'
/// capacity (their dimension 2) for every b; the interpreter checks it
/// (checkIndices) before it calls this.
template <typename T>
std::tuple<Tensor<T>, Tensor<T>, Tensor<T>>
cachedAttention(const Tensor<T> &q, const Tensor<T> &k, const Tensor<T> &v,
                const Tensor<T> &kCache, const Tensor<T> &vCache,
                const Tensor<T> &cacheLen, int64_t heads, int64_t kvHeads);

/// Causal GQA attention with a KV cache (SPEC 1.5.4). `cacheLen[b]` tokens
/// are already cached for sequence b. Returns {out, k_cache, v_cache}.
template <typename T>
std::tuple<Tensor<T>, Tensor<T>, Tensor<T>>
attention(const Tensor<T> &x, const Tensor<T> &wq, const Tensor<T> &wk,
          const Tensor<T> &wv, const Tensor<T> &wo, const Tensor<T> &kCache,
          const Tensor<T> &vCache, const Tensor<T> &cacheLen, int64_t heads,
          int64_t kvHeads, GemmInputs inputs = GemmInputs::Exact);

/// Sparse MoE (SPEC 1.5.7), composed of router_topk, expert_gemm, swiglu.
/// `routingMargins`, if given, collects minRoutingMargins of the router.
/// `inputs` applies to the router, `expertInputs` to the experts' GEMMs.
/// `swapRows` and `made`: routerTopK's.
template <typename T>
Tensor<T> moe(const Tensor<T> &x, const Tensor<T> &router,
              const Tensor<T> &gate, const Tensor<T> &up, const Tensor<T> &down,
              int64_t topK, bool normalize,
              GemmInputs inputs = GemmInputs::Exact,
              std::vector<double> *routingMargins = nullptr,
              GemmInputs expertInputs = GemmInputs::Exact,
              const std::vector<int64_t> &swapRows = {},
              std::vector<RoutingSwapMade> *made = nullptr);

/// Dense SwiGLU MLP (SPEC 1.5.8).
template <typename T>
Tensor<T> mlp(const Tensor<T> &x, const Tensor<T> &gate, const Tensor<T> &up,
              const Tensor<T> &down, GemmInputs inputs = GemmInputs::Exact);

/// Logits of the last `keep` positions (all when 0): x [B, S, H], w [V, H].
template <typename T>
Tensor<T> lmHead(const Tensor<T> &x, const Tensor<T> &w, int64_t keep,
                 GemmInputs inputs = GemmInputs::Exact);

} // namespace jamba::ref

#endif // JAMBA_REFERENCE_KERNELS_H

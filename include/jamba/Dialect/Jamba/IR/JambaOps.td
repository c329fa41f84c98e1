//===- JambaOps.td - jamba dialect operations --------------*- tablegen -*-===//
//
// Part of jamba-mlir. SPEC.md (beside the repository, in shared/) says what
// each op computes; the section of SPEC.md is cited in every description.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_DIALECT_JAMBA_IR_JAMBAOPS_TD
#define JAMBA_DIALECT_JAMBA_IR_JAMBAOPS_TD

include "jamba/Dialect/Jamba/IR/JambaDialect.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/IR/OpBase.td"

//===----------------------------------------------------------------------===//
// Layer-level ops
//===----------------------------------------------------------------------===//

def Jamba_EmbeddingOp : Jamba_Op<"embedding", [Pure]> {
  let summary = "token embedding lookup";
  let description = [{
    Gathers rows of the embedding table: `result[b, s, :] = table[ids[b, s], :]`.
    No scaling and no positional embedding (SPEC 1.5.1). An id outside
    `[0, vocab)` is a runtime error of the executor.

    ```mlir
    %h = jamba.embedding %table, %ids
        : tensor<128x64xf32>, tensor<1x?xi32> -> tensor<1x?x64xf32>
    ```
  }];
  let arguments = (ins Jamba_FloatTensor:$table, Jamba_IndexTensor:$ids);
  let results = (outs Jamba_FloatTensor:$result);
  let assemblyFormat = [{
    $table `,` $ids attr-dict `:` type($table) `,` type($ids) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Jamba_RMSNormOp : Jamba_Op<"rms_norm",
    [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "Llama-style RMS normalisation over the last dimension";
  let description = [{
    `result = weight * cast(x * rsqrt(mean(x^2) + epsilon))`, statistics in
    f32 (SPEC 1.5.3). Used for the input, pre-FFN and final norms and for the
    Mamba dt/B/C norms.

    ```mlir
    %y = jamba.rms_norm %x, %w {epsilon = 1.0e-06 : f64}
        : tensor<1x?x64xf32>, tensor<64xf32>
    ```
  }];
  let arguments = (ins Jamba_FloatTensor:$input, Jamba_FloatTensor:$weight,
                       DefaultValuedAttr<F64Attr, "1.0e-6">:$epsilon);
  let results = (outs Jamba_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight attr-dict `:` type($input) `,` type($weight)
  }];
  let hasVerifier = 1;
}

def Jamba_MambaMixerOp : Jamba_Op<"mamba_mixer",
    [Pure, AttrSizedOperandSegments]> {
  let summary = "Mamba-1 mixer with Jamba's dt/B/C norms (SPEC 1.5.5, 1.5.6)";
  let description = [{
    The whole Mamba mixer of one layer on `input` `[batch, seq, hidden]`,
    continuing from `conv_state` `[batch, d_inner, d_conv - 1]` (the last
    pre-conv inputs, activation type) and `ssm_state`
    `[batch, d_inner, d_state]` (always f32). A fresh sequence passes zero
    states. Returns the mixer output and the updated states.

    Steps: `in_proj` (x then z), causal depthwise conv1d + SiLU, `x_proj`
    split into dt (R), B (N), C (N), RMSNorm of each, `dt_proj` + bias and
    softplus, the selective scan with `A = -exp(A_log)` and skip `D`, the
    SiLU(z) gate, `out_proj`. Weights keep their checkpoint shapes:
    `in_proj [2*d_inner, hidden]`, `conv1d [d_inner, 1, d_conv]`,
    `x_proj [R + 2N, d_inner]`, `dt_proj [d_inner, R]`, `A_log [d_inner, N]`,
    `D [d_inner]`, `out_proj [hidden, d_inner]`.

    `x_proj_all_reduce = g` (set by `jamba-shard` on a tensor-parallel
    model, whose d_inner is this rank's share) sums the x_proj product over
    the ranks (`jamba.all_reduce` with `group_size = g`; 0: all ranks)
    before the dt/B/C split: x_proj is then row-parallel (SPEC 1.9).

    ```mlir
    %out, %conv, %ssm = jamba.mamba_mixer %x, state(%cs, %ss)
        in_proj(%w_in) conv1d(%w_conv, %b_conv) x_proj(%w_x)
        norms(%n_dt, %n_b, %n_c) dt_proj(%w_dt, %b_dt) ssm(%a_log, %d)
        out_proj(%w_out) {epsilon = 1.0e-06 : f64}
        : (tensor<1x?x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>,
           tensor<256x64xf32>, tensor<128x1x4xf32>, tensor<128xf32>,
           tensor<24x128xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>,
           tensor<128x8xf32>, tensor<128xf32>, tensor<128x8xf32>,
           tensor<128xf32>, tensor<64x128xf32>)
        -> (tensor<1x?x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>)
    ```
  }];
  let arguments = (ins
    Jamba_FloatTensor:$input,
    Jamba_FloatTensor:$conv_state,
    RankedTensorOf<[F32]>:$ssm_state,
    Jamba_FloatTensor:$in_proj_weight,
    Optional<Jamba_FloatTensor>:$in_proj_bias,
    Jamba_FloatTensor:$conv_weight,
    Optional<Jamba_FloatTensor>:$conv_bias,
    Jamba_FloatTensor:$x_proj_weight,
    Jamba_FloatTensor:$dt_norm_weight,
    Jamba_FloatTensor:$b_norm_weight,
    Jamba_FloatTensor:$c_norm_weight,
    Jamba_FloatTensor:$dt_proj_weight,
    Jamba_FloatTensor:$dt_proj_bias,
    Jamba_FloatTensor:$A_log,
    Jamba_FloatTensor:$D,
    Jamba_FloatTensor:$out_proj_weight,
    Optional<Jamba_FloatTensor>:$out_proj_bias,
    DefaultValuedAttr<F64Attr, "1.0e-6">:$epsilon,
    OptionalAttr<ConfinedAttr<I64Attr, [IntNonNegative]>>:$x_proj_all_reduce);
  let results = (outs Jamba_FloatTensor:$result,
                      Jamba_FloatTensor:$new_conv_state,
                      RankedTensorOf<[F32]>:$new_ssm_state);
  let assemblyFormat = [{
    $input `,` `state` `(` $conv_state `,` $ssm_state `)`
    `in_proj` `(` $in_proj_weight (`,` $in_proj_bias^)? `)`
    `conv1d` `(` $conv_weight (`,` $conv_bias^)? `)`
    `x_proj` `(` $x_proj_weight `)`
    `norms` `(` $dt_norm_weight `,` $b_norm_weight `,` $c_norm_weight `)`
    `dt_proj` `(` $dt_proj_weight `,` $dt_proj_bias `)`
    `ssm` `(` $A_log `,` $D `)`
    `out_proj` `(` $out_proj_weight (`,` $out_proj_bias^)? `)`
    attr-dict `:` functional-type(operands, results)
  }];
  let extraClassDeclaration = [{
    int64_t getDInner() { return getConvWeight().getType().getDimSize(0); }
    int64_t getDState() { return getALog().getType().getDimSize(1); }
    int64_t getDConv() { return getConvWeight().getType().getDimSize(2); }
    int64_t getDtRank() { return getDtProjWeight().getType().getDimSize(1); }
  }];
  let hasVerifier = 1;
}

def Jamba_AttentionOp : Jamba_Op<"attention", [Pure]> {
  let summary = "causal grouped-query attention with a KV cache, no positional encoding";
  let description = [{
    Multi-head causal attention (SPEC 1.5.4) on `input` `[batch, seq, hidden]`.
    `q = x Wq^T`, `k = x Wk^T`, `v = x Wv^T` (no bias, no RoPE); query head `h`
    uses kv head `h / (num_heads / num_kv_heads)`. The new keys and values are
    written into the caches `[batch, num_kv_heads, capacity, head_dim]` at
    positions `cache_len[b] ...`; queries attend to cached positions
    `0 .. cache_len[b] + s` (causal). Softmax in f32, scale `head_dim^-1/2`.
    Returns the `o_proj` output and the updated caches.

    ```mlir
    %o, %k2, %v2 = jamba.attention %x, %wq, %wk, %wv, %wo,
        cache(%k, %v, %len) {num_heads = 4 : i64, num_kv_heads = 2 : i64}
        : (tensor<1x?x64xf32>, tensor<64x64xf32>, tensor<32x64xf32>,
           tensor<32x64xf32>, tensor<64x64xf32>, tensor<1x2x256x16xf32>,
           tensor<1x2x256x16xf32>, tensor<1xi64>)
        -> (tensor<1x?x64xf32>, tensor<1x2x256x16xf32>, tensor<1x2x256x16xf32>)
    ```
  }];
  let arguments = (ins
    Jamba_FloatTensor:$input,
    Jamba_FloatTensor:$q_weight,
    Jamba_FloatTensor:$k_weight,
    Jamba_FloatTensor:$v_weight,
    Jamba_FloatTensor:$o_weight,
    Jamba_FloatTensor:$k_cache,
    Jamba_FloatTensor:$v_cache,
    TensorRankOf<[I32, I64], [1]>:$cache_len,
    ConfinedAttr<I64Attr, [IntPositive]>:$num_heads,
    ConfinedAttr<I64Attr, [IntPositive]>:$num_kv_heads);
  let results = (outs Jamba_FloatTensor:$result,
                      Jamba_FloatTensor:$new_k_cache,
                      Jamba_FloatTensor:$new_v_cache);
  let assemblyFormat = [{
    $input `,` $q_weight `,` $k_weight `,` $v_weight `,` $o_weight `,`
    `cache` `(` $k_cache `,` $v_cache `,` $cache_len `)`
    attr-dict `:` functional-type(operands, results)
  }];
  let extraClassDeclaration = [{
    int64_t getHeadDim() {
      return getQWeight().getType().getDimSize(0) / getNumHeads();
    }
  }];
  let hasVerifier = 1;
}

def Jamba_MoEOp : Jamba_Op<"moe", [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "sparse mixture of experts: router softmax, top-k, SwiGLU experts";
  let description = [{
    `p = softmax(f32(x Wr^T))` over all experts, top-`top_k` (no
    renormalisation unless `normalize_top_k`), and
    `out = sum_j w_j * down_e(SiLU(gate_e x) * up_e x)` (SPEC 1.5.7). Expert
    weights are stacked over experts: `gate, up [E, I, H]`, `down [E, H, I]`.

    With `expert_offset` (`[1] i64`, set by `jamba-shard` for expert
    parallelism) the op holds only experts `offset .. offset + E_local - 1`
    of the router's E (`gate, up [E_local, I, H]`): a token's slot routed
    to another rank's expert contributes nothing here; the ranks' results
    are summed by a `jamba.all_reduce`.

    ```mlir
    %y = jamba.moe %x, %router, %gate, %up, %down {top_k = 2 : i64}
        : (tensor<1x?x64xf32>, tensor<4x64xf32>, tensor<4x128x64xf32>,
           tensor<4x128x64xf32>, tensor<4x64x128xf32>) -> tensor<1x?x64xf32>
    ```
  }];
  let arguments = (ins
    Jamba_FloatTensor:$input,
    Jamba_FloatTensor:$router_weight,
    Jamba_FloatTensor:$gate_weight,
    Jamba_FloatTensor:$up_weight,
    Jamba_FloatTensor:$down_weight,
    Optional<TensorRankOf<[I64], [1]>>:$expert_offset,
    ConfinedAttr<I64Attr, [IntPositive]>:$top_k,
    UnitAttr:$normalize_top_k);
  let results = (outs Jamba_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $router_weight `,` $gate_weight `,` $up_weight `,` $down_weight
    (`expert_offset` `(` $expert_offset^ `)`)?
    attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Jamba_MLPOp : Jamba_Op<"mlp", [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "dense SwiGLU MLP";
  let description = [{
    `out = W_down (SiLU(W_gate x) * (W_up x))`, no biases (SPEC 1.5.8).
    `gate, up [I, H]`, `down [H, I]`.

    ```mlir
    %y = jamba.mlp %x, %gate, %up, %down
        : (tensor<1x?x64xf32>, tensor<128x64xf32>, tensor<128x64xf32>,
           tensor<64x128xf32>) -> tensor<1x?x64xf32>
    ```
  }];
  let arguments = (ins Jamba_FloatTensor:$input,
                       Jamba_FloatTensor:$gate_weight,
                       Jamba_FloatTensor:$up_weight,
                       Jamba_FloatTensor:$down_weight);
  let results = (outs Jamba_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $gate_weight `,` $up_weight `,` $down_weight
    attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Jamba_LMHeadOp : Jamba_Op<"lm_head", [Pure]> {
  let summary = "vocabulary projection, optionally of the last positions only";
  let description = [{
    `logits = x W^T` over the last `num_logits_to_keep` positions of each
    sequence (all positions when it is 0), SPEC 1.5.2. `W [vocab, hidden]` is
    `lm_head.weight`, or the embedding table when the embeddings are tied.

    ```mlir
    %logits = jamba.lm_head %h, %w {num_logits_to_keep = 1 : i64}
        : tensor<1x?x64xf32>, tensor<128x64xf32> -> tensor<1x1x128xf32>
    ```
  }];
  let arguments = (ins Jamba_FloatTensor:$input, Jamba_FloatTensor:$weight,
                       DefaultValuedAttr<
                         ConfinedAttr<I64Attr, [IntNonNegative]>, "0">
                         :$num_logits_to_keep);
  let results = (outs Jamba_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight attr-dict `:` type($input) `,` type($weight)
    `->` type($result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Primitives
//===----------------------------------------------------------------------===//

def Jamba_CausalConv1dOp : Jamba_Op<"causal_conv1d",
    [Pure, AllTypesMatch<["input", "result"]>,
     AllTypesMatch<["state", "new_state"]>]> {
  let summary = "causal depthwise conv1d with state, optionally followed by SiLU";
  let description = [{
    Per channel `c` and time `t`:
    `y[b,t,c] = bias[c] + sum_j w[c,j] * x[b, t-(K-1)+j, c]`, where times
    before 0 read `state[b, c, :]` (the `K-1` previous pre-conv inputs, oldest
    first). With `silu`, `y = SiLU(y)`. `new_state` holds the last `K-1`
    inputs of the extended sequence (SPEC 1.5.5 step 3, 1.5.6).
    `input [B, S, D]`, `weight [D, K]`, `bias [D]`, `state [B, D, K-1]`.

    ```mlir
    %y, %st = jamba.causal_conv1d %x, %w bias(%b) state(%s) {silu}
        : (tensor<1x?x128xf32>, tensor<128x4xf32>, tensor<128xf32>,
           tensor<1x128x3xf32>) -> (tensor<1x?x128xf32>, tensor<1x128x3xf32>)
    ```
  }];
  let arguments = (ins Jamba_FloatTensor:$input, Jamba_FloatTensor:$weight,
                       Optional<Jamba_FloatTensor>:$bias,
                       Jamba_FloatTensor:$state, UnitAttr:$silu);
  let results = (outs Jamba_FloatTensor:$result,
                      Jamba_FloatTensor:$new_state);
  let assemblyFormat = [{
    $input `,` $weight (`bias` `(` $bias^ `)`)? `state` `(` $state `)`
    attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Jamba_SelectiveScanOp : Jamba_Op<"selective_scan",
    [Pure, AttrSizedOperandSegments, AllTypesMatch<["u", "result"]>]> {
  let summary = "Mamba-1 selective scan (selective_scan_ref semantics)";
  let description = [{
    For every batch `b` and channel `c` (one B/C group), in f32
    (SPEC 1.6, 1.5.5 step 8):

    ```
    d_t   = delta[b,t,c] + delta_bias[c];  if delta_softplus: d_t = softplus(d_t)
    h_t   = exp(d_t * A[c,:]) * h_{t-1} + d_t * B[b,t,:] * u[b,t,c]
    y_t   = <C[b,t,:], h_t> + D[c] * u[b,t,c]
    y_t  *= SiLU(z[b,t,c])              (when z is given)
    ```

    `h_0` is `init_state` or zero. Results: `y [B, S, Di]` (the type of `u`)
    and the last state `[B, Di, N]` in f32.

    ```mlir
    %y, %h = jamba.selective_scan %u, %delta, %A, %B, %C D(%D) z(%z)
        delta_bias(%db) init_state(%h0) {delta_softplus}
        : (tensor<1x?x128xf32>, tensor<1x?x128xf32>, tensor<128x8xf32>,
           tensor<1x?x8xf32>, tensor<1x?x8xf32>, tensor<128xf32>,
           tensor<1x?x128xf32>, tensor<128xf32>, tensor<1x128x8xf32>)
        -> (tensor<1x?x128xf32>, tensor<1x128x8xf32>)
    ```
  }];
  let arguments = (ins Jamba_FloatTensor:$u, Jamba_FloatTensor:$delta,
                       RankedTensorOf<[F32]>:$A, Jamba_FloatTensor:$B,
                       Jamba_FloatTensor:$C, Optional<Jamba_FloatTensor>:$D,
                       Optional<Jamba_FloatTensor>:$z,
                       Optional<Jamba_FloatTensor>:$delta_bias,
                       Optional<RankedTensorOf<[F32]>>:$init_state,
                       UnitAttr:$delta_softplus);
  let results = (outs Jamba_FloatTensor:$result,
                      RankedTensorOf<[F32]>:$final_state);
  let assemblyFormat = [{
    $u `,` $delta `,` $A `,` $B `,` $C (`D` `(` $D^ `)`)? (`z` `(` $z^ `)`)?
    (`delta_bias` `(` $delta_bias^ `)`)? (`init_state` `(` $init_state^ `)`)?
    attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Jamba_CachedAttentionOp : Jamba_Op<"cached_attention", [Pure]> {
  let summary = "causal GQA scaled dot-product attention over a KV cache";
  let description = [{
    The core of `jamba.attention` once its projections are split out
    (SPEC 1.5.4): `q [B, S, num_heads * hd]`, `k, v [B, S, num_kv_heads * hd]`
    (the new tokens' projections) are appended to the caches
    `[B, num_kv_heads, capacity, hd]` at positions `cache_len[b] ...`, and
    each query at absolute position `p` attends to cached positions `0..p`
    with `softmax(q . k * hd^-1/2)` in f32; query head `h` reads kv head
    `h / (num_heads / num_kv_heads)`. Returns the heads concatenated
    `[B, S, num_heads * hd]` and the updated caches.

    ```mlir
    %o, %k2, %v2 = jamba.cached_attention %q, %k, %v, cache(%kc, %vc, %len)
        {num_heads = 4 : i64, num_kv_heads = 2 : i64}
        : (tensor<1x?x64xf32>, tensor<1x?x32xf32>, tensor<1x?x32xf32>,
           tensor<1x2x256x16xf32>, tensor<1x2x256x16xf32>, tensor<1xi64>)
        -> (tensor<1x?x64xf32>, tensor<1x2x256x16xf32>, tensor<1x2x256x16xf32>)
    ```
  }];
  let arguments = (ins
    Jamba_FloatTensor:$query,
    Jamba_FloatTensor:$key,
    Jamba_FloatTensor:$value,
    Jamba_FloatTensor:$k_cache,
    Jamba_FloatTensor:$v_cache,
    TensorRankOf<[I32, I64], [1]>:$cache_len,
    ConfinedAttr<I64Attr, [IntPositive]>:$num_heads,
    ConfinedAttr<I64Attr, [IntPositive]>:$num_kv_heads);
  let results = (outs Jamba_FloatTensor:$result,
                      Jamba_FloatTensor:$new_k_cache,
                      Jamba_FloatTensor:$new_v_cache);
  let assemblyFormat = [{
    $query `,` $key `,` $value `,` `cache` `(` $k_cache `,` $v_cache `,`
    $cache_len `)` attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Jamba_RouterTopKOp : Jamba_Op<"router_topk", [Pure]> {
  let summary = "router softmax over all experts in f32, then top-k";
  let description = [{
    `p = softmax(f32(logits))` over the last dimension (all experts), then
    the `top_k` largest probabilities and their expert indices, in descending
    order (ties: lower index first). Weights are not renormalised unless
    `normalize` is set (SPEC 1.5.7, pitfalls 2 and 3).

    ```mlir
    %w, %idx = jamba.router_topk %logits {top_k = 2 : i64}
        : tensor<?x4xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
    ```
  }];
  let arguments = (ins Jamba_FloatTensor:$logits,
                       ConfinedAttr<I64Attr, [IntPositive]>:$top_k,
                       UnitAttr:$normalize);
  let results = (outs RankedTensorOf<[F32]>:$weights, Jamba_IndexTensor:$indices);
  let assemblyFormat = [{
    $logits attr-dict `:` type($logits) `->` type($weights) `,` type($indices)
  }];
  let hasVerifier = 1;
}

def Jamba_ArgmaxOp : Jamba_Op<"argmax", [Pure]> {
  let summary = "greedy ids: the index of each row's largest logit";
  let description = [{
    `ids[...] = argmax_v logits[..., v]` over the last dimension: the index
    of the row's largest value, the lowest index on ties (-0 and +0 are
    equal), and -1 when no id can be chosen: the row holds a NaN, or every
    value is -inf (SPEC 1.5.2's greedy choice; the runtime's sampling
    refuses such rows too).
    `jamba-greedy-ids` appends it to an entry point, so that a greedy
    decode step returns ids instead of a vocabulary's logits per row.

    ```mlir
    %ids = jamba.argmax %logits : tensor<?x1x128xf32> -> tensor<?x1xi32>
    ```
  }];
  let arguments = (ins Jamba_FloatTensor:$logits);
  let results = (outs RankedTensorOf<[I32]>:$ids);
  let assemblyFormat = [{
    $logits attr-dict `:` type($logits) `->` type($ids)
  }];
  let hasVerifier = 1;
}

def Jamba_ExpertGemmOp : Jamba_Op<"expert_gemm",
    [Pure, AttrSizedOperandSegments]> {
  let summary = "grouped expert GEMM over routed tokens (float or int8 weights)";
  let description = [{
    For every token `t` (any number of leading dimensions, written `...`) and
    routing slot `j`:
    `result[..., j, :] = rw[..., j] * (W[idx[..., j]] . x[..., (j,) :])`, where
    `weight [E, N, K]` and `indices [..., k]`. `input` is `[..., K]` (the same
    row for every slot, as for gate/up projections) or `[..., k, K]` (one row
    per slot, as for the down projection). With an int8 `weight`, `scale
    [E, N]` (f32) is required and applied after the K loop:
    `result = scale[e, n] * sum_k f(q[e,n,k]) x[k]` with f32 accumulation
    (SPEC 1.11). `route_weights [..., k]` is the optional epilogue multiplier.

    `expert_offset [1]` (expert parallelism): the weight holds experts
    `offset .. offset + E - 1`; expert `e` is row `e - offset`, and a slot
    whose expert is outside that range gets a zero result row. Without it
    an out-of-range index is clamped into range (never read outside).

    ```mlir
    %y = jamba.expert_gemm %x, %q scale(%s) indices(%idx)
        : (tensor<?x64xf32>, tensor<4x128x64xi8>, tensor<4x128xf32>,
           tensor<?x2xi32>) -> tensor<?x2x128xf32>
    ```
  }];
  let arguments = (ins Jamba_FloatTensor:$input, Jamba_WeightTensor:$weight,
                       Optional<Jamba_ScaleTensor>:$scale,
                       Jamba_IndexTensor:$indices,
                       Optional<Jamba_FloatTensor>:$route_weights,
                       Optional<TensorRankOf<[I64], [1]>>:$expert_offset);
  let results = (outs Jamba_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight (`scale` `(` $scale^ `)`)? `indices` `(` $indices `)`
    (`route_weights` `(` $route_weights^ `)`)?
    (`expert_offset` `(` $expert_offset^ `)`)?
    attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Jamba_CombineSlotsOp : Jamba_Op<"combine_slots", [Pure]> {
  let summary = "sum of the routed experts' outputs over the top-k slots";
  let description = [{
    `result[..., n] = sum_j input[..., j, n]`: the last step of a sparse MoE
    block, after the down projection has applied the routing weights.

    ```mlir
    %y = jamba.combine_slots %d : tensor<?x2x64xf32> -> tensor<?x64xf32>
    ```
  }];
  let arguments = (ins Jamba_FloatTensor:$input);
  let results = (outs Jamba_FloatTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
}

def Jamba_LinearOp : Jamba_Op<"linear", [Pure, AttrSizedOperandSegments]> {
  let summary = "dense GEMM x W^T (+ bias), float or int8 weights with scales";
  let description = [{
    `result[..., n] = sum_k x[..., k] * W[n, k] (+ bias[n])` with the
    PyTorch `[out, in]` weight layout. With an int8 `weight`, `scale [N]` (f32)
    is required: the int8 values are converted in the K loop and the scale is
    applied after it.

    ```mlir
    %y = jamba.linear %x, %w : (tensor<1x?x64xf32>, tensor<256x64xf32>)
        -> tensor<1x?x256xf32>
    %z = jamba.linear %x, %q scale(%s) : (tensor<1x?x64xf32>,
        tensor<256x64xi8>, tensor<256xf32>) -> tensor<1x?x256xf32>
    ```
  }];
  let arguments = (ins Jamba_FloatTensor:$input, Jamba_WeightTensor:$weight,
                       Optional<Jamba_ScaleTensor>:$scale,
                       Optional<Jamba_FloatTensor>:$bias);
  let results = (outs Jamba_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight (`scale` `(` $scale^ `)`)? (`bias` `(` $bias^ `)`)?
    attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Jamba_DequantOp : Jamba_Op<"dequant", [Pure]> {
  let summary = "int8 weights with per-row f32 scales to floats";
  let description = [{
    `result[..., n, k] = scale[..., n] * q[..., n, k]` (symmetric, per output
    row; SPEC 1.11). Inserted by `jamba-quantize-experts` and folded into the
    GEMM that consumes it by `jamba-fuse-dequant-into-gemm`.

    ```mlir
    %w = jamba.dequant %q, %s
        : tensor<4x128x64xi8>, tensor<4x128xf32> -> tensor<4x128x64xf32>
    ```
  }];
  let arguments = (ins RankedTensorOf<[I8]>:$input, Jamba_ScaleTensor:$scale);
  let results = (outs Jamba_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $scale attr-dict `:` type($input) `,` type($scale) `->`
    type($result)
  }];
  let hasVerifier = 1;
}

def Jamba_SwiGLUOp : Jamba_Op<"swiglu",
    [Pure, AllTypesMatch<["gate", "up", "result"]>]> {
  let summary = "SiLU(gate) * up, elementwise";
  let description = [{
    The activation between the gate/up and down projections of an expert or
    a dense MLP: `result = gate * sigmoid(gate) * up`.

    ```mlir
    %a = jamba.swiglu %g, %u : tensor<?x2x128xf32>
    ```
  }];
  let arguments = (ins Jamba_FloatTensor:$gate, Jamba_FloatTensor:$up);
  let results = (outs Jamba_FloatTensor:$result);
  let assemblyFormat = "$gate `,` $up attr-dict `:` type($result)";
}

def Jamba_AllReduceOp : Jamba_Op<"all_reduce",
    [AllTypesMatch<["input", "result"]>]> {
  let summary = "sum of a tensor over the ranks of the communicator";
  let description = [{
    Every rank passes its partial `input`; every rank gets the elementwise
    sum over all ranks (SPEC 1.9: after the row-parallel o_proj, out_proj,
    x_proj and FFN down projections of a tensor-parallel model). With
    `group_size = g > 0` the sum is over the ranks of this rank's group of
    g consecutive ranks (r / g equal): the tensor-parallel group of a model
    that is also expert-parallel.
    `jamba-shard` inserts it. On one rank it is the identity (the reference
    interpreter runs it so). On CPUs it lowers to a call of the runtime's
    `jamba_rt_all_reduce_f32(float *data, int64_t count)` (or
    `jamba_rt_all_reduce_group_f32(data, count, group_size)`) on a copy of
    the input. It communicates, so it is not `Pure`: it is neither moved nor
    removed.

    ```mlir
    %h = jamba.all_reduce %partial : tensor<?x?x1024xf32>
    ```
  }];
  let arguments = (ins Jamba_FloatTensor:$input,
                       DefaultValuedAttr<ConfinedAttr<I64Attr,
                           [IntNonNegative]>, "0">:$group_size);
  let results = (outs Jamba_FloatTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($result)";
}

#endif // JAMBA_DIALECT_JAMBA_IR_JAMBAOPS_TD

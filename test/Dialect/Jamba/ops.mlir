// RUN: jamba-opt %s | jamba-opt | FileCheck %s
// RUN: jamba-opt %s --mlir-print-op-generic | jamba-opt | FileCheck %s

// Round trip of every jamba op in its custom assembly format. The second RUN
// line goes through the generic form, so both printers and parsers are used.

// CHECK-LABEL: func @embedding
//       CHECK:   jamba.embedding %{{[^ ,)]+}}, %{{[^ ,)]+}} : tensor<128x64xf32>, tensor<2x?xi32> -> tensor<2x?x64xf32>
func.func @embedding(%table: tensor<128x64xf32>, %ids: tensor<2x?xi32>) -> tensor<2x?x64xf32> {
  %h = jamba.embedding %table, %ids : tensor<128x64xf32>, tensor<2x?xi32> -> tensor<2x?x64xf32>
  return %h : tensor<2x?x64xf32>
}

// CHECK-LABEL: func @rms_norm
//       CHECK:   jamba.rms_norm %{{[^ ,)]+}}, %{{[^ ,)]+}} {epsilon = 1.000000e-05 : f64} : tensor<2x?x64xbf16>, tensor<64xbf16>
//       CHECK:   jamba.rms_norm %{{[^ ,)]+}}, %{{[^ ,)]+}} : tensor<2x?x64xbf16>, tensor<64xbf16>
func.func @rms_norm(%x: tensor<2x?x64xbf16>, %w: tensor<64xbf16>) -> tensor<2x?x64xbf16> {
  %y = jamba.rms_norm %x, %w {epsilon = 1.0e-05 : f64} : tensor<2x?x64xbf16>, tensor<64xbf16>
  // The default epsilon (1e-6, SPEC 1.2) is elided when printed.
  %z = jamba.rms_norm %y, %w : tensor<2x?x64xbf16>, tensor<64xbf16>
  return %z : tensor<2x?x64xbf16>
}

// Weights may be stored narrower than the activations (bf16 weights, f32
// compute): the embedding table and the norm weight here.
// CHECK-LABEL: func @bf16_weights_f32_activations
//       CHECK:   jamba.embedding %{{[^ ,)]+}}, %{{[^ ,)]+}} : tensor<128x64xbf16>, tensor<2x?xi32> -> tensor<2x?x64xf32>
//       CHECK:   jamba.rms_norm %{{[^ ,)]+}}, %{{[^ ,)]+}} : tensor<2x?x64xf32>, tensor<64xbf16>
func.func @bf16_weights_f32_activations(%table: tensor<128x64xbf16>, %ids: tensor<2x?xi32>, %w: tensor<64xbf16>) -> tensor<2x?x64xf32> {
  %h = jamba.embedding %table, %ids : tensor<128x64xbf16>, tensor<2x?xi32> -> tensor<2x?x64xf32>
  %y = jamba.rms_norm %h, %w : tensor<2x?x64xf32>, tensor<64xbf16>
  return %y : tensor<2x?x64xf32>
}

// CHECK-LABEL: func @mamba_mixer
//  CHECK-SAME:   (%[[X:[^:]+]]: tensor<1x?x64xf32>, %[[CS:[^:]+]]: tensor<1x128x3xf32>, %[[SS:[^:]+]]: tensor<1x128x8xf32>
//       CHECK:   jamba.mamba_mixer %[[X]], state(%[[CS]], %[[SS]]) in_proj(%{{[^ ,)]+}}) conv1d(%{{[^ ,)]+}}, %{{[^ ,)]+}}) x_proj(%{{[^ ,)]+}}) norms(%{{[^ ,)]+}}, %{{[^ ,)]+}}, %{{[^ ,)]+}}) dt_proj(%{{[^ ,)]+}}, %{{[^ ,)]+}}) ssm(%{{[^ ,)]+}}, %{{[^ ,)]+}}) out_proj(%{{[^ ,)]+}})
//  CHECK-SAME:   -> (tensor<1x?x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>)
//       CHECK:   jamba.mamba_mixer
//  CHECK-SAME:   out_proj(%{{[^ ,)]+}}) {x_proj_all_reduce = 0 : i64}
func.func @mamba_mixer(%x: tensor<1x?x64xf32>, %cs: tensor<1x128x3xf32>,
                       %ss: tensor<1x128x8xf32>, %w_in: tensor<256x64xf32>,
                       %w_conv: tensor<128x1x4xf32>, %b_conv: tensor<128xf32>,
                       %w_x: tensor<24x128xf32>, %n_dt: tensor<8xf32>,
                       %n_b: tensor<8xf32>, %n_c: tensor<8xf32>,
                       %w_dt: tensor<128x8xf32>, %b_dt: tensor<128xf32>,
                       %a_log: tensor<128x8xf32>, %d: tensor<128xf32>,
                       %w_out: tensor<64x128xf32>) -> tensor<1x?x64xf32> {
  %out, %conv, %ssm = jamba.mamba_mixer %x, state(%cs, %ss)
      in_proj(%w_in) conv1d(%w_conv, %b_conv) x_proj(%w_x)
      norms(%n_dt, %n_b, %n_c) dt_proj(%w_dt, %b_dt) ssm(%a_log, %d)
      out_proj(%w_out)
      : (tensor<1x?x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>,
         tensor<256x64xf32>, tensor<128x1x4xf32>, tensor<128xf32>,
         tensor<24x128xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>,
         tensor<128x8xf32>, tensor<128xf32>, tensor<128x8xf32>,
         tensor<128xf32>, tensor<64x128xf32>)
      -> (tensor<1x?x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>)
  // A tensor-parallel shard sums its x_proj product over the ranks.
  %out2, %conv2, %ssm2 = jamba.mamba_mixer %out, state(%conv, %ssm)
      in_proj(%w_in) conv1d(%w_conv, %b_conv) x_proj(%w_x)
      norms(%n_dt, %n_b, %n_c) dt_proj(%w_dt, %b_dt) ssm(%a_log, %d)
      out_proj(%w_out) {x_proj_all_reduce = 0 : i64}
      : (tensor<1x?x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>,
         tensor<256x64xf32>, tensor<128x1x4xf32>, tensor<128xf32>,
         tensor<24x128xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>,
         tensor<128x8xf32>, tensor<128xf32>, tensor<128x8xf32>,
         tensor<128xf32>, tensor<64x128xf32>)
      -> (tensor<1x?x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>)
  return %out2 : tensor<1x?x64xf32>
}

// All three optional biases (mamba_proj_bias and mamba_conv_bias).
// CHECK-LABEL: func @mamba_mixer_biases
//       CHECK:   jamba.mamba_mixer %{{[^ ,)]+}}, state(%{{[^ ,)]+}}, %{{[^ ,)]+}}) in_proj(%{{[^ ,)]+}}, %{{[^ ,)]+}}) conv1d(%{{[^ ,)]+}}, %{{[^ ,)]+}}) {{.*}} out_proj(%{{[^ ,)]+}}, %{{[^ ,)]+}}) {epsilon = 1.000000e-05 : f64}
func.func @mamba_mixer_biases(%x: tensor<2x5x64xbf16>, %cs: tensor<2x128x3xbf16>,
                       %ss: tensor<2x128x8xf32>, %w_in: tensor<256x64xbf16>,
                       %b_in: tensor<256xbf16>,
                       %w_conv: tensor<128x1x4xbf16>, %b_conv: tensor<128xbf16>,
                       %w_x: tensor<24x128xbf16>, %n_dt: tensor<8xbf16>,
                       %n_b: tensor<8xbf16>, %n_c: tensor<8xbf16>,
                       %w_dt: tensor<128x8xbf16>, %b_dt: tensor<128xbf16>,
                       %a_log: tensor<128x8xf32>, %d: tensor<128xf32>,
                       %w_out: tensor<64x128xbf16>, %b_out: tensor<64xbf16>) -> tensor<2x5x64xbf16> {
  %out, %conv, %ssm = jamba.mamba_mixer %x, state(%cs, %ss)
      in_proj(%w_in, %b_in) conv1d(%w_conv, %b_conv) x_proj(%w_x)
      norms(%n_dt, %n_b, %n_c) dt_proj(%w_dt, %b_dt) ssm(%a_log, %d)
      out_proj(%w_out, %b_out) {epsilon = 1.0e-05 : f64}
      : (tensor<2x5x64xbf16>, tensor<2x128x3xbf16>, tensor<2x128x8xf32>,
         tensor<256x64xbf16>, tensor<256xbf16>, tensor<128x1x4xbf16>, tensor<128xbf16>,
         tensor<24x128xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>,
         tensor<128x8xbf16>, tensor<128xbf16>, tensor<128x8xf32>,
         tensor<128xf32>, tensor<64x128xbf16>, tensor<64xbf16>)
      -> (tensor<2x5x64xbf16>, tensor<2x128x3xbf16>, tensor<2x128x8xf32>)
  return %out : tensor<2x5x64xbf16>
}

// CHECK-LABEL: func @attention
//       CHECK:   jamba.attention %{{[^ ,)]+}}, %{{[^ ,)]+}}, %{{[^ ,)]+}}, %{{[^ ,)]+}}, %{{[^ ,)]+}}, cache(%{{[^ ,)]+}}, %{{[^ ,)]+}}, %{{[^ ,)]+}}) {num_heads = 4 : i64, num_kv_heads = 2 : i64}
func.func @attention(%x: tensor<1x?x64xf32>, %wq: tensor<64x64xf32>,
                     %wk: tensor<32x64xf32>, %wv: tensor<32x64xf32>,
                     %wo: tensor<64x64xf32>, %k: tensor<1x2x256x16xf32>,
                     %v: tensor<1x2x256x16xf32>, %len: tensor<1xi64>) -> tensor<1x?x64xf32> {
  %o, %k2, %v2 = jamba.attention %x, %wq, %wk, %wv, %wo, cache(%k, %v, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x?x64xf32>, tensor<64x64xf32>, tensor<32x64xf32>,
         tensor<32x64xf32>, tensor<64x64xf32>, tensor<1x2x256x16xf32>,
         tensor<1x2x256x16xf32>, tensor<1xi64>)
      -> (tensor<1x?x64xf32>, tensor<1x2x256x16xf32>, tensor<1x2x256x16xf32>)
  return %o : tensor<1x?x64xf32>
}

// CHECK-LABEL: func @moe
//       CHECK:   jamba.moe %{{[^ ,)]+}}, %{{[^ ,)]+}}, %{{[^ ,)]+}}, %{{[^ ,)]+}}, %{{[^ ,)]+}} {top_k = 2 : i64}
//       CHECK:   jamba.moe %{{[^ ,)]+}}, %{{[^ ,)]+}}, %{{[^ ,)]+}}, %{{[^ ,)]+}}, %{{[^ ,)]+}} {normalize_top_k, top_k = 1 : i64}
func.func @moe(%x: tensor<1x?x64xf32>, %r: tensor<4x64xf32>, %g: tensor<4x128x64xf32>,
               %u: tensor<4x128x64xf32>, %d: tensor<4x64x128xf32>) -> tensor<1x?x64xf32> {
  %y = jamba.moe %x, %r, %g, %u, %d {top_k = 2 : i64}
      : (tensor<1x?x64xf32>, tensor<4x64xf32>, tensor<4x128x64xf32>,
         tensor<4x128x64xf32>, tensor<4x64x128xf32>) -> tensor<1x?x64xf32>
  %z = jamba.moe %y, %r, %g, %u, %d {top_k = 1 : i64, normalize_top_k}
      : (tensor<1x?x64xf32>, tensor<4x64xf32>, tensor<4x128x64xf32>,
         tensor<4x128x64xf32>, tensor<4x64x128xf32>) -> tensor<1x?x64xf32>
  return %z : tensor<1x?x64xf32>
}

// CHECK-LABEL: func @mlp
//       CHECK:   jamba.mlp %{{[^ ,)]+}}, %{{[^ ,)]+}}, %{{[^ ,)]+}}, %{{[^ ,)]+}} : (tensor<1x?x64xf32>, tensor<128x64xf32>, tensor<128x64xf32>, tensor<64x128xf32>) -> tensor<1x?x64xf32>
func.func @mlp(%x: tensor<1x?x64xf32>, %g: tensor<128x64xf32>, %u: tensor<128x64xf32>,
               %d: tensor<64x128xf32>) -> tensor<1x?x64xf32> {
  %y = jamba.mlp %x, %g, %u, %d
      : (tensor<1x?x64xf32>, tensor<128x64xf32>, tensor<128x64xf32>,
         tensor<64x128xf32>) -> tensor<1x?x64xf32>
  return %y : tensor<1x?x64xf32>
}

// CHECK-LABEL: func @lm_head
//       CHECK:   jamba.lm_head %{{[^ ,)]+}}, %{{[^ ,)]+}} : tensor<1x?x64xf32>, tensor<128x64xf32> -> tensor<1x?x128xf32>
//       CHECK:   jamba.lm_head %{{[^ ,)]+}}, %{{[^ ,)]+}} {num_logits_to_keep = 1 : i64} : tensor<1x?x64xf32>, tensor<128x64xf32> -> tensor<1x1x128xf32>
func.func @lm_head(%h: tensor<1x?x64xf32>, %w: tensor<128x64xf32>) -> (tensor<1x?x128xf32>, tensor<1x1x128xf32>) {
  %all = jamba.lm_head %h, %w : tensor<1x?x64xf32>, tensor<128x64xf32> -> tensor<1x?x128xf32>
  %last = jamba.lm_head %h, %w {num_logits_to_keep = 1 : i64} : tensor<1x?x64xf32>, tensor<128x64xf32> -> tensor<1x1x128xf32>
  return %all, %last : tensor<1x?x128xf32>, tensor<1x1x128xf32>
}

// CHECK-LABEL: func @causal_conv1d
//       CHECK:   jamba.causal_conv1d %{{[^ ,)]+}}, %{{[^ ,)]+}} bias(%{{[^ ,)]+}}) state(%{{[^ ,)]+}}) {silu}
//       CHECK:   jamba.causal_conv1d %{{[^ ,)]+}}, %{{[^ ,)]+}} state(%{{[^ ,)]+}}) :
func.func @causal_conv1d(%x: tensor<1x?x128xf32>, %w: tensor<128x4xf32>, %b: tensor<128xf32>,
                         %s: tensor<1x128x3xf32>) -> tensor<1x?x128xf32> {
  %y, %s2 = jamba.causal_conv1d %x, %w bias(%b) state(%s) {silu}
      : (tensor<1x?x128xf32>, tensor<128x4xf32>, tensor<128xf32>,
         tensor<1x128x3xf32>) -> (tensor<1x?x128xf32>, tensor<1x128x3xf32>)
  %z, %s3 = jamba.causal_conv1d %y, %w state(%s2)
      : (tensor<1x?x128xf32>, tensor<128x4xf32>, tensor<1x128x3xf32>)
      -> (tensor<1x?x128xf32>, tensor<1x128x3xf32>)
  return %z : tensor<1x?x128xf32>
}

// CHECK-LABEL: func @selective_scan
//       CHECK:   jamba.selective_scan %{{[^ ,)]+}}, %{{[^ ,)]+}}, %{{[^ ,)]+}}, %{{[^ ,)]+}}, %{{[^ ,)]+}} D(%{{[^ ,)]+}}) z(%{{[^ ,)]+}}) delta_bias(%{{[^ ,)]+}}) init_state(%{{[^ ,)]+}}) {delta_softplus}
//       CHECK:   jamba.selective_scan %{{[^ ,)]+}}, %{{[^ ,)]+}}, %{{[^ ,)]+}}, %{{[^ ,)]+}}, %{{[^ ,)]+}} :
func.func @selective_scan(%u: tensor<1x?x128xf32>, %dt: tensor<1x?x128xf32>,
                          %A: tensor<128x8xf32>, %B: tensor<1x?x8xf32>,
                          %C: tensor<1x?x8xf32>, %D: tensor<128xf32>,
                          %z: tensor<1x?x128xf32>, %db: tensor<128xf32>,
                          %h0: tensor<1x128x8xf32>) -> tensor<1x?x128xf32> {
  %y, %h = jamba.selective_scan %u, %dt, %A, %B, %C D(%D) z(%z)
      delta_bias(%db) init_state(%h0) {delta_softplus}
      : (tensor<1x?x128xf32>, tensor<1x?x128xf32>, tensor<128x8xf32>,
         tensor<1x?x8xf32>, tensor<1x?x8xf32>, tensor<128xf32>,
         tensor<1x?x128xf32>, tensor<128xf32>, tensor<1x128x8xf32>)
      -> (tensor<1x?x128xf32>, tensor<1x128x8xf32>)
  // The minimal form: no skip, no gate, no bias, zero initial state.
  %y2, %h2 = jamba.selective_scan %y, %dt, %A, %B, %C
      : (tensor<1x?x128xf32>, tensor<1x?x128xf32>, tensor<128x8xf32>,
         tensor<1x?x8xf32>, tensor<1x?x8xf32>)
      -> (tensor<1x?x128xf32>, tensor<1x128x8xf32>)
  return %y2 : tensor<1x?x128xf32>
}

// CHECK-LABEL: func @argmax
//       CHECK:   jamba.argmax %{{[^ ,)]+}} : tensor<?x1x128xf32> -> tensor<?x1xi32>
//       CHECK:   jamba.argmax %{{[^ ,)]+}} : tensor<5xbf16> -> tensor<i32>
func.func @argmax(%l: tensor<?x1x128xf32>, %v: tensor<5xbf16>) -> (tensor<?x1xi32>, tensor<i32>) {
  %i = jamba.argmax %l : tensor<?x1x128xf32> -> tensor<?x1xi32>
  %j = jamba.argmax %v : tensor<5xbf16> -> tensor<i32>
  return %i, %j : tensor<?x1xi32>, tensor<i32>
}

// CHECK-LABEL: func @router_topk
//       CHECK:   jamba.router_topk %{{[^ ,)]+}} {top_k = 2 : i64} : tensor<?x4xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
//       CHECK:   jamba.router_topk %{{[^ ,)]+}} {normalize, top_k = 1 : i64} : tensor<1x?x4xbf16> -> tensor<1x?x1xf32>, tensor<1x?x1xi64>
func.func @router_topk(%l: tensor<?x4xf32>, %l3: tensor<1x?x4xbf16>) -> (tensor<?x2xf32>, tensor<?x2xi32>) {
  %w, %i = jamba.router_topk %l {top_k = 2 : i64} : tensor<?x4xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
  %w1, %i1 = jamba.router_topk %l3 {top_k = 1 : i64, normalize} : tensor<1x?x4xbf16> -> tensor<1x?x1xf32>, tensor<1x?x1xi64>
  return %w, %i : tensor<?x2xf32>, tensor<?x2xi32>
}

// CHECK-LABEL: func @expert_gemm
//       CHECK:   jamba.expert_gemm %{{[^ ,)]+}}, %{{[^ ,)]+}} indices(%{{[^ ,)]+}}) : (tensor<?x64xf32>, tensor<4x128x64xf32>, tensor<?x2xi32>) -> tensor<?x2x128xf32>
//       CHECK:   jamba.expert_gemm %{{[^ ,)]+}}, %{{[^ ,)]+}} scale(%{{[^ ,)]+}}) indices(%{{[^ ,)]+}}) route_weights(%{{[^ ,)]+}}) : (tensor<?x2x128xf32>, tensor<4x64x128xi8>, tensor<4x64xf32>, tensor<?x2xi32>, tensor<?x2xf32>) -> tensor<?x2x64xf32>
func.func @expert_gemm(%x: tensor<?x64xf32>, %w: tensor<4x128x64xf32>, %q: tensor<4x64x128xi8>,
                       %s: tensor<4x64xf32>, %idx: tensor<?x2xi32>, %rw: tensor<?x2xf32>) -> tensor<?x2x64xf32> {
  %h = jamba.expert_gemm %x, %w indices(%idx)
      : (tensor<?x64xf32>, tensor<4x128x64xf32>, tensor<?x2xi32>) -> tensor<?x2x128xf32>
  %y = jamba.expert_gemm %h, %q scale(%s) indices(%idx) route_weights(%rw)
      : (tensor<?x2x128xf32>, tensor<4x64x128xi8>, tensor<4x64xf32>,
         tensor<?x2xi32>, tensor<?x2xf32>) -> tensor<?x2x64xf32>
  return %y : tensor<?x2x64xf32>
}

// CHECK-LABEL: func @linear
//       CHECK:   jamba.linear %{{[^ ,)]+}}, %{{[^ ,)]+}} : (tensor<1x?x64xf32>, tensor<256x64xbf16>) -> tensor<1x?x256xf32>
//       CHECK:   jamba.linear %{{[^ ,)]+}}, %{{[^ ,)]+}} scale(%{{[^ ,)]+}}) bias(%{{[^ ,)]+}}) : (tensor<1x?x64xf32>, tensor<256x64xi8>, tensor<256xf32>, tensor<256xf32>) -> tensor<1x?x256xf32>
func.func @linear(%x: tensor<1x?x64xf32>, %w: tensor<256x64xbf16>, %q: tensor<256x64xi8>,
                  %s: tensor<256xf32>, %b: tensor<256xf32>) -> tensor<1x?x256xf32> {
  %y = jamba.linear %x, %w : (tensor<1x?x64xf32>, tensor<256x64xbf16>) -> tensor<1x?x256xf32>
  %z = jamba.linear %x, %q scale(%s) bias(%b)
      : (tensor<1x?x64xf32>, tensor<256x64xi8>, tensor<256xf32>, tensor<256xf32>) -> tensor<1x?x256xf32>
  return %z : tensor<1x?x256xf32>
}

// CHECK-LABEL: func @dequant
//       CHECK:   jamba.dequant %{{[^ ,)]+}}, %{{[^ ,)]+}} : tensor<4x128x64xi8>, tensor<4x128xf32> -> tensor<4x128x64xbf16>
func.func @dequant(%q: tensor<4x128x64xi8>, %s: tensor<4x128xf32>) -> tensor<4x128x64xbf16> {
  %w = jamba.dequant %q, %s : tensor<4x128x64xi8>, tensor<4x128xf32> -> tensor<4x128x64xbf16>
  return %w : tensor<4x128x64xbf16>
}

// CHECK-LABEL: func @swiglu
//       CHECK:   jamba.swiglu %{{[^ ,)]+}}, %{{[^ ,)]+}} : tensor<?x2x128xf32>
func.func @swiglu(%g: tensor<?x2x128xf32>, %u: tensor<?x2x128xf32>) -> tensor<?x2x128xf32> {
  %a = jamba.swiglu %g, %u : tensor<?x2x128xf32>
  return %a : tensor<?x2x128xf32>
}

// Rank-3 routing: tokens keep their [batch, seq] dimensions.
// CHECK-LABEL: func @expert_gemm_batched
//       CHECK:   jamba.expert_gemm %{{[^ ,)]+}}, %{{[^ ,)]+}} indices(%{{[^ ,)]+}}) : (tensor<2x?x64xf32>, tensor<4x128x64xf32>, tensor<2x?x2xi32>) -> tensor<2x?x2x128xf32>
//       CHECK:   jamba.combine_slots %{{[^ ,)]+}} : tensor<2x?x2x128xf32> -> tensor<2x?x128xf32>
func.func @expert_gemm_batched(%x: tensor<2x?x64xf32>, %w: tensor<4x128x64xf32>,
                               %idx: tensor<2x?x2xi32>) -> tensor<2x?x128xf32> {
  %h = jamba.expert_gemm %x, %w indices(%idx)
      : (tensor<2x?x64xf32>, tensor<4x128x64xf32>, tensor<2x?x2xi32>) -> tensor<2x?x2x128xf32>
  %y = jamba.combine_slots %h : tensor<2x?x2x128xf32> -> tensor<2x?x128xf32>
  return %y : tensor<2x?x128xf32>
}

// CHECK-LABEL: func @cached_attention
//       CHECK:   jamba.cached_attention %{{[^ ,)]+}}, %{{[^ ,)]+}}, %{{[^ ,)]+}}, cache(%{{[^ ,)]+}}, %{{[^ ,)]+}}, %{{[^ ,)]+}}) {num_heads = 4 : i64, num_kv_heads = 2 : i64}
func.func @cached_attention(%q: tensor<1x?x64xf32>, %k: tensor<1x?x32xf32>, %v: tensor<1x?x32xf32>,
                            %kc: tensor<1x2x256x16xf32>, %vc: tensor<1x2x256x16xf32>,
                            %len: tensor<1xi64>) -> tensor<1x?x64xf32> {
  %o, %k2, %v2 = jamba.cached_attention %q, %k, %v, cache(%kc, %vc, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x?x64xf32>, tensor<1x?x32xf32>, tensor<1x?x32xf32>,
         tensor<1x2x256x16xf32>, tensor<1x2x256x16xf32>, tensor<1xi64>)
      -> (tensor<1x?x64xf32>, tensor<1x2x256x16xf32>, tensor<1x2x256x16xf32>)
  return %o : tensor<1x?x64xf32>
}

// CHECK-LABEL: func @all_reduce
//       CHECK:   jamba.all_reduce %{{[^ ,)]+}} : tensor<?x?x64xf32>
//       CHECK:   jamba.all_reduce %{{[^ ,)]+}} {group_size = 2 : i64} : tensor<?x?x64xf32>
func.func @all_reduce(%x: tensor<?x?x64xf32>) -> tensor<?x?x64xf32> {
  %y = jamba.all_reduce %x : tensor<?x?x64xf32>
  %z = jamba.all_reduce %y {group_size = 2 : i64} : tensor<?x?x64xf32>
  return %z : tensor<?x?x64xf32>
}

// Expert parallelism: 2 of the router's 4 experts, from expert_offset.
// CHECK-LABEL: func @moe_expert_offset
//       CHECK:   jamba.moe {{.+}} expert_offset(%{{[^ ,)]+}}) {top_k = 2 : i64}
//       CHECK:   jamba.expert_gemm {{.+}} expert_offset(%{{[^ ,)]+}})
func.func @moe_expert_offset(%x: tensor<1x?x64xf32>, %r: tensor<4x64xf32>,
                             %g: tensor<2x128x64xf32>, %u: tensor<2x128x64xf32>,
                             %d: tensor<2x64x128xf32>, %off: tensor<1xi64>,
                             %idx: tensor<1x?x2xi32>) -> tensor<1x?x64xf32> {
  %y = jamba.moe %x, %r, %g, %u, %d expert_offset(%off) {top_k = 2 : i64}
      : (tensor<1x?x64xf32>, tensor<4x64xf32>, tensor<2x128x64xf32>,
         tensor<2x128x64xf32>, tensor<2x64x128xf32>, tensor<1xi64>) -> tensor<1x?x64xf32>
  %z = jamba.expert_gemm %y, %g indices(%idx) expert_offset(%off)
      : (tensor<1x?x64xf32>, tensor<2x128x64xf32>, tensor<1x?x2xi32>, tensor<1xi64>)
      -> tensor<1x?x2x128xf32>
  return %y : tensor<1x?x64xf32>
}

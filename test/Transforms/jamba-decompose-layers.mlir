// RUN: jamba-opt %s -split-input-file -jamba-decompose-layers | FileCheck %s
// RUN: jamba-opt %s -split-input-file -jamba-decompose-layers=mixers=false | FileCheck %s --check-prefix=FFN

// A MoE becomes: router GEMM, softmax + top-k, gate and up expert GEMMs on
// the shared token rows, SwiGLU, the down expert GEMM with the routing
// weights in its epilogue, and the sum over slots. Token dimensions
// ([batch, seq]) are kept, no reshapes.
// CHECK-LABEL: func @moe
//  CHECK-SAME:   (%[[X:[^:]+]]: tensor<2x?x64xf32>, %[[R:[^:]+]]: tensor<4x64xf32>, %[[G:[^:]+]]: tensor<4x128x64xf32>, %[[U:[^:]+]]: tensor<4x128x64xf32>, %[[D:[^:]+]]: tensor<4x64x128xf32>)
//       CHECK:   %[[L:.+]] = jamba.linear %[[X]], %[[R]] : (tensor<2x?x64xf32>, tensor<4x64xf32>) -> tensor<2x?x4xf32>
//       CHECK:   %[[W:.+]], %[[I:.+]] = jamba.router_topk %[[L]] {normalize, top_k = 2 : i64} : tensor<2x?x4xf32> -> tensor<2x?x2xf32>, tensor<2x?x2xi32>
//       CHECK:   %[[GO:.+]] = jamba.expert_gemm %[[X]], %[[G]] indices(%[[I]]) : {{.*}} -> tensor<2x?x2x128xf32>
//       CHECK:   %[[UO:.+]] = jamba.expert_gemm %[[X]], %[[U]] indices(%[[I]])
//       CHECK:   %[[A:.+]] = jamba.swiglu %[[GO]], %[[UO]] : tensor<2x?x2x128xf32>
//       CHECK:   %[[DO:.+]] = jamba.expert_gemm %[[A]], %[[D]] indices(%[[I]]) route_weights(%[[W]]) : {{.*}} -> tensor<2x?x2x64xf32>
//       CHECK:   %[[Y:.+]] = jamba.combine_slots %[[DO]] : tensor<2x?x2x64xf32> -> tensor<2x?x64xf32>
//       CHECK:   return %[[Y]]
func.func @moe(%x: tensor<2x?x64xf32>, %r: tensor<4x64xf32>, %g: tensor<4x128x64xf32>,
               %u: tensor<4x128x64xf32>, %d: tensor<4x64x128xf32>) -> tensor<2x?x64xf32> {
  %y = jamba.moe %x, %r, %g, %u, %d {top_k = 2 : i64, normalize_top_k}
      : (tensor<2x?x64xf32>, tensor<4x64xf32>, tensor<4x128x64xf32>,
         tensor<4x128x64xf32>, tensor<4x64x128xf32>) -> tensor<2x?x64xf32>
  return %y : tensor<2x?x64xf32>
}

// -----

// A dense MLP becomes three linears around a SwiGLU.
// CHECK-LABEL: func @mlp
//       CHECK:   %[[G:.+]] = jamba.linear %{{[^ ,]+}}, %{{[^ ,]+}} : (tensor<1x?x64xbf16>, tensor<128x64xbf16>) -> tensor<1x?x128xbf16>
//       CHECK:   %[[U:.+]] = jamba.linear
//       CHECK:   %[[A:.+]] = jamba.swiglu %[[G]], %[[U]] : tensor<1x?x128xbf16>
//       CHECK:   jamba.linear %[[A]], %{{[^ ,]+}} : (tensor<1x?x128xbf16>, tensor<64x128xbf16>) -> tensor<1x?x64xbf16>
func.func @mlp(%x: tensor<1x?x64xbf16>, %g: tensor<128x64xbf16>, %u: tensor<128x64xbf16>,
               %d: tensor<64x128xbf16>) -> tensor<1x?x64xbf16> {
  %y = jamba.mlp %x, %g, %u, %d
      : (tensor<1x?x64xbf16>, tensor<128x64xbf16>, tensor<128x64xbf16>,
         tensor<64x128xbf16>) -> tensor<1x?x64xbf16>
  return %y : tensor<1x?x64xbf16>
}

// -----

// Leave unchanged: primitives and other ops; must not crash on them.
// CHECK-LABEL: func @primitives
//  CHECK-NEXT:   jamba.rms_norm
//  CHECK-NEXT:   return
func.func @primitives(%x: tensor<1x?x64xf32>, %w: tensor<64xf32>) -> tensor<1x?x64xf32> {
  %y = jamba.rms_norm %x, %w : tensor<1x?x64xf32>, tensor<64xf32>
  return %y : tensor<1x?x64xf32>
}

// -----

// A Mamba mixer becomes its projections, the x/z and dt/B/C splits, the conv
// (weight [Di, 1, K] collapsed to [Di, K]), the three norms, A = -exp(A_log)
// and the scan, which applies dt_proj's bias once, before softplus, and
// carries the SSM state; the conv carries the conv state.
// CHECK-LABEL: func @mamba
//  CHECK-SAME:   (%[[X:[^:]+]]: tensor<1x?x64xf32>, %[[CS:[^:]+]]: tensor<1x128x3xf32>, %[[SS:[^:]+]]: tensor<1x128x8xf32>, %[[WIN:[^:]+]]: tensor<256x64xf32>, %[[WC:[^:]+]]: tensor<128x1x4xf32>, %[[BC:[^:]+]]: tensor<128xf32>, %[[WX:[^:]+]]: tensor<24x128xf32>, %[[NDT:[^:]+]]: tensor<8xf32>, %[[NB:[^:]+]]: tensor<8xf32>, %[[NC:[^:]+]]: tensor<8xf32>, %[[WDT:[^:]+]]: tensor<128x8xf32>, %[[BDT:[^:]+]]: tensor<128xf32>, %[[ALOG:[^:]+]]: tensor<128x8xf32>, %[[D:[^:]+]]: tensor<128xf32>, %[[WOUT:[^:]+]]: tensor<64x128xf32>)
//       CHECK:   %[[XZ:.+]] = jamba.linear %[[X]], %[[WIN]] : (tensor<1x?x64xf32>, tensor<256x64xf32>) -> tensor<1x?x256xf32>
//   CHECK-DAG:   %[[XS:.+]] = tensor.extract_slice %[[XZ]][0, 0, 0] [1, %{{.+}}, 128] [1, 1, 1]
//   CHECK-DAG:   %[[Z:.+]] = tensor.extract_slice %[[XZ]][0, 0, 128] [1, %{{.+}}, 128] [1, 1, 1]
//       CHECK:   %[[W:.+]] = tensor.collapse_shape %[[WC]] {{\[}}[0], [1, 2]] : tensor<128x1x4xf32> into tensor<128x4xf32>
//       CHECK:   %[[XC:.+]], %[[NCS:.+]] = jamba.causal_conv1d %[[XS]], %[[W]] bias(%[[BC]]) state(%[[CS]]) {silu}
//       CHECK:   %[[XD:.+]] = jamba.linear %[[XC]], %[[WX]] : {{.*}} -> tensor<1x?x24xf32>
//       CHECK:   tensor.extract_slice %[[XD]][0, 0, 0] [1, %{{.+}}, 8]
//       CHECK:   %[[DT:.+]] = jamba.rms_norm %{{.+}}, %[[NDT]]
//       CHECK:   tensor.extract_slice %[[XD]][0, 0, 8] [1, %{{.+}}, 8]
//       CHECK:   %[[B:.+]] = jamba.rms_norm %{{.+}}, %[[NB]]
//       CHECK:   tensor.extract_slice %[[XD]][0, 0, 16] [1, %{{.+}}, 8]
//       CHECK:   %[[C:.+]] = jamba.rms_norm %{{.+}}, %[[NC]]
//       CHECK:   %[[DELTA:.+]] = jamba.linear %[[DT]], %[[WDT]] : (tensor<1x?x8xf32>, tensor<128x8xf32>) -> tensor<1x?x128xf32>
//       CHECK:   %[[E:.+]] = math.exp %[[ALOG]] : tensor<128x8xf32>
//       CHECK:   %[[A:.+]] = arith.negf %[[E]] : tensor<128x8xf32>
//       CHECK:   %[[Y:.+]], %[[NSS:.+]] = jamba.selective_scan %[[XC]], %[[DELTA]], %[[A]], %[[B]], %[[C]] D(%[[D]]) z(%[[Z]]) delta_bias(%[[BDT]]) init_state(%[[SS]]) {delta_softplus}
//       CHECK:   %[[OUT:.+]] = jamba.linear %[[Y]], %[[WOUT]]
//       CHECK:   return %[[OUT]], %[[NCS]], %[[NSS]]
// FFN-LABEL: func @mamba
//       FFN:   jamba.mamba_mixer
func.func @mamba(%x: tensor<1x?x64xf32>, %cs: tensor<1x128x3xf32>,
                 %ss: tensor<1x128x8xf32>, %w_in: tensor<256x64xf32>,
                 %w_conv: tensor<128x1x4xf32>, %b_conv: tensor<128xf32>,
                 %w_x: tensor<24x128xf32>, %n_dt: tensor<8xf32>,
                 %n_b: tensor<8xf32>, %n_c: tensor<8xf32>,
                 %w_dt: tensor<128x8xf32>, %b_dt: tensor<128xf32>,
                 %a_log: tensor<128x8xf32>, %d: tensor<128xf32>,
                 %w_out: tensor<64x128xf32>)
    -> (tensor<1x?x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>) {
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
  return %out, %conv, %ssm : tensor<1x?x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>
}

// -----

// A bf16 A_log is widened to f32 before exp: the SSM runs in f32.
// CHECK-LABEL: func @mamba_bf16
//       CHECK:   %[[A32:.+]] = arith.extf %{{.+}} : tensor<128x8xbf16> to tensor<128x8xf32>
//       CHECK:   math.exp %[[A32]] : tensor<128x8xf32>
func.func @mamba_bf16(%x: tensor<1x?x64xbf16>, %cs: tensor<1x128x3xbf16>,
                      %ss: tensor<1x128x8xf32>, %w_in: tensor<256x64xbf16>,
                      %w_conv: tensor<128x1x4xbf16>, %w_x: tensor<24x128xbf16>,
                      %n8: tensor<8xbf16>, %w_dt: tensor<128x8xbf16>,
                      %v128: tensor<128xbf16>, %a_log: tensor<128x8xbf16>,
                      %w_out: tensor<64x128xbf16>) -> tensor<1x?x64xbf16> {
  %out, %conv, %ssm = jamba.mamba_mixer %x, state(%cs, %ss)
      in_proj(%w_in) conv1d(%w_conv) x_proj(%w_x)
      norms(%n8, %n8, %n8) dt_proj(%w_dt, %v128) ssm(%a_log, %v128)
      out_proj(%w_out)
      : (tensor<1x?x64xbf16>, tensor<1x128x3xbf16>, tensor<1x128x8xf32>,
         tensor<256x64xbf16>, tensor<128x1x4xbf16>, tensor<24x128xbf16>,
         tensor<8xbf16>, tensor<8xbf16>, tensor<8xbf16>, tensor<128x8xbf16>,
         tensor<128xbf16>, tensor<128x8xbf16>, tensor<128xbf16>, tensor<64x128xbf16>)
      -> (tensor<1x?x64xbf16>, tensor<1x128x3xbf16>, tensor<1x128x8xf32>)
  return %out : tensor<1x?x64xbf16>
}

// -----

// An f64 A_log is narrowed to f32 (it was "widened" with an invalid extf):
// the scan's A is f32.
// CHECK-LABEL: func @mamba_f64_a_log
//       CHECK:   %[[A32:.+]] = arith.truncf %{{.+}} : tensor<128x8xf64> to tensor<128x8xf32>
//       CHECK:   math.exp %[[A32]] : tensor<128x8xf32>
func.func @mamba_f64_a_log(%x: tensor<1x?x64xf32>, %cs: tensor<1x128x3xf32>,
                           %ss: tensor<1x128x8xf32>, %w_in: tensor<256x64xf32>,
                           %w_conv: tensor<128x1x4xf32>, %w_x: tensor<24x128xf32>,
                           %n8: tensor<8xf32>, %w_dt: tensor<128x8xf32>,
                           %v128: tensor<128xf32>, %a_log: tensor<128x8xf64>,
                           %w_out: tensor<64x128xf32>) -> tensor<1x?x64xf32> {
  %out, %conv, %ssm = jamba.mamba_mixer %x, state(%cs, %ss)
      in_proj(%w_in) conv1d(%w_conv) x_proj(%w_x)
      norms(%n8, %n8, %n8) dt_proj(%w_dt, %v128) ssm(%a_log, %v128)
      out_proj(%w_out)
      : (tensor<1x?x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>,
         tensor<256x64xf32>, tensor<128x1x4xf32>, tensor<24x128xf32>,
         tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<128x8xf32>,
         tensor<128xf32>, tensor<128x8xf64>, tensor<128xf32>, tensor<64x128xf32>)
      -> (tensor<1x?x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>)
  return %out : tensor<1x?x64xf32>
}

// -----

// Attention becomes the four projections around cached_attention, which
// owns the KV cache update.
// CHECK-LABEL: func @attention
//  CHECK-SAME:   (%[[X:[^:]+]]: tensor<1x?x64xf32>, %[[WQ:[^:]+]]: tensor<64x64xf32>, %[[WK:[^:]+]]: tensor<32x64xf32>, %[[WV:[^:]+]]: tensor<32x64xf32>, %[[WO:[^:]+]]: tensor<64x64xf32>, %[[KC:[^:]+]]: tensor<1x2x256x16xf32>, %[[VC:[^:]+]]: tensor<1x2x256x16xf32>, %[[LEN:[^:]+]]: tensor<1xi64>)
//       CHECK:   %[[Q:.+]] = jamba.linear %[[X]], %[[WQ]] : {{.*}} -> tensor<1x?x64xf32>
//       CHECK:   %[[K:.+]] = jamba.linear %[[X]], %[[WK]] : {{.*}} -> tensor<1x?x32xf32>
//       CHECK:   %[[V:.+]] = jamba.linear %[[X]], %[[WV]] : {{.*}} -> tensor<1x?x32xf32>
//       CHECK:   %[[O:.+]], %[[NK:.+]], %[[NV:.+]] = jamba.cached_attention %[[Q]], %[[K]], %[[V]], cache(%[[KC]], %[[VC]], %[[LEN]]) {num_heads = 4 : i64, num_kv_heads = 2 : i64}
//       CHECK:   %[[OUT:.+]] = jamba.linear %[[O]], %[[WO]]
//       CHECK:   return %[[OUT]], %[[NK]], %[[NV]]
func.func @attention(%x: tensor<1x?x64xf32>, %wq: tensor<64x64xf32>,
                     %wk: tensor<32x64xf32>, %wv: tensor<32x64xf32>,
                     %wo: tensor<64x64xf32>, %k: tensor<1x2x256x16xf32>,
                     %v: tensor<1x2x256x16xf32>, %len: tensor<1xi64>)
    -> (tensor<1x?x64xf32>, tensor<1x2x256x16xf32>, tensor<1x2x256x16xf32>) {
  %o, %k2, %v2 = jamba.attention %x, %wq, %wk, %wv, %wo, cache(%k, %v, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x?x64xf32>, tensor<64x64xf32>, tensor<32x64xf32>,
         tensor<32x64xf32>, tensor<64x64xf32>, tensor<1x2x256x16xf32>,
         tensor<1x2x256x16xf32>, tensor<1xi64>)
      -> (tensor<1x?x64xf32>, tensor<1x2x256x16xf32>, tensor<1x2x256x16xf32>)
  return %o, %k2, %v2 : tensor<1x?x64xf32>, tensor<1x2x256x16xf32>, tensor<1x2x256x16xf32>
}

// -----

// The LM head keeps the last num_logits_to_keep positions of each sequence
// (a slice starting at seq - keep), then projects them onto the vocabulary.
// CHECK-LABEL: func @lm_head_last
//  CHECK-SAME:   (%[[X:[^:]+]]: tensor<2x?x64xf32>, %[[W:[^:]+]]: tensor<128x64xf32>)
//       CHECK:   %[[SEQ:.+]] = tensor.dim %[[X]], %c1
//       CHECK:   %[[START:.+]] = arith.subi %[[SEQ]], %c1
//       CHECK:   %[[LAST:.+]] = tensor.extract_slice %[[X]][0, %[[START]], 0] [2, 1, 64] [1, 1, 1] : tensor<2x?x64xf32> to tensor<2x1x64xf32>
//       CHECK:   %[[L:.+]] = jamba.linear %[[LAST]], %[[W]] : (tensor<2x1x64xf32>, tensor<128x64xf32>) -> tensor<2x1x128xf32>
//       CHECK:   return %[[L]]
// FFN-LABEL: func @lm_head_last
//       FFN:   jamba.lm_head
func.func @lm_head_last(%x: tensor<2x?x64xf32>, %w: tensor<128x64xf32>) -> tensor<2x1x128xf32> {
  %l = jamba.lm_head %x, %w {num_logits_to_keep = 1 : i64}
      : tensor<2x?x64xf32>, tensor<128x64xf32> -> tensor<2x1x128xf32>
  return %l : tensor<2x1x128xf32>
}

// -----

// A dynamic hidden size: the slice takes it from the input (a static size
// from a dynamic dimension made an invalid slice).
// CHECK-LABEL: func @lm_head_last_dynamic
//  CHECK-SAME:   (%[[X:[^:]+]]: tensor<?x?x?xf32>, %[[W:[^:]+]]: tensor<?x?xf32>)
//   CHECK-DAG:   %[[B:.+]] = tensor.dim %[[X]], %c0
//   CHECK-DAG:   %[[SEQ:.+]] = tensor.dim %[[X]], %c1
//   CHECK-DAG:   %[[H:.+]] = tensor.dim %[[X]], %c2
//       CHECK:   tensor.extract_slice %[[X]][0, %{{.+}}, 0] [%[[B]], 1, %[[H]]] [1, 1, 1] : tensor<?x?x?xf32> to tensor<?x1x?xf32>
// FFN-LABEL: func @lm_head_last_dynamic
func.func @lm_head_last_dynamic(%x: tensor<?x?x?xf32>, %w: tensor<?x?xf32>) -> tensor<?x?x?xf32> {
  %l = jamba.lm_head %x, %w {num_logits_to_keep = 1 : i64}
      : tensor<?x?x?xf32>, tensor<?x?xf32> -> tensor<?x?x?xf32>
  return %l : tensor<?x?x?xf32>
}

// -----

// num_logits_to_keep = 0 keeps every position: a plain linear, no slice.
// CHECK-LABEL: func @lm_head_all
//   CHECK-NOT:   tensor.extract_slice
//       CHECK:   %[[L:.+]] = jamba.linear %{{[^ ,]+}}, %{{[^ ,]+}} : (tensor<?x?x64xf32>, tensor<128x64xf32>) -> tensor<?x?x128xf32>
//       CHECK:   return %[[L]]
func.func @lm_head_all(%x: tensor<?x?x64xf32>, %w: tensor<128x64xf32>) -> tensor<?x?x128xf32> {
  %l = jamba.lm_head %x, %w : tensor<?x?x64xf32>, tensor<128x64xf32> -> tensor<?x?x128xf32>
  return %l : tensor<?x?x128xf32>
}

// -----

// A static sequence gives a static slice offset (seq - keep = 6).
// CHECK-LABEL: func @lm_head_static
//   CHECK-NOT:   arith.subi
//       CHECK:   tensor.extract_slice %{{.+}}[0, 6, 0] [1, 2, 64] [1, 1, 1] : tensor<1x8x64xf32> to tensor<1x2x64xf32>
//       CHECK:   jamba.linear {{.*}} -> tensor<1x2x128xf32>
func.func @lm_head_static(%x: tensor<1x8x64xf32>, %w: tensor<128x64xf32>) -> tensor<1x2x128xf32> {
  %l = jamba.lm_head %x, %w {num_logits_to_keep = 2 : i64}
      : tensor<1x8x64xf32>, tensor<128x64xf32> -> tensor<1x2x128xf32>
  return %l : tensor<1x2x128xf32>
}

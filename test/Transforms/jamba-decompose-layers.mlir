// RUN: jamba-opt %s -split-input-file -jamba-decompose-layers | FileCheck %s

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

// RUN: jamba-opt %s -jamba-experts-int8-pipeline | FileCheck %s
// RUN: jamba-opt %s -jamba-experts-int8-pipeline=dense-mlp=true | FileCheck %s --check-prefix=DENSE

// The registered pipeline is what jamba-import runs for an ExpertsInt8
// checkpoint: quantized arguments, decomposed MoE, dequant fused into every
// expert GEMM (none left), routing weights in the down projection.
// CHECK-LABEL: func @layer
//  CHECK-SAME:   tensor<4x128x64xi8> {jamba.weight = "gate"}, %[[GS:[^:]+]]: tensor<4x128xf32> {jamba.weight = "gate_scale"}
//   CHECK-NOT:   jamba.dequant
//       CHECK:   jamba.router_topk
//       CHECK:   jamba.expert_gemm %{{[^ ,]+}}, %{{[^ ,]+}} scale(%[[GS]]) indices
//       CHECK:   jamba.expert_gemm %{{[^ ,]+}}, %{{[^ ,]+}} scale(%{{[^)]+}}) indices
//       CHECK:   jamba.swiglu
//       CHECK:   jamba.expert_gemm %{{[^ ,]+}}, %{{[^ ,]+}} scale(%{{[^)]+}}) indices(%{{[^)]+}}) route_weights
//       CHECK:   jamba.combine_slots
// The dense MLP is decomposed but stays float by default.
//       CHECK:   jamba.linear %{{[^ ,]+}}, %{{[^ ,]+}} : (tensor<1x?x64xf32>, tensor<128x64xf32>)
// DENSE-LABEL: func @layer
//   DENSE-NOT:   jamba.dequant
//       DENSE:   jamba.linear %{{[^ ,]+}}, %{{[^ ,]+}} scale(%{{[^)]+}}) : (tensor<1x?x64xf32>, tensor<128x64xi8>, tensor<128xf32>)
func.func @layer(%x: tensor<1x?x64xf32>,
                 %r: tensor<4x64xf32> {jamba.weight = "router"},
                 %g: tensor<4x128x64xf32> {jamba.weight = "gate"},
                 %u: tensor<4x128x64xf32> {jamba.weight = "up"},
                 %d: tensor<4x64x128xf32> {jamba.weight = "down"},
                 %mg: tensor<128x64xf32> {jamba.weight = "mlp.gate"},
                 %mu: tensor<128x64xf32> {jamba.weight = "mlp.up"},
                 %md: tensor<64x128xf32> {jamba.weight = "mlp.down"}) -> tensor<1x?x64xf32> {
  %y = jamba.moe %x, %r, %g, %u, %d {top_k = 2 : i64}
      : (tensor<1x?x64xf32>, tensor<4x64xf32>, tensor<4x128x64xf32>,
         tensor<4x128x64xf32>, tensor<4x64x128xf32>) -> tensor<1x?x64xf32>
  %z = jamba.mlp %y, %mg, %mu, %md
      : (tensor<1x?x64xf32>, tensor<128x64xf32>, tensor<128x64xf32>,
         tensor<64x128xf32>) -> tensor<1x?x64xf32>
  return %z : tensor<1x?x64xf32>
}

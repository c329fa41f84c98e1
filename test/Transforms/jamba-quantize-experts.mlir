// RUN: jamba-opt %s -split-input-file -jamba-quantize-experts | FileCheck %s
// RUN: jamba-opt %s -split-input-file -jamba-quantize-experts=dense-mlp | FileCheck %s --check-prefix=DENSE

// The three expert weights of a MoE become int8 arguments, each followed by
// its f32 per-row scale named <name>_scale; a dequant rebuilds the float
// weight at the entry. The router stays float.
// CHECK-LABEL: func @moe
//  CHECK-SAME:   %[[X:[^:]+]]: tensor<?x64xf32>
//  CHECK-SAME:   %[[R:[^:]+]]: tensor<4x64xf32> {jamba.weight = "router"}
//  CHECK-SAME:   %[[G:[^:]+]]: tensor<4x128x64xi8> {jamba.weight = "gate"}
//  CHECK-SAME:   %[[GS:[^:]+]]: tensor<4x128xf32> {jamba.weight = "gate_scale"}
//  CHECK-SAME:   %[[U:[^:]+]]: tensor<4x128x64xi8> {jamba.weight = "up"}
//  CHECK-SAME:   %[[US:[^:]+]]: tensor<4x128xf32> {jamba.weight = "up_scale"}
//  CHECK-SAME:   %[[D:[^:]+]]: tensor<4x64x128xi8> {jamba.weight = "down"}
//  CHECK-SAME:   %[[DS:[^:]+]]: tensor<4x64xf32> {jamba.weight = "down_scale"}
//   CHECK-DAG:   %[[GF:.+]] = jamba.dequant %[[G]], %[[GS]] : tensor<4x128x64xi8>, tensor<4x128xf32> -> tensor<4x128x64xf32>
//   CHECK-DAG:   %[[UF:.+]] = jamba.dequant %[[U]], %[[US]]
//   CHECK-DAG:   %[[DF:.+]] = jamba.dequant %[[D]], %[[DS]] : tensor<4x64x128xi8>, tensor<4x64xf32> -> tensor<4x64x128xf32>
//       CHECK:   jamba.moe %[[X]], %[[R]], %[[GF]], %[[UF]], %[[DF]]
func.func @moe(%x: tensor<?x64xf32>,
               %r: tensor<4x64xf32> {jamba.weight = "router"},
               %g: tensor<4x128x64xf32> {jamba.weight = "gate"},
               %u: tensor<4x128x64xf32> {jamba.weight = "up"},
               %d: tensor<4x64x128xf32> {jamba.weight = "down"}) -> tensor<?x64xf32> {
  %y = jamba.moe %x, %r, %g, %u, %d {top_k = 2 : i64}
      : (tensor<?x64xf32>, tensor<4x64xf32>, tensor<4x128x64xf32>,
         tensor<4x128x64xf32>, tensor<4x64x128xf32>) -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// Dense MLPs stay float by default (as in vLLM); dense-mlp quantizes them.
// CHECK-LABEL: func @mlp
//  CHECK-SAME:   tensor<128x64xf32> {jamba.weight = "mlp.gate"}
//   CHECK-NOT:   jamba.dequant
// DENSE-LABEL: func @mlp
//  DENSE-SAME:   tensor<128x64xi8> {jamba.weight = "mlp.gate"}, %{{[^:]+}}: tensor<128xf32> {jamba.weight = "mlp.gate_scale"}
//       DENSE:   jamba.dequant
//       DENSE:   jamba.dequant
//       DENSE:   jamba.dequant
//       DENSE:   jamba.mlp
func.func @mlp(%x: tensor<?x64xf32>,
               %g: tensor<128x64xf32> {jamba.weight = "mlp.gate"},
               %u: tensor<128x64xf32> {jamba.weight = "mlp.up"},
               %d: tensor<64x128xf32> {jamba.weight = "mlp.down"}) -> tensor<?x64xf32> {
  %y = jamba.mlp %x, %g, %u, %d
      : (tensor<?x64xf32>, tensor<128x64xf32>, tensor<128x64xf32>,
         tensor<64x128xf32>) -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// A weight shared by two entry points is quantized in each of them, and a
// weight used twice in one function gets a single dequant.
// CHECK-LABEL: func @shared_a
//  CHECK-SAME:   tensor<4x128x64xi8> {jamba.weight = "w"}, %{{[^:]+}}: tensor<4x128xf32> {jamba.weight = "w_scale"}
//       CHECK:   %[[W:.+]] = jamba.dequant
//   CHECK-NOT:   jamba.dequant
//       CHECK:   jamba.expert_gemm %{{[^ ,]+}}, %[[W]] indices
//       CHECK:   jamba.expert_gemm %{{[^ ,]+}}, %[[W]] indices
// CHECK-LABEL: func @shared_b
//  CHECK-SAME:   tensor<4x128x64xi8> {jamba.weight = "w"}
func.func @shared_a(%x: tensor<?x64xf32>, %w: tensor<4x128x64xf32> {jamba.weight = "w"},
                    %idx: tensor<?x2xi32>) -> tensor<?x2x128xf32> {
  %a = jamba.expert_gemm %x, %w indices(%idx)
      : (tensor<?x64xf32>, tensor<4x128x64xf32>, tensor<?x2xi32>) -> tensor<?x2x128xf32>
  %b = jamba.expert_gemm %x, %w indices(%idx)
      : (tensor<?x64xf32>, tensor<4x128x64xf32>, tensor<?x2xi32>) -> tensor<?x2x128xf32>
  %c = arith.addf %a, %b : tensor<?x2x128xf32>
  return %c : tensor<?x2x128xf32>
}
func.func @shared_b(%x: tensor<?x64xf32>, %w: tensor<4x128x64xf32> {jamba.weight = "w"},
                    %idx: tensor<?x2xi32>) -> tensor<?x2x128xf32> {
  %a = jamba.expert_gemm %x, %w indices(%idx)
      : (tensor<?x64xf32>, tensor<4x128x64xf32>, tensor<?x2xi32>) -> tensor<?x2x128xf32>
  return %a : tensor<?x2x128xf32>
}

// -----

// Leave unchanged: weights that are not named entry-point arguments (here an
// unnamed argument), and weights that are already int8.
// CHECK-LABEL: func @unnamed
//  CHECK-SAME:   tensor<4x128x64xf32>
//   CHECK-NOT:   jamba.dequant
// CHECK-LABEL: func @already_int8
//   CHECK-NOT:   jamba.dequant
//       CHECK:   jamba.expert_gemm %{{[^ ,]+}}, %{{[^ ,]+}} scale
func.func @unnamed(%x: tensor<?x64xf32>, %w: tensor<4x128x64xf32>,
                   %idx: tensor<?x2xi32>) -> tensor<?x2x128xf32> {
  %a = jamba.expert_gemm %x, %w indices(%idx)
      : (tensor<?x64xf32>, tensor<4x128x64xf32>, tensor<?x2xi32>) -> tensor<?x2x128xf32>
  return %a : tensor<?x2x128xf32>
}
func.func @already_int8(%x: tensor<?x64xf32>, %q: tensor<4x128x64xi8> {jamba.weight = "q"},
                        %s: tensor<4x128xf32> {jamba.weight = "q_scale"},
                        %idx: tensor<?x2xi32>) -> tensor<?x2x128xf32> {
  %a = jamba.expert_gemm %x, %q scale(%s) indices(%idx)
      : (tensor<?x64xf32>, tensor<4x128x64xi8>, tensor<4x128xf32>, tensor<?x2xi32>) -> tensor<?x2x128xf32>
  return %a : tensor<?x2x128xf32>
}

// -----

// Must not crash: IR without experts, and declarations.
// CHECK-LABEL: func @no_experts
//       CHECK:   arith.addf
// CHECK-LABEL: func private @external
func.func @no_experts(%x: tensor<4xf32>) -> tensor<4xf32> {
  %y = arith.addf %x, %x : tensor<4xf32>
  return %y : tensor<4xf32>
}
func.func private @external(tensor<4x128x64xf32>)

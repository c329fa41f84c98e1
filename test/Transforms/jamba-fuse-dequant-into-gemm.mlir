// RUN: jamba-opt %s -split-input-file -jamba-fuse-dequant-into-gemm | FileCheck %s
// RUN: jamba-opt %s -split-input-file -jamba-fuse-dequant-into-gemm=multi-use | FileCheck %s --check-prefix=MULTI

// Tests that a dequant feeding only an expert_gemm is folded into the GEMM,
// routing weights included.
// CHECK-LABEL: func @fuse_single_use
//  CHECK-SAME:   (%[[X:[^:]+]]: tensor<?x2x128xf32>, %[[Q:[^:]+]]: tensor<4x64x128xi8>, %[[S:[^:]+]]: tensor<4x64xf32>, %[[IDX:[^:]+]]: tensor<?x2xi32>, %[[RW:[^:]+]]: tensor<?x2xf32>)
//   CHECK-NOT:   jamba.dequant
//       CHECK:   jamba.expert_gemm %[[X]], %[[Q]] scale(%[[S]]) indices(%[[IDX]]) route_weights(%[[RW]])
func.func @fuse_single_use(%x: tensor<?x2x128xf32>, %q: tensor<4x64x128xi8>, %s: tensor<4x64xf32>,
                           %idx: tensor<?x2xi32>, %rw: tensor<?x2xf32>) -> tensor<?x2x64xf32> {
  %w = jamba.dequant %q, %s : tensor<4x64x128xi8>, tensor<4x64xf32> -> tensor<4x64x128xf32>
  %y = jamba.expert_gemm %x, %w indices(%idx) route_weights(%rw)
      : (tensor<?x2x128xf32>, tensor<4x64x128xf32>, tensor<?x2xi32>, tensor<?x2xf32>) -> tensor<?x2x64xf32>
  return %y : tensor<?x2x64xf32>
}

// -----

// A dequant into a dense linear is fused the same way; the bias stays.
// CHECK-LABEL: func @fuse_linear
//   CHECK-NOT:   jamba.dequant
//       CHECK:   jamba.linear %{{[^ ,]+}}, %{{[^ ,]+}} scale(%{{[^)]+}}) bias(%{{[^)]+}})
func.func @fuse_linear(%x: tensor<1x?x64xf32>, %q: tensor<128x64xi8>, %s: tensor<128xf32>,
                       %b: tensor<128xf32>) -> tensor<1x?x128xf32> {
  %w = jamba.dequant %q, %s : tensor<128x64xi8>, tensor<128xf32> -> tensor<128x64xf32>
  %y = jamba.linear %x, %w bias(%b)
      : (tensor<1x?x64xf32>, tensor<128x64xf32>, tensor<128xf32>) -> tensor<1x?x128xf32>
  return %y : tensor<1x?x128xf32>
}

// -----

// Negative: a dequant with two users stays (the default control function
// says no); multi-use fuses both GEMMs and the dequant goes away.
// CHECK-LABEL: func @keep_multi_use
//       CHECK:   %[[W:.+]] = jamba.dequant
//       CHECK:   jamba.expert_gemm %{{[^ ,]+}}, %[[W]] indices
//       CHECK:   jamba.expert_gemm %{{[^ ,]+}}, %[[W]] indices
// MULTI-LABEL: func @keep_multi_use
//   MULTI-NOT:   jamba.dequant
//       MULTI:   jamba.expert_gemm %{{[^ ,]+}}, %{{[^ ,]+}} scale
//       MULTI:   jamba.expert_gemm %{{[^ ,]+}}, %{{[^ ,]+}} scale
func.func @keep_multi_use(%x: tensor<?x64xf32>, %q: tensor<4x128x64xi8>, %s: tensor<4x128xf32>,
                          %idx: tensor<?x2xi32>) -> (tensor<?x2x128xf32>, tensor<?x2x128xf32>) {
  %w = jamba.dequant %q, %s : tensor<4x128x64xi8>, tensor<4x128xf32> -> tensor<4x128x64xf32>
  %a = jamba.expert_gemm %x, %w indices(%idx)
      : (tensor<?x64xf32>, tensor<4x128x64xf32>, tensor<?x2xi32>) -> tensor<?x2x128xf32>
  %b = jamba.expert_gemm %x, %w indices(%idx)
      : (tensor<?x64xf32>, tensor<4x128x64xf32>, tensor<?x2xi32>) -> tensor<?x2x128xf32>
  return %a, %b : tensor<?x2x128xf32>, tensor<?x2x128xf32>
}

// -----

// With a non-GEMM user, multi-use still fuses the GEMM but keeps the dequant
// for the other user.
// MULTI-LABEL: func @partial
//       MULTI:   %[[W:.+]] = jamba.dequant
//       MULTI:   jamba.expert_gemm %{{[^ ,]+}}, %{{[^ ,]+}} scale
//       MULTI:   return %{{[^ ,]+}}, %[[W]]
func.func @partial(%x: tensor<?x64xf32>, %q: tensor<4x128x64xi8>, %s: tensor<4x128xf32>,
                   %idx: tensor<?x2xi32>) -> (tensor<?x2x128xf32>, tensor<4x128x64xf32>) {
  %w = jamba.dequant %q, %s : tensor<4x128x64xi8>, tensor<4x128xf32> -> tensor<4x128x64xf32>
  %a = jamba.expert_gemm %x, %w indices(%idx)
      : (tensor<?x64xf32>, tensor<4x128x64xf32>, tensor<?x2xi32>) -> tensor<?x2x128xf32>
  return %a, %w : tensor<?x2x128xf32>, tensor<4x128x64xf32>
}

// -----

// Already-fused IR is left unchanged.
// CHECK-LABEL: func @already_fused
//       CHECK:   jamba.expert_gemm %{{[^ ,]+}}, %{{[^ ,]+}} scale(%{{[^)]+}}) indices
//  CHECK-NEXT:   return
func.func @already_fused(%x: tensor<?x64xf32>, %q: tensor<4x128x64xi8>, %s: tensor<4x128xf32>,
                         %idx: tensor<?x2xi32>) -> tensor<?x2x128xf32> {
  %a = jamba.expert_gemm %x, %q scale(%s) indices(%idx)
      : (tensor<?x64xf32>, tensor<4x128x64xi8>, tensor<4x128xf32>, tensor<?x2xi32>) -> tensor<?x2x128xf32>
  return %a : tensor<?x2x128xf32>
}

// -----

// Must not crash on IR without experts; a dequant feeding a non-GEMM stays.
// CHECK-LABEL: func @no_experts
//       CHECK:   jamba.dequant
//       CHECK:   arith.addf
func.func @no_experts(%q: tensor<8x4xi8>, %s: tensor<8xf32>) -> tensor<8x4xf32> {
  %w = jamba.dequant %q, %s : tensor<8x4xi8>, tensor<8xf32> -> tensor<8x4xf32>
  %y = arith.addf %w, %w : tensor<8x4xf32>
  return %y : tensor<8x4xf32>
}

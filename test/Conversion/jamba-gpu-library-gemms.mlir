// RUN: jamba-opt %s -split-input-file -jamba-gpu-library-gemms | FileCheck %s

// A dense linear with bf16 weights: the input is converted to bf16 into a
// fresh tensor, input and weight are read as identity-layout buffers, the
// f32 output is a fresh buffer, all three collapse to 2-D and the host
// calls the runtime's bf16 GEMM; the bias is added afterwards.

// CHECK: func.func private @jamba_rt_cuda_gemm_bf16(memref<?x?xf32>, memref<?x?xbf16>, memref<?x?xbf16>)
// CHECK-SAME: attributes {llvm.emit_c_interface}
// CHECK-LABEL: func.func @bf16_bias
// CHECK-SAME: (%[[X:.+]]: tensor<2x?x64xf32>, %[[W:.+]]: tensor<128x64xbf16>, %[[B:.+]]: tensor<128xf32>)
// CHECK: %[[XC:.+]] = linalg.generic {{.+}} ins(%[[X]] : tensor<2x?x64xf32>) outs(%{{.+}} : tensor<2x?x64xbf16>)
// CHECK:   arith.truncf {{.+}} : f32 to bf16
// CHECK: %[[XB:.+]] = bufferization.to_buffer %[[XC]] read_only : tensor<2x?x64xbf16> to memref<2x?x64xbf16>
// CHECK: %[[WB:.+]] = bufferization.to_buffer %[[W]] read_only : tensor<128x64xbf16> to memref<128x64xbf16>
// CHECK: %[[Y:.+]] = memref.alloc(%{{.+}}) : memref<2x?x128xf32>
// CHECK: %[[Y2:.+]] = memref.collapse_shape %[[Y]] {{\[\[}}0, 1], [2]]
// CHECK: %[[YC:.+]] = memref.cast %[[Y2]] : memref<?x128xf32> to memref<?x?xf32>
// CHECK: %[[X2:.+]] = memref.collapse_shape %[[XB]] {{\[\[}}0, 1], [2]]
// CHECK: %[[XCAST:.+]] = memref.cast %[[X2]]
// CHECK: %[[WCAST:.+]] = memref.cast %[[WB]] : memref<128x64xbf16> to memref<?x?xbf16>
// CHECK: call @jamba_rt_cuda_gemm_bf16(%[[YC]], %[[XCAST]], %[[WCAST]])
// CHECK: %[[YT:.+]] = bufferization.to_tensor %[[Y]] restrict writable
// CHECK: %[[SUM:.+]] = linalg.generic {{.+}} ins(%[[YT]], %[[B]] : tensor<2x?x128xf32>, tensor<128xf32>)
// CHECK:   arith.addf
// CHECK: return %[[SUM]]
func.func @bf16_bias(%x: tensor<2x?x64xf32>, %w: tensor<128x64xbf16>, %b: tensor<128xf32>)
    -> tensor<2x?x128xf32> {
  %y = jamba.linear %x, %w bias(%b)
      : (tensor<2x?x64xf32>, tensor<128x64xbf16>, tensor<128xf32>) -> tensor<2x?x128xf32>
  return %y : tensor<2x?x128xf32>
}

// -----

// f32 weights call the f32 GEMM (the input is still copied: a contiguous
// buffer whatever view the input is).

// CHECK: func.func private @jamba_rt_cuda_gemm_f32(memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>)
// CHECK-LABEL: func.func @f32
// CHECK: linalg.generic
// CHECK: call @jamba_rt_cuda_gemm_f32(
func.func @f32(%x: tensor<?x64xf32>, %w: tensor<32x64xf32>) -> tensor<?x32xf32> {
  %y = jamba.linear %x, %w : (tensor<?x64xf32>, tensor<32x64xf32>) -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// Left to the generated kernels: int8 weights with scales, and a weight
// that is not a function argument.

// CHECK-LABEL: func.func @kept
// CHECK-NOT: call @jamba_rt_cuda_gemm
// CHECK: jamba.linear
// CHECK: jamba.linear
func.func @kept(%x: tensor<?x64xf32>, %q: tensor<32x64xi8>, %s: tensor<32xf32>,
                %w: tensor<32x64xf32>) -> (tensor<?x32xf32>, tensor<?x32xf32>) {
  %y = jamba.linear %x, %q scale(%s)
      : (tensor<?x64xf32>, tensor<32x64xi8>, tensor<32xf32>) -> tensor<?x32xf32>
  %w2 = arith.negf %w : tensor<32x64xf32>
  %z = jamba.linear %x, %w2 : (tensor<?x64xf32>, tensor<32x64xf32>) -> tensor<?x32xf32>
  return %y, %z : tensor<?x32xf32>, tensor<?x32xf32>
}

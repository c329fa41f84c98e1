// RUN: jamba-opt %s -jamba-gpu-library-gemms -cse | FileCheck %s
// RUN: jamba-opt %s -jamba-gpu-library-gemms="gemv-rows=0" | FileCheck %s --check-prefix=CUBLAS
// RUN: not jamba-opt %s -jamba-gpu-library-gemms="gemv-rows=-1" 2>&1 | FileCheck %s --check-prefix=NEG

// A linear of at most gemv-rows (default 2) rows runs the generated GEMV
// kernel: a nest over (n, the rows when there are at most 2, else none, the
// 32 lanes of a warp), each lane's share of K in 16-byte vector loads (8
// bf16) when the buffers are aligned and K a multiple of 8, else in scalar
// loads; the lanes summed by five butterfly shuffles, lane 0 stores. The
// cuBLAS call runs only for more rows.

// CHECK-LABEL: func.func @decode
// CHECK: %[[X2:.+]] = memref.cast %{{.+}} : memref<?x4096xbf16> to memref<?x?xbf16>
// CHECK: %[[W2:.+]] = memref.cast %{{.+}} : memref<1024x4096xbf16> to memref<?x?xbf16>
// CHECK: %[[ROWS:.+]] = memref.dim %[[X2]], %c0
// CHECK: %[[FEW:.+]] = arith.cmpi ule, %[[ROWS]], %c2
// CHECK: %[[GEMV_ROWS:.+]] = arith.select %[[FEW]], %[[ROWS]], %c0
// CHECK: scf.parallel (%[[N:.+]], %[[M:.+]], %[[LANE:.+]]) = (%c0, %c0, %c0) to (%{{.+}}, %[[GEMV_ROWS]], %c32{{.*}})
// CHECK: scf.if
// CHECK: vector.load %[[W2]][%[[N]], %{{.+}}] {alignment = 16 : i64} : memref<?x?xbf16>, vector<8xbf16>
// CHECK: vector.load %[[X2]][%[[M]], %{{.+}}] {alignment = 16 : i64} : memref<?x?xbf16>, vector<8xbf16>
// CHECK: vector.reduction <add>
// CHECK: } else {
// CHECK: memref.load %[[X2]][%[[M]], %{{.+}}]
// CHECK: memref.load %[[W2]][%[[N]], %{{.+}}]
// CHECK-COUNT-5: gpu.shuffle  xor
// CHECK: %[[FIRST:.+]] = arith.cmpi eq, %[[LANE]], %c0
// CHECK: scf.if %[[FIRST]]
// CHECK: memref.store
// CHECK: %[[MANY:.+]] = arith.xori %[[FEW]], %true
// CHECK: scf.if %[[MANY]] {
// CHECK-NEXT: func.call @jamba_rt_cuda_gemm_bf16(
// CHECK-NEXT: }

// CUBLAS-LABEL: func.func @decode
// CUBLAS-NOT: scf.parallel
// CUBLAS-NOT: scf.if
// CUBLAS: call @jamba_rt_cuda_gemm_bf16(

// NEG: error: jamba-gpu-library-gemms: gemv-rows must be in [0, 1048576], got -1
func.func @decode(%x: tensor<?x4096xf32>, %w: tensor<1024x4096xbf16>) -> tensor<?x1024xf32> {
  %y = jamba.linear %x, %w : (tensor<?x4096xf32>, tensor<1024x4096xbf16>) -> tensor<?x1024xf32>
  return %y : tensor<?x1024xf32>
}

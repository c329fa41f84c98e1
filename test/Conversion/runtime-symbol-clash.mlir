// RUN: not jamba-opt %s -split-input-file -jamba-lower-collectives 2>&1 | FileCheck %s --check-prefix=COLL
// RUN: not jamba-opt %s -split-input-file -jamba-gpu-library-gemms 2>&1 | FileCheck %s --check-prefix=GEMM

// A module's own function named like a runtime entry point was reused as
// the callee, and the call did not verify ("incorrect number of operands").
// COLL: error: jamba-lower-collectives: @jamba_rt_all_reduce_f32 is the runtime's all-reduce, a declaration of type '(!llvm.ptr, i64) -> ()'; this module's symbol of that name is not
func.func @jamba_rt_all_reduce_f32(%x: tensor<4xf32>) -> tensor<4xf32> {
  %y = jamba.all_reduce %x : tensor<4xf32>
  return %y : tensor<4xf32>
}

// -----

// GEMM: error: jamba-gpu-library-gemms: @jamba_rt_cuda_gemm_f32 is the runtime's cuBLAS GEMM, a declaration of type '(memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>) -> ()'; this module's symbol of that name is not
func.func private @jamba_rt_cuda_gemm_f32(i32)
func.func @f(%x: tensor<?x64xf32>, %w: tensor<16x64xf32>) -> tensor<?x16xf32> {
  %y = jamba.linear %x, %w : (tensor<?x64xf32>, tensor<16x64xf32>) -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

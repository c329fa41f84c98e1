// RUN: jamba-opt %s -split-input-file -verify-diagnostics -jamba-gpu-lower-pipeline
// RUN: jamba-opt %s -split-input-file -jamba-cpu-lower-pipeline=gpu-kernels=1 | FileCheck %s --check-prefix=CPU

// A primitive jamba-gpu-kernels has no kernel for is named, not left to
// lower through linalg into host loops over device memory (whose error
// named a memref.load). The CPU pipeline's gpu-kernels mode takes the same
// forms through convert-jamba-to-linalg.
// CPU-LABEL: llvm.func @router_f64
func.func @router_f64(%l: tensor<3x8xf64>) -> (tensor<3x2xf32>, tensor<3x2xi32>) {
  // expected-error @+1 {{'jamba.router_topk' op has no GPU kernel in this form (jamba-gpu-kernels takes f32, bf16 and f16 operands and the ranks and sizes docs/CUDABackend.md lists; a router's top_k at most 16)}}
  %w, %i = jamba.router_topk %l {top_k = 2 : i64} : tensor<3x8xf64> -> tensor<3x2xf32>, tensor<3x2xi32>
  return %w, %i : tensor<3x2xf32>, tensor<3x2xi32>
}

// -----

// The kernel unrolls its picks, each against the ones before: a top_k of
// 999 wrote 2.5 million lines of IR and took minutes.
// CPU-LABEL: llvm.func @router_large_top_k
func.func @router_large_top_k(%l: tensor<3x40xf32>) -> (tensor<3x17xf32>, tensor<3x17xi32>) {
  // expected-error @+1 {{'jamba.router_topk' op has no GPU kernel in this form}}
  %w, %i = jamba.router_topk %l {top_k = 17 : i64} : tensor<3x40xf32> -> tensor<3x17xf32>, tensor<3x17xi32>
  return %w, %i : tensor<3x17xf32>, tensor<3x17xi32>
}

// -----

// A router of one row and no row dimension (the kernel's nest had no
// dimension to run in parallel: an invalid scf.parallel).
// CPU-LABEL: llvm.func @router_rank1
func.func @router_rank1(%l: tensor<4xf32>) -> (tensor<2xf32>, tensor<2xi32>) {
  // expected-error @+1 {{'jamba.router_topk' op has no GPU kernel in this form}}
  %w, %i = jamba.router_topk %l {top_k = 2 : i64} : tensor<4xf32> -> tensor<2xf32>, tensor<2xi32>
  return %w, %i : tensor<2xf32>, tensor<2xi32>
}

// -----

// Static unit sizes make a kernel's loop one iteration, which upstream
// canonicalization folds away before the loop becomes a kernel; the error
// says so.
func.func @static_unit_sizes(%x: tensor<1x1x64xf32>, %w: tensor<64xf32>) -> tensor<1x1x64xf32> {
  // expected-error @+1 {{would run on the host over device memory; only GPU kernels may touch buffer contents (a parallel loop of one iteration, as static unit sizes make, is folded away before it becomes a kernel: give the batch or sequence a dynamic size)}}
  %y = jamba.rms_norm %x, %w : tensor<1x1x64xf32>, tensor<64xf32>
  return %y : tensor<1x1x64xf32>
}

// -----

// An f64 expert weight: the GPU kernel read it as f32 (an f64 -> f32 extf
// of vectors); it is an f64 form like the others.
// CPU-LABEL: llvm.func @expert_gemm_f64_weight
func.func @expert_gemm_f64_weight(%x: tensor<?x64xf32>, %w: tensor<4x16x64xf64>, %idx: tensor<?x2xi32>) -> tensor<?x2x16xf32> {
  // expected-error @+1 {{'jamba.expert_gemm' op has no GPU kernel in this form}}
  %y = jamba.expert_gemm %x, %w indices(%idx) : (tensor<?x64xf32>, tensor<4x16x64xf64>, tensor<?x2xi32>) -> tensor<?x2x16xf32>
  return %y : tensor<?x2x16xf32>
}

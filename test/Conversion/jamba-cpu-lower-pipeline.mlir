// RUN: jamba-opt %s -split-input-file -jamba-cpu-lower-pipeline \
// RUN:   | FileCheck %s --implicit-check-not=jamba. --implicit-check-not=linalg. \
// RUN:       --implicit-check-not=tensor. --implicit-check-not=bufferization. \
// RUN:       --implicit-check-not=memref. --implicit-check-not=scf. \
// RUN:       --implicit-check-not=math. --implicit-check-not=cf. \
// RUN:       --implicit-check-not=unrealized_conversion_cast
// RUN: jamba-opt %s -split-input-file -jamba-cpu-lower-pipeline=approximate-math=false | FileCheck %s --check-prefix=LIBM
// RUN: jamba-opt %s -split-input-file -jamba-cpu-lower-pipeline=kernel-allocator \
// RUN:   | FileCheck %s --check-prefix=ALLOC --implicit-check-not=@malloc \
// RUN:       --implicit-check-not=@free

// Tests that a function of jamba primitives (an int8 MoE down projection
// with routing, the combine and a norm) reaches the LLVM dialect: nothing of
// jamba, linalg, tensor, memref, bufferization, scf, cf or math is left
// anywhere (implicit-check-not), temporaries are freed, and the C interface
// wrapper exists.
// CHECK-LABEL: llvm.func @moe_tail
//       CHECK:   llvm.call @malloc
//       CHECK:   llvm.call @free
//       CHECK: llvm.func @_mlir_ciface_moe_tail
// With kernel-allocator the temporaries come from the runtime's allocator
// (include/jamba/Runtime/KernelMemory.h), through MLIR's generic functions;
// malloc and free are not called anywhere.
// ALLOC-LABEL: llvm.func @moe_tail
// Alignments are asked for (use-aligned-alloc), not padded for, so that a
// power-of-two buffer keeps its size class; the plain alloc is not used.
//       ALLOC:   llvm.call @_mlir_memref_to_llvm_aligned_alloc
//   ALLOC-NOT:   llvm.call @_mlir_memref_to_llvm_alloc(
//       ALLOC:   llvm.call @_mlir_memref_to_llvm_free
func.func @moe_tail(%a: tensor<?x2x128xf32>, %q: tensor<4x64x128xi8>, %s: tensor<4x64xf32>,
                    %idx: tensor<?x2xi32>, %rw: tensor<?x2xf32>, %w: tensor<64xf32>)
    -> tensor<?x64xf32> attributes {llvm.emit_c_interface} {
  %d = jamba.expert_gemm %a, %q scale(%s) indices(%idx) route_weights(%rw)
      : (tensor<?x2x128xf32>, tensor<4x64x128xi8>, tensor<4x64xf32>, tensor<?x2xi32>,
         tensor<?x2xf32>) -> tensor<?x2x64xf32>
  %y = jamba.combine_slots %d : tensor<?x2x64xf32> -> tensor<?x64xf32>
  %n = jamba.rms_norm %y, %w : tensor<?x64xf32>, tensor<64xf32>
  return %n : tensor<?x64xf32>
}

// -----

// The Mamba primitives and the router: loops over tensors with iter_args
// bufferize and lower too. By default exp is a polynomial (no libm call);
// with approximate-math=false it stays an LLVM intrinsic.
// CHECK-LABEL: llvm.func @mamba_and_router
//   CHECK-NOT:   llvm.intr.exp
//       CHECK: llvm.func @_mlir_ciface_mamba_and_router
// LIBM-LABEL: llvm.func @mamba_and_router
//       LIBM:   llvm.intr.exp
func.func @mamba_and_router(%x: tensor<1x?x16xf32>, %cw: tensor<16x4xf32>, %cs: tensor<1x16x3xf32>,
                            %delta: tensor<1x?x16xf32>, %A: tensor<16x4xf32>, %B: tensor<1x?x4xf32>,
                            %C: tensor<1x?x4xf32>, %h0: tensor<1x16x4xf32>, %l: tensor<?x8xbf16>)
    -> (tensor<1x?x16xf32>, tensor<1x16x3xf32>, tensor<1x16x4xf32>, tensor<?x2xf32>, tensor<?x2xi64>)
    attributes {llvm.emit_c_interface} {
  %xc, %ns = jamba.causal_conv1d %x, %cw state(%cs) {silu}
      : (tensor<1x?x16xf32>, tensor<16x4xf32>, tensor<1x16x3xf32>) -> (tensor<1x?x16xf32>, tensor<1x16x3xf32>)
  %y, %h = jamba.selective_scan %xc, %delta, %A, %B, %C init_state(%h0) {delta_softplus}
      : (tensor<1x?x16xf32>, tensor<1x?x16xf32>, tensor<16x4xf32>, tensor<1x?x4xf32>,
         tensor<1x?x4xf32>, tensor<1x16x4xf32>) -> (tensor<1x?x16xf32>, tensor<1x16x4xf32>)
  %p, %i = jamba.router_topk %l {top_k = 2 : i64} : tensor<?x8xbf16> -> tensor<?x2xf32>, tensor<?x2xi64>
  return %y, %ns, %h, %p, %i
      : tensor<1x?x16xf32>, tensor<1x16x3xf32>, tensor<1x16x4xf32>, tensor<?x2xf32>, tensor<?x2xi64>
}

// -----

// Leave unchanged: a function with nothing to lower still becomes LLVM.
// CHECK-LABEL: llvm.func @plain
//       CHECK:   llvm.fadd
func.func @plain(%a: f32) -> f32 {
  %b = arith.addf %a, %a : f32
  return %b : f32
}

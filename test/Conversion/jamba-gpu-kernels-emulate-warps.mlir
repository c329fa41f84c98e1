// RUN: jamba-opt %s -jamba-gpu-kernels="emulate-warps=1" | FileCheck %s

// emulate-warps (the CPU pipeline's gpu-kernels mode). The wide RMSNorm's
// warp is one iteration per row whose 32 lanes take their turns, their sums
// of squares added in lane order instead of shuffled, then each lane's
// share written.

// CHECK-LABEL: func.func @rms_norm_wide
// CHECK-NOT: gpu.shuffle
// CHECK: scf.parallel (%{{.+}}) = (%{{.+}}) to (%{{.+}}) step
// CHECK:   %[[SUM:.+]] = scf.for %{{.+}} = %c0{{.*}} to %c32{{.*}} step %c1{{.*}} iter_args(%{{.+}} = %{{.+}}) -> (f32)
// CHECK:     scf.if
// CHECK:   math.sqrt
// CHECK:   scf.for %{{.+}} = %c0{{.*}} to %c32{{.*}} step %c1
// CHECK:     memref.store
// CHECK: } {jamba.kernel = "rms_norm_warp"}
func.func @rms_norm_wide(%x: tensor<?x512xf32>, %w: tensor<512xf32>) -> tensor<?x512xf32> {
  %y = jamba.rms_norm %x, %w {epsilon = 1.0e-06 : f64} : tensor<?x512xf32>, tensor<512xf32>
  return %y : tensor<?x512xf32>
}

// The expert GEMM's lane form with a warp per row (L = 32): the lanes'
// nest gets rows only when L < 32; otherwise one iteration per (group of 4
// outputs, row) runs the 32 lanes in turn, adds their sums in lane order
// and applies the epilogue (the scale, the routing weight).

// CHECK-LABEL: func.func @expert_gemm
// CHECK-NOT: gpu.shuffle
// CHECK: %[[WARP:.+]] = arith.cmpi eq, %{{.+}}, %c32
// CHECK: %[[PROWS:.+]] = arith.select %[[WARP]], %c0{{.*}}, %{{.+}} : index
// CHECK: %[[WROWS:.+]] = arith.select %[[WARP]], %{{.+}}, %c0{{.*}} : index
// CHECK: scf.parallel (%{{.+}}, %{{.+}}, %{{.+}}) = ({{.+}}) to (%{{.+}}, %[[PROWS]], %{{.+}})
// CHECK: } {jamba.kernel = "expert_gemm_lanes"}
// CHECK: scf.parallel (%{{.+}}, %{{.+}}) = ({{.+}}) to (%{{.+}}, %[[WROWS]])
// CHECK:   scf.for %{{.+}} = %c0{{.*}} to %c32{{.*}} step %c1{{.*}} iter_args({{.+}}) -> (f32, f32, f32, f32)
// CHECK:   memref.load %{{.+}} : memref<4x16xf32
// CHECK:   arith.mulf
// CHECK:   memref.store
// CHECK: } {jamba.kernel = "expert_gemm_warps"}
// CHECK: } {jamba.kernel = "expert_gemm_epilogue"}
func.func @expert_gemm(%x: tensor<?x2x32xf32>, %q: tensor<4x16x32xi8>, %s: tensor<4x16xf32>,
                       %idx: tensor<?x2xi32>, %rw: tensor<?x2xf32>) -> tensor<?x2x16xf32> {
  %y = jamba.expert_gemm %x, %q scale(%s) indices(%idx) route_weights(%rw)
      : (tensor<?x2x32xf32>, tensor<4x16x32xi8>, tensor<4x16xf32>, tensor<?x2xi32>,
         tensor<?x2xf32>) -> tensor<?x2x16xf32>
  return %y : tensor<?x2x16xf32>
}

// The scan's one-lane-per-state nest (at most 8 steps): one iteration per
// (sequence, group of 32 / 4 = 8 channels) runs the 32 lanes in turn at
// each step, each lane's state in the final-state buffer between steps
// (init_state at step 0), each channel's sum restarted at its first lane
// and written at its last.

// CHECK-LABEL: func.func @scan
// CHECK: %[[H:.+]] = memref.alloc() {jamba.state_over_old} : memref<2x8x4xf32>
// CHECK: scf.parallel (%{{.+}}, %{{.+}}) = ({{.+}}) to (%{{.+}}, %{{.+}}) step
// CHECK:   scf.for %[[T:.+]] = %c0{{.*}} to %{{.+}} step %c1
// CHECK:     scf.for %{{.+}} = %c0{{.*}} to %c32{{.*}} step %c1{{.*}} iter_args(%{{.+}} = %{{.+}}) -> (f32)
// CHECK:       scf.if %{{.+}} -> (f32) {
// CHECK:         memref.load %{{.+}} : memref<2x8x4xf32
// CHECK:       } else {
// CHECK:         memref.load %[[H]]
// CHECK:       math.exp2
// CHECK:       math.fma
// CHECK:         memref.store %{{.+}}, %[[H]]
// CHECK: } {jamba.kernel = "selective_scan_states"}
func.func @scan(%u: tensor<2x?x8xf32>, %delta: tensor<2x?x8xf32>, %A: tensor<8x4xf32>,
                %B: tensor<2x?x4xf32>, %C: tensor<2x?x4xf32>, %h0: tensor<2x8x4xf32>)
    -> (tensor<2x?x8xf32>, tensor<2x8x4xf32>) {
  %y, %h = jamba.selective_scan %u, %delta, %A, %B, %C init_state(%h0)
      : (tensor<2x?x8xf32>, tensor<2x?x8xf32>, tensor<8x4xf32>, tensor<2x?x4xf32>,
         tensor<2x?x4xf32>, tensor<2x8x4xf32>) -> (tensor<2x?x8xf32>, tensor<2x8x4xf32>)
  return %y, %h : tensor<2x?x8xf32>, tensor<2x8x4xf32>
}

// The greedy ids: each (row, chunk) warp and each row's warp is one
// iteration whose 32 lanes run in turn, their candidates combined in lane
// order (the combination does not depend on it), with no shuffle; the
// result is stored once per warp, without a lane test.

// CHECK-LABEL: func.func @argmax
// CHECK: scf.parallel (%{{.+}}, %{{.+}}) = ({{.+}}) to (%{{.+}}, %c3{{.*}}) step
// CHECK:   scf.for %{{.+}} = %c0{{.*}} to %c32{{.*}} step %c1{{.*}} iter_args(%{{.+}} = %{{.+}}, %{{.+}} = %{{.+}}) -> (f32, i32)
// CHECK-NOT: gpu.shuffle
// CHECK:   memref.store
// CHECK:   memref.store
// CHECK: } {jamba.kernel = "argmax_chunks"}
// CHECK: scf.parallel (%{{.+}}) = ({{.+}}) to (%{{.+}}) step
// CHECK:   scf.for %{{.+}} = %c0{{.*}} to %c32{{.*}} step %c1{{.*}} iter_args(%{{.+}} = %{{.+}}, %{{.+}} = %{{.+}}) -> (f32, i32)
// CHECK-NOT: gpu.shuffle
// CHECK:   memref.store
// CHECK: } {jamba.kernel = "argmax_rows"}
func.func @argmax(%l: tensor<?x2050xf32>) -> tensor<?xi32> {
  %i = jamba.argmax %l : tensor<?x2050xf32> -> tensor<?xi32>
  return %i : tensor<?xi32>
}

// RUN: jamba-opt %s -jamba-gpu-kernels="emulate-warps=1" | FileCheck %s

// emulate-warps (the CPU pipeline's gpu-kernels mode): the wide RMSNorm's
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

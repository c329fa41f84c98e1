// RUN: jamba-opt %s -jamba-gpu-lower-pipeline="states-in-place=1" \
// RUN:   --mlir-print-ir-after=jamba-states-in-place -o /dev/null 2>&1 \
// RUN:   | FileCheck %s
// RUN: jamba-opt %s -jamba-cpu-lower-pipeline="gpu-kernels=1 states-in-place=1" \
// RUN:   --mlir-print-ir-after=jamba-states-in-place -o /dev/null 2>&1 \
// RUN:   | FileCheck %s

// The KV caches of a stage (jamba.state arguments) are updated in place by
// the GPU kernels' attention, and a call touches only its new rows: after
// bufferization and jamba-states-in-place the caches are neither copied
// nor returned, and the append is a parallel loop over (sequence, kv head,
// token, channel) storing elements into the cache argument, followed by the
// two attention loops reading it.

// CHECK-LABEL: func.func @decode
// CHECK-SAME: %[[KC:[^:]+]]: memref<?x2x?x8xf32> {jamba.state = "layers.1.k_cache"}, %[[VC:[^:]+]]: memref<?x2x?x8xf32> {jamba.state = "layers.1.v_cache"}
// CHECK-SAME: -> (memref<?x?x32xf32> {jamba.output = "o"})
// CHECK-NOT: memref.copy
// CHECK-NOT: linalg.copy
// CHECK: %[[SEQ:.+]] = memref.dim %{{.+}}, %c1{{.*}} : memref<?x?x16xf32>
// CHECK: scf.parallel ({{.+}}) = ({{.+}}) to (%{{.+}}, %c2{{.*}}, %[[SEQ]], %c8{{.*}})
// CHECK:   %[[ROWK:.+]] = memref.subview %[[KC]]
// CHECK:   memref.store %{{.+}}, %[[ROWK]]
// CHECK: scf.parallel ({{.+}}) = ({{.+}}) to (%{{.+}}, %c2{{.*}}, %{{.+}}, %c8{{.*}})
// CHECK:   %[[ROWV:.+]] = memref.subview %[[VC]]
// CHECK:   memref.store %{{.+}}, %[[ROWV]]
// CHECK-NOT: memref.copy
// CHECK-NOT: linalg.copy
// CHECK: memref.load %[[KC]]
// CHECK: return %{{[^,]+}} : memref<?x?x32xf32>
func.func @decode(%q: tensor<?x?x32xf32>, %k: tensor<?x?x16xf32>, %v: tensor<?x?x16xf32>,
                  %kc: tensor<?x2x?x8xf32> {jamba.state = "layers.1.k_cache"},
                  %vc: tensor<?x2x?x8xf32> {jamba.state = "layers.1.v_cache"},
                  %len: tensor<?xi64>)
    -> (tensor<?x?x32xf32> {jamba.output = "o"},
        tensor<?x2x?x8xf32> {jamba.state = "layers.1.k_cache"},
        tensor<?x2x?x8xf32> {jamba.state = "layers.1.v_cache"}) {
  %o, %k2, %v2 = jamba.cached_attention %q, %k, %v, cache(%kc, %vc, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<?x?x32xf32>, tensor<?x?x16xf32>, tensor<?x?x16xf32>, tensor<?x2x?x8xf32>,
         tensor<?x2x?x8xf32>, tensor<?xi64>)
      -> (tensor<?x?x32xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>)
  return %o, %k2, %v2 : tensor<?x?x32xf32>, tensor<?x2x?x8xf32>, tensor<?x2x?x8xf32>
}

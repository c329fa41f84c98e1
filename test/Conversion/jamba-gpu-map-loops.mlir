// RUN: jamba-opt %s -split-input-file -jamba-gpu-map-loops -verify-diagnostics | FileCheck %s
// RUN: jamba-opt %s -split-input-file -jamba-gpu-map-loops="block-size=64" -verify-diagnostics \
// RUN:   | FileCheck %s --check-prefix=B64
// RUN: not jamba-opt %s -split-input-file -jamba-gpu-map-loops="block-size=2048" 2>&1 \
// RUN:   | FileCheck %s --check-prefix=BIG

// A 2-D parallel loop is collapsed into one dimension (the product of the
// trip counts), tiled by the block size with the tail guarded, and mapped:
// tiles to block_x, iterations in a tile to thread_x. The loop nested inside
// stays sequential in its thread.

// CHECK-LABEL: func.func @two_dims
// CHECK-SAME: (%[[X:.+]]: memref<?x64xf32>,
// CHECK: %[[ROWS:.+]] = memref.dim %[[X]]
// CHECK: %[[N:.+]] = arith.muli %{{.+}}, %c64
// CHECK: %[[C256:.+]] = arith.constant 256 : index
// CHECK: %[[STEP:.+]] = arith.muli %{{.+}}, %[[C256]]
// CHECK: scf.parallel (%[[TILE:.+]]) = (%{{.+}}) to (%[[N]]) step (%[[STEP]])
// CHECK:   scf.parallel (%[[LANE:.+]]) = (%{{.+}}) to (%[[STEP]])
// CHECK:     arith.addi %[[LANE]], %[[TILE]]
// CHECK:     arith.cmpi ult, %{{.+}}, %[[N]]
// CHECK:     scf.if
// CHECK:       scf.for
// CHECK:       memref.store
// CHECK:   } {mapping = [#gpu.loop_dim_map<processor = thread_x, map = (d0) -> (d0), bound = (d0) -> (d0)>]}
// CHECK: } {mapping = [#gpu.loop_dim_map<processor = block_x, map = (d0) -> (d0), bound = (d0) -> (d0)>]}
// B64-LABEL: func.func @two_dims
// B64: arith.constant 64 : index
// BIG: error: jamba-gpu-map-loops: block-size must be in [1, 1024], got 2048
func.func @two_dims(%x: memref<?x64xf32>, %y: memref<?x64xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c64 = arith.constant 64 : index
  %n = memref.dim %x, %c0 : memref<?x64xf32>
  scf.parallel (%i, %j) = (%c0, %c0) to (%n, %c64) step (%c1, %c1) {
    %s = scf.for %k = %c0 to %c64 step %c1 iter_args(%acc = %c0) -> (index) {
      %t = arith.addi %acc, %k : index
      scf.yield %t : index
    }
    %v = memref.load %x[%i, %j] : memref<?x64xf32>
    memref.store %v, %y[%i, %s] : memref<?x64xf32>
    scf.reduce
  }
  return
}

// -----

// A host memref.copy becomes an elementwise parallel copy (then a kernel);
// a copy inside a parallel loop is left alone.

// CHECK-LABEL: func.func @copies
// CHECK-NOT: memref.copy %{{.+}}, %{{.+}} : memref<4x?xf32>
// CHECK: scf.parallel
// CHECK:   scf.parallel
// CHECK:     memref.load %{{.+}} : memref<4x?xf32>
// CHECK:     memref.store %{{.+}} : memref<4x?xf32>
// CHECK: scf.parallel
// CHECK:   memref.copy %{{.+}}, %{{.+}} : memref<2xf32> to memref<2xf32>
func.func @copies(%a: memref<4x?xf32>, %b: memref<4x?xf32>, %c: memref<2xf32>,
                  %d: memref<2xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  memref.copy %a, %b : memref<4x?xf32> to memref<4x?xf32>
  scf.parallel (%i) = (%c0) to (%c1) step (%c1) {
    memref.copy %c, %d : memref<2xf32> to memref<2xf32>
    scf.reduce
  }
  return
}

// -----

func.func @reduction(%x: memref<8xf32>) -> f32 {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %zero = arith.constant 0.0 : f32
  // expected-error @below {{jamba-gpu-map-loops: a parallel loop with reductions has no GPU mapping}}
  %s = scf.parallel (%i) = (%c0) to (%c8) step (%c1) init (%zero) -> f32 {
    %v = memref.load %x[%i] : memref<8xf32>
    scf.reduce(%v : f32) {
    ^bb0(%l: f32, %r: f32):
      %t = arith.addf %l, %r : f32
      scf.reduce.return %t : f32
    }
  }
  return %s : f32
}

// -----

// The function records its kernels' names in launch order: a nest's
// `jamba.kernel`, else one of its stores' (a loop canonicalization rebuilt
// keeps its body), else `linalg`; a host copy is `copy`.

// CHECK-LABEL: func.func @names
// CHECK-SAME: jamba.kernel_names = ["selective_scan", "attention_splits", "copy", "linalg"]
func.func @names(%x: memref<8xf32>, %y: memref<8xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  scf.parallel (%i) = (%c0) to (%c8) step (%c1) {
    %v = memref.load %x[%i] : memref<8xf32>
    memref.store %v, %y[%i] : memref<8xf32>
    scf.reduce
  } {jamba.kernel = "selective_scan"}
  scf.parallel (%i) = (%c0) to (%c8) step (%c1) {
    %v = memref.load %y[%i] : memref<8xf32>
    memref.store %v, %x[%i] {jamba.kernel = "attention_splits"} : memref<8xf32>
    scf.reduce
  }
  memref.copy %x, %y : memref<8xf32> to memref<8xf32>
  scf.parallel (%i) = (%c0) to (%c8) step (%c1) {
    %v = memref.load %y[%i] : memref<8xf32>
    memref.store %v, %x[%i] : memref<8xf32>
    scf.reduce
  }
  return
}

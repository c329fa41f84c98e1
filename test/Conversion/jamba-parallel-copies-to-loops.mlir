// RUN: jamba-opt %s -split-input-file -jamba-parallel-copies-to-loops | FileCheck %s

// A copy inside a parallel loop becomes one scf.for per dimension around an
// element load and store; a copy outside parallel loops stays.

// CHECK-LABEL: func.func @rows
// CHECK-SAME: (%[[SRC:[^:]+]]: memref<4x?x8xf32>, %[[DST:[^:]+]]: memref<4x2x?x8xf32>
// CHECK: scf.parallel (%[[I:.+]]) =
// CHECK-NOT: memref.copy
// CHECK:   %[[FROM:.+]] = memref.subview %[[SRC]][%[[I]], 0, 0]
// CHECK:   %[[TO:.+]] = memref.subview %[[DST]][%[[I]], 1, 0, 0]
// CHECK:   scf.for %[[R:.+]] = %{{.+}} to %{{.+}} step
// CHECK:     scf.for %[[D:.+]] = %{{.+}} to %{{.+}} step
// CHECK:       %[[V:.+]] = memref.load %[[FROM]][%[[R]], %[[D]]]
// CHECK:       memref.store %[[V]], %[[TO]][%[[R]], %[[D]]]
// CHECK: memref.copy %[[SRC]], %{{.+}} : memref<4x?x8xf32> to memref<4x?x8xf32>
func.func @rows(%src: memref<4x?x8xf32>, %dst: memref<4x2x?x8xf32>, %other: memref<4x?x8xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %n = memref.dim %src, %c1 : memref<4x?x8xf32>
  scf.parallel (%i) = (%c0) to (%c4) step (%c1) {
    %from = memref.subview %src[%i, 0, 0] [1, %n, 8] [1, 1, 1]
        : memref<4x?x8xf32> to memref<?x8xf32, strided<[8, 1], offset: ?>>
    %to = memref.subview %dst[%i, 1, 0, 0] [1, 1, %n, 8] [1, 1, 1, 1]
        : memref<4x2x?x8xf32> to memref<?x8xf32, strided<[8, 1], offset: ?>>
    memref.copy %from, %to : memref<?x8xf32, strided<[8, 1], offset: ?>>
        to memref<?x8xf32, strided<[8, 1], offset: ?>>
    scf.reduce
  }
  memref.copy %src, %other : memref<4x?x8xf32> to memref<4x?x8xf32>
  return
}

// -----

// An scf.forall (the cache append after bufferization) becomes an
// scf.parallel that keeps its kernel name, and the stores of its copy loops
// carry the name too (canonicalization may rebuild the loop without it).

// CHECK-LABEL: func.func @named_forall
// CHECK-NOT: scf.forall
// CHECK: scf.parallel (%[[I:.+]], %[[J:.+]]) =
// CHECK:   scf.for
// CHECK:     memref.store {{.+}} {jamba.kernel = "cache_append"}
// CHECK: } {jamba.kernel = "cache_append"}
func.func @named_forall(%src: memref<4x3x8xf32>, %dst: memref<4x3x8xf32>) {
  scf.forall (%i, %j) in (4, 3) {
    %from = memref.subview %src[%i, %j, 0] [1, 1, 8] [1, 1, 1]
        : memref<4x3x8xf32> to memref<8xf32, strided<[1], offset: ?>>
    %to = memref.subview %dst[%i, %j, 0] [1, 1, 8] [1, 1, 1]
        : memref<4x3x8xf32> to memref<8xf32, strided<[1], offset: ?>>
    memref.copy %from, %to : memref<8xf32, strided<[1], offset: ?>>
        to memref<8xf32, strided<[1], offset: ?>>
  } {jamba.kernel = "cache_append"}
  return
}

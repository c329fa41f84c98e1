// RUN: jamba-opt %s -split-input-file -jamba-gpu-fuse-loops | FileCheck %s

// Two independent loops over the same rows (each reads its own view of one
// buffer and writes its own output; the second's output is allocated in
// between): one loop, the first body first, named once.

// CHECK-LABEL: func.func @independent
// CHECK: %[[B:.+]] = memref.alloc
// CHECK: scf.parallel (%[[I:.+]]) =
// CHECK:   %[[X:.+]] = memref.load %{{.+}}[%[[I]], %c0]
// CHECK:   memref.store %[[X]], %{{.+}}[%[[I]]] {jamba.kernel = "norm"}
// CHECK:   %[[Y:.+]] = memref.load %{{.+}}[%[[I]], %c1]
// CHECK:   memref.store %[[Y]], %[[B]][%[[I]]] {jamba.kernel = "norm"}
// CHECK: } {jamba.kernel = "norm"}
// CHECK-NOT: scf.parallel
func.func @independent(%in: memref<?x2xf32>, %a: memref<?xf32>) -> memref<?xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %n = memref.dim %in, %c0 : memref<?x2xf32>
  scf.parallel (%i) = (%c0) to (%n) step (%c1) {
    %x = memref.load %in[%i, %c0] : memref<?x2xf32>
    memref.store %x, %a[%i] {jamba.kernel = "norm"} : memref<?xf32>
  } {jamba.kernel = "norm"}
  %b = memref.alloc(%n) : memref<?xf32>
  %c0b = arith.constant 0 : index
  scf.parallel (%i) = (%c0b) to (%n) step (%c1) {
    %y = memref.load %in[%i, %c1] : memref<?x2xf32>
    memref.store %y, %b[%i] {jamba.kernel = "norm"} : memref<?xf32>
  } {jamba.kernel = "norm"}
  return %b : memref<?xf32>
}

// Loops that write views of two different buffers and read a third's
// (the Mamba dt/B/C norms: slices of x_proj's output), with a vector store
// and a buffer of their own per iteration: independent, merged.

// CHECK-LABEL: func.func @through_views
// CHECK: scf.parallel
// CHECK:   memref.alloca
// CHECK:   vector.store
// CHECK:   memref.store
// CHECK-NOT: scf.parallel
func.func @through_views(%n: index, %in: memref<?x8xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %f = arith.constant 1.0 : f32
  %a = memref.alloc(%n) : memref<?x8xf32>
  %va = memref.subview %a[0, 0] [%n, 4] [1, 1] : memref<?x8xf32> to memref<?x4xf32, strided<[8, 1]>>
  %vi = memref.subview %in[0, 0] [%n, 4] [1, 1] : memref<?x8xf32> to memref<?x4xf32, strided<[8, 1]>>
  scf.parallel (%i) = (%c0) to (%n) step (%c1) {
    %t = memref.alloca() : memref<4xf32>
    %x = vector.load %vi[%i, %c0] : memref<?x4xf32, strided<[8, 1]>>, vector<4xf32>
    vector.store %x, %t[%c0] : memref<4xf32>, vector<4xf32>
    vector.store %x, %va[%i, %c0] : memref<?x4xf32, strided<[8, 1]>>, vector<4xf32>
  }
  %b = memref.alloc(%n) : memref<?x8xf32>
  %vb = memref.subview %b[0, 4] [%n, 4] [1, 1] : memref<?x8xf32> to memref<?x4xf32, strided<[8, 1], offset: 4>>
  %vj = memref.subview %in[0, 4] [%n, 4] [1, 1] : memref<?x8xf32> to memref<?x4xf32, strided<[8, 1], offset: 4>>
  scf.parallel (%i) = (%c0) to (%n) step (%c1) {
    %y = memref.load %vj[%i, %c1] : memref<?x4xf32, strided<[8, 1], offset: 4>>
    memref.store %y, %vb[%i, %c0] : memref<?x4xf32, strided<[8, 1], offset: 4>>
  }
  memref.dealloc %a : memref<?x8xf32>
  memref.dealloc %b : memref<?x8xf32>
  return
}

// -----

// Loops with different names: the fused one is named after both. Three in
// a row become one.

// CHECK-LABEL: func.func @three_named
// CHECK: scf.parallel
// CHECK: } {jamba.kernel = "first_and_second_and_third"}
// CHECK-NOT: scf.parallel
func.func @three_named(%n: index, %a: memref<?xf32>, %b: memref<?xf32>, %c: memref<?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %f = arith.constant 1.0 : f32
  scf.parallel (%i) = (%c0) to (%n) step (%c1) {
    memref.store %f, %a[%i] : memref<?xf32>
  } {jamba.kernel = "first"}
  scf.parallel (%i) = (%c0) to (%n) step (%c1) {
    memref.store %f, %b[%i] : memref<?xf32>
  } {jamba.kernel = "second"}
  scf.parallel (%i) = (%c0) to (%n) step (%c1) {
    memref.store %f, %c[%i] : memref<?xf32>
  } {jamba.kernel = "third"}
  return
}

// -----

// A buffer written by one loop and read or written by the other, each
// time at the iteration's own element (the indices are the induction
// variables): iteration i does to element i what the two did, in order.
// The MoE's output: zero, the sum over the slots, the residual add.

// CHECK-LABEL: func.func @own_elements
// CHECK: scf.parallel (%[[I:.+]], %[[J:.+]]) =
// CHECK:   memref.store %{{.+}}, %[[S:.+]][%[[I]], %[[J]]]
// CHECK:   scf.for
// CHECK:     memref.load %[[S]][%[[I]], %[[J]]]
// CHECK:     memref.store %{{.+}}, %[[S]][%[[I]], %[[J]]]
// CHECK:   memref.load %[[S]][%[[I]], %[[J]]]
// CHECK-NOT: scf.parallel
func.func @own_elements(%t: index, %x: memref<?x2x8xf32>, %r: memref<?x8xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c8 = arith.constant 8 : index
  %z = arith.constant 0.0 : f32
  %s = memref.alloc(%t) : memref<?x8xf32>
  scf.parallel (%i, %j) = (%c0, %c0) to (%t, %c8) step (%c1, %c1) {
    memref.store %z, %s[%i, %j] : memref<?x8xf32>
  }
  scf.parallel (%i, %j) = (%c0, %c0) to (%t, %c8) step (%c1, %c1) {
    scf.for %k = %c0 to %c2 step %c1 {
      %v = memref.load %x[%i, %k, %j] : memref<?x2x8xf32>
      %a = memref.load %s[%i, %j] : memref<?x8xf32>
      %b = arith.addf %a, %v : f32
      memref.store %b, %s[%i, %j] : memref<?x8xf32>
    }
  }
  scf.parallel (%i, %j) = (%c0, %c0) to (%t, %c8) step (%c1, %c1) {
    %a = memref.load %r[%i, %j] : memref<?x8xf32>
    %b = memref.load %s[%i, %j] : memref<?x8xf32>
    %c = arith.addf %a, %b : f32
    memref.store %c, %r[%i, %j] : memref<?x8xf32>
  }
  memref.dealloc %s : memref<?x8xf32>
  return
}

// Pairs left apart: the second reads what the first writes at another
// element, writes what the first reads at another element, writes the
// same buffer at other elements, or reads through a view of the written
// buffer.

// CHECK-LABEL: func.func @read_after_write
// CHECK-COUNT-2: scf.parallel
// CHECK-NOT: scf.parallel
func.func @read_after_write(%n: index, %a: memref<?xf32>, %b: memref<?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %f = arith.constant 1.0 : f32
  scf.parallel (%i) = (%c0) to (%n) step (%c1) {
    memref.store %f, %a[%i] : memref<?xf32>
  }
  scf.parallel (%i) = (%c0) to (%n) step (%c1) {
    %j = arith.subi %n, %i : index
    %x = memref.load %a[%j] : memref<?xf32>
    memref.store %x, %b[%i] : memref<?xf32>
  }
  return
}

// CHECK-LABEL: func.func @write_after_read
// CHECK-COUNT-2: scf.parallel
// CHECK-NOT: scf.parallel
func.func @write_after_read(%n: index, %b: memref<?xf32>, %c: memref<?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %f = arith.constant 1.0 : f32
  scf.parallel (%i) = (%c0) to (%n) step (%c1) {
    %j = arith.subi %n, %i : index
    %x = memref.load %b[%j] : memref<?xf32>
    memref.store %x, %c[%i] : memref<?xf32>
  }
  scf.parallel (%i) = (%c0) to (%n) step (%c1) {
    memref.store %f, %b[%i] : memref<?xf32>
  }
  return
}

// CHECK-LABEL: func.func @two_writes
// CHECK-COUNT-2: scf.parallel
// CHECK-NOT: scf.parallel
func.func @two_writes(%n: index, %c: memref<?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %f = arith.constant 1.0 : f32
  %g = arith.constant 2.0 : f32
  scf.parallel (%i) = (%c0) to (%n) step (%c1) {
    memref.store %f, %c[%i] : memref<?xf32>
  }
  scf.parallel (%i) = (%c0) to (%n) step (%c1) {
    %j = arith.subi %n, %i : index
    memref.store %g, %c[%j] : memref<?xf32>
  }
  return
}

// CHECK-LABEL: func.func @read_through_a_view
// CHECK-COUNT-2: scf.parallel
// CHECK-NOT: scf.parallel
func.func @read_through_a_view(%n: index, %b: memref<?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %f = arith.constant 1.0 : f32
  %a = memref.alloc(%n) : memref<?xf32>
  scf.parallel (%i) = (%c0) to (%n) step (%c1) {
    memref.store %f, %a[%i] : memref<?xf32>
  }
  %v = memref.subview %a[0] [%n] [1] : memref<?xf32> to memref<?xf32, strided<[1]>>
  scf.parallel (%i) = (%c0) to (%n) step (%c1) {
    %x = memref.load %v[%i] : memref<?xf32, strided<[1]>>
    memref.store %x, %b[%i] : memref<?xf32>
  }
  memref.dealloc %a : memref<?xf32>
  return
}

// -----

// Left alone: different bounds, an op with effects between the loops, an
// op of unknown effects inside one, a reduction, a nested parallel loop.

// CHECK-LABEL: func.func @different_bounds
// CHECK-COUNT-2: scf.parallel
// CHECK-NOT: scf.parallel
func.func @different_bounds(%n: index, %m: index, %a: memref<?xf32>, %b: memref<?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %f = arith.constant 1.0 : f32
  scf.parallel (%i) = (%c0) to (%n) step (%c1) {
    memref.store %f, %a[%i] : memref<?xf32>
  }
  scf.parallel (%i) = (%c0) to (%m) step (%c1) {
    memref.store %f, %b[%i] : memref<?xf32>
  }
  return
}

// CHECK-LABEL: func.func @store_between
// CHECK-COUNT-2: scf.parallel
// CHECK-NOT: scf.parallel
func.func @store_between(%n: index, %a: memref<?xf32>, %b: memref<?xf32>, %s: memref<f32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %f = arith.constant 1.0 : f32
  scf.parallel (%i) = (%c0) to (%n) step (%c1) {
    memref.store %f, %a[%i] : memref<?xf32>
  }
  memref.store %f, %s[] : memref<f32>
  scf.parallel (%i) = (%c0) to (%n) step (%c1) {
    memref.store %f, %b[%i] : memref<?xf32>
  }
  return
}

// CHECK-LABEL: func.func @unknown_effects
// CHECK-COUNT-2: scf.parallel
// CHECK-NOT: scf.parallel
func.func @unknown_effects(%n: index, %a: memref<?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %f = arith.constant 1.0 : f32
  scf.parallel (%i) = (%c0) to (%n) step (%c1) {
    func.call @opaque() : () -> ()
  }
  scf.parallel (%i) = (%c0) to (%n) step (%c1) {
    memref.store %f, %a[%i] : memref<?xf32>
  }
  return
}
func.func private @opaque()

// CHECK-LABEL: func.func @reduction
// CHECK-COUNT-2: scf.parallel
// CHECK-NOT: scf.parallel
func.func @reduction(%n: index, %a: memref<?xf32>, %b: memref<?xf32>) -> f32 {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %f = arith.constant 1.0 : f32
  %r = scf.parallel (%i) = (%c0) to (%n) step (%c1) init (%f) -> f32 {
    %x = memref.load %b[%i] : memref<?xf32>
    scf.reduce(%x : f32) {
    ^bb0(%l: f32, %r: f32):
      %t = arith.addf %l, %r : f32
      scf.reduce.return %t : f32
    }
  }
  scf.parallel (%i) = (%c0) to (%n) step (%c1) {
    memref.store %f, %a[%i] : memref<?xf32>
  }
  return %r : f32
}

// CHECK-LABEL: func.func @nested
// CHECK-COUNT-3: scf.parallel
// CHECK-NOT: scf.parallel
func.func @nested(%n: index, %a: memref<?xf32>, %b: memref<?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %f = arith.constant 1.0 : f32
  scf.parallel (%i) = (%c0) to (%n) step (%c1) {
    memref.store %f, %a[%i] : memref<?xf32>
  }
  scf.parallel (%i) = (%c0) to (%n) step (%c1) {
    scf.parallel (%j) = (%c0) to (%n) step (%c1) {
      memref.store %f, %b[%j] : memref<?xf32>
    }
  }
  return
}

// -----

// A shared buffer indexed by only some of the induction variables, or by
// them in another order: other iterations touch the same element, so the
// loops stay apart.

// CHECK-LABEL: func.func @fewer_indices
// CHECK-COUNT-2: scf.parallel
// CHECK-NOT: scf.parallel
func.func @fewer_indices(%n: index, %s: memref<?xf32>, %r: memref<?x4xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %f = arith.constant 1.0 : f32
  scf.parallel (%i, %j) = (%c0, %c0) to (%n, %c4) step (%c1, %c1) {
    memref.store %f, %s[%i] : memref<?xf32>
  }
  scf.parallel (%i, %j) = (%c0, %c0) to (%n, %c4) step (%c1, %c1) {
    %v = memref.load %s[%i] : memref<?xf32>
    memref.store %v, %r[%i, %j] : memref<?x4xf32>
  }
  return
}

// CHECK-LABEL: func.func @swapped_indices
// CHECK-COUNT-2: scf.parallel
// CHECK-NOT: scf.parallel
func.func @swapped_indices(%s: memref<4x4xf32>, %r: memref<4x4xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %f = arith.constant 1.0 : f32
  scf.parallel (%i, %j) = (%c0, %c0) to (%c4, %c4) step (%c1, %c1) {
    memref.store %f, %s[%i, %j] : memref<4x4xf32>
  }
  scf.parallel (%i, %j) = (%c0, %c0) to (%c4, %c4) step (%c1, %c1) {
    %v = memref.load %s[%j, %i] : memref<4x4xf32>
    memref.store %v, %r[%i, %j] : memref<4x4xf32>
  }
  return
}

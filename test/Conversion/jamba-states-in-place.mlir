// RUN: jamba-opt %s -jamba-states-in-place -split-input-file -verify-diagnostics | FileCheck %s

// A state written in place (returned as its argument, possibly through a
// cast) is dropped from the results; one returned in a new buffer is copied
// into its argument first. Other results stay.

// CHECK-LABEL: func.func @decode
// CHECK-SAME:    (%[[IDS:.+]]: memref<?x1xi32>, %[[KC:.+]]: memref<?x2x?x16xf32> {jamba.state = "layers.1.k_cache"}, %[[VC:.+]]: memref<?x2x?x16xf32> {jamba.state = "layers.1.v_cache"}, %[[SS:.+]]: memref<?x8x4xf32> {jamba.state = "layers.0.ssm_state"})
// CHECK-SAME:    -> (memref<?x1x32xf32> {jamba.output = "logits"})
// CHECK:         memref.alloc
// CHECK:         %[[NEW:.+]] = memref.alloc
// CHECK-NOT:     linalg.copy ins(%{{.+}} : memref<?x2x?x16xf32>)
// CHECK:         linalg.copy ins(%[[NEW]] : memref<?x8x4xf32>) outs(%[[SS]] : memref<?x8x4xf32>)
// CHECK-NEXT:    return %{{.+}} : memref<?x1x32xf32>
func.func @decode(%ids: memref<?x1xi32>,
                  %kc: memref<?x2x?x16xf32> {jamba.state = "layers.1.k_cache"},
                  %vc: memref<?x2x?x16xf32> {jamba.state = "layers.1.v_cache"},
                  %ss: memref<?x8x4xf32> {jamba.state = "layers.0.ssm_state"})
    -> (memref<?x1x32xf32> {jamba.output = "logits"},
        memref<?x8x4xf32> {jamba.state = "layers.0.ssm_state"},
        memref<?x2x?x16xf32> {jamba.state = "layers.1.k_cache"},
        memref<?x2x?x16xf32> {jamba.state = "layers.1.v_cache"}) {
  %c0 = arith.constant 0 : index
  %b = memref.dim %ids, %c0 : memref<?x1xi32>
  %logits = memref.alloc(%b) : memref<?x1x32xf32>
  %new = memref.alloc(%b) : memref<?x8x4xf32>
  %cast = memref.cast %vc : memref<?x2x?x16xf32> to memref<?x2x?x16xf32, strided<[?, ?, ?, 1], offset: ?>>
  %back = memref.cast %cast : memref<?x2x?x16xf32, strided<[?, ?, ?, 1], offset: ?>> to memref<?x2x?x16xf32>
  return %logits, %new, %kc, %back : memref<?x1x32xf32>, memref<?x8x4xf32>, memref<?x2x?x16xf32>, memref<?x2x?x16xf32>
}

// -----

// expected-error @+1 {{jamba-states-in-place: result #0 is state 'layers.0.ssm_state' but no argument is}}
func.func @no_argument(%x: memref<2xf32>) -> (memref<2xf32> {jamba.state = "layers.0.ssm_state"}) {
  return %x : memref<2xf32>
}

// -----

// expected-error @+1 {{jamba-states-in-place: state 'layers.0.ssm_state' is not a buffer (run after bufferization)}}
func.func @tensors(%s: tensor<2xf32> {jamba.state = "layers.0.ssm_state"}) -> (tensor<2xf32> {jamba.state = "layers.0.ssm_state"}) {
  return %s : tensor<2xf32>
}

// -----

// One state written back twice: both copies went over the argument and the
// last silently won.
// expected-error @+1 {{jamba-states-in-place: results #0 and #1 are both state 'layers.0.ssm_state'}}
func.func @two_results(%s: memref<4xf32> {jamba.state = "layers.0.ssm_state"}) -> (memref<4xf32> {jamba.state = "layers.0.ssm_state"}, memref<4xf32> {jamba.state = "layers.0.ssm_state"}) {
  %a = memref.alloc() : memref<4xf32>
  %b = memref.alloc() : memref<4xf32>
  return %a, %b : memref<4xf32>, memref<4xf32>
}

// -----

// expected-error @+1 {{jamba-states-in-place: arguments #0 and #1 are both state 'layers.0.ssm_state'}}
func.func @two_arguments(%s: memref<4xf32> {jamba.state = "layers.0.ssm_state"}, %t: memref<4xf32> {jamba.state = "layers.0.ssm_state"}) -> (memref<4xf32> {jamba.state = "layers.0.ssm_state"}) {
  return %s : memref<4xf32>
}

// -----

// The new state goes over the old one, so it has its shape (the copy's own
// verifier named neither).
// expected-error @+1 {{jamba-states-in-place: state 'layers.0.ssm_state' is returned as 'memref<4xf32>' but its argument is 'memref<8xf32>'}}
func.func @other_shape(%s: memref<8xf32> {jamba.state = "layers.0.ssm_state"}) -> (memref<4xf32> {jamba.state = "layers.0.ssm_state"}) {
  %a = memref.alloc() : memref<4xf32>
  return %a : memref<4xf32>
}

// -----

// A new state in a buffer its kernel may write over the old state
// (jamba.state_over_old, from jamba-gpu-kernels' scan and conv), with no
// reader of the old state after that kernel: the kernel writes into the
// argument, and there is neither a buffer nor a copy.

// CHECK-LABEL: func.func @over_old
// CHECK-SAME:    (%[[SS:.+]]: memref<2x4xf32> {jamba.state = "layers.0.ssm_state"})
// CHECK-NOT:     memref.alloc
// CHECK:         scf.parallel
// CHECK:           memref.load %[[SS]]
// CHECK:           memref.store %{{.+}}, %[[SS]]
// CHECK-NOT:     linalg.copy
// CHECK:         return{{$}}
func.func @over_old(%ss: memref<2x4xf32> {jamba.state = "layers.0.ssm_state"})
    -> (memref<2x4xf32> {jamba.state = "layers.0.ssm_state"}) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c4 = arith.constant 4 : index
  %new = memref.alloc() {jamba.state_over_old} : memref<2x4xf32>
  scf.parallel (%i, %j) = (%c0, %c0) to (%c2, %c4) step (%c1, %c1) {
    %v = memref.load %ss[%i, %j] : memref<2x4xf32>
    %w = arith.addf %v, %v : f32
    memref.store %w, %new[%i, %j] : memref<2x4xf32>
  }
  return %new : memref<2x4xf32>
}

// -----

// The old state read after the kernel that writes the new one (here by a
// copy into another output): it must survive, so the new state is copied.

// CHECK-LABEL: func.func @old_read_later
// CHECK:         %[[NEW:.+]] = memref.alloc() {jamba.state_over_old}
// CHECK:         memref.copy
// CHECK:         linalg.copy ins(%[[NEW]] : memref<2x4xf32>)
func.func @old_read_later(%ss: memref<2x4xf32> {jamba.state = "layers.0.ssm_state"},
                          %out: memref<2x4xf32>)
    -> (memref<2x4xf32> {jamba.state = "layers.0.ssm_state"}) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c4 = arith.constant 4 : index
  %new = memref.alloc() {jamba.state_over_old} : memref<2x4xf32>
  scf.parallel (%i, %j) = (%c0, %c0) to (%c2, %c4) step (%c1, %c1) {
    %v = memref.load %ss[%i, %j] : memref<2x4xf32>
    memref.store %v, %new[%i, %j] : memref<2x4xf32>
  }
  memref.copy %ss, %out : memref<2x4xf32> to memref<2x4xf32>
  return %new : memref<2x4xf32>
}

// -----

// The old state read between the kernel and a later reader of the new
// state: still a reader after the kernel, so the copy stays.

// CHECK-LABEL: func.func @old_read_between
// CHECK:         %[[NEW:.+]] = memref.alloc() {jamba.state_over_old}
// CHECK:         linalg.copy ins(%[[NEW]] : memref<4xf32>)
func.func @old_read_between(%ss: memref<4xf32> {jamba.state = "layers.0.ssm_state"},
                            %out: memref<4xf32>, %out2: memref<4xf32>)
    -> (memref<4xf32> {jamba.state = "layers.0.ssm_state"}) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %new = memref.alloc() {jamba.state_over_old} : memref<4xf32>
  scf.parallel (%i) = (%c0) to (%c4) step (%c1) {
    %v = memref.load %ss[%i] : memref<4xf32>
    memref.store %v, %new[%i] : memref<4xf32>
  }
  memref.copy %ss, %out : memref<4xf32> to memref<4xf32>
  memref.copy %new, %out2 : memref<4xf32> to memref<4xf32>
  return %new : memref<4xf32>
}

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

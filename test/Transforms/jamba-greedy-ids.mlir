// RUN: jamba-opt %s -jamba-greedy-ids -split-input-file -verify-diagnostics | FileCheck %s

// The logits' argmax becomes one more result, after the states, named
// greedy_ids; the logits stay the first result. A prefill keeping every
// position gets an id per position.

// CHECK-LABEL: func.func @decode
// CHECK-SAME:    -> (tensor<?x1x16xf32> {jamba.output = "logits"}, tensor<?x8x3xf32> {jamba.state = "layers.0.conv_state"}, tensor<?x1xi32> {jamba.output = "greedy_ids"})
// CHECK:         %[[L:.+]] = jamba.lm_head
// CHECK:         %[[I:.+]] = jamba.argmax %[[L]] : tensor<?x1x16xf32> -> tensor<?x1xi32>
// CHECK:         return %[[L]], %{{.+}}, %[[I]]
func.func @decode(%h: tensor<?x1x8xf32>, %w: tensor<16x8xf32> {jamba.weight = "lm_head.weight"},
                  %s: tensor<?x8x3xf32> {jamba.state = "layers.0.conv_state"})
    -> (tensor<?x1x16xf32> {jamba.output = "logits"}, tensor<?x8x3xf32> {jamba.state = "layers.0.conv_state"}) {
  %l = jamba.lm_head %h, %w : tensor<?x1x8xf32>, tensor<16x8xf32> -> tensor<?x1x16xf32>
  return %l, %s : tensor<?x1x16xf32>, tensor<?x8x3xf32>
}

// CHECK-LABEL: func.func @prefill
// CHECK-SAME:    -> (tensor<?x?x16xf32> {jamba.output = "logits"}, tensor<?x?xi32> {jamba.output = "greedy_ids"})
// CHECK:         jamba.argmax %{{.+}} : tensor<?x?x16xf32> -> tensor<?x?xi32>
func.func @prefill(%h: tensor<?x?x8xf32>, %w: tensor<16x8xf32> {jamba.weight = "lm_head.weight"})
    -> (tensor<?x?x16xf32> {jamba.output = "logits"}) {
  %l = jamba.lm_head %h, %w : tensor<?x?x8xf32>, tensor<16x8xf32> -> tensor<?x?x16xf32>
  return %l : tensor<?x?x16xf32>
}

// Functions without logits, private ones and those that already return
// the ids are left alone.
// CHECK-LABEL: func.func @no_logits
// CHECK-NOT:     jamba.argmax
// CHECK:         return
func.func @no_logits(%x: tensor<4xf32>) -> tensor<4xf32> {
  return %x : tensor<4xf32>
}

// CHECK-LABEL: func.func private @stage
// CHECK-NOT:     jamba.argmax
// CHECK:         return
func.func private @stage(%x: tensor<2x1x4xf32>) -> (tensor<2x1x4xf32> {jamba.output = "logits"}) {
  return %x : tensor<2x1x4xf32>
}

// CHECK-LABEL: func.func @already
// CHECK-COUNT-1: jamba.argmax
// CHECK-NOT:     jamba.argmax
// CHECK:         return
func.func @already(%x: tensor<2x1x4xf32>) -> (tensor<2x1x4xf32> {jamba.output = "logits"}, tensor<2x1xi32> {jamba.output = "greedy_ids"}) {
  %i = jamba.argmax %x : tensor<2x1x4xf32> -> tensor<2x1xi32>
  return %x, %i : tensor<2x1x4xf32>, tensor<2x1xi32>
}

// -----

// The vocabulary must be static: an i32 id per row of a known width.
// expected-error @+1 {{expected the logits (result #0) to be a ranked tensor with a static last dimension, got 'tensor<?x1x?xf32>'}}
func.func @dynamic_vocab(%x: tensor<?x1x?xf32>) -> (tensor<?x1x?xf32> {jamba.output = "logits"}) {
  return %x : tensor<?x1x?xf32>
}

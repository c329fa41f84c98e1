// RUN: jamba-opt %s -jamba-split-stages -split-input-file -verify-diagnostics -allow-unregistered-dialect | FileCheck %s
// RUN: not jamba-opt %s -jamba-split-stages=num-layers=1 -split-input-file -allow-unregistered-dialect 2>&1 | FileCheck %s --check-prefix=FEWER
// RUN: not jamba-opt %s -jamba-split-stages=num-layers=-1 -split-input-file -allow-unregistered-dialect 2>&1 | FileCheck %s --check-prefix=NEGATIVE

// Fewer layers than the arguments name put layer 1's ops into the head
// stage, silently; a negative count was taken for 0.
// FEWER: error: jamba-split-stages: num-layers 1 is less than the 2 layers the arguments name
// NEGATIVE: error: jamba-split-stages: num-layers must be 0 (from the arguments) or positive, got -1

// Two layers around an embedding and a head: one stage function per layer,
// named after the entry point; the entry point becomes the schedule of
// calls. The activation between stages is a temp (same name on the producing
// result and the consuming argument); weights, states and inputs keep their
// attributes; the returned state and logits keep the result attributes. The
// stage-less constant is cloned into each stage that uses it.

// CHECK-LABEL: func.func private @f__embed
// CHECK-SAME:    (%{{.+}}: tensor<16x8xf32> {jamba.weight = "model.embed_tokens.weight"}, %{{.+}}: tensor<?x?xi32> {jamba.input = "ids"})
// CHECK-SAME:    -> (tensor<?x?x8xf32> {jamba.temp = "f.temp0"})
// CHECK:         jamba.embedding

// CHECK-LABEL: func.func private @f__layer0
// CHECK-SAME:    (%[[H:.+]]: tensor<?x?x8xf32> {jamba.temp = "f.temp0"}, %[[W:.+]]: tensor<8xf32> {jamba.weight = "model.layers.0.input_layernorm.weight"})
// CHECK-SAME:    -> (tensor<?x?x8xf32> {jamba.temp = "f.temp1"})
// CHECK-DAG:     %[[C:.+]] = arith.constant dense<2.000000e+00>
// CHECK-DAG:     %[[N:.+]] = jamba.rms_norm %[[H]], %[[W]]
// CHECK:         jamba.rms_norm %[[N]], %[[C]]

// CHECK-LABEL: func.func private @f__layer1
// CHECK-SAME:    %{{.+}}: tensor<?x8x3xf32> {jamba.state = "layers.1.conv_state"}
// CHECK-SAME:    -> (tensor<?x8x3xf32> {jamba.state = "layers.1.conv_state"}, tensor<?x?x8xf32> {jamba.temp = "f.temp2"})
// CHECK:         arith.constant dense<2.000000e+00>

// CHECK-LABEL: func.func private @f__head
// CHECK-SAME:    -> (tensor<?x?x16xf32> {jamba.output = "logits"})
// CHECK:         jamba.linear

// CHECK-LABEL: func.func @f
// CHECK:         %[[E:.+]] = call @f__embed(
// CHECK-NEXT:    %[[L0:.+]] = call @f__layer0(%[[E]],
// CHECK-NEXT:    %[[L1:.+]]:2 = call @f__layer1(%[[L0]],
// CHECK-NEXT:    %[[HEAD:.+]] = call @f__head(%[[L1]]#1,
// CHECK-NEXT:    return %[[HEAD]], %[[L1]]#0
func.func @f(%ids: tensor<?x?xi32> {jamba.input = "ids"},
             %s1: tensor<?x8x3xf32> {jamba.state = "layers.1.conv_state"},
             %emb: tensor<16x8xf32> {jamba.weight = "model.embed_tokens.weight"},
             %n0: tensor<8xf32> {jamba.weight = "model.layers.0.input_layernorm.weight"},
             %n1: tensor<8xf32> {jamba.weight = "model.layers.1.input_layernorm.weight"},
             %head: tensor<16x8xf32> {jamba.weight = "lm_head.weight"})
    -> (tensor<?x?x16xf32> {jamba.output = "logits"},
        tensor<?x8x3xf32> {jamba.state = "layers.1.conv_state"}) {
  %two = arith.constant dense<2.0> : tensor<8xf32>
  %h = jamba.embedding %emb, %ids : tensor<16x8xf32>, tensor<?x?xi32> -> tensor<?x?x8xf32>
  %x0 = jamba.rms_norm %h, %n0 : tensor<?x?x8xf32>, tensor<8xf32>
  %t0 = jamba.rms_norm %x0, %two : tensor<?x?x8xf32>, tensor<8xf32>
  %x1 = jamba.rms_norm %t0, %n1 : tensor<?x?x8xf32>, tensor<8xf32>
  %s1b = arith.mulf %s1, %s1 : tensor<?x8x3xf32>
  %t1 = jamba.rms_norm %x1, %two : tensor<?x?x8xf32>, tensor<8xf32>
  %logits = jamba.linear %t1, %head : (tensor<?x?x8xf32>, tensor<16x8xf32>) -> tensor<?x?x16xf32>
  return %logits, %s1b : tensor<?x?x16xf32>, tensor<?x8x3xf32>
}

// -----

// An op with no stage must be pure, to be cloned where it is used.

func.func @g(%ids: tensor<?x?xi32> {jamba.input = "ids"},
             %emb: tensor<16x8xf32> {jamba.weight = "model.embed_tokens.weight"})
    -> tensor<?x?x8xf32> {
  // expected-error @+1 {{'test.effects' op jamba-split-stages: has no stage (no weight, state or staged value among its operands) and is not pure}}
  %c = "test.effects"() : () -> tensor<8xf32>
  %h = jamba.embedding %emb, %ids : tensor<16x8xf32>, tensor<?x?xi32> -> tensor<?x?x8xf32>
  return %h : tensor<?x?x8xf32>
}

// RUN: jamba-opt %s -split-input-file -verify-diagnostics -jamba-split-stages
// RUN: jamba-opt %s -split-input-file -verify-diagnostics -jamba-split-stages=num-layers=2

// The schedule is the entry block: branches have no stage order.
// expected-error @+1 {{'func.func' op jamba-split-stages: an entry point must be one block, this one has 2}}
func.func @branches(%emb: tensor<16x8xf32> {jamba.weight = "model.embed_tokens.weight"}, %ids: tensor<?x?xi32> {jamba.input = "ids"}) -> tensor<?x?x8xf32> {
  %h = jamba.embedding %emb, %ids : tensor<16x8xf32>, tensor<?x?xi32> -> tensor<?x?x8xf32>
  cf.br ^bb1(%h : tensor<?x?x8xf32>)
^bb1(%a: tensor<?x?x8xf32>):
  return %a : tensor<?x?x8xf32>
}

// -----

// A layer index must be a small non-negative integer; "-3" was read as
// layer -3 and its ops put into the embedding stage, a 20-digit one as a
// head weight.
// expected-error @+1 {{'func.func' op jamba-split-stages: argument 2 ('model.layers.-3.input_layernorm.weight') does not name a layer index in [0, 1048576] after 'model.layers.'}}
func.func @negative_layer(%emb: tensor<16x8xf32> {jamba.weight = "model.embed_tokens.weight"}, %ids: tensor<?x?xi32> {jamba.input = "ids"},
             %n: tensor<8xf32> {jamba.weight = "model.layers.-3.input_layernorm.weight"}) -> tensor<?x?x8xf32> {
  %h = jamba.embedding %emb, %ids : tensor<16x8xf32>, tensor<?x?xi32> -> tensor<?x?x8xf32>
  %x = jamba.rms_norm %h, %n : tensor<?x?x8xf32>, tensor<8xf32>
  return %x : tensor<?x?x8xf32>
}

// -----

// expected-error @+1 {{'func.func' op jamba-split-stages: argument 1 ('layers.99999999999999999999.ssm_state') does not name a layer index in [0, 1048576] after 'layers.'}}
func.func @huge_layer(%ids: tensor<?x?xi32> {jamba.input = "ids"},
             %s: tensor<1x8x4xf32> {jamba.state = "layers.99999999999999999999.ssm_state"}) -> tensor<1x8x4xf32> {
  return %s : tensor<1x8x4xf32>
}

// -----

// Splitting twice would make stages of the stage calls.
func.func private @f__embed(tensor<?x?xi32>) -> tensor<?x?x8xf32>
// expected-error @+1 {{'func.func' op jamba-split-stages: already split (its stage @f__embed exists)}}
func.func @f(%ids: tensor<?x?xi32> {jamba.input = "ids"}) -> tensor<?x?x8xf32> {
  %h = func.call @f__embed(%ids) : (tensor<?x?xi32>) -> tensor<?x?x8xf32>
  return %h : tensor<?x?x8xf32>
}

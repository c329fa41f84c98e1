// RUN: jamba-opt %s -split-input-file -verify-diagnostics -jamba-quantize-experts

// A called function's expert weights cannot become int8 + scales: its
// callers pass f32 weights and no scales (the calls stopped verifying).
// expected-error @+1 {{'func.func' op jamba-quantize-experts: its expert weights would become int8 + scales, but it is called; quantize the entry points (functions nothing calls)}}
func.func private @stage(%x: tensor<?x64xf32>, %w: tensor<4x16x64xf32> {jamba.weight = "model.layers.0.feed_forward.experts.{e}.gate_proj.weight"}, %idx: tensor<?x2xi32>) -> tensor<?x2x16xf32> {
  %y = jamba.expert_gemm %x, %w indices(%idx) : (tensor<?x64xf32>, tensor<4x16x64xf32>, tensor<?x2xi32>) -> tensor<?x2x16xf32>
  return %y : tensor<?x2x16xf32>
}
func.func @f(%x: tensor<?x64xf32>, %w: tensor<4x16x64xf32>, %idx: tensor<?x2xi32>) -> tensor<?x2x16xf32> {
  %y = func.call @stage(%x, %w, %idx) : (tensor<?x64xf32>, tensor<4x16x64xf32>, tensor<?x2xi32>) -> tensor<?x2x16xf32>
  return %y : tensor<?x2x16xf32>
}

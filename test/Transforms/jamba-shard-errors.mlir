// RUN: jamba-opt %s -split-input-file -verify-diagnostics -jamba-shard=tensor-parallel=2

// One recipe shards every layer, so the layers must agree on their sizes.
func.func @two_head_counts(%x: tensor<1x?x64xf32>,
   %wq: tensor<64x64xf32> {jamba.weight = "model.layers.0.self_attn.q_proj.weight"},
   %wk: tensor<32x64xf32> {jamba.weight = "model.layers.0.self_attn.k_proj.weight"},
   %wo: tensor<64x64xf32> {jamba.weight = "model.layers.0.self_attn.o_proj.weight"},
   %k: tensor<1x2x?x16xf32> {jamba.state = "layers.0.k_cache"},
   %wk1: tensor<64x64xf32> {jamba.weight = "model.layers.1.self_attn.k_proj.weight"},
   %k1: tensor<1x8x?x8xf32> {jamba.state = "layers.1.k_cache"},
   %len: tensor<1xi64>) -> tensor<1x?x64xf32> {
  %o, %k2, %v2 = jamba.attention %x, %wq, %wk, %wk, %wo, cache(%k, %k, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x?x64xf32>, tensor<64x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>, tensor<64x64xf32>, tensor<1x2x?x16xf32>, tensor<1x2x?x16xf32>, tensor<1xi64>)
      -> (tensor<1x?x64xf32>, tensor<1x2x?x16xf32>, tensor<1x2x?x16xf32>)
  // expected-error @+1 {{jamba-shard: cannot shard attention layers with different head counts (4/2 and 8/8)}}
  %o1, %k3, %v3 = jamba.attention %o, %wq, %wk1, %wk1, %wo, cache(%k1, %k1, %len)
      {num_heads = 8 : i64, num_kv_heads = 8 : i64}
      : (tensor<1x?x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<1x8x?x8xf32>, tensor<1x8x?x8xf32>, tensor<1xi64>)
      -> (tensor<1x?x64xf32>, tensor<1x8x?x8xf32>, tensor<1x8x?x8xf32>)
  return %o1 : tensor<1x?x64xf32>
}

// -----

// The recipe splits static sizes of ranked tensors.
// expected-error @+1 {{jamba-shard: 'model.layers.0.self_attn.q_proj.weight' dimension 0 is dynamic; sharding splits static sizes}}
func.func @dynamic_weight(%w: tensor<?x64xf32> {jamba.weight = "model.layers.0.self_attn.q_proj.weight"}) -> tensor<?x64xf32> {
  return %w : tensor<?x64xf32>
}

// -----

// expected-error @+1 {{jamba-shard: 'model.layers.0.mamba.A_log' is a memref<4x4xf32>, expected a ranked tensor}}
func.func @memref_weight(%w: memref<4x4xf32> {jamba.weight = "model.layers.0.mamba.A_log"}) -> memref<4x4xf32> {
  return %w : memref<4x4xf32>
}

// -----

// expected-error @+1 {{jamba-shard: state 'layers.0.ssm_state' is a f32, expected a ranked tensor}}
func.func @scalar_state(%s: f32 {jamba.state = "layers.0.ssm_state"}) -> f32 {
  return %s : f32
}

// -----

// expected-error @+1 {{jamba-shard: state 'layers.0.ssm_state' does not split over 2 ranks}}
func.func @dynamic_state(%s: tensor<?x?x8xf32> {jamba.state = "layers.0.ssm_state"}) -> tensor<?x?x8xf32> {
  return %s : tensor<?x?x8xf32>
}

// -----

// Sharding twice would split the local shapes again.
// expected-error @+1 {{jamba-shard: the module is already sharded (it has jamba.tensor_parallel/expert_parallel)}}
module attributes {jamba.tensor_parallel = 2 : i64} {
  func.func @f(%w: tensor<64x64xf32> {jamba.weight = "model.layers.0.self_attn.q_proj.weight"}) -> tensor<64x64xf32> {
    return %w : tensor<64x64xf32>
  }
}

// -----

// Expert parallelism splits the router's experts: a dynamic count does not
// split.
func.func @dynamic_router(%x: tensor<1x?x64xf32>, %r: tensor<?x64xf32> {jamba.weight = "model.layers.0.feed_forward.router.weight"},
   %g: tensor<4x128x64xf32> {jamba.weight = "model.layers.0.feed_forward.experts.{e}.gate_proj.weight"},
   %d: tensor<4x64x128xf32> {jamba.weight = "model.layers.0.feed_forward.experts.{e}.down_proj.weight"}) -> tensor<1x?x64xf32> {
  // expected-error @+1 {{jamba-shard: cannot shard a router with a dynamic expert count}}
  %y = jamba.moe %x, %r, %g, %g, %d {top_k = 2 : i64}
      : (tensor<1x?x64xf32>, tensor<?x64xf32>, tensor<4x128x64xf32>, tensor<4x128x64xf32>, tensor<4x64x128xf32>) -> tensor<1x?x64xf32>
  return %y : tensor<1x?x64xf32>
}

// -----

// Layers with different expert counts cannot share one recipe.
func.func @two_expert_counts(%x: tensor<1x?x64xf32>, %r: tensor<4x64xf32>, %r8: tensor<8x64xf32>,
   %g: tensor<4x128x64xf32>, %d: tensor<4x64x128xf32>,
   %g8: tensor<8x128x64xf32>, %d8: tensor<8x64x128xf32>) -> tensor<1x?x64xf32> {
  %y = jamba.moe %x, %r, %g, %g, %d {top_k = 2 : i64}
      : (tensor<1x?x64xf32>, tensor<4x64xf32>, tensor<4x128x64xf32>, tensor<4x128x64xf32>, tensor<4x64x128xf32>) -> tensor<1x?x64xf32>
  // expected-error @+1 {{jamba-shard: cannot shard MoE layers with different expert counts (4 and 8)}}
  %z = jamba.moe %y, %r8, %g8, %g8, %d8 {top_k = 2 : i64}
      : (tensor<1x?x64xf32>, tensor<8x64xf32>, tensor<8x128x64xf32>, tensor<8x128x64xf32>, tensor<8x64x128xf32>) -> tensor<1x?x64xf32>
  return %z : tensor<1x?x64xf32>
}

// -----

// A MoE that already holds a share of the experts.
func.func @already_expert_parallel(%x: tensor<1x?x64xf32>, %r: tensor<4x64xf32>,
   %g: tensor<2x128x64xf32>, %d: tensor<2x64x128xf32>, %off: tensor<1xi64>) -> tensor<1x?x64xf32> {
  // expected-error @+1 {{jamba-shard: cannot shard a MoE layer that is already expert-parallel (it has an expert_offset)}}
  %y = jamba.moe %x, %r, %g, %g, %d expert_offset(%off) {top_k = 2 : i64}
      : (tensor<1x?x64xf32>, tensor<4x64xf32>, tensor<2x128x64xf32>, tensor<2x128x64xf32>, tensor<2x64x128xf32>, tensor<1xi64>) -> tensor<1x?x64xf32>
  return %y : tensor<1x?x64xf32>
}

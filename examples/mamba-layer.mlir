// One Jamba decoder layer of the built-in tiny model's shapes (hidden 64,
// d_inner 128, d_state 8, d_conv 4, dt_rank 8, 4 experts top-2): RMSNorm,
// Mamba mixer, residual, RMSNorm, MoE, residual. scripts/demo.sh runs it
// through jamba-opt (parse, verify, canonicalize, print).
func.func @mamba_moe_layer(
    %h: tensor<1x?x64xf32>, %conv_state: tensor<1x128x3xf32>,
    %ssm_state: tensor<1x128x8xf32>,
    %input_norm: tensor<64xf32> {jamba.weight = "model.layers.1.input_layernorm.weight"},
    %w_in: tensor<256x64xf32> {jamba.weight = "model.layers.1.mamba.in_proj.weight"},
    %w_conv: tensor<128x1x4xf32> {jamba.weight = "model.layers.1.mamba.conv1d.weight"},
    %b_conv: tensor<128xf32> {jamba.weight = "model.layers.1.mamba.conv1d.bias"},
    %w_x: tensor<24x128xf32> {jamba.weight = "model.layers.1.mamba.x_proj.weight"},
    %n_dt: tensor<8xf32> {jamba.weight = "model.layers.1.mamba.dt_layernorm.weight"},
    %n_b: tensor<8xf32> {jamba.weight = "model.layers.1.mamba.b_layernorm.weight"},
    %n_c: tensor<8xf32> {jamba.weight = "model.layers.1.mamba.c_layernorm.weight"},
    %w_dt: tensor<128x8xf32> {jamba.weight = "model.layers.1.mamba.dt_proj.weight"},
    %b_dt: tensor<128xf32> {jamba.weight = "model.layers.1.mamba.dt_proj.bias"},
    %a_log: tensor<128x8xf32> {jamba.weight = "model.layers.1.mamba.A_log"},
    %d: tensor<128xf32> {jamba.weight = "model.layers.1.mamba.D"},
    %w_out: tensor<64x128xf32> {jamba.weight = "model.layers.1.mamba.out_proj.weight"},
    %ff_norm: tensor<64xf32> {jamba.weight = "model.layers.1.pre_ff_layernorm.weight"},
    %router: tensor<4x64xf32> {jamba.weight = "model.layers.1.feed_forward.router.weight"},
    %gate: tensor<4x128x64xf32> {jamba.weight = "model.layers.1.feed_forward.experts.{e}.gate_proj.weight"},
    %up: tensor<4x128x64xf32> {jamba.weight = "model.layers.1.feed_forward.experts.{e}.up_proj.weight"},
    %down: tensor<4x64x128xf32> {jamba.weight = "model.layers.1.feed_forward.experts.{e}.down_proj.weight"})
    -> (tensor<1x?x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>) {
  %x = jamba.rms_norm %h, %input_norm : tensor<1x?x64xf32>, tensor<64xf32>
  %mix, %conv_next, %ssm_next = jamba.mamba_mixer %x, state(%conv_state, %ssm_state)
      in_proj(%w_in) conv1d(%w_conv, %b_conv) x_proj(%w_x)
      norms(%n_dt, %n_b, %n_c) dt_proj(%w_dt, %b_dt) ssm(%a_log, %d)
      out_proj(%w_out)
      : (tensor<1x?x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>,
         tensor<256x64xf32>, tensor<128x1x4xf32>, tensor<128xf32>,
         tensor<24x128xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>,
         tensor<128x8xf32>, tensor<128xf32>, tensor<128x8xf32>,
         tensor<128xf32>, tensor<64x128xf32>)
      -> (tensor<1x?x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>)
  %r1 = arith.addf %h, %mix : tensor<1x?x64xf32>
  %y = jamba.rms_norm %r1, %ff_norm : tensor<1x?x64xf32>, tensor<64xf32>
  %ffn = jamba.moe %y, %router, %gate, %up, %down {top_k = 2 : i64}
      : (tensor<1x?x64xf32>, tensor<4x64xf32>, tensor<4x128x64xf32>,
         tensor<4x128x64xf32>, tensor<4x64x128xf32>) -> tensor<1x?x64xf32>
  %r2 = arith.addf %r1, %ffn : tensor<1x?x64xf32>
  return %r2, %conv_next, %ssm_next
      : tensor<1x?x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>
}

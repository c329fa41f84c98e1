// RUN: jamba-opt %s -split-input-file -verify-diagnostics

// One case per verifier diagnostic of the jamba ops (JambaOps.cpp), plus the
// ODS constraints most likely to be hit by hand-written IR.

// embedding: the table must be [vocab, hidden].
func.func @embedding_table_rank(%t: tensor<128xf32>, %ids: tensor<1x4xi32>) {
  // expected-error @+1 {{expected 'table' to have rank 2, got 1}}
  %h = jamba.embedding %t, %ids : tensor<128xf32>, tensor<1x4xi32> -> tensor<1x4x64xf32>
  return
}

// -----

// embedding: the result's hidden size comes from the table.
func.func @embedding_result_hidden(%t: tensor<128x64xf32>, %ids: tensor<1x4xi32>) {
  // expected-error @+1 {{expected 'result' dimension 2 to be hidden_size = 64, got 32}}
  %h = jamba.embedding %t, %ids : tensor<128x64xf32>, tensor<1x4xi32> -> tensor<1x4x32xf32>
  return
}

// -----

// embedding: ids must be integers (ODS constraint).
func.func @embedding_float_ids(%t: tensor<128x64xf32>, %ids: tensor<1x4xf32>) {
  // expected-error @+1 {{operand #1 must be ranked tensor of 32-bit signless integer or 64-bit signless integer values}}
  %h = jamba.embedding %t, %ids : tensor<128x64xf32>, tensor<1x4xf32> -> tensor<1x4x64xf32>
  return
}

// -----

// embedding: the ids are [batch, seq].
func.func @embedding_ids_rank(%t: tensor<128x64xf32>, %ids: tensor<4xi32>) {
  // expected-error @+1 {{expected 'ids' to have rank 2, got 1}}
  %h = jamba.embedding %t, %ids : tensor<128x64xf32>, tensor<4xi32> -> tensor<1x4x64xf32>
  return
}

// -----

// embedding: the result is [batch, seq, hidden].
func.func @embedding_result_rank(%t: tensor<128x64xf32>, %ids: tensor<1x4xi32>) {
  // expected-error @+1 {{expected 'result' to have rank 3, got 2}}
  %h = jamba.embedding %t, %ids : tensor<128x64xf32>, tensor<1x4xi32> -> tensor<4x64xf32>
  return
}

// -----

// embedding: the table holds model floats (ODS constraint).
func.func @embedding_int_table(%t: tensor<128x64xi32>, %ids: tensor<1x4xi32>) {
  // expected-error @+1 {{operand #0 must be ranked tensor of 64-bit float or 32-bit float or 16-bit float or bfloat16 type values}}
  %h = jamba.embedding %t, %ids : tensor<128x64xi32>, tensor<1x4xi32> -> tensor<1x4x64xf32>
  return
}

// -----

// rms_norm: scalars have nothing to normalise.
func.func @rms_norm_rank0(%x: tensor<f32>, %w: tensor<1xf32>) {
  // expected-error @+1 {{expected 'input' to have rank >= 1, got 0}}
  %y = jamba.rms_norm %x, %w : tensor<f32>, tensor<1xf32>
  return
}

// -----

// rms_norm: the weight covers the last dimension.
func.func @rms_norm_weight_size(%x: tensor<1x4x64xf32>, %w: tensor<32xf32>) {
  // expected-error @+1 {{expected 'weight' dimension 0 to be the normalised size = 64, got 32}}
  %y = jamba.rms_norm %x, %w : tensor<1x4x64xf32>, tensor<32xf32>
  return
}

// -----

// rms_norm: epsilon must be positive.
func.func @rms_norm_epsilon(%x: tensor<1x4x64xf32>, %w: tensor<64xf32>) {
  // expected-error @+1 {{expected a positive epsilon, got 0}}
  %y = jamba.rms_norm %x, %w {epsilon = 0.0 : f64} : tensor<1x4x64xf32>, tensor<64xf32>
  return
}

// -----

// rms_norm: the weight is a vector.
func.func @rms_norm_weight_rank(%x: tensor<1x4x64xf32>, %w: tensor<64x1xf32>) {
  // expected-error @+1 {{expected 'weight' to have rank 1, got 2}}
  %y = jamba.rms_norm %x, %w : tensor<1x4x64xf32>, tensor<64x1xf32>
  return
}

// -----

// rms_norm: the result has the input's type (generic form; the custom form
// cannot spell another result type).
func.func @rms_norm_result_type(%x: tensor<1x4x64xf32>, %w: tensor<64xf32>) {
  // expected-error @+1 {{'jamba.rms_norm' op failed to verify that all of {input, result} have same type}}
  %y = "jamba.rms_norm"(%x, %w) : (tensor<1x4x64xf32>, tensor<64xf32>) -> tensor<1x4x64xbf16>
  return
}

// -----

// rms_norm: epsilon is an f64 (ODS constraint).
func.func @rms_norm_epsilon_type(%x: tensor<1x4x64xf32>, %w: tensor<64xf32>) {
  // expected-error @+1 {{attribute 'epsilon' failed to satisfy constraint: 64-bit float attribute}}
  %y = jamba.rms_norm %x, %w {epsilon = 1 : i64} : tensor<1x4x64xf32>, tensor<64xf32>
  return
}

// -----

// mamba_mixer: the input is [batch, seq, hidden].
func.func @mixer_input_rank(%x: tensor<4x64xf32>, %cs: tensor<1x128x3xf32>, %ss: tensor<1x128x8xf32>,
    %w_in: tensor<256x64xf32>, %w_conv: tensor<128x1x4xf32>, %w_x: tensor<24x128xf32>,
    %n8: tensor<8xf32>, %w_dt: tensor<128x8xf32>, %v128: tensor<128xf32>,
    %a_log: tensor<128x8xf32>, %w_out: tensor<64x128xf32>) {
  // expected-error @+1 {{expected 'input' to have rank 3, got 2}}
  %o, %c, %s = jamba.mamba_mixer %x, state(%cs, %ss) in_proj(%w_in) conv1d(%w_conv)
      x_proj(%w_x) norms(%n8, %n8, %n8) dt_proj(%w_dt, %v128) ssm(%a_log, %v128) out_proj(%w_out)
      : (tensor<4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>, tensor<256x64xf32>,
         tensor<128x1x4xf32>, tensor<24x128xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>,
         tensor<128x8xf32>, tensor<128xf32>, tensor<128x8xf32>, tensor<128xf32>, tensor<64x128xf32>)
      -> (tensor<4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// mamba_mixer: a step over no tokens is meaningless.
func.func @mixer_no_tokens(%x: tensor<1x0x64xf32>, %cs: tensor<1x128x3xf32>, %ss: tensor<1x128x8xf32>,
    %w_in: tensor<256x64xf32>, %w_conv: tensor<128x1x4xf32>, %w_x: tensor<24x128xf32>,
    %n8: tensor<8xf32>, %w_dt: tensor<128x8xf32>, %v128: tensor<128xf32>,
    %a_log: tensor<128x8xf32>, %w_out: tensor<64x128xf32>) {
  // expected-error @+1 {{expected 'input' to have at least one token (dimension 1), got 0}}
  %o, %c, %s = jamba.mamba_mixer %x, state(%cs, %ss) in_proj(%w_in) conv1d(%w_conv)
      x_proj(%w_x) norms(%n8, %n8, %n8) dt_proj(%w_dt, %v128) ssm(%a_log, %v128) out_proj(%w_out)
      : (tensor<1x0x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>, tensor<256x64xf32>,
         tensor<128x1x4xf32>, tensor<24x128xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>,
         tensor<128x8xf32>, tensor<128xf32>, tensor<128x8xf32>, tensor<128xf32>, tensor<64x128xf32>)
      -> (tensor<1x0x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// mamba_mixer: a zero-width conv kernel is meaningless.
func.func @mixer_dconv_zero(%x: tensor<1x4x64xf32>, %cs: tensor<1x128x0xf32>, %ss: tensor<1x128x8xf32>,
    %w_in: tensor<256x64xf32>, %w_conv: tensor<128x1x0xf32>, %w_x: tensor<24x128xf32>,
    %n8: tensor<8xf32>, %w_dt: tensor<128x8xf32>, %v128: tensor<128xf32>,
    %a_log: tensor<128x8xf32>, %w_out: tensor<64x128xf32>) {
  // expected-error @+1 {{expected d_conv >= 1, got 0}}
  %o, %c, %s = jamba.mamba_mixer %x, state(%cs, %ss) in_proj(%w_in) conv1d(%w_conv)
      x_proj(%w_x) norms(%n8, %n8, %n8) dt_proj(%w_dt, %v128) ssm(%a_log, %v128) out_proj(%w_out)
      : (tensor<1x4x64xf32>, tensor<1x128x0xf32>, tensor<1x128x8xf32>, tensor<256x64xf32>,
         tensor<128x1x0xf32>, tensor<24x128xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>,
         tensor<128x8xf32>, tensor<128xf32>, tensor<128x8xf32>, tensor<128xf32>, tensor<64x128xf32>)
      -> (tensor<1x4x64xf32>, tensor<1x128x0xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// mamba_mixer: the conv state holds d_conv - 1 columns.
func.func @mixer_conv_state(%x: tensor<1x4x64xf32>, %cs: tensor<1x128x4xf32>, %ss: tensor<1x128x8xf32>,
    %w_in: tensor<256x64xf32>, %w_conv: tensor<128x1x4xf32>, %w_x: tensor<24x128xf32>,
    %n8: tensor<8xf32>, %w_dt: tensor<128x8xf32>, %v128: tensor<128xf32>,
    %a_log: tensor<128x8xf32>, %w_out: tensor<64x128xf32>) {
  // expected-error @+1 {{expected 'conv_state' dimension 2 to be d_conv - 1 = 3, got 4}}
  %o, %c, %s = jamba.mamba_mixer %x, state(%cs, %ss) in_proj(%w_in) conv1d(%w_conv)
      x_proj(%w_x) norms(%n8, %n8, %n8) dt_proj(%w_dt, %v128) ssm(%a_log, %v128) out_proj(%w_out)
      : (tensor<1x4x64xf32>, tensor<1x128x4xf32>, tensor<1x128x8xf32>, tensor<256x64xf32>,
         tensor<128x1x4xf32>, tensor<24x128xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>,
         tensor<128x8xf32>, tensor<128xf32>, tensor<128x8xf32>, tensor<128xf32>, tensor<64x128xf32>)
      -> (tensor<1x4x64xf32>, tensor<1x128x4xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// mamba_mixer: in_proj produces x and z, 2 * d_inner rows.
func.func @mixer_in_proj(%x: tensor<1x4x64xf32>, %cs: tensor<1x128x3xf32>, %ss: tensor<1x128x8xf32>,
    %w_in: tensor<128x64xf32>, %w_conv: tensor<128x1x4xf32>, %w_x: tensor<24x128xf32>,
    %n8: tensor<8xf32>, %w_dt: tensor<128x8xf32>, %v128: tensor<128xf32>,
    %a_log: tensor<128x8xf32>, %w_out: tensor<64x128xf32>) {
  // expected-error @+1 {{expected 'in_proj_weight' dimension 0 to be 2 * d_inner = 256, got 128}}
  %o, %c, %s = jamba.mamba_mixer %x, state(%cs, %ss) in_proj(%w_in) conv1d(%w_conv)
      x_proj(%w_x) norms(%n8, %n8, %n8) dt_proj(%w_dt, %v128) ssm(%a_log, %v128) out_proj(%w_out)
      : (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>, tensor<128x64xf32>,
         tensor<128x1x4xf32>, tensor<24x128xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>,
         tensor<128x8xf32>, tensor<128xf32>, tensor<128x8xf32>, tensor<128xf32>, tensor<64x128xf32>)
      -> (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// mamba_mixer: x_proj produces dt (R), B (N) and C (N).
func.func @mixer_x_proj(%x: tensor<1x4x64xf32>, %cs: tensor<1x128x3xf32>, %ss: tensor<1x128x8xf32>,
    %w_in: tensor<256x64xf32>, %w_conv: tensor<128x1x4xf32>, %w_x: tensor<16x128xf32>,
    %n8: tensor<8xf32>, %w_dt: tensor<128x8xf32>, %v128: tensor<128xf32>,
    %a_log: tensor<128x8xf32>, %w_out: tensor<64x128xf32>) {
  // expected-error @+1 {{expected 'x_proj_weight' dimension 0 to be dt_rank + 2 * d_state = 24, got 16}}
  %o, %c, %s = jamba.mamba_mixer %x, state(%cs, %ss) in_proj(%w_in) conv1d(%w_conv)
      x_proj(%w_x) norms(%n8, %n8, %n8) dt_proj(%w_dt, %v128) ssm(%a_log, %v128) out_proj(%w_out)
      : (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>, tensor<256x64xf32>,
         tensor<128x1x4xf32>, tensor<16x128xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>,
         tensor<128x8xf32>, tensor<128xf32>, tensor<128x8xf32>, tensor<128xf32>, tensor<64x128xf32>)
      -> (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// mamba_mixer: A_log's d_inner agrees with the conv's.
func.func @mixer_a_log(%x: tensor<1x4x64xf32>, %cs: tensor<1x128x3xf32>, %ss: tensor<1x128x8xf32>,
    %w_in: tensor<256x64xf32>, %w_conv: tensor<128x1x4xf32>, %w_x: tensor<24x128xf32>,
    %n8: tensor<8xf32>, %w_dt: tensor<128x8xf32>, %v128: tensor<128xf32>,
    %a_log: tensor<64x8xf32>, %w_out: tensor<64x128xf32>) {
  // expected-error @+1 {{expected 'A_log' dimension 0 to be d_inner = 128, got 64}}
  %o, %c, %s = jamba.mamba_mixer %x, state(%cs, %ss) in_proj(%w_in) conv1d(%w_conv)
      x_proj(%w_x) norms(%n8, %n8, %n8) dt_proj(%w_dt, %v128) ssm(%a_log, %v128) out_proj(%w_out)
      : (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>, tensor<256x64xf32>,
         tensor<128x1x4xf32>, tensor<24x128xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>,
         tensor<128x8xf32>, tensor<128xf32>, tensor<64x8xf32>, tensor<128xf32>, tensor<64x128xf32>)
      -> (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// mamba_mixer: the conv state is in the activation type.
func.func @mixer_conv_state_type(%x: tensor<1x4x64xf32>, %cs: tensor<1x128x3xbf16>, %ss: tensor<1x128x8xf32>,
    %w_in: tensor<256x64xf32>, %w_conv: tensor<128x1x4xf32>, %w_x: tensor<24x128xf32>,
    %n8: tensor<8xf32>, %w_dt: tensor<128x8xf32>, %v128: tensor<128xf32>,
    %a_log: tensor<128x8xf32>, %w_out: tensor<64x128xf32>) {
  // expected-error @+1 {{expected 'input' and 'conv_state' to have the same element type, got 'f32' and 'bf16'}}
  %o, %c, %s = jamba.mamba_mixer %x, state(%cs, %ss) in_proj(%w_in) conv1d(%w_conv)
      x_proj(%w_x) norms(%n8, %n8, %n8) dt_proj(%w_dt, %v128) ssm(%a_log, %v128) out_proj(%w_out)
      : (tensor<1x4x64xf32>, tensor<1x128x3xbf16>, tensor<1x128x8xf32>, tensor<256x64xf32>,
         tensor<128x1x4xf32>, tensor<24x128xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>,
         tensor<128x8xf32>, tensor<128xf32>, tensor<128x8xf32>, tensor<128xf32>, tensor<64x128xf32>)
      -> (tensor<1x4x64xf32>, tensor<1x128x3xbf16>, tensor<1x128x8xf32>)
  return
}

// -----

// mamba_mixer: the result has the input's type.
func.func @mixer_result_type(%x: tensor<1x4x64xf32>, %cs: tensor<1x128x3xf32>, %ss: tensor<1x128x8xf32>,
    %w_in: tensor<256x64xf32>, %w_conv: tensor<128x1x4xf32>, %w_x: tensor<24x128xf32>,
    %n8: tensor<8xf32>, %w_dt: tensor<128x8xf32>, %v128: tensor<128xf32>,
    %a_log: tensor<128x8xf32>, %w_out: tensor<64x128xf32>) {
  // expected-error @+1 {{expected 'input' and 'result' to have the same type, got 'tensor<1x4x64xf32>' and 'tensor<1x?x64xf32>'}}
  %o, %c, %s = jamba.mamba_mixer %x, state(%cs, %ss) in_proj(%w_in) conv1d(%w_conv)
      x_proj(%w_x) norms(%n8, %n8, %n8) dt_proj(%w_dt, %v128) ssm(%a_log, %v128) out_proj(%w_out)
      : (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>, tensor<256x64xf32>,
         tensor<128x1x4xf32>, tensor<24x128xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>,
         tensor<128x8xf32>, tensor<128xf32>, tensor<128x8xf32>, tensor<128xf32>, tensor<64x128xf32>)
      -> (tensor<1x?x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// mamba_mixer: the SSM state is always f32 (ODS constraint).
func.func @mixer_ssm_state_bf16(%x: tensor<1x4x64xf32>, %cs: tensor<1x128x3xf32>, %ss: tensor<1x128x8xbf16>,
    %w_in: tensor<256x64xf32>, %w_conv: tensor<128x1x4xf32>, %w_x: tensor<24x128xf32>,
    %n8: tensor<8xf32>, %w_dt: tensor<128x8xf32>, %v128: tensor<128xf32>,
    %a_log: tensor<128x8xf32>, %w_out: tensor<64x128xf32>) {
  // expected-error @+1 {{operand #2 must be ranked tensor of 32-bit float values}}
  %o, %c, %s = jamba.mamba_mixer %x, state(%cs, %ss) in_proj(%w_in) conv1d(%w_conv)
      x_proj(%w_x) norms(%n8, %n8, %n8) dt_proj(%w_dt, %v128) ssm(%a_log, %v128) out_proj(%w_out)
      : (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xbf16>, tensor<256x64xf32>,
         tensor<128x1x4xf32>, tensor<24x128xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>,
         tensor<128x8xf32>, tensor<128xf32>, tensor<128x8xf32>, tensor<128xf32>, tensor<64x128xf32>)
      -> (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xbf16>)
  return
}

// -----

// mamba_mixer: epsilon must be positive.
func.func @mixer_epsilon(%x: tensor<1x4x64xf32>, %cs: tensor<1x128x3xf32>, %ss: tensor<1x128x8xf32>,
    %w_in: tensor<256x64xf32>, %w_conv: tensor<128x1x4xf32>, %w_x: tensor<24x128xf32>,
    %n8: tensor<8xf32>, %w_dt: tensor<128x8xf32>, %v128: tensor<128xf32>,
    %a_log: tensor<128x8xf32>, %w_out: tensor<64x128xf32>) {
  // expected-error @+1 {{expected a positive epsilon, got -1}}
  %o, %c, %s = jamba.mamba_mixer %x, state(%cs, %ss) in_proj(%w_in) conv1d(%w_conv)
      x_proj(%w_x) norms(%n8, %n8, %n8) dt_proj(%w_dt, %v128) ssm(%a_log, %v128) out_proj(%w_out)
      {epsilon = -1.0 : f64}
      : (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>, tensor<256x64xf32>,
         tensor<128x1x4xf32>, tensor<24x128xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>,
         tensor<128x8xf32>, tensor<128xf32>, tensor<128x8xf32>, tensor<128xf32>, tensor<64x128xf32>)
      -> (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// mamba_mixer: the conv weight is [d_inner, 1, d_conv].
func.func @mixer_conv_weight_rank(%x: tensor<1x4x64xf32>, %cs: tensor<1x128x3xf32>,
    %ss: tensor<1x128x8xf32>, %w_in: tensor<256x64xf32>, %w_conv: tensor<128x4xf32>,
    %w_x: tensor<24x128xf32>, %n_dt: tensor<8xf32>, %n_b: tensor<8xf32>, %n_c: tensor<8xf32>,
    %w_dt: tensor<128x8xf32>, %b_dt: tensor<128xf32>, %a_log: tensor<128x8xf32>,
    %d: tensor<128xf32>, %w_out: tensor<64x128xf32>) {
  // expected-error @+1 {{expected 'conv_weight' to have rank 3, got 2}}
  %o, %c, %s = jamba.mamba_mixer %x, state(%cs, %ss) in_proj(%w_in) conv1d(%w_conv)
      x_proj(%w_x) norms(%n_dt, %n_b, %n_c) dt_proj(%w_dt, %b_dt) ssm(%a_log, %d) out_proj(%w_out)
      : (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>, tensor<256x64xf32>,
         tensor<128x4xf32>, tensor<24x128xf32>, tensor<8xf32>, tensor<8xf32>,
         tensor<8xf32>, tensor<128x8xf32>, tensor<128xf32>, tensor<128x8xf32>,
         tensor<128xf32>, tensor<64x128xf32>)
      -> (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// mamba_mixer: the conv is depthwise, one input channel per filter.
func.func @mixer_conv_weight_depthwise(%x: tensor<1x4x64xf32>, %cs: tensor<1x128x3xf32>,
    %ss: tensor<1x128x8xf32>, %w_in: tensor<256x64xf32>, %w_conv: tensor<128x2x4xf32>,
    %w_x: tensor<24x128xf32>, %n_dt: tensor<8xf32>, %n_b: tensor<8xf32>, %n_c: tensor<8xf32>,
    %w_dt: tensor<128x8xf32>, %b_dt: tensor<128xf32>, %a_log: tensor<128x8xf32>,
    %d: tensor<128xf32>, %w_out: tensor<64x128xf32>) {
  // expected-error @+1 {{expected 'conv_weight' dimension 1 to be 1 = 1, got 2}}
  %o, %c, %s = jamba.mamba_mixer %x, state(%cs, %ss) in_proj(%w_in) conv1d(%w_conv)
      x_proj(%w_x) norms(%n_dt, %n_b, %n_c) dt_proj(%w_dt, %b_dt) ssm(%a_log, %d) out_proj(%w_out)
      : (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>, tensor<256x64xf32>,
         tensor<128x2x4xf32>, tensor<24x128xf32>, tensor<8xf32>, tensor<8xf32>,
         tensor<8xf32>, tensor<128x8xf32>, tensor<128xf32>, tensor<128x8xf32>,
         tensor<128xf32>, tensor<64x128xf32>)
      -> (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// mamba_mixer: A_log is [d_inner, d_state].
func.func @mixer_a_log_rank(%x: tensor<1x4x64xf32>, %cs: tensor<1x128x3xf32>,
    %ss: tensor<1x128x8xf32>, %w_in: tensor<256x64xf32>, %w_conv: tensor<128x1x4xf32>,
    %w_x: tensor<24x128xf32>, %n_dt: tensor<8xf32>, %n_b: tensor<8xf32>, %n_c: tensor<8xf32>,
    %w_dt: tensor<128x8xf32>, %b_dt: tensor<128xf32>, %a_log: tensor<128x8x1xf32>,
    %d: tensor<128xf32>, %w_out: tensor<64x128xf32>) {
  // expected-error @+1 {{expected 'A_log' to have rank 2, got 3}}
  %o, %c, %s = jamba.mamba_mixer %x, state(%cs, %ss) in_proj(%w_in) conv1d(%w_conv)
      x_proj(%w_x) norms(%n_dt, %n_b, %n_c) dt_proj(%w_dt, %b_dt) ssm(%a_log, %d) out_proj(%w_out)
      : (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>, tensor<256x64xf32>,
         tensor<128x1x4xf32>, tensor<24x128xf32>, tensor<8xf32>, tensor<8xf32>,
         tensor<8xf32>, tensor<128x8xf32>, tensor<128xf32>, tensor<128x8x1xf32>,
         tensor<128xf32>, tensor<64x128xf32>)
      -> (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// mamba_mixer: dt_proj is [d_inner, dt_rank].
func.func @mixer_dt_proj_rank(%x: tensor<1x4x64xf32>, %cs: tensor<1x128x3xf32>,
    %ss: tensor<1x128x8xf32>, %w_in: tensor<256x64xf32>, %w_conv: tensor<128x1x4xf32>,
    %w_x: tensor<24x128xf32>, %n_dt: tensor<8xf32>, %n_b: tensor<8xf32>, %n_c: tensor<8xf32>,
    %w_dt: tensor<128xf32>, %b_dt: tensor<128xf32>, %a_log: tensor<128x8xf32>, %d: tensor<128xf32>,
    %w_out: tensor<64x128xf32>) {
  // expected-error @+1 {{expected 'dt_proj_weight' to have rank 2, got 1}}
  %o, %c, %s = jamba.mamba_mixer %x, state(%cs, %ss) in_proj(%w_in) conv1d(%w_conv)
      x_proj(%w_x) norms(%n_dt, %n_b, %n_c) dt_proj(%w_dt, %b_dt) ssm(%a_log, %d) out_proj(%w_out)
      : (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>, tensor<256x64xf32>,
         tensor<128x1x4xf32>, tensor<24x128xf32>, tensor<8xf32>, tensor<8xf32>,
         tensor<8xf32>, tensor<128xf32>, tensor<128xf32>, tensor<128x8xf32>,
         tensor<128xf32>, tensor<64x128xf32>)
      -> (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// mamba_mixer: dt_proj produces d_inner rows.
func.func @mixer_dt_proj_rows(%x: tensor<1x4x64xf32>, %cs: tensor<1x128x3xf32>,
    %ss: tensor<1x128x8xf32>, %w_in: tensor<256x64xf32>, %w_conv: tensor<128x1x4xf32>,
    %w_x: tensor<24x128xf32>, %n_dt: tensor<8xf32>, %n_b: tensor<8xf32>, %n_c: tensor<8xf32>,
    %w_dt: tensor<64x8xf32>, %b_dt: tensor<128xf32>, %a_log: tensor<128x8xf32>, %d: tensor<128xf32>,
    %w_out: tensor<64x128xf32>) {
  // expected-error @+1 {{expected 'dt_proj_weight' dimension 0 to be d_inner = 128, got 64}}
  %o, %c, %s = jamba.mamba_mixer %x, state(%cs, %ss) in_proj(%w_in) conv1d(%w_conv)
      x_proj(%w_x) norms(%n_dt, %n_b, %n_c) dt_proj(%w_dt, %b_dt) ssm(%a_log, %d) out_proj(%w_out)
      : (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>, tensor<256x64xf32>,
         tensor<128x1x4xf32>, tensor<24x128xf32>, tensor<8xf32>, tensor<8xf32>,
         tensor<8xf32>, tensor<64x8xf32>, tensor<128xf32>, tensor<128x8xf32>,
         tensor<128xf32>, tensor<64x128xf32>)
      -> (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// mamba_mixer: the conv state is [batch, d_inner, d_conv - 1].
func.func @mixer_conv_state_rank(%x: tensor<1x4x64xf32>, %cs: tensor<128x3xf32>,
    %ss: tensor<1x128x8xf32>, %w_in: tensor<256x64xf32>, %w_conv: tensor<128x1x4xf32>,
    %w_x: tensor<24x128xf32>, %n_dt: tensor<8xf32>, %n_b: tensor<8xf32>, %n_c: tensor<8xf32>,
    %w_dt: tensor<128x8xf32>, %b_dt: tensor<128xf32>, %a_log: tensor<128x8xf32>,
    %d: tensor<128xf32>, %w_out: tensor<64x128xf32>) {
  // expected-error @+1 {{expected 'conv_state' to have rank 3, got 2}}
  %o, %c, %s = jamba.mamba_mixer %x, state(%cs, %ss) in_proj(%w_in) conv1d(%w_conv)
      x_proj(%w_x) norms(%n_dt, %n_b, %n_c) dt_proj(%w_dt, %b_dt) ssm(%a_log, %d) out_proj(%w_out)
      : (tensor<1x4x64xf32>, tensor<128x3xf32>, tensor<1x128x8xf32>, tensor<256x64xf32>,
         tensor<128x1x4xf32>, tensor<24x128xf32>, tensor<8xf32>, tensor<8xf32>,
         tensor<8xf32>, tensor<128x8xf32>, tensor<128xf32>, tensor<128x8xf32>,
         tensor<128xf32>, tensor<64x128xf32>)
      -> (tensor<1x4x64xf32>, tensor<128x3xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// mamba_mixer: the SSM state is [batch, d_inner, d_state].
func.func @mixer_ssm_state_rank(%x: tensor<1x4x64xf32>, %cs: tensor<1x128x3xf32>,
    %ss: tensor<128x8xf32>, %w_in: tensor<256x64xf32>, %w_conv: tensor<128x1x4xf32>,
    %w_x: tensor<24x128xf32>, %n_dt: tensor<8xf32>, %n_b: tensor<8xf32>, %n_c: tensor<8xf32>,
    %w_dt: tensor<128x8xf32>, %b_dt: tensor<128xf32>, %a_log: tensor<128x8xf32>,
    %d: tensor<128xf32>, %w_out: tensor<64x128xf32>) {
  // expected-error @+1 {{expected 'ssm_state' to have rank 3, got 2}}
  %o, %c, %s = jamba.mamba_mixer %x, state(%cs, %ss) in_proj(%w_in) conv1d(%w_conv)
      x_proj(%w_x) norms(%n_dt, %n_b, %n_c) dt_proj(%w_dt, %b_dt) ssm(%a_log, %d) out_proj(%w_out)
      : (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<128x8xf32>, tensor<256x64xf32>,
         tensor<128x1x4xf32>, tensor<24x128xf32>, tensor<8xf32>, tensor<8xf32>,
         tensor<8xf32>, tensor<128x8xf32>, tensor<128xf32>, tensor<128x8xf32>,
         tensor<128xf32>, tensor<64x128xf32>)
      -> (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<128x8xf32>)
  return
}

// -----

// mamba_mixer: the SSM state has d_state columns.
func.func @mixer_ssm_state_dstate(%x: tensor<1x4x64xf32>, %cs: tensor<1x128x3xf32>,
    %ss: tensor<1x128x16xf32>, %w_in: tensor<256x64xf32>, %w_conv: tensor<128x1x4xf32>,
    %w_x: tensor<24x128xf32>, %n_dt: tensor<8xf32>, %n_b: tensor<8xf32>, %n_c: tensor<8xf32>,
    %w_dt: tensor<128x8xf32>, %b_dt: tensor<128xf32>, %a_log: tensor<128x8xf32>,
    %d: tensor<128xf32>, %w_out: tensor<64x128xf32>) {
  // expected-error @+1 {{expected 'ssm_state' dimension 2 to be d_state = 8, got 16}}
  %o, %c, %s = jamba.mamba_mixer %x, state(%cs, %ss) in_proj(%w_in) conv1d(%w_conv)
      x_proj(%w_x) norms(%n_dt, %n_b, %n_c) dt_proj(%w_dt, %b_dt) ssm(%a_log, %d) out_proj(%w_out)
      : (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x16xf32>, tensor<256x64xf32>,
         tensor<128x1x4xf32>, tensor<24x128xf32>, tensor<8xf32>, tensor<8xf32>,
         tensor<8xf32>, tensor<128x8xf32>, tensor<128xf32>, tensor<128x8xf32>,
         tensor<128xf32>, tensor<64x128xf32>)
      -> (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x16xf32>)
  return
}

// -----

// mamba_mixer: in_proj is [2 * d_inner, hidden].
func.func @mixer_in_proj_rank(%x: tensor<1x4x64xf32>, %cs: tensor<1x128x3xf32>,
    %ss: tensor<1x128x8xf32>, %w_in: tensor<256xf32>, %w_conv: tensor<128x1x4xf32>,
    %w_x: tensor<24x128xf32>, %n_dt: tensor<8xf32>, %n_b: tensor<8xf32>, %n_c: tensor<8xf32>,
    %w_dt: tensor<128x8xf32>, %b_dt: tensor<128xf32>, %a_log: tensor<128x8xf32>,
    %d: tensor<128xf32>, %w_out: tensor<64x128xf32>) {
  // expected-error @+1 {{expected 'in_proj_weight' to have rank 2, got 1}}
  %o, %c, %s = jamba.mamba_mixer %x, state(%cs, %ss) in_proj(%w_in) conv1d(%w_conv)
      x_proj(%w_x) norms(%n_dt, %n_b, %n_c) dt_proj(%w_dt, %b_dt) ssm(%a_log, %d) out_proj(%w_out)
      : (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>, tensor<256xf32>,
         tensor<128x1x4xf32>, tensor<24x128xf32>, tensor<8xf32>, tensor<8xf32>,
         tensor<8xf32>, tensor<128x8xf32>, tensor<128xf32>, tensor<128x8xf32>,
         tensor<128xf32>, tensor<64x128xf32>)
      -> (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// mamba_mixer: the in_proj bias is a vector.
func.func @mixer_in_proj_bias_rank(%x: tensor<1x4x64xf32>, %cs: tensor<1x128x3xf32>,
    %ss: tensor<1x128x8xf32>, %w_in: tensor<256x64xf32>, %b_in: tensor<256x1xf32>,
    %w_conv: tensor<128x1x4xf32>, %w_x: tensor<24x128xf32>, %n_dt: tensor<8xf32>,
    %n_b: tensor<8xf32>, %n_c: tensor<8xf32>, %w_dt: tensor<128x8xf32>, %b_dt: tensor<128xf32>,
    %a_log: tensor<128x8xf32>, %d: tensor<128xf32>, %w_out: tensor<64x128xf32>) {
  // expected-error @+1 {{expected 'in_proj_bias' to have rank 1, got 2}}
  %o, %c, %s = jamba.mamba_mixer %x, state(%cs, %ss) in_proj(%w_in, %b_in) conv1d(%w_conv)
      x_proj(%w_x) norms(%n_dt, %n_b, %n_c) dt_proj(%w_dt, %b_dt) ssm(%a_log, %d) out_proj(%w_out)
      : (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>, tensor<256x64xf32>,
         tensor<256x1xf32>, tensor<128x1x4xf32>, tensor<24x128xf32>, tensor<8xf32>,
         tensor<8xf32>, tensor<8xf32>, tensor<128x8xf32>, tensor<128xf32>,
         tensor<128x8xf32>, tensor<128xf32>, tensor<64x128xf32>)
      -> (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// mamba_mixer: one in_proj bias per in_proj row.
func.func @mixer_in_proj_bias(%x: tensor<1x4x64xf32>, %cs: tensor<1x128x3xf32>,
    %ss: tensor<1x128x8xf32>, %w_in: tensor<256x64xf32>, %b_in: tensor<128xf32>,
    %w_conv: tensor<128x1x4xf32>, %w_x: tensor<24x128xf32>, %n_dt: tensor<8xf32>,
    %n_b: tensor<8xf32>, %n_c: tensor<8xf32>, %w_dt: tensor<128x8xf32>, %b_dt: tensor<128xf32>,
    %a_log: tensor<128x8xf32>, %d: tensor<128xf32>, %w_out: tensor<64x128xf32>) {
  // expected-error @+1 {{expected 'in_proj_bias' dimension 0 to be 2 * d_inner = 256, got 128}}
  %o, %c, %s = jamba.mamba_mixer %x, state(%cs, %ss) in_proj(%w_in, %b_in) conv1d(%w_conv)
      x_proj(%w_x) norms(%n_dt, %n_b, %n_c) dt_proj(%w_dt, %b_dt) ssm(%a_log, %d) out_proj(%w_out)
      : (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>, tensor<256x64xf32>,
         tensor<128xf32>, tensor<128x1x4xf32>, tensor<24x128xf32>, tensor<8xf32>,
         tensor<8xf32>, tensor<8xf32>, tensor<128x8xf32>, tensor<128xf32>,
         tensor<128x8xf32>, tensor<128xf32>, tensor<64x128xf32>)
      -> (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// mamba_mixer: the conv bias is a vector.
func.func @mixer_conv_bias_rank(%x: tensor<1x4x64xf32>, %cs: tensor<1x128x3xf32>,
    %ss: tensor<1x128x8xf32>, %w_in: tensor<256x64xf32>, %w_conv: tensor<128x1x4xf32>,
    %b_conv: tensor<128x1xf32>, %w_x: tensor<24x128xf32>, %n_dt: tensor<8xf32>, %n_b: tensor<8xf32>,
    %n_c: tensor<8xf32>, %w_dt: tensor<128x8xf32>, %b_dt: tensor<128xf32>,
    %a_log: tensor<128x8xf32>, %d: tensor<128xf32>, %w_out: tensor<64x128xf32>) {
  // expected-error @+1 {{expected 'conv_bias' to have rank 1, got 2}}
  %o, %c, %s = jamba.mamba_mixer %x, state(%cs, %ss) in_proj(%w_in) conv1d(%w_conv, %b_conv)
      x_proj(%w_x) norms(%n_dt, %n_b, %n_c) dt_proj(%w_dt, %b_dt) ssm(%a_log, %d) out_proj(%w_out)
      : (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>, tensor<256x64xf32>,
         tensor<128x1x4xf32>, tensor<128x1xf32>, tensor<24x128xf32>, tensor<8xf32>,
         tensor<8xf32>, tensor<8xf32>, tensor<128x8xf32>, tensor<128xf32>,
         tensor<128x8xf32>, tensor<128xf32>, tensor<64x128xf32>)
      -> (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// mamba_mixer: one conv bias per channel.
func.func @mixer_conv_bias(%x: tensor<1x4x64xf32>, %cs: tensor<1x128x3xf32>,
    %ss: tensor<1x128x8xf32>, %w_in: tensor<256x64xf32>, %w_conv: tensor<128x1x4xf32>,
    %b_conv: tensor<64xf32>, %w_x: tensor<24x128xf32>, %n_dt: tensor<8xf32>, %n_b: tensor<8xf32>,
    %n_c: tensor<8xf32>, %w_dt: tensor<128x8xf32>, %b_dt: tensor<128xf32>,
    %a_log: tensor<128x8xf32>, %d: tensor<128xf32>, %w_out: tensor<64x128xf32>) {
  // expected-error @+1 {{expected 'conv_bias' dimension 0 to be d_inner = 128, got 64}}
  %o, %c, %s = jamba.mamba_mixer %x, state(%cs, %ss) in_proj(%w_in) conv1d(%w_conv, %b_conv)
      x_proj(%w_x) norms(%n_dt, %n_b, %n_c) dt_proj(%w_dt, %b_dt) ssm(%a_log, %d) out_proj(%w_out)
      : (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>, tensor<256x64xf32>,
         tensor<128x1x4xf32>, tensor<64xf32>, tensor<24x128xf32>, tensor<8xf32>,
         tensor<8xf32>, tensor<8xf32>, tensor<128x8xf32>, tensor<128xf32>,
         tensor<128x8xf32>, tensor<128xf32>, tensor<64x128xf32>)
      -> (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// mamba_mixer: x_proj is [dt_rank + 2 * d_state, d_inner].
func.func @mixer_x_proj_rank(%x: tensor<1x4x64xf32>, %cs: tensor<1x128x3xf32>,
    %ss: tensor<1x128x8xf32>, %w_in: tensor<256x64xf32>, %w_conv: tensor<128x1x4xf32>,
    %w_x: tensor<24xf32>, %n_dt: tensor<8xf32>, %n_b: tensor<8xf32>, %n_c: tensor<8xf32>,
    %w_dt: tensor<128x8xf32>, %b_dt: tensor<128xf32>, %a_log: tensor<128x8xf32>,
    %d: tensor<128xf32>, %w_out: tensor<64x128xf32>) {
  // expected-error @+1 {{expected 'x_proj_weight' to have rank 2, got 1}}
  %o, %c, %s = jamba.mamba_mixer %x, state(%cs, %ss) in_proj(%w_in) conv1d(%w_conv)
      x_proj(%w_x) norms(%n_dt, %n_b, %n_c) dt_proj(%w_dt, %b_dt) ssm(%a_log, %d) out_proj(%w_out)
      : (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>, tensor<256x64xf32>,
         tensor<128x1x4xf32>, tensor<24xf32>, tensor<8xf32>, tensor<8xf32>,
         tensor<8xf32>, tensor<128x8xf32>, tensor<128xf32>, tensor<128x8xf32>,
         tensor<128xf32>, tensor<64x128xf32>)
      -> (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// mamba_mixer: the dt norm weight is a vector.
func.func @mixer_dt_norm_rank(%x: tensor<1x4x64xf32>, %cs: tensor<1x128x3xf32>,
    %ss: tensor<1x128x8xf32>, %w_in: tensor<256x64xf32>, %w_conv: tensor<128x1x4xf32>,
    %w_x: tensor<24x128xf32>, %n_dt: tensor<8x1xf32>, %n_b: tensor<8xf32>, %n_c: tensor<8xf32>,
    %w_dt: tensor<128x8xf32>, %b_dt: tensor<128xf32>, %a_log: tensor<128x8xf32>,
    %d: tensor<128xf32>, %w_out: tensor<64x128xf32>) {
  // expected-error @+1 {{expected 'dt_norm_weight' to have rank 1, got 2}}
  %o, %c, %s = jamba.mamba_mixer %x, state(%cs, %ss) in_proj(%w_in) conv1d(%w_conv)
      x_proj(%w_x) norms(%n_dt, %n_b, %n_c) dt_proj(%w_dt, %b_dt) ssm(%a_log, %d) out_proj(%w_out)
      : (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>, tensor<256x64xf32>,
         tensor<128x1x4xf32>, tensor<24x128xf32>, tensor<8x1xf32>, tensor<8xf32>,
         tensor<8xf32>, tensor<128x8xf32>, tensor<128xf32>, tensor<128x8xf32>,
         tensor<128xf32>, tensor<64x128xf32>)
      -> (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// mamba_mixer: the dt norm covers dt_rank.
func.func @mixer_dt_norm(%x: tensor<1x4x64xf32>, %cs: tensor<1x128x3xf32>, %ss: tensor<1x128x8xf32>,
    %w_in: tensor<256x64xf32>, %w_conv: tensor<128x1x4xf32>, %w_x: tensor<24x128xf32>,
    %n_dt: tensor<4xf32>, %n_b: tensor<8xf32>, %n_c: tensor<8xf32>, %w_dt: tensor<128x8xf32>,
    %b_dt: tensor<128xf32>, %a_log: tensor<128x8xf32>, %d: tensor<128xf32>,
    %w_out: tensor<64x128xf32>) {
  // expected-error @+1 {{expected 'dt_norm_weight' dimension 0 to be dt_rank = 8, got 4}}
  %o, %c, %s = jamba.mamba_mixer %x, state(%cs, %ss) in_proj(%w_in) conv1d(%w_conv)
      x_proj(%w_x) norms(%n_dt, %n_b, %n_c) dt_proj(%w_dt, %b_dt) ssm(%a_log, %d) out_proj(%w_out)
      : (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>, tensor<256x64xf32>,
         tensor<128x1x4xf32>, tensor<24x128xf32>, tensor<4xf32>, tensor<8xf32>,
         tensor<8xf32>, tensor<128x8xf32>, tensor<128xf32>, tensor<128x8xf32>,
         tensor<128xf32>, tensor<64x128xf32>)
      -> (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// mamba_mixer: the B norm weight is a vector.
func.func @mixer_b_norm_rank(%x: tensor<1x4x64xf32>, %cs: tensor<1x128x3xf32>,
    %ss: tensor<1x128x8xf32>, %w_in: tensor<256x64xf32>, %w_conv: tensor<128x1x4xf32>,
    %w_x: tensor<24x128xf32>, %n_dt: tensor<8xf32>, %n_b: tensor<8x1xf32>, %n_c: tensor<8xf32>,
    %w_dt: tensor<128x8xf32>, %b_dt: tensor<128xf32>, %a_log: tensor<128x8xf32>,
    %d: tensor<128xf32>, %w_out: tensor<64x128xf32>) {
  // expected-error @+1 {{expected 'b_norm_weight' to have rank 1, got 2}}
  %o, %c, %s = jamba.mamba_mixer %x, state(%cs, %ss) in_proj(%w_in) conv1d(%w_conv)
      x_proj(%w_x) norms(%n_dt, %n_b, %n_c) dt_proj(%w_dt, %b_dt) ssm(%a_log, %d) out_proj(%w_out)
      : (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>, tensor<256x64xf32>,
         tensor<128x1x4xf32>, tensor<24x128xf32>, tensor<8xf32>, tensor<8x1xf32>,
         tensor<8xf32>, tensor<128x8xf32>, tensor<128xf32>, tensor<128x8xf32>,
         tensor<128xf32>, tensor<64x128xf32>)
      -> (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// mamba_mixer: the B norm covers d_state.
func.func @mixer_b_norm(%x: tensor<1x4x64xf32>, %cs: tensor<1x128x3xf32>, %ss: tensor<1x128x8xf32>,
    %w_in: tensor<256x64xf32>, %w_conv: tensor<128x1x4xf32>, %w_x: tensor<24x128xf32>,
    %n_dt: tensor<8xf32>, %n_b: tensor<4xf32>, %n_c: tensor<8xf32>, %w_dt: tensor<128x8xf32>,
    %b_dt: tensor<128xf32>, %a_log: tensor<128x8xf32>, %d: tensor<128xf32>,
    %w_out: tensor<64x128xf32>) {
  // expected-error @+1 {{expected 'b_norm_weight' dimension 0 to be d_state = 8, got 4}}
  %o, %c, %s = jamba.mamba_mixer %x, state(%cs, %ss) in_proj(%w_in) conv1d(%w_conv)
      x_proj(%w_x) norms(%n_dt, %n_b, %n_c) dt_proj(%w_dt, %b_dt) ssm(%a_log, %d) out_proj(%w_out)
      : (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>, tensor<256x64xf32>,
         tensor<128x1x4xf32>, tensor<24x128xf32>, tensor<8xf32>, tensor<4xf32>,
         tensor<8xf32>, tensor<128x8xf32>, tensor<128xf32>, tensor<128x8xf32>,
         tensor<128xf32>, tensor<64x128xf32>)
      -> (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// mamba_mixer: the C norm weight is a vector.
func.func @mixer_c_norm_rank(%x: tensor<1x4x64xf32>, %cs: tensor<1x128x3xf32>,
    %ss: tensor<1x128x8xf32>, %w_in: tensor<256x64xf32>, %w_conv: tensor<128x1x4xf32>,
    %w_x: tensor<24x128xf32>, %n_dt: tensor<8xf32>, %n_b: tensor<8xf32>, %n_c: tensor<8x1xf32>,
    %w_dt: tensor<128x8xf32>, %b_dt: tensor<128xf32>, %a_log: tensor<128x8xf32>,
    %d: tensor<128xf32>, %w_out: tensor<64x128xf32>) {
  // expected-error @+1 {{expected 'c_norm_weight' to have rank 1, got 2}}
  %o, %c, %s = jamba.mamba_mixer %x, state(%cs, %ss) in_proj(%w_in) conv1d(%w_conv)
      x_proj(%w_x) norms(%n_dt, %n_b, %n_c) dt_proj(%w_dt, %b_dt) ssm(%a_log, %d) out_proj(%w_out)
      : (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>, tensor<256x64xf32>,
         tensor<128x1x4xf32>, tensor<24x128xf32>, tensor<8xf32>, tensor<8xf32>,
         tensor<8x1xf32>, tensor<128x8xf32>, tensor<128xf32>, tensor<128x8xf32>,
         tensor<128xf32>, tensor<64x128xf32>)
      -> (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// mamba_mixer: the C norm covers d_state.
func.func @mixer_c_norm(%x: tensor<1x4x64xf32>, %cs: tensor<1x128x3xf32>, %ss: tensor<1x128x8xf32>,
    %w_in: tensor<256x64xf32>, %w_conv: tensor<128x1x4xf32>, %w_x: tensor<24x128xf32>,
    %n_dt: tensor<8xf32>, %n_b: tensor<8xf32>, %n_c: tensor<4xf32>, %w_dt: tensor<128x8xf32>,
    %b_dt: tensor<128xf32>, %a_log: tensor<128x8xf32>, %d: tensor<128xf32>,
    %w_out: tensor<64x128xf32>) {
  // expected-error @+1 {{expected 'c_norm_weight' dimension 0 to be d_state = 8, got 4}}
  %o, %c, %s = jamba.mamba_mixer %x, state(%cs, %ss) in_proj(%w_in) conv1d(%w_conv)
      x_proj(%w_x) norms(%n_dt, %n_b, %n_c) dt_proj(%w_dt, %b_dt) ssm(%a_log, %d) out_proj(%w_out)
      : (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>, tensor<256x64xf32>,
         tensor<128x1x4xf32>, tensor<24x128xf32>, tensor<8xf32>, tensor<8xf32>,
         tensor<4xf32>, tensor<128x8xf32>, tensor<128xf32>, tensor<128x8xf32>,
         tensor<128xf32>, tensor<64x128xf32>)
      -> (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// mamba_mixer: the dt_proj bias is a vector.
func.func @mixer_dt_bias_rank(%x: tensor<1x4x64xf32>, %cs: tensor<1x128x3xf32>,
    %ss: tensor<1x128x8xf32>, %w_in: tensor<256x64xf32>, %w_conv: tensor<128x1x4xf32>,
    %w_x: tensor<24x128xf32>, %n_dt: tensor<8xf32>, %n_b: tensor<8xf32>, %n_c: tensor<8xf32>,
    %w_dt: tensor<128x8xf32>, %b_dt: tensor<128x1xf32>, %a_log: tensor<128x8xf32>,
    %d: tensor<128xf32>, %w_out: tensor<64x128xf32>) {
  // expected-error @+1 {{expected 'dt_proj_bias' to have rank 1, got 2}}
  %o, %c, %s = jamba.mamba_mixer %x, state(%cs, %ss) in_proj(%w_in) conv1d(%w_conv)
      x_proj(%w_x) norms(%n_dt, %n_b, %n_c) dt_proj(%w_dt, %b_dt) ssm(%a_log, %d) out_proj(%w_out)
      : (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>, tensor<256x64xf32>,
         tensor<128x1x4xf32>, tensor<24x128xf32>, tensor<8xf32>, tensor<8xf32>,
         tensor<8xf32>, tensor<128x8xf32>, tensor<128x1xf32>, tensor<128x8xf32>,
         tensor<128xf32>, tensor<64x128xf32>)
      -> (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// mamba_mixer: one dt_proj bias per channel.
func.func @mixer_dt_bias(%x: tensor<1x4x64xf32>, %cs: tensor<1x128x3xf32>, %ss: tensor<1x128x8xf32>,
    %w_in: tensor<256x64xf32>, %w_conv: tensor<128x1x4xf32>, %w_x: tensor<24x128xf32>,
    %n_dt: tensor<8xf32>, %n_b: tensor<8xf32>, %n_c: tensor<8xf32>, %w_dt: tensor<128x8xf32>,
    %b_dt: tensor<64xf32>, %a_log: tensor<128x8xf32>, %d: tensor<128xf32>,
    %w_out: tensor<64x128xf32>) {
  // expected-error @+1 {{expected 'dt_proj_bias' dimension 0 to be d_inner = 128, got 64}}
  %o, %c, %s = jamba.mamba_mixer %x, state(%cs, %ss) in_proj(%w_in) conv1d(%w_conv)
      x_proj(%w_x) norms(%n_dt, %n_b, %n_c) dt_proj(%w_dt, %b_dt) ssm(%a_log, %d) out_proj(%w_out)
      : (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>, tensor<256x64xf32>,
         tensor<128x1x4xf32>, tensor<24x128xf32>, tensor<8xf32>, tensor<8xf32>,
         tensor<8xf32>, tensor<128x8xf32>, tensor<64xf32>, tensor<128x8xf32>,
         tensor<128xf32>, tensor<64x128xf32>)
      -> (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// mamba_mixer: the skip D is a vector.
func.func @mixer_d_rank(%x: tensor<1x4x64xf32>, %cs: tensor<1x128x3xf32>, %ss: tensor<1x128x8xf32>,
    %w_in: tensor<256x64xf32>, %w_conv: tensor<128x1x4xf32>, %w_x: tensor<24x128xf32>,
    %n_dt: tensor<8xf32>, %n_b: tensor<8xf32>, %n_c: tensor<8xf32>, %w_dt: tensor<128x8xf32>,
    %b_dt: tensor<128xf32>, %a_log: tensor<128x8xf32>, %d: tensor<128x1xf32>,
    %w_out: tensor<64x128xf32>) {
  // expected-error @+1 {{expected 'D' to have rank 1, got 2}}
  %o, %c, %s = jamba.mamba_mixer %x, state(%cs, %ss) in_proj(%w_in) conv1d(%w_conv)
      x_proj(%w_x) norms(%n_dt, %n_b, %n_c) dt_proj(%w_dt, %b_dt) ssm(%a_log, %d) out_proj(%w_out)
      : (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>, tensor<256x64xf32>,
         tensor<128x1x4xf32>, tensor<24x128xf32>, tensor<8xf32>, tensor<8xf32>,
         tensor<8xf32>, tensor<128x8xf32>, tensor<128xf32>, tensor<128x8xf32>,
         tensor<128x1xf32>, tensor<64x128xf32>)
      -> (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// mamba_mixer: one skip weight per channel.
func.func @mixer_d(%x: tensor<1x4x64xf32>, %cs: tensor<1x128x3xf32>, %ss: tensor<1x128x8xf32>,
    %w_in: tensor<256x64xf32>, %w_conv: tensor<128x1x4xf32>, %w_x: tensor<24x128xf32>,
    %n_dt: tensor<8xf32>, %n_b: tensor<8xf32>, %n_c: tensor<8xf32>, %w_dt: tensor<128x8xf32>,
    %b_dt: tensor<128xf32>, %a_log: tensor<128x8xf32>, %d: tensor<64xf32>,
    %w_out: tensor<64x128xf32>) {
  // expected-error @+1 {{expected 'D' dimension 0 to be d_inner = 128, got 64}}
  %o, %c, %s = jamba.mamba_mixer %x, state(%cs, %ss) in_proj(%w_in) conv1d(%w_conv)
      x_proj(%w_x) norms(%n_dt, %n_b, %n_c) dt_proj(%w_dt, %b_dt) ssm(%a_log, %d) out_proj(%w_out)
      : (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>, tensor<256x64xf32>,
         tensor<128x1x4xf32>, tensor<24x128xf32>, tensor<8xf32>, tensor<8xf32>,
         tensor<8xf32>, tensor<128x8xf32>, tensor<128xf32>, tensor<128x8xf32>,
         tensor<64xf32>, tensor<64x128xf32>)
      -> (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// mamba_mixer: out_proj is [hidden, d_inner].
func.func @mixer_out_proj_rank(%x: tensor<1x4x64xf32>, %cs: tensor<1x128x3xf32>,
    %ss: tensor<1x128x8xf32>, %w_in: tensor<256x64xf32>, %w_conv: tensor<128x1x4xf32>,
    %w_x: tensor<24x128xf32>, %n_dt: tensor<8xf32>, %n_b: tensor<8xf32>, %n_c: tensor<8xf32>,
    %w_dt: tensor<128x8xf32>, %b_dt: tensor<128xf32>, %a_log: tensor<128x8xf32>,
    %d: tensor<128xf32>, %w_out: tensor<64xf32>) {
  // expected-error @+1 {{expected 'out_proj_weight' to have rank 2, got 1}}
  %o, %c, %s = jamba.mamba_mixer %x, state(%cs, %ss) in_proj(%w_in) conv1d(%w_conv)
      x_proj(%w_x) norms(%n_dt, %n_b, %n_c) dt_proj(%w_dt, %b_dt) ssm(%a_log, %d) out_proj(%w_out)
      : (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>, tensor<256x64xf32>,
         tensor<128x1x4xf32>, tensor<24x128xf32>, tensor<8xf32>, tensor<8xf32>,
         tensor<8xf32>, tensor<128x8xf32>, tensor<128xf32>, tensor<128x8xf32>,
         tensor<128xf32>, tensor<64xf32>)
      -> (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// mamba_mixer: out_proj reads d_inner channels.
func.func @mixer_out_proj(%x: tensor<1x4x64xf32>, %cs: tensor<1x128x3xf32>,
    %ss: tensor<1x128x8xf32>, %w_in: tensor<256x64xf32>, %w_conv: tensor<128x1x4xf32>,
    %w_x: tensor<24x128xf32>, %n_dt: tensor<8xf32>, %n_b: tensor<8xf32>, %n_c: tensor<8xf32>,
    %w_dt: tensor<128x8xf32>, %b_dt: tensor<128xf32>, %a_log: tensor<128x8xf32>,
    %d: tensor<128xf32>, %w_out: tensor<64x64xf32>) {
  // expected-error @+1 {{expected 'out_proj_weight' dimension 1 to be d_inner = 128, got 64}}
  %o, %c, %s = jamba.mamba_mixer %x, state(%cs, %ss) in_proj(%w_in) conv1d(%w_conv)
      x_proj(%w_x) norms(%n_dt, %n_b, %n_c) dt_proj(%w_dt, %b_dt) ssm(%a_log, %d) out_proj(%w_out)
      : (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>, tensor<256x64xf32>,
         tensor<128x1x4xf32>, tensor<24x128xf32>, tensor<8xf32>, tensor<8xf32>,
         tensor<8xf32>, tensor<128x8xf32>, tensor<128xf32>, tensor<128x8xf32>,
         tensor<128xf32>, tensor<64x64xf32>)
      -> (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// mamba_mixer: the out_proj bias is a vector.
func.func @mixer_out_proj_bias_rank(%x: tensor<1x4x64xf32>, %cs: tensor<1x128x3xf32>,
    %ss: tensor<1x128x8xf32>, %w_in: tensor<256x64xf32>, %w_conv: tensor<128x1x4xf32>,
    %w_x: tensor<24x128xf32>, %n_dt: tensor<8xf32>, %n_b: tensor<8xf32>, %n_c: tensor<8xf32>,
    %w_dt: tensor<128x8xf32>, %b_dt: tensor<128xf32>, %a_log: tensor<128x8xf32>,
    %d: tensor<128xf32>, %w_out: tensor<64x128xf32>, %b_out: tensor<64x1xf32>) {
  // expected-error @+1 {{expected 'out_proj_bias' to have rank 1, got 2}}
  %o, %c, %s = jamba.mamba_mixer %x, state(%cs, %ss) in_proj(%w_in) conv1d(%w_conv)
      x_proj(%w_x) norms(%n_dt, %n_b, %n_c) dt_proj(%w_dt, %b_dt) ssm(%a_log, %d) out_proj(%w_out, %b_out)
      : (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>, tensor<256x64xf32>,
         tensor<128x1x4xf32>, tensor<24x128xf32>, tensor<8xf32>, tensor<8xf32>,
         tensor<8xf32>, tensor<128x8xf32>, tensor<128xf32>, tensor<128x8xf32>,
         tensor<128xf32>, tensor<64x128xf32>, tensor<64x1xf32>)
      -> (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// mamba_mixer: one out_proj bias per hidden feature.
func.func @mixer_out_proj_bias(%x: tensor<1x4x64xf32>, %cs: tensor<1x128x3xf32>,
    %ss: tensor<1x128x8xf32>, %w_in: tensor<256x64xf32>, %w_conv: tensor<128x1x4xf32>,
    %w_x: tensor<24x128xf32>, %n_dt: tensor<8xf32>, %n_b: tensor<8xf32>, %n_c: tensor<8xf32>,
    %w_dt: tensor<128x8xf32>, %b_dt: tensor<128xf32>, %a_log: tensor<128x8xf32>,
    %d: tensor<128xf32>, %w_out: tensor<64x128xf32>, %b_out: tensor<32xf32>) {
  // expected-error @+1 {{expected 'out_proj_bias' dimension 0 to be hidden_size = 64, got 32}}
  %o, %c, %s = jamba.mamba_mixer %x, state(%cs, %ss) in_proj(%w_in) conv1d(%w_conv)
      x_proj(%w_x) norms(%n_dt, %n_b, %n_c) dt_proj(%w_dt, %b_dt) ssm(%a_log, %d) out_proj(%w_out, %b_out)
      : (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>, tensor<256x64xf32>,
         tensor<128x1x4xf32>, tensor<24x128xf32>, tensor<8xf32>, tensor<8xf32>,
         tensor<8xf32>, tensor<128x8xf32>, tensor<128xf32>, tensor<128x8xf32>,
         tensor<128xf32>, tensor<64x128xf32>, tensor<32xf32>)
      -> (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// mamba_mixer: the updated conv state keeps the state's type.
func.func @mixer_new_conv_state(%x: tensor<1x4x64xf32>, %cs: tensor<1x128x3xf32>,
    %ss: tensor<1x128x8xf32>, %w_in: tensor<256x64xf32>, %w_conv: tensor<128x1x4xf32>,
    %w_x: tensor<24x128xf32>, %n_dt: tensor<8xf32>, %n_b: tensor<8xf32>, %n_c: tensor<8xf32>,
    %w_dt: tensor<128x8xf32>, %b_dt: tensor<128xf32>, %a_log: tensor<128x8xf32>,
    %d: tensor<128xf32>, %w_out: tensor<64x128xf32>) {
  // expected-error @+1 {{expected 'conv_state' and 'new_conv_state' to have the same type, got 'tensor<1x128x3xf32>' and 'tensor<1x128x?xf32>'}}
  %o, %c, %s = jamba.mamba_mixer %x, state(%cs, %ss) in_proj(%w_in) conv1d(%w_conv)
      x_proj(%w_x) norms(%n_dt, %n_b, %n_c) dt_proj(%w_dt, %b_dt) ssm(%a_log, %d) out_proj(%w_out)
      : (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>, tensor<256x64xf32>,
         tensor<128x1x4xf32>, tensor<24x128xf32>, tensor<8xf32>, tensor<8xf32>,
         tensor<8xf32>, tensor<128x8xf32>, tensor<128xf32>, tensor<128x8xf32>,
         tensor<128xf32>, tensor<64x128xf32>)
      -> (tensor<1x4x64xf32>, tensor<1x128x?xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// mamba_mixer: the updated SSM state keeps the state's type.
func.func @mixer_new_ssm_state(%x: tensor<1x4x64xf32>, %cs: tensor<1x128x3xf32>,
    %ss: tensor<1x128x8xf32>, %w_in: tensor<256x64xf32>, %w_conv: tensor<128x1x4xf32>,
    %w_x: tensor<24x128xf32>, %n_dt: tensor<8xf32>, %n_b: tensor<8xf32>, %n_c: tensor<8xf32>,
    %w_dt: tensor<128x8xf32>, %b_dt: tensor<128xf32>, %a_log: tensor<128x8xf32>,
    %d: tensor<128xf32>, %w_out: tensor<64x128xf32>) {
  // expected-error @+1 {{expected 'ssm_state' and 'new_ssm_state' to have the same type, got 'tensor<1x128x8xf32>' and 'tensor<1x?x8xf32>'}}
  %o, %c, %s = jamba.mamba_mixer %x, state(%cs, %ss) in_proj(%w_in) conv1d(%w_conv)
      x_proj(%w_x) norms(%n_dt, %n_b, %n_c) dt_proj(%w_dt, %b_dt) ssm(%a_log, %d) out_proj(%w_out)
      : (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>, tensor<256x64xf32>,
         tensor<128x1x4xf32>, tensor<24x128xf32>, tensor<8xf32>, tensor<8xf32>,
         tensor<8xf32>, tensor<128x8xf32>, tensor<128xf32>, tensor<128x8xf32>,
         tensor<128xf32>, tensor<64x128xf32>)
      -> (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x?x8xf32>)
  return
}

// -----

// mamba_mixer: x_proj_all_reduce is a group size, not negative (ODS constraint).
func.func @mixer_all_reduce_negative(%x: tensor<1x4x64xf32>, %cs: tensor<1x128x3xf32>,
    %ss: tensor<1x128x8xf32>, %w_in: tensor<256x64xf32>, %w_conv: tensor<128x1x4xf32>,
    %w_x: tensor<24x128xf32>, %n_dt: tensor<8xf32>, %n_b: tensor<8xf32>, %n_c: tensor<8xf32>,
    %w_dt: tensor<128x8xf32>, %b_dt: tensor<128xf32>, %a_log: tensor<128x8xf32>,
    %d: tensor<128xf32>, %w_out: tensor<64x128xf32>) {
  // expected-error @+3 {{attribute 'x_proj_all_reduce' failed to satisfy constraint: 64-bit signless integer attribute whose value is non-negative}}
  %o, %c, %s = jamba.mamba_mixer %x, state(%cs, %ss) in_proj(%w_in) conv1d(%w_conv)
      x_proj(%w_x) norms(%n_dt, %n_b, %n_c) dt_proj(%w_dt, %b_dt) ssm(%a_log, %d) out_proj(%w_out)
      {x_proj_all_reduce = -1 : i64}
      : (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>, tensor<256x64xf32>,
         tensor<128x1x4xf32>, tensor<24x128xf32>, tensor<8xf32>, tensor<8xf32>,
         tensor<8xf32>, tensor<128x8xf32>, tensor<128xf32>, tensor<128x8xf32>,
         tensor<128xf32>, tensor<64x128xf32>)
      -> (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// mamba_mixer: epsilon is an f64 (ODS constraint).
func.func @mixer_epsilon_type(%x: tensor<1x4x64xf32>, %cs: tensor<1x128x3xf32>,
    %ss: tensor<1x128x8xf32>, %w_in: tensor<256x64xf32>, %w_conv: tensor<128x1x4xf32>,
    %w_x: tensor<24x128xf32>, %n_dt: tensor<8xf32>, %n_b: tensor<8xf32>, %n_c: tensor<8xf32>,
    %w_dt: tensor<128x8xf32>, %b_dt: tensor<128xf32>, %a_log: tensor<128x8xf32>,
    %d: tensor<128xf32>, %w_out: tensor<64x128xf32>) {
  // expected-error @+3 {{attribute 'epsilon' failed to satisfy constraint: 64-bit float attribute}}
  %o, %c, %s = jamba.mamba_mixer %x, state(%cs, %ss) in_proj(%w_in) conv1d(%w_conv)
      x_proj(%w_x) norms(%n_dt, %n_b, %n_c) dt_proj(%w_dt, %b_dt) ssm(%a_log, %d) out_proj(%w_out)
      {epsilon = 1 : i64}
      : (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>, tensor<256x64xf32>,
         tensor<128x1x4xf32>, tensor<24x128xf32>, tensor<8xf32>, tensor<8xf32>,
         tensor<8xf32>, tensor<128x8xf32>, tensor<128xf32>, tensor<128x8xf32>,
         tensor<128xf32>, tensor<64x128xf32>)
      -> (tensor<1x4x64xf32>, tensor<1x128x3xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// attention: query heads share kv heads in whole groups (GQA).
func.func @attention_heads(%x: tensor<1x4x64xf32>, %wq: tensor<48x64xf32>, %wk: tensor<32x64xf32>,
    %wo: tensor<64x48xf32>, %k: tensor<1x2x8x16xf32>, %len: tensor<1xi64>) {
  // expected-error @+1 {{expected num_heads (3) to be a multiple of num_kv_heads (2)}}
  %o, %k2, %v2 = jamba.attention %x, %wq, %wk, %wk, %wo, cache(%k, %k, %len)
      {num_heads = 3 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<48x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>,
         tensor<64x48xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>, tensor<1xi64>)
      -> (tensor<1x4x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>)
  return
}

// -----

// attention: head_dim is derived from q_weight, which needs a static row count.
func.func @attention_dynamic_q(%x: tensor<1x4x64xf32>, %wq: tensor<?x64xf32>, %wk: tensor<32x64xf32>,
    %wo: tensor<64x64xf32>, %k: tensor<1x2x8x16xf32>, %len: tensor<1xi64>) {
  // expected-error @+1 {{expected 'q_weight' to have a static row count}}
  %o, %k2, %v2 = jamba.attention %x, %wq, %wk, %wk, %wo, cache(%k, %k, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<?x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>,
         tensor<64x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>, tensor<1xi64>)
      -> (tensor<1x4x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>)
  return
}

// -----

// attention: q_weight rows split evenly into heads.
func.func @attention_q_rows(%x: tensor<1x4x64xf32>, %wq: tensor<66x64xf32>, %wk: tensor<32x64xf32>,
    %wo: tensor<64x64xf32>, %k: tensor<1x2x8x16xf32>, %len: tensor<1xi64>) {
  // expected-error @+1 {{expected 'q_weight' rows (66) to be a multiple of num_heads (4)}}
  %o, %k2, %v2 = jamba.attention %x, %wq, %wk, %wk, %wo, cache(%k, %k, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<66x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>,
         tensor<64x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>, tensor<1xi64>)
      -> (tensor<1x4x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>)
  return
}

// -----

// attention: k/v projections have num_kv_heads * head_dim rows.
func.func @attention_k_rows(%x: tensor<1x4x64xf32>, %wq: tensor<64x64xf32>, %wk: tensor<64x64xf32>,
    %wo: tensor<64x64xf32>, %k: tensor<1x2x8x16xf32>, %len: tensor<1xi64>) {
  // expected-error @+1 {{expected 'k_weight' dimension 0 to be num_kv_heads * head_dim = 32, got 64}}
  %o, %k2, %v2 = jamba.attention %x, %wq, %wk, %wk, %wo, cache(%k, %k, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>, tensor<64x64xf32>,
         tensor<64x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>, tensor<1xi64>)
      -> (tensor<1x4x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>)
  return
}

// -----

// attention: the KV cache is [batch, kv_heads, capacity, head_dim].
func.func @attention_cache_rank(%x: tensor<1x4x64xf32>, %wq: tensor<64x64xf32>, %wk: tensor<32x64xf32>,
    %wo: tensor<64x64xf32>, %k: tensor<2x8x16xf32>, %len: tensor<1xi64>) {
  // expected-error @+1 {{expected 'k_cache' to have rank 4, got 3}}
  %o, %k2, %v2 = jamba.attention %x, %wq, %wk, %wk, %wo, cache(%k, %k, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<64x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>,
         tensor<64x64xf32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>, tensor<1xi64>)
      -> (tensor<1x4x64xf32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>)
  return
}

// -----

// attention: K and V caches have one type.
func.func @attention_cache_types(%x: tensor<1x4x64xf32>, %wq: tensor<64x64xf32>, %wk: tensor<32x64xf32>,
    %wo: tensor<64x64xf32>, %k: tensor<1x2x8x16xf32>, %v: tensor<1x2x9x16xf32>, %len: tensor<1xi64>) {
  // expected-error @+1 {{expected 'k_cache' and 'v_cache' to have the same type, got 'tensor<1x2x8x16xf32>' and 'tensor<1x2x9x16xf32>'}}
  %o, %k2, %v2 = jamba.attention %x, %wq, %wk, %wk, %wo, cache(%k, %v, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<64x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>,
         tensor<64x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x9x16xf32>, tensor<1xi64>)
      -> (tensor<1x4x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x9x16xf32>)
  return
}

// -----

// attention: one cache length per sequence.
func.func @attention_cache_len(%x: tensor<1x4x64xf32>, %wq: tensor<64x64xf32>, %wk: tensor<32x64xf32>,
    %wo: tensor<64x64xf32>, %k: tensor<1x2x8x16xf32>, %len: tensor<2xi64>) {
  // expected-error @+1 {{expected 'cache_len' dimension 0 to be batch = 1, got 2}}
  %o, %k2, %v2 = jamba.attention %x, %wq, %wk, %wk, %wo, cache(%k, %k, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<64x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>,
         tensor<64x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>, tensor<2xi64>)
      -> (tensor<1x4x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>)
  return
}

// -----

// attention: the updated cache keeps the cache's type.
func.func @attention_new_cache(%x: tensor<1x4x64xf32>, %wq: tensor<64x64xf32>, %wk: tensor<32x64xf32>,
    %wo: tensor<64x64xf32>, %k: tensor<1x2x8x16xf32>, %len: tensor<1xi64>) {
  // expected-error @+1 {{expected 'k_cache' and 'new_k_cache' to have the same type, got 'tensor<1x2x8x16xf32>' and 'tensor<1x2x?x16xf32>'}}
  %o, %k2, %v2 = jamba.attention %x, %wq, %wk, %wk, %wo, cache(%k, %k, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<64x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>,
         tensor<64x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>, tensor<1xi64>)
      -> (tensor<1x4x64xf32>, tensor<1x2x?x16xf32>, tensor<1x2x8x16xf32>)
  return
}

// -----

// attention: num_heads is positive (ODS constraint).
func.func @attention_zero_heads(%x: tensor<1x4x64xf32>, %wq: tensor<64x64xf32>, %wk: tensor<32x64xf32>,
    %wo: tensor<64x64xf32>, %k: tensor<1x2x8x16xf32>, %len: tensor<1xi64>) {
  // expected-error @+2 {{attribute 'num_heads' failed to satisfy constraint: 64-bit signless integer attribute whose value is positive}}
  %o, %k2, %v2 = jamba.attention %x, %wq, %wk, %wk, %wo, cache(%k, %k, %len)
      {num_heads = 0 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<64x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>,
         tensor<64x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>, tensor<1xi64>)
      -> (tensor<1x4x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>)
  return
}

// -----

// attention: the input is [batch, seq, hidden].
func.func @attention_input_rank(%x: tensor<4x64xf32>, %wq: tensor<64x64xf32>,
    %wk: tensor<32x64xf32>, %wv: tensor<32x64xf32>, %wo: tensor<64x64xf32>,
    %k: tensor<1x2x8x16xf32>, %v: tensor<1x2x8x16xf32>, %len: tensor<1xi64>) {
  // expected-error @+1 {{expected 'input' to have rank 3, got 2}}
  %o, %k2, %v2 = jamba.attention %x, %wq, %wk, %wv, %wo, cache(%k, %v, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<4x64xf32>, tensor<64x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>,
         tensor<64x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>, tensor<1xi64>)
      -> (tensor<4x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>)
  return
}

// -----

// attention: q_proj is [num_heads * head_dim, hidden].
func.func @attention_q_rank(%x: tensor<1x4x64xf32>, %wq: tensor<64xf32>, %wk: tensor<32x64xf32>,
    %wv: tensor<32x64xf32>, %wo: tensor<64x64xf32>, %k: tensor<1x2x8x16xf32>,
    %v: tensor<1x2x8x16xf32>, %len: tensor<1xi64>) {
  // expected-error @+1 {{expected 'q_weight' to have rank 2, got 1}}
  %o, %k2, %v2 = jamba.attention %x, %wq, %wk, %wv, %wo, cache(%k, %v, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<64xf32>, tensor<32x64xf32>, tensor<32x64xf32>,
         tensor<64x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>, tensor<1xi64>)
      -> (tensor<1x4x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>)
  return
}

// -----

// attention: q_proj reads the hidden state.
func.func @attention_q_hidden(%x: tensor<1x4x64xf32>, %wq: tensor<64x32xf32>,
    %wk: tensor<32x64xf32>, %wv: tensor<32x64xf32>, %wo: tensor<64x64xf32>,
    %k: tensor<1x2x8x16xf32>, %v: tensor<1x2x8x16xf32>, %len: tensor<1xi64>) {
  // expected-error @+1 {{expected 'q_weight' dimension 1 to be hidden_size = 64, got 32}}
  %o, %k2, %v2 = jamba.attention %x, %wq, %wk, %wv, %wo, cache(%k, %v, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<64x32xf32>, tensor<32x64xf32>, tensor<32x64xf32>,
         tensor<64x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>, tensor<1xi64>)
      -> (tensor<1x4x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>)
  return
}

// -----

// attention: k_proj is [num_kv_heads * head_dim, hidden].
func.func @attention_k_rank(%x: tensor<1x4x64xf32>, %wq: tensor<64x64xf32>, %wk: tensor<32xf32>,
    %wv: tensor<32x64xf32>, %wo: tensor<64x64xf32>, %k: tensor<1x2x8x16xf32>,
    %v: tensor<1x2x8x16xf32>, %len: tensor<1xi64>) {
  // expected-error @+1 {{expected 'k_weight' to have rank 2, got 1}}
  %o, %k2, %v2 = jamba.attention %x, %wq, %wk, %wv, %wo, cache(%k, %v, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<64x64xf32>, tensor<32xf32>, tensor<32x64xf32>,
         tensor<64x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>, tensor<1xi64>)
      -> (tensor<1x4x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>)
  return
}

// -----

// attention: v_proj is [num_kv_heads * head_dim, hidden].
func.func @attention_v_rank(%x: tensor<1x4x64xf32>, %wq: tensor<64x64xf32>, %wk: tensor<32x64xf32>,
    %wv: tensor<32xf32>, %wo: tensor<64x64xf32>, %k: tensor<1x2x8x16xf32>, %v: tensor<1x2x8x16xf32>,
    %len: tensor<1xi64>) {
  // expected-error @+1 {{expected 'v_weight' to have rank 2, got 1}}
  %o, %k2, %v2 = jamba.attention %x, %wq, %wk, %wv, %wo, cache(%k, %v, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<64x64xf32>, tensor<32x64xf32>, tensor<32xf32>,
         tensor<64x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>, tensor<1xi64>)
      -> (tensor<1x4x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>)
  return
}

// -----

// attention: v_proj has num_kv_heads * head_dim rows.
func.func @attention_v_rows(%x: tensor<1x4x64xf32>, %wq: tensor<64x64xf32>, %wk: tensor<32x64xf32>,
    %wv: tensor<64x64xf32>, %wo: tensor<64x64xf32>, %k: tensor<1x2x8x16xf32>,
    %v: tensor<1x2x8x16xf32>, %len: tensor<1xi64>) {
  // expected-error @+1 {{expected 'v_weight' dimension 0 to be num_kv_heads * head_dim = 32, got 64}}
  %o, %k2, %v2 = jamba.attention %x, %wq, %wk, %wv, %wo, cache(%k, %v, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<64x64xf32>, tensor<32x64xf32>, tensor<64x64xf32>,
         tensor<64x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>, tensor<1xi64>)
      -> (tensor<1x4x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>)
  return
}

// -----

// attention: o_proj is [hidden, num_heads * head_dim].
func.func @attention_o_rank(%x: tensor<1x4x64xf32>, %wq: tensor<64x64xf32>, %wk: tensor<32x64xf32>,
    %wv: tensor<32x64xf32>, %wo: tensor<64xf32>, %k: tensor<1x2x8x16xf32>, %v: tensor<1x2x8x16xf32>,
    %len: tensor<1xi64>) {
  // expected-error @+1 {{expected 'o_weight' to have rank 2, got 1}}
  %o, %k2, %v2 = jamba.attention %x, %wq, %wk, %wv, %wo, cache(%k, %v, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<64x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>,
         tensor<64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>, tensor<1xi64>)
      -> (tensor<1x4x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>)
  return
}

// -----

// attention: o_proj reads num_heads * head_dim features.
func.func @attention_o_cols(%x: tensor<1x4x64xf32>, %wq: tensor<64x64xf32>, %wk: tensor<32x64xf32>,
    %wv: tensor<32x64xf32>, %wo: tensor<64x32xf32>, %k: tensor<1x2x8x16xf32>,
    %v: tensor<1x2x8x16xf32>, %len: tensor<1xi64>) {
  // expected-error @+1 {{expected 'o_weight' dimension 1 to be num_heads * head_dim = 64, got 32}}
  %o, %k2, %v2 = jamba.attention %x, %wq, %wk, %wv, %wo, cache(%k, %v, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<64x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>,
         tensor<64x32xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>, tensor<1xi64>)
      -> (tensor<1x4x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>)
  return
}

// -----

// attention: the cache holds num_kv_heads heads.
func.func @attention_cache_kv_heads(%x: tensor<1x4x64xf32>, %wq: tensor<64x64xf32>,
    %wk: tensor<32x64xf32>, %wv: tensor<32x64xf32>, %wo: tensor<64x64xf32>,
    %k: tensor<1x4x8x16xf32>, %v: tensor<1x4x8x16xf32>, %len: tensor<1xi64>) {
  // expected-error @+1 {{expected 'k_cache' dimension 1 to be num_kv_heads = 2, got 4}}
  %o, %k2, %v2 = jamba.attention %x, %wq, %wk, %wv, %wo, cache(%k, %v, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<64x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>,
         tensor<64x64xf32>, tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>, tensor<1xi64>)
      -> (tensor<1x4x64xf32>, tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>)
  return
}

// -----

// attention: the updated V cache keeps the cache's type.
func.func @attention_new_v_cache(%x: tensor<1x4x64xf32>, %wq: tensor<64x64xf32>,
    %wk: tensor<32x64xf32>, %wv: tensor<32x64xf32>, %wo: tensor<64x64xf32>,
    %k: tensor<1x2x8x16xf32>, %v: tensor<1x2x8x16xf32>, %len: tensor<1xi64>) {
  // expected-error @+1 {{expected 'v_cache' and 'new_v_cache' to have the same type, got 'tensor<1x2x8x16xf32>' and 'tensor<1x2x?x16xf32>'}}
  %o, %k2, %v2 = jamba.attention %x, %wq, %wk, %wv, %wo, cache(%k, %v, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<64x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>,
         tensor<64x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>, tensor<1xi64>)
      -> (tensor<1x4x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x?x16xf32>)
  return
}

// -----

// attention: the cache is in the activation type.
func.func @attention_cache_elem(%x: tensor<1x4x64xf32>, %wq: tensor<64x64xf32>,
    %wk: tensor<32x64xf32>, %wv: tensor<32x64xf32>, %wo: tensor<64x64xf32>,
    %k: tensor<1x2x8x16xbf16>, %v: tensor<1x2x8x16xbf16>, %len: tensor<1xi64>) {
  // expected-error @+1 {{expected 'input' and 'k_cache' to have the same element type, got 'f32' and 'bf16'}}
  %o, %k2, %v2 = jamba.attention %x, %wq, %wk, %wv, %wo, cache(%k, %v, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<64x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>,
         tensor<64x64xf32>, tensor<1x2x8x16xbf16>, tensor<1x2x8x16xbf16>, tensor<1xi64>)
      -> (tensor<1x4x64xf32>, tensor<1x2x8x16xbf16>, tensor<1x2x8x16xbf16>)
  return
}

// -----

// attention: the result has the input's type.
func.func @attention_result_type(%x: tensor<1x4x64xf32>, %wq: tensor<64x64xf32>,
    %wk: tensor<32x64xf32>, %wv: tensor<32x64xf32>, %wo: tensor<64x64xf32>,
    %k: tensor<1x2x8x16xf32>, %v: tensor<1x2x8x16xf32>, %len: tensor<1xi64>) {
  // expected-error @+1 {{expected 'input' and 'result' to have the same type, got 'tensor<1x4x64xf32>' and 'tensor<1x?x64xf32>'}}
  %o, %k2, %v2 = jamba.attention %x, %wq, %wk, %wv, %wo, cache(%k, %v, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<64x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>,
         tensor<64x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>, tensor<1xi64>)
      -> (tensor<1x?x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>)
  return
}

// -----

// attention: num_kv_heads is positive (ODS constraint).
func.func @attention_zero_kv_heads(%x: tensor<1x4x64xf32>, %wq: tensor<64x64xf32>,
    %wk: tensor<32x64xf32>, %wv: tensor<32x64xf32>, %wo: tensor<64x64xf32>,
    %k: tensor<1x2x8x16xf32>, %v: tensor<1x2x8x16xf32>, %len: tensor<1xi64>) {
  // expected-error @+2 {{attribute 'num_kv_heads' failed to satisfy constraint: 64-bit signless integer attribute whose value is positive}}
  %o, %k2, %v2 = jamba.attention %x, %wq, %wk, %wv, %wo, cache(%k, %v, %len)
      {num_heads = 4 : i64, num_kv_heads = 0 : i64}
      : (tensor<1x4x64xf32>, tensor<64x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>,
         tensor<64x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>, tensor<1xi64>)
      -> (tensor<1x4x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>)
  return
}

// -----

// attention: cache_len is a vector (ODS constraint).
func.func @attention_cache_len_rank(%x: tensor<1x4x64xf32>, %wq: tensor<64x64xf32>,
    %wk: tensor<32x64xf32>, %wv: tensor<32x64xf32>, %wo: tensor<64x64xf32>,
    %k: tensor<1x2x8x16xf32>, %v: tensor<1x2x8x16xf32>, %len: tensor<1x1xi64>) {
  // expected-error @+1 {{operand #7 must be 1D tensor of 32-bit signless integer or 64-bit signless integer values}}
  %o, %k2, %v2 = jamba.attention %x, %wq, %wk, %wv, %wo, cache(%k, %v, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<64x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>,
         tensor<64x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>, tensor<1x1xi64>)
      -> (tensor<1x4x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>)
  return
}

// -----

// moe: a scalar input has no hidden dimension.
func.func @moe_rank0(%x: tensor<f32>, %r: tensor<4x64xf32>, %g: tensor<4x128x64xf32>, %d: tensor<4x64x128xf32>) {
  // expected-error @+1 {{expected 'input' to have rank >= 1, got 0}}
  %y = jamba.moe %x, %r, %g, %g, %d {top_k = 2 : i64}
      : (tensor<f32>, tensor<4x64xf32>, tensor<4x128x64xf32>, tensor<4x128x64xf32>,
         tensor<4x64x128xf32>) -> tensor<f32>
  return
}

// -----

// moe: the router is [experts, hidden].
func.func @moe_router_rank(%x: tensor<1x4x64xf32>, %r: tensor<64xf32>, %g: tensor<4x128x64xf32>, %d: tensor<4x64x128xf32>) {
  // expected-error @+1 {{expected 'router_weight' to have rank 2, got 1}}
  %y = jamba.moe %x, %r, %g, %g, %d {top_k = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<64xf32>, tensor<4x128x64xf32>, tensor<4x128x64xf32>,
         tensor<4x64x128xf32>) -> tensor<1x4x64xf32>
  return
}

// -----

// moe: top_k cannot exceed the number of experts.
func.func @moe_top_k(%x: tensor<1x4x64xf32>, %r: tensor<4x64xf32>, %g: tensor<4x128x64xf32>, %d: tensor<4x64x128xf32>) {
  // expected-error @+1 {{expected top_k (5) to be at most the number of experts (4)}}
  %y = jamba.moe %x, %r, %g, %g, %d {top_k = 5 : i64}
      : (tensor<1x4x64xf32>, tensor<4x64xf32>, tensor<4x128x64xf32>, tensor<4x128x64xf32>,
         tensor<4x64x128xf32>) -> tensor<1x4x64xf32>
  return
}

// -----

// moe: the router reads the hidden state.
func.func @moe_router_hidden(%x: tensor<1x4x64xf32>, %r: tensor<4x32xf32>, %g: tensor<4x128x64xf32>, %d: tensor<4x64x128xf32>) {
  // expected-error @+1 {{expected 'router_weight' dimension 1 to be hidden_size = 64, got 32}}
  %y = jamba.moe %x, %r, %g, %g, %d {top_k = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<4x32xf32>, tensor<4x128x64xf32>, tensor<4x128x64xf32>,
         tensor<4x64x128xf32>) -> tensor<1x4x64xf32>
  return
}

// -----

// moe: expert weights are stacked over all experts.
func.func @moe_expert_count(%x: tensor<1x4x64xf32>, %r: tensor<4x64xf32>, %g: tensor<3x128x64xf32>, %d: tensor<4x64x128xf32>) {
  // expected-error @+1 {{expected 'gate_weight' dimension 0 to be num_experts = 4, got 3}}
  %y = jamba.moe %x, %r, %g, %g, %d {top_k = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<4x64xf32>, tensor<3x128x64xf32>, tensor<3x128x64xf32>,
         tensor<4x64x128xf32>) -> tensor<1x4x64xf32>
  return
}

// -----

// moe: stacked expert weights are rank 3.
func.func @moe_gate_rank(%x: tensor<1x4x64xf32>, %r: tensor<4x64xf32>, %g: tensor<128x64xf32>, %d: tensor<4x64x128xf32>) {
  // expected-error @+1 {{expected 'gate_weight' to have rank 3, got 2}}
  %y = jamba.moe %x, %r, %g, %g, %d {top_k = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<4x64xf32>, tensor<128x64xf32>, tensor<128x64xf32>,
         tensor<4x64x128xf32>) -> tensor<1x4x64xf32>
  return
}

// -----

// moe: down_proj maps the intermediate size back to hidden.
func.func @moe_down(%x: tensor<1x4x64xf32>, %r: tensor<4x64xf32>, %g: tensor<4x128x64xf32>, %d: tensor<4x64x96xf32>) {
  // expected-error @+1 {{expected 'down_weight' dimension 2 to be intermediate_size = 128, got 96}}
  %y = jamba.moe %x, %r, %g, %g, %d {top_k = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<4x64xf32>, tensor<4x128x64xf32>, tensor<4x128x64xf32>,
         tensor<4x64x96xf32>) -> tensor<1x4x64xf32>
  return
}

// -----

// moe: up_proj is stacked like gate_proj.
func.func @moe_up_rank(%x: tensor<1x4x64xf32>, %r: tensor<4x64xf32>, %g: tensor<4x128x64xf32>,
                       %u: tensor<128x64xf32>, %d: tensor<4x64x128xf32>) {
  // expected-error @+1 {{expected 'up_weight' to have rank 3, got 2}}
  %y = jamba.moe %x, %r, %g, %u, %d {top_k = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<4x64xf32>, tensor<4x128x64xf32>, tensor<128x64xf32>,
         tensor<4x64x128xf32>) -> tensor<1x4x64xf32>
  return
}

// -----

// moe: up_proj has gate_proj's shape.
func.func @moe_up(%x: tensor<1x4x64xf32>, %r: tensor<4x64xf32>, %g: tensor<4x128x64xf32>,
                  %u: tensor<4x96x64xf32>, %d: tensor<4x64x128xf32>) {
  // expected-error @+1 {{expected 'up_weight' dimension 1 to be intermediate_size = 128, got 96}}
  %y = jamba.moe %x, %r, %g, %u, %d {top_k = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<4x64xf32>, tensor<4x128x64xf32>, tensor<4x96x64xf32>,
         tensor<4x64x128xf32>) -> tensor<1x4x64xf32>
  return
}

// -----

// moe: down_proj is stacked over the experts.
func.func @moe_down_rank(%x: tensor<1x4x64xf32>, %r: tensor<4x64xf32>, %g: tensor<4x128x64xf32>, %d: tensor<64x128xf32>) {
  // expected-error @+1 {{expected 'down_weight' to have rank 3, got 2}}
  %y = jamba.moe %x, %r, %g, %g, %d {top_k = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<4x64xf32>, tensor<4x128x64xf32>, tensor<4x128x64xf32>,
         tensor<64x128xf32>) -> tensor<1x4x64xf32>
  return
}

// -----

// moe: the result has the input's type.
func.func @moe_result_type(%x: tensor<1x4x64xf32>, %r: tensor<4x64xf32>, %g: tensor<4x128x64xf32>, %d: tensor<4x64x128xf32>) {
  // expected-error @+1 {{failed to verify that all of {input, result} have same type}}
  %y = jamba.moe %x, %r, %g, %g, %d {top_k = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<4x64xf32>, tensor<4x128x64xf32>, tensor<4x128x64xf32>,
         tensor<4x64x128xf32>) -> tensor<1x?x64xf32>
  return
}

// -----

// moe: top_k is positive (ODS constraint).
func.func @moe_zero_top_k(%x: tensor<1x4x64xf32>, %r: tensor<4x64xf32>, %g: tensor<4x128x64xf32>, %d: tensor<4x64x128xf32>) {
  // expected-error @+1 {{attribute 'top_k' failed to satisfy constraint: 64-bit signless integer attribute whose value is positive}}
  %y = jamba.moe %x, %r, %g, %g, %d {top_k = 0 : i64}
      : (tensor<1x4x64xf32>, tensor<4x64xf32>, tensor<4x128x64xf32>, tensor<4x128x64xf32>,
         tensor<4x64x128xf32>) -> tensor<1x4x64xf32>
  return
}

// -----

// moe: the expert offset is an i64 vector (ODS constraint).
func.func @moe_offset_type(%x: tensor<1x4x64xf32>, %r: tensor<4x64xf32>, %g: tensor<2x128x64xf32>,
                           %d: tensor<2x64x128xf32>, %off: tensor<1xi32>) {
  // expected-error @+1 {{operand #5 must be 1D tensor of 64-bit signless integer values}}
  %y = jamba.moe %x, %r, %g, %g, %d expert_offset(%off) {top_k = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<4x64xf32>, tensor<2x128x64xf32>,
         tensor<2x128x64xf32>, tensor<2x64x128xf32>, tensor<1xi32>) -> tensor<1x4x64xf32>
  return
}

// -----

// mlp: a scalar input has no hidden dimension.
func.func @mlp_rank0(%x: tensor<f32>, %g: tensor<128x64xf32>, %d: tensor<64x128xf32>) {
  // expected-error @+1 {{expected 'input' to have rank >= 1, got 0}}
  %y = jamba.mlp %x, %g, %g, %d
      : (tensor<f32>, tensor<128x64xf32>, tensor<128x64xf32>, tensor<64x128xf32>) -> tensor<f32>
  return
}

// -----

// mlp: up_proj has gate_proj's shape.
func.func @mlp_up(%x: tensor<1x4x64xf32>, %g: tensor<128x64xf32>, %u: tensor<96x64xf32>, %d: tensor<64x128xf32>) {
  // expected-error @+1 {{expected 'up_weight' dimension 0 to be intermediate_size = 128, got 96}}
  %y = jamba.mlp %x, %g, %u, %d
      : (tensor<1x4x64xf32>, tensor<128x64xf32>, tensor<96x64xf32>, tensor<64x128xf32>) -> tensor<1x4x64xf32>
  return
}

// -----

// mlp: gate_proj is [intermediate, hidden].
func.func @mlp_gate_rank(%x: tensor<1x4x64xf32>, %g: tensor<128xf32>, %u: tensor<128x64xf32>, %d: tensor<64x128xf32>) {
  // expected-error @+1 {{expected 'gate_weight' to have rank 2, got 1}}
  %y = jamba.mlp %x, %g, %u, %d
      : (tensor<1x4x64xf32>, tensor<128xf32>, tensor<128x64xf32>, tensor<64x128xf32>) -> tensor<1x4x64xf32>
  return
}

// -----

// mlp: gate_proj reads the hidden state.
func.func @mlp_gate_hidden(%x: tensor<1x4x64xf32>, %g: tensor<128x32xf32>, %d: tensor<64x128xf32>) {
  // expected-error @+1 {{expected 'gate_weight' dimension 1 to be hidden_size = 64, got 32}}
  %y = jamba.mlp %x, %g, %g, %d
      : (tensor<1x4x64xf32>, tensor<128x32xf32>, tensor<128x32xf32>, tensor<64x128xf32>) -> tensor<1x4x64xf32>
  return
}

// -----

// mlp: up_proj is [intermediate, hidden].
func.func @mlp_up_rank(%x: tensor<1x4x64xf32>, %g: tensor<128x64xf32>, %u: tensor<128xf32>, %d: tensor<64x128xf32>) {
  // expected-error @+1 {{expected 'up_weight' to have rank 2, got 1}}
  %y = jamba.mlp %x, %g, %u, %d
      : (tensor<1x4x64xf32>, tensor<128x64xf32>, tensor<128xf32>, tensor<64x128xf32>) -> tensor<1x4x64xf32>
  return
}

// -----

// mlp: down_proj is [hidden, intermediate].
func.func @mlp_down_rank(%x: tensor<1x4x64xf32>, %g: tensor<128x64xf32>, %d: tensor<64xf32>) {
  // expected-error @+1 {{expected 'down_weight' to have rank 2, got 1}}
  %y = jamba.mlp %x, %g, %g, %d
      : (tensor<1x4x64xf32>, tensor<128x64xf32>, tensor<128x64xf32>, tensor<64xf32>) -> tensor<1x4x64xf32>
  return
}

// -----

// mlp: down_proj reads the intermediate size.
func.func @mlp_down(%x: tensor<1x4x64xf32>, %g: tensor<128x64xf32>, %d: tensor<64x96xf32>) {
  // expected-error @+1 {{expected 'down_weight' dimension 1 to be intermediate_size = 128, got 96}}
  %y = jamba.mlp %x, %g, %g, %d
      : (tensor<1x4x64xf32>, tensor<128x64xf32>, tensor<128x64xf32>, tensor<64x96xf32>) -> tensor<1x4x64xf32>
  return
}

// -----

// mlp: the result has the input's type.
func.func @mlp_result_type(%x: tensor<1x4x64xf32>, %g: tensor<128x64xf32>, %d: tensor<64x128xf32>) {
  // expected-error @+1 {{failed to verify that all of {input, result} have same type}}
  %y = jamba.mlp %x, %g, %g, %d
      : (tensor<1x4x64xf32>, tensor<128x64xf32>, tensor<128x64xf32>, tensor<64x128xf32>) -> tensor<1x4x64xbf16>
  return
}

// -----

// lm_head: the input is [batch, seq, hidden].
func.func @lm_head_rank(%h: tensor<4x64xf32>, %w: tensor<128x64xf32>) {
  // expected-error @+1 {{expected 'input' to have rank 3, got 2}}
  %l = jamba.lm_head %h, %w : tensor<4x64xf32>, tensor<128x64xf32> -> tensor<1x4x128xf32>
  return
}

// -----

// lm_head: the weight reads the hidden state.
func.func @lm_head_hidden(%h: tensor<1x4x64xf32>, %w: tensor<128x32xf32>) {
  // expected-error @+1 {{expected 'weight' dimension 1 to be hidden_size = 64, got 32}}
  %l = jamba.lm_head %h, %w : tensor<1x4x64xf32>, tensor<128x32xf32> -> tensor<1x4x128xf32>
  return
}

// -----

// lm_head: num_logits_to_keep cannot keep more positions than there are.
func.func @lm_head_keep_too_many(%h: tensor<1x1x64xf32>, %w: tensor<128x64xf32>) {
  // expected-error @+1 {{num_logits_to_keep 4 exceeds the input's 1 positions}}
  %l = jamba.lm_head %h, %w {num_logits_to_keep = 4 : i64} : tensor<1x1x64xf32>, tensor<128x64xf32> -> tensor<1x4x128xf32>
  return
}

// -----

// lm_head: with num_logits_to_keep, only that many positions come out.
func.func @lm_head_keep(%h: tensor<1x4x64xf32>, %w: tensor<128x64xf32>) {
  // expected-error @+1 {{expected 'result' dimension 1 to be num_logits_to_keep = 1, got 4}}
  %l = jamba.lm_head %h, %w {num_logits_to_keep = 1 : i64} : tensor<1x4x64xf32>, tensor<128x64xf32> -> tensor<1x4x128xf32>
  return
}

// -----

// lm_head: one logit per vocabulary row.
func.func @lm_head_vocab(%h: tensor<1x4x64xf32>, %w: tensor<128x64xf32>) {
  // expected-error @+1 {{expected 'result' dimension 2 to be vocab_size = 128, got 100}}
  %l = jamba.lm_head %h, %w : tensor<1x4x64xf32>, tensor<128x64xf32> -> tensor<1x4x100xf32>
  return
}

// -----

// lm_head: logits come out in the activation type.
func.func @lm_head_type(%h: tensor<1x4x64xf32>, %w: tensor<128x64xf32>) {
  // expected-error @+1 {{expected 'input' and 'result' to have the same element type, got 'f32' and 'f16'}}
  %l = jamba.lm_head %h, %w : tensor<1x4x64xf32>, tensor<128x64xf32> -> tensor<1x4x128xf16>
  return
}

// -----

// lm_head: the weight is [vocab, hidden].
func.func @lm_head_weight_rank(%h: tensor<1x4x64xf32>, %w: tensor<64xf32>) {
  // expected-error @+1 {{expected 'weight' to have rank 2, got 1}}
  %l = jamba.lm_head %h, %w : tensor<1x4x64xf32>, tensor<64xf32> -> tensor<1x4x128xf32>
  return
}

// -----

// lm_head: the logits are [batch, positions, vocab].
func.func @lm_head_result_rank(%h: tensor<1x4x64xf32>, %w: tensor<128x64xf32>) {
  // expected-error @+1 {{expected 'result' to have rank 3, got 2}}
  %l = jamba.lm_head %h, %w : tensor<1x4x64xf32>, tensor<128x64xf32> -> tensor<4x128xf32>
  return
}

// -----

// lm_head: num_logits_to_keep is not negative (ODS constraint).
func.func @lm_head_keep_negative(%h: tensor<1x4x64xf32>, %w: tensor<128x64xf32>) {
  // expected-error @+1 {{attribute 'num_logits_to_keep' failed to satisfy constraint: 64-bit signless integer attribute whose value is non-negative}}
  %l = jamba.lm_head %h, %w {num_logits_to_keep = -1 : i64} : tensor<1x4x64xf32>, tensor<128x64xf32> -> tensor<1x4x128xf32>
  return
}

// -----

// causal_conv1d: the input is [batch, seq, channels].
func.func @conv_rank(%x: tensor<4x128xf32>, %w: tensor<128x4xf32>, %s: tensor<1x128x3xf32>) {
  // expected-error @+1 {{expected 'input' to have rank 3, got 2}}
  %y, %s2 = jamba.causal_conv1d %x, %w state(%s)
      : (tensor<4x128xf32>, tensor<128x4xf32>, tensor<1x128x3xf32>) -> (tensor<4x128xf32>, tensor<1x128x3xf32>)
  return
}

// -----

// causal_conv1d: a zero-width kernel is meaningless.
func.func @conv_width(%x: tensor<1x4x128xf32>, %w: tensor<128x0xf32>, %s: tensor<1x128x0xf32>) {
  // expected-error @+1 {{expected a kernel width >= 1, got 0}}
  %y, %s2 = jamba.causal_conv1d %x, %w state(%s)
      : (tensor<1x4x128xf32>, tensor<128x0xf32>, tensor<1x128x0xf32>) -> (tensor<1x4x128xf32>, tensor<1x128x0xf32>)
  return
}

// -----

// causal_conv1d: depthwise, one filter per channel.
func.func @conv_channels(%x: tensor<1x4x128xf32>, %w: tensor<64x4xf32>, %s: tensor<1x128x3xf32>) {
  // expected-error @+1 {{expected 'weight' dimension 0 to be channels = 128, got 64}}
  %y, %s2 = jamba.causal_conv1d %x, %w state(%s)
      : (tensor<1x4x128xf32>, tensor<64x4xf32>, tensor<1x128x3xf32>) -> (tensor<1x4x128xf32>, tensor<1x128x3xf32>)
  return
}

// -----

// causal_conv1d: one bias per channel.
func.func @conv_bias(%x: tensor<1x4x128xf32>, %w: tensor<128x4xf32>, %b: tensor<64xf32>, %s: tensor<1x128x3xf32>) {
  // expected-error @+1 {{expected 'bias' dimension 0 to be channels = 128, got 64}}
  %y, %s2 = jamba.causal_conv1d %x, %w bias(%b) state(%s)
      : (tensor<1x4x128xf32>, tensor<128x4xf32>, tensor<64xf32>, tensor<1x128x3xf32>) -> (tensor<1x4x128xf32>, tensor<1x128x3xf32>)
  return
}

// -----

// causal_conv1d: the state holds width - 1 past inputs.
func.func @conv_state(%x: tensor<1x4x128xf32>, %w: tensor<128x4xf32>, %s: tensor<1x128x4xf32>) {
  // expected-error @+1 {{expected 'state' dimension 2 to be kernel width - 1 = 3, got 4}}
  %y, %s2 = jamba.causal_conv1d %x, %w state(%s)
      : (tensor<1x4x128xf32>, tensor<128x4xf32>, tensor<1x128x4xf32>) -> (tensor<1x4x128xf32>, tensor<1x128x4xf32>)
  return
}

// -----

// causal_conv1d: the state is in the activation type.
func.func @conv_state_type(%x: tensor<1x4x128xf32>, %w: tensor<128x4xf32>, %s: tensor<1x128x3xbf16>) {
  // expected-error @+1 {{expected 'input' and 'state' to have the same element type, got 'f32' and 'bf16'}}
  %y, %s2 = jamba.causal_conv1d %x, %w state(%s)
      : (tensor<1x4x128xf32>, tensor<128x4xf32>, tensor<1x128x3xbf16>) -> (tensor<1x4x128xf32>, tensor<1x128x3xbf16>)
  return
}

// -----

// causal_conv1d: the weight is [channels, width].
func.func @conv_weight_rank(%x: tensor<1x4x128xf32>, %w: tensor<128x1x4xf32>, %s: tensor<1x128x3xf32>) {
  // expected-error @+1 {{expected 'weight' to have rank 2, got 3}}
  %y, %s2 = jamba.causal_conv1d %x, %w state(%s)
      : (tensor<1x4x128xf32>, tensor<128x1x4xf32>, tensor<1x128x3xf32>) -> (tensor<1x4x128xf32>, tensor<1x128x3xf32>)
  return
}

// -----

// causal_conv1d: the bias is a vector.
func.func @conv_bias_rank(%x: tensor<1x4x128xf32>, %w: tensor<128x4xf32>, %b: tensor<128x1xf32>, %s: tensor<1x128x3xf32>) {
  // expected-error @+1 {{expected 'bias' to have rank 1, got 2}}
  %y, %s2 = jamba.causal_conv1d %x, %w bias(%b) state(%s)
      : (tensor<1x4x128xf32>, tensor<128x4xf32>, tensor<128x1xf32>, tensor<1x128x3xf32>) -> (tensor<1x4x128xf32>, tensor<1x128x3xf32>)
  return
}

// -----

// causal_conv1d: the state is [batch, channels, width - 1].
func.func @conv_state_rank(%x: tensor<1x4x128xf32>, %w: tensor<128x4xf32>, %s: tensor<128x3xf32>) {
  // expected-error @+1 {{expected 'state' to have rank 3, got 2}}
  %y, %s2 = jamba.causal_conv1d %x, %w state(%s)
      : (tensor<1x4x128xf32>, tensor<128x4xf32>, tensor<128x3xf32>) -> (tensor<1x4x128xf32>, tensor<128x3xf32>)
  return
}

// -----

// causal_conv1d: the result has the input's type.
func.func @conv_result_type(%x: tensor<1x4x128xf32>, %w: tensor<128x4xf32>, %s: tensor<1x128x3xf32>) {
  // expected-error @+1 {{failed to verify that all of {input, result} have same type}}
  %y, %s2 = jamba.causal_conv1d %x, %w state(%s)
      : (tensor<1x4x128xf32>, tensor<128x4xf32>, tensor<1x128x3xf32>) -> (tensor<1x?x128xf32>, tensor<1x128x3xf32>)
  return
}

// -----

// causal_conv1d: the new state has the state's type.
func.func @conv_new_state_type(%x: tensor<1x4x128xf32>, %w: tensor<128x4xf32>, %s: tensor<1x128x3xf32>) {
  // expected-error @+1 {{failed to verify that all of {state, new_state} have same type}}
  %y, %s2 = jamba.causal_conv1d %x, %w state(%s)
      : (tensor<1x4x128xf32>, tensor<128x4xf32>, tensor<1x128x3xf32>) -> (tensor<1x4x128xf32>, tensor<1x128x?xf32>)
  return
}

// -----

// selective_scan: u is [batch, seq, d_inner].
func.func @scan_rank(%u: tensor<4x128xf32>, %A: tensor<128x8xf32>, %B: tensor<1x4x8xf32>) {
  // expected-error @+1 {{expected 'u' to have rank 3, got 2}}
  %y, %h = jamba.selective_scan %u, %u, %A, %B, %B
      : (tensor<4x128xf32>, tensor<4x128xf32>, tensor<128x8xf32>, tensor<1x4x8xf32>, tensor<1x4x8xf32>)
      -> (tensor<4x128xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// selective_scan: A's d_inner agrees with u's.
func.func @scan_a(%u: tensor<1x4x128xf32>, %A: tensor<64x8xf32>, %B: tensor<1x4x8xf32>) {
  // expected-error @+1 {{expected 'A' dimension 0 to be d_inner = 128, got 64}}
  %y, %h = jamba.selective_scan %u, %u, %A, %B, %B
      : (tensor<1x4x128xf32>, tensor<1x4x128xf32>, tensor<64x8xf32>, tensor<1x4x8xf32>, tensor<1x4x8xf32>)
      -> (tensor<1x4x128xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// selective_scan: delta has u's shape.
func.func @scan_delta(%u: tensor<1x4x128xf32>, %dt: tensor<1x5x128xf32>, %A: tensor<128x8xf32>, %B: tensor<1x4x8xf32>) {
  // expected-error @+1 {{expected 'delta' dimension 1 to be seq = 4, got 5}}
  %y, %h = jamba.selective_scan %u, %dt, %A, %B, %B
      : (tensor<1x4x128xf32>, tensor<1x5x128xf32>, tensor<128x8xf32>, tensor<1x4x8xf32>, tensor<1x4x8xf32>)
      -> (tensor<1x4x128xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// selective_scan: d_state agrees across A, B and C.
func.func @scan_c(%u: tensor<1x4x128xf32>, %A: tensor<128x8xf32>, %B: tensor<1x4x8xf32>, %C: tensor<1x4x16xf32>) {
  // expected-error @+1 {{expected 'C' dimension 2 to be d_state = 8, got 16}}
  %y, %h = jamba.selective_scan %u, %u, %A, %B, %C
      : (tensor<1x4x128xf32>, tensor<1x4x128xf32>, tensor<128x8xf32>, tensor<1x4x8xf32>, tensor<1x4x16xf32>)
      -> (tensor<1x4x128xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// selective_scan: one skip weight per channel.
func.func @scan_d(%u: tensor<1x4x128xf32>, %A: tensor<128x8xf32>, %B: tensor<1x4x8xf32>, %D: tensor<64xf32>) {
  // expected-error @+1 {{expected 'D' dimension 0 to be d_inner = 128, got 64}}
  %y, %h = jamba.selective_scan %u, %u, %A, %B, %B D(%D)
      : (tensor<1x4x128xf32>, tensor<1x4x128xf32>, tensor<128x8xf32>, tensor<1x4x8xf32>, tensor<1x4x8xf32>, tensor<64xf32>)
      -> (tensor<1x4x128xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// selective_scan: the gate z has u's shape.
func.func @scan_z(%u: tensor<1x4x128xf32>, %A: tensor<128x8xf32>, %B: tensor<1x4x8xf32>, %z: tensor<1x4x64xf32>) {
  // expected-error @+1 {{expected 'z' dimension 2 to be d_inner = 128, got 64}}
  %y, %h = jamba.selective_scan %u, %u, %A, %B, %B z(%z)
      : (tensor<1x4x128xf32>, tensor<1x4x128xf32>, tensor<128x8xf32>, tensor<1x4x8xf32>, tensor<1x4x8xf32>, tensor<1x4x64xf32>)
      -> (tensor<1x4x128xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// selective_scan: one delta bias per channel.
func.func @scan_delta_bias(%u: tensor<1x4x128xf32>, %A: tensor<128x8xf32>, %B: tensor<1x4x8xf32>, %db: tensor<8xf32>) {
  // expected-error @+1 {{expected 'delta_bias' dimension 0 to be d_inner = 128, got 8}}
  %y, %h = jamba.selective_scan %u, %u, %A, %B, %B delta_bias(%db)
      : (tensor<1x4x128xf32>, tensor<1x4x128xf32>, tensor<128x8xf32>, tensor<1x4x8xf32>, tensor<1x4x8xf32>, tensor<8xf32>)
      -> (tensor<1x4x128xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// selective_scan: the initial state is [batch, d_inner, d_state].
func.func @scan_init(%u: tensor<1x4x128xf32>, %A: tensor<128x8xf32>, %B: tensor<1x4x8xf32>, %h0: tensor<1x8x128xf32>) {
  // expected-error @+1 {{expected 'init_state' dimension 1 to be d_inner = 128, got 8}}
  %y, %h = jamba.selective_scan %u, %u, %A, %B, %B init_state(%h0)
      : (tensor<1x4x128xf32>, tensor<1x4x128xf32>, tensor<128x8xf32>, tensor<1x4x8xf32>, tensor<1x4x8xf32>, tensor<1x8x128xf32>)
      -> (tensor<1x4x128xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// selective_scan: so is the final state.
func.func @scan_final(%u: tensor<1x4x128xf32>, %A: tensor<128x8xf32>, %B: tensor<1x4x8xf32>) {
  // expected-error @+1 {{expected 'final_state' dimension 2 to be d_state = 8, got 4}}
  %y, %h = jamba.selective_scan %u, %u, %A, %B, %B
      : (tensor<1x4x128xf32>, tensor<1x4x128xf32>, tensor<128x8xf32>, tensor<1x4x8xf32>, tensor<1x4x8xf32>)
      -> (tensor<1x4x128xf32>, tensor<1x128x4xf32>)
  return
}

// -----

// selective_scan: A is [d_inner, d_state].
func.func @scan_a_rank(%u: tensor<1x4x128xf32>, %A: tensor<128x8x1xf32>, %B: tensor<1x4x8xf32>) {
  // expected-error @+1 {{expected 'A' to have rank 2, got 3}}
  %y, %h = jamba.selective_scan %u, %u, %A, %B, %B
      : (tensor<1x4x128xf32>, tensor<1x4x128xf32>, tensor<128x8x1xf32>, tensor<1x4x8xf32>, tensor<1x4x8xf32>)
      -> (tensor<1x4x128xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// selective_scan: delta is [batch, seq, d_inner].
func.func @scan_delta_rank(%u: tensor<1x4x128xf32>, %dt: tensor<4x128xf32>, %A: tensor<128x8xf32>, %B: tensor<1x4x8xf32>) {
  // expected-error @+1 {{expected 'delta' to have rank 3, got 2}}
  %y, %h = jamba.selective_scan %u, %dt, %A, %B, %B
      : (tensor<1x4x128xf32>, tensor<4x128xf32>, tensor<128x8xf32>, tensor<1x4x8xf32>, tensor<1x4x8xf32>)
      -> (tensor<1x4x128xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// selective_scan: B is [batch, seq, d_state].
func.func @scan_b_rank(%u: tensor<1x4x128xf32>, %A: tensor<128x8xf32>, %B: tensor<4x8xf32>, %C: tensor<1x4x8xf32>) {
  // expected-error @+1 {{expected 'B' to have rank 3, got 2}}
  %y, %h = jamba.selective_scan %u, %u, %A, %B, %C
      : (tensor<1x4x128xf32>, tensor<1x4x128xf32>, tensor<128x8xf32>, tensor<4x8xf32>, tensor<1x4x8xf32>)
      -> (tensor<1x4x128xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// selective_scan: B has A's d_state.
func.func @scan_b(%u: tensor<1x4x128xf32>, %A: tensor<128x8xf32>, %B: tensor<1x4x16xf32>, %C: tensor<1x4x8xf32>) {
  // expected-error @+1 {{expected 'B' dimension 2 to be d_state = 8, got 16}}
  %y, %h = jamba.selective_scan %u, %u, %A, %B, %C
      : (tensor<1x4x128xf32>, tensor<1x4x128xf32>, tensor<128x8xf32>, tensor<1x4x16xf32>, tensor<1x4x8xf32>)
      -> (tensor<1x4x128xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// selective_scan: C is [batch, seq, d_state].
func.func @scan_c_rank(%u: tensor<1x4x128xf32>, %A: tensor<128x8xf32>, %B: tensor<1x4x8xf32>, %C: tensor<4x8xf32>) {
  // expected-error @+1 {{expected 'C' to have rank 3, got 2}}
  %y, %h = jamba.selective_scan %u, %u, %A, %B, %C
      : (tensor<1x4x128xf32>, tensor<1x4x128xf32>, tensor<128x8xf32>, tensor<1x4x8xf32>, tensor<4x8xf32>)
      -> (tensor<1x4x128xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// selective_scan: the skip D is a vector.
func.func @scan_d_rank(%u: tensor<1x4x128xf32>, %A: tensor<128x8xf32>, %B: tensor<1x4x8xf32>, %D: tensor<128x1xf32>) {
  // expected-error @+1 {{expected 'D' to have rank 1, got 2}}
  %y, %h = jamba.selective_scan %u, %u, %A, %B, %B D(%D)
      : (tensor<1x4x128xf32>, tensor<1x4x128xf32>, tensor<128x8xf32>, tensor<1x4x8xf32>, tensor<1x4x8xf32>, tensor<128x1xf32>)
      -> (tensor<1x4x128xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// selective_scan: the gate z is [batch, seq, d_inner].
func.func @scan_z_rank(%u: tensor<1x4x128xf32>, %A: tensor<128x8xf32>, %B: tensor<1x4x8xf32>, %z: tensor<4x128xf32>) {
  // expected-error @+1 {{expected 'z' to have rank 3, got 2}}
  %y, %h = jamba.selective_scan %u, %u, %A, %B, %B z(%z)
      : (tensor<1x4x128xf32>, tensor<1x4x128xf32>, tensor<128x8xf32>, tensor<1x4x8xf32>, tensor<1x4x8xf32>, tensor<4x128xf32>)
      -> (tensor<1x4x128xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// selective_scan: the delta bias is a vector.
func.func @scan_delta_bias_rank(%u: tensor<1x4x128xf32>, %A: tensor<128x8xf32>, %B: tensor<1x4x8xf32>, %db: tensor<128x1xf32>) {
  // expected-error @+1 {{expected 'delta_bias' to have rank 1, got 2}}
  %y, %h = jamba.selective_scan %u, %u, %A, %B, %B delta_bias(%db)
      : (tensor<1x4x128xf32>, tensor<1x4x128xf32>, tensor<128x8xf32>, tensor<1x4x8xf32>, tensor<1x4x8xf32>, tensor<128x1xf32>)
      -> (tensor<1x4x128xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// selective_scan: the initial state is [batch, d_inner, d_state].
func.func @scan_init_rank(%u: tensor<1x4x128xf32>, %A: tensor<128x8xf32>, %B: tensor<1x4x8xf32>, %h0: tensor<128x8xf32>) {
  // expected-error @+1 {{expected 'init_state' to have rank 3, got 2}}
  %y, %h = jamba.selective_scan %u, %u, %A, %B, %B init_state(%h0)
      : (tensor<1x4x128xf32>, tensor<1x4x128xf32>, tensor<128x8xf32>, tensor<1x4x8xf32>, tensor<1x4x8xf32>, tensor<128x8xf32>)
      -> (tensor<1x4x128xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// selective_scan: the final state is [batch, d_inner, d_state].
func.func @scan_final_rank(%u: tensor<1x4x128xf32>, %A: tensor<128x8xf32>, %B: tensor<1x4x8xf32>) {
  // expected-error @+1 {{expected 'final_state' to have rank 3, got 2}}
  %y, %h = jamba.selective_scan %u, %u, %A, %B, %B
      : (tensor<1x4x128xf32>, tensor<1x4x128xf32>, tensor<128x8xf32>, tensor<1x4x8xf32>, tensor<1x4x8xf32>)
      -> (tensor<1x4x128xf32>, tensor<128x8xf32>)
  return
}

// -----

// selective_scan: y has u's type.
func.func @scan_result_type(%u: tensor<1x4x128xf32>, %A: tensor<128x8xf32>, %B: tensor<1x4x8xf32>) {
  // expected-error @+1 {{failed to verify that all of {u, result} have same type}}
  %y, %h = jamba.selective_scan %u, %u, %A, %B, %B
      : (tensor<1x4x128xf32>, tensor<1x4x128xf32>, tensor<128x8xf32>, tensor<1x4x8xf32>, tensor<1x4x8xf32>)
      -> (tensor<1x4x128xbf16>, tensor<1x128x8xf32>)
  return
}

// -----

// selective_scan: A is always f32 (ODS constraint).
func.func @scan_a_bf16(%u: tensor<1x4x128xf32>, %A: tensor<128x8xbf16>, %B: tensor<1x4x8xf32>) {
  // expected-error @+1 {{operand #2 must be ranked tensor of 32-bit float values}}
  %y, %h = jamba.selective_scan %u, %u, %A, %B, %B
      : (tensor<1x4x128xf32>, tensor<1x4x128xf32>, tensor<128x8xbf16>, tensor<1x4x8xf32>, tensor<1x4x8xf32>)
      -> (tensor<1x4x128xf32>, tensor<1x128x8xf32>)
  return
}

// -----

// argmax: scalars have no row.
func.func @argmax_rank0(%l: tensor<f32>) {
  // expected-error @+1 {{expected 'logits' to have rank >= 1, got 0}}
  %i = jamba.argmax %l : tensor<f32> -> tensor<i32>
  return
}

// -----

// argmax: the vocabulary is static (the ids are i32).
func.func @argmax_dynamic_vocab(%l: tensor<2x?xf32>) {
  // expected-error @+1 {{expected the logits' last dimension (the vocabulary) to be static}}
  %i = jamba.argmax %l : tensor<2x?xf32> -> tensor<2xi32>
  return
}

// -----

// argmax: an empty row has no largest value.
func.func @argmax_empty_rows(%l: tensor<2x0xf32>) {
  // expected-error @+1 {{expected the logits' last dimension in [1, 2147483647], got 0}}
  %i = jamba.argmax %l : tensor<2x0xf32> -> tensor<2xi32>
  return
}

// -----

// argmax: an i32 id cannot index a longer row.
func.func @argmax_long_rows(%l: tensor<1x2147483648xbf16>) {
  // expected-error @+1 {{expected the logits' last dimension in [1, 2147483647], got 2147483648}}
  %i = jamba.argmax %l : tensor<1x2147483648xbf16> -> tensor<1xi32>
  return
}

// -----

// argmax: one id per row, the rows' dims in order.
func.func @argmax_ids_rank(%l: tensor<?x1x8xf32>) {
  // expected-error-re @+1 {{expected 'ids' to have rank 2, got 3{{.*}}}}
  %i = jamba.argmax %l : tensor<?x1x8xf32> -> tensor<?x1x8xi32>
  return
}

// -----

func.func @argmax_ids_shape(%l: tensor<3x1x8xf32>) {
  // expected-error-re @+1 {{expected 'ids' dimension 0 to be the logits' size = 3, got 4{{.*}}}}
  %i = jamba.argmax %l : tensor<3x1x8xf32> -> tensor<4x1xi32>
  return
}

// -----

func.func @argmax_ids_static_rows(%l: tensor<?x8xf32>) {
  // expected-error @+1 {{expected 'ids' dimension 0 to be dynamic, as the logits' is; got 4}}
  %i = jamba.argmax %l : tensor<?x8xf32> -> tensor<4xi32>
  return
}

// -----

// argmax: ids are i32 (ODS).
func.func @argmax_ids_type(%l: tensor<3x8xf32>) {
  // expected-error @+1 {{result #0 must be ranked tensor of 32-bit signless integer values}}
  %i = jamba.argmax %l : tensor<3x8xf32> -> tensor<3xi64>
  return
}

// -----

// router_topk: scalars have no experts.
func.func @router_rank0(%l: tensor<f32>) {
  // expected-error @+1 {{expected 'logits' to have rank >= 1, got 0}}
  %w, %i = jamba.router_topk %l {top_k = 1 : i64} : tensor<f32> -> tensor<1xf32>, tensor<1xi32>
  return
}

// -----

// router_topk: top_k cannot exceed the number of experts.
func.func @router_top_k(%l: tensor<?x4xf32>) {
  // expected-error @+1 {{expected top_k (8) to be at most the number of experts (4)}}
  %w, %i = jamba.router_topk %l {top_k = 8 : i64} : tensor<?x4xf32> -> tensor<?x8xf32>, tensor<?x8xi32>
  return
}

// -----

// router_topk: the weights are [..., top_k].
func.func @router_weights(%l: tensor<?x4xf32>) {
  // expected-error @+1 {{expected 'weights' dimension 1 to be top_k = 2, got 4}}
  %w, %i = jamba.router_topk %l {top_k = 2 : i64} : tensor<?x4xf32> -> tensor<?x4xf32>, tensor<?x2xi32>
  return
}

// -----

// router_topk: the indices have the weights' shape.
func.func @router_indices(%l: tensor<3x4xf32>) {
  // expected-error @+1 {{expected 'indices' dimension 0 to be the logits' size = 3, got 5}}
  %w, %i = jamba.router_topk %l {top_k = 2 : i64} : tensor<3x4xf32> -> tensor<3x2xf32>, tensor<5x2xi32>
  return
}

// -----

// router_topk: the weights are [..., top_k].
func.func @router_weights_rank(%l: tensor<?x4xf32>) {
  // expected-error @+1 {{expected 'weights' to have rank 2, got 1}}
  %w, %i = jamba.router_topk %l {top_k = 2 : i64} : tensor<?x4xf32> -> tensor<2xf32>, tensor<?x2xi32>
  return
}

// -----

// router_topk: the indices are [..., top_k].
func.func @router_indices_rank(%l: tensor<?x4xf32>) {
  // expected-error @+1 {{expected 'indices' to have rank 2, got 1}}
  %w, %i = jamba.router_topk %l {top_k = 2 : i64} : tensor<?x4xf32> -> tensor<?x2xf32>, tensor<2xi32>
  return
}

// -----

// router_topk: top_k is positive (ODS constraint).
func.func @router_zero_top_k(%l: tensor<?x4xf32>) {
  // expected-error @+1 {{attribute 'top_k' failed to satisfy constraint: 64-bit signless integer attribute whose value is positive}}
  %w, %i = jamba.router_topk %l {top_k = 0 : i64} : tensor<?x4xf32> -> tensor<?x0xf32>, tensor<?x0xi32>
  return
}

// -----

// router_topk: the weights are f32 probabilities (ODS constraint).
func.func @router_weights_bf16(%l: tensor<?x4xf32>) {
  // expected-error @+1 {{result #0 must be ranked tensor of 32-bit float values}}
  %w, %i = jamba.router_topk %l {top_k = 2 : i64} : tensor<?x4xf32> -> tensor<?x2xbf16>, tensor<?x2xi32>
  return
}

// -----

// expert_gemm: weights are stacked [experts, N, K].
func.func @expert_gemm_weight_rank(%x: tensor<?x64xf32>, %w: tensor<128x64xf32>, %idx: tensor<?x2xi32>) {
  // expected-error @+1 {{expected 'weight' to have rank 3, got 2}}
  %y = jamba.expert_gemm %x, %w indices(%idx)
      : (tensor<?x64xf32>, tensor<128x64xf32>, tensor<?x2xi32>) -> tensor<?x2x128xf32>
  return
}

// -----

// expert_gemm: one row per token, or one per token and slot.
func.func @expert_gemm_input_rank(%x: tensor<64xf32>, %w: tensor<4x128x64xf32>, %idx: tensor<?x2xi32>) {
  // expected-error @+1 {{expected 'input' to have rank 2 or 3 (the rank of 'indices', or one more), got 1}}
  %y = jamba.expert_gemm %x, %w indices(%idx)
      : (tensor<64xf32>, tensor<4x128x64xf32>, tensor<?x2xi32>) -> tensor<?x2x128xf32>
  return
}

// -----

// expert_gemm: indices need a top_k dimension.
func.func @expert_gemm_indices_rank(%x: tensor<64xf32>, %w: tensor<4x128x64xf32>, %idx: tensor<i32>) {
  // expected-error @+1 {{expected 'indices' to have rank >= 1, got 0}}
  %y = jamba.expert_gemm %x, %w indices(%idx)
      : (tensor<64xf32>, tensor<4x128x64xf32>, tensor<i32>) -> tensor<128xf32>
  return
}

// -----

// expert_gemm: the contraction sizes agree.
func.func @expert_gemm_k(%x: tensor<?x32xf32>, %w: tensor<4x128x64xf32>, %idx: tensor<?x2xi32>) {
  // expected-error @+1 {{expected 'input' dimension 1 to be the weight's K = 64, got 32}}
  %y = jamba.expert_gemm %x, %w indices(%idx)
      : (tensor<?x32xf32>, tensor<4x128x64xf32>, tensor<?x2xi32>) -> tensor<?x2x128xf32>
  return
}

// -----

// expert_gemm: a per-slot input has top_k slots.
func.func @expert_gemm_slots(%x: tensor<?x3x64xf32>, %w: tensor<4x128x64xf32>, %idx: tensor<?x2xi32>) {
  // expected-error @+1 {{expected 'input' dimension 1 to be top_k = 2, got 3}}
  %y = jamba.expert_gemm %x, %w indices(%idx)
      : (tensor<?x3x64xf32>, tensor<4x128x64xf32>, tensor<?x2xi32>) -> tensor<?x2x128xf32>
  return
}

// -----

// expert_gemm: int8 weights need their scales.
func.func @expert_gemm_no_scale(%x: tensor<?x64xf32>, %q: tensor<4x128x64xi8>, %idx: tensor<?x2xi32>) {
  // expected-error @+1 {{expected a 'scale' operand with int8 weights}}
  %y = jamba.expert_gemm %x, %q indices(%idx)
      : (tensor<?x64xf32>, tensor<4x128x64xi8>, tensor<?x2xi32>) -> tensor<?x2x128xf32>
  return
}

// -----

// expert_gemm: float weights take no scale.
func.func @expert_gemm_float_scale(%x: tensor<?x64xf32>, %w: tensor<4x128x64xf32>, %s: tensor<4x128xf32>, %idx: tensor<?x2xi32>) {
  // expected-error @+1 {{expected no 'scale' operand with floating-point weights}}
  %y = jamba.expert_gemm %x, %w scale(%s) indices(%idx)
      : (tensor<?x64xf32>, tensor<4x128x64xf32>, tensor<4x128xf32>, tensor<?x2xi32>) -> tensor<?x2x128xf32>
  return
}

// -----

// expert_gemm: one scale per expert and output row.
func.func @expert_gemm_scale_shape(%x: tensor<?x64xf32>, %q: tensor<4x128x64xi8>, %s: tensor<4x64xf32>, %idx: tensor<?x2xi32>) {
  // expected-error @+1 {{expected 'scale' dimension 1 to be the weight's N = 128, got 64}}
  %y = jamba.expert_gemm %x, %q scale(%s) indices(%idx)
      : (tensor<?x64xf32>, tensor<4x128x64xi8>, tensor<4x64xf32>, tensor<?x2xi32>) -> tensor<?x2x128xf32>
  return
}

// -----

// expert_gemm: one routing weight per token and slot.
func.func @expert_gemm_route(%x: tensor<?x64xf32>, %w: tensor<4x128x64xf32>, %idx: tensor<?x2xi32>, %rw: tensor<?x1xf32>) {
  // expected-error @+1 {{expected 'route_weights' dimension 1 to be top_k = 2, got 1}}
  %y = jamba.expert_gemm %x, %w indices(%idx) route_weights(%rw)
      : (tensor<?x64xf32>, tensor<4x128x64xf32>, tensor<?x2xi32>, tensor<?x1xf32>) -> tensor<?x2x128xf32>
  return
}

// -----

// expert_gemm: the result is [tokens, top_k, N].
func.func @expert_gemm_result(%x: tensor<?x64xf32>, %w: tensor<4x128x64xf32>, %idx: tensor<?x2xi32>) {
  // expected-error @+1 {{expected 'result' dimension 2 to be the weight's N = 128, got 64}}
  %y = jamba.expert_gemm %x, %w indices(%idx)
      : (tensor<?x64xf32>, tensor<4x128x64xf32>, tensor<?x2xi32>) -> tensor<?x2x64xf32>
  return
}

// -----

// expert_gemm: the result is in the activation type.
func.func @expert_gemm_result_type(%x: tensor<?x64xf32>, %w: tensor<4x128x64xf32>, %idx: tensor<?x2xi32>) {
  // expected-error @+1 {{expected 'input' and 'result' to have the same element type, got 'f32' and 'bf16'}}
  %y = jamba.expert_gemm %x, %w indices(%idx)
      : (tensor<?x64xf32>, tensor<4x128x64xf32>, tensor<?x2xi32>) -> tensor<?x2x128xbf16>
  return
}

// -----

// expert_gemm: the scales are [experts, N].
func.func @expert_gemm_scale_rank(%x: tensor<?x64xf32>, %q: tensor<4x128x64xi8>, %s: tensor<4x128x1xf32>, %idx: tensor<?x2xi32>) {
  // expected-error @+1 {{expected 'scale' to have rank 2, got 3}}
  %y = jamba.expert_gemm %x, %q scale(%s) indices(%idx)
      : (tensor<?x64xf32>, tensor<4x128x64xi8>, tensor<4x128x1xf32>, tensor<?x2xi32>) -> tensor<?x2x128xf32>
  return
}

// -----

// expert_gemm: the routing weights have the indices' shape.
func.func @expert_gemm_route_rank(%x: tensor<?x64xf32>, %w: tensor<4x128x64xf32>, %idx: tensor<?x2xi32>, %rw: tensor<?xf32>) {
  // expected-error @+1 {{expected 'route_weights' to have rank 2, got 1}}
  %y = jamba.expert_gemm %x, %w indices(%idx) route_weights(%rw)
      : (tensor<?x64xf32>, tensor<4x128x64xf32>, tensor<?x2xi32>, tensor<?xf32>) -> tensor<?x2x128xf32>
  return
}

// -----

// expert_gemm: the result keeps a slot dimension.
func.func @expert_gemm_result_rank(%x: tensor<?x64xf32>, %w: tensor<4x128x64xf32>, %idx: tensor<?x2xi32>) {
  // expected-error @+1 {{expected 'result' to have rank 3, got 2}}
  %y = jamba.expert_gemm %x, %w indices(%idx)
      : (tensor<?x64xf32>, tensor<4x128x64xf32>, tensor<?x2xi32>) -> tensor<?x128xf32>
  return
}

// -----

// expert_gemm: weights are model floats or int8 (ODS constraint).
func.func @expert_gemm_i16_weight(%x: tensor<?x64xf32>, %w: tensor<4x128x64xi16>, %idx: tensor<?x2xi32>) {
  // expected-error @+1 {{operand #1 must be ranked tensor of 64-bit float or 32-bit float or 16-bit float or bfloat16 type or 8-bit signless integer values}}
  %y = jamba.expert_gemm %x, %w indices(%idx)
      : (tensor<?x64xf32>, tensor<4x128x64xi16>, tensor<?x2xi32>) -> tensor<?x2x128xf32>
  return
}

// -----

// expert_gemm: scales are f32 (ODS constraint).
func.func @expert_gemm_bf16_scale(%x: tensor<?x64xf32>, %q: tensor<4x128x64xi8>, %s: tensor<4x128xbf16>, %idx: tensor<?x2xi32>) {
  // expected-error @+1 {{operand #2 must be ranked tensor of 32-bit float values}}
  %y = jamba.expert_gemm %x, %q scale(%s) indices(%idx)
      : (tensor<?x64xf32>, tensor<4x128x64xi8>, tensor<4x128xbf16>, tensor<?x2xi32>) -> tensor<?x2x128xf32>
  return
}

// -----

// expert_gemm: the expert offset is an i64 vector (ODS constraint).
func.func @expert_gemm_offset_rank(%x: tensor<?x64xf32>, %w: tensor<2x128x64xf32>, %idx: tensor<?x2xi32>, %off: tensor<1x1xi64>) {
  // expected-error @+1 {{operand #3 must be 1D tensor of 64-bit signless integer values}}
  %y = jamba.expert_gemm %x, %w indices(%idx) expert_offset(%off)
      : (tensor<?x64xf32>, tensor<2x128x64xf32>, tensor<?x2xi32>, tensor<1x1xi64>) -> tensor<?x2x128xf32>
  return
}

// -----

// linear: a scalar input has no K dimension.
func.func @linear_rank0(%x: tensor<f32>, %w: tensor<256x64xf32>) {
  // expected-error @+1 {{expected 'input' to have rank >= 1, got 0}}
  %y = jamba.linear %x, %w : (tensor<f32>, tensor<256x64xf32>) -> tensor<256xf32>
  return
}

// -----

// linear: the weight is [N, K].
func.func @linear_weight_rank(%x: tensor<1x4x64xf32>, %w: tensor<64xf32>) {
  // expected-error @+1 {{expected 'weight' to have rank 2, got 1}}
  %y = jamba.linear %x, %w : (tensor<1x4x64xf32>, tensor<64xf32>) -> tensor<1x4x64xf32>
  return
}

// -----

// linear: the contraction sizes agree.
func.func @linear_k(%x: tensor<1x4x64xf32>, %w: tensor<256x32xf32>) {
  // expected-error @+1 {{expected 'weight' dimension 1 to be the input's K = 64, got 32}}
  %y = jamba.linear %x, %w : (tensor<1x4x64xf32>, tensor<256x32xf32>) -> tensor<1x4x256xf32>
  return
}

// -----

// linear: int8 weights need their scales.
func.func @linear_no_scale(%x: tensor<1x4x64xf32>, %q: tensor<256x64xi8>) {
  // expected-error @+1 {{expected a 'scale' operand with int8 weights}}
  %y = jamba.linear %x, %q : (tensor<1x4x64xf32>, tensor<256x64xi8>) -> tensor<1x4x256xf32>
  return
}

// -----

// linear: one bias per output row.
func.func @linear_bias(%x: tensor<1x4x64xf32>, %w: tensor<256x64xf32>, %b: tensor<64xf32>) {
  // expected-error @+1 {{expected 'bias' dimension 0 to be the weight's N = 256, got 64}}
  %y = jamba.linear %x, %w bias(%b) : (tensor<1x4x64xf32>, tensor<256x64xf32>, tensor<64xf32>) -> tensor<1x4x256xf32>
  return
}

// -----

// linear: leading dimensions pass through.
func.func @linear_result(%x: tensor<1x4x64xf32>, %w: tensor<256x64xf32>) {
  // expected-error @+1 {{expected 'result' dimension 1 to be the input's size = 4, got 5}}
  %y = jamba.linear %x, %w : (tensor<1x4x64xf32>, tensor<256x64xf32>) -> tensor<1x5x256xf32>
  return
}

// -----

// linear: the result is in the activation type.
func.func @linear_result_type(%x: tensor<1x4x64xf32>, %w: tensor<256x64xbf16>) {
  // expected-error @+1 {{expected 'input' and 'result' to have the same element type, got 'f32' and 'bf16'}}
  %y = jamba.linear %x, %w : (tensor<1x4x64xf32>, tensor<256x64xbf16>) -> tensor<1x4x256xbf16>
  return
}

// -----

// linear: float weights take no scale.
func.func @linear_float_scale(%x: tensor<1x4x64xf32>, %w: tensor<256x64xf32>, %s: tensor<256xf32>) {
  // expected-error @+1 {{expected no 'scale' operand with floating-point weights}}
  %y = jamba.linear %x, %w scale(%s) : (tensor<1x4x64xf32>, tensor<256x64xf32>, tensor<256xf32>) -> tensor<1x4x256xf32>
  return
}

// -----

// linear: the scales are a vector.
func.func @linear_scale_rank(%x: tensor<1x4x64xf32>, %q: tensor<256x64xi8>, %s: tensor<256x1xf32>) {
  // expected-error @+1 {{expected 'scale' to have rank 1, got 2}}
  %y = jamba.linear %x, %q scale(%s) : (tensor<1x4x64xf32>, tensor<256x64xi8>, tensor<256x1xf32>) -> tensor<1x4x256xf32>
  return
}

// -----

// linear: one scale per output row.
func.func @linear_scale(%x: tensor<1x4x64xf32>, %q: tensor<256x64xi8>, %s: tensor<128xf32>) {
  // expected-error @+1 {{expected 'scale' dimension 0 to be the weight's N = 256, got 128}}
  %y = jamba.linear %x, %q scale(%s) : (tensor<1x4x64xf32>, tensor<256x64xi8>, tensor<128xf32>) -> tensor<1x4x256xf32>
  return
}

// -----

// linear: the bias is a vector.
func.func @linear_bias_rank(%x: tensor<1x4x64xf32>, %w: tensor<256x64xf32>, %b: tensor<256x1xf32>) {
  // expected-error @+1 {{expected 'bias' to have rank 1, got 2}}
  %y = jamba.linear %x, %w bias(%b) : (tensor<1x4x64xf32>, tensor<256x64xf32>, tensor<256x1xf32>) -> tensor<1x4x256xf32>
  return
}

// -----

// linear: the result has the input's rank.
func.func @linear_result_rank(%x: tensor<1x4x64xf32>, %w: tensor<256x64xf32>) {
  // expected-error @+1 {{expected 'result' to have rank 3, got 2}}
  %y = jamba.linear %x, %w : (tensor<1x4x64xf32>, tensor<256x64xf32>) -> tensor<4x256xf32>
  return
}

// -----

// dequant: per-row scales need rows.
func.func @dequant_rank(%q: tensor<64xi8>, %s: tensor<f32>) {
  // expected-error @+1 {{expected 'input' to have rank >= 2, got 1}}
  %w = jamba.dequant %q, %s : tensor<64xi8>, tensor<f32> -> tensor<64xf32>
  return
}

// -----

// dequant: one scale per row.
func.func @dequant_scale(%q: tensor<4x128x64xi8>, %s: tensor<4x64xf32>) {
  // expected-error @+1 {{expected 'scale' dimension 1 to be the input's size = 128, got 64}}
  %w = jamba.dequant %q, %s : tensor<4x128x64xi8>, tensor<4x64xf32> -> tensor<4x128x64xf32>
  return
}

// -----

// dequant: the result has the input's shape.
func.func @dequant_result(%q: tensor<128x64xi8>, %s: tensor<128xf32>) {
  // expected-error @+1 {{expected 'result' to have rank 2, got 3}}
  %w = jamba.dequant %q, %s : tensor<128x64xi8>, tensor<128xf32> -> tensor<1x128x64xf32>
  return
}

// -----

// dequant: only int8 is dequantized (ODS constraint).
func.func @dequant_i16(%q: tensor<128x64xi16>, %s: tensor<128xf32>) {
  // expected-error @+1 {{operand #0 must be ranked tensor of 8-bit signless integer values}}
  %w = jamba.dequant %q, %s : tensor<128x64xi16>, tensor<128xf32> -> tensor<128x64xf32>
  return
}

// -----

// dequant: the scales drop the input's last dimension.
func.func @dequant_scale_rank(%q: tensor<128x64xi8>, %s: tensor<128x1xf32>) {
  // expected-error @+1 {{expected 'scale' to have rank 1, got 2}}
  %w = jamba.dequant %q, %s : tensor<128x64xi8>, tensor<128x1xf32> -> tensor<128x64xf32>
  return
}

// -----

// dequant: the result has the input's sizes.
func.func @dequant_result_dim(%q: tensor<128x64xi8>, %s: tensor<128xf32>) {
  // expected-error @+1 {{expected 'result' dimension 1 to be the input's size = 64, got 32}}
  %w = jamba.dequant %q, %s : tensor<128x64xi8>, tensor<128xf32> -> tensor<128x32xf32>
  return
}

// -----

// combine_slots: needs a slot dimension.
func.func @combine_rank(%d: tensor<64xf32>) {
  // expected-error @+1 {{expected 'input' to have rank >= 2, got 1}}
  %y = jamba.combine_slots %d : tensor<64xf32> -> tensor<64xf32>
  return
}

// -----

// combine_slots: the slot dimension is summed away.
func.func @combine_shape(%d: tensor<5x2x64xf32>) {
  // expected-error @+1 {{expected 'result' dimension 1 to be the input's size = 64, got 2}}
  %y = jamba.combine_slots %d : tensor<5x2x64xf32> -> tensor<5x2xf32>
  return
}

// -----

// combine_slots: the result keeps the element type.
func.func @combine_type(%d: tensor<5x2x64xf32>) {
  // expected-error @+1 {{expected 'input' and 'result' to have the same element type, got 'f32' and 'bf16'}}
  %y = jamba.combine_slots %d : tensor<5x2x64xf32> -> tensor<5x64xbf16>
  return
}

// -----

// combine_slots: the result drops the slot dimension.
func.func @combine_result_rank(%d: tensor<5x2x64xf32>) {
  // expected-error @+1 {{expected 'result' to have rank 2, got 3}}
  %y = jamba.combine_slots %d : tensor<5x2x64xf32> -> tensor<5x2x64xf32>
  return
}

// -----

// swiglu: gate, up and result have one type (generic form; the custom form
// spells a single type).
func.func @swiglu_types(%g: tensor<4x128xf32>, %u: tensor<4x128xbf16>) {
  // expected-error @+1 {{'jamba.swiglu' op failed to verify that all of {gate, up, result} have same type}}
  %a = "jamba.swiglu"(%g, %u) : (tensor<4x128xf32>, tensor<4x128xbf16>) -> tensor<4x128xf32>
  return
}

// -----

// cached_attention: query heads share kv heads in whole groups.
func.func @cached_heads(%q: tensor<1x4x48xf32>, %k: tensor<1x4x32xf32>, %c: tensor<1x2x8x16xf32>, %len: tensor<1xi64>) {
  // expected-error @+1 {{expected num_heads (3) to be a multiple of num_kv_heads (2)}}
  %o, %k2, %v2 = jamba.cached_attention %q, %k, %k, cache(%c, %c, %len)
      {num_heads = 3 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x4x48xf32>, tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<1x2x8x16xf32>,
         tensor<1x2x8x16xf32>, tensor<1xi64>) -> (tensor<1x4x48xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>)
  return
}

// -----

// cached_attention: head_dim comes from the cache and must be static.
func.func @cached_dynamic_head_dim(%q: tensor<1x4x64xf32>, %k: tensor<1x4x32xf32>, %c: tensor<1x2x8x?xf32>, %len: tensor<1xi64>) {
  // expected-error @+1 {{expected 'k_cache' to have a static head_dim}}
  %o, %k2, %v2 = jamba.cached_attention %q, %k, %k, cache(%c, %c, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<1x2x8x?xf32>,
         tensor<1x2x8x?xf32>, tensor<1xi64>) -> (tensor<1x4x64xf32>, tensor<1x2x8x?xf32>, tensor<1x2x8x?xf32>)
  return
}

// -----

// cached_attention: keys have num_kv_heads * head_dim features.
func.func @cached_key(%q: tensor<1x4x64xf32>, %k: tensor<1x4x64xf32>, %c: tensor<1x2x8x16xf32>, %len: tensor<1xi64>) {
  // expected-error @+1 {{expected 'key' dimension 2 to be num_kv_heads * head_dim = 32, got 64}}
  %o, %k2, %v2 = jamba.cached_attention %q, %k, %k, cache(%c, %c, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<1x4x64xf32>, tensor<1x4x64xf32>, tensor<1x2x8x16xf32>,
         tensor<1x2x8x16xf32>, tensor<1xi64>) -> (tensor<1x4x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>)
  return
}

// -----

// cached_attention: the query is [batch, seq, features].
func.func @cached_query_rank(%q: tensor<4x64xf32>, %k: tensor<1x4x32xf32>, %c: tensor<1x2x8x16xf32>, %len: tensor<1xi64>) {
  // expected-error @+1 {{expected 'query' to have rank 3, got 2}}
  %o, %k2, %v2 = jamba.cached_attention %q, %k, %k, cache(%c, %c, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<4x64xf32>, tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<1x2x8x16xf32>,
         tensor<1x2x8x16xf32>, tensor<1xi64>) -> (tensor<4x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>)
  return
}

// -----

// cached_attention: the caches are [batch, kv_heads, capacity, head_dim].
func.func @cached_cache_rank(%q: tensor<1x4x64xf32>, %k: tensor<1x4x32xf32>, %v: tensor<1x4x32xf32>,
    %kc: tensor<2x8x16xf32>, %vc: tensor<2x8x16xf32>, %len: tensor<1xi64>) {
  // expected-error @+1 {{expected 'k_cache' to have rank 4, got 3}}
  %o, %k2, %v2 = jamba.cached_attention %q, %k, %v, cache(%kc, %vc, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<2x8x16xf32>,
         tensor<2x8x16xf32>, tensor<1xi64>) -> (tensor<1x4x64xf32>, tensor<2x8x16xf32>, tensor<2x8x16xf32>)
  return
}

// -----

// cached_attention: queries have num_heads * head_dim features.
func.func @cached_query_features(%q: tensor<1x4x48xf32>, %k: tensor<1x4x32xf32>,
    %v: tensor<1x4x32xf32>, %kc: tensor<1x2x8x16xf32>, %vc: tensor<1x2x8x16xf32>,
    %len: tensor<1xi64>) {
  // expected-error @+1 {{expected 'query' dimension 2 to be num_heads * head_dim = 64, got 48}}
  %o, %k2, %v2 = jamba.cached_attention %q, %k, %v, cache(%kc, %vc, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x4x48xf32>, tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<1x2x8x16xf32>,
         tensor<1x2x8x16xf32>, tensor<1xi64>) -> (tensor<1x4x48xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>)
  return
}

// -----

// cached_attention: the key is [batch, seq, features].
func.func @cached_key_rank(%q: tensor<1x4x64xf32>, %k: tensor<4x32xf32>, %v: tensor<1x4x32xf32>,
    %kc: tensor<1x2x8x16xf32>, %vc: tensor<1x2x8x16xf32>, %len: tensor<1xi64>) {
  // expected-error @+1 {{expected 'key' to have rank 3, got 2}}
  %o, %k2, %v2 = jamba.cached_attention %q, %k, %v, cache(%kc, %vc, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<4x32xf32>, tensor<1x4x32xf32>, tensor<1x2x8x16xf32>,
         tensor<1x2x8x16xf32>, tensor<1xi64>) -> (tensor<1x4x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>)
  return
}

// -----

// cached_attention: the value is [batch, seq, features].
func.func @cached_value_rank(%q: tensor<1x4x64xf32>, %k: tensor<1x4x32xf32>, %v: tensor<4x32xf32>,
    %kc: tensor<1x2x8x16xf32>, %vc: tensor<1x2x8x16xf32>, %len: tensor<1xi64>) {
  // expected-error @+1 {{expected 'value' to have rank 3, got 2}}
  %o, %k2, %v2 = jamba.cached_attention %q, %k, %v, cache(%kc, %vc, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<1x4x32xf32>, tensor<4x32xf32>, tensor<1x2x8x16xf32>,
         tensor<1x2x8x16xf32>, tensor<1xi64>) -> (tensor<1x4x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>)
  return
}

// -----

// cached_attention: values have num_kv_heads * head_dim features.
func.func @cached_value(%q: tensor<1x4x64xf32>, %k: tensor<1x4x32xf32>, %v: tensor<1x4x64xf32>,
    %kc: tensor<1x2x8x16xf32>, %vc: tensor<1x2x8x16xf32>, %len: tensor<1xi64>) {
  // expected-error @+1 {{expected 'value' dimension 2 to be num_kv_heads * head_dim = 32, got 64}}
  %o, %k2, %v2 = jamba.cached_attention %q, %k, %v, cache(%kc, %vc, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<1x4x32xf32>, tensor<1x4x64xf32>, tensor<1x2x8x16xf32>,
         tensor<1x2x8x16xf32>, tensor<1xi64>) -> (tensor<1x4x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>)
  return
}

// -----

// cached_attention: the cache holds num_kv_heads heads.
func.func @cached_cache_kv_heads(%q: tensor<1x4x64xf32>, %k: tensor<1x4x32xf32>,
    %v: tensor<1x4x32xf32>, %kc: tensor<1x4x8x16xf32>, %vc: tensor<1x4x8x16xf32>,
    %len: tensor<1xi64>) {
  // expected-error @+1 {{expected 'k_cache' dimension 1 to be num_kv_heads = 2, got 4}}
  %o, %k2, %v2 = jamba.cached_attention %q, %k, %v, cache(%kc, %vc, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<1x4x8x16xf32>,
         tensor<1x4x8x16xf32>, tensor<1xi64>) -> (tensor<1x4x64xf32>, tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>)
  return
}

// -----

// cached_attention: K and V caches have one type.
func.func @cached_cache_types(%q: tensor<1x4x64xf32>, %k: tensor<1x4x32xf32>,
    %v: tensor<1x4x32xf32>, %kc: tensor<1x2x8x16xf32>, %vc: tensor<1x2x9x16xf32>,
    %len: tensor<1xi64>) {
  // expected-error @+1 {{expected 'k_cache' and 'v_cache' to have the same type, got 'tensor<1x2x8x16xf32>' and 'tensor<1x2x9x16xf32>'}}
  %o, %k2, %v2 = jamba.cached_attention %q, %k, %v, cache(%kc, %vc, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<1x2x8x16xf32>,
         tensor<1x2x9x16xf32>, tensor<1xi64>) -> (tensor<1x4x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x9x16xf32>)
  return
}

// -----

// cached_attention: one cache length per sequence.
func.func @cached_cache_len(%q: tensor<1x4x64xf32>, %k: tensor<1x4x32xf32>, %v: tensor<1x4x32xf32>,
    %kc: tensor<1x2x8x16xf32>, %vc: tensor<1x2x8x16xf32>, %len: tensor<2xi64>) {
  // expected-error @+1 {{expected 'cache_len' dimension 0 to be batch = 1, got 2}}
  %o, %k2, %v2 = jamba.cached_attention %q, %k, %v, cache(%kc, %vc, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<1x2x8x16xf32>,
         tensor<1x2x8x16xf32>, tensor<2xi64>) -> (tensor<1x4x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>)
  return
}

// -----

// cached_attention: the updated K cache keeps the cache's type.
func.func @cached_new_k_cache(%q: tensor<1x4x64xf32>, %k: tensor<1x4x32xf32>,
    %v: tensor<1x4x32xf32>, %kc: tensor<1x2x8x16xf32>, %vc: tensor<1x2x8x16xf32>,
    %len: tensor<1xi64>) {
  // expected-error @+1 {{expected 'k_cache' and 'new_k_cache' to have the same type, got 'tensor<1x2x8x16xf32>' and 'tensor<1x2x?x16xf32>'}}
  %o, %k2, %v2 = jamba.cached_attention %q, %k, %v, cache(%kc, %vc, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<1x2x8x16xf32>,
         tensor<1x2x8x16xf32>, tensor<1xi64>) -> (tensor<1x4x64xf32>, tensor<1x2x?x16xf32>, tensor<1x2x8x16xf32>)
  return
}

// -----

// cached_attention: the updated V cache keeps the cache's type.
func.func @cached_new_v_cache(%q: tensor<1x4x64xf32>, %k: tensor<1x4x32xf32>,
    %v: tensor<1x4x32xf32>, %kc: tensor<1x2x8x16xf32>, %vc: tensor<1x2x8x16xf32>,
    %len: tensor<1xi64>) {
  // expected-error @+1 {{expected 'v_cache' and 'new_v_cache' to have the same type, got 'tensor<1x2x8x16xf32>' and 'tensor<1x2x8x16xbf16>'}}
  %o, %k2, %v2 = jamba.cached_attention %q, %k, %v, cache(%kc, %vc, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<1x2x8x16xf32>,
         tensor<1x2x8x16xf32>, tensor<1xi64>) -> (tensor<1x4x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xbf16>)
  return
}

// -----

// cached_attention: the result has the query's type.
func.func @cached_result_type(%q: tensor<1x4x64xf32>, %k: tensor<1x4x32xf32>,
    %v: tensor<1x4x32xf32>, %kc: tensor<1x2x8x16xf32>, %vc: tensor<1x2x8x16xf32>,
    %len: tensor<1xi64>) {
  // expected-error @+1 {{expected 'query' and 'result' to have the same type, got 'tensor<1x4x64xf32>' and 'tensor<1x?x64xf32>'}}
  %o, %k2, %v2 = jamba.cached_attention %q, %k, %v, cache(%kc, %vc, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<1x2x8x16xf32>,
         tensor<1x2x8x16xf32>, tensor<1xi64>) -> (tensor<1x?x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>)
  return
}

// -----

// cached_attention: num_heads is positive (ODS constraint).
func.func @cached_zero_heads(%q: tensor<1x4x64xf32>, %k: tensor<1x4x32xf32>, %v: tensor<1x4x32xf32>,
    %kc: tensor<1x2x8x16xf32>, %vc: tensor<1x2x8x16xf32>, %len: tensor<1xi64>) {
  // expected-error @+2 {{attribute 'num_heads' failed to satisfy constraint: 64-bit signless integer attribute whose value is positive}}
  %o, %k2, %v2 = jamba.cached_attention %q, %k, %v, cache(%kc, %vc, %len)
      {num_heads = 0 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<1x2x8x16xf32>,
         tensor<1x2x8x16xf32>, tensor<1xi64>) -> (tensor<1x4x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>)
  return
}

// -----

// cached_attention: num_kv_heads is positive (ODS constraint).
func.func @cached_zero_kv_heads(%q: tensor<1x4x64xf32>, %k: tensor<1x4x32xf32>,
    %v: tensor<1x4x32xf32>, %kc: tensor<1x2x8x16xf32>, %vc: tensor<1x2x8x16xf32>,
    %len: tensor<1xi64>) {
  // expected-error @+2 {{attribute 'num_kv_heads' failed to satisfy constraint: 64-bit signless integer attribute whose value is positive}}
  %o, %k2, %v2 = jamba.cached_attention %q, %k, %v, cache(%kc, %vc, %len)
      {num_heads = 4 : i64, num_kv_heads = 0 : i64}
      : (tensor<1x4x64xf32>, tensor<1x4x32xf32>, tensor<1x4x32xf32>, tensor<1x2x8x16xf32>,
         tensor<1x2x8x16xf32>, tensor<1xi64>) -> (tensor<1x4x64xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>)
  return
}

// -----

// all_reduce: the sum has the input's type.
func.func @all_reduce_type(%x: tensor<4xf32>) {
  // expected-error @+1 {{'jamba.all_reduce' op failed to verify that all of {input, result} have same type}}
  %y = "jamba.all_reduce"(%x) : (tensor<4xf32>) -> tensor<4xbf16>
  return
}

// -----

// all_reduce: group_size is not negative (ODS constraint).
func.func @all_reduce_group_negative(%x: tensor<4xf32>) {
  // expected-error @+1 {{attribute 'group_size' failed to satisfy constraint: 64-bit signless integer attribute whose value is non-negative}}
  %y = jamba.all_reduce %x {group_size = -1 : i64} : tensor<4xf32>
  return
}

// -----

// moe: an expert-parallel share holds at most the router's experts.
func.func @moe_more_local_experts(%x: tensor<1x4x64xf32>, %r: tensor<2x64xf32>,
                                  %g: tensor<4x128x64xf32>, %d: tensor<4x64x128xf32>,
                                  %off: tensor<1xi64>) {
  // expected-error @+1 {{expected at most the router's 2 experts, got 4}}
  %y = jamba.moe %x, %r, %g, %g, %d expert_offset(%off) {top_k = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<2x64xf32>, tensor<4x128x64xf32>,
         tensor<4x128x64xf32>, tensor<4x64x128xf32>, tensor<1xi64>) -> tensor<1x4x64xf32>
  return
}

// -----

// attention: a head of no channels is meaningless (a tensor-core lowering
// divided by it).
func.func @attention_head_dim_zero(%x: tensor<1x4x64xf32>, %wq: tensor<0x64xf32>,
    %wo: tensor<64x0xf32>, %k: tensor<1x2x8x0xf32>, %len: tensor<1xi64>) {
  // expected-error @+1 {{expected a head_dim of at least 1, got 0}}
  %o, %k2, %v2 = jamba.attention %x, %wq, %wq, %wq, %wo, cache(%k, %k, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<0x64xf32>, tensor<0x64xf32>, tensor<0x64xf32>,
         tensor<64x0xf32>, tensor<1x2x8x0xf32>, tensor<1x2x8x0xf32>, tensor<1xi64>)
      -> (tensor<1x4x64xf32>, tensor<1x2x8x0xf32>, tensor<1x2x8x0xf32>)
  return
}

// -----

// attention: its decomposition's cached_attention reads head_dim from the
// cache, which must therefore be static.
func.func @attention_dynamic_cache_head_dim(%x: tensor<1x4x64xf32>, %wq: tensor<64x64xf32>,
    %wk: tensor<32x64xf32>, %k: tensor<1x2x8x?xf32>, %len: tensor<1xi64>) {
  // expected-error @+1 {{expected 'k_cache' to have a static head_dim}}
  %o, %k2, %v2 = jamba.attention %x, %wq, %wk, %wk, %wq, cache(%k, %k, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<64x64xf32>, tensor<32x64xf32>, tensor<32x64xf32>,
         tensor<64x64xf32>, tensor<1x2x8x?xf32>, tensor<1x2x8x?xf32>, tensor<1xi64>)
      -> (tensor<1x4x64xf32>, tensor<1x2x8x?xf32>, tensor<1x2x8x?xf32>)
  return
}

// -----

// cached_attention: a head of no channels is meaningless.
func.func @cached_head_dim_zero(%q: tensor<1x3x0xf32>, %c: tensor<1x2x8x0xf32>, %len: tensor<1xi64>) {
  // expected-error @+1 {{expected a head_dim of at least 1, got 0}}
  %o, %k2, %v2 = jamba.cached_attention %q, %q, %q, cache(%c, %c, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x3x0xf32>, tensor<1x3x0xf32>, tensor<1x3x0xf32>, tensor<1x2x8x0xf32>,
         tensor<1x2x8x0xf32>, tensor<1xi64>) -> (tensor<1x3x0xf32>, tensor<1x2x8x0xf32>, tensor<1x2x8x0xf32>)
  return
}

// -----

// embedding: ids are clamped into the table, which needs a row.
func.func @embedding_empty_table(%t: tensor<0x64xf32>, %ids: tensor<1x4xi32>) {
  // expected-error @+1 {{expected 'table' to have at least one row (the vocabulary), got 0}}
  %h = jamba.embedding %t, %ids : tensor<0x64xf32>, tensor<1x4xi32> -> tensor<1x4x64xf32>
  return
}

// -----

// expert_gemm: indices are clamped into the experts, which needs one.
func.func @expert_gemm_no_experts(%x: tensor<?x64xf32>, %w: tensor<0x128x64xf32>, %idx: tensor<?x2xi32>) {
  // expected-error @+1 {{expected 'weight' to have at least one expert, got 0}}
  %y = jamba.expert_gemm %x, %w indices(%idx)
      : (tensor<?x64xf32>, tensor<0x128x64xf32>, tensor<?x2xi32>) -> tensor<?x2x128xf32>
  return
}

// -----

// expert_gemm: the expert offset is one value.
func.func @expert_gemm_offset_size(%x: tensor<?x64xf32>, %w: tensor<2x128x64xf32>, %idx: tensor<?x2xi32>, %off: tensor<2xi64>) {
  // expected-error @+1 {{expected 'expert_offset' to hold one value (the rank's first expert), got 2}}
  %y = jamba.expert_gemm %x, %w indices(%idx) expert_offset(%off)
      : (tensor<?x64xf32>, tensor<2x128x64xf32>, tensor<?x2xi32>, tensor<2xi64>) -> tensor<?x2x128xf32>
  return
}

// -----

// moe: the expert offset is one value.
func.func @moe_offset_size(%x: tensor<1x4x64xf32>, %r: tensor<4x64xf32>,
                           %g: tensor<2x128x64xf32>, %d: tensor<2x64x128xf32>,
                           %off: tensor<3xi64>) {
  // expected-error @+1 {{expected 'expert_offset' to hold one value (the rank's first expert), got 3}}
  %y = jamba.moe %x, %r, %g, %g, %d expert_offset(%off) {top_k = 2 : i64}
      : (tensor<1x4x64xf32>, tensor<4x64xf32>, tensor<2x128x64xf32>,
         tensor<2x128x64xf32>, tensor<2x64x128xf32>, tensor<3xi64>) -> tensor<1x4x64xf32>
  return
}

// -----

// Unranked tensors are refused by the operand constraints (the verifiers
// read ranks and sizes; generic form, as the custom one cannot spell it).
func.func @dequant_unranked(%q: tensor<*xi8>, %s: tensor<128xf32>) {
  // expected-error @+1 {{operand #0 must be ranked tensor of 8-bit signless integer values}}
  %w = "jamba.dequant"(%q, %s) : (tensor<*xi8>, tensor<128xf32>) -> tensor<128x64xf32>
  return
}

// -----

// selective_scan: no states is meaningless (static zeros made the lowering
// slice past the end).
func.func @scan_no_states(%u: tensor<1x4x16xf32>, %dt: tensor<1x4x16xf32>, %A: tensor<16x0xf32>, %B: tensor<1x4x0xf32>, %C: tensor<1x4x0xf32>) {
  // expected-error @+1 {{expected d_state >= 1, got 0}}
  %y, %h = jamba.selective_scan %u, %dt, %A, %B, %C : (tensor<1x4x16xf32>, tensor<1x4x16xf32>, tensor<16x0xf32>, tensor<1x4x0xf32>, tensor<1x4x0xf32>) -> (tensor<1x4x16xf32>, tensor<1x16x0xf32>)
  return
}

// -----

// selective_scan: nor are no sequences.
func.func @scan_no_batch(%u: tensor<0x4x16xf32>, %A: tensor<16x8xf32>, %B: tensor<0x4x8xf32>) {
  // expected-error @+1 {{expected batch >= 1, got 0}}
  %y, %h = jamba.selective_scan %u, %u, %A, %B, %B : (tensor<0x4x16xf32>, tensor<0x4x16xf32>, tensor<16x8xf32>, tensor<0x4x8xf32>, tensor<0x4x8xf32>) -> (tensor<0x4x16xf32>, tensor<0x16x8xf32>)
  return
}

// -----

// mamba_mixer: no channels is meaningless (its decomposition sliced past
// the end).
func.func @mixer_no_channels(%x: tensor<1x?x64xf32>, %cs: tensor<1x0x3xf32>, %ss: tensor<1x0x8xf32>, %w_in: tensor<0x64xf32>, %w_conv: tensor<0x1x4xf32>, %b_conv: tensor<0xf32>, %w_x: tensor<24x0xf32>, %n_dt: tensor<8xf32>, %n_b: tensor<8xf32>, %n_c: tensor<8xf32>, %w_dt: tensor<0x8xf32>, %b_dt: tensor<0xf32>, %a_log: tensor<0x8xf32>, %d: tensor<0xf32>, %w_out: tensor<64x0xf32>) {
  // expected-error @+1 {{expected d_inner >= 1, got 0}}
  %out, %conv, %ssm = jamba.mamba_mixer %x, state(%cs, %ss)
      in_proj(%w_in) conv1d(%w_conv, %b_conv) x_proj(%w_x)
      norms(%n_dt, %n_b, %n_c) dt_proj(%w_dt, %b_dt) ssm(%a_log, %d)
      out_proj(%w_out)
      : (tensor<1x?x64xf32>, tensor<1x0x3xf32>, tensor<1x0x8xf32>, tensor<0x64xf32>, tensor<0x1x4xf32>, tensor<0xf32>, tensor<24x0xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<0x8xf32>, tensor<0xf32>, tensor<0x8xf32>, tensor<0xf32>, tensor<64x0xf32>)
      -> (tensor<1x?x64xf32>, tensor<1x0x3xf32>, tensor<1x0x8xf32>)
  return
}

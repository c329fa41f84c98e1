// RUN: jamba-opt %s -split-input-file -verify-diagnostics -jamba-decompose-layers
// RUN: jamba-opt %s -split-input-file -jamba-decompose-layers=mixers=false | FileCheck %s --check-prefix=FFN

// A mixer whose Mamba sizes are dynamic cannot be cut into its projections
// and slices: the pass names the sizes instead of leaving the op for
// bufferization to refuse without a reason. Without mixers it stays.
// FFN-LABEL: func @mamba_dynamic_sizes
//       FFN:   jamba.mamba_mixer
func.func @mamba_dynamic_sizes(%x: tensor<1x?x64xf32>, %cs: tensor<1x?x3xf32>,
                               %ss: tensor<1x?x?xf32>, %w_in: tensor<?x64xf32>,
                               %w_conv: tensor<?x1x4xf32>, %w_x: tensor<?x?xf32>,
                               %nd: tensor<8xf32>, %n: tensor<?xf32>,
                               %w_dt: tensor<?x8xf32>, %v: tensor<?xf32>,
                               %a_log: tensor<?x?xf32>,
                               %w_out: tensor<64x?xf32>) -> tensor<1x?x64xf32> {
  // expected-error @+1 {{'jamba.mamba_mixer' op cannot be decomposed: its Mamba sizes must be static, but d_inner (conv_weight dimension 0) is dynamic, d_state (A_log dimension 1) is dynamic}}
  %out, %conv, %ssm = jamba.mamba_mixer %x, state(%cs, %ss)
      in_proj(%w_in) conv1d(%w_conv) x_proj(%w_x)
      norms(%nd, %n, %n) dt_proj(%w_dt, %v) ssm(%a_log, %v)
      out_proj(%w_out)
      : (tensor<1x?x64xf32>, tensor<1x?x3xf32>, tensor<1x?x?xf32>,
         tensor<?x64xf32>, tensor<?x1x4xf32>, tensor<?x?xf32>,
         tensor<8xf32>, tensor<?xf32>, tensor<?xf32>, tensor<?x8xf32>,
         tensor<?xf32>, tensor<?x?xf32>, tensor<?xf32>, tensor<64x?xf32>)
      -> (tensor<1x?x64xf32>, tensor<1x?x3xf32>, tensor<1x?x?xf32>)
  return %out : tensor<1x?x64xf32>
}

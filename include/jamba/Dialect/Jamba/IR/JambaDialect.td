//===- JambaDialect.td - The jamba dialect -----------------*- tablegen -*-===//
//
// Part of jamba-mlir. The dialect definition and the base class of its ops.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_DIALECT_JAMBA_IR_JAMBADIALECT_TD
#define JAMBA_DIALECT_JAMBA_IR_JAMBADIALECT_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"

def Jamba_Dialect : Dialect {
  let name = "jamba";
  let cppNamespace = "::mlir::jamba";
  let summary = "Hybrid Transformer-Mamba mixture-of-experts models (Jamba)";
  let description = [{
    The `jamba` dialect expresses a Jamba-family model at two levels:

    * **layer level**: `jamba.embedding`, `jamba.rms_norm`, `jamba.mamba_mixer`,
      `jamba.attention`, `jamba.moe`, `jamba.mlp`, `jamba.lm_head`;
    * **primitives** the layer ops decompose into: `jamba.causal_conv1d`,
      `jamba.selective_scan`, `jamba.cached_attention`, `jamba.router_topk`,
      `jamba.expert_gemm`, `jamba.combine_slots`,
      `jamba.linear`, `jamba.dequant`, `jamba.swiglu`.

    All ops work on ranked tensors with value semantics. Activations are
    `[batch, seq, features]`; weights keep the `[out, in]` layout of the
    Hugging Face checkpoint; all recurrent state (KV cache, conv state, SSM
    state) is explicit in operands and results. See docs/RationaleJamba.md.
  }];
  let dependentDialects = ["::mlir::tensor::TensorDialect"];
}

/// Base class of every jamba op.
class Jamba_Op<string mnemonic, list<Trait> traits = []>
    : Op<Jamba_Dialect, mnemonic, traits>;

//===----------------------------------------------------------------------===//
// Type constraints shared by the ops.
//===----------------------------------------------------------------------===//

/// Floating-point element types a model computes in.
def Jamba_FloatElem : AnyTypeOf<[F64, F32, F16, BF16]>;

/// A ranked tensor of model floats (activations and dense weights).
def Jamba_FloatTensor : RankedTensorOf<[F64, F32, F16, BF16]>;

/// A weight tensor: model floats, or int8 when it is quantized.
def Jamba_WeightTensor : RankedTensorOf<[F64, F32, F16, BF16, I8]>;

/// Per-row dequantization scales.
def Jamba_ScaleTensor : RankedTensorOf<[F32]>;

/// Token ids and expert indices.
def Jamba_IndexTensor : RankedTensorOf<[I32, I64]>;

#endif // JAMBA_DIALECT_JAMBA_IR_JAMBADIALECT_TD

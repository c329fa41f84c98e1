//===- Passes.td - jamba transformation passes -------------*- tablegen -*-===//
//
// Part of jamba-mlir.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_TRANSFORMS_PASSES_TD
#define JAMBA_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

//===----------------------------------------------------------------------===//
// Decomposition
//===----------------------------------------------------------------------===//

def JambaDecomposeLayersPass
    : Pass<"jamba-decompose-layers", "func::FuncOp"> {
  let summary = "Decompose layer-level ops into jamba primitives";
  let description = [{
    Rewrites `jamba.moe` into the router GEMM, `jamba.router_topk`, the gate
    and up `jamba.expert_gemm`s, `jamba.swiglu`, the down `jamba.expert_gemm`
    with the routing weights in its epilogue, and `jamba.combine_slots`; and
    `jamba.mlp` into three `jamba.linear`s around a `jamba.swiglu`. With
    `mixers` (the default), `jamba.mamba_mixer` becomes the in/x/dt/out
    projections, `tensor.extract_slice`s for the x/z and dt/B/C splits,
    `jamba.causal_conv1d`, three `jamba.rms_norm`s, `A = -exp(A_log)` and
    `jamba.selective_scan`; `jamba.attention` becomes the q/k/v/o
    projections around `jamba.cached_attention`; `jamba.lm_head` becomes a
    `tensor.extract_slice` of its last `num_logits_to_keep` positions (none
    when that is 0) and a `jamba.linear`. The primitives are what
    backends implement and what `jamba-fuse-dequant-into-gemm` fuses into.

    Before:

    ```mlir
    %y = jamba.moe %x, %router, %gate, %up, %down {top_k = 2 : i64} : ...
    ```

    After:

    ```mlir
    %logits = jamba.linear %x, %router : ...
    %w, %idx = jamba.router_topk %logits {top_k = 2 : i64} : ...
    %g = jamba.expert_gemm %x, %gate indices(%idx) : ...
    %u = jamba.expert_gemm %x, %up indices(%idx) : ...
    %a = jamba.swiglu %g, %u : ...
    %d = jamba.expert_gemm %a, %down indices(%idx) route_weights(%w) : ...
    %y = jamba.combine_slots %d : ...
    ```
  }];
  let options = [
    Option<"mixers", "mixers", "bool", /*default=*/"true",
           "Also decompose jamba.mamba_mixer, jamba.attention and "
           "jamba.lm_head">,
  ];
  let dependentDialects = ["::mlir::jamba::JambaDialect",
                           "::mlir::arith::ArithDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::tensor::TensorDialect"];
}

//===----------------------------------------------------------------------===//
// ExpertsInt8
//===----------------------------------------------------------------------===//

def JambaFuseDequantIntoGemmPass
    : Pass<"jamba-fuse-dequant-into-gemm", "func::FuncOp"> {
  let summary = "Fold jamba.dequant into the GEMM that consumes it";
  let description = [{
    A `jamba.dequant` feeding the weight of a `jamba.linear` or a
    `jamba.expert_gemm` becomes that GEMM's int8 weight and `scale` operand:
    the GEMM converts the int8 values inside its K loop, accumulates in f32
    and applies the per-row scale after the loop (SPEC 1.11). The routing
    weight of an expert down projection stays in the same GEMM's epilogue.

    By default only a dequant with a single use is fused (a dequant with
    another user still materialises its float weights, so fusing a second
    consumer would not save that memory); `multi-use` fuses every GEMM
    consumer, leaving the dequant for its non-GEMM users.

    Before:

    ```mlir
    %w = jamba.dequant %q, %s : tensor<4x128x64xi8>, tensor<4x128xf32> -> tensor<4x128x64xf32>
    %y = jamba.expert_gemm %x, %w indices(%idx) : ...
    ```

    After:

    ```mlir
    %y = jamba.expert_gemm %x, %q scale(%s) indices(%idx) : ...
    ```
  }];
  let options = [
    Option<"multiUse", "multi-use", "bool", /*default=*/"false",
           "Fuse into every GEMM user of a dequant, not only a single use">,
  ];
  let dependentDialects = ["::mlir::jamba::JambaDialect"];
}

def JambaQuantizeExpertsPass
    : Pass<"jamba-quantize-experts", "ModuleOp"> {
  let summary = "ExpertsInt8: int8 expert weights with per-row f32 scales";
  let description = [{
    Every expert weight argument of an entry point (the gate, up and down
    weights of `jamba.moe` and `jamba.expert_gemm`) becomes an int8 argument
    of the same shape and checkpoint name, followed by a new f32 argument
    `<name>_scale` holding one scale per output row, and a `jamba.dequant`
    at the function's entry rebuilds the float weights for their users.
    With `dense-mlp`, the weights of `jamba.mlp` are quantized too (the
    paper's "MoE and MLP weights"); by default only experts are, as in vLLM.

    The quantization itself (symmetric, per expert and output row,
    `scale = max|row| / 127`, round half to even, clamp to +-127) is applied
    to checkpoint data by `jamba-quantize`; this pass makes the IR agree
    with such a checkpoint. Weights that are not entry-point arguments with
    a `jamba.weight` name are left unchanged.

    Before:

    ```mlir
    func.func @f(%x: tensor<?x64xf32>,
                 %g: tensor<4x128x64xf32> {jamba.weight = "...experts.{e}.gate_proj.weight"}, ...)
    ```

    After:

    ```mlir
    func.func @f(%x: tensor<?x64xf32>,
                 %g: tensor<4x128x64xi8> {jamba.weight = "...experts.{e}.gate_proj.weight"},
                 %gs: tensor<4x128xf32> {jamba.weight = "...experts.{e}.gate_proj.weight_scale"}, ...) {
      %0 = jamba.dequant %g, %gs : tensor<4x128x64xi8>, tensor<4x128xf32> -> tensor<4x128x64xf32>
    ```
  }];
  let options = [
    Option<"denseMlp", "dense-mlp", "bool", /*default=*/"false",
           "Also quantize the weights of dense MLP layers">,
  ];
  let dependentDialects = ["::mlir::jamba::JambaDialect",
                           "::mlir::func::FuncDialect"];
}

def JambaSplitStagesPass : Pass<"jamba-split-stages", "ModuleOp"> {
  let summary = "Split each entry point into per-layer stage functions and a "
                "host schedule of calls";
  let description = [{
    Every public entry point `@f` (with `jamba.weight` / `jamba.state`
    arguments, as `jamba-import` makes them) is split into private stage
    functions `@f__embed`, `@f__layer0` ... `@f__layer{N-1}`, `@f__head`,
    and its body becomes the host schedule: one `func.call` per stage, in
    order. An op belongs to the largest stage among its operands: a weight
    or state argument names its layer (`model.layers.N.`, `layers.N.`),
    `model.embed_tokens.` is the embedding stage and any other weight the
    head; ops with no staged operand (constants, sizes) are pure and are
    cloned into the stages that use them.

    Stage arguments and results keep the entry point's attributes (weights,
    states, inputs, logits); a value passed between stages is marked
    `jamba.temp = "<f>.temp<i>"` on the producing result and on the
    consuming argument. `jamba-compile` turns each call into a step of the
    artifact's schedule and each temp into a planned buffer (reused by
    liveness).

    Before:

    ```mlir
    func.func @decode(%ids {jamba.input = "ids"}, %emb {jamba.weight = "model.embed_tokens.weight"},
                      %n0 {jamba.weight = "model.layers.0.input_layernorm.weight"}, ...) -> ... {
      %h = jamba.embedding %emb, %ids ...
      %x = jamba.rms_norm %h, %n0 ...
      ...
    }
    ```

    After:

    ```mlir
    func.func private @decode__embed(%ids, %emb) -> (tensor<?x1x64xf32> {jamba.temp = "decode.temp0"})
    func.func private @decode__layer0(%h {jamba.temp = "decode.temp0"}, %n0, ...) -> ...
    func.func @decode(...) -> ... {
      %h = call @decode__embed(%ids, %emb) : ...
      %h1 = call @decode__layer0(%h, %n0, ...) : ...
      ...
    }
    ```
  }];
  let options = [
    Option<"numLayers", "num-layers", "int64_t", /*default=*/"0",
           "Number of layers (0: one more than the largest layer index "
           "an argument names)">,
  ];
  let dependentDialects = ["::mlir::func::FuncDialect"];
}

def JambaGreedyIdsPass : Pass<"jamba-greedy-ids", "ModuleOp"> {
  let summary = "Compute each row's greedy id where the logits are made";
  let description = [{
    Every public function with a `jamba.output = "logits"` result (the
    entry points `jamba-import` makes) gets one more result, `jamba.output =
    "greedy_ids"`: `jamba.argmax` of the logits, an i32 per row and
    position (-1 where the row holds a NaN or only -inf). The logits stay
    a result. A
    greedy decode step then needs only the ids, 4 bytes per sequence,
    where it read a vocabulary's logits per sequence back from the device
    and scanned them on the host (docs/Runtime.md, "Greedy ids on the
    device"). `jamba-split-stages` puts the argmax in the head stage;
    `jamba-compile --greedy-ids` runs this pass (the default for CUDA).
    A function that already has the result is left as it is.

    Before:

    ```mlir
    func.func @decode(...) -> (tensor<?x1x128xf32> {jamba.output = "logits"}, ...) {
      %logits = jamba.lm_head %h, %w : ... -> tensor<?x1x128xf32>
      return %logits, ...
    }
    ```

    After:

    ```mlir
    func.func @decode(...) -> (tensor<?x1x128xf32> {jamba.output = "logits"}, ...,
                               tensor<?x1xi32> {jamba.output = "greedy_ids"}) {
      %logits = jamba.lm_head %h, %w : ... -> tensor<?x1x128xf32>
      %ids = jamba.argmax %logits : tensor<?x1x128xf32> -> tensor<?x1xi32>
      return %logits, ..., %ids
    }
    ```
  }];
  let dependentDialects = ["::mlir::jamba::JambaDialect",
                           "::mlir::func::FuncDialect"];
}

def JambaShardPass : Pass<"jamba-shard", "ModuleOp"> {
  let summary = "Tensor- and expert-parallel sharding of the layer-level "
                "model (SPEC 1.9)";
  let description = [{
    Rewrites the entry points for one of `tensor-parallel` ranks: every
    sharded weight argument takes its per-rank shape and a `jamba.shard =
    {modes = [...], shape = [...]}` recipe (its checkpoint shape; per
    dimension "" whole, "tp" block r of tp, "halves" block r of each half,
    "kv" kv-head rows, replicated when kv heads < tp, "tp0" whole on the
    first rank of each tensor-parallel group and zeros on the others: the
    Mamba out_proj bias, which the all-reduce then adds once); states take d_inner /
    tp channels or the rank's kv heads; attention gets its local head
    counts; Mamba mixers get `x_proj_all_reduce`; and the outputs of the
    attention, Mamba, MLP and MoE layers are summed over the ranks with
    `jamba.all_reduce`. The router, the norms, the embedding and the LM head
    are replicated. ExpertsInt8 scales keep the unsharded quantization
    (split with the gate/up rows, whole for down), so the ranks compute the
    unsharded int8 model exactly. The module gets
    `jamba.tensor_parallel = tp`; `jamba-compile --tensor-parallel` slices
    the weights per rank by the recipes.

    On an ExpertsInt8 model it runs after `jamba-quantize-experts` and
    before the decomposition (`importModelForCheckpoint` orders them so):
    the int8 weights and their `_scale`s are sharded like the float weights
    and `jamba.dequant` takes the local shapes.

    With `expert-parallel = ep` the ranks are tp x ep, rank r = e * tp + t:
    the experts are split over the ep groups (mode "ep": each rank holds
    E / ep experts, each split by tp within its group), a per-rank weight
    `jamba.rank.expert_offset` ([1] i64, written by jamba-compile) tells the
    MoE layers which experts they hold (`expert_offset`: a slot routed to
    another group's expert contributes nothing), the MoE outputs are summed
    over all ranks, and the mixers and dense MLPs, whole on every group,
    are summed over their tensor-parallel group only (`group_size = tp` on
    the all-reduces and on `x_proj_all_reduce`).

    Refused with a diagnostic: heads not divisible by tp, kv heads and tp
    neither dividing the other, experts not divisible by ep (or ep > 1
    without MoE layers), a dimension that does not split evenly.
  }];
  let options = [
    Option<"tensorParallel", "tensor-parallel", "int64_t", /*default=*/"1",
           "Ranks sharing each layer (tensor parallelism)">,
    Option<"expertParallel", "expert-parallel", "int64_t", /*default=*/"1",
           "Ranks sharing the experts (only 1 today)">,
  ];
  let dependentDialects = ["::mlir::jamba::JambaDialect"];
}

#endif // JAMBA_TRANSFORMS_PASSES_TD

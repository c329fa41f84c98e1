//===- Shard.cpp - The jamba-shard pass -----------------------------------===//
//
// Part of jamba-mlir. Tensor-parallel sharding of the layer-level model
// (SPEC 1.9): each rank's module has the same code over its share of every
// weight and state; the partial sums of the row-parallel projections are
// joined by `jamba.all_reduce`.
//
//   attention   q column-parallel by heads, k/v by kv heads (replicated when
//               there are fewer kv heads than ranks), o row-parallel;
//               all-reduce of the output
//   Mamba       in_proj column-parallel over d_inner (x and z halves alike),
//               conv1d, dt_proj, A_log, D by channel, x_proj row-parallel
//               (all-reduce before the dt/B/C norms: x_proj_all_reduce),
//               out_proj row-parallel; all-reduce of the output
//   MLP, MoE    gate/up by the intermediate width (each expert's), down
//               row-parallel; all-reduce of the output; the router, the
//               norms, the embedding and the LM head are replicated
//   ExpertsInt8 scales follow their rows: split with gate/up, whole for
//               down (the scales of the unsharded quantization: the shards
//               compute exactly the unsharded int8 model)
//
// Each weight argument gets `jamba.shard = {modes = [...], shape = [...]}`:
// its checkpoint shape and, per dimension, "" (whole), "tp" (rank r takes
// block r of tp), "halves" (block r of each half) or "kv" (kv-head rows:
// block r when kv_heads >= tp, else the kv head r / (tp / kv_heads)); the
// module gets `jamba.tensor_parallel = tp`. jamba-compile slices the
// checkpoint accordingly into each rank's weights files.
//
//===----------------------------------------------------------------------===//

#include "jamba/Transforms/Passes.h"

#include "jamba/Dialect/Jamba/IR/JambaDialect.h"
#include "jamba/Dialect/Jamba/IR/JambaOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"

namespace mlir::jamba {
#define GEN_PASS_DEF_JAMBASHARDPASS
#include "jamba/Transforms/Passes.h.inc"
} // namespace mlir::jamba

using namespace mlir;
using namespace mlir::jamba;

namespace {

/// The per-dimension modes of a checkpoint tensor, by name (its
/// ExpertsInt8 `_scale` drops the weight's last dimension): "tp" split over
/// the tensor-parallel ranks, "ep" over the expert groups, "kv" by kv head,
/// "halves" each half split over "tp", "tp0" whole on the first rank of each
/// tensor-parallel group and zeros on the others, "" whole.
SmallVector<StringRef> modesFor(StringRef name) {
  bool scale = name.consume_back(kScaleSuffix);
  auto drop = [&](SmallVector<StringRef> m) {
    if (scale)
      m.pop_back();
    return m;
  };
  if (name.ends_with("self_attn.q_proj.weight"))
    return drop({"tp", ""});
  if (name.ends_with("self_attn.k_proj.weight") ||
      name.ends_with("self_attn.v_proj.weight"))
    return drop({"kv", ""});
  if (name.ends_with("self_attn.o_proj.weight"))
    return drop({"", "tp"});
  if (name.ends_with("mamba.in_proj.weight"))
    return drop({"halves", ""});
  if (name.ends_with("mamba.in_proj.bias"))
    return {"halves"};
  if (name.ends_with("mamba.conv1d.weight"))
    return {"tp", "", ""};
  if (name.ends_with("mamba.conv1d.bias") || name.ends_with("mamba.D") ||
      name.ends_with("mamba.dt_proj.bias"))
    return {"tp"};
  if (name.ends_with("mamba.x_proj.weight") ||
      name.ends_with("mamba.out_proj.weight"))
    return drop({"", "tp"});
  if (name.ends_with("mamba.dt_proj.weight") || name.ends_with("mamba.A_log"))
    return drop({"tp", ""});
  // The bias of a row-parallel GEMM must be added once to the sum over the
  // group, not by every rank: rank 0 of the group adds it.
  if (name.ends_with("mamba.out_proj.bias"))
    return {"tp0"};
  bool expert = name.contains(".experts.");
  if (name.ends_with("gate_proj.weight") || name.ends_with("up_proj.weight"))
    return drop(expert ? SmallVector<StringRef>{"ep", "tp", ""}
                       : SmallVector<StringRef>{"tp", ""});
  if (name.ends_with("down_proj.weight"))
    return drop(expert ? SmallVector<StringRef>{"ep", "", "tp"}
                       : SmallVector<StringRef>{"", "tp"});
  return {}; // replicated
}

struct JambaShardPass : jamba::impl::JambaShardPassBase<JambaShardPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (tensorParallel < 1) {
      mlir::emitError(module.getLoc())
          << "jamba-shard: tensor-parallel must be >= 1, got "
          << int64_t(tensorParallel);
      return signalPassFailure();
    }
    if (expertParallel < 1) {
      mlir::emitError(module.getLoc())
          << "jamba-shard: expert-parallel must be >= 1, got "
          << int64_t(expertParallel);
      return signalPassFailure();
    }
    if (tensorParallel == 1 && expertParallel == 1)
      return;
    // A second sharding would split the local shapes again and record them
    // as the checkpoint's.
    if (module->hasAttr("jamba.tensor_parallel") ||
        module->hasAttr("jamba.expert_parallel")) {
      mlir::emitError(module.getLoc())
          << "jamba-shard: the module is already sharded (it "
             "has jamba.tensor_parallel/expert_parallel)";
      return signalPassFailure();
    }
    for (func::FuncOp func : module.getOps<func::FuncOp>())
      if (!func.isExternal() && failed(shard(func)))
        return signalPassFailure();
    auto i64 = IntegerType::get(&getContext(), 64);
    module->setAttr("jamba.tensor_parallel",
                    IntegerAttr::get(i64, tensorParallel));
    module->setAttr("jamba.expert_parallel",
                    IntegerAttr::get(i64, expertParallel));
  }

  LogicalResult shard(func::FuncOp func);
};

/// `type` as the IR prints it, for messages.
std::string typeName(Type type) {
  std::string text;
  llvm::raw_string_ostream os(text);
  type.print(os);
  return text;
}

LogicalResult JambaShardPass::shard(func::FuncOp func) {
  const int64_t tp = tensorParallel, ep = expertParallel;
  Builder b(func.getContext());
  auto fail = [&](Operation *op, const Twine &message) {
    return op->emitError() << "jamba-shard: " << message;
  };

  // The model's sizes, from its ops: every layer must agree (one recipe
  // shards all of them).
  int64_t heads = 0, kvHeads = 0, experts = 0;
  Operation *disagreeing = nullptr;
  std::string why;
  func.walk([&](AttentionOp op) {
    const int64_t opHeads = op.getNumHeads(), opKvHeads = op.getNumKvHeads();
    if (heads && (heads != opHeads || kvHeads != opKvHeads) && !disagreeing) {
      disagreeing = op;
      why = "attention layers with different head counts (" +
            std::to_string(heads) + "/" + std::to_string(kvHeads) + " and " +
            std::to_string(opHeads) + "/" + std::to_string(opKvHeads) + ")";
    }
    heads = opHeads;
    kvHeads = opKvHeads;
  });
  func.walk([&](MoEOp op) {
    int64_t n = cast<ShapedType>(op.getRouterWeight().getType()).getDimSize(0);
    if (!disagreeing &&
        (ShapedType::isDynamic(n) || (experts && n != experts))) {
      disagreeing = op;
      why = ShapedType::isDynamic(n)
                ? std::string("a router with a dynamic expert count")
                : "MoE layers with different expert counts (" +
                      std::to_string(experts) + " and " + std::to_string(n) +
                      ")";
    }
    if (op.getExpertOffset() && !disagreeing) {
      disagreeing = op;
      why = "a MoE layer that is already expert-parallel (it has an "
            "expert_offset)";
    }
    experts = n;
  });
  if (disagreeing)
    return fail(disagreeing, "cannot shard " + why);
  if (ep > 1 && !experts)
    return fail(func, "expert-parallel " + Twine(ep) +
                          " needs mixture-of-experts layers");
  if (ep > 1 && experts % ep)
    return fail(func, "expert-parallel " + Twine(ep) +
                          " does not divide num_experts " + Twine(experts));
  if (heads && heads % tp)
    return fail(func, "tensor-parallel " + Twine(tp) +
                          " does not divide num_attention_heads " +
                          Twine(heads));
  if (kvHeads && kvHeads % tp && tp % kvHeads)
    return fail(func, "tensor-parallel " + Twine(tp) +
                          " and num_key_value_heads " + Twine(kvHeads) +
                          ": one must divide the other");
  int64_t localKv = kvHeads >= tp ? kvHeads / tp : 1;

  // Weight arguments: the local shape and the slicing recipe.
  SmallVector<Type> argTypes(func.getArgumentTypes());
  for (unsigned i = 0; i < func.getNumArguments(); ++i) {
    auto name = func.getArgAttrOfType<StringAttr>(i, kWeightAttrName);
    if (!name)
      continue;
    SmallVector<StringRef> modes = modesFor(name.getValue());
    if (modes.empty())
      continue;
    auto type = dyn_cast<RankedTensorType>(argTypes[i]);
    if (!type)
      return fail(func, "'" + name.getValue() + "' is a " +
                            typeName(argTypes[i]) +
                            ", expected a ranked tensor");
    if (int64_t(modes.size()) != type.getRank())
      return fail(func, "'" + name.getValue() + "' has rank " +
                            Twine(type.getRank()) + ", expected " +
                            Twine(modes.size()));
    SmallVector<int64_t> local(type.getShape());
    for (auto [d, mode] : llvm::enumerate(modes)) {
      if (mode.empty() || mode == "tp0")
        continue;
      int64_t size = local[d];
      if (ShapedType::isDynamic(size))
        return fail(func, "'" + name.getValue() + "' dimension " + Twine(d) +
                              " is dynamic; sharding splits static sizes");
      if (mode == "kv") {
        if (!kvHeads || size % kvHeads)
          return fail(func, "'" + name.getValue() +
                                "': kv rows without an attention layer");
        local[d] = localKv * (size / kvHeads);
        continue;
      }
      int64_t parts = mode == "halves" ? 2 * tp : mode == "ep" ? ep : tp;
      if (ShapedType::isDynamic(size) || size % parts)
        return fail(func, "'" + name.getValue() + "' dimension " + Twine(d) +
                              " (" + Twine(size) + ") does not split into " +
                              Twine(parts) + " equal parts");
      local[d] = size / (mode == "ep" ? ep : tp);
    }
    SmallVector<Attribute> modeAttrs;
    for (StringRef mode : modes)
      modeAttrs.push_back(b.getStringAttr(mode));
    SmallVector<NamedAttribute> spec{
        b.getNamedAttr("modes", b.getArrayAttr(modeAttrs)),
        b.getNamedAttr("shape", b.getDenseI64ArrayAttr(type.getShape()))};
    if (llvm::is_contained(modes, "kv"))
      spec.push_back(b.getNamedAttr("kv_heads", b.getI64IntegerAttr(kvHeads)));
    func.setArgAttr(i, "jamba.shard", b.getDictionaryAttr(spec));
    argTypes[i] = RankedTensorType::get(local, type.getElementType());
  }

  // State arguments: d_inner or kv heads per rank.
  auto localState = [&](StringRef state,
                        RankedTensorType type) -> FailureOr<RankedTensorType> {
    SmallVector<int64_t> shape(type.getShape());
    if (shape.size() < 2)
      return failure();
    if (state.ends_with("k_cache") || state.ends_with("v_cache"))
      shape[1] = localKv;
    else if (ShapedType::isDynamic(shape[1]) || shape[1] % tp)
      return failure();
    else
      shape[1] /= tp;
    return RankedTensorType::get(shape, type.getElementType());
  };
  for (unsigned i = 0; i < func.getNumArguments(); ++i)
    if (auto state = func.getArgAttrOfType<StringAttr>(i, kStateAttrName)) {
      auto type = dyn_cast<RankedTensorType>(argTypes[i]);
      if (!type)
        return fail(func, "state '" + state.getValue() + "' is a " +
                              typeName(argTypes[i]) +
                              ", expected a ranked tensor");
      auto local = localState(state.getValue(), type);
      if (failed(local))
        return fail(func, "state '" + state.getValue() +
                              "' does not split over " + Twine(tp) + " ranks");
      argTypes[i] = *local;
    }
  for (auto [arg, type] : llvm::zip(func.getArguments(), argTypes))
    arg.setType(type);

  // Expert parallelism: the rank's first expert, a per-rank weight every
  // MoE layer reads (jamba-compile writes it into each rank's file).
  Value expertOffset;
  if (ep > 1) {
    unsigned index = func.getNumArguments();
    SmallVector<NamedAttribute> spec{
        b.getNamedAttr("modes",
                       b.getArrayAttr({b.getStringAttr("expert_offset")})),
        b.getNamedAttr("shape", b.getDenseI64ArrayAttr({1})),
        b.getNamedAttr("experts_per_rank", b.getI64IntegerAttr(experts / ep))};
    auto type = RankedTensorType::get({1}, b.getI64Type());
    if (failed(func.insertArgument(
            index, type,
            b.getDictionaryAttr(
                {b.getNamedAttr(kWeightAttrName,
                                b.getStringAttr(kExpertOffsetWeightName)),
                 b.getNamedAttr("jamba.shard", b.getDictionaryAttr(spec))}),
            func.getLoc())))
      return failure();
    argTypes.push_back(type);
    expertOffset = func.getArgument(index);
  }
  // The sums: a layer split by tp sums over its tensor-parallel group (all
  // ranks when there is no expert parallelism); a MoE layer whose experts
  // are split by ep (and tp) sums over all ranks.
  const bool mixerSum = tp > 1;
  const int64_t mixerGroup = ep > 1 ? tp : 0;

  // Ops: local head counts and state types, the all-reduces.
  WalkResult walk = func.walk([&](Operation *op) -> WalkResult {
    OpBuilder after(op->getContext());
    after.setInsertionPointAfter(op);
    auto allReduce = [&](Value v, int64_t group) {
      auto sum =
          AllReduceOp::create(after, op->getLoc(), v.getType(), v, group);
      v.replaceAllUsesExcept(sum.getResult(), sum);
    };
    if (auto attention = dyn_cast<AttentionOp>(op)) {
      if (!mixerSum)
        return WalkResult::advance();
      attention.setNumHeads(heads / tp);
      attention.setNumKvHeads(localKv);
      attention.getNewKCache().setType(attention.getKCache().getType());
      attention.getNewVCache().setType(attention.getVCache().getType());
      allReduce(attention.getResult(), mixerGroup);
    } else if (auto mamba = dyn_cast<MambaMixerOp>(op)) {
      if (!mixerSum)
        return WalkResult::advance();
      // The x_proj sum is over the same group as the mixer's.
      mamba.setXProjAllReduce(mixerGroup);
      mamba.getNewConvState().setType(mamba.getConvState().getType());
      mamba.getNewSsmState().setType(mamba.getSsmState().getType());
      allReduce(mamba.getResult(), mixerGroup);
    } else if (auto dequant = dyn_cast<DequantOp>(op)) {
      // ExpertsInt8 (quantized before sharding): the dequantized weight
      // has its int8 operand's local shape.
      auto in = cast<RankedTensorType>(dequant.getInput().getType());
      dequant.getResult().setType(RankedTensorType::get(
          in.getShape(),
          cast<RankedTensorType>(dequant.getType()).getElementType()));
    } else if (isa<MLPOp>(op)) {
      if (mixerSum)
        allReduce(op->getResult(0), mixerGroup);
    } else if (auto moe = dyn_cast<MoEOp>(op)) {
      if (expertOffset)
        moe.getExpertOffsetMutable().assign(expertOffset);
      allReduce(moe.getResult(), /*group=*/0);
    } else if (auto ret = dyn_cast<func::ReturnOp>(op)) {
      func.setFunctionType(b.getFunctionType(argTypes, ret.getOperandTypes()));
    }
    return WalkResult::advance();
  });
  if (walk.wasInterrupted())
    return failure();
  return success();
}

} // namespace

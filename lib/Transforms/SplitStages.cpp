//===- SplitStages.cpp - The jamba-split-stages pass ----------------------===//
//
// Part of jamba-mlir. Splits each entry point into stage functions (the
// embedding, one per layer, the head) and leaves the entry point as the
// host schedule: a sequence of `func.call`s whose intermediate values are
// the buffers passed between steps.
//
// An op's stage is the largest stage among its operands: a weight or state
// argument gives the layer in its name (`model.layers.N.` / `layers.N.`),
// `model.embed_tokens.` the embedding stage (-1), any other weight the head
// stage (num layers); inputs give none. Ops whose operands give no stage
// (constants, sizes of the inputs) are pure and are cloned into every stage
// that uses them.
//
//===----------------------------------------------------------------------===//

#include "jamba/Transforms/Passes.h"

#include "jamba/Dialect/Jamba/IR/JambaDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/SetVector.h"

#include <limits>
#include <map>

namespace mlir::jamba {
#define GEN_PASS_DEF_JAMBASPLITSTAGESPASS
#include "jamba/Transforms/Passes.h.inc"
} // namespace mlir::jamba

using namespace mlir;
using namespace mlir::jamba;

namespace {

constexpr int64_t kNoStage = std::numeric_limits<int64_t>::min();

/// The layer index in `name` after `prefix` ("model.layers.12.x" -> 12).
/// Layer indices above this are refused (no model has a million layers; it
/// keeps `layer + 1` and the stage numbers far from overflow).
constexpr uint64_t kMaxLayerIndex = 1 << 20;

std::optional<int64_t> layerOf(StringRef name, StringRef prefix) {
  if (!name.consume_front(prefix))
    return std::nullopt;
  uint64_t layer;
  if (name.consumeInteger(10, layer) || !name.starts_with(".") ||
      layer > kMaxLayerIndex)
    return std::nullopt;
  return static_cast<int64_t>(layer);
}

/// Whether `v` is defined inside `op`'s regions.
bool definedInside(Operation *op, Value v) {
  return op->isAncestor(v.getParentRegion()->getParentOp());
}

class StageSplitter {
public:
  StageSplitter(func::FuncOp func, int64_t numLayers)
      : func(func), numLayers(numLayers) {}

  LogicalResult run();

private:
  int64_t argStage(BlockArgument arg) {
    unsigned i = arg.getArgNumber();
    if (auto w = func.getArgAttrOfType<StringAttr>(i, kWeightAttrName)) {
      // Per-rank data every MoE layer reads: no stage of its own.
      if (w.getValue() == kExpertOffsetWeightName)
        return kNoStage;
      if (auto layer = layerOf(w.getValue(), "model.layers."))
        return *layer;
      if (w.getValue().starts_with("model.embed_tokens."))
        return -1;
      return numLayers;
    }
    if (auto s = func.getArgAttrOfType<StringAttr>(i, kStateAttrName))
      if (auto layer = layerOf(s.getValue(), "layers."))
        return *layer;
    return kNoStage;
  }

  int64_t valueStage(Value v) {
    if (auto arg = dyn_cast<BlockArgument>(v))
      return arg.getOwner() == &func.getBody().front() ? argStage(arg)
                                                       : kNoStage;
    auto it = opStage.find(v.getDefiningOp());
    return it == opStage.end() ? kNoStage : it->second;
  }

  std::string stageName(int64_t stage) {
    if (stage < 0)
      return "embed";
    if (stage >= numLayers)
      return "head";
    return "layer" + std::to_string(stage);
  }

  /// The value `v` of the entry point as seen inside the stage being built:
  /// a stage argument, or a clone of its stage-less definition.
  Value localValue(Value v, OpBuilder &b, IRMapping &map,
                   llvm::SetVector<Value> &inputs, Block *body);

  func::FuncOp func;
  int64_t numLayers;
  llvm::DenseMap<Operation *, int64_t> opStage;
};

Value StageSplitter::localValue(Value v, OpBuilder &b, IRMapping &map,
                                llvm::SetVector<Value> &inputs, Block *body) {
  if (Value mapped = map.lookupOrNull(v))
    return mapped;
  Operation *def = v.getDefiningOp();
  if (def && valueStage(v) == kNoStage) {
    // Stage-less and pure: rebuild it here from its own operands.
    for (Value operand : def->getOperands())
      localValue(operand, b, map, inputs, body);
    Operation *clone = b.clone(*def, map);
    for (auto [from, to] : llvm::zip(def->getResults(), clone->getResults()))
      map.map(from, to);
    return map.lookup(v);
  }
  inputs.insert(v);
  Value arg = body->addArgument(v.getType(), v.getLoc());
  map.map(v, arg);
  return arg;
}

LogicalResult StageSplitter::run() {
  if (!func.getBody().hasOneBlock())
    return func.emitOpError()
           << "jamba-split-stages: an entry point must be one block, this one "
              "has "
           << func.getBody().getBlocks().size();
  Block &entry = func.getBody().front();
  auto ret = dyn_cast<func::ReturnOp>(entry.getTerminator());
  if (!ret)
    return func.emitOpError()
           << "jamba-split-stages: an entry point must end in func.return";

  // Stages, in program order (an op's operands come first).
  std::map<int64_t, SmallVector<Operation *>> stages;
  for (Operation &op : entry.without_terminator()) {
    int64_t stage = kNoStage;
    op.walk([&](Operation *nested) {
      for (Value operand : nested->getOperands())
        if (!definedInside(&op, operand))
          stage = std::max(stage, valueStage(operand));
    });
    if (stage == kNoStage) {
      if (!isPure(&op) || op.getNumRegions() != 0)
        return op.emitOpError()
               << "jamba-split-stages: has no stage (no weight, state or "
                  "staged value among its operands) and is not pure";
      continue;
    }
    opStage[&op] = stage;
    stages[stage].push_back(&op);
  }

  // Uses of each staged value outside its stage.
  OpBuilder b(func);
  ModuleOp module = func->getParentOfType<ModuleOp>();
  SymbolTable symbols(module);
  llvm::DenseMap<Value, Value> replacement; // entry value -> call result
  OpBuilder schedule(ret);
  unsigned tempCounter = 0;
  for (auto &[stage, ops] : stages) {
    llvm::SmallPtrSet<Operation *, 32> inStage(ops.begin(), ops.end());
    // Results: values used by a later stage or returned.
    SmallVector<Value> outputs;
    for (Operation *op : ops)
      for (Value result : op->getResults())
        if (llvm::any_of(result.getUsers(), [&](Operation *user) {
              Operation *top = user;
              while (top->getBlock() != &entry)
                top = top->getParentOp();
              return !inStage.contains(top);
            }))
          outputs.push_back(result);

    // The stage function, built with a placeholder type and fixed after.
    std::string name = func.getName().str() + "__" + stageName(stage);
    auto stageFunc =
        func::FuncOp::create(b, func.getLoc(), name, b.getFunctionType({}, {}));
    stageFunc.setPrivate();
    symbols.insert(stageFunc);
    Block *body = stageFunc.addEntryBlock();
    OpBuilder sb = OpBuilder::atBlockEnd(body);
    IRMapping map;
    llvm::SetVector<Value> inputs;
    for (Operation *op : ops) {
      op->walk([&](Operation *nested) {
        for (Value operand : nested->getOperands())
          if (!definedInside(op, operand))
            localValue(operand, sb, map, inputs, body);
      });
      sb.clone(*op, map);
    }
    SmallVector<Value> returned;
    for (Value out : outputs)
      returned.push_back(map.lookup(out));
    func::ReturnOp::create(sb, func.getLoc(), returned);
    stageFunc.setFunctionType(
        b.getFunctionType(body->getArgumentTypes(), TypeRange(returned)));

    // Attributes: arguments of the entry point keep theirs; values passed
    // between stages are temporaries; results the entry point returns keep
    // its result attributes.
    llvm::DenseMap<Value, std::string> tempNames;
    auto tempName = [&](Value v) {
      auto it = tempNames.find(v);
      if (it != tempNames.end())
        return it->second;
      return tempNames[v] =
                 func.getName().str() + ".temp" + std::to_string(tempCounter++);
    };
    for (auto [i, v] : llvm::enumerate(inputs)) {
      if (auto arg = dyn_cast<BlockArgument>(v)) {
        stageFunc.setArgAttrs(i, func.getArgAttrDict(arg.getArgNumber()));
        continue;
      }
      Value call = replacement.lookup(v);
      auto callOp = cast<func::CallOp>(call.getDefiningOp());
      auto producer = symbols.lookup<func::FuncOp>(callOp.getCallee());
      stageFunc.setArgAttrs(i, producer.getResultAttrDict(
                                   cast<OpResult>(call).getResultNumber()));
    }
    for (auto [r, out] : llvm::enumerate(outputs)) {
      std::optional<unsigned> returnedAt;
      for (OpOperand &use : out.getUses())
        if (use.getOwner() == ret.getOperation())
          returnedAt = use.getOperandNumber();
      if (returnedAt) {
        stageFunc.setResultAttrs(r, func.getResultAttrDict(*returnedAt));
        continue;
      }
      stageFunc.setResultAttr(r, kTempAttrName, b.getStringAttr(tempName(out)));
    }

    // The call in the schedule.
    SmallVector<Value> callArgs;
    for (Value v : inputs)
      callArgs.push_back(isa<BlockArgument>(v) ? v : replacement.lookup(v));
    auto call =
        func::CallOp::create(schedule, func.getLoc(), stageFunc, callArgs);
    for (auto [out, result] : llvm::zip(outputs, call.getResults()))
      replacement[out] = result;
  }

  // The entry point's body becomes the schedule.
  for (OpOperand &operand : ret->getOpOperands())
    if (Value r = replacement.lookup(operand.get()))
      operand.set(r);
  SmallVector<Operation *> dead;
  for (Operation &op : entry.without_terminator())
    if (!isa<func::CallOp>(op))
      dead.push_back(&op);
  for (Operation *op : llvm::reverse(dead)) {
    if (!op->use_empty()) {
      return op->emitOpError()
             << "jamba-split-stages: still used after the split";
    }
    op->erase();
  }
  return success();
}

struct JambaSplitStagesPass
    : jamba::impl::JambaSplitStagesPassBase<JambaSplitStagesPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<func::FuncOp> entries;
    for (func::FuncOp func : module.getOps<func::FuncOp>())
      if (!func.isExternal() && func.isPublic() &&
          !func.getName().contains("__"))
        entries.push_back(func);
    if (numLayers < 0) {
      mlir::emitError(module.getLoc())
          << "jamba-split-stages: num-layers must be 0 (from "
             "the arguments) or positive, got "
          << static_cast<int64_t>(numLayers);
      return signalPassFailure();
    }
    for (func::FuncOp func : entries) {
      // Splitting twice would make stages of the stage calls.
      for (func::FuncOp other : module.getOps<func::FuncOp>())
        if (other.getName().starts_with((func.getName() + "__").str())) {
          func.emitOpError() << "jamba-split-stages: already split (its stage "
                             << "@" << other.getName() << " exists)";
          return signalPassFailure();
        }
      // Largest layer index named by an argument, plus one.
      int64_t named = 0;
      for (unsigned i = 0; i < func.getNumArguments(); ++i)
        for (StringRef key : {kWeightAttrName, kStateAttrName})
          if (auto name = func.getArgAttrOfType<StringAttr>(i, key))
            for (StringRef prefix : {"model.layers.", "layers."}) {
              if (!name.getValue().starts_with(prefix))
                continue;
              std::optional<int64_t> layer = layerOf(name.getValue(), prefix);
              if (!layer) {
                func.emitOpError()
                    << "jamba-split-stages: argument " << i << " ('"
                    << name.getValue() << "') does not name a layer index in "
                    << "[0, " << kMaxLayerIndex << "] after '" << prefix << "'";
                return signalPassFailure();
              }
              named = std::max(named, *layer + 1);
            }
      // Fewer layers than the arguments name would put the later layers'
      // ops into the head stage.
      if (numLayers > 0 && numLayers < named) {
        func.emitError() << "jamba-split-stages: num-layers "
                         << static_cast<int64_t>(numLayers)
                         << " is less than the " << named
                         << " layers the arguments name";
        return signalPassFailure();
      }
      if (failed(StageSplitter(func, numLayers > 0 ? numLayers : named).run()))
        return signalPassFailure();
    }
  }
};

} // namespace

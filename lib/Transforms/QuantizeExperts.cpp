//===- QuantizeExperts.cpp - ExpertsInt8 on the entry points' weights -----===//
//
// Part of jamba-mlir.
//
//===----------------------------------------------------------------------===//

#include "jamba/Dialect/Jamba/IR/JambaOps.h"
#include "jamba/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/SetVector.h"

namespace mlir::jamba {
#define GEN_PASS_DEF_JAMBAQUANTIZEEXPERTSPASS
#include "jamba/Transforms/Passes.h.inc"
} // namespace mlir::jamba

using namespace mlir;
using namespace mlir::jamba;

namespace {

/// Collects the weight operands that ExpertsInt8 quantizes.
void collectQuantizableWeights(func::FuncOp func, bool denseMlp,
                               llvm::SetVector<Value> &weights) {
  func.walk([&](Operation *op) {
    if (auto moe = dyn_cast<MoEOp>(op)) {
      weights.insert(moe.getGateWeight());
      weights.insert(moe.getUpWeight());
      weights.insert(moe.getDownWeight());
    } else if (auto gemm = dyn_cast<ExpertGemmOp>(op)) {
      weights.insert(gemm.getWeight());
    } else if (auto mlp = dyn_cast<MLPOp>(op); mlp && denseMlp) {
      weights.insert(mlp.getGateWeight());
      weights.insert(mlp.getUpWeight());
      weights.insert(mlp.getDownWeight());
    }
  });
}

/// Replaces the float weight argument `arg` of `func` by an int8 argument
/// and a scale argument inserted right after it, and rebuilds the float
/// weight with a jamba.dequant at the entry. Returns false (and changes
/// nothing) when `arg` is not a named float weight.
bool quantizeArgument(func::FuncOp func, BlockArgument arg) {
  unsigned index = arg.getArgNumber();
  auto name = func.getArgAttrOfType<StringAttr>(index, kWeightAttrName);
  auto type = dyn_cast<RankedTensorType>(arg.getType());
  if (!name || !type || !isa<FloatType>(type.getElementType()) ||
      type.getRank() < 2)
    return false;

  MLIRContext *context = func.getContext();
  OpBuilder builder(context);
  auto int8Type = type.clone(builder.getI8Type());
  auto scaleType =
      RankedTensorType::get(type.getShape().drop_back(), builder.getF32Type());
  // The scale argument follows its weight and carries `<name>_scale`.
  NamedAttribute scaleName = builder.getNamedAttr(
      kWeightAttrName,
      builder.getStringAttr(name.getValue() + kScaleSuffix.str()));
  if (failed(func.insertArgument(index + 1, scaleType,
                                 builder.getDictionaryAttr(scaleName),
                                 arg.getLoc())))
    return false;
  Block &entry = func.getBody().front();
  arg.setType(int8Type);
  func.setFunctionType(FunctionType::get(context, entry.getArgumentTypes(),
                                         func.getResultTypes()));

  builder.setInsertionPointToStart(&entry);
  auto dequant = DequantOp::create(builder, arg.getLoc(), type, arg,
                                   entry.getArgument(index + 1));
  arg.replaceAllUsesExcept(dequant.getResult(), dequant);
  return true;
}

struct JambaQuantizeExpertsPass
    : jamba::impl::JambaQuantizeExpertsPassBase<JambaQuantizeExpertsPass> {
  using Base::Base;

  void runOnOperation() override {
    for (auto func : getOperation().getOps<func::FuncOp>()) {
      if (func.isExternal())
        continue;
      llvm::SetVector<Value> weights;
      collectQuantizableWeights(func, denseMlp, weights);
      // Only the entry point's own named arguments can be quantized: the
      // data behind them is what jamba-quantize transforms.
      SmallVector<BlockArgument> args;
      for (Value w : weights)
        if (auto arg = dyn_cast<BlockArgument>(w);
            arg && arg.getOwner() == &func.getBody().front())
          args.push_back(arg);
      // A called function's signature is its callers' too: they would
      // pass f32 weights and no scales.
      if (!args.empty()) {
        std::optional<SymbolTable::UseRange> uses =
            SymbolTable::getSymbolUses(func, getOperation());
        if (!uses || !uses->empty()) {
          func.emitOpError()
              << "jamba-quantize-experts: its expert weights would become "
                 "int8 + scales, but it is called; quantize the entry "
                 "points (functions nothing calls)";
          return signalPassFailure();
        }
      }
      // Insert from the last argument backwards so indices stay valid.
      llvm::sort(args, [](BlockArgument a, BlockArgument b) {
        return a.getArgNumber() > b.getArgNumber();
      });
      for (BlockArgument arg : args)
        quantizeArgument(func, arg);
    }
  }
};

} // namespace

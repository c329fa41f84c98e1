//===- GreedyIds.cpp - The jamba-greedy-ids pass --------------------------===//
//
// Part of jamba-mlir. Appends each entry point's greedy ids (jamba.argmax of
// its logits) as one more result, so that a greedy decode step reads ids
// back from the device instead of logits.
//
//===----------------------------------------------------------------------===//

#include "jamba/Dialect/Jamba/IR/JambaOps.h"
#include "jamba/Transforms/Passes.h"

#include "mlir/IR/Builders.h"

namespace mlir::jamba {
#define GEN_PASS_DEF_JAMBAGREEDYIDSPASS
#include "jamba/Transforms/Passes.h.inc"
} // namespace mlir::jamba

using namespace mlir;
using namespace mlir::jamba;

namespace {

/// The index of `func`'s result whose `jamba.output` is `name`, if any.
std::optional<unsigned> outputNamed(func::FuncOp func, StringRef name) {
  for (unsigned r = 0; r < func.getNumResults(); ++r)
    if (auto out = func.getResultAttrOfType<StringAttr>(r, kOutputAttrName);
        out && out.getValue() == name)
      return r;
  return std::nullopt;
}

LogicalResult addGreedyIds(func::FuncOp func) {
  std::optional<unsigned> logits = outputNamed(func, "logits");
  if (!logits || outputNamed(func, kGreedyIdsOutputName))
    return success();
  if (!func.getBody().hasOneBlock())
    return func.emitError() << "expected one block in a function with logits";
  auto ret = cast<func::ReturnOp>(func.getBody().front().getTerminator());
  Value value = ret.getOperand(*logits);
  auto type = dyn_cast<RankedTensorType>(value.getType());
  if (!type || type.getRank() < 1 ||
      ShapedType::isDynamic(type.getShape().back()))
    return func.emitError()
           << "expected the logits (result #" << *logits
           << ") to be a ranked tensor with a static last dimension, got "
           << value.getType();
  OpBuilder b(ret);
  auto idsType =
      RankedTensorType::get(type.getShape().drop_back(), b.getI32Type());
  Value ids = ArgmaxOp::create(b, ret.getLoc(), idsType, value);
  ret.getOperandsMutable().append(ids);
  unsigned index = func.getNumResults();
  if (failed(func.insertResult(
          index, idsType,
          b.getDictionaryAttr(b.getNamedAttr(
              kOutputAttrName, b.getStringAttr(kGreedyIdsOutputName))))))
    return failure();
  return success();
}

struct JambaGreedyIdsPass
    : jamba::impl::JambaGreedyIdsPassBase<JambaGreedyIdsPass> {
  void runOnOperation() override {
    for (auto func : getOperation().getOps<func::FuncOp>())
      if (func.isPublic() && !func.isExternal() && failed(addGreedyIds(func)))
        return signalPassFailure();
  }
};

} // namespace

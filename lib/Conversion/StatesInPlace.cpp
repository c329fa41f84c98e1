//===- StatesInPlace.cpp - The jamba-states-in-place pass -----------------===//
//
// Part of jamba-mlir. After bufferization, every entry-point result that is
// a state (`jamba.state = "layers.N.<kind>"` on the result and on an
// argument) becomes an update of the argument's buffer: the result is
// dropped from the function, and when bufferization did not already write
// the state in place (the KV caches usually are; the SSM state comes out of
// its kernel in a fresh buffer) a `linalg.copy` into the argument is added
// before the return, unless the kernels that wrote it may write over the
// old state (kStateOverOldAttr: the GPU kernels of the scan and the conv)
// and nothing after them touches the argument: they then write into it. Without
// this, the deallocation pipeline clones every returned argument (a public
// function does not own its arguments): a copy of the whole KV cache on every
// decode step.
//
//===----------------------------------------------------------------------===//

#include "jamba/Conversion/Passes.h"
#include "jamba/Dialect/Jamba/IR/JambaDialect.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Interfaces/ViewLikeInterface.h"
#include "llvm/ADT/BitVector.h"

namespace mlir::jamba {
#define GEN_PASS_DEF_JAMBASTATESINPLACEPASS
#include "jamba/Conversion/Passes.h.inc"
} // namespace mlir::jamba

using namespace mlir;
using namespace mlir::jamba;

namespace {

/// Maps each state name among `count` arguments or results (`what`) to its
/// position; a name given twice is an error naming both.
LogicalResult indexStates(func::FuncOp func, StringRef what, unsigned count,
                          llvm::function_ref<StringAttr(unsigned)> nameOf,
                          llvm::StringMap<unsigned> &index) {
  for (unsigned i = 0; i < count; ++i)
    if (StringAttr name = nameOf(i))
      if (auto [it, inserted] = index.try_emplace(name.getValue(), i);
          !inserted)
        return func.emitError()
               << "jamba-states-in-place: " << what << " #" << it->second
               << " and #" << i << " are both state '" << name.getValue()
               << "'";
  return success();
}

/// `v` without the memref.casts bufferization may put around it.
Value stripCasts(Value v) {
  while (auto cast = v.getDefiningOp<memref::CastOp>())
    v = cast.getSource();
  return v;
}

/// Every op that reads or writes `buffer` directly or through views and
/// casts, as its ancestor in `block`; failure when a user is outside it.
FailureOr<SmallVector<Operation *>> accessesIn(Block &block, Value buffer) {
  SmallVector<Operation *> result;
  SmallVector<Value> work{buffer};
  while (!work.empty()) {
    Value v = work.pop_back_val();
    for (Operation *user : v.getUsers()) {
      auto view = dyn_cast<ViewLikeOpInterface>(user);
      if (view && view.getViewSource() == v) {
        work.push_back(user->getResult(0));
        continue;
      }
      Operation *top = block.findAncestorOpInBlock(*user);
      if (!top)
        return failure();
      result.push_back(top);
    }
  }
  return result;
}

/// Whether the kernel writing `fresh` (a buffer marked kStateOverOldAttr)
/// may write into the state argument `arg` instead: the same type, the
/// first op touching `fresh` is a parallel loop of the function's block
/// (the marked kernel, whose own reads of the old state are safe by the
/// mark), and nothing touches `arg` after that loop (anything later would
/// see the new state); `fresh` is never freed (it would free the state).
bool mayWriteOver(memref::AllocOp fresh, Value arg, func::ReturnOp ret) {
  if (!fresh->hasAttr(kStateOverOldAttr) || fresh.getType() != arg.getType())
    return false;
  Block &body = *ret->getBlock();
  FailureOr<SmallVector<Operation *>> freshAccesses =
      accessesIn(body, fresh.getResult());
  FailureOr<SmallVector<Operation *>> argAccesses = accessesIn(body, arg);
  if (failed(freshAccesses) || failed(argAccesses))
    return false;
  Operation *first = nullptr;
  for (Operation *op : *freshAccesses) {
    if (isa<memref::DeallocOp>(op))
      return false;
    if (!first || op->isBeforeInBlock(first))
      first = op;
  }
  if (!first || !isa<scf::ParallelOp>(first))
    return false;
  return llvm::all_of(*argAccesses, [&](Operation *op) {
    return op == first || op->isBeforeInBlock(first);
  });
}

struct JambaStatesInPlacePass
    : jamba::impl::JambaStatesInPlacePassBase<JambaStatesInPlacePass> {
  using Base::Base;

  void runOnOperation() override {
    func::FuncOp func = getOperation();
    if (func.isExternal())
      return;
    // Each state is one argument and written back once: two results of one
    // state would both be copied over it, the last silently winning.
    llvm::StringMap<unsigned> stateArgs, stateResults;
    if (failed(indexStates(
            func, "arguments", func.getNumArguments(),
            [&](unsigned i) {
              return func.getArgAttrOfType<StringAttr>(i, kStateAttrName);
            },
            stateArgs)) ||
        failed(indexStates(
            func, "results", func.getNumResults(),
            [&](unsigned r) {
              return func.getResultAttrOfType<StringAttr>(r, kStateAttrName);
            },
            stateResults)))
      return signalPassFailure();

    auto returns = llvm::to_vector(func.getOps<func::ReturnOp>());
    if (returns.size() != 1) {
      func.emitError() << "jamba-states-in-place: expected one return";
      return signalPassFailure();
    }
    func::ReturnOp ret = returns.front();
    llvm::BitVector erase(func.getNumResults());
    for (unsigned r = 0; r < func.getNumResults(); ++r) {
      auto name = func.getResultAttrOfType<StringAttr>(r, kStateAttrName);
      if (!name)
        continue;
      auto it = stateArgs.find(name.getValue());
      if (it == stateArgs.end()) {
        func.emitError() << "jamba-states-in-place: result #" << r
                         << " is state '" << name.getValue()
                         << "' but no argument is";
        return signalPassFailure();
      }
      Value arg = func.getArgument(it->second);
      Value result = ret.getOperand(r);
      if (!isa<MemRefType>(arg.getType()) ||
          !isa<MemRefType>(result.getType())) {
        func.emitError() << "jamba-states-in-place: state '" << name.getValue()
                         << "' is not a buffer (run after bufferization)";
        return signalPassFailure();
      }
      // The new state is written over the old, so they are one shape.
      auto argShape = cast<MemRefType>(arg.getType()).getShape();
      auto resultShape = cast<MemRefType>(result.getType()).getShape();
      if (argShape.size() != resultShape.size() ||
          llvm::any_of(llvm::zip(argShape, resultShape), [](auto pair) {
            auto [a, b] = pair;
            return !ShapedType::isDynamic(a) && !ShapedType::isDynamic(b) &&
                   a != b;
          })) {
        func.emitError() << "jamba-states-in-place: state '" << name.getValue()
                         << "' is returned as " << result.getType()
                         << " but its argument is " << arg.getType();
        return signalPassFailure();
      }
      auto fresh = stripCasts(result).getDefiningOp<memref::AllocOp>();
      if (fresh && mayWriteOver(fresh, arg, ret)) {
        // The kernels write the new state over the old one.
        fresh.getResult().replaceAllUsesWith(arg);
        fresh.erase();
      } else if (stripCasts(result) != arg) {
        OpBuilder b(ret);
        linalg::CopyOp::create(b, ret.getLoc(), result, arg);
      }
      erase.set(r);
    }
    ret->eraseOperands(erase);
    if (failed(func.eraseResults(erase)))
      return signalPassFailure();
  }
};

} // namespace

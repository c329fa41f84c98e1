//===- CausalConv1d.cpp - jamba.causal_conv1d on GPUs ---------------------===//
//
// Part of jamba-mlir. The causal conv1d as a loop nest: see lowerCausalConv1d.
//
//===----------------------------------------------------------------------===//

#include "Kernels.h"

#include "../JambaToLinalg/LoweringUtils.h"
#include "KernelUtils.h"

#include "jamba/Conversion/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

using namespace mlir;
using namespace mlir::jamba;
using namespace mlir::jamba::gpukernels;
using lowering::convertScalar;
using lowering::floatConst;
using lowering::indexConst;

namespace {

/// Most steps a call may have for the conv's one-thread-per-channel form.
constexpr int64_t kConvFewSteps = 8;

} // namespace

/// y[b, t, c] sums the K taps over the extended input (state, then this
/// call's inputs); the new state is the extended input's last K-1 values.
/// A call of at most kConvFewSteps steps (a decode step) is one iteration
/// per (b, c), its steps in turn, then its new state. A longer one is one
/// iteration per (b, t, c), the channel innermost, then one per (b, c) for
/// the new state: the outputs do not depend on each other (no recurrence),
/// and one thread per channel walking a 4096-token call took 1.95 ms for
/// Jamba-1.5-Mini's 8192 channels on the H200 (2026-11-30), about 25 times
/// its bytes at the copy bandwidth. The choice is made at
/// run time; a decode step's length is 1 at compile time, so the long
/// form's nests fold away there.
LogicalResult gpukernels::lowerCausalConv1d(IRRewriter &rw, CausalConv1dOp op) {
  if (!isF32Compatible(op.getInput().getType()))
    return failure();
  Location loc = op.getLoc();
  rw.setInsertionPoint(op);
  OpBuilder &b = rw;
  auto buf = [&](Value t) { return lowering::readOnlyBuffer(b, loc, t); };
  auto sType = cast<RankedTensorType>(op.getNewState().getType());
  Value x = buf(op.getInput()), w = buf(op.getWeight()),
        bias = buf(op.getBias()), state = buf(op.getState());
  Value batch = dim(b, loc, x, 0), seq = dim(b, loc, x, 1),
        channels = dim(b, loc, x, 2), width = dim(b, loc, w, 1),
        past = dim(b, loc, state, 2);
  // y, in bf16 too when a cuBLAS GEMM reads it (NarrowedResult).
  NarrowedResult y(op.getResult());
  y.allocate(b, loc, {batch, seq, channels});
  Value newState =
      lowering::allocBuffer(b, loc, sType, {batch, channels, past});
  // Safe over the old state: in the few-steps form thread (b, c) alone
  // touches row (b, c); it reads the old row for y first, then writes
  // position j after reading position seq + j >= j. (The long form's
  // outputs read the old state in a kernel before the one writing the new
  // state, which jamba-states-in-place sees reading the argument after the
  // first writer, and so copies the state back instead.)
  newState.getDefiningOp()->setAttr(kStateOverOldAttr, b.getUnitAttr());
  Value zero = indexConst(b, loc, 0);
  Type f32 = b.getF32Type();

  // ext[j] of sequence b, channel c: state[b, c, j] for j < past, else
  // x[b, j - past, c].
  auto extAt = [&](OpBuilder &nb, Location nl, Value bi, Value c, Value j) {
    Value inState =
        arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::ult, j, past);
    auto ifOp = scf::IfOp::create(
        nb, nl, inState,
        [&](OpBuilder &ib, Location il) {
          scf::YieldOp::create(ib, il, loadF32(ib, il, state, {bi, c, j}));
        },
        [&](OpBuilder &ib, Location il) {
          Value t = arith::SubIOp::create(ib, il, j, past);
          scf::YieldOp::create(ib, il, loadF32(ib, il, x, {bi, t, c}));
        });
    return ifOp.getResult(0);
  };

  // y[b, t, c].
  auto output = [&](OpBuilder &tb, Location tl, Value bi, Value t, Value c) {
    Value init =
        bias ? loadF32(tb, tl, bias, {c}) : floatConst(tb, tl, f32, 0.0);
    auto acc = loop(tb, tl, zero, width, {init},
                    [&](OpBuilder &nb, Location nl, Value j, ValueRange args) {
                      Value wj = loadF32(nb, nl, w, {c, j});
                      Value xj = extAt(nb, nl, bi, c, addI(nb, nl, t, j));
                      return SmallVector<Value>{
                          addF(nb, nl, args[0], mulF(nb, nl, wj, xj))};
                    });
    Value out = acc.getResult(0);
    if (op.getSilu())
      out = lowering::buildSilu(tb, tl, out);
    y.store(tb, tl, out, {bi, t, c});
  };
  // The new state of (b, c), after its outputs.
  auto newStateOf = [&](OpBuilder &pb, Location l, Value bi, Value c) {
    loop(pb, l, zero, past, {},
         [&](OpBuilder &nb, Location nl, Value j, ValueRange) {
           Value v = extAt(nb, nl, bi, c, addI(nb, nl, seq, j));
           storeF32(nb, nl, v, newState, {bi, c, j});
           return SmallVector<Value>{};
         });
  };
  Value few = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ule, seq,
                                    indexConst(b, loc, kConvFewSteps));
  Value fewRows = arith::SelectOp::create(b, loc, few, batch, zero);
  Value manyRows = arith::SelectOp::create(b, loc, few, zero, batch);
  // A few steps: thread (b, c) alone touches row (b, c) of the state (see
  // kStateOverOldAttr above).
  parallel(b, loc, "causal_conv1d", {fewRows, channels},
           [&](OpBuilder &pb, Location l, ValueRange ivs) {
             Value bi = ivs[0], c = ivs[1];
             loop(pb, l, zero, seq, {},
                  [&](OpBuilder &tb, Location tl, Value t, ValueRange) {
                    output(tb, tl, bi, t, c);
                    return SmallVector<Value>{};
                  });
             newStateOf(pb, l, bi, c);
           });
  // More steps: every output, then (another kernel, after all of them have
  // read the old state) the new states.
  parallel(b, loc, "causal_conv1d_steps", {manyRows, seq, channels},
           [&](OpBuilder &pb, Location l, ValueRange ivs) {
             output(pb, l, ivs[0], ivs[1], ivs[2]);
           });
  parallel(b, loc, "causal_conv1d_state", {manyRows, channels},
           [&](OpBuilder &pb, Location l, ValueRange ivs) {
             newStateOf(pb, l, ivs[0], ivs[1]);
           });
  y.replaceReaders(rw, b, loc);
  rw.replaceAllUsesWith(op.getNewState(),
                        lowering::bufferResult(b, loc, sType, newState));
  rw.eraseOp(op);
  return success();
}

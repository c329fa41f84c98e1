//===- SelectiveScan.cpp - jamba.selective_scan on GPUs -------------------===//
//
// Part of jamba-mlir. The selective scan as loop nests: see lowerSelectiveScan.
//
//===----------------------------------------------------------------------===//

#include "Kernels.h"

#include "../JambaToLinalg/LoweringUtils.h"
#include "KernelUtils.h"
#include "WarpCode.h"

#include "jamba/Conversion/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <tuple>

using namespace mlir;
using namespace mlir::jamba;
using namespace mlir::jamba::gpukernels;
using lowering::convertScalar;
using lowering::floatConst;
using lowering::indexConst;

namespace {

/// The (sequence, channel, chunk) threads a chunked scan aims for: enough
/// to fill a GPU (132 SMs of up to 2048 threads on an H100 or H200).
constexpr int64_t kScanTargetThreads = 1 << 17;

/// Largest static state width whose state is kept in registers.
constexpr int64_t kMaxRegisterState = 64;

/// Most steps a call may have for the scan's one-lane-per-state form (a
/// decode step has 1): each lane runs the steps in turn.
constexpr int64_t kStateLanesMaxSteps = 8;

/// The register form's B_t rows: f32 values per vector load.
constexpr int64_t kRowChunk = 4;

/// Lanes sharing one channel's states in the one-pass lane form (nest 5),
/// at most: the channel's width / 8 states each (Jamba's 16: 2).
constexpr int64_t kChannelLanes = 8;

} // namespace

/// One iteration per (b, c), its time loop in the reference's order (SPEC
/// 1.6). With a static state width of at most kMaxRegisterState (Jamba's
/// 16), the state h[b, c, :] and the row A[c, :] are loop-carried scalars
/// (registers on a GPU): loaded once, the state carried in f32 from step
/// to step and stored into the final-state buffer after the last one, so
/// the time loop touches memory only for its inputs and y. That form
/// spends few instructions per state and step (the scan is bound by them,
/// not by memory): a decay is one multiply and an exp2, the update and
/// <C_t, h_t> one fma each. A call of at most kStateLanesMaxSteps steps (a
/// decode step) with a width dividing a warp (Jamba's 16) runs one lane per
/// state instead (nest 4): a decode step took 12.5 us per Mamba layer of
/// Jamba-1.5-Mini on the H200 with `channels` threads of 16 states each
/// (2026-11-30). A longer call with at least `options.laneThreads`
/// (sequence, channel, lane) threads runs in one pass over lanes (nest 5:
/// each channel's states split over up to 8 lanes), the rest in chunks
/// over time (nests 1 to 3), the choice made at run time. With a dynamic
/// width the state lives in the final-state buffer, updated in place at
/// every step.
LogicalResult gpukernels::lowerSelectiveScan(IRRewriter &rw, SelectiveScanOp op,
                                             const ScanOptions &options) {
  const bool emulateWarps = options.emulateWarps;
  if (!isF32Compatible(op.getU().getType()))
    return failure();
  Location loc = op.getLoc();
  rw.setInsertionPoint(op);
  OpBuilder &b = rw;
  auto buf = [&](Value t) { return lowering::readOnlyBuffer(b, loc, t); };
  auto hType = cast<RankedTensorType>(op.getFinalState().getType());
  // A, or the elementwise ops computing it (-exp(A_log)) where it is read
  // (in the register form, which reads it once per thread; the dynamic
  // form reads it at every step).
  const int64_t stateWidth =
      cast<RankedTensorType>(op.getFinalState().getType()).getDimSize(2);
  InlinedOperand A(b, loc, op.getA(),
                   !ShapedType::isDynamic(stateWidth) &&
                       stateWidth <= kMaxRegisterState);
  Value u = buf(op.getU()), delta = buf(op.getDelta()), B = buf(op.getB()),
        C = buf(op.getC()), D = buf(op.getD()), z = buf(op.getZ()),
        deltaBias = buf(op.getDeltaBias()), init = buf(op.getInitState());
  Value batch = dim(b, loc, u, 0), seq = dim(b, loc, u, 1),
        channels = dim(b, loc, u, 2), dState = dim(b, loc, A.shape(), 1);
  // y, in bf16 too when a cuBLAS GEMM reads it (NarrowedResult).
  NarrowedResult y(op.getResult());
  y.allocate(b, loc, {batch, seq, channels});
  Value h = lowering::allocBuffer(b, loc, hType, {batch, channels, dState});
  // Safe over init: see nest 3 (and the dynamic form's one thread per row).
  h.getDefiningOp()->setAttr(kStateOverOldAttr, b.getUnitAttr());
  Value zero = indexConst(b, loc, 0);
  Type f32 = b.getF32Type();
  Value zeroF = floatConst(b, loc, f32, 0.0);

  // The output of step t (y before the store), from the state update's
  // <C_t, h_t>; z[b, t, c] is loaded unless given (`zv`).
  auto finishStep = [&](OpBuilder &tb, Location tl, Value bi, Value t, Value c,
                        Value uv, Value dc, Value dot, Value zv = Value()) {
    Value out = dot;
    if (dc)
      out = addF(tb, tl, out, mulF(tb, tl, dc, uv));
    if (z)
      out = mulF(tb, tl, out,
                 lowering::buildSilu(tb, tl,
                                     zv ? zv : loadF32(tb, tl, z, {bi, t, c})));
    y.store(tb, tl, out, {bi, t, c});
  };
  // The step size from delta: (+ bias) (softplus).
  auto stepSizeOf = [&](OpBuilder &tb, Location tl, Value d, Value bias) {
    if (bias)
      d = addF(tb, tl, d, bias);
    if (op.getDeltaSoftplus())
      d = lowering::buildSoftplus(tb, tl, d);
    return d;
  };
  // The step size of step t.
  auto stepSize = [&](OpBuilder &tb, Location tl, Value bi, Value t, Value c,
                      Value bias) {
    return stepSizeOf(tb, tl, loadF32(tb, tl, delta, {bi, t, c}), bias);
  };

  const int64_t width = hType.getDimSize(2);
  if (!ShapedType::isDynamic(width) && width <= kMaxRegisterState) {
    // The chunks: enough (batch x channels x chunks) threads to fill a GPU,
    // at least `chunkSteps` steps each; 1 for a decode step.
    Value one = indexConst(b, loc, 1);
    Value threads = arith::MulIOp::create(b, loc, batch, channels);
    Value wanted = arith::CeilDivUIOp::create(
        b, loc, indexConst(b, loc, kScanTargetThreads),
        arith::MaxUIOp::create(b, loc, threads, one));
    Value most = arith::MaxUIOp::create(
        b, loc, one,
        arith::DivUIOp::create(b, loc, seq,
                               indexConst(b, loc, options.chunkSteps)));
    Value chunks = arith::MaxUIOp::create(
        b, loc, one, arith::MinUIOp::create(b, loc, wanted, most));
    Value chunkLen = arith::CeilDivUIOp::create(
        b, loc, arith::MaxUIOp::create(b, loc, seq, one), chunks);
    // With one chunk the first two nests have no iterations (no launch).
    Value several =
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ugt, chunks, one);
    Value single =
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, chunks, one);
    auto ifSeveral = [&](Value v) -> Value {
      return arith::SelectOp::create(b, loc, several, v, zero);
    };
    Value carried = ifSeveral(chunks);
    Value feeding = ifSeveral(arith::SubIOp::create(b, loc, chunks, one));
    // At most kStateLanesMaxSteps steps (a decode step) with a state width
    // dividing a warp: one lane per state (nest 4, below), and the chunked
    // nests get no sequences.
    const bool stateLanes = kWarpLanes % width == 0;
    Value fewSteps =
        stateLanes
            ? arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ule, seq,
                                    indexConst(b, loc, kStateLanesMaxSteps))
                  .getResult()
            : arith::ConstantIntOp::create(b, loc, 0, 1).getResult();
    // More steps, with enough (sequence, channel, lane) threads to fill a
    // GPU and a width the lanes divide: one pass over lanes (nest 5).
    const int64_t channelLanes = std::min(width, kChannelLanes);
    const bool laneForm =
        llvm::isPowerOf2_64(channelLanes) && width % channelLanes == 0;
    Value onePass = arith::ConstantIntOp::create(b, loc, 0, 1);
    if (laneForm) {
      Value laneThreads = arith::MulIOp::create(
          b, loc, arith::MulIOp::create(b, loc, batch, channels),
          indexConst(b, loc, channelLanes));
      onePass = arith::AndIOp::create(
          b, loc,
          arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ugt, seq,
                                indexConst(b, loc, kStateLanesMaxSteps)),
          arith::CmpIOp::create(b, loc, arith::CmpIPredicate::uge, laneThreads,
                                indexConst(b, loc, options.laneThreads)));
    }
    Value chunkBatch = arith::SelectOp::create(
        b, loc, arith::OrIOp::create(b, loc, fewSteps, onePass), zero, batch);
    const int64_t dyn = ShapedType::kDynamic;
    Value widthV = indexConst(b, loc, width);
    Value local = lowering::allocBuffer(
        b, loc, RankedTensorType::get({dyn, dyn, dyn, dyn}, f32),
        {chunkBatch, feeding, channels, widthV});
    Value sums = lowering::allocBuffer(
        b, loc, RankedTensorType::get({dyn, dyn, dyn}, f32),
        {chunkBatch, feeding, channels});
    Value starts = lowering::allocBuffer(
        b, loc, RankedTensorType::get({dyn, dyn, dyn, dyn}, f32),
        {chunkBatch, carried, channels, widthV});
    // Steps [first, end) of chunk k.
    auto range = [&](OpBuilder &nb, Location nl, Value k) {
      Value first = arith::MinUIOp::create(
          nb, nl, arith::MulIOp::create(nb, nl, k, chunkLen), seq);
      Value end =
          arith::MinUIOp::create(nb, nl, addI(nb, nl, first, chunkLen), seq);
      return std::make_pair(first, end);
    };
    // A[c, :] log2(e): a decay exp(d A) is exp2(d A log2(e)), one
    // multiply and one ex2.approx on a GPU (libdevice's exp2f) instead of
    // expf's range reduction (its relative error is that of the rounded
    // product, |d A| 2^-24, negligible next to the tolerances).
    auto decayRates = [&](OpBuilder &nb, Location nl, Value c) {
      Value log2e = floatConst(nb, nl, f32, llvm::numbers::log2e);
      SmallVector<Value> a;
      for (int64_t n = 0; n < width; ++n)
        a.push_back(
            mulF(nb, nl, A.loadF32(nb, nl, {c, indexConst(nb, nl, n)}), log2e));
      return a;
    };
    auto decay = [&](OpBuilder &tb, Location tl, Value steps, Value rate) {
      return Value(math::Exp2Op::create(tb, tl, mulF(tb, tl, steps, rate)));
    };
    // B[b, t, :] in chunks of kRowChunk f32 values, one vector load each
    // (16 bytes of f32) where every row starts aligned for it, else
    // gathered from scalar loads: 4 loads a step where there were 16
    // (Jamba's 16 states). The test is uniform over the call, and each
    // thread's time loop is built for both answers (timeLoop), so that no
    // step branches. The chunks are used as vectors (by a vector multiply),
    // since LLVM turns a vector load whose elements are only extracted back
    // into scalar loads. A width that is not a multiple of kRowChunk:
    // chunks of 1.
    const int64_t rowChunk = width % kRowChunk == 0 ? kRowChunk : 1;
    // Bytes of `count` elements of B or C.
    auto bytesOf = [&](Value m, int64_t count) {
      return count * int64_t(cast<MemRefType>(m.getType())
                                 .getElementType()
                                 .getIntOrFloatBitWidth() /
                             8);
    };
    // Elements n0 .. n0 + count - 1 of row (bi, t) of B or C as a
    // vector<count x f32>: one vector load (`vectors`: the rows aligned for
    // it, which the caller tested) or `count` element loads.
    auto rowSlice = [&](OpBuilder &tb, Location tl, Value m, Value bi, Value t,
                        Value n0, int64_t count, bool vectors) -> Value {
      if (vectors) {
        Type elem = cast<MemRefType>(m.getType()).getElementType();
        return toF32(
            tb, tl,
            vector::LoadOp::create(tb, tl, VectorType::get({count}, elem), m,
                                   ValueRange{bi, t, n0}, /*nontemporal=*/false,
                                   llvm::MaybeAlign(bytesOf(m, count))));
      }
      SmallVector<Value> elems;
      for (int64_t i = 0; i < count; ++i)
        elems.push_back(loadF32(
            tb, tl, m, {bi, t, addI(tb, tl, n0, indexConst(tb, tl, i))}));
      return vector::FromElementsOp::create(
          tb, tl, VectorType::get({count}, tb.getF32Type()), elems);
    };
    Value rowsAligned = rowChunk > 1
                            ? alignedForVectors(b, loc, B, bytesOf(B, rowChunk))
                            : Value();
    auto chunkType = VectorType::get({rowChunk}, f32);
    auto stateChunks = [&](OpBuilder &tb, Location tl, Value m, Value bi,
                           Value t, bool vectors) {
      SmallVector<Value> chunks;
      for (int64_t n = 0; n < width; n += rowChunk)
        chunks.push_back(rowSlice(tb, tl, m, bi, t, indexConst(tb, tl, n),
                                  rowChunk, vectors));
      return chunks;
    };
    // A thread's time loop from `first` to `end`, its body built by
    // `body(..., vectors)`: twice under a test of rowsAligned (vector rows
    // in the first), or once without vector rows.
    using LoopBody = function_ref<SmallVector<Value>(OpBuilder &, Location,
                                                     Value, ValueRange, bool)>;
    auto timeLoop = [&](OpBuilder &pb, Location l, Value first, Value end,
                        ValueRange inits, LoopBody body) {
      auto build = [&](OpBuilder &lb, Location ll, bool vectors) {
        return SmallVector<Value>(
            loop(lb, ll, first, end, inits,
                 [&](OpBuilder &tb, Location tl, Value t, ValueRange state) {
                   return body(tb, tl, t, state, vectors);
                 })
                .getResults());
      };
      if (!rowsAligned)
        return build(pb, l, false);
      auto pick = scf::IfOp::create(pb, l, TypeRange(inits), rowsAligned,
                                    /*withElseRegion=*/true);
      OpBuilder::InsertionGuard guard(pb);
      pb.setInsertionPointToStart(pick.thenBlock());
      scf::YieldOp::create(pb, l, build(pb, l, true));
      pb.setInsertionPointToStart(pick.elseBlock());
      scf::YieldOp::create(pb, l, build(pb, l, false));
      return SmallVector<Value>(pick.getResults());
    };
    // init_state[b, c, :], or zeros.
    auto initialState = [&](OpBuilder &nb, Location nl, Value bi, Value c) {
      SmallVector<Value> h0;
      for (int64_t n = 0; n < width; ++n)
        h0.push_back(init
                         ? loadF32(nb, nl, init, {bi, c, indexConst(nb, nl, n)})
                         : zeroF);
      return h0;
    };
    // One step: exp(d A) h + B_t (d u), fused (one fma per state).
    auto advance = [&](OpBuilder &tb, Location tl, Value bi, Value t, Value d,
                       Value uv, ArrayRef<Value> a, ValueRange state,
                       bool vectors) {
      Value du =
          vector::BroadcastOp::create(tb, tl, chunkType, mulF(tb, tl, d, uv));
      SmallVector<Value> next;
      for (auto [j, bt] :
           llvm::enumerate(stateChunks(tb, tl, B, bi, t, vectors))) {
        Value bdu = mulF(tb, tl, bt, du);
        for (int64_t i = 0; i < rowChunk; ++i) {
          const int64_t n = int64_t(j) * rowChunk + i;
          next.push_back(
              math::FmaOp::create(tb, tl, decay(tb, tl, d, a[n]), state[n],
                                  vector::ExtractOp::create(tb, tl, bdu, i)));
        }
      }
      return next;
    };
    // <C_t, h_t>, n in order, fused. C_t by scalar loads: by vectors of 4,
    // as B_t, the scan kernel took 87 registers on sm_90 instead of 72 (2
    // blocks of 256 threads per SM instead of 3; not measured on a GPU).
    auto readOut = [&](OpBuilder &tb, Location tl, Value bi, Value t,
                       ArrayRef<Value> h) {
      Value dot = zeroF;
      for (int64_t n = 0; n < width; ++n)
        dot = math::FmaOp::create(
            tb, tl, loadF32(tb, tl, C, {bi, t, indexConst(tb, tl, n)}), h[n],
            dot);
      return dot;
    };

    // 4. A few steps, one lane per state: lane l of a warp takes channel
    //    c = (32 / width) group + l / width and state n = l % width, and
    //    carries h[b, c, n] in a register through the steps; <C_t, h_t> is
    //    the sum over the channel's `width` lanes (butterfly shuffles
    //    within them) and its first lane writes y. A decode step's scan is
    //    then channels x width threads, each with one exponential per step,
    //    where nest 3 gave each of `channels` threads all `width`. Lanes
    //    past the last channel read its operands and store nothing.
    //    Emulated (emulateWarps), one iteration per (b, group) runs the
    //    lanes in turn at each step, their states in the final-state
    //    buffer, each channel's sum in lane order.
    auto stateLanesNest = [&](OpBuilder &nb, Location nl, Value rows) {
      const int64_t perWarp = kWarpLanes / width;
      Value groupsC = arith::CeilDivUIOp::create(nb, nl, channels,
                                                 indexConst(nb, nl, perWarp));
      Value lastC = arith::SubIOp::create(nb, nl, channels, one);
      Value log2e = floatConst(nb, nl, f32, llvm::numbers::log2e);
      // Lane `lane` of group `grp`: its channel (clamped), whether it is
      // one, and its state.
      auto laneOf = [&](OpBuilder &lb, Location ll, Value grp, Value lane) {
        Value cRaw =
            addI(lb, ll, mulC(lb, ll, grp, perWarp), divC(lb, ll, lane, width));
        Value inRange = arith::CmpIOp::create(lb, ll, arith::CmpIPredicate::ult,
                                              cRaw, channels);
        Value c = arith::MinUIOp::create(lb, ll, cRaw, lastC);
        return std::make_tuple(c, inRange, remC(lb, ll, lane, width));
      };
      // The state after step t from `prev`, and its term of <C_t, h_t>.
      auto stepState = [&](OpBuilder &tb, Location tl, Value bi, Value t,
                           Value c, Value n, Value prev) {
        Value rate = mulF(tb, tl, A.loadF32(tb, tl, {c, n}), log2e);
        Value bias = deltaBias ? loadF32(tb, tl, deltaBias, {c}) : Value();
        Value d = stepSize(tb, tl, bi, t, c, bias);
        Value uv = loadF32(tb, tl, u, {bi, t, c});
        Value next = math::FmaOp::create(
            tb, tl, decay(tb, tl, d, rate), prev,
            mulF(tb, tl, loadF32(tb, tl, B, {bi, t, n}), mulF(tb, tl, d, uv)));
        Value term = mulF(tb, tl, loadF32(tb, tl, C, {bi, t, n}), next);
        return std::make_tuple(next, term, uv);
      };
      auto initialOf = [&](OpBuilder &tb, Location tl, Value bi, Value c,
                           Value n) -> Value {
        return init ? loadF32(tb, tl, init, {bi, c, n}) : zeroF;
      };
      auto finish = [&](OpBuilder &tb, Location tl, Value bi, Value t, Value c,
                        Value uv, Value dot) {
        Value dc = D ? loadF32(tb, tl, D, {c}) : Value();
        finishStep(tb, tl, bi, t, c, uv, dc, dot);
      };
      Value lanes = indexConst(nb, nl, kWarpLanes);
      if (emulateWarps) {
        parallel(
            nb, nl, "selective_scan_states", {rows, groupsC},
            [&](OpBuilder &pb, Location l, ValueRange iv) {
              Value bi = iv[0], grp = iv[1];
              loop(pb, l, zero, seq, {},
                   [&](OpBuilder &tb, Location tl, Value t, ValueRange) {
                     Value first = arith::CmpIOp::create(
                         tb, tl, arith::CmpIPredicate::eq, t, zero);
                     loop(tb, tl, zero, lanes, {zeroF},
                          [&](OpBuilder &kb, Location kl, Value lane,
                              ValueRange acc) {
                            Value c, inRange, n;
                            std::tie(c, inRange, n) = laneOf(kb, kl, grp, lane);
                            // The lane's state: the initial one at step 0, then
                            // what it stored.
                            Value prev =
                                scf::IfOp::create(
                                    kb, kl, first,
                                    [&](OpBuilder &ib, Location il) {
                                      scf::YieldOp::create(
                                          ib, il, initialOf(ib, il, bi, c, n));
                                    },
                                    [&](OpBuilder &ib, Location il) {
                                      scf::YieldOp::create(
                                          ib, il, load(ib, il, h, {bi, c, n}));
                                    })
                                    .getResult(0);
                            Value next, term, uv;
                            std::tie(next, term, uv) =
                                stepState(kb, kl, bi, t, c, n, prev);
                            // The channel's sum, restarted at its first lane.
                            Value restart = arith::CmpIOp::create(
                                kb, kl, arith::CmpIPredicate::eq, n, zero);
                            Value dot =
                                addF(kb, kl,
                                     arith::SelectOp::create(kb, kl, restart,
                                                             zeroF, acc[0]),
                                     term);
                            Value last = arith::CmpIOp::create(
                                kb, kl, arith::CmpIPredicate::eq, n,
                                indexConst(kb, kl, width - 1));
                            scf::IfOp::create(
                                kb, kl, inRange,
                                [&](OpBuilder &wb, Location wl) {
                                  memref::StoreOp::create(wb, wl, next, h,
                                                          ValueRange{bi, c, n});
                                  scf::IfOp::create(
                                      wb, wl, last,
                                      [&](OpBuilder &fb, Location fl) {
                                        finish(fb, fl, bi, t, c, uv, dot);
                                        scf::YieldOp::create(fb, fl);
                                      });
                                  scf::YieldOp::create(wb, wl);
                                });
                            return SmallVector<Value>{dot};
                          });
                     return SmallVector<Value>{};
                   });
            });
        return;
      }
      parallel(
          nb, nl, "selective_scan_states", {rows, groupsC, lanes},
          [&](OpBuilder &pb, Location l, ValueRange iv) {
            Value bi = iv[0], grp = iv[1], lane = iv[2];
            Value c, inRange, n;
            std::tie(c, inRange, n) = laneOf(pb, l, grp, lane);
            auto steps = loop(
                pb, l, zero, seq, {initialOf(pb, l, bi, c, n)},
                [&](OpBuilder &tb, Location tl, Value t, ValueRange state) {
                  Value next, term, uv;
                  std::tie(next, term, uv) =
                      stepState(tb, tl, bi, t, c, n, state[0]);
                  Value dot = butterflySum(tb, tl, term, width);
                  Value writes = arith::AndIOp::create(
                      tb, tl, inRange,
                      arith::CmpIOp::create(tb, tl, arith::CmpIPredicate::eq, n,
                                            zero));
                  scf::IfOp::create(tb, tl, writes,
                                    [&](OpBuilder &wb, Location wl) {
                                      finish(wb, wl, bi, t, c, uv, dot);
                                      scf::YieldOp::create(wb, wl);
                                    });
                  return SmallVector<Value>{next};
                });
            scf::IfOp::create(pb, l, inRange, [&](OpBuilder &sb, Location sl) {
              storeF32(sb, sl, steps.getResult(0), h, {bi, c, n});
              scf::YieldOp::create(sb, sl);
            });
          });
    };

    // 5. A call longer than a decode step in one pass, each channel's
    //    states split over L = channelLanes lanes of a warp: lane l of a
    //    warp takes channel (32 / L) group + l / L, its slot j = l % L and
    //    the S = width / L states S j .. S j + S - 1, carried in registers
    //    from the initial state to the final one. The steps go in batches
    //    of L: lane j computes step t0 + j's step size d (bias, softplus)
    //    and d u, which the channel's lanes read by shuffles; each lane
    //    advances its states over the batch, keeping its part of each
    //    step's <C_t, h_t>; the L lanes' parts of the L steps are summed by
    //    a reduce-scatter (log2 L rounds of butterfly shuffles, each lane
    //    keeping half of its sums and sending the other half), which leaves
    //    step t0 + j's sum in lane j, and lane j writes y there. One
    //    exponential per state and step, where the chunked form's two
    //    passes take two, and no carry; a step past the end keeps the
    //    states (a select) and writes no y. Lanes past the last channel
    //    read its operands and store nothing. Emulated (emulateWarps) the
    //    warp is one iteration whose lanes take turns (WarpCode), shuffles
    //    reading the other lane's registers.
    auto laneNest = [&](OpBuilder &nb, Location nl, Value rows) {
      const int64_t lanesPer = channelLanes, perLane = width / lanesPer,
                    perWarp = kWarpLanes / lanesPer;
      Value groupsC = arith::CeilDivUIOp::create(nb, nl, channels,
                                                 indexConst(nb, nl, perWarp));
      Value lastC = arith::SubIOp::create(nb, nl, channels, one);
      SmallVector<Value> dims{rows, groupsC};
      if (!emulateWarps)
        dims.push_back(indexConst(nb, nl, kWarpLanes));
      // Whether every row of B and C is aligned for a lane's S elements (a
      // test made once per call; S a power of two, else no vector loads).
      Value lanesAligned;
      if (perLane > 1 && llvm::isPowerOf2_64(perLane))
        lanesAligned = arith::AndIOp::create(
            nb, nl, alignedForVectors(nb, nl, B, bytesOf(B, perLane)),
            alignedForVectors(nb, nl, C, bytesOf(C, perLane)));
      parallel(
          nb, nl, "selective_scan_lanes", dims,
          [&](OpBuilder &pb, Location l, ValueRange iv) {
            Value bi = iv[0], grp = iv[1];
            WarpCode warp(emulateWarps ? Value() : iv[2]);
            // Lane `lane`'s channel (clamped), whether it is one, and its
            // slot.
            auto laneOf = [&](OpBuilder &lb, Location ll, Value lane) {
              Value cRaw = addI(lb, ll, mulC(lb, ll, grp, perWarp),
                                divC(lb, ll, lane, lanesPer));
              Value inRange = arith::CmpIOp::create(
                  lb, ll, arith::CmpIPredicate::ult, cRaw, channels);
              Value c = arith::MinUIOp::create(lb, ll, cRaw, lastC);
              return std::make_tuple(c, inRange, remC(lb, ll, lane, lanesPer));
            };
            auto stateOf = [&](OpBuilder &lb, Location ll, Value j, int64_t s) {
              return addI(lb, ll, mulC(lb, ll, j, perLane),
                          indexConst(lb, ll, s));
            };
            // The lane's decay rates A[c, n] log2(e), initial states, and
            // its channel's delta bias and D (0 without them).
            SmallVector<WarpCode::Regs> start = warp.eachLane(
                pb, l, {}, {f32, f32, f32}, {perLane, perLane, 2},
                [&](OpBuilder &lb, Location ll, Value lane,
                    ArrayRef<SmallVector<Value>>) {
                  Value c, inRange, j;
                  std::tie(c, inRange, j) = laneOf(lb, ll, lane);
                  Value log2e = floatConst(lb, ll, f32, llvm::numbers::log2e);
                  SmallVector<Value> rates, h0;
                  for (int64_t s = 0; s < perLane; ++s) {
                    Value n = stateOf(lb, ll, j, s);
                    rates.push_back(
                        mulF(lb, ll, A.loadF32(lb, ll, {c, n}), log2e));
                    h0.push_back(init ? loadF32(lb, ll, init, {bi, c, n})
                                      : zeroF);
                  }
                  SmallVector<Value> channel{
                      deltaBias ? loadF32(lb, ll, deltaBias, {c}) : zeroF,
                      D ? loadF32(lb, ll, D, {c}) : zeroF};
                  return SmallVector<SmallVector<Value>>{rates, h0, channel};
                });
            const WarpCode::Regs &rates = start[0], &perChannel = start[2];
            // Steps t0 .. t0 + L - 1 are a batch. In the last batch
            // (`tail`), cut short by the end, the rows are clamped to the
            // last one; every other batch is whole, its rows at fixed
            // offsets from t0's.
            Value lastT = arith::SubIOp::create(pb, l, seq, one);
            auto stepRow = [&](OpBuilder &lb, Location ll, Value t0, Value i,
                               bool tail) {
              Value t = addI(lb, ll, t0, i);
              return tail ? Value(arith::MinUIOp::create(lb, ll, t, lastT)) : t;
            };
            // Lane j's delta, u and z (0 without one) of step t0 + j: the
            // batch's loads from DRAM, which the whole batches make one
            // batch ahead.
            auto loadOwn = [&](OpBuilder &kb, Location kl, Value t0,
                               bool tail) {
              return warp.eachLane(
                  kb, kl, f32, 1, 3,
                  [&](OpBuilder &lb, Location ll, Value lane,
                      ArrayRef<SmallVector<Value>>) {
                    Value c, inRange, j;
                    std::tie(c, inRange, j) = laneOf(lb, ll, lane);
                    Value t = stepRow(lb, ll, t0, j, tail);
                    return SmallVector<SmallVector<Value>>{
                        {loadF32(lb, ll, delta, {bi, t, c}),
                         loadF32(lb, ll, u, {bi, t, c}),
                         z ? loadF32(lb, ll, z, {bi, t, c}) : zeroF}};
                  })[0];
            };
            // One batch from the states `hIn` and its lanes' delta, u and
            // z (`loaded`); the states after it. In the last batch a step
            // past the end keeps the states and writes no y. `vectors`: a
            // lane's S elements of B_t and of C_t by one vector load each
            // (whole batches, rows aligned for them).
            auto laneVector = VectorType::get({perLane}, f32);
            auto runBatch = [&](OpBuilder &kb, Location kl, Value t0,
                                const WarpCode::Regs &hIn,
                                const WarpCode::Regs &loaded, bool tail,
                                bool vectors) {
              // Step t0 + j of lane j: d and d u.
              SmallVector<WarpCode::Regs> own = warp.eachLane(
                  kb, kl, {loaded, perChannel}, {f32, f32}, {1, 1},
                  [&](OpBuilder &lb, Location ll, Value,
                      ArrayRef<SmallVector<Value>> regs) {
                    Value d = stepSizeOf(lb, ll, regs[0][0],
                                         deltaBias ? regs[1][0] : Value());
                    Value du = mulF(lb, ll, d, regs[0][1]);
                    return SmallVector<SmallVector<Value>>{{d}, {du}};
                  });
              // Every step's d and d u, from its lane of the channel.
              SmallVector<WarpCode::Regs> in{hIn, rates};
              for (int64_t k = 0; k < 2; ++k)
                for (int64_t i = 0; i < lanesPer; ++i)
                  in.push_back(warp.shuffleFrom(
                      kb, kl, own[k],
                      [&](OpBuilder &sb, Location sl, Value lane) {
                        Value first = arith::SubIOp::create(
                            sb, sl, lane, remC(sb, sl, lane, lanesPer));
                        return addI(sb, sl, first, indexConst(sb, sl, i));
                      }));
              // The batch's steps: the lane's states and its parts of the
              // steps' <C_t, h_t>.
              SmallVector<WarpCode::Regs> stepped = warp.eachLane(
                  kb, kl, in, {f32, f32}, {perLane, lanesPer},
                  [&](OpBuilder &lb, Location ll, Value lane,
                      ArrayRef<SmallVector<Value>> regs) {
                    Value c, inRange, j;
                    std::tie(c, inRange, j) = laneOf(lb, ll, lane);
                    Value n0 = stateOf(lb, ll, j, 0);
                    // The lane's S elements of row t of m.
                    auto rowPart = [&](Value m, Value t) {
                      return rowSlice(lb, ll, m, bi, t, n0, perLane, vectors);
                    };
                    SmallVector<Value> hs(regs[0]), parts;
                    for (int64_t i = 0; i < lanesPer; ++i) {
                      Value d = regs[2 + i][0], du = regs[2 + lanesPer + i][0];
                      Value t =
                          stepRow(lb, ll, t0, indexConst(lb, ll, i), tail);
                      // B_t (d u) as a vector: LLVM turns a vector load whose
                      // elements are only extracted back into scalar loads.
                      Value bdu = mulF(
                          lb, ll, rowPart(B, t),
                          vector::BroadcastOp::create(lb, ll, laneVector, du));
                      // In the last batch a step past the end keeps the
                      // states (a uniform test: no branch).
                      Value valid =
                          tail ? arith::CmpIOp::create(
                                     lb, ll, arith::CmpIPredicate::ult,
                                     addI(lb, ll, t0, indexConst(lb, ll, i)),
                                     seq)
                                     .getResult()
                               : Value();
                      for (int64_t s = 0; s < perLane; ++s) {
                        Value next = math::FmaOp::create(
                            lb, ll, decay(lb, ll, d, regs[1][s]), hs[s],
                            vector::ExtractOp::create(lb, ll, bdu, s));
                        hs[s] = valid ? arith::SelectOp::create(lb, ll, valid,
                                                                next, hs[s])
                                            .getResult()
                                      : next;
                      }
                      // <C_t, h_t>'s part, as C_t h_t (a vector) summed,
                      // the multiplies and adds contracted into fmas.
                      auto contract = arith::FastMathFlagsAttr::get(
                          lb.getContext(), arith::FastMathFlags::contract);
                      Value ch =
                          arith::MulFOp::create(lb, ll, rowPart(C, t),
                                                vector::FromElementsOp::create(
                                                    lb, ll, laneVector, hs),
                                                contract);
                      Value part = vector::ExtractOp::create(lb, ll, ch, 0);
                      for (int64_t s = 1; s < perLane; ++s)
                        part = arith::AddFOp::create(
                            lb, ll, part,
                            vector::ExtractOp::create(lb, ll, ch, s), contract);
                      parts.push_back(part);
                    }
                    return SmallVector<SmallVector<Value>>{hs, parts};
                  });
              // The reduce-scatter: each round, a lane whose bit `half` is
              // set keeps the upper half of its sums and sends the lower
              // half to lane ^ half, which does the opposite, and each adds
              // what it receives to what it keeps; step j's sum ends in
              // slot j.
              WarpCode::Regs sums = stepped[1];
              for (int64_t half = lanesPer / 2; half >= 1; half /= 2) {
                SmallVector<WarpCode::Regs> split = warp.eachLane(
                    kb, kl, {sums}, {f32, f32}, {half, half},
                    [&](OpBuilder &lb, Location ll, Value lane,
                        ArrayRef<SmallVector<Value>> regs) {
                      Value upper = arith::CmpIOp::create(
                          lb, ll, arith::CmpIPredicate::ne,
                          remC(lb, ll, divC(lb, ll, lane, half), 2),
                          indexConst(lb, ll, 0));
                      SmallVector<Value> send, keep;
                      for (int64_t m = 0; m < half; ++m) {
                        Value lo = regs[0][m], hi = regs[0][m + half];
                        send.push_back(
                            arith::SelectOp::create(lb, ll, upper, lo, hi));
                        keep.push_back(
                            arith::SelectOp::create(lb, ll, upper, hi, lo));
                      }
                      return SmallVector<SmallVector<Value>>{send, keep};
                    });
                WarpCode::Regs got = warp.shuffleXor(kb, kl, split[0], half);
                sums = warp.eachLane(
                    kb, kl, {split[1], got}, {f32}, {half},
                    [&](OpBuilder &lb, Location ll, Value,
                        ArrayRef<SmallVector<Value>> regs) {
                      SmallVector<Value> added;
                      for (int64_t m = 0; m < half; ++m)
                        added.push_back(addF(lb, ll, regs[0][m], regs[1][m]));
                      return SmallVector<SmallVector<Value>>{added};
                    })[0];
              }
              // Lane j writes step t0 + j.
              warp.eachLane(
                  kb, kl, {sums, loaded, perChannel}, {}, {},
                  [&](OpBuilder &lb, Location ll, Value lane,
                      ArrayRef<SmallVector<Value>> regs) {
                    Value c, inRange, j;
                    std::tie(c, inRange, j) = laneOf(lb, ll, lane);
                    Value t = addI(lb, ll, t0, j);
                    Value writes =
                        tail ? arith::AndIOp::create(
                                   lb, ll, inRange,
                                   arith::CmpIOp::create(
                                       lb, ll, arith::CmpIPredicate::ult, t,
                                       seq))
                                   .getResult()
                             : inRange;
                    scf::IfOp::create(
                        lb, ll, writes, [&](OpBuilder &wb, Location wl) {
                          finishStep(wb, wl, bi, t, c, regs[1][1],
                                     D ? regs[2][1] : Value(), regs[0][0],
                                     z ? regs[1][2] : Value());
                          scf::YieldOp::create(wb, wl);
                        });
                    return SmallVector<SmallVector<Value>>{};
                  });
              return stepped[0];
            };
            // The whole batches, built for vector rows and scalar rows
            // under the call's alignment test (so that no step branches),
            // each loading the next one's delta, u and z before it runs (the
            // last reloads its own), then the last batch if the length is
            // not a multiple of L.
            Value wholeEnd = mulC(pb, l, divC(pb, l, seq, lanesPer), lanesPer);
            Value anyWhole = arith::CmpIOp::create(
                pb, l, arith::CmpIPredicate::ne, wholeEnd, zero);
            auto first = scf::IfOp::create(
                pb, l,
                TypeRange(WarpCode::flatten({warp.splat(pb, l, f32, 3, 0.0)})),
                anyWhole, /*withElseRegion=*/true);
            {
              OpBuilder::InsertionGuard guard(pb);
              pb.setInsertionPointToStart(first.thenBlock());
              scf::YieldOp::create(
                  pb, l, WarpCode::flatten({loadOwn(pb, l, zero, false)}));
              pb.setInsertionPointToStart(first.elseBlock());
              scf::YieldOp::create(
                  pb, l, WarpCode::flatten({warp.splat(pb, l, f32, 3, 0.0)}));
            }
            SmallVector<Value> inits = WarpCode::flatten({start[1]});
            llvm::append_range(inits, first.getResults());
            auto wholeBatches = [&](OpBuilder &fb, Location fl, bool vectors) {
              Value lastWhole = arith::SubIOp::create(
                  fb, fl, wholeEnd, indexConst(fb, fl, lanesPer));
              auto batches = scf::ForOp::create(
                  fb, fl, zero, wholeEnd, indexConst(fb, fl, lanesPer), inits,
                  [&](OpBuilder &kb, Location kl, Value t0, ValueRange args) {
                    SmallVector<WarpCode::Regs> st =
                        warp.unflatten(args, {perLane, 3});
                    Value next = arith::MinUIOp::create(
                        kb, kl, addI(kb, kl, t0, indexConst(kb, kl, lanesPer)),
                        lastWhole);
                    WarpCode::Regs ahead = loadOwn(kb, kl, next, false);
                    scf::YieldOp::create(
                        kb, kl,
                        WarpCode::flatten(
                            {runBatch(kb, kl, t0, st[0], st[1], false, vectors),
                             ahead}));
                  });
              return SmallVector<Value>(batches.getResults());
            };
            SmallVector<Value> afterWhole;
            if (lanesAligned) {
              auto pick =
                  scf::IfOp::create(pb, l, TypeRange(inits), lanesAligned,
                                    /*withElseRegion=*/true);
              OpBuilder::InsertionGuard guard(pb);
              pb.setInsertionPointToStart(pick.thenBlock());
              scf::YieldOp::create(pb, l, wholeBatches(pb, l, true));
              pb.setInsertionPointToStart(pick.elseBlock());
              scf::YieldOp::create(pb, l, wholeBatches(pb, l, false));
              afterWhole.assign(pick.getResults().begin(),
                                pick.getResults().end());
            } else {
              afterWhole = wholeBatches(pb, l, false);
            }
            WarpCode::Regs hWhole = warp.unflatten(afterWhole, {perLane})[0];
            auto last = scf::IfOp::create(
                pb, l, TypeRange(WarpCode::flatten({hWhole})),
                arith::CmpIOp::create(pb, l, arith::CmpIPredicate::ult,
                                      wholeEnd, seq),
                /*withElseRegion=*/true);
            {
              OpBuilder::InsertionGuard guard(pb);
              pb.setInsertionPointToStart(last.thenBlock());
              scf::YieldOp::create(
                  pb, l,
                  WarpCode::flatten(
                      {runBatch(pb, l, wholeEnd, hWhole,
                                loadOwn(pb, l, wholeEnd, true), true, false)}));
              pb.setInsertionPointToStart(last.elseBlock());
              scf::YieldOp::create(pb, l, WarpCode::flatten({hWhole}));
            }
            // The final states.
            warp.eachLane(
                pb, l, warp.unflatten(last.getResults(), {perLane}), {}, {},
                [&](OpBuilder &lb, Location ll, Value lane,
                    ArrayRef<SmallVector<Value>> regs) {
                  Value c, inRange, j;
                  std::tie(c, inRange, j) = laneOf(lb, ll, lane);
                  scf::IfOp::create(
                      lb, ll, inRange, [&](OpBuilder &sb, Location sl) {
                        for (int64_t s = 0; s < perLane; ++s)
                          storeF32(sb, sl, regs[0][s], h,
                                   {bi, c, stateOf(sb, sl, j, s)});
                        scf::YieldOp::create(sb, sl);
                      });
                  return SmallVector<SmallVector<Value>>{};
                });
          });
    };

    // The channel is the innermost dimension of nests 1 and 3: adjacent
    // threads (jamba-gpu-map-loops collapses the dimensions row-major) take
    // adjacent channels of one chunk, so a warp's loads of delta, u and z
    // and its stores of y at a time step are one contiguous row, and B_t
    // and C_t are the same for the whole warp.
    // 1. Each chunk but the last from a zero state: its state at its end
    //    and the sum of its step sizes (exp(A sum) is its decay).
    parallel(
        b, loc, "selective_scan_chunks", {chunkBatch, feeding, channels},
        [&](OpBuilder &pb, Location l, ValueRange ivs) {
          Value bi = ivs[0], k = ivs[1], c = ivs[2];
          auto [first, end] = range(pb, l, k);
          SmallVector<Value> a = decayRates(pb, l, c);
          Value bias = deltaBias ? loadF32(pb, l, deltaBias, {c}) : Value();
          SmallVector<Value> inits(width + 1, zeroF);
          SmallVector<Value> steps =
              timeLoop(pb, l, first, end, inits,
                       [&](OpBuilder &tb, Location tl, Value t,
                           ValueRange state, bool vectors) {
                         Value d = stepSize(tb, tl, bi, t, c, bias);
                         Value uv = loadF32(tb, tl, u, {bi, t, c});
                         SmallVector<Value> next =
                             advance(tb, tl, bi, t, d, uv, a,
                                     state.take_front(width), vectors);
                         next.push_back(addF(tb, tl, state[width], d));
                         return next;
                       });
          for (int64_t n = 0; n < width; ++n)
            memref::StoreOp::create(pb, l, steps[n], local,
                                    ValueRange{bi, k, c, indexConst(pb, l, n)});
          memref::StoreOp::create(pb, l, steps[width], sums,
                                  ValueRange{bi, k, c});
        });
    // 2. The chunks' initial states, carried in f32 from the initial state
    //    (chunk 0's too): h <- exp(A sum_k) h + (chunk k from zero).
    parallel(b, loc, "selective_scan_carry", {ifSeveral(chunkBatch), channels},
             [&](OpBuilder &pb, Location l, ValueRange ivs) {
               Value bi = ivs[0], c = ivs[1];
               SmallVector<Value> a = decayRates(pb, l, c);
               SmallVector<Value> h0 = initialState(pb, l, bi, c);
               for (int64_t n = 0; n < width; ++n)
                 memref::StoreOp::create(
                     pb, l, h0[n], starts,
                     ValueRange{bi, zero, c, indexConst(pb, l, n)});
               loop(pb, l, zero, feeding, h0,
                    [&](OpBuilder &kb, Location kl, Value k, ValueRange state) {
                      Value sum = load(kb, kl, sums, {bi, k, c});
                      Value next = addI(kb, kl, k, indexConst(kb, kl, 1));
                      SmallVector<Value> out;
                      for (int64_t n = 0; n < width; ++n) {
                        Value nv = indexConst(kb, kl, n);
                        Value hn = math::FmaOp::create(
                            kb, kl, decay(kb, kl, sum, a[n]), state[n],
                            load(kb, kl, local, {bi, k, c, nv}));
                        memref::StoreOp::create(kb, kl, hn, starts,
                                                ValueRange{bi, next, c, nv});
                        out.push_back(hn);
                      }
                      return out;
                    });
             });
    // 3. Every chunk from its initial state, writing y; the last one also
    //    writes the final state. With several chunks every chunk starts
    //    from nest 2's copy, so that no thread here reads the op's initial
    //    state while the last chunk writes the final one (the same buffer
    //    when jamba-states-in-place updates it in place); with one chunk
    //    the only thread reads its row before it writes it.
    parallel(
        b, loc, "selective_scan", {chunkBatch, chunks, channels},
        [&](OpBuilder &pb, Location l, ValueRange ivs) {
          Value bi = ivs[0], k = ivs[1], c = ivs[2];
          auto [first, end] = range(pb, l, k);
          SmallVector<Value> a = decayRates(pb, l, c);
          SmallVector<Type> types(width, f32);
          auto startIf =
              scf::IfOp::create(pb, l, types, single, /*withElseRegion=*/true);
          {
            OpBuilder::InsertionGuard guard(pb);
            pb.setInsertionPointToStart(startIf.thenBlock());
            scf::YieldOp::create(pb, l, initialState(pb, l, bi, c));
            pb.setInsertionPointToStart(startIf.elseBlock());
            SmallVector<Value> hk;
            for (int64_t n = 0; n < width; ++n)
              hk.push_back(
                  load(pb, l, starts, {bi, k, c, indexConst(pb, l, n)}));
            scf::YieldOp::create(pb, l, hk);
          }
          Value bias = deltaBias ? loadF32(pb, l, deltaBias, {c}) : Value();
          Value dc = D ? loadF32(pb, l, D, {c}) : Value();
          SmallVector<Value> steps =
              timeLoop(pb, l, first, end, startIf.getResults(),
                       [&](OpBuilder &tb, Location tl, Value t,
                           ValueRange state, bool vectors) {
                         Value d = stepSize(tb, tl, bi, t, c, bias);
                         Value uv = loadF32(tb, tl, u, {bi, t, c});
                         SmallVector<Value> next =
                             advance(tb, tl, bi, t, d, uv, a, state, vectors);
                         finishStep(tb, tl, bi, t, c, uv, dc,
                                    readOut(tb, tl, bi, t, next));
                         return next;
                       });
          Value isLast = arith::CmpIOp::create(pb, l, arith::CmpIPredicate::eq,
                                               addI(pb, l, k, one), chunks);
          scf::IfOp::create(pb, l, isLast, [&](OpBuilder &sb, Location sl) {
            for (int64_t n = 0; n < width; ++n)
              storeF32(sb, sl, steps[n], h, {bi, c, indexConst(sb, sl, n)});
            scf::YieldOp::create(sb, sl);
          });
        });
    if (stateLanes)
      stateLanesNest(b, loc,
                     arith::SelectOp::create(b, loc, fewSteps, batch, zero));
    if (laneForm)
      laneNest(b, loc, arith::SelectOp::create(b, loc, onePass, batch, zero));
    y.replaceReaders(rw, b, loc);
    rw.replaceAllUsesWith(op.getFinalState(),
                          lowering::bufferResult(b, loc, hType, h));
    rw.eraseOp(op);
    A.eraseUnread(rw);
    return success();
  }

  parallel(
      b, loc, "selective_scan", {batch, channels},
      [&](OpBuilder &pb, Location l, ValueRange ivs) {
        Value bi = ivs[0], c = ivs[1];
        // h_0: the initial state or zero.
        loop(pb, l, zero, dState, {},
             [&](OpBuilder &nb, Location nl, Value n, ValueRange) {
               Value h0 = init ? loadF32(nb, nl, init, {bi, c, n}) : zeroF;
               memref::StoreOp::create(nb, nl, h0, h, ValueRange{bi, c, n});
               return SmallVector<Value>{};
             });
        Value bias = deltaBias ? loadF32(pb, l, deltaBias, {c}) : Value();
        Value dc = D ? loadF32(pb, l, D, {c}) : Value();
        loop(pb, l, zero, seq, {},
             [&](OpBuilder &tb, Location tl, Value t, ValueRange) {
               Value d = stepSize(tb, tl, bi, t, c, bias);
               Value uv = loadF32(tb, tl, u, {bi, t, c});
               auto acc = loop(
                   tb, tl, zero, dState, {zeroF},
                   [&](OpBuilder &nb, Location nl, Value n, ValueRange args) {
                     Value a = A.loadF32(nb, nl, {c, n});
                     Value decay =
                         math::ExpOp::create(nb, nl, mulF(nb, nl, d, a));
                     Value hn = load(nb, nl, h, {bi, c, n});
                     Value bn = loadF32(nb, nl, B, {bi, t, n});
                     // exp(d A) h + (d B) u, in the reference's order.
                     Value next = addF(nb, nl, mulF(nb, nl, decay, hn),
                                       mulF(nb, nl, mulF(nb, nl, d, bn), uv));
                     memref::StoreOp::create(nb, nl, next, h,
                                             ValueRange{bi, c, n});
                     Value cn = loadF32(nb, nl, C, {bi, t, n});
                     return SmallVector<Value>{
                         addF(nb, nl, args[0], mulF(nb, nl, cn, next))};
                   });
               finishStep(tb, tl, bi, t, c, uv, dc, acc.getResult(0));
               return SmallVector<Value>{};
             });
      });
  y.replaceReaders(rw, b, loc);
  rw.replaceAllUsesWith(op.getFinalState(),
                        lowering::bufferResult(b, loc, hType, h));
  rw.eraseOp(op);
  A.eraseUnread(rw);
  return success();
}

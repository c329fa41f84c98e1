//===- Argmax.cpp - jamba.argmax (greedy ids) on GPUs ---------------------===//
//
// Part of jamba-mlir. Each row's greedy id in two kernels: see lowerArgmax.
//
//===----------------------------------------------------------------------===//

#include "Kernels.h"

#include "../JambaToLinalg/LoweringUtils.h"
#include "KernelUtils.h"
#include "WarpCode.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <cmath>
#include <limits>

using namespace mlir;
using namespace mlir::jamba;
using namespace mlir::jamba::gpukernels;
using lowering::floatConst;
using lowering::indexConst;

namespace {

/// Elements of a row one warp reduces in the first kernel: 8 vectors of 4
/// per lane. Jamba-1.5-Mini's 65536-word vocabulary is 64 warps per row.
constexpr int64_t kArgmaxChunk = 1024;

/// Elements per vector load (16 bytes of f32).
constexpr int64_t kArgmaxVector = 4;

/// A candidate: the best value so far (f32) and its id (i32; -1 once a NaN
/// was seen, INT32_MAX before any element).
struct Best {
  Value value, id;
};

/// The better of `a` and `c`: the larger value, the lower id on equal
/// values, and id -1 if either has it. Commutative and associative, so
/// lanes and chunks may combine in any order.
Best combine(OpBuilder &b, Location loc, Best a, Best c) {
  Value larger = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OGT,
                                       c.value, a.value);
  Value tie = arith::AndIOp::create(
      b, loc,
      arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ, c.value,
                            a.value),
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, c.id, a.id));
  Value take = arith::OrIOp::create(b, loc, larger, tie);
  Value zero = i32Const(b, loc, 0);
  Value nan = arith::OrIOp::create(
      b, loc,
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, a.id, zero),
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, c.id, zero));
  Value id = arith::SelectOp::create(
      b, loc, nan, i32Const(b, loc, -1),
      arith::SelectOp::create(b, loc, take, c.id, a.id));
  return {arith::SelectOp::create(b, loc, take, c.value, a.value), id};
}

/// Element k of value x as a candidate (id -1 for a NaN).
Best element(OpBuilder &b, Location loc, Value x, Value k) {
  Value isNan = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::UNO, x, x);
  Value id = arith::SelectOp::create(
      b, loc, isNan, i32Const(b, loc, -1),
      arith::IndexCastOp::create(b, loc, b.getI32Type(), k));
  return {x, id};
}

/// On a GPU, the best candidate of the warp in every lane: five butterfly
/// rounds, each combining with the partner lane's candidate.
Best warpBest(OpBuilder &b, Location loc, Best mine) {
  SmallVector<Value> best = butterflyReduce(
      b, loc, {mine.value, mine.id},
      [](OpBuilder &nb, Location nl, ValueRange a, ValueRange c) {
        Best r = combine(nb, nl, {a[0], a[1]}, {c[0], c[1]});
        return SmallVector<Value>{r.value, r.id};
      });
  return {best[0], best[1]};
}

/// The warp of `lane` (null: emulated, the lanes in turn) reduces what
/// `laneBest(lane)` gives each lane, and `store` writes the result once.
void reduceWarp(OpBuilder &b, Location loc, Value lane,
                function_ref<Best(OpBuilder &, Location, Value, Best)> laneBest,
                function_ref<void(OpBuilder &, Location, Best)> store) {
  Best start{floatConst(b, loc, b.getF32Type(), -INFINITY),
             i32Const(b, loc, std::numeric_limits<int32_t>::max())};
  if (!lane) {
    auto lanes = loop(b, loc, indexConst(b, loc, 0),
                      indexConst(b, loc, kWarpLanes), {start.value, start.id},
                      [&](OpBuilder &nb, Location nl, Value l, ValueRange c) {
                        Best best = laneBest(nb, nl, l, {c[0], c[1]});
                        return SmallVector<Value>{best.value, best.id};
                      });
    store(b, loc, {lanes.getResult(0), lanes.getResult(1)});
    return;
  }
  Best best = warpBest(b, loc, laneBest(b, loc, lane, start));
  Value first = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, lane,
                                      indexConst(b, loc, 0));
  scf::IfOp::create(b, loc, first, [&](OpBuilder &tb, Location tl) {
    store(tb, tl, best);
    scf::YieldOp::create(tb, tl);
  });
}

} // namespace

/// Two kernels. The first gives each (row, chunk of kArgmaxChunk elements)
/// one warp: lane l takes the chunk's 16-byte vectors l, l + 32, ...
/// (kLoadsInFlight ahead, forLaneChunks; single elements where the row is
/// not aligned for vectors or its width not a multiple of 4), keeps the
/// best (value, id) it has seen, and five butterfly rounds of two shuffles
/// give the warp's best, which lane 0 writes to a [rows, chunks] scratch
/// pair. The second gives each row one warp over its chunks' candidates
/// the same way and writes the id. For Jamba-1.5-Mini's 65536-word
/// vocabulary a row is 64 warps of 4 KiB each, then one warp of 64
/// candidates. `emulateWarps` (a test aid): each warp is one iteration
/// whose lanes run in turn.
///
/// The combination is the larger value, the lower id on equal values, and
/// -1 once a NaN was seen: the same whatever the order, so the ids are
/// those of the reference's scan over the row (SPEC 1.5.2, ties to the
/// lowest id). A row whose best value is -inf gets -1 too.
LogicalResult gpukernels::lowerArgmax(IRRewriter &rw, ArgmaxOp op,
                                      bool emulateWarps) {
  auto type = cast<RankedTensorType>(op.getLogits().getType());
  if (!isF32Compatible(type))
    return failure();
  Location loc = op.getLoc();
  rw.setInsertionPoint(op);
  OpBuilder &b = rw;
  auto idsType = cast<RankedTensorType>(op.getIds().getType());
  Value logits = lowering::readOnlyBuffer(b, loc, op.getLogits());
  const int64_t rank = type.getRank();
  const int64_t width = type.getShape().back();
  SmallVector<Value> lead;
  Value rows = indexConst(b, loc, 1);
  for (int64_t d = 0; d + 1 < rank; ++d) {
    lead.push_back(dim(b, loc, logits, d));
    rows = arith::MulIOp::create(b, loc, rows, lead.back());
  }
  Value ids = lowering::allocBuffer(b, loc, idsType, lead);
  const int64_t chunks = (width + kArgmaxChunk - 1) / kArgmaxChunk;
  Type f32 = b.getF32Type(), i32 = b.getI32Type();
  Value chunksValue = indexConst(b, loc, chunks);
  auto scratch = [&](Type elem) {
    return lowering::allocBuffer(
        b, loc, RankedTensorType::get({ShapedType::kDynamic, chunks}, elem),
        {rows});
  };
  Value partValue = scratch(f32), partId = scratch(i32);
  Type elem = type.getElementType();
  const int64_t vectorBytes =
      kArgmaxVector * static_cast<int64_t>(elem.getIntOrFloatBitWidth()) / 8;
  // Vectors where the rows allow them (one test per call).
  Value vectors = width % kArgmaxVector == 0
                      ? alignedForVectors(b, loc, logits, vectorBytes)
                      : arith::ConstantIntOp::create(b, loc, 0, 1).getResult();
  Value lanes = indexConst(b, loc, kWarpLanes);
  auto at = [](ArrayRef<Value> row, Value k) {
    SmallVector<Value> idx(row);
    idx.push_back(k);
    return idx;
  };

  // Kernel 1: a warp per (row, chunk).
  SmallVector<Value> dims1{rows, chunksValue};
  if (!emulateWarps)
    dims1.push_back(lanes);
  parallel(
      b, loc, "argmax_chunks", dims1,
      [&](OpBuilder &pb, Location l, ValueRange iv) {
        SmallVector<Value> row = delinearize(pb, l, iv[0], lead);
        Value chunkStart = mulC(pb, l, iv[1], kArgmaxChunk);
        Value chunkSize = arith::MinUIOp::create(
            pb, l, indexConst(pb, l, kArgmaxChunk),
            arith::SubIOp::create(pb, l, indexConst(pb, l, width), chunkStart));
        // Lane `lane`'s elements of the chunk, from `best`.
        auto laneBest = [&](OpBuilder &sb, Location sl, Value lane,
                            Best best) -> Best {
          auto vectorShare = [&](OpBuilder &tb, Location tl) {
            SmallVector<Value> out = forLaneChunks(
                tb, tl, divC(tb, tl, chunkSize, kArgmaxVector), lane, lanes,
                {best.value, best.id},
                [&](OpBuilder &kb, Location kl, Value j) {
                  Value k =
                      addI(kb, kl, chunkStart, mulC(kb, kl, j, kArgmaxVector));
                  return SmallVector<Value>{vector::LoadOp::create(
                      kb, kl, VectorType::get({kArgmaxVector}, elem), logits,
                      at(row, k), /*nontemporal=*/false,
                      llvm::MaybeAlign(vectorBytes))};
                },
                [&](OpBuilder &kb, Location kl, Value j, ValueRange loaded,
                    ValueRange c) {
                  Value k =
                      addI(kb, kl, chunkStart, mulC(kb, kl, j, kArgmaxVector));
                  Value x = toF32(kb, kl, loaded[0]);
                  Best acc{c[0], c[1]};
                  for (int64_t e = 0; e < kArgmaxVector; ++e)
                    acc = combine(
                        kb, kl, acc,
                        element(kb, kl, vector::ExtractOp::create(kb, kl, x, e),
                                addI(kb, kl, k, indexConst(kb, kl, e))));
                  return SmallVector<Value>{acc.value, acc.id};
                });
            scf::YieldOp::create(tb, tl, out);
          };
          auto scalarShare = [&](OpBuilder &tb, Location tl) {
            SmallVector<Value> out = forLaneChunks(
                tb, tl, chunkSize, lane, lanes, {best.value, best.id},
                [&](OpBuilder &kb, Location kl, Value j) {
                  return SmallVector<Value>{loadF32(
                      kb, kl, logits, at(row, addI(kb, kl, chunkStart, j)))};
                },
                [&](OpBuilder &kb, Location kl, Value j, ValueRange loaded,
                    ValueRange c) {
                  Best acc = combine(
                      kb, kl, {c[0], c[1]},
                      element(kb, kl, loaded[0], addI(kb, kl, chunkStart, j)));
                  return SmallVector<Value>{acc.value, acc.id};
                });
            scf::YieldOp::create(tb, tl, out);
          };
          auto share =
              scf::IfOp::create(sb, sl, vectors, vectorShare, scalarShare);
          return {share.getResult(0), share.getResult(1)};
        };
        reduceWarp(pb, l, emulateWarps ? Value() : iv[2], laneBest,
                   [&](OpBuilder &sb, Location sl, Best best) {
                     memref::StoreOp::create(sb, sl, best.value, partValue,
                                             ValueRange{iv[0], iv[1]});
                     memref::StoreOp::create(sb, sl, best.id, partId,
                                             ValueRange{iv[0], iv[1]});
                   });
      });

  // Kernel 2: a warp per row over its chunks' candidates.
  SmallVector<Value> dims2{rows};
  if (!emulateWarps)
    dims2.push_back(lanes);
  parallel(
      b, loc, "argmax_rows", dims2,
      [&](OpBuilder &pb, Location l, ValueRange iv) {
        SmallVector<Value> row = delinearize(pb, l, iv[0], lead);
        auto laneBest = [&](OpBuilder &sb, Location sl, Value lane,
                            Best best) -> Best {
          auto out = scf::ForOp::create(
              sb, sl, lane, chunksValue, lanes, ValueRange{best.value, best.id},
              [&](OpBuilder &kb, Location kl, Value c, ValueRange acc) {
                Best part{load(kb, kl, partValue, {iv[0], c}),
                          load(kb, kl, partId, {iv[0], c})};
                Best next = combine(kb, kl, {acc[0], acc[1]}, part);
                scf::YieldOp::create(kb, kl, ValueRange{next.value, next.id});
              });
          return {out.getResult(0), out.getResult(1)};
        };
        // A best value of -inf: every value is, and no id can be chosen.
        reduceWarp(pb, l, emulateWarps ? Value() : iv[1], laneBest,
                   [&](OpBuilder &sb, Location sl, Best best) {
                     Value none = arith::CmpFOp::create(
                         sb, sl, arith::CmpFPredicate::OEQ, best.value,
                         floatConst(sb, sl, f32, -INFINITY));
                     memref::StoreOp::create(
                         sb, sl,
                         arith::SelectOp::create(sb, sl, none,
                                                 i32Const(sb, sl, -1), best.id),
                         ids, row);
                   });
      });
  rw.replaceOp(op, lowering::bufferResult(b, loc, idsType, ids));
  return success();
}

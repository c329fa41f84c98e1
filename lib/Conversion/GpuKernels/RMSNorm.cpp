//===- RMSNorm.cpp - jamba.rms_norm on GPUs -------------------------------===//
//
// Part of jamba-mlir. RMSNorm as loop nests: see lowerRMSNorm.
//
//===----------------------------------------------------------------------===//

#include "Kernels.h"

#include "../JambaToLinalg/LoweringUtils.h"
#include "KernelUtils.h"
#include "WarpCode.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::jamba;
using namespace mlir::jamba::gpukernels;
using lowering::convertScalar;
using lowering::floatConst;
using lowering::indexConst;

namespace {

/// Elements of a wide row's vector loads (16 bytes of f32).
constexpr int64_t kNormVector = 4;

/// The widest static row that one thread normalises alone.
constexpr int64_t kNormRowPerThreadMaxWidth = 64;

/// The residual add `norm` reads, when the norm's kernels can compute it:
/// an `arith.addf` of two tensors in the norm's block whose other readers
/// all come after the norm (they will read the x the norm writes).
arith::AddFOp fusibleResidualAdd(RMSNormOp norm) {
  auto add = norm.getInput().getDefiningOp<arith::AddFOp>();
  if (!add || add->getBlock() != norm->getBlock() ||
      !isa<RankedTensorType>(add.getType()))
    return nullptr;
  for (Operation *user : add->getUsers()) {
    if (user == norm.getOperation())
      continue;
    Operation *inBlock = norm->getBlock()->findAncestorOpInBlock(*user);
    if (!inBlock || !norm->isBeforeInBlock(inBlock))
      return nullptr;
  }
  return add;
}

} // namespace

/// For a static width of at most kNormRowPerThreadMaxWidth, 64 (the Mamba
/// B and C norms: Jamba's 16; jamba-small's dt norm, 64), one parallel nest
/// with one iteration per row: the row's squares in order, then
/// 1 / sqrt(sum / H + epsilon), then its elements as below. Wider rows take
/// the warp: a decode step's row is one thread otherwise, whose one load
/// at a time took 21 us for Jamba-1.5-Mini's dt norm (256) on the H200
/// (2026-11-30, when this bound was 256).
///
/// Otherwise one warp per row (one kernel): lane l reads the row's 16-byte
/// vectors (4 elements) l, l + 32, ..., kLoadsInFlight of them ahead
/// (forLaneChunks), and sums their squares in f32; five butterfly shuffles
/// give every lane the row's sum, and so 1 / sqrt(sum / H + epsilon); the
/// lane then writes its elements y = w * cvt(x * inv), the normalised value
/// rounded to the input type before the weight multiplies it (SPEC 1.5.3).
/// Unaligned buffers or a width that is not a multiple of 4: the same with
/// elements k = l, l + 32, ... A decode step's row was three kernels before
/// (32 lanes' squares one element per load, the lanes' sums, the
/// elements): 17 to 27 us of GPU time per norm for Jamba-1.5-Mini's 4096
/// on the H200 (2026-11-30), about a tenth of a decode step at batch 1.
/// `emulateWarps` (a test aid): the warp is one iteration whose lanes run
/// in turn, their sums added in lane order, so that the kernel runs on CPUs.
///
/// A norm of a residual add (x = a + b, `arith.addf` on tensors in the
/// norm's block, read after the norm too) computes the add itself: where
/// it reads x for the squares (each element once: the row's thread, or
/// the lane whose share holds it) it adds a and b in their type and writes
/// x, which the normalisation reads back and the add's other readers take.
/// One kernel launch and one pass over x less.
LogicalResult gpukernels::lowerRMSNorm(IRRewriter &rw, RMSNormOp op,
                                       bool emulateWarps) {
  auto type = cast<RankedTensorType>(op.getType());
  if (!isF32Compatible(type) || !isF32Compatible(op.getWeight().getType()))
    return failure();
  // A norm read by conversions to a narrower type (a cuBLAS GEMM's bf16
  // input) writes that type itself (NarrowedResult).
  NarrowedResult y(op.getResult());
  Location loc = op.getLoc();
  rw.setInsertionPoint(op);
  OpBuilder &b = rw;
  arith::AddFOp residual = fusibleResidualAdd(op);
  Value x, addLhs, addRhs;
  if (residual) {
    addLhs = lowering::readOnlyBuffer(b, loc, residual.getLhs());
    addRhs = lowering::readOnlyBuffer(b, loc, residual.getRhs());
  } else {
    x = lowering::readOnlyBuffer(b, loc, op.getInput());
  }
  Value w = lowering::readOnlyBuffer(b, loc, op.getWeight());
  const int64_t rank = type.getRank();
  Type f32 = b.getF32Type(), elem = type.getElementType();
  Value zero = indexConst(b, loc, 0), one = indexConst(b, loc, 1);
  SmallVector<Value> lead, sizes;
  Value rows = one;
  Value shapeOf = residual ? addLhs : x;
  for (int64_t i = 0; i + 1 < rank; ++i) {
    lead.push_back(dim(b, loc, shapeOf, i));
    rows = arith::MulIOp::create(b, loc, rows, lead.back());
  }
  // A static width as a constant (constant trip counts for the row loops).
  const int64_t staticWidth = type.getShape().back();
  Value h = ShapedType::isDynamic(staticWidth)
                ? dim(b, loc, shapeOf, rank - 1)
                : indexConst(b, loc, staticWidth);
  sizes = lead;
  sizes.push_back(h);
  y.allocate(b, loc, sizes);
  // The residual stream x = a + b, written where the squares read it.
  if (residual)
    x = lowering::allocBuffer(
        b, loc, cast<RankedTensorType>(residual.getType()), sizes);
  // x[idx] as f32 for the squares (each element read here once).
  auto readForSquares = [&](OpBuilder &nb, Location nl,
                            ArrayRef<Value> idx) -> Value {
    if (!residual)
      return loadF32(nb, nl, x, idx);
    Value sum = arith::AddFOp::create(nb, nl, load(nb, nl, addLhs, idx),
                                      load(nb, nl, addRhs, idx));
    memref::StoreOp::create(nb, nl, sum, x, idx);
    return convertScalar(nb, nl, sum, f32);
  };
  // The add's other readers take the x the norm wrote.
  auto replaceResidual = [&](OpBuilder &fb, Location fl) {
    if (!residual)
      return;
    Value stream = lowering::bufferResult(fb, fl, residual.getType(), x);
    rw.replaceAllUsesExcept(residual.getResult(), stream, op.getOperation());
  };
  // Once the norm is replaced, the add has no reader left.
  auto eraseResidual = [&] {
    if (residual && residual->use_empty())
      rw.eraseOp(residual);
  };
  auto at = [&](ArrayRef<Value> row, Value k) {
    SmallVector<Value> idx(row);
    idx.push_back(k);
    return idx;
  };
  Value hFloat = arith::SIToFPOp::create(
      b, loc, f32, arith::IndexCastOp::create(b, loc, b.getI64Type(), h));
  Value eps = floatConst(b, loc, f32, op.getEpsilon().convertToDouble());
  // 1 / sqrt(sum / H + epsilon).
  auto inverseRoot = [&](OpBuilder &nb, Location nl, Value sum) -> Value {
    Value mean = arith::DivFOp::create(nb, nl, sum, hFloat);
    Value root = math::SqrtOp::create(nb, nl, addF(nb, nl, mean, eps));
    return arith::DivFOp::create(nb, nl, floatConst(nb, nl, f32, 1.0), root);
  };
  // y[idx] = w[k] * cvt(x[idx] * inv).
  auto normalise = [&](OpBuilder &nb, Location nl, ArrayRef<Value> idx, Value k,
                       Value rowInv) {
    Value n = mulF(nb, nl, loadF32(nb, nl, x, idx), rowInv);
    n = convertScalar(nb, nl, convertScalar(nb, nl, n, elem), f32);
    y.store(nb, nl, mulF(nb, nl, loadF32(nb, nl, w, {k}), n), idx);
  };

  if (!ShapedType::isDynamic(staticWidth) &&
      staticWidth <= kNormRowPerThreadMaxWidth) {
    parallel(b, loc, "rms_norm", {rows},
             [&](OpBuilder &pb, Location l, ValueRange iv) {
               SmallVector<Value> row = delinearize(pb, l, iv[0], lead);
               Value sum = loop(pb, l, zero, h, {floatConst(pb, l, f32, 0.0)},
                                [&](OpBuilder &nb, Location nl, Value k,
                                    ValueRange acc) {
                                  Value v = readForSquares(nb, nl, at(row, k));
                                  return SmallVector<Value>{
                                      addF(nb, nl, acc[0], mulF(nb, nl, v, v))};
                                })
                               .getResult(0);
               Value rowInv = inverseRoot(pb, l, sum);
               scf::ForOp::create(
                   pb, l, zero, h, one, ValueRange{},
                   [&](OpBuilder &nb, Location nl, Value k, ValueRange) {
                     normalise(nb, nl, at(row, k), k, rowInv);
                     scf::YieldOp::create(nb, nl);
                   });
             });
    replaceResidual(b, loc);
    y.replaceReaders(rw, b, loc);
    rw.eraseOp(op);
    eraseResidual();
    return success();
  }

  // Wide rows: one warp per row.
  Value lanes = indexConst(b, loc, kWarpLanes);
  Value inputs = residual ? addLhs : x;
  auto vecType = [&](Type e) { return VectorType::get({kNormVector}, e); };
  Type wElem = cast<MemRefType>(w.getType()).getElementType();
  auto aligned = [&](Value m) {
    Type e = cast<MemRefType>(m.getType()).getElementType();
    return alignedForVectors(b, loc, m,
                             kNormVector * e.getIntOrFloatBitWidth() / 8);
  };
  Value vectors = vectorChunksUsable(
      b, loc, w,
      kNormVector * static_cast<int64_t>(wElem.getIntOrFloatBitWidth()) / 8,
      inputs,
      kNormVector * static_cast<int64_t>(elem.getIntOrFloatBitWidth()) / 8, h,
      kNormVector);
  if (residual)
    vectors = arith::AndIOp::create(
        b, loc, vectors,
        arith::AndIOp::create(b, loc, aligned(addRhs), aligned(x)));
  // A vector of memref `m` at `idx` (aligned: `vectors` holds).
  auto vectorAt = [&](OpBuilder &nb, Location nl, Value m,
                      ValueRange idx) -> Value {
    Type e = cast<MemRefType>(m.getType()).getElementType();
    return vector::LoadOp::create(
        nb, nl, vecType(e), m, idx, /*nontemporal=*/false,
        llvm::MaybeAlign(kNormVector * e.getIntOrFloatBitWidth() / 8));
  };
  auto halves = [&](OpBuilder &nb, Location nl, Value both, int64_t half) {
    SmallVector<int64_t> pick;
    for (int64_t i = 0; i < kNormVector; ++i)
      pick.push_back(half * kNormVector + i);
    return Value(vector::ShuffleOp::create(nb, nl, both, both, pick));
  };

  // The squares of lane `lane`'s share of row `row`: its vectors j = lane,
  // lane + 32, ... (or its elements, where vectors cannot be used); of a
  // residual add, x = a + b is computed and written here.
  auto laneSquares = [&](OpBuilder &sb, Location sl, ArrayRef<Value> row,
                         Value lane) -> Value {
    auto vectorShare = [&](OpBuilder &tb, Location tl) {
      Value acc = accumulateLaneChunks(
          tb, tl, divC(tb, tl, h, kNormVector), lane, lanes,
          floatConst(tb, tl, vecType(f32), 0.0),
          [&](OpBuilder &kb, Location kl, Value j) -> Value {
            SmallVector<Value> idx = at(row, mulC(kb, kl, j, kNormVector));
            auto vload = [&](Value m) { return vectorAt(kb, kl, m, idx); };
            if (!residual)
              return vload(x);
            // Both operands in one register set, the add left to the use:
            // the loads alone ahead.
            SmallVector<int64_t> both;
            for (int64_t i = 0; i < 2 * kNormVector; ++i)
              both.push_back(i);
            return vector::ShuffleOp::create(kb, kl, vload(addLhs),
                                             vload(addRhs), both);
          },
          [&](OpBuilder &kb, Location kl, Value j, Value loaded, Value a) {
            Value v = loaded;
            if (residual) {
              v = arith::AddFOp::create(kb, kl, halves(kb, kl, loaded, 0),
                                        halves(kb, kl, loaded, 1));
              vector::StoreOp::create(
                  kb, kl, v, x, at(row, mulC(kb, kl, j, kNormVector)),
                  /*nontemporal=*/false,
                  llvm::MaybeAlign(kNormVector * elem.getIntOrFloatBitWidth() /
                                   8));
            }
            v = toF32(kb, kl, v);
            return math::FmaOp::create(kb, kl, v, v, a).getResult();
          });
      scf::YieldOp::create(tb, tl,
                           Value(vector::ReductionOp::create(
                               tb, tl, vector::CombiningKind::ADD, acc)));
    };
    auto scalarShare = [&](OpBuilder &tb, Location tl) {
      Value sum = accumulateLaneChunks(
          tb, tl, h, lane, lanes, floatConst(tb, tl, f32, 0.0),
          [&](OpBuilder &kb, Location kl, Value k) -> Value {
            SmallVector<Value> idx = at(row, k);
            if (!residual)
              return loadF32(kb, kl, x, idx);
            Value lhs = load(kb, kl, addLhs, idx),
                  rhs = load(kb, kl, addRhs, idx);
            return vector::FromElementsOp::create(
                kb, kl, VectorType::get({2}, lhs.getType()),
                ValueRange{lhs, rhs});
          },
          [&](OpBuilder &kb, Location kl, Value k, Value loaded, Value a) {
            Value v = loaded;
            if (residual) {
              Value s = arith::AddFOp::create(
                  kb, kl, vector::ExtractOp::create(kb, kl, loaded, 0),
                  vector::ExtractOp::create(kb, kl, loaded, 1));
              memref::StoreOp::create(kb, kl, s, x, at(row, k));
              v = convertScalar(kb, kl, s, f32);
            }
            return addF(kb, kl, a, mulF(kb, kl, v, v));
          });
      scf::YieldOp::create(tb, tl, sum);
    };
    return scf::IfOp::create(sb, sl, vectors, vectorShare, scalarShare)
        .getResult(0);
  };

  // Lane `lane`'s share of row `row` normalised: w * cvt(x * inv), the
  // loads of x (the lane's own, just read or written) and w ahead.
  auto laneNormalise = [&](OpBuilder &sb, Location sl, ArrayRef<Value> row,
                           Value lane, Value rowInv) {
    auto vectorShare = [&](OpBuilder &tb, Location tl) {
      forLaneChunks(
          tb, tl, divC(tb, tl, h, kNormVector), lane, lanes, {},
          [&](OpBuilder &kb, Location kl, Value j) {
            Value k = mulC(kb, kl, j, kNormVector);
            return SmallVector<Value>{vectorAt(kb, kl, x, at(row, k)),
                                      vectorAt(kb, kl, w, ValueRange{k})};
          },
          [&](OpBuilder &kb, Location kl, Value j, ValueRange loaded,
              ValueRange) {
            Value k = mulC(kb, kl, j, kNormVector);
            // Vector arithmetic, so that the loads stay vector loads (LLVM
            // turns a vector load whose elements are only extracted into
            // scalar loads).
            Value n = arith::MulFOp::create(
                kb, kl, toF32(kb, kl, loaded[0]),
                vector::BroadcastOp::create(kb, kl, vecType(f32), rowInv));
            if (!elem.isF32())
              n = arith::ExtFOp::create(
                  kb, kl, vecType(f32),
                  arith::TruncFOp::create(kb, kl, vecType(elem), n)
                      .getResult());
            Value out =
                arith::MulFOp::create(kb, kl, toF32(kb, kl, loaded[1]), n);
            for (int64_t i = 0; i < kNormVector; ++i)
              y.store(kb, kl, vector::ExtractOp::create(kb, kl, out, i),
                      at(row, addI(kb, kl, k, indexConst(kb, kl, i))));
            return SmallVector<Value>{};
          });
      scf::YieldOp::create(tb, tl);
    };
    auto scalarShare = [&](OpBuilder &tb, Location tl) {
      scf::ForOp::create(tb, tl, lane, h, lanes, ValueRange{},
                         [&](OpBuilder &kb, Location kl, Value k, ValueRange) {
                           normalise(kb, kl, at(row, k), k, rowInv);
                           scf::YieldOp::create(kb, kl);
                         });
      scf::YieldOp::create(tb, tl);
    };
    scf::IfOp::create(sb, sl, vectors, vectorShare, scalarShare);
  };

  SmallVector<Value> dims{rows};
  if (!emulateWarps)
    dims.push_back(lanes);
  parallel(
      b, loc, "rms_norm_warp", dims,
      [&](OpBuilder &pb, Location l, ValueRange iv) {
        SmallVector<Value> row = delinearize(pb, l, iv[0], lead);
        if (emulateWarps) {
          // The lanes in turn, their sums added in lane order.
          Value sum =
              loop(pb, l, zero, lanes, {floatConst(pb, l, f32, 0.0)},
                   [&](OpBuilder &nb, Location nl, Value lane, ValueRange a) {
                     return SmallVector<Value>{
                         addF(nb, nl, a[0], laneSquares(nb, nl, row, lane))};
                   })
                  .getResult(0);
          Value rowInv = inverseRoot(pb, l, sum);
          loop(pb, l, zero, lanes, {},
               [&](OpBuilder &nb, Location nl, Value lane, ValueRange) {
                 laneNormalise(nb, nl, row, lane, rowInv);
                 return SmallVector<Value>{};
               });
          return;
        }
        Value lane = iv[1];
        // Five butterfly shuffles: every lane gets the row's sum.
        Value sum = butterflySum(pb, l, laneSquares(pb, l, row, lane));
        laneNormalise(pb, l, row, lane, inverseRoot(pb, l, sum));
      });
  replaceResidual(b, loc);
  y.replaceReaders(rw, b, loc);
  rw.eraseOp(op);
  eraseResidual();
  return success();
}

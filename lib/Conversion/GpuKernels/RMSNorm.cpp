//===- RMSNorm.cpp - jamba.rms_norm on GPUs -------------------------------===//
//
// Part of jamba-mlir. RMSNorm as loop nests: see lowerRMSNorm.
//
//===----------------------------------------------------------------------===//

#include "Kernels.h"

#include "../JambaToLinalg/LoweringUtils.h"
#include "KernelUtils.h"

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

/// Lanes sharing one row's sum of squares.
constexpr int64_t kNormLanes = 32;

/// The widest static row that one thread normalises alone.
constexpr int64_t kNormRowPerThreadMaxWidth = 256;

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

/// For a static width of at most kNormRowPerThreadMaxWidth (the Mamba
/// dt/B/C norms: Jamba-1.5-Mini's 256, 16, 16), one parallel nest with
/// one iteration per row: the row's squares in order, then
/// 1 / sqrt(sum / H + epsilon), then its elements as below. One kernel
/// launch instead of three, and a decode step launches three such norms
/// per Mamba layer.
///
/// Otherwise three parallel nests, so that a decode step's single row is
/// not one thread's sequential sum over the hidden size (the plain form's
/// row reduction):
///
/// 1. one iteration per (row, lane): the lane's squares, k = lane,
///    lane + 32, ..., in f32, kLoadsInFlight elements read ahead
///    (accumulateLaneChunks: a decode step's row is 32 threads, whose loop
///    of one load per step took 55 us for Jamba-1.5-Mini's 4096 on the
///    H200, 2026-11-30);
/// 2. one per row: the 32 partial sums in lane order, then
///    1 / sqrt(sum / H + epsilon);
/// 3. one per element: y = w * cvt(x * inv), the normalised value rounded
///    to the input type before the weight multiplies it (SPEC 1.5.3).
///
/// A norm of a residual add (x = a + b, `arith.addf` on tensors in the
/// norm's block, read after the norm too) computes the add itself: where
/// it reads x for the squares (each element once: the row's thread, or
/// the lane whose share holds it) it adds a and b in their type and writes
/// x, which the scaling reads back and the add's other readers take. One
/// kernel launch and one pass over x less.
LogicalResult gpukernels::lowerRMSNorm(IRRewriter &rw, RMSNormOp op) {
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

  Value lanes = indexConst(b, loc, kNormLanes);
  const int64_t dyn = ShapedType::kDynamic;
  Value partial = lowering::allocBuffer(
      b, loc, RankedTensorType::get({dyn, kNormLanes}, f32), {rows, lanes});
  Value inv =
      lowering::allocBuffer(b, loc, RankedTensorType::get({dyn}, f32), {rows});

  // 1. The lanes' squares.
  parallel(
      b, loc, "rms_norm_squares", {rows, lanes},
      [&](OpBuilder &pb, Location l, ValueRange iv) {
        SmallVector<Value> row = delinearize(pb, l, iv[0], lead);
        // The loads alone ahead (of a residual add: both operands,
        // the add and x's store with the square).
        Value sum = accumulateLaneChunks(
            pb, l, h, iv[1], lanes, floatConst(pb, l, f32, 0.0),
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
            [&](OpBuilder &kb, Location kl, Value k, Value loaded, Value acc) {
              Value v = loaded;
              if (residual) {
                Value sum = arith::AddFOp::create(
                    kb, kl, vector::ExtractOp::create(kb, kl, loaded, 0),
                    vector::ExtractOp::create(kb, kl, loaded, 1));
                memref::StoreOp::create(kb, kl, sum, x, at(row, k));
                v = convertScalar(kb, kl, sum, f32);
              }
              return addF(kb, kl, acc, mulF(kb, kl, v, v));
            });
        memref::StoreOp::create(pb, l, sum, partial, ValueRange{iv[0], iv[1]});
      });
  // 2. The row's inverse root mean square.
  parallel(
      b, loc, "rms_norm_inverse", {rows},
      [&](OpBuilder &pb, Location l, ValueRange iv) {
        Value sum =
            loop(pb, l, zero, lanes, {floatConst(pb, l, f32, 0.0)},
                 [&](OpBuilder &nb, Location nl, Value lane, ValueRange acc) {
                   Value p = load(nb, nl, partial, {iv[0], lane});
                   return SmallVector<Value>{addF(nb, nl, acc[0], p)};
                 })
                .getResult(0);
        memref::StoreOp::create(pb, l, inverseRoot(pb, l, sum), inv,
                                ValueRange{iv[0]});
      });
  // 3. Every element.
  parallel(b, loc, "rms_norm_scale", {rows, h},
           [&](OpBuilder &pb, Location l, ValueRange iv) {
             SmallVector<Value> idx =
                 at(delinearize(pb, l, iv[0], lead), iv[1]);
             normalise(pb, l, idx, iv[1], load(pb, l, inv, {iv[0]}));
           });
  replaceResidual(b, loc);
  y.replaceReaders(rw, b, loc);
  rw.eraseOp(op);
  eraseResidual();
  return success();
}

//===- RouterTopK.cpp - jamba.router_topk on GPUs -------------------------===//
//
// Part of jamba-mlir. The router softmax and top-k as a loop nest: see
// lowerRouterTopK.
//
//===----------------------------------------------------------------------===//

#include "Kernels.h"

#include "../JambaToLinalg/LoweringUtils.h"
#include "KernelUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

using namespace mlir;
using namespace mlir::jamba;
using namespace mlir::jamba::gpukernels;
using lowering::convertScalar;
using lowering::floatConst;
using lowering::indexConst;

/// The most picks the kernel unrolls (Jamba routes to 2 of 16 experts).
constexpr int64_t kMaxUnrolledTopK = 16;

/// One iteration per row: softmax over the experts (max-subtracted), then
/// top-k by repeated selection, each pick the first maximum among the
/// experts not yet taken (ties: the lower index), "taken" meaning already
/// stored among this row's indices.
LogicalResult gpukernels::lowerRouterTopK(IRRewriter &rw, RouterTopKOp op) {
  auto logitsType = cast<RankedTensorType>(op.getLogits().getType());
  // The picks are unrolled (pick j compares with the j before it): a large
  // top_k is not lowered here, nor is a single row without a row dimension
  // to run in parallel. The CPU's gpu-kernels mode lowers them through
  // convert-jamba-to-linalg; the GPU pipeline refuses them by name
  // (jamba-require-gpu-kernels).
  if (!isF32Compatible(logitsType) || logitsType.getRank() < 2 ||
      op.getTopK() > kMaxUnrolledTopK)
    return failure();
  Location loc = op.getLoc();
  rw.setInsertionPoint(op);
  OpBuilder &b = rw;
  const int64_t rank = logitsType.getRank();
  const int64_t k = op.getTopK();
  Value logits = lowering::readOnlyBuffer(b, loc, op.getLogits());
  auto wType = cast<RankedTensorType>(op.getWeights().getType());
  auto iType = cast<RankedTensorType>(op.getIndices().getType());
  SmallVector<Value> lead;
  for (int64_t d = 0; d + 1 < rank; ++d)
    lead.push_back(dim(b, loc, logits, d));
  Value experts = dim(b, loc, logits, rank - 1);
  SmallVector<Value> outSizes = lead;
  outSizes.push_back(indexConst(b, loc, k));
  Value weights = lowering::allocBuffer(b, loc, wType, outSizes);
  Value indices = lowering::allocBuffer(b, loc, iType, outSizes);
  Type f32 = b.getF32Type(), indexElem = iType.getElementType();
  Value zero = indexConst(b, loc, 0);

  parallel(
      b, loc, "router_topk", lead,
      [&](OpBuilder &pb, Location l, ValueRange row) {
        auto at = [&](Value e) {
          SmallVector<Value> idx(row.begin(), row.end());
          idx.push_back(e);
          return idx;
        };
        Value negInf = floatConst(pb, l, f32, -INFINITY);
        Value maxLogit =
            loop(pb, l, zero, experts, {negInf},
                 [&](OpBuilder &nb, Location nl, Value e, ValueRange args) {
                   Value v = loadF32(nb, nl, logits, at(e));
                   return SmallVector<Value>{
                       arith::MaximumFOp::create(nb, nl, args[0], v)};
                 })
                .getResult(0);
        auto prob = [&](OpBuilder &nb, Location nl, Value e) {
          Value v = loadF32(nb, nl, logits, at(e));
          return math::ExpOp::create(
              nb, nl, arith::SubFOp::create(nb, nl, v, maxLogit));
        };
        Value sum =
            loop(pb, l, zero, experts, {floatConst(pb, l, f32, 0.0)},
                 [&](OpBuilder &nb, Location nl, Value e, ValueRange args) {
                   return SmallVector<Value>{
                       addF(nb, nl, args[0], prob(nb, nl, e))};
                 })
                .getResult(0);
        // p[e] = exp(l[e] - max) / sum, recomputed where needed (no scratch).
        auto p = [&](OpBuilder &nb, Location nl, Value e) {
          return arith::DivFOp::create(nb, nl, prob(nb, nl, e), sum);
        };
        Value picked = floatConst(pb, l, f32, 0.0);
        for (int64_t j = 0; j < k; ++j) {
          // Whether expert e is one of picks 0..j-1 (already stored).
          auto taken = [&](OpBuilder &nb, Location nl, Value e) {
            Value any = arith::ConstantIntOp::create(nb, nl, 0, 1);
            for (int64_t i = 0; i < j; ++i) {
              Value prev =
                  loadIndex(nb, nl, indices, at(indexConst(nb, nl, i)));
              any = arith::OrIOp::create(
                  nb, nl, any,
                  arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::eq, prev,
                                        e));
            }
            return any;
          };
          // Best so far: (probability, index); index -1 before the first.
          Value none = indexConst(pb, l, -1);
          auto best = loop(
              pb, l, zero, experts, {negInf, none},
              [&](OpBuilder &nb, Location nl, Value e, ValueRange args) {
                Value pe = p(nb, nl, e);
                Value better = arith::CmpFOp::create(
                    nb, nl, arith::CmpFPredicate::OGT, pe, args[0]);
                Value first =
                    arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::slt,
                                          args[1], indexConst(nb, nl, 0));
                Value free = arith::XOrIOp::create(
                    nb, nl, taken(nb, nl, e),
                    arith::ConstantIntOp::create(nb, nl, 1, 1));
                Value take = arith::AndIOp::create(
                    nb, nl, free, arith::OrIOp::create(nb, nl, better, first));
                return SmallVector<Value>{
                    arith::SelectOp::create(nb, nl, take, pe, args[0]),
                    arith::SelectOp::create(nb, nl, take, e, args[1])};
              });
          Value slot = indexConst(pb, l, j);
          memref::StoreOp::create(pb, l, best.getResult(0), weights, at(slot));
          memref::StoreOp::create(
              pb, l,
              arith::IndexCastOp::create(pb, l, indexElem, best.getResult(1)),
              indices, at(slot));
          picked = addF(pb, l, picked, best.getResult(0));
        }
        if (op.getNormalize())
          for (int64_t j = 0; j < k; ++j) {
            Value slot = indexConst(pb, l, j);
            Value w = load(pb, l, weights, at(slot));
            memref::StoreOp::create(pb, l,
                                    arith::DivFOp::create(pb, l, w, picked),
                                    weights, at(slot));
          }
      });
  rw.replaceOp(op, {lowering::bufferResult(b, loc, wType, weights),
                    lowering::bufferResult(b, loc, iType, indices)});
  return success();
}

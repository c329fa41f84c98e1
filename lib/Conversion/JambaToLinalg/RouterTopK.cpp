//===- RouterTopK.cpp - jamba.router_topk and jamba.argmax to linalg ------===//
//
// Part of jamba-mlir. The router's softmax over all experts as three row
// `linalg.generic`s (max, sum of exponentials, probabilities) on a 2-D view
// [rows, experts], then the top-k by repeated selection in scf loops over
// tensors (SPEC 1.5.7). The greedy ids (jamba.argmax) as one row reduction.
//
//===----------------------------------------------------------------------===//

#include "LoweringUtils.h"

#include "jamba/Dialect/Jamba/IR/JambaOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

#include <cmath>
#include <limits>

using namespace mlir;
using namespace mlir::jamba;
using namespace mlir::jamba::lowering;

namespace {

/// A row reduction over the 2-D `x` [R, E] into a fresh [R] tensor filled
/// with `init`; `combine(b, loc, element, rowExtra..., acc)`.
Value reduceRows(
    OpBuilder &b, Location loc, Value x, ValueRange rowInputs,
    OpFoldResult rows, Type accType, double init,
    function_ref<Value(OpBuilder &, Location, ValueRange)> combine) {
  MLIRContext *ctx = b.getContext();
  Value start = filledTensor(b, loc, {rows}, accType, init);
  SmallVector<Value> inputs{x};
  inputs.append(rowInputs.begin(), rowInputs.end());
  SmallVector<AffineMap> maps{b.getMultiDimIdentityMap(2)};
  for (size_t i = 0; i < rowInputs.size() + 1; ++i)
    maps.push_back(projection(ctx, 2, {0}));
  return linalg::GenericOp::create(
             b, loc, TypeRange{start.getType()}, inputs, ValueRange{start},
             maps, iterators(2, {1}),
             [&](OpBuilder &nb, Location l, ValueRange args) {
               linalg::YieldOp::create(nb, l, combine(nb, l, args));
             })
      .getResult(0);
}

/// jamba.router_topk: p = softmax(cvt(logits)) per row, then k rounds of
/// selection. Round j takes the largest p among the experts that come after
/// the previous pick in the order (p descending, index ascending), keeping
/// the lower index on ties, exactly like the reference's strict '>' scan
/// over the experts not yet taken, without a "taken" array.
struct RouterTopKLowering : OpConversionPattern<RouterTopKOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(RouterTopKOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    OpBuilder &b = rewriter;
    Value logits = adaptor.getLogits();
    auto logitsType = cast<RankedTensorType>(logits.getType());
    auto weightsType = cast<RankedTensorType>(op.getWeights().getType());
    auto indicesType = cast<RankedTensorType>(op.getIndices().getType());
    int64_t rank = logitsType.getRank(), k = op.getTopK();
    Type accType = computeType(logitsType.getElementType());
    Type indexElem = indicesType.getElementType();

    // The 2-D view [rows, experts].
    Value flat = logits;
    if (rank == 1) {
      SmallVector<OpFoldResult> shape{
          b.getIndexAttr(1),
          pickSize(b, loc, ShapedType::kDynamic, {{logits, 0}})};
      flat = tensor::ExpandShapeOp::create(
          b, loc,
          RankedTensorType::get(staticShape(shape),
                                logitsType.getElementType()),
          logits, {{0, 1}}, shape);
    } else if (rank > 2) {
      ReassociationIndices lead;
      for (int64_t i = 0; i + 1 < rank; ++i)
        lead.push_back(i);
      flat = tensor::CollapseShapeOp::create(
          b, loc, logits, SmallVector<ReassociationIndices>{lead, {rank - 1}});
    }
    OpFoldResult rows = pickSize(b, loc, ShapedType::kDynamic, {{flat, 0}});
    OpFoldResult experts = pickSize(b, loc, ShapedType::kDynamic, {{flat, 1}});

    // Softmax (max-subtracted, like the reference).
    Value rowMax =
        reduceRows(b, loc, flat, {}, rows, accType, -INFINITY,
                   [&](OpBuilder &nb, Location l, ValueRange a) -> Value {
                     return arith::MaximumFOp::create(
                         nb, l, a[1], convertScalar(nb, l, a[0], accType));
                   });
    Value rowSum =
        reduceRows(b, loc, flat, {rowMax}, rows, accType, 0.0,
                   [&](OpBuilder &nb, Location l, ValueRange a) -> Value {
                     Value shifted = arith::SubFOp::create(
                         nb, l, convertScalar(nb, l, a[0], accType), a[1]);
                     return arith::AddFOp::create(
                         nb, l, a[2], math::ExpOp::create(nb, l, shifted));
                   });
    MLIRContext *ctx = op.getContext();
    Value probs = buildElementwise(
        b, loc, ValueRange{flat, rowMax, rowSum},
        {b.getMultiDimIdentityMap(2), projection(ctx, 2, {0}),
         projection(ctx, 2, {0})},
        emptyTensor(b, loc, {rows, experts}, accType),
        [&](OpBuilder &nb, Location l, ValueRange in, Value) -> Value {
          Value shifted = arith::SubFOp::create(
              nb, l, convertScalar(nb, l, in[0], accType), in[1]);
          return arith::DivFOp::create(
              nb, l, math::ExpOp::create(nb, l, shifted), in[2]);
        });

    // Top-k by repeated selection.
    Value c0 = indexConst(b, loc, 0), c1 = indexConst(b, loc, 1),
          cK = indexConst(b, loc, k), minusOne = indexConst(b, loc, -1);
    Value numRows = getValueOrCreateConstantIndexOp(b, loc, rows);
    Value numExperts = getValueOrCreateConstantIndexOp(b, loc, experts);
    Value zero = floatConst(b, loc, accType, 0.0);
    Value inf = floatConst(b, loc, accType, INFINITY);
    OpFoldResult kSize = b.getIndexAttr(k);
    Value weightsInit = emptyTensor(b, loc, {rows, kSize}, accType);
    Value indicesInit = emptyTensor(b, loc, {rows, kSize}, indexElem);
    bool normalize = op.getNormalize();

    auto rowLoop = scf::ForOp::create(
        b, loc, c0, numRows, c1, ValueRange{weightsInit, indicesInit},
        [&](OpBuilder &rb, Location l, Value r, ValueRange rowIter) {
          auto pickLoop = scf::ForOp::create(
              rb, l, c0, cK, c1,
              ValueRange{rowIter[0], rowIter[1], inf, minusOne, zero},
              [&](OpBuilder &jb, Location jl, Value j, ValueRange it) {
                Value prevVal = it[2], prevIdx = it[3];
                auto scan = scf::ForOp::create(
                    jb, jl, c0, numExperts, c1, ValueRange{zero, minusOne},
                    [&](OpBuilder &eb, Location el, Value e, ValueRange best) {
                      Value p = tensor::ExtractOp::create(eb, el, probs,
                                                          ValueRange{r, e});
                      // Eligible: after (prevVal, prevIdx) in the order.
                      Value below = arith::CmpFOp::create(
                          eb, el, arith::CmpFPredicate::OLT, p, prevVal);
                      Value same = arith::CmpFOp::create(
                          eb, el, arith::CmpFPredicate::OEQ, p, prevVal);
                      Value later = arith::CmpIOp::create(
                          eb, el, arith::CmpIPredicate::sgt, e, prevIdx);
                      Value eligible = arith::OrIOp::create(
                          eb, el, below,
                          arith::AndIOp::create(eb, el, same, later));
                      // Better: the first eligible one, or strictly larger.
                      Value none = arith::CmpIOp::create(
                          eb, el, arith::CmpIPredicate::slt, best[1], c0);
                      Value larger = arith::CmpFOp::create(
                          eb, el, arith::CmpFPredicate::OGT, p, best[0]);
                      Value take = arith::AndIOp::create(
                          eb, el, eligible,
                          arith::OrIOp::create(eb, el, none, larger));
                      scf::YieldOp::create(
                          eb, el,
                          ValueRange{
                              arith::SelectOp::create(eb, el, take, p, best[0]),
                              arith::SelectOp::create(eb, el, take, e,
                                                      best[1])});
                    });
                Value bestVal = scan.getResult(0), bestIdx = scan.getResult(1);
                Value w = tensor::InsertOp::create(jb, jl, bestVal, it[0],
                                                   ValueRange{r, j});
                Value idx = tensor::InsertOp::create(
                    jb, jl, convertScalar(jb, jl, bestIdx, indexElem), it[1],
                    ValueRange{r, j});
                Value picked = arith::AddFOp::create(jb, jl, it[4], bestVal);
                scf::YieldOp::create(
                    jb, jl, ValueRange{w, idx, bestVal, bestIdx, picked});
              });
          Value w = pickLoop.getResult(0);
          if (normalize) {
            Value picked = pickLoop.getResult(4);
            w = scf::ForOp::create(
                    rb, l, c0, cK, c1, ValueRange{w},
                    [&](OpBuilder &nb, Location nl, Value j, ValueRange it) {
                      Value v = tensor::ExtractOp::create(nb, nl, it[0],
                                                          ValueRange{r, j});
                      Value q = arith::DivFOp::create(nb, nl, v, picked);
                      scf::YieldOp::create(
                          nb, nl,
                          ValueRange{tensor::InsertOp::create(
                              nb, nl, q, it[0], ValueRange{r, j})});
                    })
                    .getResult(0);
          }
          scf::YieldOp::create(rb, l, ValueRange{w, pickLoop.getResult(1)});
        });
    Value weights = rowLoop.getResult(0), indices = rowLoop.getResult(1);
    Type weightElem = weightsType.getElementType();
    if (weightElem != accType)
      weights = buildElementwise(
          b, loc, ValueRange{weights}, {b.getMultiDimIdentityMap(2)},
          emptyTensor(b, loc, {rows, kSize}, weightElem),
          [&](OpBuilder &nb, Location l, ValueRange in, Value) {
            return convertScalar(nb, l, in[0], weightElem);
          });

    // Back to the logits' leading shape.
    auto reshape = [&](Value v) -> Value {
      if (rank == 2)
        return v;
      if (rank == 1)
        return tensor::CollapseShapeOp::create(
            b, loc, v, SmallVector<ReassociationIndices>{{0, 1}});
      SmallVector<OpFoldResult> shape;
      ReassociationIndices lead;
      for (int64_t i = 0; i + 1 < rank; ++i) {
        shape.push_back(
            pickSize(b, loc, weightsType.getDimSize(i), {{logits, i}}));
        lead.push_back(i);
      }
      shape.push_back(kSize);
      auto type = cast<RankedTensorType>(v.getType());
      if (llvm::count_if(ArrayRef(shape).drop_back(), [](OpFoldResult s) {
            return !getConstantIntValue(s);
          }) > 1) {
        // Two or more dynamic sizes in one group: MLIR 22's
        // expand-strided-metadata crashes on such a memref.expand_shape, so
        // gather the rows instead: out[i0, .., j] = v[flat(i0, ..), j].
        return buildElementwise(
            b, loc, ValueRange{}, {},
            emptyTensor(b, loc, shape, type.getElementType()),
            [&](OpBuilder &nb, Location l, ValueRange, Value) -> Value {
              Value row = linalg::IndexOp::create(nb, l, 0);
              for (int64_t i = 1; i + 1 < rank; ++i)
                row = arith::AddIOp::create(
                    nb, l,
                    arith::MulIOp::create(
                        nb, l, row,
                        getValueOrCreateConstantIndexOp(nb, l, shape[i])),
                    linalg::IndexOp::create(nb, l, i));
              Value j = linalg::IndexOp::create(nb, l, rank - 1);
              return tensor::ExtractOp::create(nb, l, v, ValueRange{row, j});
            });
      }
      return tensor::ExpandShapeOp::create(
          b, loc,
          RankedTensorType::get(staticShape(shape), type.getElementType()), v,
          SmallVector<ReassociationIndices>{lead, {rank - 1}}, shape);
    };
    rewriter.replaceOp(op,
                       {castIfNeeded(b, loc, reshape(weights), weightsType),
                        castIfNeeded(b, loc, reshape(indices), indicesType)});
    return success();
  }
};

/// jamba.argmax: one `linalg.generic` over the logits reducing the last
/// dimension into the row's best value (f32) and id (i32). An element at k
/// replaces the best (v, i) when it is larger, or equal with k < i: the
/// largest value's lowest index whatever order the reduction takes. A NaN
/// makes the id -1, which stays. The values start at -inf and the ids at
/// INT32_MAX; a row whose best value is still -inf (every value is) has no
/// id to choose either, and an elementwise map makes its id -1.
struct ArgmaxLowering : OpConversionPattern<ArgmaxOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(ArgmaxOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    OpBuilder &b = rewriter;
    Value logits = adaptor.getLogits();
    auto logitsType = cast<RankedTensorType>(logits.getType());
    auto idsType = cast<RankedTensorType>(op.getIds().getType());
    const unsigned rank = logitsType.getRank();
    Type f32 = b.getF32Type(), i32 = b.getI32Type();
    SmallVector<OpFoldResult> rows;
    for (unsigned d = 0; d + 1 < rank; ++d)
      rows.push_back(pickSize(b, loc, idsType.getDimSize(d), {{logits, d}}));
    Value best = filledTensor(b, loc, rows, f32, -INFINITY);
    Value ids = linalg::FillOp::create(
                    b, loc,
                    ValueRange{arith::ConstantIntOp::create(
                        b, loc, i32, std::numeric_limits<int32_t>::max())},
                    ValueRange{emptyTensor(b, loc, rows, i32)})
                    .getResult(0);
    MLIRContext *ctx = b.getContext();
    SmallVector<unsigned> lead = iota(rank - 1);
    SmallVector<AffineMap> maps{b.getMultiDimIdentityMap(rank),
                                projection(ctx, rank, lead),
                                projection(ctx, rank, lead)};
    auto reduce = linalg::GenericOp::create(
        b, loc, TypeRange{best.getType(), ids.getType()}, ValueRange{logits},
        ValueRange{best, ids}, maps, iterators(rank, {rank - 1}),
        [&](OpBuilder &nb, Location l, ValueRange args) {
          Value x = convertScalar(nb, l, args[0], f32);
          Value v = args[1], i = args[2];
          Value k = arith::IndexCastOp::create(
              nb, l, i32, linalg::IndexOp::create(nb, l, rank - 1));
          Value larger =
              arith::CmpFOp::create(nb, l, arith::CmpFPredicate::OGT, x, v);
          Value tie = arith::AndIOp::create(
              nb, l,
              arith::CmpFOp::create(nb, l, arith::CmpFPredicate::OEQ, x, v),
              arith::CmpIOp::create(nb, l, arith::CmpIPredicate::slt, k, i));
          Value take = arith::OrIOp::create(nb, l, larger, tie);
          Value nan = arith::OrIOp::create(
              nb, l,
              arith::CmpFOp::create(nb, l, arith::CmpFPredicate::UNO, x, x),
              arith::CmpIOp::create(
                  nb, l, arith::CmpIPredicate::slt, i,
                  arith::ConstantIntOp::create(nb, l, i32, 0)));
          Value id = arith::SelectOp::create(
              nb, l, nan, arith::ConstantIntOp::create(nb, l, i32, -1),
              arith::SelectOp::create(nb, l, take, k, i));
          linalg::YieldOp::create(
              nb, l,
              ValueRange{arith::SelectOp::create(nb, l, take, x, v), id});
        });
    Value chosen = buildElementwise(
        b, loc, reduce.getResults(),
        {b.getMultiDimIdentityMap(rank - 1),
         b.getMultiDimIdentityMap(rank - 1)},
        emptyTensor(b, loc, rows, i32),
        [&](OpBuilder &nb, Location l, ValueRange in, Value) -> Value {
          Value none =
              arith::CmpFOp::create(nb, l, arith::CmpFPredicate::OEQ, in[0],
                                    floatConst(nb, l, f32, -INFINITY));
          return arith::SelectOp::create(
              nb, l, none, arith::ConstantIntOp::create(nb, l, i32, -1), in[1]);
        });
    rewriter.replaceOp(op, castIfNeeded(b, loc, chosen, idsType));
    return success();
  }
};

} // namespace

void mlir::jamba::lowering::populateRouterLoweringPatterns(
    RewritePatternSet &patterns) {
  patterns.add<RouterTopKLowering, ArgmaxLowering>(patterns.getContext());
}

//===- ElementwiseOps.cpp - norms, activations, slots, gathers to linalg --===//
//
// Part of jamba-mlir. jamba.rms_norm, jamba.swiglu, jamba.combine_slots and
// jamba.embedding: elementwise and row-reduction `linalg.generic`s, math in
// f32 (f64 for f64 tensors) and one rounding to the result type.
//
//===----------------------------------------------------------------------===//

#include "LoweringUtils.h"

#include "jamba/Dialect/Jamba/IR/JambaOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Math/IR/Math.h"

using namespace mlir;
using namespace mlir::jamba;
using namespace mlir::jamba::lowering;

namespace {

/// The sizes of `v`, static where `type` (the op's result) or `v` knows them.
SmallVector<OpFoldResult> sizesLike(OpBuilder &b, Location loc, Value v,
                                    RankedTensorType type) {
  SmallVector<OpFoldResult> sizes;
  for (int64_t i = 0, e = type.getRank(); i < e; ++i)
    sizes.push_back(pickSize(b, loc, type.getDimSize(i), {{v, i}}));
  return sizes;
}

/// jamba.rms_norm (SPEC 1.5.3): sumSq[...] = sum_i x^2 in f32, inv =
/// 1 / sqrt(sumSq / H + eps), y = w * cvt(x * inv).
struct RMSNormLowering : OpConversionPattern<RMSNormOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(RMSNormOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = op.getContext();
    Value x = adaptor.getInput(), weight = adaptor.getWeight();
    auto resultType = cast<RankedTensorType>(op.getType());
    unsigned rank = resultType.getRank();
    Type elem = resultType.getElementType(), accType = computeType(elem);

    SmallVector<OpFoldResult> sizes = sizesLike(rewriter, loc, x, resultType);
    sizes.back() = pickSize(rewriter, loc, resultType.getDimSize(rank - 1),
                            {{x, rank - 1}, {weight, 0}});
    ArrayRef<OpFoldResult> rowSizes = ArrayRef(sizes).drop_back();
    SmallVector<unsigned> lead = iota(rank - 1);

    // The sum of squares of every row.
    Value zero = filledTensor(rewriter, loc, rowSizes, accType, 0.0);
    Value sumSq =
        linalg::GenericOp::create(
            rewriter, loc, TypeRange{zero.getType()}, ValueRange{x},
            ValueRange{zero},
            {rewriter.getMultiDimIdentityMap(rank),
             projection(ctx, rank, lead)},
            iterators(rank, {rank - 1}),
            [&](OpBuilder &b, Location l, ValueRange args) {
              Value v = convertScalar(b, l, args[0], accType);
              Value sq = arith::MulFOp::create(b, l, v, v);
              linalg::YieldOp::create(
                  b, l, ValueRange{arith::AddFOp::create(b, l, args[1], sq)});
            })
            .getResult(0);

    // inv = 1 / sqrt(sumSq / H + eps), once per row.
    Value h = getValueOrCreateConstantIndexOp(rewriter, loc, sizes.back());
    Value hFloat = arith::SIToFPOp::create(
        rewriter, loc, accType,
        arith::IndexCastOp::create(rewriter, loc, rewriter.getI64Type(), h));
    Value eps =
        floatConst(rewriter, loc, accType, op.getEpsilon().convertToDouble());
    Value inv = buildElementwise(
        rewriter, loc, ValueRange{sumSq},
        {rewriter.getMultiDimIdentityMap(rank - 1)},
        emptyTensor(rewriter, loc, rowSizes, accType),
        [&](OpBuilder &b, Location l, ValueRange in, Value) {
          Value mean = arith::DivFOp::create(b, l, in[0], hFloat);
          Value root = math::SqrtOp::create(
              b, l, arith::AddFOp::create(b, l, mean, eps));
          return arith::DivFOp::create(b, l, floatConst(b, l, accType, 1.0),
                                       root)
              .getResult();
        });

    // y = w * cvt(x * inv): the normalised value is rounded to the input
    // type before the weight multiplies it, as SPEC 1.5.3 writes it.
    Value result = buildElementwise(
        rewriter, loc, ValueRange{x, weight, inv},
        {rewriter.getMultiDimIdentityMap(rank),
         projection(ctx, rank, {rank - 1}), projection(ctx, rank, lead)},
        emptyTensor(rewriter, loc, sizes, elem),
        [&](OpBuilder &b, Location l, ValueRange in, Value) {
          Value n = arith::MulFOp::create(
              b, l, convertScalar(b, l, in[0], accType), in[2]);
          n = convertScalar(b, l, convertScalar(b, l, n, elem), accType);
          Value y = arith::MulFOp::create(
              b, l, convertScalar(b, l, in[1], accType), n);
          return convertScalar(b, l, y, elem);
        });
    rewriter.replaceOp(op, castIfNeeded(rewriter, loc, result, resultType));
    return success();
  }
};

/// jamba.swiglu: y = cvt(SiLU(gate) * up).
struct SwiGLULowering : OpConversionPattern<SwiGLUOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(SwiGLUOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value gate = adaptor.getGate(), up = adaptor.getUp();
    auto resultType = cast<RankedTensorType>(op.getType());
    unsigned rank = resultType.getRank();
    Type elem = resultType.getElementType(), accType = computeType(elem);
    SmallVector<OpFoldResult> sizes;
    for (unsigned i = 0; i < rank; ++i)
      sizes.push_back(pickSize(rewriter, loc, resultType.getDimSize(i),
                               {{gate, i}, {up, i}}));
    AffineMap id = rewriter.getMultiDimIdentityMap(rank);
    Value result = buildElementwise(
        rewriter, loc, ValueRange{gate, up}, {id, id},
        emptyTensor(rewriter, loc, sizes, elem),
        [&](OpBuilder &b, Location l, ValueRange in, Value) {
          Value g = buildSilu(b, l, convertScalar(b, l, in[0], accType));
          Value y = arith::MulFOp::create(b, l, g,
                                          convertScalar(b, l, in[1], accType));
          return convertScalar(b, l, y, elem);
        });
    rewriter.replaceOp(op, castIfNeeded(rewriter, loc, result, resultType));
    return success();
  }
};

/// jamba.combine_slots: y[..., n] = sum_j x[..., j, n] (slot order).
struct CombineSlotsLowering : OpConversionPattern<CombineSlotsOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(CombineSlotsOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = op.getContext();
    Value x = adaptor.getInput();
    auto resultType = cast<RankedTensorType>(op.getType());
    unsigned rank = cast<RankedTensorType>(x.getType()).getRank();
    Type elem = resultType.getElementType(), accType = computeType(elem);
    SmallVector<OpFoldResult> sizes;
    SmallVector<unsigned> outDims;
    for (unsigned i = 0; i < rank; ++i) {
      if (i == rank - 2)
        continue;
      sizes.push_back(pickSize(rewriter, loc,
                               resultType.getDimSize(sizes.size()), {{x, i}}));
      outDims.push_back(i);
    }
    Value zero = filledTensor(rewriter, loc, sizes, accType, 0.0);
    Value result =
        linalg::GenericOp::create(
            rewriter, loc, TypeRange{zero.getType()}, ValueRange{x},
            ValueRange{zero},
            {rewriter.getMultiDimIdentityMap(rank),
             projection(ctx, rank, outDims)},
            iterators(rank, {rank - 2}),
            [&](OpBuilder &b, Location l, ValueRange args) {
              Value v = convertScalar(b, l, args[0], accType);
              linalg::YieldOp::create(
                  b, l, ValueRange{arith::AddFOp::create(b, l, args[1], v)});
            })
            .getResult(0);
    if (elem != accType)
      result =
          buildElementwise(rewriter, loc, ValueRange{result},
                           {rewriter.getMultiDimIdentityMap(rank - 1)},
                           emptyTensor(rewriter, loc, sizes, elem),
                           [&](OpBuilder &b, Location l, ValueRange in, Value) {
                             return convertScalar(b, l, in[0], elem);
                           });
    rewriter.replaceOp(op, castIfNeeded(rewriter, loc, result, resultType));
    return success();
  }
};

/// jamba.embedding: y[..., h] = table[clamp(ids[...]), h], a gather with
/// tensor.extract. An id outside [0, vocab) is clamped into range (the
/// runtime rejects such ids before running; the clamp keeps the kernel
/// memory-safe).
struct EmbeddingLowering : OpConversionPattern<EmbeddingOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(EmbeddingOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value table = adaptor.getTable(), ids = adaptor.getIds();
    auto resultType = cast<RankedTensorType>(op.getType());
    unsigned q = cast<RankedTensorType>(ids.getType()).getRank();
    SmallVector<OpFoldResult> sizes;
    for (unsigned i = 0; i < q; ++i)
      sizes.push_back(
          pickSize(rewriter, loc, resultType.getDimSize(i), {{ids, i}}));
    sizes.push_back(
        pickSize(rewriter, loc, resultType.getDimSize(q), {{table, 1}}));
    Value vocab = getValueOrCreateConstantIndexOp(
        rewriter, loc,
        pickSize(rewriter, loc, ShapedType::kDynamic, {{table, 0}}));
    Value result = buildElementwise(
        rewriter, loc, ValueRange{ids},
        {projection(op.getContext(), q + 1, iota(q))},
        emptyTensor(rewriter, loc, sizes, resultType.getElementType()),
        [&](OpBuilder &b, Location l, ValueRange in, Value) {
          Value id = clampIndex(
              b, l, convertScalar(b, l, in[0], b.getIndexType()), vocab);
          Value h = linalg::IndexOp::create(b, l, q);
          // The table may be stored narrower than the activations (bf16
          // weights, f32 compute).
          Value v = tensor::ExtractOp::create(b, l, table, ValueRange{id, h});
          return convertScalar(b, l, v, resultType.getElementType());
        });
    rewriter.replaceOp(op, castIfNeeded(rewriter, loc, result, resultType));
    return success();
  }
};

} // namespace

void mlir::jamba::lowering::populateElementwiseLoweringPatterns(
    RewritePatternSet &patterns) {
  patterns.add<RMSNormLowering, SwiGLULowering, CombineSlotsLowering,
               EmbeddingLowering>(patterns.getContext());
}

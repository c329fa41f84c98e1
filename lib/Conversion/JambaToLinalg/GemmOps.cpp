//===- GemmOps.cpp - jamba.linear, expert_gemm, dequant to linalg ---------===//
//
// Part of jamba-mlir. The GEMM family of convert-jamba-to-linalg: a
// reduction `linalg.generic` accumulating in f32 (int8 weights converted in
// its body), then an elementwise epilogue applying the per-row scale, the
// bias or routing weight and the rounding to the result type (SPEC 1.11).
//
//===----------------------------------------------------------------------===//

#include "LoweringUtils.h"

#include "jamba/Dialect/Jamba/IR/JambaOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"

using namespace mlir;
using namespace mlir::jamba;
using namespace mlir::jamba::lowering;

namespace {

/// `acc + cvt(a) * cvt(b)` in the accumulator's type. The K reduction may be
/// reassociated and contracted into FMAs, so LLVM can keep partial sums in
/// vector lanes (TOOLCHAIN.md: an ordered reduction stays scalar).
Value multiplyAccumulate(OpBuilder &b, Location loc, Value a, Value w,
                         Value acc) {
  Type t = acc.getType();
  auto fast = arith::FastMathFlags::reassoc | arith::FastMathFlags::contract;
  Value product = arith::MulFOp::create(b, loc, convertScalar(b, loc, a, t),
                                        convertScalar(b, loc, w, t), fast);
  return arith::AddFOp::create(b, loc, acc, product, fast);
}

/// jamba.linear: acc[..., n] = sum_k x[..., k] * W[n, k] over the K loop,
/// then result = cvt(acc * scale[n] + bias[n]).
struct LinearLowering : OpConversionPattern<LinearOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(LinearOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = op.getContext();
    Value x = adaptor.getInput(), w = adaptor.getWeight(),
          scale = adaptor.getScale(), bias = adaptor.getBias();
    auto resultType = cast<RankedTensorType>(op.getType());
    unsigned rank = resultType.getRank();
    Type elem = resultType.getElementType(), accType = computeType(elem);

    SmallVector<OpFoldResult> sizes;
    for (unsigned i = 0; i + 1 < rank; ++i)
      sizes.push_back(
          pickSize(rewriter, loc, resultType.getDimSize(i), {{x, int64_t(i)}}));
    SmallVector<std::pair<Value, int64_t>> rowSources{{w, 0}};
    if (scale)
      rowSources.push_back({scale, 0});
    if (bias)
      rowSources.push_back({bias, 0});
    sizes.push_back(
        pickSize(rewriter, loc, resultType.getDimSize(rank - 1), rowSources));

    // Loops: the leading dims, n, then the reduction over k.
    unsigned numLoops = rank + 1, nDim = rank - 1, kDim = rank;
    SmallVector<unsigned> lead = iota(rank - 1);
    SmallVector<unsigned> xDims(lead);
    xDims.push_back(kDim);
    SmallVector<AffineMap> maps{projection(ctx, numLoops, xDims),
                                projection(ctx, numLoops, {nDim, kDim}),
                                projection(ctx, numLoops, iota(rank))};
    Value init = filledTensor(rewriter, loc, sizes, accType, 0.0);
    Value acc =
        linalg::GenericOp::create(
            rewriter, loc, TypeRange{init.getType()}, ValueRange{x, w},
            ValueRange{init}, maps, iterators(numLoops, {kDim}),
            [&](OpBuilder &b, Location l, ValueRange args) {
              linalg::YieldOp::create(
                  b, l, multiplyAccumulate(b, l, args[0], args[1], args[2]));
            })
            .getResult(0);

    Value result = acc;
    if (scale || bias || elem != accType) {
      SmallVector<Value> inputs{acc};
      SmallVector<AffineMap> epilogueMaps{
          rewriter.getMultiDimIdentityMap(rank)};
      for (Value v : {scale, bias}) {
        if (!v)
          continue;
        inputs.push_back(v);
        epilogueMaps.push_back(projection(ctx, rank, {nDim}));
      }
      Value out = emptyTensor(rewriter, loc, sizes, elem);
      result = buildElementwise(
          rewriter, loc, inputs, epilogueMaps, out,
          [&](OpBuilder &b, Location l, ValueRange in, Value) {
            Value v = in[0];
            unsigned next = 1;
            // ExpertsInt8: the scale after the K loop, then the bias.
            if (scale)
              v = arith::MulFOp::create(
                  b, l, v, convertScalar(b, l, in[next++], accType));
            if (bias)
              v = arith::AddFOp::create(
                  b, l, v, convertScalar(b, l, in[next++], accType));
            return convertScalar(b, l, v, elem);
          });
    }
    rewriter.replaceOp(op, castIfNeeded(rewriter, loc, result, resultType));
    return success();
  }
};

/// jamba.expert_gemm: for every token and slot j, the weight row of expert
/// e = indices[..., j] is gathered with tensor.extract inside the K loop;
/// the epilogue applies scale[e, n] and route_weights[..., j].
struct ExpertGemmLowering : OpConversionPattern<ExpertGemmOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(ExpertGemmOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = op.getContext();
    Value x = adaptor.getInput(), w = adaptor.getWeight(),
          scale = adaptor.getScale(), indices = adaptor.getIndices(),
          routeWeights = adaptor.getRouteWeights(),
          offsetTensor = adaptor.getExpertOffset();
    auto resultType = cast<RankedTensorType>(op.getType());
    unsigned q = cast<RankedTensorType>(indices.getType()).getRank();
    bool perSlot = cast<RankedTensorType>(x.getType()).getRank() == q + 1;
    Type elem = resultType.getElementType(), accType = computeType(elem);

    // Result [..., k, N]: leading dims and k from indices (and the other
    // operands that carry them), N from the weight.
    SmallVector<OpFoldResult> sizes;
    for (unsigned i = 0; i < q; ++i) {
      SmallVector<std::pair<Value, int64_t>> sources{{indices, i}};
      if (routeWeights)
        sources.push_back({routeWeights, i});
      if (perSlot || i + 1 < q)
        sources.push_back({x, i});
      sizes.push_back(
          pickSize(rewriter, loc, resultType.getDimSize(i), sources));
    }
    sizes.push_back(
        pickSize(rewriter, loc, resultType.getDimSize(q), {{w, 1}}));
    Value numExperts = getValueOrCreateConstantIndexOp(
        rewriter, loc, pickSize(rewriter, loc, ShapedType::kDynamic, {{w, 0}}));
    // Expert parallelism: expert e is weight row e - offset; rows of other
    // ranks' experts are zeroed in the epilogue. The offset is read where it
    // is used, inside the loop bodies, so that no scalar of a (device)
    // buffer is read outside them.
    const bool offset = static_cast<bool>(offsetTensor);
    auto localExpert = [&](OpBuilder &b, Location l, Value raw) {
      Value e = convertScalar(b, l, raw, b.getIndexType());
      if (!offset)
        return e;
      Value first = convertScalar(
          b, l,
          tensor::ExtractOp::create(b, l, offsetTensor,
                                    ValueRange{indexConst(b, l, 0)}),
          b.getIndexType());
      return arith::SubIOp::create(b, l, e, first).getResult();
    };

    // Loops: leading dims, slot j (dim q - 1), row n, then the reduction
    // over k.
    unsigned numLoops = q + 2, nDim = q, kDim = q + 1;
    SmallVector<unsigned> slotDims = iota(q);
    SmallVector<unsigned> xDims =
        perSlot ? iota(q) : SmallVector<unsigned>(iota(q - 1));
    xDims.push_back(kDim);
    SmallVector<AffineMap> maps{projection(ctx, numLoops, xDims),
                                projection(ctx, numLoops, slotDims),
                                projection(ctx, numLoops, iota(q + 1))};
    Value init = filledTensor(rewriter, loc, sizes, accType, 0.0);
    Value acc =
        linalg::GenericOp::create(
            rewriter, loc, TypeRange{init.getType()}, ValueRange{x, indices},
            ValueRange{init}, maps, iterators(numLoops, {kDim}),
            [&](OpBuilder &b, Location l, ValueRange args) {
              Value e =
                  clampIndex(b, l, localExpert(b, l, args[1]), numExperts);
              Value n = linalg::IndexOp::create(b, l, nDim);
              Value k = linalg::IndexOp::create(b, l, kDim);
              Value wv =
                  tensor::ExtractOp::create(b, l, w, ValueRange{e, n, k});
              linalg::YieldOp::create(
                  b, l, multiplyAccumulate(b, l, args[0], wv, args[2]));
            })
            .getResult(0);

    Value result = acc;
    if (scale || routeWeights || offset || elem != accType) {
      unsigned rank = q + 1;
      SmallVector<Value> inputs{acc, indices};
      SmallVector<AffineMap> epilogueMaps{rewriter.getMultiDimIdentityMap(rank),
                                          projection(ctx, rank, iota(q))};
      if (routeWeights) {
        inputs.push_back(routeWeights);
        epilogueMaps.push_back(projection(ctx, rank, iota(q)));
      }
      Value out = emptyTensor(rewriter, loc, sizes, elem);
      result = buildElementwise(
          rewriter, loc, inputs, epilogueMaps, out,
          [&](OpBuilder &b, Location l, ValueRange in, Value) {
            Value v = in[0];
            if (scale) {
              Value e = clampIndex(b, l, localExpert(b, l, in[1]), numExperts);
              Value n = linalg::IndexOp::create(b, l, nDim);
              Value s =
                  tensor::ExtractOp::create(b, l, scale, ValueRange{e, n});
              v = arith::MulFOp::create(b, l, v,
                                        convertScalar(b, l, s, accType));
            }
            if (routeWeights)
              v = arith::MulFOp::create(b, l, v,
                                        convertScalar(b, l, in[2], accType));
            if (offset) {
              Value e = localExpert(b, l, in[1]);
              Value low = arith::CmpIOp::create(b, l, arith::CmpIPredicate::sge,
                                                e, indexConst(b, l, 0));
              Value high = arith::CmpIOp::create(
                  b, l, arith::CmpIPredicate::slt, e, numExperts);
              v = arith::SelectOp::create(
                  b, l, arith::AndIOp::create(b, l, low, high), v,
                  floatConst(b, l, accType, 0.0));
            }
            return convertScalar(b, l, v, elem);
          });
    }
    rewriter.replaceOp(op, castIfNeeded(rewriter, loc, result, resultType));
    return success();
  }
};

/// jamba.dequant: result[..., n, k] = cvt(scale[..., n] * q[..., n, k]).
struct DequantLowering : OpConversionPattern<DequantOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(DequantOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value q = adaptor.getInput(), scale = adaptor.getScale();
    auto resultType = cast<RankedTensorType>(op.getType());
    unsigned rank = resultType.getRank();
    Type elem = resultType.getElementType(), accType = computeType(elem);
    SmallVector<OpFoldResult> sizes;
    for (unsigned i = 0; i < rank; ++i) {
      SmallVector<std::pair<Value, int64_t>> sources{{q, i}};
      if (i + 1 < rank)
        sources.push_back({scale, i});
      sizes.push_back(
          pickSize(rewriter, loc, resultType.getDimSize(i), sources));
    }
    Value out = emptyTensor(rewriter, loc, sizes, elem);
    Value result = buildElementwise(
        rewriter, loc, ValueRange{q, scale},
        {rewriter.getMultiDimIdentityMap(rank),
         projection(op.getContext(), rank, iota(rank - 1))},
        out, [&](OpBuilder &b, Location l, ValueRange in, Value) {
          Value v =
              arith::MulFOp::create(b, l, convertScalar(b, l, in[1], accType),
                                    convertScalar(b, l, in[0], accType));
          return convertScalar(b, l, v, elem);
        });
    rewriter.replaceOp(op, castIfNeeded(rewriter, loc, result, resultType));
    return success();
  }
};

} // namespace

void mlir::jamba::lowering::populateGemmLoweringPatterns(
    RewritePatternSet &patterns) {
  patterns.add<LinearLowering, ExpertGemmLowering, DequantLowering>(
      patterns.getContext());
}

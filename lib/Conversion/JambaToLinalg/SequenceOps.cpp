//===- SequenceOps.cpp - causal_conv1d and selective_scan to linalg/scf ---===//
//
// Part of jamba-mlir. The Mamba primitives (SPEC 1.5.5, 1.6): the causal
// conv as a reduction `linalg.generic` over the kernel width reading either
// the carried state or the input, and the selective scan as an `scf.for`
// over time carrying the f32 state [B, Di, N] and the output in iter_args,
// with one parallel `linalg.generic` per step for the state update and one
// for the output row.
//
//===----------------------------------------------------------------------===//

#include "LoweringUtils.h"

#include "jamba/Dialect/Jamba/IR/JambaOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

using namespace mlir;
using namespace mlir::jamba;
using namespace mlir::jamba::lowering;

namespace {

/// Element `pos` of the extended sequence of channel (b, c): the carried
/// state [B, D, K-1] for pos < past, the input [B, S, D] after it.
Value extendedInput(OpBuilder &b, Location loc, Value state, Value x,
                    Value past, Value batch, Value channel, Value pos) {
  Value inState =
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, pos, past);
  auto ifOp = scf::IfOp::create(
      b, loc, inState,
      [&](OpBuilder &tb, Location l) {
        Value v = tensor::ExtractOp::create(tb, l, state,
                                            ValueRange{batch, channel, pos});
        scf::YieldOp::create(tb, l, v);
      },
      [&](OpBuilder &eb, Location l) {
        Value t = arith::SubIOp::create(eb, l, pos, past);
        Value v =
            tensor::ExtractOp::create(eb, l, x, ValueRange{batch, t, channel});
        scf::YieldOp::create(eb, l, v);
      });
  return ifOp.getResult(0);
}

/// jamba.causal_conv1d: y[b,t,c] = bias[c] + sum_j w[c,j] * ext[t+j], the
/// reduction over j in a linalg.generic whose body reads the state or the
/// input; SiLU and rounding in an epilogue; new_state = ext[S .. S+K-2].
struct CausalConv1dLowering : OpConversionPattern<CausalConv1dOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(CausalConv1dOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = op.getContext();
    OpBuilder &b = rewriter;
    Value x = adaptor.getInput(), w = adaptor.getWeight(),
          bias = adaptor.getBias(), state = adaptor.getState();
    auto yType = cast<RankedTensorType>(op.getResult().getType());
    auto stateType = cast<RankedTensorType>(op.getNewState().getType());
    Type elem = yType.getElementType(), accType = computeType(elem);

    SmallVector<OpFoldResult> sizes{
        pickSize(b, loc, yType.getDimSize(0), {{x, 0}, {state, 0}}),
        pickSize(b, loc, yType.getDimSize(1), {{x, 1}}),
        pickSize(b, loc, yType.getDimSize(2), {{x, 2}, {w, 0}, {state, 1}})};
    OpFoldResult width = pickSize(b, loc, ShapedType::kDynamic, {{w, 1}});
    Value past = arith::SubIOp::create(
        b, loc, getValueOrCreateConstantIndexOp(b, loc, width),
        indexConst(b, loc, 1));

    // The accumulator starts at the bias.
    Value init;
    if (bias)
      init = buildElementwise(
          b, loc, ValueRange{bias}, {projection(ctx, 3, {2})},
          emptyTensor(b, loc, sizes, accType),
          [&](OpBuilder &nb, Location l, ValueRange in, Value) {
            return convertScalar(nb, l, in[0], accType);
          });
    else
      init = filledTensor(b, loc, sizes, accType, 0.0);

    // Loops (b, t, c, j), j the reduction over the kernel width.
    Value acc =
        linalg::GenericOp::create(
            b, loc, TypeRange{init.getType()}, ValueRange{w}, ValueRange{init},
            {projection(ctx, 4, {2, 3}), projection(ctx, 4, {0, 1, 2})},
            iterators(4, {3}),
            [&](OpBuilder &nb, Location l, ValueRange args) {
              Value bi = linalg::IndexOp::create(nb, l, 0);
              Value t = linalg::IndexOp::create(nb, l, 1);
              Value c = linalg::IndexOp::create(nb, l, 2);
              Value j = linalg::IndexOp::create(nb, l, 3);
              Value pos = arith::AddIOp::create(nb, l, t, j);
              Value v = extendedInput(nb, l, state, x, past, bi, c, pos);
              Value prod = arith::MulFOp::create(
                  nb, l, convertScalar(nb, l, args[0], accType),
                  convertScalar(nb, l, v, accType));
              linalg::YieldOp::create(
                  nb, l,
                  ValueRange{arith::AddFOp::create(nb, l, args[1], prod)});
            })
            .getResult(0);

    Value y = acc;
    bool silu = op.getSilu();
    if (silu || elem != accType)
      y = buildElementwise(
          b, loc, ValueRange{acc}, {b.getMultiDimIdentityMap(3)},
          emptyTensor(b, loc, sizes, elem),
          [&](OpBuilder &nb, Location l, ValueRange in, Value) {
            Value v = silu ? buildSilu(nb, l, in[0]) : in[0];
            return convertScalar(nb, l, v, elem);
          });

    // new_state[b, c, j] = ext[S + j].
    OpFoldResult pastSize =
        pickSize(b, loc, stateType.getDimSize(2), {{state, 2}});
    if (auto k = getConstantIntValue(width);
        k && !getConstantIntValue(pastSize))
      pastSize = b.getIndexAttr(*k - 1);
    SmallVector<OpFoldResult> stateSizes{
        pickSize(b, loc, stateType.getDimSize(0), {{state, 0}, {x, 0}}),
        pickSize(b, loc, stateType.getDimSize(1), {{state, 1}, {x, 2}, {w, 0}}),
        pastSize};
    Value seq = getValueOrCreateConstantIndexOp(b, loc, sizes[1]);
    Value newState = buildElementwise(
        b, loc, ValueRange{}, {},
        emptyTensor(b, loc, stateSizes, stateType.getElementType()),
        [&](OpBuilder &nb, Location l, ValueRange, Value) {
          Value bi = linalg::IndexOp::create(nb, l, 0);
          Value c = linalg::IndexOp::create(nb, l, 1);
          Value j = linalg::IndexOp::create(nb, l, 2);
          Value pos = arith::AddIOp::create(nb, l, seq, j);
          return extendedInput(nb, l, state, x, past, bi, c, pos);
        });
    rewriter.replaceOp(op, {castIfNeeded(b, loc, y, yType),
                            castIfNeeded(b, loc, newState, stateType)});
    return success();
  }
};

/// The rank-reduced [B, X] slice v[:, t, :] of a [B, S, X] tensor.
Value timeSlice(OpBuilder &b, Location loc, Value v, Value t,
                OpFoldResult batch, OpFoldResult last) {
  auto type = cast<RankedTensorType>(v.getType());
  SmallVector<OpFoldResult> offsets{b.getIndexAttr(0), t, b.getIndexAttr(0)};
  SmallVector<OpFoldResult> sizes{batch, b.getIndexAttr(1), last};
  SmallVector<OpFoldResult> strides(3, b.getIndexAttr(1));
  auto sliceType =
      RankedTensorType::get(staticShape({batch, last}), type.getElementType());
  return tensor::ExtractSliceOp::create(b, loc, sliceType, v, offsets, sizes,
                                        strides);
}

/// jamba.selective_scan: an scf.for over time carrying h [B, Di, N] (f32)
/// and y; per step, h = exp(d * A) * h + d * B * u elementwise over
/// (b, c, n), then y[b, t, c] = <C[b, t, :], h[b, c, :]> + D[c] * u, times
/// SiLU(z). d = softplus(delta + delta_bias) is computed for all steps
/// first. The scan's math is f32 whatever the activation type (the op's
/// definition), like its state.
struct SelectiveScanLowering : OpConversionPattern<SelectiveScanOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(SelectiveScanOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = op.getContext();
    OpBuilder &b = rewriter;
    Value u = adaptor.getU(), delta = adaptor.getDelta(), A = adaptor.getA(),
          Bm = adaptor.getB(), Cm = adaptor.getC(), D = adaptor.getD(),
          z = adaptor.getZ(), deltaBias = adaptor.getDeltaBias(),
          h0 = adaptor.getInitState();
    auto yType = cast<RankedTensorType>(op.getResult().getType());
    auto stateType = cast<RankedTensorType>(op.getFinalState().getType());
    Type elem = yType.getElementType();
    Type f32 = stateType.getElementType();

    OpFoldResult batch =
        pickSize(b, loc, yType.getDimSize(0), {{u, 0}, {delta, 0}, {Bm, 0}});
    OpFoldResult seq =
        pickSize(b, loc, yType.getDimSize(1), {{u, 1}, {delta, 1}, {Bm, 1}});
    OpFoldResult inner =
        pickSize(b, loc, yType.getDimSize(2), {{u, 2}, {delta, 2}, {A, 0}});
    OpFoldResult dState =
        pickSize(b, loc, stateType.getDimSize(2), {{A, 1}, {Bm, 2}, {Cm, 2}});
    SmallVector<OpFoldResult> ySizes{batch, seq, inner};
    SmallVector<OpFoldResult> hSizes{batch, inner, dState};

    // d = softplus(delta + delta_bias) for every step, in f32.
    SmallVector<Value> dInputs{delta};
    SmallVector<AffineMap> dMaps{b.getMultiDimIdentityMap(3)};
    if (deltaBias) {
      dInputs.push_back(deltaBias);
      dMaps.push_back(projection(ctx, 3, {2}));
    }
    bool softplus = op.getDeltaSoftplus();
    Value dAll = buildElementwise(
        b, loc, dInputs, dMaps, emptyTensor(b, loc, ySizes, f32),
        [&](OpBuilder &nb, Location l, ValueRange in, Value) {
          Value d = convertScalar(nb, l, in[0], f32);
          if (deltaBias)
            d = arith::AddFOp::create(nb, l, d,
                                      convertScalar(nb, l, in[1], f32));
          return softplus ? buildSoftplus(nb, l, d) : d;
        });

    Value hInit = h0 ? h0 : filledTensor(b, loc, hSizes, f32, 0.0);
    Value yInit = emptyTensor(b, loc, ySizes, elem);
    Value numSteps = getValueOrCreateConstantIndexOp(b, loc, seq);
    Value numStates = getValueOrCreateConstantIndexOp(b, loc, dState);
    Value c0 = indexConst(b, loc, 0), c1 = indexConst(b, loc, 1);

    auto loop = scf::ForOp::create(
        b, loc, c0, numSteps, c1, ValueRange{hInit, yInit},
        [&](OpBuilder &tb, Location l, Value t, ValueRange iter) {
          Value dT = timeSlice(tb, l, dAll, t, batch, inner);
          Value uT = timeSlice(tb, l, u, t, batch, inner);
          Value bT = timeSlice(tb, l, Bm, t, batch, dState);
          Value cT = timeSlice(tb, l, Cm, t, batch, dState);

          // h = exp(d * A) * h + d * B * u over (b, c, n).
          Value h =
              linalg::GenericOp::create(
                  tb, l, TypeRange{iter[0].getType()},
                  ValueRange{dT, uT, A, bT}, ValueRange{iter[0]},
                  {projection(ctx, 3, {0, 1}), projection(ctx, 3, {0, 1}),
                   projection(ctx, 3, {1, 2}), projection(ctx, 3, {0, 2}),
                   tb.getMultiDimIdentityMap(3)},
                  iterators(3),
                  [&](OpBuilder &nb, Location nl, ValueRange a) {
                    Value d = a[0];
                    Value uv = convertScalar(nb, nl, a[1], f32);
                    Value bv = convertScalar(nb, nl, a[3], f32);
                    Value decay = math::ExpOp::create(
                        nb, nl, arith::MulFOp::create(nb, nl, d, a[2]));
                    Value kept = arith::MulFOp::create(nb, nl, decay, a[4]);
                    Value input = arith::MulFOp::create(
                        nb, nl, arith::MulFOp::create(nb, nl, d, bv), uv);
                    linalg::YieldOp::create(
                        nb, nl,
                        ValueRange{arith::AddFOp::create(nb, nl, kept, input)});
                  })
                  .getResult(0);

          // y[:, t, :] = <C, h> + D * u, times SiLU(z), written in place.
          SmallVector<Value> inputs{uT};
          SmallVector<AffineMap> maps{tb.getMultiDimIdentityMap(2)};
          if (D) {
            inputs.push_back(D);
            maps.push_back(projection(ctx, 2, {1}));
          }
          if (z) {
            inputs.push_back(timeSlice(tb, l, z, t, batch, inner));
            maps.push_back(tb.getMultiDimIdentityMap(2));
          }
          Value ySlice = timeSlice(tb, l, iter[1], t, batch, inner);
          Value yT = buildElementwise(
              tb, l, inputs, maps, ySlice,
              [&](OpBuilder &nb, Location nl, ValueRange in, Value) {
                Value bi = linalg::IndexOp::create(nb, nl, 0);
                Value c = linalg::IndexOp::create(nb, nl, 1);
                auto dot = scf::ForOp::create(
                    nb, nl, c0, numStates, c1,
                    ValueRange{floatConst(nb, nl, f32, 0.0)},
                    [&](OpBuilder &sb, Location sl, Value n, ValueRange acc) {
                      Value cv =
                          convertScalar(sb, sl,
                                        tensor::ExtractOp::create(
                                            sb, sl, cT, ValueRange{bi, n}),
                                        f32);
                      Value hv = tensor::ExtractOp::create(
                          sb, sl, h, ValueRange{bi, c, n});
                      Value prod = arith::MulFOp::create(sb, sl, cv, hv);
                      scf::YieldOp::create(sb, sl,
                                           ValueRange{arith::AddFOp::create(
                                               sb, sl, acc[0], prod)});
                    });
                Value v = dot.getResult(0);
                Value uv = convertScalar(nb, nl, in[0], f32);
                unsigned next = 1;
                if (D)
                  v = arith::AddFOp::create(
                      nb, nl, v,
                      arith::MulFOp::create(
                          nb, nl, convertScalar(nb, nl, in[next++], f32), uv));
                if (z)
                  v = arith::MulFOp::create(
                      nb, nl, v,
                      buildSilu(nb, nl,
                                convertScalar(nb, nl, in[next++], f32)));
                return convertScalar(nb, nl, v, elem);
              });
          SmallVector<OpFoldResult> offsets{tb.getIndexAttr(0), t,
                                            tb.getIndexAttr(0)};
          SmallVector<OpFoldResult> sliceSizes{batch, tb.getIndexAttr(1),
                                               inner};
          SmallVector<OpFoldResult> strides(3, tb.getIndexAttr(1));
          Value y = tensor::InsertSliceOp::create(tb, l, yT, iter[1], offsets,
                                                  sliceSizes, strides);
          scf::YieldOp::create(tb, l, ValueRange{h, y});
        });
    rewriter.replaceOp(op,
                       {castIfNeeded(b, loc, loop.getResult(1), yType),
                        castIfNeeded(b, loc, loop.getResult(0), stateType)});
    return success();
  }
};

} // namespace

void mlir::jamba::lowering::populateSequenceLoweringPatterns(
    RewritePatternSet &patterns) {
  patterns.add<CausalConv1dLowering, SelectiveScanLowering>(
      patterns.getContext());
}

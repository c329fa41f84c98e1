//===- DecomposeLayers.cpp - Layer ops to jamba primitives ----------------===//
//
// Part of jamba-mlir.
//
//===----------------------------------------------------------------------===//

#include "jamba/Transforms/Passes.h"
#include "jamba/Transforms/Transforms.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::jamba {
#define GEN_PASS_DEF_JAMBADECOMPOSELAYERSPASS
#include "jamba/Transforms/Passes.h.inc"
} // namespace mlir::jamba

using namespace mlir;
using namespace mlir::jamba;

namespace {

/// `shape` with its last dimension replaced by `last`.
RankedTensorType withLastDim(RankedTensorType type, int64_t last) {
  SmallVector<int64_t> shape(type.getShape());
  shape.back() = last;
  return type.clone(shape);
}

/// `x W^T (+ bias)` with jamba.linear; the output width is W's row count.
Value project(OpBuilder &b, Location loc, Value x, Value weight,
              Value bias = Value()) {
  auto xType = cast<RankedTensorType>(x.getType());
  int64_t rows = cast<ShapedType>(weight.getType()).getDimSize(0);
  return LinearOp::create(b, loc, withLastDim(xType, rows), x, weight,
                          /*scale=*/Value(), bias);
}

/// `shape[:-1] + [k, n]`: one row of size n per routing slot.
RankedTensorType withSlots(RankedTensorType type, int64_t k, int64_t n,
                           Type elem) {
  SmallVector<int64_t> shape(type.getShape());
  shape.back() = k;
  shape.push_back(n);
  return RankedTensorType::get(shape, elem);
}

/// jamba.moe -> router linear, router_topk, expert_gemm x3, swiglu,
/// combine_slots (SPEC 1.5.7).
struct DecomposeMoE : OpRewritePattern<MoEOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(MoEOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value x = op.getInput();
    auto xType = cast<RankedTensorType>(x.getType());
    Type elem = xType.getElementType();
    const int64_t k = op.getTopK();
    const int64_t inter =
        cast<ShapedType>(op.getGateWeight().getType()).getDimSize(1);
    const int64_t hidden = xType.getShape().back();

    Value logits = project(rewriter, loc, x, op.getRouterWeight());
    auto weightsType = withLastDim(xType, k).clone(rewriter.getF32Type());
    auto indicesType = withLastDim(xType, k).clone(rewriter.getI32Type());
    auto topk = RouterTopKOp::create(rewriter, loc, weightsType, indicesType,
                                     logits, k, op.getNormalizeTopK());
    auto interType = withSlots(xType, k, inter, elem);
    // Expert parallelism: this rank's experts only (the offset maps the
    // router's ids; other ranks' slots give zero rows).
    Value offset = op.getExpertOffset();
    Value gate =
        ExpertGemmOp::create(rewriter, loc, interType, x, op.getGateWeight(),
                             Value(), topk.getIndices(), Value(), offset);
    Value up =
        ExpertGemmOp::create(rewriter, loc, interType, x, op.getUpWeight(),
                             Value(), topk.getIndices(), Value(), offset);
    Value act = SwiGLUOp::create(rewriter, loc, gate.getType(), gate, up);
    // The routing weight multiplies the down projection in its epilogue.
    Value down =
        ExpertGemmOp::create(rewriter, loc, withSlots(xType, k, hidden, elem),
                             act, op.getDownWeight(), Value(),
                             topk.getIndices(), topk.getWeights(), offset);
    rewriter.replaceOpWithNewOp<CombineSlotsOp>(op, xType, down);
    return success();
  }
};

/// jamba.mlp -> linear (gate), linear (up), swiglu, linear (down).
struct DecomposeMLP : OpRewritePattern<MLPOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(MLPOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value x = op.getInput();
    Value gate = project(rewriter, loc, x, op.getGateWeight());
    Value up = project(rewriter, loc, x, op.getUpWeight());
    Value act = SwiGLUOp::create(rewriter, loc, gate.getType(), gate, up);
    rewriter.replaceOp(op, project(rewriter, loc, act, op.getDownWeight()));
    return success();
  }
};

/// Slices channels [offset, offset + size) of the last dimension of the
/// rank-3 `x`, keeping the (possibly dynamic) leading dimensions.
Value sliceLastDim(OpBuilder &b, Location loc, Value x, int64_t offset,
                   int64_t size) {
  auto type = cast<RankedTensorType>(x.getType());
  SmallVector<OpFoldResult> offsets, sizes, strides;
  for (int64_t d = 0; d < type.getRank(); ++d) {
    bool last = d + 1 == type.getRank();
    offsets.push_back(b.getIndexAttr(last ? offset : 0));
    strides.push_back(b.getIndexAttr(1));
    if (last)
      sizes.push_back(b.getIndexAttr(size));
    else if (type.isDynamicDim(d))
      sizes.push_back(tensor::DimOp::create(b, loc, x, d).getResult());
    else
      sizes.push_back(b.getIndexAttr(type.getDimSize(d)));
  }
  return tensor::ExtractSliceOp::create(b, loc, x, offsets, sizes, strides);
}

/// jamba.mamba_mixer -> in_proj linear, x/z slices, causal_conv1d + SiLU,
/// x_proj linear, dt/B/C slices and RMSNorms, dt_proj linear, A = -exp(A_log),
/// selective_scan (delta bias, softplus, D, SiLU(z), state), out_proj linear
/// (SPEC 1.5.5).
struct DecomposeMambaMixer : OpRewritePattern<MambaMixerOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(MambaMixerOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value x = op.getInput();
    const int64_t dInner = op.getDInner(), dState = op.getDState(),
                  dtRank = op.getDtRank();
    if (ShapedType::isDynamic(dInner) || ShapedType::isDynamic(dState) ||
        ShapedType::isDynamic(dtRank) || ShapedType::isDynamic(op.getDConv()))
      return rewriter.notifyMatchFailure(op, "needs static Mamba sizes");
    auto f32 = rewriter.getF32Type();

    Value xz =
        project(rewriter, loc, x, op.getInProjWeight(), op.getInProjBias());
    Value xs = sliceLastDim(rewriter, loc, xz, 0, dInner);
    Value z = sliceLastDim(rewriter, loc, xz, dInner, dInner);
    // conv1d.weight [Di, 1, K] -> [Di, K].
    auto convType = cast<RankedTensorType>(op.getConvWeight().getType());
    Value convW = tensor::CollapseShapeOp::create(
        rewriter, loc,
        RankedTensorType::get({dInner, convType.getDimSize(2)},
                              convType.getElementType()),
        op.getConvWeight(), ArrayRef<ReassociationIndices>{{0}, {1, 2}});
    auto conv = CausalConv1dOp::create(
        rewriter, loc, xs.getType(), op.getConvState().getType(), xs, convW,
        op.getConvBias(), op.getConvState(), /*silu=*/true);
    Value xc = conv.getResult();
    Value xdbl = project(rewriter, loc, xc, op.getXProjWeight());
    // Tensor-parallel: each rank holds a d_inner slice, so its x_proj
    // product is a partial sum over d_inner (SPEC 1.9).
    if (std::optional<uint64_t> group = op.getXProjAllReduce())
      xdbl = AllReduceOp::create(rewriter, loc, xdbl.getType(), xdbl,
                                 static_cast<int64_t>(*group));
    auto eps = op.getEpsilonAttr();
    auto norm = [&](int64_t offset, int64_t size, Value weight) -> Value {
      Value part = sliceLastDim(rewriter, loc, xdbl, offset, size);
      return RMSNormOp::create(rewriter, loc, part.getType(), part, weight,
                               eps);
    };
    Value dt = norm(0, dtRank, op.getDtNormWeight());
    Value B = norm(dtRank, dState, op.getBNormWeight());
    Value C = norm(dtRank + dState, dState, op.getCNormWeight());
    // dt_proj without its bias: the scan adds the bias once, before softplus.
    Value delta = project(rewriter, loc, dt, op.getDtProjWeight());
    // A = -exp(f32(A_log)).
    Value aLog = op.getALog();
    auto aType = cast<RankedTensorType>(aLog.getType()).clone(f32);
    if (aType != aLog.getType()) {
      // Widened from bf16/f16; an f64 A_log is narrowed (the scan runs in
      // f32, SPEC 1.6).
      if (cast<RankedTensorType>(aLog.getType()).getElementTypeBitWidth() > 32)
        aLog = arith::TruncFOp::create(rewriter, loc, aType, aLog);
      else
        aLog = arith::ExtFOp::create(rewriter, loc, aType, aLog);
    }
    Value A = arith::NegFOp::create(
        rewriter, loc, math::ExpOp::create(rewriter, loc, aLog).getResult());
    auto scan = SelectiveScanOp::create(
        rewriter, loc, xc.getType(), op.getSsmState().getType(), xc, delta, A,
        B, C, op.getD(), z, op.getDtProjBias(), op.getSsmState(),
        /*delta_softplus=*/true);
    Value out = project(rewriter, loc, scan.getResult(), op.getOutProjWeight(),
                        op.getOutProjBias());
    rewriter.replaceOp(op, {out, conv.getNewState(), scan.getFinalState()});
    return success();
  }
};

/// jamba.attention -> q/k/v linears, cached_attention, o linear.
struct DecomposeAttention : OpRewritePattern<AttentionOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(AttentionOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value x = op.getInput();
    Value q = project(rewriter, loc, x, op.getQWeight());
    Value k = project(rewriter, loc, x, op.getKWeight());
    Value v = project(rewriter, loc, x, op.getVWeight());
    auto core = CachedAttentionOp::create(
        rewriter, loc, q.getType(), op.getKCache().getType(),
        op.getVCache().getType(), q, k, v, op.getKCache(), op.getVCache(),
        op.getCacheLen(), op.getNumHeads(), op.getNumKvHeads());
    Value out = project(rewriter, loc, core.getResult(), op.getOWeight());
    rewriter.replaceOp(op, {out, core.getNewKCache(), core.getNewVCache()});
    return success();
  }
};

/// jamba.lm_head -> tensor.extract_slice of the last `num_logits_to_keep`
/// positions (none when it is 0: all positions) + jamba.linear (SPEC 1.5.2).
struct DecomposeLMHead : OpRewritePattern<LMHeadOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(LMHeadOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value x = op.getInput();
    auto xType = cast<RankedTensorType>(x.getType());
    auto resultType = cast<RankedTensorType>(op.getResult().getType());
    if (xType.getRank() != 3)
      return rewriter.notifyMatchFailure(op, "expects a [batch, seq, hidden] "
                                             "input");
    const int64_t keep = op.getNumLogitsToKeep();
    if (keep != 0) {
      // Positions [seq - keep, seq) of every sequence.
      OpFoldResult batch =
          xType.isDynamicDim(0)
              ? OpFoldResult(tensor::DimOp::create(rewriter, loc, x, 0))
              : OpFoldResult(rewriter.getIndexAttr(xType.getDimSize(0)));
      OpFoldResult start;
      if (xType.isDynamicDim(1)) {
        Value seq = tensor::DimOp::create(rewriter, loc, x, 1);
        start = arith::SubIOp::create(
                    rewriter, loc, seq,
                    arith::ConstantIndexOp::create(rewriter, loc, keep))
                    .getResult();
      } else {
        start = rewriter.getIndexAttr(xType.getDimSize(1) - keep);
      }
      SmallVector<OpFoldResult> offsets{rewriter.getIndexAttr(0), start,
                                        rewriter.getIndexAttr(0)};
      OpFoldResult hidden =
          xType.isDynamicDim(2)
              ? OpFoldResult(tensor::DimOp::create(rewriter, loc, x, 2))
              : OpFoldResult(rewriter.getIndexAttr(xType.getDimSize(2)));
      SmallVector<OpFoldResult> sizes{batch, rewriter.getIndexAttr(keep),
                                      hidden};
      SmallVector<OpFoldResult> strides(3, rewriter.getIndexAttr(1));
      x = tensor::ExtractSliceOp::create(rewriter, loc, x, offsets, sizes,
                                         strides);
    }
    // The linear's result keeps the positions of its input; cast to the
    // op's (possibly more static) result type when they differ.
    auto xs = cast<RankedTensorType>(x.getType());
    auto linType = withLastDim(xs, resultType.getShape().back())
                       .clone(resultType.getElementType());
    Value logits = LinearOp::create(rewriter, loc, linType, x, op.getWeight(),
                                    Value(), Value());
    if (linType != resultType)
      logits = tensor::CastOp::create(rewriter, loc, resultType, logits);
    rewriter.replaceOp(op, logits);
    return success();
  }
};

struct JambaDecomposeLayersPass
    : jamba::impl::JambaDecomposeLayersPassBase<JambaDecomposeLayersPass> {
  using Base::Base;

  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateDecomposeFFNPatterns(patterns);
    if (mixers)
      populateDecomposeMixerPatterns(patterns);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns)))) {
      signalPassFailure();
      return;
    }
    // A mixer the patterns could not rewrite would reach bufferization,
    // whose "op was not bufferized" does not say why: name the sizes.
    if (mixers && failed(checkMixersDecomposed()))
      signalPassFailure();
  }

  LogicalResult checkMixersDecomposed() {
    WalkResult result = getOperation()->walk([](MambaMixerOp op) {
      InFlightDiagnostic diag = op.emitOpError()
                                << "cannot be decomposed: its Mamba sizes "
                                   "must be static, but";
      bool firstSize = true;
      auto note = [&](StringRef size, int64_t value, StringRef source) {
        if (!ShapedType::isDynamic(value))
          return;
        diag << (firstSize ? " " : ", ") << size << " (" << source
             << ") is dynamic";
        firstSize = false;
      };
      note("d_inner", op.getDInner(), "conv_weight dimension 0");
      note("d_conv", op.getDConv(), "conv_weight dimension 2");
      note("d_state", op.getDState(), "A_log dimension 1");
      note("dt_rank", op.getDtRank(), "dt_proj_weight dimension 1");
      return WalkResult::interrupt();
    });
    return failure(result.wasInterrupted());
  }
};

} // namespace

void mlir::jamba::populateDecomposeFFNPatterns(RewritePatternSet &patterns) {
  patterns.add<DecomposeMoE, DecomposeMLP>(patterns.getContext());
}

void mlir::jamba::populateDecomposeMixerPatterns(RewritePatternSet &patterns) {
  patterns.add<DecomposeMambaMixer, DecomposeAttention, DecomposeLMHead>(
      patterns.getContext());
}

//===- DecomposeLayers.cpp - Layer ops to jamba primitives ----------------===//
//
// Part of jamba-mlir.
//
//===----------------------------------------------------------------------===//

#include "jamba/Transforms/Passes.h"
#include "jamba/Transforms/Transforms.h"

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
    const int64_t experts =
        cast<ShapedType>(op.getRouterWeight().getType()).getDimSize(0);
    const int64_t inter =
        cast<ShapedType>(op.getGateWeight().getType()).getDimSize(1);
    const int64_t hidden = xType.getShape().back();

    Value logits = LinearOp::create(rewriter, loc, withLastDim(xType, experts),
                                    x, op.getRouterWeight(), /*scale=*/Value(),
                                    /*bias=*/Value());
    auto weightsType = withLastDim(xType, k).clone(rewriter.getF32Type());
    auto indicesType = withLastDim(xType, k).clone(rewriter.getI32Type());
    auto topk = RouterTopKOp::create(rewriter, loc, weightsType, indicesType,
                                     logits, k, op.getNormalizeTopK());
    auto interType = withSlots(xType, k, inter, elem);
    Value gate =
        ExpertGemmOp::create(rewriter, loc, interType, x, op.getGateWeight(),
                             Value(), topk.getIndices(), Value());
    Value up =
        ExpertGemmOp::create(rewriter, loc, interType, x, op.getUpWeight(),
                             Value(), topk.getIndices(), Value());
    Value act = SwiGLUOp::create(rewriter, loc, gate.getType(), gate, up);
    // The routing weight multiplies the down projection in its epilogue.
    Value down = ExpertGemmOp::create(
        rewriter, loc, withSlots(xType, k, hidden, elem), act,
        op.getDownWeight(), Value(), topk.getIndices(), topk.getWeights());
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
    auto xType = cast<RankedTensorType>(x.getType());
    const int64_t inter =
        cast<ShapedType>(op.getGateWeight().getType()).getDimSize(0);
    auto interType = withLastDim(xType, inter);
    Value gate = LinearOp::create(rewriter, loc, interType, x,
                                  op.getGateWeight(), Value(), Value());
    Value up = LinearOp::create(rewriter, loc, interType, x, op.getUpWeight(),
                                Value(), Value());
    Value act = SwiGLUOp::create(rewriter, loc, gate.getType(), gate, up);
    rewriter.replaceOpWithNewOp<LinearOp>(op, xType, act, op.getDownWeight(),
                                          Value(), Value());
    return success();
  }
};

struct JambaDecomposeLayersPass
    : jamba::impl::JambaDecomposeLayersPassBase<JambaDecomposeLayersPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateDecomposeFFNPatterns(patterns);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace

void mlir::jamba::populateDecomposeFFNPatterns(RewritePatternSet &patterns) {
  patterns.add<DecomposeMoE, DecomposeMLP>(patterns.getContext());
}

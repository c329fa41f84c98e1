//===- FuseDequantIntoGemm.cpp - Quantized GEMMs from dequant + GEMM ------===//
//
// Part of jamba-mlir.
//
//===----------------------------------------------------------------------===//

#include "jamba/Transforms/Passes.h"
#include "jamba/Transforms/Transforms.h"

#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::jamba {
#define GEN_PASS_DEF_JAMBAFUSEDEQUANTINTOGEMMPASS
#include "jamba/Transforms/Passes.h.inc"
} // namespace mlir::jamba

using namespace mlir;
using namespace mlir::jamba;

namespace {

/// The dequant defining `weight` if `control` allows fusing it into `gemm`.
FailureOr<DequantOp> fusibleDequant(Value weight, Operation *gemm,
                                    const DequantFusionControlFn &control,
                                    PatternRewriter &rewriter) {
  auto dequant = weight.getDefiningOp<DequantOp>();
  if (!dequant)
    return rewriter.notifyMatchFailure(gemm, "weight is not a jamba.dequant");
  if (control ? !control(dequant, gemm) : !dequant->hasOneUse())
    return rewriter.notifyMatchFailure(gemm, "control function declined");
  return dequant;
}

/// expert_gemm(x, dequant(q, s)) -> expert_gemm(x, q scale(s)).
struct FuseIntoExpertGemm : OpRewritePattern<ExpertGemmOp> {
  FuseIntoExpertGemm(MLIRContext *context, DequantFusionControlFn control)
      : OpRewritePattern(context), control(std::move(control)) {}

  LogicalResult matchAndRewrite(ExpertGemmOp op,
                                PatternRewriter &rewriter) const override {
    FailureOr<DequantOp> dequant =
        fusibleDequant(op.getWeight(), op, control, rewriter);
    if (failed(dequant))
      return failure();
    rewriter.replaceOpWithNewOp<ExpertGemmOp>(
        op, op.getType(), op.getInput(), dequant->getInput(),
        dequant->getScale(), op.getIndices(), op.getRouteWeights(),
        op.getExpertOffset());
    return success();
  }

  DequantFusionControlFn control;
};

/// linear(x, dequant(q, s), bias) -> linear(x, q scale(s), bias).
struct FuseIntoLinear : OpRewritePattern<LinearOp> {
  FuseIntoLinear(MLIRContext *context, DequantFusionControlFn control)
      : OpRewritePattern(context), control(std::move(control)) {}

  LogicalResult matchAndRewrite(LinearOp op,
                                PatternRewriter &rewriter) const override {
    FailureOr<DequantOp> dequant =
        fusibleDequant(op.getWeight(), op, control, rewriter);
    if (failed(dequant))
      return failure();
    rewriter.replaceOpWithNewOp<LinearOp>(op, op.getType(), op.getInput(),
                                          dequant->getInput(),
                                          dequant->getScale(), op.getBias());
    return success();
  }

  DequantFusionControlFn control;
};

struct JambaFuseDequantIntoGemmPass
    : jamba::impl::JambaFuseDequantIntoGemmPassBase<
          JambaFuseDequantIntoGemmPass> {
  using Base::Base;

  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    DequantFusionControlFn control;
    if (multiUse)
      control = [](DequantOp, Operation *) { return true; };
    populateFuseDequantIntoGemmPatterns(patterns, control);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace

void mlir::jamba::populateFuseDequantIntoGemmPatterns(
    RewritePatternSet &patterns, DequantFusionControlFn control) {
  patterns.add<FuseIntoExpertGemm, FuseIntoLinear>(patterns.getContext(),
                                                   control);
}

//===- JambaToLinalg.cpp - The convert-jamba-to-linalg pass ---------------===//
//
// Part of jamba-mlir. A partial dialect conversion: the jamba primitives are
// illegal, everything else (the layer-level ops included) is left alone.
// The patterns live one op family per file (GemmOps, ElementwiseOps,
// RouterTopK, SequenceOps).
//
//===----------------------------------------------------------------------===//

#include "LoweringUtils.h"

#include "jamba/Conversion/JambaToLinalg.h"
#include "jamba/Conversion/Passes.h"
#include "jamba/Dialect/Jamba/IR/JambaOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

namespace mlir::jamba {
#define GEN_PASS_DEF_CONVERTJAMBATOLINALGPASS
#include "jamba/Conversion/Passes.h.inc"
} // namespace mlir::jamba

using namespace mlir;
using namespace mlir::jamba;

namespace {

struct ConvertJambaToLinalgPass
    : jamba::impl::ConvertJambaToLinalgPassBase<ConvertJambaToLinalgPass> {
  using Base::Base;

  void runOnOperation() override {
    ConversionTarget target(getContext());
    configureJambaToLinalgConversionTarget(target);
    RewritePatternSet patterns(&getContext());
    populateJambaToLinalgConversionPatterns(patterns);
    if (failed(applyPartialConversion(getOperation(), target,
                                      std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace

void mlir::jamba::populateJambaToLinalgConversionPatterns(
    RewritePatternSet &patterns) {
  lowering::populateGemmLoweringPatterns(patterns);
  lowering::populateElementwiseLoweringPatterns(patterns);
  lowering::populateRouterLoweringPatterns(patterns);
  lowering::populateSequenceLoweringPatterns(patterns);
}

void mlir::jamba::configureJambaToLinalgConversionTarget(
    ConversionTarget &target) {
  target.addLegalDialect<arith::ArithDialect, linalg::LinalgDialect,
                         math::MathDialect, scf::SCFDialect,
                         tensor::TensorDialect>();
  target.addIllegalOp<LinearOp, ExpertGemmOp, DequantOp, RMSNormOp, SwiGLUOp,
                      CombineSlotsOp, RouterTopKOp, EmbeddingOp, CausalConv1dOp,
                      SelectiveScanOp>();
}

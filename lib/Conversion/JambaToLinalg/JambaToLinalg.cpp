//===- JambaToLinalg.cpp - The convert-jamba-to-linalg pass ---------------===//
//
// Part of jamba-mlir. A partial dialect conversion: the jamba primitives are
// illegal, everything else (the layer-level ops included) is left alone.
// The patterns live one op family per file (GemmOps, ElementwiseOps,
// RouterTopK, SequenceOps, AttentionOps).
//
//===----------------------------------------------------------------------===//

#include "LoweringUtils.h"

#include "jamba/Conversion/JambaToLinalg.h"
#include "jamba/Conversion/Passes.h"
#include "jamba/Dialect/Jamba/IR/JambaDialect.h"
#include "jamba/Dialect/Jamba/IR/JambaOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
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
    // Weights are read-only (the runtime maps them from the artifact): an
    // in-place update of a weight argument (e.g. `A = -exp(A_log)` once
    // convert-elementwise-to-linalg reuses its operand as the output) must
    // become a copy, or the next call would read clobbered weights.
    func::FuncOp func = getOperation();
    for (unsigned i = 0; i < func.getNumArguments(); ++i)
      if (func.getArgAttr(i, kWeightAttrName) &&
          isa<TensorType>(func.getArgumentTypes()[i]))
        func.setArgAttr(i,
                        bufferization::BufferizationDialect::kWritableAttrName,
                        BoolAttr::get(&getContext(), false));

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
  lowering::populateAttentionLoweringPatterns(patterns);
}

void mlir::jamba::configureJambaToLinalgConversionTarget(
    ConversionTarget &target) {
  target.addLegalDialect<arith::ArithDialect, linalg::LinalgDialect,
                         math::MathDialect, scf::SCFDialect,
                         tensor::TensorDialect>();
  target.addIllegalOp<LinearOp, ExpertGemmOp, DequantOp, RMSNormOp, SwiGLUOp,
                      CombineSlotsOp, RouterTopKOp, ArgmaxOp, EmbeddingOp,
                      CausalConv1dOp, SelectiveScanOp, CachedAttentionOp>();
}

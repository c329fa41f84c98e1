//===- ApproximateMath.cpp - The jamba-approximate-math pass --------------===//
//
// Part of jamba-mlir. Upstream's math polynomial approximations as a
// registered pass (the mlir-opt flag is a test pass).
//
//===----------------------------------------------------------------------===//

#include "jamba/Conversion/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::jamba {
#define GEN_PASS_DEF_JAMBAAPPROXIMATEMATHPASS
#include "jamba/Conversion/Passes.h.inc"
} // namespace mlir::jamba

using namespace mlir;

namespace {

struct JambaApproximateMathPass
    : jamba::impl::JambaApproximateMathPassBase<JambaApproximateMathPass> {
  using Base::Base;

  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateMathPolynomialApproximationPatterns(patterns);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace

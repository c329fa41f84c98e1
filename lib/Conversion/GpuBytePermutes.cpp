//===- GpuBytePermutes.cpp - The jamba-gpu-byte-permutes pass -------------===//
//
// Part of jamba-mlir. Bytes widened into the low byte of a 32-bit constant
// as one `prmt` each; see the pass description in Passes.td.
//
//===----------------------------------------------------------------------===//

#include "jamba/Conversion/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::jamba {
#define GEN_PASS_DEF_JAMBAGPUBYTEPERMUTESPASS
#include "jamba/Conversion/Passes.h.inc"
} // namespace mlir::jamba

using namespace mlir;

namespace {

/// or(extui(x : vector<N x i8> to vector<N x i32>), splat(c)), N a
/// multiple of 4 and c's low byte 0: for each byte of x, one
/// `prmt.b32 r, word, c, 0x765k`, byte k of its 32-bit word of x below
/// bytes 1 to 3 of c.
struct BytesIntoConstant : OpRewritePattern<arith::OrIOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(arith::OrIOp op,
                                PatternRewriter &rewriter) const override {
    auto type = dyn_cast<VectorType>(op.getType());
    if (!type || type.getRank() != 1 || !type.getElementType().isInteger(32) ||
        type.getNumElements() % 4 != 0)
      return rewriter.notifyMatchFailure(op, "not a vector of 4k i32");
    for (int side = 0; side < 2; ++side) {
      auto ext = op->getOperand(side).getDefiningOp<arith::ExtUIOp>();
      APInt high;
      if (!ext ||
          !cast<VectorType>(ext.getIn().getType())
               .getElementType()
               .isInteger(8) ||
          !matchPattern(op->getOperand(1 - side), m_ConstantInt(&high)) ||
          (high.getZExtValue() & 0xFF) != 0)
        continue;
      Location loc = op.getLoc();
      const int64_t n = type.getNumElements();
      Type i32 = rewriter.getI32Type();
      Value words = vector::BitCastOp::create(
          rewriter, loc, VectorType::get({n / 4}, i32), ext.getIn());
      Value c = arith::ConstantIntOp::create(rewriter, loc, i32,
                                             int64_t(high.getZExtValue()));
      SmallVector<Value> bytes;
      for (int64_t w = 0; w < n / 4; ++w) {
        Value word = vector::ExtractOp::create(rewriter, loc, words, w);
        for (int64_t k = 0; k < 4; ++k)
          bytes.push_back(NVVM::PermuteOp::create(
              rewriter, loc, i32, word, c,
              arith::ConstantIntOp::create(rewriter, loc, i32, 0x7650 + k),
              NVVM::PermuteMode::DEFAULT));
      }
      rewriter.replaceOpWithNewOp<vector::FromElementsOp>(op, type, bytes);
      return success();
    }
    return rewriter.notifyMatchFailure(op, "not bytes or'ed with a constant");
  }
};

struct JambaGpuBytePermutesPass
    : jamba::impl::JambaGpuBytePermutesPassBase<JambaGpuBytePermutesPass> {
  using Base::Base;

  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<BytesIntoConstant>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace

//===- GpuFastMath.cpp - The jamba-gpu-fast-math pass ---------------------===//
//
// Part of jamba-mlir. f32 exp2, rsqrt, sqrt and division in GPU kernels as
// NVVM approximations in their flush-to-zero forms; see the pass
// description in Passes.td.
//
//===----------------------------------------------------------------------===//

#include "jamba/Conversion/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include <type_traits>

namespace mlir::jamba {
#define GEN_PASS_DEF_JAMBAGPUFASTMATHPASS
#include "jamba/Conversion/Passes.h.inc"
} // namespace mlir::jamba

using namespace mlir;

namespace {

/// Whether `op` computes 1 / x in f32.
static bool isReciprocal(Operation *op) {
  auto div = dyn_cast<arith::DivFOp>(op);
  return div && div.getType().isF32() &&
         matchPattern(div.getLhs(), m_OneFloat());
}

/// `Op` on f32 scalars becomes a call of the NVVM intrinsic `intrinsic`
/// with the same operands. Vectors and other types are left to
/// convert-gpu-to-nvvm (libdevice). A sqrt whose users include a 1 / sqrt
/// waits for ReciprocalRoot to take them, whatever order the rewrites
/// visit the ops in.
template <typename Op> struct ToNvvmIntrinsic : OpRewritePattern<Op> {
  ToNvvmIntrinsic(MLIRContext *context, StringRef intrinsic)
      : OpRewritePattern<Op>(context), intrinsic(intrinsic) {}

  LogicalResult matchAndRewrite(Op op,
                                PatternRewriter &rewriter) const override {
    Type type = op.getType();
    if (!type.isF32())
      return rewriter.notifyMatchFailure(op, "not an f32 scalar");
    if (std::is_same_v<Op, math::SqrtOp> &&
        llvm::any_of(op->getUsers(), isReciprocal))
      return rewriter.notifyMatchFailure(op, "1 / sqrt(x) first");
    auto call = LLVM::CallIntrinsicOp::create(rewriter, op.getLoc(), type,
                                              rewriter.getStringAttr(intrinsic),
                                              op->getOperands());
    rewriter.replaceOp(op, call.getResults());
    return success();
  }

  std::string intrinsic;
};

/// 1 / sqrt(x) on f32 scalars: one rsqrt.approx.ftz.f32 (what LLVM's NVPTX
/// backend makes of libdevice's sqrtf and an IEEE division, but not of
/// div.full).
struct ReciprocalRoot : OpRewritePattern<arith::DivFOp> {
  ReciprocalRoot(MLIRContext *context)
      : OpRewritePattern<arith::DivFOp>(context, /*benefit=*/2) {}

  LogicalResult matchAndRewrite(arith::DivFOp op,
                                PatternRewriter &rewriter) const override {
    auto root = op.getRhs().getDefiningOp<math::SqrtOp>();
    if (!root || !isReciprocal(op))
      return rewriter.notifyMatchFailure(op, "not 1 / sqrt(x) in f32");
    auto call = LLVM::CallIntrinsicOp::create(
        rewriter, op.getLoc(), op.getType(),
        rewriter.getStringAttr("llvm.nvvm.rsqrt.approx.ftz.f"),
        ValueRange{root.getOperand()});
    rewriter.replaceOp(op, call.getResults());
    return success();
  }
};

struct JambaGpuFastMathPass
    : jamba::impl::JambaGpuFastMathPassBase<JambaGpuFastMathPass> {
  using Base::Base;

  void runOnOperation() override {
    MLIRContext *context = &getContext();
    RewritePatternSet patterns(context);
    // ex2.approx.ftz.f32 and rsqrt.approx.ftz.f32: the approximations
    // libdevice's exp2f and rsqrtf use, without the subnormal handling
    // (four SASS instructions each on sm_90 instead of one).
    patterns.add<ToNvvmIntrinsic<math::Exp2Op>>(context,
                                                "llvm.nvvm.ex2.approx.ftz.f32");
    patterns.add<ToNvvmIntrinsic<math::RsqrtOp>>(
        context, "llvm.nvvm.rsqrt.approx.ftz.f");
    // div.full.ftz.f32: at most 2 ulp over the full range, 6 instructions
    // where div.rn.f32 (IEEE) takes about 8 and a slow path of about 100
    // per kernel.
    patterns.add<ToNvvmIntrinsic<arith::DivFOp>>(context,
                                                 "llvm.nvvm.div.full.ftz");
    patterns.add<ReciprocalRoot>(context);
    // sqrt.approx.ftz.f32: the approximation libdevice's sqrtf uses here.
    patterns.add<ToNvvmIntrinsic<math::SqrtOp>>(context,
                                                "llvm.nvvm.sqrt.approx.ftz.f");
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace

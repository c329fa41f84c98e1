//===- Transforms.h - jamba rewrite patterns --------------------*- C++ -*-===//
//
// Part of jamba-mlir. The pattern sets behind the passes, public so that
// other pipelines can mix them (STYLE.md habit 8: patterns are API, passes
// are policy).
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_TRANSFORMS_TRANSFORMS_H
#define JAMBA_TRANSFORMS_TRANSFORMS_H

#include "jamba/Dialect/Jamba/IR/JambaOps.h"

#include "mlir/IR/PatternMatch.h"

#include <functional>

namespace mlir::jamba {

/// Decides whether `dequant` may be folded into the GEMM `gemm` (a
/// LinearOp or ExpertGemmOp) that uses it as its weight.
using DequantFusionControlFn =
    std::function<bool(DequantOp dequant, Operation *gemm)>;

/// Patterns folding `jamba.dequant` into the `jamba.linear` and
/// `jamba.expert_gemm` that consume it. A null `control` fuses every
/// single-use dequant.
void populateFuseDequantIntoGemmPatterns(
    RewritePatternSet &patterns, DequantFusionControlFn control = nullptr);

/// Patterns decomposing `jamba.moe` and `jamba.mlp` into primitives.
void populateDecomposeFFNPatterns(RewritePatternSet &patterns);

/// Patterns decomposing `jamba.mamba_mixer`, `jamba.attention` and
/// `jamba.lm_head` into primitives (plus tensor.extract_slice /
/// collapse_shape, math.exp).
void populateDecomposeMixerPatterns(RewritePatternSet &patterns);

} // namespace mlir::jamba

#endif // JAMBA_TRANSFORMS_TRANSFORMS_H

//===- JambaToLinalg.h - jamba primitives to linalg on tensors --*- C++ -*-===//
//
// Part of jamba-mlir. The patterns behind `convert-jamba-to-linalg`, public
// so that other pipelines can mix them (STYLE.md habit 8).
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_CONVERSION_JAMBATOLINALG_H
#define JAMBA_CONVERSION_JAMBATOLINALG_H

#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/DialectConversion.h"

namespace mlir::jamba {

/// Patterns lowering the jamba primitives (linear, expert_gemm, dequant,
/// rms_norm, swiglu, combine_slots, router_topk, embedding, causal_conv1d,
/// selective_scan, cached_attention) to linalg/tensor/arith/math/scf on
/// tensors, in destination-passing style. Math in f32 (f64 for f64 tensors);
/// int8 weights are converted inside the K loop and scaled after it.
void populateJambaToLinalgConversionPatterns(RewritePatternSet &patterns);

/// Marks the ops `populateJambaToLinalgConversionPatterns` lowers illegal
/// and the dialects they lower to legal.
void configureJambaToLinalgConversionTarget(ConversionTarget &target);

} // namespace mlir::jamba

#endif // JAMBA_CONVERSION_JAMBATOLINALG_H

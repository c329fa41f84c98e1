//===- LoweringUtils.h - Helpers of the jamba-to-linalg lowering -*- C++
//-*-===//
//
// Part of jamba-mlir. Shared by the per-family files of
// convert-jamba-to-linalg: scalar conversions in loop bodies, result shapes
// with dynamic sizes, DPS init tensors and affine-map shorthands.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_LIB_CONVERSION_JAMBATOLINALG_LOWERINGUTILS_H
#define JAMBA_LIB_CONVERSION_JAMBATOLINALG_LOWERINGUTILS_H

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/AffineMap.h"
#include "mlir/IR/Builders.h"
#include "mlir/Transforms/DialectConversion.h"

namespace mlir::jamba::lowering {

/// The type arithmetic is done in for results of element type `elem`: f64
/// for f64, f32 for f32, bf16 and f16 (SPEC: statistics and accumulation in
/// f32).
Type computeType(Type elem);

/// Converts scalar `v` to `to`: float extension or truncation (round to
/// nearest even), signed int to float, index to integer; `v` when the types
/// already agree.
Value convertScalar(OpBuilder &b, Location loc, Value v, Type to);

/// A float constant of type `type` (a splat when `type` is a vector or
/// tensor type).
Value floatConst(OpBuilder &b, Location loc, Type type, double value);

/// An index constant.
Value indexConst(OpBuilder &b, Location loc, int64_t value);

/// SiLU(x) = x / (1 + exp(-x)), as the reference computes it (scalars or
/// vectors).
Value buildSilu(OpBuilder &b, Location loc, Value x);

/// softplus(x) = x > 20 ? x : log1p(exp(x)), with an accurate log1p (the
/// LLVM lowering of math.log1p is log(1 + x)); scalars or vectors.
Value buildSoftplus(OpBuilder &b, Location loc, Value x);

/// Clamps index `i` into [0, size).
Value clampIndex(OpBuilder &b, Location loc, Value i, Value size);

/// One size of a result: `resultDim` when static, otherwise the first static
/// size among `sources` (value, dimension), otherwise `tensor.dim` of the
/// first source.
OpFoldResult pickSize(OpBuilder &b, Location loc, int64_t resultDim,
                      ArrayRef<std::pair<Value, int64_t>> sources);

/// The static shape of `sizes` (kDynamic where it is a Value).
SmallVector<int64_t> staticShape(ArrayRef<OpFoldResult> sizes);

/// `tensor.empty` of `sizes` and `elem`.
Value emptyTensor(OpBuilder &b, Location loc, ArrayRef<OpFoldResult> sizes,
                  Type elem);

/// `tensor.empty` filled with `value`.
Value filledTensor(OpBuilder &b, Location loc, ArrayRef<OpFoldResult> sizes,
                   Type elem, double value);

/// `v` cast (tensor.cast) to `type` when its type differs.
Value castIfNeeded(OpBuilder &b, Location loc, Value v, Type type);

/// (d0, ..., d{n-1}) -> (d{dims[0]}, d{dims[1]}, ...).
AffineMap projection(MLIRContext *ctx, unsigned numDims,
                     ArrayRef<unsigned> dims);

/// [0, 1, ..., n-1].
SmallVector<unsigned> iota(unsigned n);

/// `n` parallel iterators, with the ones in `reductions` turned into
/// reductions.
SmallVector<utils::IteratorType> iterators(unsigned n,
                                           ArrayRef<unsigned> reductions = {});

/// An elementwise `linalg.generic` over `init`'s shape: `inputs` with their
/// `maps`, identity map for `init`; `body(b, loc, inputArgs, outArg)` returns
/// the value to yield.
Value buildElementwise(
    OpBuilder &b, Location loc, ValueRange inputs, ArrayRef<AffineMap> maps,
    Value init,
    function_ref<Value(OpBuilder &, Location, ValueRange, Value)> body);

/// `tensor` as a read-only buffer (`bufferization.to_buffer read_only`):
/// strided with a dynamic offset and strides except a unit innermost stride
/// (vector.load needs it), so any buffer bufferization picks for it casts to
/// this type. A null `tensor` (an absent optional operand) gives null.
Value readOnlyBuffer(OpBuilder &b, Location loc, Value tensor);

/// A fresh identity-layout buffer of `type`'s shape and element type; the
/// dynamic dimension d takes `sizes[d]` (`sizes` covers at least the
/// dynamic dimensions' positions).
Value allocBuffer(OpBuilder &b, Location loc, RankedTensorType type,
                  ArrayRef<Value> sizes);

/// `buffer` back as a tensor of `type` (`bufferization.to_tensor restrict
/// writable`): a kernel's output rejoining the tensor program.
Value bufferResult(OpBuilder &b, Location loc, Type type, Value buffer);

/// jamba.cached_attention's cache append (SPEC 1.5.4): the new keys `k`
/// and values `v` ([B, S, kvHeads * headDim]) inserted into the caches
/// ([B, kvHeads, capacity, headDim]) at cache_len[b] + s, element by
/// element (tensor.insert: plain stores, in place once bufferized),
/// converted to the caches' element types. Returns the updated caches. The
/// caller guarantees cache_len[b] + S <= capacity (the runtime's
/// Executor::run checks it before any kernel runs).
std::pair<Value, Value> appendToCaches(OpBuilder &b, Location loc, Value k,
                                       Value v, Value kCache, Value vCache,
                                       Value cacheLen, int64_t kvHeads,
                                       int64_t headDim);

/// Per-family pattern sets (one file each).
void populateGemmLoweringPatterns(RewritePatternSet &patterns);
void populateElementwiseLoweringPatterns(RewritePatternSet &patterns);
void populateRouterLoweringPatterns(RewritePatternSet &patterns);
void populateSequenceLoweringPatterns(RewritePatternSet &patterns);
void populateAttentionLoweringPatterns(RewritePatternSet &patterns);

} // namespace mlir::jamba::lowering

#endif // JAMBA_LIB_CONVERSION_JAMBATOLINALG_LOWERINGUTILS_H

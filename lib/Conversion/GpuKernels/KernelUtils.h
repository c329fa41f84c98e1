//===- KernelUtils.h - Helpers of the jamba-gpu-kernels pass ----*- C++ -*-===//
//
// Part of jamba-mlir. Shared by the per-op files of jamba-gpu-kernels:
// loop-nest and load/store shorthands, the kernels' view of results read in
// a narrower type (NarrowedResult) and of operands computed by elementwise
// ops (InlinedOperand), and the vector loads the tensor-core kernels pack
// into mma.sync operands.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_LIB_CONVERSION_GPUKERNELS_KERNELUTILS_H
#define JAMBA_LIB_CONVERSION_GPUKERNELS_KERNELUTILS_H

#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/PatternMatch.h"

namespace mlir::jamba::gpukernels {

//===----------------------------------------------------------------------===//
// Builders
//===----------------------------------------------------------------------===//

/// `memref.dim` of dimension `d`.
Value dim(OpBuilder &b, Location loc, Value memref, int64_t d);

/// `memref.load` of `memref[indices]`.
Value load(OpBuilder &b, Location loc, Value memref, ValueRange indices);

/// Loads `memref[indices]` as f32.
Value loadF32(OpBuilder &b, Location loc, Value memref, ValueRange indices);

/// Stores the f32 `value` into `memref[indices]` in its element type.
void storeF32(OpBuilder &b, Location loc, Value value, Value memref,
              ValueRange indices);

/// An index loaded from an integer buffer (i32 or i64).
Value loadIndex(OpBuilder &b, Location loc, Value memref, ValueRange indices);

/// Names the kernel `loop` becomes: the loop and its stores carry the name
/// (canonicalization may rebuild the loop without its attributes, e.g. to
/// drop a unit dimension, but keeps its body).
void nameKernel(Operation *loop, StringAttr name);

/// `scf.parallel` over [0, ub_i) for each i, with `body(ivs)`, named
/// `kernel` (kKernelNameAttr: the GPU kernel it becomes is named after it).
void parallel(OpBuilder &b, Location loc, StringRef kernel,
              ArrayRef<Value> upperBounds,
              function_ref<void(OpBuilder &, Location, ValueRange)> body);

/// `scf.for` over [lb, ub) carrying `inits`.
scf::ForOp
loop(OpBuilder &b, Location loc, Value lb, Value ub, ValueRange inits,
     function_ref<SmallVector<Value>(OpBuilder &, Location, Value, ValueRange)>
         body);

/// The i32 constant `v`.
Value i32Const(OpBuilder &b, Location loc, int64_t v);

/// x + y (floats), x * y (floats), x + y (integers or indices).
Value addF(OpBuilder &b, Location loc, Value x, Value y);
Value mulF(OpBuilder &b, Location loc, Value x, Value y);
Value addI(OpBuilder &b, Location loc, Value x, Value y);

/// x / d, x % d and x * m for an index x and a constant.
Value divC(OpBuilder &b, Location loc, Value x, int64_t d);
Value remC(OpBuilder &b, Location loc, Value x, int64_t d);
Value mulC(OpBuilder &b, Location loc, Value x, int64_t m);

/// Row r of `dims` (the leading dimensions), the last index fastest.
SmallVector<Value> delinearize(OpBuilder &b, Location loc, Value r,
                               ArrayRef<Value> dims);

/// Whether `t` (or its element type) is computed in f32: f32, bf16, f16.
bool isF32Compatible(Type t);

//===----------------------------------------------------------------------===//
// A lane's share of a dot product
//===----------------------------------------------------------------------===//

/// Loads a lane of a decode step's kernel (the GEMV's weight vectors, the
/// wide RMSNorm's elements) issues before it uses the first: the loads in
/// flight that hide the memory's latency, which those kernels have too few
/// threads to hide with warps alone.
constexpr int64_t kLoadsInFlight = 4;

/// A loop over the chunks j = lane, lane + lanes, ... below `chunks`,
/// carrying `carried`: `use(j, load(j), carried)` in order returns the next
/// carried values, the loads of kLoadsInFlight chunks issued before the
/// first of them is used (an unrolled loop, then the remainder one chunk at
/// a time). Returns the carried values after the last chunk.
SmallVector<Value> forLaneChunks(
    OpBuilder &b, Location loc, Value chunks, Value lane, Value lanes,
    ValueRange carried,
    function_ref<SmallVector<Value>(OpBuilder &, Location, Value)> load,
    function_ref<SmallVector<Value>(OpBuilder &, Location, Value, ValueRange,
                                    ValueRange)>
        use);

/// `acc` accumulated over the chunks j = lane, lane + lanes, ... below
/// `chunks`: `accumulate(j, load(j), acc)` in order (forLaneChunks).
Value accumulateLaneChunks(
    OpBuilder &b, Location loc, Value chunks, Value lane, Value lanes,
    Value acc, function_ref<Value(OpBuilder &, Location, Value)> load,
    function_ref<Value(OpBuilder &, Location, Value, Value, Value)> accumulate);

//===----------------------------------------------------------------------===//
// Results read in a narrower type
//===----------------------------------------------------------------------===//

/// A kernel's f32 result and the readers that only convert it to one
/// narrower type (jamba-gpu-library-gemms' bf16 copies of cuBLAS GEMM
/// inputs: a `linalg.generic` that is nothing but an `arith.truncf` into a
/// fresh tensor of the same shape). The kernel stores each value in that
/// type too (the same f32 value rounded once, as the conversion would), the
/// conversions go, and the f32 buffer is written only if something else
/// reads it: one kernel launch less per converted result.
class NarrowedResult {
public:
  /// Sorts the readers of `result` (only of f32 results: a narrower result
  /// is rounded to its own type first).
  explicit NarrowedResult(Value result);

  /// The buffers, of `sizes`.
  void allocate(OpBuilder &b, Location loc, ArrayRef<Value> sizes);

  /// Stores the f32 `value` at `indices` in each buffer.
  void store(OpBuilder &b, Location loc, Value value, ValueRange indices);

  /// Gives every reader of the result what it reads: the conversions the
  /// narrow copy, the others the f32 buffer.
  void replaceReaders(IRRewriter &rw, OpBuilder &b, Location loc);

private:
  Value result;
  SmallVector<Operation *> conversions, dims;
  RankedTensorType narrowType;
  bool othersRead = false;
  Value full, narrow;
};

//===----------------------------------------------------------------------===//
// Operands computed by elementwise ops
//===----------------------------------------------------------------------===//

/// A kernel operand computed from other tensors by elementwise tensor ops
/// (arith or math, pure, one result, operands of the result's shape) that
/// nothing else reads: the kernel evaluates it where it reads an element
/// (the leaves loaded, the ops applied to scalars) instead of reading a
/// tensor that would be a kernel of its own. Jamba's A = -exp(A_log): a
/// Mamba layer's decode step launched a kernel over all of A_log for it.
class InlinedOperand {
public:
  /// With `inlineOps` false, `tensor` is read as it is.
  InlinedOperand(OpBuilder &b, Location loc, Value tensor, bool inlineOps);

  explicit operator bool() const { return static_cast<bool>(root); }

  /// The element at `indices`, as f32.
  Value loadF32(OpBuilder &b, Location loc, ValueRange indices) const;

  /// A buffer of the operand's shape (for its sizes).
  Value shape() const { return leaves.front().second; }

  /// Erases the ops of the chain nothing reads any more.
  void eraseUnread(IRRewriter &rw);

private:
  static bool elementwiseOnTensors(Operation *op);
  void collect(OpBuilder &b, Location loc, Value v);

  static constexpr int64_t kMaxInlinedOps = 8;
  Value root;
  int64_t entered = 0;
  SmallVector<Operation *> chain;
  SmallVector<std::pair<Value, Value>> leaves;
};

//===----------------------------------------------------------------------===//
// Vector loads and bf16 registers
//===----------------------------------------------------------------------===//

/// Whether, at run time, every vector of `memref` that starts at a multiple
/// of `alignBytes` bytes along its last dimension is `alignBytes`-aligned:
/// its base pointer is, and its element offset and every stride but the
/// last (1) are multiples of `alignBytes` bytes. The weights are function
/// arguments on 256-byte aligned device allocations and the activations
/// fresh device allocations, so this holds for Jamba's shapes; a view into
/// a larger tensor may break it.
Value alignedForVectors(OpBuilder &b, Location loc, Value memref,
                        int64_t alignBytes);

/// Whether a kernel may read rows of `w` and `x` in chunks of `chunk`
/// elements by vector loads: both aligned for them (alignedForVectors, `w`
/// for `wAlign` bytes, `x` for `xAlign`) and the rows' length `kDim` a
/// multiple of `chunk`. One uniform test per call.
Value vectorChunksUsable(OpBuilder &b, Location loc, Value w, int64_t wAlign,
                         Value x, int64_t xAlign, Value kDim, int64_t chunk);

/// `v` (a scalar or vector of floats or signed integers) with f32
/// elements: widened (extf, sitofp) unless it has them.
Value toF32(OpBuilder &b, Location loc, Value v);

/// The int8 vector `v` (a length that is a multiple of 4) as f32, exactly,
/// by integer and f32 arithmetic instead of int-to-float conversions: each
/// byte with its sign bit flipped is b + 128 in [0, 255]; as the low byte
/// of the f32 2^23 (0x4B000000) it is the f32 2^23 + b + 128, and
/// subtracting 2^23 + 128 leaves b. Per 4 bytes one xor, then per byte one
/// `prmt` (the zero extension and the or: jamba-gpu-byte-permutes) and
/// one subtraction, which run at the integer and f32 rates where a
/// conversion (`cvt.rn.f32.s16`) runs at 16 per clock per SM on sm_80 and
/// sm_90: at the decode step of Jamba-1.5-Mini's experts that was about
/// 28 us of conversions per GEMM (docs/CUDABackend.md). On CPUs (the
/// emulated kernels) the same vector arithmetic.
Value widenInt8ByBits(OpBuilder &b, Location loc, Value v);

/// `count` elements of `memref` from `indices` (the last one running),
/// converted to bf16 (f32 rounded to nearest even, int8 exactly), as
/// vectors of up to 16 bytes of the memref's type, one load each: the
/// widest such vector whose length divides `count`, loaded with the
/// alignment its start has when the first element is `align`-aligned (and
/// never less than the element's).
SmallVector<Value> bf16Chunks(OpBuilder &b, Location loc, Value memref,
                              SmallVector<Value> indices, int64_t count,
                              int64_t align);

/// bf16Chunks as bf16 pairs in 32-bit registers, the first element in the
/// low half (the mma.sync operand format); `count` is even.
SmallVector<Value> packedBF16(OpBuilder &b, Location loc, Value memref,
                              SmallVector<Value> indices, int64_t count,
                              int64_t align);

/// The bf16 scalars `lo` and `hi` as one 32-bit register, `lo` in the low
/// half.
Value packPair(OpBuilder &b, Location loc, Value lo, Value hi);

/// The bf16 in half `half` (an index, 0: the low one) of the 32-bit
/// register `word`, as f32.
Value unpackHalf(OpBuilder &b, Location loc, Value word, Value half);

} // namespace mlir::jamba::gpukernels

#endif // JAMBA_LIB_CONVERSION_GPUKERNELS_KERNELUTILS_H

//===- KernelUtils.cpp - Helpers of the jamba-gpu-kernels pass ------------===//
//
// Part of jamba-mlir.
//
//===----------------------------------------------------------------------===//

#include "KernelUtils.h"

#include "../JambaToLinalg/LoweringUtils.h"

#include "jamba/Conversion/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include <algorithm>

using namespace mlir;
using namespace mlir::jamba;
using lowering::convertScalar;
using lowering::indexConst;

namespace mlir::jamba::gpukernels {

Value dim(OpBuilder &b, Location loc, Value memref, int64_t d) {
  return memref::DimOp::create(b, loc, memref, d);
}

Value load(OpBuilder &b, Location loc, Value memref, ValueRange indices) {
  return memref::LoadOp::create(b, loc, memref, indices);
}

Value loadF32(OpBuilder &b, Location loc, Value memref, ValueRange indices) {
  return convertScalar(b, loc, load(b, loc, memref, indices), b.getF32Type());
}

void storeF32(OpBuilder &b, Location loc, Value value, Value memref,
              ValueRange indices) {
  Type elem = cast<MemRefType>(memref.getType()).getElementType();
  memref::StoreOp::create(b, loc, convertScalar(b, loc, value, elem), memref,
                          indices);
}

Value loadIndex(OpBuilder &b, Location loc, Value memref, ValueRange indices) {
  Value v = load(b, loc, memref, indices);
  return arith::IndexCastOp::create(b, loc, b.getIndexType(), v);
}

void nameKernel(Operation *loop, StringAttr name) {
  loop->setAttr(kKernelNameAttr, name);
  loop->walk(
      [&](memref::StoreOp store) { store->setAttr(kKernelNameAttr, name); });
}

void parallel(OpBuilder &b, Location loc, StringRef kernel,
              ArrayRef<Value> upperBounds,
              function_ref<void(OpBuilder &, Location, ValueRange)> body) {
  SmallVector<Value> lbs(upperBounds.size(), indexConst(b, loc, 0));
  SmallVector<Value> steps(upperBounds.size(), indexConst(b, loc, 1));
  auto loop = scf::ParallelOp::create(
      b, loc, lbs, upperBounds, steps,
      [&](OpBuilder &nb, Location nl, ValueRange ivs) { body(nb, nl, ivs); });
  nameKernel(loop, b.getStringAttr(kernel));
}

scf::ForOp
loop(OpBuilder &b, Location loc, Value lb, Value ub, ValueRange inits,
     function_ref<SmallVector<Value>(OpBuilder &, Location, Value, ValueRange)>
         body) {
  return scf::ForOp::create(
      b, loc, lb, ub, indexConst(b, loc, 1), inits,
      [&](OpBuilder &nb, Location nl, Value iv, ValueRange args) {
        scf::YieldOp::create(nb, nl, body(nb, nl, iv, args));
      });
}

Value addF(OpBuilder &b, Location loc, Value x, Value y) {
  return arith::AddFOp::create(b, loc, x, y);
}
Value mulF(OpBuilder &b, Location loc, Value x, Value y) {
  return arith::MulFOp::create(b, loc, x, y);
}
Value i32Const(OpBuilder &b, Location loc, int64_t v) {
  return arith::ConstantIntOp::create(b, loc, b.getI32Type(), v);
}

Value addI(OpBuilder &b, Location loc, Value x, Value y) {
  return arith::AddIOp::create(b, loc, x, y);
}

Value divC(OpBuilder &b, Location loc, Value x, int64_t d) {
  return arith::DivUIOp::create(b, loc, x, indexConst(b, loc, d));
}
Value remC(OpBuilder &b, Location loc, Value x, int64_t d) {
  return arith::RemUIOp::create(b, loc, x, indexConst(b, loc, d));
}
Value mulC(OpBuilder &b, Location loc, Value x, int64_t m) {
  return arith::MulIOp::create(b, loc, x, indexConst(b, loc, m));
}

bool isF32Compatible(Type t) {
  Type e = getElementTypeOrSelf(t);
  return e.isF32() || e.isBF16() || e.isF16();
}

SmallVector<Value> delinearize(OpBuilder &b, Location loc, Value r,
                               ArrayRef<Value> dims) {
  SmallVector<Value> idx(dims.size());
  for (int64_t i = int64_t(dims.size()) - 1; i >= 0; --i) {
    idx[i] = arith::RemUIOp::create(b, loc, r, dims[i]);
    r = arith::DivUIOp::create(b, loc, r, dims[i]);
  }
  return idx;
}

Value alignedForVectors(OpBuilder &b, Location loc, Value memref,
                        int64_t alignBytes) {
  auto type = cast<MemRefType>(memref.getType());
  const int64_t elems =
      alignBytes / (type.getElementType().getIntOrFloatBitWidth() / 8);
  auto meta = memref::ExtractStridedMetadataOp::create(b, loc, memref);
  Value base = memref::ExtractAlignedPointerAsIndexOp::create(b, loc, memref);
  Value zero = indexConst(b, loc, 0), elemsC = indexConst(b, loc, elems);
  auto multipleOf = [&](Value x, Value m) -> Value {
    return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq,
                                 arith::RemUIOp::create(b, loc, x, m), zero);
  };
  Value ok = multipleOf(base, indexConst(b, loc, alignBytes));
  ok = arith::AndIOp::create(b, loc, ok, multipleOf(meta.getOffset(), elemsC));
  for (Value stride : meta.getStrides().drop_back())
    ok = arith::AndIOp::create(b, loc, ok, multipleOf(stride, elemsC));
  return ok;
}

Value vectorChunksUsable(OpBuilder &b, Location loc, Value w, int64_t wAlign,
                         Value x, int64_t xAlign, Value kDim, int64_t chunk) {
  Value aligned =
      arith::AndIOp::create(b, loc, alignedForVectors(b, loc, w, wAlign),
                            alignedForVectors(b, loc, x, xAlign));
  Value whole = arith::CmpIOp::create(
      b, loc, arith::CmpIPredicate::eq,
      arith::RemUIOp::create(b, loc, kDim, indexConst(b, loc, chunk)),
      indexConst(b, loc, 0));
  return arith::AndIOp::create(b, loc, aligned, whole);
}

Value toF32(OpBuilder &b, Location loc, Value v) {
  Type elem = getElementTypeOrSelf(v.getType());
  Type f32 = b.getF32Type();
  if (elem == f32)
    return v;
  Type to = f32;
  if (auto vec = dyn_cast<VectorType>(v.getType()))
    to = vec.clone(f32);
  if (isa<IntegerType>(elem))
    return arith::SIToFPOp::create(b, loc, to, v);
  return arith::ExtFOp::create(b, loc, to, v);
}

Value widenInt8ByBits(OpBuilder &b, Location loc, Value v) {
  auto type = cast<VectorType>(v.getType());
  const int64_t n = type.getNumElements();
  Type i32 = b.getI32Type();
  auto words = VectorType::get({n / 4}, i32);
  auto wide = VectorType::get({n}, i32);
  auto splat = [&](VectorType t, Attribute a) -> Value {
    return arith::ConstantOp::create(b, loc, DenseElementsAttr::get(t, a));
  };
  Value flipped = arith::XOrIOp::create(
      b, loc, vector::BitCastOp::create(b, loc, words, v),
      splat(words, b.getI32IntegerAttr(int32_t(0x80808080u))));
  Value biased = arith::OrIOp::create(
      b, loc,
      arith::ExtUIOp::create(b, loc, wide,
                             vector::BitCastOp::create(b, loc, type, flipped)),
      splat(wide, b.getI32IntegerAttr(0x4B000000)));
  auto f32s = VectorType::get({n}, b.getF32Type());
  return arith::SubFOp::create(b, loc,
                               arith::BitcastOp::create(b, loc, f32s, biased),
                               splat(f32s, b.getF32FloatAttr(8388736.0f)));
}

SmallVector<Value> bf16Chunks(OpBuilder &b, Location loc, Value memref,
                              SmallVector<Value> indices, int64_t count,
                              int64_t align) {
  Type f32 = b.getF32Type(), bf16 = b.getBF16Type();
  Type elem = cast<MemRefType>(memref.getType()).getElementType();
  const int64_t bytes = elem.getIntOrFloatBitWidth() / 8;
  int64_t chunk = std::min<int64_t>(count, 16 / bytes);
  while (count % chunk != 0)
    chunk /= 2;
  const int64_t alignment = std::max(bytes, std::min(align, chunk * bytes));
  Value k0 = indices.back();
  SmallVector<Value> chunks;
  for (int64_t at = 0; at < count; at += chunk) {
    indices.back() = addI(b, loc, k0, indexConst(b, loc, at));
    Value part = vector::LoadOp::create(
        b, loc, VectorType::get({chunk}, elem), memref, indices,
        /*nontemporal=*/false, llvm::MaybeAlign(alignment));
    auto bf16Type = VectorType::get({chunk}, bf16);
    if (elem.isInteger(8)) {
      // Through f32, whose upper 16 bits are then the bf16 (an int8 has at
      // most 8 significant bits): the odd i16 halves (little-endian). Not a
      // sitofp to bf16, which CPUs lower to a libcall (and canonicalization
      // would fold a sitofp to f32 plus a truncf into it).
      Value wide = chunk % 4 == 0
                       ? widenInt8ByBits(b, loc, part)
                       : arith::SIToFPOp::create(
                             b, loc, VectorType::get({chunk}, f32), part);
      Value halves = vector::BitCastOp::create(
          b, loc, VectorType::get({2 * chunk}, b.getI16Type()), wide);
      SmallVector<int64_t> high;
      for (int64_t i = 0; i < chunk; ++i)
        high.push_back(2 * i + 1);
      part = vector::BitCastOp::create(
          b, loc, bf16Type,
          vector::ShuffleOp::create(b, loc, halves, halves, high));
    } else if (!elem.isBF16()) {
      part = arith::TruncFOp::create(b, loc, bf16Type, part);
    }
    chunks.push_back(part);
  }
  return chunks;
}

SmallVector<Value> packedBF16(OpBuilder &b, Location loc, Value memref,
                              SmallVector<Value> indices, int64_t count,
                              int64_t align) {
  SmallVector<Value> regs;
  for (Value part : bf16Chunks(b, loc, memref, indices, count, align)) {
    const int64_t chunk = cast<VectorType>(part.getType()).getNumElements();
    Value words = vector::BitCastOp::create(
        b, loc, VectorType::get({chunk / 2}, b.getI32Type()), part);
    for (int64_t i = 0; i < chunk / 2; ++i)
      regs.push_back(vector::ExtractOp::create(b, loc, words, i));
  }
  return regs;
}

Value packPair(OpBuilder &b, Location loc, Value lo, Value hi) {
  Value pair = vector::FromElementsOp::create(
      b, loc, VectorType::get({2}, b.getBF16Type()), ValueRange{lo, hi});
  return vector::ExtractOp::create(
      b, loc,
      vector::BitCastOp::create(b, loc, VectorType::get({1}, b.getI32Type()),
                                pair),
      0);
}

Value unpackHalf(OpBuilder &b, Location loc, Value word, Value half) {
  Type i32 = b.getI32Type();
  Value shift = arith::MulIOp::create(
      b, loc, arith::IndexCastOp::create(b, loc, i32, half),
      arith::ConstantIntOp::create(b, loc, i32, 16));
  Value bits = arith::TruncIOp::create(
      b, loc, b.getI16Type(), arith::ShRUIOp::create(b, loc, word, shift));
  return arith::ExtFOp::create(
      b, loc, b.getF32Type(),
      arith::BitcastOp::create(b, loc, b.getBF16Type(), bits).getResult());
}

//===----------------------------------------------------------------------===//
// NarrowedResult
//===----------------------------------------------------------------------===//

namespace {

/// The element type `generic` converts `value` to, when it is nothing but
/// an elementwise conversion of `value` into a fresh tensor of the same
/// shape (jamba-gpu-library-gemms' copy of a GEMM input in the weight's
/// type, `arith.truncf` to bf16); null otherwise.
Type conversionTarget(Operation *user, Value value) {
  auto generic = dyn_cast<linalg::GenericOp>(user);
  if (!generic || generic.getNumDpsInputs() != 1 ||
      generic.getNumResults() != 1 ||
      generic.getDpsInputOperand(0)->get() != value ||
      generic.getNumReductionLoops() != 0 ||
      !llvm::all_of(generic.getIndexingMapsArray(),
                    [](AffineMap m) { return m.isIdentity(); }) ||
      cast<ShapedType>(generic.getResultTypes()[0]).getShape() !=
          cast<ShapedType>(value.getType()).getShape())
    return Type();
  Block &body = generic.getRegion().front();
  if (body.getOperations().size() != 2)
    return Type();
  auto trunc = dyn_cast<arith::TruncFOp>(body.front());
  auto yield = cast<linalg::YieldOp>(body.getTerminator());
  // (Only the default rounding: the kernels' stores round to nearest even.)
  if (!trunc || trunc.getRoundingmodeAttr() ||
      (trunc.getFastmathAttr() &&
       trunc.getFastmath() != arith::FastMathFlags::none) ||
      trunc.getIn() != body.getArgument(0) || yield.getValues().size() != 1 ||
      yield.getValues()[0] != trunc)
    return Type();
  return trunc.getType();
}

} // namespace

NarrowedResult::NarrowedResult(Value result) : result(result) {
  auto type = cast<RankedTensorType>(result.getType());
  for (Operation *user : result.getUsers()) {
    // tensor.dim reads only the shape, which the copy has too.
    if (isa<tensor::DimOp>(user)) {
      dims.push_back(user);
      continue;
    }
    Type to =
        type.getElementType().isF32() ? conversionTarget(user, result) : Type();
    auto toType = to ? cast<RankedTensorType>(user->getResultTypes()[0])
                     : RankedTensorType();
    if (!to || (narrowType && toType != narrowType)) {
      othersRead = true;
      continue;
    }
    narrowType = toType;
    conversions.push_back(user);
  }
  if (conversions.empty())
    othersRead = true;
}

void NarrowedResult::allocate(OpBuilder &b, Location loc,
                              ArrayRef<Value> sizes) {
  if (othersRead)
    full = lowering::allocBuffer(
        b, loc, cast<RankedTensorType>(result.getType()), sizes);
  if (narrowType)
    narrow = lowering::allocBuffer(b, loc, narrowType, sizes);
}

void NarrowedResult::store(OpBuilder &b, Location loc, Value value,
                           ValueRange indices) {
  if (full)
    storeF32(b, loc, value, full, indices);
  if (narrow)
    storeF32(b, loc, value, narrow, indices);
}

void NarrowedResult::replaceReaders(IRRewriter &rw, OpBuilder &b,
                                    Location loc) {
  Value fullTensor, narrowTensor;
  if (full)
    fullTensor = lowering::bufferResult(b, loc, result.getType(), full);
  if (narrow)
    narrowTensor = lowering::bufferResult(b, loc, narrowType, narrow);
  for (Operation *conversion : conversions)
    rw.replaceOp(conversion, narrowTensor);
  if (!full)
    for (Operation *d : dims)
      rw.modifyOpInPlace(d, [&] { d->setOperand(0, narrowTensor); });
  if (fullTensor)
    rw.replaceAllUsesWith(result, fullTensor);
}

//===----------------------------------------------------------------------===//
// InlinedOperand
//===----------------------------------------------------------------------===//

InlinedOperand::InlinedOperand(OpBuilder &b, Location loc, Value tensor,
                               bool inlineOps)
    : root(tensor) {
  if (!tensor)
    return;
  if (inlineOps)
    collect(b, loc, tensor);
  else
    leaves.emplace_back(tensor, lowering::readOnlyBuffer(b, loc, tensor));
}

Value InlinedOperand::loadF32(OpBuilder &b, Location loc,
                              ValueRange indices) const {
  DenseMap<Value, Value> scalars;
  for (auto [tensor, buffer] : leaves)
    scalars[tensor] = load(b, loc, buffer, indices);
  for (Operation *op : chain) {
    SmallVector<Value> operands;
    for (Value v : op->getOperands())
      operands.push_back(scalars.lookup(v));
    Type elem = getElementTypeOrSelf(op->getResult(0).getType());
    Operation *scalar = b.create(loc, op->getName().getIdentifier(), operands,
                                 elem, op->getAttrs());
    scalars[op->getResult(0)] = scalar->getResult(0);
  }
  return convertScalar(b, loc, scalars.lookup(root), b.getF32Type());
}

void InlinedOperand::eraseUnread(IRRewriter &rw) {
  for (Operation *op : llvm::reverse(chain))
    if (op->use_empty())
      rw.eraseOp(op);
}

bool InlinedOperand::elementwiseOnTensors(Operation *op) {
  if (!op || op->getNumResults() != 1 || op->getNumRegions() != 0 ||
      !op->hasTrait<OpTrait::Elementwise>() || !isMemoryEffectFree(op) ||
      !isa<arith::ArithDialect, math::MathDialect>(op->getDialect()))
    return false;
  auto type = dyn_cast<RankedTensorType>(op->getResult(0).getType());
  return type && llvm::all_of(op->getOperandTypes(), [&](Type t) {
           auto operand = dyn_cast<RankedTensorType>(t);
           return operand && operand.getShape() == type.getShape();
         });
}

void InlinedOperand::collect(OpBuilder &b, Location loc, Value v) {
  Operation *def = v.getDefiningOp();
  if (def && llvm::is_contained(chain, def))
    return;
  // The root only when the kernel is its sole reader; at most
  // kMaxInlinedOps ops (counted as they are entered).
  if (elementwiseOnTensors(def) && entered < kMaxInlinedOps &&
      (v != root || v.hasOneUse())) {
    ++entered;
    for (Value operand : def->getOperands())
      collect(b, loc, operand);
    chain.push_back(def);
    return;
  }
  if (llvm::none_of(leaves, [&](auto &leaf) { return leaf.first == v; }))
    leaves.emplace_back(v, lowering::readOnlyBuffer(b, loc, v));
}

SmallVector<Value> forLaneChunks(
    OpBuilder &b, Location loc, Value chunks, Value lane, Value lanes,
    ValueRange carried,
    function_ref<SmallVector<Value>(OpBuilder &, Location, Value)> load,
    function_ref<SmallVector<Value>(OpBuilder &, Location, Value, ValueRange,
                                    ValueRange)>
        use) {
  // This lane's chunks: lane + lanes i for i < count.
  Value count = arith::DivUIOp::create(
      b, loc,
      arith::SubIOp::create(
          b, loc,
          arith::AddIOp::create(
              b, loc, chunks,
              arith::SubIOp::create(b, loc, lanes, indexConst(b, loc, 1))),
          arith::MinUIOp::create(b, loc, lane, chunks)),
      lanes);
  Value whole =
      mulC(b, loc, divC(b, loc, count, kLoadsInFlight), kLoadsInFlight);
  auto chunkOf = [&](OpBuilder &cb, Location cl, Value i) {
    return addI(cb, cl, lane, arith::MulIOp::create(cb, cl, i, lanes));
  };
  auto unrolled = scf::ForOp::create(
      b, loc, indexConst(b, loc, 0), whole, indexConst(b, loc, kLoadsInFlight),
      carried, [&](OpBuilder &kb, Location kl, Value i, ValueRange c) {
        SmallVector<Value> js;
        SmallVector<SmallVector<Value>> loaded;
        for (int64_t u = 0; u < kLoadsInFlight; ++u) {
          js.push_back(chunkOf(kb, kl, addI(kb, kl, i, indexConst(kb, kl, u))));
          loaded.push_back(load(kb, kl, js.back()));
        }
        SmallVector<Value> next(c);
        for (int64_t u = 0; u < kLoadsInFlight; ++u)
          next = use(kb, kl, js[u], loaded[u], next);
        scf::YieldOp::create(kb, kl, next);
      });
  auto rest = scf::ForOp::create(
      b, loc, whole, count, indexConst(b, loc, 1), unrolled.getResults(),
      [&](OpBuilder &kb, Location kl, Value i, ValueRange c) {
        Value j = chunkOf(kb, kl, i);
        scf::YieldOp::create(kb, kl, use(kb, kl, j, load(kb, kl, j), c));
      });
  return SmallVector<Value>(rest.getResults());
}

Value accumulateLaneChunks(
    OpBuilder &b, Location loc, Value chunks, Value lane, Value lanes,
    Value acc, function_ref<Value(OpBuilder &, Location, Value)> load,
    function_ref<Value(OpBuilder &, Location, Value, Value, Value)>
        accumulate) {
  return forLaneChunks(
      b, loc, chunks, lane, lanes, acc,
      [&](OpBuilder &kb, Location kl, Value j) {
        return SmallVector<Value>{load(kb, kl, j)};
      },
      [&](OpBuilder &kb, Location kl, Value j, ValueRange loaded,
          ValueRange c) {
        return SmallVector<Value>{accumulate(kb, kl, j, loaded[0], c[0])};
      })[0];
}

} // namespace mlir::jamba::gpukernels

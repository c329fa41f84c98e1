//===- LoweringUtils.cpp - Helpers of the jamba-to-linalg lowering --------===//
//
// Part of jamba-mlir.
//
//===----------------------------------------------------------------------===//

#include "LoweringUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

using namespace mlir;
using namespace mlir::jamba;
using namespace mlir::jamba::lowering;

Type lowering::computeType(Type elem) {
  if (elem.isF64())
    return elem;
  return Float32Type::get(elem.getContext());
}

Value lowering::convertScalar(OpBuilder &b, Location loc, Value v, Type to) {
  Type from = v.getType();
  if (from == to)
    return v;
  if (isa<FloatType>(from) && isa<FloatType>(to)) {
    unsigned fromBits = from.getIntOrFloatBitWidth(),
             toBits = to.getIntOrFloatBitWidth();
    // bf16 and f16 are not each other's extension or truncation: go
    // through f32 (exact for both widenings; one rounding at the end).
    if (fromBits == toBits) {
      Value wide =
          arith::ExtFOp::create(b, loc, Float32Type::get(b.getContext()), v);
      return arith::TruncFOp::create(b, loc, to, wide);
    }
    if (fromBits < toBits)
      return arith::ExtFOp::create(b, loc, to, v);
    return arith::TruncFOp::create(b, loc, to, v);
  }
  if (isa<IntegerType>(from) && isa<FloatType>(to))
    return arith::SIToFPOp::create(b, loc, to, v);
  if (from.isIndex() || to.isIndex())
    return arith::IndexCastOp::create(b, loc, to, v);
  llvm_unreachable("unsupported scalar conversion");
}

Value lowering::floatConst(OpBuilder &b, Location loc, Type type,
                           double value) {
  if (auto shaped = dyn_cast<ShapedType>(type))
    return arith::ConstantOp::create(
        b, loc,
        DenseElementsAttr::get(shaped,
                               b.getFloatAttr(shaped.getElementType(), value)));
  return arith::ConstantOp::create(b, loc, b.getFloatAttr(type, value));
}

Value lowering::indexConst(OpBuilder &b, Location loc, int64_t value) {
  return arith::ConstantIndexOp::create(b, loc, value);
}

Value lowering::buildSilu(OpBuilder &b, Location loc, Value x) {
  Type t = x.getType();
  Value neg = arith::NegFOp::create(b, loc, x);
  Value e = math::ExpOp::create(b, loc, neg);
  Value den = arith::AddFOp::create(b, loc, floatConst(b, loc, t, 1.0), e);
  return arith::DivFOp::create(b, loc, x, den);
}

Value lowering::buildSoftplus(OpBuilder &b, Location loc, Value x) {
  Type t = x.getType();
  Value one = floatConst(b, loc, t, 1.0);
  // log1p(e) = e when 1 + e rounds to 1, else log(u) * e / (u - 1): exact up
  // to a few ulp for every e >= 0 (Goldberg's trick).
  Value e = math::ExpOp::create(b, loc, x);
  Value u = arith::AddFOp::create(b, loc, one, e);
  Value logU = math::LogOp::create(b, loc, u);
  Value ratio =
      arith::DivFOp::create(b, loc, arith::MulFOp::create(b, loc, logU, e),
                            arith::SubFOp::create(b, loc, u, one));
  Value isOne =
      arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ, u, one);
  Value log1p = arith::SelectOp::create(b, loc, isOne, e, ratio);
  Value big = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OGT, x,
                                    floatConst(b, loc, t, 20.0));
  return arith::SelectOp::create(b, loc, big, x, log1p);
}

Value lowering::clampIndex(OpBuilder &b, Location loc, Value i, Value size) {
  Value zero = indexConst(b, loc, 0);
  Value last = arith::SubIOp::create(b, loc, size, indexConst(b, loc, 1));
  Value low = arith::MaxSIOp::create(b, loc, i, zero);
  return arith::MinSIOp::create(b, loc, low, last);
}

OpFoldResult lowering::pickSize(OpBuilder &b, Location loc, int64_t resultDim,
                                ArrayRef<std::pair<Value, int64_t>> sources) {
  if (!ShapedType::isDynamic(resultDim))
    return b.getIndexAttr(resultDim);
  for (auto [v, d] : sources) {
    auto type = cast<ShapedType>(v.getType());
    if (!type.isDynamicDim(d))
      return b.getIndexAttr(type.getDimSize(d));
  }
  assert(!sources.empty() && "a dynamic size needs a source");
  return tensor::DimOp::create(b, loc, sources.front().first,
                               sources.front().second)
      .getResult();
}

SmallVector<int64_t> lowering::staticShape(ArrayRef<OpFoldResult> sizes) {
  SmallVector<int64_t> shape;
  for (OpFoldResult s : sizes) {
    std::optional<int64_t> c = getConstantIntValue(s);
    shape.push_back(c ? *c : ShapedType::kDynamic);
  }
  return shape;
}

Value lowering::emptyTensor(OpBuilder &b, Location loc,
                            ArrayRef<OpFoldResult> sizes, Type elem) {
  return tensor::EmptyOp::create(b, loc, sizes, elem);
}

Value lowering::filledTensor(OpBuilder &b, Location loc,
                             ArrayRef<OpFoldResult> sizes, Type elem,
                             double value) {
  Value empty = emptyTensor(b, loc, sizes, elem);
  Value fill = floatConst(b, loc, elem, value);
  return linalg::FillOp::create(b, loc, ValueRange{fill}, ValueRange{empty})
      .getResult(0);
}

Value lowering::castIfNeeded(OpBuilder &b, Location loc, Value v, Type type) {
  if (v.getType() == type)
    return v;
  return tensor::CastOp::create(b, loc, type, v);
}

AffineMap lowering::projection(MLIRContext *ctx, unsigned numDims,
                               ArrayRef<unsigned> dims) {
  SmallVector<AffineExpr> exprs;
  for (unsigned d : dims)
    exprs.push_back(getAffineDimExpr(d, ctx));
  return AffineMap::get(numDims, 0, exprs, ctx);
}

SmallVector<unsigned> lowering::iota(unsigned n) {
  SmallVector<unsigned> v;
  for (unsigned i = 0; i < n; ++i)
    v.push_back(i);
  return v;
}

SmallVector<utils::IteratorType>
lowering::iterators(unsigned n, ArrayRef<unsigned> reductions) {
  SmallVector<utils::IteratorType> its(n, utils::IteratorType::parallel);
  for (unsigned r : reductions)
    its[r] = utils::IteratorType::reduction;
  return its;
}

Value lowering::buildElementwise(
    OpBuilder &b, Location loc, ValueRange inputs, ArrayRef<AffineMap> maps,
    Value init,
    function_ref<Value(OpBuilder &, Location, ValueRange, Value)> body) {
  auto initType = cast<RankedTensorType>(init.getType());
  unsigned rank = initType.getRank();
  SmallVector<AffineMap> allMaps(maps);
  allMaps.push_back(b.getMultiDimIdentityMap(rank));
  auto generic = linalg::GenericOp::create(
      b, loc, TypeRange{initType}, inputs, ValueRange{init}, allMaps,
      iterators(rank), [&](OpBuilder &nb, Location nloc, ValueRange args) {
        Value v = body(nb, nloc, args.drop_back(), args.back());
        linalg::YieldOp::create(nb, nloc, v);
      });
  return generic.getResult(0);
}

Value lowering::allocBuffer(OpBuilder &b, Location loc, RankedTensorType type,
                            ArrayRef<Value> sizes) {
  SmallVector<Value> dynamic;
  for (auto [d, size] : llvm::enumerate(sizes))
    if (type.isDynamicDim(d))
      dynamic.push_back(size);
  return memref::AllocOp::create(
      b, loc, MemRefType::get(type.getShape(), type.getElementType()), dynamic);
}

Value lowering::bufferResult(OpBuilder &b, Location loc, Type type,
                             Value buffer) {
  return bufferization::ToTensorOp::create(b, loc, type, buffer,
                                           /*restrict=*/true,
                                           /*writable=*/true);
}

/// Marks a kernel's read of a tensor (readOnlyBuffer) with a number of its
/// own in the enclosing function, one more than the largest there.
static constexpr StringLiteral kReadPointAttr = "jamba.read_point";

static int64_t nextReadPoint(Block *block) {
  Operation *scope = block->getParentOp();
  while (scope->getParentOp() &&
         !scope->hasTrait<OpTrait::IsIsolatedFromAbove>())
    scope = scope->getParentOp();
  int64_t next = 0;
  scope->walk([&](bufferization::ToBufferOp op) {
    if (auto point = op->getAttrOfType<IntegerAttr>(kReadPointAttr))
      next = std::max(next, point.getInt() + 1);
  });
  return next;
}

Value lowering::readOnlyBuffer(OpBuilder &b, Location loc, Value tensor) {
  if (!tensor)
    return Value();
  auto type = cast<RankedTensorType>(tensor.getType());
  SmallVector<int64_t> strides(type.getRank(), ShapedType::kDynamic);
  if (!strides.empty())
    strides.back() = 1;
  auto layout =
      StridedLayoutAttr::get(b.getContext(), ShapedType::kDynamic, strides);
  auto memrefType =
      MemRefType::get(type.getShape(), type.getElementType(), layout);
  auto read = bufferization::ToBufferOp::create(b, loc, memrefType, tensor,
                                                /*read_only=*/true);
  // The kernel reads the buffer after this op, in loops one-shot
  // bufferization does not look into: for the analysis this op is where the
  // tensor is read, so it must stay at its kernel. Identical reads of one
  // tensor by two kernels would otherwise be merged by CSE into the first,
  // and bufferization could then write a result produced between the two
  // kernels in place over the tensor before the second kernel read it (a
  // Mamba layer with d_inner = d_state: the C norm's result over the conv
  // output u, between the x_proj GEMM and the scan, both reading u). A
  // number of its own per read keeps them apart.
  read->setAttr(kReadPointAttr,
                b.getI64IntegerAttr(nextReadPoint(b.getInsertionBlock())));
  return read;
}

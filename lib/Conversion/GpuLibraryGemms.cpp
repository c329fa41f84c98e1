//===- GpuLibraryGemms.cpp - The jamba-gpu-library-gemms pass -------------===//
//
// Part of jamba-mlir. Dense `jamba.linear` ops with float weights become
// calls of the runtime's cuBLAS GEMM (docs/CUDABackend.md): the input is
// copied into a contiguous buffer of the weight's element type (f32, or
// bf16 for bf16 weights: cuBLAS multiplies like types), both collapse to 2-D
// `[M, K]` and `[N, K]` memrefs, and the host code calls
//
//   void _mlir_ciface_jamba_rt_cuda_gemm_f32(y, x, w)    (f32 x f32 -> f32)
//   void _mlir_ciface_jamba_rt_cuda_gemm_bf16(y, x, w)   (bf16 x bf16 -> f32)
//
// with rank-2 memref descriptors (the C interface), y = x * w^T. The bias,
// if any, is added afterwards by an elementwise op. Passing the buffers
// themselves (not their addresses) keeps them alive until after the call.
// Up to `gemv-rows` rows the generated GEMV kernel (GpuKernels/LinearGemv)
// computes y instead and the call is skipped.
//
//===----------------------------------------------------------------------===//

#include "GpuKernels/Kernels.h"
#include "JambaToLinalg/LoweringUtils.h"

#include "jamba/Conversion/Passes.h"
#include "jamba/Dialect/Jamba/IR/JambaOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

namespace mlir::jamba {
#define GEN_PASS_DEF_JAMBAGPULIBRARYGEMMSPASS
#include "jamba/Conversion/Passes.h.inc"
} // namespace mlir::jamba

using namespace mlir;
using namespace mlir::jamba;

namespace {

constexpr StringLiteral kGemmF32 = "jamba_rt_cuda_gemm_f32";
constexpr StringLiteral kGemmBF16 = "jamba_rt_cuda_gemm_bf16";

/// The private declaration of `name` taking (y, x, w) 2-D memrefs, with the
/// C interface (the call passes descriptor pointers).
FunctionType gemmType(MLIRContext *ctx, Type inputElem) {
  auto dyn = ShapedType::kDynamic;
  auto f32 = Float32Type::get(ctx);
  return FunctionType::get(ctx,
                           {MemRefType::get({dyn, dyn}, f32),
                            MemRefType::get({dyn, dyn}, inputElem),
                            MemRefType::get({dyn, dyn}, inputElem)},
                           {});
}

/// Whether the module's own symbol `name`, if any, is the runtime's GEMM
/// entry point as the calls need it; else an error naming it.
LogicalResult checkGemmSymbol(ModuleOp module, StringRef name, Type inputElem) {
  Operation *existing = module.lookupSymbol(name);
  if (!existing)
    return success();
  FunctionType want = gemmType(module.getContext(), inputElem);
  auto func = dyn_cast<func::FuncOp>(existing);
  if (func && func.isExternal() && func.getFunctionType() == want)
    return success();
  return existing->emitError()
         << "jamba-gpu-library-gemms: @" << name
         << " is the runtime's cuBLAS GEMM, a declaration of type " << want
         << "; this module's symbol of that name is not";
}

func::FuncOp declareGemm(ModuleOp module, StringRef name, Type inputElem) {
  if (auto existing = module.lookupSymbol<func::FuncOp>(name))
    return existing;
  MLIRContext *ctx = module.getContext();
  FunctionType type = gemmType(ctx, inputElem);
  OpBuilder b = OpBuilder::atBlockBegin(module.getBody());
  auto func = func::FuncOp::create(b, module.getLoc(), name, type);
  func.setPrivate();
  func->setAttr("llvm.emit_c_interface", UnitAttr::get(ctx));
  return func;
}

/// `memref` [d0, ..., dn-1, K] (identity layout) as [d0 * ... * dn-1, K],
/// then cast to fully dynamic sizes.
Value as2D(OpBuilder &b, Location loc, Value memref) {
  auto type = cast<MemRefType>(memref.getType());
  Value flat = memref;
  if (type.getRank() > 2) {
    SmallVector<ReassociationIndices> groups(2);
    for (int64_t d = 0; d + 1 < type.getRank(); ++d)
      groups[0].push_back(d);
    groups[1].push_back(type.getRank() - 1);
    flat = memref::CollapseShapeOp::create(b, loc, memref, groups);
  }
  auto dyn = ShapedType::kDynamic;
  return memref::CastOp::create(
      b, loc, MemRefType::get({dyn, dyn}, type.getElementType()), flat);
}

/// How a linear's rows are split between cuBLAS and the GEMV kernel.
struct GemvChoice {
  int64_t maxRows = 0; // 0: cuBLAS only.
  bool emulateWarps = false;
};

LogicalResult lowerLinear(IRRewriter &rw, ModuleOp module, LinearOp op,
                          const GemvChoice &gemv) {
  auto xType = cast<RankedTensorType>(op.getInput().getType());
  auto wType = cast<RankedTensorType>(op.getWeight().getType());
  auto yType = cast<RankedTensorType>(op.getType());
  Type wElem = wType.getElementType();
  // Float weights that are the function's own arguments (identity-layout
  // buffers at run time), f32 activations and results.
  if (op.getScale() || !(wElem.isF32() || wElem.isBF16()) ||
      !xType.getElementType().isF32() || !yType.getElementType().isF32() ||
      !isa<BlockArgument>(op.getWeight()) || xType.getRank() < 2 ||
      !wType.hasStaticShape())
    return failure();
  Location loc = op.getLoc();
  rw.setInsertionPoint(op);
  OpBuilder &b = rw;
  const int64_t rank = xType.getRank();

  // x in the weight's element type, in a fresh (contiguous) tensor.
  SmallVector<OpFoldResult> xSizes =
      tensor::getMixedSizes(b, loc, op.getInput());
  Value xInit = tensor::EmptyOp::create(b, loc, xSizes, wElem);
  AffineMap id = b.getMultiDimIdentityMap(rank);
  Value xc = linalg::GenericOp::create(
                 b, loc, TypeRange{xInit.getType()}, ValueRange{op.getInput()},
                 ValueRange{xInit}, ArrayRef<AffineMap>{id, id},
                 lowering::iterators(rank),
                 [&](OpBuilder &nb, Location nl, ValueRange args) {
                   linalg::YieldOp::create(
                       nb, nl, lowering::convertScalar(nb, nl, args[0], wElem));
                 })
                 .getResult(0);

  auto identity = [](RankedTensorType t) {
    return MemRefType::get(t.getShape(), t.getElementType());
  };
  Value xBuf = bufferization::ToBufferOp::create(
      b, loc, identity(cast<RankedTensorType>(xc.getType())), xc,
      /*read_only=*/true);
  Value wBuf = bufferization::ToBufferOp::create(
      b, loc, identity(wType), op.getWeight(), /*read_only=*/true);
  SmallVector<Value> yDynamic;
  for (int64_t d = 0; d + 1 < rank; ++d)
    if (yType.isDynamicDim(d))
      yDynamic.push_back(getValueOrCreateConstantIndexOp(b, loc, xSizes[d]));
  Value yBuf = memref::AllocOp::create(b, loc, identity(yType), yDynamic);

  func::FuncOp callee =
      declareGemm(module, wElem.isBF16() ? kGemmBF16 : kGemmF32, wElem);
  Value y2 = as2D(b, loc, yBuf), x2 = as2D(b, loc, xBuf),
        w2 = as2D(b, loc, wBuf);
  auto call = [&](OpBuilder &cb, Location cl) {
    func::CallOp::create(cb, cl, callee, ValueRange{y2, x2, w2});
  };
  if (gemv.maxRows == 0) {
    call(b, loc);
  } else {
    // M <= maxRows: the GEMV kernel's rows, else cuBLAS's (the kernel then
    // has none: no launch).
    Value rows = memref::DimOp::create(b, loc, x2, 0);
    Value few = arith::CmpIOp::create(
        b, loc, arith::CmpIPredicate::ule, rows,
        arith::ConstantIndexOp::create(b, loc, gemv.maxRows));
    Value gemvRows = arith::SelectOp::create(
        b, loc, few, rows, arith::ConstantIndexOp::create(b, loc, 0));
    gpukernels::buildLinearGemv(b, loc, y2, x2, w2, gemvRows,
                                gemv.emulateWarps);
    Value many = arith::XOrIOp::create(
        b, loc, few, arith::ConstantIntOp::create(b, loc, 1, 1));
    scf::IfOp::create(b, loc, many, [&](OpBuilder &tb, Location tl) {
      call(tb, tl);
      scf::YieldOp::create(tb, tl);
    });
  }
  Value y = bufferization::ToTensorOp::create(b, loc, yType, yBuf,
                                              /*restrict=*/true,
                                              /*writable=*/true);
  if (Value bias = op.getBias()) {
    // y[..., n] + bias[n], in f32.
    AffineMap last =
        AffineMap::get(rank, 0, b.getAffineDimExpr(rank - 1), b.getContext());
    Value init = tensor::EmptyOp::create(
        b, loc, tensor::getMixedSizes(b, loc, y), yType.getElementType());
    y = linalg::GenericOp::create(
            b, loc, TypeRange{yType}, ValueRange{y, bias}, ValueRange{init},
            ArrayRef<AffineMap>{id, last, id}, lowering::iterators(rank),
            [&](OpBuilder &nb, Location nl, ValueRange args) {
              Value bv = lowering::convertScalar(nb, nl, args[1],
                                                 yType.getElementType());
              linalg::YieldOp::create(
                  nb, nl, Value(arith::AddFOp::create(nb, nl, args[0], bv)));
            })
            .getResult(0);
  }
  rw.replaceOp(op, y);
  return success();
}

struct JambaGpuLibraryGemmsPass
    : jamba::impl::JambaGpuLibraryGemmsPassBase<JambaGpuLibraryGemmsPass> {
  using Base::Base;

  void runOnOperation() override {
    if (gemvRows < 0 || gemvRows > (int64_t(1) << 20)) {
      getOperation().emitError()
          << "jamba-gpu-library-gemms: gemv-rows must be in [0, 1048576], got "
          << static_cast<int64_t>(gemvRows);
      return signalPassFailure();
    }
    GemvChoice gemv{gemvRows, emulateWarps};
    ModuleOp module = getOperation();
    SmallVector<LinearOp> ops;
    module.walk([&](LinearOp op) { ops.push_back(op); });
    Builder types(&getContext());
    if (failed(checkGemmSymbol(module, kGemmF32, types.getF32Type())) ||
        failed(checkGemmSymbol(module, kGemmBF16, types.getBF16Type())))
      return signalPassFailure();
    IRRewriter rw(&getContext());
    for (LinearOp op : ops)
      (void)lowerLinear(rw, module, op, gemv); // Others: the generated kernels.
  }
};

} // namespace

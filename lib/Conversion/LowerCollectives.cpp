//===- LowerCollectives.cpp - The jamba-lower-collectives pass ------------===//
//
// Part of jamba-mlir. `jamba.all_reduce`: the input is copied into a fresh
// buffer, whose address and element count go to the runtime's all-reduce,
// and the buffer is the result: `jamba_rt_all_reduce_f32(float *, int64_t)`
// on CPUs (lib/Runtime/Communicator: MPI between processes, the identity on
// one rank), `jamba_rt_cuda_all_reduce_f32` on GPUs (NCCL on the session's
// stream). A module pass, because it declares that function in the module.
//
//===----------------------------------------------------------------------===//

#include "JambaToLinalg/LoweringUtils.h"

#include "jamba/Conversion/Passes.h"
#include "jamba/Dialect/Jamba/IR/JambaOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/SymbolTable.h"

namespace mlir::jamba {
#define GEN_PASS_DEF_JAMBALOWERCOLLECTIVESPASS
#include "jamba/Conversion/Passes.h.inc"
} // namespace mlir::jamba

using namespace mlir;
using namespace mlir::jamba;

namespace {

struct JambaLowerCollectivesPass
    : jamba::impl::JambaLowerCollectivesPassBase<JambaLowerCollectivesPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<AllReduceOp> ops;
    module.walk([&](AllReduceOp op) { ops.push_back(op); });
    if (ops.empty())
      return;
    if (runtime != "cpu" && runtime != "cuda") {
      mlir::emitError(module.getLoc())
          << "jamba-lower-collectives: runtime must be cpu or "
             "cuda, got '"
          << runtime << "'";
      return signalPassFailure();
    }
    // jamba_rt_all_reduce_f32 (MPI) or jamba_rt_cuda_all_reduce_f32 (NCCL),
    // and their _group_ variants.
    const std::string prefix =
        runtime == "cuda" ? "jamba_rt_cuda_all_reduce" : "jamba_rt_all_reduce";
    const std::string allReduceSymbol = prefix + "_f32";
    const std::string groupAllReduceSymbol = prefix + "_group_f32";
    MLIRContext *ctx = &getContext();
    auto ptrType = LLVM::LLVMPointerType::get(ctx);
    auto i64 = IntegerType::get(ctx, 64);

    // A symbol of the module by one of these names must be the runtime's
    // declaration (a call of another signature would not verify).
    for (auto [name, params] : {std::pair<StringRef, SmallVector<Type>>{
                                    allReduceSymbol, {ptrType, i64}},
                                {groupAllReduceSymbol, {ptrType, i64, i64}}}) {
      Operation *existing = module.lookupSymbol(name);
      if (!existing)
        continue;
      auto want = FunctionType::get(ctx, params, {});
      auto func = dyn_cast<func::FuncOp>(existing);
      if (func && func.isExternal() && func.getFunctionType() == want)
        continue;
      existing->emitError()
          << "jamba-lower-collectives: @" << name
          << " is the runtime's all-reduce, a declaration of type " << want
          << "; this module's symbol of that name is not";
      return signalPassFailure();
    }

    // void jamba_rt_all_reduce_f32(float *data, int64_t count)
    // void jamba_rt_all_reduce_group_f32(float *data, int64_t count,
    //                                    int64_t group_size)
    auto declare = [&](StringRef name, TypeRange params) {
      auto callee = module.lookupSymbol<func::FuncOp>(name);
      if (!callee) {
        OpBuilder b = OpBuilder::atBlockBegin(module.getBody());
        callee = func::FuncOp::create(b, module.getLoc(), name,
                                      b.getFunctionType(params, {}));
        callee.setPrivate();
      }
      return callee;
    };

    for (AllReduceOp op : ops) {
      auto type = cast<RankedTensorType>(op.getType());
      if (!type.getElementType().isF32()) {
        op.emitOpError() << "jamba-lower-collectives: the runtime "
                            "all-reduces f32 tensors, got "
                         << type.getElementType();
        return signalPassFailure();
      }
      OpBuilder b(op);
      Location loc = op.getLoc();
      Value in = lowering::readOnlyBuffer(b, loc, op.getInput());
      SmallVector<Value> dynamic;
      Value count = arith::ConstantIndexOp::create(b, loc, 1);
      for (int64_t d = 0; d < type.getRank(); ++d) {
        Value size = memref::DimOp::create(b, loc, in, d);
        if (type.isDynamicDim(d))
          dynamic.push_back(size);
        count = arith::MulIOp::create(b, loc, count, size);
      }
      Value out = memref::AllocOp::create(
          b, loc, MemRefType::get(type.getShape(), type.getElementType()),
          dynamic);
      linalg::CopyOp::create(b, loc, in, out);
      Value address =
          memref::ExtractAlignedPointerAsIndexOp::create(b, loc, out);
      Value addressI64 = arith::IndexCastOp::create(b, loc, i64, address);
      Value ptr = LLVM::IntToPtrOp::create(b, loc, ptrType, addressI64);
      Value count64 = arith::IndexCastOp::create(b, loc, i64, count);
      if (int64_t group = op.getGroupSize()) {
        func::CallOp::create(
            b, loc, declare(groupAllReduceSymbol, {ptrType, i64, i64}),
            ValueRange{ptr, count64,
                       arith::ConstantIntOp::create(b, loc, i64, group)});
      } else {
        func::CallOp::create(b, loc, declare(allReduceSymbol, {ptrType, i64}),
                             ValueRange{ptr, count64});
      }
      op.replaceAllUsesWith(bufferization::ToTensorOp::create(b, loc, type, out,
                                                              /*restrict=*/true,
                                                              /*writable=*/true)
                                .getResult());
      op.erase();
    }
  }
};

} // namespace

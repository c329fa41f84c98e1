//===- GpuKernels.cpp - The jamba-gpu-kernels pass ------------------------===//
//
// Part of jamba-mlir. The jamba primitives whose linalg lowering needs
// sequential loops over tensors (selective_scan, causal_conv1d,
// cached_attention, router_topk, argmax) as `scf.parallel` loop nests on
// buffers: one parallel iteration per independent item (a (sequence,
// channel) pair of the scan and the conv, a (sequence, token, head) triple
// of attention, a row of the router), its sequential work inside the
// iteration. No
// iteration reads what another one writes, so each nest is one GPU kernel
// once jamba-gpu-map-loops and convert-parallel-loops-to-gpu have mapped it
// onto blocks and threads, and the same IR also runs on CPUs (which is how
// the kernels' numerics are tested without a GPU).
//
// Like jamba-cpu-microkernels, the kernels read their operands through
// `bufferization.to_buffer read_only`, write a fresh `memref.alloc` and
// return it with `bufferization.to_tensor restrict writable`. The KV caches
// are the exception: the new rows are written into the cache's own buffer
// (a writable `to_buffer`), so that bufferization keeps the cache in place.
//
// This file holds the passes; each op's kernels are in the file of its name
// (Kernels.h), their shared helpers in KernelUtils.h and the warp-level code
// of the tensor-core kernels in WarpCode.h.
//
//===----------------------------------------------------------------------===//

#include "../JambaToLinalg/LoweringUtils.h"
#include "KernelUtils.h"
#include "Kernels.h"

#include "jamba/Conversion/Passes.h"
#include "jamba/Dialect/Jamba/IR/JambaOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/SCF/Transforms/Transforms.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/TypeSwitch.h"

#include <algorithm>
#include <functional>

namespace mlir::jamba {
#define GEN_PASS_DEF_JAMBAGPUKERNELSPASS
#define GEN_PASS_DEF_JAMBAPARALLELCOPIESTOLOOPSPASS
#include "jamba/Conversion/Passes.h.inc"
} // namespace mlir::jamba

using namespace mlir;
using namespace mlir::jamba;
using namespace mlir::jamba::gpukernels;
using lowering::indexConst;

namespace {

/// nvvm.mma.sync reads and writes registers only, but declares no memory
/// effects, and buffer deallocation rejects ops whose effects are unknown:
/// this model says it has none.
struct MmaSyncHasNoMemoryEffects
    : MemoryEffectOpInterface::ExternalModel<MmaSyncHasNoMemoryEffects,
                                             NVVM::MmaOp> {
  void
  getEffects(Operation *,
             SmallVectorImpl<SideEffects::EffectInstance<MemoryEffects::Effect>>
                 &) const {}
};

struct JambaGpuKernelsPass
    : jamba::impl::JambaGpuKernelsPassBase<JambaGpuKernelsPass> {
  using Base::Base;

  LogicalResult initialize(MLIRContext *context) override {
    // Once per context, before any function runs (the pass is run on
    // functions in parallel).
    std::optional<RegisteredOperationName> mma =
        RegisteredOperationName::lookup(TypeID::get<NVVM::MmaOp>(), context);
    if (mma && !mma->hasInterface<MemoryEffectOpInterface>())
      NVVM::MmaOp::attachInterface<MmaSyncHasNoMemoryEffects>(*context);
    return success();
  }

  void runOnOperation() override {
    JambaGpuKernelsPassOptions options;
    options.attentionKeysPerSplit = attentionKeysPerSplit;
    options.attentionMaxSplits = attentionMaxSplits;
    options.expertGemmLanes = expertGemmLanes;
    options.expertGemmGroupedRows = expertGemmGroupedRows;
    options.scanChunkSteps = scanChunkSteps;
    options.scanLaneThreads = scanLaneThreads;
    options.attentionMmaMinTokens = attentionMmaMinTokens;
    if (std::string problem = checkGpuKernelsOptions(options);
        !problem.empty()) {
      mlir::emitError(getOperation().getLoc())
          << "jamba-gpu-kernels: " << problem;
      return signalPassFailure();
    }
    AttentionSplits splitsConfig{
        attentionKeysPerSplit, attentionMaxSplits,
        attentionTensorCores ? static_cast<int64_t>(attentionMmaMinTokens) : 0,
        emulateMma};
    ExpertGemmOptions gemmOptions{expertGemmLanes, expertGemmGroupedRows,
                                  expertGemmTensorCores, emulateMma,
                                  emulateWarps};
    SmallVector<Operation *> ops;
    getOperation()->walk([&](Operation *op) {
      if (isa<SelectiveScanOp, CausalConv1dOp, RouterTopKOp, CachedAttentionOp,
              ExpertGemmOp, RMSNormOp, ArgmaxOp>(op))
        ops.push_back(op);
    });
    IRRewriter rw(&getContext());
    for (Operation *op : ops) {
      // An unsupported form (f64, ...) is left: the CPU's gpu-kernels mode
      // lowers it through convert-jamba-to-linalg, the GPU pipeline names
      // it (jamba-require-gpu-kernels).
      (void)TypeSwitch<Operation *, LogicalResult>(op)
          .Case([&](SelectiveScanOp o) {
            return lowerSelectiveScan(
                rw, o, {scanChunkSteps, scanLaneThreads, emulateWarps});
          })
          .Case([&](CausalConv1dOp o) { return lowerCausalConv1d(rw, o); })
          .Case([&](RouterTopKOp o) { return lowerRouterTopK(rw, o); })
          .Case([&](CachedAttentionOp o) {
            return lowerCachedAttention(rw, o, splitsConfig);
          })
          .Case([&](ExpertGemmOp o) {
            return lowerExpertGemm(rw, o, gemmOptions);
          })
          .Case([&](RMSNormOp o) { return lowerRMSNorm(rw, o, emulateWarps); })
          .Case([&](ArgmaxOp o) { return lowerArgmax(rw, o, emulateWarps); })
          .Default([](Operation *) { return failure(); });
    }
  }
};

struct JambaParallelCopiesToLoopsPass
    : jamba::impl::JambaParallelCopiesToLoopsPassBase<
          JambaParallelCopiesToLoopsPass> {
  void runOnOperation() override {
    IRRewriter rw(&getContext());
    // Every scf.forall as an scf.parallel, keeping its kernel name.
    SmallVector<scf::ForallOp> foralls;
    getOperation().walk(
        [&](scf::ForallOp forall) { foralls.push_back(forall); });
    for (scf::ForallOp forall : llvm::reverse(foralls)) {
      auto name = forall->getAttrOfType<StringAttr>(kKernelNameAttr);
      rw.setInsertionPoint(forall);
      scf::ParallelOp loop;
      if (failed(scf::forallToParallelLoop(rw, forall, &loop))) {
        forall.emitError() << "jamba-parallel-copies-to-loops: cannot make "
                              "this scf.forall a parallel loop";
        return signalPassFailure();
      }
      if (name)
        loop->setAttr(kKernelNameAttr, name);
    }

    SmallVector<memref::CopyOp> copies;
    getOperation().walk([&](memref::CopyOp copy) {
      if (copy->getParentOfType<scf::ParallelOp>() ||
          copy->getParentOfType<scf::ForallOp>())
        copies.push_back(copy);
    });
    for (memref::CopyOp copy : copies) {
      rw.setInsertionPoint(copy);
      // The copy's stores carry the name of the kernel they are part of.
      StringAttr name;
      for (Operation *p = copy->getParentOp(); p; p = p->getParentOp())
        if (auto n = p->getAttrOfType<StringAttr>(kKernelNameAttr))
          name = n;
      Location loc = copy.getLoc();
      Value source = copy.getSource(), target = copy.getTarget();
      int64_t rank = cast<MemRefType>(source.getType()).getRank();
      // One scf.for per dimension, the element copy innermost.
      std::function<void(OpBuilder &, Location, SmallVector<Value>)> nest =
          [&](OpBuilder &nb, Location nl, SmallVector<Value> ivs) {
            if (int64_t(ivs.size()) == rank) {
              Value v = memref::LoadOp::create(nb, nl, source, ivs);
              auto store = memref::StoreOp::create(nb, nl, v, target, ivs);
              if (name)
                store->setAttr(kKernelNameAttr, name);
              return;
            }
            Value ub = dim(nb, nl, source, int64_t(ivs.size()));
            loop(nb, nl, indexConst(nb, nl, 0), ub, {},
                 [&](OpBuilder &ib, Location il, Value iv, ValueRange) {
                   SmallVector<Value> next = ivs;
                   next.push_back(iv);
                   nest(ib, il, next);
                   return SmallVector<Value>{};
                 });
          };
      nest(rw, loc, {});
      rw.eraseOp(copy);
    }
  }
};

} // namespace

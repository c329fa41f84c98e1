//===- GPUPipeline.cpp - jamba-gpu-map-loops, jamba-gpu-host-memory -------===//
//
// Part of jamba-mlir. The CUDA lowering of jamba primitives on tensors:
// bufferized loop nests become GPU kernels (gpu dialect -> NVVM -> PTX),
// and the entry points become host code that allocates device memory and
// launches them through the `mgpu*` functions the runtime provides
// (docs/CUDABackend.md). Registered as jamba-gpu-lower-pipeline so that
// jamba-opt reproduces exactly what the compiler runs (STYLE.md habit 10).
//
//===----------------------------------------------------------------------===//

#include "jamba/Conversion/Passes.h"
#include "jamba/Dialect/Jamba/IR/JambaOps.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Transforms/ParallelLoopMapper.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/LLVMIR/Transforms/Passes.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/SCF/Transforms/Transforms.h"
#include "mlir/Dialect/SCF/Utils/Utils.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/Threading.h"
#include "mlir/Interfaces/FunctionInterfaces.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Interfaces/ViewLikeInterface.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

namespace mlir::jamba {
#define GEN_PASS_DEF_JAMBAGPUFUSEELEMENTWISEPASS
#define GEN_PASS_DEF_JAMBAGPUFUSELOOPSPASS
#define GEN_PASS_DEF_JAMBAGPUREDUCTIONSINNERMOSTPASS
#define GEN_PASS_DEF_JAMBAGPUMAPLOOPSPASS
#define GEN_PASS_DEF_JAMBAGPUHOSTMEMORYPASS
#include "jamba/Conversion/Passes.h.inc"
} // namespace mlir::jamba

using namespace mlir;
using namespace mlir::jamba;

namespace {

//===----------------------------------------------------------------------===//
// jamba-gpu-fuse-elementwise
//===----------------------------------------------------------------------===//

bool isParallelGeneric(Operation *op) {
  auto generic = dyn_cast_or_null<linalg::GenericOp>(op);
  return generic && generic.getNumLoops() == generic.getNumParallelLoops();
}

struct JambaGpuFuseElementwisePass
    : jamba::impl::JambaGpuFuseElementwisePassBase<
          JambaGpuFuseElementwisePass> {
  /// Whether `operand`'s producer fuses into its reader: both elementwise
  /// generics in one block (not recomputed per iteration of a loop around
  /// the reader), the producer read only here and through a permutation
  /// (each produced element computed once), and upstream's legality.
  static bool fusible(OpOperand &operand) {
    Operation *producer = operand.get().getDefiningOp();
    auto consumer = dyn_cast<linalg::GenericOp>(operand.getOwner());
    if (!isParallelGeneric(producer) || !consumer ||
        !isParallelGeneric(consumer.getOperation()) || !producer->hasOneUse() ||
        producer->getBlock() != consumer->getBlock())
      return false;
    if (!consumer.getMatchingIndexingMap(&operand).isPermutation())
      return false;
    return linalg::areElementwiseOpsFusable(&operand);
  }

  void runOnOperation() override {
    IRRewriter rw(&getContext());
    // convert-elementwise-to-linalg gives a generic its input as its init
    // (`outs`) too; a payload that never reads the init does not need it,
    // and an empty init leaves the producer with the one use fusion asks.
    getOperation().walk([&](linalg::GenericOp g) {
      if (!isParallelGeneric(g.getOperation()))
        return;
      for (OpOperand &init : g.getDpsInitsMutable()) {
        if (!isParallelGeneric(init.get().getDefiningOp()) ||
            g.payloadUsesValueFromOperand(&init))
          continue;
        rw.setInsertionPoint(g);
        auto type = cast<RankedTensorType>(init.get().getType());
        Value empty = tensor::EmptyOp::create(
            rw, g.getLoc(), tensor::getMixedSizes(rw, g.getLoc(), init.get()),
            type.getElementType());
        rw.modifyOpInPlace(g, [&] { init.set(empty); });
      }
    });
    // Fuse until nothing fuses (each fusion removes a generic).
    for (bool changed = true; changed;) {
      changed = false;
      SmallVector<linalg::GenericOp> generics;
      getOperation().walk([&](linalg::GenericOp g) { generics.push_back(g); });
      for (linalg::GenericOp consumer : generics) {
        for (OpOperand *operand : consumer.getDpsInputOperands()) {
          if (!fusible(*operand))
            continue;
          Operation *producer = operand->get().getDefiningOp();
          rw.setInsertionPoint(consumer);
          FailureOr<linalg::ElementwiseOpFusionResult> fused =
              linalg::fuseElementwiseOps(rw, operand);
          if (failed(fused))
            continue;
          for (auto [from, to] : fused->replacements)
            rw.replaceAllUsesExcept(from, to, fused->fusedOp);
          rw.eraseOp(consumer);
          if (producer->use_empty())
            rw.eraseOp(producer);
          changed = true;
          break;
        }
        if (changed)
          break;
      }
    }
  }
};

//===----------------------------------------------------------------------===//
// jamba-gpu-reductions-innermost
//===----------------------------------------------------------------------===//

struct JambaGpuReductionsInnermostPass
    : jamba::impl::JambaGpuReductionsInnermostPassBase<
          JambaGpuReductionsInnermostPass> {
  void runOnOperation() override {
    IRRewriter rw(&getContext());
    SmallVector<linalg::GenericOp> generics;
    getOperation().walk([&](linalg::GenericOp g) { generics.push_back(g); });
    for (linalg::GenericOp g : generics) {
      // The parallel loops in order, then the others (reductions) in order.
      SmallVector<unsigned> parallelFirst, rest;
      for (auto [i, type] : llvm::enumerate(g.getIteratorTypesArray()))
        (type == utils::IteratorType::parallel ? parallelFirst : rest)
            .push_back(i);
      if (rest.empty() || parallelFirst.empty() ||
          parallelFirst.back() < rest.front())
        continue;
      parallelFirst.append(rest);
      rw.setInsertionPoint(g);
      if (failed(linalg::interchangeGenericOp(rw, g, parallelFirst))) {
        g.emitError() << "jamba-gpu-reductions-innermost: cannot permute "
                         "the loops of this linalg.generic";
        return signalPassFailure();
      }
    }
  }
};

//===----------------------------------------------------------------------===//
// jamba-gpu-fuse-loops
//===----------------------------------------------------------------------===//

bool insideParallelOrKernel(Operation *op) {
  for (Operation *p = op->getParentOp(); p; p = p->getParentOp())
    if (isa<scf::ParallelOp, gpu::LaunchOp, gpu::GPUModuleOp>(p))
      return true;
  return false;
}

/// The buffer `memref` is a view of: through view-like ops to an
/// allocation or a memref argument of the function; null when it is
/// neither. Arguments count as distinct buffers: the compiler's stage
/// functions write only their states (each its own allocation) and their
/// outputs (arena regions the memory plan keeps apart from every value
/// live at the same time), and the weights they read are never written.
Value rootBuffer(Value memref) {
  while (true) {
    if (auto arg = dyn_cast<BlockArgument>(memref)) {
      Operation *owner = arg.getOwner()->getParentOp();
      if (isa<FunctionOpInterface>(owner) && arg.getOwner()->isEntryBlock() &&
          isa<BaseMemRefType>(arg.getType()))
        return memref;
      return Value();
    }
    Operation *def = memref.getDefiningOp();
    if (isa<memref::AllocOp, memref::AllocaOp, gpu::AllocOp>(def))
      return memref;
    if (auto cast = dyn_cast<memref::CastOp>(def)) {
      memref = cast.getSource();
      continue;
    }
    if (auto view = dyn_cast<ViewLikeOpInterface>(def)) {
      memref = view.getViewSource();
      continue;
    }
    return Value();
  }
}

/// The root buffers a loop body reads and writes; `known` is false when an
/// op's effects are not all on buffers with a root.
/// `otherElements`: the roots some access reaches other than as a
/// memref.load or memref.store of the root itself at exactly the loop's
/// induction variables (the iteration's own element).
struct LoopAccesses {
  llvm::SmallDenseSet<Value> reads, writes, otherElements;
  bool known = true;
};

/// Whether `op` loads or stores `root` itself at `loop`'s induction
/// variables, in order.
bool atOwnElement(Operation *op, Value root, scf::ParallelOp loop) {
  Value memref;
  ValueRange indices;
  if (auto load = dyn_cast<memref::LoadOp>(op)) {
    memref = load.getMemRef();
    indices = load.getIndices();
  } else if (auto store = dyn_cast<memref::StoreOp>(op)) {
    memref = store.getMemRef();
    indices = store.getIndices();
  } else {
    return false;
  }
  return memref == root &&
         llvm::equal(indices, ValueRange(loop.getInductionVars()));
}

LoopAccesses accessesOf(scf::ParallelOp loop) {
  LoopAccesses result;
  loop.getBody()->walk([&](Operation *op) {
    // Ops with regions report their bodies' effects through those ops.
    if (op->hasTrait<OpTrait::HasRecursiveMemoryEffects>())
      return;
    auto effects = dyn_cast<MemoryEffectOpInterface>(op);
    if (!effects) {
      if (!isMemoryEffectFree(op))
        result.known = false;
      return;
    }
    SmallVector<MemoryEffects::EffectInstance> instances;
    effects.getEffects(instances);
    for (const MemoryEffects::EffectInstance &effect : instances) {
      // A buffer allocated in the body is the iteration's own.
      if (isa<MemoryEffects::Allocate>(effect.getEffect()))
        continue;
      Value root = effect.getValue() ? rootBuffer(effect.getValue()) : Value();
      if (!root) {
        result.known = false;
        continue;
      }
      if (isa<MemoryEffects::Read>(effect.getEffect()))
        result.reads.insert(root);
      else
        result.writes.insert(root);
      if (!atOwnElement(op, root, loop))
        result.otherElements.insert(root);
    }
  });
  return result;
}

bool sameIndex(Value a, Value b) {
  if (a == b)
    return true;
  std::optional<int64_t> ca = getConstantIntValue(a),
                         cb = getConstantIntValue(b);
  return ca && cb && *ca == *cb;
}

bool sameIterationSpace(scf::ParallelOp a, scf::ParallelOp b) {
  if (a.getNumLoops() != b.getNumLoops())
    return false;
  for (unsigned d = 0; d < a.getNumLoops(); ++d)
    if (!sameIndex(a.getLowerBound()[d], b.getLowerBound()[d]) ||
        !sameIndex(a.getUpperBound()[d], b.getUpperBound()[d]) ||
        !sameIndex(a.getStep()[d], b.getStep()[d]))
      return false;
  return true;
}

/// Whether `a` and `b` may run as one loop: same iteration space, plain
/// (no reductions, no nested parallel loop), and every buffer one writes
/// and the other touches touched by both only at each iteration's own
/// element (then iteration i of the merged loop does to element i what
/// the two did, in their order, and no other iteration touches it).
bool fusible(scf::ParallelOp a, scf::ParallelOp b) {
  auto plain = [](scf::ParallelOp loop) {
    if (loop.getNumReductions() != 0)
      return false;
    return !loop.getBody()
                ->walk([](scf::ParallelOp) { return WalkResult::interrupt(); })
                .wasInterrupted();
  };
  if (!sameIterationSpace(a, b) || !plain(a) || !plain(b))
    return false;
  LoopAccesses first = accessesOf(a), second = accessesOf(b);
  if (!first.known || !second.known)
    return false;
  auto ownElementsOnly = [&](Value root) {
    return !first.otherElements.contains(root) &&
           !second.otherElements.contains(root);
  };
  for (Value w : first.writes)
    if ((second.reads.contains(w) || second.writes.contains(w)) &&
        !ownElementsOnly(w))
      return false;
  for (Value w : second.writes)
    if (first.reads.contains(w) && !ownElementsOnly(w))
      return false;
  return true;
}

/// A loop's kernel name: its own, else its first named store's.
StringAttr kernelName(scf::ParallelOp loop) {
  auto name = loop->getAttrOfType<StringAttr>(kKernelNameAttr);
  if (!name)
    loop->walk([&](memref::StoreOp store) {
      name = store->getAttrOfType<StringAttr>(kKernelNameAttr);
      return name ? WalkResult::interrupt() : WalkResult::advance();
    });
  return name;
}

/// Whether `op` (between two loops) touches no memory but to allocate its
/// result: a view, index arithmetic, the next loop's output buffer.
bool onlyAllocates(Operation *op) {
  if (op->getNumRegions() != 0)
    return false;
  if (isMemoryEffectFree(op))
    return true;
  auto effects = dyn_cast<MemoryEffectOpInterface>(op);
  if (!effects)
    return false;
  SmallVector<MemoryEffects::EffectInstance> instances;
  effects.getEffects(instances);
  return llvm::all_of(instances, [](const MemoryEffects::EffectInstance &e) {
    return isa<MemoryEffects::Allocate>(e.getEffect());
  });
}

struct JambaGpuFuseLoopsPass
    : jamba::impl::JambaGpuFuseLoopsPassBase<JambaGpuFuseLoopsPass> {
  void runOnOperation() override {
    IRRewriter rw(&getContext());
    getOperation().walk([&](Block *block) {
      if (insideParallelOrKernel(block->getParentOp()) ||
          isa<scf::ParallelOp>(block->getParentOp()))
        return;
      // The previous loop of the current run (memory-effect-free ops
      // without regions in between).
      scf::ParallelOp previous;
      for (Operation &op : llvm::make_early_inc_range(*block)) {
        auto loop = dyn_cast<scf::ParallelOp>(op);
        if (!loop) {
          if (!onlyAllocates(&op))
            previous = nullptr;
          continue;
        }
        if (previous && fusible(previous, loop)) {
          StringAttr first = kernelName(previous), second = kernelName(loop);
          IRMapping ivs;
          ivs.map(previous.getInductionVars(), loop.getInductionVars());
          rw.setInsertionPointToStart(loop.getBody());
          for (Operation &inner : previous.getBody()->without_terminator())
            rw.clone(inner, ivs);
          rw.eraseOp(previous);
          std::string name = first ? first.str() : "linalg";
          std::string next = second ? second.str() : "linalg";
          if (next != name)
            name += "_and_" + next;
          loop->setAttr(kKernelNameAttr, rw.getStringAttr(name));
        }
        previous = loop;
      }
    });
  }
};

//===----------------------------------------------------------------------===//
// jamba-gpu-map-loops
//===----------------------------------------------------------------------===//

/// `memref.copy` of device buffers as an elementwise parallel loop (one
/// kernel), instead of a host memcpy on device addresses.
void copyAsLoop(IRRewriter &rw, memref::CopyOp copy) {
  Location loc = copy.getLoc();
  rw.setInsertionPoint(copy);
  Value source = copy.getSource(), target = copy.getTarget();
  auto type = cast<MemRefType>(source.getType());
  SmallVector<Value> lbs, ubs, steps;
  Value zero = arith::ConstantIndexOp::create(rw, loc, 0);
  Value one = arith::ConstantIndexOp::create(rw, loc, 1);
  for (int64_t d = 0; d < type.getRank(); ++d) {
    lbs.push_back(zero);
    ubs.push_back(memref::DimOp::create(rw, loc, source, d));
    steps.push_back(one);
  }
  if (type.getRank() == 0) {
    // A scalar: a one-iteration loop still makes it a kernel.
    lbs.push_back(zero);
    ubs.push_back(one);
    steps.push_back(one);
  }
  auto loop = scf::ParallelOp::create(
      rw, loc, lbs, ubs, steps, [&](OpBuilder &b, Location l, ValueRange ivs) {
        ValueRange idx = type.getRank() == 0 ? ValueRange{} : ivs;
        Value v = memref::LoadOp::create(b, l, source, idx);
        memref::StoreOp::create(b, l, v, target, idx);
      });
  loop->setAttr(kKernelNameAttr, rw.getStringAttr("copy"));
  rw.eraseOp(copy);
}

struct JambaGpuMapLoopsPass
    : jamba::impl::JambaGpuMapLoopsPassBase<JambaGpuMapLoopsPass> {
  using Base::Base;

  /// A nest with a warp-collective op (nvvm.mma.sync, gpu.shuffle: every
  /// lane of the warp takes part) needs each warp to be the 32 consecutive
  /// iterations of one index of its outer dimensions: an innermost dimension of
  /// a static multiple of 32 iterations (the linear order keeps it fastest) and
  /// blocks of a multiple of 32 threads.
  LogicalResult checkWholeWarps(scf::ParallelOp loop) {
    Operation *collective = nullptr;
    loop.walk([&](Operation *op) {
      if (!isa<NVVM::MmaOp, gpu::ShuffleOp>(op))
        return WalkResult::advance();
      collective = op;
      return WalkResult::interrupt();
    });
    if (!collective)
      return success();
    std::optional<int64_t> lanes =
        getConstantIntValue(loop.getUpperBound().back());
    std::optional<int64_t> lb =
        getConstantIntValue(loop.getLowerBound().back());
    std::optional<int64_t> step = getConstantIntValue(loop.getStep().back());
    if (!lanes || !lb || !step || *lb != 0 || *step != 1 || *lanes % 32 != 0)
      return loop.emitError()
             << "jamba-gpu-map-loops: a nest with a warp-collective op ('"
             << collective->getName()
             << "') needs an innermost dimension of a static multiple of 32 "
                "iterations from 0 by 1";
    if (blockSize % 32 != 0)
      return loop.emitError()
             << "jamba-gpu-map-loops: a nest with a warp-collective op ('"
             << collective->getName()
             << "') needs block-size to be a multiple of 32, got "
             << static_cast<int64_t>(blockSize);
    return success();
  }

  void runOnOperation() override {
    func::FuncOp func = getOperation();
    if (blockSize <= 0 || blockSize > 1024) {
      func.emitError() << "jamba-gpu-map-loops: block-size must be in "
                          "[1, 1024], got "
                       << static_cast<int64_t>(blockSize);
      return signalPassFailure();
    }
    IRRewriter rw(&getContext());
    SmallVector<memref::CopyOp> copies;
    func.walk([&](memref::CopyOp copy) {
      if (!insideParallelOrKernel(copy))
        copies.push_back(copy);
    });
    for (memref::CopyOp copy : copies)
      copyAsLoop(rw, copy);

    // The outermost parallel loops: each becomes one kernel launch.
    SmallVector<scf::ParallelOp> loops;
    func.walk([&](scf::ParallelOp loop) {
      if (!insideParallelOrKernel(loop))
        loops.push_back(loop);
    });
    // The kernels' names in launch order (unnamed nests come from linalg:
    // the elementwise chains, the GEMMs left to kernels, gathers).
    SmallVector<Attribute> names;
    for (scf::ParallelOp loop : loops) {
      StringAttr name = kernelName(loop);
      names.push_back(name ? name : rw.getStringAttr("linalg"));
    }
    if (!names.empty())
      func->setAttr(kKernelNamesAttr, rw.getArrayAttr(names));
    for (scf::ParallelOp loop : loops) {
      if (loop.getNumReductions() != 0) {
        loop.emitError() << "jamba-gpu-map-loops: a parallel loop with "
                            "reductions has no GPU mapping";
        return signalPassFailure();
      }
      if (failed(checkWholeWarps(loop)))
        return signalPassFailure();
      // All dimensions as one (collapseParallelLoops replaces the loop in
      // place), then blocks of `blockSize` threads over it; the inner loop
      // guards the tail with an scf.if.
      if (loop.getNumLoops() > 1) {
        Operation *next = loop->getNextNode();
        std::vector<unsigned> all(loop.getNumLoops());
        for (unsigned d = 0; d < all.size(); ++d)
          all[d] = d;
        collapseParallelLoops(rw, loop, {all});
        loop = dyn_cast_or_null<scf::ParallelOp>(next->getPrevNode());
        if (!loop) {
          func.emitError() << "jamba-gpu-map-loops: collapsing a parallel "
                              "loop lost it";
          return signalPassFailure();
        }
      }
      auto [outer, inner] =
          scf::tileParallelLoop(loop, {blockSize}, /*noMinMaxBounds=*/true);
      MLIRContext *ctx = &getContext();
      AffineMap id = AffineMap::getMultiDimIdentityMap(1, ctx);
      auto mapTo = [&](gpu::Processor p) {
        return gpu::ParallelLoopDimMappingAttr::get(ctx, p, id, id);
      };
      if (failed(gpu::setMappingAttr(outer, {mapTo(gpu::Processor::BlockX)})) ||
          failed(gpu::setMappingAttr(inner, {mapTo(gpu::Processor::ThreadX)})))
        return signalPassFailure();
    }
  }
};

//===----------------------------------------------------------------------===//
// jamba-gpu-host-memory
//===----------------------------------------------------------------------===//

/// Whether `op` runs on the host: not in a GPU module or launch body.
bool onHost(Operation *op) {
  for (Operation *p = op->getParentOp(); p; p = p->getParentOp())
    if (isa<gpu::GPUModuleOp, gpu::LaunchOp>(p))
      return false;
  return true;
}

/// Moves the kernels each host function launches into one gpu.module per
/// function (`<function>_kernels`; each gpu.func takes the name of the
/// module outlining gave it): one PTX module, one driver module load and
/// one ptxas run per stage instead of one per kernel.
LogicalResult mergeKernelModules(ModuleOp module) {
  SymbolTable symbols(module);
  OpBuilder b(module.getContext());
  for (auto func : llvm::to_vector(module.getOps<func::FuncOp>())) {
    SmallVector<gpu::LaunchFuncOp> launches;
    func.walk([&](gpu::LaunchFuncOp launch) { launches.push_back(launch); });
    // jamba-gpu-map-loops' names of the launches, in order; ignored unless
    // there is one per launch.
    auto names = func->getAttrOfType<ArrayAttr>(kKernelNamesAttr);
    func->removeAttr(kKernelNamesAttr);
    if (names && names.size() != launches.size())
      names = nullptr;
    if (launches.empty())
      continue;
    b.setInsertionPoint(func);
    auto merged = gpu::GPUModuleOp::create(b, func.getLoc(),
                                           (func.getName() + "_kernels").str());
    symbols.insert(merged);
    Block &body = merged.getBodyRegion().front();
    for (auto [i, launch] : llvm::enumerate(launches)) {
      StringAttr from = launch.getKernelModuleName();
      auto source = symbols.lookup<gpu::GPUModuleOp>(from);
      if (!source)
        return launch.emitError()
               << "jamba-gpu-host-memory: no gpu.module " << from;
      auto kernel = source.lookupSymbol<gpu::GPUFuncOp>(launch.getKernelName());
      if (!kernel)
        return launch.emitError()
               << "jamba-gpu-host-memory: no kernel " << launch.getKernel();
      // Outlining gives every launch its own module with one kernel.
      if (!llvm::hasSingleElement(source.getOps<gpu::GPUFuncOp>()))
        return source.emitError() << "jamba-gpu-host-memory: expected one "
                                     "kernel per outlined module";
      kernel->moveBefore(&body, body.end());
      std::string name = from.str();
      if (names)
        if (auto kind = dyn_cast<StringAttr>(names[i]))
          name += "__" + kind.str();
      kernel.setName(name);
      launch.setKernelAttr(SymbolRefAttr::get(
          merged.getSymNameAttr(), {FlatSymbolRefAttr::get(StringAttr::get(
                                       module.getContext(), name))}));
      symbols.erase(source);
    }
  }
  return success();
}

struct JambaGpuHostMemoryPass
    : jamba::impl::JambaGpuHostMemoryPassBase<JambaGpuHostMemoryPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    IRRewriter rw(&getContext());
    SmallVector<Operation *> allocs, deallocs;
    auto visit = [&](Operation *op) {
      if (!onHost(op))
        return WalkResult::advance();
      if (isa<memref::AllocOp>(op))
        allocs.push_back(op);
      else if (isa<memref::DeallocOp>(op))
        deallocs.push_back(op);
      // Host code only allocates, frees, takes views and launches: anything
      // that would read or write a buffer's contents on the host would
      // dereference a device address.
      else if (isa<memref::LoadOp, memref::StoreOp, memref::CopyOp,
                   memref::AllocaOp, scf::ParallelOp>(op) ||
               isa<vector::VectorDialect>(op->getDialect()) ||
               op->getDialect()->getNamespace() == "linalg" ||
               op->getDialect()->getNamespace() == "jamba" ||
               op->getDialect()->getNamespace() == "tensor" ||
               op->getDialect()->getNamespace() == "bufferization") {
        op->emitError() << "jamba-gpu-host-memory: '" << op->getName()
                        << "' would run on the host over device memory; "
                           "only GPU kernels may touch buffer contents (a "
                           "parallel loop of one iteration, as static unit "
                           "sizes make, is folded away before it becomes a "
                           "kernel: give the batch or sequence a dynamic "
                           "size)";
        return WalkResult::interrupt();
      }
      return WalkResult::advance();
    };
    for (auto func : module.getOps<func::FuncOp>())
      for (Block &block : func.getBody())
        for (Operation &op : block)
          if (op.walk(visit).wasInterrupted())
            return signalPassFailure();

    if (failed(mergeKernelModules(module)))
      return signalPassFailure();

    for (Operation *op : allocs) {
      auto alloc = cast<memref::AllocOp>(op);
      rw.setInsertionPoint(alloc);
      auto device = gpu::AllocOp::create(
          rw, alloc.getLoc(), alloc.getType(), /*asyncToken=*/Type(),
          /*asyncDependencies=*/ValueRange{}, alloc.getDynamicSizes(),
          alloc.getSymbolOperands(), /*hostShared=*/false);
      rw.replaceOp(alloc, device.getMemref());
    }
    for (Operation *op : deallocs) {
      auto dealloc = cast<memref::DeallocOp>(op);
      rw.setInsertionPoint(dealloc);
      gpu::DeallocOp::create(rw, dealloc.getLoc(), /*asyncToken=*/Type(),
                             /*asyncDependencies=*/ValueRange{},
                             dealloc.getMemref());
      rw.eraseOp(dealloc);
    }
  }
};

/// After jamba-gpu-kernels: a primitive it left (an f64 form, a rank or a
/// top_k its kernels do not take) would lower through linalg to loops that
/// cannot all run on the device, and jamba-gpu-host-memory would then name
/// a memref.load. Name the op instead.
struct RequireGpuKernelsPass
    : PassWrapper<RequireGpuKernelsPass, OperationPass<func::FuncOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(RequireGpuKernelsPass)

  StringRef getArgument() const override { return "jamba-require-gpu-kernels"; }
  void runOnOperation() override {
    WalkResult result =
        getOperation()->walk([](Operation *op) {
          if (!isa<SelectiveScanOp, CausalConv1dOp, RouterTopKOp,
                   CachedAttentionOp, ExpertGemmOp, RMSNormOp, ArgmaxOp>(op))
            return WalkResult::advance();
          op->emitOpError()
              << "has no GPU kernel in this form (jamba-gpu-kernels takes f32, "
                 "bf16 and f16 operands and the ranks and sizes "
                 "docs/CUDABackend.md lists; a router's top_k at most 16)";
          return WalkResult::interrupt();
        });
    if (result.wasInterrupted())
      signalPassFailure();
  }
};

/// gpu-module-to-binary with the kernel modules serialized in parallel
/// (each is LLVM optimisation and NVPTX code generation of its own, in an
/// LLVM context of its own): every gpu.module is cloned into a module of its
/// own, which gpu::transformGpuModulesToBinaries turns into a gpu.binary on
/// a thread of the context's pool; each binary then replaces its module,
/// in place, so the output is the sequential pass's.
struct ModulesToBinariesPass
    : PassWrapper<ModulesToBinariesPass, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(ModulesToBinariesPass)

  ModulesToBinariesPass(std::string toolkit, gpu::CompilationTarget format)
      : toolkit(std::move(toolkit)), format(format) {}
  StringRef getArgument() const override {
    return "jamba-gpu-modules-to-binaries";
  }
  StringRef getName() const override { return "JambaGpuModulesToBinaries"; }
  void runOnOperation() override {
    SmallVector<gpu::GPUModuleOp> modules(
        getOperation().getOps<gpu::GPUModuleOp>());
    SmallVector<OwningOpRef<ModuleOp>> alone;
    for (gpu::GPUModuleOp module : modules) {
      alone.emplace_back(ModuleOp::create(module.getLoc()));
      alone.back()->getBody()->push_back(module->clone());
    }
    LogicalResult serialized =
        failableParallelForEachN(&getContext(), 0, alone.size(), [&](size_t i) {
          ModuleOp holder = *alone[i];
          std::unique_ptr<SymbolTable> table;
          auto symbolTable = [&]() -> SymbolTable * {
            if (!table)
              table = std::make_unique<SymbolTable>(holder);
            return table.get();
          };
          gpu::TargetOptions options(toolkit, {}, {}, {}, format, symbolTable);
          return gpu::transformGpuModulesToBinaries(holder, nullptr, options);
        });
    if (failed(serialized))
      return signalPassFailure();
    for (auto [module, holder] : llvm::zip_equal(modules, alone)) {
      auto binaries = holder->getOps<gpu::BinaryOp>();
      if (std::distance(binaries.begin(), binaries.end()) != 1) {
        module.emitOpError("was not serialized into one gpu.binary");
        return signalPassFailure();
      }
      (*binaries.begin())->moveBefore(module);
      module.erase();
    }
  }

  std::string toolkit;
  gpu::CompilationTarget format;
};

} // namespace

void mlir::jamba::buildGPULowerPipeline(
    OpPassManager &pm, const GPULowerPipelineOptions &options) {
  if (std::string problem = checkPipelineOptions(options); !problem.empty()) {
    pm.addPass(createRefuseOptionsPass(problem));
    return;
  }
  // The primitives with sequential parts as parallel loop nests on buffers,
  // the rest (GEMMs, norms, elementwise) through linalg.
  JambaLowerCollectivesPassOptions collectives;
  collectives.runtime = "cuda";
  pm.addPass(createJambaLowerCollectivesPass(collectives));
  if (options.cublas) {
    JambaGpuLibraryGemmsPassOptions gemms;
    gemms.gemvRows = options.gemvRows;
    pm.addPass(createJambaGpuLibraryGemmsPass(gemms));
  }
  JambaGpuKernelsPassOptions kernels = gpuKernelsOptions(options);
  pm.addNestedPass<func::FuncOp>(createJambaGpuKernelsPass(kernels));
  pm.addNestedPass<func::FuncOp>(std::make_unique<RequireGpuKernelsPass>());
  pm.addNestedPass<func::FuncOp>(createConvertJambaToLinalgPass());
  pm.addNestedPass<func::FuncOp>(createConvertElementwiseToLinalgPass());
  addCleanupPasses(pm, /*cse=*/true);
  pm.addNestedPass<func::FuncOp>(createJambaGpuFuseElementwisePass());

  // Tensors -> buffers, as for the CPU (the same entry-point ABI).
  addBufferizationPasses(pm, options.statesInPlace, /*gpuKernels=*/true);

  // Loop nests -> kernels: every outermost parallel loop one launch.
  pm.addNestedPass<func::FuncOp>(createJambaGpuReductionsInnermostPass());
  pm.addNestedPass<func::FuncOp>(createConvertLinalgToParallelLoopsPass());
  pm.addNestedPass<func::FuncOp>(createJambaGpuFuseLoopsPass());
  JambaGpuMapLoopsPassOptions map;
  map.blockSize = options.blockSize;
  pm.addNestedPass<func::FuncOp>(createJambaGpuMapLoopsPass(map));
  pm.addNestedPass<func::FuncOp>(createConvertParallelLoopToGpuPass());
  // Constants and index arithmetic defined on the host (canonicalization
  // hoists them out of the loops) are recomputed in each kernel instead of
  // being passed in: a scan of 16 states took its 16 state indices as
  // 64-bit kernel parameters, each held in registers across the time loop.
  pm.addPass(createGpuLaunchSinkIndexComputationsPass());
  pm.addPass(createGpuKernelOutliningPass());
  pm.addPass(createJambaGpuHostMemoryPass());
  pm.addNestedPass<func::FuncOp>(createGpuAsyncRegionPass());
  addCleanupPasses(pm, /*cse=*/false);
  // Same-kind layers: one kernel module, lowered to NVVM and compiled once.
  pm.addPass(createJambaGpuMergeIdenticalModulesPass());

  // Device code: NVVM, then PTX per target.
  GpuNVVMAttachTargetOptions target;
  target.chip = options.chip;
  target.features = options.features;
  target.optLevel = 3;
  pm.addPass(createGpuNVVMAttachTarget(target));
  OpPassManager &device = pm.nest<gpu::GPUModuleOp>();
  device.addPass(memref::createExpandStridedMetadataPass());
  device.addPass(createLowerAffinePass());
  device.addPass(createSCFToControlFlowPass());
  device.addPass(createJambaGpuBytePermutesPass());
  if (options.fastMath)
    device.addPass(createJambaGpuFastMathPass());
  ConvertGpuOpsToNVVMOpsOptions nvvm;
  device.addPass(createConvertGpuOpsToNVVMOps(nvvm));
  device.addPass(createCanonicalizerPass());
  device.addPass(createCSEPass());

  // Host code: LLVM, with the launches as mgpu* runtime calls. The first
  // three touch only the function they run on: each function in parallel
  // (not walking the lowered kernel modules either).
  OpPassManager &host = pm.nest<func::FuncOp>();
  host.addPass(memref::createExpandStridedMetadataPass());
  host.addPass(createLowerAffinePass());
  host.addPass(createSCFToControlFlowPass());
  pm.addPass(createGpuToLLVMConversionPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
  addCleanupPasses(pm, /*cse=*/false);
  // Same-kind layers: one host stage function's body (their kernel
  // modules became one above).
  pm.addPass(createJambaMergeIdenticalFunctionsPass());
  // gpu-module-to-binary's formats; checkPipelineOptions checked the name.
  std::optional<gpu::CompilationTarget> format =
      options.format == "isa" ? gpu::CompilationTarget::Assembly
                              : gpu::symbolizeCompilationTarget(options.format);
  pm.addPass(std::make_unique<ModulesToBinariesPass>(
      options.toolkit, format.value_or(gpu::CompilationTarget::Assembly)));
}

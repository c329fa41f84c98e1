//===- CPUPipeline.cpp - The jamba-cpu-lower-pipeline ---------------------===//
//
// Part of jamba-mlir. jamba primitives on tensors to the LLVM dialect for
// the host CPU, registered so that jamba-opt reproduces exactly what the
// compiler runs (STYLE.md habit 10).
//
//===----------------------------------------------------------------------===//

#include "jamba/Conversion/Passes.h"

#include "mlir/Conversion/OpenMPToLLVM/ConvertOpenMPToLLVM.h"
#include "mlir/Conversion/Passes.h"
#include "mlir/Conversion/SCFToOpenMP/SCFToOpenMP.h"
#include "mlir/Dialect/Arith/Transforms/Passes.h"
#include "mlir/Dialect/Bufferization/Pipelines/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Dialect/SCF/Transforms/Passes.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;
using namespace mlir::jamba;

void mlir::jamba::addCleanupPasses(OpPassManager &pm, bool cse) {
  OpPassManager &each = pm.nestAny();
  each.addPass(createCanonicalizerPass());
  if (cse)
    each.addPass(createCSEPass());
}

void mlir::jamba::addBufferizationPasses(OpPassManager &pm, bool statesInPlace,
                                         bool gpuKernels) {
  bufferization::OneShotBufferizePassOptions bufferize;
  bufferize.bufferizeFunctionBoundaries = true;
  bufferize.functionBoundaryTypeConversion =
      bufferization::LayoutMapOption::IdentityLayoutMap;
  // A jamba op in a loop that carries its result (scf.for iter_args) yields
  // a new buffer each iteration; the deallocation pipeline frees them.
  bufferize.allowReturnAllocsFromLoops = true;
  pm.addPass(bufferization::createOneShotBufferizePass(bufferize));
  // jamba-gpu-kernels' cache append is an scf.forall of row copies: a
  // parallel loop of copy loops.
  if (gpuKernels)
    pm.addNestedPass<func::FuncOp>(createJambaParallelCopiesToLoopsPass());
  if (statesInPlace)
    pm.addNestedPass<func::FuncOp>(createJambaStatesInPlacePass());
  addCleanupPasses(pm, /*cse=*/false);
  bufferization::BufferDeallocationPipelineOptions dealloc;
  bufferization::buildBufferDeallocationPipeline(pm, dealloc);
  pm.addPass(createConvertBufferizationToMemRefPass());
}

void mlir::jamba::buildCPULowerPipeline(
    OpPassManager &pm, const CPULowerPipelineOptions &options) {
  if (std::string problem = checkPipelineOptions(options); !problem.empty()) {
    pm.addPass(createRefuseOptionsPass(problem));
    return;
  }
  // The GEMMs first, as vector microkernels on buffers; then the rest of
  // jamba -> linalg/tensor/scf on tensors; the elementwise arith/math ops
  // on whole tensors (residual adds, A = -exp(A_log), casts) -> linalg.
  pm.addPass(createJambaLowerCollectivesPass());
  if (options.gpuKernels) {
    JambaGpuKernelsPassOptions kernels = gpuKernelsOptions(options);
    // No tensor cores or warps on a CPU: emulated.
    kernels.emulateMma = options.tensorCores;
    kernels.emulateWarps = true;
    pm.addNestedPass<func::FuncOp>(createJambaGpuKernelsPass(kernels));
  }
  if (options.microkernels) {
    JambaCpuMicrokernelsPassOptions microkernels;
    microkernels.attentionSplitKeys = options.cpuAttentionSplitKeys;
    pm.addNestedPass<func::FuncOp>(
        createJambaCpuMicrokernelsPass(microkernels));
  }
  pm.addNestedPass<func::FuncOp>(createConvertJambaToLinalgPass());
  pm.addNestedPass<func::FuncOp>(createConvertElementwiseToLinalgPass());
  addCleanupPasses(pm, /*cse=*/true);
  // The GPU kernels' form fuses elementwise chains as the GPU pipeline does,
  // so that its tests on the CPU run the fused generics too.
  if (options.gpuKernels)
    pm.addNestedPass<func::FuncOp>(createJambaGpuFuseElementwisePass());

  // Tensors -> buffers. Function boundaries take and return plain
  // (identity-layout) memrefs, the ABI the runtime calls.
  addBufferizationPasses(pm, options.statesInPlace, options.gpuKernels);

  // Loops, then LLVM. (The GPU kernels' form permutes reductions innermost
  // as the GPU pipeline does, so that its tests run those loops.)
  if (options.gpuKernels)
    pm.addNestedPass<func::FuncOp>(createJambaGpuReductionsInnermostPass());
  // With threads, the parallel dimensions become scf.parallel and then
  // OpenMP regions; reductions stay sequential inside each thread.
  if (options.threads)
    pm.addNestedPass<func::FuncOp>(createConvertLinalgToParallelLoopsPass());
  else
    pm.addNestedPass<func::FuncOp>(createConvertLinalgToLoopsPass());
  // The GPU kernels' form merges independent nests as the GPU pipeline
  // does (jamba-gpu-fuse-loops), so that its tests run the merged loops.
  if (options.gpuKernels)
    pm.addNestedPass<func::FuncOp>(createJambaGpuFuseLoopsPass());
  // The conversions that touch nothing outside the op they run on are
  // nested under every function (and OpenMP reduction declaration) of the
  // module, which the pass manager converts in parallel; those that add or
  // look up symbols (scf-to-openmp, memref's allocation functions, func,
  // cf, openmp) run on the module.
  OpPassManager &loops = pm.nestAny();
  loops.addPass(memref::createExpandStridedMetadataPass());
  loops.addPass(createLowerAffinePass());
  if (options.threads)
    pm.addPass(createConvertSCFToOpenMPPass());
  if (options.approximateMath)
    pm.addNestedPass<func::FuncOp>(createJambaApproximateMathPass());
  // The microkernels' horizontal sums are reassociable (TOOLCHAIN.md
  // gotcha 2).
  ConvertVectorToLLVMPassOptions vectorToLLVM;
  vectorToLLVM.reassociateFPReductions = true;
  pm.nestAny().addPass(createConvertVectorToLLVMPass(vectorToLLVM));
  // scf-to-openmp wraps bodies in memref.alloca_scope: lower memrefs before
  // scf-to-cf makes those regions multi-block (TOOLCHAIN.md gotcha 1).
  FinalizeMemRefToLLVMConversionPassOptions memrefToLLVM;
  memrefToLLVM.useGenericFunctions = options.kernelAllocator;
  // Bufferization aligns buffers to 64 bytes: asked for with the alignment
  // rather than as 64 bytes more, which would put every power-of-two buffer
  // into the next size class of the runtime's allocator.
  memrefToLLVM.useAlignedAlloc = options.kernelAllocator;
  if (options.threads)
    pm.addPass(createFinalizeMemRefToLLVMConversionPass(memrefToLLVM));
  OpPassManager &scalars = pm.nestAny();
  scalars.addPass(createSCFToControlFlowPass());
  arith::ArithExpandOpsPassOptions expand;
  expand.includeBf16 = true;
  scalars.addPass(arith::createArithExpandOpsPass(expand));
  scalars.addPass(createConvertMathToLLVMPass());
  scalars.addPass(createArithToLLVMConversionPass());
  scalars.addPass(createConvertIndexToLLVMPass());
  if (!options.threads)
    pm.addPass(createFinalizeMemRefToLLVMConversionPass(memrefToLLVM));
  pm.addPass(createConvertFuncToLLVMPass());
  pm.addPass(createConvertControlFlowToLLVMPass());
  if (options.threads)
    pm.addPass(createConvertOpenMPToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
  addCleanupPasses(pm, /*cse=*/false);
  // One body for the stage functions of same-kind layers: LLVM would
  // optimise and generate each copy.
  pm.addPass(createJambaMergeIdenticalFunctionsPass());
}

void mlir::jamba::registerJambaConversionPipelines() {
  PassPipelineRegistration<CPULowerPipelineOptions>(
      "jamba-cpu-lower-pipeline",
      "Lower jamba primitives on tensors to the LLVM dialect for the host CPU "
      "(convert-jamba-to-linalg, one-shot bufferization, loops, LLVM)",
      buildCPULowerPipeline);
  PassPipelineRegistration<GPULowerPipelineOptions>(
      "jamba-gpu-lower-pipeline",
      "Lower jamba primitives on tensors to host LLVM code launching NVVM "
      "kernels embedded as PTX (jamba-gpu-kernels, linalg, bufferization, "
      "gpu, NVVM)",
      buildGPULowerPipeline);
}

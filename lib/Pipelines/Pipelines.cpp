//===- Pipelines.cpp - Registered jamba pass pipelines --------------------===//
//
// Part of jamba-mlir.
//
//===----------------------------------------------------------------------===//

#include "jamba/Pipelines/Pipelines.h"

#include "jamba/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Pass/PassRegistry.h"

using namespace mlir;
using namespace mlir::jamba;

void mlir::jamba::buildExpertsInt8Pipeline(
    OpPassManager &pm, const ExpertsInt8PipelineOptions &options) {
  JambaQuantizeExpertsPassOptions quantize;
  quantize.denseMlp = options.denseMlp;
  pm.addPass(createJambaQuantizeExpertsPass(quantize));
  OpPassManager &funcPm = pm.nest<func::FuncOp>();
  funcPm.addPass(createJambaDecomposeLayersPass());
  funcPm.addPass(createJambaFuseDequantIntoGemmPass());
}

void mlir::jamba::registerJambaPipelines() {
  PassPipelineRegistration<ExpertsInt8PipelineOptions>(
      "jamba-experts-int8-pipeline",
      "ExpertsInt8: int8 expert weights, decomposed MoE, dequantization "
      "fused into the expert GEMMs",
      buildExpertsInt8Pipeline);
}

FailureOr<OwningOpRef<ModuleOp>> mlir::jamba::importModelForCheckpoint(
    MLIRContext *context, const ::jamba::ckpt::JambaConfig &config,
    const ImportOptions &options, Location loc, int64_t tensorParallel,
    int64_t expertParallel) {
  FailureOr<OwningOpRef<ModuleOp>> module =
      importJambaModel(context, config, options, loc);
  const bool shard = tensorParallel != 1 || expertParallel != 1;
  if (failed(module) || (!config.quantMethod && !shard))
    return module;
  if (config.quantMethod &&
      *config.quantMethod != ::jamba::ckpt::kQuantMethodExpertsInt8)
    return emitError(loc) << "unsupported quantization method '"
                          << *config.quantMethod << "'";
  // The ExpertsInt8 pipeline, with the sharding between the quantization
  // (which works on the layer ops) and the decomposition.
  PassManager pm(context, ModuleOp::getOperationName());
  if (config.quantMethod) {
    JambaQuantizeExpertsPassOptions quantize;
    quantize.denseMlp = config.quantDenseMlp;
    pm.addPass(createJambaQuantizeExpertsPass(quantize));
  }
  if (shard) {
    JambaShardPassOptions options;
    options.tensorParallel = tensorParallel;
    options.expertParallel = expertParallel;
    pm.addPass(createJambaShardPass(options));
  }
  if (config.quantMethod) {
    OpPassManager &funcPm = pm.nest<func::FuncOp>();
    funcPm.addPass(createJambaDecomposeLayersPass());
    funcPm.addPass(createJambaFuseDequantIntoGemmPass());
  }
  if (failed(pm.run(**module)))
    return failure();
  return module;
}

//===- Pipelines.h - Registered jamba pass pipelines ------------*- C++ -*-===//
//
// Part of jamba-mlir. The pipelines the tools run, registered so that
// `jamba-opt --<pipeline>` reproduces exactly what a tool does (STYLE.md
// habit 10).
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_PIPELINES_PIPELINES_H
#define JAMBA_PIPELINES_PIPELINES_H

#include "jamba/Checkpoint/Config.h"
#include "jamba/Import/Importer.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassOptions.h"

namespace mlir::jamba {

struct ExpertsInt8PipelineOptions
    : public PassPipelineOptions<ExpertsInt8PipelineOptions> {
  PassOptions::Option<bool> denseMlp{
      *this, "dense-mlp", llvm::cl::desc("Also quantize the dense MLP weights"),
      llvm::cl::init(false)};
};

/// `jamba-experts-int8-pipeline`: jamba-quantize-experts, then
/// jamba-decompose-layers and jamba-fuse-dequant-into-gemm on every
/// function, so every expert GEMM reads int8 weights and scales directly.
void buildExpertsInt8Pipeline(OpPassManager &pm,
                              const ExpertsInt8PipelineOptions &options);

/// Registers the pipelines with the pass registry (for jamba-opt).
void registerJambaPipelines();

/// Imports `config` as jamba IR that matches a checkpoint of that config:
/// for an ExpertsInt8 checkpoint (`quantization_config.quant_method ==
/// experts_int8`), the ExpertsInt8 pipeline runs after import, so the
/// entry points take the int8 tensors and scales the checkpoint holds. With
/// `tensorParallel` x `expertParallel` > 1, jamba-shard runs on the
/// layer-level model (after the experts' quantization, before the
/// decomposition): the IR of one of that many ranks.
FailureOr<OwningOpRef<ModuleOp>> importModelForCheckpoint(
    MLIRContext *context, const ::jamba::ckpt::JambaConfig &config,
    const ImportOptions &options, Location loc, int64_t tensorParallel = 1,
    int64_t expertParallel = 1);

} // namespace mlir::jamba

#endif // JAMBA_PIPELINES_PIPELINES_H

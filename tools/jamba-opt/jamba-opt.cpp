//===- jamba-opt.cpp - The jamba pass-pipeline driver ---------------------===//
//
// Part of jamba-mlir. Parses, verifies, transforms and prints `.mlir` files
// with the jamba dialect and every upstream dialect and pass registered, so
// that any pipeline the compiler runs can be reproduced on the command line.
//
//===----------------------------------------------------------------------===//

#include "jamba/Conversion/Passes.h"
#include "jamba/Dialect/Jamba/IR/JambaDialect.h"
#include "jamba/Pipelines/Pipelines.h"
#include "jamba/Transforms/Passes.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Target/LLVM/NVVM/Target.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/GPU/GPUToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/NVVM/NVVMToLLVMIRTranslation.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "llvm/Support/PrettyStackTrace.h"

int main(int argc, char **argv) {
  llvm::setBugReportMsg("jamba-opt crashed: please report it to the "
                        "jamba-mlir issue tracker with the input file and "
                        "command line.\n");
  mlir::registerAllPasses();
  mlir::jamba::registerJambaPasses();
  mlir::jamba::registerJambaPipelines();
  mlir::jamba::registerJambaConversionPasses();
  mlir::jamba::registerJambaConversionPipelines();

  mlir::DialectRegistry registry;
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  registry.insert<mlir::jamba::JambaDialect>();
  // gpu-module-to-binary (jamba-gpu-lower-pipeline) serializes NVVM
  // modules through LLVM IR (TOOLCHAIN.md gotcha 3).
  mlir::NVVM::registerNVVMTargetInterfaceExternalModels(registry);
  mlir::registerBuiltinDialectTranslation(registry);
  mlir::registerLLVMDialectTranslation(registry);
  mlir::registerNVVMDialectTranslation(registry);
  mlir::registerGPUDialectTranslation(registry);

  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "jamba-mlir optimizer driver\n", registry));
}

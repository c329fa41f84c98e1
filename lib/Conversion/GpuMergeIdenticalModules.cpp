//===- GpuMergeIdenticalModules.cpp - jamba-gpu-merge-identical-modules ---===//
//
// Part of jamba-mlir. Keeps one of the gpu.modules that differ only in the
// names they define (the kernels of same-kind layers), so that the NVVM
// lowering, NVPTX and ptxas process each kind of layer once; see the pass
// description in Passes.td.
//
//===----------------------------------------------------------------------===//

#include "jamba/Conversion/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OperationSupport.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/IR/Threading.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/raw_ostream.h"

namespace mlir::jamba {
#define GEN_PASS_DEF_JAMBAGPUMERGEIDENTICALMODULESPASS
#include "jamba/Conversion/Passes.h.inc"
} // namespace mlir::jamba

using namespace mlir;

namespace {

/// A gpu.module's symbols in the order it defines them, and its printed
/// form with its name and those symbols' names replaced by placeholders.
struct Fingerprint {
  SmallVector<StringAttr> defined;
  std::string text;
};

/// Symbols a module declares only (libdevice's functions, the printf
/// declaration) are named from outside and keep their names.
bool isDefinition(Operation &op) {
  auto symbol = dyn_cast<SymbolOpInterface>(op);
  return symbol && !symbol.isDeclaration();
}

Fingerprint fingerprint(gpu::GPUModuleOp module) {
  Fingerprint result;
  MLIRContext *context = module.getContext();
  // Renamed on a copy, which is never inserted, so that the module itself
  // is not touched.
  auto copy = cast<gpu::GPUModuleOp>(module->clone());
  copy.setName("__jamba_merge_fingerprint");
  unsigned index = 0;
  for (Operation &op : copy.getBody()->getOperations()) {
    if (!isDefinition(op))
      continue;
    auto symbol = cast<SymbolOpInterface>(op);
    StringAttr name = symbol.getNameAttr();
    result.defined.push_back(name);
    auto placeholder =
        StringAttr::get(context, "__jamba_symbol_" + Twine(index++));
    // A failure leaves a use with the old name, which then prints
    // differently from every other module's: the module is kept as it is.
    (void)SymbolTable::replaceAllSymbolUses(name, placeholder, copy);
    symbol.setName(placeholder);
  }
  llvm::raw_string_ostream os(result.text);
  copy->print(os, OpPrintingFlags().assumeVerified().useLocalScope());
  copy->erase();
  return result;
}

/// The entry point a stage's kernel module belongs to: its name up to the
/// first "__" ("decode" of "decode__layer3_kernels").
StringRef entryOf(StringRef moduleName) {
  return moduleName.substr(0, moduleName.find("__"));
}

struct JambaGpuMergeIdenticalModulesPass
    : jamba::impl::JambaGpuMergeIdenticalModulesPassBase<
          JambaGpuMergeIdenticalModulesPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *context = module.getContext();
    struct Kept {
      gpu::GPUModuleOp module;
      SmallVector<StringAttr> defined;
    };
    llvm::StringMap<Kept> kept;
    // A duplicate's name -> (the kept module, the duplicate's definitions).
    llvm::DenseMap<StringAttr, std::pair<Kept *, SmallVector<StringAttr>>>
        replaced;
    SmallVector<gpu::GPUModuleOp> duplicates;
    // The fingerprints in parallel (each prints a copy of its module), then
    // the grouping in the modules' order.
    SmallVector<gpu::GPUModuleOp> modules(module.getOps<gpu::GPUModuleOp>());
    SmallVector<Fingerprint> prints(modules.size());
    parallelFor(context, 0, modules.size(),
                [&](size_t i) { prints[i] = fingerprint(modules[i]); });
    for (auto [gpuModule, print] : llvm::zip_equal(modules, prints)) {
      std::string key =
          (entryOf(gpuModule.getName()) + Twine('\0') + print.text).str();
      auto [it, inserted] =
          kept.try_emplace(key, Kept{gpuModule, print.defined});
      if (inserted)
        continue;
      replaced[gpuModule.getNameAttr()] = {&it->second,
                                           std::move(print.defined)};
      duplicates.push_back(gpuModule);
    }
    if (duplicates.empty())
      return;

    module.walk([&](gpu::LaunchFuncOp launch) {
      auto found = replaced.find(launch.getKernelModuleName());
      if (found == replaced.end())
        return;
      auto &[target, defined] = found->second;
      // A defined kernel becomes the kept module's in the same place; a
      // declared one has the same name there.
      StringAttr kernel = launch.getKernelName();
      if (auto *at = llvm::find(defined, kernel); at != defined.end())
        kernel = target->defined[at - defined.begin()];
      launch.setKernelAttr(
          SymbolRefAttr::get(target->module.getNameAttr(),
                             {FlatSymbolRefAttr::get(context, kernel)}));
    });

    for (gpu::GPUModuleOp duplicate : duplicates) {
      // Anything else that names the module (not a launch) keeps it.
      if (!SymbolTable::symbolKnownUseEmpty(duplicate, module))
        continue;
      ++numMerged;
      duplicate.erase();
    }
  }
};

} // namespace

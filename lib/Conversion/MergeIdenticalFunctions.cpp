//===- MergeIdenticalFunctions.cpp - jamba-merge-identical-functions ------===//
//
// Part of jamba-mlir. Keeps one body of LLVM dialect functions that differ
// only in their names: the stage functions of layers of one kind, which LLVM
// would otherwise optimise and generate once per layer.
//
//===----------------------------------------------------------------------===//

#include "jamba/Conversion/Passes.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OperationSupport.h"
#include "mlir/IR/SymbolTable.h"

#include "llvm/ADT/StringMap.h"
#include "llvm/Support/raw_ostream.h"

namespace mlir::jamba {
#define GEN_PASS_DEF_JAMBAMERGEIDENTICALFUNCTIONSPASS
#include "jamba/Conversion/Passes.h.inc"
} // namespace mlir::jamba

using namespace mlir;

namespace {

/// `attrs` (an array of dictionaries) without the jamba.* entries, which
/// name a layer's buffers for the packed entries and do not reach LLVM IR.
ArrayAttr withoutJambaAttrs(ArrayAttr attrs) {
  if (!attrs)
    return attrs;
  SmallVector<Attribute> dicts;
  for (Attribute attr : attrs) {
    SmallVector<NamedAttribute> kept;
    for (NamedAttribute named : cast<DictionaryAttr>(attr))
      if (!named.getName().strref().starts_with("jamba."))
        kept.push_back(named);
    dicts.push_back(DictionaryAttr::get(attrs.getContext(), kept));
  }
  return ArrayAttr::get(attrs.getContext(), dicts);
}

/// The printed form of `func` with its name replaced by a fixed one and
/// the jamba.* argument and result attributes left out (then restored):
/// equal for functions that lower to the same LLVM IR but for their names.
std::string fingerprint(LLVM::LLVMFuncOp func) {
  StringAttr name = func.getSymNameAttr();
  ArrayAttr argAttrs = func.getArgAttrsAttr(),
            resAttrs = func.getResAttrsAttr();
  func.setSymName("__jamba_merge_fingerprint");
  func.setArgAttrsAttr(withoutJambaAttrs(argAttrs));
  func.setResAttrsAttr(withoutJambaAttrs(resAttrs));
  std::string text;
  llvm::raw_string_ostream os(text);
  func->print(os, OpPrintingFlags().assumeVerified().useLocalScope());
  func.setSymNameAttr(name);
  func.setArgAttrsAttr(argAttrs);
  func.setResAttrsAttr(resAttrs);
  return text;
}

/// Replaces the body of `duplicate` with a call of `kept` (same type)
/// returning its result.
void forwardTo(LLVM::LLVMFuncOp duplicate, LLVM::LLVMFuncOp kept) {
  // The blocks refer to each other's values: drop every reference before
  // any block goes.
  duplicate.getBody().dropAllReferences();
  duplicate.getBody().getBlocks().clear();
  OpBuilder b(duplicate.getContext());
  Block *entry = duplicate.addEntryBlock(b);
  b.setInsertionPointToEnd(entry);
  Location loc = duplicate.getLoc();
  auto call = LLVM::CallOp::create(b, loc, kept, entry->getArguments());
  LLVM::ReturnOp::create(b, loc, call.getResults());
}

struct JambaMergeIdenticalFunctionsPass
    : jamba::impl::JambaMergeIdenticalFunctionsPassBase<
          JambaMergeIdenticalFunctionsPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    llvm::StringMap<LLVM::LLVMFuncOp> kept;
    SmallVector<std::pair<LLVM::LLVMFuncOp, LLVM::LLVMFuncOp>> duplicates;
    for (auto func : module.getOps<LLVM::LLVMFuncOp>()) {
      // (A variadic function cannot forward its arguments.)
      if (func.isExternal() || func.isVarArg())
        continue;
      auto [it, inserted] = kept.try_emplace(fingerprint(func), func);
      if (!inserted)
        duplicates.push_back({func, it->second});
    }
    for (auto [duplicate, original] : duplicates) {
      ++numMerged;
      if (duplicate.isPrivate() ||
          duplicate.getLinkage() == LLVM::Linkage::Internal ||
          duplicate.getLinkage() == LLVM::Linkage::Private) {
        if (failed(SymbolTable::replaceAllSymbolUses(
                duplicate, original.getSymNameAttr(), module))) {
          duplicate.emitError("jamba-merge-identical-functions: cannot "
                              "redirect the uses of this function to @")
              << original.getSymName();
          return signalPassFailure();
        }
        duplicate.erase();
        continue;
      }
      forwardTo(duplicate, original);
    }
  }
};

} // namespace

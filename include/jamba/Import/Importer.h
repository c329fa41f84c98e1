//===- Importer.h - Jamba config to jamba IR --------------------*- C++ -*-===//
//
// Part of jamba-mlir. Builds the whole model described by a Jamba config as
// `jamba` IR: embedding, the layer schedule of SPEC.md 1.3, the final norm
// and the LM head, as the entry points `@prefill` and `@decode`.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_IMPORT_IMPORTER_H
#define JAMBA_IMPORT_IMPORTER_H

#include "jamba/Checkpoint/Config.h"
#include "jamba/Dialect/Jamba/IR/JambaDialect.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "mlir/Support/LLVM.h"

namespace llvm {
class SourceMgr;
} // namespace llvm

namespace mlir::jamba {

// The argument and result attributes the importer writes (jamba.weight,
// jamba.state, jamba.input, jamba.output, jamba.config) are declared in
// JambaDialect.h.

/// Options of the importer.
struct ImportOptions {
  /// Element type of activations, weights, the conv state and the KV cache:
  /// "f32", "f64", "bf16" or "f16". The SSM state is always f32.
  std::string elementType = "f32";
  /// Element type of the float weights when it differs from `elementType`
  /// (empty: the same). "bf16" with `elementType` "f32" is how bf16
  /// checkpoints compile: weights stay bf16, every op computes in f32.
  std::string weightElementType;
  /// Positions whose logits `@prefill` returns: 0 = all (what the reference
  /// interpreter reports), k = the last k (what generation needs).
  int64_t prefillLogitsToKeep = 0;
};

/// Builds the model of `config` in a new module. Weights are function
/// arguments carrying their checkpoint names, never constants.
///
/// Both entry points have the signature
///   (ids: [batch, seq] i32, cache_len: [batch] i64,
///    per layer in order: k_cache, v_cache (attention) or conv_state,
///                        ssm_state (Mamba),
///    weights...) -> (logits: [batch, positions, vocab], updated states...)
/// `@prefill` takes any number of tokens per sequence, `@decode` one.
/// Fails (with a diagnostic at `loc`) on an option it does not understand.
FailureOr<OwningOpRef<ModuleOp>>
importJambaModel(MLIRContext *context, const ::jamba::ckpt::JambaConfig &config,
                 const ImportOptions &options, Location loc);

/// Loads the dialects of the importer's output and of its decompositions
/// (jamba, func, arith, math, tensor): what the reference interpreter runs.
void loadImportDialects(MLIRContext *context);

/// Parses the .mlir file at `path` ("-": standard input), e.g. the
/// importer's output after jamba-opt passes. Syntax and verifier errors go
/// through the context's diagnostic handler with their locations in
/// `sourceMgr`'s buffer; a file that cannot be read is an error naming it.
/// Returns null on failure.
OwningOpRef<ModuleOp> parseModuleFile(StringRef path,
                                      llvm::SourceMgr &sourceMgr,
                                      MLIRContext *context);

} // namespace mlir::jamba

#endif // JAMBA_IMPORT_IMPORTER_H

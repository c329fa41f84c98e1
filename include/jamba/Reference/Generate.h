//===- Generate.h - Greedy generation with the reference interpreter -*- C++
//-*-===//
//
// Part of jamba-mlir. Binds an imported module's entry points to a checkpoint
// and runs a prompt through `@prefill`, then greedy `@decode` steps that carry
// the KV cache and the Mamba states.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_REFERENCE_GENERATE_H
#define JAMBA_REFERENCE_GENERATE_H

#include "jamba/Checkpoint/Checkpoint.h"
#include "jamba/Reference/Interpreter.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Support/LLVM.h"

#include <cstdint>
#include <vector>

namespace mlir::jamba {

struct GenerateOptions {
  std::vector<int64_t> promptIds;
  /// Number of ids to generate; as many decode steps are run.
  int64_t steps = 0;
  /// How the interpreter computes (its routingMargins is set per call when
  /// `routingMargins` is).
  InterpretOptions interpret;
  /// Collect Generation::routingMargins.
  bool routingMargins = false;
};

/// The outcome of a greedy run. With P prompt ids and n steps:
///   logits has P + n rows: the prompt positions' logits (one prefill call),
///   then row P + j = the logits after feeding generated id j;
///   ids[0] = argmax(row P - 1), ids[j + 1] = argmax(row P + j) for j < n - 1
///   (the last row's argmax is not emitted). Ties go to the lowest id.
struct Generation {
  std::vector<int64_t> ids;
  std::vector<float> logits; ///< rows x vocab, row-major.
  int64_t rows = 0, vocab = 0;
  /// With GenerateOptions::routingMargins: per row (the token it follows),
  /// the smallest routing margin of its MoE layers
  /// (::jamba::ref::minRoutingMargins); +inf for a model without MoE.
  std::vector<float> routingMargins;
  double loadSeconds = 0, prefillSeconds = 0, decodeSeconds = 0;
};

/// Runs greedy generation in element type T (float or double). Errors (a
/// missing or misshapen tensor, an id out of range, ...) are emitted as
/// diagnostics and yield failure.
template <typename T>
FailureOr<Generation>
generateGreedy(ModuleOp module, const ::jamba::ckpt::Checkpoint &checkpoint,
               const GenerateOptions &options);

} // namespace mlir::jamba

#endif // JAMBA_REFERENCE_GENERATE_H

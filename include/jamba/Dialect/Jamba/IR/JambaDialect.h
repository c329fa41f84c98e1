//===- JambaDialect.h - The jamba dialect -----------------------*- C++ -*-===//
//
// Part of jamba-mlir.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_DIALECT_JAMBA_IR_JAMBADIALECT_H
#define JAMBA_DIALECT_JAMBA_IR_JAMBADIALECT_H

#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Dialect.h"

#include "jamba/Dialect/Jamba/IR/JambaOpsDialect.h.inc"

namespace mlir::jamba {

/// Discardable attributes on the entry points' arguments and results, read
/// by the passes, the interpreter and the backends.
/// `jamba.weight = "<checkpoint tensor name>"`: the argument is bound to that
/// tensor; a name containing `{e}` stacks the experts e = 0..E-1.
inline constexpr StringLiteral kWeightAttrName = "jamba.weight";
/// `jamba.state = "layers.<i>.<k_cache|v_cache|conv_state|ssm_state>"`: the
/// argument (and the result of the same name) is recurrent state.
inline constexpr StringLiteral kStateAttrName = "jamba.state";
/// `jamba.input = "ids" | "cache_len"`: a per-call input.
inline constexpr StringLiteral kInputAttrName = "jamba.input";
/// `jamba.output = "logits"`: the entry point's logits result;
/// `jamba.output = "greedy_ids"` (kGreedyIdsOutputName): their argmax per
/// row and position (jamba-greedy-ids).
inline constexpr StringLiteral kOutputAttrName = "jamba.output";
inline constexpr StringLiteral kGreedyIdsOutputName = "greedy_ids";
/// `jamba.temp = "<entry>.temp<i>"`: on the arguments and results of the
/// stage functions of jamba-split-stages, a value passed from one step of
/// the host schedule to a later one (an activation [batch, seq, ...]).
inline constexpr StringLiteral kTempAttrName = "jamba.temp";
/// The per-rank weight jamba-shard adds for expert parallelism: the rank's
/// first expert ([1] i64), written by jamba-compile, not in checkpoints.
inline constexpr StringLiteral kExpertOffsetWeightName =
    "jamba.rank.expert_offset";
/// `jamba.config` on the module: the config.json the module was built from.
inline constexpr StringLiteral kConfigAttrName = "jamba.config";
/// The per-row scales of an int8 weight `W` are the weight `W` + this suffix
/// (`...gate_proj.weight_scale`), in the IR and in quantized checkpoints.
inline constexpr StringLiteral kScaleSuffix = "_scale";

} // namespace mlir::jamba

#endif // JAMBA_DIALECT_JAMBA_IR_JAMBADIALECT_H

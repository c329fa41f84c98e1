//===- Kernels.h - The jamba ops jamba-gpu-kernels lowers -------*- C++ -*-===//
//
// Part of jamba-mlir. One entry point per jamba op that jamba-gpu-kernels
// lowers to `scf.parallel` loop nests on buffers, each defined in the file
// of its name. Each returns failure, leaving the op untouched, for a form
// it does not handle (f64), which convert-jamba-to-linalg then lowers.
// The comments at the definitions describe each kernel's form.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_LIB_CONVERSION_GPUKERNELS_KERNELS_H
#define JAMBA_LIB_CONVERSION_GPUKERNELS_KERNELS_H

#include "jamba/Dialect/Jamba/IR/JambaOps.h"

#include "mlir/IR/PatternMatch.h"

namespace mlir::jamba::gpukernels {

/// How the selective scan is lowered (the pass's options).
struct ScanOptions {
  /// The fewest time steps per chunk of the chunked form.
  int64_t chunkSteps = 64;
  /// The fewest (sequence, channel, lane) threads for the one-pass lane
  /// form of a call longer than a decode step (0: always).
  int64_t laneThreads = 1 << 16;
  /// As for lowerRMSNorm.
  bool emulateWarps = false;
};

/// The selective scan: one pass over lanes, chunked over time, or a few
/// steps one lane per state (SelectiveScan.cpp).
LogicalResult lowerSelectiveScan(IRRewriter &rw, SelectiveScanOp op,
                                 const ScanOptions &options);

/// The causal depthwise conv1d with its state (CausalConv1d.cpp).
LogicalResult lowerCausalConv1d(IRRewriter &rw, CausalConv1dOp op);

/// The router's softmax and top-k (RouterTopK.cpp).
LogicalResult lowerRouterTopK(IRRewriter &rw, RouterTopKOp op);

/// The greedy ids: each row's argmax, a warp per chunk of the row and
/// then a warp per row (Argmax.cpp).
LogicalResult lowerArgmax(IRRewriter &rw, ArgmaxOp op, bool emulateWarps);

/// RMSNorm, with the residual add it reads where it can (RMSNorm.cpp).
LogicalResult lowerRMSNorm(IRRewriter &rw, RMSNormOp op, bool emulateWarps);

/// How the expert GEMM is lowered (the pass's options).
struct ExpertGemmOptions {
  /// Lanes sharing one output row of the lane form.
  int64_t maxLanes = 32;
  /// Above this many rows, the token-grouped form (0: always).
  int64_t groupedRows = 64;
  /// The grouped rows on tensor cores where the op allows it.
  bool tensorCores = false;
  /// Test aid: the tensor-core warps emulated (WarpCode).
  bool emulateMma = false;
  /// Test aid: the lane form's warps (32 lanes) run their lanes in turn.
  bool emulateWarps = false;
};

/// The expert GEMM: lane form for few rows, token-grouped (optionally on
/// tensor cores) for many (ExpertGemm.cpp).
LogicalResult lowerExpertGemm(IRRewriter &rw, ExpertGemmOp op,
                              const ExpertGemmOptions &options);

/// How cached attention splits the keys (the pass's options).
struct AttentionSplits {
  int64_t keysPerSplit = 64;
  int64_t maxSplits = 32;
  /// Flash attention on tensor cores from this many tokens on; 0: never.
  int64_t mmaMinTokens = 0;
  /// Test aid: the tensor-core warps emulated (WarpCode).
  bool emulateMma = false;
};

/// Attention over the KV cache, with the cache append: split over the keys,
/// or flash attention on tensor cores (CachedAttention.cpp).
LogicalResult lowerCachedAttention(IRRewriter &rw, CachedAttentionOp op,
                                   const AttentionSplits &config);

/// y[m, n] = sum_k x[m, k] w[n, k] for the rows m < `rows` (0: no launch),
/// one warp per output: the dense linears of a few rows (a decode step's),
/// for jamba-gpu-library-gemms (LinearGemv.cpp). y is f32 [M, N], x and w
/// are [M, K] and [N, K] of one element type (f32 or bf16); `emulate` runs
/// each warp's lanes in turn (a CPU test aid).
void buildLinearGemv(OpBuilder &b, Location loc, Value y, Value x, Value w,
                     Value rows, bool emulate);

} // namespace mlir::jamba::gpukernels

#endif // JAMBA_LIB_CONVERSION_GPUKERNELS_KERNELS_H

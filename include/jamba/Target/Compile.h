//===- Compile.h - Checkpoint to artifact -----------------------*- C++ -*-===//
//
// Part of jamba-mlir. What `jamba-compile` does, as a library call: import
// the checkpoint's model, (optionally) apply ExpertsInt8 to the data and the
// IR, decompose and lower it for the CPU, emit the kernels' shared object,
// write the already-transformed weights and the manifest (artifact v1,
// docs/ArtifactFormat.md).
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_TARGET_COMPILE_H
#define JAMBA_TARGET_COMPILE_H

#include "jamba/Target/CpuTarget.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"

#include <cstdint>
#include <string>

namespace mlir::jamba {

struct CompileOptions {
  /// Quantize the experts (ExpertsInt8) at compile time.
  bool expertsInt8 = false;
  /// With expertsInt8, also the dense MLPs.
  bool denseMlp = false;
  /// Largest batch, prompt chunk and context the artifact declares.
  int64_t maxBatch = 64, maxSeq = 4096,
          maxContext = 0; ///< 0: the config's
                          ///< max_position_embeddings.
  /// Element type of the float weights in the artifact: "auto" (bf16 when
  /// every float tensor of the checkpoint is bf16, else f32), "f32" or
  /// "bf16". Activations and arithmetic stay f32.
  std::string weightDtype = "auto";
  /// Tensor-parallel ranks (jamba-shard): each rank its own weights, the
  /// layers' outputs summed with all-reduces. 1: a single-rank artifact.
  int64_t tensorParallel = 1;
  /// Expert-parallel ranks (the experts split over them); the artifact has
  /// tensorParallel x expertParallel ranks.
  int64_t expertParallel = 1;
  /// @prefill returns the logits of every prompt position (what recording
  /// them needs: `jamba-run --logits-out`, teacher forcing against the
  /// reference) instead of only the last position's, which is all that
  /// generation reads: the head then runs on one row per sequence, not on
  /// every prompt position (a [batch, seq, vocab] f32 buffer: 0.5 GB per
  /// sequence for a 4096-token chunk of a 32000-word vocabulary).
  bool prefillAllLogits = false;
  /// Each entry point also returns its logits' argmax per row, the greedy
  /// ids (jamba-greedy-ids): a greedy generation then reads back 4 bytes
  /// per sequence and step instead of a vocabulary's logits. jamba-compile
  /// turns it on for CUDA targets.
  bool greedyIds = false;
  /// Largest weights file: a rank's weights are cut into files of at most
  /// this many bytes of tensor data (a larger tensor gets a file of its
  /// own), so that loading the artifact hashes them on several threads
  /// (docs/ArtifactFormat.md). 0: one file per rank.
  uint64_t maxWeightsFileBytes = uint64_t(2) << 30;
  /// Replace an existing output directory.
  bool overwrite = false;
  /// Print to stderr how long each phase took (import, each pass of the
  /// lowering, LLVM optimisation and code generation, weights), as a tree.
  bool timing = false;
  /// "cpu", or "cuda:sm_NN": host code launching NVVM kernels
  /// (docs/CUDABackend.md).
  std::string target = "cpu";
  /// CUDA: what the host object embeds per kernel module: "ptx" (JIT-compiled
  /// by the driver at load) or "cubin" (assembled now by ptxas).
  std::string gpuFormat = "ptx";
  /// CUDA: also write every kernel module's PTX into this directory
  /// (`<module>.ptx`), e.g. to check it with ptxas. Empty: none.
  std::string dumpPtxDir;
  /// CUDA: tensor cores (mma.sync, bf16 operands) for the grouped rows of
  /// the int8 (or bf16) expert GEMMs and for attention (jamba-gpu-kernels'
  /// expert-gemm-tensor-cores and attention-tensor-cores).
  bool gpuTensorCores = false;
  /// CUDA with tensor cores: attention calls of this many tokens or more
  /// run on them (0: none; jamba-gpu-kernels' attention-mma-min-tokens).
  int64_t gpuAttentionMmaMinTokens = 1;
  /// CUDA: expert GEMMs of more (token, slot) rows than this run grouped by
  /// expert (jamba-gpu-kernels' expert-gemm-grouped-rows).
  int64_t gpuExpertGroupedRows = 64;
  /// CUDA: dense linears of at most this many rows run the generated GEMV
  /// kernel instead of cuBLAS (0: none; jamba-gpu-library-gemms'
  /// gemv-rows).
  int64_t gpuGemvRows = 2;
  /// CUDA: a selective scan call of more than 8 steps runs in one pass,
  /// each channel's states over lanes, with at least this many (sequence,
  /// channel, lane) threads, else chunked over time (0: always;
  /// jamba-gpu-kernels' scan-lane-threads).
  int64_t gpuScanLaneThreads = 1 << 16;
  /// CUDA: the kernels' f32 exp2, rsqrt, sqrt and division as NVVM
  /// approximations that flush subnormals (jamba-gpu-fast-math); false:
  /// libdevice's and IEEE division.
  bool gpuFastMath = true;
  /// CPU: a decode step's attention splits each (sequence, kv head)'s keys
  /// into ceil(keys / this) ranges (at most 32, and 64 items), run in
  /// parallel and combined (jamba-cpu-microkernels' attention-split-keys;
  /// 0: no split).
  int64_t cpuAttentionSplitKeys = 2048;
  /// CPU: lower the scan, conv, attention and router with the CUDA
  /// backend's kernels (jamba-gpu-kernels) instead of the CPU's: runs the
  /// GPU kernels' arithmetic in a whole model without a GPU (a test aid).
  bool cpuWithGpuKernels = false;
  CpuTargetOptions cpu;
};

/// Compiles the checkpoint in `checkpointDir` into an artifact directory
/// `outDir`. Errors are emitted as diagnostics (naming the file, tensor or
/// field) and yield failure; nothing is left at `outDir` on failure.
///
/// The model is imported from the checkpoint's config, or is `module` when
/// given: IR of jamba-import's form (entry points @prefill and @decode,
/// weights as arguments named by `jamba.weight`), e.g. after jamba-opt
/// passes. Its weights are then read from the checkpoint by those names and
/// converted to the arguments' types; it must be single-rank, and
/// expertsInt8 and weightDtype do not apply (quantize the checkpoint with
/// jamba-quantize and import that; the module's types decide). `module` is
/// lowered in place.
LogicalResult compileCheckpoint(MLIRContext *context,
                                const std::string &checkpointDir,
                                const std::string &outDir,
                                const CompileOptions &options,
                                ModuleOp module = {});

} // namespace mlir::jamba

#endif // JAMBA_TARGET_COMPILE_H

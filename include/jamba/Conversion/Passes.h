//===- Passes.h - jamba conversion passes -----------------------*- C++ -*-===//
//
// Part of jamba-mlir. The passes lowering the jamba dialect towards a
// backend, and the registered CPU lowering pipeline.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_CONVERSION_PASSES_H
#define JAMBA_CONVERSION_PASSES_H

#include "jamba/Dialect/Jamba/IR/JambaDialect.h"
#include <algorithm>

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassOptions.h"

namespace mlir::jamba {

/// The name a parallel loop nest gives the GPU kernel it becomes
/// (jamba-gpu-kernels sets it; jamba-gpu-map-loops collects the names of a
/// function's kernels in launch order into kKernelNamesAttr, and
/// jamba-gpu-host-memory names each outlined kernel `<module>__<name>`), so
/// that a profile says which op a kernel's time belongs to.
constexpr llvm::StringLiteral kKernelNameAttr = "jamba.kernel";
constexpr llvm::StringLiteral kKernelNamesAttr = "jamba.kernel_names";

/// On the buffer a GPU kernel writes an op's new state into (selective_scan,
/// causal_conv1d): the kernels stay correct when it is the buffer they read
/// the old state from (each thread reads its row of the old state before it
/// writes that row of the new one, and no thread reads a row another
/// writes). jamba-states-in-place then writes the state in place instead of
/// copying it back.
constexpr llvm::StringLiteral kStateOverOldAttr = "jamba.state_over_old";

#define GEN_PASS_DECL
#include "jamba/Conversion/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "jamba/Conversion/Passes.h.inc"

/// Options of `jamba-cpu-lower-pipeline`.
struct CPULowerPipelineOptions
    : public PassPipelineOptions<CPULowerPipelineOptions> {
  PassOptions::Option<bool> approximateMath{
      *this, "approximate-math",
      llvm::cl::desc("Replace f32 math.exp/tanh/... by inline polynomial "
                     "approximations (vectorisable, ~2e-7 relative error) "
                     "instead of libm calls"),
      llvm::cl::init(true)};
  PassOptions::Option<bool> threads{
      *this, "threads",
      llvm::cl::desc("Run the parallel loops of every linalg op on OpenMP "
                     "threads (the object then needs libomp)"),
      llvm::cl::init(false)};
  PassOptions::Option<bool> microkernels{
      *this, "microkernels",
      llvm::cl::desc("Lower jamba.linear, jamba.expert_gemm, "
                     "jamba.selective_scan and jamba.cached_attention with "
                     "jamba-cpu-microkernels (vector loop nests on buffers) "
                     "instead of the generic linalg/scf lowerings"),
      llvm::cl::init(true)};
  PassOptions::Option<bool> statesInPlace{
      *this, "states-in-place",
      llvm::cl::desc("Entry points update their jamba.state arguments in "
                     "place instead of returning the states "
                     "(jamba-states-in-place; the ABI jamba-compile uses)"),
      llvm::cl::init(false)};
  PassOptions::Option<bool> gpuKernels{
      *this, "gpu-kernels",
      llvm::cl::desc("Lower the scan, conv, attention and router with "
                     "jamba-gpu-kernels (the GPU backend's loop nests) "
                     "first: runs the GPU kernels' arithmetic on the CPU"),
      llvm::cl::init(false)};
  PassOptions::Option<bool> kernelAllocator{
      *this, "kernel-allocator",
      llvm::cl::desc("Allocate and free memrefs with MLIR's generic "
                     "functions (_mlir_memref_to_llvm_alloc, ..._free), "
                     "which the jamba runtime defines: it keeps freed blocks "
                     "for the next call (the ABI jamba-compile uses; "
                     "include/jamba/Runtime/KernelMemory.h)"),
      llvm::cl::init(false)};
  PassOptions::Option<int64_t> attentionKeysPerSplit{
      *this, "attention-keys-per-split",
      llvm::cl::desc("With gpu-kernels: jamba-gpu-kernels' "
                     "attention-keys-per-split (split-KV attention)"),
      llvm::cl::init(64)};
  PassOptions::Option<int64_t> cpuAttentionSplitKeys{
      *this, "cpu-attention-split-keys",
      llvm::cl::desc("With microkernels: jamba-cpu-microkernels' "
                     "attention-split-keys (split-KV attention of a decode "
                     "step; 0: none)"),
      llvm::cl::init(2048)};
  PassOptions::Option<int64_t> expertGemmLanes{
      *this, "expert-gemm-lanes",
      llvm::cl::desc("With gpu-kernels: jamba-gpu-kernels' expert-gemm-lanes "
                     "(lanes splitting an expert GEMM output's K loop)"),
      llvm::cl::init(32)};
  PassOptions::Option<int64_t> expertGemmGroupedRows{
      *this, "expert-gemm-grouped-rows",
      llvm::cl::desc("With gpu-kernels: jamba-gpu-kernels' "
                     "expert-gemm-grouped-rows (more rows than this: the "
                     "token-grouped expert GEMM)"),
      llvm::cl::init(64)};
  PassOptions::Option<int64_t> scanChunkSteps{
      *this, "scan-chunk-steps",
      llvm::cl::desc("With gpu-kernels: jamba-gpu-kernels' scan-chunk-steps "
                     "(the fewest time steps per chunk of the selective "
                     "scan)"),
      llvm::cl::init(64)};
  PassOptions::Option<int64_t> scanLaneThreads{
      *this, "scan-lane-threads",
      llvm::cl::desc("With gpu-kernels: jamba-gpu-kernels' scan-lane-threads "
                     "(the fewest threads for the selective scan's one-pass "
                     "lane form; 0: always)"),
      llvm::cl::init(65536)};
  PassOptions::Option<bool> tensorCores{
      *this, "tensor-cores",
      llvm::cl::desc("With gpu-kernels: the tensor-core expert GEMM and "
                     "prefill attention with each warp emulated "
                     "(jamba-gpu-kernels' expert-gemm-tensor-cores, "
                     "attention-tensor-cores and emulate-mma)"),
      llvm::cl::init(false)};
  PassOptions::Option<int64_t> attentionMmaMinTokens{
      *this, "attention-mma-min-tokens",
      llvm::cl::desc("With tensor-cores: attention calls of this many tokens "
                     "or more on tensor cores (0: none)"),
      llvm::cl::init(1)};
};

struct GPULowerPipelineOptions
    : public PassPipelineOptions<GPULowerPipelineOptions> {
  PassOptions::Option<std::string> chip{
      *this, "chip", llvm::cl::desc("The NVIDIA GPU architecture (sm_NN)"),
      llvm::cl::init("sm_90")};
  PassOptions::Option<std::string> features{
      *this, "features",
      llvm::cl::desc("PTX ISA features (+ptxNN; sm_90 needs +ptx78 or more)"),
      llvm::cl::init("+ptx80")};
  PassOptions::Option<std::string> format{
      *this, "format",
      llvm::cl::desc("What gpu-module-to-binary embeds: isa (PTX, needs no "
                     "CUDA), bin (cubin, runs ptxas) or fatbin"),
      llvm::cl::init("isa")};
  PassOptions::Option<std::string> toolkit{
      *this, "toolkit",
      llvm::cl::desc("CUDA toolkit root: libdevice for math functions, "
                     "ptxas for bin/fatbin"),
      llvm::cl::init("/usr/local/cuda")};
  PassOptions::Option<int64_t> blockSize{*this, "block-size",
                                         llvm::cl::desc("Threads per block"),
                                         llvm::cl::init(256)};
  PassOptions::Option<bool> cublas{
      *this, "cublas",
      llvm::cl::desc("Dense f32/bf16 linears call the runtime's cuBLAS GEMM "
                     "(jamba-gpu-library-gemms) instead of generated kernels"),
      llvm::cl::init(true)};
  PassOptions::Option<int64_t> gemvRows{
      *this, "gemv-rows",
      llvm::cl::desc("With cublas: linears of at most this many rows run "
                     "the generated GEMV kernel instead (0: none; "
                     "jamba-gpu-library-gemms)"),
      llvm::cl::init(2)};
  PassOptions::Option<int64_t> attentionKeysPerSplit{
      *this, "attention-keys-per-split",
      llvm::cl::desc("Split-KV attention: the fewest keys per split "
                     "(jamba-gpu-kernels)"),
      llvm::cl::init(64)};
  PassOptions::Option<int64_t> expertGemmLanes{
      *this, "expert-gemm-lanes",
      llvm::cl::desc("Expert GEMMs: the most lanes (threads) splitting one "
                     "output's K loop (jamba-gpu-kernels)"),
      llvm::cl::init(32)};
  PassOptions::Option<int64_t> expertGemmGroupedRows{
      *this, "expert-gemm-grouped-rows",
      llvm::cl::desc("Expert GEMMs: more (token, slot) rows than this run "
                     "grouped by expert (jamba-gpu-kernels)"),
      llvm::cl::init(64)};
  PassOptions::Option<int64_t> scanChunkSteps{
      *this, "scan-chunk-steps",
      llvm::cl::desc("Selective scan: the fewest time steps per chunk "
                     "(jamba-gpu-kernels)"),
      llvm::cl::init(64)};
  PassOptions::Option<int64_t> scanLaneThreads{
      *this, "scan-lane-threads",
      llvm::cl::desc("Selective scan: the fewest threads for its one-pass "
                     "lane form, else chunked (jamba-gpu-kernels; 0: "
                     "always)"),
      llvm::cl::init(65536)};
  PassOptions::Option<bool> tensorCores{
      *this, "tensor-cores",
      llvm::cl::desc("Tensor cores (jamba-gpu-kernels' "
                     "expert-gemm-tensor-cores and attention-tensor-cores): "
                     "the grouped rows of int8 or bf16 experts and the "
                     "prefill attention, on bf16 operands"),
      llvm::cl::init(false)};
  PassOptions::Option<int64_t> attentionMmaMinTokens{
      *this, "attention-mma-min-tokens",
      llvm::cl::desc("With tensor-cores: attention calls of this many tokens "
                     "or more on tensor cores (0: none)"),
      llvm::cl::init(1)};
  PassOptions::Option<bool> statesInPlace{
      *this, "states-in-place",
      llvm::cl::desc("Entry points update their jamba.state arguments in "
                     "place (the ABI jamba-compile uses)"),
      llvm::cl::init(false)};
  PassOptions::Option<bool> fastMath{
      *this, "fast-math",
      llvm::cl::desc("Kernels' f32 exp2, rsqrt, sqrt and division as NVVM "
                     "approximations that flush subnormals "
                     "(jamba-gpu-fast-math); 0: libdevice's and IEEE "
                     "division"),
      llvm::cl::init(true)};
};

/// Whether `chip` names an NVIDIA architecture the GPU pipeline builds
/// for: sm_50 to sm_90a ("sm_80", "sm_90", "sm_90a").
bool isKnownCudaChip(llvm::StringRef chip);

/// The first jamba-gpu-kernels option out of its range, named (empty when
/// there is none). The pass and both pipelines check their options with it.
std::string checkGpuKernelsOptions(const JambaGpuKernelsPassOptions &options);

/// The first problem with a pipeline's options, naming the option (empty
/// when there is none): out-of-range values, GPU kernel options given to
/// the CPU pipeline without gpu-kernels, an unknown chip or binary format, a
/// missing CUDA toolkit.
std::string checkPipelineOptions(const CPULowerPipelineOptions &options);
std::string checkPipelineOptions(const GPULowerPipelineOptions &options);

/// A pass that fails with `message` on the module: how a pipeline builder,
/// which cannot fail, refuses its options when the pipeline runs.
std::unique_ptr<Pass> createRefuseOptionsPass(std::string message);

/// jamba-gpu-kernels' options from the CPU or GPU pipeline's options of the
/// same names.
template <class PipelineOptions>
JambaGpuKernelsPassOptions gpuKernelsOptions(const PipelineOptions &options) {
  JambaGpuKernelsPassOptions kernels;
  kernels.attentionKeysPerSplit = options.attentionKeysPerSplit;
  kernels.expertGemmLanes = options.expertGemmLanes;
  kernels.expertGemmGroupedRows = options.expertGemmGroupedRows;
  kernels.scanChunkSteps = options.scanChunkSteps;
  kernels.scanLaneThreads = options.scanLaneThreads;
  kernels.expertGemmTensorCores = options.tensorCores;
  kernels.attentionTensorCores =
      options.tensorCores && options.attentionMmaMinTokens > 0;
  kernels.attentionMmaMinTokens =
      std::max<int64_t>(1, options.attentionMmaMinTokens);
  return kernels;
}

/// `jamba-cpu-lower-pipeline`: jamba primitives on tensors down to the LLVM
/// dialect for the host CPU. convert-jamba-to-linalg, one-shot bufferization
/// (function boundaries, identity layouts) with deallocation, linalg to
/// loops, and the upstream conversions to LLVM. Every jamba op left in the
/// input must be one `convert-jamba-to-linalg` lowers.
void buildCPULowerPipeline(OpPassManager &pm,
                           const CPULowerPipelineOptions &options);

/// Tensors -> buffers, shared by the CPU and GPU pipelines: one-shot
/// bufferization with identity-layout function boundaries (the runtime's
/// ABI), optionally jamba-states-in-place, the deallocation pipeline. With
/// `gpuKernels` (jamba-gpu-kernels ran), its scf.forall loops become
/// scf.parallel and the copies inside parallel loops become loops
/// (jamba-parallel-copies-to-loops).
void addBufferizationPasses(OpPassManager &pm, bool statesInPlace,
                            bool gpuKernels);

/// Canonicalization (then CSE, with `cse`) of each function and kernel
/// module of the module, in parallel (as a module pass it would be one
/// thread over all of them; the patterns are local, so the result is the
/// same).
void addCleanupPasses(OpPassManager &pm, bool cse);

/// jamba primitives on tensors -> host LLVM dialect launching NVVM kernels
/// embedded as PTX (or cubin) in gpu.binary ops (docs/CUDABackend.md).
void buildGPULowerPipeline(OpPassManager &pm,
                           const GPULowerPipelineOptions &options);

/// Registers the conversion pipelines with the pass registry (jamba-opt).
void registerJambaConversionPipelines();

} // namespace mlir::jamba

#endif // JAMBA_CONVERSION_PASSES_H

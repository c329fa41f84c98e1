//===- jamba-compile.cpp - Checkpoint to artifact -------------------------===//
//
// Part of jamba-mlir.
//   jamba-compile CKPT_DIR [--module M.mlir] -o OUT
//                 [--target cpu|cuda:sm_NN] [--gpu-format F]
//                 [--dump-ptx DIR] [--experts-int8 [--dense-mlp]]
//                 [--max-batch N] [--max-seq N] [--max-context N] [--force]
//                 [--timing]
// compiles a Hugging Face Jamba checkpoint into an artifact directory
// (docs/ArtifactFormat.md) that jamba-run executes.
//
//===----------------------------------------------------------------------===//

#include "jamba/Import/Importer.h"
#include "jamba/Target/Compile.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/SourceMgr.h"

#include <chrono>
#include <optional>
#include <tuple>

using namespace mlir;
namespace cl = llvm::cl;

static cl::opt<std::string> checkpointDir(cl::Positional, cl::Required,
                                          cl::desc("<checkpoint dir>"));
static cl::opt<std::string> modulePath(
    "module",
    cl::desc("Compile this .mlir module (jamba-import's form, e.g. after "
             "jamba-opt passes) instead of importing the checkpoint's "
             "config; its weights are read from the checkpoint by name"),
    cl::value_desc("M.mlir"), cl::init(""));
static cl::opt<std::string> outDir("o", cl::Required,
                                   cl::desc("Output artifact directory"),
                                   cl::value_desc("dir"));
static cl::opt<std::string>
    target("target",
           cl::desc("Target: cpu, or cuda:sm_NN (e.g. cuda:sm_90): host code "
                    "launching NVVM kernels (docs/CUDABackend.md)"),
           cl::init("cpu"));
static cl::opt<std::string>
    gpuFormat("gpu-format",
              cl::desc("CUDA: embed each kernel module as ptx (JIT-compiled "
                       "by the driver at load) or cubin (ptxas now)"),
              cl::init("ptx"));
static cl::opt<std::string>
    dumpPtx("dump-ptx",
            cl::desc("CUDA: also write every kernel module's PTX to DIR"),
            cl::value_desc("DIR"), cl::init(""));
static cl::opt<bool> gpuTensorCores(
    "gpu-tensor-cores",
    cl::desc("CUDA: tensor cores (mma.sync with bf16 operands, f32 "
             "accumulation; sm_80 or later) for the token-grouped int8 or "
             "bf16 expert GEMMs (their inputs rounded to bf16) and "
             "attention (flash attention; queries, keys, values and softmax "
             "weights rounded to bf16; see --gpu-attention-mma-min-tokens). "
             "On by default for CUDA targets; --gpu-tensor-cores=false: "
             "CUDA cores only"),
    cl::init(false));
static cl::opt<int64_t> gpuAttentionMmaMinTokens(
    "gpu-attention-mma-min-tokens",
    cl::desc("CUDA with --gpu-tensor-cores: attention calls of this many "
             "tokens or more run on tensor cores (0: none)"),
    cl::init(1));
static cl::opt<int64_t> gpuExpertGroupedRows(
    "gpu-expert-grouped-rows",
    cl::desc("CUDA: expert GEMMs of more (token, slot) rows than this run "
             "grouped by expert (the others one GEMV per row); default 4 "
             "with tensor cores, 64 without"),
    cl::init(64));
static cl::opt<int64_t> gpuGemvRows(
    "gpu-gemv-rows",
    cl::desc("CUDA: dense linears of at most this many rows (a decode "
             "step's) run the generated GEMV kernel instead of cuBLAS "
             "(0: all on cuBLAS)"),
    cl::init(2));
static cl::opt<int64_t> gpuScanLaneThreads(
    "gpu-scan-lane-threads",
    cl::desc("CUDA: selective scan calls of more than 8 steps run in one "
             "pass, each channel's states split over lanes of a warp, when "
             "they have at least this many (sequence, channel, lane) "
             "threads; otherwise chunked over time (0: always)"),
    cl::init(65536));
static cl::opt<bool> gpuFastMath(
    "gpu-fast-math",
    cl::desc("CUDA: the kernels' f32 exp2, rsqrt, sqrt and division as "
             "NVVM approximations that flush subnormals to zero (division "
             "within 2 ulp); --gpu-fast-math=false: libdevice's and IEEE "
             "division"),
    cl::init(true));
static cl::opt<bool> expertsInt8("experts-int8",
                                 cl::desc("Quantize the experts (ExpertsInt8)"),
                                 cl::init(false));
static cl::opt<bool> denseMlp("dense-mlp",
                              cl::desc("With --experts-int8, also the dense "
                                       "MLP weights"),
                              cl::init(false));
static cl::opt<int64_t> maxBatch("max-batch", cl::desc("Largest batch"),
                                 cl::init(64));
static cl::opt<int64_t> maxSeq("max-seq", cl::desc("Largest prompt chunk"),
                               cl::init(4096));
static cl::opt<int64_t>
    maxContext("max-context",
               cl::desc("Largest context (0: max_position_embeddings)"),
               cl::init(0));
static cl::opt<std::string> weightDtype(
    "weight-dtype",
    cl::desc("Element type of the float weights in the artifact: auto (bf16 "
             "when every float tensor of the checkpoint is bf16, else f32), "
             "f32 or bf16; the kernels compute in f32 either way"),
    cl::init("auto"));
static cl::opt<int64_t> tensorParallel(
    "tensor-parallel",
    cl::desc("Shard the model over N ranks (tensor parallelism, SPEC 1.9): "
             "run it with `mpirun -np N jamba-run`"),
    cl::init(1));
static cl::opt<int64_t> expertParallel(
    "expert-parallel",
    cl::desc("Split the experts over M ranks (expert parallelism); with "
             "--tensor-parallel N the artifact has N x M ranks"),
    cl::init(1));
static cl::opt<int64_t> cpuAttentionSplitKeys(
    "cpu-attention-split-keys",
    cl::desc("CPU: a decode step's attention splits each (sequence, kv "
             "head)'s cached keys into ceil(keys / N) ranges (at most 32, "
             "and 64 items in all) that run on threads of their own, then "
             "combines them (0: no split)"),
    cl::value_desc("N"), cl::init(2048));
static cl::opt<bool> cpuWithGpuKernels(
    "cpu-with-gpu-kernels",
    cl::desc("Test aid: compile for the CPU with the CUDA backend's kernels "
             "for the scan, conv, attention and router (jamba-gpu-kernels), "
             "to check their arithmetic in a whole model without a GPU"),
    cl::Hidden, cl::init(false));
static cl::opt<std::string> prefillLogits(
    "prefill-logits",
    cl::desc("Logits the prefill returns: last (the last prompt position's, "
             "all that generation needs) or all (every prompt position's, "
             "for jamba-run --logits-out)"),
    cl::value_desc("last|all"), cl::init("last"));
static cl::opt<bool> greedyIds(
    "greedy-ids",
    cl::desc("Each entry point also returns the argmax of its logits per "
             "row (jamba-greedy-ids), so that greedy generation reads back "
             "an id per sequence instead of its logits. On by default for "
             "CUDA targets, off for the CPU"),
    cl::init(false));
static cl::opt<int64_t> codegenParts(
    "codegen-parts",
    cl::desc("Split the kernels' LLVM module into N parts that are "
             "optimised and compiled in parallel (1 to 64; 1: whole). The "
             "shared object depends on N, not on the machine's cores. A "
             "CUDA host is always one part"),
    cl::value_desc("N"), cl::init(4));
static cl::opt<std::string> weightsFileSize(
    "weights-file-size",
    cl::desc("Cut each rank's weights into files of at most this much "
             "tensor data (a larger tensor gets a file of its own), which "
             "loading hashes in parallel: bytes, or with a K, M or G suffix "
             "(powers of 1024); 0: one file per rank"),
    cl::value_desc("SIZE"), cl::init("2G"));
static cl::opt<bool>
    timing("timing",
           cl::desc("Print how long each phase and pass took, to stderr"),
           cl::init(false));
static cl::opt<bool> force("force", cl::desc("Replace an existing output"),
                           cl::init(false));

/// Parses --weights-file-size: decimal digits, then optionally K, M or G
/// (powers of 1024). Fails on anything else and on an overflow.
static std::optional<uint64_t> parseByteSize(llvm::StringRef text) {
  uint64_t unit = 1;
  if (!text.empty()) {
    switch (text.back()) {
    case 'K':
      unit = uint64_t(1) << 10;
      break;
    case 'M':
      unit = uint64_t(1) << 20;
      break;
    case 'G':
      unit = uint64_t(1) << 30;
      break;
    default:
      break;
    }
    if (unit != 1)
      text = text.drop_back();
  }
  uint64_t value = 0;
  if (text.empty() || !llvm::all_of(text, llvm::isDigit) ||
      text.getAsInteger(10, value))
    return std::nullopt;
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(value, unit, &bytes))
    return std::nullopt;
  return bytes;
}

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  llvm::setBugReportMsg("jamba-compile crashed: please report it to the "
                        "jamba-mlir issue tracker with the command line.\n");
  cl::ParseCommandLineOptions(argc, argv, "jamba-mlir compiler\n");
  if (denseMlp && !expertsInt8) {
    llvm::errs() << "jamba-compile: error: --dense-mlp needs --experts-int8\n";
    return 1;
  }
  DialectRegistry registry;
  registerAllDialects(registry);
  registerAllExtensions(registry);
  MLIRContext context(registry);
  context.printOpOnDiagnostic(false);
  // Diagnostics print as `file:line:col: error: ...`, one line each.
  llvm::SourceMgr sourceMgr;
  SourceMgrDiagnosticHandler diagnostics(sourceMgr, &context);
  mlir::jamba::loadImportDialects(&context);

  if (weightDtype != "auto" && weightDtype != "f32" && weightDtype != "bf16") {
    llvm::errs() << "jamba-compile: error: --weight-dtype must be auto, f32 "
                    "or bf16, got '"
                 << weightDtype << "'\n";
    return 1;
  }
  // The artifact's bounds, named by their flags (the manifest's own check
  // would name the dimension).
  for (auto [flag, value, least] :
       {std::tuple<const char *, int64_t, int64_t>{"--max-batch", maxBatch, 1},
        {"--max-seq", maxSeq, 1},
        {"--max-context", maxContext, 0}})
    if (value < least) {
      llvm::errs() << "jamba-compile: error: " << flag << " must be "
                   << (least == 0 ? "0 (max_position_embeddings) or positive"
                                  : "positive")
                   << ", got " << value << "\n";
      return 1;
    }
  if (cpuAttentionSplitKeys < 0 || cpuAttentionSplitKeys > (int64_t(1) << 40)) {
    llvm::errs() << "jamba-compile: error: --cpu-attention-split-keys must be "
                    "in [0, 1099511627776], got "
                 << cpuAttentionSplitKeys << "\n";
    return 1;
  }
  if (codegenParts < 1 || codegenParts > 64) {
    llvm::errs() << "jamba-compile: error: --codegen-parts must be in [1, "
                    "64], got "
                 << codegenParts << "\n";
    return 1;
  }
  std::optional<uint64_t> maxWeightsFileBytes = parseByteSize(weightsFileSize);
  if (!maxWeightsFileBytes) {
    llvm::errs() << "jamba-compile: error: --weights-file-size must be a "
                    "number of bytes, optionally followed by K, M or G, got '"
                 << weightsFileSize << "'\n";
    return 1;
  }
  if (prefillLogits != "last" && prefillLogits != "all") {
    llvm::errs() << "jamba-compile: error: --prefill-logits must be last or "
                    "all, got '"
                 << prefillLogits << "'\n";
    return 1;
  }
  if (prefillLogits.getNumOccurrences() && !modulePath.empty()) {
    llvm::errs() << "jamba-compile: error: --prefill-logits does not apply "
                    "to a module: the logits type of its @prefill decides\n";
    return 1;
  }
  mlir::jamba::CompileOptions options;
  options.prefillAllLogits = prefillLogits == "all";
  options.weightDtype = weightDtype;
  options.tensorParallel = tensorParallel;
  options.expertParallel = expertParallel;
  options.expertsInt8 = expertsInt8;
  options.denseMlp = denseMlp;
  options.maxBatch = maxBatch;
  options.maxSeq = maxSeq;
  options.maxContext = maxContext;
  options.maxWeightsFileBytes = *maxWeightsFileBytes;
  options.overwrite = force;
  options.cpu.codegenPartitions = static_cast<unsigned>(codegenParts);
  options.timing = timing;
  options.target = target;
  options.gpuFormat = gpuFormat;
  options.dumpPtxDir = dumpPtx;
  options.cpuWithGpuKernels = cpuWithGpuKernels;
  options.cpuAttentionSplitKeys = cpuAttentionSplitKeys;
  // Tensor cores are the default for CUDA targets that have bf16 mma.sync
  // (sm_80 on; on an H200 they beat the CUDA-core kernels from a few rows
  // on, docs/CUDABackend.md); the expert GEMMs of a decode step at batch 1
  // or 2 (at most 4 rows) stay on the lane form, which reads the weights
  // faster. With --cpu-with-gpu-kernels (a test aid) the tensor cores are
  // emulated, and only when asked for.
  const bool cuda = StringRef(target).starts_with("cuda:");
  int sm = 0;
  if (StringRef chip = StringRef(target); chip.consume_front("cuda:sm_"))
    (void)chip.take_while(llvm::isDigit).getAsInteger(10, sm);
  const bool tensorCores =
      gpuTensorCores.getNumOccurrences() ? gpuTensorCores.getValue() : sm >= 80;
  options.gpuTensorCores = tensorCores;
  options.greedyIds =
      greedyIds.getNumOccurrences() ? greedyIds.getValue() : cuda;
  options.gpuExpertGroupedRows = gpuExpertGroupedRows.getNumOccurrences()
                                     ? gpuExpertGroupedRows.getValue()
                                     : (tensorCores ? 4 : 64);
  options.gpuAttentionMmaMinTokens = gpuAttentionMmaMinTokens;
  options.gpuGemvRows = gpuGemvRows;
  options.gpuFastMath = gpuFastMath;
  options.gpuScanLaneThreads = gpuScanLaneThreads;
  // With --cpu-with-gpu-kernels the GPU kernels (and their options) run
  // on the CPU, the tensor cores emulated.
  if (((gpuTensorCores.getNumOccurrences() && gpuTensorCores) ||
       gpuExpertGroupedRows.getNumOccurrences() ||
       gpuAttentionMmaMinTokens.getNumOccurrences()) &&
      !cuda && !cpuWithGpuKernels) {
    llvm::errs() << "jamba-compile: error: --gpu-tensor-cores, "
                    "--gpu-expert-grouped-rows and "
                    "--gpu-attention-mma-min-tokens need --target cuda:sm_NN "
                    "(or --cpu-with-gpu-kernels)\n";
    return 1;
  }
  if (gpuScanLaneThreads.getNumOccurrences() && !cuda && !cpuWithGpuKernels) {
    llvm::errs() << "jamba-compile: error: --gpu-scan-lane-threads needs "
                    "--target cuda:sm_NN (or --cpu-with-gpu-kernels)\n";
    return 1;
  }
  if (gpuScanLaneThreads < 0 || gpuScanLaneThreads > (int64_t(1) << 30)) {
    llvm::errs() << "jamba-compile: error: --gpu-scan-lane-threads must be "
                    "in [0, 1073741824], got "
                 << gpuScanLaneThreads << "\n";
    return 1;
  }
  if (cpuAttentionSplitKeys.getNumOccurrences() &&
      (cuda || cpuWithGpuKernels)) {
    llvm::errs() << "jamba-compile: error: --cpu-attention-split-keys is for "
                    "the CPU kernels' attention (not --target cuda:sm_NN or "
                    "--cpu-with-gpu-kernels, whose attention splits its keys "
                    "by its own rule)\n";
    return 1;
  }
  if (gpuGemvRows.getNumOccurrences() && !cuda) {
    llvm::errs() << "jamba-compile: error: --gpu-gemv-rows needs --target "
                    "cuda:sm_NN (it splits the rows between the GEMV kernel "
                    "and cuBLAS)\n";
    return 1;
  }
  if (gpuFastMath.getNumOccurrences() && !cuda) {
    llvm::errs() << "jamba-compile: error: --gpu-fast-math needs --target "
                    "cuda:sm_NN\n";
    return 1;
  }
  if (gpuGemvRows < 0 || gpuGemvRows > (int64_t(1) << 20)) {
    llvm::errs() << "jamba-compile: error: --gpu-gemv-rows must be in [0, "
                    "1048576], got "
                 << gpuGemvRows << "\n";
    return 1;
  }
  if (gpuAttentionMmaMinTokens.getNumOccurrences() && !tensorCores) {
    llvm::errs() << "jamba-compile: error: --gpu-attention-mma-min-tokens "
                    "needs --gpu-tensor-cores\n";
    return 1;
  }
  if (gpuAttentionMmaMinTokens < 0) {
    llvm::errs() << "jamba-compile: error: --gpu-attention-mma-min-tokens "
                    "must be at least 0, got "
                 << gpuAttentionMmaMinTokens << "\n";
    return 1;
  }
  if (gpuExpertGroupedRows < 0) {
    llvm::errs() << "jamba-compile: error: --gpu-expert-grouped-rows must be "
                    "at least 0, got "
                 << gpuExpertGroupedRows << "\n";
    return 1;
  }
  if (cpuWithGpuKernels && target != "cpu") {
    llvm::errs() << "jamba-compile: error: --cpu-with-gpu-kernels needs "
                    "--target cpu\n";
    return 1;
  }
  auto start = std::chrono::steady_clock::now();
  OwningOpRef<ModuleOp> module;
  if (!modulePath.empty()) {
    module = mlir::jamba::parseModuleFile(modulePath, sourceMgr, &context);
    if (!module)
      return 1; // The error is reported, with its location.
  }
  if (failed(mlir::jamba::compileCheckpoint(&context, checkpointDir, outDir,
                                            options, module.get())))
    return 1;
  llvm::errs() << llvm::format(
      "jamba-compile: wrote %s in %.2f s\n", outDir.c_str(),
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count());
  return 0;
}

//===- PipelineOptions.cpp - Checks of the lowering pipelines' options ----===//
//
// Part of jamba-mlir. The CPU and GPU lowering pipelines are built from
// their options by functions that cannot fail; a bad option is refused by a
// first pass that fails with a message naming it, before anything else runs
// (upstream passes given a bad chip or format crash, or report an error and
// still succeed).
//
//===----------------------------------------------------------------------===//

#include "jamba/Conversion/Passes.h"

#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/FileSystem.h"

#include <string>

using namespace mlir;
using namespace mlir::jamba;

/// The architectures the pipelines build for and the oldest PTX ISA version
/// (times 10) that LLVM's NVPTX backend accepts for each. Newer ones
/// (sm_100, sm_120, ...) need PTX 8.6 or later, which this project has not
/// built or run.
static int64_t minimumPtxVersion(llvm::StringRef chip) {
  return llvm::StringSwitch<int64_t>(chip)
      .Cases({"sm_50", "sm_52", "sm_53"}, 40)
      .Cases({"sm_60", "sm_61", "sm_62"}, 50)
      .Case("sm_70", 60)
      .Case("sm_72", 61)
      .Case("sm_75", 63)
      .Case("sm_80", 70)
      .Case("sm_86", 71)
      .Case("sm_87", 74)
      .Cases({"sm_89", "sm_90"}, 78)
      .Case("sm_90a", 80)
      .Default(0);
}

bool mlir::jamba::isKnownCudaChip(llvm::StringRef chip) {
  return minimumPtxVersion(chip) > 0;
}

std::string
mlir::jamba::checkGpuKernelsOptions(const JambaGpuKernelsPassOptions &o) {
  // The upper bounds keep the products the pass forms (lanes x rows,
  // splits x tokens, chunk counts) far from int64 overflow; each is far
  // above any useful value.
  struct Range {
    const char *name;
    int64_t value, min, max;
  };
  const Range ranges[] = {
      {"attention-keys-per-split", o.attentionKeysPerSplit, 1, 1 << 24},
      {"attention-max-splits", o.attentionMaxSplits, 1, 1 << 16},
      {"expert-gemm-lanes", o.expertGemmLanes, 1, 1024},
      {"expert-gemm-grouped-rows", o.expertGemmGroupedRows, 0, 1 << 30},
      {"scan-chunk-steps", o.scanChunkSteps, 1, 1 << 24},
      {"scan-lane-threads", o.scanLaneThreads, 0, 1 << 30},
      {"attention-mma-min-tokens", o.attentionMmaMinTokens, 1, 1 << 30}};
  for (const Range &r : ranges)
    if (r.value < r.min || r.value > r.max)
      return std::string(r.name) + " must be in [" + std::to_string(r.min) +
             ", " + std::to_string(r.max) + "] (got " +
             std::to_string(r.value) + ")";
  return "";
}

namespace {

/// The jamba-gpu-kernels options both pipelines share, checked as that
/// pass checks them, and the pipelines' own attention-mma-min-tokens (0:
/// no tensor-core attention).
template <class Options> std::string checkKernelOptions(const Options &o) {
  if (o.attentionMmaMinTokens < 0)
    return "attention-mma-min-tokens must be at least 0 (got " +
           std::to_string(o.attentionMmaMinTokens) + ")";
  return checkGpuKernelsOptions(gpuKernelsOptions(o));
}

struct RefuseOptionsPass
    : PassWrapper<RefuseOptionsPass, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(RefuseOptionsPass)

  explicit RefuseOptionsPass(std::string message)
      : message(std::move(message)) {}
  StringRef getArgument() const override { return "jamba-refuse-options"; }
  void runOnOperation() override {
    mlir::emitError(getOperation().getLoc()) << message;
    signalPassFailure();
  }

  std::string message;
};

} // namespace

std::string
mlir::jamba::checkPipelineOptions(const CPULowerPipelineOptions &o) {
  std::string prefix = "jamba-cpu-lower-pipeline: ";
  if (std::string problem = checkKernelOptions(o); !problem.empty())
    return prefix + problem;
  if (o.cpuAttentionSplitKeys < 0 ||
      o.cpuAttentionSplitKeys > (int64_t(1) << 40))
    return prefix + "cpu-attention-split-keys must be in [0, " +
           std::to_string(int64_t(1) << 40) + "] (got " +
           std::to_string(o.cpuAttentionSplitKeys) + ")";
  if (o.gpuKernels)
    return "";
  // The GPU kernels' options mean nothing without them: say so rather than
  // ignore them.
  for (const llvm::cl::Option *option :
       {static_cast<const llvm::cl::Option *>(&o.attentionKeysPerSplit),
        static_cast<const llvm::cl::Option *>(&o.expertGemmLanes),
        static_cast<const llvm::cl::Option *>(&o.expertGemmGroupedRows),
        static_cast<const llvm::cl::Option *>(&o.scanChunkSteps),
        static_cast<const llvm::cl::Option *>(&o.scanLaneThreads),
        static_cast<const llvm::cl::Option *>(&o.tensorCores),
        static_cast<const llvm::cl::Option *>(&o.attentionMmaMinTokens)})
    if (option->getNumOccurrences() > 0)
      return prefix + option->ArgStr.str() + " needs gpu-kernels=1";
  if (o.tensorCores)
    return prefix + "tensor-cores needs gpu-kernels=1";
  return "";
}

std::string
mlir::jamba::checkPipelineOptions(const GPULowerPipelineOptions &o) {
  std::string prefix = "jamba-gpu-lower-pipeline: ";
  if (std::string problem = checkKernelOptions(o); !problem.empty())
    return prefix + problem;
  if (!isKnownCudaChip(o.chip))
    return prefix + "chip '" + o.chip +
           "' is not an architecture this pipeline builds for (sm_50 to "
           "sm_90a, e.g. sm_80, sm_90)";
  // Only PTX ISA versions: LLVM aborts on a version too old for the chip.
  llvm::SmallVector<llvm::StringRef> features;
  llvm::StringRef(o.features).split(features, ',', -1, false);
  for (llvm::StringRef feature : features) {
    unsigned version = 0;
    if (!feature.consume_front("+ptx") || feature.getAsInteger(10, version))
      return prefix + "features: expected +ptxNN items (got '" + o.features +
             "')";
    if (version < minimumPtxVersion(o.chip))
      return prefix + "features: PTX " + std::to_string(version / 10) + "." +
             std::to_string(version % 10) + " cannot target " + o.chip +
             " (it needs +ptx" + std::to_string(minimumPtxVersion(o.chip)) +
             " or later)";
  }
  if (o.gemvRows < 0 || o.gemvRows > (int64_t(1) << 20))
    return prefix + "gemv-rows must be in [0, 1048576] (got " +
           std::to_string(o.gemvRows) + ")";
  if (o.format != "isa" && o.format != "bin" && o.format != "fatbin")
    return prefix + "format must be isa, bin or fatbin (got '" + o.format +
           "')";
  // libdevice (the math functions) comes from the toolkit whatever the
  // format; without it the PTX calls functions nothing defines.
  if (!llvm::sys::fs::is_directory(o.toolkit))
    return prefix + "toolkit '" + o.toolkit +
           "' is not a directory (the CUDA toolkit root, for libdevice and "
           "ptxas)";
  return "";
}

std::unique_ptr<Pass>
mlir::jamba::createRefuseOptionsPass(std::string message) {
  return std::make_unique<RefuseOptionsPass>(std::move(message));
}

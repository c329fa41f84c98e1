//===- jamba-plan.cpp - Per-device memory plan of a Jamba model -----------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// Prints how many bytes each device needs to run a model of a given
// config.json (weights, KV cache, Mamba state, activations, workspace) for a
// tensor- and expert-parallel layout, a weight format, a batch and a context,
// whether that fits a device of a given size, and the largest context that
// would. A thin driver over planDeviceMemory (jamba/Checkpoint/MemoryPlan.h);
// docs/MemoryPlan.md explains what is counted.
//
//===----------------------------------------------------------------------===//

#include "jamba/Checkpoint/Config.h"
#include "jamba/Checkpoint/MemoryPlan.h"

#include "../common/StdoutCheck.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

using namespace jamba::ckpt;

static const char kUsage[] =
    R"(usage: jamba-plan CONFIG.json [options]

Prints the per-device memory plan of the model CONFIG.json describes: the
bytes of its weights, KV cache, Mamba state (conv + SSM), the peak
activations of one prefill step, and a workspace, on each of TP x EP devices;
with --device-gib, whether that fits and the largest context that would.

options:
  --tp N              tensor-parallel size: attention heads, Mamba d_inner
                      and the MLP/expert width split over N ranks (default 1)
  --ep M              expert-parallel size: the experts split over M groups
                      of TP ranks; the device count is TP x EP (default 1)
  --weights f32|bf16|int8-experts
                      weight format (default: the config's: int8-experts
                      with a quantization_config, f32 when torch_dtype is
                      float32, else bf16); int8-experts = ExpertsInt8
                      experts + f32 row scales, every other weight bf16
  --dense-mlp         with int8-experts: the dense MLPs are int8 too
  --batch B           sequences at once (default 1)
  --context T|max     tokens per sequence in the KV cache (default 4096);
                      max: the largest that fits (needs --device-gib)
  --prefill-chunk N   prefill tokens per sequence in one step (default 2048)
  --device-gib G      capacity of one device in GiB (2^30 bytes), e.g. 80
  --reserve-gib R     fixed per-device reserve for the CUDA context,
                      cuBLAS and NCCL, in GiB (default 1)
  --help              print this message

exit status: 0 when the plan fits (or no --device-gib), 2 when it does not
fit the device, 1 for bad arguments or a bad config.
)";

namespace {

int fatal(const std::string &message) {
  std::fprintf(stderr, "jamba-plan: error: %s\n", message.c_str());
  return 1;
}

/// A decimal integer (possibly negative or zero: the planner checks ranges).
bool parseInt(const std::string &s, int64_t &out) {
  if (s.empty())
    return false;
  char *end = nullptr;
  errno = 0;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno || *end)
    return false;
  out = v;
  return true;
}

/// A finite number of GiB in [min, 2^33], converted to bytes.
bool parseGiB(const std::string &s, double min, uint64_t &bytes) {
  if (s.empty())
    return false;
  char *end = nullptr;
  errno = 0;
  double v = std::strtod(s.c_str(), &end);
  if (errno || *end || !std::isfinite(v) || v < min || v > 8589934592.0)
    return false;
  bytes = static_cast<uint64_t>(std::llround(v * 1073741824.0));
  return true;
}

} // namespace

/// The tool; main checks that what it printed arrived.
static int run(int argc, char **argv) {
  PlanRequest request;
  std::vector<std::string> positional;
  bool weightsGiven = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (arg == "--dense-mlp") {
      request.int8DenseMlp = true;
      continue;
    }
    if (arg.size() > 1 && arg[0] == '-') {
      if (i + 1 >= argc)
        return fatal("option '" + arg + "' expects a value");
      std::string v = argv[++i];
      auto integer = [&](int64_t &out) {
        return parseInt(v, out)
                   ? 0
                   : fatal(arg + " expects an integer, got '" + v + "'");
      };
      int rc = 0;
      if (arg == "--tp")
        rc = integer(request.tensorParallel);
      else if (arg == "--ep")
        rc = integer(request.expertParallel);
      else if (arg == "--batch")
        rc = integer(request.batch);
      else if (arg == "--prefill-chunk")
        rc = integer(request.prefillChunk);
      else if (arg == "--context") {
        if (v == "max")
          request.maximizeContext = true;
        else if (!parseInt(v, request.context))
          return fatal("--context expects an integer or 'max', got '" + v +
                       "'");
      } else if (arg == "--weights") {
        std::optional<WeightFormat> format = parseWeightFormat(v);
        if (!format)
          return fatal("--weights expects f32, bf16 or int8-experts, got '" +
                       v + "'");
        request.weights = *format;
        weightsGiven = true;
      } else if (arg == "--device-gib") {
        if (!parseGiB(v, 1.0 / 1024, request.deviceBytes))
          return fatal("--device-gib expects a number of GiB in "
                       "[1/1024, 2^33], got '" +
                       v + "'");
      } else if (arg == "--reserve-gib") {
        if (!parseGiB(v, 0.0, request.reserveBytes))
          return fatal("--reserve-gib expects a number of GiB in [0, 2^33], "
                       "got '" +
                       v + "'");
      } else {
        return fatal("unknown option '" + arg + "' (see --help)");
      }
      if (rc)
        return rc;
      continue;
    }
    positional.push_back(arg);
  }
  if (positional.size() != 1)
    return fatal("expected one CONFIG.json (see --help)");

  StatusOr<JambaConfig> config = loadConfig(positional[0]);
  if (!config.ok())
    return fatal(config.status().message());
  if (!weightsGiven) {
    request.weights = defaultWeightFormat(*config);
    if (config->quantMethod)
      request.int8DenseMlp |= config->quantDenseMlp;
  }

  // The two request fields whose names differ from their options.
  if (request.maximizeContext && request.deviceBytes == 0)
    return fatal("--context max needs --device-gib");
  if (request.int8DenseMlp && request.weights != WeightFormat::ExpertsInt8)
    return fatal(std::string("--dense-mlp needs --weights int8-experts, got ") +
                 weightFormatName(request.weights));

  StatusOr<DeviceMemoryPlan> plan = planDeviceMemory(*config, request);
  if (!plan.ok())
    return fatal(plan.status().message());
  std::fputs(formatDeviceMemoryPlan(*plan, positional[0]).c_str(), stdout);
  std::fflush(stdout);
  if (plan->fits)
    return 0;
  double gib = 1073741824.0;
  std::string largest = *plan->maxContext == 0
                            ? std::string("none")
                            : std::to_string(*plan->maxContext) + " tokens";
  std::fprintf(stderr,
               "jamba-plan: does not fit: %.2f GiB per device, the device "
               "has %.2f GiB; the largest context that fits: %s\n",
               double(plan->totalBytes) / gib,
               double(plan->request.deviceBytes) / gib, largest.c_str());
  return 2;
}

int main(int argc, char **argv) {
  int rc = run(argc, argv);
  if (std::string error = ::jamba::tools::stdoutError(); !error.empty()) {
    std::fprintf(stderr, "jamba-plan: error: %s\n", error.c_str());
    return 1;
  }
  return rc;
}

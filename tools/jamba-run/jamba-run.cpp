//===- jamba-run.cpp - Generate with a compiled artifact ------------------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
//   jamba-run ARTIFACT (--prompt-ids 1,17,42 | --prompt TEXT) -n 8
//             [--output ids|text] [--seed S] [--temperature T]
//             [--top-k K] [--top-p P] [--batch B] [--context C] [--seq S]
//             [--ignore-eos] [--logits-out F.npy] [--mpi]
//             [--device cpu|cuda] [--cuda-device N] [--ranks N]
//             [--profile-kernels] [--stream]
//   mpirun -np N jamba-run ARTIFACT ...
//
// Loads and validates the artifact, binds it for the sequences and context
// length, prints the generated ids of each sequence on one line,
// comma-separated (same convention as jamba-interpret) or, with text
// prompts, the generated text (the artifact's tokenizer), as each id is
// chosen with --stream, writes the logits as .npy and prints the memory plan
// and prefill/decode tokens/s on stderr.
// A thin main over lib/Runtime (docs/Runtime.md).
//
// Started by an MPI launcher (or with --mpi), each process runs the rank MPI
// gives it; rank 0 alone prints and writes, the others only report errors,
// and a rank that fails stops them all (MPI_Abort). On CUDA each rank runs
// on a GPU of its own: by default the launcher's local rank (or the rank
// modulo the device count), and the ranks all-reduce with NCCL.
//
// With --ranks N one process runs all N ranks, one thread each, over
// in-process communicators (createThreadCommunicators); on CUDA rank K runs
// on device --cuda-device + K, so one process drives every GPU of a machine.
//
//===----------------------------------------------------------------------===//

#include "jamba/Checkpoint/Npy.h"
#include "jamba/Checkpoint/TokenIds.h"
#include "jamba/Checkpoint/Tokenizer.h"
#include "jamba/Runtime/Communicator.h"
#include "jamba/Runtime/CudaDriver.h"
#include "jamba/Runtime/CudaProfile.h"
#include "jamba/Runtime/Executor.h"
#include "jamba/Runtime/Generate.h"
#include "jamba/Runtime/KernelMemory.h"

#include "../common/StdoutCheck.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace jamba;
using namespace jamba::rt;

static const char kUsage[] =
    R"(usage: jamba-run ARTIFACT_DIR (--prompt-ids 1,17,42 | --prompt TEXT)
                 [options]

Generates with a compiled artifact on this CPU or on a CUDA GPU. Prints the
generated ids of each sequence on one line, comma-separated, or its text;
the memory plan, notes and tokens/s go to stderr. Any problem is one line
`jamba-run: error: ...` and a non-zero exit.

options (a value follows as the next argument, or as --name=value):
  --prompt-ids IDS   comma-separated prompt ids; repeat the option for
                     several sequences (run together)
  --prompt TEXT      a prompt as text, encoded by the artifact's tokenizer
                     (the checkpoint's tokenizer.json, which jamba-compile
                     copies; its ids go to stderr); repeatable, and mixable
                     with --prompt-ids
  --output ids|text  print each sequence's generated ids, or their text
                     (decoded by the artifact's tokenizer, special tokens
                     left out; each text then a newline). Default: text
                     when a prompt is text, else ids
  -n N               ids to generate per sequence (default 8)
  --batch B          run B copies of the (single) prompt together
  --context C        tokens per sequence the KV cache holds (default: the
                     longest prompt + N)
  --seq S            prompt tokens per prefill call (default: min(context,
                     the artifact's largest))
  --temperature T    0 (default): greedy; else sample from softmax(logits/T)
  --top-k K          sample among the K most likely ids (0: all)
  --top-p P          sample among the smallest set reaching probability P
  --seed S           seed of the sampler (default 0)
  --ignore-eos       do not stop at the model's EOS ids
  --stream           print the generated ids, or text, as each id is
                     chosen rather than at the end (one sequence; text
                     held only where the next id may still change it, as
                     in the middle of a character's bytes)
  --logits-out F     write the logits of every prompt position and decode
                     step as float32 .npy [rows, vocab]; with several
                     sequences, F with .npy replaced by .I.npy per sequence
                     (an artifact compiled with --prefill-logits all)
  --mpi              run the rank MPI gives this process (implied when an
                     MPI launcher such as mpirun started it); rank 0 prints
                     and writes, the other ranks only report errors
  --device D         cpu or cuda (default: the kind the artifact targets);
                     it must match the artifact
  --ranks N          run the artifact's N ranks in this process, one
                     thread each (on CUDA, rank K on device
                     --cuda-device + K: one process driving N GPUs); rank 0
                     prints and writes
  --cuda-device N    the CUDA device to run on (default 0; with several
                     MPI ranks, the launcher's local rank, or else the rank
                     modulo the number of devices)
  --profile-kernels  CUDA: time every kernel, cuBLAS GEMM and NCCL
                     all-reduce with CUDA events and print the GPU time per
                     op and per kernel at the end (decode then runs without
                     CUDA graphs); CPU: time every step (a layer, the
                     embedding, the head) and print the wall time per kind
                     of layer and per step at the end
  --help             print this message
)";

/// Who reports: with several ranks, messages name the rank, and an error
/// stops every rank (Communicator::abort) so that none waits forever in a
/// collective.
static struct {
  int64_t rank = -1; ///< -1: a single process (no rank in messages).
  Communicator *communicator = nullptr;
} reporter;

static int fail(const std::string &message) {
  if (reporter.rank >= 0)
    std::fprintf(stderr, "jamba-run: rank %" PRId64 ": error: %s\n",
                 reporter.rank, message.c_str());
  else
    std::fprintf(stderr, "jamba-run: error: %s\n", message.c_str());
  if (reporter.communicator && reporter.communicator->size() > 1) {
    std::fflush(stdout);
    reporter.communicator->abort(1);
  }
  return 1;
}

static bool parseInt(const char *text, int64_t &out) {
  if (!text || !*text)
    return false;
  char *end = nullptr;
  errno = 0;
  long long v = std::strtoll(text, &end, 10);
  if (errno || *end)
    return false;
  out = v;
  return true;
}

static bool parseU64(const char *text, uint64_t &out) {
  if (!text || !*text || *text == '-')
    return false;
  char *end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(text, &end, 10);
  if (errno || *end)
    return false;
  out = v;
  return true;
}

static bool parseDouble(const char *text, double &out) {
  if (!text || !*text)
    return false;
  char *end = nullptr;
  errno = 0;
  double v = std::strtod(text, &end);
  // An underflow (1e-320) is a finite value; an overflow is infinite.
  if ((errno && errno != ERANGE) || *end || !std::isfinite(v))
    return false;
  out = v;
  return true;
}

/// Parses "1,17,42" strictly: non-negative decimal integers, no empty items.

static double seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

/// What every rank runs with.
struct RankConfig {
  Device device = Device::Cpu;
  std::optional<int64_t> cudaDevice;
  int64_t context = 0, seq = 0;
  bool profileKernels = false;
  const std::vector<std::vector<int64_t>> *prompts = nullptr;
  GenerateOptions options;
};

/// --stream: prints the one sequence's ids ("1,17,42") or text as each id
/// is chosen, flushed. A decoding error is kept for the end.
struct StreamPrinter {
  std::optional<ckpt::TextStream> text;
  /// Everything printed, for finish()'s check.
  std::string printed;
  ckpt::Status error = ckpt::Status::success();

  void write(const std::string &piece) {
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
    printed += piece;
  }
  void onId(int64_t id) {
    if (!error.ok())
      return;
    if (!text) {
      write((printed.empty() ? "" : ",") + std::to_string(id));
      return;
    }
    auto piece = text->push(id);
    if (!piece.ok())
      error = piece.status();
    else if (!piece->empty())
      write(*piece);
  }
  /// The rest of the text and the end of the line; fails unless all that
  /// was printed is `line`, what the run prints without --stream.
  ckpt::Status finish(const std::string &line) {
    JAMBA_CKPT_RETURN_IF_ERROR(error);
    if (text) {
      auto rest = text->finish();
      if (!rest.ok())
        return rest.status();
      write(*rest);
    }
    write("\n");
    if (printed != line + "\n")
      return ckpt::makeError("printed ", printed.size(),
                             " bytes that are not the generated line of ",
                             line.size() + 1, " bytes");
    return ckpt::Status::success();
  }
  /// After a failed generation: ends a line begun.
  void abandon() {
    if (!printed.empty())
      write("\n");
  }
};

/// What one rank computed.
struct RankOutcome {
  GenerationResult result;
  double loadSeconds = 0;
};

/// Plans, binds and generates as rank `communicator->rank()` (or as the
/// only rank without a communicator). Rank 0 prints the plan and notes.
static ckpt::StatusOr<RankOutcome>
runRank(const Artifact &artifact, Communicator *communicator,
        const RankConfig &config,
        std::chrono::steady_clock::time_point loadStart) {
  const bool lead = !communicator || communicator->rank() == 0;
  const bool ranked = communicator && communicator->size() > 1;
  SessionOptions session;
  session.device = config.device;
  // One GPU per rank: unless told, the launcher's local rank (or the rank
  // modulo the device count) picks it. Ranks that are threads of this
  // process take --cuda-device (default 0) plus their rank.
  const bool threads = communicator && communicator->name() == "threads";
  if (threads && ranked)
    session.cudaDevice =
        int(config.cudaDevice.value_or(0) + communicator->rank());
  else if (config.cudaDevice)
    session.cudaDevice = int(*config.cudaDevice);
  else if (session.device == Device::Cuda && ranked)
    session.cudaDevice = rt::cuda::defaultCudaDevice(communicator->rank());
  session.batch = int64_t(config.prompts->size());
  session.contextLength = config.context;
  if (config.seq)
    session.seq = config.seq;
  session.profileKernels = config.profileKernels;
  if (communicator) {
    session.rank = communicator->rank();
    session.communicator = communicator;
  }
  auto plan = planSession(artifact, session);
  if (!plan.ok())
    return plan.status();
  auto bound = [&](const char *name) {
    auto it = plan->bindings.find(name);
    return it == plan->bindings.end() ? int64_t(0) : it->second;
  };
  if (lead)
    std::fprintf(stderr,
                 "jamba-run: plan for batch %" PRId64 ", context %" PRId64
                 ", seq %" PRId64 ": weights %" PRIu64 ", state %" PRIu64
                 ", arena %" PRIu64 ", io %" PRIu64 " bytes (%" PRIu64
                 " in all)\n",
                 bound(kDimBatch), bound(kDimCapacity), bound(kDimSeq),
                 plan->weightBytes, plan->stateBytes, plan->arenaBytes,
                 plan->ioBytes, totalPlanBytes(*plan));
  auto executor = Executor::create(artifact, session);
  if (!executor.ok())
    return executor.status();
  if (lead && session.device == Device::Cuda)
    std::fprintf(stderr, "jamba-run: running on %s%s\n",
                 (*executor)->deviceDescription().c_str(),
                 (*executor)->usesCudaGraphs() ? ", decode in CUDA graphs"
                                               : "");
  for (const std::string &note : (*executor)->notes())
    if (lead)
      std::fprintf(stderr, "jamba-run: note: %s\n", note.c_str());
  RankOutcome outcome;
  outcome.loadSeconds = seconds(loadStart);
  // Only rank 0 prints the ids as they come.
  GenerateOptions options = config.options;
  if (!lead)
    options.onId = nullptr;
  auto result = generate(**executor, *config.prompts, options);
  if (!result.ok())
    return result.status();
  outcome.result = std::move(*result);
  if (lead && config.profileKernels) {
    std::string profile =
        config.device == Device::Cuda
            ? rt::cuda::formatKernelProfile((*executor)->cudaKernelProfile(),
                                            /*limit=*/40)
            : rt::formatStepProfile((*executor)->stepProfile(),
                                    artifact.manifest().config, /*limit=*/40);
    std::fprintf(stderr, "jamba-run: %s", profile.c_str());
  }
  return outcome;
}

int main(int argc, char **argv) {
  std::string artifactDir, logitsOut;
  std::vector<std::vector<int64_t>> prompts;
  // The text of each prompt given as --prompt (encoded once the artifact's
  // tokenizer is open), nullopt for --prompt-ids.
  std::vector<std::optional<std::string>> promptTexts;
  std::optional<bool> outputText;
  int64_t steps = 8, batch = 0, context = 0, seq = 0, ranksInProcess = 0;
  bool mpiFlag = false, profileKernels = false, stream = false;
  std::optional<Device> device;
  std::optional<int64_t> cudaDevice;
  GenerateOptions options;
  // Before a communicator exists, errors name the rank the launcher gives.
  const bool several =
      launchedByMpi() && (mpiLaunchSize() > 1 || mpiLaunchRank() > 0);
  if (several)
    reporter.rank = std::max<int64_t>(0, mpiLaunchRank());

  // The options that take a value (as the next argument or after '=').
  static const char *const kValueOptions[] = {
      "--prompt-ids",  "--prompt",  "--output",     "-n",
      "--batch",       "--context", "--seq",        "--seed",
      "--temperature", "--top-k",   "--top-p",      "--logits-out",
      "--device",      "--ranks",   "--cuda-device"};
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    // --name=value.
    std::optional<std::string> inlineValue;
    if (size_t eq = arg.find('=');
        arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      inlineValue = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    auto value = [&](const char *&out) {
      if (inlineValue) {
        out = inlineValue->c_str();
        return true;
      }
      if (i + 1 >= argc)
        return false;
      out = argv[++i];
      return true;
    };
    const char *v = nullptr;
    const bool takesValue =
        std::find(std::begin(kValueOptions), std::end(kValueOptions), arg) !=
        std::end(kValueOptions);
    if (inlineValue && !takesValue)
      return fail(arg == "--ignore-eos" || arg == "--mpi" ||
                          arg == "--profile-kernels" || arg == "--stream" ||
                          arg == "--help"
                      ? "option " + arg + " takes no value"
                      : "unknown option '" + arg + "' (see --help)");
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (arg == "--ignore-eos") {
      options.stopOnEos = false;
      continue;
    }
    if (arg == "--mpi") {
      mpiFlag = true;
      continue;
    }
    if (arg == "--profile-kernels") {
      profileKernels = true;
      continue;
    }
    if (arg == "--stream") {
      stream = true;
      continue;
    }
    if (arg.size() > 1 && arg[0] == '-') {
      if (!takesValue)
        return fail("unknown option '" + arg + "' (see --help)");
      if (!value(v))
        return fail("option " + arg + " needs a value");
      std::string text = v;
      if (arg == "--prompt-ids") {
        auto parsed = ckpt::parseTokenIds(text);
        if (!parsed.ok())
          return fail("--prompt-ids: " + parsed.status().message());
        prompts.push_back(std::move(*parsed));
        promptTexts.push_back(std::nullopt);
      } else if (arg == "--prompt") {
        prompts.emplace_back();
        promptTexts.push_back(text);
      } else if (arg == "--output") {
        if (text != "ids" && text != "text")
          return fail("--output must be ids or text, got '" + text + "'");
        outputText = text == "text";
      } else if (arg == "-n") {
        if (!parseInt(v, steps) || steps < 0)
          return fail("-n must be a non-negative integer, got '" + text + "'");
      } else if (arg == "--batch") {
        if (!parseInt(v, batch) || batch < 1)
          return fail("--batch must be a positive integer, got '" + text + "'");
      } else if (arg == "--context") {
        if (!parseInt(v, context) || context < 1)
          return fail("--context must be a positive integer, got '" + text +
                      "'");
      } else if (arg == "--seq") {
        if (!parseInt(v, seq) || seq < 1)
          return fail("--seq must be a positive integer, got '" + text + "'");
      } else if (arg == "--seed") {
        if (!parseU64(v, options.sampling.seed))
          return fail("--seed must be a non-negative integer, got '" + text +
                      "'");
      } else if (arg == "--temperature") {
        if (!parseDouble(v, options.sampling.temperature) ||
            options.sampling.temperature < 0)
          return fail("--temperature must be a finite number >= 0, got '" +
                      text + "'");
      } else if (arg == "--top-k") {
        if (!parseInt(v, options.sampling.topK) || options.sampling.topK < 0)
          return fail("--top-k must be a non-negative integer, got '" + text +
                      "'");
      } else if (arg == "--top-p") {
        if (!parseDouble(v, options.sampling.topP) ||
            options.sampling.topP <= 0 || options.sampling.topP > 1)
          return fail("--top-p must be a number in (0, 1], got '" + text + "'");
      } else if (arg == "--logits-out") {
        logitsOut = text;
      } else if (arg == "--device") {
        if (text == "cpu")
          device = Device::Cpu;
        else if (text == "cuda")
          device = Device::Cuda;
        else
          return fail("--device must be cpu or cuda, got '" + text + "'");
      } else if (arg == "--ranks") {
        if (!parseInt(v, ranksInProcess) || ranksInProcess < 1 ||
            ranksInProcess > 1024)
          return fail("--ranks must be an integer in [1, 1024], got '" + text +
                      "'");
      } else if (arg == "--cuda-device") {
        int64_t ordinal = 0;
        if (!parseInt(v, ordinal) || ordinal < 0 || ordinal > INT32_MAX)
          return fail("--cuda-device must be a non-negative integer, got '" +
                      text + "'");
        cudaDevice = ordinal;
      }
      continue;
    }
    if (!artifactDir.empty())
      return fail("more than one artifact directory given ('" + artifactDir +
                  "' and '" + arg + "')");
    artifactDir = arg;
  }
  if (artifactDir.empty())
    return fail("no artifact directory given (see --help)");
  if (prompts.empty())
    return fail("--prompt-ids or --prompt is required");
  if (batch > 0) {
    if (prompts.size() == 1) {
      prompts.assign(size_t(batch), prompts[0]);
      promptTexts.assign(size_t(batch), promptTexts[0]);
    } else if (int64_t(prompts.size()) != batch)
      return fail(ckpt::concat("--batch ", batch, " but ", prompts.size(),
                               " prompts given (use one prompt to repeat it)"));
  }

  if (stream && prompts.size() != 1)
    return fail(ckpt::concat("--stream prints one sequence as it is "
                             "generated; this run has ",
                             prompts.size(), " (--batch, or several prompts)"));

  if (ranksInProcess > 0 && (mpiFlag || several))
    return fail("--ranks runs the ranks as threads of this process; it "
                "cannot be combined with an MPI launcher or --mpi");

  // The ranks: MPI's when launched by it (or asked for), else one. One
  // process started alone by a launcher, in a build without MPI, runs as a
  // single rank; several cannot.
  std::unique_ptr<Communicator> communicator;
  if (ranksInProcess == 0 &&
      (mpiFlag || (launchedByMpi() && (haveMpi() || several)))) {
    auto created = createMpiCommunicator();
    if (!created.ok()) {
      if (several)
        return fail(ckpt::concat(
            "started by an MPI launcher as one of ",
            mpiLaunchSize() > 0 ? std::to_string(mpiLaunchSize()) : "several",
            " processes, but ", created.status().message()));
      return fail(created.status().message());
    }
    communicator = std::move(*created);
    reporter.communicator = communicator.get();
    reporter.rank = communicator->size() > 1 ? communicator->rank() : -1;
  }

  auto loadStart = std::chrono::steady_clock::now();
  // An MPI rank hashes the files it reads, not the other ranks' weights.
  OpenOptions openOptions;
  if (communicator && communicator->size() > 1)
    openOptions.rank = communicator->rank();
  auto opened = Artifact::open(artifactDir, openOptions);
  if (!opened.ok())
    return fail(opened.status().message());
  const Artifact &artifact = **opened;

  // The tokenizer, for text prompts and text output.
  const bool anyText = std::any_of(promptTexts.begin(), promptTexts.end(),
                                   [](const auto &t) { return t.has_value(); });
  if (!outputText)
    outputText = anyText;
  std::optional<ckpt::Tokenizer> tokenizer;
  if (anyText || *outputText) {
    auto loaded = artifact.loadTokenizer();
    if (!loaded.ok())
      return fail(loaded.status().message());
    if (!*loaded)
      return fail(ckpt::concat(
          anyText ? "--prompt" : "--output text", " needs a tokenizer, and ",
          artifactDir,
          " has none (jamba-compile copies the checkpoint's "
          "tokenizer.json when it has one); use --prompt-ids and --output "
          "ids"));
    tokenizer = std::move(*loaded);
  }
  for (size_t k = 0; k < prompts.size(); ++k) {
    if (!promptTexts[k])
      continue;
    auto ids = tokenizer->encode(*promptTexts[k]);
    if (!ids.ok())
      return fail(ckpt::concat("--prompt '", *promptTexts[k],
                               "': ", ids.status().message()));
    if (ids->empty())
      return fail(ckpt::concat("--prompt '", *promptTexts[k],
                               "' encodes to no tokens"));
    prompts[k] = std::move(*ids);
    if (!communicator || communicator->rank() == 0)
      std::fprintf(stderr, "jamba-run: prompt %zu: %zu tokens: %s\n", k,
                   prompts[k].size(), ckpt::formatTokenIds(prompts[k]).c_str());
  }

  // The context: what the longest sequence needs, unless given.
  size_t longest = 0;
  for (const auto &p : prompts)
    longest = std::max(longest, p.size());
  int64_t needed = int64_t(longest) + steps;
  if (context == 0) {
    const SymbolicDim *cap = artifact.manifest().findDim(kDimCapacity);
    if (cap && needed > cap->max)
      return fail(ckpt::concat("the longest prompt (", longest, " ids) + ",
                               steps, " generated ids need a context of ",
                               needed, "; the artifact supports at most ",
                               cap->max));
    context = needed;
  }
  RankConfig config;
  config.device = device ? *device
                  : artifact.manifest().target.kind == TargetDesc::Kind::Cuda
                      ? Device::Cuda
                      : Device::Cpu;
  config.cudaDevice = cudaDevice;
  config.profileKernels = profileKernels;
  // Refused before the weights load: a prefill whose logits are [batch, 1,
  // vocab] keeps only the last position's (generate() refuses it too).
  if (!logitsOut.empty() && prefillKeepsLastLogitsOnly(artifact.manifest()))
    return fail("--logits-out records every prompt position's logits, "
                "but the artifact's prefill keeps only the last "
                "position's (compile it with jamba-compile "
                "--prefill-logits all)");
  config.context = context;
  config.seq = seq;
  config.prompts = &prompts;
  options.maxNewTokens = steps;
  options.recordLogits = !logitsOut.empty();
  std::optional<StreamPrinter> streamer;
  if (stream) {
    streamer.emplace();
    if (*outputText)
      streamer->text.emplace(*tokenizer);
    options.onId = [&streamer](int64_t, int64_t id) { streamer->onId(id); };
  }
  config.options = options;

  std::optional<RankOutcome> outcome;
  if (ranksInProcess > 0) {
    // One thread per rank, each with its own communicator (and, on CUDA,
    // its own device: --cuda-device, default 0, plus the rank). Rank 0
    // reports; a rank that fails says so and breaks the ranks, so that
    // none waits for it in a collective.
    auto ranks = createThreadCommunicators(ranksInProcess);
    std::vector<std::optional<ckpt::StatusOr<RankOutcome>>> results(
        static_cast<size_t>(ranksInProcess));
    auto runOne = [&](int64_t r) {
      results[size_t(r)].emplace(
          runRank(artifact, ranks[size_t(r)].get(), config, loadStart));
      if (!results[size_t(r)]->ok())
        ranks[size_t(r)]->abort(1);
    };
    std::vector<std::thread> threads;
    for (int64_t r = 1; r < ranksInProcess; ++r)
      threads.emplace_back(runOne, r);
    runOne(0);
    for (std::thread &t : threads)
      t.join();
    // Each distinct error once, with its first rank and how many others
    // failed alike (every rank finds the same bad artifact or option).
    std::vector<std::pair<std::string, std::vector<int64_t>>> errors;
    for (int64_t r = 0; r < ranksInProcess; ++r) {
      const auto &result = *results[size_t(r)];
      if (result.ok())
        continue;
      std::string message = result.status().message();
      auto same =
          std::find_if(errors.begin(), errors.end(),
                       [&](const auto &e) { return e.first == message; });
      if (same == errors.end())
        errors.push_back({message, {r}});
      else
        same->second.push_back(r);
    }
    for (const auto &[message, failed] : errors) {
      std::string others = failed.size() > 1
                               ? " (and " + std::to_string(failed.size() - 1) +
                                     " other rank" +
                                     (failed.size() > 2 ? "s" : "") + " alike)"
                               : "";
      std::fprintf(stderr, "jamba-run: rank %" PRId64 ": error: %s%s\n",
                   failed.front(), message.c_str(), others.c_str());
    }
    if (!errors.empty()) {
      if (streamer)
        streamer->abandon();
      return 1;
    }
    outcome.emplace(std::move(**results[0]));
  } else {
    auto ran = runRank(artifact, communicator.get(), config, loadStart);
    if (!ran.ok()) {
      if (streamer && (!communicator || communicator->rank() == 0))
        streamer->abandon();
      return fail(ran.status().message());
    }
    // Every rank computed the same ids and logits; rank 0 reports them.
    if (communicator && communicator->rank() != 0)
      return 0;
    outcome.emplace(std::move(*ran));
  }
  const GenerationResult &r = outcome->result;

  for (const SequenceOutput &out : r.sequences) {
    std::string line;
    if (*outputText) {
      size_t unknown = 0;
      auto text =
          tokenizer->decode(out.ids, /*skipSpecialTokens=*/true, &unknown);
      if (!text.ok())
        return fail("decoding the generated ids: " + text.status().message());
      line = std::move(*text);
      if (unknown > 0)
        std::fprintf(stderr,
                     "jamba-run: note: %zu generated ids name no token of "
                     "the tokenizer (printed as U+FFFD)\n",
                     unknown);
    } else {
      line = ckpt::formatTokenIds(out.ids);
    }
    if (streamer) {
      if (ckpt::Status st = streamer->finish(line); !st.ok())
        return fail("--stream: " + st.message());
      continue;
    }
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fputc('\n', stdout);
  }
  if (std::string error = ::jamba::tools::stdoutError(); !error.empty())
    return fail(error);

  if (!logitsOut.empty()) {
    for (size_t b = 0; b < r.sequences.size(); ++b) {
      std::string path = logitsOut;
      if (r.sequences.size() > 1) {
        std::string suffix = "." + std::to_string(b) + ".npy";
        if (path.size() > 4 && path.compare(path.size() - 4, 4, ".npy") == 0)
          path = path.substr(0, path.size() - 4) + suffix;
        else
          path += suffix;
      }
      const SequenceOutput &out = r.sequences[b];
      ckpt::Status s = ckpt::writeNpyF32(path, {out.rows, r.vocab}, out.logits);
      if (!s.ok())
        return fail(s.message());
    }
  }

  std::fprintf(stderr,
               "jamba-run: load %.3f s, prefill %" PRId64
               " tokens in %.3f s (%.2f tok/s), decode %" PRId64
               " tokens in %.3f s (%.2f tok/s)\n",
               outcome->loadSeconds, r.prefillTokens, r.prefillSeconds,
               r.prefillSeconds > 0 ? r.prefillTokens / r.prefillSeconds : 0.0,
               r.decodeTokens, r.decodeSeconds,
               r.decodeSeconds > 0 ? r.decodeTokens / r.decodeSeconds : 0.0);
  if (r.greedyIdCalls > 0)
    std::fprintf(stderr,
                 "jamba-run: the artifact chose the greedy ids: %" PRId64
                 " of %" PRId64 " calls returned ids, not logits\n",
                 r.greedyIdCalls, r.prefillCalls + r.decodeCalls);
  // The CPU kernels' temporaries, which the memory plan does not count
  // (KernelMemory.h); none on CUDA.
  if (rt::KernelMemoryStats k = rt::kernelMemoryStats(); k.allocations > 0) {
    const bool mib = k.maxLiveBytes >= (1u << 20);
    std::fprintf(stderr,
                 "jamba-run: kernel temporaries: at most %.1f %s at once; "
                 "%" PRIu64 " of %" PRIu64
                 " allocations reused a block freed before\n",
                 double(k.maxLiveBytes) / double(mib ? 1 << 20 : 1 << 10),
                 mib ? "MiB" : "KiB", k.reuses, k.allocations);
  }
  // The steady rate: without the first decode call (on CUDA, the graph
  // capture and the decode kernels' first launches).
  if (r.decodeCalls > 1 && r.decodeSeconds > r.firstDecodeSeconds)
    std::fprintf(stderr,
                 "jamba-run: decode: the first call %.2f ms, then %" PRId64
                 " tokens in %.3f s (%.2f tok/s)\n",
                 1e3 * r.firstDecodeSeconds,
                 r.decodeTokens - r.firstDecodeTokens,
                 r.decodeSeconds - r.firstDecodeSeconds,
                 (r.decodeTokens - r.firstDecodeTokens) /
                     (r.decodeSeconds - r.firstDecodeSeconds));
  return 0;
}

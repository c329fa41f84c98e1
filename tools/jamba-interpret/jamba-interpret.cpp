//===- jamba-interpret.cpp - Run a model with the reference interpreter ---===//
//
// Part of jamba-mlir.
//   jamba-interpret CKPT_DIR [--module M.mlir]
//                   (--prompt-ids 1,17,42 | --prompt TEXT) -n 8
//                   [--dtype f32|f64] [--logits-out F.npy]
// prints the greedily generated ids on one line, comma-separated, and writes
// the logits of every prompt position followed by each decode step as a
// float32 .npy of shape [positions + steps, vocab] (see Generate.h for the
// exact row convention).
//
//===----------------------------------------------------------------------===//

#include "jamba/Checkpoint/Checkpoint.h"
#include "jamba/Checkpoint/Npy.h"
#include "jamba/Checkpoint/TokenIds.h"
#include "jamba/Checkpoint/Tokenizer.h"
#include "jamba/Dialect/Jamba/IR/JambaDialect.h"
#include "jamba/Import/Importer.h"
#include "jamba/Pipelines/Pipelines.h"
#include "jamba/Reference/Generate.h"

#include "../common/LlvmStdoutCheck.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/SourceMgr.h"

using namespace mlir;
using mlir::jamba::InterpretOptions;
namespace cl = llvm::cl;

static cl::opt<std::string> checkpointDir(cl::Positional, cl::Required,
                                          cl::desc("<checkpoint dir>"));
static cl::opt<std::string>
    modulePath("module",
               cl::desc("Run this .mlir module instead of importing the "
                        "checkpoint's config"),
               cl::value_desc("file"));
static cl::opt<std::string> promptIds("prompt-ids",
                                      cl::desc("Comma-separated token ids"));
static cl::opt<std::string>
    promptText("prompt",
               cl::desc("The prompt as text, encoded by the checkpoint's "
                        "tokenizer.json (its ids go to stderr)"),
               cl::value_desc("text"));
static cl::opt<int64_t> steps("n", cl::desc("Number of ids to generate"),
                              cl::init(8));
static cl::opt<std::string> dtype("dtype",
                                  cl::desc("Arithmetic precision: f32 or f64"),
                                  cl::init("f32"));
static cl::opt<std::string> gemmInputs(
    "gemm-inputs",
    cl::desc("The inputs of dense linears: f32 (exact, the default) or bf16 "
             "(rounded to bf16 first, as GEMMs on bf16 operands do: PyTorch's "
             "bf16 Linear, the CUDA backend's cuBLAS GEMMs); meant for bf16 "
             "checkpoints. The experts' GEMMs keep their inputs"),
    cl::init("f32"));
static cl::opt<std::string> expertInputs(
    "expert-inputs",
    cl::desc("The inputs of the experts' GEMMs: f32 (exact, the default) or "
             "bf16 (rounded to bf16 first, as the CUDA backend's tensor-core "
             "expert GEMM does: jamba-compile --gpu-tensor-cores)"),
    cl::init("f32"));
static cl::opt<std::string> logitsOut("logits-out",
                                      cl::desc("Write the logits as .npy"),
                                      cl::value_desc("file"));
static cl::opt<std::string> routingMarginsOut(
    "routing-margins-out",
    cl::desc("Write, per logits row, the smallest routing margin of its MoE "
             "layers (the gap between the k-th and (k+1)-th router logits "
             "over their largest magnitude; inf without MoE) as .npy"),
    cl::value_desc("file"));
static cl::opt<std::string> swapRouting(
    "swap-routing",
    cl::desc("Diagnosis aid: route token POSITION (0: the prompt's first) of "
             "router ROUTER (a forward pass's MoE routers, numbered from 0 in "
             "layer order) to its (k+1)-th best expert instead of its k-th, "
             "as rounding may at a near-tie; comma-separated ROUTER:POSITION "
             "pairs, each reported on stderr with its routing margin"),
    cl::value_desc("router:position,..."));
static cl::opt<bool> timing("time",
                            cl::desc("Print load, prefill and decode timings"),
                            cl::init(false));

static int fail(const std::string &message) {
  llvm::errs() << "jamba-interpret: error: " << message << "\n";
  return 1;
}

/// --swap-routing's ROUTER:POSITION pairs, or the error naming the bad one.
static llvm::Expected<std::vector<InterpretOptions::RoutingSwap>>
parseRoutingSwaps(StringRef text) {
  std::vector<InterpretOptions::RoutingSwap> swaps;
  if (text.empty())
    return swaps;
  SmallVector<StringRef> pairs;
  text.split(pairs, ',');
  for (StringRef pair : pairs) {
    auto [router, position] = pair.trim().split(':');
    InterpretOptions::RoutingSwap swap;
    // getAsInteger returns true on failure; negative values fail too.
    if (router.getAsInteger(10, swap.router) ||
        position.getAsInteger(10, swap.position) || swap.router < 0 ||
        swap.position < 0)
      return llvm::createStringError(
          "--swap-routing: '" + pair.str() +
          "' is not ROUTER:POSITION (two non-negative integers)");
    swaps.push_back(swap);
  }
  return swaps;
}

/// The tool; main checks that what it printed arrived.
static int run(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  llvm::setBugReportMsg("jamba-interpret crashed: please report it to the "
                        "jamba-mlir issue tracker with the command line.\n");
  cl::ParseCommandLineOptions(argc, argv, "jamba-mlir reference interpreter\n");

  // cl::opt keeps the last of repeated values, and jamba-run takes one
  // --prompt-ids per sequence: say so instead of running another prompt.
  if (promptIds.getNumOccurrences() + promptText.getNumOccurrences() != 1)
    return fail("give one prompt, --prompt-ids or --prompt: jamba-interpret "
                "runs one sequence (run it once per sequence)");
  std::vector<int64_t> ids;
  if (!promptText.getNumOccurrences()) {
    auto parsedIds = ::jamba::ckpt::parseTokenIds(promptIds);
    if (!parsedIds.ok())
      return fail("--prompt-ids: " + parsedIds.status().message());
    ids = std::move(*parsedIds);
  }
  if (steps < 0)
    return fail("-n must be non-negative");
  if (dtype != "f32" && dtype != "f64")
    return fail("--dtype must be f32 or f64, got '" + dtype + "'");
  if (gemmInputs != "f32" && gemmInputs != "bf16")
    return fail("--gemm-inputs must be f32 or bf16, got '" + gemmInputs + "'");
  if (expertInputs != "f32" && expertInputs != "bf16")
    return fail("--expert-inputs must be f32 or bf16, got '" + expertInputs +
                "'");

  auto swaps = parseRoutingSwaps(swapRouting);
  if (!swaps)
    return fail(llvm::toString(swaps.takeError()));

  auto opened = ::jamba::ckpt::Checkpoint::open(checkpointDir);
  if (!opened.ok())
    return fail(opened.status().message());
  std::unique_ptr<::jamba::ckpt::Checkpoint> checkpoint = std::move(*opened);

  // A text prompt, through the checkpoint's tokenizer (checked against its
  // vocabulary).
  if (promptText.getNumOccurrences()) {
    auto tokenizer = ::jamba::ckpt::Tokenizer::loadForVocabulary(
        checkpointDir + "/" + ::jamba::ckpt::kTokenizerFileName,
        checkpoint->config().vocabSize);
    if (!tokenizer.ok())
      return fail("--prompt needs the checkpoint's tokenizer: " +
                  tokenizer.status().message());
    auto encoded = tokenizer->encode(promptText);
    if (!encoded.ok())
      return fail("--prompt: " + encoded.status().message());
    ids = std::move(*encoded);
    llvm::errs() << "jamba-interpret: prompt: " << ids.size()
                 << " tokens: " << ::jamba::ckpt::formatTokenIds(ids) << "\n";
  }

  MLIRContext context;
  // Errors are one line (plus the source excerpt), not the offending op.
  context.printOpOnDiagnostic(false);
  mlir::jamba::loadImportDialects(&context);
  // Diagnostics print as file:line:col: error: ..., with the source line.
  llvm::SourceMgr sourceMgr;
  SourceMgrDiagnosticHandler diagnostics(sourceMgr, &context);
  OwningOpRef<ModuleOp> module;
  if (!modulePath.empty()) {
    module = mlir::jamba::parseModuleFile(modulePath, sourceMgr, &context);
    if (!module)
      return 1; // The error is reported, with its location.
  } else {
    auto imported = mlir::jamba::importModelForCheckpoint(
        &context, checkpoint->config(), mlir::jamba::ImportOptions(),
        FileLineColLoc::get(&context, checkpointDir, 0, 0));
    if (failed(imported))
      return 1;
    module = std::move(*imported);
  }

  mlir::jamba::GenerateOptions options;
  options.promptIds = ids;
  options.steps = steps;
  if (gemmInputs == "bf16")
    options.interpret.gemmInputs = ::jamba::ref::GemmInputs::BF16;
  if (expertInputs == "bf16")
    options.interpret.expertInputs = ::jamba::ref::GemmInputs::BF16;
  options.routingMargins = !routingMarginsOut.empty();
  std::vector<InterpretOptions::RoutingSwapReport> swapsMade;
  options.interpret.routingSwaps = *swaps;
  options.interpret.swapsMade = &swapsMade;
  FailureOr<mlir::jamba::Generation> gen =
      dtype == "f64"
          ? mlir::jamba::generateGreedy<double>(*module, *checkpoint, options)
          : mlir::jamba::generateGreedy<float>(*module, *checkpoint, options);
  if (failed(gen))
    return 1;

  for (const InterpretOptions::RoutingSwapReport &r : swapsMade)
    llvm::errs() << llvm::format("jamba-interpret: routing swap: router %lld, "
                                 "position %lld: expert %lld -> %lld "
                                 "(routing margin %.3e)\n",
                                 (long long)r.swap.router,
                                 (long long)r.swap.position, (long long)r.left,
                                 (long long)r.took, r.margin);
  // A swap that was not made names a router or position the run lacks.
  for (const InterpretOptions::RoutingSwap &s : *swaps)
    if (llvm::none_of(swapsMade, [&](const auto &r) {
          return r.swap.router == s.router && r.swap.position == s.position;
        }))
      return fail(llvm::formatv("--swap-routing {0}:{1}: no swap made: the "
                                "model has no router {0} (or its k equals "
                                "its experts), or the run fed no token {1} "
                                "(it fed {2})",
                                s.router, s.position, gen->rows)
                      .str());

  llvm::outs() << ::jamba::ckpt::formatTokenIds(gen->ids) << "\n";
  llvm::outs().flush();

  if (!logitsOut.empty()) {
    ::jamba::ckpt::Status status = ::jamba::ckpt::writeNpyF32(
        logitsOut, {gen->rows, gen->vocab}, gen->logits);
    if (!status.ok())
      return fail(status.message());
  }
  if (!routingMarginsOut.empty()) {
    ::jamba::ckpt::Status status = ::jamba::ckpt::writeNpyF32(
        routingMarginsOut, {gen->rows}, gen->routingMargins);
    if (!status.ok())
      return fail(status.message());
  }
  if (timing) {
    int64_t prompt = ids.size();
    llvm::errs() << llvm::format(
        "jamba-interpret: load %.3f s, prefill %lld tokens in %.3f s "
        "(%.2f tok/s), decode %lld tokens in %.3f s (%.2f tok/s)\n",
        gen->loadSeconds, (long long)prompt, gen->prefillSeconds,
        prompt / gen->prefillSeconds, (long long)steps.getValue(),
        gen->decodeSeconds, steps > 0 ? steps / gen->decodeSeconds : 0.0);
  }
  return 0;
}

int main(int argc, char **argv) {
  int rc = run(argc, argv);
  if (std::string error = ::jamba::tools::llvmStdoutError(); !error.empty())
    return fail(error);
  return rc;
}

//===- jamba-quant-report.cpp - ExpertsInt8 accuracy report ---------------===//
//
// Part of jamba-mlir.
//   jamba-quant-report CKPT_DIR [--prompt-ids 1,17,42] [-n 64] [--dense-mlp]
//                      [--dtype f32|f64] [--out DIR]
// quantizes the checkpoint with ExpertsInt8, runs the reference interpreter
// on the original and on the quantized model (the ExpertsInt8 pipeline's
// IR: int8 expert GEMMs with the dequantization fused), and prints how the
// quantized logits differ: max and mean relative error, top-1 agreement and
// KL divergence over the prompt positions and N greedy positions. Both
// models see the same tokens: the original model's greedy continuation.
//
//===----------------------------------------------------------------------===//

#include "jamba/Checkpoint/Checkpoint.h"
#include "jamba/Checkpoint/Quantize.h"
#include "jamba/Checkpoint/TokenIds.h"
#include "jamba/Pipelines/Pipelines.h"
#include "jamba/Reference/Compare.h"
#include "jamba/Reference/Generate.h"

#include "../common/LlvmStdoutCheck.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"

#include <chrono>
#include <cmath>

using namespace mlir;
namespace cl = llvm::cl;
namespace ckpt = ::jamba::ckpt;

static cl::opt<std::string> checkpointDir(cl::Positional, cl::Required,
                                          cl::desc("<checkpoint dir>"));
static cl::opt<std::string> promptIds("prompt-ids",
                                      cl::desc("Comma-separated token ids"),
                                      cl::init("1,17,42,7,99"));
static cl::opt<int64_t> steps("n", cl::desc("Greedy positions to compare"),
                              cl::init(64));
static cl::opt<bool> denseMlp("dense-mlp",
                              cl::desc("Also quantize dense MLP weights"),
                              cl::init(false));
static cl::opt<std::string> dtype("dtype",
                                  cl::desc("Interpreter precision: f32, f64"),
                                  cl::init("f32"));
static cl::opt<std::string>
    outDir("out", cl::desc("Keep the quantized checkpoint in this directory"),
           cl::value_desc("dir"));

static int fail(const std::string &message) {
  llvm::errs() << "jamba-quant-report: error: " << message << "\n";
  return 1;
}

static FailureOr<mlir::jamba::Generation>
run(MLIRContext &context, const ckpt::Checkpoint &checkpoint,
    const mlir::jamba::GenerateOptions &options) {
  auto module = mlir::jamba::importModelForCheckpoint(
      &context, checkpoint.config(), mlir::jamba::ImportOptions(),
      FileLineColLoc::get(&context, checkpoint.directory(), 0, 0));
  if (failed(module))
    return failure();
  return dtype == "f64"
             ? mlir::jamba::generateGreedy<double>(**module, checkpoint,
                                                   options)
             : mlir::jamba::generateGreedy<float>(**module, checkpoint,
                                                  options);
}

static void printComparison(StringRef what,
                            const ::jamba::ref::LogitsComparison &c) {
  llvm::outs() << llvm::format(
      "%-22s %4lld  max rel err %.3e  mean rel err %.3e  top-1 %lld/%lld "
      "(%.1f%%)  KL mean %.3e max %.3e\n",
      what.str().c_str(), (long long)c.rows, c.maxRelErr, c.meanRelErr,
      (long long)c.top1Agree, (long long)c.rows,
      100.0 * double(c.top1Agree) / double(c.rows), c.meanKL, c.maxKL);
}

/// The tool; main checks that what it printed arrived.
static int run(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::ParseCommandLineOptions(argc, argv, "jamba-mlir ExpertsInt8 report\n");
  if (dtype != "f32" && dtype != "f64")
    return fail("--dtype must be f32 or f64, got '" + dtype + "'");
  if (steps < 1)
    return fail("-n must be positive");
  auto parsedIds = ckpt::parseTokenIds(promptIds);
  if (!parsedIds.ok())
    return fail("--prompt-ids: " + parsedIds.status().message());
  std::vector<int64_t> prompt = std::move(*parsedIds);

  auto opened = ckpt::Checkpoint::open(checkpointDir);
  if (!opened.ok())
    return fail(opened.status().message());
  const ckpt::Checkpoint &original = **opened;
  if (original.config().quantMethod)
    return fail(checkpointDir + " is already quantized");

  // Quantize into --out or a temporary directory.
  std::string qDir = outDir;
  SmallString<128> tmp;
  if (qDir.empty()) {
    if (llvm::sys::fs::createUniqueDirectory("jamba-quant-report", tmp))
      return fail("cannot create a temporary directory");
    qDir = tmp.str().str();
  }
  ckpt::QuantizeOptions qOptions;
  qOptions.denseMlp = denseMlp;
  auto start = std::chrono::steady_clock::now();
  ckpt::Status status =
      ckpt::writeQuantizedCheckpoint(original, qDir, qOptions);
  double quantizeSeconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  if (!status.ok())
    return fail(status.message());
  auto qOpened = ckpt::Checkpoint::open(qDir);
  if (!qOpened.ok())
    return fail(qOpened.status().message());
  const ckpt::Checkpoint &quantized = **qOpened;

  // Weight bytes of what was quantized, before and after.
  uint64_t before = 0, after = 0;
  for (const std::string &name : quantized.names()) {
    const ckpt::TensorInfo *q = quantized.find(name);
    if (q->dtype != ckpt::DType::I8)
      continue;
    const ckpt::TensorInfo *src = original.resolve(name);
    before += src ? src->nbytes : 0;
    after += q->nbytes + quantized.find(ckpt::int8ScaleName(name))->nbytes;
  }

  MLIRContext context;
  // Errors are one line (plus the source excerpt), not the offending op.
  context.printOpOnDiagnostic(false);
  mlir::jamba::loadImportDialects(&context);
  mlir::jamba::GenerateOptions options;
  options.promptIds = prompt;
  options.steps = steps;
  FailureOr<mlir::jamba::Generation> ref = run(context, original, options);
  if (failed(ref))
    return 1;
  // The quantized model reads the same tokens: prompt + greedy ids.
  mlir::jamba::GenerateOptions forced;
  forced.promptIds = prompt;
  forced.promptIds.insert(forced.promptIds.end(), ref->ids.begin(),
                          ref->ids.end());
  FailureOr<mlir::jamba::Generation> test = run(context, quantized, forced);
  if (failed(test))
    return 1;
  // ...and generates on its own, to see where greedy decoding diverges.
  FailureOr<mlir::jamba::Generation> free = run(context, quantized, options);
  if (failed(free))
    return 1;

  const int64_t vocab = ref->vocab, p = prompt.size();
  llvm::outs() << llvm::format(
      "checkpoint %s: %s experts quantized in %.2f s; expert weight bytes "
      "%llu -> %llu (%.2fx smaller)\n",
      checkpointDir.c_str(), denseMlp ? "MoE and dense-MLP" : "MoE",
      quantizeSeconds, (unsigned long long)before, (unsigned long long)after,
      after ? double(before) / double(after) : 0.0);
  printComparison("all positions", ::jamba::ref::compareLogits(
                                       test->logits.data(), ref->logits.data(),
                                       ref->rows, vocab));
  printComparison("prompt positions",
                  ::jamba::ref::compareLogits(test->logits.data(),
                                              ref->logits.data(), p, vocab));
  // Rows p-1 .. p+n-2 predict the n greedy tokens.
  printComparison("greedy positions",
                  ::jamba::ref::compareLogits(
                      test->logits.data() + (p - 1) * vocab,
                      ref->logits.data() + (p - 1) * vocab, steps, vocab));
  // Where top-1 differs, how close the reference's own choice was: the
  // reference's logit gap between its top-1 and the quantized model's top-1.
  for (int64_t r = 0; r < ref->rows; ++r) {
    const float *a = test->logits.data() + r * vocab,
                *b = ref->logits.data() + r * vocab;
    int64_t ia = ::jamba::ref::argmax(a, vocab),
            ib = ::jamba::ref::argmax(b, vocab);
    if (ia != ib)
      llvm::outs() << llvm::format(
          "  position %lld: reference top-1 %lld, quantized top-1 %lld; "
          "reference gap between them %.3e (logit scale %.3e)\n",
          (long long)r, (long long)ib, (long long)ia, b[ib] - b[ia],
          std::abs(b[ib]));
  }
  int64_t same = 0;
  while (same < steps && free->ids[same] == ref->ids[same])
    ++same;
  llvm::outs() << "free-running greedy ids identical for the first " << same
               << " of " << steps << " tokens\n";
  if (outDir.empty())
    llvm::sys::fs::remove_directories(qDir);
  return 0;
}

int main(int argc, char **argv) {
  int rc = run(argc, argv);
  if (std::string error = ::jamba::tools::llvmStdoutError(); !error.empty())
    return fail(error);
  return rc;
}

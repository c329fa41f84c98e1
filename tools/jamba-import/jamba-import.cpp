//===- jamba-import.cpp - Checkpoint or config to jamba IR ----------------===//
//
// Part of jamba-mlir. `jamba-import CKPT_DIR|config.json -o model.mlir`
// builds the whole model as `jamba` IR from its config.json. With a
// checkpoint directory, every weight argument is also checked against the
// checkpoint's tensors (names and shapes) without reading their data.
//
//===----------------------------------------------------------------------===//

#include "jamba/Checkpoint/Checkpoint.h"
#include "jamba/Import/Importer.h"
#include "jamba/Pipelines/Pipelines.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/ToolOutputFile.h"

#include <chrono>

using namespace mlir;
namespace cl = llvm::cl;

static cl::opt<std::string>
    inputPath(cl::Positional, cl::Required,
              cl::desc("<checkpoint dir | config.json>"));
static cl::opt<std::string> outputPath("o", cl::desc("Output .mlir file"),
                                       cl::value_desc("file"), cl::init("-"));
static cl::opt<std::string>
    elementType("dtype",
                cl::desc("Element type of activations and weights: "
                         "f32, f64, bf16 or f16"),
                cl::init("f32"));
static cl::opt<std::string> weightType(
    "weight-dtype",
    cl::desc("Element type of the float weights when it differs from "
             "--dtype (bf16 with --dtype f32: bf16 weights, f32 compute)"),
    cl::init(""));
static cl::opt<int64_t>
    logitsToKeep("prefill-logits-to-keep",
                 cl::desc("Positions whose logits @prefill returns (0 = all)"),
                 cl::init(0));
static cl::opt<bool> timing("time", cl::desc("Print the import time"),
                            cl::init(false));

static int fail(const std::string &message) {
  llvm::errs() << "jamba-import: error: " << message << "\n";
  return 1;
}

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  llvm::setBugReportMsg("jamba-import crashed: please report it to the "
                        "jamba-mlir issue tracker with the command line.\n");
  cl::ParseCommandLineOptions(argc, argv, "jamba-mlir checkpoint importer\n");
  auto start = std::chrono::steady_clock::now();

  std::unique_ptr<::jamba::ckpt::Checkpoint> checkpoint;
  ::jamba::ckpt::JambaConfig config;
  if (llvm::sys::fs::is_directory(inputPath)) {
    auto opened = ::jamba::ckpt::Checkpoint::open(inputPath);
    if (!opened.ok())
      return fail(opened.status().message());
    checkpoint = std::move(*opened);
    config = checkpoint->config();
  } else {
    auto loaded = ::jamba::ckpt::loadConfig(inputPath);
    if (!loaded.ok())
      return fail(loaded.status().message());
    config = *loaded;
  }

  MLIRContext context;
  // Errors are one line (plus the source excerpt), not the offending op.
  context.printOpOnDiagnostic(false);
  mlir::jamba::ImportOptions options;
  options.elementType = elementType;
  options.weightElementType = weightType;
  options.prefillLogitsToKeep = logitsToKeep;
  auto module = mlir::jamba::importModelForCheckpoint(
      &context, config, options,
      FileLineColLoc::get(&context, inputPath, 0, 0));
  if (failed(module))
    return 1;

  // With a checkpoint, every weight must exist with the imported shape.
  if (checkpoint) {
    auto prefill = (*module)->lookupSymbol<func::FuncOp>("prefill");
    for (unsigned i = 0; i < prefill.getNumArguments(); ++i) {
      auto name =
          prefill.getArgAttrOfType<StringAttr>(i, mlir::jamba::kWeightAttrName);
      if (!name)
        continue;
      auto type = cast<RankedTensorType>(prefill.getArgumentTypes()[i]);
      ::jamba::ckpt::Status status = checkpoint->checkWeight(
          name.str(), std::vector<int64_t>(type.getShape()));
      if (!status.ok())
        return fail(status.message());
    }
  }

  std::string error;
  auto output = openOutputFile(outputPath, &error);
  if (!output)
    return fail(error);
  (*module)->print(output->os());
  output->os() << "\n";
  // A write error (a full disk) shows on closing; unreported, the stream's
  // destructor would abort without naming the file.
  output->os().close();
  if (output->os().has_error()) {
    std::string why = output->os().error().message();
    output->os().clear_error();
    return fail(outputPath + ": cannot write: " + why);
  }
  output->keep();
  if (timing)
    llvm::errs() << llvm::format(
        "jamba-import: %.3f s (read config, build, verify and print)\n",
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count());
  return 0;
}

//===- jamba-compare-logits.cpp - Compare two logits .npy files -----------===//
//
// Part of jamba-mlir.
//   jamba-compare-logits TEST.npy REFERENCE.npy [--tolerance T]
// compares logits [rows, vocab] written by `jamba-run --logits-out` and
// `jamba-interpret --logits-out` (float32 .npy): per row max|test - ref| /
// max|ref| (max and mean over rows), top-1 agreement and KL divergence. With
// --tolerance, exits 1 when the max relative error exceeds it. A missing or
// malformed file, or shapes that differ, is one error line and exit 1.
//
//===----------------------------------------------------------------------===//

#include "jamba/Checkpoint/Npy.h"
#include "jamba/Reference/Compare.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/raw_ostream.h"

namespace cl = llvm::cl;
namespace ckpt = ::jamba::ckpt;

static cl::opt<std::string> testPath(cl::Positional, cl::Required,
                                     cl::desc("<test.npy>"));
static cl::opt<std::string> refPath(cl::Positional, cl::Required,
                                    cl::desc("<reference.npy>"));
static cl::opt<double>
    tolerance("tolerance",
              cl::desc("Fail (exit 1) when the max relative error exceeds "
                       "this (negative: report only)"),
              cl::init(-1.0));

static int fail(const std::string &message) {
  llvm::errs() << "jamba-compare-logits: error: " << message << "\n";
  return 1;
}

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::ParseCommandLineOptions(argc, argv,
                              "Compare two logits .npy files [rows, vocab]\n");
  std::vector<int64_t> testShape, refShape;
  std::vector<float> test, ref;
  if (ckpt::Status st = ckpt::readNpyF32(testPath, testShape, test); !st.ok())
    return fail(st.message());
  if (ckpt::Status st = ckpt::readNpyF32(refPath, refShape, ref); !st.ok())
    return fail(st.message());
  auto shapeText = [](const std::vector<int64_t> &shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i)
      s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
  };
  if (testShape.size() != 2 || testShape != refShape)
    return fail("expected two logits arrays of the same shape [rows, vocab], "
                "got " +
                shapeText(testShape) + " and " + shapeText(refShape));
  if (testShape[0] == 0 || testShape[1] == 0)
    return fail("the logits are empty: " + shapeText(testShape));
  ::jamba::ref::LogitsComparison c = ::jamba::ref::compareLogits(
      test.data(), ref.data(), testShape[0], testShape[1]);
  llvm::outs() << llvm::format(
      "rows %lld, vocab %lld: max rel err %.3e, mean %.3e, top-1 %lld/%lld, "
      "KL mean %.3e max %.3e\n",
      static_cast<long long>(c.rows), static_cast<long long>(testShape[1]),
      c.maxRelErr, c.meanRelErr, static_cast<long long>(c.top1Agree),
      static_cast<long long>(c.rows), c.meanKL, c.maxKL);
  if (tolerance >= 0 && !(c.maxRelErr <= tolerance)) {
    llvm::errs() << llvm::format(
        "jamba-compare-logits: max rel err %.3e exceeds the tolerance %.3e\n",
        c.maxRelErr, double(tolerance));
    return 1;
  }
  return 0;
}

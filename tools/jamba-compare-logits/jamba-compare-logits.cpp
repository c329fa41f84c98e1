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
#include "jamba/Checkpoint/TokenIds.h"
#include "jamba/Reference/Compare.h"

#include "../common/LlvmStdoutCheck.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <string>

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

static cl::opt<std::string> chosenIds(
    "chosen-ids",
    cl::desc("Comma-separated ids a greedy test run chose, the first from "
             "row --ids-from-row of the logits: each must be the reference "
             "row's argmax or a near-tie within the tolerance (needs "
             "--tolerance and --ids-from-row)"),
    cl::value_desc("ids"));
static cl::opt<int64_t>
    idsFromRow("ids-from-row",
               cl::desc("The row the first of --chosen-ids was chosen from"),
               cl::init(-1));

static cl::opt<std::string> routingMargins(
    "routing-margins",
    cl::desc("The reference's routing margins per row (jamba-interpret "
             "--routing-margins-out). A row beyond the tolerance, or whose "
             "chosen id is not the argmax or a near-tie, is a routing swap "
             "when its margin or the previous row's is within "
             "--routing-tolerance: a router's top-k at a near-tie, which "
             "rounding may decide the other way. From there on the test "
             "follows another valid trajectory (the recurrent state carries "
             "the swap), and the rows after it are reported, not compared"),
    cl::value_desc("file.npy"));
static cl::opt<double> routingTolerance(
    "routing-tolerance",
    cl::desc("The routing margin at or below which a router's top-k counts "
             "as a near-tie (with --routing-margins)"),
    cl::init(-1.0));

static int fail(const std::string &message) {
  llvm::errs() << "jamba-compare-logits: error: " << message << "\n";
  return 1;
}

/// The tool; main checks that what it printed arrived.
static int run(int argc, char **argv) {
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
  // A reference that is not finite cannot judge anything (a test value that
  // is not is an infinite error: rowRelErr).
  for (size_t i = 0; i < ref.size(); ++i)
    if (!std::isfinite(ref[i]))
      return fail(std::string(refPath) + ": the reference logit at row " +
                  std::to_string(i / testShape[1]) + ", id " +
                  std::to_string(i % testShape[1]) + " is " +
                  (std::isnan(ref[i]) ? "NaN" : "infinite") +
                  " (a reference must be finite)");
  // The chosen ids, checked before anything is compared.
  std::vector<int64_t> ids;
  if (chosenIds.getNumOccurrences() || idsFromRow.getNumOccurrences()) {
    if (!chosenIds.getNumOccurrences() || !idsFromRow.getNumOccurrences() ||
        tolerance < 0)
      return fail("--chosen-ids, --ids-from-row and --tolerance go together");
    auto parsed = ckpt::parseTokenIds(chosenIds);
    if (!parsed.ok())
      return fail("--chosen-ids: " + parsed.status().message());
    ids = std::move(*parsed);
    if (idsFromRow < 0 ||
        idsFromRow + static_cast<int64_t>(ids.size()) > testShape[0])
      return fail("--ids-from-row " + std::to_string(idsFromRow) + " with " +
                  std::to_string(ids.size()) + " ids needs rows up to " +
                  std::to_string(idsFromRow + ids.size()) +
                  ", the logits have " + std::to_string(testShape[0]));
    for (int64_t id : ids)
      if (id >= testShape[1])
        return fail("--chosen-ids: id " + std::to_string(id) +
                    " is outside the vocabulary of " +
                    std::to_string(testShape[1]));
  }
  const int64_t rows = testShape[0], vocab = testShape[1];
  // The reference's routing margins, one per row.
  std::vector<float> margins;
  if (!routingMargins.empty()) {
    if (tolerance < 0 || routingTolerance < 0)
      return fail("--routing-margins needs --tolerance and "
                  "--routing-tolerance");
    std::vector<int64_t> shape;
    if (ckpt::Status st = ckpt::readNpyF32(routingMargins, shape, margins);
        !st.ok())
      return fail(st.message());
    if (shape != std::vector<int64_t>{rows})
      return fail("--routing-margins: expected [" + std::to_string(rows) +
                  "] (one per row), got " + shapeText(shape));
  }
  ::jamba::ref::LogitsComparison c =
      ::jamba::ref::compareLogits(test.data(), ref.data(), rows, vocab);
  llvm::outs() << llvm::format(
      "rows %lld, vocab %lld: max rel err %.3e, mean %.3e, top-1 %lld/%lld, "
      "KL mean %.3e max %.3e\n",
      static_cast<long long>(c.rows), static_cast<long long>(vocab),
      c.maxRelErr, c.meanRelErr, static_cast<long long>(c.top1Agree),
      static_cast<long long>(c.rows), c.meanKL, c.maxKL);

  if (tolerance < 0)
    return 0;
  ::jamba::ref::RunCheckOptions options;
  options.tolerance = tolerance;
  options.ids = ids.data();
  options.numIds = static_cast<int64_t>(ids.size());
  options.idsFromRow = idsFromRow;
  options.routingMargins = margins.empty() ? nullptr : margins.data();
  options.routingTolerance = routingTolerance;
  ::jamba::ref::RunCheck run =
      ::jamba::ref::checkRun(test.data(), ref.data(), rows, vocab, options);
  if (!ids.empty())
    llvm::outs() << llvm::format(
        "ids %lld/%lld agree (%lld argmax, %lld near-ties)\n",
        static_cast<long long>(run.ids.argmax + run.ids.nearTies),
        static_cast<long long>(run.ids.checked),
        static_cast<long long>(run.ids.argmax),
        static_cast<long long>(run.ids.nearTies));
  if (run.swapRow >= 0)
    llvm::outs() << llvm::format(
        "routing swap at row %lld (a router's top-k within %.3g of a tie): "
        "rows %lld-%lld follow another trajectory, not compared (max rel err "
        "%.3e); max rel err before %.3e\n",
        static_cast<long long>(run.swapRow), double(routingTolerance),
        static_cast<long long>(run.swapRow), static_cast<long long>(rows - 1),
        run.maxFromSwap, run.maxCompared);
  if (int64_t j = run.ids.firstMismatch; j >= 0) {
    llvm::errs() << llvm::format(
        "jamba-compare-logits: id %lld (row %lld): the test chose %lld, the "
        "reference's argmax is %lld, %.4g above it (a near-tie is within "
        "%.4g)\n",
        static_cast<long long>(j), static_cast<long long>(idsFromRow + j),
        static_cast<long long>(ids[j]),
        static_cast<long long>(run.ids.mismatchArgmax), run.ids.mismatchGap,
        run.ids.mismatchAllowed);
    return 1;
  }
  if (run.firstBadRow >= 0) {
    llvm::errs() << llvm::format(
        "jamba-compare-logits: max rel err %.3e exceeds the tolerance %.3e "
        "(first at row %lld%s)\n",
        run.maxCompared, double(tolerance),
        static_cast<long long>(run.firstBadRow),
        margins.empty() ? "" : ", not at a routing near-tie");
    return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  int rc = run(argc, argv);
  if (std::string error = ::jamba::tools::llvmStdoutError(); !error.empty())
    return fail(error);
  return rc;
}

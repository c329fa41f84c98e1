//===- QuantizedModelTest.cpp - ExpertsInt8 preserves meaning -------------===//
//
// Part of jamba-mlir. The ExpertsInt8 pipeline's IR (int8 expert GEMMs with
// the dequantization fused in) run on a quantized checkpoint must compute
// what the unquantized IR computes on a checkpoint whose expert weights are
// the dequantized int8 values: the fusion preserves meaning.
//
//===----------------------------------------------------------------------===//

#include "jamba/Checkpoint/Checkpoint.h"
#include "jamba/Checkpoint/Quantize.h"
#include "jamba/Checkpoint/RandomCheckpoint.h"
#include "jamba/Checkpoint/SafeTensors.h"
#include "jamba/Dialect/Jamba/IR/JambaOps.h"
#include "jamba/Pipelines/Pipelines.h"
#include "jamba/Reference/Compare.h"
#include "jamba/Reference/Generate.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

using namespace mlir;
using namespace mlir::jamba;
namespace ckpt = ::jamba::ckpt;
namespace fs = std::filesystem;

namespace {

class QuantizedModelTest : public ::testing::TestWithParam<bool> {
protected:
  void SetUp() override {
    std::string config =
        std::string(JAMBA_SHARED_MODELS_DIR) + "/jamba-tiny.json";
    if (!fs::exists(config))
      GTEST_SKIP() << "shared models not found at " << JAMBA_SHARED_MODELS_DIR;
    auto loaded = ckpt::loadConfig(config);
    ASSERT_TRUE(loaded.ok()) << loaded.status().message();
    tiny = *loaded;
    dir = fs::temp_directory_path() /
          ("jamba-quant-test-" + std::to_string(::getpid()) + "-" +
           std::to_string(GetParam()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    loadImportDialects(&context);
  }
  void TearDown() override {
    if (!dir.empty())
      fs::remove_all(dir);
  }

  std::unique_ptr<ckpt::Checkpoint> open(const fs::path &path) {
    auto opened = ckpt::Checkpoint::open(path.string());
    EXPECT_TRUE(opened.ok()) << opened.status().message();
    return opened.ok() ? std::move(*opened) : nullptr;
  }

  template <typename T>
  FailureOr<Generation> run(const ckpt::Checkpoint &checkpoint,
                            const GenerateOptions &options,
                            OwningOpRef<ModuleOp> *keep = nullptr) {
    auto module =
        importModelForCheckpoint(&context, checkpoint.config(), ImportOptions(),
                                 UnknownLoc::get(&context));
    if (failed(module))
      return failure();
    FailureOr<Generation> gen =
        generateGreedy<T>(**module, checkpoint, options);
    if (keep)
      *keep = std::move(*module);
    return gen;
  }

  /// Writes `dest`: a float checkpoint equal to the quantized `q` with every
  /// int8 weight replaced by q * scale and the scales dropped.
  void writeDequantized(const ckpt::Checkpoint &q, const fs::path &dest) {
    fs::create_directories(dest);
    ckpt::JambaConfig config = q.config();
    config.quantMethod.reset();
    config.quantDenseMlp = false;
    std::ofstream(dest / "config.json") << ckpt::configToJson(config);
    ckpt::SafeTensorsWriter writer;
    for (const std::string &name : q.names()) {
      const ckpt::TensorInfo *t = q.find(name);
      if (name.size() > 6 && name.compare(name.size() - 6, 6, "_scale") == 0)
        continue;
      if (t->dtype != ckpt::DType::I8) {
        ASSERT_TRUE(
            writer
                .add(name, t->dtype, t->shape,
                     std::string_view(reinterpret_cast<const char *>(t->data),
                                      t->nbytes))
                .ok());
        continue;
      }
      const ckpt::TensorInfo *s = q.find(ckpt::int8ScaleName(name));
      ASSERT_NE(s, nullptr) << name;
      std::vector<float> scales, values(t->numElements());
      ASSERT_TRUE(ckpt::readAsF32(*s, scales).ok());
      ckpt::dequantizeRowsInt8(reinterpret_cast<const int8_t *>(t->data),
                               scales.data(), t->shape[0], t->shape[1],
                               values.data());
      ASSERT_TRUE(
          writer.addFloats(name, ckpt::DType::F32, t->shape, values).ok());
    }
    ASSERT_TRUE(writer.write((dest / "model.safetensors").string()).ok());
  }

  ckpt::JambaConfig tiny;
  MLIRContext context;
  fs::path dir;
};

TEST_P(QuantizedModelTest, FusedInt8GemmsEqualTheDequantizedModel) {
  const bool denseMlp = GetParam();
  ckpt::RandomCheckpointOptions random;
  random.seed = 21;
  ASSERT_TRUE(
      ckpt::writeRandomCheckpoint(tiny, (dir / "f32").string(), random).ok());
  auto original = open(dir / "f32");
  ASSERT_TRUE(original);
  ckpt::QuantizeOptions qOptions;
  qOptions.denseMlp = denseMlp;
  ASSERT_TRUE(
      ckpt::writeQuantizedCheckpoint(*original, (dir / "q8").string(), qOptions)
          .ok());
  auto quantized = open(dir / "q8");
  ASSERT_TRUE(quantized);
  writeDequantized(*quantized, dir / "deq");
  auto dequantized = open(dir / "deq");
  ASSERT_TRUE(dequantized);

  GenerateOptions options;
  options.promptIds = {1, 17, 42, 7, 99, 3};
  options.steps = 32;
  OwningOpRef<ModuleOp> qModule;
  FailureOr<Generation> q = run<float>(*quantized, options, &qModule);
  FailureOr<Generation> d = run<float>(*dequantized, options);
  ASSERT_TRUE(succeeded(q) && succeeded(d));

  // The quantized IR really runs int8 GEMMs: every expert_gemm (and, with
  // dense-mlp, every MLP linear) reads i8 weights with scales, no dequant
  // is left, and MoE layers are decomposed.
  int64_t int8Gemms = 0, dequants = 0, moes = 0;
  qModule->walk([&](Operation *op) {
    if (auto g = dyn_cast<ExpertGemmOp>(op))
      int8Gemms += g.getScale() != nullptr;
    if (auto l = dyn_cast<LinearOp>(op))
      int8Gemms += l.getScale() != nullptr;
    dequants += isa<DequantOp>(op);
    moes += isa<MoEOp>(op);
  });
  // Tiny: 3 MoE layers x 3 expert GEMMs (+ 3 dense layers x 3 linears), in
  // both entry points.
  EXPECT_EQ(int8Gemms, 2 * (9 + (denseMlp ? 9 : 0)));
  EXPECT_EQ(dequants, 0);
  EXPECT_EQ(moes, 0);

  EXPECT_EQ(q->ids, d->ids);
  ::jamba::ref::LogitsComparison c = ::jamba::ref::compareLogits(
      q->logits.data(), d->logits.data(), d->rows, d->vocab);
  EXPECT_LE(c.maxRelErr, 1e-5);
  EXPECT_EQ(c.top1Agree, d->rows);

  // And quantization did change the model: the original differs.
  FailureOr<Generation> f = run<float>(*original, options);
  ASSERT_TRUE(succeeded(f));
  ::jamba::ref::LogitsComparison vsOriginal = ::jamba::ref::compareLogits(
      q->logits.data(), f->logits.data(), f->rows, f->vocab);
  EXPECT_GT(vsOriginal.maxRelErr, 1e-5);
}

INSTANTIATE_TEST_SUITE_P(ExpertsOnlyAndDenseMlp, QuantizedModelTest,
                         ::testing::Bool());

} // namespace

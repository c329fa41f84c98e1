//===- ModelTest.cpp - Whole-model tests of the reference interpreter -----===//
//
// Part of jamba-mlir. Imports models from the shared configurations, writes
// seeded random checkpoints, and checks whole-model properties with values
// computed independently of the interpreter.
//
//===----------------------------------------------------------------------===//

#include "jamba/Checkpoint/Checkpoint.h"
#include "jamba/Checkpoint/RandomCheckpoint.h"
#include "jamba/Checkpoint/SafeTensors.h"
#include "jamba/Dialect/Jamba/IR/JambaOps.h"
#include "jamba/Import/Importer.h"
#include "jamba/Reference/Generate.h"
#include "jamba/Reference/Kernels.h"
#include "jamba/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>

using namespace mlir;
using namespace mlir::jamba;
namespace ckpt = ::jamba::ckpt;
namespace fs = std::filesystem;

namespace {

std::string sharedModel(const std::string &file) {
  return std::string(JAMBA_SHARED_MODELS_DIR) + "/" + file;
}

class ReferenceModelTest : public ::testing::Test {
protected:
  void SetUp() override {
    if (!fs::exists(sharedModel("jamba-tiny.json")))
      GTEST_SKIP() << "shared models not found at " << JAMBA_SHARED_MODELS_DIR;
    dir = fs::temp_directory_path() /
          ("jamba-ref-test-" + std::to_string(::getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  void TearDown() override {
    if (!dir.empty())
      fs::remove_all(dir);
  }

  ckpt::JambaConfig loadShared(const std::string &file) {
    auto config = ckpt::loadConfig(sharedModel(file));
    EXPECT_TRUE(config.ok()) << config.status().message();
    return *config;
  }

  /// Writes a seeded random checkpoint of `config`, then rewrites the tensors
  /// for which `zero(name)` is true as zeros.
  std::unique_ptr<ckpt::Checkpoint>
  makeCheckpoint(const ckpt::JambaConfig &config, uint64_t seed,
                 const std::function<bool(const std::string &)> &zero = {}) {
    ckpt::RandomCheckpointOptions options;
    options.seed = seed;
    ckpt::Status status =
        ckpt::writeRandomCheckpoint(config, dir.string(), options);
    EXPECT_TRUE(status.ok()) << status.message();
    if (zero) {
      std::string path = (dir / "model.safetensors").string();
      auto file = ckpt::SafeTensorsFile::open(path);
      EXPECT_TRUE(file.ok()) << file.status().message();
      ckpt::SafeTensorsWriter writer;
      for (const ckpt::TensorInfo &t : (*file)->tensors()) {
        std::string bytes(reinterpret_cast<const char *>(t.data), t.nbytes);
        if (zero(t.name))
          bytes.assign(t.nbytes, '\0');
        EXPECT_TRUE(writer.add(t.name, t.dtype, t.shape, bytes).ok());
      }
      file->reset();
      EXPECT_TRUE(writer.write(path).ok());
    }
    auto opened = ckpt::Checkpoint::open(dir.string());
    EXPECT_TRUE(opened.ok()) << opened.status().message();
    return opened.ok() ? std::move(*opened) : nullptr;
  }

  OwningOpRef<ModuleOp> import(const ckpt::JambaConfig &config) {
    auto module = importJambaModel(&context, config, ImportOptions(),
                                   UnknownLoc::get(&context));
    EXPECT_TRUE(succeeded(module));
    return succeeded(module) ? std::move(*module) : OwningOpRef<ModuleOp>();
  }

  MLIRContext context;
  fs::path dir;
};

template <typename OpT> int64_t countOps(ModuleOp module, StringRef entry) {
  int64_t n = 0;
  module.lookupSymbol<func::FuncOp>(entry).walk([&](OpT) { ++n; });
  return n;
}

TEST_F(ReferenceModelTest, PublishedShapesImportAndVerify) {
  // jamba-1.5-mini: 4 attention + 28 Mamba layers, 16 MoE + 16 dense MLPs.
  OwningOpRef<ModuleOp> mini = import(loadShared("jamba-1.5-mini.json"));
  ASSERT_TRUE(mini);
  EXPECT_EQ(countOps<AttentionOp>(*mini, "prefill"), 4);
  EXPECT_EQ(countOps<MambaMixerOp>(*mini, "prefill"), 28);
  EXPECT_EQ(countOps<MoEOp>(*mini, "prefill"), 16);
  EXPECT_EQ(countOps<MLPOp>(*mini, "decode"), 16);
  // jamba-1.5-large: 72 layers, 9 attention, 36 MoE.
  OwningOpRef<ModuleOp> large = import(loadShared("jamba-1.5-large.json"));
  ASSERT_TRUE(large);
  EXPECT_EQ(countOps<AttentionOp>(*large, "decode"), 9);
  EXPECT_EQ(countOps<MambaMixerOp>(*large, "decode"), 63);
  EXPECT_EQ(countOps<MoEOp>(*large, "prefill"), 36);
}

TEST_F(ReferenceModelTest, ZeroedMixersAndFFNsGiveLmHeadOfNormedEmbedding) {
  ckpt::JambaConfig config = loadShared("jamba-tiny.json");
  // Zero every mixer output projection and every FFN down projection: each
  // layer then adds nothing to the residual stream.
  auto checkpoint = makeCheckpoint(config, 3, [](const std::string &name) {
    return name.find("o_proj") != std::string::npos ||
           name.find("out_proj") != std::string::npos ||
           name.find("down_proj") != std::string::npos;
  });
  ASSERT_TRUE(checkpoint);
  OwningOpRef<ModuleOp> module = import(config);
  GenerateOptions options;
  options.promptIds = {1, 17, 42, 99};
  options.steps = 0;
  FailureOr<Generation> gen =
      generateGreedy<double>(*module, *checkpoint, options);
  ASSERT_TRUE(succeeded(gen));
  ASSERT_EQ(gen->rows, 4);

  const int64_t hidden = config.hiddenSize, vocab = config.vocabSize;
  std::vector<double> embed, norm, head;
  ASSERT_TRUE(
      checkpoint
          ->loadWeightF64("model.embed_tokens.weight", {vocab, hidden}, embed)
          .ok());
  ASSERT_TRUE(
      checkpoint->loadWeightF64("model.final_layernorm.weight", {hidden}, norm)
          .ok());
  ASSERT_TRUE(
      checkpoint->loadWeightF64("lm_head.weight", {vocab, hidden}, head).ok());
  for (int64_t p = 0; p < 4; ++p) {
    const double *e = &embed[options.promptIds[p] * hidden];
    double ms = 0;
    for (int64_t i = 0; i < hidden; ++i)
      ms += e[i] * e[i];
    double inv = 1 / std::sqrt(ms / hidden + config.rmsNormEps);
    for (int64_t v = 0; v < vocab; ++v) {
      double logit = 0;
      for (int64_t i = 0; i < hidden; ++i)
        logit += head[v * hidden + i] * norm[i] * e[i] * inv;
      EXPECT_NEAR(gen->logits[p * vocab + v], logit,
                  1e-5 * std::max(1.0, std::abs(logit)));
    }
  }
}

TEST_F(ReferenceModelTest, CachedDecodeEqualsFullRecompute) {
  ckpt::JambaConfig config = loadShared("jamba-tiny.json");
  auto checkpoint = makeCheckpoint(config, 5);
  ASSERT_TRUE(checkpoint);
  OwningOpRef<ModuleOp> module = import(config);

  GenerateOptions options;
  options.promptIds = {1, 5, 9, 77, 3};
  options.steps = 6;
  FailureOr<Generation> cached =
      generateGreedy<double>(*module, *checkpoint, options);
  ASSERT_TRUE(succeeded(cached));
  ASSERT_EQ(cached->rows, 11);
  ASSERT_EQ(cached->ids.size(), 6u);

  // One prefill over the prompt and every fed id recomputes all positions.
  GenerateOptions full;
  full.promptIds = options.promptIds;
  full.promptIds.insert(full.promptIds.end(), cached->ids.begin(),
                        cached->ids.end());
  FailureOr<Generation> recomputed =
      generateGreedy<double>(*module, *checkpoint, full);
  ASSERT_TRUE(succeeded(recomputed));
  ASSERT_EQ(recomputed->rows, 11);
  double maxErr = 0, maxAbs = 0;
  for (size_t i = 0; i < cached->logits.size(); ++i) {
    maxErr = std::max(
        maxErr, double(std::abs(cached->logits[i] - recomputed->logits[i])));
    maxAbs = std::max(maxAbs, double(std::abs(recomputed->logits[i])));
  }
  // Logits are stored as float32: agreement to float rounding.
  EXPECT_LE(maxErr / maxAbs, 1e-6);
  // The logits are not trivially equal across positions.
  EXPECT_NE(cached->logits[0], cached->logits[config.vocabSize]);
}

TEST_F(ReferenceModelTest, FloatAgreesWithDouble) {
  ckpt::JambaConfig config = loadShared("jamba-tiny.json");
  auto checkpoint = makeCheckpoint(config, 8);
  ASSERT_TRUE(checkpoint);
  OwningOpRef<ModuleOp> module = import(config);
  GenerateOptions options;
  options.promptIds = {2, 4, 8, 16, 32, 64};
  options.steps = 8;
  auto f32 = generateGreedy<float>(*module, *checkpoint, options);
  auto f64 = generateGreedy<double>(*module, *checkpoint, options);
  ASSERT_TRUE(succeeded(f32) && succeeded(f64));
  EXPECT_EQ(f32->ids, f64->ids);
  for (int64_t r = 0; r < f64->rows; ++r) {
    double maxErr = 0, maxAbs = 0;
    for (int64_t v = 0; v < f64->vocab; ++v) {
      int64_t i = r * f64->vocab + v;
      maxErr =
          std::max(maxErr, double(std::abs(f32->logits[i] - f64->logits[i])));
      maxAbs = std::max(maxAbs, double(std::abs(f64->logits[i])));
    }
    EXPECT_LE(maxErr / maxAbs, 1e-4) << "row " << r;
  }
}

TEST_F(ReferenceModelTest, DecomposedModelEqualsLayerLevelModel) {
  // jamba-decompose-layers rewrites every layer op into primitives; the
  // interpreter runs both levels, so the decomposition is checked on the
  // whole model, prefill and decode with state.
  ckpt::JambaConfig config = loadShared("jamba-tiny.json");
  auto checkpoint = makeCheckpoint(config, 13);
  ASSERT_TRUE(checkpoint);
  OwningOpRef<ModuleOp> layered = import(config);
  OwningOpRef<ModuleOp> decomposed = import(config);
  PassManager pm(&context, ModuleOp::getOperationName());
  pm.addNestedPass<func::FuncOp>(createJambaDecomposeLayersPass());
  ASSERT_TRUE(succeeded(pm.run(*decomposed)));
  int64_t layerOps = 0;
  decomposed->walk([&](Operation *op) {
    layerOps += isa<MambaMixerOp, AttentionOp, MoEOp, MLPOp>(op);
  });
  EXPECT_EQ(layerOps, 0);
  EXPECT_GT(countOps<SelectiveScanOp>(*decomposed, "decode"), 0);
  EXPECT_GT(countOps<CachedAttentionOp>(*decomposed, "prefill"), 0);

  GenerateOptions options;
  options.promptIds = {3, 1, 4, 1, 5, 9, 2, 6};
  options.steps = 12;
  auto a = generateGreedy<double>(*layered, *checkpoint, options);
  auto b = generateGreedy<double>(*decomposed, *checkpoint, options);
  ASSERT_TRUE(succeeded(a) && succeeded(b));
  EXPECT_EQ(a->ids, b->ids);
  ASSERT_EQ(a->logits.size(), b->logits.size());
  for (size_t i = 0; i < a->logits.size(); ++i)
    EXPECT_NEAR(a->logits[i], b->logits[i],
                1e-6 * std::abs(a->logits[i]) + 1e-9)
        << "logit " << i;
}

TEST_F(ReferenceModelTest, DecomposedLastLogitsOnlyPrefill) {
  // With num_logits_to_keep = 1 and a dynamic sequence, the decomposed
  // lm_head slices the last position with index arithmetic.
  ckpt::JambaConfig config = loadShared("jamba-tiny.json");
  auto checkpoint = makeCheckpoint(config, 14);
  ASSERT_TRUE(checkpoint);
  ImportOptions lastOnly;
  lastOnly.prefillLogitsToKeep = 1;
  auto module =
      importJambaModel(&context, config, lastOnly, UnknownLoc::get(&context));
  ASSERT_TRUE(succeeded(module));
  PassManager pm(&context, ModuleOp::getOperationName());
  pm.addNestedPass<func::FuncOp>(createJambaDecomposeLayersPass());
  ASSERT_TRUE(succeeded(pm.run(**module)));
  OwningOpRef<ModuleOp> full = import(config);
  GenerateOptions options;
  options.promptIds = {5, 6, 7, 8};
  options.steps = 3;
  auto a = generateGreedy<double>(**module, *checkpoint, options);
  auto b = generateGreedy<double>(*full, *checkpoint, options);
  ASSERT_TRUE(succeeded(a) && succeeded(b));
  // One prefill row (the last prompt position), then the decode rows.
  ASSERT_EQ(a->rows, 1 + 3);
  EXPECT_EQ(a->ids, b->ids);
  for (int64_t v = 0; v < a->vocab; ++v)
    EXPECT_NEAR(a->logits[v], b->logits[3 * b->vocab + v],
                1e-6 * std::abs(b->logits[3 * b->vocab + v]) + 1e-9);
}

TEST_F(ReferenceModelTest, OutOfRangeTokenIdIsAnError) {
  ckpt::JambaConfig config = loadShared("jamba-tiny.json");
  auto checkpoint = makeCheckpoint(config, 1);
  ASSERT_TRUE(checkpoint);
  OwningOpRef<ModuleOp> module = import(config);
  std::string message;
  ScopedDiagnosticHandler handler(&context, [&](Diagnostic &diag) {
    message = diag.str();
    return success();
  });
  GenerateOptions options;
  options.promptIds = {1, config.vocabSize};
  EXPECT_TRUE(failed(generateGreedy<float>(*module, *checkpoint, options)));
  EXPECT_NE(message.find("token id value 128 at flat index 1 is outside [0, "
                         "128)"),
            std::string::npos)
      << message;
}

TEST_F(ReferenceModelTest, MissingTensorIsAnErrorNamingIt) {
  ckpt::JambaConfig config = loadShared("jamba-tiny.json");
  auto checkpoint = makeCheckpoint(config, 1);
  ASSERT_TRUE(checkpoint);
  // A module whose config has a bias the checkpoint does not.
  ckpt::JambaConfig withBias = config;
  withBias.mambaProjBias = true;
  OwningOpRef<ModuleOp> module = import(withBias);
  std::string message;
  ScopedDiagnosticHandler handler(&context, [&](Diagnostic &diag) {
    message = diag.str();
    return success();
  });
  GenerateOptions options;
  options.promptIds = {1, 2};
  EXPECT_TRUE(failed(generateGreedy<float>(*module, *checkpoint, options)));
  EXPECT_NE(message.find("model.layers.0.mamba.in_proj.bias"),
            std::string::npos)
      << message;
}

} // namespace

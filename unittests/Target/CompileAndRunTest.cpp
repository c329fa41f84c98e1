//===- CompileAndRunTest.cpp - Compiled CPU artifact vs the interpreter ---===//
//
// Part of jamba-mlir. The CPU backend's acceptance test: a seeded checkpoint
// is compiled into an artifact (jamba-compile's library call), the MLIR-free
// runtime executes it, and its logits and greedy ids are compared with the
// reference interpreter's on the same checkpoint (never with another
// backend).
//
//===----------------------------------------------------------------------===//

#include "jamba/Checkpoint/Checkpoint.h"
#include "jamba/Checkpoint/Quantize.h"
#include "jamba/Checkpoint/RandomCheckpoint.h"
#include "jamba/Dialect/Jamba/IR/JambaDialect.h"
#include "jamba/Import/Importer.h"
#include "jamba/Pipelines/Pipelines.h"
#include "jamba/Reference/Compare.h"
#include "jamba/Reference/Generate.h"
#include "jamba/Runtime/Artifact.h"
#include "jamba/Runtime/Executor.h"
#include "jamba/Runtime/Generate.h"
#include "jamba/Target/Compile.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>

using namespace mlir;
namespace ckpt = ::jamba::ckpt;
namespace rt = ::jamba::rt;
namespace fs = std::filesystem;

namespace {

class CompileAndRunTest : public ::testing::Test {
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
          ("jamba-compile-test-" + std::to_string(::getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir);
    DialectRegistry registry;
    registerAllDialects(registry);
    registerAllExtensions(registry);
    context.appendDialectRegistry(registry);
    mlir::jamba::loadImportDialects(&context);
  }
  void TearDown() override {
    if (!dir.empty())
      fs::remove_all(dir);
  }

  std::unique_ptr<ckpt::Checkpoint>
  writeCheckpoint(uint64_t seed, ckpt::DType dtype = ckpt::DType::F32) {
    ckpt::RandomCheckpointOptions options;
    options.seed = seed;
    options.dtype = dtype;
    EXPECT_TRUE(
        ckpt::writeRandomCheckpoint(tiny, (dir / "ckpt").string(), options)
            .ok());
    auto opened = ckpt::Checkpoint::open((dir / "ckpt").string());
    EXPECT_TRUE(opened.ok()) << opened.status().message();
    return opened.ok() ? std::move(*opened) : nullptr;
  }

  /// Greedy ids and logits of every prompt position and decode step, from
  /// the reference interpreter (f32).
  mlir::jamba::Generation interpret(const ckpt::Checkpoint &checkpoint,
                                    const std::vector<int64_t> &prompt,
                                    int64_t steps) {
    auto module = mlir::jamba::importModelForCheckpoint(
        &context, checkpoint.config(), mlir::jamba::ImportOptions(),
        UnknownLoc::get(&context));
    EXPECT_TRUE(succeeded(module));
    mlir::jamba::GenerateOptions options;
    options.promptIds = prompt;
    options.steps = steps;
    auto gen =
        mlir::jamba::generateGreedy<float>(**module, checkpoint, options);
    EXPECT_TRUE(succeeded(gen));
    return succeeded(gen) ? *gen : mlir::jamba::Generation();
  }

  /// Compiles `checkpointDir` and runs the prompts with the runtime.
  rt::GenerationResult
  compileAndRun(const std::string &checkpointDir,
                const std::vector<std::vector<int64_t>> &prompts, int64_t steps,
                const mlir::jamba::CompileOptions &options = {},
                int64_t seq = 0) {
    std::string out = (dir / "artifact").string();
    fs::remove_all(out);
    // Every prompt position's logits, compared with the reference's.
    mlir::jamba::CompileOptions allLogits = options;
    allLogits.prefillAllLogits = true;
    EXPECT_TRUE(succeeded(mlir::jamba::compileCheckpoint(
        &context, checkpointDir, out, allLogits)));
    auto artifact = rt::Artifact::open(out);
    EXPECT_TRUE(artifact.ok()) << artifact.status().message();
    if (!artifact.ok())
      return {};
    rt::SessionOptions session;
    session.batch = prompts.size();
    int64_t longest = 0;
    for (const auto &p : prompts)
      longest = std::max<int64_t>(longest, p.size());
    session.contextLength = longest + steps;
    if (seq)
      session.seq = seq;
    auto executor = rt::CpuExecutor::create(**artifact, session);
    EXPECT_TRUE(executor.ok()) << executor.status().message();
    if (!executor.ok())
      return {};
    rt::GenerateOptions generate;
    generate.maxNewTokens = steps;
    generate.stopOnEos = false;
    generate.recordLogits = true;
    auto result = rt::generate(**executor, prompts, generate);
    EXPECT_TRUE(result.ok()) << result.status().message();
    return result.ok() ? *result : rt::GenerationResult();
  }

  /// Compiled vs reference: identical ids, max relative error <=
  /// `tolerance` (1e-5 for f32 weights).
  void expectAgreement(const rt::SequenceOutput &compiled,
                       const mlir::jamba::Generation &reference,
                       double tolerance = 1e-5) {
    EXPECT_EQ(compiled.ids, reference.ids);
    ASSERT_EQ(compiled.rows, reference.rows);
    ::jamba::ref::LogitsComparison c = ::jamba::ref::compareLogits(
        compiled.logits.data(), reference.logits.data(), reference.rows,
        reference.vocab);
    std::printf("[ compiled ] %lld rows, max rel err %.3e\n",
                static_cast<long long>(reference.rows), c.maxRelErr);
    EXPECT_LE(c.maxRelErr, tolerance);
    EXPECT_EQ(c.top1Agree, reference.rows);
  }

  ckpt::JambaConfig tiny;
  MLIRContext context;
  fs::path dir;
};

TEST_F(CompileAndRunTest, BatchOneMatchesTheInterpreter) {
  auto checkpoint = writeCheckpoint(31);
  ASSERT_TRUE(checkpoint);
  std::vector<int64_t> prompt = {1, 17, 42, 5, 9, 100, 3};
  mlir::jamba::Generation reference = interpret(*checkpoint, prompt, 32);
  rt::GenerationResult compiled =
      compileAndRun((dir / "ckpt").string(), {prompt}, 32);
  ASSERT_EQ(compiled.sequences.size(), 1u);
  expectAgreement(compiled.sequences[0], reference);
}

TEST_F(CompileAndRunTest, FourSequencesOfDifferentLengthsMatchTheInterpreter) {
  auto checkpoint = writeCheckpoint(32);
  ASSERT_TRUE(checkpoint);
  std::vector<std::vector<int64_t>> prompts = {
      {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11},
      {7, 8},
      {100, 50, 25, 12, 6},
      {3, 1, 4}};
  // Prefill in chunks of 4 tokens, so long prompts take several calls.
  rt::GenerationResult compiled = compileAndRun(
      (dir / "ckpt").string(), prompts, 16, mlir::jamba::CompileOptions(), 4);
  ASSERT_EQ(compiled.sequences.size(), prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    SCOPED_TRACE("sequence " + std::to_string(i));
    expectAgreement(compiled.sequences[i],
                    interpret(*checkpoint, prompts[i], 16));
  }
}

TEST_F(CompileAndRunTest, ExpertsInt8MatchesTheInterpreterOnTheInt8Model) {
  auto checkpoint = writeCheckpoint(33);
  ASSERT_TRUE(checkpoint);
  // The reference runs the same ExpertsInt8 checkpoint the compiler makes.
  std::string q8 = (dir / "q8").string();
  ASSERT_TRUE(
      ckpt::writeQuantizedCheckpoint(*checkpoint, q8, ckpt::QuantizeOptions())
          .ok());
  auto quantized = ckpt::Checkpoint::open(q8);
  ASSERT_TRUE(quantized.ok());
  std::vector<int64_t> prompt = {9, 8, 7, 6, 5};
  mlir::jamba::Generation reference = interpret(**quantized, prompt, 24);
  mlir::jamba::CompileOptions options;
  options.expertsInt8 = true;
  rt::GenerationResult compiled =
      compileAndRun((dir / "ckpt").string(), {prompt}, 24, options);
  ASSERT_EQ(compiled.sequences.size(), 1u);
  expectAgreement(compiled.sequences[0], reference);
}

/// Every float weight of the artifact at `out` is bf16 (int8 experts and
/// their f32 scales aside); returns how many bf16 weights there are.
size_t expectBF16Weights(const std::string &out) {
  auto artifact = rt::Artifact::open(out);
  EXPECT_TRUE(artifact.ok()) << artifact.status().message();
  if (!artifact.ok())
    return 0;
  size_t bf16 = 0;
  for (const rt::WeightDesc &w : (*artifact)->manifest().weights) {
    if (w.dtype == ckpt::DType::I8 ||
        llvm::StringRef(w.name).ends_with(mlir::jamba::kScaleSuffix))
      continue;
    EXPECT_EQ(w.dtype, ckpt::DType::BF16) << w.name;
    bf16 += w.dtype == ckpt::DType::BF16;
  }
  return bf16;
}

TEST_F(CompileAndRunTest, BF16CheckpointKeepsBF16WeightsAndMatches) {
  // How real Jamba ships: the artifact keeps the weights bf16 and the
  // kernels compute in f32, as the interpreter does on the same bf16
  // weights. The bar is 1e-2; both sides compute in f32 from the
  // same values, so the agreement is much closer (printed).
  auto checkpoint = writeCheckpoint(34, ckpt::DType::BF16);
  ASSERT_TRUE(checkpoint);
  std::vector<std::vector<int64_t>> prompts = {{1, 17, 42, 5, 9, 100, 3},
                                               {4, 8, 15}};
  rt::GenerationResult compiled =
      compileAndRun((dir / "ckpt").string(), prompts, 16);
  EXPECT_GT(expectBF16Weights((dir / "artifact").string()), 0u);
  ASSERT_EQ(compiled.sequences.size(), prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    SCOPED_TRACE("sequence " + std::to_string(i));
    expectAgreement(compiled.sequences[i],
                    interpret(*checkpoint, prompts[i], 16), 1e-2);
  }
}

TEST_F(CompileAndRunTest, BF16CheckpointWithExpertsInt8Matches) {
  auto checkpoint = writeCheckpoint(35, ckpt::DType::BF16);
  ASSERT_TRUE(checkpoint);
  std::string q8 = (dir / "q8").string();
  ASSERT_TRUE(
      ckpt::writeQuantizedCheckpoint(*checkpoint, q8, ckpt::QuantizeOptions())
          .ok());
  auto quantized = ckpt::Checkpoint::open(q8);
  ASSERT_TRUE(quantized.ok());
  std::vector<int64_t> prompt = {2, 7, 1, 8, 2, 8};
  mlir::jamba::CompileOptions options;
  options.expertsInt8 = true;
  rt::GenerationResult compiled =
      compileAndRun((dir / "ckpt").string(), {prompt}, 16, options);
  EXPECT_GT(expectBF16Weights((dir / "artifact").string()), 0u);
  ASSERT_EQ(compiled.sequences.size(), 1u);
  expectAgreement(compiled.sequences[0], interpret(**quantized, prompt, 16),
                  1e-2);
}

TEST_F(CompileAndRunTest, EditedManifestIsRefusedBeforeAnyKernelRuns) {
  // A manifest edited to swap or reshape kernel arguments, with its content
  // hash recomputed, passes Artifact::open; the kernels' exported signature
  // catches it when the executor loads them (it would otherwise crash).
  auto checkpoint = writeCheckpoint(34);
  ASSERT_TRUE(checkpoint);
  std::string out = (dir / "artifact").string();
  ASSERT_TRUE(succeeded(mlir::jamba::compileCheckpoint(
      &context, (dir / "ckpt").string(), out, mlir::jamba::CompileOptions())));
  std::string manifestPath = out + "/manifest.json";
  std::string text;
  ASSERT_TRUE(ckpt::readFileToString(manifestPath, text).ok());
  auto original = rt::parseManifest(text, manifestPath);
  ASSERT_TRUE(original.ok()) << original.status().message();

  auto expectRefused =
      [&](const std::function<void(rt::ArtifactManifest &)> &edit,
          const std::string &what,
          const std::string &message = "was compiled for the arguments") {
        rt::ArtifactManifest m = *original;
        edit(m);
        std::ofstream(manifestPath, std::ios::trunc) << rt::writeManifest(m);
        auto artifact = rt::Artifact::open(out);
        ASSERT_TRUE(artifact.ok())
            << what << ": " << artifact.status().message();
        rt::SessionOptions session;
        session.contextLength = 8;
        auto executor = rt::CpuExecutor::create(**artifact, session);
        ASSERT_FALSE(executor.ok()) << what;
        EXPECT_NE(executor.status().message().find(message), std::string::npos)
            << what << ": " << executor.status().message();
      };
  expectRefused(
      [](rt::ArtifactManifest &m) {
        std::swap(m.entryPoints[0].steps[0].args[3],
                  m.entryPoints[0].steps[0].args[4]);
      },
      "ids and cache_len swapped");
  expectRefused(
      [](rt::ArtifactManifest &m) {
        for (rt::BufferDesc &b : m.buffers)
          if (b.id == "layers.0.conv_state")
            b.shape[1] = rt::DimExpr::constant(1);
      },
      "conv state reshaped");
  expectRefused(
      [](rt::ArtifactManifest &m) {
        m.entryPoints[1].steps[0].args[0] = rt::StepArg::dim("capacity");
      },
      "dim argument changed");

  // The schedule's dataflow, from the '>' marks of the arguments each
  // kernel writes: steps reordered, dropped or repeated read a temp before
  // it is written, write one twice, or leave an output unwritten (each ran
  // and gave wrong logits).
  auto steps = [](rt::ArtifactManifest &m, const char *entry) -> auto & {
    for (rt::EntryPoint &e : m.entryPoints)
      if (e.name == entry)
        return e.steps;
    return m.entryPoints[0].steps;
  };
  expectRefused(
      [&](rt::ArtifactManifest &m) {
        auto &s = steps(m, "prefill");
        std::swap(s[1], s[2]);
      },
      "two layers swapped",
      "entry point 'prefill': steps[1] reads temp buffer 'prefill.temp1' "
      "before any step writes it");
  expectRefused(
      [&](rt::ArtifactManifest &m) {
        auto &s = steps(m, "decode");
        s.insert(s.begin() + 1, s[1]);
      },
      "a layer repeated",
      "entry point 'decode': steps[2] writes temp buffer 'decode.temp1', "
      "which an earlier step wrote");
  expectRefused(
      [&](rt::ArtifactManifest &m) { steps(m, "prefill").pop_back(); },
      "the head dropped",
      "entry point 'prefill': no step writes its output 'logits'");
  expectRefused([&](rt::ArtifactManifest &m) { steps(m, "decode").clear(); },
                "no steps", "entry point 'decode': no step writes its output");

  // A symbol must be a function of the kernel file itself: dlsym also finds
  // libc's abort (which ran) and the signature strings (which were called).
  expectRefused([](rt::ArtifactManifest &m) { m.kernels[0].symbol = "abort"; },
                "a libc function as a kernel", "not by the kernel file");
  expectRefused(
      [](rt::ArtifactManifest &m) {
        m.kernels[0].symbol = m.kernels[1].symbol + "_signature";
      },
      "a data object as a kernel", "is not a function");

  // The unedited manifest still runs.
  std::ofstream(manifestPath, std::ios::trunc) << rt::writeManifest(*original);
  auto artifact = rt::Artifact::open(out);
  ASSERT_TRUE(artifact.ok());
  rt::SessionOptions session;
  session.contextLength = 8;
  EXPECT_TRUE(rt::CpuExecutor::create(**artifact, session).ok());
}

} // namespace

//===- ModelJitTest.cpp - The whole model, JIT-compiled, vs the reference -===//
//
// Part of jamba-mlir. Writes a seeded random jamba-tiny checkpoint, imports
// it, lowers @prefill and @decode with jamba-decompose-layers +
// jamba-cpu-lower-pipeline, JIT-compiles them with the ExecutionEngine and
// runs greedy generation (a prompt through @prefill, then @decode steps
// carrying the Mamba states and the KV caches), comparing ids and logits
// with the reference interpreter's generateGreedy on the same checkpoint;
// also for an ExpertsInt8 checkpoint (int8 expert weights passed as i8
// memrefs) and for a batch of two sequences.
//
// The JIT ABI (docs/CPUBackend.md): with llvm.emit_c_interface,
// `_mlir_ciface_<fn>(results*, args...)` takes a pointer to the struct of
// the result memref descriptors first, then one pointer per argument
// descriptor; a rank-r descriptor is {allocated ptr, aligned ptr, int64
// offset, int64 sizes[r], int64 strides[r]}, all 8-byte words. Results are
// malloc'ed by the compiled code, except the ones bufferization updated in
// place (the KV caches, the Mamba states), whose allocated pointer is that
// of an argument: the runner frees exactly the allocations nobody refers to
// any more.
//
//===----------------------------------------------------------------------===//

#include "jamba/Checkpoint/Checkpoint.h"
#include "jamba/Checkpoint/Quantize.h"
#include "jamba/Checkpoint/RandomCheckpoint.h"
#include "jamba/Conversion/Passes.h"
#include "jamba/Dialect/Jamba/IR/JambaDialect.h"
#include "jamba/Import/Importer.h"
#include "jamba/Pipelines/Pipelines.h"
#include "jamba/Reference/Compare.h"
#include "jamba/Reference/Generate.h"
#include "jamba/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <unistd.h>

using namespace mlir;
using namespace mlir::jamba;
namespace ckpt = ::jamba::ckpt;
namespace fs = std::filesystem;

namespace {

constexpr double kF32Tolerance = 1e-5;

/// What an entry-point argument is bound to.
struct ArgSpec {
  enum Kind { Ids, CacheLen, State, Weight } kind;
  std::string name; ///< The state or weight name.
  Type elem;
  std::vector<int64_t> shape; ///< kDynamic where dynamic.
};

/// An entry point's arguments and result ranks, read before lowering.
struct Signature {
  std::vector<ArgSpec> args;
  std::vector<int64_t> resultRanks;
  std::vector<std::string> resultStates; ///< "" for the logits.
};

/// A host buffer: `base` is the allocation (malloc), `data` its first
/// element.
struct HostBuffer {
  void *base = nullptr;
  void *data = nullptr;
  std::vector<int64_t> shape;
};

size_t elementBytes(Type t) {
  return t.isIndex() ? 8 : (t.getIntOrFloatBitWidth() + 7) / 8;
}

int64_t numElements(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

/// The 8-byte words of the descriptor of a contiguous row-major buffer.
void appendDescriptor(std::vector<int64_t> &words, const HostBuffer &b) {
  words.push_back(reinterpret_cast<int64_t>(b.base));
  words.push_back(reinterpret_cast<int64_t>(b.data));
  words.push_back(0);
  words.insert(words.end(), b.shape.begin(), b.shape.end());
  std::vector<int64_t> strides(b.shape.size(), 1);
  for (int64_t i = static_cast<int64_t>(b.shape.size()) - 2; i >= 0; --i)
    strides[i] = strides[i + 1] * b.shape[i + 1];
  words.insert(words.end(), strides.begin(), strides.end());
}

/// The model lowered and JIT-compiled, with its weights bound, its states
/// and the generation loop.
class CompiledModel {
public:
  /// Lowers a copy of `module` (jamba-decompose-layers, then
  /// jamba-cpu-lower-pipeline) and JIT-compiles it; loads every weight.
  /// Failures are gtest failures (check HasFatalFailure()).
  void compile(ModuleOp module, const ckpt::Checkpoint &checkpoint) {
    OwningOpRef<ModuleOp> copy(module.clone());
    for (auto func : copy->getOps<func::FuncOp>()) {
      Signature &sig = signatures[func.getName().str()];
      for (unsigned i = 0; i < func.getNumArguments(); ++i) {
        auto type = cast<RankedTensorType>(func.getArgumentTypes()[i]);
        ArgSpec spec{ArgSpec::Weight, "", type.getElementType(),
                     std::vector<int64_t>(type.getShape())};
        if (auto in = func.getArgAttrOfType<StringAttr>(i, kInputAttrName)) {
          spec.kind = in.getValue() == "ids" ? ArgSpec::Ids : ArgSpec::CacheLen;
        } else if (auto st =
                       func.getArgAttrOfType<StringAttr>(i, kStateAttrName)) {
          spec.kind = ArgSpec::State;
          spec.name = st.getValue().str();
        } else {
          auto w = func.getArgAttrOfType<StringAttr>(i, kWeightAttrName);
          ASSERT_TRUE(w) << "argument #" << i << " of @"
                         << func.getName().str();
          spec.name = w.getValue().str();
          loadWeight(checkpoint, spec);
        }
        sig.args.push_back(spec);
      }
      for (unsigned r = 0; r < func.getNumResults(); ++r) {
        sig.resultRanks.push_back(
            cast<RankedTensorType>(func.getResultTypes()[r]).getRank());
        auto st = func.getResultAttrOfType<StringAttr>(r, kStateAttrName);
        sig.resultStates.push_back(st ? st.getValue().str() : "");
      }
      func->setAttr("llvm.emit_c_interface", UnitAttr::get(func.getContext()));
    }

    PassManager pm(module.getContext(), "builtin.module");
    pm.addNestedPass<func::FuncOp>(createJambaDecomposeLayersPass());
    buildCPULowerPipeline(pm, CPULowerPipelineOptions());
    auto start = std::chrono::steady_clock::now();
    ASSERT_TRUE(succeeded(pm.run(*copy))) << "lowering failed";
    lowerSeconds = secondsSince(start);
    start = std::chrono::steady_clock::now();
    auto transformer = makeOptimizingTransformer(3, 0, nullptr);
    ExecutionEngineOptions options;
    options.transformer = transformer;
    auto created = ExecutionEngine::create(*copy, options);
    ASSERT_TRUE(static_cast<bool>(created))
        << llvm::toString(created.takeError());
    engine = std::move(*created);
    // Code generation happens on the first lookup: do it here, so that the
    // timings below are of running the code only.
    for (auto &[name, sig] : signatures) {
      auto fn = engine->lookupPacked("_mlir_ciface_" + name);
      ASSERT_TRUE(static_cast<bool>(fn)) << llvm::toString(fn.takeError());
    }
    jitSeconds = secondsSince(start);
  }

  ~CompiledModel() {
    for (void *p : owned)
      std::free(p);
    for (auto &[name, w] : weights)
      std::free(w.base);
  }

  /// Starts `batch` fresh sequences with room for `capacity` tokens each.
  void reset(int64_t batch, int64_t capacity) {
    for (void *p : owned)
      std::free(p);
    owned.clear();
    states.clear();
    this->batch = batch;
    this->capacity = capacity;
    cacheLen = 0;
  }

  /// Runs `fn` on `ids` ([batch][seq], equal lengths); updates the states
  /// and returns the logits, [batch, positions, vocab] row-major.
  std::vector<float> call(const std::string &fn,
                          const std::vector<std::vector<int64_t>> &ids,
                          std::vector<int64_t> *logitsShape = nullptr) {
    const Signature &sig = signatures.at(fn);
    const int64_t seq = ids.front().size();
    std::vector<int32_t> idData;
    for (const auto &row : ids)
      idData.insert(idData.end(), row.begin(), row.end());
    std::vector<int64_t> lenData(batch, cacheLen);

    std::vector<std::vector<int64_t>> descs;
    std::set<void *> inputBases;
    for (const ArgSpec &a : sig.args) {
      HostBuffer b;
      switch (a.kind) {
      case ArgSpec::Ids:
        b = {idData.data(), idData.data(), {batch, seq}};
        break;
      case ArgSpec::CacheLen:
        b = {lenData.data(), lenData.data(), {batch}};
        break;
      case ArgSpec::State:
        b = state(a);
        break;
      case ArgSpec::Weight:
        b = weights.at(a.name);
        break;
      }
      inputBases.insert(b.base);
      descs.emplace_back();
      appendDescriptor(descs.back(), b);
    }
    size_t resultWords = 0;
    for (int64_t r : sig.resultRanks)
      resultWords += 3 + 2 * r;
    std::vector<int64_t> results(resultWords, 0);
    std::vector<void *> pointers{results.data()};
    for (auto &d : descs)
      pointers.push_back(d.data());
    std::vector<void *> args;
    for (void *&p : pointers)
      args.push_back(&p);
    llvm::Error err = engine->invokePacked("_mlir_ciface_" + fn, args);
    EXPECT_FALSE(static_cast<bool>(err)) << llvm::toString(std::move(err));

    // Read the results; keep the states, copy the logits out.
    std::vector<float> logits;
    std::set<void *> live;
    size_t at = 0;
    for (size_t r = 0; r < sig.resultRanks.size(); ++r) {
      const int64_t rank = sig.resultRanks[r];
      HostBuffer b;
      b.base = reinterpret_cast<void *>(results[at]);
      auto *aligned = reinterpret_cast<char *>(results[at + 1]);
      const size_t offset = results[at + 2];
      b.shape.assign(results.begin() + at + 3, results.begin() + at + 3 + rank);
      const int64_t *strides = &results[at + 3 + rank];
      for (int64_t d = rank - 1, expect = 1; d >= 0; --d) {
        EXPECT_TRUE(b.shape[d] == 1 || strides[d] == expect)
            << "result #" << r << " is not contiguous";
        expect *= b.shape[d];
      }
      at += 3 + 2 * rank;
      if (sig.resultStates[r].empty()) {
        const float *data = reinterpret_cast<const float *>(aligned) + offset;
        logits.assign(data, data + numElements(b.shape));
        if (logitsShape)
          *logitsShape = b.shape;
        if (!inputBases.count(b.base) && !owned.count(b.base))
          std::free(b.base); // Not aliased: ours alone.
        continue;
      }
      b.data =
          aligned + offset * elementBytes(elemOf(sig, sig.resultStates[r]));
      live.insert(b.base);
      states[sig.resultStates[r]] = b;
    }
    // States the call replaced by fresh allocations are dead now; a result
    // that is a new allocation becomes ours.
    for (void *p : owned)
      if (!live.count(p))
        std::free(p);
    owned = live;
    cacheLen += seq;
    return logits;
  }

  double lowerSeconds = 0, jitSeconds = 0;

private:
  static double secondsSince(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                         start)
        .count();
  }

  static Type elemOf(const Signature &sig, const std::string &stateName) {
    for (const ArgSpec &a : sig.args)
      if (a.kind == ArgSpec::State && a.name == stateName)
        return a.elem;
    return {};
  }

  /// The current buffer of state `a`, zeros when it is first seen.
  HostBuffer state(const ArgSpec &a) {
    auto it = states.find(a.name);
    if (it != states.end())
      return it->second;
    std::vector<int64_t> shape = a.shape;
    shape[0] = batch;
    for (int64_t &d : shape)
      if (ShapedType::isDynamic(d))
        d = capacity; // The KV caches' capacity.
    size_t bytes = numElements(shape) * elementBytes(a.elem);
    void *p = std::calloc(bytes ? bytes : 1, 1);
    owned.insert(p);
    HostBuffer b{p, p, shape};
    states[a.name] = b;
    return b;
  }

  /// Loads weight `a` once (f32, or int8 for i8 arguments: the exact int8
  /// values come back through loadWeightF32).
  void loadWeight(const ckpt::Checkpoint &checkpoint, const ArgSpec &a) {
    if (weights.count(a.name))
      return;
    std::vector<float> values;
    ckpt::Status status = checkpoint.loadWeightF32(a.name, a.shape, values);
    ASSERT_TRUE(status.ok()) << status.message();
    HostBuffer b;
    b.shape = a.shape;
    if (a.elem.isInteger(8)) {
      auto *p = static_cast<int8_t *>(std::malloc(values.size()));
      for (size_t i = 0; i < values.size(); ++i) {
        ASSERT_EQ(values[i], std::nearbyint(values[i])) << a.name;
        p[i] = static_cast<int8_t>(values[i]);
      }
      b.base = b.data = p;
    } else {
      ASSERT_TRUE(a.elem.isF32()) << a.name;
      auto *p = static_cast<float *>(std::malloc(values.size() * 4));
      std::memcpy(p, values.data(), values.size() * 4);
      b.base = b.data = p;
    }
    weights[a.name] = b;
  }

  std::map<std::string, Signature> signatures;
  std::unique_ptr<ExecutionEngine> engine;
  std::map<std::string, HostBuffer> weights;
  std::map<std::string, HostBuffer> states;
  std::set<void *> owned; ///< Allocations of the current states.
  int64_t batch = 1, capacity = 0, cacheLen = 0;
};

/// Greedy generation with the compiled model, shaped like
/// mlir::jamba::Generation (prompt rows, then one row per step).
struct CompiledGeneration {
  std::vector<std::vector<int64_t>> ids;  ///< [batch][steps]
  std::vector<std::vector<float>> logits; ///< [batch][rows * vocab]
  double prefillSeconds = 0, decodeSeconds = 0;
};

CompiledGeneration
generateCompiled(CompiledModel &model,
                 const std::vector<std::vector<int64_t>> &prompts,
                 int64_t steps, int64_t vocab) {
  const int64_t batch = prompts.size(), seq = prompts.front().size();
  model.reset(batch, seq + steps);
  CompiledGeneration out;
  out.ids.resize(batch);
  out.logits.resize(batch);
  auto append = [&](const std::vector<float> &logits, int64_t rows) {
    for (int64_t b = 0; b < batch; ++b)
      out.logits[b].insert(out.logits[b].end(),
                           logits.begin() + b * rows * vocab,
                           logits.begin() + (b + 1) * rows * vocab);
  };
  auto start = std::chrono::steady_clock::now();
  std::vector<int64_t> shape;
  std::vector<float> logits = model.call("prefill", prompts, &shape);
  EXPECT_EQ(shape, (std::vector<int64_t>{batch, seq, vocab}));
  append(logits, seq);
  out.prefillSeconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  start = std::chrono::steady_clock::now();
  for (int64_t j = 0; j < steps; ++j) {
    std::vector<std::vector<int64_t>> next(batch);
    for (int64_t b = 0; b < batch; ++b) {
      const float *last = &out.logits[b][out.logits[b].size() - vocab];
      out.ids[b].push_back(::jamba::ref::argmax(last, vocab));
      next[b] = {out.ids[b].back()};
    }
    logits = model.call("decode", next, &shape);
    EXPECT_EQ(shape, (std::vector<int64_t>{batch, 1, vocab}));
    append(logits, 1);
  }
  out.decodeSeconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  return out;
}

class ModelJitTest : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
  }

  void SetUp() override {
    std::string config =
        std::string(JAMBA_SHARED_MODELS_DIR) + "/jamba-tiny.json";
    if (!fs::exists(config))
      GTEST_SKIP() << "shared models not found at " << JAMBA_SHARED_MODELS_DIR;
    auto loaded = ckpt::loadConfig(config);
    ASSERT_TRUE(loaded.ok()) << loaded.status().message();
    tiny = *loaded;
    dir = fs::temp_directory_path() /
          ("jamba-jit-test-" + std::to_string(::getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir);

    DialectRegistry registry;
    registerAllDialects(registry);
    registerAllExtensions(registry);
    registry.insert<JambaDialect>();
    registerBuiltinDialectTranslation(registry);
    registerLLVMDialectTranslation(registry);
    context.appendDialectRegistry(registry);
    context.loadAllAvailableDialects();
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

  std::unique_ptr<ckpt::Checkpoint> randomCheckpoint(uint64_t seed) {
    ckpt::RandomCheckpointOptions random;
    random.seed = seed;
    EXPECT_TRUE(
        ckpt::writeRandomCheckpoint(tiny, (dir / "f32").string(), random).ok());
    return open(dir / "f32");
  }

  /// Generates greedily from each prompt with the reference (one sequence
  /// at a time) and with the compiled model (all prompts as one batch), and
  /// expects the same ids and logits within kF32Tolerance.
  void compare(const ckpt::Checkpoint &checkpoint,
               const std::vector<std::vector<int64_t>> &prompts, int64_t steps,
               const char *what) {
    auto module =
        importModelForCheckpoint(&context, checkpoint.config(), ImportOptions(),
                                 UnknownLoc::get(&context));
    ASSERT_TRUE(succeeded(module));
    const int64_t vocab = tiny.vocabSize;

    CompiledModel model;
    model.compile(**module, checkpoint);
    if (HasFatalFailure())
      return;
    CompiledGeneration compiled =
        generateCompiled(model, prompts, steps, vocab);

    for (size_t b = 0; b < prompts.size(); ++b) {
      GenerateOptions options;
      options.promptIds = prompts[b];
      options.steps = steps;
      FailureOr<Generation> ref =
          generateGreedy<float>(**module, checkpoint, options);
      ASSERT_TRUE(succeeded(ref));
      EXPECT_EQ(compiled.ids[b], ref->ids) << what << ", sequence " << b;
      ASSERT_EQ(static_cast<int64_t>(compiled.logits[b].size()),
                ref->rows * vocab);
      ::jamba::ref::LogitsComparison cmp = ::jamba::ref::compareLogits(
          compiled.logits[b].data(), ref->logits.data(), ref->rows, vocab);
      llvm::outs() << "[ jit      ] " << what << ", sequence " << b << ": "
                   << ref->rows << " rows, max rel err " << cmp.maxRelErr
                   << ", mean " << cmp.meanRelErr << ", top-1 " << cmp.top1Agree
                   << "/" << cmp.rows << "\n";
      if (std::getenv("JAMBA_JIT_TEST_VERBOSE"))
        for (int64_t r = 0; r < ref->rows; ++r) {
          auto row = ::jamba::ref::compareLogits(
              compiled.logits[b].data() + r * vocab,
              ref->logits.data() + r * vocab, 1, vocab);
          llvm::outs() << "  row " << r << ": " << row.maxRelErr << "\n";
        }
      EXPECT_LE(cmp.maxRelErr, kF32Tolerance) << what;
      EXPECT_EQ(cmp.top1Agree, cmp.rows) << what;
      if (b == 0)
        llvm::outs() << "[ jit      ] " << what << ": reference decode "
                     << steps / ref->decodeSeconds << " tok/s\n";
    }
    const double tokens = steps * static_cast<double>(prompts.size());
    llvm::outs() << "[ jit      ] " << what << ": lower " << model.lowerSeconds
                 << " s, JIT " << model.jitSeconds << " s, prefill "
                 << prompts.front().size() * prompts.size() << " tokens in "
                 << compiled.prefillSeconds * 1e3 << " ms, decode "
                 << tokens / compiled.decodeSeconds << " tok/s (batch "
                 << prompts.size() << ")\n";
  }

  ckpt::JambaConfig tiny;
  MLIRContext context;
  fs::path dir;
};

const std::vector<int64_t> kPrompt = {1, 17, 42, 7, 99, 3};
constexpr int64_t kSteps = 20;

TEST_F(ModelJitTest, GreedyF32MatchesTheReference) {
  auto checkpoint = randomCheckpoint(7);
  ASSERT_TRUE(checkpoint);
  compare(*checkpoint, {kPrompt}, kSteps, "jamba-tiny f32");
}

TEST_F(ModelJitTest, GreedyExpertsInt8MatchesTheReference) {
  auto original = randomCheckpoint(11);
  ASSERT_TRUE(original);
  ASSERT_TRUE(ckpt::writeQuantizedCheckpoint(*original, (dir / "q8").string(),
                                             ckpt::QuantizeOptions())
                  .ok());
  auto quantized = open(dir / "q8");
  ASSERT_TRUE(quantized);
  ASSERT_TRUE(quantized->config().quantMethod.has_value());
  compare(*quantized, {kPrompt}, kSteps, "jamba-tiny ExpertsInt8");
}

TEST_F(ModelJitTest, BatchOfTwoEqualLengthSequences) {
  auto checkpoint = randomCheckpoint(13);
  ASSERT_TRUE(checkpoint);
  compare(*checkpoint, {kPrompt, {5, 9, 120, 64, 2, 33}}, kSteps,
          "jamba-tiny f32 batch 2");
}

} // namespace

//===- kernels.cpp - Per-kernel figures of the CPU backend ----------------===//
//
// Part of jamba-mlir. `jamba-bench-kernels` compiles single jamba ops at
// jamba-small shapes with jamba-cpu-lower-pipeline (threads on, as
// jamba-compile does), JIT-runs them and prints what each reaches next to
// the STREAM-like triad measured in the same process, before and after:
//
//   - decode GEMVs (one token): GB/s of weight bytes, the weights rotating
//     over >= 512 MiB of copies so that the L3 cache never holds them (as
//     in decode, where every token streams the whole model);
//   - the prefill GEMM (512 tokens) and the routed expert GEMM: GFLOP/s;
//   - the selective scan (T = 512, d_inner = 2048, d_state = 16): ns per
//     (token, channel).
//
// Median of the repetitions. Figures only, no assertion: the machines are
// shared and noisy; compare the ratios to the triad of the same run. The
// kernels are compiled for this host, or with `--cpu NAME` for that CPU
// (x86-64-v3: what jamba-compile's artifacts run).
//
//===----------------------------------------------------------------------===//

#include "jamba/Conversion/Passes.h"
#include "jamba/Dialect/Jamba/IR/JambaDialect.h"

#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/OpenMP/OpenMPToLLVMIRTranslation.h"
#include "llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/TargetParser/Host.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

extern "C" int omp_get_max_threads();

using namespace mlir;

namespace {

using Clock = std::chrono::steady_clock;

double seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

/// STREAM-like triad a = b + s * c over 3 x 256 MiB of doubles, 2 threads.
double triadGBs() {
  const size_t n = (size_t(256) << 20) / sizeof(double);
  std::vector<double> a(n, 0.0), b(n, 1.0), c(n, 2.0);
  std::vector<double> rates;
  for (int rep = 0; rep < 5; ++rep) {
    auto start = Clock::now();
    std::thread helper([&] {
      for (size_t i = n / 2; i < n; ++i)
        a[i] = b[i] + 3.0 * c[i];
    });
    for (size_t i = 0; i < n / 2; ++i)
      a[i] = b[i] + 3.0 * c[i];
    helper.join();
    rates.push_back(24.0 * double(n) / seconds(start) / 1e9);
  }
  if (a[n / 3] != 7.0)
    std::abort();
  return median(rates);
}

/// A row-major host array passed as a memref descriptor.
struct Array {
  void *data;
  std::vector<int64_t> shape;

  std::vector<int64_t> descriptor() const {
    std::vector<int64_t> d{reinterpret_cast<int64_t>(data),
                           reinterpret_cast<int64_t>(data), 0};
    d.insert(d.end(), shape.begin(), shape.end());
    std::vector<int64_t> strides(shape.size(), 1);
    for (int64_t i = int64_t(shape.size()) - 2; i >= 0; --i)
      strides[i] = strides[i + 1] * shape[i + 1];
    d.insert(d.end(), strides.begin(), strides.end());
    return d;
  }
};

/// `--cpu NAME`: the CPU the kernels are compiled for (jamba-compile's
/// artifacts: x86-64-v3); empty: this host's, with all its features.
static std::string targetCpu;

/// A target machine for `targetCpu` (its baseline features only), or null
/// for the host's.
static std::unique_ptr<llvm::TargetMachine> targetMachine() {
  if (targetCpu.empty())
    return nullptr;
  llvm::orc::JITTargetMachineBuilder builder{
      llvm::Triple(llvm::sys::getProcessTriple())};
  builder.setCPU(targetCpu);
  builder.setCodeGenOptLevel(llvm::CodeGenOptLevel::Aggressive);
  auto machine = builder.createTargetMachine();
  if (!machine) {
    std::fprintf(stderr, "jamba-bench-kernels: --cpu %s: %s\n",
                 targetCpu.c_str(),
                 llvm::toString(machine.takeError()).c_str());
    std::exit(2);
  }
  return std::move(*machine);
}

/// One JIT-compiled function `@f`.
class Kernel {
public:
  /// `attentionSplitKeys`: the pipeline's cpu-attention-split-keys.
  Kernel(MLIRContext &context, const std::string &ir, bool microkernels = true,
         int64_t attentionSplitKeys = 2048) {
    OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(ir, &context);
    if (!module) {
      error = "cannot parse the kernel";
      return;
    }
    PassManager pm(&context, "builtin.module");
    auto options = std::make_unique<jamba::CPULowerPipelineOptions>();
    options->threads = true;
    options->microkernels = microkernels;
    options->cpuAttentionSplitKeys = attentionSplitKeys;
    jamba::buildCPULowerPipeline(pm, *options);
    if (failed(pm.run(*module))) {
      error = "lowering failed";
      return;
    }
    ExecutionEngineOptions engineOptions;
    std::unique_ptr<llvm::TargetMachine> machine = targetMachine();
    auto transformer = makeOptimizingTransformer(3, 0, machine.get());
    engineOptions.transformer = transformer;
    auto created =
        ExecutionEngine::create(*module, engineOptions, std::move(machine));
    if (!created) {
      error = llvm::toString(created.takeError());
      return;
    }
    engine = std::move(*created);
    // Code generation happens on the first lookup: pay it now.
    (void)engine->lookupPacked("_mlir_ciface_f");
  }

  /// Runs `@f`; frees the `numResults` results the kernel allocated.
  void run(const std::vector<Array> &inputs, const std::vector<int> &ranks) {
    std::vector<std::vector<int64_t>> descs;
    for (const Array &a : inputs)
      descs.push_back(a.descriptor());
    size_t words = 0;
    for (int r : ranks)
      words += 3 + 2 * r;
    std::vector<int64_t> results(words, 0);
    std::vector<void *> pointers{results.data()};
    for (auto &d : descs)
      pointers.push_back(d.data());
    std::vector<void *> args;
    for (void *&p : pointers)
      args.push_back(&p);
    if (llvm::Error err = engine->invokePacked("_mlir_ciface_f", args)) {
      llvm::errs() << "jamba-bench-kernels: " << llvm::toString(std::move(err))
                   << "\n";
      std::exit(1);
    }
    size_t at = 0;
    for (int r : ranks) {
      std::free(reinterpret_cast<void *>(results[at]));
      at += 3 + 2 * r;
    }
  }

  std::string error;

private:
  std::unique_ptr<ExecutionEngine> engine;
};

template <typename T> std::vector<T> randomValues(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<T> v(n);
  if constexpr (std::is_same_v<T, int8_t>) {
    std::uniform_int_distribution<int> d(-127, 127);
    for (T &x : v)
      x = static_cast<T>(d(rng));
  } else if constexpr (std::is_same_v<T, uint16_t>) { // bf16 bits
    std::uniform_real_distribution<float> d(-1.0f, 1.0f);
    for (T &x : v) {
      float f = d(rng);
      uint32_t bits;
      std::memcpy(&bits, &f, 4);
      x = static_cast<uint16_t>(bits >> 16);
    }
  } else {
    std::uniform_real_distribution<float> d(-1.0f, 1.0f);
    for (T &x : v)
      x = d(rng);
  }
  return v;
}

/// Decode GEMV y[1, N] = x[1, K] . W[N, K]^T in `format` (f32, bf16, i8),
/// weights rotating over >= 512 MiB of copies. Returns weight GB/s.
double gemvGBs(MLIRContext &context, int64_t n, int64_t k,
               const std::string &format) {
  std::string w = format == "f32" ? "f32" : format == "bf16" ? "bf16" : "i8";
  std::string wt =
      "tensor<" + std::to_string(n) + "x" + std::to_string(k) + "x" + w + ">";
  std::string xt = "tensor<1x" + std::to_string(k) + "xf32>";
  std::string yt = "tensor<1x" + std::to_string(n) + "xf32>";
  std::string st = "tensor<" + std::to_string(n) + "xf32>";
  bool int8 = format == "i8";
  std::string ir =
      "func.func @f(%x: " + xt + ", %w: " + wt + (int8 ? ", %s: " + st : "") +
      ") -> " + yt +
      " attributes {llvm.emit_c_interface} {\n  %y = jamba.linear %x, %w " +
      (int8 ? "scale(%s) " : "") + ": (" + xt + ", " + wt +
      (int8 ? ", " + st : "") + ") -> " + yt + "\n  return %y : " + yt + "\n}";
  Kernel kernel(context, ir);
  if (!kernel.error.empty()) {
    llvm::errs() << "jamba-bench-kernels: " << kernel.error << "\n";
    std::exit(1);
  }
  size_t elemBytes = format == "f32" ? 4 : format == "bf16" ? 2 : 1;
  size_t bytes = size_t(n) * k * elemBytes + (int8 ? 4 * size_t(n) : 0);
  size_t copies =
      std::max<size_t>(2, ((size_t(512) << 20) + bytes - 1) / bytes);
  std::vector<std::vector<uint8_t>> weights(copies);
  std::vector<uint8_t> seed(size_t(n) * k * elemBytes);
  auto fill = [&](const auto &values) {
    std::memcpy(seed.data(), values.data(), seed.size());
  };
  if (format == "f32")
    fill(randomValues<float>(size_t(n) * k, 1));
  else if (format == "bf16")
    fill(randomValues<uint16_t>(size_t(n) * k, 1));
  else
    fill(randomValues<int8_t>(size_t(n) * k, 1));
  for (auto &c : weights)
    c = seed;
  auto x = randomValues<float>(k, 2);
  auto s = randomValues<float>(n, 3);
  std::vector<double> rates;
  for (int rep = 0; rep < 7; ++rep) {
    auto start = Clock::now();
    for (size_t c = 0; c < copies; ++c) {
      std::vector<Array> in{{x.data(), {1, k}}, {weights[c].data(), {n, k}}};
      if (int8)
        in.push_back({s.data(), {n}});
      kernel.run(in, {2});
    }
    rates.push_back(double(bytes) * copies / seconds(start) / 1e9);
  }
  return median(rates);
}

/// Prefill GEMM Y[M, N] = X[M, K] . W[N, K]^T; returns GFLOP/s.
double gemmGFlops(MLIRContext &context, int64_t m, int64_t n, int64_t k,
                  bool bf16) {
  std::string wt = "tensor<" + std::to_string(n) + "x" + std::to_string(k) +
                   (bf16 ? "xbf16>" : "xf32>");
  std::string xt =
      "tensor<" + std::to_string(m) + "x" + std::to_string(k) + "xf32>";
  std::string yt =
      "tensor<" + std::to_string(m) + "x" + std::to_string(n) + "xf32>";
  Kernel kernel(context, "func.func @f(%x: " + xt + ", %w: " + wt + ") -> " +
                             yt +
                             " attributes {llvm.emit_c_interface} {\n"
                             "  %y = jamba.linear %x, %w : (" +
                             xt + ", " + wt + ") -> " + yt +
                             "\n  return %y : " + yt + "\n}");
  if (!kernel.error.empty())
    std::exit(1);
  auto x = randomValues<float>(m * k, 4);
  std::vector<float> wf;
  std::vector<uint16_t> wh;
  void *w;
  if (bf16) {
    wh = randomValues<uint16_t>(n * k, 5);
    w = wh.data();
  } else {
    wf = randomValues<float>(n * k, 5);
    w = wf.data();
  }
  std::vector<double> times;
  for (int rep = 0; rep < 5; ++rep) {
    auto start = Clock::now();
    kernel.run({{x.data(), {m, k}}, {w, {n, k}}}, {2});
    times.push_back(seconds(start));
  }
  return 2.0 * m * n * k / median(times) / 1e9;
}

/// Routed expert GEMM: M tokens, top-2 of E experts [E, N, K]; GFLOP/s of
/// the routed work (2 * M * 2 * N * K).
double expertGFlops(MLIRContext &context, int64_t m, int64_t e, int64_t n,
                    int64_t k) {
  auto t = [](std::vector<int64_t> s, const char *elem) {
    std::string r = "tensor<";
    for (int64_t d : s)
      r += std::to_string(d) + "x";
    return r + elem + ">";
  };
  std::string xt = t({m, k}, "f32"), wt = t({e, n, k}, "f32"),
              it = t({m, 2}, "i32"), yt = t({m, 2, n}, "f32");
  Kernel kernel(context, "func.func @f(%x: " + xt + ", %w: " + wt +
                             ", %i: " + it + ") -> " + yt +
                             " attributes {llvm.emit_c_interface} {\n"
                             "  %y = jamba.expert_gemm %x, %w indices(%i) : (" +
                             xt + ", " + wt + ", " + it + ") -> " + yt +
                             "\n  return %y : " + yt + "\n}");
  if (!kernel.error.empty())
    std::exit(1);
  auto x = randomValues<float>(m * k, 6);
  auto w = randomValues<float>(e * n * k, 7);
  std::vector<int32_t> idx(m * 2);
  std::mt19937 rng(8);
  for (int64_t i = 0; i < m; ++i) {
    idx[2 * i] = rng() % e;
    idx[2 * i + 1] = (idx[2 * i] + 1 + rng() % (e - 1)) % e;
  }
  std::vector<double> times;
  for (int rep = 0; rep < 5; ++rep) {
    auto start = Clock::now();
    kernel.run(
        {{x.data(), {m, k}}, {w.data(), {e, n, k}}, {idx.data(), {m, 2}}}, {3});
    times.push_back(seconds(start));
  }
  return 2.0 * m * 2 * n * k / median(times) / 1e9;
}

/// Selective scan over T tokens, D channels, N states (delta softplus, D
/// skip, SiLU(z) gate, as in the model); ns per (token, channel).
double scanNs(MLIRContext &context, int64_t tokens, int64_t d, int64_t n) {
  auto t = [](std::vector<int64_t> s) {
    std::string r = "tensor<";
    for (int64_t v : s)
      r += std::to_string(v) + "x";
    return r + "f32>";
  };
  std::string ut = t({1, tokens, d}), at = t({d, n}), bt = t({1, tokens, n}),
              vt = t({d}), ht = t({1, d, n});
  Kernel kernel(context,
                "func.func @f(%u: " + ut + ", %dt: " + ut + ", %A: " + at +
                    ", %B: " + bt + ", %C: " + bt + ", %D: " + vt +
                    ", %z: " + ut + ", %db: " + vt + ") -> (" + ut + ", " + ht +
                    ") attributes {llvm.emit_c_interface} {\n"
                    "  %y, %h = jamba.selective_scan %u, %dt, %A, %B, %C "
                    "D(%D) z(%z) delta_bias(%db) {delta_softplus} : (" +
                    ut + ", " + ut + ", " + at + ", " + bt + ", " + bt + ", " +
                    vt + ", " + ut + ", " + vt + ") -> (" + ut + ", " + ht +
                    ")\n  return %y, %h : " + ut + ", " + ht + "\n}");
  if (!kernel.error.empty())
    std::exit(1);
  auto u = randomValues<float>(tokens * d, 9),
       dt = randomValues<float>(tokens * d, 10),
       a = randomValues<float>(d * n, 11),
       b = randomValues<float>(tokens * n, 12),
       c = randomValues<float>(tokens * n, 13), dd = randomValues<float>(d, 14),
       z = randomValues<float>(tokens * d, 15), db = randomValues<float>(d, 16);
  for (float &v : a)
    v = -std::abs(v) - 0.1f; // A = -exp(A_log) < 0
  std::vector<double> times;
  for (int rep = 0; rep < 5; ++rep) {
    auto start = Clock::now();
    kernel.run({{u.data(), {1, tokens, d}},
                {dt.data(), {1, tokens, d}},
                {a.data(), {d, n}},
                {b.data(), {1, tokens, n}},
                {c.data(), {1, tokens, n}},
                {dd.data(), {d}},
                {z.data(), {1, tokens, d}},
                {db.data(), {d}}},
               {3, 3});
    times.push_back(seconds(start));
  }
  return median(times) / double(tokens * d) * 1e9;
}

/// `jamba.cached_attention` of 8 query heads over `kvHeads` kv heads (2:
/// jamba-small's), head dim 128, returning its output, for query type `qt`,
/// new key/value type `kt` and cache type `ct`; `splitKeys` as Kernel's.
Kernel attentionKernel(MLIRContext &context, const std::string &qt,
                       const std::string &kt, const std::string &ct,
                       bool microkernels, int64_t kvHeads = 2,
                       int64_t splitKeys = 2048) {
  const std::string lt = "tensor<1xi64>";
  Kernel kernel(
      context,
      "func.func @f(%q: " + qt + ", %k: " + kt + ", %v: " + kt +
          ", %kc: " + ct + ", %vc: " + ct + ", %len: " + lt + ") -> " + qt +
          " attributes {llvm.emit_c_interface} {\n"
          "  %o, %k2, %v2 = jamba.cached_attention %q, %k, %v, "
          "cache(%kc, %vc, %len) {num_heads = 8 : i64, "
          "num_kv_heads = " +
          std::to_string(kvHeads) + " : i64} : (" + qt + ", " + kt + ", " + kt +
          ", " + ct + ", " + ct + ", " + lt + ") -> (" + qt + ", " + ct + ", " +
          ct + ")\n  return %o : " + qt + "\n}",
      microkernels, splitKeys);
  if (!kernel.error.empty())
    std::exit(1);
  return kernel;
}

/// Causal GQA attention of one prefill call of `tokens` tokens over an empty
/// cache (jamba-small's heads: 8 query heads over 2 kv heads, head dim 128)
/// with the attention microkernel, or with the generic loops
/// (`microkernels` false); GFLOP/s counting 4 hd FLOPs per (head, query,
/// visible key): Q K^T and P V.
double attentionPrefillGFlops(MLIRContext &context, int64_t tokens,
                              bool microkernels) {
  const int64_t heads = 8, kvHeads = 2, hd = 128;
  std::string t = std::to_string(tokens);
  std::string qt = "tensor<1x" + t + "x" + std::to_string(heads * hd) + "xf32>",
              kt = "tensor<1x" + t + "x" + std::to_string(kvHeads * hd) +
                   "xf32>",
              ct = "tensor<1x2x" + t + "x128xf32>";
  Kernel kernel = attentionKernel(context, qt, kt, ct, microkernels);
  auto q = randomValues<float>(tokens * heads * hd, 17),
       k = randomValues<float>(tokens * kvHeads * hd, 18),
       v = randomValues<float>(tokens * kvHeads * hd, 19);
  std::vector<float> kc(kvHeads * tokens * hd), vc(kc.size());
  std::vector<int64_t> len{0};
  std::vector<double> times;
  // One run of the longest (tens of seconds with the generic loops).
  for (int rep = 0; rep < (tokens >= 16384 ? 1 : 3); ++rep) {
    auto start = Clock::now();
    kernel.run({{q.data(), {1, tokens, heads * hd}},
                {k.data(), {1, tokens, kvHeads * hd}},
                {v.data(), {1, tokens, kvHeads * hd}},
                {kc.data(), {1, kvHeads, tokens, hd}},
                {vc.data(), {1, kvHeads, tokens, hd}},
                {len.data(), {1}}},
               {3});
    times.push_back(seconds(start));
  }
  double pairs = double(tokens) * double(tokens + 1) / 2;
  return 4.0 * hd * heads * pairs / median(times) / 1e9;
}

/// One decode step of 8 query heads over `kvHeads` kv heads (head dim 128)
/// over a cache of `cached` positions, the keys split over threads as
/// `splitKeys` says (0: not); GB/s of the keys and values it reads (f32).
double attentionDecodeGBs(MLIRContext &context, int64_t cached,
                          bool microkernels, int64_t kvHeads = 2,
                          int64_t splitKeys = 2048) {
  const int64_t heads = 8, hd = 128, capacity = cached + 1;
  std::string cap = std::to_string(capacity), kv = std::to_string(kvHeads);
  Kernel kernel =
      attentionKernel(context, "tensor<1x1x1024xf32>",
                      "tensor<1x1x" + std::to_string(kvHeads * hd) + "xf32>",
                      "tensor<1x" + kv + "x" + cap + "x128xf32>", microkernels,
                      kvHeads, splitKeys);
  auto q = randomValues<float>(heads * hd, 20),
       k = randomValues<float>(kvHeads * hd, 21),
       v = randomValues<float>(kvHeads * hd, 22),
       kc = randomValues<float>(kvHeads * capacity * hd, 23),
       vc = randomValues<float>(kvHeads * capacity * hd, 24);
  std::vector<int64_t> len{cached};
  std::vector<double> times;
  for (int rep = 0; rep < 7; ++rep) {
    auto start = Clock::now();
    kernel.run({{q.data(), {1, 1, heads * hd}},
                {k.data(), {1, 1, kvHeads * hd}},
                {v.data(), {1, 1, kvHeads * hd}},
                {kc.data(), {1, kvHeads, capacity, hd}},
                {vc.data(), {1, kvHeads, capacity, hd}},
                {len.data(), {1}}},
               {3});
    times.push_back(seconds(start));
  }
  return 2.0 * kvHeads * capacity * hd * 4 / median(times) / 1e9;
}

} // namespace

int main(int argc, char **argv) {
  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
  DialectRegistry registry;
  registerAllDialects(registry);
  registerAllExtensions(registry);
  registry.insert<jamba::JambaDialect>();
  registerBuiltinDialectTranslation(registry);
  registerLLVMDialectTranslation(registry);
  registerOpenMPDialectTranslation(registry);
  MLIRContext context(registry);
  context.loadAllAvailableDialects();

  // `jamba-bench-kernels attention`: the attention rows only;
  // `jamba-bench-kernels gemv`: the decode GEMVs between two triads only;
  // `--cpu NAME`: compiled for that CPU (e.g. x86-64-v3, as jamba-compile's
  // artifacts are) instead of this host's.
  std::string only;
  bool usage = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--cpu" && i + 1 < argc)
      targetCpu = argv[++i];
    else if ((arg == "attention" || arg == "gemv") && only.empty())
      only = arg;
    else
      usage = true;
  }
  bool attentionOnly = only == "attention", gemvOnly = only == "gemv";
  if (usage) {
    std::fprintf(stderr,
                 "usage: jamba-bench-kernels [attention|gemv] [--cpu NAME]\n");
    return 2;
  }
  std::printf("jamba-bench-kernels: jamba-small shapes, %d OpenMP threads, "
              "compiled for %s\n",
              omp_get_max_threads(),
              targetCpu.empty() ? "this host" : targetCpu.c_str());
  // Attention: the microkernel next to the generic loops it replaces, in
  // the same run.
  struct AttentionRow {
    std::string what;
    double kernel, generic;
    const char *unit;
    double unsplit = 0; ///< Decode: the kernel without split-KV.
  };
  std::vector<AttentionRow> attention;
  for (int64_t tokens : gemvOnly ? std::vector<int64_t>{}
                                 : std::vector<int64_t>{512, 2048, 8192, 32768})
    attention.push_back(
        {"attention prefill T=" + std::to_string(tokens) +
             ", 8 heads / 2 kv, hd 128",
         attentionPrefillGFlops(context, tokens, true),
         tokens <= 512 ? attentionPrefillGFlops(context, tokens, false) : 0.0,
         "GFLOP/s"});
  // Decode: the kernel with split-KV (the default) and without, alternated
  // in one run (the medians of 3 rounds of 7 steps' medians); 1 kv head is
  // the case of a machine with more cores than a decode step's (sequence,
  // kv head) items, e.g. Jamba-1.5-Mini's 8 kv heads at batch 1 on 32.
  struct Decode {
    int64_t cached, kvHeads;
    bool generic;
  };
  for (const Decode &d : gemvOnly ? std::vector<Decode>{}
                                  : std::vector<Decode>{{4096, 2, true},
                                                        {32768, 2, false},
                                                        {32768, 1, false}}) {
    std::vector<double> split, unsplit;
    for (int round = 0; round < 3; ++round) {
      split.push_back(attentionDecodeGBs(context, d.cached, true, d.kvHeads));
      unsplit.push_back(
          attentionDecodeGBs(context, d.cached, true, d.kvHeads, 0));
    }
    AttentionRow row{
        "attention decode over " + std::to_string(d.cached) + " cached, " +
            std::to_string(d.kvHeads) + " kv head" +
            (d.kvHeads > 1 ? "s" : "") + ", f32 KV",
        median(split),
        d.generic ? attentionDecodeGBs(context, d.cached, false, d.kvHeads)
                  : 0.0,
        "GB/s"};
    row.unsplit = median(unsplit);
    attention.push_back(row);
  }
  auto printAttention = [&] {
    for (const AttentionRow &row : attention) {
      std::printf("| %s | %.2f %s", row.what.c_str(), row.kernel, row.unit);
      if (row.generic > 0)
        std::printf(" (generic loops %.2f: %.1fx)", row.generic,
                    row.kernel / row.generic);
      if (row.unsplit > 0)
        std::printf(" (without split-KV %.2f: %.2fx)", row.unsplit,
                    row.kernel / row.unsplit);
      std::printf(" | |\n");
    }
  };
  if (attentionOnly) {
    std::printf("| kernel | figure | |\n| --- | --- | --- |\n");
    printAttention();
    return 0;
  }
  double triadBefore = triadGBs();
  std::printf("triad (before): %.1f GB/s\n\n", triadBefore);

  struct Gemv {
    const char *what;
    int64_t n, k;
  };
  std::vector<std::pair<std::string, double>> gemv;
  for (Gemv g : {Gemv{"in_proj/gate+up 4096x1024", 4096, 1024},
                 Gemv{"down_proj 1024x2816", 1024, 2816},
                 Gemv{"lm_head 32000x1024", 32000, 1024}})
    for (const char *format : {"f32", "bf16", "i8"})
      gemv.push_back({std::string(g.what) + " " + format,
                      gemvGBs(context, g.n, g.k, format)});
  auto printGemv = [&](double triad) {
    std::printf("| kernel | figure | vs triad %.1f GB/s |\n", triad);
    std::printf("| --- | --- | --- |\n");
    for (auto &[what, gbs] : gemv)
      std::printf("| decode GEMV %s | %.1f GB/s | %.2f |\n", what.c_str(), gbs,
                  gbs / triad);
  };
  if (gemvOnly) {
    double triadAfter = triadGBs();
    printGemv(0.5 * (triadBefore + triadAfter));
    std::printf("triad before %.1f, after %.1f GB/s\n", triadBefore,
                triadAfter);
    return 0;
  }
  double gemmF32 = gemmGFlops(context, 512, 2816, 1024, false);
  double gemmBF16 = gemmGFlops(context, 512, 2816, 1024, true);
  double experts = expertGFlops(context, 512, 8, 2816, 1024);
  double scan = scanNs(context, 512, 2048, 16);
  double triadAfter = triadGBs();
  printGemv(0.5 * (triadBefore + triadAfter));
  std::printf("| prefill GEMM 512x1024 -> 2816, f32 weights | %.1f GFLOP/s | "
              "|\n",
              gemmF32);
  std::printf("| prefill GEMM 512x1024 -> 2816, bf16 weights | %.1f GFLOP/s "
              "| |\n",
              gemmBF16);
  std::printf("| expert GEMM 512 tokens top-2 of 8 x [2816, 1024], f32 | %.1f "
              "GFLOP/s | |\n",
              experts);
  std::printf("| selective scan T=512 D=2048 N=16 | %.2f ns per (t, c) | |\n",
              scan);
  printAttention();
  std::printf("triad before %.1f, after %.1f GB/s\n", triadBefore, triadAfter);
  return 0;
}

//===- jamba-dump.cpp - Validate and print a compiled artifact ------------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// `jamba-dump ARTIFACT_DIR [--json]` opens an artifact exactly as the runtime
// does (every check of docs/ArtifactFormat.md) and prints a summary: schema
// version, model shape, target, entry points with their steps, buffers with
// their sizes for a given batch and context length, weights and files. A
// thin main over lib/Runtime.
//
//===----------------------------------------------------------------------===//

#include "jamba/Checkpoint/Json.h"
#include "jamba/Runtime/Artifact.h"
#include "jamba/Runtime/ExampleArtifact.h"

#include "../common/StdoutCheck.h"

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

using namespace jamba;
using namespace jamba::rt;
using ckpt::JsonValue;

static const char kUsage[] =
    R"(usage: jamba-dump ARTIFACT_DIR [options]
       jamba-dump --write-example DIR

Validates the artifact in ARTIFACT_DIR (schema version, content hash, file
sizes and SHA-256, bounds and cross-references, weights against their
safetensors files) and prints a summary. Any problem is reported as one line
`jamba-dump: error: ...` with a non-zero exit.

options:
  --json             print the summary and the manifest as JSON
  --batch N          sequences at once, for the buffer sizes (default 1)
  --context N        context length (capacity) per sequence (default 4096,
                     or the artifact's largest when it is smaller)
  --seq N            tokens per call (default: min(context, the artifact's
                     largest seq))
  --write-example DIR
                     testing aid: write a small valid artifact (two layers,
                     three weights, a placeholder kernels file holding no
                     machine code) into DIR, which must not exist
  --help             print this message
)";

static int fail(const std::string &message) {
  std::fprintf(stderr, "jamba-dump: error: %s\n", message.c_str());
  return 1;
}

/// Parses a positive integer option value.
static bool parsePositive(const char *text, int64_t &out) {
  if (!text || !*text)
    return false;
  char *end = nullptr;
  errno = 0;
  long long v = std::strtoll(text, &end, 10);
  if (errno || *end || v < 1)
    return false;
  out = v;
  return true;
}

static std::string shapeString(const std::vector<DimExpr> &shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    out += (i ? ", " : "") + shape[i].str();
  return out + "]";
}

/// How a weight is made from the checkpoint, for its line: nothing for the
/// whole tensor, else ", cut [0:32+96:192, 0:64] of [256, 64]" (per
/// dimension the runs of indices taken, half-open), ", zeros of [64]" or
/// ", value 8".
static std::string originString(const WeightOrigin &from) {
  switch (from.kind) {
  case WeightOrigin::Kind::Whole:
    return "";
  case WeightOrigin::Kind::Zeros:
    return ", zeros of " + ckpt::formatShape(from.shape);
  case WeightOrigin::Kind::Value:
    return ", value " + std::to_string(from.value);
  case WeightOrigin::Kind::Slice:
    break;
  }
  std::string out = ", cut [";
  for (size_t d = 0; d < from.take.size(); ++d) {
    out += d ? ", " : "";
    for (size_t i = 0; i < from.take[d].size(); ++i) {
      const IndexRun &run = from.take[d][i];
      out += (i ? "+" : "") + std::to_string(run.begin) + ":" +
             std::to_string(run.begin + run.count);
    }
  }
  return out + "] of " + ckpt::formatShape(from.shape);
}

static std::string argString(const StepArg &a) {
  switch (a.kind) {
  case StepArg::Kind::Buffer:
    return a.ref;
  case StepArg::Kind::Weight:
    return "@" + a.ref;
  case StepArg::Kind::Dim:
    return "dim " + a.ref;
  case StepArg::Kind::I64:
    return std::to_string(a.i64);
  case StepArg::Kind::F64: {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%g", a.f64);
    return buf;
  }
  }
  return "?";
}

static std::string joined(const std::vector<std::string> &items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i)
    out += (i ? ", " : "") + items[i];
  return out.empty() ? "-" : out;
}

static void printText(const Artifact &artifact, const MemoryPlan &plan) {
  const ArtifactManifest &m = artifact.manifest();
  const ckpt::JambaConfig &c = m.config;
  std::printf("artifact: %s\n", artifact.directory().c_str());
  std::printf("schema version: %" PRId64 ".%" PRId64 "\n", m.version.major,
              m.version.minor);
  std::printf("generator: %s\n", m.generator.c_str());
  std::printf("content hash: %s\n", m.contentHash.c_str());

  int64_t attention = 0, moe = 0;
  for (int64_t i = 0; i < c.numHiddenLayers; ++i) {
    attention += c.isAttentionLayer(i);
    moe += c.isMoELayer(i);
  }
  std::printf("model: %" PRId64 " layers (%" PRId64 " attention, %" PRId64
              " Mamba; %" PRId64 " MoE), hidden %" PRId64
              ", intermediate %" PRId64 ", vocab %" PRId64 "\n",
              c.numHiddenLayers, attention, c.numHiddenLayers - attention, moe,
              c.hiddenSize, c.intermediateSize, c.vocabSize);
  std::printf("       %" PRId64 " heads (%" PRId64 " kv), %" PRId64
              " experts (top %" PRId64 "), mamba d_state %" PRId64
              " d_conv %" PRId64 " expand %" PRId64 "\n",
              c.numAttentionHeads, c.numKeyValueHeads, c.numExperts,
              c.numExpertsPerTok, c.mambaDState, c.mambaDConv, c.mambaExpand);
  if (m.target.kind == TargetDesc::Kind::Cpu)
    std::printf("target: cpu %s (%s)\n", m.target.triple.c_str(),
                m.target.cpu.c_str());
  else
    std::printf("target: cuda %s\n", joined(m.target.archs).c_str());
  std::printf("ranks: %" PRId64 "\n", m.ranks);

  std::vector<std::string> dims;
  for (const SymbolicDim &d : m.dims)
    dims.push_back(ckpt::concat(d.name, " = ", plan.bindings.at(d.name),
                                " (max ", d.max, ")"));
  std::printf("dims: %s\n", joined(dims).c_str());

  for (const EntryPoint &e : m.entryPoints) {
    std::printf("entry point %s: %zu steps\n", e.name.c_str(), e.steps.size());
    std::printf("  inputs: %s\n", joined(e.inputs).c_str());
    std::printf("  outputs: %s\n", joined(e.outputs).c_str());
    for (size_t s = 0; s < e.steps.size(); ++s) {
      const Step &step = e.steps[s];
      std::vector<std::string> args;
      for (const StepArg &a : step.args)
        args.push_back(argString(a));
      std::printf("  %zu: %s %s(%s)\n", s, stepKindName(step.kind),
                  step.kernel.c_str(), joined(args).c_str());
    }
  }

  std::printf("buffers: %zu (arena %" PRIu64 " bytes, state %" PRIu64
              " bytes, io %" PRIu64 " bytes)\n",
              m.buffers.size(), plan.arenaBytes, plan.stateBytes, plan.ioBytes);
  for (size_t i = 0; i < m.buffers.size(); ++i) {
    const BufferDesc &b = m.buffers[i];
    std::string kind = bufferKindName(b.kind);
    if (b.kind == BufferDesc::Kind::State)
      kind += " " + std::string(bufferRoleName(b.role)) + " layer " +
              std::to_string(b.layer);
    std::printf("  %s: %s %s %s = %" PRIu64 " bytes\n", b.id.c_str(),
                kind.c_str(), ckpt::dtypeName(b.dtype),
                shapeString(b.shape).c_str(), plan.bufferBytes[i]);
  }

  std::printf("kernels: %zu\n", m.kernels.size());
  for (const KernelDesc &k : m.kernels)
    std::printf("  %s: %s in %s, %" PRId64 " args (%s)\n", k.name.c_str(),
                k.symbol.c_str(), k.file.c_str(), k.numArgs, k.abi.c_str());

  std::printf("weights: %zu (%" PRIu64 " bytes)\n", m.weights.size(),
              plan.weightBytes);
  for (const WeightDesc &w : m.weights)
    std::printf("  %s: rank %" PRId64 " %s %s in %s%s\n", w.name.c_str(),
                w.rank, ckpt::dtypeName(w.dtype),
                ckpt::formatShape(w.shape).c_str(), w.file.c_str(),
                originString(w.from).c_str());

  std::printf("tokenizer: %s\n", m.tokenizerFile.empty()
                                     ? "none (jamba-run needs --prompt-ids)"
                                     : m.tokenizerFile.c_str());
  std::printf("files: %zu\n", m.files.size());
  for (const FileDesc &f : m.files)
    std::printf("  %s: %" PRIu64 " bytes, sha256 %s\n", f.path.c_str(), f.size,
                f.sha256.c_str());
}

static Status printJson(const Artifact &artifact, const MemoryPlan &plan) {
  const ArtifactManifest &m = artifact.manifest();
  JsonValue out = JsonValue::makeObject();
  out.set("artifact", JsonValue::makeString(artifact.directory()));
  JsonValue bindings = JsonValue::makeObject();
  for (const auto &[name, value] : plan.bindings)
    bindings.set(name, JsonValue::makeInt(value));
  out.set("dims", std::move(bindings));
  JsonValue memory = JsonValue::makeObject();
  memory.set("arena_bytes",
             JsonValue::makeInt(static_cast<int64_t>(plan.arenaBytes)));
  memory.set("state_bytes",
             JsonValue::makeInt(static_cast<int64_t>(plan.stateBytes)));
  memory.set("io_bytes",
             JsonValue::makeInt(static_cast<int64_t>(plan.ioBytes)));
  memory.set("weight_bytes",
             JsonValue::makeInt(static_cast<int64_t>(plan.weightBytes)));
  JsonValue buffers = JsonValue::makeObject();
  for (size_t i = 0; i < m.buffers.size(); ++i)
    buffers.set(m.buffers[i].id,
                JsonValue::makeInt(static_cast<int64_t>(plan.bufferBytes[i])));
  memory.set("buffer_bytes", std::move(buffers));
  out.set("memory", std::move(memory));
  ckpt::StatusOr<JsonValue> manifest =
      ckpt::parseJson(writeManifest(m), "manifest");
  if (!manifest.ok())
    return manifest.status();
  out.set("manifest", std::move(*manifest));
  std::printf("%s\n", ckpt::writeJson(out, 2).c_str());
  return Status::success();
}

/// The tool; main checks that what it printed arrived.
static int run(int argc, char **argv) {
  std::string dir, exampleDir;
  bool json = false;
  int64_t batch = 1;
  std::optional<int64_t> context;
  std::optional<int64_t> seq;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> const char * {
      return i + 1 < argc ? argv[++i] : nullptr;
    };
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (arg == "--json") {
      json = true;
    } else if (arg == "--batch" || arg == "--context" || arg == "--seq") {
      const char *text = value();
      int64_t v = 0;
      if (!parsePositive(text, v))
        return fail(arg + " expects a positive integer, got '" +
                    (text ? text : "") + "'");
      if (arg == "--batch")
        batch = v;
      else if (arg == "--context")
        context = v;
      else
        seq = v;
    } else if (arg == "--write-example") {
      const char *text = value();
      if (!text)
        return fail("--write-example expects a directory");
      exampleDir = text;
    } else if (!arg.empty() && arg[0] == '-') {
      return fail("unknown option '" + arg + "' (see --help)");
    } else if (dir.empty()) {
      dir = arg;
    } else {
      return fail("unexpected argument '" + arg + "' (see --help)");
    }
  }

  if (!exampleDir.empty()) {
    if (!dir.empty())
      return fail("--write-example takes no artifact argument");
    Status s = writeExampleArtifact(exampleDir);
    return s.ok() ? 0 : fail(s.message());
  }
  if (dir.empty())
    return fail("expected an artifact directory (see --help)");

  StatusOr<std::unique_ptr<Artifact>> artifact = Artifact::open(dir);
  if (!artifact.ok())
    return fail(artifact.status().message());
  const ArtifactManifest &m = (*artifact)->manifest();
  StatusOr<DimBindings> bindings =
      bindDims(m, batch, context ? *context : defaultContextLength(m), seq);
  if (!bindings.ok())
    return fail("artifact " + dir + ": " + bindings.status().message());
  StatusOr<MemoryPlan> plan = planMemory(m, *bindings);
  if (!plan.ok())
    return fail("artifact " + dir + ": " + plan.status().message());
  if (json) {
    Status s = printJson(**artifact, *plan);
    if (!s.ok())
      return fail(s.message());
  } else {
    printText(**artifact, *plan);
  }
  return 0;
}

int main(int argc, char **argv) {
  int rc = run(argc, argv);
  if (std::string error = ::jamba::tools::stdoutError(); !error.empty())
    return fail(error);
  return rc;
}

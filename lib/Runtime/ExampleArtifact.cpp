//===- ExampleArtifact.cpp - A tiny artifact for tests --------------------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//

#include "jamba/Runtime/ExampleArtifact.h"
#include "jamba/Runtime/ArtifactWriter.h"

#include <cmath>
#include <cstdio>
#include <unistd.h>

using namespace jamba;
using namespace jamba::rt;

ckpt::JambaConfig rt::exampleConfig() {
  ckpt::JambaConfig c;
  c.architectures = {"JambaForCausalLM"};
  c.modelType = "jamba";
  c.vocabSize = 128;
  c.hiddenSize = 64;
  c.intermediateSize = 128;
  c.numHiddenLayers = 2;
  c.numAttentionHeads = 4;
  c.numKeyValueHeads = 2;
  c.numExperts = 4;
  c.numExpertsPerTok = 2;
  c.expertLayerPeriod = 2;
  c.expertLayerOffset = 1;
  c.attnLayerPeriod = 2;
  c.attnLayerOffset = 1;
  c.mambaDState = 8;
  c.mambaDConv = 4;
  c.mambaExpand = 2;
  c.mambaDtRank = 4;
  c.useMambaKernels = false;
  c.torchDtype = "float32";
  return c;
}

namespace {

BufferDesc buffer(std::string id, DType dtype, std::vector<DimExpr> shape,
                  BufferDesc::Kind kind,
                  BufferDesc::Role role = BufferDesc::Role::None,
                  int64_t layer = -1) {
  BufferDesc b;
  b.id = std::move(id);
  b.dtype = dtype;
  b.shape = std::move(shape);
  b.kind = kind;
  b.role = role;
  b.layer = layer;
  return b;
}

KernelDesc kernel(std::string name, int64_t numArgs) {
  KernelDesc k;
  k.symbol = "jamba_" + name;
  k.name = std::move(name);
  k.file = "kernels/cpu.so";
  k.numArgs = numArgs;
  return k;
}

WeightDesc weight(std::string name, DType dtype, std::vector<int64_t> shape) {
  WeightDesc w;
  w.name = std::move(name);
  w.file = "weights/rank-0.safetensors";
  w.dtype = dtype;
  w.shape = std::move(shape);
  return w;
}

Step step(std::string kernelName, std::vector<StepArg> args) {
  Step s;
  s.kernel = std::move(kernelName);
  s.args = std::move(args);
  return s;
}

DimExpr sym(const char *name) { return DimExpr::symbol(name); }
DimExpr num(int64_t value) { return DimExpr::constant(value); }

} // namespace

ArtifactManifest rt::exampleManifest() {
  using Kind = BufferDesc::Kind;
  using Role = BufferDesc::Role;
  ArtifactManifest m;
  m.generator = "jamba-mlir example artifact (a testing aid)";
  m.setModelConfig(exampleConfig());
  m.dims = {{kDimBatch, 64}, {kDimSeq, 4096}, {kDimCapacity, 262144}};

  m.buffers = {
      buffer("tokens", DType::I64, {sym("batch"), sym("seq")}, Kind::Io),
      buffer("hidden", DType::F32, {sym("batch"), sym("seq"), num(64)},
             Kind::Temp),
      buffer("mixed", DType::F32,
             {DimExpr::symbol("batch").times("seq"), num(64)}, Kind::Temp),
      buffer("normed", DType::F32, {sym("batch"), sym("seq"), num(64)},
             Kind::Temp),
      buffer("logits", DType::F32, {sym("batch"), sym("seq"), num(128)},
             Kind::Io),
      buffer("layers.0.conv", DType::F32, {sym("batch"), num(3), num(128)},
             Kind::State, Role::Conv, 0),
      buffer("layers.0.ssm", DType::F32, {sym("batch"), num(128), num(8)},
             Kind::State, Role::Ssm, 0),
      buffer("layers.1.key", DType::F32,
             {sym("batch"), sym("capacity"), num(2), num(16)}, Kind::State,
             Role::KvKey, 1),
      buffer("layers.1.value", DType::F32,
             {sym("batch"), sym("capacity"), num(2), num(16)}, Kind::State,
             Role::KvValue, 1),
  };
  m.kernels = {kernel("embed", 4), kernel("mamba_layer", 4),
               kernel("attention_layer", 5), kernel("rms_norm", 4),
               kernel("lm_head", 3)};
  m.weights = {
      weight("model.embed_tokens.weight", DType::F32, {128, 64}),
      weight("model.final_layernorm.weight", DType::F32, {64}),
      weight("lm_head.weight", DType::BF16, {128, 64}),
  };

  std::vector<Step> steps = {
      step("embed", {StepArg::buffer("tokens"),
                     StepArg::weight("model.embed_tokens.weight"),
                     StepArg::buffer("hidden"), StepArg::dim("seq")}),
      step("mamba_layer",
           {StepArg::buffer("hidden"), StepArg::buffer("layers.0.conv"),
            StepArg::buffer("layers.0.ssm"), StepArg::buffer("mixed")}),
      step("attention_layer",
           {StepArg::buffer("mixed"), StepArg::buffer("layers.1.key"),
            StepArg::buffer("layers.1.value"), StepArg::buffer("hidden"),
            StepArg::dim("capacity")}),
      step("rms_norm", {StepArg::buffer("hidden"),
                        StepArg::weight("model.final_layernorm.weight"),
                        StepArg::buffer("normed"), StepArg::real(1e-6)}),
      step("lm_head",
           {StepArg::buffer("normed"), StepArg::weight("lm_head.weight"),
            StepArg::buffer("logits")}),
  };
  std::vector<std::string> state = {"layers.0.conv", "layers.0.ssm",
                                    "layers.1.key", "layers.1.value"};
  for (const char *name : {"prefill", "decode"}) {
    EntryPoint e;
    e.name = name;
    e.inputs = {"tokens"};
    e.inputs.insert(e.inputs.end(), state.begin(), state.end());
    e.outputs = {"logits"};
    e.outputs.insert(e.outputs.end(), state.begin(), state.end());
    e.steps = steps;
    m.entryPoints.push_back(std::move(e));
  }
  return m;
}

Status rt::writeExampleArtifact(const std::string &dir, bool overwrite) {
  ArtifactManifest m = exampleManifest();
  ckpt::SafeTensorsWriter writer;
  for (const WeightDesc &w : m.weights) {
    int64_t numel = 1;
    for (int64_t d : w.shape)
      numel *= d;
    std::vector<float> values(static_cast<size_t>(numel));
    for (size_t i = 0; i < values.size(); ++i)
      values[i] = static_cast<float>(std::sin(0.1 * double(i + 1)));
    JAMBA_CKPT_RETURN_IF_ERROR(
        writer.addFloats(w.name, w.dtype, w.shape, values));
  }
  writer.setMetadata("format", "pt");
  std::string weightsPath =
      dir + ".example-weights-" + std::to_string(::getpid());
  JAMBA_CKPT_RETURN_IF_ERROR(writer.write(weightsPath));

  std::vector<ArtifactFileSource> files = {
      ArtifactFileSource::fromBytes(
          "kernels/cpu.so",
          "placeholder: the example artifact holds no machine code\n"),
      ArtifactFileSource::fromFile("weights/rank-0.safetensors", weightsPath),
  };
  WriteOptions options;
  options.overwrite = overwrite;
  Status s = writeArtifact(m, dir, files, options);
  std::remove(weightsPath.c_str());
  return s;
}

//===- CheckpointTest.cpp - Tests for checkpoint directories --------------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//

#include "jamba/Checkpoint/Checkpoint.h"
#include "jamba/Checkpoint/Json.h"

#include "TestUtil.h"

#include "gtest/gtest.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

using namespace jamba::ckpt;
using namespace jamba::ckpt::testing;

namespace {

/// A 2-layer model covering every tensor kind: layer 0 is Mamba + dense MLP,
/// layer 1 is attention + MoE (2 experts). H = 8, I = 4, Di = 16, N = 2,
/// K = 3, R = 2, V = 10.
const char kConfig[] = R"({
  "model_type": "jamba", "vocab_size": 10, "hidden_size": 8,
  "intermediate_size": 4, "num_hidden_layers": 2, "num_attention_heads": 2,
  "num_key_value_heads": 1, "num_experts": 2, "num_experts_per_tok": 1,
  "attn_layer_period": 2, "attn_layer_offset": 1, "expert_layer_period": 2,
  "expert_layer_offset": 1, "mamba_d_state": 2, "mamba_d_conv": 3,
  "mamba_expand": 2, "mamba_dt_rank": 2, "tie_word_embeddings": false
})";

struct Tensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> values;
};

JambaConfig testConfig(const std::string &text = kConfig) {
  StatusOr<JambaConfig> c = parseConfig(text, "config.json");
  EXPECT_TRUE(c.ok()) << c.status().message();
  return c.ok() ? *c : JambaConfig();
}

/// Values that are exact in bf16 and differ between tensors.
std::vector<float> valuesFor(const std::string &name, size_t n) {
  size_t h = std::hash<std::string>()(name) % 64;
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i)
    v[i] = static_cast<float>(static_cast<int>((h + 3 * i) % 97) - 48) / 8.0f;
  return v;
}

/// Every tensor of SPEC 1.4 for `config`, with distinct values.
std::vector<Tensor> fullModel(const JambaConfig &config) {
  std::vector<Tensor> tensors;
  for (const std::string &name : expectedTensorNames(config)) {
    StatusOr<std::vector<int64_t>> shape = expectedShape(config, name);
    EXPECT_TRUE(shape.ok()) << shape.status().message();
    size_t n = 1;
    for (int64_t d : *shape)
      n *= static_cast<size_t>(d);
    tensors.push_back({name, *shape, valuesFor(name, n)});
  }
  return tensors;
}

const Tensor &get(const std::vector<Tensor> &tensors, const std::string &name) {
  for (const Tensor &t : tensors)
    if (t.name == name)
      return t;
  static Tensor none;
  ADD_FAILURE() << "no tensor " << name;
  return none;
}

/// Writes `tensors` into files chosen by `fileFor` (default: one
/// model.safetensors) and the config into `dir`.
void writeCheckpoint(
    const TempDir &dir, const std::vector<Tensor> &tensors,
    const std::string &configText = kConfig, DType dtype = DType::F32,
    std::function<std::string(const std::string &)> fileFor = nullptr) {
  writeFile(dir.file("config.json"), configText);
  std::map<std::string, SafeTensorsWriter> writers;
  for (const Tensor &t : tensors) {
    std::string file = fileFor ? fileFor(t.name) : "model.safetensors";
    Status st = writers[file].addFloats(t.name, dtype, t.shape, t.values);
    ASSERT_TRUE(st.ok()) << st.message();
  }
  for (auto &w : writers) {
    Status st = w.second.write(dir.file(w.first));
    ASSERT_TRUE(st.ok()) << st.message();
  }
}

std::unique_ptr<Checkpoint> openOk(const TempDir &dir) {
  StatusOr<std::unique_ptr<Checkpoint>> c = Checkpoint::open(dir.path());
  EXPECT_TRUE(c.ok()) << c.status().message();
  return c.ok() ? std::move(*c) : nullptr;
}

std::string openError(const TempDir &dir) {
  StatusOr<std::unique_ptr<Checkpoint>> c = Checkpoint::open(dir.path());
  EXPECT_FALSE(c.ok());
  return c.ok() ? std::string() : c.status().message();
}

#define EXPECT_CONTAINS(haystack, needle)                                      \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos)             \
      << "message: " << (haystack)

/// Loads every tensor of `expected` through the canonical names and compares.
void expectAllWeights(const Checkpoint &ckpt,
                      const std::vector<Tensor> &expected) {
  for (const Tensor &t : expected) {
    std::vector<float> out;
    Status st = ckpt.loadWeightF32(t.name, t.shape, out);
    ASSERT_TRUE(st.ok()) << st.message();
    EXPECT_EQ(out, t.values) << t.name;
  }
}

/// The per-expert values of `proj` in layer 1 stacked over the experts.
std::vector<float> stacked(const std::vector<Tensor> &tensors,
                           const std::string &proj) {
  std::vector<float> all;
  for (int e = 0; e < 2; ++e) {
    const Tensor &t = get(tensors, "model.layers.1.feed_forward.experts." +
                                       std::to_string(e) + "." + proj);
    all.insert(all.end(), t.values.begin(), t.values.end());
  }
  return all;
}

//===----------------------------------------------------------------------===//
// Names and shapes
//===----------------------------------------------------------------------===//

TEST(ExpectedShapeTest, NamesFollowTheSchedule) {
  JambaConfig c = testConfig();
  std::vector<std::string> names = expectedTensorNames(c);
  EXPECT_EQ(names.size(), 33u);
  EXPECT_EQ(names.front(), "model.embed_tokens.weight");
  EXPECT_EQ(names.back(), "lm_head.weight");
  c.tieWordEmbeddings = true;
  c.mambaConvBias = false;
  c.mambaProjBias = true;
  names = expectedTensorNames(c);
  EXPECT_EQ(names.back(), "model.final_layernorm.weight");
  EXPECT_EQ(std::count(names.begin(), names.end(),
                       "model.layers.0.mamba.conv1d.bias"),
            0);
  EXPECT_EQ(std::count(names.begin(), names.end(),
                       "model.layers.0.mamba.out_proj.bias"),
            1);
  EXPECT_EQ(names.size(), 33u - 1 - 1 + 2);
}

TEST(ExpectedShapeTest, Shapes) {
  JambaConfig c = testConfig();
  auto shape = [&](const std::string &name) {
    StatusOr<std::vector<int64_t>> s = expectedShape(c, name);
    EXPECT_TRUE(s.ok()) << s.status().message();
    return s.ok() ? *s : std::vector<int64_t>{};
  };
  using S = std::vector<int64_t>;
  EXPECT_EQ(shape("model.embed_tokens.weight"), (S{10, 8}));
  EXPECT_EQ(shape("model.layers.0.mamba.in_proj.weight"), (S{32, 8}));
  EXPECT_EQ(shape("model.layers.0.mamba.conv1d.weight"), (S{16, 1, 3}));
  EXPECT_EQ(shape("model.layers.0.mamba.x_proj.weight"), (S{6, 16}));
  EXPECT_EQ(shape("model.layers.0.mamba.dt_proj.weight"), (S{16, 2}));
  EXPECT_EQ(shape("model.layers.0.mamba.A_log"), (S{16, 2}));
  EXPECT_EQ(shape("model.layers.0.mamba.out_proj.weight"), (S{8, 16}));
  EXPECT_EQ(shape("model.layers.0.feed_forward.down_proj.weight"), (S{8, 4}));
  EXPECT_EQ(shape("model.layers.1.self_attn.q_proj.weight"), (S{8, 8}));
  EXPECT_EQ(shape("model.layers.1.self_attn.k_proj.weight"), (S{4, 8}));
  EXPECT_EQ(shape("model.layers.1.self_attn.o_proj.weight"), (S{8, 8}));
  EXPECT_EQ(shape("model.layers.1.feed_forward.router.weight"), (S{2, 8}));
  EXPECT_EQ(shape("model.layers.1.feed_forward.experts.{e}.gate_proj.weight"),
            (S{2, 4, 8}));
  EXPECT_EQ(shape("model.layers.1.feed_forward.experts.1.down_proj.weight"),
            (S{8, 4}));
  EXPECT_EQ(shape("model.layers.1.feed_forward.experts.gate_up_proj"),
            (S{2, 8, 8}));
  EXPECT_EQ(shape("model.layers.1.moe.experts.down_proj"), (S{2, 8, 4}));

  auto error = [&](const std::string &name) {
    StatusOr<std::vector<int64_t>> s = expectedShape(c, name);
    EXPECT_FALSE(s.ok()) << name;
    return s.ok() ? std::string() : s.status().message();
  };
  EXPECT_EQ(error("model.layers.2.input_layernorm.weight"),
            "tensor 'model.layers.2.input_layernorm.weight': layer 2 is out of "
            "range (num_hidden_layers = 2)");
  EXPECT_EQ(error("model.layers.0.self_attn.q_proj.weight"),
            "tensor 'model.layers.0.self_attn.q_proj.weight': attention weight "
            "of a Mamba layer");
  EXPECT_CONTAINS(error("model.layers.1.feed_forward.experts.2.up_proj.weight"),
                  "expert index '2' is not in [0, 2)");
  EXPECT_CONTAINS(error("model.layers.0.mamba.in_proj.bias"),
                  "exists only with mamba_proj_bias");
  EXPECT_CONTAINS(error("model.layers.x.mamba.D"), "malformed layer index");
  EXPECT_CONTAINS(error("foo"), "not a Jamba tensor name");
}

//===----------------------------------------------------------------------===//
// Layouts
//===----------------------------------------------------------------------===//

TEST(CheckpointTest, SingleFile) {
  TempDir dir;
  std::vector<Tensor> model = fullModel(testConfig());
  writeCheckpoint(dir, model);
  std::unique_ptr<Checkpoint> ckpt = openOk(dir);
  ASSERT_TRUE(ckpt);
  EXPECT_EQ(ckpt->config(), testConfig());
  EXPECT_EQ(ckpt->files().size(), 1u);
  EXPECT_EQ(ckpt->names().size(), model.size());
  EXPECT_EQ(ckpt->names().front(), "model.embed_tokens.weight");
  EXPECT_NE(ckpt->find("model.layers.0.mamba.D"), nullptr);
  EXPECT_EQ(ckpt->find("model.layers.0.mamba.d"), nullptr);
  expectAllWeights(*ckpt, model);

  std::vector<double> out64;
  const Tensor &d = get(model, "model.layers.0.mamba.D");
  ASSERT_TRUE(ckpt->loadWeightF64(d.name, d.shape, out64).ok());
  EXPECT_EQ(out64, std::vector<double>(d.values.begin(), d.values.end()));
}

TEST(CheckpointTest, StacksPerExpertTensors) {
  TempDir dir;
  std::vector<Tensor> model = fullModel(testConfig());
  writeCheckpoint(dir, model);
  std::unique_ptr<Checkpoint> ckpt = openOk(dir);
  ASSERT_TRUE(ckpt);
  for (const char *proj :
       {"gate_proj.weight", "up_proj.weight", "down_proj.weight"}) {
    std::vector<int64_t> shape = std::string(proj) == "down_proj.weight"
                                     ? std::vector<int64_t>{2, 8, 4}
                                     : std::vector<int64_t>{2, 4, 8};
    std::vector<float> out;
    Status st = ckpt->loadWeightF32(
        std::string("model.layers.1.feed_forward.experts.{e}.") + proj, shape,
        out);
    ASSERT_TRUE(st.ok()) << st.message();
    EXPECT_EQ(out, stacked(model, proj)) << proj;
  }
}

TEST(CheckpointTest, ShardedIndex) {
  TempDir dir;
  std::vector<Tensor> model = fullModel(testConfig());
  auto fileFor = [](const std::string &name) {
    return name.find("layers.1.") != std::string::npos
               ? "model-00002-of-00002.safetensors"
               : "model-00001-of-00002.safetensors";
  };
  writeCheckpoint(dir, model, kConfig, DType::F32, fileFor);
  JsonValue map = JsonValue::makeObject();
  for (const Tensor &t : model)
    map.set(t.name, JsonValue::makeString(fileFor(t.name)));
  JsonValue index = JsonValue::makeObject();
  index.set("metadata", JsonValue::makeObject());
  index.set("weight_map", map);
  writeFile(dir.file("model.safetensors.index.json"), writeJson(index, 2));

  std::unique_ptr<Checkpoint> ckpt = openOk(dir);
  ASSERT_TRUE(ckpt);
  EXPECT_EQ(ckpt->files().size(), 2u);
  EXPECT_EQ(ckpt->names().size(), model.size());
  expectAllWeights(*ckpt, model);
}

TEST(CheckpointTest, IndexErrors) {
  TempDir dir;
  std::vector<Tensor> model = fullModel(testConfig());
  writeCheckpoint(dir, model);
  std::string indexPath = dir.file("model.safetensors.index.json");

  writeFile(indexPath, R"({"weight_map": {"model.embed_tokens.weight":
                           "model-00009.safetensors"}})");
  EXPECT_CONTAINS(openError(dir), "weight_map entry 'model.embed_tokens.weight'"
                                  ": " +
                                      dir.file("model-00009.safetensors") +
                                      ": cannot open");

  writeFile(indexPath, R"({"weight_map": {"model.embed_tokens.weight":
                           "../model.safetensors"}})");
  EXPECT_CONTAINS(openError(dir),
                  "file name '../model.safetensors' must be a plain name "
                  "inside the checkpoint directory");
  writeFile(indexPath, R"({"weight_map": {"a": "sub/model.safetensors"}})");
  EXPECT_CONTAINS(openError(dir), "must be a plain name");
  writeFile(indexPath, R"({"weight_map": {"a": ".."}})");
  EXPECT_CONTAINS(openError(dir), "must be a plain name");

  writeFile(indexPath, R"({"weight_map": {"not.there": "model.safetensors"}})");
  EXPECT_EQ(openError(dir),
            indexPath +
                ": tensor 'not.there' is listed in "
                "'model.safetensors' but that file does not contain it");

  writeFile(indexPath, R"({"weight_map": {"a": 3}})");
  EXPECT_CONTAINS(openError(dir),
                  "weight_map entry 'a': expected a file name string, got "
                  "number");
  writeFile(indexPath, R"({"metadata": {}})");
  EXPECT_CONTAINS(openError(dir), "expected an object with a 'weight_map'");
  writeFile(indexPath, R"({"weight_map": {"a": "x", "a": "y"}})");
  EXPECT_CONTAINS(openError(dir), "duplicate key 'a'");
}

TEST(CheckpointTest, GlobbedFilesAndDuplicates) {
  TempDir dir;
  std::vector<Tensor> model = fullModel(testConfig());
  auto fileFor = [](const std::string &name) {
    return name.find("layers.1.") != std::string::npos ? "b.safetensors"
                                                       : "a.safetensors";
  };
  writeCheckpoint(dir, model, kConfig, DType::F32, fileFor);
  {
    std::unique_ptr<Checkpoint> ckpt = openOk(dir);
    ASSERT_TRUE(ckpt);
    ASSERT_EQ(ckpt->files().size(), 2u);
    EXPECT_EQ(ckpt->files()[0]->path(), dir.file("a.safetensors"));
    expectAllWeights(*ckpt, model);
  }
  // The same tensor in a third file is an error naming both files.
  SafeTensorsWriter dup;
  ASSERT_TRUE(dup.addFloats("model.layers.0.mamba.D", DType::F32, {16},
                            std::vector<float>(16, 0.0f))
                  .ok());
  ASSERT_TRUE(dup.write(dir.file("c.safetensors")).ok());
  EXPECT_EQ(openError(dir), "checkpoint " + dir.path() +
                                ": tensor 'model.layers.0.mamba.D' appears in "
                                "both " +
                                dir.file("a.safetensors") + " and " +
                                dir.file("c.safetensors"));
}

TEST(CheckpointTest, DirectoryErrors) {
  TempDir dir;
  EXPECT_CONTAINS(openError(dir), dir.file("config.json") + ": cannot open");
  writeFile(dir.file("config.json"), kConfig);
  EXPECT_EQ(openError(dir), "checkpoint " + dir.path() +
                                ": no weights found (expected "
                                "model.safetensors.index.json, "
                                "model.safetensors or *.safetensors)");
  writeFile(dir.file("config.json"), R"({"hidden_act": "relu"})");
  EXPECT_CONTAINS(openError(dir), "config.json: key 'hidden_act'");
  writeFile(dir.file("config.json"), kConfig);
  writeFile(dir.file("model.safetensors"), "");
  EXPECT_CONTAINS(openError(dir), "model.safetensors: file is empty");

  StatusOr<std::unique_ptr<Checkpoint>> c =
      Checkpoint::open("/nonexistent/ckpt");
  ASSERT_FALSE(c.ok());
  EXPECT_CONTAINS(c.status().message(),
                  "checkpoint /nonexistent/ckpt: cannot access directory");
}

//===----------------------------------------------------------------------===//
// Name resolution
//===----------------------------------------------------------------------===//

TEST(CheckpointTest, MoeVariantNames) {
  TempDir dir;
  std::vector<Tensor> model = fullModel(testConfig());
  std::vector<Tensor> renamed = model;
  for (Tensor &t : renamed) {
    size_t pos = t.name.find(".feed_forward.");
    if (pos != std::string::npos)
      t.name.replace(pos, 14, ".moe.");
  }
  writeCheckpoint(dir, renamed);
  std::unique_ptr<Checkpoint> ckpt = openOk(dir);
  ASSERT_TRUE(ckpt);
  EXPECT_EQ(ckpt->find("model.layers.1.feed_forward.router.weight"), nullptr);
  expectAllWeights(*ckpt, model); // Through the canonical names.
  std::vector<float> out;
  ASSERT_TRUE(ckpt->loadWeightF32(
                      "model.layers.1.feed_forward.experts.{e}.up_proj.weight",
                      {2, 4, 8}, out)
                  .ok());
  EXPECT_EQ(out, stacked(model, "up_proj.weight"));
}

TEST(CheckpointTest, DenseMlpStoredAsExpertZero) {
  TempDir dir;
  std::vector<Tensor> model = fullModel(testConfig());
  std::vector<Tensor> renamed = model;
  for (Tensor &t : renamed)
    if (t.name.rfind("model.layers.0.feed_forward.", 0) == 0)
      t.name.insert(28, "experts.0.");
  ASSERT_NE(std::find_if(renamed.begin(), renamed.end(),
                         [](const Tensor &t) {
                           return t.name == "model.layers.0.feed_forward."
                                            "experts.0.gate_proj.weight";
                         }),
            renamed.end());
  writeCheckpoint(dir, renamed);
  std::unique_ptr<Checkpoint> ckpt = openOk(dir);
  ASSERT_TRUE(ckpt);
  expectAllWeights(*ckpt, model);
}

/// Replaces layer 1's per-expert tensors by the transformers-v5 fused ones.
std::vector<Tensor> fuseExperts(const std::vector<Tensor> &model,
                                const std::string &suffix) {
  std::vector<Tensor> out;
  for (const Tensor &t : model)
    if (t.name.find(".experts.") == std::string::npos)
      out.push_back(t);
  Tensor gateUp{"model.layers.1.feed_forward.experts.gate_up_proj" + suffix,
                {2, 8, 8},
                {}};
  Tensor down{
      "model.layers.1.feed_forward.experts.down_proj" + suffix, {2, 8, 4}, {}};
  for (int e = 0; e < 2; ++e) {
    std::string p = "model.layers.1.feed_forward.experts." + std::to_string(e);
    for (const char *proj : {".gate_proj.weight", ".up_proj.weight"}) {
      const Tensor &t = get(model, p + proj);
      gateUp.values.insert(gateUp.values.end(), t.values.begin(),
                           t.values.end());
    }
    const Tensor &d = get(model, p + ".down_proj.weight");
    down.values.insert(down.values.end(), d.values.begin(), d.values.end());
  }
  out.push_back(gateUp);
  out.push_back(down);
  return out;
}

TEST(CheckpointTest, FusedV5ExpertsMatchPerExpert) {
  std::vector<Tensor> model = fullModel(testConfig());
  for (const char *suffix : {"", ".weight"}) {
    TempDir dir;
    writeCheckpoint(dir, fuseExperts(model, suffix));
    std::unique_ptr<Checkpoint> ckpt = openOk(dir);
    ASSERT_TRUE(ckpt);
    for (const char *proj :
         {"gate_proj.weight", "up_proj.weight", "down_proj.weight"}) {
      std::vector<int64_t> shape = std::string(proj) == "down_proj.weight"
                                       ? std::vector<int64_t>{2, 8, 4}
                                       : std::vector<int64_t>{2, 4, 8};
      std::vector<float> out;
      Status st = ckpt->loadWeightF32(
          std::string("model.layers.1.feed_forward.experts.{e}.") + proj, shape,
          out);
      ASSERT_TRUE(st.ok()) << st.message();
      EXPECT_EQ(out, stacked(model, proj))
          << proj << " suffix '" << suffix << "'";
    }
  }
}

/// `model`'s experts in layout 0 (per-expert tensors), 1 (fused ones) or 2
/// (fused ones under `.moe.`).
std::vector<Tensor> expertLayout(const std::vector<Tensor> &model, int layout) {
  std::vector<Tensor> tensors =
      layout == 0 ? model : fuseExperts(model, layout == 1 ? "" : ".weight");
  if (layout == 2)
    for (Tensor &t : tensors)
      if (t.name.find(".experts.") != std::string::npos)
        t.name.replace(t.name.find(".feed_forward."), 14, ".moe.");
  return tensors;
}

TEST(CheckpointTest, LoadsOneExpertAtATime) {
  std::vector<Tensor> model = fullModel(testConfig());
  // Per-expert tensors, fused ones, and fused ones under `.moe.`.
  for (int layout = 0; layout < 3; ++layout) {
    std::vector<Tensor> tensors = expertLayout(model, layout);
    TempDir dir;
    writeCheckpoint(dir, tensors);
    std::unique_ptr<Checkpoint> ckpt = openOk(dir);
    ASSERT_TRUE(ckpt);
    for (const char *proj :
         {"gate_proj.weight", "up_proj.weight", "down_proj.weight"}) {
      std::vector<int64_t> shape = std::string(proj) == "down_proj.weight"
                                       ? std::vector<int64_t>{8, 4}
                                       : std::vector<int64_t>{4, 8};
      std::string pattern =
          std::string("model.layers.1.feed_forward.experts.{e}.") + proj;
      for (int e = 0; e < 2; ++e) {
        std::vector<float> out;
        Status st = ckpt->loadExpertWeightF32(pattern, e, shape, out);
        ASSERT_TRUE(st.ok()) << st.message();
        EXPECT_EQ(out, get(model, "model.layers.1.feed_forward.experts." +
                                      std::to_string(e) + "." + proj)
                           .values)
            << proj << " expert " << e << " layout " << layout;
        WeightSlice slice;
        ASSERT_TRUE(ckpt->locateWeight(pattern, shape, slice, e).ok());
        EXPECT_EQ(slice.count, 32u);
        EXPECT_EQ(slice.tensor->name.find(".experts.{e}"), std::string::npos);
      }
    }
    std::vector<float> out;
    std::string gate = "model.layers.1.feed_forward.experts.{e}.gate_proj."
                       "weight";
    EXPECT_CONTAINS(ckpt->loadExpertWeightF32(gate, 2, {4, 8}, out).message(),
                    "expert 2 is not in [0, 2)");
    EXPECT_CONTAINS(ckpt->loadExpertWeightF32(gate, 0, {8, 4}, out).message(),
                    "expected shape");
    EXPECT_CONTAINS(ckpt->loadExpertWeightF32("model.layers.1.feed_forward."
                                              "experts.0.gate_proj.weight",
                                              0, {4, 8}, out)
                        .message(),
                    "must contain exactly one '{e}'");
  }
  // A plain canonical name is located as a whole tensor.
  TempDir dir;
  writeCheckpoint(dir, model);
  std::unique_ptr<Checkpoint> ckpt = openOk(dir);
  ASSERT_TRUE(ckpt);
  WeightSlice slice;
  ASSERT_TRUE(ckpt->locateWeight("model.layers.0.mamba.D", {16}, slice).ok());
  EXPECT_EQ(slice.tensor->name, "model.layers.0.mamba.D");
  EXPECT_EQ(slice.first, 0u);
  EXPECT_EQ(slice.count, 16u);
  EXPECT_CONTAINS(
      ckpt->locateWeight("model.layers.0.mamba.E", {16}, slice).message(),
      "'model.layers.0.mamba.E' not found");
}

TEST(CheckpointTest, FusedV5WrongShape) {
  TempDir dir;
  std::vector<Tensor> fused = fuseExperts(fullModel(testConfig()), "");
  for (Tensor &t : fused) {
    if (t.name == "model.layers.1.feed_forward.experts.gate_up_proj") {
      t.shape = {2, 4, 16};
    }
  }
  writeCheckpoint(dir, fused);
  std::unique_ptr<Checkpoint> ckpt = openOk(dir);
  ASSERT_TRUE(ckpt);
  std::vector<float> out;
  Status st = ckpt->loadWeightF32(
      "model.layers.1.feed_forward.experts.{e}.gate_proj.weight", {2, 4, 8},
      out);
  EXPECT_EQ(st.message(),
            "checkpoint " + dir.path() +
                ": tensor 'model.layers.1.feed_forward.experts.gate_up_proj' "
                "(fused experts for "
                "'model.layers.1.feed_forward.experts.{e}.gate_proj.weight'): "
                "expected shape [2, 8, 8], got [2, 4, 16]");
}

TEST(CheckpointTest, TiedLmHead) {
  std::string tied = kConfig;
  tied.replace(tied.find("\"tie_word_embeddings\": false"), 28,
               "\"tie_word_embeddings\": true");
  JambaConfig config = testConfig(tied);
  ASSERT_TRUE(config.tieWordEmbeddings);
  std::vector<Tensor> model = fullModel(config); // No lm_head.
  TempDir dir;
  writeCheckpoint(dir, model, tied);
  std::unique_ptr<Checkpoint> ckpt = openOk(dir);
  ASSERT_TRUE(ckpt);
  std::vector<float> out;
  ASSERT_TRUE(ckpt->loadWeightF32("lm_head.weight", {10, 8}, out).ok());
  EXPECT_EQ(out, get(model, "model.embed_tokens.weight").values);

  // Untied: a missing lm_head is an error.
  TempDir untiedDir;
  writeCheckpoint(untiedDir, model);
  ckpt = openOk(untiedDir);
  ASSERT_TRUE(ckpt);
  Status st = ckpt->loadWeightF32("lm_head.weight", {10, 8}, out);
  EXPECT_EQ(st.message(), "checkpoint " + untiedDir.path() +
                              ": tensor 'lm_head.weight' not found");
}

TEST(CheckpointTest, MissingTensorAndWrongShape) {
  TempDir dir;
  std::vector<Tensor> model = fullModel(testConfig());
  model.erase(std::remove_if(model.begin(), model.end(),
                             [](const Tensor &t) {
                               return t.name == "model.layers.0.mamba.D" ||
                                      t.name == "model.layers.1.feed_forward."
                                                "experts.1.up_proj.weight";
                             }),
              model.end());
  writeCheckpoint(dir, model);
  std::unique_ptr<Checkpoint> ckpt = openOk(dir);
  ASSERT_TRUE(ckpt);
  std::vector<float> out;

  Status st = ckpt->loadWeightF32("model.layers.0.mamba.D", {16}, out);
  EXPECT_EQ(st.message(), "checkpoint " + dir.path() +
                              ": tensor 'model.layers.0.mamba.D' not found");

  st = ckpt->loadWeightF32("model.layers.0.mamba.A_log", {16, 4}, out);
  EXPECT_EQ(st.message(), "checkpoint " + dir.path() +
                              ": tensor 'model.layers.0.mamba.A_log': "
                              "expected shape [16, 4], got [16, 2]");
  EXPECT_TRUE(out.empty());

  st = ckpt->loadWeightF32("model.layers.0.feed_forward.up_proj.weight", {4, 4},
                           out);
  EXPECT_EQ(st.message(),
            "checkpoint " + dir.path() +
                ": tensor 'model.layers.0.feed_forward.up_proj.weight': "
                "expected shape [4, 4], got [4, 8]");

  st = ckpt->loadWeightF32("model.layers.0.feed_forward.router.weight", {2, 8},
                           out);
  EXPECT_EQ(st.message(),
            "checkpoint " + dir.path() +
                ": tensor 'model.layers.0.feed_forward.router.weight' not "
                "found (also tried 'model.layers.0.moe.router.weight')");

  // One expert missing from an otherwise complete stack.
  st = ckpt->loadWeightF32(
      "model.layers.1.feed_forward.experts.{e}.up_proj.weight", {2, 4, 8}, out);
  EXPECT_EQ(st.message(),
            "checkpoint " + dir.path() +
                ": tensor 'model.layers.1.feed_forward.experts.1.up_proj."
                "weight' not found (expert 1 of 2)");

  // Per-expert shape mismatch inside a stack.
  st = ckpt->loadWeightF32(
      "model.layers.1.feed_forward.experts.{e}.gate_proj.weight", {2, 8, 4},
      out);
  EXPECT_EQ(st.message(),
            "checkpoint " + dir.path() +
                ": tensor 'model.layers.1.feed_forward.experts.0.gate_proj."
                "weight': expected shape [8, 4], got [4, 8]");

  // No per-expert and no fused tensors at all.
  st = ckpt->loadWeightF32(
      "model.layers.0.feed_forward.experts.{e}.gate_proj.weight", {2, 4, 8},
      out);
  EXPECT_CONTAINS(st.message(),
                  "tensor 'model.layers.0.feed_forward.experts.0.gate_proj."
                  "weight' not found (also tried");
  EXPECT_CONTAINS(st.message(), "the fused transformers-v5 expert tensors)");

  st = ckpt->loadWeightF32("model.layers.{e}.{e}", {2}, out);
  EXPECT_CONTAINS(st.message(), "has more than one '{e}'");
  st =
      ckpt->loadWeightF32("model.layers.1.feed_forward.experts.{e}.x", {}, out);
  EXPECT_CONTAINS(st.message(), "must start with a positive number of experts");
}

TEST(CheckpointTest, Bf16Checkpoint) {
  TempDir dir;
  std::vector<Tensor> model = fullModel(testConfig());
  writeCheckpoint(dir, model, kConfig, DType::BF16);
  std::unique_ptr<Checkpoint> ckpt = openOk(dir);
  ASSERT_TRUE(ckpt);
  EXPECT_EQ(ckpt->find("model.layers.0.mamba.D")->dtype, DType::BF16);
  expectAllWeights(*ckpt, model); // Values are exact in bf16.
  std::vector<double> out;
  const Tensor &t = get(model, "model.layers.1.self_attn.q_proj.weight");
  ASSERT_TRUE(ckpt->loadWeightF64(t.name, t.shape, out).ok());
  EXPECT_EQ(out, std::vector<double>(t.values.begin(), t.values.end()));
}

/// `values` as bf16 bytes (little-endian), as a bf16 checkpoint stores them.
std::vector<uint8_t> bf16Bytes(const std::vector<float> &values) {
  std::vector<uint8_t> out;
  for (float v : values) {
    uint16_t h = f32ToBf16(v);
    out.push_back(static_cast<uint8_t>(h));
    out.push_back(static_cast<uint8_t>(h >> 8));
  }
  return out;
}

// copyStoredBytes gives a weight's stored bytes when it is stored in the
// dtype asked for: a plain tensor, a `.moe.` variant, one expert of
// per-expert or fused tensors (the expert's own rows), and false for
// another dtype or a whole `{e}` stack, writing nothing then.
TEST(CheckpointTest, CopiesStoredBytesInTheirDtype) {
  std::vector<Tensor> model = fullModel(testConfig());
  for (int layout = 0; layout < 3; ++layout) {
    std::vector<Tensor> tensors = expertLayout(model, layout);
    TempDir dir;
    writeCheckpoint(dir, tensors, kConfig, DType::BF16);
    std::unique_ptr<Checkpoint> ckpt = openOk(dir);
    ASSERT_TRUE(ckpt);
    for (const Tensor &t : model) {
      std::vector<uint8_t> bytes(2 * t.values.size(), 0);
      size_t at = t.name.find(".experts.");
      StatusOr<bool> copied = false;
      if (at == std::string::npos) {
        copied = ckpt->copyStoredBytes(t.name, -1, t.shape, DType::BF16,
                                       bytes.data(), bytes.size());
      } else {
        // experts.<e>.<proj>: expert e of the stack.
        std::string pattern = t.name;
        size_t digit = at + 9;
        int64_t expert = pattern[digit] - '0';
        pattern.replace(digit, 1, "{e}");
        copied = ckpt->copyStoredBytes(pattern, expert, t.shape, DType::BF16,
                                       bytes.data(), bytes.size());
      }
      ASSERT_TRUE(copied.ok()) << t.name << ": " << copied.status().message();
      EXPECT_TRUE(*copied) << t.name << " layout " << layout;
      EXPECT_EQ(bytes, bf16Bytes(t.values)) << t.name << " layout " << layout;
    }
    // Another dtype, or a whole stack: false, nothing written.
    const Tensor &d = get(model, "model.layers.0.mamba.D");
    std::vector<uint8_t> untouched(4 * d.values.size(), 0xA5);
    std::vector<uint8_t> bytes = untouched;
    StatusOr<bool> copied = ckpt->copyStoredBytes(
        d.name, -1, d.shape, DType::F32, bytes.data(), bytes.size());
    ASSERT_TRUE(copied.ok()) << copied.status().message();
    EXPECT_FALSE(*copied);
    EXPECT_EQ(bytes, untouched);
    copied = ckpt->copyStoredBytes(
        "model.layers.1.feed_forward.experts.{e}.up_proj.weight", -1, {2, 4, 8},
        DType::BF16, bytes.data(), 2 * 64);
    ASSERT_TRUE(copied.ok()) << copied.status().message();
    EXPECT_FALSE(*copied);
    EXPECT_EQ(bytes, untouched);
    // Errors: a size that is not the weight's, a missing weight, a shape.
    EXPECT_CONTAINS(
        ckpt->copyStoredBytes(d.name, -1, d.shape, DType::BF16, bytes.data(), 2)
            .status()
            .message(),
        "tensor 'model.layers.0.mamba.D': 32 bytes of BF16, not 2");
    EXPECT_CONTAINS(ckpt->copyStoredBytes("model.layers.0.mamba.E", -1, d.shape,
                                          DType::BF16, bytes.data(), 32)
                        .status()
                        .message(),
                    "'model.layers.0.mamba.E' not found");
    EXPECT_CONTAINS(
        ckpt->copyStoredBytes(d.name, -1, {8}, DType::BF16, bytes.data(), 16)
            .status()
            .message(),
        "expected shape [8], got [16]");
  }
  // The bytes as stored: a signalling NaN stays signalling (a conversion
  // through f32 would quiet it: 0x7F81 -> 0x7FC1).
  TempDir dir;
  std::vector<Tensor> tensors = model;
  writeCheckpoint(dir, tensors, kConfig, DType::BF16);
  {
    // Rewrite D with a signalling NaN in element 3.
    const Tensor &d = get(model, "model.layers.0.mamba.D");
    std::vector<uint8_t> raw = bf16Bytes(d.values);
    raw[6] = 0x81;
    raw[7] = 0x7F;
    SafeTensorsWriter w;
    for (const Tensor &t : tensors) {
      Status st = t.name == d.name
                      ? w.add(t.name, DType::BF16, t.shape, raw)
                      : w.addFloats(t.name, DType::BF16, t.shape, t.values);
      ASSERT_TRUE(st.ok()) << st.message();
    }
    Status st = w.write(dir.file("model.safetensors"));
    ASSERT_TRUE(st.ok()) << st.message();
    std::unique_ptr<Checkpoint> ckpt = openOk(dir);
    ASSERT_TRUE(ckpt);
    std::vector<uint8_t> bytes(raw.size());
    StatusOr<bool> copied = ckpt->copyStoredBytes(
        d.name, -1, d.shape, DType::BF16, bytes.data(), bytes.size());
    ASSERT_TRUE(copied.ok()) << copied.status().message();
    EXPECT_TRUE(*copied);
    EXPECT_EQ(bytes, raw);
  }
}

TEST(CheckpointTest, NonFloatTensorIsAnError) {
  TempDir dir;
  writeFile(dir.file("config.json"), kConfig);
  SafeTensorsWriter w;
  ASSERT_TRUE(
      w.add("model.layers.0.mamba.D", DType::I16, {16}, std::string(32, '\1'))
          .ok());
  ASSERT_TRUE(w.write(dir.file("model.safetensors")).ok());
  std::unique_ptr<Checkpoint> ckpt = openOk(dir);
  ASSERT_TRUE(ckpt);
  std::vector<float> out;
  Status st = ckpt->loadWeightF32("model.layers.0.mamba.D", {16}, out);
  EXPECT_EQ(st.message(), "checkpoint " + dir.path() +
                              ": tensor 'model.layers.0.mamba.D': dtype I16 "
                              "cannot be converted to float (expected F32, "
                              "F16, BF16, F64 or I8)");
}

TEST(CheckpointTest, I8WeightsNeedAnExpertsInt8Config) {
  // Without quantization_config nobody reads the row scales: the int8
  // values would be taken for float weights of -127..127.
  TempDir dir;
  writeFile(dir.file("config.json"), kConfig);
  SafeTensorsWriter w;
  ASSERT_TRUE(
      w.add("model.layers.0.mamba.D", DType::I8, {16}, std::string(16, '\1'))
          .ok());
  ASSERT_TRUE(w.write(dir.file("model.safetensors")).ok());
  StatusOr<std::unique_ptr<Checkpoint>> ckpt = Checkpoint::open(dir.path());
  ASSERT_FALSE(ckpt.ok());
  EXPECT_NE(ckpt.status().message().find(
                "tensor 'model.layers.0.mamba.D' is I8, but config.json has no "
                "quantization_config"),
            std::string::npos)
      << ckpt.status().message();
}

TEST(CheckpointTest, RowScalesAreFiniteAndNotNegative) {
  // A negative scale flipped its row silently; a NaN one surfaced only as
  // NaN logits, far from the tensor.
  std::string config = kConfig;
  config.insert(config.find('{') + 1,
                R"("quantization_config": {"quant_method": "experts_int8"},)");
  for (float bad : {-1.0f, NAN, INFINITY}) {
    TempDir dir;
    writeFile(dir.file("config.json"), config);
    SafeTensorsWriter w;
    ASSERT_TRUE(w.add("model.layers.1.feed_forward.experts.0.up_proj.weight",
                      DType::I8, {3, 2}, std::string(6, '\1'))
                    .ok());
    ASSERT_TRUE(w.addFloats("model.layers.1.feed_forward.experts.0.up_proj."
                            "weight_scale",
                            DType::F32, {3}, {0.5f, bad, 0.0f})
                    .ok());
    ASSERT_TRUE(w.write(dir.file("model.safetensors")).ok());
    StatusOr<std::unique_ptr<Checkpoint>> ckpt = Checkpoint::open(dir.path());
    ASSERT_FALSE(ckpt.ok()) << bad;
    EXPECT_NE(ckpt.status().message().find(
                  "tensor 'model.layers.1.feed_forward.experts.0.up_proj."
                  "weight_scale': row scale 1 is "),
              std::string::npos)
        << ckpt.status().message();
  }
}

TEST(CheckpointTest, I8WeightsLoadExactly) {
  TempDir dir;
  std::string config = kConfig;
  config.insert(config.find('{') + 1,
                R"("quantization_config": {"quant_method": "experts_int8"},)");
  writeFile(dir.file("config.json"), config);
  SafeTensorsWriter w;
  std::string bytes(16, '\0');
  for (int i = 0; i < 16; ++i)
    bytes[i] = static_cast<char>(static_cast<int8_t>(8 * i - 127));
  ASSERT_TRUE(w.add("model.layers.0.mamba.D", DType::I8, {16}, bytes).ok());
  ASSERT_TRUE(w.write(dir.file("model.safetensors")).ok());
  std::unique_ptr<Checkpoint> ckpt = openOk(dir);
  ASSERT_TRUE(ckpt);
  std::vector<float> out;
  ASSERT_TRUE(ckpt->loadWeightF32("model.layers.0.mamba.D", {16}, out).ok());
  std::vector<double> out64;
  ASSERT_TRUE(ckpt->loadWeightF64("model.layers.0.mamba.D", {16}, out64).ok());
  ASSERT_EQ(out.size(), 16u);
  ASSERT_EQ(out64.size(), 16u);
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(out[i], static_cast<float>(8 * i - 127));
    EXPECT_EQ(out64[i], static_cast<double>(8 * i - 127));
  }
}

} // namespace

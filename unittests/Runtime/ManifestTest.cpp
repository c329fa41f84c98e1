//===- ManifestTest.cpp - Manifest reading, checking and writing ----------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// The manifest without files on disk: the canonical round trip, the schema
// version and content-hash rules, field types, validateManifest's bounds and
// cross-references, and the memory plan.
//
//===----------------------------------------------------------------------===//

#include "jamba/Runtime/Artifact.h"
#include "jamba/Runtime/ExampleArtifact.h"
#include "jamba/Runtime/Sha256.h"

#include "gtest/gtest.h"

#include <functional>
#include <limits>
#include <string>

using namespace jamba;
using namespace jamba::rt;
using ckpt::JsonValue;

namespace {

const char kContext[] = "artifact test";

/// The example manifest with a files table, as the writer would fill it.
ArtifactManifest exampleWithFiles() {
  ArtifactManifest m = exampleManifest();
  m.files = {{"kernels/cpu.so", 56, sha256Hex("k")},
             {"weights/rank-0.safetensors", 49704, sha256Hex("w")}};
  return m;
}

/// Serializes the example, lets `edit` change the JSON document, and
/// re-computes the content hash unless `rehash` is false.
std::string editedText(const std::function<void(JsonValue &)> &edit,
                       bool rehash = true) {
  std::string text = writeManifest(exampleWithFiles());
  ckpt::StatusOr<JsonValue> doc = ckpt::parseJson(text, "manifest");
  EXPECT_TRUE(doc.ok());
  edit(*doc);
  if (rehash)
    doc->set("content_hash", JsonValue::makeString(computeContentHash(*doc)));
  return ckpt::writeJson(*doc, 2);
}

/// Expects parseManifest(text) to fail with a message containing `needle`.
void expectParseError(const std::string &text, const std::string &needle) {
  StatusOr<ArtifactManifest> m = parseManifest(text, kContext);
  ASSERT_FALSE(m.ok()) << "expected an error containing: " << needle;
  EXPECT_NE(m.status().message().find(needle), std::string::npos)
      << m.status().message();
  EXPECT_EQ(m.status().message().rfind(kContext, 0), 0u)
      << m.status().message();
}

/// Expects validateManifest(m) to fail with a message containing `needle`.
void expectInvalid(const ArtifactManifest &m, const std::string &needle) {
  Status s = validateManifest(m, kContext);
  ASSERT_FALSE(s.ok()) << "expected an error containing: " << needle;
  EXPECT_NE(s.message().find(needle), std::string::npos) << s.message();
}

//===----------------------------------------------------------------------===//
// Round trip and canonical form
//===----------------------------------------------------------------------===//

TEST(ManifestTest, ExampleIsValid) {
  Status s = validateManifest(exampleWithFiles(), kContext);
  EXPECT_TRUE(s.ok()) << s.message();
}

TEST(ManifestTest, RoundTripIsByteIdentical) {
  std::string text = writeManifest(exampleWithFiles());
  StatusOr<ArtifactManifest> parsed = parseManifest(text, kContext);
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  EXPECT_EQ(writeManifest(*parsed), text);
  EXPECT_EQ(parsed->config, exampleConfig());
  EXPECT_EQ(parsed->contentHash.size(), 64u);
  ASSERT_EQ(parsed->buffers.size(), exampleManifest().buffers.size());
  const BufferDesc *mixed = parsed->findBuffer("mixed");
  ASSERT_NE(mixed, nullptr);
  EXPECT_EQ(mixed->shape[0].str(), "batch*seq");
  const BufferDesc *key = parsed->findBuffer("layers.1.key");
  ASSERT_NE(key, nullptr);
  EXPECT_EQ(key->role, BufferDesc::Role::KvKey);
  EXPECT_EQ(key->layer, 1);
  const EntryPoint *decode = parsed->findEntryPoint("decode");
  ASSERT_NE(decode, nullptr);
  EXPECT_EQ(decode->steps[3].args[3].kind, StepArg::Kind::F64);
  EXPECT_EQ(decode->steps[3].args[3].f64, 1e-6);
}

// The content hash covers content, not layout: the compact form hashes the
// same, and the hash is that of the document without "content_hash".
TEST(ManifestTest, ContentHashIgnoresWhitespace) {
  std::string text = writeManifest(exampleWithFiles());
  ckpt::StatusOr<JsonValue> doc = ckpt::parseJson(text, "manifest");
  ASSERT_TRUE(doc.ok());
  StatusOr<ArtifactManifest> compact =
      parseManifest(ckpt::writeJson(*doc), kContext);
  EXPECT_TRUE(compact.ok()) << compact.status().message();
}

TEST(ManifestTest, CudaTargetRoundTrips) {
  ArtifactManifest m = exampleWithFiles();
  m.target.kind = TargetDesc::Kind::Cuda;
  m.target.archs = {"sm_80", "sm_90"};
  std::string text = writeManifest(m);
  StatusOr<ArtifactManifest> parsed = parseManifest(text, kContext);
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  EXPECT_EQ(parsed->target.kind, TargetDesc::Kind::Cuda);
  EXPECT_EQ(parsed->target.archs, m.target.archs);
  EXPECT_TRUE(validateManifest(*parsed, kContext).ok());
  m.target.archs = {"sm90"};
  expectInvalid(m, "arch 'sm90' is not of the form sm_NN");
}

//===----------------------------------------------------------------------===//
// Version, format and hash
//===----------------------------------------------------------------------===//

TEST(ManifestTest, HigherMajorIsRefusedFirst) {
  // Refused on the version even though the hash no longer matches.
  std::string text = editedText(
      [](JsonValue &doc) {
        doc.set("schema_version",
                JsonValue::makeArray(
                    {JsonValue::makeInt(2), JsonValue::makeInt(0)}));
        doc.set("buffers", JsonValue::makeString("a future layout"));
      },
      /*rehash=*/false);
  StatusOr<ArtifactManifest> m = parseManifest(text, kContext);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().message(), "artifact test: schema version 2.0 is not "
                                  "supported by this runtime (1.x)");
}

TEST(ManifestTest, MajorZeroIsRefused) {
  expectParseError(editedText([](JsonValue &doc) {
                     doc.set("schema_version",
                             JsonValue::makeArray({JsonValue::makeInt(0),
                                                   JsonValue::makeInt(9)}));
                   }),
                   "schema version 0.9 is not supported");
}

TEST(ManifestTest, HigherMinorWithUnknownFieldsIsAccepted) {
  std::string text = editedText([](JsonValue &doc) {
    doc.set("schema_version",
            JsonValue::makeArray({JsonValue::makeInt(kSchemaMajor),
                                  JsonValue::makeInt(kSchemaMinor + 1)}));
    doc.set("future_section", JsonValue::makeString("ignored"));
    for (JsonValue::Member &member : doc.getObject())
      if (member.first == "buffers")
        member.second.getArray()[0].set("future_field", JsonValue::makeInt(7));
  });
  StatusOr<ArtifactManifest> m = parseManifest(text, kContext);
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->version.minor, kSchemaMinor + 1);
  EXPECT_TRUE(validateManifest(*m, kContext).ok());
}

TEST(ManifestTest, MalformedSchemaVersion) {
  expectParseError(editedText([](JsonValue &doc) {
                     doc.set("schema_version", JsonValue::makeString("1.0"));
                   }),
                   "field 'schema_version' must be an array, got string");
  expectParseError(editedText([](JsonValue &doc) {
                     doc.set("schema_version",
                             JsonValue::makeArray({JsonValue::makeInt(1)}));
                   }),
                   "schema_version must be [major, minor]");
}

TEST(ManifestTest, WrongFormat) {
  expectParseError(editedText([](JsonValue &doc) {
                     doc.set("format", JsonValue::makeString("iree-vmfb"));
                   }),
                   "not a jamba artifact: format is 'iree-vmfb'");
  expectParseError("{}", "manifest.json: missing field 'format'");
  expectParseError("[1, 2]", "manifest.json: expected a JSON object");
}

TEST(ManifestTest, InvalidAndTruncatedJson) {
  std::string text = writeManifest(exampleWithFiles());
  expectParseError(text.substr(0, text.size() / 2), "manifest.json:");
  expectParseError("{\"format\": \"jamba-artifact\",, }", "manifest.json:1:");
  expectParseError("", "manifest.json:");
}

TEST(ManifestTest, ContentHashMismatch) {
  std::string text = writeManifest(exampleWithFiles());
  size_t at = text.find("example artifact");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 7, "EXAMPLE");
  expectParseError(text, "content_hash mismatch");
  expectParseError(editedText(
                       [](JsonValue &doc) {
                         doc.set("content_hash", JsonValue::makeString("x"));
                       },
                       false),
                   "content_hash must be 64 lowercase hex digits");
}

//===----------------------------------------------------------------------===//
// Field types
//===----------------------------------------------------------------------===//

TEST(ManifestTest, FieldTypes) {
  expectParseError(editedText([](JsonValue &doc) {
                     doc.set("ranks", JsonValue::makeString("1"));
                   }),
                   "manifest.json: field 'ranks' must be a number, got string");
  expectParseError(editedText([](JsonValue &doc) {
                     doc.set("ranks", JsonValue::makeDouble(1.5));
                   }),
                   "field 'ranks' must be an integer, got 1.5");
  expectParseError(editedText([](JsonValue &doc) {
                     doc.getObject().erase(doc.getObject().begin() + 2);
                   }),
                   "missing field 'generator'");
  expectParseError(editedText([](JsonValue &doc) {
                     JsonValue model = *doc.get("model");
                     model.set("hidden_size", JsonValue::makeString("64"));
                     doc.set("model", model);
                   }),
                   "artifact test: model");
}

/// Applies `edit` to element `index` of the top-level array `section`.
std::string editElement(const char *section, size_t index,
                        const std::function<void(JsonValue &)> &edit) {
  return editedText([&](JsonValue &doc) {
    for (JsonValue::Member &member : doc.getObject())
      if (member.first == section)
        edit(member.second.getArray()[index]);
  });
}

TEST(ManifestTest, BufferFields) {
  expectParseError(editElement("buffers", 1,
                               [](JsonValue &b) {
                                 b.set("dtype", JsonValue::makeString("F8"));
                               }),
                   "buffer 'hidden': unknown dtype 'F8'");
  expectParseError(editElement("buffers", 1,
                               [](JsonValue &b) {
                                 b.set("kind", JsonValue::makeString("heap"));
                               }),
                   "buffer 'hidden': unknown buffer kind 'heap'");
  expectParseError(editElement("buffers", 1,
                               [](JsonValue &b) {
                                 b.set("shape",
                                       JsonValue::makeArray(
                                           {JsonValue::makeString("batch+1")}));
                               }),
                   "buffer 'hidden': shape[0]: malformed dimension expression "
                   "'batch+1'");
  expectParseError(
      editElement("buffers", 1,
                  [](JsonValue &b) { b.set("layer", JsonValue::makeInt(0)); }),
      "'role' and 'layer' are only for state buffers");
  expectParseError(editElement("buffers", 5,
                               [](JsonValue &b) {
                                 b.set("role", JsonValue::makeString("cache"));
                               }),
                   "unknown state role 'cache'");
}

TEST(ManifestTest, StepFields) {
  auto editStep = [](const std::function<void(JsonValue &)> &edit) {
    return editElement("entry_points", 0, [&](JsonValue &e) {
      for (JsonValue::Member &member : e.getObject())
        if (member.first == "steps")
          edit(member.second.getArray()[0]);
    });
  };
  expectParseError(editStep([](JsonValue &s) {
                     s.set("kind", JsonValue::makeString("collective"));
                   }),
                   "entry point 'prefill': steps[0]: step kind 'collective' "
                   "is not supported by this runtime (schema 1.2; the "
                   "artifact is schema 1.2)");
  expectParseError(editStep([](JsonValue &s) {
                     JsonValue arg = JsonValue::makeObject();
                     arg.set("buffer", JsonValue::makeString("a"));
                     arg.set("weight", JsonValue::makeString("b"));
                     s.set("args", JsonValue::makeArray({arg}));
                   }),
                   "steps[0]: args[0]: has both 'buffer' and 'weight'");
  expectParseError(editStep([](JsonValue &s) {
                     JsonValue arg = JsonValue::makeObject();
                     arg.set("pointer", JsonValue::makeInt(0));
                     s.set("args", JsonValue::makeArray({arg}));
                   }),
                   "args[0]: expected one of 'buffer', 'weight', 'dim'");
}

//===----------------------------------------------------------------------===//
// Bounds and cross-references
//===----------------------------------------------------------------------===//

TEST(ManifestTest, StepReferences) {
  ArtifactManifest m = exampleWithFiles();
  m.entryPoints[1].steps[2].args[0].ref = "missing";
  expectInvalid(m, "entry point 'decode': steps[2]: args[0]: unknown buffer "
                   "'missing'");

  m = exampleWithFiles();
  m.entryPoints[0].steps[4].kernel = "softmax";
  expectInvalid(m, "entry point 'prefill': steps[4]: unknown kernel "
                   "'softmax'");

  m = exampleWithFiles();
  m.entryPoints[0].steps[0].args[1].ref = "model.embed.weight";
  expectInvalid(m, "steps[0]: args[1]: unknown weight 'model.embed.weight'");

  m = exampleWithFiles();
  m.entryPoints[0].steps[0].args[3].ref = "tokens";
  expectInvalid(m, "dimension 'tokens' is not declared in 'dims'");

  m = exampleWithFiles();
  m.entryPoints[0].steps[0].args.pop_back();
  expectInvalid(m, "kernel 'embed' takes 4 arguments, the step passes 3");

  m = exampleWithFiles();
  m.entryPoints[0].inputs.push_back("hidden");
  expectInvalid(m, "inputs[5]: buffer 'hidden' is a temp buffer");

  m = exampleWithFiles();
  m.entryPoints[0].outputs.push_back("nowhere");
  expectInvalid(m, "outputs[5]: unknown buffer 'nowhere'");

  // Every rank must have every weight a step names.
  m = exampleWithFiles();
  m.ranks = 2;
  expectInvalid(m, "unknown weight 'model.embed_tokens.weight' (not listed "
                   "for rank 1)");
}

TEST(ManifestTest, DuplicatesAndNames) {
  ArtifactManifest m = exampleWithFiles();
  m.buffers.push_back(m.buffers[0]);
  expectInvalid(m, "buffer 'tokens': defined twice");

  m = exampleWithFiles();
  m.kernels.push_back(m.kernels[0]);
  expectInvalid(m, "kernel 'embed': defined twice");

  m = exampleWithFiles();
  m.weights.push_back(m.weights[0]);
  expectInvalid(m, "weight 'model.embed_tokens.weight': listed twice");

  m = exampleWithFiles();
  m.entryPoints.push_back(m.entryPoints[0]);
  expectInvalid(m, "entry point 'prefill': defined twice");

  m = exampleWithFiles();
  m.buffers[0].id = "has space";
  expectInvalid(m, "buffers[0]: invalid buffer id 'has space'");

  m = exampleWithFiles();
  m.kernels[0].symbol = "1bad";
  expectInvalid(m, "kernel 'embed': invalid symbol '1bad'");

  m = exampleWithFiles();
  m.kernels[0].abi = "cuda-params";
  expectInvalid(m, "abi 'cuda-params' is not supported");
}

TEST(ManifestTest, Files) {
  ArtifactManifest m = exampleWithFiles();
  m.files[0].path = "../kernels/cpu.so";
  expectInvalid(m, "files[0]: '../kernels/cpu.so' is not a valid artifact "
                   "path");
  for (const char *bad :
       {"/etc/passwd", "a//b", "./a", "a/", "manifest.json", "a b", ""}) {
    m = exampleWithFiles();
    m.files[0].path = bad;
    expectInvalid(m, "is not a valid artifact path");
  }

  m = exampleWithFiles();
  m.files.push_back(m.files[0]);
  expectInvalid(m, "file 'kernels/cpu.so' is listed twice");

  m = exampleWithFiles();
  m.files.erase(m.files.begin());
  expectInvalid(m, "kernel 'embed': file 'kernels/cpu.so' is not listed in "
                   "'files'");
  EXPECT_TRUE(validateManifest(m, kContext, /*checkFiles=*/false).ok());

  m = exampleWithFiles();
  m.files[1].sha256 = "abc";
  expectInvalid(m, "sha256 must be 64 lowercase hex digits");
}

// Schema 1.1: the optional tokenizer file round-trips, must be a listed
// artifact path, and is absent from a manifest without one.
TEST(ManifestTest, Tokenizer) {
  ArtifactManifest m = exampleWithFiles();
  EXPECT_EQ(writeManifest(m).find("\"tokenizer\""), std::string::npos);
  m.files.push_back({"tokenizer.json", 10, sha256Hex("t")});
  m.tokenizerFile = "tokenizer.json";
  std::string text = writeManifest(m);
  StatusOr<ArtifactManifest> parsed = parseManifest(text, kContext);
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  EXPECT_EQ(parsed->tokenizerFile, "tokenizer.json");
  EXPECT_EQ(writeManifest(*parsed), text);
  EXPECT_TRUE(validateManifest(*parsed, kContext).ok());

  m.files.pop_back();
  expectInvalid(m, "tokenizer: file 'tokenizer.json' is not listed in "
                   "'files'");
  m.tokenizerFile = "../tokenizer.json";
  expectInvalid(m, "tokenizer: file '../tokenizer.json' is not a valid "
                   "artifact path");
  expectParseError(editedText([](JsonValue &doc) {
                     doc.set("tokenizer", JsonValue::makeString("t.json"));
                   }),
                   "tokenizer: expected an object");
  expectParseError(editedText([](JsonValue &doc) {
                     JsonValue t = JsonValue::makeObject();
                     t.set("file", JsonValue::makeString(""));
                     doc.set("tokenizer", std::move(t));
                   }),
                   "tokenizer: file is empty");
}

// Schema 1.2: a weight's "from" (how a rank's tensor is cut from the
// checkpoint's) round-trips in its three forms, is absent for a whole
// tensor, and is checked against the weight.
TEST(ManifestTest, WeightOrigins) {
  ArtifactManifest m = exampleWithFiles();
  EXPECT_EQ(writeManifest(m).find("\"from\""), std::string::npos);
  // The embedding's rows 0..31 and 96..127 of a [256, 64] tensor, the norm
  // zeros, and a synthetic I64.
  m.weights[0].from =
      WeightOrigin::slice({256, 64}, {{{0, 32}, {96, 96}}, {{0, 64}}});
  m.weights[1].from = WeightOrigin::zeros({64});
  WeightDesc offset;
  offset.name = "jamba.rank.expert_offset";
  offset.file = m.weights[0].file;
  offset.dtype = DType::I64;
  offset.shape = {1};
  offset.from = WeightOrigin::constant(8);
  m.weights.push_back(offset);
  ASSERT_TRUE(validateManifest(m, kContext).ok());
  std::string text = writeManifest(m);
  StatusOr<ArtifactManifest> parsed = parseManifest(text, kContext);
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  EXPECT_EQ(writeManifest(*parsed), text);
  const WeightDesc &embed = parsed->weights[0];
  EXPECT_EQ(embed.from.kind, WeightOrigin::Kind::Slice);
  EXPECT_EQ(embed.checkpointShape(), (std::vector<int64_t>{256, 64}));
  ASSERT_EQ(embed.from.take.size(), 2u);
  EXPECT_EQ(embed.from.take[0], (std::vector<IndexRun>{{0, 32}, {96, 96}}));
  EXPECT_EQ(parsed->weights[1].from.kind, WeightOrigin::Kind::Zeros);
  EXPECT_EQ(parsed->weights[2].from.kind, WeightOrigin::Kind::Whole);
  EXPECT_EQ(parsed->weights[2].checkpointShape(),
            (std::vector<int64_t>{128, 64}));
  EXPECT_EQ(parsed->weights[3].from.kind, WeightOrigin::Kind::Value);
  EXPECT_EQ(parsed->weights[3].from.value, 8);
  EXPECT_TRUE(parsed->weights[3].checkpointShape().empty());

  // Parsing.
  auto editFrom = [](const std::function<void(JsonValue &)> &edit) {
    return editElement("weights", 0, [&](JsonValue &w) {
      JsonValue from = JsonValue::makeObject();
      from.set("shape", JsonValue::makeArray(
                            {JsonValue::makeInt(128), JsonValue::makeInt(64)}));
      edit(from);
      w.set("from", std::move(from));
    });
  };
  const std::string where = "weight 'model.embed_tokens.weight': from";
  expectParseError(
      editElement("weights", 0,
                  [](JsonValue &w) { w.set("from", JsonValue::makeInt(1)); }),
      where + ": expected an object, got number");
  expectParseError(editFrom([](JsonValue &) {}),
                   where + ": expected exactly one of 'value', 'zeros' and "
                           "'take'");
  expectParseError(editFrom([](JsonValue &f) {
                     f.set("zeros", JsonValue::makeBool(true));
                     f.set("value", JsonValue::makeInt(0));
                   }),
                   where + ": expected exactly one of");
  expectParseError(editFrom([](JsonValue &f) {
                     f.set("zeros", JsonValue::makeBool(false));
                   }),
                   where + ": field 'zeros' must be true, got false");
  expectParseError(editFrom([](JsonValue &f) {
                     f.set("value", JsonValue::makeString("8"));
                   }),
                   where + ": field 'value' must be a number, got string");
  expectParseError(
      editFrom([](JsonValue &f) { f.set("take", JsonValue::makeInt(3)); }),
      where + ": field 'take' must be an array, got number");
  expectParseError(editFrom([](JsonValue &f) {
                     f.set("take",
                           JsonValue::makeArray({JsonValue::makeInt(3)}));
                   }),
                   where + ": take[0] must be an array of [begin, count] "
                           "pairs, got number");
  expectParseError(
      editFrom([](JsonValue &f) {
        f.set("take", JsonValue::makeArray({JsonValue::makeArray(
                          {JsonValue::makeArray({JsonValue::makeInt(0)})})}));
      }),
      where + ": take[0][0] must be [begin, count] (two integers), got [0]");
  expectParseError(editElement("weights", 0,
                               [](JsonValue &w) {
                                 JsonValue from = JsonValue::makeObject();
                                 from.set("zeros", JsonValue::makeBool(true));
                                 w.set("from", std::move(from));
                               }),
                   where + ": missing field 'shape'");

  // Checking.
  ArtifactManifest bad = m;
  bad.weights[0].from.kind = WeightOrigin::Kind::Value;
  expectInvalid(bad, where + ": a value makes I64 weights, this one is F32");
  bad = m;
  bad.weights[3].from = WeightOrigin::slice({1}, {{{0, 1}}});
  expectInvalid(bad, "weight 'jamba.rank.expert_offset': from: a I64 weight "
                     "cannot be cut from a checkpoint tensor");
  bad = m;
  bad.weights[0].from = WeightOrigin::slice({256}, {{{0, 128}}});
  expectInvalid(bad, where + ": shape [256] has 1 dimensions, the weight 2");
  bad = m;
  bad.weights[0].from =
      WeightOrigin::slice({-256, 64}, {{{0, 128}}, {{0, 64}}});
  expectInvalid(bad, where + ": shape[0]: dimension -256 is negative");
  bad = m;
  bad.weights[0].from = WeightOrigin::slice(
      {int64_t(1) << 31, int64_t(1) << 31}, {{{0, 128}}, {{0, 64}}});
  expectInvalid(bad, where + ": shape [2147483648, 2147483648] is larger "
                             "than 1125899906842624 bytes in f32");
  bad = m;
  bad.weights[1].from.shape = {65};
  expectInvalid(bad, "weight 'model.final_layernorm.weight': from: zeros of "
                     "shape [65] for a weight of shape [64]");
  bad = m;
  bad.weights[0].from.take.pop_back();
  expectInvalid(bad, where + ": take has 1 lists of runs for 2 dimensions");
  for (IndexRun run :
       {IndexRun{-1, 32}, IndexRun{0, 0}, IndexRun{250, 7}, IndexRun{257, 1},
        IndexRun{1, std::numeric_limits<int64_t>::max()}}) {
    bad = m;
    bad.weights[0].from.take[0][1] = run;
    expectInvalid(bad, ckpt::concat(where, ": take[0][1] = [", run.begin, ", ",
                                    run.count,
                                    "] is not a run of indices in [0, 256)"));
  }
  bad = m;
  bad.weights[0].from.take[0][1] = {96, 95};
  expectInvalid(bad, where + ": take[0] takes 127 indices, the weight's "
                             "shape[0] is 128");
  bad = m;
  bad.weights[0].from.take[0] = {{0, 100}, {100, 100}, {0, 1}};
  expectInvalid(bad, where + ": take[0] takes 200 or more indices, the "
                             "weight's shape[0] is 128");
}

TEST(ManifestTest, NegativeAndAbsurdDims) {
  ArtifactManifest m = exampleWithFiles();
  m.buffers[1].shape[2] = DimExpr::constant(-4);
  expectInvalid(m, "buffer 'hidden': shape[2]: dimension -4 is negative");

  m = exampleWithFiles();
  m.buffers[1].shape[2] = DimExpr::constant(int64_t(1) << 40);
  expectInvalid(m, "buffer 'hidden': shape[2]: dimension 1099511627776 "
                   "exceeds the limit");

  // Each dimension in range, but the product at the declared maxima is not.
  m = exampleWithFiles();
  m.buffers[1].shape[2] = DimExpr::constant(int64_t(1) << 31);
  expectInvalid(m, "buffer 'hidden': at the largest declared dims the buffer "
                   "would exceed");

  m = exampleWithFiles();
  m.buffers[1].shape[0] = DimExpr::symbol("tokens");
  expectInvalid(m, "dimension 'tokens' is not declared in 'dims'");

  m = exampleWithFiles();
  m.buffers[1].shape.assign(9, DimExpr::constant(1));
  expectInvalid(m, "buffer 'hidden': 9 dimensions (at most 8)");

  m = exampleWithFiles();
  m.weights[0].shape[0] = -128;
  expectInvalid(m, "weight 'model.embed_tokens.weight': shape[0]: dimension "
                   "-128 is negative");

  m = exampleWithFiles();
  m.dims[0].max = 0;
  expectInvalid(m, "dimension 'batch': max must be in [1, 2147483648], got 0");

  m = exampleWithFiles();
  m.dims[2].max = int64_t(1) << 40;
  expectInvalid(m, "dimension 'capacity': max must be in");

  m = exampleWithFiles();
  m.dims.push_back({"heads", 4});
  expectInvalid(m, "dims[3]: dimension 'heads' is not known to this runtime");

  m = exampleWithFiles();
  m.ranks = 0;
  expectInvalid(m, "ranks must be in [1, 4096], got 0");

  m = exampleWithFiles();
  m.weights[0].rank = 1;
  expectInvalid(m, "rank 1 is outside [0, 1)");
}

TEST(ManifestTest, StateBuffersMatchTheLayerSchedule) {
  ArtifactManifest m = exampleWithFiles();
  m.buffers[5].layer = 1; // conv state on the attention layer
  expectInvalid(m, "buffer 'layers.0.conv': a conv state buffer on layer 1, "
                   "which is an attention layer");
  m = exampleWithFiles();
  m.buffers[7].layer = 0;
  expectInvalid(m, "a kv_key state buffer on layer 0, which is a Mamba layer");
  m = exampleWithFiles();
  m.buffers[7].layer = 2;
  expectInvalid(m, "buffer 'layers.1.key': layer 2 is outside [0, 2)");
}

//===----------------------------------------------------------------------===//
// Sizes and the memory plan
//===----------------------------------------------------------------------===//

TEST(ManifestTest, BindDims) {
  ArtifactManifest m = exampleManifest();
  StatusOr<DimBindings> b = bindDims(m, 2, 100);
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(b->at("batch"), 2);
  EXPECT_EQ(b->at("capacity"), 100);
  EXPECT_EQ(b->at("seq"), 100); // min(context, max seq)
  b = bindDims(m, 1, 100000);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->at("seq"), 4096);
  b = bindDims(m, 1, 100, 7);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->at("seq"), 7);

  StatusOr<DimBindings> bad = bindDims(m, 65, 100);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "batch (sequences at once) = 65 is "
                                    "outside what the artifact supports "
                                    "(1..64)");
  EXPECT_FALSE(bindDims(m, 1, 0).ok());
  EXPECT_FALSE(bindDims(m, 1, 100, 5000).ok());
}

TEST(ManifestTest, EvalDim) {
  DimBindings b = {{"batch", 3}, {"seq", 5}};
  StatusOr<int64_t> v =
      evalDim(DimExpr::symbol("batch").times("seq").times(2), b);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, 30);
  EXPECT_FALSE(evalDim(DimExpr::symbol("capacity"), b).ok());
  DimBindings huge = {{"batch", int64_t(1) << 40}};
  EXPECT_FALSE(evalDim(DimExpr::symbol("batch").times("batch"), huge).ok());
}

TEST(ManifestTest, MemoryPlan) {
  ArtifactManifest m = exampleManifest();
  StatusOr<DimBindings> b = bindDims(m, 2, 100, 10);
  ASSERT_TRUE(b.ok());
  StatusOr<MemoryPlan> plan = planMemory(m, *b);
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  // hidden, mixed, normed: 2 * 10 * 64 floats = 5120 bytes each.
  EXPECT_EQ(plan->bufferBytes[1], 5120u);
  EXPECT_EQ(plan->bufferBytes[2], 5120u);
  // tokens 2*10*8 = 160 -> 192 aligned; logits 2*10*128*4 = 10240.
  EXPECT_EQ(plan->ioBytes, 192u + 10240u);
  // conv 2*3*128*4 = 3072, ssm 2*128*8*4 = 8192, k and v 2*100*2*16*4 each.
  EXPECT_EQ(plan->stateBytes, 3072u + 8192u + 2 * 25600u);
  EXPECT_EQ(plan->weightBytes, 128u * 64 * 4 + 64 * 4 + 128 * 64 * 2);
  // hidden (steps 0-3) overlaps mixed (1-2) and normed (3-4); mixed and
  // normed share bytes, so the arena holds two buffers.
  EXPECT_EQ(plan->arenaBytes, 2u * 5120u);
  ASSERT_EQ(plan->arenaOffsets.size(), 2u);
  const std::vector<int64_t> &offsets = plan->arenaOffsets[0];
  EXPECT_EQ(offsets[0], -1); // tokens: io
  EXPECT_NE(offsets[1], offsets[2]);
  EXPECT_NE(offsets[1], offsets[3]);
  EXPECT_EQ(offsets[2], offsets[3]);
  for (int64_t offset : offsets)
    EXPECT_EQ(offset < 0 ? 0 : offset % int64_t(kBufferAlignment), 0);
}

} // namespace

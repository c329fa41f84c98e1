//===- FuzzTargets.cpp - The readers of untrusted input, as fuzz targets --===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//

#include "FuzzTargets.h"

#include "jamba/Checkpoint/Checkpoint.h"
#include "jamba/Checkpoint/Config.h"
#include "jamba/Checkpoint/Json.h"
#include "jamba/Checkpoint/Npy.h"
#include "jamba/Checkpoint/RandomCheckpoint.h"
#include "jamba/Checkpoint/SafeTensors.h"
#include "jamba/Checkpoint/TokenIds.h"
#include "jamba/Checkpoint/Tokenizer.h"
#include "jamba/Runtime/Artifact.h"
#include "jamba/Runtime/ExampleArtifact.h"
#include "jamba/Runtime/WeightFiles.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace jamba;
using namespace jamba::ckpt;

namespace {

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

/// A tensor larger than this is not converted (the reader's limits are the
/// file's size, which a fuzzer keeps small; the conversion is checked on the
/// small ones).
constexpr size_t kMaxConvertedElements = size_t(1) << 20;

/// An anonymous in-memory file holding `data`, reached by a path
/// (/proc/self/fd/N), for the readers that take paths. Fuzzing writes no
/// disk files.
class MemoryFile {
public:
  explicit MemoryFile(std::string_view data) {
    fd = ::memfd_create("jamba-fuzz", MFD_CLOEXEC);
    if (fd < 0)
      return;
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n = ::write(fd, data.data() + done, data.size() - done);
      if (n <= 0) {
        ::close(fd);
        fd = -1;
        return;
      }
      done += static_cast<size_t>(n);
    }
  }
  ~MemoryFile() {
    if (fd >= 0)
      ::close(fd);
  }
  MemoryFile(const MemoryFile &) = delete;
  MemoryFile &operator=(const MemoryFile &) = delete;

  bool ok() const { return fd >= 0; }
  std::string path() const { return "/proc/self/fd/" + std::to_string(fd); }

private:
  int fd = -1;
};

/// A directory under $TMPDIR for the process's lifetime (the checkpoint
/// target's fixed shards; the writers' seeds), removed at exit; "" when it
/// could not be made.
const std::string &scratchDirectory() {
  static const std::string dir = [] {
    const char *base = std::getenv("TMPDIR");
    std::string tmpl =
        std::string(base && *base ? base : "/tmp") + "/jamba-fuzz-XXXXXX";
    if (!::mkdtemp(tmpl.data()))
      return std::string();
    return tmpl;
  }();
  static const bool cleanup = [] {
    if (!dir.empty())
      std::atexit([] {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
      });
    return true;
  }();
  (void)cleanup;
  return dir;
}

std::string readWholeFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in),
                     std::istreambuf_iterator<char>());
}

std::string failure(std::string_view what, const std::string &detail = {}) {
  std::string s(what);
  if (!detail.empty())
    s += ": " + detail;
  return s;
}

/// The message of the last refusal, for lastRefusal().
std::string &refusalText() {
  static std::string text;
  return text;
}

/// A valid error names what is wrong; an empty message is a failure too.
std::string checkMessage(const Status &status, std::string_view reader) {
  refusalText() = status.message();
  if (status.message().empty())
    return failure(reader, "an error without a message");
  return {};
}

//===----------------------------------------------------------------------===//
// json: parseJson; what it accepts writes back to a document that reads
// back equal, compact and pretty.
//===----------------------------------------------------------------------===//

std::string runJson(std::string_view data, bool &accepted) {
  StatusOr<JsonValue> value = parseJson(data, "fuzz.json");
  if (!value.ok())
    return checkMessage(value.status(), "parseJson");
  accepted = true;
  for (int indent : {-1, 2}) {
    std::string written = writeJson(*value, indent);
    StatusOr<JsonValue> again = parseJson(written, "written.json");
    if (!again.ok())
      return failure("writeJson's output does not parse",
                     again.status().message());
    if (!(*again == *value))
      return failure("writeJson's output reads back different", written);
  }
  return {};
}

std::vector<std::string> jsonSeeds() {
  return {
      R"({"a": [1, -2, 3.5, 1e-7, true, false, null], "b": {"c": "d\u00e9\n"}})",
      R"([[[]], {}, "", 0, -0, 9223372036854775807, -9223372036854775808])",
      R"("\ud83d\ude00 \\ \" \/ \b\f\r\t")",
      "  17  ",
  };
}

//===----------------------------------------------------------------------===//
// config: parseConfig (with its validation); an accepted config writes back
// to JSON that parses to the same config.
//===----------------------------------------------------------------------===//

std::string runConfig(std::string_view data, bool &accepted) {
  StatusOr<JambaConfig> config = parseConfig(data, "config.json");
  if (!config.ok())
    return checkMessage(config.status(), "parseConfig");
  accepted = true;
  std::string written = configToJson(*config);
  StatusOr<JambaConfig> again = parseConfig(written, "written config.json");
  if (!again.ok())
    return failure("configToJson's output is refused",
                   again.status().message());
  if (!(*again == *config))
    return failure("configToJson's output reads back different", written);
  return {};
}

std::vector<std::string> configSeeds() {
  JambaConfig mini; // The defaults are Jamba-1.5-Mini's.
  JambaConfig tied = rt::exampleConfig();
  tied.tieWordEmbeddings = true;
  tied.eosTokenIds = {2, 3};
  tied.slidingWindow = tied.maxPositionEmbeddings; // Masks nothing.
  return {configToJson(rt::exampleConfig()), configToJson(mini),
          configToJson(tied)};
}

//===----------------------------------------------------------------------===//
// safetensors: SafeTensorsFile::open; every tensor of an accepted file lies
// inside it and converts (floats and int8) without error.
//===----------------------------------------------------------------------===//

std::string checkTensors(const std::vector<TensorInfo> &tensors,
                         std::string_view reader) {
  for (const TensorInfo &t : tensors) {
    uint64_t elements = 0, bytes = 0;
    if (!computeByteSize(t.shape, dtypeSize(t.dtype), elements, bytes))
      return failure(reader, "accepted tensor '" + t.name +
                                 "' whose byte size overflows");
    if (bytes != t.nbytes)
      return failure(reader, "tensor '" + t.name +
                                 "' has a byte count other than its shape's");
    if (elements > kMaxConvertedElements)
      continue;
    std::vector<float> values;
    Status s = readAsF32(t, values);
    bool convertible = isFloatingPoint(t.dtype) || t.dtype == DType::I8;
    if (convertible && !s.ok())
      return failure("readAsF32 refused an accepted tensor '" + t.name + "'",
                     s.message());
    if (!convertible && s.ok())
      return failure("readAsF32 converted tensor '" + t.name + "' of dtype " +
                     dtypeName(t.dtype));
    if (s.ok() && values.size() != elements)
      return failure("readAsF32 gave a wrong element count for '" + t.name +
                     "'");
  }
  return {};
}

std::string runSafeTensors(std::string_view data, bool &accepted) {
  MemoryFile file(data);
  if (!file.ok())
    return {};
  StatusOr<std::unique_ptr<SafeTensorsFile>> opened =
      SafeTensorsFile::open(file.path());
  if (!opened.ok())
    return checkMessage(opened.status(), "SafeTensorsFile::open");
  accepted = true;
  return checkTensors((*opened)->tensors(), "SafeTensorsFile::open");
}

/// Writes `writer` to a scratch file and returns the file's bytes.
std::string writtenBytes(const SafeTensorsWriter &writer,
                         const std::string &name) {
  std::string path = scratchDirectory() + "/" + name;
  if (scratchDirectory().empty() || !writer.write(path).ok())
    return {};
  std::string bytes = readWholeFile(path);
  std::remove(path.c_str());
  return bytes;
}

std::vector<std::string> safeTensorsSeeds() {
  SafeTensorsWriter w;
  (void)w.addFloats("a.weight", DType::F32, {2, 3},
                    {1.f, -2.f, 3.5f, 0.25f, -0.f, 7.f});
  (void)w.addFloats("b.weight", DType::BF16, {3}, {1.f, 2.f, -3.f});
  (void)w.addFloats("c", DType::F16, {1, 2}, {0.5f, -65504.f});
  (void)w.add("q.weight", DType::I8, {2, 2}, std::string("\x01\xff\x7f\x80"));
  (void)w.add("s", DType::I64, {1}, std::string(8, '\x02'));
  (void)w.addFloats("empty", DType::F32, {0, 4}, {});
  w.setMetadata("format", "pt");
  return {writtenBytes(w, "seed.safetensors")};
}

//===----------------------------------------------------------------------===//
// checkpoint: Checkpoint::open of a directory whose config and two shards are
// fixed and whose model.safetensors.index.json is the input.
//===----------------------------------------------------------------------===//

/// The fixed part of the checkpoint directory, made once per process; ""
/// when it could not be made.
const std::string &checkpointDirectory() {
  static const std::string dir = []() -> std::string {
    std::string scratch = scratchDirectory();
    if (scratch.empty())
      return {};
    std::string d = scratch + "/checkpoint";
    if (::mkdir(d.c_str(), 0700) != 0)
      return {};
    std::ofstream(d + "/config.json") << configToJson(rt::exampleConfig());
    SafeTensorsWriter a, b;
    if (!a.addFloats("x", DType::F32, {2}, {1.f, 2.f}).ok() ||
        !a.addFloats("y", DType::BF16, {1, 2}, {3.f, 4.f}).ok() ||
        !b.addFloats("z", DType::F16, {3}, {5.f, -6.f, 0.125f}).ok() ||
        !a.write(d + "/a.safetensors").ok() ||
        !b.write(d + "/b.safetensors").ok())
      return {};
    return d;
  }();
  return dir;
}

std::string runCheckpointIndex(std::string_view data, bool &accepted) {
  const std::string &dir = checkpointDirectory();
  if (dir.empty())
    return {};
  {
    std::ofstream index(dir + "/model.safetensors.index.json",
                        std::ios::binary | std::ios::trunc);
    index.write(data.data(), static_cast<std::streamsize>(data.size()));
  }
  StatusOr<std::unique_ptr<Checkpoint>> ckpt = Checkpoint::open(dir);
  if (!ckpt.ok())
    return checkMessage(ckpt.status(), "Checkpoint::open");
  accepted = true;
  std::vector<TensorInfo> listed;
  for (const std::string &name : (*ckpt)->names()) {
    const TensorInfo *t = (*ckpt)->find(name);
    if (!t)
      return failure("Checkpoint::open listed '" + name +
                     "' but find() does not have it");
    listed.push_back(*t);
  }
  return checkTensors(listed, "Checkpoint::open");
}

std::vector<std::string> checkpointIndexSeeds() {
  return {
      R"({"metadata": {"total_size": 13}, "weight_map": {"x": "a.safetensors", "y": "a.safetensors", "z": "b.safetensors"}})",
      R"({"weight_map": {"z": "b.safetensors"}})",
  };
}

//===----------------------------------------------------------------------===//
// tokenizer: Tokenizer::parse; an accepted tokenizer encodes a fixed set of
// texts into ids it owns and decodes them (and a TextStream of them gives
// the same text), and decodes ids past its vocabulary as U+FFFD.
//===----------------------------------------------------------------------===//

std::string checkEncodeDecode(const Tokenizer &t, std::string_view text) {
  StatusOr<std::vector<int64_t>> ids = t.encode(text);
  if (!ids.ok())
    return checkMessage(ids.status(), "Tokenizer::encode");
  for (int64_t id : *ids)
    if (id < 0 || id > t.maxId())
      return failure("encode gave id " + std::to_string(id) +
                     " outside [0, maxId " + std::to_string(t.maxId()) + "]");
  size_t unknown = 0;
  StatusOr<std::string> decoded = t.decode(*ids, true, &unknown);
  if (!decoded.ok())
    return checkMessage(decoded.status(), "Tokenizer::decode");
  if (unknown != 0)
    return failure("decode of encoded ids counted unknown ids");
  // Streamed, the ids give the same text.
  TextStream stream(t);
  std::string streamed;
  for (int64_t id : *ids) {
    StatusOr<std::string> piece = stream.push(id);
    if (!piece.ok())
      return failure("TextStream::push failed: " + piece.status().message());
    streamed += *piece;
  }
  StatusOr<std::string> rest = stream.finish();
  if (!rest.ok())
    return failure("TextStream::finish failed: " + rest.status().message());
  if (streamed + *rest != *decoded)
    return failure("the streamed text is not the decoded text");
  return {};
}

std::string runTokenizer(std::string_view data, bool &accepted) {
  StatusOr<Tokenizer> t = Tokenizer::parse(data, "tokenizer.json");
  if (!t.ok())
    return checkMessage(t.status(), "Tokenizer::parse");
  accepted = true;
  for (std::string_view text :
       {std::string_view(""), std::string_view("hello world"),
        std::string_view("  a\u00e9\u20ac\U0001F600 <|unk|>\n\t x"),
        std::string_view("\xe2\x96\x81\xe2\x96\x81 <s></s>")}) {
    std::string f = checkEncodeDecode(*t, text);
    if (!f.empty())
      return f;
  }
  size_t unknown = 0;
  int64_t past = t->maxId() + 1;
  StatusOr<std::string> decoded = t->decode({0, past, -1}, false, &unknown);
  if (!decoded.ok())
    return checkMessage(decoded.status(), "Tokenizer::decode");
  if (unknown < 2)
    return failure("decode did not count ids outside the tokenizer");
  return {};
}

/// A tokenizer of the Jamba-1.5 form, written by hand: no normalizer, a
/// Metaspace pre-tokenizer and decoder, byte fallback, an added token
/// matched in its normalized form and one that is not, merges in both
/// spellings.
std::string jambaFormTokenizer() {
  std::string vocab = R"("<unk>": 0, "<|startoftext|>": 1, "<|endoftext|>": 2)";
  for (int b = 0; b < 256; ++b) {
    char buf[40];
    std::snprintf(buf, sizeof(buf), R"(, "<0x%02X>": %d)", b, 3 + b);
    vocab += buf;
  }
  vocab += R"(, "\u2581": 259, "h": 260, "e": 261, "l": 262, "o": 263,
      "he": 264, "ll": 265, "\u2581he": 266, "<x>": 267, "<y>": 268)";
  return R"({"version": "1.0", "truncation": null, "padding": null,
      "added_tokens": [
        {"id": 0, "content": "<unk>", "special": true, "normalized": false},
        {"id": 1, "content": "<|startoftext|>", "special": true,
         "normalized": false, "single_word": false, "lstrip": false,
         "rstrip": false},
        {"id": 2, "content": "<|endoftext|>", "special": true,
         "normalized": false},
        {"id": 267, "content": "<x>", "special": false},
        {"id": 268, "content": "<y>", "special": false, "normalized": false}],
      "normalizer": null,
      "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581",
                        "prepend_scheme": "first", "split": true},
      "post_processor": {"type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<|startoftext|>", "type_id": 0}},
                   {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [], "special_tokens": {"<|startoftext|>": {
          "id": "<|startoftext|>", "ids": [1], "tokens": ["<|startoftext|>"]}}},
      "decoder": {"type": "Metaspace", "replacement": "\u2581",
                  "prepend_scheme": "first", "split": true},
      "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>",
        "continuing_subword_prefix": null, "end_of_word_suffix": null,
        "fuse_unk": false, "byte_fallback": true, "ignore_merges": false,
        "vocab": {)" +
         vocab + R"(}, "merges": ["l l", ["h", "e"], "\u2581 he"]}})";
}

std::vector<std::string> tokenizerSeeds() {
  std::vector<std::string> seeds = {jambaFormTokenizer()};
  for (int64_t vocab : {3, 40, 300}) {
    JambaConfig config;
    config.vocabSize = vocab;
    seeds.push_back(randomCheckpointTokenizerJson(config));
  }
  return seeds;
}

//===----------------------------------------------------------------------===//
// encode: the input is text for a fixed tokenizer with byte fallback (and one
// without). Valid UTF-8 encodes; ids decode back to the text when it holds
// no "▁" (which decodes as a space) and no added token's text.
//===----------------------------------------------------------------------===//

const Tokenizer *fixedTokenizer(int64_t vocab) {
  JambaConfig config;
  config.vocabSize = vocab;
  StatusOr<Tokenizer> t =
      Tokenizer::parse(randomCheckpointTokenizerJson(config), "fixed");
  if (!t.ok())
    return nullptr;
  return new Tokenizer(std::move(*t));
}

bool isValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80         ? 1
               : (c >> 5) == 6  ? 2
               : (c >> 4) == 14 ? 3
               : (c >> 3) == 30 ? 4
                                : 0;
    if (n == 0 || i + n > s.size())
      return false;
    uint32_t cp = n == 1 ? c : c & (0x7F >> n);
    for (size_t k = 1; k < n; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80)
        return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static const uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += n;
  }
  return true;
}

std::string runEncode(std::string_view data, bool &accepted) {
  static const Tokenizer *withBytes = fixedTokenizer(512);
  static const Tokenizer *small = fixedTokenizer(60);
  if (!withBytes || !small)
    return failure("the fixed tokenizers do not parse");
  bool valid = isValidUtf8(data);
  for (const Tokenizer *t : {withBytes, small}) {
    StatusOr<std::vector<int64_t>> ids = t->encode(data, false);
    if (!ids.ok()) {
      if (valid && t == withBytes)
        return failure("encode refused valid UTF-8 despite byte fallback",
                       ids.status().message());
      std::string f = checkMessage(ids.status(), "Tokenizer::encode");
      if (!f.empty())
        return f;
      continue;
    }
    if (!valid)
      return failure("encode accepted invalid UTF-8");
    accepted = true;
    for (int64_t id : *ids)
      if (id < 0 || id > t->maxId())
        return failure("encode gave id " + std::to_string(id));
    StatusOr<std::string> back = t->decode(*ids, false);
    if (!back.ok())
      return checkMessage(back.status(), "Tokenizer::decode");
    bool plain = data.find("\xe2\x96\x81") == std::string_view::npos &&
                 data.find("<|") == std::string_view::npos;
    if (t == withBytes && plain && *back != data)
      return failure("decode(encode(text)) != text", *back);
  }
  return {};
}

std::vector<std::string> encodeSeeds() {
  return {"hello world", " the cat sat", "\u00e9t\u00e9 \u20ac5 \U0001F600",
          "a  b\tc\nd",  "<|unk|>x",     ""};
}

//===----------------------------------------------------------------------===//
// manifest: parseManifest of the input with its content hash made right (so
// that mutations get past the hash check to the fields), then
// validateManifest, and for an accepted manifest the dims bound at small
// sizes and the memory planned.
//===----------------------------------------------------------------------===//

std::string runManifest(std::string_view data, bool &accepted) {
  StatusOr<JsonValue> doc = parseJson(data, "manifest.json");
  std::string text(data);
  if (doc.ok() && doc->isObject()) {
    doc->set("content_hash",
             JsonValue::makeString(rt::computeContentHash(*doc)));
    text = writeJson(*doc, 2);
  }
  StatusOr<rt::ArtifactManifest> manifest = rt::parseManifest(text, "fuzz");
  if (!manifest.ok())
    return checkMessage(manifest.status(), "parseManifest");
  Status valid = rt::validateManifest(*manifest, "fuzz", /*checkFiles=*/true);
  if (!valid.ok())
    return checkMessage(valid, "validateManifest");
  accepted = true;
  // A weight's valid cut takes exactly its elements from the checkpoint
  // tensor's (checked where that tensor is small).
  for (const rt::WeightDesc &w : manifest->weights) {
    if (w.from.kind != rt::WeightOrigin::Kind::Slice)
      continue;
    int64_t full = 1, cut = 1;
    for (int64_t d : w.from.shape)
      full = d > 4096 ? 4097 : std::min<int64_t>(full * d, 4097);
    if (full > 4096)
      continue;
    for (int64_t d : w.shape)
      cut *= d;
    std::vector<float> values(full), out;
    for (int64_t i = 0; i < full; ++i)
      values[i] = static_cast<float>(i);
    rt::sliceWeightValues(values, w.from, out);
    if (static_cast<int64_t>(out.size()) != cut)
      return "weight '" + w.name + "': its cut took " +
             std::to_string(out.size()) + " elements for a shape of " +
             std::to_string(cut);
  }
  int64_t context = std::min<int64_t>(rt::defaultContextLength(*manifest), 64);
  for (int64_t batch : {int64_t(1), int64_t(3)}) {
    StatusOr<rt::DimBindings> dims = rt::bindDims(*manifest, batch, context);
    if (!dims.ok()) {
      std::string f = checkMessage(dims.status(), "bindDims");
      if (!f.empty())
        return f;
      continue;
    }
    StatusOr<rt::MemoryPlan> plan = rt::planMemory(*manifest, *dims);
    if (!plan.ok()) {
      std::string f = checkMessage(plan.status(), "planMemory");
      if (!f.empty())
        return f;
    }
  }
  return {};
}

std::vector<std::string> manifestSeeds() {
  // The example artifact's manifest as written, its "files" filled, so that
  // validateManifest checks every step against them.
  std::string dir = scratchDirectory();
  if (dir.empty() || !rt::writeExampleArtifact(dir + "/artifact").ok())
    return {};
  std::string text = readWholeFile(dir + "/artifact/manifest.json");
  std::error_code ec;
  std::filesystem::remove_all(dir + "/artifact", ec);
  // The same with every form of a weight's "from" (schema 1.2): a slice of
  // two runs, zeros and a value.
  StatusOr<rt::ArtifactManifest> cut = rt::parseManifest(text, "seed");
  if (!cut.ok())
    return {text};
  cut->weights[0].from =
      rt::WeightOrigin::slice({256, 64}, {{{0, 32}, {96, 96}}, {{0, 64}}});
  cut->weights[1].from = rt::WeightOrigin::zeros(cut->weights[1].shape);
  rt::WeightDesc offset = cut->weights[1];
  offset.name = "jamba.rank.expert_offset";
  offset.dtype = DType::I64;
  offset.shape = {1};
  offset.from = rt::WeightOrigin::constant(2);
  cut->weights.push_back(offset);
  return {text, rt::writeManifest(*cut)};
}

//===----------------------------------------------------------------------===//
// token-ids: parseTokenIds; accepted ids format back to text that parses to
// the same ids.
//===----------------------------------------------------------------------===//

std::string runTokenIds(std::string_view data, bool &accepted) {
  StatusOr<std::vector<int64_t>> ids = parseTokenIds(data);
  if (!ids.ok())
    return checkMessage(ids.status(), "parseTokenIds");
  accepted = true;
  std::string written = formatTokenIds(*ids);
  StatusOr<std::vector<int64_t>> again = parseTokenIds(written);
  if (!again.ok() || *again != *ids)
    return failure("formatTokenIds's output reads back different", written);
  return {};
}

std::vector<std::string> tokenIdsSeeds() {
  return {"1,2,3", "0", "65535, 7", "9223372036854775807"};
}

//===----------------------------------------------------------------------===//
// npy: readNpyF32; an accepted file has as many values as its shape says.
//===----------------------------------------------------------------------===//

std::string runNpy(std::string_view data, bool &accepted) {
  MemoryFile file(data);
  if (!file.ok())
    return {};
  std::vector<int64_t> shape;
  std::vector<float> values;
  Status s = readNpyF32(file.path(), shape, values);
  if (!s.ok())
    return checkMessage(s, "readNpyF32");
  accepted = true;
  uint64_t elements = 0, bytes = 0;
  if (!computeByteSize(shape, 4, elements, bytes) || elements != values.size())
    return failure("readNpyF32's values do not match its shape");
  return {};
}

std::vector<std::string> npySeeds() {
  std::vector<std::string> seeds;
  std::string dir = scratchDirectory();
  if (dir.empty())
    return seeds;
  std::string path = dir + "/seed.npy";
  for (const std::vector<int64_t> &shape :
       {std::vector<int64_t>{2, 3}, std::vector<int64_t>{4},
        std::vector<int64_t>{}}) {
    uint64_t n = 0, bytes = 0;
    computeByteSize(shape, 4, n, bytes);
    std::vector<float> values(n);
    for (uint64_t i = 0; i < n; ++i)
      values[i] = 0.5f * static_cast<float>(i) - 1.f;
    if (writeNpyF32(path, shape, values).ok())
      seeds.push_back(readWholeFile(path));
  }
  std::remove(path.c_str());
  return seeds;
}

} // namespace

const std::vector<fuzz::FuzzTarget> &fuzz::fuzzTargets() {
  static const std::vector<FuzzTarget> targets = {
      {"json", "a JSON document (parseJson)", runJson, jsonSeeds},
      {"config", "config.json (parseConfig)", runConfig, configSeeds},
      {"safetensors", "a safetensors file (SafeTensorsFile::open)",
       runSafeTensors, safeTensorsSeeds},
      {"checkpoint-index",
       "model.safetensors.index.json of a checkpoint (Checkpoint::open)",
       runCheckpointIndex, checkpointIndexSeeds},
      {"tokenizer", "tokenizer.json (Tokenizer::parse)", runTokenizer,
       tokenizerSeeds},
      {"encode", "text to tokenize (Tokenizer::encode and decode)", runEncode,
       encodeSeeds},
      {"manifest", "an artifact's manifest.json (parseManifest)", runManifest,
       manifestSeeds},
      {"token-ids", "a token id list (parseTokenIds)", runTokenIds,
       tokenIdsSeeds},
      {"npy", "an .npy file (readNpyF32)", runNpy, npySeeds},
  };
  return targets;
}

const std::string &fuzz::lastRefusal() { return refusalText(); }

const fuzz::FuzzTarget *fuzz::findFuzzTarget(std::string_view name) {
  for (const FuzzTarget &t : fuzzTargets())
    if (name == t.name)
      return &t;
  return nullptr;
}

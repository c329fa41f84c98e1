//===- Tokenizer.cpp - Hugging Face tokenizer.json (BPE) ------------------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//

#include "jamba/Checkpoint/Tokenizer.h"

#include "jamba/Checkpoint/Config.h"
#include "jamba/Checkpoint/Json.h"

#include <algorithm>
#include <cstdio>
#include <queue>
#include <unordered_map>
#include <utility>

using namespace jamba;
using namespace jamba::ckpt;

namespace {

//===----------------------------------------------------------------------===//
// UTF-8
//===----------------------------------------------------------------------===//

/// The length of the UTF-8 sequence at `s[i]`, or 0 when it is not a valid
/// one (overlong forms, surrogates and code points past U+10FFFF included).
size_t utf8SequenceLength(std::string_view s, size_t i, uint32_t *cp) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char b0 = byte(i);
  size_t n;
  uint32_t value, min;
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  if ((b0 & 0xE0) == 0xC0) {
    n = 2, value = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    n = 3, value = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    n = 4, value = b0 & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (i + n > s.size())
    return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80)
      return 0;
    value = (value << 6) | (byte(i + k) & 0x3F);
  }
  if (value < min || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF))
    return 0;
  *cp = value;
  return n;
}

bool isValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    uint32_t cp;
    size_t n = utf8SequenceLength(s, i, &cp);
    if (n == 0)
      return false;
    i += n;
  }
  return true;
}

std::string codePointName(uint32_t cp) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "U+%04X", cp);
  return buf;
}

void replaceAll(std::string &s, const std::string &from,
                const std::string &to) {
  if (from.empty())
    return;
  std::string out;
  size_t pos = 0;
  for (size_t hit; (hit = s.find(from, pos)) != std::string::npos;
       pos = hit + from.size())
    out.append(s, pos, hit - pos).append(to);
  out.append(s, pos, std::string::npos);
  s = std::move(out);
}

/// The byte of a byte-fallback token "<0xHH>", or -1.
int byteTokenValue(std::string_view token) {
  if (token.size() != 6 || token.substr(0, 3) != "<0x" || token[5] != '>')
    return -1;
  int value = 0;
  for (char c : token.substr(3, 2)) {
    int digit = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                       : -1;
    if (digit < 0)
      return -1;
    value = value * 16 + digit;
  }
  return value;
}

//===----------------------------------------------------------------------===//
// The components
//===----------------------------------------------------------------------===//

enum class PrependScheme { Always, First, Never };

struct Metaspace {
  std::string replacement = "\u2581";
  PrependScheme scheme = PrependScheme::Always;
  bool split = true;
};

struct NormalizerStep {
  enum class Kind { Prepend, Replace } kind;
  std::string text;    ///< Prepend: what; Replace: the pattern.
  std::string content; ///< Replace: the replacement.
};

struct DecoderStep {
  enum class Kind { Replace, ByteFallback, Fuse, Strip, Metaspace } kind;
  std::string pattern, content; ///< Replace; Strip's content.
  int64_t start = 0, stop = 0;  ///< Strip.
  Metaspace metaspace;          ///< Metaspace.
};

struct AddedToken {
  int64_t id;
  std::string content;
  bool special;
  /// Matched in the normalized text, as `match` (the content normalized);
  /// else in the input, as `content`.
  bool normalized;
  std::string match;
};

/// One item of TemplateProcessing's `single`: the input, or fixed ids.
struct TemplateItem {
  bool isInput;
  std::vector<int64_t> ids;
};

/// Reads the members of one JSON object, naming `source: where.key` in every
/// message.
class Reader {
public:
  Reader(const std::string &source, std::string where, const JsonValue &v)
      : source(source), where(std::move(where)), value(v) {}

  template <class... Parts> Status error(Parts &&...parts) const {
    return makeError(source, ": ", where, ": ", std::forward<Parts>(parts)...);
  }
  std::string at(std::string_view key) const { return concat(where, ".", key); }
  Status expectObject() const {
    if (!value.isObject())
      return error("expected an object, got ", value.kindName());
    return Status::success();
  }
  const JsonValue *get(std::string_view key) const { return value.get(key); }

  Status string(std::string_view key, std::string &out,
                bool optional = false) const {
    const JsonValue *v = get(key);
    if (!v || (optional && v->isNull())) {
      if (optional)
        return Status::success();
      return makeError(source, ": ", at(key), ": missing");
    }
    if (!v->isString())
      return makeError(source, ": ", at(key), ": expected a string, got ",
                       v->kindName());
    out = v->getString();
    return Status::success();
  }
  Status boolean(std::string_view key, bool &out) const {
    const JsonValue *v = get(key);
    if (!v || v->isNull())
      return Status::success();
    if (!v->isBool())
      return makeError(source, ": ", at(key), ": expected a boolean, got ",
                       v->kindName());
    out = v->getBool();
    return Status::success();
  }
  Status integer(std::string_view key, int64_t &out, int64_t min,
                 int64_t max) const {
    const JsonValue *v = get(key);
    if (!v)
      return makeError(source, ": ", at(key), ": missing");
    if (!v->isInteger() || v->getInt() < min || v->getInt() > max)
      return makeError(source, ": ", at(key), ": expected an integer in [", min,
                       ", ", max, "]");
    out = v->getInt();
    return Status::success();
  }
  Status type(std::string &out) const {
    JAMBA_CKPT_RETURN_IF_ERROR(expectObject());
    return string("type", out);
  }

  const std::string &source;
  std::string where;
  const JsonValue &value;
};

/// Token ids are at most this (2^31 - 1): they travel as int32 through the
/// C API.
constexpr int64_t kMaxTokenId = 0x7FFFFFFF;

Status readMetaspace(const Reader &r, Metaspace &m) {
  JAMBA_CKPT_RETURN_IF_ERROR(r.string("replacement", m.replacement));
  uint32_t cp;
  if (m.replacement.empty() ||
      utf8SequenceLength(m.replacement, 0, &cp) != m.replacement.size())
    return r.error("replacement must be one character, got '", m.replacement,
                   "'");
  if (r.get("prepend_scheme")) {
    std::string scheme;
    JAMBA_CKPT_RETURN_IF_ERROR(r.string("prepend_scheme", scheme));
    if (scheme == "always")
      m.scheme = PrependScheme::Always;
    else if (scheme == "first")
      m.scheme = PrependScheme::First;
    else if (scheme == "never")
      m.scheme = PrependScheme::Never;
    else
      return r.error("prepend_scheme '", scheme,
                     "' is not one of always, first, never");
  } else {
    bool add = true;
    JAMBA_CKPT_RETURN_IF_ERROR(r.boolean("add_prefix_space", add));
    m.scheme = add ? PrependScheme::Always : PrependScheme::Never;
  }
  return r.boolean("split", m.split);
}

/// A Replace's `pattern`: only {"String": s} (a Regex would need a regex
/// engine whose dialect matches the reference's).
Status readStringPattern(const Reader &r, std::string &out) {
  const JsonValue *p = r.get("pattern");
  if (!p)
    return r.error("pattern: missing");
  Reader pr(r.source, r.at("pattern"), *p);
  JAMBA_CKPT_RETURN_IF_ERROR(pr.expectObject());
  if (pr.get("Regex"))
    return pr.error("a Regex pattern is not supported (only String)");
  JAMBA_CKPT_RETURN_IF_ERROR(pr.string("String", out));
  if (out.empty())
    return pr.error("String: the pattern is empty");
  return Status::success();
}

/// The `key` array of a Sequence component, each element read by `readOne`
/// under its path (`normalizer.normalizers[1]`).
template <class ReadOne>
Status readSequence(const Reader &r, const char *key, ReadOne &&readOne) {
  const JsonValue *list = r.get(key);
  if (!list || !list->isArray())
    return r.error(key, ": expected an array");
  for (size_t i = 0; i < list->getArray().size(); ++i)
    JAMBA_CKPT_RETURN_IF_ERROR(
        readOne(Reader(r.source, concat(r.where, ".", key, "[", i, "]"),
                       list->getArray()[i])));
  return Status::success();
}

Status readNormalizer(const Reader &r, std::vector<NormalizerStep> &steps) {
  if (r.value.isNull())
    return Status::success();
  std::string type;
  JAMBA_CKPT_RETURN_IF_ERROR(r.type(type));
  if (type == "Sequence")
    return readSequence(r, "normalizers", [&](const Reader &e) {
      return readNormalizer(e, steps);
    });
  NormalizerStep step;
  if (type == "Prepend") {
    step.kind = NormalizerStep::Kind::Prepend;
    JAMBA_CKPT_RETURN_IF_ERROR(r.string("prepend", step.text));
  } else if (type == "Replace") {
    step.kind = NormalizerStep::Kind::Replace;
    JAMBA_CKPT_RETURN_IF_ERROR(readStringPattern(r, step.text));
    JAMBA_CKPT_RETURN_IF_ERROR(r.string("content", step.content));
  } else {
    return r.error("normalizer '", type,
                   "' is not supported (this reader knows Sequence, Prepend, "
                   "Replace)");
  }
  steps.push_back(std::move(step));
  return Status::success();
}

Status readPreTokenizer(const Reader &r, std::vector<Metaspace> &steps) {
  if (r.value.isNull())
    return Status::success();
  std::string type;
  JAMBA_CKPT_RETURN_IF_ERROR(r.type(type));
  if (type == "Sequence")
    return readSequence(r, "pretokenizers", [&](const Reader &e) {
      return readPreTokenizer(e, steps);
    });
  if (type != "Metaspace")
    return r.error("pre-tokenizer '", type,
                   "' is not supported (this reader knows Sequence, "
                   "Metaspace)");
  Metaspace m;
  JAMBA_CKPT_RETURN_IF_ERROR(readMetaspace(r, m));
  steps.push_back(std::move(m));
  return Status::success();
}

Status readDecoder(const Reader &r, std::vector<DecoderStep> &steps) {
  if (r.value.isNull())
    return Status::success();
  std::string type;
  JAMBA_CKPT_RETURN_IF_ERROR(r.type(type));
  if (type == "Sequence")
    return readSequence(r, "decoders",
                        [&](const Reader &e) { return readDecoder(e, steps); });
  DecoderStep step;
  if (type == "Replace") {
    step.kind = DecoderStep::Kind::Replace;
    JAMBA_CKPT_RETURN_IF_ERROR(readStringPattern(r, step.pattern));
    JAMBA_CKPT_RETURN_IF_ERROR(r.string("content", step.content));
  } else if (type == "ByteFallback") {
    step.kind = DecoderStep::Kind::ByteFallback;
  } else if (type == "Fuse") {
    step.kind = DecoderStep::Kind::Fuse;
  } else if (type == "Strip") {
    step.kind = DecoderStep::Kind::Strip;
    JAMBA_CKPT_RETURN_IF_ERROR(r.string("content", step.content));
    uint32_t cp;
    if (step.content.empty() ||
        utf8SequenceLength(step.content, 0, &cp) != step.content.size())
      return r.error("content must be one character, got '", step.content, "'");
    JAMBA_CKPT_RETURN_IF_ERROR(r.integer("start", step.start, 0, 1 << 20));
    JAMBA_CKPT_RETURN_IF_ERROR(r.integer("stop", step.stop, 0, 1 << 20));
  } else if (type == "Metaspace") {
    step.kind = DecoderStep::Kind::Metaspace;
    JAMBA_CKPT_RETURN_IF_ERROR(readMetaspace(r, step.metaspace));
  } else {
    return r.error("decoder '", type,
                   "' is not supported (this reader knows Sequence, Replace, "
                   "ByteFallback, Fuse, Strip, Metaspace)");
  }
  steps.push_back(std::move(step));
  return Status::success();
}

uint64_t pairKey(int64_t a, int64_t b) {
  return (static_cast<uint64_t>(a) << 32) | static_cast<uint64_t>(b);
}

} // namespace

//===----------------------------------------------------------------------===//
// Tokenizer::Impl
//===----------------------------------------------------------------------===//

struct Tokenizer::Impl {
  std::vector<NormalizerStep> normalizer;
  std::vector<Metaspace> preTokenizer;
  std::unordered_map<std::string, int64_t> vocab;
  std::unordered_map<int64_t, std::string> tokens; ///< Id -> content.
  /// (left id, right id) -> (rank, merged id).
  std::unordered_map<uint64_t, std::pair<int64_t, int64_t>> merges;
  int64_t unkId = -1;
  bool fuseUnk = false, byteFallback = false, ignoreMerges = false;
  int64_t byteIds[256];
  std::vector<AddedToken> added;
  std::unordered_map<int64_t, size_t> addedById;
  /// The added tokens by the first byte of what they match, for the
  /// splits: of the input (normalized false) and of each normalized piece.
  std::vector<const AddedToken *> rawByFirstByte[256];
  std::vector<const AddedToken *> normalizedByFirstByte[256];

  std::string normalize(std::string text) const {
    for (const NormalizerStep &step : normalizer) {
      if (step.kind == NormalizerStep::Kind::Prepend) {
        if (!text.empty())
          text = step.text + text;
      } else {
        replaceAll(text, step.text, step.content);
      }
    }
    return text;
  }
  /// Pre-tokenizes and merges one normalized piece with no added token in
  /// it; `first`: it starts the input.
  Status encodeNormalized(std::string piece, bool first,
                          std::vector<int64_t> &out) const;
  bool hasTemplate = false;
  std::vector<TemplateItem> single;
  std::vector<DecoderStep> decoder;
  int64_t maxId = -1;

  Status readModel(const Reader &r);
  Status readAddedTokens(const Reader &r);
  Status readPostProcessor(const Reader &r);

  /// Encodes one piece of text between added tokens; `first`: the piece
  /// starts the text.
  Status encodePiece(std::string piece, bool first,
                     std::vector<int64_t> &out) const;
  Status encodeWord(std::string_view word, std::vector<int64_t> &out) const;
};

Status Tokenizer::Impl::readModel(const Reader &r) {
  std::string type;
  JAMBA_CKPT_RETURN_IF_ERROR(r.type(type));
  if (type != "BPE")
    return r.error("model '", type, "' is not supported (only BPE)");
  // A dropout of 0 drops no merge, as null does.
  if (const JsonValue *d = r.get("dropout");
      d && !d->isNull() && !(d->isNumber() && d->getDouble() == 0.0))
    return r.error("dropout: BPE dropout is not supported (it samples "
                   "merges; inference leaves it null)");
  for (const char *key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    std::string affix;
    JAMBA_CKPT_RETURN_IF_ERROR(r.string(key, affix, /*optional=*/true));
    if (!affix.empty())
      return makeError(r.source, ": ", r.at(key), ": '", affix,
                       "' is not supported (only null or empty)");
  }
  JAMBA_CKPT_RETURN_IF_ERROR(r.boolean("fuse_unk", fuseUnk));
  JAMBA_CKPT_RETURN_IF_ERROR(r.boolean("byte_fallback", byteFallback));
  JAMBA_CKPT_RETURN_IF_ERROR(r.boolean("ignore_merges", ignoreMerges));

  const JsonValue *v = r.get("vocab");
  if (!v || !v->isObject())
    return r.error("vocab: expected an object of token -> id");
  for (const JsonValue::Member &m : v->getObject()) {
    std::string where = concat(r.at("vocab"), "['", m.first, "']");
    if (!m.second.isInteger() || m.second.getInt() < 0 ||
        m.second.getInt() > kMaxTokenId)
      return makeError(r.source, ": ", where, ": expected an id in [0, ",
                       kMaxTokenId, "]");
    int64_t id = m.second.getInt();
    if (m.first.empty())
      return makeError(r.source, ": ", where, ": the token is empty");
    auto [it, inserted] = tokens.emplace(id, m.first);
    if (!inserted)
      return makeError(r.source, ": ", where, ": id ", id,
                       " is also the id of '", it->second, "'");
    vocab.emplace(m.first, id);
    maxId = std::max(maxId, id);
  }

  std::string unk;
  JAMBA_CKPT_RETURN_IF_ERROR(r.string("unk_token", unk, /*optional=*/true));
  if (!unk.empty()) {
    auto it = vocab.find(unk);
    if (it == vocab.end())
      return makeError(r.source, ": ", r.at("unk_token"), ": '", unk,
                       "' is not in the vocabulary");
    unkId = it->second;
  }
  std::fill(std::begin(byteIds), std::end(byteIds), -1);
  // Encoding falls back on the uppercase spelling "<0x0A>" only, as the
  // reference does (decoding reads either).
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    if (auto it = vocab.find(name); it != vocab.end())
      byteIds[b] = it->second;
  }

  const JsonValue *list = r.get("merges");
  if (!list || !list->isArray())
    return r.error("merges: expected an array");
  const std::vector<JsonValue> &items = list->getArray();
  for (size_t i = 0; i < items.size(); ++i) {
    std::string where = concat(r.at("merges"), "[", i, "]");
    std::string left, right;
    if (items[i].isString()) {
      const std::string &s = items[i].getString();
      size_t space = s.find(' ');
      if (space == std::string::npos || space == 0 || space + 1 == s.size() ||
          s.find(' ', space + 1) != std::string::npos)
        return makeError(r.source, ": ", where, ": '", s,
                         "' is not two tokens separated by one space");
      left = s.substr(0, space);
      right = s.substr(space + 1);
    } else if (items[i].isArray() && items[i].getArray().size() == 2 &&
               items[i].getArray()[0].isString() &&
               items[i].getArray()[1].isString()) {
      left = items[i].getArray()[0].getString();
      right = items[i].getArray()[1].getString();
    } else {
      return makeError(r.source, ": ", where,
                       ": expected \"left right\" or [\"left\", \"right\"]");
    }
    int64_t ids[3];
    const std::string parts[3] = {left, right, left + right};
    for (int k = 0; k < 3; ++k) {
      auto it = vocab.find(parts[k]);
      if (it == vocab.end())
        return makeError(r.source, ": ", where, ": '", parts[k],
                         "' is not in the vocabulary");
      ids[k] = it->second;
    }
    // A repeated pair takes its last rank, as the reference's map does.
    merges.insert_or_assign(pairKey(ids[0], ids[1]),
                            std::make_pair(static_cast<int64_t>(i), ids[2]));
  }
  return Status::success();
}

Status Tokenizer::Impl::readAddedTokens(const Reader &r) {
  if (r.value.isNull())
    return Status::success();
  if (!r.value.isArray())
    return r.error("expected an array, got ", r.value.kindName());
  for (size_t i = 0; i < r.value.getArray().size(); ++i) {
    Reader t(r.source, concat(r.where, "[", i, "]"), r.value.getArray()[i]);
    JAMBA_CKPT_RETURN_IF_ERROR(t.expectObject());
    AddedToken token;
    JAMBA_CKPT_RETURN_IF_ERROR(t.integer("id", token.id, 0, kMaxTokenId));
    JAMBA_CKPT_RETURN_IF_ERROR(t.string("content", token.content));
    t.where = concat(t.where, " ('", token.content, "')");
    if (token.content.empty())
      return t.error("the content is empty");
    bool special = false, flag = false;
    JAMBA_CKPT_RETURN_IF_ERROR(t.boolean("special", special));
    token.special = special;
    for (const char *key : {"single_word", "lstrip", "rstrip"}) {
      flag = false;
      JAMBA_CKPT_RETURN_IF_ERROR(t.boolean(key, flag));
      if (flag)
        return t.error(key, ": true is not supported");
    }
    // A normalized token (the reference's default) is looked for in the
    // normalized text in its normalized form ("<x>" as "▁<x>" after a
    // Prepend "▁").
    bool normalized = true;
    JAMBA_CKPT_RETURN_IF_ERROR(t.boolean("normalized", normalized));
    token.normalized = normalized;
    token.match = normalized ? normalize(token.content) : token.content;
    if (token.match.empty())
      return t.error("the normalizer turns the content into nothing");
    if (auto it = tokens.find(token.id);
        it != tokens.end() && it->second != token.content)
      return t.error("id ", token.id, " is the vocabulary's '", it->second,
                     "'");
    if (addedById.count(token.id))
      return t.error("id ", token.id, " is added twice");
    maxId = std::max(maxId, token.id);
    addedById.emplace(token.id, added.size());
    added.push_back(std::move(token));
  }
  return Status::success();
}

Status Tokenizer::Impl::readPostProcessor(const Reader &r) {
  if (r.value.isNull())
    return Status::success();
  std::string type;
  JAMBA_CKPT_RETURN_IF_ERROR(r.type(type));
  if (type != "TemplateProcessing")
    return r.error("post-processor '", type,
                   "' is not supported (only TemplateProcessing)");
  const JsonValue *specials = r.get("special_tokens");
  if (specials && !specials->isObject())
    return r.error("special_tokens: expected an object");
  const JsonValue *list = r.get("single");
  if (!list || !list->isArray())
    return r.error("single: expected an array");
  hasTemplate = true;
  bool sawInput = false;
  for (size_t i = 0; i < list->getArray().size(); ++i) {
    Reader item(r.source, concat(r.at("single"), "[", i, "]"),
                list->getArray()[i]);
    JAMBA_CKPT_RETURN_IF_ERROR(item.expectObject());
    if (const JsonValue *seq = item.get("Sequence")) {
      Reader s(r.source, item.at("Sequence"), *seq);
      JAMBA_CKPT_RETURN_IF_ERROR(s.expectObject());
      std::string id;
      JAMBA_CKPT_RETURN_IF_ERROR(s.string("id", id));
      if (id != "A" || sawInput)
        return s.error("a single-sequence template holds sequence A once");
      sawInput = true;
      single.push_back({true, {}});
      continue;
    }
    const JsonValue *tok = item.get("SpecialToken");
    if (!tok)
      return item.error("expected a Sequence or a SpecialToken");
    Reader s(r.source, item.at("SpecialToken"), *tok);
    JAMBA_CKPT_RETURN_IF_ERROR(s.expectObject());
    std::string name;
    JAMBA_CKPT_RETURN_IF_ERROR(s.string("id", name));
    const JsonValue *entry = specials ? specials->get(name) : nullptr;
    if (!entry)
      return s.error("'", name, "' is not in special_tokens");
    Reader e(r.source, concat(r.at("special_tokens"), "['", name, "']"),
             *entry);
    JAMBA_CKPT_RETURN_IF_ERROR(e.expectObject());
    const JsonValue *ids = e.get("ids");
    if (!ids || !ids->isArray() || ids->getArray().empty())
      return e.error("ids: expected a non-empty array");
    TemplateItem fixed{false, {}};
    for (const JsonValue &id : ids->getArray()) {
      if (!id.isInteger() || id.getInt() < 0 || id.getInt() > maxId ||
          (!tokens.count(id.getInt()) && !addedById.count(id.getInt())))
        return e.error("ids: every id must name a token of this tokenizer");
      fixed.ids.push_back(id.getInt());
    }
    single.push_back(std::move(fixed));
  }
  if (!sawInput)
    return r.error("single: the template never holds sequence A");
  return Status::success();
}

Status Tokenizer::Impl::encodeWord(std::string_view word,
                                   std::vector<int64_t> &out) const {
  if (ignoreMerges)
    if (auto it = vocab.find(std::string(word)); it != vocab.end()) {
      out.push_back(it->second);
      return Status::success();
    }
  struct Symbol {
    int64_t id;
    int64_t prev, next; ///< Neighbour indices, -1 at the ends.
  };
  std::vector<Symbol> symbols;
  bool lastUnk = false;
  auto push = [&](int64_t id) {
    int64_t index = static_cast<int64_t>(symbols.size());
    symbols.push_back({id, index - 1, -1});
    if (index > 0)
      symbols[size_t(index - 1)].next = index;
  };
  for (size_t i = 0; i < word.size();) {
    uint32_t cp;
    size_t n = utf8SequenceLength(word, i, &cp);
    if (n == 0) // Unreachable: the input and the normalizer are UTF-8.
      return makeError("the normalized text is not valid UTF-8");
    auto it = vocab.find(std::string(word.substr(i, n)));
    if (it != vocab.end()) {
      push(it->second);
      lastUnk = false;
    } else if (byteFallback &&
               std::all_of(word.begin() + i, word.begin() + i + n, [&](char c) {
                 return byteIds[static_cast<unsigned char>(c)] >= 0;
               })) {
      for (size_t k = 0; k < n; ++k)
        push(byteIds[static_cast<unsigned char>(word[i + k])]);
      lastUnk = false;
    } else if (unkId >= 0) {
      if (!(fuseUnk && lastUnk))
        push(unkId);
      lastUnk = true;
    } else {
      return makeError("character ", codePointName(cp), " '", word.substr(i, n),
                       "' is not in the vocabulary, and the tokenizer has "
                       "neither byte fallback nor an unk_token");
    }
    i += n;
  }

  // Merge the adjacent pair of lowest rank (the leftmost among equals) until
  // none is left; entries whose pair has changed since are skipped.
  struct Candidate {
    int64_t rank, pos, left, right;
    bool operator>(const Candidate &o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  auto consider = [&](int64_t pos) {
    if (pos < 0 || symbols[size_t(pos)].next < 0)
      return;
    int64_t left = symbols[size_t(pos)].id;
    int64_t right = symbols[size_t(symbols[size_t(pos)].next)].id;
    auto it = merges.find(pairKey(left, right));
    if (it != merges.end())
      queue.push({it->second.first, pos, left, right});
  };
  for (int64_t pos = 0; pos < static_cast<int64_t>(symbols.size()); ++pos)
    consider(pos);
  std::vector<bool> dead(symbols.size(), false);
  while (!queue.empty()) {
    Candidate c = queue.top();
    queue.pop();
    Symbol &s = symbols[size_t(c.pos)];
    if (dead[size_t(c.pos)] || s.next < 0 || s.id != c.left ||
        symbols[size_t(s.next)].id != c.right)
      continue;
    int64_t gone = s.next;
    s.id = merges.at(pairKey(c.left, c.right)).second;
    dead[size_t(gone)] = true;
    s.next = symbols[size_t(gone)].next;
    if (s.next >= 0)
      symbols[size_t(s.next)].prev = c.pos;
    consider(s.prev);
    consider(c.pos);
  }
  for (size_t pos = 0; pos < symbols.size(); ++pos)
    if (!dead[pos])
      out.push_back(symbols[pos].id);
  return Status::success();
}

/// The longest added token of `index` whose match starts at text[i], or
/// nullptr.
static const AddedToken *
longestAt(const std::vector<const AddedToken *> (&index)[256],
          std::string_view text, size_t i) {
  const AddedToken *best = nullptr;
  for (const AddedToken *t : index[static_cast<unsigned char>(text[i])])
    if (text.compare(i, t->match.size(), t->match) == 0 &&
        (!best || t->match.size() > best->match.size()))
      best = t;
  return best;
}

Status Tokenizer::Impl::encodePiece(std::string piece, bool first,
                                    std::vector<int64_t> &out) const {
  std::string text = normalize(std::move(piece));
  size_t start = 0;
  for (size_t i = 0; i < text.size();) {
    const AddedToken *t = longestAt(normalizedByFirstByte, text, i);
    if (!t) {
      ++i;
      continue;
    }
    JAMBA_CKPT_RETURN_IF_ERROR(
        encodeNormalized(text.substr(start, i - start), first, out));
    out.push_back(t->id);
    first = false;
    i += t->match.size();
    start = i;
  }
  return encodeNormalized(text.substr(start), first, out);
}

Status Tokenizer::Impl::encodeNormalized(std::string piece, bool first,
                                         std::vector<int64_t> &out) const {
  std::vector<std::string> words = {std::move(piece)};
  for (const Metaspace &m : preTokenizer) {
    std::vector<std::string> next;
    for (std::string &w : words) {
      replaceAll(w, " ", m.replacement);
      bool prepend = m.scheme == PrependScheme::Always ||
                     (m.scheme == PrependScheme::First && first);
      if (prepend && !w.empty() &&
          w.compare(0, m.replacement.size(), m.replacement) != 0)
        w = m.replacement + w;
      if (!m.split) {
        next.push_back(std::move(w));
        continue;
      }
      // Each word starts at a replacement character (merged with what
      // follows it).
      size_t start = 0;
      for (size_t hit = w.find(m.replacement, 1); hit != std::string::npos;
           hit = w.find(m.replacement, hit + m.replacement.size())) {
        next.push_back(w.substr(start, hit - start));
        start = hit;
      }
      if (start < w.size())
        next.push_back(w.substr(start));
    }
    words = std::move(next);
  }
  for (const std::string &w : words)
    if (!w.empty())
      JAMBA_CKPT_RETURN_IF_ERROR(encodeWord(w, out));
  return Status::success();
}

//===----------------------------------------------------------------------===//
// Tokenizer
//===----------------------------------------------------------------------===//

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer &&) noexcept = default;
Tokenizer &Tokenizer::operator=(Tokenizer &&) noexcept = default;
Tokenizer::~Tokenizer() = default;

StatusOr<Tokenizer> Tokenizer::parse(std::string_view json,
                                     const std::string &source) {
  StatusOr<JsonValue> doc = parseJson(json, source);
  if (!doc.ok())
    return doc.status();
  Reader top(source, "tokenizer", *doc);
  if (!doc->isObject())
    return makeError(source, ": expected a JSON object, got ", doc->kindName());
  auto impl = std::make_unique<Impl>();
  auto member = [&](const char *key) {
    static const JsonValue null;
    const JsonValue *v = doc->get(key);
    return Reader(source, key, v ? *v : null);
  };
  // The normalizer first: the added tokens' check reads it.
  JAMBA_CKPT_RETURN_IF_ERROR(
      readNormalizer(member("normalizer"), impl->normalizer));
  JAMBA_CKPT_RETURN_IF_ERROR(
      readPreTokenizer(member("pre_tokenizer"), impl->preTokenizer));
  if (!doc->get("model"))
    return makeError(source, ": model: missing");
  JAMBA_CKPT_RETURN_IF_ERROR(impl->readModel(member("model")));
  JAMBA_CKPT_RETURN_IF_ERROR(impl->readAddedTokens(member("added_tokens")));
  JAMBA_CKPT_RETURN_IF_ERROR(impl->readPostProcessor(member("post_processor")));
  JAMBA_CKPT_RETURN_IF_ERROR(readDecoder(member("decoder"), impl->decoder));
  if (impl->maxId < 0)
    return makeError(source, ": the tokenizer has no tokens");
  for (const AddedToken &t : impl->added)
    (t.normalized
         ? impl->normalizedByFirstByte
         : impl->rawByFirstByte)[static_cast<unsigned char>(t.match[0])]
        .push_back(&t);
  return Tokenizer(std::move(impl));
}

StatusOr<Tokenizer> Tokenizer::load(const std::string &path) {
  std::string text;
  JAMBA_CKPT_RETURN_IF_ERROR(readFileToString(path, text, size_t(256) << 20));
  return parse(text, path);
}

StatusOr<Tokenizer> Tokenizer::loadForVocabulary(const std::string &path,
                                                 int64_t vocabSize) {
  StatusOr<Tokenizer> loaded = load(path);
  if (!loaded.ok())
    return loaded.status();
  if (loaded->maxId() >= vocabSize)
    return makeError(path, ": token id ", loaded->maxId(),
                     " is outside the model's vocabulary of ", vocabSize);
  return loaded;
}

StatusOr<std::vector<int64_t>> Tokenizer::encode(std::string_view text,
                                                 bool addSpecialTokens) const {
  for (size_t i = 0; i < text.size();) {
    uint32_t cp;
    size_t n = utf8SequenceLength(text, i, &cp);
    if (n == 0)
      return makeError("the text is not valid UTF-8 at byte ", i);
    i += n;
  }
  std::vector<int64_t> ids;
  // Split at the added tokens: at each position the longest one that
  // starts there, the leftmost position first.
  size_t pieceStart = 0;
  bool first = true;
  for (size_t i = 0; i < text.size();) {
    const AddedToken *best = longestAt(impl->rawByFirstByte, text, i);
    if (!best) {
      ++i;
      continue;
    }
    JAMBA_CKPT_RETURN_IF_ERROR(impl->encodePiece(
        std::string(text.substr(pieceStart, i - pieceStart)), first, ids));
    ids.push_back(best->id);
    first = false;
    i += best->match.size();
    pieceStart = i;
  }
  JAMBA_CKPT_RETURN_IF_ERROR(
      impl->encodePiece(std::string(text.substr(pieceStart)), first, ids));
  if (!addSpecialTokens || !impl->hasTemplate)
    return ids;
  std::vector<int64_t> templated;
  for (const TemplateItem &item : impl->single) {
    const std::vector<int64_t> &part = item.isInput ? ids : item.ids;
    templated.insert(templated.end(), part.begin(), part.end());
  }
  return templated;
}

StatusOr<std::string> Tokenizer::decode(const std::vector<int64_t> &ids,
                                        bool skipSpecialTokens,
                                        size_t *unknownIds) const {
  std::vector<std::string> pieces;
  size_t unknown = 0;
  for (int64_t id : ids) {
    if (auto a = impl->addedById.find(id); a != impl->addedById.end()) {
      const AddedToken &t = impl->added[a->second];
      if (!(t.special && skipSpecialTokens))
        pieces.push_back(t.content);
      continue;
    }
    auto it = impl->tokens.find(id);
    if (it == impl->tokens.end()) {
      // A model's vocabulary may be larger than its tokenizer's (padded):
      // show such an id rather than drop it as the reference does.
      ++unknown;
      pieces.push_back("\uFFFD");
      continue;
    }
    pieces.push_back(it->second);
  }
  if (unknownIds)
    *unknownIds = unknown;
  for (const DecoderStep &step : impl->decoder) {
    switch (step.kind) {
    case DecoderStep::Kind::Replace:
      for (std::string &p : pieces)
        replaceAll(p, step.pattern, step.content);
      break;
    case DecoderStep::Kind::ByteFallback: {
      // Runs of "<0xHH>" become their bytes when those are valid UTF-8,
      // else one U+FFFD per byte token.
      std::vector<std::string> next;
      std::string bytes;
      size_t run = 0;
      auto flush = [&] {
        if (run == 0)
          return;
        if (isValidUtf8(bytes)) {
          next.push_back(bytes);
        } else {
          for (size_t k = 0; k < run; ++k)
            next.push_back("\uFFFD");
        }
        bytes.clear();
        run = 0;
      };
      for (std::string &p : pieces) {
        if (int b = byteTokenValue(p); b >= 0) {
          bytes.push_back(static_cast<char>(b));
          ++run;
          continue;
        }
        flush();
        next.push_back(std::move(p));
      }
      flush();
      pieces = std::move(next);
      break;
    }
    case DecoderStep::Kind::Fuse: {
      std::string all;
      for (const std::string &p : pieces)
        all += p;
      pieces = {std::move(all)};
      break;
    }
    case DecoderStep::Kind::Strip:
      for (std::string &p : pieces) {
        // Up to `start` leading and `stop` trailing copies of the character,
        // counted first and cut once.
        const std::string &c = step.content;
        size_t head = 0, tail = p.size();
        for (int64_t k = 0; k < step.start && tail - head >= c.size() &&
                            p.compare(head, c.size(), c) == 0;
             ++k)
          head += c.size();
        for (int64_t k = 0; k < step.stop && tail - head >= c.size() &&
                            p.compare(tail - c.size(), c.size(), c) == 0;
             ++k)
          tail -= c.size();
        p = p.substr(head, tail - head);
      }
      break;
    case DecoderStep::Kind::Metaspace:
      // Each replacement becomes a space, except in the first token (when
      // the encoder prepends one), where every replacement is dropped, as
      // the reference library does.
      for (size_t i = 0; i < pieces.size(); ++i)
        replaceAll(
            pieces[i], step.metaspace.replacement,
            i == 0 && step.metaspace.scheme != PrependScheme::Never ? "" : " ");
      break;
    }
  }
  std::string text;
  for (const std::string &p : pieces)
    text += p;
  return text;
}

int64_t Tokenizer::maxId() const { return impl->maxId; }

int64_t Tokenizer::tokenId(std::string_view content) const {
  for (const AddedToken &t : impl->added)
    if (t.content == content)
      return t.id;
  auto it = impl->vocab.find(std::string(content));
  return it == impl->vocab.end() ? -1 : it->second;
}

//===----------------------------------------------------------------------===//
// TextStream
//===----------------------------------------------------------------------===//

TextStream::TextStream(const Tokenizer &tokenizer, bool skipSpecialTokens)
    : tokenizer(tokenizer), skipSpecialTokens(skipSpecialTokens) {
  // After a Fuse the decoder sees the whole text: a step there that is not
  // a Strip or a one-character Replace could join or split text across two
  // pushes.
  bool fused = false;
  for (const DecoderStep &step : tokenizer.impl->decoder) {
    if (!fused) {
      fused = step.kind == DecoderStep::Kind::Fuse;
      continue;
    }
    uint32_t cp = 0;
    const bool oneCharacter =
        step.kind == DecoderStep::Kind::Replace && !step.pattern.empty() &&
        utf8SequenceLength(step.pattern, 0, &cp) == step.pattern.size();
    if (step.kind != DecoderStep::Kind::Strip &&
        step.kind != DecoderStep::Kind::Fuse && !oneCharacter)
      streams = false;
  }
}

StatusOr<std::string> TextStream::decodeRange(size_t begin, size_t end) const {
  return tokenizer.decode(
      std::vector<int64_t>(ids.begin() + begin, ids.begin() + end),
      skipSpecialTokens);
}

bool TextStream::startsWindow(const std::string &text) const {
  if (text.empty())
    return false;
  for (const DecoderStep &step : tokenizer.impl->decoder) {
    if (step.kind != DecoderStep::Kind::Strip || step.content.empty() ||
        (step.start == 0 && step.stop == 0))
      continue;
    // Only copies of the stripped text: a Strip of the window's start
    // could reach past it.
    size_t at = 0;
    while (at < text.size() &&
           text.compare(at, step.content.size(), step.content) == 0)
      at += step.content.size();
    if (at >= text.size())
      return false;
  }
  return true;
}

StatusOr<std::string> TextStream::push(int64_t id) {
  ids.push_back(id);
  if (!streams)
    return std::string();
  // A byte token waits for the end of its run, and so does a special token
  // left out, which gives the decoder no piece: it does not end a run.
  const Tokenizer::Impl &impl = *tokenizer.impl;
  if (auto added = impl.addedById.find(id); added != impl.addedById.end()) {
    if (skipSpecialTokens && impl.added[added->second].special)
      return std::string();
  } else if (auto it = impl.tokens.find(id);
             it != impl.tokens.end() && byteTokenValue(it->second) >= 0) {
    return std::string();
  }
  StatusOr<std::string> text = decodeRange(windowBegin, ids.size());
  if (!text.ok())
    return text.status();
  // Does not happen with the decoders this reader implements; finish()
  // returns the rest should it.
  if (text->compare(0, windowText.size(), windowText) != 0)
    return std::string();
  std::string delta = text->substr(windowText.size());
  returned += delta;
  // The ids returned just now start the next window when their text can:
  // their own decoding then gives the text of what follows them.
  StatusOr<std::string> last = decodeRange(returnedEnd, ids.size());
  if (!last.ok())
    return last.status();
  if (returnedEnd > windowBegin && startsWindow(*last)) {
    windowBegin = returnedEnd;
    windowText = std::move(*last);
  } else {
    windowText = std::move(*text);
  }
  returnedEnd = ids.size();
  return delta;
}

StatusOr<std::string> TextStream::finish() {
  StatusOr<std::string> all = tokenizer.decode(ids, skipSpecialTokens);
  if (!all.ok())
    return all.status();
  if (all->compare(0, returned.size(), returned) != 0)
    return makeError("the text streamed so far (", returned.size(),
                     " bytes) is not the start of the decoded text of the ",
                     ids.size(), " ids");
  std::string rest = all->substr(returned.size());
  returned = std::move(*all);
  return rest;
}

//===- TokenizerTest.cpp - tokenizer.json reader tests --------------------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// The expected ids below are worked out by hand from the merge ranks (see
// each test's comment); none comes from running the code under test.
//
//===----------------------------------------------------------------------===//

#include "jamba/Checkpoint/Tokenizer.h"
#include "jamba/Checkpoint/RandomCheckpoint.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <random>
#include <string>
#include <vector>

using namespace jamba::ckpt;

namespace {

/// A Llama-2-style tokenizer.json: ids 0-2 <unk> <s> </s>, 3-258 the byte
/// tokens <0x00>..<0xFF>, then 259 "▁" 260 h 261 e 262 l 263 o 264 w 265 r
/// 266 d, and the merges' results 267 he 268 ll 269 hell 270 ▁hell 271 lo
/// 272 ▁w 273 or.
struct Parts {
  std::string normalizer = R"({"type": "Sequence", "normalizers": [
      {"type": "Prepend", "prepend": "\u2581"},
      {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]})";
  std::string preTokenizer = "null";
  std::string postProcessor = R"({"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                 {"Sequence": {"id": "A", "type_id": 0}}],
      "pair": [], "special_tokens": {"<s>": {"id": "<s>", "ids": [1],
                                             "tokens": ["<s>"]}}})";
  std::string decoder = R"({"type": "Sequence", "decoders": [
      {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
      {"type": "ByteFallback"}, {"type": "Fuse"},
      {"type": "Strip", "content": " ", "start": 1, "stop": 0}]})";
  std::string modelFlags = R"("dropout": null, "byte_fallback": true,
      "fuse_unk": true, "unk_token": "<unk>")";
  std::string extraVocab;
  std::string merges = R"(["l l", "h e", "he ll", "\u2581 hell", "l o",
      ["\u2581", "w"], "o r"])";
  std::string addedTokens = R"([
      {"id": 0, "content": "<unk>", "special": true, "normalized": false},
      {"id": 1, "content": "<s>", "special": true, "normalized": false},
      {"id": 2, "content": "</s>", "special": true, "normalized": false}])";

  std::string json() const {
    std::string vocab = R"("<unk>": 0, "<s>": 1, "</s>": 2)";
    for (int b = 0; b < 256; ++b) {
      char buf[32];
      std::snprintf(buf, sizeof(buf), ", \"<0x%02X>\": %d", b, 3 + b);
      vocab += buf;
    }
    vocab += R"(, "\u2581": 259, "h": 260, "e": 261, "l": 262, "o": 263,
        "w": 264, "r": 265, "d": 266, "he": 267, "ll": 268, "hell": 269,
        "\u2581hell": 270, "lo": 271, "\u2581w": 272, "or": 273)";
    vocab += extraVocab;
    return R"({"version": "1.0", "truncation": null, "padding": null,
        "added_tokens": )" +
           addedTokens + R"(, "normalizer": )" + normalizer +
           R"(, "pre_tokenizer": )" + preTokenizer + R"(, "post_processor": )" +
           postProcessor + R"(, "decoder": )" + decoder +
           R"(, "model": {"type": "BPE", )" + modelFlags +
           R"(, "continuing_subword_prefix": null, "end_of_word_suffix": null,
               "vocab": {)" +
           vocab + R"(}, "merges": )" + merges + "}}";
  }
};

Tokenizer parseOrDie(const Parts &parts) {
  StatusOr<Tokenizer> t = Tokenizer::parse(parts.json(), "tokenizer.json");
  EXPECT_TRUE(t.ok()) << t.status().message();
  if (!t.ok())
    std::abort();
  return std::move(*t);
}

std::vector<int64_t> encodeOrDie(const Tokenizer &t, const std::string &text,
                                 bool special = true) {
  StatusOr<std::vector<int64_t>> ids = t.encode(text, special);
  EXPECT_TRUE(ids.ok()) << ids.status().message();
  return ids.ok() ? *ids : std::vector<int64_t>{};
}

std::string decodeOrDie(const Tokenizer &t, const std::vector<int64_t> &ids,
                        bool skip = true) {
  StatusOr<std::string> text = t.decode(ids, skip);
  EXPECT_TRUE(text.ok()) << text.status().message();
  return text.ok() ? *text : std::string("<error>");
}

std::string parseError(const Parts &parts) {
  StatusOr<Tokenizer> t = Tokenizer::parse(parts.json(), "tokenizer.json");
  EXPECT_FALSE(t.ok());
  return t.ok() ? std::string() : t.status().message();
}

#define EXPECT_CONTAINS(haystack, needle)                                      \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos)             \
      << "in: " << (haystack)

TEST(TokenizerTest, MergesByRank) {
  // "hello world" -> "▁hello▁world" = ▁ h e l l o ▁ w o r l d. By rank:
  // l l -> ll (the "l o" pair it overlapped is gone), h e -> he,
  // he ll -> hell, ▁ hell -> ▁hell, ▁ w -> ▁w, o r -> or; "l o" never
  // applies (its l merged first), "or l" and "l d" have no merge.
  Tokenizer t = parseOrDie(Parts());
  EXPECT_EQ(encodeOrDie(t, "hello world", /*special=*/false),
            (std::vector<int64_t>{270, 263, 272, 273, 262, 266}));
  // The template puts <s> first.
  EXPECT_EQ(encodeOrDie(t, "hello world"),
            (std::vector<int64_t>{1, 270, 263, 272, 273, 262, 266}));
  // "lo" alone: l o -> lo (rank 4, nothing better).
  EXPECT_EQ(encodeOrDie(t, "lo", false), (std::vector<int64_t>{259, 271}));
  EXPECT_EQ(encodeOrDie(t, "", false), (std::vector<int64_t>{}));
  EXPECT_EQ(t.maxId(), 273);
  EXPECT_EQ(t.tokenId("\u2581hell"), 270);
  EXPECT_EQ(t.tokenId("</s>"), 2);
  EXPECT_EQ(t.tokenId("zz"), -1);
}

TEST(TokenizerTest, DecodeUndoesTheNormalizer) {
  Tokenizer t = parseOrDie(Parts());
  // ▁hell o ▁w or l d -> " hello world", the Strip drops one leading space.
  EXPECT_EQ(decodeOrDie(t, {1, 270, 263, 272, 273, 262, 266}), "hello world");
  // Special tokens are kept on request; the Strip then finds no space.
  EXPECT_EQ(decodeOrDie(t, {1, 270, 263, 2}, /*skip=*/false), "<s> hello</s>");
  EXPECT_EQ(decodeOrDie(t, {}), "");
  // An id past the tokenizer's (a padded model vocabulary) shows as U+FFFD
  // and is counted.
  size_t unknown = 0;
  StatusOr<std::string> padded = t.decode({270, 999, 263}, true, &unknown);
  ASSERT_TRUE(padded.ok());
  EXPECT_EQ(*padded, "hell\uFFFDo");
  EXPECT_EQ(unknown, 1u);
}

TEST(TokenizerTest, ByteFallback) {
  // é (C3 A9) is not in the vocabulary: its bytes are ids 3 + 0xC3 = 198
  // and 3 + 0xA9 = 172; nothing merges with them.
  Tokenizer t = parseOrDie(Parts());
  EXPECT_EQ(encodeOrDie(t, "h\u00e9", false),
            (std::vector<int64_t>{259, 260, 198, 172}));
  EXPECT_EQ(decodeOrDie(t, {259, 260, 198, 172}), "h\u00e9");
  // A lone continuation byte is not UTF-8: one U+FFFD per byte token.
  EXPECT_EQ(decodeOrDie(t, {260, 172, 172}), "h\uFFFD\uFFFD");
  // Invalid UTF-8 input is refused with its offset.
  StatusOr<std::vector<int64_t>> bad = t.encode("ab\xff");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "the text is not valid UTF-8 at byte 2");
}

TEST(TokenizerTest, UnknownCharacters) {
  // Without byte fallback é and € are <unk>, fused into one.
  Parts p;
  p.modelFlags = R"("byte_fallback": false, "fuse_unk": true,
      "unk_token": "<unk>")";
  Tokenizer fused = parseOrDie(p);
  EXPECT_EQ(encodeOrDie(fused, "h\u00e9\u20ac", false),
            (std::vector<int64_t>{259, 260, 0}));
  p.modelFlags = R"("byte_fallback": false, "fuse_unk": false,
      "unk_token": "<unk>")";
  EXPECT_EQ(encodeOrDie(parseOrDie(p), "h\u00e9\u20ac", false),
            (std::vector<int64_t>{259, 260, 0, 0}));
  // Nothing to fall back on: an error naming the character.
  p.modelFlags = R"("byte_fallback": false, "unk_token": null)";
  StatusOr<std::vector<int64_t>> bad = parseOrDie(p).encode("h\u00e9");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "character U+00E9 '\u00e9' is not in the vocabulary, and the "
            "tokenizer has neither byte fallback nor an unk_token");
}

TEST(TokenizerTest, AddedTokensSplitTheText) {
  // "hello</s>hello": each side is normalized on its own ("▁hello" twice,
  // ▁hell o), </s> is its id.
  Tokenizer t = parseOrDie(Parts());
  EXPECT_EQ(encodeOrDie(t, "hello</s>hello"),
            (std::vector<int64_t>{1, 270, 263, 2, 270, 263}));
  EXPECT_EQ(decodeOrDie(t, {1, 270, 263, 2, 270, 263}), "hello hello");
  // The longest added token at a position wins.
  Parts p;
  p.extraVocab = R"(, "</s>x": 274)";
  p.addedTokens = R"([
      {"id": 2, "content": "</s>", "special": true, "normalized": false},
      {"id": 274, "content": "</s>x", "special": false, "normalized": false}])";
  Tokenizer longest = parseOrDie(p);
  EXPECT_EQ(encodeOrDie(longest, "</s>x</s>", false),
            (std::vector<int64_t>{274, 2}));
  EXPECT_EQ(decodeOrDie(longest, {274, 2}), "</s>x");
}

TEST(TokenizerTest, NormalizedAddedTokens) {
  // An added token without "normalized": false is looked for in its
  // normalized form, "<x>" as "▁<x>" (Prepend "▁"), in the normalized text.
  Parts p;
  p.addedTokens = R"([{"id": 274, "content": "<x>", "special": false}])";
  Tokenizer t = parseOrDie(p);
  // "▁he<x>lo" holds no "▁<x>": no split. '<' 'x' '>' fall back to bytes
  // 3 + 0x3C = 63, 3 + 0x78 = 123, 3 + 0x3E = 65; h e -> he, l o -> lo.
  EXPECT_EQ(encodeOrDie(t, "he<x>lo", false),
            (std::vector<int64_t>{259, 267, 63, 123, 65, 271}));
  // At the start the normalized text is "▁<x>lo": the token, then "lo".
  EXPECT_EQ(encodeOrDie(t, "<x>lo", false), (std::vector<int64_t>{274, 271}));
}

TEST(TokenizerTest, RepeatedMergeTakesItsLastRank) {
  // "l o" is listed at ranks 0 and 2, "l l" at 1: the last rank counts (as
  // in the reference's map), so "▁llo" merges l l first: ▁ ll o.
  Parts p;
  p.merges = R"(["l o", "l l", "l o"])";
  EXPECT_EQ(encodeOrDie(parseOrDie(p), "llo", false),
            (std::vector<int64_t>{259, 268, 263}));
}

TEST(TokenizerTest, RandomCheckpointTokenizersLoad) {
  // jamba-make-checkpoint's tokenizer parses for every vocabulary size,
  // including those too small for <|unk|> (then unk_token is null), and
  // covers every id.
  for (int64_t vocab = 1; vocab <= 400; ++vocab) {
    JambaConfig config;
    config.vocabSize = vocab;
    std::string json = randomCheckpointTokenizerJson(config);
    StatusOr<Tokenizer> t = Tokenizer::parse(json, "random");
    ASSERT_TRUE(t.ok()) << "vocab " << vocab << ": " << t.status().message();
    EXPECT_EQ(t->maxId(), vocab - 1) << "vocab " << vocab;
  }
}

TEST(TokenizerTest, MetaspacePreTokenizer) {
  // The Jamba-1.5 form: no normalizer, a Metaspace that prepends "▁" to the
  // text's first piece only and splits before each "▁".
  Parts p;
  p.normalizer = "null";
  p.preTokenizer = R"({"type": "Metaspace", "replacement": "\u2581",
      "prepend_scheme": "first", "split": true})";
  p.postProcessor = "null";
  p.decoder = R"({"type": "Metaspace", "replacement": "\u2581",
      "prepend_scheme": "first", "split": true})";
  Tokenizer t = parseOrDie(p);
  // ["▁hello", "▁world"]: ▁hell o | ▁w or l d.
  EXPECT_EQ(encodeOrDie(t, "hello world"),
            (std::vector<int64_t>{270, 263, 272, 273, 262, 266}));
  // After an added token nothing is prepended: h e l l o -> hell o.
  EXPECT_EQ(encodeOrDie(t, "</s>hello"), (std::vector<int64_t>{2, 269, 263}));
  EXPECT_EQ(decodeOrDie(t, {270, 263, 272, 273, 262, 266}), "hello world");
  // The first token loses every "▁" (the reference library's rule), the
  // others turn theirs into spaces: ▁ | ▁w -> "" + " w".
  EXPECT_EQ(decodeOrDie(t, {259, 272}), " w");
  EXPECT_EQ(decodeOrDie(t, {272, 259, 272}), "w  w");
  // Splitting keeps "▁▁" apart: "  w" is ["▁", "▁w"].
  EXPECT_EQ(encodeOrDie(t, "  w"), (std::vector<int64_t>{259, 272}));
}

TEST(TokenizerTest, RefusesWhatItDoesNotImplement) {
  Parts p;
  p.normalizer = R"({"type": "Sequence", "normalizers": [{"type": "NFC"}]})";
  EXPECT_EQ(parseError(p),
            "tokenizer.json: normalizer.normalizers[0]: normalizer 'NFC' is "
            "not supported (this reader knows Sequence, Prepend, Replace)");

  p = Parts();
  p.normalizer = R"({"type": "Replace", "pattern": {"Regex": " +"},
      "content": "\u2581"})";
  EXPECT_EQ(parseError(p), "tokenizer.json: normalizer.pattern: a Regex "
                           "pattern is not supported (only String)");

  p = Parts();
  p.preTokenizer = R"({"type": "ByteLevel", "add_prefix_space": false})";
  EXPECT_CONTAINS(parseError(p), "pre_tokenizer: pre-tokenizer 'ByteLevel' is "
                                 "not supported");

  p = Parts();
  p.decoder = R"({"type": "WordPiece"})";
  EXPECT_CONTAINS(parseError(p), "decoder: decoder 'WordPiece' is not "
                                 "supported");

  p = Parts();
  p.postProcessor = R"({"type": "BertProcessing"})";
  EXPECT_CONTAINS(parseError(p), "post_processor: post-processor "
                                 "'BertProcessing' is not supported");

  p = Parts();
  p.modelFlags = R"("byte_fallback": true, "dropout": 0.1)";
  EXPECT_CONTAINS(parseError(p), "model: dropout: BPE dropout is not "
                                 "supported");
  p.modelFlags = R"("byte_fallback": true, "dropout": 0.0)";
  EXPECT_TRUE(Tokenizer::parse(p.json(), "tokenizer.json").ok());

  p = Parts();
  p.addedTokens = R"([{"id": 2, "content": "</s>", "lstrip": true}])";
  EXPECT_EQ(parseError(p), "tokenizer.json: added_tokens[0] ('</s>'): "
                           "lstrip: true is not supported");
}

TEST(TokenizerTest, RefusesInconsistentFiles) {
  Parts p;
  p.merges = R"(["l x"])";
  EXPECT_EQ(parseError(p), "tokenizer.json: model.merges[0]: 'x' is not in "
                           "the vocabulary");
  p.merges = R"(["h d"])"; // "hd" itself is missing.
  EXPECT_EQ(parseError(p), "tokenizer.json: model.merges[0]: 'hd' is not in "
                           "the vocabulary");
  p.merges = R"(["hel"])";
  EXPECT_EQ(parseError(p), "tokenizer.json: model.merges[0]: 'hel' is not two "
                           "tokens separated by one space");

  p = Parts();
  p.extraVocab = R"(, "dup": 5)";
  EXPECT_EQ(parseError(p), "tokenizer.json: model.vocab['dup']: id 5 is also "
                           "the id of '<0x02>'");
  p.extraVocab = R"(, "neg": -1)";
  EXPECT_CONTAINS(parseError(p), "model.vocab['neg']: expected an id in [0, ");

  p = Parts();
  p.addedTokens = R"([{"id": 260, "content": "<x>"}])";
  EXPECT_EQ(parseError(p), "tokenizer.json: added_tokens[0] ('<x>'): id 260 "
                           "is the vocabulary's 'h'");
  p.addedTokens = R"([{"id": 300, "content": ""}])";
  EXPECT_EQ(parseError(p), "tokenizer.json: added_tokens[0] (''): the "
                           "content is empty");

  p = Parts();
  p.postProcessor = R"({"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<bos>", "type_id": 0}},
                 {"Sequence": {"id": "A", "type_id": 0}}],
      "special_tokens": {}})";
  EXPECT_EQ(parseError(p), "tokenizer.json: post_processor.single[0]."
                           "SpecialToken: '<bos>' is not in special_tokens");

  p = Parts();
  p.modelFlags = R"("unk_token": "<nope>")";
  EXPECT_EQ(parseError(p), "tokenizer.json: model.unk_token: '<nope>' is not "
                           "in the vocabulary");

  StatusOr<Tokenizer> syntax = Tokenizer::parse("{\"model\": ", "t.json");
  ASSERT_FALSE(syntax.ok());
  EXPECT_CONTAINS(syntax.status().message(), "t.json:1:");
  StatusOr<Tokenizer> noModel = Tokenizer::parse("{}", "t.json");
  ASSERT_FALSE(noModel.ok());
  EXPECT_EQ(noModel.status().message(), "t.json: model: missing");
  StatusOr<Tokenizer> missing = Tokenizer::load("/nonexistent/tokenizer.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_CONTAINS(missing.status().message(), "/nonexistent/tokenizer.json");
}

/// Pushes `ids` through a TextStream; checks after each push that what it
/// returned so far starts decode() of the ids so far, and is all of it
/// after an id that is not a byte token or a special token (with
/// `streams`); returns the pieces, finish()'s last.
std::vector<std::string> streamAll(const Tokenizer &t,
                                   const std::vector<int64_t> &ids,
                                   bool streams = true) {
  TextStream stream(t);
  std::vector<std::string> pieces;
  std::string returned;
  for (size_t i = 0; i < ids.size(); ++i) {
    StatusOr<std::string> piece = stream.push(ids[i]);
    EXPECT_TRUE(piece.ok()) << piece.status().message();
    if (!piece.ok())
      return pieces;
    pieces.push_back(*piece);
    returned += *piece;
    std::string sofar =
        decodeOrDie(t, std::vector<int64_t>(ids.begin(), ids.begin() + i + 1));
    EXPECT_EQ(sofar.compare(0, returned.size(), returned), 0)
        << "after id " << i << ": returned '" << returned << "', decoded '"
        << sofar << "'";
    // Byte tokens (3..258) and the specials (0..2) left out are held.
    const bool held = ids[i] >= 0 && ids[i] < 259;
    if (streams && !held)
      EXPECT_EQ(returned, sofar) << "after id " << i;
    if (!streams)
      EXPECT_EQ(returned, "");
  }
  StatusOr<std::string> rest = stream.finish();
  EXPECT_TRUE(rest.ok()) << rest.status().message();
  pieces.push_back(rest.ok() ? *rest : std::string("<error>"));
  EXPECT_EQ(returned + pieces.back(), decodeOrDie(t, ids));
  return pieces;
}

TEST(TokenizerTest, TextStreamHandWorked) {
  // <s> ▁hell o ▁w <0xC3> <0xA9> or: the BOS is skipped, the first space
  // stripped (the decoder's Strip), é's bytes held until "or" follows.
  Tokenizer t = parseOrDie(Parts());
  EXPECT_EQ(streamAll(t, {1, 270, 263, 272, 198, 172, 273}),
            (std::vector<std::string>{"", "hell", "o", " w", "", "", "\u00e9or",
                                      ""}));
  // A run of bytes that ends the ids comes with finish(): a lone C3 is
  // U+FFFD, as decode() gives it.
  EXPECT_EQ(streamAll(t, {270, 198}),
            (std::vector<std::string>{"hell", "", "\uFFFD"}));
  // "▁" alone decodes to nothing (the Strip takes its space); "▁ ▁w" to
  // " w", one of its two spaces stripped.
  EXPECT_EQ(streamAll(t, {259, 272}), (std::vector<std::string>{"", " w", ""}));
  // A special token left out between two bytes does not end their run.
  EXPECT_EQ(streamAll(t, {270, 198, 2, 172, 263}),
            (std::vector<std::string>{"hell", "", "", "", "\u00e9o", ""}));
}

// Random ids (bytes, specials, ids past the tokenizer's) through several
// decoders: after every push what was returned starts the decoded text
// (and is all of it after a token that is not a byte), and at the end it
// is all of it.
TEST(TokenizerTest, TextStreamIsTheDecodedText) {
  std::vector<std::pair<std::string, std::string>> decoders = {
      {"llama", Parts().decoder},
      {"metaspace", R"({"type": "Metaspace", "replacement": "\u2581",
          "prepend_scheme": "first", "split": true})"},
      {"metaspace never", R"({"type": "Metaspace", "replacement": "\u2581",
          "prepend_scheme": "never", "split": true})"},
      {"strip both", R"({"type": "Sequence", "decoders": [
          {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
          {"type": "ByteFallback"}, {"type": "Fuse"},
          {"type": "Strip", "content": " ", "start": 2, "stop": 1}]})"},
      {"strip before fuse", R"({"type": "Sequence", "decoders": [
          {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
          {"type": "Strip", "content": " ", "start": 1, "stop": 1},
          {"type": "ByteFallback"}, {"type": "Fuse"}]})"},
      {"one-character replace after fuse", R"({"type": "Sequence",
          "decoders": [{"type": "ByteFallback"}, {"type": "Fuse"},
          {"type": "Replace", "pattern": {"String": "\u2581"},
           "content": " "}]})"},
      {"none", "null"}};
  for (const auto &[name, decoder] : decoders) {
    Parts p;
    p.decoder = decoder;
    Tokenizer t = parseOrDie(p);
    std::mt19937 rng(7);
    // Mostly word pieces and "▁", some bytes (valid and not), specials and
    // an id no token has.
    const std::vector<int64_t> pool = {
        259, 259, 259, 260, 263, 266, 270,     271,      272,      273,     198,
        172, 172, 0,   1,   2,   999, 3 + ' ', 3 + 0xE2, 3 + 0x82, 3 + 0xAC};
    for (int round = 0; round < 200; ++round) {
      std::vector<int64_t> ids(1 + rng() % 24);
      for (int64_t &id : ids)
        id = pool[rng() % pool.size()];
      SCOPED_TRACE(name + ", round " + std::to_string(round));
      streamAll(t, ids);
    }
  }
}

// A Replace of more than one character after the Fuse could match across
// two pushes ("▁▁" split over them): such a decoder's text all comes with
// finish().
TEST(TokenizerTest, TextStreamHoldsWhatItCannotStream) {
  Parts p;
  p.decoder = R"({"type": "Sequence", "decoders": [{"type": "Fuse"},
      {"type": "Replace", "pattern": {"String": "\u2581\u2581"},
       "content": "="}]})";
  Tokenizer t = parseOrDie(p);
  EXPECT_EQ(streamAll(t, {259, 259, 263}, /*streams=*/false),
            (std::vector<std::string>{"", "", "", "=o"}));
}

} // namespace

//===- Tokenizer.h - Hugging Face tokenizer.json (BPE) ----------*- C++ -*-===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// Text to token ids and back, as a checkpoint's `tokenizer.json` (the
// Hugging Face `tokenizers` format) says. The Jamba models ship a
// SentencePiece-style BPE: no byte-level pre-tokenizer, spaces written as
// U+2581 "▁" by the normalizer or a Metaspace pre-tokenizer, byte fallback
// for characters outside the vocabulary (`<0x41>`), and a decoder that
// undoes both. This reader implements exactly the components such files use
// and refuses any other with a message naming it, so a file it loads is
// never tokenized differently from the reference library without notice:
//
//   normalizer      null | Sequence | Prepend | Replace (a String pattern)
//   pre_tokenizer   null | Sequence | Metaspace
//   model           BPE (vocab, merges as "a b" or ["a", "b"], unk_token,
//                   fuse_unk, byte_fallback, ignore_merges; no dropout, no
//                   subword prefix or suffix)
//   post_processor  null | TemplateProcessing (its `single` template)
//   decoder         null | Sequence | Replace | ByteFallback | Fuse | Strip |
//                   Metaspace
//   added_tokens    split out leftmost then longest: `normalized: false`
//                   ones in the input, the others (the default) in their
//                   normalized form in each normalized piece
//                   (lstrip/rstrip/single_word must be false)
//
// Standard library only: the MLIR-free runtime links it (jamba-run).
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_CHECKPOINT_TOKENIZER_H
#define JAMBA_CHECKPOINT_TOKENIZER_H

#include "jamba/Checkpoint/Status.h"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace jamba {
namespace ckpt {

/// The file name of a tokenizer in a checkpoint directory or an artifact.
inline constexpr const char *kTokenizerFileName = "tokenizer.json";

class Tokenizer {
public:
  /// Parses the text of a tokenizer.json; `source` names it in messages
  /// (`source: model.merges[3]: ...`).
  static StatusOr<Tokenizer> parse(std::string_view json,
                                   const std::string &source);
  /// Reads and parses `path` (at most 256 MiB).
  static StatusOr<Tokenizer> load(const std::string &path);
  /// load(path), refusing a tokenizer with an id outside a model's
  /// vocabulary of `vocabSize` ids (it could feed the model an id it has no
  /// embedding for).
  static StatusOr<Tokenizer> loadForVocabulary(const std::string &path,
                                               int64_t vocabSize);

  Tokenizer(Tokenizer &&) noexcept;
  Tokenizer &operator=(Tokenizer &&) noexcept;
  ~Tokenizer();

  /// `text` (UTF-8) to ids: added tokens split it; each piece between them
  /// is normalized, pre-tokenized and merged; with `addSpecialTokens` the
  /// post-processor's template adds its tokens (Jamba: the BOS token).
  /// Invalid UTF-8 (the message names the byte offset), or a character the
  /// vocabulary cannot express (no byte fallback, no unk token; the message
  /// names it), is an error.
  StatusOr<std::vector<int64_t>> encode(std::string_view text,
                                        bool addSpecialTokens = true) const;

  /// Ids to text through the decoder; special added tokens are left out
  /// with `skipSpecialTokens`. An id that names no token (a model's
  /// vocabulary may be padded past its tokenizer's) becomes U+FFFD, counted
  /// in `*unknownIds` when given.
  StatusOr<std::string> decode(const std::vector<int64_t> &ids,
                               bool skipSpecialTokens = true,
                               size_t *unknownIds = nullptr) const;

  /// The largest id any token has (a model's vocabulary must be larger).
  int64_t maxId() const;
  /// The id of the token `content` (vocabulary or added), or -1.
  int64_t tokenId(std::string_view content) const;

private:
  friend class TextStream;
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl;
};

/// Generated ids as text while they come (jamba-run --stream). push() adds
/// an id and returns the text that decode() of the ids so far, and of any
/// ids that follow, certainly begins with, less what it returned before;
/// finish() returns the rest. What they return, in order, is decode() of
/// all the ids pushed, with the same `skipSpecialTokens`:
///
/// - A run of byte-fallback tokens (`<0xC3>`) is held until a token that is
///   not one follows: a later byte can still make the run invalid UTF-8,
///   which decodes as one U+FFFD per byte.
/// - Each push decodes only the ids since a recent point from which the
///   decoder's output no longer depends on what came before (its first
///   token's rules, Metaspace and a leading Strip, apply within text
///   already returned), so a long generation costs the same per id.
/// - A decoder with a step after its Fuse other than Strip or a Replace of
///   one character (a pattern that could span two pushes) holds everything
///   until finish().
/// - finish() checks that what was returned is the start of decode() of
///   all ids, and fails if not (it would be a fault of this class).
///
/// `tokenizer` must outlive the stream.
class TextStream {
public:
  explicit TextStream(const Tokenizer &tokenizer,
                      bool skipSpecialTokens = true);

  StatusOr<std::string> push(int64_t id);
  StatusOr<std::string> finish();

private:
  StatusOr<std::string> decodeRange(size_t begin, size_t end) const;
  /// Whether the text of a window's first ids may start one: some text,
  /// not only copies of what a Strip step strips.
  bool startsWindow(const std::string &text) const;

  const Tokenizer &tokenizer;
  bool skipSpecialTokens;
  bool streams = true;
  std::vector<int64_t> ids;
  /// The window: ids[windowBegin, returnedEnd) decode to windowText, and
  /// the text of ids[0, returnedEnd) has been returned.
  size_t windowBegin = 0, returnedEnd = 0;
  std::string windowText;
  /// Everything returned, for finish()'s check.
  std::string returned;
};

} // namespace ckpt
} // namespace jamba

#endif // JAMBA_CHECKPOINT_TOKENIZER_H

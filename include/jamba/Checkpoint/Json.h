//===- Json.h - A small strict JSON reader and writer ----------*- C++ -*-===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// A JSON (RFC 8259) value type with a strict parser and a serializer, used
// for config.json, safetensors headers, sharded-checkpoint indexes and the
// artifact manifest.
//
// Properties that the rest of the project relies on:
//  - objects keep their keys in document (or insertion) order;
//  - numbers remember whether they were written as integers (no fraction, no
//    exponent, and in int64 range), so `4096` and `4096.0` are told apart;
//  - duplicate keys in one object are an error;
//  - nesting deeper than a limit (64 by default) is an error, so untrusted
//    input cannot exhaust the stack;
//  - strings must be valid UTF-8, escapes are decoded (including surrogate
//    pairs), and errors are reported as `source:line:column: message`.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_CHECKPOINT_JSON_H
#define JAMBA_CHECKPOINT_JSON_H

#include "jamba/Checkpoint/Status.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace jamba {
namespace ckpt {

/// One JSON value. Cheap to move; copying copies the whole tree.
class JsonValue {
public:
  enum class Kind { Null, Bool, Number, String, Array, Object };
  using Member = std::pair<std::string, JsonValue>;

  /// A null value.
  JsonValue() = default;

  static JsonValue makeNull() { return JsonValue(); }
  static JsonValue makeBool(bool b);
  static JsonValue makeInt(int64_t i);
  /// A non-integer number. Non-finite values serialize as `null` because JSON
  /// cannot represent them.
  static JsonValue makeDouble(double d);
  static JsonValue makeString(std::string s);
  static JsonValue makeArray(std::vector<JsonValue> elements = {});
  static JsonValue makeObject();

  Kind kind() const { return k; }
  bool isNull() const { return k == Kind::Null; }
  bool isBool() const { return k == Kind::Bool; }
  bool isNumber() const { return k == Kind::Number; }
  /// True for a number written without fraction or exponent that fits int64.
  bool isInteger() const { return k == Kind::Number && isInt; }
  bool isString() const { return k == Kind::String; }
  bool isArray() const { return k == Kind::Array; }
  bool isObject() const { return k == Kind::Object; }

  /// Accessors; each has the matching `is*()` as precondition (asserted).
  bool getBool() const;
  int64_t getInt() const;
  /// The numeric value as a double (also valid for integers).
  double getDouble() const;
  const std::string &getString() const;
  const std::vector<JsonValue> &getArray() const;
  std::vector<JsonValue> &getArray();
  const std::vector<Member> &getObject() const;
  std::vector<Member> &getObject();

  /// Object lookup (linear); returns null if absent or not an object.
  const JsonValue *get(std::string_view key) const;
  /// Sets `key` to `value` in an object, replacing an existing member in place
  /// or appending a new one. Precondition: isObject().
  void set(std::string_view key, JsonValue value);
  /// Appends to an array. Precondition: isArray().
  void push(JsonValue value);

  /// A short name of the kind for messages: "null", "boolean", "number",
  /// "string", "array", "object".
  static const char *kindName(Kind k);
  const char *kindName() const { return kindName(k); }

  /// Structural equality; integer 1 and double 1.0 compare unequal, object
  /// member order matters.
  friend bool operator==(const JsonValue &a, const JsonValue &b);
  friend bool operator!=(const JsonValue &a, const JsonValue &b) {
    return !(a == b);
  }

private:
  Kind k = Kind::Null;
  bool isInt = false;
  bool boolVal = false;
  int64_t intVal = 0;
  double doubleVal = 0.0;
  std::string stringVal;
  std::vector<JsonValue> arrayVal;
  std::vector<Member> objectVal;
};

/// Options for parseJson.
struct JsonParseOptions {
  /// Maximum nesting depth of arrays and objects (the top-level value is at
  /// depth 1).
  unsigned maxDepth = 64;
};

/// Parses `text` as exactly one JSON value (surrounding whitespace allowed).
/// On failure the message is `sourceName:line:column: what went wrong`, with
/// 1-based line and column (column counted in bytes).
StatusOr<JsonValue> parseJson(std::string_view text,
                              std::string_view sourceName,
                              const JsonParseOptions &options = {});

/// Serializes `value`. With `indent` < 0 the output is compact; otherwise it
/// is pretty-printed with `indent` spaces per level. Doubles are written in
/// the shortest form that reads back to the same value and always contain a
/// '.', 'e' or are `null`, so the integer/non-integer distinction survives a
/// round trip. Strings are written as UTF-8 with only the required escapes.
std::string writeJson(const JsonValue &value, int indent = -1);

/// Appends the JSON string literal for `s` (with quotes) to `out`.
void writeJsonString(std::string_view s, std::string &out);

} // namespace ckpt
} // namespace jamba

#endif // JAMBA_CHECKPOINT_JSON_H

//===- Json.cpp - A small strict JSON reader and writer -------------------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// A recursive-descent parser over a string_view. Recursion depth is bounded by
// JsonParseOptions::maxDepth, so hostile input cannot overflow the stack. The
// parser never reads past the end of the view: every access goes through
// peek(), which returns -1 at the end.
//
//===----------------------------------------------------------------------===//

#include "jamba/Checkpoint/Json.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>

using namespace jamba;
using namespace jamba::ckpt;

//===----------------------------------------------------------------------===//
// JsonValue
//===----------------------------------------------------------------------===//

JsonValue JsonValue::makeBool(bool b) {
  JsonValue v;
  v.k = Kind::Bool;
  v.boolVal = b;
  return v;
}

JsonValue JsonValue::makeInt(int64_t i) {
  JsonValue v;
  v.k = Kind::Number;
  v.isInt = true;
  v.intVal = i;
  v.doubleVal = static_cast<double>(i);
  return v;
}

JsonValue JsonValue::makeDouble(double d) {
  JsonValue v;
  v.k = Kind::Number;
  v.isInt = false;
  v.doubleVal = d;
  return v;
}

JsonValue JsonValue::makeString(std::string s) {
  JsonValue v;
  v.k = Kind::String;
  v.stringVal = std::move(s);
  return v;
}

JsonValue JsonValue::makeArray(std::vector<JsonValue> elements) {
  JsonValue v;
  v.k = Kind::Array;
  v.arrayVal = std::move(elements);
  return v;
}

JsonValue JsonValue::makeObject() {
  JsonValue v;
  v.k = Kind::Object;
  return v;
}

bool JsonValue::getBool() const {
  assert(isBool());
  return boolVal;
}

int64_t JsonValue::getInt() const {
  assert(isInteger());
  return intVal;
}

double JsonValue::getDouble() const {
  assert(isNumber());
  return doubleVal;
}

const std::string &JsonValue::getString() const {
  assert(isString());
  return stringVal;
}

const std::vector<JsonValue> &JsonValue::getArray() const {
  assert(isArray());
  return arrayVal;
}

std::vector<JsonValue> &JsonValue::getArray() {
  assert(isArray());
  return arrayVal;
}

const std::vector<JsonValue::Member> &JsonValue::getObject() const {
  assert(isObject());
  return objectVal;
}

std::vector<JsonValue::Member> &JsonValue::getObject() {
  assert(isObject());
  return objectVal;
}

const JsonValue *JsonValue::get(std::string_view key) const {
  if (k != Kind::Object)
    return nullptr;
  for (const Member &m : objectVal)
    if (m.first == key)
      return &m.second;
  return nullptr;
}

void JsonValue::set(std::string_view key, JsonValue value) {
  assert(isObject());
  for (Member &m : objectVal) {
    if (m.first == key) {
      m.second = std::move(value);
      return;
    }
  }
  objectVal.emplace_back(std::string(key), std::move(value));
}

void JsonValue::push(JsonValue value) {
  assert(isArray());
  arrayVal.push_back(std::move(value));
}

const char *JsonValue::kindName(Kind k) {
  switch (k) {
  case Kind::Null:
    return "null";
  case Kind::Bool:
    return "boolean";
  case Kind::Number:
    return "number";
  case Kind::String:
    return "string";
  case Kind::Array:
    return "array";
  case Kind::Object:
    return "object";
  }
  return "unknown";
}

bool jamba::ckpt::operator==(const JsonValue &a, const JsonValue &b) {
  if (a.k != b.k)
    return false;
  switch (a.k) {
  case JsonValue::Kind::Null:
    return true;
  case JsonValue::Kind::Bool:
    return a.boolVal == b.boolVal;
  case JsonValue::Kind::Number:
    if (a.isInt != b.isInt)
      return false;
    return a.isInt ? a.intVal == b.intVal : a.doubleVal == b.doubleVal;
  case JsonValue::Kind::String:
    return a.stringVal == b.stringVal;
  case JsonValue::Kind::Array:
    return a.arrayVal == b.arrayVal;
  case JsonValue::Kind::Object:
    return a.objectVal == b.objectVal;
  }
  return false;
}

//===----------------------------------------------------------------------===//
// Parser
//===----------------------------------------------------------------------===//

namespace {

/// Strict recursive-descent JSON parser. On the first error it records the
/// offset and message and unwinds by returning false.
class Parser {
public:
  Parser(std::string_view text, std::string_view sourceName,
         const JsonParseOptions &options)
      : text(text), sourceName(sourceName), options(options) {}

  StatusOr<JsonValue> parseDocument() {
    if (text.size() >= 3 && std::memcmp(text.data(), "\xEF\xBB\xBF", 3) == 0)
      return errorAt(0, "a UTF-8 byte order mark is not allowed");
    skipWhitespace();
    JsonValue value;
    if (!parseValue(value, 1))
      return errorStatus();
    skipWhitespace();
    if (pos != text.size())
      return errorAt(pos, "unexpected content after the JSON value");
    return value;
  }

private:
  int peek() const {
    return pos < text.size() ? static_cast<unsigned char>(text[pos]) : -1;
  }

  void skipWhitespace() {
    while (pos < text.size()) {
      char c = text[pos];
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
        break;
      ++pos;
    }
  }

  /// Records an error at `offset` and returns false.
  bool fail(size_t offset, std::string message) {
    if (!failed) {
      failed = true;
      errOffset = offset;
      errMessage = std::move(message);
    }
    return false;
  }

  Status errorAt(size_t offset, std::string message) {
    fail(offset, std::move(message));
    return errorStatus();
  }

  /// Formats the recorded error as `source:line:column: message`.
  Status errorStatus() const {
    size_t line = 1, column = 1;
    size_t end = std::min(errOffset, text.size());
    for (size_t i = 0; i < end; ++i) {
      if (text[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    return makeError(sourceName, ":", line, ":", column, ": ", errMessage);
  }

  /// Describes the character at the current position for messages.
  std::string describeCurrent() const {
    int c = peek();
    if (c < 0)
      return "end of input";
    if (c >= 0x20 && c < 0x7f)
      return concat("'", static_cast<char>(c), "'");
    char buf[8];
    std::snprintf(buf, sizeof(buf), "0x%02X", c);
    return concat("byte ", buf);
  }

  bool expectLiteral(const char *literal, JsonValue result, JsonValue &out) {
    size_t len = std::strlen(literal);
    if (text.substr(pos, len) != literal)
      return fail(pos, concat("invalid literal, expected '", literal, "'"));
    pos += len;
    out = std::move(result);
    return true;
  }

  bool parseValue(JsonValue &out, unsigned depth) {
    switch (peek()) {
    case '{':
      return parseObject(out, depth);
    case '[':
      return parseArray(out, depth);
    case '"': {
      std::string s;
      if (!parseString(s))
        return false;
      out = JsonValue::makeString(std::move(s));
      return true;
    }
    case 't':
      return expectLiteral("true", JsonValue::makeBool(true), out);
    case 'f':
      return expectLiteral("false", JsonValue::makeBool(false), out);
    case 'n':
      return expectLiteral("null", JsonValue::makeNull(), out);
    default:
      if (peek() == '-' || (peek() >= '0' && peek() <= '9'))
        return parseNumber(out);
      return fail(pos,
                  concat("expected a JSON value, got ", describeCurrent()));
    }
  }

  bool checkDepth(unsigned depth) {
    if (depth > options.maxDepth)
      return fail(
          pos, concat("nesting deeper than the limit of ", options.maxDepth));
    return true;
  }

  bool parseArray(JsonValue &out, unsigned depth) {
    if (!checkDepth(depth))
      return false;
    ++pos; // '['
    out = JsonValue::makeArray();
    skipWhitespace();
    if (peek() == ']') {
      ++pos;
      return true;
    }
    while (true) {
      JsonValue element;
      skipWhitespace();
      if (!parseValue(element, depth + 1))
        return false;
      out.push(std::move(element));
      skipWhitespace();
      if (peek() == ',') {
        ++pos;
        continue;
      }
      if (peek() == ']') {
        ++pos;
        return true;
      }
      return fail(
          pos, concat("expected ',' or ']' in array, got ", describeCurrent()));
    }
  }

  bool parseObject(JsonValue &out, unsigned depth) {
    if (!checkDepth(depth))
      return false;
    ++pos; // '{'
    out = JsonValue::makeObject();
    std::vector<JsonValue::Member> &members = out.getObject();
    // Offsets of the keys, for duplicate-key messages.
    std::vector<size_t> keyOffsets;
    skipWhitespace();
    if (peek() == '}') {
      ++pos;
      return true;
    }
    while (true) {
      skipWhitespace();
      if (peek() != '"')
        return fail(pos, concat("expected a string key in object, got ",
                                describeCurrent()));
      size_t keyOffset = pos;
      std::string key;
      if (!parseString(key))
        return false;
      skipWhitespace();
      if (peek() != ':')
        return fail(pos, concat("expected ':' after object key, got ",
                                describeCurrent()));
      ++pos;
      skipWhitespace();
      JsonValue value;
      if (!parseValue(value, depth + 1))
        return false;
      members.emplace_back(std::move(key), std::move(value));
      keyOffsets.push_back(keyOffset);
      skipWhitespace();
      if (peek() == ',') {
        ++pos;
        continue;
      }
      if (peek() == '}') {
        ++pos;
        break;
      }
      return fail(pos, concat("expected ',' or '}' in object, got ",
                              describeCurrent()));
    }
    return checkDuplicateKeys(members, keyOffsets);
  }

  /// Sorts member indices by key and reports the second occurrence of the
  /// first duplicated key (in document order).
  bool checkDuplicateKeys(const std::vector<JsonValue::Member> &members,
                          const std::vector<size_t> &keyOffsets) {
    if (members.size() < 2)
      return true;
    std::vector<size_t> order(members.size());
    for (size_t i = 0; i < order.size(); ++i)
      order[i] = i;
    // (std::sort with an index tie-break rather than std::stable_sort: the
    // latter trips a deprecation warning in libstdc++ 12 under clang.)
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      int c = members[a].first.compare(members[b].first);
      return c != 0 ? c < 0 : a < b;
    });
    size_t worst = members.size();
    for (size_t i = 1; i < order.size(); ++i)
      if (members[order[i]].first == members[order[i - 1]].first)
        worst = std::min(worst, order[i]);
    if (worst == members.size())
      return true;
    return fail(keyOffsets[worst],
                concat("duplicate key '", members[worst].first, "'"));
  }

  static bool isDigit(int c) { return c >= '0' && c <= '9'; }

  bool parseNumber(JsonValue &out) {
    size_t start = pos;
    bool integral = true;
    if (peek() == '-')
      ++pos;
    if (peek() == '0') {
      ++pos;
      if (isDigit(peek()))
        return fail(pos, "leading zeros are not allowed in numbers");
    } else if (isDigit(peek())) {
      while (isDigit(peek()))
        ++pos;
    } else {
      return fail(pos, "expected a digit in number");
    }
    if (peek() == '.') {
      integral = false;
      ++pos;
      if (!isDigit(peek()))
        return fail(pos, "expected a digit after the decimal point");
      while (isDigit(peek()))
        ++pos;
    }
    if (peek() == 'e' || peek() == 'E') {
      integral = false;
      ++pos;
      if (peek() == '+' || peek() == '-')
        ++pos;
      if (!isDigit(peek()))
        return fail(pos, "expected a digit in the exponent");
      while (isDigit(peek()))
        ++pos;
    }
    const char *first = text.data() + start;
    const char *last = text.data() + pos;
    if (integral) {
      int64_t i = 0;
      auto res = std::from_chars(first, last, i);
      if (res.ec == std::errc() && res.ptr == last) {
        out = JsonValue::makeInt(i);
        return true;
      }
      // Out of int64 range: fall through and keep it as a double.
    }
    double d = 0.0;
    auto res = std::from_chars(first, last, d);
    if (res.ptr != last ||
        (res.ec != std::errc() && res.ec != std::errc::result_out_of_range))
      return fail(start, "invalid number");
    if (res.ec == std::errc::result_out_of_range || !std::isfinite(d))
      return fail(start, "number is out of the range of a double");
    out = JsonValue::makeDouble(d);
    return true;
  }

  bool parseHex4(unsigned &value) {
    value = 0;
    for (int i = 0; i < 4; ++i) {
      int c = peek();
      unsigned digit;
      if (c >= '0' && c <= '9')
        digit = c - '0';
      else if (c >= 'a' && c <= 'f')
        digit = c - 'a' + 10;
      else if (c >= 'A' && c <= 'F')
        digit = c - 'A' + 10;
      else
        return fail(pos, "expected 4 hex digits after '\\u'");
      value = value * 16 + digit;
      ++pos;
    }
    return true;
  }

  static void appendUtf8(unsigned cp, std::string &out) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  /// Validates one raw (unescaped) UTF-8 sequence starting at `pos` and
  /// copies it to `out`. Rejects overlong forms, surrogates and code points
  /// above U+10FFFF.
  bool copyUtf8Sequence(std::string &out) {
    size_t start = pos;
    unsigned lead = static_cast<unsigned char>(text[pos]);
    unsigned len, cp;
    if (lead >= 0xC2 && lead <= 0xDF) {
      len = 2;
      cp = lead & 0x1F;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      len = 3;
      cp = lead & 0x0F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      len = 4;
      cp = lead & 0x07;
    } else {
      return fail(start, "invalid UTF-8 in string");
    }
    if (text.size() - pos < len)
      return fail(start, "truncated UTF-8 sequence in string");
    for (unsigned i = 1; i < len; ++i) {
      unsigned c = static_cast<unsigned char>(text[pos + i]);
      if ((c & 0xC0) != 0x80)
        return fail(start, "invalid UTF-8 in string");
      cp = (cp << 6) | (c & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return fail(start, "invalid UTF-8 in string");
    out.append(text.data() + pos, len);
    pos += len;
    return true;
  }

  bool parseString(std::string &out) {
    size_t start = pos;
    ++pos; // opening quote
    while (true) {
      int c = peek();
      if (c < 0)
        return fail(start, "unterminated string");
      if (c == '"') {
        ++pos;
        return true;
      }
      if (c < 0x20)
        return fail(pos, "control character in string must be escaped");
      if (c >= 0x80) {
        if (!copyUtf8Sequence(out))
          return false;
        continue;
      }
      if (c != '\\') {
        out += static_cast<char>(c);
        ++pos;
        continue;
      }
      size_t escapeStart = pos;
      ++pos;
      int e = peek();
      ++pos;
      switch (e) {
      case '"':
        out += '"';
        break;
      case '\\':
        out += '\\';
        break;
      case '/':
        out += '/';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'u': {
        unsigned cp;
        if (!parseHex4(cp))
          return false;
        if (cp >= 0xDC00 && cp <= 0xDFFF)
          return fail(escapeStart, "unpaired low surrogate in string escape");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (peek() != '\\' || pos + 1 >= text.size() || text[pos + 1] != 'u')
            return fail(escapeStart,
                        "high surrogate not followed by a low surrogate");
          pos += 2;
          unsigned low;
          if (!parseHex4(low))
            return false;
          if (low < 0xDC00 || low > 0xDFFF)
            return fail(escapeStart,
                        "high surrogate not followed by a low surrogate");
          cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        }
        appendUtf8(cp, out);
        break;
      }
      default:
        return fail(escapeStart, "invalid escape sequence in string");
      }
    }
  }

  std::string_view text;
  std::string_view sourceName;
  const JsonParseOptions &options;
  size_t pos = 0;
  bool failed = false;
  size_t errOffset = 0;
  std::string errMessage;
};

} // namespace

StatusOr<JsonValue> jamba::ckpt::parseJson(std::string_view text,
                                           std::string_view sourceName,
                                           const JsonParseOptions &options) {
  Parser parser(text, sourceName, options);
  return parser.parseDocument();
}

//===----------------------------------------------------------------------===//
// Writer
//===----------------------------------------------------------------------===//

void jamba::ckpt::writeJsonString(std::string_view s, std::string &out) {
  static const char hex[] = "0123456789abcdef";
  out += '"';
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
    case '"':
      out += "\\\"";
      break;
    case '\\':
      out += "\\\\";
      break;
    case '\b':
      out += "\\b";
      break;
    case '\f':
      out += "\\f";
      break;
    case '\n':
      out += "\\n";
      break;
    case '\r':
      out += "\\r";
      break;
    case '\t':
      out += "\\t";
      break;
    default:
      if (c < 0x20) {
        out += "\\u00";
        out += hex[c >> 4];
        out += hex[c & 0xF];
      } else {
        out += ch;
      }
    }
  }
  out += '"';
}

static void writeNumber(const JsonValue &v, std::string &out) {
  char buf[64];
  if (v.isInteger()) {
    auto res = std::to_chars(buf, buf + sizeof(buf), v.getInt());
    out.append(buf, res.ptr);
    return;
  }
  double d = v.getDouble();
  if (!std::isfinite(d)) {
    out += "null";
    return;
  }
  auto res = std::to_chars(buf, buf + sizeof(buf), d);
  std::string_view s(buf, res.ptr - buf);
  out += s;
  // Keep the value a non-integer when read back: "1" -> "1.0".
  if (s.find_first_of(".eE") == std::string_view::npos)
    out += ".0";
}

static void writeValue(const JsonValue &v, int indent, int level,
                       std::string &out) {
  auto newline = [&](int lvl) {
    if (indent < 0)
      return;
    out += '\n';
    out.append(static_cast<size_t>(indent) * lvl, ' ');
  };
  switch (v.kind()) {
  case JsonValue::Kind::Null:
    out += "null";
    return;
  case JsonValue::Kind::Bool:
    out += v.getBool() ? "true" : "false";
    return;
  case JsonValue::Kind::Number:
    writeNumber(v, out);
    return;
  case JsonValue::Kind::String:
    writeJsonString(v.getString(), out);
    return;
  case JsonValue::Kind::Array: {
    const auto &elements = v.getArray();
    if (elements.empty()) {
      out += "[]";
      return;
    }
    out += '[';
    for (size_t i = 0; i < elements.size(); ++i) {
      if (i)
        out += ',';
      newline(level + 1);
      writeValue(elements[i], indent, level + 1, out);
    }
    newline(level);
    out += ']';
    return;
  }
  case JsonValue::Kind::Object: {
    const auto &members = v.getObject();
    if (members.empty()) {
      out += "{}";
      return;
    }
    out += '{';
    for (size_t i = 0; i < members.size(); ++i) {
      if (i)
        out += ',';
      newline(level + 1);
      writeJsonString(members[i].first, out);
      out += indent < 0 ? ":" : ": ";
      writeValue(members[i].second, indent, level + 1, out);
    }
    newline(level);
    out += '}';
    return;
  }
  }
}

std::string jamba::ckpt::writeJson(const JsonValue &value, int indent) {
  std::string out;
  writeValue(value, indent, 0, out);
  return out;
}

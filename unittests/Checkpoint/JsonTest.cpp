//===- JsonTest.cpp - Tests for the strict JSON reader/writer -------------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//

#include "jamba/Checkpoint/Json.h"

#include "gtest/gtest.h"

#include <string>

using namespace jamba::ckpt;

namespace {

/// Parses `text`, expecting success.
JsonValue parseOk(const std::string &text) {
  StatusOr<JsonValue> v = parseJson(text, "t.json");
  EXPECT_TRUE(v.ok()) << v.status().message();
  return v.ok() ? *v : JsonValue();
}

/// Parses `text`, expecting failure, and returns the message.
std::string parseError(const std::string &text, JsonParseOptions options = {}) {
  StatusOr<JsonValue> v = parseJson(text, "t.json", options);
  EXPECT_FALSE(v.ok()) << "unexpectedly parsed: " << text;
  return v.ok() ? std::string() : v.status().message();
}

TEST(JsonTest, ParsesScalars) {
  EXPECT_TRUE(parseOk("null").isNull());
  EXPECT_TRUE(parseOk(" true ").getBool());
  EXPECT_FALSE(parseOk("false").getBool());
  EXPECT_EQ(parseOk("\"hi\"").getString(), "hi");
  EXPECT_EQ(parseOk("-17").getInt(), -17);
  EXPECT_DOUBLE_EQ(parseOk("1e-06").getDouble(), 1e-6);
  EXPECT_DOUBLE_EQ(parseOk("-0.25").getDouble(), -0.25);
}

TEST(JsonTest, NumbersRememberIntegerness) {
  EXPECT_TRUE(parseOk("4096").isInteger());
  EXPECT_FALSE(parseOk("4096.0").isInteger());
  EXPECT_FALSE(parseOk("4e3").isInteger());
  EXPECT_EQ(parseOk("9223372036854775807").getInt(), INT64_MAX);
  EXPECT_EQ(parseOk("-9223372036854775808").getInt(), INT64_MIN);
  // Beyond int64: kept as a double, no longer an integer.
  JsonValue big = parseOk("9223372036854775808");
  EXPECT_TRUE(big.isNumber());
  EXPECT_FALSE(big.isInteger());
  EXPECT_DOUBLE_EQ(big.getDouble(), 9223372036854775808.0);
}

TEST(JsonTest, ObjectsKeepKeyOrder) {
  JsonValue v = parseOk(R"({"z": 1, "a": [1, 2.5, "x"], "m": {"k": null}})");
  ASSERT_TRUE(v.isObject());
  const auto &members = v.getObject();
  ASSERT_EQ(members.size(), 3u);
  EXPECT_EQ(members[0].first, "z");
  EXPECT_EQ(members[1].first, "a");
  EXPECT_EQ(members[2].first, "m");
  ASSERT_NE(v.get("a"), nullptr);
  EXPECT_EQ(v.get("a")->getArray().size(), 3u);
  EXPECT_TRUE(v.get("m")->get("k")->isNull());
  EXPECT_EQ(v.get("missing"), nullptr);
}

TEST(JsonTest, ErrorsReportLineAndColumn) {
  EXPECT_EQ(parseError("{\n  \"a\": tru\n}"),
            "t.json:2:8: invalid literal, expected 'true'");
  EXPECT_EQ(parseError("[1,]"), "t.json:1:4: expected a JSON value, got ']'");
  EXPECT_EQ(parseError("{\"a\" 1}"),
            "t.json:1:6: expected ':' after object key, got '1'");
  EXPECT_EQ(parseError("{\"a\": 1,}"),
            "t.json:1:9: expected a string key in object, got '}'");
  EXPECT_EQ(parseError("[1 2]"),
            "t.json:1:4: expected ',' or ']' in array, got '2'");
  EXPECT_EQ(parseError(""),
            "t.json:1:1: expected a JSON value, got end of input");
  EXPECT_EQ(parseError("{} x"),
            "t.json:1:4: unexpected content after the JSON value");
  EXPECT_EQ(parseError("\"abc"), "t.json:1:1: unterminated string");
}

TEST(JsonTest, RejectsNonStrictSyntax) {
  EXPECT_NE(parseError("01").find("leading zeros"), std::string::npos);
  EXPECT_NE(parseError("1.").find("after the decimal point"),
            std::string::npos);
  EXPECT_NE(parseError("1e").find("exponent"), std::string::npos);
  EXPECT_NE(parseError("+1").find("expected a JSON value"), std::string::npos);
  EXPECT_NE(parseError("NaN").find("expected a JSON value"), std::string::npos);
  EXPECT_NE(parseError("'a'").find("expected a JSON value"), std::string::npos);
  EXPECT_NE(parseError("1e400").find("out of the range"), std::string::npos);
  EXPECT_NE(parseError("\"a\tb\"").find("control character"),
            std::string::npos);
  EXPECT_NE(parseError("\"\\x\"").find("invalid escape"), std::string::npos);
  EXPECT_NE(parseError("\xEF\xBB\xBF{}").find("byte order mark"),
            std::string::npos);
}

TEST(JsonTest, RejectsDuplicateKeys) {
  EXPECT_EQ(parseError(R"({"a":1,"b":2,"a":3})"),
            "t.json:1:14: duplicate key 'a'");
  // Nested objects are checked too; equal keys in different objects are fine.
  parseOk(R"({"a": {"a": 1}, "b": {"a": 2}})");
  EXPECT_NE(parseError(R"({"x": {"k": 1, "k": 1}})").find("duplicate key 'k'"),
            std::string::npos);
}

TEST(JsonTest, EnforcesDepthLimit) {
  std::string ok = std::string(64, '[') + std::string(64, ']');
  parseOk(ok);
  std::string deep = std::string(65, '[') + std::string(65, ']');
  EXPECT_NE(parseError(deep).find("nesting deeper than the limit of 64"),
            std::string::npos);
  // A hostile input far beyond the limit fails cleanly, without recursion.
  std::string hostile(1000000, '[');
  EXPECT_NE(parseError(hostile).find("nesting"), std::string::npos);
  JsonParseOptions shallow;
  shallow.maxDepth = 2;
  EXPECT_NE(parseError(R"({"a": {"b": {}}})", shallow).find("limit of 2"),
            std::string::npos);
}

TEST(JsonTest, DecodesEscapesAndUnicode) {
  EXPECT_EQ(parseOk(R"("\"\\\/\b\f\n\r\t")").getString(), "\"\\/\b\f\n\r\t");
  EXPECT_EQ(parseOk(R"("\u00e9")").getString(), "\xC3\xA9");
  EXPECT_EQ(parseOk(R"("\u20AC")").getString(), "\xE2\x82\xAC");
  EXPECT_EQ(parseOk(R"("\ud83d\ude00")").getString(), "\xF0\x9F\x98\x80");
  EXPECT_EQ(parseOk(R"("\u0000")").getString(), std::string(1, '\0'));
  // Raw UTF-8 passes through.
  EXPECT_EQ(parseOk("\"caf\xC3\xA9\"").getString(), "caf\xC3\xA9");
}

TEST(JsonTest, RejectsBadUnicode) {
  EXPECT_NE(parseError(R"("\ud83d")").find("high surrogate"),
            std::string::npos);
  EXPECT_NE(parseError(R"("\ud83dx")").find("high surrogate"),
            std::string::npos);
  EXPECT_NE(parseError(R"("\ude00")").find("low surrogate"), std::string::npos);
  EXPECT_NE(parseError(R"("\u12G4")").find("hex digits"), std::string::npos);
  EXPECT_NE(parseError("\"\xC0\x80\"").find("invalid UTF-8"),
            std::string::npos);
  EXPECT_NE(parseError("\"\xFF\"").find("invalid UTF-8"), std::string::npos);
  EXPECT_NE(parseError("\"\xED\xA0\x80\"").find("invalid UTF-8"),
            std::string::npos); // Encoded surrogate.
  EXPECT_NE(parseError("\"\xE2\x82").find("UTF-8"), std::string::npos);
}

TEST(JsonTest, WritesCompactAndPretty) {
  JsonValue o = JsonValue::makeObject();
  o.set("name", JsonValue::makeString("a\"b\n\x01"));
  o.set("n", JsonValue::makeInt(-3));
  o.set("x", JsonValue::makeDouble(1.0));
  o.set("eps", JsonValue::makeDouble(1e-6));
  o.set("list", JsonValue::makeArray(
                    {JsonValue::makeBool(true), JsonValue::makeNull()}));
  o.set("empty", JsonValue::makeObject());
  EXPECT_EQ(writeJson(o),
            R"({"name":"a\"b\n\u0001","n":-3,"x":1.0,"eps":1e-06,)"
            R"("list":[true,null],"empty":{}})");
  EXPECT_EQ(writeJson(JsonValue::makeArray({JsonValue::makeInt(1)}), 2),
            "[\n  1\n]");
  // set() replaces in place, keeping the position.
  o.set("name", JsonValue::makeString("c"));
  EXPECT_EQ(o.getObject()[0].second.getString(), "c");
}

TEST(JsonTest, RoundTrips) {
  const char *text = R"({"a":[1,2.5,-0.001,1e+300,"\u00e9\ud83d\ude00"],)"
                     R"("b":{"c":null,"d":false},"e":12345678901234})";
  JsonValue v = parseOk(text);
  for (int indent : {-1, 0, 2, 4}) {
    JsonValue back = parseOk(writeJson(v, indent));
    EXPECT_EQ(back, v) << "indent " << indent;
  }
  // Integers and doubles stay distinct through a round trip.
  JsonValue d = parseOk(writeJson(JsonValue::makeDouble(2.0)));
  EXPECT_FALSE(d.isInteger());
  EXPECT_NE(JsonValue::makeInt(2), JsonValue::makeDouble(2.0));
  // Non-finite doubles cannot be written as JSON numbers.
  EXPECT_EQ(writeJson(JsonValue::makeDouble(1.0 / 0.0)), "null");
}

} // namespace

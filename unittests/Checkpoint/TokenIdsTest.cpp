//===- TokenIdsTest.cpp - The --prompt-ids syntax -------------------------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//

#include "jamba/Checkpoint/TokenIds.h"

#include <gtest/gtest.h>

using namespace jamba::ckpt;

namespace {

TEST(TokenIdsTest, ParsesCommaSeparatedIds) {
  auto ids = parseTokenIds("1,17, 42 ,0");
  ASSERT_TRUE(ids.ok()) << ids.status().message();
  EXPECT_EQ(*ids, (std::vector<int64_t>{1, 17, 42, 0}));
  auto one = parseTokenIds("9223372036854775807");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->front(), INT64_MAX);
}

TEST(TokenIdsTest, FormatsWhatParses) {
  EXPECT_EQ(formatTokenIds({1, 17, 42, 0}), "1,17,42,0");
  EXPECT_EQ(formatTokenIds({7}), "7");
  EXPECT_EQ(formatTokenIds({}), "");
  auto back = parseTokenIds(formatTokenIds({3, 9223372036854775807}));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, (std::vector<int64_t>{3, INT64_MAX}));
}

TEST(TokenIdsTest, RefusesBadItemsNamingThem) {
  for (const char *bad : {"", "1,,2", "1,x", "-3", "+4", "1.5", "1,2,",
                          "9223372036854775808", "12a"}) {
    auto ids = parseTokenIds(bad);
    EXPECT_FALSE(ids.ok()) << bad;
    if (!ids.ok())
      EXPECT_NE(ids.status().message().find(
                    "is not a non-negative integer (expected e.g. 1,17,42)"),
                std::string::npos)
          << ids.status().message();
  }
  EXPECT_EQ(parseTokenIds("1,x").status().message(),
            "'x' is not a non-negative integer (expected e.g. 1,17,42)");
}

} // namespace

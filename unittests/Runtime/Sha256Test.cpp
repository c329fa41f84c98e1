//===- Sha256Test.cpp - SHA-256 against the FIPS 180-4 examples -----------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//

#include "jamba/Runtime/Sha256.h"

#include "gtest/gtest.h"

#include <cstdio>
#include <cstdlib>
#include <string>

#include <unistd.h>

using namespace jamba::rt;

namespace {

// The examples of FIPS 180-4 (NIST's "SHA256.pdf" / "SHA2_Additional.pdf").
TEST(Sha256Test, EmptyMessage) {
  EXPECT_EQ(sha256Hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Sha256Test, OneBlockMessage) {
  EXPECT_EQ(sha256Hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256Test, TwoBlockMessage) {
  // 448 bits: the padding needs a second block.
  EXPECT_EQ(
      sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256Test, LongMessage) {
  EXPECT_EQ(
      sha256Hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
                "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"),
      "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

TEST(Sha256Test, OneMillionA) {
  EXPECT_EQ(sha256Hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// Feeding the message in pieces of every size gives the one-shot digest,
// including pieces that straddle the 56- and 64-byte boundaries.
TEST(Sha256Test, IncrementalEqualsOneShot) {
  std::string message;
  for (int i = 0; i < 300; ++i)
    message.push_back(static_cast<char>(i * 7 + 3));
  for (size_t length : {0, 55, 56, 63, 64, 65, 119, 120, 128, 300}) {
    std::string part = message.substr(0, length);
    std::string expected = sha256Hex(part);
    for (size_t piece = 1; piece <= 70; ++piece) {
      Sha256 hasher;
      for (size_t at = 0; at < part.size(); at += piece)
        hasher.update(part.substr(at, piece));
      ASSERT_EQ(Sha256::toHex(hasher.finish()), expected)
          << "length " << length << " piece " << piece;
    }
  }
}

TEST(Sha256Test, FileHashAndSize) {
  const char *base = std::getenv("TMPDIR");
  std::string path = std::string(base && *base ? base : "/tmp") +
                     "/jamba-sha256-test-" + std::to_string(::getpid());
  FILE *f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  std::fputs("abc", f);
  std::fclose(f);
  uint64_t size = 0;
  jamba::ckpt::StatusOr<std::string> hash = sha256File(path, &size);
  std::remove(path.c_str());
  ASSERT_TRUE(hash.ok()) << hash.status().message();
  EXPECT_EQ(*hash, sha256Hex("abc"));
  EXPECT_EQ(size, 3u);

  jamba::ckpt::StatusOr<std::string> missing = sha256File(path);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find(path), std::string::npos);
}

TEST(Sha256Test, HexSyntax) {
  EXPECT_TRUE(isSha256Hex(sha256Hex("x")));
  EXPECT_FALSE(isSha256Hex(""));
  EXPECT_FALSE(isSha256Hex(std::string(63, 'a')));
  EXPECT_FALSE(isSha256Hex(std::string(64, 'A')));
  EXPECT_FALSE(isSha256Hex(std::string(64, 'g')));
}

} // namespace

//===- Sha256Test.cpp - SHA-256 against the FIPS 180-4 examples -----------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//

#include "jamba/Runtime/Sha256.h"

#include "gtest/gtest.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

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

// Restores the run-time choice of block compression when a test ends.
class ForcedImplementation {
public:
  ~ForcedImplementation() {
    Sha256::setImplementationForTesting(Sha256::Implementation::Auto);
  }
};

// The hex digest of `data` fed in pieces of the sizes in `pieces` (cycled).
std::string hashInPieces(const std::string &data,
                         const std::vector<size_t> &pieces) {
  Sha256 hasher;
  size_t at = 0;
  for (size_t i = 0; at < data.size(); ++i) {
    size_t n = std::min(pieces[i % pieces.size()], data.size() - at);
    hasher.update(data.data() + at, n);
    at += n;
  }
  return Sha256::toHex(hasher.finish());
}

TEST(Sha256Test, ImplementationHook) {
  ForcedImplementation restore;
  ASSERT_TRUE(
      Sha256::setImplementationForTesting(Sha256::Implementation::Portable));
  EXPECT_EQ(Sha256::activeImplementation(), Sha256::Implementation::Portable);
  ASSERT_TRUE(
      Sha256::setImplementationForTesting(Sha256::Implementation::Auto));
  EXPECT_NE(Sha256::activeImplementation(), Sha256::Implementation::Auto);
  if (Sha256::setImplementationForTesting(Sha256::Implementation::ShaNi))
    EXPECT_EQ(Sha256::activeImplementation(), Sha256::Implementation::ShaNi);
}

// Every implementation gives the FIPS 180-4 digests and the same digests as
// the portable one on random messages of many lengths and piece sizes.
TEST(Sha256Test, ImplementationsAgree) {
  ForcedImplementation restore;
  std::mt19937_64 rng(20240607);
  std::string big(size_t(1) << 20, '\0');
  for (char &c : big)
    c = static_cast<char>(rng());
  // Uneven pieces: some below a block, some spanning many blocks.
  const std::vector<size_t> pieces = {1, 63, 64, 65, 4093, 7, 100000, 129, 0};

  // Digests from the portable implementation.
  ASSERT_TRUE(
      Sha256::setImplementationForTesting(Sha256::Implementation::Portable));
  std::vector<std::string> expected;
  for (size_t length = 0; length <= 300; ++length)
    expected.push_back(sha256Hex(std::string_view(big).substr(0, length)));
  std::string expectedBig = sha256Hex(big);
  EXPECT_EQ(hashInPieces(big, pieces), expectedBig);

  for (Sha256::Implementation impl :
       {Sha256::Implementation::Portable, Sha256::Implementation::ShaNi}) {
    const char *name =
        impl == Sha256::Implementation::Portable ? "portable" : "SHA-NI";
    SCOPED_TRACE(name);
    if (!Sha256::setImplementationForTesting(impl))
      GTEST_SKIP() << "this CPU (or build) has no SHA-NI; only the portable "
                      "implementation was checked";
    EXPECT_EQ(
        sha256Hex("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(
        sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    EXPECT_EQ(
        sha256Hex(std::string(1000000, 'a')),
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    for (size_t length = 0; length <= 300; ++length)
      ASSERT_EQ(sha256Hex(std::string_view(big).substr(0, length)),
                expected[length])
          << "length " << length;
    EXPECT_EQ(sha256Hex(big), expectedBig);
    EXPECT_EQ(hashInPieces(big, pieces), expectedBig);
    EXPECT_EQ(hashInPieces(big, {3, 1000, 61}), expectedBig);
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

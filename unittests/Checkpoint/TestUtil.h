//===- TestUtil.h - Helpers for the checkpoint unit tests ------*- C++ -*-===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_UNITTESTS_CHECKPOINT_TESTUTIL_H
#define JAMBA_UNITTESTS_CHECKPOINT_TESTUTIL_H

#include "jamba/Checkpoint/Config.h"
#include "jamba/Checkpoint/Status.h"

#include "gtest/gtest.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

namespace jamba {
namespace ckpt {
namespace testing {

/// A fresh directory under $TMPDIR (or /tmp), removed with its contents on
/// destruction.
class TempDir {
public:
  TempDir() {
    const char *base = std::getenv("TMPDIR");
    std::string tmpl =
        std::string(base && *base ? base : "/tmp") + "/jamba-ckpt-test-XXXXXX";
    if (char *p = ::mkdtemp(tmpl.data()))
      dir = p;
  }
  ~TempDir() {
    std::error_code ec;
    if (!dir.empty())
      std::filesystem::remove_all(dir, ec);
  }
  TempDir(const TempDir &) = delete;
  TempDir &operator=(const TempDir &) = delete;

  const std::string &path() const { return dir; }
  std::string file(const std::string &name) const { return dir + "/" + name; }

private:
  std::string dir;
};

/// Writes `bytes` to `path`, replacing it.
inline void writeFile(const std::string &path, const std::string &bytes) {
  FILE *f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  ASSERT_EQ(std::fwrite(bytes.data(), 1, bytes.size(), f), bytes.size());
  ASSERT_EQ(std::fclose(f), 0);
}

/// The whole of the file at `path` (a failure to read it is a test failure).
inline std::string readAll(const std::string &path) {
  std::string bytes;
  Status st = readFileToString(path, bytes, size_t(1) << 30);
  EXPECT_TRUE(st.ok()) << st.message();
  return bytes;
}

/// The 8-byte little-endian length prefix of a safetensors file.
inline std::string lengthPrefix(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i)
    s[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
  return s;
}

/// A safetensors file built by hand: prefix, header text, then data.
inline std::string rawSafeTensors(const std::string &header,
                                  const std::string &data) {
  return lengthPrefix(header.size()) + header + data;
}

} // namespace testing
} // namespace ckpt
} // namespace jamba

#endif // JAMBA_UNITTESTS_CHECKPOINT_TESTUTIL_H

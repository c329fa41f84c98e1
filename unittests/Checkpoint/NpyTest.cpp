//===- NpyTest.cpp - .npy reader and writer tests -------------------------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//

#include "jamba/Checkpoint/Npy.h"

#include "TestUtil.h"

#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

using namespace jamba::ckpt;
using jamba::ckpt::testing::TempDir;

namespace {

/// A version-1 .npy file with `header` (padded as NumPy pads it) and
/// `dataBytes` bytes of data.
std::string npyBytes(const std::string &header, size_t dataBytes) {
  std::string h = header;
  size_t total = 10 + h.size() + 1;
  h.append((64 - total % 64) % 64, ' ');
  h.push_back('\n');
  std::string bytes("\x93NUMPY\x01\x00", 8);
  bytes.push_back(static_cast<char>(h.size() & 0xff));
  bytes.push_back(static_cast<char>(h.size() >> 8));
  bytes += h;
  bytes.append(dataBytes, '\x01');
  return bytes;
}

std::string header(const std::string &shape) {
  return "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
}

std::string readError(const TempDir &dir, const std::string &bytes) {
  std::string path = dir.file("t.npy");
  std::ofstream(path, std::ios::binary) << bytes;
  std::vector<int64_t> shape;
  std::vector<float> values;
  Status s = readNpyF32(path, shape, values);
  return s.ok() ? std::string() : s.message();
}

TEST(NpyTest, RoundTripsShapes) {
  TempDir dir;
  for (const std::vector<int64_t> &shape :
       {std::vector<int64_t>{}, std::vector<int64_t>{3},
        std::vector<int64_t>{2, 3}, std::vector<int64_t>{2, 0, 4}}) {
    size_t n = 1;
    for (int64_t d : shape)
      n *= static_cast<size_t>(d);
    std::vector<float> values(n);
    for (size_t i = 0; i < n; ++i)
      values[i] = 0.25f * static_cast<float>(i) - 3.f;
    std::string path = dir.file("r.npy");
    ASSERT_TRUE(writeNpyF32(path, shape, values).ok());
    std::vector<int64_t> readShape;
    std::vector<float> readValues;
    Status s = readNpyF32(path, readShape, readValues);
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_EQ(readShape, shape);
    EXPECT_EQ(readValues, values);
  }
}

TEST(NpyTest, RefusesMalformedShapes) {
  TempDir dir;
  // Items that are not decimal integers used to be read by strtoll as some
  // number ("abc" as 0, "2x" as 2).
  EXPECT_NE(
      readError(dir, npyBytes(header("(abc,)"), 0)).find("bad dimension 'abc'"),
      std::string::npos);
  EXPECT_NE(readError(dir, npyBytes(header("(2x, 3)"), 24))
                .find("bad dimension '2x'"),
            std::string::npos);
  EXPECT_NE(
      readError(dir, npyBytes(header("(-1,)"), 0)).find("bad dimension '-1'"),
      std::string::npos);
  EXPECT_NE(readError(dir, npyBytes(header("(2,,3)"), 24)).find("bad shape"),
            std::string::npos);
  // Python's "(3)" is 3; both spellings read.
  EXPECT_EQ(readError(dir, npyBytes(header("(3)"), 12)), "");
  EXPECT_EQ(readError(dir, npyBytes(header("( 3 , )"), 12)), "");
}

TEST(NpyTest, RefusesDataOfTheWrongSize) {
  TempDir dir;
  // A shape far larger than the file used to be allocated first
  // (std::bad_alloc); the size is now checked against the file.
  EXPECT_NE(readError(dir, npyBytes(header("(1048576, 1048576)"), 16))
                .find("holds 16 bytes of data, but its shape '(1048576, "
                      "1048576)' needs 4398046511104"),
            std::string::npos);
  EXPECT_NE(readError(dir, npyBytes(header("(99999999999999,)"), 0))
                .find("bad dimension"),
            std::string::npos);
  EXPECT_NE(readError(dir, npyBytes(header("(4194304, 4194304)"), 0))
                .find("array too large"),
            std::string::npos);
  EXPECT_NE(
      readError(dir, npyBytes(header("(2, 3)"), 20))
          .find("holds 20 bytes of data, but its shape '(2, 3)' needs 24"),
      std::string::npos);
  // Bytes after the array are refused too.
  EXPECT_NE(readError(dir, npyBytes(header("(2,)"), 12)).find("needs 8"),
            std::string::npos);
}

} // namespace

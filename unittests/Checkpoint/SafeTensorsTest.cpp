//===- SafeTensorsTest.cpp - Tests for the safetensors reader/writer ------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//

#include "jamba/Checkpoint/SafeTensors.h"

#include "TestUtil.h"

#include "gtest/gtest.h"

#include <cstring>
#include <string>
#include <vector>

#include <unistd.h>

using namespace jamba::ckpt;
using namespace jamba::ckpt::testing;

namespace {

/// Opens `path`, expecting failure, and returns the message.
std::string openError(const std::string &path) {
  StatusOr<std::unique_ptr<SafeTensorsFile>> f = SafeTensorsFile::open(path);
  EXPECT_FALSE(f.ok()) << "unexpectedly opened " << path;
  return f.ok() ? std::string() : f.status().message();
}

/// Writes a hand-made file with `header` and `data`, opens it and returns the
/// error message.
std::string corruptError(const TempDir &dir, const std::string &header,
                         const std::string &data) {
  std::string path = dir.file("bad.safetensors");
  writeFile(path, rawSafeTensors(header, data));
  return openError(path);
}

#define EXPECT_CONTAINS(haystack, needle)                                      \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos)             \
      << "message: " << (haystack)

std::string bytesOf(size_t n, unsigned char start) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i)
    s[i] = static_cast<char>(start + i * 7);
  return s;
}

TEST(DTypeTest, NamesAndSizes) {
  struct Case {
    DType dtype;
    const char *name;
    size_t size;
  } cases[] = {{DType::F64, "F64", 8}, {DType::F32, "F32", 4},
               {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2},
               {DType::I64, "I64", 8}, {DType::I32, "I32", 4},
               {DType::I16, "I16", 2}, {DType::I8, "I8", 1},
               {DType::U8, "U8", 1},   {DType::BOOL, "BOOL", 1}};
  for (const Case &c : cases) {
    EXPECT_STREQ(dtypeName(c.dtype), c.name);
    EXPECT_EQ(dtypeSize(c.dtype), c.size);
    EXPECT_EQ(parseDType(c.name), c.dtype);
  }
  EXPECT_FALSE(parseDType("f32").has_value());
  EXPECT_FALSE(parseDType("F8_E4M3").has_value());
  EXPECT_TRUE(isFloatingPoint(DType::BF16));
  EXPECT_FALSE(isFloatingPoint(DType::I8));
}

TEST(SafeTensorsTest, RoundTripsEveryDType) {
  TempDir dir;
  SafeTensorsWriter writer;
  writer.setMetadata("format", "pt");
  writer.setMetadata("note", "caf\xC3\xA9 \"quoted\"");
  const DType all[] = {DType::F64, DType::F32, DType::F16, DType::BF16,
                       DType::I64, DType::I32, DType::I16, DType::I8,
                       DType::U8,  DType::BOOL};
  std::vector<std::string> payloads;
  for (size_t i = 0; i < 10; ++i) {
    std::vector<int64_t> shape = {2, 3};
    payloads.push_back(
        bytesOf(6 * dtypeSize(all[i]), static_cast<unsigned char>(i)));
    ASSERT_TRUE(writer
                    .add(std::string("t") + dtypeName(all[i]), all[i], shape,
                         payloads.back())
                    .ok());
  }
  // A scalar and an empty tensor.
  ASSERT_TRUE(
      writer.add("scalar", DType::F32, {}, std::string(4, '\x01')).ok());
  ASSERT_TRUE(writer.add("empty", DType::F32, {0, 4}, std::string()).ok());
  ASSERT_TRUE(writer.write(dir.file("m.safetensors")).ok());

  StatusOr<std::unique_ptr<SafeTensorsFile>> f =
      SafeTensorsFile::open(dir.file("m.safetensors"));
  ASSERT_TRUE(f.ok()) << f.status().message();
  const SafeTensorsFile &file = **f;
  ASSERT_EQ(file.tensors().size(), 12u);
  for (size_t i = 0; i < 10; ++i) {
    std::string name = std::string("t") + dtypeName(all[i]);
    const TensorInfo *t = file.find(name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_EQ(t->dtype, all[i]);
    EXPECT_EQ(t->shape, (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(t->numElements(), 6);
    ASSERT_EQ(t->nbytes, payloads[i].size());
    EXPECT_EQ(std::memcmp(t->data, payloads[i].data(), t->nbytes), 0);
    EXPECT_EQ(file.names()[i], name); // Insertion order is kept.
  }
  EXPECT_EQ(file.find("scalar")->numElements(), 1);
  EXPECT_EQ(file.find("empty")->numElements(), 0);
  EXPECT_EQ(file.find("nope"), nullptr);
  ASSERT_EQ(file.metadata().size(), 2u);
  EXPECT_EQ(file.metadata()[0],
            (std::pair<std::string, std::string>("format", "pt")));
  EXPECT_EQ(file.metadata()[1].second, "caf\xC3\xA9 \"quoted\"");

  // The header is padded so that data starts 8-byte aligned, and tensors are
  // contiguous.
  std::string header = writer.headerJson();
  EXPECT_EQ(header.size() % 8, 0u);
  EXPECT_EQ((file.tensors()[0].data - file.tensors()[0].data) % 8, 0);
  for (size_t i = 1; i < 11; ++i)
    EXPECT_EQ(file.tensors()[i].data,
              file.tensors()[i - 1].data + file.tensors()[i - 1].nbytes);
  // No temporary file is left behind.
  EXPECT_EQ(::access(dir.file("m.safetensors.tmp").c_str(), F_OK), -1);
}

TEST(SafeTensorsTest, ConvertsFloatsToF32AndF64) {
  TempDir dir;
  SafeTensorsWriter writer;
  std::vector<float> values = {1.0f, -2.5f, 0.1f, 65504.0f};
  for (DType dt : {DType::F32, DType::F64, DType::F16, DType::BF16})
    ASSERT_TRUE(
        writer.addFloats(std::string("w") + dtypeName(dt), dt, {2, 2}, values)
            .ok());
  ASSERT_TRUE(writer.add("ints", DType::I32, {1}, std::string(4, '\0')).ok());
  ASSERT_TRUE(writer.write(dir.file("f.safetensors")).ok());
  auto f = SafeTensorsFile::open(dir.file("f.safetensors"));
  ASSERT_TRUE(f.ok()) << f.status().message();

  std::vector<float> out;
  ASSERT_TRUE(readAsF32(*(*f)->find("wF32"), out).ok());
  EXPECT_EQ(out, values);
  std::vector<double> out64;
  ASSERT_TRUE(readAsF64(*(*f)->find("wF64"), out64).ok());
  EXPECT_EQ(out64, (std::vector<double>{1.0, -2.5, double(0.1f), 65504.0}));
  ASSERT_TRUE(readAsF32(*(*f)->find("wBF16"), out).ok());
  EXPECT_EQ(out, (std::vector<float>{1.0f, -2.5f, bf16ToF32(f32ToBf16(0.1f)),
                                     65536.0f}));
  ASSERT_TRUE(readAsF32(*(*f)->find("wF16"), out).ok());
  EXPECT_EQ(out, (std::vector<float>{1.0f, -2.5f, f16ToF32(f32ToF16(0.1f)),
                                     65504.0f}));

  Status st = readAsF32(*(*f)->find("ints"), out);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message(), "tensor 'ints': dtype I32 cannot be converted to "
                          "float (expected F32, F16, BF16, F64 or I8)");
  st = readAsF64(*(*f)->find("ints"), out64);
  EXPECT_FALSE(st.ok());

  // Partial conversion, and a range past the end.
  float two[2];
  ASSERT_TRUE(convertToF32(*(*f)->find("wF32"), 2, 2, two).ok());
  EXPECT_EQ(two[0], 0.1f);
  EXPECT_EQ(two[1], 65504.0f);
  EXPECT_FALSE(convertToF32(*(*f)->find("wF32"), 3, 2, two).ok());
}

TEST(SafeTensorsTest, ConvertsI8Exactly) {
  TempDir dir;
  SafeTensorsWriter writer;
  std::string bytes = {'\x81', '\xff', '\x00', '\x01', '\x7f', '\x80'};
  ASSERT_TRUE(writer.add("q", DType::I8, {2, 3}, bytes).ok());
  ASSERT_TRUE(writer.write(dir.file("q.safetensors")).ok());
  auto f = SafeTensorsFile::open(dir.file("q.safetensors"));
  ASSERT_TRUE(f.ok()) << f.status().message();
  const TensorInfo &q = *(*f)->find("q");
  std::vector<float> out;
  ASSERT_TRUE(readAsF32(q, out).ok());
  EXPECT_EQ(out, (std::vector<float>{-127, -1, 0, 1, 127, -128}));
  std::vector<double> out64;
  ASSERT_TRUE(readAsF64(q, out64).ok());
  EXPECT_EQ(out64, (std::vector<double>{-127, -1, 0, 1, 127, -128}));
  float two[2];
  ASSERT_TRUE(convertToF32(q, 4, 2, two).ok());
  EXPECT_EQ(two[0], 127.0f);
  EXPECT_EQ(two[1], -128.0f);
  EXPECT_FALSE(convertToF32(q, 5, 2, two).ok());
}

TEST(SafeTensorsTest, LazyTensorsAreProducedAtWriteTime) {
  TempDir dir;
  SafeTensorsWriter writer;
  ASSERT_TRUE(writer
                  .addLazy("lazy", DType::U8, {3},
                           [](uint8_t *dst, size_t n) {
                             for (size_t i = 0; i < n; ++i)
                               dst[i] = static_cast<uint8_t>(10 + i);
                           })
                  .ok());
  EXPECT_EQ(writer.dataBytes(), 3u);
  ASSERT_TRUE(writer.write(dir.file("l.safetensors")).ok());
  auto f = SafeTensorsFile::open(dir.file("l.safetensors"));
  ASSERT_TRUE(f.ok());
  const TensorInfo *t = (*f)->find("lazy");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(std::string(reinterpret_cast<const char *>(t->data), 3),
            "\x0A\x0B\x0C");
}

/// A writer of `count` lazy U8 tensors "t0", "t1", ... of `size` bytes,
/// tensor i filled with `tag` + i and its production logged as "tag/i".
void addTagged(SafeTensorsWriter &writer, uint8_t tag, int count, size_t size,
               std::vector<std::string> &log) {
  for (int i = 0; i < count; ++i) {
    Status st = writer.addLazy(
        "t" + std::to_string(i), DType::U8, {static_cast<int64_t>(size)},
        [tag, i, &log](uint8_t *dst, size_t n) {
          std::memset(dst, tag + i, n);
          log.push_back(std::to_string(tag) + "/" + std::to_string(i));
        });
    ASSERT_TRUE(st.ok()) << st.message();
  }
}

TEST(SafeTensorsTest, WriteFilesWritesInRounds) {
  TempDir dir;
  // Three files of 3, 1 and 2 tensors, a raw tensor in the middle of one.
  std::vector<std::string> log;
  SafeTensorsWriter a, b, c;
  addTagged(a, 10, 3, 5000, log);
  addTagged(b, 20, 1, 7, log);
  ASSERT_TRUE(b.add("raw", DType::U8, {2}, std::string("xy")).ok());
  addTagged(c, 30, 2, 100000, log);
  std::vector<std::string> paths = {dir.file("a"), dir.file("b"),
                                    dir.file("c")};
  // Sinks on the first and last file (none on the second) see each file's
  // bytes as written.
  std::vector<std::string> seen(3);
  auto sink = [&seen](size_t f) {
    return [&seen, f](const uint8_t *data, size_t size) {
      seen[f].append(reinterpret_cast<const char *>(data), size);
    };
  };
  Status st = SafeTensorsWriter::writeFiles({&a, &b, &c}, paths,
                                            {sink(0), {}, sink(2)});
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(seen[0], readAll(paths[0]));
  EXPECT_TRUE(seen[1].empty());
  EXPECT_EQ(seen[2], readAll(paths[2]));
  // Each round visits the files in order; the producers ran one at a time.
  EXPECT_EQ(log, (std::vector<std::string>{"10/0", "20/0", "30/0", "10/1",
                                           "30/1", "10/2"}));
  // Each file is what write() alone writes.
  std::vector<const SafeTensorsWriter *> writers = {&a, &b, &c};
  for (size_t f = 0; f < writers.size(); ++f) {
    std::string alone = dir.file("alone" + std::to_string(f));
    ASSERT_TRUE(writers[f]->write(alone).ok());
    EXPECT_EQ(readAll(paths[f]), readAll(alone)) << paths[f];
  }
  auto file = SafeTensorsFile::open(paths[2]);
  ASSERT_TRUE(file.ok());
  const TensorInfo *t = (*file)->find("t1");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->data[0], 31);
  EXPECT_EQ(t->data[99999], 31);
}

TEST(SafeTensorsTest, WriteFilesLeavesNothingAfterAnError) {
  TempDir dir;
  std::vector<std::string> log;
  SafeTensorsWriter a, b;
  addTagged(a, 1, 2, 16, log);
  addTagged(b, 2, 2, 16, log);
  // The second file cannot be created: the first is not left behind.
  Status st = SafeTensorsWriter::writeFiles(
      {&a, &b}, {dir.file("a"), dir.file("missing/b")});
  ASSERT_FALSE(st.ok());
  EXPECT_CONTAINS(st.message(), "missing/b.tmp: cannot create");
  EXPECT_NE(::access(dir.file("a").c_str(), F_OK), 0);
  EXPECT_NE(::access(dir.file("a.tmp").c_str(), F_OK), 0);
  st = SafeTensorsWriter::writeFiles({&a}, {dir.file("a"), dir.file("b")});
  EXPECT_FALSE(st.ok());
  st = SafeTensorsWriter::writeFiles({&a}, {dir.file("a")}, {{}, {}});
  EXPECT_EQ(st.message(), "internal error: 1 writers and 2 sinks for 1 paths");
}

TEST(SafeTensorsTest, WriterRejectsBadInput) {
  SafeTensorsWriter writer;
  ASSERT_TRUE(writer.add("a", DType::F32, {2}, std::string(8, '\0')).ok());
  Status st = writer.add("a", DType::F32, {2}, std::string(8, '\0'));
  EXPECT_EQ(st.message(), "safetensors writer: duplicate tensor 'a'");
  st = writer.add("b", DType::F32, {3}, std::string(8, '\0'));
  EXPECT_EQ(st.message(), "safetensors writer: tensor 'b': got 8 bytes but "
                          "shape [3] of F32 needs 12");
  st = writer.add("__metadata__", DType::U8, {0}, std::string());
  EXPECT_FALSE(st.ok());
  st = writer.add("neg", DType::U8, {-1}, std::string());
  EXPECT_EQ(st.message(), "safetensors writer: tensor 'neg': shape [-1] is "
                          "negative or too large");
  st = writer.addFloats("i", DType::I8, {1}, {1.0f});
  EXPECT_FALSE(st.ok());
  st = writer.write("/nonexistent-dir/x.safetensors");
  ASSERT_FALSE(st.ok());
  EXPECT_CONTAINS(st.message(), "/nonexistent-dir/x.safetensors.tmp: cannot "
                                "create");
}

//===----------------------------------------------------------------------===//
// Corrupt files, crafted byte by byte
//===----------------------------------------------------------------------===//

TEST(SafeTensorsCorruptTest, MissingFile) {
  EXPECT_CONTAINS(openError("/nonexistent/x.safetensors"),
                  "/nonexistent/x.safetensors: cannot open: No such file");
}

TEST(SafeTensorsCorruptTest, NotARegularFile) {
  TempDir dir;
  EXPECT_CONTAINS(openError(dir.path()), ": not a regular file");
}

TEST(SafeTensorsCorruptTest, EmptyFile) {
  TempDir dir;
  writeFile(dir.file("e.safetensors"), "");
  EXPECT_EQ(openError(dir.file("e.safetensors")),
            dir.file("e.safetensors") +
                ": file is empty (not a safetensors file)");
}

TEST(SafeTensorsCorruptTest, TruncatedLength) {
  TempDir dir;
  writeFile(dir.file("t.safetensors"), std::string("\x10\0\0\0\0", 5));
  EXPECT_EQ(openError(dir.file("t.safetensors")),
            dir.file("t.safetensors") +
                ": file is truncated: 5 bytes cannot hold the 8-byte header "
                "length");
}

TEST(SafeTensorsCorruptTest, HeaderLengthPastEndOfFile) {
  TempDir dir;
  std::string path = dir.file("h.safetensors");
  writeFile(path, lengthPrefix(100) + "{}");
  EXPECT_EQ(openError(path), path + ": header length 100 extends past the "
                                    "end of the file (10 bytes)");
  // A huge length (would overflow 8 + N) is caught the same way.
  writeFile(path, lengthPrefix(~uint64_t(0)) + "{}");
  EXPECT_CONTAINS(openError(path), "extends past the end of the file");
}

TEST(SafeTensorsCorruptTest, HeaderNotJson) {
  TempDir dir;
  EXPECT_CONTAINS(corruptError(dir, "<html>", ""),
                  ": safetensors header:1:1: expected a JSON value");
  EXPECT_CONTAINS(corruptError(dir, "{\"a\": ", ""),
                  ": safetensors header:1:7: expected a JSON value, got end "
                  "of input");
  EXPECT_CONTAINS(corruptError(dir, "[1, 2]", ""),
                  ": safetensors header must be a JSON object, got array");
  EXPECT_CONTAINS(corruptError(dir, "", ""),
                  "expected a JSON value, got end of input");
  EXPECT_CONTAINS(corruptError(dir, "{\"a\": 1}", ""),
                  "tensor 'a': expected an object, got number");
}

TEST(SafeTensorsCorruptTest, UnknownDType) {
  TempDir dir;
  EXPECT_CONTAINS(
      corruptError(
          dir, R"({"w":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}})",
          "ab"),
      ": tensor 'w': unsupported dtype 'F8_E4M3'");
  EXPECT_CONTAINS(
      corruptError(dir, R"({"w":{"dtype":3,"shape":[2],"data_offsets":[0,2]}})",
                   "ab"),
      ": tensor 'w': 'dtype' must be a string, got number");
}

TEST(SafeTensorsCorruptTest, MissingFields) {
  TempDir dir;
  EXPECT_CONTAINS(
      corruptError(dir, R"({"w":{"shape":[2],"data_offsets":[0,2]}})", "ab"),
      "tensor 'w': missing 'dtype'");
  EXPECT_CONTAINS(
      corruptError(dir, R"({"w":{"dtype":"U8","data_offsets":[0,2]}})", "ab"),
      "tensor 'w': missing 'shape'");
  EXPECT_CONTAINS(
      corruptError(dir, R"({"w":{"dtype":"U8","shape":[2]}})", "ab"),
      "tensor 'w': missing 'data_offsets'");
  EXPECT_CONTAINS(
      corruptError(
          dir, R"({"w":{"dtype":"U8","shape":[2],"data_offsets":[0]}})", "ab"),
      "tensor 'w': 'data_offsets' must have 2 elements, got 1");
  EXPECT_CONTAINS(
      corruptError(dir,
                   R"({"w":{"dtype":"U8","shape":[2.5],"data_offsets":[0,2]}})",
                   "ab"),
      "tensor 'w': 'shape': expected an array of integers, found a "
      "non-integer number");
}

TEST(SafeTensorsCorruptTest, ShapeOffsetSizeMismatch) {
  TempDir dir;
  EXPECT_CONTAINS(
      corruptError(
          dir, R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})",
          std::string(24, '\0')),
      ": tensor 'w': 'data_offsets' [0, 20] span 20 bytes but shape [2, 3] of "
      "F32 needs 24");
}

TEST(SafeTensorsCorruptTest, OffsetsPastTheEnd) {
  TempDir dir;
  EXPECT_CONTAINS(
      corruptError(dir,
                   R"({"w":{"dtype":"U8","shape":[8],"data_offsets":[4,12]}})",
                   std::string(8, '\0')),
      ": tensor 'w': 'data_offsets' [4, 12] extend past the end of the data "
      "section (8 bytes)");
  EXPECT_CONTAINS(
      corruptError(dir,
                   R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[5,4]}})",
                   std::string(8, '\0')),
      "'data_offsets' [5, 4] have begin greater than end");
  EXPECT_CONTAINS(
      corruptError(dir,
                   R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[-1,0]}})",
                   std::string(8, '\0')),
      "'data_offsets' [-1, 0] are negative");
}

TEST(SafeTensorsCorruptTest, OverlappingOffsets) {
  TempDir dir;
  EXPECT_CONTAINS(
      corruptError(dir,
                   R"({"b":{"dtype":"U8","shape":[8],"data_offsets":[4,12]},)"
                   R"("a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}})",
                   std::string(16, '\0')),
      ": tensors 'a' (data_offsets [0, 8]) and 'b' (data_offsets [4, 12]) "
      "overlap");
  // Identical ranges overlap too; empty tensors never do.
  EXPECT_CONTAINS(
      corruptError(dir,
                   R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                   R"("b":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})",
                   std::string(4, '\0')),
      "overlap");
  std::string path = dir.file("ok.safetensors");
  writeFile(path, rawSafeTensors(
                      R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                      R"("e":{"dtype":"U8","shape":[0],"data_offsets":[2,2]}})",
                      std::string(4, '\0')));
  EXPECT_TRUE(SafeTensorsFile::open(path).ok());
}

TEST(SafeTensorsCorruptTest, BytesThatBelongToNoTensor) {
  // The tensors cover the data section exactly, from 0, as the safetensors
  // library requires: a hole or trailing bytes mean a damaged file.
  TempDir dir;
  EXPECT_CONTAINS(
      corruptError(dir,
                   R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                   R"("b":{"dtype":"U8","shape":[4],"data_offsets":[6,10]}})",
                   std::string(10, '\0')),
      ": bytes [4, 6) of the data section belong to no tensor");
  EXPECT_CONTAINS(
      corruptError(dir,
                   R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})",
                   std::string(6, '\0')),
      ": bytes [0, 2) of the data section belong to no tensor");
  EXPECT_CONTAINS(
      corruptError(dir,
                   R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})",
                   std::string(104, '\0')),
      ": 100 bytes after the last tensor's data (the data section has 104 "
      "bytes, the tensors cover 4)");
}

TEST(SafeTensorsCorruptTest, DuplicateTensorNames) {
  TempDir dir;
  EXPECT_CONTAINS(
      corruptError(dir,
                   R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                   R"("w":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})",
                   std::string(8, '\0')),
      ": safetensors header:1:54: duplicate key 'w'");
}

TEST(SafeTensorsCorruptTest, NegativeDimension) {
  TempDir dir;
  EXPECT_CONTAINS(
      corruptError(
          dir, R"({"w":{"dtype":"U8","shape":[2,-3],"data_offsets":[0,0]}})",
          ""),
      ": tensor 'w': shape [2, -3] has a negative dimension");
}

TEST(SafeTensorsCorruptTest, OverflowingShape) {
  TempDir dir;
  EXPECT_CONTAINS(
      corruptError(dir,
                   R"({"w":{"dtype":"F64","shape":[4294967296,4294967296],)"
                   R"("data_offsets":[0,0]}})",
                   ""),
      ": tensor 'w': shape [4294967296, 4294967296] is too large");
}

TEST(SafeTensorsCorruptTest, BadMetadata) {
  TempDir dir;
  EXPECT_CONTAINS(corruptError(dir, R"({"__metadata__":{"format":1}})", ""),
                  "'__metadata__' key 'format': expected a string, got number");
  EXPECT_CONTAINS(corruptError(dir, R"({"__metadata__":[]})", ""),
                  "'__metadata__' must be an object of strings, got array");
}

/// Random byte edits and truncations of a valid file must give either a clean
/// error or a file whose tensors all lie inside it (run under ASan to make
/// "never reads out of bounds" checkable).
TEST(SafeTensorsCorruptTest, RandomCorruptionNeverCrashes) {
  TempDir dir;
  SafeTensorsWriter writer;
  writer.setMetadata("format", "pt");
  ASSERT_TRUE(
      writer.addFloats("a", DType::F32, {2, 3}, {1, 2, 3, 4, 5, 6}).ok());
  ASSERT_TRUE(writer.addFloats("b", DType::BF16, {4}, {1, 2, 3, 4}).ok());
  ASSERT_TRUE(writer.add("c", DType::I64, {1}, std::string(8, '\x7f')).ok());
  std::string good = dir.file("good.safetensors");
  ASSERT_TRUE(writer.write(good).ok());
  std::string bytes;
  {
    FILE *f = std::fopen(good.c_str(), "rb");
    ASSERT_NE(f, nullptr);
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0)
      bytes.append(buf, n);
    std::fclose(f);
  }
  uint64_t state = 12345;
  auto next = [&]() {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<uint32_t>(state >> 33);
  };
  const char interesting[] = {'"', ',', ':', '[', ']',  '{',    '}',
                              '-', '0', '9', ' ', '\0', '\x80', 'e'};
  std::string path = dir.file("fuzz.safetensors");
  int opened = 0;
  for (int iter = 0; iter < 400; ++iter) {
    std::string mutated = bytes;
    if (iter % 5 == 0) {
      mutated.resize(next() % mutated.size());
    } else {
      int edits = 1 + next() % 3;
      for (int k = 0; k < edits; ++k) {
        size_t pos = next() % std::min<size_t>(mutated.size(), 8 + 200);
        mutated[pos] = (next() % 2) ? interesting[next() % sizeof(interesting)]
                                    : static_cast<char>(next() & 0xFF);
      }
    }
    writeFile(path, mutated);
    StatusOr<std::unique_ptr<SafeTensorsFile>> f = SafeTensorsFile::open(path);
    if (!f.ok()) {
      EXPECT_FALSE(f.status().message().empty());
      continue;
    }
    ++opened;
    for (const TensorInfo &t : (*f)->tensors()) {
      // Touch every byte; ASan would flag a read outside the mapping.
      unsigned sum = 0;
      for (size_t i = 0; i < t.nbytes; ++i)
        sum += t.data[i];
      (void)sum;
      std::vector<double> values;
      (void)readAsF64(t, values);
    }
  }
  EXPECT_GT(opened, 0); // Some edits (e.g. in data) leave the file valid.
}

} // namespace

//===- ArtifactTest.cpp - Opening, refusing and writing artifacts ---------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// A valid artifact is written with the writer; then copies of it are
// truncated, corrupted, version-bumped or made inconsistent, and every one
// must be refused by Artifact::open with a message naming the directory and
// the problem (STYLE.md habit 13).
//
//===----------------------------------------------------------------------===//

#include "jamba/Runtime/Artifact.h"
#include "jamba/Runtime/ArtifactWriter.h"
#include "jamba/Runtime/ExampleArtifact.h"
#include "jamba/Runtime/Sha256.h"

#include "gtest/gtest.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <system_error>

#include <sys/stat.h>
#include <unistd.h>

using namespace jamba;
using namespace jamba::rt;
using ckpt::JsonValue;

namespace fs = std::filesystem;

namespace {

std::string readAll(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void writeAll(const std::string &path, const std::string &bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

/// Each test gets a fresh copy of the example artifact in a temporary
/// directory.
class ArtifactTest : public ::testing::Test {
protected:
  void SetUp() override {
    const char *base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") +
                       "/jamba-artifact-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    root = tmpl;
    dir = root + "/a";
    Status s = writeExampleArtifact(dir);
    ASSERT_TRUE(s.ok()) << s.message();
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root, ec);
  }

  std::string file(const std::string &relative) const {
    return dir + "/" + relative;
  }

  /// Opens `dir` and expects a failure whose message starts with
  /// "artifact DIR: " and contains `needle`.
  void expectRefused(const std::string &needle,
                     const OpenOptions &options = {}) {
    StatusOr<std::unique_ptr<Artifact>> a = Artifact::open(dir, options);
    ASSERT_FALSE(a.ok()) << "expected an error containing: " << needle;
    const std::string &message = a.status().message();
    EXPECT_EQ(message.rfind("artifact " + dir + ": ", 0), 0u) << message;
    EXPECT_NE(message.find(needle), std::string::npos) << message;
  }

  /// Rewrites manifest.json from the parsed manifest after `edit`, with a
  /// correct content hash.
  void editManifest(const std::function<void(ArtifactManifest &)> &edit) {
    StatusOr<ArtifactManifest> m =
        parseManifest(readAll(file(kManifestFileName)), "test");
    ASSERT_TRUE(m.ok()) << m.status().message();
    edit(*m);
    writeAll(file(kManifestFileName), writeManifest(*m));
  }

  /// Rewrites manifest.json's JSON after `edit`, re-hashing unless `rehash`
  /// is false.
  void editJson(const std::function<void(JsonValue &)> &edit,
                bool rehash = true) {
    ckpt::StatusOr<JsonValue> doc =
        ckpt::parseJson(readAll(file(kManifestFileName)), "manifest");
    ASSERT_TRUE(doc.ok());
    edit(*doc);
    if (rehash)
      doc->set("content_hash", JsonValue::makeString(computeContentHash(*doc)));
    writeAll(file(kManifestFileName), ckpt::writeJson(*doc, 2));
  }

  /// Replaces the weights file by one holding `writer`'s tensors and records
  /// its new size and hash in the manifest, so that only the tensor check
  /// can catch the difference.
  void replaceWeights(const ckpt::SafeTensorsWriter &writer) {
    std::string path = file("weights/rank-0.safetensors");
    Status s = writer.write(path);
    ASSERT_TRUE(s.ok()) << s.message();
    uint64_t size = 0;
    StatusOr<std::string> hash = sha256File(path, &size);
    ASSERT_TRUE(hash.ok());
    editManifest([&](ArtifactManifest &m) {
      for (FileDesc &f : m.files)
        if (f.path == "weights/rank-0.safetensors") {
          f.size = size;
          f.sha256 = *hash;
        }
    });
  }

  /// A weights writer with the example's tensors, minus `skip`, plus
  /// `extra` when not empty.
  static ckpt::SafeTensorsWriter weightsWriter(const std::string &skip = "",
                                               const std::string &extra = "") {
    ckpt::SafeTensorsWriter writer;
    for (const WeightDesc &w : exampleManifest().weights) {
      if (w.name == skip)
        continue;
      int64_t numel = 1;
      for (int64_t d : w.shape)
        numel *= d;
      EXPECT_TRUE(writer
                      .addFloats(w.name, w.dtype, w.shape,
                                 std::vector<float>(size_t(numel), 0.5f))
                      .ok());
    }
    if (!extra.empty())
      EXPECT_TRUE(writer.addFloats(extra, DType::F32, {2}, {1, 2}).ok());
    return writer;
  }

  std::string root, dir;
};

//===----------------------------------------------------------------------===//
// The valid artifact
//===----------------------------------------------------------------------===//

TEST_F(ArtifactTest, ValidArtifactOpens) {
  StatusOr<std::unique_ptr<Artifact>> a = Artifact::open(dir);
  ASSERT_TRUE(a.ok()) << a.status().message();
  const ArtifactManifest &m = (*a)->manifest();
  EXPECT_EQ(m.version.major, 1);
  EXPECT_EQ(m.files.size(), 2u);
  EXPECT_EQ(m.files[0].path, "kernels/cpu.so");
  EXPECT_EQ(m.files[1].path, "weights/rank-0.safetensors");
  const ckpt::TensorInfo *t = (*a)->weight("lm_head.weight", 0);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->dtype, DType::BF16);
  EXPECT_EQ(t->nbytes, 128u * 64 * 2);
  EXPECT_EQ((*a)->weight("lm_head.weight", 1), nullptr);
  EXPECT_EQ((*a)->weight("nothing", 0), nullptr);
}

TEST_F(ArtifactTest, MinorVersionOneIsAccepted) {
  editJson([](JsonValue &doc) {
    doc.set("schema_version", JsonValue::makeArray({JsonValue::makeInt(1),
                                                    JsonValue::makeInt(1)}));
    doc.set("added_in_1_1", JsonValue::makeObject());
  });
  StatusOr<std::unique_ptr<Artifact>> a = Artifact::open(dir);
  ASSERT_TRUE(a.ok()) << a.status().message();
  EXPECT_EQ((*a)->manifest().version.minor, 1);
}

//===----------------------------------------------------------------------===//
// The manifest
//===----------------------------------------------------------------------===//

TEST_F(ArtifactTest, MissingDirectoryOrManifest) {
  std::string real = dir;
  dir = root + "/none";
  expectRefused("cannot open the directory");
  dir = real;
  std::remove(file(kManifestFileName).c_str());
  expectRefused("cannot read manifest.json");
}

TEST_F(ArtifactTest, TruncatedManifest) {
  std::string text = readAll(file(kManifestFileName));
  writeAll(file(kManifestFileName), text.substr(0, text.size() * 2 / 3));
  expectRefused("manifest.json:");
}

TEST_F(ArtifactTest, InvalidJson) {
  writeAll(file(kManifestFileName), "{\"format\": jamba}");
  expectRefused("manifest.json:1:12:");
}

TEST_F(ArtifactTest, WrongFormat) {
  editJson([](JsonValue &doc) {
    doc.set("format", JsonValue::makeString("jamba-checkpoint"));
  });
  expectRefused("not a jamba artifact: format is 'jamba-checkpoint', "
                "expected 'jamba-artifact'");
}

TEST_F(ArtifactTest, SchemaMajorTwo) {
  editJson(
      [](JsonValue &doc) {
        doc.set("schema_version",
                JsonValue::makeArray(
                    {JsonValue::makeInt(2), JsonValue::makeInt(0)}));
      },
      /*rehash=*/false);
  StatusOr<std::unique_ptr<Artifact>> a = Artifact::open(dir);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().message(),
            "artifact " + dir +
                ": schema version 2.0 is not supported by this runtime (1.x)");
}

TEST_F(ArtifactTest, ContentHashMismatch) {
  std::string text = readAll(file(kManifestFileName));
  size_t at = text.find("\"hidden_size\": 64");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 17, "\"hidden_size\": 65");
  writeAll(file(kManifestFileName), text);
  expectRefused("content_hash mismatch: manifest.json records ");
}

//===----------------------------------------------------------------------===//
// Files
//===----------------------------------------------------------------------===//

TEST_F(ArtifactTest, MissingFile) {
  std::remove(file("kernels/cpu.so").c_str());
  expectRefused("file 'kernels/cpu.so' is missing");
}

TEST_F(ArtifactTest, FileSizeMismatch) {
  writeAll(file("kernels/cpu.so"), readAll(file("kernels/cpu.so")) + "x");
  expectRefused("file 'kernels/cpu.so' has 57 bytes, the manifest records 56");
}

TEST_F(ArtifactTest, FlippedByteInWeights) {
  std::string bytes = readAll(file("weights/rank-0.safetensors"));
  bytes[bytes.size() - 100] ^= 0x01;
  writeAll(file("weights/rank-0.safetensors"), bytes);
  expectRefused("file 'weights/rank-0.safetensors' has SHA-256 ");
  // Without hashing, the flip is not seen (sizes still are).
  OpenOptions fast;
  fast.verifyFileHashes = false;
  EXPECT_TRUE(Artifact::open(dir, fast).ok());
}

// Two ranks, each with its weights file (a copy of the example's): every
// file is hashed, on one thread or several, and a flipped byte is reported
// in the manifest's order of files. A process running one rank hashes only
// the files it reads: a flip in the other rank's weights is not seen (its
// size still is), one in its own weights or in the shared kernels is.
TEST_F(ArtifactTest, EachRankHashesTheFilesItReads) {
  const std::string weights = readAll(file("weights/rank-0.safetensors"));
  writeAll(file("weights/rank-1.safetensors"), weights);
  editManifest([](ArtifactManifest &m) {
    m.ranks = 2;
    std::vector<WeightDesc> second = m.weights;
    for (WeightDesc &w : second) {
      w.rank = 1;
      w.file = "weights/rank-1.safetensors";
    }
    m.weights.insert(m.weights.end(), second.begin(), second.end());
    FileDesc f = m.files[1];
    f.path = "weights/rank-1.safetensors";
    m.files.push_back(f);
  });
  OpenOptions oneThread, rank0, rank1;
  oneThread.hashThreads = 1;
  rank0.rank = 0;
  rank1.rank = 1;
  for (const OpenOptions &options : {OpenOptions(), oneThread, rank0, rank1}) {
    StatusOr<std::unique_ptr<Artifact>> a = Artifact::open(dir, options);
    ASSERT_TRUE(a.ok()) << a.status().message();
    EXPECT_NE((*a)->weight("lm_head.weight", 1), nullptr);
  }

  auto flip = [&](const std::string &relative) {
    std::string bytes = readAll(file(relative));
    ASSERT_GT(bytes.size(), 0u);
    bytes[bytes.size() / 2] ^= 0x01;
    writeAll(file(relative), bytes);
  };
  flip("weights/rank-1.safetensors");
  expectRefused("file 'weights/rank-1.safetensors' has SHA-256 ");
  expectRefused("file 'weights/rank-1.safetensors' has SHA-256 ", oneThread);
  expectRefused("file 'weights/rank-1.safetensors' has SHA-256 ", rank1);
  EXPECT_TRUE(Artifact::open(dir, rank0).ok());
  // Both ranks' files flipped: the first in the manifest's order is named.
  flip("weights/rank-0.safetensors");
  expectRefused("file 'weights/rank-0.safetensors' has SHA-256 ");
  expectRefused("file 'weights/rank-0.safetensors' has SHA-256 ", rank0);
  expectRefused("file 'weights/rank-1.safetensors' has SHA-256 ", rank1);
  // Sizes are checked for every rank's files.
  writeAll(file("weights/rank-1.safetensors"),
           readAll(file("weights/rank-1.safetensors")) + "x");
  expectRefused("file 'weights/rank-1.safetensors' has ", rank0);
  // The kernels are every rank's.
  writeAll(file("weights/rank-0.safetensors"), weights);
  writeAll(file("weights/rank-1.safetensors"), weights);
  ASSERT_TRUE(Artifact::open(dir).ok());
  flip("kernels/cpu.so");
  expectRefused("file 'kernels/cpu.so' has SHA-256 ", rank1);
}

TEST_F(ArtifactTest, TruncatedWeights) {
  std::string bytes = readAll(file("weights/rank-0.safetensors"));
  writeAll(file("weights/rank-0.safetensors"), bytes.substr(0, 1000));
  expectRefused("file 'weights/rank-0.safetensors' has 1000 bytes, the "
                "manifest records ");
}

// A truncated weights file whose new size and hash were recorded as well:
// the safetensors reader catches it.
TEST_F(ArtifactTest, TruncatedWeightsWithMatchingHash) {
  std::string path = file("weights/rank-0.safetensors");
  writeAll(path, readAll(path).substr(0, 1000));
  uint64_t size = 0;
  StatusOr<std::string> hash = sha256File(path, &size);
  ASSERT_TRUE(hash.ok());
  editManifest([&](ArtifactManifest &m) {
    m.files[1].size = size;
    m.files[1].sha256 = *hash;
  });
  expectRefused("weights file 'weights/rank-0.safetensors': ");
}

TEST_F(ArtifactTest, DirectoryInsteadOfFile) {
  std::remove(file("kernels/cpu.so").c_str());
  fs::create_directory(file("kernels/cpu.so"));
  expectRefused("file 'kernels/cpu.so' is not a regular file");
}

//===----------------------------------------------------------------------===//
// Weights against the safetensors file
//===----------------------------------------------------------------------===//

TEST_F(ArtifactTest, WeightMissingFromFile) {
  replaceWeights(weightsWriter("model.final_layernorm.weight"));
  expectRefused("weight 'model.final_layernorm.weight' (rank 0) is not in "
                "weights/rank-0.safetensors");
}

TEST_F(ArtifactTest, UnlistedTensorInFile) {
  replaceWeights(weightsWriter("", "stray.weight"));
  expectRefused("tensor 'stray.weight' in weights/rank-0.safetensors is not "
                "listed in the manifest's weights");
}

TEST_F(ArtifactTest, WeightDTypeMismatch) {
  editManifest([](ArtifactManifest &m) { m.weights[2].dtype = DType::F32; });
  expectRefused("weight 'lm_head.weight' (rank 0): weights/rank-0.safetensors "
                "holds BF16, the manifest records F32");
}

TEST_F(ArtifactTest, WeightShapeMismatch) {
  editManifest([](ArtifactManifest &m) { m.weights[0].shape = {64, 128}; });
  expectRefused("weight 'model.embed_tokens.weight' (rank 0): "
                "weights/rank-0.safetensors holds shape [128, 64], the "
                "manifest records [64, 128]");
}

//===----------------------------------------------------------------------===//
// Bounds and cross-references on disk
//===----------------------------------------------------------------------===//

TEST_F(ArtifactTest, StepReferencesUnknownBuffer) {
  editManifest([](ArtifactManifest &m) {
    m.entryPoints[0].steps[1].args[3].ref = "scratch";
  });
  expectRefused("entry point 'prefill': steps[1]: args[3]: unknown buffer "
                "'scratch'");
}

TEST_F(ArtifactTest, StepReferencesUnknownKernel) {
  editManifest([](ArtifactManifest &m) { m.kernels.erase(m.kernels.begin()); });
  expectRefused("entry point 'prefill': steps[0]: unknown kernel 'embed'");
}

TEST_F(ArtifactTest, StepReferencesUnknownWeight) {
  editManifest([](ArtifactManifest &m) {
    m.entryPoints[1].steps[4].args[1].ref = "lm_head.bias";
  });
  expectRefused("entry point 'decode': steps[4]: args[1]: unknown weight "
                "'lm_head.bias'");
}

TEST_F(ArtifactTest, NegativeDim) {
  editManifest([](ArtifactManifest &m) {
    m.buffers[3].shape[2] = DimExpr::constant(-64);
  });
  expectRefused("buffer 'normed': shape[2]: dimension -64 is negative");
}

TEST_F(ArtifactTest, AbsurdDim) {
  editManifest([](ArtifactManifest &m) {
    m.buffers[3].shape[2] = DimExpr::constant(int64_t(1) << 33);
  });
  expectRefused("buffer 'normed': shape[2]: dimension 8589934592 exceeds the "
                "limit of 2147483648");
}

TEST_F(ArtifactTest, AbsurdDimMax) {
  editManifest([](ArtifactManifest &m) { m.dims[0].max = int64_t(1) << 62; });
  expectRefused("dimension 'batch': max must be in [1, 2147483648]");
}

TEST_F(ArtifactTest, KernelFileNotListed) {
  editManifest(
      [](ArtifactManifest &m) { m.kernels[0].file = "kernels/other.so"; });
  expectRefused("kernel 'embed': file 'kernels/other.so' is not listed in "
                "'files'");
}

//===----------------------------------------------------------------------===//
// The writer
//===----------------------------------------------------------------------===//

TEST_F(ArtifactTest, WriterRefusesExistingDirectory) {
  Status s = writeExampleArtifact(dir);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "artifact " + dir + ": already exists");
  s = writeExampleArtifact(dir, /*overwrite=*/true);
  EXPECT_TRUE(s.ok()) << s.message();
  EXPECT_TRUE(Artifact::open(dir).ok());
}

// Replacing removes a tree: only an artifact's, never a directory without
// a manifest (its files stay) nor one holding the working directory.
TEST_F(ArtifactTest, WriterReplacesOnlyArtifacts) {
  std::string other = root + "/other";
  fs::create_directories(other);
  writeAll(other + "/keep", "x");
  Status s = writeExampleArtifact(other, /*overwrite=*/true);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "artifact " + other +
                             ": exists and is not an artifact (no "
                             "manifest.json); not replacing it");
  EXPECT_TRUE(fs::exists(other + "/keep"));

  fs::path saved = fs::current_path();
  fs::current_path(dir + "/weights");
  s = writeExampleArtifact(dir, /*overwrite=*/true);
  Status dot = writeExampleArtifact("..", /*overwrite=*/true);
  fs::current_path(saved);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "artifact " + dir +
                             ": holds the working directory; not replacing "
                             "it");
  EXPECT_EQ(dot.message(), "artifact ..: holds the working directory; not "
                           "replacing it");
  EXPECT_TRUE(Artifact::open(dir).ok());
}

TEST_F(ArtifactTest, WriterRefusesInvalidManifest) {
  ArtifactManifest m = exampleManifest();
  m.entryPoints[0].steps[0].args[0].ref = "nope";
  std::string out = root + "/b";
  Status s = writeArtifact(m, out, {});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "artifact " + out +
                             ": entry point 'prefill': steps[0]: args[0]: "
                             "unknown buffer 'nope'");
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(ArtifactTest, WriterRefusesMissingFileSource) {
  std::string out = root + "/b";
  Status s =
      writeArtifact(exampleManifest(), out,
                    {ArtifactFileSource::fromBytes("kernels/cpu.so", "x")});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("weight 'model.embed_tokens.weight': file "
                             "'weights/rank-0.safetensors' is not among the "
                             "files to write"),
            std::string::npos)
      << s.message();
}

// The writer re-opens what it wrote: weights that do not match the manifest
// never reach the final directory name.
TEST_F(ArtifactTest, WriterChecksWeights) {
  std::string weights = root + "/w.safetensors";
  ASSERT_TRUE(weightsWriter("lm_head.weight").write(weights).ok());
  std::string out = root + "/b";
  Status s = writeArtifact(
      exampleManifest(), out,
      {ArtifactFileSource::fromBytes("kernels/cpu.so", "x"),
       ArtifactFileSource::fromFile("weights/rank-0.safetensors", weights)});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "artifact " + out +
                             ": weight 'lm_head.weight' (rank 0) is not in "
                             "weights/rank-0.safetensors");
  EXPECT_FALSE(fs::exists(out));
  for (const fs::directory_entry &e : fs::directory_iterator(root))
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos)
        << e.path();
}

// A scratch file is moved into the artifact: the same bytes and recorded
// hash as a copied file's, and the scratch file is gone. Across file
// systems (a scratch file in /dev/shm, where that is one) it is copied.
TEST_F(ArtifactTest, ScratchFilesAreMovedIn) {
  std::string weights = root + "/w.safetensors";
  ASSERT_TRUE(weightsWriter().write(weights).ok());
  std::string bytes = readAll(weights);
  ASSERT_FALSE(bytes.empty());
  auto write = [&](const std::string &out, const std::string &scratchFile) {
    return writeArtifact(exampleManifest(), out,
                         {ArtifactFileSource::fromBytes("kernels/cpu.so", "x"),
                          ArtifactFileSource::fromScratchFile(
                              "weights/rank-0.safetensors", scratchFile)});
  };
  auto recordedHash = [](const std::string &out) -> std::string {
    StatusOr<std::unique_ptr<Artifact>> a = Artifact::open(out);
    EXPECT_TRUE(a.ok()) << a.status().message();
    if (!a.ok())
      return "";
    for (const FileDesc &f : (*a)->manifest().files)
      if (f.path == "weights/rank-0.safetensors")
        return f.sha256;
    return "";
  };
  StatusOr<std::string> expectedHash = sha256File(weights);
  ASSERT_TRUE(expectedHash.ok());

  std::string out = root + "/b";
  Status s = write(out, weights);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_FALSE(fs::exists(weights));
  EXPECT_EQ(readAll(out + "/weights/rank-0.safetensors"), bytes);
  EXPECT_EQ(recordedHash(out), *expectedHash);

  struct stat here;
  struct stat shm;
  if (::stat(root.c_str(), &here) != 0 || ::stat("/dev/shm", &shm) != 0 ||
      here.st_dev == shm.st_dev)
    GTEST_SKIP() << "no second file system (/dev/shm) to copy across";
  std::string elsewhere =
      "/dev/shm/jamba-artifact-test-" + std::to_string(::getpid());
  writeAll(elsewhere, bytes);
  std::string copied = root + "/c";
  s = write(copied, elsewhere);
  std::error_code ec;
  fs::remove(elsewhere, ec);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(readAll(copied + "/weights/rank-0.safetensors"), bytes);
  EXPECT_EQ(recordedHash(copied), *expectedHash);
}

// A scratch file whose writer gave its size and SHA-256 (taken by a
// SafeTensorsWriter sink as it wrote, as writeWeightFiles does) is moved in
// without being read again: the manifest records what the writer gave. A
// size that is not the file's is refused.
TEST_F(ArtifactTest, ScratchFilesWithTheirHashAreNotReadAgain) {
  std::string weights = root + "/w.safetensors";
  auto writeWeights = [&](std::string &hash, uint64_t &size) {
    Sha256 hasher;
    size = 0;
    Status st =
        weightsWriter().write(weights, [&](const uint8_t *data, size_t n) {
          hasher.update(data, n);
          size += n;
        });
    hash = Sha256::toHex(hasher.finish());
    return st;
  };
  auto write = [&](const std::string &out, uint64_t size, std::string hash) {
    return writeArtifact(
        exampleManifest(), out,
        {ArtifactFileSource::fromBytes("kernels/cpu.so", "x"),
         ArtifactFileSource::fromScratchFile("weights/rank-0.safetensors",
                                             weights, size, std::move(hash))});
  };
  std::string hash;
  uint64_t size = 0;
  ASSERT_TRUE(writeWeights(hash, size).ok());
  // The sink saw the file's bytes.
  uint64_t fileSize = 0;
  StatusOr<std::string> readBack = sha256File(weights, &fileSize);
  ASSERT_TRUE(readBack.ok());
  EXPECT_EQ(hash, *readBack);
  EXPECT_EQ(size, fileSize);
  Status s = write(root + "/h1", size, hash);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_FALSE(fs::exists(weights));
  StatusOr<std::unique_ptr<Artifact>> opened = Artifact::open(root + "/h1");
  EXPECT_TRUE(opened.ok()) << opened.status().message();

  // Another hash is recorded as given, so the file was not read: opening
  // the artifact, which verifies the hashes, then refuses it.
  ASSERT_TRUE(writeWeights(hash, size).ok());
  ASSERT_TRUE(write(root + "/h2", size, sha256Hex("other")).ok());
  opened = Artifact::open(root + "/h2");
  ASSERT_FALSE(opened.ok());
  EXPECT_NE(opened.status().message().find(
                "file 'weights/rank-0.safetensors' has SHA-256 " + hash),
            std::string::npos)
      << opened.status().message();

  ASSERT_TRUE(writeWeights(hash, size).ok());
  s = write(root + "/h3", size + 1, hash);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(
      s.message().find(ckpt::concat(weights, ": has ", size,
                                    " bytes, its writer wrote ", size + 1)),
      std::string::npos)
      << s.message();
  EXPECT_FALSE(fs::exists(root + "/h3"));
}

// A scratch directory sits beside the artifact's (whatever its trailing
// slashes), with the directories above it created, and goes with
// everything in it.
TEST_F(ArtifactTest, ScratchDirIsBesideTheArtifactAndRemoved) {
  std::string path;
  {
    ScratchDir scratch;
    Status s = scratch.createBeside(root + "/x/y/out//");
    ASSERT_TRUE(s.ok()) << s.message();
    path = scratch.path();
    EXPECT_EQ(path.rfind(root + "/x/y/out.scratch-", 0), 0u) << path;
    EXPECT_TRUE(fs::is_directory(path));
    EXPECT_FALSE(fs::exists(root + "/x/y/out"));
    writeAll(path + "/f", "bytes");
  }
  EXPECT_FALSE(fs::exists(path));
  ScratchDir empty;
  Status s = empty.createBeside("");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "an empty artifact directory name");
}

} // namespace

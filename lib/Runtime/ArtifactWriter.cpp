//===- ArtifactWriter.cpp - Writing artifact directories ------------------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//

#include "jamba/Runtime/ArtifactWriter.h"
#include "jamba/Runtime/Sha256.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <set>
#include <system_error>
#include <vector>

#include <unistd.h>

using namespace jamba;
using namespace jamba::rt;
using ckpt::makeError;

namespace fs = std::filesystem;

namespace {

/// Reads the file at `path` from start to end, a chunk at a time.
template <typename Consume>
Status readChunks(const std::string &path, Consume consume) {
  FILE *in = std::fopen(path.c_str(), "rb");
  if (!in)
    return makeError(path, ": cannot open: ", std::strerror(errno));
  std::vector<char> chunk(size_t(1) << 20);
  size_t n;
  while ((n = std::fread(chunk.data(), 1, chunk.size(), in)) > 0)
    consume(chunk.data(), n);
  bool readFailed = std::ferror(in);
  std::fclose(in);
  if (readFailed)
    return makeError(path, ": read error");
  return Status::success();
}

/// Writes `source` (a file, or `contents`) to `dest`, returning its size and
/// SHA-256 in `desc`. A movable source is hashed where it is (unless its
/// writer gave its hash, and its size on disk is the one given) and renamed
/// to `dest`, or, where that fails (another file system), copied.
Status writeOne(const ArtifactFileSource &source, const std::string &dest,
                FileDesc &desc) {
  std::error_code ec;
  fs::create_directories(fs::path(dest).parent_path(), ec);
  if (ec)
    return makeError(dest, ": cannot create the directory: ", ec.message());
  Sha256 hasher;
  uint64_t total = 0;
  auto finish = [&] {
    desc.path = source.path;
    desc.size = total;
    desc.sha256 = Sha256::toHex(hasher.finish());
    return Status::success();
  };
  if (source.movable && !source.sha256.empty()) {
    uint64_t size = fs::file_size(source.sourcePath, ec);
    if (ec)
      return makeError(source.sourcePath, ": ", ec.message());
    if (size != source.size)
      return makeError(source.sourcePath, ": has ", size,
                       " bytes, its writer wrote ", source.size);
    fs::rename(source.sourcePath, dest, ec);
    if (!ec) {
      desc.path = source.path;
      desc.size = source.size;
      desc.sha256 = source.sha256;
      return Status::success();
    }
  } else if (source.movable) {
    JAMBA_CKPT_RETURN_IF_ERROR(
        readChunks(source.sourcePath, [&](const char *data, size_t n) {
          hasher.update(data, n);
          total += n;
        }));
    fs::rename(source.sourcePath, dest, ec);
    if (!ec)
      return finish();
    hasher = Sha256();
    total = 0;
  }
  FILE *out = std::fopen(dest.c_str(), "wb");
  if (!out)
    return makeError(dest, ": cannot create: ", std::strerror(errno));
  bool writeFailed = false;
  auto emit = [&](const char *data, size_t n) {
    hasher.update(data, n);
    total += n;
    writeFailed |= std::fwrite(data, 1, n, out) != n;
  };
  if (source.sourcePath.empty()) {
    emit(source.contents.data(), source.contents.size());
  } else if (Status read = readChunks(source.sourcePath, emit); !read.ok()) {
    std::fclose(out);
    return read;
  }
  if (std::fclose(out) != 0 || writeFailed)
    return makeError(dest, ": write error");
  return finish();
}

/// Replaces the temporary directory's name by the final one in a message.
std::string renameInMessage(std::string message, const std::string &from,
                            const std::string &to) {
  size_t pos = message.find(from);
  if (pos != std::string::npos)
    message.replace(pos, from.size(), to);
  return message;
}

} // namespace

Status rt::checkReplaceable(const std::string &dir) {
  std::error_code ec;
  if (!fs::is_regular_file(fs::path(dir) / kManifestFileName, ec))
    return makeError("exists and is not an artifact (no ", kManifestFileName,
                     "); not replacing it");
  std::error_code targetError, cwdError;
  fs::path target = fs::weakly_canonical(dir, targetError);
  fs::path cwd = fs::current_path(cwdError);
  if (targetError || cwdError)
    return Status::success();
  if (std::mismatch(target.begin(), target.end(), cwd.begin(), cwd.end())
          .first == target.end())
    return makeError("holds the working directory; not replacing it");
  return Status::success();
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  if (!dir.empty())
    fs::remove_all(dir, ec);
}

Status ScratchDir::createBeside(const std::string &artifactDir) {
  std::string base = artifactDir;
  while (base.size() > 1 && base.back() == '/')
    base.pop_back();
  if (base.empty())
    return makeError("an empty artifact directory name");
  std::error_code ec;
  fs::path parent = fs::path(base).parent_path();
  if (!parent.empty())
    fs::create_directories(parent, ec);
  if (ec)
    return makeError(parent.string(),
                     ": cannot create the directory: ", ec.message());
  std::string pattern = base + ".scratch-XXXXXX";
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (!::mkdtemp(buf.data()))
    return makeError(
        pattern, ": cannot create a scratch directory: ", std::strerror(errno));
  dir = buf.data();
  return Status::success();
}

Status rt::writeArtifact(const ArtifactManifest &manifest,
                         const std::string &dir,
                         const std::vector<ArtifactFileSource> &files,
                         const WriteOptions &options) {
  std::string context = "artifact " + dir;
  JAMBA_CKPT_RETURN_IF_ERROR(
      validateManifest(manifest, context, /*checkFiles=*/false));

  std::set<std::string> paths;
  for (const ArtifactFileSource &f : files) {
    if (!isValidArtifactPath(f.path))
      return makeError(context, ": '", f.path,
                       "' is not a valid artifact path");
    if (!paths.insert(f.path).second)
      return makeError(context, ": file '", f.path, "' is given twice");
  }
  for (const KernelDesc &k : manifest.kernels)
    if (!paths.count(k.file))
      return makeError(context, ": kernel '", k.name, "': file '", k.file,
                       "' is not among the files to write");
  for (const WeightDesc &w : manifest.weights)
    if (!paths.count(w.file))
      return makeError(context, ": weight '", w.name, "': file '", w.file,
                       "' is not among the files to write");

  std::error_code ec;
  bool exists = fs::exists(dir, ec);
  if (exists && !options.overwrite)
    return makeError(context, ": already exists");
  if (exists) {
    Status replaceable = checkReplaceable(dir);
    if (!replaceable.ok())
      return makeError(context, ": ", replaceable.message());
  }

  std::string tmp = dir + ".tmp-" + std::to_string(::getpid());
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  if (ec)
    return makeError(context, ": cannot create ", tmp, ": ", ec.message());
  auto fail = [&](Status status) {
    std::error_code ignored;
    fs::remove_all(tmp, ignored);
    return status;
  };

  ArtifactManifest out = manifest;
  out.files.clear();
  for (const ArtifactFileSource &f : files) {
    FileDesc desc;
    Status s = writeOne(f, tmp + "/" + f.path, desc);
    if (!s.ok())
      return fail(makeError(context, ": file '", f.path, "': ", s.message()));
    out.files.push_back(std::move(desc));
  }
  ArtifactFileSource manifestSource =
      ArtifactFileSource::fromBytes(kManifestFileName, writeManifest(out));
  FileDesc ignoredDesc;
  Status s =
      writeOne(manifestSource, tmp + "/" + kManifestFileName, ignoredDesc);
  if (!s.ok())
    return fail(makeError(context, ": ", s.message()));

  // Read it back the way the runtime will (hashes were just computed).
  OpenOptions openOptions;
  openOptions.verifyFileHashes = false;
  StatusOr<std::unique_ptr<Artifact>> check = Artifact::open(tmp, openOptions);
  if (!check.ok())
    return fail(Status::error(
        renameInMessage(check.status().message(), "artifact " + tmp, context)));
  check->reset();

  if (exists) {
    fs::remove_all(dir, ec);
    if (ec)
      return fail(makeError(context, ": cannot replace: ", ec.message()));
  }
  fs::rename(tmp, dir, ec);
  if (ec)
    return fail(
        makeError(context, ": cannot rename ", tmp, ": ", ec.message()));
  return Status::success();
}

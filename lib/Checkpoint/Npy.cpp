//===- Npy.cpp - NumPy .npy files -----------------------------------------===//
//
// Part of jamba-mlir.
//
//===----------------------------------------------------------------------===//

#include "jamba/Checkpoint/Npy.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

using namespace jamba::ckpt;

static const char kMagic[] = "\x93NUMPY";

Status jamba::ckpt::writeNpyF32(const std::string &path,
                                const std::vector<int64_t> &shape,
                                const std::vector<float> &values) {
  int64_t count = 1;
  for (int64_t d : shape)
    count *= d;
  if (count != static_cast<int64_t>(values.size()))
    return makeError(path, ": ", values.size(),
                     " values do not fill the array shape");
  std::ostringstream dict;
  dict << "{'descr': '<f4', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < shape.size(); ++i)
    dict << shape[i] << (shape.size() == 1 || i + 1 < shape.size() ? "," : "")
         << (i + 1 < shape.size() ? " " : "");
  dict << "), }";
  std::string header = dict.str();
  // Magic (6) + version (2) + length (2) + header, padded to 64 with '\n'.
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');

  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out)
    return makeError(path, ": cannot open for writing");
  out.write(kMagic, 6);
  const char version[2] = {1, 0};
  out.write(version, 2);
  const uint16_t len = static_cast<uint16_t>(header.size());
  const char lenBytes[2] = {static_cast<char>(len & 0xff),
                            static_cast<char>(len >> 8)};
  out.write(lenBytes, 2);
  out.write(header.data(), header.size());
  // x86-64 and aarch64 are little-endian, as '<f4' says.
  out.write(reinterpret_cast<const char *>(values.data()),
            values.size() * sizeof(float));
  // A small file is still in the stream's buffer: closing writes it, and
  // its failure (a full disk) is only seen then.
  out.close();
  if (!out)
    return makeError(path, ": write failed");
  return Status::success();
}

Status jamba::ckpt::readNpyF32(const std::string &path,
                               std::vector<int64_t> &shape,
                               std::vector<float> &values) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return makeError(path, ": cannot open");
  char pre[10];
  if (!in.read(pre, 10) || std::memcmp(pre, kMagic, 6) != 0 || pre[6] != 1)
    return makeError(path, ": not a version-1 .npy file");
  size_t len = static_cast<unsigned char>(pre[8]) |
               (static_cast<size_t>(static_cast<unsigned char>(pre[9])) << 8);
  std::string header(len, '\0');
  if (!in.read(header.data(), len))
    return makeError(path, ": truncated header");
  if (header.find("'descr': '<f4'") == std::string::npos ||
      header.find("'fortran_order': False") == std::string::npos)
    return makeError(path, ": only little-endian float32 C-order arrays are "
                           "supported");
  size_t open = header.find("'shape': (");
  size_t close = open == std::string::npos ? open : header.find(')', open);
  if (open == std::string::npos || close == std::string::npos)
    return makeError(path, ": header has no shape");
  // The tuple's items: decimal integers, separated by commas, with a
  // trailing comma allowed ("(3,)", "()"); anything else is refused rather
  // than read as some other number.
  shape.clear();
  std::string dims = header.substr(open + 10, close - open - 10);
  constexpr int64_t kMaxElements = int64_t(1) << 40;
  int64_t count = 1;
  size_t pos = 0;
  while (true) {
    size_t comma = dims.find(',', pos);
    std::string item = dims.substr(
        pos, comma == std::string::npos ? std::string::npos : comma - pos);
    size_t first = item.find_first_not_of(' ');
    bool last = comma == std::string::npos;
    if (first == std::string::npos) {
      // An empty item is the end of "(3,)" or "()", nothing else.
      if (!last)
        return makeError(path, ": bad shape '(", dims, ")'");
      break;
    }
    item = item.substr(first, item.find_last_not_of(' ') + 1 - first);
    if (item.size() > 13 ||
        item.find_first_not_of("0123456789") != std::string::npos)
      return makeError(path, ": bad dimension '", item, "' in shape '(", dims,
                       ")'");
    int64_t d = std::stoll(item);
    shape.push_back(d);
    if (d != 0 && count > kMaxElements / d)
      return makeError(path, ": array too large (shape '(", dims, ")')");
    count *= d;
    if (last)
      break;
    pos = comma + 1;
  }
  // The data must be exactly the array: check the file's size before
  // allocating what the header claims.
  std::streampos dataStart = in.tellg();
  in.seekg(0, std::ios::end);
  std::streampos fileEnd = in.tellg();
  if (dataStart < 0 || fileEnd < dataStart)
    return makeError(path, ": cannot read its size");
  uint64_t dataBytes = static_cast<uint64_t>(fileEnd - dataStart);
  uint64_t needed = static_cast<uint64_t>(count) * sizeof(float);
  if (dataBytes != needed)
    return makeError(path, ": holds ", dataBytes, " bytes of data, but its ",
                     "shape '(", dims, ")' needs ", needed);
  in.seekg(dataStart);
  values.resize(static_cast<size_t>(count));
  if (count > 0 && !in.read(reinterpret_cast<char *>(values.data()),
                            static_cast<std::streamsize>(needed)))
    return makeError(path, ": truncated data");
  return Status::success();
}

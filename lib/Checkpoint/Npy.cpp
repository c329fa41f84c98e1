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
  size_t close = header.find(')', open);
  if (open == std::string::npos || close == std::string::npos)
    return makeError(path, ": header has no shape");
  shape.clear();
  std::string dims = header.substr(open + 10, close - open - 10);
  int64_t count = 1;
  for (size_t pos = 0; pos < dims.size();) {
    size_t comma = dims.find(',', pos);
    std::string item = dims.substr(
        pos, comma == std::string::npos ? std::string::npos : comma - pos);
    if (item.find_first_not_of(' ') != std::string::npos) {
      char *end = nullptr;
      long long d = std::strtoll(item.c_str(), &end, 10);
      if (d < 0 || d > (int64_t(1) << 40))
        return makeError(path, ": bad dimension '", item, "'");
      shape.push_back(d);
      count *= d;
      if (count > (int64_t(1) << 40))
        return makeError(path, ": array too large");
    }
    if (comma == std::string::npos)
      break;
    pos = comma + 1;
  }
  values.resize(count);
  if (!in.read(reinterpret_cast<char *>(values.data()), count * sizeof(float)))
    return makeError(path, ": truncated data");
  return Status::success();
}

//===- SafeTensors.cpp - Reading and writing .safetensors files -----------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//

#include "jamba/Checkpoint/SafeTensors.h"
#include "jamba/Checkpoint/Json.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <future>
#include <limits>
#include <memory>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace jamba;
using namespace jamba::ckpt;

//===----------------------------------------------------------------------===//
// DType
//===----------------------------------------------------------------------===//

namespace {
struct DTypeEntry {
  DType dtype;
  const char *name;
  size_t size;
  bool isFloat;
};
constexpr DTypeEntry kDTypes[] = {
    {DType::F64, "F64", 8, true},  {DType::F32, "F32", 4, true},
    {DType::F16, "F16", 2, true},  {DType::BF16, "BF16", 2, true},
    {DType::I64, "I64", 8, false}, {DType::I32, "I32", 4, false},
    {DType::I16, "I16", 2, false}, {DType::I8, "I8", 1, false},
    {DType::U8, "U8", 1, false},   {DType::BOOL, "BOOL", 1, false},
};

const DTypeEntry &entryFor(DType dtype) {
  for (const DTypeEntry &e : kDTypes)
    if (e.dtype == dtype)
      return e;
  return kDTypes[1]; // Unreachable for valid enumerators.
}
} // namespace

const char *jamba::ckpt::dtypeName(DType dtype) { return entryFor(dtype).name; }

std::optional<DType> jamba::ckpt::parseDType(std::string_view name) {
  for (const DTypeEntry &e : kDTypes)
    if (name == e.name)
      return e.dtype;
  return std::nullopt;
}

size_t jamba::ckpt::dtypeSize(DType dtype) { return entryFor(dtype).size; }

bool jamba::ckpt::isFloatingPoint(DType dtype) {
  return entryFor(dtype).isFloat;
}

//===----------------------------------------------------------------------===//
// Float conversions
//===----------------------------------------------------------------------===//

static uint32_t floatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

static float bitsFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

float jamba::ckpt::bf16ToF32(uint16_t bits) {
  return bitsFloat(static_cast<uint32_t>(bits) << 16);
}

uint16_t jamba::ckpt::f32ToBf16(float value) {
  uint32_t x = floatBits(value);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) {
    // NaN: keep sign and the top payload bits, force the quiet bit so that a
    // payload living only in the low bits does not become infinity.
    return static_cast<uint16_t>((x >> 16) | 0x0040u);
  }
  // Round to nearest, ties to even. Overflow correctly carries into the
  // exponent (and up to infinity).
  uint32_t lsb = (x >> 16) & 1u;
  x += 0x7FFFu + lsb;
  return static_cast<uint16_t>(x >> 16);
}

void jamba::ckpt::f32ToBf16Bytes(const float *values, size_t count,
                                 uint8_t *dst) {
  // f32ToBf16 without branches: both results, then a select.
  for (size_t i = 0; i < count; ++i) {
    uint32_t x;
    std::memcpy(&x, values + i, 4);
    uint32_t rounded = (x + 0x7FFFu + ((x >> 16) & 1u)) >> 16;
    uint32_t quietNaN = (x >> 16) | 0x0040u;
    uint16_t h = static_cast<uint16_t>(
        (x & 0x7FFFFFFFu) > 0x7F800000u ? quietNaN : rounded);
    dst[2 * i] = static_cast<uint8_t>(h);
    dst[2 * i + 1] = static_cast<uint8_t>(h >> 8);
  }
}

float jamba::ckpt::f16ToF32(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t mant = h & 0x3FFu;
  if (exp == 0x1F) // Inf / NaN.
    return bitsFloat(sign | 0x7F800000u | (mant << 13));
  if (exp != 0)
    return bitsFloat(sign | ((exp + 127 - 15) << 23) | (mant << 13));
  if (mant == 0)
    return bitsFloat(sign);
  // Subnormal: mant * 2^-24, exact in float.
  float v = std::ldexp(static_cast<float>(mant), -24);
  return sign ? -v : v;
}

uint16_t jamba::ckpt::f32ToF16(float value) {
  uint32_t x = floatBits(value);
  uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  x &= 0x7FFFFFFFu;
  if (x > 0x7F800000u) // NaN: quiet, keep the top payload bits.
    return sign | 0x7E00u | static_cast<uint16_t>((x >> 13) & 0x3FFu);
  if (x >= 0x477FF000u) // >= 65520 rounds to infinity (ties to even).
    return sign | 0x7C00u;
  if (x >= 0x38800000u) {
    // Normal half: rebias the exponent, round the 13 dropped bits to even.
    uint32_t r = x + 0xFFFu + ((x >> 13) & 1u);
    r -= uint32_t(127 - 15) << 23;
    return sign | static_cast<uint16_t>(r >> 13);
  }
  if (x <= 0x33000000u) // <= 2^-25: rounds to zero (the tie goes to even 0).
    return sign;
  // Subnormal half: value * 2^24 rounded to an integer, ties to even.
  uint32_t exp = x >> 23;                      // In [102, 112].
  uint32_t mant = (x & 0x7FFFFFu) | 0x800000u; // Implicit bit.
  uint32_t shift = 126 - exp;                  // In [14, 24].
  uint32_t result = mant >> shift;
  uint32_t rem = mant & ((1u << shift) - 1);
  uint32_t half = 1u << (shift - 1);
  if (rem > half || (rem == half && (result & 1u)))
    ++result; // May carry into the smallest normal (0x0400), which is right.
  return sign | static_cast<uint16_t>(result);
}

//===----------------------------------------------------------------------===//
// Shapes
//===----------------------------------------------------------------------===//

bool jamba::ckpt::computeByteSize(const std::vector<int64_t> &shape,
                                  size_t elementSize, uint64_t &numElements,
                                  uint64_t &nbytes) {
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0)
      return false;
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n))
      return false;
  }
  uint64_t b;
  if (__builtin_mul_overflow(n, static_cast<uint64_t>(elementSize), &b))
    return false;
  // Keep everything representable as int64 / size_t.
  if (n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
      b > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    return false;
  numElements = n;
  nbytes = b;
  return true;
}

int64_t TensorInfo::numElements() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d; // Validated on open: cannot overflow.
  return n;
}

std::string jamba::ckpt::formatShape(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i)
      s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

//===----------------------------------------------------------------------===//
// SafeTensorsFile
//===----------------------------------------------------------------------===//

SafeTensorsFile::~SafeTensorsFile() {
  if (mapping)
    ::munmap(mapping, mappingSize);
}

const TensorInfo *SafeTensorsFile::find(std::string_view name) const {
  auto it = index.find(std::string(name));
  return it == index.end() ? nullptr : &tensorList[it->second];
}

std::vector<std::string> SafeTensorsFile::names() const {
  std::vector<std::string> result;
  result.reserve(tensorList.size());
  for (const TensorInfo &t : tensorList)
    result.push_back(t.name);
  return result;
}

namespace {

/// Parses `value` as a JSON array of non-negative integers.
bool readIntArray(const JsonValue &value, std::vector<int64_t> &out,
                  std::string &why) {
  if (!value.isArray()) {
    why = concat("expected an array of integers, got ", value.kindName());
    return false;
  }
  out.clear();
  for (const JsonValue &e : value.getArray()) {
    if (!e.isInteger()) {
      why = concat("expected an array of integers, found a ",
                   e.isNumber() ? "non-integer number" : e.kindName());
      return false;
    }
    out.push_back(e.getInt());
  }
  return true;
}

/// Validates one header entry and fills `info` (data pointer excluded).
Status parseTensorEntry(const std::string &path, const std::string &name,
                        const JsonValue &entry, uint64_t dataSize,
                        TensorInfo &info, uint64_t &begin, uint64_t &end) {
  auto fail = [&](auto &&...parts) {
    return makeError(path, ": tensor '", name, "': ", parts...);
  };
  if (!entry.isObject())
    return fail("expected an object, got ", entry.kindName());
  info.name = name;

  const JsonValue *dtype = entry.get("dtype");
  if (!dtype)
    return fail("missing 'dtype'");
  if (!dtype->isString())
    return fail("'dtype' must be a string, got ", dtype->kindName());
  std::optional<DType> dt = parseDType(dtype->getString());
  if (!dt)
    return fail("unsupported dtype '", dtype->getString(), "'");
  info.dtype = *dt;

  const JsonValue *shape = entry.get("shape");
  if (!shape)
    return fail("missing 'shape'");
  std::string why;
  if (!readIntArray(*shape, info.shape, why))
    return fail("'shape': ", why);
  for (size_t i = 0; i < info.shape.size(); ++i)
    if (info.shape[i] < 0)
      return fail("shape ", formatShape(info.shape),
                  " has a negative dimension");

  const JsonValue *offsets = entry.get("data_offsets");
  if (!offsets)
    return fail("missing 'data_offsets'");
  std::vector<int64_t> range;
  if (!readIntArray(*offsets, range, why))
    return fail("'data_offsets': ", why);
  if (range.size() != 2)
    return fail("'data_offsets' must have 2 elements, got ", range.size());
  if (range[0] < 0 || range[1] < 0)
    return fail("'data_offsets' ", formatShape(range), " are negative");
  if (range[0] > range[1])
    return fail("'data_offsets' ", formatShape(range),
                " have begin greater than end");
  begin = static_cast<uint64_t>(range[0]);
  end = static_cast<uint64_t>(range[1]);
  if (end > dataSize)
    return fail("'data_offsets' ", formatShape(range),
                " extend past the end of the data section (", dataSize,
                " bytes)");

  uint64_t numel = 0, nbytes = 0;
  if (!computeByteSize(info.shape, dtypeSize(info.dtype), numel, nbytes))
    return fail("shape ", formatShape(info.shape), " is too large");
  if (end - begin != nbytes)
    return fail("'data_offsets' ", formatShape(range), " span ", end - begin,
                " bytes but shape ", formatShape(info.shape), " of ",
                dtypeName(info.dtype), " needs ", nbytes);
  info.nbytes = static_cast<size_t>(nbytes);
  return Status::success();
}

} // namespace

StatusOr<std::unique_ptr<SafeTensorsFile>>
SafeTensorsFile::open(const std::string &path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return makeError(path, ": cannot open: ", std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return makeError(path, ": cannot stat: ", std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return makeError(path, ": not a regular file");
  }
  uint64_t fileSize = static_cast<uint64_t>(st.st_size);
  if (fileSize == 0) {
    ::close(fd);
    return makeError(path, ": file is empty (not a safetensors file)");
  }
  if (fileSize < 8) {
    ::close(fd);
    return makeError(path, ": file is truncated: ", fileSize,
                     " bytes cannot hold the 8-byte header length");
  }
  void *map = ::mmap(nullptr, fileSize, PROT_READ, MAP_PRIVATE, fd, 0);
  int mapErr = errno;
  ::close(fd);
  if (map == MAP_FAILED)
    return makeError(path, ": cannot map: ", std::strerror(mapErr));

  std::unique_ptr<SafeTensorsFile> file(new SafeTensorsFile());
  file->filePath = path;
  file->mapping = map;
  file->mappingSize = static_cast<size_t>(fileSize);
  const uint8_t *bytes = static_cast<const uint8_t *>(map);

  uint64_t headerSize = 0;
  for (int i = 7; i >= 0; --i)
    headerSize = (headerSize << 8) | bytes[i];
  if (headerSize > fileSize - 8)
    return makeError(path, ": header length ", headerSize,
                     " extends past the end of the file (", fileSize,
                     " bytes)");
  if (headerSize > kMaxHeaderSize)
    return makeError(path, ": header length ", headerSize,
                     " exceeds the limit of ", kMaxHeaderSize, " bytes");

  std::string_view headerText(reinterpret_cast<const char *>(bytes + 8),
                              static_cast<size_t>(headerSize));
  StatusOr<JsonValue> header =
      parseJson(headerText, concat(path, ": safetensors header"));
  if (!header.ok())
    return header.status();
  if (!header->isObject())
    return makeError(path, ": safetensors header must be a JSON object, got ",
                     header->kindName());

  const uint8_t *data = bytes + 8 + headerSize;
  uint64_t dataSize = fileSize - 8 - headerSize;
  std::vector<std::pair<uint64_t, uint64_t>> ranges; // begin, end
  std::vector<size_t> rangeOwner;
  for (const JsonValue::Member &m : header->getObject()) {
    if (m.first == "__metadata__") {
      if (!m.second.isObject())
        return makeError(path,
                         ": '__metadata__' must be an object of strings, "
                         "got ",
                         m.second.kindName());
      for (const JsonValue::Member &kv : m.second.getObject()) {
        if (!kv.second.isString())
          return makeError(path, ": '__metadata__' key '", kv.first,
                           "': expected a string, got ", kv.second.kindName());
        file->meta.emplace_back(kv.first, kv.second.getString());
      }
      continue;
    }
    TensorInfo info;
    uint64_t begin = 0, end = 0;
    Status st =
        parseTensorEntry(path, m.first, m.second, dataSize, info, begin, end);
    if (!st.ok())
      return st;
    info.data = data + begin;
    if (begin != end) {
      ranges.emplace_back(begin, end);
      rangeOwner.push_back(file->tensorList.size());
    }
    // Duplicate names cannot reach here: the JSON parser rejects duplicate
    // keys. Keep the check anyway so the invariant is local.
    if (!file->index.emplace(info.name, file->tensorList.size()).second)
      return makeError(path, ": duplicate tensor '", info.name, "'");
    file->tensorList.push_back(std::move(info));
  }

  // No two non-empty tensors may share bytes.
  std::vector<size_t> order(ranges.size());
  for (size_t i = 0; i < order.size(); ++i)
    order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return ranges[a] != ranges[b] ? ranges[a] < ranges[b] : a < b;
  });
  for (size_t i = 1; i < order.size(); ++i) {
    const auto &prev = ranges[order[i - 1]];
    const auto &cur = ranges[order[i]];
    if (cur.first < prev.second) {
      const TensorInfo &a = file->tensorList[rangeOwner[order[i - 1]]];
      const TensorInfo &b = file->tensorList[rangeOwner[order[i]]];
      return makeError(path, ": tensors '", a.name, "' (data_offsets [",
                       prev.first, ", ", prev.second, "]) and '", b.name,
                       "' (data_offsets [", cur.first, ", ", cur.second,
                       "]) overlap");
    }
  }
  // Nor may bytes belong to no tensor: the tensors cover the data section
  // exactly, from 0 (as the safetensors library requires; a hole or
  // trailing bytes mean a damaged or foreign file).
  uint64_t covered = 0;
  for (size_t i : order) {
    if (ranges[i].first != covered)
      return makeError(path, ": bytes [", covered, ", ", ranges[i].first,
                       ") of the data section belong to no tensor");
    covered = ranges[i].second;
  }
  if (covered != dataSize)
    return makeError(path, ": ", dataSize - covered,
                     " bytes after the last tensor's data (the data section "
                     "has ",
                     dataSize, " bytes, the tensors cover ", covered, ")");
  return file;
}

//===----------------------------------------------------------------------===//
// Conversion to float / double
//===----------------------------------------------------------------------===//

/// True for the dtypes convertToF32/F64 accept: the floating-point types and
/// I8 (int8 weights of ExpertsInt8 checkpoints, converted exactly).
static bool isConvertible(DType dtype) {
  return isFloatingPoint(dtype) || dtype == DType::I8;
}

template <class T>
static Status convertRange(const TensorInfo &t, size_t first, size_t count,
                           T *out) {
  if (!isConvertible(t.dtype))
    return makeError("tensor '", t.name, "': dtype ", dtypeName(t.dtype),
                     " cannot be converted to float (expected F32, F16, BF16, "
                     "F64 or I8)");
  size_t esize = dtypeSize(t.dtype);
  size_t numel = t.nbytes / esize;
  if (first > numel || count > numel - first)
    return makeError("tensor '", t.name, "': element range [", first, ", ",
                     first + count, ") is outside its ", numel, " elements");
  const uint8_t *p = t.data + first * esize;
  switch (t.dtype) {
  case DType::F32:
    for (size_t i = 0; i < count; ++i) {
      float v;
      std::memcpy(&v, p + 4 * i, 4);
      out[i] = static_cast<T>(v);
    }
    break;
  case DType::F64:
    for (size_t i = 0; i < count; ++i) {
      double v;
      std::memcpy(&v, p + 8 * i, 8);
      out[i] = static_cast<T>(v);
    }
    break;
  case DType::BF16:
    for (size_t i = 0; i < count; ++i) {
      uint16_t v;
      std::memcpy(&v, p + 2 * i, 2);
      out[i] = static_cast<T>(bf16ToF32(v));
    }
    break;
  case DType::F16:
    for (size_t i = 0; i < count; ++i) {
      uint16_t v;
      std::memcpy(&v, p + 2 * i, 2);
      out[i] = static_cast<T>(f16ToF32(v));
    }
    break;
  case DType::I8:
    for (size_t i = 0; i < count; ++i)
      out[i] = static_cast<T>(static_cast<int8_t>(p[i]));
    break;
  default:
    break;
  }
  return Status::success();
}

Status jamba::ckpt::convertToF32(const TensorInfo &tensor, size_t first,
                                 size_t count, float *out) {
  return convertRange(tensor, first, count, out);
}

Status jamba::ckpt::convertToF64(const TensorInfo &tensor, size_t first,
                                 size_t count, double *out) {
  return convertRange(tensor, first, count, out);
}

Status jamba::ckpt::readAsF32(const TensorInfo &tensor,
                              std::vector<float> &out) {
  size_t n = tensor.nbytes / dtypeSize(tensor.dtype);
  out.assign(isConvertible(tensor.dtype) ? n : 0, 0.0f);
  return convertRange(tensor, 0, out.size(), out.data());
}

Status jamba::ckpt::readAsF64(const TensorInfo &tensor,
                              std::vector<double> &out) {
  size_t n = tensor.nbytes / dtypeSize(tensor.dtype);
  out.assign(isConvertible(tensor.dtype) ? n : 0, 0.0);
  return convertRange(tensor, 0, out.size(), out.data());
}

//===----------------------------------------------------------------------===//
// SafeTensorsWriter
//===----------------------------------------------------------------------===//

Status SafeTensorsWriter::checkNew(const std::string &name, DType dtype,
                                   const std::vector<int64_t> &shape,
                                   uint64_t &nbytes) const {
  if (name.empty())
    return makeError("safetensors writer: empty tensor name");
  if (name == "__metadata__")
    return makeError("safetensors writer: '__metadata__' is reserved");
  if (names.count(name))
    return makeError("safetensors writer: duplicate tensor '", name, "'");
  uint64_t numel = 0;
  if (!computeByteSize(shape, dtypeSize(dtype), numel, nbytes))
    return makeError("safetensors writer: tensor '", name, "': shape ",
                     formatShape(shape), " is negative or too large");
  uint64_t total;
  if (__builtin_add_overflow(totalBytes, nbytes, &total))
    return makeError("safetensors writer: total size overflows");
  return Status::success();
}

Status SafeTensorsWriter::add(const std::string &name, DType dtype,
                              const std::vector<int64_t> &shape,
                              std::string_view bytes) {
  uint64_t nbytes = 0;
  JAMBA_CKPT_RETURN_IF_ERROR(checkNew(name, dtype, shape, nbytes));
  if (bytes.size() != nbytes)
    return makeError("safetensors writer: tensor '", name, "': got ",
                     bytes.size(), " bytes but shape ", formatShape(shape),
                     " of ", dtypeName(dtype), " needs ", nbytes);
  names.emplace(name, entries.size());
  entries.push_back(
      Entry{name, dtype, shape, totalBytes, nbytes, std::string(bytes), {}});
  totalBytes += nbytes;
  return Status::success();
}

Status SafeTensorsWriter::addFloats(const std::string &name, DType dtype,
                                    const std::vector<int64_t> &shape,
                                    const std::vector<float> &values) {
  if (!isFloatingPoint(dtype))
    return makeError("safetensors writer: tensor '", name,
                     "': addFloats "
                     "needs a floating-point dtype, got ",
                     dtypeName(dtype));
  std::string bytes(values.size() * dtypeSize(dtype), '\0');
  char *p = bytes.data();
  for (size_t i = 0; i < values.size(); ++i) {
    switch (dtype) {
    case DType::F32:
      std::memcpy(p + 4 * i, &values[i], 4);
      break;
    case DType::F64: {
      double d = values[i];
      std::memcpy(p + 8 * i, &d, 8);
      break;
    }
    case DType::BF16:
    case DType::F16: {
      uint16_t h =
          dtype == DType::BF16 ? f32ToBf16(values[i]) : f32ToF16(values[i]);
      std::memcpy(p + 2 * i, &h, 2);
      break;
    }
    default:
      break;
    }
  }
  return add(name, dtype, shape, bytes);
}

Status SafeTensorsWriter::addLazy(const std::string &name, DType dtype,
                                  const std::vector<int64_t> &shape,
                                  Producer producer) {
  uint64_t nbytes = 0;
  JAMBA_CKPT_RETURN_IF_ERROR(checkNew(name, dtype, shape, nbytes));
  if (!producer)
    return makeError("safetensors writer: tensor '", name, "': empty producer");
  names.emplace(name, entries.size());
  entries.push_back(Entry{name, dtype, shape, totalBytes, nbytes, std::string(),
                          std::move(producer)});
  totalBytes += nbytes;
  return Status::success();
}

void SafeTensorsWriter::setMetadata(const std::string &key,
                                    const std::string &value) {
  for (auto &kv : meta) {
    if (kv.first == key) {
      kv.second = value;
      return;
    }
  }
  meta.emplace_back(key, value);
}

std::string SafeTensorsWriter::headerJson() const {
  JsonValue header = JsonValue::makeObject();
  if (!meta.empty()) {
    JsonValue m = JsonValue::makeObject();
    for (const auto &kv : meta)
      m.set(kv.first, JsonValue::makeString(kv.second));
    header.set("__metadata__", std::move(m));
  }
  for (const Entry &e : entries) {
    JsonValue t = JsonValue::makeObject();
    t.set("dtype", JsonValue::makeString(dtypeName(e.dtype)));
    JsonValue shape = JsonValue::makeArray();
    for (int64_t d : e.shape)
      shape.push(JsonValue::makeInt(d));
    t.set("shape", std::move(shape));
    JsonValue offsets = JsonValue::makeArray();
    offsets.push(JsonValue::makeInt(static_cast<int64_t>(e.offset)));
    offsets.push(JsonValue::makeInt(static_cast<int64_t>(e.offset + e.nbytes)));
    t.set("data_offsets", std::move(offsets));
    // Entries are unique by construction; append without a lookup.
    header.getObject().emplace_back(e.name, std::move(t));
  }
  std::string text = writeJson(header);
  // Pad with spaces so that the data section starts 8-byte aligned.
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

namespace {
/// Writes all of `size` bytes to `fd`, retrying on EINTR and short writes.
bool writeAll(int fd, const void *buf, size_t size) {
  const char *p = static_cast<const char *>(buf);
  while (size > 0) {
    ssize_t n = ::write(fd, p, size);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return false;
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}
} // namespace

Status SafeTensorsWriter::write(const std::string &path,
                                const ByteSink &sink) const {
  return writeFiles({this}, {path}, {sink});
}

Status SafeTensorsWriter::writeFiles(
    const std::vector<const SafeTensorsWriter *> &writers,
    const std::vector<std::string> &paths, const std::vector<ByteSink> &sinks) {
  if (writers.size() != paths.size() ||
      (!sinks.empty() && sinks.size() != paths.size()))
    return makeError("internal error: ", writers.size(), " writers and ",
                     sinks.size(), " sinks for ", paths.size(), " paths");
  // Each file goes to PATH.tmp, renamed into place once all are written.
  struct Output {
    std::string tmpPath;
    int fd = -1;
  };
  std::vector<Output> outputs(paths.size());
  // Writes to file f, its sink seeing the bytes. A large write's sink runs
  // on a thread of its own while the kernel copies the bytes.
  auto emit = [&](size_t f, const void *data, size_t size) {
    const uint8_t *bytes = static_cast<const uint8_t *>(data);
    if (sinks.empty() || !sinks[f])
      return writeAll(outputs[f].fd, data, size);
    if (size < (size_t(1) << 20)) {
      sinks[f](bytes, size);
      return writeAll(outputs[f].fd, data, size);
    }
    std::future<void> seen =
        std::async(std::launch::async, sinks[f], bytes, size);
    bool written = writeAll(outputs[f].fd, data, size);
    seen.get();
    return written;
  };
  auto removeAll = [&]() {
    for (Output &o : outputs) {
      if (o.fd >= 0)
        ::close(o.fd);
      o.fd = -1;
      if (!o.tmpPath.empty())
        ::unlink(o.tmpPath.c_str());
    }
  };
  auto failWith = [&](size_t file, const char *what) {
    int err = errno;
    removeAll();
    return makeError(outputs[file].tmpPath, ": ", what, ": ",
                     std::strerror(err));
  };
  for (size_t f = 0; f < paths.size(); ++f) {
    Output &o = outputs[f];
    std::string tmpPath = paths[f] + ".tmp";
    o.fd =
        ::open(tmpPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (o.fd < 0) {
      int err = errno;
      removeAll();
      return makeError(tmpPath, ": cannot create: ", std::strerror(err));
    }
    o.tmpPath = std::move(tmpPath);
    std::string header = writers[f]->headerJson();
    uint8_t lengthBytes[8];
    uint64_t len = header.size();
    for (int i = 0; i < 8; ++i)
      lengthBytes[i] = static_cast<uint8_t>(len >> (8 * i));
    if (!emit(f, lengthBytes, 8) || !emit(f, header.data(), header.size()))
      return failWith(f, "write failed");
  }

  // The tensors in rounds: every file's first, then every file's second...
  struct Step {
    size_t file;
    const Entry *entry;
  };
  std::vector<Step> steps;
  size_t rounds = 0;
  for (const SafeTensorsWriter *w : writers)
    rounds = std::max(rounds, w->entries.size());
  for (size_t t = 0; t < rounds; ++t)
    for (size_t f = 0; f < writers.size(); ++f)
      if (t < writers[f]->entries.size())
        steps.push_back({f, &writers[f]->entries[t]});

  // The lazy tensors are produced one at a time, in that order, on a second
  // thread, each while the one before it is written: a producer's reading
  // and converting overlaps the kernel's copy of the previous tensor into
  // the page cache. Two buffers, each kept at the size of the largest
  // tensor it held.
  struct Buffer {
    std::unique_ptr<uint8_t[]> data;
    size_t capacity = 0;
    uint8_t *reserve(size_t n) {
      if (n > capacity) {
        data.reset(); // Freed before the larger one is allocated.
        data.reset(new uint8_t[n]);
        capacity = n;
      }
      return data.get();
    }
  };
  Buffer buffers[2];
  auto nextLazy = [&](size_t from) {
    while (from < steps.size() && !steps[from].entry->producer)
      ++from;
    return from;
  };
  auto produce = [&](size_t index, Buffer &buffer) {
    const Entry &e = *steps[index].entry;
    size_t n = static_cast<size_t>(e.nbytes);
    e.producer(buffer.reserve(n), n);
  };
  // Declared after the buffers: destroying it waits for the production
  // into them (an early return after a failed write).
  std::future<void> pending;
  size_t producing = nextLazy(0);
  int filling = 0;
  if (producing < steps.size())
    pending = std::async(std::launch::async, produce, producing,
                         std::ref(buffers[filling]));
  for (size_t i = 0; i < steps.size(); ++i) {
    const Entry &e = *steps[i].entry;
    const size_t file = steps[i].file;
    if (!e.producer) {
      if (!emit(file, e.bytes.data(), e.bytes.size()))
        return failWith(steps[i].file, "write failed");
      continue;
    }
    pending.get(); // Step i, in buffers[filling].
    Buffer &ready = buffers[filling];
    filling ^= 1;
    producing = nextLazy(i + 1);
    if (producing < steps.size())
      pending = std::async(std::launch::async, produce, producing,
                           std::ref(buffers[filling]));
    if (!emit(file, ready.data.get(), static_cast<size_t>(e.nbytes)))
      return failWith(steps[i].file, "write failed");
  }
  for (size_t f = 0; f < outputs.size(); ++f) {
    Output &o = outputs[f];
    if (::fsync(o.fd) != 0)
      return failWith(f, "fsync failed");
    int closed = ::close(o.fd);
    o.fd = -1;
    if (closed != 0)
      return failWith(f, "close failed");
  }
  for (size_t f = 0; f < outputs.size(); ++f) {
    if (::rename(outputs[f].tmpPath.c_str(), paths[f].c_str()) != 0) {
      int err = errno;
      std::string from = outputs[f].tmpPath;
      // The files renamed already stay; the others are removed.
      for (size_t g = 0; g < f; ++g)
        outputs[g].tmpPath.clear();
      removeAll();
      return makeError(paths[f], ": cannot rename from ", from, ": ",
                       std::strerror(err));
    }
  }
  return Status::success();
}

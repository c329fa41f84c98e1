//===- SafeTensors.h - Reading and writing .safetensors files --*- C++ -*-===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// The Hugging Face safetensors format: an 8-byte little-endian header length
// N, N bytes of JSON header (`{"name": {"dtype": "F32", "shape": [..],
// "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}}`), then the
// raw little-endian tensor data; offsets are relative to the start of the
// data section.
//
// The reader maps the file read-only and validates the whole header before
// handing out any tensor: afterwards every TensorInfo's [data, data + nbytes)
// lies inside the mapping. (As with any mmap reader, a file truncated by
// another process while mapped can still raise SIGBUS; that is outside what a
// reader can check.)
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_CHECKPOINT_SAFETENSORS_H
#define JAMBA_CHECKPOINT_SAFETENSORS_H

#include "jamba/Checkpoint/Status.h"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace jamba {
namespace ckpt {

//===----------------------------------------------------------------------===//
// DType
//===----------------------------------------------------------------------===//

/// The safetensors element types this project reads and writes.
enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

/// The safetensors spelling: "F64", "F32", "F16", "BF16", "I64", ... "BOOL".
const char *dtypeName(DType dtype);
/// Parses a safetensors dtype name; nullopt for unknown names.
std::optional<DType> parseDType(std::string_view name);
/// Bytes per element.
size_t dtypeSize(DType dtype);
/// True for F64, F32, F16 and BF16.
bool isFloatingPoint(DType dtype);

//===----------------------------------------------------------------------===//
// Float conversions
//===----------------------------------------------------------------------===//

/// bfloat16 bits -> float (exact).
float bf16ToF32(uint16_t bits);
/// float -> bfloat16 bits, rounding to nearest with ties to even; NaN stays a
/// (quiet) NaN with its sign, infinities stay infinite.
uint16_t f32ToBf16(float value);
/// f32ToBf16 of `count` floats, little-endian into `dst` (2 * count bytes, no
/// alignment needed): the same bits, in a loop the compiler vectorizes.
void f32ToBf16Bytes(const float *values, size_t count, uint8_t *dst);
/// IEEE binary16 bits -> float (exact, subnormals included).
float f16ToF32(uint16_t bits);
/// float -> IEEE binary16 bits, round to nearest even; overflow goes to
/// infinity, tiny values to (signed) zero or a subnormal; NaN stays NaN.
uint16_t f32ToF16(float value);

//===----------------------------------------------------------------------===//
// Reading
//===----------------------------------------------------------------------===//

/// One tensor of an open file. `data` points into the file mapping and stays
/// valid while the SafeTensorsFile lives. Data may be unaligned.
struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const uint8_t *data = nullptr;
  size_t nbytes = 0;

  /// Product of the dimensions (1 for a scalar).
  int64_t numElements() const;
};

/// Formats a shape as "[2, 3]" for messages.
std::string formatShape(const std::vector<int64_t> &shape);

/// A validated, memory-mapped safetensors file.
class SafeTensorsFile {
public:
  /// The largest header accepted (100 MiB).
  static constexpr uint64_t kMaxHeaderSize = uint64_t(100) << 20;

  /// Maps and validates the file at `path`. Every problem (I/O, header
  /// length, JSON syntax, dtype, shape, offsets, overlaps, duplicate names)
  /// is returned as an error that names the file and, when relevant, the
  /// tensor.
  static StatusOr<std::unique_ptr<SafeTensorsFile>>
  open(const std::string &path);

  ~SafeTensorsFile();
  SafeTensorsFile(const SafeTensorsFile &) = delete;
  SafeTensorsFile &operator=(const SafeTensorsFile &) = delete;

  const std::string &path() const { return filePath; }
  /// The tensor called `name`, or nullptr.
  const TensorInfo *find(std::string_view name) const;
  /// All tensors, in header order.
  const std::vector<TensorInfo> &tensors() const { return tensorList; }
  /// Tensor names in header order.
  std::vector<std::string> names() const;
  /// The `__metadata__` map, in header order (empty if absent).
  const std::vector<std::pair<std::string, std::string>> &metadata() const {
    return meta;
  }

private:
  SafeTensorsFile() = default;

  std::string filePath;
  void *mapping = nullptr;
  size_t mappingSize = 0;
  std::vector<TensorInfo> tensorList;
  std::unordered_map<std::string, size_t> index;
  std::vector<std::pair<std::string, std::string>> meta;
};

/// Converts a floating-point tensor (F32, F16, BF16 or F64) or an I8 tensor
/// (the int8 weights of an ExpertsInt8 checkpoint; exact) to float / double.
/// Other dtypes are an error naming the tensor.
Status readAsF32(const TensorInfo &tensor, std::vector<float> &out);
Status readAsF64(const TensorInfo &tensor, std::vector<double> &out);

/// Converts elements [first, first + count) of an F32, F16, BF16, F64 or I8
/// tensor into `out` (which must have room for `count` values). Fails for
/// other dtypes and for a range outside the tensor.
Status convertToF32(const TensorInfo &tensor, size_t first, size_t count,
                    float *out);
Status convertToF64(const TensorInfo &tensor, size_t first, size_t count,
                    double *out);

//===----------------------------------------------------------------------===//
// Writing
//===----------------------------------------------------------------------===//

/// Builds a safetensors file: tensors are stored contiguously in insertion
/// order after a JSON header padded with spaces to a multiple of 8 bytes. The
/// file is written to `path + ".tmp"` and renamed into place, so a reader
/// never sees a partial file under the final name.
class SafeTensorsWriter {
public:
  /// Fills `dst` (exactly the tensor's byte size, holding unspecified bytes)
  /// when the file is written. Producers run one at a time, in the order
  /// write() (or writeFiles()) visits the tensors, on a thread of its own
  /// (not the caller's), each while the previous tensor is written.
  using Producer = std::function<void(uint8_t *dst, size_t nbytes)>;

  /// Adds a tensor whose bytes are copied now. `bytes.size()` must equal
  /// numel * dtypeSize(dtype).
  Status add(const std::string &name, DType dtype,
             const std::vector<int64_t> &shape, std::string_view bytes);
  Status add(const std::string &name, DType dtype,
             const std::vector<int64_t> &shape,
             const std::vector<uint8_t> &bytes) {
    return add(name, dtype, shape,
               std::string_view(reinterpret_cast<const char *>(bytes.data()),
                                bytes.size()));
  }
  /// Convenience: adds F32 data (stored as `dtype`, converting from float;
  /// dtype must be F32, F16, BF16 or F64).
  Status addFloats(const std::string &name, DType dtype,
                   const std::vector<int64_t> &shape,
                   const std::vector<float> &values);
  /// Adds a tensor whose bytes are produced at write time, so a large
  /// checkpoint can be written holding one tensor at a time.
  Status addLazy(const std::string &name, DType dtype,
                 const std::vector<int64_t> &shape, Producer producer);

  /// Adds or replaces a `__metadata__` entry.
  void setMetadata(const std::string &key, const std::string &value);

  /// Number of tensors added and their total data size in bytes.
  size_t size() const { return entries.size(); }
  uint64_t dataBytes() const { return totalBytes; }

  /// Sees every byte written to one file, in order, as it is written (to
  /// hash the file without reading it back).
  using ByteSink = std::function<void(const uint8_t *data, size_t size)>;

  /// Writes the file. Errors name the path. Holds at most two lazy
  /// tensors' bytes at once (besides what the producers hold). `sink`, if
  /// set, sees the file's bytes.
  Status write(const std::string &path, const ByteSink &sink = nullptr) const;

  /// Writes `writers[i]` to `paths[i]`, each file as write() writes it, in
  /// rounds: every file's first tensor, then every file's second, and so
  /// on, one producer at a time as in write(). Producers of the same tensor
  /// for several files (the ranks of a sharded model) thus run one after
  /// another and can share one load of it. `sinks`, empty or one per file
  /// (each may be empty), see the files' bytes in order, one call at a time
  /// (a large tensor's on a thread of its own, while it is written).
  /// After an error no file of this call is left (but those already renamed
  /// into place when a rename fails); the error names the path.
  static Status
  writeFiles(const std::vector<const SafeTensorsWriter *> &writers,
             const std::vector<std::string> &paths,
             const std::vector<ByteSink> &sinks = {});

  /// Returns the complete header (length prefix excluded) that write() emits,
  /// padding included.
  std::string headerJson() const;

private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    uint64_t offset;
    uint64_t nbytes;
    std::string bytes; ///< Used when producer is empty.
    Producer producer;
  };
  Status checkNew(const std::string &name, DType dtype,
                  const std::vector<int64_t> &shape, uint64_t &nbytes) const;

  std::vector<Entry> entries;
  std::unordered_map<std::string, size_t> names;
  std::vector<std::pair<std::string, std::string>> meta;
  uint64_t totalBytes = 0;
};

/// Computes numel * elementSize for `shape`, returning false on a negative
/// dimension or on overflow of 64 bits.
bool computeByteSize(const std::vector<int64_t> &shape, size_t elementSize,
                     uint64_t &numElements, uint64_t &nbytes);

} // namespace ckpt
} // namespace jamba

#endif // JAMBA_CHECKPOINT_SAFETENSORS_H

//===- Sha256.h - SHA-256 (FIPS 180-4) --------------------------*- C++ -*-===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// A small, dependency-free SHA-256 (FIPS 180-4) used for the artifact's
// content hash and its file hashes. Digests are written as 64 lowercase hex
// digits.
//
// On x86-64 CPUs with the SHA extensions the block compression uses them
// (chosen once at run time); elsewhere a portable implementation is used.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_RUNTIME_SHA256_H
#define JAMBA_RUNTIME_SHA256_H

#include "jamba/Checkpoint/Status.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace jamba {
namespace rt {

/// Incremental SHA-256: update() any number of times, then finish() once.
class Sha256 {
public:
  using Digest = std::array<uint8_t, 32>;

  Sha256();

  /// Appends `size` bytes at `data` to the message.
  void update(const void *data, size_t size);
  void update(std::string_view bytes) { update(bytes.data(), bytes.size()); }

  /// Pads the message and returns the digest. The object must not be updated
  /// afterwards.
  Digest finish();

  /// 64 lowercase hex digits of `digest`.
  static std::string toHex(const Digest &digest);

  /// The block compression routines.
  enum class Implementation {
    Auto,     ///< The fastest one this CPU supports (the default).
    Portable, ///< Plain C++ (FIPS 180-4 6.2.2); always available.
    ShaNi,    ///< x86-64 SHA extensions; only where the CPU has them.
  };

  /// For tests only: makes every Sha256 use `impl` from now on (Auto restores
  /// the run-time choice). Returns false, changing nothing, when `impl` is not
  /// available on this CPU or in this build.
  static bool setImplementationForTesting(Implementation impl);

  /// The routine in use now (never Auto).
  static Implementation activeImplementation();

private:
  /// Runs the compression function over `nblocks` consecutive 64-byte blocks.
  void compressBlocks(const uint8_t *blocks, size_t nblocks);

  uint32_t state[8];
  uint8_t buffer[64];
  size_t buffered = 0;
  uint64_t totalBytes = 0;
};

/// The hex SHA-256 of `bytes`.
std::string sha256Hex(std::string_view bytes);

/// The hex SHA-256 of the file at `path` (read in chunks), and its size in
/// `sizeOut` when non-null. Errors name the path.
ckpt::StatusOr<std::string> sha256File(const std::string &path,
                                       uint64_t *sizeOut = nullptr);

/// True if `text` is 64 lowercase hex digits.
bool isSha256Hex(std::string_view text);

} // namespace rt
} // namespace jamba

#endif // JAMBA_RUNTIME_SHA256_H

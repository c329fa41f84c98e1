//===- Sha256.cpp - SHA-256 (FIPS 180-4) ----------------------------------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// Written from FIPS 180-4 sections 4.1.2 (functions), 4.2.2 (constants),
// 5.1.1 (padding), 5.3.3 (initial hash value) and 6.2.2 (computation). The
// SHA-NI path follows the instruction definitions in the Intel SHA extensions
// white paper and the Intel SDM.
//
//===----------------------------------------------------------------------===//

#include "jamba/Runtime/Sha256.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

using namespace jamba;
using namespace jamba::rt;

namespace {
/// The first 32 bits of the fractional parts of the cube roots of the first
/// 64 primes (FIPS 180-4 4.2.2).
constexpr uint32_t kRoundConstants[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

inline uint32_t rotr(uint32_t x, unsigned n) {
  return (x >> n) | (x << (32 - n));
}

/// Compresses `nblocks` consecutive 64-byte blocks into `state` (a..h).
using CompressFn = void (*)(uint32_t *state, const uint8_t *blocks,
                            size_t nblocks);

/// FIPS 180-4 6.2.2, one block at a time.
void compressPortable(uint32_t *state, const uint8_t *blocks, size_t nblocks) {
  for (; nblocks; --nblocks, blocks += 64) {
    uint32_t w[64];
    for (int t = 0; t < 16; ++t)
      w[t] = (uint32_t(blocks[4 * t]) << 24) |
             (uint32_t(blocks[4 * t + 1]) << 16) |
             (uint32_t(blocks[4 * t + 2]) << 8) | uint32_t(blocks[4 * t + 3]);
    for (int t = 16; t < 64; ++t) {
      uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
      uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
      w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
    for (int t = 0; t < 64; ++t) {
      uint32_t bigSigma1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
      uint32_t ch = (e & f) ^ (~e & g);
      uint32_t t1 = h + bigSigma1 + ch + kRoundConstants[t] + w[t];
      uint32_t bigSigma0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
      uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
      uint32_t t2 = bigSigma0 + maj;
      h = g;
      g = f;
      f = e;
      e = d + t1;
      d = c;
      c = b;
      b = a;
      a = t1 + t2;
    }
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
    state[4] += e;
    state[5] += f;
    state[6] += g;
    state[7] += h;
  }
}

#if defined(__x86_64__)
/// The same computation with the x86 SHA extensions (Intel, "New
/// Instructions Supporting the Secure Hash Algorithm on Intel Architecture
/// Processors"). SHA256RNDS2 runs two rounds on the working variables split
/// as {A,B,E,F} and {C,D,G,H} (A in the top dword), taking W[t]+K[t] for the
/// two rounds in the low two dwords of its third operand; SHA256MSG1 and
/// SHA256MSG2 compute the sigma0 and sigma1 halves of the message schedule,
/// four words at a time. Only this function is compiled for those
/// instructions; it is called only when shaNiAvailable() says so.
__attribute__((target("sha,sse4.1"))) void
compressShaNi(uint32_t *state, const uint8_t *blocks, size_t nblocks) {
  // Reverses the bytes of each 32-bit lane: the message words are big-endian.
  const __m128i byteSwap =
      _mm_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3);

  // state is {a,b,c,d} {e,f,g,h} (a in the low dword); the instructions want
  // abef = {f,e,b,a} and cdgh = {h,g,d,c} (low dword first).
  __m128i dcba = _mm_shuffle_epi32(
      _mm_loadu_si128(reinterpret_cast<const __m128i *>(state)), 0x1B);
  __m128i hgfe = _mm_shuffle_epi32(
      _mm_loadu_si128(reinterpret_cast<const __m128i *>(state + 4)), 0x1B);
  __m128i abef = _mm_unpackhi_epi64(hgfe, dcba);
  __m128i cdgh = _mm_unpacklo_epi64(hgfe, dcba);

  for (; nblocks; --nblocks, blocks += 64) {
    const __m128i savedAbef = abef, savedCdgh = cdgh;
    // msg[i & 3] holds W[4i .. 4i+3] (W[4i] in the low dword) for the group
    // of four rounds i; the ring keeps the last four groups.
    __m128i msg[4];
    for (int i = 0; i < 4; ++i)
      msg[i] = _mm_shuffle_epi8(
          _mm_loadu_si128(reinterpret_cast<const __m128i *>(blocks + 16 * i)),
          byteSwap);
    for (int i = 0; i < 16; ++i) {
      if (i >= 4) {
        // W[t] = sigma1(W[t-2]) + W[t-7] + sigma0(W[t-15]) + W[t-16]:
        // MSG1 gives W[t-16] + sigma0(W[t-15]), the byte shift W[t-7], and
        // MSG2 adds sigma1(W[t-2]) (using the words it has just made).
        __m128i older = msg[i & 3], old = msg[(i + 1) & 3];
        __m128i recent = msg[(i + 2) & 3], newest = msg[(i + 3) & 3];
        __m128i partial = _mm_add_epi32(_mm_sha256msg1_epu32(older, old),
                                        _mm_alignr_epi8(newest, recent, 4));
        msg[i & 3] = _mm_sha256msg2_epu32(partial, newest);
      }
      __m128i wk = _mm_add_epi32(
          msg[i & 3], _mm_loadu_si128(reinterpret_cast<const __m128i *>(
                          kRoundConstants + 4 * i)));
      // Rounds 4i and 4i+1: the new {A,B,E,F}; the old one becomes {C,D,G,H}.
      cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);
      // Rounds 4i+2 and 4i+3 with the upper two words, roles swapped back.
      abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(wk, 0x0E));
    }
    abef = _mm_add_epi32(abef, savedAbef);
    cdgh = _mm_add_epi32(cdgh, savedCdgh);
  }

  dcba = _mm_unpackhi_epi64(cdgh, abef);
  hgfe = _mm_unpacklo_epi64(cdgh, abef);
  _mm_storeu_si128(reinterpret_cast<__m128i *>(state),
                   _mm_shuffle_epi32(dcba, 0x1B));
  _mm_storeu_si128(reinterpret_cast<__m128i *>(state + 4),
                   _mm_shuffle_epi32(hgfe, 0x1B));
}

/// Whether compressShaNi can run here; the CPU is asked once.
bool shaNiAvailable() {
  static const bool available = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("sha") && __builtin_cpu_supports("sse4.1");
  }();
  return available;
}
#endif

/// The fastest routine this CPU supports.
CompressFn chooseCompress() {
#if defined(__x86_64__)
  if (shaNiAvailable())
    return compressShaNi;
#endif
  return compressPortable;
}

/// The routine every Sha256 uses; setImplementationForTesting() changes it.
std::atomic<CompressFn> &activeCompress() {
  static std::atomic<CompressFn> fn{chooseCompress()};
  return fn;
}
} // namespace

Sha256::Sha256() {
  // FIPS 180-4 5.3.3: the first 32 bits of the fractional parts of the square
  // roots of the first 8 primes.
  static constexpr uint32_t kInit[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372,
                                        0xa54ff53a, 0x510e527f, 0x9b05688c,
                                        0x1f83d9ab, 0x5be0cd19};
  std::memcpy(state, kInit, sizeof(state));
}

void Sha256::compressBlocks(const uint8_t *blocks, size_t nblocks) {
  activeCompress().load(std::memory_order_relaxed)(state, blocks, nblocks);
}

bool Sha256::setImplementationForTesting(Implementation impl) {
  CompressFn fn = nullptr;
  switch (impl) {
  case Implementation::Auto:
    fn = chooseCompress();
    break;
  case Implementation::Portable:
    fn = compressPortable;
    break;
  case Implementation::ShaNi:
#if defined(__x86_64__)
    if (shaNiAvailable())
      fn = compressShaNi;
#endif
    break;
  }
  if (!fn)
    return false;
  activeCompress().store(fn);
  return true;
}

Sha256::Implementation Sha256::activeImplementation() {
  return activeCompress().load() == compressPortable ? Implementation::Portable
                                                     : Implementation::ShaNi;
}

void Sha256::update(const void *data, size_t size) {
  const uint8_t *p = static_cast<const uint8_t *>(data);
  totalBytes += size;
  if (buffered) {
    size_t take = std::min(size, sizeof(buffer) - buffered);
    std::memcpy(buffer + buffered, p, take);
    buffered += take;
    p += take;
    size -= take;
    if (buffered < sizeof(buffer))
      return;
    compressBlocks(buffer, 1);
    buffered = 0;
  }
  if (size_t nblocks = size / 64) {
    compressBlocks(p, nblocks);
    p += 64 * nblocks;
    size -= 64 * nblocks;
  }
  if (size) {
    std::memcpy(buffer, p, size);
    buffered = size;
  }
}

Sha256::Digest Sha256::finish() {
  // FIPS 180-4 5.1.1: a 1 bit, zeros up to 56 mod 64 bytes, then the message
  // length in bits as a big-endian 64-bit integer.
  uint64_t bitLength = totalBytes * 8;
  uint8_t pad[72] = {0x80};
  size_t padLength = (buffered < 56 ? 56 : 120) - buffered;
  for (int i = 0; i < 8; ++i)
    pad[padLength + i] = uint8_t(bitLength >> (56 - 8 * i));
  update(pad, padLength + 8);
  Digest digest;
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 4; ++j)
      digest[4 * i + j] = uint8_t(state[i] >> (24 - 8 * j));
  return digest;
}

std::string Sha256::toHex(const Digest &digest) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (uint8_t byte : digest) {
    out.push_back(kHex[byte >> 4]);
    out.push_back(kHex[byte & 15]);
  }
  return out;
}

std::string rt::sha256Hex(std::string_view bytes) {
  Sha256 hasher;
  hasher.update(bytes);
  return Sha256::toHex(hasher.finish());
}

ckpt::StatusOr<std::string> rt::sha256File(const std::string &path,
                                           uint64_t *sizeOut) {
  FILE *file = std::fopen(path.c_str(), "rb");
  if (!file)
    return ckpt::makeError(path, ": cannot open: ", std::strerror(errno));
  Sha256 hasher;
  std::vector<char> chunk(size_t(1) << 20);
  uint64_t total = 0;
  while (true) {
    size_t n = std::fread(chunk.data(), 1, chunk.size(), file);
    hasher.update(chunk.data(), n);
    total += n;
    if (n < chunk.size())
      break;
  }
  bool failed = std::ferror(file);
  int savedErrno = errno;
  std::fclose(file);
  if (failed)
    return ckpt::makeError(path, ": read error: ", std::strerror(savedErrno));
  if (sizeOut)
    *sizeOut = total;
  return Sha256::toHex(hasher.finish());
}

bool rt::isSha256Hex(std::string_view text) {
  if (text.size() != 64)
    return false;
  for (char c : text)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
      return false;
  return true;
}

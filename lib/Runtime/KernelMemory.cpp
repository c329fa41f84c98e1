//===- KernelMemory.cpp - The CPU kernels' temporaries --------------------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// Every block is one posix_memalign() allocation: a header of H =
// max(64, alignment) bytes, then the class's bytes. The pointer handed out
// is base + H, and the 64 bytes before it describe the block, so that free
// needs no lookup. Freed blocks wait in a list per (class, H) for the next
// allocation of that shape; when an allocation that found no block would
// make the memory held (live + kept) exceed the peak of the live bytes, kept
// blocks are freed, largest first, until it does not.
//
//===----------------------------------------------------------------------===//

#include "jamba/Runtime/KernelMemory.h"

#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

using namespace jamba;
using namespace jamba::rt;

namespace {

constexpr size_t kHeaderBytes = 64;
constexpr size_t kMaxAlignment = size_t(1) << 20;
constexpr uint64_t kMagic = 0x6a616d62614b4d31ull; // "jambaKM1"

/// What the 64 bytes before a block's pointer hold.
struct BlockHeader {
  void *base;
  size_t classBytes;
  size_t headerBytes;
  uint64_t magic;
  /// Kept for reuse (freed), under the allocator's lock.
  bool kept;
};
static_assert(sizeof(BlockHeader) <= kHeaderBytes, "the header must fit");

[[noreturn]] void fatal(const char *what, size_t a, size_t b) {
  std::fprintf(stderr, "jamba runtime: kernel memory: %s (%zu, %zu)\n", what, a,
               b);
  std::abort();
}

BlockHeader *headerOf(void *p) {
  return reinterpret_cast<BlockHeader *>(static_cast<char *>(p) - kHeaderBytes);
}

class KernelMemory {
public:
  void *allocate(size_t bytes, size_t alignment) {
    // MLIR's alignments are powers of two; anything else, or one past
    // kMaxAlignment, is a broken kernel.
    if (alignment == 0 || (alignment & (alignment - 1)) != 0 ||
        alignment > kMaxAlignment)
      fatal("an alignment that is not a power of two up to 1 MiB (bytes, "
            "alignment)",
            bytes, alignment);
    const size_t header = alignment > kHeaderBytes ? alignment : kHeaderBytes;
    const size_t cls = kernelMemoryClass(bytes);
    const std::pair<size_t, size_t> key(cls, header);
    std::vector<void *> evicted;
    void *p = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex);
      ++stats.allocations;
      const uint64_t total = cls + header;
      auto kept = free.find(key);
      if (kept != free.end() && !kept->second.empty()) {
        p = kept->second.back();
        kept->second.pop_back();
        headerOf(p)->kept = false;
        stats.cachedBytes -= total;
        stats.liveBytes += total;
        ++stats.reuses;
        return p;
      }
      stats.liveBytes += total;
      if (stats.liveBytes > stats.peakBytes)
        stats.peakBytes = stats.liveBytes;
      if (stats.liveBytes > stats.maxLiveBytes)
        stats.maxLiveBytes = stats.liveBytes;
      // Hold no more than the peak: give back kept blocks, largest first.
      for (auto it = free.rbegin();
           it != free.rend() &&
           stats.liveBytes + stats.cachedBytes > stats.peakBytes;
           ++it)
        while (!it->second.empty() &&
               stats.liveBytes + stats.cachedBytes > stats.peakBytes) {
          evicted.push_back(it->second.back());
          it->second.pop_back();
          stats.cachedBytes -= it->first.first + it->first.second;
        }
    }
    for (void *old : evicted)
      std::free(headerOf(old)->base);
    void *base = nullptr;
    if (cls > SIZE_MAX - header ||
        posix_memalign(&base, header, header + cls) != 0 || !base)
      fatal("out of memory for a kernel temporary of (bytes, alignment)", bytes,
            alignment);
    p = static_cast<char *>(base) + header;
    *headerOf(p) = BlockHeader{base, cls, header, kMagic, false};
    return p;
  }

  void release(void *p) {
    if (!p)
      return;
    BlockHeader *h = headerOf(p);
    if (h->magic != kMagic)
      fatal("freed a pointer it did not allocate (address, header size)",
            reinterpret_cast<size_t>(p), h->headerBytes);
    std::lock_guard<std::mutex> lock(mutex);
    if (h->kept)
      fatal("freed a block twice (address, bytes)", reinterpret_cast<size_t>(p),
            h->classBytes);
    h->kept = true;
    const uint64_t total = h->classBytes + h->headerBytes;
    free[{h->classBytes, h->headerBytes}].push_back(p);
    stats.liveBytes -= total;
    stats.cachedBytes += total;
  }

  void trim() {
    std::vector<void *> kept;
    {
      std::lock_guard<std::mutex> lock(mutex);
      for (auto &entry : free)
        kept.insert(kept.end(), entry.second.begin(), entry.second.end());
      free.clear();
      stats.cachedBytes = 0;
      stats.peakBytes = stats.liveBytes;
    }
    for (void *p : kept)
      std::free(headerOf(p)->base);
  }

  void addUser() {
    std::lock_guard<std::mutex> lock(mutex);
    ++users;
  }
  void removeUser() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (--users > 0)
        return;
    }
    trim();
  }

  KernelMemoryStats snapshot() {
    std::lock_guard<std::mutex> lock(mutex);
    return stats;
  }

private:
  std::mutex mutex;
  /// Kept blocks by (class bytes, header bytes), in increasing order.
  std::map<std::pair<size_t, size_t>, std::vector<void *>> free;
  KernelMemoryStats stats;
  int64_t users = 0;
};

/// Never destroyed: kernels may free blocks during the process's exit.
KernelMemory &memory() {
  static KernelMemory *m = new KernelMemory();
  return *m;
}

} // namespace

size_t rt::kernelMemoryClass(size_t bytes) {
  if (bytes <= 512)
    return bytes <= kHeaderBytes
               ? kHeaderBytes
               : (bytes + kHeaderBytes - 1) & ~(kHeaderBytes - 1);
  int log2 = 63 - __builtin_clzll(static_cast<unsigned long long>(bytes));
  size_t step = size_t(1) << (log2 - 3);
  if (bytes > SIZE_MAX - (step - 1))
    return bytes;
  return (bytes + step - 1) & ~(step - 1);
}

KernelMemoryStats rt::kernelMemoryStats() { return memory().snapshot(); }

void rt::trimKernelMemory() { memory().trim(); }

KernelMemoryUser::KernelMemoryUser() { memory().addUser(); }

KernelMemoryUser::~KernelMemoryUser() { memory().removeUser(); }

extern "C" {
void *_mlir_memref_to_llvm_alloc(size_t size) {
  return memory().allocate(size, kHeaderBytes);
}
void *_mlir_memref_to_llvm_aligned_alloc(size_t alignment, size_t size) {
  return memory().allocate(size, alignment);
}
void _mlir_memref_to_llvm_free(void *ptr) { memory().release(ptr); }
}

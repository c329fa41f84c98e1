//===- KernelMemoryTest.cpp - The CPU kernels' allocator ------------------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// The allocator behind MLIR's generic allocation functions, which CPU
// artifacts' kernels call for their temporaries (KernelMemory.h): size
// classes (hand-computed), alignment, reuse of a freed block by the next
// allocation of its class, the bound on what it keeps (never more held than
// the peak in use), trimming, threads, and the refusal of a pointer it did
// not hand out. Its counters are process-wide: each test trims first and
// compares counts before and after.
//
//===----------------------------------------------------------------------===//

#include "jamba/Runtime/KernelMemory.h"

#include "gtest/gtest.h"

#include <cstring>
#include <random>
#include <thread>
#include <vector>

using namespace jamba::rt;

namespace {

constexpr size_t kMiB = size_t(1) << 20;

/// Bytes a block of `bytes` holds: its class and the 64-byte header.
uint64_t held(size_t bytes) { return kernelMemoryClass(bytes) + 64; }

bool alignedTo(const void *p, size_t alignment) {
  return reinterpret_cast<uintptr_t>(p) % alignment == 0;
}

TEST(KernelMemoryTest, SizeClasses) {
  // Up to 512 bytes: multiples of 64 (at least 64).
  EXPECT_EQ(kernelMemoryClass(0), 64u);
  EXPECT_EQ(kernelMemoryClass(1), 64u);
  EXPECT_EQ(kernelMemoryClass(64), 64u);
  EXPECT_EQ(kernelMemoryClass(65), 128u);
  EXPECT_EQ(kernelMemoryClass(512), 512u);
  // Above: eighths of the power of two below (513..1023: steps of 64).
  EXPECT_EQ(kernelMemoryClass(513), 576u);
  EXPECT_EQ(kernelMemoryClass(1000), 1024u);
  EXPECT_EQ(kernelMemoryClass(4097), 4608u);
  EXPECT_EQ(kernelMemoryClass(kMiB), kMiB);
  EXPECT_EQ(kernelMemoryClass(kMiB + 1), kMiB + kMiB / 8);
  EXPECT_EQ(kernelMemoryClass(3 * kMiB + 5), 3 * kMiB + kMiB / 4);
  // At most an eighth (or 63 bytes) more, a multiple of 64.
  std::mt19937_64 rng(7);
  for (int i = 0; i < 10000; ++i) {
    size_t n = size_t(rng() % (size_t(1) << (rng() % 40)));
    size_t c = kernelMemoryClass(n);
    ASSERT_GE(c, n) << n;
    ASSERT_LE(c, std::max<size_t>(64, n + n / 8 + 63)) << n;
    ASSERT_EQ(c % 64, 0u) << n;
  }
}

TEST(KernelMemoryTest, AlignmentAndAFreedBlockIsReused) {
  trimKernelMemory();
  // A peak of 16 MiB, so that no kept block is given back below (the first
  // allocation gives back this one).
  _mlir_memref_to_llvm_free(_mlir_memref_to_llvm_alloc(16 * kMiB));
  KernelMemoryStats before = kernelMemoryStats();
  void *a = _mlir_memref_to_llvm_alloc(kMiB + 100);
  ASSERT_NE(a, nullptr);
  EXPECT_TRUE(alignedTo(a, 64));
  std::memset(a, 0x5a, kMiB + 100);
  void *b = _mlir_memref_to_llvm_aligned_alloc(256, 1000);
  ASSERT_NE(b, nullptr);
  EXPECT_TRUE(alignedTo(b, 256));
  void *empty = _mlir_memref_to_llvm_alloc(0);
  EXPECT_NE(empty, nullptr);
  KernelMemoryStats in = kernelMemoryStats();
  EXPECT_EQ(in.cachedBytes, 0u);
  EXPECT_EQ(in.allocations - before.allocations, 3u);
  EXPECT_EQ(in.reuses, before.reuses);
  EXPECT_EQ(in.liveBytes - before.liveBytes,
            held(kMiB + 100) + (kernelMemoryClass(1000) + 256) + held(0));

  // Freed, a block serves the next allocation of its class and alignment:
  // kMiB + 100 and kMiB + 9000 are both in [kMiB + 1, kMiB + kMiB / 8].
  _mlir_memref_to_llvm_free(a);
  EXPECT_EQ(kernelMemoryStats().cachedBytes, held(kMiB + 100));
  void *again = _mlir_memref_to_llvm_alloc(kMiB + 9000);
  EXPECT_EQ(again, a);
  EXPECT_EQ(kernelMemoryStats().reuses, before.reuses + 1);
  EXPECT_EQ(kernelMemoryStats().cachedBytes, 0u);
  // Another alignment is another block.
  _mlir_memref_to_llvm_free(b);
  uint64_t reuses = kernelMemoryStats().reuses;
  void *b64 = _mlir_memref_to_llvm_alloc(1000);
  EXPECT_NE(b64, b);
  EXPECT_EQ(kernelMemoryStats().reuses, reuses);
  void *b256 = _mlir_memref_to_llvm_aligned_alloc(256, 990);
  EXPECT_EQ(b256, b);
  EXPECT_EQ(kernelMemoryStats().reuses, reuses + 1);

  _mlir_memref_to_llvm_free(nullptr); // Nothing.
  for (void *p : {again, b64, b256, empty})
    _mlir_memref_to_llvm_free(p);
  KernelMemoryStats after = kernelMemoryStats();
  EXPECT_EQ(after.liveBytes, before.liveBytes);
  EXPECT_GT(after.cachedBytes, 0u);
  trimKernelMemory();
  EXPECT_EQ(kernelMemoryStats().cachedBytes, 0u);
  EXPECT_EQ(kernelMemoryStats().peakBytes, kernelMemoryStats().liveBytes);
}

TEST(KernelMemoryTest, KeepsNoMoreThanThePeakInUse) {
  trimKernelMemory();
  const uint64_t base = kernelMemoryStats().liveBytes;
  // Peak: two blocks of 4 MiB in use at once.
  void *a = _mlir_memref_to_llvm_alloc(4 * kMiB);
  void *b = _mlir_memref_to_llvm_alloc(4 * kMiB);
  EXPECT_EQ(kernelMemoryStats().peakBytes, base + 2 * held(4 * kMiB));
  _mlir_memref_to_llvm_free(a);
  _mlir_memref_to_llvm_free(b);
  EXPECT_EQ(kernelMemoryStats().cachedBytes, 2 * held(4 * kMiB));
  // 2 MiB more (another class) would hold 10 MiB: one 4 MiB block goes.
  void *c = _mlir_memref_to_llvm_alloc(2 * kMiB);
  KernelMemoryStats s = kernelMemoryStats();
  EXPECT_EQ(s.cachedBytes, held(4 * kMiB));
  EXPECT_LE(s.liveBytes + s.cachedBytes, s.peakBytes);
  // 7 MiB more (a new peak: 9 MiB in use) would hold 13 MiB: the other
  // goes too.
  void *d = _mlir_memref_to_llvm_alloc(7 * kMiB);
  s = kernelMemoryStats();
  EXPECT_EQ(s.cachedBytes, 0u);
  EXPECT_EQ(s.peakBytes, base + held(2 * kMiB) + held(7 * kMiB));
  EXPECT_GE(s.maxLiveBytes, s.peakBytes);
  _mlir_memref_to_llvm_free(c);
  _mlir_memref_to_llvm_free(d);
  trimKernelMemory();
}

TEST(KernelMemoryTest, ThreadsAllocateAndFreeTogether) {
  // The kernels allocate from their OpenMP threads too.
  trimKernelMemory();
  const KernelMemoryStats before = kernelMemoryStats();
  auto work = [](uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<void *> held;
    for (int i = 0; i < 2000; ++i) {
      if (held.size() < 8 && rng() % 2) {
        size_t n = size_t(rng() % (256 << 10));
        auto *p = static_cast<unsigned char *>(_mlir_memref_to_llvm_alloc(n));
        if (n)
          p[0] = p[n - 1] = 1;
        held.push_back(p);
      } else if (!held.empty()) {
        _mlir_memref_to_llvm_free(held.back());
        held.pop_back();
      }
    }
    for (void *p : held)
      _mlir_memref_to_llvm_free(p);
  };
  std::thread other(work, 1);
  work(2);
  other.join();
  KernelMemoryStats after = kernelMemoryStats();
  EXPECT_EQ(after.liveBytes, before.liveBytes);
  EXPECT_GT(after.reuses, before.reuses);
  EXPECT_LE(after.liveBytes + after.cachedBytes, after.peakBytes);
  trimKernelMemory();
}

TEST(KernelMemoryDeathTest, RefusesWhatABrokenKernelWouldDo) {
  ::testing::FLAGS_gtest_death_test_style = "threadsafe";
  alignas(64) static unsigned char foreign[256] = {};
  EXPECT_DEATH(_mlir_memref_to_llvm_free(foreign + 64),
               "kernel memory: freed a pointer it did not allocate");
  // A second free would hand the block to two later allocations.
  EXPECT_DEATH(
      {
        void *p = _mlir_memref_to_llvm_alloc(1000);
        _mlir_memref_to_llvm_free(p);
        _mlir_memref_to_llvm_free(p);
      },
      "kernel memory: freed a block twice");
  EXPECT_DEATH(_mlir_memref_to_llvm_aligned_alloc(96, 10),
               "kernel memory: an alignment that is not a power of two up "
               "to 1 MiB \\(bytes, alignment\\) \\(10, 96\\)");
  EXPECT_DEATH(_mlir_memref_to_llvm_aligned_alloc(size_t(1) << 63, 10),
               "an alignment that is not a power of two up to 1 MiB");
}

TEST(KernelMemoryTest, KeptWhileASessionLives) {
  trimKernelMemory();
  {
    KernelMemoryUser first;
    {
      KernelMemoryUser second;
      _mlir_memref_to_llvm_free(_mlir_memref_to_llvm_alloc(kMiB));
      EXPECT_EQ(kernelMemoryStats().cachedBytes, held(kMiB));
    }
    // Another session lives: the block stays.
    EXPECT_EQ(kernelMemoryStats().cachedBytes, held(kMiB));
  }
  EXPECT_EQ(kernelMemoryStats().cachedBytes, 0u);
}

} // namespace

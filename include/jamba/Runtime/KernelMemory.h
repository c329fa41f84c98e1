//===- KernelMemory.h - The CPU kernels' temporaries ------------*- C++ -*-===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// A CPU artifact's kernels allocate their temporaries (a stage's
// intermediate tensors) with MLIR's generic allocation functions, which the
// runtime defines here and exports to the kernels' shared object like the
// all-reduce (jamba-cpu-lower-pipeline{kernel-allocator}, docs/Runtime.md,
// "Kernel temporaries"):
//
//   void *_mlir_memref_to_llvm_alloc(size_t size);
//   void *_mlir_memref_to_llvm_aligned_alloc(size_t alignment, size_t size);
//   void _mlir_memref_to_llvm_free(void *ptr);
//
// A freed block is kept for the next allocation of its size class, so that
// a call that allocates what the last one did reuses its memory instead of
// having the kernel fault fresh pages in (malloc hands large blocks back to
// the system on free). The blocks kept are bounded: the memory held, in use
// and kept, never exceeds the most the kernels have had in use at once since
// the last trim. Freeing a block twice, or a pointer it did not hand out,
// stops the process with a message.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_RUNTIME_KERNELMEMORY_H
#define JAMBA_RUNTIME_KERNELMEMORY_H

#include <cstddef>
#include <cstdint>

namespace jamba {
namespace rt {

/// The kernel allocator's counters (bytes of size classes, headers
/// included), process-wide.
struct KernelMemoryStats {
  uint64_t liveBytes = 0;   ///< Allocated and not yet freed.
  uint64_t cachedBytes = 0; ///< Freed and kept for reuse.
  /// The most live at once since the last trimKernelMemory(): what the
  /// blocks kept and live may hold together.
  uint64_t peakBytes = 0;
  uint64_t maxLiveBytes = 0; ///< The most ever live at once.
  uint64_t allocations = 0;  ///< Allocations served ...
  uint64_t reuses = 0;       ///< ... of which by a kept block.
};

KernelMemoryStats kernelMemoryStats();

/// Frees every kept block (none in use is touched), and restarts the peak
/// from the bytes in use.
void trimKernelMemory();

/// Held by every executor: when the last one goes, the kept blocks are
/// freed (trimKernelMemory), so that a session ending does not empty the
/// blocks other live sessions reuse.
class KernelMemoryUser {
public:
  KernelMemoryUser();
  ~KernelMemoryUser();
  KernelMemoryUser(const KernelMemoryUser &) = delete;
  KernelMemoryUser &operator=(const KernelMemoryUser &) = delete;
};

/// The size class of an allocation of `bytes`: `bytes` rounded up to a
/// multiple of max(64, 2^(floor(log2 bytes) - 3)), so at most an eighth
/// more, or 63 bytes.
size_t kernelMemoryClass(size_t bytes);

} // namespace rt
} // namespace jamba

extern "C" {
void *_mlir_memref_to_llvm_alloc(size_t size);
void *_mlir_memref_to_llvm_aligned_alloc(size_t alignment, size_t size);
void _mlir_memref_to_llvm_free(void *ptr);
}

#endif // JAMBA_RUNTIME_KERNELMEMORY_H

//===- CudaKernelAbi.h - The C functions CUDA kernels call ------*- C++ -*-===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// A CUDA artifact's kernels file (kernels/cuda-sm_90.so) is a host shared
// object with the same packed entry points as a CPU one, but every buffer and
// weight address it is given is a CUDA device pointer, and its host code
// reaches the GPU through the C functions declared at the end of this
// header: the names and signatures of MLIR's GPU runtime wrappers,
// jamba_rt_cuda_gemm, a cuBLAS GEMM (Cublas.h), and, in a sharded artifact,
// jamba_rt_cuda_all_reduce_f32, an NCCL all-reduce over the GPU ranks
// (Nccl.h). The runtime defines them and
// every executable linking JambaRuntime exports them, so that the kernels'
// dlopen(RTLD_NOW | RTLD_LOCAL) resolves them from the process, as it does
// jamba_rt_all_reduce_f32 (Communicator.h).
//
// They work on the calling thread's *active* CUDA target: the driver, stream,
// cuBLAS handle and NCCL communicators of the session whose kernels are
// running. The executor
// makes its session active while it dlopen()s the kernels (their global
// constructors load GPU modules) and around each run() and its destruction
// (their destructors unload them).
//
// They cannot return an error, so the first failing call records a sticky
// error (the function's name, the driver call, its error name and string),
// and every later call does nothing until the error is taken; the executor
// takes it after each step and fails the run with it, as it does with the
// communicator's. docs/Runtime.md, "CUDA", says how the pieces fit.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_RUNTIME_CUDAKERNELABI_H
#define JAMBA_RUNTIME_CUDAKERNELABI_H

#include "jamba/Runtime/CudaDriver.h"

#include <cstddef>
#include <cstdint>

namespace jamba {
namespace rt {
namespace cuda {

class CublasHandle;
class KernelProfile;
class NcclRanks;

/// What the kernels' calls run on: a session's driver and stream.
struct CudaKernelTarget {
  const CudaDriver *driver = nullptr;
  /// The session's stream: what mgpuStreamCreate returns, and what a null
  /// stream argument means.
  CUstream stream = nullptr;
  /// The device's opt-in limit of dynamic shared memory per block.
  int32_t maxDynamicSharedBytes = kDefaultDynamicSharedBytes;
  /// The session's cuBLAS handle (Cublas.h), bound to `stream`, which
  /// jamba_rt_cuda_gemm uses; created on its first call. Null: the GEMM
  /// records an error.
  CublasHandle *blas = nullptr;
  /// The session's NCCL communicators (Nccl.h) when it is one of several
  /// GPU ranks, which jamba_rt_cuda_all_reduce_f32 uses. Null: a single
  /// rank, the all-reduces have nothing to sum.
  NcclRanks *nccl = nullptr;
  /// When the session profiles its kernels (CudaProfile.h): every launch,
  /// GEMM and all-reduce is timed with events on `stream`. Null: none.
  KernelProfile *profile = nullptr;
};

/// jamba_rt_cuda_gemm's `dtype`: the element type of x and w.
constexpr int32_t kGemmDtypeF32 = 0;
constexpr int32_t kGemmDtypeBF16 = 1;

/// The target the calling thread's kernels' calls use (nullptr: none; the
/// calls then record an error). Not owned; set it around the kernels' calls,
/// on the thread that makes them (each thread has its own, so ranks that are
/// threads of one process each drive their own session).
void setActiveCudaTarget(const CudaKernelTarget *target);
const CudaKernelTarget *activeCudaTarget();

/// Makes `target` the active one for the scope's lifetime, then restores the
/// one active before.
class ActiveCudaTargetScope {
public:
  explicit ActiveCudaTargetScope(const CudaKernelTarget *target)
      : previous(activeCudaTarget()) {
    setActiveCudaTarget(target);
  }
  ~ActiveCudaTargetScope() { setActiveCudaTarget(previous); }
  ActiveCudaTargetScope(const ActiveCudaTargetScope &) = delete;
  ActiveCudaTargetScope &operator=(const ActiveCudaTargetScope &) = delete;

private:
  const CudaKernelTarget *previous;
};

/// Records `error` unless one is recorded already (the first sticks). The
/// error belongs to the calling thread (as the active target does); a
/// success is ignored.
void recordCudaError(const Status &error);
/// True while an error is recorded: the mgpu* functions then do nothing.
bool hasCudaError();
/// Returns the recorded error (success when none) and clears it.
Status takeCudaError();

} // namespace cuda
} // namespace rt
} // namespace jamba

// The kernel ABI (docs/Runtime.md, "CUDA"): MLIR's GPU runtime wrappers,
// jamba_rt_cuda_gemm and the all-reduces. A null `stream` is the active
// session's stream. Errors are recorded (see above), never returned; after one,
// every call does nothing and those returning a pointer return null.
#define JAMBA_CUDA_EXPORT extern "C" __attribute__((visibility("default")))

/// cuModuleLoadData of a cubin or fatbin image (`sizeBytes` is not needed).
JAMBA_CUDA_EXPORT void *mgpuModuleLoad(void *data, size_t sizeBytes);
/// cuModuleLoadDataEx of NUL-terminated PTX, JIT-compiled at
/// CU_JIT_OPTIMIZATION_LEVEL `optLevel` (0..4; outside it: the driver's
/// default); a JIT error's log is part of the recorded message.
JAMBA_CUDA_EXPORT void *mgpuModuleLoadJIT(void *data, int optLevel);
/// cuModuleUnload (null: nothing).
JAMBA_CUDA_EXPORT void mgpuModuleUnload(void *module);
/// cuModuleGetFunction.
JAMBA_CUDA_EXPORT void *mgpuModuleGetFunction(void *module, const char *name);
/// cuLaunchKernel on `stream`. A grid with an extent of 0 launches nothing
/// (a loop nest with no iterations this call); otherwise each grid and
/// block extent must be in [1, 2^32); more than 48 KiB of dynamic shared memory
/// is opted into (cuFuncSetAttribute), up to the device's limit. `paramsCount`
/// is not needed (the driver knows the kernel's parameters).
JAMBA_CUDA_EXPORT void mgpuLaunchKernel(void *function, intptr_t gridX,
                                        intptr_t gridY, intptr_t gridZ,
                                        intptr_t blockX, intptr_t blockY,
                                        intptr_t blockZ, int32_t smem,
                                        void *stream, void **params,
                                        void **extra, size_t paramsCount);
/// The session's stream (no stream is created).
JAMBA_CUDA_EXPORT void *mgpuStreamCreate();
/// cuStreamSynchronize, except while the stream is being captured into a
/// CUDA graph (then nothing: the graph's launch is synchronised instead).
JAMBA_CUDA_EXPORT void mgpuStreamSynchronize(void *stream);
/// Nothing for the session's stream (or null); cuStreamDestroy otherwise.
JAMBA_CUDA_EXPORT void mgpuStreamDestroy(void *stream);
/// cuMemAllocAsync on `stream` (stream-ordered, so a graph can capture
/// it); with `isHostShared`, cuMemAllocManaged (not capturable). 0 bytes:
/// null.
JAMBA_CUDA_EXPORT void *mgpuMemAlloc(uint64_t sizeBytes, void *stream,
                                     bool isHostShared);
/// cuMemFreeAsync on `stream`; managed memory is freed with cuMemFree after
/// the stream is synchronised (not capturable). Null: nothing.
JAMBA_CUDA_EXPORT void mgpuMemFree(void *ptr, void *stream);
/// cuMemcpyAsync on `stream` (unified addressing: either side may be host
/// or device memory).
JAMBA_CUDA_EXPORT void mgpuMemcpy(void *dst, void *src, size_t sizeBytes,
                                  void *stream);
/// cuMemsetD32Async / cuMemsetD16Async of `count` elements on `stream`.
JAMBA_CUDA_EXPORT void mgpuMemset32(void *dst, unsigned int value, size_t count,
                                    void *stream);
JAMBA_CUDA_EXPORT void mgpuMemset16(void *dst, unsigned short value,
                                    size_t count, void *stream);

/// The dense GEMM of `jamba.linear` (the compiler emits a call where it does
/// not generate the GEMM itself), with cuBLAS on the session's stream:
///
///   y[i, j] = sum_l x[i, l] * w[j, l]    (y = x * w^T)
///
/// y [m, n], x [m, k] and w [n, k] are row-major, contiguous device
/// pointers. `dtype` kGemmDtypeF32 (0): x and w are f32, and the GEMM runs in
/// FP32 (not TF32); kGemmDtypeBF16 (1): they are bf16, accumulated in f32. y
/// is f32 either way and is overwritten. m, n and k must be in
/// [1, 2^31 - 1]. The call is asynchronous (stream-ordered) and can be
/// captured into a CUDA graph. Errors are recorded like the mgpu* ones: a
/// bad argument, no cuBLAS ("jamba_rt_cuda_gemm: no cuBLAS: dlopen(...)"),
/// a failing cuBLAS call.
JAMBA_CUDA_EXPORT void jamba_rt_cuda_gemm(float *y, const void *x,
                                          const void *w, int64_t m, int64_t n,
                                          int64_t k, int32_t dtype);

/// The collective of a sharded CUDA artifact (docs/Runtime.md, "GPU ranks
/// (NCCL)"), in place on the session's stream:
///
///   data[i] = the sum over the ranks of data[i], i in [0, count)
///
/// `data` is a device pointer to `count` f32. It runs ncclAllReduce(data,
/// data, count, ncclFloat32, ncclSum, comm, stream) on the NCCL communicator
/// of all the session's ranks (NcclRanks), asynchronously (stream-ordered;
/// it can be captured into a CUDA graph with NCCL 2.9 or later). Every rank
/// must call it with the same count, at the same point. A single-rank
/// session has nothing to sum: the call only checks its arguments. Errors
/// are recorded like the mgpu* ones: a negative count, a null `data` with a
/// positive count, a failing NCCL call ("jamba_rt_cuda_all_reduce_f32:
/// ncclAllReduce: ...").
JAMBA_CUDA_EXPORT void jamba_rt_cuda_all_reduce_f32(float *data, int64_t count);
/// The same over this rank's group of `groupSize` consecutive ranks (the
/// tensor-parallel group of a model that is also expert-parallel; 0: all
/// ranks, 1: nothing to sum), on that group's NCCL communicator, made by the
/// first call with that size (NcclRanks::comm: every rank must make it).
/// A size that does not divide the rank count is an error.
JAMBA_CUDA_EXPORT void jamba_rt_cuda_all_reduce_group_f32(float *data,
                                                          int64_t count,
                                                          int64_t groupSize);

/// A rank-2 memref descriptor as MLIR's C interface passes it
/// (`llvm.emit_c_interface`): the element at [i, j] is at
/// `aligned + offset + i * strides[0] + j * strides[1]` (in elements).
struct JambaMemRef2D {
  void *allocated;
  void *aligned;
  int64_t offset;
  int64_t sizes[2];
  int64_t strides[2];
};

/// The compiler's entry points for jamba_rt_cuda_gemm
/// (jamba-gpu-library-gemms declares `jamba_rt_cuda_gemm_{f32,bf16}(y, x, w)`
/// with the C interface): y [M, N] f32, x [M, K] and w [N, K] f32 or bf16,
/// each row-major with unit inner stride and rows exactly its width apart.
/// Shapes that do not agree, or another layout, are recorded as errors
/// naming the sizes.
JAMBA_CUDA_EXPORT void _mlir_ciface_jamba_rt_cuda_gemm_f32(JambaMemRef2D *y,
                                                           JambaMemRef2D *x,
                                                           JambaMemRef2D *w);
JAMBA_CUDA_EXPORT void _mlir_ciface_jamba_rt_cuda_gemm_bf16(JambaMemRef2D *y,
                                                            JambaMemRef2D *x,
                                                            JambaMemRef2D *w);

#undef JAMBA_CUDA_EXPORT

#endif // JAMBA_RUNTIME_CUDAKERNELABI_H

//===- Executor.h - Running an artifact's entry points ---------*- C++ -*-===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// The executor binds a validated artifact to one device (the CPU or a CUDA
// GPU), batch size and context length, plans and allocates its memory, loads
// its kernels (dlopen) and runs its entry points ("prefill", "decode") step
// by step through the "packed" kernel ABI (docs/ArtifactFormat.md,
// "kernels"; docs/Runtime.md). The steps are the same on both devices: on
// CUDA every buffer and weight address is a device pointer, and the kernels'
// host code launches GPU work through the runtime's exported mgpu* functions
// (CudaKernelAbi.h) on the session's stream.
//
// The executor computes nothing of the model itself: every number comes out
// of the artifact's kernels. It only moves addresses and per-call dimension
// values into the kernels' argument arrays. No MLIR or LLVM header; failures
// are Status values.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_RUNTIME_EXECUTOR_H
#define JAMBA_RUNTIME_EXECUTOR_H

#include "jamba/Runtime/Artifact.h"
#include "jamba/Runtime/Communicator.h"
#include "jamba/Runtime/CudaProfile.h"
#include "jamba/Runtime/KernelMemory.h"

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace jamba {
namespace rt {

/// The entry points the runtime calls, and the buffer conventions of the
/// model ABI (docs/Runtime.md, "The model ABI").
constexpr const char kEntryPrefill[] = "prefill";
constexpr const char kEntryDecode[] = "decode";

/// Where a session runs: its buffers, weights and kernels.
enum class Device { Cpu, Cuda };

/// "cpu" or "cuda" (the artifact's target kind names).
const char *deviceName(Device device);

/// How to bind an artifact.
struct SessionOptions {
  /// The device; it must match the artifact's target kind (a CPU artifact
  /// runs on the CPU, a CUDA artifact on a CUDA device).
  Device device = Device::Cpu;
  /// With Device::Cuda: the device ordinal (as cuDeviceGet counts), used as
  /// given. With several ranks each process needs a GPU of its own:
  /// jamba-run picks cuda::defaultCudaDevice(rank) (CudaDriver.h).
  int cudaDevice = 0;
  /// Sequences run together (the `batch` dim).
  int64_t batch = 1;
  /// Tokens each sequence's KV cache holds (the `capacity` dim); 0 picks
  /// min(4096, the artifact's largest capacity).
  int64_t contextLength = 0;
  /// Tokens per prefill call (the `seq` dim); absent: min(context length,
  /// the artifact's largest seq).
  std::optional<int64_t> seq;
  /// Refuse a plan whose weights + state + arena + io bytes exceed this
  /// (0: the machine's physical memory on the CPU, the device's free memory
  /// on CUDA). The message gives every number.
  uint64_t memoryLimitBytes = 0;
  /// The rank whose weights are bound. With a communicator it must equal
  /// communicator->rank().
  int64_t rank = 0;
  /// The ranks this process runs with, and the all-reduce the kernels call
  /// (Communicator.h); nullptr: a single rank. Its size must equal the
  /// artifact's `ranks`. On CUDA with several ranks it also carries NCCL's
  /// bootstrap (Communicator::broadcastBytes). Not owned: it must outlive
  /// the executor.
  Communicator *communicator = nullptr;
  /// With Device::Cuda: time every kernel launch, cuBLAS GEMM and NCCL
  /// all-reduce with CUDA events (CudaProfile.h; cudaKernelProfile() reads
  /// the totals). Decode then runs without CUDA graphs. With Device::Cpu:
  /// time every step of every run by the wall clock (stepProfile()).
  bool profileKernels = false;
};

/// A CPU step profile (Executor::stepProfile) as two tables of wall ms,
/// share of the total, calls, mean microseconds per call and name: the
/// steps summed by entry point and kind (`decode Mamba + MoE layer`, a
/// layer's kind from `config`; `prefill embed`, `decode head`), most time
/// first; then the steps in their order. `limit` rows per table at most
/// (0: all).
std::string
formatStepProfile(const std::vector<cuda::KernelProfile::Entry> &entries,
                  const ckpt::JambaConfig &config, size_t limit = 0);

/// The row range and length of one entry-point call.
struct CallDims {
  /// Rows [firstRow, firstRow + batch) of every state buffer take part; io
  /// buffers are packed for the call (row 0 of the call is io row 0).
  int64_t firstRow = 0;
  /// The `batch` dim's value for this call: 1..bound batch.
  int64_t batch = 1;
  /// The `seq` dim's value for this call: 1..bound seq.
  int64_t seq = 1;
};

/// The io buffers of the model ABI for one entry point, found from its
/// declared inputs and outputs: inputs[0] holds the token ids (I32
/// [batch, seq]), inputs[1] the per-sequence cache lengths (I64 [batch]),
/// outputs[0] the logits (F32 [batch, seq, vocab], or [batch, 1, vocab]
/// when the entry point keeps only the last position's logits); an io
/// output after it, if any, the greedy ids (`greedy_ids`, in decode
/// `decode.greedy_ids`: I32 [batch, positions], the argmax of each row of
/// logits, -1 where one holds a NaN or only -inf; jamba-compile
/// --greedy-ids).
struct ModelEntry {
  std::string name;
  size_t ids = 0;      ///< Buffer index (manifest order).
  size_t cacheLen = 0; ///< Buffer index.
  size_t logits = 0;   ///< Buffer index.
  /// True when the logits hold the last position of each row only.
  bool lastLogitsOnly = false;
  /// Buffer index of the greedy ids, when the entry point computes them.
  std::optional<size_t> greedyIds;
};

/// Whether the artifact's prefill is a valid model entry point that keeps
/// only the last position's logits (ModelEntry::lastLogitsOnly), so that the
/// logits of every prompt position cannot be recorded; checkable before a
/// session loads the weights.
bool prefillKeepsLastLogitsOnly(const ArtifactManifest &m);

/// Computes the memory plan that Executor::create would allocate, without
/// allocating anything (jamba-run prints it first): the weights counted are
/// those of `options.rank`. Fails when the device does not match the
/// artifact's target kind, with the numbers when a dim is outside the
/// artifact's maxima, and when the ranks do not fit (see Executor::create).
StatusOr<MemoryPlan> planSession(const Artifact &artifact,
                                 const SessionOptions &options);

/// Total bytes of a plan: weights + state + arena + io.
uint64_t totalPlanBytes(const MemoryPlan &plan);

namespace cuda {
class CudaSession;
} // namespace cuda

/// A bound artifact: allocated buffers, loaded kernels, bound weights.
/// `artifact` must outlive it. Not thread-safe: one call at a time.
class Executor {
public:
  /// Binds `artifact` for `options`: checks the target (the device's kind;
  /// on the CPU, this machine's architecture) and the ranks (the artifact's
  /// `ranks` is the communicator's size, 1 without one; `options.rank` is
  /// the communicator's rank and has weights), binds and plans (refusing
  /// dims above the maxima and plans above the limit, with the numbers). On
  /// CUDA it then loads the driver, opens the device (its primary context,
  /// made current on this thread, and one stream) and checks its compute
  /// capability against the artifact's archs; a sharded artifact needs NCCL
  /// there. It checks the model ABI of "prefill" and "decode"; on CUDA with
  /// several ranks it then makes the NCCL communicator of the ranks (every
  /// rank at this point, over the communicator: docs/Runtime.md, "GPU ranks
  /// (NCCL)"). It dlopen()s every kernel file (RTLD_NOW |
  /// RTLD_LOCAL) and resolves every symbol (dlerror() text in the message;
  /// on CUDA the GPU modules the file loads as it is opened must load too),
  /// binds the weights of `options.rank` (CPU: in place from the mapping,
  /// copying, with a note, the rare tensor that is not aligned to its
  /// element size; CUDA: uploaded once) and allocates and zeroes every
  /// buffer (64-byte aligned; 256 on CUDA).
  static StatusOr<std::unique_ptr<Executor>>
  create(const Artifact &artifact, const SessionOptions &options = {});

  ~Executor();
  Executor(const Executor &) = delete;
  Executor &operator=(const Executor &) = delete;

  const Artifact &artifact() const { return art; }
  const ArtifactManifest &manifest() const { return art.manifest(); }
  const MemoryPlan &plan() const { return memPlan; }
  int64_t batch() const { return boundBatch; }
  int64_t seq() const { return boundSeq; }
  int64_t capacity() const { return boundCapacity; }
  int64_t vocab() const { return vocabSize; }
  Device device() const { return dev; }
  /// CUDA: "CUDA device 0: NVIDIA H200 (sm_90, 139.8 GiB)"; CPU: "cpu".
  std::string deviceDescription() const;
  /// The rank whose weights are bound, and the communicator (nullptr: a
  /// single rank).
  int64_t rank() const { return boundRank; }
  Communicator *communicator() const { return comm; }

  /// The prefill and decode entries' io buffers.
  const ModelEntry &prefillEntry() const { return prefill; }
  const ModelEntry &decodeEntry() const { return decode; }

  /// Runs entry point `name` once: every step in order, each kernel getting
  /// its packed argument array with this call's dims. Fails (without
  /// running) on an unknown entry point or dims outside the bound values;
  /// a row range other than the whole batch needs every state buffer's
  /// leading dimension to be exactly `batch`. The communicator (none: a
  /// single rank) is the active one while the kernels run; an all-reduce
  /// error it recorded fails the run after the step that hit it.
  ///
  /// On CUDA the session's context and kernel target are active while the
  /// kernels run, a CUDA error they recorded fails the run after the step
  /// that hit it, and run() returns once the stream has finished the work
  /// (an asynchronous fault is reported then). `decode` is captured into a
  /// CUDA graph the first time it runs with given dims and the graph is
  /// replayed when they recur, unless JAMBA_CUDA_GRAPH=0 was set when the
  /// session was created.
  Status run(std::string_view name, const CallDims &dims);

  /// Copies `bytes` from offset `offset` of an io or state buffer into
  /// host memory `dst` (readBuffer), or from `src` into it (writeBuffer):
  /// a memcpy on the CPU, a device copy on CUDA that is complete when the
  /// call returns. Fails on a temp buffer, an index outside the manifest's
  /// buffers, or a range past the buffer's bytes.
  Status readBuffer(size_t index, void *dst, uint64_t bytes,
                    uint64_t offset = 0);
  Status writeBuffer(size_t index, const void *src, uint64_t bytes,
                     uint64_t offset = 0);
  /// On CUDA, page-locks the host memory [dst, dst + bytes) that readBuffer
  /// will copy into many times (the logits of every decode step), so that
  /// the copies are direct; true if it did. Nothing to do on the CPU, and
  /// not an error when the driver cannot (the copies then work as before).
  /// Release it with unpinHostMemory before the memory goes away.
  bool pinHostMemory(void *dst, uint64_t bytes);
  void unpinHostMemory(void *dst);

  /// The manifest index of buffer `id`, or -1.
  int64_t bufferIndex(std::string_view id) const;
  /// The address of an io or state buffer (nullptr for an unknown id or a
  /// temp buffer), and its byte size under the bound dims. On CUDA the
  /// address is a device pointer, not readable from the host: use
  /// readBuffer and writeBuffer, which work on both devices.
  void *bufferData(std::string_view id);
  void *bufferData(size_t index) { return buffers[index]; }
  uint64_t bufferBytes(size_t index) const {
    return memPlan.bufferBytes[index];
  }

  /// Zeroes rows [firstRow, firstRow + count) of every state buffer (the
  /// whole buffer when a state's leading dim is not `batch`). Fails only on
  /// CUDA, with the driver's error.
  Status zeroStates(int64_t firstRow, int64_t count);

  /// CUDA: whether decode runs through CUDA graphs, and how many have been
  /// captured (one per distinct first row, batch and seq of the calls).
  bool usesCudaGraphs() const { return cudaGraphs; }
  size_t cudaGraphCount() const;
  /// CUDA with SessionOptions::profileKernels: GPU time per kernel name
  /// over every run so far, most first (KernelProfile::entries); empty
  /// otherwise.
  std::vector<cuda::KernelProfile::Entry> cudaKernelProfile() const;
  /// CPU with SessionOptions::profileKernels: wall-clock time per step
  /// kernel (`decode__layer3`: a whole layer's stage, its all-reduces
  /// included) over every run so far, most first, a call of the kernel
  /// counted as a launch; empty otherwise.
  std::vector<cuda::KernelProfile::Entry> stepProfile() const;

  /// Notes worth telling a user (a weight copied for alignment, ...).
  const std::vector<std::string> &notes() const { return noteList; }

private:
  struct ArgSlot {
    enum class Kind { Fixed, Buffer, TempBuffer, Dim };
    Kind kind = Kind::Fixed;
    size_t buffer = 0;      ///< Buffer / TempBuffer.
    int dim = 0;            ///< Dim: 0 batch, 1 seq, 2 capacity.
    bool rowOffset = false; ///< State buffer addressed from the first row.
  };
  struct PreparedStep {
    void (*fn)(void **) = nullptr;
    std::string kernel; ///< For messages.
    std::vector<ArgSlot> slots;
    std::vector<uint64_t> values; ///< One 8-byte value per argument.
    std::vector<void *> args;     ///< args[i] = &values[i].
  };
  struct PreparedEntry {
    std::string name;
    std::vector<PreparedStep> steps;
  };

  /// Out of line: `cudaSession`'s type is complete only in Executor.cpp.
  explicit Executor(const Artifact &artifact);

  Status prepare(const SessionOptions &options);
  /// Parts of prepare(): opening the CUDA session (device, arch, graphs),
  /// the plan against the memory limit, one zeroed buffer (CPU memory or
  /// device memory) and the weights' addresses by name.
  Status openCuda(const SessionOptions &options);
  /// With several ranks on CUDA: the session's NCCL communicators
  /// (CudaSession::startRanks), and graphs off for an NCCL too old to be
  /// captured.
  Status startGpuRanks(const SessionOptions &options);
  Status checkMemoryLimit(const SessionOptions &options);
  StatusOr<void *> allocateZeroed(uint64_t bytes, const std::string &what);
  Status bindWeights(int64_t rank, std::map<std::string, void *> &weightPtrs);
  /// The steps of `entry`, in order, each followed by the communicator's
  /// and (on CUDA) the kernels' sticky error.
  Status runSteps(PreparedEntry &entry, std::string_view name);
  /// run() on CUDA, after the slots are filled.
  Status runOnCuda(PreparedEntry &entry, std::string_view name,
                   const CallDims &dims);
  /// Checks that [offset, offset + bytes) of io or state buffer `index`
  /// exists; `what` is "read" or "write" for the message.
  Status checkAccess(size_t index, uint64_t bytes, uint64_t offset,
                     const char *what) const;

  const Artifact &art;
  /// The CPU kernels' allocator keeps freed blocks while any session lives
  /// (KernelMemory.h).
  KernelMemoryUser kernelMemoryUser;
  Device dev = Device::Cpu;
  /// With Device::Cuda: the device, its stream, the device allocations and
  /// the graphs. The destructor closes the kernel files (whose global
  /// destructors unload their GPU modules) before it resets this.
  std::unique_ptr<cuda::CudaSession> cudaSession;
  bool cudaGraphs = false;
  /// CPU with SessionOptions::profileKernels: the steps' times by kernel.
  bool profileSteps = false;
  std::map<std::string, cuda::KernelProfile::Entry> stepTimes;
  MemoryPlan memPlan;
  int64_t boundBatch = 1, boundSeq = 1, boundCapacity = 1, vocabSize = 0;
  int64_t boundRank = 0;
  Communicator *comm = nullptr;
  ModelEntry prefill, decode;
  /// CUDA: what writeBuffer last wrote to each model entry's cache lengths
  /// (their device copy is not readable cheaply), by buffer index: run()
  /// refuses a call whose rows would reach past the KV capacity before any
  /// kernel writes there (on the CPU it reads the buffer itself).
  std::map<size_t, std::vector<int64_t>> cacheLenShadow;
  std::vector<void *> handles; ///< dlopen handles.
  /// CUDA: the descriptors of the kernel files' private copies (open while
  /// their handles are; closed after them).
  std::vector<int> copyFds;
  std::vector<void *> allocations; ///< CPU: owned, freed in the destructor.
  std::vector<void *> buffers;     ///< Per manifest buffer (temp: nullptr).
  /// Per state buffer whose first dim is the batch: the bytes of one row
  /// (0 for an empty state, e.g. the conv state of d_conv 1); none: the
  /// buffer is not batch-major.
  std::vector<std::optional<uint64_t>> rowBytes;
  void *arena = nullptr;
  std::vector<std::vector<int64_t>> arenaOffsets; ///< Per prepared entry.
  std::vector<PreparedEntry> entries;
  std::vector<std::string> noteList;
};

/// The executor's name from when it ran only on CPUs.
using CpuExecutor = Executor;

} // namespace rt
} // namespace jamba

#endif // JAMBA_RUNTIME_EXECUTOR_H

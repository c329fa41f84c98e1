//===- Executor.h - Running an artifact's entry points ---------*- C++ -*-===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// The CPU executor binds a validated artifact to one batch size and context
// length, plans and allocates its memory, loads its kernels (dlopen) and runs
// its entry points ("prefill", "decode") step by step through the "packed"
// kernel ABI (docs/ArtifactFormat.md, "kernels"; docs/Runtime.md).
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

#include <cstdint>
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

/// How to bind an artifact.
struct SessionOptions {
  /// Sequences run together (the `batch` dim).
  int64_t batch = 1;
  /// Tokens each sequence's KV cache holds (the `capacity` dim); 0 picks
  /// min(4096, the artifact's largest capacity).
  int64_t contextLength = 0;
  /// Tokens per prefill call (the `seq` dim); absent: min(context length,
  /// the artifact's largest seq).
  std::optional<int64_t> seq;
  /// Refuse a plan whose weights + state + arena + io bytes exceed this
  /// (0: no limit). The message gives every number.
  uint64_t memoryLimitBytes = 0;
  /// The rank whose weights are bound. With a communicator it must equal
  /// communicator->rank().
  int64_t rank = 0;
  /// The ranks this process runs with, and the all-reduce the kernels call
  /// (Communicator.h); nullptr: a single rank. Its size must equal the
  /// artifact's `ranks`. Not owned: it must outlive the executor.
  Communicator *communicator = nullptr;
};

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
/// when the entry point keeps only the last position's logits).
struct ModelEntry {
  std::string name;
  size_t ids = 0;      ///< Buffer index (manifest order).
  size_t cacheLen = 0; ///< Buffer index.
  size_t logits = 0;   ///< Buffer index.
  /// True when the logits hold the last position of each row only.
  bool lastLogitsOnly = false;
};

/// Computes the memory plan that CpuExecutor::create would allocate, without
/// allocating anything (jamba-run prints it first): the weights counted are
/// those of `options.rank`. Fails with the numbers when a dim is outside the
/// artifact's maxima, and when the ranks do not fit (see
/// CpuExecutor::create).
StatusOr<MemoryPlan> planSession(const Artifact &artifact,
                                 const SessionOptions &options);

/// Total bytes of a plan: weights + state + arena + io.
uint64_t totalPlanBytes(const MemoryPlan &plan);

/// A bound artifact: allocated buffers, loaded kernels, bound weights.
/// `artifact` must outlive it. Not thread-safe: one call at a time.
class CpuExecutor {
public:
  /// Binds `artifact` for `options`: checks the target (a CPU artifact for
  /// this machine's architecture) and the ranks (the artifact's `ranks` is
  /// the communicator's size, 1 without one; `options.rank` is the
  /// communicator's rank and has weights), binds and plans (refusing dims
  /// above the maxima and plans above the limit, with the numbers), checks
  /// the model ABI of "prefill" and "decode", dlopen()s every kernel file
  /// (RTLD_NOW | RTLD_LOCAL) and resolves every symbol (dlerror() text in
  /// the message), binds the weights of `options.rank` in place from the
  /// mapping (copying, with a note, the rare tensor that is not aligned to
  /// its element size) and allocates and zeroes every buffer (64-byte
  /// aligned).
  static StatusOr<std::unique_ptr<CpuExecutor>>
  create(const Artifact &artifact, const SessionOptions &options = {});

  ~CpuExecutor();
  CpuExecutor(const CpuExecutor &) = delete;
  CpuExecutor &operator=(const CpuExecutor &) = delete;

  const Artifact &artifact() const { return art; }
  const ArtifactManifest &manifest() const { return art.manifest(); }
  const MemoryPlan &plan() const { return memPlan; }
  int64_t batch() const { return boundBatch; }
  int64_t seq() const { return boundSeq; }
  int64_t capacity() const { return boundCapacity; }
  int64_t vocab() const { return vocabSize; }
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
  Status run(std::string_view name, const CallDims &dims);

  /// The address of an io or state buffer (nullptr for an unknown id or a
  /// temp buffer), and its byte size under the bound dims.
  void *bufferData(std::string_view id);
  void *bufferData(size_t index) { return buffers[index]; }
  uint64_t bufferBytes(size_t index) const {
    return memPlan.bufferBytes[index];
  }

  /// Zeroes rows [firstRow, firstRow + count) of every state buffer (the
  /// whole buffer when a state's leading dim is not `batch`).
  void zeroStates(int64_t firstRow, int64_t count);

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

  explicit CpuExecutor(const Artifact &artifact) : art(artifact) {}

  Status prepare(const SessionOptions &options);

  const Artifact &art;
  MemoryPlan memPlan;
  int64_t boundBatch = 1, boundSeq = 1, boundCapacity = 1, vocabSize = 0;
  int64_t boundRank = 0;
  Communicator *comm = nullptr;
  ModelEntry prefill, decode;
  std::vector<void *> handles;     ///< dlopen handles.
  std::vector<void *> allocations; ///< Owned, freed in the destructor.
  std::vector<void *> buffers;     ///< Per manifest buffer (temp: nullptr).
  std::vector<uint64_t> rowBytes;  ///< Per state buffer; 0: not batch-major.
  void *arena = nullptr;
  std::vector<std::vector<int64_t>> arenaOffsets; ///< Per prepared entry.
  std::vector<PreparedEntry> entries;
  std::vector<std::string> noteList;
};

} // namespace rt
} // namespace jamba

#endif // JAMBA_RUNTIME_EXECUTOR_H

//===- Artifact.h - The compiled-model artifact, schema v1 ------*- C++ -*-===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// The artifact is a directory: `manifest.json`, `kernels/` and
// `weights/rank-K*.safetensors`. docs/ArtifactFormat.md specifies it; this
// header is its in-memory model, the manifest reader/writer and the loader
// that validates a whole artifact before anything in it is used.
//
// The runtime owns the schema (DESIGN.md section 2): the compiler's writer
// includes this header, never the other way round. Nothing here uses MLIR or
// LLVM; failures are Status values, never exceptions.
//
// Every error message starts with the context given by the caller
// (Artifact::open uses `artifact DIR`) and names the field, file or tensor:
//   artifact out/: buffers[3] ('h1').shape[2]: dimension -4 is negative
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_RUNTIME_ARTIFACT_H
#define JAMBA_RUNTIME_ARTIFACT_H

#include "jamba/Checkpoint/Config.h"
#include "jamba/Checkpoint/Json.h"
#include "jamba/Checkpoint/SafeTensors.h"
#include "jamba/Checkpoint/Status.h"
#include "jamba/Checkpoint/Tokenizer.h"

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace jamba {
namespace rt {

using ckpt::DType;
using ckpt::Status;
using ckpt::StatusOr;

//===----------------------------------------------------------------------===//
// Constants of the format
//===----------------------------------------------------------------------===//

/// The value of the manifest's "format" field.
constexpr const char kArtifactFormat[] = "jamba-artifact";
/// The manifest's file name inside the artifact directory.
constexpr const char kManifestFileName[] = "manifest.json";
/// The schema version this runtime reads and writes. Readers accept any
/// manifest of the same major version (docs/ArtifactFormat.md, section
/// "Compatibility").
constexpr int64_t kSchemaMajor = 1;
constexpr int64_t kSchemaMinor = 2;

/// Upper bounds that keep every size computation inside int64 and refuse
/// absurd manifests before anything is allocated.
constexpr int64_t kMaxDimValue = int64_t(1) << 31; ///< One dimension.
constexpr int64_t kMaxRank = 8;                    ///< Dimensions per shape.
constexpr int64_t kMaxRanks = 4096;                ///< Ranks (processes).
constexpr uint64_t kMaxBufferBytes = uint64_t(1) << 50; ///< 1 PiB.
constexpr uint64_t kMaxManifestBytes = uint64_t(256) << 20;
/// Byte alignment of every buffer in the planned memory.
constexpr uint64_t kBufferAlignment = 64;

/// The symbolic dimensions a v1 runtime binds (docs/ArtifactFormat.md,
/// "Symbolic dimensions").
constexpr const char kDimBatch[] = "batch";
constexpr const char kDimSeq[] = "seq";
constexpr const char kDimCapacity[] = "capacity";

//===----------------------------------------------------------------------===//
// The manifest model
//===----------------------------------------------------------------------===//

/// "schema_version": [major, minor].
struct SchemaVersion {
  int64_t major = kSchemaMajor;
  int64_t minor = kSchemaMinor;
};

/// "target": the device the kernels were compiled for.
struct TargetDesc {
  enum class Kind { Cpu, Cuda };
  Kind kind = Kind::Cpu;
  std::string triple = "x86_64-unknown-linux-gnu"; ///< Cpu only.
  std::string cpu = "x86-64-v3";                   ///< Cpu only.
  std::vector<std::string> archs;                  ///< Cuda only: "sm_90".
};

/// "dims": one declared symbolic dimension and the largest value the
/// compiled code supports for it.
struct SymbolicDim {
  std::string name;
  int64_t max = 1;
};

/// One dimension of a buffer shape: the product of its terms, each a
/// constant or a symbolic dimension. Written as a JSON integer when it is a
/// single constant, else as a string such as "batch*seq*2".
struct DimExpr {
  struct Term {
    std::string symbol; ///< Empty for a constant term.
    int64_t constant = 1;
  };
  std::vector<Term> terms;

  static DimExpr constant(int64_t value);
  static DimExpr symbol(std::string name);
  /// Appends a term (builder style): DimExpr::symbol("batch").times("seq").
  DimExpr &times(std::string name);
  DimExpr &times(int64_t value);

  /// True if no term is symbolic.
  bool isStatic() const;
  /// The manifest spelling: "batch*seq*2" (or "64" for a constant).
  std::string str() const;
};

/// Values bound to the symbolic dimensions, by name.
using DimBindings = std::map<std::string, int64_t>;

/// "buffers": one statically planned buffer.
struct BufferDesc {
  /// temp: scratch of one entry-point call, placed in the arena by the
  /// planner; state: persistent across calls (KV cache, conv and SSM state);
  /// io: an entry point's input or output, one allocation each.
  enum class Kind { Temp, State, Io };
  /// What a state buffer holds.
  enum class Role { None, KvKey, KvValue, Conv, Ssm };

  std::string id;
  DType dtype = DType::F32;
  std::vector<DimExpr> shape;
  Kind kind = Kind::Temp;
  Role role = Role::None; ///< State buffers only.
  int64_t layer = -1;     ///< State buffers only: the decoder layer.
};

/// Consecutive indices along one dimension: begin, ..., begin + count - 1.
struct IndexRun {
  int64_t begin = 0;
  int64_t count = 0;
  bool operator==(const IndexRun &other) const {
    return begin == other.begin && count == other.count;
  }
};

/// A weight's "from" (schema 1.2): how its values are made from the
/// checkpoint, so that they can be made again from another checkpoint of
/// the same config (jamba-rebind) without the compiler.
struct WeightOrigin {
  enum class Kind {
    /// The checkpoint tensor of the weight's name, as is (no "from").
    Whole,
    /// Some of that tensor's elements: along dimension d, the indices of
    /// `take[d]`'s runs in order (a rank's shard).
    Slice,
    /// Zeros in place of that tensor (a bias that another rank of the
    /// tensor-parallel group adds).
    Zeros,
    /// Every element `value`; not in the checkpoint (I64 only: the rank's
    /// first expert under expert parallelism).
    Value,
  };
  Kind kind = Kind::Whole;
  /// Slice and Zeros: the checkpoint tensor's shape (Zeros: the weight's).
  std::vector<int64_t> shape;
  /// Slice: one list of runs per dimension.
  std::vector<std::vector<IndexRun>> take;
  /// Value.
  int64_t value = 0;

  static WeightOrigin slice(std::vector<int64_t> shape,
                            std::vector<std::vector<IndexRun>> take);
  static WeightOrigin zeros(std::vector<int64_t> shape);
  static WeightOrigin constant(int64_t value);
};

/// "weights": one tensor of a rank's weights file.
struct WeightDesc {
  std::string name; ///< The tensor's name in the safetensors file.
  int64_t rank = 0;
  std::string file; ///< Artifact-relative path, e.g. weights/rank-0.safetensors
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  WeightOrigin from;

  /// The shape of the checkpoint tensor it is made from (Whole: `shape`;
  /// Value: none, empty).
  std::vector<int64_t> checkpointShape() const;
};

/// "kernels": one compiled kernel.
struct KernelDesc {
  std::string name;           ///< What steps refer to.
  std::string file;           ///< Artifact-relative path, e.g. kernels/cpu.so.
  std::string symbol;         ///< The symbol in that file.
  std::string abi = "packed"; ///< The calling convention (only "packed").
  int64_t numArgs = 0;        ///< Every step passes exactly this many.
};

/// One argument of a kernel step.
struct StepArg {
  enum class Kind { Buffer, Weight, I64, F64, Dim };
  Kind kind = Kind::Buffer;
  std::string ref;  ///< Buffer id, weight name or dimension name.
  int64_t i64 = 0;  ///< Kind::I64.
  double f64 = 0.0; ///< Kind::F64.

  static StepArg buffer(std::string id);
  static StepArg weight(std::string name);
  static StepArg dim(std::string name);
  static StepArg integer(int64_t value);
  static StepArg real(double value);
};

/// One step of an entry point's schedule. Schema 1.0 has kernel launches;
/// "library_gemm", "collective" and "copy" are reserved for later minors.
struct Step {
  enum class Kind { Kernel };
  Kind kind = Kind::Kernel;
  std::string kernel; ///< KernelDesc::name.
  std::vector<StepArg> args;
};

/// "entry_points": a callable schedule ("prefill", "decode").
struct EntryPoint {
  std::string name;
  std::vector<std::string> inputs;  ///< Buffer ids (io or state).
  std::vector<std::string> outputs; ///< Buffer ids (io or state).
  std::vector<Step> steps;
};

/// "files": one file of the artifact with its size and hash.
struct FileDesc {
  std::string path; ///< Relative to the artifact directory.
  uint64_t size = 0;
  std::string sha256; ///< 64 lowercase hex digits.
};

/// The whole manifest.
struct ArtifactManifest {
  SchemaVersion version;
  std::string generator;
  /// The model's config.json object, stored verbatim.
  ckpt::JsonValue model = ckpt::JsonValue::makeObject();
  /// `model` parsed and validated; filled by parseManifest and
  /// setModelConfig. writeManifest writes `model`, not this.
  ckpt::JambaConfig config;
  TargetDesc target;
  int64_t ranks = 1;
  std::vector<SymbolicDim> dims;
  std::vector<EntryPoint> entryPoints;
  std::vector<BufferDesc> buffers;
  std::vector<KernelDesc> kernels;
  std::vector<WeightDesc> weights;
  /// The checkpoint's tokenizer.json, copied (schema 1.1, optional; empty:
  /// none): an artifact path listed in `files`.
  std::string tokenizerFile;
  std::vector<FileDesc> files;
  /// As read by parseManifest; writeManifest computes its own.
  std::string contentHash;

  /// Sets both `model` and `config` from a validated config.
  void setModelConfig(const ckpt::JambaConfig &newConfig);

  /// Lookups by id/name; nullptr if absent (linear scans).
  const BufferDesc *findBuffer(std::string_view id) const;
  const KernelDesc *findKernel(std::string_view name) const;
  const WeightDesc *findWeight(std::string_view name, int64_t rank) const;
  const EntryPoint *findEntryPoint(std::string_view name) const;
  const SymbolicDim *findDim(std::string_view name) const;
  const FileDesc *findFile(std::string_view path) const;
};

/// The argument signature of a step in the form a kernel object exports
/// as `<symbol>_signature` (docs/ArtifactFormat.md, "Kernel signatures"):
/// one item per argument, joined by ';': `dim:<name>`, `i64`, `f64`, or
/// `<DTYPE>[<d0>,<d1>,...]` for a buffer or weight (dimension expressions as
/// DimExpr::str() writes them). Unknown references give `?`.
std::string stepSignature(const ArtifactManifest &manifest, const Step &step,
                          int64_t rank);

/// Short names used in the manifest and in messages.
const char *targetKindName(TargetDesc::Kind kind);
const char *bufferKindName(BufferDesc::Kind kind);
const char *bufferRoleName(BufferDesc::Role role);
const char *stepKindName(Step::Kind kind);

//===----------------------------------------------------------------------===//
// Reading, checking and writing manifests
//===----------------------------------------------------------------------===//

/// Parses manifest text, in this order: JSON syntax; "format"; the schema
/// version (a different major is refused before anything else is read);
/// "content_hash" against the canonical form; then the type and presence of
/// every field this runtime knows (unknown fields are ignored). Bounds and
/// cross-references are validateManifest's job. Messages start with
/// `context` (e.g. "artifact out/").
StatusOr<ArtifactManifest> parseManifest(std::string_view text,
                                         const std::string &context);

/// Checks bounds and cross-references that need no file: unique ids, valid
/// names and paths, dims declared and in range, every step's kernel, buffers,
/// weights and dims present, argument counts, sizes at the declared maxima
/// inside the limits, every kernel and weight file listed in "files" (unless
/// `checkFiles` is false, as the writer does before it has hashed them).
Status validateManifest(const ArtifactManifest &manifest,
                        const std::string &context, bool checkFiles = true);

/// True for an artifact-relative path: components of [A-Za-z0-9._-]
/// separated by '/', none empty, "." or "..", and not "manifest.json".
bool isValidArtifactPath(std::string_view path);

/// Serializes `manifest` canonically: fixed key order, two-space indent,
/// "content_hash" last and computed here (manifest.contentHash is ignored).
/// Does not validate: the writer (ArtifactWriter.h) does.
std::string writeManifest(const ArtifactManifest &manifest);

/// The content hash of a parsed manifest document: the hex SHA-256 of its
/// compact serialization (ckpt::writeJson, keys in document order) with the
/// top-level "content_hash" member removed.
std::string computeContentHash(const ckpt::JsonValue &document);

//===----------------------------------------------------------------------===//
// Sizes and the memory plan
//===----------------------------------------------------------------------===//

/// The context length a session or report uses when none is asked for:
/// 4096, or the artifact's largest capacity when that is smaller.
int64_t defaultContextLength(const ArtifactManifest &manifest);

/// Binds the v1 dimensions: batch = `batch`, capacity = `contextLength`,
/// seq = `seq` or, when absent, min(contextLength, the declared max of seq).
/// Every declared dim must get a value in [1, max]; errors name the dim.
StatusOr<DimBindings> bindDims(const ArtifactManifest &manifest, int64_t batch,
                               int64_t contextLength,
                               std::optional<int64_t> seq = std::nullopt);

/// The value of `expr` under `bindings`; fails on an unbound symbol or an
/// overflow past kMaxDimValue^kMaxRank (messages name the expression).
StatusOr<int64_t> evalDim(const DimExpr &expr, const DimBindings &bindings);

/// The byte size of `buffer` under `bindings`.
StatusOr<uint64_t> bufferBytes(const BufferDesc &buffer,
                               const DimBindings &bindings);

/// Where every buffer lives for one binding of the dims. Temp buffers share
/// one arena: within each entry point a buffer is live from its first to its
/// last step, buffers whose live ranges overlap get disjoint byte ranges,
/// and the arena is as large as the largest entry point needs. State and io
/// buffers get their own allocations. All offsets are multiples of
/// kBufferAlignment.
struct MemoryPlan {
  DimBindings bindings;
  std::vector<uint64_t> bufferBytes; ///< Per manifest buffer.
  /// [entry point][buffer]: arena offset of a temp buffer used by that entry
  /// point, or -1.
  std::vector<std::vector<int64_t>> arenaOffsets;
  uint64_t arenaBytes = 0;
  uint64_t stateBytes = 0;
  uint64_t ioBytes = 0;
  uint64_t weightBytes = 0; ///< All ranks.
};

/// Plans memory for `bindings`. Fails (naming the buffer) if a size
/// overflows.
StatusOr<MemoryPlan> planMemory(const ArtifactManifest &manifest,
                                const DimBindings &bindings);

//===----------------------------------------------------------------------===//
// Opening an artifact
//===----------------------------------------------------------------------===//

/// Options for Artifact::open.
struct OpenOptions {
  /// Hash every file against its recorded SHA-256 (sizes are always
  /// checked). Turning it off saves reading the weights twice when the
  /// caller has just written them.
  bool verifyFileHashes = true;
  /// The one rank this process runs (an MPI rank), if any: the weights
  /// files only other ranks' weights are in are not hashed (their
  /// presence, sizes and safetensors headers are still checked), so that
  /// N ranks hash the artifact once between them instead of N times.
  std::optional<int64_t> rank;
  /// Threads hashing the files, each taking one file at a time (0: one per
  /// hardware thread).
  unsigned hashThreads = 0;
};

/// A validated artifact with its weights files mapped.
class Artifact {
public:
  /// Opens and validates the artifact in `dir`, in the order of
  /// docs/ArtifactFormat.md ("Validation order"): manifest syntax, format
  /// and schema version, content hash, field types, files (presence, size,
  /// SHA-256), bounds and cross-references, and every weight against its
  /// safetensors file. Nothing of the artifact is used before all of it has
  /// passed. Errors start with `artifact DIR:`.
  static StatusOr<std::unique_ptr<Artifact>>
  open(const std::string &dir, const OpenOptions &options = {});

  const std::string &directory() const { return dir; }
  const ArtifactManifest &manifest() const { return man; }

  /// The mapped tensor of weight `name` for `rank`, or nullptr.
  const ckpt::TensorInfo *weight(std::string_view name, int64_t rank) const;

  /// The absolute-or-relative path of an artifact file (dir + "/" + path).
  std::string filePath(const std::string &relativePath) const;

  /// The artifact's tokenizer (schema 1.1), loaded and checked against the
  /// model's vocabulary; nullopt when it has none.
  StatusOr<std::optional<ckpt::Tokenizer>> loadTokenizer() const;

private:
  Artifact() = default;

  std::string dir;
  ArtifactManifest man;
  /// Opened weights files by artifact-relative path.
  std::map<std::string, std::unique_ptr<ckpt::SafeTensorsFile>> weightFiles;
};

} // namespace rt
} // namespace jamba

#endif // JAMBA_RUNTIME_ARTIFACT_H

//===- CpuTarget.h - CPU shared objects with packed entry points -*- C++
//-*-===//
//
// Part of jamba-mlir. Turns a module lowered to the LLVM dialect into a
// native shared object for the host CPU: LLVM's TargetMachine emits the
// object in process, ld.lld links it. Every entry point gets a wrapper
// `void <symbol>(void **args)` in the artifact's "packed" ABI
// (docs/ArtifactFormat.md, docs/Runtime.md):
//
//   args[0..2]   int64_t *: the call's batch, seq and capacity
//   args[3 + i]  void **:  the address of input i's data (dense, row-major)
//   args[3 + n + j] void **: the address of output j's buffer
//
// The wrapper builds the memref descriptors of the `_mlir_ciface_<name>`
// function (llvm.emit_c_interface), calls it, copies every result into its
// output buffer and frees the result allocations that are not inputs. The
// object also exports `const char <symbol>_signature[]`, the argument list
// in the form rt::stepSignature writes with '>' before the results, which
// the runtime checks at load (docs/ArtifactFormat.md, "Kernel signatures").
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_TARGET_CPUTARGET_H
#define JAMBA_TARGET_CPUTARGET_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Support/LLVM.h"
#include "mlir/Support/Timing.h"

#include <string>
#include <vector>

namespace mlir::jamba {

/// Which packed dim argument gives a dynamic dimension's size.
enum class PackedDim : int { Static = -1, Batch = 0, Seq = 1, Capacity = 2 };

/// One input or output of an entry point in the packed ABI.
struct PackedOperand {
  /// Per dimension: the static size, or kDynamic with `dims[i]` naming the
  /// packed dim argument that holds it.
  std::vector<int64_t> sizes;
  std::vector<PackedDim> dims;
  /// Bytes per element, and the element type's safetensors name ("F32").
  unsigned elementBytes = 4;
  std::string dtype = "F32";
  /// An output the entry point writes in place into the input of the same
  /// state (a `jamba.state` result, removed by jamba-states-in-place): the
  /// compiled function does not return it and the wrapper copies nothing.
  bool inPlace = false;
};

/// An entry point (a func.func with llvm.emit_c_interface before lowering).
struct PackedEntry {
  std::string function; ///< The func.func name, e.g. "prefill".
  std::string symbol;   ///< The exported wrapper, e.g. "jamba_prefill".
  std::vector<PackedOperand> inputs, outputs;
};

struct CpuTargetOptions {
  /// The CPU the code is tuned and restricted to (x86-64-v3: AVX2 + FMA).
  std::string cpu = "x86-64-v3";
  /// LLVM optimisation level for the IR and the code generator.
  unsigned optLevel = 3;
  /// The kernels run their parallel loops on OpenMP threads (libomp).
  bool threads = true;
  /// The object is the host side of a CUDA artifact: its buffers are device
  /// memory, so the packed wrappers copy and free results with the
  /// runtime's mgpuMemcpy / mgpuMemFree instead of memmove / free, and the
  /// embedded GPU binaries are registered at load (docs/CUDABackend.md).
  bool cudaHost = false;
  /// The kernels allocate with MLIR's generic functions
  /// (jamba-cpu-lower-pipeline{kernel-allocator}): the packed wrappers free
  /// results with _mlir_memref_to_llvm_free instead of free.
  bool kernelAllocator = false;
  /// The LLVM module is split into this many parts (llvm::SplitModule,
  /// round-robin), optimised and compiled to objects in parallel, a thread
  /// each, and linked together; 1 compiles it whole. The object depends on this
  /// number, never on the machine. A CUDA host is always one part: its
  /// code (module loads in global constructors, launches) runs only on a
  /// GPU, where a split one has not been run yet.
  unsigned codegenPartitions = 4;
};

/// Describes the entry points `names` of a tensor-level module (before
/// lowering) for the packed ABI: dynamic dimension 0 is the batch, the
/// second dimension of `ids` and of the logits is the sequence, and the
/// third of a KV cache is its capacity. Fails on a shape it cannot map.
FailureOr<std::vector<PackedEntry>>
describePackedEntries(ModuleOp module, ArrayRef<std::string> names);

/// Writes the PTX of every `gpu.binary` object of `module` (after
/// jamba-gpu-lower-pipeline with format=isa) to `dir/<binary>.ptx`; returns
/// how many were written.
FailureOr<unsigned> dumpPtx(ModuleOp module, StringRef dir);

/// Emits `module` (LLVM dialect only) as a shared object at `path` with a
/// packed wrapper per entry of `entries`. The state outputs are expected to
/// be updated in place (jamba-cpu-lower-pipeline{states-in-place}). Errors
/// are emitted at the module. `timing`, when given, gets a nested timer per
/// phase (translation to LLVM IR, the merge of identical functions, LLVM
/// optimisation and code generation, linking).
LogicalResult emitCpuSharedObject(ModuleOp module,
                                  ArrayRef<PackedEntry> entries,
                                  const CpuTargetOptions &options,
                                  StringRef path,
                                  TimingScope *timing = nullptr);

} // namespace mlir::jamba

#endif // JAMBA_TARGET_CPUTARGET_H

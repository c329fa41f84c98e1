//===- CudaProfile.h - GPU time per kernel of a CUDA session ----*- C++ -*-===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// A CUDA session that profiles its kernels (SessionOptions::profileKernels,
// `jamba-run --profile-kernels`) times every launch the kernels make with a
// pair of CUDA events on the session's stream: the generated kernels (named
// after the op each computes, `decode__layer1_kernel_7__expert_gemm_lanes`),
// the cuBLAS GEMMs (`cublas_gemm_bf16 MxNxK`) and the NCCL all-reduces
// (`nccl_all_reduce`). After a run's work has finished, collect() turns the
// events into GPU milliseconds per name. Events cannot be read inside a
// CUDA graph, so a profiling session runs decode without graphs. A launch's
// time runs from its start event to its end event on the stream: when the
// GPU has caught up with the CPU (a kernel shorter than launching it), the
// start event completes as soon as it is recorded and the time includes
// the gap until the kernel's launch reaches the GPU. Short kernels' times
// are upper bounds.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_RUNTIME_CUDAPROFILE_H
#define JAMBA_RUNTIME_CUDAPROFILE_H

#include "jamba/Runtime/CudaDriver.h"

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

namespace jamba {
namespace rt {
namespace cuda {

class KernelProfile {
public:
  /// One name's launches so far.
  struct Entry {
    std::string name;
    int64_t launches = 0;
    double milliseconds = 0; ///< GPU time, summed over the launches.
  };

  explicit KernelProfile(const CudaDriver &driver) : driver(driver) {}
  ~KernelProfile();
  KernelProfile(const KernelProfile &) = delete;
  KernelProfile &operator=(const KernelProfile &) = delete;

  /// Remembers `function`'s name (mgpuModuleGetFunction).
  void nameFunction(CUfunction function, const char *name);
  /// The name given to `function`, or "kernel@ADDRESS".
  std::string functionName(CUfunction function) const;

  /// Records a start event on `stream` for a launch of `name`; end()
  /// records its end. Between them the caller enqueues the work.
  Status begin(std::string name, CUstream stream);
  Status end(CUstream stream);

  /// Adds the time of every launch begun since the last collect() to its
  /// name's entry. Call it once the stream's work has finished.
  Status collect();
  /// Drops the launches begun since the last collect() without timing them
  /// (a run that failed), keeping their events for reuse.
  void discard();

  /// The entries, most GPU time first.
  std::vector<Entry> entries() const;

private:
  struct Timed {
    std::string name;
    CUevent start = nullptr, end = nullptr;
  };
  StatusOr<CUevent> event();

  const CudaDriver &driver;
  std::vector<CUevent> spare; ///< Events to record again.
  std::vector<Timed> pending; ///< Begun since the last collect().
  std::map<std::string, Entry> totals;
  std::unordered_map<CUfunction, std::string> names;
};

/// The entries of `totals` (by name), most time first; equal times in the
/// order of their names.
std::vector<KernelProfile::Entry>
mostTimeFirst(const std::map<std::string, KernelProfile::Entry> &totals);

/// Appends `entries` to `out` as a table in their order: a title line
/// ("TITLE: X ms of CLOCK time in N launches"), then per entry its
/// milliseconds, share of the total, launches, mean microseconds per launch
/// and name. `limit` rows at most (0: all), then "... K more".
void appendProfileTable(std::string &out, const char *title, const char *clock,
                        const std::vector<KernelProfile::Entry> &entries,
                        size_t limit);

/// The entries as a table, most time first: GPU ms, share of the total,
/// launches, mean microseconds per launch, name; then the same summed by
/// op, the part of each kernel's name after its last "__" with the entry
/// point's name in front ("decode expert_gemm_lanes"). `limit` rows per
/// table at most (0: all).
std::string formatKernelProfile(const std::vector<KernelProfile::Entry> &e,
                                size_t limit = 0);

} // namespace cuda
} // namespace rt
} // namespace jamba

#endif // JAMBA_RUNTIME_CUDAPROFILE_H

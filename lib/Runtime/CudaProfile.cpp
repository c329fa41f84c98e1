//===- CudaProfile.cpp - GPU time per kernel of a CUDA session ------------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//

#include "jamba/Runtime/CudaProfile.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>

using namespace jamba;
using namespace jamba::rt;
using namespace jamba::rt::cuda;

KernelProfile::~KernelProfile() {
  for (const Timed &t : pending) {
    driver.cuEventDestroy_v2(t.start);
    driver.cuEventDestroy_v2(t.end);
  }
  for (CUevent e : spare)
    driver.cuEventDestroy_v2(e);
}

void KernelProfile::nameFunction(CUfunction function, const char *name) {
  names[function] = name ? name : "";
}

std::string KernelProfile::functionName(CUfunction function) const {
  auto it = names.find(function);
  if (it != names.end())
    return it->second;
  char text[40];
  std::snprintf(text, sizeof(text), "kernel@%p", static_cast<void *>(function));
  return text;
}

StatusOr<CUevent> KernelProfile::event() {
  if (!spare.empty()) {
    CUevent e = spare.back();
    spare.pop_back();
    return e;
  }
  CUevent e = nullptr;
  JAMBA_CKPT_RETURN_IF_ERROR(
      driver.check(driver.cuEventCreate(&e, 0), "cuEventCreate"));
  return e;
}

Status KernelProfile::begin(std::string name, CUstream stream) {
  StatusOr<CUevent> start = event();
  if (!start.ok())
    return start.status();
  pending.push_back(Timed{std::move(name), *start, nullptr});
  return driver.check(driver.cuEventRecord(*start, stream), "cuEventRecord");
}

Status KernelProfile::end(CUstream stream) {
  if (pending.empty() || pending.back().end)
    return Status::error("KernelProfile::end without a begin");
  StatusOr<CUevent> stop = event();
  if (!stop.ok())
    return stop.status();
  Status recorded =
      driver.check(driver.cuEventRecord(*stop, stream), "cuEventRecord");
  if (!recorded.ok()) {
    spare.push_back(*stop);
    return recorded;
  }
  pending.back().end = *stop;
  return Status::success();
}

void KernelProfile::discard() {
  for (Timed &t : pending) {
    spare.push_back(t.start);
    if (t.end)
      spare.push_back(t.end);
  }
  pending.clear();
}

Status KernelProfile::collect() {
  Status status = Status::success();
  for (Timed &t : pending) {
    float ms = 0;
    if (status.ok() && t.end)
      status = driver.check(driver.cuEventElapsedTime(&ms, t.start, t.end),
                            "cuEventElapsedTime");
    if (status.ok() && t.end) {
      Entry &e = totals[t.name];
      e.name = t.name;
      e.launches += 1;
      e.milliseconds += double(ms);
    }
    spare.push_back(t.start);
    if (t.end)
      spare.push_back(t.end);
  }
  pending.clear();
  return status;
}

std::vector<KernelProfile::Entry> KernelProfile::entries() const {
  return mostTimeFirst(totals);
}

std::vector<KernelProfile::Entry>
cuda::mostTimeFirst(const std::map<std::string, KernelProfile::Entry> &totals) {
  std::vector<KernelProfile::Entry> out;
  for (const auto &kv : totals)
    out.push_back(kv.second);
  std::stable_sort(
      out.begin(), out.end(),
      [](const KernelProfile::Entry &a, const KernelProfile::Entry &b) {
        return a.milliseconds > b.milliseconds;
      });
  return out;
}

namespace {

/// "decode expert_gemm_lanes" for "decode__layer1_kernel_7__expert_gemm_lanes";
/// a name without "__" up to its first space ("cublas_gemm_bf16").
std::string opOf(const std::string &name) {
  size_t last = name.rfind("__");
  if (last == std::string::npos)
    return name.substr(0, name.find(' '));
  return name.substr(0, name.find("__")) + " " + name.substr(last + 2);
}

} // namespace

void cuda::appendProfileTable(std::string &out, const char *title,
                              const char *clock,
                              const std::vector<KernelProfile::Entry> &entries,
                              size_t limit) {
  double total = 0;
  int64_t launches = 0;
  for (const KernelProfile::Entry &e : entries) {
    total += e.milliseconds;
    launches += e.launches;
  }
  char line[512];
  std::snprintf(line, sizeof(line),
                "%s: %.3f ms of %s time in %" PRId64 " launches\n"
                "  %7s ms %6s %9s %10s  %s\n",
                title, total, clock, launches, clock, "%", "launches",
                "mean us", "name");
  out += line;
  size_t shown = 0;
  for (const KernelProfile::Entry &e : entries) {
    if (limit && shown++ == limit) {
      std::snprintf(line, sizeof(line), "  ... %zu more\n",
                    entries.size() - limit);
      out += line;
      break;
    }
    std::snprintf(line, sizeof(line),
                  "  %10.3f %6.1f %9" PRId64 " %10.2f  %s\n", e.milliseconds,
                  total > 0 ? 100.0 * e.milliseconds / total : 0.0, e.launches,
                  e.launches ? 1e3 * e.milliseconds / double(e.launches) : 0.0,
                  e.name.c_str());
    out += line;
  }
}

std::string
cuda::formatKernelProfile(const std::vector<KernelProfile::Entry> &entries,
                          size_t limit) {
  std::map<std::string, KernelProfile::Entry> byOp;
  for (const KernelProfile::Entry &e : entries) {
    KernelProfile::Entry &op = byOp[opOf(e.name)];
    op.name = opOf(e.name);
    op.launches += e.launches;
    op.milliseconds += e.milliseconds;
  }
  std::vector<KernelProfile::Entry> ops = mostTimeFirst(byOp);
  std::string out;
  appendProfileTable(out, "kernel profile by op", "GPU", ops, limit);
  appendProfileTable(out, "kernel profile by kernel", "GPU", entries, limit);
  return out;
}

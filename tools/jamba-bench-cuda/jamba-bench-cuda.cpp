//===- jamba-bench-cuda.cpp - The GPU's copy-bandwidth ceiling
//-------------===//
//
// Part of jamba-mlir.
//   jamba-bench-cuda [--device N] [--mib M] [--reps R]
// measures the device-to-device copy bandwidth of a CUDA device (the HBM
// ceiling the GPU benchmarks of scripts/gpu-check.sh are compared with):
// R copies of M MiB on one stream, timed each by wall clock around a
// stream synchronisation, median reported. Bandwidth counts the bytes read
// plus the bytes written (2 M MiB per copy). Reaches the driver like the
// runtime (dlopen, no CUDA link), so it builds and starts everywhere; on a
// machine without a GPU it prints "skipped: no GPU (...)" and exits 3.
//
//===----------------------------------------------------------------------===//

#include "jamba/Runtime/CudaDriver.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

using namespace jamba::rt::cuda;

namespace {

int usage(const char *why) {
  std::fprintf(stderr,
               "jamba-bench-cuda: error: %s\n"
               "usage: jamba-bench-cuda [--device N] [--mib M] [--reps R]\n",
               why);
  return 1;
}

/// A decimal integer >= `min`.
bool parseAtLeast(const char *text, long min, long &out) {
  char *end = nullptr;
  long v = std::strtol(text, &end, 10);
  if (!*text || !end || *end || v < min)
    return false;
  out = v;
  return true;
}

/// Fails the tool with the driver's words for `result`.
bool check(const CudaDriver &d, CUresult result, const char *call) {
  if (result == 0)
    return true;
  const char *name = "?", *text = "?";
  d.cuGetErrorName(result, &name);
  d.cuGetErrorString(result, &text);
  std::fprintf(stderr, "jamba-bench-cuda: error: %s: %s (%s)\n", call, name,
               text);
  return false;
}

} // namespace

int main(int argc, char **argv) {
  long device = 0, mib = 1024, reps = 20;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    long *target = arg == "--device" ? &device
                   : arg == "--mib"  ? &mib
                   : arg == "--reps" ? &reps
                                     : nullptr;
    if (!target)
      return usage(("unknown option '" + arg + "'").c_str());
    if (i + 1 == argc)
      return usage((arg + " needs a value").c_str());
    const long min = target == &device ? 0 : 1;
    if (!parseAtLeast(argv[++i], min, *target))
      return usage((arg + " must be an integer >= " + std::to_string(min) +
                    ", got '" + argv[i] + "'")
                       .c_str());
  }
  auto driver = loadCudaDriver();
  if (!driver.ok()) {
    std::printf("skipped: no GPU (%s)\n", driver.status().message().c_str());
    return 3;
  }
  const CudaDriver &d = **driver;
  auto dev = openCudaDevice(d, static_cast<int>(device));
  if (!dev.ok()) {
    std::printf("skipped: no GPU (%s)\n", dev.status().message().c_str());
    return 3;
  }
  std::printf("device: %s\n", describeCudaDevice(d, *dev).c_str());
  CUcontext ctx = nullptr;
  CUstream stream = nullptr;
  if (!check(d, d.cuDevicePrimaryCtxRetain(&ctx, *dev),
             "cuDevicePrimaryCtxRetain") ||
      !check(d, d.cuCtxSetCurrent(ctx), "cuCtxSetCurrent") ||
      !check(d, d.cuStreamCreate(&stream, 0), "cuStreamCreate"))
    return 1;
  const size_t bytes = static_cast<size_t>(mib) << 20;
  CUdeviceptr a = 0, b = 0;
  if (!check(d, d.cuMemAlloc_v2(&a, bytes), "cuMemAlloc") ||
      !check(d, d.cuMemAlloc_v2(&b, bytes), "cuMemAlloc") ||
      !check(d, d.cuMemsetD8Async(a, 1, bytes, stream), "cuMemsetD8Async") ||
      !check(d, d.cuStreamSynchronize(stream), "cuStreamSynchronize"))
    return 1;
  std::vector<double> seconds;
  for (long r = 0; r < reps + 1; ++r) {
    auto start = std::chrono::steady_clock::now();
    if (!check(d, d.cuMemcpyAsync(b, a, bytes, stream), "cuMemcpyAsync") ||
        !check(d, d.cuStreamSynchronize(stream), "cuStreamSynchronize"))
      return 1;
    double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    if (r > 0) // The first copy warms up.
      seconds.push_back(s);
  }
  std::sort(seconds.begin(), seconds.end());
  double median = seconds[seconds.size() / 2];
  std::printf("copy: %ld MiB device-to-device, median of %ld: %.3f ms, "
              "%.1f GB/s (read + write)\n",
              mib, reps, median * 1e3, 2.0 * double(bytes) / median / 1e9);
  d.cuMemFree_v2(a);
  d.cuMemFree_v2(b);
  d.cuStreamDestroy_v2(stream);
  d.cuDevicePrimaryCtxRelease_v2(*dev);
  return 0;
}

//===- jamba-bench-cuda.cpp - The GPU's copy-bandwidth ceiling
//-------------===//
//
// Part of jamba-mlir.
//   jamba-bench-cuda [--device N] [--mib M] [--reps R] [--gemm G]
// measures the two ceilings the GPU benchmarks of scripts/gpu-check.sh are
// compared with:
// - the device-to-device copy bandwidth (HBM): R copies of M MiB on one
//   stream, timed each by wall clock around a stream synchronisation,
//   median reported; bandwidth counts the bytes read plus the bytes
//   written (2 M MiB per copy);
// - the cuBLAS bf16 GEMM rate: R GEMMs G x G x G (bf16 inputs, f32
//   accumulation and output, as the runtime's GEMMs), each timed with CUDA
//   events, median reported in TFLOP/s (2 G^3 flops); --gemm 0 skips it,
//   and a machine without cuBLAS reports "gemm: skipped (...)". Reaches the
//   driver like the
// runtime (dlopen, no CUDA link), so it builds and starts everywhere; on a
// machine without a GPU it prints "skipped: no GPU (...)" and exits 3.
//
//===----------------------------------------------------------------------===//

#include "jamba/Runtime/Cublas.h"
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
               "usage: jamba-bench-cuda [--device N] [--mib M] [--reps R] "
               "[--gemm G]\n",
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

/// The cuBLAS bf16 GEMM rate on `stream`: `reps` G x G x G GEMMs after a
/// warm-up one, each between two events; prints the median. 0, or 1 after
/// printing an error; no cuBLAS is reported as skipped (0).
int gemmRate(const CudaDriver &d, CUstream stream, int g, long reps) {
  if (uint64_t(g) * uint64_t(g) > uint64_t(1) << 31) {
    std::fprintf(stderr, "jamba-bench-cuda: error: --gemm %d is too large\n",
                 g);
    return 1;
  }
  CublasHandle blas(d, stream);
  StatusOr<cublasHandle_t> handle = blas.get();
  if (!handle.ok()) {
    std::printf("gemm: skipped (%s)\n", handle.status().message().c_str());
    return 0;
  }
  const CublasLibrary &l = *blas.library();
  const size_t elems = size_t(g) * size_t(g);
  CUdeviceptr a = 0, b = 0, c = 0;
  CUevent start = nullptr, stop = nullptr;
  // bf16 1.0 (0x3f80) everywhere: every sum is exact.
  bool ok = check(d, d.cuMemAlloc_v2(&a, elems * 2), "cuMemAlloc") &&
            check(d, d.cuMemAlloc_v2(&b, elems * 2), "cuMemAlloc") &&
            check(d, d.cuMemAlloc_v2(&c, elems * 4), "cuMemAlloc") &&
            check(d, d.cuMemsetD16Async(a, 0x3f80, elems, stream),
                  "cuMemsetD16Async") &&
            check(d, d.cuMemsetD16Async(b, 0x3f80, elems, stream),
                  "cuMemsetD16Async") &&
            check(d, d.cuEventCreate(&start, 0), "cuEventCreate") &&
            check(d, d.cuEventCreate(&stop, 0), "cuEventCreate");
  std::vector<double> ms;
  const float alpha = 1.0f, beta = 0.0f;
  for (long r = 0; ok && r < reps + 1; ++r) {
    ok = check(d, d.cuEventRecord(start, stream), "cuEventRecord");
    cublasStatus_t st =
        l.cublasGemmEx(*handle, CUBLAS_OP_N, CUBLAS_OP_N, g, g, g, &alpha,
                       reinterpret_cast<void *>(a), CUDA_R_16BF, g,
                       reinterpret_cast<void *>(b), CUDA_R_16BF, g, &beta,
                       reinterpret_cast<void *>(c), CUDA_R_32F, g,
                       CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (ok && st != CUBLAS_STATUS_SUCCESS) {
      std::fprintf(stderr, "jamba-bench-cuda: error: cublasGemmEx: %s\n",
                   l.statusText(st).c_str());
      ok = false;
    }
    float elapsed = 0;
    ok = ok && check(d, d.cuEventRecord(stop, stream), "cuEventRecord") &&
         check(d, d.cuStreamSynchronize(stream), "cuStreamSynchronize") &&
         check(d, d.cuEventElapsedTime(&elapsed, start, stop),
               "cuEventElapsedTime");
    if (ok && r > 0) // The first GEMM warms up.
      ms.push_back(double(elapsed));
  }
  if (ok) {
    std::sort(ms.begin(), ms.end());
    double median = ms[ms.size() / 2];
    std::printf("gemm: cuBLAS bf16 %dx%dx%d (f32 accumulate), median of %ld: "
                "%.3f ms, %.1f TFLOP/s\n",
                g, g, g, reps, median,
                2.0 * double(g) * double(g) * double(g) / (median * 1e-3) /
                    1e12);
  }
  if (start)
    d.cuEventDestroy_v2(start);
  if (stop)
    d.cuEventDestroy_v2(stop);
  for (CUdeviceptr p : {a, b, c})
    if (p)
      d.cuMemFree_v2(p);
  return ok ? 0 : 1;
}

} // namespace

int main(int argc, char **argv) {
  long device = 0, mib = 1024, reps = 20, gemm = 8192;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    long *target = arg == "--device" ? &device
                   : arg == "--mib"  ? &mib
                   : arg == "--reps" ? &reps
                   : arg == "--gemm" ? &gemm
                                     : nullptr;
    if (!target)
      return usage(("unknown option '" + arg + "'").c_str());
    if (i + 1 == argc)
      return usage((arg + " needs a value").c_str());
    const long min = target == &device || target == &gemm ? 0 : 1;
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
  int rc = gemm > 0 ? gemmRate(d, stream, int(gemm), reps) : 0;
  d.cuStreamDestroy_v2(stream);
  d.cuDevicePrimaryCtxRelease_v2(*dev);
  return rc;
}

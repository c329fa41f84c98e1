//===- triad.cpp - STREAM-like triad bandwidth ----------------------------===//
//
// Part of jamba-mlir. Prints the memory bandwidth of a = b + s * c over
// 3 x 256 MiB of doubles with 2 threads (24 bytes per element), the figure
// the CPU benchmarks are compared with (TOOLCHAIN.md). Median of 5.
//
//===----------------------------------------------------------------------===//

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

int main() {
  const size_t n = (size_t(256) << 20) / sizeof(double);
  std::vector<double> a(n, 0.0), b(n, 1.0), c(n, 2.0);
  const unsigned threads = 2;
  std::vector<double> rates;
  for (int rep = 0; rep < 5; ++rep) {
    auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        size_t lo = n * t / threads, hi = n * (t + 1) / threads;
        for (size_t i = lo; i < hi; ++i)
          a[i] = b[i] + 3.0 * c[i];
      });
    for (std::thread &th : pool)
      th.join();
    double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    rates.push_back(24.0 * double(n) / s / 1e9);
  }
  std::sort(rates.begin(), rates.end());
  std::printf("triad: %.1f GB/s (median of 5, 2 threads)\n", rates[2]);
  return a[n / 2] == 7.0 ? 0 : 1;
}

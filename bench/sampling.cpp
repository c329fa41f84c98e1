//===- sampling.cpp - The host's share of a decode step -------------------===//
//
// Part of jamba-mlir. `jamba-bench-sampling [VOCAB]` times what the host
// does with a decode step's logits once they are in its memory: choosing
// each row's next id (rt::sampleNext: greedy; sampled at temperature 1 over
// every id, which orders all of them; and with top-k 50),
// at batch 1, 8 and 32, next to a memcpy of the same bytes measured in the
// same run (the copy every step must make at least once, device to host).
// Random logits (normal, sd 3), vocab 65536 (Jamba's) by default; median
// of the repetitions. Figures only, no assertion: the machines are shared
// and noisy; compare the ratios to the memcpy of the same run.
//
//===----------------------------------------------------------------------===//

#include "jamba/Runtime/Generate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

using namespace jamba;

namespace {

using Clock = std::chrono::steady_clock;

template <class F> double medianMicroseconds(int reps, F &&f) {
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    Clock::time_point start = Clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start)
                    .count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

} // namespace

int main(int argc, char **argv) {
  int64_t vocab = 65536;
  if (argc > 2 || (argc == 2 && (vocab = std::atoll(argv[1])) <= 0)) {
    std::fprintf(stderr, "usage: jamba-bench-sampling [VOCAB > 0]\n");
    return 2;
  }
  std::printf("jamba-bench-sampling: vocab %lld, median of the repetitions\n",
              static_cast<long long>(vocab));
  rt::Rng draw(1);
  int64_t sink = 0;
  for (int64_t batch : {1, 8, 32}) {
    std::vector<float> logits(size_t(batch * vocab)), copy(logits.size());
    for (float &x : logits) {
      // Box-Muller: normal logits, sd 3.
      double u = 1.0 - draw.uniform(), v = draw.uniform();
      x = float(3.0 * std::sqrt(-2.0 * std::log(u)) *
                std::cos(6.283185307179586 * v));
    }
    auto choose = [&](const rt::SamplingOptions &o) {
      rt::Rng rng(7);
      for (int64_t b = 0; b < batch; ++b) {
        auto id = rt::sampleNext(logits.data() + b * vocab, vocab, o, rng);
        if (!id.ok()) {
          std::fprintf(stderr, "jamba-bench-sampling: %s\n",
                       id.status().message().c_str());
          std::exit(1);
        }
        sink += *id;
      }
    };
    rt::SamplingOptions greedy, every, topK;
    every.temperature = 1.0;
    topK.temperature = 1.0;
    topK.topK = 50;
    const int reps = batch == 32 ? 21 : 51;
    double copyUs = medianMicroseconds(reps, [&] {
      std::memcpy(copy.data(), logits.data(), logits.size() * sizeof(float));
      sink += int64_t(copy[size_t(sink) % copy.size()] > 0);
    });
    double greedyUs = medianMicroseconds(reps, [&] { choose(greedy); });
    double everyUs =
        medianMicroseconds(batch == 32 ? 5 : 11, [&] { choose(every); });
    double topKUs = medianMicroseconds(reps, [&] { choose(topK); });
    std::printf("batch %2lld: memcpy of the logits %8.1f us; greedy %8.1f us "
                "(%.2fx the memcpy, %.1f us per row); temperature 1 %9.1f us "
                "(%.1f us per row); top-k 50 %8.1f us (%.1f us per row)\n",
                static_cast<long long>(batch), copyUs, greedyUs,
                greedyUs / copyUs, greedyUs / double(batch), everyUs,
                everyUs / double(batch), topKUs, topKUs / double(batch));
  }
  std::printf("(checksum %lld)\n", static_cast<long long>(sink));
  return 0;
}

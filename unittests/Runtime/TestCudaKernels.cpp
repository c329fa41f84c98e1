//===- TestCudaKernels.cpp - Test kernels for a CUDA artifact -------------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// Test code, linked with TestKernels.cpp into the kernels file of the tests'
// CUDA artifacts (kernels/cuda-sm_90.so). It is shaped like a compiled CUDA
// kernels file: its global constructor loads its "GPU module" through the
// runtime's mgpuModuleLoadJIT and its destructor unloads it, and its packed
// entry points launch the module's kernels through mgpuLaunchKernel on the
// stream mgpuStreamCreate gives. The module is a FakeModuleImage whose
// kernels are TestKernels.cpp's model, so it runs under the fake driver
// (FakeCuda.h), and only there.
//
// With JAMBA_TEST_CUDA_BAD_MODULE set when the file is loaded, it hands
// the driver an image that is no module, to test a failed module load. The
// `_allreduce` entry points then sum their logits over the GPU ranks with
// the runtime's jamba_rt_cuda_all_reduce_f32 (on the session's stream,
// before the synchronisation), as a sharded artifact's host code does.
//
//===----------------------------------------------------------------------===//

#include "FakeCuda.h"

#include "jamba/Runtime/CudaKernelAbi.h"

#include <cstdlib>

using jamba::rt::testing::FakeKernel;
using jamba::rt::testing::FakeModuleImage;

extern "C" void jamba_test_prefill(void **args);
extern "C" void jamba_test_decode(void **args);

namespace {

/// The packed arguments of the model ABI: batch, seq, capacity, ids,
/// cache_len, 4 states, bias, logits, 4 states.
constexpr int64_t kNumArgs = 15;

const FakeKernel kKernels[] = {
    {"prefill", jamba_test_prefill, kNumArgs},
    {"decode", jamba_test_decode, kNumArgs},
};
const FakeModuleImage kImage = {"jamba-fake-cuda-module", 2, kKernels};
const char kNotAModule[] = "this is no module";

void *module = nullptr;

__attribute__((constructor)) void loadModule() {
  const void *image = std::getenv("JAMBA_TEST_CUDA_BAD_MODULE")
                          ? static_cast<const void *>(kNotAModule)
                          : static_cast<const void *>(&kImage);
  module = mgpuModuleLoadJIT(const_cast<void *>(image), 2);
}

__attribute__((destructor)) void unloadModule() { mgpuModuleUnload(module); }

/// The logits' vocabulary (TestKernels.cpp's model).
constexpr int64_t kVocab = 128;

/// What a compiled entry point's host code does: one launch on the
/// session's stream, whose parameters are the packed arguments themselves
/// (args[i] points at the i-th 8-byte value, as kernelParams wants), and
/// with `allReduce` the logits ([batch, seq, vocab], args[10]) summed over
/// the ranks.
void launch(const char *kernel, void **args, bool allReduce = false) {
  void *stream = mgpuStreamCreate();
  void *function = mgpuModuleGetFunction(module, kernel);
  mgpuLaunchKernel(function, 1, 1, 1, 1, 1, 1, 0, stream, args, nullptr,
                   kNumArgs);
  if (allReduce) {
    bool decode = kernel[0] == 'd';
    int64_t batch = *static_cast<int64_t *>(args[0]);
    int64_t seq = decode ? 1 : *static_cast<int64_t *>(args[1]);
    jamba_rt_cuda_all_reduce_f32(*static_cast<float **>(args[10]),
                                 batch * seq * kVocab);
  }
  mgpuStreamSynchronize(stream);
  mgpuStreamDestroy(stream);
}

} // namespace

extern "C" {
__attribute__((visibility("default"))) void
jamba_test_prefill_gpu(void **args) {
  launch("prefill", args);
}
__attribute__((visibility("default"))) void jamba_test_decode_gpu(void **args) {
  launch("decode", args);
}
__attribute__((visibility("default"))) void
jamba_test_prefill_gpu_allreduce(void **args) {
  launch("prefill", args, true);
}
__attribute__((visibility("default"))) void
jamba_test_decode_gpu_allreduce(void **args) {
  launch("decode", args, true);
}
}

//===- FakeCudaFixture.h - Tests over the fake CUDA library -----*- C++ -*-===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// Test code, for the test executable only (not the fake library, which
// includes FakeCuda.h): the control blocks of the fake driver, cuBLAS and
// NCCL (FakeCuda.h), found in the loaded fake library, and
// FakeCudaSessionTest, the fixture of the tests that drive a CUDA session
// (lib/Runtime/CudaSession.h) over the fake driver directly, without an
// artifact (CublasTest.cpp, NcclTest.cpp; CudaTest.cpp goes through the
// executor and takes only the control blocks).
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_UNITTESTS_RUNTIME_FAKECUDAFIXTURE_H
#define JAMBA_UNITTESTS_RUNTIME_FAKECUDAFIXTURE_H

#include "FakeCuda.h"

#include "CudaSession.h"
#include "jamba/Runtime/Cublas.h"
#include "jamba/Runtime/CudaDriver.h"
#include "jamba/Runtime/CudaKernelAbi.h"
#include "jamba/Runtime/Nccl.h"

#include "gtest/gtest.h"

#include <dlfcn.h>
#include <memory>
#include <optional>
#include <string>

namespace jamba {
namespace rt {
namespace testing {

inline bool startsWith(const std::string &text, const std::string &prefix) {
  return text.rfind(prefix, 0) == 0;
}

inline bool endsWith(const std::string &text, const std::string &suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// The control block the fake library exports as `symbol`
/// ("jamba_fake_cuda_control"); null unless the runtime has loaded the
/// library (as the fake driver, cuBLAS or NCCL).
template <class Control> Control *fakeControl(const char *symbol) {
  void *handle =
      ::dlopen(JAMBA_FAKE_CUDA_DRIVER, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
  if (!handle)
    return nullptr;
  auto get = reinterpret_cast<Control *(*)()>(::dlsym(handle, symbol));
  ::dlclose(handle);
  return get ? get() : nullptr;
}

inline FakeCudaControl *fakeCudaControl() {
  return fakeControl<FakeCudaControl>("jamba_fake_cuda_control");
}

inline FakeCublasControl *fakeCublasControl() {
  return fakeControl<FakeCublasControl>("jamba_fake_cublas_control");
}

inline FakeNcclControl *fakeNcclControl() {
  return fakeControl<FakeNcclControl>("jamba_fake_nccl_control");
}

/// A CUDA session on device 0 of the fake driver, active for the kernels'
/// entry points (jamba_rt_cuda_*) while the test runs. The runtime's cuBLAS
/// and NCCL are the fake's too. The fakes' knobs start at their defaults,
/// and their counters are recorded before the session opens (`baseline`,
/// `blasBaseline`, `ncclBaseline`), so that a test sees what the session
/// did; nothing may outlive the session.
class FakeCudaSessionTest : public ::testing::Test {
protected:
  void SetUp() override {
    cuda::setCudaDriverLibrary(JAMBA_FAKE_CUDA_DRIVER);
    // The fake driver's library is the fake cuBLAS and NCCL too.
    cuda::setCublasLibrary(JAMBA_FAKE_CUDA_DRIVER);
    cuda::setNcclLibrary(JAMBA_FAKE_CUDA_DRIVER);
    auto driver = cuda::loadCudaDriver();
    ASSERT_TRUE(driver.ok()) << driver.status().message();
    cudaFake = fakeCudaControl();
    blasFake = fakeCublasControl();
    ncclFake = fakeNcclControl();
    ASSERT_NE(cudaFake, nullptr);
    ASSERT_NE(blasFake, nullptr);
    ASSERT_NE(ncclFake, nullptr);
    cudaFake->resetKnobs();
    blasFake->resetKnobs();
    ncclFake->resetKnobs();
    ASSERT_TRUE(cuda::takeCudaError().ok());
    baseline = *cudaFake;
    blasBaseline = *blasFake;
    ncclBaseline = *ncclFake;

    auto opened = cuda::CudaSession::open(0);
    ASSERT_TRUE(opened.ok()) << opened.status().message();
    session = std::move(*opened);
    scope.emplace(&session->kernelTarget());
  }

  void TearDown() override {
    scope.reset();
    session.reset();
    (void)cuda::takeCudaError();
    cuda::setNcclLibrary("");
    cuda::setCublasLibrary("");
    cuda::setCudaDriverLibrary("");
    if (!cudaFake || !blasFake || !ncclFake)
      return; // SetUp failed.
    // Nothing outlives the session.
    EXPECT_EQ(cudaFake->liveAllocations, baseline.liveAllocations);
    EXPECT_EQ(blasFake->liveHandles, blasBaseline.liveHandles);
    EXPECT_EQ(ncclFake->liveComms, ncclBaseline.liveComms);
  }

  /// Closes the session and opens a new one on device 0, active as in
  /// SetUp (a test that needs a fresh session, e.g. for another rank).
  void reopenSession() {
    scope.reset();
    session.reset();
    auto opened = cuda::CudaSession::open(0);
    ASSERT_TRUE(opened.ok()) << opened.status().message();
    session = std::move(*opened);
    scope.emplace(&session->kernelTarget());
  }

  /// The recorded error (empty when none), taken.
  std::string takeError() {
    ckpt::Status s = cuda::takeCudaError();
    return s.ok() ? "" : s.message();
  }

  FakeCudaControl *cudaFake = nullptr;
  FakeCublasControl *blasFake = nullptr;
  FakeNcclControl *ncclFake = nullptr;
  FakeCudaControl baseline;
  FakeCublasControl blasBaseline;
  FakeNcclControl ncclBaseline;
  std::unique_ptr<cuda::CudaSession> session;
  std::optional<cuda::ActiveCudaTargetScope> scope;
};

} // namespace testing
} // namespace rt
} // namespace jamba

#endif // JAMBA_UNITTESTS_RUNTIME_FAKECUDAFIXTURE_H

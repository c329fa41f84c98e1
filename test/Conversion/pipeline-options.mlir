// Bad options of the lowering pipelines are refused before anything runs,
// with one error naming the option. Upstream passes crashed on an empty
// chip (SIGSEGV), accepted 'foo' on some runs, aborted on a PTX version too
// old for the chip, and printed an error but exited 0 for a bad format or
// toolkit (writing PTX that calls undefined libdevice functions); the CPU
// pipeline ignored the GPU kernels' options without gpu-kernels.

// RUN: not jamba-opt %s --jamba-gpu-lower-pipeline=chip= 2>&1 | FileCheck %s --check-prefix=CHIP
// RUN: not jamba-opt %s --jamba-gpu-lower-pipeline=chip=foo 2>&1 | FileCheck %s --check-prefix=CHIP
// RUN: not jamba-opt %s --jamba-gpu-lower-pipeline=chip=sm_120 2>&1 | FileCheck %s --check-prefix=CHIP
// CHIP: error: jamba-gpu-lower-pipeline: chip '{{.*}}' is not an architecture this pipeline builds for (sm_50 to sm_90a, e.g. sm_80, sm_90)

// RUN: not jamba-opt %s "--jamba-gpu-lower-pipeline=chip=sm_90 features=+ptx70" 2>&1 | FileCheck %s --check-prefix=PTX
// PTX: error: jamba-gpu-lower-pipeline: features: PTX 7.0 cannot target sm_90 (it needs +ptx78 or later)
// RUN: not jamba-opt %s --jamba-gpu-lower-pipeline=features=bogus 2>&1 | FileCheck %s --check-prefix=FEATURES
// FEATURES: error: jamba-gpu-lower-pipeline: features: expected +ptxNN items (got 'bogus')

// RUN: not jamba-opt %s --jamba-gpu-lower-pipeline=format=xyz 2>&1 | FileCheck %s --check-prefix=FORMAT
// FORMAT: error: jamba-gpu-lower-pipeline: format must be isa, bin or fatbin (got 'xyz')
// RUN: not jamba-opt %s --jamba-gpu-lower-pipeline=toolkit=/nonexistent 2>&1 | FileCheck %s --check-prefix=TOOLKIT
// TOOLKIT: error: jamba-gpu-lower-pipeline: toolkit '/nonexistent' is not a directory (the CUDA toolkit root, for libdevice and ptxas)
// RUN: not jamba-opt %s --jamba-gpu-lower-pipeline=attention-mma-min-tokens=-3 2>&1 | FileCheck %s --check-prefix=GPUMMA
// GPUMMA: error: jamba-gpu-lower-pipeline: attention-mma-min-tokens must be at least 0 (got -3)

// RUN: not jamba-opt %s --jamba-cpu-lower-pipeline=cpu-attention-split-keys=-5 2>&1 | FileCheck %s --check-prefix=SPLITKEYS
// SPLITKEYS: error: jamba-cpu-lower-pipeline: cpu-attention-split-keys must be in [0, 1099511627776] (got -5)
// RUN: not jamba-opt %s --jamba-cpu-lower-pipeline=tensor-cores=1 2>&1 | FileCheck %s --check-prefix=NOGPU
// NOGPU: error: jamba-cpu-lower-pipeline: tensor-cores needs gpu-kernels=1
// RUN: not jamba-opt %s --jamba-cpu-lower-pipeline=expert-gemm-grouped-rows=8 2>&1 | FileCheck %s --check-prefix=NOGPU2
// NOGPU2: error: jamba-cpu-lower-pipeline: expert-gemm-grouped-rows needs gpu-kernels=1
// RUN: not jamba-opt %s --jamba-cpu-lower-pipeline=scan-lane-threads=0 2>&1 | FileCheck %s --check-prefix=NOGPU3
// NOGPU3: error: jamba-cpu-lower-pipeline: scan-lane-threads needs gpu-kernels=1
// RUN: not jamba-opt %s --jamba-gpu-lower-pipeline=scan-lane-threads=-2 2>&1 | FileCheck %s --check-prefix=GPULANES
// GPULANES: error: jamba-gpu-lower-pipeline: scan-lane-threads must be in [0, 1073741824] (got -2)
// RUN: not jamba-opt %s "--jamba-cpu-lower-pipeline=gpu-kernels=1 expert-gemm-lanes=0" 2>&1 | FileCheck %s --check-prefix=LANES
// LANES: error: jamba-cpu-lower-pipeline: expert-gemm-lanes must be in [1, 1024] (got 0)

// Good options still lower.
// RUN: jamba-opt %s "--jamba-gpu-lower-pipeline=chip=sm_80 features=+ptx70" | FileCheck %s --check-prefix=OK
// RUN: jamba-opt %s "--jamba-cpu-lower-pipeline=gpu-kernels=1 tensor-cores=1" | FileCheck %s --check-prefix=OK
// OK: llvm.func @f

func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {
  %y = arith.addf %x, %x : tensor<4xf32>
  return %y : tensor<4xf32>
}

// RUN: jamba-opt %s -jamba-gpu-kernels="attention-keys-per-split=16 attention-max-splits=4" | FileCheck %s
// RUN: not jamba-opt %s -jamba-gpu-kernels="attention-keys-per-split=0" 2>&1 | FileCheck %s --check-prefix=ZERO
// RUN: not jamba-opt %s -jamba-gpu-kernels="attention-max-splits=-1" 2>&1 | FileCheck %s --check-prefix=NEG
// RUN: not jamba-opt %s -jamba-gpu-kernels="expert-gemm-lanes=0" 2>&1 | FileCheck %s --check-prefix=LANES
// RUN: not jamba-opt %s -jamba-gpu-kernels="scan-chunk-steps=0" 2>&1 | FileCheck %s --check-prefix=CHUNK
// RUN: not jamba-opt %s -jamba-gpu-kernels="scan-lane-threads=-1" 2>&1 | FileCheck %s --check-prefix=SCANLANES
// RUN: not jamba-opt %s -jamba-gpu-kernels="expert-gemm-lanes=9223372036854775807" 2>&1 | FileCheck %s --check-prefix=HUGE
// RUN: not jamba-opt %s -jamba-gpu-kernels="expert-gemm-grouped-rows=-1" 2>&1 | FileCheck %s --check-prefix=ROWS

// The split-KV attention's options reach the split count: min(4,
// ceil(capacity / 16)), divided by the call's tokens.

// CHECK-LABEL: func.func @attention
// CHECK: %[[WANT:.+]] = arith.ceildivui %{{.+}}, %c16
// CHECK: arith.minui %c4{{.*}}, %[[WANT]]

// Splits of no keys, or no splits, are refused; so are values whose
// products with the row and token counts would overflow (the lane budget
// wrapped round to INT64_MAX lanes and sized a buffer with it).
// ZERO: error: jamba-gpu-kernels: attention-keys-per-split must be in [1, 16777216] (got 0)
// NEG: error: jamba-gpu-kernels: attention-max-splits must be in [1, 65536] (got -1)
// LANES: error: jamba-gpu-kernels: expert-gemm-lanes must be in [1, 1024] (got 0)
// CHUNK: error: jamba-gpu-kernels: scan-chunk-steps must be in [1, 16777216] (got 0)
// SCANLANES: error: jamba-gpu-kernels: scan-lane-threads must be in [0, 1073741824] (got -1)
// HUGE: error: jamba-gpu-kernels: expert-gemm-lanes must be in [1, 1024] (got 9223372036854775807)
// ROWS: error: jamba-gpu-kernels: expert-gemm-grouped-rows must be in [0, 1073741824] (got -1)
func.func @attention(%q: tensor<1x?x32xf32>, %k: tensor<1x?x16xf32>, %v: tensor<1x?x16xf32>,
                     %kc: tensor<1x2x?x8xf32>, %vc: tensor<1x2x?x8xf32>, %len: tensor<1xi64>)
    -> (tensor<1x?x32xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>) {
  %o, %k2, %v2 = jamba.cached_attention %q, %k, %v, cache(%kc, %vc, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x?x32xf32>, tensor<1x?x16xf32>, tensor<1x?x16xf32>, tensor<1x2x?x8xf32>,
         tensor<1x2x?x8xf32>, tensor<1xi64>)
      -> (tensor<1x?x32xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>)
  return %o, %k2, %v2 : tensor<1x?x32xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>
}

// RUN: jamba-opt %s -split-input-file -jamba-gpu-kernels="attention-tensor-cores=1" | FileCheck %s
// RUN: jamba-opt %s -split-input-file -jamba-gpu-kernels="attention-tensor-cores=1 emulate-mma=1" \
// RUN:   | FileCheck %s --check-prefix=EMU
// RUN: jamba-opt %s -split-input-file -jamba-gpu-kernels | FileCheck %s --check-prefix=OFF
// RUN: not jamba-opt %s -split-input-file -jamba-gpu-kernels="attention-tensor-cores=1 attention-mma-min-tokens=0" 2>&1 \
// RUN:   | FileCheck %s --check-prefix=ERR

// Flash attention on tensor cores (attention-tensor-cores) for a call of 16
// tokens or more: head dim 16, 4 heads over 2 kv heads. The choice is made
// at run time: from 16 tokens on the tensor-core nest has ceil(tokens / 16)
// tiles and the split nests no tokens, below it the reverse. One iteration
// per (sequence, head, tile, lane), the lane dimension exactly a warp. A
// lane loads its Q fragments once (rows g and g + 8, its 4 channels: one
// 16-byte load each, rounded to bf16), then walks the keys 16 at a time:
// its 2 key rows (16-byte loads), 2 mma.sync for S = Q K^T (one k-slice per
// n-block of 8 keys), the scores scaled and masked, each row's maximum over
// the quad (2 butterfly shuffles per row), the weights exp(score - max)
// rounded to bf16, its 4 value rows at its 2 channels (8-byte loads) and 2
// mma.sync for O += P V (one n-block of 8 channels each), the state (2
// n-blocks of 4 accumulators, 2 row maxima, 2 row sums) carried. After the
// loop the row sums over the quad, and the guarded stores of O / sum. Two
// copies: aligned vectors, or element loads when the runtime test fails.

// CHECK-LABEL: func.func @attention
// CHECK: %[[USE:.+]] = arith.cmpi uge, %[[SEQ:.+]], %c16
// CHECK: %[[TILES:.+]] = arith.ceildivui %[[SEQ]], %c16
// CHECK: %[[NT:.+]] = arith.select %[[USE]], %[[TILES]], %c0
// CHECK: %[[SPLIT_SEQ:.+]] = arith.select %[[USE]], %c0{{.*}}, %[[SEQ]]
// CHECK: scf.parallel ({{.+}}) = ({{.+}}) to (%{{.+}}, %c4{{.*}}, %[[NT]], %c32{{.*}})
// CHECK:   scf.if
// CHECK-COUNT-2: vector.load {{.+}} {alignment = 16 : i64} : memref<2x?x64xf32{{.*}}>, vector<4xf32>
// CHECK:     scf.for %{{.+}} = %c0{{.*}} to %{{.+}} step %c16{{.*}} iter_args({{.+}}) -> (f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32)
// CHECK-COUNT-2: vector.load {{.+}} {alignment = 16 : i64} : memref<2x2x?x16xf32{{.*}}>, vector<4xf32>
// CHECK-COUNT-2: nvvm.mma.sync A[{{.+}}] B[{{.+}}] C[{{.+}}] {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>, multiplicandAPtxType = #nvvm.mma_type<bf16>, multiplicandBPtxType = #nvvm.mma_type<bf16>, shape = #nvvm.shape<m = 16, n = 8, k = 16>}
// CHECK-COUNT-4: gpu.shuffle  xor
// CHECK:       math.exp
// CHECK:       arith.truncf %{{.+}} : f32 to bf16
// CHECK-COUNT-4: vector.load {{.+}} {alignment = 8 : i64} : memref<2x2x?x16xf32{{.*}}>, vector<2xf32>
// CHECK-COUNT-2: nvvm.mma.sync
// CHECK:     }
// CHECK-COUNT-4: gpu.shuffle  xor
// CHECK:     scf.if
// CHECK-COUNT-4: memref.store %{{.+}} {jamba.kernel = "attention_mma"}
// CHECK:   } else {
// CHECK:     vector.load {{.+}} {alignment = 4 : i64} : memref<2x?x64xf32{{.*}}>, vector<4xf32>
// CHECK: } {jamba.kernel = "attention_mma"}
// CHECK: scf.parallel ({{.+}}) = ({{.+}}) to (%{{.+}}, %c4{{.*}}, %{{.+}}, %[[SPLIT_SEQ]])
// CHECK: } {jamba.kernel = "attention_splits"}
// CHECK: scf.parallel ({{.+}}) = ({{.+}}) to (%{{.+}}, %[[SPLIT_SEQ]], %c4{{.*}}, %c16{{.*}})
// CHECK: } {jamba.kernel = "attention_combine"}

// The emulation (a test aid for CPUs): no mma.sync and no shuffles; the
// warp is one iteration, its register sets vectors of all 32 lanes'.
// EMU-LABEL: func.func @attention
// EMU-NOT: nvvm.mma.sync
// EMU-NOT: gpu.shuffle
// EMU: scf.parallel ({{.+}}) = ({{.+}}) to (%{{.+}}, %c4{{.*}}, %{{[^,]+}}) step
// EMU: scf.for {{.+}} iter_args({{.+}}) -> (vector<128xf32>, vector<128xf32>, vector<64xf32>, vector<64xf32>)
// EMU: } {jamba.kernel = "attention_mma"}

// Without the option: split-KV attention only.
// OFF-LABEL: func.func @attention
// OFF-NOT: attention_mma
// OFF: } {jamba.kernel = "attention_splits"}

// ERR: error: jamba-gpu-kernels: attention-mma-min-tokens must be at least 1 (got 0)
func.func @attention(%q: tensor<2x?x64xf32>, %k: tensor<2x?x32xf32>, %v: tensor<2x?x32xf32>,
                     %kc: tensor<2x2x?x16xf32>, %vc: tensor<2x2x?x16xf32>, %len: tensor<2xi64>)
    -> (tensor<2x?x64xf32>, tensor<2x2x?x16xf32>, tensor<2x2x?x16xf32>) {
  %o, %k2, %v2 = jamba.cached_attention %q, %k, %v, cache(%kc, %vc, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<2x?x64xf32>, tensor<2x?x32xf32>, tensor<2x?x32xf32>, tensor<2x2x?x16xf32>,
         tensor<2x2x?x16xf32>, tensor<2xi64>)
      -> (tensor<2x?x64xf32>, tensor<2x2x?x16xf32>, tensor<2x2x?x16xf32>)
  return %o, %k2, %v2 : tensor<2x?x64xf32>, tensor<2x2x?x16xf32>, tensor<2x2x?x16xf32>
}

// -----

// A head dimension of 8 (not a multiple of 16, mma.sync's K): split-KV only.
// CHECK-LABEL: func.func @head_dim_8
// CHECK-NOT: attention_mma
// CHECK: } {jamba.kernel = "attention_splits"}
func.func @head_dim_8(%q: tensor<1x?x32xf32>, %k: tensor<1x?x16xf32>, %v: tensor<1x?x16xf32>,
                      %kc: tensor<1x2x?x8xf32>, %vc: tensor<1x2x?x8xf32>, %len: tensor<1xi64>)
    -> (tensor<1x?x32xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>) {
  %o, %k2, %v2 = jamba.cached_attention %q, %k, %v, cache(%kc, %vc, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x?x32xf32>, tensor<1x?x16xf32>, tensor<1x?x16xf32>, tensor<1x2x?x8xf32>,
         tensor<1x2x?x8xf32>, tensor<1xi64>)
      -> (tensor<1x?x32xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>)
  return %o, %k2, %v2 : tensor<1x?x32xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>
}

// RUN: jamba-opt %s -split-input-file -jamba-gpu-kernels="attention-tensor-cores=1" | FileCheck %s
// RUN: jamba-opt %s -split-input-file -jamba-gpu-kernels="attention-tensor-cores=1 emulate-mma=1" \
// RUN:   | FileCheck %s --check-prefix=EMU
// RUN: jamba-opt %s -split-input-file -jamba-gpu-kernels | FileCheck %s --check-prefix=OFF
// RUN: not jamba-opt %s -split-input-file -jamba-gpu-kernels="attention-tensor-cores=1 attention-mma-min-tokens=0" 2>&1 \
// RUN:   | FileCheck %s --check-prefix=ERR

// Flash attention on tensor cores (attention-tensor-cores): head dim 16, 4
// heads over 2 kv heads (groups of 2). The choice is made at run time:
// from attention-mma-min-tokens (1: every call) on, the tensor-core nest has
// ceil(tokens / 8) tiles (16 rows: 8 tokens x 2 heads) and the split nest no
// tokens; the combine nest runs only when the keys are split (a decode
// step). One iteration per (sequence, kv head, tile, split, lane), the lane
// dimension exactly a warp. A lane loads its Q fragments once (rows g and
// g + 8, its 4 channels: one 16-byte load each, rounded to bf16), then
// walks its split of the keys 16 at a time: its 2 key rows (16-byte loads),
// 2 mma.sync for S = Q K^T (one k-slice per n-block of 8 keys), the scores
// scaled and masked, each row's maximum over the quad (2 butterfly shuffles
// per row), the rescaling (0, not exp, while a row's maximum is still
// -inf), the weights exp(score - max) rounded to bf16, its 4 value rows at
// its 2 channels (8-byte loads) and 2 mma.sync for O += P V (one n-block of
// 8 channels each), the state (2 n-blocks of 4 accumulators, 2 row maxima,
// 2 row sums) carried. After the loop the row sums over the quad, and the
// guarded stores: with one split, O / sum into the output; with several,
// the partial rows, and (maximum, sum) from each quad's first lane. Two
// copies: aligned vectors, or element loads when the runtime test fails.

// CHECK-LABEL: func.func @attention
// CHECK: %[[USE:.+]] = arith.cmpi uge, %[[SEQ:.+]], %c1
// CHECK: %[[SPLIT_SEQ:.+]] = arith.select %[[USE]], %c0{{.*}}, %[[SEQ]]
// CHECK: %[[ONE_SPLIT:.+]] = arith.cmpi eq, %[[SPLITS:.+]], %c1
// CHECK: %[[NO_COMBINE:.+]] = arith.andi %[[USE]], %[[ONE_SPLIT]]
// CHECK: %[[COMBINE_SEQ:.+]] = arith.select %[[NO_COMBINE]], %c0{{.*}}, %[[SEQ]]
// CHECK: %[[PART:.+]] = memref.alloc(%{{.+}}, %[[COMBINE_SEQ]], %[[SPLITS]]) : memref<?x?x4x?x16xf32>
// CHECK: %[[STATS:.+]] = memref.alloc(%{{.+}}, %[[COMBINE_SEQ]], %[[SPLITS]]) : memref<?x?x4x?x2xf32>
// CHECK: %[[TILES:.+]] = arith.ceildivui %[[SEQ]], %c8
// CHECK: %[[NT:.+]] = arith.select %[[USE]], %[[TILES]], %c0
// CHECK: scf.parallel ({{.+}}) = ({{.+}}) to (%{{.+}}, %c2{{.*}}, %[[NT]], %[[SPLITS]], %c32{{.*}})
// CHECK:   scf.if
// CHECK-COUNT-2: vector.load {{.+}} {alignment = 16 : i64} : memref<2x?x64xf32{{.*}}>, vector<4xf32>
// CHECK:     scf.for %{{.+}} = %{{.+}} to %{{.+}} step %c16{{.*}} iter_args({{.+}}) -> (f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32)
// CHECK-COUNT-2: vector.load {{.+}} {alignment = 16 : i64} : memref<2x2x?x16xf32{{.*}}>, vector<4xf32>
// CHECK-COUNT-2: nvvm.mma.sync A[{{.+}}] B[{{.+}}] C[{{.+}}] {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>, multiplicandAPtxType = #nvvm.mma_type<bf16>, multiplicandBPtxType = #nvvm.mma_type<bf16>, shape = #nvvm.shape<m = 16, n = 8, k = 16>}
// CHECK-COUNT-4: gpu.shuffle  xor
// CHECK:       %[[NINF:.+]] = arith.constant 0xFF800000 : f32
// CHECK:       %[[NEW_MAX:.+]] = arith.maximumf %[[OLD_MAX:.+]], %{{.+}} : f32
// CHECK-NEXT:  %[[SEEN:.+]] = arith.cmpf ogt, %[[OLD_MAX]], %[[NINF]] : f32
// CHECK-NEXT:  %[[DIFF:.+]] = arith.subf %[[OLD_MAX]], %[[NEW_MAX]] : f32
// CHECK-NEXT:  %[[EXP:.+]] = math.exp %[[DIFF]] : f32
// CHECK-NEXT:  arith.select %[[SEEN]], %[[EXP]], %{{.+}} : f32
// CHECK:       arith.truncf %{{.+}} : f32 to bf16
// CHECK-COUNT-4: vector.load {{.+}} {alignment = 8 : i64} : memref<2x2x?x16xf32{{.*}}>, vector<2xf32>
// CHECK-COUNT-2: nvvm.mma.sync
// CHECK:     }
// CHECK-COUNT-4: gpu.shuffle  xor
// CHECK:     scf.if
// CHECK:       scf.if
// CHECK-COUNT-4: memref.store %{{.+}}, %{{.+}} {jamba.kernel = "attention_mma"} : memref<2x?x64xf32>
// CHECK:       } else {
// CHECK-COUNT-4: memref.store %{{.+}}, %[[PART]][{{.+}}] {jamba.kernel = "attention_mma"}
// CHECK:         scf.if
// CHECK-COUNT-2: memref.store %{{.+}}, %[[STATS]][{{.+}}] {jamba.kernel = "attention_mma"}
// CHECK:   } else {
// CHECK:     vector.load {{.+}} {alignment = 4 : i64} : memref<2x?x64xf32{{.*}}>, vector<4xf32>
// CHECK: } {jamba.kernel = "attention_mma"}
// CHECK: scf.parallel ({{.+}}) = ({{.+}}) to (%{{.+}}, %c4{{.*}}, %[[SPLITS]], %[[SPLIT_SEQ]])
// CHECK: } {jamba.kernel = "attention_splits"}
// CHECK: scf.parallel ({{.+}}) = ({{.+}}) to (%{{.+}}, %[[COMBINE_SEQ]], %c4{{.*}}, %c16{{.*}})
// CHECK: } {jamba.kernel = "attention_combine"}

// The emulation (a test aid for CPUs): no mma.sync and no shuffles; the
// warp is one iteration, its register sets vectors of all 32 lanes'.
// EMU-LABEL: func.func @attention
// EMU-NOT: nvvm.mma.sync
// EMU-NOT: gpu.shuffle
// EMU: scf.parallel ({{.+}}) = ({{.+}}) to (%{{.+}}, %c2{{.*}}, %{{.+}}, %{{[^,]+}}) step
// EMU: scf.for {{.+}} iter_args({{.+}}) -> (vector<128xf32>, vector<128xf32>, vector<64xf32>, vector<64xf32>)
// EMU: } {jamba.kernel = "attention_mma"}

// Without the option: split-KV attention only.
// OFF-LABEL: func.func @attention
// OFF-NOT: attention_mma
// OFF: } {jamba.kernel = "attention_splits"}

// ERR: error: jamba-gpu-kernels: attention-mma-min-tokens must be in [1, 1073741824] (got 0)
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

// -----

// Groups of 3 query heads per kv head (3 does not divide the 16 rows of a
// tile): split-KV only.
// CHECK-LABEL: func.func @groups_of_3
// CHECK-NOT: attention_mma
// CHECK: } {jamba.kernel = "attention_splits"}
func.func @groups_of_3(%q: tensor<1x?x96xf32>, %k: tensor<1x?x32xf32>, %v: tensor<1x?x32xf32>,
                       %kc: tensor<1x2x?x16xf32>, %vc: tensor<1x2x?x16xf32>, %len: tensor<1xi64>)
    -> (tensor<1x?x96xf32>, tensor<1x2x?x16xf32>, tensor<1x2x?x16xf32>) {
  %o, %k2, %v2 = jamba.cached_attention %q, %k, %v, cache(%kc, %vc, %len)
      {num_heads = 6 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x?x96xf32>, tensor<1x?x32xf32>, tensor<1x?x32xf32>, tensor<1x2x?x16xf32>,
         tensor<1x2x?x16xf32>, tensor<1xi64>)
      -> (tensor<1x?x96xf32>, tensor<1x2x?x16xf32>, tensor<1x2x?x16xf32>)
  return %o, %k2, %v2 : tensor<1x?x96xf32>, tensor<1x2x?x16xf32>, tensor<1x2x?x16xf32>
}

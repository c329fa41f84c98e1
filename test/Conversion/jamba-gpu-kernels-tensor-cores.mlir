// RUN: jamba-opt %s -split-input-file -jamba-gpu-kernels="expert-gemm-tensor-cores=1" | FileCheck %s
// RUN: jamba-opt %s -split-input-file -jamba-gpu-kernels="expert-gemm-tensor-cores=1 emulate-mma=1" \
// RUN:   | FileCheck %s --check-prefix=EMU
// RUN: jamba-opt %s -split-input-file -jamba-gpu-kernels | FileCheck %s --check-prefix=OFF

// The tensor-core expert GEMM (expert-gemm-tensor-cores) for the grouped
// rows of int8 experts with K = 128 (two steps of 64): the rows sorted by
// expert into tiles of 32 (two m-blocks of 16), then one iteration per
// (tile, 64 outputs n, lane), the lane dimension exactly 32 (a warp). The
// f32 inputs are first copied to bf16 (one nest over the grouped rows'
// inputs, rounded to nearest even as the tiles rounded them), which the
// tiles read. Per step a lane loads 16 consecutive k of its four input
// rows (bf16, two 16-byte loads each, packed two per i32) and of its
// eight weight rows (one 16-byte load of int8 each, widened exactly
// through f32: the upper halves), and issues 64 mma.sync m16n8k16 with
// bf16 operands (2 m-blocks x 8 blocks of 8 outputs x 4 k-slices), into 64
// f32 accumulators. Four K loops: aligned 16-byte loads, or element loads
// when the runtime test fails; each with both m-blocks, or with the first
// alone (32 mma.sync, 32 accumulators) for a tile of at most 16 rows. The
// epilogue scales, weights by the route and stores each of the 64
// accumulators whose row and n exist.

// CHECK-LABEL: func.func @int8_experts
// CHECK: %[[TILE_ROWS:.+]] = arith.constant 32 : index
// CHECK: } {jamba.kernel = "expert_gemm_offsets"}
// CHECK: %[[XB:.+]] = memref.alloc(%{{.+}}) : memref<?x2x128xbf16>
// CHECK: scf.parallel
// CHECK:   arith.truncf %{{.+}} : f32 to bf16
// CHECK:   memref.store %{{.+}}, %[[XB]]
// CHECK: } {jamba.kernel = "expert_gemm_inputs_bf16"}
// CHECK: scf.parallel (%[[T:.+]], %[[W:.+]], %[[LANE:.+]]) = ({{.+}}) to (%{{.+}}, %{{.+}}, %c32{{.*}})
// CHECK:   scf.if
// CHECK:     %[[ONE_BLOCK:.+]] = arith.cmpi ule, %{{.+}}, %c16
// CHECK:     scf.if %{{.+}} -> (f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32) {
// CHECK:     scf.if %[[ONE_BLOCK]] -> (f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32) {
// CHECK:     scf.for %{{.+}} = %{{.+}} to %{{.+}} step %c64{{.*}} iter_args({{.+}}) -> (f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32)
// CHECK-COUNT-32: nvvm.mma.sync
// CHECK-NOT:   nvvm.mma.sync
// CHECK:     } else {
// CHECK:     scf.for %{{.+}} = %{{.+}} to %{{.+}} step %c64{{.*}} iter_args({{.+}}) -> (f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32)
// CHECK:       arith.remui %[[LANE]], %c4
// CHECK:       vector.load %[[XB]]{{.+}} {alignment = 16 : i64} : memref<?x2x128xbf16>, vector<8xbf16>
// CHECK-NOT:   arith.truncf
// CHECK:       vector.bitcast %{{.+}} : vector<8xbf16> to vector<4xi32>
// CHECK:       vector.load {{.+}} {alignment = 16 : i64} : memref<4x40x128xi8{{.*}}>, vector<16xi8>
// The int8 weights widened without conversions (widenInt8ByBits): sign
// bits flipped, each byte in the low byte of 2^23, 2^23 + 128 subtracted;
// the high halves of the exact f32 are the bf16.
// CHECK:       %[[WORDS:.+]] = vector.bitcast %{{.+}} : vector<16xi8> to vector<4xi32>
// CHECK:       arith.xori %[[WORDS]], %{{.+}} : vector<4xi32>
// CHECK:       arith.extui %{{.+}} : vector<16xi8> to vector<16xi32>
// CHECK:       arith.ori %{{.+}}, %{{.+}} : vector<16xi32>
// CHECK:       arith.bitcast %{{.+}} : vector<16xi32> to vector<16xf32>
// CHECK:       arith.subf %{{.+}}, %{{.+}} : vector<16xf32>
// CHECK-NOT:   arith.sitofp
// CHECK:       vector.bitcast %{{.+}} : vector<16xf32> to vector<32xi16>
// CHECK:       vector.shuffle {{.+}} [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31]
// CHECK-COUNT-64: nvvm.mma.sync A[{{.+}}] B[{{.+}}] C[{{.+}}] {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>, multiplicandAPtxType = #nvvm.mma_type<bf16>, multiplicandBPtxType = #nvvm.mma_type<bf16>, shape = #nvvm.shape<m = 16, n = 8, k = 16>} : (i32, i32, f32) -> !llvm.struct<(f32, f32, f32, f32)>
// CHECK-NOT:   nvvm.mma.sync
// CHECK:     } else {
// CHECK:       vector.load %[[XB]]{{.+}} {alignment = 2 : i64} : memref<?x2x128xbf16>, vector<8xbf16>
// CHECK:       vector.load {{.+}} {alignment = 1 : i64} : memref<4x40x128xi8{{.*}}>, vector<16xi8>
// CHECK-COUNT-32: nvvm.mma.sync
// CHECK-NOT:   nvvm.mma.sync
// CHECK:     } else {
// CHECK-COUNT-64: nvvm.mma.sync
// CHECK-NOT:   nvvm.mma.sync
// CHECK:     }
// CHECK-COUNT-64: memref.store %{{.+}}, %{{.+}} {jamba.kernel = "expert_gemm_mma"}
// CHECK: } {jamba.kernel = "expert_gemm_mma"}
// CHECK-NOT: expert_gemm_grouped

// The emulation (a test aid for CPUs): no mma.sync; the warp is one
// iteration, its register sets vectors of all 32 lanes' registers (the
// accumulators, 4 x 32 f32 per block: 8 blocks for one m-block, 16 for
// both).
// EMU-LABEL: func.func @int8_experts
// EMU-NOT: nvvm.mma.sync
// EMU: scf.parallel ({{.+}}) = ({{.+}}) to (%{{.+}}, %{{[^,]+}}) step
// EMU: scf.for {{.+}} step %c64{{.*}} iter_args({{.+}}) -> (vector<128xf32>, vector<128xf32>, vector<128xf32>, vector<128xf32>, vector<128xf32>, vector<128xf32>, vector<128xf32>, vector<128xf32>)
// EMU: scf.for {{.+}} step %c64{{.*}} iter_args({{.+}}) -> (vector<128xf32>, vector<128xf32>, vector<128xf32>, vector<128xf32>, vector<128xf32>, vector<128xf32>, vector<128xf32>, vector<128xf32>, vector<128xf32>, vector<128xf32>, vector<128xf32>, vector<128xf32>, vector<128xf32>, vector<128xf32>, vector<128xf32>, vector<128xf32>)
// EMU: } {jamba.kernel = "expert_gemm_mma"}

// Without the option: the CUDA-core grouped form (tiles of 8).
// OFF-LABEL: func.func @int8_experts
// OFF-NOT: nvvm.mma.sync
// OFF: } {jamba.kernel = "expert_gemm_grouped"}
func.func @int8_experts(%x: tensor<?x2x128xf32>, %q: tensor<4x40x128xi8>, %s: tensor<4x40xf32>,
                        %idx: tensor<?x2xi32>, %rw: tensor<?x2xf32>) -> tensor<?x2x40xf32> {
  %y = jamba.expert_gemm %x, %q scale(%s) indices(%idx) route_weights(%rw)
      : (tensor<?x2x128xf32>, tensor<4x40x128xi8>, tensor<4x40xf32>, tensor<?x2xi32>,
         tensor<?x2xf32>) -> tensor<?x2x40xf32>
  return %y : tensor<?x2x40xf32>
}

// -----

// bf16 experts: two 16-byte loads of 8 bf16 per weight row, no conversion.
// CHECK-LABEL: func.func @bf16_experts
// CHECK: scf.parallel ({{.+}}) = ({{.+}}) to ({{.+}}, %c32{{.*}})
// CHECK: vector.load {{.+}} {alignment = 16 : i64} : memref<4x40x64xbf16{{.*}}>, vector<8xbf16>
// CHECK: vector.bitcast %{{.+}} : vector<8xbf16> to vector<4xi32>
// CHECK: nvvm.mma.sync
// CHECK: } {jamba.kernel = "expert_gemm_mma"}
func.func @bf16_experts(%x: tensor<?x64xf32>, %w: tensor<4x40x64xbf16>, %idx: tensor<?x2xi32>)
    -> tensor<?x2x40xf32> {
  %y = jamba.expert_gemm %x, %w indices(%idx)
      : (tensor<?x64xf32>, tensor<4x40x64xbf16>, tensor<?x2xi32>) -> tensor<?x2x40xf32>
  return %y : tensor<?x2x40xf32>
}

// -----

// Not for tensor cores, so the CUDA-core grouped form: f32 experts (their
// products would lose the f32 weights' precision) and K not a multiple of
// 64.
// CHECK-LABEL: func.func @not_eligible
// CHECK-NOT: nvvm.mma.sync
// CHECK: } {jamba.kernel = "expert_gemm_grouped"}
// CHECK-NOT: nvvm.mma.sync
// CHECK: } {jamba.kernel = "expert_gemm_grouped"}
func.func @not_eligible(%x: tensor<?x64xf32>, %w: tensor<4x40x64xf32>, %xk: tensor<?x96xf32>,
                        %q: tensor<4x40x96xi8>, %s: tensor<4x40xf32>, %idx: tensor<?x2xi32>)
    -> (tensor<?x2x40xf32>, tensor<?x2x40xf32>) {
  %y = jamba.expert_gemm %x, %w indices(%idx)
      : (tensor<?x64xf32>, tensor<4x40x64xf32>, tensor<?x2xi32>) -> tensor<?x2x40xf32>
  %z = jamba.expert_gemm %xk, %q scale(%s) indices(%idx)
      : (tensor<?x96xf32>, tensor<4x40x96xi8>, tensor<4x40xf32>, tensor<?x2xi32>) -> tensor<?x2x40xf32>
  return %y, %z : tensor<?x2x40xf32>, tensor<?x2x40xf32>
}

// RUN: jamba-opt %s -split-input-file -jamba-gpu-map-loops -verify-diagnostics | FileCheck %s
// RUN: not jamba-opt %s -split-input-file -jamba-gpu-map-loops="block-size=48" 2>&1 \
// RUN:   | FileCheck %s --check-prefix=B48

// A nest with a warp-collective op (nvvm.mma.sync, gpu.shuffle: all 32
// lanes of a warp take part) maps only if every warp is one index of its
// outer dimensions: the innermost dimension a static multiple of 32 from 0
// by 1 (the linear order keeps it fastest) and blocks of a multiple of 32
// threads.

// CHECK-LABEL: func.func @whole_warps
// CHECK: nvvm.mma.sync
// CHECK: } {mapping = [#gpu.loop_dim_map<processor = block_x
// B48: error: jamba-gpu-map-loops: a nest with a warp-collective op ('nvvm.mma.sync') needs block-size to be a multiple of 32, got 48
func.func @whole_warps(%n: index, %a: i32, %c: f32, %out: memref<?x32xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c32 = arith.constant 32 : index
  scf.parallel (%i, %lane) = (%c0, %c0) to (%n, %c32) step (%c1, %c1) {
    %d = nvvm.mma.sync A[%a, %a, %a, %a] B[%a, %a] C[%c, %c, %c, %c]
        {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>,
         multiplicandAPtxType = #nvvm.mma_type<bf16>, multiplicandBPtxType = #nvvm.mma_type<bf16>,
         shape = #nvvm.shape<m = 16, n = 8, k = 16>} : (i32, i32, f32) -> !llvm.struct<(f32, f32, f32, f32)>
    %v = llvm.extractvalue %d[0] : !llvm.struct<(f32, f32, f32, f32)>
    memref.store %v, %out[%i, %lane] : memref<?x32xf32>
    scf.reduce
  }
  return
}

// -----

func.func @partial_warps(%n: index, %a: i32, %c: f32, %out: memref<?x16xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c16 = arith.constant 16 : index
  // expected-error @below {{jamba-gpu-map-loops: a nest with a warp-collective op ('nvvm.mma.sync') needs an innermost dimension of a static multiple of 32 iterations from 0 by 1}}
  scf.parallel (%i, %lane) = (%c0, %c0) to (%n, %c16) step (%c1, %c1) {
    %d = nvvm.mma.sync A[%a, %a, %a, %a] B[%a, %a] C[%c, %c, %c, %c]
        {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>,
         multiplicandAPtxType = #nvvm.mma_type<bf16>, multiplicandBPtxType = #nvvm.mma_type<bf16>,
         shape = #nvvm.shape<m = 16, n = 8, k = 16>} : (i32, i32, f32) -> !llvm.struct<(f32, f32, f32, f32)>
    %v = llvm.extractvalue %d[0] : !llvm.struct<(f32, f32, f32, f32)>
    memref.store %v, %out[%i, %lane] : memref<?x16xf32>
    scf.reduce
  }
  return
}

// -----

// A shuffle is warp-collective too (the tensor-core attention's row maxima
// and sums): the lanes 0 .. 15 of this nest would shuffle with the next
// row's.
func.func @shuffle_in_half_warps(%n: index, %x: f32, %out: memref<?x16xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c16 = arith.constant 16 : index
  %one = arith.constant 1 : i32
  %width = arith.constant 32 : i32
  // expected-error @below {{jamba-gpu-map-loops: a nest with a warp-collective op ('gpu.shuffle') needs an innermost dimension of a static multiple of 32 iterations from 0 by 1}}
  scf.parallel (%i, %lane) = (%c0, %c0) to (%n, %c16) step (%c1, %c1) {
    %s, %valid = gpu.shuffle xor %x, %one, %width : f32
    memref.store %s, %out[%i, %lane] : memref<?x16xf32>
    scf.reduce
  }
  return
}

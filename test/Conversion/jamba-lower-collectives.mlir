// RUN: jamba-opt %s -jamba-lower-collectives -split-input-file -verify-diagnostics | FileCheck %s
// RUN: jamba-opt %s -jamba-lower-collectives=runtime=cuda -split-input-file -verify-diagnostics \
// RUN:   | FileCheck %s --check-prefix=CUDA
// RUN: not jamba-opt %s -jamba-lower-collectives=runtime=tpu -split-input-file 2>&1 \
// RUN:   | FileCheck %s --check-prefix=BAD

// jamba.all_reduce on the CPU: a copy of the input in a fresh buffer, the
// runtime's jamba_rt_all_reduce_f32(address, element count) on it, the
// buffer as the result.

// CHECK: func.func private @jamba_rt_all_reduce_f32(!llvm.ptr, i64)
// CHECK-LABEL: func.func @sum
// CHECK-SAME:    (%[[X:.+]]: tensor<?x3x8xf32>)
// CHECK:         %[[IN:.+]] = bufferization.to_buffer %[[X]] read_only {jamba.read_point = {{[0-9]+}} : i64} : tensor<?x3x8xf32> to memref<?x3x8xf32, strided<[?, ?, 1], offset: ?>>
// CHECK:         %[[D0:.+]] = memref.dim %[[IN]], %c0
// CHECK:         %[[N0:.+]] = arith.muli %{{.+}}, %[[D0]]
// CHECK:         %[[OUT:.+]] = memref.alloc(%[[D0]]) : memref<?x3x8xf32>
// CHECK:         linalg.copy ins(%[[IN]] : {{.+}}) outs(%[[OUT]] : memref<?x3x8xf32>)
// CHECK:         %[[ADDR:.+]] = memref.extract_aligned_pointer_as_index %[[OUT]]
// CHECK:         %[[A64:.+]] = arith.index_cast %[[ADDR]] : index to i64
// CHECK:         %[[PTR:.+]] = llvm.inttoptr %[[A64]] : i64 to !llvm.ptr
// CHECK:         %[[COUNT:.+]] = arith.index_cast %{{.+}} : index to i64
// CHECK:         call @jamba_rt_all_reduce_f32(%[[PTR]], %[[COUNT]]) : (!llvm.ptr, i64) -> ()
// CHECK:         %[[R:.+]] = bufferization.to_tensor %[[OUT]] restrict writable
// CHECK:         return %[[R]]
// With runtime=cuda the same, calling the CUDA runtime's NCCL all-reduce on
// the device buffer.
// CUDA: func.func private @jamba_rt_cuda_all_reduce_f32(!llvm.ptr, i64)
// CUDA-LABEL: func.func @sum
// CUDA: linalg.copy
// CUDA: call @jamba_rt_cuda_all_reduce_f32(%{{.+}}, %{{.+}}) : (!llvm.ptr, i64) -> ()
// BAD: error: jamba-lower-collectives: runtime must be cpu or cuda, got 'tpu'
func.func @sum(%x: tensor<?x3x8xf32>) -> tensor<?x3x8xf32> {
  %y = jamba.all_reduce %x : tensor<?x3x8xf32>
  return %y : tensor<?x3x8xf32>
}

// -----

// A group sum (tensor-parallel group of an expert-parallel model).

// CHECK: func.func private @jamba_rt_all_reduce_group_f32(!llvm.ptr, i64, i64)
// CHECK-LABEL: func.func @group
// CHECK:         %[[G:.+]] = arith.constant 2 : i64
// CHECK:         call @jamba_rt_all_reduce_group_f32(%{{.+}}, %{{.+}}, %[[G]]) : (!llvm.ptr, i64, i64) -> ()
// CUDA: func.func private @jamba_rt_cuda_all_reduce_group_f32(!llvm.ptr, i64, i64)
// CUDA-LABEL: func.func @group
// CUDA: call @jamba_rt_cuda_all_reduce_group_f32(
func.func @group(%x: tensor<8xf32>) -> tensor<8xf32> {
  %y = jamba.all_reduce %x {group_size = 2 : i64} : tensor<8xf32>
  return %y : tensor<8xf32>
}

// -----

func.func @bf16(%x: tensor<4xbf16>) -> tensor<4xbf16> {
  // expected-error @+1 {{jamba-lower-collectives: the runtime all-reduces f32 tensors, got 'bf16'}}
  %y = jamba.all_reduce %x : tensor<4xbf16>
  return %y : tensor<4xbf16>
}

// RUN: jamba-opt %s -jamba-gpu-lower-pipeline | FileCheck %s \
// RUN:   --implicit-check-not="jamba." --implicit-check-not="linalg." \
// RUN:   --implicit-check-not="memref." --implicit-check-not="scf." \
// RUN:   --implicit-check-not="tensor." --implicit-check-not="gpu.module" \
// RUN:   --implicit-check-not="unrealized_conversion_cast"
// RUN: jamba-opt %s -jamba-gpu-lower-pipeline="chip=sm_80 features=+ptx70 block-size=128 cublas=0" \
// RUN:   | FileCheck %s --check-prefix=SM80

// One stage (RMSNorm, a bf16-weight linear, an elementwise exp) through the
// whole CUDA lowering: the kernels of the function end up in one gpu.binary
// holding sm_90 PTX; the host function allocates its temporaries on the
// device, launches every kernel on one stream, frees, and synchronizes.

// CHECK: llvm.func @_mlir_ciface_jamba_rt_cuda_gemm_bf16(!llvm.ptr, !llvm.ptr, !llvm.ptr)
// CHECK: gpu.binary @stage_kernels [#gpu.object<#nvvm.target<O = 3, chip = "sm_90", features = "+ptx80">
// CHECK-SAME: assembly = "
// CHECK-SAME: .version 8.0
// CHECK-SAME: .target sm_90
// Each kernel is named after the op it computes (`<module>__<name>`).
// CHECK-SAME: .visible .entry stage_kernel__rms_norm(
// The linear's rows, when there are at most gemv-rows (2) of them: one warp
// per output, its lanes summed by butterfly shuffles.
// CHECK-SAME: .visible .entry stage_kernel_0__linear_gemv(
// CHECK-SAME: ld.global.v4.b32
// CHECK-SAME: shfl.sync.bfly.b32
// CHECK-SAME: .visible .entry stage_kernel_1__linalg(
// CHECK-LABEL: llvm.func @stage(
// CHECK: %[[S:.+]] = llvm.call @mgpuStreamCreate()
// CHECK: %[[T:.+]] = llvm.call @mgpuMemAlloc(%{{.+}}, %[[S]], %{{.+}})
// CHECK: gpu.launch_func <%[[S]] : !llvm.ptr> @stage_kernels::@stage_kernel__rms_norm blocks in
// CHECK-SAME: threads in (%{{.+}}, %{{.+}}, %{{.+}})
// The bf16 linear: the GEMV kernel (no blocks for more than 2 rows), then,
// for more than 2 rows, a cuBLAS call through the runtime (the C interface
// passes descriptor pointers); the stream is synchronised before it, and
// the kernels after it go on the (same) stream again.
// CHECK: gpu.launch_func <%[[S]] : !llvm.ptr> @stage_kernels::@stage_kernel_0__linear_gemv
// CHECK: llvm.call @mgpuStreamSynchronize(%[[S]])
// CHECK: llvm.cond_br %[[MANY:.+]], ^[[CALL:.+]], ^[[AFTER:.+]]
// CHECK: ^[[CALL]]:
// CHECK-NEXT: llvm.call @jamba_rt_cuda_gemm_bf16(
// CHECK: ^[[AFTER]]:
// CHECK: %[[S2:.+]] = llvm.call @mgpuStreamCreate()
// CHECK: gpu.launch_func <%[[S2]] : !llvm.ptr>
// CHECK: llvm.call @mgpuMemFree(%[[T]], %[[S2]])
// CHECK: llvm.call @mgpuStreamSynchronize(%[[S2]])
// CHECK: llvm.call @mgpuStreamDestroy(%[[S2]])
// CHECK-LABEL: llvm.func @_mlir_ciface_stage(

// Without cuBLAS, the linear is a generated kernel too.
// SM80-NOT: jamba_rt_cuda_gemm
// SM80: #nvvm.target<O = 3, chip = "sm_80", features = "+ptx70">
// SM80-SAME: .target sm_80
// SM80: %[[C128:.+]] = llvm.mlir.constant(128 : index) : i64
// SM80: gpu.launch_func {{.+}} threads in (%[[C128]], %{{.+}}, %{{.+}})
func.func @stage(%x: tensor<?x16xf32>, %w: tensor<16xf32>, %p: tensor<32x16xbf16>) -> tensor<?x32xf32>
    attributes {llvm.emit_c_interface} {
  %n = jamba.rms_norm %x, %w {epsilon = 1.0e-6 : f64} : tensor<?x16xf32>, tensor<16xf32>
  %y = jamba.linear %n, %p : (tensor<?x16xf32>, tensor<32x16xbf16>) -> tensor<?x32xf32>
  %e = math.exp %y : tensor<?x32xf32>
  return %e : tensor<?x32xf32>
}

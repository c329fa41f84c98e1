// RUN: jamba-opt %s -jamba-gpu-lower-pipeline | FileCheck %s

// Two stages of one kind (as jamba-split-stages makes for two same-kind
// layers) and one that differs in its norm's epsilon, through the whole
// CUDA lowering: layer 3 launches layer 1's kernels, which are compiled
// once (one gpu.binary), and its host function calls layer 1's; layer 2
// keeps its own.

// CHECK-NOT: gpu.binary @decode__layer3_kernels
// CHECK: gpu.binary @decode__layer1_kernels
// CHECK-SAME: .visible .entry decode__layer1_kernel__rms_norm(
// CHECK-NOT: gpu.binary @decode__layer3_kernels
// CHECK-LABEL: llvm.func @decode__layer1(
// CHECK: gpu.launch_func <%{{.+}} : !llvm.ptr> @decode__layer1_kernels::@decode__layer1_kernel__rms_norm
// CHECK-LABEL: llvm.func @decode__layer3(
// CHECK-NEXT: llvm.call @decode__layer1(
// CHECK-NEXT: llvm.return
// CHECK-NOT: gpu.binary @decode__layer3_kernels
// CHECK: gpu.binary @decode__layer2_kernels
// CHECK-SAME: .visible .entry decode__layer2_kernel__rms_norm(
// CHECK-LABEL: llvm.func @decode__layer2(
// CHECK: gpu.launch_func <%{{.+}} : !llvm.ptr> @decode__layer2_kernels::@decode__layer2_kernel__rms_norm
// CHECK-NOT: gpu.binary @decode__layer3_kernels

func.func @decode__layer1(%x: tensor<?x16xf32>, %w: tensor<16xf32>) -> tensor<?x16xf32>
    attributes {llvm.emit_c_interface} {
  %n = jamba.rms_norm %x, %w {epsilon = 1.0e-6 : f64} : tensor<?x16xf32>, tensor<16xf32>
  %e = math.exp %n : tensor<?x16xf32>
  return %e : tensor<?x16xf32>
}
func.func @decode__layer3(%x: tensor<?x16xf32>, %w: tensor<16xf32>) -> tensor<?x16xf32>
    attributes {llvm.emit_c_interface} {
  %n = jamba.rms_norm %x, %w {epsilon = 1.0e-6 : f64} : tensor<?x16xf32>, tensor<16xf32>
  %e = math.exp %n : tensor<?x16xf32>
  return %e : tensor<?x16xf32>
}
func.func @decode__layer2(%x: tensor<?x16xf32>, %w: tensor<16xf32>) -> tensor<?x16xf32>
    attributes {llvm.emit_c_interface} {
  %n = jamba.rms_norm %x, %w {epsilon = 1.0e-5 : f64} : tensor<?x16xf32>, tensor<16xf32>
  %e = math.exp %n : tensor<?x16xf32>
  return %e : tensor<?x16xf32>
}

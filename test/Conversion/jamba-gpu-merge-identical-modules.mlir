// RUN: jamba-opt %s -split-input-file -jamba-gpu-merge-identical-modules \
// RUN:   | FileCheck %s

// Four stages' kernel modules, as jamba-gpu-lower-pipeline has them before
// gpu-module-to-binary: layer 3's decode module is layer 1's but for the
// names it defines (its kernels, a device function and a workgroup
// buffer), so it goes and layer 3's launches go to layer 1's kernels in
// the same places; layer 2's differs in one op and stays; prefill's equals
// layer 1's but belongs to another entry point and stays. The libdevice
// declaration keeps its name.

// CHECK-LABEL: module attributes {gpu.container_module}
// CHECK: gpu.module @decode__layer1_kernels
// CHECK: llvm.func @__nv_expf(f32) -> f32
// CHECK: llvm.mlir.global internal @decode__layer1_buffer()
// CHECK: llvm.func internal @decode__layer1_scale(
// CHECK: llvm.func @decode__layer1_kernel__exp(
// CHECK: llvm.call @decode__layer1_scale(
// CHECK: llvm.func @decode__layer1_kernel_0__neg(
// CHECK: llvm.mlir.addressof @decode__layer1_buffer
// CHECK-NOT: gpu.module @decode__layer3_kernels
// CHECK: gpu.module @decode__layer2_kernels
// CHECK: gpu.module @prefill__layer1_kernels
// CHECK-LABEL: llvm.func @decode__layer1(
// CHECK: gpu.launch_func @decode__layer1_kernels::@decode__layer1_kernel__exp
// CHECK: gpu.launch_func @decode__layer1_kernels::@decode__layer1_kernel_0__neg
// CHECK-LABEL: llvm.func @decode__layer3(
// The launches in the other order: each goes to the kernel in its place.
// CHECK: gpu.launch_func @decode__layer1_kernels::@decode__layer1_kernel_0__neg
// CHECK: gpu.launch_func @decode__layer1_kernels::@decode__layer1_kernel__exp
// CHECK-LABEL: llvm.func @decode__layer2(
// CHECK: gpu.launch_func @decode__layer2_kernels::@decode__layer2_kernel__exp
// CHECK-LABEL: llvm.func @prefill__layer1(
// CHECK: gpu.launch_func @prefill__layer1_kernels::@prefill__layer1_kernel__exp

module attributes {gpu.container_module} {
  gpu.module @decode__layer1_kernels {
    llvm.func @__nv_expf(f32) -> f32
    llvm.mlir.global internal @decode__layer1_buffer() {addr_space = 3 : i32} : !llvm.array<4 x f32>
    llvm.func internal @decode__layer1_scale(%x: f32) -> f32 {
      %c = llvm.mlir.constant(2.0 : f32) : f32
      %y = llvm.fmul %x, %c : f32
      llvm.return %y : f32
    }
    llvm.func @decode__layer1_kernel__exp(%p: !llvm.ptr) attributes {gpu.kernel} {
      %x = llvm.load %p : !llvm.ptr -> f32
      %e = llvm.call @__nv_expf(%x) : (f32) -> f32
      %s = llvm.call @decode__layer1_scale(%e) : (f32) -> f32
      llvm.store %s, %p : f32, !llvm.ptr
      llvm.return
    }
    llvm.func @decode__layer1_kernel_0__neg(%p: !llvm.ptr) attributes {gpu.kernel} {
      %b = llvm.mlir.addressof @decode__layer1_buffer : !llvm.ptr<3>
      %x = llvm.load %p : !llvm.ptr -> f32
      %n = llvm.fneg %x : f32
      llvm.store %n, %b : f32, !llvm.ptr<3>
      llvm.return
    }
  }
  gpu.module @decode__layer3_kernels {
    llvm.func @__nv_expf(f32) -> f32
    llvm.mlir.global internal @decode__layer3_buffer() {addr_space = 3 : i32} : !llvm.array<4 x f32>
    llvm.func internal @decode__layer3_scale(%x: f32) -> f32 {
      %c = llvm.mlir.constant(2.0 : f32) : f32
      %y = llvm.fmul %x, %c : f32
      llvm.return %y : f32
    }
    llvm.func @decode__layer3_kernel__exp(%p: !llvm.ptr) attributes {gpu.kernel} {
      %x = llvm.load %p : !llvm.ptr -> f32
      %e = llvm.call @__nv_expf(%x) : (f32) -> f32
      %s = llvm.call @decode__layer3_scale(%e) : (f32) -> f32
      llvm.store %s, %p : f32, !llvm.ptr
      llvm.return
    }
    llvm.func @decode__layer3_kernel_0__neg(%p: !llvm.ptr) attributes {gpu.kernel} {
      %b = llvm.mlir.addressof @decode__layer3_buffer : !llvm.ptr<3>
      %x = llvm.load %p : !llvm.ptr -> f32
      %n = llvm.fneg %x : f32
      llvm.store %n, %b : f32, !llvm.ptr<3>
      llvm.return
    }
  }
  gpu.module @decode__layer2_kernels {
    llvm.func @__nv_expf(f32) -> f32
    llvm.mlir.global internal @decode__layer2_buffer() {addr_space = 3 : i32} : !llvm.array<4 x f32>
    llvm.func internal @decode__layer2_scale(%x: f32) -> f32 {
      %c = llvm.mlir.constant(2.0 : f32) : f32
      %y = llvm.fadd %x, %c : f32
      llvm.return %y : f32
    }
    llvm.func @decode__layer2_kernel__exp(%p: !llvm.ptr) attributes {gpu.kernel} {
      %x = llvm.load %p : !llvm.ptr -> f32
      %e = llvm.call @__nv_expf(%x) : (f32) -> f32
      %s = llvm.call @decode__layer2_scale(%e) : (f32) -> f32
      llvm.store %s, %p : f32, !llvm.ptr
      llvm.return
    }
    llvm.func @decode__layer2_kernel_0__neg(%p: !llvm.ptr) attributes {gpu.kernel} {
      %b = llvm.mlir.addressof @decode__layer2_buffer : !llvm.ptr<3>
      %x = llvm.load %p : !llvm.ptr -> f32
      %n = llvm.fneg %x : f32
      llvm.store %n, %b : f32, !llvm.ptr<3>
      llvm.return
    }
  }
  gpu.module @prefill__layer1_kernels {
    llvm.func @__nv_expf(f32) -> f32
    llvm.mlir.global internal @prefill__layer1_buffer() {addr_space = 3 : i32} : !llvm.array<4 x f32>
    llvm.func internal @prefill__layer1_scale(%x: f32) -> f32 {
      %c = llvm.mlir.constant(2.0 : f32) : f32
      %y = llvm.fmul %x, %c : f32
      llvm.return %y : f32
    }
    llvm.func @prefill__layer1_kernel__exp(%p: !llvm.ptr) attributes {gpu.kernel} {
      %x = llvm.load %p : !llvm.ptr -> f32
      %e = llvm.call @__nv_expf(%x) : (f32) -> f32
      %s = llvm.call @prefill__layer1_scale(%e) : (f32) -> f32
      llvm.store %s, %p : f32, !llvm.ptr
      llvm.return
    }
    llvm.func @prefill__layer1_kernel_0__neg(%p: !llvm.ptr) attributes {gpu.kernel} {
      %b = llvm.mlir.addressof @prefill__layer1_buffer : !llvm.ptr<3>
      %x = llvm.load %p : !llvm.ptr -> f32
      %n = llvm.fneg %x : f32
      llvm.store %n, %b : f32, !llvm.ptr<3>
      llvm.return
    }
  }
  llvm.func @decode__layer1(%p: !llvm.ptr) {
    %c1 = llvm.mlir.constant(1 : index) : i64
    gpu.launch_func @decode__layer1_kernels::@decode__layer1_kernel__exp blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) : i64 args(%p : !llvm.ptr)
    gpu.launch_func @decode__layer1_kernels::@decode__layer1_kernel_0__neg blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) : i64 args(%p : !llvm.ptr)
    llvm.return
  }
  llvm.func @decode__layer3(%p: !llvm.ptr) {
    %c1 = llvm.mlir.constant(1 : index) : i64
    gpu.launch_func @decode__layer3_kernels::@decode__layer3_kernel_0__neg blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) : i64 args(%p : !llvm.ptr)
    gpu.launch_func @decode__layer3_kernels::@decode__layer3_kernel__exp blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) : i64 args(%p : !llvm.ptr)
    llvm.return
  }
  llvm.func @decode__layer2(%p: !llvm.ptr) {
    %c1 = llvm.mlir.constant(1 : index) : i64
    gpu.launch_func @decode__layer2_kernels::@decode__layer2_kernel__exp blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) : i64 args(%p : !llvm.ptr)
    llvm.return
  }
  llvm.func @prefill__layer1(%p: !llvm.ptr) {
    %c1 = llvm.mlir.constant(1 : index) : i64
    gpu.launch_func @prefill__layer1_kernels::@prefill__layer1_kernel__exp blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) : i64 args(%p : !llvm.ptr)
    llvm.return
  }
}

// -----

// A launch of a kernel both modules only declare goes to the kept module's
// declaration of that name.

// CHECK-LABEL: module attributes {gpu.container_module}
// CHECK: gpu.module @decode__layer1_kernels
// CHECK-NOT: gpu.module
// CHECK-LABEL: llvm.func @decode__layer3(
// CHECK: gpu.launch_func @decode__layer1_kernels::@declared_kernel
// CHECK: gpu.launch_func @decode__layer1_kernels::@decode__layer1_kernel

module attributes {gpu.container_module} {
  gpu.module @decode__layer1_kernels {
    llvm.func @declared_kernel(!llvm.ptr) attributes {gpu.kernel}
    llvm.func @decode__layer1_kernel(%p: !llvm.ptr) attributes {gpu.kernel} {
      llvm.return
    }
  }
  gpu.module @decode__layer3_kernels {
    llvm.func @declared_kernel(!llvm.ptr) attributes {gpu.kernel}
    llvm.func @decode__layer3_kernel(%p: !llvm.ptr) attributes {gpu.kernel} {
      llvm.return
    }
  }
  llvm.func @decode__layer3(%p: !llvm.ptr) {
    %c1 = llvm.mlir.constant(1 : index) : i64
    gpu.launch_func @decode__layer3_kernels::@declared_kernel blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) : i64 args(%p : !llvm.ptr)
    gpu.launch_func @decode__layer3_kernels::@decode__layer3_kernel blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) : i64 args(%p : !llvm.ptr)
    llvm.return
  }
}

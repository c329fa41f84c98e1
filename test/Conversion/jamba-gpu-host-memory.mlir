// RUN: jamba-opt %s -split-input-file -gpu-kernel-outlining -jamba-gpu-host-memory -verify-diagnostics | FileCheck %s

// Host allocations become device allocations, and the kernels a function
// launches are gathered into one gpu.module named after it, each kernel
// keeping the name of the module outlining gave it.

// CHECK-LABEL: gpu.module @stage_kernels
// CHECK-NEXT: gpu.func @stage_kernel(
// CHECK: gpu.func @stage_kernel_0(
// CHECK-NOT: gpu.module
// CHECK-LABEL: func.func @stage
// CHECK: %[[T:.+]] = gpu.alloc (%{{.+}}) : memref<?xf32>
// CHECK: gpu.launch_func @stage_kernels::@stage_kernel blocks
// CHECK-SAME: %[[T]] : memref<?xf32>
// CHECK: gpu.launch_func @stage_kernels::@stage_kernel_0 blocks
// CHECK: gpu.dealloc %[[T]] : memref<?xf32>
// CHECK-NOT: memref.alloc
// CHECK-NOT: memref.dealloc
func.func @stage(%x: memref<?xf32>, %y: memref<?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %n = memref.dim %x, %c0 : memref<?xf32>
  %t = memref.alloc(%n) : memref<?xf32>
  gpu.launch blocks(%b, %b1, %b2) in (%gx = %n, %gy = %c1, %gz = %c1)
             threads(%th, %t1, %t2) in (%tx = %c1, %ty = %c1, %tz = %c1) {
    %v = memref.load %x[%b] : memref<?xf32>
    memref.store %v, %t[%b] : memref<?xf32>
    gpu.terminator
  }
  gpu.launch blocks(%b, %b1, %b2) in (%gx = %n, %gy = %c1, %gz = %c1)
             threads(%th, %t1, %t2) in (%tx = %c1, %ty = %c1, %tz = %c1) {
    %v = memref.load %t[%b] : memref<?xf32>
    memref.store %v, %y[%b] : memref<?xf32>
    gpu.terminator
  }
  memref.dealloc %t : memref<?xf32>
  return
}

// -----

// With jamba-gpu-map-loops' names (one per launch, in order), each kernel
// is named `<module>__<name>`; the names attribute is dropped.

// CHECK-LABEL: gpu.module @named_kernels
// CHECK-NEXT: gpu.func @named_kernel__rms_norm(
// CHECK: gpu.func @named_kernel_0__copy(
// CHECK-LABEL: func.func @named
// CHECK-NOT: jamba.kernel_names
// CHECK: gpu.launch_func @named_kernels::@named_kernel__rms_norm blocks
// CHECK: gpu.launch_func @named_kernels::@named_kernel_0__copy blocks
func.func @named(%x: memref<?xf32>, %y: memref<?xf32>)
    attributes {jamba.kernel_names = ["rms_norm", "copy"]} {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %n = memref.dim %x, %c0 : memref<?xf32>
  gpu.launch blocks(%b, %b1, %b2) in (%gx = %n, %gy = %c1, %gz = %c1)
             threads(%th, %t1, %t2) in (%tx = %c1, %ty = %c1, %tz = %c1) {
    %v = memref.load %x[%b] : memref<?xf32>
    memref.store %v, %y[%b] : memref<?xf32>
    gpu.terminator
  }
  gpu.launch blocks(%b, %b1, %b2) in (%gx = %n, %gy = %c1, %gz = %c1)
             threads(%th, %t1, %t2) in (%tx = %c1, %ty = %c1, %tz = %c1) {
    %v = memref.load %y[%b] : memref<?xf32>
    memref.store %v, %x[%b] : memref<?xf32>
    gpu.terminator
  }
  return
}

// -----

// Names that do not match the launches one to one are ignored.

// CHECK-LABEL: gpu.module @miscounted_kernels
// CHECK-NEXT: gpu.func @miscounted_kernel(
// CHECK-LABEL: func.func @miscounted
// CHECK-NOT: jamba.kernel_names
func.func @miscounted(%x: memref<?xf32>, %y: memref<?xf32>)
    attributes {jamba.kernel_names = ["rms_norm", "copy"]} {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %n = memref.dim %x, %c0 : memref<?xf32>
  gpu.launch blocks(%b, %b1, %b2) in (%gx = %n, %gy = %c1, %gz = %c1)
             threads(%th, %t1, %t2) in (%tx = %c1, %ty = %c1, %tz = %c1) {
    %v = memref.load %x[%b] : memref<?xf32>
    memref.store %v, %y[%b] : memref<?xf32>
    gpu.terminator
  }
  return
}

// -----

func.func @host_load(%x: memref<4xf32>) -> f32 {
  %c0 = arith.constant 0 : index
  // expected-error @below {{jamba-gpu-host-memory: 'memref.load' would run on the host over device memory; only GPU kernels may touch buffer contents}}
  %v = memref.load %x[%c0] : memref<4xf32>
  return %v : f32
}

// -----

func.func @host_loop(%x: memref<4xf32>, %y: memref<4xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  // expected-error @below {{jamba-gpu-host-memory: 'scf.parallel' would run on the host over device memory; only GPU kernels may touch buffer contents}}
  scf.parallel (%i) = (%c0) to (%c4) step (%c1) {
    scf.reduce
  }
  return
}

// RUN: jamba-opt %s --pass-pipeline='builtin.module(gpu.module(jamba-gpu-fast-math))' | FileCheck %s

// f32 exp2, rsqrt, sqrt and division in a kernel become the NVVM
// intrinsics of their one-instruction flush-to-zero approximations.

// CHECK-LABEL: gpu.func @scalars(
// CHECK-SAME: %[[X:[^:]+]]: f32, %[[Y:[^:]+]]: f32
gpu.module @kernels {
  gpu.func @scalars(%x: f32, %y: f32, %out: memref<5xf32>) kernel {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c3 = arith.constant 3 : index
    %c4 = arith.constant 4 : index
    // CHECK: %[[E:.+]] = llvm.call_intrinsic "llvm.nvvm.ex2.approx.ftz.f32"(%[[X]]) : (f32) -> f32
    %e = math.exp2 %x : f32
    // CHECK: %[[R:.+]] = llvm.call_intrinsic "llvm.nvvm.rsqrt.approx.ftz.f"(%[[X]]) : (f32) -> f32
    %r = math.rsqrt %x : f32
    // CHECK: %[[Q:.+]] = llvm.call_intrinsic "llvm.nvvm.div.full.ftz"(%[[X]], %[[Y]]) : (f32, f32) -> f32
    %q = arith.divf %x, %y : f32
    // 1 / sqrt(y): one rsqrt.
    // CHECK-DAG: %[[I:.+]] = llvm.call_intrinsic "llvm.nvvm.rsqrt.approx.ftz.f"(%[[Y]]) : (f32) -> f32
    %one = arith.constant 1.0 : f32
    %s = math.sqrt %y : f32
    %i = arith.divf %one, %s : f32
    // 2 / sqrt(y): a sqrt and a division.
    // CHECK-DAG: %[[S:.+]] = llvm.call_intrinsic "llvm.nvvm.sqrt.approx.ftz.f"(%[[Y]]) : (f32) -> f32
    // CHECK-DAG: %[[T:.+]] = llvm.call_intrinsic "llvm.nvvm.div.full.ftz"(%{{.+}}, %[[S]]) : (f32, f32) -> f32
    %two = arith.constant 2.0 : f32
    %t = arith.divf %two, %s : f32
    // CHECK-NOT: math.
    // CHECK-NOT: arith.divf
    // CHECK: memref.store %[[E]]
    // CHECK: memref.store %[[R]]
    // CHECK: memref.store %[[Q]]
    // CHECK: memref.store %[[I]]
    // CHECK: memref.store %[[T]]
    memref.store %e, %out[%c0] : memref<5xf32>
    memref.store %r, %out[%c1] : memref<5xf32>
    memref.store %q, %out[%c2] : memref<5xf32>
    memref.store %i, %out[%c3] : memref<5xf32>
    memref.store %t, %out[%c4] : memref<5xf32>
    gpu.return
  }

  // 1 / sqrt(x) alone: one rsqrt, and no sqrt left.
  // CHECK-LABEL: gpu.func @reciprocal_root(
  // CHECK-SAME: %[[Z:[^:]+]]: f32
  // CHECK-NOT: sqrt.approx
  // CHECK: llvm.call_intrinsic "llvm.nvvm.rsqrt.approx.ftz.f"(%[[Z]]) : (f32) -> f32
  // CHECK-NOT: sqrt
  // CHECK: gpu.return
  gpu.func @reciprocal_root(%z: f32, %out: memref<f32>) kernel {
    %one = arith.constant 1.0 : f32
    %s = math.sqrt %z : f32
    %r = arith.divf %one, %s : f32
    memref.store %r, %out[] : memref<f32>
    gpu.return
  }

  // Vectors and f64 are left to convert-gpu-to-nvvm (libdevice).
  // CHECK-LABEL: gpu.func @others(
  // CHECK-NOT: llvm.call_intrinsic
  // CHECK: math.exp2 %{{.+}} : vector<4xf32>
  // CHECK: arith.divf %{{.+}} : vector<4xf32>
  // CHECK: math.exp2 %{{.+}} : f64
  // CHECK: math.rsqrt %{{.+}} : f64
  // CHECK: arith.divf %{{.+}} : f64
  // CHECK-NOT: llvm.call_intrinsic
  gpu.func @others(%v: vector<4xf32>, %d: f64, %out: memref<2xvector<4xf32>>,
                   %outd: memref<3xf64>) kernel {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %ve = math.exp2 %v : vector<4xf32>
    %vq = arith.divf %ve, %v : vector<4xf32>
    %de = math.exp2 %d : f64
    %dr = math.rsqrt %d : f64
    %dq = arith.divf %de, %d : f64
    memref.store %ve, %out[%c0] : memref<2xvector<4xf32>>
    memref.store %vq, %out[%c1] : memref<2xvector<4xf32>>
    memref.store %de, %outd[%c0] : memref<3xf64>
    memref.store %dr, %outd[%c1] : memref<3xf64>
    memref.store %dq, %outd[%c2] : memref<3xf64>
    gpu.return
  }
}

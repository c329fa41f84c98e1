// RUN: jamba-opt %s --pass-pipeline='builtin.module(gpu.module(jamba-gpu-byte-permutes))' | FileCheck %s

// Bytes zero-extended and or'ed into a constant whose low byte is 0 (the
// int8 expert GEMM's widening into the mantissa of 2^23) become one
// nvvm.prmt per byte: byte k of its word in the low byte, bytes 1-3 of the
// constant (pool bytes 5-7) above it.

// CHECK-LABEL: gpu.func @widen(
// CHECK-SAME: %[[X:[^:]+]]: vector<8xi8>
// CHECK-DAG: %[[C:.+]] = arith.constant 1258291200 : i32
// CHECK-DAG: %[[S0:.+]] = arith.constant 30288 : i32
// CHECK-DAG: %[[S1:.+]] = arith.constant 30289 : i32
// CHECK-DAG: %[[S2:.+]] = arith.constant 30290 : i32
// CHECK-DAG: %[[S3:.+]] = arith.constant 30291 : i32
// CHECK: %[[W:.+]] = vector.bitcast %[[X]] : vector<8xi8> to vector<2xi32>
// CHECK: %[[W0:.+]] = vector.extract %[[W]][0] : i32 from vector<2xi32>
// CHECK: %[[B0:.+]] = nvvm.prmt <default> %[[S0]], %[[W0]], %[[C]] : i32
// CHECK: %[[B1:.+]] = nvvm.prmt <default> %[[S1]], %[[W0]], %[[C]] : i32
// CHECK: %[[B2:.+]] = nvvm.prmt <default> %[[S2]], %[[W0]], %[[C]] : i32
// CHECK: %[[B3:.+]] = nvvm.prmt <default> %[[S3]], %[[W0]], %[[C]] : i32
// CHECK: %[[W1:.+]] = vector.extract %[[W]][1] : i32 from vector<2xi32>
// CHECK: %[[B4:.+]] = nvvm.prmt <default> %[[S0]], %[[W1]], %[[C]] : i32
// CHECK-COUNT-3: nvvm.prmt <default> %{{.+}}, %[[W1]], %[[C]] : i32
// CHECK: %[[V:.+]] = vector.from_elements %[[B0]], %[[B1]], %[[B2]], %[[B3]], %[[B4]], %{{.+}}, %{{.+}}, %{{.+}} : vector<8xi32>
// CHECK-NOT: arith.ori
// CHECK: memref.store %[[V]]
// CHECK: vector.bitcast %[[X]] : vector<8xi8> to vector<2xi32>
// CHECK-COUNT-8: nvvm.prmt
// CHECK-NOT: arith.ori
// CHECK: gpu.return
gpu.module @kernels {
  gpu.func @widen(%x: vector<8xi8>, %out: memref<2xvector<8xi32>>) kernel {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %high = arith.constant dense<1258291200> : vector<8xi32>
    %w = arith.extui %x : vector<8xi8> to vector<8xi32>
    %f = arith.ori %w, %high : vector<8xi32>
    memref.store %f, %out[%c0] : memref<2xvector<8xi32>>
    // The constant on the left: the same.
    %g = arith.ori %high, %w : vector<8xi32>
    memref.store %g, %out[%c1] : memref<2xvector<8xi32>>
    gpu.return
  }

  // Left alone: a constant with a low byte (it would be overwritten), a
  // length that is not a multiple of 4, bytes sign-extended, and i16.
  // CHECK-LABEL: gpu.func @others(
  // CHECK-NOT: nvvm.prmt
  // CHECK-COUNT-4: arith.ori
  // CHECK-NOT: nvvm.prmt
  gpu.func @others(%x: vector<8xi8>, %y: vector<6xi8>, %z: vector<4xi16>,
                   %out: memref<2xvector<8xi32>>, %out6: memref<vector<6xi32>>,
                   %out4: memref<vector<4xi32>>) kernel {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %low = arith.constant dense<1258291201> : vector<8xi32>
    %high6 = arith.constant dense<1258291200> : vector<6xi32>
    %high8 = arith.constant dense<1258291200> : vector<8xi32>
    %high4 = arith.constant dense<1258291200> : vector<4xi32>
    %w = arith.extui %x : vector<8xi8> to vector<8xi32>
    %a = arith.ori %w, %low : vector<8xi32>
    memref.store %a, %out[%c0] : memref<2xvector<8xi32>>
    %s = arith.extsi %x : vector<8xi8> to vector<8xi32>
    %b = arith.ori %s, %high8 : vector<8xi32>
    memref.store %b, %out[%c1] : memref<2xvector<8xi32>>
    %w6 = arith.extui %y : vector<6xi8> to vector<6xi32>
    %c = arith.ori %w6, %high6 : vector<6xi32>
    memref.store %c, %out6[] : memref<vector<6xi32>>
    %w4 = arith.extui %z : vector<4xi16> to vector<4xi32>
    %d = arith.ori %w4, %high4 : vector<4xi32>
    memref.store %d, %out4[] : memref<vector<4xi32>>
    gpu.return
  }
}

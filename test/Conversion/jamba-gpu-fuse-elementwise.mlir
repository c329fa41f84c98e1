// RUN: jamba-opt %s -split-input-file -jamba-gpu-fuse-elementwise | FileCheck %s

// An activation, then the conversion of its result to a GEMM's bf16 input
// (jamba-gpu-library-gemms' copy): one generic computing both, in order.

#id = affine_map<(d0, d1) -> (d0, d1)>

// CHECK-LABEL: func.func @activation_then_bf16
// CHECK: %[[G:.+]] = linalg.generic
// CHECK-SAME: ins(%{{.+}}, %{{.+}} : tensor<?x64xf32>, tensor<?x64xf32>)
// CHECK:   %[[S:.+]] = arith.mulf
// CHECK:   %[[T:.+]] = arith.truncf %[[S]] : f32 to bf16
// CHECK:   linalg.yield %[[T]] : bf16
// CHECK-NOT: linalg.generic
// CHECK: return %[[G]]
func.func @activation_then_bf16(%a: tensor<?x64xf32>, %b: tensor<?x64xf32>) -> tensor<?x64xbf16> {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %a, %c0 : tensor<?x64xf32>
  %e = tensor.empty(%n) : tensor<?x64xf32>
  %m = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%a, %b : tensor<?x64xf32>, tensor<?x64xf32>) outs(%e : tensor<?x64xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %p = arith.mulf %x, %y : f32
    linalg.yield %p : f32
  } -> tensor<?x64xf32>
  %e2 = tensor.empty(%n) : tensor<?x64xbf16>
  %c = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%m : tensor<?x64xf32>) outs(%e2 : tensor<?x64xbf16>) {
  ^bb0(%x: f32, %o: bf16):
    %t = arith.truncf %x : f32 to bf16
    linalg.yield %t : bf16
  } -> tensor<?x64xbf16>
  return %c : tensor<?x64xbf16>
}

// -----

// A producer with a second reader is not fused (it would be computed twice).

#id = affine_map<(d0, d1) -> (d0, d1)>

// CHECK-LABEL: func.func @shared_producer
// CHECK: %[[M:.+]] = linalg.generic
// CHECK:   arith.mulf
// CHECK: %[[C:.+]] = linalg.generic
// CHECK-SAME: ins(%[[M]] : tensor<?x64xf32>)
// CHECK:   arith.truncf
// CHECK: return %[[M]], %[[C]]
func.func @shared_producer(%a: tensor<?x64xf32>) -> (tensor<?x64xf32>, tensor<?x64xbf16>) {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %a, %c0 : tensor<?x64xf32>
  %e = tensor.empty(%n) : tensor<?x64xf32>
  %m = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%a : tensor<?x64xf32>) outs(%e : tensor<?x64xf32>) {
  ^bb0(%x: f32, %o: f32):
    %p = arith.mulf %x, %x : f32
    linalg.yield %p : f32
  } -> tensor<?x64xf32>
  %e2 = tensor.empty(%n) : tensor<?x64xbf16>
  %c = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%m : tensor<?x64xf32>) outs(%e2 : tensor<?x64xbf16>) {
  ^bb0(%x: f32, %o: bf16):
    %t = arith.truncf %x : f32 to bf16
    linalg.yield %t : bf16
  } -> tensor<?x64xbf16>
  return %m, %c : tensor<?x64xf32>, tensor<?x64xbf16>
}

// -----

// A reduction (a GEMM left to a kernel) is neither fused into nor fused.

#id = affine_map<(d0, d1) -> (d0, d1)>
#x = affine_map<(d0, d1, d2) -> (d0, d2)>
#w = affine_map<(d0, d1, d2) -> (d1, d2)>
#y = affine_map<(d0, d1, d2) -> (d0, d1)>

// CHECK-LABEL: func.func @reduction_stays
// CHECK: linalg.generic
// CHECK-SAME: iterator_types = ["parallel", "parallel"]
// CHECK: linalg.generic
// CHECK-SAME: iterator_types = ["parallel", "parallel", "reduction"]
func.func @reduction_stays(%a: tensor<4x8xf32>, %w: tensor<3x8xf32>, %acc: tensor<4x3xf32>) -> tensor<4x3xf32> {
  %e = tensor.empty() : tensor<4x8xf32>
  %m = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%a : tensor<4x8xf32>) outs(%e : tensor<4x8xf32>) {
  ^bb0(%x: f32, %o: f32):
    %p = arith.mulf %x, %x : f32
    linalg.yield %p : f32
  } -> tensor<4x8xf32>
  %r = linalg.generic {indexing_maps = [#x, #w, #y], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%m, %w : tensor<4x8xf32>, tensor<3x8xf32>) outs(%acc : tensor<4x3xf32>) {
  ^bb0(%x: f32, %v: f32, %o: f32):
    %p = arith.mulf %x, %v : f32
    %s = arith.addf %o, %p : f32
    linalg.yield %s : f32
  } -> tensor<4x3xf32>
  return %r : tensor<4x3xf32>
}

// -----

// A producer its reader reads through a broadcast (every produced element
// read many times) is not fused: it would be computed once per read.

#row = affine_map<(d0, d1) -> (d1)>
#id = affine_map<(d0, d1) -> (d0, d1)>

// CHECK-LABEL: func.func @broadcast_read
// CHECK: %[[M:.+]] = linalg.generic
// CHECK:   math.exp
// CHECK: linalg.generic
// CHECK-SAME: ins(%{{.+}}, %[[M]] : tensor<?x64xf32>, tensor<64xf32>)
func.func @broadcast_read(%a: tensor<?x64xf32>, %w: tensor<64xf32>) -> tensor<?x64xf32> {
  %e = tensor.empty() : tensor<64xf32>
  %m = linalg.generic {indexing_maps = [affine_map<(d0) -> (d0)>, affine_map<(d0) -> (d0)>],
                       iterator_types = ["parallel"]}
      ins(%w : tensor<64xf32>) outs(%e : tensor<64xf32>) {
  ^bb0(%x: f32, %o: f32):
    %p = math.exp %x : f32
    linalg.yield %p : f32
  } -> tensor<64xf32>
  %c0 = arith.constant 0 : index
  %n = tensor.dim %a, %c0 : tensor<?x64xf32>
  %e2 = tensor.empty(%n) : tensor<?x64xf32>
  %r = linalg.generic {indexing_maps = [#id, #row, #id], iterator_types = ["parallel", "parallel"]}
      ins(%a, %m : tensor<?x64xf32>, tensor<64xf32>) outs(%e2 : tensor<?x64xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %p = arith.mulf %x, %y : f32
    linalg.yield %p : f32
  } -> tensor<?x64xf32>
  return %r : tensor<?x64xf32>
}

// -----

// convert-elementwise-to-linalg's form: each generic's input is its init
// too. A payload that never reads the init gets an empty one, and the
// chain (bf16 -> f32, exp, negate: A = -exp(A_log)) fuses into one.

#id = affine_map<(d0, d1) -> (d0, d1)>

// CHECK-LABEL: func.func @init_is_the_input
// CHECK: %[[E:.+]] = tensor.empty() : tensor<8x4xf32>
// CHECK: %[[G:.+]] = linalg.generic
// CHECK-SAME: ins(%{{.+}} : tensor<8x4xbf16>) outs(%{{.+}} : tensor<8x4xf32>)
// CHECK:   arith.extf
// CHECK:   math.exp
// CHECK:   arith.negf
// CHECK-NOT: linalg.generic
// CHECK: return %[[G]]
func.func @init_is_the_input(%a: tensor<8x4xbf16>) -> tensor<8x4xf32> {
  %e = tensor.empty() : tensor<8x4xf32>
  %x = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%a : tensor<8x4xbf16>) outs(%e : tensor<8x4xf32>) {
  ^bb0(%i: bf16, %o: f32):
    %v = arith.extf %i : bf16 to f32
    linalg.yield %v : f32
  } -> tensor<8x4xf32>
  %y = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%x : tensor<8x4xf32>) outs(%x : tensor<8x4xf32>) {
  ^bb0(%i: f32, %o: f32):
    %v = math.exp %i : f32
    linalg.yield %v : f32
  } -> tensor<8x4xf32>
  %z = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%y : tensor<8x4xf32>) outs(%y : tensor<8x4xf32>) {
  ^bb0(%i: f32, %o: f32):
    %v = arith.negf %i : f32
    linalg.yield %v : f32
  } -> tensor<8x4xf32>
  return %z : tensor<8x4xf32>
}

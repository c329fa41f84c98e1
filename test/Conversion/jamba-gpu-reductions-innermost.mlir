// RUN: jamba-opt %s -split-input-file -jamba-gpu-reductions-innermost | FileCheck %s

// The MoE's sum over the top-k slots, [t, k, n] -> [t, n], reduces its
// middle loop: the loops become (t, n, k), so that parallel loops over
// (t, n) come out of convert-linalg-to-parallel-loops with k sequential
// inside, each output element summed in the same k order.

// CHECK-DAG: #[[IN:.+]] = affine_map<(d0, d1, d2) -> (d0, d2, d1)>
// CHECK-DAG: #[[OUT:.+]] = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-LABEL: func.func @slot_sum
// CHECK: linalg.generic {indexing_maps = [#[[IN]], #[[OUT]]], iterator_types = ["parallel", "parallel", "reduction"]}
func.func @slot_sum(%x: tensor<?x2x64xf32>, %init: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %r = linalg.generic {indexing_maps = [affine_map<(t, k, n) -> (t, k, n)>, affine_map<(t, k, n) -> (t, n)>],
                       iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%x : tensor<?x2x64xf32>) outs(%init : tensor<?x64xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %s = arith.addf %acc, %in : f32
    linalg.yield %s : f32
  } -> tensor<?x64xf32>
  return %r : tensor<?x64xf32>
}

// -----

// Reductions already innermost (a matmul), and no reduction at all: as
// they were.

// CHECK-LABEL: func.func @already_innermost
// CHECK: iterator_types = ["parallel", "parallel", "reduction"]
// CHECK: iterator_types = ["parallel", "parallel"]
func.func @already_innermost(%a: tensor<4x8xf32>, %b: tensor<8x3xf32>, %c: tensor<4x3xf32>)
    -> (tensor<4x3xf32>, tensor<4x3xf32>) {
  %m = linalg.generic {indexing_maps = [affine_map<(i, j, k) -> (i, k)>, affine_map<(i, j, k) -> (k, j)>,
                                        affine_map<(i, j, k) -> (i, j)>],
                       iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%a, %b : tensor<4x8xf32>, tensor<8x3xf32>) outs(%c : tensor<4x3xf32>) {
  ^bb0(%x: f32, %y: f32, %acc: f32):
    %p = arith.mulf %x, %y : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  } -> tensor<4x3xf32>
  %e = linalg.generic {indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i, j)>],
                       iterator_types = ["parallel", "parallel"]}
      ins(%m : tensor<4x3xf32>) outs(%c : tensor<4x3xf32>) {
  ^bb0(%x: f32, %o: f32):
    %n = arith.negf %x : f32
    linalg.yield %n : f32
  } -> tensor<4x3xf32>
  return %m, %e : tensor<4x3xf32>, tensor<4x3xf32>
}

// -----

// A reduction outermost, (k, t, n) -> (t, n, k), and a body reading its
// loop indices: linalg.index follows its loop.

// CHECK-DAG: #[[IN2:.+]] = affine_map<(d0, d1, d2) -> (d2, d0, d1)>
// CHECK-DAG: #[[OUT2:.+]] = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-DAG: #[[SEL:.+]] = affine_map<(d0, d1, d2) -> (d2)>
// CHECK-LABEL: func.func @reduction_first
// CHECK: linalg.generic {indexing_maps = [#[[IN2]], #[[OUT2]]], iterator_types = ["parallel", "parallel", "reduction"]}
// CHECK:   %[[K:.+]] = linalg.index 2 : index
// CHECK:   %[[A:.+]] = affine.apply #[[SEL]](%{{.+}}, %{{.+}}, %[[K]])
// CHECK:   arith.index_cast %[[A]]
func.func @reduction_first(%x: tensor<3x5x8xf32>, %init: tensor<5x8xf32>) -> tensor<5x8xf32> {
  %r = linalg.generic {indexing_maps = [affine_map<(k, t, n) -> (k, t, n)>, affine_map<(k, t, n) -> (t, n)>],
                       iterator_types = ["reduction", "parallel", "parallel"]}
      ins(%x : tensor<3x5x8xf32>) outs(%init : tensor<5x8xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %k = linalg.index 0 : index
    %ki = arith.index_cast %k : index to i32
    %kf = arith.sitofp %ki : i32 to f32
    %w = arith.mulf %in, %kf : f32
    %s = arith.addf %acc, %w : f32
    linalg.yield %s : f32
  } -> tensor<5x8xf32>
  return %r : tensor<5x8xf32>
}

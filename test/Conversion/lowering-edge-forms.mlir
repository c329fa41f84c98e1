// RUN: jamba-opt %s -split-input-file -convert-jamba-to-linalg | FileCheck %s --check-prefix=LINALG
// RUN: jamba-opt %s -split-input-file -jamba-cpu-microkernels | FileCheck %s --check-prefix=MICRO
// RUN: jamba-opt %s -split-input-file -jamba-cpu-lower-pipeline | FileCheck %s --check-prefix=CPU

// Forms the lowerings used to turn into invalid IR. A bf16 table read into
// an f16 result: bf16 -> f16 is neither an extension nor a truncation (the
// cast was a truncf between equal widths); it goes through f32.
// LINALG-LABEL: func.func @embedding_bf16_to_f16
//       LINALG:   arith.extf %{{.+}} : bf16 to f32
//       LINALG:   arith.truncf %{{.+}} : f32 to f16
// CPU-LABEL: llvm.func @embedding_bf16_to_f16
func.func @embedding_bf16_to_f16(%t: tensor<128x64xbf16>, %ids: tensor<1x?xi32>) -> tensor<1x?x64xf16> {
  %h = jamba.embedding %t, %ids : tensor<128x64xbf16>, tensor<1x?xi32> -> tensor<1x?x64xf16>
  return %h : tensor<1x?x64xf16>
}

// -----

// An f64 bias: the microkernels read their operands as f32 at most and
// leave the op to convert-jamba-to-linalg (they emitted an f64 -> f32
// extf).
// MICRO-LABEL: func.func @linear_f64_bias
//       MICRO:   jamba.linear
// CPU-LABEL: llvm.func @linear_f64_bias
func.func @linear_f64_bias(%x: tensor<?x64xf32>, %w: tensor<16x64xf32>, %b: tensor<16xf64>) -> tensor<?x16xf32> {
  %y = jamba.linear %x, %w bias(%b) : (tensor<?x64xf32>, tensor<16x64xf32>, tensor<16xf64>) -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// -----

// A dynamic output width: the microkernels' result buffer gets it from the
// weight (the allocation lacked it).
// MICRO-LABEL: func.func @linear_dynamic_n
//       MICRO:   %[[N:.+]] = memref.dim %{{.+}}, %c0{{.*}} : memref<?x128xf32
//       MICRO:   memref.alloc(%{{.+}}, %[[N]]) : memref<1x?x?xf32>
// CPU-LABEL: llvm.func @linear_dynamic_n
func.func @linear_dynamic_n(%x: tensor<1x?x128xf32>, %w: tensor<?x128xf32>) -> tensor<1x?x?xf32> {
  %y = jamba.linear %x, %w : (tensor<1x?x128xf32>, tensor<?x128xf32>) -> tensor<1x?x?xf32>
  return %y : tensor<1x?x?xf32>
}

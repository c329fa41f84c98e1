// RUN: jamba-opt %s -split-input-file -convert-jamba-to-linalg | FileCheck %s

// Tests that an int8 linear becomes a K reduction converting the weight in
// its body (f32 accumulation from a zero fill), then an epilogue applying the
// per-row scale and then the bias; the dynamic row count comes from
// tensor.dim.
// CHECK-LABEL: func @linear_int8
//  CHECK-SAME:   (%[[X:[^:]+]]: tensor<2x?x64xf32>, %[[Q:[^:]+]]: tensor<32x64xi8>, %[[S:[^:]+]]: tensor<32xf32>, %[[B:[^:]+]]: tensor<32xf32>)
//   CHECK-NOT:   jamba.linear
//       CHECK:   %[[SEQ:.+]] = tensor.dim %[[X]], %{{.+}} : tensor<2x?x64xf32>
//       CHECK:   %[[EMPTY:.+]] = tensor.empty(%[[SEQ]]) : tensor<2x?x32xf32>
//       CHECK:   %[[ZERO:.+]] = linalg.fill ins(%{{.+}} : f32) outs(%[[EMPTY]]
//       CHECK:   %[[ACC:.+]] = linalg.generic
//  CHECK-SAME:     iterator_types = ["parallel", "parallel", "parallel", "reduction"]
//  CHECK-SAME:     ins(%[[X]], %[[Q]] : tensor<2x?x64xf32>, tensor<32x64xi8>) outs(%[[ZERO]]
//       CHECK:   ^bb0(%[[XV:.+]]: f32, %[[QV:.+]]: i8, %[[OUT:.+]]: f32):
//       CHECK:     %[[QF:.+]] = arith.sitofp %[[QV]] : i8 to f32
//       CHECK:     %[[M:.+]] = arith.mulf %[[XV]], %[[QF]] fastmath<reassoc,contract> : f32
//       CHECK:     arith.addf %[[OUT]], %[[M]] fastmath<reassoc,contract> : f32
//       CHECK:   %[[Y:.+]] = linalg.generic
//  CHECK-SAME:     ins(%[[ACC]], %[[S]], %[[B]] : tensor<2x?x32xf32>, tensor<32xf32>, tensor<32xf32>)
//       CHECK:   ^bb0(%[[AV:.+]]: f32, %[[SV:.+]]: f32, %[[BV:.+]]: f32, %{{.+}}: f32):
//       CHECK:     %[[SCALED:.+]] = arith.mulf %[[AV]], %[[SV]] : f32
//       CHECK:     arith.addf %[[SCALED]], %[[BV]] : f32
//       CHECK:   return %[[Y]] : tensor<2x?x32xf32>
func.func @linear_int8(%x: tensor<2x?x64xf32>, %q: tensor<32x64xi8>, %s: tensor<32xf32>,
                       %b: tensor<32xf32>) -> tensor<2x?x32xf32> {
  %y = jamba.linear %x, %q scale(%s) bias(%b)
      : (tensor<2x?x64xf32>, tensor<32x64xi8>, tensor<32xf32>, tensor<32xf32>) -> tensor<2x?x32xf32>
  return %y : tensor<2x?x32xf32>
}

// -----

// bf16 activations and weights are widened in the body, accumulated in f32
// and rounded once to bf16 in the epilogue.
// CHECK-LABEL: func @linear_bf16
//       CHECK:   linalg.generic
//       CHECK:   ^bb0(%[[XV:.+]]: bf16, %[[WV:.+]]: bf16, %[[OUT:.+]]: f32):
//       CHECK:     %[[XF:.+]] = arith.extf %[[XV]] : bf16 to f32
//       CHECK:     %[[WF:.+]] = arith.extf %[[WV]] : bf16 to f32
//       CHECK:     arith.mulf %[[XF]], %[[WF]] fastmath<reassoc,contract> : f32
//       CHECK:   linalg.generic
//       CHECK:     arith.truncf %{{.+}} : f32 to bf16
func.func @linear_bf16(%x: tensor<?x64xbf16>, %w: tensor<32x64xbf16>) -> tensor<?x32xbf16> {
  %y = jamba.linear %x, %w : (tensor<?x64xbf16>, tensor<32x64xbf16>) -> tensor<?x32xbf16>
  return %y : tensor<?x32xbf16>
}

// -----

// The expert's weight row is gathered with tensor.extract at the (clamped)
// index read from `indices`; the epilogue gathers scale[e, n] the same way
// and multiplies by the routing weight.
// CHECK-LABEL: func @expert_gemm_int8
//  CHECK-SAME:   (%[[X:[^:]+]]: tensor<?x64xf32>, %[[Q:[^:]+]]: tensor<4x128x64xi8>, %[[S:[^:]+]]: tensor<4x128xf32>, %[[IDX:[^:]+]]: tensor<?x2xi32>, %[[RW:[^:]+]]: tensor<?x2xf32>)
//       CHECK:   %[[ACC:.+]] = linalg.generic
//  CHECK-SAME:     ins(%[[X]], %[[IDX]] : tensor<?x64xf32>, tensor<?x2xi32>)
//       CHECK:   ^bb0(%[[XV:.+]]: f32, %[[E:.+]]: i32, %[[OUT:.+]]: f32):
//       CHECK:     %[[EI:.+]] = arith.index_cast %[[E]] : i32 to index
//       CHECK:     %[[LOW:.+]] = arith.maxsi %[[EI]]
//       CHECK:     %[[EC:.+]] = arith.minsi %[[LOW]]
//       CHECK:     %[[N:.+]] = linalg.index 2 : index
//       CHECK:     %[[K:.+]] = linalg.index 3 : index
//       CHECK:     %[[WQ:.+]] = tensor.extract %[[Q]][%[[EC]], %[[N]], %[[K]]] : tensor<4x128x64xi8>
//       CHECK:     arith.sitofp %[[WQ]] : i8 to f32
//       CHECK:   linalg.generic
//  CHECK-SAME:     ins(%[[ACC]], %[[IDX]], %[[RW]] : tensor<?x2x128xf32>, tensor<?x2xi32>, tensor<?x2xf32>)
//       CHECK:     tensor.extract %[[S]][%{{.+}}, %{{.+}}] : tensor<4x128xf32>
//       CHECK:     arith.mulf
//       CHECK:     arith.mulf
func.func @expert_gemm_int8(%x: tensor<?x64xf32>, %q: tensor<4x128x64xi8>, %s: tensor<4x128xf32>,
                            %idx: tensor<?x2xi32>, %rw: tensor<?x2xf32>) -> tensor<?x2x128xf32> {
  %y = jamba.expert_gemm %x, %q scale(%s) indices(%idx) route_weights(%rw)
      : (tensor<?x64xf32>, tensor<4x128x64xi8>, tensor<4x128xf32>, tensor<?x2xi32>,
         tensor<?x2xf32>) -> tensor<?x2x128xf32>
  return %y : tensor<?x2x128xf32>
}

// -----

// A per-slot input [..., k, K] is indexed by the slot too; f32 weights
// without scale or routing weight need no epilogue.
// CHECK-LABEL: func @expert_gemm_per_slot
//  CHECK-SAME:   (%[[X:[^:]+]]: tensor<?x2x64xf32>, %[[W:[^:]+]]: tensor<4x128x64xf32>, %[[IDX:[^:]+]]: tensor<?x2xi64>)
//       CHECK:   linalg.generic
//  CHECK-SAME:     iterator_types = ["parallel", "parallel", "parallel", "reduction"]
//  CHECK-SAME:     ins(%[[X]], %[[IDX]] : tensor<?x2x64xf32>, tensor<?x2xi64>)
//       CHECK:     tensor.extract %[[W]]
//   CHECK-NOT:   linalg.generic
//       CHECK:   return
func.func @expert_gemm_per_slot(%x: tensor<?x2x64xf32>, %w: tensor<4x128x64xf32>,
                                %idx: tensor<?x2xi64>) -> tensor<?x2x128xf32> {
  %y = jamba.expert_gemm %x, %w indices(%idx)
      : (tensor<?x2x64xf32>, tensor<4x128x64xf32>, tensor<?x2xi64>) -> tensor<?x2x128xf32>
  return %y : tensor<?x2x128xf32>
}

// -----

// dequant is one elementwise generic: scale[..., n] * sitofp(q).
// CHECK-LABEL: func @dequant
//  CHECK-SAME:   (%[[Q:[^:]+]]: tensor<4x128x64xi8>, %[[S:[^:]+]]: tensor<4x128xf32>)
//       CHECK:   linalg.generic
//  CHECK-SAME:     ins(%[[Q]], %[[S]] : tensor<4x128x64xi8>, tensor<4x128xf32>)
//       CHECK:   ^bb0(%[[QV:.+]]: i8, %[[SV:.+]]: f32, %{{.+}}: f32):
//       CHECK:     %[[QF:.+]] = arith.sitofp %[[QV]] : i8 to f32
//       CHECK:     arith.mulf %[[SV]], %[[QF]] : f32
func.func @dequant(%q: tensor<4x128x64xi8>, %s: tensor<4x128xf32>) -> tensor<4x128x64xf32> {
  %w = jamba.dequant %q, %s : tensor<4x128x64xi8>, tensor<4x128xf32> -> tensor<4x128x64xf32>
  return %w : tensor<4x128x64xf32>
}

// -----

// rms_norm: a sum-of-squares reduction per row, 1/sqrt(mean + eps) per row,
// then w * (x * inv).
// CHECK-LABEL: func @rms_norm
//  CHECK-SAME:   (%[[X:[^:]+]]: tensor<1x?x64xf32>, %[[W:[^:]+]]: tensor<64xf32>)
//       CHECK:   %[[SUMSQ:.+]] = linalg.generic
//  CHECK-SAME:     iterator_types = ["parallel", "parallel", "reduction"]
//  CHECK-SAME:     ins(%[[X]] : tensor<1x?x64xf32>)
//       CHECK:   %[[INV:.+]] = linalg.generic
//  CHECK-SAME:     ins(%[[SUMSQ]] : tensor<1x?xf32>)
//       CHECK:     math.sqrt
//       CHECK:   linalg.generic
//  CHECK-SAME:     ins(%[[X]], %[[W]], %[[INV]] : tensor<1x?x64xf32>, tensor<64xf32>, tensor<1x?xf32>)
func.func @rms_norm(%x: tensor<1x?x64xf32>, %w: tensor<64xf32>) -> tensor<1x?x64xf32> {
  %y = jamba.rms_norm %x, %w {epsilon = 1.0e-06 : f64} : tensor<1x?x64xf32>, tensor<64xf32>
  return %y : tensor<1x?x64xf32>
}

// -----

// CHECK-LABEL: func @swiglu
//  CHECK-SAME:   (%[[G:[^:]+]]: tensor<?x2x128xf32>, %[[U:[^:]+]]: tensor<?x2x128xf32>)
//       CHECK:   linalg.generic
//  CHECK-SAME:     ins(%[[G]], %[[U]] : tensor<?x2x128xf32>, tensor<?x2x128xf32>)
//       CHECK:   ^bb0(%[[GV:.+]]: f32, %[[UV:.+]]: f32, %{{.+}}: f32):
//       CHECK:     %[[NEG:.+]] = arith.negf %[[GV]] : f32
//       CHECK:     %[[EXP:.+]] = math.exp %[[NEG]] : f32
//       CHECK:     %[[DEN:.+]] = arith.addf %{{.+}}, %[[EXP]] : f32
//       CHECK:     %[[SILU:.+]] = arith.divf %[[GV]], %[[DEN]] : f32
//       CHECK:     arith.mulf %[[SILU]], %[[UV]] : f32
func.func @swiglu(%g: tensor<?x2x128xf32>, %u: tensor<?x2x128xf32>) -> tensor<?x2x128xf32> {
  %a = jamba.swiglu %g, %u : tensor<?x2x128xf32>
  return %a : tensor<?x2x128xf32>
}

// -----

// combine_slots reduces over the slot dimension (not the innermost one).
// CHECK-LABEL: func @combine_slots
//  CHECK-SAME:   (%[[D:[^:]+]]: tensor<?x2x64xf32>)
//       CHECK:   linalg.generic
//  CHECK-SAME:     iterator_types = ["parallel", "reduction", "parallel"]
//  CHECK-SAME:     ins(%[[D]] : tensor<?x2x64xf32>) outs(%{{.+}} : tensor<?x64xf32>)
func.func @combine_slots(%d: tensor<?x2x64xf32>) -> tensor<?x64xf32> {
  %y = jamba.combine_slots %d : tensor<?x2x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// argmax: one reduction over the last dimension into the best value
// (from -inf) and id (from INT32_MAX): an element is taken when larger, or
// equal with a lower id; a NaN (unordered) or an id already -1 gives -1,
// and so does a best value that is still -inf.
// CHECK-LABEL: func @argmax
//  CHECK-SAME:   (%[[L:[^:]+]]: tensor<?x1x8xbf16>)
//   CHECK-DAG:   %[[NEGINF:.+]] = arith.constant 0xFF800000 : f32
//   CHECK-DAG:   %[[MAXID:.+]] = arith.constant 2147483647 : i32
//   CHECK-DAG:   linalg.fill ins(%[[MAXID]] : i32)
//       CHECK:   %[[R:.+]]:2 = linalg.generic
//  CHECK-SAME:     iterator_types = ["parallel", "parallel", "reduction"]
//  CHECK-SAME:     ins(%[[L]] : tensor<?x1x8xbf16>) outs(%{{.+}}, %{{.+}} : tensor<?x1xf32>, tensor<?x1xi32>)
//       CHECK:   ^bb0(%[[X:.+]]: bf16, %[[V:.+]]: f32, %[[I:.+]]: i32):
//       CHECK:     %[[XF:.+]] = arith.extf %[[X]] : bf16 to f32
//       CHECK:     %[[K:.+]] = linalg.index 2
//       CHECK:     %[[KI:.+]] = arith.index_cast %[[K]] : index to i32
//       CHECK:     %[[GT:.+]] = arith.cmpf ogt, %[[XF]], %[[V]]
//       CHECK:     %[[EQ:.+]] = arith.cmpf oeq, %[[XF]], %[[V]]
//       CHECK:     %[[LO:.+]] = arith.cmpi slt, %[[KI]], %[[I]]
//       CHECK:     arith.cmpf uno, %[[XF]], %[[XF]]
//       CHECK:   %[[IDS:.+]] = linalg.generic
//  CHECK-SAME:     ins(%[[R]]#0, %[[R]]#1 : tensor<?x1xf32>, tensor<?x1xi32>)
//       CHECK:     %[[NONE:.+]] = arith.cmpf oeq, %{{.+}}, %[[NEGINF]]
//       CHECK:     arith.select %[[NONE]], %{{.+}}, %{{.+}} : i32
//       CHECK:   return %[[IDS]] : tensor<?x1xi32>
func.func @argmax(%l: tensor<?x1x8xbf16>) -> tensor<?x1xi32> {
  %i = jamba.argmax %l : tensor<?x1x8xbf16> -> tensor<?x1xi32>
  return %i : tensor<?x1xi32>
}

// -----

// router_topk: row max, sum of exponentials, probabilities, then k rounds
// of selection over the experts; an expert is eligible when it comes after
// the previous pick in (p descending, index ascending) order.
// CHECK-LABEL: func @router_topk
//  CHECK-SAME:   (%[[L:[^:]+]]: tensor<?x4xf32>)
//       CHECK:   %[[MAX:.+]] = linalg.generic
//       CHECK:     arith.maximumf
//       CHECK:   %[[SUM:.+]] = linalg.generic
//       CHECK:     math.exp
//       CHECK:   %[[P:.+]] = linalg.generic
//  CHECK-SAME:     ins(%[[L]], %[[MAX]], %[[SUM]]
//       CHECK:   %[[R:.+]]:2 = scf.for %[[ROW:.+]] = %{{.+}} to %{{.+}} step %{{.+}} iter_args(%{{.+}} = %{{.+}}, %{{.+}} = %{{.+}}) -> (tensor<?x2xf32>, tensor<?x2xi32>)
//       CHECK:     scf.for %[[J:.+]] = %{{.+}} to %{{.+}} step
//       CHECK:       scf.for %[[E:.+]] = %{{.+}} to %{{.+}} step
//       CHECK:         %[[PE:.+]] = tensor.extract %[[P]][%[[ROW]], %[[E]]]
//       CHECK:         arith.cmpf olt, %[[PE]]
//       CHECK:         arith.cmpf oeq, %[[PE]]
//       CHECK:         arith.cmpi sgt, %[[E]]
//       CHECK:         arith.cmpf ogt, %[[PE]]
//       CHECK:       tensor.insert %{{.+}} into %{{.+}}[%[[ROW]], %[[J]]] : tensor<?x2xf32>
//       CHECK:       arith.index_cast %{{.+}} : index to i32
//       CHECK:       tensor.insert %{{.+}} into %{{.+}}[%[[ROW]], %[[J]]] : tensor<?x2xi32>
//       CHECK:     scf.for
//       CHECK:       arith.divf
//       CHECK:   return %[[R]]#0, %[[R]]#1
func.func @router_topk(%l: tensor<?x4xf32>) -> (tensor<?x2xf32>, tensor<?x2xi32>) {
  %w, %idx = jamba.router_topk %l {top_k = 2 : i64, normalize}
      : tensor<?x4xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
  return %w, %idx : tensor<?x2xf32>, tensor<?x2xi32>
}

// -----

// Logits of rank 3 are collapsed to [rows, experts] and the results
// expanded back.
// CHECK-LABEL: func @router_topk_rank3
//       CHECK:   tensor.collapse_shape %{{.+}} {{\[\[}}0, 1], [2]] : tensor<2x?x4xf32> into tensor<?x4xf32>
//       CHECK:   tensor.expand_shape %{{.+}} {{\[\[}}0, 1], [2]] output_shape [2, %{{.+}}, 2] : tensor<?x2xf32> into tensor<2x?x2xf32>
//       CHECK:   tensor.expand_shape %{{.+}} {{\[\[}}0, 1], [2]] output_shape [2, %{{.+}}, 2] : tensor<?x2xi64> into tensor<2x?x2xi64>
func.func @router_topk_rank3(%l: tensor<2x?x4xf32>) -> (tensor<2x?x2xf32>, tensor<2x?x2xi64>) {
  %w, %idx = jamba.router_topk %l {top_k = 2 : i64}
      : tensor<2x?x4xf32> -> tensor<2x?x2xf32>, tensor<2x?x2xi64>
  return %w, %idx : tensor<2x?x2xf32>, tensor<2x?x2xi64>
}

// -----

// embedding gathers table[clamp(id), h].
// CHECK-LABEL: func @embedding
//  CHECK-SAME:   (%[[T:[^:]+]]: tensor<128x64xf32>, %[[IDS:[^:]+]]: tensor<1x?xi32>)
//       CHECK:   linalg.generic
//  CHECK-SAME:     ins(%[[IDS]] : tensor<1x?xi32>)
//       CHECK:   ^bb0(%[[ID:.+]]: i32, %{{.+}}: f32):
//       CHECK:     %[[I:.+]] = arith.index_cast %[[ID]] : i32 to index
//       CHECK:     %[[LOW:.+]] = arith.maxsi %[[I]]
//       CHECK:     %[[ROW:.+]] = arith.minsi %[[LOW]]
//       CHECK:     %[[H:.+]] = linalg.index 2 : index
//       CHECK:     tensor.extract %[[T]][%[[ROW]], %[[H]]] : tensor<128x64xf32>
func.func @embedding(%t: tensor<128x64xf32>, %ids: tensor<1x?xi32>) -> tensor<1x?x64xf32> {
  %h = jamba.embedding %t, %ids : tensor<128x64xf32>, tensor<1x?xi32> -> tensor<1x?x64xf32>
  return %h : tensor<1x?x64xf32>
}

// -----

// causal_conv1d: the accumulator starts at the bias, the reduction over the
// kernel width reads the state or the input, SiLU follows; the new state is
// a gather of the last K-1 extended inputs.
// CHECK-LABEL: func @causal_conv1d
//  CHECK-SAME:   (%[[X:[^:]+]]: tensor<1x?x128xf32>, %[[W:[^:]+]]: tensor<128x4xf32>, %[[B:[^:]+]]: tensor<128xf32>, %[[S:[^:]+]]: tensor<1x128x3xf32>)
//       CHECK:   %[[INIT:.+]] = linalg.generic
//  CHECK-SAME:     ins(%[[B]] : tensor<128xf32>)
//       CHECK:   %[[ACC:.+]] = linalg.generic
//  CHECK-SAME:     iterator_types = ["parallel", "parallel", "parallel", "reduction"]
//  CHECK-SAME:     ins(%[[W]] : tensor<128x4xf32>) outs(%[[INIT]]
//       CHECK:     scf.if
//       CHECK:       tensor.extract %[[S]]
//       CHECK:     } else {
//       CHECK:       tensor.extract %[[X]]
//       CHECK:   %[[Y:.+]] = linalg.generic
//  CHECK-SAME:     ins(%[[ACC]]
//       CHECK:     math.exp
//       CHECK:   %[[NS:.+]] = linalg.generic
//  CHECK-SAME:     outs(%{{.+}} : tensor<1x128x3xf32>)
//       CHECK:   return %[[Y]], %[[NS]]
func.func @causal_conv1d(%x: tensor<1x?x128xf32>, %w: tensor<128x4xf32>, %b: tensor<128xf32>,
                         %s: tensor<1x128x3xf32>) -> (tensor<1x?x128xf32>, tensor<1x128x3xf32>) {
  %y, %st = jamba.causal_conv1d %x, %w bias(%b) state(%s) {silu}
      : (tensor<1x?x128xf32>, tensor<128x4xf32>, tensor<128xf32>, tensor<1x128x3xf32>)
      -> (tensor<1x?x128xf32>, tensor<1x128x3xf32>)
  return %y, %st : tensor<1x?x128xf32>, tensor<1x128x3xf32>
}

// -----

// selective_scan: delta (+ bias, softplus) for all steps first, then an
// scf.for over time carrying the f32 state and the output; per step one
// state-update generic and one output generic written into a slice of y.
// CHECK-LABEL: func @selective_scan
//  CHECK-SAME:   (%[[U:[^:]+]]: tensor<1x?x128xf32>, %[[DELTA:[^:]+]]: tensor<1x?x128xf32>, %[[A:[^:]+]]: tensor<128x8xf32>, %{{[^:]+}}: tensor<1x?x8xf32>, %{{[^:]+}}: tensor<1x?x8xf32>, %{{[^:]+}}: tensor<128xf32>, %{{[^:]+}}: tensor<1x?x128xf32>, %[[DB:[^:]+]]: tensor<128xf32>, %[[H0:[^:]+]]: tensor<1x128x8xf32>)
//       CHECK:   %[[DT:.+]] = linalg.generic
//  CHECK-SAME:     ins(%[[DELTA]], %[[DB]] : tensor<1x?x128xf32>, tensor<128xf32>)
//       CHECK:     math.log
//       CHECK:   %[[LOOP:.+]]:2 = scf.for %[[T:.+]] = %{{.+}} to %{{.+}} step %{{.+}} iter_args(%[[H:.+]] = %[[H0]], %[[Y:.+]] = %{{.+}}) -> (tensor<1x128x8xf32>, tensor<1x?x128xf32>)
//       CHECK:     %[[DTT:.+]] = tensor.extract_slice %[[DT]][0, %[[T]], 0] [1, 1, 128] [1, 1, 1] : tensor<1x?x128xf32> to tensor<1x128xf32>
//       CHECK:     %[[HN:.+]] = linalg.generic
//  CHECK-SAME:       ins(%[[DTT]], %{{.+}}, %[[A]], %{{.+}} : tensor<1x128xf32>, tensor<1x128xf32>, tensor<128x8xf32>, tensor<1x8xf32>) outs(%[[H]] : tensor<1x128x8xf32>)
//       CHECK:       math.exp
//       CHECK:     %[[YS:.+]] = tensor.extract_slice %[[Y]][0, %[[T]], 0]
//       CHECK:     %[[YT:.+]] = linalg.generic
//  CHECK-SAME:       outs(%[[YS]] : tensor<1x128xf32>)
//       CHECK:       scf.for
//       CHECK:         tensor.extract %[[HN]]
//       CHECK:     %[[YN:.+]] = tensor.insert_slice %[[YT]] into %[[Y]][0, %[[T]], 0] [1, 1, 128] [1, 1, 1]
//       CHECK:     scf.yield %[[HN]], %[[YN]]
//       CHECK:   return %[[LOOP]]#1, %[[LOOP]]#0
func.func @selective_scan(%u: tensor<1x?x128xf32>, %delta: tensor<1x?x128xf32>, %A: tensor<128x8xf32>,
                          %B: tensor<1x?x8xf32>, %C: tensor<1x?x8xf32>, %D: tensor<128xf32>,
                          %z: tensor<1x?x128xf32>, %db: tensor<128xf32>, %h0: tensor<1x128x8xf32>)
    -> (tensor<1x?x128xf32>, tensor<1x128x8xf32>) {
  %y, %h = jamba.selective_scan %u, %delta, %A, %B, %C D(%D) z(%z) delta_bias(%db)
      init_state(%h0) {delta_softplus}
      : (tensor<1x?x128xf32>, tensor<1x?x128xf32>, tensor<128x8xf32>, tensor<1x?x8xf32>,
         tensor<1x?x8xf32>, tensor<128xf32>, tensor<1x?x128xf32>, tensor<128xf32>,
         tensor<1x128x8xf32>) -> (tensor<1x?x128xf32>, tensor<1x128x8xf32>)
  return %y, %h : tensor<1x?x128xf32>, tensor<1x128x8xf32>
}

// -----

// Leave unchanged: layer-level ops are not lowered by this pass, and a
// function without jamba ops is left as it is.
// CHECK-LABEL: func @layer_ops_stay
//       CHECK:   %[[Y:.+]] = jamba.mlp
//       CHECK:   return %[[Y]]
// CHECK-LABEL: func @no_jamba
//  CHECK-NEXT:   arith.addf
//  CHECK-NEXT:   return
func.func @layer_ops_stay(%x: tensor<1x?x64xf32>, %g: tensor<128x64xf32>, %u: tensor<128x64xf32>,
                          %d: tensor<64x128xf32>) -> tensor<1x?x64xf32> {
  %y = jamba.mlp %x, %g, %u, %d
      : (tensor<1x?x64xf32>, tensor<128x64xf32>, tensor<128x64xf32>, tensor<64x128xf32>) -> tensor<1x?x64xf32>
  return %y : tensor<1x?x64xf32>
}
func.func @no_jamba(%a: f32) -> f32 {
  %b = arith.addf %a, %a : f32
  return %b : f32
}

// -----

// Must not crash: rank-1 operands (0-d row statistics, a [1, E] view of the
// logits), every size dynamic, and results more or less static than their
// operands (the op's static sizes are used; a tensor.cast restores its type).
// CHECK-LABEL: func @edge_shapes
//   CHECK-NOT:   jamba.
//       CHECK:   iterator_types = []
//       CHECK:   tensor.expand_shape %{{.+}} {{\[\[}}0, 1]] output_shape [1, 4] : tensor<4xf16> into tensor<1x4xf16>
//       CHECK:   outs(%{{.+}} : tensor<4x8xf32>)
//       CHECK:   tensor.cast %{{.+}} : tensor<?x8xf32> to tensor<?x?xf32>
//       CHECK:   return
func.func @edge_shapes(%v: tensor<64xf32>, %w: tensor<64xf32>, %l: tensor<4xf16>,
                       %x: tensor<?x?xf32>, %m: tensor<?x?xf32>, %m8: tensor<8x?xf32>)
    -> (tensor<64xf32>, tensor<2xf32>, tensor<2xi64>, tensor<?x?xf32>, tensor<4x8xf32>,
        tensor<?x?xf32>) {
  %n = jamba.rms_norm %v, %w : tensor<64xf32>, tensor<64xf32>
  %p, %i = jamba.router_topk %l {top_k = 2 : i64} : tensor<4xf16> -> tensor<2xf32>, tensor<2xi64>
  %y = jamba.linear %x, %m : (tensor<?x?xf32>, tensor<?x?xf32>) -> tensor<?x?xf32>
  %z = jamba.linear %x, %m : (tensor<?x?xf32>, tensor<?x?xf32>) -> tensor<4x8xf32>
  %c = jamba.linear %x, %m8 : (tensor<?x?xf32>, tensor<8x?xf32>) -> tensor<?x?xf32>
  return %n, %p, %i, %y, %z, %c : tensor<64xf32>, tensor<2xf32>, tensor<2xi64>, tensor<?x?xf32>,
      tensor<4x8xf32>, tensor<?x?xf32>
}

// -----

// Tests that cached_attention first writes the new k/v rows into the caches
// at cache_len[b] + s (element by element: in place once bufferized), then
// loops over batch, position and head: scores against cached
// positions 0 .. cache_len[b] + s with their running max (scale
// 16^-1/2 = 0.25), exp(score - max) and the sum, and the weighted sum of v
// rows; the query head h reads kv head h / 2.
// CHECK-LABEL: func @cached_attention
//  CHECK-SAME:   (%[[Q:[^:]+]]: tensor<1x?x64xf32>, %[[K:[^:]+]]: tensor<1x?x32xf32>, %[[V:[^:]+]]: tensor<1x?x32xf32>, %[[KC:[^:]+]]: tensor<1x2x?x16xf32>, %[[VC:[^:]+]]: tensor<1x2x?x16xf32>, %[[LEN:[^:]+]]: tensor<1xi64>)
//   CHECK-NOT:   jamba.cached_attention
//       CHECK:   %[[CACHES:.+]]:2 = scf.for %[[B:.+]] = %{{.+}} to %{{.+}} step %{{.+}} iter_args(%{{.+}} = %[[KC]], %{{.+}} = %[[VC]])
//       CHECK:     tensor.extract %[[LEN]][%[[B]]] : tensor<1xi64>
//       CHECK:     scf.for %[[S:[^ ]+]] =
//       CHECK:       %[[POS:.+]] = arith.addi %{{.+}}, %[[S]] : index
//       CHECK:       scf.for %[[G:[^ ]+]] =
//       CHECK:         scf.for %[[D:[^ ]+]] =
//       CHECK:           %[[KX:.+]] = tensor.extract %[[K]][%[[B]], %[[S]], %{{.+}}] : tensor<1x?x32xf32>
//       CHECK:           tensor.insert %[[KX]] into %{{.+}}[%[[B]], %[[G]], %[[POS]], %[[D]]] : tensor<1x2x?x16xf32>
//       CHECK:           tensor.extract %[[V]]
//       CHECK:           tensor.insert
//   CHECK-DAG:   %[[NEGINF:.+]] = arith.constant 0xFF800000 : f32
//   CHECK-DAG:   %[[SCALE:.+]] = arith.constant 2.500000e-01 : f32
//       CHECK:   linalg.fill
//       CHECK:   scf.for
//       CHECK:     scf.for
//       CHECK:       scf.for %[[H:[^ ]+]] =
//       CHECK:         arith.divui %[[H]], %{{.+}} : index
//       CHECK:         tensor.empty(%{{.+}}) : tensor<?xf32>
//       CHECK:         scf.for {{.*}} iter_args(%{{.+}} = %{{.+}}, %{{.+}} = %[[NEGINF]])
//       CHECK:           tensor.extract %[[CACHES]]#0
//       CHECK:           arith.mulf %{{.+}}, %[[SCALE]] : f32
//       CHECK:           arith.cmpf olt
//       CHECK:         math.exp
//       CHECK:         arith.divf
//       CHECK:           tensor.extract %[[CACHES]]#1
//       CHECK:   return %{{.+}}, %[[CACHES]]#0, %[[CACHES]]#1
func.func @cached_attention(%q: tensor<1x?x64xf32>, %k: tensor<1x?x32xf32>, %v: tensor<1x?x32xf32>,
                            %kc: tensor<1x2x?x16xf32>, %vc: tensor<1x2x?x16xf32>, %len: tensor<1xi64>)
    -> (tensor<1x?x64xf32>, tensor<1x2x?x16xf32>, tensor<1x2x?x16xf32>) {
  %o, %k2, %v2 = jamba.cached_attention %q, %k, %v, cache(%kc, %vc, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x?x64xf32>, tensor<1x?x32xf32>, tensor<1x?x32xf32>, tensor<1x2x?x16xf32>,
         tensor<1x2x?x16xf32>, tensor<1xi64>)
      -> (tensor<1x?x64xf32>, tensor<1x2x?x16xf32>, tensor<1x2x?x16xf32>)
  return %o, %k2, %v2 : tensor<1x?x64xf32>, tensor<1x2x?x16xf32>, tensor<1x2x?x16xf32>
}

// -----

// Tests that weight arguments (jamba.weight) become read-only for
// bufferization (bufferization.writable = false) so that no kernel writes
// into them; states and inputs stay writable (unmarked).
// CHECK-LABEL: func @weights_read_only
//  CHECK-SAME:   %{{[^:]+}}: tensor<1x?x16xf32>,
//  CHECK-SAME:   %{{[^:]+}}: tensor<8x16xf32> {bufferization.writable = false, jamba.weight = "w"}
//  CHECK-SAME:   %{{[^:]+}}: tensor<1x8x3xf32> {jamba.state = "s"}
func.func @weights_read_only(%x: tensor<1x?x16xf32>, %w: tensor<8x16xf32> {jamba.weight = "w"},
                             %s: tensor<1x8x3xf32> {jamba.state = "s"})
    -> (tensor<1x?x8xf32>, tensor<1x8x3xf32>) {
  %y = jamba.linear %x, %w : (tensor<1x?x16xf32>, tensor<8x16xf32>) -> tensor<1x?x8xf32>
  return %y, %s : tensor<1x?x8xf32>, tensor<1x8x3xf32>
}

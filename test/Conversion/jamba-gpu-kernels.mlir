// RUN: jamba-opt %s -split-input-file -jamba-gpu-kernels -verify-diagnostics | FileCheck %s

// The scan. With a static state width (4 here) the time loop is cut into
// chunks, C = max(1, min(ceil(2^17 / (batch x channels)), seq / 64)) at run
// time, in three parallel nests (a call of at most 8 steps, a decode step,
// runs nest 4 instead, since the width divides a warp):
// 1. per (sequence, chunk but the last, channel): the chunk from a zero
//    state, its end state and the sum of its step sizes stored;
// 2. per (sequence, channel), when C > 1: the chunks' initial states, from
//    init_state, h <- exp(A sum) h + (chunk from zero);
// 3. per (sequence, chunk, channel): the chunk from its initial state
//    (init_state for chunk 0), the row A[c, :] loaded into scalars and the
//    state carried as f32 iter_args (registers on a GPU): only the inputs
//    are loaded and y stored in the time loop; the last chunk stores the
//    final state after it.
// The channel is the innermost dimension of nests 1 and 3, so that adjacent
// threads read and write adjacent elements at each time step.
// No tensor op is left between the operand buffers and the results.

// CHECK-LABEL: func.func @scan
// CHECK-SAME: (%[[U:[^:]+]]: tensor<2x?x8xf32>
// CHECK: %[[UB:.+]] = bufferization.to_buffer %[[U]] read_only
// CHECK: %[[Y:.+]] = memref.alloc(%{{.+}}) : memref<2x?x8xf32>
// CHECK: %[[H:.+]] = memref.alloc() {jamba.state_over_old} : memref<2x8x4xf32>
// CHECK: arith.ceildivui %c131072{{.*}}, %{{.+}}
// CHECK: arith.divui %{{.+}}, %c64
// CHECK: arith.minui
// CHECK: %[[CH:.+]] = arith.maxui %c1{{.*}}, %{{.+}} : index
// CHECK: %[[SEVERAL:.+]] = arith.cmpi ugt, %[[CH]], %c1
// At most 8 steps (a decode step) the chunked nests get no sequences (nest
// 4 below runs instead); nor do they with more steps and at least
// scan-lane-threads (65536) threads of (sequence, channel, lane), 4 lanes
// per channel here (nest 5 runs instead):
// CHECK: %[[FEW:.+]] = arith.cmpi ule, %{{.+}}, %c8
// CHECK: %[[LANES:.+]] = arith.muli %{{.+}}, %c4
// CHECK: %[[LONG:.+]] = arith.cmpi ugt, %{{.+}}, %c8
// CHECK: %[[ENOUGH:.+]] = arith.cmpi uge, %[[LANES]], %c65536
// CHECK: %[[ONEPASS:.+]] = arith.andi %[[LONG]], %[[ENOUGH]]
// CHECK: %[[ELSEWHERE:.+]] = arith.ori %[[FEW]], %[[ONEPASS]]
// CHECK: %[[CHB:.+]] = arith.select %[[ELSEWHERE]], %c0{{.*}}, %{{.+}} : index
// CHECK: %[[LOCAL:.+]] = memref.alloc({{.+}}) : memref<?x?x?x?xf32>
// CHECK: %[[SUMS:.+]] = memref.alloc({{.+}}) : memref<?x?x?xf32>
// CHECK: %[[STARTS:.+]] = memref.alloc({{.+}}) : memref<?x?x?x?xf32>
// CHECK: scf.parallel (%{{.+}}, %{{.+}}, %{{.+}}) = ({{.+}}) to (%[[CHB]], %{{.+}}, %{{.+}})
// The time loop twice, under the call's test of B's rows: B_t as one
// vector load of 4 where they are aligned, 4 scalar loads otherwise;
// either way B_t (d u) is one vector multiply. A decay is exp2(d A
// log2(e)) (A log2(e) computed before the loop), a state's update one fma:
// CHECK:   %[[L1:.+]]:5 = scf.if %[[ALIGNED:.+]] -> (f32, f32, f32, f32, f32)
// CHECK:     scf.for {{.+}} -> (f32, f32, f32, f32, f32)
// CHECK:       %[[BV:.+]] = vector.load %{{.+}} : memref<2x?x4xf32, {{.+}}>, vector<4xf32>
// CHECK:       arith.mulf %[[BV]], %{{.+}} : vector<4xf32>
// CHECK:       math.exp2
// CHECK:       math.fma
// CHECK:   } else {
// CHECK:     scf.for {{.+}} -> (f32, f32, f32, f32, f32)
// CHECK-NOT:   vector.load
// CHECK-COUNT-4: memref.load %{{.+}} : memref<2x?x4xf32, {{.+}}>
// CHECK:       vector.from_elements
// CHECK:       math.exp2
// CHECK:       math.fma
// CHECK:   memref.store %[[L1]]#0, %[[LOCAL]]
// CHECK:   memref.store %{{.+}}, %[[SUMS]]
// CHECK: } {jamba.kernel = "selective_scan_chunks"}
// CHECK: scf.parallel (%{{.+}}, %{{.+}}) =
// CHECK:   scf.for {{.+}} -> (f32, f32, f32, f32)
// CHECK:     memref.load %[[SUMS]]
// CHECK:     memref.store %{{.+}}, %[[STARTS]]
// CHECK: } {jamba.kernel = "selective_scan_carry"}
// CHECK: scf.parallel (%[[B:.+]], %[[K:.+]], %[[C:.+]]) = (%{{.+}}, %{{.+}}, %{{.+}}) to (%{{.+}}, %[[CH]], %{{.+}})
// CHECK-COUNT-4: memref.load
// CHECK: scf.if %{{.+}} -> (f32, f32, f32, f32)
// CHECK-NOT: memref.store
// CHECK:   %[[S:.+]]:4 = scf.if %[[ALIGNED]] -> (f32, f32, f32, f32)
// CHECK:   scf.for %[[T:.+]] = %{{.+}} to %{{.+}} step %{{.+}} iter_args({{.+}}) -> (f32, f32, f32, f32)
// CHECK:     math.log
// CHECK:     vector.load
// CHECK:     math.exp2
// CHECK:     math.fma
// CHECK-NOT: memref.store %{{.+}}, %[[H]]
// CHECK:     memref.store %{{.+}}, %[[Y]][%[[B]], %[[T]], %[[C]]]
// CHECK:     scf.yield
// CHECK:   } else {
// CHECK:   scf.for %[[T2:.+]] = %{{.+}} to %{{.+}} step %{{.+}} iter_args({{.+}}) -> (f32, f32, f32, f32)
// CHECK-NOT: vector.load
// CHECK:     memref.store %{{.+}}, %[[Y]][%[[B]], %[[T2]], %[[C]]]
// CHECK:   scf.if
// CHECK:     memref.store %[[S]]#0, %[[H]][%[[B]], %[[C]], %{{.+}}]
// CHECK:     memref.store %[[S]]#3, %[[H]][%[[B]], %[[C]], %{{.+}}]
// CHECK: } {jamba.kernel = "selective_scan"}
// 4. At most 8 steps, one lane per state: (sequence, group of 32 / 4 = 8
// channels, lane), lane l at channel 8 group + l / 4 and state l % 4, its
// state carried in a register through the steps; the channel's <C_t, h_t>
// is added over its 4 lanes by two butterfly shuffles, and its first lane
// writes y; the lanes of a channel past the last store nothing.
// CHECK: %[[LB:.+]] = arith.select %[[FEW]], %{{.+}}, %c0{{.*}} : index
// CHECK: %[[GROUPS:.+]] = arith.ceildivui %{{.+}}, %c8
// CHECK: scf.parallel (%{{.+}}, %{{.+}}, %{{.+}}) = ({{.+}}) to (%[[LB]], %[[GROUPS]], %c32)
// CHECK:   arith.cmpi ult
// CHECK:   %[[ST:.+]] = scf.for %{{.+}} = %{{.+}} to %{{.+}} step %{{.+}} iter_args(%{{.+}} = %{{.+}}) -> (f32)
// CHECK:     math.exp2
// CHECK:     math.fma
// CHECK:     gpu.shuffle  xor %{{.+}}, %c2_i32, %c32_i32
// CHECK:     gpu.shuffle  xor %{{.+}}, %c1_i32, %c32_i32
// CHECK:     scf.if
// CHECK:       memref.store %{{.+}}, %[[Y]]
// CHECK:   scf.if
// CHECK:     memref.store %[[ST]], %[[H]]
// CHECK: } {jamba.kernel = "selective_scan_states"}
// 5. One pass: (sequence, group of 32 / 4 = 8 channels, lane) as in nest 4,
// each lane's state carried from the initial state to the final one. The
// steps go in batches of 4 (the lanes per channel): the whole batches in
// one loop, then the last one if the length is not a multiple of 4 (its
// rows clamped). Lane j loads step j's delta, u and z: for the first batch
// before the loop, and in each batch for the next one (the last whole
// batch reloads its own), so that these loads from memory overlap a
// batch's work. Then lane j takes step j's step size (softplus: exp, log)
// and d u, which 8 shuffles hand to the channel's lanes (4 steps, d and
// d u); 4 steps of one decay (exp2) and one fma each; the 4 lanes' parts
// of the 4 steps' <C_t, h_t> summed by a reduce-scatter (two shuffles at
// distance 2, one at 1), and lane j writes step j's y.
// CHECK: %[[OB:.+]] = arith.select %[[ONEPASS]], %{{.+}}, %c0{{.*}} : index
// CHECK: scf.parallel (%{{.+}}, %{{.+}}, %{{.+}}) = ({{.+}}) to (%[[OB]], %{{.+}}, %c32{{.*}})
// CHECK:   %[[WHOLE:.+]] = arith.muli %{{.+}}, %c4
// CHECK:   %[[FIRST:.+]]:3 = scf.if %{{.+}} -> (f32, f32, f32)
// CHECK-COUNT-3: memref.load
// CHECK:   %[[HW:.+]]:4 = scf.for %{{.+}} = %c0{{.*}} to %[[WHOLE]] step %c4{{.*}} iter_args(%{{.+}} = %{{.+}}, %{{.+}} = %[[FIRST]]#0, %{{.+}} = %[[FIRST]]#1, %{{.+}} = %[[FIRST]]#2) -> (f32, f32, f32, f32)
// CHECK:     %[[D:.+]] = memref.load
// CHECK:     %[[U:.+]] = memref.load
// CHECK:     %[[Z:.+]] = memref.load
// CHECK:     math.exp
// CHECK:     math.log
// CHECK-COUNT-8: gpu.shuffle  idx
// CHECK-COUNT-4: math.exp2
// CHECK-NOT: math.exp2
// CHECK-COUNT-2: gpu.shuffle  xor %{{.+}}, %c2_i32
// CHECK:     gpu.shuffle  xor %{{.+}}, %c1_i32
// CHECK:     scf.if
// CHECK:       memref.store %{{.+}}, %[[Y]]
// CHECK:     scf.yield %{{.+}}, %[[D]], %[[U]], %[[Z]] : f32, f32, f32, f32
// CHECK:   %[[HL:.+]] = scf.if %{{.+}} -> (f32)
// CHECK:     arith.minui
// CHECK-COUNT-3: memref.load
// CHECK-COUNT-8: gpu.shuffle  idx
// CHECK-COUNT-4: math.exp2
// CHECK:       memref.store %{{.+}}, %[[Y]]
// CHECK:   } else {
// CHECK:     scf.yield %[[HW]]#0
// CHECK:   scf.if
// CHECK:     memref.store %[[HL]], %[[H]]
// CHECK: } {jamba.kernel = "selective_scan_lanes"}
// CHECK: %[[YT:.+]] = bufferization.to_tensor %[[Y]] restrict writable
// CHECK: %[[HT:.+]] = bufferization.to_tensor %[[H]] restrict writable
// CHECK: return %[[YT]], %[[HT]]
func.func @scan(%u: tensor<2x?x8xf32>, %delta: tensor<2x?x8xf32>, %A: tensor<8x4xf32>,
                %B: tensor<2x?x4xf32>, %C: tensor<2x?x4xf32>, %D: tensor<8xf32>,
                %z: tensor<2x?x8xf32>, %db: tensor<8xf32>, %h0: tensor<2x8x4xf32>)
    -> (tensor<2x?x8xf32>, tensor<2x8x4xf32>) {
  %y, %h = jamba.selective_scan %u, %delta, %A, %B, %C D(%D) z(%z) delta_bias(%db)
      init_state(%h0) {delta_softplus}
      : (tensor<2x?x8xf32>, tensor<2x?x8xf32>, tensor<8x4xf32>, tensor<2x?x4xf32>,
         tensor<2x?x4xf32>, tensor<8xf32>, tensor<2x?x8xf32>, tensor<8xf32>,
         tensor<2x8x4xf32>) -> (tensor<2x?x8xf32>, tensor<2x8x4xf32>)
  return %y, %h : tensor<2x?x8xf32>, tensor<2x8x4xf32>
}

// -----

// 16 states (Jamba's) split over 8 lanes of 2 in the one-pass nest: the
// whole batches of 8 steps are built twice under the call's test that the
// rows of B and C are aligned for 8 bytes, each lane's 2 elements of B_t
// and of C_t one vector load in the first, two scalar loads in the second;
// the last batch (rows clamped) loads scalars. 16 shuffles hand each
// step's d and d u to the channel's lanes; the reduce-scatter's rounds
// are at distances 4, 2 and 1.

// CHECK-LABEL: func.func @scan_lane_vectors
// CHECK: scf.parallel
// CHECK: } {jamba.kernel = "selective_scan_states"}
// CHECK: scf.parallel (%{{.+}}, %{{.+}}, %{{.+}}) = ({{.+}}) to (%{{.+}}, %{{.+}}, %c32{{.*}})
// CHECK:   scf.if %{{.+}} -> (f32, f32, f32, f32, f32)
// CHECK:     scf.for {{.+}} -> (f32, f32, f32, f32, f32)
// CHECK-COUNT-16: gpu.shuffle  idx
// CHECK:       vector.load %{{.+}} : memref<1x?x16xf32, {{.+}}>, vector<2xf32>
// CHECK:       math.exp2
// CHECK:       math.exp2
// CHECK:       vector.load %{{.+}} : memref<1x?x16xf32, {{.+}}>, vector<2xf32>
// CHECK-COUNT-4: gpu.shuffle  xor %{{.+}}, %c4_i32
// CHECK-COUNT-2: gpu.shuffle  xor %{{.+}}, %c2_i32
// CHECK:       gpu.shuffle  xor %{{.+}}, %c1_i32
// CHECK:   } else {
// CHECK:     scf.for {{.+}} -> (f32, f32, f32, f32, f32)
// CHECK-NOT:   vector.load
// CHECK:   scf.if %{{.+}} -> (f32, f32)
// CHECK-NOT:   vector.load
// CHECK: } {jamba.kernel = "selective_scan_lanes"}
func.func @scan_lane_vectors(%u: tensor<1x?x8xf32>, %delta: tensor<1x?x8xf32>,
                             %A: tensor<8x16xf32>, %B: tensor<1x?x16xf32>,
                             %C: tensor<1x?x16xf32>)
    -> (tensor<1x?x8xf32>, tensor<1x8x16xf32>) {
  %y, %h = jamba.selective_scan %u, %delta, %A, %B, %C {delta_softplus}
      : (tensor<1x?x8xf32>, tensor<1x?x8xf32>, tensor<8x16xf32>, tensor<1x?x16xf32>,
         tensor<1x?x16xf32>) -> (tensor<1x?x8xf32>, tensor<1x8x16xf32>)
  return %y, %h : tensor<1x?x8xf32>, tensor<1x8x16xf32>
}

// -----

// A state width unknown at compile time: the state lives in the
// final-state buffer, initialised from init_state, then updated in place at
// every time step by the state loop, which also accumulates <C, h>.

// CHECK-LABEL: func.func @scan_dynamic_width
// CHECK: %[[Y:.+]] = memref.alloc(%{{.+}}) : memref<2x?x8xf32>
// CHECK: %[[H:.+]] = memref.alloc(%{{.+}}) {jamba.state_over_old} : memref<2x8x?xf32>
// CHECK: scf.parallel (%[[B:.+]], %[[C:.+]]) = (%{{.+}}, %{{.+}}) to (%{{.+}}, %{{.+}})
// CHECK:   scf.for
// CHECK:     memref.store %{{.+}}, %[[H]][%[[B]], %[[C]], %{{.+}}]
// CHECK:   scf.for %[[T:.+]] = %{{.+}} to %{{.+}} step
// CHECK:     %[[SUM:.+]] = scf.for {{.+}} iter_args({{.+}}) -> (f32)
// CHECK:       math.exp
// CHECK:       memref.store %{{.+}}, %[[H]][%[[B]], %[[C]], %{{.+}}]
// CHECK:       scf.yield
// CHECK:     memref.store %{{.+}}, %[[Y]][%[[B]], %[[T]], %[[C]]]
// CHECK:   scf.reduce
func.func @scan_dynamic_width(%u: tensor<2x?x8xf32>, %delta: tensor<2x?x8xf32>,
                              %A: tensor<8x?xf32>, %B: tensor<2x?x?xf32>,
                              %C: tensor<2x?x?xf32>, %h0: tensor<2x8x?xf32>)
    -> (tensor<2x?x8xf32>, tensor<2x8x?xf32>) {
  %y, %h = jamba.selective_scan %u, %delta, %A, %B, %C init_state(%h0)
      : (tensor<2x?x8xf32>, tensor<2x?x8xf32>, tensor<8x?xf32>, tensor<2x?x?xf32>,
         tensor<2x?x?xf32>, tensor<2x8x?xf32>) -> (tensor<2x?x8xf32>, tensor<2x8x?xf32>)
  return %y, %h : tensor<2x?x8xf32>, tensor<2x8x?xf32>
}

// -----

// The conv. A call of at most 8 steps (a decode step): per (sequence,
// channel), a time loop over the K taps of the extended input (the state
// for the first K-1, then the input), SiLU, then the new state from the
// extended input's tail. A longer call: per (sequence, step, channel), the
// channel innermost, one output each; then per (sequence, channel) the new
// state, in a kernel of its own (after every output has read the old
// state). The choice is made at run time.

// CHECK-LABEL: func.func @conv
// CHECK: %[[Y:.+]] = memref.alloc(%{{.+}}) : memref<1x?x16xbf16>
// CHECK: %[[S:.+]] = memref.alloc() {jamba.state_over_old} : memref<1x16x3xbf16>
// CHECK: %[[FEW:.+]] = arith.cmpi ule, %{{.+}}, %c8
// CHECK: %[[FEWROWS:.+]] = arith.select %[[FEW]], %{{.+}}, %c0
// CHECK: %[[MANYROWS:.+]] = arith.select %[[FEW]], %c0{{.*}}, %{{.+}}
// CHECK: scf.parallel (%{{.+}}, %{{.+}}) = ({{.+}}) to (%[[FEWROWS]], %{{.+}})
// CHECK:   scf.for
// CHECK:     scf.for {{.+}} iter_args
// CHECK:       arith.cmpi ult
// CHECK:       scf.if %{{.+}} -> (f32)
// CHECK:         arith.extf {{.+}} : bf16 to f32
// CHECK:       } else {
// CHECK:     math.exp
// CHECK:     arith.truncf {{.+}} : f32 to bf16
// CHECK:     memref.store %{{.+}}, %[[Y]]
// CHECK:   scf.for
// CHECK:     memref.store %{{.+}}, %[[S]]
// CHECK: } {jamba.kernel = "causal_conv1d"}
// CHECK: scf.parallel (%{{.+}}, %{{.+}}, %{{.+}}) = ({{.+}}) to (%[[MANYROWS]], %{{.+}}, %{{.+}})
// CHECK-NOT: memref.store %{{.+}}, %[[S]]
// CHECK:   scf.for {{.+}} iter_args
// CHECK:   math.exp
// CHECK:   memref.store %{{.+}}, %[[Y]]
// CHECK: } {jamba.kernel = "causal_conv1d_steps"}
// CHECK: scf.parallel (%{{.+}}, %{{.+}}) = ({{.+}}) to (%[[MANYROWS]], %{{.+}})
// CHECK:   scf.for
// CHECK:     memref.store %{{.+}}, %[[S]]
// CHECK: } {jamba.kernel = "causal_conv1d_state"}
func.func @conv(%x: tensor<1x?x16xbf16>, %w: tensor<16x4xbf16>,
                %s: tensor<1x16x3xbf16>) -> (tensor<1x?x16xbf16>, tensor<1x16x3xbf16>) {
  %y, %st = jamba.causal_conv1d %x, %w state(%s) {silu}
      : (tensor<1x?x16xbf16>, tensor<16x4xbf16>, tensor<1x16x3xbf16>)
      -> (tensor<1x?x16xbf16>, tensor<1x16x3xbf16>)
  return %y, %st : tensor<1x?x16xbf16>, tensor<1x16x3xbf16>
}

// -----

// The router: one iteration per row (leading dims), a max loop, a sum loop,
// then one selection loop per pick (unrolled, k = 2); the second pick
// skips the expert stored by the first; with normalize, both weights are
// divided by their sum.

// CHECK-LABEL: func.func @router
// CHECK: %[[W:.+]] = memref.alloc(%{{.+}}) : memref<?x2xf32>
// CHECK: %[[I:.+]] = memref.alloc(%{{.+}}) : memref<?x2xi32>
// CHECK: scf.parallel (%[[R:.+]]) =
// CHECK:   arith.maximumf
// CHECK:   scf.for {{.+}} -> (f32)
// CHECK:   scf.for {{.+}} -> (f32, index)
// CHECK:     arith.cmpf ogt
// CHECK:   memref.store %{{.+}}, %[[W]][%[[R]], %{{.+}}]
// CHECK:   memref.store %{{.+}}, %[[I]][%[[R]], %{{.+}}]
// CHECK:   scf.for {{.+}} -> (f32, index)
// CHECK:     memref.load %[[I]][%[[R]], %{{.+}}]
// CHECK:     arith.cmpi eq
// CHECK:   arith.divf
// CHECK:   arith.divf
// CHECK:   scf.reduce
func.func @router(%l: tensor<?x4xf32>) -> (tensor<?x2xf32>, tensor<?x2xi32>) {
  %w, %i = jamba.router_topk %l {top_k = 2 : i64, normalize}
      : tensor<?x4xf32> -> tensor<?x2xf32>, tensor<?x2xi32>
  return %w, %i : tensor<?x2xf32>, tensor<?x2xi32>
}

// -----

// Attention: the caches take the new rows through an scf.forall over
// (sequence, kv head, token, channel) whose shared output is the cache (in
// place after bufferization): each iteration reads its position
// cache_len[b] + s and inserts one element there (0 rows past the
// capacity), consecutive iterations consecutive channels. Then split-KV
// attention. The split count is min(32, ceil(capacity / 64)) divided by the
// call's tokens, at least 1; one iteration per (sequence, head, split,
// token) runs the online softmax over its range of keys into a partial row
// and its (maximum, sum) (the token innermost: a warp of a prefill is 32
// queries of one head, reading the same key rows); one per (sequence,
// token, head, channel) combines the splits into the output.

// CHECK-LABEL: func.func @attention
// CHECK-SAME: %[[KC:[^:]+]]: tensor<1x2x?x8xf32>, %[[VC:[^:]+]]: tensor<1x2x?x8xf32>
// CHECK: %[[NK:.+]] = scf.forall (%[[B:[^,]+]], %[[G:[^,]+]], %[[S:[^,]+]], %[[C:[^,]+]]) in ({{.+}}, 8) shared_outs(%[[OUT:.+]] = %[[KC]]) -> (tensor<1x2x?x8xf32>)
// CHECK:   tensor.extract %{{.+}}[%[[B]]] : tensor<1xi64>
// CHECK:   %[[P:.+]] = arith.addi %{{.+}}, %[[S]]
// CHECK:   %[[IN:.+]] = arith.cmpi ult, %[[P]]
// CHECK:   %[[N:.+]] = arith.select %[[IN]]
// CHECK:   %[[AT:.+]] = arith.minui %[[P]]
// CHECK:   %[[COL:.+]] = arith.addi %{{.+}}, %[[C]]
// CHECK:   %[[EL:.+]] = tensor.extract_slice %{{.+}}[%[[B]], %[[S]], %[[COL]]] [1, %[[N]], 1]
// CHECK:   scf.forall.in_parallel
// CHECK:     tensor.parallel_insert_slice %[[EL]] into %[[OUT]][%[[B]], %[[G]], %[[AT]], %[[C]]] [1, 1, %[[N]], 1]
// CHECK: %[[NV:.+]] = scf.forall {{.+}} shared_outs(%{{.+}} = %[[VC]]) -> (tensor<1x2x?x8xf32>)
// CHECK: %[[KB:.+]] = bufferization.to_buffer %[[NK]] read_only
// CHECK: %[[CAP:.+]] = memref.dim %[[KB]], %{{.+}} : memref<1x2x?x8xf32
// CHECK: %[[O:.+]] = memref.alloc(%{{.+}}) : memref<1x?x32xf32>
// CHECK: %[[WANT:.+]] = arith.ceildivui %[[CAP]], %c64
// CHECK: arith.minui %c32{{.*}}, %[[WANT]]
// CHECK: arith.divui
// CHECK: %[[SPLITS:.+]] = arith.maxui %c1{{.*}}, %{{.+}} : index
// CHECK: %[[PART:.+]] = memref.alloc(%{{.+}}, %{{.+}}, %[[SPLITS]]) : memref<?x?x4x?x8xf32>
// CHECK: %[[STATS:.+]] = memref.alloc(%{{.+}}, %{{.+}}, %[[SPLITS]]) : memref<?x?x4x?x2xf32>
// CHECK: scf.parallel (%{{[^,]+}}, %{{[^,]+}}, %{{[^,]+}}, %{{[^,]+}}) = {{.+}} to (%{{.+}}, %c4, %[[SPLITS]], %{{.+}})
// CHECK:   arith.ceildivui %{{.+}}, %[[SPLITS]]
// CHECK:   scf.for {{.+}} -> (f32, f32)
// CHECK:     memref.load %[[KB]]
// CHECK:     arith.maximumf
// CHECK:     math.exp
// CHECK:     memref.store {{.+}}, %[[PART]]
// CHECK:   memref.store {{.+}}, %[[STATS]]
// CHECK:   memref.store {{.+}}, %[[STATS]]
// CHECK: scf.parallel (%{{[^,]+}}, %{{[^,]+}}, %{{[^,]+}}, %{{[^,]+}}) = {{.+}} to (%{{.+}}, %{{.+}}, %c4, %c8{{.*}})
// CHECK:   scf.for {{.+}} to %[[SPLITS]] {{.+}} -> (f32)
// CHECK:     arith.maximumf
// CHECK:   scf.for {{.+}} to %[[SPLITS]] {{.+}} -> (f32, f32)
// CHECK:     math.exp
// CHECK:     memref.load %[[PART]]
// CHECK:   arith.divf
// CHECK:   memref.store {{.+}}, %[[O]]
// CHECK: %[[OT:.+]] = bufferization.to_tensor %[[O]] restrict writable
// CHECK: return %[[OT]], %[[NK]], %[[NV]]
func.func @attention(%q: tensor<1x?x32xf32>, %k: tensor<1x?x16xf32>, %v: tensor<1x?x16xf32>,
                     %kc: tensor<1x2x?x8xf32>, %vc: tensor<1x2x?x8xf32>, %len: tensor<1xi64>)
    -> (tensor<1x?x32xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>) {
  %o, %k2, %v2 = jamba.cached_attention %q, %k, %v, cache(%kc, %vc, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x?x32xf32>, tensor<1x?x16xf32>, tensor<1x?x16xf32>, tensor<1x2x?x8xf32>,
         tensor<1x2x?x8xf32>, tensor<1xi64>)
      -> (tensor<1x?x32xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>)
  return %o, %k2, %v2 : tensor<1x?x32xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>
}

// -----

// The expert GEMM: L lanes per (row, n), L = max(1, min(32, 2048 / rows))
// chosen at run time. One test per call decides whether the rows are read
// as 16-byte vectors: the weight's base pointer 16-byte aligned, its
// offset and leading strides multiples of 16 int8, the input's of 16 f32
// (64 bytes, aligned to 16), and K a multiple of 16. If so each lane loop
// starts at 16 lane and steps by 16 L, loading 16 int8 weights (alignment
// 16) and 16 inputs, widened and accumulated as vector<16xf32>, then
// reduced; otherwise it starts at its lane and steps by L (consecutive
// lanes read consecutive weights), one int8 weight converted per step.
// With L < 32 a second loop nest adds the lanes' partial sums in order and
// applies the scale and the routing weight; with L = 32 (those two nests
// then have no rows) a third nest, with a static 32 lanes innermost, adds
// them by five butterfly shuffles per sum and lane 0 applies the epilogue.
// The lanes' rows are inside their n (rows sharing an expert read weight
// row n together).

// CHECK-LABEL: func.func @expert_gemm
// CHECK-SAME: (%[[X:[^:]+]]: tensor<?x2x32xf32>, %[[Q:[^:]+]]: tensor<4x16x32xi8>
// CHECK-DAG: %[[XB:.+]] = bufferization.to_buffer %[[X]] read_only
// CHECK-DAG: %[[QB:.+]] = bufferization.to_buffer %[[Q]] read_only
// CHECK: arith.muli %c1{{.*}}, %{{.+}} : index
// CHECK: %[[ROWS:.+]] = arith.muli %{{.+}}, %{{.+}} : index
// CHECK: %[[KDIM:.+]] = memref.dim %[[QB]], %c2
// CHECK: %[[Y:.+]] = memref.alloc(%{{.+}}) : memref<?x2x16xf32>
// CHECK: arith.divui %c2048{{.*}}, %{{.+}}
// CHECK: %[[L:.+]] = arith.maxui %c1{{.*}}, %{{.+}} : index
// CHECK: %[[GROUPED:.+]] = arith.cmpi ugt, %[[ROWS]], %c64
// CHECK: %[[LROWS:.+]] = arith.select %[[GROUPED]], %c0{{.*}}, %[[ROWS]] : index
// CHECK: %{{.+}}, %[[QOFF:.+]], %{{.+}}:3, %[[QSTR:.+]]:3 = memref.extract_strided_metadata %[[QB]]
// CHECK: %[[QPTR:.+]] = memref.extract_aligned_pointer_as_index %[[QB]]
// CHECK: arith.remui %[[QPTR]], %c16
// CHECK: arith.remui %[[QOFF]], %c16
// CHECK: arith.remui %[[QSTR]]#0, %c16
// CHECK: arith.remui %[[QSTR]]#1, %c16
// CHECK-NOT: arith.remui %[[QSTR]]#2
// CHECK: %{{.+}}, %[[XOFF:.+]], %{{.+}}:3, %[[XSTR:.+]]:3 = memref.extract_strided_metadata %[[XB]]
// CHECK: %[[XPTR:.+]] = memref.extract_aligned_pointer_as_index %[[XB]]
// CHECK: arith.remui %[[XPTR]], %c16
// CHECK: arith.remui %[[XOFF]], %c4
// CHECK: arith.remui %[[XSTR]]#0, %c4
// CHECK: arith.remui %[[XSTR]]#1, %c4
// CHECK: arith.remui %[[KDIM]], %c16
// CHECK: %[[VEC:.+]] = arith.andi
// CHECK: %[[WARP:.+]] = arith.cmpi eq, %[[L]], %c32
// CHECK: %[[PROWS:.+]] = arith.select %[[WARP]], %c0{{.*}}, %[[LROWS]] : index
// CHECK: %[[WROWS:.+]] = arith.select %[[WARP]], %[[LROWS]], %c0{{.*}} : index
// CHECK: %[[P:.+]] = memref.alloc(%[[PROWS]], %{{.+}}, %[[L]]) : memref<?x?x?xf32>
// Four outputs n per thread (a group): one iteration per (group, row,
// lane); the weight rows 4 g .. 4 g + 3, clamped into [0, N - 1] for reads.
// CHECK: scf.parallel (%[[G:.+]], %[[R:.+]], %[[LANE:.+]]) = {{.+}} to (%{{.+}}, %[[PROWS]], %[[L]])
// CHECK-COUNT-4: arith.minui
// The lane's chunks of 16 int8 at k = 16 lane, 16 (lane + L), ...: the four
// weight rows' chunks loaded together, the inputs' once, widened and
// multiplied into four accumulators.
// CHECK:   scf.if %[[VEC]] -> (f32, f32, f32, f32)
// CHECK:     %[[FIRST:.+]] = arith.muli %[[LANE]], %c16
// CHECK:     %[[STEP:.+]] = arith.muli %[[L]], %c16
// CHECK:     scf.for %[[VK:.+]] = %[[FIRST]] to %[[KDIM]] step %[[STEP]] iter_args({{.+}}) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>)
// CHECK-COUNT-4: vector.load %[[QB]][%{{.+}}, %{{.+}}, %[[VK]]] {alignment = 16 : i64} : {{.+}}, vector<16xi8>
// CHECK:       vector.load %[[XB]][%{{.+}}, %{{.+}}, %[[VK]]] {alignment = 16 : i64} : {{.+}}, vector<16xf32>
// CHECK-COUNT-4: math.fma %{{.+}} : vector<16xf32>
// CHECK-COUNT-4: vector.reduction <add>, %{{.+}} : vector<16xf32> into f32
// CHECK:   else
// CHECK:     scf.for %[[K:.+]] = %[[LANE]] to %[[KDIM]] step %[[L]] iter_args({{.+}}) -> (f32, f32, f32, f32)
// CHECK:       memref.load %[[QB]][%{{.+}}, %{{.+}}, %[[K]]] : memref<4x16x32xi8
// CHECK:       arith.sitofp
// Each output's partial sum stored when n < N.
// CHECK-COUNT-4: memref.store %{{.+}}, %[[P]][%[[R]], %{{.+}}, %[[LANE]]]
// CHECK: } {jamba.kernel = "expert_gemm_lanes"}
// The warps: the same shares, each sum shuffled five times, then lane 0
// stores the outputs n < N, scaled and weighted.
// CHECK: scf.parallel (%{{.+}}, %{{.+}}, %[[WLANE:.+]]) = {{.+}} to (%{{.+}}, %[[WROWS]], %c32{{.*}})
// CHECK:   scf.if %[[VEC]] -> (f32, f32, f32, f32)
// CHECK-COUNT-20: gpu.shuffle  xor
// CHECK:   arith.cmpi eq, %[[WLANE]], %c0
// CHECK-COUNT-4: memref.store %{{.+}}, %[[Y]]
// CHECK: } {jamba.kernel = "expert_gemm_warps"}
// CHECK: scf.parallel (%[[R2:.+]], %[[N2:.+]]) = {{.+}} to (%[[PROWS]], %{{.+}})
// CHECK:   scf.for {{.+}} to %[[L]] {{.+}} -> (f32)
// CHECK:     memref.load %[[P]]
// CHECK:   memref.load %{{.+}} : memref<4x16xf32
// CHECK:   arith.mulf
// CHECK:   memref.store %{{.+}}, %[[Y]]
// The grouped form, for more than 64 rows (else its nests have no
// iterations): each expert's rows counted, their offsets and tile offsets
// (tiles of 8 rows), the rows sorted by expert, then one iteration per
// (tile, n) summing 8 rows against each weight it reads once. The count
// and the sort are a warp per expert over the rows 32 at a time: each lane
// counts its rows, the lanes' counts added by five butterfly shuffles and
// stored by lane 0; the sort places a chunk's matching rows by an
// inclusive prefix sum of the lanes' flags (five index shuffles, lane l
// adding lane l - 2^i's sum if l >= 2^i) and moves on by the chunk's total
// (lane 31's sum).
// CHECK: %[[GE:.+]] = arith.select %[[GROUPED]], %{{.+}}, %c0{{.*}} : index
// CHECK: %[[COUNTS:.+]] = memref.alloc(%[[GE]]) : memref<?xindex>
// CHECK: %[[STARTS:.+]] = memref.alloc(%{{.+}}) : memref<?xindex>
// CHECK: %[[TILES:.+]] = memref.alloc(%{{.+}}) : memref<?xindex>
// CHECK: %[[SORTED:.+]] = memref.alloc(%{{.+}}) : memref<?xindex>
// CHECK: %[[CHUNKS:.+]] = arith.ceildivui %{{.+}}, %c32
// CHECK: scf.parallel (%[[E:.+]], %[[CL:.+]]) = {{.+}} to (%[[GE]], %c32{{.*}})
// CHECK:   %[[MINE:.+]] = scf.for %{{.+}} = %c0{{.*}} to %[[CHUNKS]] step %c1{{.*}} iter_args(%{{.+}} = %c0_i32) -> (i32)
// CHECK:     arith.cmpi eq, %{{.+}}, %[[E]] : index
// CHECK:   gpu.shuffle  xor %[[MINE]], %c16_i32
// CHECK:   gpu.shuffle  xor %{{.+}}, %c8_i32
// CHECK:   gpu.shuffle  xor %{{.+}}, %c4_i32
// CHECK:   gpu.shuffle  xor %{{.+}}, %c2_i32
// CHECK:   gpu.shuffle  xor %{{.+}}, %c1_i32
// CHECK:   arith.cmpi eq, %[[CL]], %c0
// CHECK:     memref.store %{{.+}}, %[[COUNTS]][%[[E]]] {jamba.kernel = "expert_gemm_count"}
// CHECK: } {jamba.kernel = "expert_gemm_count"}
// CHECK: scf.parallel
// CHECK:   arith.divui %{{.+}}, %c8
// CHECK: } {jamba.kernel = "expert_gemm_offsets"}
// CHECK: scf.parallel (%[[E2:.+]], %[[SL:.+]]) = {{.+}} to (%[[GE]], %c32{{.*}})
// CHECK:   %[[FIRST:.+]] = memref.load %[[STARTS]][%[[E2]]]
// CHECK:   scf.for %{{.+}} = %c0{{.*}} to %[[CHUNKS]] step %c1{{.*}} iter_args(%[[AT:.+]] = %[[FIRST]]) -> (index)
// CHECK:     arith.cmpi eq, %{{.+}}, %[[E2]] : index
// CHECK:     arith.cmpi uge, %[[SL]], %c1
// CHECK:     gpu.shuffle  idx
// CHECK:     arith.cmpi uge, %[[SL]], %c2
// CHECK:     gpu.shuffle  idx
// CHECK:     arith.cmpi uge, %[[SL]], %c4
// CHECK:     gpu.shuffle  idx
// CHECK:     arith.cmpi uge, %[[SL]], %c8
// CHECK:     gpu.shuffle  idx
// CHECK:     arith.cmpi uge, %[[SL]], %c16
// CHECK:     gpu.shuffle  idx
// CHECK:     %[[LAST:.+]] = arith.index_cast %c31 : index to i32
// CHECK:     gpu.shuffle  idx %{{.+}}, %[[LAST]]
// CHECK:     scf.if
// CHECK:       memref.store %{{.+}}, %[[SORTED]]
// CHECK: } {jamba.kernel = "expert_gemm_sort"}
// CHECK: scf.parallel (%[[T:.+]], %[[GN:.+]]) =
// CHECK:   memref.load %[[TILES]]
// CHECK:   scf.for %{{.+}} = %c0{{.*}} to %[[KDIM]] step %c1{{.*}} iter_args({{.+}}) -> (f32, f32, f32, f32, f32, f32, f32, f32)
// CHECK-COUNT-8: memref.store %{{.+}}, %[[Y]]
// CHECK: } {jamba.kernel = "expert_gemm_grouped"}
func.func @expert_gemm(%x: tensor<?x2x32xf32>, %q: tensor<4x16x32xi8>, %s: tensor<4x16xf32>,
                       %idx: tensor<?x2xi32>, %rw: tensor<?x2xf32>) -> tensor<?x2x16xf32> {
  %y = jamba.expert_gemm %x, %q scale(%s) indices(%idx) route_weights(%rw)
      : (tensor<?x2x32xf32>, tensor<4x16x32xi8>, tensor<4x16xf32>, tensor<?x2xi32>,
         tensor<?x2xf32>) -> tensor<?x2x16xf32>
  return %y : tensor<?x2x16xf32>
}

// -----

// RMSNorm of a row wider than 64: one warp per row (the nest's innermost
// 32 iterations are its lanes), one kernel. Aligned buffers and a width that
// is a multiple of 4: lane l sums the squares of vectors l, l + 32, ... of 4
// elements (four loads ahead, then the rest one by one); otherwise of its
// elements. Five butterfly shuffles give every lane the row's sum, so
// 1/sqrt(mean + eps); each lane writes its share, w * cvt(x * inv), with
// vector arithmetic on its vectors.

// CHECK-LABEL: func.func @rms_norm_wide
// CHECK: %[[Y:.+]] = memref.alloc(%{{.+}}) : memref<?x512xf32>
// CHECK-NOT: memref.alloc
// CHECK: scf.parallel (%{{.+}}, %{{.+}}) = (%{{.+}}, %{{.+}}) to (%{{.+}}, %c32)
// CHECK:   scf.if %[[VEC:.+]] -> (f32) {
// CHECK:     scf.for %{{.+}} = %c0{{.*}} to %{{.+}} step %c4{{.*}} iter_args({{.+}}) -> (vector<4xf32>)
// CHECK-COUNT-4: vector.load {{.+}} {alignment = 16 : i64} : memref<?x512xf32, {{.+}}>, vector<4xf32>
// CHECK-COUNT-4: math.fma {{.+}} : vector<4xf32>
// CHECK:     vector.reduction <add>
// CHECK:   } else {
// CHECK:     memref.load
// CHECK:   }
// CHECK-COUNT-5: gpu.shuffle  xor
// CHECK:   math.sqrt
// CHECK:   scf.if %[[VEC]] {
// CHECK:     vector.load
// CHECK:     arith.mulf {{.+}} : vector<4xf32>
// CHECK:     memref.store %{{.+}}, %[[Y]]
// CHECK: } {jamba.kernel = "rms_norm_warp"}
func.func @rms_norm_wide(%x: tensor<?x512xf32>, %w: tensor<512xf32>) -> tensor<?x512xf32> {
  %y = jamba.rms_norm %x, %w {epsilon = 1.0e-06 : f64} : tensor<?x512xf32>, tensor<512xf32>
  return %y : tensor<?x512xf32>
}

// -----

// A dynamic width takes the warp form too (vectors where the width turns
// out to be a multiple of 4).

// CHECK-LABEL: func.func @rms_norm_dynamic_width
// CHECK: arith.remui %{{.+}}, %c4
// CHECK: scf.parallel (%{{.+}}, %{{.+}}) = (%{{.+}}, %{{.+}}) to (%{{.+}}, %c32)
// CHECK: gpu.shuffle
// CHECK: } {jamba.kernel = "rms_norm_warp"}
// CHECK-NOT: scf.parallel
func.func @rms_norm_dynamic_width(%x: tensor<?x?xf32>, %w: tensor<?xf32>) -> tensor<?x?xf32> {
  %y = jamba.rms_norm %x, %w {epsilon = 1.0e-06 : f64} : tensor<?x?xf32>, tensor<?xf32>
  return %y : tensor<?x?xf32>
}

// -----

// A row of at most 64 (the Mamba B and C norms): one iteration per row sums
// its squares in order, takes 1/sqrt(mean + eps) and writes its elements,
// all in one nest (one kernel). bf16 rows: the normalised value is rounded
// to bf16 before the weight multiplies it.

// CHECK-LABEL: func.func @rms_norm_narrow
// CHECK: %[[Y:.+]] = memref.alloc(%{{.+}}) : memref<?x16xbf16>
// CHECK-NOT: memref.alloc
// CHECK: scf.parallel (%[[R:.+]]) =
// CHECK:   %[[SUM:.+]] = scf.for %{{.+}} = %c0{{.*}} to %c16{{.*}} step %c1{{.*}} iter_args({{.+}}) -> (f32)
// CHECK:   %[[MEAN:.+]] = arith.divf %[[SUM]]
// CHECK:   math.sqrt
// CHECK:   %[[INV:.+]] = arith.divf %cst{{.*}}, %{{.+}} : f32
// CHECK:   scf.for %[[K:.+]] = %c0{{.*}} to %c16{{.*}} step %c1
// CHECK:     arith.mulf %{{.+}}, %[[INV]] : f32
// CHECK:     arith.truncf %{{.+}} : f32 to bf16
// CHECK:     memref.store %{{.+}}, %[[Y]][%{{.+}}, %[[K]]]
// CHECK-NOT: scf.parallel
func.func @rms_norm_narrow(%x: tensor<?x16xbf16>, %w: tensor<16xbf16>) -> tensor<?x16xbf16> {
  %y = jamba.rms_norm %x, %w {epsilon = 1.0e-06 : f64} : tensor<?x16xbf16>, tensor<16xbf16>
  return %y : tensor<?x16xbf16>
}

// A norm read only by conversions to bf16 (jamba-gpu-library-gemms' copies
// of cuBLAS inputs) and by tensor.dim writes bf16 itself: the conversions
// are gone and the dims read the new result.

// CHECK-LABEL: func.func @rms_norm_into_bf16
// CHECK: %[[Y:.+]] = memref.alloc(%{{.+}}) : memref<?x1x64xbf16>
// CHECK: scf.parallel
// CHECK:   arith.truncf %{{.+}} : f32 to bf16
// CHECK:   memref.store %{{.+}}, %[[Y]]
// CHECK: %[[T:.+]] = bufferization.to_tensor %[[Y]]
// CHECK-NOT: linalg.generic
// CHECK: tensor.dim %[[T]]
// CHECK: return %[[T]], %[[T]], %{{.+}} : tensor<?x1x64xbf16>, tensor<?x1x64xbf16>, index
func.func @rms_norm_into_bf16(%x: tensor<?x1x64xf32>, %w: tensor<64xf32>)
    -> (tensor<?x1x64xbf16>, tensor<?x1x64xbf16>, index) {
  %y = jamba.rms_norm %x, %w {epsilon = 1.0e-06 : f64} : tensor<?x1x64xf32>, tensor<64xf32>
  %c0 = arith.constant 0 : index
  %d = tensor.dim %y, %c0 : tensor<?x1x64xf32>
  %e = tensor.empty(%d) : tensor<?x1x64xbf16>
  %b = linalg.generic {indexing_maps = [affine_map<(a, b, c) -> (a, b, c)>, affine_map<(a, b, c) -> (a, b, c)>],
                       iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%y : tensor<?x1x64xf32>) outs(%e : tensor<?x1x64xbf16>) {
  ^bb0(%in: f32, %out: bf16):
    %t = arith.truncf %in : f32 to bf16
    linalg.yield %t : bf16
  } -> tensor<?x1x64xbf16>
  %b2 = linalg.generic {indexing_maps = [affine_map<(a, b, c) -> (a, b, c)>, affine_map<(a, b, c) -> (a, b, c)>],
                        iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%y : tensor<?x1x64xf32>) outs(%e : tensor<?x1x64xbf16>) {
  ^bb0(%in: f32, %out: bf16):
    %t = arith.truncf %in : f32 to bf16
    linalg.yield %t : bf16
  } -> tensor<?x1x64xbf16>
  return %b, %b2, %d : tensor<?x1x64xbf16>, tensor<?x1x64xbf16>, index
}

// -----

// A norm with another reader too (here the function's result) writes both:
// f32 for that reader, bf16 for the conversion, which is gone.

// CHECK-LABEL: func.func @rms_norm_also_read_in_f32
// CHECK: %[[F:.+]] = memref.alloc(%{{.+}}) : memref<?x64xf32>
// CHECK: %[[H:.+]] = memref.alloc(%{{.+}}) : memref<?x64xbf16>
// CHECK: scf.parallel
// CHECK:   memref.store %[[V:.+]], %[[F]]
// CHECK:   %[[T:.+]] = arith.truncf %[[V]] : f32 to bf16
// CHECK:   memref.store %[[T]], %[[H]]
// CHECK: %[[FT:.+]] = bufferization.to_tensor %[[F]]
// CHECK: %[[HT:.+]] = bufferization.to_tensor %[[H]]
// CHECK-NOT: linalg.generic
// CHECK: return %[[FT]], %[[HT]]
func.func @rms_norm_also_read_in_f32(%x: tensor<?x64xf32>, %w: tensor<64xf32>)
    -> (tensor<?x64xf32>, tensor<?x64xbf16>) {
  %y = jamba.rms_norm %x, %w {epsilon = 1.0e-06 : f64} : tensor<?x64xf32>, tensor<64xf32>
  %c0 = arith.constant 0 : index
  %d = tensor.dim %y, %c0 : tensor<?x64xf32>
  %e = tensor.empty(%d) : tensor<?x64xbf16>
  %b = linalg.generic {indexing_maps = [affine_map<(a, c) -> (a, c)>, affine_map<(a, c) -> (a, c)>],
                       iterator_types = ["parallel", "parallel"]}
      ins(%y : tensor<?x64xf32>) outs(%e : tensor<?x64xbf16>) {
  ^bb0(%in: f32, %out: bf16):
    %t = arith.truncf %in : f32 to bf16
    linalg.yield %t : bf16
  } -> tensor<?x64xbf16>
  return %y, %b : tensor<?x64xf32>, tensor<?x64xbf16>
}

// A conversion with its own rounding mode is not the kernels' store: it
// stays, and the norm writes f32 only.

// CHECK-LABEL: func.func @rms_norm_read_with_other_rounding
// CHECK: memref.alloc(%{{.+}}) : memref<?x64xf32>
// CHECK-NOT: memref<?x64xbf16>
// CHECK: linalg.generic
// CHECK:   arith.truncf %{{.+}} to_nearest_away : f32 to bf16
func.func @rms_norm_read_with_other_rounding(%x: tensor<?x64xf32>, %w: tensor<64xf32>)
    -> tensor<?x64xbf16> {
  %y = jamba.rms_norm %x, %w {epsilon = 1.0e-06 : f64} : tensor<?x64xf32>, tensor<64xf32>
  %c0 = arith.constant 0 : index
  %d = tensor.dim %y, %c0 : tensor<?x64xf32>
  %e = tensor.empty(%d) : tensor<?x64xbf16>
  %b = linalg.generic {indexing_maps = [affine_map<(a, c) -> (a, c)>, affine_map<(a, c) -> (a, c)>],
                       iterator_types = ["parallel", "parallel"]}
      ins(%y : tensor<?x64xf32>) outs(%e : tensor<?x64xbf16>) {
  ^bb0(%in: f32, %out: bf16):
    %t = arith.truncf %in to_nearest_away : f32 to bf16
    linalg.yield %t : bf16
  } -> tensor<?x64xbf16>
  return %b : tensor<?x64xbf16>
}

// Attention's output read only by a conversion (o_proj's bf16 input): the
// combine writes bf16, and the conversion is gone.

// CHECK-LABEL: func.func @attention_into_bf16
// CHECK: %[[O:.+]] = memref.alloc(%{{.+}}) : memref<1x?x32xbf16>
// CHECK-NOT: memref.alloc(%{{.+}}) : memref<1x?x32xf32>
// CHECK: arith.truncf %{{.+}} : f32 to bf16
// CHECK: memref.store %{{.+}}, %[[O]][
// CHECK: } {jamba.kernel = "attention_combine"}
// CHECK: %[[OT:.+]] = bufferization.to_tensor %[[O]]
// CHECK-NOT: linalg.generic
// CHECK: return %[[OT]]
func.func @attention_into_bf16(%q: tensor<1x?x32xf32>, %k: tensor<1x?x16xf32>, %v: tensor<1x?x16xf32>,
                               %kc: tensor<1x2x?x8xf32>, %vc: tensor<1x2x?x8xf32>, %len: tensor<1xi64>)
    -> (tensor<1x?x32xbf16>, tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>) {
  %o, %k2, %v2 = jamba.cached_attention %q, %k, %v, cache(%kc, %vc, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x?x32xf32>, tensor<1x?x16xf32>, tensor<1x?x16xf32>, tensor<1x2x?x8xf32>,
         tensor<1x2x?x8xf32>, tensor<1xi64>)
      -> (tensor<1x?x32xf32>, tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>)
  %c1 = arith.constant 1 : index
  %d = tensor.dim %o, %c1 : tensor<1x?x32xf32>
  %e = tensor.empty(%d) : tensor<1x?x32xbf16>
  %ob = linalg.generic {indexing_maps = [affine_map<(a, b, c) -> (a, b, c)>, affine_map<(a, b, c) -> (a, b, c)>],
                        iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%o : tensor<1x?x32xf32>) outs(%e : tensor<1x?x32xbf16>) {
  ^bb0(%in: f32, %out: bf16):
    %t = arith.truncf %in : f32 to bf16
    linalg.yield %t : bf16
  } -> tensor<1x?x32xbf16>
  return %ob, %k2, %v2 : tensor<1x?x32xbf16>, tensor<1x2x?x8xf32>, tensor<1x2x?x8xf32>
}

// The scan and the conv write a bf16 copy of y for its conversion (a cuBLAS
// GEMM's input); the scan's y has no other reader (no f32 buffer), the
// conv's is the scan's input too (both).

// CHECK-LABEL: func.func @scan_and_conv_into_bf16
// CHECK: %[[CF:.+]] = memref.alloc(%{{.+}}) : memref<?x?x4xf32>
// CHECK: %[[CH:.+]] = memref.alloc(%{{.+}}) : memref<?x?x4xbf16>
// CHECK: scf.parallel
// CHECK:   memref.store %[[V:.+]], %[[CF]]
// CHECK:   %[[T:.+]] = arith.truncf %[[V]] : f32 to bf16
// CHECK:   memref.store %[[T]], %[[CH]]
// CHECK: } {jamba.kernel = "causal_conv1d"}
// CHECK: %[[SH:.+]] = memref.alloc(%{{.+}}) : memref<?x?x4xbf16>
// CHECK-NOT: memref<?x?x4xf32>
// CHECK: } {jamba.kernel = "selective_scan"}
// CHECK-NOT: linalg.generic
// CHECK: return
func.func @scan_and_conv_into_bf16(%x: tensor<?x?x4xf32>, %cw: tensor<4x3xf32>, %cs: tensor<?x4x2xf32>,
    %delta: tensor<?x?x4xf32>, %A: tensor<4x2xf32>, %B: tensor<?x?x2xf32>, %C: tensor<?x?x2xf32>)
    -> (tensor<?x?x4xbf16>, tensor<?x?x4xbf16>) {
  %u, %s = jamba.causal_conv1d %x, %cw state(%cs) {silu}
      : (tensor<?x?x4xf32>, tensor<4x3xf32>, tensor<?x4x2xf32>) -> (tensor<?x?x4xf32>, tensor<?x4x2xf32>)
  %y, %h = jamba.selective_scan %u, %delta, %A, %B, %C
      : (tensor<?x?x4xf32>, tensor<?x?x4xf32>, tensor<4x2xf32>, tensor<?x?x2xf32>, tensor<?x?x2xf32>)
      -> (tensor<?x?x4xf32>, tensor<?x4x2xf32>)
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %d0 = tensor.dim %u, %c0 : tensor<?x?x4xf32>
  %d1 = tensor.dim %u, %c1 : tensor<?x?x4xf32>
  %e = tensor.empty(%d0, %d1) : tensor<?x?x4xbf16>
  %ub = linalg.generic {indexing_maps = [affine_map<(a, b, c) -> (a, b, c)>, affine_map<(a, b, c) -> (a, b, c)>],
                        iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%u : tensor<?x?x4xf32>) outs(%e : tensor<?x?x4xbf16>) {
  ^bb0(%in: f32, %out: bf16):
    %t = arith.truncf %in : f32 to bf16
    linalg.yield %t : bf16
  } -> tensor<?x?x4xbf16>
  %yb = linalg.generic {indexing_maps = [affine_map<(a, b, c) -> (a, b, c)>, affine_map<(a, b, c) -> (a, b, c)>],
                        iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%y : tensor<?x?x4xf32>) outs(%e : tensor<?x?x4xbf16>) {
  ^bb0(%in: f32, %out: bf16):
    %t = arith.truncf %in : f32 to bf16
    linalg.yield %t : bf16
  } -> tensor<?x?x4xbf16>
  return %ub, %yb : tensor<?x?x4xbf16>, tensor<?x?x4xbf16>
}

// A = -exp(A_log) read only by the scan is evaluated where the scan reads
// A (no tensor op left); read by something else too, it stays a tensor.

// CHECK-LABEL: func.func @scan_of_computed_a
// CHECK-NOT: math.exp %{{.+}} : tensor
// CHECK: %[[L:.+]] = bufferization.to_buffer %arg2 read_only
// CHECK: } {jamba.kernel = "selective_scan_chunks"}
// CHECK: } {jamba.kernel = "selective_scan_carry"}
// CHECK: scf.parallel
// CHECK:   %[[W:.+]] = memref.load %[[L]]
// CHECK:   %[[X:.+]] = arith.extf %[[W]] : bf16 to f32
// CHECK:   %[[E:.+]] = math.exp %[[X]] : f32
// CHECK:   arith.negf %[[E]] : f32
// CHECK: } {jamba.kernel = "selective_scan"}
// CHECK-LABEL: func.func @scan_of_shared_a
// CHECK: %[[A:.+]] = arith.negf %{{.+}} : tensor<4x2xf32>
// CHECK: bufferization.to_buffer %[[A]] read_only
// CHECK: return {{.*}}%[[A]]
func.func @scan_of_computed_a(%u: tensor<1x?x4xf32>, %delta: tensor<1x?x4xf32>, %alog: tensor<4x2xbf16>,
                              %B: tensor<1x?x2xf32>, %C: tensor<1x?x2xf32>)
    -> (tensor<1x?x4xf32>, tensor<1x4x2xf32>) {
  %w = arith.extf %alog : tensor<4x2xbf16> to tensor<4x2xf32>
  %e = math.exp %w : tensor<4x2xf32>
  %A = arith.negf %e : tensor<4x2xf32>
  %y, %h = jamba.selective_scan %u, %delta, %A, %B, %C
      : (tensor<1x?x4xf32>, tensor<1x?x4xf32>, tensor<4x2xf32>, tensor<1x?x2xf32>, tensor<1x?x2xf32>)
      -> (tensor<1x?x4xf32>, tensor<1x4x2xf32>)
  return %y, %h : tensor<1x?x4xf32>, tensor<1x4x2xf32>
}
func.func @scan_of_shared_a(%u: tensor<1x?x4xf32>, %delta: tensor<1x?x4xf32>, %alog: tensor<4x2xf32>,
                            %B: tensor<1x?x2xf32>, %C: tensor<1x?x2xf32>)
    -> (tensor<1x?x4xf32>, tensor<4x2xf32>) {
  %e = math.exp %alog : tensor<4x2xf32>
  %A = arith.negf %e : tensor<4x2xf32>
  %y, %h = jamba.selective_scan %u, %delta, %A, %B, %C
      : (tensor<1x?x4xf32>, tensor<1x?x4xf32>, tensor<4x2xf32>, tensor<1x?x2xf32>, tensor<1x?x2xf32>)
      -> (tensor<1x?x4xf32>, tensor<1x4x2xf32>)
  return %y, %A : tensor<1x?x4xf32>, tensor<4x2xf32>
}

// A norm of a residual add computes the add where it reads x for its
// squares and writes x there; the add's later readers (the next residual
// add, here returned) take that x, and the add is gone. Narrow: the row's
// thread; wide: the lane's share of the row.

// CHECK-LABEL: func.func @rms_norm_of_residual_add
// CHECK-SAME: (%[[A:[^:]+]]: tensor<?x64xf32>, %[[R:[^:]+]]: tensor<?x64xf32>
// CHECK-NOT: arith.addf %{{.+}} : tensor
// CHECK-DAG: %[[AB:.+]] = bufferization.to_buffer %[[A]]
// CHECK-DAG: %[[RB:.+]] = bufferization.to_buffer %[[R]]
// CHECK: %[[Y:.+]] = memref.alloc(%{{.+}}) : memref<?x64xf32>
// CHECK-NEXT: %[[X:.+]] = memref.alloc(%{{.+}}) : memref<?x64xf32>
// CHECK: scf.parallel
// CHECK:   scf.for
// CHECK:     %[[AV:.+]] = memref.load %[[AB]][
// CHECK:     %[[RV:.+]] = memref.load %[[RB]][
// CHECK:     %[[S:.+]] = arith.addf %[[AV]], %[[RV]] : f32
// CHECK:     memref.store %[[S]], %[[X]][
// CHECK:     arith.mulf %[[S]], %[[S]]
// CHECK:   scf.for
// CHECK:     memref.load %[[X]][
// CHECK:     memref.store %{{.+}}, %[[Y]][
// CHECK: %[[STREAM:.+]] = bufferization.to_tensor %[[X]] 
// CHECK: %[[NEXT:.+]] = arith.addf %[[STREAM]], %{{.+}} : tensor<?x64xf32>
// CHECK: return %{{.+}}, %[[NEXT]]
func.func @rms_norm_of_residual_add(%a: tensor<?x64xf32>, %r: tensor<?x64xf32>, %w: tensor<64xf32>,
                                    %u: tensor<?x64xf32>) -> (tensor<?x64xf32>, tensor<?x64xf32>) {
  %x = arith.addf %a, %r : tensor<?x64xf32>
  %y = jamba.rms_norm %x, %w {epsilon = 1.0e-06 : f64} : tensor<?x64xf32>, tensor<64xf32>
  %z = arith.addf %x, %u : tensor<?x64xf32>
  return %y, %z : tensor<?x64xf32>, tensor<?x64xf32>
}

// CHECK-LABEL: func.func @rms_norm_wide_of_residual_add
// CHECK-NOT: arith.addf %{{.+}} : tensor
// CHECK: %[[Y:.+]] = memref.alloc(%{{.+}}) : memref<?x512xf32>
// CHECK-NEXT: %[[X:.+]] = memref.alloc(%{{.+}}) : memref<?x512xf32>
// CHECK: scf.parallel
// CHECK:   scf.for
// CHECK:     %[[V:.+]] = arith.addf %{{.+}}, %{{.+}} : vector<4xf32>
// CHECK:     vector.store %[[V]], %[[X]][
// CHECK:   } else {
// CHECK:     %[[S:.+]] = arith.addf %{{.+}}, %{{.+}} : f32
// CHECK:     memref.store %[[S]], %[[X]][
// CHECK:   gpu.shuffle
// CHECK:   vector.load %[[X]][
// CHECK:   memref.store %{{.+}}, %[[Y]][
// CHECK:   memref.load %[[X]][
// CHECK:   memref.store %{{.+}}, %[[Y]][
// CHECK: } {jamba.kernel = "rms_norm_warp"}
// CHECK: %[[STREAM:.+]] = bufferization.to_tensor %[[X]] 
// CHECK: return %{{.+}}, %[[STREAM]]
func.func @rms_norm_wide_of_residual_add(%a: tensor<?x512xf32>, %r: tensor<?x512xf32>, %w: tensor<512xf32>)
    -> (tensor<?x512xf32>, tensor<?x512xf32>) {
  %x = arith.addf %a, %r : tensor<?x512xf32>
  %y = jamba.rms_norm %x, %w {epsilon = 1.0e-06 : f64} : tensor<?x512xf32>, tensor<512xf32>
  return %y, %x : tensor<?x512xf32>, tensor<?x512xf32>
}

// An add read before the norm too stays an add (its reader could not take
// an x written later); the norm reads it.

// CHECK-LABEL: func.func @rms_norm_of_add_read_before
// CHECK: %[[X:.+]] = arith.addf %{{.+}}, %{{.+}} : tensor<?x64xf32>
// CHECK: %[[EARLY:.+]] = arith.mulf %[[X]], %[[X]] : tensor<?x64xf32>
// CHECK: bufferization.to_buffer %[[X]]
// CHECK: return %{{.+}}, %[[EARLY]]
func.func @rms_norm_of_add_read_before(%a: tensor<?x64xf32>, %r: tensor<?x64xf32>, %w: tensor<64xf32>)
    -> (tensor<?x64xf32>, tensor<?x64xf32>) {
  %x = arith.addf %a, %r : tensor<?x64xf32>
  %early = arith.mulf %x, %x : tensor<?x64xf32>
  %y = jamba.rms_norm %x, %w {epsilon = 1.0e-06 : f64} : tensor<?x64xf32>, tensor<64xf32>
  return %y, %early : tensor<?x64xf32>, tensor<?x64xf32>
}

// -----

// f64 is left for convert-jamba-to-linalg.

// CHECK-LABEL: func.func @f64_untouched
// CHECK: jamba.router_topk
func.func @f64_untouched(%l: tensor<3x4xf64>) -> (tensor<3x2xf32>, tensor<3x2xi32>) {
  %w, %i = jamba.router_topk %l {top_k = 2 : i64}
      : tensor<3x4xf64> -> tensor<3x2xf32>, tensor<3x2xi32>
  return %w, %i : tensor<3x2xf32>, tensor<3x2xi32>
}


// -----

// The greedy ids: a warp per (row, chunk of 1024 logits), lane l reading the
// chunk's vectors l, l + 32, ... (16-byte loads where the rows are aligned
// and their width a multiple of 4), five butterfly rounds of two shuffles
// (value and id), lane 0 writing the chunk's candidate; then a warp per row
// over its chunks' candidates, lane 0 writing the id (-1 where the best
// value is -inf). 2050 logits: 3 chunks, no vectors (the width is not a
// multiple of 4).

// CHECK-LABEL: func.func @argmax
// CHECK: %[[IDS:.+]] = memref.alloc(%{{.+}}) : memref<?x1xi32>
// CHECK: %[[PV:.+]] = memref.alloc(%{{.+}}) : memref<?x3xf32>
// CHECK: %[[PI:.+]] = memref.alloc(%{{.+}}) : memref<?x3xi32>
// CHECK: scf.parallel (%[[ROW:.+]], %[[CHUNK:.+]], %[[LANE:.+]]) = (%{{.+}}, %{{.+}}, %{{.+}}) to (%{{.+}}, %c3, %c32)
// CHECK:   scf.if %false
// CHECK:     vector.load
// CHECK:   } else {
// CHECK:     memref.load
// CHECK:     arith.cmpf uno
// CHECK-COUNT-10: gpu.shuffle  xor
// CHECK:   arith.cmpi eq, %[[LANE]], %c0
// CHECK:   scf.if
// CHECK:     memref.store %{{.+}}, %[[PV]][%[[ROW]], %[[CHUNK]]]
// CHECK:     memref.store %{{.+}}, %[[PI]][%[[ROW]], %[[CHUNK]]]
// CHECK: } {jamba.kernel = "argmax_chunks"}
// CHECK: scf.parallel (%[[R2:.+]], %[[L2:.+]]) = (%{{.+}}, %{{.+}}) to (%{{.+}}, %c32)
// CHECK:   scf.for %[[C:.+]] = %[[L2]] to %c3 step %c32
// CHECK:     memref.load %[[PV]][%[[R2]], %[[C]]]
// CHECK:     memref.load %[[PI]][%[[R2]], %[[C]]]
// CHECK-COUNT-10: gpu.shuffle  xor
// CHECK:   scf.if
// CHECK:     %[[NONE:.+]] = arith.cmpf oeq, %{{.+}}, %cst
// CHECK:     %[[ID:.+]] = arith.select %[[NONE]], %c-1_i32{{.*}}, %{{.+}} : i32
// CHECK:     memref.store %[[ID]], %[[IDS]][
// CHECK: } {jamba.kernel = "argmax_rows"}
// CHECK-NOT: scf.parallel
func.func @argmax(%l: tensor<?x1x2050xf32>) -> tensor<?x1xi32> {
  %i = jamba.argmax %l : tensor<?x1x2050xf32> -> tensor<?x1xi32>
  return %i : tensor<?x1xi32>
}

// -----

// A width that is a multiple of 4 reads vectors where the logits are
// aligned for them (a test made once per call): one vector.load per 4
// logits, kLoadsInFlight (4) ahead.

// CHECK-LABEL: func.func @argmax_vectors
// CHECK: memref.extract_strided_metadata
// CHECK: scf.parallel
// CHECK:   scf.if %{{.+}} -> (f32, i32) {
// CHECK-COUNT-4: vector.load %{{.+}} {alignment = 8 : i64} : memref<?x128xbf16, strided<[?, 1], offset: ?>>, vector<4xbf16>
// CHECK: } {jamba.kernel = "argmax_chunks"}
func.func @argmax_vectors(%l: tensor<?x128xbf16>) -> tensor<?xi32> {
  %i = jamba.argmax %l : tensor<?x128xbf16> -> tensor<?xi32>
  return %i : tensor<?xi32>
}

// RUN: jamba-opt %s -jamba-cpu-microkernels -canonicalize -cse -split-input-file | FileCheck %s
// RUN: not jamba-opt %s -jamba-cpu-microkernels=lanes=0 -split-input-file 2>&1 | FileCheck %s --check-prefix=BAD
// RUN: not jamba-opt %s -jamba-cpu-microkernels=lanes=4611686018427387904 -split-input-file 2>&1 | FileCheck %s --check-prefix=HUGE
// RUN: not jamba-opt %s -jamba-cpu-microkernels=prefetch-rows=-1 -split-input-file 2>&1 | FileCheck %s --check-prefix=PREFETCH
// RUN: not jamba-opt %s -jamba-cpu-microkernels=attention-split-keys=-1 -split-input-file 2>&1 | FileCheck %s --check-prefix=BADSPLIT
// RUN: jamba-opt %s -jamba-cpu-microkernels=attention-split-keys=0 -canonicalize -cse -split-input-file | FileCheck %s --check-prefix=NOSPLIT

// BAD: error: jamba-cpu-microkernels: lanes must be in [1, 64], panel-bytes in [1, 1099511627776] and prefetch-rows in [0, 1024] (got 0, 
// A lane count whose tile arithmetic overflowed to 0 crashed the pass.
// HUGE: error: jamba-cpu-microkernels: lanes must be in [1, 64]{{.*}}(got 4611686018427387904,
// PREFETCH: error: jamba-cpu-microkernels: lanes must be in [1, 64]{{.*}} and -1)
// BADSPLIT: error: jamba-cpu-microkernels: attention-split-keys must be in [0, 1099511627776], got -1

// f32 linear, dynamic rows: 96 weight rows in 8 panels of 12 (at least 8
// panels), pairs of input rows against 4 weight rows with 8 accumulators of
// 8 lanes, a single weight row for the panel remainder, then the last odd
// input row (GEMV) with 4 weight rows of 16 lanes.

// CHECK-LABEL: func.func @linear_f32
// CHECK-SAME:    (%[[X:.+]]: tensor<?x64xf32>, %[[W:.+]]: tensor<96x64xf32>)
// CHECK-DAG:     %[[XB:.+]] = bufferization.to_buffer %[[X]] read_only {jamba.read_point = {{[0-9]+}} : i64} : tensor<?x64xf32> to memref<?x64xf32, strided<[?, 1], offset: ?>>
// CHECK-DAG:     %[[WB:.+]] = bufferization.to_buffer %[[W]] read_only {jamba.read_point = {{[0-9]+}} : i64} : tensor<96x64xf32> to memref<96x64xf32, strided<[?, 1], offset: ?>>
// CHECK:         %[[OUT:.+]] = memref.alloc(%{{.+}}) : memref<?x96xf32>
// CHECK:         scf.parallel (%[[P:.+]]) = (%c0) to (%c8) step (%c1) {
// CHECK:           %[[N0:.+]] = arith.muli %[[P]], %c12
// CHECK:           scf.for %[[M:.+]] = %c0 to %{{.+}} step %c2 {
// CHECK:             scf.for %[[N:.+]] = %[[N0]] to %{{.+}} step %c4 {
// CHECK:               %{{.+}}:8 = scf.for %[[K:.+]] = %c0 to %c64 step %c8 iter_args({{.+}}) -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>) {
// CHECK-COUNT-2:     vector.load %[[XB]][%{{.+}}, %[[K]]] : memref<?x64xf32, strided<[?, 1], offset: ?>>, vector<8xf32>
// CHECK-COUNT-4:     vector.load %[[WB]][%{{.+}}, %[[K]]] : memref<96x64xf32, strided<[?, 1], offset: ?>>, vector<8xf32>
// CHECK-COUNT-8:     vector.fma %{{.+}} : vector<8xf32>
// CHECK:             }
// CHECK-COUNT-8:     vector.reduction <add>, %{{.+}} fastmath<reassoc,contract> : vector<8xf32> into f32
// CHECK-COUNT-8:     memref.store %{{.+}}, %[[OUT]][%{{.+}}, %{{.+}}] : memref<?x96xf32>
// CHECK:           scf.for %{{.+}} step %c1 {
// CHECK:             scf.for %{{.+}} = %c0 to %c64 step %c8 iter_args({{.+}}) -> (vector<8xf32>, vector<8xf32>)
// CHECK:         scf.for %{{.+}} step %c1 {
// CHECK:           scf.for %{{.+}} step %c4 {
// CHECK:             scf.for %{{.+}} = %c0 to %c64 step %c16 iter_args
// CHECK:         scf.reduce
// CHECK:       %[[R:.+]] = bufferization.to_tensor %[[OUT]] restrict writable : memref<?x96xf32> to tensor<?x96xf32>
// CHECK:       return %[[R]]
func.func @linear_f32(%x: tensor<?x64xf32>, %w: tensor<96x64xf32>) -> tensor<?x96xf32> {
  %y = jamba.linear %x, %w : (tensor<?x64xf32>, tensor<96x64xf32>) -> tensor<?x96xf32>
  return %y : tensor<?x96xf32>
}

// -----

// int8 weights: widened with sitofp in vector registers; K = 72 is not a
// multiple of the GEMV tile's vector step (32), so a scalar loop finishes
// it; the scale is applied after the K loop, then the bias. The GEMV tile of
// narrow weights reads two weight rows of 32 lanes each (8 accumulators, one
// load of the input row for both) and prefetches the rows 16 ahead (clamped
// to the last row); a single weight row takes an odd remainder.

// CHECK-LABEL: func.func @linear_i8
// CHECK:         scf.parallel
// CHECK:           scf.for %[[K:.+]] = %c0 to %c72 step %c8 iter_args
// CHECK:             %[[Q:.+]] = vector.load %{{.+}}[%{{.+}}, %[[K]]] : memref<8x72xi8, strided<[?, 1], offset: ?>>, vector<8xi8>
// CHECK:             arith.sitofp %[[Q]] : vector<8xi8> to vector<8xf32>
// CHECK:           scf.for %[[M:.+]] = %{{.+}} to %dim step %c1 {
// CHECK:             %[[PAIRS_END:.+]] = arith.addi
// CHECK:             scf.for %[[N:.+]] = %{{.+}} to %[[PAIRS_END]] step %c2 {
// CHECK:               %[[N1:.+]] = arith.addi %[[N]], %c1
// CHECK:               %[[AHEAD:.+]] = arith.addi %[[N]], %c16
// CHECK:               %[[ROW:.+]] = arith.minui %[[AHEAD]], %c7
// CHECK:               %[[AHEAD1:.+]] = arith.addi %[[N]], %c17
// CHECK:               %[[ROW1:.+]] = arith.minui %[[AHEAD1]], %c7
// CHECK:               scf.for %[[K2:.+]] = %c0 to %c64 step %c32 iter_args({{.+}}) -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK:                 memref.prefetch %{{.+}}[%[[ROW]], %[[K2]]], read, locality<3>, data
// CHECK:                 memref.prefetch %{{.+}}[%[[ROW1]], %[[K2]]], read, locality<3>, data
// CHECK:                 vector.load %{{.+}}[%[[M]], %[[K2]]] : memref<?x72xf32, strided<[?, 1], offset: ?>>, vector<8xf32>
// CHECK-NOT:             vector.load %{{.+}}[%[[M]], %[[K2]]] : memref<?x72xf32
// CHECK:                 vector.load %{{.+}}[%[[N]], %[[K2]]] : memref<8x72xi8
// CHECK:                 vector.load %{{.+}}[%[[N1]], %[[K2]]] : memref<8x72xi8
// CHECK:               %[[SUMS:.+]]:2 = scf.for %{{.+}} = %c64 to %c72 step %c1 iter_args
// CHECK:               %[[S:.+]] = tensor.extract %{{.+}}[%[[N]]] : tensor<8xf32>
// CHECK:               %[[SCALED:.+]] = arith.mulf %[[SUMS]]#0, %[[S]] : f32
// CHECK:               %[[B:.+]] = tensor.extract %{{.+}}[%[[N]]] : tensor<8xf32>
// CHECK:               %[[V:.+]] = arith.addf %[[SCALED]], %[[B]] : f32
// CHECK:               memref.store %[[V]], %{{.+}}[%[[M]], %[[N]]] : memref<?x8xf32>
// CHECK:               %[[S1:.+]] = tensor.extract %{{.+}}[%[[N1]]] : tensor<8xf32>
// CHECK:               arith.mulf %[[SUMS]]#1, %[[S1]] : f32
// CHECK:               memref.store %{{.+}}, %{{.+}}[%[[M]], %[[N1]]] : memref<?x8xf32>
// CHECK:             scf.for %[[NR:.+]] = %[[PAIRS_END]] to %{{.+}} step %c1 {
// CHECK:               scf.for %{{.+}} = %c0 to %c64 step %c32 iter_args({{.+}}) -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
func.func @linear_i8(%x: tensor<?x72xf32>, %q: tensor<8x72xi8>, %s: tensor<8xf32>, %b: tensor<8xf32>) -> tensor<?x8xf32> {
  %y = jamba.linear %x, %q scale(%s) bias(%b) : (tensor<?x72xf32>, tensor<8x72xi8>, tensor<8xf32>, tensor<8xf32>) -> tensor<?x8xf32>
  return %y : tensor<?x8xf32>
}

// -----

// bf16 weights with f32 activations: widened with extf inside the K loop.

// CHECK-LABEL: func.func @linear_bf16_weights
// CHECK:         vector.load %{{.+}} : memref<8x16xbf16, strided<[?, 1], offset: ?>>, vector<8xbf16>
// CHECK-NEXT:    arith.extf %{{.+}} : vector<8xbf16> to vector<8xf32>
func.func @linear_bf16_weights(%x: tensor<3x16xf32>, %w: tensor<8x16xbf16>) -> tensor<3x8xf32> {
  %y = jamba.linear %x, %w : (tensor<3x16xf32>, tensor<8x16xbf16>) -> tensor<3x8xf32>
  return %y : tensor<3x8xf32>
}

// -----

// expert_gemm: a counting sort of the (token, slot) pairs by expert into
// index buffers (clamped expert ids), then for each expert that has pairs
// the panel-parallel GEMM over them, with the scale of (expert, row) and the
// pair's routing weight in the epilogue.

// CHECK-LABEL: func.func @expert_gemm
// CHECK-SAME:    (%[[X:.+]]: tensor<?x16xf32>, %[[Q:.+]]: tensor<4x8x16xi8>, %[[S:.+]]: tensor<4x8xf32>, %[[I:.+]]: tensor<?x2xi32>, %[[RW:.+]]: tensor<?x2xf32>)
// CHECK:         %[[OUT:.+]] = memref.alloc(%{{.+}}) : memref<?x2x8xf32>
// CHECK:         %[[OFF:.+]] = memref.alloc() : memref<5xindex>
// CHECK:         %[[CUR:.+]] = memref.alloc() : memref<4xindex>
// CHECK:         %[[ORDER:.+]] = memref.alloc(%{{.+}}) : memref<?xindex>
// CHECK:         scf.for
// CHECK:           memref.store %c0, %[[OFF]]
// CHECK:         scf.for
// CHECK:           %[[RAW:.+]] = tensor.extract %[[I]]
// CHECK:           %[[E:.+]] = arith.index_cast %[[RAW]] : i32 to index
// CHECK:           %[[LO:.+]] = arith.maxsi %[[E]], %c0
// CHECK:           arith.minsi %[[LO]], %c3
// CHECK:         scf.for
// CHECK:         scf.for
// CHECK:           memref.store %{{.+}}, %[[ORDER]]
// CHECK:         scf.for %[[EXPERT:.+]] = %c0 to %c4 step %c1 {
// CHECK:           %[[BEGIN:.+]] = memref.load %[[OFF]][%[[EXPERT]]]
// CHECK:           %[[END:.+]] = memref.load %[[OFF]]
// CHECK:           %[[ANY:.+]] = arith.cmpi ult, %[[BEGIN]], %[[END]]
// CHECK:           scf.if %[[ANY]] {
// CHECK:             scf.parallel
// CHECK:               memref.load %[[ORDER]]
// CHECK:               vector.load %{{.+}}[%[[EXPERT]], %{{.+}}, %{{.+}}] : memref<4x8x16xi8, strided<[?, ?, 1], offset: ?>>, vector<8xi8>
// CHECK:               tensor.extract %[[S]][%[[EXPERT]], %{{.+}}] : tensor<4x8xf32>
// CHECK:               tensor.extract %[[RW]]
// CHECK:       bufferization.to_tensor %[[OUT]] restrict writable
func.func @expert_gemm(%x: tensor<?x16xf32>, %q: tensor<4x8x16xi8>, %s: tensor<4x8xf32>, %i: tensor<?x2xi32>, %rw: tensor<?x2xf32>) -> tensor<?x2x8xf32> {
  %y = jamba.expert_gemm %x, %q scale(%s) indices(%i) route_weights(%rw) : (tensor<?x16xf32>, tensor<4x8x16xi8>, tensor<4x8xf32>, tensor<?x2xi32>, tensor<?x2xf32>) -> tensor<?x2x8xf32>
  return %y : tensor<?x2x8xf32>
}

// -----

// f64 is left for convert-jamba-to-linalg.

// CHECK-LABEL: func.func @linear_f64
// CHECK:         jamba.linear
// CHECK-NOT:     vector.
func.func @linear_f64(%x: tensor<3x16xf64>, %w: tensor<8x16xf64>) -> tensor<3x8xf64> {
  %y = jamba.linear %x, %w : (tensor<3x16xf64>, tensor<8x16xf64>) -> tensor<3x8xf64>
  return %y : tensor<3x8xf64>
}

// -----

// selective_scan: one parallel item per (sequence, block of 8 channels); A
// transposed once into a stack block; the 4 state vectors of the block stay
// in registers (iter_args) over the time loop; per step a vector softplus of
// delta + bias, exp(d A) per state, broadcasts of B[t, n] and C[t, n], the D
// skip and the SiLU(z) gate; the final state goes out through the stack
// block.

// CHECK-LABEL: func.func @selective_scan
// CHECK:         %[[Y:.+]] = memref.alloc(%{{.+}}, %{{.+}}) : memref<?x?x16xf32>
// CHECK:         %[[H:.+]] = memref.alloc(%{{.+}}) : memref<?x16x4xf32>
// CHECK:         scf.parallel (%[[S:.+]], %[[BLK:.+]]) = (%c0, %c0) to (%{{.+}}, %c2) step (%c1, %c1) {
// CHECK:           %[[C0:.+]] = arith.muli %[[BLK]], %c8
// CHECK:           %[[AT:.+]] = memref.alloca() : memref<4x8xf32>
// CHECK:           %[[HB:.+]] = memref.alloca() : memref<4x8xf32>
// CHECK:           scf.for %[[N:.+]] = %c0 to %c4 step %c1 {
// CHECK:             scf.for %[[I:.+]] = %c0 to %c8 step %c1 {
// CHECK:               memref.store %{{.+}}, %[[AT]][%[[N]], %[[I]]]
// CHECK:           %{{.+}}:4 = scf.for %[[T:.+]] = %c0 to %{{.+}} step %c1 iter_args({{.+}}) -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>) {
// CHECK:             vector.load %{{.+}}[%[[S]], %[[T]], %[[C0]]] {{.+}}, vector<8xf32>
// CHECK:             math.exp %{{.+}} : vector<8xf32>
// CHECK:             math.log %{{.+}} : vector<8xf32>
// CHECK-COUNT-4:     math.exp %{{.+}} : vector<8xf32>
// CHECK:             vector.store %{{.+}}, %[[Y]][%[[S]], %[[T]], %[[C0]]] : memref<?x?x16xf32>, vector<8xf32>
// CHECK-COUNT-4:   vector.store %{{.+}}, %[[HB]][%{{.+}}, %c0] : memref<4x8xf32>, vector<8xf32>
// CHECK:           scf.for
// CHECK:             scf.for
// CHECK:               memref.store %{{.+}}, %[[H]][%[[S]], %{{.+}}, %{{.+}}] : memref<?x16x4xf32>
func.func @selective_scan(%u: tensor<?x?x16xf32>, %dt: tensor<?x?x16xf32>, %A: tensor<16x4xf32>, %B: tensor<?x?x4xf32>, %C: tensor<?x?x4xf32>, %D: tensor<16xf32>, %z: tensor<?x?x16xf32>, %db: tensor<16xf32>) -> (tensor<?x?x16xf32>, tensor<?x16x4xf32>) {
  %y, %h = jamba.selective_scan %u, %dt, %A, %B, %C D(%D) z(%z) delta_bias(%db) {delta_softplus}
      : (tensor<?x?x16xf32>, tensor<?x?x16xf32>, tensor<16x4xf32>, tensor<?x?x4xf32>, tensor<?x?x4xf32>, tensor<16xf32>, tensor<?x?x16xf32>, tensor<16xf32>) -> (tensor<?x?x16xf32>, tensor<?x16x4xf32>)
  return %y, %h : tensor<?x?x16xf32>, tensor<?x16x4xf32>
}

// -----

// d_inner = 12 is not a whole number of 8-lane blocks: left for
// convert-jamba-to-linalg.

// CHECK-LABEL: func.func @selective_scan_partial_block
// CHECK:         jamba.selective_scan
func.func @selective_scan_partial_block(%u: tensor<1x?x12xf32>, %dt: tensor<1x?x12xf32>, %A: tensor<12x4xf32>, %B: tensor<1x?x4xf32>, %C: tensor<1x?x4xf32>) -> tensor<1x?x12xf32> {
  %y, %h = jamba.selective_scan %u, %dt, %A, %B, %C
      : (tensor<1x?x12xf32>, tensor<1x?x12xf32>, tensor<12x4xf32>, tensor<1x?x4xf32>, tensor<1x?x4xf32>) -> (tensor<1x?x12xf32>, tensor<1x12x4xf32>)
  return %y : tensor<1x?x12xf32>
}

// -----

// A weight with no columns (K = 0; the panel size divided by the bytes of a
// weight row crashed the pass): every output is the empty sum, 0.

// CHECK-LABEL: func.func @linear_no_columns
// CHECK:         %[[ZERO:.+]] = vector.reduction <add>, %{{.+}} : vector<8xf32> into f32
// CHECK:         memref.store %[[ZERO]]
// CHECK-NOT:     vector.load
func.func @linear_no_columns(%x: tensor<1x?x0xf32>, %w: tensor<256x0xf32>) -> tensor<1x?x256xf32> {
  %y = jamba.linear %x, %w : (tensor<1x?x0xf32>, tensor<256x0xf32>) -> tensor<1x?x256xf32>
  return %y : tensor<1x?x256xf32>
}

// -----

// cached_attention, head dim 16 (two vectors of 8 lanes), 4 heads over 2
// kv heads (groups of 2): the rows appended with tensor.insert as the
// generic lowering does; then one parallel item per (sequence, tile of 8
// tokens, kv head), the tiles in the zigzag order 0, n-1, 1, n-2, ... (the
// causal work even over static chunks); the tile's 16 rows, (token, head)
// pairs token-major, keep their output, maximum and sum in stack buffers;
// the keys the tile's last token sees, in blocks of 8 clamped to the last
// one; per block and row whose token is the call's and sees the block: for
// each of its query row's two vectors 8 FMAs (one accumulator per key), the
// 8 accumulators' lanes summed pairwise in three rounds of shuffles into a
// vector of scores, times 16^-1/2, the keys past its position masked (-inf, weight
// 0), one exp for the rescaling (0 for the first block) and one vector exp
// for the weights, 8 x 2 FMAs of the values into its output row; finally
// each row divided by its sum.
// Split-KV (the default attention-split-keys=2048): S = max(1, min(32,
// ceil(64 / (2 x tiles x 2)), ceil(keys / 2048))) splits of the keys, keys =
// min(max cache_len + seq, capacity), each ceil(keys / S) rounded up to 8;
// the parallel loop gets a split dimension and each item walks its
// split's keys. With S = 1 the rows are normalised as above; otherwise each
// row's maximum, sum and output go to scratch buffers [2, tiles, 2, S, 16
// (, 16)], and a second parallel loop over (sequence, tile, kv head)
// combines each row's splits: the overall maximum, then the splits'
// outputs and sums weighted by exp(max_i - max) (an empty split's -inf
// maximum selected to weight 0), each output divided by the weighted sum.
// With attention-split-keys=0 (NOSPLIT) none of this: three dimensions,
// every key, no scratch.

// CHECK-LABEL: func.func @cached_attention
// CHECK-DAG:     %[[SCALE:.+]] = arith.constant dense<2.500000e-01> : vector<8xf32>
// CHECK-DAG:     %[[NEGINF:.+]] = arith.constant 0xFF800000 : f32
// CHECK-DAG:     %[[ZEROV:.+]] = arith.constant dense<0.000000e+00> : vector<8xf32>
// CHECK:         scf.for
// CHECK:           tensor.insert
// CHECK:           tensor.insert
// CHECK:         %[[Q:.+]] = bufferization.to_buffer %arg0 read_only
// CHECK:         %[[KC:.+]] = bufferization.to_buffer %{{.+}}#0 read_only
// CHECK:         %[[VC:.+]] = bufferization.to_buffer %{{.+}}#1 read_only
// CHECK:         %[[S:.+]] = tensor.dim %arg0, %c1
// CHECK:         %[[O:.+]] = memref.alloc(%{{.+}}) : memref<2x?x64xf32>
// CHECK:         %[[TILES:.+]] = arith.ceildivui %[[S]], %c8
// CHECK:         scf.for %{{.+}} = %c0 to %c2 step %c1 iter_args(%{{.+}} = %c0) -> (index) {
// CHECK:           arith.maxui
// CHECK:         %[[KEYS:.+]] = arith.minui %{{.+}}, %{{.+}} : index
// CHECK:         %[[ITEMS:.+]] = arith.muli %[[TILES]], %c4
// CHECK:         %[[ITEMS1:.+]] = arith.maxui %[[ITEMS]], %c1
// CHECK:         %[[BYITEMS:.+]] = arith.ceildivui %c64, %[[ITEMS1]]
// CHECK:         %[[BYKEYS:.+]] = arith.ceildivui %[[KEYS]], %c2048
// CHECK:         %[[FEWER:.+]] = arith.minui %[[BYITEMS]], %[[BYKEYS]]
// CHECK:         %[[BOUNDED:.+]] = arith.minui %[[FEWER]], %c32
// CHECK:         %[[SPLITS:.+]] = arith.maxui %[[BOUNDED]], %c1
// CHECK:         %[[PERSPLIT:.+]] = arith.ceildivui %[[KEYS]], %[[SPLITS]]
// CHECK:         %[[BLOCKS:.+]] = arith.ceildivui %[[PERSPLIT]], %c8
// CHECK:         %[[SPLITKEYS:.+]] = arith.muli %[[BLOCKS]], %c8
// CHECK:         %[[SEVERAL:.+]] = arith.cmpi ugt, %[[SPLITS]], %c1
// CHECK:         %[[SCRATCH:.+]] = arith.select %[[SEVERAL]], %[[SPLITS]], %c0
// CHECK:         %[[POUT:.+]] = memref.alloc(%[[TILES]], %[[SCRATCH]]) : memref<2x?x2x?x16x16xf32>
// CHECK:         %[[PMAX:.+]] = memref.alloc(%[[TILES]], %[[SCRATCH]]) : memref<2x?x2x?x16xf32>
// CHECK:         %[[PSUM:.+]] = memref.alloc(%[[TILES]], %[[SCRATCH]]) : memref<2x?x2x?x16xf32>
// CHECK:         scf.parallel (%[[B:.+]], %[[I:.+]], %[[G:.+]], %[[SP:.+]]) = (%c0, %c0, %c0, %c0) to (%c2, %[[TILES]], %c2, %[[SPLITS]]) step (%c1, %c1, %c1, %c1) {
// CHECK:           %[[HALF:.+]] = arith.divui %[[I]], %c2
// CHECK:           %[[ODD:.+]] = arith.cmpi ne
// CHECK:           %[[LASTTILE:.+]] = arith.subi %[[TILES]], %c1
// CHECK:           %[[MIRROR:.+]] = arith.subi %[[LASTTILE]], %[[HALF]]
// CHECK:           %[[TILE:.+]] = arith.select %[[ODD]], %[[MIRROR]], %[[HALF]]
// CHECK:           %[[T0:.+]] = arith.muli %[[TILE]], %c8
// CHECK:           arith.minui %{{.+}}, %[[S]] : index
// CHECK:           %[[END:.+]] = arith.minui %{{.+}}, %{{.+}} : index
// CHECK:           %[[LASTKEY:.+]] = arith.subi %[[END]], %c1
// CHECK:           %[[BEGIN:.+]] = arith.muli %[[SP]], %[[SPLITKEYS]]
// CHECK:           %[[PLUS:.+]] = arith.addi %[[BEGIN]], %[[SPLITKEYS]]
// CHECK:           %[[KEND:.+]] = arith.minui %[[PLUS]], %[[END]]
// CHECK:           %[[OUT:.+]] = memref.alloca() : memref<16x16xf32>
// CHECK:           %[[MAX:.+]] = memref.alloca() : memref<16xf32>
// CHECK:           %[[SUM:.+]] = memref.alloca() : memref<16xf32>
// CHECK:           scf.for %{{.+}} = %c0 to %c16 step %c1 {
// CHECK:             memref.store %[[NEGINF]], %[[MAX]]
// CHECK:           scf.for %[[J:.+]] = %[[BEGIN]] to %[[KEND]] step %c8 {
// CHECK-COUNT-8:     arith.minui %{{.+}}, %[[LASTKEY]] : index
// CHECK:             scf.for %[[R:.+]] = %c0 to %c16 step %c1 {
// CHECK:               %[[TOK:.+]] = arith.addi %[[T0]], %{{.+}} : index
// CHECK:               %[[INCALL:.+]] = arith.cmpi ult, %[[TOK]], %[[S]]
// CHECK:               scf.if %[[INCALL]] {
// CHECK:                 %[[SEES:.+]] = arith.cmpi ult, %[[J]], %{{.+}} : index
// CHECK:                 scf.if %[[SEES]] {
// CHECK:                   %[[Q0:.+]] = vector.load %[[Q]][%[[B]], %[[TOK]], %{{.+}}] : memref<2x?x64xf32, {{.+}}>, vector<8xf32>
// CHECK-COUNT-8:           vector.fma %[[Q0]], %{{.+}}, %[[ZEROV]]
// CHECK:                   %[[Q1:.+]] = vector.load %[[Q]][%[[B]], %[[TOK]], %{{.+}}] : memref<2x?x64xf32, {{.+}}>, vector<8xf32>
// CHECK-COUNT-8:           vector.fma %[[Q1]]
// CHECK-NOT:               vector.reduction <add>
// CHECK-COUNT-7:           vector.shuffle %{{.+}}, %{{.+}} [1, 3, 5, 7, 9, 11, 13, 15]
// CHECK-NEXT:              %[[SC:.+]] = arith.addf
// CHECK-NEXT:              %[[SCALED:.+]] = arith.mulf %[[SC]], %[[SCALE]]
// CHECK:                   %[[IN:.+]] = arith.cmpi ult, %{{.+}}, %{{.+}} : vector<8xindex>
// CHECK:                   arith.select %[[IN]], %[[SCALED]]
// CHECK:                   memref.load %[[MAX]][%[[R]]]
// CHECK:                   vector.reduction <maximumf>
// CHECK:                   math.exp %{{.+}} : f32
// CHECK:                   math.exp %{{.+}} : vector<8xf32>
// CHECK:                   arith.select %[[IN]]
// CHECK:                   memref.store %{{.+}}, %[[MAX]][%[[R]]]
// CHECK:                   memref.store %{{.+}}, %[[SUM]][%[[R]]]
// CHECK-COUNT-2:           vector.load %[[OUT]][%[[R]], %{{.+}}]
// CHECK-COUNT-16:          vector.fma
// CHECK-COUNT-2:           vector.store %{{.+}}, %[[OUT]][%[[R]], %{{.+}}]
// CHECK:           %[[ALONE:.+]] = arith.cmpi eq, %[[SPLITS]], %c1
// CHECK:           scf.if %[[ALONE]] {
// CHECK:             scf.for %{{.+}} = %c0 to %c16 step %c1 {
// CHECK:                 memref.load %[[SUM]]
// CHECK:                 arith.divf
// CHECK:                 vector.store %{{.+}}, %[[O]][%[[B]], %{{.+}}, %{{.+}}]
// CHECK:                 arith.divf
// CHECK:                 vector.store %{{.+}}, %[[O]][%[[B]], %{{.+}}, %{{.+}}]
// CHECK:           } else {
// CHECK:             scf.for %[[R2:.+]] = %c0 to %c16 step %c1 {
// CHECK:                 memref.store %{{.+}}, %[[PMAX]][%[[B]], %[[TILE]], %[[G]], %[[SP]], %[[R2]]]
// CHECK:                 memref.store %{{.+}}, %[[PSUM]][%[[B]], %[[TILE]], %[[G]], %[[SP]], %[[R2]]]
// CHECK-COUNT-2:         vector.store %{{.+}}, %[[POUT]][%[[B]], %[[TILE]], %[[G]], %[[SP]], %[[R2]], %{{.+}}]
// CHECK:         scf.if %[[SEVERAL]] {
// CHECK:           scf.parallel (%[[CB:.+]], %[[CT:.+]], %[[CG:.+]]) = (%c0, %c0, %c0) to (%c2, %[[TILES]], %c2) step (%c1, %c1, %c1) {
// CHECK:             scf.for %[[CR:.+]] = %c0 to %c16 step %c1 {
// CHECK:                 %[[M:.+]] = scf.for %{{.+}} = %c0 to %[[SPLITS]] step %c1 iter_args(%{{.+}} = %[[NEGINF]]) -> (f32) {
// CHECK:                   memref.load %[[PMAX]][%[[CB]], %[[CT]], %[[CG]], %{{.+}}, %[[CR]]]
// CHECK:                   arith.maximumf
// CHECK:                 %[[ACC:.+]]:3 = scf.for %{{.+}} = %c0 to %[[SPLITS]] step %c1 iter_args({{.+}}) -> (f32, vector<8xf32>, vector<8xf32>) {
// CHECK:                   %[[PM:.+]] = memref.load %[[PMAX]]
// CHECK:                   %[[EMPTY:.+]] = arith.cmpf oeq, %[[PM]], %[[NEGINF]]
// CHECK:                   %[[D:.+]] = arith.subf %[[PM]], %[[M]]
// CHECK:                   %[[E:.+]] = math.exp %[[D]]
// CHECK:                   %[[W:.+]] = arith.select %[[EMPTY]], %{{.+}}, %[[E]]
// CHECK:                   memref.load %[[PSUM]]
// CHECK:                   vector.load %[[POUT]]
// CHECK:                   vector.fma
// CHECK:                   vector.load %[[POUT]]
// CHECK:                   vector.fma
// CHECK:                 arith.divf %[[ACC]]#1
// CHECK:                 vector.store %{{.+}}, %[[O]][%[[CB]], %{{.+}}, %{{.+}}]
// CHECK:                 arith.divf %[[ACC]]#2
// CHECK:                 vector.store %{{.+}}, %[[O]][%[[CB]], %{{.+}}, %{{.+}}]

// NOSPLIT-LABEL: func.func @cached_attention
// NOSPLIT:         memref.alloc(%{{.+}}) : memref<2x?x64xf32>
// NOSPLIT-NOT:     memref.alloc
// NOSPLIT:         scf.parallel (%{{.+}}, %{{.+}}, %{{.+}}) = (%c0, %c0, %c0) to (%c2, %{{.+}}, %c2) step (%c1, %c1, %c1) {
// NOSPLIT:           scf.for %{{.+}} = %c0 to %{{.+}} step %c8 {
// NOSPLIT-NOT:     scf.parallel
// NOSPLIT-LABEL: func.func @cached_attention_partial_vector
func.func @cached_attention(%q: tensor<2x?x64xf32>, %k: tensor<2x?x32xf32>, %v: tensor<2x?x32xf32>,
                            %kc: tensor<2x2x?x16xf32>, %vc: tensor<2x2x?x16xf32>, %len: tensor<2xi32>)
    -> (tensor<2x?x64xf32>, tensor<2x2x?x16xf32>, tensor<2x2x?x16xf32>) {
  %o, %k2, %v2 = jamba.cached_attention %q, %k, %v, cache(%kc, %vc, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<2x?x64xf32>, tensor<2x?x32xf32>, tensor<2x?x32xf32>, tensor<2x2x?x16xf32>,
         tensor<2x2x?x16xf32>, tensor<2xi32>)
      -> (tensor<2x?x64xf32>, tensor<2x2x?x16xf32>, tensor<2x2x?x16xf32>)
  return %o, %k2, %v2 : tensor<2x?x64xf32>, tensor<2x2x?x16xf32>, tensor<2x2x?x16xf32>
}

// -----

// A head dimension of 12 is not a whole number of 8-lane vectors: left for
// convert-jamba-to-linalg.

// CHECK-LABEL: func.func @cached_attention_partial_vector
// CHECK:         jamba.cached_attention
func.func @cached_attention_partial_vector(%q: tensor<1x?x48xf32>, %k: tensor<1x?x24xf32>, %v: tensor<1x?x24xf32>,
                                          %kc: tensor<1x2x?x12xf32>, %vc: tensor<1x2x?x12xf32>, %len: tensor<1xi64>)
    -> tensor<1x?x48xf32> {
  %o, %k2, %v2 = jamba.cached_attention %q, %k, %v, cache(%kc, %vc, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x?x48xf32>, tensor<1x?x24xf32>, tensor<1x?x24xf32>, tensor<1x2x?x12xf32>,
         tensor<1x2x?x12xf32>, tensor<1xi64>)
      -> (tensor<1x?x48xf32>, tensor<1x2x?x12xf32>, tensor<1x2x?x12xf32>)
  return %o : tensor<1x?x48xf32>
}

// -----

// A head dimension of 80, ten vectors (2 heads over 1 kv head): each row's
// dot products take the query a vector at a time, and its output is updated
// 8 vectors at a time (with a value row and a weight they fit AVX2's 16
// registers), then the last 2.

// CHECK-LABEL: func.func @cached_attention_wide_head
// CHECK-COUNT-10:    vector.load %{{.+}} : memref<1x?x160xf32, {{.+}}>, vector<8xf32>
// CHECK-COUNT-7:     vector.shuffle
// CHECK-COUNT-8:     vector.load %{{.+}} : memref<16x80xf32>, vector<8xf32>
// CHECK-COUNT-64:    vector.fma
// CHECK-COUNT-8:     vector.store %{{.+}} : memref<16x80xf32>, vector<8xf32>
// CHECK-COUNT-2:     vector.load %{{.+}} : memref<16x80xf32>, vector<8xf32>
// CHECK-COUNT-16:    vector.fma
// CHECK-COUNT-2:     vector.store %{{.+}} : memref<16x80xf32>, vector<8xf32>
func.func @cached_attention_wide_head(%q: tensor<1x?x160xf32>, %k: tensor<1x?x80xf32>, %v: tensor<1x?x80xf32>,
                                      %kc: tensor<1x1x?x80xf32>, %vc: tensor<1x1x?x80xf32>, %len: tensor<1xi32>)
    -> tensor<1x?x160xf32> {
  %o, %k2, %v2 = jamba.cached_attention %q, %k, %v, cache(%kc, %vc, %len)
      {num_heads = 2 : i64, num_kv_heads = 1 : i64}
      : (tensor<1x?x160xf32>, tensor<1x?x80xf32>, tensor<1x?x80xf32>, tensor<1x1x?x80xf32>,
         tensor<1x1x?x80xf32>, tensor<1xi32>)
      -> (tensor<1x?x160xf32>, tensor<1x1x?x80xf32>, tensor<1x1x?x80xf32>)
  return %o : tensor<1x?x160xf32>
}

// -----

// Two kernels that read one tensor each read it where they are: the
// second's read is not merged by CSE into the first's (for one-shot
// bufferization the to_buffer is the read, and the kernel's loads come
// after it). Merged, bufferization could write %n (here the second GEMM's
// input, in a model the C norm of a Mamba layer with d_inner = d_state)
// in place over %x between the two kernels.
// CHECK-LABEL: func.func @two_reads_of_one_tensor
// CHECK-SAME:    (%[[X:.+]]: tensor<4x16xf32>,
// CHECK:         bufferization.to_buffer %[[X]] read_only {jamba.read_point = [[FIRST:[0-9]+]] : i64}
// CHECK:         scf.parallel
// CHECK:         bufferization.to_buffer %[[X]] read_only
// CHECK-NOT:     jamba.read_point = [[FIRST]] :
// CHECK-SAME:    : tensor<4x16xf32>
// CHECK:         scf.parallel
func.func @two_reads_of_one_tensor(%x: tensor<4x16xf32>, %w: tensor<16x16xf32>, %v: tensor<16x16xf32>) -> (tensor<4x16xf32>, tensor<4x16xf32>) {
  %a = jamba.linear %x, %w : (tensor<4x16xf32>, tensor<16x16xf32>) -> tensor<4x16xf32>
  %b = jamba.linear %x, %v : (tensor<4x16xf32>, tensor<16x16xf32>) -> tensor<4x16xf32>
  return %a, %b : tensor<4x16xf32>, tensor<4x16xf32>
}

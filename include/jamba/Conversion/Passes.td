//===- Passes.td - jamba conversion passes -----------------*- tablegen -*-===//
//
// Part of jamba-mlir.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_CONVERSION_PASSES_TD
#define JAMBA_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

//===----------------------------------------------------------------------===//
// CPU backend
//===----------------------------------------------------------------------===//

def ConvertJambaToLinalgPass
    : Pass<"convert-jamba-to-linalg", "func::FuncOp"> {
  let summary = "Lower jamba primitives to linalg, tensor, arith, math and scf";
  let description = [{
    A partial conversion of the jamba primitives to destination-passing
    style on tensors (`tensor.empty` + `linalg.fill` + `linalg.generic`),
    ready for one-shot bufferization. Dynamic sizes are read with
    `tensor.dim`. Lowered: `jamba.linear`, `jamba.expert_gemm`,
    `jamba.dequant`, `jamba.rms_norm`, `jamba.swiglu`, `jamba.combine_slots`,
    `jamba.router_topk`, `jamba.embedding`, `jamba.causal_conv1d`,
    `jamba.selective_scan` and `jamba.cached_attention` (the KV rows
    inserted into the caches with `tensor.insert_slice`, then `scf.for`
    loops over batch, position and head computing the causal softmax in
    f32 with max subtraction); layer-level ops (`jamba.moe`, `jamba.mlp`,
    `jamba.mamba_mixer`, `jamba.attention`, `jamba.lm_head`) are left alone.

    Numerics follow the reference kernels: accumulation in f32 (f64 when the
    result is f64), bf16/f16 operands widened in the loop body and the
    result rounded once; int8 weights are converted (`arith.sitofp`) inside
    the K loop and the per-row scale is applied after it, then the bias or
    routing weight (SPEC 1.11). Gathers (`jamba.embedding`, the expert row
    of `jamba.expert_gemm`) clamp the id into range, so a bad id reads a
    valid row instead of outside the buffer; the runtime rejects such ids
    before running.

    Function arguments carrying a `jamba.weight` name are marked
    `bufferization.writable = false`: weights are read-only (the runtime maps
    them), so bufferization copies instead of writing into them (elementwise
    ops on a weight, such as `A = -exp(A_log)`, reuse their operand as the
    output once `convert-elementwise-to-linalg` has run).

    Before:

    ```mlir
    %y = jamba.linear %x, %q scale(%s)
        : (tensor<?x64xf32>, tensor<256x64xi8>, tensor<256xf32>) -> tensor<?x256xf32>
    ```

    After:

    ```mlir
    %c0 = arith.constant 0 : index
    %zero = arith.constant 0.000000e+00 : f32
    %rows = tensor.dim %x, %c0 : tensor<?x64xf32>
    %e = tensor.empty(%rows) : tensor<?x256xf32>
    %init = linalg.fill ins(%zero : f32) outs(%e : tensor<?x256xf32>) -> tensor<?x256xf32>
    %acc = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d2)>,
                                            affine_map<(d0, d1, d2) -> (d1, d2)>,
                                            affine_map<(d0, d1, d2) -> (d0, d1)>],
                           iterator_types = ["parallel", "parallel", "reduction"]}
        ins(%x, %q : tensor<?x64xf32>, tensor<256x64xi8>) outs(%init : tensor<?x256xf32>) {
    ^bb0(%a: f32, %w: i8, %out: f32):
      %wf = arith.sitofp %w : i8 to f32
      %m = arith.mulf %a, %wf : f32
      %s = arith.addf %out, %m : f32
      linalg.yield %s : f32
    } -> tensor<?x256xf32>
    %e2 = tensor.empty(%rows) : tensor<?x256xf32>
    %y = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>,
                                          affine_map<(d0, d1) -> (d1)>,
                                          affine_map<(d0, d1) -> (d0, d1)>],
                         iterator_types = ["parallel", "parallel"]}
        ins(%acc, %s : tensor<?x256xf32>, tensor<256xf32>) outs(%e2 : tensor<?x256xf32>) {
    ^bb0(%a: f32, %scale: f32, %out: f32):
      %v = arith.mulf %a, %scale : f32
      linalg.yield %v : f32
    } -> tensor<?x256xf32>
    ```
  }];
  let dependentDialects = ["::mlir::linalg::LinalgDialect",
                           "::mlir::bufferization::BufferizationDialect",
                           "::mlir::tensor::TensorDialect",
                           "::mlir::arith::ArithDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::scf::SCFDialect"];
}

def JambaCpuMicrokernelsPass
    : Pass<"jamba-cpu-microkernels", "func::FuncOp"> {
  let summary = "Lower the GEMMs, the selective scan and cached attention "
                "to vector microkernels on buffers";
  let description = [{
    The microkernels of the CPU backend (TOOLCHAIN.md part 2). Each
    `jamba.linear` and `jamba.expert_gemm` whose input, weight and result
    are f32, bf16 or f16 (weights also int8) becomes a loop nest on buffers:

    - `scf.parallel` over weight panels (rows of W sized to `panel-bytes`,
      an L2-resident block each thread reuses over all input rows);
    - inside a panel, register tiles of 2 input rows x 4 weight rows; a
      single remaining input row (decode, GEMV) uses 4 rows x 16 lanes for
      f32 weights and 1 row x 32 lanes with a `memref.prefetch` of the row
      `prefetch-rows` ahead for narrow weights;
    - the K loop keeps the partial sums in `vector<lanes x f32>`
      accumulators (`vector.fma`; bf16/f16 widened with `arith.extf`, int8
      with `arith.sitofp` in registers) and reduces them once per output
      (`vector.reduction` with `reassoc`); a scalar loop finishes K when it
      is not a multiple of the vector step;
    - the epilogue applies the per-row scale after the K loop, then the
      bias or routing weight, and rounds to the result type (SPEC 1.11).

    `jamba.expert_gemm` first sorts the (token, slot) pairs by expert (a
    counting sort into an index buffer; an out-of-range expert index is
    clamped), then runs the panel-parallel GEMM for each expert that has
    pairs, over its pairs, so an expert's weights are read once per call.

    `jamba.selective_scan` with a static d_inner that is a multiple of
    `lanes` and d_state <= 32 becomes `scf.parallel` over (sequence, block
    of `lanes` channels): the block's d_state state vectors stay in
    registers (iter_args) across the time loop, A is transposed once per
    block into a stack buffer, B[t, n] and C[t, n] are broadcast, and the
    softplus, exp, D skip and SiLU(z) gate are vector ops (the polynomial
    exp/log of `jamba-approximate-math` keep them inline). The order of the
    arithmetic is the reference kernel's.

    `jamba.cached_attention` with a static head_dim that is a multiple of
    `lanes` (at most 32 vectors) appends the new rows to the caches as
    `convert-jamba-to-linalg` does (`tensor.insert`, in place), then runs
    `scf.parallel` over (sequence, tile, kv head): a tile is max(1, 16 / G)
    tokens of the kv head's group of G query heads, its rows the (token,
    head) pairs sharing each key and value row it loads; tiles in the
    order 0, n-1, 1, n-2, ... (even static chunks of the causal work); the
    keys in blocks of 8 with an online softmax per row (the block's scores
    as one vector, the running maximum and sum rescaled once per block,
    exp(-inf) selected rather than computed; each row's output, maximum and
    sum in a stack tile), each output divided by its sum at the end. A
    call of fewer than 64 items (a decode step: one per (sequence, kv
    head)) splits each item's keys into S = min(32, ceil(64 / items),
    ceil(keys / `attention-split-keys`)) ranges, each a parallel item that
    writes its rows' partial output, maximum and sum to a scratch buffer,
    then a second parallel loop combines each row's splits ("flash
    decoding"): a machine with more cores than kv heads then streams the
    cache on all of them.

    Operands are read through `bufferization.to_buffer read_only`; the
    result is a fresh `memref.alloc` returned by `bufferization.to_tensor
    restrict writable` (the counting sort's index buffers and split-KV's
    scratch are `memref.alloc`s too, freed by the buffer deallocation
    pipeline), so one-shot bufferization of the surrounding tensor
    program is unchanged. Other element types (f64) are left for
    `convert-jamba-to-linalg`.
  }];
  let options = [
    Option<"lanes", "lanes", "int64_t", /*default=*/"8",
           "f32 lanes of one accumulator vector (8 for AVX2)">,
    Option<"panelBytes", "panel-bytes", "int64_t", /*default=*/"262144",
           "Bytes of weights in one thread's panel">,
    Option<"prefetchRows", "prefetch-rows", "int64_t", /*default=*/"16",
           "GEMV with narrow weights: prefetch the weight row this many "
           "rows ahead (0: no prefetch)">,
    Option<"attentionSplitKeys", "attention-split-keys", "int64_t",
           /*default=*/"2048",
           "Attention calls of fewer than 64 (sequence, tile, kv head) "
           "items (decode steps) split each item's keys into ceil(keys / N) "
           "ranges (at most 32, and 64 items), combined after (0: no "
           "split)">,
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::bufferization::BufferizationDialect",
                           "::mlir::linalg::LinalgDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::vector::VectorDialect"];
}

def JambaGpuKernelsPass : Pass<"jamba-gpu-kernels", "func::FuncOp"> {
  let summary = "Lower the scan, the causal conv, attention and the router "
                "to parallel loop nests on buffers (GPU kernels)";
  let description = [{
    The jamba primitives whose linalg lowering has sequential loops over
    tensors become `scf.parallel` nests on buffers, one parallel iteration
    per independent item, its sequential work inside:

    - `jamba.selective_scan`: one iteration per (sequence, channel), its
      time loop in the reference's order (SPEC 1.6); with a static state
      width (at most 64) the state is carried in f32 loop values
      (registers) and stored once at the end, and a long sequence is cut
      into chunks of at least scan-chunk-steps steps run in parallel (each
      chunk's state from zero and its summed step sizes, then the chunks'
      initial states carried in f32 from chunk to chunk, then every chunk
      again from its initial state, writing y); a call of at most 8 steps
      runs one lane per state, and a longer one with at least
      scan-lane-threads (sequence, channel, lane) threads runs in one pass,
      each channel's states split over min(width, 8) lanes of a warp (the
      steps in batches, their outputs summed by a reduce-scatter of
      shuffles); with a dynamic width the state is kept in the final-state
      buffer and updated at every time step;
    - `jamba.causal_conv1d`: one iteration per (sequence, channel) over the
      extended input (state, then this call's inputs); it also writes the
      new state;
    - `jamba.router_topk`: one iteration per row: softmax, then top-k by
      repeated selection (ties: the lower index);
    - `jamba.argmax` (the greedy ids): a warp per (row, chunk of 1024
      values) keeps each lane's best (value, id) over 16-byte vectors,
      combines the lanes' by five butterfly rounds of shuffles and writes
      the chunk's pair; then a warp per row combines its chunks' pairs
      the same way and writes the id (the larger value, the lower id on
      equal values, -1 for a NaN or a row of -inf);
    - `jamba.cached_attention`: the new keys and values enter the caches
      through an `scf.forall` over (sequence, kv head, token) whose shared
      output is the cache (updated in place), each iteration inserting one
      row at `cache_len[b] + s` (`tensor.parallel_insert_slice`; nothing
      past the capacity), so a call touches only its new rows; then
      split-KV attention: one iteration per (sequence, token, head, split)
      runs an online softmax over its range of keys into a partial row and
      its (maximum, sum), and one per (sequence, token, head, channel)
      combines the splits. The split count is chosen at run time:
      min(attention-max-splits, ceil(capacity / attention-keys-per-split))
      divided by the call's tokens, at least 1 (many for a decode step, one
      for a long prefill). With attention-tensor-cores a call of
      attention-mma-min-tokens tokens or more (by default every call)
      runs instead as flash attention on tensor cores: one warp per
      (sequence, kv head, tile of 16 rows, split), a row being a (token,
      head) pair of the kv head's group of query heads, walks its split
      of the keys 16 at a time, S = Q K^T and O += P V on
      `nvvm.mma.sync` m16n8k16 (bf16 operands, f32 accumulators; the
      score accumulators are P's operand as they are), an online softmax
      whose row maxima and sums combine a quad's lanes with `gpu.shuffle`
      (jamba-gpu-map-loops checks that blocks are whole warps); with
      several splits the combine nest finishes the rows;
    - `jamba.expert_gemm`: one iteration per (token-slot row, output n,
      lane) sums the lane's share of the K loop (k = lane, lane + L, ...;
      16-byte chunks at k = V lane, V (lane + L), ... when the weight rows
      are aligned for 16-byte vector loads, a test made once per call),
      so consecutive GPU threads read consecutive weights of one row; one
      per (row, n) adds the lanes in order and applies the scale, the
      routing weight and the expert-parallel zeroing. L = min(
      expert-gemm-lanes, 64 * expert-gemm-lanes / rows), at least 1, at
      run time (all lanes for a decode step's few rows). With more rows
      than expert-gemm-grouped-rows those nests have no iterations and the
      rows are sorted by expert instead (counts, offsets, the sort: one
      iteration per expert or one in all), and one iteration per (tile of
      8 rows of one expert, n) computes the tile's 8 outputs, reading each
      weight once; with expert-gemm-tensor-cores (int8 or bf16 weights, K a
      multiple of 64) the tiles have 32 rows (two m-blocks of 16; a tile
      of at most 16 rows runs the first alone) and one warp per (tile, 64
      outputs n) computes them with `nvvm.mma.sync` m16n8k16 on bf16
      operands (the inputs rounded to bf16, f32 accumulators), an
      iteration per lane (jamba-gpu-map-loops checks that blocks are whole
      warps); emulate-mma replaces each mma.sync by what the
      PTX ISA says the warp computes, so that the kernel runs on CPUs;
    - `jamba.rms_norm`: a static width of at most 64 is one iteration
      per row (its squares, 1 / sqrt(mean + epsilon), its elements: one
      kernel); a wider row is one warp per row (one kernel): each lane
      sums its share of the squares, five butterfly shuffles add the
      lanes' sums, and each lane normalises its elements (emulate-warps:
      the lanes in turn, their sums in lane order).

    No iteration reads what another writes, so jamba-gpu-map-loops maps
    each nest onto one kernel; the same IR runs on CPUs through
    jamba-cpu-lower-pipeline{gpu-kernels=1}, which is how these kernels
    are tested without a GPU. f64 forms are left for
    convert-jamba-to-linalg.
  }];
  let options = [
    Option<"attentionKeysPerSplit", "attention-keys-per-split", "int64_t",
           /*default=*/"64",
           "Cached attention: the fewest keys per split worth a split">,
    Option<"attentionMaxSplits", "attention-max-splits", "int64_t",
           /*default=*/"32",
           "Cached attention: the most splits of a query's keys">,
    Option<"expertGemmLanes", "expert-gemm-lanes", "int64_t",
           /*default=*/"32",
           "Expert GEMM: the most lanes (threads) summing one output's K "
           "loop (1: one thread per output)">,
    Option<"scanChunkSteps", "scan-chunk-steps", "int64_t",
           /*default=*/"64",
           "Selective scan: the fewest time steps per chunk when the time "
           "loop is cut into chunks run in parallel">,
    Option<"scanLaneThreads", "scan-lane-threads", "int64_t",
           /*default=*/"65536",
           "Selective scan: a call of more than 8 steps runs in one pass, "
           "each channel's states split over L = min(width, 8) lanes of a "
           "warp, when (sequences x channels x L) reaches this many threads "
           "(0: always, where the state width allows); otherwise chunked">,
    Option<"expertGemmGroupedRows", "expert-gemm-grouped-rows", "int64_t",
           /*default=*/"64",
           "Expert GEMM: with more (token, slot) rows than this, the rows "
           "are grouped by expert and each thread computes 8 rows of one "
           "expert (0: always grouped)">,
    Option<"expertGemmTensorCores", "expert-gemm-tensor-cores", "bool",
           /*default=*/"false",
           "Expert GEMM: the grouped rows of int8 or bf16 experts (K a "
           "multiple of 64) run on tensor cores (nvvm.mma.sync, bf16 "
           "operands: the inputs rounded to bf16, f32 accumulation); "
           "NVIDIA GPUs only (sm_80 and later)">,
    Option<"attentionTensorCores", "attention-tensor-cores", "bool",
           /*default=*/"false",
           "Cached attention: a call of attention-mma-min-tokens tokens or "
           "more runs as flash attention on tensor cores (nvvm.mma.sync, "
           "bf16 operands: queries, keys, values and softmax weights "
           "rounded to bf16, f32 accumulation; a head dimension that is a "
           "multiple of 16, heads per kv head dividing 16); NVIDIA GPUs "
           "only (sm_80 and later)">,
    Option<"attentionMmaMinTokens", "attention-mma-min-tokens", "int64_t",
           /*default=*/"1",
           "Cached attention with attention-tensor-cores: the fewest tokens "
           "of a call that run on tensor cores (fewer: the split form on "
           "CUDA cores)">,
    Option<"emulateMma", "emulate-mma", "bool",
           /*default=*/"false",
           "Test aid: emulate the tensor-core kernels' warps (each register "
           "set one vector of every lane's registers, mma.sync as the PTX "
           "ISA defines it, shuffles as reads of the other lane's element) "
           "so that they run on CPUs">,
    Option<"emulateWarps", "emulate-warps", "bool",
           /*default=*/"false",
           "Test aid: the kernels whose warps add by shuffles (the wide "
           "RMSNorm, the expert GEMM's lane form at 32 lanes) run each warp "
           "as one iteration whose lanes take their turns, their shuffles "
           "as sums in lane order, so that they run on CPUs">,
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::LLVM::LLVMDialect",
                           "::mlir::NVVM::NVVMDialect",
                           "::mlir::gpu::GPUDialect",
                           "::mlir::linalg::LinalgDialect",
                           "::mlir::tensor::TensorDialect",
                           "::mlir::bufferization::BufferizationDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::vector::VectorDialect"];
}

def JambaGpuLibraryGemmsPass
    : Pass<"jamba-gpu-library-gemms", "ModuleOp"> {
  let summary = "Lower dense jamba.linear ops to the runtime's cuBLAS GEMM";
  let description = [{
    Every `jamba.linear` whose weight is an f32 or bf16 function argument
    (no scale), with f32 input and result, becomes a call of the runtime's
    cuBLAS GEMM: the input is copied (an elementwise kernel) into a fresh
    contiguous tensor of the weight's element type, input, weight and a
    fresh f32 output buffer are collapsed to 2-D memrefs `[M, K]`, `[N, K]`,
    `[M, N]`, and the host calls `jamba_rt_cuda_gemm_f32` or
    `jamba_rt_cuda_gemm_bf16` (declared private with
    `llvm.emit_c_interface`: the runtime defines
    `_mlir_ciface_jamba_rt_cuda_gemm_*`, docs/Runtime.md). A bias is added by
    a following elementwise op. Other linears (int8 weights with scales,
    weights that are not arguments) are left to the generated kernels.

    A call of at most `gemv-rows` rows (M, known at run time) runs a
    generated kernel instead, one warp per output (`linear_gemv`): a
    decode step's few rows are a matrix-vector product that only has to
    read the weight once, which cuBLAS's GEMMs do at a lower rate. The
    call is skipped then (an `scf.if` on the host) and the kernel has no
    rows otherwise (no launch).
  }];
  let options = [
    Option<"gemvRows", "gemv-rows", "int64_t", /*default=*/"2",
           "Linears of at most this many rows run the generated GEMV "
           "kernel instead of cuBLAS (0: all on cuBLAS)">,
    Option<"emulateWarps", "emulate-warps", "bool", /*default=*/"false",
           "The GEMV kernel's warps run their lanes in turn (a test aid: "
           "the nests then run on a CPU)">,
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::bufferization::BufferizationDialect",
                           "::mlir::func::FuncDialect",
                           "::mlir::gpu::GPUDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::vector::VectorDialect",
                           "::mlir::linalg::LinalgDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::tensor::TensorDialect"];
}

def JambaParallelCopiesToLoopsPass
    : Pass<"jamba-parallel-copies-to-loops", "func::FuncOp"> {
  let summary = "Turn scf.forall into scf.parallel and the memref.copy ops "
                "inside parallel loops into loops";
  let description = [{
    Every `scf.forall` becomes an `scf.parallel` (keeping its `jamba.kernel`
    name). Then a `memref.copy` inside an `scf.parallel` (after
    bufferization, the row copies of jamba-gpu-kernels' cache append)
    becomes a nest of `scf.for` loops of element loads and stores: inside a
    GPU kernel there is no memcpy to call, and on the CPU a strided copy
    would call `memrefCopy`, which the artifacts do not link. The stores
    carry the enclosing loop's `jamba.kernel` name. Copies outside parallel
    loops are left alone.
  }];
  let dependentDialects = ["::mlir::memref::MemRefDialect",
                           "::mlir::scf::SCFDialect"];
}

def JambaGpuFuseElementwisePass
    : Pass<"jamba-gpu-fuse-elementwise", "func::FuncOp"> {
  let summary = "Fuse chains of elementwise linalg.generic ops (one kernel "
                "each on a GPU) into one";
  let description = [{
    An elementwise `linalg.generic` (all loops parallel) whose result only
    another elementwise `linalg.generic` in the same block reads, through a
    permutation, is fused into that reader (upstream's
    `fuseElementwiseOps`, nothing else of its pattern set; so nothing is
    computed twice). A generic whose init (`outs`) is a parallel generic's
    result its payload never reads gets an empty init first
    (convert-elementwise-to-linalg passes the input as the init): every `linalg.generic` becomes one GPU
    kernel, and a decode step is many small kernels. The chains this
    catches: an activation and the conversion of its result to a cuBLAS
    GEMM's bf16 input (jamba-gpu-library-gemms), SwiGLU and that
    conversion, a gate and its conversion. The values are the same: the
    fused body runs the same scalar ops in the same order per element.
  }];
  let dependentDialects = ["::mlir::linalg::LinalgDialect",
                           "::mlir::tensor::TensorDialect"];
}

def JambaGpuReductionsInnermostPass
    : Pass<"jamba-gpu-reductions-innermost", "func::FuncOp"> {
  let summary = "Make the reduction loops of every linalg.generic its "
                "innermost ones";
  let description = [{
    Permutes the loops of each `linalg.generic` that has a parallel loop
    inside a reduction loop so that its parallel loops come first (in their
    order) and its reductions last (`linalg::interchangeGenericOp`).
    `convert-linalg-to-parallel-loops` then makes one parallel loop over all
    the parallel dimensions with the reductions sequential inside each
    iteration, instead of a parallel loop nested in a sequential one inside
    the outer parallel loop, which `jamba-gpu-map-loops` leaves to one
    thread per outer iteration. The MoE's sum over the top-k slots
    ([tokens, k, hidden] -> [tokens, hidden]) was one thread per token
    adding k x hidden values; it becomes one thread per output element.
    Each output element still sums its reduction in the same order.
  }];
  let dependentDialects = ["::mlir::linalg::LinalgDialect"];
}

def JambaGpuFuseLoopsPass : Pass<"jamba-gpu-fuse-loops", "func::FuncOp"> {
  let summary = "Fuse adjacent parallel loops over the same iteration "
                "space where no element is touched by two different "
                "iterations (one kernel launch instead of several)";
  let description = [{
    Two outermost `scf.parallel` loops of one block, with nothing between
    them but ops without regions that touch no memory except to allocate
    (views, index arithmetic, the second loop's output buffer), the same bounds
    and steps, no reductions and no nested parallel loop, become one loop
    whose iteration runs the first body and then the second, when every
    buffer one writes and the other touches is touched by both only at each
    iteration's own element (a memref.load or memref.store of the buffer
    itself at exactly the loop's induction variables). Buffers are compared
    by their root
    (through view-like ops to an allocation or a memref argument of the
    function; the compiler's stage functions write only their states, each
    its own allocation, and their outputs, arena regions the memory plan
    keeps apart from every value live at the same time); a loop with
    an effect on anything else, or with an op of unknown effects, is left
    alone. Iteration i of the merged loop then does to element i of a
    shared buffer what the two loops did, in their order, and no other
    iteration touches it. The fused loop is named after both (`a_and_b`, or `a` when
    they share a name).

    On a decode step this merges the Mamba dt/B/C norms (one launch instead
    of three), the key and value cache appends (one instead of two) and the
    MoE output's zeroing, sum over the top-k slots and residual add (one
    instead of three).
  }];
  let dependentDialects = ["::mlir::scf::SCFDialect"];
}

def JambaGpuMapLoopsPass : Pass<"jamba-gpu-map-loops", "func::FuncOp"> {
  let summary = "Map every outermost parallel loop onto GPU blocks and "
                "threads";
  let description = [{
    Prepares bufferized host functions for `convert-parallel-loops-to-gpu`:

    - a `memref.copy` outside any parallel loop becomes an elementwise
      `scf.parallel` copy (a kernel), since a host memcpy cannot read
      device memory;
    - every outermost `scf.parallel` has all its dimensions collapsed into
      one, which is tiled by `block-size` (`scf.if` guards the tail) and
      mapped: tiles to `block_x`, iterations within a tile to `thread_x`.

    A parallel loop with reductions is an error, and so is a nest holding a
    warp-collective op (`nvvm.mma.sync`) unless each warp is 32 iterations
    of one index of its outer dimensions: its innermost dimension a static
    multiple of 32 from 0 by 1 (the collapse keeps it fastest) and
    `block-size` a multiple of 32.
  }];
  let options = [
    Option<"blockSize", "block-size", "int64_t", /*default=*/"256",
           "Threads per block, in [1, 1024]">,
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::gpu::GPUDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::scf::SCFDialect"];
}

def JambaGpuHostMemoryPass : Pass<"jamba-gpu-host-memory", "ModuleOp"> {
  let summary = "Allocate host functions' buffers on the device and check "
                "that host code never touches buffer contents";
  let description = [{
    After kernel outlining, in every `func.func`: `memref.alloc` becomes
    `gpu.alloc` and `memref.dealloc` becomes `gpu.dealloc` (made
    stream-ordered by `gpu-async-region`). Every buffer a host function
    sees is device memory, so a `memref.load`, `memref.store`,
    `memref.copy`, `memref.alloca`, `scf.parallel`, vector, linalg, tensor,
    bufferization or jamba op left on the host is an error naming it.
  }];
  let dependentDialects = ["::mlir::gpu::GPUDialect"];
}

def JambaGpuFastMathPass
    : Pass<"jamba-gpu-fast-math", "::mlir::gpu::GPUModuleOp"> {
  let summary = "f32 exp2, rsqrt, sqrt and division in kernels as NVVM "
                "approximations that flush subnormals";
  let description = [{
    In a `gpu.module`, before `convert-gpu-to-nvvm`: `math.exp2`,
    `math.rsqrt`, `math.sqrt` and `arith.divf` on f32 scalars become calls
    of the NVVM intrinsics `ex2.approx.ftz.f32`, `rsqrt.approx.ftz.f32`,
    `sqrt.approx.ftz.f32` and `div.full.ftz.f32`, and `1 / sqrt(x)` one
    `rsqrt.approx.ftz.f32`. libdevice's exp2f, rsqrtf and sqrtf (what
    `convert-gpu-to-nvvm` calls; sqrtf is the approximation under the NVVM
    target's settings) use the same approximations, but without
    flush-to-zero: on sm_90 ptxas wraps each in three instructions of
    subnormal handling (4 SASS instructions instead of 1). A division was
    LLVM's IEEE `div.rn.f32`: about 8 instructions and a slow path of about
    100 per kernel; `div.full.ftz` is 4 to 6, at most 2 ulp from the
    rounded quotient over the full range. The selective scan spends one
    exp2 per state and step, so these are most of its instructions.

    What changes numerically: subnormal inputs and results become zero (a
    decay below 2^-126 is 0; RMSNorm's epsilon keeps its mean square
    normal), and a quotient may be 2 ulp off. Vector and non-f32 operands
    are left to libdevice.

    Before:

    ```mlir
    %d = math.exp2 %x : f32
    %q = arith.divf %a, %b : f32
    ```

    After:

    ```mlir
    %d = llvm.call_intrinsic "llvm.nvvm.ex2.approx.ftz.f32"(%x) : (f32) -> f32
    %q = llvm.call_intrinsic "llvm.nvvm.div.full.ftz"(%a, %b)
        : (f32, f32) -> f32
    ```
  }];
  let dependentDialects = ["::mlir::LLVM::LLVMDialect"];
}

def JambaGpuBytePermutesPass
    : Pass<"jamba-gpu-byte-permutes", "::mlir::gpu::GPUModuleOp"> {
  let summary = "Bytes widened into the low byte of a constant as one prmt "
                "each";
  let description = [{
    In a `gpu.module`, before `convert-gpu-to-nvvm`: an `arith.ori` of a
    vector of bytes zero-extended to i32 (`arith.extui` from
    `vector<N x i8>`, N a multiple of 4) and a splat constant whose low byte
    is 0 becomes one `nvvm.prmt` per byte: byte k of its 32-bit word in the
    low byte, bytes 1 to 3 of the constant above it (selector 0x765k). LLVM
    otherwise extracts each byte (`prmt` or `and`) and then ors the
    constant in: two instructions instead of one. Exact.

    The int8 expert GEMM widens its weights so (`widenInt8ByBits`,
    ExpertGemm.cpp): the byte with its sign bit flipped in the low byte of
    the f32 2^23, then 2^23 + 128 subtracted, instead of an int-to-float
    conversion per weight.

    Before:

    ```mlir
    %w = arith.extui %bytes : vector<4xi8> to vector<4xi32>
    %f = arith.ori %w, %c0x4B000000 : vector<4xi32>
    ```

    After:

    ```mlir
    %words = vector.bitcast %bytes : vector<4xi8> to vector<1xi32>
    %word = vector.extract %words[0] : i32 from vector<1xi32>
    // Selector, word, constant: byte 0 of %word below bytes 1-3 of %c.
    %b0 = nvvm.prmt <default> %sel0, %word, %c : i32
    ...
    %f = vector.from_elements %b0, %b1, %b2, %b3 : vector<4xi32>
    ```
  }];
  let dependentDialects = ["::mlir::NVVM::NVVMDialect",
                           "::mlir::vector::VectorDialect"];
}

def JambaStatesInPlacePass
    : Pass<"jamba-states-in-place", "func::FuncOp"> {
  let summary = "Turn the state results of bufferized entry points into "
                "in-place updates of their arguments";
  let description = [{
    Runs after one-shot bufferization. Every result carrying `jamba.state =
    "layers.N.<kind>"` is matched with the argument carrying the same name;
    the result is removed from the function, and unless the returned buffer
    already is the argument (bufferization wrote the state in place, as it
    does for the KV caches), a `linalg.copy` of it into the argument is
    inserted before the return. A returned buffer marked
    `jamba.state_over_old` (jamba-gpu-kernels' scan and conv, whose threads
    each read their row of the old state before any thread writes it)
    becomes the argument itself when the first op touching it is a parallel
    loop of the function's block (the marked kernel), nothing after that
    loop touches the argument and nothing frees the buffer: the kernel
    updates the state in place, with neither a buffer nor a copy. The entry point then updates its state
    buffers instead of returning new ones, and the deallocation pipeline no
    longer clones returned arguments (a copy of every KV cache per call).
    `jamba-compile` uses it; the packed wrapper knows these outputs are
    written in place.

    Before:

    ```mlir
    func.func @decode(%kc: memref<?x2x?x16xf32> {jamba.state = "layers.1.k_cache"},
                      %ss: memref<?x128x8xf32> {jamba.state = "layers.0.ssm_state"}, ...)
        -> (memref<?x1x128xf32>, memref<?x2x?x16xf32> {jamba.state = "layers.1.k_cache"},
            memref<?x128x8xf32> {jamba.state = "layers.0.ssm_state"}) {
      ...
      return %logits, %kc, %new_ss : ...
    }
    ```

    After:

    ```mlir
    func.func @decode(...) -> memref<?x1x128xf32> {
      ...
      linalg.copy ins(%new_ss : memref<?x128x8xf32>) outs(%ss : memref<?x128x8xf32>)
      return %logits : memref<?x1x128xf32>
    }
    ```
  }];
  let dependentDialects = ["::mlir::linalg::LinalgDialect"];
}

def JambaLowerCollectivesPass
    : Pass<"jamba-lower-collectives", "ModuleOp"> {
  let summary = "Lower jamba.all_reduce to calls of the runtime";
  let description = [{
    Each f32 `jamba.all_reduce` becomes: a copy of the input into a fresh
    buffer, a call of the runtime's all-reduce on that buffer (declared in
    the module), and the buffer as the result (`bufferization.to_tensor
    restrict writable`). With `runtime=cpu`, `jamba_rt_all_reduce_f32(float
    *data, int64_t count)` (MPI_Allreduce between ranks, nothing on one
    rank); with `runtime=cuda`, `jamba_rt_cuda_all_reduce_f32` on a device
    buffer (NCCL on the session's stream). A group sum (`group_size` > 0)
    calls the `..._group_f32(data, count, group_size)` variant. Other
    element types are refused.
  }];
  let options = [
    Option<"runtime", "runtime", "std::string", /*default=*/"\"cpu\"",
           "Whose all-reduce to call: cpu (MPI) or cuda (NCCL)">,
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::bufferization::BufferizationDialect",
                           "::mlir::func::FuncDialect",
                           "::mlir::LLVM::LLVMDialect",
                           "::mlir::linalg::LinalgDialect",
                           "::mlir::memref::MemRefDialect"];
}

def JambaApproximateMathPass
    : Pass<"jamba-approximate-math", "func::FuncOp"> {
  let summary = "Inline polynomial approximations of f32 math functions";
  let description = [{
    Applies MLIR's math polynomial approximations (exp, expm1, log, log1p,
    tanh, erf, ...) to f32 scalars and vectors, so that the CPU code needs no
    libm call and the loops vectorise (TOOLCHAIN.md, the selective scan
    figures: relative error about 2e-7). f64 math is left for
    `convert-math-to-llvm`.

    Before:

    ```mlir
    %e = math.exp %x : f32
    ```

    After:

    ```mlir
    // A range reduction, a degree-6 polynomial and an exponent bit-cast:
    %k = math.floor ... : f32
    ...
    %e = arith.bitcast %bits : i32 to f32
    ```
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::vector::VectorDialect"];
}

def JambaMergeIdenticalFunctionsPass
    : Pass<"jamba-merge-identical-functions", "::mlir::ModuleOp"> {
  let summary = "Keep one body of LLVM dialect functions that are identical "
                "but for their names";
  let description = [{
    Runs last in `jamba-cpu-lower-pipeline`, and in
    `jamba-gpu-lower-pipeline` on the host code after
    `jamba-gpu-merge-identical-modules`. Layers of the same kind and
    shapes lower to stage functions that differ only in their names (Jamba's
    32 layers are 4 kinds); LLVM then optimises and generates each copy,
    which is most of the time `jamba-compile` takes. This pass groups the
    defined `llvm.func`s by their printed form with the name left out
    (type, attributes, body; not locations) and keeps the first of each
    group. A private duplicate is erased and its uses refer to the kept
    function; a public one stays, for whoever looks it up by name, with a
    body that calls the kept function and returns its result. Functions
    that refer to themselves or to different symbols print differently and
    are left alone.

    Before:

    ```mlir
    llvm.func @prefill__layer3(%arg0: !llvm.ptr) { ...body... }
    llvm.func @prefill__layer5(%arg0: !llvm.ptr) { ...the same body... }
    ```

    After:

    ```mlir
    llvm.func @prefill__layer3(%arg0: !llvm.ptr) { ...body... }
    llvm.func @prefill__layer5(%arg0: !llvm.ptr) {
      llvm.call @prefill__layer3(%arg0) : (!llvm.ptr) -> ()
      llvm.return
    }
    ```
  }];
  let dependentDialects = ["::mlir::LLVM::LLVMDialect"];
  let statistics = [
    Statistic<"numMerged", "merged-functions",
              "Functions whose body became the kept copy's">
  ];
}

def JambaGpuMergeIdenticalModulesPass
    : Pass<"jamba-gpu-merge-identical-modules", "::mlir::ModuleOp"> {
  let summary = "Keep one of the gpu.modules that are identical but for "
                "the names they define";
  let description = [{
    Runs in `jamba-gpu-lower-pipeline` after `jamba-gpu-host-memory`, before
    the kernels are lowered to NVVM (it takes modules in any form: the
    comparison is of the printed IR). Each stage function launches its
    kernels from a module of its own (`<stage>_kernels`, see
    `jamba-gpu-host-memory`), so layers of the same kind and shapes give
    modules that differ only in their names and their kernels' names
    (`decode__layer3_kernel_7__expert_gemm_lanes`); the NVVM lowering,
    NVPTX and ptxas would otherwise process each copy. This pass groups the
    modules by their printed form with the module's name and the names of
    the symbols it defines replaced, in order, by placeholders
    (declarations such as libdevice's functions keep theirs), keeps the
    first of each group, points the launches of the others' kernels at the
    kept module's kernel in the same place, and erases the others.

    Only modules of one entry point merge (the text of their names before
    the first `__`: `prefill`, `decode`), so that the runtime's kernel
    profile by op (`<entry> <op>`) still tells a prefill's time from a
    decode step's; its table by kernel names the kept kernel for all the
    layers that launch it.

    Before:

    ```mlir
    gpu.module @decode__layer3_kernels {
      llvm.func @decode__layer3_kernel__rms_norm(...) attributes {gpu.kernel} { ...body... }
    }
    gpu.module @decode__layer5_kernels {
      llvm.func @decode__layer5_kernel__rms_norm(...) attributes {gpu.kernel} { ...the same body... }
    }
    ... gpu.launch_func @decode__layer5_kernels::@decode__layer5_kernel__rms_norm ...
    ```

    After:

    ```mlir
    gpu.module @decode__layer3_kernels {
      llvm.func @decode__layer3_kernel__rms_norm(...) attributes {gpu.kernel} { ...body... }
    }
    ... gpu.launch_func @decode__layer3_kernels::@decode__layer3_kernel__rms_norm ...
    ```
  }];
  let dependentDialects = ["::mlir::gpu::GPUDialect"];
  let statistics = [
    Statistic<"numMerged", "merged-modules",
              "gpu.modules erased for an identical kept one">
  ];
}

#endif // JAMBA_CONVERSION_PASSES_TD

//===- ExpertGemm.cpp - jamba.expert_gemm on GPUs -------------------------===//
//
// Part of jamba-mlir. The expert GEMM: the lane form, the token-grouped form
// and its tensor-core form (see lowerExpertGemm and groupedMmaTiles).
//
//===----------------------------------------------------------------------===//

#include "Kernels.h"

#include "../JambaToLinalg/LoweringUtils.h"
#include "KernelUtils.h"

#include "WarpCode.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::jamba;
using namespace mlir::jamba::gpukernels;
using lowering::convertScalar;
using lowering::floatConst;
using lowering::indexConst;

namespace {

/// Rows (token, slot) that still get every lane: the lanes per row are
/// min(maxLanes, kLaneRowBudget * maxLanes / rows), at least 1, so the
/// partial sums stay within kLaneRowBudget * maxLanes rows of N floats.
constexpr int64_t kLaneRowBudget = 64;

/// Rows of one expert a thread of the grouped expert GEMM computes.
constexpr int64_t kGroupRows = 8;

/// Bytes of one vector load of the weights (a 128-bit load on a GPU).
constexpr int64_t kWeightVectorBytes = 16;

/// Outputs n (weight rows) one thread of the lane form computes: each input
/// chunk it reads serves that many weight chunks, which are loaded together
/// (so many loads in flight).
constexpr int64_t kLaneOutputs = 4;

/// Bytes of one vector load of the weights in the grouped expert GEMM,
/// whose thread keeps kGroupRows rows of inputs in flight: with 8 bytes,
/// ptxas gives jamba-small's grouped kernel 136 registers, as many as the
/// scalar loop's 128 (16 bytes: 174).
constexpr int64_t kGroupedWeightVectorBytes = 8;

/// `width` elements of `memref` from `indices` (the last one running) as
/// one vector load that may assume `alignBytes`, widened to f32 (int8 by
/// widenInt8ByBits when `width` is a multiple of 4).
Value loadVectorF32(OpBuilder &b, Location loc, Value memref,
                    ValueRange indices, int64_t width, int64_t alignBytes) {
  Type elem = cast<MemRefType>(memref.getType()).getElementType();
  Value loaded = vector::LoadOp::create(b, loc, VectorType::get({width}, elem),
                                        memref, indices, /*nontemporal=*/false,
                                        llvm::MaybeAlign(alignBytes));
  if (elem.isInteger(8) && width % 4 == 0)
    return widenInt8ByBits(b, loc, loaded);
  return toF32(b, loc, loaded);
}

/// Rows of one expert per tile of the tensor-core expert GEMM: two m-blocks
/// of mma.sync.m16n8k16's M = 16. A warp converts its weight rows to bf16
/// and reads them from L2 once per tile, so a tile of 32 rows halves both
/// against tiles of 16 (the prefill's GEMMs ran at 88 TFLOP/s on the H200
/// with tiles of 16, 2026-11-30); the second block of a tile of an
/// expert's last few rows multiplies repeated rows that are not stored.
constexpr int64_t kMmaTileRows = 32;
/// The m-blocks of 16 rows of a tile.
constexpr int64_t kMmaBlocksM = kMmaTileRows / 16;
/// Outputs n one warp computes per tile: eight mma.sync n-blocks of 8. Each
/// warp reads its tile's inputs and its weight rows from L2; with four
/// blocks and tiles of 16 rows that was 96 bytes per k for 1024 FLOP, and
/// the prefill's GEMMs ran at 88 TFLOP/s on the H200 (2026-11-30), about
/// what the L2 delivers; eight blocks and tiles of 32 read 192 bytes per
/// 4096 FLOP (f32 inputs).
constexpr int64_t kMmaBlocksN = 8;
/// K per step of a warp's K loop: each of the 4 lanes of a fragment group
/// loads 16 consecutive k (one 16-byte load of int8 weights), which feed
/// four mma.sync of K = 16.
constexpr int64_t kMmaStepK = 64;

/// Whether the tensor-core form can compute `op`'s grouped rows: int8 or
/// bf16 weights with a static K that is a multiple of kMmaStepK, f32 or
/// bf16 inputs.
bool mmaEligible(ExpertGemmOp op) {
  auto w = cast<RankedTensorType>(op.getWeight().getType());
  Type wElem = w.getElementType(),
       xElem = getElementTypeOrSelf(op.getInput().getType());
  return (wElem.isInteger(8) || wElem.isBF16()) &&
         (xElem.isF32() || xElem.isBF16()) &&
         !ShapedType::isDynamic(w.getDimSize(2)) &&
         w.getDimSize(2) % kMmaStepK == 0;
}

/// What the grouped expert GEMM's tile nest reads and writes (buffers) and
/// the sizes it needs.
struct GroupedTiles {
  Value x, w, scale, routeWeights, result, sorted, tileStarts;
  Value experts, n, kDim;
  /// The lane form's alignment test (16-byte weight and input vectors).
  Value vectors;
  SmallVector<Value> rowDims;
  bool perSlot;
};

/// The tensor-core form of the grouped expert GEMM: one warp per (tile of
/// kMmaTileRows rows of one expert, kMmaBlocksN * 8 outputs n), as an
/// iteration per (tile, warp's n range, lane) whose lane dimension is
/// exactly the warp (jamba-gpu-map-loops keeps the innermost dimension
/// fastest and checks that blocks are whole warps). Per K step of
/// kMmaStepK the lane converts its inputs to bf16 (round to nearest even)
/// and its int8 weights to bf16 (exact) in registers, packs them two per
/// 32-bit register and issues 4 x kMmaBlocksM x kMmaBlocksN
/// `nvvm.mma.sync` m16n8k16 (bf16 operands, f32 accumulators): each weight
/// fragment serves the tile's kMmaBlocksM m-blocks. After the K loop the
/// scale, the routing weight and the store, each lane for its 4 x
/// kMmaBlocksM x kMmaBlocksN accumulators.
///
/// The fragments (PTX ISA, mma.m16n8k16 .bf16): lane = 4 g + q holds A at
/// rows g and g + 8 and B at column n = g, both at the logical k {2q, 2q + 1,
/// 2q + 8, 2q + 9}, and the accumulators at rows g, g + 8 and columns 2q,
/// 2q + 1; m-block m is the tile's rows 16 m .. 16 m + 15. A K step maps
/// logical k of mma s onto the memory k k0 + 16 q + 4 s
/// + {0, 1, 2, 3} (the owning lane's q fixes A and B the same way), so that
/// each lane reads 16 consecutive k of its two input rows and of its weight
/// rows (one 16-byte load of int8 weights) instead of pairs. Any bijection
/// of a step's k serves: the sum over k is the same.
///
/// `emulate` (a test aid: jamba-cpu-lower-pipeline{gpu-kernels=1
/// tensor-cores=1}): the same warp on a CPU (WarpCode), so that the
/// fragments, their packing and the epilogue run against the reference
/// interpreter.
void groupedMmaTiles(
    OpBuilder &b, Location loc, const GroupedTiles &g, Value maxTiles,
    function_ref<std::tuple<Value, Value, Value>(OpBuilder &, Location, Value)>
        tileOf,
    bool emulate) {
  Type f32 = b.getF32Type(), i32 = b.getI32Type();
  Type wElem = cast<MemRefType>(g.w.getType()).getElementType();
  Type xElem = cast<MemRefType>(g.x.getType()).getElementType();
  const int64_t slices = kMmaStepK / 16;      // q = 0 .. 3
  const int64_t perLane = kMmaStepK / slices; // 16 k per lane
  const int64_t warpN = 8 * kMmaBlocksN;
  // A lane's input rows in the tile: grp + 8 h, h = 0 .. 2 kMmaBlocksM - 1
  // (m-block h / 2, fragment row grp or grp + 8).
  const int64_t laneInputRows = 2 * kMmaBlocksM;
  Value one = indexConst(b, loc, 1);
  Value warpsN = arith::DivUIOp::create(
      b, loc, addI(b, loc, g.n, indexConst(b, loc, warpN - 1)),
      indexConst(b, loc, warpN));
  SmallVector<Value> dims{maxTiles, warpsN};
  if (!emulate)
    dims.push_back(indexConst(b, loc, kWarpLanes));

  parallel(
      b, loc, "expert_gemm_mma", dims,
      [&](OpBuilder &pb, Location l, ValueRange iv) {
        Value t = iv[0], nWarp = iv[1];
        WarpCode warp(emulate ? Value() : iv[2]);
        Value allTiles = load(pb, l, g.tileStarts, {g.experts});
        // Uniform over the warp: every lane of it has the same tile.
        Value used = arith::CmpIOp::create(pb, l, arith::CmpIPredicate::ult, t,
                                           allTiles);
        scf::IfOp::create(pb, l, used, [&](OpBuilder &tb, Location tl) {
          auto c = [&](OpBuilder &cb, Location cl, int64_t v) {
            return indexConst(cb, cl, v);
          };
          Value e, first, count;
          std::tie(e, first, count) = tileOf(tb, tl, t);
          Value last = arith::SubIOp::create(tb, tl, count, one);
          Value nFirst = arith::MulIOp::create(tb, tl, nWarp, c(tb, tl, warpN));
          Value nLast = arith::SubIOp::create(tb, tl, g.n, one);

          // What lane 4 grp + q reads: its input rows grp + 8 h of the
          // tile (past the count the tile's last row again: read, not
          // stored) and its weight rows n = the warp's first + 8 j + grp
          // (clamped into [0, N - 1]: read, not stored).
          struct LaneRows {
            SmallVector<Value> rowIdx[laneInputRows], xIdx[laneInputRows], wRow;
          };
          auto laneRows = [&](OpBuilder &rb, Location rl, Value grp,
                              int64_t mBlocks) {
            LaneRows r;
            for (int64_t h = 0; h < 2 * mBlocks; ++h) {
              Value inTile = addI(rb, rl, grp, c(rb, rl, 8 * h));
              Value at = addI(rb, rl, first,
                              arith::MinUIOp::create(rb, rl, inTile, last));
              r.rowIdx[h] =
                  delinearize(rb, rl, load(rb, rl, g.sorted, {at}), g.rowDims);
              r.xIdx[h].assign(r.rowIdx[h].begin(),
                               g.perSlot ? r.rowIdx[h].end()
                                         : r.rowIdx[h].end() - 1);
            }
            for (int64_t j = 0; j < kMmaBlocksN; ++j)
              r.wRow.push_back(arith::MinUIOp::create(
                  rb, rl,
                  addI(rb, rl, nFirst, addI(rb, rl, c(rb, rl, 8 * j), grp)),
                  nLast));
            return r;
          };

          // One K step of the first `mBlocks` m-blocks: every lane's
          // fragments, A of m-block m and slice s (registers (row g, k
          // 2q..), (row g + 8), (row g, k 2q + 8..), (row g + 8): words 2s,
          // 2s, 2s + 1, 2s + 1 of its rows g, g + 8, g, g + 8 of the
          // m-block) and B of n-block j and slice s (words 2s and 2s + 1 of
          // weight row j), then mBlocks x kMmaBlocksN x slices mma.sync.
          // Fragment m slices + s is A, mBlocks slices + j slices + s is B;
          // accumulator block m kMmaBlocksN + j is m-block m, n-block j.
          auto step = [&](OpBuilder &kb, Location kl, Value k0,
                          ArrayRef<WarpCode::Regs> acc, int64_t wAlign,
                          int64_t xAlign, int64_t mBlocks) {
            const int64_t aFrags = mBlocks * slices;
            SmallVector<Type> fragTypes(aFrags + kMmaBlocksN * slices, i32);
            SmallVector<int64_t> fragCounts(aFrags, 4);
            fragCounts.append(kMmaBlocksN * slices, 2);
            SmallVector<WarpCode::Regs> frag = warp.eachLane(
                kb, kl, {}, fragTypes, fragCounts,
                [&](OpBuilder &lb, Location ll, Value lane,
                    ArrayRef<SmallVector<Value>>) {
                  Value grp = divC(lb, ll, lane, 4), q = remC(lb, ll, lane, 4);
                  LaneRows r = laneRows(lb, ll, grp, mBlocks);
                  Value k = addI(lb, ll, k0, mulC(lb, ll, q, perLane));
                  SmallVector<Value> words[laneInputRows];
                  for (int64_t h = 0; h < 2 * mBlocks; ++h) {
                    SmallVector<Value> at(r.xIdx[h]);
                    at.push_back(k);
                    words[h] = packedBF16(lb, ll, g.x, at, perLane, xAlign);
                  }
                  SmallVector<SmallVector<Value>> regs;
                  for (int64_t m = 0; m < mBlocks; ++m) {
                    ArrayRef<Value> lo = words[2 * m], hi = words[2 * m + 1];
                    for (int64_t s = 0; s < slices; ++s)
                      regs.push_back(
                          {lo[2 * s], hi[2 * s], lo[2 * s + 1], hi[2 * s + 1]});
                  }
                  for (int64_t j = 0; j < kMmaBlocksN; ++j) {
                    SmallVector<Value> w = packedBF16(
                        lb, ll, g.w, {e, r.wRow[j], k}, perLane, wAlign);
                    for (int64_t s = 0; s < slices; ++s)
                      regs.push_back({w[2 * s], w[2 * s + 1]});
                  }
                  return regs;
                });
            SmallVector<WarpCode::Regs> next(acc);
            for (int64_t j = 0; j < kMmaBlocksN; ++j)
              for (int64_t s = 0; s < slices; ++s)
                for (int64_t m = 0; m < mBlocks; ++m) {
                  WarpCode::Regs &sum = next[m * kMmaBlocksN + j];
                  sum = warp.mma(kb, kl, frag[m * slices + s],
                                 frag[aFrags + j * slices + s], sum);
                }
            return next;
          };

          // The K loops: kMmaBlocksM x kMmaBlocksN blocks of 4 f32
          // accumulators, with aligned 16-byte vectors (the lane form's
          // test) or element loads. A tile of at most 16 rows (an expert's
          // last rows, and about every tile of a decode step, whose experts
          // get a few rows each) runs a loop of the first m-block alone:
          // the second's rows are not stored, and would cost a decode step
          // a quarter more instructions per weight byte. Its accumulators
          // stay zero.
          const int64_t accBlocks = kMmaBlocksM * kMmaBlocksN;
          SmallVector<WarpCode::Regs> zeros;
          for (int64_t a = 0; a < accBlocks; ++a)
            zeros.push_back(warp.splat(tb, tl, f32, 4, 0.0));
          SmallVector<int64_t> accCounts(accBlocks, 4);
          auto kLoop = [&](OpBuilder &sb, Location sl, int64_t wAlign,
                           int64_t xAlign, int64_t mBlocks) {
            ArrayRef<WarpCode::Regs> init(zeros);
            init = init.take_front(mBlocks * kMmaBlocksN);
            ArrayRef<int64_t> counts(accCounts);
            counts = counts.take_front(init.size());
            SmallVector<Value> sums(
                scf::ForOp::create(
                    sb, sl, c(sb, sl, 0), g.kDim, c(sb, sl, kMmaStepK),
                    WarpCode::flatten(init),
                    [&](OpBuilder &kb, Location kl, Value k0, ValueRange args) {
                      scf::YieldOp::create(
                          kb, kl,
                          WarpCode::flatten(step(kb, kl, k0,
                                                 warp.unflatten(args, counts),
                                                 wAlign, xAlign, mBlocks)));
                    })
                    .getResults());
            llvm::append_range(
                sums,
                WarpCode::flatten(ArrayRef(zeros).drop_front(init.size())));
            return sums;
          };
          const int64_t wBytes = wElem.getIntOrFloatBitWidth() / 8,
                        xBytes = xElem.getIntOrFloatBitWidth() / 8;
          SmallVector<Type> accTypes;
          for (Value v : WarpCode::flatten(zeros))
            accTypes.push_back(v.getType());
          Value oneBlock =
              arith::CmpIOp::create(tb, tl, arith::CmpIPredicate::ule, count,
                                    c(tb, tl, kMmaTileRows / kMmaBlocksM));
          // if (vectors) { if (oneBlock) ... else ... } else { ... }
          auto branches =
              [&](OpBuilder &ib, Location il, Value cond,
                  function_ref<SmallVector<Value>(OpBuilder &)> then,
                  function_ref<SmallVector<Value>(OpBuilder &)> otherwise) {
                auto op = scf::IfOp::create(ib, il, accTypes, cond,
                                            /*withElseRegion=*/true);
                OpBuilder::InsertionGuard guard(ib);
                ib.setInsertionPointToStart(op.thenBlock());
                scf::YieldOp::create(ib, il, then(ib));
                ib.setInsertionPointToStart(op.elseBlock());
                scf::YieldOp::create(ib, il, otherwise(ib));
                return SmallVector<Value>(op.getResults());
              };
          auto byRows = [&](OpBuilder &ib, int64_t wAlign, int64_t xAlign) {
            return branches(
                ib, tl, oneBlock,
                [&](OpBuilder &lb) { return kLoop(lb, tl, wAlign, xAlign, 1); },
                [&](OpBuilder &lb) {
                  return kLoop(lb, tl, wAlign, xAlign, kMmaBlocksM);
                });
          };
          SmallVector<Value> sums = branches(
              tb, tl, g.vectors,
              [&](OpBuilder &ib) { return byRows(ib, 16, 16); },
              [&](OpBuilder &ib) { return byRows(ib, wBytes, xBytes); });
          // The epilogue: accumulator i of block (m, j) is row 16 m + g + 8
          // (i / 2), column n = the warp's first + 8 j + 2 q + i % 2.
          warp.eachLane(
              tb, tl, warp.unflatten(sums, accCounts), {}, {},
              [&](OpBuilder &lb, Location ll, Value lane,
                  ArrayRef<SmallVector<Value>> acc) {
                Value grp = divC(lb, ll, lane, 4), q = remC(lb, ll, lane, 4);
                LaneRows own = laneRows(lb, ll, grp, kMmaBlocksM);
                for (int64_t a = 0; a < accBlocks; ++a)
                  for (int64_t i = 0; i < 4; ++i) {
                    const int64_t j = a % kMmaBlocksN,
                                  h = 2 * (a / kMmaBlocksN) + i / 2;
                    Value nn = addI(lb, ll, nFirst,
                                    addI(lb, ll, c(lb, ll, 8 * j + i % 2),
                                         mulC(lb, ll, q, 2)));
                    Value rowInTile = addI(lb, ll, grp, c(lb, ll, 8 * h));
                    Value store = arith::AndIOp::create(
                        lb, ll,
                        arith::CmpIOp::create(lb, ll, arith::CmpIPredicate::ult,
                                              rowInTile, count),
                        arith::CmpIOp::create(lb, ll, arith::CmpIPredicate::ult,
                                              nn, g.n));
                    scf::IfOp::create(
                        lb, ll, store, [&](OpBuilder &sb, Location sl) {
                          Value v = acc[a][i];
                          if (g.scale)
                            v = mulF(sb, sl, v,
                                     loadF32(sb, sl, g.scale, {e, nn}));
                          if (g.routeWeights)
                            v = mulF(
                                sb, sl, v,
                                loadF32(sb, sl, g.routeWeights, own.rowIdx[h]));
                          SmallVector<Value> out(own.rowIdx[h]);
                          out.push_back(nn);
                          storeF32(sb, sl, v, g.result, out);
                          scf::YieldOp::create(sb, sl);
                        });
                  }
                return SmallVector<SmallVector<Value>>{};
              });
          scf::YieldOp::create(tb, tl);
        });
      });
}

} // namespace

/// Two parallel nests, for the few rows of a decode step (a GEMV per routed
/// slot, where the weights are the traffic):
///
/// 1. one iteration per (group of kLaneOutputs outputs n, row, lane), a
///    row being one (token, slot): the lane sums w[e, n, k] x[k] over its
///    share of the row for each n of its group into its partial sums,
///    reading each input chunk once for the group's weight rows (whose
///    loads are so many in flight). Consecutive iterations (GPU threads)
///    are consecutive lanes of the same weight rows, so a warp's loads of
///    the weights are contiguous (the plain form gives each thread its own
///    row n, K apart); the rows are inside n, so the rows routed to one
///    expert read its weight rows at about the same time (from the cache
///    after the first: at batch 32 each expert serves about 4 of the 64
///    rows, which the row-major order re-read from memory). When the
///    weight rows can be read as aligned 16-byte vectors and the inputs as
///    aligned vectors of as many elements (alignedForVectors and K a
///    multiple of V: one uniform test per call), the lane's share is the
///    V-element chunks starting at k = V lane, V (lane + L), ... (V = 16
///    int8, 8 bf16 or 4 f32 weights), each one vector load widened to f32
///    and accumulated elementwise, the V sums added at the end: a warp
///    reads 512 contiguous bytes of each int8 weight row per step instead
///    of 32. Otherwise the share is k = lane, lane + L, ..., one element per
///    step;
/// 2. one iteration per (row, n): the L partial sums in lane order, then
///    the epilogue: scale[e, n] (int8), the routing weight, and zero for an
///    expert outside this rank's range (expert parallelism).
///
/// With L = 32 (up to kLaneRowBudget rows: a decode step) a row's lanes
/// are one warp instead: a third nest, one iteration per (group, row,
/// lane) with a static 32 lanes, computes the same shares, five butterfly
/// shuffles per sum add them in registers and lane 0 applies the epilogue;
/// the first two nests then have no rows (no launch), so there are no
/// partial sums to write and read back. The epilogue nest took 9 us per
/// GEMM of the 57.5 at decode batch 1 on the H200 (Jamba-1.5-Mini,
/// 2026-11-30). `options.emulateWarps` (a test aid): one iteration per
/// (group, row) runs the warp's lanes in turn and adds their sums in lane
/// order.
///
/// L is chosen at run time from the row count (all `options.maxLanes` up to
/// kLaneRowBudget rows, fewer beyond, 1 for a long prefill). Integer
/// weights convert to f32 in the loop (sitofp), f32 accumulation.
LogicalResult gpukernels::lowerExpertGemm(IRRewriter &rw, ExpertGemmOp op,
                                          const ExpertGemmOptions &options) {
  // f64 operands (input, result, weight or routing weights) are left to
  // convert-jamba-to-linalg.
  Type weightElem = getElementTypeOrSelf(op.getWeight().getType());
  if (!isF32Compatible(op.getInput().getType()) ||
      !isF32Compatible(op.getType()) ||
      (!weightElem.isInteger(8) &&
       !isF32Compatible(op.getWeight().getType())) ||
      (op.getRouteWeights() &&
       !isF32Compatible(op.getRouteWeights().getType())))
    return failure();
  const bool mma = options.tensorCores && mmaEligible(op);
  Location loc = op.getLoc();
  rw.setInsertionPoint(op);
  OpBuilder &b = rw;
  auto buf = [&](Value t) { return lowering::readOnlyBuffer(b, loc, t); };
  Value x = buf(op.getInput()), w = buf(op.getWeight()),
        scale = buf(op.getScale()), indices = buf(op.getIndices()),
        routeWeights = buf(op.getRouteWeights()),
        offset = buf(op.getExpertOffset());
  auto resultType = cast<RankedTensorType>(op.getType());
  const int64_t q = cast<MemRefType>(indices.getType()).getRank();
  const bool perSlot = cast<MemRefType>(x.getType()).getRank() == q + 1;
  Type f32 = b.getF32Type();
  Value zero = indexConst(b, loc, 0), one = indexConst(b, loc, 1);

  // Rows: the product of the indices' dims (tokens x slots).
  SmallVector<Value> rowDims;
  Value rows = one;
  for (int64_t i = 0; i < q; ++i) {
    rowDims.push_back(dim(b, loc, indices, i));
    rows = arith::MulIOp::create(b, loc, rows, rowDims.back());
  }
  Value experts = dim(b, loc, w, 0), n = dim(b, loc, w, 1),
        kDim = dim(b, loc, w, 2);
  SmallVector<Value> resultSizes(rowDims);
  resultSizes.push_back(n);
  Value result = lowering::allocBuffer(b, loc, resultType, resultSizes);
  Value lanes = arith::MaxUIOp::create(
      b, loc, one,
      arith::MinUIOp::create(
          b, loc, indexConst(b, loc, options.maxLanes),
          arith::DivUIOp::create(
              b, loc, indexConst(b, loc, kLaneRowBudget * options.maxLanes),
              arith::MaxUIOp::create(b, loc, rows, one))));
  const int64_t dyn = ShapedType::kDynamic;
  // More rows than `groupedRows`: the grouped nests (step 3) run and the
  // lane nests have no rows (no launch); otherwise the grouped nests have
  // none.
  Value grouped =
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ugt, rows,
                            indexConst(b, loc, options.groupedRows));
  Value laneRows = arith::SelectOp::create(b, loc, grouped, zero, rows);
  // The slot's expert as this rank's weight row (unclamped).
  auto localExpert = [&](OpBuilder &nb, Location nl, ArrayRef<Value> idx) {
    Value e = loadIndex(nb, nl, indices, idx);
    if (!offset)
      return e;
    return arith::SubIOp::create(nb, nl, e, loadIndex(nb, nl, offset, {zero}))
        .getResult();
  };
  // Clamped into [0, E - 1] (never read outside the weight).
  auto clamped = [&](OpBuilder &nb, Location nl, Value e) {
    Value last = arith::SubIOp::create(nb, nl, experts, one);
    Value low = arith::MaxSIOp::create(nb, nl, e, zero);
    return arith::MinSIOp::create(nb, nl, low, last).getResult();
  };

  // 1. The lanes' partial sums.
  Type wElem = cast<MemRefType>(w.getType()).getElementType(),
       xElem = cast<MemRefType>(x.getType()).getElementType();
  // V weights per 16-byte load; their V inputs are V * (input bytes), read
  // with the alignment of that size up to 16 bytes.
  const int64_t wBytes = wElem.getIntOrFloatBitWidth() / 8,
                xBytes = xElem.getIntOrFloatBitWidth() / 8;
  const int64_t v = kWeightVectorBytes / wBytes;
  const int64_t xAlign = std::min(kWeightVectorBytes, v * xBytes);
  Value vectors =
      vectorChunksUsable(b, loc, w, kWeightVectorBytes, x, xAlign, kDim, v);
  // Each thread's kLaneOutputs outputs n0 + u (n0 = kLaneOutputs g; past N
  // the last row is read again, not stored).
  Value groups =
      divC(b, loc, addI(b, loc, n, indexConst(b, loc, kLaneOutputs - 1)),
           kLaneOutputs);
  // A whole warp per row (L = 32, a decode step): the warps' nest gets the
  // rows, adds the lanes' sums by shuffles and applies the epilogue; the
  // lanes' nest and the epilogue nest get none (and no partial sums).
  Value warp = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, lanes,
                                     indexConst(b, loc, kWarpLanes));
  Value partialRows = arith::SelectOp::create(b, loc, warp, zero, laneRows);
  Value warpRows = arith::SelectOp::create(b, loc, warp, laneRows, zero);
  Value partial =
      lowering::allocBuffer(b, loc, RankedTensorType::get({dyn, dyn, dyn}, f32),
                            {partialRows, n, lanes});

  // Row r's output nn from the sum v of its lanes: the scale, the routing
  // weight, zero for another rank's expert.
  auto epilogue = [&](OpBuilder &pb, Location l, Value r, Value nn, Value v) {
    SmallVector<Value> idx = delinearize(pb, l, r, rowDims);
    Value local = localExpert(pb, l, idx);
    Value e = clamped(pb, l, local);
    if (scale)
      v = mulF(pb, l, v, loadF32(pb, l, scale, {e, nn}));
    if (routeWeights)
      v = mulF(pb, l, v, loadF32(pb, l, routeWeights, idx));
    if (offset) {
      Value inRange = arith::AndIOp::create(
          pb, l,
          arith::CmpIOp::create(pb, l, arith::CmpIPredicate::sge, local, zero),
          arith::CmpIOp::create(pb, l, arith::CmpIPredicate::slt, local,
                                experts));
      v = arith::SelectOp::create(pb, l, inRange, v,
                                  floatConst(pb, l, f32, 0.0));
    }
    SmallVector<Value> out(idx);
    out.push_back(nn);
    storeF32(pb, l, v, result, out);
  };
  // Group g's outputs n0 + u.
  auto outputsOf = [&](OpBuilder &pb, Location l, Value g) {
    SmallVector<Value> outs;
    for (int64_t u = 0; u < kLaneOutputs; ++u)
      outs.push_back(
          addI(pb, l, mulC(pb, l, g, kLaneOutputs), indexConst(pb, l, u)));
    return outs;
  };
  // `body(u)` for each output u of `outs` inside N.
  auto eachInRange =
      [&](OpBuilder &pb, Location l, ArrayRef<Value> outs,
          function_ref<void(OpBuilder &, Location, int64_t)> body) {
        for (int64_t u = 0; u < kLaneOutputs; ++u) {
          Value inRange = arith::CmpIOp::create(
              pb, l, arith::CmpIPredicate::ult, outs[u], n);
          scf::IfOp::create(pb, l, inRange, [&](OpBuilder &tb, Location tl) {
            body(tb, tl, u);
            scf::YieldOp::create(tb, tl);
          });
        }
      };
  // Lane `lane`'s sums of row r for group g's outputs.
  auto laneSums = [&](OpBuilder &pb, Location l, Value g, Value r, Value lane,
                      Value laneCount) -> SmallVector<Value> {
    SmallVector<Value> idx = delinearize(pb, l, r, rowDims);
    Value e = clamped(pb, l, localExpert(pb, l, idx));
    SmallVector<Value> xIdx(idx.begin(), perSlot ? idx.end() : idx.end() - 1);
    auto xAt = [&](Value k) {
      SmallVector<Value> at(xIdx);
      at.push_back(k);
      return at;
    };
    Value lastN = arith::SubIOp::create(pb, l, n, one);
    SmallVector<Value> rowsN;
    for (Value o : outputsOf(pb, l, g))
      rowsN.push_back(arith::MinUIOp::create(pb, l, o, lastN));
    // The lane's share of K for the kLaneOutputs rows: `width` elements
    // from k = first, first + step, ..., the inputs read once for all
    // rows, into accumulators of `width` f32 lanes.
    auto share = [&](OpBuilder &sb, Location sl, Value first, Value step,
                     int64_t width) -> SmallVector<Value> {
      Type accType = f32;
      if (width > 1)
        accType = VectorType::get({width}, f32);
      SmallVector<Value> inits(kLaneOutputs, floatConst(sb, sl, accType, 0.0));
      auto sum = scf::ForOp::create(
          sb, sl, first, kDim, step, inits,
          [&](OpBuilder &kb, Location kl, Value k, ValueRange acc) {
            SmallVector<Value> ws;
            for (Value nn : rowsN)
              ws.push_back(width == 1
                               ? loadF32(kb, kl, w, {e, nn, k})
                               : loadVectorF32(kb, kl, w, {e, nn, k}, width,
                                               kWeightVectorBytes));
            Value xv = width == 1
                           ? loadF32(kb, kl, x, xAt(k))
                           : loadVectorF32(kb, kl, x, xAt(k), width, xAlign);
            SmallVector<Value> next;
            for (int64_t u = 0; u < kLaneOutputs; ++u)
              next.push_back(math::FmaOp::create(kb, kl, xv, ws[u], acc[u]));
            scf::YieldOp::create(kb, kl, next);
          });
      SmallVector<Value> sums;
      for (Value acc : sum.getResults())
        sums.push_back(width == 1 ? acc
                                  : vector::ReductionOp::create(
                                        sb, sl, vector::CombiningKind::ADD, acc)
                                        .getResult());
      return sums;
    };
    SmallVector<Type> sumTypes(kLaneOutputs, f32);
    auto ifOp =
        scf::IfOp::create(pb, l, sumTypes, vectors, /*withElseRegion=*/true);
    {
      OpBuilder tb = ifOp.getThenBodyBuilder();
      Value vElems = indexConst(tb, l, v);
      Value first = arith::MulIOp::create(tb, l, lane, vElems);
      Value step = arith::MulIOp::create(tb, l, laneCount, vElems);
      scf::YieldOp::create(tb, l, share(tb, l, first, step, v));
    }
    {
      OpBuilder eb = ifOp.getElseBodyBuilder();
      scf::YieldOp::create(eb, l, share(eb, l, lane, laneCount, 1));
    }
    return SmallVector<Value>(ifOp.getResults());
  };
  // The partial sums of lane `lane`, for the epilogue nest.
  auto storePartials = [&](OpBuilder &pb, Location l, Value g, Value r,
                           Value lane, ArrayRef<Value> sums) {
    SmallVector<Value> outs = outputsOf(pb, l, g);
    eachInRange(pb, l, outs, [&](OpBuilder &tb, Location tl, int64_t u) {
      memref::StoreOp::create(tb, tl, sums[u], partial,
                              ValueRange{r, outs[u], lane});
    });
  };

  parallel(b, loc, "expert_gemm_lanes", {groups, partialRows, lanes},
           [&](OpBuilder &pb, Location l, ValueRange iv) {
             storePartials(pb, l, iv[0], iv[1], iv[2],
                           laneSums(pb, l, iv[0], iv[1], iv[2], lanes));
           });
  // The warps: a static 32 lanes innermost (jamba-gpu-map-loops requires it
  // of a nest that shuffles).
  Value warpLanes = indexConst(b, loc, kWarpLanes);
  auto warpEpilogue = [&](OpBuilder &pb, Location l, Value g, Value r,
                          ArrayRef<Value> sums) {
    SmallVector<Value> outs = outputsOf(pb, l, g);
    eachInRange(pb, l, outs, [&](OpBuilder &tb, Location tl, int64_t u) {
      epilogue(tb, tl, r, outs[u], sums[u]);
    });
  };
  if (options.emulateWarps) {
    // The warp's lanes in turn, their sums added in lane order.
    parallel(
        b, loc, "expert_gemm_warps", {groups, warpRows},
        [&](OpBuilder &pb, Location l, ValueRange iv) {
          SmallVector<Value> inits(kLaneOutputs, floatConst(pb, l, f32, 0.0));
          auto sums =
              loop(pb, l, zero, warpLanes, inits,
                   [&](OpBuilder &nb, Location nl, Value lane, ValueRange acc) {
                     SmallVector<Value> s =
                         laneSums(nb, nl, iv[0], iv[1], lane, warpLanes);
                     SmallVector<Value> next;
                     for (int64_t u = 0; u < kLaneOutputs; ++u)
                       next.push_back(addF(nb, nl, acc[u], s[u]));
                     return next;
                   });
          warpEpilogue(pb, l, iv[0], iv[1],
                       SmallVector<Value>(sums.getResults()));
        });
  } else {
    parallel(b, loc, "expert_gemm_warps", {groups, warpRows, warpLanes},
             [&](OpBuilder &pb, Location l, ValueRange iv) {
               Value g = iv[0], r = iv[1], lane = iv[2];
               // Five butterfly shuffles per sum: every lane gets the row's
               // sums; lane 0 applies the epilogue.
               SmallVector<Value> total;
               for (Value s : laneSums(pb, l, g, r, lane, warpLanes))
                 total.push_back(butterflySum(pb, l, s));
               Value first = arith::CmpIOp::create(
                   pb, l, arith::CmpIPredicate::eq, lane, zero);
               scf::IfOp::create(pb, l, first, [&](OpBuilder &fb, Location fl) {
                 warpEpilogue(fb, fl, g, r, total);
                 scf::YieldOp::create(fb, fl);
               });
             });
  }

  // 2. The lanes in order, then the epilogue (L < 32).
  parallel(
      b, loc, "expert_gemm_epilogue", {partialRows, n},
      [&](OpBuilder &pb, Location l, ValueRange iv) {
        Value r = iv[0], nn = iv[1];
        Value v =
            loop(pb, l, zero, lanes, {floatConst(pb, l, f32, 0.0)},
                 [&](OpBuilder &nb, Location nl, Value lane, ValueRange acc) {
                   Value p = load(nb, nl, partial, {r, nn, lane});
                   return SmallVector<Value>{addF(nb, nl, acc[0], p)};
                 })
                .getResult(0);
        epilogue(pb, l, r, nn, v);
      });

  // 3. The grouped form: the rows sorted by expert (a counting sort: each
  // expert's count, their prefix sums, each expert's rows in order), cut
  // into tiles of kGroupRows rows of one expert; one iteration per (tile,
  // n) reads each weight w[e, n, k] once for the tile's rows (the lane form
  // re-reads it per row), consecutive threads sharing the tile's inputs;
  // under the lane form's alignment test, kGroupedWeightVectorBytes of
  // weights per load.
  auto when = [&](Value v) -> Value {
    return arith::SelectOp::create(b, loc, grouped, v, zero);
  };
  Type index = b.getIndexType();
  auto indexBuffer = [&](Value size) {
    return lowering::allocBuffer(b, loc, RankedTensorType::get({dyn}, index),
                                 {size});
  };
  Value groupExperts = when(experts);
  Value expertsPlusOne = arith::AddIOp::create(b, loc, experts, one);
  Value counts = indexBuffer(groupExperts),
        starts = indexBuffer(when(expertsPlusOne)),
        tileStarts = indexBuffer(when(expertsPlusOne)),
        sorted = indexBuffer(when(rows));
  const int64_t groupRows = mma ? kMmaTileRows : kGroupRows;
  Value tileRows = indexConst(b, loc, groupRows);
  // Row r's expert; without expert parallelism clamped into [0, E - 1], as
  // the lane form reads it, so that every row is in a tile.
  auto isExpert = [&](OpBuilder &nb, Location nl, Value r, Value e) {
    Value local = localExpert(nb, nl, delinearize(nb, nl, r, rowDims));
    if (!offset)
      local = clamped(nb, nl, local);
    return arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::eq, local, e)
        .getResult();
  };
  // 3a and 3c run a warp per expert, over the rows 32 at a time (lane l
  // takes row 32 c + l of chunk c): a thread per expert walking every row
  // in turn took 14.7 ms (count and sort) of the Jamba-1.5-Mini stack's
  // 177 ms profiled 8192-token prefill on the H200 (2026-11-30), each step
  // a dependent load.
  Type i32 = b.getI32Type();
  Value laneCount = indexConst(b, loc, kWarpLanes);
  Value rowChunks = arith::CeilDivUIOp::create(b, loc, rows, laneCount);
  Value lastRow = arith::SubIOp::create(
      b, loc, arith::MaxUIOp::create(b, loc, rows, one), one);
  auto perWarp = [&](Value n) {
    SmallVector<Value> dims{n};
    if (!options.emulateWarps)
      dims.push_back(laneCount);
    return dims;
  };
  // Lane l's flag for row 32 chunk + l: 1 if it is a row of expert e, 0
  // otherwise and past the rows.
  auto flagsOf = [&](const WarpCode &warp, OpBuilder &kb, Location kl,
                     Value chunk, Value e) {
    return warp.eachLane(
        kb, kl, i32, 1, 1,
        [&](OpBuilder &lb, Location ll, Value lane,
            ArrayRef<SmallVector<Value>>) {
          Value r = addI(lb, ll, mulC(lb, ll, chunk, kWarpLanes), lane);
          Value inRows =
              arith::CmpIOp::create(lb, ll, arith::CmpIPredicate::ult, r, rows);
          Value match = arith::AndIOp::create(
              lb, ll, inRows,
              isExpert(lb, ll, arith::MinUIOp::create(lb, ll, r, lastRow), e));
          return SmallVector<SmallVector<Value>>{
              {arith::ExtUIOp::create(lb, ll, i32, match)}};
        })[0];
  };
  // a + b, lane by lane (one i32 register each).
  auto addLanes = [&](const WarpCode &warp, OpBuilder &kb, Location kl,
                      const WarpCode::Regs &x, const WarpCode::Regs &y) {
    return warp.eachLane(
        kb, kl, {x, y}, {i32}, {1},
        [&](OpBuilder &lb, Location ll, Value,
            ArrayRef<SmallVector<Value>> in) {
          return SmallVector<SmallVector<Value>>{
              {arith::AddIOp::create(lb, ll, in[0][0], in[1][0])}};
        })[0];
  };
  auto zeros = [&](const WarpCode &warp, OpBuilder &kb, Location kl) {
    return warp.eachLane(
        kb, kl, i32, 1, 1,
        [&](OpBuilder &lb, Location ll, Value, ArrayRef<SmallVector<Value>>) {
          return SmallVector<SmallVector<Value>>{{i32Const(lb, ll, 0)}};
        })[0];
  };
  // 3a. Each expert's rows: each lane counts its rows, five butterfly
  // shuffles add the lanes' counts, lane 0 stores the sum.
  parallel(
      b, loc, "expert_gemm_count", perWarp(groupExperts),
      [&](OpBuilder &pb, Location l, ValueRange iv) {
        Value e = iv[0];
        WarpCode warp(options.emulateWarps ? Value() : iv[1]);
        auto counted = loop(
            pb, l, zero, rowChunks, WarpCode::flatten({zeros(warp, pb, l)}),
            [&](OpBuilder &kb, Location kl, Value chunk, ValueRange acc) {
              return WarpCode::flatten(
                  {addLanes(warp, kb, kl, warp.unflatten(acc, {1})[0],
                            flagsOf(warp, kb, kl, chunk, e))});
            });
        WarpCode::Regs sum = warp.unflatten(counted.getResults(), {1})[0];
        for (int64_t offset = kWarpLanes / 2; offset >= 1; offset /= 2)
          sum = addLanes(warp, pb, l, sum, warp.shuffleXor(pb, l, sum, offset));
        warp.eachLane(
            pb, l, {sum}, {}, {},
            [&](OpBuilder &lb, Location ll, Value lane,
                ArrayRef<SmallVector<Value>> in) {
              Value first = arith::CmpIOp::create(
                  lb, ll, arith::CmpIPredicate::eq, lane, zero);
              scf::IfOp::create(lb, ll, first, [&](OpBuilder &sb, Location sl) {
                memref::StoreOp::create(
                    sb, sl,
                    arith::IndexCastUIOp::create(sb, sl, sb.getIndexType(),
                                                 in[0][0]),
                    counts, e);
                scf::YieldOp::create(sb, sl);
              });
              return SmallVector<SmallVector<Value>>{};
            });
      });
  // 3b. Where each expert's rows and tiles start (one iteration).
  // (E + 1 iterations of which the first works: a loop with a trip count
  // of one would be folded into the host code.)
  parallel(b, loc, "expert_gemm_offsets", {when(expertsPlusOne)},
           [&](OpBuilder &ob, Location l, ValueRange iv) {
             Value isFirst = arith::CmpIOp::create(
                 ob, l, arith::CmpIPredicate::eq, iv[0], indexConst(ob, l, 0));
             auto ifFirst = scf::IfOp::create(ob, l, isFirst);
             OpBuilder pb = OpBuilder::atBlockBegin(ifFirst.thenBlock());
             Value r1 = indexConst(pb, l, groupRows - 1);
             auto ends =
                 loop(pb, l, zero, experts, {zero, zero},
                      [&](OpBuilder &nb, Location nl, Value e, ValueRange at) {
                        memref::StoreOp::create(nb, nl, at[0], starts, e);
                        memref::StoreOp::create(nb, nl, at[1], tileStarts, e);
                        Value c = load(nb, nl, counts, {e});
                        Value tiles = arith::DivUIOp::create(
                            nb, nl, addI(nb, nl, c, r1), tileRows);
                        return SmallVector<Value>{addI(nb, nl, at[0], c),
                                                  addI(nb, nl, at[1], tiles)};
                      });
             memref::StoreOp::create(pb, l, ends.getResult(0), starts, experts);
             memref::StoreOp::create(pb, l, ends.getResult(1), tileStarts,
                                     experts);
           });
  // 3c. Each expert's rows, in row order, at its start: per chunk, an
  // inclusive prefix sum of the lanes' flags (five index shuffles, lane l
  // adding lane l - 2^i's sum) places each matching row after the
  // chunk's matching rows before it, and the chunk's total (lane 31's sum)
  // moves the expert's next position on.
  parallel(
      b, loc, "expert_gemm_sort", perWarp(groupExperts),
      [&](OpBuilder &pb, Location l, ValueRange iv) {
        Value e = iv[0];
        WarpCode warp(options.emulateWarps ? Value() : iv[1]);
        WarpCode::Regs first =
            warp.eachLane(pb, l, index, 1, 1,
                          [&](OpBuilder &lb, Location ll, Value,
                              ArrayRef<SmallVector<Value>>) {
                            return SmallVector<SmallVector<Value>>{
                                {load(lb, ll, starts, {e})}};
                          })[0];
        loop(pb, l, zero, rowChunks, WarpCode::flatten({first}),
             [&](OpBuilder &kb, Location kl, Value chunk, ValueRange args) {
               WarpCode::Regs at = warp.unflatten(args, {1})[0];
               WarpCode::Regs flags = flagsOf(warp, kb, kl, chunk, e);
               WarpCode::Regs sums = flags;
               for (int64_t offset = 1; offset < kWarpLanes; offset *= 2) {
                 // Lanes below `offset` read themselves and add nothing.
                 auto has = [&](OpBuilder &lb, Location ll, Value lane) {
                   return arith::CmpIOp::create(lb, ll,
                                                arith::CmpIPredicate::uge, lane,
                                                indexConst(lb, ll, offset))
                       .getResult();
                 };
                 WarpCode::Regs before = warp.shuffleFrom(
                     kb, kl, sums, [&](OpBuilder &sb, Location sl, Value lane) {
                       return Value(arith::SelectOp::create(
                           sb, sl, has(sb, sl, lane),
                           arith::SubIOp::create(sb, sl, lane,
                                                 indexConst(sb, sl, offset)),
                           lane));
                     });
                 sums = warp.eachLane(
                     kb, kl, {sums, before}, {i32}, {1},
                     [&](OpBuilder &lb, Location ll, Value lane,
                         ArrayRef<SmallVector<Value>> in) {
                       Value added =
                           arith::AddIOp::create(lb, ll, in[0][0], in[1][0]);
                       return SmallVector<SmallVector<Value>>{
                           {arith::SelectOp::create(lb, ll, has(lb, ll, lane),
                                                    added, in[0][0])}};
                     })[0];
               }
               WarpCode::Regs total = warp.shuffleFrom(
                   kb, kl, sums, [&](OpBuilder &sb, Location sl, Value) {
                     return indexConst(sb, sl, kWarpLanes - 1);
                   });
               SmallVector<WarpCode::Regs> next = warp.eachLane(
                   kb, kl, {flags, sums, at, total}, {index}, {1},
                   [&](OpBuilder &lb, Location ll, Value lane,
                       ArrayRef<SmallVector<Value>> in) {
                     auto asIndex = [&](Value v) -> Value {
                       return arith::IndexCastUIOp::create(
                           lb, ll, lb.getIndexType(), v);
                     };
                     Value match =
                         arith::CmpIOp::create(lb, ll, arith::CmpIPredicate::ne,
                                               in[0][0], i32Const(lb, ll, 0));
                     // A matching row's sum counts itself: its position
                     // is at + sum - 1.
                     Value pos = arith::SubIOp::create(
                         lb, ll, addI(lb, ll, in[2][0], asIndex(in[1][0])),
                         one);
                     scf::IfOp::create(
                         lb, ll, match, [&](OpBuilder &sb, Location sl) {
                           memref::StoreOp::create(
                               sb, sl,
                               addI(sb, sl, mulC(sb, sl, chunk, kWarpLanes),
                                    lane),
                               sorted, pos);
                           scf::YieldOp::create(sb, sl);
                         });
                     return SmallVector<SmallVector<Value>>{
                         {addI(lb, ll, in[2][0], asIndex(in[3][0]))}};
                   });
               return WarpCode::flatten({next[0]});
             });
      });
  // 3d. One iteration per (tile, n); at most ceil(rows / R) + E tiles.
  Value maxTiles =
      addI(b, loc,
           arith::DivUIOp::create(
               b, loc, addI(b, loc, rows, indexConst(b, loc, groupRows - 1)),
               tileRows),
           experts);
  // Tile t's expert, first position in `sorted` and row count: the expert
  // is the number of experts whose tiles end at or before t.
  auto tileOf = [&](OpBuilder &tb, Location tl,
                    Value t) -> std::tuple<Value, Value, Value> {
    Value e = loop(tb, tl, zero, experts, {zero},
                   [&](OpBuilder &nb, Location nl, Value x, ValueRange acc) {
                     Value end = load(nb, nl, tileStarts,
                                      {addI(nb, nl, x, indexConst(nb, nl, 1))});
                     Value before = arith::CmpIOp::create(
                         nb, nl, arith::CmpIPredicate::ule, end, t);
                     Value add = arith::SelectOp::create(nb, nl, before,
                                                         indexConst(nb, nl, 1),
                                                         indexConst(nb, nl, 0));
                     return SmallVector<Value>{addI(nb, nl, acc[0], add)};
                   })
                  .getResult(0);
    Value first = addI(
        tb, tl, load(tb, tl, starts, {e}),
        arith::MulIOp::create(
            tb, tl,
            arith::SubIOp::create(tb, tl, t, load(tb, tl, tileStarts, {e})),
            tileRows));
    Value end = load(tb, tl, starts, {addI(tb, tl, e, indexConst(tb, tl, 1))});
    Value count = arith::MinUIOp::create(
        tb, tl, tileRows, arith::SubIOp::create(tb, tl, end, first));
    return {e, first, count};
  };
  if (mma) {
    // f32 inputs as bf16 first, rounded as the tiles would round them:
    // every warp of a tile's n range reads the tile's input rows (N / 64
    // warps per row: 224 for Jamba's gate and up projections), so reading
    // them in bf16 halves the input bytes the tiles read from L2, which are
    // twice their int8 weight bytes in f32, and takes the conversions out
    // of the K loop, for one pass over the inputs.
    Value tileInputs = x, tileVectors = vectors;
    if (xElem.isF32()) {
      auto xType = cast<MemRefType>(x.getType());
      SmallVector<Value> xDims, lead;
      Value xRows = one;
      for (int64_t d = 0; d < xType.getRank(); ++d) {
        xDims.push_back(dim(b, loc, x, d));
        if (d + 1 < xType.getRank()) {
          lead.push_back(xDims.back());
          xRows = arith::MulIOp::create(b, loc, xRows, xDims.back());
        }
      }
      // No rows without the grouped form (a decode step's few rows).
      SmallVector<Value> copyDims(xDims);
      copyDims.front() = when(copyDims.front());
      tileInputs = lowering::allocBuffer(
          b, loc, RankedTensorType::get(xType.getShape(), b.getBF16Type()),
          copyDims);
      parallel(b, loc, "expert_gemm_inputs_bf16", {when(xRows), kDim},
               [&](OpBuilder &pb, Location l, ValueRange iv) {
                 SmallVector<Value> at = delinearize(pb, l, iv[0], lead);
                 at.push_back(iv[1]);
                 Value v = load(pb, l, x, at);
                 memref::StoreOp::create(
                     pb, l, arith::TruncFOp::create(pb, l, pb.getBF16Type(), v),
                     tileInputs, at);
               });
      tileVectors = vectorChunksUsable(b, loc, w, kWeightVectorBytes,
                                       tileInputs, kWeightVectorBytes, kDim, v);
    }
    GroupedTiles tiles{
        tileInputs, w, scale, routeWeights, result,  sorted, tileStarts,
        experts,    n, kDim,  tileVectors,  rowDims, perSlot};
    groupedMmaTiles(b, loc, tiles, when(maxTiles), tileOf, options.emulateMma);
  } else
    parallel(
        b, loc, "expert_gemm_grouped", {when(maxTiles), n},
        [&](OpBuilder &pb, Location l, ValueRange iv) {
          Value t = iv[0], nn = iv[1];
          Value allTiles = load(pb, l, tileStarts, {experts});
          Value used = arith::CmpIOp::create(pb, l, arith::CmpIPredicate::ult,
                                             t, allTiles);
          scf::IfOp::create(pb, l, used, [&](OpBuilder &tb, Location tl) {
            Value e, first, count;
            std::tie(e, first, count) = tileOf(tb, tl, t);
            Value last =
                arith::SubIOp::create(tb, tl, count, indexConst(tb, tl, 1));
            // The tile's rows (past its count: its last row again, not stored).
            SmallVector<SmallVector<Value>> idx, xIdx;
            for (int64_t i = 0; i < kGroupRows; ++i) {
              Value at = addI(
                  tb, tl, first,
                  arith::MinUIOp::create(tb, tl, indexConst(tb, tl, i), last));
              idx.push_back(
                  delinearize(tb, tl, load(tb, tl, sorted, {at}), rowDims));
              xIdx.emplace_back(idx.back().begin(), perSlot
                                                        ? idx.back().end()
                                                        : idx.back().end() - 1);
            }
            // Each row's sum over k in order (the reference's order). With
            // aligned vectors (the lane form's test, which implies the
            // alignment of these narrower ones), V/2 weights (8 bytes) and
            // V/2 inputs per row are one load each per step, their products
            // added element by element in k order.
            SmallVector<Value> inits(kGroupRows, floatConst(tb, tl, f32, 0.0));
            auto sumRows = [&](OpBuilder &sb, Location sl, int64_t width) {
              Value step = indexConst(sb, sl, width);
              return scf::ForOp::create(
                         sb, sl, zero, kDim, step, inits,
                         [&](OpBuilder &kb, Location kl, Value k,
                             ValueRange acc) {
                           auto xAt = [&](int64_t i) {
                             SmallVector<Value> at(xIdx[i]);
                             at.push_back(k);
                             return at;
                           };
                           SmallVector<Value> next(acc);
                           if (width == 1) {
                             Value wv = loadF32(kb, kl, w, {e, nn, k});
                             for (int64_t i = 0; i < kGroupRows; ++i)
                               next[i] =
                                   addF(kb, kl, next[i],
                                        mulF(kb, kl, loadF32(kb, kl, x, xAt(i)),
                                             wv));
                           } else {
                             Value wv = loadVectorF32(kb, kl, w, {e, nn, k},
                                                      width, width * wBytes);
                             for (int64_t i = 0; i < kGroupRows; ++i) {
                               Value xv =
                                   loadVectorF32(kb, kl, x, xAt(i), width,
                                                 std::min(kWeightVectorBytes,
                                                          width * xBytes));
                               for (int64_t j = 0; j < width; ++j)
                                 next[i] = addF(kb, kl, next[i],
                                                mulF(kb, kl,
                                                     vector::ExtractOp::create(
                                                         kb, kl, xv, j),
                                                     vector::ExtractOp::create(
                                                         kb, kl, wv, j)));
                             }
                           }
                           scf::YieldOp::create(kb, kl, next);
                         })
                  .getResults();
            };
            SmallVector<Type> sumTypes(kGroupRows, f32);
            auto sums = scf::IfOp::create(tb, tl, sumTypes, vectors,
                                          /*withElseRegion=*/true);
            {
              OpBuilder::InsertionGuard guard(tb);
              tb.setInsertionPointToStart(sums.thenBlock());
              scf::YieldOp::create(
                  tb, tl, sumRows(tb, tl, kGroupedWeightVectorBytes / wBytes));
              tb.setInsertionPointToStart(sums.elseBlock());
              scf::YieldOp::create(tb, tl, sumRows(tb, tl, 1));
            }
            for (int64_t i = 0; i < kGroupRows; ++i) {
              Value inTile =
                  arith::CmpIOp::create(tb, tl, arith::CmpIPredicate::ult,
                                        indexConst(tb, tl, i), count);
              scf::IfOp::create(
                  tb, tl, inTile, [&](OpBuilder &sb, Location sl) {
                    Value v = sums.getResult(i);
                    if (scale)
                      v = mulF(sb, sl, v, loadF32(sb, sl, scale, {e, nn}));
                    if (routeWeights)
                      v = mulF(sb, sl, v,
                               loadF32(sb, sl, routeWeights, idx[i]));
                    SmallVector<Value> out(idx[i]);
                    out.push_back(nn);
                    storeF32(sb, sl, v, result, out);
                    scf::YieldOp::create(sb, sl);
                  });
            }
            scf::YieldOp::create(tb, tl);
          });
        });
  // 3e. Expert parallelism: the rows of other ranks' experts are in no
  // tile; they are zero.
  if (offset)
    parallel(
        b, loc, "expert_gemm_other_ranks", {when(rows), n},
        [&](OpBuilder &pb, Location l, ValueRange iv) {
          SmallVector<Value> idx = delinearize(pb, l, iv[0], rowDims);
          Value local = localExpert(pb, l, idx);
          Value outside = arith::OrIOp::create(
              pb, l,
              arith::CmpIOp::create(pb, l, arith::CmpIPredicate::slt, local,
                                    zero),
              arith::CmpIOp::create(pb, l, arith::CmpIPredicate::sge, local,
                                    experts));
          scf::IfOp::create(pb, l, outside, [&](OpBuilder &tb, Location tl) {
            SmallVector<Value> out(idx);
            out.push_back(iv[1]);
            storeF32(tb, tl, floatConst(tb, tl, f32, 0.0), result, out);
            scf::YieldOp::create(tb, tl);
          });
        });
  rw.replaceOp(op, lowering::bufferResult(b, loc, resultType, result));
  return success();
}

//===- CachedAttention.cpp - jamba.cached_attention on GPUs ---------------===//
//
// Part of jamba-mlir. Attention over the KV cache: the split-KV form and flash
// attention on tensor cores (see lowerCachedAttention and attentionMmaTiles).
//
//===----------------------------------------------------------------------===//

#include "Kernels.h"

#include "../JambaToLinalg/LoweringUtils.h"
#include "KernelUtils.h"

#include "WarpCode.h"

#include "jamba/Conversion/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::jamba;
using namespace mlir::jamba::gpukernels;
using lowering::convertScalar;
using lowering::floatConst;
using lowering::indexConst;

namespace {

/// The cache after appending the new rows: an `scf.forall` over
/// (b, g, s, c) whose shared output is the cache (so bufferization updates
/// it in place), each iteration inserting the element x[b, s, g * hd + c]
/// at cache[b, g, len[b] + s, c] (`tensor.parallel_insert_slice`; a row
/// past the capacity inserts nothing: its slice has 0 rows). A call touches
/// only its new rows; the position is read inside the loop (on the device).
/// One element per iteration, the channel innermost: consecutive threads
/// copy consecutive elements (a warp reads and writes 32 contiguous ones),
/// and a decode step's append is hd threads per kv head rather than one
/// thread copying a row element by element (one dependent load and store
/// per element: 19.8 us for Jamba-1.5-Mini's 8 kv heads of 128 on the
/// H200, 2026-11-30). After bufferization the loop is an `scf.parallel`
/// whose body copies one element (`jamba-parallel-copies-to-loops`).
Value appendToCache(OpBuilder &b, Location loc, Value cache, Value rows,
                    Value lens, int64_t headDim) {
  auto type = cast<RankedTensorType>(cache.getType());
  Value batch = tensor::DimOp::create(b, loc, rows, 0);
  Value seq = tensor::DimOp::create(b, loc, rows, 1);
  Value groups = tensor::DimOp::create(b, loc, cache, 1);
  Value capacity = tensor::DimOp::create(b, loc, cache, 2);
  Value channels = indexConst(b, loc, headDim);
  auto forall = scf::ForallOp::create(
      b, loc, getAsOpFoldResult(ValueRange{batch, groups, seq, channels}),
      ValueRange{cache}, std::nullopt,
      [&](OpBuilder &fb, Location fl, ValueRange args) {
        Value bi = args[0], g = args[1], s = args[2], c = args[3],
              out = args[4];
        Value len = arith::IndexCastOp::create(
            fb, fl, fb.getIndexType(),
            tensor::ExtractOp::create(fb, fl, lens, ValueRange{bi}));
        Value p = addI(fb, fl, len, s);
        Value inside = arith::CmpIOp::create(fb, fl, arith::CmpIPredicate::ult,
                                             p, capacity);
        Value n = arith::SelectOp::create(fb, fl, inside, indexConst(fb, fl, 1),
                                          indexConst(fb, fl, 0));
        Value at = arith::MinUIOp::create(fb, fl, p, capacity);
        Value col = addI(fb, fl, arith::MulIOp::create(fb, fl, g, channels), c);
        OpFoldResult one = fb.getIndexAttr(1);
        // The rows and the cache have one element type (the caller checks).
        Value element = tensor::ExtractSliceOp::create(
            fb, fl,
            RankedTensorType::get({ShapedType::kDynamic, 1},
                                  type.getElementType()),
            rows, ArrayRef<OpFoldResult>{bi, s, col},
            ArrayRef<OpFoldResult>{one, n, one},
            ArrayRef<OpFoldResult>{one, one, one});
        auto inParallel = scf::InParallelOp::create(fb, fl);
        OpBuilder::InsertionGuard guard(fb);
        fb.setInsertionPointToStart(inParallel.getBody());
        tensor::ParallelInsertSliceOp::create(
            fb, fl, element, out, ArrayRef<OpFoldResult>{bi, g, at, c},
            ArrayRef<OpFoldResult>{one, one, n, one},
            ArrayRef<OpFoldResult>{one, one, one, one});
      });
  forall->setAttr(kKernelNameAttr, b.getStringAttr("cache_append"));
  return forall.getResult(0);
}

/// Keys an attention split scores before it updates its partial output row
/// (read and written once per block instead of once per key).
constexpr int64_t kAttentionKeyBlock = 8;

/// Query rows of a warp in the tensor-core attention: the M of m16n8k16.
constexpr int64_t kMmaQueryRows = 16;
/// Keys a warp takes per step: two n-blocks of 8 in Q Kᵀ, the K of P V.
constexpr int64_t kMmaKeyStep = 16;

/// What the tensor-core attention reads and writes (buffers) and its sizes.
struct AttentionTiles {
  Value q, kc, vc, lens;
  /// The split form's partial rows and (maximum, sum) pairs, which a call
  /// of more than one split writes (the combine nest finishes them).
  Value part, stats;
  Value batch, seq, capacity, tiles, splits;
  int64_t heads, kvHeads, headDim;
};

/// Flash attention on tensor cores: one warp per (sequence, kv head, tile
/// of kMmaQueryRows query rows, split) walks its split of the keys the
/// tile's last token sees, kMmaKeyStep at a time, with an online softmax
/// (running maximum and sum per query row) and its output rows in f32
/// registers; nothing is written until the end.
///
/// The rows of a tile are (token, head) pairs of one kv head's group of G
/// = heads / kvHeads query heads, token-major: row r is head kv G + r % G
/// of token t0 + r / G, 16 / G tokens per tile (G divides 16). The group's
/// heads read the same keys and values, so each is read once per tile for
/// all of them: a decode step (one token) reads the cache once per kv head,
/// not once per query head, in G of the 16 rows. The keys are cut into
/// `splits` ranges as the split form cuts them (many for a decode step,
/// one for a long prefill): with one split the warp divides its rows by
/// their sums and stores the output; with several it stores its partial
/// rows and their (maximum, sum) for the combine nest. Per step:
///
/// 1. S = Q Kᵀ: 2 n-blocks of 8 keys, each hd / 16 mma.sync m16n8k16 on
///    bf16 operands (Q and K rounded to bf16; Q's fragments are loaded once).
///    Lane 4 g + q reads Q rows g and g + 8 and key rows g and 8 + g of the
///    step, each at the channels q hd / 4 .. (q + 1) hd / 4: the logical k
///    of slice s maps onto the channels q hd / 4 + 4 s + {0, 1, 2, 3}, for
///    Q and K alike (a bijection of the channels: the dot products are the
///    same), so that each lane reads contiguous vectors.
/// 2. The scores scaled by 1 / sqrt(hd), masked (a key after the query's
///    position, or past the capacity, scores -inf), each row's maximum over
///    the step: the lane's 4 scores of the row, then its quad (two
///    butterfly shuffles: the row's 16 keys are spread over 4 lanes).
/// 3. The running maximum m' = max(m, step maximum); the output row and the
///    lane's part of the row sum rescaled by exp(m - m') (0 while m is
///    -inf); P = exp(score - m') rounded to bf16 (a masked key weighs 0),
///    whose rounded values the sum adds, so that the weights the output sums
///    are the ones it is divided by.
/// 4. O += P V: the accumulators of S are, two n-blocks side by side, the A
///    fragment of an m16n8k16 over the step's 16 keys (no data movement);
///    hd / 8 n-blocks of channels. Lane 4 g + q reads the value rows of
///    keys 2 q, 2 q + 1, 2 q + 8, 2 q + 9 of the step at the channels g hd
///    / 8 .. (g + 1) hd / 8 (contiguous): n-block c's column n is channel
///    n hd / 8 + c.
///
/// At the end each row's sum over its quad, and each lane stores its
/// output elements (divided by the sum, or the partial row): accumulator i
/// of n-block c is row g + 8 (i / 2), channel (2 q + i % 2) hd / 8 + c. Rows
/// past the call's tokens (the last tile's) read the last token's queries
/// and are not stored; keys past the split read its last key (weight 0). A
/// row that sees no key of its split (a prefill's early token in a late
/// split) keeps maximum -inf and sum 0, which the combine skips.
///
/// `emulate`: the same steps run on a CPU (WarpCode).
void attentionMmaTiles(OpBuilder &b, Location loc, const AttentionTiles &a,
                       NarrowedResult &o, bool emulate) {
  Type f32 = b.getF32Type(), i32 = b.getI32Type(), bf16 = b.getBF16Type();
  const int64_t hd = a.headDim, perLaneK = hd / 4, slices = hd / 16,
                blocksV = hd / 8;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  const int64_t group = a.heads / a.kvHeads,
                tokensPerTile = kMmaQueryRows / group;
  SmallVector<Value> dims{a.batch, indexConst(b, loc, a.kvHeads), a.tiles,
                          a.splits};
  if (!emulate)
    dims.push_back(indexConst(b, loc, kWarpLanes));
  // Aligned 16-byte vectors, or element loads (as the expert GEMM).
  Value vectors = arith::AndIOp::create(
      b, loc, alignedForVectors(b, loc, a.q, 16),
      arith::AndIOp::create(b, loc, alignedForVectors(b, loc, a.kc, 16),
                            alignedForVectors(b, loc, a.vc, 16)));
  parallel(
      b, loc, "attention_mma", dims,
      [&](OpBuilder &pb, Location pl, ValueRange iv) {
        Value bi = iv[0], kvHead = iv[1], tile = iv[2], split = iv[3];
        WarpCode warp(emulate ? Value() : iv[4]);
        auto c = [](OpBuilder &cb, Location cl, int64_t v) {
          return indexConst(cb, cl, v);
        };
        Value t0 = mulC(pb, pl, tile, tokensPerTile);
        Value tokens =
            arith::MinUIOp::create(pb, pl, c(pb, pl, tokensPerTile),
                                   arith::SubIOp::create(pb, pl, a.seq, t0));
        Value lastToken = addI(
            pb, pl, t0, arith::SubIOp::create(pb, pl, tokens, c(pb, pl, 1)));
        // Position of the tile's first token; the keys its last token sees,
        // and this split's range of them [lo, hi).
        Value pos0 = addI(pb, pl, loadIndex(pb, pl, a.lens, {bi}), t0);
        Value keyEnd = arith::MinUIOp::create(
            pb, pl, addI(pb, pl, pos0, tokens), a.capacity);
        // Whole steps per split (a split past the keys is empty: sum 0).
        Value chunk = mulC(
            pb, pl,
            arith::CeilDivUIOp::create(
                pb, pl, arith::CeilDivUIOp::create(pb, pl, keyEnd, a.splits),
                c(pb, pl, kMmaKeyStep)),
            kMmaKeyStep);
        Value lo = arith::MinUIOp::create(
            pb, pl, arith::MulIOp::create(pb, pl, split, chunk), keyEnd);
        Value hi =
            arith::MinUIOp::create(pb, pl, addI(pb, pl, lo, chunk), keyEnd);
        Value lastKey = arith::SubIOp::create(pb, pl, hi, c(pb, pl, 1));
        // Row r (g or g + 8 of a lane): its token (past the call's in the
        // last tile) and head.
        auto tokenOf = [&](OpBuilder &rb, Location rl, Value r) {
          return addI(rb, rl, t0, divC(rb, rl, r, group));
        };
        auto headOf = [&](OpBuilder &rb, Location rl, Value r) {
          return addI(rb, rl, mulC(rb, rl, kvHead, group),
                      remC(rb, rl, r, group));
        };

        auto body = [&](OpBuilder &wb, Location wl, int64_t align) {
          // Q's fragments: slice s's registers (row g, k 2q..), (row g + 8),
          // (row g, k 2q + 8..), (row g + 8).
          SmallVector<WarpCode::Regs> qFrag = warp.eachLane(
              wb, wl, i32, slices, 4,
              [&](OpBuilder &lb, Location ll, Value lane,
                  ArrayRef<SmallVector<Value>>) {
                Value g = divC(lb, ll, lane, 4), q = remC(lb, ll, lane, 4);
                SmallVector<Value> words[2];
                for (int64_t r = 0; r < 2; ++r) {
                  Value row = addI(lb, ll, g, c(lb, ll, 8 * r));
                  Value token = arith::MinUIOp::create(
                      lb, ll, tokenOf(lb, ll, row), lastToken);
                  words[r] = packedBF16(
                      lb, ll, a.q,
                      {bi, token,
                       addI(lb, ll, mulC(lb, ll, headOf(lb, ll, row), hd),
                            mulC(lb, ll, q, perLaneK))},
                      perLaneK, align);
                }
                SmallVector<SmallVector<Value>> out;
                for (int64_t s = 0; s < slices; ++s)
                  out.push_back({words[0][2 * s], words[1][2 * s],
                                 words[0][2 * s + 1], words[1][2 * s + 1]});
                return out;
              });

          // The running state: the output's n-blocks, the rows' maximum and
          // the lane's part of their sums.
          SmallVector<WarpCode::Regs> state;
          for (int64_t blk = 0; blk < blocksV; ++blk)
            state.push_back(warp.splat(wb, wl, f32, 4, 0.0));
          state.push_back(warp.splat(wb, wl, f32, 2, -INFINITY));
          state.push_back(warp.splat(wb, wl, f32, 2, 0.0));
          SmallVector<int64_t> stateCounts(blocksV, 4);
          stateCounts.append({2, 2});

          auto keyLoop = scf::ForOp::create(
              wb, wl, lo, hi, c(wb, wl, kMmaKeyStep), WarpCode::flatten(state),
              [&](OpBuilder &kb, Location kl, Value k0, ValueRange args) {
                SmallVector<WarpCode::Regs> st =
                    warp.unflatten(args, stateCounts);
                ArrayRef<WarpCode::Regs> out(st.data(), blocksV);
                const WarpCode::Regs &m = st[blocksV], &l = st[blocksV + 1];
                auto key = [&](OpBuilder &lb, Location ll, Value offset) {
                  return arith::MinUIOp::create(
                      lb, ll, addI(lb, ll, k0, offset), lastKey);
                };
                // 1. K's fragments (n-block j, slice s) and S.
                SmallVector<WarpCode::Regs> kFrag = warp.eachLane(
                    kb, kl, i32, 2 * slices, 2,
                    [&](OpBuilder &lb, Location ll, Value lane,
                        ArrayRef<SmallVector<Value>>) {
                      Value g = divC(lb, ll, lane, 4),
                            q = remC(lb, ll, lane, 4);
                      SmallVector<SmallVector<Value>> res;
                      for (int64_t j = 0; j < 2; ++j) {
                        SmallVector<Value> words = packedBF16(
                            lb, ll, a.kc,
                            {bi, kvHead,
                             key(lb, ll, addI(lb, ll, g, c(lb, ll, 8 * j))),
                             mulC(lb, ll, q, perLaneK)},
                            perLaneK, align);
                        for (int64_t s = 0; s < slices; ++s)
                          res.push_back({words[2 * s], words[2 * s + 1]});
                      }
                      return res;
                    });
                WarpCode::Regs sBlocks[2];
                for (int64_t j = 0; j < 2; ++j) {
                  sBlocks[j] = warp.splat(kb, kl, f32, 4, 0.0);
                  for (int64_t s = 0; s < slices; ++s)
                    sBlocks[j] = warp.mma(kb, kl, qFrag[s],
                                          kFrag[j * slices + s], sBlocks[j]);
                }
                // 2. Scaled, masked scores and the lane's row maxima.
                SmallVector<WarpCode::Regs> scored = warp.eachLane(
                    kb, kl, {sBlocks[0], sBlocks[1]}, {f32, f32, f32},
                    {4, 4, 2},
                    [&](OpBuilder &lb, Location ll, Value lane,
                        ArrayRef<SmallVector<Value>> in) {
                      Value g = divC(lb, ll, lane, 4),
                            q = remC(lb, ll, lane, 4);
                      Value ninf = floatConst(lb, ll, f32, -INFINITY);
                      Value scaleV = floatConst(lb, ll, f32, scale);
                      SmallVector<SmallVector<Value>> res(2);
                      SmallVector<Value> maxima(2, ninf);
                      for (int64_t j = 0; j < 2; ++j)
                        for (int64_t i = 0; i < 4; ++i) {
                          Value row = addI(lb, ll, g, c(lb, ll, 8 * (i / 2)));
                          // Keys up to the row's position, in the split.
                          Value pos =
                              addI(lb, ll, pos0, divC(lb, ll, row, group));
                          Value limit = arith::MinUIOp::create(
                              lb, ll,
                              arith::MinUIOp::create(
                                  lb, ll, addI(lb, ll, pos, c(lb, ll, 1)),
                                  a.capacity),
                              hi);
                          Value k = addI(lb, ll, k0,
                                         addI(lb, ll, mulC(lb, ll, q, 2),
                                              c(lb, ll, 8 * j + i % 2)));
                          Value seen = arith::CmpIOp::create(
                              lb, ll, arith::CmpIPredicate::ult, k, limit);
                          Value score = arith::SelectOp::create(
                              lb, ll, seen, mulF(lb, ll, in[j][i], scaleV),
                              ninf);
                          res[j].push_back(score);
                          maxima[i / 2] = arith::MaximumFOp::create(
                              lb, ll, maxima[i / 2], score);
                        }
                      res.push_back(maxima);
                      return res;
                    });
                WarpCode::Regs stepMax = warp.quadReduce(
                    kb, kl, scored[2],
                    [](OpBuilder &ob, Location ol, Value x, Value y) -> Value {
                      return arith::MaximumFOp::create(ob, ol, x, y);
                    });
                // 3. The online softmax: P (as m16n8k16 A registers), the new
                // maximum and sums, the output rescaled.
                SmallVector<WarpCode::Regs> updateIn{scored[0], scored[1],
                                                     stepMax, m, l};
                updateIn.append(out.begin(), out.end());
                SmallVector<Type> updTypes{i32, f32, f32};
                SmallVector<int64_t> updCounts{4, 2, 2};
                for (int64_t blk = 0; blk < blocksV; ++blk)
                  updTypes.push_back(f32), updCounts.push_back(4);
                SmallVector<WarpCode::Regs> upd = warp.eachLane(
                    kb, kl, updateIn, updTypes, updCounts,
                    [&](OpBuilder &lb, Location ll, Value,
                        ArrayRef<SmallVector<Value>> in) {
                      Value fzero = floatConst(lb, ll, f32, 0.0);
                      Value ninf = floatConst(lb, ll, f32, -INFINITY);
                      SmallVector<Value> newMax, corr, sums;
                      for (int64_t r = 0; r < 2; ++r) {
                        newMax.push_back(arith::MaximumFOp::create(
                            lb, ll, in[3][r], in[2][r]));
                        // Nothing was accumulated while the maximum is -inf
                        // (before the row's first key): 0, not exp(-inf -
                        // max), which is NaN while no key was seen and which
                        // polynomial exp approximations do not all get right.
                        Value seenAny = arith::CmpFOp::create(
                            lb, ll, arith::CmpFPredicate::OGT, in[3][r], ninf);
                        corr.push_back(arith::SelectOp::create(
                            lb, ll, seenAny,
                            math::ExpOp::create(
                                lb, ll,
                                arith::SubFOp::create(lb, ll, in[3][r],
                                                      newMax[r])),
                            fzero));
                        sums.push_back(fzero);
                      }
                      Value p[2][4];
                      for (int64_t j = 0; j < 2; ++j)
                        for (int64_t i = 0; i < 4; ++i) {
                          Value score = in[j][i];
                          Value seen = arith::CmpFOp::create(
                              lb, ll, arith::CmpFPredicate::OGT, score, ninf);
                          Value w = arith::SelectOp::create(
                              lb, ll, seen,
                              math::ExpOp::create(
                                  lb, ll,
                                  arith::SubFOp::create(lb, ll, score,
                                                        newMax[i / 2])),
                              fzero);
                          p[j][i] = arith::TruncFOp::create(lb, ll, bf16, w);
                          sums[i / 2] =
                              addF(lb, ll, sums[i / 2],
                                   arith::ExtFOp::create(lb, ll, f32, p[j][i]));
                        }
                      SmallVector<SmallVector<Value>> res;
                      res.push_back({packPair(lb, ll, p[0][0], p[0][1]),
                                     packPair(lb, ll, p[0][2], p[0][3]),
                                     packPair(lb, ll, p[1][0], p[1][1]),
                                     packPair(lb, ll, p[1][2], p[1][3])});
                      res.push_back(newMax);
                      SmallVector<Value> newSums;
                      for (int64_t r = 0; r < 2; ++r)
                        newSums.push_back(addF(
                            lb, ll, mulF(lb, ll, in[4][r], corr[r]), sums[r]));
                      res.push_back(newSums);
                      for (int64_t blk = 0; blk < blocksV; ++blk) {
                        SmallVector<Value> acc;
                        for (int64_t i = 0; i < 4; ++i)
                          acc.push_back(
                              mulF(lb, ll, in[5 + blk][i], corr[i / 2]));
                        res.push_back(acc);
                      }
                      return res;
                    });
                // 4. V's fragments (n-block of channels cb) and O += P V.
                SmallVector<WarpCode::Regs> vFrag = warp.eachLane(
                    kb, kl, i32, blocksV, 2,
                    [&](OpBuilder &lb, Location ll, Value lane,
                        ArrayRef<SmallVector<Value>>) {
                      Value g = divC(lb, ll, lane, 4),
                            q = remC(lb, ll, lane, 4);
                      SmallVector<Value> rowsV[4];
                      for (int64_t r = 0; r < 4; ++r) {
                        Value k = key(lb, ll,
                                      addI(lb, ll, mulC(lb, ll, q, 2),
                                           c(lb, ll, (r / 2) * 8 + r % 2)));
                        for (Value part : bf16Chunks(
                                 lb, ll, a.vc,
                                 {bi, kvHead, k, mulC(lb, ll, g, blocksV)},
                                 blocksV, align)) {
                          const int64_t n =
                              cast<VectorType>(part.getType()).getNumElements();
                          for (int64_t e = 0; e < n; ++e)
                            rowsV[r].push_back(
                                vector::ExtractOp::create(lb, ll, part, e));
                        }
                      }
                      SmallVector<SmallVector<Value>> res;
                      for (int64_t blk = 0; blk < blocksV; ++blk)
                        res.push_back(
                            {packPair(lb, ll, rowsV[0][blk], rowsV[1][blk]),
                             packPair(lb, ll, rowsV[2][blk], rowsV[3][blk])});
                      return res;
                    });
                SmallVector<WarpCode::Regs> next;
                for (int64_t blk = 0; blk < blocksV; ++blk)
                  next.push_back(
                      warp.mma(kb, kl, upd[0], vFrag[blk], upd[3 + blk]));
                next.push_back(upd[1]);
                next.push_back(upd[2]);
                scf::YieldOp::create(kb, kl, WarpCode::flatten(next));
              });
          SmallVector<WarpCode::Regs> fin =
              warp.unflatten(keyLoop.getResults(), stateCounts);
          WarpCode::Regs sums =
              warp.quadReduce(wb, wl, fin[blocksV + 1],
                              [](OpBuilder &ob, Location ol, Value x, Value y) {
                                return addF(ob, ol, x, y);
                              });
          // The stores: accumulator i of n-block cb is row g + 8 (i / 2),
          // channel (2 q + i % 2) hd / 8 + cb. One split: the output, the
          // rows divided by their sums; several: the partial rows, and each
          // row's (maximum, sum) from its quad's first lane.
          SmallVector<WarpCode::Regs> storeIn(fin.begin(),
                                              fin.begin() + blocksV + 1);
          storeIn.push_back(sums);
          Value whole = arith::CmpIOp::create(wb, wl, arith::CmpIPredicate::eq,
                                              a.splits, c(wb, wl, 1));
          warp.eachLane(
              wb, wl, storeIn, {}, {},
              [&](OpBuilder &lb, Location ll, Value lane,
                  ArrayRef<SmallVector<Value>> in) {
                Value g = divC(lb, ll, lane, 4), q = remC(lb, ll, lane, 4);
                const SmallVector<Value> &maxima = in[blocksV],
                                         &rowSums = in[blocksV + 1];
                for (int64_t r = 0; r < 2; ++r) {
                  Value row = addI(lb, ll, g, c(lb, ll, 8 * r));
                  Value token = tokenOf(lb, ll, row),
                        head = headOf(lb, ll, row);
                  Value inCall = arith::CmpIOp::create(
                      lb, ll, arith::CmpIPredicate::ult, token, a.seq);
                  scf::IfOp::create(
                      lb, ll, inCall, [&](OpBuilder &sb, Location sl) {
                        auto channelOf = [&](OpBuilder &cb, Location cl,
                                             int64_t blk, int64_t i) {
                          return addI(cb, cl,
                                      mulC(cb, cl,
                                           addI(cb, cl, mulC(cb, cl, q, 2),
                                                c(cb, cl, i % 2)),
                                           blocksV),
                                      c(cb, cl, blk));
                        };
                        scf::IfOp::create(
                            sb, sl, whole,
                            [&](OpBuilder &ob, Location ol) {
                              for (int64_t blk = 0; blk < blocksV; ++blk)
                                for (int64_t i = 2 * r; i < 2 * r + 2; ++i)
                                  o.store(ob, ol,
                                          arith::DivFOp::create(
                                              ob, ol, in[blk][i], rowSums[r]),
                                          {bi, token,
                                           addI(ob, ol, mulC(ob, ol, head, hd),
                                                channelOf(ob, ol, blk, i))});
                              scf::YieldOp::create(ob, ol);
                            },
                            [&](OpBuilder &xb, Location xl) {
                              for (int64_t blk = 0; blk < blocksV; ++blk)
                                for (int64_t i = 2 * r; i < 2 * r + 2; ++i)
                                  storeF32(xb, xl, in[blk][i], a.part,
                                           {bi, token, head, split,
                                            channelOf(xb, xl, blk, i)});
                              Value firstOfQuad = arith::CmpIOp::create(
                                  xb, xl, arith::CmpIPredicate::eq, q,
                                  c(xb, xl, 0));
                              scf::IfOp::create(
                                  xb, xl, firstOfQuad,
                                  [&](OpBuilder &fb, Location fl) {
                                    storeF32(
                                        fb, fl, maxima[r], a.stats,
                                        {bi, token, head, split, c(fb, fl, 0)});
                                    storeF32(
                                        fb, fl, rowSums[r], a.stats,
                                        {bi, token, head, split, c(fb, fl, 1)});
                                    scf::YieldOp::create(fb, fl);
                                  });
                              scf::YieldOp::create(xb, xl);
                            });
                        scf::YieldOp::create(sb, sl);
                      });
                }
                return SmallVector<SmallVector<Value>>{};
              });
        };
        scf::IfOp::create(
            pb, pl, vectors,
            [&](OpBuilder &tb, Location tl) {
              body(tb, tl, 16);
              scf::YieldOp::create(tb, tl);
            },
            [&](OpBuilder &eb, Location el) {
              body(eb, el, 1);
              scf::YieldOp::create(eb, el);
            });
      });
}

} // namespace

/// The caches take the new rows (appendToCache), then attention in two
/// parallel nests (split-KV, "flash decoding"):
///
/// 1. one iteration per (b, s, head, split): the keys of query (b, s),
///    0 .. min(cache_len[b] + s, capacity - 1), are cut into `splits`
///    ranges of ceil(keys / splits); each iteration runs an online softmax
///    (running maximum and sum) over its range, into its partial output row
///    and its (maximum, sum) pair;
/// 2. one iteration per (b, s, head, d): the partial rows are combined,
///    each weighted by exp(its maximum - the overall maximum), and divided
///    by the combined sum.
///
/// `splits` is chosen at run time: min(maxSplits, ceil(capacity /
/// keysPerSplit)) divided by the call's tokens (at least 1), so a decode
/// step (one token) gets many splits, a long prefill one, and the partial
/// buffers stay within (splits + tokens) rows per head.
LogicalResult gpukernels::lowerCachedAttention(IRRewriter &rw,
                                               CachedAttentionOp op,
                                               const AttentionSplits &config) {
  if (!isF32Compatible(op.getQuery().getType()) ||
      !isF32Compatible(op.getKCache().getType()))
    return failure();
  Location loc = op.getLoc();
  rw.setInsertionPoint(op);
  OpBuilder &b = rw;
  auto kcType = cast<RankedTensorType>(op.getKCache().getType());
  const int64_t heads = op.getNumHeads(), kvHeads = op.getNumKvHeads();
  const int64_t headDim = kcType.getDimSize(3);
  if (ShapedType::isDynamic(headDim) || heads % kvHeads != 0)
    return failure();
  // The append copies rows as they are: the new keys and values must have
  // the caches' element type (they do in imported models: f32).
  auto elementOf = [](Value v) {
    return cast<RankedTensorType>(v.getType()).getElementType();
  };
  if (elementOf(op.getKey()) != kcType.getElementType() ||
      elementOf(op.getValue()) != elementOf(op.getVCache()))
    return failure();
  Value newK = appendToCache(b, loc, op.getKCache(), op.getKey(),
                             op.getCacheLen(), headDim);
  Value newV = appendToCache(b, loc, op.getVCache(), op.getValue(),
                             op.getCacheLen(), headDim);
  auto buf = [&](Value t) { return lowering::readOnlyBuffer(b, loc, t); };
  Value q = buf(op.getQuery()), lens = buf(op.getCacheLen()), kc = buf(newK),
        vc = buf(newV);
  Value batch = dim(b, loc, q, 0), seq = dim(b, loc, q, 1),
        capacity = dim(b, loc, kc, 2);
  // o, in bf16 too when a cuBLAS GEMM (o_proj) reads it (NarrowedResult).
  NarrowedResult o(op.getResult());
  o.allocate(b, loc, {batch, seq, indexConst(b, loc, heads * headDim)});
  Value zero = indexConst(b, loc, 0), one = indexConst(b, loc, 1);
  Value hd = indexConst(b, loc, headDim);
  Value headsV = indexConst(b, loc, heads);
  Type f32 = b.getF32Type();

  // The number of splits, and the partial results.
  Value wanted = arith::MinUIOp::create(
      b, loc, indexConst(b, loc, config.maxSplits),
      arith::CeilDivUIOp::create(b, loc, capacity,
                                 indexConst(b, loc, config.keysPerSplit)));
  Value splits = arith::MaxUIOp::create(
      b, loc, one,
      arith::DivUIOp::create(b, loc, wanted,
                             arith::MaxUIOp::create(b, loc, seq, one)));
  // From mmaMinTokens tokens on (bf16 or f32 operands, a head dimension
  // that is a multiple of 16, a head group that divides the 16 rows of a
  // tile) the tensor-core nest has the iterations and the split nest none;
  // the combine nest runs for the split nest, and for the tensor-core nest
  // when it splits the keys.
  Value splitSeq = seq, combineSeq = seq;
  auto mmaOperand = [](Type t) {
    Type e = getElementTypeOrSelf(t);
    return e.isF32() || e.isBF16();
  };
  const int64_t group = heads / kvHeads;
  const bool mma = config.mmaMinTokens > 0 && headDim > 0 &&
                   headDim % 16 == 0 && kMmaQueryRows % group == 0 &&
                   mmaOperand(op.getQuery().getType()) && mmaOperand(kcType) &&
                   mmaOperand(op.getVCache().getType());
  Value useMma;
  if (mma) {
    useMma = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::uge, seq,
                                   indexConst(b, loc, config.mmaMinTokens));
    splitSeq = arith::SelectOp::create(b, loc, useMma, zero, seq);
    Value oneSplit =
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, splits, one);
    combineSeq = arith::SelectOp::create(
        b, loc, arith::AndIOp::create(b, loc, useMma, oneSplit), zero, seq);
  }
  const int64_t dyn = ShapedType::kDynamic;
  Value part = lowering::allocBuffer(
      b, loc, RankedTensorType::get({dyn, dyn, heads, dyn, headDim}, f32),
      {batch, combineSeq, headsV, splits});
  Value stats = lowering::allocBuffer(
      b, loc, RankedTensorType::get({dyn, dyn, heads, dyn, 2}, f32),
      {batch, combineSeq, headsV, splits});
  if (mma) {
    Value tiles = arith::SelectOp::create(
        b, loc, useMma,
        arith::CeilDivUIOp::create(b, loc, seq,
                                   indexConst(b, loc, kMmaQueryRows / group)),
        zero);
    AttentionTiles tilesOf{q,      kc,    vc,      lens,     part,
                           stats,  batch, seq,     capacity, tiles,
                           splits, heads, kvHeads, headDim};
    attentionMmaTiles(b, loc, tilesOf, o, config.emulateMma);
  }

  // 1. Each split's online softmax. The query is the innermost dimension:
  // in a prefill (one split) a warp is 32 consecutive queries of one head,
  // which read the same key and value rows at the same time (one row per
  // warp load instead of one per head group); a decode step (one query)
  // keeps the splits innermost.
  const double scale = 1.0 / std::sqrt(static_cast<double>(headDim));
  parallel(
      b, loc, "attention_splits", {batch, headsV, splits, splitSeq},
      [&](OpBuilder &pb, Location l, ValueRange ivs) {
        Value bi = ivs[0], h = ivs[1], k = ivs[2], s = ivs[3];
        Value g = arith::DivUIOp::create(pb, l, h,
                                         indexConst(pb, l, heads / kvHeads));
        Value qBase = arith::MulIOp::create(pb, l, h, hd);
        Value pos = addI(pb, l, loadIndex(pb, l, lens, {bi}), s);
        // Keys 0 .. min(pos, capacity - 1), this split's range of them.
        Value end = arith::MinUIOp::create(
            pb, l, addI(pb, l, pos, indexConst(pb, l, 1)), capacity);
        Value chunk = arith::CeilDivUIOp::create(pb, l, end, splits);
        Value lo = arith::MinUIOp::create(
            pb, l, arith::MulIOp::create(pb, l, k, chunk), end);
        Value hi = arith::MinUIOp::create(pb, l, addI(pb, l, lo, chunk), end);
        loop(pb, l, zero, hd, {},
             [&](OpBuilder &nb, Location nl, Value d, ValueRange) {
               storeF32(nb, nl, floatConst(nb, nl, f32, 0.0), part,
                        {bi, s, h, k, d});
               return SmallVector<Value>{};
             });
        Value scaleV = floatConst(pb, l, f32, scale);
        Value fzero = floatConst(pb, l, f32, 0.0);
        Value ninf = floatConst(pb, l, f32, -INFINITY);
        Value last = arith::SubIOp::create(pb, l, hi, indexConst(pb, l, 1));
        // The range in blocks of kAttentionKeyBlock keys, the online softmax
        // advanced a block at a time: the block's scores (past the range:
        // -inf, their key clamped to the range's last), its maximum, then
        // the partial row rescaled and the block's weighted values added,
        // one read and one write of the row per block.
        auto running = scf::ForOp::create(
            pb, l, lo, hi, indexConst(pb, l, kAttentionKeyBlock),
            ValueRange{ninf, fzero},
            [&](OpBuilder &jb, Location jl, Value j0, ValueRange args) {
              // The block's keys (clamped) and their dot products with the
              // query, one pass over d reading q[d] once for all of them.
              SmallVector<Value> keys, scores;
              for (int64_t i = 0; i < kAttentionKeyBlock; ++i)
                keys.push_back(arith::MinUIOp::create(
                    jb, jl, addI(jb, jl, j0, indexConst(jb, jl, i)), last));
              auto dots = loop(
                  jb, jl, zero, hd,
                  SmallVector<Value>(kAttentionKeyBlock, fzero),
                  [&](OpBuilder &nb, Location nl, Value d, ValueRange acc) {
                    Value qd =
                        loadF32(nb, nl, q, {bi, s, addI(nb, nl, qBase, d)});
                    SmallVector<Value> next;
                    for (int64_t i = 0; i < kAttentionKeyBlock; ++i)
                      next.push_back(
                          addF(nb, nl, acc[i],
                               mulF(nb, nl, qd,
                                    loadF32(nb, nl, kc, {bi, g, keys[i], d}))));
                    return next;
                  });
              Value m = args[0];
              for (int64_t i = 0; i < kAttentionKeyBlock; ++i) {
                Value inRange = arith::CmpIOp::create(
                    jb, jl, arith::CmpIPredicate::ult,
                    addI(jb, jl, j0, indexConst(jb, jl, i)), hi);
                scores.push_back(arith::SelectOp::create(
                    jb, jl, inRange, mulF(jb, jl, dots.getResult(i), scaleV),
                    ninf));
                m = arith::MaximumFOp::create(jb, jl, m, scores.back());
              }
              // Rescale what was accumulated under the old maximum (before
              // the range's first block nothing was: 0, not exp(-inf),
              // which polynomial exp approximations do not all get right;
              // likewise a key past the range weighs 0, not exp(-inf)).
              Value first = arith::CmpIOp::create(
                  jb, jl, arith::CmpIPredicate::eq, j0, lo);
              Value corr = arith::SelectOp::create(
                  jb, jl, first, fzero,
                  math::ExpOp::create(
                      jb, jl, arith::SubFOp::create(jb, jl, args[0], m)));
              SmallVector<Value> weights;
              Value sum = mulF(jb, jl, args[1], corr);
              for (int64_t i = 0; i < kAttentionKeyBlock; ++i) {
                Value inRange = arith::CmpFOp::create(
                    jb, jl, arith::CmpFPredicate::OGT, scores[i], ninf);
                weights.push_back(arith::SelectOp::create(
                    jb, jl, inRange,
                    math::ExpOp::create(
                        jb, jl, arith::SubFOp::create(jb, jl, scores[i], m)),
                    fzero));
                sum = addF(jb, jl, sum, weights.back());
              }
              loop(jb, jl, zero, hd, {},
                   [&](OpBuilder &nb, Location nl, Value d, ValueRange) {
                     SmallVector<Value> at = {bi, s, h, k, d};
                     Value acc = mulF(nb, nl, loadF32(nb, nl, part, at), corr);
                     for (int64_t i = 0; i < kAttentionKeyBlock; ++i)
                       acc =
                           addF(nb, nl, acc,
                                mulF(nb, nl, weights[i],
                                     loadF32(nb, nl, vc, {bi, g, keys[i], d})));
                     storeF32(nb, nl, acc, part, at);
                     return SmallVector<Value>{};
                   });
              scf::YieldOp::create(jb, jl, ValueRange{m, sum});
            });
        storeF32(pb, l, running.getResult(0), stats,
                 {bi, s, h, k, indexConst(pb, l, 0)});
        storeF32(pb, l, running.getResult(1), stats,
                 {bi, s, h, k, indexConst(pb, l, 1)});
      });

  // 2. The splits combined. Split 0 is never empty (every query sees key
  // 0), so the maximum over the non-empty splits is finite; an empty split
  // (sum 0) weighs 0.
  parallel(
      b, loc, "attention_combine", {batch, combineSeq, headsV, hd},
      [&](OpBuilder &pb, Location l, ValueRange ivs) {
        Value bi = ivs[0], s = ivs[1], h = ivs[2], d = ivs[3];
        Value c0 = indexConst(pb, l, 0), c1 = indexConst(pb, l, 1);
        Value fzero = floatConst(pb, l, f32, 0.0);
        auto nonEmpty = [&](OpBuilder &nb, Location nl, Value sum) {
          return arith::CmpFOp::create(nb, nl, arith::CmpFPredicate::OGT, sum,
                                       fzero);
        };
        Value maxAll =
            loop(pb, l, zero, splits, {floatConst(pb, l, f32, -INFINITY)},
                 [&](OpBuilder &nb, Location nl, Value k, ValueRange acc) {
                   Value m = loadF32(nb, nl, stats, {bi, s, h, k, c0});
                   Value sum = loadF32(nb, nl, stats, {bi, s, h, k, c1});
                   Value next = arith::MaximumFOp::create(nb, nl, acc[0], m);
                   return SmallVector<Value>{arith::SelectOp::create(
                       nb, nl, nonEmpty(nb, nl, sum), next, acc[0])};
                 })
                .getResult(0);
        auto combined =
            loop(pb, l, zero, splits, {fzero, fzero},
                 [&](OpBuilder &nb, Location nl, Value k, ValueRange acc) {
                   Value m = loadF32(nb, nl, stats, {bi, s, h, k, c0});
                   Value sum = loadF32(nb, nl, stats, {bi, s, h, k, c1});
                   Value w = arith::SelectOp::create(
                       nb, nl, nonEmpty(nb, nl, sum),
                       math::ExpOp::create(
                           nb, nl, arith::SubFOp::create(nb, nl, m, maxAll)),
                       fzero);
                   Value x = loadF32(nb, nl, part, {bi, s, h, k, d});
                   return SmallVector<Value>{
                       addF(nb, nl, acc[0], mulF(nb, nl, sum, w)),
                       addF(nb, nl, acc[1], mulF(nb, nl, x, w))};
                 });
        o.store(pb, l,
                arith::DivFOp::create(pb, l, combined.getResult(1),
                                      combined.getResult(0)),
                {bi, s, addI(pb, l, arith::MulIOp::create(pb, l, h, hd), d)});
      });
  // The partial buffers are freed by the deallocation pipeline after
  // bufferization, like every other buffer of the function.

  o.replaceReaders(rw, b, loc);
  rw.replaceAllUsesWith(op.getNewKCache(), newK);
  rw.replaceAllUsesWith(op.getNewVCache(), newV);
  rw.eraseOp(op);
  return success();
}

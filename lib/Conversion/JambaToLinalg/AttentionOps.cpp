//===- AttentionOps.cpp - cached_attention to tensor/scf ------------------===//
//
// Part of jamba-mlir. jamba.cached_attention (SPEC 1.5.4) as scf loops over
// tensors, in the reference kernel's order of operations
// (lib/Reference/Kernels.cpp, cachedAttention): the new keys and values are
// inserted into the caches at cache_len[b] + s (tensor.insert per element,
// in place once bufferized), then for every (b, s, head) the scores against
// cached positions 0 .. cache_len[b] + s are computed once into a scratch
// row with their running maximum, exponentiated (max subtracted) and summed,
// and the output row accumulates p[j] / sum * v[j]. Arithmetic in f32 (f64
// for f64 tensors). Correctness first: no tiling or vectorisation yet.
//
//===----------------------------------------------------------------------===//

#include "LoweringUtils.h"

#include "jamba/Dialect/Jamba/IR/JambaOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

#include <cmath>
#include <limits>

using namespace mlir;
using namespace mlir::jamba;
using namespace mlir::jamba::lowering;

namespace {

/// `scf.for %i = 0 to %ub` carrying `inits`; `body(b, loc, i, iterArgs)`
/// returns the values to yield.
scf::ForOp buildLoop(
    OpBuilder &b, Location loc, Value ub, ValueRange inits,
    function_ref<SmallVector<Value>(OpBuilder &, Location, Value, ValueRange)>
        body) {
  return scf::ForOp::create(
      b, loc, indexConst(b, loc, 0), ub, indexConst(b, loc, 1), inits,
      [&](OpBuilder &nb, Location l, Value i, ValueRange iter) {
        scf::YieldOp::create(nb, l, body(nb, l, i, iter));
      });
}

/// 1 / sqrt(headDim) rounded as the reference computes it in `type`
/// (T(1) / std::sqrt(T(headDim))).
double attentionScale(Type type, int64_t headDim) {
  if (type.isF64())
    return 1.0 / std::sqrt(static_cast<double>(headDim));
  return static_cast<double>(1.0f / std::sqrt(static_cast<float>(headDim)));
}

} // namespace

std::pair<Value, Value> mlir::jamba::lowering::appendToCaches(
    OpBuilder &b, Location loc, Value k, Value v, Value kCache, Value vCache,
    Value cacheLen, int64_t kvHeads, int64_t headDim) {
  Type indexType = b.getIndexType();
  auto cacheElem = [](Value cache) {
    return cast<RankedTensorType>(cache.getType()).getElementType();
  };
  Value numBatch = getValueOrCreateConstantIndexOp(
      b, loc, tensor::getMixedSize(b, loc, k, 0));
  Value numSeq = getValueOrCreateConstantIndexOp(
      b, loc, tensor::getMixedSize(b, loc, k, 1));
  Value hd = indexConst(b, loc, headDim);
  Value numKvHeads = indexConst(b, loc, kvHeads);
  // cache[b, g, len[b] + s, d] = x[b, s, g*hd + d] (tensor.insert: plain
  // stores once bufferized, in place, with no strided copy needing a
  // runtime helper).
  auto appendRow = [&](OpBuilder &nb, Location l, Value rows, Value cache,
                       Value bi, Value s, Value pos) -> Value {
    Type elem = cacheElem(cache);
    auto overHeads = buildLoop(
        nb, l, numKvHeads, ValueRange{cache},
        [&](OpBuilder &gb, Location gl, Value g, ValueRange cg) {
          Value base = arith::MulIOp::create(gb, gl, g, hd);
          auto overDim = buildLoop(
              gb, gl, hd, cg,
              [&](OpBuilder &db, Location dl, Value d, ValueRange cd) {
                Value x = tensor::ExtractOp::create(
                    db, dl, rows,
                    ValueRange{bi, s, arith::AddIOp::create(db, dl, base, d)});
                Value stored = tensor::InsertOp::create(
                    db, dl, convertScalar(db, dl, x, elem), cd[0],
                    ValueRange{bi, g, pos, d});
                return SmallVector<Value>{stored};
              });
          return SmallVector<Value>(overDim.getResults());
        });
    return overHeads.getResult(0);
  };
  auto appended = buildLoop(
      b, loc, numBatch, ValueRange{kCache, vCache},
      [&](OpBuilder &bb, Location l, Value bi, ValueRange caches) {
        Value len = arith::IndexCastOp::create(
            bb, l, indexType,
            tensor::ExtractOp::create(bb, l, cacheLen, ValueRange{bi}));
        auto inner =
            buildLoop(bb, l, numSeq, caches,
                      [&](OpBuilder &sb, Location sl, Value s, ValueRange cs) {
                        Value pos = arith::AddIOp::create(sb, sl, len, s);
                        return SmallVector<Value>{
                            appendRow(sb, sl, k, cs[0], bi, s, pos),
                            appendRow(sb, sl, v, cs[1], bi, s, pos)};
                      });
        return SmallVector<Value>(inner.getResults());
      });
  return {appended.getResult(0), appended.getResult(1)};
}

namespace {

struct CachedAttentionLowering : OpConversionPattern<CachedAttentionOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(CachedAttentionOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    OpBuilder &b = rewriter;
    Value q = adaptor.getQuery(), k = adaptor.getKey(), v = adaptor.getValue(),
          kCache = adaptor.getKCache(), vCache = adaptor.getVCache(),
          cacheLen = adaptor.getCacheLen();
    auto oType = cast<RankedTensorType>(op.getResult().getType());
    auto kcType = cast<RankedTensorType>(op.getNewKCache().getType());
    auto vcType = cast<RankedTensorType>(op.getNewVCache().getType());
    const int64_t heads = op.getNumHeads(), kvHeads = op.getNumKvHeads();
    int64_t headDim = cast<RankedTensorType>(kCache.getType()).getDimSize(3);
    if (ShapedType::isDynamic(headDim)) {
      int64_t qWidth = cast<RankedTensorType>(q.getType()).getDimSize(2);
      if (ShapedType::isDynamic(qWidth))
        return rewriter.notifyMatchFailure(op, "needs a static head_dim");
      headDim = qWidth / heads;
    }
    const int64_t group = heads / kvHeads;
    Type elem = oType.getElementType(), acc = computeType(elem);
    Type indexType = b.getIndexType();

    OpFoldResult batch =
        pickSize(b, loc, oType.getDimSize(0), {{q, 0}, {k, 0}, {kCache, 0}});
    OpFoldResult seq = pickSize(b, loc, oType.getDimSize(1), {{q, 1}, {k, 1}});
    Value numBatch = getValueOrCreateConstantIndexOp(b, loc, batch);
    Value numSeq = getValueOrCreateConstantIndexOp(b, loc, seq);
    Value capacity = getValueOrCreateConstantIndexOp(
        b, loc, pickSize(b, loc, ShapedType::kDynamic, {{kCache, 2}}));
    Value hd = indexConst(b, loc, headDim);
    Value one = indexConst(b, loc, 1);
    auto lengthOf = [&](OpBuilder &nb, Location l, Value bi) -> Value {
      Value len = tensor::ExtractOp::create(nb, l, cacheLen, ValueRange{bi});
      return arith::IndexCastOp::create(nb, l, indexType, len);
    };

    // 1. Append the new rows (element by element, in place once bufferized).
    Value kc, vc;
    std::tie(kc, vc) = lowering::appendToCaches(b, loc, k, v, kCache, vCache,
                                                cacheLen, kvHeads, headDim);

    // 2. Attention per (b, s, h), reading the updated caches.
    Value zero = floatConst(b, loc, acc, 0.0);
    Value negInf =
        floatConst(b, loc, acc, -std::numeric_limits<double>::infinity());
    Value scale = floatConst(b, loc, acc, attentionScale(acc, headDim));
    Value groupSize = indexConst(b, loc, group);
    SmallVector<OpFoldResult> oSizes{
        batch, seq, pickSize(b, loc, oType.getDimSize(2), {{q, 2}})};
    Value oInit = filledTensor(b, loc, oSizes, acc, 0.0);

    auto attend = [&](OpBuilder &nb, Location l, Value o, Value bi, Value s,
                      Value len, Value h) -> Value {
      Value g = arith::DivUIOp::create(nb, l, h, groupSize);
      Value qBase = arith::MulIOp::create(nb, l, h, hd);
      Value numPos = arith::AddIOp::create(
          nb, l, arith::AddIOp::create(nb, l, len, s), one);
      Value scratch =
          tensor::EmptyOp::create(nb, l, ArrayRef<OpFoldResult>{capacity}, acc);
      auto at = [&](OpBuilder &eb, Location el, Value t, ValueRange idx) {
        return convertScalar(eb, el, tensor::ExtractOp::create(eb, el, t, idx),
                             acc);
      };

      // Scores q . k_j * scale and their maximum.
      auto scores = buildLoop(
          nb, l, numPos, ValueRange{scratch, negInf},
          [&](OpBuilder &jb, Location jl, Value j, ValueRange it) {
            auto dot = buildLoop(
                jb, jl, hd, ValueRange{zero},
                [&](OpBuilder &db, Location dl, Value d, ValueRange a) {
                  Value qv =
                      at(db, dl, q,
                         {bi, s, arith::AddIOp::create(db, dl, qBase, d)});
                  Value kv = at(db, dl, kc, {bi, g, j, d});
                  return SmallVector<Value>{arith::AddFOp::create(
                      db, dl, a[0], arith::MulFOp::create(db, dl, qv, kv))};
                });
            Value score =
                arith::MulFOp::create(jb, jl, dot.getResult(0), scale);
            Value row = tensor::InsertOp::create(jb, jl, score, it[0], j);
            Value larger = arith::CmpFOp::create(
                jb, jl, arith::CmpFPredicate::OLT, it[1], score);
            Value max = arith::SelectOp::create(jb, jl, larger, score, it[1]);
            return SmallVector<Value>{row, max};
          });
      Value max = scores.getResult(1);
      // p_j = exp(score_j - max) and their sum.
      auto probs = buildLoop(
          nb, l, numPos, ValueRange{scores.getResult(0), zero},
          [&](OpBuilder &jb, Location jl, Value j, ValueRange it) {
            Value sc = tensor::ExtractOp::create(jb, jl, it[0], ValueRange{j});
            Value p = math::ExpOp::create(
                jb, jl, arith::SubFOp::create(jb, jl, sc, max));
            return SmallVector<Value>{
                tensor::InsertOp::create(jb, jl, p, it[0], j),
                arith::AddFOp::create(jb, jl, it[1], p)};
          });
      Value p = probs.getResult(0), sum = probs.getResult(1);
      // o[b, s, h*hd + d] += p_j / sum * v_j[d].
      auto out = buildLoop(
          nb, l, numPos, ValueRange{o},
          [&](OpBuilder &jb, Location jl, Value j, ValueRange it) {
            Value w = arith::DivFOp::create(
                jb, jl, tensor::ExtractOp::create(jb, jl, p, ValueRange{j}),
                sum);
            auto row = buildLoop(
                jb, jl, hd, it,
                [&](OpBuilder &db, Location dl, Value d, ValueRange od) {
                  SmallVector<Value> idx{
                      bi, s, arith::AddIOp::create(db, dl, qBase, d)};
                  Value cur = tensor::ExtractOp::create(db, dl, od[0], idx);
                  Value vv = at(db, dl, vc, {bi, g, j, d});
                  Value next = arith::AddFOp::create(
                      db, dl, cur, arith::MulFOp::create(db, dl, w, vv));
                  return SmallVector<Value>{
                      tensor::InsertOp::create(db, dl, next, od[0], idx)};
                });
            return SmallVector<Value>(row.getResults());
          });
      return out.getResult(0);
    };

    Value numHeads = indexConst(b, loc, heads);
    auto attended = buildLoop(
        b, loc, numBatch, ValueRange{oInit},
        [&](OpBuilder &bb, Location l, Value bi, ValueRange ob) {
          Value len = lengthOf(bb, l, bi);
          auto overSeq = buildLoop(
              bb, l, numSeq, ob,
              [&](OpBuilder &sb, Location sl, Value s, ValueRange os) {
                auto overHeads = buildLoop(
                    sb, sl, numHeads, os,
                    [&](OpBuilder &hb, Location hl, Value h, ValueRange oh) {
                      return SmallVector<Value>{
                          attend(hb, hl, oh[0], bi, s, len, h)};
                    });
                return SmallVector<Value>(overHeads.getResults());
              });
          return SmallVector<Value>(overSeq.getResults());
        });
    Value o = attended.getResult(0);
    if (elem != acc)
      o = buildElementwise(
          b, loc, ValueRange{o}, {b.getMultiDimIdentityMap(3)},
          emptyTensor(b, loc, oSizes, elem),
          [&](OpBuilder &nb, Location l, ValueRange in, Value) {
            return convertScalar(nb, l, in[0], elem);
          });
    rewriter.replaceOp(op, {castIfNeeded(b, loc, o, oType),
                            castIfNeeded(b, loc, kc, kcType),
                            castIfNeeded(b, loc, vc, vcType)});
    return success();
  }
};

} // namespace

void mlir::jamba::lowering::populateAttentionLoweringPatterns(
    RewritePatternSet &patterns) {
  patterns.add<CachedAttentionLowering>(patterns.getContext());
}

//===- GemmMicrokernels.cpp - The jamba-cpu-microkernels pass --------===//
//
// Part of jamba-mlir. jamba.linear and jamba.expert_gemm as register-tiled
// vector loop nests on buffers (TOOLCHAIN.md part 2): partial sums stay in
// vector lanes across K and are reduced once per output, weight panels are
// sized for the L2 cache and distributed over threads with scf.parallel,
// and narrow weights (bf16, f16, int8) are widened in registers inside the
// K loop. The expert GEMM first groups the routed (token, slot) pairs by
// expert with a counting sort, so that every expert's weights are read once
// per call for all the tokens routed to it.
//
// The kernels read their operands through `bufferization.to_buffer
// read_only` and write a fresh `memref.alloc` returned with
// `bufferization.to_tensor restrict writable`, so the surrounding tensor
// program still goes through one-shot bufferization unchanged.
//
//===----------------------------------------------------------------------===//

#include "JambaToLinalg/LoweringUtils.h"

#include "jamba/Conversion/Passes.h"
#include "jamba/Dialect/Jamba/IR/JambaOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/PatternMatch.h"

#include <cmath>
#include <limits>

namespace mlir::jamba {
#define GEN_PASS_DEF_JAMBACPUMICROKERNELSPASS
#include "jamba/Conversion/Passes.h.inc"
} // namespace mlir::jamba

using namespace mlir;
using namespace mlir::jamba;

namespace {

/// The shape of one register tile: `rows` input rows times `cols` weight
/// rows, each accumulating `unroll` vectors of `lanes` f32 per K step.
struct TileShape {
  int64_t rows, cols, unroll;
  /// Prefetch the weight rows `prefetchRows` ahead in the K loop (narrow
  /// weights in GEMV tiles: short interleaved rows defeat the hardware
  /// stream prefetcher, TOOLCHAIN.md part 2).
  bool prefetch;
};

/// Where one tile row reads its input row and writes its output row.
struct RowRef {
  SmallVector<Value> input;  // indices into the input, K excluded
  SmallVector<Value> output; // indices into the output, N excluded
  Value factor;              // f32 multiplier of the epilogue, or null
};

struct KernelOptions {
  int64_t lanes;
  int64_t panelBytes;
  int64_t prefetchRows;
  /// Attention: the keys per split of an item's keys (at most; 0: none).
  int64_t attentionSplitKeys;
};

bool isSupportedFloat(Type t) { return t.isF32() || t.isBF16() || t.isF16(); }

Value indexConst(OpBuilder &b, Location loc, int64_t v) {
  return arith::ConstantIndexOp::create(b, loc, v);
}

/// `v` (scalar or vector) converted to f32 (or its vector).
Value toF32(OpBuilder &b, Location loc, Value v) {
  Type elem = getElementTypeOrSelf(v.getType());
  if (elem.isF32())
    return v;
  Type f32 = b.getF32Type();
  Type to = f32;
  if (auto vec = dyn_cast<VectorType>(v.getType()))
    to = VectorType::get(vec.getShape(), f32);
  if (isa<IntegerType>(elem))
    return arith::SIToFPOp::create(b, loc, to, v);
  return arith::ExtFOp::create(b, loc, to, v);
}

/// f32 scalar `v` rounded to `elem`.
Value fromF32(OpBuilder &b, Location loc, Value v, Type elem) {
  if (elem.isF32())
    return v;
  return arith::TruncFOp::create(b, loc, elem, v);
}

/// Splits the flat row index `flat` over `dims` (row-major), innermost last.
SmallVector<Value> delinearize(OpBuilder &b, Location loc, Value flat,
                               ArrayRef<Value> dims) {
  SmallVector<Value> indices(dims.size());
  for (int64_t i = int64_t(dims.size()) - 1; i > 0; --i) {
    indices[i] = arith::RemUIOp::create(b, loc, flat, dims[i]);
    flat = arith::DivUIOp::create(b, loc, flat, dims[i]);
  }
  if (!dims.empty())
    indices[0] = flat;
  return indices;
}

/// The sizes of the first `count` dimensions of memref `m`.
SmallVector<Value> leadingSizes(OpBuilder &b, Location loc, Value m,
                                unsigned count) {
  SmallVector<Value> sizes;
  for (unsigned i = 0; i < count; ++i)
    sizes.push_back(memref::DimOp::create(b, loc, m, i));
  return sizes;
}

Value product(OpBuilder &b, Location loc, ArrayRef<Value> values) {
  Value p = indexConst(b, loc, 1);
  for (Value v : values)
    p = arith::MulIOp::create(b, loc, p, v);
  return p;
}

/// Emits the loop nests of one GEMM-like op over buffers.
class GemmEmitter {
public:
  GemmEmitter(OpBuilder &b, Location loc, const KernelOptions &options,
              Value input, Value weight, Value scale, Value bias, Value output)
      : b(b), loc(loc), options(options), input(input), weight(weight),
        scale(scale), bias(bias), output(output) {
    auto wType = cast<MemRefType>(weight.getType());
    wRank = wType.getRank();
    wElem = wType.getElementType();
    narrowWeights = !wElem.isF32();
    numRows = memref::DimOp::create(b, loc, weight, wRank - 2);
    depth = memref::DimOp::create(b, loc, weight, wRank - 1);
    staticDepth = wType.getDimSize(wRank - 1);
    staticRows = wType.getDimSize(wRank - 2);
  }

  /// Tiles for a block of two input rows, and for a single row (GEMV).
  TileShape pairShape() const { return {2, 4, 1, false}; }
  TileShape singleShape() const {
    // TOOLCHAIN.md part 2: f32 GEMV is best with 4 weight rows of 16 lanes;
    // bf16 and int8 with a prefetch ahead. With 8 lanes, two weight rows of
    // 4 vectors each (one load of the input for both rows) beat one row of
    // 4: bf16 +0-23%, int8 +6-15%, medians of 8 pairs measured in one
    // process (CPUBackend.md, 2026-12-02).
    if (narrowWeights)
      return {1, 2, 4, options.prefetchRows > 0};
    return {1, 4, 2, false};
  }

  /// Weight rows per panel: the panel fits `panelBytes` (an L2-sized block
  /// one thread reuses over all its input rows), is a multiple of 4 and
  /// leaves at least 8 panels when the weight has enough rows.
  int64_t panelRows() const {
    // (At least one byte: a weight may have no columns, K = 0.)
    int64_t rowBytes =
        std::max<int64_t>(1, ShapedType::isDynamic(staticDepth) ? 1024
                                                                : staticDepth) *
        std::max<int64_t>(1, wElem.getIntOrFloatBitWidth() / 8);
    int64_t rows = std::max<int64_t>(4, options.panelBytes / rowBytes);
    if (!ShapedType::isDynamic(staticRows))
      rows = std::min(rows, std::max<int64_t>(4, (staticRows + 7) / 8));
    return std::max<int64_t>(4, rows / 4 * 4);
  }

  /// scf.parallel over weight panels; `body(nBegin, nEnd)` emits the work of
  /// one panel.
  void forEachPanel(function_ref<void(Value, Value)> body) {
    int64_t rows = panelRows();
    Value panel = indexConst(b, loc, rows);
    Value count = arith::CeilDivUIOp::create(b, loc, numRows, panel);
    Value zero = indexConst(b, loc, 0), one = indexConst(b, loc, 1);
    scf::ParallelOp::create(
        b, loc, ValueRange{zero}, ValueRange{count}, ValueRange{one},
        [&](OpBuilder &nested, Location l, ValueRange ivs) {
          OpBuilder::InsertionGuard guard(b);
          b.setInsertionPoint(nested.getInsertionBlock(),
                              nested.getInsertionPoint());
          Value begin = arith::MulIOp::create(b, l, ivs[0], panel);
          Value end = arith::MinUIOp::create(
              b, l, arith::AddIOp::create(b, l, begin, panel), numRows);
          body(begin, end);
          scf::ReduceOp::create(b, l);
        });
  }

  /// All weight rows [nBegin, nEnd) for the input rows `rows`: tiles of
  /// `shape`, then single weight rows for the remainder.
  void emitRowBlock(ArrayRef<RowRef> rows, Value nBegin, Value nEnd,
                    TileShape shape, Value expert) {
    Value cols = indexConst(b, loc, shape.cols);
    Value span = arith::SubIOp::create(b, loc, nEnd, nBegin);
    Value mainEnd = arith::AddIOp::create(
        b, loc, nBegin,
        arith::MulIOp::create(
            b, loc, arith::DivUIOp::create(b, loc, span, cols), cols));
    forLoop(nBegin, mainEnd, shape.cols,
            [&](Value n) { emitTile(rows, n, shape, expert); });
    if (shape.cols > 1) {
      TileShape one = shape;
      one.cols = 1;
      forLoop(mainEnd, nEnd, 1,
              [&](Value n) { emitTile(rows, n, one, expert); });
    }
  }

  /// Input rows [begin, end) against weight rows [nBegin, nEnd): pairs of
  /// rows in the pair tile, then a remaining row in the single-row tile.
  /// `rowRef(position)` says where a row reads and writes.
  void emitRows(Value begin, Value end, function_ref<RowRef(Value)> rowRef,
                Value nBegin, Value nEnd, Value expert) {
    Value two = indexConst(b, loc, 2);
    Value count = arith::SubIOp::create(b, loc, end, begin);
    Value pairEnd = arith::AddIOp::create(
        b, loc, begin,
        arith::MulIOp::create(b, loc,
                              arith::DivUIOp::create(b, loc, count, two), two));
    forLoop(begin, pairEnd, 2, [&](Value p) {
      Value p1 = arith::AddIOp::create(b, loc, p, indexConst(b, loc, 1));
      emitRowBlock({rowRef(p), rowRef(p1)}, nBegin, nEnd, pairShape(), expert);
    });
    forLoop(pairEnd, end, 1, [&](Value p) {
      emitRowBlock({rowRef(p)}, nBegin, nEnd, singleShape(), expert);
    });
  }

  /// A sequential loop from `lo` to `hi` by `step`; `body(iv)`.
  void forLoop(Value lo, Value hi, int64_t step,
               function_ref<void(Value)> body) {
    scf::ForOp::create(b, loc, lo, hi, indexConst(b, loc, step), ValueRange{},
                       [&](OpBuilder &nested, Location, Value iv, ValueRange) {
                         OpBuilder::InsertionGuard guard(b);
                         b.setInsertionPoint(nested.getInsertionBlock(),
                                             nested.getInsertionPoint());
                         body(iv);
                         scf::YieldOp::create(b, loc);
                       });
  }

private:
  SmallVector<Value> weightIndices(Value expert, Value n, Value k) {
    SmallVector<Value> idx;
    if (expert)
      idx.push_back(expert);
    idx.push_back(n);
    idx.push_back(k);
    return idx;
  }

  static SmallVector<Value> withLast(ArrayRef<Value> prefix, Value last) {
    SmallVector<Value> idx(prefix);
    idx.push_back(last);
    return idx;
  }

  /// One register tile: output rows `rows` x weight rows [n0, n0 + cols).
  void emitTile(ArrayRef<RowRef> rows, Value n0, TileShape shape,
                Value expert) {
    int64_t lanes = options.lanes, step = lanes * shape.unroll;
    int64_t numAcc = shape.rows * shape.cols * shape.unroll;
    auto f32 = b.getF32Type();
    auto accType = VectorType::get({lanes}, f32);
    auto fast = arith::FastMathFlags::reassoc | arith::FastMathFlags::contract;
    Value zeroVec = arith::ConstantOp::create(
        b, loc, accType, DenseElementsAttr::get(accType, 0.0f));
    Value zero = indexConst(b, loc, 0);

    SmallVector<Value> nIdx;
    for (int64_t j = 0; j < shape.cols; ++j)
      nIdx.push_back(
          j == 0 ? n0
                 : arith::AddIOp::create(b, loc, n0, indexConst(b, loc, j)));
    SmallVector<Value> prefetchRow;
    if (shape.prefetch) {
      Value last =
          arith::SubIOp::create(b, loc, numRows, indexConst(b, loc, 1));
      for (Value n : nIdx)
        prefetchRow.push_back(arith::MinUIOp::create(
            b, loc,
            arith::AddIOp::create(b, loc, n,
                                  indexConst(b, loc, options.prefetchRows)),
            last));
    }

    // The vector K loop.
    Value mainEnd;
    if (!ShapedType::isDynamic(staticDepth))
      mainEnd = indexConst(b, loc, staticDepth / step * step);
    else
      mainEnd = arith::MulIOp::create(
          b, loc,
          arith::DivUIOp::create(b, loc, depth, indexConst(b, loc, step)),
          indexConst(b, loc, step));
    SmallVector<Value> init(numAcc, zeroVec);
    auto accIndex = [&](int64_t i, int64_t j, int64_t u) {
      return (i * shape.cols + j) * shape.unroll + u;
    };
    auto kLoop = scf::ForOp::create(
        b, loc, zero, mainEnd, indexConst(b, loc, step), init,
        [&](OpBuilder &nb, Location l, Value k, ValueRange accs) {
          SmallVector<Value> next(accs.begin(), accs.end());
          for (Value row : prefetchRow)
            memref::PrefetchOp::create(nb, l, weight,
                                       weightIndices(expert, row, k),
                                       /*isWrite=*/false, /*locality=*/3,
                                       /*isDataCache=*/true);
          for (int64_t u = 0; u < shape.unroll; ++u) {
            Value kk = u == 0 ? k
                              : arith::AddIOp::create(
                                    nb, l, k, indexConst(nb, l, u * lanes));
            SmallVector<Value> xs, ws;
            for (const RowRef &r : rows) {
              auto type = VectorType::get(
                  {lanes}, cast<MemRefType>(input.getType()).getElementType());
              xs.push_back(
                  toF32(nb, l,
                        vector::LoadOp::create(nb, l, type, input,
                                               withLast(r.input, kk))));
            }
            for (Value n : nIdx) {
              auto type = VectorType::get({lanes}, wElem);
              ws.push_back(
                  toF32(nb, l,
                        vector::LoadOp::create(nb, l, type, weight,
                                               weightIndices(expert, n, kk))));
            }
            for (int64_t i = 0; i < shape.rows; ++i)
              for (int64_t j = 0; j < shape.cols; ++j) {
                Value &acc = next[accIndex(i, j, u)];
                acc = vector::FMAOp::create(nb, l, xs[i], ws[j], acc);
              }
          }
          scf::YieldOp::create(nb, l, next);
        });

    // One horizontal reduction per output, then the scalar K tail.
    SmallVector<Value> sums;
    for (int64_t i = 0; i < shape.rows; ++i)
      for (int64_t j = 0; j < shape.cols; ++j) {
        Value v = kLoop.getResult(accIndex(i, j, 0));
        for (int64_t u = 1; u < shape.unroll; ++u)
          v = arith::AddFOp::create(b, loc, v,
                                    kLoop.getResult(accIndex(i, j, u)), fast);
        sums.push_back(vector::ReductionOp::create(
            b, loc, vector::CombiningKind::ADD, v, /*acc=*/Value(), fast));
      }
    bool needsTail =
        ShapedType::isDynamic(staticDepth) || staticDepth % step != 0;
    if (needsTail) {
      auto tail = scf::ForOp::create(
          b, loc, mainEnd, depth, indexConst(b, loc, 1), sums,
          [&](OpBuilder &nb, Location l, Value k, ValueRange accs) {
            SmallVector<Value> next(accs.begin(), accs.end());
            for (int64_t i = 0; i < shape.rows; ++i) {
              Value xv = toF32(nb, l,
                               memref::LoadOp::create(
                                   nb, l, input, withLast(rows[i].input, k)));
              for (int64_t j = 0; j < shape.cols; ++j) {
                Value wv = toF32(
                    nb, l,
                    memref::LoadOp::create(nb, l, weight,
                                           weightIndices(expert, nIdx[j], k)));
                Value &acc = next[i * shape.cols + j];
                acc = arith::AddFOp::create(
                    nb, l, acc, arith::MulFOp::create(nb, l, xv, wv, fast),
                    fast);
              }
            }
            scf::YieldOp::create(nb, l, next);
          });
      sums.assign(tail.getResults().begin(), tail.getResults().end());
    }

    // Epilogue: scale after the K loop, then the bias or routing weight,
    // then the rounding to the result type (SPEC 1.11).
    Type outElem = cast<MemRefType>(output.getType()).getElementType();
    for (int64_t i = 0; i < shape.rows; ++i)
      for (int64_t j = 0; j < shape.cols; ++j) {
        Value v = sums[i * shape.cols + j];
        if (scale) {
          SmallVector<Value> idx;
          if (expert)
            idx.push_back(expert);
          idx.push_back(nIdx[j]);
          v = arith::MulFOp::create(
              b, loc, v,
              toF32(b, loc, memref::LoadOp::create(b, loc, scale, idx)));
        }
        if (bias)
          v = arith::AddFOp::create(
              b, loc, v,
              toF32(b, loc,
                    memref::LoadOp::create(b, loc, bias, ValueRange{nIdx[j]})));
        if (rows[i].factor)
          v = arith::MulFOp::create(b, loc, v, rows[i].factor);
        memref::StoreOp::create(b, loc, fromF32(b, loc, v, outElem), output,
                                withLast(rows[i].output, nIdx[j]));
      }
  }

  OpBuilder &b;
  Location loc;
  const KernelOptions &options;
  Value input, weight, scale, bias, output;
  int64_t wRank;
  Type wElem;
  bool narrowWeights;
  Value numRows, depth;
  int64_t staticDepth, staticRows;
};

/// Whether the kernels take these element types; `extra` are optional
/// float operands (bias, routing weights), read as f32.
bool supported(Value input, Value weight, Type resultType,
               ArrayRef<Value> extra = {}) {
  Type x = getElementTypeOrSelf(input.getType());
  Type w = getElementTypeOrSelf(weight.getType());
  Type r = getElementTypeOrSelf(resultType);
  return isSupportedFloat(x) && isSupportedFloat(r) &&
         (isSupportedFloat(w) || w.isInteger(8)) &&
         llvm::all_of(extra, [](Value v) {
           return !v || isSupportedFloat(getElementTypeOrSelf(v.getType()));
         });
}

/// jamba.linear: result[..., n] = x[..., :] . W[n, :] (scale, bias).
LogicalResult lowerLinear(IRRewriter &b, LinearOp op,
                          const KernelOptions &options) {
  auto resultType = cast<RankedTensorType>(op.getType());
  if (!supported(op.getInput(), op.getWeight(), resultType, {op.getBias()}))
    return failure();
  Location loc = op.getLoc();
  b.setInsertionPoint(op);
  Value x = lowering::readOnlyBuffer(b, loc, op.getInput());
  Value w = lowering::readOnlyBuffer(b, loc, op.getWeight());
  Value scale = lowering::readOnlyBuffer(b, loc, op.getScale());
  Value bias = lowering::readOnlyBuffer(b, loc, op.getBias());
  unsigned lead = resultType.getRank() - 1;
  SmallVector<Value> dims = leadingSizes(b, loc, x, lead);
  SmallVector<Value> outDims(dims);
  outDims.push_back(memref::DimOp::create(b, loc, w, 0));
  Value out = lowering::allocBuffer(b, loc, resultType, outDims);
  Value rows = product(b, loc, dims);

  GemmEmitter emit(b, loc, options, x, w, scale, bias, out);
  auto rowRef = [&](Value m) {
    RowRef r;
    r.input = delinearize(b, loc, m, dims);
    r.output = r.input;
    return r;
  };
  emit.forEachPanel([&](Value nBegin, Value nEnd) {
    emit.emitRows(indexConst(b, loc, 0), rows, rowRef, nBegin, nEnd, Value());
  });
  b.replaceOp(op, lowering::bufferResult(b, loc, resultType, out));
  return success();
}

/// jamba.expert_gemm: the (token, slot) pairs sorted by expert (counting
/// sort), then per expert with routed pairs the panel-parallel GEMM over
/// its pairs.
LogicalResult lowerExpertGemm(IRRewriter &b, ExpertGemmOp op,
                              const KernelOptions &options) {
  auto resultType = cast<RankedTensorType>(op.getType());
  if (!supported(op.getInput(), op.getWeight(), resultType,
                 {op.getRouteWeights()}))
    return failure();
  Location loc = op.getLoc();
  b.setInsertionPoint(op);
  Value x = lowering::readOnlyBuffer(b, loc, op.getInput());
  Value w = lowering::readOnlyBuffer(b, loc, op.getWeight());
  Value scale = lowering::readOnlyBuffer(b, loc, op.getScale());
  Value indices = lowering::readOnlyBuffer(b, loc, op.getIndices());
  Value routeWeights = lowering::readOnlyBuffer(b, loc, op.getRouteWeights());
  Value offsetBuffer = lowering::readOnlyBuffer(b, loc, op.getExpertOffset());
  unsigned q = cast<RankedTensorType>(op.getIndices().getType()).getRank();
  bool perSlot = cast<RankedTensorType>(op.getInput().getType()).getRank() ==
                 int64_t(q) + 1;

  SmallVector<Value> slotDims = leadingSizes(b, loc, indices, q);
  SmallVector<Value> outDims(slotDims);
  outDims.push_back(memref::DimOp::create(b, loc, w, 1));
  Value out = lowering::allocBuffer(b, loc, resultType, outDims);
  Value numSlots = product(b, loc, slotDims);
  Value numExperts = memref::DimOp::create(b, loc, w, 0);
  Value zero = indexConst(b, loc, 0), one = indexConst(b, loc, 1);

  GemmEmitter emit(b, loc, options, x, w, scale, Value(), out);
  // Expert parallelism: expert e is weight row e - offset; the slots of
  // other ranks' experts are skipped and keep the zero rows filled here.
  Value offset;
  if (offsetBuffer) {
    offset = memref::LoadOp::create(b, loc, offsetBuffer, ValueRange{zero});
    offset = arith::IndexCastOp::create(b, loc, b.getIndexType(), offset);
    Value zeroF = arith::ConstantOp::create(
        b, loc, b.getFloatAttr(resultType.getElementType(), 0.0));
    linalg::FillOp::create(b, loc, ValueRange{zeroF}, ValueRange{out});
  }
  auto rawExpert = [&](ArrayRef<Value> slot) {
    Value raw = memref::LoadOp::create(b, loc, indices, slot);
    Value e = arith::IndexCastOp::create(b, loc, b.getIndexType(), raw);
    return offset ? arith::SubIOp::create(b, loc, e, offset).getResult() : e;
  };
  auto expertOf = [&](ArrayRef<Value> slot) {
    Value e = rawExpert(slot);
    // A bad index reads a valid expert, never outside the buffer; the
    // router produces in-range indices.
    Value last = arith::SubIOp::create(b, loc, numExperts, one);
    return arith::MinSIOp::create(b, loc,
                                  arith::MaxSIOp::create(b, loc, e, zero), last)
        .getResult();
  };
  // Whether slot `slot` is this rank's (always, without an offset); `body`
  // runs only for those.
  auto ifLocal = [&](ArrayRef<Value> slot, function_ref<void()> body) {
    if (!offset) {
      body();
      return;
    }
    Value e = rawExpert(slot);
    Value local = arith::AndIOp::create(
        b, loc,
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge, e, zero),
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, e,
                              numExperts));
    scf::IfOp::create(b, loc, local, [&](OpBuilder &nested, Location l) {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPoint(nested.getInsertionBlock(),
                          nested.getInsertionPoint());
      body();
      scf::YieldOp::create(b, l);
    });
  };

  // offsets[e + 1] counts expert e's pairs, then becomes its end offset.
  auto indexBuffer = [&](Value size) {
    return memref::AllocOp::create(
        b, loc, MemRefType::get({ShapedType::kDynamic}, b.getIndexType()),
        ValueRange{size});
  };
  Value numOffsets = arith::AddIOp::create(b, loc, numExperts, one);
  Value offsets = indexBuffer(numOffsets);
  Value cursor = indexBuffer(numExperts);
  Value order = indexBuffer(numSlots);
  emit.forLoop(zero, numOffsets, 1, [&](Value e) {
    memref::StoreOp::create(b, loc, zero, offsets, e);
  });
  emit.forLoop(zero, numSlots, 1, [&](Value s) {
    SmallVector<Value> slot = delinearize(b, loc, s, slotDims);
    ifLocal(slot, [&] {
      Value e = expertOf(slot);
      Value at = arith::AddIOp::create(b, loc, e, one);
      Value c = memref::LoadOp::create(b, loc, offsets, at);
      memref::StoreOp::create(b, loc, arith::AddIOp::create(b, loc, c, one),
                              offsets, at);
    });
  });
  emit.forLoop(zero, numExperts, 1, [&](Value e) {
    Value at = arith::AddIOp::create(b, loc, e, one);
    Value sum = arith::AddIOp::create(
        b, loc, memref::LoadOp::create(b, loc, offsets, e),
        memref::LoadOp::create(b, loc, offsets, at));
    memref::StoreOp::create(b, loc, sum, offsets, at);
    memref::StoreOp::create(b, loc, memref::LoadOp::create(b, loc, offsets, e),
                            cursor, e);
  });
  emit.forLoop(zero, numSlots, 1, [&](Value s) {
    SmallVector<Value> slot = delinearize(b, loc, s, slotDims);
    ifLocal(slot, [&] {
      Value e = expertOf(slot);
      Value c = memref::LoadOp::create(b, loc, cursor, e);
      memref::StoreOp::create(b, loc, s, order, c);
      memref::StoreOp::create(b, loc, arith::AddIOp::create(b, loc, c, one),
                              cursor, e);
    });
  });

  auto rowRef = [&](Value position) {
    Value s = memref::LoadOp::create(b, loc, order, position);
    RowRef r;
    r.output = delinearize(b, loc, s, slotDims);
    r.input = r.output;
    if (!perSlot)
      r.input.pop_back();
    if (routeWeights)
      r.factor =
          toF32(b, loc, memref::LoadOp::create(b, loc, routeWeights, r.output));
    return r;
  };
  emit.forLoop(zero, numExperts, 1, [&](Value e) {
    Value begin = memref::LoadOp::create(b, loc, offsets, e);
    Value next = arith::AddIOp::create(b, loc, e, one);
    Value end = memref::LoadOp::create(b, loc, offsets, next);
    Value any =
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, begin, end);
    scf::IfOp::create(b, loc, any, [&](OpBuilder &nested, Location l) {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPoint(nested.getInsertionBlock(),
                          nested.getInsertionPoint());
      emit.forEachPanel([&](Value nBegin, Value nEnd) {
        emit.emitRows(begin, end, rowRef, nBegin, nEnd, e);
      });
      scf::YieldOp::create(b, l);
    });
  });
  b.replaceOp(op, lowering::bufferResult(b, loc, resultType, out));
  return success();
}

/// jamba.selective_scan (SPEC 1.6) over channel blocks of `lanes`: one
/// parallel item per (sequence, block) keeps the block's d_state state
/// vectors in registers across the whole time loop; A is transposed once per
/// block into a stack buffer so that each step loads it as vectors; B[t, n]
/// and C[t, n] are broadcast. The arithmetic follows the reference order:
/// d = softplus(delta + bias); h = exp(d A) h + (d B) u;
/// y = sum_n C h (n ascending) + D u, times SiLU(z).
LogicalResult lowerSelectiveScan(IRRewriter &b, SelectiveScanOp op,
                                 const KernelOptions &options) {
  auto yType = cast<RankedTensorType>(op.getResult().getType());
  auto hType = cast<RankedTensorType>(op.getFinalState().getType());
  auto aType = cast<RankedTensorType>(op.getA().getType());
  int64_t lanes = options.lanes;
  int64_t inner = aType.getDimSize(0), states = aType.getDimSize(1);
  // Static d_inner in whole blocks and a d_state that fits the registers;
  // anything else keeps the generic lowering.
  if (ShapedType::isDynamic(inner) || ShapedType::isDynamic(states) ||
      inner % lanes != 0 || states > 32)
    return failure();
  for (Value v : op->getOperands())
    if (!isSupportedFloat(getElementTypeOrSelf(v.getType())))
      return failure();
  if (!isSupportedFloat(yType.getElementType()))
    return failure();

  Location loc = op.getLoc();
  b.setInsertionPoint(op);
  auto read = [&](Value v) { return lowering::readOnlyBuffer(b, loc, v); };
  Value u = read(op.getU()), delta = read(op.getDelta()), A = read(op.getA()),
        Bm = read(op.getB()), Cm = read(op.getC()), D = read(op.getD()),
        z = read(op.getZ()), bias = read(op.getDeltaBias()),
        h0 = read(op.getInitState());
  bool softplus = op.getDeltaSoftplus();

  Value batch = memref::DimOp::create(b, loc, u, 0);
  Value steps = memref::DimOp::create(b, loc, u, 1);
  Value innerV = indexConst(b, loc, inner),
        statesV = indexConst(b, loc, states);
  Value y = lowering::allocBuffer(b, loc, yType, {batch, steps, innerV});
  Value hOut = lowering::allocBuffer(b, loc, hType, {batch, innerV, statesV});

  Type f32 = b.getF32Type();
  auto vecType = VectorType::get({lanes}, f32);
  Value zero = indexConst(b, loc, 0), one = indexConst(b, loc, 1);
  Value lanesV = indexConst(b, loc, lanes);
  Value blocks = indexConst(b, loc, inner / lanes);
  auto loadVec = [&](OpBuilder &nb, Location l, Value m, ValueRange idx) {
    auto type = VectorType::get({lanes},
                                cast<MemRefType>(m.getType()).getElementType());
    return toF32(nb, l, vector::LoadOp::create(nb, l, type, m, idx));
  };

  scf::ParallelOp::create(
      b, loc, ValueRange{zero, zero}, ValueRange{batch, blocks},
      ValueRange{one, one}, [&](OpBuilder &pb, Location l, ValueRange ivs) {
        Value seqIdx = ivs[0];
        Value c0 = arith::MulIOp::create(pb, l, ivs[1], lanesV);
        // [d_state, lanes] blocks on the stack: A transposed, once per
        // block (each step then loads A as vectors), and the state in and
        // out in the same layout.
        auto blockType = MemRefType::get({states, lanes}, f32);
        Value at = memref::AllocaOp::create(pb, l, blockType);
        Value hBlock = memref::AllocaOp::create(pb, l, blockType);
        Value statesV = indexConst(pb, l, states);
        // for n < d_state, i < lanes: body(n, i, c0 + i).
        auto forBlock =
            [&](function_ref<void(OpBuilder &, Location, Value, Value, Value)>
                    body) {
              scf::ForOp::create(
                  pb, l, zero, statesV, one, ValueRange{},
                  [&](OpBuilder &nb, Location nl, Value n, ValueRange) {
                    scf::ForOp::create(
                        nb, nl, zero, lanesV, one, ValueRange{},
                        [&](OpBuilder &ib, Location il, Value i, ValueRange) {
                          body(ib, il, n, i,
                               arith::AddIOp::create(ib, il, c0, i));
                          scf::YieldOp::create(ib, il);
                        });
                    scf::YieldOp::create(nb, nl);
                  });
            };
        forBlock([&](OpBuilder &ib, Location il, Value n, Value i, Value c) {
          Value v = memref::LoadOp::create(ib, il, A, ValueRange{c, n});
          memref::StoreOp::create(ib, il, toF32(ib, il, v), at,
                                  ValueRange{n, i});
        });
        Value biasV = bias ? loadVec(pb, l, bias, ValueRange{c0}) : Value();
        Value dV = D ? loadVec(pb, l, D, ValueRange{c0}) : Value();
        Value zeroVec = lowering::floatConst(pb, l, vecType, 0.0);

        SmallVector<Value> init(states, zeroVec);
        if (h0) {
          forBlock([&](OpBuilder &ib, Location il, Value n, Value i, Value c) {
            Value v =
                memref::LoadOp::create(ib, il, h0, ValueRange{seqIdx, c, n});
            memref::StoreOp::create(ib, il, toF32(ib, il, v), hBlock,
                                    ValueRange{n, i});
          });
          for (int64_t n = 0; n < states; ++n)
            init[n] = vector::LoadOp::create(
                pb, l, vecType, hBlock, ValueRange{indexConst(pb, l, n), zero});
        }

        auto time = scf::ForOp::create(
            pb, l, zero, steps, one, init,
            [&](OpBuilder &tb, Location tl, Value t, ValueRange h) {
              Value d = loadVec(tb, tl, delta, ValueRange{seqIdx, t, c0});
              if (biasV)
                d = arith::AddFOp::create(tb, tl, d, biasV);
              if (softplus)
                d = lowering::buildSoftplus(tb, tl, d);
              Value uv = loadVec(tb, tl, u, ValueRange{seqIdx, t, c0});
              Value acc = zeroVec;
              SmallVector<Value> next;
              for (int64_t n = 0; n < states; ++n) {
                Value nIdx = indexConst(tb, tl, n);
                Value a = vector::LoadOp::create(tb, tl, vecType, at,
                                                 ValueRange{nIdx, zero});
                Value decay = math::ExpOp::create(
                    tb, tl, arith::MulFOp::create(tb, tl, d, a));
                Value bn = vector::BroadcastOp::create(
                    tb, tl, vecType,
                    toF32(tb, tl,
                          memref::LoadOp::create(tb, tl, Bm,
                                                 ValueRange{seqIdx, t, nIdx})));
                Value kept = arith::MulFOp::create(tb, tl, decay, h[n]);
                Value input = arith::MulFOp::create(
                    tb, tl, arith::MulFOp::create(tb, tl, d, bn), uv);
                Value hn = arith::AddFOp::create(tb, tl, kept, input);
                next.push_back(hn);
                Value cn = vector::BroadcastOp::create(
                    tb, tl, vecType,
                    toF32(tb, tl,
                          memref::LoadOp::create(tb, tl, Cm,
                                                 ValueRange{seqIdx, t, nIdx})));
                acc = arith::AddFOp::create(
                    tb, tl, acc, arith::MulFOp::create(tb, tl, cn, hn));
              }
              if (dV)
                acc = arith::AddFOp::create(
                    tb, tl, acc, arith::MulFOp::create(tb, tl, dV, uv));
              if (z)
                acc = arith::MulFOp::create(
                    tb, tl, acc,
                    lowering::buildSilu(
                        tb, tl, loadVec(tb, tl, z, ValueRange{seqIdx, t, c0})));
              Type yElem = yType.getElementType();
              Value out = acc;
              if (!yElem.isF32())
                out = arith::TruncFOp::create(
                    tb, tl, VectorType::get({lanes}, yElem), acc);
              vector::StoreOp::create(tb, tl, out, y,
                                      ValueRange{seqIdx, t, c0});
              scf::YieldOp::create(tb, tl, next);
            });

        // The final state: the vectors to the stack block, then scattered
        // to [seq, channel, state].
        for (int64_t n = 0; n < states; ++n)
          vector::StoreOp::create(pb, l, time.getResult(n), hBlock,
                                  ValueRange{indexConst(pb, l, n), zero});
        forBlock([&](OpBuilder &ib, Location il, Value n, Value i, Value c) {
          Value v = memref::LoadOp::create(ib, il, hBlock, ValueRange{n, i});
          memref::StoreOp::create(ib, il, v, hOut, ValueRange{seqIdx, c, n});
        });
        scf::ReduceOp::create(pb, l);
      });
  b.replaceOp(op, {lowering::bufferResult(b, loc, yType, y),
                   lowering::bufferResult(b, loc, hType, hOut)});
  return success();
}

/// Keys the attention kernel scores at once (one vector of scores).
constexpr int64_t kAttentionKeyBlock = 8;
/// Query rows, (token, head) pairs, that share each block of keys and
/// values the attention kernel loads.
constexpr int64_t kAttentionTileRows = 16;
/// The longest head dimension the attention kernel handles, in vectors.
constexpr int64_t kMaxAttentionHeadVectors = 32;
/// Output vectors of a row the attention kernel updates at once: with a
/// block's value row and its weight they fit AVX2's 16 registers (all 16 of
/// a 128-wide head spilled on x86-64-v3).
constexpr int64_t kAttentionOutputGroup = 8;
/// Split-KV attention: the parallel items a call is split up to (more than
/// a machine's cores, so that OpenMP's static chunks stay even), and the
/// most splits of one item's keys.
constexpr int64_t kAttentionSplitItems = 64;
constexpr int64_t kMaxAttentionSplits = 32;

/// The sum of each of `vectors`' lanes, as one vector: element i is the sum
/// of vectors[i]'s. When there are as many vectors as lanes, a power of two,
/// pairs are added in log2(n) rounds, the even lanes of two vectors next
/// to the odd ones (n - 1 additions instead of n reductions and n inserts).
Value sumLanesOfEach(OpBuilder &b, Location loc, ArrayRef<Value> vectors) {
  auto type = cast<VectorType>(vectors.front().getType());
  const int64_t n = type.getNumElements();
  if (int64_t(vectors.size()) != n || !llvm::isPowerOf2_64(n)) {
    SmallVector<Value> sums;
    for (Value v : vectors)
      sums.push_back(
          vector::ReductionOp::create(b, loc, vector::CombiningKind::ADD, v));
    return vector::FromElementsOp::create(
        b, loc,
        VectorType::get({int64_t(vectors.size())}, type.getElementType()),
        sums);
  }
  // After a round, vector k holds the partial sums of the vectors it was
  // made of, each vector's lanes together and in order: the last round
  // leaves one vector whose lane i is vectors[i]'s sum.
  SmallVector<int64_t> even, odd;
  for (int64_t j = 0; j < n; ++j) {
    even.push_back(2 * j);
    odd.push_back(2 * j + 1);
  }
  SmallVector<Value> level(vectors.begin(), vectors.end());
  while (level.size() > 1) {
    SmallVector<Value> next;
    for (size_t k = 0; k < level.size(); k += 2)
      next.push_back(arith::AddFOp::create(
          b, loc,
          vector::ShuffleOp::create(b, loc, level[k], level[k + 1], even),
          vector::ShuffleOp::create(b, loc, level[k], level[k + 1], odd)));
    level = std::move(next);
  }
  return level.front();
}

/// exp(x - max), or 0 where x is -inf (an online softmax's empty state):
/// selected, not left to the polynomial exp, which -inf defeats.
Value expOrZero(OpBuilder &b, Location loc, Value x, Value max, Value negInf,
                Value zero) {
  Value empty =
      arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ, x, negInf);
  return arith::SelectOp::create(
      b, loc, empty, zero,
      math::ExpOp::create(b, loc, arith::SubFOp::create(b, loc, x, max)));
}

/// jamba.cached_attention (SPEC 1.5.4): the new rows appended to the caches
/// as the generic lowering does (tensor.insert, in place), then flash-style
/// attention over tiles of query rows. A tile is T = max(1, 16 / G) tokens
/// of one kv head's group of G query heads: its rows are the (token, head)
/// pairs, token-major, so that every key and value row the tile loads
/// serves T x G queries (at a long context the keys no longer fit in the
/// caches: one row per item read them from memory once per query). One
/// parallel item per (sequence, tile, kv head), tiles in the order 0, n-1,
/// 1, n-2, ... so that OpenMP's static chunks of the causal work are even.
/// The item walks the keys its last token sees in blocks of 8; each of its
/// rows whose token sees some key of the block scores it (vector FMAs over
/// the head dimension, a query vector at a time into one accumulator per
/// key, whose lanes are then summed together: sumLanesOfEach; times
/// hd^-1/2), masks the keys past its position, and updates its online
/// softmax: the running maximum and sum rescaled once per block, the
/// block's values added with weights exp(score - max), 8 output vectors at
/// a time. The rows' outputs, maxima and sums live in a
/// stack tile; each output is divided by its sum at the end. The same
/// softmax as the reference's in exact arithmetic; the sums run in another
/// order (within 1e-6 relative).
///
/// Split-KV (`attention-split-keys` K > 0): a call of fewer than 64 items
/// (a decode step: one per (sequence, kv head)) would leave most cores of a
/// larger machine idle while its items stream the whole cache. Its keys are
/// then cut into S = min(32, ceil(64 / items), ceil(keys / K)) ranges of
/// ceil(keys / S) rounded up to a block (keys: the longest sequence's, at
/// run time), each range an item of its own (sequence, tile, kv head,
/// split) that writes its rows' unnormalised outputs, maxima and sums to a
/// scratch buffer; a second parallel loop over (sequence, tile, kv head)
/// combines each row's splits, weighting split i by exp(max_i - max) (an
/// empty split, max -inf, weighs 0: selected, not computed) and dividing by
/// the weighted sum of sums. With S = 1 the items write their outputs as
/// without splits and the second loop does not run.
LogicalResult lowerCachedAttention(IRRewriter &b, CachedAttentionOp op,
                                   const KernelOptions &options) {
  auto oType = cast<RankedTensorType>(op.getResult().getType());
  auto kcType = cast<RankedTensorType>(op.getKCache().getType());
  const int64_t lanes = options.lanes, heads = op.getNumHeads(),
                kvHeads = op.getNumKvHeads(), headDim = kcType.getDimSize(3);
  // A static head dimension of whole vectors, and f32/bf16/f16 tensors;
  // anything else keeps the generic lowering.
  if (ShapedType::isDynamic(headDim) || headDim % lanes != 0 ||
      headDim / lanes > kMaxAttentionHeadVectors || heads % kvHeads != 0)
    return failure();
  for (Value v :
       {op.getQuery(), op.getKey(), op.getValue(), op.getKCache(),
        op.getVCache(), op.getResult(), op.getNewKCache(), op.getNewVCache()})
    if (!isSupportedFloat(getElementTypeOrSelf(v.getType())))
      return failure();

  Location loc = op.getLoc();
  b.setInsertionPoint(op);
  auto [kcNew, vcNew] = lowering::appendToCaches(
      b, loc, op.getKey(), op.getValue(), op.getKCache(), op.getVCache(),
      op.getCacheLen(), kvHeads, headDim);
  auto read = [&](Value v) { return lowering::readOnlyBuffer(b, loc, v); };
  Value q = read(op.getQuery()), kc = read(kcNew), vc = read(vcNew),
        lens = read(op.getCacheLen());

  Value batch = memref::DimOp::create(b, loc, q, 0);
  Value seq = memref::DimOp::create(b, loc, q, 1);
  Value capacity = memref::DimOp::create(b, loc, kc, 2);
  Value width = indexConst(b, loc, heads * headDim);
  Value o = lowering::allocBuffer(b, loc, oType, {batch, seq, width});

  Type f32 = b.getF32Type();
  const int64_t chunks = headDim / lanes, block = kAttentionKeyBlock,
                group = heads / kvHeads,
                tileTokens = std::max<int64_t>(1, kAttentionTileRows / group),
                rows = tileTokens * group;
  auto vecType = VectorType::get({lanes}, f32);
  auto blockType = VectorType::get({block}, f32);
  auto indexVec = VectorType::get({block}, b.getIndexType());
  Value zero = indexConst(b, loc, 0), one = indexConst(b, loc, 1);
  Value tileTokensV = indexConst(b, loc, tileTokens);
  Value tiles = arith::CeilDivUIOp::create(b, loc, seq, tileTokensV);
  Value kvHeadsV = indexConst(b, loc, kvHeads);
  const float scale = 1.0f / std::sqrt(static_cast<float>(headDim));
  const double inf = std::numeric_limits<double>::infinity();

  // Split-KV: S splits of `splitKeys` keys each (S = 1 without).
  const bool splitting = options.attentionSplitKeys > 0;
  Value splits = one, splitKeys, partOut, partMax, partSum;
  if (splitting) {
    // The most keys a row sees: min(max_b cache_len[b] + seq, capacity).
    auto longest = scf::ForOp::create(
        b, loc, zero, batch, one, ValueRange{zero},
        [&](OpBuilder &fb, Location fl, Value bi, ValueRange acc) {
          Value len = arith::IndexCastOp::create(
              fb, fl, fb.getIndexType(),
              memref::LoadOp::create(fb, fl, lens, ValueRange{bi}));
          scf::YieldOp::create(
              fb, fl, ValueRange{arith::MaxUIOp::create(fb, fl, acc[0], len)});
        });
    Value keys = arith::MinUIOp::create(
        b, loc, arith::AddIOp::create(b, loc, longest.getResult(0), seq),
        capacity);
    Value items = arith::MaxUIOp::create(
        b, loc,
        arith::MulIOp::create(
            b, loc, arith::MulIOp::create(b, loc, batch, tiles), kvHeadsV),
        one);
    Value byItems = arith::CeilDivUIOp::create(
        b, loc, indexConst(b, loc, kAttentionSplitItems), items);
    Value byKeys = arith::CeilDivUIOp::create(
        b, loc, keys, indexConst(b, loc, options.attentionSplitKeys));
    splits = arith::MaxUIOp::create(
        b, loc,
        arith::MinUIOp::create(b, loc, indexConst(b, loc, kMaxAttentionSplits),
                               arith::MinUIOp::create(b, loc, byItems, byKeys)),
        one);
    Value blockV = indexConst(b, loc, block);
    splitKeys = arith::MulIOp::create(
        b, loc,
        arith::CeilDivUIOp::create(
            b, loc, arith::CeilDivUIOp::create(b, loc, keys, splits), blockV),
        blockV);
    // The scratch of the splits' rows (none when S = 1).
    Value several =
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ugt, splits, one);
    Value scratchSplits =
        arith::SelectOp::create(b, loc, several, splits, zero);
    const int64_t dyn = ShapedType::kDynamic;
    partOut = memref::AllocOp::create(
        b, loc, MemRefType::get({dyn, dyn, kvHeads, dyn, rows, headDim}, f32),
        ValueRange{batch, tiles, scratchSplits});
    partMax = memref::AllocOp::create(
        b, loc, MemRefType::get({dyn, dyn, kvHeads, dyn, rows}, f32),
        ValueRange{batch, tiles, scratchSplits});
    partSum = memref::AllocOp::create(
        b, loc, MemRefType::get({dyn, dyn, kvHeads, dyn, rows}, f32),
        ValueRange{batch, tiles, scratchSplits});
  }
  SmallVector<Value> lower{zero, zero, zero}, upper{batch, tiles, kvHeadsV},
      steps{one, one, one};
  if (splitting) {
    lower.push_back(zero);
    upper.push_back(splits);
    steps.push_back(one);
  }

  scf::ParallelOp::create(
      b, loc, lower, upper, steps,
      [&](OpBuilder &pb, Location l, ValueRange ivs) {
        Value bi = ivs[0], g = ivs[2];
        // Tile of the zigzag order: even i -> i / 2, odd -> n-1 - i / 2.
        Value two = indexConst(pb, l, 2);
        Value half = arith::DivUIOp::create(pb, l, ivs[1], two);
        Value odd = arith::CmpIOp::create(
            pb, l, arith::CmpIPredicate::ne,
            arith::RemUIOp::create(pb, l, ivs[1], two), zero);
        Value mirrored = arith::SubIOp::create(
            pb, l, arith::SubIOp::create(pb, l, tiles, one), half);
        Value tile = arith::SelectOp::create(pb, l, odd, mirrored, half);
        Value t0 = arith::MulIOp::create(pb, l, tile, tileTokensV);
        Value len = arith::IndexCastOp::create(
            pb, l, pb.getIndexType(),
            memref::LoadOp::create(pb, l, lens, ValueRange{bi}));
        // Keys 0 .. min(cache_len[b] + s, capacity - 1) for token s.
        auto keysOf = [&](OpBuilder &nb, Location nl, Value s) -> Value {
          return arith::MinUIOp::create(
              nb, nl,
              arith::AddIOp::create(nb, nl,
                                    arith::AddIOp::create(nb, nl, len, s), one),
              capacity);
        };
        Value lastToken = arith::MinUIOp::create(
            pb, l, arith::AddIOp::create(pb, l, t0, tileTokensV), seq);
        lastToken = arith::SubIOp::create(pb, l, lastToken, one);
        Value tileKeys = keysOf(pb, l, lastToken);
        Value lastKey = arith::SubIOp::create(pb, l, tileKeys, one);
        // This item's keys: all of the tile's, or its split's range.
        Value keyBegin = zero, keyEnd = tileKeys;
        if (splitting) {
          keyBegin = arith::MulIOp::create(pb, l, ivs[3], splitKeys);
          keyEnd = arith::MinUIOp::create(
              pb, l, arith::AddIOp::create(pb, l, keyBegin, splitKeys),
              tileKeys);
        }

        // Row r: token t0 + r / G, head g * G + r % G (not a token past
        // the call's: skipped).
        Value groupV = indexConst(pb, l, group);
        auto rowToken = [&](OpBuilder &nb, Location nl, Value r) -> Value {
          return arith::AddIOp::create(
              nb, nl, t0, arith::DivUIOp::create(nb, nl, r, groupV));
        };
        auto rowColumn = [&](OpBuilder &nb, Location nl, Value r,
                             int64_t c) -> Value {
          Value h = arith::AddIOp::create(
              nb, nl, arith::MulIOp::create(nb, nl, g, groupV),
              arith::RemUIOp::create(nb, nl, r, groupV));
          return arith::AddIOp::create(
              nb, nl,
              arith::MulIOp::create(nb, nl, h, indexConst(nb, nl, headDim)),
              indexConst(nb, nl, c * lanes));
        };
        auto loadVec = [&](OpBuilder &nb, Location nl, Value m,
                           ValueRange idx) {
          auto type = VectorType::get(
              {lanes}, cast<MemRefType>(m.getType()).getElementType());
          return toF32(nb, nl, vector::LoadOp::create(nb, nl, type, m, idx));
        };
        // for r < rows whose token is the call's: body(r, token).
        auto forRows =
            [&](OpBuilder &nb, Location nl,
                function_ref<void(OpBuilder &, Location, Value, Value)> body) {
              scf::ForOp::create(
                  nb, nl, zero, indexConst(nb, nl, rows), one, ValueRange{},
                  [&](OpBuilder &rb, Location rl, Value r, ValueRange) {
                    Value s = rowToken(rb, rl, r);
                    Value inCall = arith::CmpIOp::create(
                        rb, rl, arith::CmpIPredicate::ult, s, seq);
                    scf::IfOp::create(rb, rl, inCall,
                                      [&](OpBuilder &ib, Location il) {
                                        body(ib, il, r, s);
                                        scf::YieldOp::create(ib, il);
                                      });
                    scf::YieldOp::create(rb, rl);
                  });
            };

        // The tile's running state on the stack.
        Value outTile = memref::AllocaOp::create(
            pb, l, MemRefType::get({rows, headDim}, f32));
        Value maxTile =
            memref::AllocaOp::create(pb, l, MemRefType::get({rows}, f32));
        Value sumTile =
            memref::AllocaOp::create(pb, l, MemRefType::get({rows}, f32));
        Value zeroVec = lowering::floatConst(pb, l, vecType, 0.0);
        Value negInf = lowering::floatConst(pb, l, f32, -inf);
        Value zeroF = lowering::floatConst(pb, l, f32, 0.0);
        forRows(pb, l, [&](OpBuilder &nb, Location nl, Value r, Value) {
          memref::StoreOp::create(nb, nl, negInf, maxTile, ValueRange{r});
          memref::StoreOp::create(nb, nl, zeroF, sumTile, ValueRange{r});
          for (int64_t c = 0; c < chunks; ++c)
            vector::StoreOp::create(
                nb, nl, zeroVec, outTile,
                ValueRange{r, indexConst(nb, nl, c * lanes)});
        });

        scf::ForOp::create(
            pb, l, keyBegin, keyEnd, indexConst(pb, l, block), ValueRange{},
            [&](OpBuilder &kb, Location kl, Value j0, ValueRange) {
              // The block's key rows, clamped to the tile's last key (the
              // rows past a token's position weigh 0).
              SmallVector<Value> keyRows;
              for (int64_t i = 0; i < block; ++i)
                keyRows.push_back(arith::MinUIOp::create(
                    kb, kl,
                    arith::AddIOp::create(kb, kl, j0, indexConst(kb, kl, i)),
                    lastKey));
              Value keyIndices = arith::AddIOp::create(
                  kb, kl, vector::StepOp::create(kb, kl, indexVec),
                  vector::BroadcastOp::create(kb, kl, indexVec, j0));
              forRows(
                  kb, kl, [&](OpBuilder &rb, Location rl, Value r, Value s) {
                    Value numKeys = keysOf(rb, rl, s);
                    // A token that sees none of the block's keys skips it.
                    Value sees = arith::CmpIOp::create(
                        rb, rl, arith::CmpIPredicate::ult, j0, numKeys);
                    scf::IfOp::create(
                        rb, rl, sees, [&](OpBuilder &ib, Location il) {
                          // The block's dot products, one accumulator
                          // per key, a vector of the query at a time: the
                          // keys' FMAs are independent (one chain per dot
                          // product made each wait on the one before).
                          SmallVector<Value> dots(block, zeroVec);
                          for (int64_t c = 0; c < chunks; ++c) {
                            Value query = loadVec(
                                ib, il, q,
                                ValueRange{bi, s, rowColumn(ib, il, r, c)});
                            for (int64_t i = 0; i < block; ++i)
                              dots[i] = vector::FMAOp::create(
                                  ib, il, query,
                                  loadVec(ib, il, kc,
                                          ValueRange{
                                              bi, g, keyRows[i],
                                              indexConst(ib, il, c * lanes)}),
                                  dots[i]);
                          }
                          Value blockScores = arith::MulFOp::create(
                              ib, il, sumLanesOfEach(ib, il, dots),
                              lowering::floatConst(ib, il, blockType, scale));
                          // Keys j0 + i < numKeys count; the others weigh 0.
                          Value inRange = arith::CmpIOp::create(
                              ib, il, arith::CmpIPredicate::ult, keyIndices,
                              vector::BroadcastOp::create(ib, il, indexVec,
                                                          numKeys));
                          Value masked = arith::SelectOp::create(
                              ib, il, inRange, blockScores,
                              lowering::floatConst(ib, il, blockType, -inf));
                          Value max = memref::LoadOp::create(ib, il, maxTile,
                                                             ValueRange{r});
                          Value newMax = arith::MaximumFOp::create(
                              ib, il, max,
                              vector::ReductionOp::create(
                                  ib, il, vector::CombiningKind::MAXIMUMF,
                                  masked));
                          // exp(-inf) is not left to the polynomial exp: the
                          // first block's rescaling and the masked keys'
                          // weights are selected.
                          Value rescale =
                              expOrZero(ib, il, max, newMax, negInf, zeroF);
                          Value weights = arith::SelectOp::create(
                              ib, il, inRange,
                              math::ExpOp::create(
                                  ib, il,
                                  arith::SubFOp::create(
                                      ib, il, blockScores,
                                      vector::BroadcastOp::create(
                                          ib, il, blockType, newMax))),
                              lowering::floatConst(ib, il, blockType, 0.0));
                          Value sum = memref::LoadOp::create(ib, il, sumTile,
                                                             ValueRange{r});
                          Value newSum = arith::AddFOp::create(
                              ib, il,
                              arith::MulFOp::create(ib, il, sum, rescale),
                              vector::ReductionOp::create(
                                  ib, il, vector::CombiningKind::ADD, weights));
                          memref::StoreOp::create(ib, il, newMax, maxTile,
                                                  ValueRange{r});
                          memref::StoreOp::create(ib, il, newSum, sumTile,
                                                  ValueRange{r});
                          // The output row rescaled and the block's
                          // values added, kAttentionOutputGroup vectors at
                          // a time.
                          Value rescaleVec = vector::BroadcastOp::create(
                              ib, il, vecType, rescale);
                          for (int64_t c0 = 0; c0 < chunks;
                               c0 += kAttentionOutputGroup) {
                            const int64_t c1 =
                                std::min(chunks, c0 + kAttentionOutputGroup);
                            SmallVector<Value> out;
                            for (int64_t c = c0; c < c1; ++c)
                              out.push_back(arith::MulFOp::create(
                                  ib, il,
                                  vector::LoadOp::create(
                                      ib, il, vecType, outTile,
                                      ValueRange{
                                          r, indexConst(ib, il, c * lanes)}),
                                  rescaleVec));
                            for (int64_t i = 0; i < block; ++i) {
                              Value w = vector::BroadcastOp::create(
                                  ib, il, vecType,
                                  vector::ExtractOp::create(
                                      ib, il, weights, ArrayRef<int64_t>{i}));
                              for (int64_t c = c0; c < c1; ++c)
                                out[c - c0] = vector::FMAOp::create(
                                    ib, il, w,
                                    loadVec(ib, il, vc,
                                            ValueRange{
                                                bi, g, keyRows[i],
                                                indexConst(ib, il, c * lanes)}),
                                    out[c - c0]);
                            }
                            for (int64_t c = c0; c < c1; ++c)
                              vector::StoreOp::create(
                                  ib, il, out[c - c0], outTile,
                                  ValueRange{r, indexConst(ib, il, c * lanes)});
                          }
                          scf::YieldOp::create(ib, il);
                        });
                  });
              scf::YieldOp::create(kb, kl);
            });

        // Each row divided by its sum, in the output's type.
        Type oElem = oType.getElementType();
        auto normalize = [&](OpBuilder &fb, Location fl) {
          forRows(fb, fl, [&](OpBuilder &nb, Location nl, Value r, Value s) {
            Value total = vector::BroadcastOp::create(
                nb, nl, vecType,
                memref::LoadOp::create(nb, nl, sumTile, ValueRange{r}));
            for (int64_t c = 0; c < chunks; ++c) {
              Value row = arith::DivFOp::create(
                  nb, nl,
                  vector::LoadOp::create(
                      nb, nl, vecType, outTile,
                      ValueRange{r, indexConst(nb, nl, c * lanes)}),
                  total);
              if (!oElem.isF32())
                row = arith::TruncFOp::create(
                    nb, nl, VectorType::get({lanes}, oElem), row);
              vector::StoreOp::create(
                  nb, nl, row, o, ValueRange{bi, s, rowColumn(nb, nl, r, c)});
            }
          });
        };
        if (!splitting) {
          normalize(pb, l);
          scf::ReduceOp::create(pb, l);
          return;
        }
        // With several splits, the rows' state goes to the scratch.
        Value alone =
            arith::CmpIOp::create(pb, l, arith::CmpIPredicate::eq, splits, one);
        scf::IfOp::create(
            pb, l, alone,
            [&](OpBuilder &tb, Location tl) {
              normalize(tb, tl);
              scf::YieldOp::create(tb, tl);
            },
            [&](OpBuilder &eb, Location el) {
              forRows(eb, el, [&](OpBuilder &nb, Location nl, Value r, Value) {
                SmallVector<Value> at{bi, tile, g, ivs[3], r};
                memref::StoreOp::create(
                    nb, nl,
                    memref::LoadOp::create(nb, nl, maxTile, ValueRange{r}),
                    partMax, at);
                memref::StoreOp::create(
                    nb, nl,
                    memref::LoadOp::create(nb, nl, sumTile, ValueRange{r}),
                    partSum, at);
                for (int64_t c = 0; c < chunks; ++c) {
                  Value column = indexConst(nb, nl, c * lanes);
                  SmallVector<Value> outAt(at);
                  outAt.push_back(column);
                  vector::StoreOp::create(
                      nb, nl,
                      vector::LoadOp::create(nb, nl, vecType, outTile,
                                             ValueRange{r, column}),
                      partOut, outAt);
                }
              });
              scf::YieldOp::create(eb, el);
            });
        scf::ReduceOp::create(pb, l);
      });

  // The splits of each row combined: weights exp(max_i - max) (0 for an
  // empty split), the weighted outputs over the weighted sums.
  if (splitting) {
    Value several =
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ugt, splits, one);
    scf::IfOp::create(b, loc, several, [&](OpBuilder &cb, Location cl) {
      scf::ParallelOp::create(
          cb, cl, ValueRange{zero, zero, zero},
          ValueRange{batch, tiles, kvHeadsV}, ValueRange{one, one, one},
          [&](OpBuilder &pb, Location l, ValueRange ivs) {
            Value bi = ivs[0], tile = ivs[1], g = ivs[2];
            Value t0 = arith::MulIOp::create(pb, l, tile, tileTokensV);
            Value groupV = indexConst(pb, l, group);
            Value negInf = lowering::floatConst(pb, l, f32, -inf);
            Value zeroF = lowering::floatConst(pb, l, f32, 0.0);
            Value zeroVec = lowering::floatConst(pb, l, vecType, 0.0);
            Type oElem = oType.getElementType();
            scf::ForOp::create(
                pb, l, zero, indexConst(pb, l, rows), one, ValueRange{},
                [&](OpBuilder &rb, Location rl, Value r, ValueRange) {
                  Value s = arith::AddIOp::create(
                      rb, rl, t0, arith::DivUIOp::create(rb, rl, r, groupV));
                  Value inCall = arith::CmpIOp::create(
                      rb, rl, arith::CmpIPredicate::ult, s, seq);
                  scf::IfOp::create(
                      rb, rl, inCall, [&](OpBuilder &ib, Location il) {
                        auto at = [&](Value sp) {
                          return SmallVector<Value>{bi, tile, g, sp, r};
                        };
                        auto overall = scf::ForOp::create(
                            ib, il, zero, splits, one, ValueRange{negInf},
                            [&](OpBuilder &fb, Location fl, Value sp,
                                ValueRange acc) {
                              Value m = memref::LoadOp::create(fb, fl, partMax,
                                                               at(sp));
                              scf::YieldOp::create(
                                  fb, fl,
                                  ValueRange{arith::MaximumFOp::create(
                                      fb, fl, acc[0], m)});
                            });
                        Value max = overall.getResult(0);
                        SmallVector<Value> init{zeroF};
                        init.append(chunks, zeroVec);
                        auto sums = scf::ForOp::create(
                            ib, il, zero, splits, one, init,
                            [&](OpBuilder &fb, Location fl, Value sp,
                                ValueRange acc) {
                              Value m = memref::LoadOp::create(fb, fl, partMax,
                                                               at(sp));
                              Value w =
                                  expOrZero(fb, fl, m, max, negInf, zeroF);
                              SmallVector<Value> next{arith::AddFOp::create(
                                  fb, fl, acc[0],
                                  arith::MulFOp::create(
                                      fb, fl, w,
                                      memref::LoadOp::create(fb, fl, partSum,
                                                             at(sp))))};
                              Value wVec = vector::BroadcastOp::create(
                                  fb, fl, vecType, w);
                              for (int64_t c = 0; c < chunks; ++c) {
                                SmallVector<Value> outAt = at(sp);
                                outAt.push_back(indexConst(fb, fl, c * lanes));
                                next.push_back(vector::FMAOp::create(
                                    fb, fl, wVec,
                                    vector::LoadOp::create(fb, fl, vecType,
                                                           partOut, outAt),
                                    acc[1 + c]));
                              }
                              scf::YieldOp::create(fb, fl, next);
                            });
                        Value total = vector::BroadcastOp::create(
                            ib, il, vecType, sums.getResult(0));
                        Value h = arith::AddIOp::create(
                            ib, il, arith::MulIOp::create(ib, il, g, groupV),
                            arith::RemUIOp::create(ib, il, r, groupV));
                        for (int64_t c = 0; c < chunks; ++c) {
                          Value row = arith::DivFOp::create(
                              ib, il, sums.getResult(1 + c), total);
                          if (!oElem.isF32())
                            row = arith::TruncFOp::create(
                                ib, il, VectorType::get({lanes}, oElem), row);
                          Value column = arith::AddIOp::create(
                              ib, il,
                              arith::MulIOp::create(
                                  ib, il, h, indexConst(ib, il, headDim)),
                              indexConst(ib, il, c * lanes));
                          vector::StoreOp::create(ib, il, row, o,
                                                  ValueRange{bi, s, column});
                        }
                        scf::YieldOp::create(ib, il);
                      });
                  scf::YieldOp::create(rb, rl);
                });
            scf::ReduceOp::create(pb, l);
          });
      scf::YieldOp::create(cb, cl);
    });
  }
  b.replaceOp(op, {lowering::bufferResult(b, loc, oType, o), kcNew, vcNew});
  return success();
}

/// Bounds of the pass options (far beyond any useful value).
constexpr int64_t kMaxLanes = 64;
constexpr int64_t kMaxPanelBytes = int64_t(1) << 40;
constexpr int64_t kMaxPrefetchRows = 1024;
constexpr int64_t kMaxSplitKeys = int64_t(1) << 40;

struct JambaCpuMicrokernelsPass
    : jamba::impl::JambaCpuMicrokernelsPassBase<JambaCpuMicrokernelsPass> {
  using Base::Base;

  void runOnOperation() override {
    // Bounded so that the tile arithmetic (lanes times the unroll, rows
    // times the panel) cannot overflow.
    if (lanes < 1 || lanes > kMaxLanes || panelBytes < 1 ||
        panelBytes > kMaxPanelBytes || prefetchRows < 0 ||
        prefetchRows > kMaxPrefetchRows) {
      mlir::emitError(getOperation().getLoc())
          << "jamba-cpu-microkernels: lanes must be in [1, " << kMaxLanes
          << "], panel-bytes in [1, " << kMaxPanelBytes
          << "] and prefetch-rows in [0, " << kMaxPrefetchRows << "] (got "
          << static_cast<int64_t>(lanes) << ", "
          << static_cast<int64_t>(panelBytes) << " and "
          << static_cast<int64_t>(prefetchRows) << ")";
      return signalPassFailure();
    }
    if (attentionSplitKeys < 0 || attentionSplitKeys > kMaxSplitKeys) {
      mlir::emitError(getOperation().getLoc())
          << "jamba-cpu-microkernels: attention-split-keys must be in [0, "
          << kMaxSplitKeys << "], got "
          << static_cast<int64_t>(attentionSplitKeys);
      return signalPassFailure();
    }
    KernelOptions options{lanes, panelBytes, prefetchRows, attentionSplitKeys};
    SmallVector<Operation *> ops;
    getOperation().walk([&](Operation *op) {
      if (isa<LinearOp, ExpertGemmOp, SelectiveScanOp, CachedAttentionOp>(op))
        ops.push_back(op);
    });
    IRRewriter rewriter(&getContext());
    for (Operation *op : ops) {
      // What a kernel does not cover (f64, a d_inner that is not a whole
      // number of vector blocks...) stays for convert-jamba-to-linalg.
      if (auto linear = dyn_cast<LinearOp>(op))
        (void)lowerLinear(rewriter, linear, options);
      else if (auto scan = dyn_cast<SelectiveScanOp>(op))
        (void)lowerSelectiveScan(rewriter, scan, options);
      else if (auto attention = dyn_cast<CachedAttentionOp>(op))
        (void)lowerCachedAttention(rewriter, attention, options);
      else
        (void)lowerExpertGemm(rewriter, cast<ExpertGemmOp>(op), options);
    }
  }
};

} // namespace

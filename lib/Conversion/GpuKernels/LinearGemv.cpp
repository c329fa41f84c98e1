//===- LinearGemv.cpp - Dense linears of a few rows on GPUs ---------------===//
//
// Part of jamba-mlir. jamba-gpu-library-gemms gives the rows cuBLAS serves
// poorly to this kernel: a decode step's y = x w^T of a few rows is a
// matrix-vector product, bound by reading the weight once (see
// buildLinearGemv).
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
using lowering::floatConst;
using lowering::indexConst;

namespace {

/// Bytes of one vector load (a 128-bit load on a GPU).
constexpr int64_t kVectorBytes = 16;

/// `width` elements of `memref[row, k..]` as one aligned vector load,
/// widened to f32.
Value vectorF32(OpBuilder &b, Location loc, Value memref, Value row, Value k,
                int64_t width) {
  Type elem = cast<MemRefType>(memref.getType()).getElementType();
  Value v = vector::LoadOp::create(
      b, loc, VectorType::get({width}, elem), memref, ValueRange{row, k},
      /*nontemporal=*/false, llvm::MaybeAlign(kVectorBytes));
  if (elem.isF32())
    return v;
  return arith::ExtFOp::create(b, loc, VectorType::get({width}, b.getF32Type()),
                               v);
}

} // namespace

/// One warp per output (row m, column n): lane l reads the 16-byte vectors
/// l, l + 32, l + 64, ... of weight row n and of input row m (V = 16 /
/// element bytes elements each), kLoadsInFlight weight vectors loaded before
/// the first is used, and accumulates in f32 (fused multiply-adds); five
/// butterfly shuffles sum the lanes and lane 0 stores. A warp thus reads 512
/// consecutive bytes of the weight per step, every byte once; the nest is
/// (n, m, lane), so the warps of one n (its rows m) run together and share
/// the weight row through the cache. Unaligned buffers or a K that is not a
/// multiple of V: scalar loads, k = l, l + 32, ... On the H200 (2026-11-30)
/// it read Jamba-1.5-Mini's 65536 x 4096 head at 4.17 TB/s, 2.4x cuBLAS's
/// rate at one row.
///
/// `emulate` (a test aid): the warp is one iteration whose lanes run in
/// turn and add up in order, so that the lanes' shares of K run on a CPU.
void gpukernels::buildLinearGemv(OpBuilder &b, Location loc, Value y, Value x,
                                 Value w, Value rows, bool emulate) {
  Type f32 = b.getF32Type();
  Type elem = cast<MemRefType>(w.getType()).getElementType();
  const int64_t v = kVectorBytes / (elem.getIntOrFloatBitWidth() / 8);
  Value zero = indexConst(b, loc, 0);
  Value n = dim(b, loc, w, 0), kDim = dim(b, loc, w, 1);
  Value vectors =
      vectorChunksUsable(b, loc, w, kVectorBytes, x, kVectorBytes, kDim, v);
  SmallVector<Value> dims{n, rows};
  if (!emulate)
    dims.push_back(indexConst(b, loc, kWarpLanes));

  parallel(
      b, loc, "linear_gemv", dims,
      [&](OpBuilder &pb, Location l, ValueRange iv) {
        Value nn = iv[0], m = iv[1];
        // Lane `lane`'s share of the dot product of x[m] and w[nn].
        auto share = [&](OpBuilder &sb, Location sl, Value lane) {
          auto vectorShare = [&](OpBuilder &tb, Location tl) {
            VectorType accType = VectorType::get({v}, f32);
            Value acc = accumulateLaneChunks(
                tb, tl, divC(tb, tl, kDim, v), lane,
                indexConst(tb, tl, kWarpLanes),
                floatConst(tb, tl, accType, 0.0),
                [&](OpBuilder &kb, Location kl, Value j) {
                  return vectorF32(kb, kl, w, nn, mulC(kb, kl, j, v), v);
                },
                [&](OpBuilder &kb, Location kl, Value j, Value wv, Value a) {
                  Value xv = vectorF32(kb, kl, x, m, mulC(kb, kl, j, v), v);
                  return math::FmaOp::create(kb, kl, xv, wv, a).getResult();
                });
            scf::YieldOp::create(tb, tl,
                                 Value(vector::ReductionOp::create(
                                     tb, tl, vector::CombiningKind::ADD, acc)));
          };
          auto scalarShare = [&](OpBuilder &eb, Location el) {
            Value s =
                scf::ForOp::create(
                    eb, el, lane, kDim, indexConst(eb, el, kWarpLanes),
                    ValueRange{floatConst(eb, el, f32, 0.0)},
                    [&](OpBuilder &kb, Location kl, Value k, ValueRange a) {
                      Value p = mulF(kb, kl, loadF32(kb, kl, x, {m, k}),
                                     loadF32(kb, kl, w, {nn, k}));
                      scf::YieldOp::create(kb, kl, addF(kb, kl, a[0], p));
                    })
                    .getResult(0);
            scf::YieldOp::create(eb, el, s);
          };
          return scf::IfOp::create(sb, sl, vectors, vectorShare, scalarShare)
              .getResult(0);
        };

        Value sum;
        if (emulate) {
          sum =
              loop(pb, l, zero, indexConst(pb, l, kWarpLanes),
                   {floatConst(pb, l, f32, 0.0)},
                   [&](OpBuilder &lb, Location ll, Value lane, ValueRange acc) {
                     return SmallVector<Value>{
                         addF(lb, ll, acc[0], share(lb, ll, lane))};
                   })
                  .getResult(0);
          storeF32(pb, l, sum, y, {m, nn});
          return;
        }
        Value lane = iv[2];
        sum = butterflySum(pb, l, share(pb, l, lane));
        Value first =
            arith::CmpIOp::create(pb, l, arith::CmpIPredicate::eq, lane, zero);
        scf::IfOp::create(pb, l, first, [&](OpBuilder &tb, Location tl) {
          storeF32(tb, tl, sum, y, {m, nn});
          scf::YieldOp::create(tb, tl);
        });
      });
}

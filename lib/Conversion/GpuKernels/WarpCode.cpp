//===- WarpCode.cpp - A warp's code for GPUs and its CPU emulation --------===//
//
// Part of jamba-mlir.
//
//===----------------------------------------------------------------------===//

#include "WarpCode.h"

#include "../JambaToLinalg/LoweringUtils.h"
#include "KernelUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::jamba;
using namespace mlir::jamba::gpukernels;
using lowering::floatConst;
using lowering::indexConst;

WarpCode::Regs WarpCode::splat(OpBuilder &b, Location loc, Type type,
                               int64_t count, double value) const {
  if (!emulated())
    return {SmallVector<Value>(count, floatConst(b, loc, type, value)), count};
  auto vec = VectorType::get({kWarpLanes * count}, type);
  auto splat = DenseElementsAttr::get(
      vec, ArrayRef<Attribute>{b.getFloatAttr(type, value)});
  Value v = arith::ConstantOp::create(b, loc, vec, cast<TypedAttr>(splat));
  return {{v}, count};
}

SmallVector<WarpCode::Regs> WarpCode::eachLane(OpBuilder &b, Location loc,
                                               ArrayRef<Regs> in,
                                               ArrayRef<Type> outTypes,
                                               ArrayRef<int64_t> outCounts,
                                               LaneBody body) const {
  if (!emulated()) {
    SmallVector<SmallVector<Value>> lanesIn;
    for (const Regs &r : in)
      lanesIn.push_back(r.values);
    SmallVector<SmallVector<Value>> out = body(b, loc, lane, lanesIn);
    SmallVector<Regs> result;
    for (auto [values, count] : llvm::zip_equal(out, outCounts)) {
      assert(static_cast<int64_t>(values.size()) == count);
      result.push_back({values, count});
    }
    return result;
  }
  SmallVector<Value> inits;
  for (auto [type, count] : llvm::zip_equal(outTypes, outCounts)) {
    auto vec = VectorType::get({kWarpLanes * count}, type);
    inits.push_back(arith::ConstantOp::create(b, loc, vec, b.getZeroAttr(vec)));
  }
  auto each = loop(
      b, loc, indexConst(b, loc, 0), indexConst(b, loc, kWarpLanes), inits,
      [&](OpBuilder &lb, Location ll, Value l, ValueRange acc) {
        SmallVector<SmallVector<Value>> lanesIn;
        for (const Regs &r : in) {
          Value base = mulC(lb, ll, l, r.count);
          SmallVector<Value> values;
          for (int64_t i = 0; i < r.count; ++i)
            values.push_back(at(lb, ll, r.values[0],
                                addI(lb, ll, base, indexConst(lb, ll, i))));
          lanesIn.push_back(values);
        }
        SmallVector<SmallVector<Value>> out = body(lb, ll, l, lanesIn);
        SmallVector<Value> next;
        for (auto [values, count, into] :
             llvm::zip_equal(out, outCounts, acc)) {
          assert(static_cast<int64_t>(values.size()) == count);
          Value base = mulC(lb, ll, l, count), v = into;
          for (int64_t i = 0; i < count; ++i)
            v = vector::InsertOp::create(
                lb, ll, values[i], v,
                ArrayRef<OpFoldResult>{
                    addI(lb, ll, base, indexConst(lb, ll, i))});
          next.push_back(v);
        }
        return next;
      });
  SmallVector<Regs> result;
  for (auto [v, count] : llvm::zip_equal(each.getResults(), outCounts))
    result.push_back({{v}, count});
  return result;
}

WarpCode::Regs WarpCode::mma(OpBuilder &b, Location loc, const Regs &a,
                             const Regs &bm, const Regs &c) const {
  Type f32 = b.getF32Type();
  if (!emulated()) {
    auto accType =
        LLVM::LLVMStructType::getLiteral(b.getContext(), {f32, f32, f32, f32});
    Value res =
        NVVM::MmaOp::create(b, loc, accType, a.values, bm.values, c.values,
                            {16, 8, 16}, std::nullopt, std::nullopt,
                            std::array<NVVM::MMATypes, 2>{NVVM::MMATypes::bf16,
                                                          NVVM::MMATypes::bf16},
                            std::array<NVVM::MMALayout, 2>{
                                NVVM::MMALayout::row, NVVM::MMALayout::col});
    Regs d{{}, 4};
    for (int64_t i = 0; i < 4; ++i)
      d.values.push_back(LLVM::ExtractValueOp::create(b, loc, res, i));
    return d;
  }
  // Accumulator i of lane L = 4 g + q is D[row g + 8 (i / 2)][column 2 q
  // + i % 2] = C + the sum over k < 16 of A[row][k] B[k][column], where
  // A[r][k] is half k % 2 of register (r / 8) + 2 (k / 8) of lane 4 (r %
  // 8) + (k % 8) / 2, and B[k][col] half k % 2 of register k / 8 of lane
  // 4 col + (k % 8) / 2.
  Value all =
      loop(
          b, loc, indexConst(b, loc, 0), indexConst(b, loc, kWarpLanes * 4),
          {c.values[0]},
          [&](OpBuilder &ob, Location ol, Value idx, ValueRange acc) {
            auto div = [&](Value x, int64_t d) { return divC(ob, ol, x, d); };
            auto rem = [&](Value x, int64_t d) { return remC(ob, ol, x, d); };
            auto times = [&](Value x, int64_t m) { return mulC(ob, ol, x, m); };
            auto plus = [&](Value x, Value y) { return addI(ob, ol, x, y); };
            Value l = div(idx, 4), i = rem(idx, 4);
            Value row = plus(div(l, 4), times(div(i, 2), 8));
            Value col = plus(times(rem(l, 4), 2), rem(i, 2));
            Value sum =
                loop(ob, ol, indexConst(ob, ol, 0), indexConst(ob, ol, 16),
                     {at(ob, ol, acc[0], idx)},
                     [&](OpBuilder &kb, Location kl, Value k, ValueRange part) {
                       auto kdiv = [&](Value x, int64_t d) {
                         return divC(kb, kl, x, d);
                       };
                       auto krem = [&](Value x, int64_t d) {
                         return remC(kb, kl, x, d);
                       };
                       auto kplus = [&](Value x, Value y) {
                         return addI(kb, kl, x, y);
                       };
                       Value pair = kdiv(krem(k, 8), 2), half = krem(k, 2);
                       Value ownerA =
                           kplus(mulC(kb, kl, krem(row, 8), 4), pair);
                       Value regA =
                           kplus(kdiv(row, 8), mulC(kb, kl, kdiv(k, 8), 2));
                       Value av =
                           unpackHalf(kb, kl,
                                      at(kb, kl, a.values[0],
                                         kplus(mulC(kb, kl, ownerA, 4), regA)),
                                      half);
                       Value ownerB = kplus(mulC(kb, kl, col, 4), pair);
                       Value bv = unpackHalf(
                           kb, kl,
                           at(kb, kl, bm.values[0],
                              kplus(mulC(kb, kl, ownerB, 2), kdiv(k, 8))),
                           half);
                       return SmallVector<Value>{
                           addF(kb, kl, part[0], mulF(kb, kl, av, bv))};
                     })
                    .getResult(0);
            return SmallVector<Value>{vector::InsertOp::create(
                ob, ol, sum, acc[0], ArrayRef<OpFoldResult>{idx})};
          })
          .getResult(0);
  return {{all}, 4};
}

SmallVector<Value> gpukernels::butterflyReduce(
    OpBuilder &b, Location loc, ValueRange values,
    function_ref<SmallVector<Value>(OpBuilder &, Location, ValueRange,
                                    ValueRange)>
        combine,
    int64_t lanes) {
  SmallVector<Value> mine(values);
  for (int64_t offset = lanes / 2; offset >= 1; offset /= 2) {
    SmallVector<Value> theirs;
    for (Value v : mine)
      theirs.push_back(gpu::ShuffleOp::create(b, loc, v,
                                              static_cast<int32_t>(offset),
                                              kWarpLanes, gpu::ShuffleMode::XOR)
                           .getShuffleResult());
    mine = combine(b, loc, mine, theirs);
  }
  return mine;
}

Value gpukernels::butterflySum(OpBuilder &b, Location loc, Value v,
                               int64_t lanes) {
  return butterflyReduce(
      b, loc, v,
      [](OpBuilder &nb, Location nl, ValueRange mine, ValueRange theirs) {
        return SmallVector<Value>{addF(nb, nl, mine[0], theirs[0])};
      },
      lanes)[0];
}

WarpCode::Regs WarpCode::quadReduce(
    OpBuilder &b, Location loc, const Regs &x,
    function_ref<Value(OpBuilder &, Location, Value, Value)> combine) const {
  // Two butterfly rounds: (x_L . x_{L^1}), then that . its value in lane
  // L ^ 2, which is (x_{L^2} . x_{L^3}).
  Type type = getElementTypeOrSelf(x.values[0].getType());
  Regs v = x;
  for (int64_t offset : {1, 2}) {
    Regs other = shuffleXor(b, loc, v, offset);
    v = eachLane(b, loc, {v, other}, {type}, {x.count},
                 [&](OpBuilder &lb, Location ll, Value,
                     ArrayRef<SmallVector<Value>> in) {
                   SmallVector<Value> out;
                   for (auto [mine, theirs] : llvm::zip_equal(in[0], in[1]))
                     out.push_back(combine(lb, ll, mine, theirs));
                   return SmallVector<SmallVector<Value>>{out};
                 })[0];
  }
  return v;
}

WarpCode::Regs WarpCode::gather(
    OpBuilder &b, Location loc, const Regs &x,
    function_ref<Value(OpBuilder &, Location, Value lane)> source) const {
  const int64_t n = x.count;
  Value all =
      loop(b, loc, indexConst(b, loc, 0), indexConst(b, loc, kWarpLanes * n),
           {x.values[0]},
           [&](OpBuilder &ob, Location ol, Value idx, ValueRange acc) {
             Value l = divC(ob, ol, idx, n), r = remC(ob, ol, idx, n);
             Value from = addI(ob, ol, mulC(ob, ol, source(ob, ol, l), n), r);
             return SmallVector<Value>{
                 vector::InsertOp::create(ob, ol, at(ob, ol, x.values[0], from),
                                          acc[0], ArrayRef<OpFoldResult>{idx})};
           })
          .getResult(0);
  return {{all}, n};
}

WarpCode::Regs WarpCode::shuffleFrom(
    OpBuilder &b, Location loc, const Regs &x,
    function_ref<Value(OpBuilder &, Location, Value lane)> source) const {
  if (emulated())
    return gather(b, loc, x, source);
  Value from =
      arith::IndexCastOp::create(b, loc, b.getI32Type(), source(b, loc, lane));
  Value width =
      arith::ConstantIntOp::create(b, loc, b.getI32Type(), kWarpLanes);
  Regs r{{}, x.count};
  for (Value v : x.values)
    r.values.push_back(
        gpu::ShuffleOp::create(b, loc, v, from, width, gpu::ShuffleMode::IDX)
            .getShuffleResult());
  return r;
}

WarpCode::Regs WarpCode::shuffleXor(OpBuilder &b, Location loc, const Regs &x,
                                    int64_t mask) const {
  if (emulated())
    return gather(b, loc, x, [&](OpBuilder &sb, Location sl, Value l) {
      return Value(arith::XOrIOp::create(sb, sl, l, indexConst(sb, sl, mask)));
    });
  Regs r{{}, x.count};
  for (Value v : x.values)
    r.values.push_back(gpu::ShuffleOp::create(b, loc, v,
                                              static_cast<int32_t>(mask),
                                              kWarpLanes, gpu::ShuffleMode::XOR)
                           .getShuffleResult());
  return r;
}

SmallVector<Value> WarpCode::flatten(ArrayRef<Regs> sets) {
  SmallVector<Value> all;
  for (const Regs &r : sets)
    all.append(r.values);
  return all;
}

SmallVector<WarpCode::Regs>
WarpCode::unflatten(ValueRange values, ArrayRef<int64_t> counts) const {
  SmallVector<Regs> sets;
  for (int64_t count : counts) {
    const int64_t n = emulated() ? 1 : count;
    sets.push_back({SmallVector<Value>(values.take_front(n)), count});
    values = values.drop_front(n);
  }
  return sets;
}

Value WarpCode::at(OpBuilder &b, Location loc, Value v, Value index) {
  return vector::ExtractOp::create(b, loc, v, ArrayRef<OpFoldResult>{index});
}

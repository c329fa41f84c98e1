//===- WarpCode.h - A warp's code and its CPU emulation ---------*- C++ -*-===//
//
// Part of jamba-mlir. The tensor-core kernels of jamba-gpu-kernels (the
// grouped expert GEMM and flash attention) are written once against
// WarpCode, which builds either per-lane GPU code or its emulation on CPUs.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_LIB_CONVERSION_GPUKERNELS_WARPCODE_H
#define JAMBA_LIB_CONVERSION_GPUKERNELS_WARPCODE_H

#include "mlir/IR/Builders.h"

namespace mlir::jamba::gpukernels {

/// Threads of a warp, which an mma.sync takes together.
constexpr int64_t kWarpLanes = 32;

/// A warp's code written once for two targets.
///
/// On a GPU the lanes are threads (the innermost dimension of their nest:
/// kWarpLanes iterations) and a lane's registers are SSA values; the
/// warp-wide steps are `nvvm.mma.sync` and `gpu.shuffle`.
///
/// Emulated (a test aid, so that the kernel runs on CPUs against the
/// reference interpreter) the warp is one iteration and a register set is
/// one flat vector of every lane's registers, lane-major: per-lane code runs
/// in a loop over the lanes, an mma.sync computes what the PTX ISA defines
/// from the owning lanes' registers, and a shuffle reads the other lane's
/// element. The vectors are SSA values, not memory: nothing to free.
class WarpCode {
public:
  /// `count` registers of one type per lane: the lane's values on a GPU,
  /// one vector of kWarpLanes * count elements emulated.
  struct Regs {
    SmallVector<Value> values;
    int64_t count = 0;
  };
  using LaneBody = function_ref<SmallVector<SmallVector<Value>>(
      OpBuilder &, Location, Value lane, ArrayRef<SmallVector<Value>> in)>;

  /// `lane` is the lane's index on a GPU, null emulated.
  explicit WarpCode(Value lane) : lane(lane) {}
  bool emulated() const { return !lane; }

  /// `count` registers holding `value` (of `type`).
  Regs splat(OpBuilder &b, Location loc, Type type, int64_t count,
             double value) const;

  /// Runs `body` for each lane on its registers of `in`; it returns the
  /// lane's registers of each output set, `outCounts[i]` of `outTypes[i]`.
  SmallVector<Regs> eachLane(OpBuilder &b, Location loc, ArrayRef<Regs> in,
                             ArrayRef<Type> outTypes,
                             ArrayRef<int64_t> outCounts, LaneBody body) const;

  /// eachLane with `sets` output sets of `count` registers of `type` and no
  /// inputs (a lane's loads).
  SmallVector<Regs> eachLane(OpBuilder &b, Location loc, Type type,
                             int64_t sets, int64_t count, LaneBody body) const {
    return eachLane(b, loc, {}, SmallVector<Type>(sets, type),
                    SmallVector<int64_t>(sets, count), body);
  }

  /// d = a b + c, mma.sync m16n8k16, bf16 a (4 registers) and b (2), f32 c
  /// and d (4).
  Regs mma(OpBuilder &b, Location loc, const Regs &a, const Regs &bm,
           const Regs &c) const;

  /// Each register combined over the 4 lanes of its quad (lanes 4 g ..
  /// 4 g + 3: one row of an mma fragment) by `combine`, as two butterfly
  /// shuffles do it: (x_L . x_{L^1}) . (x_{L^2} . x_{L^3}).
  Regs quadReduce(
      OpBuilder &b, Location loc, const Regs &x,
      function_ref<Value(OpBuilder &, Location, Value, Value)> combine) const;

  /// Register i of lane `source(lane)`, in each lane: one `gpu.shuffle idx`
  /// per register on a GPU (every lane of the warp must reach it, and
  /// `source` must be a lane of the warp).
  Regs shuffleFrom(
      OpBuilder &b, Location loc, const Regs &x,
      function_ref<Value(OpBuilder &, Location, Value lane)> source) const;

  /// Register i of lane `lane ^ mask`, in each lane (`gpu.shuffle xor`).
  Regs shuffleXor(OpBuilder &b, Location loc, const Regs &x,
                  int64_t mask) const;

  /// The values of `sets` in one list (an scf.for's iteration arguments)
  /// and back.
  static SmallVector<Value> flatten(ArrayRef<Regs> sets);
  SmallVector<Regs> unflatten(ValueRange values,
                              ArrayRef<int64_t> counts) const;

private:
  /// Emulated shuffles: register i of lane `source(lane)`.
  Regs
  gather(OpBuilder &b, Location loc, const Regs &x,
         function_ref<Value(OpBuilder &, Location, Value lane)> source) const;

  /// Element `index` of the emulated register vector `v`.
  static Value at(OpBuilder &b, Location loc, Value v, Value index);

  Value lane;
};

/// On a GPU: `values` combined over each aligned group of `lanes` lanes (a
/// power of two dividing kWarpLanes), in every lane of the group: log2(lanes)
/// butterfly rounds (offsets lanes / 2 down to 1), each shuffling every
/// value (`gpu.shuffle xor`) and replacing the lane's values by
/// `combine(mine, the partner's)`. `combine` must be commutative and
/// associative for every lane to get the same result. Every lane of the
/// warp must reach it (not under a branch that splits the warp).
SmallVector<Value> butterflyReduce(
    OpBuilder &b, Location loc, ValueRange values,
    function_ref<SmallVector<Value>(OpBuilder &, Location, ValueRange mine,
                                    ValueRange theirs)>
        combine,
    int64_t lanes = kWarpLanes);

/// On a GPU: the sum of the f32 `v` over each aligned group of `lanes`
/// lanes (a power of two dividing kWarpLanes), in every lane of the group:
/// log2(lanes) butterfly shuffles (`gpu.shuffle xor`, offsets lanes / 2
/// down to 1), each adding the partner lane's value. Every lane of the
/// warp must reach it (not under a branch that splits the warp).
Value butterflySum(OpBuilder &b, Location loc, Value v,
                   int64_t lanes = kWarpLanes);

} // namespace mlir::jamba::gpukernels

#endif // JAMBA_LIB_CONVERSION_GPUKERNELS_WARPCODE_H

//===- GpuKernels.cpp - The jamba-gpu-kernels pass ------------------------===//
//
// Part of jamba-mlir. The jamba primitives whose linalg lowering needs
// sequential loops over tensors (selective_scan, causal_conv1d,
// cached_attention, router_topk) as `scf.parallel` loop nests on buffers:
// one parallel iteration per independent item (a (sequence, channel) pair of
// the scan and the conv, a (sequence, token, head) triple of attention, a
// row of the router), its sequential work inside the iteration. No
// iteration reads what another one writes, so each nest is one GPU kernel
// once jamba-gpu-map-loops and convert-parallel-loops-to-gpu have mapped it
// onto blocks and threads, and the same IR also runs on CPUs (which is how
// the kernels' numerics are tested without a GPU).
//
// Like jamba-cpu-microkernels, the kernels read their operands through
// `bufferization.to_buffer read_only`, write a fresh `memref.alloc` and
// return it with `bufferization.to_tensor restrict writable`. The KV caches
// are the exception: the new rows are written into the cache's own buffer
// (a writable `to_buffer`), so that bufferization keeps the cache in place.
//
//===----------------------------------------------------------------------===//

#include "JambaToLinalg/LoweringUtils.h"

#include "jamba/Conversion/Passes.h"
#include "jamba/Dialect/Jamba/IR/JambaOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/SCF/Transforms/Transforms.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/TypeSwitch.h"

#include <algorithm>
#include <functional>

namespace mlir::jamba {
#define GEN_PASS_DEF_JAMBAGPUKERNELSPASS
#define GEN_PASS_DEF_JAMBAPARALLELCOPIESTOLOOPSPASS
#include "jamba/Conversion/Passes.h.inc"
} // namespace mlir::jamba

using namespace mlir;
using namespace mlir::jamba;
using lowering::convertScalar;
using lowering::floatConst;
using lowering::indexConst;

namespace {

Value dim(OpBuilder &b, Location loc, Value memref, int64_t d) {
  return memref::DimOp::create(b, loc, memref, d);
}

Value load(OpBuilder &b, Location loc, Value memref, ValueRange indices) {
  return memref::LoadOp::create(b, loc, memref, indices);
}

/// Loads `memref[indices]` as f32.
Value loadF32(OpBuilder &b, Location loc, Value memref, ValueRange indices) {
  return convertScalar(b, loc, load(b, loc, memref, indices), b.getF32Type());
}

/// Stores the f32 `value` into `memref[indices]` in its element type.
void storeF32(OpBuilder &b, Location loc, Value value, Value memref,
              ValueRange indices) {
  Type elem = cast<MemRefType>(memref.getType()).getElementType();
  memref::StoreOp::create(b, loc, convertScalar(b, loc, value, elem), memref,
                          indices);
}

/// An index loaded from an integer buffer (i32 or i64).
Value loadIndex(OpBuilder &b, Location loc, Value memref, ValueRange indices) {
  Value v = load(b, loc, memref, indices);
  return arith::IndexCastOp::create(b, loc, b.getIndexType(), v);
}

/// Names the kernel `loop` becomes: the loop and its stores carry the name
/// (canonicalization may rebuild the loop without its attributes, e.g. to
/// drop a unit dimension, but keeps its body).
void nameKernel(Operation *loop, StringAttr name) {
  loop->setAttr(kKernelNameAttr, name);
  loop->walk(
      [&](memref::StoreOp store) { store->setAttr(kKernelNameAttr, name); });
}

/// `scf.parallel` over [0, ub_i) for each i, with `body(ivs)`, named
/// `kernel` (kKernelNameAttr: the GPU kernel it becomes is named after it).
void parallel(OpBuilder &b, Location loc, StringRef kernel,
              ArrayRef<Value> upperBounds,
              function_ref<void(OpBuilder &, Location, ValueRange)> body) {
  SmallVector<Value> lbs(upperBounds.size(), indexConst(b, loc, 0));
  SmallVector<Value> steps(upperBounds.size(), indexConst(b, loc, 1));
  auto loop = scf::ParallelOp::create(
      b, loc, lbs, upperBounds, steps,
      [&](OpBuilder &nb, Location nl, ValueRange ivs) { body(nb, nl, ivs); });
  nameKernel(loop, b.getStringAttr(kernel));
}

/// `scf.for` over [lb, ub) carrying `inits`.
scf::ForOp
loop(OpBuilder &b, Location loc, Value lb, Value ub, ValueRange inits,
     function_ref<SmallVector<Value>(OpBuilder &, Location, Value, ValueRange)>
         body) {
  return scf::ForOp::create(
      b, loc, lb, ub, indexConst(b, loc, 1), inits,
      [&](OpBuilder &nb, Location nl, Value iv, ValueRange args) {
        scf::YieldOp::create(nb, nl, body(nb, nl, iv, args));
      });
}

Value addF(OpBuilder &b, Location loc, Value x, Value y) {
  return arith::AddFOp::create(b, loc, x, y);
}
Value mulF(OpBuilder &b, Location loc, Value x, Value y) {
  return arith::MulFOp::create(b, loc, x, y);
}
Value addI(OpBuilder &b, Location loc, Value x, Value y) {
  return arith::AddIOp::create(b, loc, x, y);
}

/// x / d, x % d and x * m for an index x and a constant.
Value divC(OpBuilder &b, Location loc, Value x, int64_t d) {
  return arith::DivUIOp::create(b, loc, x, indexConst(b, loc, d));
}
Value remC(OpBuilder &b, Location loc, Value x, int64_t d) {
  return arith::RemUIOp::create(b, loc, x, indexConst(b, loc, d));
}
Value mulC(OpBuilder &b, Location loc, Value x, int64_t m) {
  return arith::MulIOp::create(b, loc, x, indexConst(b, loc, m));
}

bool isF32Compatible(Type t) {
  Type e = getElementTypeOrSelf(t);
  return e.isF32() || e.isBF16() || e.isF16();
}

//===----------------------------------------------------------------------===//
// Results read in a narrower type
//===----------------------------------------------------------------------===//

/// The element type `generic` converts `value` to, when it is nothing but
/// an elementwise conversion of `value` into a fresh tensor of the same
/// shape (jamba-gpu-library-gemms' copy of a GEMM input in the weight's
/// type, `arith.truncf` to bf16); null otherwise.
Type conversionTarget(Operation *user, Value value) {
  auto generic = dyn_cast<linalg::GenericOp>(user);
  if (!generic || generic.getNumDpsInputs() != 1 ||
      generic.getNumResults() != 1 ||
      generic.getDpsInputOperand(0)->get() != value ||
      generic.getNumReductionLoops() != 0 ||
      !llvm::all_of(generic.getIndexingMapsArray(),
                    [](AffineMap m) { return m.isIdentity(); }) ||
      cast<ShapedType>(generic.getResultTypes()[0]).getShape() !=
          cast<ShapedType>(value.getType()).getShape())
    return Type();
  Block &body = generic.getRegion().front();
  if (body.getOperations().size() != 2)
    return Type();
  auto trunc = dyn_cast<arith::TruncFOp>(body.front());
  auto yield = cast<linalg::YieldOp>(body.getTerminator());
  // (Only the default rounding: the kernels' stores round to nearest even.)
  if (!trunc || trunc.getRoundingmodeAttr() ||
      (trunc.getFastmathAttr() &&
       trunc.getFastmath() != arith::FastMathFlags::none) ||
      trunc.getIn() != body.getArgument(0) || yield.getValues().size() != 1 ||
      yield.getValues()[0] != trunc)
    return Type();
  return trunc.getType();
}

/// A kernel's f32 result and the readers that only convert it to one
/// narrower type (conversionTarget: jamba-gpu-library-gemms' bf16 copies of
/// cuBLAS GEMM inputs). The kernel stores each value in that type too (the
/// same f32 value rounded once, as the conversion would), the conversions
/// go, and the f32 buffer is written only if something else reads it: one
/// kernel launch less per converted result.
class NarrowedResult {
public:
  /// Sorts the readers of `result` (only of f32 results: a narrower result
  /// is rounded to its own type first).
  explicit NarrowedResult(Value result) : result(result) {
    auto type = cast<RankedTensorType>(result.getType());
    for (Operation *user : result.getUsers()) {
      // tensor.dim reads only the shape, which the copy has too.
      if (isa<tensor::DimOp>(user)) {
        dims.push_back(user);
        continue;
      }
      Type to = type.getElementType().isF32() ? conversionTarget(user, result)
                                              : Type();
      auto toType = to ? cast<RankedTensorType>(user->getResultTypes()[0])
                       : RankedTensorType();
      if (!to || (narrowType && toType != narrowType)) {
        othersRead = true;
        continue;
      }
      narrowType = toType;
      conversions.push_back(user);
    }
    if (conversions.empty())
      othersRead = true;
  }

  /// The buffers, of `sizes`.
  void allocate(OpBuilder &b, Location loc, ArrayRef<Value> sizes) {
    if (othersRead)
      full = lowering::allocBuffer(
          b, loc, cast<RankedTensorType>(result.getType()), sizes);
    if (narrowType)
      narrow = lowering::allocBuffer(b, loc, narrowType, sizes);
  }

  /// Stores the f32 `value` at `indices` in each buffer.
  void store(OpBuilder &b, Location loc, Value value, ValueRange indices) {
    if (full)
      storeF32(b, loc, value, full, indices);
    if (narrow)
      storeF32(b, loc, value, narrow, indices);
  }

  /// Gives every reader of the result what it reads: the conversions the
  /// narrow copy, the others the f32 buffer.
  void replaceReaders(IRRewriter &rw, OpBuilder &b, Location loc) {
    Value fullTensor, narrowTensor;
    if (full)
      fullTensor = lowering::bufferResult(b, loc, result.getType(), full);
    if (narrow)
      narrowTensor = lowering::bufferResult(b, loc, narrowType, narrow);
    for (Operation *conversion : conversions)
      rw.replaceOp(conversion, narrowTensor);
    if (!full)
      for (Operation *d : dims)
        rw.modifyOpInPlace(d, [&] { d->setOperand(0, narrowTensor); });
    if (fullTensor)
      rw.replaceAllUsesWith(result, fullTensor);
  }

private:
  Value result;
  SmallVector<Operation *> conversions, dims;
  RankedTensorType narrowType;
  bool othersRead = false;
  Value full, narrow;
};

/// A kernel operand computed from other tensors by elementwise tensor ops
/// (arith or math, pure, one result, operands of the result's shape) that
/// nothing else reads: the kernel evaluates it where it reads an element
/// (the leaves loaded, the ops applied to scalars) instead of reading a
/// tensor that would be a kernel of its own. Jamba's A = -exp(A_log): a
/// Mamba layer's decode step launched a kernel over all of A_log for it.
class InlinedOperand {
public:
  /// With `inline` false, `tensor` is read as it is.
  InlinedOperand(OpBuilder &b, Location loc, Value tensor, bool inlineOps)
      : root(tensor) {
    if (!tensor)
      return;
    if (inlineOps)
      collect(b, loc, tensor);
    else
      leaves.emplace_back(tensor, lowering::readOnlyBuffer(b, loc, tensor));
  }

  explicit operator bool() const { return static_cast<bool>(root); }

  /// The element at `indices`, as f32.
  Value loadF32(OpBuilder &b, Location loc, ValueRange indices) const {
    DenseMap<Value, Value> scalars;
    for (auto [tensor, buffer] : leaves)
      scalars[tensor] = load(b, loc, buffer, indices);
    for (Operation *op : chain) {
      SmallVector<Value> operands;
      for (Value v : op->getOperands())
        operands.push_back(scalars.lookup(v));
      Type elem = getElementTypeOrSelf(op->getResult(0).getType());
      Operation *scalar = b.create(loc, op->getName().getIdentifier(), operands,
                                   elem, op->getAttrs());
      scalars[op->getResult(0)] = scalar->getResult(0);
    }
    return convertScalar(b, loc, scalars.lookup(root), b.getF32Type());
  }

  /// A buffer of the operand's shape (for its sizes).
  Value shape() const { return leaves.front().second; }

  /// Erases the ops of the chain nothing reads any more.
  void eraseUnread(IRRewriter &rw) {
    for (Operation *op : llvm::reverse(chain))
      if (op->use_empty())
        rw.eraseOp(op);
  }

private:
  static bool elementwiseOnTensors(Operation *op) {
    if (!op || op->getNumResults() != 1 || op->getNumRegions() != 0 ||
        !op->hasTrait<OpTrait::Elementwise>() || !isMemoryEffectFree(op) ||
        !isa<arith::ArithDialect, math::MathDialect>(op->getDialect()))
      return false;
    auto type = dyn_cast<RankedTensorType>(op->getResult(0).getType());
    return type && llvm::all_of(op->getOperandTypes(), [&](Type t) {
             auto operand = dyn_cast<RankedTensorType>(t);
             return operand && operand.getShape() == type.getShape();
           });
  }

  void collect(OpBuilder &b, Location loc, Value v) {
    Operation *def = v.getDefiningOp();
    if (def && llvm::is_contained(chain, def))
      return;
    // The root only when the kernel is its sole reader; at most
    // kMaxInlinedOps ops (counted as they are entered).
    if (elementwiseOnTensors(def) && entered < kMaxInlinedOps &&
        (v != root || v.hasOneUse())) {
      ++entered;
      for (Value operand : def->getOperands())
        collect(b, loc, operand);
      chain.push_back(def);
      return;
    }
    if (llvm::none_of(leaves, [&](auto &leaf) { return leaf.first == v; }))
      leaves.emplace_back(v, lowering::readOnlyBuffer(b, loc, v));
  }

  static constexpr int64_t kMaxInlinedOps = 8;
  Value root;
  int64_t entered = 0;
  SmallVector<Operation *> chain;
  SmallVector<std::pair<Value, Value>> leaves;
};

//===----------------------------------------------------------------------===//
// jamba.selective_scan
//===----------------------------------------------------------------------===//

/// The (sequence, channel, chunk) threads a chunked scan aims for: enough
/// to fill a GPU (132 SMs of up to 2048 threads on an H100 or H200).
constexpr int64_t kScanTargetThreads = 1 << 17;

/// Largest static state width whose state is kept in registers.
constexpr int64_t kMaxRegisterState = 64;

/// One iteration per (b, c), its time loop in the reference's order (SPEC
/// 1.6). With a static state width of at most kMaxRegisterState (Jamba's
/// 16), the state h[b, c, :] and the row A[c, :] are loop-carried scalars
/// (registers on a GPU): loaded once, the state carried in f32 from step
/// to step and stored into the final-state buffer after the last one, so
/// the time loop touches memory only for its inputs and y. Otherwise the
/// state lives in the final-state buffer, updated in place at every step.
LogicalResult lowerSelectiveScan(IRRewriter &rw, SelectiveScanOp op,
                                 int64_t chunkSteps) {
  if (!isF32Compatible(op.getU().getType()))
    return failure();
  Location loc = op.getLoc();
  rw.setInsertionPoint(op);
  OpBuilder &b = rw;
  auto buf = [&](Value t) { return lowering::readOnlyBuffer(b, loc, t); };
  auto hType = cast<RankedTensorType>(op.getFinalState().getType());
  // A, or the elementwise ops computing it (-exp(A_log)) where it is read
  // (in the register form, which reads it once per thread; the dynamic
  // form reads it at every step).
  const int64_t stateWidth =
      cast<RankedTensorType>(op.getFinalState().getType()).getDimSize(2);
  InlinedOperand A(b, loc, op.getA(),
                   !ShapedType::isDynamic(stateWidth) &&
                       stateWidth <= kMaxRegisterState);
  Value u = buf(op.getU()), delta = buf(op.getDelta()), B = buf(op.getB()),
        C = buf(op.getC()), D = buf(op.getD()), z = buf(op.getZ()),
        deltaBias = buf(op.getDeltaBias()), init = buf(op.getInitState());
  Value batch = dim(b, loc, u, 0), seq = dim(b, loc, u, 1),
        channels = dim(b, loc, u, 2), dState = dim(b, loc, A.shape(), 1);
  // y, in bf16 too when a cuBLAS GEMM reads it (NarrowedResult).
  NarrowedResult y(op.getResult());
  y.allocate(b, loc, {batch, seq, channels});
  Value h = lowering::allocBuffer(b, loc, hType, {batch, channels, dState});
  // Safe over init: see nest 3 (and the dynamic form's one thread per row).
  h.getDefiningOp()->setAttr(kStateOverOldAttr, b.getUnitAttr());
  Value zero = indexConst(b, loc, 0);
  Type f32 = b.getF32Type();
  Value zeroF = floatConst(b, loc, f32, 0.0);

  // The output of step t (y before the store), from the state update's
  // <C_t, h_t>.
  auto finishStep = [&](OpBuilder &tb, Location tl, Value bi, Value t, Value c,
                        Value uv, Value dc, Value dot) {
    Value out = dot;
    if (dc)
      out = addF(tb, tl, out, mulF(tb, tl, dc, uv));
    if (z)
      out = mulF(tb, tl, out,
                 lowering::buildSilu(tb, tl, loadF32(tb, tl, z, {bi, t, c})));
    y.store(tb, tl, out, {bi, t, c});
  };
  // The step size of step t: delta (+ bias) (softplus).
  auto stepSize = [&](OpBuilder &tb, Location tl, Value bi, Value t, Value c,
                      Value bias) {
    Value d = loadF32(tb, tl, delta, {bi, t, c});
    if (bias)
      d = addF(tb, tl, d, bias);
    if (op.getDeltaSoftplus())
      d = lowering::buildSoftplus(tb, tl, d);
    return d;
  };

  const int64_t width = hType.getDimSize(2);
  if (!ShapedType::isDynamic(width) && width <= kMaxRegisterState) {
    // The chunks: enough (batch x channels x chunks) threads to fill a GPU,
    // at least `chunkSteps` steps each; 1 for a decode step.
    Value one = indexConst(b, loc, 1);
    Value threads = arith::MulIOp::create(b, loc, batch, channels);
    Value wanted = arith::CeilDivUIOp::create(
        b, loc, indexConst(b, loc, kScanTargetThreads),
        arith::MaxUIOp::create(b, loc, threads, one));
    Value most = arith::MaxUIOp::create(
        b, loc, one,
        arith::DivUIOp::create(b, loc, seq, indexConst(b, loc, chunkSteps)));
    Value chunks = arith::MaxUIOp::create(
        b, loc, one, arith::MinUIOp::create(b, loc, wanted, most));
    Value chunkLen = arith::CeilDivUIOp::create(
        b, loc, arith::MaxUIOp::create(b, loc, seq, one), chunks);
    // With one chunk the first two nests have no iterations (no launch).
    Value several =
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ugt, chunks, one);
    Value single =
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, chunks, one);
    auto ifSeveral = [&](Value v) -> Value {
      return arith::SelectOp::create(b, loc, several, v, zero);
    };
    Value carried = ifSeveral(chunks);
    Value feeding = ifSeveral(arith::SubIOp::create(b, loc, chunks, one));
    const int64_t dyn = ShapedType::kDynamic;
    Value widthV = indexConst(b, loc, width);
    Value local = lowering::allocBuffer(
        b, loc, RankedTensorType::get({dyn, dyn, dyn, dyn}, f32),
        {batch, feeding, channels, widthV});
    Value sums = lowering::allocBuffer(
        b, loc, RankedTensorType::get({dyn, dyn, dyn}, f32),
        {batch, feeding, channels});
    Value starts = lowering::allocBuffer(
        b, loc, RankedTensorType::get({dyn, dyn, dyn, dyn}, f32),
        {batch, carried, channels, widthV});
    // Steps [first, end) of chunk k.
    auto range = [&](OpBuilder &nb, Location nl, Value k) {
      Value first = arith::MinUIOp::create(
          nb, nl, arith::MulIOp::create(nb, nl, k, chunkLen), seq);
      Value end =
          arith::MinUIOp::create(nb, nl, addI(nb, nl, first, chunkLen), seq);
      return std::make_pair(first, end);
    };
    auto rowOfA = [&](OpBuilder &nb, Location nl, Value c) {
      SmallVector<Value> a;
      for (int64_t n = 0; n < width; ++n)
        a.push_back(A.loadF32(nb, nl, {c, indexConst(nb, nl, n)}));
      return a;
    };
    // init_state[b, c, :], or zeros.
    auto initialState = [&](OpBuilder &nb, Location nl, Value bi, Value c) {
      SmallVector<Value> h0;
      for (int64_t n = 0; n < width; ++n)
        h0.push_back(init
                         ? loadF32(nb, nl, init, {bi, c, indexConst(nb, nl, n)})
                         : zeroF);
      return h0;
    };
    // One step: exp(d A) h + (d B_t) u, in the reference's order.
    auto advance = [&](OpBuilder &tb, Location tl, Value bi, Value t, Value d,
                       Value uv, ArrayRef<Value> a, ValueRange state) {
      SmallVector<Value> next;
      for (int64_t n = 0; n < width; ++n) {
        Value decay = math::ExpOp::create(tb, tl, mulF(tb, tl, d, a[n]));
        Value bn = loadF32(tb, tl, B, {bi, t, indexConst(tb, tl, n)});
        next.push_back(addF(tb, tl, mulF(tb, tl, decay, state[n]),
                            mulF(tb, tl, mulF(tb, tl, d, bn), uv)));
      }
      return next;
    };

    // The channel is the innermost dimension of nests 1 and 3: adjacent
    // threads (jamba-gpu-map-loops collapses the dimensions row-major) take
    // adjacent channels of one chunk, so a warp's loads of delta, u and z
    // and its stores of y at a time step are one contiguous row, and B_t
    // and C_t are the same for the whole warp.
    // 1. Each chunk but the last from a zero state: its state at its end
    //    and the sum of its step sizes (exp(A sum) is its decay).
    parallel(
        b, loc, "selective_scan_chunks", {batch, feeding, channels},
        [&](OpBuilder &pb, Location l, ValueRange ivs) {
          Value bi = ivs[0], k = ivs[1], c = ivs[2];
          auto [first, end] = range(pb, l, k);
          SmallVector<Value> a = rowOfA(pb, l, c);
          Value bias = deltaBias ? loadF32(pb, l, deltaBias, {c}) : Value();
          SmallVector<Value> inits(width + 1, zeroF);
          auto steps =
              loop(pb, l, first, end, inits,
                   [&](OpBuilder &tb, Location tl, Value t, ValueRange state) {
                     Value d = stepSize(tb, tl, bi, t, c, bias);
                     Value uv = loadF32(tb, tl, u, {bi, t, c});
                     SmallVector<Value> next = advance(tb, tl, bi, t, d, uv, a,
                                                       state.take_front(width));
                     next.push_back(addF(tb, tl, state[width], d));
                     return next;
                   });
          for (int64_t n = 0; n < width; ++n)
            memref::StoreOp::create(pb, l, steps.getResult(n), local,
                                    ValueRange{bi, k, c, indexConst(pb, l, n)});
          memref::StoreOp::create(pb, l, steps.getResult(width), sums,
                                  ValueRange{bi, k, c});
        });
    // 2. The chunks' initial states, carried in f32 from the initial state
    //    (chunk 0's too): h <- exp(A sum_k) h + (chunk k from zero).
    parallel(b, loc, "selective_scan_carry", {ifSeveral(batch), channels},
             [&](OpBuilder &pb, Location l, ValueRange ivs) {
               Value bi = ivs[0], c = ivs[1];
               SmallVector<Value> a = rowOfA(pb, l, c);
               SmallVector<Value> h0 = initialState(pb, l, bi, c);
               for (int64_t n = 0; n < width; ++n)
                 memref::StoreOp::create(
                     pb, l, h0[n], starts,
                     ValueRange{bi, zero, c, indexConst(pb, l, n)});
               loop(pb, l, zero, feeding, h0,
                    [&](OpBuilder &kb, Location kl, Value k, ValueRange state) {
                      Value sum = load(kb, kl, sums, {bi, k, c});
                      Value next = addI(kb, kl, k, indexConst(kb, kl, 1));
                      SmallVector<Value> out;
                      for (int64_t n = 0; n < width; ++n) {
                        Value nv = indexConst(kb, kl, n);
                        Value decay = math::ExpOp::create(
                            kb, kl, mulF(kb, kl, sum, a[n]));
                        Value hn = addF(kb, kl, mulF(kb, kl, decay, state[n]),
                                        load(kb, kl, local, {bi, k, c, nv}));
                        memref::StoreOp::create(kb, kl, hn, starts,
                                                ValueRange{bi, next, c, nv});
                        out.push_back(hn);
                      }
                      return out;
                    });
             });
    // 3. Every chunk from its initial state, writing y; the last one also
    //    writes the final state. With several chunks every chunk starts
    //    from nest 2's copy, so that no thread here reads the op's initial
    //    state while the last chunk writes the final one (the same buffer
    //    when jamba-states-in-place updates it in place); with one chunk
    //    the only thread reads its row before it writes it.
    parallel(
        b, loc, "selective_scan", {batch, chunks, channels},
        [&](OpBuilder &pb, Location l, ValueRange ivs) {
          Value bi = ivs[0], k = ivs[1], c = ivs[2];
          auto [first, end] = range(pb, l, k);
          SmallVector<Value> a = rowOfA(pb, l, c);
          SmallVector<Type> types(width, f32);
          auto startIf =
              scf::IfOp::create(pb, l, types, single, /*withElseRegion=*/true);
          {
            OpBuilder::InsertionGuard guard(pb);
            pb.setInsertionPointToStart(startIf.thenBlock());
            scf::YieldOp::create(pb, l, initialState(pb, l, bi, c));
            pb.setInsertionPointToStart(startIf.elseBlock());
            SmallVector<Value> hk;
            for (int64_t n = 0; n < width; ++n)
              hk.push_back(
                  load(pb, l, starts, {bi, k, c, indexConst(pb, l, n)}));
            scf::YieldOp::create(pb, l, hk);
          }
          Value bias = deltaBias ? loadF32(pb, l, deltaBias, {c}) : Value();
          Value dc = D ? loadF32(pb, l, D, {c}) : Value();
          auto steps =
              loop(pb, l, first, end, startIf.getResults(),
                   [&](OpBuilder &tb, Location tl, Value t, ValueRange state) {
                     Value d = stepSize(tb, tl, bi, t, c, bias);
                     Value uv = loadF32(tb, tl, u, {bi, t, c});
                     SmallVector<Value> next =
                         advance(tb, tl, bi, t, d, uv, a, state);
                     // <C_t, h_t>, n in order.
                     Value dot = zeroF;
                     for (int64_t n = 0; n < width; ++n) {
                       Value cn =
                           loadF32(tb, tl, C, {bi, t, indexConst(tb, tl, n)});
                       dot = addF(tb, tl, dot, mulF(tb, tl, cn, next[n]));
                     }
                     finishStep(tb, tl, bi, t, c, uv, dc, dot);
                     return next;
                   });
          Value isLast = arith::CmpIOp::create(pb, l, arith::CmpIPredicate::eq,
                                               addI(pb, l, k, one), chunks);
          scf::IfOp::create(pb, l, isLast, [&](OpBuilder &sb, Location sl) {
            for (int64_t n = 0; n < width; ++n)
              storeF32(sb, sl, steps.getResult(n), h,
                       {bi, c, indexConst(sb, sl, n)});
            scf::YieldOp::create(sb, sl);
          });
        });
    y.replaceReaders(rw, b, loc);
    rw.replaceAllUsesWith(op.getFinalState(),
                          lowering::bufferResult(b, loc, hType, h));
    rw.eraseOp(op);
    A.eraseUnread(rw);
    return success();
  }

  parallel(
      b, loc, "selective_scan", {batch, channels},
      [&](OpBuilder &pb, Location l, ValueRange ivs) {
        Value bi = ivs[0], c = ivs[1];
        // h_0: the initial state or zero.
        loop(pb, l, zero, dState, {},
             [&](OpBuilder &nb, Location nl, Value n, ValueRange) {
               Value h0 = init ? loadF32(nb, nl, init, {bi, c, n}) : zeroF;
               memref::StoreOp::create(nb, nl, h0, h, ValueRange{bi, c, n});
               return SmallVector<Value>{};
             });
        Value bias = deltaBias ? loadF32(pb, l, deltaBias, {c}) : Value();
        Value dc = D ? loadF32(pb, l, D, {c}) : Value();
        loop(pb, l, zero, seq, {},
             [&](OpBuilder &tb, Location tl, Value t, ValueRange) {
               Value d = stepSize(tb, tl, bi, t, c, bias);
               Value uv = loadF32(tb, tl, u, {bi, t, c});
               auto acc = loop(
                   tb, tl, zero, dState, {zeroF},
                   [&](OpBuilder &nb, Location nl, Value n, ValueRange args) {
                     Value a = A.loadF32(nb, nl, {c, n});
                     Value decay =
                         math::ExpOp::create(nb, nl, mulF(nb, nl, d, a));
                     Value hn = load(nb, nl, h, {bi, c, n});
                     Value bn = loadF32(nb, nl, B, {bi, t, n});
                     // exp(d A) h + (d B) u, in the reference's order.
                     Value next = addF(nb, nl, mulF(nb, nl, decay, hn),
                                       mulF(nb, nl, mulF(nb, nl, d, bn), uv));
                     memref::StoreOp::create(nb, nl, next, h,
                                             ValueRange{bi, c, n});
                     Value cn = loadF32(nb, nl, C, {bi, t, n});
                     return SmallVector<Value>{
                         addF(nb, nl, args[0], mulF(nb, nl, cn, next))};
                   });
               finishStep(tb, tl, bi, t, c, uv, dc, acc.getResult(0));
               return SmallVector<Value>{};
             });
      });
  y.replaceReaders(rw, b, loc);
  rw.replaceAllUsesWith(op.getFinalState(),
                        lowering::bufferResult(b, loc, hType, h));
  rw.eraseOp(op);
  A.eraseUnread(rw);
  return success();
}

//===----------------------------------------------------------------------===//
// jamba.causal_conv1d
//===----------------------------------------------------------------------===//

/// One iteration per (b, c): y[b, t, c] sums the K taps over the extended
/// input (state, then this call's inputs); the new state is the extended
/// input's last K-1 values.
LogicalResult lowerCausalConv1d(IRRewriter &rw, CausalConv1dOp op) {
  if (!isF32Compatible(op.getInput().getType()))
    return failure();
  Location loc = op.getLoc();
  rw.setInsertionPoint(op);
  OpBuilder &b = rw;
  auto buf = [&](Value t) { return lowering::readOnlyBuffer(b, loc, t); };
  auto sType = cast<RankedTensorType>(op.getNewState().getType());
  Value x = buf(op.getInput()), w = buf(op.getWeight()),
        bias = buf(op.getBias()), state = buf(op.getState());
  Value batch = dim(b, loc, x, 0), seq = dim(b, loc, x, 1),
        channels = dim(b, loc, x, 2), width = dim(b, loc, w, 1),
        past = dim(b, loc, state, 2);
  // y, in bf16 too when a cuBLAS GEMM reads it (NarrowedResult).
  NarrowedResult y(op.getResult());
  y.allocate(b, loc, {batch, seq, channels});
  Value newState =
      lowering::allocBuffer(b, loc, sType, {batch, channels, past});
  // Safe over the old state: thread (b, c) alone touches row (b, c); it
  // reads the old row for y first, then writes position j after reading
  // position seq + j >= j.
  newState.getDefiningOp()->setAttr(kStateOverOldAttr, b.getUnitAttr());
  Value zero = indexConst(b, loc, 0);
  Type f32 = b.getF32Type();

  // ext[j] of sequence b, channel c: state[b, c, j] for j < past, else
  // x[b, j - past, c].
  auto extAt = [&](OpBuilder &nb, Location nl, Value bi, Value c, Value j) {
    Value inState =
        arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::ult, j, past);
    auto ifOp = scf::IfOp::create(
        nb, nl, inState,
        [&](OpBuilder &ib, Location il) {
          scf::YieldOp::create(ib, il, loadF32(ib, il, state, {bi, c, j}));
        },
        [&](OpBuilder &ib, Location il) {
          Value t = arith::SubIOp::create(ib, il, j, past);
          scf::YieldOp::create(ib, il, loadF32(ib, il, x, {bi, t, c}));
        });
    return ifOp.getResult(0);
  };

  parallel(
      b, loc, "causal_conv1d", {batch, channels},
      [&](OpBuilder &pb, Location l, ValueRange ivs) {
        Value bi = ivs[0], c = ivs[1];
        Value init =
            bias ? loadF32(pb, l, bias, {c}) : floatConst(pb, l, f32, 0.0);
        loop(pb, l, zero, seq, {},
             [&](OpBuilder &tb, Location tl, Value t, ValueRange) {
               auto acc = loop(
                   tb, tl, zero, width, {init},
                   [&](OpBuilder &nb, Location nl, Value j, ValueRange args) {
                     Value wj = loadF32(nb, nl, w, {c, j});
                     Value xj = extAt(nb, nl, bi, c, addI(nb, nl, t, j));
                     return SmallVector<Value>{
                         addF(nb, nl, args[0], mulF(nb, nl, wj, xj))};
                   });
               Value out = acc.getResult(0);
               if (op.getSilu())
                 out = lowering::buildSilu(tb, tl, out);
               y.store(tb, tl, out, {bi, t, c});
               return SmallVector<Value>{};
             });
        loop(pb, l, zero, past, {},
             [&](OpBuilder &nb, Location nl, Value j, ValueRange) {
               Value v = extAt(nb, nl, bi, c, addI(nb, nl, seq, j));
               storeF32(nb, nl, v, newState, {bi, c, j});
               return SmallVector<Value>{};
             });
      });
  y.replaceReaders(rw, b, loc);
  rw.replaceAllUsesWith(op.getNewState(),
                        lowering::bufferResult(b, loc, sType, newState));
  rw.eraseOp(op);
  return success();
}

//===----------------------------------------------------------------------===//
// jamba.router_topk
//===----------------------------------------------------------------------===//

/// One iteration per row: softmax over the experts (max-subtracted), then
/// top-k by repeated selection, each pick the first maximum among the
/// experts not yet taken (ties: the lower index), "taken" meaning already
/// stored among this row's indices.
LogicalResult lowerRouterTopK(IRRewriter &rw, RouterTopKOp op) {
  auto logitsType = cast<RankedTensorType>(op.getLogits().getType());
  if (!isF32Compatible(logitsType) || logitsType.getRank() < 1)
    return failure();
  Location loc = op.getLoc();
  rw.setInsertionPoint(op);
  OpBuilder &b = rw;
  const int64_t rank = logitsType.getRank();
  const int64_t k = op.getTopK();
  Value logits = lowering::readOnlyBuffer(b, loc, op.getLogits());
  auto wType = cast<RankedTensorType>(op.getWeights().getType());
  auto iType = cast<RankedTensorType>(op.getIndices().getType());
  SmallVector<Value> lead;
  for (int64_t d = 0; d + 1 < rank; ++d)
    lead.push_back(dim(b, loc, logits, d));
  Value experts = dim(b, loc, logits, rank - 1);
  SmallVector<Value> outSizes = lead;
  outSizes.push_back(indexConst(b, loc, k));
  Value weights = lowering::allocBuffer(b, loc, wType, outSizes);
  Value indices = lowering::allocBuffer(b, loc, iType, outSizes);
  Type f32 = b.getF32Type(), indexElem = iType.getElementType();
  Value zero = indexConst(b, loc, 0);

  parallel(
      b, loc, "router_topk", lead,
      [&](OpBuilder &pb, Location l, ValueRange row) {
        auto at = [&](Value e) {
          SmallVector<Value> idx(row.begin(), row.end());
          idx.push_back(e);
          return idx;
        };
        Value negInf = floatConst(pb, l, f32, -INFINITY);
        Value maxLogit =
            loop(pb, l, zero, experts, {negInf},
                 [&](OpBuilder &nb, Location nl, Value e, ValueRange args) {
                   Value v = loadF32(nb, nl, logits, at(e));
                   return SmallVector<Value>{
                       arith::MaximumFOp::create(nb, nl, args[0], v)};
                 })
                .getResult(0);
        auto prob = [&](OpBuilder &nb, Location nl, Value e) {
          Value v = loadF32(nb, nl, logits, at(e));
          return math::ExpOp::create(
              nb, nl, arith::SubFOp::create(nb, nl, v, maxLogit));
        };
        Value sum =
            loop(pb, l, zero, experts, {floatConst(pb, l, f32, 0.0)},
                 [&](OpBuilder &nb, Location nl, Value e, ValueRange args) {
                   return SmallVector<Value>{
                       addF(nb, nl, args[0], prob(nb, nl, e))};
                 })
                .getResult(0);
        // p[e] = exp(l[e] - max) / sum, recomputed where needed (no scratch).
        auto p = [&](OpBuilder &nb, Location nl, Value e) {
          return arith::DivFOp::create(nb, nl, prob(nb, nl, e), sum);
        };
        Value picked = floatConst(pb, l, f32, 0.0);
        for (int64_t j = 0; j < k; ++j) {
          // Whether expert e is one of picks 0..j-1 (already stored).
          auto taken = [&](OpBuilder &nb, Location nl, Value e) {
            Value any = arith::ConstantIntOp::create(nb, nl, 0, 1);
            for (int64_t i = 0; i < j; ++i) {
              Value prev =
                  loadIndex(nb, nl, indices, at(indexConst(nb, nl, i)));
              any = arith::OrIOp::create(
                  nb, nl, any,
                  arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::eq, prev,
                                        e));
            }
            return any;
          };
          // Best so far: (probability, index); index -1 before the first.
          Value none = indexConst(pb, l, -1);
          auto best = loop(
              pb, l, zero, experts, {negInf, none},
              [&](OpBuilder &nb, Location nl, Value e, ValueRange args) {
                Value pe = p(nb, nl, e);
                Value better = arith::CmpFOp::create(
                    nb, nl, arith::CmpFPredicate::OGT, pe, args[0]);
                Value first =
                    arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::slt,
                                          args[1], indexConst(nb, nl, 0));
                Value free = arith::XOrIOp::create(
                    nb, nl, taken(nb, nl, e),
                    arith::ConstantIntOp::create(nb, nl, 1, 1));
                Value take = arith::AndIOp::create(
                    nb, nl, free, arith::OrIOp::create(nb, nl, better, first));
                return SmallVector<Value>{
                    arith::SelectOp::create(nb, nl, take, pe, args[0]),
                    arith::SelectOp::create(nb, nl, take, e, args[1])};
              });
          Value slot = indexConst(pb, l, j);
          memref::StoreOp::create(pb, l, best.getResult(0), weights, at(slot));
          memref::StoreOp::create(
              pb, l,
              arith::IndexCastOp::create(pb, l, indexElem, best.getResult(1)),
              indices, at(slot));
          picked = addF(pb, l, picked, best.getResult(0));
        }
        if (op.getNormalize())
          for (int64_t j = 0; j < k; ++j) {
            Value slot = indexConst(pb, l, j);
            Value w = load(pb, l, weights, at(slot));
            memref::StoreOp::create(pb, l,
                                    arith::DivFOp::create(pb, l, w, picked),
                                    weights, at(slot));
          }
      });
  rw.replaceOp(op, {lowering::bufferResult(b, loc, wType, weights),
                    lowering::bufferResult(b, loc, iType, indices)});
  return success();
}

//===----------------------------------------------------------------------===//
// jamba.rms_norm
//===----------------------------------------------------------------------===//

/// Lanes sharing one row's sum of squares.
constexpr int64_t kNormLanes = 32;

/// Row r of `dims` (the leading dimensions), the last index fastest.
SmallVector<Value> delinearize(OpBuilder &b, Location loc, Value r,
                               ArrayRef<Value> dims) {
  SmallVector<Value> idx(dims.size());
  for (int64_t i = int64_t(dims.size()) - 1; i >= 0; --i) {
    idx[i] = arith::RemUIOp::create(b, loc, r, dims[i]);
    r = arith::DivUIOp::create(b, loc, r, dims[i]);
  }
  return idx;
}

/// The widest static row that one thread normalises alone.
constexpr int64_t kNormRowPerThreadMaxWidth = 256;

/// The residual add `norm` reads, when the norm's kernels can compute it:
/// an `arith.addf` of two tensors in the norm's block whose other readers
/// all come after the norm (they will read the x the norm writes).
arith::AddFOp fusibleResidualAdd(RMSNormOp norm) {
  auto add = norm.getInput().getDefiningOp<arith::AddFOp>();
  if (!add || add->getBlock() != norm->getBlock() ||
      !isa<RankedTensorType>(add.getType()))
    return nullptr;
  for (Operation *user : add->getUsers()) {
    if (user == norm.getOperation())
      continue;
    Operation *inBlock = norm->getBlock()->findAncestorOpInBlock(*user);
    if (!inBlock || !norm->isBeforeInBlock(inBlock))
      return nullptr;
  }
  return add;
}

/// For a static width of at most kNormRowPerThreadMaxWidth (the Mamba
/// dt/B/C norms: Jamba-1.5-Mini's 256, 16, 16), one parallel nest with
/// one iteration per row: the row's squares in order, then
/// 1 / sqrt(sum / H + epsilon), then its elements as below. One kernel
/// launch instead of three, and a decode step launches three such norms
/// per Mamba layer.
///
/// Otherwise three parallel nests, so that a decode step's single row is
/// not one thread's sequential sum over the hidden size (the plain form's
/// row reduction):
///
/// 1. one iteration per (row, lane): the lane's squares, k = lane,
///    lane + 32, ..., in f32;
/// 2. one per row: the 32 partial sums in lane order, then
///    1 / sqrt(sum / H + epsilon);
/// 3. one per element: y = w * cvt(x * inv), the normalised value rounded
///    to the input type before the weight multiplies it (SPEC 1.5.3).
///
/// A norm of a residual add (x = a + b, `arith.addf` on tensors in the
/// norm's block, read after the norm too) computes the add itself: where
/// it reads x for the squares (each element once: the row's thread, or
/// the lane whose share holds it) it adds a and b in their type and writes
/// x, which the scaling reads back and the add's other readers take. One
/// kernel launch and one pass over x less.
LogicalResult lowerRMSNorm(IRRewriter &rw, RMSNormOp op) {
  auto type = cast<RankedTensorType>(op.getType());
  if (!isF32Compatible(type) || !isF32Compatible(op.getWeight().getType()))
    return failure();
  // A norm read by conversions to a narrower type (a cuBLAS GEMM's bf16
  // input) writes that type itself (NarrowedResult).
  NarrowedResult y(op.getResult());
  Location loc = op.getLoc();
  rw.setInsertionPoint(op);
  OpBuilder &b = rw;
  arith::AddFOp residual = fusibleResidualAdd(op);
  Value x, addLhs, addRhs;
  if (residual) {
    addLhs = lowering::readOnlyBuffer(b, loc, residual.getLhs());
    addRhs = lowering::readOnlyBuffer(b, loc, residual.getRhs());
  } else {
    x = lowering::readOnlyBuffer(b, loc, op.getInput());
  }
  Value w = lowering::readOnlyBuffer(b, loc, op.getWeight());
  const int64_t rank = type.getRank();
  Type f32 = b.getF32Type(), elem = type.getElementType();
  Value zero = indexConst(b, loc, 0), one = indexConst(b, loc, 1);
  SmallVector<Value> lead, sizes;
  Value rows = one;
  Value shapeOf = residual ? addLhs : x;
  for (int64_t i = 0; i + 1 < rank; ++i) {
    lead.push_back(dim(b, loc, shapeOf, i));
    rows = arith::MulIOp::create(b, loc, rows, lead.back());
  }
  // A static width as a constant (constant trip counts for the row loops).
  const int64_t staticWidth = type.getShape().back();
  Value h = ShapedType::isDynamic(staticWidth)
                ? dim(b, loc, shapeOf, rank - 1)
                : indexConst(b, loc, staticWidth);
  sizes = lead;
  sizes.push_back(h);
  y.allocate(b, loc, sizes);
  // The residual stream x = a + b, written where the squares read it.
  if (residual)
    x = lowering::allocBuffer(
        b, loc, cast<RankedTensorType>(residual.getType()), sizes);
  // x[idx] as f32 for the squares (each element read here once).
  auto readForSquares = [&](OpBuilder &nb, Location nl,
                            ArrayRef<Value> idx) -> Value {
    if (!residual)
      return loadF32(nb, nl, x, idx);
    Value sum = arith::AddFOp::create(nb, nl, load(nb, nl, addLhs, idx),
                                      load(nb, nl, addRhs, idx));
    memref::StoreOp::create(nb, nl, sum, x, idx);
    return convertScalar(nb, nl, sum, f32);
  };
  // The add's other readers take the x the norm wrote.
  auto replaceResidual = [&](OpBuilder &fb, Location fl) {
    if (!residual)
      return;
    Value stream = lowering::bufferResult(fb, fl, residual.getType(), x);
    rw.replaceAllUsesExcept(residual.getResult(), stream, op.getOperation());
  };
  // Once the norm is replaced, the add has no reader left.
  auto eraseResidual = [&] {
    if (residual && residual->use_empty())
      rw.eraseOp(residual);
  };
  auto at = [&](ArrayRef<Value> row, Value k) {
    SmallVector<Value> idx(row);
    idx.push_back(k);
    return idx;
  };
  Value hFloat = arith::SIToFPOp::create(
      b, loc, f32, arith::IndexCastOp::create(b, loc, b.getI64Type(), h));
  Value eps = floatConst(b, loc, f32, op.getEpsilon().convertToDouble());
  // 1 / sqrt(sum / H + epsilon).
  auto inverseRoot = [&](OpBuilder &nb, Location nl, Value sum) -> Value {
    Value mean = arith::DivFOp::create(nb, nl, sum, hFloat);
    Value root = math::SqrtOp::create(nb, nl, addF(nb, nl, mean, eps));
    return arith::DivFOp::create(nb, nl, floatConst(nb, nl, f32, 1.0), root);
  };
  // y[idx] = w[k] * cvt(x[idx] * inv).
  auto normalise = [&](OpBuilder &nb, Location nl, ArrayRef<Value> idx, Value k,
                       Value rowInv) {
    Value n = mulF(nb, nl, loadF32(nb, nl, x, idx), rowInv);
    n = convertScalar(nb, nl, convertScalar(nb, nl, n, elem), f32);
    y.store(nb, nl, mulF(nb, nl, loadF32(nb, nl, w, {k}), n), idx);
  };

  if (!ShapedType::isDynamic(staticWidth) &&
      staticWidth <= kNormRowPerThreadMaxWidth) {
    parallel(b, loc, "rms_norm", {rows},
             [&](OpBuilder &pb, Location l, ValueRange iv) {
               SmallVector<Value> row = delinearize(pb, l, iv[0], lead);
               Value sum = loop(pb, l, zero, h, {floatConst(pb, l, f32, 0.0)},
                                [&](OpBuilder &nb, Location nl, Value k,
                                    ValueRange acc) {
                                  Value v = readForSquares(nb, nl, at(row, k));
                                  return SmallVector<Value>{
                                      addF(nb, nl, acc[0], mulF(nb, nl, v, v))};
                                })
                               .getResult(0);
               Value rowInv = inverseRoot(pb, l, sum);
               scf::ForOp::create(
                   pb, l, zero, h, one, ValueRange{},
                   [&](OpBuilder &nb, Location nl, Value k, ValueRange) {
                     normalise(nb, nl, at(row, k), k, rowInv);
                     scf::YieldOp::create(nb, nl);
                   });
             });
    replaceResidual(b, loc);
    y.replaceReaders(rw, b, loc);
    rw.eraseOp(op);
    eraseResidual();
    return success();
  }

  Value lanes = indexConst(b, loc, kNormLanes);
  const int64_t dyn = ShapedType::kDynamic;
  Value partial = lowering::allocBuffer(
      b, loc, RankedTensorType::get({dyn, kNormLanes}, f32), {rows, lanes});
  Value inv =
      lowering::allocBuffer(b, loc, RankedTensorType::get({dyn}, f32), {rows});

  // 1. The lanes' squares.
  parallel(b, loc, "rms_norm_squares", {rows, lanes},
           [&](OpBuilder &pb, Location l, ValueRange iv) {
             SmallVector<Value> row = delinearize(pb, l, iv[0], lead);
             auto sum = scf::ForOp::create(
                 pb, l, iv[1], h, lanes,
                 ValueRange{floatConst(pb, l, f32, 0.0)},
                 [&](OpBuilder &kb, Location kl, Value k, ValueRange acc) {
                   Value v = readForSquares(kb, kl, at(row, k));
                   scf::YieldOp::create(
                       kb, kl, addF(kb, kl, acc[0], mulF(kb, kl, v, v)));
                 });
             memref::StoreOp::create(pb, l, sum.getResult(0), partial,
                                     ValueRange{iv[0], iv[1]});
           });
  // 2. The row's inverse root mean square.
  parallel(
      b, loc, "rms_norm_inverse", {rows},
      [&](OpBuilder &pb, Location l, ValueRange iv) {
        Value sum =
            loop(pb, l, zero, lanes, {floatConst(pb, l, f32, 0.0)},
                 [&](OpBuilder &nb, Location nl, Value lane, ValueRange acc) {
                   Value p = load(nb, nl, partial, {iv[0], lane});
                   return SmallVector<Value>{addF(nb, nl, acc[0], p)};
                 })
                .getResult(0);
        memref::StoreOp::create(pb, l, inverseRoot(pb, l, sum), inv,
                                ValueRange{iv[0]});
      });
  // 3. Every element.
  parallel(b, loc, "rms_norm_scale", {rows, h},
           [&](OpBuilder &pb, Location l, ValueRange iv) {
             SmallVector<Value> idx =
                 at(delinearize(pb, l, iv[0], lead), iv[1]);
             normalise(pb, l, idx, iv[1], load(pb, l, inv, {iv[0]}));
           });
  replaceResidual(b, loc);
  y.replaceReaders(rw, b, loc);
  rw.eraseOp(op);
  eraseResidual();
  return success();
}

//===----------------------------------------------------------------------===//
// jamba.expert_gemm
//===----------------------------------------------------------------------===//

/// Rows (token, slot) that still get every lane: the lanes per row are
/// min(maxLanes, kLaneRowBudget * maxLanes / rows), at least 1, so the
/// partial sums stay within kLaneRowBudget * maxLanes rows of N floats.
constexpr int64_t kLaneRowBudget = 64;

/// Rows of one expert a thread of the grouped expert GEMM computes.
constexpr int64_t kGroupRows = 8;

/// Bytes of one vector load of the weights (a 128-bit load on a GPU).
constexpr int64_t kWeightVectorBytes = 16;

/// Bytes of one vector load of the weights in the grouped expert GEMM,
/// whose thread keeps kGroupRows rows of inputs in flight: with 8 bytes,
/// ptxas gives jamba-small's grouped kernel 136 registers, as many as the
/// scalar loop's 128 (16 bytes: 174).
constexpr int64_t kGroupedWeightVectorBytes = 8;

/// Whether, at run time, every vector of `memref` that starts at a multiple
/// of `alignBytes` bytes along its last dimension is `alignBytes`-aligned:
/// its base pointer is, and its element offset and every stride but the
/// last (1) are multiples of `alignBytes` bytes. The weights are function
/// arguments on 256-byte aligned device allocations and the activations
/// fresh device allocations, so this holds for Jamba's shapes; a view into
/// a larger tensor may break it.
Value alignedForVectors(OpBuilder &b, Location loc, Value memref,
                        int64_t alignBytes) {
  auto type = cast<MemRefType>(memref.getType());
  const int64_t elems =
      alignBytes / (type.getElementType().getIntOrFloatBitWidth() / 8);
  auto meta = memref::ExtractStridedMetadataOp::create(b, loc, memref);
  Value base = memref::ExtractAlignedPointerAsIndexOp::create(b, loc, memref);
  Value zero = indexConst(b, loc, 0), elemsC = indexConst(b, loc, elems);
  auto multipleOf = [&](Value x, Value m) -> Value {
    return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq,
                                 arith::RemUIOp::create(b, loc, x, m), zero);
  };
  Value ok = multipleOf(base, indexConst(b, loc, alignBytes));
  ok = arith::AndIOp::create(b, loc, ok, multipleOf(meta.getOffset(), elemsC));
  for (Value stride : meta.getStrides().drop_back())
    ok = arith::AndIOp::create(b, loc, ok, multipleOf(stride, elemsC));
  return ok;
}

/// `v` (a scalar or vector) converted to f32 elements.
Value toF32(OpBuilder &b, Location loc, Value v) {
  Type elem = getElementTypeOrSelf(v.getType());
  Type f32 = b.getF32Type();
  if (elem == f32)
    return v;
  Type to = f32;
  if (auto vec = dyn_cast<VectorType>(v.getType()))
    to = vec.clone(f32);
  if (isa<IntegerType>(elem))
    return arith::SIToFPOp::create(b, loc, to, v);
  return arith::ExtFOp::create(b, loc, to, v);
}

/// `width` elements of `memref` from `indices` (the last one running) as
/// one vector load that may assume `alignBytes`, widened to f32.
Value loadVectorF32(OpBuilder &b, Location loc, Value memref,
                    ValueRange indices, int64_t width, int64_t alignBytes) {
  Type elem = cast<MemRefType>(memref.getType()).getElementType();
  return toF32(b, loc,
               vector::LoadOp::create(b, loc, VectorType::get({width}, elem),
                                      memref, indices, /*nontemporal=*/false,
                                      llvm::MaybeAlign(alignBytes)));
}

/// Rows of one expert per tile of the tensor-core expert GEMM: the M of
/// mma.sync.m16n8k16.
constexpr int64_t kMmaTileRows = 16;
/// Outputs n one warp computes per tile: four mma.sync n-blocks of 8.
constexpr int64_t kMmaBlocksN = 4;
/// K per step of a warp's K loop: each of the 4 lanes of a fragment group
/// loads 16 consecutive k (one 16-byte load of int8 weights), which feed
/// four mma.sync of K = 16.
constexpr int64_t kMmaStepK = 64;
/// Threads of a warp, which an mma.sync takes together.
constexpr int64_t kWarpLanes = 32;

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

/// `count` elements of `memref` from `indices` (the last one running),
/// converted to bf16 (f32 rounded to nearest even, int8 exactly), as
/// vectors of up to 16 bytes of the memref's type, one load each: the
/// widest such vector whose length divides `count`, loaded with the
/// alignment its start has when the first element is `align`-aligned (and
/// never less than the element's).
SmallVector<Value> bf16Chunks(OpBuilder &b, Location loc, Value memref,
                              SmallVector<Value> indices, int64_t count,
                              int64_t align) {
  Type f32 = b.getF32Type(), bf16 = b.getBF16Type();
  Type elem = cast<MemRefType>(memref.getType()).getElementType();
  const int64_t bytes = elem.getIntOrFloatBitWidth() / 8;
  int64_t chunk = std::min<int64_t>(count, 16 / bytes);
  while (count % chunk != 0)
    chunk /= 2;
  const int64_t alignment = std::max(bytes, std::min(align, chunk * bytes));
  Value k0 = indices.back();
  SmallVector<Value> chunks;
  for (int64_t at = 0; at < count; at += chunk) {
    indices.back() = addI(b, loc, k0, indexConst(b, loc, at));
    Value part = vector::LoadOp::create(
        b, loc, VectorType::get({chunk}, elem), memref, indices,
        /*nontemporal=*/false, llvm::MaybeAlign(alignment));
    auto bf16Type = VectorType::get({chunk}, bf16);
    if (elem.isInteger(8)) {
      // Through f32, whose upper 16 bits are then the bf16 (an int8 has at
      // most 8 significant bits): the odd i16 halves (little-endian). Not a
      // sitofp to bf16, which CPUs lower to a libcall (and canonicalization
      // would fold a sitofp to f32 plus a truncf into it).
      Value wide =
          arith::SIToFPOp::create(b, loc, VectorType::get({chunk}, f32), part);
      Value halves = vector::BitCastOp::create(
          b, loc, VectorType::get({2 * chunk}, b.getI16Type()), wide);
      SmallVector<int64_t> high;
      for (int64_t i = 0; i < chunk; ++i)
        high.push_back(2 * i + 1);
      part = vector::BitCastOp::create(
          b, loc, bf16Type,
          vector::ShuffleOp::create(b, loc, halves, halves, high));
    } else if (!elem.isBF16()) {
      part = arith::TruncFOp::create(b, loc, bf16Type, part);
    }
    chunks.push_back(part);
  }
  return chunks;
}

/// bf16Chunks as bf16 pairs in 32-bit registers, the first element in the
/// low half (the mma.sync operand format); `count` is even.
SmallVector<Value> packedBF16(OpBuilder &b, Location loc, Value memref,
                              SmallVector<Value> indices, int64_t count,
                              int64_t align) {
  SmallVector<Value> regs;
  for (Value part : bf16Chunks(b, loc, memref, indices, count, align)) {
    const int64_t chunk = cast<VectorType>(part.getType()).getNumElements();
    Value words = vector::BitCastOp::create(
        b, loc, VectorType::get({chunk / 2}, b.getI32Type()), part);
    for (int64_t i = 0; i < chunk / 2; ++i)
      regs.push_back(vector::ExtractOp::create(b, loc, words, i));
  }
  return regs;
}

/// The bf16 scalars `lo` and `hi` as one 32-bit register, `lo` in the low
/// half.
Value packPair(OpBuilder &b, Location loc, Value lo, Value hi) {
  Value pair = vector::FromElementsOp::create(
      b, loc, VectorType::get({2}, b.getBF16Type()), ValueRange{lo, hi});
  return vector::ExtractOp::create(
      b, loc,
      vector::BitCastOp::create(b, loc, VectorType::get({1}, b.getI32Type()),
                                pair),
      0);
}

/// The bf16 in half `half` (an index, 0: the low one) of the 32-bit
/// register `word`, as f32.
Value unpackHalf(OpBuilder &b, Location loc, Value word, Value half) {
  Type i32 = b.getI32Type();
  Value shift = arith::MulIOp::create(
      b, loc, arith::IndexCastOp::create(b, loc, i32, half),
      arith::ConstantIntOp::create(b, loc, i32, 16));
  Value bits = arith::TruncIOp::create(
      b, loc, b.getI16Type(), arith::ShRUIOp::create(b, loc, word, shift));
  return arith::ExtFOp::create(
      b, loc, b.getF32Type(),
      arith::BitcastOp::create(b, loc, b.getBF16Type(), bits).getResult());
}

//===----------------------------------------------------------------------===//
// Warp-level code and its emulation on CPUs
//===----------------------------------------------------------------------===//

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
             double value) const {
    if (!emulated())
      return {SmallVector<Value>(count, floatConst(b, loc, type, value)),
              count};
    auto vec = VectorType::get({kWarpLanes * count}, type);
    auto splat = DenseElementsAttr::get(
        vec, ArrayRef<Attribute>{b.getFloatAttr(type, value)});
    Value v = arith::ConstantOp::create(b, loc, vec, cast<TypedAttr>(splat));
    return {{v}, count};
  }

  /// Runs `body` for each lane on its registers of `in`; it returns the
  /// lane's registers of each output set, `outCounts[i]` of `outTypes[i]`.
  SmallVector<Regs> eachLane(OpBuilder &b, Location loc, ArrayRef<Regs> in,
                             ArrayRef<Type> outTypes,
                             ArrayRef<int64_t> outCounts, LaneBody body) const {
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
      inits.push_back(
          arith::ConstantOp::create(b, loc, vec, b.getZeroAttr(vec)));
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
           const Regs &c) const {
    Type f32 = b.getF32Type();
    if (!emulated()) {
      auto accType = LLVM::LLVMStructType::getLiteral(b.getContext(),
                                                      {f32, f32, f32, f32});
      Value res =
          NVVM::MmaOp::create(b, loc, accType, a.values, bm.values, c.values,
                              {16, 8, 16}, std::nullopt, std::nullopt,
                              std::array<NVVM::MMATypes, 2>{
                                  NVVM::MMATypes::bf16, NVVM::MMATypes::bf16},
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
              auto times = [&](Value x, int64_t m) {
                return mulC(ob, ol, x, m);
              };
              auto plus = [&](Value x, Value y) { return addI(ob, ol, x, y); };
              Value l = div(idx, 4), i = rem(idx, 4);
              Value row = plus(div(l, 4), times(div(i, 2), 8));
              Value col = plus(times(rem(l, 4), 2), rem(i, 2));
              Value sum =
                  loop(ob, ol, indexConst(ob, ol, 0), indexConst(ob, ol, 16),
                       {at(ob, ol, acc[0], idx)},
                       [&](OpBuilder &kb, Location kl, Value k,
                           ValueRange part) {
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
                         Value av = unpackHalf(
                             kb, kl,
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

  /// Each register combined over the 4 lanes of its quad (lanes 4 g ..
  /// 4 g + 3: one row of an mma fragment) by `combine`, as two butterfly
  /// shuffles do it: (x_L . x_{L^1}) . (x_{L^2} . x_{L^3}).
  Regs quadReduce(
      OpBuilder &b, Location loc, const Regs &x,
      function_ref<Value(OpBuilder &, Location, Value, Value)> combine) const {
    if (!emulated()) {
      Regs r{{}, x.count};
      for (Value v : x.values) {
        for (int32_t offset : {1, 2}) {
          Value other = gpu::ShuffleOp::create(b, loc, v, offset, kWarpLanes,
                                               gpu::ShuffleMode::XOR)
                            .getShuffleResult();
          v = combine(b, loc, v, other);
        }
        r.values.push_back(v);
      }
      return r;
    }
    const int64_t n = x.count;
    Value all =
        loop(b, loc, indexConst(b, loc, 0), indexConst(b, loc, kWarpLanes * n),
             {x.values[0]},
             [&](OpBuilder &ob, Location ol, Value idx, ValueRange acc) {
               Value l = divC(ob, ol, idx, n), r = remC(ob, ol, idx, n);
               Value quad = mulC(ob, ol, divC(ob, ol, l, 4), 4),
                     q = remC(ob, ol, l, 4);
               auto of = [&](Value lane) {
                 return at(ob, ol, x.values[0],
                           addI(ob, ol, mulC(ob, ol, lane, n), r));
               };
               auto laneXor = [&](int64_t m) {
                 Value bits =
                     arith::XOrIOp::create(ob, ol, q, indexConst(ob, ol, m));
                 return addI(ob, ol, quad, bits);
               };
               Value lo = combine(ob, ol, of(l), of(laneXor(1)));
               Value hi = combine(ob, ol, of(laneXor(2)), of(laneXor(3)));
               return SmallVector<Value>{vector::InsertOp::create(
                   ob, ol, combine(ob, ol, lo, hi), acc[0],
                   ArrayRef<OpFoldResult>{idx})};
             })
            .getResult(0);
    return {{all}, n};
  }

  /// The values of `sets` in one list (an scf.for's iteration arguments)
  /// and back.
  static SmallVector<Value> flatten(ArrayRef<Regs> sets) {
    SmallVector<Value> all;
    for (const Regs &r : sets)
      all.append(r.values);
    return all;
  }
  SmallVector<Regs> unflatten(ValueRange values,
                              ArrayRef<int64_t> counts) const {
    SmallVector<Regs> sets;
    for (int64_t count : counts) {
      const int64_t n = emulated() ? 1 : count;
      sets.push_back({SmallVector<Value>(values.take_front(n)), count});
      values = values.drop_front(n);
    }
    return sets;
  }

private:
  static Value at(OpBuilder &b, Location loc, Value v, Value index) {
    return vector::ExtractOp::create(b, loc, v, ArrayRef<OpFoldResult>{index});
  }

  Value lane;
};

/// The tensor-core form of the grouped expert GEMM: one warp per (tile of
/// kMmaTileRows rows of one expert, kMmaBlocksN * 8 outputs n), as an
/// iteration per (tile, warp's n range, lane) whose lane dimension is
/// exactly the warp (jamba-gpu-map-loops keeps the innermost dimension
/// fastest and checks that blocks are whole warps). Per K step of
/// kMmaStepK the lane converts its inputs to bf16 (round to nearest even)
/// and its int8 weights to bf16 (exact) in registers, packs them two per
/// 32-bit register and issues 4 x kMmaBlocksN `nvvm.mma.sync` m16n8k16
/// (bf16 operands, f32 accumulators). After the K loop the scale, the
/// routing weight and the store, each lane for its 4 x kMmaBlocksN
/// accumulators.
///
/// The fragments (PTX ISA, mma.m16n8k16 .bf16): lane = 4 g + q holds A at
/// rows g and g + 8 and B at column n = g, both at the logical k {2q, 2q + 1,
/// 2q + 8, 2q + 9}, and the accumulators at rows g, g + 8 and columns 2q,
/// 2q + 1. A K step maps logical k of mma s onto the memory k k0 + 16 q + 4 s
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

          // What lane 4 grp + q reads: its input rows grp and grp + 8 of
          // the tile (past the count the tile's last row again: read, not
          // stored) and its weight rows n = the warp's first + 8 j + grp
          // (clamped into [0, N - 1]: read, not stored).
          struct LaneRows {
            SmallVector<Value> rowIdx[2], xIdx[2], wRow;
          };
          auto laneRows = [&](OpBuilder &rb, Location rl, Value grp) {
            LaneRows r;
            for (int64_t h = 0; h < 2; ++h) {
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

          // One K step: every lane's fragments, A of slice s (registers
          // (row g, k 2q..), (row g + 8), (row g, k 2q + 8..), (row g + 8):
          // words 2s, 2s, 2s + 1, 2s + 1 of its rows g, g + 8, g, g + 8) and
          // B of n-block j and slice s (words 2s and 2s + 1 of weight row
          // j), then kMmaBlocksN x slices mma.sync.
          SmallVector<Type> fragTypes(slices + kMmaBlocksN * slices, i32);
          SmallVector<int64_t> fragCounts(slices, 4);
          fragCounts.append(kMmaBlocksN * slices, 2);
          auto step = [&](OpBuilder &kb, Location kl, Value k0,
                          ArrayRef<WarpCode::Regs> acc, int64_t wAlign,
                          int64_t xAlign) {
            SmallVector<WarpCode::Regs> frag = warp.eachLane(
                kb, kl, {}, fragTypes, fragCounts,
                [&](OpBuilder &lb, Location ll, Value lane,
                    ArrayRef<SmallVector<Value>>) {
                  Value grp = divC(lb, ll, lane, 4), q = remC(lb, ll, lane, 4);
                  LaneRows r = laneRows(lb, ll, grp);
                  Value k = addI(lb, ll, k0, mulC(lb, ll, q, perLane));
                  SmallVector<Value> words[2];
                  for (int64_t h = 0; h < 2; ++h) {
                    SmallVector<Value> at(r.xIdx[h]);
                    at.push_back(k);
                    words[h] = packedBF16(lb, ll, g.x, at, perLane, xAlign);
                  }
                  SmallVector<SmallVector<Value>> regs;
                  for (int64_t s = 0; s < slices; ++s)
                    regs.push_back({words[0][2 * s], words[1][2 * s],
                                    words[0][2 * s + 1], words[1][2 * s + 1]});
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
                next[j] = warp.mma(kb, kl, frag[s],
                                   frag[slices + j * slices + s], next[j]);
            return next;
          };

          // The K loop: kMmaBlocksN blocks of 4 f32 accumulators, with
          // aligned 16-byte vectors (the lane form's test) or element loads.
          SmallVector<WarpCode::Regs> init;
          for (int64_t j = 0; j < kMmaBlocksN; ++j)
            init.push_back(warp.splat(tb, tl, f32, 4, 0.0));
          SmallVector<int64_t> accCounts(kMmaBlocksN, 4);
          auto kLoop = [&](OpBuilder &sb, Location sl, int64_t wAlign,
                           int64_t xAlign) {
            return scf::ForOp::create(
                       sb, sl, c(sb, sl, 0), g.kDim, c(sb, sl, kMmaStepK),
                       WarpCode::flatten(init),
                       [&](OpBuilder &kb, Location kl, Value k0,
                           ValueRange args) {
                         scf::YieldOp::create(
                             kb, kl,
                             WarpCode::flatten(step(
                                 kb, kl, k0, warp.unflatten(args, accCounts),
                                 wAlign, xAlign)));
                       })
                .getResults();
          };
          const int64_t wBytes = wElem.getIntOrFloatBitWidth() / 8,
                        xBytes = xElem.getIntOrFloatBitWidth() / 8;
          SmallVector<Type> accTypes;
          for (Value v : WarpCode::flatten(init))
            accTypes.push_back(v.getType());
          auto sums = scf::IfOp::create(tb, tl, accTypes, g.vectors,
                                        /*withElseRegion=*/true);
          {
            OpBuilder::InsertionGuard guard(tb);
            tb.setInsertionPointToStart(sums.thenBlock());
            scf::YieldOp::create(tb, tl, kLoop(tb, tl, 16, 16));
            tb.setInsertionPointToStart(sums.elseBlock());
            scf::YieldOp::create(tb, tl, kLoop(tb, tl, wBytes, xBytes));
          }
          // The epilogue: accumulator i of block j is row g + 8 (i / 2),
          // column n = the warp's first + 8 j + 2 q + i % 2.
          warp.eachLane(
              tb, tl, warp.unflatten(sums.getResults(), accCounts), {}, {},
              [&](OpBuilder &lb, Location ll, Value lane,
                  ArrayRef<SmallVector<Value>> acc) {
                Value grp = divC(lb, ll, lane, 4), q = remC(lb, ll, lane, 4);
                LaneRows own = laneRows(lb, ll, grp);
                for (int64_t j = 0; j < kMmaBlocksN; ++j)
                  for (int64_t i = 0; i < 4; ++i) {
                    const int64_t h = i / 2;
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
                          Value v = acc[j][i];
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

/// Two parallel nests, for the few rows of a decode step (a GEMV per routed
/// slot, where the weights are the traffic):
///
/// 1. one iteration per (n, row, lane), a row being one (token, slot): the
///    lane sums w[e, n, k] x[k] over its share of the row into its partial
///    sum. Consecutive iterations (GPU threads) are consecutive lanes of one
///    weight row, so a warp's loads of the weights are contiguous (the plain
///    form gives each thread its own row n, K apart); the rows are inside n,
///    so the rows routed to one expert read its weight row n at about the
///    same time (from the cache after the first: at batch 32 each expert
///    serves about 4 of the 64 rows, which the row-major order re-read from
///    memory). When the weight rows
///    can be read as aligned 16-byte vectors and the inputs as aligned
///    vectors of as many elements (alignedForVectors and K a multiple of V:
///    one uniform test per call), the lane's share is the V-element chunks
///    starting at k = V lane, V (lane + L), ... (V = 16 int8, 8 bf16 or 4 f32
///    weights), each one vector load widened to f32 and accumulated
///    elementwise, the V sums added at the end: a warp reads 512 contiguous
///    bytes of int8 weights per step instead of 32. Otherwise the share is k =
///    lane, lane + L, ..., one element per step;
/// 2. one iteration per (row, n): the L partial sums in lane order, then
///    the epilogue: scale[e, n] (int8), the routing weight, and zero for an
///    expert outside this rank's range (expert parallelism).
///
/// L is chosen at run time from the row count (all `maxLanes` up to
/// kLaneRowBudget rows, fewer beyond, 1 for a long prefill). Integer
/// weights convert to f32 in the loop (sitofp), f32 accumulation.
LogicalResult lowerExpertGemm(IRRewriter &rw, ExpertGemmOp op, int64_t maxLanes,
                              int64_t groupedRows, bool tensorCores,
                              bool emulateMma) {
  if (!isF32Compatible(op.getInput().getType()) ||
      !isF32Compatible(op.getType()))
    return failure();
  const bool mma = tensorCores && mmaEligible(op);
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
          b, loc, indexConst(b, loc, maxLanes),
          arith::DivUIOp::create(b, loc,
                                 indexConst(b, loc, kLaneRowBudget * maxLanes),
                                 arith::MaxUIOp::create(b, loc, rows, one))));
  const int64_t dyn = ShapedType::kDynamic;
  // More rows than `groupedRows`: the grouped nests (step 3) run and the
  // lane nests have no rows (no launch); otherwise the grouped nests have
  // none.
  Value grouped = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ugt, rows,
                                        indexConst(b, loc, groupedRows));
  Value laneRows = arith::SelectOp::create(b, loc, grouped, zero, rows);
  Value partial =
      lowering::allocBuffer(b, loc, RankedTensorType::get({dyn, dyn, dyn}, f32),
                            {laneRows, n, lanes});

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
  Value vectors = arith::AndIOp::create(
      b, loc, alignedForVectors(b, loc, w, kWeightVectorBytes),
      alignedForVectors(b, loc, x, xAlign));
  vectors = arith::AndIOp::create(
      b, loc, vectors,
      arith::CmpIOp::create(
          b, loc, arith::CmpIPredicate::eq,
          arith::RemUIOp::create(b, loc, kDim, indexConst(b, loc, v)), zero));
  parallel(b, loc, "expert_gemm_lanes", {n, laneRows, lanes},
           [&](OpBuilder &pb, Location l, ValueRange iv) {
             Value nn = iv[0], r = iv[1], lane = iv[2];
             SmallVector<Value> idx = delinearize(pb, l, r, rowDims);
             Value e = clamped(pb, l, localExpert(pb, l, idx));
             SmallVector<Value> xIdx(idx.begin(),
                                     perSlot ? idx.end() : idx.end() - 1);
             auto xAt = [&](Value k) {
               SmallVector<Value> at(xIdx);
               at.push_back(k);
               return at;
             };
             // The lane's share of K: `width` elements from k = first, first +
             // step, ..., into an accumulator of `width` f32 lanes.
             auto share = [&](OpBuilder &sb, Location sl, Value first,
                              Value step, int64_t width) -> Value {
               Type accType = f32;
               if (width > 1)
                 accType = VectorType::get({width}, f32);
               auto sum = scf::ForOp::create(
                   sb, sl, first, kDim, step,
                   ValueRange{floatConst(sb, sl, accType, 0.0)},
                   [&](OpBuilder &kb, Location kl, Value k, ValueRange acc) {
                     Value xv, wv;
                     if (width == 1) {
                       xv = loadF32(kb, kl, x, xAt(k));
                       wv = loadF32(kb, kl, w, {e, nn, k});
                     } else {
                       xv = loadVectorF32(kb, kl, x, xAt(k), width, xAlign);
                       wv = loadVectorF32(kb, kl, w, {e, nn, k}, width,
                                          kWeightVectorBytes);
                     }
                     scf::YieldOp::create(
                         kb, kl, addF(kb, kl, acc[0], mulF(kb, kl, xv, wv)));
                   });
               if (width == 1)
                 return sum.getResult(0);
               return vector::ReductionOp::create(
                   sb, sl, vector::CombiningKind::ADD, sum.getResult(0));
             };
             auto ifOp = scf::IfOp::create(
                 pb, l, vectors,
                 [&](OpBuilder &tb, Location tl) {
                   Value vElems = indexConst(tb, tl, v);
                   Value first = arith::MulIOp::create(tb, tl, lane, vElems);
                   Value step = arith::MulIOp::create(tb, tl, lanes, vElems);
                   scf::YieldOp::create(tb, tl, share(tb, tl, first, step, v));
                 },
                 [&](OpBuilder &eb, Location el) {
                   scf::YieldOp::create(eb, el, share(eb, el, lane, lanes, 1));
                 });
             memref::StoreOp::create(pb, l, ifOp.getResult(0), partial,
                                     ValueRange{r, nn, lane});
           });

  // 2. The lanes in order, then the epilogue.
  parallel(
      b, loc, "expert_gemm_epilogue", {laneRows, n},
      [&](OpBuilder &pb, Location l, ValueRange iv) {
        Value r = iv[0], nn = iv[1];
        Value v =
            loop(pb, l, zero, lanes, {floatConst(pb, l, f32, 0.0)},
                 [&](OpBuilder &nb, Location nl, Value lane, ValueRange acc) {
                   Value p = load(nb, nl, partial, {r, nn, lane});
                   return SmallVector<Value>{addF(nb, nl, acc[0], p)};
                 })
                .getResult(0);
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
              arith::CmpIOp::create(pb, l, arith::CmpIPredicate::sge, local,
                                    zero),
              arith::CmpIOp::create(pb, l, arith::CmpIPredicate::slt, local,
                                    experts));
          v = arith::SelectOp::create(pb, l, inRange, v,
                                      floatConst(pb, l, f32, 0.0));
        }
        SmallVector<Value> out(idx);
        out.push_back(nn);
        storeF32(pb, l, v, result, out);
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
  // 3a. Each expert's rows.
  parallel(b, loc, "expert_gemm_count", {groupExperts},
           [&](OpBuilder &pb, Location l, ValueRange iv) {
             Value c =
                 loop(pb, l, zero, rows, {zero},
                      [&](OpBuilder &nb, Location nl, Value r, ValueRange acc) {
                        Value add = arith::SelectOp::create(
                            nb, nl, isExpert(nb, nl, r, iv[0]),
                            indexConst(nb, nl, 1), indexConst(nb, nl, 0));
                        return SmallVector<Value>{addI(nb, nl, acc[0], add)};
                      })
                     .getResult(0);
             memref::StoreOp::create(pb, l, c, counts, iv[0]);
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
  // 3c. Each expert's rows, in row order, at its start.
  parallel(b, loc, "expert_gemm_sort", {groupExperts},
           [&](OpBuilder &pb, Location l, ValueRange iv) {
             Value first = load(pb, l, starts, {iv[0]});
             loop(pb, l, zero, rows, {first},
                  [&](OpBuilder &nb, Location nl, Value r, ValueRange at) {
                    auto put = scf::IfOp::create(
                        nb, nl, isExpert(nb, nl, r, iv[0]),
                        [&](OpBuilder &tb, Location tl) {
                          memref::StoreOp::create(tb, tl, r, sorted, at[0]);
                          scf::YieldOp::create(
                              tb, tl,
                              addI(tb, tl, at[0], indexConst(tb, tl, 1)));
                        },
                        [&](OpBuilder &eb, Location el) {
                          scf::YieldOp::create(eb, el, at[0]);
                        });
                    return SmallVector<Value>{put.getResult(0)};
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
    GroupedTiles tiles{
        x,       w, scale, routeWeights, result,  sorted, tileStarts,
        experts, n, kDim,  vectors,      rowDims, perSlot};
    groupedMmaTiles(b, loc, tiles, when(maxTiles), tileOf, emulateMma);
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

//===----------------------------------------------------------------------===//
// jamba.cached_attention
//===----------------------------------------------------------------------===//

/// The cache after appending the new rows: an `scf.forall` over
/// (b, g, s) whose shared output is the cache (so bufferization updates it
/// in place), each iteration inserting the row x[b, s, g * hd .. + hd) at
/// cache[b, g, len[b] + s, :] (`tensor.parallel_insert_slice`; a row past
/// the capacity inserts nothing: its slice has 0 rows). A call touches only
/// its new rows; the position is read inside the loop (on the device).
/// After bufferization the loop is an `scf.parallel` whose body copies one
/// row (`jamba-parallel-copies-to-loops` makes the copy a loop).
Value appendToCache(OpBuilder &b, Location loc, Value cache, Value rows,
                    Value lens, int64_t headDim) {
  auto type = cast<RankedTensorType>(cache.getType());
  Value batch = tensor::DimOp::create(b, loc, rows, 0);
  Value seq = tensor::DimOp::create(b, loc, rows, 1);
  Value groups = tensor::DimOp::create(b, loc, cache, 1);
  Value capacity = tensor::DimOp::create(b, loc, cache, 2);
  auto forall = scf::ForallOp::create(
      b, loc, getAsOpFoldResult(ValueRange{batch, groups, seq}),
      ValueRange{cache}, std::nullopt,
      [&](OpBuilder &fb, Location fl, ValueRange args) {
        Value bi = args[0], g = args[1], s = args[2], out = args[3];
        Value len = arith::IndexCastOp::create(
            fb, fl, fb.getIndexType(),
            tensor::ExtractOp::create(fb, fl, lens, ValueRange{bi}));
        Value p = addI(fb, fl, len, s);
        Value inside = arith::CmpIOp::create(fb, fl, arith::CmpIPredicate::ult,
                                             p, capacity);
        Value n = arith::SelectOp::create(fb, fl, inside, indexConst(fb, fl, 1),
                                          indexConst(fb, fl, 0));
        Value at = arith::MinUIOp::create(fb, fl, p, capacity);
        Value col =
            arith::MulIOp::create(fb, fl, g, indexConst(fb, fl, headDim));
        OpFoldResult one = fb.getIndexAttr(1), zero = fb.getIndexAttr(0),
                     width = fb.getIndexAttr(headDim);
        // The rows and the cache have one element type (the caller checks).
        Value row = tensor::ExtractSliceOp::create(
            fb, fl,
            RankedTensorType::get({ShapedType::kDynamic, headDim},
                                  type.getElementType()),
            rows, ArrayRef<OpFoldResult>{bi, s, col},
            ArrayRef<OpFoldResult>{one, n, width},
            ArrayRef<OpFoldResult>{one, one, one});
        auto inParallel = scf::InParallelOp::create(fb, fl);
        OpBuilder::InsertionGuard guard(fb);
        fb.setInsertionPointToStart(inParallel.getBody());
        tensor::ParallelInsertSliceOp::create(
            fb, fl, row, out, ArrayRef<OpFoldResult>{bi, g, at, zero},
            ArrayRef<OpFoldResult>{one, one, n, width},
            ArrayRef<OpFoldResult>{one, one, one, one});
      });
  forall->setAttr(kKernelNameAttr, b.getStringAttr("cache_append"));
  return forall.getResult(0);
}

/// Keys an attention split scores before it updates its partial output row
/// (read and written once per block instead of once per key).
constexpr int64_t kAttentionKeyBlock = 8;

/// How cached attention splits the keys (the pass's options).
struct AttentionSplits {
  int64_t keysPerSplit = 64;
  int64_t maxSplits = 32;
  /// The prefill on tensor cores (attentionMmaTiles) from this many tokens
  /// on; 0: never.
  int64_t mmaMinTokens = 0;
  /// Test aid: attentionMmaTiles's warps emulated (WarpCode).
  bool emulateMma = false;
};

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
LogicalResult lowerCachedAttention(IRRewriter &rw, CachedAttentionOp op,
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
  const bool mma = config.mmaMinTokens > 0 && headDim % 16 == 0 &&
                   kMmaQueryRows % group == 0 &&
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

/// nvvm.mma.sync reads and writes registers only, but declares no memory
/// effects, and buffer deallocation rejects ops whose effects are unknown:
/// this model says it has none.
struct MmaSyncHasNoMemoryEffects
    : MemoryEffectOpInterface::ExternalModel<MmaSyncHasNoMemoryEffects,
                                             NVVM::MmaOp> {
  void
  getEffects(Operation *,
             SmallVectorImpl<SideEffects::EffectInstance<MemoryEffects::Effect>>
                 &) const {}
};

struct JambaGpuKernelsPass
    : jamba::impl::JambaGpuKernelsPassBase<JambaGpuKernelsPass> {
  using Base::Base;

  LogicalResult initialize(MLIRContext *context) override {
    // Once per context, before any function runs (the pass is run on
    // functions in parallel).
    std::optional<RegisteredOperationName> mma =
        RegisteredOperationName::lookup(TypeID::get<NVVM::MmaOp>(), context);
    if (mma && !mma->hasInterface<MemoryEffectOpInterface>())
      NVVM::MmaOp::attachInterface<MmaSyncHasNoMemoryEffects>(*context);
    return success();
  }

  void runOnOperation() override {
    if (scanChunkSteps < 1) {
      getOperation().emitError()
          << "jamba-gpu-kernels: scan-chunk-steps must be at least 1 (got "
          << static_cast<int64_t>(scanChunkSteps) << ")";
      return signalPassFailure();
    }
    if (expertGemmLanes < 1) {
      getOperation().emitError()
          << "jamba-gpu-kernels: expert-gemm-lanes must be at least 1 (got "
          << static_cast<int64_t>(expertGemmLanes) << ")";
      return signalPassFailure();
    }
    if (attentionKeysPerSplit < 1 || attentionMaxSplits < 1) {
      getOperation().emitError()
          << "jamba-gpu-kernels: attention-keys-per-split and "
             "attention-max-splits must be at least 1 (got "
          << static_cast<int64_t>(attentionKeysPerSplit) << " and "
          << static_cast<int64_t>(attentionMaxSplits) << ")";
      return signalPassFailure();
    }
    if (attentionMmaMinTokens < 1) {
      getOperation().emitError()
          << "jamba-gpu-kernels: attention-mma-min-tokens must be at least 1 "
             "(got "
          << static_cast<int64_t>(attentionMmaMinTokens) << ")";
      return signalPassFailure();
    }
    AttentionSplits splitsConfig{
        attentionKeysPerSplit, attentionMaxSplits,
        attentionTensorCores ? static_cast<int64_t>(attentionMmaMinTokens) : 0,
        emulateMma};
    SmallVector<Operation *> ops;
    getOperation()->walk([&](Operation *op) {
      if (isa<SelectiveScanOp, CausalConv1dOp, RouterTopKOp, CachedAttentionOp,
              ExpertGemmOp, RMSNormOp>(op))
        ops.push_back(op);
    });
    IRRewriter rw(&getContext());
    for (Operation *op : ops) {
      // An unsupported form (f64) is left to convert-jamba-to-linalg.
      (void)TypeSwitch<Operation *, LogicalResult>(op)
          .Case([&](SelectiveScanOp o) {
            return lowerSelectiveScan(rw, o, scanChunkSteps);
          })
          .Case([&](CausalConv1dOp o) { return lowerCausalConv1d(rw, o); })
          .Case([&](RouterTopKOp o) { return lowerRouterTopK(rw, o); })
          .Case([&](CachedAttentionOp o) {
            return lowerCachedAttention(rw, o, splitsConfig);
          })
          .Case([&](ExpertGemmOp o) {
            return lowerExpertGemm(rw, o, expertGemmLanes,
                                   expertGemmGroupedRows, expertGemmTensorCores,
                                   emulateMma);
          })
          .Case([&](RMSNormOp o) { return lowerRMSNorm(rw, o); })
          .Default([](Operation *) { return failure(); });
    }
  }
};

struct JambaParallelCopiesToLoopsPass
    : jamba::impl::JambaParallelCopiesToLoopsPassBase<
          JambaParallelCopiesToLoopsPass> {
  void runOnOperation() override {
    IRRewriter rw(&getContext());
    // Every scf.forall as an scf.parallel, keeping its kernel name.
    SmallVector<scf::ForallOp> foralls;
    getOperation().walk(
        [&](scf::ForallOp forall) { foralls.push_back(forall); });
    for (scf::ForallOp forall : llvm::reverse(foralls)) {
      auto name = forall->getAttrOfType<StringAttr>(kKernelNameAttr);
      rw.setInsertionPoint(forall);
      scf::ParallelOp loop;
      if (failed(scf::forallToParallelLoop(rw, forall, &loop))) {
        forall.emitError() << "jamba-parallel-copies-to-loops: cannot make "
                              "this scf.forall a parallel loop";
        return signalPassFailure();
      }
      if (name)
        loop->setAttr(kKernelNameAttr, name);
    }

    SmallVector<memref::CopyOp> copies;
    getOperation().walk([&](memref::CopyOp copy) {
      if (copy->getParentOfType<scf::ParallelOp>() ||
          copy->getParentOfType<scf::ForallOp>())
        copies.push_back(copy);
    });
    for (memref::CopyOp copy : copies) {
      rw.setInsertionPoint(copy);
      // The copy's stores carry the name of the kernel they are part of.
      StringAttr name;
      for (Operation *p = copy->getParentOp(); p; p = p->getParentOp())
        if (auto n = p->getAttrOfType<StringAttr>(kKernelNameAttr))
          name = n;
      Location loc = copy.getLoc();
      Value source = copy.getSource(), target = copy.getTarget();
      int64_t rank = cast<MemRefType>(source.getType()).getRank();
      // One scf.for per dimension, the element copy innermost.
      std::function<void(OpBuilder &, Location, SmallVector<Value>)> nest =
          [&](OpBuilder &nb, Location nl, SmallVector<Value> ivs) {
            if (int64_t(ivs.size()) == rank) {
              Value v = memref::LoadOp::create(nb, nl, source, ivs);
              auto store = memref::StoreOp::create(nb, nl, v, target, ivs);
              if (name)
                store->setAttr(kKernelNameAttr, name);
              return;
            }
            Value ub = dim(nb, nl, source, int64_t(ivs.size()));
            loop(nb, nl, indexConst(nb, nl, 0), ub, {},
                 [&](OpBuilder &ib, Location il, Value iv, ValueRange) {
                   SmallVector<Value> next = ivs;
                   next.push_back(iv);
                   nest(ib, il, next);
                   return SmallVector<Value>{};
                 });
          };
      nest(rw, loc, {});
      rw.eraseOp(copy);
    }
  }
};

} // namespace

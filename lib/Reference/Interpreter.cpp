//===- Interpreter.cpp - Reference interpreter of the jamba dialect -------===//
//
// Part of jamba-mlir.
//
//===----------------------------------------------------------------------===//

#include "jamba/Reference/Interpreter.h"

#include "jamba/Dialect/Jamba/IR/JambaOps.h"
#include "jamba/Reference/Kernels.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::jamba;
using ::jamba::ref::Tensor;

namespace {

template <typename T> class Interpreter {
public:
  explicit Interpreter(const InterpretOptions &options) : options(options) {}

  /// Runs every op of `block` until the terminator; fills `results`.
  LogicalResult run(Block &block, SmallVectorImpl<Tensor<T>> &results);

  /// Binds `v` to a tensor the interpreter owns.
  void bind(Value v, Tensor<T> t) {
    owned.push_back(std::make_unique<Tensor<T>>(std::move(t)));
    values[v] = owned.back().get();
  }
  /// Binds `v` to a tensor owned by the caller (arguments: no copy).
  void bindRef(Value v, const Tensor<T> &t) { values[v] = &t; }

private:
  const InterpretOptions &options;

  const Tensor<T> &get(Value v) { return *values.find(v)->second; }
  const Tensor<T> *getOpt(Value v) { return v ? &get(v) : nullptr; }
  /// options.routingMargins when it has one entry per token of `v` (its
  /// leading dims); null otherwise.
  std::vector<double> *marginsFor(Value v) {
    std::vector<double> *margins = options.routingMargins;
    const Tensor<T> &t = get(v);
    if (!margins || t.rank() == 0 ||
        static_cast<int64_t>(margins->size()) != t.numel() / t.dim(-1))
      return nullptr;
    return margins;
  }

  /// The routing swaps of the next router (options.routingSwaps) at its
  /// tokens `tokens` (a [..., S, D] tensor: S tokens per sequence): rows of
  /// the flattened leading dims. Counts the router.
  std::vector<int64_t> swapRowsOfNextRouter(const Tensor<T> &tokens) {
    const int64_t router = routersRun++;
    std::vector<int64_t> rows;
    if (options.routingSwaps.empty() || tokens.rank() < 2)
      return rows;
    const int64_t seq = tokens.dim(-2),
                  sequences = tokens.numel() / tokens.dim(-1) / seq;
    for (const InterpretOptions::RoutingSwap &s : options.routingSwaps) {
      const int64_t at = s.position - options.firstPosition;
      if (s.router == router && at >= 0 && at < seq)
        for (int64_t b = 0; b < sequences; ++b)
          rows.push_back(b * seq + at);
    }
    return rows;
  }
  /// Reports the swaps `made` by router routersRun - 1, whose tokens are
  /// `tokens`, into options.swapsMade.
  void reportSwaps(const Tensor<T> &tokens,
                   const std::vector<::jamba::ref::RoutingSwapMade> &made) {
    if (!options.swapsMade)
      return;
    for (const ::jamba::ref::RoutingSwapMade &m : made)
      options.swapsMade->push_back(
          {{routersRun - 1, options.firstPosition + m.row % tokens.dim(-2)},
           m.left,
           m.took,
           m.margin});
  }

  /// Checks the runtime shape of `t` against the IR type of `v`.
  LogicalResult checkType(Operation *op, StringRef what, Value v,
                          const Tensor<T> &t);
  /// Checks that dimension `da` of `a` equals dimension `db` of `b`.
  LogicalResult checkSameDim(Operation *op, StringRef nameA, Value a,
                             int64_t da, StringRef nameB, Value b, int64_t db);
  /// Checks that every value of `t` is an integer in [0, bound).
  LogicalResult checkIndices(Operation *op, StringRef what, const Tensor<T> &t,
                             int64_t bound);

  LogicalResult execute(Operation *op);

  DenseMap<Value, const Tensor<T> *> values;
  std::vector<std::unique_ptr<Tensor<T>>> owned;
  /// The routers run so far (swapRowsOfNextRouter).
  int64_t routersRun = 0;
};

template <typename T>
LogicalResult Interpreter<T>::checkType(Operation *op, StringRef what, Value v,
                                        const Tensor<T> &t) {
  // Scalars (index, integer, float) are held as rank-0 tensors.
  if (v.getType().isIntOrIndexOrFloat()) {
    if (t.rank() == 0)
      return success();
    return op->emitError() << "reference interpreter: scalar " << what
                           << " holds a tensor";
  }
  auto type = dyn_cast<RankedTensorType>(v.getType());
  if (!type)
    return op->emitError() << "reference interpreter: " << what << " has type "
                           << v.getType()
                           << "; only ranked tensors are supported";
  bool ok = type.getRank() == t.rank();
  for (int64_t i = 0; ok && i < t.rank(); ++i)
    ok = type.isDynamicDim(i) || type.getDimSize(i) == t.dim(i);
  if (ok)
    return success();
  return op->emitError() << "reference interpreter: " << what << " has shape "
                         << ::jamba::ref::formatShape(t.shape)
                         << ", which does not match its type " << type;
}

template <typename T>
LogicalResult Interpreter<T>::checkSameDim(Operation *op, StringRef nameA,
                                           Value a, int64_t da, StringRef nameB,
                                           Value b, int64_t db) {
  int64_t sa = get(a).dim(da), sb = get(b).dim(db);
  if (sa == sb)
    return success();
  return op->emitError() << "reference interpreter: dimension " << da << " of '"
                         << nameA << "' (" << sa << ") differs from dimension "
                         << db << " of '" << nameB << "' (" << sb << ")";
}

template <typename T>
LogicalResult Interpreter<T>::checkIndices(Operation *op, StringRef what,
                                           const Tensor<T> &t, int64_t bound) {
  for (int64_t i = 0; i < t.numel(); ++i) {
    T v = t[i];
    if (v >= 0 && v < T(bound) && v == std::floor(v))
      continue;
    InFlightDiagnostic diag = op->emitError()
                              << "reference interpreter: " << what << " value ";
    if (v == std::floor(v) && std::abs(v) < T(1e15))
      diag << static_cast<int64_t>(v);
    else
      diag << static_cast<double>(v);
    return diag << " at flat index " << i << " is outside [0, " << bound << ")";
  }
  return success();
}

template <typename T>
LogicalResult Interpreter<T>::run(Block &block,
                                  SmallVectorImpl<Tensor<T>> &results) {
  for (Operation &op : block) {
    if (auto ret = dyn_cast<func::ReturnOp>(op)) {
      for (Value v : ret.getOperands())
        results.push_back(get(v));
      return success();
    }
    for (auto [i, operand] : llvm::enumerate(op.getOperands()))
      if (failed(checkType(&op, "operand #" + std::to_string(i), operand,
                           get(operand))))
        return failure();
    if (failed(execute(&op)))
      return failure();
    for (auto [i, result] : llvm::enumerate(op.getResults()))
      if (failed(checkType(&op, "result #" + std::to_string(i), result,
                           get(result))))
        return failure();
  }
  return block.getParentOp()->emitError()
         << "reference interpreter: block has no func.return";
}

template <typename T> LogicalResult Interpreter<T>::execute(Operation *op) {
  using namespace ::jamba::ref;
  return llvm::TypeSwitch<Operation *, LogicalResult>(op)
      .template Case<EmbeddingOp>([&](EmbeddingOp e) {
        if (failed(checkIndices(op, "token id", get(e.getIds()),
                                get(e.getTable()).dim(0))))
          return failure();
        bind(e.getResult(), embedding(get(e.getTable()), get(e.getIds())));
        return success();
      })
      .template Case<RMSNormOp>([&](RMSNormOp n) {
        bind(n.getResult(), rmsNorm(get(n.getInput()), get(n.getWeight()),
                                    n.getEpsilon().convertToDouble()));
        return success();
      })
      .template Case<LinearOp>([&](LinearOp l) {
        bind(l.getResult(),
             linear(get(l.getInput()), get(l.getWeight()), getOpt(l.getScale()),
                    getOpt(l.getBias()), options.gemmInputs));
        return success();
      })
      .template Case<MambaMixerOp>([&](MambaMixerOp m) {
        if (failed(checkSameDim(op, "input", m.getInput(), 0, "conv_state",
                                m.getConvState(), 0)) ||
            failed(checkSameDim(op, "input", m.getInput(), 0, "ssm_state",
                                m.getSsmState(), 0)))
          return failure();
        MambaWeights<T> w{
            &get(m.getInProjWeight()),  getOpt(m.getInProjBias()),
            &get(m.getConvWeight()),    getOpt(m.getConvBias()),
            &get(m.getXProjWeight()),   &get(m.getDtNormWeight()),
            &get(m.getBNormWeight()),   &get(m.getCNormWeight()),
            &get(m.getDtProjWeight()),  &get(m.getDtProjBias()),
            &get(m.getALog()),          &get(m.getD()),
            &get(m.getOutProjWeight()), getOpt(m.getOutProjBias())};
        auto [out, conv, ssm] = mambaMixer(
            get(m.getInput()), get(m.getConvState()), get(m.getSsmState()), w,
            m.getEpsilon().convertToDouble(), options.gemmInputs);
        bind(m.getResult(), std::move(out));
        bind(m.getNewConvState(), std::move(conv));
        bind(m.getNewSsmState(), std::move(ssm));
        return success();
      })
      .template Case<AttentionOp>([&](AttentionOp a) {
        if (failed(checkSameDim(op, "input", a.getInput(), 0, "k_cache",
                                a.getKCache(), 0)) ||
            failed(checkSameDim(op, "k_cache", a.getKCache(), 2, "v_cache",
                                a.getVCache(), 2)) ||
            failed(checkSameDim(op, "input", a.getInput(), 0, "cache_len",
                                a.getCacheLen(), 0)))
          return failure();
        const Tensor<T> &x = get(a.getInput()), &len = get(a.getCacheLen());
        int64_t capacity = get(a.getKCache()).dim(2);
        // Every sequence's new tokens must fit in the cache.
        if (failed(checkIndices(op, "cache_len", len, capacity - x.dim(1) + 1)))
          return failure();
        auto [out, k, v] = attention(
            x, get(a.getQWeight()), get(a.getKWeight()), get(a.getVWeight()),
            get(a.getOWeight()), get(a.getKCache()), get(a.getVCache()), len,
            a.getNumHeads(), a.getNumKvHeads(), options.gemmInputs);
        bind(a.getResult(), std::move(out));
        bind(a.getNewKCache(), std::move(k));
        bind(a.getNewVCache(), std::move(v));
        return success();
      })
      .template Case<MoEOp>([&](MoEOp m) {
        if (m.getExpertOffset())
          return LogicalResult(
              op->emitError()
              << "reference interpreter: jamba.moe with an expert_offset "
                 "(one rank of an expert-parallel model) is run decomposed");
        const Tensor<T> &x = get(m.getInput());
        std::vector<::jamba::ref::RoutingSwapMade> made;
        bind(m.getResult(),
             moe(x, get(m.getRouterWeight()), get(m.getGateWeight()),
                 get(m.getUpWeight()), get(m.getDownWeight()), m.getTopK(),
                 m.getNormalizeTopK(), options.gemmInputs,
                 marginsFor(m.getInput()), options.expertInputs,
                 swapRowsOfNextRouter(x), &made));
        reportSwaps(x, made);
        return success();
      })
      .template Case<MLPOp>([&](MLPOp m) {
        bind(m.getResult(), mlp(get(m.getInput()), get(m.getGateWeight()),
                                get(m.getUpWeight()), get(m.getDownWeight()),
                                options.gemmInputs));
        return success();
      })
      .template Case<LMHeadOp>([&](LMHeadOp l) {
        int64_t keep = l.getNumLogitsToKeep();
        if (keep > get(l.getInput()).dim(1))
          return LogicalResult(op->emitError()
                               << "reference interpreter: num_logits_to_keep ("
                               << keep << ") exceeds the sequence length ("
                               << get(l.getInput()).dim(1) << ")");
        bind(l.getResult(), lmHead(get(l.getInput()), get(l.getWeight()), keep,
                                   options.gemmInputs));
        return success();
      })
      .template Case<CausalConv1dOp>([&](CausalConv1dOp c) {
        if (failed(checkSameDim(op, "input", c.getInput(), 0, "state",
                                c.getState(), 0)))
          return failure();
        auto [y, state] =
            causalConv1d(get(c.getInput()), get(c.getWeight()),
                         getOpt(c.getBias()), get(c.getState()), c.getSilu());
        bind(c.getResult(), std::move(y));
        bind(c.getNewState(), std::move(state));
        return success();
      })
      .template Case<SelectiveScanOp>([&](SelectiveScanOp s) {
        Value u = s.getU();
        for (auto [name, v] :
             {std::pair<StringRef, Value>{"delta", s.getDelta()},
              {"B", s.getB()},
              {"C", s.getC()},
              {"z", s.getZ()}}) {
          if (v && (failed(checkSameDim(op, "u", u, 0, name, v, 0)) ||
                    failed(checkSameDim(op, "u", u, 1, name, v, 1))))
            return failure();
        }
        if (s.getInitState() && failed(checkSameDim(op, "u", u, 0, "init_state",
                                                    s.getInitState(), 0)))
          return failure();
        ScanOperands<T> ops{&get(u), &get(s.getDelta()), &get(s.getA()),
                            &get(s.getB()), &get(s.getC())};
        ops.D = getOpt(s.getD());
        ops.z = getOpt(s.getZ());
        ops.deltaBias = getOpt(s.getDeltaBias());
        ops.initState = getOpt(s.getInitState());
        ops.deltaSoftplus = s.getDeltaSoftplus();
        auto [y, last] = selectiveScan(ops);
        bind(s.getResult(), std::move(y));
        bind(s.getFinalState(), std::move(last));
        return success();
      })
      .template Case<RouterTopKOp>([&](RouterTopKOp r) {
        const Tensor<T> &logits = get(r.getLogits());
        std::vector<::jamba::ref::RoutingSwapMade> made;
        auto [w, i] = routerTopK(logits, r.getTopK(), r.getNormalize(),
                                 swapRowsOfNextRouter(logits), &made);
        reportSwaps(logits, made);
        if (std::vector<double> *margins = marginsFor(r.getLogits()))
          minRoutingMargins(get(r.getLogits()), r.getTopK(), *margins);
        bind(r.getWeights(), std::move(w));
        bind(r.getIndices(), std::move(i));
        return success();
      })
      .template Case<ExpertGemmOp>([&](ExpertGemmOp g) {
        // Leading (token) dimensions agree between input, indices and route
        // weights; the IR types only fix the static ones.
        int64_t lead = get(g.getIndices()).rank() - 1;
        for (int64_t d = 0; d < lead; ++d)
          if (failed(checkSameDim(op, "input", g.getInput(), d, "indices",
                                  g.getIndices(), d)) ||
              (g.getRouteWeights() &&
               failed(checkSameDim(op, "indices", g.getIndices(), d,
                                   "route_weights", g.getRouteWeights(), d))))
            return failure();
        // With an expert offset, indices of other ranks' experts are
        // expected (their rows are zero).
        if (!g.getExpertOffset() &&
            failed(checkIndices(op, "expert index", get(g.getIndices()),
                                get(g.getWeight()).dim(0))))
          return failure();
        bind(g.getResult(),
             expertGemm(get(g.getInput()), get(g.getWeight()),
                        getOpt(g.getScale()), get(g.getIndices()),
                        getOpt(g.getRouteWeights()),
                        getOpt(g.getExpertOffset()), options.expertInputs));
        return success();
      })
      .template Case<CachedAttentionOp>([&](CachedAttentionOp a) {
        Value q = a.getQuery();
        if (failed(checkSameDim(op, "query", q, 0, "key", a.getKey(), 0)) ||
            failed(checkSameDim(op, "query", q, 1, "key", a.getKey(), 1)) ||
            failed(checkSameDim(op, "query", q, 0, "value", a.getValue(), 0)) ||
            failed(checkSameDim(op, "query", q, 1, "value", a.getValue(), 1)) ||
            failed(
                checkSameDim(op, "query", q, 0, "k_cache", a.getKCache(), 0)) ||
            failed(checkSameDim(op, "k_cache", a.getKCache(), 2, "v_cache",
                                a.getVCache(), 2)) ||
            failed(checkSameDim(op, "query", q, 0, "cache_len", a.getCacheLen(),
                                0)))
          return failure();
        const Tensor<T> &len = get(a.getCacheLen());
        int64_t capacity = get(a.getKCache()).dim(2);
        if (failed(checkIndices(op, "cache_len", len,
                                capacity - get(q).dim(1) + 1)))
          return failure();
        auto [o, k, v] = cachedAttention(
            get(q), get(a.getKey()), get(a.getValue()), get(a.getKCache()),
            get(a.getVCache()), len, a.getNumHeads(), a.getNumKvHeads());
        bind(a.getResult(), std::move(o));
        bind(a.getNewKCache(), std::move(k));
        bind(a.getNewVCache(), std::move(v));
        return success();
      })
      .template Case<ArgmaxOp>([&](ArgmaxOp a) {
        bind(a.getIds(), argmax(get(a.getLogits())));
        return success();
      })
      .template Case<CombineSlotsOp>([&](CombineSlotsOp c) {
        bind(c.getResult(), combineSlots(get(c.getInput())));
        return success();
      })
      .template Case<DequantOp>([&](DequantOp d) {
        bind(d.getResult(), dequant(get(d.getInput()), get(d.getScale())));
        return success();
      })
      .template Case<AllReduceOp>([&](AllReduceOp a) {
        // The interpreter is one rank: the sum over one rank.
        bind(a.getResult(), get(a.getInput()));
        return success();
      })
      .template Case<SwiGLUOp>([&](SwiGLUOp s) {
        if (get(s.getGate()).shape != get(s.getUp()).shape)
          return LogicalResult(
              op->emitError()
              << "reference interpreter: 'gate' and 'up' shapes "
                 "differ");
        bind(s.getResult(), swiglu(get(s.getGate()), get(s.getUp())));
        return success();
      })
      .template Case<arith::AddFOp>([&](arith::AddFOp a) {
        if (!isa<RankedTensorType>(a.getType()) ||
            get(a.getLhs()).shape != get(a.getRhs()).shape)
          return LogicalResult(op->emitError()
                               << "reference interpreter: arith.addf needs two "
                                  "tensors of one shape");
        bind(a.getResult(), add(get(a.getLhs()), get(a.getRhs())));
        return success();
      })
      // The upstream ops the decompositions use.
      .template Case<arith::ConstantOp>([&](arith::ConstantOp c) {
        Attribute value = c.getValue();
        if (auto i = dyn_cast<IntegerAttr>(value)) {
          bind(c.getResult(), Tensor<T>({}, T(i.getInt())));
          return success();
        }
        if (auto f = dyn_cast<FloatAttr>(value)) {
          bind(c.getResult(), Tensor<T>({}, T(f.getValueAsDouble())));
          return success();
        }
        auto dense = dyn_cast<DenseElementsAttr>(value);
        if (!dense || !dense.isSplat() ||
            !isa<FloatType>(dense.getElementType()))
          return LogicalResult(op->emitError()
                               << "reference interpreter: only scalar and "
                                  "float splat constants are supported");
        auto type = cast<RankedTensorType>(c.getType());
        bind(c.getResult(),
             Tensor<T>(std::vector<int64_t>(type.getShape()),
                       T(dense.getSplatValue<APFloat>().convertToDouble())));
        return success();
      })
      .template Case<arith::SubIOp, arith::AddIOp, arith::MulIOp>(
          [&](Operation *binary) {
            // Index arithmetic of the decompositions (scalars only).
            const Tensor<T> &a = get(binary->getOperand(0)),
                            &b = get(binary->getOperand(1));
            if (a.rank() != 0 || b.rank() != 0)
              return LogicalResult(binary->emitError()
                                   << "reference interpreter: integer "
                                      "arithmetic on tensors is not supported");
            T v = isa<arith::SubIOp>(binary)   ? a[0] - b[0]
                  : isa<arith::AddIOp>(binary) ? a[0] + b[0]
                                               : a[0] * b[0];
            bind(binary->getResult(0), Tensor<T>({}, v));
            return success();
          })
      .template Case<tensor::DimOp>([&](tensor::DimOp d) {
        int64_t index = static_cast<int64_t>(get(d.getIndex())[0]);
        const Tensor<T> &source = get(d.getSource());
        if (index < 0 || index >= source.rank())
          return LogicalResult(op->emitError()
                               << "reference interpreter: dimension " << index
                               << " of a rank-" << source.rank() << " tensor");
        bind(d.getResult(), Tensor<T>({}, T(source.dim(index))));
        return success();
      })
      .template Case<tensor::ExtractSliceOp>([&](tensor::ExtractSliceOp e) {
        const Tensor<T> &source = get(e.getSource());
        auto values = [&](ArrayRef<OpFoldResult> mixed) {
          std::vector<int64_t> out;
          for (OpFoldResult r : mixed)
            out.push_back(isa<Attribute>(r)
                              ? cast<IntegerAttr>(cast<Attribute>(r)).getInt()
                              : static_cast<int64_t>(get(cast<Value>(r))[0]));
          return out;
        };
        std::vector<int64_t> offsets = values(e.getMixedOffsets()),
                             sizes = values(e.getMixedSizes()),
                             strides = values(e.getMixedStrides());
        if (e.getType().getRank() != source.rank())
          return LogicalResult(op->emitError()
                               << "reference interpreter: rank-reducing "
                                  "slices are not supported");
        for (int64_t d = 0; d < source.rank(); ++d)
          if (offsets[d] < 0 || sizes[d] < 0 || strides[d] < 1 ||
              (sizes[d] > 0 &&
               offsets[d] + (sizes[d] - 1) * strides[d] >= source.dim(d)))
            return LogicalResult(op->emitError()
                                 << "reference interpreter: slice of "
                                    "dimension "
                                 << d << " is out of bounds");
        bind(e.getResult(),
             ::jamba::ref::slice(source, offsets, sizes, strides));
        return success();
      })
      .template Case<tensor::CollapseShapeOp>([&](tensor::CollapseShapeOp c) {
        Tensor<T> t = get(c.getSrc());
        std::vector<int64_t> shape;
        for (ReassociationIndices group : c.getReassociationIndices()) {
          int64_t n = 1;
          for (int64_t d : group)
            n *= t.dim(d);
          shape.push_back(n);
        }
        t.shape = shape;
        bind(c.getResult(), std::move(t));
        return success();
      })
      .template Case<math::ExpOp, arith::NegFOp, arith::ExtFOp,
                     arith::TruncFOp>([&](Operation *unary) {
        Tensor<T> t = get(unary->getOperand(0));
        for (T &v : t.data)
          v = isa<math::ExpOp>(unary)     ? std::exp(v)
              : isa<arith::NegFOp>(unary) ? -v
                                          : v;
        bind(unary->getResult(0), std::move(t));
        return success();
      })
      .Default([&](Operation *other) {
        return other->emitError() << "reference interpreter: unsupported op '"
                                  << other->getName() << "'";
      });
}

} // namespace

template <typename T>
FailureOr<SmallVector<Tensor<T>>>
mlir::jamba::interpretFunction(func::FuncOp func,
                               ArrayRef<const Tensor<T> *> args,
                               const InterpretOptions &options) {
  if (func.isExternal())
    return func.emitError() << "reference interpreter: function has no body";
  if (args.size() != func.getNumArguments())
    return func.emitError()
           << "reference interpreter: expected " << func.getNumArguments()
           << " arguments, got " << args.size();
  Interpreter<T> interp(options);
  Block &entry = func.getBody().front();
  for (auto [i, arg] : llvm::enumerate(entry.getArguments())) {
    auto type = dyn_cast<RankedTensorType>(arg.getType());
    bool ok = type && type.getRank() == args[i]->rank();
    for (int64_t d = 0; ok && d < args[i]->rank(); ++d)
      ok = type.isDynamicDim(d) || type.getDimSize(d) == args[i]->dim(d);
    if (!ok)
      return func.emitError()
             << "reference interpreter: argument #" << i << " has shape "
             << ::jamba::ref::formatShape(args[i]->shape)
             << ", which does not match its type " << arg.getType();
    interp.bindRef(arg, *args[i]);
  }
  SmallVector<Tensor<T>> results;
  if (failed(interp.run(entry, results)))
    return failure();
  return results;
}

template FailureOr<SmallVector<Tensor<float>>>
mlir::jamba::interpretFunction(func::FuncOp, ArrayRef<const Tensor<float> *>,
                               const InterpretOptions &);
template FailureOr<SmallVector<Tensor<double>>>
mlir::jamba::interpretFunction(func::FuncOp, ArrayRef<const Tensor<double> *>,
                               const InterpretOptions &);

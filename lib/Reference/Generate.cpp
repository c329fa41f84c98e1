//===- Generate.cpp - Greedy generation with the reference interpreter ----===//
//
// Part of jamba-mlir.
//
//===----------------------------------------------------------------------===//

#include "jamba/Reference/Generate.h"

#include "jamba/Dialect/Jamba/IR/JambaDialect.h"
#include "jamba/Reference/Compare.h"
#include "jamba/Reference/Interpreter.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

#include <chrono>
#include <cmath>
#include <limits>
#include <map>

using namespace mlir;
using namespace mlir::jamba;
using ::jamba::ref::Tensor;

namespace {

::jamba::ckpt::Status loadAs(const ::jamba::ckpt::Checkpoint &checkpoint,
                             const std::string &name,
                             const std::vector<int64_t> &shape,
                             std::vector<float> &out) {
  return checkpoint.loadWeightF32(name, shape, out);
}
::jamba::ckpt::Status loadAs(const ::jamba::ckpt::Checkpoint &checkpoint,
                             const std::string &name,
                             const std::vector<int64_t> &shape,
                             std::vector<double> &out) {
  return checkpoint.loadWeightF64(name, shape, out);
}

double secondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

template <typename T> class Generator {
public:
  Generator(ModuleOp module, const ::jamba::ckpt::Checkpoint &checkpoint)
      : module(module), checkpoint(checkpoint) {}

  /// Runs entry point `name` on `ids` ([1, S]) with the current states;
  /// replaces the states with the updated ones and returns the logits.
  FailureOr<Tensor<T>> call(StringRef name, const std::vector<int64_t> &ids);

  int64_t capacity = 0;
  double loadSeconds = 0;
  InterpretOptions interpret;
  /// With interpret.routingMargins: every call's margins, in order.
  std::vector<float> margins;

private:
  FailureOr<const Tensor<T> *> loadWeight(func::FuncOp func, unsigned i,
                                          StringRef name);

  ModuleOp module;
  const ::jamba::ckpt::Checkpoint &checkpoint;
  std::map<std::string, Tensor<T>> weights;
  std::map<std::string, Tensor<T>> states;
  int64_t cacheLen = 0;
};

template <typename T>
FailureOr<const Tensor<T> *>
Generator<T>::loadWeight(func::FuncOp func, unsigned i, StringRef name) {
  auto it = weights.find(name.str());
  if (it != weights.end())
    return &it->second;
  auto type = cast<RankedTensorType>(func.getArgumentTypes()[i]);
  if (!type.hasStaticShape())
    return func.emitError()
           << "weight '" << name << "' must have a static shape, got " << type;
  auto start = std::chrono::steady_clock::now();
  std::vector<int64_t> shape(type.getShape());
  Tensor<T> t;
  ::jamba::ckpt::Status status = loadAs(checkpoint, name.str(), shape, t.data);
  if (!status.ok())
    return func.emitError() << status.message();
  t.shape = shape;
  loadSeconds += secondsSince(start);
  return &weights.emplace(name.str(), std::move(t)).first->second;
}

template <typename T>
FailureOr<Tensor<T>> Generator<T>::call(StringRef name,
                                        const std::vector<int64_t> &ids) {
  auto func = module.lookupSymbol<func::FuncOp>(name);
  if (!func)
    return module.emitError() << "the module has no entry point @" << name;
  const int64_t seq = ids.size();
  interpret.firstPosition = cacheLen;
  if (interpret.routingMargins)
    interpret.routingMargins->assign(seq,
                                     std::numeric_limits<double>::infinity());

  // Bind every argument: inputs, states (zero when first seen), weights.
  // Inputs and states are owned here; weights stay in the cache.
  SmallVector<Tensor<T>> owned(func.getNumArguments());
  SmallVector<const Tensor<T> *> args(func.getNumArguments());
  SmallVector<std::string> stateOrder;
  for (unsigned i = 0; i < func.getNumArguments(); ++i) {
    auto type = dyn_cast<RankedTensorType>(func.getArgumentTypes()[i]);
    if (!type)
      return func.emitError() << "argument #" << i << " is not a tensor";
    if (auto input = func.getArgAttrOfType<StringAttr>(i, kInputAttrName)) {
      if (input.getValue() == "ids")
        owned[i] = Tensor<T>({1, seq}, std::vector<T>(ids.begin(), ids.end()));
      else if (input.getValue() == "cache_len")
        owned[i] = Tensor<T>({1}, T(cacheLen));
      else
        return func.emitError() << "unknown input '" << input.getValue() << "'";
    } else if (auto state =
                   func.getArgAttrOfType<StringAttr>(i, kStateAttrName)) {
      auto [it, fresh] = states.try_emplace(state.getValue().str());
      if (fresh) {
        // Dimension 0 is the batch; any other dynamic one is the capacity.
        std::vector<int64_t> shape(type.getShape());
        shape[0] = 1;
        for (int64_t &d : shape)
          if (ShapedType::isDynamic(d))
            d = capacity;
        it->second = Tensor<T>(shape);
      }
      owned[i] = std::move(it->second);
      stateOrder.push_back(it->first);
    } else if (auto weight =
                   func.getArgAttrOfType<StringAttr>(i, kWeightAttrName)) {
      FailureOr<const Tensor<T> *> w = loadWeight(func, i, weight.getValue());
      if (failed(w))
        return failure();
      args[i] = *w;
    } else {
      return func.emitError() << "argument #" << i
                              << " is neither an input, a state nor a weight";
    }
  }

  for (unsigned i = 0; i < args.size(); ++i)
    if (!args[i])
      args[i] = &owned[i];
  FailureOr<SmallVector<Tensor<T>>> results =
      interpretFunction<T>(func, args, interpret);
  if (interpret.routingMargins)
    for (double m : *interpret.routingMargins)
      margins.push_back(static_cast<float>(m));
  if (failed(results))
    return failure();
  // Results: logits, then the updated states named like their arguments
  // (and, after jamba-greedy-ids, the greedy ids, which generation
  // computes from the logits itself).
  for (unsigned r = 1; r < results->size(); ++r) {
    auto state = func.getResultAttrOfType<StringAttr>(r, kStateAttrName);
    auto output = func.getResultAttrOfType<StringAttr>(r, kOutputAttrName);
    if (!state && output && output.getValue() == kGreedyIdsOutputName)
      continue;
    if (!state)
      return func.emitError() << "result #" << r << " is not a named state";
    states[state.getValue().str()] = std::move((*results)[r]);
  }
  cacheLen += seq;
  return std::move(results->front());
}

} // namespace

template <typename T>
FailureOr<Generation>
mlir::jamba::generateGreedy(ModuleOp module,
                            const ::jamba::ckpt::Checkpoint &checkpoint,
                            const GenerateOptions &options) {
  const std::vector<int64_t> &prompt = options.promptIds;
  if (prompt.empty())
    return module.emitError() << "the prompt is empty";
  if (options.steps < 0)
    return module.emitError() << "the number of steps is negative";
  const int64_t maxTokens = checkpoint.config().maxPositionEmbeddings;
  if (static_cast<int64_t>(prompt.size()) > maxTokens ||
      options.steps > maxTokens - static_cast<int64_t>(prompt.size()))
    return module.emitError()
           << "the prompt (" << prompt.size() << " ids) and " << options.steps
           << " steps exceed the model's max_position_embeddings (" << maxTokens
           << ")";

  Generator<T> gen(module, checkpoint);
  gen.capacity = prompt.size() + options.steps;
  gen.interpret = options.interpret;
  std::vector<double> callMargins;
  if (options.routingMargins)
    gen.interpret.routingMargins = &callMargins;
  Generation out;

  auto appendRows = [&](const Tensor<T> &logits) {
    out.vocab = logits.dim(-1);
    for (T v : logits.data)
      out.logits.push_back(static_cast<float>(v));
    out.rows += logits.numel() / out.vocab;
  };
  // The greedy id of the last row; a NaN logit (which no comparison would
  // pick, so the argmax would silently be id 0) is an error, as in
  // jamba-run.
  auto lastRowArgmax = [&]() -> FailureOr<int64_t> {
    const float *row = &out.logits[(out.rows - 1) * out.vocab];
    for (int64_t v = 0; v < out.vocab; ++v)
      if (std::isnan(row[v]))
        return module.emitError()
               << "generated id " << out.ids.size() << ": the logits of row "
               << out.rows - 1 << " hold NaN (id " << v << ")";
    return ::jamba::ref::argmax(row, out.vocab);
  };

  auto start = std::chrono::steady_clock::now();
  FailureOr<Tensor<T>> logits = gen.call("prefill", prompt);
  if (failed(logits))
    return failure();
  out.prefillSeconds = secondsSince(start) - gen.loadSeconds;
  appendRows(*logits);

  double loadBeforeDecode = gen.loadSeconds;
  start = std::chrono::steady_clock::now();
  for (int64_t j = 0; j < options.steps; ++j) {
    FailureOr<int64_t> id = lastRowArgmax();
    if (failed(id))
      return failure();
    out.ids.push_back(*id);
    logits = gen.call("decode", {out.ids.back()});
    if (failed(logits))
      return failure();
    appendRows(*logits);
  }
  out.decodeSeconds =
      secondsSince(start) - (gen.loadSeconds - loadBeforeDecode);
  out.loadSeconds = gen.loadSeconds;
  out.routingMargins = std::move(gen.margins);
  return out;
}

template FailureOr<Generation>
mlir::jamba::generateGreedy<float>(ModuleOp, const ::jamba::ckpt::Checkpoint &,
                                   const GenerateOptions &);
template FailureOr<Generation>
mlir::jamba::generateGreedy<double>(ModuleOp, const ::jamba::ckpt::Checkpoint &,
                                    const GenerateOptions &);

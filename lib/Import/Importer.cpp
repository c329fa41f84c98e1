//===- Importer.cpp - Jamba config to jamba IR ----------------------------===//
//
// Part of jamba-mlir.
//
//===----------------------------------------------------------------------===//

#include "jamba/Import/Importer.h"

#include "jamba/Dialect/Jamba/IR/JambaOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"

using namespace mlir;
using namespace mlir::jamba;
using ::jamba::ckpt::JambaConfig;

namespace {

constexpr int64_t kDynamic = ShapedType::kDynamic;

/// Builds one entry point. Arguments are collected first (inputs, states,
/// weights), then the body is emitted against them.
class EntryPointBuilder {
public:
  EntryPointBuilder(OpBuilder &builder, const JambaConfig &config,
                    Type elemType, Type weightType, Location loc)
      : builder(builder), config(config), elemType(elemType),
        weightType(weightType), loc(loc) {}

  /// Emits `func.func @name` for `seq` tokens per sequence (kDynamic for any)
  /// returning the last `logitsToKeep` positions (0 = all).
  void build(StringRef name, int64_t seq, int64_t logitsToKeep);

private:
  RankedTensorType tensor(ArrayRef<int64_t> shape, Type elem = {}) {
    return RankedTensorType::get(shape, elem ? elem : elemType);
  }

  /// Declares an argument; `attrName = value` goes on it.
  unsigned addArg(Type type, StringRef attrName, StringRef value) {
    argTypes.push_back(type);
    argAttrs.push_back(builder.getDictionaryAttr(
        builder.getNamedAttr(attrName, builder.getStringAttr(value))));
    return argTypes.size() - 1;
  }

  /// Declares (once) the weight argument bound to checkpoint tensor `name`.
  unsigned weight(const std::string &name, ArrayRef<int64_t> shape) {
    auto [it, inserted] = weightArgs.try_emplace(name, 0);
    if (inserted)
      it->second = addArg(tensor(shape, weightType), kWeightAttrName, name);
    return it->second;
  }

  Value arg(unsigned index) { return body->getArgument(index); }

  OpBuilder &builder;
  const JambaConfig &config;
  Type elemType, weightType;
  Location loc;

  SmallVector<Type> argTypes;
  SmallVector<DictionaryAttr> argAttrs;
  llvm::StringMap<unsigned> weightArgs;
  Block *body = nullptr;
};

/// The argument indices of one layer's weights and states, collected before
/// the function exists.
struct LayerArgs {
  bool attention = false, moe = false;
  unsigned inputNorm = 0, preFFNorm = 0;
  // Attention.
  unsigned kCache = 0, vCache = 0, q = 0, k = 0, v = 0, o = 0;
  // Mamba.
  unsigned convState = 0, ssmState = 0, inProj = 0, conv = 0, x = 0, dtNorm = 0,
           bNorm = 0, cNorm = 0, dt = 0, dtBias = 0, aLog = 0, d = 0, out = 0;
  std::optional<unsigned> inProjBias, convBias, outProjBias;
  // FFN.
  unsigned router = 0, gate = 0, up = 0, down = 0;
};

void EntryPointBuilder::build(StringRef name, int64_t seq,
                              int64_t logitsToKeep) {
  const int64_t hidden = config.hiddenSize, inter = config.intermediateSize,
                dInner = config.dInner(), dState = config.mambaDState,
                dConv = config.mambaDConv, dtRank = config.mambaDtRank,
                experts = config.numExperts, heads = config.numAttentionHeads,
                kvHeads = config.numKeyValueHeads, headDim = config.headDim(),
                vocab = config.vocabSize;
  Type f32 = builder.getF32Type();

  unsigned ids = addArg(tensor({kDynamic, seq}, builder.getI32Type()),
                        kInputAttrName, "ids");
  unsigned cacheLen = addArg(tensor({kDynamic}, builder.getI64Type()),
                             kInputAttrName, "cache_len");

  // States first, in layer order, so that the results can mirror them.
  SmallVector<LayerArgs> layers(config.numHiddenLayers);
  SmallVector<unsigned> stateArgs;
  for (int64_t i = 0; i < config.numHiddenLayers; ++i) {
    LayerArgs &l = layers[i];
    l.attention = config.isAttentionLayer(i);
    l.moe = config.isMoELayer(i);
    std::string prefix = "layers." + std::to_string(i) + ".";
    if (l.attention) {
      auto cacheType = tensor({kDynamic, kvHeads, kDynamic, headDim});
      l.kCache = addArg(cacheType, kStateAttrName, prefix + "k_cache");
      l.vCache = addArg(cacheType, kStateAttrName, prefix + "v_cache");
      stateArgs.append({l.kCache, l.vCache});
    } else {
      l.convState = addArg(tensor({kDynamic, dInner, dConv - 1}),
                           kStateAttrName, prefix + "conv_state");
      l.ssmState = addArg(tensor({kDynamic, dInner, dState}, f32),
                          kStateAttrName, prefix + "ssm_state");
      stateArgs.append({l.convState, l.ssmState});
    }
  }

  // Weights, in checkpoint order.
  unsigned embed = weight("model.embed_tokens.weight", {vocab, hidden});
  for (int64_t i = 0; i < config.numHiddenLayers; ++i) {
    LayerArgs &l = layers[i];
    std::string p = "model.layers." + std::to_string(i) + ".";
    l.inputNorm = weight(p + "input_layernorm.weight", {hidden});
    if (l.attention) {
      l.q = weight(p + "self_attn.q_proj.weight", {heads * headDim, hidden});
      l.k = weight(p + "self_attn.k_proj.weight", {kvHeads * headDim, hidden});
      l.v = weight(p + "self_attn.v_proj.weight", {kvHeads * headDim, hidden});
      l.o = weight(p + "self_attn.o_proj.weight", {hidden, heads * headDim});
    } else {
      std::string m = p + "mamba.";
      l.inProj = weight(m + "in_proj.weight", {2 * dInner, hidden});
      if (config.mambaProjBias)
        l.inProjBias = weight(m + "in_proj.bias", {2 * dInner});
      l.conv = weight(m + "conv1d.weight", {dInner, 1, dConv});
      if (config.mambaConvBias)
        l.convBias = weight(m + "conv1d.bias", {dInner});
      l.x = weight(m + "x_proj.weight", {dtRank + 2 * dState, dInner});
      l.dtNorm = weight(m + "dt_layernorm.weight", {dtRank});
      l.bNorm = weight(m + "b_layernorm.weight", {dState});
      l.cNorm = weight(m + "c_layernorm.weight", {dState});
      l.dt = weight(m + "dt_proj.weight", {dInner, dtRank});
      l.dtBias = weight(m + "dt_proj.bias", {dInner});
      l.aLog = weight(m + "A_log", {dInner, dState});
      l.d = weight(m + "D", {dInner});
      l.out = weight(m + "out_proj.weight", {hidden, dInner});
      if (config.mambaProjBias)
        l.outProjBias = weight(m + "out_proj.bias", {hidden});
    }
    l.preFFNorm = weight(p + "pre_ff_layernorm.weight", {hidden});
    std::string f = p + "feed_forward.";
    if (l.moe) {
      l.router = weight(f + "router.weight", {experts, hidden});
      l.gate =
          weight(f + "experts.{e}.gate_proj.weight", {experts, inter, hidden});
      l.up = weight(f + "experts.{e}.up_proj.weight", {experts, inter, hidden});
      l.down =
          weight(f + "experts.{e}.down_proj.weight", {experts, hidden, inter});
    } else {
      l.gate = weight(f + "gate_proj.weight", {inter, hidden});
      l.up = weight(f + "up_proj.weight", {inter, hidden});
      l.down = weight(f + "down_proj.weight", {hidden, inter});
    }
  }
  unsigned finalNorm = weight("model.final_layernorm.weight", {hidden});
  unsigned lmHead = config.tieWordEmbeddings
                        ? embed
                        : weight("lm_head.weight", {vocab, hidden});

  // Results: logits, then the states in argument order.
  int64_t positions = logitsToKeep == 0 ? seq : logitsToKeep;
  SmallVector<Type> resultTypes = {tensor({kDynamic, positions, vocab})};
  SmallVector<Attribute> resultAttrs = {builder.getDictionaryAttr(
      builder.getNamedAttr(kOutputAttrName, builder.getStringAttr("logits")))};
  for (unsigned s : stateArgs) {
    resultTypes.push_back(argTypes[s]);
    resultAttrs.push_back(argAttrs[s]);
  }

  auto func = func::FuncOp::create(
      builder, loc, name, builder.getFunctionType(argTypes, resultTypes));
  func.setAllArgAttrs(ArrayRef<DictionaryAttr>(argAttrs));
  func.setAllResultAttrs(resultAttrs);
  body = func.addEntryBlock();
  OpBuilder::InsertionGuard guard(builder);
  builder.setInsertionPointToEnd(body);

  auto actType = tensor({kDynamic, seq, hidden});
  auto eps = builder.getF64FloatAttr(config.rmsNormEps);
  auto rmsNorm = [&](Value x, unsigned w) {
    return RMSNormOp::create(builder, loc, x.getType(), x, arg(w), eps)
        .getResult();
  };

  Value h = EmbeddingOp::create(builder, loc, actType, arg(embed), arg(ids));
  SmallVector<Value> newStates;
  for (LayerArgs &l : layers) {
    Value x = rmsNorm(h, l.inputNorm);
    Value mixed;
    if (l.attention) {
      auto op = AttentionOp::create(
          builder, loc, actType, argTypes[l.kCache], argTypes[l.vCache], x,
          arg(l.q), arg(l.k), arg(l.v), arg(l.o), arg(l.kCache), arg(l.vCache),
          arg(cacheLen), heads, kvHeads);
      mixed = op.getResult();
      newStates.append({op.getNewKCache(), op.getNewVCache()});
    } else {
      auto opt = [&](std::optional<unsigned> i) {
        return i ? arg(*i) : Value();
      };
      auto op = MambaMixerOp::create(
          builder, loc, actType, argTypes[l.convState], argTypes[l.ssmState], x,
          arg(l.convState), arg(l.ssmState), arg(l.inProj), opt(l.inProjBias),
          arg(l.conv), opt(l.convBias), arg(l.x), arg(l.dtNorm), arg(l.bNorm),
          arg(l.cNorm), arg(l.dt), arg(l.dtBias), arg(l.aLog), arg(l.d),
          arg(l.out), opt(l.outProjBias), eps,
          /*x_proj_all_reduce=*/IntegerAttr());
      mixed = op.getResult();
      newStates.append({op.getNewConvState(), op.getNewSsmState()});
    }
    h = arith::AddFOp::create(builder, loc, h, mixed);
    Value y = rmsNorm(h, l.preFFNorm);
    Value ffn;
    if (l.moe)
      ffn = MoEOp::create(builder, loc, actType, y, arg(l.router), arg(l.gate),
                          arg(l.up), arg(l.down), /*expert_offset=*/Value(),
                          config.numExpertsPerTok,
                          /*normalize_top_k=*/false);
    else
      ffn = MLPOp::create(builder, loc, actType, y, arg(l.gate), arg(l.up),
                          arg(l.down));
    h = arith::AddFOp::create(builder, loc, h, ffn);
  }
  h = rmsNorm(h, finalNorm);
  Value logits = LMHeadOp::create(builder, loc, resultTypes.front(), h,
                                  arg(lmHead), logitsToKeep);
  SmallVector<Value> results = {logits};
  results.append(newStates);
  func::ReturnOp::create(builder, loc, results);
}

} // namespace

void mlir::jamba::loadImportDialects(MLIRContext *context) {
  context->loadDialect<JambaDialect, func::FuncDialect, arith::ArithDialect,
                       math::MathDialect, tensor::TensorDialect>();
}

FailureOr<OwningOpRef<ModuleOp>>
mlir::jamba::importJambaModel(MLIRContext *context, const JambaConfig &config,
                              const ImportOptions &options, Location loc) {
  loadImportDialects(context);
  OpBuilder builder(context);
  auto parseType = [&](StringRef name) {
    return llvm::StringSwitch<Type>(name)
        .Case("f32", builder.getF32Type())
        .Case("f64", builder.getF64Type())
        .Case("bf16", builder.getBF16Type())
        .Case("f16", builder.getF16Type())
        .Default(Type());
  };
  Type elemType = parseType(options.elementType);
  if (!elemType)
    return emitError(loc) << "unknown element type '" << options.elementType
                          << "' (expected f32, f64, bf16 or f16)";
  Type weightType = options.weightElementType.empty()
                        ? elemType
                        : parseType(options.weightElementType);
  if (!weightType)
    return emitError(loc) << "unknown weight element type '"
                          << options.weightElementType
                          << "' (expected f32, f64, bf16 or f16)";
  if (options.prefillLogitsToKeep < 0)
    return emitError(loc) << "expected prefillLogitsToKeep >= 0, got "
                          << options.prefillLogitsToKeep;

  OwningOpRef<ModuleOp> module = ModuleOp::create(loc);
  (*module)->setAttr(kConfigAttrName, builder.getStringAttr(
                                          ::jamba::ckpt::configToJson(config)));
  builder.setInsertionPointToEnd(module->getBody());
  EntryPointBuilder(builder, config, elemType, weightType, loc)
      .build("prefill", kDynamic, options.prefillLogitsToKeep);
  EntryPointBuilder(builder, config, elemType, weightType, loc)
      .build("decode", 1, /*logitsToKeep=*/0);
  if (failed(verify(*module)))
    return failure();
  return module;
}

OwningOpRef<ModuleOp> mlir::jamba::parseModuleFile(StringRef path,
                                                   llvm::SourceMgr &sourceMgr,
                                                   MLIRContext *context) {
  std::string error;
  std::unique_ptr<llvm::MemoryBuffer> file = openInputFile(path, &error);
  if (!file) {
    emitError(FileLineColLoc::get(context, path, 0, 0)) << error;
    return nullptr;
  }
  sourceMgr.AddNewSourceBuffer(std::move(file), llvm::SMLoc());
  return parseSourceFile<ModuleOp>(sourceMgr, ParserConfig(context));
}

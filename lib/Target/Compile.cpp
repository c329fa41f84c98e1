//===- Compile.cpp - Checkpoint to artifact -------------------------------===//
//
// Part of jamba-mlir.
//
//===----------------------------------------------------------------------===//

#include "jamba/Target/Compile.h"

#include "jamba/Checkpoint/Checkpoint.h"
#include "jamba/Checkpoint/Quantize.h"
#include "jamba/Checkpoint/Tokenizer.h"
#include "jamba/Conversion/Passes.h"
#include "jamba/Dialect/Jamba/IR/JambaDialect.h"
#include "jamba/Pipelines/Pipelines.h"
#include "jamba/Runtime/Artifact.h"
#include "jamba/Runtime/ArtifactWriter.h"
#include "jamba/Runtime/WeightFiles.h"
#include "jamba/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/Timing.h"
#include "mlir/Target/LLVM/NVVM/Target.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/GPU/GPUToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/NVVM/NVVMToLLVMIRTranslation.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <cstring>

using namespace mlir;
using namespace mlir::jamba;
namespace ckpt = ::jamba::ckpt;
namespace rt = ::jamba::rt;

namespace {

constexpr const char *kEntryPoints[] = {"prefill", "decode"};
constexpr const char kCpuKernelFile[] = "kernels/cpu.so";

/// The sm_NN of a "cuda:sm_NN" target: an architecture the GPU pipeline
/// builds for (isKnownCudaChip: sm_50 to sm_90), written as LLVM writes it
/// (no leading zeros) and without the "a" suffix (the runtime matches sm_NN
/// against the device), or failure.
FailureOr<std::string> parseCudaTarget(StringRef target) {
  if (!target.consume_front("cuda:") || !isKnownCudaChip(target) ||
      !llvm::all_of(target.drop_front(3), llvm::isDigit))
    return failure();
  return target.str();
}

/// The symbolic shape of a packed operand.
std::vector<rt::DimExpr> symbolicShape(const PackedOperand &operand) {
  std::vector<rt::DimExpr> shape;
  for (size_t d = 0; d < operand.sizes.size(); ++d) {
    switch (operand.dims[d]) {
    case PackedDim::Static:
      shape.push_back(rt::DimExpr::constant(operand.sizes[d]));
      break;
    case PackedDim::Batch:
      shape.push_back(rt::DimExpr::symbol(rt::kDimBatch));
      break;
    case PackedDim::Seq:
      shape.push_back(rt::DimExpr::symbol(rt::kDimSeq));
      break;
    case PackedDim::Capacity:
      shape.push_back(rt::DimExpr::symbol(rt::kDimCapacity));
      break;
    }
  }
  return shape;
}

FailureOr<ckpt::DType> dtypeOf(Operation *op, Type type) {
  Type elem = cast<ShapedType>(type).getElementType();
  if (elem.isF32())
    return ckpt::DType::F32;
  if (elem.isBF16())
    return ckpt::DType::BF16;
  if (elem.isInteger(8))
    return ckpt::DType::I8;
  if (elem.isInteger(32))
    return ckpt::DType::I32;
  if (elem.isInteger(64))
    return ckpt::DType::I64;
  return op->emitError() << "the CPU backend does not support element type "
                         << elem << " yet";
}

/// The state buffer's role and layer from its name `layers.<i>.<kind>`.
void setStateRole(rt::BufferDesc &buffer, StringRef name) {
  buffer.kind = rt::BufferDesc::Kind::State;
  SmallVector<StringRef> parts;
  name.split(parts, '.');
  if (parts.size() == 3)
    parts[1].getAsInteger(10, buffer.layer);
  StringRef kind = parts.back();
  buffer.role = kind == "k_cache"      ? rt::BufferDesc::Role::KvKey
                : kind == "v_cache"    ? rt::BufferDesc::Role::KvValue
                : kind == "conv_state" ? rt::BufferDesc::Role::Conv
                                       : rt::BufferDesc::Role::Ssm;
}

/// Adds entry point `func` to `manifest`: its host schedule (one
/// `func.call` per stage function, jamba-split-stages) becomes the steps;
/// each stage function is a kernel described by `stages`; the values passed
/// between stages are temp buffers. Weight types are collected in
/// `weights`.
LogicalResult describeEntryPoint(
    func::FuncOp func, const std::map<std::string, PackedEntry> &stages,
    const std::string &kernelFile, rt::ArtifactManifest &manifest,
    std::map<std::string, Type> &weights) {
  const bool decode = func.getName() == "decode";
  std::string prefix = decode ? "decode." : "";
  rt::EntryPoint ep;
  ep.name = func.getName().str();

  auto addBuffer = [&](std::string id, Type type, const PackedOperand &operand,
                       StringRef state, bool temp) -> LogicalResult {
    if (manifest.findBuffer(id))
      return success();
    rt::BufferDesc buffer;
    buffer.id = id;
    FailureOr<ckpt::DType> dtype = dtypeOf(func, type);
    if (failed(dtype))
      return failure();
    buffer.dtype = *dtype;
    buffer.shape = symbolicShape(operand);
    buffer.kind = temp ? rt::BufferDesc::Kind::Temp : rt::BufferDesc::Kind::Io;
    if (!state.empty())
      setStateRole(buffer, state);
    manifest.buffers.push_back(std::move(buffer));
    return success();
  };
  // The buffer id of a value with these attributes (argument or result).
  auto bufferId = [&](DictionaryAttr attrs, bool isResult, std::string &id,
                      StringRef &state, bool &temp) -> LogicalResult {
    auto named = [&](StringRef key) {
      auto v = attrs ? attrs.getAs<StringAttr>(key) : StringAttr();
      return v ? v.getValue() : StringRef();
    };
    temp = false;
    state = named(kStateAttrName);
    if (!state.empty()) {
      id = state.str();
      return success();
    }
    if (StringRef t = named(kTempAttrName); !t.empty()) {
      id = t.str();
      temp = true;
      return success();
    }
    if (StringRef input = named(kInputAttrName); !input.empty()) {
      id = input == "cache_len" ? "cache_len" : prefix + input.str();
      return success();
    }
    if (StringRef output = named(kOutputAttrName);
        isResult && (output == "logits" || output == kGreedyIdsOutputName)) {
      id = prefix + output.str();
      return success();
    }
    return func.emitError() << "a value of the schedule is neither an input, "
                               "a state, a temp, the logits nor the greedy "
                               "ids";
  };

  // The entry point's inputs and outputs.
  for (unsigned i = 0; i < func.getNumArguments(); ++i) {
    if (func.getArgAttr(i, kWeightAttrName))
      continue;
    std::string id;
    StringRef state;
    bool temp;
    if (failed(bufferId(func.getArgAttrDict(i), false, id, state, temp)))
      return failure();
    ep.inputs.push_back(id);
  }
  for (unsigned r = 0; r < func.getNumResults(); ++r) {
    std::string id;
    StringRef state;
    bool temp;
    if (failed(bufferId(func.getResultAttrDict(r), true, id, state, temp)))
      return failure();
    ep.outputs.push_back(id);
  }

  // One step per stage call.
  for (auto call : func.getBody().getOps<func::CallOp>()) {
    auto stage = func->getParentOfType<ModuleOp>().lookupSymbol<func::FuncOp>(
        call.getCallee());
    auto packed = stages.find(call.getCallee().str());
    if (!stage || packed == stages.end())
      return call.emitError() << "no stage function @" << call.getCallee();
    rt::Step step;
    step.kernel = stage.getName().str();
    for (const char *dim : {rt::kDimBatch, rt::kDimSeq, rt::kDimCapacity})
      step.args.push_back(rt::StepArg::dim(dim));
    for (unsigned i = 0; i < stage.getNumArguments(); ++i) {
      Type type = stage.getArgumentTypes()[i];
      if (auto weight =
              stage.getArgAttrOfType<StringAttr>(i, kWeightAttrName)) {
        auto [it, inserted] = weights.try_emplace(weight.str(), type);
        if (!inserted && it->second != type)
          return func.emitError() << "weight '" << weight.getValue()
                                  << "' has two types across stages";
        step.args.push_back(rt::StepArg::weight(weight.str()));
        continue;
      }
      std::string id;
      StringRef state;
      bool temp;
      if (failed(bufferId(stage.getArgAttrDict(i), false, id, state, temp)) ||
          failed(addBuffer(id, type, packed->second.inputs[i], state, temp)))
        return failure();
      step.args.push_back(rt::StepArg::buffer(id));
    }
    for (unsigned r = 0; r < stage.getNumResults(); ++r) {
      std::string id;
      StringRef state;
      bool temp;
      if (failed(bufferId(stage.getResultAttrDict(r), true, id, state, temp)) ||
          failed(addBuffer(id, stage.getResultTypes()[r],
                           packed->second.outputs[r], state, temp)))
        return failure();
      step.args.push_back(rt::StepArg::buffer(id));
    }
    rt::KernelDesc kernel;
    kernel.name = step.kernel;
    kernel.file = kernelFile;
    kernel.symbol = packed->second.symbol;
    kernel.abi = "packed";
    kernel.numArgs = step.args.size();
    manifest.kernels.push_back(kernel);
    ep.steps.push_back(std::move(step));
  }
  // The model ABI's cache_len (docs/Runtime.md) is an input of both entry
  // points even when no stage reads it: a model without attention layers
  // has no KV cache to index.
  if (llvm::is_contained(ep.inputs, "cache_len") &&
      !manifest.findBuffer("cache_len")) {
    rt::BufferDesc buffer;
    buffer.id = "cache_len";
    buffer.dtype = ckpt::DType::I64;
    buffer.shape = {rt::DimExpr::symbol(rt::kDimBatch)};
    buffer.kind = rt::BufferDesc::Kind::Io;
    manifest.buffers.push_back(std::move(buffer));
  }
  manifest.entryPoints.push_back(std::move(ep));
  return success();
}

/// How rank r's weight is cut from the checkpoint tensor: jamba-shard's
/// `jamba.shard` recipe (absent: the whole tensor).
struct ShardRecipe {
  std::vector<int64_t> fullShape;
  std::vector<std::string> modes;
  int64_t kvHeads = 0;
  /// Expert parallelism's synthetic per-rank tensor (`modes` =
  /// ["expert_offset"]): the rank's first expert, not in the checkpoint.
  int64_t expertsPerRank = 0;
  bool isExpertOffset() const {
    return modes.size() == 1 && modes[0] == "expert_offset";
  }
};

/// The rank layout: tp x ep ranks, rank r = e * tp + t (the tensor-parallel
/// groups are consecutive ranks).
struct RankLayout {
  int64_t tp = 1, ep = 1;
  int64_t tensorIndex(int64_t rank) const { return rank % tp; }
  int64_t expertIndex(int64_t rank) const { return rank / tp; }
};

/// Per dimension, the runs of checkpoint indices rank `rank` takes, in
/// order, adjacent runs merged.
std::vector<std::vector<rt::IndexRun>>
sliceRuns(const ShardRecipe &recipe, const RankLayout &layout, int64_t rank) {
  const int64_t tp = layout.tp, r = layout.tensorIndex(rank);
  std::vector<std::vector<rt::IndexRun>> runs;
  for (size_t d = 0; d < recipe.fullShape.size(); ++d) {
    int64_t size = recipe.fullShape[d];
    const std::string &mode = recipe.modes[d];
    std::vector<rt::IndexRun> take;
    auto range = [&](int64_t begin, int64_t count) {
      if (count == 0)
        return;
      if (!take.empty() && take.back().begin + take.back().count == begin)
        take.back().count += count;
      else
        take.push_back({begin, count});
    };
    if (mode == "ep") {
      range(layout.expertIndex(rank) * (size / layout.ep), size / layout.ep);
    } else if (mode == "tp" || (mode == "kv" && recipe.kvHeads >= tp)) {
      range(r * (size / tp), size / tp);
    } else if (mode == "halves") {
      int64_t half = size / 2, chunk = half / tp;
      range(r * chunk, chunk);
      range(half + r * chunk, chunk);
    } else if (mode == "kv") {
      // Fewer kv heads than ranks: rank r serves query heads of kv head
      // r / (tp / kv_heads), replicated on tp / kv_heads ranks.
      int64_t headDim = size / recipe.kvHeads;
      range((r / (tp / recipe.kvHeads)) * headDim, headDim);
    } else {
      range(0, size);
    }
    runs.push_back(std::move(take));
  }
  return runs;
}

/// How rank `rank`'s weight is made from the checkpoint tensor `recipe`
/// cuts: the rank's first expert (expert parallelism's synthetic tensor),
/// zeros (a "tp0" tensor, a row-parallel GEMM's bias added once to the
/// group's sum, off the group's first rank), or the indices it takes as
/// runs (Whole where that is every index).
rt::WeightOrigin rankOrigin(const ShardRecipe &recipe, const RankLayout &layout,
                            int64_t rank) {
  if (recipe.isExpertOffset())
    return rt::WeightOrigin::constant(layout.expertIndex(rank) *
                                      recipe.expertsPerRank);
  if (llvm::is_contained(recipe.modes, "tp0") && layout.tensorIndex(rank) != 0)
    return rt::WeightOrigin::zeros(recipe.fullShape);
  std::vector<std::vector<rt::IndexRun>> take = sliceRuns(recipe, layout, rank);
  bool whole = true;
  for (size_t d = 0; d < take.size(); ++d) {
    int64_t size = recipe.fullShape[d];
    whole &= size == 0 || (take[d].size() == 1 && take[d][0].begin == 0 &&
                           take[d][0].count == size);
  }
  if (whole)
    return {};
  return rt::WeightOrigin::slice(recipe.fullShape, std::move(take));
}

/// The element type a weight argument of type `elem` has in the artifact.
ckpt::DType artifactDType(Type elem) {
  return elem.isInteger(64)  ? ckpt::DType::I64
         : elem.isInteger(8) ? ckpt::DType::I8
         : elem.isBF16()     ? ckpt::DType::BF16
                             : ckpt::DType::F32;
}

/// Cuts the weights (in `weights`' order) into consecutive parts of at most
/// `maxBytes` bytes each, a tensor larger than that in a part of its own
/// (0: one part). Returns each weight's part. Every rank's tensor of a
/// weight has the same type, so every rank is cut the same way.
std::map<std::string, int64_t>
weightParts(const std::map<std::string, Type> &weights, uint64_t maxBytes,
            int64_t &numParts) {
  std::map<std::string, int64_t> part;
  numParts = 0;
  uint64_t filled = 0;
  for (const auto &[name, type] : weights) {
    auto shaped = cast<ShapedType>(type);
    uint64_t bytes = static_cast<uint64_t>(shaped.getNumElements()) *
                     ckpt::dtypeSize(artifactDType(shaped.getElementType()));
    if (numParts == 0 || (maxBytes && filled + bytes > maxBytes && filled)) {
      ++numParts;
      filled = 0;
    }
    filled += bytes;
    part[name] = numParts - 1;
  }
  return part;
}

/// Lists every rank's tensor of every weight argument in the manifest, in
/// the IR's element type, with how it is made from the checkpoint. Rank r's
/// are in weights/rank-r.safetensors, or, cut into P parts of at most
/// `maxFileBytes` (CompileOptions::maxWeightsFileBytes), in
/// weights/rank-r-part-p.safetensors for p < P. The weights are listed part
/// by part, each part rank by rank: writeWeightFiles writes the files'
/// tensors in rounds in the order the files first appear, so every rank's
/// cut of a checkpoint tensor is made in turn from one load of it.
void describeWeights(const std::map<std::string, Type> &weights,
                     const std::map<std::string, ShardRecipe> &recipes,
                     const RankLayout &layout, uint64_t maxFileBytes,
                     rt::ArtifactManifest &manifest) {
  int64_t numParts = 0;
  std::map<std::string, int64_t> parts =
      weightParts(weights, maxFileBytes, numParts);
  for (int64_t part = 0; part < numParts; ++part) {
    for (int64_t rank = 0; rank < layout.tp * layout.ep; ++rank) {
      std::string file = "weights/rank-" + std::to_string(rank);
      if (numParts > 1)
        file += "-part-" + std::to_string(part);
      file += ".safetensors";
      for (const auto &[name, type] : weights) {
        if (parts[name] != part)
          continue;
        auto shaped = cast<ShapedType>(type);
        rt::WeightDesc desc;
        desc.name = name;
        desc.rank = rank;
        desc.file = file;
        desc.dtype = artifactDType(shaped.getElementType());
        desc.shape.assign(shaped.getShape().begin(), shaped.getShape().end());
        if (auto it = recipes.find(name); it != recipes.end())
          desc.from = rankOrigin(it->second, layout, rank);
        manifest.weights.push_back(std::move(desc));
      }
    }
  }
}

/// Whether the checkpoint's float tensors are all bf16 (how real Jamba
/// ships); int8 tensors and scales of a quantized checkpoint do not count.
bool allFloatTensorsBF16(const ckpt::Checkpoint &checkpoint) {
  bool any = false;
  for (const std::string &name : checkpoint.names()) {
    const ckpt::TensorInfo *info = checkpoint.find(name);
    if (!info || info->dtype == ckpt::DType::I8 ||
        llvm::StringRef(name).ends_with(kScaleSuffix))
      continue;
    if (info->dtype != ckpt::DType::BF16)
      return false;
    any = true;
  }
  return any;
}

} // namespace

/// Checks that a user's `module` has jamba-import's entry points and that
/// their logits are as wide as the checkpoint's vocabulary (the runtime reads
/// the config's vocab_size columns).
static LogicalResult checkUserModule(ModuleOp module,
                                     const ckpt::JambaConfig &config) {
  for (const char *name : kEntryPoints) {
    auto func = module.lookupSymbol<func::FuncOp>(name);
    if (!func || func.isExternal())
      return emitError(module.getLoc())
             << "the module has no @" << name
             << " (jamba-compile --module takes jamba-import's form: "
                "@prefill and @decode)";
    auto logits = func.getNumResults() == 0
                      ? RankedTensorType()
                      : dyn_cast<RankedTensorType>(func.getResultTypes()[0]);
    if (!logits || logits.getRank() != 3)
      return func.emitError()
             << "@" << name
             << "'s first result must be the logits, a [batch, seq, vocab] "
                "tensor";
    if (logits.getDimSize(2) != config.vocabSize)
      return func.emitError()
             << "@" << name << "'s logits have "
             << (logits.isDynamicDim(2) ? std::string("a dynamic number of")
                                        : std::to_string(logits.getDimSize(2)))
             << " columns, but the checkpoint's vocab_size is "
             << config.vocabSize;
  }
  return success();
}

LogicalResult mlir::jamba::compileCheckpoint(MLIRContext *context,
                                             const std::string &checkpointDir,
                                             const std::string &outDir,
                                             const CompileOptions &options,
                                             ModuleOp userModule) {
  Location loc = FileLineColLoc::get(context, checkpointDir, 0, 0);
  auto fail = [&](const std::string &message) {
    return LogicalResult(emitError(loc) << message);
  };
  // A module brings its own weight types and layout.
  if (userModule) {
    if (options.expertsInt8)
      return fail("--experts-int8 does not apply to a module: quantize the "
                  "checkpoint (jamba-quantize) and import that");
    if (options.weightDtype != "auto")
      return fail("--weight-dtype does not apply to a module: its argument "
                  "types decide");
    if (options.tensorParallel != 1 || options.expertParallel != 1)
      return fail("a module is compiled for one rank: --tensor-parallel and "
                  "--expert-parallel need the importer's model");
  }
  // The target: the CPU, or CUDA host code plus NVVM kernels.
  std::string chip;
  if (options.target != "cpu") {
    FailureOr<std::string> parsed = parseCudaTarget(options.target);
    if (failed(parsed))
      return fail(
          "unknown target '" + options.target +
          "' (expected cpu or cuda:sm_NN, NN from 50 to 90, e.g. cuda:sm_90)");
    chip = *parsed;
    if (options.gpuFormat != "ptx" && options.gpuFormat != "cubin")
      return fail("unknown GPU format '" + options.gpuFormat +
                  "' (expected ptx or cubin)");
    // mma.sync on bf16 operands: sm_80 and later.
    if (options.gpuTensorCores && std::stoi(chip.substr(3)) < 80)
      return fail("--gpu-tensor-cores needs sm_80 or later (bf16 mma.sync), "
                  "got " +
                  chip);
  } else if (options.gpuTensorCores && !options.cpuWithGpuKernels) {
    return fail("--gpu-tensor-cores needs a CUDA target (or, emulated on "
                "the CPU, --cpu-with-gpu-kernels)");
  }
  const bool cuda = !chip.empty();
  // --timing: a tree of the phases below, printed to stderr when this
  // function returns (also after an error, up to where it stopped).
  DefaultTimingManager timingManager;
  timingManager.setEnabled(options.timing);
  timingManager.setDisplayMode(DefaultTimingManager::DisplayMode::Tree);
  TimingScope timing = timingManager.getRootScope();
  const std::string kernelFile =
      cuda ? "kernels/cuda-" + chip + ".so" : kCpuKernelFile;
  // Refuse an existing output before minutes of compilation.
  if (llvm::sys::fs::exists(outDir)) {
    if (!options.overwrite)
      return fail(outDir + " already exists (use --force to replace it)");
    if (ckpt::Status st = rt::checkReplaceable(outDir); !st.ok())
      return fail(outDir + ": " + st.message());
  }
  auto opened = ckpt::Checkpoint::open(checkpointDir);
  if (!opened.ok())
    return fail(opened.status().message());
  std::unique_ptr<ckpt::Checkpoint> source = std::move(*opened);

  // Beside the output: the weights written here are then moved into the
  // artifact, not copied.
  rt::ScratchDir scratch;
  if (ckpt::Status st = scratch.createBeside(outDir); !st.ok())
    return fail(st.message());
  const std::string &workPath = scratch.path();

  // ExpertsInt8 on the data, quantized while the weights are written; the
  // importer applies it to the IR.
  std::unique_ptr<ckpt::ExpertsInt8Reader> quantized;
  if (options.expertsInt8) {
    if (source->config().quantMethod)
      return fail("the checkpoint is already quantized");
    ckpt::QuantizeOptions quantize;
    quantize.denseMlp = options.denseMlp;
    auto reader = ckpt::ExpertsInt8Reader::open(*source, quantize);
    if (!reader.ok())
      return fail(reader.status().message());
    quantized = std::move(*reader);
  }
  const ckpt::WeightReader &weightSource =
      quantized ? static_cast<const ckpt::WeightReader &>(*quantized) : *source;
  const ckpt::JambaConfig &config = weightSource.config();

  ImportOptions import;
  import.prefillLogitsToKeep = options.prefillAllLogits ? 0 : 1;
  if (options.weightDtype == "bf16" ||
      (options.weightDtype == "auto" &&
       (quantized ? quantized->keptTensorsAllBF16()
                  : allFloatTensorsBF16(*source))))
    import.weightElementType = "bf16";
  else if (options.weightDtype != "f32" && options.weightDtype != "auto")
    return fail("unknown weight dtype '" + options.weightDtype +
                "' (expected auto, f32 or bf16)");
  RankLayout layout;
  layout.tp = options.tensorParallel;
  layout.ep = options.expertParallel;
  if (layout.tp < 1 || layout.ep < 1)
    return fail("--tensor-parallel and --expert-parallel must be >= 1, got " +
                std::to_string(layout.tp) + " and " +
                std::to_string(layout.ep));
  const int64_t ranks = layout.tp * layout.ep;
  FailureOr<OwningOpRef<ModuleOp>> imported = OwningOpRef<ModuleOp>();
  TimingScope importing = timing.nest("import");
  if (!userModule)
    imported = importModelForCheckpoint(context, config, import, loc, layout.tp,
                                        layout.ep);
  if (failed(imported))
    return failure();
  importing.stop();
  ModuleOp module = userModule ? userModule : **imported;
  if (userModule && failed(checkUserModule(module, config)))
    return failure();

  // Tensor parallelism: every rank runs the same code over its shard of
  // the weights (jamba-shard); the recipes say how to cut each weight.
  std::map<std::string, ShardRecipe> recipes;
  if (ranks > 1) {
    for (func::FuncOp func : module.getOps<func::FuncOp>())
      for (unsigned i = 0; i < func.getNumArguments(); ++i) {
        auto name = func.getArgAttrOfType<StringAttr>(i, kWeightAttrName);
        auto spec = func.getArgAttrOfType<DictionaryAttr>(i, "jamba.shard");
        if (!name || !spec)
          continue;
        ShardRecipe recipe;
        ArrayRef<int64_t> full =
            spec.getAs<DenseI64ArrayAttr>("shape").asArrayRef();
        recipe.fullShape.assign(full.begin(), full.end());
        for (Attribute m : spec.getAs<ArrayAttr>("modes"))
          recipe.modes.push_back(cast<StringAttr>(m).str());
        if (auto kv = spec.getAs<IntegerAttr>("kv_heads"))
          recipe.kvHeads = kv.getInt();
        if (auto e = spec.getAs<IntegerAttr>("experts_per_rank"))
          recipe.expertsPerRank = e.getInt();
        recipes[name.str()] = std::move(recipe);
      }
  }
  // The host schedule: each entry point becomes calls of stage functions
  // (embedding, one per layer, head), each a kernel of the artifact.
  {
    TimingScope splitting = timing.nest("split into stages");
    PassManager split(context, ModuleOp::getOperationName());
    split.enableTiming(splitting);
    if (options.greedyIds)
      split.addPass(createJambaGreedyIdsPass());
    split.addPass(createJambaSplitStagesPass());
    if (failed(split.run(module)))
      return failure();
  }
  std::vector<std::string> stageNames;
  for (const char *name : kEntryPoints) {
    auto func = module.lookupSymbol<func::FuncOp>(name);
    if (!func)
      return fail(std::string("the model has no @") + name);
    for (auto call : func.getBody().getOps<func::CallOp>())
      stageNames.push_back(call.getCallee().str());
  }
  FailureOr<std::vector<PackedEntry>> entries =
      describePackedEntries(module, stageNames);
  if (failed(entries))
    return failure();
  std::map<std::string, PackedEntry> stages;
  for (const PackedEntry &entry : *entries)
    stages[entry.function] = entry;

  // The manifest's entry points, buffers, kernels and weights.
  rt::ArtifactManifest manifest;
  manifest.generator = "jamba-compile (jamba-mlir)";
  // A module decides the computation; the config below stays the
  // checkpoint's. The generator says where the code came from.
  if (userModule) {
    manifest.generator += " --module";
    if (auto file = dyn_cast<FileLineColLoc>(userModule.getLoc()))
      manifest.generator +=
          " " + llvm::sys::path::filename(file.getFilename().getValue()).str();
  }
  manifest.setModelConfig(config);
  if (cuda) {
    manifest.target.kind = rt::TargetDesc::Kind::Cuda;
    manifest.target.archs = {chip};
  } else {
    manifest.target.kind = rt::TargetDesc::Kind::Cpu;
    manifest.target.cpu = options.cpu.cpu;
  }
  manifest.ranks = ranks;
  int64_t maxContext = options.maxContext > 0 ? options.maxContext
                                              : config.maxPositionEmbeddings;
  manifest.dims = {{rt::kDimBatch, options.maxBatch},
                   {rt::kDimSeq, options.maxSeq},
                   {rt::kDimCapacity, maxContext}};
  std::map<std::string, Type> weights;
  for (const char *name : kEntryPoints) {
    auto func = module.lookupSymbol<func::FuncOp>(name);
    if (failed(describeEntryPoint(func, stages, kernelFile, manifest, weights)))
      return failure();
    // The schedule lives in the manifest now; only the stages are code.
    func.erase();
  }
  for (const std::string &name : stageNames) {
    auto func = module.lookupSymbol<func::FuncOp>(name);
    func.setPublic();
    // The runtime maps weights read-only: bufferization must not write them.
    for (unsigned a = 0; a < func.getNumArguments(); ++a)
      if (func.getArgAttr(a, kWeightAttrName))
        func.setArgAttr(a, "bufferization.writable",
                        BoolAttr::get(context, false));
    func->setAttr("llvm.emit_c_interface", UnitAttr::get(context));
  }

  // Decompose and lower for the CPU, or for CUDA (host code and kernels).
  PassManager pm(context, ModuleOp::getOperationName());
  pm.addNestedPass<func::FuncOp>(createJambaDecomposeLayersPass());
  CpuTargetOptions host = options.cpu;
  if (cuda) {
    // gpu-module-to-binary serializes the NVVM modules through LLVM IR.
    DialectRegistry registry;
    NVVM::registerNVVMTargetInterfaceExternalModels(registry);
    registerBuiltinDialectTranslation(registry);
    registerLLVMDialectTranslation(registry);
    registerNVVMDialectTranslation(registry);
    registerGPUDialectTranslation(registry);
    context->appendDialectRegistry(registry);
    GPULowerPipelineOptions lower;
    lower.chip = chip;
    lower.format = options.gpuFormat == "cubin" ? "bin" : "isa";
    lower.statesInPlace = true;
    lower.tensorCores = options.gpuTensorCores;
    lower.expertGemmGroupedRows = options.gpuExpertGroupedRows;
    lower.attentionMmaMinTokens = options.gpuAttentionMmaMinTokens;
    lower.gemvRows = options.gpuGemvRows;
    lower.scanLaneThreads = options.gpuScanLaneThreads;
    lower.fastMath = options.gpuFastMath;
    buildGPULowerPipeline(pm, lower);
    host.threads = false;
    host.cudaHost = true;
  } else {
    CPULowerPipelineOptions lower;
    lower.threads = options.cpu.threads;
    lower.statesInPlace = true;
    lower.gpuKernels = options.cpuWithGpuKernels;
    lower.cpuAttentionSplitKeys = options.cpuAttentionSplitKeys;
    // The runtime keeps the kernels' freed temporaries for the next call
    // (KernelMemory.h).
    lower.kernelAllocator = true;
    host.kernelAllocator = true;
    if (options.cpuWithGpuKernels)
      lower.scanLaneThreads = options.gpuScanLaneThreads;
    lower.tensorCores = options.gpuTensorCores;
    lower.expertGemmGroupedRows = options.gpuExpertGroupedRows;
    lower.attentionMmaMinTokens = options.gpuAttentionMmaMinTokens;
    buildCPULowerPipeline(pm, lower);
  }
  TimingScope lowering =
      timing.nest(cuda ? "lower (host code, kernels to PTX)" : "lower");
  pm.enableTiming(lowering);
  if (failed(pm.run(module)))
    return failure();
  lowering.stop();
  if (cuda && !options.dumpPtxDir.empty()) {
    if (options.gpuFormat != "ptx")
      return fail("--dump-ptx needs --gpu-format ptx");
    if (failed(dumpPtx(module, options.dumpPtxDir)))
      return failure();
  }

  if (llvm::sys::fs::create_directories(workPath + "/kernels") ||
      llvm::sys::fs::create_directories(workPath + "/weights"))
    return fail("cannot create " + workPath + "/{kernels,weights}");
  std::string soPath = workPath + "/" + kernelFile;
  TimingScope emitting = timing.nest("emit " + kernelFile);
  if (failed(emitCpuSharedObject(module, *entries, host, soPath, &emitting)))
    return failure();
  emitting.stop();
  TimingScope writing = timing.nest("write the weights and the artifact");
  // One weights file per rank (or several, of at most
  // maxWeightsFileBytes each), streamed from the checkpoint tensor by
  // tensor, the ranks' files together (the manifest records how each rank's
  // tensors are cut, so jamba-rebind can write them again).
  std::vector<rt::ArtifactFileSource> files{
      rt::ArtifactFileSource::fromScratchFile(kernelFile, soPath)};
  describeWeights(weights, recipes, layout, options.maxWeightsFileBytes,
                  manifest);
  ckpt::StatusOr<std::vector<rt::FileDesc>> weightFiles =
      rt::writeWeightFiles(weightSource, manifest, workPath);
  if (!weightFiles.ok())
    return fail(weightFiles.status().message());
  for (const rt::FileDesc &file : *weightFiles)
    files.push_back(rt::ArtifactFileSource::fromScratchFile(
        file.path, workPath + "/" + file.path, file.size, file.sha256));

  // The checkpoint's tokenizer, for jamba-run --prompt, when this runtime
  // can run it; one it cannot is left out with a warning (the artifact
  // still runs on token ids).
  std::string tokenizerPath = checkpointDir + "/" + ckpt::kTokenizerFileName;
  if (llvm::sys::fs::exists(tokenizerPath)) {
    ckpt::StatusOr<ckpt::Tokenizer> tokenizer =
        ckpt::Tokenizer::loadForVocabulary(tokenizerPath,
                                           manifest.config.vocabSize);
    if (tokenizer.ok()) {
      manifest.tokenizerFile = ckpt::kTokenizerFileName;
      files.push_back(rt::ArtifactFileSource::fromFile(ckpt::kTokenizerFileName,
                                                       tokenizerPath));
    } else {
      emitWarning(loc) << "the artifact gets no tokenizer (run it with "
                          "--prompt-ids): "
                       << tokenizer.status().message();
    }
  }

  rt::WriteOptions write;
  write.overwrite = options.overwrite;
  ckpt::Status st = rt::writeArtifact(manifest, outDir, files, write);
  if (!st.ok())
    return fail(st.message());
  return success();
}

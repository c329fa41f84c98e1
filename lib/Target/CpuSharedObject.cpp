//===- CpuSharedObject.cpp - CPU shared objects with packed entry points --===//
//
// Part of jamba-mlir.
//
//===----------------------------------------------------------------------===//

#include "jamba/Target/CpuTarget.h"

#include "jamba/Dialect/Jamba/IR/JambaDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/GPU/GPUToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/OpenMP/OpenMPToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Export.h"

#include "llvm/ADT/ScopeExit.h"
#include "llvm/Bitcode/BitcodeReader.h"
#include "llvm/Bitcode/BitcodeWriter.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/ThreadPool.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Target/TargetOptions.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/Transforms/IPO/MergeFunctions.h"
#include "llvm/Transforms/Utils/SplitModule.h"

using namespace mlir;
using namespace mlir::jamba;

//===----------------------------------------------------------------------===//
// Describing entry points
//===----------------------------------------------------------------------===//

/// The packed description of a value of tensor type `type` whose argument
/// or result attributes are `attrs`.
static FailureOr<PackedOperand>
describeOperand(Operation *op, Type type, DictionaryAttr attrs, bool isResult) {
  auto tensor = dyn_cast<RankedTensorType>(type);
  if (!tensor)
    return op->emitError() << "packed ABI: expected a ranked tensor, got "
                           << type;
  PackedOperand operand;
  Type elem = tensor.getElementType();
  operand.elementBytes = (elem.getIntOrFloatBitWidth() + 7) / 8;
  operand.dtype = elem.isF32()         ? "F32"
                  : elem.isF64()       ? "F64"
                  : elem.isBF16()      ? "BF16"
                  : elem.isF16()       ? "F16"
                  : elem.isInteger(8)  ? "I8"
                  : elem.isInteger(32) ? "I32"
                  : elem.isInteger(64) ? "I64"
                                       : "?";
  auto named = [&](StringRef key) -> StringRef {
    if (!attrs)
      return {};
    auto value = attrs.getAs<StringAttr>(key);
    return value ? value.getValue() : StringRef();
  };
  StringRef input = named(kInputAttrName), state = named(kStateAttrName),
            output = named(kOutputAttrName);
  operand.inPlace = isResult && !state.empty();
  // Values passed between stages are activations [batch, seq, ...].
  bool sequenceLike =
      input == "ids" ||
      (isResult && (output == "logits" || output == kGreedyIdsOutputName)) ||
      !named(kTempAttrName).empty();
  bool kvCache = state.ends_with("k_cache") || state.ends_with("v_cache");
  for (int64_t d = 0; d < tensor.getRank(); ++d) {
    operand.sizes.push_back(tensor.getDimSize(d));
    if (!tensor.isDynamicDim(d)) {
      operand.dims.push_back(PackedDim::Static);
      continue;
    }
    if (d == 0)
      operand.dims.push_back(PackedDim::Batch);
    else if (d == 1 && sequenceLike)
      operand.dims.push_back(PackedDim::Seq);
    else if (d == 2 && kvCache)
      operand.dims.push_back(PackedDim::Capacity);
    else
      return op->emitError() << "packed ABI: cannot tell the size of dynamic "
                                "dimension "
                             << d << " of " << type;
  }
  return operand;
}

FailureOr<std::vector<PackedEntry>>
mlir::jamba::describePackedEntries(ModuleOp module,
                                   ArrayRef<std::string> names) {
  std::vector<PackedEntry> entries;
  for (const std::string &name : names) {
    auto func = module.lookupSymbol<func::FuncOp>(name);
    if (!func)
      return module.emitError() << "no entry point @" << name;
    PackedEntry entry;
    entry.function = name;
    entry.symbol = "jamba_" + name;
    for (unsigned i = 0; i < func.getNumArguments(); ++i) {
      auto operand = describeOperand(func, func.getArgumentTypes()[i],
                                     func.getArgAttrDict(i), false);
      if (failed(operand))
        return failure();
      entry.inputs.push_back(*operand);
    }
    for (unsigned i = 0; i < func.getNumResults(); ++i) {
      auto operand = describeOperand(func, func.getResultTypes()[i],
                                     func.getResultAttrDict(i), true);
      if (failed(operand))
        return failure();
      entry.outputs.push_back(*operand);
    }
    entries.push_back(std::move(entry));
  }
  return entries;
}

//===----------------------------------------------------------------------===//
// The packed wrapper, in LLVM IR
//===----------------------------------------------------------------------===//

namespace {

/// Builds `void <symbol>(ptr args)` around `_mlir_ciface_<function>`.
class PackedWrapperBuilder {
public:
  PackedWrapperBuilder(llvm::Module &module, const PackedEntry &entry,
                       bool cudaHost, bool kernelAllocator)
      : module(module), entry(entry), cudaHost(cudaHost),
        kernelAllocator(kernelAllocator), ctx(module.getContext()),
        b(module.getContext()), i64(llvm::Type::getInt64Ty(ctx)),
        ptr(llvm::PointerType::get(ctx, 0)) {}

  LogicalResult build(std::string &error);

private:
  llvm::StructType *descriptorType(size_t rank) {
    if (rank == 0)
      return llvm::StructType::get(ctx, {ptr, ptr, i64});
    auto *sizes = llvm::ArrayType::get(i64, rank);
    return llvm::StructType::get(ctx, {ptr, ptr, i64, sizes, sizes});
  }

  /// `*(T *)args[index]`: what packed argument `index` points at.
  llvm::Value *packedArg(llvm::Value *args, unsigned index, llvm::Type *type) {
    llvm::Value *slot = b.CreateConstGEP1_64(ptr, args, index);
    return b.CreateLoad(type, b.CreateLoad(ptr, slot));
  }

  llvm::Module &module;
  const PackedEntry &entry;
  /// Results live in device memory: copy and free them through the
  /// runtime's mgpuMemcpy / mgpuMemFree (a null stream: the executor's).
  bool cudaHost;
  /// Results come from the runtime's kernel allocator (KernelMemory.h).
  bool kernelAllocator;
  llvm::LLVMContext &ctx;
  llvm::IRBuilder<> b;
  llvm::Type *i64;
  llvm::PointerType *ptr;
};

LogicalResult PackedWrapperBuilder::build(std::string &error) {
  llvm::Function *callee = module.getFunction("_mlir_ciface_" + entry.function);
  if (!callee) {
    error = "no _mlir_ciface_" + entry.function +
            " (the entry point needs llvm.emit_c_interface)";
    return failure();
  }
  const size_t numIn = entry.inputs.size(), numOut = entry.outputs.size();
  // The outputs the function returns (the states are updated in place).
  std::vector<size_t> returned;
  for (size_t j = 0; j < numOut; ++j)
    if (!entry.outputs[j].inPlace)
      returned.push_back(j);
  // With results, the C interface passes a pointer to them first.
  const size_t expectedParams = numIn + (returned.empty() ? 0 : 1);
  if (callee->arg_size() != expectedParams) {
    error = "_mlir_ciface_" + entry.function + " takes " +
            std::to_string(callee->arg_size()) + " parameters, expected " +
            std::to_string(expectedParams);
    return failure();
  }

  auto *fnType =
      llvm::FunctionType::get(llvm::Type::getVoidTy(ctx), {ptr}, false);
  auto *wrapper = llvm::Function::Create(
      fnType, llvm::GlobalValue::ExternalLinkage, entry.symbol, module);
  llvm::Value *args = wrapper->getArg(0);
  b.SetInsertPoint(llvm::BasicBlock::Create(ctx, "entry", wrapper));

  llvm::Value *dims[3];
  for (unsigned d = 0; d < 3; ++d)
    dims[d] = packedArg(args, d, i64);

  // Inputs: descriptors over the caller's dense buffers.
  std::vector<llvm::Value *> callArgs, inputData;
  llvm::StructType *resultType = nullptr;
  llvm::Value *results = nullptr;
  if (!returned.empty()) {
    std::vector<llvm::Type *> fields;
    for (size_t j : returned)
      fields.push_back(descriptorType(entry.outputs[j].sizes.size()));
    resultType = llvm::StructType::get(ctx, fields);
    results = b.CreateAlloca(resultType);
    callArgs.push_back(results);
  }
  for (size_t i = 0; i < numIn; ++i) {
    const PackedOperand &in = entry.inputs[i];
    const size_t rank = in.sizes.size();
    llvm::StructType *descType = descriptorType(rank);
    llvm::Value *desc = b.CreateAlloca(descType);
    llvm::Value *data = packedArg(args, 3 + i, ptr);
    inputData.push_back(data);
    b.CreateStore(data, b.CreateStructGEP(descType, desc, 0));
    b.CreateStore(data, b.CreateStructGEP(descType, desc, 1));
    b.CreateStore(b.getInt64(0), b.CreateStructGEP(descType, desc, 2));
    llvm::Value *stride = b.getInt64(1);
    for (size_t d = rank; d-- > 0;) {
      llvm::Value *size =
          in.dims[d] == PackedDim::Static
              ? static_cast<llvm::Value *>(b.getInt64(in.sizes[d]))
              : dims[static_cast<int>(in.dims[d])];
      b.CreateStore(size,
                    b.CreateGEP(descType, desc,
                                {b.getInt32(0), b.getInt32(3), b.getInt32(d)}));
      b.CreateStore(stride,
                    b.CreateGEP(descType, desc,
                                {b.getInt32(0), b.getInt32(4), b.getInt32(d)}));
      stride = b.CreateMul(stride, size);
    }
    callArgs.push_back(desc);
  }
  b.CreateCall(callee, callArgs);

  // Returned outputs: copy each result into its buffer, then free the
  // allocations that are neither an input nor an earlier result's.
  llvm::Type *voidTy = llvm::Type::getVoidTy(ctx);
  llvm::Value *nullStream = llvm::ConstantPointerNull::get(ptr);
  llvm::FunctionCallee copyFn =
      cudaHost
          ? module.getOrInsertFunction(
                "mgpuMemcpy",
                llvm::FunctionType::get(voidTy, {ptr, ptr, i64, ptr}, false))
          : module.getOrInsertFunction(
                "memmove",
                llvm::FunctionType::get(ptr, {ptr, ptr, i64}, false));
  llvm::FunctionCallee freeFn =
      cudaHost ? module.getOrInsertFunction(
                     "mgpuMemFree",
                     llvm::FunctionType::get(voidTy, {ptr, ptr}, false))
               : module.getOrInsertFunction(
                     kernelAllocator ? "_mlir_memref_to_llvm_free" : "free",
                     llvm::FunctionType::get(voidTy, {ptr}, false));
  std::vector<llvm::Value *> freed;
  for (size_t field = 0; field < returned.size(); ++field) {
    const size_t j = returned[field];
    const PackedOperand &out = entry.outputs[j];
    const size_t rank = out.sizes.size();
    llvm::StructType *descType = descriptorType(rank);
    llvm::Value *desc = b.CreateStructGEP(resultType, results, field);
    llvm::Value *allocated =
        b.CreateLoad(ptr, b.CreateStructGEP(descType, desc, 0));
    llvm::Value *aligned =
        b.CreateLoad(ptr, b.CreateStructGEP(descType, desc, 1));
    llvm::Value *offset =
        b.CreateLoad(i64, b.CreateStructGEP(descType, desc, 2));
    llvm::Value *count = b.getInt64(1);
    for (size_t d = 0; d < rank; ++d)
      count = b.CreateMul(
          count, b.CreateLoad(i64, b.CreateGEP(descType, desc,
                                               {b.getInt32(0), b.getInt32(3),
                                                b.getInt32(d)})));
    llvm::Value *elem = b.getInt64(out.elementBytes);
    llvm::Value *src =
        b.CreateGEP(b.getInt8Ty(), aligned, b.CreateMul(offset, elem));
    llvm::Value *dst = packedArg(args, 3 + numIn + j, ptr);
    if (cudaHost)
      b.CreateCall(copyFn, {dst, src, b.CreateMul(count, elem), nullStream});
    else
      b.CreateCall(copyFn, {dst, src, b.CreateMul(count, elem)});

    llvm::Value *shared = b.getFalse();
    for (llvm::Value *other : inputData)
      shared = b.CreateOr(shared, b.CreateICmpEQ(allocated, other));
    for (llvm::Value *other : freed)
      shared = b.CreateOr(shared, b.CreateICmpEQ(allocated, other));
    llvm::BasicBlock *freeBlock =
        llvm::BasicBlock::Create(ctx, "free", wrapper);
    llvm::BasicBlock *next = llvm::BasicBlock::Create(ctx, "next", wrapper);
    b.CreateCondBr(shared, next, freeBlock);
    b.SetInsertPoint(freeBlock);
    if (cudaHost)
      b.CreateCall(freeFn, {allocated, nullStream});
    else
      b.CreateCall(freeFn, {allocated});
    b.CreateBr(next);
    b.SetInsertPoint(next);
    freed.push_back(allocated);
  }
  b.CreateRetVoid();

  // The argument signature, for the runtime to check the manifest against;
  // '>' marks what the kernel writes (its results), so that the runtime can
  // check the schedule's dataflow too.
  std::string signature = "dim:batch;dim:seq;dim:capacity";
  auto append = [&](const PackedOperand &operand, bool written) {
    signature += std::string(";") + (written ? ">" : "") + operand.dtype + "[";
    for (size_t d = 0; d < operand.sizes.size(); ++d) {
      if (d)
        signature += ",";
      switch (operand.dims[d]) {
      case PackedDim::Static:
        signature += std::to_string(operand.sizes[d]);
        break;
      case PackedDim::Batch:
        signature += "batch";
        break;
      case PackedDim::Seq:
        signature += "seq";
        break;
      case PackedDim::Capacity:
        signature += "capacity";
        break;
      }
    }
    signature += "]";
  };
  for (const PackedOperand &in : entry.inputs)
    append(in, /*written=*/false);
  for (const PackedOperand &out : entry.outputs)
    append(out, /*written=*/true);
  auto *init = llvm::ConstantDataArray::getString(ctx, signature);
  new llvm::GlobalVariable(module, init->getType(), /*isConstant=*/true,
                           llvm::GlobalValue::ExternalLinkage, init,
                           entry.symbol + "_signature");
  return success();
}

} // namespace

//===----------------------------------------------------------------------===//
// Object emission and linking
//===----------------------------------------------------------------------===//

FailureOr<unsigned> mlir::jamba::dumpPtx(ModuleOp module, StringRef dir) {
  if (std::error_code ec = llvm::sys::fs::create_directories(dir))
    return module.emitError()
           << "cannot create " << dir << ": " << ec.message();
  unsigned written = 0;
  for (auto binary : module.getOps<gpu::BinaryOp>()) {
    for (Attribute attr : binary.getObjects()) {
      auto object = dyn_cast<gpu::ObjectAttr>(attr);
      if (!object || object.getFormat() != gpu::CompilationTarget::Assembly)
        continue;
      SmallString<256> path(dir);
      llvm::sys::path::append(path, binary.getSymName() + ".ptx");
      std::error_code ec;
      llvm::raw_fd_ostream os(path, ec, llvm::sys::fs::OF_None);
      if (ec) {
        os.clear_error();
        return module.emitError()
               << "cannot write " << path << ": " << ec.message();
      }
      // The assembly may carry the NUL the driver's JIT wants.
      os << object.getObject().getValue().rtrim('\0');
      os.close();
      if (os.has_error()) {
        std::string why = os.error().message();
        os.clear_error();
        return module.emitError() << "cannot write " << path << ": " << why;
      }
      ++written;
    }
  }
  return written;
}

/// A target machine for the CPU `cpu` with the shared object's settings:
/// position-independent code, global constructors (a CUDA host's GPU module
/// loads) in .init_array, which the dynamic loader runs for objects linked
/// without crtbegin (it ignores .ctors).
static std::unique_ptr<llvm::TargetMachine>
createHostMachine(const llvm::Target &target, const llvm::Triple &triple,
                  StringRef cpu) {
  llvm::TargetOptions targetOptions;
  targetOptions.UseInitArray = true;
  return std::unique_ptr<llvm::TargetMachine>(target.createTargetMachine(
      triple, cpu, "", targetOptions, llvm::Reloc::PIC_, std::nullopt,
      llvm::CodeGenOptLevel::Aggressive));
}

/// Optimises `module` at `optLevel` and writes its object file to
/// `objectPath`. Returns what went wrong, or an empty string. `phases`,
/// when given, gets a timer for each of the two.
static std::string optimiseAndEmit(llvm::Module &module,
                                   llvm::TargetMachine &machine,
                                   unsigned optLevel, StringRef objectPath,
                                   TimingScope *phases) {
  TimingScope untimed;
  TimingScope &parent = phases ? *phases : untimed;
  TimingScope optimising = parent.nest("LLVM optimisation");
  if (llvm::Error err =
          makeOptimizingTransformer(optLevel, 0, &machine)(&module))
    return "LLVM optimisation failed: " + llvm::toString(std::move(err));
  optimising.stop();

  TimingScope generating = parent.nest("LLVM code generation");
  std::error_code ec;
  llvm::raw_fd_ostream os(objectPath, ec, llvm::sys::fs::OF_None);
  if (ec) {
    os.clear_error();
    return ("cannot write " + objectPath + ": " + ec.message()).str();
  }
  llvm::legacy::PassManager pm;
  if (machine.addPassesToEmitFile(pm, os, nullptr,
                                  llvm::CodeGenFileType::ObjectFile))
    return "the target cannot emit object files";
  pm.run(module);
  os.close();
  if (os.has_error()) {
    std::string why = os.error().message();
    os.clear_error();
    return ("cannot write " + objectPath + ": " + why).str();
  }
  return "";
}

LogicalResult mlir::jamba::emitCpuSharedObject(ModuleOp module,
                                               ArrayRef<PackedEntry> entries,
                                               const CpuTargetOptions &options,
                                               StringRef path,
                                               TimingScope *timing) {
  TimingScope untimed;
  TimingScope &phases = timing ? *timing : untimed;
  TimingScope translating = phases.nest("translate to LLVM IR");
  DialectRegistry registry;
  registerBuiltinDialectTranslation(registry);
  registerLLVMDialectTranslation(registry);
  registerOpenMPDialectTranslation(registry);
  // CUDA hosts: gpu.binary becomes an embedded blob loaded by a global
  // constructor, gpu.launch_func an mgpuLaunchKernel call.
  registerGPUDialectTranslation(registry);
  gpu::registerOffloadingLLVMTranslationInterfaceExternalModels(registry);
  module.getContext()->appendDialectRegistry(registry);

  // The jamba.* argument and result attributes have served their purpose
  // (the packed entries describe the ABI); LLVM IR has no place for them.
  module.walk([](LLVM::LLVMFuncOp func) {
    auto strip = [](DictionaryAttr attrs) {
      if (!attrs)
        return attrs;
      SmallVector<NamedAttribute> kept;
      for (NamedAttribute attr : attrs)
        if (!attr.getName().strref().starts_with("jamba."))
          kept.push_back(attr);
      return DictionaryAttr::get(attrs.getContext(), kept);
    };
    for (unsigned i = 0; i < func.getNumArguments(); ++i)
      func.setArgAttrs(i, strip(func.getArgAttrDict(i)));
    for (unsigned i = 0; i < func.getNumResults(); ++i)
      func.setResultAttrs(i, strip(func.getResultAttrDict(i)));
  });

  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> llvmModule =
      translateModuleToLLVMIR(module, llvmContext, "jamba");
  if (!llvmModule)
    return module.emitError() << "cannot translate the module to LLVM IR";
  for (const PackedEntry &entry : entries) {
    std::string error;
    if (failed(PackedWrapperBuilder(*llvmModule, entry, options.cudaHost,
                                    options.kernelAllocator)
                   .build(error)))
      return module.emitError()
             << "packed wrapper for @" << entry.function << ": " << error;
  }

  translating.stop();

  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
  llvm::Triple triple(llvm::sys::getDefaultTargetTriple());
  std::string error;
  const llvm::Target *target =
      llvm::TargetRegistry::lookupTarget(triple, error);
  if (!target)
    return module.emitError()
           << "no LLVM target for " << triple.str() << ": " << error;
  std::unique_ptr<llvm::TargetMachine> machine =
      createHostMachine(*target, triple, options.cpu);
  if (!machine)
    return module.emitError()
           << "cannot create a target machine for " << options.cpu;
  llvmModule->setTargetTriple(triple);
  llvmModule->setDataLayout(machine->createDataLayout());
  // Functions the OpenMP translation outlined from the parallel loops of
  // different layer kinds (a Mamba mixer's, with a dense MLP or with
  // experts) are often identical: one copy each before LLVM optimises them.
  TimingScope merging = phases.nest("merge identical LLVM functions");
  llvm::MergeFunctionsPass::runOnModule(*llvmModule);
  merging.stop();

  // The object files are removed whatever happens; ld.lld links them.
  SmallVector<std::string> objectPaths;
  llvm::scope_exit removeObjects([&] {
    for (const std::string &objectPath : objectPaths)
      llvm::sys::fs::remove(objectPath);
  });
  const unsigned parts =
      options.cudaHost ? 1 : std::max(1u, options.codegenPartitions);
  if (parts == 1) {
    objectPaths.push_back((path + ".o").str());
    if (std::string why =
            optimiseAndEmit(*llvmModule, *machine, options.optLevel,
                            objectPaths.front(), &phases);
        !why.empty())
      return module.emitError() << why;
  } else {
    // The parts are independent modules (SplitModule makes what one part
    // uses of another's an external symbol, hidden from the shared
    // object's exports), each optimised and compiled in its own context on
    // its own thread. Round-robin keeps the split, and so the object, a
    // function of the module and the number of parts alone.
    TimingScope splitting =
        phases.nest("split into " + std::to_string(parts) + " parts");
    SmallVector<SmallString<0>> bitcode;
    llvm::SplitModule(
        *llvmModule, parts,
        [&](std::unique_ptr<llvm::Module> part) {
          llvm::raw_svector_ostream os(bitcode.emplace_back());
          llvm::WriteBitcodeToFile(*part, os);
        },
        /*PreserveLocals=*/false, /*RoundRobin=*/true);
    llvmModule.reset();
    for (size_t i = 0; i < bitcode.size(); ++i)
      objectPaths.push_back((path + "." + Twine(i) + ".o").str());
    splitting.stop();

    TimingScope compiling =
        phases.nest("LLVM optimisation and code generation (" +
                    std::to_string(bitcode.size()) + " parts in parallel)");
    SmallVector<std::string> errors(bitcode.size());
    {
      llvm::DefaultThreadPool pool(
          llvm::heavyweight_hardware_concurrency(bitcode.size()));
      for (size_t i = 0; i < bitcode.size(); ++i)
        pool.async([&, i] {
          llvm::LLVMContext partContext;
          llvm::Expected<std::unique_ptr<llvm::Module>> part =
              llvm::parseBitcodeFile(
                  llvm::MemoryBufferRef(
                      StringRef(bitcode[i].data(), bitcode[i].size()),
                      objectPaths[i]),
                  partContext);
          if (!part) {
            errors[i] = "cannot read back part " + std::to_string(i) +
                        " of the module: " + llvm::toString(part.takeError());
            return;
          }
          std::unique_ptr<llvm::TargetMachine> partMachine =
              createHostMachine(*target, triple, options.cpu);
          if (!partMachine) {
            errors[i] = "cannot create a target machine for " + options.cpu;
            return;
          }
          errors[i] = optimiseAndEmit(**part, *partMachine, options.optLevel,
                                      objectPaths[i], nullptr);
        });
      pool.wait();
    }
    for (const std::string &why : errors)
      if (!why.empty())
        return module.emitError() << why;
  }

  // Link with lld: the objects only need memmove (and, without the kernel
  // allocator, malloc/free) from libc, and the kernel allocator's and the
  // collectives' functions from the runtime, which the loading process
  // provides.
  TimingScope linking = phases.nest("link (ld.lld)");
  std::string lld;
  for (StringRef name : {"ld.lld-22", "ld.lld"})
    if (auto found = llvm::sys::findProgramByName(name)) {
      lld = *found;
      break;
    }
  if (lld.empty())
    if (auto found =
            llvm::sys::findProgramByName("ld.lld", {"/usr/lib/llvm-22/bin"}))
      lld = *found;
  if (lld.empty())
    return module.emitError()
           << "cannot find ld.lld (install lld-22) to link " << path;
  std::string pathStr = path.str();
  SmallVector<StringRef> argv = {lld, "-shared", "--no-undefined-version", "-o",
                                 pathStr};
  argv.append(objectPaths.begin(), objectPaths.end());
  // Threaded kernels call the OpenMP runtime: record libomp and where LLVM
  // 22 installs it, so that the runtime's dlopen finds it.
  if (options.threads)
    argv.append(
        {"-L" LLVM_LIBDIR_FOR_OMP, "-lomp", "-rpath=" LLVM_LIBDIR_FOR_OMP});
  std::string message;
  int rc =
      llvm::sys::ExecuteAndWait(lld, argv, std::nullopt, {}, 0, 0, &message);
  if (rc != 0)
    return module.emitError()
           << "linking " << path << " failed (" << lld << " exited " << rc
           << ")" << (message.empty() ? "" : ": ") << message;
  return success();
}

//===- Executor.cpp - Running an artifact's entry points ------------------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// Binding (device, dims, memory plan, model ABI checks), kernel loading
// (dlopen), weight binding, allocation and the packed-ABI calls, on the CPU
// or on a CUDA device (CudaSession.h holds the device's share). No model
// arithmetic: the executor only fills argument arrays.
//
//===----------------------------------------------------------------------===//

#include "jamba/Runtime/Executor.h"

#include "CudaSession.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <fcntl.h>
#include <link.h>
#include <map>
#include <optional>
#include <set>
#include <string_view>
#include <sys/mman.h>
#include <unistd.h>

using namespace jamba;
using namespace jamba::rt;
using ckpt::makeError;

namespace {

/// dlopen of a private copy of the shared object at `path` (an anonymous
/// memory file), or null with `why` set. dlopen of a path (or inode) already
/// open returns the handle it has, without running the object's
/// constructors again; a CUDA kernels file loads its GPU modules from its
/// constructors, into the context current then. So each CUDA session opens
/// its own copy: sessions on different devices of one process (one process
/// driving several GPUs), or two sessions of one artifact, each get their
/// modules in their own context. The copy is opened as
/// /proc/self/fd/N, and dlopen knows a loaded object by that name: `fd`
/// (N) must stay open until the handle is closed, so that no other copy
/// gets the same name meanwhile.
void *openPrivateCopy(const std::string &path, int &fd, std::string &why) {
  fd = -1;
  int in = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) {
    why = ckpt::concat(path, ": ", std::strerror(errno));
    return nullptr;
  }
  int copy = ::memfd_create("jamba-kernels", MFD_CLOEXEC);
  if (copy < 0) {
    why = ckpt::concat("memfd_create: ", std::strerror(errno));
    ::close(in);
    return nullptr;
  }
  char buffer[1 << 16];
  while (true) {
    ssize_t n = ::read(in, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      why = ckpt::concat("reading ", path, ": ", std::strerror(errno));
      break;
    }
    if (n == 0)
      break;
    for (ssize_t done = 0; done < n;) {
      ssize_t w = ::write(copy, buffer + done, size_t(n - done));
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0) {
        why = ckpt::concat("copying ", path, ": ", std::strerror(errno));
        break;
      }
      done += w;
    }
    if (!why.empty())
      break;
  }
  ::close(in);
  void *handle = nullptr;
  if (why.empty()) {
    std::string self = ckpt::concat("/proc/self/fd/", copy);
    // An object still loaded under this name (a library never unloaded
    // after its descriptor was closed) would be returned instead: take
    // another descriptor number then.
    std::vector<int> spares;
    for (int tries = 0; tries < 8; ++tries) {
      void *stale = ::dlopen(self.c_str(), RTLD_NOW | RTLD_NOLOAD);
      if (!stale)
        break;
      ::dlclose(stale);
      int other = ::fcntl(copy, F_DUPFD_CLOEXEC, copy + 1);
      if (other < 0)
        break;
      spares.push_back(copy);
      copy = other;
      self = ckpt::concat("/proc/self/fd/", copy);
    }
    for (int spare : spares)
      ::close(spare);
    ::dlerror();
    handle = ::dlopen(self.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
      const char *error = ::dlerror();
      why = ckpt::concat("a private copy of ", path, ": ",
                         error ? error : "unknown dlopen error");
    }
  }
  if (handle)
    fd = copy;
  else
    ::close(copy);
  return handle;
}

uint64_t alignUp64(uint64_t value) {
  return (value + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment;
}

/// True when `e` is exactly the symbol `name` (one term).
bool isSymbol(const DimExpr &e, const char *name) {
  return e.terms.size() == 1 && e.terms[0].symbol == name;
}

/// True when `e` is the constant `value`.
bool isConstant(const DimExpr &e, int64_t value) {
  if (!e.isStatic())
    return false;
  int64_t product = 1;
  for (const DimExpr::Term &t : e.terms)
    product *= t.constant;
  return product == value;
}

std::string shapeText(const std::vector<DimExpr> &shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    out += (i ? ", " : "") + shape[i].str();
  return out + "]";
}

/// The architecture this runtime was built for, as an LLVM triple's first
/// component.
const char *hostArch() {
#if defined(__x86_64__)
  return "x86_64";
#elif defined(__aarch64__)
  return "aarch64";
#else
  return "unknown";
#endif
}

/// The target in words: "cpu (x86_64-unknown-linux-gnu, x86-64-v3)",
/// "cuda (sm_90)".
std::string targetText(const TargetDesc &t) {
  std::string out = targetKindName(t.kind);
  if (t.kind == TargetDesc::Kind::Cpu)
    return out + " (" + t.triple + ", " + t.cpu + ")";
  std::string archs;
  for (const std::string &a : t.archs)
    archs += (archs.empty() ? "" : ", ") + a;
  return out + " (" + archs + ")";
}

/// Checks that the session's device is the kind the artifact targets.
Status checkDeviceTarget(const TargetDesc &t, Device device) {
  bool cudaTarget = t.kind == TargetDesc::Kind::Cuda;
  if (cudaTarget == (device == Device::Cuda))
    return Status::success();
  return makeError("the artifact targets ", targetText(t),
                   ", but the session's device is ", deviceName(device));
}

/// Checks that the artifact's CPU target can run here. Returns a note when
/// the CPU name cannot be checked.
Status checkCpuTarget(const TargetDesc &t, std::vector<std::string> &notes) {
  std::string arch = t.triple.substr(0, t.triple.find('-'));
  if (arch == "amd64")
    arch = "x86_64";
  if (arch == "arm64")
    arch = "aarch64";
  if (arch != hostArch())
    return makeError("the artifact's kernels are built for '", t.triple,
                     "', this machine is ", hostArch());
#if defined(__x86_64__)
  __builtin_cpu_init();
  bool v2 = __builtin_cpu_supports("sse4.2") &&
            __builtin_cpu_supports("popcnt") && __builtin_cpu_supports("ssse3");
  bool v3 = v2 && __builtin_cpu_supports("avx2") &&
            __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2");
  bool v4 = v3 && __builtin_cpu_supports("avx512f") &&
            __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512dq") &&
            __builtin_cpu_supports("avx512vl");
  if (t.cpu == "x86-64" || t.cpu == "generic")
    return Status::success();
  if ((t.cpu == "x86-64-v2" && !v2) || (t.cpu == "x86-64-v3" && !v3) ||
      (t.cpu == "x86-64-v4" && !v4))
    return makeError("the artifact's kernels need an ", t.cpu,
                     " CPU; this one lacks some of its instructions");
  if (t.cpu == "x86-64-v2" || t.cpu == "x86-64-v3" || t.cpu == "x86-64-v4")
    return Status::success();
#endif
  notes.push_back("target cpu '" + t.cpu +
                  "' is not checked against this machine's instructions");
  return Status::success();
}

/// Finds the model ABI's io buffers of entry point `name`.
Status findModelEntry(const ArtifactManifest &m, const char *name, bool decode,
                      ModelEntry &out) {
  const EntryPoint *e = m.findEntryPoint(name);
  if (!e)
    return makeError("the artifact has no entry point '", name, "'");
  std::string where = std::string("entry point '") + name + "': ";
  if (e->inputs.size() < 2 || e->outputs.empty())
    return makeError(where,
                     "expected inputs (token ids, cache lengths, ...) and "
                     "outputs (logits, ...); it has ",
                     e->inputs.size(), " inputs and ", e->outputs.size(),
                     " outputs");
  auto index = [&](const std::string &id) {
    for (size_t i = 0; i < m.buffers.size(); ++i)
      if (m.buffers[i].id == id)
        return i;
    return m.buffers.size();
  };
  out.name = name;
  out.ids = index(e->inputs[0]);
  out.cacheLen = index(e->inputs[1]);
  out.logits = index(e->outputs[0]);
  if (out.ids == m.buffers.size() || out.cacheLen == m.buffers.size() ||
      out.logits == m.buffers.size())
    return makeError(where, "an input or output buffer is not declared");
  const BufferDesc &ids = m.buffers[out.ids];
  const BufferDesc &len = m.buffers[out.cacheLen];
  const BufferDesc &logits = m.buffers[out.logits];
  auto seqOk = [&](const DimExpr &d) {
    return isSymbol(d, kDimSeq) || (decode && isConstant(d, 1));
  };
  const char *seqText = decode ? "1" : "seq";
  if (ids.kind != BufferDesc::Kind::Io || ids.dtype != DType::I32 ||
      ids.shape.size() != 2 || !isSymbol(ids.shape[0], kDimBatch) ||
      !seqOk(ids.shape[1]))
    return makeError(where, "inputs[0] '", ids.id,
                     "' must be the token ids, an io I32 buffer [batch, ",
                     seqText, "]; it is ", bufferKindName(ids.kind), " ",
                     ckpt::dtypeName(ids.dtype), " ", shapeText(ids.shape));
  if (len.kind != BufferDesc::Kind::Io || len.dtype != DType::I64 ||
      len.shape.size() != 1 || !isSymbol(len.shape[0], kDimBatch))
    return makeError(where, "inputs[1] '", len.id,
                     "' must be the cache lengths, an io I64 buffer [batch]; "
                     "it is ",
                     bufferKindName(len.kind), " ", ckpt::dtypeName(len.dtype),
                     " ", shapeText(len.shape));
  if (logits.kind != BufferDesc::Kind::Io || logits.dtype != DType::F32 ||
      logits.shape.size() != 3 || !isSymbol(logits.shape[0], kDimBatch) ||
      !(seqOk(logits.shape[1]) || isConstant(logits.shape[1], 1)) ||
      !isConstant(logits.shape[2], m.config.vocabSize))
    return makeError(where, "outputs[0] '", logits.id,
                     "' must be the logits, an io F32 buffer [batch, ", seqText,
                     decode ? "" : " or 1", ", ", m.config.vocabSize,
                     "]; it is ", bufferKindName(logits.kind), " ",
                     ckpt::dtypeName(logits.dtype), " ",
                     shapeText(logits.shape));
  out.lastLogitsOnly = isConstant(logits.shape[1], 1);
  // The greedy ids: the one io output besides the logits (the others are
  // states), an I32 per row and position of the logits, named as
  // jamba-compile names it.
  const std::string greedyName =
      std::string(decode ? "decode." : "") + "greedy_ids";
  out.greedyIds.reset();
  for (size_t o = 1; o < e->outputs.size(); ++o) {
    size_t i = index(e->outputs[o]);
    if (i == m.buffers.size())
      return makeError(where, "outputs[", o, "] '", e->outputs[o],
                       "' is not declared");
    const BufferDesc &ids = m.buffers[i];
    if (ids.kind != BufferDesc::Kind::Io)
      continue;
    if (out.greedyIds || ids.id != greedyName)
      return makeError(where, "outputs[", o, "] '", ids.id,
                       "' is an io output besides the logits; only the "
                       "greedy ids '",
                       greedyName, "' may be one");
    if (ids.dtype != DType::I32 || ids.shape.size() != 2 ||
        !isSymbol(ids.shape[0], kDimBatch) ||
        ids.shape[1].str() != logits.shape[1].str())
      return makeError(where, "outputs[", o, "] '", ids.id,
                       "' must be the greedy ids, an io I32 buffer [batch, ",
                       logits.shape[1].str(),
                       "] (a row per row of logits); it is ",
                       bufferKindName(ids.kind), " ",
                       ckpt::dtypeName(ids.dtype), " ", shapeText(ids.shape));
    out.greedyIds = i;
  }
  return Status::success();
}

void *allocateHostZeroed(uint64_t bytes) {
  void *p = nullptr;
  uint64_t size = alignUp64(std::max<uint64_t>(bytes, 1));
  if (size > SIZE_MAX || ::posix_memalign(&p, kBufferAlignment, size) != 0)
    return nullptr;
  std::memset(p, 0, size);
  return p;
}

/// Checks that this process can run rank `options.rank` of the artifact:
/// the artifact's rank count is the communicator's size (1 without one), the
/// rank is the communicator's, and the artifact has weights for it.
Status checkRanks(const ArtifactManifest &m, const SessionOptions &options) {
  const Communicator *c = options.communicator;
  int64_t size = c ? c->size() : 1;
  std::string what =
      c ? ckpt::concat("the ", c->name(), " communicator") : "no communicator";
  if (m.ranks != size)
    return makeError("the artifact is compiled for ", m.ranks,
                     m.ranks == 1 ? " rank" : " ranks", ", but this run has ",
                     size, " (", what, "): start it with mpirun -np ", m.ranks,
                     " (or jamba-run --ranks ", m.ranks, ")");
  if (c && options.rank != c->rank())
    return makeError("rank ", options.rank, " was asked for, but this process ",
                     "is rank ", c->rank(), " of ", what);
  if (options.rank < 0 || options.rank >= m.ranks)
    return makeError("rank ", options.rank, " is outside the artifact's 0..",
                     m.ranks - 1);
  bool any = false, mine = false;
  for (const WeightDesc &w : m.weights) {
    any = true;
    mine = mine || w.rank == options.rank;
  }
  if (any && !mine)
    return makeError("the artifact has no weights for rank ", options.rank,
                     " (of ", m.ranks, ")");
  return Status::success();
}

std::string bytesText(uint64_t bytes) {
  char buf[64];
  if (bytes >= (uint64_t(1) << 30))
    std::snprintf(buf, sizeof(buf), "%.2f GiB", double(bytes) / (1 << 30));
  else if (bytes >= (uint64_t(1) << 20))
    std::snprintf(buf, sizeof(buf), "%.2f MiB", double(bytes) / (1 << 20));
  else
    std::snprintf(buf, sizeof(buf), "%.1f KiB", double(bytes) / 1024);
  return ckpt::concat(bytes, " bytes (", buf, ")");
}

/// `base` advanced by `bytes`: a host or a device address, never
/// dereferenced here.
void *offsetAddress(void *base, uint64_t bytes) {
  return reinterpret_cast<void *>(reinterpret_cast<uintptr_t>(base) +
                                  uintptr_t(bytes));
}

/// The alignment of every weight in the device allocation that holds a
/// rank's weights (what cuMemAlloc gives an allocation of its own).
constexpr uint64_t kDeviceWeightAlignment = 256;

/// Whether `sym` (from dlsym on `handle`) is a function that the object
/// `handle` itself defines, not one of its dependencies' or a data object.
Status checkOwnFunction(void *handle, void *sym) {
  struct link_map *object = nullptr;
  if (::dlinfo(handle, RTLD_DI_LINKMAP, &object) != 0 || !object)
    return makeError("cannot be checked (dlinfo failed)");
  Dl_info info;
  void *entryPtr = nullptr;
  if (!::dladdr1(sym, &info, &entryPtr, RTLD_DL_SYMENT) || !info.dli_fname ||
      !object->l_name)
    return makeError("is in no loaded object");
  const auto *entry = static_cast<const ElfW(Sym) *>(entryPtr);
  if (std::strcmp(info.dli_fname, object->l_name) != 0)
    return makeError("is defined by '", info.dli_fname,
                     "', not by the kernel file");
  if (!entry || ELF64_ST_TYPE(entry->st_info) != STT_FUNC)
    return makeError("is not a function");
  return Status::success();
}

/// A kernel's exported `<symbol>_signature`: its items without the '>'
/// marks (what stepSignature computes from the manifest) and, when it has
/// marks, the positions of the arguments the kernel writes.
struct KernelSignature {
  std::string unmarked;
  std::set<size_t> written;
  bool marked = false;
};

KernelSignature parseKernelSignature(std::string_view sig) {
  KernelSignature s;
  size_t item = 0;
  bool atItemStart = true;
  for (char c : sig) {
    if (atItemStart && c == '>') {
      s.written.insert(item);
      s.marked = true;
      continue;
    }
    atItemStart = c == ';';
    if (c == ';')
      ++item;
    s.unmarked += c;
  }
  return s;
}

/// The schedule's dataflow, from the kernels' marks (`written`: per kernel
/// name, the arguments it writes; an entry point with a step of an unmarked
/// kernel is not checked): within an entry point every temp buffer is
/// written by exactly one step before any step reads it, and every output
/// that is not also an input is written by some step. So a manifest whose
/// steps were reordered, dropped or repeated is refused before a kernel
/// runs, even with a recomputed content hash.
Status checkDataflow(const ArtifactManifest &m,
                     const std::map<std::string, std::set<size_t>> &written) {
  for (const EntryPoint &ep : m.entryPoints) {
    if (!std::all_of(ep.steps.begin(), ep.steps.end(), [&](const Step &step) {
          return written.count(step.kernel) != 0;
        }))
      continue;
    std::set<std::string> defined;
    for (size_t s = 0; s < ep.steps.size(); ++s) {
      const Step &step = ep.steps[s];
      const std::set<size_t> &writes = written.at(step.kernel);
      std::vector<std::string> writtenHere;
      for (size_t a = 0; a < step.args.size(); ++a) {
        const StepArg &arg = step.args[a];
        if (arg.kind != StepArg::Kind::Buffer)
          continue;
        const BufferDesc *b = m.findBuffer(arg.ref);
        if (writes.count(a)) {
          if (b && b->kind == BufferDesc::Kind::Temp && defined.count(arg.ref))
            return makeError("entry point '", ep.name, "': steps[", s,
                             "] writes temp buffer '", arg.ref,
                             "', which an earlier step wrote (each temp is "
                             "written once)");
          writtenHere.push_back(arg.ref);
        } else if (b && b->kind == BufferDesc::Kind::Temp &&
                   !defined.count(arg.ref)) {
          return makeError("entry point '", ep.name, "': steps[", s,
                           "] reads temp buffer '", arg.ref,
                           "' before any step writes it");
        }
      }
      defined.insert(writtenHere.begin(), writtenHere.end());
    }
    for (const std::string &out : ep.outputs)
      if (!defined.count(out) &&
          std::find(ep.inputs.begin(), ep.inputs.end(), out) == ep.inputs.end())
        return makeError("entry point '", ep.name,
                         "': no step writes its "
                         "output '",
                         out, "'");
  }
  return Status::success();
}

} // namespace

bool rt::prefillKeepsLastLogitsOnly(const ArtifactManifest &m) {
  ModelEntry prefill;
  return findModelEntry(m, kEntryPrefill, /*decode=*/false, prefill).ok() &&
         prefill.lastLogitsOnly;
}

const char *rt::deviceName(Device device) {
  return device == Device::Cuda ? "cuda" : "cpu";
}

uint64_t rt::totalPlanBytes(const MemoryPlan &plan) {
  return plan.weightBytes + plan.stateBytes + plan.arenaBytes + plan.ioBytes;
}

StatusOr<MemoryPlan> rt::planSession(const Artifact &artifact,
                                     const SessionOptions &options) {
  const ArtifactManifest &m = artifact.manifest();
  JAMBA_CKPT_RETURN_IF_ERROR(checkDeviceTarget(m.target, options.device));
  JAMBA_CKPT_RETURN_IF_ERROR(checkRanks(m, options));
  int64_t context = options.contextLength;
  if (context == 0)
    context = defaultContextLength(m);
  if (options.batch < 1)
    return makeError("batch must be at least 1, got ", options.batch);
  if (context < 1)
    return makeError("context length must be at least 1, got ", context);
  StatusOr<DimBindings> bindings =
      bindDims(m, options.batch, context, options.seq);
  if (!bindings.ok())
    return bindings.status();
  StatusOr<MemoryPlan> plan = planMemory(m, *bindings);
  if (!plan.ok() || m.ranks == 1)
    return plan;
  // A process binds the weights of its own rank only.
  plan->weightBytes = 0;
  for (const WeightDesc &w : m.weights) {
    uint64_t numel, nbytes;
    if (w.rank == options.rank &&
        ckpt::computeByteSize(w.shape, ckpt::dtypeSize(w.dtype), numel, nbytes))
      plan->weightBytes += nbytes;
  }
  return plan;
}

Executor::Executor(const Artifact &artifact) : art(artifact) {}

StatusOr<std::unique_ptr<Executor>>
Executor::create(const Artifact &artifact, const SessionOptions &options) {
  std::unique_ptr<Executor> ex(new Executor(artifact));
  Status s = ex->prepare(options);
  if (!s.ok())
    return s;
  return ex;
}

Executor::~Executor() {
  if (!cudaSession) {
    for (void *p : allocations)
      std::free(p);
    for (void *h : handles)
      ::dlclose(h);
    return;
  }
  // The kernel files' global destructors unload their GPU modules: they run
  // at dlclose, with the session's context current and its target active.
  // Nothing is left to report their errors to.
  (void)cudaSession->makeCurrent();
  {
    cuda::ActiveCudaTargetScope scope(&cudaSession->kernelTarget());
    for (void *h : handles)
      ::dlclose(h);
    (void)cuda::takeCudaError();
  }
  for (int fd : copyFds)
    ::close(fd);
  cudaSession.reset();
}

std::string Executor::deviceDescription() const {
  return cudaSession ? cudaSession->description() : deviceName(dev);
}

std::vector<cuda::KernelProfile::Entry> Executor::cudaKernelProfile() const {
  if (!cudaSession || !cudaSession->profile())
    return {};
  return cudaSession->profile()->entries();
}

std::vector<cuda::KernelProfile::Entry> Executor::stepProfile() const {
  return cuda::mostTimeFirst(stepTimes);
}

std::string
rt::formatStepProfile(const std::vector<cuda::KernelProfile::Entry> &entries,
                      const ckpt::JambaConfig &config, size_t limit) {
  // "decode__layer3" -> "decode Mamba + MoE layer"; "prefill__embed" ->
  // "prefill embed"; another name as it is.
  auto kindOf = [&config](const std::string &name) {
    size_t sep = name.find("__");
    if (sep == std::string::npos)
      return name;
    std::string entry = name.substr(0, sep), part = name.substr(sep + 2);
    const std::string layer = "layer";
    if (part.compare(0, layer.size(), layer) == 0 &&
        part.size() > layer.size() && part.size() <= layer.size() + 9 &&
        std::all_of(part.begin() + layer.size(), part.end(),
                    [](char c) { return c >= '0' && c <= '9'; })) {
      int64_t index = std::stoll(part.substr(layer.size()));
      if (index < config.numHiddenLayers)
        return entry + " " +
               (config.isAttentionLayer(index) ? "attention" : "Mamba") +
               (config.isMoELayer(index) ? " + MoE" : " + MLP") + " layer";
    }
    return entry + " " + part;
  };
  std::map<std::string, cuda::KernelProfile::Entry> byKind;
  for (const cuda::KernelProfile::Entry &e : entries) {
    cuda::KernelProfile::Entry &kind = byKind[kindOf(e.name)];
    kind.name = kindOf(e.name);
    kind.launches += e.launches;
    kind.milliseconds += e.milliseconds;
  }
  std::vector<cuda::KernelProfile::Entry> kinds = cuda::mostTimeFirst(byKind);
  std::string out;
  cuda::appendProfileTable(out, "step profile by kind", "wall", kinds, limit);
  cuda::appendProfileTable(out, "step profile by step", "wall", entries, limit);
  return out;
}

size_t Executor::cudaGraphCount() const {
  return cudaSession ? cudaSession->graphCount() : 0;
}

Status Executor::openCuda(const SessionOptions &options) {
  const TargetDesc &t = art.manifest().target;
  // GPU ranks sum over each other with NCCL: without it a sharded artifact
  // cannot run, which is said before a device is opened. (The ranks join
  // later, in startGpuRanks.)
  if (int64_t ranks = art.manifest().ranks; ranks > 1) {
    StatusOr<const cuda::NcclLibrary *> nccl = cuda::loadNccl();
    if (!nccl.ok())
      return makeError("the artifact is compiled for ", ranks,
                       " ranks, and GPU ranks all-reduce with NCCL: ",
                       nccl.status().message());
  }
  StatusOr<std::unique_ptr<cuda::CudaSession>> opened =
      cuda::CudaSession::open(options.cudaDevice);
  if (!opened.ok())
    return opened.status();
  cudaSession = std::move(*opened);

  // sm_NN kernels need a device of compute capability NN or newer; on a
  // newer one they run only if the file carries PTX the driver can compile
  // for it (a cubin is tied to its arch), which the runtime cannot see.
  int lowest = INT_MAX;
  bool exact = false;
  for (const std::string &arch : t.archs) {
    int n = std::atoi(arch.c_str() + 3);
    lowest = std::min(lowest, n);
    exact = exact || n == cudaSession->computeCapability();
  }
  if (cudaSession->computeCapability() < lowest)
    return makeError("the artifact targets ", targetText(t), "; ",
                     cudaSession->description(), " is older");
  if (!exact)
    noteList.push_back("the artifact targets " + targetText(t) + ", not " +
                       cudaSession->description() +
                       ": its kernels run only if they carry PTX");

  // Decode through CUDA graphs unless JAMBA_CUDA_GRAPH=0 or the kernels
  // are profiled (events cannot be read inside a graph).
  const char *graphs = std::getenv("JAMBA_CUDA_GRAPH");
  cudaGraphs = !(graphs && std::strcmp(graphs, "0") == 0);
  if (options.profileKernels) {
    cudaSession->startProfile();
    if (cudaGraphs)
      noteList.push_back("profiling the kernels: decode runs without CUDA "
                         "graphs");
    cudaGraphs = false;
  }
  return Status::success();
}

Status Executor::startGpuRanks(const SessionOptions &options) {
  // checkRanks made sure the communicator exists and has the artifact's
  // rank count.
  Communicator &ranks = *options.communicator;
  Status started = cudaSession->startRanks(ranks);
  if (!started.ok())
    return makeError("rank ", ranks.rank(), " of ", ranks.size(), " (",
                     cudaSession->description(), "): ", started.message());
  const cuda::NcclLibrary &nccl = cudaSession->nccl()->library();
  if (cudaGraphs && !cuda::ncclCanBeCaptured(nccl.version)) {
    cudaGraphs = false;
    noteList.push_back("NCCL " + cuda::ncclVersionText(nccl.version) + " (" +
                       nccl.library +
                       ") cannot be captured into CUDA graphs (2.9 and later "
                       "can): decode runs without them");
  }
  return Status::success();
}

Status Executor::checkMemoryLimit(const SessionOptions &options) {
  uint64_t total = totalPlanBytes(memPlan);
  uint64_t limit = options.memoryLimitBytes;
  std::string limitWhat = "the memory limit";
  if (limit == 0 && cudaSession) {
    uint64_t freeBytes = 0, totalBytes = 0;
    JAMBA_CKPT_RETURN_IF_ERROR(cudaSession->memoryInfo(freeBytes, totalBytes));
    limit = freeBytes;
    limitWhat = "the free memory of " + cudaSession->description();
  } else if (limit == 0) {
    long pages = ::sysconf(_SC_PHYS_PAGES), pageSize = ::sysconf(_SC_PAGESIZE);
    if (pages > 0 && pageSize > 0)
      limit = uint64_t(pages) * uint64_t(pageSize);
    limitWhat = "this machine's memory";
  }
  if (limit && total > limit)
    return makeError("the memory plan needs ", bytesText(total), " (weights ",
                     memPlan.weightBytes, ", state ", memPlan.stateBytes,
                     ", arena ", memPlan.arenaBytes, ", io ", memPlan.ioBytes,
                     ") for batch ", boundBatch, " and context ", boundCapacity,
                     "; ", limitWhat, " is ", bytesText(limit));
  return Status::success();
}

StatusOr<void *> Executor::allocateZeroed(uint64_t bytes,
                                          const std::string &what) {
  if (cudaSession) {
    // Zeroed on the stream; prepare() waits for it once at the end.
    StatusOr<void *> p = cudaSession->allocate(alignUp64(bytes), what);
    if (!p.ok())
      return p;
    JAMBA_CKPT_RETURN_IF_ERROR(cudaSession->zero(*p, alignUp64(bytes)));
    return p;
  }
  void *p = allocateHostZeroed(bytes);
  if (!p)
    return makeError("cannot allocate ", bytes, " bytes for ", what);
  allocations.push_back(p);
  return p;
}

Status Executor::bindWeights(int64_t rank,
                             std::map<std::string, void *> &weightPtrs) {
  const ArtifactManifest &m = art.manifest();
  std::vector<std::pair<const WeightDesc *, const ckpt::TensorInfo *>> mine;
  for (const WeightDesc &w : m.weights) {
    if (w.rank != rank)
      continue;
    const ckpt::TensorInfo *t = art.weight(w.name, w.rank);
    if (!t)
      return makeError("weight '", w.name, "' (rank ", w.rank,
                       ") is not mapped");
    mine.emplace_back(&w, t);
  }

  if (cudaSession) {
    // One device allocation holds the rank's weights, each aligned as an
    // allocation of its own would be; they are uploaded once, here.
    std::vector<uint64_t> offsets;
    uint64_t total = 0;
    for (const auto &[w, t] : mine) {
      offsets.push_back(total);
      total += (t->nbytes + kDeviceWeightAlignment - 1) /
               kDeviceWeightAlignment * kDeviceWeightAlignment;
    }
    StatusOr<void *> base = cudaSession->allocate(
        total, ckpt::concat("the weights of rank ", rank));
    if (!base.ok())
      return base.status();
    for (size_t i = 0; i < mine.size(); ++i) {
      void *address = offsetAddress(*base, offsets[i]);
      Status s = cudaSession->upload(address, mine[i].second->data,
                                     mine[i].second->nbytes);
      if (!s.ok())
        return makeError("weight '", mine[i].first->name, "': ", s.message());
      weightPtrs[mine[i].first->name] = address;
    }
    return cudaSession->finish();
  }

  // The mapped data in place, or an aligned copy.
  for (const auto &[w, t] : mine) {
    size_t elem = ckpt::dtypeSize(t->dtype);
    uintptr_t address = reinterpret_cast<uintptr_t>(t->data);
    if (elem > 1 && address % elem != 0) {
      void *copy = allocateHostZeroed(t->nbytes);
      if (!copy)
        return makeError("cannot allocate ", t->nbytes, " bytes for weight '",
                         w->name, "'");
      allocations.push_back(copy);
      if (t->nbytes)
        std::memcpy(copy, t->data, t->nbytes);
      noteList.push_back("weight '" + w->name +
                         "' is not aligned to its element size in " + w->file +
                         "; copied (" + std::to_string(t->nbytes) + " bytes)");
      weightPtrs[w->name] = copy;
    } else {
      weightPtrs[w->name] = const_cast<uint8_t *>(t->data);
    }
  }
  return Status::success();
}

Status Executor::prepare(const SessionOptions &options) {
  const ArtifactManifest &m = art.manifest();
  dev = options.device;
  JAMBA_CKPT_RETURN_IF_ERROR(checkDeviceTarget(m.target, dev));
  if (dev == Device::Cpu)
    JAMBA_CKPT_RETURN_IF_ERROR(checkCpuTarget(m.target, noteList));
  boundRank = options.rank;
  comm = options.communicator;
  profileSteps = options.profileKernels && dev == Device::Cpu;

  // Ranks, dims and the plan, checked before anything is allocated.
  StatusOr<MemoryPlan> plan = planSession(art, options);
  if (!plan.ok())
    return plan.status();
  memPlan = std::move(*plan);
  auto bound = [&](const char *name, int64_t fallback) {
    auto it = memPlan.bindings.find(name);
    return it == memPlan.bindings.end() ? fallback : it->second;
  };
  boundBatch = bound(kDimBatch, options.batch);
  boundSeq = bound(kDimSeq, 1);
  boundCapacity = bound(kDimCapacity, INT64_MAX);
  vocabSize = m.config.vocabSize;
  if (dev == Device::Cuda)
    JAMBA_CKPT_RETURN_IF_ERROR(openCuda(options));
  JAMBA_CKPT_RETURN_IF_ERROR(checkMemoryLimit(options));

  // The model ABI of the two entry points.
  JAMBA_CKPT_RETURN_IF_ERROR(findModelEntry(m, kEntryPrefill, false, prefill));
  JAMBA_CKPT_RETURN_IF_ERROR(findModelEntry(m, kEntryDecode, true, decode));
  // CUDA: the cache lengths' shadows (the buffers start zeroed, and so do
  // they). On the CPU run() reads the buffers themselves.
  if (cudaSession)
    for (const ModelEntry *e : {&prefill, &decode})
      cacheLenShadow[e->cacheLen].assign(
          size_t((memPlan.bufferBytes[e->cacheLen] + 7) / 8), 0);

  // GPU ranks: the NCCL communicators, made collectively once every check
  // a rank makes alone has passed.
  if (cudaSession && m.ranks > 1)
    JAMBA_CKPT_RETURN_IF_ERROR(startGpuRanks(options));

  // Kernels: each file loaded once, each symbol resolved. A CUDA kernels
  // file loads its GPU modules from its global constructors (mgpuModuleLoad
  // and mgpuModuleLoadJIT) as it is opened: the session's context is
  // current and its target active, and a module that fails to load fails
  // the session here.
  std::optional<cuda::ActiveCudaTargetScope> cudaScope;
  std::map<std::string, std::set<size_t>> writtenArgs;
  if (cudaSession) {
    cudaScope.emplace(&cudaSession->kernelTarget());
    // An error left by code outside any run (another session's teardown)
    // is not this session's.
    (void)cuda::takeCudaError();
  }
  std::map<std::string, void *> fileHandles;
  std::map<std::string, void (*)(void **)> kernelFns;
  for (const KernelDesc &k : m.kernels) {
    if (k.abi != "packed")
      return makeError("kernel '", k.name, "': ABI '", k.abi,
                       "' is not supported (this runtime knows 'packed')");
    void *&handle = fileHandles[k.file];
    if (!handle) {
      std::string path = art.filePath(k.file);
      std::string why;
      if (cudaSession) {
        int fd = -1;
        handle = openPrivateCopy(path, fd, why);
        if (handle)
          copyFds.push_back(fd);
      } else {
        // CPU kernels keep no per-session state: one mapping serves every
        // session of the process.
        ::dlerror();
        handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!handle) {
          const char *error = ::dlerror();
          why = error ? error : "unknown dlopen error";
        }
      }
      if (!handle)
        return makeError("kernel file '", k.file, "': cannot load it: ", why);
      handles.push_back(handle);
      if (cudaSession) {
        Status loaded = cuda::takeCudaError();
        if (!loaded.ok())
          return makeError(
              "kernel file '", k.file,
              "': loading its GPU code failed: ", loaded.message());
      }
    }
    ::dlerror();
    void *sym = ::dlsym(handle, k.symbol.c_str());
    const char *why = ::dlerror();
    if (why || !sym)
      return makeError("kernel '", k.name, "': symbol '", k.symbol,
                       "' not found in '", k.file,
                       "': ", why ? why : "null address");
    // dlsym also searches the file's dependencies (libc's abort, exit):
    // the symbol must be a function defined by the kernel file itself.
    if (Status own = checkOwnFunction(handle, sym); !own.ok())
      return makeError("kernel '", k.name, "': symbol '", k.symbol, "' ",
                       own.message(), " ('", k.file, "')");
    kernelFns[k.name] = reinterpret_cast<void (*)(void **)>(sym);
    // A kernel object that exports its argument signature (jamba-compile's
    // do) must be called with exactly that signature: a manifest edited to
    // swap, drop or reshape arguments is refused here, before any call.
    std::string sigName = k.symbol + "_signature";
    if (const char *sig =
            static_cast<const char *>(::dlsym(handle, sigName.c_str()))) {
      // '>' marks the arguments the kernel writes; the manifest does not
      // say, so the comparison leaves the marks out.
      KernelSignature parsed = parseKernelSignature(sig);
      for (const EntryPoint &ep : m.entryPoints)
        for (const Step &step : ep.steps) {
          if (step.kernel != k.name)
            continue;
          std::string expected = stepSignature(m, step, options.rank);
          if (expected != parsed.unmarked)
            return makeError("kernel '", k.name, "' in '", k.file,
                             "' was compiled for the arguments\n  ",
                             parsed.unmarked, "\nbut entry point '", ep.name,
                             "' passes\n  ", expected);
        }
      if (parsed.marked)
        writtenArgs[k.name] = std::move(parsed.written);
    }
  }
  cudaScope.reset();
  JAMBA_CKPT_RETURN_IF_ERROR(checkDataflow(m, writtenArgs));

  // Weights of this rank.
  std::map<std::string, void *> weightPtrs;
  JAMBA_CKPT_RETURN_IF_ERROR(bindWeights(options.rank, weightPtrs));

  // Buffers: state and io get their own zeroed allocation; temps the arena.
  buffers.assign(m.buffers.size(), nullptr);
  rowBytes.assign(m.buffers.size(), std::nullopt);
  for (size_t i = 0; i < m.buffers.size(); ++i) {
    const BufferDesc &b = m.buffers[i];
    if (b.kind == BufferDesc::Kind::Temp)
      continue;
    StatusOr<void *> p =
        allocateZeroed(memPlan.bufferBytes[i], "buffer '" + b.id + "'");
    if (!p.ok())
      return p.status();
    buffers[i] = *p;
    if (b.kind == BufferDesc::Kind::State && !b.shape.empty() &&
        isSymbol(b.shape[0], kDimBatch))
      rowBytes[i] = memPlan.bufferBytes[i] / uint64_t(boundBatch);
  }
  if (memPlan.arenaBytes) {
    StatusOr<void *> p = allocateZeroed(memPlan.arenaBytes, "the arena");
    if (!p.ok())
      return p.status();
    arena = *p;
  }
  if (cudaSession)
    JAMBA_CKPT_RETURN_IF_ERROR(cudaSession->finish());

  // Prepared argument arrays for every entry point.
  std::map<std::string, size_t> bufferIndex;
  for (size_t i = 0; i < m.buffers.size(); ++i)
    bufferIndex[m.buffers[i].id] = i;
  for (size_t e = 0; e < m.entryPoints.size(); ++e) {
    const EntryPoint &ep = m.entryPoints[e];
    PreparedEntry pe;
    pe.name = ep.name;
    for (size_t s = 0; s < ep.steps.size(); ++s) {
      const Step &step = ep.steps[s];
      PreparedStep ps;
      ps.fn = kernelFns[step.kernel];
      ps.kernel = step.kernel;
      if (!ps.fn)
        return makeError("entry point '", ep.name, "': steps[", s,
                         "]: kernel '", step.kernel, "' is not loaded");
      size_t n = step.args.size();
      ps.slots.resize(n);
      ps.values.assign(n, 0);
      for (size_t a = 0; a < n; ++a) {
        const StepArg &arg = step.args[a];
        ArgSlot &slot = ps.slots[a];
        switch (arg.kind) {
        case StepArg::Kind::Buffer: {
          auto it = bufferIndex.find(arg.ref);
          if (it == bufferIndex.end())
            return makeError("entry point '", ep.name, "': steps[", s,
                             "]: unknown buffer '", arg.ref, "'");
          slot.buffer = it->second;
          const BufferDesc &b = m.buffers[it->second];
          if (b.kind == BufferDesc::Kind::Temp) {
            int64_t offset = memPlan.arenaOffsets[e][it->second];
            if (offset < 0)
              return makeError("entry point '", ep.name, "': steps[", s,
                               "]: temp buffer '", arg.ref, "' is not placed");
            slot.kind = ArgSlot::Kind::TempBuffer;
            void *address = offsetAddress(arena, uint64_t(offset));
            std::memcpy(&ps.values[a], &address, sizeof(address));
          } else {
            slot.kind = ArgSlot::Kind::Buffer;
            slot.rowOffset = b.kind == BufferDesc::Kind::State;
            void *address = buffers[it->second];
            std::memcpy(&ps.values[a], &address, sizeof(address));
          }
          break;
        }
        case StepArg::Kind::Weight: {
          auto it = weightPtrs.find(arg.ref);
          if (it == weightPtrs.end())
            return makeError("entry point '", ep.name, "': steps[", s,
                             "]: weight '", arg.ref, "' has no rank ",
                             options.rank, " tensor");
          std::memcpy(&ps.values[a], &it->second, sizeof(void *));
          break;
        }
        case StepArg::Kind::Dim:
          slot.kind = ArgSlot::Kind::Dim;
          if (arg.ref == kDimBatch)
            slot.dim = 0;
          else if (arg.ref == kDimSeq)
            slot.dim = 1;
          else if (arg.ref == kDimCapacity)
            slot.dim = 2;
          else
            return makeError("entry point '", ep.name, "': steps[", s,
                             "]: dimension '", arg.ref, "' is not known");
          break;
        case StepArg::Kind::I64:
          std::memcpy(&ps.values[a], &arg.i64, sizeof(int64_t));
          break;
        case StepArg::Kind::F64:
          std::memcpy(&ps.values[a], &arg.f64, sizeof(double));
          break;
        }
      }
      pe.steps.push_back(std::move(ps));
    }
    entries.push_back(std::move(pe));
  }
  // Pointers into `values` are taken once the vectors no longer move.
  for (PreparedEntry &pe : entries)
    for (PreparedStep &ps : pe.steps) {
      ps.args.resize(ps.values.size());
      for (size_t a = 0; a < ps.values.size(); ++a)
        ps.args[a] = &ps.values[a];
    }
  return Status::success();
}

//===----------------------------------------------------------------------===//
// Buffers
//===----------------------------------------------------------------------===//

int64_t Executor::bufferIndex(std::string_view id) const {
  const ArtifactManifest &m = art.manifest();
  for (size_t i = 0; i < m.buffers.size(); ++i)
    if (m.buffers[i].id == id)
      return int64_t(i);
  return -1;
}

void *Executor::bufferData(std::string_view id) {
  int64_t i = bufferIndex(id);
  return i < 0 ? nullptr : buffers[size_t(i)];
}

Status Executor::checkAccess(size_t index, uint64_t bytes, uint64_t offset,
                             const char *what) const {
  const ArtifactManifest &m = art.manifest();
  if (index >= m.buffers.size())
    return makeError("cannot ", what, " buffer ", index, ": the artifact has ",
                     m.buffers.size(), " buffers");
  const BufferDesc &b = m.buffers[index];
  if (b.kind == BufferDesc::Kind::Temp)
    return makeError("cannot ", what, " buffer '", b.id,
                     "': a temp buffer exists only during a call");
  uint64_t size = memPlan.bufferBytes[index];
  if (offset > size || bytes > size - offset)
    return makeError("cannot ", what, " ", bytes, " bytes at offset ", offset,
                     " of buffer '", b.id, "': it has ", size, " bytes");
  return Status::success();
}

Status Executor::readBuffer(size_t index, void *dst, uint64_t bytes,
                            uint64_t offset) {
  JAMBA_CKPT_RETURN_IF_ERROR(checkAccess(index, bytes, offset, "read"));
  if (bytes == 0)
    return Status::success();
  void *src = offsetAddress(buffers[index], offset);
  if (!cudaSession) {
    std::memcpy(dst, src, bytes);
    return Status::success();
  }
  JAMBA_CKPT_RETURN_IF_ERROR(cudaSession->makeCurrent());
  Status s = cudaSession->download(dst, src, bytes);
  if (!s.ok())
    return makeError("reading buffer '", art.manifest().buffers[index].id,
                     "': ", s.message());
  return Status::success();
}

bool Executor::pinHostMemory(void *dst, uint64_t bytes) {
  return cudaSession && cudaSession->makeCurrent().ok() &&
         cudaSession->pinHost(dst, bytes);
}

void Executor::unpinHostMemory(void *dst) {
  // Unregistered (or at least forgotten) even when the context cannot be
  // made current: the memory is about to be freed, and the session must
  // not unregister it again at its end.
  if (cudaSession) {
    (void)cudaSession->makeCurrent();
    cudaSession->unpinHost(dst);
  }
}

Status Executor::writeBuffer(size_t index, const void *src, uint64_t bytes,
                             uint64_t offset) {
  JAMBA_CKPT_RETURN_IF_ERROR(checkAccess(index, bytes, offset, "write"));
  if (bytes == 0)
    return Status::success();
  if (auto shadow = cacheLenShadow.find(index); shadow != cacheLenShadow.end())
    std::memcpy(reinterpret_cast<char *>(shadow->second.data()) + offset, src,
                bytes);
  void *dst = offsetAddress(buffers[index], offset);
  if (!cudaSession) {
    std::memcpy(dst, src, bytes);
    return Status::success();
  }
  // Complete on return: the caller's `src` may go away right after.
  JAMBA_CKPT_RETURN_IF_ERROR(cudaSession->makeCurrent());
  Status s = cudaSession->upload(dst, src, bytes);
  if (s.ok())
    s = cudaSession->finish();
  if (!s.ok())
    return makeError("writing buffer '", art.manifest().buffers[index].id,
                     "': ", s.message());
  return Status::success();
}

Status Executor::zeroStates(int64_t firstRow, int64_t count) {
  const ArtifactManifest &m = art.manifest();
  if (cudaSession)
    JAMBA_CKPT_RETURN_IF_ERROR(cudaSession->makeCurrent());
  for (size_t i = 0; i < m.buffers.size(); ++i) {
    if (m.buffers[i].kind != BufferDesc::Kind::State)
      continue;
    void *start = buffers[i];
    uint64_t bytes = memPlan.bufferBytes[i];
    if (rowBytes[i] && firstRow >= 0 && count >= 0 &&
        firstRow + count <= boundBatch) {
      start = offsetAddress(buffers[i], uint64_t(firstRow) * *rowBytes[i]);
      bytes = uint64_t(count) * *rowBytes[i];
    }
    if (!cudaSession) {
      std::memset(start, 0, bytes);
      continue;
    }
    Status s = cudaSession->zero(start, bytes);
    if (!s.ok())
      return makeError("zeroing state buffer '", m.buffers[i].id,
                       "': ", s.message());
  }
  return cudaSession ? cudaSession->finish() : Status::success();
}

//===----------------------------------------------------------------------===//
// Running
//===----------------------------------------------------------------------===//

Status Executor::run(std::string_view name, const CallDims &dims) {
  PreparedEntry *entry = nullptr;
  for (PreparedEntry &e : entries)
    if (e.name == name)
      entry = &e;
  if (!entry)
    return makeError("the artifact has no entry point '", name, "'");
  if (dims.batch < 1 || dims.firstRow < 0 ||
      dims.firstRow + dims.batch > boundBatch)
    return makeError("entry point '", name, "': rows ", dims.firstRow, "..",
                     dims.firstRow + dims.batch - 1,
                     " are outside the bound batch of ", boundBatch);
  if (dims.seq < 1 || dims.seq > boundSeq)
    return makeError("entry point '", name, "': seq ", dims.seq,
                     " is outside 1..", boundSeq, " (the bound seq)");
  // The kernels append each row's tokens to its KV cache at cache_len[r]:
  // a length past the capacity would write outside the cache.
  for (const ModelEntry *e : {&prefill, &decode}) {
    if (e->name != name)
      continue;
    // On the CPU the buffer itself (a caller may write it through
    // bufferData); on CUDA what writeBuffer wrote.
    const int64_t *lens =
        cudaSession ? cacheLenShadow.at(e->cacheLen).data()
                    : static_cast<const int64_t *>(buffers[e->cacheLen]);
    for (int64_t r = 0; r < dims.batch; ++r)
      if (lens[r] < 0 || lens[r] > boundCapacity - dims.seq)
        return makeError("entry point '", name, "': cache length ", lens[r],
                         " of row ", r, " plus ", dims.seq,
                         " tokens is outside the KV capacity of ",
                         boundCapacity);
  }
  bool partial = dims.firstRow != 0 || dims.batch != boundBatch;
  int64_t dimValues[3] = {dims.batch, dims.seq, boundCapacity};
  const ArtifactManifest &m = art.manifest();
  // Fill every slot first, so that a refusal happens before any kernel runs.
  for (PreparedStep &ps : entry->steps)
    for (size_t a = 0; a < ps.slots.size(); ++a) {
      const ArgSlot &slot = ps.slots[a];
      if (slot.kind == ArgSlot::Kind::Dim) {
        std::memcpy(&ps.values[a], &dimValues[slot.dim], sizeof(int64_t));
      } else if (slot.kind == ArgSlot::Kind::Buffer && slot.rowOffset) {
        if (partial && !rowBytes[slot.buffer])
          return makeError("entry point '", name, "': state buffer '",
                           m.buffers[slot.buffer].id,
                           "' does not lead with the batch dim, so rows ",
                           dims.firstRow, "..", dims.firstRow + dims.batch - 1,
                           " of ", boundBatch, " cannot run alone");
        void *address = offsetAddress(buffers[slot.buffer],
                                      uint64_t(dims.firstRow) *
                                          rowBytes[slot.buffer].value_or(0));
        std::memcpy(&ps.values[a], &address, sizeof(address));
      }
    }
  // The kernels' all-reduces go to this session's communicator (none: a
  // single rank, they do nothing); an error one of them recorded fails the
  // run after its step.
  ActiveCommunicatorScope scope(comm);
  if (comm) {
    Status stale = comm->takeError();
    if (!stale.ok())
      return makeError("entry point '", name, "': the ", comm->name(),
                       " communicator holds an error from before this run: ",
                       stale.message());
  }
  if (cudaSession)
    return runOnCuda(*entry, name, dims);
  return runSteps(*entry, name);
}

Status Executor::runSteps(PreparedEntry &entry, std::string_view name) {
  for (size_t i = 0; i < entry.steps.size(); ++i) {
    PreparedStep &ps = entry.steps[i];
    if (profileSteps) {
      auto start = std::chrono::steady_clock::now();
      ps.fn(ps.args.data());
      std::chrono::duration<double, std::milli> took =
          std::chrono::steady_clock::now() - start;
      cuda::KernelProfile::Entry &times = stepTimes[ps.kernel];
      times.name = ps.kernel;
      times.launches += 1;
      times.milliseconds += took.count();
    } else {
      ps.fn(ps.args.data());
    }
    Status error = comm ? comm->takeError() : Status::success();
    if (error.ok() && cudaSession)
      error = cuda::takeCudaError();
    if (!error.ok())
      return makeError("entry point '", name, "': steps[", i, "] (kernel '",
                       ps.kernel, "'): ", error.message());
  }
  return Status::success();
}

Status Executor::runOnCuda(PreparedEntry &entry, std::string_view name,
                           const CallDims &dims) {
  auto fail = [&](const Status &s, const char *suffix = "") {
    return makeError("entry point '", name, "': ", s.message(), suffix);
  };
  Status current = cudaSession->makeCurrent();
  if (!current.ok())
    return fail(current);
  // The kernels' mgpu* calls run on this session's driver and stream.
  cuda::ActiveCudaTargetScope scope(&cudaSession->kernelTarget());
  Status stale = cuda::takeCudaError();
  if (!stale.ok())
    return makeError("entry point '", name,
                     "': a CUDA error from before this run: ", stale.message());
  // A failed run left its launches untimed: they are not this run's.
  if (cuda::KernelProfile *profile = cudaSession->profile())
    profile->discard();

  if (!cudaGraphs || name != kEntryDecode) {
    JAMBA_CKPT_RETURN_IF_ERROR(runSteps(entry, name));
  } else {
    // Decode through a CUDA graph (CudaSession.cpp says when that is
    // valid): the first call with these dims runs the steps with the stream
    // in capture mode, which records their GPU work instead of running it,
    // and keeps the instantiated graph; every call then launches the graph.
    const char *hint = " (while capturing a CUDA graph; JAMBA_CUDA_GRAPH=0 "
                       "runs decode without graphs)";
    cuda::CudaSession::GraphKey key{dims.firstRow, dims.batch, dims.seq};
    cuda::CUgraphExec graph = cudaSession->findGraph(key);
    if (!graph) {
      Status begun = cudaSession->beginCapture();
      if (!begun.ok())
        return fail(begun, hint);
      Status steps = runSteps(entry, name);
      if (!steps.ok()) {
        cudaSession->abandonCapture();
        return makeError(steps.message(), hint);
      }
      StatusOr<cuda::CUgraphExec> captured = cudaSession->endCapture(key);
      if (!captured.ok())
        return fail(captured.status(), hint);
      graph = *captured;
    }
    Status launched = cudaSession->launch(graph);
    if (!launched.ok())
      return fail(launched);
  }
  // The kernels' work is asynchronous: wait for it, so that a fault is
  // reported by this run and the outputs can be read.
  Status finished = cudaSession->finish();
  if (!finished.ok())
    return fail(finished);
  if (cuda::KernelProfile *profile = cudaSession->profile()) {
    Status collected = profile->collect();
    if (!collected.ok())
      return fail(collected, " (profiling the kernels)");
  }
  // An NCCL error on another rank or the network is reported
  // asynchronously.
  if (cuda::NcclRanks *nccl = cudaSession->nccl()) {
    Status async = nccl->asyncErrors();
    if (!async.ok())
      return fail(async);
  }
  return Status::success();
}

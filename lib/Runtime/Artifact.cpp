//===- Artifact.cpp - The compiled-model artifact, schema v1 --------------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// Reading, checking and writing the manifest (docs/ArtifactFormat.md), the
// memory plan, and Artifact::open. Uses only the standard library, POSIX and
// the checkpoint library.
//
//===----------------------------------------------------------------------===//

#include "jamba/Runtime/Artifact.h"
#include "jamba/Runtime/Sha256.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <optional>
#include <set>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include <sys/stat.h>

using namespace jamba;
using namespace jamba::rt;
using ckpt::JsonValue;
using ckpt::makeError;

//===----------------------------------------------------------------------===//
// Names and small model helpers
//===----------------------------------------------------------------------===//

const char *rt::targetKindName(TargetDesc::Kind kind) {
  switch (kind) {
  case TargetDesc::Kind::Cpu:
    return "cpu";
  case TargetDesc::Kind::Cuda:
    return "cuda";
  }
  return "?";
}

const char *rt::bufferKindName(BufferDesc::Kind kind) {
  switch (kind) {
  case BufferDesc::Kind::Temp:
    return "temp";
  case BufferDesc::Kind::State:
    return "state";
  case BufferDesc::Kind::Io:
    return "io";
  }
  return "?";
}

const char *rt::bufferRoleName(BufferDesc::Role role) {
  switch (role) {
  case BufferDesc::Role::None:
    return "none";
  case BufferDesc::Role::KvKey:
    return "kv_key";
  case BufferDesc::Role::KvValue:
    return "kv_value";
  case BufferDesc::Role::Conv:
    return "conv";
  case BufferDesc::Role::Ssm:
    return "ssm";
  }
  return "?";
}

const char *rt::stepKindName(Step::Kind kind) {
  switch (kind) {
  case Step::Kind::Kernel:
    return "kernel";
  }
  return "?";
}

DimExpr DimExpr::constant(int64_t value) {
  DimExpr e;
  e.times(value);
  return e;
}

DimExpr DimExpr::symbol(std::string name) {
  DimExpr e;
  e.times(std::move(name));
  return e;
}

DimExpr &DimExpr::times(std::string name) {
  Term t;
  t.symbol = std::move(name);
  terms.push_back(std::move(t));
  return *this;
}

DimExpr &DimExpr::times(int64_t value) {
  Term t;
  t.constant = value;
  terms.push_back(std::move(t));
  return *this;
}

bool DimExpr::isStatic() const {
  return std::all_of(terms.begin(), terms.end(),
                     [](const Term &t) { return t.symbol.empty(); });
}

std::string DimExpr::str() const {
  std::string out;
  for (const Term &t : terms) {
    if (!out.empty())
      out += '*';
    out += t.symbol.empty() ? std::to_string(t.constant) : t.symbol;
  }
  return out;
}

std::string rt::stepSignature(const ArtifactManifest &manifest,
                              const Step &step, int64_t rank) {
  std::string out;
  auto shapeOf = [](std::string &o, ckpt::DType dtype, const auto &dims,
                    auto &&str) {
    o += ckpt::dtypeName(dtype);
    o += '[';
    for (size_t i = 0; i < dims.size(); ++i)
      o += (i ? "," : "") + str(dims[i]);
    o += ']';
  };
  for (size_t i = 0; i < step.args.size(); ++i) {
    const StepArg &a = step.args[i];
    if (i)
      out += ';';
    switch (a.kind) {
    case StepArg::Kind::Dim:
      out += "dim:" + a.ref;
      break;
    case StepArg::Kind::I64:
      out += "i64";
      break;
    case StepArg::Kind::F64:
      out += "f64";
      break;
    case StepArg::Kind::Buffer:
      if (const BufferDesc *b = manifest.findBuffer(a.ref))
        shapeOf(out, b->dtype, b->shape,
                [](const DimExpr &d) { return d.str(); });
      else
        out += '?';
      break;
    case StepArg::Kind::Weight:
      if (const WeightDesc *w = manifest.findWeight(a.ref, rank))
        shapeOf(out, w->dtype, w->shape,
                [](int64_t d) { return std::to_string(d); });
      else
        out += '?';
      break;
    }
  }
  return out;
}

StepArg StepArg::buffer(std::string id) {
  StepArg a;
  a.kind = Kind::Buffer;
  a.ref = std::move(id);
  return a;
}

StepArg StepArg::weight(std::string name) {
  StepArg a;
  a.kind = Kind::Weight;
  a.ref = std::move(name);
  return a;
}

StepArg StepArg::dim(std::string name) {
  StepArg a;
  a.kind = Kind::Dim;
  a.ref = std::move(name);
  return a;
}

StepArg StepArg::integer(int64_t value) {
  StepArg a;
  a.kind = Kind::I64;
  a.i64 = value;
  return a;
}

StepArg StepArg::real(double value) {
  StepArg a;
  a.kind = Kind::F64;
  a.f64 = value;
  return a;
}

void ArtifactManifest::setModelConfig(const ckpt::JambaConfig &newConfig) {
  config = newConfig;
  StatusOr<JsonValue> json =
      ckpt::parseJson(ckpt::configToJson(newConfig), "config");
  model = json.ok() ? std::move(*json) : JsonValue::makeObject();
}

const BufferDesc *ArtifactManifest::findBuffer(std::string_view id) const {
  for (const BufferDesc &b : buffers)
    if (b.id == id)
      return &b;
  return nullptr;
}

const KernelDesc *ArtifactManifest::findKernel(std::string_view name) const {
  for (const KernelDesc &k : kernels)
    if (k.name == name)
      return &k;
  return nullptr;
}

const WeightDesc *ArtifactManifest::findWeight(std::string_view name,
                                               int64_t rank) const {
  for (const WeightDesc &w : weights)
    if (w.name == name && w.rank == rank)
      return &w;
  return nullptr;
}

WeightOrigin WeightOrigin::slice(std::vector<int64_t> shape,
                                 std::vector<std::vector<IndexRun>> take) {
  WeightOrigin from;
  from.kind = Kind::Slice;
  from.shape = std::move(shape);
  from.take = std::move(take);
  return from;
}

WeightOrigin WeightOrigin::zeros(std::vector<int64_t> shape) {
  WeightOrigin from;
  from.kind = Kind::Zeros;
  from.shape = std::move(shape);
  return from;
}

WeightOrigin WeightOrigin::constant(int64_t value) {
  WeightOrigin from;
  from.kind = Kind::Value;
  from.value = value;
  return from;
}

std::vector<int64_t> WeightDesc::checkpointShape() const {
  switch (from.kind) {
  case WeightOrigin::Kind::Whole:
    return shape;
  case WeightOrigin::Kind::Slice:
  case WeightOrigin::Kind::Zeros:
    return from.shape;
  case WeightOrigin::Kind::Value:
    break;
  }
  return {};
}

const EntryPoint *
ArtifactManifest::findEntryPoint(std::string_view name) const {
  for (const EntryPoint &e : entryPoints)
    if (e.name == name)
      return &e;
  return nullptr;
}

const SymbolicDim *ArtifactManifest::findDim(std::string_view name) const {
  for (const SymbolicDim &d : dims)
    if (d.name == name)
      return &d;
  return nullptr;
}

const FileDesc *ArtifactManifest::findFile(std::string_view path) const {
  for (const FileDesc &f : files)
    if (f.path == path)
      return &f;
  return nullptr;
}

//===----------------------------------------------------------------------===//
// Parsing helpers
//===----------------------------------------------------------------------===//

namespace {

/// Builds errors that start with the caller's context ("artifact DIR").
struct Diag {
  const std::string &context;
  template <class... Parts> Status operator()(Parts &&...parts) const {
    return makeError(context, ": ", std::forward<Parts>(parts)...);
  }
};

/// Reads typed fields of one JSON object, naming `where` in messages.
class FieldReader {
public:
  FieldReader(const Diag &diag, const JsonValue &object, std::string where)
      : diag(diag), object(object), where(std::move(where)) {}

  const std::string &location() const { return where; }
  void rename(std::string newWhere) { where = std::move(newWhere); }

  /// Finds `key`; absent is an error when `required`, else `out` = nullptr.
  Status field(const char *key, JsonValue::Kind kind, const JsonValue *&out,
               bool required = true) const {
    out = object.get(key);
    if (!out) {
      if (required)
        return diag(where, ": missing field '", key, "'");
      return Status::success();
    }
    if (out->kind() != kind)
      return diag(where, ": field '", key, "' must be ",
                  article(JsonValue::kindName(kind)), ", got ",
                  out->kindName());
    return Status::success();
  }

  Status string(const char *key, std::string &out, bool required = true) const {
    const JsonValue *v = nullptr;
    JAMBA_CKPT_RETURN_IF_ERROR(
        field(key, JsonValue::Kind::String, v, required));
    if (v)
      out = v->getString();
    return Status::success();
  }

  Status integer(const char *key, int64_t &out, bool required = true) const {
    const JsonValue *v = nullptr;
    JAMBA_CKPT_RETURN_IF_ERROR(
        field(key, JsonValue::Kind::Number, v, required));
    if (!v)
      return Status::success();
    if (!v->isInteger())
      return diag(where, ": field '", key, "' must be an integer, got ",
                  ckpt::writeJson(*v));
    out = v->getInt();
    return Status::success();
  }

  Status array(const char *key, const JsonValue *&out,
               bool required = true) const {
    return field(key, JsonValue::Kind::Array, out, required);
  }

  Status stringArray(const char *key, std::vector<std::string> &out) const {
    const JsonValue *v = nullptr;
    JAMBA_CKPT_RETURN_IF_ERROR(array(key, v));
    out.clear();
    const std::vector<JsonValue> &elements = v->getArray();
    for (size_t i = 0; i < elements.size(); ++i) {
      if (!elements[i].isString())
        return diag(where, ": ", key, "[", i, "] must be a string, got ",
                    elements[i].kindName());
      out.push_back(elements[i].getString());
    }
    return Status::success();
  }

private:
  static std::string article(const char *noun) {
    return std::string(noun[0] == 'a' || noun[0] == 'o' ? "an " : "a ") + noun;
  }

  const Diag &diag;
  const JsonValue &object;
  std::string where;
};

/// Checks that element `i` of `array` (named `where`) is an object.
Status expectObject(const Diag &diag, const JsonValue &element,
                    const std::string &where) {
  if (!element.isObject())
    return diag(where, ": expected an object, got ", element.kindName());
  return Status::success();
}

bool isDimName(std::string_view s) {
  if (s.empty() || s.size() > 64)
    return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!(alpha || (i > 0 && c >= '0' && c <= '9')))
      return false;
  }
  return true;
}

/// Ids of buffers, kernels and entry points: 1..256 characters of
/// [A-Za-z0-9_.:-].
bool isId(std::string_view s) {
  if (s.empty() || s.size() > 256)
    return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' ||
          c == '-'))
      return false;
  return true;
}

/// A C symbol name.
bool isSymbol(std::string_view s) { return s.size() <= 1024 && isDimName(s); }

} // namespace

bool rt::isValidArtifactPath(std::string_view s) {
  if (s.empty() || s.size() > 1024 || s == kManifestFileName)
    return false;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find('/', start);
    if (end == std::string_view::npos)
      end = s.size();
    std::string_view part = s.substr(start, end - start);
    if (part.empty() || part == "." || part == "..")
      return false;
    for (char c : part)
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
            (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
        return false;
    start = end + 1;
  }
  return true;
}

namespace {

/// Parses one shape element: a JSON integer or a "term*term" string.
Status parseDimExpr(const Diag &diag, const JsonValue &v,
                    const std::string &where, DimExpr &out) {
  out.terms.clear();
  if (v.isInteger()) {
    out = DimExpr::constant(v.getInt());
    return Status::success();
  }
  if (!v.isString())
    return diag(where, ": expected an integer or a dimension expression, got ",
                ckpt::writeJson(v));
  const std::string &text = v.getString();
  size_t start = 0;
  while (true) {
    size_t end = text.find('*', start);
    if (end == std::string::npos)
      end = text.size();
    std::string term = text.substr(start, end - start);
    if (isDimName(term)) {
      out.times(term);
    } else if (!term.empty() && term.size() <= 18 &&
               std::all_of(term.begin(), term.end(),
                           [](char c) { return c >= '0' && c <= '9'; })) {
      out.times(static_cast<int64_t>(std::stoll(term)));
    } else {
      return diag(where, ": malformed dimension expression '", text,
                  "' (expected names and integers joined by '*')");
    }
    if (end == text.size())
      break;
    start = end + 1;
  }
  return Status::success();
}

Status parseDType(const Diag &diag, const FieldReader &r, DType &out) {
  std::string name;
  JAMBA_CKPT_RETURN_IF_ERROR(r.string("dtype", name));
  std::optional<DType> dtype = ckpt::parseDType(name);
  if (!dtype)
    return diag(r.location(), ": unknown dtype '", name, "'");
  out = *dtype;
  return Status::success();
}

Status parseTarget(const Diag &diag, const JsonValue &v, TargetDesc &out) {
  FieldReader r(diag, v, "target");
  std::string kind;
  JAMBA_CKPT_RETURN_IF_ERROR(r.string("kind", kind));
  if (kind == "cpu") {
    out.kind = TargetDesc::Kind::Cpu;
    JAMBA_CKPT_RETURN_IF_ERROR(r.string("triple", out.triple));
    JAMBA_CKPT_RETURN_IF_ERROR(r.string("cpu", out.cpu));
    out.archs.clear();
  } else if (kind == "cuda") {
    out.kind = TargetDesc::Kind::Cuda;
    out.triple.clear();
    out.cpu.clear();
    JAMBA_CKPT_RETURN_IF_ERROR(r.stringArray("archs", out.archs));
  } else {
    return diag("target: kind '", kind,
                "' is not supported by this runtime (cpu, cuda)");
  }
  return Status::success();
}

Status parseStep(const Diag &diag, const JsonValue &v, const std::string &where,
                 const SchemaVersion &version, Step &out) {
  JAMBA_CKPT_RETURN_IF_ERROR(expectObject(diag, v, where));
  FieldReader r(diag, v, where);
  std::string kind;
  JAMBA_CKPT_RETURN_IF_ERROR(r.string("kind", kind));
  if (kind != "kernel")
    return diag(where, ": step kind '", kind,
                "' is not supported by this runtime (schema ", kSchemaMajor,
                ".", kSchemaMinor, "; the artifact is schema ", version.major,
                ".", version.minor, ")");
  out.kind = Step::Kind::Kernel;
  JAMBA_CKPT_RETURN_IF_ERROR(r.string("kernel", out.kernel));
  const JsonValue *args = nullptr;
  JAMBA_CKPT_RETURN_IF_ERROR(r.array("args", args));
  out.args.clear();
  const std::vector<JsonValue> &elements = args->getArray();
  for (size_t i = 0; i < elements.size(); ++i) {
    std::string argWhere = ckpt::concat(where, ": args[", i, "]");
    JAMBA_CKPT_RETURN_IF_ERROR(expectObject(diag, elements[i], argWhere));
    static const char *const kKeys[] = {"buffer", "weight", "dim", "i64",
                                        "f64"};
    const char *found = nullptr;
    for (const char *key : kKeys) {
      if (!elements[i].get(key))
        continue;
      if (found)
        return diag(argWhere, ": has both '", found, "' and '", key, "'");
      found = key;
    }
    if (!found)
      return diag(argWhere,
                  ": expected one of 'buffer', 'weight', 'dim', 'i64', 'f64'");
    FieldReader ar(diag, elements[i], argWhere);
    StepArg arg;
    std::string key = found;
    if (key == "buffer" || key == "weight" || key == "dim") {
      arg.kind = key == "buffer"   ? StepArg::Kind::Buffer
                 : key == "weight" ? StepArg::Kind::Weight
                                   : StepArg::Kind::Dim;
      JAMBA_CKPT_RETURN_IF_ERROR(ar.string(found, arg.ref));
    } else if (key == "i64") {
      arg.kind = StepArg::Kind::I64;
      JAMBA_CKPT_RETURN_IF_ERROR(ar.integer(found, arg.i64));
    } else {
      arg.kind = StepArg::Kind::F64;
      const JsonValue *num = nullptr;
      JAMBA_CKPT_RETURN_IF_ERROR(ar.field(found, JsonValue::Kind::Number, num));
      arg.f64 = num->getDouble();
    }
    out.args.push_back(std::move(arg));
  }
  return Status::success();
}

Status parseBuffer(const Diag &diag, const JsonValue &v, std::string where,
                   BufferDesc &out) {
  JAMBA_CKPT_RETURN_IF_ERROR(expectObject(diag, v, where));
  FieldReader r(diag, v, where);
  JAMBA_CKPT_RETURN_IF_ERROR(r.string("id", out.id));
  r.rename(ckpt::concat("buffer '", out.id, "'"));
  JAMBA_CKPT_RETURN_IF_ERROR(parseDType(diag, r, out.dtype));
  const JsonValue *shape = nullptr;
  JAMBA_CKPT_RETURN_IF_ERROR(r.array("shape", shape));
  out.shape.clear();
  const std::vector<JsonValue> &dims = shape->getArray();
  for (size_t i = 0; i < dims.size(); ++i) {
    DimExpr e;
    JAMBA_CKPT_RETURN_IF_ERROR(parseDimExpr(
        diag, dims[i], ckpt::concat(r.location(), ": shape[", i, "]"), e));
    out.shape.push_back(std::move(e));
  }
  std::string kind;
  JAMBA_CKPT_RETURN_IF_ERROR(r.string("kind", kind));
  if (kind == "temp")
    out.kind = BufferDesc::Kind::Temp;
  else if (kind == "state")
    out.kind = BufferDesc::Kind::State;
  else if (kind == "io")
    out.kind = BufferDesc::Kind::Io;
  else
    return diag(r.location(), ": unknown buffer kind '", kind,
                "' (temp, state, io)");
  out.role = BufferDesc::Role::None;
  out.layer = -1;
  if (out.kind != BufferDesc::Kind::State) {
    if (v.get("role") || v.get("layer"))
      return diag(r.location(),
                  ": 'role' and 'layer' are only for state buffers");
    return Status::success();
  }
  std::string role;
  JAMBA_CKPT_RETURN_IF_ERROR(r.string("role", role));
  if (role == "kv_key")
    out.role = BufferDesc::Role::KvKey;
  else if (role == "kv_value")
    out.role = BufferDesc::Role::KvValue;
  else if (role == "conv")
    out.role = BufferDesc::Role::Conv;
  else if (role == "ssm")
    out.role = BufferDesc::Role::Ssm;
  else
    return diag(r.location(), ": unknown state role '", role,
                "' (kv_key, kv_value, conv, ssm)");
  return r.integer("layer", out.layer);
}

/// Reads an integer shape (weights).
Status parseStaticShape(const Diag &diag, const FieldReader &r,
                        std::vector<int64_t> &out) {
  const JsonValue *shape = nullptr;
  JAMBA_CKPT_RETURN_IF_ERROR(r.array("shape", shape));
  out.clear();
  const std::vector<JsonValue> &dims = shape->getArray();
  for (size_t i = 0; i < dims.size(); ++i) {
    if (!dims[i].isInteger())
      return diag(r.location(), ": shape[", i, "] must be an integer, got ",
                  ckpt::writeJson(dims[i]));
    out.push_back(dims[i].getInt());
  }
  return Status::success();
}

/// A weight's optional "from" (schema 1.2): {"value": N}, {"shape": [...],
/// "zeros": true} or {"shape": [...], "take": [[[begin, count], ...], ...]}.
/// The values are checked by validateManifest.
Status parseWeightOrigin(const Diag &diag, const JsonValue &v,
                         const std::string &where, WeightOrigin &out) {
  JAMBA_CKPT_RETURN_IF_ERROR(expectObject(diag, v, where));
  FieldReader r(diag, v, where);
  const bool value = v.get("value"), zeros = v.get("zeros"),
             take = v.get("take");
  if (value + zeros + take != 1)
    return diag(where, ": expected exactly one of 'value', 'zeros' and "
                       "'take'");
  if (value) {
    out.kind = WeightOrigin::Kind::Value;
    return r.integer("value", out.value);
  }
  JAMBA_CKPT_RETURN_IF_ERROR(parseStaticShape(diag, r, out.shape));
  if (zeros) {
    if (!v.get("zeros")->isBool() || !v.get("zeros")->getBool())
      return diag(where, ": field 'zeros' must be true, got ",
                  ckpt::writeJson(*v.get("zeros")));
    out.kind = WeightOrigin::Kind::Zeros;
    return Status::success();
  }
  out.kind = WeightOrigin::Kind::Slice;
  const JsonValue *dims = nullptr;
  JAMBA_CKPT_RETURN_IF_ERROR(r.array("take", dims));
  for (size_t d = 0; d < dims->getArray().size(); ++d) {
    const JsonValue &runs = dims->getArray()[d];
    std::string dimWhere = ckpt::concat(where, ": take[", d, "]");
    if (!runs.isArray())
      return diag(dimWhere, " must be an array of [begin, count] pairs, got ",
                  runs.kindName());
    std::vector<IndexRun> list;
    for (size_t i = 0; i < runs.getArray().size(); ++i) {
      const JsonValue &run = runs.getArray()[i];
      if (!run.isArray() || run.getArray().size() != 2 ||
          !run.getArray()[0].isInteger() || !run.getArray()[1].isInteger())
        return diag(dimWhere, "[", i,
                    "] must be [begin, count] (two integers), got ",
                    ckpt::writeJson(run));
      list.push_back({run.getArray()[0].getInt(), run.getArray()[1].getInt()});
    }
    out.take.push_back(std::move(list));
  }
  return Status::success();
}

} // namespace

//===----------------------------------------------------------------------===//
// parseManifest
//===----------------------------------------------------------------------===//

std::string rt::computeContentHash(const JsonValue &document) {
  JsonValue copy = JsonValue::makeObject();
  if (document.isObject())
    for (const JsonValue::Member &m : document.getObject())
      if (m.first != "content_hash")
        copy.getObject().push_back(m);
  return sha256Hex(ckpt::writeJson(copy));
}

StatusOr<ArtifactManifest> rt::parseManifest(std::string_view text,
                                             const std::string &context) {
  Diag diag{context};
  StatusOr<JsonValue> parsed =
      ckpt::parseJson(text, context + ": " + kManifestFileName);
  if (!parsed.ok())
    return parsed.status();
  const JsonValue &doc = *parsed;
  if (!doc.isObject())
    return diag(kManifestFileName, ": expected a JSON object, got ",
                doc.kindName());
  FieldReader top(diag, doc, kManifestFileName);
  ArtifactManifest m;

  // 1. What this is, and its schema version, before anything else.
  std::string format;
  JAMBA_CKPT_RETURN_IF_ERROR(top.string("format", format));
  if (format != kArtifactFormat)
    return diag("not a jamba artifact: format is '", format, "', expected '",
                kArtifactFormat, "'");
  const JsonValue *version = nullptr;
  JAMBA_CKPT_RETURN_IF_ERROR(top.array("schema_version", version));
  const std::vector<JsonValue> &parts = version->getArray();
  if (parts.size() != 2 || !parts[0].isInteger() || !parts[1].isInteger() ||
      parts[0].getInt() < 0 || parts[1].getInt() < 0)
    return diag("schema_version must be [major, minor] (two non-negative "
                "integers), got ",
                ckpt::writeJson(*version));
  m.version.major = parts[0].getInt();
  m.version.minor = parts[1].getInt();
  if (m.version.major != kSchemaMajor)
    return diag("schema version ", m.version.major, ".", m.version.minor,
                " is not supported by this runtime (", kSchemaMajor, ".x)");

  // 2. The content hash.
  JAMBA_CKPT_RETURN_IF_ERROR(top.string("content_hash", m.contentHash));
  if (!isSha256Hex(m.contentHash))
    return diag("content_hash must be 64 lowercase hex digits, got '",
                m.contentHash, "'");
  std::string actual = computeContentHash(doc);
  if (actual != m.contentHash)
    return diag("content_hash mismatch: ", kManifestFileName, " records ",
                m.contentHash, " but its content hashes to ", actual,
                " (the manifest was edited or corrupted)");

  // 3. Every field this runtime knows, by type.
  JAMBA_CKPT_RETURN_IF_ERROR(top.string("generator", m.generator));
  const JsonValue *model = nullptr;
  JAMBA_CKPT_RETURN_IF_ERROR(
      top.field("model", JsonValue::Kind::Object, model));
  m.model = *model;
  StatusOr<ckpt::JambaConfig> config =
      ckpt::parseConfig(ckpt::writeJson(*model), context + ": model");
  if (!config.ok())
    return config.status();
  m.config = std::move(*config);

  const JsonValue *target = nullptr;
  JAMBA_CKPT_RETURN_IF_ERROR(
      top.field("target", JsonValue::Kind::Object, target));
  JAMBA_CKPT_RETURN_IF_ERROR(parseTarget(diag, *target, m.target));
  JAMBA_CKPT_RETURN_IF_ERROR(top.integer("ranks", m.ranks));

  const JsonValue *dims = nullptr;
  JAMBA_CKPT_RETURN_IF_ERROR(top.array("dims", dims));
  for (size_t i = 0; i < dims->getArray().size(); ++i) {
    const JsonValue &v = dims->getArray()[i];
    std::string where = ckpt::concat("dims[", i, "]");
    JAMBA_CKPT_RETURN_IF_ERROR(expectObject(diag, v, where));
    FieldReader r(diag, v, where);
    SymbolicDim d;
    JAMBA_CKPT_RETURN_IF_ERROR(r.string("name", d.name));
    JAMBA_CKPT_RETURN_IF_ERROR(r.integer("max", d.max));
    m.dims.push_back(std::move(d));
  }

  const JsonValue *entries = nullptr;
  JAMBA_CKPT_RETURN_IF_ERROR(top.array("entry_points", entries));
  for (size_t i = 0; i < entries->getArray().size(); ++i) {
    const JsonValue &v = entries->getArray()[i];
    std::string where = ckpt::concat("entry_points[", i, "]");
    JAMBA_CKPT_RETURN_IF_ERROR(expectObject(diag, v, where));
    FieldReader r(diag, v, where);
    EntryPoint e;
    JAMBA_CKPT_RETURN_IF_ERROR(r.string("name", e.name));
    r.rename(ckpt::concat("entry point '", e.name, "'"));
    JAMBA_CKPT_RETURN_IF_ERROR(r.stringArray("inputs", e.inputs));
    JAMBA_CKPT_RETURN_IF_ERROR(r.stringArray("outputs", e.outputs));
    const JsonValue *steps = nullptr;
    JAMBA_CKPT_RETURN_IF_ERROR(r.array("steps", steps));
    for (size_t s = 0; s < steps->getArray().size(); ++s) {
      Step step;
      JAMBA_CKPT_RETURN_IF_ERROR(parseStep(
          diag, steps->getArray()[s],
          ckpt::concat(r.location(), ": steps[", s, "]"), m.version, step));
      e.steps.push_back(std::move(step));
    }
    m.entryPoints.push_back(std::move(e));
  }

  const JsonValue *buffers = nullptr;
  JAMBA_CKPT_RETURN_IF_ERROR(top.array("buffers", buffers));
  for (size_t i = 0; i < buffers->getArray().size(); ++i) {
    BufferDesc b;
    JAMBA_CKPT_RETURN_IF_ERROR(parseBuffer(
        diag, buffers->getArray()[i], ckpt::concat("buffers[", i, "]"), b));
    m.buffers.push_back(std::move(b));
  }

  const JsonValue *kernels = nullptr;
  JAMBA_CKPT_RETURN_IF_ERROR(top.array("kernels", kernels));
  for (size_t i = 0; i < kernels->getArray().size(); ++i) {
    const JsonValue &v = kernels->getArray()[i];
    std::string where = ckpt::concat("kernels[", i, "]");
    JAMBA_CKPT_RETURN_IF_ERROR(expectObject(diag, v, where));
    FieldReader r(diag, v, where);
    KernelDesc k;
    JAMBA_CKPT_RETURN_IF_ERROR(r.string("name", k.name));
    r.rename(ckpt::concat("kernel '", k.name, "'"));
    JAMBA_CKPT_RETURN_IF_ERROR(r.string("file", k.file));
    JAMBA_CKPT_RETURN_IF_ERROR(r.string("symbol", k.symbol));
    JAMBA_CKPT_RETURN_IF_ERROR(r.string("abi", k.abi));
    JAMBA_CKPT_RETURN_IF_ERROR(r.integer("num_args", k.numArgs));
    m.kernels.push_back(std::move(k));
  }

  const JsonValue *weights = nullptr;
  JAMBA_CKPT_RETURN_IF_ERROR(top.array("weights", weights));
  for (size_t i = 0; i < weights->getArray().size(); ++i) {
    const JsonValue &v = weights->getArray()[i];
    std::string where = ckpt::concat("weights[", i, "]");
    JAMBA_CKPT_RETURN_IF_ERROR(expectObject(diag, v, where));
    FieldReader r(diag, v, where);
    WeightDesc w;
    JAMBA_CKPT_RETURN_IF_ERROR(r.string("name", w.name));
    r.rename(ckpt::concat("weight '", w.name, "'"));
    JAMBA_CKPT_RETURN_IF_ERROR(r.integer("rank", w.rank));
    JAMBA_CKPT_RETURN_IF_ERROR(r.string("file", w.file));
    JAMBA_CKPT_RETURN_IF_ERROR(parseDType(diag, r, w.dtype));
    JAMBA_CKPT_RETURN_IF_ERROR(parseStaticShape(diag, r, w.shape));
    // Optional since schema 1.2.
    if (const JsonValue *from = v.get("from"))
      JAMBA_CKPT_RETURN_IF_ERROR(parseWeightOrigin(
          diag, *from, ckpt::concat(r.location(), ": from"), w.from));
    m.weights.push_back(std::move(w));
  }

  // Optional since schema 1.1.
  if (const JsonValue *tok = doc.get("tokenizer")) {
    JAMBA_CKPT_RETURN_IF_ERROR(expectObject(diag, *tok, "tokenizer"));
    FieldReader r(diag, *tok, "tokenizer");
    JAMBA_CKPT_RETURN_IF_ERROR(r.string("file", m.tokenizerFile));
    if (m.tokenizerFile.empty())
      return diag("tokenizer: file is empty");
  }

  const JsonValue *files = nullptr;
  JAMBA_CKPT_RETURN_IF_ERROR(top.array("files", files));
  for (size_t i = 0; i < files->getArray().size(); ++i) {
    const JsonValue &v = files->getArray()[i];
    std::string where = ckpt::concat("files[", i, "]");
    JAMBA_CKPT_RETURN_IF_ERROR(expectObject(diag, v, where));
    FieldReader r(diag, v, where);
    FileDesc f;
    JAMBA_CKPT_RETURN_IF_ERROR(r.string("path", f.path));
    r.rename(ckpt::concat("files[", i, "] ('", f.path, "')"));
    int64_t size = 0;
    JAMBA_CKPT_RETURN_IF_ERROR(r.integer("size", size));
    if (size < 0)
      return diag(r.location(), ": size ", size, " is negative");
    f.size = static_cast<uint64_t>(size);
    JAMBA_CKPT_RETURN_IF_ERROR(r.string("sha256", f.sha256));
    m.files.push_back(std::move(f));
  }
  return m;
}

//===----------------------------------------------------------------------===//
// validateManifest
//===----------------------------------------------------------------------===//

namespace {

/// Multiplies into `acc`, returning false on overflow past `limit`.
bool mulBounded(uint64_t &acc, uint64_t factor, uint64_t limit) {
  uint64_t result;
  if (__builtin_mul_overflow(acc, factor, &result) || result > limit)
    return false;
  acc = result;
  return true;
}

Status checkDimValue(const Diag &diag, const std::string &where,
                     int64_t value) {
  if (value < 0)
    return diag(where, ": dimension ", value, " is negative");
  if (value > kMaxDimValue)
    return diag(where, ": dimension ", value, " exceeds the limit of ",
                kMaxDimValue);
  return Status::success();
}

Status checkFileRef(const Diag &diag, const ArtifactManifest &m,
                    const std::string &where, const std::string &path,
                    bool checkFiles) {
  if (!isValidArtifactPath(path))
    return diag(where, ": file '", path, "' is not a valid artifact path");
  if (checkFiles && !m.findFile(path))
    return diag(where, ": file '", path, "' is not listed in 'files'");
  return Status::success();
}

/// A weight's "from": a value for an I64 weight; a checkpoint shape of
/// the weight's rank and within the limits; zeros of the weight's shape; runs
/// inside the checkpoint tensor that add up to the weight's shape.
Status checkWeightOrigin(const Diag &diag, const std::string &where,
                         const WeightDesc &w) {
  const WeightOrigin &from = w.from;
  switch (from.kind) {
  case WeightOrigin::Kind::Whole:
    return Status::success();
  case WeightOrigin::Kind::Value:
    if (w.dtype != DType::I64)
      return diag(where, ": from: a value makes I64 weights, this one is ",
                  ckpt::dtypeName(w.dtype));
    return Status::success();
  case WeightOrigin::Kind::Slice:
  case WeightOrigin::Kind::Zeros:
    break;
  }
  if (w.dtype != DType::F32 && w.dtype != DType::BF16 && w.dtype != DType::I8)
    return diag(where, ": from: a ", ckpt::dtypeName(w.dtype),
                " weight cannot be cut from a checkpoint tensor (F32, BF16 "
                "or I8)");
  if (from.shape.size() != w.shape.size())
    return diag(where, ": from: shape ", ckpt::formatShape(from.shape), " has ",
                from.shape.size(), " dimensions, the weight ", w.shape.size());
  uint64_t bytes = sizeof(float);
  for (size_t d = 0; d < from.shape.size(); ++d) {
    JAMBA_CKPT_RETURN_IF_ERROR(checkDimValue(
        diag, ckpt::concat(where, ": from: shape[", d, "]"), from.shape[d]));
    if (!mulBounded(bytes, static_cast<uint64_t>(from.shape[d]),
                    kMaxBufferBytes))
      return diag(where, ": from: shape ", ckpt::formatShape(from.shape),
                  " is larger than ", kMaxBufferBytes, " bytes in f32");
  }
  if (from.kind == WeightOrigin::Kind::Zeros) {
    if (from.shape != w.shape)
      return diag(where, ": from: zeros of shape ",
                  ckpt::formatShape(from.shape), " for a weight of shape ",
                  ckpt::formatShape(w.shape));
    return Status::success();
  }
  if (from.take.size() != from.shape.size())
    return diag(where, ": from: take has ", from.take.size(),
                " lists of runs for ", from.shape.size(), " dimensions");
  for (size_t d = 0; d < from.take.size(); ++d) {
    int64_t total = 0;
    for (size_t i = 0; i < from.take[d].size(); ++i) {
      const IndexRun &run = from.take[d][i];
      // Both are at most 2^31 here, so the sums below cannot overflow.
      if (run.begin < 0 || run.count < 1 || run.begin > from.shape[d] ||
          run.count > from.shape[d] - run.begin)
        return diag(where, ": from: take[", d, "][", i, "] = [", run.begin,
                    ", ", run.count, "] is not a run of indices in [0, ",
                    from.shape[d], ")");
      total += run.count;
      if (total > w.shape[d])
        break;
    }
    if (total != w.shape[d])
      return diag(where, ": from: take[", d, "] takes ", total,
                  total > w.shape[d] ? " or more" : "",
                  " indices, the weight's shape[", d, "] is ", w.shape[d]);
  }
  return Status::success();
}

} // namespace

Status rt::validateManifest(const ArtifactManifest &m,
                            const std::string &context, bool checkFiles) {
  Diag diag{context};
  JAMBA_CKPT_RETURN_IF_ERROR(
      ckpt::validateConfig(m.config, context + ": model"));

  if (m.ranks < 1 || m.ranks > kMaxRanks)
    return diag("ranks must be in [1, ", kMaxRanks, "], got ", m.ranks);

  if (m.target.kind == TargetDesc::Kind::Cpu) {
    if (m.target.triple.empty() || m.target.cpu.empty())
      return diag("target: a cpu target needs a non-empty triple and cpu");
  } else {
    if (m.target.archs.empty())
      return diag("target: a cuda target needs at least one arch");
    for (const std::string &arch : m.target.archs)
      if (arch.size() < 4 || arch.compare(0, 3, "sm_") != 0 ||
          !std::all_of(arch.begin() + 3, arch.end(),
                       [](char c) { return c >= '0' && c <= '9'; }))
        return diag("target: arch '", arch, "' is not of the form sm_NN");
  }

  // Symbolic dimensions.
  DimBindings maxima;
  for (size_t i = 0; i < m.dims.size(); ++i) {
    const SymbolicDim &d = m.dims[i];
    std::string where = ckpt::concat("dims[", i, "]");
    if (d.name != kDimBatch && d.name != kDimSeq && d.name != kDimCapacity)
      return diag(where, ": dimension '", d.name,
                  "' is not known to this runtime (it binds batch, seq, "
                  "capacity)");
    if (maxima.count(d.name))
      return diag(where, ": dimension '", d.name, "' is declared twice");
    if (d.max < 1 || d.max > kMaxDimValue)
      return diag("dimension '", d.name, "': max must be in [1, ", kMaxDimValue,
                  "], got ", d.max);
    maxima[d.name] = d.max;
  }

  // Files.
  std::unordered_set<std::string> paths;
  for (size_t i = 0; i < m.files.size(); ++i) {
    const FileDesc &f = m.files[i];
    std::string where = ckpt::concat("files[", i, "]");
    if (!isValidArtifactPath(f.path))
      return diag(where, ": '", f.path,
                  "' is not a valid artifact path (relative, components of "
                  "[A-Za-z0-9._-], no '.' or '..')");
    if (!paths.insert(f.path).second)
      return diag(where, ": file '", f.path, "' is listed twice");
    if (!isSha256Hex(f.sha256))
      return diag("file '", f.path,
                  "': sha256 must be 64 lowercase hex digits, got '", f.sha256,
                  "'");
  }

  if (!m.tokenizerFile.empty())
    JAMBA_CKPT_RETURN_IF_ERROR(
        checkFileRef(diag, m, "tokenizer", m.tokenizerFile, checkFiles));

  // Kernels.
  std::unordered_map<std::string, const KernelDesc *> kernels;
  for (size_t i = 0; i < m.kernels.size(); ++i) {
    const KernelDesc &k = m.kernels[i];
    if (!isId(k.name))
      return diag("kernels[", i, "]: invalid kernel name '", k.name, "'");
    std::string where = ckpt::concat("kernel '", k.name, "'");
    if (!kernels.emplace(k.name, &k).second)
      return diag(where, ": defined twice");
    JAMBA_CKPT_RETURN_IF_ERROR(
        checkFileRef(diag, m, where, k.file, checkFiles));
    if (!isSymbol(k.symbol))
      return diag(where, ": invalid symbol '", k.symbol, "'");
    if (k.abi != "packed")
      return diag(where, ": abi '", k.abi,
                  "' is not supported by this runtime (packed)");
    if (k.numArgs < 0 || k.numArgs > 4096)
      return diag(where, ": num_args must be in [0, 4096], got ", k.numArgs);
  }

  // Weights.
  std::map<std::pair<std::string, int64_t>, const WeightDesc *> weights;
  std::unordered_map<std::string, int64_t> fileRanks;
  for (size_t i = 0; i < m.weights.size(); ++i) {
    const WeightDesc &w = m.weights[i];
    if (w.name.empty() || w.name.size() > 1024)
      return diag("weights[", i, "]: invalid weight name '", w.name, "'");
    std::string where = ckpt::concat("weight '", w.name, "'");
    if (w.rank < 0 || w.rank >= m.ranks)
      return diag(where, ": rank ", w.rank, " is outside [0, ", m.ranks, ")");
    if (!weights.emplace(std::make_pair(w.name, w.rank), &w).second)
      return diag(where, ": listed twice for rank ", w.rank);
    JAMBA_CKPT_RETURN_IF_ERROR(
        checkFileRef(diag, m, where, w.file, checkFiles));
    auto fileRank = fileRanks.emplace(w.file, w.rank).first;
    if (fileRank->second != w.rank)
      return diag(where, ": file '", w.file, "' holds weights of rank ",
                  fileRank->second, " and of rank ", w.rank);
    if (static_cast<int64_t>(w.shape.size()) > kMaxRank)
      return diag(where, ": ", w.shape.size(), " dimensions (at most ",
                  kMaxRank, ")");
    uint64_t bytes = ckpt::dtypeSize(w.dtype);
    for (size_t d = 0; d < w.shape.size(); ++d) {
      JAMBA_CKPT_RETURN_IF_ERROR(checkDimValue(
          diag, ckpt::concat(where, ": shape[", d, "]"), w.shape[d]));
      if (!mulBounded(bytes, static_cast<uint64_t>(w.shape[d]),
                      kMaxBufferBytes))
        return diag(where, ": shape ", ckpt::formatShape(w.shape),
                    " is larger than ", kMaxBufferBytes, " bytes");
    }
    JAMBA_CKPT_RETURN_IF_ERROR(checkWeightOrigin(diag, where, w));
  }

  // Buffers.
  std::unordered_map<std::string, const BufferDesc *> buffers;
  for (size_t i = 0; i < m.buffers.size(); ++i) {
    const BufferDesc &b = m.buffers[i];
    if (!isId(b.id))
      return diag("buffers[", i, "]: invalid buffer id '", b.id, "'");
    std::string where = ckpt::concat("buffer '", b.id, "'");
    if (!buffers.emplace(b.id, &b).second)
      return diag(where, ": defined twice");
    if (static_cast<int64_t>(b.shape.size()) > kMaxRank)
      return diag(where, ": ", b.shape.size(), " dimensions (at most ",
                  kMaxRank, ")");
    uint64_t bytes = ckpt::dtypeSize(b.dtype);
    for (size_t d = 0; d < b.shape.size(); ++d) {
      std::string dimWhere = ckpt::concat(where, ": shape[", d, "]");
      const DimExpr &e = b.shape[d];
      if (e.terms.empty() || e.terms.size() > 8)
        return diag(dimWhere, ": a dimension needs 1 to 8 terms");
      for (const DimExpr::Term &t : e.terms) {
        uint64_t value;
        if (t.symbol.empty()) {
          JAMBA_CKPT_RETURN_IF_ERROR(checkDimValue(diag, dimWhere, t.constant));
          value = static_cast<uint64_t>(t.constant);
        } else {
          auto it = maxima.find(t.symbol);
          if (it == maxima.end())
            return diag(dimWhere, ": dimension '", t.symbol,
                        "' is not declared in 'dims'");
          value = static_cast<uint64_t>(it->second);
        }
        if (!mulBounded(bytes, value, kMaxBufferBytes))
          return diag(where,
                      ": at the largest declared dims the buffer "
                      "would exceed ",
                      kMaxBufferBytes, " bytes");
      }
    }
    if (b.kind == BufferDesc::Kind::State) {
      if (b.layer < 0 || b.layer >= m.config.numHiddenLayers)
        return diag(where, ": layer ", b.layer, " is outside [0, ",
                    m.config.numHiddenLayers, ")");
      bool attention = m.config.isAttentionLayer(b.layer);
      bool kv = b.role == BufferDesc::Role::KvKey ||
                b.role == BufferDesc::Role::KvValue;
      if (kv != attention)
        return diag(where, ": a ", bufferRoleName(b.role),
                    " state buffer on layer ", b.layer, ", which is ",
                    attention ? "an attention" : "a Mamba", " layer");
    }
  }

  // Entry points and their steps.
  std::unordered_set<std::string> entryNames;
  for (size_t i = 0; i < m.entryPoints.size(); ++i) {
    const EntryPoint &e = m.entryPoints[i];
    if (!isId(e.name))
      return diag("entry_points[", i, "]: invalid entry point name '", e.name,
                  "'");
    std::string where = ckpt::concat("entry point '", e.name, "'");
    if (!entryNames.insert(e.name).second)
      return diag(where, ": defined twice");
    for (int out = 0; out < 2; ++out) {
      const std::vector<std::string> &ids = out ? e.outputs : e.inputs;
      const char *field = out ? "outputs" : "inputs";
      for (size_t j = 0; j < ids.size(); ++j) {
        auto it = buffers.find(ids[j]);
        if (it == buffers.end())
          return diag(where, ": ", field, "[", j, "]: unknown buffer '", ids[j],
                      "'");
        if (it->second->kind == BufferDesc::Kind::Temp)
          return diag(where, ": ", field, "[", j, "]: buffer '", ids[j],
                      "' is a temp buffer (inputs and outputs are io or "
                      "state buffers)");
      }
    }
    for (size_t s = 0; s < e.steps.size(); ++s) {
      const Step &step = e.steps[s];
      std::string stepWhere = ckpt::concat(where, ": steps[", s, "]");
      auto k = kernels.find(step.kernel);
      if (k == kernels.end())
        return diag(stepWhere, ": unknown kernel '", step.kernel, "'");
      if (static_cast<int64_t>(step.args.size()) != k->second->numArgs)
        return diag(stepWhere, ": kernel '", step.kernel, "' takes ",
                    k->second->numArgs, " arguments, the step passes ",
                    step.args.size());
      for (size_t a = 0; a < step.args.size(); ++a) {
        const StepArg &arg = step.args[a];
        std::string argWhere = ckpt::concat(stepWhere, ": args[", a, "]");
        switch (arg.kind) {
        case StepArg::Kind::Buffer:
          if (!buffers.count(arg.ref))
            return diag(argWhere, ": unknown buffer '", arg.ref, "'");
          break;
        case StepArg::Kind::Weight:
          for (int64_t r = 0; r < m.ranks; ++r)
            if (!weights.count(std::make_pair(arg.ref, r)))
              return diag(argWhere, ": unknown weight '", arg.ref,
                          "' (not listed for rank ", r, ")");
          break;
        case StepArg::Kind::Dim:
          if (!maxima.count(arg.ref))
            return diag(argWhere, ": dimension '", arg.ref,
                        "' is not declared in 'dims'");
          break;
        case StepArg::Kind::I64:
          break;
        case StepArg::Kind::F64:
          if (!std::isfinite(arg.f64))
            return diag(argWhere, ": f64 value is not finite");
          break;
        }
      }
    }
  }
  return Status::success();
}

//===----------------------------------------------------------------------===//
// writeManifest
//===----------------------------------------------------------------------===//

namespace {

JsonValue str(const std::string &s) { return JsonValue::makeString(s); }

JsonValue stringArray(const std::vector<std::string> &values) {
  JsonValue a = JsonValue::makeArray();
  for (const std::string &v : values)
    a.push(str(v));
  return a;
}

JsonValue intArray(const std::vector<int64_t> &values) {
  JsonValue a = JsonValue::makeArray();
  for (int64_t v : values)
    a.push(JsonValue::makeInt(v));
  return a;
}

/// A weight's "from", or null for a whole checkpoint tensor (no key).
JsonValue weightOriginToJson(const WeightOrigin &from) {
  JsonValue o = JsonValue::makeObject();
  switch (from.kind) {
  case WeightOrigin::Kind::Whole:
    return JsonValue::makeNull();
  case WeightOrigin::Kind::Value:
    o.set("value", JsonValue::makeInt(from.value));
    return o;
  case WeightOrigin::Kind::Zeros:
    o.set("shape", intArray(from.shape));
    o.set("zeros", JsonValue::makeBool(true));
    return o;
  case WeightOrigin::Kind::Slice: {
    o.set("shape", intArray(from.shape));
    JsonValue take = JsonValue::makeArray();
    for (const std::vector<IndexRun> &runs : from.take) {
      JsonValue list = JsonValue::makeArray();
      for (const IndexRun &run : runs)
        list.push(intArray({run.begin, run.count}));
      take.push(std::move(list));
    }
    o.set("take", std::move(take));
    return o;
  }
  }
  return JsonValue::makeNull();
}

JsonValue dimJson(const DimExpr &e) {
  if (e.terms.size() == 1 && e.terms[0].symbol.empty())
    return JsonValue::makeInt(e.terms[0].constant);
  return str(e.str());
}

JsonValue argJson(const StepArg &a) {
  JsonValue o = JsonValue::makeObject();
  switch (a.kind) {
  case StepArg::Kind::Buffer:
    o.set("buffer", str(a.ref));
    break;
  case StepArg::Kind::Weight:
    o.set("weight", str(a.ref));
    break;
  case StepArg::Kind::Dim:
    o.set("dim", str(a.ref));
    break;
  case StepArg::Kind::I64:
    o.set("i64", JsonValue::makeInt(a.i64));
    break;
  case StepArg::Kind::F64:
    o.set("f64", JsonValue::makeDouble(a.f64));
    break;
  }
  return o;
}

} // namespace

std::string rt::writeManifest(const ArtifactManifest &m) {
  JsonValue doc = JsonValue::makeObject();
  doc.set("format", str(kArtifactFormat));
  doc.set("schema_version", intArray({m.version.major, m.version.minor}));
  doc.set("generator", str(m.generator));
  doc.set("model", m.model);

  JsonValue target = JsonValue::makeObject();
  target.set("kind", str(targetKindName(m.target.kind)));
  if (m.target.kind == TargetDesc::Kind::Cpu) {
    target.set("triple", str(m.target.triple));
    target.set("cpu", str(m.target.cpu));
  } else {
    target.set("archs", stringArray(m.target.archs));
  }
  doc.set("target", std::move(target));
  doc.set("ranks", JsonValue::makeInt(m.ranks));

  JsonValue dims = JsonValue::makeArray();
  for (const SymbolicDim &d : m.dims) {
    JsonValue o = JsonValue::makeObject();
    o.set("name", str(d.name));
    o.set("max", JsonValue::makeInt(d.max));
    dims.push(std::move(o));
  }
  doc.set("dims", std::move(dims));

  JsonValue entries = JsonValue::makeArray();
  for (const EntryPoint &e : m.entryPoints) {
    JsonValue o = JsonValue::makeObject();
    o.set("name", str(e.name));
    o.set("inputs", stringArray(e.inputs));
    o.set("outputs", stringArray(e.outputs));
    JsonValue steps = JsonValue::makeArray();
    for (const Step &s : e.steps) {
      JsonValue so = JsonValue::makeObject();
      so.set("kind", str(stepKindName(s.kind)));
      so.set("kernel", str(s.kernel));
      JsonValue args = JsonValue::makeArray();
      for (const StepArg &a : s.args)
        args.push(argJson(a));
      so.set("args", std::move(args));
      steps.push(std::move(so));
    }
    o.set("steps", std::move(steps));
    entries.push(std::move(o));
  }
  doc.set("entry_points", std::move(entries));

  JsonValue buffers = JsonValue::makeArray();
  for (const BufferDesc &b : m.buffers) {
    JsonValue o = JsonValue::makeObject();
    o.set("id", str(b.id));
    o.set("dtype", str(ckpt::dtypeName(b.dtype)));
    JsonValue shape = JsonValue::makeArray();
    for (const DimExpr &e : b.shape)
      shape.push(dimJson(e));
    o.set("shape", std::move(shape));
    o.set("kind", str(bufferKindName(b.kind)));
    if (b.kind == BufferDesc::Kind::State) {
      o.set("role", str(bufferRoleName(b.role)));
      o.set("layer", JsonValue::makeInt(b.layer));
    }
    buffers.push(std::move(o));
  }
  doc.set("buffers", std::move(buffers));

  JsonValue kernels = JsonValue::makeArray();
  for (const KernelDesc &k : m.kernels) {
    JsonValue o = JsonValue::makeObject();
    o.set("name", str(k.name));
    o.set("file", str(k.file));
    o.set("symbol", str(k.symbol));
    o.set("abi", str(k.abi));
    o.set("num_args", JsonValue::makeInt(k.numArgs));
    kernels.push(std::move(o));
  }
  doc.set("kernels", std::move(kernels));

  JsonValue weights = JsonValue::makeArray();
  for (const WeightDesc &w : m.weights) {
    JsonValue o = JsonValue::makeObject();
    o.set("name", str(w.name));
    o.set("rank", JsonValue::makeInt(w.rank));
    o.set("file", str(w.file));
    o.set("dtype", str(ckpt::dtypeName(w.dtype)));
    o.set("shape", intArray(w.shape));
    if (JsonValue from = weightOriginToJson(w.from); !from.isNull())
      o.set("from", std::move(from));
    weights.push(std::move(o));
  }
  doc.set("weights", std::move(weights));

  if (!m.tokenizerFile.empty()) {
    JsonValue tokenizer = JsonValue::makeObject();
    tokenizer.set("file", str(m.tokenizerFile));
    doc.set("tokenizer", std::move(tokenizer));
  }

  JsonValue files = JsonValue::makeArray();
  for (const FileDesc &f : m.files) {
    JsonValue o = JsonValue::makeObject();
    o.set("path", str(f.path));
    o.set("size", JsonValue::makeInt(static_cast<int64_t>(f.size)));
    o.set("sha256", str(f.sha256));
    files.push(std::move(o));
  }
  doc.set("files", std::move(files));

  doc.set("content_hash", str(computeContentHash(doc)));
  return ckpt::writeJson(doc, 2) + "\n";
}

//===----------------------------------------------------------------------===//
// Sizes and the memory plan
//===----------------------------------------------------------------------===//

int64_t rt::defaultContextLength(const ArtifactManifest &manifest) {
  const SymbolicDim *capacity = manifest.findDim(kDimCapacity);
  return capacity ? std::min<int64_t>(4096, capacity->max) : 4096;
}

StatusOr<DimBindings> rt::bindDims(const ArtifactManifest &m, int64_t batch,
                                   int64_t contextLength,
                                   std::optional<int64_t> seq) {
  DimBindings b;
  for (const SymbolicDim &d : m.dims) {
    int64_t value;
    const char *what;
    if (d.name == kDimBatch) {
      value = batch;
      what = "batch (sequences at once)";
    } else if (d.name == kDimCapacity) {
      value = contextLength;
      what = "capacity (context length)";
    } else if (d.name == kDimSeq) {
      value = seq ? *seq : std::min(contextLength, d.max);
      what = "seq (tokens per call)";
    } else {
      return makeError("dimension '", d.name, "' is not known");
    }
    if (value < 1 || value > d.max)
      return makeError(what, " = ", value,
                       " is outside what the artifact supports (1..", d.max,
                       ")");
    b[d.name] = value;
  }
  return b;
}

StatusOr<int64_t> rt::evalDim(const DimExpr &expr,
                              const DimBindings &bindings) {
  int64_t acc = 1;
  for (const DimExpr::Term &t : expr.terms) {
    int64_t value = t.constant;
    if (!t.symbol.empty()) {
      auto it = bindings.find(t.symbol);
      if (it == bindings.end())
        return makeError("dimension '", t.symbol, "' in '", expr.str(),
                         "' is not bound");
      value = it->second;
    }
    if (value < 0 || __builtin_mul_overflow(acc, value, &acc))
      return makeError("dimension '", expr.str(), "' is out of range");
  }
  return acc;
}

StatusOr<uint64_t> rt::bufferBytes(const BufferDesc &buffer,
                                   const DimBindings &bindings) {
  uint64_t bytes = ckpt::dtypeSize(buffer.dtype);
  for (const DimExpr &e : buffer.shape) {
    StatusOr<int64_t> value = evalDim(e, bindings);
    if (!value.ok())
      return makeError("buffer '", buffer.id, "': ", value.status().message());
    if (!mulBounded(bytes, static_cast<uint64_t>(*value), kMaxBufferBytes))
      return makeError("buffer '", buffer.id, "' would exceed ",
                       kMaxBufferBytes, " bytes");
  }
  return bytes;
}

static uint64_t alignUp(uint64_t value) {
  return (value + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment;
}

StatusOr<MemoryPlan> rt::planMemory(const ArtifactManifest &m,
                                    const DimBindings &bindings) {
  MemoryPlan plan;
  plan.bindings = bindings;
  std::unordered_map<std::string, size_t> index;
  for (size_t i = 0; i < m.buffers.size(); ++i) {
    index[m.buffers[i].id] = i;
    StatusOr<uint64_t> bytes = bufferBytes(m.buffers[i], bindings);
    if (!bytes.ok())
      return bytes.status();
    plan.bufferBytes.push_back(*bytes);
    if (m.buffers[i].kind == BufferDesc::Kind::State)
      plan.stateBytes += alignUp(*bytes);
    else if (m.buffers[i].kind == BufferDesc::Kind::Io)
      plan.ioBytes += alignUp(*bytes);
  }
  for (const WeightDesc &w : m.weights) {
    uint64_t numel, nbytes;
    if (ckpt::computeByteSize(w.shape, ckpt::dtypeSize(w.dtype), numel, nbytes))
      plan.weightBytes += nbytes;
  }

  // Temp buffers: live from first to last use within one entry point; place
  // the largest first, each at the lowest aligned offset that does not
  // overlap a placed buffer with an overlapping live range.
  for (const EntryPoint &e : m.entryPoints) {
    std::vector<int64_t> offsets(m.buffers.size(), -1);
    std::vector<std::pair<size_t, size_t>> live(
        m.buffers.size(), {SIZE_MAX, 0}); // [first, last] step
    for (size_t s = 0; s < e.steps.size(); ++s)
      for (const StepArg &a : e.steps[s].args) {
        if (a.kind != StepArg::Kind::Buffer)
          continue;
        auto it = index.find(a.ref);
        if (it == index.end() ||
            m.buffers[it->second].kind != BufferDesc::Kind::Temp)
          continue;
        live[it->second].first = std::min(live[it->second].first, s);
        live[it->second].second = std::max(live[it->second].second, s);
      }
    std::vector<size_t> order;
    for (size_t i = 0; i < m.buffers.size(); ++i)
      if (live[i].first != SIZE_MAX)
        order.push_back(i);
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      if (plan.bufferBytes[a] != plan.bufferBytes[b])
        return plan.bufferBytes[a] > plan.bufferBytes[b];
      return a < b;
    });
    std::vector<size_t> placed;
    uint64_t arena = 0;
    for (size_t i : order) {
      std::vector<std::pair<uint64_t, uint64_t>> busy; // [begin, end)
      for (size_t p : placed)
        if (live[p].first <= live[i].second && live[i].first <= live[p].second)
          busy.emplace_back(offsets[p], offsets[p] + plan.bufferBytes[p]);
      std::sort(busy.begin(), busy.end());
      uint64_t offset = 0, size = plan.bufferBytes[i];
      for (const auto &range : busy) {
        if (offset + size <= range.first)
          break;
        offset = std::max(offset, alignUp(range.second));
      }
      offsets[i] = static_cast<int64_t>(offset);
      arena = std::max(arena, offset + size);
      placed.push_back(i);
    }
    plan.arenaBytes = std::max(plan.arenaBytes, alignUp(arena));
    plan.arenaOffsets.push_back(std::move(offsets));
  }
  return plan;
}

//===----------------------------------------------------------------------===//
// Artifact::open
//===----------------------------------------------------------------------===//

std::string Artifact::filePath(const std::string &relativePath) const {
  return dir + "/" + relativePath;
}

StatusOr<std::optional<ckpt::Tokenizer>> Artifact::loadTokenizer() const {
  if (man.tokenizerFile.empty())
    return std::optional<ckpt::Tokenizer>();
  StatusOr<ckpt::Tokenizer> loaded = ckpt::Tokenizer::loadForVocabulary(
      filePath(man.tokenizerFile), man.config.vocabSize);
  if (!loaded.ok())
    return makeError("artifact ", dir, ": ", loaded.status().message());
  return std::optional<ckpt::Tokenizer>(std::move(*loaded));
}

const ckpt::TensorInfo *Artifact::weight(std::string_view name,
                                         int64_t rank) const {
  const WeightDesc *w = man.findWeight(name, rank);
  if (!w)
    return nullptr;
  auto it = weightFiles.find(w->file);
  return it == weightFiles.end() ? nullptr : it->second->find(name);
}

/// The weights files only ranks other than `rank` read (none without a
/// rank): those its weights do not name but other ranks' weights do.
static std::set<std::string> otherRanksFiles(const ArtifactManifest &m,
                                             std::optional<int64_t> rank) {
  std::set<std::string> others;
  if (!rank)
    return others;
  std::set<std::string> own;
  for (const WeightDesc &w : m.weights)
    (w.rank == *rank ? own : others).insert(w.file);
  for (const std::string &file : own)
    others.erase(file);
  return others;
}

/// Hashes `files` of `artifact` against their recorded SHA-256, on up to
/// `threads` threads (0: one per hardware thread) taking the files in turn,
/// the largest first (a rank's weights cut into parts and its smaller
/// files: the threads then end close together); one status per file, in
/// the order of `files` (the message names the file).
static std::vector<Status>
hashFilesInParallel(const Artifact &artifact,
                    const std::vector<const FileDesc *> &files,
                    unsigned threads) {
  std::vector<Status> results(files.size(), Status::success());
  auto hashOne = [&](size_t i) {
    const FileDesc &f = *files[i];
    uint64_t hashedBytes = 0;
    StatusOr<std::string> hash =
        sha256File(artifact.filePath(f.path), &hashedBytes);
    if (!hash.ok())
      results[i] = makeError("file '", f.path, "': ", hash.status().message());
    else if (hashedBytes != f.size)
      results[i] = makeError("file '", f.path, "' changed while it was read");
    else if (*hash != f.sha256)
      results[i] = makeError("file '", f.path, "' has SHA-256 ", *hash,
                             ", the manifest records ", f.sha256,
                             " (corrupted or replaced)");
  };
  if (threads == 0)
    threads = std::max(1u, std::thread::hardware_concurrency());
  threads = static_cast<unsigned>(
      std::min<size_t>(threads, std::max<size_t>(files.size(), 1)));
  if (threads <= 1) {
    for (size_t i = 0; i < files.size(); ++i)
      hashOne(i);
    return results;
  }
  std::vector<size_t> bySize(files.size());
  for (size_t i = 0; i < files.size(); ++i)
    bySize[i] = i;
  std::stable_sort(bySize.begin(), bySize.end(), [&](size_t a, size_t b) {
    return files[a]->size > files[b]->size;
  });
  // This thread and threads - 1 more take the files in turn; a thread the
  // system refuses leaves its share to the others.
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next++; i < files.size(); i = next++)
      hashOne(bySize[i]);
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) {
    try {
      pool.emplace_back(work);
    } catch (const std::system_error &) {
      break;
    }
  }
  work();
  for (std::thread &thread : pool)
    thread.join();
  return results;
}

StatusOr<std::unique_ptr<Artifact>> Artifact::open(const std::string &dir,
                                                   const OpenOptions &options) {
  std::string context = "artifact " + dir;
  Diag diag{context};
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0)
    return diag("cannot open the directory: ", std::strerror(errno));
  if (!S_ISDIR(st.st_mode))
    return diag("not a directory");

  std::unique_ptr<Artifact> artifact(new Artifact());
  artifact->dir = dir;
  std::string text;
  Status read = ckpt::readFileToString(artifact->filePath(kManifestFileName),
                                       text, kMaxManifestBytes);
  if (!read.ok())
    return diag("cannot read ", kManifestFileName, ": ", read.message());

  // Syntax, format, schema version, content hash, field types.
  StatusOr<ArtifactManifest> parsed = parseManifest(text, context);
  if (!parsed.ok())
    return parsed.status();
  artifact->man = std::move(*parsed);
  const ArtifactManifest &m = artifact->man;

  // Files: present, regular, of the recorded size; then the hashes of those
  // this process reads.
  for (const FileDesc &f : m.files) {
    if (!isValidArtifactPath(f.path))
      return diag("files: '", f.path, "' is not a valid artifact path");
    std::string path = artifact->filePath(f.path);
    if (::stat(path.c_str(), &st) != 0)
      return diag("file '", f.path, "' is missing: ", std::strerror(errno));
    if (!S_ISREG(st.st_mode))
      return diag("file '", f.path, "' is not a regular file");
    if (static_cast<uint64_t>(st.st_size) != f.size)
      return diag("file '", f.path, "' has ", st.st_size,
                  " bytes, the manifest records ", f.size,
                  " (truncated or replaced)");
  }
  if (options.verifyFileHashes) {
    std::vector<const FileDesc *> toHash;
    std::set<std::string> skipped = otherRanksFiles(m, options.rank);
    for (const FileDesc &f : m.files)
      if (!skipped.count(f.path))
        toHash.push_back(&f);
    std::vector<Status> results =
        hashFilesInParallel(*artifact, toHash, options.hashThreads);
    for (Status &result : results)
      if (!result.ok())
        return diag(result.message());
  }

  // Bounds and cross-references.
  JAMBA_CKPT_RETURN_IF_ERROR(validateManifest(m, context));

  // Weights against their safetensors files.
  std::map<std::string, size_t> listedPerFile;
  for (const WeightDesc &w : m.weights) {
    auto it = artifact->weightFiles.find(w.file);
    if (it == artifact->weightFiles.end()) {
      StatusOr<std::unique_ptr<ckpt::SafeTensorsFile>> file =
          ckpt::SafeTensorsFile::open(artifact->filePath(w.file));
      if (!file.ok())
        return diag("weights file '", w.file, "': ", file.status().message());
      it = artifact->weightFiles.emplace(w.file, std::move(*file)).first;
    }
    ++listedPerFile[w.file];
    const ckpt::TensorInfo *t = it->second->find(w.name);
    std::string where =
        ckpt::concat("weight '", w.name, "' (rank ", w.rank, ")");
    if (!t)
      return diag(where, " is not in ", w.file);
    if (t->dtype != w.dtype)
      return diag(where, ": ", w.file, " holds ", ckpt::dtypeName(t->dtype),
                  ", the manifest records ", ckpt::dtypeName(w.dtype));
    if (t->shape != w.shape)
      return diag(where, ": ", w.file, " holds shape ",
                  ckpt::formatShape(t->shape), ", the manifest records ",
                  ckpt::formatShape(w.shape));
  }
  for (const auto &[path, file] : artifact->weightFiles) {
    if (file->tensors().size() == listedPerFile[path])
      continue;
    for (const ckpt::TensorInfo &t : file->tensors()) {
      bool listed = false;
      for (const WeightDesc &w : m.weights)
        listed |= w.file == path && w.name == t.name;
      if (!listed)
        return diag("tensor '", t.name, "' in ", path,
                    " is not listed in the manifest's weights");
    }
  }
  return artifact;
}

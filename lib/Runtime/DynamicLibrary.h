//===- DynamicLibrary.h - Libraries reached through dlopen ------*- C++ -*-===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// Private to lib/Runtime. The CUDA driver (CudaDriver.cpp), cuBLAS
// (Cublas.cpp) and NCCL (Nccl.cpp) are reached only through dlopen and
// dlsym, and all three are loaded the same way: the first of a list of
// library names that dlopen() opens, its entry points resolved into a struct
// of function pointers (one that lacks a required entry point fails the
// load), once per name and for the life of the process. LibraryLoader is
// that mechanism and writes its messages ("no cuBLAS: dlopen(LIB): WHY
// (tried A, B, C)"); each library keeps its own names, entry points and the
// rest of its loading (cuInit, ncclGetVersion).
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_LIB_RUNTIME_DYNAMICLIBRARY_H
#define JAMBA_LIB_RUNTIME_DYNAMICLIBRARY_H

#include "jamba/Checkpoint/Status.h"

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace jamba {
namespace rt {

/// dlopen(library, RTLD_NOW | RTLD_LOCAL). Null when it fails, and `error`
/// then says why: "dlopen(LIB): WHY".
void *openLibrary(const std::string &library, std::string &error);

/// "A, B, C".
std::string joinLibraryNames(const std::vector<std::string> &libraries);

/// A library LibraryLoader has just opened, whose entry points are being
/// resolved into function pointers.
class LibrarySymbols {
public:
  /// `what` names the kind of library in messages ("cuBLAS").
  LibrarySymbols(void *handle, const std::string &library, const char *what)
      : handle(handle), name(library), what(what) {}

  /// The name it was opened by ("libcublas.so.13").
  const std::string &library() const { return name; }

  /// Resolves the required entry point `symbol` into `slot`. After the
  /// first one the library lacks, the rest are left alone: the load fails
  /// (checkRequired).
  template <class Fn> void require(const char *symbol, Fn &slot) {
    if (!firstMissing && !optional(symbol, slot))
      firstMissing = symbol;
  }

  /// Resolves `symbol` into `slot`; false (and a null `slot`) when the
  /// library lacks it.
  template <class Fn> bool optional(const char *symbol, Fn &slot) {
    void *address = lookup(symbol);
    slot = reinterpret_cast<Fn>(address);
    return address != nullptr;
  }

  /// Success when every required entry point resolved. Otherwise closes the
  /// library and fails with "no WHAT: LIB lacks SYMBOL `hint`", `hint`
  /// saying which versions lack it ("(a cuBLAS older than CUDA 12?)").
  ckpt::Status checkRequired(const char *hint);

  /// dlclose()s the library: its load has failed.
  void close();

private:
  void *lookup(const char *symbol) const;

  void *handle;
  std::string name;
  const char *what;
  const char *firstMissing = nullptr;
};

/// The libraries of one kind (the CUDA driver, cuBLAS, NCCL) the process has
/// loaded, at most one per name, and the names to try. Thread-safe. Loaded
/// libraries are never unloaded and the loader is meant never to be
/// destroyed (allocate it once and keep it), because sessions, handles and
/// kernels may use their entry points at any time, past the process's
/// static destructors.
template <class Library> class LibraryLoader {
public:
  /// Resolves the entry points of the just-opened library into a new
  /// `Library` and does whatever else loading it takes (cuInit), or fails.
  /// A failing resolver closes the library unless it should stay open.
  using Resolve =
      ckpt::StatusOr<std::unique_ptr<Library>> (*)(LibrarySymbols &symbols);

  /// `what` names the kind of library in messages ("cuBLAS": "no cuBLAS:
  /// ..."); `defaults` are the names libraries() tries, in order.
  LibraryLoader(const char *what, std::vector<std::string> defaults,
                Resolve resolve)
      : what(what), defaults(std::move(defaults)), resolve(resolve) {}

  /// The names to try: the one setLibrary() named, else the defaults.
  std::vector<std::string> libraries() const {
    std::lock_guard<std::mutex> lock(mutex);
    if (!override.empty())
      return {override};
    return defaults;
  }

  /// Makes libraries() the one `library` (empty: the defaults again). A
  /// library already loaded stays loaded.
  void setLibrary(const std::string &library) {
    std::lock_guard<std::mutex> lock(mutex);
    override = library;
  }

  /// The library loaded from `library`: the same one on every call once it
  /// loaded. Fails with "no WHAT: dlopen(LIB): WHY" when it does not open,
  /// or with the resolver's error. A failure is not remembered: the next
  /// call tries again.
  ckpt::StatusOr<const Library *> load(const std::string &library) {
    std::lock_guard<std::mutex> lock(mutex);
    if (const Library *loaded = find(library))
      return loaded;
    std::string why;
    void *handle = openLibrary(library, why);
    if (!handle)
      return ckpt::makeError("no ", what, ": ", why);
    return resolveAndKeep(handle, library);
  }

  /// The first of `libraries` that is loaded or that dlopen() opens, as
  /// load() does. Fails with "no WHAT: dlopen(FIRST): WHY (tried A, B, C)"
  /// (WHY: the first library's dlopen error) when none opens, and "no WHAT:
  /// no library to try" for an empty list.
  ckpt::StatusOr<const Library *>
  loadFirst(const std::vector<std::string> &libraries) {
    std::lock_guard<std::mutex> lock(mutex);
    std::string firstError;
    for (const std::string &library : libraries) {
      if (const Library *loaded = find(library))
        return loaded;
      std::string why;
      void *handle = openLibrary(library, why);
      if (!handle) {
        if (firstError.empty())
          firstError = why;
        continue;
      }
      // The first library that opens is the one: one that lacks an entry
      // point is an error rather than a reason to try an older name.
      return resolveAndKeep(handle, library);
    }
    if (libraries.empty())
      return ckpt::makeError("no ", what, ": no library to try");
    return ckpt::makeError("no ", what, ": ", firstError, " (tried ",
                           joinLibraryNames(libraries), ")");
  }

private:
  /// Guarded by mutex.
  const Library *find(const std::string &library) const {
    auto it = loaded.find(library);
    return it == loaded.end() ? nullptr : it->second.get();
  }

  /// Guarded by mutex.
  ckpt::StatusOr<const Library *> resolveAndKeep(void *handle,
                                                 const std::string &library) {
    LibrarySymbols symbols(handle, library, what);
    ckpt::StatusOr<std::unique_ptr<Library>> resolved = resolve(symbols);
    if (!resolved.ok())
      return resolved.status();
    const Library *kept = resolved->get();
    loaded[library] = std::move(*resolved);
    return kept;
  }

  const char *const what;
  const std::vector<std::string> defaults;
  const Resolve resolve;
  mutable std::mutex mutex;
  /// Guarded by mutex.
  std::string override;
  /// Guarded by mutex.
  std::map<std::string, std::unique_ptr<Library>> loaded;
};

} // namespace rt
} // namespace jamba

#endif // JAMBA_LIB_RUNTIME_DYNAMICLIBRARY_H

//===- DynamicLibrary.cpp - Libraries reached through dlopen --------------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//
//
// The parts of LibraryLoader (DynamicLibrary.h) that do not depend on the
// library's struct: opening a library and reading its symbols.
//
//===----------------------------------------------------------------------===//

#include "DynamicLibrary.h"

#include <dlfcn.h>

using namespace jamba;
using namespace jamba::rt;

void *rt::openLibrary(const std::string &library, std::string &error) {
  ::dlerror();
  void *handle = ::dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char *why = ::dlerror();
    error = ckpt::concat("dlopen(", library,
                         "): ", why ? why : "unknown dlopen error");
  }
  return handle;
}

std::string rt::joinLibraryNames(const std::vector<std::string> &libraries) {
  std::string out;
  for (const std::string &library : libraries)
    out += (out.empty() ? "" : ", ") + library;
  return out;
}

void *LibrarySymbols::lookup(const char *symbol) const {
  return ::dlsym(handle, symbol);
}

ckpt::Status LibrarySymbols::checkRequired(const char *hint) {
  if (!firstMissing)
    return ckpt::Status::success();
  close();
  return ckpt::makeError("no ", what, ": ", name, " lacks ", firstMissing, " ",
                         hint);
}

void LibrarySymbols::close() { ::dlclose(handle); }

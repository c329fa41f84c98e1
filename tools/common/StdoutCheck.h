//===- StdoutCheck.h - Did the tool's results reach stdout? -----*- C++ -*-===//
//
// Part of jamba-mlir. A tool that prints its results (generated ids, a
// report) must not exit 0 when they were lost: a full disk or a closed pipe
// shows only when the buffered output is flushed.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_TOOLS_COMMON_STDOUTCHECK_H
#define JAMBA_TOOLS_COMMON_STDOUTCHECK_H

#include "llvm/Support/raw_ostream.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

namespace jamba::tools {

/// Flushes standard output (C stdio); an empty string when everything
/// written to it arrived, otherwise why not.
inline std::string stdoutError() {
  errno = 0;
  if (std::fflush(stdout) != 0 || std::ferror(stdout))
    return std::string("cannot write to standard output: ") +
           (errno ? std::strerror(errno) : "write error");
  return "";
}

/// stdoutError for a tool that prints through llvm::outs() too (which needs
/// LLVMSupport). llvm::outs()'s error is cleared once reported, so that its
/// destructor does not abort.
inline std::string llvmStdoutError() {
  llvm::outs().flush();
  if (llvm::outs().has_error()) {
    std::string why = llvm::outs().error().message();
    llvm::outs().clear_error();
    return "cannot write to standard output: " + why;
  }
  return stdoutError();
}

} // namespace jamba::tools

#endif // JAMBA_TOOLS_COMMON_STDOUTCHECK_H

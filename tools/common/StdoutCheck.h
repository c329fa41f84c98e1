//===- StdoutCheck.h - Did the tool's results reach stdout? -----*- C++ -*-===//
//
// Part of jamba-mlir. A tool that prints its results (generated ids, a
// report) must not exit 0 when they were lost: a full disk or a closed pipe
// shows only when the buffered output is flushed. Standard C only, for the
// MLIR-free jamba-run and jamba-dump; LlvmStdoutCheck.h adds llvm::outs().
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_TOOLS_COMMON_STDOUTCHECK_H
#define JAMBA_TOOLS_COMMON_STDOUTCHECK_H

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

} // namespace jamba::tools

#endif // JAMBA_TOOLS_COMMON_STDOUTCHECK_H

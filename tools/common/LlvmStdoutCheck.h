//===- LlvmStdoutCheck.h - stdout check with llvm::outs() -------*- C++ -*-===//
//
// Part of jamba-mlir. StdoutCheck.h for the tools that print through
// llvm::outs() (and link LLVMSupport).
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_TOOLS_COMMON_LLVMSTDOUTCHECK_H
#define JAMBA_TOOLS_COMMON_LLVMSTDOUTCHECK_H

#include "StdoutCheck.h"

#include "llvm/Support/raw_ostream.h"

namespace jamba::tools {

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

#endif // JAMBA_TOOLS_COMMON_LLVMSTDOUTCHECK_H

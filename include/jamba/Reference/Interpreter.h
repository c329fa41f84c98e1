//===- Interpreter.h - Reference interpreter of the jamba dialect -*- C++
//-*-===//
//
// Part of jamba-mlir. Runs a `func.func` of jamba ops (either level) on
// reference tensors, in float or double, with the kernels of Kernels.h. It is
// independent of every backend: the truth they are tested against.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_REFERENCE_INTERPRETER_H
#define JAMBA_REFERENCE_INTERPRETER_H

#include "jamba/Reference/Tensor.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Support/LLVM.h"

namespace mlir::jamba {

/// Runs `func` on `args` (one tensor per argument, integer values held
/// exactly, read in place and never copied) and returns one tensor per result.
/// Every operand's runtime shape is checked against its IR type and against the
/// other operands before an op runs; a mismatch, an out-of-range token id or
/// expert index, or an unsupported op is reported as an error at the op's
/// location.
template <typename T>
FailureOr<SmallVector<::jamba::ref::Tensor<T>>>
interpretFunction(func::FuncOp func,
                  ArrayRef<const ::jamba::ref::Tensor<T> *> args);

} // namespace mlir::jamba

#endif // JAMBA_REFERENCE_INTERPRETER_H

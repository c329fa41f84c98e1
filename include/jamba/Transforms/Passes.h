//===- Passes.h - jamba transformation passes -------------------*- C++ -*-===//
//
// Part of jamba-mlir.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_TRANSFORMS_PASSES_H
#define JAMBA_TRANSFORMS_PASSES_H

#include "jamba/Dialect/Jamba/IR/JambaDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace mlir::jamba {

#define GEN_PASS_DECL
#include "jamba/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "jamba/Transforms/Passes.h.inc"

} // namespace mlir::jamba

#endif // JAMBA_TRANSFORMS_PASSES_H

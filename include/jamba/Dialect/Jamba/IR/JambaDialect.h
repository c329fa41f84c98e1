//===- JambaDialect.h - The jamba dialect -----------------------*- C++ -*-===//
//
// Part of jamba-mlir.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_DIALECT_JAMBA_IR_JAMBADIALECT_H
#define JAMBA_DIALECT_JAMBA_IR_JAMBADIALECT_H

#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Dialect.h"

#include "jamba/Dialect/Jamba/IR/JambaOpsDialect.h.inc"

#endif // JAMBA_DIALECT_JAMBA_IR_JAMBADIALECT_H

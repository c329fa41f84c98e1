//===- JambaOps.h - jamba dialect operations --------------------*- C++ -*-===//
//
// Part of jamba-mlir.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_DIALECT_JAMBA_IR_JAMBAOPS_H
#define JAMBA_DIALECT_JAMBA_IR_JAMBAOPS_H

#include "jamba/Dialect/Jamba/IR/JambaDialect.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#define GET_OP_CLASSES
#include "jamba/Dialect/Jamba/IR/JambaOps.h.inc"

#endif // JAMBA_DIALECT_JAMBA_IR_JAMBAOPS_H

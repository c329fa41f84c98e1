//===- JambaDialect.cpp - The jamba dialect -------------------------------===//
//
// Part of jamba-mlir.
//
//===----------------------------------------------------------------------===//

#include "jamba/Dialect/Jamba/IR/JambaDialect.h"
#include "jamba/Dialect/Jamba/IR/JambaOps.h"

using namespace mlir;
using namespace mlir::jamba;

#include "jamba/Dialect/Jamba/IR/JambaOpsDialect.cpp.inc"

void JambaDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "jamba/Dialect/Jamba/IR/JambaOps.cpp.inc"
      >();
}

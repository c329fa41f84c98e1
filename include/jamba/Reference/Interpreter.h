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

#include "jamba/Reference/Kernels.h"
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
/// How the interpreter computes (the defaults are SPEC's arithmetic).
struct InterpretOptions {
  /// The inputs of dense linears: exact, or rounded to bf16 as GEMMs on bf16
  /// operands round them (::jamba::ref::GemmInputs).
  ::jamba::ref::GemmInputs gemmInputs = ::jamba::ref::GemmInputs::Exact;
  /// The inputs of the experts' GEMMs: exact, or rounded to bf16 as the
  /// CUDA backend's tensor-core expert GEMM rounds them.
  ::jamba::ref::GemmInputs expertInputs = ::jamba::ref::GemmInputs::Exact;
  /// If set, every router (jamba.moe, jamba.router_topk) min-reduces its
  /// tokens' routing margins into it (::jamba::ref::minRoutingMargins); the
  /// caller sizes it to the call's tokens (batch x sequence).
  std::vector<double> *routingMargins = nullptr;

  /// Routing swaps, a diagnosis aid: token `position` (0: the first token
  /// of the sequence, `firstPosition` the call's first) of router `router`
  /// (the routers of one forward pass, jamba.moe and jamba.router_topk,
  /// numbered from 0 in the order they run) goes to its (k+1)-th best expert
  /// in place of its k-th, as rounding may send it at a near-tie: a run
  /// that matches the reference with the swap and not without it made that
  /// swap.
  struct RoutingSwap {
    int64_t router = 0, position = 0;
  };
  std::vector<RoutingSwap> routingSwaps;
  int64_t firstPosition = 0;
  /// A swap made: the request, the experts it left and took, and the
  /// token's routing margin at that router (::jamba::ref::RoutingSwapMade).
  struct RoutingSwapReport {
    RoutingSwap swap;
    int64_t left = 0, took = 0;
    double margin = 0;
  };
  /// If set, each swap made is appended to it.
  std::vector<RoutingSwapReport> *swapsMade = nullptr;
};

template <typename T>
FailureOr<SmallVector<::jamba::ref::Tensor<T>>>
interpretFunction(func::FuncOp func,
                  ArrayRef<const ::jamba::ref::Tensor<T> *> args,
                  const InterpretOptions &options = {});

} // namespace mlir::jamba

#endif // JAMBA_REFERENCE_INTERPRETER_H

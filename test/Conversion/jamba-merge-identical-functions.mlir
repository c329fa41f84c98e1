// RUN: jamba-opt %s -jamba-merge-identical-functions -split-input-file | FileCheck %s

// Two public functions identical but for their names and their jamba.*
// result attributes: the second keeps its name (and attributes) and calls
// the first. @other adds instead of multiplying and stays; so does @self,
// whose call of itself prints differently from @recurse's.

// CHECK-LABEL: llvm.func @layer3(
// CHECK-SAME:    %[[A:.+]]: !llvm.ptr, %[[N:.+]]: i64) -> (i64 {jamba.temp = "prefill.temp4"})
// CHECK:         llvm.load %[[A]]
// CHECK:         llvm.mul
// CHECK-LABEL: llvm.func @layer5(
// CHECK-SAME:    %[[A5:.+]]: !llvm.ptr, %[[N5:.+]]: i64) -> (i64 {jamba.temp = "prefill.temp6"})
// CHECK-NEXT:    %[[R:.+]] = llvm.call @layer3(%[[A5]], %[[N5]]) : (!llvm.ptr, i64) -> i64
// CHECK-NEXT:    llvm.return %[[R]] : i64
// CHECK-NEXT:  }
// CHECK-LABEL: llvm.func @other(
// CHECK:         llvm.add
// CHECK-NOT:     llvm.call
// CHECK-LABEL: llvm.func @self(
// CHECK:         llvm.call @self(
// CHECK-LABEL: llvm.func @recurse(
// CHECK:         llvm.call @recurse(
// CHECK-LABEL: llvm.func @external(
llvm.func @layer3(%a: !llvm.ptr, %n: i64) -> (i64 {jamba.temp = "prefill.temp4"}) {
  %v = llvm.load %a : !llvm.ptr -> i64
  %m = llvm.mul %v, %n : i64
  llvm.br ^bb1(%m : i64)
^bb1(%x: i64):
  llvm.return %x : i64
}
llvm.func @layer5(%a: !llvm.ptr, %n: i64) -> (i64 {jamba.temp = "prefill.temp6"}) {
  %v = llvm.load %a : !llvm.ptr -> i64
  %m = llvm.mul %v, %n : i64
  llvm.br ^bb1(%m : i64)
^bb1(%x: i64):
  llvm.return %x : i64
}
llvm.func @other(%a: !llvm.ptr, %n: i64) -> (i64 {jamba.temp = "prefill.temp6"}) {
  %v = llvm.load %a : !llvm.ptr -> i64
  %m = llvm.add %v, %n : i64
  llvm.br ^bb1(%m : i64)
^bb1(%x: i64):
  llvm.return %x : i64
}
llvm.func @self(%n: i64) -> i64 {
  %r = llvm.call @self(%n) : (i64) -> i64
  llvm.return %r : i64
}
llvm.func @recurse(%n: i64) -> i64 {
  %r = llvm.call @recurse(%n) : (i64) -> i64
  llvm.return %r : i64
}
llvm.func @external(i64) -> i64

// -----

// A private duplicate is erased; its users (a call and an address) refer to
// the kept function. Different argument attributes other than jamba.* keep
// functions apart.

// CHECK-LABEL: llvm.func internal @body0(
// CHECK-NOT:   llvm.func internal @body1(
// CHECK-LABEL: llvm.func internal @noalias(
// CHECK-SAME:    llvm.noalias
// CHECK-LABEL: llvm.func @caller(
// CHECK:         llvm.call @body0(
// CHECK:         llvm.call @body0(
// CHECK:         llvm.mlir.addressof @body0
// CHECK:         llvm.call @noalias(
llvm.func internal @body0(%a: !llvm.ptr) -> f32 {
  %v = llvm.load %a : !llvm.ptr -> f32
  llvm.return %v : f32
}
llvm.func internal @body1(%a: !llvm.ptr {jamba.weight = "layers.1.x"}) -> f32 {
  %v = llvm.load %a : !llvm.ptr -> f32
  llvm.return %v : f32
}
llvm.func internal @noalias(%a: !llvm.ptr {llvm.noalias}) -> f32 {
  %v = llvm.load %a : !llvm.ptr -> f32
  llvm.return %v : f32
}
llvm.func @caller(%a: !llvm.ptr) -> !llvm.ptr {
  %0 = llvm.call @body0(%a) : (!llvm.ptr) -> f32
  %1 = llvm.call @body1(%a) : (!llvm.ptr) -> f32
  %f = llvm.mlir.addressof @body1 : !llvm.ptr
  %2 = llvm.call @noalias(%a) : (!llvm.ptr) -> f32
  llvm.return %f : !llvm.ptr
}

//===- JambaOpsTest.cpp - C++ API tests of the jamba ops ------------------===//
//
// Part of jamba-mlir. Parses IR from strings and checks what lit cannot:
// the ops' C++ accessors and the exact diagnostics the verifiers emit.
//
//===----------------------------------------------------------------------===//

#include "jamba/Dialect/Jamba/IR/JambaOps.h"
#include "jamba/Dialect/Jamba/IR/JambaDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"

#include <gtest/gtest.h>

using namespace mlir;
using namespace mlir::jamba;

namespace {

class JambaOpsTest : public ::testing::Test {
protected:
  JambaOpsTest() {
    context.loadDialect<JambaDialect, func::FuncDialect, arith::ArithDialect>();
  }

  /// Parses `ir`; on failure the diagnostics are collected in `errors`.
  OwningOpRef<ModuleOp> parse(StringRef ir) {
    errors.clear();
    ScopedDiagnosticHandler handler(&context, [&](Diagnostic &diag) {
      errors.push_back(diag.str());
      return success();
    });
    return parseSourceString<ModuleOp>(ir, &context);
  }

  template <typename OpT> OpT findFirst(ModuleOp module) {
    OpT found;
    module.walk([&](OpT op) {
      if (!found)
        found = op;
    });
    return found;
  }

  MLIRContext context;
  std::vector<std::string> errors;
};

constexpr const char *kMixer = R"mlir(
func.func @mixer(%x: tensor<2x?x64xf32>, %cs: tensor<2x128x3xf32>,
                 %ss: tensor<2x128x8xf32>, %w_in: tensor<256x64xf32>,
                 %w_conv: tensor<128x1x4xf32>, %b_conv: tensor<128xf32>,
                 %w_x: tensor<24x128xf32>, %n_dt: tensor<8xf32>,
                 %n_b: tensor<8xf32>, %n_c: tensor<8xf32>,
                 %w_dt: tensor<128x8xf32>, %b_dt: tensor<128xf32>,
                 %a_log: tensor<128x8xf32>, %d: tensor<128xf32>,
                 %w_out: tensor<64x128xf32>) -> tensor<2x?x64xf32> {
  %out, %conv, %ssm = jamba.mamba_mixer %x, state(%cs, %ss)
      in_proj(%w_in) conv1d(%w_conv, %b_conv) x_proj(%w_x)
      norms(%n_dt, %n_b, %n_c) dt_proj(%w_dt, %b_dt) ssm(%a_log, %d)
      out_proj(%w_out) {epsilon = 1.0e-05 : f64}
      : (tensor<2x?x64xf32>, tensor<2x128x3xf32>, tensor<2x128x8xf32>,
         tensor<256x64xf32>, tensor<128x1x4xf32>, tensor<128xf32>,
         tensor<24x128xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>,
         tensor<128x8xf32>, tensor<128xf32>, tensor<128x8xf32>,
         tensor<128xf32>, tensor<64x128xf32>)
      -> (tensor<2x?x64xf32>, tensor<2x128x3xf32>, tensor<2x128x8xf32>)
  return %out : tensor<2x?x64xf32>
}
)mlir";

TEST_F(JambaOpsTest, MambaMixerAccessorsDeriveSizesFromWeights) {
  OwningOpRef<ModuleOp> module = parse(kMixer);
  ASSERT_TRUE(module) << (errors.empty() ? "" : errors.front());
  auto mixer = findFirst<MambaMixerOp>(*module);
  ASSERT_TRUE(mixer);
  EXPECT_EQ(mixer.getDInner(), 128);
  EXPECT_EQ(mixer.getDState(), 8);
  EXPECT_EQ(mixer.getDConv(), 4);
  EXPECT_EQ(mixer.getDtRank(), 8);
  EXPECT_DOUBLE_EQ(mixer.getEpsilon().convertToDouble(), 1e-5);
  // Optional operands that were not written are null.
  EXPECT_TRUE(mixer.getConvBias());
  EXPECT_FALSE(mixer.getInProjBias());
  EXPECT_FALSE(mixer.getOutProjBias());
}

TEST_F(JambaOpsTest, MambaMixerRejectsMismatchedDState) {
  std::string ir = kMixer;
  // Make A_log's d_state disagree with the SSM state's.
  size_t pos = ir.find("%a_log: tensor<128x8xf32>");
  ASSERT_NE(pos, std::string::npos);
  ir.replace(pos, strlen("%a_log: tensor<128x8xf32>"),
             "%a_log: tensor<128x9xf32>");
  pos = ir.find("tensor<128x8xf32>, tensor<128xf32>, tensor<128x8xf32>,");
  ASSERT_NE(pos, std::string::npos);
  ir.replace(pos,
             strlen("tensor<128x8xf32>, tensor<128xf32>, tensor<128x8xf32>,"),
             "tensor<128x8xf32>, tensor<128xf32>, tensor<128x9xf32>,");
  OwningOpRef<ModuleOp> module = parse(ir);
  EXPECT_FALSE(module);
  ASSERT_EQ(errors.size(), 1u);
  // The first relation that breaks is the SSM state against d_state = 9.
  EXPECT_NE(errors.front().find("'ssm_state' dimension 2 to be d_state = 9"),
            std::string::npos)
      << errors.front();
}

TEST_F(JambaOpsTest, AttentionHeadDimIsDerived) {
  OwningOpRef<ModuleOp> module = parse(R"mlir(
func.func @attn(%x: tensor<1x?x64xf32>, %wq: tensor<64x64xf32>,
                %wk: tensor<32x64xf32>, %wv: tensor<32x64xf32>,
                %wo: tensor<64x64xf32>, %k: tensor<1x2x16x16xf32>,
                %v: tensor<1x2x16x16xf32>, %len: tensor<1xi64>) {
  %o, %k2, %v2 = jamba.attention %x, %wq, %wk, %wv, %wo, cache(%k, %v, %len)
      {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : (tensor<1x?x64xf32>, tensor<64x64xf32>, tensor<32x64xf32>,
         tensor<32x64xf32>, tensor<64x64xf32>, tensor<1x2x16x16xf32>,
         tensor<1x2x16x16xf32>, tensor<1xi64>)
      -> (tensor<1x?x64xf32>, tensor<1x2x16x16xf32>, tensor<1x2x16x16xf32>)
  return
}
)mlir");
  ASSERT_TRUE(module) << (errors.empty() ? "" : errors.front());
  auto attn = findFirst<AttentionOp>(*module);
  ASSERT_TRUE(attn);
  EXPECT_EQ(attn.getHeadDim(), 16);
  EXPECT_EQ(attn.getNumHeads(), 4u);
  EXPECT_EQ(attn.getNumKvHeads(), 2u);
}

TEST_F(JambaOpsTest, ExpertGemmScaleFollowsWeightType) {
  OwningOpRef<ModuleOp> module = parse(R"mlir(
func.func @q(%x: tensor<?x64xf32>, %q: tensor<4x128x64xi8>,
             %s: tensor<4x128xf32>, %idx: tensor<?x2xi32>) -> tensor<?x2x128xf32> {
  %y = jamba.expert_gemm %x, %q scale(%s) indices(%idx)
      : (tensor<?x64xf32>, tensor<4x128x64xi8>, tensor<4x128xf32>,
         tensor<?x2xi32>) -> tensor<?x2x128xf32>
  return %y : tensor<?x2x128xf32>
}
)mlir");
  ASSERT_TRUE(module) << (errors.empty() ? "" : errors.front());
  auto gemm = findFirst<ExpertGemmOp>(*module);
  ASSERT_TRUE(gemm);
  EXPECT_TRUE(gemm.getScale());
  EXPECT_FALSE(gemm.getRouteWeights());

  // The same op without its scale is refused.
  module = parse(R"mlir(
func.func @q(%x: tensor<?x64xf32>, %q: tensor<4x128x64xi8>,
             %idx: tensor<?x2xi32>) -> tensor<?x2x128xf32> {
  %y = jamba.expert_gemm %x, %q indices(%idx)
      : (tensor<?x64xf32>, tensor<4x128x64xi8>, tensor<?x2xi32>)
      -> tensor<?x2x128xf32>
  return %y : tensor<?x2x128xf32>
}
)mlir");
  EXPECT_FALSE(module);
  ASSERT_FALSE(errors.empty());
  EXPECT_NE(errors.front().find("expected a 'scale' operand with int8 weights"),
            std::string::npos)
      << errors.front();
}

TEST_F(JambaOpsTest, BuilderCreatesVerifiedRouterTopK) {
  OpBuilder builder(&context);
  Location loc = builder.getUnknownLoc();
  OwningOpRef<ModuleOp> module = ModuleOp::create(loc);
  builder.setInsertionPointToEnd(module->getBody());
  auto f32 = builder.getF32Type();
  auto logitsType = RankedTensorType::get({5, 4}, f32);
  auto func = func::FuncOp::create(builder, loc, "route",
                                   builder.getFunctionType({logitsType}, {}));
  Block *body = func.addEntryBlock();
  builder.setInsertionPointToEnd(body);
  auto topk = RouterTopKOp::create(
      builder, loc, RankedTensorType::get({5, 2}, f32),
      RankedTensorType::get({5, 2}, builder.getI32Type()), body->getArgument(0),
      /*top_k=*/2, /*normalize=*/false);
  func::ReturnOp::create(builder, loc);
  EXPECT_TRUE(succeeded(verify(*module)));
  EXPECT_EQ(topk.getTopK(), 2u);
  EXPECT_FALSE(topk.getNormalize());

  // top_k larger than the number of experts fails verification.
  topk->setAttr("top_k", builder.getI64IntegerAttr(5));
  errors.clear();
  ScopedDiagnosticHandler handler(&context, [&](Diagnostic &diag) {
    errors.push_back(diag.str());
    return success();
  });
  EXPECT_TRUE(failed(verify(*module)));
  ASSERT_FALSE(errors.empty());
  EXPECT_NE(errors.front().find("top_k (5) to be at most the number of "
                                "experts (4)"),
            std::string::npos)
      << errors.front();
}

} // namespace

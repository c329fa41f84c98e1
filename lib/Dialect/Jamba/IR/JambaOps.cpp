//===- JambaOps.cpp - jamba dialect operations ----------------------------===//
//
// Part of jamba-mlir. Verifiers of the jamba ops. ODS checks element types
// and attribute ranges; the shape relations between operands live here.
// Dynamic dimensions are accepted wherever a static size is expected: the
// executor checks them when the sizes are known.
//
//===----------------------------------------------------------------------===//

#include "jamba/Dialect/Jamba/IR/JambaOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"

#include <limits>

using namespace mlir;
using namespace mlir::jamba;

//===----------------------------------------------------------------------===//
// Shared shape checks
//===----------------------------------------------------------------------===//

static ShapedType shapedOf(Value v) { return cast<ShapedType>(v.getType()); }

static int64_t dimOf(Value v, unsigned dim) {
  return shapedOf(v).getDimSize(dim);
}

/// Product of two sizes, dynamic when either is.
static int64_t mulDims(int64_t a, int64_t b) {
  if (ShapedType::isDynamic(a) || ShapedType::isDynamic(b))
    return ShapedType::kDynamic;
  return a * b;
}

/// Sum of two sizes, dynamic when either is.
static int64_t addDims(int64_t a, int64_t b) {
  if (ShapedType::isDynamic(a) || ShapedType::isDynamic(b))
    return ShapedType::kDynamic;
  return a + b;
}

/// Checks that `v` (the operand or result called `name`) has rank `rank`.
static LogicalResult checkRank(Operation *op, StringRef name, Value v,
                               int64_t rank) {
  int64_t actual = shapedOf(v).getRank();
  if (actual == rank)
    return success();
  return op->emitOpError() << "expected '" << name << "' to have rank " << rank
                           << ", got " << actual;
}

/// Checks that dimension `dim` of `v` is `expected` (described by `what`);
/// a dynamic size on either side is accepted.
static LogicalResult checkDim(Operation *op, StringRef name, Value v,
                              unsigned dim, int64_t expected, StringRef what) {
  int64_t actual = dimOf(v, dim);
  if (ShapedType::isDynamic(actual) || ShapedType::isDynamic(expected) ||
      actual == expected)
    return success();
  return op->emitOpError() << "expected '" << name << "' dimension " << dim
                           << " to be " << what << " = " << expected << ", got "
                           << actual;
}

/// Checks rank and every dimension of `v` against `shape`, whose entries are
/// described by `what` (one name per dimension).
static LogicalResult checkShape(Operation *op, StringRef name, Value v,
                                ArrayRef<int64_t> shape,
                                ArrayRef<StringRef> what) {
  assert(shape.size() == what.size() && "one description per dimension");
  if (failed(checkRank(op, name, v, shape.size())))
    return failure();
  for (auto [i, size] : llvm::enumerate(shape))
    if (failed(checkDim(op, name, v, i, size, what[i])))
      return failure();
  return success();
}

/// Checks that each named size is dynamic or at least 1: a Mamba step over
/// no sequences, channels or states has no meaning, and static zeros make
/// its decomposition and lowering slice past the end.
static LogicalResult
checkNonEmptySizes(Operation *op,
                   ArrayRef<std::pair<StringRef, int64_t>> sizes) {
  for (auto [name, size] : sizes)
    if (size == 0)
      return op->emitOpError() << "expected " << name << " >= 1, got 0";
  return success();
}

/// Checks an optional `expert_offset` (ODS makes it a 1-D i64 tensor): it
/// holds one value, the rank's first expert.
static LogicalResult checkExpertOffset(Operation *op, Value offset) {
  if (!offset)
    return success();
  int64_t size = dimOf(offset, 0);
  if (ShapedType::isDynamic(size) || size == 1)
    return success();
  return op->emitOpError() << "expected 'expert_offset' to hold one value "
                              "(the rank's first expert), got "
                           << size;
}

/// Checks that `a` and `b` have the same element type.
static LogicalResult checkSameElementType(Operation *op, StringRef nameA,
                                          Value a, StringRef nameB, Value b) {
  Type ta = shapedOf(a).getElementType(), tb = shapedOf(b).getElementType();
  if (ta == tb)
    return success();
  return op->emitOpError() << "expected '" << nameA << "' and '" << nameB
                           << "' to have the same element type, got " << ta
                           << " and " << tb;
}

/// Checks that `a` and `b` have the same type.
static LogicalResult checkSameType(Operation *op, StringRef nameA, Value a,
                                   StringRef nameB, Value b) {
  if (a.getType() == b.getType())
    return success();
  return op->emitOpError() << "expected '" << nameA << "' and '" << nameB
                           << "' to have the same type, got " << a.getType()
                           << " and " << b.getType();
}

/// Checks that an epsilon attribute is positive.
static LogicalResult checkEpsilon(Operation *op, double epsilon) {
  if (epsilon > 0.0)
    return success();
  return op->emitOpError() << "expected a positive epsilon, got " << epsilon;
}

/// Checks that query heads share kv heads in whole groups (GQA).
static LogicalResult checkHeadGroups(Operation *op, int64_t heads,
                                     int64_t kvHeads) {
  if (heads % kvHeads == 0)
    return success();
  return op->emitOpError() << "expected num_heads (" << heads
                           << ") to be a multiple of num_kv_heads (" << kvHeads
                           << ")";
}

/// Checks the KV cache operands the attention ops share: both caches
/// [batch, num_kv_heads, capacity, head_dim] of one type, `cache_len`
/// [batch], and the updated caches of the caches' types.
static LogicalResult checkKvCache(Operation *op, Value kCache, Value vCache,
                                  Value cacheLen, Value newKCache,
                                  Value newVCache, int64_t batch,
                                  int64_t kvHeads, int64_t headDim) {
  return failure(
      failed(checkRank(op, "k_cache", kCache, 4)) ||
      failed(checkShape(op, "k_cache", kCache,
                        {batch, kvHeads, dimOf(kCache, 2), headDim},
                        {"batch", "num_kv_heads", "capacity", "head_dim"})) ||
      failed(checkSameType(op, "k_cache", kCache, "v_cache", vCache)) ||
      failed(checkShape(op, "cache_len", cacheLen, {batch}, {"batch"})) ||
      failed(checkSameType(op, "k_cache", kCache, "new_k_cache", newKCache)) ||
      failed(checkSameType(op, "v_cache", vCache, "new_v_cache", newVCache)));
}

/// Checks a SwiGLU FFN's weights `gate, up [(E,) I, H]`, `down [(E,) H, I]`
/// against `hidden`; `lead` holds the expert count when they are stacked.
static LogicalResult checkFFNWeights(Operation *op, Value gate, Value up,
                                     Value down, int64_t hidden,
                                     std::optional<int64_t> experts) {
  SmallVector<int64_t> gateShape, downShape;
  SmallVector<StringRef> gateWhat, downWhat;
  if (experts) {
    gateShape.push_back(*experts);
    downShape.push_back(*experts);
    gateWhat.push_back("num_experts");
    downWhat.push_back("num_experts");
  }
  unsigned iDim = experts ? 1 : 0;
  if (failed(checkRank(op, "gate_weight", gate, gateShape.size() + 2)))
    return failure();
  int64_t inter = dimOf(gate, iDim);
  gateShape.append({inter, hidden});
  gateWhat.append({"intermediate_size", "hidden_size"});
  downShape.append({hidden, inter});
  downWhat.append({"hidden_size", "intermediate_size"});
  return failure(
      failed(checkShape(op, "gate_weight", gate, gateShape, gateWhat)) ||
      failed(checkShape(op, "up_weight", up, gateShape, gateWhat)) ||
      failed(checkShape(op, "down_weight", down, downShape, downWhat)));
}

/// Checks an int8-or-float weight and its optional scale: int8 weights need
/// f32 scales of shape `scaleShape`, float weights take none.
static LogicalResult checkWeightScale(Operation *op, Value weight, Value scale,
                                      ArrayRef<int64_t> scaleShape,
                                      ArrayRef<StringRef> scaleWhat) {
  bool isInt8 = shapedOf(weight).getElementType().isInteger(8);
  if (isInt8 && !scale)
    return op->emitOpError() << "expected a 'scale' operand with int8 weights";
  if (!isInt8 && scale)
    return op->emitOpError()
           << "expected no 'scale' operand with floating-point weights";
  if (scale)
    return checkShape(op, "scale", scale, scaleShape, scaleWhat);
  return success();
}

//===----------------------------------------------------------------------===//
// EmbeddingOp
//===----------------------------------------------------------------------===//

LogicalResult EmbeddingOp::verify() {
  Operation *op = getOperation();
  Value table = getTable(), ids = getIds(), result = getResult();
  if (failed(checkRank(op, "table", table, 2)) ||
      failed(checkRank(op, "ids", ids, 2)) ||
      failed(checkShape(op, "result", result,
                        {dimOf(ids, 0), dimOf(ids, 1), dimOf(table, 1)},
                        {"batch", "seq", "hidden_size"})))
    return failure();
  // Ids are clamped into the table, which needs a row to clamp into.
  if (dimOf(table, 0) == 0)
    return emitOpError() << "expected 'table' to have at least one row "
                            "(the vocabulary), got 0";
  return success();
}

//===----------------------------------------------------------------------===//
// RMSNormOp
//===----------------------------------------------------------------------===//

LogicalResult RMSNormOp::verify() {
  Operation *op = getOperation();
  Value input = getInput(), weight = getWeight();
  int64_t rank = shapedOf(input).getRank();
  if (rank < 1)
    return emitOpError() << "expected 'input' to have rank >= 1, got 0";
  if (failed(checkShape(op, "weight", weight, {dimOf(input, rank - 1)},
                        {"the normalised size"})) ||
      failed(checkEpsilon(op, getEpsilon().convertToDouble())))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// MambaMixerOp
//===----------------------------------------------------------------------===//

LogicalResult MambaMixerOp::verify() {
  Operation *op = getOperation();
  Value input = getInput();
  if (failed(checkRank(op, "input", input, 3)) ||
      failed(checkRank(op, "conv_weight", getConvWeight(), 3)) ||
      failed(checkRank(op, "A_log", getALog(), 2)) ||
      failed(checkRank(op, "dt_proj_weight", getDtProjWeight(), 2)))
    return failure();

  int64_t batch = dimOf(input, 0), hidden = dimOf(input, 2);
  int64_t dInner = getDInner(), dConv = getDConv(), dState = getDState(),
          dtRank = getDtRank();
  // A mixer step over no tokens has no meaning (the runtime never makes
  // one), and its decomposition would slice an empty sequence.
  if (int64_t seq = dimOf(input, 1); seq == 0)
    return emitOpError() << "expected 'input' to have at least one token "
                            "(dimension 1), got 0";
  if (!ShapedType::isDynamic(dConv) && dConv < 1)
    return emitOpError() << "expected d_conv >= 1, got " << dConv;
  if (failed(checkNonEmptySizes(
          op, {{"batch", batch}, {"d_inner", dInner}, {"d_state", dState}})))
    return failure();
  int64_t convCols = ShapedType::isDynamic(dConv) ? dConv : dConv - 1;

  if (failed(checkShape(op, "conv_weight", getConvWeight(), {dInner, 1, dConv},
                        {"d_inner", "1", "d_conv"})) ||
      failed(checkShape(op, "conv_state", getConvState(),
                        {batch, dInner, convCols},
                        {"batch", "d_inner", "d_conv - 1"})) ||
      failed(checkShape(op, "ssm_state", getSsmState(), {batch, dInner, dState},
                        {"batch", "d_inner", "d_state"})) ||
      failed(checkShape(op, "in_proj_weight", getInProjWeight(),
                        {mulDims(2, dInner), hidden},
                        {"2 * d_inner", "hidden_size"})) ||
      (getInProjBias() &&
       failed(checkShape(op, "in_proj_bias", getInProjBias(),
                         {mulDims(2, dInner)}, {"2 * d_inner"}))) ||
      (getConvBias() && failed(checkShape(op, "conv_bias", getConvBias(),
                                          {dInner}, {"d_inner"}))) ||
      failed(checkShape(op, "x_proj_weight", getXProjWeight(),
                        {addDims(dtRank, mulDims(2, dState)), dInner},
                        {"dt_rank + 2 * d_state", "d_inner"})) ||
      failed(checkShape(op, "dt_norm_weight", getDtNormWeight(), {dtRank},
                        {"dt_rank"})) ||
      failed(checkShape(op, "b_norm_weight", getBNormWeight(), {dState},
                        {"d_state"})) ||
      failed(checkShape(op, "c_norm_weight", getCNormWeight(), {dState},
                        {"d_state"})) ||
      failed(checkShape(op, "dt_proj_weight", getDtProjWeight(),
                        {dInner, dtRank}, {"d_inner", "dt_rank"})) ||
      failed(checkShape(op, "dt_proj_bias", getDtProjBias(), {dInner},
                        {"d_inner"})) ||
      failed(checkShape(op, "A_log", getALog(), {dInner, dState},
                        {"d_inner", "d_state"})) ||
      failed(checkShape(op, "D", getD(), {dInner}, {"d_inner"})) ||
      failed(checkShape(op, "out_proj_weight", getOutProjWeight(),
                        {hidden, dInner}, {"hidden_size", "d_inner"})) ||
      (getOutProjBias() &&
       failed(checkShape(op, "out_proj_bias", getOutProjBias(), {hidden},
                         {"hidden_size"}))) ||
      failed(checkSameElementType(op, "input", input, "conv_state",
                                  getConvState())) ||
      failed(checkSameType(op, "input", input, "result", getResult())) ||
      failed(checkSameType(op, "conv_state", getConvState(), "new_conv_state",
                           getNewConvState())) ||
      failed(checkSameType(op, "ssm_state", getSsmState(), "new_ssm_state",
                           getNewSsmState())) ||
      failed(checkEpsilon(op, getEpsilon().convertToDouble())))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// AttentionOp
//===----------------------------------------------------------------------===//

LogicalResult AttentionOp::verify() {
  Operation *op = getOperation();
  Value input = getInput();
  int64_t heads = getNumHeads(), kvHeads = getNumKvHeads();
  if (failed(checkHeadGroups(op, heads, kvHeads)))
    return failure();
  if (failed(checkRank(op, "input", input, 3)) ||
      failed(checkRank(op, "q_weight", getQWeight(), 2)))
    return failure();
  int64_t qRows = dimOf(getQWeight(), 0);
  if (ShapedType::isDynamic(qRows))
    return emitOpError() << "expected 'q_weight' to have a static row count";
  if (qRows % heads != 0)
    return emitOpError() << "expected 'q_weight' rows (" << qRows
                         << ") to be a multiple of num_heads (" << heads << ")";
  int64_t headDim = qRows / heads, hidden = dimOf(input, 2),
          batch = dimOf(input, 0);
  if (headDim == 0)
    return emitOpError() << "expected a head_dim of at least 1, got 0";
  // The decomposition hands the caches to jamba.cached_attention, which
  // reads head_dim from them.
  if (failed(checkRank(op, "k_cache", getKCache(), 4)))
    return failure();
  if (ShapedType::isDynamic(dimOf(getKCache(), 3)))
    return emitOpError() << "expected 'k_cache' to have a static head_dim";
  if (failed(checkShape(op, "q_weight", getQWeight(), {heads * headDim, hidden},
                        {"num_heads * head_dim", "hidden_size"})) ||
      failed(checkShape(op, "k_weight", getKWeight(),
                        {kvHeads * headDim, hidden},
                        {"num_kv_heads * head_dim", "hidden_size"})) ||
      failed(checkShape(op, "v_weight", getVWeight(),
                        {kvHeads * headDim, hidden},
                        {"num_kv_heads * head_dim", "hidden_size"})) ||
      failed(checkShape(op, "o_weight", getOWeight(), {hidden, heads * headDim},
                        {"hidden_size", "num_heads * head_dim"})) ||
      failed(checkKvCache(op, getKCache(), getVCache(), getCacheLen(),
                          getNewKCache(), getNewVCache(), batch, kvHeads,
                          headDim)) ||
      failed(
          checkSameElementType(op, "input", input, "k_cache", getKCache())) ||
      failed(checkSameType(op, "input", input, "result", getResult())))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// MoEOp
//===----------------------------------------------------------------------===//

LogicalResult MoEOp::verify() {
  Operation *op = getOperation();
  Value input = getInput();
  int64_t rank = shapedOf(input).getRank();
  if (rank < 1)
    return emitOpError() << "expected 'input' to have rank >= 1, got 0";
  int64_t hidden = dimOf(input, rank - 1);
  if (failed(checkRank(op, "router_weight", getRouterWeight(), 2)))
    return failure();
  int64_t experts = dimOf(getRouterWeight(), 0);
  if (!ShapedType::isDynamic(experts) &&
      static_cast<int64_t>(getTopK()) > experts)
    return emitOpError() << "expected top_k (" << getTopK()
                         << ") to be at most the number of experts (" << experts
                         << ")";
  // With an expert offset (one value, the rank's first expert) the op
  // holds a contiguous share of the experts.
  if (failed(checkExpertOffset(op, getExpertOffset())))
    return failure();
  int64_t localExperts =
      getExpertOffset() ? dimOf(getGateWeight(), 0) : experts;
  if (getExpertOffset() && !ShapedType::isDynamic(experts) &&
      !ShapedType::isDynamic(localExperts) && localExperts > experts)
    return emitOpError() << "expected at most the router's " << experts
                         << " experts, got " << localExperts;
  if (failed(checkDim(op, "router_weight", getRouterWeight(), 1, hidden,
                      "hidden_size")) ||
      failed(checkFFNWeights(op, getGateWeight(), getUpWeight(),
                             getDownWeight(), hidden, localExperts)))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// MLPOp
//===----------------------------------------------------------------------===//

LogicalResult MLPOp::verify() {
  int64_t rank = shapedOf(getInput()).getRank();
  if (rank < 1)
    return emitOpError() << "expected 'input' to have rank >= 1, got 0";
  return checkFFNWeights(getOperation(), getGateWeight(), getUpWeight(),
                         getDownWeight(), dimOf(getInput(), rank - 1),
                         std::nullopt);
}

//===----------------------------------------------------------------------===//
// LMHeadOp
//===----------------------------------------------------------------------===//

LogicalResult LMHeadOp::verify() {
  Operation *op = getOperation();
  Value input = getInput(), weight = getWeight(), result = getResult();
  if (failed(checkRank(op, "input", input, 3)) ||
      failed(checkRank(op, "weight", weight, 2)) ||
      failed(checkDim(op, "weight", weight, 1, dimOf(input, 2), "hidden_size")))
    return failure();
  int64_t keep = getNumLogitsToKeep();
  if (int64_t seq = dimOf(input, 1); !ShapedType::isDynamic(seq) && keep > seq)
    return emitOpError() << "num_logits_to_keep " << keep
                         << " exceeds the input's " << seq << " positions";
  int64_t positions = keep == 0 ? dimOf(input, 1) : keep;
  if (failed(checkShape(
          op, "result", result, {dimOf(input, 0), positions, dimOf(weight, 0)},
          {"batch", keep == 0 ? "seq" : "num_logits_to_keep", "vocab_size"})) ||
      failed(checkSameElementType(op, "input", input, "result", result)))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// CausalConv1dOp
//===----------------------------------------------------------------------===//

LogicalResult CausalConv1dOp::verify() {
  Operation *op = getOperation();
  Value input = getInput(), weight = getWeight();
  if (failed(checkRank(op, "input", input, 3)) ||
      failed(checkRank(op, "weight", weight, 2)))
    return failure();
  int64_t channels = dimOf(input, 2), width = dimOf(weight, 1);
  if (!ShapedType::isDynamic(width) && width < 1)
    return emitOpError() << "expected a kernel width >= 1, got " << width;
  int64_t stateCols = ShapedType::isDynamic(width) ? width : width - 1;
  if (failed(checkDim(op, "weight", weight, 0, channels, "channels")) ||
      (getBias() &&
       failed(checkShape(op, "bias", getBias(), {channels}, {"channels"}))) ||
      failed(checkShape(op, "state", getState(),
                        {dimOf(input, 0), channels, stateCols},
                        {"batch", "channels", "kernel width - 1"})) ||
      failed(checkSameElementType(op, "input", input, "state", getState())))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// SelectiveScanOp
//===----------------------------------------------------------------------===//

LogicalResult SelectiveScanOp::verify() {
  Operation *op = getOperation();
  Value u = getU();
  if (failed(checkRank(op, "u", u, 3)) || failed(checkRank(op, "A", getA(), 2)))
    return failure();
  int64_t batch = dimOf(u, 0), seq = dimOf(u, 1), dInner = dimOf(u, 2),
          dState = dimOf(getA(), 1);
  if (failed(checkNonEmptySizes(
          op, {{"batch", batch}, {"d_inner", dInner}, {"d_state", dState}})))
    return failure();
  if (failed(checkShape(op, "delta", getDelta(), {batch, seq, dInner},
                        {"batch", "seq", "d_inner"})) ||
      failed(checkDim(op, "A", getA(), 0, dInner, "d_inner")) ||
      failed(checkShape(op, "B", getB(), {batch, seq, dState},
                        {"batch", "seq", "d_state"})) ||
      failed(checkShape(op, "C", getC(), {batch, seq, dState},
                        {"batch", "seq", "d_state"})) ||
      (getD() && failed(checkShape(op, "D", getD(), {dInner}, {"d_inner"}))) ||
      (getZ() && failed(checkShape(op, "z", getZ(), {batch, seq, dInner},
                                   {"batch", "seq", "d_inner"}))) ||
      (getDeltaBias() && failed(checkShape(op, "delta_bias", getDeltaBias(),
                                           {dInner}, {"d_inner"}))) ||
      (getInitState() && failed(checkShape(op, "init_state", getInitState(),
                                           {batch, dInner, dState},
                                           {"batch", "d_inner", "d_state"}))) ||
      failed(checkShape(op, "final_state", getFinalState(),
                        {batch, dInner, dState},
                        {"batch", "d_inner", "d_state"})))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// CachedAttentionOp
//===----------------------------------------------------------------------===//

LogicalResult CachedAttentionOp::verify() {
  Operation *op = getOperation();
  Value query = getQuery();
  int64_t heads = getNumHeads(), kvHeads = getNumKvHeads();
  if (failed(checkHeadGroups(op, heads, kvHeads)))
    return failure();
  if (failed(checkRank(op, "query", query, 3)) ||
      failed(checkRank(op, "k_cache", getKCache(), 4)))
    return failure();
  int64_t batch = dimOf(query, 0), seq = dimOf(query, 1),
          headDim = dimOf(getKCache(), 3);
  if (ShapedType::isDynamic(headDim))
    return emitOpError() << "expected 'k_cache' to have a static head_dim";
  if (headDim == 0)
    return emitOpError() << "expected a head_dim of at least 1, got 0";
  SmallVector<StringRef> qWhat = {"batch", "seq", "num_heads * head_dim"};
  SmallVector<StringRef> kvWhat = {"batch", "seq", "num_kv_heads * head_dim"};
  if (failed(checkShape(op, "query", query, {batch, seq, heads * headDim},
                        qWhat)) ||
      failed(checkShape(op, "key", getKey(), {batch, seq, kvHeads * headDim},
                        kvWhat)) ||
      failed(checkShape(op, "value", getValue(),
                        {batch, seq, kvHeads * headDim}, kvWhat)) ||
      failed(checkKvCache(op, getKCache(), getVCache(), getCacheLen(),
                          getNewKCache(), getNewVCache(), batch, kvHeads,
                          headDim)) ||
      failed(checkSameType(op, "query", query, "result", getResult())))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// RouterTopKOp
//===----------------------------------------------------------------------===//

LogicalResult RouterTopKOp::verify() {
  Operation *op = getOperation();
  auto logitsType = cast<ShapedType>(getLogits().getType());
  int64_t rank = logitsType.getRank();
  if (rank < 1)
    return emitOpError() << "expected 'logits' to have rank >= 1, got 0";
  int64_t experts = logitsType.getDimSize(rank - 1);
  int64_t k = getTopK();
  if (!ShapedType::isDynamic(experts) && k > experts)
    return emitOpError() << "expected top_k (" << k
                         << ") to be at most the number of experts (" << experts
                         << ")";
  SmallVector<int64_t> shape(logitsType.getShape());
  shape.back() = k;
  SmallVector<StringRef> what(rank, "the logits' size");
  what.back() = "top_k";
  if (failed(checkShape(op, "weights", getWeights(), shape, what)) ||
      failed(checkShape(op, "indices", getIndices(), shape, what)))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// ArgmaxOp
//===----------------------------------------------------------------------===//

LogicalResult ArgmaxOp::verify() {
  auto logitsType = cast<ShapedType>(getLogits().getType());
  int64_t rank = logitsType.getRank();
  if (rank < 1)
    return emitOpError() << "expected 'logits' to have rank >= 1, got 0";
  // The ids are i32: the row's length must be static, non-zero and
  // indexable by them.
  int64_t width = logitsType.getDimSize(rank - 1);
  if (ShapedType::isDynamic(width))
    return emitOpError() << "expected the logits' last dimension (the "
                            "vocabulary) to be static";
  if (width < 1 || width > std::numeric_limits<int32_t>::max())
    return emitOpError() << "expected the logits' last dimension in [1, "
                         << std::numeric_limits<int32_t>::max() << "], got "
                         << width;
  SmallVector<int64_t> shape(logitsType.getShape().drop_back());
  SmallVector<StringRef> what(rank - 1, "the logits' size");
  if (failed(checkShape(getOperation(), "ids", getIds(), shape, what)))
    return failure();
  // The lowerings size the ids by the logits' rows: a static size there
  // would not bound a dynamic number of rows.
  auto idsType = cast<ShapedType>(getIds().getType());
  for (int64_t d = 0; d + 1 < rank; ++d)
    if (logitsType.isDynamicDim(d) && !idsType.isDynamicDim(d))
      return emitOpError() << "expected 'ids' dimension " << d
                           << " to be dynamic, as the logits' is; got "
                           << idsType.getDimSize(d);
  return success();
}

//===----------------------------------------------------------------------===//
// ExpertGemmOp
//===----------------------------------------------------------------------===//

LogicalResult ExpertGemmOp::verify() {
  Operation *op = getOperation();
  Value input = getInput(), weight = getWeight(), indices = getIndices();
  if (failed(checkRank(op, "weight", weight, 3)))
    return failure();
  auto idxType = cast<ShapedType>(indices.getType());
  int64_t idxRank = idxType.getRank();
  if (idxRank < 1)
    return emitOpError() << "expected 'indices' to have rank >= 1, got 0";
  int64_t inRank = shapedOf(input).getRank();
  if (inRank != idxRank && inRank != idxRank + 1)
    return emitOpError() << "expected 'input' to have rank " << idxRank
                         << " or " << idxRank + 1 << " (the rank of "
                         << "'indices', or one more), got " << inRank;
  int64_t experts = dimOf(weight, 0), rows = dimOf(weight, 1),
          depth = dimOf(weight, 2);
  // Indices are clamped into the experts, which needs one to clamp into.
  if (experts == 0)
    return emitOpError()
           << "expected 'weight' to have at least one expert, got 0";
  if (failed(checkExpertOffset(op, getExpertOffset())))
    return failure();
  // input [..., K] or [..., k, K]; result [..., k, N].
  SmallVector<int64_t> inShape(idxType.getShape());
  SmallVector<StringRef> inWhat(idxRank, "the indices' size");
  inWhat.back() = "top_k";
  if (inRank == idxRank) {
    inShape.pop_back();
    inWhat.pop_back();
  }
  SmallVector<int64_t> resultShape(idxType.getShape());
  SmallVector<StringRef> resultWhat(idxRank, "the indices' size");
  resultWhat.back() = "top_k";
  inShape.push_back(depth);
  inWhat.push_back("the weight's K");
  resultShape.push_back(rows);
  resultWhat.push_back("the weight's N");
  if (failed(checkShape(op, "input", input, inShape, inWhat)) ||
      failed(checkWeightScale(op, weight, getScale(), {experts, rows},
                              {"num_experts", "the weight's N"})) ||
      (getRouteWeights() &&
       failed(checkShape(op, "route_weights", getRouteWeights(),
                         idxType.getShape(),
                         ArrayRef<StringRef>(resultWhat).drop_back()))) ||
      failed(checkShape(op, "result", getResult(), resultShape, resultWhat)) ||
      failed(checkSameElementType(op, "input", input, "result", getResult())))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// CombineSlotsOp
//===----------------------------------------------------------------------===//

LogicalResult CombineSlotsOp::verify() {
  auto inType = cast<ShapedType>(getInput().getType());
  int64_t rank = inType.getRank();
  if (rank < 2)
    return emitOpError() << "expected 'input' to have rank >= 2, got " << rank;
  SmallVector<int64_t> shape(inType.getShape());
  shape.erase(shape.end() - 2);
  SmallVector<StringRef> what(rank - 1, "the input's size");
  if (failed(checkShape(getOperation(), "result", getResult(), shape, what)) ||
      failed(checkSameElementType(getOperation(), "input", getInput(), "result",
                                  getResult())))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// LinearOp
//===----------------------------------------------------------------------===//

LogicalResult LinearOp::verify() {
  Operation *op = getOperation();
  Value input = getInput(), weight = getWeight(), result = getResult();
  int64_t rank = shapedOf(input).getRank();
  if (rank < 1)
    return emitOpError() << "expected 'input' to have rank >= 1, got 0";
  if (failed(checkRank(op, "weight", weight, 2)) ||
      failed(checkDim(op, "weight", weight, 1, dimOf(input, rank - 1),
                      "the input's K")))
    return failure();
  int64_t rows = dimOf(weight, 0);
  SmallVector<int64_t> shape(shapedOf(input).getShape());
  shape.back() = rows;
  SmallVector<StringRef> what(rank, "the input's size");
  what.back() = "the weight's N";
  if (failed(checkWeightScale(op, weight, getScale(), {rows},
                              {"the weight's N"})) ||
      (getBias() &&
       failed(checkShape(op, "bias", getBias(), {rows}, {"the weight's N"}))) ||
      failed(checkShape(op, "result", result, shape, what)) ||
      failed(checkSameElementType(op, "input", input, "result", result)))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// DequantOp
//===----------------------------------------------------------------------===//

LogicalResult DequantOp::verify() {
  Operation *op = getOperation();
  auto inType = cast<ShapedType>(getInput().getType());
  int64_t rank = inType.getRank();
  if (rank < 2)
    return emitOpError() << "expected 'input' to have rank >= 2, got " << rank;
  SmallVector<int64_t> scaleShape(inType.getShape().drop_back());
  SmallVector<StringRef> scaleWhat(rank - 1, "the input's size");
  SmallVector<StringRef> resultWhat(rank, "the input's size");
  if (failed(checkShape(op, "scale", getScale(), scaleShape, scaleWhat)) ||
      failed(
          checkShape(op, "result", getResult(), inType.getShape(), resultWhat)))
    return failure();
  return success();
}

#define GET_OP_CLASSES
#include "jamba/Dialect/Jamba/IR/JambaOps.cpp.inc"

//===- TokenIds.h - Parsing token id lists ----------------------*- C++ -*-===//
//
// Part of the jamba-mlir project. The `--prompt-ids 1,17,42` syntax shared by
// the tools (jamba-interpret, jamba-run, jamba-quant-report). Standard
// library only.
//
//===----------------------------------------------------------------------===//

#ifndef JAMBA_CHECKPOINT_TOKENIDS_H
#define JAMBA_CHECKPOINT_TOKENIDS_H

#include "jamba/Checkpoint/Status.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace jamba {
namespace ckpt {

/// Parses comma-separated non-negative decimal integers ("1,17,42"; blanks
/// around items allowed; no sign, no empty item). The error names the item:
/// `'x' is not a non-negative integer (expected e.g. 1,17,42)`.
StatusOr<std::vector<int64_t>> parseTokenIds(std::string_view text);

/// The inverse: "1,17,42" (no blanks; "" for no ids), as the tools print
/// prompt and generated ids.
std::string formatTokenIds(const std::vector<int64_t> &ids);

} // namespace ckpt
} // namespace jamba

#endif // JAMBA_CHECKPOINT_TOKENIDS_H

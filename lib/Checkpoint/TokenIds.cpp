//===- TokenIds.cpp - Parsing token id lists ------------------------------===//
//
// Part of the jamba-mlir project.
//
//===----------------------------------------------------------------------===//

#include "jamba/Checkpoint/TokenIds.h"

#include <charconv>

using namespace jamba::ckpt;

StatusOr<std::vector<int64_t>>
jamba::ckpt::parseTokenIds(std::string_view text) {
  std::vector<int64_t> ids;
  size_t start = 0;
  while (true) {
    size_t comma = text.find(',', start);
    std::string_view item = text.substr(start, comma == std::string_view::npos
                                                   ? std::string_view::npos
                                                   : comma - start);
    size_t b = item.find_first_not_of(" \t"), e = item.find_last_not_of(" \t");
    std::string_view trimmed = b == std::string_view::npos
                                   ? std::string_view()
                                   : item.substr(b, e - b + 1);
    int64_t id = -1;
    auto [end, ec] =
        std::from_chars(trimmed.data(), trimmed.data() + trimmed.size(), id);
    if (trimmed.empty() || trimmed[0] == '-' || ec != std::errc() ||
        end != trimmed.data() + trimmed.size() || id < 0)
      return makeError("'", item,
                       "' is not a non-negative integer (expected e.g. "
                       "1,17,42)");
    ids.push_back(id);
    if (comma == std::string_view::npos)
      return ids;
    start = comma + 1;
  }
}

std::string jamba::ckpt::formatTokenIds(const std::vector<int64_t> &ids) {
  std::string text;
  for (size_t i = 0; i < ids.size(); ++i)
    text += (i ? "," : "") + std::to_string(ids[i]);
  return text;
}

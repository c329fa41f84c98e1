#!/usr/bin/env bash
# Fails when a tracked C++ file differs from what clang-format (LLVM style,
# .clang-format) would write. Fix with: clang-format-22 -i <files>.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mapfile -t files < <(git ls-files '*.cpp' '*.h')
[ ${#files[@]} -eq 0 ] && exit 0
if ! clang-format-22 --dry-run --Werror "${files[@]}"; then
  echo "check-format: the files above are not clang-formatted; run" >&2
  echo "  clang-format-22 -i \$(git ls-files '*.cpp' '*.h')" >&2
  exit 1
fi
echo "check-format: ${#files[@]} files clean"

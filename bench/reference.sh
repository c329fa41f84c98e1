#!/usr/bin/env bash
# Benchmarks of issue 3: import time of the jamba-1.5-large shape (median of
# 5 runs) and the reference interpreter's tokens/s on jamba-small (f32, a
# 32-token prompt and 8 decode steps). Figures go to docs/Reference.md.
# Usage: bench/reference.sh [BUILD_DIR]   (default: ./build)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build}"
bin="$build/bin"
models="$root/../shared/models"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "== import jamba-1.5-large.json (5 runs)"
for i in 1 2 3 4 5; do
  "$bin/jamba-import" "$models/jamba-1.5-large.json" -o "$work/large.mlir" --time 2>&1 |
    grep -oE '[0-9.]+ s' | cut -d' ' -f1
done | sort -n | sed -n 3p | sed 's/^/median import time (s): /'
echo "module size: $(wc -c < "$work/large.mlir") bytes"

echo "== reference interpreter on jamba-small (f32)"
"$bin/jamba-make-checkpoint" "$models/jamba-small.json" "$work/small" --seed 0
"$bin/jamba-interpret" "$work/small" --prompt-ids "$(seq -s, 1 32)" -n 8 --time >/dev/null

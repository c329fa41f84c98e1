#!/usr/bin/env bash
# CPU backend benchmark on jamba-small (issue 5): compiles a seeded f32
# checkpoint with and without ExpertsInt8, then measures with jamba-run:
# prefill of a 512-token prompt, decode at batch 1 and batch 8; the
# reference interpreter for scale; the STREAM-like triad in the same run.
# Usage: bench/cpu.sh [BUILD_DIR]   (default: ./build). Takes ~10 minutes.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${1:-$root/build}/bin"
models="$root/../shared/models"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$bin/jamba-triad"
"$bin/jamba-make-checkpoint" "$models/jamba-small.json" "$work/small" --seed 0
for variant in f32 int8; do
  flags=()
  [ "$variant" = int8 ] && flags=(--experts-int8)
  "$bin/jamba-compile" "$work/small" -o "$work/art-$variant" "${flags[@]}"
  prompt512="$(seq -s, 1 512)"
  echo "== $variant: prefill 512 tokens, 8 decode steps, batch 1"
  "$bin/jamba-run" "$work/art-$variant" --prompt-ids "$prompt512" -n 8 \
    --ignore-eos >/dev/null
  echo "== $variant: decode 32 steps, batch 8 (8-token prompts)"
  "$bin/jamba-run" "$work/art-$variant" --prompt-ids 1,2,3,4,5,6,7,8 -n 32 \
    --batch 8 --ignore-eos >/dev/null
done
echo "== reference interpreter (f32): 32-token prompt, 8 steps"
"$bin/jamba-interpret" "$work/small" --prompt-ids "$(seq -s, 1 32)" -n 8 \
  --time >/dev/null

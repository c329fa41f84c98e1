#!/usr/bin/env bash
# Compiled CPU logits against the reference interpreter on jamba-small (issue
# 5's acceptance check at the larger size; the jamba-tiny cases run in ctest):
# a seeded f32 checkpoint, a 32-token prompt and 32 greedy steps at batch 1,
# and 4 sequences of different lengths at once, with and without ExpertsInt8
# (the interpreter runs the same ExpertsInt8 checkpoint the compiler makes),
# and the f32 model sharded over 2 tensor-parallel MPI ranks.
# Prints jamba-compare-logits' line per case; exits 1 if any case exceeds
# 1e-5 or the ids differ. Usage: bench/agreement-small.sh [BUILD_DIR].
# Takes about 6 minutes on the 2-core development VM.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${1:-$root/build}/bin"
models="$root/../shared/models"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$bin/jamba-make-checkpoint" "$models/jamba-small.json" "$work/f32" --seed 7 >/dev/null
"$bin/jamba-quantize" "$work/f32" "$work/q8" >/dev/null
prompts=("$(seq -s, 1 32)" "$(seq -s, 100 110)" "5,6" "$(seq -s, 900 920)")
status=0
for variant in f32 int8; do
  flags=() ref="$work/f32"
  [ "$variant" = int8 ] && flags=(--experts-int8) ref="$work/q8"
  "$bin/jamba-compile" "$work/f32" -o "$work/art-$variant" --prefill-logits all "${flags[@]}" 2>&1 | tail -1
  # batch 1: the 32-token prompt, 32 steps
  "$bin/jamba-run" "$work/art-$variant" --prompt-ids "${prompts[0]}" -n 32 \
    --ignore-eos --logits-out "$work/run.npy" >"$work/run.ids" 2>/dev/null
  "$bin/jamba-interpret" "$ref" --prompt-ids "${prompts[0]}" -n 32 \
    --logits-out "$work/ref.npy" >"$work/ref.ids" 2>/dev/null
  echo -n "$variant batch 1: "
  cmp -s "$work/run.ids" "$work/ref.ids" && echo -n "ids identical; " ||
    { echo -n "ids DIFFER; "; status=1; }
  "$bin/jamba-compare-logits" "$work/run.npy" "$work/ref.npy" --tolerance 1e-5 ||
    status=1
  # four sequences of 32, 11, 2 and 21 tokens at once, 16 steps
  args=()
  for p in "${prompts[@]}"; do args+=(--prompt-ids "$p"); done
  "$bin/jamba-run" "$work/art-$variant" "${args[@]}" -n 16 --ignore-eos \
    --seq 8 --logits-out "$work/multi.npy" >"$work/multi.ids" 2>/dev/null
  for i in 0 1 2 3; do
    "$bin/jamba-interpret" "$ref" --prompt-ids "${prompts[$i]}" -n 16 \
      --logits-out "$work/ref.$i.npy" >"$work/ref.$i.ids" 2>/dev/null
    echo -n "$variant sequence $i of 4 (prefill chunks of 8): "
    [ "$(sed -n "$((i + 1))p" "$work/multi.ids")" = "$(cat "$work/ref.$i.ids")" ] &&
      echo -n "ids identical; " || { echo -n "ids DIFFER; "; status=1; }
    "$bin/jamba-compare-logits" "$work/multi.$i.npy" "$work/ref.$i.npy" \
      --tolerance 1e-5 || status=1
  done
done
# tensor parallelism: the same prompt over 2 MPI ranks (one thread each)
if command -v mpirun >/dev/null; then
  "$bin/jamba-compile" "$work/f32" -o "$work/art-tp2" --prefill-logits all --tensor-parallel 2 2>&1 | tail -1
  OMP_NUM_THREADS=1 mpirun --allow-run-as-root --oversubscribe -np 2 \
    -x OMP_NUM_THREADS "$bin/jamba-run" "$work/art-tp2" \
    --prompt-ids "${prompts[0]}" -n 32 --ignore-eos \
    --logits-out "$work/tp2.npy" >"$work/tp2.ids" 2>/dev/null
  "$bin/jamba-interpret" "$work/f32" --prompt-ids "${prompts[0]}" -n 32 \
    --logits-out "$work/ref.npy" >"$work/ref.ids" 2>/dev/null
  echo -n "f32 tensor-parallel 2 (mpirun), batch 1: "
  cmp -s "$work/tp2.ids" "$work/ref.ids" && echo -n "ids identical; " ||
    { echo -n "ids DIFFER; "; status=1; }
  "$bin/jamba-compare-logits" "$work/tp2.npy" "$work/ref.npy" --tolerance 1e-5 ||
    status=1
fi
exit $status

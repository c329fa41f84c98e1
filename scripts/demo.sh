#!/usr/bin/env bash
# The README's main-job command: set up and build, then run the main job on
# the built-in tiny model (../shared/models/jamba-tiny.json): write a seeded
# random checkpoint in Hugging Face format, import it as jamba IR, and
# generate tokens with the reference interpreter.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$JAMBA_ROOT"
bin="$JAMBA_BUILD_DIR/bin"
models="$JAMBA_ROOT/../shared/models"
[ -f "$models/jamba-tiny.json" ] || models="$JAMBA_ROOT/examples/models"
out="$JAMBA_BUILD_DIR/demo"
mkdir -p "$out"

echo "== jamba-make-checkpoint: seeded random weights for jamba-tiny"
"$bin/jamba-make-checkpoint" "$models/jamba-tiny.json" "$out/jamba-tiny" --seed 0

echo "== jamba-import: the whole model as jamba IR -> $out/jamba-tiny.mlir"
"$bin/jamba-import" "$out/jamba-tiny" -o "$out/jamba-tiny.mlir"
grep -oE 'jamba\.(mamba_mixer|attention|moe|mlp) ' "$out/jamba-tiny.mlir" |
  sort | uniq -c | sed 's/^/   /'

echo "== jamba-interpret: prompt 1,17,42, 16 greedy tokens (reference interpreter, f32)"
"$bin/jamba-interpret" "$out/jamba-tiny" --prompt-ids 1,17,42 -n 16 \
  --logits-out "$out/logits.npy" --time
echo "   logits of every position: $out/logits.npy"

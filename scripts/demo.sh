#!/usr/bin/env bash
# The README's main-job command: set up and build, then run the main job on
# the built-in tiny model (../shared/models/jamba-tiny.json): write a seeded
# random checkpoint in Hugging Face format, compile it into a CPU artifact,
# generate tokens with the MLIR-free runtime, and check the ids against the
# reference interpreter; then the same from a text prompt (the random model's
# text is noise; the tokenizer is jamba-make-checkpoint's small one).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$JAMBA_ROOT"
bin="$JAMBA_BUILD_DIR/bin"
models="$JAMBA_ROOT/../shared/models"
[ -f "$models/jamba-tiny.json" ] || models="$JAMBA_ROOT/examples/models"
out="$JAMBA_BUILD_DIR/demo"
mkdir -p "$out"
prompt=1,17,42

echo "== jamba-make-checkpoint: seeded random weights for jamba-tiny"
"$bin/jamba-make-checkpoint" "$models/jamba-tiny.json" "$out/jamba-tiny" --seed 0

echo "== jamba-compile: checkpoint -> CPU artifact $out/jamba-tiny.artifact"
"$bin/jamba-compile" "$out/jamba-tiny" -o "$out/jamba-tiny.artifact" --force

echo "== jamba-run: prompt $prompt, 16 greedy tokens"
"$bin/jamba-run" "$out/jamba-tiny.artifact" --prompt-ids "$prompt" -n 16 \
  --ignore-eos | tee "$out/run.txt"

echo "== jamba-interpret: the same with the reference interpreter"
"$bin/jamba-interpret" "$out/jamba-tiny" --prompt-ids "$prompt" -n 16 |
  tee "$out/interpret.txt"
if cmp -s "$out/run.txt" "$out/interpret.txt"; then
  echo "== compiled and reference ids agree"
else
  echo "== compiled and reference ids DIFFER" >&2
  exit 1
fi

echo "== jamba-run: the text prompt 'the cat', 16 greedy tokens, as text"
"$bin/jamba-run" "$out/jamba-tiny.artifact" --prompt "the cat" -n 16 \
  --ignore-eos

echo "== the same as ids, and the reference interpreter's from the same text"
"$bin/jamba-run" "$out/jamba-tiny.artifact" --prompt "the cat" -n 16 \
  --ignore-eos --output ids 2>/dev/null | tee "$out/run-text.txt"
"$bin/jamba-interpret" "$out/jamba-tiny" --prompt "the cat" -n 16 2>/dev/null |
  tee "$out/interpret-text.txt"
if cmp -s "$out/run-text.txt" "$out/interpret-text.txt"; then
  echo "== compiled and reference ids agree"
else
  echo "== compiled and reference ids DIFFER" >&2
  exit 1
fi

#!/usr/bin/env bash
# The GPU check, in one call (issue 6): builds what it needs, runs the GPU
# tests (compiled CUDA artifacts against the reference interpreter) and the
# GPU benchmarks, and prints a table last. On a machine without a GPU it
# says "skipped: no GPU (...)" and exits 0 after building.
#
#   scripts/gpu-check.sh [--quick] [--cpu-dry-run]
#     --quick        jamba-tiny only
#     --cpu-dry-run  the same steps with CPU artifacts on the CPU (no GPU
#                    needed): checks this script's own plumbing
#
# Tests: jamba-tiny and jamba-small, f32 and bf16 checkpoints, with and
# without ExpertsInt8; batch 1 (one prompt) and three sequences of different
# lengths prefilled in chunks of 8; greedy ids compared with jamba-interpret
# and logits with jamba-compare-logits (max relative error over the rows:
# f32 <= 1e-3, bf16 <= 2e-2).
# Benchmarks: the device copy bandwidth (jamba-bench-cuda, the ceiling), and
# jamba-small's decode at batch 1, 8 and 32 and prefill of 1024 tokens as
# jamba-run reports them; decode's achieved weight bandwidth (weight bytes
# per step / step time) as a fraction of the copy bandwidth.
set -uo pipefail
quick=0
dry=0
for arg in "$@"; do
  case "$arg" in
  --quick) quick=1 ;;
  --cpu-dry-run) dry=1 ;;
  *)
    echo "gpu-check: unknown option '$arg' (--quick, --cpu-dry-run)" >&2
    exit 2
    ;;
  esac
done
JAMBA_TARGETS="jamba-make-checkpoint jamba-compile jamba-run jamba-interpret \
jamba-compare-logits jamba-bench-cuda" \
  source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
set +e
bin="$JAMBA_BUILD_DIR/bin"
models="$JAMBA_ROOT/../shared/models"
[ -f "$models/jamba-tiny.json" ] || models="$JAMBA_ROOT/examples/models"
work="${JAMBA_GPU_CHECK_DIR:-$JAMBA_BUILD_DIR/gpu-check}"
mkdir -p "$work"
rows=()
status=0

if [ $dry = 1 ]; then
  probe="device: the CPU (--cpu-dry-run) (sm_cpu, dry run)"
  probe_rc=0
else
  probe=$("$bin/jamba-bench-cuda" --mib 1024 --reps 20 2>&1)
  probe_rc=$?
fi
if [ $probe_rc -eq 3 ]; then
  echo "$probe"
  echo "gpu-check: skipped: no GPU"
  exit 0
elif [ $probe_rc -ne 0 ]; then
  echo "$probe" >&2
  exit 1
fi
echo "$probe"
arch=$(echo "$probe" | sed -n 's/^device: .*(\(sm_[0-9a-z]*\),.*/\1/p')
copy_gbs=$(echo "$probe" | sed -n 's/.* \([0-9.]*\) GB\/s.*/\1/p')
device=cuda
target="cuda:$arch"
if [ $dry = 1 ]; then
  device=cpu
  target=cpu
  copy_gbs=
fi
[ -n "$arch" ] || { echo "gpu-check: cannot read the device's arch" >&2; exit 1; }
rows+=("ceiling | device copy bandwidth | ${copy_gbs:-n/a} GB/s | jamba-bench-cuda, 1 GiB D2D")

prompts=(
  "1,17,42,5,9,100,3,77,12,64,31,8,90,2,55,21,4,6,88,13,7,99,42,18,3,61,25,11,70,5,39,14"
  "4,8,15,16,23,42,7,1,99,3,27"
  "9,2"
)

check_variant() { # model dtype int8(0|1)
  local model=$1 dtype=$2 q=$3 name="$1 $2$([ "$3" = 1 ] && echo " +int8")"
  local ckpt="$work/$model-$dtype" art="$work/$model-$dtype-q$q.art"
  local tol=1e-3
  [ "$dtype" = bf16 ] && tol=2e-2
  [ -d "$ckpt" ] || "$bin/jamba-make-checkpoint" "$models/$model.json" "$ckpt" \
    --seed 5 --dtype "$dtype" >/dev/null
  local ref="$ckpt"
  local flags=(--target "$target" --force)
  if [ "$q" = 1 ]; then
    flags+=(--experts-int8)
    ref="$ckpt-q8"
    [ -d "$ref" ] || "$bin/jamba-quantize" "$ckpt" "$ref" >/dev/null
  fi
  if ! "$bin/jamba-compile" "$ckpt" -o "$art" "${flags[@]}" >"$work/compile.log" 2>&1; then
    rows+=("test | $name compile | FAILED | $(tail -1 "$work/compile.log")")
    status=1
    return
  fi
  # batch 1
  "$bin/jamba-run" "$art" --device "$device" --prompt-ids "${prompts[0]}" -n 16 \
    --ignore-eos --logits-out "$work/run.npy" >"$work/run.ids" 2>"$work/run.log"
  "$bin/jamba-interpret" "$ref" --prompt-ids "${prompts[0]}" -n 16 \
    --logits-out "$work/ref.npy" >"$work/ref.ids" 2>/dev/null
  local ids=identical
  cmp -s "$work/run.ids" "$work/ref.ids" || ids=DIFFER
  local cmpout
  cmpout=$("$bin/jamba-compare-logits" "$work/run.npy" "$work/ref.npy" --tolerance "$tol" 2>&1)
  local rc=$?
  [ $rc -eq 0 ] && [ $ids = identical ] || status=1
  rows+=("test | $name batch 1 | $([ $rc -eq 0 ] && echo ok || echo FAILED) | ids $ids; $cmpout")
  # three sequences, prefill chunks of 8
  local args=()
  for p in "${prompts[@]}"; do args+=(--prompt-ids "$p"); done
  "$bin/jamba-run" "$art" --device "$device" "${args[@]}" -n 8 --seq 8 --ignore-eos \
    --logits-out "$work/multi.npy" >"$work/multi.ids" 2>>"$work/run.log"
  for i in 0 1 2; do
    "$bin/jamba-interpret" "$ref" --prompt-ids "${prompts[$i]}" -n 8 \
      --logits-out "$work/ref.$i.npy" >"$work/ref.$i.ids" 2>/dev/null
    ids=identical
    [ "$(sed -n "$((i + 1))p" "$work/multi.ids")" = "$(cat "$work/ref.$i.ids")" ] || ids=DIFFER
    cmpout=$("$bin/jamba-compare-logits" "$work/multi.$i.npy" "$work/ref.$i.npy" --tolerance "$tol" 2>&1)
    rc=$?
    [ $rc -eq 0 ] && [ $ids = identical ] || status=1
    rows+=("test | $name seq $i of 3 | $([ $rc -eq 0 ] && echo ok || echo FAILED) | ids $ids; $cmpout")
  done
}

models_to_check=(jamba-tiny)
[ $quick = 1 ] || models_to_check+=(jamba-small)
for model in "${models_to_check[@]}"; do
  for dtype in f32 bf16; do
    for q in 0 1; do
      check_variant "$model" "$dtype" "$q"
    done
  done
done

# Benchmarks on jamba-small, bf16 + ExpertsInt8 (the serving configuration).
if [ $quick = 0 ]; then
  art="$work/jamba-small-bf16-q1.art"
  weights=$(du -b "$art/weights/rank-0.safetensors" | cut -f1)
  prompt=$(seq -s, 1 1024)
  for batch in 1 8 32; do
    out=$("$bin/jamba-run" "$art" --device "$device" --prompt-ids 1,2,3 --batch "$batch" \
      -n 64 --ignore-eos 2>&1 >/dev/null | grep "decode .* tokens")
    tps=$(echo "$out" | sed -n 's/.*decode [0-9]* tokens in [0-9.]* s (\([0-9.]*\) tok\/s).*/\1/p')
    if [ -n "$tps" ] && [ -n "$copy_gbs" ]; then
      frac=$(awk -v t="$tps" -v b="$batch" -v w="$weights" -v c="$copy_gbs" \
        'BEGIN { step = b / t; printf "%.1f%% of copy bandwidth (%.1f GB/s of weights)", 100 * w / step / 1e9 / c, w / step / 1e9 }')
      rows+=("bench | jamba-small decode batch $batch | $tps tok/s | $frac")
    elif [ -n "$tps" ]; then
      rows+=("bench | jamba-small decode batch $batch | $tps tok/s | no ceiling measured")
    else
      rows+=("bench | jamba-small decode batch $batch | FAILED | $out")
      status=1
    fi
  done
  out=$("$bin/jamba-run" "$art" --device "$device" --prompt-ids "$prompt" --seq 1024 \
    -n 1 --ignore-eos 2>&1 >/dev/null | grep "prefill")
  tps=$(echo "$out" | sed -n 's/.*prefill [0-9]* tokens in [0-9.]* s (\([0-9.]*\) tok\/s).*/\1/p')
  rows+=("bench | jamba-small prefill 1024 tokens | ${tps:-FAILED} tok/s | $out")
fi

echo
echo "== gpu-check ($arch) =="
printf '%s\n' "${rows[@]}" | column -t -s '|'
exit $status

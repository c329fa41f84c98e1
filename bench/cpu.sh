#!/usr/bin/env bash
# CPU backend benchmark on jamba-small (issue 5). Measures, in one run:
#   - the STREAM-like triad (jamba-triad) and the per-kernel figures
#     (jamba-bench-kernels: decode GEMVs in GB/s next to the triad of the
#     same process, prefill/expert GEMM GFLOP/s, the selective scan);
#   - jamba-run on seeded jamba-small checkpoints compiled four ways: f32,
#     f32 + ExpertsInt8, bf16 (weights bf16 in the artifact) and bf16 +
#     ExpertsInt8: prefill of a 512-token prompt, decode at batch 1 (64
#     steps) and batch 8 (32 steps); each the median of 3 runs;
#   - the reference interpreter for scale.
# Prints a table last. Usage: bench/cpu.sh [BUILD_DIR] (default ./build).
# Takes about 8 minutes on the 2-core development VM.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${1:-$root/build}/bin"
models="$root/../shared/models"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"

# median of the numbers on stdin
median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
# field extractors over jamba-run's stderr: its line of totals "load X s,
# prefill N tokens in X s (R tok/s), decode M tokens in X s (R tok/s)"
prefill_rate() { sed -n 's/.*prefill [0-9]* tokens in [0-9.]* s (\([0-9.]*\) tok\/s).*/\1/p'; }
decode_rate() { sed -n 's/.*decode [0-9]* tokens in [0-9.]* s (\([0-9.]*\) tok\/s).*/\1/p'; }

echo "== machine"
"$bin/jamba-triad"
echo "== kernels"
"$bin/jamba-bench-kernels"

"$bin/jamba-make-checkpoint" "$models/jamba-small.json" "$work/f32" --seed 0 >/dev/null
"$bin/jamba-make-checkpoint" "$models/jamba-small.json" "$work/bf16" --seed 0 \
  --dtype bf16 >/dev/null
prompt512="$(seq -s, 1 512)"
rows=()
for variant in f32 f32-int8 bf16 bf16-int8; do
  ckpt="$work/${variant%%-*}"
  flags=()
  [[ "$variant" == *int8 ]] && flags=(--experts-int8)
  art="$work/art-$variant"
  "$bin/jamba-compile" "$ckpt" -o "$art" "${flags[@]}" 2>&1 | tail -1
  p=() d1=() d8=()
  for rep in 1 2 3; do
    p+=("$("$bin/jamba-run" "$art" --prompt-ids "$prompt512" -n 2 \
      --ignore-eos 2>&1 >/dev/null | prefill_rate)")
    d1+=("$("$bin/jamba-run" "$art" --prompt-ids 1,2,3,4,5,6,7,8 -n 64 \
      --ignore-eos 2>&1 >/dev/null | decode_rate)")
    d8+=("$("$bin/jamba-run" "$art" --prompt-ids 1,2,3,4,5,6,7,8 -n 32 \
      --batch 8 --ignore-eos 2>&1 >/dev/null | decode_rate)")
    # An empty figure (jamba-run's report changed) fails the benchmark
    # rather than printing a table of blanks.
    if [ -z "${p[-1]}" ] || [ -z "${d1[-1]}" ] || [ -z "${d8[-1]}" ]; then
      echo "bench/cpu.sh: no tok/s figure in jamba-run's report ($variant)" >&2
      exit 1
    fi
  done
  echo "$variant: prefill ${p[*]}; decode b1 ${d1[*]}; decode b8 ${d8[*]}"
  weights="$(du -sb "$art/weights" | cut -f1)"
  rows+=("| $variant | $(printf '%s\n' "${p[@]}" | median) | \
$(printf '%s\n' "${d1[@]}" | median) | $(printf '%s\n' "${d8[@]}" | median) | \
$(awk "BEGIN {printf \"%.2f\", $weights / 1e9}") GB |")
done

echo "== reference interpreter (f32): 32-token prompt, 8 steps"
interp="$("$bin/jamba-interpret" "$work/f32" --prompt-ids "$(seq -s, 1 32)" \
  -n 8 --time 2>&1 >/dev/null | tail -3)"
echo "$interp"

echo
echo "jamba-small, 2 threads, median of 3 runs (tok/s)"
echo "| model | prefill 512 | decode batch 1 | decode batch 8 (total) | weights |"
echo "| --- | --- | --- | --- | --- |"
printf '%s\n' "${rows[@]}"

#!/usr/bin/env bash
# Throughput of jamba-quantize (ExpertsInt8) on jamba-small: GB of input
# checkpoint per second of wall time (median of 3 runs), total and per thread,
# with 1 and 2 threads, writing to tmpfs (/dev/shm, when writable) and to disk
# (the work directory, fsync included), for an f32 and a bf16 checkpoint.
# The input is read from the page cache (warmed first). Also prints the CPU
# time of the median run (user = quantization and copies, sys = page faults
# on the mapped input and the write). Figures go to docs/ExpertsInt8.md.
# Usage: bench/quantize.sh [BUILD_DIR] [F32_CKPT_DIR]
#   F32_CKPT_DIR defaults to a fresh `jamba-make-checkpoint jamba-small.json
#   --seed 0` in a temporary directory (1.7 GB; the bf16 one is 0.85 GB).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build}"
bin="$build/bin"
models="$root/../shared/models"
work="$(mktemp -d)"
trap 'rm -rf "$work" "${shm:-}"' EXIT

f32="${2:-}"
if [[ -z "$f32" ]]; then
  f32="$work/small-f32"
  "$bin/jamba-make-checkpoint" "$models/jamba-small.json" "$f32" --seed 0
fi
bf16="$work/small-bf16"
"$bin/jamba-make-checkpoint" "$models/jamba-small.json" "$bf16" --seed 0 --dtype bf16

shm=""
if [[ -d /dev/shm && -w /dev/shm ]]; then
  shm="$(mktemp -d /dev/shm/jamba-quantize-bench.XXXXXX)"
fi

# One measurement: prints "wall user sys" in seconds.
run_once() {
  local ckpt="$1" out="$2" threads="$3"
  local TIMEFORMAT="%R %U %S"
  { time "$bin/jamba-quantize" "$ckpt" "$out" --threads "$threads" \
      --no-progress >/dev/null 2>&1; } 2>&1
  rm -rf "$out"
}

echo "cores: $(nproc), load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for ckpt in "$f32" "$bf16"; do
  bytes=$(stat -c %s "$ckpt/model.safetensors")
  cat "$ckpt/model.safetensors" >/dev/null
  name=$(basename "$ckpt")
  for target in tmpfs disk; do
    if [[ $target == tmpfs ]]; then
      [[ -n "$shm" ]] || continue
      out="$shm/out"
    else
      out="$work/out"
    fi
    for threads in 1 2; do
      median=$(for i in 1 2 3; do run_once "$ckpt" "$out" "$threads"; done |
        sort -n | sed -n 2p)
      read -r wall user sys <<<"$median"
      awk -v b="$bytes" -v w="$wall" -v u="$user" -v s="$sys" -v t="$threads" \
        -v n="$name" -v tg="$target" 'BEGIN {
          printf "%-11s -> %-5s threads=%d: %.2f GB in %.2f s = %.2f GB/s total, %.2f GB/s per thread (user %.2f s, sys %.2f s)\n",
            n, tg, t, b / 1e9, w, b / 1e9 / w, b / 1e9 / w / t, u, s }'
    done
  done
done

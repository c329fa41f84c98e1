#!/usr/bin/env bash
# Assembles every PTX module in a directory with ptxas for each given GPU
# architecture, e.g. the output of `jamba-compile --target cuda:sm_90
# --dump-ptx DIR`. Prints one line per architecture and exits non-zero
# (naming the module and ptxas's message) at the first module ptxas refuses.
# With --no-spills, a kernel that spills registers to local memory (ptxas
# -v reports spill stores or loads) fails the check too, named with its
# figures; the line then also gives the most registers a kernel uses. With
# --max-registers N (which implies --no-spills), so does a kernel that uses
# more than N registers.
#
#   scripts/ptxas-check.sh [--no-spills] [--max-registers N] PTX_DIR sm_80
#                          [sm_90 ...]
#
# ptxas: $PTXAS, else ptxas on PATH, else /usr/local/cuda/bin/ptxas.
set -euo pipefail
spills=0
maxregs=0
while [ $# -gt 0 ]; do
  case "$1" in
  --no-spills) spills=1; shift ;;
  --max-registers)
    maxregs=${2:-}
    if ! [[ "$maxregs" =~ ^[1-9][0-9]*$ ]]; then
      echo "ptxas-check: --max-registers needs a positive number" >&2
      exit 2
    fi
    spills=1
    shift 2 ;;
  *) break ;;
  esac
done
if [ $# -lt 2 ]; then
  echo "usage: $0 [--no-spills] [--max-registers N] PTX_DIR ARCH [ARCH ...]" >&2
  exit 2
fi
dir=$1
shift
ptxas=${PTXAS:-$(command -v ptxas || echo /usr/local/cuda/bin/ptxas)}
if [ ! -x "$ptxas" ]; then
  echo "ptxas-check: no ptxas (set PTXAS or install the CUDA toolkit)" >&2
  exit 2
fi
shopt -s nullglob
modules=("$dir"/*.ptx)
if [ ${#modules[@]} -eq 0 ]; then
  echo "ptxas-check: no .ptx files in $dir" >&2
  exit 1
fi
for arch in "$@"; do
  most=0
  for ptx in "${modules[@]}"; do
    flags=()
    [ $spills -eq 1 ] && flags=(-v)
    if ! message=$("$ptxas" -arch="$arch" "${flags[@]}" "$ptx" -o /dev/null 2>&1); then
      echo "ptxas-check: $arch: ptxas refused $ptx:" >&2
      echo "$message" >&2
      exit 1
    fi
    [ $spills -eq 1 ] || continue
    # ptxas -v: "Compiling entry function 'K' ...", then "N bytes stack
    # frame, S bytes spill stores, L bytes spill loads", then "Used R
    # registers".
    report=$(echo "$message" | awk -v ptx="$ptx" '
      /Compiling entry function/ { match($0, /'"'"'[^'"'"']+'"'"'/);
                                   kernel = substr($0, RSTART + 1, RLENGTH - 2) }
      /spill stores/ { for (i = 1; i <= NF; ++i) {
                         if ($(i + 1) == "bytes" && $(i + 2) == "spill" &&
                             $(i + 3) ~ /^stores/) stores = $i;
                         if ($(i + 1) == "bytes" && $(i + 2) == "spill" &&
                             $(i + 3) ~ /^loads/) loads = $i }
                       if (stores + 0 > 0 || loads + 0 > 0)
                         printf "spill %s %s: %s bytes spill stores, %s bytes spill loads\n",
                                ptx, kernel, stores, loads }
      /Used [0-9]+ registers/ { for (i = 1; i <= NF; ++i)
                                  if ($i == "Used") print "regs", $(i + 1), ptx, kernel }')
    if echo "$report" | grep -q '^spill '; then
      echo "ptxas-check: $arch: a kernel spills registers:" >&2
      echo "$report" | sed -n 's/^spill /  /p' >&2
      exit 1
    fi
    if [ "$maxregs" -gt 0 ]; then
      over=$(echo "$report" | awk -v max="$maxregs" '$1 == "regs" && $2 > max {
        printf "  %s %s: %s registers\n", $3, $4, $2 }')
      if [ -n "$over" ]; then
        echo "ptxas-check: $arch: a kernel uses more than $maxregs registers:" >&2
        echo "$over" >&2
        exit 1
      fi
    fi
    regs=$(echo "$report" | awk '$1 == "regs" && $2 > m { m = $2 } END { print m + 0 }')
    [ "$regs" -gt "$most" ] && most=$regs
  done
  if [ $spills -eq 1 ]; then
    echo "ptxas-check: $arch: ${#modules[@]} modules assembled, no spills, at most $most registers"
  else
    echo "ptxas-check: $arch: ${#modules[@]} modules assembled"
  fi
done

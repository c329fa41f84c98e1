#!/usr/bin/env bash
# Assembles every PTX module in a directory with ptxas for each given GPU
# architecture, e.g. the output of `jamba-compile --target cuda:sm_90
# --dump-ptx DIR`. Prints one line per architecture and exits non-zero
# (naming the module and ptxas's message) at the first module ptxas refuses.
#
#   scripts/ptxas-check.sh PTX_DIR sm_80 [sm_90 ...]
#
# ptxas: $PTXAS, else ptxas on PATH, else /usr/local/cuda/bin/ptxas.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 PTX_DIR ARCH [ARCH ...]" >&2
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
  for ptx in "${modules[@]}"; do
    if ! message=$("$ptxas" -arch="$arch" "$ptx" -o /dev/null 2>&1); then
      echo "ptxas-check: $arch: ptxas refused $ptx:" >&2
      echo "$message" >&2
      exit 1
    fi
  done
  echo "ptxas-check: $arch: ${#modules[@]} modules assembled"
done

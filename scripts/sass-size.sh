#!/usr/bin/env bash
# The machine code size of every kernel in a directory of PTX modules (the
# output of `jamba-compile --target cuda:sm_NN --dump-ptx DIR`), as ptxas
# assembles it for one architecture: one line per kernel, "MODULE KERNEL
# INSTRUCTIONS", where INSTRUCTIONS is the size of the kernel's .text
# section over 16 bytes (one SASS instruction on sm_70 and later; ptxas pads
# each kernel to a multiple of 8 instructions). With PATTERN, only kernels
# whose name matches it (grep -E). A way to compare two builds' kernels
# without a GPU or a disassembler:
#
#   scripts/sass-size.sh PTX_DIR sm_90 [PATTERN]
#
# ptxas: $PTXAS, else ptxas on PATH, else /usr/local/cuda/bin/ptxas;
# llvm-readelf: $READELF, else llvm-readelf-22 or /usr/lib/llvm-22/bin's.
set -euo pipefail
if [ $# -lt 2 ] || [ $# -gt 3 ]; then
  echo "usage: $0 PTX_DIR ARCH [PATTERN]" >&2
  exit 2
fi
dir=$1 arch=$2 pattern=${3:-.}
ptxas=${PTXAS:-$(command -v ptxas || echo /usr/local/cuda/bin/ptxas)}
readelf=${READELF:-$(command -v llvm-readelf-22 || echo /usr/lib/llvm-22/bin/llvm-readelf)}
for tool in "$ptxas" "$readelf"; do
  if [ ! -x "$tool" ]; then
    echo "sass-size: no $tool (set PTXAS and READELF)" >&2
    exit 2
  fi
done
shopt -s nullglob
modules=("$dir"/*.ptx)
if [ ${#modules[@]} -eq 0 ]; then
  echo "sass-size: no .ptx files in $dir" >&2
  exit 1
fi
cubin=$(mktemp)
trap 'rm -f "$cubin"' EXIT
for ptx in "${modules[@]}"; do
  if ! message=$("$ptxas" -arch="$arch" "$ptx" -o "$cubin" 2>&1); then
    echo "sass-size: $arch: ptxas refused $ptx:" >&2
    echo "$message" >&2
    exit 1
  fi
  # "[Nr] .text.KERNEL PROGBITS ADDRESS OFFSET SIZE ...", sizes in hex.
  "$readelf" -S -W "$cubin" | awk -v module="$(basename "$ptx" .ptx)" -v pattern="$pattern" '
    {
      for (i = 1; i < NF; ++i)
        if ($i ~ /^\.text\./ && $(i + 1) == "PROGBITS") {
          kernel = substr($i, 7)
          if (kernel !~ pattern) next
          size = 0
          hex = tolower($(i + 4))
          for (j = 1; j <= length(hex); ++j)
            size = size * 16 + index("0123456789abcdef", substr(hex, j, 1)) - 1
          print module, kernel, size / 16
        }
    }'
done

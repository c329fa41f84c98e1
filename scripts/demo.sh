#!/usr/bin/env bash
# The README's main-job command: set up and build, then run the main job on
# the built-in tiny model.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$JAMBA_ROOT"
bin="$JAMBA_BUILD_DIR/bin"

echo "== jamba-opt: parse, verify and canonicalize examples/mamba-layer.mlir"
"$bin/jamba-opt" examples/mamba-layer.mlir --canonicalize

#!/usr/bin/env bash
# The README's test command: set up and build, then run every test (the lit
# suite and the GoogleTest suites, through ctest) and the format check.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

cd "$JAMBA_ROOT"
"$JAMBA_ROOT/scripts/check-format.sh"
ctest --test-dir "$JAMBA_BUILD_DIR" --output-on-failure -j2

#!/usr/bin/env bash
# Installs what jamba-mlir needs on Debian 12 (when missing), then configures
# and builds it incrementally in ./build. Sourced by the README's commands.
#   JAMBA_BUILD_DIR   build folder (default: <repo>/build)
#   JAMBA_TARGETS     ninja targets to build (default: all)
set -euo pipefail

JAMBA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
JAMBA_BUILD_DIR="${JAMBA_BUILD_DIR:-$JAMBA_ROOT/build}"

# Debian packages: LLVM/MLIR 22 (bookworm-security), the build tools, lit's
# FileCheck, GoogleTest, clang-format for the format check, and Open MPI for
# CPU ranks (the runtime's MPI communicator and test/Runtime/mpi.test).
JAMBA_APT_PACKAGES=(
  libmlir-22-dev mlir-22-tools llvm-22-dev llvm-22-tools clang-22 lld-22
  clang-format-22 libomp-22-dev libgtest-dev cmake ninja-build ccache python3
  libopenmpi-dev openmpi-bin
)

jamba_install_packages() {
  local missing=()
  for p in "${JAMBA_APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
      missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "setup: installing ${missing[*]}"
  local sudo=()
  [ "$(id -u)" -ne 0 ] && sudo=(sudo)
  "${sudo[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
}

jamba_configure() {
  if [ ! -f "$JAMBA_BUILD_DIR/build.ninja" ]; then
    cmake -G Ninja -S "$JAMBA_ROOT" -B "$JAMBA_BUILD_DIR" \
      -DCMAKE_BUILD_TYPE=Release \
      -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir \
      -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
      -DLLVM_USE_LINKER=lld
  fi
}

jamba_build() {
  # shellcheck disable=SC2086
  cmake --build "$JAMBA_BUILD_DIR" -- ${JAMBA_TARGETS:-}
}

jamba_install_packages
jamba_configure
jamba_build

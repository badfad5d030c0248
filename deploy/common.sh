# Shared by deploy/*.sh: the repository root and the one way Yard is configured and built.
# shellcheck shell=bash
YARD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
YARD_JOBS="${YARD_JOBS:-2}"

# yard_build BUILD_DIR BUILD_TYPE [ninja targets...]
yard_build() {
  local dir="$1" type="$2"
  shift 2
  cmake -S "$YARD_ROOT" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE="$type" -DYARD_WERROR=ON >/dev/null
  ninja -C "$dir" -j "$YARD_JOBS" "$@"
}

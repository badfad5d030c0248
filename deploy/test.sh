#!/usr/bin/env bash
# Installs what Yard needs, builds it (Release, warnings as errors) and runs every test:
# unit, component and integration (the real binaries). Usage: deploy/test.sh [ctest args...]
set -euo pipefail
source "$(dirname "$0")/common.sh"

bash "$YARD_ROOT/deploy/bootstrap.sh"
yard_build "$YARD_ROOT/build" Release
cd "$YARD_ROOT/build"
ctest --output-on-failure -j "$YARD_JOBS" "$@"

#!/usr/bin/env bash
# Sets up (packages + build), then runs every test: unit, integration and cluster (which start
# their own `eddy broker`, coordinator and worker processes on loopback and clean up after
# themselves).
#   deploy/test.sh                 # everything
#   deploy/test.sh -L unit         # extra arguments go to ctest
#   EDDY_SANITIZE=ON deploy/test.sh -L 'unit|integration'   # the same under ASan/UBSan
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/setup.sh
if [ "${EDDY_SANITIZE:-OFF}" = "ON" ]; then
  # Undefined behaviour fails the test that shows it, with a stack. tests/ubsan.supp names the
  # one report that is CAF's own (its intrusive queues), not eddy's.
  export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:suppressions=$PWD/tests/ubsan.supp}"
  cd build-asan
else
  cd build
fi
ctest --output-on-failure --timeout 600 -j2 "$@"

#!/usr/bin/env bash
# Sets up (packages + build), then runs every test: unit, then integration (which start their
# own `eddy broker` processes on loopback and clean up after themselves).
#   deploy/test.sh                 # everything
#   deploy/test.sh -L unit         # extra arguments go to ctest
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/setup.sh
cd build
ctest --output-on-failure --timeout 600 -j2 "$@"

#!/usr/bin/env bash
# Sets up (packages + build), then runs `eddy demo`: an in-process development broker, sample
# ride-booking CDC data, the example pipeline, results on screen. Extra arguments go to
# `eddy demo` (e.g. --duration 30, --format schema, --rate 200).
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/setup.sh
exec build/app/eddy demo "$@"

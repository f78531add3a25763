#!/usr/bin/env bash
# Installs what eddy needs (Debian 12 packages), then configures and builds into build/.
# Idempotent and quick when everything is present. Run as root (or with sudo available).
#   BUILD_TYPE=Debug deploy/setup.sh      # default Release
#   EDDY_SANITIZE=ON deploy/setup.sh      # ASan/UBSan build in build-asan/
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  g++ cmake make pkg-config
  libcaf-dev librdkafka-dev libboost-json1.81-dev librocksdb-dev
  libtomlplusplus-dev libcli11-dev libjemalloc-dev
  libzstd-dev  # unit snapshots and deltas are zstd-compressed
  libgtest-dev libgmock-dev libbenchmark-dev
  kcat
  libpq-dev postgresql  # the postgres sink (libpq); the server for its tests and benchmark
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  # Never libboost-dev / libboost-all-dev: Boost 1.74 conflicts with the 1.81 packages.
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

build_dir=build
extra=()
if [ "${EDDY_SANITIZE:-OFF}" = "ON" ]; then
  build_dir=build-asan
  extra+=(-DEDDY_SANITIZE=ON)
fi
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" "${extra[@]}" >/dev/null
cmake --build "$build_dir" -j2
echo "setup: built $build_dir/app/eddy"

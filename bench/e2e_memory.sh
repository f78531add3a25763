#!/usr/bin/env bash
# e2e_memory.sh — does memory follow the number of distinct keys, or stay within a budget?
#
# Starts `eddy broker` (in-memory, loopback only) with a topic of PARTITIONS (default 32)
# partitions, produces COUNT (default 2,000,000) unwrapped ride-booking CDC messages (zstd; about
# 57% of them create a new booking id, so ~1.1M distinct ids), then runs the changelog example
# (deploy/pipelines/ncr_changelog.toml: the last row of every booking id is state) to the end
# of the topic twice, with 1 s checkpoints under CP_BASE:
#   state_backend = "memory"    every id's row stays in the source tasks' memory
#   state_backend = "rocksdb"   rows live in RocksDB (block cache BLOCK_CACHE_MB, write buffers
#                               WRITE_BUFFER_MB); memory holds what changed since the last epoch
# reading at RATE messages/s (default 100,000; source.max_records_per_second), so an epoch's
# working set is the same whatever the topic size. Samples the process RSS every 0.5 s and prints
# it at each 10% of the run, the maximum, and the RSS in the first and last quarter: with a
# bounded backend the last quarter is no higher than the middle of the run although the state
# keeps growing.
#
# Usage: bench/e2e_memory.sh [BUILD_DIR]     (default: <repo>/build)
# Env:   COUNT=2000000 PARTITIONS=32 RATE=100000 CP_BASE=/var/tmp BLOCK_CACHE_MB=64
#        WRITE_BUFFER_MB=32 KEEP=0
# Needs: python3, kcat. Stops by itself; the broker is killed on exit. ~1.5 minutes on 2 cores.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
build="${1:-$repo/build}"
eddy="$build/app/eddy"
changelog="$repo/deploy/pipelines/ncr_changelog.toml"
COUNT="${COUNT:-2000000}"
PARTITIONS="${PARTITIONS:-32}"
RATE="${RATE:-100000}"
CP_BASE="${CP_BASE:-/var/tmp}"
BLOCK_CACHE_MB="${BLOCK_CACHE_MB:-64}"
WRITE_BUFFER_MB="${WRITE_BUFFER_MB:-32}"
KEEP="${KEEP:-0}"
topic="bench.e2e_memory"

name=e2e_memory
produce_extra=()
# shellcheck source=e2e_common.sh
source "$here/e2e_common.sh"
make_cp_root

for backend in memory rocksdb; do
  sed -e "s|^topic = .*|topic = \"$topic\"|" \
      -e "s|^bootstrap_servers = .*|bootstrap_servers = \"$bootstrap\"|" \
      -e "s|^max_records_per_poll = .*|&\nmax_records_per_second = $RATE|" "$changelog" |
    awk 'index($0, "[[sinks]]") == 1 {exit} {print}' >"$work/$backend.toml"
  printf '\n[[sinks]]\ntype = "file"\npath = "%s/out-%s"\n\n[dead_letter]\npath = "%s/dead"\n' \
    "$work" "$backend" "$work" >>"$work/$backend.toml"
  printf '\n[checkpoint]\ndir = "%s/%s"\ninterval = "1s"\nstate_backend = "%s"\n' \
    "$cp_root" "$backend" "$backend" >>"$work/$backend.toml"
  printf 'block_cache_mb = %s\nwrite_buffer_mb = %s\n' "$BLOCK_CACHE_MB" "$WRITE_BUFFER_MB" \
    >>"$work/$backend.toml"
done

echo "reading at $RATE msg/s, 1 s checkpoints; RSS in MiB"
for backend in memory rocksdb; do
  "$eddy" run -c "$work/$backend.toml" --exit-at-end --summary-json "$work/$backend.json" \
    >/dev/null 2>"$work/$backend.err" &
  pid=$!
  : >"$work/$backend.rss"
  while kill -0 "$pid" 2>/dev/null; do
    awk '/^VmRSS/ {print int($2 / 1024)}' "/proc/$pid/status" >>"$work/$backend.rss" 2>/dev/null ||
      true
    sleep 0.5
  done
  wait "$pid" || { cat "$work/$backend.err" >&2; echo "e2e_memory: $backend run failed" >&2; exit 1; }
  in=$(python3 -c "import json; print(json.load(open('$work/$backend.json'))['in'])")
  [[ "$in" -eq "$COUNT" ]] || { echo "e2e_memory: read $in of $COUNT" >&2; exit 1; }
  epochs=$(cat "$cp_root/$backend/LATEST")
  python3 - "$backend" "$epochs" "$work/$backend.rss" <<'PY'
import sys
backend, epochs, path = sys.argv[1], sys.argv[2], sys.argv[3]
rss = [int(l) for l in open(path) if l.strip()]
n = len(rss)
tenths = [rss[min(n - 1, (n * k) // 10)] for k in range(1, 11)]
q4 = rss[3 * n // 4 :]
print("%-8s %5.1f s, %s epochs | at each 10%%: %s | max %d | max in 2nd quarter %d, max in last quarter %d"
      % (backend, n * 0.5, epochs, " ".join(map(str, tenths)), max(rss),
         max(rss[n // 4 : n // 2], default=0), max(q4, default=0)))
PY
done

#!/usr/bin/env bash
# e2e_close.sh — what closing one window of ~1M groups costs in memory, bounded vs at once.
#
# Starts `eddy broker` (in-memory, loopback only) with a topic of PARTITIONS (default 48)
# partitions, produces COUNT (default 2,000,000) unwrapped ride-booking CDC messages (zstd;
# about 57% create a new booking id, so ~1.1M distinct ids), then runs, twice, a pipeline that
# counts rows per booking id in one tumbling window of a day (every message falls in it) with
# state_backend = "rocksdb" and 1 s checkpoints, reading at RATE messages/s (default 200,000);
# the window closes at the end, one result row per id, written by the file sink:
#   bounded   [pipeline] max_rows_per_batch = BOUNDED (default 100000, eddy's default)
#   at_once   max_rows_per_batch = 100000000: the whole window in one step, as before bounded
#             closes (the shard builds every row, the sink holds them all)
# Each pipeline runs twice: it reads the topic (stopped with SIGTERM once a checkpoint holds every
# offset, so the window stays open), then resumes with --exit-at-end, which only closes the
# window. Prints that second run's duration and maximum RSS (sampled every 0.1 s), and the rows
# and files written (both pipelines must write the same rows: one per id).
#
# Usage: bench/e2e_close.sh [BUILD_DIR]     (default: <repo>/build)
# Env:   COUNT=2000000 PARTITIONS=48 RATE=200000 BOUNDED=100000 CP_BASE=/var/tmp KEEP=0
# Needs: python3, kcat. Stops by itself; the broker is killed on exit. ~2 minutes on 2 cores.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
build="${1:-$repo/build}"
eddy="$build/app/eddy"
COUNT="${COUNT:-2000000}"
PARTITIONS="${PARTITIONS:-48}"
BOUNDED="${BOUNDED:-100000}"
RATE="${RATE:-200000}"
CP_BASE="${CP_BASE:-/var/tmp}"
KEEP="${KEEP:-0}"
topic="bench.e2e_close"

name=e2e_close
produce_extra=()
# shellcheck source=e2e_common.sh
source "$here/e2e_common.sh"
make_cp_root

for run in bounded at_once; do
  rows=$BOUNDED
  [[ "$run" == at_once ]] && rows=100000000
  cat >"$work/$run.toml" <<TOML
[pipeline]
name = "close_$run"
max_rows_per_batch = $rows

[source]
bootstrap_servers = "$bootstrap"
topic = "$topic"
max_records_per_poll = 10000
max_records_per_second = $RATE

[[fields]]
name = "id"
type = "int"
required = true

[[fields]]
name = "created_at_ts"
column = "created_at"
type = "timestamp"
unit = "micros"

[[aggregates]]
alias = "changes"
function = "count"

[aggregate]
group_by = ["id"]

[window]
type = "tumbling"
size = "1d"
time_field = "created_at_ts"

[[sinks]]
type = "file"
path = "$work/out-$run"

[dead_letter]
path = "$work/dead-$run"

[checkpoint]
dir = "$cp_root/$run"
interval = "1s"
state_backend = "rocksdb"
sync = false
TOML
done

# Reads the whole topic without draining (SIGTERM once a checkpoint holds every offset: the
# window stays open in the final checkpoint), then `--exit-at-end` on that checkpoint: nothing
# left to read, the drain closes the window. The second run's RSS is the close's cost alone.
offsets_in_checkpoint() {
  "$eddy" checkpoint inspect --dir "$1" 2>/dev/null |
    awk '/\.offset = / {s += $3} END {print s + 0}'
}
echo "RSS in MiB"
for run in bounded at_once; do
  "$eddy" run -c "$work/$run.toml" >/dev/null 2>"$work/$run.read.err" &
  pid=$!
  t0=$(now)
  until [[ "$(offsets_in_checkpoint "$cp_root/$run")" -ge "$COUNT" ]]; do
    kill -0 "$pid" 2>/dev/null || { cat "$work/$run.read.err" >&2; exit 1; }
    sleep 0.5
  done
  kill -TERM "$pid"
  wait "$pid" || { cat "$work/$run.read.err" >&2; echo "e2e_close: $run read failed" >&2; exit 1; }
  t1=$(now)
  "$eddy" run -c "$work/$run.toml" --exit-at-end >/dev/null 2>"$work/$run.err" &
  pid=$!
  : >"$work/$run.rss"
  while kill -0 "$pid" 2>/dev/null; do
    awk '/^VmRSS/ {print int($2 / 1024)}' "/proc/$pid/status" >>"$work/$run.rss" 2>/dev/null ||
      true
    sleep 0.1
  done
  wait "$pid" || { cat "$work/$run.err" >&2; echo "e2e_close: $run drain failed" >&2; exit 1; }
  t2=$(now)
  written=$(cat "$work/out-$run"/part-*.jsonl | wc -l)
  files=$(find "$work/out-$run" -maxdepth 1 -name 'part-*.jsonl' | wc -l)
  python3 - "$run" "$work/$run.rss" "$t0" "$t1" "$t2" "$written" "$files" <<'PY'
import sys
run, path, t0, t1, t2, written, files = sys.argv[1:8]
rss = [int(l) for l in open(path) if l.strip()]
print("%-8s read %5.1f s | restore + close %5.1f s, max RSS %5d MiB | %s rows in %s files"
      % (run, float(t1) - float(t0), float(t2) - float(t1), max(rss), written, files))
PY
  rm -rf "$work/out-$run" "$cp_root/$run"
done

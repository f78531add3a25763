#!/usr/bin/env bash
# e2e_drain.sh — end-to-end drain throughput: eddy vs kcat on the same topic, same run.
#
# Starts `eddy broker` (in-memory, loopback only) with a topic of PARTITIONS (default 16)
# partitions, produces COUNT (default 1,000,000) unwrapped ride-booking CDC messages with zstd,
# checks that every message was retained, then
# runs ROUNDS (default 3) rounds, each timing, from the beginning of the topic to its end:
#   kcat      kcat -C -e -o beginning -q > /dev/null          (the reference: fetch + print)
#   eddy      eddy run --exit-at-end, example pipeline fields/filter/select, file sink in
#             /dev/shm (so it includes decoding, cleaning, filtering, projection AND writing
#             JSON Lines output; the output is deleted after each round)
#   eddy-rej  the same with filter `id < 0` (rejects everything): fetch + decode + filter only
# and prints msg/s and CPU seconds (user+sys) per round, their medians, and the ratios
# eddy/kcat of the medians.
#
# Why 16 partitions: the mock broker keeps only ~5 MiB per partition. The generated messages are
# ~760 bytes (~75 bytes each after zstd), so 1M over 8 partitions keeps only ~565k; over 16
# partitions (~62.5k messages, ~4.7 MiB each) all 1M fit.
#
# Usage: bench/e2e_drain.sh [BUILD_DIR]     (default: <repo>/build)
# Env:   COUNT=1000000 ROUNDS=3 PARTITIONS=16 KEEP=0 (1 keeps the work dir)
#        EDDY_RUN_PREFIX='perf record -g -o /tmp/x.data --'  (wraps each `eddy run`, e.g. perf)
# Needs: kcat, python3 (JSON and medians). Stops by itself; the broker is killed
# on exit (trap EXIT). Total runtime on 2 cores: ~1–2 minutes.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
build="${1:-$repo/build}"
eddy="$build/app/eddy"
example="$repo/deploy/pipelines/ncr_ride_bookings.toml"
COUNT="${COUNT:-1000000}"
ROUNDS="${ROUNDS:-3}"
PARTITIONS="${PARTITIONS:-16}"
KEEP="${KEEP:-0}"
EDDY_RUN_PREFIX="${EDDY_RUN_PREFIX:-}"
topic="bench.e2e_drain"

[[ -f "$example" ]] || { echo "e2e_drain: $example missing" >&2; exit 2; }

name=e2e_drain
produce_extra=()
# shellcheck source=e2e_common.sh
source "$here/e2e_common.sh"

# ---- pipelines: the example's fields, filter and select; a file sink in $work -------------------
make_pipeline() {  # $1 = output file, $2 = filter expression (TOML literal string), $3 = out dir
  awk '/^# ---- sinks/ {exit} {print}' "$example" |
    sed -e "s|^topic = .*|topic = \"$topic\"|" \
        -e "s|^bootstrap_servers = .*|bootstrap_servers = \"$bootstrap\"|" \
        -e "s|^group_id = .*|group_id = \"eddy-bench-e2e\"|" \
        -e "s|^filter = .*|filter = '$2'|" >"$1"
  cat >>"$1" <<EOF
[[sinks]]
type = "file"
path = "$3"

[dead_letter]
path = "$work/dead"
EOF
}
make_pipeline "$work/keep.toml" 'op != "d"' "$work/out"
make_pipeline "$work/reject.toml" 'id < 0' "$work/out"

# ---- rounds -------------------------------------------------------------------------------------
# Each measurement records wall time and CPU time (user + sys of the process and its threads):
# msg/s is COUNT / wall; CPU seconds are less sensitive to other load on a shared machine.
declare -a r_kcat r_eddy r_rej c_kcat c_eddy c_rej
TIMEFORMAT='%R %U %S'

timed() {  # runs "$@" (output discarded); prints "msgs_per_s cpu_seconds"
  local t
  t=$( { time "$@" >/dev/null 2>"$work/cmd.err"; } 2>&1 ) ||
    { cat "$work/cmd.err" >&2; echo "e2e_drain: failed: $*" >&2; exit 1; }
  python3 -c "w, u, s = map(float, '$t'.split()); print(round($COUNT / w), round(u + s, 2))"
}

run_kcat() {
  timed kcat -C -b "$bootstrap" -t "$topic" -e -o beginning -q
}

run_eddy() {  # $1 = pipeline; prints "msgs_per_s cpu_s in out filtered dead bytes_written"
  local m in out filtered dead bytes
  rm -rf "$work/out" "$work/dead" "$work/summary.json"
  # shellcheck disable=SC2086  # EDDY_RUN_PREFIX is a word list on purpose
  m=$(timed $EDDY_RUN_PREFIX "$eddy" run -c "$1" --exit-at-end --summary-json "$work/summary.json")
  read -r in out filtered dead < <(python3 -c "
import json; s = json.load(open('$work/summary.json'))
print(s['in'], s['out'], s['filtered'], s['dead_lettered'])")
  if [[ "$in" -ne "$COUNT" ]]; then
    echo "e2e_drain: eddy read $in of $COUNT" >&2
    exit 1
  fi
  bytes=$(du -sb "$work/out" 2>/dev/null | cut -f1 || true)
  rm -rf "$work/out" "$work/dead"
  echo "$m $in $out $filtered $dead ${bytes:-0}"
}

for round in $(seq "$ROUNDS"); do
  read -r k kc < <(run_kcat)
  read -r e ec e_in e_out e_filt e_dead e_bytes < <(run_eddy "$work/keep.toml")
  read -r x xc _ x_out x_filt _ _ < <(run_eddy "$work/reject.toml")
  r_kcat+=("$k"); r_eddy+=("$e"); r_rej+=("$x"); c_kcat+=("$kc"); c_eddy+=("$ec"); c_rej+=("$xc")
  printf 'round %d: kcat %7d msg/s (cpu %5.2f s) | eddy, file sink %7d msg/s (cpu %5.2f s) [in %d out %d filtered %d dead %d; %d MB JSON] | eddy, filter id<0 %7d msg/s (cpu %5.2f s) [out %d filtered %d]\n' \
    "$round" "$k" "$kc" "$e" "$ec" "$e_in" "$e_out" "$e_filt" "$e_dead" "$((e_bytes / 1000000))" \
    "$x" "$xc" "$x_out" "$x_filt"
done

python3 - "${r_kcat[*]}" "${r_eddy[*]}" "${r_rej[*]}" "${c_kcat[*]}" "${c_eddy[*]}" "${c_rej[*]}" <<'EOF'
import statistics, sys
k, e, x = ([int(v) for v in a.split()] for a in sys.argv[1:4])
ck, ce, cx = ([float(v) for v in a.split()] for a in sys.argv[4:7])
m = statistics.median
print()
print("%-32s %9s %8s %12s %10s" % ("median of %d rounds" % len(k), "msg/s", "CPU s", "msg/s ratio", "CPU ratio"))
print("%-32s %9.0f %8.2f %12s %10s" % ("kcat -C -e > /dev/null", m(k), m(ck), "1.00", "1.00"))
for name, w, c in (("eddy run, file sink (/dev/shm)", e, ce), ("eddy run, filter id < 0", x, cx)):
    print("%-32s %9.0f %8.2f %12.2f %10.2f" % (name, m(w), m(c), m(w) / m(k), m(c) / m(ck)))
print("msg/s ratio = eddy/kcat throughput; CPU ratio = eddy/kcat CPU seconds (user+sys) for the")
print("same messages. Each ratio is of the medians.")
EOF

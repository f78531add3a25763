#!/usr/bin/env bash
# e2e_windowed.sh — end-to-end cost of windowed aggregation: the example windowed pipeline vs
# the same pipeline without aggregation, same topic, same run.
#
# Starts `eddy broker` (in-memory, loopback only) with a topic of PARTITIONS (default 16)
# partitions, produces COUNT (default 1,000,000) unwrapped ride-booking CDC messages with zstd
# (event times 1 ms apart, in order unless DISORDER_MS > 0), checks that every message was
# retained, then runs ROUNDS (default 3) rounds, each draining the topic from the beginning to
# its end (`eddy run --exit-at-end`) with three pipelines made from
# deploy/pipelines/ncr_windowed.toml (its fields and its filter `op in ("c", "r")`, a file sink
# in /dev/shm, no console sink):
#   windowed   the file as it is: tumbling 1-minute windows on created_at, group by vehicle_type,
#              count / avg(booking_value) / p95(ride_distance), 4 shards — writes one row per
#              (window, vehicle type): a few hundred rows
#   plain      the same without [[aggregates]], [aggregate] and [window]: writes every row that
#              passes the filter (~666k rows of 11 columns, JSON Lines)
#   decode     plain with filter `id < 0` (rejects everything): fetch + decode + filter only, the
#              floor for any pipeline on this topic
# The order rotates every round (W P D, P D W, D W P, ...) so none always runs first. With
# KCAT=1 (default) each round also times `kcat -C -e -o beginning -q > /dev/null` as the
# fetch-only reference. Prints msg/s (COUNT / wall) and CPU seconds (user+sys) per run, the
# medians, and the ratios of the medians: windowed/plain (the aim is >= 0.85),
# windowed/decode and plain/decode.
#
# Usage: bench/e2e_windowed.sh [BUILD_DIR]     (default: <repo>/build)
# Env:   COUNT=1000000 ROUNDS=3 PARTITIONS=16 DISORDER_MS=0 KCAT=1 KEEP=0 (1 keeps the work dir)
#        EDDY_RUN_PREFIX='perf record -g -o /tmp/x.data --'  (wraps each `eddy run`)
# Needs: python3 (JSON and medians); kcat for the retention check and the KCAT reference.
# Stops by itself; the broker is killed on exit (trap EXIT). Runtime on 2 cores: ~1–1.5 minutes.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
build="${1:-$repo/build}"
eddy="$build/app/eddy"
example="$repo/deploy/pipelines/ncr_windowed.toml"
COUNT="${COUNT:-1000000}"
ROUNDS="${ROUNDS:-3}"
PARTITIONS="${PARTITIONS:-16}"
DISORDER_MS="${DISORDER_MS:-0}"
KCAT="${KCAT:-1}"
KEEP="${KEEP:-0}"
EDDY_RUN_PREFIX="${EDDY_RUN_PREFIX:-}"
topic="bench.e2e_windowed"

[[ -f "$example" ]] || { echo "e2e_windowed: $example missing" >&2; exit 2; }

name=e2e_windowed
produce_extra=(--disorder-ms "$DISORDER_MS")
# shellcheck source=e2e_common.sh
source "$here/e2e_common.sh"

# ---- pipelines ----------------------------------------------------------------------------------
# $1 = output file, $2 = awk stop marker (the section where the copy of the example ends),
# $3 = filter (TOML literal string). Source pointed at the bench topic; a file sink and dead
# letter in $work instead of the console sink.
make_pipeline() {
  awk -v stop="$2" 'index($0, stop) == 1 {exit} {print}' "$example" |
    sed -e "s|^topic = .*|topic = \"$topic\"|" \
        -e "s|^bootstrap_servers = .*|bootstrap_servers = \"$bootstrap\"|" \
        -e "s|^filter = .*|filter = '$3'|" >"$1"
  cat >>"$1" <<EOF

[[sinks]]
type = "file"
path = "$work/out"

[dead_letter]
path = "$work/dead"
EOF
}
filter="$(sed -n "s/^filter = '\(.*\)'.*/\1/p" "$example")"
[[ "$filter" == 'op in ("c", "r")' ]] ||
  echo "e2e_windowed: note: the example's filter is now: $filter" >&2
make_pipeline "$work/windowed.toml" "# ---- sinks" "$filter"
make_pipeline "$work/plain.toml" "# ---- aggregation" "$filter"
make_pipeline "$work/decode.toml" "# ---- aggregation" 'id < 0'
if ! grep -q '^\[window\]' "$work/windowed.toml" || grep -q '^\[\[aggregates\]\]' "$work/plain.toml"; then
  echo "e2e_windowed: could not derive the pipelines from $example" >&2
  exit 1
fi

# ---- rounds -------------------------------------------------------------------------------------
TIMEFORMAT='%R %U %S'
timed() {  # runs "$@" (output discarded); prints "msgs_per_s cpu_seconds"
  local t
  t=$( { time "$@" >/dev/null 2>"$work/cmd.err"; } 2>&1 ) ||
    { cat "$work/cmd.err" >&2; echo "e2e_windowed: failed: $*" >&2; exit 1; }
  python3 -c "w, u, s = map(float, '$t'.split()); print(round($COUNT / w), round(u + s, 2))"
}

run_kcat() { timed kcat -C -b "$bootstrap" -t "$topic" -e -o beginning -q; }

run_eddy() {  # $1 = pipeline; prints "msgs_per_s cpu_s in out filtered dead late rows_written"
  local m in out filtered dead late lines
  rm -rf "$work/out" "$work/dead" "$work/summary.json"
  # shellcheck disable=SC2086  # EDDY_RUN_PREFIX is a word list on purpose
  m=$(timed $EDDY_RUN_PREFIX "$eddy" run -c "$1" --exit-at-end --summary-json "$work/summary.json")
  read -r in out filtered dead late < <(python3 -c "
import json; s = json.load(open('$work/summary.json'))
print(s['in'], s['out'], s['filtered'], s['dead_lettered'], s['late'])")
  if [[ "$in" -ne "$COUNT" ]]; then
    echo "e2e_windowed: eddy read $in of $COUNT" >&2
    exit 1
  fi
  lines=0
  [[ -d "$work/out" ]] && lines=$(find "$work/out" -type f -exec cat {} + | wc -l)
  rm -rf "$work/out" "$work/dead"
  echo "$m $in $out $filtered $dead $late $lines"
}

declare -A rate cpu
names=(windowed plain decode)
for round in $(seq "$ROUNDS"); do
  line="round $round (load $(cut -d' ' -f1 /proc/loadavg)):"
  if [[ "$KCAT" == 1 ]]; then
    read -r k kc < <(run_kcat)
    rate[kcat]+="$k "; cpu[kcat]+="$kc "
    line+=" kcat $k msg/s (cpu $kc s) |"
  fi
  for i in 0 1 2; do
    name="${names[$(( (i + round - 1) % 3 ))]}"
    read -r r c _ out filt dead late rows < <(run_eddy "$work/$name.toml")
    rate[$name]+="$r "; cpu[$name]+="$c "
    line+=" $name $r msg/s (cpu $c s) [out $out filtered $filt dead $dead late $late; $rows rows written] |"
  done
  echo "${line% |}"
done

python3 - "$COUNT" "${rate[windowed]}" "${cpu[windowed]}" "${rate[plain]}" "${cpu[plain]}" \
  "${rate[decode]}" "${cpu[decode]}" "${rate[kcat]:-}" "${cpu[kcat]:-}" <<'EOF'
import statistics, sys
m = statistics.median
count = int(sys.argv[1])
cols = [[float(v) for v in a.split()] for a in sys.argv[2:]]
runs = {"windowed": cols[0:2], "plain": cols[2:4], "decode": cols[4:6], "kcat": cols[6:8]}
label = {
    "kcat": "kcat -C -e > /dev/null",
    "decode": "eddy, filter id < 0 (decode only)",
    "plain": "eddy, no aggregation, file sink",
    "windowed": "eddy, windowed, file sink",
}
print()
print("%-36s %9s %8s %14s %14s" % ("median of %d rounds" % len(cols[0]), "msg/s", "CPU s",
                                    "msg/s / decode", "CPU / decode"))
dr, dc = m(runs["decode"][0]), m(runs["decode"][1])
for name in ("kcat", "decode", "plain", "windowed"):
    r, c = runs[name]
    if not r:
        continue
    print("%-36s %9.0f %8.2f %14.2f %14.2f" % (label[name], m(r), m(c), m(r) / dr, m(c) / dc))
(wr, wc), (pr, pc) = runs["windowed"], runs["plain"]
print()
print("windowed / plain: %.2f (msg/s of the medians; the aim is >= 0.85), CPU s windowed / plain: %.2f"
      % (m(wr) / m(pr), m(wc) / m(pc)))
print("per-round windowed / plain msg/s: " +
      " ".join("%.2f" % (a / b) for a, b in zip(wr, pr)))
print("CPU us per message: decode %.2f, plain %.2f, windowed %.2f"
      % (dc * 1e6 / count, m(pc) * 1e6 / count, m(wc) * 1e6 / count))
EOF

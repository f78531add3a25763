#!/usr/bin/env bash
# e2e_as_cluster.sh — what the cluster's code path costs in one process: `eddy run` against
# `eddy run --as-cluster` (the coordinator and one worker node of a cluster, no network) on the
# same topic, same invocation.
#
# Starts `eddy broker` (in-memory, loopback only) with a topic of PARTITIONS (default 16)
# partitions, produces COUNT (default 1,000,000) unwrapped ride-booking CDC messages (zstd), and
# runs ROUNDS (default 3) rounds, each draining the topic from the beginning
# (`--exit-at-end`, checkpoints every INTERVAL, default "1s", storage on disk under CP_BASE,
# default /var/tmp) with three pipelines, each once per path (the order rotates every round):
#   windowed   deploy/pipelines/ncr_windowed.toml's windows and aggregates (file sink in /dev/shm)
#   plain      the same without aggregation (every filtered row written)
#   changelog  deploy/pipelines/ncr_changelog.toml (~570k ids of state)
# Prints msg/s per run, the medians, and the ratios as-cluster / run (1.0 = as fast); then the
# checkpoint directory's bytes at the end of each changelog run (eddy run's epochs/ and sst/;
# the cluster's manifests and unit files, and what the unit files would take uncompressed:
# format 1, from each file's trailer).
#
# Usage: bench/e2e_as_cluster.sh [BUILD_DIR]     (default: <repo>/build)
# Env:   COUNT=1000000 ROUNDS=3 PARTITIONS=16 INTERVAL=1s CP_BASE=/var/tmp KEEP=0
#        INTERVAL=off: no [checkpoint] table (output per trigger, nothing stored)
#        UNCOMPRESSED_REF=1: then ROUNDS more rounds of the changelog --as-cluster alone, with and
#        without EDDY_UNIT_UNCOMPRESSED=1 (unit files in format 1, as before compression)
# Needs: python3, kcat. Stops by itself; the broker is killed on exit. ~3 minutes on 2 cores.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
build="${1:-$repo/build}"
eddy="$build/app/eddy"
example="$repo/deploy/pipelines/ncr_windowed.toml"
changelog="$repo/deploy/pipelines/ncr_changelog.toml"
COUNT="${COUNT:-1000000}"
ROUNDS="${ROUNDS:-3}"
PARTITIONS="${PARTITIONS:-16}"
INTERVAL="${INTERVAL:-1s}"
CP_BASE="${CP_BASE:-/var/tmp}"
KEEP="${KEEP:-0}"
topic="bench.e2e_as_cluster"

name=e2e_as_cluster
produce_extra=()
# shellcheck source=e2e_common.sh
source "$here/e2e_common.sh"
make_cp_root

# $1 output file, $2 awk stop marker, $3 source pipeline.
make_pipeline() {
  awk -v stop="$2" 'index($0, stop) == 1 {exit} {print}' "${3:-$example}" |
    sed -e "s|^topic = .*|topic = \"$topic\"|" \
        -e "s|^bootstrap_servers = .*|bootstrap_servers = \"$bootstrap\"|" >"$1"
  printf '\n[[sinks]]\ntype = "file"\npath = "%s/out"\n\n[dead_letter]\npath = "%s/dead"\n' \
    "$work" "$work" >>"$1"
  [[ "$INTERVAL" == off ]] ||
    printf '\n[checkpoint]\ndir = "%s/cp"\ninterval = "%s"\n' "$cp_root" "$INTERVAL" >>"$1"
}
make_pipeline "$work/windowed.toml" "# ---- sinks"
make_pipeline "$work/plain.toml" "# ---- aggregation"
make_pipeline "$work/changelog.toml" "[[sinks]]" "$changelog"

TIMEFORMAT='%R'
run_eddy() {  # $1 = pipeline, $2.. = extra eddy run options; prints msg/s
  local t in config="$1"
  shift
  rm -rf "$work/out" "$work/dead" "$work/summary.json" "$cp_root/cp"
  t=$( { time "$eddy" run -c "$config" --exit-at-end --summary-json "$work/summary.json" "$@" \
           >/dev/null 2>"$work/cmd.err"; } 2>&1 ) ||
    { cat "$work/cmd.err" >&2; echo "$name: failed: $config $*" >&2; exit 1; }
  in=$(python3 -c "import json; print(json.load(open('$work/summary.json'))['in'])")
  [[ "$in" -eq "$COUNT" ]] || { echo "$name: eddy read $in of $COUNT ($config $*)" >&2; exit 1; }
  [[ "$config" == */changelog.toml && "$INTERVAL" != off ]] && cp_bytes "$*" >>"$work/cp_bytes.txt"
  python3 -c "print(round($COUNT / $t))"
}

cp_bytes() {  # one line: path, bytes of checkpoint.dir, of its unit files, and those uncompressed
  python3 - "$cp_root/cp" "$1" <<'EOF3'
import os, struct, sys
root, opts = sys.argv[1], sys.argv[2]
total = units = raw = 0
for d, _, files in os.walk(root):
    for f in files:
        p = os.path.join(d, f)
        n = os.path.getsize(p)
        total += n
        if f.endswith((".snap", ".delta")):
            units += n
            with open(p, "rb") as fh:
                head = fh.read(16)
                version, plen = struct.unpack("<II", head[8:16])
                if version == 2:
                    fh.seek(n - 12)
                    raw += 16 + plen + struct.unpack("<Q", fh.read(8))[0] + 12
                else:
                    raw += n
print("as-cluster" if "--as-cluster" in opts else "run", total, units, raw)
EOF3
}

declare -A rate
runs=(windowed:run windowed:cluster plain:run plain:cluster changelog:run changelog:cluster)
for round in $(seq "$ROUNDS"); do
  line="round $round (load $(cut -d' ' -f1 /proc/loadavg)):"
  for i in 0 1 2 3 4 5; do
    key="${runs[$(( (i + 2 * (round - 1) + round - 1) % 6 ))]}"
    p="${key%%:*}"
    if [[ "${key#*:}" == cluster ]]; then r=$(run_eddy "$work/$p.toml" --as-cluster)
    else r=$(run_eddy "$work/$p.toml"); fi
    rate[$key]+="$r "
    line+=" $key $r |"
  done
  echo "${line% |}"
done
python3 - "${rate[windowed:run]}" "${rate[windowed:cluster]}" "${rate[plain:run]}" \
  "${rate[plain:cluster]}" "${rate[changelog:run]}" "${rate[changelog:cluster]}" <<'EOF2'
import statistics, sys
m = statistics.median
w, wc, p, pc, c, cc = ([float(v) for v in a.split()] for a in sys.argv[1:])
print()
print("median msg/s: windowed run %.0f, as-cluster %.0f; plain run %.0f, as-cluster %.0f; "
      "changelog run %.0f, as-cluster %.0f" % (m(w), m(wc), m(p), m(pc), m(c), m(cc)))
print("as-cluster / run (medians): windowed %.3f, plain %.3f, changelog %.3f"
      % (m(wc) / m(w), m(pc) / m(p), m(cc) / m(c)))
ratios = lambda x, y: " ".join("%.2f" % (a / b) for a, b in zip(x, y))
print("per round windowed: %s; plain: %s; changelog: %s" % (ratios(wc, w), ratios(pc, p), ratios(cc, c)))
EOF2
[[ "$INTERVAL" == off ]] || python3 - "$work/cp_bytes.txt" <<'EOF4'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
m = lambda k, i: statistics.median(int(r[i]) for r in rows if r[0] == k) / 1e6
print("changelog checkpoint.dir at the end (medians): eddy run %.1f MB; as-cluster %.1f MB, "
      "its unit files %.1f MB (uncompressed, format 1: %.1f MB)"
      % (m("run", 1), m("as-cluster", 1), m("as-cluster", 2), m("as-cluster", 3)))
EOF4

if [[ "${UNCOMPRESSED_REF:-0}" == 1 ]]; then
  : >"$work/cp_bytes.txt"
  zr=() rr=()
  for round in $(seq "$ROUNDS"); do
    if (( round % 2 )); then
      a=$(run_eddy "$work/changelog.toml" --as-cluster)
      b=$(EDDY_UNIT_UNCOMPRESSED=1 run_eddy "$work/changelog.toml" --as-cluster)
    else
      b=$(EDDY_UNIT_UNCOMPRESSED=1 run_eddy "$work/changelog.toml" --as-cluster)
      a=$(run_eddy "$work/changelog.toml" --as-cluster)
    fi
    zr+=("$a") rr+=("$b")
    echo "changelog --as-cluster round $round: zstd $a | uncompressed $b msg/s"
  done
  python3 - "${zr[*]}" "${rr[*]}" "$work/cp_bytes.txt" <<'EOF5'
import statistics, sys
z = [float(v) for v in sys.argv[1].split()]
r = [float(v) for v in sys.argv[2].split()]
m = statistics.median
print("changelog --as-cluster, zstd / uncompressed unit files (medians): %.3f (%.0f / %.0f msg/s)"
      % (m(z) / m(r), m(z), m(r)))
rows = [l.split() for l in open(sys.argv[3])]
units = sorted(int(x[2]) for x in rows)
print("unit files at the end: %.1f MB (zstd) and %.1f MB (uncompressed), runs alternating"
      % (units[0] / 1e6, units[-1] / 1e6))
EOF5
fi

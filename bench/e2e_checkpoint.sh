#!/usr/bin/env bash
# e2e_checkpoint.sh — what checkpoints cost end to end, and what they store.
#
# Part 1, throughput: starts `eddy broker` (in-memory, loopback only) with a topic of PARTITIONS
# (default 16) partitions, produces COUNT (default 1,000,000) unwrapped ride-booking CDC
# messages (zstd), and runs ROUNDS (default 3) rounds, each draining the topic from the
# beginning (`eddy run --exit-at-end`) with four pipelines made from
# deploy/pipelines/ncr_windowed.toml (file sink and dead letters in /dev/shm):
#   windowed        the example's windows/aggregates, checkpoints off
#   windowed+cp     the same with [checkpoint] interval = INTERVAL (default "1s"), sync on,
#                   checkpoint storage on disk under CP_BASE (default /var/tmp)
#   plain / plain+cp  the same without aggregation (every filtered row written)
#   changelog / changelog+cp  deploy/pipelines/ncr_changelog.toml (the last row of every booking
#                   id, ~570k of them, is state: the state-heavy case, where each epoch of the
#                   catch-up writes every id it saw)
# The order rotates every round. Prints msg/s per run, medians, and the ratios
# with-checkpoints / without (the aim is >= 0.95) plus the epochs each checkpointed run took.
#
# Part 2, state size and restore: the changelog example (deploy/pipelines/ncr_changelog.toml:
# last row per booking id in state) with checkpoints every second (retain 1000), while
# `eddy produce` writes STEADY_COUNT (default 300,000) more messages at STEADY_RATE (default
# 30,000/s) into the same topic (the run first catches up with the COUNT already there, so the
# state holds every booking id seen): per-epoch new bytes (what each incremental checkpoint wrote) and
# total bytes (what a restore copies), then one more run that restores the last checkpoint
# (its "restored in N ms" line).
#
# Usage: bench/e2e_checkpoint.sh [BUILD_DIR]     (default: <repo>/build)
# Env:   COUNT=1000000 ROUNDS=3 PARTITIONS=16 INTERVAL=1s CP_BASE=/var/tmp STEADY_COUNT=300000
#        STEADY_RATE=30000 KEEP=0
# Needs: python3, kcat. Stops by itself; the broker is killed on exit. ~5 minutes on 2 cores.
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
STEADY_COUNT="${STEADY_COUNT:-300000}"
STEADY_RATE="${STEADY_RATE:-30000}"
KEEP="${KEEP:-0}"
topic="bench.e2e_checkpoint"

name=e2e_checkpoint
produce_extra=()
# shellcheck source=e2e_common.sh
source "$here/e2e_common.sh"
make_cp_root

# $1 output file, $2 awk stop marker, $3 "cp" for a [checkpoint] table, $4 source pipeline.
make_pipeline() {
  awk -v stop="$2" 'index($0, stop) == 1 {exit} {print}' "${4:-$example}" |
    sed -e "s|^topic = .*|topic = \"$topic\"|" \
        -e "s|^bootstrap_servers = .*|bootstrap_servers = \"$bootstrap\"|" >"$1"
  printf '\n[[sinks]]\ntype = "file"\npath = "%s/out"\n\n[dead_letter]\npath = "%s/dead"\n' \
    "$work" "$work" >>"$1"
  if [[ "$3" == cp ]]; then
    printf '\n[checkpoint]\ndir = "%s/cp"\ninterval = "%s"\n' "$cp_root" "$INTERVAL" >>"$1"
  fi
}
make_pipeline "$work/windowed.toml" "# ---- sinks" ""
make_pipeline "$work/windowed+cp.toml" "# ---- sinks" cp
make_pipeline "$work/plain.toml" "# ---- aggregation" ""
make_pipeline "$work/plain+cp.toml" "# ---- aggregation" cp
make_pipeline "$work/changelog.toml" "[[sinks]]" "" "$changelog"
make_pipeline "$work/changelog+cp.toml" "[[sinks]]" cp "$changelog"

TIMEFORMAT='%R'
run_eddy() {  # $1 = pipeline; prints "msgs_per_s epochs"
  local t in epochs
  rm -rf "$work/out" "$work/dead" "$work/summary.json" "$cp_root/cp"
  t=$( { time "$eddy" run -c "$1" --exit-at-end --summary-json "$work/summary.json" \
           >/dev/null 2>"$work/cmd.err"; } 2>&1 ) ||
    { cat "$work/cmd.err" >&2; echo "e2e_checkpoint: failed: $1" >&2; exit 1; }
  in=$(python3 -c "import json; print(json.load(open('$work/summary.json'))['in'])")
  [[ "$in" -eq "$COUNT" ]] || { echo "e2e_checkpoint: eddy read $in of $COUNT" >&2; exit 1; }
  epochs=0
  [[ -f "$cp_root/cp/LATEST" ]] && epochs=$(cat "$cp_root/cp/LATEST")
  echo "$(python3 -c "print(round($COUNT / $t))") $epochs"
}

declare -A rate
names=(windowed windowed+cp plain plain+cp changelog changelog+cp)
for round in $(seq "$ROUNDS"); do
  line="round $round (load $(cut -d' ' -f1 /proc/loadavg)):"
  for i in 0 1 2 3 4 5; do
    n="${names[$(( (i + 2 * (round - 1)) % 6 ))]}"
    read -r r e < <(run_eddy "$work/$n.toml")
    rate[$n]+="$r "
    if [[ $n == *cp ]]; then line+=" $n $r msg/s ($e epochs) |"; else line+=" $n $r msg/s |"; fi
  done
  echo "${line% |}"
done
python3 - "${rate[windowed]}" "${rate[windowed+cp]}" "${rate[plain]}" "${rate[plain+cp]}" \
  "${rate[changelog]}" "${rate[changelog+cp]}" <<'EOF2'
import statistics, sys
m = statistics.median
w, wc, p, pc, c, cc = ([float(v) for v in a.split()] for a in sys.argv[1:])
print()
print("median msg/s: windowed %.0f, windowed+cp %.0f, plain %.0f, plain+cp %.0f, changelog %.0f, "
      "changelog+cp %.0f" % (m(w), m(wc), m(p), m(pc), m(c), m(cc)))
print("with checkpoints / without (aim >= 0.95): windowed %.3f, plain %.3f, changelog %.3f"
      % (m(wc) / m(w), m(pc) / m(p), m(cc) / m(c)))
ratios = lambda x, y: " ".join("%.2f" % (a / b) for a, b in zip(x, y))
print("per round windowed: %s; plain: %s; changelog: %s" % (ratios(wc, w), ratios(pc, p), ratios(cc, c)))
EOF2

# ---- part 2: state size growth under steady load, and restore -----------------------------------
steady="$topic"  # the run first drains the COUNT messages already there, then keeps up
sed -e "s|^topic = .*|topic = \"$steady\"|" \
    -e "s|^bootstrap_servers = .*|bootstrap_servers = \"$bootstrap\"|" "$changelog" |
  awk 'index($0, "[[sinks]]") == 1 {exit} {print}' >"$work/changelog.toml"
printf '\n[[sinks]]\ntype = "file"\npath = "%s/cl-out"\n\n[dead_letter]\npath = "%s/cl-dead"\n' \
  "$work" "$work" >>"$work/changelog.toml"
printf '\n[checkpoint]\ndir = "%s/cl-cp"\ninterval = "1s"\nretain = 1000\n' "$cp_root" \
  >>"$work/changelog.toml"
echo
echo "steady load: $STEADY_COUNT messages at $STEADY_RATE/s into $steady, changelog pipeline"
"$eddy" run -c "$work/changelog.toml" >/dev/null 2>"$work/steady.err" &
run_pid=$!
"$eddy" produce --bootstrap "$bootstrap" --topic "$steady" --count "$STEADY_COUNT" \
  --rate "$STEADY_RATE" --seed 7 >/dev/null
sleep 2
kill -TERM "$run_pid"
wait "$run_pid" || { cat "$work/steady.err" >&2; exit 1; }
"$eddy" checkpoint list --dir "$cp_root/cl-cp" | python3 -c '
import re, sys
rows = [tuple(map(int, m.groups())) for m in
        (re.match(r"epoch (\d+) .* total (\d+) B  new (\d+) B", l) for l in sys.stdin) if m]
print("epoch  total_bytes  new_bytes")
for e, t, n in rows: print("%5d %12d %10d" % (e, t, n))
if len(rows) > 2:
    news = sorted(n for _, _, n in rows[1:])
    print("epochs %d; new bytes per epoch: median %d, max %d; total grew %d -> %d bytes"
          % (len(rows), news[len(news) // 2], news[-1], rows[0][1], rows[-1][1]))
'
"$eddy" run -c "$work/changelog.toml" --exit-at-end >/dev/null 2>"$work/restore.err" ||
  { cat "$work/restore.err" >&2; exit 1; }
grep -h "resuming from checkpoint" "$work/restore.err"

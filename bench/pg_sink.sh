#!/usr/bin/env bash
# pg_sink.sh — rows/s into PostgreSQL: eddy's postgres sink vs `psql \copy` of the same rows,
# same run.
#
# Starts `eddy broker` (loopback) with a topic of PARTITIONS (default 16) partitions, produces
# COUNT (default 500,000) unwrapped ride-booking CDC messages, starts a throw-away PostgreSQL
# server (initdb in the work dir, a free loopback port, fsync on as by default), then runs ROUNDS
# (default 3) rounds, each:
#   eddy-pg    eddy run --exit-at-end of the example pipeline's fields/filter/select into a
#              postgres sink (mode = "append") with 1 s checkpoints (the exactly-once path:
#              staged JSON Lines, one transaction per staged file with its progress row);
#              rows/s = rows in the table / wall time (Kafka fetch, decoding and all included)
#   eddy-file  the same pipeline into a file sink (context: what the pipeline costs without
#              PostgreSQL)
#   psql-copy  the same rows, exported from eddy's table as CSV beforehand, loaded into a fresh
#              table of the same columns with psql's \copy (the reference)
#   eddy-pg-text  eddy-pg with EDDY_PG_TEXT_COPY=1: parts staged as COPY text, as before binary
#              COPY (2026-12-03)
#   psql-binary   the same rows loaded with \copy ... WITH (FORMAT binary) (what eddy sends)
#   eddy-pg-1conn eddy-pg with EDDY_PG_ONE_CONNECTION=1: an epoch's parts delivered one after
#              the other on one connection, as before two connections (2026-12-03)
# and prints rows/s per round, the medians and the ratio eddy-pg / psql-copy of the medians.
#
# Usage: bench/pg_sink.sh [BUILD_DIR]     (default: <repo>/build)
# Env:   COUNT=500000 ROUNDS=3 PARTITIONS=16 KEEP=0 PG_BIN=/usr/lib/postgresql/15/bin
# Needs: kcat, python3, PostgreSQL's server package (initdb, pg_ctl, psql). As root the server
# runs as the `postgres` user (runuser). Runtime on 2 cores: ~2 minutes.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
build="${1:-$repo/build}"
eddy="$build/app/eddy"
example="$repo/deploy/pipelines/ncr_ride_bookings.toml"
COUNT="${COUNT:-500000}"
ROUNDS="${ROUNDS:-3}"
PARTITIONS="${PARTITIONS:-16}"
KEEP="${KEEP:-0}"
PG_BIN="${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)}"
topic="bench.pg_sink"
[[ -x "$PG_BIN/initdb" ]] || { echo "pg_sink: PostgreSQL server binaries not found (PG_BIN)" >&2; exit 2; }

name=pg_sink
produce_extra=()
# shellcheck source=e2e_common.sh
source "$here/e2e_common.sh"

# ---- PostgreSQL ---------------------------------------------------------------------------------
pg_dir="$(mktemp -d /var/tmp/eddy-pg-bench.XXXXXX)"
as=()
if [[ "$(id -u)" -eq 0 ]]; then chown postgres:postgres "$pg_dir"; as=(runuser -u postgres --); fi
pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"${as[@]}" "$PG_BIN/initdb" -D "$pg_dir/data" -U eddy -A trust -E UTF8 --locale=C >"$pg_dir/initdb.log" 2>&1 ||
  { cat "$pg_dir/initdb.log" >&2; exit 1; }
"${as[@]}" "$PG_BIN/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w \
  -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1" start >/dev/null
stop_pg() {
  "${as[@]}" "$PG_BIN/pg_ctl" -D "$pg_dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$pg_dir"
}
trap 'stop_pg; cleanup' EXIT
dsn="host=127.0.0.1 port=$pg_port dbname=postgres user=eddy"
psql_do() { "$PG_BIN/psql" "$dsn" -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }
echo "postgres: $("$PG_BIN/postgres" --version), port $pg_port"

# ---- pipelines ----------------------------------------------------------------------------------
make_pipeline() {  # $1 = file, $2 = sink table body, $3 = checkpoint dir
  awk '/^# ---- sinks/ {exit} {print}' "$example" |
    sed -e "s|^topic = .*|topic = \"$topic\"|" \
        -e "s|^bootstrap_servers = .*|bootstrap_servers = \"$bootstrap\"|" \
        -e "s|^group_id = .*|group_id = \"eddy-bench-pg\"|" >"$1"
  cat >>"$1" <<EOF
[[sinks]]
$2

[dead_letter]
path = "$work/dead"

[checkpoint]
dir = "$3"
interval = "1s"
EOF
}

declare -a r_pg r_file r_copy r_text r_bin r_one
TIMEFORMAT='%R'
wall() {  # runs "$@" (output to $work/cmd.*); prints wall seconds
  local t
  t=$( { time "$@" >"$work/cmd.out" 2>"$work/cmd.err"; } 2>&1 ) ||
    { cat "$work/cmd.err" >&2; echo "pg_sink: failed: $*" >&2; exit 1; }
  echo "$t"
}
rate() { python3 -c "print(round($1 / $2))"; }
# eddy-pg again into a fresh table with the benchmark-only switch $1=1 (a reference run);
# checks that it wrote all $2 rows and prints its rows/s.
pg_reference() {
  local w got
  psql_do -c "DROP TABLE rides, eddy_sink_progress"
  rm -rf "$work/cp"
  w=$(wall env "$1=1" "$eddy" run -c "$work/pg.toml" --exit-at-end)
  got=$(psql_do -c "SELECT count(*) FROM rides")
  [[ "$got" == "$2" ]] || { echo "pg_sink: the $1=1 run wrote $got of $2 rows" >&2; exit 1; }
  rate "$2" "$w"
}

for round in $(seq "$ROUNDS"); do
  psql_do -c "DROP TABLE IF EXISTS rides, rides_copy, eddy_sink_progress"
  rm -rf "$work/cp" "$work/cp2" "$work/out" "$work/dead"
  make_pipeline "$work/pg.toml" "type = \"postgres\"
dsn = \"$dsn\"
table = \"rides\"
mode = \"append\"" "$work/cp"
  make_pipeline "$work/file.toml" "type = \"file\"
path = \"$work/out\"" "$work/cp2"

  w=$(wall "$eddy" run -c "$work/pg.toml" --exit-at-end)
  rows=$(psql_do -c "SELECT count(*) FROM rides")
  r_pg+=("$(rate "$rows" "$w")")

  w=$(wall "$eddy" run -c "$work/file.toml" --exit-at-end)
  r_file+=("$(rate "$rows" "$w")")

  r_text+=("$(pg_reference EDDY_PG_TEXT_COPY "$rows")")
  r_one+=("$(pg_reference EDDY_PG_ONE_CONNECTION "$rows")")

  psql_do -c "\\copy rides TO '$work/rides.csv' WITH (FORMAT csv)"
  psql_do -c "CREATE TABLE rides_copy (LIKE rides)"
  w=$(wall psql_do -c "\\copy rides_copy FROM '$work/rides.csv' WITH (FORMAT csv)")
  copied=$(psql_do -c "SELECT count(*) FROM rides_copy")
  [[ "$copied" == "$rows" ]] || { echo "pg_sink: \\copy loaded $copied of $rows rows" >&2; exit 1; }
  r_copy+=("$(rate "$rows" "$w")")
  psql_do -c "\\copy rides TO '$work/rides.bin' WITH (FORMAT binary)"
  psql_do -c "CREATE TABLE rides_bin (LIKE rides)"
  w=$(wall psql_do -c "\\copy rides_bin FROM '$work/rides.bin' WITH (FORMAT binary)")
  r_bin+=("$(rate "$rows" "$w")")
  psql_do -c "DROP TABLE rides_bin"
  echo "round $round: $rows rows; eddy-pg ${r_pg[-1]} rows/s, eddy-pg-text ${r_text[-1]} rows/s, eddy-pg-1conn ${r_one[-1]} rows/s, eddy-file ${r_file[-1]} rows/s, psql-copy ${r_copy[-1]} rows/s, psql-binary ${r_bin[-1]} rows/s"
  rm -f "$work/rides.csv" "$work/rides.bin"
done

python3 - "${r_pg[*]}" "${r_file[*]}" "${r_copy[*]}" "${r_text[*]}" "${r_bin[*]}" "${r_one[*]}" <<'EOF'
import statistics, sys
pg, f, c, t, b, o = ([float(x) for x in a.split()] for a in sys.argv[1:7])
mp, mf, mc = statistics.median(pg), statistics.median(f), statistics.median(c)
mt, mb = statistics.median(t), statistics.median(b)
print(f"median rows/s: eddy-pg {mp:.0f}, eddy-pg-text {mt:.0f}, eddy-file {mf:.0f}, psql-copy {mc:.0f}, psql-binary {mb:.0f}")
print(f"ratio eddy-pg / psql-copy: {mp / mc:.2f}; eddy-pg-text / psql-copy: {mt / mc:.2f}; "
      f"eddy-pg / eddy-file: {mp / mf:.2f}; eddy-pg / psql-binary: {mp / mb:.2f}")
mo = statistics.median(o)
print(f"eddy-pg-1conn {mo:.0f} rows/s: eddy-pg-1conn / psql-copy {mo / mc:.2f}; eddy-pg / eddy-pg-1conn {mp / mo:.2f}")
EOF

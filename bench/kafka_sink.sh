#!/usr/bin/env bash
# kafka_sink.sh — rows/s into Kafka: eddy's exactly-once Kafka sink vs `kcat -P` of the same rows,
# same invocation, same broker.
#
# Starts `eddy broker` with an input topic of PARTITIONS (default 8) partitions, produces COUNT
# (default 400,000) unwrapped ride-booking CDC messages, then ROUNDS (default 3) rounds of:
#   eddy   eddy run --exit-at-end of a cleaned-row pipeline (id, op, vehicle_type,
#          pickup_location, booking_value, created_at_ts) with checkpoints (1 s, on disk under
#          CP_BASE, fsync on) and ONE sink, `type = "kafka"` (default key = id, headers, staged
#          per epoch, published with an idempotent zstd producer) into a fresh topic (the dev
#          broker creates it with 4 partitions on first use). This includes reading and decoding the input: a lower bound
#          of the sink's own rate.
#   file   the same pipeline with a file sink instead: the source side's own rate
#   publish  the sink's publish step alone (build/bench/kafka_publish_bench): the same rows
#          staged as one epoch part by the same sink, then published (keys, partitions, headers,
#          the end offsets recorded first, every acknowledgement awaited) into a fresh topic;
#          timed inside, the publish only: like for like with kcat, which reads a file too
#   kcat   kcat -P -z zstd of the same rows (the JSON Lines a file sink wrote for the same
#          pipeline, once, before the rounds) into another fresh topic: no keys, no headers.
#   kcat+  kcat -P -z zstd -K of the same rows with eddy's keys ({"id":N}) and four headers of
#          the sizes eddy's have (-H: the same four on every record; eddy's eddy-seq varies):
#          the records eddy produces, from kcat.
# Each round checks that the eddy topic holds as many records as the file sink wrote rows. It
# prints rows/s per round, the medians and the ratios publish/kcat and eddy/kcat of the medians.
#
# Usage: bench/kafka_sink.sh [BUILD_DIR]     (default: <repo>/build)
# Env:   COUNT=400000 ROUNDS=3 PARTITIONS=8 KEEP=0 CP_BASE=/var/tmp
# Needs: kcat, python3. Total runtime on 2 cores: about a minute.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
build="${1:-$repo/build}"
eddy="$build/app/eddy"
COUNT="${COUNT:-400000}"
ROUNDS="${ROUNDS:-3}"
PARTITIONS="${PARTITIONS:-8}"
KEEP="${KEEP:-0}"
topic="bench.kafka_sink.in"
name="kafka_sink"
produce_extra=(--format unwrapped)

source "$here/e2e_common.sh"
make_cp_root

pipeline() {  # $1 = sinks table text, $2 = checkpoint dir
  cat <<EOF
[pipeline]
name = "kafka_sink_bench"
trigger_interval_ms = 1000
[source]
bootstrap_servers = "$bootstrap"
topic = "$topic"
[[fields]]
name = "id"
type = "int"
[[fields]]
name = "op"
column = "\$op"
[[fields]]
name = "vehicle_type"
column = "ncr_ride_bookings.csv/vehicle+type"
[[fields]]
name = "pickup_location"
column = "ncr_ride_bookings.csv/pickup+location"
[[fields]]
name = "booking_value"
column = "ncr_ride_bookings.csv/booking+value"
type = "double"
[[fields]]
name = "created_at_ts"
column = "created_at"
type = "timestamp"
unit = "micros"
$1
[checkpoint]
dir = "$2"
interval = "1s"
EOF
}

# The rows, once, through a file sink.
# The pipeline with one sink: $1 = type, $2 = its `path` or `topic` key, $3 = value, $4 = checkpoint dir.
with_sink() {
  pipeline "[[sinks]]
type = \"$1\"
$2 = \"$3\"" "$4"
}

with_sink file path "$work/rows" "$cp_root/files" >"$work/files.toml"
"$eddy" run -c "$work/files.toml" --exit-at-end >/dev/null 2>"$work/files.err"
cat "$work"/rows/part-*.jsonl >"$work/rows.jsonl"
rows=$(wc -l <"$work/rows.jsonl")
echo "rows: $rows ($(du -m "$work/rows.jsonl" | cut -f1) MB of JSON Lines)"
# The same rows keyed as eddy keys them (key TAB row), for kcat -K.
python3 - "$work/rows.jsonl" "$work/keyed.txt" <<'EOF0'
import json, sys
with open(sys.argv[1]) as rows, open(sys.argv[2], "w") as out:
    for line in rows:
        line = line.rstrip("\n")
        out.write('{"id":%d}\t%s\n' % (json.loads(line)["id"], line))
EOF0

eddy_rates=()
kcat_rates=()
kcat_keyed_rates=()
pub_rates=()
file_rates=()
publish_bench="$build/bench/kafka_publish_bench"
for round in $(seq "$ROUNDS"); do
  out="bench.kafka_sink.out$round"
  with_sink kafka topic "$out" "$cp_root/kafka$round" >"$work/kafka$round.toml"
  t0=$(now)
  "$eddy" run -c "$work/kafka$round.toml" --exit-at-end >/dev/null 2>"$work/kafka$round.err"
  t1=$(now)
  got=$(kcat -C -b "$bootstrap" -t "$out" -e -o beginning -q -f 'x\n' | wc -l)
  [[ "$got" -eq "$rows" ]] || { echo "round $round: topic $out holds $got records, not $rows" >&2; exit 1; }
  kout="bench.kafka_sink.kcat$round"
  t2=$(now)
  kcat -P -b "$bootstrap" -t "$kout" -z zstd -X linger.ms=5 <"$work/rows.jsonl"
  t3=$(now)
  kout2="bench.kafka_sink.kcatkeyed$round"
  t4=$(now)
  kcat -P -b "$bootstrap" -t "$kout2" -z zstd -X linger.ms=5 -K $'\t' \
    -H eddy-pipeline=kafka_sink_bench -H eddy-unit=part-00000000000000000001-00001 \
    -H eddy-epoch=1 -H eddy-seq=123456 <"$work/keyed.txt"
  t5=$(now)
  kk=$(python3 -c "print(round($rows/($t5-$t4)))")
  kcat_keyed_rates+=("$kk")
  # The same pipeline with a file sink: the source side's own rate.
  with_sink file path "$work/rows$round" "$cp_root/files$round" >"$work/files$round.toml"
  tf0=$(now)
  "$eddy" run -c "$work/files$round.toml" --exit-at-end >/dev/null 2>"$work/files$round.err"
  tf1=$(now)
  f=$(python3 -c "print(round($rows/($tf1-$tf0)))")
  file_rates+=("$f")
  # The publish step alone: the same rows staged as one epoch part, then published (timed
  # inside: the publish, not the staging) into a topic of its own.
  pout="bench.kafka_sink.publish$round"
  with_sink kafka topic "$pout" "$cp_root/publish$round" >"$work/publish$round.toml"
  pub_s=$("$publish_bench" "$work/publish$round.toml" "$work/rows.jsonl" | awk '{print $(NF-1)}')
  got=$(kcat -C -b "$bootstrap" -t "$pout" -e -o beginning -q -f 'x\n' | wc -l)
  [[ "$got" -eq "$rows" ]] || { echo "round $round: topic $pout holds $got records, not $rows" >&2; exit 1; }
  p=$(python3 -c "print(round($rows/$pub_s))")
  pub_rates+=("$p")
  e=$(python3 -c "print(round($rows/($t1-$t0)))")
  k=$(python3 -c "print(round($rows/($t3-$t2)))")
  eddy_rates+=("$e")
  kcat_rates+=("$k")
  echo "round $round: eddy run (kafka sink) $e rows/s ($(python3 -c "print(round($t1-$t0,2))") s), file sink $f rows/s, publish alone $p rows/s ($pub_s s), kcat -P $k rows/s ($(python3 -c "print(round($t3-$t2,2))") s), kcat -P keyed with headers $kk rows/s"
done
python3 - "${eddy_rates[*]}" "${kcat_rates[*]}" "${pub_rates[*]}" "${file_rates[*]}" \
  "${kcat_keyed_rates[*]}" <<'EOF'
import statistics, sys
kk = statistics.median(map(float, sys.argv[5].split()))
e = statistics.median(map(float, sys.argv[1].split()))
k = statistics.median(map(float, sys.argv[2].split()))
p = statistics.median(map(float, sys.argv[3].split()))
f = statistics.median(map(float, sys.argv[4].split()))
print(f"median: eddy run {e:.0f} rows/s (file sink {f:.0f}), publish alone {p:.0f} rows/s, kcat -P {k:.0f} rows/s")
print(f"ratios: publish alone / kcat -P {p/k:.2f}; eddy run / kcat -P {e/k:.2f}; eddy run kafka / file sink {e/f:.2f}")
print(f"kcat -P keyed with four headers: {kk:.0f} rows/s; publish alone / that {p/kk:.2f}; eddy run / that {e/kk:.2f}")
EOF

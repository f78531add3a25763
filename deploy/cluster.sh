#!/usr/bin/env bash
# A local eddy cluster on loopback, for trying failover by hand (PREVIEW; README "Multi-node").
#   deploy/cluster.sh [WORKERS]        # default 3 workers; Ctrl-C stops everything
# Starts a development broker (16 partitions of the example topic), `eddy coordinator` with the
# windowed example pipeline (into a file sink) and WORKERS `eddy worker`s, produces sample
# ride-booking CDC data at 2000 records/s for a minute, prints their PIDs and log files, then
# follows the coordinator's log. Kill a worker (kill -9 PID, or kill -STOP PID) and watch its
# units move; start it again with the printed command and watch it rejoin.
set -euo pipefail
cd "$(dirname "$0")/.."
workers=${1:-3}
case "$workers" in
  ''|*[!0-9]*) echo "usage: deploy/cluster.sh [WORKERS]  (a number of workers, 1-32)" >&2; exit 2 ;;
esac
if [ "$workers" -lt 1 ] || [ "$workers" -gt 32 ]; then
  echo "deploy/cluster.sh: WORKERS must be 1-32, got $workers" >&2
  exit 2
fi
deploy/setup.sh
eddy=$PWD/build/app/eddy
run_dir=$(mktemp -d /tmp/eddy-cluster-XXXXXX)
pids=()
cleanup() {
  trap - EXIT INT TERM
  # The producer, the workers and the coordinator first (the producer flushes to the broker
  # what it holds; a paused worker is woken to take its SIGTERM), then the broker (pids[0]).
  local i
  for ((i = ${#pids[@]} - 1; i >= 1; i--)); do
    kill -TERM "${pids[i]}" 2>/dev/null || true
    kill -CONT "${pids[i]}" 2>/dev/null || true
  done
  for ((i = ${#pids[@]} - 1; i >= 1; i--)); do wait "${pids[i]}" 2>/dev/null || true; done
  if [ ${#pids[@]} -gt 0 ]; then kill -TERM "${pids[0]}" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  echo "cluster stopped; logs kept in $run_dir"
}
trap cleanup EXIT INT TERM

topic=business_postgres.public.business_ncr_ride_bookings
"$eddy" broker --topic "$topic:16" >"$run_dir/broker.out" 2>"$run_dir/broker.log" &
pids+=($!)
for _ in $(seq 100); do grep -q bootstrap= "$run_dir/broker.out" && break; sleep 0.1; done
bootstrap=$(sed -n 's/bootstrap=//p' "$run_dir/broker.out")
[ -n "$bootstrap" ] || { echo "the broker did not start; see $run_dir/broker.log" >&2; exit 1; }

# A cluster pipeline needs a [checkpoint] table (the coordinator commits epochs there) and
# paths that mean the same on every node: the windowed example with a file sink, dead letters
# and checkpoints in the run directory.
pipeline=$run_dir/ncr_windowed_cluster.toml
sed -e 's|^type = "console"|type = "file"\npath = "'"$run_dir"'/output"|' \
    -e '/^truncate = /d' -e '/^num_rows = /d' \
    -e 's|^path = "dead-letter/ncr_windowed".*|path = "'"$run_dir"'/dead-letter"|' \
    deploy/pipelines/ncr_windowed.toml >"$pipeline"
printf '\n[checkpoint]\ndir = "%s"\ninterval = "1s"\n' "$run_dir/checkpoints" >>"$pipeline"
"$eddy" coordinator -c "$pipeline" --listen 127.0.0.1:0 \
  --state-dir "$run_dir/coordinator" --bootstrap "$bootstrap" \
  >"$run_dir/coordinator.out" 2>"$run_dir/coordinator.log" &
pids+=($!)
for _ in $(seq 100); do grep -q listening= "$run_dir/coordinator.out" && break; sleep 0.1; done
address=$(sed -n 's/listening=//p' "$run_dir/coordinator.out")
[ -n "$address" ] || { echo "the coordinator did not start; see $run_dir/coordinator.log" >&2; exit 1; }

echo "broker       $bootstrap (pid ${pids[0]})"
echo "coordinator  $address (pid ${pids[1]}), state in $run_dir/coordinator/assignment.json"
for i in $(seq "$workers"); do
  "$eddy" worker --join "$address" --name "worker-$i" --local-dir "$run_dir/worker-$i" \
    2>"$run_dir/worker-$i.log" &
  pids+=($!)
  echo "worker-$i     pid $!, log $run_dir/worker-$i.log"
done
"$eddy" produce --bootstrap "$bootstrap" --topic "$topic" --count 120000 --rate 2000 \
  >"$run_dir/produce.log" 2>&1 &
pids+=($!)
echo "producing 120000 sample records at 2000/s (log $run_dir/produce.log)"
echo "output       $run_dir/output (published per committed epoch), dead letters in $run_dir/dead-letter"
cat <<TXT

Try: kill -9 <worker pid>     (its units move at once)
     kill -STOP <worker pid>  (lost after the 2 s heartbeat bound; kill -CONT: it rejoins)
     restart a worker:  $eddy worker --join $address --name worker-N --local-dir $run_dir/worker-N
Ctrl-C stops the cluster. The coordinator's log follows.

TXT
tail -n +1 -f "$run_dir/coordinator.log" &
pids+=($!)
wait "${pids[1]}"

# e2e_common.sh — shared set-up of the end-to-end benchmark scripts (sourced, not run).
#
# Expects: name (for messages), eddy (checked to be built, as kcat and python3 are checked to be
# installed), topic, COUNT, PARTITIONS, KEEP, and optionally the array produce_extra (more
# `eddy produce` arguments). Provides: $work (a fresh directory under
# /dev/shm, removed on exit unless KEEP=1), a development broker on loopback at $bootstrap with
# $topic of $PARTITIONS partitions (stopped on exit), COUNT produced messages (zstd), checked to
# be all retained, and make_cp_root (sets $cp_root: checkpoint storage under CP_BASE).

[[ -x "$eddy" ]] || { echo "$name: $eddy not built" >&2; exit 2; }
for tool in kcat python3; do
  command -v "$tool" >/dev/null || { echo "$name: $tool not installed" >&2; exit 2; }
done

shm_base=/dev/shm
[[ -d "$shm_base" && -w "$shm_base" ]] || shm_base="${TMPDIR:-/tmp}"
work="$(mktemp -d "$shm_base/eddy-$name.XXXXXX")"
broker_pid=""
cleanup() {
  if [[ -n "$broker_pid" ]] && kill -0 "$broker_pid" 2>/dev/null; then
    kill -TERM "$broker_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$broker_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$broker_pid" 2>/dev/null || true
    wait "$broker_pid" 2>/dev/null || true
  fi
  if [[ "$KEEP" == 1 ]]; then echo "work dir kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }

# Checkpoint storage on disk (CP_BASE, default /var/tmp; not /dev/shm, so that fsyncs cost what
# they cost): sets $cp_root to a fresh directory there, removed on exit with the rest.
make_cp_root() {
  cp_root="$(mktemp -d "${CP_BASE:-/var/tmp}/eddy-$name.XXXXXX")"
  trap 'cleanup; rm -rf "$cp_root"' EXIT
}

# ---- broker -------------------------------------------------------------------------------------
"$eddy" broker --topic "$topic:$PARTITIONS" >"$work/broker.out" 2>"$work/broker.err" &
broker_pid=$!
bootstrap=""
for _ in $(seq 100); do
  bootstrap="$(sed -n 's/^bootstrap=//p' "$work/broker.out" | head -n1)"
  [[ -n "$bootstrap" ]] && break
  kill -0 "$broker_pid" 2>/dev/null || { cat "$work/broker.err" >&2; exit 1; }
  sleep 0.1
done
[[ -n "$bootstrap" ]] || { echo "$name: broker did not start" >&2; exit 1; }
case "$bootstrap" in
  127.0.0.1:*|localhost:*) ;;
  *) echo "$name: broker is not on loopback: $bootstrap" >&2; exit 1 ;;
esac
echo "broker: $bootstrap, topic $topic ($PARTITIONS partitions)"

# ---- produce ------------------------------------------------------------------------------------
t0=$(now)
"$eddy" produce --bootstrap "$bootstrap" --topic "$topic" --count "$COUNT" --compression zstd \
  --rate 0 "${produce_extra[@]}" >"$work/produce.json"
t1=$(now)
echo "produce: $(cat "$work/produce.json") (wall $(python3 -c "print(round($t1-$t0,2))") s)"

# ---- retention check ----------------------------------------------------------------------------
retained=$(kcat -C -b "$bootstrap" -t "$topic" -e -o beginning -q -f 'x\n' | wc -l)
echo "retained (kcat count): $retained of $COUNT"
if [[ "$retained" -ne "$COUNT" ]]; then
  echo "$name: the broker kept $retained of $COUNT messages (retention ~5 MiB/partition);" \
    "lower COUNT or raise PARTITIONS" >&2
  exit 1
fi

#!/usr/bin/env python3
"""cluster_bench.py — what distribution costs: an eddy cluster against `eddy run` on one topic.

One invocation, one development broker (loopback), one topic (COUNT records over PARTITIONS
partitions, produced once), three measurements and a diagnostic:

1. Cost of distribution. Per round and pipeline (the windowed example and the cleaned-row
   example, both into a file sink, with a [checkpoint] table of INTERVAL), in alternating order:
   - `eddy run -c P --exit-at-end`: wall time from its start to its exit (the input committed:
     the run takes its last checkpoint and exits);
   - a cluster of ONE worker: wall time from starting `eddy coordinator` (then the worker, as soon
     as the coordinator listens) to the covering manifest: the first
     checkpoint.dir/cluster/epochs/<e>.json whose units p<p> all have next_offset at the end of
     their partition (its created_unix_ms). This includes both processes' startup, the join, and
     up to one checkpoint interval after the last record.
   Ratio eddy run / cluster (>= 1: the cluster is as fast), medians over the rounds.
2. Bytes between nodes, windowed pipeline, TWO workers (and ONE for reference; unpinned):
   `ss -tinp` at the covering manifest, every TCP socket of the processes this script started,
   classified by the process owning the other end: worker <-> worker, worker <-> coordinator,
   worker <-> broker (bytes_acked of the sending side). Then a quiet window (IDLE seconds, no
   input) sampled the same way: the coordinator links' bytes per epoch with nothing to process.
   CAF 0.17 without automatic connections routes messages between workers THROUGH the
   coordinator (no worker-to-worker sockets): so with one worker the quiet bytes are the
   coordinator's own per-epoch traffic, and with two workers the coordinator links' bytes beyond
   that, halved (each relayed byte crosses two links), estimate the worker-to-worker traffic.
3. Scaling on 2 cores, windowed pipeline: one worker under `taskset -c 0` vs two workers under
   `taskset -c 0` / `taskset -c 1`, alternating; the broker and the coordinator are NOT pinned
   (they share both cores with the workers). Throughput = COUNT / time to the covering manifest;
   the workers' CPU seconds for the same input.
4. Diagnostics for 1., windowed pipeline: (a) fixed costs: both as in 1. on a second topic of
   1,000 records; (b) what epochs cost with nothing left to read: `eddy run` without
   --exit-at-end and a one-worker cluster, each until it committed the whole topic, then their
   CPU over IDLE_CPU seconds and the epochs in that window.

5. Cost of distribution, both ending by themselves: `eddy run --exit-at-end` against `eddy
   coordinator --exit-at-end` with one worker, both timed from the first process's start to the
   last one's exit, both publishing the same rows (checked; the cluster closes its windows at the
   end as `eddy run` does). CPU: the processes' rusage after they were reaped.

6. Unit state per epoch, one worker, the changelog example (one key per primary key in each
   partition's state) and the windowed one: the cluster as built (a unit exports its epoch's
   writes as a delta, a full snapshot now and then) against the same cluster with
   EDDY_UNIT_FULL_SNAPSHOTS=1 (every unit's full snapshot every epoch, as before deltas),
   alternating, the input read at RATE records/s (--rate, default 50,000: a steady load over
   many epochs): time to the covering manifest, the worker's CPU, and the bytes of unit files
   the manifests reference for the first time, per epoch.

Every cluster run starts from a fresh checkpoint dir and coordinator state; every run's output
is checked: `eddy run` read all COUNT records; the cleaned-row cluster published exactly as many
rows as `eddy run` wrote in the same round. CPU seconds (user + sys) are read from /proc (cluster
processes, at the covering manifest; the broker, per run) and from rusage (eddy run).

  bench/cluster_bench.py [--count 400000] [--partitions 16] [--rounds 3] [--interval-ms 200]
                         [--parts 1,2,3,4,5,6] [--idle 2] [--idle-cpu 3] [--eddy build/app/eddy]
                         [--cp-base /var/tmp] [--keep] [--verbose]

Needs: python3 (stdlib), taskset (util-linux) for part 3, ss (iproute2) for part 2. Loopback
only. Output (file sinks, broker logs) in /dev/shm, checkpoints under --cp-base (default
/var/tmp: fsyncs cost what they cost on disk). Every process started is stopped by its PID at
the end, also on failure, Ctrl-C or SIGTERM. ~4 minutes on 2 cores with the defaults.
"""
import argparse
import glob
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

TOPIC = "bench.cluster"
SMALL_TOPIC = "bench.cluster.small"  # part 4: fixed costs
SMALL_COUNT = 1000
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
EXAMPLES = {
    "windowed": os.path.join(REPO, "deploy", "pipelines", "ncr_windowed.toml"),
    "cleaned": os.path.join(REPO, "deploy", "pipelines", "ncr_ride_bookings.toml"),
    "changelog": os.path.join(REPO, "deploy", "pipelines", "ncr_changelog.toml"),
}
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    pass


def median(xs):
    return statistics.median(xs) if xs else float("nan")


# ---- processes --------------------------------------------------------------------------------

class Processes:
    """Every process this script starts; stop() / stop_all() end them by PID."""

    def __init__(self):
        self.procs = []

    def start(self, argv, out=None, err=None, env=None):
        """Starts argv with stdout / stderr into the files `out` / `err` (None: discarded) and
        `env` added to this script's environment."""
        files = [open(f, "w") if f else subprocess.DEVNULL for f in (out, err)]
        try:
            p = subprocess.Popen(argv, stdout=files[0], stderr=files[1], stdin=subprocess.DEVNULL,
                                 env=dict(os.environ, **env) if env else None)
        finally:
            for f in files:
                if f is not subprocess.DEVNULL:
                    f.close()
        self.procs.append(p)
        return p

    def stop(self, procs, grace=5.0):
        """SIGTERM to each running one (SIGCONT first), wait up to `grace`, then SIGKILL."""
        for p in procs:
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGCONT)
                    p.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + grace
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for p in procs:
            if p in self.procs:
                self.procs.remove(p)

    def stop_all(self):
        self.stop(list(reversed(self.procs)))


def wait_for(pred, timeout, what, poll=0.002):
    """Polls pred() until it returns something truthy; BenchError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise BenchError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(poll)


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def tail(path, n=15):
    lines = read(path).splitlines()[-n:]
    return "\n".join(f"    {l}" for l in lines)


def cpu_seconds(pid):
    """user + sys seconds of a running process (all threads), from /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / CLK_TCK
    except (FileNotFoundError, IndexError, ValueError):
        return float("nan")


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


# ---- the machine ------------------------------------------------------------------------------

def machine():
    model = "?"
    for line in read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem = re.search(r"MemTotal:\s+(\d+) kB", read("/proc/meminfo"))
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": model,
        "mem_gib": round(int(mem.group(1)) / 1048576, 1) if mem else None,
        "kernel": os.uname().release,
        "loadavg": read("/proc/loadavg").split()[:3],
    }


# ---- pipelines --------------------------------------------------------------------------------

def make_pipeline(kind, path, bootstrap, out_dir, dead_dir, cp_dir, interval_ms, topic=TOPIC,
                  rate=0):
    """The example `kind` up to its sinks, on `topic` at `bootstrap`, with a file sink, dead
    letters and a [checkpoint] table (absolute paths: the workers get the pipeline's text);
    `rate` > 0: source.max_records_per_second."""
    lines = []
    for line in read(EXAMPLES[kind]).splitlines():
        if line.startswith("# ---- sinks"):
            break
        if line.startswith("topic = "):
            line = f'topic = "{topic}"'
        elif line.startswith("bootstrap_servers = "):
            line = f'bootstrap_servers = "{bootstrap}"'
        lines.append(line)
        if line.startswith("[source]") and rate > 0:
            lines.append(f"max_records_per_second = {rate}")
    lines += ["", "[[sinks]]", 'type = "file"', f'path = "{out_dir}"', "",
              "[dead_letter]", f'path = "{dead_dir}"', "",
              "[checkpoint]", f'dir = "{cp_dir}"', f'interval = "{interval_ms}ms"', ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def published_rows(out_dir):
    """Lines of the published *.jsonl files directly in out_dir (not _staging/)."""
    n = 0
    for f in glob.glob(os.path.join(out_dir, "*.jsonl")):
        with open(f, "rb") as fh:
            n += sum(1 for _ in fh)
    return n


# ---- manifests --------------------------------------------------------------------------------

class ManifestWatch:
    """Reads checkpoint.dir/cluster/epochs/<e>.json as they appear. The topic is fresh (offsets
    0..end) and `count` records were produced into it, so a manifest whose partitions' next
    offsets sum to `count` has every partition at its end (no next_offset passes its end)."""

    def __init__(self, cp_dir, partitions, count):
        self.dir = os.path.join(cp_dir, "cluster", "epochs")
        self.partitions = partitions
        self.count = count
        self.seen = {}  # epoch -> (created_unix_ms, committed records, generation)
        self.covering = None
        self.unit_files = set()  # unit files (snapshots, deltas) referenced by a manifest seen
        self.unit_bytes = {}  # epoch -> bytes of the unit files its manifest references first

    def poll(self):
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return
        for n in sorted(names):
            if not re.fullmatch(r"\d{20}\.json", n):
                continue
            e = int(n[:20])
            if e in self.seen:
                continue
            try:
                with open(os.path.join(self.dir, n)) as f:
                    m = json.load(f)
            except (OSError, ValueError):
                continue  # retention removed it, or (never: written by rename) partial
            units = m.get("units", {})
            offs = [units.get(f"p{p}", {}).get("next_offset") for p in range(self.partitions)]
            committed = sum(max(0, o) for o in offs if isinstance(o, int))
            self.seen[e] = (m["created_unix_ms"], committed, m.get("generation"))
            new_bytes = 0
            for u in units.values():
                for ref in [(u.get("snapshot"), u.get("bytes", 0))] + [
                        (d["path"], d["bytes"]) for d in u.get("deltas", [])]:
                    if ref[0] and ref[0] not in self.unit_files:
                        self.unit_files.add(ref[0])
                        new_bytes += ref[1]
            self.unit_bytes[e] = new_bytes
            if (all(isinstance(o, int) for o in offs) and committed == self.count
                    and (self.covering is None or e < self.covering)):
                self.covering = e

    def newer_than_covering(self):
        return 0 if self.covering is None else sum(1 for e in self.seen if e > self.covering)


# ---- sockets ----------------------------------------------------------------------------------

def sockets():
    """Every TCP socket ss shows with an owning PID: (pid, local, peer, bytes_acked, received)."""
    out = subprocess.run(["ss", "-tinpH"], capture_output=True, text=True, check=True).stdout
    socks, cur = [], None
    for line in out.splitlines():
        if not line[:1].isspace():
            m = re.match(r"(\S+)\s+\d+\s+\d+\s+(\S+)\s+(\S+)(.*)", line)
            cur = None
            if m:
                pids = [int(p) for p in re.findall(r"pid=(\d+)", m.group(4))]
                cur = {"pids": pids, "local": m.group(2), "peer": m.group(3), "acked": 0,
                       "received": 0}
                socks.append(cur)
        elif cur is not None:
            a = re.search(r"bytes_acked:(\d+)", line)
            r = re.search(r"bytes_received:(\d+)", line)
            cur["acked"] += int(a.group(1)) if a else 0
            cur["received"] += int(r.group(1)) if r else 0
    return socks


def traffic(roles):
    """Bytes sent between the processes in `roles` (pid -> "worker" | "coordinator" | "broker"),
    each byte counted once, on its sender's socket (bytes_acked). Keys: "worker->worker",
    "worker->coordinator", "coordinator->worker", "worker->broker", "broker->worker", and
    "direct worker sockets" (how many sockets connect two workers)."""
    socks = [s for s in sockets() if any(p in roles for p in s["pids"])]
    owner = {}
    for s in socks:
        for p in s["pids"]:
            if p in roles:
                owner[s["local"]] = p
    t = {"worker->worker": 0, "worker->coordinator": 0, "coordinator->worker": 0,
         "worker->broker": 0, "broker->worker": 0, "direct worker sockets": 0}
    for s in socks:
        me = next(p for p in s["pids"] if p in roles)
        peer = owner.get(s["peer"])
        if peer is None or peer == me:
            continue
        key = f"{roles[me]}->{roles[peer]}"
        if key in t:
            t[key] += s["acked"]
        if key == "worker->worker":
            t["direct worker sockets"] += 1
    return t


# ---- runs -------------------------------------------------------------------------------------

class Bench:
    def __init__(self, a, procs, work, cp_base):
        self.a = a
        self.procs = procs
        self.work = work
        self.cp_base = cp_base
        self.eddy = os.path.abspath(a.eddy)
        self.runs = 0
        self.bootstrap = None
        self.broker = None

    def fresh(self, label):
        self.runs += 1
        d = os.path.join(self.work, f"{self.runs:02d}-{label}")
        cp = os.path.join(self.cp_base, f"{self.runs:02d}-{label}")
        os.makedirs(d)
        return d, cp

    def cleanup(self, d, cp):
        if not self.a.keep:
            shutil.rmtree(d, ignore_errors=True)
            shutil.rmtree(cp, ignore_errors=True)

    def start_broker(self):
        out = os.path.join(self.work, "broker.out")
        self.broker = self.procs.start(
            [self.eddy, "broker", "--topic", f"{TOPIC}:{self.a.partitions}",
             "--topic", f"{SMALL_TOPIC}:{self.a.partitions}"],
            out=out, err=os.path.join(self.work, "broker.log"))
        m = wait_for(lambda: re.search(r"bootstrap=(\S+)", read(out)) or
                     (self.broker.poll() is not None and "exit"), 20, "the broker")
        if m == "exit":
            raise BenchError("eddy broker exited:\n" + tail(os.path.join(self.work, "broker.log")))
        self.bootstrap = m.group(1)
        if not self.bootstrap.startswith(("127.0.0.1:", "localhost:")):
            raise BenchError(f"the broker is not on loopback: {self.bootstrap}")

    def produce(self, topic=TOPIC, count=None):
        count = count or self.a.count
        argv = [self.eddy, "produce", "--bootstrap", self.bootstrap, "--topic", topic,
                "--count", str(count), "--rate", "0", "--compression", "zstd"]
        if self.a.disorder_ms:
            argv += ["--disorder-ms", str(self.a.disorder_ms)]
        t0 = time.monotonic()
        r = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise BenchError(f"eddy produce failed: {r.stderr[-2000:]}")
        rep = json.loads(r.stdout.strip().splitlines()[-1])
        if rep.get("produced") != count:
            raise BenchError(f"eddy produce wrote {rep.get('produced')} of {count}")
        return rep, time.monotonic() - t0

    def eddy_run(self, kind, topic=TOPIC, count=None):
        count = count or self.a.count
        d, cp = self.fresh(f"run-{kind}")
        pipeline = os.path.join(d, "pipeline.toml")
        make_pipeline(kind, pipeline, self.bootstrap, os.path.join(d, "out"),
                      os.path.join(d, "dead"), cp, self.a.interval_ms, topic)
        summary = os.path.join(d, "summary.json")
        err = os.path.join(d, "run.log")
        broker_cpu0 = cpu_seconds(self.broker.pid)
        cpu0 = children_cpu()
        t0 = time.monotonic()
        p = self.procs.start([self.eddy, "run", "-c", pipeline, "--exit-at-end",
                              "--summary-json", summary], err=err)
        try:
            rc = p.wait(timeout=600)
        except subprocess.TimeoutExpired:
            raise BenchError(f"eddy run did not end within 600 s:\n{tail(err)}")
        wall = time.monotonic() - t0
        cpu = children_cpu() - cpu0
        self.procs.procs.remove(p)
        if rc != 0:
            raise BenchError(f"eddy run exited {rc}:\n{tail(err)}")
        s = json.loads(read(summary))
        if not s.get("ok") or s.get("in") != count:
            raise BenchError(f"eddy run read {s.get('in')} of {count} records "
                             f"(ok={s.get('ok')}): the broker's retention? {summary}")
        rows = published_rows(os.path.join(d, "out"))
        self.cleanup(d, cp)
        return {"wall": wall, "cpu": cpu, "rows": rows, "out": s.get("out"),
                "dead": s.get("dead_lettered"), "broker_cpu": cpu_seconds(self.broker.pid) - broker_cpu0}

    def cluster(self, kind, workers, net=False, idle=0.0, topic=TOPIC, count=None, env=None,
                rate=0):
        """A coordinator and `workers` ([(name, cpu or None)]) until the covering manifest;
        `env`: extra environment variables of the workers; `rate`: make_pipeline's."""
        count = count or self.a.count
        label = f"cluster{len(workers)}-{kind}" + ("-pinned" if workers[0][1] is not None else "")
        d, cp = self.fresh(label)
        pipeline = os.path.join(d, "pipeline.toml")
        out_dir = os.path.join(d, "out")
        make_pipeline(kind, pipeline, self.bootstrap, out_dir, os.path.join(d, "dead"), cp,
                      self.a.interval_ms, topic, rate)
        clog = os.path.join(d, "coordinator.log")
        cout = os.path.join(d, "coordinator.out")
        mine = []
        try:
            broker_cpu0 = cpu_seconds(self.broker.pid)
            t0_unix_ms = time.time() * 1000
            t0 = time.monotonic()
            coord = self.procs.start(
                [self.eddy, "coordinator", "-c", pipeline, "--listen", "127.0.0.1:0",
                 "--state-dir", os.path.join(d, "coordinator-state"), "--bootstrap",
                 self.bootstrap], out=cout, err=clog)
            mine.append(coord)
            m = wait_for(lambda: re.search(r"listening=(\S+)", read(cout)) or
                         (coord.poll() is not None and "exit"), 30, "the coordinator")
            if m == "exit":
                raise BenchError(f"eddy coordinator exited:\n{tail(clog)}")
            t_listen = time.monotonic() - t0
            wprocs = []
            for name, cpu in workers:
                argv = [self.eddy, "worker", "--join", m.group(1), "--name", name,
                        "--local-dir", os.path.join(d, f"local-{name}")]
                if cpu is not None:
                    argv = ["taskset", "-c", str(cpu)] + argv
                wprocs.append(self.procs.start(argv, err=os.path.join(d, f"{name}.log"), env=env))
                mine.append(wprocs[-1])
            watch = ManifestWatch(cp, self.a.partitions, count)
            gen_started = {}

            def covered():
                for p in mine:
                    if p.poll() is not None:
                        raise BenchError(f"a cluster process exited ({p.args[0:3]}, "
                                         f"{p.returncode}):\n{tail(clog)}")
                watch.poll()
                for g in re.findall(r"generation (\d+) started", read(clog)):
                    gen_started.setdefault(int(g), time.monotonic() - t0)
                return watch.covering is not None

            try:
                wait_for(covered, self.a.timeout, "the covering manifest", poll=0.005)
            except BenchError as e:
                raise BenchError(f"{e} ({label}; {len(watch.seen)} manifests, newest committed "
                                 f"{max((v[1] for v in watch.seen.values()), default=0)} of "
                                 f"{count}):\n{tail(clog)}")
            t_detect = time.monotonic() - t0
            cpu = {"coordinator": cpu_seconds(coord.pid),
                   "workers": sum(cpu_seconds(p.pid) for p in wprocs),
                   "broker": cpu_seconds(self.broker.pid) - broker_cpu0}
            roles = {coord.pid: "coordinator", self.broker.pid: "broker"}
            roles.update({p.pid: "worker" for p in wprocs})
            net_at_cover = traffic(roles) if net else None
            created, _, _ = watch.seen[watch.covering]
            # When input was first committed: startup plus the first epoch that carried some.
            first_input = (min(v[0] for v in watch.seen.values() if v[1] > 0) - t0_unix_ms) / 1000
            idle_stats = None
            if net and idle > 0:
                watch.poll()
                e0 = max(watch.seen)
                ti = time.monotonic()
                time.sleep(idle)  # a measurement window with no input, not a wait for a condition
                watch.poll()
                e1 = max(watch.seen)
                net_idle = traffic(roles)
                coord_bytes = lambda t: t["worker->coordinator"] + t["coordinator->worker"]
                idle_stats = {"seconds": time.monotonic() - ti, "epochs": e1 - e0,
                              "coordinator_bytes": coord_bytes(net_idle) - coord_bytes(net_at_cover)}
            # The covering epoch's output is published once a newer manifest exists (the
            # coordinator publishes after writing a manifest; the next one follows it).
            wait_for(lambda: (watch.poll(), watch.newer_than_covering() >= 2)[1], 30,
                     "two manifests after the covering one")
            rows = published_rows(out_dir)
            gens = sorted(gen_started)
            return {"wall": (created - t0_unix_ms) / 1000, "detected": t_detect,
                    "listen": t_listen, "generations": gens,
                    "first_generation_started": gen_started.get(gens[0]) if gens else None,
                    "last_generation_started": gen_started.get(gens[-1]) if gens else None,
                    "first_manifest": (min(v[0] for v in watch.seen.values()) - t0_unix_ms) / 1000,
                    "covering_epoch": watch.covering, "epochs": len(watch.seen),
                    "first_input": first_input, "cpu": cpu, "net": net_at_cover, "idle": idle_stats,
                    "rows": rows,
                    "unit_bytes": [watch.unit_bytes[e] for e in sorted(watch.unit_bytes)
                                   if e <= watch.covering],
                    "timeline": [(e, (v[0] - t0_unix_ms) / 1000, v[1]) for e, v in
                                 sorted(watch.seen.items()) if e <= watch.covering]}
        finally:
            self.procs.stop(list(reversed(mine)))
            self.cleanup(d, cp)


    def cluster_to_exit(self, kind):
        """`eddy coordinator --exit-at-end` and one worker, from the coordinator's start to the
        last of the two exiting (as `eddy run --exit-at-end` is timed to its exit)."""
        d, cp = self.fresh(f"cluster1-exit-{kind}")
        pipeline = os.path.join(d, "pipeline.toml")
        out_dir = os.path.join(d, "out")
        make_pipeline(kind, pipeline, self.bootstrap, out_dir, os.path.join(d, "dead"), cp,
                      self.a.interval_ms)
        clog = os.path.join(d, "coordinator.log")
        cout = os.path.join(d, "coordinator.out")
        mine = []
        try:
            cpu0 = children_cpu()
            t0 = time.monotonic()
            coord = self.procs.start(
                [self.eddy, "coordinator", "-c", pipeline, "--listen", "127.0.0.1:0",
                 "--state-dir", os.path.join(d, "coordinator-state"), "--bootstrap",
                 self.bootstrap, "--exit-at-end"], out=cout, err=clog)
            mine.append(coord)
            m = wait_for(lambda: re.search(r"listening=(\S+)", read(cout)) or
                         (coord.poll() is not None and "exit"), 30, "the coordinator")
            if m == "exit":
                raise BenchError(f"eddy coordinator exited:\n{tail(clog)}")
            wlog = os.path.join(d, "w1.log")
            mine.append(self.procs.start(
                [self.eddy, "worker", "--join", m.group(1), "--name", "w1", "--local-dir",
                 os.path.join(d, "local-w1")], err=wlog))
            wait_for(lambda: all(p.poll() is not None for p in mine), self.a.timeout,
                     "the cluster's exit (--exit-at-end)", poll=0.005)
            wall = time.monotonic() - t0
            cpu = children_cpu() - cpu0  # both reaped by poll()
            if any(p.returncode != 0 for p in mine):
                raise BenchError(f"exit statuses {[p.returncode for p in mine]}:\n{tail(clog)}"
                                 f"\n{tail(wlog)}")
            watch = ManifestWatch(cp, self.a.partitions, self.a.count)
            watch.poll()
            if watch.covering is None:
                raise BenchError(f"the cluster exited without a manifest covering the input:\n"
                                 f"{tail(clog)}")
            return {"wall": wall, "cpu": cpu, "rows": published_rows(out_dir),
                    "epochs": len(watch.seen)}
        finally:
            self.procs.stop(list(reversed(mine)))
            self.cleanup(d, cp)

    def run_checkpoints(self, cp):
        """`eddy checkpoint list` of a running `eddy run`: {epoch: records committed}."""
        r = subprocess.run([self.eddy, "checkpoint", "list", "--dir", cp], capture_output=True,
                           text=True, timeout=60)
        epochs, cur = {}, None
        for line in r.stdout.splitlines():
            m = re.match(r"epoch (\d+) ", line)
            if m:
                cur = int(m.group(1))
                epochs[cur] = 0
            m = re.match(r"\s+partition\.\d+\.offset = (\d+)", line)
            if m and cur is not None:
                epochs[cur] += int(m.group(1))
        return epochs

    def idle_cost(self, kind, seconds):
        """CPU of `eddy run` (without --exit-at-end) and of a one-worker cluster (worker +
        coordinator) over `seconds` once they committed the whole topic: what their epochs cost
        with nothing left to read, the state of the drained topic (open windows) included."""
        res = {}
        for which in ("run", "cluster"):
            d, cp = self.fresh(f"idle-{which}-{kind}")
            pipeline = os.path.join(d, "pipeline.toml")
            make_pipeline(kind, pipeline, self.bootstrap, os.path.join(d, "out"),
                          os.path.join(d, "dead"), cp, self.a.interval_ms)
            mine = []
            try:
                if which == "run":
                    p = self.procs.start([self.eddy, "run", "-c", pipeline],
                                         err=os.path.join(d, "run.log"))
                    mine = [p]
                    latest = os.path.join(cp, "LATEST")
                    epoch = lambda: int(read(latest).strip() or 0)
                    done = lambda: self.a.count in self.run_checkpoints(cp).values()
                    poll = 0.1  # a process per poll
                else:
                    cout = os.path.join(d, "coordinator.out")
                    c = self.procs.start(
                        [self.eddy, "coordinator", "-c", pipeline, "--listen", "127.0.0.1:0",
                         "--state-dir", os.path.join(d, "coordinator-state"), "--bootstrap",
                         self.bootstrap], out=cout,
                        err=os.path.join(d, "coordinator.log"))
                    mine = [c]
                    m = wait_for(lambda: re.search(r"listening=(\S+)", read(cout)), 30,
                                 "the coordinator")
                    mine.append(self.procs.start(
                        [self.eddy, "worker", "--join", m.group(1), "--name", "w1", "--local-dir",
                         os.path.join(d, "local-w1")]))
                    watch = ManifestWatch(cp, self.a.partitions, self.a.count)
                    epoch = lambda: (watch.poll(), max(watch.seen, default=0))[1]
                    done = lambda: (watch.poll(), watch.covering is not None)[1]
                    poll = 0.005
                wait_for(done, self.a.timeout, f"{which} to commit the topic", poll=poll)
                for p in mine:
                    if p.poll() is not None:
                        raise BenchError(f"{which} exited while running: {d}")
                cpu0 = sum(cpu_seconds(p.pid) for p in mine)
                t0 = time.monotonic()
                e0 = epoch()
                time.sleep(seconds)  # a measurement window, not a wait for a condition
                cpu = sum(cpu_seconds(p.pid) for p in mine) - cpu0
                dt = time.monotonic() - t0
                res[which] = {"cpu_per_s": cpu / dt, "epochs": epoch() - e0, "seconds": dt,
                              "cpu": cpu}
            finally:
                self.procs.stop(list(reversed(mine)))
                self.cleanup(d, cp)
        return res


# ---- reports ----------------------------------------------------------------------------------

def fmt_s(x):
    return f"{x:.2f} s"


def part1(b, rounds):
    print("\n== 1. Cost of distribution: eddy run --exit-at-end vs a cluster of one worker ==")
    print(f"   (cluster time: coordinator start -> covering manifest; checkpoint interval "
          f"{b.a.interval_ms} ms for both)")
    res = {k: {"run": [], "cluster": []} for k in ("windowed", "cleaned")}
    for r in range(rounds):
        for kind in ("windowed", "cleaned"):
            order = ("run", "cluster") if r % 2 == 0 else ("cluster", "run")
            got = {}
            for which in order:
                got[which] = (b.eddy_run(kind) if which == "run"
                              else b.cluster(kind, [("w1", None)], net=True))
            run, cl = got["run"], got["cluster"]
            if kind == "cleaned" and cl["rows"] != run["rows"]:
                raise BenchError(f"cleaned-row cluster published {cl['rows']} rows, eddy run "
                                 f"wrote {run['rows']} (round {r + 1})")
            if b.a.verbose:
                print("   manifests (epoch, s, committed): " + ", ".join(
                    f"{e} {t:.2f} {c}" for e, t, c in cl["timeline"]))
            res[kind]["run"].append(run)
            res[kind]["cluster"].append(cl)
            print(f"round {r + 1} {kind:8} ({'/'.join(order)}, load "
                  f"{read('/proc/loadavg').split()[0]}): eddy run {fmt_s(run['wall'])} "
                  f"(CPU {run['cpu']:.2f} s, broker {run['broker_cpu']:.2f} s, {run['rows']} rows)"
                  f" | cluster {fmt_s(cl['wall'])} (listening {cl['listen']:.2f} s, generation "
                  f"{cl['generations']} started {cl['first_generation_started'] or 0:.2f} s, first "
                  f"manifest {cl['first_manifest']:.2f} s, epoch {cl['covering_epoch']}; CPU "
                  f"worker {cl['cpu']['workers']:.2f} s, coordinator {cl['cpu']['coordinator']:.2f}"
                  f" s, broker {cl['cpu']['broker']:.2f} s; {cl['rows']} rows) | ratio "
                  f"{run['wall'] / cl['wall']:.2f}", flush=True)
    print()
    for kind in ("windowed", "cleaned"):
        run, cl = res[kind]["run"], res[kind]["cluster"]
        mr, mc = median([x["wall"] for x in run]), median([x["wall"] for x in cl])
        per = " ".join(f"{x['wall'] / y['wall']:.2f}" for x, y in zip(run, cl))
        startup = median([x["first_generation_started"] or 0 for x in cl])
        first_in = median([x["first_input"] for x in cl])
        ncoord = median([(x["net"]["worker->coordinator"] + x["net"]["coordinator->worker"])
                         / b.a.count for x in cl])
        print(f"{kind:8}: eddy run {fmt_s(mr)} ({b.a.count / mr:,.0f} rec/s, CPU "
              f"{median([x['cpu'] for x in run]):.2f} s), cluster of 1 {fmt_s(mc)} "
              f"({b.a.count / mc:,.0f} rec/s, CPU worker "
              f"{median([x['cpu']['workers'] for x in cl]):.2f} s + coordinator "
              f"{median([x['cpu']['coordinator'] for x in cl]):.2f} s; generation started after "
              f"{startup:.2f} s, first input committed after {first_in:.2f} s; coordinator "
              f"links {ncoord:.2f} B/record); "
              f"ratio eddy run / cluster {mr / mc:.2f} (per round {per}; aim >= 0.9)")
    return res


def part2(b, rounds, idle):
    print("\n== 2. Bytes between nodes, windowed pipeline: two workers, and one for reference "
          "(unpinned) ==")
    res = {1: [], 2: []}
    layouts = {1: [("w1", None)], 2: [("w1", None), ("w2", None)]}
    for r in range(rounds):
        for n in ((2, 1) if r % 2 == 0 else (1, 2)):
            cl = b.cluster("windowed", layouts[n], net=True, idle=idle)
            t, i = cl["net"], cl["idle"]
            x = {"ww": t["worker->worker"], "sockets": t["direct worker sockets"],
                 "coord": t["worker->coordinator"] + t["coordinator->worker"],
                 "broker": t["broker->worker"] + t["worker->broker"],
                 "epochs": cl["covering_epoch"],
                 "quiet_epoch": i["coordinator_bytes"] / i["epochs"] if i["epochs"] else None}
            res[n].append(x)
            print(f"round {r + 1} {n} worker(s) (load {read('/proc/loadavg').split()[0]}): "
                  f"{cl['wall']:.2f} s to epoch {cl['covering_epoch']} (generations "
                  f"{cl['generations']}); worker<->worker {x['ww']} B over {x['sockets']} sockets; "
                  f"worker->coordinator {t['worker->coordinator']} B, coordinator->worker "
                  f"{t['coordinator->worker']} B; broker->workers {t['broker->worker']} B, "
                  f"workers->broker {t['worker->broker']} B; quiet window: "
                  f"{i['coordinator_bytes']} B on the coordinator links in {i['epochs']} epochs / "
                  f"{i['seconds']:.1f} s", flush=True)
    c = b.a.count
    q1 = median([x["quiet_epoch"] for x in res[1] if x["quiet_epoch"]])
    q2 = median([x["quiet_epoch"] for x in res[2] if x["quiet_epoch"]])
    # The coordinator's own traffic per epoch (checkpoint, acks, commit, heartbeats) is what one
    # worker exchanges with it when idle (nothing is relayed then); with two workers the rest of
    # the coordinator links' bytes is worker-to-worker traffic relayed through the coordinator,
    # which crosses two links (sender -> coordinator -> receiver): halved.
    relayed = median([(x["coord"] - q1 * x["epochs"]) / 2 / c for x in res[2]])
    print(f"\nmedians of {rounds}: direct worker<->worker sockets "
          f"{median([x['sockets'] for x in res[2]]):.0f}, bytes "
          f"{median([x['ww'] / c for x in res[2]]):.2f} per record; coordinator links "
          f"{median([x['coord'] / c for x in res[2]]):.2f} B per record with 2 workers, "
          f"{median([x['coord'] / c for x in res[1]]):.2f} with 1; quiet epochs on the coordinator "
          f"links {q2:,.0f} B with 2 workers, {q1:,.0f} B with 1 (relayed between the workers "
          f"per quiet epoch: ~{(q2 - q1) / 2:,.0f} B); worker-to-worker bytes relayed by the "
          f"coordinator, estimated: ~{relayed:.2f} B per record; broker->workers "
          f"{median([x['broker'] / c for x in res[2]]):.1f} B per record")
    return res


def part3(b, rounds):
    print("\n== 3. Scaling, windowed pipeline: 1 worker on core 0 vs 2 workers on cores 0 and 1 ==")
    print("   (broker and coordinator not pinned: they share both cores with the workers)")
    res = {1: [], 2: []}
    layouts = {1: [("w1", 0)], 2: [("w1", 0), ("w2", 1)]}
    for r in range(rounds):
        for n in ((1, 2) if r % 2 == 0 else (2, 1)):
            cl = b.cluster("windowed", layouts[n])
            res[n].append(cl)
            if b.a.verbose:
                print("   manifests (epoch, s, committed): " + ", ".join(
                    f"{e} {t:.2f} {c}" for e, t, c in cl["timeline"]))
            print(f"round {r + 1} {n} worker(s) (load {read('/proc/loadavg').split()[0]}): "
                  f"{fmt_s(cl['wall'])} -> {b.a.count / cl['wall']:,.0f} rec/s; first input "
                  f"committed after {cl['first_input']:.2f} s; generations "
                  f"{cl['generations']} (last started {cl['last_generation_started'] or 0:.2f} s); "
                  f"CPU workers {cl['cpu']['workers']:.2f} s, coordinator "
                  f"{cl['cpu']['coordinator']:.2f} s, broker {cl['cpu']['broker']:.2f} s",
                  flush=True)
    t1 = median([b.a.count / x["wall"] for x in res[1]])
    t2 = median([b.a.count / x["wall"] for x in res[2]])
    w1 = median([x["cpu"]["workers"] for x in res[1]])
    w2 = median([x["cpu"]["workers"] for x in res[2]])
    print(f"\nmedians of {rounds}: 1 worker {t1:,.0f} rec/s, 2 workers {t2:,.0f} rec/s: "
          f"2 / 1 = {t2 / t1:.2f}; workers' CPU {w1:.2f} s vs {w2:.2f} s "
          f"({w2 / w1:.2f}x for the same input)")
    return res


def part4(b, rounds, seconds):
    print(f"\n== 4a. Fixed costs: windowed pipeline on {SMALL_TOPIC} ({SMALL_COUNT} records), "
          f"eddy run --exit-at-end vs a cluster of one worker ==")
    fixed = {"run": [], "cluster": []}
    for r in range(rounds):
        order = ("run", "cluster") if r % 2 == 0 else ("cluster", "run")
        got = {}
        for which in order:
            got[which] = (b.eddy_run("windowed", SMALL_TOPIC, SMALL_COUNT) if which == "run" else
                          b.cluster("windowed", [("w1", None)], topic=SMALL_TOPIC,
                                    count=SMALL_COUNT))
            fixed[which].append(got[which])
        cl = got["cluster"]
        print(f"round {r + 1} ({'/'.join(order)}, load {read('/proc/loadavg').split()[0]}): "
              f"eddy run {fmt_s(got['run']['wall'])} | cluster {fmt_s(cl['wall'])} (generation "
              f"started {cl['first_generation_started'] or 0:.2f} s, manifests (s, committed): "
              + ", ".join(f"{t:.2f} {c}" for _, t, c in cl["timeline"]) + ")", flush=True)
    fr = median([x["wall"] for x in fixed["run"]])
    fc = median([x["wall"] for x in fixed["cluster"]])
    print(f"\nmedians of {rounds}: eddy run {fmt_s(fr)}, cluster of 1 {fmt_s(fc)}: the cluster's "
          f"fixed cost is {fc - fr:.2f} s more")

    print(f"\n== 4b. What epochs cost with nothing left to read: windowed pipeline, after the "
          f"topic is committed, {b.a.interval_ms} ms checkpoints, {seconds:.0f} s windows ==")
    res = {"run": [], "cluster": []}
    for r in range(rounds):
        got = b.idle_cost("windowed", seconds)
        for k in res:
            res[k].append(got[k])
        print(f"round {r + 1} (load {read('/proc/loadavg').split()[0]}): eddy run "
              f"{got['run']['cpu']:.2f} s CPU in {got['run']['epochs']} epochs | cluster of 1 "
              f"(worker + coordinator) {got['cluster']['cpu']:.2f} s CPU in "
              f"{got['cluster']['epochs']} epochs", flush=True)
    per_epoch = lambda xs: median([x["cpu"] / x["epochs"] * 1000 for x in xs if x["epochs"]])
    run_s = median([x["cpu_per_s"] for x in res["run"]])
    cl_s = median([x["cpu_per_s"] for x in res["cluster"]])
    print(f"\nmedians of {rounds}: eddy run {run_s:.2f} CPU-s/s ({per_epoch(res['run']):.0f} ms "
          f"per epoch), cluster of 1 {cl_s:.2f} CPU-s/s ({per_epoch(res['cluster']):.0f} ms per "
          f"epoch); idle time included; cluster / run {cl_s / run_s:.1f}")
    return fixed, res


def part5(b, rounds):
    print("\n== 5. Cost of distribution, both ending by themselves: eddy run --exit-at-end vs "
          "eddy coordinator --exit-at-end + one worker ==")
    print("   (both timed from the first process's start to the last one's exit; the same rows)")
    res = {}
    for kind in ("windowed", "cleaned"):
        res[kind] = {"run": [], "cluster": []}
    for r in range(rounds):
        for kind in ("windowed", "cleaned"):
            order = ("run", "cluster") if r % 2 == 0 else ("cluster", "run")
            got = {}
            for which in order:
                got[which] = b.eddy_run(kind) if which == "run" else b.cluster_to_exit(kind)
            run, cl = got["run"], got["cluster"]
            if cl["rows"] != run["rows"]:
                raise BenchError(f"{kind}: the cluster published {cl['rows']} rows, eddy run "
                                 f"wrote {run['rows']} (round {r + 1})")
            res[kind]["run"].append(run)
            res[kind]["cluster"].append(cl)
            print(f"round {r + 1} {kind:8} ({'/'.join(order)}, load "
                  f"{read('/proc/loadavg').split()[0]}): eddy run {fmt_s(run['wall'])} (CPU "
                  f"{run['cpu']:.2f} s, {run['rows']} rows) | cluster {fmt_s(cl['wall'])} (CPU "
                  f"worker + coordinator {cl['cpu']:.2f} s, {cl['epochs']} manifests kept, "
                  f"{cl['rows']} rows) | ratio {run['wall'] / cl['wall']:.2f}", flush=True)
    print()
    for kind in ("windowed", "cleaned"):
        run, cl = res[kind]["run"], res[kind]["cluster"]
        mr, mc = median([x["wall"] for x in run]), median([x["wall"] for x in cl])
        per = " ".join(f"{x['wall'] / y['wall']:.2f}" for x, y in zip(run, cl))
        print(f"{kind:8}: eddy run {fmt_s(mr)} (CPU {median([x['cpu'] for x in run]):.2f} s), "
              f"cluster of 1 {fmt_s(mc)} (CPU {median([x['cpu'] for x in cl]):.2f} s); ratio "
              f"eddy run / cluster {mr / mc:.2f} (per round {per}; aim >= 0.9)")
    return res



def part6(b, rounds):
    print("\n== 6. Unit state per epoch: deltas vs a full snapshot every epoch (one worker) ==")
    print("   (reference: the same cluster with EDDY_UNIT_FULL_SNAPSHOTS=1, how units were exported"
          f" before deltas; same topic, alternating; read at {b.a.rate:,} records/s, checkpoints"
          f" every {b.a.interval_ms} ms)")
    res = {}
    for kind in ("changelog", "windowed"):
        res[kind] = {"deltas": [], "full": []}
        for r in range(rounds):
            order = ("deltas", "full") if r % 2 == 0 else ("full", "deltas")
            for which in order:
                env = {"EDDY_UNIT_FULL_SNAPSHOTS": "1"} if which == "full" else None
                cl = b.cluster(kind, [("w1", None)], env=env, rate=b.a.rate)
                res[kind][which].append(cl)
                ub = cl["unit_bytes"]
                print(f"round {r + 1} {kind:9} {which:6}: {fmt_s(cl['wall'])} to the covering "
                      f"manifest (epoch {cl['covering_epoch']}), CPU worker "
                      f"{cl['cpu']['workers']:.2f} s; unit files written {sum(ub) / 1e6:.2f} MB "
                      f"over {len(ub)} epochs, largest epoch {max(ub, default=0) / 1e6:.2f} MB",
                      flush=True)
    print()
    for kind, got in res.items():
        d, f = got["deltas"], got["full"]
        wd, wf = median([x["wall"] for x in d]), median([x["wall"] for x in f])
        cd, cf = (median([x["cpu"]["workers"] for x in d]),
                  median([x["cpu"]["workers"] for x in f]))
        bd, bf = median([sum(x["unit_bytes"]) for x in d]), median([sum(x["unit_bytes"]) for x in f])
        print(f"{kind:9}: time full / deltas {wf / wd:.2f} ({fmt_s(wf)} / {fmt_s(wd)}), worker "
              f"CPU full / deltas {cf / cd:.2f}, unit bytes written full / deltas {bf / max(bd, 1):.1f}"
              f" ({bf / 1e6:.1f} MB / {bd / 1e6:.1f} MB)")
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=400000)
    ap.add_argument("--partitions", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--interval-ms", type=int, default=200)
    ap.add_argument("--disorder-ms", type=int, default=0)
    ap.add_argument("--parts", default="1,2,3,4,5,6")
    ap.add_argument("--rate", type=int, default=50000,
                    help="part 6: source.max_records_per_second (a steady load over many epochs)")
    ap.add_argument("--idle-cpu", type=float, default=3.0,
                    help="seconds of each CPU window after the input in part 4")
    ap.add_argument("--idle", type=float, default=2.0,
                    help="seconds of the quiet window in part 2")
    ap.add_argument("--timeout", type=float, default=300.0,
                    help="seconds a cluster run may take to cover the input")
    ap.add_argument("--eddy", default=os.path.join(REPO, "build", "app", "eddy"))
    ap.add_argument("--cp-base", default="/var/tmp")
    ap.add_argument("--keep", action="store_true", help="keep the work directories")
    ap.add_argument("--verbose", action="store_true",
                    help="print every cluster run's manifests (epoch, seconds, records committed)")
    a = ap.parse_args()
    parts = {int(p) for p in a.parts.split(",") if p.strip()}
    if not os.access(a.eddy, os.X_OK):
        sys.exit(f"cluster_bench: {a.eddy} is not built")
    for tool, part in (("ss", 2), ("taskset", 3)):
        if part in parts and shutil.which(tool) is None:
            sys.exit(f"cluster_bench: part {part} needs {tool}")
    if 3 in parts and len(os.sched_getaffinity(0)) < 2:
        sys.exit("cluster_bench: part 3 needs cores 0 and 1")

    # SIGTERM/SIGINT end the run through the finally below.
    def bail(sig, _frame):
        raise KeyboardInterrupt(f"signal {sig}")
    signal.signal(signal.SIGTERM, bail)

    mach = machine()
    print(f"machine: nproc {mach['nproc']}, CPU {mach['cpu']!r}, {mach['mem_gib']} GiB, kernel "
          f"{mach['kernel']}; load average at start {' '.join(mach['loadavg'])}")
    print(f"eddy: {os.path.abspath(a.eddy)}; {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()
    work = tempfile.mkdtemp(prefix="eddy-cluster-bench.", dir=shm)
    cp_base = tempfile.mkdtemp(prefix="eddy-cluster-bench.", dir=a.cp_base)
    procs = Processes()
    ok = False
    try:
        b = Bench(a, procs, work, cp_base)
        b.start_broker()
        rep, secs = b.produce()
        if 4 in parts:
            b.produce(SMALL_TOPIC, SMALL_COUNT)
        print(f"topic {TOPIC}: {a.partitions} partitions at {b.bootstrap}; produced "
              f"{rep['produced']} records in {secs:.1f} s ({rep['ops']}, zstd"
              f"{', disorder ' + str(a.disorder_ms) + ' ms' if a.disorder_ms else ''})")
        if 1 in parts:
            part1(b, a.rounds)
        if 2 in parts:
            part2(b, a.rounds, a.idle)
        if 3 in parts:
            part3(b, a.rounds)
        if 4 in parts:
            part4(b, a.rounds, a.idle_cpu)
        if 5 in parts:
            part5(b, a.rounds)
        if 6 in parts:
            part6(b, a.rounds)
        print(f"\nload average at the end: {' '.join(read('/proc/loadavg').split()[:3])}")
        ok = True
    except BenchError as e:
        print(f"cluster_bench: {e}", file=sys.stderr)
    except KeyboardInterrupt as e:
        print(f"cluster_bench: interrupted ({e})", file=sys.stderr)
    finally:
        procs.stop_all()
        if a.keep:
            print(f"kept: {work} {cp_base}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
            shutil.rmtree(cp_base, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""cluster_detect.py — how fast an eddy cluster notices a lost worker and moves its units.

Starts a development broker (16 partitions), `eddy coordinator` with the windowed example
(16 partitions + 4 shards = 20 units) and 3 `eddy worker`s on loopback. Then, KILLS times: kill -9
a random worker and time until the coordinator's log says it was lost and the moves of the new
generation are logged; restart it and wait until it holds units again. Then PAUSES times:
SIGSTOP a worker and time the same (bounded by --connection-timeout-ms, default 2000 ms), SIGCONT
it and wait until it rejoined. Prints every gap and the median and max per kind.

This is the detection-and-reassignment part of the failover gap; restoring and resuming the units
on their new owner comes with the distributed runtime (docs/cluster.md).
  bench/cluster_detect.py [--kills 10] [--pauses 3] [--eddy build/app/eddy]
"""
import argparse, os, random, re, shutil, signal, statistics, subprocess, sys, tempfile, time

TOPIC = "business_postgres.public.business_ncr_ride_bookings"


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.001)
    raise SystemExit(f"cluster_detect: timed out waiting for {what}")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--pauses", type=int, default=3)
    ap.add_argument("--eddy", default=os.path.join(here, "..", "build", "app", "eddy"))
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    work = tempfile.mkdtemp(prefix="eddy-cluster-detect-")
    procs = []

    def start(args, out=None, err=None):
        p = subprocess.Popen([a.eddy] + args, stdout=out or subprocess.DEVNULL,
                             stderr=err or subprocess.DEVNULL)
        procs.append(p)
        return p

    try:
        bout = open(os.path.join(work, "broker.out"), "w+")
        start(["broker", "--topic", f"{TOPIC}:16"], out=bout)
        bootstrap = wait_for(lambda: re.search(r"bootstrap=(\S+)", open(bout.name).read()), 20,
                             "the broker").group(1)
        clog = os.path.join(work, "coordinator.log")
        cout = open(os.path.join(work, "coordinator.out"), "w+")
        # A cluster pipeline needs a [checkpoint] table: the windowed example with one.
        pipeline = os.path.join(work, "ncr_windowed_cluster.toml")
        with open(os.path.join(here, "..", "deploy/pipelines/ncr_windowed.toml")) as src, \
                open(pipeline, "w") as dst:
            dst.write(src.read() + '\n[checkpoint]\ndir = "%s"\ninterval = "1s"\n'
                      % os.path.join(work, "checkpoints"))
        start(["coordinator", "-c", pipeline,
               "--listen", "127.0.0.1:0", "--state-dir", os.path.join(work, "coord"),
               "--bootstrap", bootstrap], out=cout, err=open(clog, "w"))
        address = wait_for(lambda: re.search(r"listening=(\S+)", open(cout.name).read()), 20,
                           "the coordinator").group(1)
        workers = {}

        def start_worker(name):
            workers[name] = start(["worker", "--join", address, "--name", name, "--local-dir",
                                   os.path.join(work, name)])

        def log():
            return open(clog).read()

        for n in ("w1", "w2", "w3"):
            start_worker(n)
            wait_for(lambda: f"worker {n} joined" in log(), 20, f"{n} to join")

        def lost_and_moved(name, seen):
            text = log()
            i = text.find(f"worker {name} lost", seen)
            if i < 0:
                return None
            rest = text[i:]
            return f"{name} -> " in rest or "no unit moves" in rest

        gaps = {"kill -9": [], "SIGSTOP": []}
        for kind, rounds in (("kill -9", a.kills), ("SIGSTOP", a.pauses)):
            for _ in range(rounds):
                name = rng.choice(sorted(workers))
                seen = len(log())
                t0 = time.monotonic()
                workers[name].send_signal(signal.SIGKILL if kind == "kill -9" else signal.SIGSTOP)
                wait_for(lambda: lost_and_moved(name, seen), 30, f"{name} to be lost")
                gaps[kind].append((time.monotonic() - t0) * 1000)
                seen = len(log())
                if kind == "kill -9":
                    workers[name].wait()
                    start_worker(name)
                else:
                    workers[name].send_signal(signal.SIGCONT)
                wait_for(lambda: log().find(f"worker {name} joined", seen) >= 0, 30,
                         f"{name} to rejoin")
                print(f"{kind:8} {name}: lost and its units moved after {gaps[kind][-1]:7.1f} ms",
                      flush=True)
        for kind, g in gaps.items():
            if g:
                print(f"{kind}: {len(g)} rounds, median {statistics.median(g):.1f} ms, "
                      f"max {max(g):.1f} ms")
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

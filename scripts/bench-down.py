#!/usr/bin/env python3
"""`provision down --purge` against the sandbox under the `realistic` latency profile.

For RUNS fresh sandboxes (default 3) at TIME_SCALE (default 10: the critical path is a third of
`up`'s, so the fixed cost of a run, signing in and finding what is ours, would weigh three times
as much at `up`'s 30): `up --env local`, then a timed
`down --env local --purge`, its wall time against the critical path of the sandbox's own delete
operations (target: wall <= 1.1 x critical path), then a second `down --purge`, which must find
nothing and write nothing.
The critical path, from the realistic profile (README, "Async operations"; src/sandbox/config.rs):
the model deployment's delete 10 s, then the account's delete 5 s, then the resource group's
delete 15 s = 30 s (the account's purge, 10 s, runs beside the group's delete; the APIM branch,
the API's delete 5 s and the service's synchronous delete, is shorter). So 30 s of sandbox time,
/ TIME_SCALE.
Usage: cargo build --release && scripts/bench-down.py   (BIN=path to use another build)
"""
import json
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
import urllib.request

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
BIN = os.environ.get("BIN", os.path.join(ROOT, "target", "release", "provision"))
RUNS = int(os.environ.get("RUNS", "3"))
SCALE = float(os.environ.get("TIME_SCALE", "10"))
CRITICAL_PATH_S = 30.0


def start_sandbox(state):
    proc = subprocess.Popen(
        [BIN, "--color", "never", "sandbox", "serve", "--addr", "127.0.0.1:0", "--state", state,
         "--latency", "realistic", "--time-scale", str(SCALE), "--apim-create-seconds", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    base = proc.stdout.readline().strip().removeprefix("sandbox listening on ")
    return proc, base


def project(address):
    work = tempfile.mkdtemp()
    for d in ("environments", "templates"):
        shutil.copytree(os.path.join(ROOT, d), os.path.join(work, d))
    local = os.path.join(work, "environments", "local.yaml")
    with open(local) as f:
        text = f.read().replace("address: 127.0.0.1:7171", f"address: {address}")
    with open(local, "w") as f:
        f.write(text)
    return work


def run(work, *args):
    start = time.perf_counter()
    done = subprocess.run([BIN, "--color", "never", *args, "--env", "local"], cwd=work,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{args} failed ({done.returncode}):\n{done.stderr}")
    return elapsed, done


def requests(base):
    with urllib.request.urlopen(base + "/_sandbox/requests") as r:
        return json.load(r)


def main():
    walls, ratios, again = [], [], []
    for _ in range(RUNS):
        with tempfile.TemporaryDirectory() as state:
            proc, base = start_sandbox(state)
            work = project(base.removeprefix("http://"))
            try:
                run(work, "up")
                # Let Graph's replicas catch up (10 s of sandbox time), as a real pipeline would.
                time.sleep(10 / SCALE)
                wall, _ = run(work, "down", "--purge")
                walls.append(wall)
                ratios.append(wall / (CRITICAL_PATH_S / SCALE))
                before = len(requests(base))
                wall, done = run(work, "down", "--purge")
                log = [r for r in requests(base)[before:]
                       if not r["path"].startswith("/_sandbox/")]
                writes = [r for r in log if r["method"] != "GET"
                          and "/oauth2/v2.0/token" not in r["path"]]
                again.append((wall, len(writes), done.stdout.strip()))
            finally:
                proc.send_signal(signal.SIGINT)
                proc.wait(timeout=10)
                shutil.rmtree(work)
    cp = CRITICAL_PATH_S / SCALE
    ratio = statistics.median(ratios)
    print(f"down --purge: median {statistics.median(walls):.2f} s over {RUNS} runs"
          f" (min {min(walls):.2f}, max {max(walls):.2f}); critical path {cp:.2f} s (30 s at"
          f" time scale {SCALE:g}); ratio median {ratio:.3f} (target <= 1.1):"
          f" {'met' if ratio <= 1.1 else 'MISSED'}")
    print(f"second down --purge: median {statistics.median(a[0] for a in again) * 1000:.0f} ms,"
          f" writes {max(a[1] for a in again)}; says: {again[0][2].splitlines()[0]}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""`provision up` and `plan` against the sandbox under the `realistic` latency profile.

For RUNS fresh sandboxes (default 3) at TIME_SCALE (default 30):
  1. a fresh `up --env local`: wall time against the critical path of the sandbox's own
     operation times (target: wall <= 1.1 x critical path);
  2. a no-op `up` and a `plan` on the converged environment: they must send GETs only, one per
     resource (plus sign-in), and take <= 2 x the slowest GET + 100 ms (target).
The critical path, from the realistic profile (README, "Async operations"): account create 30 s,
then the deployment write 60 s = 90 s, against the gateway branch: APIM service create
(--apim-create-seconds, 60 s here) + API 5 s = 65 s. So 90 s of sandbox time, / TIME_SCALE.
Usage: cargo build --release && scripts/bench-up.py
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
BIN = os.path.join(ROOT, "target", "release", "provision")
RUNS = int(os.environ.get("RUNS", "3"))
SCALE = float(os.environ.get("TIME_SCALE", "30"))
CRITICAL_PATH_S = 90.0


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
    if done.returncode not in (0, 2):
        raise SystemExit(f"{args} failed ({done.returncode}):\n{done.stderr}")
    return elapsed, done


def requests(base):
    with urllib.request.urlopen(base + "/_sandbox/requests") as r:
        return json.load(r)


def main():
    fresh, noop, plan, ratios = [], [], [], []
    for _ in range(RUNS):
        with tempfile.TemporaryDirectory() as state:
            proc, base = start_sandbox(state)
            work = project(base.removeprefix("http://"))
            try:
                wall, _ = run(work, "up")
                fresh.append(wall)
                ratios.append(wall / (CRITICAL_PATH_S / SCALE))
                for name, series, args in (("up (no-op)", noop, ("up",)),
                                           ("plan", plan, ("plan", "--detailed-exitcode"))):
                    before = len(requests(base))
                    wall, done = run(work, *args)
                    log = requests(base)[before:]
                    log = [r for r in log if not r["path"].startswith("/_sandbox/requests")]
                    writes = [r for r in log if r["method"] != "GET"
                              and "/oauth2/v2.0/token" not in r["path"]]
                    gets = [r for r in log if r["method"] == "GET"
                            and not r["path"].startswith("/_sandbox/")]
                    slowest = max(r["duration_ms"] for r in gets) / 1000
                    series.append((wall, len(gets), len(writes), slowest))
                    if writes:
                        print(f"  {name}: unexpected writes {writes}")
            finally:
                proc.send_signal(signal.SIGINT)
                proc.wait(timeout=10)
                shutil.rmtree(work)
    cp = CRITICAL_PATH_S / SCALE
    med = statistics.median(fresh)
    print(f"fresh up: median {med:.2f} s over {RUNS} runs (min {min(fresh):.2f}, max {max(fresh):.2f});"
          f" critical path {cp:.2f} s (90 s at time scale {SCALE:g}); ratio median"
          f" {statistics.median(ratios):.3f} (target <= 1.1): "
          f"{'met' if statistics.median(ratios) <= 1.1 else 'MISSED'}")
    for name, series in (("no-op up", noop), ("plan", plan)):
        walls = [s[0] for s in series]
        slowest = statistics.median(s[3] for s in series)
        target = 2 * slowest + 0.1
        print(f"{name}: median {statistics.median(walls) * 1000:.0f} ms, GETs {series[0][1]},"
              f" writes {series[0][2]}, slowest GET median {slowest * 1000:.0f} ms; target"
              f" <= {target * 1000:.0f} ms: "
              f"{'met' if statistics.median(walls) <= target else 'MISSED'}")


if __name__ == "__main__":
    main()

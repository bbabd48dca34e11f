#!/usr/bin/env python3
"""Time from starting `provision sandbox serve` to its first answer (target: under 200 ms).

Starts the release binary on a free loopback port, reads the URL it prints, polls
GET /_sandbox/info until it answers 200, and stops it with SIGINT. Prints the median of
RUNS starts (default 20), for a fresh sandbox (new keys) and one restarted from its state.
Usage: cargo build --release && scripts/bench-sandbox-start.py
"""
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

BIN = os.path.join(os.path.dirname(__file__), "..", "target", "release", "provision")
RUNS = int(os.environ.get("RUNS", "20"))


def one(state_dir):
    start = time.perf_counter()
    proc = subprocess.Popen(
        [BIN, "--color", "never", "sandbox", "serve", "--addr", "127.0.0.1:0", "--state", state_dir],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    base = line.strip().removeprefix("sandbox listening on ")
    while True:
        try:
            with urllib.request.urlopen(base + "/_sandbox/info", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.001)
    elapsed = (time.perf_counter() - start) * 1000
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=10)
    return elapsed


def main():
    fresh, warm = [], []
    for _ in range(RUNS):
        with tempfile.TemporaryDirectory() as d:
            fresh.append(one(d))
            warm.append(one(d))
    print(f"sandbox serve ready: fresh state median {statistics.median(fresh):.1f} ms "
          f"(min {min(fresh):.1f}, max {max(fresh):.1f}); restarted from state median "
          f"{statistics.median(warm):.1f} ms (min {min(warm):.1f}, max {max(warm):.1f}); {RUNS} runs each")


if __name__ == "__main__":
    sys.exit(main())

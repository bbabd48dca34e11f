#!/usr/bin/env bash
# Whole-process timing of `provision render --env prod` (target: median under 20 ms).
# Needs hyperfine (apt-get install hyperfine).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
hyperfine -N --warmup 5 --runs "${RUNS:-50}" --export-json target/bench-render.json \
  './target/release/provision render --env prod'
python3 - <<'PY'
import json
r = json.load(open("target/bench-render.json"))["results"][0]
print("median %.2f ms over %d runs" % (r["median"] * 1000, len(r["times"])))
PY

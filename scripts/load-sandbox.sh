#!/usr/bin/env bash
# Bounded loopback load test of a separately running sandbox with wrk (16 connections, 1 thread,
# DURATION seconds per endpoint): client-credentials token requests, Graph GETs by appId, and ARM
# GETs of a resource group.
# wrk is a lean C client, so most of the 2 cores go to the sandbox, as they would in real use.
# Needs wrk, curl and python3 (apt-get install wrk curl). Usage: scripts/load-sandbox.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-10}"
cargo build --release --quiet
work="$(mktemp -d)"
trap 'kill -INT "${pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
./target/release/provision --color never sandbox serve --addr 127.0.0.1:0 > "$work/out" 2>/dev/null &
pid=$!
for _ in $(seq 100); do grep -q "listening on" "$work/out" 2>/dev/null && break; sleep 0.05; done
base="$(sed -n 's/^sandbox listening on //p' "$work/out")"
curl -fsS "$base/_sandbox/info" > "$work/info.json"
read -r tenant id secret < <(python3 -c 'import json,sys; i=json.load(open(sys.argv[1])); print(i["default_tenant"], i["operator"]["client_id"], i["operator"]["client_secret"])' "$work/info.json")
form="grant_type=client_credentials&client_id=$id&client_secret=$secret&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default"
token="$(curl -fsS -d "$form" "$base/$tenant/oauth2/v2.0/token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"
app="$(curl -fsS -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d '{"displayName":"load test"}' "$base/v1.0/applications" | python3 -c 'import json,sys; print(json.load(sys.stdin)["appId"])')"
cat > "$work/token.lua" <<LUA
wrk.method = "POST"
wrk.body = "$form"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
LUA
echo "token (client credentials):"
wrk -t1 -c16 -d"${DURATION}s" -s "$work/token.lua" "$base/$tenant/oauth2/v2.0/token" | grep -E "Requests/sec|Non-2xx|Latency"
echo "Graph GET application by appId:"
wrk -t1 -c16 -d"${DURATION}s" -H "Authorization: Bearer $token" "$base/v1.0/applications(appId='$app')" | grep -E "Requests/sec|Non-2xx|Latency"
arm_form="grant_type=client_credentials&client_id=$id&client_secret=$secret&scope=https%3A%2F%2Fmanagement.azure.com%2F.default"
arm_token="$(curl -fsS -d "$arm_form" "$base/$tenant/oauth2/v2.0/token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"
subscription="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["subscriptions"][0])' "$work/info.json")"
group="$base/subscriptions/$subscription/resourceGroups/load?api-version=2025-04-01"
curl -fsS -X PUT -H "Authorization: Bearer $arm_token" -H 'Content-Type: application/json' -d '{"location":"westus"}' "$group" > /dev/null
echo "ARM GET resource group:"
wrk -t1 -c16 -d"${DURATION}s" -H "Authorization: Bearer $arm_token" "$group" | grep -E "Requests/sec|Non-2xx|Latency"

#!/usr/bin/env bash
# Load on `evlog serve` from a second process (wrk, `apt-get install wrk`): GET
# /api/events/health and GET /api/events/metrics on loopback, 2 threads, 16 connections, 10 s
# each, over a store of 1,000 events in 50 streams. Prints wrk's req/s and latency percentiles
# (the figures of BENCHMARKS.md). Not run by CI: it measures, it asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/serve-lib.sh
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)"; exit 2; }
cargo build --release -p evlog-tools --quiet
work=$(mktemp -d)
server_pid=""
trap '[ -n "$server_pid" ] && kill -TERM "$server_pid" 2>/dev/null; rm -rf "$work"' EXIT
python3 - "$work/events.jsonl" <<'PY'
import json, sys, uuid
with open(sys.argv[1], "w") as f:
    for i in range(1000):
        f.write(json.dumps({"stream": f"order-{i % 50}", "type": "OrderPlaced", "version": i // 50,
                            "id": str(uuid.uuid4()), "data": {"n": i}}) + "\n")
PY
target/release/evlog import "$work/store" "$work/events.jsonl" >/dev/null
start_serve "$work/store" read:bench:load-token "$work"
echo "== GET /api/events/health"
wrk -t2 -c16 -d10s --latency "$base/api/events/health"
echo "== GET /api/events/metrics"
wrk -t2 -c16 -d10s --latency -H "Authorization: Bearer load-token" "$base/api/events/metrics"

#!/usr/bin/env bash
# schemathesis (PyPI) against a running `evlog serve`: every operation of /api/openapi.json is
# called with generated values (valid and invalid) and every answer is checked against the
# document (status codes, content types, JSON schemas, auth enforced). The event stream
# (GET /api/events/stream) never ends, so it is left out here; tests/http.rs covers it.
#
# It installs schemathesis in a virtualenv under target/, builds the tool, fills a temp store
# with events and parked dead letters (through `evlog import`), starts `evlog serve` on
# 127.0.0.1 with an admin token, runs schemathesis, and stops the server with SIGTERM.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/serve-lib.sh

SCHEMATHESIS_VERSION=4.32.5
EXAMPLES=${SCHEMATHESIS_EXAMPLES:-40}
venv=$PWD/target/schemathesis-venv

if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    echo "== installing schemathesis $SCHEMATHESIS_VERSION"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

# EVLOG_BUILT=1: target/release/evlog is already built (CI's test step built it, with every
# feature; building it here with the tool's own feature set would compile the crate again).
if [ "${EVLOG_BUILT:-}" != 1 ]; then
    echo "== building evlog"
    cargo build --release -p evlog-tools --quiet
fi

work=$(mktemp -d)
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill -TERM "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# Events of a few user streams, and two handlers' parked events.
python3 - "$work/events.jsonl" <<'PY'
import json, sys, uuid
lines, versions = [], {}
def add(stream, typ, data):
    v = versions.get(stream, 0); versions[stream] = v + 1
    lines.append({"stream": stream, "type": typ, "version": v, "id": str(uuid.uuid4()), "data": data})
for i in range(30):
    add(f"order-{i % 5}", ["OrderPlaced", "OrderPaid", "OrderShipped"][i % 3], {"n": i})
for handler in ["mailer", "billing"]:
    for p in range(4):
        add(f"$dlq-{handler}", "DeadLetterParked", {
            "position": p, "stream": f"order-{p}", "version": 0, "event_type": "OrderPlaced",
            "event_id": str(uuid.uuid4()), "handler": handler, "reason": "failed",
            "attempts": 4, "last_error": "mail server down", "parked_at_us": 1700000000000000})
with open(sys.argv[1], "w") as f:
    for l in lines:
        f.write(json.dumps(l) + "\n")
PY
target/release/evlog import "$work/store" "$work/events.jsonl" >/dev/null

token="ci-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
start_serve "$work/store" "admin:ci:$token" "$work"
echo "== evlog serve at $base"

curl -sf -H "Authorization: Bearer $token" "$base/api/openapi.json" >"$work/openapi.json"

echo "== schemathesis run ($EXAMPLES examples per operation)"
status=0
# From the temp directory: schemathesis keeps a cache (.schemathesis/) where it runs.
(cd "$work" && "$venv/bin/schemathesis" run "$work/openapi.json" \
    --url "$base" \
    --header "Authorization: Bearer $token" \
    --checks all \
    --exclude-path /api/events/stream \
    --max-examples "$EXAMPLES" \
    --seed 15 \
    --request-timeout 10 \
    --no-color) || status=$?

echo "== stopping evlog serve"
kill -TERM "$server_pid"
wait "$server_pid" || { echo "evlog serve exited with $?"; cat "$work/serve.err"; status=1; }
server_pid=""
target/release/evlog verify "$work/store" >/dev/null || { echo "the store is not clean after the run"; status=1; }
exit "$status"

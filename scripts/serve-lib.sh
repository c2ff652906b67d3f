# Sourced by scripts/schemathesis.sh and scripts/http-load.sh: start `evlog serve` in the
# background and wait until it listens.
#
# start_serve STORE_DIR TOKENS WORK_DIR: runs target/release/evlog serve on 127.0.0.1 (a free
# port) with EVLOG_API_TOKENS=TOKENS, its output in WORK_DIR/serve.out and serve.err; sets
# server_pid and base (http://127.0.0.1:PORT). Exits 1 if it does not start within 10 s.
start_serve() {
    local store=$1 tokens=$2 work=$3
    EVLOG_API_TOKENS="$tokens" target/release/evlog serve "$store" \
        --listen 127.0.0.1:0 >"$work/serve.out" 2>"$work/serve.err" &
    server_pid=$!
    base=""
    for _ in $(seq 1 100); do
        base=$(sed -n 's|.*listening on \(http://[^ ]*\).*|\1|p' "$work/serve.out")
        [ -n "$base" ] && return 0
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "evlog serve did not start"
    cat "$work/serve.err"
    exit 1
}

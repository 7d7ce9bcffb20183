#!/usr/bin/env bash
# Ingest benchmark: how many signed GitHub push deliveries per second a
# release build of portcall durably commits on SQLite, against the ceiling of
# an endpoint that only verifies the HMAC and stores nothing.
#
#   scripts/bench-ingest.sh [SECONDS=20] [CONNECTIONS=64]
#
# Load comes from wrk (Debian package; installed if missing) with a Lua
# script that gives every request a unique X-GitHub-Delivery. Prints
# accepted deliveries per second and p50/p99 latency for both, and checks
# that every accepted delivery is really in the database.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_RUN=${1:-20}
CONNECTIONS=${2:-64}
PORTCALL_PORT=18090
CEILING_PORT=18091

if ! command -v wrk >/dev/null; then
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi
cargo build --release --quiet --bin portcall --example verify_only

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

secret="bench-webhook-secret"
printf '%s\n' "$secret" > "$work/secret"
export BENCH_BODY="$PWD/fixtures/github/push.json"
export BENCH_SIGNATURE="sha256=$(python3 -c 'import hmac,hashlib,sys; print(hmac.new(sys.argv[1].encode(), open(sys.argv[2],"rb").read(), hashlib.sha256).hexdigest())' "$secret" "$BENCH_BODY")"

cat > "$work/portcall.toml" <<TOML
[server]
listen = "127.0.0.1:$PORTCALL_PORT"
[database]
url = "sqlite://$work/bench.db"
[[sources]]
name = "github"
kind = "github"
secrets = ["file:$work/secret"]
TOML

wait_for() {
    for _ in $(seq 1 100); do
        curl -s -o /dev/null "$1" && return 0
        sleep 0.1
    done
    echo "server at $1 did not start" >&2
    exit 1
}

run_wrk() {
    wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_RUN}s" --latency -s scripts/bench/github-push.lua "$1" | grep '^RESULT'
}

echo "payload: $(wc -c < "$BENCH_BODY") bytes; $CONNECTIONS connections; ${SECONDS_RUN}s per run; $(nproc) cores"

env RUST_LOG=warn ${BENCH_ENV:-} target/release/portcall --config "$work/portcall.toml" serve &
pids+=($!)
wait_for "http://127.0.0.1:$PORTCALL_PORT/healthz"
durable=$(run_wrk "http://127.0.0.1:$PORTCALL_PORT")
stored=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from deliveries").fetchone()[0])' "$work/bench.db")
kill -TERM "${pids[0]}"; wait "${pids[0]}" || true

target/release/examples/verify_only "127.0.0.1:$CEILING_PORT" "$secret" &
pids+=($!)
wait_for "http://127.0.0.1:$CEILING_PORT/"
ceiling=$(run_wrk "http://127.0.0.1:$CEILING_PORT")

field() { sed -n "s/.*$2=\([0-9.]*\).*/\1/p" <<<"$1"; }
echo
echo "portcall (verify + durable SQLite commit): $(field "$durable" rps) deliveries/s, p50 $(field "$durable" p50_ms) ms, p99 $(field "$durable" p99_ms) ms, failed $(field "$durable" failed), rows stored $stored of $(field "$durable" requests) requests"
echo "ceiling  (verify HMAC only, 202):         $(field "$ceiling" rps) requests/s, p50 $(field "$ceiling" p50_ms) ms, p99 $(field "$ceiling" p99_ms) ms"
python3 -c 'import sys; d,c=float(sys.argv[1]),float(sys.argv[2]); print(f"durable / ceiling = {d/c:.0%}")' "$(field "$durable" rps)" "$(field "$ceiling" rps)"

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
[ -n "${BENCH_NO_BUILD:-}" ] || cargo build --release --quiet --bin portcall --example verify_only

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

write_config() {  # $1: worker enabled (true|false), $2: database file
    cat > "$work/portcall.toml" <<TOML
[server]
listen = "127.0.0.1:$PORTCALL_PORT"
[database]
url = "sqlite://$2"
[worker]
enabled = $1
[[sources]]
name = "github"
kind = "github"
secrets = ["file:$work/secret"]
TOML
}

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

count_rows() {
    python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from deliveries").fetchone()[0])' "$1"
}

# One durable run: $1 = worker enabled. Sets RESULT to the wrk RESULT line
# plus the rows found in the database afterwards.
durable_run() {
    local db="$work/bench-$1.db"
    # Flush what earlier runs left dirty: an fsync waits for the whole
    # journal, so one run's leftovers would slow the next one's commits.
    sync; sleep 1
    write_config "$1" "$db"
    RUST_LOG=warn target/release/portcall --config "$work/portcall.toml" serve >/dev/null &
    local pid=$!
    pids+=("$pid")
    wait_for "http://127.0.0.1:$PORTCALL_PORT/healthz"
    local result
    result=$(run_wrk "http://127.0.0.1:$PORTCALL_PORT")
    local wal_kib=$(( $(stat -c %s "$db-wal" 2>/dev/null || echo 0) / 1024 ))
    kill -TERM "$pid"; wait "$pid" || true
    RESULT="$result stored=$(count_rows "$db") wal_kib=$wal_kib"
    rm -f "$db" "$db-wal" "$db-shm"
}

echo "payload: $(wc -c < "$BENCH_BODY") bytes; $CONNECTIONS connections; ${SECONDS_RUN}s per run; $(nproc) cores"
durable_run false; ingest_only=$RESULT
durable_run true; with_worker=$RESULT

target/release/examples/verify_only "127.0.0.1:$CEILING_PORT" "$secret" >/dev/null &
pids+=($!)
wait_for "http://127.0.0.1:$CEILING_PORT/"
ceiling=$(run_wrk "http://127.0.0.1:$CEILING_PORT")

field() { sed -n "s/.*$2=\([0-9.]*\).*/\1/p" <<<"$1"; }
report() {
    echo "$1 $(field "$2" rps) deliveries/s, p50 $(field "$2" p50_ms) ms, p99 $(field "$2" p99_ms) ms, failed $(field "$2" failed), rows stored $(field "$2" stored) (wrk counted $(field "$2" requests) answers), WAL at the end $(field "$2" wal_kib) KiB"
}
echo
report "portcall, ingest only (verify + durable SQLite commit):" "$ingest_only"
report "portcall, worker processing alongside:                 " "$with_worker"
echo "ceiling, verify HMAC only and answer 202:                $(field "$ceiling" rps) requests/s, p50 $(field "$ceiling" p50_ms) ms, p99 $(field "$ceiling" p99_ms) ms"
python3 -c 'import sys; d,w,c=map(float,sys.argv[1:]); print(f"durable / ceiling = {d/c:.0%} (ingest only), {w/c:.0%} (with the worker)")' \
    "$(field "$ingest_only" rps)" "$(field "$with_worker" rps)" "$(field "$ceiling" rps)"

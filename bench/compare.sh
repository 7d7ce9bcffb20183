#!/usr/bin/env bash
# The benchmark users quote: portcall against Probot and @octokit/webhooks on
# one machine, in one run, with the same load.
#
#   bench/compare.sh [SECONDS=10] [RUNS=3]
#
# Installs Probot and @octokit/webhooks with npm into a scratch folder (a
# minimal Probot app and a bare @octokit/webhooks server, each with a no-op
# push handler), builds portcall (release) and the ceiling (an actix-web
# endpoint that only verifies the HMAC, examples/verify_only.rs), and runs
# each server pinned to CPU 0 while wrk, pinned to CPU 1, posts the same
# signed GitHub push payload with a unique X-GitHub-Delivery per request at
# 1, 16 and 64 connections, RUNS runs of SECONDS each. portcall runs as
# configured by default (inbox worker on) on SQLite, on PostgreSQL, and on
# PostgreSQL with database.group_commit_max = 1 (one transaction per
# request: what group commit is measured against). PostgreSQL itself is the
# machine's server and is not pinned.
#
# Prints the machine, then per server and concurrency the median
# requests/s, p50 and p99 of the runs, and the server's peak RSS (VmHWM);
# then checks the targets. Every accepted delivery is counted in the
# database afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_RUN=${1:-10}
RUNS=${2:-3}
CONCURRENCY=(1 16 64)
SERVER_CPU=0
LOAD_CPU=1
PORT=18190
PG_ADMIN="postgres://postgres@127.0.0.1:5432/postgres"
PG_BENCH_DB=portcall_bench
PROBOT_VERSION=14.3.2
WEBHOOKS_VERSION=14.2.0

if [ "$(nproc)" -lt 2 ]; then echo "needs two CPUs (server and load apart)" >&2; exit 1; fi
if ! command -v wrk >/dev/null; then
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi
command -v node >/dev/null && command -v npm >/dev/null || { echo "needs node and npm" >&2; exit 1; }
[ -n "${BENCH_NO_BUILD:-}" ] || cargo build --release --quiet --bin portcall --example verify_only

work=$(mktemp -d)
pid=""
cleanup() {
    if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $PG_BENCH_DB" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

echo "--- installing probot@$PROBOT_VERSION and @octokit/webhooks@$WEBHOOKS_VERSION into $work/node"
mkdir -p "$work/node"
(cd "$work/node" && npm init -y >/dev/null && npm install --silent --no-audit --no-fund \
    "probot@$PROBOT_VERSION" "@octokit/webhooks@$WEBHOOKS_VERSION" >/dev/null 2>&1)
cat > "$work/node/probot-app.mjs" <<'JS'
// A minimal Probot app: the push handler does nothing.
import { run } from "probot";
await run((app) => {
  app.on("push", async () => {});
});
JS
cat > "$work/node/octokit-webhooks.mjs" <<'JS'
// @octokit/webhooks alone on node:http: verify, parse, a no-op handler.
import http from "node:http";
import { Webhooks, createNodeMiddleware } from "@octokit/webhooks";
const webhooks = new Webhooks({ secret: process.env.WEBHOOK_SECRET });
webhooks.on("push", () => {});
const middleware = createNodeMiddleware(webhooks, { path: "/api/github/webhooks" });
http
  .createServer((req, res) => middleware(req, res, () => res.writeHead(404).end()))
  .listen(Number(process.env.PORT), "127.0.0.1");
JS

# Probot wants an App's key to start; the push handler never uses it.
key="$PWD/fixtures/github/test-app-key.pem"
secret="bench-webhook-secret"
printf '%s\n' "$secret" > "$work/secret"
export BENCH_BODY="$PWD/fixtures/github/push.json"
export BENCH_SIGNATURE="sha256=$(python3 -c 'import hmac,hashlib,sys; print(hmac.new(sys.argv[1].encode(), open(sys.argv[2],"rb").read(), hashlib.sha256).hexdigest())' "$secret" "$BENCH_BODY")"

portcall_config() {  # $1: database URL
    cat > "$work/portcall.toml" <<TOML
[server]
listen = "127.0.0.1:$PORT"
[database]
url = "$1"
[[sources]]
name = "github"
kind = "github"
secrets = ["file:$work/secret"]
TOML
}

fresh_postgres() {
    psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $PG_BENCH_DB" -c "CREATE DATABASE $PG_BENCH_DB" >/dev/null
}

wait_for_port() {
    for _ in $(seq 1 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "server on :$PORT did not start" >&2
    exit 1
}

results="$work/results"
: > "$results"
ACCEPTED=0

# measure NAME PATH: load against the server started as $pid; appends
# "NAME CONCURRENCY RUN rps p50 p99 failed" lines and "NAME rss KIB".
measure() {
    local name=$1 path=$2
    export BENCH_PATH=$path
    wait_for_port
    BENCH_RUN="$name-warmup" taskset -c "$LOAD_CPU" wrk -t1 -c16 -d2s -s scripts/bench/github-push.lua \
        "http://127.0.0.1:$PORT" | grep '^RESULT' > "$work/warmup"
    ACCEPTED=$(( $(sed -n 's/.*requests=\([0-9]*\) failed=\([0-9]*\).*/\1-\2/p' "$work/warmup") ))
    for c in "${CONCURRENCY[@]}"; do
        for run in $(seq 1 "$RUNS"); do
            local line
            line=$(BENCH_RUN="$name-$c-$run" taskset -c "$LOAD_CPU" wrk -t1 -c"$c" -d"${SECONDS_RUN}s" --latency \
                -s scripts/bench/github-push.lua "http://127.0.0.1:$PORT" | grep '^RESULT')
            ACCEPTED=$(( ACCEPTED + $(sed -n 's/.*requests=\([0-9]*\) failed=\([0-9]*\).*/\1-\2/p' <<<"$line") ))
            echo "$name $c $run $(sed -n 's/.*rps=\([0-9.]*\) p50_ms=\([0-9.]*\) p99_ms=\([0-9.]*\).*/\1 \2 \3/p' <<<"$line") $(sed -n 's/.*failed=\([0-9]*\).*/\1/p' <<<"$line")" >> "$results"
            printf '  %-26s c=%-3s run %s: %s\n' "$name" "$c" "$run" "${line#RESULT }"
        done
    done
    echo "$name rss $(awk '/VmHWM/ {print $2}' "/proc/$pid/status")" >> "$results"
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
    pid=""
}

# Checks that every 2xx the load counted is a row in the database (a few
# more may be: answered after wrk stopped counting).
check_stored() {  # $1: name, $2: count
    if [ "$2" -lt "$ACCEPTED" ]; then
        echo "$1: wrk counted $ACCEPTED accepted deliveries but the database holds $2" >&2
        exit 1
    fi
    echo "  $1: all $ACCEPTED accepted deliveries are in the database ($2 rows)"
}

echo "--- machine"
echo "cpu: $(nproc) x $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); memory: $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
echo "kernel: $(uname -r); node: $(node --version); postgres: $(psql -tA "$PG_ADMIN" -c 'SHOW server_version')"
echo "payload: $(wc -c < "$BENCH_BODY") bytes; ${SECONDS_RUN}s x $RUNS runs per concurrency; server on CPU $SERVER_CPU, wrk on CPU $LOAD_CPU"

echo "--- probot"
(cd "$work/node" && APP_ID=1 PRIVATE_KEY="$(cat "$key")" \
    WEBHOOK_SECRET="$secret" PORT=$PORT HOST=127.0.0.1 LOG_LEVEL=warn \
    exec taskset -c "$SERVER_CPU" node probot-app.mjs) >/dev/null 2>"$work/probot.log" &
pid=$!
measure probot /api/github/webhooks

echo "--- @octokit/webhooks"
(cd "$work/node" && WEBHOOK_SECRET="$secret" PORT=$PORT exec taskset -c "$SERVER_CPU" node octokit-webhooks.mjs) \
    >/dev/null 2>"$work/octokit.log" &
pid=$!
measure octokit-webhooks /api/github/webhooks

echo "--- portcall, SQLite"
db="$work/bench.db"
portcall_config "sqlite://$db"
RUST_LOG=warn taskset -c "$SERVER_CPU" target/release/portcall --config "$work/portcall.toml" serve >/dev/null &
pid=$!
measure portcall-sqlite /webhooks/github
check_stored portcall-sqlite "$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from deliveries").fetchone()[0])' "$db")"

pg_count() { psql -tA "postgres://postgres@127.0.0.1:5432/$PG_BENCH_DB" -c "select count(*) from deliveries"; }

echo "--- portcall, PostgreSQL"
fresh_postgres
portcall_config "postgres://postgres@127.0.0.1:5432/$PG_BENCH_DB"
RUST_LOG=warn taskset -c "$SERVER_CPU" target/release/portcall --config "$work/portcall.toml" serve >/dev/null &
pid=$!
measure portcall-postgres /webhooks/github
check_stored portcall-postgres "$(pg_count)"

echo "--- portcall, PostgreSQL, one transaction per request"
fresh_postgres
PORTCALL__DATABASE__GROUP_COMMIT_MAX=1 RUST_LOG=warn taskset -c "$SERVER_CPU" \
    target/release/portcall --config "$work/portcall.toml" serve >/dev/null &
pid=$!
measure portcall-postgres-1tx /webhooks/github
check_stored portcall-postgres-1tx "$(pg_count)"

echo "--- ceiling: verify the HMAC, store nothing"
taskset -c "$SERVER_CPU" target/release/examples/verify_only "127.0.0.1:$PORT" "$secret" >/dev/null &
pid=$!
measure ceiling /webhooks/github

echo
python3 - "$results" <<'PY'
import statistics, sys
rows, rss = {}, {}
for line in open(sys.argv[1]):
    f = line.split()
    if f[1] == "rss":
        rss[f[0]] = int(f[2])
        continue
    rows.setdefault((f[0], int(f[1])), []).append((float(f[3]), float(f[4]), float(f[5]), int(f[6])))
names = ["probot", "octokit-webhooks", "portcall-sqlite", "portcall-postgres", "portcall-postgres-1tx", "ceiling"]
print(f"| server | connections | requests/s | p50 ms | p99 ms | failed | peak RSS MiB |")
print(f"|---|---:|---:|---:|---:|---:|---:|")
med = {}
for name in names:
    for c in sorted({c for (n, c) in rows if n == name}):
        runs = rows[(name, c)]
        rps = statistics.median(r[0] for r in runs)
        p50 = statistics.median(r[1] for r in runs)
        p99 = statistics.median(r[2] for r in runs)
        failed = sum(r[3] for r in runs)
        med[(name, c)] = (rps, p99)
        print(f"| {name} | {c} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {failed} | {rss[name] / 1024:.0f} |")
print()
ok = True
def check(what, value, target, good):
    global ok
    ok &= good
    print(f"{'PASS' if good else 'MISS'}  {what}: {value} (target {target})")
sq, pb, ce = med[("portcall-sqlite", 64)], med[("probot", 64)], med[("ceiling", 64)]
pg, one = med[("portcall-postgres", 64)], med[("portcall-postgres-1tx", 64)]
check("portcall SQLite / Probot at 64 connections", f"{sq[0] / pb[0]:.1f}x", ">= 2x", sq[0] >= 2 * pb[0])
check("portcall SQLite / ceiling at 64 connections", f"{sq[0] / ce[0]:.0%}", ">= 50%", sq[0] >= 0.5 * ce[0])
check("portcall SQLite p99 at 64 connections", f"{sq[1]:.2f} ms", "< 10 ms", sq[1] < 10)
check("portcall PostgreSQL / one transaction per request at 64", f"{pg[0] / one[0]:.1f}x", ">= 3x", pg[0] >= 3 * one[0])
sys.exit(0 if ok else 2)
PY

#!/usr/bin/env bash
# Release benchmark: the time from a registry notification's arrival to the
# commit status reaching GitHub, and the GitHub API calls each push costs
# once the installation token is cached, with zero retry backoff.
#
#   scripts/bench-release.sh [PUSHES=300] [CONCURRENCY=8]
#
# Runs examples/bench_release.rs (release build): portcall, a wiremock GitHub
# answering with the documented bodies and a wiremock registry, all in one
# process; CONCURRENCY pushes in flight, the first 20 of each round not
# counted. Two rounds per backend: image pushes tagged with their commit sha,
# and releases (tag v1.0.N, commit from the image's labels). SQLite always;
# PostgreSQL too when PORTCALL_BENCH_POSTGRES_URL names a server, e.g.
# postgres://postgres@127.0.0.1:5432/postgres (a fresh database is created
# there and dropped). Prints p50/p90/p99/max notification→status latency,
# throughput, and provider calls (and registry reads) per push by endpoint.
set -euo pipefail
cd "$(dirname "$0")/.."

PUSHES=${1:-300}
CONCURRENCY=${2:-8}

cargo build --release --quiet --example bench_release

# PORTCALL_BENCH_POSTGRES_URL (and any PORTCALL__DISPATCHER__… override)
# reaches the benchmark through the environment.
exec "${CARGO_TARGET_DIR:-target}/release/examples/bench_release" "$PUSHES" "$CONCURRENCY"

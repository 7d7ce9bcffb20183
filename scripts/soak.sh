#!/usr/bin/env bash
# Soak benchmark: a release build of `portcall serve` on SQLite under a
# steady open-loop load for SECONDS, checking that its memory stays flat and
# its inbox keeps up.
#
#   scripts/soak.sh [SECONDS=600] [RATE=2000]
#
# Runs examples/soak.rs (release build), which starts a wiremock GitHub
# answering the App's calls with the documented bodies, spawns
# target/release/portcall with RUST_LOG=warn on a SQLite file in a temporary
# directory (worker and dispatcher enabled), and sends RATE requests per
# second on a fixed schedule: 9 in 10 signed GitHub pushes, 1 in 10
# Distribution pushes of a new commit (a status, a check run and a comment
# job each, posted to the mock). Every 10 s it prints portcall's RSS, the
# inbox lag (oldest pending delivery), the outbox backlog and the answers so
# far; at the end a summary, and it exits non-zero if a request failed, RSS
# grew more than 10% over the first sample or the inbox lag reached 1 s.
# BENCH_NO_BUILD=1 skips the build; PORTCALL__… variables reach portcall
# (e.g. PORTCALL__DISPATCHER__PER_INSTALLATION=4).
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_RUN=${1:-600}
RATE=${2:-2000}
target=${CARGO_TARGET_DIR:-target}

[ -n "${BENCH_NO_BUILD:-}" ] || cargo build --release --quiet --bin portcall --example soak

# Up to 4096 requests may be in flight: raise the open-file limit as far as allowed.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

PORTCALL_BIN="$target/release/portcall" exec "$target/release/examples/soak" "$SECONDS_RUN" "$RATE"

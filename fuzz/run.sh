#!/usr/bin/env bash
# Fuzzes portcall's webhook verifiers and payload parsers with cargo-fuzz.
#
#   fuzz/run.sh [seconds-per-target] [target...]
#
# Builds every target (cargo-fuzz, libFuzzer, AddressSanitizer) and runs each
# named target (default: all of them, `cargo fuzz list`) for the given time
# (default 600 s), starting from fuzz/seeds/<target>/, fuzz/regressions/<target>/
# and whatever fuzz/corpus/<target>/ has gathered before. For each target it prints the
# executions made (libFuzzer's final stat::number_of_executed_units) and
# whether it crashed; a crash, timeout or out-of-memory input is copied to
# fuzz/regressions/<target>/, where tests/fuzz_regressions.rs replays it
# under plain `cargo test`. Exits 1 if any target crashed.
#
# Only a stable toolchain is needed: RUSTC_BOOTSTRAP=1 lets it take the
# nightly-only flags cargo-fuzz passes (-Zsanitizer=address, …). Install
# cargo-fuzz with `cargo install cargo-fuzz --locked`. The build goes to
# fuzz/target; set CARGO_BUILD_JOBS to limit its parallelism.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

seconds="${1:-600}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
    echo "usage: fuzz/run.sh [seconds-per-target] [target...]" >&2
    exit 2
fi
shift $(( $# > 0 ? 1 : 0 ))

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "error: cargo-fuzz is not installed: cargo install cargo-fuzz --locked" >&2
    exit 2
fi
export RUSTC_BOOTSTRAP=1
# The bundled SQLite (libsqlite3-sys, linked in through sqlx) defines two
# static arrays of the same name in one translation unit, which
# AddressSanitizer reports as an ODR violation at startup, before any input.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_odr_violation=0"

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

echo "building ${#targets[@]} fuzz target(s)…"
for target in "${targets[@]}"; do
    if [ ! -f "fuzz_targets/$target.rs" ]; then
        echo "error: no fuzz target $target (fuzz/fuzz_targets/$target.rs)" >&2
        exit 2
    fi
done
if [ "${#targets[@]}" -eq 1 ]; then
    cargo fuzz build "${targets[0]}"
else
    cargo fuzz build
fi

bin_dir="target/$(rustc -vV | sed -n 's/^host: //p')/release"
mkdir -p artifacts/logs
summary=()
crashed=0
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "artifacts/$target"
    log="artifacts/logs/$target.log"
    before="$(ls "artifacts/$target")"
    echo "fuzzing $target for ${seconds}s (log: fuzz/$log)…"
    status=0
    # The binary cargo-fuzz built, run as `cargo fuzz run` would, but
    # without its rebuild: a source edited meanwhile does not change what
    # this run tests halfway through.
    # Kept crash inputs start the run too, so a fix is checked first.
    inputs=("corpus/$target" "seeds/$target")
    if [ -d "regressions/$target" ]; then
        inputs+=("regressions/$target")
    fi
    "$bin_dir/$target" -artifact_prefix="artifacts/$target/" \
        -max_total_time="$seconds" -print_final_stats=1 -timeout=30 -rss_limit_mb=2048 \
        "${inputs[@]}" >"$log" 2>&1 || status=$?
    execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -n 1 | grep -o '[0-9]*$' || true)"
    result="ok"
    new=()
    while IFS= read -r file; do
        [ -n "$file" ] || continue
        if ! grep -qxF "$file" <<<"$before"; then
            case "$file" in
                crash-* | oom-* | timeout-* | leak-*) new+=("$file") ;;
            esac
        fi
    done < <(ls "artifacts/$target")
    if [ "${#new[@]}" -eq 0 ] && [ "$status" -ne 0 ]; then
        crashed=1
        result="FAILED (exit $status, no input saved: see fuzz/$log)"
        tail -n 5 "$log" | sed 's/^/    /'
    elif [ "${#new[@]}" -gt 0 ]; then
        crashed=1
        result="CRASHED (exit $status)"
        mkdir -p "regressions/$target"
        for file in "${new[@]}"; do
            cp "artifacts/$target/$file" "regressions/$target/$file"
            result="$result, kept fuzz/regressions/$target/$file"
        done
        grep -m 3 -E "panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer" "$log" | sed 's/^/    /' || true
    fi
    line="$(printf '%-22s %12s executions in %ss  %s' "$target" "${execs:-?}" "$seconds" "$result")"
    echo "$line"
    summary+=("$line")
done

echo
echo "summary:"
printf '  %s\n' "${summary[@]}"
exit "$crashed"

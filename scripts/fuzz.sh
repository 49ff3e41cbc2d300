#!/usr/bin/env bash
# Fuzzes every decoder that reads bytes from a peer or a file (docs/security.md).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Builds all targets of fuzz/ once (cargo-fuzz, nightly toolchain; the build alone holds
# /tmp/hail-cargo.lock), then runs each TARGET (default: all) for SECONDS (default 60) with libFuzzer,
# one after the other, from the seeds in fuzz/seeds/TARGET plus what earlier runs found
# (fuzz/corpus/TARGET). Prints executions per target as a table, writes them as JSON to
# fuzz/logs/summary.json, and exits non-zero if a target crashed, naming the input that did it
# (fuzz/artifacts/TARGET/…; replay it with `fuzz-binary ARTIFACT`, add it to tests/fuzz_regressions.rs).
#
# Environment:
#   CARGO_TARGET_DIR      where the instrumented build goes (default /var/tmp/hail-fuzz-target)
#   HAIL_FUZZ_SANITIZER   cargo-fuzz --sanitizer (default none: the decoders are safe Rust, and
#                         panics, overflows, failed checks, OOM and hangs show without one; `address`
#                         halves the speed)
#   HAIL_FUZZ_ARGS        extra libFuzzer arguments for every run
#   HAIL_FUZZ_BUILD=0     run the targets as last built, without building (and so without the lock)
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
duration=${1:-60}
shift || true
if ! [[ $duration =~ ^[0-9]+$ ]] || [ "$duration" -lt 1 ]; then
    echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2
    exit 2
fi
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/hail-fuzz-target}
sanitizer=${HAIL_FUZZ_SANITIZER:-none}
lock=/tmp/hail-cargo.lock

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz.sh: the nightly Rust toolchain is missing; cargo-fuzz needs it." >&2
    echo "         Install it with: rustup toolchain install nightly --profile minimal" >&2
    exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    flock "$lock" cargo install cargo-fuzz --locked
fi

if [ "${HAIL_FUZZ_BUILD:-1}" != 0 ]; then
    echo "fuzz.sh: building the fuzz targets (sanitizer: $sanitizer, into $CARGO_TARGET_DIR)" >&2
    # 16 codegen units: the first build of every dependency (libp2p, quinn, rav1e, …) takes about
    # 6 minutes on two cores instead of far longer with cargo-fuzz's default of one.
    flock "$lock" cargo +nightly fuzz build --sanitizer "$sanitizer" --codegen-units 16 --target-dir "$CARGO_TARGET_DIR"
fi
bin_dir="$CARGO_TARGET_DIR/$(rustc +nightly -vV | sed -n 's/^host: //p')/release"

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

scratch=$(mktemp -d "$( [ -d /dev/shm ] && echo /dev/shm || echo /tmp )/hail-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
export HAIL_FUZZ_SCRATCH=$scratch

mkdir -p fuzz/logs
failed=()
json="["
printf '%-22s %14s %10s %8s %s\n' target executions exec/s seconds result
for t in "${targets[@]}"; do
    bin="$bin_dir/$t"
    if [ ! -x "$bin" ]; then
        echo "fuzz.sh: no fuzz target named $t (see fuzz/Cargo.toml)" >&2
        exit 2
    fi
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t" "fuzz/seeds/$t"
    log="fuzz/logs/$t.log"
    start=$(date +%s.%N)
    set +e
    # shellcheck disable=SC2086
    "$bin" "fuzz/corpus/$t" "fuzz/seeds/$t" \
        -max_total_time="$duration" -print_final_stats=1 -timeout=10 -rss_limit_mb=4096 \
        -artifact_prefix="fuzz/artifacts/$t/" ${HAIL_FUZZ_ARGS:-} >"$log" 2>&1
    status=$?
    set -e
    elapsed=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    execs=${execs:-0}
    rate=$(awk -v n="$execs" -v s="$elapsed" 'BEGIN { printf "%d", (s > 0 ? n / s : 0) }')
    result=ok
    artifact=""
    if [ $status -ne 0 ]; then
        artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
        result="CRASH ${artifact:-(see $log)}"
        failed+=("$t: ${artifact:-see $log}")
    fi
    printf '%-22s %14s %10s %8.0f %s\n' "$t" "$execs" "$rate" "$elapsed" "$result"
    [ "$json" = "[" ] || json+=","
    json+=$(printf '\n  {"target": "%s", "executions": %s, "exec_per_sec": %s, "seconds": %.1f, "crash": %s}' \
        "$t" "$execs" "$rate" "$elapsed" "$( [ -n "$artifact" ] && echo "\"$artifact\"" || { [ $status -ne 0 ] && echo "\"$log\"" || echo null; } )")
done
json+=$'\n]'
echo "$json" >fuzz/logs/summary.json
echo "fuzz.sh: summary in fuzz/logs/summary.json, libFuzzer output in fuzz/logs/TARGET.log" >&2

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz.sh: crashes:" >&2
    printf '  %s\n' "${failed[@]}" >&2
    echo "Replay one with: $bin_dir/TARGET ARTIFACT; minimise with -minimize_crash=1 -runs=100000." >&2
    exit 1
fi

#!/usr/bin/env bash
# Fuzzes every cargo-fuzz target of weir with libFuzzer (coverage-guided), for a while each. CI runs the
# cheaper short run instead (fuzz/tests/short_run.rs, part of `cargo test --workspace`): see fuzz/README.md.
#
#   fuzz/run.sh                      # every target, 60 s each
#   WEIR_FUZZ_SECONDS=600 fuzz/run.sh ipc_page
#   WEIR_FUZZ_RUNS=10000000 fuzz/run.sh spark_schema   # a number of executions instead of a time
#
# cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them.
# Each target starts from its committed corpus (fuzz/corpus/<target>/), which the run reads but
# never writes: new inputs go to a scratch folder. A crash leaves its input in
# fuzz/artifacts/<target>/ and makes the script fail. Knobs: WEIR_FUZZ_SECONDS (default 60),
# WEIR_FUZZ_RUNS (overrides the time), WEIR_FUZZ_SANITIZER (default none: the code under test is
# safe Rust but for libzstd, and AddressSanitizer costs 3-10x the executions; address for a deeper run),
# CARGO_TARGET_DIR (default fuzz/target: the fuzz build's flags share nothing with the main workspace's builds).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export RUSTC_BOOTSTRAP=1
seconds=${WEIR_FUZZ_SECONDS:-60}
runs=${WEIR_FUZZ_RUNS:-}
sanitizer=${WEIR_FUZZ_SANITIZER:-none}

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi

# Debug assertions on: an integer overflow is a bug worth a crash.
for target in "${targets[@]}"; do
    cargo fuzz build --fuzz-dir fuzz --features libfuzzer --debug-assertions --sanitizer "$sanitizer" "$target"
done

limit=("-max_total_time=$seconds")
if [ -n "$runs" ]; then
    limit=("-runs=$runs")
fi

summary=()
status=0
for target in "${targets[@]}"; do
    scratch=$(mktemp -d)
    log=$(mktemp)
    start=$(date +%s)
    # Bounds that a page must never need under the targets' small limits: a slow input, a large
    # allocation or a large resident set is reported as a crash.
    if cargo fuzz run --fuzz-dir fuzz --features libfuzzer --debug-assertions --sanitizer "$sanitizer" "$target" \
        "$scratch" "fuzz/corpus/$target" -- \
        "${limit[@]}" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 -max_len=65536 \
        -print_final_stats=1 >"$log" 2>&1; then
        crashes=0
    else
        crashes=1
        status=1
        tail -n 40 "$log"
    fi
    elapsed=$(( $(date +%s) - start ))
    executions=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo '?')
    summary+=("$(printf '| %s | %s | %s | %s |' "$target" "$executions" "$elapsed" "$crashes")")
    rm -rf "$scratch" "$log"
done

echo
echo "| target | executions | seconds | crashes |"
echo "|---|---|---|---|"
printf '%s\n' "${summary[@]}"
exit $status

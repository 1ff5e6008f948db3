#!/usr/bin/env bash
# Issue 12, item 4: all six tables of the Product Launch base at once against the simulator with
# Airtable's limit on (5 requests/s per base, 30 s penalty after a 429), SKU Candidates grown to
# 10,000 rows, RUNS times. Prints, per run, the 429s weir received (its log's "429 from" lines,
# which cover the planning calls too) and the base's request rate (the tables' requests over the
# run's wall time, and over the read: from the start of the tables to the end of the longest,
# SKU Candidates; the six tables share the one base budget).
# With PROCESSES=2 the six tables are split between two `weir run`s started at once (three tables
# each), which share the base's budget through the cache folder; the figures are then both runs'
# together.
# Usage: [PROCESSES=1|2] host/cli/bench/paced_six_tables.sh [WEIR_BINARY] [RUNS]
set -euo pipefail
weir=${1:-target/release/weir}
runs=${2:-10}
# Port 0: the simulator takes a free port and prints it (a fixed port could be another server's).
port=${PORT:-0}
processes=${PROCESSES:-1}
dir=$(mktemp -d)
# One cache folder for every run: back to back, and side by side, the runs share the budget.
export WEIR_CACHE_DIR=$dir/cache
trap 'kill $sim 2>/dev/null; rm -rf "$dir"' EXIT
"$weir" sim airtable --port "$port" --rows 10000 --table "SKU Candidates" >"$dir/sim.log" 2>&1 &
sim=$!
base_url=
for _ in $(seq 100); do
    base_url=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$dir/sim.log" 2>/dev/null | head -n 1) || true
    [ -n "$base_url" ] && break
    kill -0 "$sim" 2>/dev/null || break
    sleep 0.2
done
if [ -z "$base_url" ]; then
    echo "the simulator did not start (its log follows); nothing was measured" >&2
    cat "$dir/sim.log" >&2
    exit 1
fi
printf 'patWeirSim.0123456789abcdef0123456789abcdef' >"$dir/token"
cat >"$dir/connections.toml" <<TOML
[connections.airtable]
connector = "airtable"
base_id = "appProductLaunch"
base_url = "$base_url"
bearer_token = { file = "token" }
allow_loopback = true
TOML
tables=("SKU Candidates" "Launch Milestones" "Compliance Records" "Packaging Tasks" "Marketing Assets" "Vendors")
for p in $(seq 0 $((processes - 1))); do
    {
        echo "connection_name: airtable"
        echo "objects:"
        for k in "${!tables[@]}"; do
            if [ $((k % processes)) -eq "$p" ]; then
                printf '  - table:\n      source_table: %s\n' "${tables[$k]}"
            fi
        done
    } >"$dir/pipeline$p.yaml"
done
printf 'run  wall_s  read_s  requests  per_s_wall  per_s_read  share_of_5_read  429s\n'
for i in $(seq "$runs"); do
    start=$(date +%s.%N)
    pids=()
    for p in $(seq 0 $((processes - 1))); do
        "$weir" run "$dir/pipeline$p.yaml" --connections "$dir/connections.toml" --warehouse "$dir/w$i-$p" \
            --parallel 6 --json >"$dir/r$i-$p.json" 2>"$dir/e$i-$p.log" &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid"; done
    end=$(date +%s.%N)
    python3 - "$dir" "$start" "$end" "$i" <<'PY'
import glob, json, sys
reports = [r for f in sorted(glob.glob(f"{sys.argv[1]}/r{sys.argv[4]}-*.json")) for r in json.load(open(f))]
wall = float(sys.argv[3]) - float(sys.argv[2])
requests = sum(r["http"]["requests"] for r in reports)
limited = sum(open(f).read().count("429 from") for f in glob.glob(f"{sys.argv[1]}/e{sys.argv[4]}-*.log"))
assert all(r["error"] is None for r in reports), [r["error"] for r in reports]
read = max(r["duration"] for r in reports)
print(f"{sys.argv[4]:>3}  {wall:6.1f}  {read:6.1f}  {requests:8d}  {requests / wall:10.2f}  {requests / read:10.2f}  {requests / read / 5:15.1%}  {limited:4d}")
PY
done

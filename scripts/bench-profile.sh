#!/usr/bin/env bash
# Where Chorus spends its time on the private-message write path: one release node on a fresh
# SQLite file (or BENCH_DATABASE_URL, a database made beforehand), private pairs from
# chorus-bench at full speed, and `perf record` on the node while they send. Prints the top
# functions by self time, then the time by component and the inclusive time of the write
# path's functions (scripts/perf-breakdown.py). The raw profile stays in target/bench/chorus.perf.
# Usage: scripts/bench-profile.sh [seconds] [pairs] [window]
# This VM has no hardware counters, so perf samples the cpu-clock software event: it shows where
# CPU time goes, not cache misses, and not time spent waiting. Call chains are unwound from
# DWARF (the release profile keeps debug info): ~20 MB of profile for 30 s.
# BENCH_NO_BUILD=1 uses the binaries already built.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds=${1:-20}
pairs=${2:-20}
window=${3:-32}
command -v perf >/dev/null || { echo "bench-profile.sh: perf is needed (apt-get install linux-perf)" >&2; exit 1; }
if [ -z "${BENCH_NO_BUILD:-}" ]; then
    cargo build --release --bin chorus   # profile.release keeps line tables (debug = 1)
    cargo build --release -p chorus-bench
fi
work=$(mktemp -d)
mkdir -p target/bench
node=
trap '[ -n "$node" ] && kill "$node" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
CHORUS__SERVER__ADDR=127.0.0.1:18181 \
CHORUS__DATABASE__URL="${BENCH_DATABASE_URL:-sqlite://$work/p.db?mode=rwc}" \
CHORUS__UPLOADS__DIR="$work/uploads" CHORUS__CHAT__RATE_PER_SEC=0 RUST_LOG=warn \
    ./target/release/chorus > "$work/node.out" 2> "$work/node.err" &
node=$!
for _ in $(seq 100); do grep -q listening "$work/node.out" 2>/dev/null && break; sleep 0.1; done
# Accounts and connections first (their Argon2 log-ins are not the write path), then the profile.
./target/release/chorus-bench run --system chorus --server http://127.0.0.1:18181 \
    --label profile --pid "$node" --pairs "$pairs" --window "$window" --seconds "$seconds" \
    --groups 0 --idle 0 --rates 0 --out "$work/results.jsonl" &
load=$!
# The pairs' connections open once every account is made; sending starts right after.
for _ in $(seq 600); do
    (($(ss -Htn state established '( sport = :18181 )' | wc -l) >= 2 * pairs)) && break
    sleep 0.1
done
perf record -e cpu-clock -F 299 --call-graph dwarf,16384 -p "$node" -o target/bench/chorus.perf -- sleep "$((seconds - 2))" 2>/dev/null
wait "$load"
echo "== top functions by self time"
perf report -i target/bench/chorus.perf --no-children -F overhead,sym --percent-limit 0.7 --stdio 2>/dev/null |
    grep -E '^ +[0-9.]+%' | head -30
perf script -i target/bench/chorus.perf 2>/dev/null | python3 scripts/perf-breakdown.py
echo "raw profile: target/bench/chorus.perf (perf report -i target/bench/chorus.perf)"

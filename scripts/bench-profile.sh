#!/usr/bin/env bash
# Where Chorus spends its time on the private-message write path: one release node on a fresh
# SQLite file (or BENCH_DATABASE_URL), private pairs from chorus-bench at full speed, and
# `perf record -g` on the node meanwhile. Prints the top functions (self time) and the top
# call chains; the raw profile stays in target/bench/chorus.perf.
# Usage: scripts/bench-profile.sh [seconds] [pairs] [window]
# This VM has no hardware counters, so perf samples the cpu-clock software event; that shows
# where CPU time goes, not cache misses. Set BENCH_NO_BUILD=1 to use the binaries already built.
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
perf record -e cpu-clock -F 499 -g -p "$node" -o target/bench/chorus.perf -- sleep "$((seconds - 2))" 2>/dev/null
wait "$load"
echo "== top functions by self time"
perf report -i target/bench/chorus.perf --no-children --sort symbol --percent-limit 0.7 --stdio 2>/dev/null |
    grep -E '^ +[0-9.]+%' | head -40
echo "== by thread (task runner threads are tokio-runtime-w)"
perf report -i target/bench/chorus.perf --no-children --sort comm --stdio 2>/dev/null | grep -E '^ +[0-9.]+%' | head
echo "raw profile: target/bench/chorus.perf (perf report -i target/bench/chorus.perf)"

#!/usr/bin/env bash
# A against B: private pairs on one node, the given chorus binaries taking turns, each round on a
# fresh database (docs/performance.md, "Third sitting"). Alternating in one sitting is how a change
# is measured on this noisy machine: compare rounds side by side, not with another day's figure.
#
# Usage: scripts/bench-ab.sh [--pg] [--seconds S] [--rounds N] [--pairs P] [--window W] BIN...
#   --pg      PostgreSQL (a fresh database chorus_ab at BENCH_POSTGRES_URL's server) instead of
#             a fresh SQLite file
# Each BIN is a chorus binary, e.g. one built from main and one from a branch:
#   git worktree add /tmp/a main && (cd /tmp/a && cargo build --release) && cp /tmp/a/target/release/chorus /tmp/chorus-a
# Prints one line per run: binary, deliveries/s, latency, lost/dup, CPU seconds, and the average
# batch the writer committed (chorus_commit_batch_sends from /metrics).
# Environment: CHORUS__* settings pass through to every node (e.g. CHORUS__CHAT__WRITERS=4).
# Every node listens on 127.0.0.1; the load goes nowhere else.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

pg= seconds=10 rounds=2 pairs=20 window=32
while (($#)); do
    case $1 in
        --pg) pg=1 ;;
        --seconds) seconds=$2; shift ;;
        --rounds) rounds=$2; shift ;;
        --pairs) pairs=$2; shift ;;
        --window) window=$2; shift ;;
        -*) echo "bench-ab.sh: unknown flag $1 (see the header)" >&2; exit 2 ;;
        *) break ;;
    esac
    shift
done
(($#)) || { echo "bench-ab.sh: give at least one chorus binary" >&2; exit 2; }
[ -x target/release/chorus-bench ] || cargo build --release -p chorus-bench

pg_admin=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
port=18191
node= work=
cleanup() {
    # A node that already died (or exits non-zero on SIGTERM) must not end the whole run.
    if [ -n "$node" ]; then kill "$node" 2>/dev/null; wait "$node" 2>/dev/null || true; fi
    if [ -n "$work" ]; then rm -rf "$work"; fi
    node= work=
}
trap cleanup EXIT

for round in $(seq "$rounds"); do
    for bin in "$@"; do
        work=$(mktemp -d)
        if [ -n "$pg" ]; then
            psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS chorus_ab" -c "CREATE DATABASE chorus_ab" >/dev/null
            url=${pg_admin%/*}/chorus_ab
        else
            url="sqlite://$work/ab.db?mode=rwc"
        fi
        CHORUS__SERVER__ADDR=127.0.0.1:$port CHORUS__DATABASE__URL="$url" \
        CHORUS__UPLOADS__DIR="$work/uploads" CHORUS__CHAT__RATE_PER_SEC=0 RUST_LOG=warn \
            "$bin" > "$work/node.out" 2> "$work/node.err" &
        node=$!
        for _ in $(seq 100); do grep -q listening "$work/node.out" 2>/dev/null && break; sleep 0.1; done
        result=$(./target/release/chorus-bench run --system chorus --server "http://127.0.0.1:$port" \
            --label ab --pid "$node" --pairs "$pairs" --window "$window" --seconds "$seconds" \
            --groups 0 --idle 0 --rates 0 --out "$work/results.jsonl" 2>&1 | grep 'private:' || true)
        batches=$(curl -s "http://127.0.0.1:$port/metrics" |
            awk '/^chorus_commit_batch_sends_sum/ {s=$2} /^chorus_commit_batch_sends_count/ {c=$2}
                 END {if (c > 0) printf "%.0f", s / c; else print "?"}')
        echo "round $round $bin: ${result# *private: }; average batch $batches"
        cleanup
    done
done

#!/usr/bin/env bash
# Chorus alone, private messages only (the bench before the side-by-side one in scripts/bench.sh,
# kept for before/after comparisons of two builds): starts release nodes on a fresh SQLite file
# (one node, then three in a UDP cluster on loopback) and drives them with examples/load.rs.
# Usage: scripts/bench-chorus.sh [pairs] [messages-per-pair] [window (unacked sends in flight)]
# (`scripts/bench.sh PAIRS [MESSAGES] [WINDOW]` runs this too.)
# BENCH_DATABASE_URL=postgres://... runs the nodes on that database instead of SQLite files.
# CHORUS_BIN=path runs that server binary instead, e.g. an older build (docs/bench-issue9.md);
# the build is then left alone (built beforehand; the load generator is this tree's).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
pairs=${1:-20}
messages=${2:-500}
window=${3:-64}

[ -n "${CHORUS_BIN:-}" ] || cargo build --release --bin chorus --example load
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

start_node() { # name port [extra env...]
    local name=$1 port=$2; shift 2
    env CHORUS__SERVER__ADDR=127.0.0.1:$port \
        CHORUS__DATABASE__URL="${BENCH_DATABASE_URL:-sqlite://$work/$DB?mode=rwc}" \
        CHORUS__UPLOADS__DIR="$work/uploads" \
        CHORUS__CHAT__RATE_PER_SEC=0 \
        RUST_LOG=warn "$@" "${CHORUS_BIN:-./target/release/chorus}" > "$work/$name.out" 2> "$work/$name.err" &
    pids+=($!)
    for _ in $(seq 100); do grep -q listening "$work/$name.out" 2>/dev/null && return; sleep 0.1; done
    echo "node $name did not start" >&2; cat "$work/$name.err" >&2; exit 1
}

echo "== one node, ${BENCH_DATABASE_URL:+PostgreSQL/MySQL at $BENCH_DATABASE_URL}${BENCH_DATABASE_URL:-SQLite}"
DB=single.db start_node single 18181
./target/release/examples/load --server http://127.0.0.1:18181 --pairs "$pairs" --messages "$messages" --window "$window"
kill "${pids[@]}"; wait 2>/dev/null || true; pids=()

echo "== three nodes on one database (${BENCH_DATABASE_URL:-one SQLite file}), UDP broadcast on 127.255.255.255"
secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')  # 32 random bytes: a strong secret
for i in 1 2 3; do
    DB=cluster.db start_node "n$i" "1828$i" CHORUS__CLUSTER__ENABLED=true \
        CHORUS__CLUSTER__SECRET="$secret" CHORUS__CLUSTER__NODE_ID="n$i" \
        CHORUS__CLUSTER__BROADCAST=127.255.255.255:18290 CHORUS__CLUSTER__PORT=18290
done
for _ in $(seq 100); do
    curl -s http://127.0.0.1:18281/readyz | grep -q '"n2","n3"\|"n3","n2"' && break; sleep 0.1
done
./target/release/examples/load --server http://127.0.0.1:18281 --server http://127.0.0.1:18282 \
    --server http://127.0.0.1:18283 --pairs "$pairs" --messages "$messages" --window "$window"

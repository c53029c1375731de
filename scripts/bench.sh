#!/usr/bin/env bash
# Side by side (issue 11): Chorus (one node on SQLite, one node on PostgreSQL, three nodes on
# PostgreSQL in a UDP cluster on loopback), Socket.IO 4 (one node; three nodes on the Redis
# adapter) and a bare tokio-tungstenite relay, under the same load from bench/load
# (chorus-bench): idle connections, private pairs, group fan-out and offered-load steps, every
# delivery checked exactly once and in order. Prints one table and writes the chart.
#
# Usage: scripts/bench.sh [--quick] [--systems LIST] [--pairs N] [--window W] [--seconds S]
#                         [--groups G] [--members M] [--group-window W] [--idle K]
#                         [--rates R1,R2,...] [--step-seconds S] [--svg FILE]
#        scripts/bench.sh PAIRS [MESSAGES] [WINDOW]   the Chorus-only bench (scripts/bench-chorus.sh)
# LIST is a comma list of relay, sqlite, pg, pg3, sio, sio3 (default: all six).
# --quick: smaller sizes and short steps, under 5 minutes once built.
# Environment: CHORUS_BIN=path runs that chorus binary (not rebuilt); BENCH_NO_BUILD=1 uses the
# release binaries already built; BENCH_POSTGRES_URL
# (default postgres://postgres@127.0.0.1:5432/postgres) is where a fresh database chorus_bench
# is made; BENCH_REDIS_URL (default redis://127.0.0.1:6379) is the Socket.IO adapter's Redis.
# Every server listens on 127.0.0.1; the load goes nowhere else.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ ${1:-} =~ ^[0-9]+$ ]]; then
    exec bash scripts/bench-chorus.sh "$@"
fi

systems=relay,sqlite,pg,pg3,sio,sio3
pairs=20 window=32 seconds=5 groups=5 members=20 group_window=8 idle=3000
rates=1000,2000,5000,10000,20000,50000,100000,200000,500000 step_seconds=3
svg=docs/bench-chart.svg
while (($#)); do
    case $1 in
        --quick) seconds=2 idle=1000 rates=1000,3000,10000,30000,100000,300000 step_seconds=1.5 ;;
        --systems) systems=$2; shift ;;
        --pairs) pairs=$2; shift ;;
        --window) window=$2; shift ;;
        --seconds) seconds=$2; shift ;;
        --groups) groups=$2; shift ;;
        --members) members=$2; shift ;;
        --group-window) group_window=$2; shift ;;
        --idle) idle=$2; shift ;;
        --rates) rates=$2; shift ;;
        --step-seconds) step_seconds=$2; shift ;;
        --svg) svg=$2; shift ;;
        *) echo "bench.sh: unknown argument $1 (see the header of scripts/bench.sh)" >&2; exit 2 ;;
    esac
    shift
done
has() { [[ ,$systems, == *,$1,* ]]; }

pg_admin=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
pg_url=${pg_admin%/*}/chorus_bench
redis_url=${BENCH_REDIS_URL:-redis://127.0.0.1:6379}

# Idle connections need a file descriptor each, on both sides.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if [ -z "${BENCH_NO_BUILD:-}" ]; then
    [ -n "${CHORUS_BIN:-}" ] || cargo build --release --bin chorus
    cargo build --release -p chorus-bench -p chorus-bench-relay
fi
chorus=${CHORUS_BIN:-./target/release/chorus}
if has sio || has sio3; then
    command -v node >/dev/null || { echo "bench.sh: Node.js 20 is needed for Socket.IO" >&2; exit 1; }
    if [ ! -d bench/socketio/node_modules ] ||
        [ bench/socketio/package-lock.json -nt bench/socketio/node_modules/.package-lock.json ]; then
        npm ci --prefix bench/socketio --no-audit --no-fund
    fi
fi

work=$(mktemp -d)
mkdir -p target/bench
results=target/bench/results.jsonl
: > "$results"
pids=()
stop_all() {
    ((${#pids[@]})) && kill "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    pids=()
}
trap 'stop_all; rm -rf "$work"' EXIT

# start NAME PORT COMMAND...: runs it with output in $work and waits for "listening".
start() {
    local name=$1 port=$2; shift 2
    "$@" > "$work/$name.out" 2> "$work/$name.err" &
    pids+=($!)
    for _ in $(seq 300); do
        grep -q listening "$work/$name.out" 2>/dev/null && return
        kill -0 "${pids[-1]}" 2>/dev/null || break
        sleep 0.1
    done
    echo "bench.sh: $name (port $port) did not start" >&2
    cat "$work/$name.err" >&2
    exit 1
}

# chorus_node NAME PORT DATABASE_URL [VAR=value...]
chorus_node() {
    local name=$1 port=$2 db=$3; shift 3
    start "$name" "$port" env CHORUS__SERVER__ADDR="127.0.0.1:$port" \
        CHORUS__DATABASE__URL="$db" \
        CHORUS__UPLOADS__DIR="$work/uploads" \
        CHORUS__CHAT__RATE_PER_SEC=0 \
        CHORUS__SERVER__MAX_CONNECTIONS=$((idle + 4096)) \
        RUST_LOG=warn "$@" "$chorus"
}

fresh_pg() {
    psql -q "$pg_admin" -c 'DROP DATABASE IF EXISTS chorus_bench WITH (FORCE)' \
        -c 'CREATE DATABASE chorus_bench' >/dev/null
}

# load LABEL SYSTEM PID URL...: one run of the load generator.
load() {
    local label=$1 system=$2 pid=$3; shift 3
    local servers=()
    for url in "$@"; do servers+=(--server "$url"); done
    ./target/release/chorus-bench run --system "$system" --label "$label" --pid "$pid" \
        "${servers[@]}" --pairs "$pairs" --window "$window" --seconds "$seconds" \
        --groups "$groups" --members "$members" --group-window "$group_window" \
        --idle "$idle" --rates "$rates" --step-seconds "$step_seconds" --out "$results"
}

if has relay; then
    start relay 18400 ./target/release/bench-relay 127.0.0.1:18400
    load "bare tokio-tungstenite relay, no storage" relay "${pids[0]}" http://127.0.0.1:18400
    stop_all
fi

if has sqlite; then
    chorus_node single 18181 "sqlite://$work/single.db?mode=rwc"
    load "Chorus, 1 node, SQLite" chorus "${pids[0]}" http://127.0.0.1:18181
    stop_all
fi

if has pg; then
    fresh_pg
    chorus_node single-pg 18181 "$pg_url"
    load "Chorus, 1 node, PostgreSQL" chorus "${pids[0]}" http://127.0.0.1:18181
    stop_all
fi

if has pg3; then
    fresh_pg
    secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')  # 32 random bytes
    for i in 1 2 3; do
        chorus_node "n$i" "1828$i" "$pg_url" CHORUS__CLUSTER__ENABLED=true \
            CHORUS__CLUSTER__SECRET="$secret" CHORUS__CLUSTER__NODE_ID="n$i" \
            CHORUS__CLUSTER__BROADCAST=127.255.255.255:18290 CHORUS__CLUSTER__PORT=18290
    done
    for _ in $(seq 100); do
        curl -s http://127.0.0.1:18281/readyz | grep -q '"n2","n3"\|"n3","n2"' && break
        sleep 0.1
    done
    load "Chorus, 3 nodes, PostgreSQL" chorus "${pids[0]}" \
        http://127.0.0.1:18281 http://127.0.0.1:18282 http://127.0.0.1:18283
    stop_all
fi

if has sio; then
    start sio 18300 env PORT=18300 node bench/socketio/server.js
    load "Socket.IO 4.8, 1 node (no storage)" socketio "${pids[0]}" http://127.0.0.1:18300
    stop_all
fi

if has sio3; then
    for i in 1 2 3; do
        start "sio$i" "1831$i" env PORT="1831$i" REDIS_URL="$redis_url" node bench/socketio/server.js
    done
    load "Socket.IO 4.8, 3 nodes, redis-adapter" socketio "${pids[0]}" \
        http://127.0.0.1:18311 http://127.0.0.1:18312 http://127.0.0.1:18313
    stop_all
fi

echo
./target/release/chorus-bench report "$results" --svg "$svg" | tee target/bench/table.md

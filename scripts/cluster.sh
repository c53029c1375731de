#!/usr/bin/env bash
# Starts three Chorus nodes on one SQLite file, kept in sync by UDP broadcast on loopback
# (127.255.255.255), for trying the cluster by hand. Ctrl-C stops all three.
#   http://127.0.0.1:8081/  http://127.0.0.1:8082/  http://127.0.0.1:8083/
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo build --release --bin chorus
mkdir -p data
# 32 random bytes as 64 hex characters (a node refuses a weak secret; `openssl rand -base64 32`
# makes one too).
secret=${CHORUS__CLUSTER__SECRET:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')}
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
for i in 1 2 3; do
    CHORUS__SERVER__ADDR=127.0.0.1:808$i \
    CHORUS__DATABASE__URL="sqlite://data/cluster.db?mode=rwc" \
    CHORUS__CLUSTER__ENABLED=true \
    CHORUS__CLUSTER__SECRET="$secret" \
    CHORUS__CLUSTER__NODE_ID="node$i" \
    CHORUS__CLUSTER__BROADCAST=127.255.255.255:7946 \
    CHORUS__CLUSTER__PORT=7946 \
        ./target/release/chorus &
    pids+=($!)
done
echo "three nodes: http://127.0.0.1:8081/ http://127.0.0.1:8082/ http://127.0.0.1:8083/ (Ctrl-C stops)"
wait

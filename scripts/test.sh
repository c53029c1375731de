#!/usr/bin/env bash
# Runs every test against real services on loopback: PostgreSQL (5432), MariaDB (3306) and
# Redis (6379). A service that is down is started with this machine's own commands; one that
# stays down leaves its URL unset, so its tests skip locally and fail under CI.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
    timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# Polls the port until it opens or $2 seconds pass.
wait_port() {
    local port=$1 deadline=$((SECONDS + $2))
    until port_open "$port"; do
        if ((SECONDS >= deadline)); then
            return 1
        fi
        sleep 0.25
    done
}

start_postgres() {
    local version
    version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
    [[ -n $version ]] || return 1
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
}

start_redis() {
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
        --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
}

start_mariadb() {
    # mariadbd needs its socket directory; the packaged init script would create it.
    if id mysql >/dev/null 2>&1; then
        install -d -o mysql -g mysql /run/mysqld
    fi
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
}

# ensure NAME PORT START_FN VAR URL: exports VAR=URL when the service is (or comes) up.
ensure() {
    local name=$1 port=$2 start=$3 var=$4 url=$5
    if ! port_open "$port"; then
        echo "test.sh: $name is not on 127.0.0.1:$port, starting it" >&2
        "$start" >&2 || echo "test.sh: starting $name failed" >&2
        wait_port "$port" 60 || true
    fi
    if port_open "$port"; then
        # A URL given by the caller wins over the default.
        export "$var=${!var:-$url}"
        echo "test.sh: $name up, $var=${!var}" >&2
    else
        unset "$var"
        {
            echo "################################################################"
            echo "# WARNING: $name is not reachable on 127.0.0.1:$port."
            echo "# $var is unset: its tests SKIP here and FAIL under CI."
            echo "################################################################"
        } >&2
    fi
}

ensure PostgreSQL 5432 start_postgres CHORUS_TEST_POSTGRES_URL \
    "postgres://postgres@127.0.0.1:5432/postgres"
ensure MariaDB 3306 start_mariadb CHORUS_TEST_MYSQL_URL "mysql://root@127.0.0.1:3306/test"
ensure Redis 6379 start_redis CHORUS_TEST_REDIS_URL "redis://127.0.0.1:6379"

# tests/cluster/cluster_netns.rs (UDP packet loss) and tests/cluster/chaos.rs (the short chaos
# test) need root, ip and iptables; without them they skip with a warning (and fail under CI,
# where .ci/run installs iptables).
if [[ -z ${CI:-} ]] && ! command -v iptables >/dev/null 2>&1; then
    {
        echo "################################################################"
        echo "# NOTE: iptables is not installed: the UDP packet-loss cluster"
        echo "# test (tests/cluster/cluster_netns.rs) and the chaos test"
        echo "# (tests/cluster/chaos.rs) will SKIP. To run them:"
        echo "#   apt-get update && apt-get install -y iptables"
        echo "################################################################"
    } >&2
fi

if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast
    # nextest does not run doctests; run them only when a library has some.
    if grep -rqsE '^\s*//[/!].*```' --include='*.rs' src migrations/src &&
        { [[ -f src/lib.rs ]] || [[ -f migrations/src/lib.rs ]]; }; then
        cargo test --workspace --doc
    fi
else
    cargo test --workspace --no-fail-fast
fi

# The browser test of the web page (e2e/): skips loudly without Chromium, except under CI.
bash e2e/run.sh

# Everyday commands; `make test` needs PostgreSQL, MariaDB and Redis (scripts/test.sh starts them).
.PHONY: run test chaos fmt lint openapi cluster bench screenshots tui tui-screenshot

run:
	cargo run --release --bin chorus

test:
	bash scripts/test.sh

# The long chaos test (tests/cluster/chaos.rs; a 30 s form runs in `make test`): nodes killed, stopped
# and restarted, Redis paused, UDP lossy, for CHAOS_SECS with CHAOS_CLIENTS clients. Needs root
# (a network namespace); CHORUS_CHAOS_SEED=<n> replays a run's fault schedule.
CHAOS_SECS ?= 600
CHAOS_CLIENTS ?= 40
chaos:
	CHORUS_CHAOS_SECS=$(CHAOS_SECS) CHORUS_CHAOS_CLIENTS=$(CHAOS_CLIENTS) \
		cargo test --test cluster -- chaos:: --nocapture

fmt:
	cargo fmt --all

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

openapi:
	cargo run --quiet --bin chorus -- openapi > swagger/openapi.json

cluster:
	bash scripts/cluster.sh

# Chorus side by side with Socket.IO and a bare relay (docs/performance.md). `make bench QUICK=1`
# is the short run; BENCH_ARGS passes sizes, e.g. BENCH_ARGS="--systems sqlite,sio --idle 15000".
bench:
	bash scripts/bench.sh $(if $(QUICK),--quick) $(BENCH_ARGS)

# Re-takes the README's screenshots (docs/screenshots) with the browser test.
screenshots:
	CHORUS_E2E_SCREENSHOTS=$(CURDIR)/docs/screenshots bash e2e/run.sh

# The terminal client against a running server (`make run` in another terminal).
SERVER ?= http://127.0.0.1:8080
tui:
	cargo run --release -p chorus-client --bin chorus-tui -- --server $(SERVER)

# Re-takes docs/screenshots/tui.png (tmux, python3, chromium).
tui-screenshot:
	bash scripts/tui-screenshot.sh

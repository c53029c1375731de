# Everyday commands; `make test` needs PostgreSQL, MariaDB and Redis (scripts/test.sh starts them).
.PHONY: run test fmt lint openapi cluster bench screenshots tui tui-screenshot

run:
	cargo run --release --bin chorus

test:
	bash scripts/test.sh

fmt:
	cargo fmt --all

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

openapi:
	cargo run --quiet --bin chorus -- openapi > swagger/openapi.json

cluster:
	bash scripts/cluster.sh

bench:
	bash scripts/bench.sh

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

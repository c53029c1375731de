# Everyday commands; `make test` needs PostgreSQL, MariaDB and Redis (scripts/test.sh starts them).
.PHONY: run test fmt lint openapi cluster bench screenshots

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

# Everyday commands; `make test` needs PostgreSQL, MariaDB and Redis (scripts/test.sh starts them).
.PHONY: run test fmt lint openapi cluster bench

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

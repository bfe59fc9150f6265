# The two set-up commands of the README. Both install missing system packages first.
.PHONY: run test lint deps bench

deps:
	@./scripts/deps.sh

# Serve the embedded default config (proxy.yaml): http://127.0.0.1:8080/, admin on :9090.
run: deps
	cargo run --release -p tessera -- run

# Unit tests and end-to-end tests against the real binary.
test: deps
	cargo test --workspace --locked

lint: deps
	cargo fmt --all -- --check
	python3 scripts/check-module-cycles.py
	cargo clippy --workspace --all-targets --locked -- -D warnings

bench: deps
	./bench/proxy_overhead.sh

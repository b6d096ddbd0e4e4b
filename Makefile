# Poussr: the two commands a newcomer needs are `make run` and `make test`.
# Each installs what it needs first (see scripts/).

ARGS ?=

.PHONY: run serve test test-rust test-clients lint fmt deps

## Build and start the hub (headless `poussr serve`). Pass flags with ARGS="--port 7000".
run: serve

serve:
	./scripts/run.sh $(ARGS)

## Install what the tests need, then run every test: Rust, then the real-client suite.
test:
	./scripts/test.sh

test-rust:
	./scripts/test.sh rust

test-clients:
	./scripts/test.sh clients

## Formatting and lints, as CI expects them.
lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings

fmt:
	cargo fmt --all

deps:
	./scripts/deps.sh

# Poussr: the two commands a newcomer needs are `make run` and `make test`.
# Each installs what it needs first (see scripts/).

ARGS ?=

.PHONY: run serve test test-rust test-clients test-desktop test-windows bundle windows bench fuzz soak lint fmt deps

## Build and start the desktop app (with no display: the headless hub). Pass flags with ARGS="...".
run:
	./scripts/run.sh $(ARGS)

## The headless hub, even on a desktop. Pass flags with ARGS="--port 7000".
serve:
	./scripts/deps.sh hub
	cargo build --release --bin poussr
	./target/release/poussr serve $(ARGS)

## The .deb and .rpm packages (target/release/bundle/).
bundle:
	./scripts/bundle.sh

## Poussr for Windows, cross-built here: poussr.exe, poussr-desktop.exe and the installer (target/windows/).
windows:
	./scripts/windows.sh

## Install what the tests need, then run every test: Rust, then the real-client suite.
test:
	./scripts/test.sh

test-rust:
	./scripts/test.sh rust

test-clients:
	./scripts/test.sh clients

test-desktop:
	./scripts/test.sh desktop

test-windows:
	./scripts/test.sh windows

## Benchmarks on release builds; writes bench/RESULTS.md.
bench:
	./scripts/bench.sh

## Formatting and lints, as CI expects them.
lint:
	./scripts/deps.sh
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	# The Windows-only code (the service manager, the console events), checked for Windows.
	cargo clippy -p poussr-os --all-targets --target x86_64-pc-windows-gnu -- -D warnings

fmt:
	cargo fmt --all

deps:
	./scripts/deps.sh

## Run each cargo-fuzz target for FUZZ_SECONDS (default 600); results go to bench/RESULTS.md.
fuzz:
	./scripts/fuzz.sh

## 30 minutes of connection churn; memory and open files sampled; results go to bench/RESULTS.md.
soak:
	./scripts/soak.sh $(ARGS)

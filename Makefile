# Meridian — see README.md. Every target here is what the README says it is.
CARGO ?= cargo
LISTEN ?= 0.0.0.0:9876

.PHONY: run build test fmt-check clippy interop

## Build release and start on $(LISTEN) with the embedded default config.
run:
	$(CARGO) build --release --bin meridian
	./target/release/meridian --listen $(LISTEN)

build:
	$(CARGO) build --release --bin meridian

## fmt + clippy (warnings are errors) + unit and end-to-end tests.
test: fmt-check clippy
	$(CARGO) test --all-targets

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --all-targets -- -D warnings

## Real peers: rocketmq-rust broker + client against Meridian (slow first build; not in `test`).
interop:
	bash interop/run.sh

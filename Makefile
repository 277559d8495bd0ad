# Meridian — see README.md. Every target here is what the README says it is.
CARGO ?= cargo
LISTEN ?= 0.0.0.0:9876

.PHONY: run build test fmt-check clippy interop loadgen peer-namesrv

## Build release and start on $(LISTEN) with the embedded default config.
run:
	$(CARGO) build --release --bin meridian
	./target/release/meridian --listen $(LISTEN)

build:
	$(CARGO) build --release --bin meridian

## fmt + clippy (warnings are errors) + unit and end-to-end tests.
test: fmt-check clippy
	$(CARGO) test --workspace --all-targets

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## Real peers: rocketmq-rust broker + client against Meridian (slow first build; not in `test`).
interop:
	bash interop/run.sh

## Build the load generator (release): target/release/meridian-loadgen (see loadgen/README.md).
loadgen:
	$(CARGO) build --release -p meridian-loadgen

## rocketmq-rust's NameServer (pinned, cached under target/; the first build takes 15-30 min).
PEERS_ROOT := $(CURDIR)/target/peers
peer-namesrv:
	@if [ "$$($(PEERS_ROOT)/bin/rocketmq-namesrv-rust --version 2>/dev/null)" = "" ]; then \
	  CARGO_TARGET_DIR=$(CURDIR)/target/peers-build nice -n 10 $(CARGO) install rocketmq-namesrv --version 1.0.0 --locked --root $(PEERS_ROOT); \
	fi
	@echo "$(PEERS_ROOT)/bin/rocketmq-namesrv-rust"

## Side by side (bench/README.md): Meridian, rocketmq-rust's NameServer (built by peer-namesrv),
## loadgen's echo server as the ceiling, and running peers PEERS="java=127.0.0.1:19876".
## QUICK=1: short runs, smaller sizes (< 3 min). Writes bench/results/<date>-<commit>.json + PNGs.
.PHONY: bench
bench: peer-namesrv
	@# Three builds, as `make build` and `make loadgen` do them: one `cargo build -p a -p b` unifies
	@# features across packages and would rebuild glommio and Meridian with a different hash.
	nice -n 5 $(CARGO) build --release --bin meridian
	nice -n 5 $(CARGO) build --release -p meridian-loadgen
	nice -n 5 $(CARGO) build --release -p meridian-bench-plot
	python3 bench/bench.py $(if $(filter-out 0,$(QUICK)),--quick) --peers "$(PEERS)" \
	  --rmq-namesrv "$(PEERS_ROOT)/bin/rocketmq-namesrv-rust" $(BENCH_FLAGS)

## Read-only host check: CPU sets and NIC IRQs, sysctls, memlock, THP (no root, changes nothing).
## `tuning/tune.sh AREA apply|undo` changes and restores them (see tuning/README.md).
.PHONY: tune-check
tune-check:
	bash tuning/tune.sh all check

## Fuzzing: every target in fuzz/ for FUZZ_SECONDS each (default 60), seeded from the golden
## frames, new inputs kept in fuzz/corpus/<target>/. Needs a nightly toolchain and cargo-fuzz
## (installed here if missing); never part of `make test`.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= frame header_json header_binary register_body
.PHONY: fuzz
fuzz:
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	python3 fuzz/seed.py
	for t in $(FUZZ_TARGETS); do \
	  $(CARGO) +nightly fuzz run -O $$t fuzz/corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 || exit 1; \
	done

## Soak: Meridian under mixed load (lookups, changing registrations, broker churn) for
## SOAK_DURATION (default 10m), printing RSS, fds and errors over time; fails if RSS grows
## more than 10% after warm-up. Loopback only, bounded by SOAK_DURATION.
SOAK_DURATION ?= 10m
.PHONY: soak
soak:
	$(CARGO) build --release --bin meridian
	$(CARGO) build --release -p meridian-loadgen
	bash soak/soak.sh $(SOAK_DURATION)

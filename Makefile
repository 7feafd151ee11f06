# ecs-container-exporter — every entry point a newcomer needs.
#   make demo    run the exporter against a simulated ECS task: curl localhost:9545/metrics
#   make demo-prometheus   the same plus a Prometheus with monitoring/'s rules (graph, alerts)
#   make test    every test, on the host target (what .ci/run calls)
#   make bench   benchmarks, side by side with the Python original; writes BENCHMARKS.md
#   make static  static musl release binary; make dist: amd64 + arm64 with sums; make image

SHELL := /bin/bash
CARGO ?= cargo
PROFILE ?= fargate
INTERVAL ?= 10
PORT ?= 9545
SIM_PORT ?= 51678
PROM_PORT ?= 19090
AMD64 := x86_64-unknown-linux-musl
ARM64 := aarch64-unknown-linux-musl
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
IMAGE ?= ecs-container-exporter:$(VERSION)

.PHONY: demo demo-prometheus test lint bench soak fuzz static static-arm64 dist image clean

# scripts/demo.sh checks the ports first, builds, starts everything on 127.0.0.1 and stops all
# of it on Ctrl-C (see the script's header).
DEMO = PROFILE='$(PROFILE)' INTERVAL='$(INTERVAL)' PORT='$(PORT)' SIM_PORT='$(SIM_PORT)' \
  PROM_PORT='$(PROM_PORT)' CARGO='$(CARGO)' bash scripts/demo.sh

demo:
	@$(DEMO)

demo-prometheus:
	@$(DEMO) --prometheus

test:
	$(CARGO) test --all-targets

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

fuzz:
	FUZZ_SECONDS=60 $(CARGO) test --release --test fuzz -- --nocapture

bench:
	bash tests/bench/run.sh

soak:
	bash tests/bench/soak.sh

static:
	rustup target list --installed | grep -qx $(AMD64) || rustup target add $(AMD64)
	$(CARGO) build --profile dist --target $(AMD64) --bin ecs-container-exporter
	@ls -l $${CARGO_TARGET_DIR:-target}/$(AMD64)/dist/ecs-container-exporter

# aarch64 (Graviton) links with the rust-lld and the musl CRT objects the Rust toolchain ships;
# no C cross toolchain is needed.
static-arm64:
	rustup target list --installed | grep -qx $(ARM64) || rustup target add $(ARM64)
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld \
	  $(CARGO) build --profile dist --target $(ARM64) --bin ecs-container-exporter
	@ls -l $${CARGO_TARGET_DIR:-target}/$(ARM64)/dist/ecs-container-exporter

dist: static static-arm64
	mkdir -p dist
	t=$${CARGO_TARGET_DIR:-target}; \
	cp $$t/$(AMD64)/dist/ecs-container-exporter dist/ecs-container-exporter-$(VERSION)-linux-amd64 && \
	cp $$t/$(ARM64)/dist/ecs-container-exporter dist/ecs-container-exporter-$(VERSION)-linux-arm64
	cd dist && sha256sum ecs-container-exporter-$(VERSION)-linux-* > SHA256SUMS && cat SHA256SUMS

# The build context is a tar of Dockerfile.scratch and the host-built static binary only, piped
# to `docker build -` (nothing to pull, nothing else sent). SOURCE= sets the OCI source label.
image: static
	tar -c Dockerfile.scratch -C $${CARGO_TARGET_DIR:-target}/$(AMD64)/dist ecs-container-exporter | \
	  docker build -q -f Dockerfile.scratch --build-arg VERSION=$(VERSION) \
	    --build-arg 'SOURCE=$(SOURCE)' -t $(IMAGE) -
	@docker image ls $(IMAGE)

clean:
	$(CARGO) clean
	rm -rf dist

# ecs-container-exporter — every entry point a newcomer needs.
#   make demo    run the exporter against a simulated ECS task: curl localhost:9545/metrics
#   make test    every test, on the host target (what .ci/run calls)
#   make bench   benchmarks, side by side with the Python original; writes BENCHMARKS.md
#   make bench-tiny-http   tiny_http 0.12.0 vs our HTTP server (accept errors, idle connections)
#   make static  static musl release binary; make dist: amd64 + arm64 with sums; make image

SHELL := /bin/bash
CARGO ?= cargo
PROFILE ?= fargate
INTERVAL ?= 10
PORT ?= 9545
SIM_PORT ?= 51678
AMD64 := x86_64-unknown-linux-musl
ARM64 := aarch64-unknown-linux-musl
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
IMAGE ?= ecs-container-exporter:$(VERSION)

.PHONY: demo test lint bench bench-tiny-http soak fuzz static static-arm64 dist image clean

demo:
	$(CARGO) build --release --bins
	@set -m; trap 'kill 0' EXIT INT TERM; \
	./target/release/ecs-task-sim --listen 127.0.0.1:$(SIM_PORT) --profile $(PROFILE) >/dev/null & \
	sleep 0.3; \
	echo; echo "  simulated ECS task ($(PROFILE)) at http://127.0.0.1:$(SIM_PORT)/task"; \
	echo "  exporter polling every $(INTERVAL)s:  curl localhost:$(PORT)/metrics"; \
	echo "  (numbers that need two samples appear after the first interval; Ctrl-C stops both)"; echo; \
	./target/release/ecs-container-exporter --metadata-url http://127.0.0.1:$(SIM_PORT) \
	  --exporter-port $(PORT) --interval $(INTERVAL)

test:
	$(CARGO) test --all-targets

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

fuzz:
	FUZZ_SECONDS=60 $(CARGO) test --release --test fuzz -- --nocapture

bench:
	bash tests/bench/run.sh

bench-tiny-http:
	bash tests/bench/tiny_http.sh

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

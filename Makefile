# ecs-container-exporter — every entry point a newcomer needs.
#   make demo    run the exporter against a simulated ECS task: curl localhost:9545/metrics
#   make demo-prometheus   the same plus a Prometheus with monitoring/'s rules (graph, alerts)
#   make test    every test, on the host target (what .ci/run calls)
#   make bench   benchmarks, side by side with the Python original; writes BENCHMARKS.md
#   make bench-tiny-http   tiny_http 0.12.0 vs our HTTP server (accept errors, idle connections)
#   make static  static musl release binary (static-arm64: Graviton)
#   make dist    release archives for amd64 and arm64 with sha256sums.txt, in dist/
#   make image   the FROM scratch image (ARCH=arm64: the Graviton one, tagged VERSION-arm64)

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
# The commit the binaries record (build.rs, same rule): ECS_EXPORTER_COMMIT, else git's HEAD when
# git tracks this Cargo.toml, else empty (unknown). It labels the image.
COMMIT := $(or $(strip $(ECS_EXPORTER_COMMIT)),$(shell git ls-files --error-unmatch Cargo.toml \
  >/dev/null 2>&1 && git rev-parse --verify --quiet 'HEAD^{commit}'))
# The archives' file times: the last commit's time unless SOURCE_DATE_EPOCH is set.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null)
DIST ?= dist
ARCH ?= amd64
TRIPLE_amd64 := $(AMD64)
TRIPLE_arm64 := $(ARM64)
IMAGE ?= ecs-container-exporter:$(VERSION)$(if $(filter-out amd64,$(ARCH)),-$(ARCH))

ifneq ($(filter image,$(MAKECMDGOALS)),)
ifeq ($(TRIPLE_$(ARCH)),)
$(error ARCH must be amd64 or arm64, not '$(ARCH)')
endif
endif

.PHONY: demo demo-prometheus test lint bench bench-tiny-http soak fuzz static static-amd64 \
  static-arm64 dist dist-amd64 dist-arm64 image clean

# scripts/demo.sh checks the ports first, builds, starts everything on 127.0.0.1 and stops all
# of it on Ctrl-C (see the script's header).
DEMO = PROFILE='$(PROFILE)' INTERVAL='$(INTERVAL)' PORT='$(PORT)' SIM_PORT='$(SIM_PORT)' \
  PROM_PORT='$(PROM_PORT)' CARGO='$(CARGO)' bash scripts/demo.sh

demo:
	@$(DEMO)

demo-prometheus:
	@$(DEMO) --prometheus

# Every test with the default features (remote write on), then the minimal binary's own tests
# (--no-default-features: the unit tests, the configuration and the binary refusing push).
# Through cargo-nextest when installed (`cargo install cargo-nextest --locked`; .ci/run does):
# every test in its own process, in parallel across the test binaries, grouped as
# .config/nextest.toml says. Without it, `cargo test` runs the binaries one after another
# (several minutes longer). The fuzz targets get FUZZ_SECONDS each (`make fuzz`: 60).
FUZZ_SECONDS ?= 1
NEXTEST = $(shell $(CARGO) nextest --version >/dev/null 2>&1 && echo yes)
TEST_RUN = $(if $(NEXTEST),$(CARGO) nextest run,$(CARGO) test)
test:
	@$(if $(NEXTEST),,echo "make test: cargo-nextest is not installed; running cargo test (slower)")
	FUZZ_SECONDS='$(FUZZ_SECONDS)' $(TEST_RUN) --all-targets
	FUZZ_SECONDS='$(FUZZ_SECONDS)' $(TEST_RUN) --no-default-features --lib --bins --test minimal

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) clippy --no-default-features --all-targets -- -D warnings

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
	$(CARGO) build --profile dist --target $(AMD64) --bin ecs-container-exporter $(FEATURES)
	@ls -l $${CARGO_TARGET_DIR:-target}/$(AMD64)/dist/ecs-container-exporter

# aarch64 (Graviton) links with the rust-lld and the musl CRT objects the Rust toolchain ships.
# ring (remote write's TLS and SigV4) compiles a little C and assembly: Debian's clang targets
# aarch64 by flag, llvm-ar archives it; no cross toolchain is needed. amd64 uses musl-gcc
# (musl-tools). FEATURES= passes cargo feature flags (--no-default-features: no remote write).
ARM64_CC = CC_aarch64_unknown_linux_musl=clang \
  CFLAGS_aarch64_unknown_linux_musl=--target=aarch64-linux-musl \
  AR_aarch64_unknown_linux_musl=llvm-ar
static-arm64:
	rustup target list --installed | grep -qx $(ARM64) || rustup target add $(ARM64)
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld $(ARM64_CC) \
	  $(CARGO) build --profile dist --target $(ARM64) --bin ecs-container-exporter $(FEATURES)
	@ls -l $${CARGO_TARGET_DIR:-target}/$(ARM64)/dist/ecs-container-exporter

static-amd64: static

# Release archives, node_exporter's layout: ecs-container-exporter-VERSION.linux-ARCH.tar.gz
# holding one directory of that name with the binary, LICENSE and README.md; sha256sums.txt
# beside them (`sha256sum -c sha256sums.txt`). Reproducible: names sorted, every mtime
# SOURCE_DATE_EPOCH, owner and group 0, modes 0755/0644 whatever the umask, gzip without a name
# or time. dist-amd64 and dist-arm64 write one archive each (and no sums). DIST= sets the folder.
dist: dist-amd64 dist-arm64
	cd $(DIST) && sha256sum ecs-container-exporter-$(VERSION).linux-amd64.tar.gz \
	  ecs-container-exporter-$(VERSION).linux-arm64.tar.gz > sha256sums.txt && cat sha256sums.txt

dist-amd64: static
dist-arm64: static-arm64
SDE_EXPECTED = SOURCE_DATE_EPOCH must be Unix seconds (by default the last git commit's time), \
  not '$(SOURCE_DATE_EPOCH)'
dist-amd64 dist-arm64:
	@[[ "$(SOURCE_DATE_EPOCH)" =~ ^[0-9]+$$ ]] || { echo "make $@: $(SDE_EXPECTED)" >&2; exit 2; }
	set -o pipefail; name=ecs-container-exporter-$(VERSION).linux-$(@:dist-%=%); \
	stage=$$(mktemp -d) && trap 'rm -rf "$$stage"' EXIT && mkdir "$$stage/$$name" && \
	cp $${CARGO_TARGET_DIR:-target}/$(TRIPLE_$(@:dist-%=%))/dist/ecs-container-exporter \
	  LICENSE README.md "$$stage/$$name/" && \
	mkdir -p $(DIST) && \
	tar -C "$$stage" -c --format=ustar --sort=name --mtime=@$(SOURCE_DATE_EPOCH) \
	  --owner=0 --group=0 --numeric-owner --mode=u=rwX,go=rX "$$name" | \
	  gzip -9n > "$(DIST)/$$name.tar.gz.part" && \
	mv "$(DIST)/$$name.tar.gz.part" "$(DIST)/$$name.tar.gz"
	@ls -l $(DIST)/ecs-container-exporter-$(VERSION).linux-$(@:dist-%=%).tar.gz

# The image of one architecture (ARCH=amd64 or arm64), from the static binary built on the host.
# The build context is a tar of Dockerfile.scratch and that binary only, piped to
# `docker build -` (nothing to pull, nothing else sent). --platform records the architecture in
# the image config; with no RUN step nothing is emulated. SOURCE= sets the OCI source label.
image: static-$(ARCH)
	set -o pipefail; \
	tar -c Dockerfile.scratch -C $${CARGO_TARGET_DIR:-target}/$(TRIPLE_$(ARCH))/dist \
	  ecs-container-exporter | \
	  docker build -q --platform linux/$(ARCH) -f Dockerfile.scratch \
	    --build-arg VERSION=$(VERSION) --build-arg REVISION=$(COMMIT) \
	    --build-arg 'SOURCE=$(SOURCE)' -t $(IMAGE) -
	@docker image ls $(IMAGE)

clean:
	$(CARGO) clean
	rm -rf dist

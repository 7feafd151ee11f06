# ecs-container-exporter — every entry point a newcomer needs.
#   make demo    run the exporter against a simulated ECS task: curl localhost:9545/metrics
#   make demo-prometheus   the same plus a Prometheus with monitoring/'s rules (graph, alerts)
#   make test    every test, on the host target (what .ci/run calls)
#   make bench   benchmarks, side by side with the Python original; writes BENCHMARKS.md
#   make fleet   N simulated tasks (N=10), one exporter each, one Prometheus: measured (stdout)
#   make bench-tiny-http   tiny_http 0.12.0 vs our HTTP server (accept errors, idle connections)
#   make bench-push   remote write's costs (size, RSS, CPU per push, Prometheus agent side by
#                side); rewrites its section of BENCHMARKS.md (~30 min; BENCH_PUSH_SECS=60 shorter)
#   make static  static musl release binary (static-arm64: Graviton)
#   make dist    release archives for amd64 and arm64, their SBOMs and sha256sums.txt, in dist/
#   make image   the FROM scratch image (ARCH=arm64: the Graviton one, tagged VERSION-arm64)
#   make push REGISTRY=host:port   both images to a registry, joined under one multi-arch tag

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
# Kept from cargo: `cargo test` gives the tests it runs the package's build variables
# (CARGO_PKG_*, CARGO_MANIFEST_*, OUT_DIR, ...), and the tests run make; ring's build script
# watches some of them and SOURCE_DATE_EPOCH (for its C compiler), so a build from a test and one
# from a shell, or with another SOURCE_DATE_EPOCH, rebuilt ring and all after it (a minute or two
# per target) each time they took turns. Cargo sets the first for what it builds; the binaries do
# not depend on the second, which dates the archives and the SBOMs (passed to them explicitly).
unexport $(filter CARGO_PKG_% CARGO_MANIFEST_% CARGO_CRATE_NAME CARGO_PRIMARY_PACKAGE \
  CARGO_BIN_EXE_% OUT_DIR,$(.VARIABLES)) SOURCE_DATE_EPOCH
ARCH ?= amd64
TRIPLE_amd64 := $(AMD64)
TRIPLE_arm64 := $(ARM64)
IMAGE ?= ecs-container-exporter:$(VERSION)$(if $(filter-out amd64,$(ARCH)),-$(ARCH))
REGISTRY ?=
INSECURE ?= auto
# The release tools, from crates.io, pinned: cargo-auditable embeds the dependency list in the
# static binaries, cargo-cyclonedx writes the SBOMs. The targets that need one install it
# (`cargo install --locked`, a few minutes once) when cargo lists another version or none.
AUDITABLE_VERSION := 0.7.7
CYCLONEDX_VERSION := 0.5.9
tool = $(CARGO) install --list | grep -qx 'cargo-$(1) v$(2):' || { \
  echo "installing cargo-$(1) $(2) from crates.io (a few minutes, once)"; \
  $(CARGO) install --locked --quiet cargo-$(1) --version $(2); }

ifneq ($(filter image,$(MAKECMDGOALS)),)
ifeq ($(TRIPLE_$(ARCH)),)
$(error ARCH must be amd64 or arm64, not '$(ARCH)')
endif
endif

.PHONY: demo demo-prometheus test lint bench bench-tiny-http bench-push soak fleet fuzz static static-amd64 \
  static-arm64 dist dist-amd64 dist-arm64 image push release-tools clean

# cargo-auditable and cargo-cyclonedx at their pinned versions (.ci/run installs them up front).
release-tools:
	@$(call tool,auditable,$(AUDITABLE_VERSION))
	@$(call tool,cyclonedx,$(CYCLONEDX_VERSION))

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

# BENCH_FLEET=0 leaves out the fleet section (tests/bench/fleet.sh at N = 10, 50 and 100: about
# 6 minutes, 201 loopback ports from FLEET_PORT).
bench:
	bash tests/bench/run.sh

# N tasks on the loopback ports FLEET_PORT to FLEET_PORT + 2N (Prometheus, the exporters, the
# simulators), measured; the markdown on stdout. A port of the range in use: it says so and starts
# nothing. Ctrl-C stops everything it started. FLEET_KEEP=600 keeps it up 10 minutes after.
N ?= 10
FLEET_PORT ?= 19200
fleet:
	@FLEET_PORT='$(FLEET_PORT)' bash tests/bench/fleet.sh $(N)

bench-tiny-http:
	bash tests/bench/tiny_http.sh

bench-push:
	bash tests/bench/push.sh --update BENCHMARKS.md

soak:
	bash tests/bench/soak.sh

# `cargo auditable build`: the binary carries its dependency list (name, version, source of every
# crate in it, compressed JSON in the ELF section .dep-v0, kept by `strip`), which scanners
# (trivy, grype, syft, osv-scanner, `cargo audit bin`) read from a deployed binary.
static:
	rustup target list --installed | grep -qx $(AMD64) || rustup target add $(AMD64)
	@$(call tool,auditable,$(AUDITABLE_VERSION))
	$(CARGO) auditable build --profile dist --target $(AMD64) --bin ecs-container-exporter $(FEATURES)
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
	@$(call tool,auditable,$(AUDITABLE_VERSION))
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld $(ARM64_CC) \
	  $(CARGO) auditable build --profile dist --target $(ARM64) --bin ecs-container-exporter $(FEATURES)
	@ls -l $${CARGO_TARGET_DIR:-target}/$(ARM64)/dist/ecs-container-exporter

static-amd64: static

# Release archives, node_exporter's layout: ecs-container-exporter-VERSION.linux-ARCH.tar.gz
# holding one directory of that name with the binary, LICENSE and README.md; beside each its
# CycloneDX SBOM, ecs-container-exporter-VERSION.linux-ARCH.cdx.json; sha256sums.txt over all
# four (`sha256sum -c sha256sums.txt`). Reproducible: names sorted, every mtime
# SOURCE_DATE_EPOCH, owner and group 0, modes 0755/0644 whatever the umask, gzip without a name
# or time; the SBOM dated SOURCE_DATE_EPOCH, without a serial number, and naming the checkout
# `.` rather than its absolute path. dist-amd64 and dist-arm64 write one archive and its SBOM
# each (and no sums). DIST= sets the folder.
DIST_FILES = $(foreach a,amd64 arm64,ecs-container-exporter-$(VERSION).linux-$(a).tar.gz \
  ecs-container-exporter-$(VERSION).linux-$(a).cdx.json)
dist: dist-amd64 dist-arm64
	cd $(DIST) && sha256sum $(DIST_FILES) > sha256sums.txt && cat sha256sums.txt

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
	@$(call tool,cyclonedx,$(CYCLONEDX_VERSION))
	$(call SBOM,$(TRIPLE_$(@:dist-%=%)),$(DIST)/ecs-container-exporter-$(VERSION).linux-$(@:dist-%=%).cdx.json)
	@ls -l $(DIST)/ecs-container-exporter-$(VERSION).linux-$(@:dist-%=%).{tar.gz,cdx.json}

# $(call SBOM,triple,file): the SBOM of the ecs-container-exporter binary for that target, with
# the features of the build ($(FEATURES)). cargo-cyclonedx writes NAME_bin.cdx.json for every
# binary beside Cargo.toml, so runs take turns (flock on Cargo.toml) and move theirs away; the
# checkout's absolute path in the package's bom-ref becomes `.` (the tool's own purl says
# file://. too).
SBOM = flock Cargo.toml bash -c 'set -euo pipefail; \
  trap "rm -f ecs-container-exporter_bin.cdx.json ecs-task-sim_bin.cdx.json" EXIT; \
  SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) $(CARGO) cyclonedx --quiet --format json \
    --spec-version 1.5 --describe binaries --target $(1) $(FEATURES); \
  sed -E "s|\"path\+file://[^\"\#]*\#|\"path+file://.\#|g" ecs-container-exporter_bin.cdx.json \
    > "$(2).part"; \
  mv "$(2).part" "$(2)"'

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

# Both images to REGISTRY (host[:port][/path]) as ecs-container-exporter:VERSION-amd64 and
# :VERSION-arm64, joined into the multi-architecture tag :VERSION (docker manifest create and
# push). INSECURE=1: a plain-HTTP registry (auto: on for a loopback one). scripts/push.sh
# checks REGISTRY and that it is reachable first, and leaves nothing tagged when a step fails.
push:
	@REGISTRY='$(REGISTRY)' VERSION='$(VERSION)' INSECURE='$(INSECURE)' MAKE='$(MAKE)' \
	  bash scripts/push.sh

clean:
	$(CARGO) clean
	rm -rf dist

#!/usr/bin/env bash
# make push REGISTRY=host[:port][/path]: both images to a registry, joined under one tag.
#
#   REGISTRY/ecs-container-exporter:VERSION-amd64   linux/amd64 (make image)
#   REGISTRY/ecs-container-exporter:VERSION-arm64   linux/arm64 (make image ARCH=arm64)
#   REGISTRY/ecs-container-exporter:VERSION         the multi-architecture index of the two
#
# - Before anything is built: REGISTRY must be set and look like host[:port][/path], and
#   host:port (443 without a port) must accept a TCP connection. If not: one line, exit 2 or 1.
# - Both images are built straight under their registry tags (nothing else is tagged), pushed by
#   the engine, then `docker manifest create` + `push --purge` joins them. If any step fails,
#   the two tags and any local manifest list are removed and one line says which step failed.
# - `docker manifest` talks to the registry from the CLI, not through the engine: a plain-HTTP
#   registry needs --insecure there (without it the error is a misleading "no such manifest").
#   INSECURE=auto (the default) passes it for a loopback registry (localhost, 127.0.0.0/8, ::1),
#   which the engine treats as insecure by default too; INSECURE=1 passes it for any registry
#   (the engine must then list it under "insecure-registries"), INSECURE=0 never.
#
# Environment (the Makefile passes its variables): REGISTRY, VERSION, INSECURE, MAKE.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

MAKE=${MAKE:-make}
INSECURE=${INSECURE:-auto}
REGISTRY=${REGISTRY:-}
VERSION=${VERSION:?the version of Cargo.toml, which the Makefile sets}

die() { echo "make push: $1" >&2; exit "${2:-1}"; }

# --- Before anything is built ----------------------------------------------------------------
[[ -n "$REGISTRY" ]] ||
  die "REGISTRY is not set: make push REGISTRY=host[:port][/path], e.g. REGISTRY=127.0.0.1:5000" 2
REGISTRY=${REGISTRY%/}
host_re='([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])'
path_re='(/[a-z0-9]+([._-][a-z0-9]+)*)*'
[[ "$REGISTRY" =~ ^$host_re(:[0-9]+)?$path_re$ ]] ||
  die "REGISTRY must be host[:port][/path] (no scheme), not '$REGISTRY'" 2
hostport=${REGISTRY%%/*}
if [[ "$hostport" =~ ^(.*):([0-9]+)$ ]]; then
  host=${BASH_REMATCH[1]} port=${BASH_REMATCH[2]}
else
  host=$hostport port=443
fi
host=${host#[}
host=${host%]}
case "$INSECURE" in
  auto) [[ "$host" == localhost || "$host" =~ ^127\.[0-9.]+$ || "$host" == ::1 ]] &&
    INSECURE=1 || INSECURE=0 ;;
  1 | 0) ;;
  *) die "INSECURE must be auto, 1 or 0, not '$INSECURE'" 2 ;;
esac
# shellcheck disable=SC2016 # the inner script reads its arguments, $0 and $1
timeout 5 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port" 2>/dev/null ||
  die "registry $REGISTRY is unreachable: nothing accepts a connection on $host port $port"

repo=$REGISTRY/ecs-container-exporter
index=$repo:$VERSION
tags=("$repo:$VERSION-amd64" "$repo:$VERSION-arm64")
insecure=()
((INSECURE)) && insecure=(--insecure)
# Docker CLIs before 20.10 hide `docker manifest` behind this switch; later ones ignore it.
export DOCKER_CLI_EXPERIMENTAL=enabled

# --- Build, push, join; on failure remove what this run tagged --------------------------------
finished=0
cleanup() {
  ((finished)) && return
  docker manifest rm "$index" >/dev/null 2>&1
  docker rmi "${tags[@]}" >/dev/null 2>&1
}
err=$(mktemp) || die "cannot create a temp file"
trap 'cleanup; rm -f "$err"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# step <what> <command...>: runs it; on failure says <what> and docker's last error line.
step() {
  local what=$1
  shift
  "$@" 2>"$err" && return 0
  local why
  why=$(grep -v '^\s*$' "$err" | tail -n 1)
  die "$what failed${why:+: $why}"
}

for arch in amd64 arm64; do
  # make's own output (cargo, docker build) stays as it is; a failed build ends here.
  "$MAKE" --no-print-directory image ARCH=$arch "IMAGE=$repo:$VERSION-$arch" ||
    die "building the $arch image failed (above)"
done
for tag in "${tags[@]}"; do
  step "docker push $tag" docker push -q "$tag" >/dev/null
  echo "pushed $tag"
done
# A manifest list left by an earlier run would make `create` refuse: remove it first.
docker manifest rm "$index" >/dev/null 2>&1
step "docker manifest create $index" docker manifest create "${insecure[@]}" "$index" "${tags[@]}"
step "docker manifest push $index" docker manifest push "${insecure[@]}" --purge "$index"
finished=1
echo "pushed $index (linux/amd64, linux/arm64)"

#!/usr/bin/env bash
# Measures the budgets of the shipped artefacts and prints a markdown table:
#   amd64 static binary ≤ 1.0 MiB (1,048,576 B, stripped) · image ≤ 1.1 MiB ·
#   RSS after 1,000 scrapes of a 4-container task ≤ 1.1 MiB (issue #13; host process, and in the
#   container) ·
#   start to first /metrics answer ≤ 20 ms.
# Budgets are measured and reported, never asserted (the script exits 0 when a budget is missed).
#
# Usage: tests/bench/budgets.sh [--opt-levels]
#   --opt-levels  also builds the dist profile at opt-level "s" and "z" (into
#                 $target/budget-opt-{s,z}) and compares size, CPU per poll and CPU per scrape.
# Needs: make, cargo with the x86_64-unknown-linux-musl target, curl; Docker for the image rows
# (skipped with "n/a" when no engine answers). Only 127.0.0.1 and a private Docker network of
# its own are used; everything it starts or creates is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."

AMD64=x86_64-unknown-linux-musl
T=${CARGO_TARGET_DIR:-target}
MIB=1048576
RSS_LIMIT_KIB=1126.4 # 1.1 MiB
RUNS=${RUNS:-20}
SCRAPES=${SCRAPES:-1000}
TAG=budgets-$$
IMAGE=ecs-container-exporter-$TAG:latest
SIM_IMAGE=ecs-task-sim-$TAG:latest
NET=ecx-$TAG

# Logging, the exit trap (every PID in PIDS killed on exit, also on Ctrl-C, then cleanup_more;
# $work removed), free ports, the simulator, /proc readers: shared with the other scripts.
# shellcheck source=lib.sh
. tests/bench/lib.sh
log_as budgets
temp_work
cleanup_more() { # the containers, network and images of this run
  if [[ ${DOCKER:-0} == 1 ]]; then
    docker rm -f "$TAG-exporter" "$TAG-sim" >/dev/null 2>&1 || true
    docker network rm "$NET" >/dev/null 2>&1 || true
    docker rmi -f "$IMAGE" "$SIM_IMAGE" >/dev/null 2>&1 || true
  fi
}

# --- helpers -------------------------------------------------------------------------------
# wait_full <port>: until a scrape has the task CPU ratio (a full poll: the first one uses
# precpu_stats when the endpoint gives a real one, else it takes a second poll).
wait_full() {
  for _ in $(seq 500); do
    if curl -sf "http://127.0.0.1:$1/metrics" 2>/dev/null |
      grep -q '^ecs_task_cpu_usage_ratio{container_name="_task_"}'; then
      return 0
    fi
    sleep 0.02
  done
  log "no full scrape on port $1"
  return 1
}

# start_exporter <binary> <interval>: the exporter on a free port, polling SIM_URL every
# <interval> s; sets epid and port.
start_exporter() {
  port=$(free_port)
  "$1" --metadata-url "$SIM_URL" --bind-address 127.0.0.1 --exporter-port "$port" \
    --interval "$2" --log-level error &
  epid=$!
  PIDS+=("$epid")
}

# scrape_n <port> <n>: n scrapes, each on a new connection (as a Prometheus without keep-alive).
scrape_n() {
  curl -sf -o /dev/null -H 'Connection: close' "http://127.0.0.1:$1/metrics?n=[1-$2]"
}

mib() { awk -v b="$1" 'BEGIN {printf "%.3f MiB", b / 1048576}'; } # bytes
within() { awk -v v="$1" -v l="$2" 'BEGIN {print (v <= l) ? "yes" : "**no**"}'; } # within VALUE LIMIT

# first_answer_ms <binary> <metadata-url>: sets FIRST_MS, the ms from exec to the first /metrics
# status line, read over bash's /dev/tcp (no process per attempt, so the loop's own cost is
# microseconds). Not called in $(...): the exporter must be in this shell's PIDS.
first_answer_ms() {
  local port start end line
  port=$(free_port)
  start=$EPOCHREALTIME
  "$1" --metadata-url "$2" --bind-address 127.0.0.1 --exporter-port "$port" \
    --log-level error 2>/dev/null &
  local pid=$!
  PIDS+=("$pid")
  # Bounded: an exporter that never listens fails the budget instead of hanging the bench.
  local tries=0
  until exec 3<>"/dev/tcp/127.0.0.1/$port"; do
    ((++tries < 200000)) || { stop "$pid"; log "no listener on $port"; return 1; }
  done 2>/dev/null
  printf 'GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3
  IFS= read -r line <&3
  end=$EPOCHREALTIME
  exec 3<&-
  stop "$pid"
  [[ $line == "HTTP/1.1 200"* ]] || { log "first answer was: $line"; return 1; }
  FIRST_MS=$(awk -v s="$start" -v e="$end" 'BEGIN {printf "%.2f\n", (e - s) * 1000}')
}

# --- build ---------------------------------------------------------------------------------
log "building the static binaries (make static; ecs-task-sim for the same target)"
make -s static >/dev/null
cargo build -q --profile dist --target "$AMD64" --bin ecs-task-sim
EXP=$T/$AMD64/dist/ecs-container-exporter
SIM=$T/$AMD64/dist/ecs-task-sim
BIN_BYTES=$(stat -c %s "$EXP")

DOCKER=0
if docker version >/dev/null 2>&1; then DOCKER=1; fi

rows=()
row() { rows+=("| $1 | $2 | $3 | $4 |"); }

row "amd64 static binary, stripped" "≤ 1.0 MiB (1,048,576 B)" "$BIN_BYTES B ($(mib "$BIN_BYTES"))" \
  "$(within "$BIN_BYTES" "$MIB")"

if [[ $DOCKER == 1 ]]; then
  log "building the image (make image)"
  make -s image IMAGE="$IMAGE" >/dev/null 2>&1
  IMG_BYTES=$(docker image inspect -f '{{.Size}}' "$IMAGE")
  row "image (FROM scratch)" "≤ 1.1 MiB" "$IMG_BYTES B ($(mib "$IMG_BYTES"))" \
    "$(within "$IMG_BYTES" $((MIB * 11 / 10)))"
else
  row "image (FROM scratch)" "≤ 1.1 MiB" "n/a (no Docker engine)" "–"
fi

# --- RSS after 1,000 scrapes, host process -------------------------------------------------
log "RSS: $SCRAPES scrapes of a 4-container task, host process"
start_sim "$SIM" "$work/sim" --containers 4 --refresh-secs 0 -v
start_exporter "$EXP" 1
wait_full "$port"
scrape_n "$port" "$SCRAPES"
rss=$(rss_kib "$epid")
hwm=$(hwm_kib "$epid")
row "RSS after $SCRAPES scrapes, 4 containers (host, VmRSS; peak VmHWM)" "≤ 1.1 MiB" \
  "$rss KiB ($(kib_mib "$rss")); peak $hwm KiB" "$(within "$rss" "$RSS_LIMIT_KIB")"
stop "$epid"

# --- start to first answer, host process ---------------------------------------------------
log "start to first /metrics answer: $RUNS runs"
times=()
for _ in $(seq "$RUNS"); do
  first_answer_ms "$EXP" "$SIM_URL"
  times+=("$FIRST_MS")
done
read -r median worst < <(printf '%s\n' "${times[@]}" | sort -n |
  awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)], a[NR]}')
row "start to first /metrics answer (host, $RUNS runs)" "≤ 20 ms" \
  "median $median ms, max $worst ms" "$(within "$worst" 20)"
stop "$SIM_PID"

# --- in the container ----------------------------------------------------------------------
if [[ $DOCKER == 1 ]]; then
  log "RSS: $SCRAPES scrapes in the container (--read-only --cap-drop ALL --memory 16m --cpus 0.25)"
  cp "$SIM" "$work/ecs-task-sim"
  printf 'FROM scratch\nCOPY ecs-task-sim /\nUSER 65534:65534\nENTRYPOINT ["/ecs-task-sim"]\n' \
    >"$work/Dockerfile"
  docker build -q -t "$SIM_IMAGE" "$work" >/dev/null 2>&1
  docker network create "$NET" >/dev/null
  docker run -d --name "$TAG-sim" --network "$NET" --read-only --cap-drop ALL "$SIM_IMAGE" \
    --listen 0.0.0.0:51678 --containers 4 --refresh-secs 0 >/dev/null
  t0=$EPOCHREALTIME
  docker run -d --name "$TAG-exporter" --network "$NET" --read-only --cap-drop ALL \
    --memory 16m --memory-swap 16m --cpus 0.25 -p 127.0.0.1:0:9545 "$IMAGE" \
    --metadata-url "http://$TAG-sim:51678" --interval 1 --log-level error >/dev/null
  cport=$(docker port "$TAG-exporter" 9545/tcp | sed -n 's/^127\.0\.0\.1://p' | head -n1)
  until curl -sf -o /dev/null "http://127.0.0.1:$cport/metrics"; do sleep 0.005; done
  t1=$EPOCHREALTIME
  wait_full "$cport"
  scrape_n "$cport" "$SCRAPES"
  cpid=$(docker inspect -f '{{.State.Pid}}' "$TAG-exporter")
  if [[ -r /proc/$cpid/status ]]; then
    crss=$(rss_kib "$cpid")
    cshow="$crss KiB ($(kib_mib "$crss")); peak $(hwm_kib "$cpid") KiB"
  else
    crss=0
    cshow="n/a (no /proc of the container here)"
  fi
  cgroup=$(docker stats --no-stream --format '{{.MemUsage}}' "$TAG-exporter" | cut -d/ -f1)
  row "RSS after $SCRAPES scrapes, 4 containers (container, VmRSS via host /proc)" "≤ 1.1 MiB" \
    "$cshow; cgroup ${cgroup% }" "$(within "$crss" "$RSS_LIMIT_KIB")"
  oom=$(docker inspect -f '{{.State.OOMKilled}}' "$TAG-exporter")
  s0=$EPOCHREALTIME
  docker stop -t 1 "$TAG-exporter" >/dev/null
  s1=$EPOCHREALTIME
  code=$(docker inspect -f '{{.State.ExitCode}}' "$TAG-exporter")
  row "\`docker run\` to first answer (container; Docker's own start-up included)" "–" \
    "$(awk -v s="$t0" -v e="$t1" 'BEGIN {printf "%.0f ms", (e - s) * 1000}')" "info"
  row "\`docker stop -t 1\` (SIGTERM to PID 1): exit code, OOM-killed" "0, false, < 1 s" \
    "$code, $oom, $(awk -v s="$s0" -v e="$s1" 'BEGIN {printf "%.0f ms", (e - s) * 1000}')" \
    "$([[ $code == 0 && $oom == false ]] && echo yes || echo '**no**')"
fi

echo
echo "| budget | limit | measured | within |"
echo "|---|---|---|---|"
printf '%s\n' "${rows[@]}"

# --- opt-level s vs z ----------------------------------------------------------------------
if [[ ${1:-} == --opt-levels ]]; then
  CLK=$(getconf CLK_TCK)
  opt_rows=()
  for lvl in s z; do
    log "opt-level $lvl: building into $T/budget-opt-$lvl"
    CARGO_PROFILE_DIST_OPT_LEVEL=$lvl cargo build -q --profile dist --target "$AMD64" \
      --target-dir "$T/budget-opt-$lvl" --bins
    bin=$T/budget-opt-$lvl/$AMD64/dist/ecs-container-exporter
    sim=$T/budget-opt-$lvl/$AMD64/dist/ecs-task-sim
    bytes=$(stat -c %s "$bin")
    start_sim "$sim" "$work/sim" --containers 4 --refresh-secs 0 -v
    # CPU per poll: a poll every 20 ms for 10 s, polls counted in the simulator's request log.
    start_exporter "$bin" 0.02
    wait_full "$port"
    c0=$(cpu_ticks "$epid")
    n0=$(grep -c 'GET /task/stats' "$work/sim.err" || true)
    sleep 10
    c1=$(cpu_ticks "$epid")
    n1=$(grep -c 'GET /task/stats' "$work/sim.err" || true)
    stop "$epid"
    poll_us=$(awk -v c=$((c1 - c0)) -v n=$((n1 - n0)) -v hz="$CLK" \
      'BEGIN {printf "%.0f", c / hz * 1e6 / n}')
    # CPU per scrape: 10,000 scrapes on one keep-alive connection (only the render and write).
    start_exporter "$bin" 60
    wait_full "$port" || true
    c0=$(cpu_ticks "$epid")
    curl -sf -o /dev/null "http://127.0.0.1:$port/metrics?n=[1-10000]"
    c1=$(cpu_ticks "$epid")
    stop "$epid"
    stop "$SIM_PID"
    scrape_us=$(awk -v c=$((c1 - c0)) -v hz="$CLK" 'BEGIN {printf "%.0f", c / hz * 1e6 / 10000}')
    opt_rows+=("| \"$lvl\" | $bytes B ($(mib "$bytes")) | $poll_us µs ($((n1 - n0)) polls) | $scrape_us µs |")
  done
  echo
  echo "| opt-level | amd64 binary | CPU per poll (4 containers) | CPU per scrape |"
  echo "|---|---|---|---|"
  printf '%s\n' "${opt_rows[@]}"
fi

#!/usr/bin/env bash
# A fleet of simulated ECS tasks, one exporter each, discovered and scraped by one real
# Prometheus, measured (issue #18). Prints markdown on stdout (progress on stderr):
#
#   bash tests/bench/fleet.sh [N ...]   (from the repository root; default: 10)
#   make fleet N=10                     (one size; FLEET_KEEP=600 keeps it up 10 more minutes)
#   make bench                          (sizes 10 50 100 unless BENCH_FLEET=0)
#
# Per size N, on loopback only, on one port range: Prometheus on FLEET_PORT, the N exporters on
# the next N ports, the N simulators (ecs-task-sim) on the N after. Task i runs the profile
# fargate, ec2-bridge, managed-instances, ec2-awsvpc in turn, with --life and a task id of its
# own (--task-id). A file_sd file lists one target per task as prometheus-ecs-discovery writes
# it (the exporter container's PROMETHEUS_EXPORTER_PORT port; labels task_arn, task_name,
# task_revision, task_group, cluster_arn, container_name, container_arn, docker_image,
# __metrics_path__, from the task's own metadata), and the README's scrape job reads it
# (honor_labels: true). After every target is up and a warm-up of two scrapes, a window of
# FLEET_SECS seconds measures: series per task by profile (scrape_samples_scraped), head series
# and samples/s (Prometheus' own counters, read from its /metrics: it does not scrape itself),
# Prometheus' RSS, the exporters' summed RSS and CPU (/proc), the simulators' CPU apart, and
# the p99 of every scrape_duration_seconds sample in the window.
#
# Then one task per profile with 3 exported containers (and one as the template has it) runs
# with --use-statsd to a UDP port read here: its DogStatsD custom metrics are the distinct
# name + tag-value combinations of the lines it sends in a few polls, next to its series.
# Last: least-squares fits over the sizes and a sizing table for 100, 1,000 and 10,000 tasks.
#
# Knobs: FLEET_PORT (19200), FLEET_SCRAPE (5: Prometheus' scrape interval and the exporters'
# --interval, seconds), FLEET_SECS (60), FLEET_STATIC=1 (measure the shipped static binary,
# `make static`, instead of the release build), FLEET_KEEP (0: seconds the last size stays up after
# it is measured, to look at it; Ctrl-C ends it sooner), FLEET_WORK (a temporary folder).
# A port of the range in use stops the script before it starts anything. Every wait is bounded;
# every process started here is killed by its PID on exit, Ctrl-C included (tests/bench/lib.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."

SIZES=("$@")
((${#SIZES[@]})) || SIZES=(10)
BASE=${FLEET_PORT:-19200}
SCRAPE=${FLEET_SCRAPE:-5}
WINDOW=${FLEET_SECS:-60}
PROFILES=(fargate ec2-bridge managed-instances ec2-awsvpc)
JOB=ecs-container-exporter
HZ=$(getconf CLK_TCK)

# shellcheck source=lib.sh
. tests/bench/lib.sh
log_as fleet

for n in "${SIZES[@]}"; do
  if ! [[ $n =~ ^[1-9][0-9]*$ ]] || ((n > 1000)); then die "a fleet size is a number from 1 to 1000, not '$n'"; fi
done
if ! [[ $BASE =~ ^[0-9]+$ ]] || ((BASE < 1024)); then die "FLEET_PORT must be a port number >= 1024, not '$BASE'"; fi
[[ $SCRAPE =~ ^[1-9][0-9]*$ && $WINDOW =~ ^[1-9][0-9]*$ && ${FLEET_KEEP:-0} =~ ^[0-9]+$ ]] ||
  die "FLEET_SCRAPE, FLEET_SECS and FLEET_KEEP are whole seconds"
MAX=$(printf '%s\n' "${SIZES[@]}" | sort -n | tail -n1)
LAST=$((BASE + 2 * MAX))
((LAST <= 65535)) || die "the port range $BASE-$LAST goes past 65535: lower FLEET_PORT"
need_tools --hint "apt-get install -y prometheus" prometheus cargo curl jq python3

# busy_ports FIRST LAST: the ports of the range that a server cannot bind on 127.0.0.1 now (bound
# with SO_REUSEADDR, as Rust's and Go's listeners do: a closing connection does not count).
busy_ports() {
  python3 - "$1" "$2" <<'PY'
import socket, sys
for port in range(int(sys.argv[1]), int(sys.argv[2]) + 1):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        print(port)
    finally:
        s.close()
PY
}
check_ports() {
  local busy first holder
  busy=$(busy_ports "$BASE" "$LAST")
  [[ -z $busy ]] && return 0
  first=$(head -n1 <<<"$busy")
  holder=$(ss -ltnpH "sport = :$first" 2>/dev/null | grep -o 'users:(("[^"]*",pid=[0-9]*' | head -n1 |
    sed 's/users:(("\([^"]*\)",pid=\([0-9]*\)/\1, pid \2/' || true)
  log "FAILED: port range $BASE-$LAST (FLEET_PORT=$BASE, N=$MAX) is in use: port$( (($(wc -l <<<"$busy") > 1)) && echo s) $(paste -sd, <<<"$busy" | sed 's/,/, /g')${holder:+ (port $first held by $holder)}. Nothing was started; free the ports or choose another range with FLEET_PORT=."
  exit 1
}
check_ports

if [[ ${FLEET_STATIC:-0} == 1 ]]; then
  log "building: cargo build --release --bin ecs-task-sim; make static"
  cargo build --release --bin ecs-task-sim >&2
  make -s static >&2
  EXPORTER=${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-musl/dist/ecs-container-exporter
  BUILD="the shipped static binary, \`make static\`"
else
  log "building: cargo build --release --bins"
  cargo build --release --bins >&2
  EXPORTER=${CARGO_TARGET_DIR:-target}/release/ecs-container-exporter
  BUILD="the release build"
fi
SIM=${CARGO_TARGET_DIR:-target}/release/ecs-task-sim
check_ports # again: the build took a while

if [[ -n ${FLEET_WORK:-} ]]; then
  work=$FLEET_WORK
  mkdir -p "$work"
else
  temp_work
fi

# --- one fleet ---------------------------------------------------------------------------------
# Sets FLEET_PIDS (exporters), SIM_PIDS, PROM_PID, PROM for the size being run.
task_id() { printf 'f1ee7%027x' "$1"; } # 32 hex digits, as an ECS task id
get() { curl -fsS -m 5 "$@"; }
prom_api() { get "http://127.0.0.1:$PROM_PORT/api/v1/$1"; }
prom_query() { get -G "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "query=$1"; }
targets_up() { prom_api 'targets?state=active' | jq '[.data.activeTargets[] | select(.health == "up")] | length'; }

start_fleet() {
  local n=$1 dir=$2 i port url
  FLEET_PIDS=() SIM_PIDS=()
  PROM_PORT=$BASE
  mkdir -p "$dir"
  for ((i = 0; i < n; i++)); do
    port=$((BASE + 1 + n + i))
    env -i "$SIM" --listen "127.0.0.1:$port" --profile "${PROFILES[i % 4]}" --life \
      --task-id "$(task_id "$i")" >"$dir/sim-$i.out" 2>"$dir/sim-$i.err" &
    SIM_PIDS+=($!)
    PIDS+=($!)
  done
  for ((i = 0; i < n; i++)); do
    url=$(listening_url "$dir/sim-$i.out") || die "simulator $i did not start: $(cat "$dir/sim-$i.err")"
    get "$url/task" >"$dir/task-$i.json" || die "simulator $i: no /task"
  done
  # The file_sd file, as prometheus-ecs-discovery writes it: one entry per container with a
  # PROMETHEUS_EXPORTER_PORT docker label, the exporter's and the application's own exporter (the
  # fixtures' ecs-exporter container), which the README's job drops.
  for ((i = 0; i < n; i++)); do
    jq --arg target "127.0.0.1:$((BASE + 1 + i))" '
      (.TaskARN | split(":")) as $arn | (.TaskARN | split("/") | last) as $id |
      (.Cluster | split("/") | last) as $cluster |
      (.Containers[] | select(.Name == "ecs-exporter")) as $app |
      {task_arn: .TaskARN, task_name: .Family, task_revision: .Revision,
       task_group: (if .ServiceName then "service:" + .ServiceName else "family:" + .Family end),
       cluster_arn: (if (.Cluster | startswith("arn:")) then .Cluster
         else "arn:aws:ecs:\($arn[3]):\($arn[4]):cluster/\(.Cluster)" end)} as $task |
      {targets: [$target], labels: ($task + {container_name: "ecs-container-exporter",
        container_arn: "arn:aws:ecs:\($arn[3]):\($arn[4]):container/\($cluster)/\($id)/00000000-0000-4000-8000-\($id[0:12])",
        docker_image: "ecs-container-exporter:0.1.0", __metrics_path__: "/metrics"})},
      {targets: ["127.0.0.1:9779"], labels: ($task + {container_name: $app.Name,
        container_arn: $app.ContainerARN, docker_image: $app.Image, __metrics_path__: "/metrics"})}
      ' "$dir/task-$i.json"
  done | jq -r -s '.[] | "- targets:", (.targets[] | "  - \(tojson)"), "  labels:",
      (.labels | to_entries[] | "    \(.key): \(.value | tojson)")' >"$dir/ecs_file_sd.yml"
  for ((i = 0; i < n; i++)); do
    env -i "$EXPORTER" --metadata-url "http://127.0.0.1:$((BASE + 1 + n + i))" \
      --exporter-port "$((BASE + 1 + i))" --bind-address 127.0.0.1 --interval "$SCRAPE" \
      --log-level warn >/dev/null 2>"$dir/exporter-$i.err" &
    FLEET_PIDS+=($!)
    PIDS+=($!)
  done
  for ((i = 0; i < n; i++)); do
    for _ in $(seq 200); do
      get -o /dev/null "http://127.0.0.1:$((BASE + 1 + i))/metrics" 2>/dev/null && break
      kill -0 "${FLEET_PIDS[i]}" 2>/dev/null || die "exporter $i exited: $(cat "$dir/exporter-$i.err")"
      sleep 0.05
    done
  done
  # The README's job: monitoring/discovery/file-sd.yml as it is, reading this file.
  {
    printf 'global:\n  scrape_interval: %ss\n  scrape_timeout: %ss\n' "$SCRAPE" "$SCRAPE"
    sed "s|/etc/prometheus/ecs_file_sd.yml|$dir/ecs_file_sd.yml|" monitoring/discovery/file-sd.yml
  } >"$dir/prometheus.yml"
  prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
    --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn >/dev/null 2>"$dir/prometheus.err" &
  PROM_PID=$!
  PIDS+=("$PROM_PID")
  for _ in $(seq 300); do
    get -o /dev/null "http://127.0.0.1:$PROM_PORT/-/ready" 2>/dev/null && break
    kill -0 "$PROM_PID" 2>/dev/null || die "prometheus exited: $(cat "$dir/prometheus.err")"
    sleep 0.1
  done
  get -o /dev/null "http://127.0.0.1:$PROM_PORT/-/ready" || die "prometheus not ready in 30 s"
  local up=0
  for _ in $(seq $((20 * SCRAPE + 60))); do
    up=$(targets_up 2>/dev/null || echo 0)
    ((up == n)) && break
    sleep 0.5
  done
  ((up == n)) || die "only $up of $n targets up after $((10 * SCRAPE + 30)) s"
}

stop_fleet() {
  local p
  for p in "$PROM_PID" "${FLEET_PIDS[@]}" "${SIM_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "$PROM_PID" "${FLEET_PIDS[@]}" "${SIM_PIDS[@]}"; do
    wait "$p" 2>/dev/null || true
    forget "$p"
  done
}

sum_over() { # sum_over FUNCTION PID...: the sum of FUNCTION PID over the PIDs
  local f=$1 p s=0
  shift
  for p in "$@"; do s=$((s + $("$f" "$p"))); done
  echo "$s"
}
prom_self() { # the sum of a metric's samples in Prometheus' own /metrics
  get "http://127.0.0.1:$PROM_PORT/metrics" | awk -v m="$1" '$1 == m || index($1, m "{") == 1 {s += $2} END {printf "%.0f", s}'
}

declare -A R # R[N.key]: the figures of size N
measure() {
  local n=$1 dir=$2 t0 t1 s0 s1 c0 c1 sc0 sc1 pc0 pc1 secs
  log "N=$n: every target up; warming up for $((2 * SCRAPE)) s"
  sleep $((2 * SCRAPE))
  t0=$(date +%s.%N)
  s0=$(prom_self prometheus_tsdb_head_samples_appended_total)
  c0=$(sum_over cpu_ticks "${FLEET_PIDS[@]}")
  sc0=$(sum_over cpu_ticks "${SIM_PIDS[@]}")
  pc0=$(cpu_ticks "$PROM_PID")
  log "N=$n: measuring for $WINDOW s"
  sleep "$WINDOW"
  t1=$(date +%s.%N)
  s1=$(prom_self prometheus_tsdb_head_samples_appended_total)
  c1=$(sum_over cpu_ticks "${FLEET_PIDS[@]}")
  sc1=$(sum_over cpu_ticks "${SIM_PIDS[@]}")
  pc1=$(cpu_ticks "$PROM_PID")
  secs=$(calc "$t1 - $t0")
  R[$n.secs]=$secs
  R[$n.samples_s]=$(calc "($s1 - $s0) / $secs")
  R[$n.head]=$(prom_self prometheus_tsdb_head_series)
  R[$n.prom_rss]=$(rss_kib "$PROM_PID")
  R[$n.prom_cpu]=$(calc "($pc1 - $pc0) / $HZ / $secs")
  R[$n.exp_rss]=$(sum_over rss_kib "${FLEET_PIDS[@]}")
  R[$n.exp_cpu]=$(calc "($c1 - $c0) / $HZ / $secs")
  R[$n.sim_cpu]=$(calc "($sc1 - $sc0) / $HZ / $secs")
  R[$n.up]=$(targets_up)
  R[$n.dropped]=$(prom_api 'targets?state=dropped' | jq '.data.droppedTargets | length')
  # Every scrape of the window: scrape_duration_seconds samples of every target.
  prom_query "scrape_duration_seconds{job=\"$JOB\"}[${WINDOW}s]" |
    jq -r '.data.result[].values[][1]' | sort -g >"$dir/durations"
  R[$n.scrapes]=$(wc -l <"$dir/durations")
  R[$n.p50]=$(awk '{a[NR] = $1} END {i = int(0.50 * NR); if (i < 0.50 * NR) i++; printf "%.2f", a[i] * 1000}' "$dir/durations")
  R[$n.p99]=$(awk '{a[NR] = $1} END {i = int(0.99 * NR); if (i < 0.99 * NR) i++; printf "%.2f", a[i] * 1000}' "$dir/durations")
  R[$n.max]=$(awk 'END {printf "%.2f", $1 * 1000}' "$dir/durations")
  # Series per task, by profile (the task family tells the profile).
  # (The job drops the tool's labels: the family comes from each target's ecs_task_info.)
  prom_query "scrape_samples_scraped{job=\"$JOB\"} * on (instance) group_left (family) ecs_task_info" |
    jq -r '.data.result[] | "\(.metric.family) \(.value[1])"' >"$dir/per_task"
  local p fam
  for ((p = 0; p < 4; p++)); do
    fam=$(jq -r .Family "$dir/task-$p.json" 2>/dev/null || true)
    [[ -n $fam ]] || continue
    R[$n.series.${PROFILES[p]}]=$(awk -v f="$fam" '$1 == f {if (!c++ || $2 < lo) lo = $2; if ($2 > hi) hi = $2} END {print (lo == hi ? lo : lo "–" hi)}' "$dir/per_task")
  done
  R[$n.series_sum]=$(awk '{s += $2} END {print s}' "$dir/per_task")
  # Series identity: a task is its target labels (job, instance) plus its ecs_task_info. With
  # instance replaced by the task ARN, no two series may be alike. (The name is copied into a
  # label first: arithmetic and aggregations drop __name__.)
  R[$n.collisions]=$(prom_query "count without (instance) (label_replace({job=\"$JOB\"}, \"name\", \"\$1\", \"__name__\", \"(.+)\") * on (instance) group_left (task_arn) ecs_task_info) > 1" |
    jq '.data.result | length')
  log "N=$n: ${R[$n.up]} up, head series ${R[$n.head]}, $(fmt "${R[$n.samples_s]}" %.0f) samples/s, Prometheus RSS $(kib_mib "${R[$n.prom_rss]}" 1), exporters RSS $(kib_mib "${R[$n.exp_rss]}" 1) and CPU $(fmt "${R[$n.exp_cpu]}" %.4f) cores, scrape p99 ${R[$n.p99]} ms over ${R[$n.scrapes]} scrapes, collisions ${R[$n.collisions]}"
}

for n in "${SIZES[@]}"; do
  log "N=$n: $n simulators (${PROFILES[*]} in turn, --life), $n exporters ($BUILD, --interval $SCRAPE), Prometheus (scrape every $SCRAPE s) on 127.0.0.1:$BASE-$((BASE + 2 * n))"
  start_fleet "$n" "$work/n$n"
  measure "$n" "$work/n$n"
  if ((${FLEET_KEEP:-0} > 0)) && [[ $n == "${SIZES[-1]}" ]]; then
    log "FLEET_KEEP=$FLEET_KEEP: the fleet stays up that many seconds; Prometheus at http://127.0.0.1:$PROM_PORT (targets: /targets). Ctrl-C stops everything."
    for _ in $(seq "$FLEET_KEEP"); do
      kill -0 "$PROM_PID" 2>/dev/null || die "prometheus exited"
      sleep 1
    done
  fi
  stop_fleet
done

# --- DogStatsD custom metrics and series per task ----------------------------------------------
# One task per profile as its template has it, one with 3 running containers (ec2-awsvpc's
# pause container counts for --containers but is excluded by the exporter: 4 there), and the same
# with the README's lean denylist (tests/bench/cutting.sh holds it), each exporter sending
# DogStatsD to its own UDP port for STATSD_SECS seconds at --interval 1.
STATSD_SECS=5
LEAN=$(sed -n "s/^LEAN='\(.*\)'$/\1/p" tests/bench/cutting.sh)
[[ -n $LEAN ]] || die "no LEAN= line in tests/bench/cutting.sh"
log "DogStatsD: one exporter per profile and shape, --use-statsd --interval 1, for $STATSD_SECS s"
declare -A SD
sd_dir=$work/statsd
mkdir -p "$sd_dir"
shapes=()
for p in "${PROFILES[@]}"; do
  shapes+=("$p:template" "$p:3" "$p:lean")
done
udp_ports=()
for _ in "${shapes[@]}"; do udp_ports+=("$(free_port)"); done
# The receiver: every datagram's lines, one file per port; ends by itself.
python3 - "$sd_dir" "$((STATSD_SECS + 4))" "${udp_ports[@]}" <<'PY' &
import select, socket, sys, time
out, secs, ports = sys.argv[1], float(sys.argv[2]), [int(p) for p in sys.argv[3:]]
socks = {}
for p in ports:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", p))
    socks[s] = open(f"{out}/udp-{p}.lines", "w")
open(f"{out}/ready", "w").close()
end = time.monotonic() + secs
while time.monotonic() < end:
    ready, _, _ = select.select(list(socks), [], [], 0.2)
    for s in ready:
        data = s.recv(65535).decode("utf-8", "replace")
        socks[s].write(data.rstrip("\n") + "\n")
for f in socks.values():
    f.close()
PY
receiver=$!
PIDS+=("$receiver")
for _ in $(seq 100); do [[ -e $sd_dir/ready ]] && break; sleep 0.05; done
[[ -e $sd_dir/ready ]] || die "the UDP receiver did not start"
sd_pids=()
answers() { curl -fs -o /dev/null "http://127.0.0.1:$1/metrics"; }
for k in "${!shapes[@]}"; do
  p=${shapes[k]%%:*} shape=${shapes[k]#*:}
  args=(--profile "$p" --task-id "$(task_id $((900 + k)))")
  if [[ $shape != template ]]; then args+=(--containers "$([[ $p == ec2-awsvpc ]] && echo 4 || echo 3)"); fi
  filter=()
  if [[ $shape == lean ]]; then filter=(--metric-denylist "$LEAN"); fi
  start_sim "$SIM" "$sd_dir/sim-$k" "${args[@]}"
  sd_pids+=("$SIM_PID")
  start_on_free_port answers "$sd_dir/exporter-$k.err" env -i "$EXPORTER" --metadata-url "$SIM_URL" \
    --bind-address 127.0.0.1 --exporter-port @PORT@ --interval 1 --use-statsd --statsd-host 127.0.0.1 \
    --statsd-port "${udp_ports[k]}" --log-level warn "${filter[@]}" || die "exporter ($p, $shape) did not start"
  sd_pids+=("$PID")
  SD[$k.port]=$PORT
done
sleep "$STATSD_SECS"
for k in "${!shapes[@]}"; do
  get "http://127.0.0.1:${SD[$k.port]}/metrics" >"$sd_dir/metrics-$k"
done
for p in "${sd_pids[@]}"; do stop "$p"; done
wait "$receiver" 2>/dev/null || true
forget "$receiver"
LEGACY='^ecs_task_(cpu_limit|mem_limit|cpu_usage_ratio|percpu_usage_ratio|cpu_kernelmode|cpu_usermode|cpu_throttle_periods|cpu_throttle_throttled_periods|cpu_throttle_throttled_time|mem_usage|mem_cache|disk_(read|written)_(bytes|iops)_total|network_(rx|tx)_(bytes|packets|errors|dropped)_total)[{ ]'
for k in "${!shapes[@]}"; do
  m=$sd_dir/metrics-$k
  SD[$k.series]=$(grep -cv '^#' "$m")
  SD[$k.legacy]=$(grep -cE "$LEGACY" "$m")
  SD[$k.containers]=$(grep -c '^ecs_container_info{' "$m")
  # A custom metric: the name and every tag (name:value) of a line, its value and type aside.
  SD[$k.custom]=$(python3 -c '
import sys
keys = set()
for line in open(sys.argv[1]):
    name, _, rest = line.strip().partition(":")
    tags = rest.split("|#", 1)[1] if "|#" in rest else ""
    keys.add((name, tuple(sorted(tags.split(",")))))
print(len(keys))' "$sd_dir/udp-${udp_ports[k]}.lines")
  SD[$k.lines]=$(grep -c . "$sd_dir/udp-${udp_ports[k]}.lines" || true)
  SD[$k.tags]=$(head -n1 "$sd_dir/udp-${udp_ports[k]}.lines" | sed 's/^[^#]*#//')
  log "DogStatsD ${shapes[k]}: ${SD[$k.containers]} containers, ${SD[$k.series]} series (${SD[$k.legacy]} of 2.x families), ${SD[$k.custom]} custom metrics from ${SD[$k.lines]} lines"
done

# --- fits ----------------------------------------------------------------------------------------
# fit X... -- Y...: least squares y = a + b x; prints "a b r2".
fit() {
  awk -v xs="$1" -v ys="$2" 'BEGIN {
    n = split(xs, x, " "); split(ys, y, " ")
    for (i = 1; i <= n; i++) {sx += x[i]; sy += y[i]; sxx += x[i] * x[i]; sxy += x[i] * y[i]}
    d = n * sxx - sx * sx
    if (n < 2 || d == 0) {print "nan nan nan"; exit}
    b = (n * sxy - sx * sy) / d; a = (sy - b * sx) / n
    my = sy / n
    for (i = 1; i <= n; i++) {e = y[i] - a - b * x[i]; ss += e * e; st += (y[i] - my) ^ 2}
    printf "%.6g %.6g %s\n", a, b, (st > 0 ? sprintf("%.4f", 1 - ss / st) : "1")
  }'
}
col() { local k=$1 n out=(); for n in "${SIZES[@]}"; do out+=("${R[$n.$k]}"); done; echo "${out[*]}"; }
NS="${SIZES[*]}"
read -r HEAD_A HEAD_B HEAD_R2 <<<"$(fit "$NS" "$(col head)")"
read -r SMP_A SMP_B SMP_R2 <<<"$(fit "$NS" "$(col samples_s)")"
read -r PRSS_A PRSS_B PRSS_R2 <<<"$(fit "$(col head)" "$(col prom_rss)")"
read -r ERSS_A ERSS_B ERSS_R2 <<<"$(fit "$NS" "$(col exp_rss)")"
read -r ECPU_A ECPU_B ECPU_R2 <<<"$(fit "$NS" "$(col exp_cpu)")"
read -r P99_A P99_B P99_R2 <<<"$(fit "$NS" "$(col p99)")"

# --- the report --------------------------------------------------------------------------------
k_of() { # k_of PROFILE SHAPE: the index of that DogStatsD run
  local k
  for k in "${!shapes[@]}"; do
    if [[ ${shapes[k]} == "$1:$2" ]]; then echo "$k"; fi
  done
}
SYNTH=5 # series Prometheus adds per target: up, scrape_duration_seconds, scrape_samples_scraped,
# scrape_samples_post_metric_relabeling, scrape_series_added
# Tasks of 3 containers: the mean over the four profiles (the fleet's mix), and the largest.
over_profiles() { # over_profiles SHAPE FIELD mean|max
  local p
  for p in "${PROFILES[@]}"; do echo "${SD[$(k_of "$p" "$1").$2]}"; done |
    awk -v f="$3" '{s += $1; if ($1 > m) m = $1} END {if (f == "max") print m; else printf "%.1f", s / NR}'
}
S3_MEAN=$(over_profiles 3 series mean) S3_MAX=$(over_profiles 3 series max)
D3_MAX=$(over_profiles 3 custom max)
SL_MAX=$(over_profiles lean series max) DL_MAX=$(over_profiles lean custom max)
kib_size() { awk -v k="$1" 'BEGIN {if (k >= 1048576) printf "%.1f GiB", k / 1048576; else printf "%.0f MiB", k / 1024}'; }

cat <<EOF
## Fleet: N tasks, one exporter each, one Prometheus (tests/bench/fleet.sh)

$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs shared with the simulators, the exporters and
Prometheus $(prometheus --version 2>&1 | awk 'NR == 1 {print $3}') (and other builds: load at the end $(cut -d' ' -f1-3 /proc/loadavg)). Task i
runs the simulator profile fargate, ec2-bridge, managed-instances, ec2-awsvpc in turn, as its
template has it (2 running containers and a stopped one; ec2-awsvpc also the pause container),
with \`--life\` and a task id of its own; its exporter ($BUILD) polls every $SCRAPE s.
Prometheus
finds them in a \`file_sd\` file written as prometheus-ecs-discovery writes it (per task, the
exporter's container and the application's own exporter, both with the docker label) through the
README's job, \`monitoring/discovery/file-sd.yml\` as it is (\`honor_labels: true\`, the
exporter's container kept, the tool's labels dropped), and scrapes every $SCRAPE s. Figures over a
$WINDOW s window after every target was up and two scrapes more. "Series alike across tasks"
counts the series that would be one if \`instance\` were replaced by the task ARN of the target's
\`ecs_task_info\` (a task is its target labels plus its \`ecs_task_info\`): 0 is right.

| N tasks | targets up (dropped) | series per task (fargate / ec2-bridge / managed-instances / ec2-awsvpc) | head series | samples/s | Prometheus RSS | RSS per 1,000 head series | exporters' RSS, summed | exporters' CPU, summed | scrape duration p50 / p99 / max (scrapes) | series alike across tasks |
|---:|---:|---|---:|---:|---:|---:|---:|---:|---|---:|
EOF
for n in "${SIZES[@]}"; do
  echo "| $n | ${R[$n.up]} (${R[$n.dropped]}) | ${R[$n.series.fargate]:--} / ${R[$n.series.ec2-bridge]:--} / ${R[$n.series.managed-instances]:--} / ${R[$n.series.ec2-awsvpc]:--} | $(num "${R[$n.head]}") | $(num "${R[$n.samples_s]}") | $(kib_mib "${R[$n.prom_rss]}" 1) | $(kib_mib "$(calc "${R[$n.prom_rss]} * 1000 / ${R[$n.head]}")" 2) | $(kib_mib "${R[$n.exp_rss]}" 1) ($(kib_mib "$(calc "${R[$n.exp_rss]} / $n")" 2) each) | $(fmt "$(calc "${R[$n.exp_cpu]} * 100")" %.2f)% of a core ($(fmt "$(calc "${R[$n.exp_cpu]} * 1e6 / $n")" %.0f) µs/s each) | ${R[$n.p50]} / ${R[$n.p99]} / ${R[$n.max]} ms (${R[$n.scrapes]}) | ${R[$n.collisions]} |"
done
cat <<EOF

The simulators, for comparison, used $(for n in "${SIZES[@]}"; do printf '%s%% (N=%s) ' "$(fmt "$(calc "${R[$n.sim_cpu]} * 100")" %.2f)" "$n"; done)of
a core, Prometheus $(for n in "${SIZES[@]}"; do printf '%s%% (N=%s) ' "$(fmt "$(calc "${R[$n.prom_cpu]} * 100")" %.1f)" "$n"; done)of a core.
Series per task are \`scrape_samples_scraped\` at the end of the window (the exposition's series;
a range where tasks of a profile differed: \`--life\` restarts a container at 2:00, and in the
poll after, it has no CPU window yet, so its ratios and the task's are left out of that poll,
SPEC §3.1.1). Prometheus adds $SYNTH more per target (\`up\`, \`scrape_*\`), which the head series count. The head series were
$(for n in "${SIZES[@]}"; do printf '%s = %s scraped + %s × %s; ' "$(num "${R[$n.head]}")" "$(num "${R[$n.series_sum]}")" "$n" "$SYNTH"; done | sed 's/; $//').

EOF
if ((${#SIZES[@]} >= 2)) && awk -v b="$PRSS_B" 'BEGIN {exit !(b > 0)}'; then
  cat <<EOF
Least-squares fits over N = ${NS// /, }:

| quantity | fit | R² |
|---|---|---:|
| head series | $(fmt "$HEAD_A" %.0f) + $(fmt "$HEAD_B" %.2f) × N | $HEAD_R2 |
| samples/s (scrape every $SCRAPE s) | $(fmt "$SMP_A" %.1f) + $(fmt "$SMP_B" %.2f) × N | $SMP_R2 |
| Prometheus RSS | $(kib_mib "$PRSS_A" 1) + $(fmt "$PRSS_B" %.2f) KiB × head series | $PRSS_R2 |
| exporters' RSS, summed | $(kib_mib "$ERSS_A" 2) + $(kib_mib "$ERSS_B" 2) × N | $ERSS_R2 |
| exporters' CPU, summed (cores) | $(fmt "$ECPU_A" %.5f) + $(fmt "$ECPU_B" %.6f) × N | $ECPU_R2 |
| scrape duration p99 (ms) | $(fmt "$P99_A" %.2f) + $(fmt "$P99_B" %.4f) × N | $P99_R2 |
EOF
else
  # One size (or sizes too small for Prometheus' RSS to grow): no line to fit. The sizing below
  # takes Prometheus' RSS per series as it was at the largest size (its fixed part included, so an
  # overestimate) and the exporters' RSS and CPU per task.
  PRSS_A=0 PRSS_B=$(calc "${R[$MAX.prom_rss]} / ${R[$MAX.head]}") ERSS_B=$(calc "${R[$MAX.exp_rss]} / $MAX")
  ECPU_B=$(calc "${R[$MAX.exp_cpu]} / $MAX")
  echo
  echo "No fit: one size, or sizes too small (run N = 10, 50 and 100, as \`make bench\` does, for the fits)."
fi
cat <<EOF

Series, samples and the exporters' RSS and CPU grow linearly with the tasks: each task is its own
exporter, so the cost per task does not depend on N. Prometheus' RSS is a fixed part plus a part
per series. The scrape duration is the machine's load (2 cores for everything here), not the
exporter's: a scrape writes bytes rendered at the last poll.

### DogStatsD custom metrics per task

One exporter per profile with \`--use-statsd\` (UDP to a port read here, $STATSD_SECS s at
\`--interval 1\`). A custom metric is a distinct metric name with its tag values (Datadog's
definition); counted from the lines received, it equals the task's series of the 2.x families
(\`ecs_task_exporter_status\` aside), one line per such series, as SPEC §4 says. The lean set is
the README's (Cutting series): \`METRIC_DENYLIST=$LEAN\`.

| profile | containers (\`ecs_container_info\`) | series on \`/metrics\` | of which 2.x families | DogStatsD custom metrics (counted from the lines) |
|---|---:|---:|---:|---:|
EOF
for k in "${!shapes[@]}"; do
  case ${shapes[k]#*:} in
  template) shape="as its template (2 running, 1 stopped)" ;;
  3) shape="3 running" ;;
  lean) shape="3 running, lean set" ;;
  esac
  echo "| ${shapes[k]%%:*}, $shape | ${SD[$k.containers]} | ${SD[$k.series]} | ${SD[$k.legacy]} | ${SD[$k.custom]} |"
done
sample_tags=${SD[$(k_of fargate 3).tags]}
cat <<EOF

Every line carries \`container_name\` (and \`cpu\` or \`interface\` where the family has it) plus
\`ecs_cluster_name\`, \`task_family\` and \`task_version\` (e.g. \`${sample_tags}\`), and no task
id: tasks of one cluster, family and revision with the same container names send the same
combinations. Datadog counts them once, unless a tag that differs per task is added (the
Agent's \`host\` on EC2, one task per host in the worst case). The table below gives that upper
bound (every task its own combinations); a service's tasks on one revision count once.

### Sizing: tasks of 3 containers

Series per task of 3 running containers on \`/metrics\`: $(for p in "${PROFILES[@]}"; do printf '%s %s, ' "$p" "${SD[$(k_of "$p" 3).series]}"; done | sed 's/, $//')
(mean $S3_MEAN); with the lean set $(for p in "${PROFILES[@]}"; do printf '%s, ' "${SD[$(k_of "$p" lean).series]}"; done | sed 's/, $//'). Prometheus adds $SYNTH per
target. The table takes the largest profile: $((S3_MAX + SYNTH)) series per task at Prometheus ($((SL_MAX + SYNTH)) with the lean
set) and $D3_MAX DogStatsD custom metrics per task ($DL_MAX). (The templates' tasks above, 2 running
containers and a stopped one, have fewer: a stopped container has its metadata families only.)
Samples per day = series × 86,400 s ÷ the scrape (or push) interval. The Prometheus RSS column
extrapolates the fit above ($(fmt "$PRSS_B" %.2f) KiB per head series + $(kib_mib "$PRSS_A" 0)), measured up to
$(num "${R[$MAX.head]}") series: a guide for one Prometheus, not a measurement. The exporters' CPU
was $(fmt "$(calc "$ECPU_B * 1e6")" %.0f) µs per second each at a poll and a scrape every $SCRAPE s, about $(fmt "$(calc "$ECPU_B * $SCRAPE * 1000")" %.1f) ms per poll and
scrape: $(fmt "$(calc "$ECPU_B * $SCRAPE * 1e6 / 15")" %.0f) µs/s at 15 s, $(fmt "$(calc "$ECPU_B * $SCRAPE * 1e6 / 60")" %.0f) µs/s at 60 s.

| tasks | families | series at Prometheus | samples/day, 15 s | samples/day, 60 s | samples/s, 15 s | DogStatsD custom metrics (at most) | Prometheus RSS (extrapolated) | exporters' RSS, summed ($(kib_mib "$ERSS_B" 2) each) |
|---:|---|---:|---:|---:|---:|---:|---:|---:|
EOF
for t in 100 1000 10000; do
  for set in every lean; do
    if [[ $set == every ]]; then per=$((S3_MAX + SYNTH)) dd=$D3_MAX label="every family"; else per=$((SL_MAX + SYNTH)) dd=$DL_MAX label="lean set"; fi
    series=$((t * per))
    echo "| $(num $t) | $label | $(num $series) | $(num "$(calc "$series * 5760")") | $(num "$(calc "$series * 1440")") | $(num "$(calc "$series / 15")") | $(num $((t * dd))) | $(kib_size "$(calc "$PRSS_A + $PRSS_B * $series")") | $(kib_size "$(calc "$ERSS_B * $t")") |"
  done
done
cat <<EOF

Commands: \`make fleet N=10\` (one size, this section on stdout; \`FLEET_KEEP=600\` keeps the
fleet up 10 minutes more), \`bash tests/bench/fleet.sh ${NS}\` (this run: FLEET_STATIC=${FLEET_STATIC:-0} FLEET_SCRAPE=$SCRAPE FLEET_SECS=$WINDOW).
EOF

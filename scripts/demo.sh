#!/usr/bin/env bash
# The demo (make demo, make demo-prometheus): a simulated ECS task that lives on its own
# (ecs-task-sim --life), the exporter polling it, and with --prometheus a Prometheus on
# 127.0.0.1 that scrapes the exporter with the rules of monitoring/ loaded.
#
# - Before anything starts: the ports it needs must be free on 127.0.0.1 (one line and exit 1
#   if not), and with --prometheus the `prometheus` binary must be installed (likewise).
# - Everything it starts is a child of this script, remembered by PID. On any exit (Ctrl-C,
#   SIGTERM, SIGHUP, one of them dying) it stops them all (SIGTERM, then SIGKILL after 5 s),
#   waits for them and removes its temp dir (Prometheus' storage), so a second run works.
#
# Settings (environment; the Makefile passes its variables): PROFILE (fargate), INTERVAL (10),
# PORT (9545, the exporter), SIM_PORT (51678), PROM_PORT (19090), CARGO (cargo).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

PROFILE=${PROFILE:-fargate}
INTERVAL=${INTERVAL:-10}
PORT=${PORT:-9545}
SIM_PORT=${SIM_PORT:-51678}
PROM_PORT=${PROM_PORT:-19090}
CARGO=${CARGO:-cargo}
with_prometheus=0
case "${1:-}" in
  "") ;;
  --prometheus) with_prometheus=1 ;;
  *) echo "usage: $0 [--prometheus]" >&2; exit 2 ;;
esac

die() { echo "demo: $*" >&2; exit 1; }

# Something accepts connections on 127.0.0.1:$1 (a listener on 0.0.0.0 or :: counts too).
in_use() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# http_status <port> <path>: the status code of a GET on 127.0.0.1 (no curl needed).
# shellcheck disable=SC2016 # the inner script reads its arguments, $0 and $1
http_status() {
  timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"
    printf "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" "$1" >&3
    read -r _ code _ <&3 && echo "$code"' "$1" "$2" 2>/dev/null
}

# --- Before anything starts ---------------------------------------------------------------
if ((with_prometheus)) && ! command -v prometheus >/dev/null 2>&1; then
  die "prometheus is not installed (Debian: apt-get install prometheus); 'make demo' runs without it"
fi
checks=("SIM_PORT $SIM_PORT the simulator" "PORT $PORT the exporter")
((with_prometheus)) && checks+=("PROM_PORT $PROM_PORT Prometheus")
seen=" "
for check in "${checks[@]}"; do
  read -r var port what <<<"$check"
  if ! [[ "$port" =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
    die "$var=$port is not a port number"
  fi
  [[ "$seen" == *" $port "* ]] && die "$var=$port: two of SIM_PORT, PORT, PROM_PORT are the same port"
  seen+="$port "
  if in_use "$port"; then
    die "port $port ($var, for $what) is in use on 127.0.0.1: stop what listens there (an earlier demo?) or run with $var=<another port>"
  fi
done

$CARGO build --release --bins || exit 1
bin=${CARGO_TARGET_DIR:-target}/release

# --- Start, and stop everything on the way out ---------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ecs-exporter-demo.XXXXXX") || die "cannot create a temp dir"
pids=()
names=()
cleanup() {
  local code=$?
  trap '' INT TERM HUP
  if ((${#pids[@]})); then
    kill -TERM "${pids[@]}" 2>/dev/null
    for _ in $(seq 50); do
      kill -0 "${pids[@]}" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "${pids[@]}" 2>/dev/null
    wait "${pids[@]}" 2>/dev/null
    echo "demo: stopped ${names[*]}" >&2
  fi
  rm -rf "$tmp"
  exit "$code"
}
trap cleanup EXIT
trap 'exit 0' INT  # Ctrl-C is how the demo ends: not an error
trap 'exit 143' TERM
trap 'exit 129' HUP

# started <name> <pid>: remember a child.
started() { names+=("$1"); pids+=("$2"); }

# wait_until <what> <pid> <command...>: until the command succeeds (10 s), while <pid> lives;
# else says why and returns 1.
wait_until() {
  local what=$1 pid=$2
  shift 2
  for _ in $(seq 100); do
    "$@" && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "demo: $what exited at start" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "demo: $what did not start within 10 s" >&2
  return 1
}

"$bin/ecs-task-sim" --listen "127.0.0.1:$SIM_PORT" --profile "$PROFILE" --life >"$tmp/sim.out" &
started ecs-task-sim $!
wait_until ecs-task-sim $! grep -q '^listening on' "$tmp/sim.out" || exit 1

"$bin/ecs-container-exporter" --metadata-url "http://127.0.0.1:$SIM_PORT" \
  --bind-address 127.0.0.1 --exporter-port "$PORT" --interval "$INTERVAL" &
started ecs-container-exporter $!
wait_until ecs-container-exporter $! in_use "$PORT" || exit 1

if ((with_prometheus)); then
  rules=""
  for f in "$PWD"/monitoring/*.yml; do rules+="  - $f"$'\n'; done
  cat >"$tmp/prometheus.yml" <<EOF
global:
  scrape_interval: 5s
  scrape_timeout: 5s
  evaluation_interval: 5s
rule_files:
$rules
scrape_configs:
  - job_name: ecs-container-exporter
    honor_labels: true
    static_configs:
      - targets: ['127.0.0.1:$PORT']
EOF
  prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/data" \
    --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn >"$tmp/prometheus.log" 2>&1 &
  started prometheus $!
  wait_until prometheus $! in_use "$PROM_PORT" || { tail -n 5 "$tmp/prometheus.log" >&2; exit 1; }
fi

echo
echo "  simulated ECS task ($PROFILE, --life) at http://127.0.0.1:$SIM_PORT/task"
echo "    controls: http://127.0.0.1:$SIM_PORT/control/state (README: the simulator)"
echo "  exporter polling every ${INTERVAL}s:  curl localhost:$PORT/metrics"
if ((with_prometheus)); then
  # Debian's package serves only the classic UI, under /classic/; upstream's at the root.
  ui=""
  [[ "$(http_status "$PROM_PORT" /classic/alerts)" == 200 ]] && ui=/classic
  url="http://127.0.0.1:$PROM_PORT$ui"
  echo "  Prometheus with monitoring/'s rules:"
  echo "    graph:  $url/graph?g0.expr=task%3Aecs_container_cpu_usage_seconds%3Arate5m&g0.tab=0&g0.range_input=15m"
  echo "    alerts: $url/alerts"
fi
echo "  --life: a container turns unhealthy at 1:00 for 3 minutes, every 5; another restarts at 2:00, then every 6"
echo "  (numbers that need two samples appear after the first interval; Ctrl-C stops everything)"
echo

# Until Ctrl-C, or until one of them exits on its own.
wait -n "${pids[@]}"
status=$?
for i in "${!pids[@]}"; do
  kill -0 "${pids[$i]}" 2>/dev/null || die "${names[$i]} exited (status $status); stopping the rest"
done

# shellcheck shell=bash
# What the benchmark scripts of tests/bench (run.sh, server.sh, tiny_http.sh, soak.sh, budgets.sh,
# push.sh) share. Each sources it once it is at the repository root:
#
#   . tests/bench/lib.sh
#   log_as server            # progress lines "server: ..." on stderr
#
# Sourcing it installs the exit trap: every process listed in PIDS (each script's own, by PID
# only) is killed and waited for, `cleanup_more` runs if the script defines it, and the directory
# of `temp_work` is removed; Ctrl-C and SIGTERM exit through it (status 130). Everything else is
# functions. Every wait in them is bounded.

PIDS=()
_log_tag=bench
_log_file=
_temp_work=

# log_as TAG [FILE]: progress lines are "TAG: ..." on stderr, and appended to FILE when given.
log_as() {
  _log_tag=$1
  _log_file=${2:-}
}
log() {
  if [[ -n $_log_file ]]; then
    echo "$_log_tag: $*" | tee -a "$_log_file" >&2
  else
    echo "$_log_tag: $*" >&2
  fi
}
die() {
  log "FAILED: $*"
  exit 1
}

# need_tools [--hint TEXT] TOOL...: dies on the first TOOL not on PATH ("TOOL not found (TEXT)").
need_tools() {
  local hint='' tool
  if [[ $1 == --hint ]]; then
    hint=" ($2)"
    shift 2
  fi
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found$hint"
  done
}

# --- processes ---------------------------------------------------------------------------------
cleanup() {
  local p
  for p in "${PIDS[@]}"; do
    kill "$p" 2>/dev/null || true
  done
  for p in "${PIDS[@]}"; do
    wait "$p" 2>/dev/null || true
  done
  if declare -F cleanup_more >/dev/null; then cleanup_more; fi
  [[ -z $_temp_work ]] || rm -rf "$_temp_work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# temp_work: sets `work` to a new temporary directory, removed on exit.
temp_work() {
  work=$(mktemp -d)
  _temp_work=$work
}

# forget PID: PID is no longer to be killed on exit (it has been waited for), so that a later
# process given the same PID is not.
forget() {
  local p keep=()
  for p in "${PIDS[@]}"; do
    [[ $p == "$1" ]] || keep+=("$p")
  done
  PIDS=("${keep[@]}")
}

stop() { # stop PID: kill one process we started, wait for it, forget it
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  forget "$1"
}

# raise_nofile N: the soft RLIMIT_NOFILE at least N, for this shell and what it starts afterwards
# (dies when the hard limit is lower).
raise_nofile() {
  local hard
  (($(ulimit -n) >= $1)) && return 0
  hard=$(ulimit -Hn)
  [[ $hard == unlimited ]] || ((hard >= $1)) || die "ulimit -Hn is $hard; $1 descriptors are needed"
  ulimit -n "$1"
}

# --- servers on loopback -----------------------------------------------------------------------
free_port() { # a loopback port free at this moment (another process may still take it first)
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
    echo $((20000 + RANDOM % 30000))
}

# listening_url FILE: the URL of the line "listening on URL" that ecs-task-sim (and the tiny_http
# probe of tiny_http.sh) print once bound; waits up to 10 s for it, fails if none came.
listening_url() {
  local url=''
  for _ in $(seq 200); do
    url=$(sed -n 's/^listening on //p' "$1" 2>/dev/null | head -n1 || true)
    [[ -n $url ]] && break
    sleep 0.05
  done
  [[ -n $url ]] && echo "$url"
}

# start_sim BINARY PREFIX ARGS...: ecs-task-sim (BINARY) on a free loopback port, stdout in
# PREFIX.out, stderr (its request log with -v) in PREFIX.err; sets SIM_PID and SIM_URL.
start_sim() {
  local bin=$1 prefix=$2
  shift 2
  rm -f "$prefix.out" "$prefix.err" # (the redirections below happen in the child: no stale URL)
  "$bin" --listen 127.0.0.1:0 "$@" >"$prefix.out" 2>"$prefix.err" &
  SIM_PID=$!
  PIDS+=("$SIM_PID")
  # shellcheck disable=SC2034 # for the sourcing script
  SIM_URL=$(listening_url "$prefix.out") || die "the simulator did not start: $(cat "$prefix.err")"
}

# start_on_free_port READY ERRFILE COMMAND...: starts COMMAND in the background (stdout to
# /dev/null, stderr to ERRFILE) with every @PORT@ in its words replaced by a free loopback port,
# and waits up to 5 s until `READY PORT` succeeds while it runs; then 0.3 s later both must still
# hold (had another process taken the port first, COMMAND exits and the answer was not its).
# Up to 5 ports are tried. Sets PID and PORT; fails if none served.
start_on_free_port() {
  local ready=$1 err=$2
  shift 2
  for _ in 1 2 3 4 5; do
    PORT=$(free_port)
    "${@//@PORT@/$PORT}" >/dev/null 2>"$err" &
    PID=$!
    PIDS+=("$PID")
    for _ in $(seq 200); do
      kill -0 "$PID" 2>/dev/null || break
      "$ready" "$PORT" 2>/dev/null && break
      sleep 0.025
    done
    sleep 0.3
    if kill -0 "$PID" 2>/dev/null && "$ready" "$PORT" 2>/dev/null; then
      return 0
    fi
    stop "$PID"
  done
  return 1
}

# python_private_tmp VENV: how to run the Python original (ecs-container-exporter 2.3.0). It writes
# /tmp/ecs-container-exporter.cache and reads it back on its next start (skipping its 5 s wait
# and reusing another task's containers), so it gets a private /tmp where possible and every
# start is a cold start like a new ECS task's; else that file is removed now. Sets PY_EXEC (a
# command prefix) and PY_ISOLATION (which of the two).
python_private_tmp() {
  # shellcheck disable=SC2034 # PY_ISOLATION and PY_EXEC are for the sourcing script
  if [[ $(realpath "$1") != /tmp/* ]] && unshare --mount sh -c 'mount -t tmpfs bench /tmp' 2>/dev/null; then
    PY_ISOLATION="private /tmp (unshare --mount + tmpfs)"
    # shellcheck disable=SC2016 # the inner shell expands $0 and $@
    PY_EXEC=(unshare --mount sh -c 'mount -t tmpfs bench /tmp && exec "$0" "$@"')
  else
    PY_ISOLATION="shared /tmp; its cache file removed before the start"
    PY_EXEC=()
    rm -f /tmp/ecs-container-exporter.cache
  fi
}

# --- /proc readers -----------------------------------------------------------------------------
cpu_ticks() { # utime + stime of a process (all its threads, dead ones included), in ticks
  sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'
}
# thread_ns PID NAME: CPU ns of PID's thread named NAME (schedstat, ns resolution); 0 if none.
thread_ns() {
  local t
  for t in /proc/"$1"/task/*; do
    if [[ $(cat "$t/comm" 2>/dev/null) == "$2" ]]; then
      awk '{print $1}' "$t/schedstat"
      return 0
    fi
  done
  echo 0
}
# threads_ns PID: CPU ns of all PID's live threads (schedstat; exited threads are not counted).
threads_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%d\n", s}'; }
stime_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $13}'; }
status_field() { awk -v f="$2:" '$1 == f {print $2; exit}' "/proc/$1/status"; } # PID FIELD
rss_kib() { status_field "$1" VmRSS; }
hwm_kib() { status_field "$1" VmHWM; }
anon_kib() { status_field "$1" RssAnon; }

# kv FILE KEY: the value of KEY in a line of key=value pairs (server_client.py's output).
kv() { tr ' ' '\n' <"$1" | sed -n "s/^$2=//p" | head -n1; }

# --- wrk ---------------------------------------------------------------------------------------
# wrk_load PORT SECS FILE: `wrk -t2 -c16 -dSECS --latency` against PORT's /metrics (bounded by
# `timeout`), its report in FILE; dies if wrk fails.
wrk_load() {
  timeout $(($2 + 20)) wrk -t2 -c16 -d"$2s" --latency "http://127.0.0.1:$1/metrics" >"$3" 2>&1 ||
    die "wrk failed: $(cat "$3")"
}
# wrk_stat FILE rps|requests|p50|p99|errors: a figure of that report (latencies as wrk prints
# them, e.g. 456.00us; errors: its Non-2xx and Socket errors lines, joined by ;).
wrk_stat() {
  case $2 in
  rps) awk '/^Requests\/sec:/ {print $2}' "$1" ;;
  requests) awk '/requests in/ {print $1}' "$1" ;;
  p50) awk '$1 == "50%" {print $2}' "$1" ;;
  p99) awk '$1 == "99%" {print $2}' "$1" ;;
  errors) grep -E 'Non-2xx|Socket errors' "$1" | tr -s ' ' | paste -sd ';' || true ;;
  esac
}
to_ms() { # wrk's 1.23ms / 456.00us / 1.2s -> ms
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) {sub(/us$/, "", v); printf "%.3f", v / 1000}
    else if (v ~ /ms$/) {sub(/ms$/, "", v); printf "%.3f", v}
    else if (v ~ /s$/) {sub(/s$/, "", v); printf "%.3f", v * 1000}
    else printf "nan"}'
}

# --- numbers -----------------------------------------------------------------------------------
calc() { awk "BEGIN {print $*}"; }
fmt() { awk -v v="$1" -v f="$2" 'BEGIN {printf f, v}'; }
num() { # 12345 -> 12,345 (%.0f: mawk's %d stops at 2^31 - 1)
  awk -v n="$1" 'BEGIN {s = sprintf("%.0f", n); t = ""; while (length(s) > 3) {t = "," substr(s, length(s) - 2) t; s = substr(s, 1, length(s) - 3)}; print s t}'
}
kib_mib() { # kib_mib KIB [DECIMALS]: 2048 -> 2.00 MiB (2 decimals unless DECIMALS)
  awk -v k="$1" -v d="${2:-2}" 'BEGIN {printf "%." d "f MiB", k / 1024}'
}
verdict() { if awk "BEGIN {exit !($1)}"; then echo "met"; else echo "**missed**"; fi; }

#!/usr/bin/env bash
# The HTTP server (src/serve/http.rs: one event-loop thread) measured side by side with the
# previous server (a thread per connection: the parent of the commit "serve: one event-loop
# thread ..."), both as shipped (static musl, `dist` profile), and with the Python original
# (ecs-container-exporter 2.3.0) for the CPU of a new-connection scrape. Prints a markdown
# section with the targets of issue #13 and their verdicts on stdout (builds and progress go to
# stderr); `make bench` (tests/bench/run.sh) puts it into BENCHMARKS.md.
#
#   bash tests/bench/server.sh        (from the repository root)
#
#   1. CPU per new-connection scrape: ROUNDS rounds of 1,000 sequential GET /metrics, each on a
#      new connection with `Connection: close` (tests/bench/server_client.py: plain sockets), the
#      two servers taking turns round by round; the exporter's utime+stime from /proc/<pid>/stat.
#      The same with a curl URL glob as the client, as a cross-check. The Python original: 1,000
#      scrapes with the same client (it closes every connection anyway).
#   2. System calls per new-connection scrape: `strace -c -f` attached to each exporter over
#      STRACE_SCRAPES scrapes.
#   3. Keep-alive throughput: `wrk -t2 -c16 --latency`, the servers taking turns.
#   4. IDLE idle connections held: Threads, VmRSS, and a new client's /metrics latency.
#   5. A flood of FLOOD connections with the exporter under `prlimit --nofile=64:64`: Threads and
#      VmRSS in it, then every scrape answered after it is released?
#
# The previous server is built once from `git archive <commit>` (a temporary directory, removed)
# with CARGO_TARGET_DIR=target/bench/prev-server/target, and reused while its commit is the same.
# The Python original is measured when target/bench/venv has it (run.sh installs it there).
# Every exporter polls one simulated Fargate task (ecs-task-sim, CONTAINERS containers,
# --refresh-secs 0) with --interval 600: after its first poll no poll runs during the
# measurements, so its CPU is the server's alone.
#
# Needs: cargo with the x86_64-unknown-linux-musl target, git, python3, curl, wrk, strace,
# prlimit. Loopback only; every wait is bounded; every process started here is killed by its PID
# on exit. Knobs (environment): SERVER_ROUNDS (10) rounds of SERVER_SCRAPES (1000) scrapes;
# SERVER_CURL_ROUNDS (5); SERVER_STRACE_SCRAPES (500); SERVER_WRK_SECS (10), SERVER_WRK_ROUNDS (2);
# SERVER_IDLE (500) idle connections, SERVER_LATENCY_SCRAPES (200) scrapes while they are held;
# SERVER_FLOOD (200) connections at SERVER_NOFILE (64), SERVER_AFTER (20) scrapes after it;
# SERVER_CONTAINERS (10); SERVER_PREVIOUS=0 skips the previous server, SERVER_PYTHON=0 the
# Python original; SERVER_RESULTS=FILE also writes the target figures as key=value lines.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
T=${CARGO_TARGET_DIR:-$ROOT/target}
AMD64=x86_64-unknown-linux-musl
CONTAINERS=${SERVER_CONTAINERS:-10}
ROUNDS=${SERVER_ROUNDS:-10}
PER_ROUND=${SERVER_SCRAPES:-1000}
CURL_ROUNDS=${SERVER_CURL_ROUNDS:-5}
STRACE_SCRAPES=${SERVER_STRACE_SCRAPES:-500}
WRK_SECS=${SERVER_WRK_SECS:-10}
WRK_ROUNDS=${SERVER_WRK_ROUNDS:-2}
IDLE=${SERVER_IDLE:-500}
LAT_N=${SERVER_LATENCY_SCRAPES:-200}
FLOOD=${SERVER_FLOOD:-200}
NOFILE=${SERVER_NOFILE:-64}
AFTER=${SERVER_AFTER:-20}
DURING=5
VENV=${BENCH_WORK:-$ROOT/target/bench}/venv
HZ=$(getconf CLK_TCK)
CLIENT=$ROOT/tests/bench/server_client.py
# The targets (issue #13).
T_CPU_US=60
T_PY_RATIO=90
T_THREADS=3
T_RSS_DELTA_KIB=1024
T_RSS_KIB=1126.4 # 1.1 MiB
T_BINARY=1048576
T_LAT_MS=1

# Logging, tool checks, the exit trap (every PID in PIDS killed on exit, $work removed), free
# ports, the simulator, /proc readers, wrk and number helpers: shared with the other scripts.
# shellcheck source=lib.sh
. "$ROOT/tests/bench/lib.sh"
log_as server
need_tools cargo python3 curl wrk strace prlimit
temp_work

# The client holds IDLE sockets at once, more than a common soft limit of 1024 allows for large
# IDLE; the exporters inherit this limit (their own cap is 1,024 connections).
raise_nofile $((IDLE + 256))

# --- builds ------------------------------------------------------------------------------------
log "building the shipped binary (make static) and the simulator (cargo build --release --bins)"
make -s static >&2 || die "make static failed"
cargo build -q --release --bins >&2 || die "cargo build --release failed"
OURS=$T/$AMD64/dist/ecs-container-exporter
SIM=$T/release/ecs-task-sim

# The previous server: the parent of the commit that brought in the event loop.
PREV=
PREV_NOTE=
if [[ ${SERVER_PREVIOUS:-1} != 0 ]]; then
  rewrite=$(git log --format=%H -n1 --grep='^serve: one event-loop thread' HEAD 2>/dev/null || true)
  if [[ -z $rewrite ]]; then
    PREV_NOTE="no commit \"serve: one event-loop thread ...\" in this checkout's history"
  else
    PREV_COMMIT=$(git rev-parse "$rewrite^")
    PREV_SHORT=$(git rev-parse --short "$PREV_COMMIT")
    REWRITE_SHORT=$(git rev-parse --short "$rewrite")
    prev_dir=$T/bench/prev-server
    PREV=$prev_dir/target/$AMD64/dist/ecs-container-exporter
    if [[ -x $PREV && $(cat "$prev_dir/commit" 2>/dev/null) == "$PREV_COMMIT" ]]; then
      log "previous server: $PREV_SHORT, cached in $prev_dir"
    else
      log "previous server: building $PREV_SHORT (parent of $REWRITE_SHORT) into $prev_dir"
      mkdir -p "$work/prev-src" "$prev_dir"
      git archive "$PREV_COMMIT" | tar -x -C "$work/prev-src"
      if (
        cd "$work/prev-src"
        export CARGO_TARGET_DIR=$prev_dir/target
        cargo build -q --profile dist --target "$AMD64" --bin ecs-container-exporter --offline 2>/dev/null ||
          cargo build -q --profile dist --target "$AMD64" --bin ecs-container-exporter >&2
      ); then
        echo "$PREV_COMMIT" >"$prev_dir/commit"
      else
        PREV=
        PREV_NOTE="the build of $PREV_SHORT failed"
      fi
      rm -rf "$work/prev-src"
    fi
  fi
else
  PREV_NOTE="skipped (SERVER_PREVIOUS=0)"
fi
KEYS=(ours)
[[ -n $PREV ]] && KEYS+=(prev)

# --- helpers -----------------------------------------------------------------------------------
# full PORT: one scrape has the CPU ratio of every container and of the task.
full() {
  local body
  body=$(curl -s -m 2 "http://127.0.0.1:$1/metrics" 2>/dev/null) || return 1
  grep -q '^ecs_task_cpu_usage_ratio{container_name="_task_"}' <<<"$body" &&
    (($(grep -c '^ecs_task_cpu_usage_ratio{' <<<"$body") >= CONTAINERS + 1))
}

# start_exporter KEY BINARY [NOFILE]: on a free port (retried if another process takes it
# first), under `prlimit --nofile=N:N` when NOFILE is given; waits for a full scrape. Sets
# E_PID[KEY] and E_PORT[KEY].
declare -A E_PID E_PORT
start_exporter() {
  local key=$1 bin=$2 prefix=()
  [[ -z ${3:-} ]] || prefix=(prlimit "--nofile=$3:$3")
  start_on_free_port full "$work/$key.err" "${prefix[@]}" "$bin" --metadata-url "$SIM_URL" \
    --bind-address 127.0.0.1 --exporter-port @PORT@ --interval 600 ||
    die "$key ($bin) did not serve full metrics: $(tail -n3 "$work/$key.err")"
  E_PID[$key]=$PID E_PORT[$key]=$PORT
}

# newconn PORT N: N new-connection scrapes; prints "answered median_ms p99_ms"; fails unless all
# were answered.
newconn() {
  local out
  out=$(python3 "$CLIENT" scrapes "$1" "$2" 2>>"$work/client.err") || return 1
  [[ ${out%% *} == "$2" ]] || {
    log "only ${out%% *} of $2 scrapes of port $1 answered: $(tail -n1 "$work/client.err")"
    return 1
  }
  echo "$out"
}

# --- the servers -------------------------------------------------------------------------------
start_sim "$SIM" "$work/sim" --profile fargate --containers "$CONTAINERS" --refresh-secs 0
log "simulator $SIM_URL (fargate, $CONTAINERS containers); load $(cut -d' ' -f1-3 /proc/loadavg)"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

start_exporter ours "$OURS"
[[ -z $PREV ]] || start_exporter prev "$PREV"
BODY_BYTES=$(curl -s "http://127.0.0.1:${E_PORT[ours]}/metrics" | wc -c)

# The kernel's part: a blocking C server (accept, read, write, close; nothing else) answering the
# same bytes as ours, measured in the same rounds. What a new-connection scrape costs at least.
FLOOR_PID='' FLOOR_PORT=''
if command -v gcc >/dev/null 2>&1; then
  curl -s -D "$work/floor.head" -o "$work/floor.body" "http://127.0.0.1:${E_PORT[ours]}/metrics"
  cat >"$work/floor.c" <<'C'
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
int main(int argc, char **argv) {
  FILE *f = fopen(argv[2], "rb"); static char body[1 << 24]; size_t n = fread(body, 1, sizeof body, f);
  char *answer = malloc(n + 256);
  int h = sprintf(answer, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                          "Content-Length: %zu\r\nConnection: close\r\n\r\n", n);
  for (size_t i = 0; i < n; i++) answer[h + i] = body[i];
  int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET; a.sin_port = htons(atoi(argv[1])); a.sin_addr.s_addr = htonl(0x7f000001);
  if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 128)) return 1;
  char request[8192];
  for (;;) {
    int c = accept(l, 0, 0);
    if (c < 0) continue;
    if (read(c, request, sizeof request) > 0 && write(c, answer, h + n) < 0) {}
    close(c);
  }
}
C
  if gcc -O2 -o "$work/floor" "$work/floor.c" 2>"$work/floor.err"; then
    FLOOR_PORT=$(free_port)
    "$work/floor" "$FLOOR_PORT" "$work/floor.body" &
    FLOOR_PID=$!
    PIDS+=("$FLOOR_PID")
    sleep 0.2
  else
    log "the C floor server did not build: $(tail -n1 "$work/floor.err")"
  fi
fi

# --- 1. CPU per new-connection scrape ----------------------------------------------------------
PY_US='' PY_P50='' PY_NOTE=''
if [[ ${SERVER_PYTHON:-1} == 0 ]]; then
  PY_NOTE="skipped (SERVER_PYTHON=0)"
elif ! "$VENV/bin/python" -c 'import ecs_container_exporter' 2>/dev/null; then
  PY_NOTE="not installed in $VENV (\`make bench\` installs it)"
else
  PY_VERSION=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("ecs-container-exporter"))')
  # As in run.sh: a private /tmp, so its task cache from another run is not reused.
  python_private_tmp "$VENV"
  port=$(free_port)
  log "Python original $PY_VERSION: start (it sleeps 5 s before its first request), then $PER_ROUND scrapes"
  ECS_CONTAINER_METADATA_URI=$SIM_URL "${PY_EXEC[@]}" "$VENV/bin/python" -m ecs_container_exporter.main \
    --exporter-port "$port" --interval 0 >/dev/null 2>"$work/python.err" &
  py_pid=$!
  PIDS+=("$py_pid")
  for _ in $(seq 600); do
    kill -0 "$py_pid" 2>/dev/null || break
    full "$port" && break
    sleep 0.05
  done
  full "$port" || die "the Python original never served full metrics: $(tail -n3 "$work/python.err")"
  c0=$(cpu_ticks "$py_pid")
  read -r _ PY_P50 _ < <(newconn "$port" "$PER_ROUND") || die "Python original: scrapes failed"
  c1=$(cpu_ticks "$py_pid")
  PY_US=$(calc "($c1 - $c0) / $HZ * 1e6 / $PER_ROUND")
  stop "$py_pid"
  log "Python original: $(fmt "$PY_US" '%.0f') us CPU per scrape"
fi

declare -A CPU_TICKS SYS_TICKS CURL_TICKS RSS1K P50S
for k in "${KEYS[@]}"; do CPU_TICKS[$k]=0 SYS_TICKS[$k]=0 CURL_TICKS[$k]=0 P50S[$k]=''; done
order() { # order ROUND: the keys, the first one alternating round by round
  if ((${#KEYS[@]} == 2 && $1 % 2 == 0)); then echo "${KEYS[1]} ${KEYS[0]}"; else echo "${KEYS[*]}"; fi
}
log "CPU per new-connection scrape: $ROUNDS rounds of $PER_ROUND scrapes per server, taking turns"
for r in $(seq "$ROUNDS"); do
  for k in $(order "$r"); do
    pid=${E_PID[$k]}
    c0=$(cpu_ticks "$pid") s0=$(stime_ticks "$pid")
    read -r _ p50 _ < <(newconn "${E_PORT[$k]}" "$PER_ROUND") || die "$k: scrapes failed"
    c1=$(cpu_ticks "$pid") s1=$(stime_ticks "$pid")
    CPU_TICKS[$k]=$((CPU_TICKS[$k] + c1 - c0))
    SYS_TICKS[$k]=$((SYS_TICKS[$k] + s1 - s0))
    P50S[$k]+="$p50 "
    ((r > 1)) || RSS1K[$k]=$(status_field "$pid" VmRSS)
  done
  if [[ -n $FLOOR_PID ]]; then
    c0=$(cpu_ticks "$FLOOR_PID")
    newconn "$FLOOR_PORT" "$PER_ROUND" >/dev/null || die "the C floor server: scrapes failed"
    FLOOR_TICKS=$((${FLOOR_TICKS:-0} + $(cpu_ticks "$FLOOR_PID") - c0))
  fi
done
FLOOR_US=''
[[ -z $FLOOR_PID ]] || FLOOR_US=$(calc "$FLOOR_TICKS / $HZ * 1e6 / ($ROUNDS * $PER_ROUND)")
declare -A CPU_US SYS_US LAT_P50
for k in "${KEYS[@]}"; do
  CPU_US[$k]=$(calc "${CPU_TICKS[$k]} / $HZ * 1e6 / ($ROUNDS * $PER_ROUND)")
  SYS_US[$k]=$(calc "${SYS_TICKS[$k]} / $HZ * 1e6 / ($ROUNDS * $PER_ROUND)")
  LAT_P50[$k]=$(tr ' ' '\n' <<<"${P50S[$k]}" | grep . | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
  log "$k: $(fmt "${CPU_US[$k]}" '%.1f') us CPU per new-connection scrape"
done

log "cross-check: $CURL_ROUNDS rounds of $PER_ROUND scrapes per server with a curl URL glob"
for r in $(seq "$CURL_ROUNDS"); do
  for k in $(order "$r"); do
    pid=${E_PID[$k]}
    c0=$(cpu_ticks "$pid")
    curl -s -m 600 -o /dev/null -H 'Connection: close' -w '%{http_code}\n' \
      "http://127.0.0.1:${E_PORT[$k]}/metrics?i=[1-$PER_ROUND]" >"$work/curl.codes" 2>/dev/null || true
    c1=$(cpu_ticks "$pid")
    (($(grep -c '^200$' "$work/curl.codes") == PER_ROUND)) || die "$k: curl glob scrapes failed"
    CURL_TICKS[$k]=$((CURL_TICKS[$k] + c1 - c0))
  done
done
declare -A CURL_US
for k in "${KEYS[@]}"; do CURL_US[$k]=$(calc "${CURL_TICKS[$k]} / $HZ * 1e6 / ($CURL_ROUNDS * $PER_ROUND)"); done

# --- 2. system calls per new-connection scrape ------------------------------------------------
declare -A SYS_TOTAL SYS_LIST SYS_THREAD
THREAD_CALLS="clone clone3 mmap munmap mprotect sigaltstack rt_sigprocmask set_robust_list futex madvise exit"
for k in "${KEYS[@]}"; do
  log "$k: strace -c -f over $STRACE_SCRAPES new-connection scrapes"
  strace -c -f -p "${E_PID[$k]}" -o "$work/strace-$k.txt" 2>"$work/strace-$k.err" &
  spid=$!
  PIDS+=("$spid")
  for _ in $(seq 100); do
    grep -q 'attached' "$work/strace-$k.err" 2>/dev/null && break
    sleep 0.05
  done
  sleep 0.3
  newconn "${E_PORT[$k]}" "$STRACE_SCRAPES" >/dev/null || die "$k: scrapes under strace failed"
  sleep 0.3
  kill -INT "$spid" 2>/dev/null || true
  wait "$spid" 2>/dev/null || true
  forget "$spid"
  # strace -c rows: % time, seconds, usecs/call, calls, [errors,] syscall
  awk -v n="$STRACE_SCRAPES" '$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" {
      err = (NF == 6 ? $5 : 0); printf "%s %.2f %.2f\n", $NF, $4 / n, err / n}' \
    "$work/strace-$k.txt" | sort -k2,2gr >"$work/sys-$k"
  [[ -s $work/sys-$k ]] || die "$k: no strace -c summary ($(head -c 300 "$work/strace-$k.err"))"
  SYS_TOTAL[$k]=$(awk '{s += $2} END {printf "%.1f", s}' "$work/sys-$k")
  SYS_LIST[$k]=$(awk '$2 >= 0.05 {
      e = ($3 >= 0.05 ? sprintf(" (%.1f of them errors)", $3) : "")
      printf "%s`%s` %.1f%s", (NR > 1 ? ", " : ""), $1, $2, e}' "$work/sys-$k")
  SYS_THREAD[$k]=$(awk -v names="$THREAD_CALLS" 'BEGIN {split(names, a, " "); for (i in a) want[a[i]] = 1}
      want[$1] && $2 >= 0.05 {printf "%s`%s`", (n++ ? ", " : ""), $1}' "$work/sys-$k")
  log "$k: ${SYS_TOTAL[$k]} system calls per scrape: $(tr -d '`' <<<"${SYS_LIST[$k]}")"
done

# --- 3. keep-alive throughput ------------------------------------------------------------------
declare -A WRK_RPS WRK_P50 WRK_P99 WRK_REQS WRK_TICKS WRK_ERR
for k in "${KEYS[@]}"; do WRK_RPS[$k]='' WRK_P50[$k]='' WRK_P99[$k]='' WRK_REQS[$k]=0 WRK_TICKS[$k]=0 WRK_ERR[$k]=''; done
for r in $(seq "$WRK_ROUNDS"); do
  for k in $(order "$r"); do
    log "$k: wrk -t2 -c16 -d${WRK_SECS}s --latency (round $r)"
    pid=${E_PID[$k]}
    c0=$(cpu_ticks "$pid")
    wrk_load "${E_PORT[$k]}" "$WRK_SECS" "$work/wrk.txt"
    c1=$(cpu_ticks "$pid")
    WRK_RPS[$k]+="$(wrk_stat "$work/wrk.txt" rps) "
    WRK_P50[$k]+="$(to_ms "$(wrk_stat "$work/wrk.txt" p50)") "
    WRK_P99[$k]+="$(to_ms "$(wrk_stat "$work/wrk.txt" p99)") "
    WRK_REQS[$k]=$((WRK_REQS[$k] + $(wrk_stat "$work/wrk.txt" requests)))
    WRK_TICKS[$k]=$((WRK_TICKS[$k] + c1 - c0))
    WRK_ERR[$k]+=$(wrk_stat "$work/wrk.txt" errors)
  done
done
mean() { tr ' ' '\n' <<<"$1" | grep . | awk '{s += $1} END {print s / NR}'; }
list() { tr ' ' '\n' <<<"$1" | grep . | awk -v f="$2" '{printf "%s" f, (NR > 1 ? ", " : ""), $1}'; }

# --- 4. idle connections -----------------------------------------------------------------------
declare -A I
for k in "${KEYS[@]}"; do
  log "$k: $IDLE idle connections, $LAT_N new-connection scrapes while they are held"
  python3 "$CLIENT" idle "${E_PID[$k]}" "${E_PORT[$k]}" "$IDLE" "$LAT_N" >"$work/idle-$k" || die "$k: idle client failed"
  log "$k: $(cat "$work/idle-$k")"
  for f in connected closed threads0 rss0 threads1 rss1 threads2 rss2 threads3 rss3 answered p50 p99 kinds; do
    I[$k.$f]=$(kv "$work/idle-$k" "$f")
  done
  kill -0 "${E_PID[$k]}" 2>/dev/null || die "$k exited during the idle connections"
done
declare -A SIZE
for k in "${KEYS[@]}"; do stop "${E_PID[$k]}"; done
SIZE[ours]=$(stat -c %s "$OURS")
[[ -z $PREV ]] || SIZE[prev]=$(stat -c %s "$PREV")

# --- 5. a flood under RLIMIT_NOFILE 64 ---------------------------------------------------------
declare -A F
for k in "${KEYS[@]}"; do
  bin=$OURS
  [[ $k == prev ]] && bin=$PREV
  start_exporter "flood-$k" "$bin" "$NOFILE"
  log "$k: flood of $FLOOD connections at --nofile=$NOFILE:$NOFILE, then $AFTER scrapes"
  python3 "$CLIENT" flood "${E_PID[flood-$k]}" "${E_PORT[flood-$k]}" "$FLOOD" 1.0 "$DURING" "$AFTER" \
    >"$work/flood-$k" || die "$k: flood client failed"
  log "$k: $(cat "$work/flood-$k")"
  for f in connected closed threads0 rss0 threads1 rss1 threads2 rss2 during during_kinds after after_kinds; do
    F[$k.$f]=$(kv "$work/flood-$k" "$f")
  done
  F[$k.alive]=yes
  kill -0 "${E_PID[flood-$k]}" 2>/dev/null || F[$k.alive]=no
  F[$k.logged]=$(grep -m1 -o 'accepting a connection failed.*' "$work/flood-$k.err" || true)
  stop "${E_PID[flood-$k]}"
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# --- the section -------------------------------------------------------------------------------
us() { if awk "BEGIN {exit !($1 >= 1000)}"; then echo "$(num "$(fmt "$1" '%.0f')") µs"; else fmt "$1" '%.1f µs'; fi; }
have_prev() { [[ -n $PREV ]]; }
# prev CMD ARGS...: the previous server's cell (CMD's output), or "–" when it was not measured.
prev() { if have_prev; then "$@"; else echo "–"; fi; }
less() { fmt "$(calc "$1 / $2")" '%.1f× less'; }
cpu_cell() { us "${CPU_US[$1]}"; }
sys_share_cell() { echo "$(us "${SYS_US[$1]}") of $(us "${CPU_US[$1]}")"; }
curl_cell() { us "${CURL_US[$1]}"; }
sys_cell() { echo "${SYS_TOTAL[$1]}"; }
lat_cell() { echo "${LAT_P50[$1]} ms"; }
rss1k_cell() { kib_mib "${RSS1K[$1]}"; }
wrk_cell() { echo "$(list "${WRK_RPS[$1]}" '%.0f') (mean **$(fmt "$(mean "${WRK_RPS[$1]}")" '%.0f')**)${WRK_ERR[$1]:+; ${WRK_ERR[$1]}}"; }
wrk_lat_cell() { echo "$(list "${WRK_P50[$1]}" '%.3f') ms / $(list "${WRK_P99[$1]}" '%.3f') ms"; }
wrk_cpu() { calc "${WRK_TICKS[$1]} / $HZ * 1e6 / ${WRK_REQS[$1]}"; }
wrk_cpu_cell() { us "$(wrk_cpu "$1")"; }
threads_cell() { echo "${I[$1.threads0]} / **${I[$1.threads1]}** / ${I[$1.threads3]}"; }
rss_cell() { echo "$(kib_mib "${I[$1.rss0]}") / **$(kib_mib "${I[$1.rss1]}")** / $(kib_mib "${I[$1.rss3]}")"; }
closed_cell() { echo "${I[$1.closed]} of ${I[$1.connected]}"; }
held_lat_cell() { echo "${I[$1.p50]} ms / ${I[$1.p99]} ms (${I[$1.answered]}/$LAT_N answered)"; }
fthreads_cell() { echo "${F[$1.threads0]} / **${F[$1.threads1]}** / ${F[$1.threads2]}"; }
frss_cell() { echo "$(kib_mib "${F[$1.rss0]}") / **$(kib_mib "${F[$1.rss1]}")** / $(kib_mib "${F[$1.rss2]}")"; }
during_cell() { echo "${F[$1.during]}/$DURING (${F[$1.during_kinds]})"; }
after_cell() { echo "**${F[$1.after]}/$AFTER** (process alive: ${F[$1.alive]})"; }
size_cell() { echo "$(num "${SIZE[$1]}") B"; }

OURS_US=${CPU_US[ours]}
PY_RATIO=
[[ -z $PY_US ]] || PY_RATIO=$(calc "$PY_US / $OURS_US")
RPS_OURS=$(mean "${WRK_RPS[ours]}")
P99_OURS=$(mean "${WRK_P99[ours]}")
if have_prev; then
  RPS_PREV=$(mean "${WRK_RPS[prev]}")
  P99_PREV=$(mean "${WRK_P99[prev]}")
fi
if [[ -n $PY_US ]]; then
  PY_HEAD="Python ecs-container-exporter $PY_VERSION"
  py_cpu_cell="$(us "$PY_US") ($(num "$PER_ROUND") scrapes)"
  py_ratio_cell="**$(fmt "$PY_RATIO" '%.0f')×**"
  py_lat_cell="$PY_P50 ms"
else
  PY_HEAD="Python original"
  py_cpu_cell="not measured: $PY_NOTE"
  py_ratio_cell="–"
  py_lat_cell="–"
fi
if have_prev; then
  PREV_HEAD="previous server (thread per connection; $PREV_SHORT), static"
  PREV_LINE="\"Previous server (thread per connection)\" is commit $PREV_SHORT, the parent of $REWRITE_SHORT \"serve: one
event-loop thread serves every connection (mio)\", built from \`git archive\` as \`make static\` builds."
else
  PREV_HEAD="previous server (thread per connection)"
  PREV_LINE="The previous server (thread per connection) was not measured: $PREV_NOTE."
fi
THREAD_CALLS_MD=$(sed 's/[a-z_0-9][a-z_0-9]*/`&`/g; s/ /, /g' <<<"$THREAD_CALLS")

cat <<EOF
## The HTTP server: one event-loop thread vs the previous server (tests/bench/server.sh)

Both servers as shipped (static musl binary, \`dist\` profile), on one simulated Fargate task of
$CONTAINERS containers ($BODY_BYTES-byte body), \`--interval 600\` (no poll during the measurements).
$PREV_LINE
$(nproc) cores; load average (1, 5, 15 min) at start $LOAD_START, at end $LOAD_END (this includes the
benchmark's own processes).

| | $PY_HEAD | $PREV_HEAD | ours (one event-loop thread), static | ours vs previous |
|---|---:|---:|---:|---:|
| CPU per new-connection scrape (utime+stime; $ROUNDS × $(num "$PER_ROUND") sequential scrapes, \`Connection: close\`) | $py_cpu_cell | $(prev cpu_cell prev) | **$(us "$OURS_US")** | $(prev less "${CPU_US[prev]:-}" "$OURS_US") |
| Python ÷ ours, CPU per new-connection scrape | | | $py_ratio_cell | |
| the kernel's part: a blocking C server answering the same bytes (accept, read, write, close), same rounds | – | – | $([[ -n $FLOOR_US ]] && us "$FLOOR_US" || echo "not measured (no gcc)") | $([[ -n $FLOOR_US ]] && fmt "$(calc "$OURS_US - $FLOOR_US")" 'ours +%.1f µs' || echo –) |
| of which system (kernel) time | – | $(prev sys_share_cell prev) | $(sys_share_cell ours) | |
| CPU per new-connection scrape, a curl URL glob as the client ($CURL_ROUNDS × $(num "$PER_ROUND")) | – | $(prev curl_cell prev) | $(curl_cell ours) | $(prev less "${CURL_US[prev]:-}" "${CURL_US[ours]}") |
| system calls per new-connection scrape (\`strace -c -f\`, $STRACE_SCRAPES scrapes) | – | $(prev sys_cell prev) | **${SYS_TOTAL[ours]}** | $(prev less "${SYS_TOTAL[prev]:-}" "${SYS_TOTAL[ours]}") |
| new-connection scrape latency (client side), median of the rounds' medians | $py_lat_cell | $(prev lat_cell prev) | $(lat_cell ours) | |
| VmRSS after the first $(num "$PER_ROUND") new-connection scrapes | – | $(prev rss1k_cell prev) | **$(rss1k_cell ours)** | |
| keep-alive scrapes/s, \`wrk -t2 -c16 -d${WRK_SECS}s\`, each round | – | $(prev wrk_cell prev) | $(wrk_cell ours) | $(have_prev && fmt "$(calc "$RPS_OURS / $RPS_PREV")" '%.2f× the scrapes/s' || echo –) |
| keep-alive latency under that load, median / p99, each round | – | $(prev wrk_lat_cell prev) | $(wrk_lat_cell ours) | |
| exporter CPU per keep-alive scrape under that load | – | $(prev wrk_cpu_cell prev) | $(wrk_cpu_cell ours) | $(have_prev && less "$(wrk_cpu prev)" "$(wrk_cpu ours)" || echo –) |
| Threads: idle / with $IDLE idle connections held / 2 s after they close | – | $(prev threads_cell prev) | $(threads_cell ours) | |
| VmRSS: idle / with $IDLE idle connections held / 2 s after they close | – | $(prev rss_cell prev) | $(rss_cell ours) | |
| idle connections the server had closed while they were held (at most 64 may wait for a head) | – | $(prev closed_cell prev) | $(closed_cell ours) | |
| a new client's \`/metrics\` while they were held: median / p99 ($LAT_N scrapes, new connection each) | – | $(prev held_lat_cell prev) | $(held_lat_cell ours) | |
| flood of $FLOOD connections at \`--nofile=$NOFILE:$NOFILE\`: Threads before / in the flood / after | – | $(prev fthreads_cell prev) | $(fthreads_cell ours) | |
| the same: VmRSS before / in the flood / after | – | $(prev frss_cell prev) | $(frss_cell ours) | |
| the same: scrapes answered in the flood (2 s timeout each) | – | $(prev during_cell prev) | $(during_cell ours) | |
| the same: scrapes answered after the flood is released | – | $(prev after_cell prev) | $(after_cell ours) | |
| binary | – | $(prev size_cell prev) | $(size_cell ours) | |

System calls per new-connection scrape (\`strace -c -f -p <pid>\` over $STRACE_SCRAPES scrapes; "errors" are
calls that returned an error, such as \`EAGAIN\` from a non-blocking \`accept4\` or \`recvfrom\`):

- ours: **${SYS_TOTAL[ours]}**: ${SYS_LIST[ours]}; thread or memory calls per scrape: ${SYS_THREAD[ours]:-none (no $THREAD_CALLS_MD)}.
EOF
if have_prev; then
  cat <<EOF
- previous server: **${SYS_TOTAL[prev]}**: ${SYS_LIST[prev]}; thread or memory calls among them: ${SYS_THREAD[prev]:-none}.
EOF
fi
THREADS_ALL="${I[ours.threads0]} ${I[ours.threads1]} ${I[ours.threads3]} ${F[ours.threads0]} ${F[ours.threads1]} ${F[ours.threads2]}"
THREADS_OK=$(awk -v t="$T_THREADS" '{for (i = 1; i <= NF; i++) if ($i != t) {print 0; exit}; print 1}' <<<"$THREADS_ALL")
D_IDLE=$((${I[ours.rss1]} - ${I[ours.rss0]}))
D_FLOOD=$((${F[ours.rss1]} - ${F[ours.rss0]}))
D_AFTER=$((${F[ours.rss2]} - ${F[ours.rss0]}))
V_CPU=$(verdict "$OURS_US <= $T_CPU_US")
V_PY=n/a
[[ -z $PY_RATIO ]] || V_PY=$(verdict "$PY_RATIO >= $T_PY_RATIO")
cat <<EOF

### Targets (issue #13)

| target | measured | |
|---|---|---|
| CPU per new-connection scrape ≤ $T_CPU_US µs (shipped static binary) | $(us "$OURS_US")$([[ -z $FLOOR_US ]] || echo "; the kernel's part alone (the C server): $(us "$FLOOR_US")") | $V_CPU |
EOF
if [[ -n $PY_US ]]; then
  echo "| CPU per new-connection scrape ≥ ${T_PY_RATIO}× less than the original (static) | $(fmt "$PY_RATIO" '%.0f')× ($(us "$PY_US") ÷ $(us "$OURS_US")) | $V_PY |"
else
  echo "| CPU per new-connection scrape ≥ ${T_PY_RATIO}× less than the original (static) | the original was $PY_NOTE | n/a |"
fi
if have_prev; then
  cat <<EOF
| keep-alive scrapes/s not below the previous server's (same run, taking turns) | $(fmt "$RPS_OURS" '%.0f')/s vs $(fmt "$RPS_PREV" '%.0f')/s ($(fmt "$(calc "$RPS_OURS / $RPS_PREV")" '%.2f')×) | $(verdict "$RPS_OURS >= $RPS_PREV") |
| keep-alive p99 not above the previous server's | $(fmt "$P99_OURS" '%.3f') ms vs $(fmt "$P99_PREV" '%.3f') ms | $(verdict "$P99_OURS <= $P99_PREV") |
EOF
else
  echo "| keep-alive scrapes/s and p99 not worse than the previous server's | $(fmt "$RPS_OURS" '%.0f')/s, p99 $(fmt "$P99_OURS" '%.3f') ms; the previous server was not measured | n/a |"
fi
cat <<EOF
| threads constant, $T_THREADS (no DogStatsD): idle, $IDLE idle connections, after; flood at \`--nofile=$NOFILE\`: before, in it, after | ${THREADS_ALL// / \/ } | $(verdict "$THREADS_OK == 1") |
| VmRSS within 1 MiB of idle: with $IDLE idle connections; in the flood; after it | $(fmt "$D_IDLE" '%+d') KiB; $(fmt "$D_FLOOD" '%+d') KiB; $(fmt "$D_AFTER" '%+d') KiB | $(verdict "$D_IDLE <= $T_RSS_DELTA_KIB && $D_FLOOD <= $T_RSS_DELTA_KIB && $D_AFTER <= $T_RSS_DELTA_KIB") |
| every scrape answered after the flood is released | ${F[ours.after]}/$AFTER | $(verdict "${F[ours.after]} == $AFTER") |
| VmRSS after $(num "$PER_ROUND") scrapes ≤ 1.1 MiB (static; new connection each, $CONTAINERS containers) | $(kib_mib "${RSS1K[ours]}") (${RSS1K[ours]} KiB) | $(verdict "${RSS1K[ours]} <= $T_RSS_KIB") |
| binary ≤ 1.0 MiB ($(num "$T_BINARY") B), static, stripped | $(num "${SIZE[ours]}") B | $(verdict "${SIZE[ours]} <= $T_BINARY") |
| a new client's \`/metrics\` with $IDLE idle connections open: median ≤ $T_LAT_MS ms (static) | ${I[ours.p50]} ms (p99 ${I[ours.p99]} ms; ${I[ours.answered]}/$LAT_N answered) | $(verdict "${I[ours.answered]} == $LAT_N && ${I[ours.p50]} <= $T_LAT_MS") |

- CPU: the exporter's utime+stime from \`/proc/<pid>/stat\` ($HZ ticks/s; all its threads, exited ones
  included) before and after each round of $(num "$PER_ROUND") scrapes, summed over the rounds: one tick
  is $(fmt "$(calc "1e6 / $HZ / ($ROUNDS * $PER_ROUND)")" '%.1f') µs per scrape. The client (\`tests/bench/server_client.py\`, plain sockets) connects,
  sends \`GET /metrics\` with \`Connection: close\`, reads the head and \`Content-Length\` bytes and
  closes, as Prometheus' and curl's clients do (to EOF for the Python original's HTTP/1.0 answers);
  only the exporter's CPU is counted, not the client's. The servers took turns round by round,
  so both saw the same background load. The curl row is the same measurement with a curl URL
  glob as the client (how \`run.sh\` measured it before); curl's CPU is not counted either, but
  the exporter's own differs a little with the client's timing.
- The Python original collects on scrape (two GETs of \`/task/stats\`, compute, render), so its
  figure is its whole cost; ours only writes the bytes rendered at the last poll.
- Idle connections: opened in batches of 64, each once the server had accepted the previous one
  (the listen backlog is 128), held 1 s, then $LAT_N sequential scrapes on new connections
  (latency from connect to the last byte, in Python: it includes the client's own overhead),
  then all closed.
- Flood: the exporter started under \`prlimit --nofile=$NOFILE:$NOFILE\`; $FLOOD connections opened at once
  (non-blocking connects, nothing sent) and held 1 s, with $DURING scrapes while held; then all
  closed and, 0.5 s later, $AFTER scrapes (\`Connection: close\`, 2 s timeout each).$([[ -z ${F[ours.logged]} ]] || echo " Ours logged \`${F[ours.logged]}\`.")
EOF

# For run.sh's table of targets: the same figures and verdicts, as key=value lines.
if [[ -n ${SERVER_RESULTS:-} ]]; then
  {
    echo "cpu_us=$OURS_US"
    echo "cpu_verdict=$V_CPU"
    echo "py_us=$PY_US"
    echo "py_ratio=$PY_RATIO"
    echo "py_verdict=$V_PY"
    echo "prev_cpu_us=${CPU_US[prev]:-}"
    echo "floor_us=$FLOOR_US"
  } >"$SERVER_RESULTS"
fi

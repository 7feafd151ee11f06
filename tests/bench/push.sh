#!/usr/bin/env bash
# Remote write (issue #17, SPEC §5): what pushing costs, on the shipped static binaries (`dist`
# profile, musl), against a real Prometheus 2.42 remote-write receiver.
#
#   bash tests/bench/push.sh [--update FILE]
#
# Prints the markdown section "## Remote write (issue #17)" on stdout (progress on stderr and in
# $WORK/push.log). With --update FILE it also puts the section into FILE in place of the one of
# that name (or, when FILE has none, where run.sh puts it: before "## The HTTP server", else
# before "## Notes"): `make bench-push` is `bash tests/bench/push.sh --update BENCHMARKS.md`;
# `make bench` (run.sh) runs it and places its section in the BENCHMARKS.md it writes. The
# figures are saved in $WORK/results.sh; --render-from that file writes the section again
# without measuring (for a change of wording).
#
# What it measures (budgets are reported, never asserted: it exits 0 when one is missed):
#  1. binary sizes, default features (remote write) vs --no-default-features, amd64 and, when
#     `make static-arm64` builds here, arm64. Budgets: default ≤ 2.0 MB, minimal ≤ 1.05 MB
#     (MB = 10^6 bytes);
#  2. RSS with push off after 1,000 scrapes (new connection each) of a 4-container task, the
#     default and the minimal binary side by side. Budget ≤ 1.2 MiB;
#  3. RSS while pushing every second for BENCH_PUSH_SECS (600): over https + SigV4 with static
#     credentials from the environment, and with the simulator's container credentials (90 s
#     lifetime, so they are fetched again during the run), beside an exporter pushing over plain
#     http, one not pushing, one pushing every BENCH_PUSH_RECONNECT_INTERVAL (20) s (a new
#     connection each push) and one pushing every 0.1 s to a receiver that closes every
#     connection (thousands of TLS handshakes), all at once on one task. VmRSS every 10 s:
#     start, max, end, slope.
#     Budget ≤ 3 MiB and flat. Delivery: sent ≈ seconds, dropped 0;
#  4. CPU per push of a 4-container task (encode + compress: thread `push`; sign + send: thread
#     `push-send`; /proc/<pid>/task/<tid>/schedstat, ns) against the poller's CPU per poll, in
#     the same run, over http and over https + SigV4, BENCH_PUSH_CPU_ROUNDS rounds;
#  5. side by side with Prometheus 2.42 in agent mode (scraping a non-pushing exporter at the
#     same interval and remote-writing to the same receiver): RSS and CPU, per interval of
#     BENCH_PUSH_PEER_INTERVALS, BENCH_PUSH_PEER_SECS each.
#
# Needs: make, cargo with the x86_64-unknown-linux-musl target (aarch64-unknown-linux-musl, clang
# and llvm-ar for the arm64 row, which says n/a when that build fails), prometheus 2.42
# (apt-get install prometheus), openssl, curl, python3. Loopback (127.0.0.1) only; every wait and
# loop is bounded in count and time; every process started here is killed by its PID on exit
# (also on Ctrl-C).
#
# Knobs (environment): BENCH_PUSH_SECS (600) the TLS run, at least 60; BENCH_PUSH_CPU_SECS (30)
# and BENCH_PUSH_CPU_ROUNDS (3) the CPU run, at --interval BENCH_PUSH_CPU_INTERVAL (0.1);
# BENCH_PUSH_PEER_SECS (180) and BENCH_PUSH_PEER_INTERVALS ("15 1", whole seconds) the agent
# comparison; BENCH_PUSH_RECONNECT_INTERVAL (20);
# BENCH_PUSH_SCRAPES (1000); BENCH_PUSH_ARM64 (1; 0 skips the arm64 builds); BENCH_WORK
# (target/bench; this script works in its push/ folder).
# A quick run: BENCH_PUSH_SECS=60 BENCH_PUSH_CPU_SECS=9 BENCH_PUSH_PEER_SECS=30 BENCH_PUSH_ARM64=0
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

UPDATE= RENDER_FROM=
while (($#)); do
  case $1 in
  --update) UPDATE=${2:?--update needs a file} && shift 2 ;;
  --render-from) RENDER_FROM=${2:?--render-from needs a file} && shift 2 ;;
  *) echo "usage: tests/bench/push.sh [--update FILE] [--render-from RESULTS]" >&2 && exit 2 ;;
  esac
done
[[ -z $UPDATE || $UPDATE == /* ]] || UPDATE=$ROOT/$UPDATE

PUSH_SECS=${BENCH_PUSH_SECS:-600}
CPU_SECS=${BENCH_PUSH_CPU_SECS:-30}
CPU_ROUNDS=${BENCH_PUSH_CPU_ROUNDS:-3}
CPU_INTERVAL=${BENCH_PUSH_CPU_INTERVAL:-0.1}
PEER_SECS=${BENCH_PUSH_PEER_SECS:-180}
PEER_INTERVALS=${BENCH_PUSH_PEER_INTERVALS:-15 1}
RECONNECT_INTERVAL=${BENCH_PUSH_RECONNECT_INTERVAL:-20}
SCRAPES=${BENCH_PUSH_SCRAPES:-1000}
ARM64=${BENCH_PUSH_ARM64:-1}
CONTAINERS=4
REGION=us-east-1
# Static SigV4 credentials for the runs that take them from the environment (Prometheus does
# not check signatures; these only have to be well-formed).
KEY_ID=AKIDBENCHPUSH0000001
SECRET=benchpush/secret/0000000000000000000000
AMD64=x86_64-unknown-linux-musl
ARM64_TRIPLE=aarch64-unknown-linux-musl
T=${CARGO_TARGET_DIR:-target}
[[ $T == /* ]] || T=$ROOT/$T
WORK=${BENCH_WORK:-$ROOT/target/bench}/push
HZ=$(getconf CLK_TCK)
SECTION="## Remote write (issue #17)"

((PUSH_SECS >= 60)) || { echo "push: BENCH_PUSH_SECS must be at least 60" >&2; exit 2; }
((CPU_ROUNDS >= 1 && CPU_SECS >= CPU_ROUNDS)) || { echo "push: BENCH_PUSH_CPU_SECS must be at least BENCH_PUSH_CPU_ROUNDS" >&2; exit 2; }
((PEER_SECS >= 10)) || { echo "push: BENCH_PUSH_PEER_SECS must be at least 10" >&2; exit 2; }

if [[ -z $RENDER_FROM ]]; then
  rm -rf "$WORK"
  mkdir -p "$WORK/bin"
  : >"$WORK/push.log"
fi
mkdir -p "$WORK"
LOG=$WORK/push.log
# Logging, the exit trap (every PID in PIDS killed on exit, also on Ctrl-C), free ports, the
# simulator, /proc readers and number helpers: shared with the other scripts.
# shellcheck source=lib.sh
. "$ROOT/tests/bench/lib.sh"
log_as push "$LOG"

# --- helpers -----------------------------------------------------------------------------------
# mval FILE SERIES: the value of SERIES (name and labels exactly as exposed) in FILE; 0 if absent.
mval() { awk -v s="$2" '$1 == s {v = $2; f = 1} END {print f ? v : 0}' "$1"; }
# msum FILE NAME [FILTER]: the sum of every series of NAME (whatever its labels) in FILE whose
# line contains FILTER.
msum() {
  awk -v n="$2" -v f="${3:-}" '{k = $1; sub(/\{.*/, "", k)} k == n && index($0, f) {s += $2}
    END {printf "%.0f\n", s}' "$1"
}
metrics_to() { # metrics_to URL FILE: a scrape of URL (https verified with the run's CA) into FILE
  curl -sf -m 5 --cacert "$WORK/tls/ca.pem" -o "$2" "$1" || : >"$2"
}
kib() { fmt "$1" '%.0f'; } # KiB, the number alone
ms() { fmt "$(calc "($1) / 1e6")" '%.1f'; } # ns (an expression) -> ms, the number alone
us() { fmt "$(calc "($1) / 1e3")" '%.0f'; } # ns (an expression) -> µs, the number alone

# make_tls: a CA and a server certificate for 127.0.0.1 (SAN IP:127.0.0.1), P-256, in $WORK/tls,
# and the receivers' web config (tls_server_config).
make_tls() {
  local d=$WORK/tls
  mkdir -p "$d"
  {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
      -subj "/CN=ecs-container-exporter bench CA" -keyout "$d/ca.key" -out "$d/ca.pem" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" &&
      openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=127.0.0.1" \
        -keyout "$d/server.key" -out "$d/server.csr" &&
      printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" \
        "extendedKeyUsage=serverAuth" "subjectAltName=IP:127.0.0.1" >"$d/server.ext" &&
      openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
        -days 2 -extfile "$d/server.ext" -out "$d/server.pem"
  } >>"$LOG" 2>&1 || die "openssl could not make the CA and certificate (see $LOG)"
  printf 'tls_server_config:\n  cert_file: %s\n  key_file: %s\n' "$d/server.pem" "$d/server.key" \
    >"$d/web.yml"
  printf 'global:\n  evaluation_interval: 1m\n' >"$WORK/receiver.yml"
}

# start_prom KEY SCHEME ARGS...: Prometheus on a free loopback port with ARGS, its log in
# $WORK/KEY.log; waits up to 60 s for /-/ready (https verified with the run's CA). Up to 3 ports
# are tried (another process may take one first). PROM_ENV (VAR=VALUE words) is its environment
# besides ours. Sets P[KEY.pid], P[KEY.port], P[KEY.url] (its base URL).
declare -A P
PROM_ENV=()
start_prom() {
  local key=$1 scheme=$2 port pid
  shift 2
  for _ in 1 2 3; do
    port=$(free_port)
    env "${PROM_ENV[@]}" prometheus --web.listen-address="127.0.0.1:$port" "$@" >"$WORK/$key.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 300); do
      kill -0 "$pid" 2>/dev/null || break
      if curl -sf -m 2 --cacert "$WORK/tls/ca.pem" -o /dev/null "$scheme://127.0.0.1:$port/-/ready"; then
        P[$key.pid]=$pid P[$key.port]=$port P[$key.url]=$scheme://127.0.0.1:$port
        return 0
      fi
      sleep 0.2
    done
    stop "$pid"
    grep -q 'address already in use' "$WORK/$key.log" || break
  done
  die "Prometheus ($key) did not become ready: $(tail -n3 "$WORK/$key.log")"
}
# start_receiver KEY https|http: a remote-write receiver (storage in $WORK/KEY).
start_receiver() {
  local web=()
  [[ $2 == https ]] && web=(--web.config.file="$WORK/tls/web.yml")
  start_prom "$1" "$2" --config.file="$WORK/receiver.yml" "${web[@]}" \
    --storage.tsdb.path="$WORK/$1" --web.enable-remote-write-receiver --log.level=warn
}
recv_writes() { # recv_writes KEY: write requests the receiver KEY accepted (2xx)
  metrics_to "${P[$1.url]}/metrics" "$WORK/$1.metrics"
  awk '/^prometheus_http_requests_total\{/ && /handler="\/api\/v1\/write"/ && /code="2/ {s += $2}
    END {printf "%.0f\n", s}' "$WORK/$1.metrics"
}
recv_rejected() { # recv_rejected KEY: write requests it answered with anything else (after recv_writes)
  awk '/^prometheus_http_requests_total\{/ && /handler="\/api\/v1\/write"/ && !/code="2/ {s += $2}
    END {printf "%.0f\n", s}' "$WORK/$1.metrics"
}
recv_conns() { # recv_conns KEY: connections its listener accepted (after recv_writes)
  mval "$WORK/$1.metrics" 'net_conntrack_listener_conn_accepted_total{listener_name="http"}'
}

# start_closing: a remote-write receiver over https that answers every request 204 and closes the
# connection (HTTP/1.0), so that every push opens a new one; it counts the requests in
# $WORK/closing.count. Up to 3 ports. Sets CLOSING_PID and CLOSING_URL.
start_closing() {
  local port pid
  cat >"$WORK/closing.py" <<'PY'
import http.server, ssl, sys
port, cert, key, count_file = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # every answer closes the connection
    count = 0
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(204)
        self.send_header("Connection", "close")
        self.end_headers()
        Handler.count += 1
        with open(count_file, "w") as f:
            f.write("%d\n" % Handler.count)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", port), Handler)
tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
tls.load_cert_chain(cert, key)
server.socket = tls.wrap_socket(server.socket, server_side=True)
print("listening", flush=True)
server.serve_forever()
PY
  echo 0 >"$WORK/closing.count"
  for _ in 1 2 3; do
    port=$(free_port)
    python3 "$WORK/closing.py" "$port" "$WORK/tls/server.pem" "$WORK/tls/server.key" \
      "$WORK/closing.count" >"$WORK/closing.out" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || break
      if grep -q listening "$WORK/closing.out"; then
        CLOSING_PID=$pid CLOSING_URL=https://127.0.0.1:$port
        return 0
      fi
      sleep 0.1
    done
    stop "$pid"
  done
  die "the closing receiver did not start: $(tail -n3 "$WORK/closing.out")"
}

# start_exporter KEY BIN [VAR=VALUE...] -- ARGS...: the exporter on a free loopback port, in an
# empty environment plus the VARs (nothing of the caller's AWS_* or REMOTE_WRITE_*), stderr in
# $WORK/KEY.err; waits up to 10 s for /metrics. Up to 3 ports are tried. Sets E[KEY.pid] and
# E[KEY.port].
declare -A E
start_exporter() {
  local key=$1 bin=$2 vars=() port pid
  shift 2
  while [[ $1 != -- ]]; do
    vars+=("$1")
    shift
  done
  shift
  for _ in 1 2 3; do
    port=$(free_port)
    env -i "${vars[@]}" "$bin" --bind-address 127.0.0.1 --exporter-port "$port" "$@" \
      >/dev/null 2>"$WORK/$key.err" &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 200); do
      kill -0 "$pid" 2>/dev/null || break
      if curl -sf -m 1 -o /dev/null "http://127.0.0.1:$port/metrics"; then
        E[$key.pid]=$pid E[$key.port]=$port
        return 0
      fi
      sleep 0.05
    done
    stop "$pid"
    grep -qi 'in use' "$WORK/$key.err" || break
  done
  die "$key did not start: $(tail -n3 "$WORK/$key.err")"
}
ours() { # ours KEY: our /metrics into $WORK/KEY.metrics
  metrics_to "http://127.0.0.1:${E[$1.port]}/metrics" "$WORK/$1.metrics"
}
sent() { mval "$WORK/$1.metrics" 'ecs_exporter_remote_write_requests_total{outcome="sent"}'; }
retried() { mval "$WORK/$1.metrics" 'ecs_exporter_remote_write_requests_total{outcome="retried"}'; }
dropped() { mval "$WORK/$1.metrics" 'ecs_exporter_remote_write_requests_total{outcome="dropped"}'; }
queued() { mval "$WORK/$1.metrics" 'ecs_exporter_remote_write_queue_requests'; }
samples() { mval "$WORK/$1.metrics" 'ecs_exporter_remote_write_samples_sent_total'; }
warns() { grep -c '^\[WARN\|^\[ERROR' "$WORK/$1.err" || true; }

# wait_sent KEY N SECS: until KEY's exporter says N requests were sent; dies after SECS s or if
# it exited.
wait_sent() {
  local i
  for ((i = 0; i < $3 * 5; i++)); do
    kill -0 "${E[$1.pid]}" 2>/dev/null || die "$1 exited: $(tail -n3 "$WORK/$1.err")"
    ours "$1"
    (($(sent "$1") >= $2)) && return 0
    sleep 0.2
  done
  die "$1 sent fewer than $2 requests in $3 s: $(tail -n3 "$WORK/$1.err")"
}
# wait_full KEY: until a scrape has the task's CPU ratio (a full poll), at most 10 s.
wait_full() {
  for _ in $(seq 200); do
    curl -sf -m 1 "http://127.0.0.1:${E[$1.port]}/metrics" 2>/dev/null |
      grep -q '^ecs_task_cpu_usage_ratio{container_name="_task_"}' && return 0
    sleep 0.05
  done
  die "$1 never served a full poll: $(tail -n3 "$WORK/$1.err")"
}

# cpu_snap PID: "push push-send poller live-threads ticks": the CPU ns of those threads, of all
# live threads, and utime+stime ticks of the whole process (exited threads included).
cpu_snap() {
  echo "$(thread_ns "$1" push) $(thread_ns "$1" push-send) $(thread_ns "$1" poller)" \
    "$(threads_ns "$1") $(cpu_ticks "$1")"
}
# cpu_delta BEFORE AFTER FIELD: FIELD (1-5) of cpu_snap's AFTER minus BEFORE.
cpu_delta() { awk -v a="$1" -v b="$2" -v f="$3" 'BEGIN {split(a, x); split(b, y); print y[f] - x[f]}'; }

# sample_rss SECS KEY...: every 10 s for SECS s (the first at 0), each KEY's "t VmRSS Threads"
# (and PROM_KEYS' for P[]) appended to $WORK/KEY.rss; dies when one has exited.
sample_rss() {
  local secs=$1 start i key pid wait
  shift
  for key in "$@"; do : >"$WORK/$key.rss"; done
  start=$EPOCHREALTIME
  for ((i = 0; i * 10 <= secs; i++)); do
    wait=$(awk -v s="$start" -v n="$EPOCHREALTIME" -v t=$((i * 10)) 'BEGIN {w = s + t - n; print (w > 0 ? w : 0)}')
    sleep "$wait"
    for key in "$@"; do
      pid=${E[$key.pid]:-${P[$key.pid]:-}}
      kill -0 "$pid" 2>/dev/null || die "$key exited during the run: $(tail -n3 "$WORK/$key.err" "$WORK/$key.log" 2>/dev/null)"
      echo "$((i * 10)) $(rss_kib "$pid") $(status_field "$pid" Threads)" >>"$WORK/$key.rss"
    done
    ((i % 6 != 0 || i == 0)) || log "  $((i * 10)) s of $secs"
  done
}
# rss_stats FILE: "start max end slope growth": VmRSS KiB at the first sample, the largest, the
# last; the least-squares slope over the samples from 60 s on, in KiB per hour, and the growth
# that line makes from 60 s to the end, in KiB.
rss_stats() {
  awk 'NR == 1 {s = $2} $2 > m {m = $2} {e = $2}
    $1 >= 60 {n++; sx += $1; sy += $2; sxx += $1 * $1; sxy += $1 * $2; if (n == 1) f = $1; l = $1}
    END {d = n * sxx - sx * sx; b = (n > 1 && d > 0) ? (n * sxy - sx * sy) / d : 0
      printf "%d %d %d %.1f %.1f\n", s, m, e, b * 3600, b * (l - f)}' "$1"
}
maxcol() { awk -v c="$2" '$c > m {m = $c} END {print m + 0}' "$1"; } # maxcol FILE COLUMN

declare -A SIZE OFF CPU L A
if [[ -n $RENDER_FROM ]]; then
  # The figures of an earlier run (its results.sh): only the section is written again.
  # shellcheck source=/dev/null
  . "$RENDER_FROM"
else
need_tools --hint "apt-get install -y prometheus openssl curl" make cargo prometheus openssl curl python3
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
PROM_VERSION=$(prometheus --version 2>&1 | awk 'NR == 1 {print $3}')

# --- 1. binaries -------------------------------------------------------------------------------
make_copy() { # make_copy TARGET NAME [FEATURES]: make TARGET, copy the binary to $WORK/bin/NAME
  local triple=$AMD64
  [[ $1 == static-arm64 ]] && triple=$ARM64_TRIPLE
  make -s "$1" ${3:+FEATURES=$3} >>"$LOG" 2>&1 || return 1
  cp "$T/$triple/dist/ecs-container-exporter" "$WORK/bin/$2"
}
log "building: make static; make static FEATURES=--no-default-features (log: $LOG)"
make_copy static amd64-default || die "make static failed (see $LOG)"
make_copy static amd64-minimal --no-default-features || die "make static FEATURES=--no-default-features failed (see $LOG)"
SIZE[amd64-default]=$(stat -c %s "$WORK/bin/amd64-default")
SIZE[amd64-minimal]=$(stat -c %s "$WORK/bin/amd64-minimal")
VERSION_DEFAULT=$("$WORK/bin/amd64-default" --version)
VERSION_MINIMAL=$("$WORK/bin/amd64-minimal" --version)
ARM64_NOTE=
if [[ $ARM64 == 1 ]]; then
  log "building: make static-arm64; make static-arm64 FEATURES=--no-default-features"
  if make_copy static-arm64 arm64-default && make_copy static-arm64 arm64-minimal --no-default-features; then
    SIZE[arm64-default]=$(stat -c %s "$WORK/bin/arm64-default")
    SIZE[arm64-minimal]=$(stat -c %s "$WORK/bin/arm64-minimal")
  else
    ARM64_NOTE="\`make static-arm64\` failed here: $(grep -m1 -i 'error' "$LOG" | cut -c1-160)"
    log "arm64: $ARM64_NOTE"
  fi
else
  ARM64_NOTE="not built (BENCH_PUSH_ARM64=0)"
fi
# The default build again, so that target/ holds what `make static` makes (cargo has it cached),
# and the simulator (dist profile, the same target).
make -s static >>"$LOG" 2>&1 || die "make static failed (see $LOG)"
cargo build -q --profile dist --target "$AMD64" --bin ecs-task-sim >>"$LOG" 2>&1 ||
  die "ecs-task-sim did not build (see $LOG)"
cp "$T/$AMD64/dist/ecs-task-sim" "$WORK/bin/ecs-task-sim"
BIN=$WORK/bin/amd64-default
MIN=$WORK/bin/amd64-minimal
SIM=$WORK/bin/ecs-task-sim
for k in "${!SIZE[@]}"; do log "size $k: ${SIZE[$k]} B"; done

make_tls

# --- 2. RSS with push off after SCRAPES scrapes --------------------------------------------------
log "RSS with push off: $SCRAPES scrapes (new connection each) of a $CONTAINERS-container task, default and minimal binary"
start_sim "$SIM" "$WORK/sim-off" --containers "$CONTAINERS" --refresh-secs 0
OFF_SIM_URL=$SIM_URL
for key in off-default off-minimal; do
  bin=$BIN
  [[ $key == off-minimal ]] && bin=$MIN
  start_exporter "$key" "$bin" -- --metadata-url "$OFF_SIM_URL" --interval 1 --log-level warn
  wait_full "$key"
done
for key in off-default off-minimal; do
  curl -sf -o /dev/null -H 'Connection: close' "http://127.0.0.1:${E[$key.port]}/metrics?n=[1-$SCRAPES]" ||
    die "$key: $SCRAPES scrapes did not all answer"
done
for key in off-default off-minimal; do
  pid=${E[$key.pid]}
  OFF[$key.rss]=$(rss_kib "$pid") OFF[$key.hwm]=$(hwm_kib "$pid") OFF[$key.anon]=$(anon_kib "$pid")
  OFF[$key.threads]=$(status_field "$pid" Threads) OFF[$key.file]=$(status_field "$pid" RssFile)
  log "$key: VmRSS ${OFF[$key.rss]} KiB (anon ${OFF[$key.anon]}), peak ${OFF[$key.hwm]} KiB, ${OFF[$key.threads]} threads"
  stop "$pid"
done
stop "$SIM_PID"

# --- 4. CPU per push ----------------------------------------------------------------------------
# Run before the long one: a few minutes less of the machine's background drift between them.
log "CPU per push: http and https + SigV4, --interval $CPU_INTERVAL, $CPU_ROUNDS rounds of $((CPU_SECS / CPU_ROUNDS)) s"
start_receiver recv-cpu-http http
start_receiver recv-cpu-tls https
declare -A SIMLOG
CPU_SIMS=()
for key in cpu-http cpu-tls; do
  start_sim "$SIM" "$WORK/sim-$key" --containers "$CONTAINERS" --refresh-secs 0 -v
  CPU_SIMS+=("$SIM_PID")
  SIMLOG[$key]=$WORK/sim-$key.err
  if [[ $key == cpu-http ]]; then
    start_exporter "$key" "$BIN" -- --metadata-url "$SIM_URL" --interval "$CPU_INTERVAL" --log-level warn \
      --remote-write-url "${P[recv-cpu-http.url]}/api/v1/write"
  else
    start_exporter "$key" "$BIN" AWS_ACCESS_KEY_ID=$KEY_ID AWS_SECRET_ACCESS_KEY=$SECRET -- \
      --metadata-url "$SIM_URL" --interval "$CPU_INTERVAL" --log-level warn \
      --remote-write-url "${P[recv-cpu-tls.url]}/api/v1/write" --remote-write-sigv4 \
      --remote-write-sigv4-region "$REGION" --remote-write-ca-file "$WORK/tls/ca.pem"
  fi
done
wait_sent cpu-http 20 30
wait_sent cpu-tls 20 30
polls() { grep -c 'GET /task/stats' "${SIMLOG[$1]}" || true; }
round_secs=$((CPU_SECS / CPU_ROUNDS))
for ((r = 1; r <= CPU_ROUNDS; r++)); do
  declare -A before
  for key in cpu-http cpu-tls; do
    ours "$key"
    before[$key.cpu]=$(cpu_snap "${E[$key.pid]}") before[$key.sent]=$(sent "$key")
    before[$key.samples]=$(samples "$key") before[$key.polls]=$(polls "$key")
  done
  sleep "$round_secs"
  for key in cpu-http cpu-tls; do
    ours "$key"
    after=$(cpu_snap "${E[$key.pid]}")
    n=$(($(sent "$key") - ${before[$key.sent]}))
    p=$(($(polls "$key") - ${before[$key.polls]}))
    ((n > 0 && p > 0)) || die "$key: no pushes or polls in round $r"
    push=$(cpu_delta "${before[$key.cpu]}" "$after" 1)
    send=$(cpu_delta "${before[$key.cpu]}" "$after" 2)
    poll=$(cpu_delta "${before[$key.cpu]}" "$after" 3)
    # per push and per poll, in ns; the ratio (push + push-send) ÷ poller
    CPU[$key.$r]="$n $p $(calc "$push / $n") $(calc "$send / $n") $(calc "($push + $send) / $n") $(calc "$poll / $p") $(calc "($push + $send) / $n / ($poll / $p)") $(calc "($(samples "$key") - ${before[$key.samples]}) / $n")"
    log "  round $r $key: $n pushes, $p polls; per push: push $(us "$push / $n") µs + push-send $(us "$send / $n") µs; poller $(us "$poll / $p") µs per poll"
  done
done
# The median round by the push ÷ poll ratio (a disturbed round moves one figure, not all).
median_round() {
  local key=$1 r
  for ((r = 1; r <= CPU_ROUNDS; r++)); do echo "$(cut -d' ' -f7 <<<"${CPU[$key.$r]}") $r"; done |
    sort -g | awk '{a[NR] = $2} END {print a[int((NR + 1) / 2)]}'
}
for key in cpu-http cpu-tls; do
  CPU[$key.median]=$(median_round "$key")
  ours "$key"
  CPU[$key.dropped]=$(dropped "$key") CPU[$key.retried]=$(retried "$key")
  recv=recv-cpu-${key#cpu-}
  recv_writes "$recv" >/dev/null
  CPU[$key.conns]=$(recv_conns "$recv")
  CPU[$key.warns]=$(warns "$key")
  stop "${E[$key.pid]}"
done
stop "${P[recv-cpu-http.pid]}"
stop "${P[recv-cpu-tls.pid]}"
for pid in "${CPU_SIMS[@]}"; do stop "$pid"; done

# --- 3. RSS while pushing for PUSH_SECS ----------------------------------------------------------
log "RSS while pushing every second for $PUSH_SECS s: push off / http / https + SigV4 (static) / https + SigV4 (simulator's credentials, 90 s); and every $RECONNECT_INTERVAL s"
start_receiver recv-http http
start_receiver recv-static https
start_receiver recv-sim https
start_receiver recv-reconnect https
start_closing
start_sim "$SIM" "$WORK/sim-long" --containers "$CONTAINERS" --credentials-lifetime 90 -v
LONG_SIM_URL=$SIM_URL
LONG_SIM_PID=$SIM_PID
TLS_ARGS=(--remote-write-sigv4 --remote-write-sigv4-region "$REGION" --remote-write-ca-file "$WORK/tls/ca.pem")
start_exporter long-off "$BIN" -- --metadata-url "$LONG_SIM_URL" --interval 1
start_exporter long-http "$BIN" -- --metadata-url "$LONG_SIM_URL" --interval 1 \
  --remote-write-url "${P[recv-http.url]}/api/v1/write"
start_exporter long-static "$BIN" AWS_ACCESS_KEY_ID=$KEY_ID AWS_SECRET_ACCESS_KEY=$SECRET -- \
  --metadata-url "$LONG_SIM_URL" --interval 1 --remote-write-url "${P[recv-static.url]}/api/v1/write" "${TLS_ARGS[@]}"
start_exporter long-sim "$BIN" AWS_CONTAINER_CREDENTIALS_FULL_URI="$LONG_SIM_URL/v2/credentials/bench" -- \
  --metadata-url "$LONG_SIM_URL" --interval 1 --remote-write-url "${P[recv-sim.url]}/api/v1/write" "${TLS_ARGS[@]}"
start_exporter long-reconnect "$BIN" AWS_ACCESS_KEY_ID=$KEY_ID AWS_SECRET_ACCESS_KEY=$SECRET -- \
  --metadata-url "$LONG_SIM_URL" --interval "$RECONNECT_INTERVAL" \
  --remote-write-url "${P[recv-reconnect.url]}/api/v1/write" "${TLS_ARGS[@]}"
start_exporter long-closing "$BIN" AWS_ACCESS_KEY_ID=$KEY_ID AWS_SECRET_ACCESS_KEY=$SECRET -- \
  --metadata-url "$LONG_SIM_URL" --interval 0.1 \
  --remote-write-url "$CLOSING_URL/api/v1/write" "${TLS_ARGS[@]}"
for key in long-http long-static long-sim long-reconnect long-closing; do wait_sent "$key" 1 30; done
LONG=(long-off long-http long-static long-sim long-reconnect long-closing)
L[long-off.interval]=1 L[long-http.interval]=1 L[long-static.interval]=1 L[long-sim.interval]=1
L[long-reconnect.interval]=$RECONNECT_INTERVAL L[long-closing.interval]=0.1
for key in "${LONG[@]}"; do
  ours "$key"
  [[ $key != long-closing ]] || L[recv-closing.writes0]=$(cat "$WORK/closing.count")
  L[$key.sent0]=$(sent "$key") L[$key.samples0]=$(samples "$key")
  L[$key.cpu0]=$(cpu_snap "${E[$key.pid]}")
done
for key in http static sim reconnect; do
  L[recv-$key.writes0]=$(recv_writes "recv-$key")
  L[recv-$key.conns0]=$(recv_conns "recv-$key")
done
L[creds0]=$(grep -c 'GET /v2/credentials' "$WORK/sim-long.err" || true)
L[t0]=$EPOCHREALTIME
sample_rss "$PUSH_SECS" "${LONG[@]}"
L[secs]=$(calc "$EPOCHREALTIME - ${L[t0]}")
L[creds]=$(($(grep -c 'GET /v2/credentials' "$WORK/sim-long.err" || true) - ${L[creds0]}))
for key in "${LONG[@]}"; do
  ours "$key"
  [[ $key != long-closing ]] || L[recv-closing.writes1]=$(cat "$WORK/closing.count")
  L[$key.cpu1]=$(cpu_snap "${E[$key.pid]}")
  L[$key.sent]=$(($(sent "$key") - ${L[$key.sent0]}))
  L[$key.samples]=$(($(samples "$key") - ${L[$key.samples0]}))
  L[$key.retried]=$(retried "$key") L[$key.dropped]=$(dropped "$key") L[$key.queue]=$(queued "$key")
  L[$key.warns]=$(warns "$key")
  read -r L[$key.start] L[$key.max] L[$key.end] L[$key.slope] L[$key.growth] < <(rss_stats "$WORK/$key.rss")
  L[$key.hwm]=$(hwm_kib "${E[$key.pid]}")
  L[$key.threads]=$(maxcol "$WORK/$key.rss" 3)
done
for key in http static sim reconnect; do
  L[recv-$key.writes]=$(($(recv_writes "recv-$key") - ${L[recv-$key.writes0]}))
  L[recv-$key.rejected]=$(recv_rejected "recv-$key")
  # minus 1: the scrape that read the counter was accepted too
  L[recv-$key.conns]=$(($(recv_conns "recv-$key") - ${L[recv-$key.conns0]} - 1))
done
# The closing receiver: every request on a connection of its own.
L[recv-closing.writes]=$((${L[recv-closing.writes1]} - ${L[recv-closing.writes0]}))
L[recv-closing.rejected]=0 L[recv-closing.conns]=${L[recv-closing.writes]}
for key in "${LONG[@]}"; do stop "${E[$key.pid]}"; done
for key in http static sim reconnect; do stop "${P[recv-$key.pid]}"; done
stop "$CLOSING_PID"
stop "$LONG_SIM_PID"

# --- 5. side by side with Prometheus in agent mode ---------------------------------------------
AGENT_DIALS='net_conntrack_dialer_conn_established_total{dialer_name="remote_storage_write_client"}'
for iv in $PEER_INTERVALS; do
  log "side by side with Prometheus $PROM_VERSION in agent mode: interval $iv s, $PEER_SECS s"
  start_receiver "recv-peer$iv" https
  start_sim "$SIM" "$WORK/sim-peer$iv" --containers "$CONTAINERS"
  purl=${P[recv-peer$iv.url]}/api/v1/write
  start_exporter "ours$iv" "$BIN" AWS_ACCESS_KEY_ID=$KEY_ID AWS_SECRET_ACCESS_KEY=$SECRET -- \
    --metadata-url "$SIM_URL" --interval "$iv" --remote-write-url "$purl" "${TLS_ARGS[@]}"
  start_exporter "scraped$iv" "$BIN" -- --metadata-url "$SIM_URL" --interval "$iv"
  timeout=$((iv < 10 ? iv : 10))
  cat >"$WORK/agent$iv.yml" <<EOF
global:
  scrape_interval: ${iv}s
  scrape_timeout: ${timeout}s
scrape_configs:
  - job_name: agent
    static_configs:
      - targets: ['127.0.0.1:${E[scraped$iv.port]}']
remote_write:
  - url: $purl
    tls_config:
      ca_file: $WORK/tls/ca.pem
    sigv4:
      region: $REGION
EOF
  PROM_ENV=(AWS_ACCESS_KEY_ID=$KEY_ID AWS_SECRET_ACCESS_KEY=$SECRET)
  start_prom "agent$iv" http --enable-feature=agent --config.file="$WORK/agent$iv.yml" \
    --storage.agent.path="$WORK/agent$iv" --log.level=warn
  PROM_ENV=()
  # Both have pushed once (the agent sends within its 5 s batch deadline after a scrape).
  wait_sent "ours$iv" 1 $((iv * 3 + 30))
  for ((i = 0; i < (iv * 3 + 60) * 5; i++)); do
    metrics_to "${P[agent$iv.url]}/metrics" "$WORK/agent$iv.metrics"
    (($(msum "$WORK/agent$iv.metrics" prometheus_remote_storage_samples_total) > 0)) && break
    kill -0 "${P[agent$iv.pid]}" 2>/dev/null || die "the agent exited: $(tail -n3 "$WORK/agent$iv.log")"
    sleep 0.2
  done
  (($(msum "$WORK/agent$iv.metrics" prometheus_remote_storage_samples_total) > 0)) ||
    die "the agent sent nothing in $((iv * 3 + 60)) s: $(tail -n3 "$WORK/agent$iv.log")"
  ours "ours$iv"
  A[$iv.ours.sent0]=$(sent "ours$iv") A[$iv.ours.samples0]=$(samples "ours$iv")
  A[$iv.writes0]=$(recv_writes "recv-peer$iv") A[$iv.conns0]=$(recv_conns "recv-peer$iv")
  A[$iv.dials0]=$(mval "$WORK/agent$iv.metrics" "$AGENT_DIALS")
  A[$iv.agent.samples0]=$(msum "$WORK/agent$iv.metrics" prometheus_remote_storage_samples_total)
  A[$iv.agent.batches0]=$(msum "$WORK/agent$iv.metrics" prometheus_remote_storage_sent_batch_duration_seconds_count)
  for key in "ours$iv" "scraped$iv" "agent$iv"; do
    pid=${E[$key.pid]:-${P[$key.pid]:-}}
    A[$key.ns0]=$(threads_ns "$pid") A[$key.ticks0]=$(cpu_ticks "$pid")
  done
  t0=$EPOCHREALTIME
  sample_rss "$PEER_SECS" "ours$iv" "scraped$iv" "agent$iv"
  A[$iv.secs]=$(calc "$EPOCHREALTIME - $t0")
  for key in "ours$iv" "scraped$iv" "agent$iv"; do
    pid=${E[$key.pid]:-${P[$key.pid]:-}}
    A[$key.ns]=$(($(threads_ns "$pid") - ${A[$key.ns0]}))
    A[$key.ticks]=$(($(cpu_ticks "$pid") - ${A[$key.ticks0]}))
    A[$key.rss]=$(rss_kib "$pid") A[$key.max]=$(maxcol "$WORK/$key.rss" 2) A[$key.hwm]=$(hwm_kib "$pid")
    A[$key.threads]=$(status_field "$pid" Threads)
  done
  ours "ours$iv"
  metrics_to "${P[agent$iv.url]}/metrics" "$WORK/agent$iv.metrics"
  A[$iv.ours.sent]=$(($(sent "ours$iv") - ${A[$iv.ours.sent0]}))
  A[$iv.ours.samples]=$(($(samples "ours$iv") - ${A[$iv.ours.samples0]}))
  A[$iv.ours.bad]="$(retried "ours$iv")/$(dropped "ours$iv")"
  A[$iv.agent.samples]=$(($(msum "$WORK/agent$iv.metrics" prometheus_remote_storage_samples_total) - ${A[$iv.agent.samples0]}))
  A[$iv.agent.batches]=$(($(msum "$WORK/agent$iv.metrics" prometheus_remote_storage_sent_batch_duration_seconds_count) - ${A[$iv.agent.batches0]}))
  A[$iv.agent.bad]="$(msum "$WORK/agent$iv.metrics" prometheus_remote_storage_samples_retried_total)/$(msum "$WORK/agent$iv.metrics" prometheus_remote_storage_samples_failed_total)/$(msum "$WORK/agent$iv.metrics" prometheus_remote_storage_samples_dropped_total)"
  A[$iv.writes]=$(($(recv_writes "recv-peer$iv") - ${A[$iv.writes0]}))
  A[$iv.rejected]=$(recv_rejected "recv-peer$iv")
  A[$iv.agent.conns]=$(($(mval "$WORK/agent$iv.metrics" "$AGENT_DIALS") - ${A[$iv.dials0]}))
  # minus 1: the read of the receiver's counter was accepted too
  A[$iv.ours.conns]=$(($(recv_conns "recv-peer$iv") - ${A[$iv.conns0]} - 1 - ${A[$iv.agent.conns]}))
  for key in "agent$iv" "ours$iv" "scraped$iv"; do stop "${E[$key.pid]:-${P[$key.pid]:-}}"; done
  stop "${P[recv-peer$iv.pid]}"
  stop "$SIM_PID"
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
# Everything the section is made of, for --render-from.
declare -p SIZE OFF CPU L A DATE LOAD_START LOAD_END PROM_VERSION VERSION_DEFAULT VERSION_MINIMAL \
  ARM64_NOTE round_secs PUSH_SECS CPU_SECS CPU_ROUNDS CPU_INTERVAL PEER_SECS PEER_INTERVALS \
  RECONNECT_INTERVAL SCRAPES ARM64 HZ >"$WORK/results.sh"
log "figures saved in $WORK/results.sh (tests/bench/push.sh --render-from it writes the section again)"
fi

# --- the section ---------------------------------------------------------------------------------
MB=1000000
RSS_OFF_LIMIT=1228.8 # 1.2 MiB in KiB
RSS_PUSH_LIMIT=3072  # 3 MiB
FLAT_KIB=64          # the fitted growth after the first minute that still counts as flat
mb() { fmt "$(calc "$1 / 1e6")" '%.3f'; }
mibb() { fmt "$(calc "$1 / 1048576")" '%.3f'; }
size_cell() { [[ -n ${SIZE[$1]:-} ]] && echo "$(num "${SIZE[$1]}") B ($(mb "${SIZE[$1]}") MB, $(mibb "${SIZE[$1]}") MiB)" || echo "n/a"; }
cpu_field() { cut -d' ' -f"$3" <<<"${CPU[$1.${CPU[$1.median]}]}"; } # cpu_field KEY - FIELD
long_verdict_rss() { verdict "${L[$1.max]} <= $RSS_PUSH_LIMIT"; }
long_verdict_flat() { verdict "${L[$1.growth]} <= $FLAT_KIB"; }
delivered() { # delivered KEY: sent over the run vs the run's seconds; dropped, retried; verdict
  local k=$1
  echo "$(num "${L[$k.sent]}") sent in $(fmt "${L[secs]}" '%.0f') s; dropped ${L[$k.dropped]}, retried ${L[$k.retried]}"
}
delivery_ok() { # sent within 3% (and two requests) of the run's polls, none dropped
  local polls
  polls=$(calc "${L[secs]} / ${L[$1.interval]}")
  verdict "${L[$1.dropped]} == 0 && ${L[$1.sent]} >= $polls * 0.97 - 2 && ${L[$1.sent]} <= $polls * 1.03 + 2"
}
long_cpu() { # long_cpu KEY: µs per push (push + push-send) and poller µs per poll over the long run
  local k=$1 push send poll
  push=$(cpu_delta "${L[$k.cpu0]}" "${L[$k.cpu1]}" 1)
  send=$(cpu_delta "${L[$k.cpu0]}" "${L[$k.cpu1]}" 2)
  poll=$(cpu_delta "${L[$k.cpu0]}" "${L[$k.cpu1]}" 3)
  echo "$(us "($push + $send) / ${L[$k.sent]}") µs ($(us "$push / ${L[$k.sent]}") + $(us "$send / ${L[$k.sent]}")) per push; poller $(us "$poll / (${L[secs]} / ${L[$k.interval]})") µs per poll"
}
whole_cpu() { # whole_cpu KEY: the process' CPU over the long run, ms per minute (ticks)
  local k=$1
  fmt "$(calc "$(cpu_delta "${L[$k.cpu0]}" "${L[$k.cpu1]}" 5) / $HZ * 1000 / ${L[secs]} * 60")" '%.0f'
}
pct_core() { fmt "$(calc "$1 * 100")" '%.3f'; } # a fraction of a core, in %

SECTION_FILE=$WORK/section.md
{
  echo "$SECTION"
  echo
  cat <<EOF
Generated by \`tests/bench/push.sh\` (\`make bench-push\`; \`make bench\` runs it too) on $DATE, on
the shared $(nproc)-core machine (load average at start $LOAD_START, at end $LOAD_END). The shipped
binaries: \`make static\` (musl, \`dist\` profile: \`opt-level = "z"\`, LTO, stripped); a simulated
Fargate task of $CONTAINERS containers (\`ecs-task-sim --containers $CONTAINERS\`); the receiver is
Prometheus $PROM_VERSION with \`--web.enable-remote-write-receiver\`, over https with a CA and a
certificate (P-256, SAN IP:127.0.0.1) that openssl made for the run, trusted with
\`--remote-write-ca-file\`. Prometheus ignores the SigV4 \`Authorization\` header: signing is done
and paid for, not checked (the tests check signatures against botocore).

### Budgets

| budget | limit | measured | |
|---|---|---|---|
| amd64 binary, default features (remote write) | ≤ 2.0 MB (2,000,000 B) | $(size_cell amd64-default) | $(verdict "${SIZE[amd64-default]} <= 2 * $MB") |
| amd64 binary, \`--no-default-features\` | ≤ 1.05 MB (1,050,000 B) | $(size_cell amd64-minimal) | $(verdict "${SIZE[amd64-minimal]} <= 1.05 * $MB") |
| RSS with push off after $(num "$SCRAPES") scrapes, $CONTAINERS containers (default binary) | ≤ 1.2 MiB | $(kib "${OFF[off-default.rss]}") KiB ($(kib_mib "${OFF[off-default.rss]}")) | $(verdict "${OFF[off-default.rss]} <= $RSS_OFF_LIMIT") |
| RSS pushing every 1 s over https + SigV4 for $PUSH_SECS s, static credentials: max | ≤ 3 MiB | $(kib "${L[long-static.max]}") KiB ($(kib_mib "${L[long-static.max]}")) | $(long_verdict_rss long-static) |
| the same with the simulator's credentials (fetched every ~45 s): max | ≤ 3 MiB | $(kib "${L[long-sim.max]}") KiB ($(kib_mib "${L[long-sim.max]}")) | $(long_verdict_rss long-sim) |
| the same, flat: growth of the least-squares line from 60 s to the end | ≤ $FLAT_KIB KiB | static $(fmt "${L[long-static.growth]}" '%+.0f') KiB, simulator's credentials $(fmt "${L[long-sim.growth]}" '%+.0f') KiB | $(verdict "${L[long-static.growth]} <= $FLAT_KIB && ${L[long-sim.growth]} <= $FLAT_KIB") |
| delivery over https + SigV4: sent ≈ seconds, dropped 0 (static / simulator's credentials) | sent within 3% of the seconds | $(num "${L[long-static.sent]}") / $(num "${L[long-sim.sent]}") sent in $(fmt "${L[secs]}" '%.0f') s; dropped ${L[long-static.dropped]} / ${L[long-sim.dropped]} | $(verdict "${L[long-static.dropped]} == 0 && ${L[long-sim.dropped]} == 0 && ${L[long-static.sent]} >= ${L[secs]} * 0.97 && ${L[long-sim.sent]} >= ${L[secs]} * 0.97") |

### 1. Binary sizes

| | amd64 | arm64 |
|---|---:|---:|
| default features (remote write: rustls, ring, webpki roots, snappy) | $(size_cell amd64-default) | $(size_cell arm64-default) |
| \`--no-default-features\` (no remote write, no TLS) | $(size_cell amd64-minimal) | $(size_cell arm64-minimal) |
| what remote write adds | $(num $((${SIZE[amd64-default]} - ${SIZE[amd64-minimal]}))) B ($(fmt "$(calc "(${SIZE[amd64-default]} - ${SIZE[amd64-minimal]}) / ${SIZE[amd64-minimal]} * 100")" '%+.0f')%) | $( [[ -n ${SIZE[arm64-default]:-} ]] && echo "$(num $((${SIZE[arm64-default]} - ${SIZE[arm64-minimal]}))) B ($(fmt "$(calc "(${SIZE[arm64-default]} - ${SIZE[arm64-minimal]}) / ${SIZE[arm64-minimal]} * 100")" '%+.0f')%)" || echo "n/a") |

\`$VERSION_DEFAULT\`; \`$VERSION_MINIMAL\`.${ARM64_NOTE:+ arm64: $ARM64_NOTE.}

### 2. RSS with push off

$(num "$SCRAPES") scrapes on a new connection each (\`curl -H 'Connection: close'\`), \`--interval 1\`, both
binaries at once on one simulator (\`--refresh-secs 0\`), read after the scrapes.

| | default binary (push off) | \`--no-default-features\` |
|---|---:|---:|
| VmRSS | $(kib "${OFF[off-default.rss]}") KiB ($(kib_mib "${OFF[off-default.rss]}")) | $(kib "${OFF[off-minimal.rss]}") KiB ($(kib_mib "${OFF[off-minimal.rss]}")) |
| of which anonymous (RssAnon): heap, stacks, relocated data | $(kib "${OFF[off-default.anon]}") KiB | $(kib "${OFF[off-minimal.anon]}") KiB |
| of which file-backed (RssFile): the binary's pages mapped, clean | $(kib "${OFF[off-default.file]}") KiB | $(kib "${OFF[off-minimal.file]}") KiB |
| peak (VmHWM) | $(kib "${OFF[off-default.hwm]}") KiB | $(kib "${OFF[off-minimal.hwm]}") KiB |
| threads | ${OFF[off-default.threads]} | ${OFF[off-minimal.threads]} |

### 3. RSS while pushing every second for $PUSH_SECS s

Six exporters at once (default binary; \`--interval 1\` but the last two) on one simulated task
(\`fargate\` profile, stats refreshed every 10 s as on Fargate, \`--credentials-lifetime 90\`), each
pushing to its own receiver. The fifth pushes every $RECONNECT_INTERVAL s: ureq drops a pooled
connection idle for 15 s (its \`max_idle_age\` default), so at any interval over 15 s (the
default \`--interval\` is 60 s) every push opens a new connection, with a TLS handshake; the
"new connections" row shows it. The sixth pushes ten times a second to a small receiver
of this script's (Python, TLS with the same certificate) that closes every connection: a TLS
handshake per push, thousands in the run, to show whether reconnecting costs memory. VmRSS from \`/proc/<pid>/status\` every 10 s from the first accepted push; the
slope is the least-squares line over the samples from 60 s on. The simulator's credentials
(\`AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:<sim>/v2/credentials/bench\`) live 90 s
and are fetched again at half their life (fetches during the run: $(num "${L[creds]}")).

| | push off | http, no auth | https + SigV4, static credentials | https + SigV4, simulator's credentials | https + SigV4, static, \`--interval $RECONNECT_INTERVAL\` | https + SigV4, static, \`--interval 0.1\`, the receiver closes every connection |
|---|---:|---:|---:|---:|---:|---:|
EOF
  row4() { echo "| $1 | $2 | $3 | $4 | $5 | $6 | $7 |"; }
  lk=(long-off long-http long-static long-sim long-reconnect long-closing)
  cells() { local f=$1 k out=(); for k in "${lk[@]}"; do out+=("$("$f" "$k")"); done; row4 "$2" "${out[@]}"; }
  c_start() { echo "$(kib "${L[$1.start]}") KiB"; }
  c_max() { echo "**$(kib "${L[$1.max]}") KiB** ($(kib_mib "${L[$1.max]}"))"; }
  c_end() { echo "$(kib "${L[$1.end]}") KiB"; }
  c_hwm() { echo "$(kib "${L[$1.hwm]}") KiB"; }
  c_slope() { echo "$(fmt "${L[$1.slope]}" '%+.1f') KiB/h ($(fmt "${L[$1.growth]}" '%+.0f') KiB over the run)"; }
  c_threads() { echo "${L[$1.threads]}"; }
  c_sent() { [[ $1 == long-off ]] && echo "–" || echo "$(num "${L[$1.sent]}") in $(fmt "${L[secs]}" '%.0f') s ($(num "$(calc "${L[secs]} / ${L[$1.interval]}")") polls)"; }
  c_samples() { [[ $1 == long-off ]] && echo "–" || echo "$(fmt "$(calc "${L[$1.samples]} / ${L[$1.sent]}")" '%.0f')"; }
  c_bad() { [[ $1 == long-off ]] && echo "–" || echo "${L[$1.retried]} / ${L[$1.dropped]} / ${L[$1.queue]}"; }
  c_recv() { [[ $1 == long-off ]] && echo "–" || echo "$(num "${L[recv-${1#long-}.writes]}") (other answers: ${L[recv-${1#long-}.rejected]})"; }
  c_conns() { [[ $1 == long-off ]] && echo "–" || num "${L[recv-${1#long-}.conns]}"; }
  c_cpu() { [[ $1 == long-off ]] && echo "–" || long_cpu "$1"; }
  c_whole() { echo "$(whole_cpu "$1") ms"; }
  c_warns() { echo "${L[$1.warns]}"; }
  c_verdict() { [[ $1 == long-off ]] && echo "–" || echo "$(long_verdict_rss "$1"), flat: $(long_verdict_flat "$1"), delivery: $(delivery_ok "$1")"; }
  cells c_start "VmRSS at the start (first push accepted)"
  cells c_max "VmRSS, max of the samples"
  cells c_end "VmRSS at the end"
  cells c_hwm "peak (VmHWM) at the end"
  cells c_slope "slope from 60 s on"
  cells c_threads "threads (max)"
  cells c_sent "requests sent (\`requests_total{outcome=\"sent\"}\`, over the run)"
  cells c_samples "samples per request"
  cells c_bad "retried / dropped / queued at the end"
  cells c_recv "write requests the receiver answered 2xx over the run"
  cells c_conns "new connections the receiver accepted during the run"
  cells c_cpu "CPU per push (push + push-send) and per poll, over the run"
  cells c_whole "process CPU per minute (utime+stime)"
  cells c_warns "WARN/ERROR log lines"
  cells c_verdict "≤ 3 MiB, flat (≤ $FLAT_KIB KiB), sent ≈ seconds and none dropped"
  cat <<EOF

### 4. CPU per push, $CONTAINERS-container task

Each exporter on a simulator of its own (\`--refresh-secs 0\`), \`--interval $CPU_INTERVAL\` (a push
per poll), pushing to its own receiver; $CPU_ROUNDS rounds of $round_secs s after 20 pushes of
warm-up. CPU per thread from \`/proc/<pid>/task/<tid>/schedstat\` (ns): \`push\` encodes the
WriteRequest and snappy-compresses it; \`push-send\` signs (SigV4: SHA-256 of the body, HMAC
chain) and sends (TLS records over a kept-alive connection). Pushes from
\`requests_total{outcome="sent"}\`, polls from the simulator's request log. The median round (by
the ratio) is shown; every round is in \`${WORK#"$ROOT"/}/push.log\`.

| | pushes | samples per push | \`push\` (encode + compress) | \`push-send\` (sign + send) | per push | \`poller\`, per poll | push ÷ poll |
|---|---:|---:|---:|---:|---:|---:|---:|
EOF
  for key in cpu-http cpu-tls; do
    label="http, no auth"
    [[ $key == cpu-tls ]] && label="https + SigV4 (static credentials)"
    echo "| $label | $(cpu_field "$key" - 1) | $(fmt "$(cpu_field "$key" - 8)" '%.0f') | $(us "$(cpu_field "$key" - 3)") µs | $(us "$(cpu_field "$key" - 4)") µs | **$(us "$(cpu_field "$key" - 5)") µs** | $(us "$(cpu_field "$key" - 6)") µs | **$(fmt "$(cpu_field "$key" - 7)" '%.2f')** |"
  done
  cat <<EOF

Rounds (push µs per push / poller µs per poll): http $(for ((r = 1; r <= CPU_ROUNDS; r++)); do printf '%s/%s ' "$(us "$(cut -d' ' -f5 <<<"${CPU[cpu-http.$r]}")")" "$(us "$(cut -d' ' -f6 <<<"${CPU[cpu-http.$r]}")")"; done)· https + SigV4 $(for ((r = 1; r <= CPU_ROUNDS; r++)); do printf '%s/%s ' "$(us "$(cut -d' ' -f5 <<<"${CPU[cpu-tls.$r]}")")" "$(us "$(cut -d' ' -f6 <<<"${CPU[cpu-tls.$r]}")")"; done)µs. Over the whole run: dropped ${CPU[cpu-http.dropped]} / ${CPU[cpu-tls.dropped]}, retried ${CPU[cpu-http.retried]} / ${CPU[cpu-tls.retried]}, connections the receivers accepted ${CPU[cpu-http.conns]} / ${CPU[cpu-tls.conns]} (counting this script's own reads of the receiver), WARN/ERROR lines ${CPU[cpu-http.warns]} / ${CPU[cpu-tls.warns]} (http / https).

### 5. Side by side with Prometheus $PROM_VERSION in agent mode

The nearest peer that runs here (the ADOT collector is not packaged). Same task (one simulator),
same receiver (https), same interval, $PEER_SECS s after both had pushed once, all at once:
**ours** pushes by itself (https + SigV4, static credentials); **agent setup** is the same
exporter with push off, scraped by \`prometheus --enable-feature=agent\` at that interval, which
remote-writes to the receiver (\`tls_config.ca_file\`, \`sigv4\` with the same static
credentials, defaults otherwise). CPU: ours from every live thread's schedstat (ns), the agent
from utime+stime ($HZ ticks/s); RSS from \`/proc/<pid>/status\`, sampled every 10 s.

| interval | | ours (pushing) | agent setup: exporter (push off) | agent setup: Prometheus agent | agent ÷ ours | agent setup ÷ ours |
|---|---|---:|---:|---:|---:|---:|
EOF
  for iv in $PEER_INTERVALS; do
    o=ours$iv s=scraped$iv a=agent$iv
    secs=${A[$iv.secs]}
    on=${A[$o.ns]} sn=${A[$s.ns]}
    an=$(calc "${A[$a.ticks]} / $HZ * 1e9")
    echo "| $iv s | VmRSS at the end (max of the samples) | **$(kib "${A[$o.rss]}") KiB** (max $(kib "${A[$o.max]}")) | $(kib "${A[$s.rss]}") KiB (max $(kib "${A[$s.max]}")) | **$(kib "${A[$a.rss]}") KiB** (max $(kib "${A[$a.max]}")) | **$(fmt "$(calc "${A[$a.rss]} / ${A[$o.rss]}")" '%.0f')×** | $(fmt "$(calc "(${A[$a.rss]} + ${A[$s.rss]}) / ${A[$o.rss]}")" '%.0f')× |"
    echo "| | CPU over $(fmt "$secs" '%.0f') s (% of one core; ours' utime+stime in ticks as a check) | **$(ms "$on") ms** ($(pct_core "$(calc "$on / 1e9 / $secs")")%; $(fmt "$(calc "${A[$o.ticks]} * 1000 / $HZ")" '%.0f') ms) | $(ms "$sn") ms ($(pct_core "$(calc "$sn / 1e9 / $secs")")%; $(fmt "$(calc "${A[$s.ticks]} * 1000 / $HZ")" '%.0f') ms) | **$(ms "$an") ms** ($(pct_core "$(calc "$an / 1e9 / $secs")")%) | **$(fmt "$(calc "$an / $on")" '%.0f')×** | $(fmt "$(calc "($an + $sn) / $on")" '%.0f')× |"
    echo "| | what pushing adds: ours − the non-pushing exporter; the agent | $(ms "$on - $sn") ms | | $(ms "$an") ms | $(awk -v a="$an" -v d="$(calc "$on - $sn")" 'BEGIN {if (d > 0) printf "%.0f×", a / d; else print "n/a"}') | |"
    echo "| | requests; samples sent | ${A[$iv.ours.sent]}; $(num "${A[$iv.ours.samples]}") | | ${A[$iv.agent.batches]}; $(num "${A[$iv.agent.samples]}") | | |"
    echo "| | retried / dropped (ours: requests; the agent: samples retried / failed / dropped) | ${A[$iv.ours.bad]} | | ${A[$iv.agent.bad]} | | |"
    echo "| | new connections to the receiver (TLS handshakes) | ${A[$iv.ours.conns]} | | ${A[$iv.agent.conns]} | | |"
    echo "| | threads at the end | ${A[$o.threads]} | ${A[$s.threads]} | ${A[$a.threads]} | | |"
  done
  cat <<EOF

The receiver answered 2xx to $(for iv in $PEER_INTERVALS; do printf '%s write requests in the %s s run (other answers since its start: %s); ' "${A[$iv.writes]}" "$iv" "${A[$iv.rejected]}"; done)the
agent batches its samples (up to 5 s per request by default), ours sends one request per poll.
For context, not measured here: AWS's ADOT collector Fargate sidecar template
(aws-observability/aws-otel-collector, \`deployment-template/ecs/aws-otel-fargate-sidecar-deployment-cfn.yaml\`)
reserves 256 CPU units (0.25 vCPU) and 512 MiB for the collector container.

### Reading the figures

- **Size.** Remote write brings rustls with ring (its C and assembly), the public roots as whole
  certificates (\`webpki-root-certs\`, so that \`--remote-write-ca-file\` can sit beside them),
  snappy and ureq's TLS glue. \`--no-default-features\` leaves all of it out.
- **RSS with push off.** Compare the RssAnon and RssFile rows: what the process allocates (heap,
  stacks, relocated data) differs little between the two builds; the binary's own pages, clean
  and file-backed, grow with its text (the kernel maps code around every page it faults in).
- **RSS while pushing.** Against "push off": the two pusher threads (\`push\`, \`push-send\`)
  and their buffers, the last request and the staleness set; https adds rustls' connection
  state, the parsed root store and ring. VmHWM above VmRSS is start-up and the first pushes.
  The slope is a least-squares line through samples that move by a few pages either way: over
  a few dozen pushes (the \`--interval $RECONNECT_INTERVAL\` column) one step of the allocator
  reads as a slope; the last column's thousands of reconnections are the test of a leak per
  connection. A thread count above 5 there is a resolver thread caught alive (below).
- **CPU per push.** Most of it is \`push\`: every sample's label set is built as owned strings,
  sorted, and merged with the previous push's sets (staleness) before the protobuf and snappy;
  allocation-heavy work, where musl's allocator (the static binary's) is slower than glibc's.
  \`push-send\` adds SigV4 (a SHA-256 of the body, four HMACs) and TLS records. A new
  connection (every push at an interval over 15 s) adds a TCP connect, a TLS handshake and a
  resolver thread: ureq runs each lookup on a new thread when a timeout is set, as
  \`src/source/client.rs\` notes for the poller's requests, which avoid it.
- **The agent.** Its CPU is mostly its own running cost (Go runtime, WAL, housekeeping) rather
  than per-sample work, which is why it changes little between a 15 s and a 1 s interval, while
  ours follows the number of polls and pushes.

### Exact commands

\`\`\`sh
make static && cp target/$AMD64/dist/ecs-container-exporter bin/amd64-default
make static FEATURES=--no-default-features && cp target/$AMD64/dist/ecs-container-exporter bin/amd64-minimal
make static-arm64 [FEATURES=--no-default-features]
cargo build --profile dist --target $AMD64 --bin ecs-task-sim
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj '/CN=...CA' \\
  -addext basicConstraints=critical,CA:TRUE -keyout ca.key -out ca.pem
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=127.0.0.1 -keyout server.key -out server.csr
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -extfile server.ext -out server.pem  # SAN IP:127.0.0.1, serverAuth
prometheus --web.listen-address=127.0.0.1:<port> --config.file=receiver.yml --web.config.file=web.yml \\
  --storage.tsdb.path=<dir> --web.enable-remote-write-receiver        # web.yml: tls_server_config
ecs-task-sim --listen 127.0.0.1:0 --containers $CONTAINERS [--refresh-secs 0] [--credentials-lifetime 90] -v
# 2: push off, default and minimal binary; $SCRAPES scrapes each
ecs-container-exporter --metadata-url <sim> --bind-address 127.0.0.1 --exporter-port <port> --interval 1
curl -s -o /dev/null -H 'Connection: close' 'http://127.0.0.1:<port>/metrics?n=[1-$SCRAPES]'
# 3 and 4: (env -i) AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... or
#          AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:<sim>/v2/credentials/bench
ecs-container-exporter --metadata-url <sim> --bind-address 127.0.0.1 --exporter-port <port> \\
  --interval 1|$CPU_INTERVAL --remote-write-url https://127.0.0.1:<receiver>/api/v1/write \\
  --remote-write-sigv4 --remote-write-sigv4-region $REGION --remote-write-ca-file ca.pem
# 3 also: --interval $RECONNECT_INTERVAL; and --interval 0.1 to python3 closing.py (written by the script:
#   https, every request answered 204 with Connection: close)
# 5: the same exporter pushing, and one with push off scraped by
prometheus --enable-feature=agent --config.file=agent.yml --storage.agent.path=<dir> \\
  --web.listen-address=127.0.0.1:<port>   # scrape_interval = --interval; remote_write: tls_config, sigv4
\`\`\`

Knobs: \`BENCH_PUSH_SECS\` ($PUSH_SECS here), \`BENCH_PUSH_CPU_SECS\` ($CPU_SECS),
\`BENCH_PUSH_CPU_ROUNDS\` ($CPU_ROUNDS), \`BENCH_PUSH_PEER_SECS\` ($PEER_SECS),
\`BENCH_PUSH_PEER_INTERVALS\` ($PEER_INTERVALS), \`BENCH_PUSH_RECONNECT_INTERVAL\`
($RECONNECT_INTERVAL), \`BENCH_PUSH_ARM64\` ($ARM64).
EOF
} >"$SECTION_FILE"

cat "$SECTION_FILE"

# --update FILE: the section replaces the one of the same heading (up to the next "## "), or
# goes before "## Notes", or at the end.
if [[ -n $UPDATE ]]; then
  [[ -f $UPDATE ]] || die "--update: $UPDATE does not exist"
  python3 - "$UPDATE" "$SECTION_FILE" "$SECTION" <<'PY'
import sys
path, section_file, heading = sys.argv[1:]
lines = open(path, encoding="utf-8").read().split("\n")
new = open(section_file, encoding="utf-8").read().rstrip("\n").split("\n")
if heading in lines:
    start = lines.index(heading)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    lines[start:end] = new + [""]
else:
    # where run.sh puts it: after the budgets, before the HTTP server section (or the notes)
    after = [i for i, l in enumerate(lines) if l.startswith("## The HTTP server") or l == "## Notes"]
    if after:
        lines[after[0]:after[0]] = new + [""]
    else:
        lines += [""] + new
open(path, "w", encoding="utf-8").write("\n".join(lines))
PY
  log "updated $UPDATE"
fi
log "done"

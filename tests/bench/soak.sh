#!/usr/bin/env bash
# Soak test: 100,000 scrapes of /metrics against a release build of the exporter while the
# simulated endpoint flaps (status500 on both endpoints switched on and off every second), with
# the exporter's VmRSS and thread count at start and end. Prints markdown tables on stdout (build
# output and progress go to stderr).
#
#   bash tests/bench/soak.sh          (from the repository root; `make soak` runs it)
#
# Loopback only. Bounded in count and in time: SOAK_SCRAPES (default 100000) scrapes, at most
# SOAK_MAX_SECONDS (default 300) of load. Uses wrk when installed (apt-get install -y wrk), else
# (or with SOAK_TOOL=python) a keep-alive loop in Python. SOAK_CONNECTIONS (default 8) concurrent
# connections with wrk; SOAK_INTERVAL (default 0.5) is the exporter's poll interval, so polls land
# on both flap states.
# With wrk each connection waits SOAK_DELAY_MS (default 1) between scrapes, which spreads the
# scrapes over some seconds (several flaps, dozens of polls); 0 scrapes flat out (~1-2 s).
set -euo pipefail
cd "$(dirname "$0")/../.."

SCRAPES=${SOAK_SCRAPES:-100000}
MAX_SECONDS=${SOAK_MAX_SECONDS:-300}
CONNECTIONS=${SOAK_CONNECTIONS:-8}
INTERVAL=${SOAK_INTERVAL:-0.5}
DELAY_MS=${SOAK_DELAY_MS:-1}
WRK_THREADS=2

# Logging, the exit trap (every PID in PIDS killed on exit, also on Ctrl-C; $work removed), free
# ports, the simulator, /proc readers: shared with the other scripts.
# shellcheck source=lib.sh
. tests/bench/lib.sh
log_as soak

log "building (cargo build --release --bins)"
cargo build --release --bins >&2
bin="${CARGO_TARGET_DIR:-target}/release"
temp_work

metric() { # body name -> value of an unlabelled or first matching series
  awk -v n="$2" '$1 == n || index($1, n "{") == 1 { print $2; exit }' <<<"$1"
}

# The simulated endpoint.
start_sim "$bin/ecs-task-sim" "$work/sim" --profile ec2-bridge
sim_url=$SIM_URL

# The exporter, on a port of its own (retried if another process takes the port first).
answers() { curl -fs -o /dev/null "http://127.0.0.1:$1/metrics"; }
start_on_free_port answers "$work/exporter.err" "$bin/ecs-container-exporter" --metadata-url "$sim_url" \
  --bind-address 127.0.0.1 --exporter-port @PORT@ --interval "$INTERVAL" --log-level error ||
  die "the exporter did not start: $(cat "$work/exporter.err")"
exporter=$PID port=$PORT
url="http://127.0.0.1:$port/metrics"
for _ in $(seq 100); do
  curl -fs "$url" | grep -q '^ecs_exporter_up 1' && break
  sleep 0.1
done

# Warm-up: the allocator's arenas and the first connection threads settle in the first scrapes,
# so "start" is measured after a warm-up; growth after that would be a leak.
curl -fs -o /dev/null "$url?warmup=[1-2000]" || true
# ... and at the load's own concurrency (new threads get their allocator arenas once).
if command -v wrk >/dev/null 2>&1; then
  wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d1s "$url" >/dev/null 2>&1 || true
fi
rss_start=$(status_field "$exporter" VmRSS)
threads_start=$(status_field "$exporter" Threads)
log "exporter pid $exporter on $url: VmRSS ${rss_start} KiB, ${threads_start} threads"

# The flapping endpoint: status500 on both endpoints for a second, then a good second.
(
  end=$((SECONDS + MAX_SECONDS + 5))
  flaps=0
  while ((SECONDS < end)); do
    curl -fs -o /dev/null "$sim_url/control/fault?kind=status500&endpoint=both" || true
    sleep 1
    curl -fs -o /dev/null "$sim_url/control/clear" || true
    flaps=$((flaps + 1))
    echo "$flaps" >"$work/flaps"
    sleep 1
  done
) &
flapper=$!
PIDS+=("$flapper")
sleep 1.2 # start under a fault

# The load.
started=$(date +%s.%N)
if [[ ${SOAK_TOOL:-auto} != python ]] && command -v wrk >/dev/null 2>&1; then
  tool="wrk ($WRK_THREADS threads, $CONNECTIONS connections, ${DELAY_MS} ms between scrapes per connection)"
  # Each wrk thread stops after its share and says so in a marker file; wrk itself only ends at
  # its duration, so it is interrupted (SIGINT: it prints its results) once every thread is done.
  cat >"$work/stop.lua" <<'LUA'
local limit = tonumber(os.getenv("SOAK_PER_THREAD"))
local marker = os.getenv("SOAK_MARKER")
local pause = tonumber(os.getenv("SOAK_DELAY_MS")) or 0
local count = 0
if pause > 0 then
  function delay()
    return pause
  end
end
function response(status, headers, body)
  count = count + 1
  if count == limit then
    local f = io.open(marker, "a")
    f:write("done\n")
    f:close()
    wrk.thread:stop()
  end
end
LUA
  : >"$work/marker"
  SOAK_PER_THREAD=$(((SCRAPES + WRK_THREADS - 1) / WRK_THREADS)) SOAK_MARKER="$work/marker" \
    SOAK_DELAY_MS="$DELAY_MS" \
    wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${MAX_SECONDS}s" --timeout 5s --latency \
    -s "$work/stop.lua" "$url" >"$work/load.out" 2>&1 &
  wrk_pid=$!
  PIDS+=("$wrk_pid")
  while kill -0 "$wrk_pid" 2>/dev/null && (($(wc -l <"$work/marker") < WRK_THREADS)); do
    sleep 0.1
  done
  kill -INT "$wrk_pid" 2>/dev/null || true
  wait "$wrk_pid" 2>/dev/null || true
  forget "$wrk_pid"
  cat "$work/load.out" >&2
  done_scrapes=$(awk '/requests in/ { print $1; exit }' "$work/load.out")
  non200=$(awk -F': *' '/Non-2xx or 3xx responses/ { print $2; exit }' "$work/load.out")
  non200=${non200:-0}
  errors=$(awk '/Socket errors/ { sub(/.*Socket errors: */, ""); print; exit }' "$work/load.out")
  errors=${errors:-none}
  p50=$(awk '$1 == "50%" { print $2; exit }' "$work/load.out")
  p99=$(awk '$1 == "99%" { print $2; exit }' "$work/load.out")
else
  tool="python3 http.client (1 keep-alive connection)"
  python3 - "$port" "$SCRAPES" "$MAX_SECONDS" >"$work/load.out" <<'PY'
import http.client, sys, time
port, total, limit = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
done = bad = errors = 0
lat = []
t0 = time.monotonic()
while done < total and time.monotonic() - t0 < limit:
    s = time.monotonic()
    try:
        conn.request("GET", "/metrics")
        r = conn.getresponse()
        r.read()
        bad += r.status != 200
    except Exception:
        errors += 1
        conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    lat.append(time.monotonic() - s)
    done += 1
lat.sort()
q = lambda p: "%.2fms" % (1000 * lat[min(len(lat) - 1, int(p * len(lat)))]) if lat else "-"
print(done, bad, errors, q(0.5), q(0.99))
PY
  read -r done_scrapes non200 errors p50 p99 <"$work/load.out"
fi
finished=$(date +%s.%N)
stop "$flapper"
curl -fs -o /dev/null "$sim_url/control/clear" || true

alive=yes
kill -0 "$exporter" 2>/dev/null || alive=no
rss_end=$(status_field "$exporter" VmRSS || echo "-")
hwm_end=$(status_field "$exporter" VmHWM || echo "-")
threads_end=$(status_field "$exporter" Threads || echo "-")
body=$(curl -fs "$url" || true)
status_errors=$(grep -E '^ecs_exporter_poll_errors_total\{endpoint="task",reason="status"\}' <<<"$body" | awk '{ print $2 }')
other_errors=$(grep -E '^ecs_exporter_poll_errors_total' <<<"$body" | grep -v 'reason="status"' | awk '{ s += $2 } END { print s + 0 }')
flaps=$(cat "$work/flaps" 2>/dev/null || echo 0)
seconds=$(awk -v a="$started" -v b="$finished" 'BEGIN { printf "%.1f", b - a }')
rate=$(awk -v n="${done_scrapes:-0}" -v a="$started" -v b="$finished" 'BEGIN { if (b > a) printf "%.0f", n / (b - a); else print "-" }')

cat <<EOF
## Soak: ${done_scrapes:-0} scrapes of /metrics while the endpoint flaps

Load: $tool, release build, poll interval ${INTERVAL} s, status500 on/off every second.

| | start (after a warm-up: 2,000 scrapes, then 1 s of the same load) | end |
|---|---:|---:|
| VmRSS (KiB) | $rss_start | $rss_end |
| Threads | $threads_start | $threads_end |
| VmHWM, peak RSS (KiB) | | $hwm_end |

| scrapes | non-200 | socket errors | seconds | scrapes/s | p50 | p99 | flaps | poll errors (status) | poll errors (other) | alive |
|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|
| ${done_scrapes:-0} | $non200 | $errors | $seconds | $rate | ${p50:--} | ${p99:--} | $flaps | ${status_errors:-0} | $other_errors | $alive |
EOF

[[ $alive == yes && $non200 == 0 ]]

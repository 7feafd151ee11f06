#!/usr/bin/env bash
# The evidence for not using tiny_http (the design card's choice; src/serve/http.rs says why),
# measured side by side with our exporter in one run. Prints a markdown section on stdout (build
# output and progress go to stderr):
#
#   1. accept errors: each server runs under `prlimit --nofile=64:64` (and 63:63), is flooded
#      with more idle TCP connections than that, the flood is released, then 20 ordinary
#      `GET /metrics` are sent: how many are answered? (tiny_http 0.12.0's accept thread ends on
#      the first EMFILE, in accept() or in the try_clone of the accepted socket);
#   2. idle connections: Threads and VmRSS (/proc/<pid>/status) idle, while 1,000 idle TCP
#      connections (connect, send nothing) are held, and after they are released.
#
#   bash tests/bench/tiny_http.sh     (from the repository root; `make bench-tiny-http` runs it)
#
# tiny_http is built in a throwaway cargo project in a temporary directory (removed on exit), with
# `tiny_http = "=0.12.0"` and the plain `Server::http` + `incoming_requests()` loop; its target
# directory is cached in target/bench/tiny_http-target so a rerun does not rebuild it. Ours is
# target/release/ecs-container-exporter, built (cargo build --release --bins) only if missing. Needs
# cargo (network access to crates.io on the first run), python3 (the clients:
# tests/bench/server_client.py, as for server.sh), prlimit (util-linux). Loopback only; every wait
# is bounded; every process started here is killed by its PID on exit. Knobs: TINY_IDLE (1000)
# idle connections, TINY_FLOOD (150) flood connections, TINY_NOFILE (64) the servers'
# RLIMIT_NOFILE in the flood, TINY_GETS (20) requests after it.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
T=${CARGO_TARGET_DIR:-$ROOT/target}
IDLE=${TINY_IDLE:-1000}
FLOOD=${TINY_FLOOD:-150}
NOFILE=${TINY_NOFILE:-64}
GETS=${TINY_GETS:-20}
TINY_VERSION=0.12.0

# Logging, tool checks, the exit trap (every PID in PIDS killed on exit, $work removed), free
# ports, the simulator, number helpers: shared with the other scripts.
# shellcheck source=lib.sh
. "$ROOT/tests/bench/lib.sh"
log_as tiny_http
need_tools cargo python3 prlimit
temp_work

# The client sockets (1,000 idle connections + a few) and the servers of experiment 2, which
# inherit this limit, need more descriptors than a common soft limit of 1024.
raise_nofile $((IDLE + 256))
log "ulimit -n $(ulimit -n) (hard $(ulimit -Hn))"

# --- builds ------------------------------------------------------------------------------------
if [[ ! -x $T/release/ecs-container-exporter || ! -x $T/release/ecs-task-sim ]]; then
  log "building ours: cargo build --release --bins"
  cargo build --release --bins >&2
fi
OURS=$T/release/ecs-container-exporter
SIM=$T/release/ecs-task-sim

# The tiny_http server a straightforward exporter would write: Server::http, then
# `for rq in server.incoming_requests()`, a fixed small body on GET /metrics. With --keep-going it
# loops on server.recv() and ignores its errors instead (a more defensive use of the same API).
mkdir -p "$work/probe/src" "$T/bench"
cat >"$work/probe/Cargo.toml" <<EOF
[package]
name = "tiny-http-probe"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
tiny_http = "=$TINY_VERSION"

[workspace]
EOF
cat >"$work/probe/src/main.rs" <<'EOF'
use std::io::Write;
use tiny_http::{Header, Request, Response, Server};

const BODY: &str = "# HELP probe_up Always 1.\n# TYPE probe_up gauge\nprobe_up 1\n";

fn answer(rq: Request) {
    let response = if rq.url() == "/metrics" {
        let ct = "Content-Type: text/plain; version=0.0.4".parse::<Header>().unwrap();
        Response::from_string(BODY).with_header(ct)
    } else {
        Response::from_string("not found\n").with_status_code(404)
    };
    let _ = rq.respond(response);
}

fn main() {
    let keep_going = std::env::args().any(|a| a == "--keep-going");
    let server = Server::http("127.0.0.1:0").expect("bind 127.0.0.1:0");
    println!("listening on http://{}", server.server_addr());
    std::io::stdout().flush().unwrap();
    if keep_going {
        loop {
            match server.recv() {
                Ok(rq) => answer(rq),
                Err(e) => eprintln!("recv error (ignored): {e}"),
            }
        }
    } else {
        for rq in server.incoming_requests() {
            answer(rq);
        }
        eprintln!("incoming_requests() ended");
    }
}
EOF
if [[ -f $T/bench/tiny_http-probe.lock ]]; then
  cp "$T/bench/tiny_http-probe.lock" "$work/probe/Cargo.lock"
fi
log "building the tiny_http $TINY_VERSION probe (cargo build --release, into $T/bench)"
(
  cd "$work/probe"
  export CARGO_TARGET_DIR=$T/bench/tiny_http-target
  cargo build -q --release --offline 2>/dev/null || cargo build -q --release >&2
) || die "the tiny_http probe did not build"
cp "$work/probe/Cargo.lock" "$T/bench/tiny_http-probe.lock"
PROBE=$T/bench/tiny_http-target/release/tiny-http-probe

# --- the client side: tests/bench/server_client.py (flood, requests, idle connections) ---------
# client OUTFILE ARGS...: runs the python client in the background (so Ctrl-C and the trap act at
# once) and waits for it; its one line of key=value results goes to OUTFILE.
client() {
  local out=$1 p rc=0
  shift
  python3 "$ROOT/tests/bench/server_client.py" "$@" >"$out" &
  p=$!
  PIDS+=("$p")
  wait "$p" || rc=$?
  forget "$p"
  return "$rc"
}

# --- servers -----------------------------------------------------------------------------------
start_sim "$SIM" "$work/sim" --profile fargate

# answers PORT: one GET /metrics answered 200 (bash's /dev/tcp, no curl needed)
answers() {
  local line
  exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
  IFS= read -r -t 2 line <&3 || true
  exec 3<&-
  [[ $line == "HTTP/1.1 200"* ]]
}

# start_probe NAME LIMIT ARGS...: starts the tiny_http probe, under `prlimit --nofile=LIMIT:LIMIT`
# unless LIMIT is -; sets PID and PORT.
start_probe() {
  local name=$1 limit=$2
  shift 2
  if [[ $limit != - ]]; then
    prlimit "--nofile=$limit:$limit" "$PROBE" "$@" >"$work/$name.out" 2>"$work/$name.err" &
  else
    "$PROBE" "$@" >"$work/$name.out" 2>"$work/$name.err" &
  fi
  PID=$!
  PIDS+=("$PID")
  local url
  url=$(listening_url "$work/$name.out") || die "tiny_http probe $name did not start: $(cat "$work/$name.err")"
  PORT=${url##*:}
  answers "$PORT" 2>/dev/null || die "tiny_http probe $name does not answer"
}

# start_ours NAME LIMIT: starts our exporter (under `prlimit --nofile=LIMIT:LIMIT` unless LIMIT is
# -) on a free port, retried if another process takes the port first; sets PID and PORT.
start_ours() {
  local name=$1
  local prefix=()
  [[ $2 == - ]] || prefix=(prlimit "--nofile=$2:$2")
  start_on_free_port answers "$work/$name.err" "${prefix[@]}" "$OURS" --metadata-url "$SIM_URL" \
    --bind-address 127.0.0.1 --exporter-port @PORT@ --interval 10 ||
    die "our exporter ($name) did not start: $(cat "$work/$name.err")"
}

# --- 2. idle connections (first: each server with this shell's descriptor limit) ---------------
declare -A R
# The client reads Threads/VmRSS idle (0), held (1: once the thread count settled), 2 s (3) and
# 7 s (4) after release; one GET /metrics on a new connection while they are held (first).
idle_run() { # idle_run KEY: on the server PID/PORT just started
  log "$1: $IDLE idle connections (pid $PID, port $PORT)"
  client "$work/idle-$1" idle "$PID" "$PORT" "$IDLE" 1 --settle --late || die "$1: idle client failed"
  local f
  for f in connected closed connect_s held_s pending sockets first first_ms \
    threads0 rss0 threads1 rss1 threads3 rss3 threads4 rss4; do
    R[$1.$f]=$(kv "$work/idle-$1" "$f")
  done
  log "$1: $(cat "$work/idle-$1")"
  R[$1.alive]=yes
  kill -0 "$PID" 2>/dev/null || R[$1.alive]=no
  stop "$PID"
}
start_probe tiny-idle -
idle_run tiny
start_ours ours-idle -
idle_run ours

# --- 1. accept errors under a low RLIMIT_NOFILE ------------------------------------------------
# Every connection costs tiny_http two descriptors (the socket and a try_clone of it), so whether
# the flood first hits EMFILE in accept() or in that try_clone depends on the parity of the free
# descriptors: both limits NOFILE and NOFILE-1 are run, one per path.
flood_run() { # flood_run KEY NAME: on the server PID/PORT just started (stderr in $work/NAME.err)
  log "$1: flood of $FLOOD idle connections, released, then $GETS GETs"
  client "$work/flood-$1" flood - "$PORT" "$FLOOD" 1.0 0 "$GETS" || die "$1: flood client failed"
  R[$1.answered]=$(kv "$work/flood-$1" after)
  R[$1.kinds]=$(kv "$work/flood-$1" after_kinds)
  log "$1: $(cat "$work/flood-$1")"
  if kill -0 "$PID" 2>/dev/null; then
    R[$1.proc]="process alive"
    stop "$PID"
  else
    local rc=0
    wait "$PID" 2>/dev/null || rc=$?
    forget "$PID"
    R[$1.proc]="process exited, status $rc"
  fi
  local err=$work/$2.err
  if grep -q 'panicked' "$err"; then
    R[$1.path]="the accept thread panicked: \`try_clone().unwrap()\` of the accepted socket got EMFILE"
  elif grep -q 'incoming_requests() ended' "$err"; then
    R[$1.path]="\`accept()\` got EMFILE: the accept thread queued the error and ended, so \`incoming_requests()\` ended and \`main\` returned"
  elif grep -q 'recv error' "$err"; then
    R[$1.path]="\`accept()\` got EMFILE and the accept thread ended; \`recv()\` returned the error once (\`$(grep -m1 -o 'recv error.*' "$err")\`)"
  elif grep -q 'accepting a connection failed' "$err"; then
    R[$1.path]="logged \`$(grep -m1 -o 'accepting a connection failed.*' "$err")\` (at most once a minute) and kept accepting"
  else
    R[$1.path]="no error reported"
  fi
}
LOW=$((NOFILE - 1))
KEEP_LIMIT=
for limit in "$NOFILE" "$LOW"; do
  start_probe "tiny-flood-$limit" "$limit"
  flood_run "tiny$limit" "tiny-flood-$limit"
  if grep -q 'incoming_requests() ended' "$work/tiny-flood-$limit.err"; then KEEP_LIMIT=$limit; fi
  start_ours "ours-flood-$limit" "$limit"
  flood_run "ours$limit" "ours-flood-$limit"
done
# The same API used defensively: a loop on server.recv() that ignores its errors, at the limit
# where accept() itself failed.
if [[ -n $KEEP_LIMIT ]]; then
  start_probe tiny-keep "$KEEP_LIMIT" --keep-going
  flood_run keep tiny-keep
fi

# --- the section -------------------------------------------------------------------------------
mib() { kib_mib "$1" 1; }
flood_cell() { echo "**${R[$1.answered]}/$GETS** (${R[$1.proc]})"; }
served_cell() { echo "${R[$1.first]} (${R[$1.first_ms]} ms)"; }
N=$(num "$IDLE")
TINY_ACCEPTED=$(((${R[tiny.sockets]} - 1) / 2))
TINY_SERVING=$((${R[tiny.threads1]} - 2))
TINY_STARVED=$((TINY_ACCEPTED > TINY_SERVING ? TINY_ACCEPTED - TINY_SERVING : 0))
TINY_ACCEPTED=$(num "$TINY_ACCEPTED")
TINY_SERVING=$(num "$TINY_SERVING")
cat <<EOF
## tiny_http $TINY_VERSION vs ours: accept errors and idle connections

| | tiny_http $TINY_VERSION (\`Server::http\` + \`incoming_requests()\`) | ours (release build) |
|---|---:|---:|
| accept loop after an EMFILE flood, \`--nofile=$NOFILE:$NOFILE\`: requests answered after release | $(flood_cell "tiny$NOFILE") | $(flood_cell "ours$NOFILE") |
| the same, \`--nofile=$LOW:$LOW\` | $(flood_cell "tiny$LOW") | $(flood_cell "ours$LOW") |
| threads, idle | ${R[tiny.threads0]} | ${R[ours.threads0]} |
| threads, with $N idle connections | **$(num "${R[tiny.threads1]}")** | **$(num "${R[ours.threads1]}")** |
| threads, after release (+2 s / +7 s) | $(num "${R[tiny.threads3]}") / ${R[tiny.threads4]} | $(num "${R[ours.threads3]}") / ${R[ours.threads4]} |
| VmRSS, idle | $(mib "${R[tiny.rss0]}") | $(mib "${R[ours.rss0]}") |
| VmRSS, with $N idle connections | **$(mib "${R[tiny.rss1]}")** | **$(mib "${R[ours.rss1]}")** |
| VmRSS, after release (+2 s / +7 s) | $(mib "${R[tiny.rss3]}") / $(mib "${R[tiny.rss4]}") | $(mib "${R[ours.rss3]}") / $(mib "${R[ours.rss4]}") |
| idle connections the server had closed while they were held | $(num "${R[tiny.closed]}") of $(num "${R[tiny.connected]}") | $(num "${R[ours.closed]}") of $(num "${R[ours.connected]}") |
| a \`GET /metrics\` on a new connection while they were held | $(served_cell tiny) | $(served_cell ours) |

- EMFILE flood: each server started under \`prlimit --nofile=N:N\`; $FLOOD TCP connections
  opened at once (non-blocking connect, nothing sent), held 1 s, closed; 0.5 s later $GETS
  sequential \`GET /metrics\` (\`Connection: close\`, 2 s timeout each). tiny_http takes two
  descriptors per connection (the socket and a \`try_clone\` of it), so the parity of N decides
  where EMFILE strikes; either way its accept thread ends, its listener is closed with it, and
  the server stays deaf until the process is restarted:
  - tiny_http at $NOFILE: ${R[tiny$NOFILE.path]}
    (requests: ${R[tiny$NOFILE.kinds]});
  - tiny_http at $LOW: ${R[tiny$LOW.path]}
    (requests: ${R[tiny$LOW.kinds]});
EOF
if [[ -n $KEEP_LIMIT ]]; then
  cat <<EOF
  - tiny_http with a \`loop { match server.recv() { .. } }\` that ignores errors, at $KEEP_LIMIT:
    ${R[keep.path]}; then it blocks for good
    (requests: ${R[keep.kinds]}; ${R[keep.proc]});
EOF
fi
if [[ ${R[ours$NOFILE.path]} == "${R[ours$LOW.path]}" ]]; then
  cat <<EOF
  - ours at $NOFILE: ${R[ours$NOFILE.path]}
    (requests: ${R[ours$NOFILE.kinds]}); at $LOW the same (requests: ${R[ours$LOW.kinds]}).
EOF
else
  cat <<EOF
  - ours at $NOFILE: ${R[ours$NOFILE.path]} (requests: ${R[ours$NOFILE.kinds]});
  - ours at $LOW: ${R[ours$LOW.path]} (requests: ${R[ours$LOW.kinds]}).
EOF
fi
cat <<EOF
- Idle connections: each server started alone, with this shell's descriptor limit
  ($(num "$(ulimit -n)")). $N TCP connections opened (nothing sent; $(num "${R[tiny.connected]}") / $(num "${R[ours.connected]}") connected,
  tiny_http / ours) in batches of 64, each batch once the server had accepted the previous one
  (${R[tiny.connect_s]} / ${R[ours.connect_s]} s; ${R[tiny.pending]} / ${R[ours.pending]} left unaccepted). The listen backlog is 128: a burst of
  $N would leave handshakes waiting seconds in the kernel for SYN-ACK retransmissions, and a
  reading would count only what the server had accepted so far. \`Threads:\` and \`VmRSS:\` from
  \`/proc/<pid>/status\` after ${R[tiny.held_s]} / ${R[ours.held_s]} s held (at least 1.5 s, then until the thread count
  stopped changing over 1 s); then all closed, and read again 2 s and 7 s later. tiny_http
  gives every connection a pool thread blocked in \`read\` with no timeout; an idle pool thread
  exits after 5 s. While they were held it had $(num "${R[tiny.sockets]}") sockets open ($TINY_ACCEPTED accepted
  connections, two sockets each, plus the listener) and $TINY_SERVING pool threads (threads less main
  and accept): $TINY_STARVED accepted connections waited in the pool's queue with no thread (its count of idle threads
  is only lowered when a woken thread runs, so a burst can queue a connection behind threads
  that all block in \`read\`; a request on it would wait until another connection closes). Ours
  lets at most 64 connections wait for a request head and closes the oldest beyond that.
- Loopback only; python3 clients; the servers ran one at a time on the shared 2-core machine.
  The tiny_http server is a throwaway project (\`tiny_http = "=$TINY_VERSION"\`, release build)
  written and built by \`tests/bench/tiny_http.sh\`, which produces this section.
EOF

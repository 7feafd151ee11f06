"""The client side of tests/bench/server.sh and tests/bench/tiny_http.sh (and of the
new-connection row of tests/bench/run.sh): plain sockets on 127.0.0.1, no HTTP library, so the
client's own work per scrape is small and the same for every server measured. Python 3 standard
library only. Every wait is bounded.

  scrapes PORT N
      N sequential GET /metrics, each on a new connection with `Connection: close`, read like
      Prometheus' and curl's clients do: the head, then Content-Length bytes, then the client
      closes (to EOF when the answer has no Content-Length, as the Python original's HTTP/1.0
      server sends it). Prints: answered median_ms p99_ms (answered = status 200, whole body).
  idle PID PORT N LAT_N [--settle] [--late]
      Threads/VmRSS of PID, then N idle connections (connect, send nothing) opened in batches
      the server has accepted, then Threads/VmRSS while they are held (after 1 s; with --settle
      after at least 1.5 s, then once Threads is the same 1 s apart, at most 5 s more), the
      sockets PID has open, how many connections the server closed, LAT_N new-connection
      scrapes while they are held, then all closed and Threads/VmRSS 2 s later (with --late also
      7 s later). Prints key=value pairs on one line.
  flood PID PORT N HOLD DURING AFTER
      N connections opened at once (non-blocking connects, nothing sent) and held HOLD s from
      the first connect; while held, Threads/VmRSS and DURING scrapes (2 s timeout each); then
      all closed and 0.5 s later AFTER scrapes. PID - reads no Threads/VmRSS (a server that may
      exit in the flood). Prints key=value pairs on one line.
"""

import math
import os
import select
import socket
import sys
import time

REQUEST = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def scrape(port, timeout=5.0):
    """One GET /metrics on a new connection: (outcome, seconds from connect to the last byte or
    to the failure)."""
    t0 = time.perf_counter()
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except ConnectionRefusedError:
        return "refused", time.perf_counter() - t0
    except socket.timeout:
        return "timeout", time.perf_counter() - t0
    except OSError:
        return "error", time.perf_counter() - t0
    try:
        s.sendall(REQUEST)
        data = bytearray()
        need = None
        while need is None or len(data) < need:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            if need is None:
                end = data.find(b"\r\n\r\n")
                if end >= 0:
                    length = None
                    for line in bytes(data[:end]).split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value.strip())
                    if length is not None:
                        need = end + 4 + length
        whole = need is None or len(data) >= need
        elapsed = time.perf_counter() - t0
        if data.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")) and whole:
            return "answered", elapsed
        return ("closed" if not data else "other"), elapsed
    except socket.timeout:
        return "timeout", time.perf_counter() - t0
    except ConnectionResetError:
        return "reset", time.perf_counter() - t0
    except OSError:
        return "error", time.perf_counter() - t0
    finally:
        s.close()


def scrapes(port, n, timeout=5.0):
    """n sequential scrapes: their outcomes, the answered ones' seconds, the first's seconds."""
    outcomes, lat, first_s = [], [], 0.0
    for i in range(n):
        outcome, seconds = scrape(port, timeout)
        outcomes.append(outcome)
        if i == 0:
            first_s = seconds
        if outcome == "answered":
            lat.append(seconds)
    return outcomes, lat, first_s


def quantile_ms(lat, p):
    """Nearest-rank quantile of a list of seconds, in ms ("-" when empty)."""
    if not lat:
        return "-"
    lat = sorted(lat)
    i = max(1, math.ceil(round(p * len(lat), 6)))
    return "%.3f" % (lat[min(i, len(lat)) - 1] * 1000)


def kinds(outcomes):
    return ",".join(f"{k}:{outcomes.count(k)}" for k in sorted(set(outcomes))) or "-"


def status(pid):
    """(Threads, VmRSS KiB) from /proc/PID/status."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.split()[0] if value.split() else ""
    return int(out["Threads"]), int(out["VmRSS"])


def settled(pid):
    """(Threads, VmRSS) once the thread count has settled: after at least 1.5 s, then once it is
    the same 1 s apart (at most 5 s more). For servers that start threads per connection."""
    time.sleep(1.5)
    held = status(pid)
    end = time.monotonic() + 5.0
    while time.monotonic() < end:
        time.sleep(1.0)
        now = status(pid)
        if now[0] == held[0]:
            return now
        held = now
    return held


def sockets_open(pid):
    """How many sockets PID has open (/proc/PID/fd)."""
    return sum(1 for fd in os.listdir(f"/proc/{pid}/fd")
               if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"))


def connect_many(port, n, deadline):
    """n non-blocking connects at once; waits (poll: no FD_SETSIZE limit) until each has
    connected or failed, at most `deadline` s. Returns the connected sockets and the rest."""
    socks, pending, poller = {}, set(), select.poll()
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        socks[s.fileno()] = s
        pending.add(s.fileno())
        poller.register(s, select.POLLOUT)
    connected, failed = [], []
    end = time.monotonic() + deadline
    while pending and time.monotonic() < end:
        for fd, _ in poller.poll(100):
            if fd not in pending:
                continue
            pending.discard(fd)
            poller.unregister(fd)
            s = socks[fd]
            bad = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            (failed if bad else connected).append(s)
    failed += [socks[fd] for fd in pending]
    return connected, failed


def not_accepted(port):
    """Connections to the listener on `port` not accepted yet: its accept queue (rx_queue of
    the LISTEN entry) plus handshakes in SYN_RECV (/proc/net/tcp)."""
    n = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            field = line.split()
            if int(field[1].split(":")[1], 16) != port:
                continue
            if field[3] == "0A":
                n += int(field[4].split(":")[1], 16)
            elif field[3] == "03":
                n += 1
    return n


def connect_paced(port, n, batch, deadline):
    """n connections in batches of `batch` (below the listen backlog of 128), each batch once
    the server has accepted the previous one (or after 3 s), so that no handshake waits in the
    kernel for a SYN-ACK retransmission."""
    connected, failed = [], []
    end = time.monotonic() + deadline
    while len(connected) + len(failed) < n and time.monotonic() < end:
        ok, bad = connect_many(port, min(batch, n - len(connected) - len(failed)), 3.0)
        connected += ok
        failed += bad
        wait = time.monotonic() + 3.0
        while not_accepted(port) and time.monotonic() < wait:
            time.sleep(0.01)
    return connected, failed


def closed_by_server(socks):
    """How many of the sockets the server has closed (EOF or reset seen)."""
    n = 0
    for s in socks:
        try:
            if s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                n += 1
        except BlockingIOError:
            pass
        except OSError:
            n += 1
    return n


def close_all(*lists):
    for sockets in lists:
        for s in sockets:
            s.close()


def idle(pid, port, n, lat_n, settle, late):
    t0, r0 = status(pid)
    start = time.monotonic()
    ok, bad = connect_paced(port, n, 64, 30.0)
    connect_s = time.monotonic() - start
    pending = not_accepted(port)
    if settle:
        t1, r1 = settled(pid)
    else:
        time.sleep(1.0)
        t1, r1 = status(pid)
    held_s = time.monotonic() - start - connect_s
    sockets = sockets_open(pid)
    closed = closed_by_server(ok)
    outcomes, lat, first_s = scrapes(port, lat_n, 2.0)
    t2, r2 = status(pid)
    close_all(ok, bad)
    time.sleep(2.0)
    t3, r3 = status(pid)
    late_kv = ""
    if late:
        time.sleep(5.0)
        late_kv = " threads4=%d rss4=%d" % status(pid)
    first = outcomes[0] if outcomes else "-"
    print(f"connected={len(ok)} closed={closed} threads0={t0} rss0={r0} threads1={t1} "
          f"rss1={r1} threads2={t2} rss2={r2} threads3={t3} rss3={r3} "
          f"answered={outcomes.count('answered')} p50={quantile_ms(lat, 0.5)} "
          f"p99={quantile_ms(lat, 0.99)} kinds={kinds(outcomes)} connect_s={connect_s:.1f} "
          f"held_s={held_s:.1f} pending={pending} sockets={sockets} first={first} "
          f"first_ms={first_s * 1000:.1f}{late_kv}")


def flood(pid, port, n, hold, during_n, after_n):
    read = (lambda: status(pid)) if pid != "-" else (lambda: ("-", "-"))
    t0, r0 = read()
    t_start = time.monotonic()
    ok, bad = connect_many(port, n, 3.0)
    connect_s = time.monotonic() - t_start
    during, _, _ = scrapes(port, during_n, 2.0)
    time.sleep(max(0.0, hold - (time.monotonic() - t_start)))
    t1, r1 = read()
    closed = closed_by_server(ok)
    close_all(ok, bad)
    time.sleep(0.5)
    after, _, _ = scrapes(port, after_n, 2.0)
    t2, r2 = read()
    print(f"connected={len(ok)} closed={closed} threads0={t0} rss0={r0} threads1={t1} "
          f"rss1={r1} threads2={t2} rss2={r2} during={during.count('answered')} "
          f"during_kinds={kinds(during)} after={after.count('answered')} "
          f"after_kinds={kinds(after)} connect_s={connect_s:.1f}")


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "scrapes":
        port, n = int(args[0]), int(args[1])
        outcomes, lat, _ = scrapes(port, n)
        print(outcomes.count("answered"), quantile_ms(lat, 0.5), quantile_ms(lat, 0.99))
        if outcomes.count("answered") != n:
            print("outcomes:", kinds(outcomes), file=sys.stderr)
    elif mode == "idle":
        pid, port, n, lat_n = (int(a) for a in args[:4])
        idle(pid, port, n, lat_n, "--settle" in args[4:], "--late" in args[4:])
    elif mode == "flood":
        pid = args[0] if args[0] == "-" else int(args[0])
        flood(pid, int(args[1]), int(args[2]), float(args[3]), int(args[4]), int(args[5]))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()

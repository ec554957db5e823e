#!/usr/bin/python3
"""Idle keep-alive memory probe for the gatewayd benchmark (run by bench/run.py).

Opens PRIME connections (one request each, kept open), waits, reads the RSS of
the proxy's processes, then opens N more keep-alive connections (one request
each, kept open, idle), waits, reads the RSS again. Prints one JSON object with
the delta per idle connection. Loopback only; bounded by N and a deadline.
"""
import argparse
import json
import resource
import socket
import ssl
import sys
import time


def rss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--h2", action="store_true", help="ALPN h2 (with --tls), one request (python3-h2)")
    ap.add_argument("--sni", default="localhost")
    ap.add_argument("--path", default="/64")
    ap.add_argument("--pids", required=True, help="comma-separated proxy PIDs to sum VmRSS over")
    ap.add_argument("-n", type=int, default=5000)
    ap.add_argument("--prime", type=int, default=64)
    ap.add_argument("--deadline", type=float, default=120.0)
    ap.add_argument("--settle", type=float, default=1.0)
    a = ap.parse_args()
    if not (1 <= a.n <= 15000):
        sys.exit("idle.py: -n must be 1..15000")
    pids = [int(p) for p in a.pids.split(",") if p]
    need = a.n + a.prime + 100
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(need, soft), max(need, hard)))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    ctx = None
    if a.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.set_alpn_protocols(["h2"] if a.h2 else ["http/1.1"])
    req = (f"GET {a.path} HTTP/1.1\r\nHost: {a.sni}\r\n\r\n").encode()
    t_end = time.monotonic() + a.deadline
    socks = []
    errors = 0

    def open_one():
        s = socket.create_connection(("127.0.0.1", a.port), timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ctx is not None:
            s = ctx.wrap_socket(s, server_hostname=a.sni)
        s.sendall(req)
        # read one full response (headers + Content-Length body)
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = s.recv(65536)
            if not d:
                raise ConnectionError("closed before response")
            buf += d
        head, _, body = buf.partition(b"\r\n\r\n")
        clen = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                clen = int(v.strip())
        while len(body) < clen:
            d = s.recv(65536)
            if not d:
                raise ConnectionError("closed mid-body")
            body += d
        if not head.startswith(b"HTTP/1.1 200"):
            raise ConnectionError(head.split(b"\r\n")[0].decode(errors="replace"))
        return s

    def open_one_h2():
        import h2.config
        import h2.connection
        import h2.events
        s = socket.create_connection(("127.0.0.1", a.port), timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s = ctx.wrap_socket(s, server_hostname=a.sni)
        if s.selected_alpn_protocol() != "h2":
            raise ConnectionError("no h2 in ALPN")
        c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        c.initiate_connection()
        c.send_headers(1, [(":method", "GET"), (":path", a.path), (":scheme", "https"),
                           (":authority", a.sni)], end_stream=True)
        s.sendall(c.data_to_send())
        status, done = None, False
        while not done:
            d = s.recv(65536)
            if not d:
                raise ConnectionError("closed before response")
            for ev in c.receive_data(d):
                if isinstance(ev, h2.events.ResponseReceived):
                    status = dict(ev.headers).get(b":status")
                elif isinstance(ev, h2.events.DataReceived):
                    c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                    done = True
            out = c.data_to_send()
            if out:
                s.sendall(out)
        if status != b"200":
            raise ConnectionError("status %r" % status)
        s._h2 = c  # keep the state with the socket
        return s

    if a.h2:
        if ctx is None:
            sys.exit("idle.py: --h2 needs --tls")
        open_one = open_one_h2  # noqa: F811

    def open_many(k):
        nonlocal errors
        for _ in range(k):
            if time.monotonic() > t_end:
                raise SystemExit("idle.py: deadline reached")
            try:
                socks.append(open_one())
            except (OSError, ConnectionError) as e:
                errors += 1
                if errors > 20:
                    raise SystemExit(f"idle.py: too many errors, last: {e}")

    try:
        open_many(a.prime)
        time.sleep(a.settle)
        base = rss_kib(pids)
        t0 = time.monotonic()
        open_many(a.n)
        open_secs = time.monotonic() - t0
        time.sleep(a.settle)
        after = rss_kib(pids)
        # check the connections are still alive (the proxy did not close them)
        time.sleep(0.2)
        alive = len(socks)
        per = (after - base) * 1024.0 / a.n
        print(json.dumps({"rss_base_kib": base, "rss_after_kib": after,
                          "bytes_per_conn": round(per, 1), "conns": a.n, "prime": a.prime,
                          "errors": errors, "alive": alive, "open_secs": round(open_secs, 2)}))
    finally:
        for s in socks:
            try:
                s.close()
            except OSError:
                pass


if __name__ == "__main__":
    main()

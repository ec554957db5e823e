# SPDX-License-Identifier: Apache-2.0
"""The access log end to end (issue 11): real clients (curl over TLS and on
:80, a raw TLS passthrough client, a WebSocket client) through the daemon,
each JSON line parsed and checked field by field against what the client
did; the file, stderr and journal targets; reopening after a rename and
SIGUSR1; lines dropped and counted when the writer cannot keep up.

Runs like test_http_proxy: the test enters a network namespace of its own
(the daemon's listeners on its loopback, the backends on a veth address)."""

import base64
import datetime
import hashlib
import json
import os
import re
import signal
import socket
import ssl
import stat
import struct
import subprocess
import threading
import time
import urllib.request

import pytest

from conftest import Deadline, free_port, needs_gatewayd, scaled
from httpback import Backend, pattern
from test_http_proxy import BACKEND_IP, CURL, FQDN, Gw, private_net, tls_conn  # noqa: F401
from tlsback import CA, Client, EchoServer

pytestmark = needs_gatewayd

WL = "37-1-app"
PT = "pt.example.org"
WL_PT = "37-2-pt"
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
KEYS = ["time", "client", "client_port", "workload", "host", "method", "path", "status", "req_bytes",
        "resp_bytes", "duration_us", "upstream", "upstream_us", "close", "tls", "proto"]


@pytest.fixture
def backend(private_net):  # noqa: F811
    b = Backend("b1").start(BACKEND_IP)
    yield b
    b.stop()


class TcpServer:
    """A listening socket on @host (an ephemeral port) whose accept loop
    hands each connection to _serve() on a thread of its own."""

    def __init__(self, host):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(8)
        self.url = "http://%s:%d" % (host, self.sock.getsockname()[1])
        self.addr = "%s:%d" % (host, self.sock.getsockname()[1])
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        raise NotImplementedError

    def stop(self):
        self.sock.close()


class WsEcho(TcpServer):
    """A WebSocket backend: answers the upgrade with 101, then echoes every
    byte until the client's EOF (frames pass through the gateway as bytes)."""

    def _serve(self, c):
        try:
            buf = b""
            while b"\r\n\r\n" not in buf:
                d = c.recv(4096)
                if not d:
                    return
                buf += d
            head, rest = buf.split(b"\r\n\r\n", 1)
            key = re.search(rb"(?im)^sec-websocket-key:\s*(\S+)", head).group(1)
            acc = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
            c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      b"Sec-WebSocket-Accept: " + acc + b"\r\n\r\n")
            if rest:
                c.sendall(rest)
            while True:
                d = c.recv(65536)
                if not d:
                    break
                c.sendall(d)
        except OSError:
            pass
        finally:
            c.close()


class FastBackend(TcpServer):
    """Answers every request head with an empty 204 at once (pipelining
    too): a backend that is never the bottleneck."""

    @staticmethod
    def _serve(c):
        buf = b""
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    return
                buf += d
                k = buf.count(b"\r\n\r\n")
                if k:
                    buf = buf[buf.rfind(b"\r\n\r\n") + 4:]
                    c.sendall(b"HTTP/1.1 204 No Content\r\n\r\n" * k)
        except OSError:
            pass
        finally:
            c.close()


def ws_frame(payload):
    """One masked binary frame (a client's)."""
    mask = os.urandom(4)
    assert len(payload) < 126
    return bytes([0x82, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def curl_sizes(gw, host, path, scheme="https", extra=()):
    """curl once; returns (exit code, {local_port, req, resp, code})."""
    port = gw.https if scheme == "https" else gw.http
    argv = CURL + ["-k", "--resolve", "%s:%d:127.0.0.1" % (host, port), "-o", "/dev/null", "-w",
                   "%{local_port} %{size_request} %{size_upload} %{size_header} %{size_download} %{http_code}",
                   *extra, "%s://%s:%d%s" % (scheme, host, port, path)]
    r = subprocess.run(argv, capture_output=True, timeout=scaled(30))
    lp, sreq, sup, shead, sdown, code = (int(x) for x in r.stdout.split())
    # size_request counts the body too (size_upload is the body alone).
    return r.returncode, {"local_port": lp, "req": sreq, "resp": shead + sdown, "code": code}


def read_lines(path):
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return []
    return [json.loads(l) for l in text.splitlines() if l]


def wait_lines(path, n, what="access log lines"):
    dl = Deadline(10, "%d %s in %s" % (n, what, path))
    while True:
        lines = read_lines(path)
        if len(lines) >= n:
            return lines
        dl.check(repr(lines))
        time.sleep(0.05)


def check_line(j, t0, t1, **want):
    """Every key in order, the time within the test's window, and @want."""
    assert list(j)[:len(KEYS)] == KEYS, list(j)
    start = datetime.datetime.strptime(j["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()
    assert t0 - 1 <= start <= t1 + 1, (j["time"], t0, t1)
    assert isinstance(j["duration_us"], int) and 0 <= j["duration_us"] <= (t1 - t0) * 1e6 + 1e6
    if j["upstream_us"] is not None:
        assert 0 <= j["upstream_us"] <= j["duration_us"], j
    for k, v in want.items():
        assert j[k] == v, (k, j[k], v, j)


def metric(env, name):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % env.metrics_port, timeout=scaled(10)) as r:
        text = r.read().decode()
    m = re.search(r"(?m)^%s (\S+)$" % name, text)
    return float(m.group(1)) if m else None


def test_lines_field_by_field_and_reopen(private_net, env, backend, tmp_path):  # noqa: F811
    log = tmp_path / "access.log"
    gw = Gw.__new__(Gw)
    gw.env, gw.https, gw.http = env, env.https_port, env.http_port
    env.start_daemon({"proxy": {"workers": "2"}, "log": {"access": str(log)}})
    env.deploy_fqdn(WL, FQDN, [backend.url])
    ws = WsEcho(BACKEND_IP)
    ca = CA()
    crt, key = ca.issue(PT).write(str(tmp_path), "pt")
    pt = EchoServer(crt, key, host=BACKEND_IP).start()
    dead = free_port()
    try:
        env.deploy_fqdn(WL_PT, PT, [pt.backend], tls_passthrough=True)
        wsh = env.deploy_name("37-3-ws", "ws", [ws.url])
        n = 0

        # 1. curl over TLS, a query string (left out of "path").
        t0 = time.time()
        rc, s = curl_sizes(gw, FQDN, "/bytes/1234?token=secret")
        t1 = time.time()
        assert rc == 0 and s["code"] == 200
        n += 1
        j = wait_lines(log, n)[-1]
        check_line(j, t0, t1, client="127.0.0.1", client_port=s["local_port"], workload=WL, host=FQDN,
                   method="GET", path="/bytes/1234", status=200, req_bytes=s["req"], resp_bytes=s["resp"],
                   upstream=backend.url[len("http://"):], close=None, tls="TLSv1.3", proto="HTTP/1.1")
        assert j["upstream_us"] is not None

        # 2. A POST body counts in req_bytes.
        body = pattern(5000, seed=3)
        t0 = time.time()
        r = subprocess.run(CURL + ["-k", "--resolve", "%s:%d:127.0.0.1" % (FQDN, gw.https), "-o", "/dev/null",
                                   "-w", "%{local_port} %{size_request} %{size_upload} %{size_header} "
                                   "%{size_download} %{http_code}", "--data-binary", "@-", "--http1.0",
                                   "https://%s:%d/upload" % (FQDN, gw.https)],
                           input=body, capture_output=True, timeout=scaled(30))
        t1 = time.time()
        lp, sreq, sup, shead, sdown, code = (int(x) for x in r.stdout.split())
        assert code == 200 and sup == 5000
        n += 1
        j = wait_lines(log, n)[-1]
        check_line(j, t0, t1, client_port=lp, workload=WL, method="POST", path="/upload", status=200,
                   req_bytes=sreq, resp_bytes=shead + sdown, proto="HTTP/1.0", tls="TLSv1.3",
                   close="keepalive-done")

        # 3. Plain :80: a 308 of ours (no upstream, no TLS; our answers close).
        t0 = time.time()
        rc, s = curl_sizes(gw, FQDN, "/a/b?c=d", scheme="http")
        t1 = time.time()
        assert s["code"] == 308
        n += 1
        j = wait_lines(log, n)[-1]
        check_line(j, t0, t1, client_port=s["local_port"], workload=WL, host=FQDN, method="GET",
                   path="/a/b", status=308, req_bytes=s["req"], resp_bytes=s["resp"], upstream=None,
                   upstream_us=None, close="keepalive-done", tls=None, proto="HTTP/1.1")

        # 4. An ACME answer of ours on :80 (no such token: 404), and a 404
        # for a name that is not ours (no workload).
        t0 = time.time()
        rc, s = curl_sizes(gw, FQDN, "/.well-known/acme-challenge/tok123", scheme="http")
        rc2, s2 = curl_sizes(gw, "nope.example.net", "/x", scheme="http")
        t1 = time.time()
        assert s["code"] == 404 and s2["code"] == 404
        n += 2
        # Two workers, a ring each: the two lines may come in either order.
        a, b = sorted(wait_lines(log, n)[-2:], key=lambda j: j["client_port"] != s["local_port"])
        check_line(a, t0, t1, client_port=s["local_port"], workload=WL, host=FQDN,
                   path="/.well-known/acme-challenge/tok123", status=404, req_bytes=s["req"],
                   resp_bytes=s["resp"], upstream=None, tls=None)
        check_line(b, t0, t1, client_port=s2["local_port"], workload=None, host="nope.example.net",
                   path="/x", status=404, req_bytes=s2["req"], resp_bytes=s2["resp"], upstream=None)

        # 5. An error answer of ours: the only backend refuses, so it is
        # marked down and the request gets the 503 "unreachable" page; the
        # upstream tried is named.
        env.deploy_fqdn(WL, FQDN, ["http://%s:%d" % (BACKEND_IP, dead)])
        t0 = time.time()
        rc, s = curl_sizes(gw, FQDN, "/x")
        t1 = time.time()
        assert s["code"] == 503
        n += 1
        j = wait_lines(log, n)[-1]
        check_line(j, t0, t1, client_port=s["local_port"], workload=WL, status=503, req_bytes=s["req"],
                   resp_bytes=s["resp"], upstream="%s:%d" % (BACKEND_IP, dead), close="connect-failed",
                   tls="TLSv1.3")
        env.deploy_fqdn(WL, FQDN, [backend.url])

        # 6. TLS passthrough: the exact raw bytes both ways.
        t0 = time.time()
        c = Client(("127.0.0.1", gw.https), ca.client_context(), PT, timeout=scaled(10))
        for k in (1, 1000, 70000):
            c.echo(b"y" * k)
        lp = c.sock.getsockname()[1]
        c.finish()
        t1 = time.time()
        n += 1
        j = wait_lines(log, n)[-1]
        check_line(j, t0, t1, client_port=lp, workload=WL_PT, host=PT, method=None, path=None, status=None,
                   req_bytes=c.sent, resp_bytes=c.received, upstream=pt.backend, close="done", tls=None,
                   proto="TLS passthrough")
        assert j["upstream_us"] is not None

        # 7. A WebSocket tunnel over TLS: the upgrade head and the 101, then
        # the frames, in one line at the tunnel's end.
        t0 = time.time()
        s = tls_conn(gw.https, wsh)
        key = base64.b64encode(os.urandom(16))
        req = (b"GET /chat?room=1 HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (wsh.encode(), key))
        s.sendall(req)
        got = b""
        while b"\r\n\r\n" not in got:
            got += s.recv(4096)
        assert got.startswith(b"HTTP/1.1 101"), got
        sent, recv = len(req), len(got)
        for msg in (b"hello", b"x" * 100):
            f = ws_frame(msg)
            s.sendall(f)
            sent += len(f)
            echo = b""
            while len(echo) < len(f):
                echo += s.recv(4096)
            recv += len(echo)
        lp = s.getsockname()[1]
        s.close()
        t1 = time.time()
        n += 1
        j = wait_lines(log, n)[-1]
        check_line(j, t0, t1, client_port=lp, workload="37-3-ws", host=wsh, method="GET", path="/chat",
                   status=101, req_bytes=sent, resp_bytes=recv, upstream=ws.addr, tls="TLSv1.3",
                   proto="WebSocket")
        assert j["close"] in ("client-eof", "client-error", "done"), j

        # 8. A connection that ends before any request: an unknown SNI.
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            tls_conn(gw.https, "unknown.example.net").sendall(b"x")
        n += 1
        j = wait_lines(log, n)[-1]
        assert j["host"] == "unknown.example.net" and j["close"] == "unknown-sni" and j["proto"] is None
        assert j["status"] is None and j["workload"] is None and j["req_bytes"] > 0, j

        # 9. logrotate: rename, SIGUSR1, the next line goes to a new file.
        rotated = tmp_path / "access.log.1"
        os.rename(log, rotated)
        env.daemon.signal(signal.SIGUSR1)
        dl = Deadline(10, "the access log reopened")
        while not log.exists():
            dl.check()
            time.sleep(0.05)
        assert stat.S_IMODE(os.stat(log).st_mode) == 0o640
        rc, s = curl_sizes(gw, FQDN, "/bytes/7")
        assert rc == 0
        j = wait_lines(log, 1)[-1]
        assert j["path"] == "/bytes/7" and j["client_port"] == s["local_port"]
        assert len(read_lines(rotated)) == n, "nothing more went to the renamed file"
        assert metric(env, "gatewayd_access_log_dropped_total") == 0
    finally:
        ws.stop()
        pt.stop()


def test_query_kept_when_asked(private_net, env, backend, tmp_path):  # noqa: F811
    log = tmp_path / "access.log"
    env.start_daemon({"proxy": {"workers": "1"}, "log": {"access": str(log), "access_query": "yes"}})
    env.deploy_fqdn(WL, FQDN, [backend.url])
    gw = Gw.__new__(Gw)
    gw.env, gw.https, gw.http = env, env.https_port, env.http_port
    rc, s = curl_sizes(gw, FQDN, "/bytes/3?a=1&b=%22")
    assert rc == 0
    j = wait_lines(log, 1)[-1]
    assert j["path"] == "/bytes/3?a=1&b=%22"


def test_http2_streams(private_net, env, backend, tmp_path):  # noqa: F811
    """One line per HTTP/2 stream: curl --http2 sends two requests over one
    connection (same client port), each line says HTTP/2 with its own path,
    status and bytes; the response bytes hold at least the body; the
    statistics count them as version 2."""
    log = tmp_path / "access.log"
    env.start_daemon({"proxy": {"workers": "1"}, "log": {"access": str(log)}})
    env.deploy_fqdn(WL, FQDN, [backend.url])
    base = "https://%s:%d" % (FQDN, env.https_port)
    t0 = time.time()
    r = subprocess.run(["curl", "--http2", "-sS", "-k", "--max-time", str(int(scaled(20))), "--resolve",
                        "%s:%d:127.0.0.1" % (FQDN, env.https_port), "-o", "/dev/null", "-o", "/dev/null",
                        "-w", "%{local_port} %{http_version} %{http_code}\n",
                        base + "/bytes/1234?q=1", base + "/status/404"],
                       capture_output=True, text=True, timeout=scaled(30))
    t1 = time.time()
    assert r.returncode == 0, r.stderr
    outs = [l.split() for l in r.stdout.splitlines()]
    assert [o[1:] for o in outs] == [["2", "200"], ["2", "404"]], outs
    assert outs[0][0] == outs[1][0], "curl did not reuse the connection: %s" % outs
    a, b = wait_lines(log, 2)
    for j, path, status in ((a, "/bytes/1234", 200), (b, "/status/404", 404)):
        check_line(j, t0, t1, client="127.0.0.1", client_port=int(outs[0][0]), workload=WL, host=FQDN,
                   method="GET", path=path, status=status, upstream=backend.url[len("http://"):],
                   close=None, tls="TLSv1.3", proto="HTTP/2")
        assert j["req_bytes"] > 0 and j["upstream_us"] is not None, j
    assert a["resp_bytes"] >= 1234, a
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % env.metrics_port, timeout=scaled(10)) as m:
        text = m.read().decode()
    assert re.search(r'(?m)^gatewayd_service_requests_by_version_total\{service="%s",version="2"\} 2$' % WL,
                     text), [l for l in text.splitlines() if "by_version" in l]


def test_stderr_target(private_net, env, backend):  # noqa: F811
    env.start_daemon({"proxy": {"workers": "1"}, "log": {"access": "stderr"}})
    env.deploy_fqdn(WL, FQDN, [backend.url])
    gw = Gw.__new__(Gw)
    gw.env, gw.https, gw.http = env, env.https_port, env.http_port
    rc, s = curl_sizes(gw, FQDN, "/bytes/11")
    assert rc == 0
    dl = Deadline(10, "the access log line on stderr")
    while True:
        lines = [json.loads(l) for l in env.daemon.log_text().splitlines() if l.startswith('{"time":')]
        if lines:
            break
        dl.check()
        time.sleep(0.05)
    assert lines[-1]["path"] == "/bytes/11" and lines[-1]["client_port"] == s["local_port"]
    assert lines[-1]["resp_bytes"] == s["resp"]


def journal_fields(data):
    """One datagram of journald's native protocol: KEY=value lines, or KEY,
    a little-endian 64-bit length and the raw value (values with a newline)."""
    out, i = {}, 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            k, v = line.split(b"=", 1)
            i = nl + 1
        else:
            k, n = line, struct.unpack("<Q", data[nl + 1:nl + 9])[0]
            v = data[nl + 9:nl + 9 + n]
            i = nl + 9 + n + 1
        out[k.decode()] = v
    return out


def test_journal_target(private_net, env, backend, tmp_path):  # noqa: F811
    """The journal target, against a fake journald: the daemon runs in a
    mount namespace of its own where /run/systemd/journal is this test's
    directory with a datagram socket the test reads (the machine's journal,
    if any, is never touched)."""
    jdir = tmp_path / "journal"
    jdir.mkdir()
    js = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    js.bind(str(jdir / "socket"))
    js.settimeout(0.2)
    wrapper = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
               'mount -t tmpfs -o size=64k,mode=755 gw-test-journal /run/systemd && '
               'mkdir /run/systemd/journal && mount --bind "$0" /run/systemd/journal && exec "$@"',
               str(jdir)]
    try:
        env.write_config({"proxy": {"workers": "1"}, "log": {"access": "journal"}})
        env.daemon.start(workers=1, wrapper=wrapper)
        env.deploy_fqdn(WL, FQDN, [backend.url])
        gw = Gw.__new__(Gw)
        gw.env, gw.https, gw.http = env, env.https_port, env.http_port
        t0 = time.time()
        rc, s = curl_sizes(gw, FQDN, "/bytes/13?x=1")
        t1 = time.time()
        assert rc == 0
        dl = Deadline(10, "the access log entry in the (fake) journal")
        entries = []
        while not entries:
            try:
                f = journal_fields(js.recv(1 << 16))
            except socket.timeout:
                dl.check()
                continue
            if f.get("GATEWAYD_ACCESS") == b"1":
                entries.append(f)
        f = entries[0]
        assert f["WORKLOAD_ID"] == WL.encode() and f["SYSLOG_IDENTIFIER"] == b"gatewayd", f
        assert f["PRIORITY"] == b"6"
        j = json.loads(f["MESSAGE"])
        check_line(j, t0, t1, client_port=s["local_port"], workload=WL, host=FQDN, path="/bytes/13",
                   status=200, req_bytes=s["req"], resp_bytes=s["resp"], tls="TLSv1.3")
    finally:
        js.close()


def test_full_rings_drop_and_count(private_net, env, backend, tmp_path):  # noqa: F811
    """A FIFO nobody reads: the writer blocks, the worker's ring fills, lines
    are dropped and counted, requests are served all the same; once the FIFO
    is read, every line is either read or counted as dropped."""
    fifo = tmp_path / "access.fifo"
    os.mkfifo(fifo)
    rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader exists: the open succeeds
    try:
        # Plain HTTP (http_plain): this test reads and writes one socket from
        # two threads, which Python's ssl module does not support (it fails
        # with "[SSL] internal error" now and then).
        env.start_daemon({"proxy": {"workers": "1", "http_plain": "yes"}, "log": {"access": str(fifo)}})
        fast = FastBackend(BACKEND_IP)
        env.deploy_fqdn(WL, FQDN, [fast.url])
        total = 4500  # > a 1 MiB ring (~3000 lines) + a 64 KiB pipe
        s = socket.create_connection(("127.0.0.1", env.http_port), timeout=scaled(60))
        req = b"GET /n HTTP/1.1\r\nHost: %s\r\n\r\n" % FQDN.encode()
        resp_count = [0]

        def reader():
            buf = b""
            while resp_count[0] < total:
                d = s.recv(65536)
                if not d:
                    return
                buf += d
                k = buf.count(b"HTTP/1.1 204")
                resp_count[0] += k
                buf = buf[buf.rfind(b"HTTP/1.1 204") + 1:] if k else buf[-32:]

        t = threading.Thread(target=reader)
        t.start()
        for i in range(0, total, 100):
            s.sendall(req * min(100, total - i))
        t.join(scaled(120))
        assert resp_count[0] == total, "every request was served while the log was stuck"
        s.close()
        dl = Deadline(10, "dropped lines counted")
        while not (metric(env, "gatewayd_access_log_dropped_total") or 0) > 0:
            dl.check()
            time.sleep(0.1)
        # Now read everything: lines read + dropped == requests.
        got = b""
        dl = Deadline(20, "every line read or counted")
        while True:
            try:
                d = os.read(rfd, 1 << 20)
                got += d
                continue
            except BlockingIOError:
                pass
            lines = [json.loads(l) for l in got.decode().splitlines()]
            dropped = metric(env, "gatewayd_access_log_dropped_total")
            if len(lines) + dropped == total and metric(env, "gatewayd_access_log_lines_total") == len(lines):
                break
            dl.check("read %d, dropped %s" % (len(lines), dropped))
            time.sleep(0.1)
        assert all(j["path"] == "/n" and j["status"] == 204 for j in lines)
        assert dropped > 0 and len(lines) > 0
    finally:
        env.daemon.kill(signal.SIGKILL)  # the stop would wait for the stuck FIFO
        os.close(rfd)
        if "fast" in locals():
            fast.stop()

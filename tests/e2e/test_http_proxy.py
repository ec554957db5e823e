# SPDX-License-Identifier: Apache-2.0
"""Terminated routes end to end: workloads deployed over the bus, real
clients (curl, openssl s_client, python ssl) through the daemon's :443 and
:80 to real HTTP backends.

zos refuses loopback addresses in http:// backends, so each test runs in a
network namespace of its own (the test process enters it for the test's
duration: the daemon, the fakes, the backends and the clients all live
there): loopback for the daemon's listeners and a veth pair (both ends
inside) with 198.51.100.1/24 (TEST-NET-2) for the backends."""

import ctypes
import hashlib
import os
import json
import socket
import ssl
import subprocess
import threading
import time

import pytest

from conftest import DOMAIN, Deadline, free_port, needs_gatewayd, scaled
from httpback import Backend, pattern

pytestmark = needs_gatewayd

BACKEND_IP = "198.51.100.1"
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)

FQDN = "app.example.org"
FQDN2 = "other.example.org"
# HTTP/1.1 on purpose: this file tests the HTTP/1.1 server (test_h2.py the h2 one).
CURL = ["curl", "--http1.1", "-sS", "--max-time", str(int(scaled(20)))]


class Gw:
    """The daemon of this test (conftest picked its loopback ports) and
    clients for it."""

    def __init__(self, env):
        self.env = env
        self.https = env.https_port
        self.http = env.http_port
        env.start_daemon({"proxy": {"workers": "2"}})

    def curl(self, host, path="/", scheme="https", args=(), check=True):
        port = self.https if scheme == "https" else self.http
        argv = CURL + ["-k", "--resolve", "%s:%d:127.0.0.1" % (host, port),
                       "%s://%s:%d%s" % (scheme, host, port, path)] + list(args)
        r = subprocess.run(argv, capture_output=True, timeout=scaled(30))
        if check:
            assert r.returncode == 0, (argv, r.returncode, r.stderr)
        return r


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "setns: " + os.strerror(e))


@pytest.fixture(autouse=True)
def private_net():
    """Enter a fresh network namespace for this test (the main thread; threads
    and processes started later inherit it) and leave and delete it after."""
    name = "gwt-http-%d" % os.getpid()
    ip = ["ip", "-n", name]
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    subprocess.run(["ip", "netns", "add", name], check=True)
    orig = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        for argv in (ip + ["link", "set", "lo", "up"], ip + ["link", "add", "d0", "type", "veth", "peer", "name", "d1"],
                     ip + ["addr", "add", BACKEND_IP + "/24", "dev", "d0"], ip + ["link", "set", "d1", "up"],
                     ip + ["link", "set", "d0", "up"]):
            subprocess.run(argv, check=True)
        fd = os.open("/run/netns/" + name, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(fd)
        finally:
            os.close(fd)
        yield name
    finally:
        _setns(orig)
        os.close(orig)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


@pytest.fixture
def gw(private_net, env):
    return Gw(env)


@pytest.fixture
def backend(private_net):
    b = Backend("b1").start(BACKEND_IP)
    yield b
    b.stop()


def tls_conn(port, sni, alpn=("http/1.1",), rcvbuf=None):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    if rcvbuf:  # set before connecting: the window scale is chosen in the handshake
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(scaled(10))
        s.connect(("127.0.0.1", port))
    else:
        s = socket.create_connection(("127.0.0.1", port), timeout=scaled(10))
    return ctx.wrap_socket(s, server_hostname=sni)


def wait_counters(gw, wl, sent, recv):
    """Poll the bus until workload @wl's counters are @sent request and
    @recv response bytes."""
    deadline = Deadline(10, "counters")
    while True:
        m = gw.env.bus.metrics().data
        got = ((m.get("Request") or {}).get(wl), (m.get("Response") or {}).get(wl))
        if got == (sent, recv):
            return
        deadline.check("Metrics %r, expected request %r response %r" % (m, sent, recv))
        time.sleep(0.1)


def read_response(sock, buf=b""):
    """Read one Content-Length response; returns (status, headers, body, raw bytes, rest)."""
    while b"\r\n\r\n" not in buf:
        d = sock.recv(65536)
        if not d:
            raise ConnectionError("closed before the head: %r" % buf)
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = [tuple(x.decode().split(":", 1)) for x in lines[1:]]
    hmap = {k.strip().lower(): v.strip() for k, v in headers}
    n = int(hmap.get("content-length", "0"))
    while len(rest) < n:
        d = sock.recv(65536)
        if not d:
            raise ConnectionError("closed in the body")
        rest += d
    body, extra = rest[:n], rest[n:]
    raw = head + b"\r\n\r\n" + body
    return status, hmap, body, raw, extra


def peer_cert_names(port, sni):
    """Subject and SAN of the certificate the daemon serves for @sni (openssl s_client)."""
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-servername", sni,
                        "-showcerts"], input=b"", capture_output=True, timeout=scaled(20))
    pem = r.stdout.split(b"-----BEGIN CERTIFICATE-----", 1)
    if len(pem) < 2:
        return None
    pem = b"-----BEGIN CERTIFICATE-----" + pem[1].split(b"-----END CERTIFICATE-----")[0] + \
        b"-----END CERTIFICATE-----\n"
    t = subprocess.run(["openssl", "x509", "-noout", "-subject", "-ext", "subjectAltName"], input=pem,
                       capture_output=True, timeout=scaled(10)).stdout.decode()
    return t


def test_terminated_fqdn_and_forwarded_headers(gw, backend):
    gw.env.deploy_fqdn("37-1-app", FQDN, [backend.url])
    r = gw.curl(FQDN, "/echo?x=1", args=["-H", "X-Custom:  kept  as is", "-H", "Connection: foo",
                                          "-H", "Foo: hop", "-H", "X-Forwarded-For: 192.0.2.9"])
    j = json.loads(r.stdout)
    h = {}
    for k, v in j["headers"]:
        h.setdefault(k.lower(), []).append(v)
    assert j["path"] == "/echo?x=1" and j["method"] == "GET"
    assert h["host"] == ["%s:%d" % (FQDN, gw.https)]
    assert h["x-forwarded-proto"] == ["https"]
    assert h["x-forwarded-for"][-1].endswith("127.0.0.1")
    assert h["x-real-ip"] == ["127.0.0.1"]
    assert "x-forwarded-host" in h
    assert h["x-custom"] == ["kept  as is"]
    assert "foo" not in h, "a field listed in Connection is hop-by-hop"
    names = peer_cert_names(gw.https, FQDN)
    assert names and FQDN in names, names


def test_name_workload_uses_wildcard_cert_and_421(gw, backend):
    b2 = Backend("b2").start(BACKEND_IP)
    try:
        fq1 = gw.env.deploy_name("37-2-one", "one", [backend.url])
        fq2 = gw.env.deploy_name("37-3-two", "two", [b2.url])
        assert fq1 == "one." + DOMAIN
        names = peer_cert_names(gw.https, fq1)
        assert names and ("*." + DOMAIN) in names, names
        # Both names share the wildcard certificate: Host may differ from SNI.
        s = tls_conn(gw.https, fq1)
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: %s\r\n\r\n" % fq2.encode())
        st, _, body, _, _ = read_response(s)
        assert st == 200 and json.loads(body)["backend"] == "b2"
        # Unknown name under the wildcard: 421.
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: nope.%s\r\n\r\n" % DOMAIN.encode())
        st, _, _, _, _ = read_response(s)
        assert st == 421
        s.close()
        # A Host the certificate does not cover: 421 even though it is a route.
        gw.env.deploy_fqdn("37-4-app", FQDN, [backend.url])
        s = tls_conn(gw.https, fq1)
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: %s\r\n\r\n" % FQDN.encode())
        st, _, _, _, _ = read_response(s)
        assert st == 421
        s.close()
    finally:
        b2.stop()


def test_unknown_sni_is_closed_without_certificate(gw, backend):
    gw.env.deploy_fqdn("37-1-app", FQDN, [backend.url])
    assert peer_cert_names(gw.https, "unknown.example.org") is None
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        tls_conn(gw.https, "unknown.example.org").sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    # No SNI at all: closed too.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        ctx.wrap_socket(socket.create_connection(("127.0.0.1", gw.https), timeout=5))


def test_port_80_redirects_and_404(gw, backend):
    gw.env.deploy_fqdn("37-1-app", FQDN, [backend.url])
    r = gw.curl(FQDN, "/a/b?c=d", scheme="http", args=["-D", "-", "-o", "/dev/null"])
    head = r.stdout.decode()
    assert head.startswith("HTTP/1.1 308"), head
    assert "location: https://%s/a/b?c=d" % FQDN in head.lower()
    r = gw.curl("unknown.example.org", "/", scheme="http", args=["-o", "/dev/null", "-w", "%{http_code}"])
    assert r.stdout == b"404"
    assert backend.requests == []


def test_acme_http01_forwarded_to_passthrough_backend(private_net, env):
    """A passthrough name's /.well-known/acme-challenge/ on :80 reaches port 80 of
    its backend (zos#1794); other paths still redirect."""
    g = Gw(env)
    b80 = Backend("acme").start(BACKEND_IP, 80)
    try:
        env.deploy_fqdn("37-5-pt", FQDN, [BACKEND_IP + ":8443"], tls_passthrough=True)
        r = g.curl(FQDN, "/.well-known/acme-challenge/tok123", scheme="http")
        assert r.stdout == b"backend-token:tok123"
        assert b80.requests[-1]["path"] == "/.well-known/acme-challenge/tok123"
        r = g.curl(FQDN, "/other", scheme="http", args=["-o", "/dev/null", "-w", "%{http_code}"])
        assert r.stdout == b"308"
    finally:
        b80.stop()


def test_big_bodies_by_hash(gw, backend):
    gw.env.deploy_fqdn("37-1-app", FQDN, [backend.url])
    n = 48 << 20
    r = gw.curl(FQDN, "/bytes/%d" % n)
    assert len(r.stdout) == n and hashlib.sha256(r.stdout).digest() == hashlib.sha256(pattern(n)).digest()
    r = gw.curl(FQDN, "/chunked/%d" % (5 << 20))
    assert r.stdout == pattern(5 << 20)
    up = pattern(32 << 20, seed=7)
    for extra in ([], ["-H", "Transfer-Encoding: chunked"]):
        r = subprocess.run(CURL + ["-k", "--resolve", "%s:%d:127.0.0.1" % (FQDN, gw.https),
                                   "--data-binary", "@-", "-H", "Content-Type: application/octet-stream"]
                           + extra + ["https://%s:%d/upload" % (FQDN, gw.https)],
                           input=up, capture_output=True, timeout=scaled(60))
        assert r.returncode == 0, r.stderr
        j = json.loads(r.stdout)
        assert j == {"length": len(up), "sha256": hashlib.sha256(up).hexdigest()}


def test_keepalive_pipelining_and_exact_counters(gw, backend):
    gw.env.deploy_fqdn("37-1-app", FQDN, [backend.url])
    s = tls_conn(gw.https, FQDN)
    assert s.selected_alpn_protocol() == "http/1.1"
    sent = recv = 0
    reqs = [b"GET /bytes/%d HTTP/1.1\r\nHost: %s\r\nUser-Agent: t\r\n\r\n" % (n, FQDN.encode())
            for n in (10, 100000, 0, 777)]
    # Pipelined: all four requests in one write, answers in order.
    blob = b"".join(reqs)
    s.sendall(blob)
    sent += len(blob)
    buf = b""
    for n in (10, 100000, 0, 777):
        st, _, body, raw, buf = read_response(s, buf)
        assert st == 200 and body == pattern(n)
        recv += len(raw)
    body = pattern(5000, seed=3)
    req = b"POST /upload HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n" % (FQDN.encode(), len(body)) + body
    s.sendall(req)
    sent += len(req)
    st, _, b, raw, buf = read_response(s, buf)
    assert st == 200 and json.loads(b)["length"] == 5000
    recv += len(raw)
    s.close()
    wait_counters(gw, "37-1-app", sent, recv)


def read_chunked(sock, buf=b""):
    """Read one chunked response; returns (head, body, trailer lines, raw bytes, rest)."""
    def more():
        d = sock.recv(65536)
        if not d:
            raise ConnectionError("closed in the response: %r" % buf)
        return d
    while b"\r\n\r\n" not in buf:
        buf += more()
    head, rest = buf.split(b"\r\n\r\n", 1)
    raw, body, pos = head + b"\r\n\r\n", b"", 0
    while True:
        while b"\r\n" not in rest[pos:]:
            rest += more()
        end = rest.index(b"\r\n", pos)
        n = int(rest[pos:end].split(b";")[0], 16)
        pos = end + 2
        if n == 0:
            break
        while len(rest) < pos + n + 2:
            rest += more()
        assert rest[pos + n:pos + n + 2] == b"\r\n"
        body += rest[pos:pos + n]
        pos += n + 2
    trailers = []
    while True:
        while b"\r\n" not in rest[pos:]:
            rest += more()
        end = rest.index(b"\r\n", pos)
        line, pos = rest[pos:end], end + 2
        if not line:
            break
        trailers.append(line)
    return head, body, trailers, raw + rest[:pos], rest[pos:]


def test_response_trailers_in_last_chunk(gw, backend):
    gw.env.deploy_fqdn("37-1-app", FQDN, [backend.url])
    s = tls_conn(gw.https, FQDN)
    sent = recv = 0
    buf = b""
    # A backend's trailer fields go into the last chunk to an HTTP/1.1
    # client, byte-exact, those that must not be trailers (Set-Cookie,
    # Content-Type, Content-Length) dropped; also when the section reaches
    # the gateway in pieces ("drip").
    for path, want in (("/trailers", [b"Grpc-Status: 0", b"Grpc-Message: all good", b"X-Sum:  abc "]),
                       ("/trailers/drip", [b"Grpc-Status: 0", b"Grpc-Message: all good", b"X-Sum:  abc "]),
                       ("/trailers/forbidden", [])):
        req = b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path.encode(), FQDN.encode())
        s.sendall(req)
        sent += len(req)
        head, body, trailers, raw, buf = read_chunked(s, buf)
        assert head.startswith(b"HTTP/1.1 200 ") and b"transfer-encoding: chunked" in head.lower()
        assert body == b"hello world" and trailers == want, (path, trailers)
        recv += len(raw)
    assert buf == b""
    s.close()
    # An HTTP/1.0 client gets the body delimited by the close: no trailers.
    s = tls_conn(gw.https, FQDN)
    req = b"GET /trailers HTTP/1.0\r\nHost: %s\r\n\r\n" % FQDN.encode()
    s.sendall(req)
    sent += len(req)
    d = b""
    while True:
        try:
            x = s.recv(65536)
        except (ssl.SSLEOFError, ConnectionResetError):
            break
        if not x:
            break
        d += x
    s.close()
    recv += len(d)
    assert d.split(b"\r\n\r\n", 1)[1] == b"hello world", d
    # The counters are the bytes as written.
    wait_counters(gw, "37-1-app", sent, recv)


def test_route_changes_do_not_disturb_other_streams(gw, backend):
    gw.env.deploy_fqdn("37-1-app", FQDN, [backend.url])
    gw.env.deploy_name("37-6-gone", "gone", [backend.url])
    n = 2 << 20
    result = {}

    def slow():
        r = gw.curl(FQDN, "/slow/%d/25" % n, check=False)
        result["r"] = r

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.5)
    # Meanwhile: add a name, delete another, replace nothing else.
    gw.env.deploy_name("37-7-new", "new", [backend.url])
    assert gw.env.bus.delete_named_proxy("37-6-gone").ok
    r = gw.curl("new." + DOMAIN, "/echo")
    assert json.loads(r.stdout)["backend"] == "b1"
    r = gw.curl("gone." + DOMAIN, "/echo", check=False)
    assert r.returncode != 0, "a deleted name must not be served"
    t.join(scaled(60))
    r = result["r"]
    assert r.returncode == 0 and r.stdout == pattern(n)


def test_backend_failover_and_503(gw, backend):
    dead = free_port()
    gw.env.deploy_fqdn("37-1-app", FQDN, ["http://%s:%d" % (BACKEND_IP, dead), backend.url])
    for _ in range(4):
        r = gw.curl(FQDN, "/echo")
        assert json.loads(r.stdout)["backend"] == "b1"
    # The dead backend is down (the update kept it): every backend is down,
    # so the answer is the 503 page (docs/internals/proxy.md, "Backend health").
    gw.env.deploy_fqdn("37-1-app", FQDN, ["http://%s:%d" % (BACKEND_IP, dead)])
    r = gw.curl(FQDN, "/echo", args=["-w", "\n%{http_code}"])
    assert r.stdout.endswith(b"\n503") and b"unreachable" in r.stdout, r.stdout


def test_restart_restores_serving(gw, backend):
    gw.env.deploy_fqdn("37-1-app", FQDN, [backend.url])
    before = peer_cert_names(gw.https, FQDN)
    gw.env.daemon.restart()
    deadline = Deadline(10, "serving after restart")
    while True:
        r = gw.curl(FQDN, "/echo", check=False)
        if r.returncode == 0:
            break
        deadline.check(r.stderr.decode())
        time.sleep(0.1)
    assert json.loads(r.stdout)["backend"] == "b1"
    assert peer_cert_names(gw.https, FQDN) == before, "the certificate is kept across restarts"

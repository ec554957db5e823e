# SPDX-License-Identifier: Apache-2.0
"""SNI passthrough through the daemon: workloads deployed over the bus with
tls_passthrough, real TLS backends on loopback (tlsback.py), clients that
count every raw byte they send and receive, Metrics over the bus and the
Prometheus text checked against those counts."""

import re
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import DOMAIN, Deadline, free_port, needs_gatewayd, scaled, wait_refused
from tlsback import CA, Client, EchoServer

pytestmark = needs_gatewayd

FQDN = "app.example.org"
NAME = "shop"
WL1 = "37-1-app"
WL2 = "37-2-shop"


@pytest.fixture(scope="module")
def ca():
    return CA()


@pytest.fixture
def backends(ca, tmp_path):
    """Two TLS echo servers: one for FQDN, one for <NAME>.<DOMAIN>."""
    srvs = []
    for stem, host in (("app", FQDN), ("shop", "%s.%s" % (NAME, DOMAIN))):
        crt, key = ca.issue(host).write(str(tmp_path), stem)
        srvs.append(EchoServer(crt, key).start())
    yield srvs
    for s in srvs:
        s.stop()


class Gw:
    def __init__(self, env, ca):
        self.env = env
        self.ctx = ca.client_context()

    @property
    def port(self):
        return self.env.https_port

    def start(self, **overrides):
        # :80 is not needed for passthrough.
        o = {"proxy": {"http_port": "0", "workers": "2"}}
        o.update(overrides)
        self.env.start_daemon(o)
        self.wait_serving()
        return self

    def wait_serving(self, timeout=10):
        """Listeners are opened asynchronously after READY=1 (and after a
        reload): wait until the port takes connections."""
        dl = Deadline(timeout, "the proxy listening on %d" % self.port)
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                dl.check()
                time.sleep(0.05)

    def connect(self, sni):
        return Client(("127.0.0.1", self.port), self.ctx, sni, timeout=scaled(10))

    def deploy(self, backends):
        self.env.deploy_fqdn(WL1, FQDN, [backends[0].backend], tls_passthrough=True)
        fqdn = self.env.deploy_name(WL2, NAME, [backends[1].backend], tls_passthrough=True)
        assert fqdn == "%s.%s" % (NAME, DOMAIN)

    def metrics(self):
        m = self.env.bus.metrics()
        assert m.ok, m
        return m.data

    def wait_metrics(self, want, timeout=10):
        """Counters are added when a connection is freed, right after the
        client saw it close: wait for the exact values."""
        dl = Deadline(timeout, "Metrics %r" % (want,))
        while True:
            m = self.metrics()
            got = {k: (m["Request"].get(k, 0), m["Response"].get(k, 0)) for k in want}
            if got == want:
                return m
            if dl.expired:
                raise AssertionError("Metrics: got %r, want %r" % (got, want))
            time.sleep(0.05)

    def prometheus(self, path="/metrics"):
        url = "http://127.0.0.1:%d%s" % (self.env.metrics_port, path)
        with urllib.request.urlopen(url, timeout=scaled(10)) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()


def prom_samples(text, name):
    """{labels-dict-as-tuple: value} of metric @name."""
    out = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"^(\w+)(\{[^}]*\})? (\S+)$", line)
        assert m, "bad exposition line %r" % line
        if m.group(1) != name:
            continue
        labels = tuple(sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or "")))
        out[labels] = float(m.group(3))
    return out


@pytest.fixture
def gw(env, ca):
    return Gw(env, ca)


def closed_without_reply(gw, sni):
    """A handshake for @sni gets no ServerHello: the gateway closes."""
    try:
        c = gw.connect(sni)
    except (ConnectionError, ssl.SSLError, OSError):
        return True
    c.close()
    return False


def test_backend_certificate_bytes_and_metrics(gw, backends, ca):
    gw.start()
    gw.deploy(backends)
    c = gw.connect(FQDN)
    # The backend's own certificate: TLS ends there, not at the gateway.
    assert c.peer_der() == ca_issued_der(backends[0])
    for n in (1, 1000, 70000):
        c.echo(b"x" * n)
    c.finish()
    d = gw.connect("%s.%s" % (NAME, DOMAIN))
    d.echo(b"hello")
    d.finish()
    m = gw.wait_metrics({WL1: (c.sent, c.received), WL2: (d.sent, d.received)})
    assert set(m["Request"]) == {WL1, WL2}

    # openssl s_client sees the backend's certificate too.
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % gw.port, "-servername", FQDN],
                       input=b"", capture_output=True, timeout=scaled(20))
    pem = re.search(rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", r.stdout, re.S)
    assert pem, r.stdout
    assert ssl.PEM_cert_to_DER_cert(pem.group(0).decode()) == ca_issued_der(backends[0])


def ca_issued_der(srv):
    with open(srv.certfile, "rb") as f:
        return ssl.PEM_cert_to_DER_cert(f.read().decode())


def test_unknown_sni_is_closed(gw, backends):
    gw.start()
    gw.deploy(backends)
    before = backends[0].accepted + backends[1].accepted
    assert closed_without_reply(gw, "unknown.example.org")
    assert closed_without_reply(gw, "app.example.org.evil.net")
    assert backends[0].accepted + backends[1].accepted == before


def test_delete_closes_that_name_only(gw, backends):
    gw.start(proxy={"http_port": "0", "workers": "3"})
    gw.deploy(backends)
    a = gw.connect(FQDN)
    a.echo(b"before")
    b = gw.connect("%s.%s" % (NAME, DOMAIN))
    b.echo(b"before")
    assert gw.env.bus.delete_named_proxy(WL1).ok
    # Right after the reply: new connections of the name find no route, on
    # whichever worker accepts them.
    for _ in range(6):
        assert closed_without_reply(gw, FQDN)
    # The open connection of the deleted name is closed ...
    assert a.wait_closed()
    # ... and the other name's connection keeps streaming.
    for i in range(20):
        b.echo(b"still here %d" % i * 100)
    b.finish()
    m = gw.wait_metrics({WL2: (b.sent, b.received)})
    assert WL1 not in m["Request"]


def test_restart_restores_serving_and_counters(gw, backends):
    gw.start()
    gw.deploy(backends)
    c = gw.connect(FQDN)
    c.echo(b"a" * 5000)
    c.finish()
    gw.wait_metrics({WL1: (c.sent, c.received)})
    # Graceful stop saves the counters; the routes come back from the state.
    gw.env.daemon.restart(sig=signal.SIGTERM)
    gw.wait_serving()
    gw.wait_metrics({WL1: (c.sent, c.received)})
    d = gw.connect(FQDN)
    d.echo(b"b" * 300)
    d.finish()
    gw.wait_metrics({WL1: (c.sent + d.sent, c.received + d.received)})


def test_capability_switch_stops_and_restarts_serving(gw, backends):
    gw.start()
    gw.deploy(backends)
    c = gw.connect(FQDN)
    c.echo(b"x")
    # The open connection is relayed until [limits] drain_timeout (30 s by
    # default), set short here with the same reload.
    gw.env.reload({"gateway": {"enabled": "no"}, "proxy": {"http_port": "0"},
                   "limits": {"drain_timeout": "1s"}})
    # The listener goes away and open connections end (the engine stops).
    wait_refused(gw.port, "the proxy to stop listening", seconds=10)
    assert c.wait_closed()
    gw.env.reload({"gateway": {"enabled": "yes"}, "proxy": {"http_port": "0"}})
    gw.wait_serving()
    d = gw.connect(FQDN)
    d.echo(b"back")
    d.finish()


def test_prometheus_text(gw, backends):
    gw.start()
    gw.deploy(backends)
    c = gw.connect(FQDN)
    c.echo(b"p" * 1234)
    c.finish()
    gw.wait_metrics({WL1: (c.sent, c.received)})
    status, ctype, text = gw.prometheus()
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4"), ctype
    req = prom_samples(text, "traefik_service_requests_bytes_total")
    resp = prom_samples(text, "traefik_service_responses_bytes_total")
    key = (("service", WL1),)
    assert req[key] == c.sent and resp[key] == c.received
    # A workload without traffic has no series yet (as with Traefik).
    assert not any(dict(k).get("service") == WL2 for k in req), req
    conns = prom_samples(text, "gatewayd_service_requests_total")
    assert conns[(("mode", "passthrough"), ("service", WL1))] == 1
    assert prom_samples(text, "gatewayd_routes")[()] == 2
    assert prom_samples(text, "gatewayd_workloads")[()] == 2
    assert prom_samples(text, "gatewayd_proxy_serving")[()] == 1
    assert prom_samples(text, "gatewayd_connections_accepted_total")[()] >= 1
    # Passthrough routes have no HTTP status classes.
    assert not any(dict(k).get("service") == WL1
                   for k in prom_samples(text, "traefik_service_requests_total"))
    with pytest.raises(urllib.error.HTTPError) as e:
        gw.prometheus("/")
    assert e.value.code == 404


@pytest.mark.timeout_s(60)
def test_port_in_use_is_logged_and_retried(env, gw, backends):
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", gw.port))
    blocker.listen(1)
    try:
        env.start_daemon({"proxy": {"http_port": "0"}})
        line = env.daemon.wait_log(r"Cannot serve https 127\.0\.0\.1:%d" % gw.port, timeout=10)
        assert "Address already in use" in line and "retrying" in line, line
        # The bus is not held up by it.
        gw.deploy(backends)
        assert env.bus.status().ok
        mark = env.daemon.mark()
    finally:
        blocker.close()
    env.daemon.wait_log(r"Proxy serving https 127\.0\.0\.1:%d" % gw.port, timeout=40, since=mark)
    c = gw.connect(FQDN)
    c.echo(b"after the retry")
    c.finish()
    gw.wait_metrics({WL1: (c.sent, c.received)})


def test_sighup_moves_the_listener_and_keeps_connections(env, gw, backends):
    gw.start()
    gw.deploy(backends)
    c = gw.connect(FQDN)
    c.echo(b"before the move")
    old = gw.port
    new = free_port()
    mark = env.daemon.mark()
    env.reload({"proxy": {"http_port": "0", "workers": "2", "https_port": str(new)}})
    env.daemon.wait_log(r"Proxy serving https 127\.0\.0\.1:%d" % new, timeout=10, since=mark)
    env.https_port = new
    d = gw.connect(FQDN)
    d.echo(b"on the new port")
    d.finish()
    # The old port is closed; the connection accepted there is untouched.
    wait_refused(old, "the old port to be closed")
    c.echo(b"still relayed")
    c.finish()
    gw.wait_metrics({WL1: (c.sent + d.sent, c.received + d.received)})


def test_prometheus_escapes_labels(gw, backends):
    """Workload IDs of FQDN proxies are not parsed by zos: any text. The
    exposition escapes backslash, double quote and line feed."""
    gw.start()
    wlid = 'odd"id\\with\nnewline'
    gw.env.deploy_fqdn(wlid, FQDN, [backends[0].backend], tls_passthrough=True)
    c = gw.connect(FQDN)
    c.echo(b"q")
    c.finish()
    gw.wait_metrics({wlid: (c.sent, c.received)})
    _, _, text = gw.prometheus()
    assert 'service="odd\\"id\\\\with\\nnewline"' in text, text
    req = prom_samples(text, "traefik_service_requests_bytes_total")
    assert req[(("service", 'odd\\"id\\\\with\\nnewline'),)] == c.sent


def test_prometheus_endpoint_bounds(env):
    env.start_daemon()
    addr = ("127.0.0.1", env.metrics_port)
    dl = Deadline(10, "the metrics endpoint")
    while True:
        try:
            socket.create_connection(addr, timeout=1).close()
            break
        except OSError:
            dl.check()
            time.sleep(0.05)

    def exchange(data):
        s = socket.create_connection(addr, timeout=scaled(10))
        s.sendall(data)
        out = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
        s.close()
        return out

    assert exchange(b"GET /metrics HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 200 OK\r\n")
    assert exchange(b"POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 404 ")
    assert exchange(b"GET /metricsx HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 404 ")
    assert exchange(b"garbage\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert exchange(b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 5000).startswith(b"HTTP/1.1 431 ")
    # At most 8 connections: a 9th is closed at once; the idle ones stay.
    idle = [socket.create_connection(addr, timeout=scaled(10)) for _ in range(8)]
    try:
        extra = socket.create_connection(addr, timeout=scaled(10))
        assert extra.recv(100) == b""
        extra.close()
    finally:
        for s in idle:
            s.close()
    dl = Deadline(10, "a free connection slot")
    while True:
        try:
            if exchange(b"GET /metrics HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 200 OK"):
                break
        except OSError:
            pass
        dl.check()
        time.sleep(0.05)


def test_sighup_http_plain_restarts_the_engine(env, gw, backends):
    gw.start()
    gw.deploy(backends)
    c0 = gw.connect(FQDN)
    c0.echo(b"before")
    c0.finish()
    gw.wait_metrics({WL1: (c0.sent, c0.received)})
    _, _, text = gw.prometheus()
    accepted = prom_samples(text, "gatewayd_connections_accepted_total")[()]
    assert accepted >= 1
    mark = env.daemon.mark()
    env.reload({"proxy": {"http_port": "0", "workers": "2", "http_plain": "yes"}})
    env.daemon.wait_log(r"Restarting the proxy \(http_plain = yes\)", timeout=10, since=mark)
    env.daemon.wait_log(r"Proxy serving https 127\.0\.0\.1:%d" % gw.port, timeout=15, since=mark)
    c = gw.connect(FQDN)
    c.echo(b"after the restart")
    c.finish()
    gw.wait_metrics({WL1: (c0.sent + c.sent, c0.received + c.received)})
    # Engine figures stay monotonic over the restart.
    _, _, text = gw.prometheus()
    assert prom_samples(text, "gatewayd_connections_accepted_total")[()] >= accepted + 1

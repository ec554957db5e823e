# SPDX-License-Identifier: Apache-2.0
"""Prometheus metrics against what real clients did (issue 11, metrics
parity): traefik_service_requests_total by exact code, method and protocol,
the duration histogram, the HTTP version, open connections per entry point,
build info and Traefik's reload metrics; and a workload whose clients make
hundreds of distinct code/method pairs keeps a bounded number of series.

The backends live in a private network namespace (test_http_proxy's
fixtures): zos refuses loopback addresses in http:// backends."""

import re
import socket
import subprocess
import threading
import time
import urllib.request

import pytest

from conftest import GATEWAYD, Deadline, needs_gatewayd, scaled
from httpback import Backend
from test_http_proxy import BACKEND_IP, private_net, read_response, tls_conn  # noqa: F401

pytestmark = needs_gatewayd

FQDN = "app.example.org"
WL = "37-1-app"


def scrape(env):
    url = "http://127.0.0.1:%d/metrics" % env.metrics_port
    with urllib.request.urlopen(url, timeout=scaled(10)) as r:
        return r.read().decode()


def samples(text, name):
    """{frozenset of (label, value): value} for the samples of @name."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^(\w+)(\{[^}]*\})? (\S+)$", line)
        assert m, "bad exposition line %r" % line
        if m.group(1) != name:
            continue
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out[labels] = float(m.group(3))
    return out


def of_service(s, service=WL):
    """The samples of one service, keyed by their other labels (dict)."""
    return {frozenset(kv for kv in k if kv[0] != "service"): v
            for k, v in s.items() if ("service", service) in k}


def L(**kw):
    return frozenset(kw.items())


@pytest.fixture
def backend(private_net):  # noqa: F811
    b = Backend("b1").start(BACKEND_IP)
    yield b
    b.stop()


@pytest.fixture
def gw(private_net, env):  # noqa: F811
    env.start_daemon({"proxy": {"workers": "2"}})
    return env


def wait_requests(env, n, service=WL):
    """Requests are counted when the exchange ends, just after the client
    saw its last byte: wait until @n are in."""
    dl = Deadline(scaled(10), "%d requests counted" % n)
    while True:
        text = scrape(env)
        got = sum(of_service(samples(text, "traefik_service_requests_total"), service).values())
        if got == n:
            return text
        assert got < n, "more requests counted (%d) than made (%d)" % (got, n)
        dl.check("%d of %d" % (got, n))
        time.sleep(0.05)


def exchange(s, method, path, version="1.1", headers=(), body=b"", buf=b""):
    """One request on the TLS socket @s; returns (status, rest of the buffer)."""
    h = "%s %s HTTP/%s\r\nHost: %s\r\n" % (method, path, version, FQDN)
    for k, v in headers:
        h += "%s: %s\r\n" % (k, v)
    if body or method in ("POST", "PUT", "PATCH"):
        h += "Content-Length: %d\r\n" % len(body)
    s.sendall(h.encode() + b"\r\n" + body)
    if method == "HEAD":
        # No body follows whatever Content-Length says.
        while b"\r\n\r\n" not in buf:
            d = s.recv(65536)
            assert d, "closed before the head"
            buf += d
        head, buf = buf.split(b"\r\n\r\n", 1)
        return int(head.split()[1]), buf
    st, _, _, _, rest = read_response(s, buf)
    return st, rest


def test_requests_by_code_method_protocol_version_and_duration(gw, backend):
    gw.deploy_fqdn(WL, FQDN, [backend.url])
    want = {}   # (code, method, protocol) -> count, from what the clients got
    versions = {}
    plan = [("GET", "/status/200")] * 5 + [("GET", "/status/404")] * 3 + \
        [("POST", "/upload")] * 2 + [("HEAD", "/bytes/10")] * 2 + \
        [("DELETE", "/status/503"), ("PUT", "/status/201"), ("PATCH", "/echo"),
         ("OPTIONS", "/echo"), ("FOO", "/echo"), ("GET", "/status/418")]
    s = tls_conn(gw.https_port, FQDN)
    buf = b""
    for method, path in plan:
        st, buf = exchange(s, method, path, body=b"x" * 100 if method in ("POST", "PUT") else b"",
                           buf=buf)
        key = (str(st), method if method != "FOO" else "OTHER", "http")
        want[key] = want.get(key, 0) + 1
        versions["1.1"] = versions.get("1.1", 0) + 1
    s.close()
    # Python's backend answers what it has no handler for with 501.
    assert want[("501", "PATCH", "http")] == 1 and want[("501", "OTHER", "http")] == 1
    # HTTP/1.0, one request per connection.
    for _ in range(2):
        s = tls_conn(gw.https_port, FQDN)
        st, _ = exchange(s, "GET", "/status/202", version="1.0")
        s.close()
        key = (str(st), "GET", "http")
        want[key] = want.get(key, 0) + 1
        versions["1.0"] = versions.get("1.0", 0) + 1
    # A WebSocket upgrade the backend does not take (it answers 200): Traefik
    # labels it websocket all the same, from the request.
    s = tls_conn(gw.https_port, FQDN)
    st, _ = exchange(s, "GET", "/echo", headers=(("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                                  ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                                                  ("Sec-WebSocket-Version", "13")))
    s.close()
    want[(str(st), "GET", "websocket")] = 1
    versions["1.1"] += 1
    # One slow response: 3 pieces of 16 KiB, 400 ms apart (about 1.2 s).
    s = tls_conn(gw.https_port, FQDN)
    t0 = time.monotonic()
    st, _ = exchange(s, "GET", "/slow/49152/400")
    slow = time.monotonic() - t0
    s.close()
    assert st == 200 and slow >= 0.8
    want[("200", "GET", "http")] += 1
    versions["1.1"] += 1
    n = sum(want.values())

    text = wait_requests(gw, n)
    got = of_service(samples(text, "traefik_service_requests_total"))
    assert got == {L(code=c, method=m, protocol=p): v for (c, m, p), v in want.items()}, got
    # The host label is gone: the service is the workload.
    assert 'host="' not in "\n".join(l for l in text.splitlines() if l.startswith("traefik_service"))

    v = of_service(samples(text, "gatewayd_service_requests_by_version_total"))
    assert v == {L(version=k): c for k, c in versions.items()}, v

    buckets = of_service(samples(text, "traefik_service_request_duration_seconds_bucket"))
    count = of_service(samples(text, "traefik_service_request_duration_seconds_count"))
    total = of_service(samples(text, "traefik_service_request_duration_seconds_sum"))
    assert count == {L(protocol="http"): n - 1, L(protocol="websocket"): 1}, count
    assert buckets[L(protocol="http", le="+Inf")] == n - 1
    les = ["0.1", "0.3", "1.2", "5", "+Inf"]  # as Go writes them
    cum = [buckets[L(protocol="http", le=le)] for le in les]
    assert cum == sorted(cum), cum  # cumulative
    # The slow one is above 0.3 s: at most n - 2 requests are below it.
    assert cum[1] <= n - 2, cum
    assert total[L(protocol="http")] >= 0.8
    assert total[L(protocol="http")] <= slow + 0.5 * (n - 1) + 1


def test_cardinality_bounded_with_many_codes_and_methods(gw, backend):
    gw.deploy_fqdn(WL, FQDN, [backend.url])
    codes = [c for c in range(200, 600, 3) if c not in (204, 304)]
    methods = ["GET", "DELETE"]
    n = 0
    classes = {}
    for code in codes:
        for method in methods:
            s = tls_conn(gw.https_port, FQDN)
            st, _ = exchange(s, method, "/status/%d" % code, headers=(("Connection", "close"),))
            s.close()
            assert st == code
            classes[code // 100] = classes.get(code // 100, 0) + 1
            n += 1
    assert n > 200
    text = wait_requests(gw, n)
    got = of_service(samples(text, "traefik_service_requests_total"))
    # 16 exact series, then one per status class (and protocol).
    exact = {k: v for k, v in got.items() if dict(k)["method"] != "other"}
    overflow = {k: v for k, v in got.items() if dict(k)["method"] == "other"}
    assert len(exact) == 16, exact
    assert all(v == 1 for v in exact.values())
    assert len(got) <= 16 + 12
    assert sum(got.values()) == n
    by_class = dict(classes)
    for k, v in exact.items():
        by_class[int(dict(k)["code"]) // 100] -= v
    assert {int(dict(k)["code"][0]): v for k, v in overflow.items()} == \
        {c: v for c, v in by_class.items() if v}, overflow
    assert all(re.fullmatch(r"[2-5]xx", dict(k)["code"]) for k in overflow)
    # The histogram and versions stay one series per protocol/version.
    assert len(of_service(samples(text, "traefik_service_request_duration_seconds_count"))) == 1
    assert of_service(samples(text, "gatewayd_service_requests_by_version_total")) == \
        {L(version="1.1"): n}


def test_open_connections_per_entrypoint(gw, backend):
    gw.deploy_fqdn(WL, FQDN, [backend.url])

    def opened():
        s = samples(scrape(gw), "traefik_open_connections")
        return (s[L(entrypoint="https", protocol="TCP")], s[L(entrypoint="http", protocol="TCP")])

    def wait(want):
        dl = Deadline(scaled(10), "open connections %r" % (want,))
        while opened() != want:
            dl.check("got %r" % (opened(),))
            time.sleep(0.05)

    wait((0, 0))
    tls = []
    for _ in range(3):
        s = tls_conn(gw.https_port, FQDN)
        st, _ = exchange(s, "GET", "/status/200")  # keep-alive: stays open
        assert st == 200
        tls.append(s)
    plain = [socket.create_connection(("127.0.0.1", gw.http_port)) for _ in range(2)]
    wait((3, 2))
    for s in tls + plain:
        s.close()
    wait((0, 0))


def test_build_info_and_reload_metrics(gw, backend):
    text = scrape(gw)
    out = subprocess.run([str(GATEWAYD), "--version"], capture_output=True, text=True).stdout
    m = re.match(r"gatewayd (\S+) \(commit (\S+)\)", out)
    assert m, out
    assert samples(text, "gatewayd_build_info") == {L(version=m.group(1), commit=m.group(2)): 1}
    assert samples(text, "traefik_config_reloads_total") == {L(): 0}
    assert samples(text, "traefik_config_reloads_failure_total") == {L(): 0}
    assert samples(text, "traefik_config_last_reload_failure") == {L(): 0}
    started = samples(text, "traefik_config_last_reload_success")[L()]
    assert abs(started - time.time()) < 60

    good = gw.daemon.config_path.read_text()
    time.sleep(1.1)  # a later second for the timestamp
    gw.reload(text=good)
    text = scrape(gw)
    assert samples(text, "traefik_config_reloads_total") == {L(): 1}
    ok_at = samples(text, "traefik_config_last_reload_success")[L()]
    assert ok_at > started
    gw.reload(text=good.replace("enabled = yes", "enabled = perhaps", 1))
    text = scrape(gw)
    assert samples(text, "traefik_config_reloads_total") == {L(): 1}
    assert samples(text, "traefik_config_reloads_failure_total") == {L(): 1}
    assert samples(text, "traefik_config_last_reload_success")[L()] == ok_at
    assert samples(text, "traefik_config_last_reload_failure")[L()] >= ok_at


class UpgradeBackend:
    """Answers every request with 101 and then echoes bytes until EOF: a
    WebSocket backend as far as the gateway is concerned."""

    def __init__(self, host):
        self.ls = socket.create_server((host, 0))
        self.url = "http://%s:%d" % (host, self.ls.getsockname()[1])
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        buf = b""
        try:
            while b"\r\n\r\n" not in buf:
                d = c.recv(4096)
                if not d:
                    return
                buf += d
            c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\n"
                      b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
            while True:
                d = c.recv(4096)
                if not d:
                    return
                c.sendall(d)
        except OSError:
            return
        finally:
            c.close()

    def stop(self):
        self.ls.close()


def test_websocket_tunnel(gw, private_net):  # noqa: F811
    up = UpgradeBackend(BACKEND_IP)
    try:
        gw.deploy_fqdn(WL, FQDN, [up.url])
        s = tls_conn(gw.https_port, FQDN)
        s.sendall(b"GET /chat HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
                  % FQDN.encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = s.recv(4096)
            assert d
            buf += d
        assert buf.startswith(b"HTTP/1.1 101 "), buf
        s.sendall(b"ping")
        got = buf.split(b"\r\n\r\n", 1)[1]
        while len(got) < 4:
            got += s.recv(4096)
        assert got == b"ping"
        # Counted when the tunnel started, while it is still open.
        text = wait_requests(gw, 1)
        assert of_service(samples(text, "traefik_service_requests_total")) == \
            {L(code="101", method="GET", protocol="websocket"): 1}
        assert of_service(samples(text, "traefik_service_request_duration_seconds_count")) == \
            {L(protocol="websocket"): 1}
        assert of_service(samples(text, "gatewayd_service_requests_by_version_total")) == \
            {L(version="1.1"): 1}
        assert samples(text, "traefik_open_connections")[L(entrypoint="https", protocol="TCP")] == 1
        s.close()
    finally:
        up.stop()

# SPDX-License-Identifier: Apache-2.0
"""Graceful drain on SIGTERM (issue 11): requests in flight finish, idle
keep-alive connections are closed at once, new connections are refused,
systemd hears STOPPING=1 and a STATUS= line with what is left, and the
daemon exits 0.

Runs like test_http_proxy: the test enters a network namespace of its own
(the daemon's listeners on its loopback, the backend on a veth address).

The default deadline (30 s) is what is tested here: a download that lasts
~8 s after the SIGTERM (longer than the old fixed 5 s) must finish intact.
A deadline that cuts a download needs a configurable drain timeout
([limits] drain_timeout, another branch): that test comes with it."""

import hashlib
import json
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import Deadline, needs_gatewayd, scaled, wait_refused
from httpback import Backend, pattern
from test_http_proxy import BACKEND_IP, CURL, FQDN, Gw, private_net, read_response, tls_conn  # noqa: F401
from tlsback import CA, Client, EchoServer

pytestmark = needs_gatewayd

SLOW_N = 512 * 1024  # 32 pieces of 16 KiB ...
SLOW_MS = 250  # ... 250 ms apart: ~8 s
PT = "pt.example.org"


@pytest.fixture
def backend(private_net):  # noqa: F811
    b = Backend("b1").start(BACKEND_IP)
    yield b
    b.stop()


def test_sigterm_drains_in_flight_and_exits_0(private_net, env, backend, tmp_path):  # noqa: F811
    gw = Gw(env)
    env.deploy_fqdn("37-1-app", FQDN, [backend.url])
    d = env.daemon
    ca = CA()
    crt, key = ca.issue(PT).write(str(tmp_path), "pt")
    pt = EchoServer(crt, key, host=BACKEND_IP).start()
    env.deploy_fqdn("37-2-pt", PT, [pt.backend], tls_passthrough=True)
    # A passthrough tunnel open across the SIGTERM.
    tunnel = Client(("127.0.0.1", gw.https), ca.client_context(), PT, timeout=scaled(10))
    tunnel.echo(b"before")

    # An idle keep-alive connection on each port, each after one request.
    idle_tls = tls_conn(gw.https, FQDN)
    idle_tls.sendall(b"GET /echo HTTP/1.1\r\nHost: %s\r\n\r\n" % FQDN.encode())
    st, _, _, _, _ = read_response(idle_tls)
    assert st == 200
    idle_plain = socket.create_connection(("127.0.0.1", gw.http), timeout=scaled(10))
    idle_plain.sendall(b"GET /x HTTP/1.1\r\nHost: %s\r\n\r\n" % FQDN.encode())
    st, _, _, _, _ = read_response(idle_plain)
    assert st == 308

    # A slow download in flight, started before the SIGTERM.
    result = {}

    def download():
        result["r"] = subprocess.run(CURL + ["-k", "--resolve", "%s:%d:127.0.0.1" % (FQDN, gw.https),
                                             "-D", "-", "-o", "-",
                                             "https://%s:%d/slow/%d/%d" % (FQDN, gw.https, SLOW_N, SLOW_MS)],
                                     capture_output=True, timeout=scaled(60))

    t = threading.Thread(target=download)
    t.start()
    dl = Deadline(10, "the download reaching the backend")
    while not any(r["path"].startswith("/slow/") for r in backend.requests):
        dl.check()
        time.sleep(0.05)
    time.sleep(0.5)  # a few pieces are through

    # A request whose head is on its way when the SIGTERM comes (its last
    # line follows after): answered, with "Connection: close".
    partial = tls_conn(gw.https, FQDN)
    partial.sendall(b"GET /echo HTTP/1.1\r\nHost: %s\r\n" % FQDN.encode())
    time.sleep(scaled(0.5))  # read by its worker (nothing outside shows that)

    mark = d.notify_mark()
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    d.wait_notify("STOPPING=1", since=mark)
    # What is left: the download, the tunnel and the request whose head is
    # arriving (the idle connections were closed at once).
    want = "STATUS=Draining: 3 connections with a request or tunnel in flight, the rest are closed in "
    dl = Deadline(10, "a STATUS= line about the drain")
    while not any(l.startswith(want) for _, m in d.notify[mark:] for l in m.split("\n")):
        dl.check(repr(d.notify[mark:]))
        time.sleep(0.05)
    assert any(l.startswith("EXTEND_TIMEOUT_USEC=45000000")
               for _, m in d.notify[mark:] for l in m.split("\n")), d.notify[mark:]

    partial.sendall(b"\r\n")
    st, hdrs, body, _, _ = read_response(partial)
    assert st == 200 and hdrs.get("connection") == "close", (st, hdrs)
    assert json.loads(body)["backend"] == "b1", "proxied (a new backend connection) while draining"
    assert partial.recv(100) == b"", "closed after the answer"
    partial.close()

    # New connections are refused (each worker closes its listeners when
    # the stop reaches it).
    for port in (gw.https, gw.http):
        wait_refused(port, "the listeners to be closed")

    # The idle keep-alive connections were closed: a new request on them
    # gets no answer (EOF or a reset, never a response that keeps it open).
    for s, req in ((idle_tls, b"GET /echo HTTP/1.1\r\nHost: %s\r\n\r\n" % FQDN.encode()),
                   (idle_plain, b"GET /x HTTP/1.1\r\nHost: %s\r\n\r\n" % FQDN.encode())):
        got = b""
        try:
            s.sendall(req)
            while True:
                k = s.recv(65536)
                if not k:
                    break
                got += k
        except (ConnectionError, OSError):
            pass
        assert got == b"" or b"connection: close" in got.lower(), got
        s.close()

    # The tunnel carries on, and ends when its client ends it.
    tunnel.echo(b"during the drain")
    tunnel.finish()
    pt.stop()

    # The download finishes intact, well after the old fixed 5 s.
    t.join(scaled(60))
    r = result["r"]
    assert r.returncode == 0, r.stderr
    head, body = r.stdout.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200"), head
    assert len(body) == SLOW_N and hashlib.sha256(body).digest() == hashlib.sha256(pattern(SLOW_N)).digest()
    assert time.monotonic() - t0 > 5

    rc = d.wait_exit(timeout=20)
    assert rc == 0, d.log_tail()
    assert time.monotonic() - t0 < 20, "exits once drained, not at the deadline"
    log = d.log_text()
    assert "Draining the proxy" in log


def test_sigterm_with_nothing_in_flight_exits_at_once(private_net, env, backend):  # noqa: F811
    gw = Gw(env)
    env.deploy_fqdn("37-1-app", FQDN, [backend.url])
    idle = tls_conn(gw.https, FQDN)
    idle.sendall(b"GET /echo HTTP/1.1\r\nHost: %s\r\n\r\n" % FQDN.encode())
    st, _, body, _, _ = read_response(idle)
    assert st == 200 and json.loads(body)["backend"] == "b1"
    t0 = time.monotonic()
    env.daemon.signal(signal.SIGTERM)
    assert env.daemon.wait_exit(timeout=20) == 0
    assert time.monotonic() - t0 < 5, "an idle keep-alive connection does not hold up the stop"
    idle.close()

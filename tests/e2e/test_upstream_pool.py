# SPDX-License-Identifier: Apache-2.0
"""Connection reuse under load (issue 11): the keep-alive pool to a backend
grows with demand instead of stopping at a fixed 64 per backend per worker.

N keep-alive clients (N > 64, one worker) send their requests in rounds,
all at once; the backend holds every answer a little, so each round needs N
backend connections at the same time. With a fixed 64, every round after the
first opened N - 64 new ones; now the first round's connections carry every
later round. Bounded in count (ROUNDS x N requests) and time (the test's
timeout). Runs in the private network namespace of test_http_proxy.py."""

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from conftest import Deadline, needs_gatewayd, scaled
from test_http_proxy import BACKEND_IP, FQDN, private_net, read_response  # noqa: F401 (fixture)

import pytest

pytestmark = needs_gatewayd

N = 160  # concurrent keep-alive clients, all on one worker
ROUNDS = 5
HOLD_S = 0.3  # the backend's delay per answer: every round overlaps in full


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        time.sleep(HOLD_S)
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        with self.server.lock:
            self.server.requests += 1


class _CountingServer(ThreadingHTTPServer):
    """Counts the connections it accepted and the requests it answered."""
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, addr):
        self.lock = threading.Lock()
        self.connections = 0
        self.requests = 0
        super().__init__(addr, _Handler)

    def get_request(self):
        r = super().get_request()
        with self.lock:
            self.connections += 1
        return r


@pytest.fixture
def counting_backend(private_net):  # noqa: F811 (the imported fixture)
    srv = _CountingServer((BACKEND_IP, 0))
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.mark.timeout_s(90)
def test_issue_11_backend_connections_reused_under_load(private_net, env, counting_backend):  # noqa: F811
    srv = counting_backend
    env.start_daemon({"proxy": {"workers": "1", "http_plain": "yes"}})
    env.deploy_fqdn("37-1-app", FQDN, ["http://%s:%d" % (BACKEND_IP, srv.server_address[1])])
    port = env.http_port
    req = b"GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % FQDN.encode()

    # One request first, so the route is live before the clients start.
    deadline = Deadline(10, "the route to be served")
    while True:
        s = socket.create_connection(("127.0.0.1", port), timeout=scaled(10))
        s.sendall(req)
        st = read_response(s)[0]
        s.close()
        if st == 200:
            break
        deadline.check("status %d" % st)
        time.sleep(0.1)
    before = srv.connections

    barrier = threading.Barrier(N, timeout=scaled(30))
    statuses, errors = [], []
    lock = threading.Lock()

    def client():
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=scaled(30))
            buf = b""
            got = []
            for _ in range(ROUNDS):
                barrier.wait()
                s.sendall(req)
                st, _, _, _, buf = read_response(s, buf)
                got.append(st)
            s.close()
            with lock:
                statuses.extend(got)
        except Exception as e:  # noqa: BLE001 - reported below
            with lock:
                errors.append(repr(e))
            barrier.abort()

    threads = [threading.Thread(target=client) for _ in range(N)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(scaled(60))
    assert not errors, errors[:5]
    assert statuses == [200] * (N * ROUNDS)
    opened = srv.connections - before
    print("%d requests, %d new backend connections" % (N * ROUNDS, opened))
    # Every round needs N at once; the first opens them (the one from the
    # probe request may serve as one), later rounds reuse them. A fixed pool
    # of 64 opened N + (ROUNDS - 1) * (N - 64) = 544 here.
    assert opened <= N + N // 10, opened
    assert opened * 4 < N * ROUNDS

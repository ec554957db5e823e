# SPDX-License-Identifier: Apache-2.0
"""Process limits the daemon sets for itself."""

import errno
import os
import resource
import socket
import ssl
import subprocess
import threading
import time
import urllib.request

import pytest

from conftest import GATEWAYD, Deadline, needs_gatewayd, scaled

pytestmark = needs_gatewayd


def _nofile(pid):
    for line in open("/proc/%d/limits" % pid):
        if line.startswith("Max open files"):
            f = line.split()
            return int(f[3]), int(f[4])
    raise AssertionError("no open-files line")


def test_soft_fd_limit_raised_to_hard(env):
    """Started with a soft limit of 1024 (what zinit and shells leave), the
    daemon serves connections with the hard limit instead."""

    def limits():
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 4096))

    env.write_config()
    argv = env.daemon.argv()
    p = subprocess.Popen(argv, preexec_fn=limits, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True)
    try:
        deadline = Deadline(10, "the fd limit raised")
        while _nofile(p.pid) != (4096, 4096):
            assert p.poll() is None, p.stderr.read()
            deadline.check("limits %r" % (_nofile(p.pid),))
            time.sleep(0.05)
    finally:
        p.terminate()
        p.wait(10)
    assert "Open-file limit raised to 4096" in p.stderr.read()


# ---------------------------------------------------------------------------
# Issue 10: file-descriptor exhaustion must not livelock the daemon.

FLOOD_LIMIT = 1024  # the daemon's RLIMIT_NOFILE (soft = hard) in the flood test
FLOOD_PER_PORT = 1500  # idle connections opened to each of :80 and :443
CPU_WINDOW_S = 2.0


def _nfds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def _cpu_seconds(pid):
    """utime + stime of the whole process (all threads), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state): utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _flood(port, n):
    """@n non-blocking connects to 127.0.0.1:@port that never send a byte."""
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        err = s.connect_ex(("127.0.0.1", port))
        assert err in (0, errno.EINPROGRESS), os.strerror(err)
        socks.append(s)
    return socks


def _http_status(port, host, timeout=1.0):
    """One plain HTTP/1.1 request on a new connection; the status code."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(b"GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % host.encode())
        head = s.recv(4096)
    return int(head.split(b" ", 2)[1])


def _https_status(port, sni, host, timeout=1.0):
    """A TLS handshake with @sni and one request for @host; the status code."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        raw.settimeout(timeout)
        with ctx.wrap_socket(raw, server_hostname=sni) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % host.encode())
            head = s.recv(4096)
    return int(head.split(b" ", 2)[1])


def _metrics(port, timeout=5.0):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=timeout) as r:
        return r.status, r.read().decode()


@pytest.mark.timeout_s(90)
def test_issue_10_fd_exhaustion_does_not_livelock(env):
    """Run with a low open-file limit and flood :80 and :443 with more idle
    connections than the limit: the proxy stops at its share, so a deploy
    over the bus (state file and certificate written) and the metrics
    endpoint still work, the daemon does not spin, and once the flood is
    gone new clients are served again at once."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * FLOOD_PER_PORT + 256
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip("the test needs %d fds of its own (hard limit %d)" % (need, hard))
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))
    flood = []
    try:
        env.write_config({"proxy": {"workers": "2"}})
        env.daemon.start(wrapper=["prlimit", "--nofile=%d:%d" % (FLOOD_LIMIT, FLOOD_LIMIT), "--"])
        env.daemon.wait_log(r"Proxy serving", timeout=10)
        pid = env.daemon.proc.pid
        fqdn = env.deploy_name("37-1-alpha", "alpha")
        assert _http_status(env.http_port, fqdn) == 308

        flood = _flood(env.http_port, FLOOD_PER_PORT) + _flood(env.https_port, FLOOD_PER_PORT)
        # The daemon takes what it will take: wait until its fd count holds still.
        dl = Deadline(20, "the daemon's fd count to settle")
        last, still_since = -1, time.monotonic()
        while time.monotonic() - still_since < 1.0:
            n = _nfds(pid)
            if n != last:
                last, still_since = n, time.monotonic()
            dl.check("(%d fds)" % n)
            time.sleep(0.1)
        # It kept a reserve for itself instead of eating every descriptor.
        assert last <= FLOOD_LIMIT - 100, "the daemon holds %d of %d fds" % (last, FLOOD_LIMIT)

        # No spinning while the flood holds the connection slots.
        cpu0 = _cpu_seconds(pid)
        time.sleep(CPU_WINDOW_S)
        cpu = _cpu_seconds(pid) - cpu0
        assert cpu < 0.2 * CPU_WINDOW_S, "the daemon used %.2fs of CPU in %.1fs" % (cpu, CPU_WINDOW_S)

        # The bus, the state directory and the metrics endpoint still work.
        env.deploy_name("37-2-beta", "beta")
        assert (env.daemon.root / "workloads" / "wl-37-2-beta.json").is_file()
        status, text = _metrics(env.metrics_port)
        assert status == 200 and "gatewayd_connections_active" in text
        assert "Too many open files" not in env.daemon.log_text()

        # The flood leaves: new clients are served within seconds.
        for s in flood:
            s.close()
        flood = []
        dl = Deadline(5, "a new client served on :80 and :443")
        while True:
            try:
                if (_http_status(env.http_port, fqdn) == 308 and
                        _https_status(env.https_port, fqdn, "elsewhere.example") == 421):
                    break
            except (OSError, ValueError, IndexError):
                pass
            dl.check()
            time.sleep(0.05)
    finally:
        for s in flood:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _limits(pid):
    for line in open("/proc/%d/limits" % pid):
        if line.startswith("Max open files"):
            f = line.split()
            return int(f[3]), int(f[4])
    raise AssertionError("no open-files line")


def _wait_fds_settled(pid, what):
    dl = Deadline(20, what)
    last, still_since = -1, time.monotonic()
    while time.monotonic() - still_since < 0.5:
        n = _nfds(pid)
        if n != last:
            last, still_since = n, time.monotonic()
        dl.check("(%d fds)" % n)
        time.sleep(0.05)


@pytest.mark.timeout_s(60)
def test_issue_10_emfile_pauses_every_listener(env):
    """With no descriptor left at all (the soft limit lowered on the running
    daemon), clients of :80, :443 and /metrics wait in the kernel's queue:
    the listeners pause instead of spinning (or accepting and closing them,
    as libuv's spare-descriptor trick does), and all three are answered once
    descriptors are available again."""
    env.write_config({"proxy": {"workers": "2"}})
    env.daemon.start()
    env.daemon.wait_log(r"Proxy serving", timeout=10)
    pid = env.daemon.proc.pid
    fqdn = env.deploy_name("37-1-alpha", "alpha")
    assert _http_status(env.http_port, fqdn) == 308
    _wait_fds_settled(pid, "the daemon's fd count to settle")
    soft, hard = _limits(pid)
    used = {int(fd) for fd in os.listdir("/proc/%d/fd" % pid)}
    lowest_free = min(set(range(len(used) + 1)) - used)
    results = {}

    def client(name, fn):
        try:
            results[name] = fn()
        except Exception as e:  # noqa: BLE001 - reported by the assert below
            results[name] = repr(e)

    subprocess.run(["prlimit", "--pid", str(pid), "--nofile=%d:%d" % (lowest_free, hard)], check=True)
    try:
        threads = [threading.Thread(target=client, args=a) for a in (
            ("http", lambda: _http_status(env.http_port, fqdn, timeout=scaled(15))),
            ("https", lambda: _https_status(env.https_port, fqdn, "elsewhere.example", timeout=scaled(15))),
            ("metrics", lambda: _metrics(env.metrics_port, timeout=scaled(15))[0]))]
        for t in threads:
            t.start()
        time.sleep(0.5)  # the clients connect and wait in the queue
        cpu0 = _cpu_seconds(pid)
        time.sleep(CPU_WINDOW_S)
        cpu = _cpu_seconds(pid) - cpu0
        assert not results, "answered without descriptors: %r" % results
    finally:
        subprocess.run(["prlimit", "--pid", str(pid), "--nofile=%d:%d" % (soft, hard)], check=True)
    assert cpu < 0.2 * CPU_WINDOW_S, "the daemon used %.2fs of CPU in %.1fs" % (cpu, CPU_WINDOW_S)
    for t in threads:
        t.join(scaled(10))
    assert results == {"http": 308, "https": 421, "metrics": 200}, results


# ---------------------------------------------------------------------------
# Issue 11: client limits and the [limits] timeouts, on a grid node.
#
# gatewayd runs in the node namespace and manages the gateway namespace;
# the clients are real sockets in the node namespace, bound to addresses on
# the node's side of the public link (203.0.113.2 floods, 203.0.113.3 is
# the bystander that must still be served), talking to the gateway's
# public address. The backend is a small HTTP server in the node namespace
# on 203.0.113.1 (the gateway reaches it over the same link).

import ctypes  # noqa: E402
import json  # noqa: E402
import queue  # noqa: E402
import re  # noqa: E402
import select  # noqa: E402
import signal  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402

import node as gridnode  # noqa: E402

CLONE_NEWNET = 0x40000000
GW_ADDR = gridnode.PUBLIC_V4.split("/")[0]  # the gateway's public address
NODE_ADDR = gridnode.GATEWAY_V4  # the node's side: the backend listens here
FLOODER = "203.0.113.2"
BYSTANDER = "203.0.113.3"
L_HTTP, L_HTTPS = 8080, 8443  # inside the gateway namespace
WLID = "37-11-lim"
NAME = "lim"
HOST = NAME + ".gw1.example.net"


def in_netns(ns, fn, *args, timeout=60):
    """Run fn(*args) on a thread that entered network namespace @ns (Python
    3.11 has no os.setns); its result, or its exception raised here."""
    q = queue.Queue()

    def main():
        try:
            fd = os.open("/run/netns/" + ns, os.O_RDONLY)
            try:
                if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
            finally:
                os.close(fd)
            q.put((True, fn(*args)))
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller
            q.put((False, e))

    t = threading.Thread(target=main, daemon=True)
    t.start()
    ok, v = q.get(timeout=scaled(timeout))
    if not ok:
        raise v
    return v


class Backend(BaseHTTPRequestHandler):
    """GET /small, GET /big?n=N (N bytes), GET /sleep?s=S, POST (reads the
    body, answers its length); counts what it saw."""
    protocol_version = "HTTP/1.1"
    stats = None

    def _send(self, code, body):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def setup(self):
        super().setup()
        with self.lock:
            self.stats["open"] += 1

    def finish(self):
        try:
            super().finish()
        finally:
            with self.lock:
                self.stats["open"] -= 1

    def do_GET(self):
        if self.path.startswith("/ws"):
            # A WebSocket upgrade; then the tunnel is held open and idle.
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", "x")
            self.end_headers()
            self.wfile.flush()
            try:
                while self.rfile.read(1):
                    pass
            except OSError:
                pass
            self.close_connection = True
            return
        if self.path.startswith("/big"):
            n = int(self.path.split("n=")[1])
            self.send_response(200)
            self.send_header("Content-Length", str(n))
            self.end_headers()
            chunk = b"x" * 65536
            try:
                while n > 0:
                    k = min(n, len(chunk))
                    self.wfile.write(chunk[:k])
                    n -= k
            except OSError:
                self.stats["big_cut"] += 1
                self.close_connection = True
            return
        if self.path.startswith("/sleep"):
            with self.lock:
                self.stats["sleeping"] += 1
            time.sleep(float(self.path.split("s=")[1]))
        self._send(200, b"ok\n")

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        got = 0
        try:
            while got < n:
                b = self.rfile.read(min(65536, n - got))
                if not b:
                    break
                got += len(b)
        except OSError:
            pass
        if got < n:
            self.stats["post_cut"] += 1
            self.close_connection = True
            return
        self._send(200, b"%d\n" % got)

    def log_message(self, fmt, *a):
        pass


class BackendServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class LimitsNode:
    """One daemon on the grid node with [limits] @limits, the backend, and
    the two client addresses."""

    def __init__(self, env, grid, limits, proxy=None):
        self.env, self.grid = env, grid
        self.gw_name = grid.new_gateway_name()
        self.daemon = grid.make_daemon(env)
        cfg = grid.gateway_config(self.gw_name)
        cfg["proxy"] = {"address": "::", "https_port": str(L_HTTPS), "http_port": str(L_HTTP),
                        "http_plain": "yes", "workers": "2", **(proxy or {})}
        cfg["limits"] = {k: str(v) for k, v in limits.items()}
        self.srv = None
        try:
            env.start_daemon(cfg)
            grid.configure_uplinks(timeout=15)
            for a in (FLOODER, BYSTANDER):
                gridnode.ip("addr", "replace", a + "/24", "dev", grid.pub_host, ns=grid.node_ns)
            self.stats = {"big_cut": 0, "post_cut": 0, "open": 0, "sleeping": 0}
            handler = type("H", (Backend,), {"stats": self.stats, "lock": threading.Lock()})
            self.srv = in_netns(grid.node_ns, BackendServer, (NODE_ADDR, 0), handler)
            threading.Thread(target=self.srv.serve_forever, daemon=True).start()
            backend = "http://%s:%d" % (NODE_ADDR, self.srv.server_address[1])
            assert env.deploy_name(WLID, NAME, [backend]) == HOST
            dl = Deadline(20, "the gateway serving %s" % HOST)
            while True:
                try:
                    if self.get(BYSTANDER, "/small", timeout=2)[0] == 200:
                        break
                except OSError:
                    pass
                dl.check()
                time.sleep(0.1)
        except BaseException:
            self.close()
            raise

    def close(self):
        if self.srv:
            self.srv.shutdown()
            self.srv.server_close()
            self.srv = None
        self.env.daemon.stop()
        self.grid.remove_gateway(self.gw_name)

    # -- clients in the node namespace ----------------------------------
    def connect(self, src, port=L_HTTP, timeout=5, rcvbuf=None):
        def mk():
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            if rcvbuf:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            s.settimeout(timeout)
            s.bind((src, 0))
            s.connect((GW_ADDR, port))
            return s
        return in_netns(self.grid.node_ns, mk)

    def get(self, src, path, timeout=5, port=L_HTTP):
        """One request on a new connection from @src: (status, body)."""
        with self.connect(src, port, timeout) as s:
            s.sendall(b"GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                      % (path.encode(), HOST.encode()))
            return read_response(s)

    def metrics(self):
        def fetch():
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.env.metrics_port,
                                        timeout=5) as r:
                return r.read().decode()
        return in_netns(self.grid.node_ns, fetch)

    def plain(self, name):
        """A metric without labels."""
        m = re.search(r"(?m)^%s (\d+)$" % re.escape(name), self.metrics())
        return int(m.group(1)) if m else None

    def active(self):
        return self.plain("gatewayd_connections_active")

    def wait_metric(self, want, name, **labels):
        """Poll until @name{labels} == @want: a connection is counted once
        the worker freed it (after its linger), not when the client saw its
        end."""
        dl = Deadline(5, "%s%r == %r" % (name, labels, want))
        while (self.metric(name, **labels) or 0) != want:
            dl.check("(%r)" % self.metric(name, **labels))
            time.sleep(0.05)

    def wait_active(self, want):
        dl = Deadline(5, "%d connections active" % want)
        while self.active() != want:
            dl.check("(%r)" % self.active())
            time.sleep(0.05)

    def metric(self, name, **labels):
        want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
        for line in self.metrics().splitlines():
            m = re.match(r"^%s\{(.*)\} (\d+)$" % re.escape(name), line)
            if m and ",".join(sorted(m.group(1).split(","))) == want:
                return int(m.group(2))
        return None


def read_response(s):
    """(status, body) of one response read until EOF (Connection: close);
    (0, b"") when the connection ended without one."""
    data = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    except ConnectionResetError:
        pass
    if not data:
        return 0, b""
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def status_within(s, seconds):
    """The status of the response @s starts to receive within @seconds (0:
    EOF), None when nothing came by then."""
    s.settimeout(seconds)
    try:
        data = s.recv(4096)
    except socket.timeout:
        return None
    return int(data.split(b" ", 2)[1]) if data else 0


def closed_within(s, seconds):
    """Seconds until the server closed @s (EOF or reset; bytes are read
    and dropped), or None if it did not within @seconds."""
    t0 = time.monotonic()
    s.settimeout(0.2)
    while time.monotonic() - t0 < seconds:
        try:
            if not s.recv(65536):
                return time.monotonic() - t0
        except socket.timeout:
            continue
        except OSError:
            return time.monotonic() - t0
    return None


@pytest.fixture
def limits_node(env, grid):
    made = []

    def make(limits, proxy=None):
        n = LimitsNode(env, grid, limits, proxy)
        made.append(n)
        return n
    yield make
    for n in made:
        n.close()


@pytest.mark.timeout_s(90)
def test_issue_11_per_client_cap(limits_node):
    """One address floods :80 with idle connections: past its cap each new
    one is answered 429 at once and counted; another address is served all
    along, and so is :443 for the flooder (the cap is per port)."""
    n = limits_node({"connections_per_client": 20, "new_connections_per_second": 0})
    flood, refused = [], 0
    try:
        for _ in range(60):
            s = n.connect(FLOODER)
            flood.append(s)
        # Refused ones get their answer (or EOF); the admitted ones wait
        # for their first byte (handshake_timeout: 10 s).
        dl = Deadline(5, "40 refusals")
        waiting = list(flood)
        while refused < 40:
            dl.check("(%d)" % refused)
            for s in select.select(waiting, [], [], 0.1)[0]:
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                assert data.startswith(b"HTTP/1.1 429 ") or data == b"", data
                refused += 1
                waiting.remove(s)
        time.sleep(0.3)
        assert not select.select(waiting, [], [], 0)[0], "more than 40 refused"
        assert n.get(BYSTANDER, "/small")[0] == 200
        # The flooder is capped on :80 only.
        with n.connect(FLOODER, L_HTTPS) as t:
            import ssl as _ssl
            ctx = _ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = _ssl.CERT_NONE
            with ctx.wrap_socket(t, server_hostname=HOST) as ts:
                ts.sendall(b"GET /small HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                           % HOST.encode())
                assert read_response(ts)[0] == 200
        assert n.metric("gatewayd_limit_rejections_total", entrypoint="http",
                        reason="per_client") == 40
        assert n.metric("gatewayd_limit_rejections_total", entrypoint="https",
                        reason="per_client") == 0
    finally:
        for s in flood:
            s.close()
    # Once the flood is gone the address is served again.
    dl = Deadline(10, "the flooder served again")
    while n.get(FLOODER, "/small")[0] != 200:
        dl.check()
        time.sleep(0.1)


@pytest.mark.timeout_s(90)
def test_issue_11_new_connection_rate(limits_node):
    """New connections per second per address: a burst of one second's
    worth, then 429; another address is not affected."""
    n = limits_node({"new_connections_per_second": 10, "connections_per_client": 0})
    time.sleep(1.2)  # the readiness probe's credit comes back

    def burst():
        """30 connections at once from the flooder, in this one thread."""
        socks, t0 = [], time.monotonic()
        for _ in range(30):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((FLOODER, 0))
            s.connect((GW_ADDR, L_HTTP))
            socks.append(s)
        return socks, time.monotonic() - t0

    accepted = n.plain("gatewayd_connections_accepted_total")
    t0 = time.monotonic()
    socks, _ = in_netns(n.grid.node_ns, burst)
    try:
        # The tokens refill by the daemon's clock at accept: its span is
        # at most until all 30 were counted (a refusal is answered then).
        dl = Deadline(5, "30 connections accepted")
        while n.plain("gatewayd_connections_accepted_total") < accepted + 30:
            dl.check()
            time.sleep(0.02)
        took = time.monotonic() - t0
        refused, waiting = [], list(socks)
        while True:
            ready = select.select(waiting, [], [], 0.3)[0]
            if not ready:
                break
            for s in ready:
                s.settimeout(1)
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                assert data.startswith(b"HTTP/1.1 429 ") or data == b"", data
                refused.append(s)
                waiting.remove(s)
    finally:
        for s in socks:
            s.close()
    ok = 30 - len(refused)
    # A burst of one second's worth (10), plus what refills while it ran.
    assert 10 <= ok <= 10 + int(took * 10) + 1, (ok, took)
    assert n.get(BYSTANDER, "/small")[0] == 200
    assert n.metric("gatewayd_limit_rejections_total", entrypoint="http",
                    reason="rate") == len(refused)
    # The credit comes back at the rate: served again a little later.
    time.sleep(0.3)
    assert n.get(FLOODER, "/small")[0] == 200


@pytest.mark.timeout_s(90)
def test_issue_11_slowloris(limits_node):
    """A head sent a byte at a time is cut at request_head_timeout (408)
    while another client is served."""
    n = limits_node({"request_head_timeout": "1s"})
    s = n.connect(FLOODER)
    t0 = time.monotonic()
    head = b"GET /small HTTP/1.1\r\nHost: %s\r\nX-Pad: " % HOST.encode() + b"a" * 200
    status = None
    for i in range(len(head)):
        try:
            s.sendall(head[i:i + 1])
        except OSError:
            break
        if i % 5 == 4:
            assert n.get(BYSTANDER, "/small")[0] == 200
        status = status_within(s, 0.1)
        if status is not None:
            break
    elapsed = time.monotonic() - t0
    s.close()
    assert status == 408, status
    assert 0.9 <= elapsed < scaled(3), elapsed


@pytest.mark.timeout_s(90)
def test_issue_11_slow_post(limits_node):
    """A body that trickles (a byte every 200 ms: every byte is progress,
    so an idle timer would never fire) is cut once it is below
    body_min_rate for body_timeout: 408, and the backend connection is
    freed; a body at speed passes."""
    n = limits_node({"body_timeout": "1s", "body_min_rate": "1K"})
    with n.connect(BYSTANDER) as s:
        s.sendall(b"POST /up HTTP/1.1\r\nHost: %s\r\nContent-Length: 200000\r\n"
                  b"Connection: close\r\n\r\n" % HOST.encode() + b"y" * 200000)
        assert read_response(s) == (200, b"200000\n")
    s = n.connect(FLOODER)
    s.sendall(b"POST /up HTTP/1.1\r\nHost: %s\r\nContent-Length: 100000\r\n\r\n" % HOST.encode())
    t0 = time.monotonic()
    status = None
    while time.monotonic() - t0 < scaled(10):
        try:
            s.sendall(b"z")
        except OSError:
            break
        status = status_within(s, 0.2)
        if status is not None:
            break
        assert n.get(BYSTANDER, "/small")[0] == 200
    elapsed = time.monotonic() - t0
    s.close()
    assert status == 408, status
    assert elapsed < scaled(3), elapsed
    dl = Deadline(5, "the backend to see the body cut")
    while n.stats["post_cut"] < 1:
        dl.check()
        time.sleep(0.05)
    n.wait_metric(1, "gatewayd_connections_closed_total", reason="body-too-slow")


@pytest.mark.timeout_s(90)
def test_issue_11_slow_read(limits_node):
    """A client that asks for a large response and does not read it is cut
    once it takes less than send_min_rate for send_timeout; the backend's
    connection goes with it; another client is served meanwhile."""
    n = limits_node({"send_timeout": "1s", "send_min_rate": "64K"})
    s = n.connect(FLOODER, rcvbuf=4096)
    s.sendall(b"GET /big?n=500000000 HTTP/1.1\r\nHost: %s\r\n\r\n" % HOST.encode())
    t0 = time.monotonic()
    dl = Deadline(15, "the slow reader cut")
    while (n.metric("gatewayd_connections_closed_total", reason="send-too-slow") or 0) < 1:
        assert n.get(BYSTANDER, "/small")[0] == 200
        dl.check()
        time.sleep(0.2)
    elapsed = time.monotonic() - t0
    s.close()
    assert elapsed < scaled(8), elapsed
    dl = Deadline(5, "the backend's write to fail")
    while n.stats["big_cut"] < 1:
        dl.check()
        time.sleep(0.05)


@pytest.mark.timeout_s(90)
def test_issue_11_timeouts_configurable(limits_node):
    """handshake_timeout (:80 idle before its first byte, :443 without a
    ClientHello), keepalive_timeout, upstream_response_timeout and the head
    limits, each set short in [limits]; their defaults are far longer."""
    n = limits_node({"handshake_timeout": "1s", "keepalive_timeout": "3s",
                     "upstream_response_timeout": "1s", "max_head_size": "2K",
                     "max_headers": "10"})
    a, b = n.connect(FLOODER), n.connect(FLOODER, L_HTTPS)
    # Not the keep-alive deadline (3 s) for a :80 socket that never spoke.
    t = closed_within(a, scaled(5))
    assert t is not None and 0.8 <= t < 2.2, t
    t = closed_within(b, scaled(5))
    assert t is not None and t < 2.2, t
    a.close()
    b.close()
    # Keep-alive: served, then idle past keepalive_timeout.
    s = n.connect(BYSTANDER)
    s.sendall(b"GET /small HTTP/1.1\r\nHost: %s\r\n\r\n" % HOST.encode())
    assert s.recv(4096).startswith(b"HTTP/1.1 200 ")
    t = closed_within(s, scaled(8))
    s.close()
    assert t is not None and 2.7 <= t < scaled(5), t
    # The backend sleeps past upstream_response_timeout: 504 after it.
    t0 = time.monotonic()
    assert n.get(BYSTANDER, "/sleep?s=4", timeout=10)[0] == 504
    assert time.monotonic() - t0 < scaled(3)
    # Head limits: bytes and fields.
    assert n.get(BYSTANDER, "/small?" + "q" * 3000)[0] in (414, 431)
    with n.connect(BYSTANDER) as s:
        s.sendall(b"GET /small HTTP/1.1\r\nHost: %s\r\n" % HOST.encode() +
                  b"".join(b"X-H%d: v\r\n" % i for i in range(12)) + b"Connection: close\r\n\r\n")
        assert read_response(s)[0] == 431


@pytest.mark.timeout_s(90)
def test_issue_11_connect_timeout_and_total(limits_node):
    """upstream_connect_timeout against a backend address that nobody
    answers (no ARP reply): 502 after it; max_connections: the next
    connection past it is refused with 503 and counted as total."""
    n = limits_node({"upstream_connect_timeout": "1s", "max_connections": "4",
                     "connections_per_client": 0, "new_connections_per_second": 0})
    assert n.env.deploy_name("37-12-dead", "dead", ["http://203.0.113.99:8000"]) == \
        "dead.gw1.example.net"
    t0 = time.monotonic()
    with n.connect(BYSTANDER, timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: dead.gw1.example.net\r\nConnection: close\r\n\r\n")
        status = read_response(s)[0]
    assert status in (502, 503), status
    assert 0.8 <= time.monotonic() - t0 < scaled(3.5)
    n.wait_active(0)  # that connection's slot is free once the worker freed it
    held = [n.connect(FLOODER) for _ in range(4)]
    try:
        n.wait_active(4)
        with n.connect(BYSTANDER) as s:
            s.sendall(b"GET /small HTTP/1.1\r\nHost: %s\r\n\r\n" % HOST.encode())
            assert read_response(s)[0] == 503
        assert n.metric("gatewayd_limit_rejections_total", entrypoint="http", reason="total") == 1
    finally:
        for s in held:
            s.close()


@pytest.mark.timeout_s(120)
def test_issue_11_limits_reload(env, limits_node):
    """SIGHUP applies [limits] live (a new handshake_timeout reaches the
    idle connection already waiting); a bad value is refused as a whole and
    nothing changes; --check-config reports it."""
    n = limits_node({"handshake_timeout": "20s"})
    s = n.connect(FLOODER)
    cfg = dict(env.config)
    cfg["limits"] = {"handshake_timeout": "1s"}
    mark = n.daemon.mark()
    env.reload(cfg)
    n.daemon.wait_log(r"\[limits\] applied", timeout=10, since=mark)
    t = closed_within(s, scaled(5))
    s.close()
    assert t is not None and t < scaled(3), t
    # A bad file: refused, the running limits stay (1 s).
    bad = dict(cfg)
    bad["limits"] = {"handshake_timeout": "1s", "max_headers": "0", "drain_timeout": "soon"}
    mark = n.daemon.mark()
    env.reload(bad)
    n.daemon.wait_log(r"max_headers: 0 is out of range", timeout=10, since=mark)
    s = n.connect(FLOODER)
    t = closed_within(s, scaled(5))
    s.close()
    assert t is not None and t < scaled(3), t
    # A restart-only key: applied at the next start, the reload says so.
    mark = n.daemon.mark()
    env.reload(dict(cfg, limits={"handshake_timeout": "1s", "max_headers": "50"}))
    n.daemon.wait_log(r"take effect at the next start of the proxy", timeout=10, since=mark)
    env.daemon.write_config(env.make_config(bad))
    p = subprocess.run([str(GATEWAYD), "--check-config", "--config", str(env.daemon.config_path)],
                       capture_output=True, text=True)
    assert p.returncode == 1
    assert "[limits] max_headers: 0 is out of range (1 to 4096)" in p.stderr
    assert "[limits] drain_timeout: invalid duration 'soon'" in p.stderr


@pytest.mark.timeout_s(90)
def test_issue_11_tunnel_idle_and_pool_size(limits_node):
    """tunnel_idle_timeout closes a WebSocket tunnel with no byte either
    way; pool_size bounds the idle backend connections kept per backend
    (one worker here): three concurrent requests leave one pooled."""
    n = limits_node({"tunnel_idle_timeout": "1s", "pool_size": "1"}, proxy={"workers": "1"})
    with n.connect(BYSTANDER) as s:
        s.sendall(b"GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
                  % HOST.encode())
        assert s.recv(4096).startswith(b"HTTP/1.1 101 ")
        t = closed_within(s, scaled(6))
    assert t is not None and 0.8 <= t < scaled(3), t
    dl = Deadline(5, "the backend connections to settle")
    while n.stats["open"] > 1:  # the readiness probe's, if pooled
        dl.check("(%d open)" % n.stats["open"])
        time.sleep(0.05)
    results = []
    threads = [threading.Thread(target=lambda: results.append(n.get(BYSTANDER, "/sleep?s=0.5")[0]))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(scaled(10))
    assert results == [200, 200, 200], results
    dl = Deadline(5, "the pool to keep one backend connection")
    while n.stats["open"] != 1:
        dl.check("(%d open)" % n.stats["open"])
        time.sleep(0.05)
    time.sleep(0.5)
    assert n.stats["open"] == 1


@pytest.mark.timeout_s(90)
def test_issue_11_drain_timeout(limits_node):
    """SIGTERM with a request in flight whose backend takes longer than
    drain_timeout: the request is cut at the deadline and the daemon exits
    cleanly, well before the 30 s default."""
    n = limits_node({"drain_timeout": "1s"})
    s = n.connect(BYSTANDER, timeout=20)
    s.sendall(b"GET /sleep?s=15 HTTP/1.1\r\nHost: %s\r\n\r\n" % HOST.encode())
    dl = Deadline(5, "the request reached the backend")
    while n.stats["sleeping"] < 1:
        dl.check()
        time.sleep(0.02)
    t0 = time.monotonic()
    n.daemon.signal(signal.SIGTERM)
    assert n.daemon.wait_exit(10) == 0
    took = time.monotonic() - t0
    assert 0.8 <= took < scaled(5), took
    assert read_response(s)[0] in (0, 502, 503, 504)
    s.close()

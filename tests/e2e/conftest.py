# SPDX-License-Identifier: Apache-2.0
"""E2E harness for gatewayd: a private redis-server on a unix socket, fake zos
bus peers (api-gateway, provision, network), a fake DNS server and the daemon
itself, all per test, all killed by PID at teardown.

Readiness: redis by a PING loop with a deadline; gatewayd by sd_notify
READY=1 on a NOTIFY_SOCKET this harness owns. Timeouts: every test has one
(SIGALRM, default 30 s, ``@pytest.mark.timeout_s(N)`` to change it), scaled by
GW_TEST_TIMEOUT_MULTIPLIER like every Deadline.

Binaries: $GATEWAYD (default <repo>/build/daemon/gatewayd) and $GATEWAYCTL
(default <repo>/build/cli/gatewayctl); <repo> is derived from this file.
"""

import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import redis

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import fakes  # noqa: E402
import gobus  # noqa: E402

REPO = HERE.parent.parent
GATEWAYD = Path(os.environ.get("GATEWAYD") or REPO / "build" / "daemon" / "gatewayd")
GATEWAYCTL = Path(os.environ.get("GATEWAYCTL") or REPO / "build" / "cli" / "gatewayctl")
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"

MULT = float(os.environ.get("GW_TEST_TIMEOUT_MULTIPLIER") or "1")
DEFAULT_TEST_TIMEOUT = 30.0

needs_gatewayd = pytest.mark.skipif(
    not (GATEWAYD.is_file() and os.access(GATEWAYD, os.X_OK)),
    reason="gatewayd binary not found at %s (build it with meson/ninja, or set GATEWAYD)" % GATEWAYD,
)
needs_gatewayctl = pytest.mark.skipif(
    not (GATEWAYCTL.is_file() and os.access(GATEWAYCTL, os.X_OK)),
    reason="gatewayctl binary not found at %s (build it, or set GATEWAYCTL)" % GATEWAYCTL,
)

# The node used by default in tests.
DOMAIN = "gw1.example.net"
PUBLIC_IPV4 = "203.0.113.10"
PUBLIC_IPV6 = "2001:db8:1::10"
GATEWAY_QUEUE = "gateway.manager@0.0.1"
STATUS_QUEUE = "gateway.zbus@1.0"


# ---------------------------------------------------------------------------
# Deadlines and per-test timeouts


class Deadline:
    """@seconds from now, times GW_TEST_TIMEOUT_MULTIPLIER."""

    def __init__(self, seconds, what="operation"):
        self.seconds = seconds * MULT
        self.what = what
        self.end = time.monotonic() + self.seconds

    def left(self):
        return max(0.0, self.end - time.monotonic())

    @property
    def expired(self):
        return time.monotonic() >= self.end

    def check(self, detail=""):
        if self.expired:
            raise AssertionError("timed out after %.1fs waiting for %s %s" % (self.seconds, self.what, detail))


def scaled(seconds):
    return seconds * MULT


def wait_refused(port, what="the port to be closed", seconds=5, host="127.0.0.1"):
    """Poll until a connection to @port is refused. A listener is closed
    by each proxy worker when it picks the change up (its own copy of the
    socket), so the port still accepts for a moment after the daemon logged
    the change."""
    dl = Deadline(seconds, "%s (%s:%d)" % (what, host, port))
    while True:
        try:
            socket.create_connection((host, port), timeout=scaled(1)).close()
        except ConnectionRefusedError:
            return
        dl.check()
        time.sleep(0.02)


class TestTimeout(BaseException):
    """Raised by SIGALRM; BaseException so that helper code cannot swallow it."""


def pytest_configure(config):
    config.addinivalue_line("markers", "timeout_s(seconds): per-test timeout (scaled by GW_TEST_TIMEOUT_MULTIPLIER)")


@pytest.fixture(autouse=True)
def _per_test_timeout(request):
    m = request.node.get_closest_marker("timeout_s")
    seconds = scaled(m.args[0] if m else DEFAULT_TEST_TIMEOUT)

    def on_alarm(signum, frame):
        raise TestTimeout("test exceeded its %.0fs timeout" % seconds)

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture
def sockdir():
    """A short directory for unix sockets (sun_path is limited to 108 bytes,
    which pytest's tmp_path can exceed)."""
    d = tempfile.mkdtemp(prefix="gwe2e-", dir="/tmp")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------------------
# Processes


SANITIZER_REPORT = re.compile(r"ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error: ")


def _kill_proc(proc, sig=signal.SIGKILL, timeout=10):
    """Kill one process we started, by its PID, and reap it."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, sig)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=scaled(timeout))
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


class RedisServer:
    def __init__(self, sockdir, logdir):
        self.sock = os.path.join(sockdir, "redis.sock")
        self.url = "unix://" + self.sock
        self.dir = sockdir
        self.logpath = os.path.join(logdir, "redis.log")
        self.proc = None

    def start(self, timeout=10):
        log = open(self.logpath, "ab")
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", "0", "--unixsocket", self.sock, "--unixsocketperm", "700",
             "--save", "", "--appendonly", "no", "--dir", self.dir],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        dl = Deadline(timeout, "redis-server to answer PING")
        while True:
            if self.proc.poll() is not None:
                raise AssertionError("redis-server exited (%s): %s" % (self.proc.returncode, self.log()))
            try:
                c = redis.Redis(unix_socket_path=self.sock, socket_timeout=1)
                if c.ping():
                    c.close()
                    return self
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                pass
            dl.check(self.log())
            time.sleep(0.01)

    def kill(self):
        _kill_proc(self.proc)
        self.proc = None

    def restart(self):
        self.kill()
        try:
            os.unlink(self.sock)
        except FileNotFoundError:
            pass
        return self.start()

    def client(self):
        return redis.Redis(unix_socket_path=self.sock)

    def log(self):
        try:
            return Path(self.logpath).read_text(errors="replace")[-4000:]
        except OSError:
            return ""


DEFAULT_CONFIG = {
    "gateway": {
        "enabled": "yes",
        "domain": DOMAIN,
        "public_config": "file",
        "public_ipv4": PUBLIC_IPV4 + "/24",
        "gateway_ipv4": "203.0.113.1",
        "public_ipv6": PUBLIC_IPV6 + "/64",
        "gateway_ipv6": "2001:db8:1::1",
    },
    "names": {"validation": "bus", "revalidate_interval": "1h"},
    # resolver filled with the fake DNS; no _acme-challenge responder and no
    # ACME unless a test asks (tests/e2e/test_acme.py): the defaults would
    # listen on :53 and order from Let's Encrypt.
    "dns": {"resolver": None, "timeout": "2s", "listen_port": "0"},
    "acme": {"enabled": "no"},
    "bus": {"call_timeout": "5s"},
    "log": {"level": "debug"},
}


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


_handed_out = set()  # never the same port twice in one run


def free_port(host="127.0.0.1"):
    """A TCP port nothing uses now, below the kernel's ephemeral range: a
    port the kernel picks itself (bind to 0) can be handed out again at
    once as the local port of some outgoing connection, which then holds
    it when the daemon binds (CI saw the metrics listener lose its port
    that way). Ports below the range are only ever taken on purpose."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    lo, _ = _ephemeral_range()
    first, last = (10000, lo - 1) if lo > 12000 else (lo, 65535)
    for _ in range(200):
        port = random.randint(first, last)
        if port in _handed_out:
            continue
        with socket.socket(fam, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def merge_config(base, overrides):
    """Deep-merge @overrides ({section: {key: value|None}}) into a copy of
    @base; None deletes a key, a section value of None deletes the section."""
    out = {s: dict(kv) for s, kv in base.items()}
    for s, kv in (overrides or {}).items():
        if kv is None:
            out.pop(s, None)
            continue
        sec = out.setdefault(s, {})
        for k, v in kv.items():
            if v is None:
                sec.pop(k, None)
            else:
                sec[k] = v
    return out


def render_config(sections):
    lines = []
    for s, kv in sections.items():
        lines.append("[%s]" % s)
        for k, v in kv.items():
            if v is not None:
                lines.append("%s = %s" % (k, v))
        lines.append("")
    return "\n".join(lines)


class Gatewayd:
    """One gatewayd process at a time, restartable on the same root/config."""

    def __init__(self, workdir, sockdir, redis_server):
        self.workdir = Path(workdir)
        self.root = self.workdir / "state"
        self.root.mkdir(parents=True, exist_ok=True)
        self.config_path = self.workdir / "gatewayd.conf"
        self.sockdir = sockdir
        self.redis = redis_server
        self.proc = None
        self.workers = 1
        self.lines = []  # all stderr lines, over restarts
        self.notify = []  # all sd_notify datagrams (decoded), over restarts
        self.cond = threading.Condition()
        self._threads = []
        self._stderr_thread = None
        self._nsock = None
        self._nsock_path = os.path.join(sockdir, "notify.sock")
        self._generation = 0
        self._logf = open(self.workdir / "gatewayd.log", "a", errors="replace")

    # -- configuration --------------------------------------------------------
    def write_config(self, sections_or_text):
        text = sections_or_text if isinstance(sections_or_text, str) else render_config(sections_or_text)
        self.config_path.write_text(text)
        return self.config_path

    # -- lifecycle ---------------------------------------------------------------
    def argv(self, workers=None, extra=()):
        return [str(GATEWAYD), "--broker", self.redis.url, "--root", str(self.root),
                "--workers", str(workers or self.workers), "--config", str(self.config_path),
                "--log-level", "debug", *extra]

    def _open_notify(self):
        if self._nsock is not None:
            return
        try:
            os.unlink(self._nsock_path)
        except FileNotFoundError:
            pass
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        s.bind(self._nsock_path)
        s.settimeout(0.2)
        self._nsock = s
        t = threading.Thread(target=self._notify_reader, args=(s,), daemon=True)
        t.start()
        self._threads.append(t)

    def _notify_reader(self, s):
        while True:
            try:
                data = s.recv(65536)
            except socket.timeout:
                if self._nsock is not s:
                    return
                continue
            except OSError:
                return
            msg = data.decode(errors="replace")
            with self.cond:
                self.notify.append((self._generation, msg))
                self.cond.notify_all()

    def _stderr_reader(self, proc, gen):
        for raw in proc.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            self._logf.write("[%d] %s\n" % (gen, line))
            self._logf.flush()
            with self.cond:
                self.lines.append((gen, line))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def spawn(self, workers=None, extra=(), env=None, wrapper=()):
        """Start the process without waiting for readiness. @wrapper is a
        command that execs the daemon's argv (e.g. prlimit ... --): the PID
        stays the daemon's."""
        assert self.proc is None or self.proc.poll() is not None, "gatewayd already running"
        self._open_notify()
        self._generation += 1
        e = dict(os.environ)
        for k in ("JOURNAL_STREAM", "LISTEN_FDS", "LISTEN_PID", "WATCHDOG_USEC", "INVOCATION_ID"):
            e.pop(k, None)
        e["NOTIFY_SOCKET"] = self._nsock_path
        if env:
            e.update(env)
        if workers:
            self.workers = workers
        self.proc = subprocess.Popen([*wrapper, *self.argv(workers, extra)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=e)
        t = threading.Thread(target=self._stderr_reader, args=(self.proc, self._generation), daemon=True)
        t.start()
        self._stderr_thread = t
        return self.proc

    def start(self, workers=None, extra=(), timeout=15, wrapper=()):
        self.spawn(workers, extra, wrapper=wrapper)
        self.wait_notify("READY=1", timeout=timeout)
        return self

    def wait_notify(self, field, timeout=15, since=0):
        """Wait for a datagram of the current process containing @field (a
        line like READY=1). Returns the datagram. Fails early if it exits."""
        dl = Deadline(timeout, "sd_notify %s from gatewayd" % field)
        gen = self._generation
        with self.cond:
            while True:
                for i, (g, msg) in enumerate(self.notify):
                    if g == gen and i >= since and field in msg.split("\n"):
                        self.last_notify_index = i
                        return msg
                if self.proc.poll() is not None:
                    raise AssertionError("gatewayd exited with %s before %s; log:\n%s"
                                         % (self.proc.returncode, field, self.log_tail()))
                if dl.expired:
                    raise AssertionError("no %s within %.1fs; notify=%r; log:\n%s"
                                         % (field, dl.seconds, self.notify, self.log_tail()))
                self.cond.wait(min(0.2, dl.left()))

    def wait_exit(self, timeout=10):
        """Wait for the process to exit; returns its exit status with all of
        its stderr read."""
        try:
            rc = self.proc.wait(timeout=scaled(timeout))
        except subprocess.TimeoutExpired:
            raise AssertionError("gatewayd did not exit within %ss; log:\n%s" % (timeout, self.log_tail()))
        self._join_stderr()
        return rc

    def kill(self, sig=signal.SIGKILL):
        _kill_proc(self.proc, sig)
        self._join_stderr()

    def stop(self):
        """SIGTERM and wait (graceful)."""
        self.kill(signal.SIGTERM)

    def restart(self, sig=signal.SIGKILL, **kw):
        self.kill(sig)
        return self.start(**kw)

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _join_stderr(self):
        # The reader ends on EOF once the process (and its children) are gone.
        if self._stderr_thread is not None:
            self._stderr_thread.join(scaled(5))

    def close(self):
        # Graceful: a sanitizer build reports leaks only at a normal exit.
        self.kill(signal.SIGTERM)
        s, self._nsock = self._nsock, None
        if s:
            s.close()
        for t in self._threads:
            t.join(2)
        self._join_stderr()
        self._logf.close()

    # -- logs ----------------------------------------------------------------------
    def log_tail(self, n=80):
        with self.cond:
            return "\n".join(l for _, l in self.lines[-n:])

    def log_text(self, all_generations=False):
        with self.cond:
            return "\n".join(l for g, l in self.lines if all_generations or g == self._generation)

    def wait_log(self, pattern, timeout=10, since=0):
        """Wait for a stderr line (of any run) matching regex @pattern, at
        index >= @since (use mark()); returns the line."""
        rx = re.compile(pattern)
        dl = Deadline(timeout, "log line /%s/" % pattern)
        with self.cond:
            while True:
                for _, l in self.lines[since:]:
                    if rx.search(l):
                        return l
                if dl.expired:
                    raise AssertionError("no log line matching /%s/ within %.1fs; log:\n%s"
                                         % (pattern, dl.seconds, self.log_tail()))
                if self.proc is not None and self.proc.poll() is not None and not self._stderr_open():
                    raise AssertionError("gatewayd exited (%s) before logging /%s/; log:\n%s"
                                         % (self.proc.returncode, pattern, self.log_tail()))
                self.cond.wait(min(0.2, dl.left()))

    def _stderr_open(self):
        return self._stderr_thread is not None and self._stderr_thread.is_alive()

    def mark(self):
        with self.cond:
            return len(self.lines)

    def notify_mark(self):
        with self.cond:
            return len(self.notify)


class Harness:
    """Everything one test needs. ``start_daemon`` is separate so that tests
    can choose the configuration and the moment."""

    def __init__(self, tmp_path, sockdir):
        self.tmp = Path(tmp_path)
        self.sockdir = sockdir
        self.redis = RedisServer(sockdir, str(self.tmp)).start()
        self.bus = gobus.GoBus(self.redis.sock)
        self.api = fakes.ApiGatewayFake(self.redis.sock).start()
        self.prov = fakes.ProvisionFake(self.redis.sock).start()
        self.net = fakes.NetworkFake(self.redis.sock).start()
        self.net.set_config(ipv4=PUBLIC_IPV4 + "/24", gw4="203.0.113.1", ipv6=PUBLIC_IPV6 + "/64",
                            gw6="2001:db8:1::1", domain=DOMAIN)
        self.dns = fakes.FakeDns().start()
        self.daemon = Gatewayd(self.tmp / "gatewayd", sockdir, self.redis)
        self.config = None
        self.https_port = free_port()
        self.http_port = free_port()
        self.metrics_port = free_port()

    def make_config(self, overrides=None):
        # The proxy and the metrics endpoint on loopback ports of this test's
        # own (never :80/:443/:8082 of the machine).
        cfg = merge_config(DEFAULT_CONFIG, {
            "dns": {"resolver": self.dns.address},
            "proxy": {"address": "127.0.0.1", "https_port": str(self.https_port),
                      "http_port": str(self.http_port)},
            "metrics": {"listen": "127.0.0.1:%d" % self.metrics_port},
        })
        return merge_config(cfg, overrides)

    def write_config(self, overrides=None):
        self.config = self.make_config(overrides)
        return self.daemon.write_config(self.config)

    def start_daemon(self, overrides=None, workers=1, timeout=15):
        self.write_config(overrides)
        return self.daemon.start(workers=workers, timeout=timeout)

    def reload(self, overrides=None, text=None, timeout=10):
        """Rewrite the config (from @overrides, or verbatim @text), SIGHUP, and
        wait for the daemon's sd_notify RELOADING=1 then READY=1 (sent both
        when the new file is applied and when it is refused)."""
        if text is not None:
            self.daemon.write_config(text)
        else:
            self.write_config(overrides)
        mark = self.daemon.notify_mark()
        self.daemon.signal(signal.SIGHUP)
        self.daemon.wait_notify("RELOADING=1", timeout=timeout, since=mark)
        self.daemon.wait_notify("READY=1", timeout=timeout, since=self.daemon.last_notify_index + 1)

    # -- convenience --------------------------------------------------------------
    def reserve(self, name, twin=37, state="created"):
        return self.api.reserve(name, twin, state)

    def deploy_name(self, wlid, name, backends=("http://[300:1:2::3]:9000",), twin=None, **kw):
        """Reserve (unless already) and SetNamedProxy; asserts success; returns fqdn."""
        if name not in self.api.names:
            self.reserve(name, twin if twin is not None else int(wlid.split("-")[0]))
        r = self.bus.set_named_proxy(wlid, name, list(backends), **kw)
        assert r.ok, "SetNamedProxy(%s, %s) failed: %r" % (wlid, name, r)
        return r.data

    def deploy_fqdn(self, wlid, fqdn, backends=("http://[300:1:2::3]:9000",), ips=(PUBLIC_IPV4,), **kw):
        self.dns.add(fqdn, *ips)
        r = self.bus.set_fqdn_proxy(wlid, fqdn, list(backends), **kw)
        assert r.ok, "SetFQDNProxy(%s, %s) failed: %r" % (wlid, fqdn, r)
        return r

    def close(self):
        errors = []
        for peer in (self.api, self.prov, self.net):
            peer.request_stop()
        for step in (self.daemon.close, self.api.stop, self.prov.stop, self.net.stop, self.dns.stop,
                     self.bus.close, self.redis.kill):
            try:
                step()
            except Exception as e:  # noqa: BLE001 - keep tearing down
                errors.append(e)
        if errors:
            raise errors[0]


@pytest.fixture
def env(tmp_path, sockdir):
    """Redis + fakes + DNS, daemon not started."""
    h = Harness(tmp_path, sockdir)
    try:
        yield h
    finally:
        h.close()
        log = h.daemon.log_text(all_generations=True)
        if log:
            print("---- gatewayd stderr ----\n" + log[-20000:])
        # ASan/UBSan/LSan reports from any daemon run fail the test.
        reports = [l for l in log.splitlines() if SANITIZER_REPORT.search(l)]
        assert not reports, "sanitizer report in gatewayd's stderr: %s" % reports[:5]
        for peer in (h.api, h.prov, h.net):
            assert not peer.errors, "fake %s errors: %r" % (peer.queue, peer.errors)


@pytest.fixture
def node(env):
    """env + gatewayd started with the default configuration."""
    env.start_daemon()
    return env


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """A grid node (node.py's GridNode: namespaces, Yggdrasil, the workload's
    HTTP servers), up for one test module and down at its end. Module scope
    in a conftest still means one node per module: pytest tears it down when
    the module's last test has run, and the next module that asks builds its
    own, so what one module does to its node never reaches another. Skips
    where the machine cannot build one (node.have_prerequisites())."""
    import node as gridnode  # here, not at the top: node.py imports this file

    why = gridnode.have_prerequisites()
    if why:
        pytest.skip(why)
    g = gridnode.GridNode(tmp_path_factory.mktemp("gridnode"))
    try:
        g.up()
        yield g
    finally:
        g.down()

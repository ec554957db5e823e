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

from conftest import Deadline, needs_gatewayd, scaled

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

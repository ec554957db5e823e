# SPDX-License-Identifier: Apache-2.0
"""Health reports must be true (issue 10, item 3): GET /healthz on the
metrics listener, the health gauges, the bus Info "Health" map and
`gatewayctl status` agree with what the daemon really does.

These run on loopback (no managed namespace); the namespace's own checks
(not ready, a port held inside it) are in test_health_grid.py."""

import json
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request

from conftest import GATEWAYCTL, Deadline, free_port, needs_gatewayctl, needs_gatewayd, scaled, wait_refused

pytestmark = [needs_gatewayd, needs_gatewayctl]


def get(env, path):
    """(status, body) of GET @path on the metrics listener."""
    url = "http://127.0.0.1:%d%s" % (env.metrics_port, path)
    try:
        with urllib.request.urlopen(url, timeout=scaled(5)) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def wait_healthz(env, status, pattern=None, timeout=10):
    """Poll /healthz until it answers @status (and its body matches regex
    @pattern); returns the body."""
    dl = Deadline(timeout, "/healthz %d /%s/" % (status, pattern or ""))
    while True:
        got = get(env, "/healthz")
        if got[0] == status and (pattern is None or re.search(pattern, got[1], re.M)):
            return got[1]
        if dl.expired:
            raise AssertionError("/healthz is %r, wanted %d /%s/; log:\n%s"
                                 % (got, status, pattern, env.daemon.log_tail(30)))
        time.sleep(min(0.05, dl.left()))


def metrics(env):
    status, text = get(env, "/metrics")
    assert status == 200, (status, text)
    return text


def series(text, name):
    """{labels text: value} of every sample of metric @name."""
    out = {}
    for m in re.finditer(r"^%s(\{[^}]*\})? (\S+)$" % re.escape(name), text, re.M):
        out[m.group(1) or ""] = float(m.group(2))
    return out


def ctl(env, *args):
    return subprocess.run([str(GATEWAYCTL), "--broker", env.redis.url] + list(args), capture_output=True,
                          text=True, timeout=scaled(15), stdin=subprocess.DEVNULL)


def health(env):
    return env.bus.info().data["Health"]


def test_healthy_node(env):
    env.start_daemon()
    assert wait_healthz(env, 200) == "ok\n"
    m = metrics(env)
    assert series(m, "gatewayd_healthy") == {"": 1}
    assert series(m, "gatewayd_bus_connected") == {"": 1}
    assert series(m, "gatewayd_listener_up") == {'{listener="https"}': 1, '{listener="http"}': 1,
                                                  '{listener="metrics"}': 1}
    assert series(m, "gatewayd_namespace_ready") == {}  # not managed: no series
    assert series(m, "gatewayd_proxy_serving") == {"": 1}
    assert series(m, "gatewayd_reload_success") == {"": 1}
    assert series(m, "gatewayd_reload_timestamp_seconds") == {"": 0}

    h = health(env)
    assert h["Healthy"] is True and h["Problems"] == []
    assert h["Namespace"]["Managed"] is False
    by = {l["Name"]: l for l in h["Listeners"]}
    assert set(by) == {"https", "http", "metrics", "dns"}
    # [dns] listen_port = 0 in the tests' configuration: not configured.
    assert by["dns"]["Configured"] is False and by["dns"]["Bound"] is False
    assert h["CorruptStateFiles"] == 0 and h["CorruptWorkloads"] == []
    assert by["https"]["Configured"] and by["https"]["Bound"] and by["https"]["Error"] == ""
    assert by["https"]["Address"] == "127.0.0.1:%d" % env.https_port
    assert by["metrics"]["Address"] == "127.0.0.1:%d" % env.metrics_port
    assert by["https"]["Since"] is not None
    assert h["Bus"]["Connected"] is True and h["Bus"]["Broker"] == env.redis.url
    assert h["Reload"] == {"Result": "none", "Error": "", "Time": None}

    # gatewayctl shows the same, human and --json.
    p = ctl(env, "status")
    assert p.returncode == 0, p
    lines = p.stdout.splitlines()
    assert "health: ok" in lines, p.stdout
    assert "namespace: not managed" in lines, p.stdout
    assert any(re.match(r"listener https: bound since \S+Z \(127\.0\.0\.1:%d\)$" % env.https_port, l)
               for l in lines), p.stdout
    assert any(l.startswith("bus connection: connected since ") for l in lines), p.stdout
    assert "last reload: none" in lines, p.stdout
    d = json.loads(ctl(env, "--json", "status").stdout)
    assert d["info"]["Health"]["Healthy"] is True
    assert {l["Name"]: l["Bound"] for l in d["info"]["Health"]["Listeners"]} == \
        {"https": True, "http": True, "metrics": True, "dns": False}


def test_redis_stopped(env):
    env.start_daemon()
    wait_healthz(env, 200)
    env.redis.kill()
    body = wait_healthz(env, 503, r"^bus ")
    assert re.search(r"^bus %s: not connected: " % re.escape(env.redis.url), body, re.M), body
    assert body.count("\n") == 1, body  # the only problem
    assert series(metrics(env), "gatewayd_bus_connected") == {"": 0}
    assert series(metrics(env), "gatewayd_healthy") == {"": 0}
    env.redis.start()
    assert wait_healthz(env, 200, timeout=15) == "ok\n"
    h = health(env)
    assert h["Bus"]["Connected"] is True and h["Bus"]["LastError"] != "", h["Bus"]


def test_listener_cannot_bind(env):
    # Another socket holds the https port (no SO_REUSEPORT: the daemon's bind fails).
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        holder.bind(("127.0.0.1", env.https_port))
        holder.listen(1)
        env.start_daemon()
        body = wait_healthz(env, 503, r"^https .*Address already in use")
        want = r"^https 127\.0\.0\.1:%d: not bound: bind 127\.0\.0\.1:%d .*Address already in use$" % (
            env.https_port, env.https_port)
        assert re.search(want, body, re.M), body
        # http opened fine but the engine takes both or none: not bound either.
        assert re.search(r"^http 127\.0\.0\.1:%d: not bound: not opened \(both listeners are opened together\): "
                         r".*Address already in use$"
                         % env.http_port, body, re.M), body
        m = metrics(env)
        assert series(m, "gatewayd_listener_up") == {'{listener="https"}': 0, '{listener="http"}': 0,
                                                      '{listener="metrics"}': 1}
        assert series(m, "gatewayd_proxy_serving") == {"": 0}
        by = {l["Name"]: l for l in health(env)["Listeners"]}
        assert by["https"]["Bound"] is False and "Address already in use" in by["https"]["Error"]
        p = ctl(env, "status")
        assert "health: failing" in p.stdout.splitlines(), p.stdout
        assert re.search(r"^listener https: not bound since \S+: bind .*Address already in use \(127",
                         p.stdout, re.M), p.stdout
    finally:
        holder.close()
    # The daemon retries; once the port is free it serves, and says so.
    assert wait_healthz(env, 200, timeout=40) == "ok\n"
    by = {l["Name"]: l for l in health(env)["Listeners"]}
    assert by["https"]["Bound"] and by["https"]["Error"] == ""
    assert "Address already in use" in by["https"]["LastError"]
    assert series(metrics(env), "gatewayd_proxy_serving") == {"": 1}


def test_capability_off_is_not_a_problem(env):
    env.start_daemon({"gateway": {"enabled": "no"}})
    assert wait_healthz(env, 200) == "ok\n"
    m = metrics(env)
    assert series(m, "gatewayd_listener_up") == {'{listener="metrics"}': 1}
    assert series(m, "gatewayd_proxy_serving") == {"": 0}
    by = {l["Name"]: l for l in health(env)["Listeners"]}
    assert by["https"]["Configured"] is False and by["https"]["Bound"] is False
    assert "listener https: not configured" in ctl(env, "status").stdout.splitlines()


def test_reload_result(env):
    env.start_daemon()
    wait_healthz(env, 200)  # READY=1 comes with the bus; the listeners open right after
    good = env.daemon.config_path.read_text()
    env.reload(text=good.replace("enabled = yes", "enabled = perhaps"))
    h = health(env)
    assert h["Reload"]["Result"] == "failed", h
    assert "invalid boolean 'perhaps'" in h["Reload"]["Error"], h
    assert h["Reload"]["Time"] is not None
    m = metrics(env)
    assert series(m, "gatewayd_reload_success") == {"": 0}
    t_failed = series(m, "gatewayd_reload_timestamp_seconds")[""]
    assert t_failed > 0
    # A refused reload is not a health problem: the running configuration stays.
    assert get(env, "/healthz") == (200, "ok\n")
    assert re.search(r"^last reload: failed at \S+Z: .*invalid boolean 'perhaps'",
                     ctl(env, "status").stdout, re.M)

    env.reload(text=good)
    h = health(env)
    assert h["Reload"]["Result"] == "ok" and h["Reload"]["Error"] == "", h
    m = metrics(env)
    assert series(m, "gatewayd_reload_success") == {"": 1}
    assert series(m, "gatewayd_reload_timestamp_seconds")[""] >= t_failed
    assert re.search(r"^last reload: ok at \S+Z$", ctl(env, "status").stdout, re.M)


def test_healthz_routing(env):
    env.start_daemon()
    wait_healthz(env, 200)
    assert get(env, "/healthz?x=1") == (200, "ok\n")
    assert get(env, "/healthzz")[0] == 404
    assert get(env, "/metrics")[0] == 200


def test_reload_changes_one_port(env):
    """A new https port with http unchanged: the http socket the engine
    serves is handed over again (opening it anew would fail with
    EADDRINUSE while the engine listens on it, and the new https port
    would never be served)."""
    env.start_daemon()
    wait_healthz(env, 200)
    new = free_port()
    env.reload({"proxy": {"https_port": str(new)}})
    body = wait_healthz(env, 200, timeout=10)
    assert body == "ok\n"
    by = {l["Name"]: l for l in health(env)["Listeners"]}
    assert by["https"]["Address"] == "127.0.0.1:%d" % new and by["https"]["Bound"], by
    for port in (new, env.http_port):
        socket.create_connection(("127.0.0.1", port), timeout=scaled(5)).close()
    wait_refused(env.https_port, "the old https port to be closed")

# SPDX-License-Identifier: Apache-2.0
"""A reload or a repair must never leave the node without listeners (issue 10,
item 2), on a grid node made of namespaces with real Yggdrasil (node.py).

- A SIGHUP whose [namespace] links cannot be made on this node (a macvlan
  parent that does not exist) is refused as a whole: the working namespace,
  its listeners and the requests through them are untouched, during the
  reload and after it, and the health reports say the reload failed.
- The good file again: nothing is torn down, the listeners are still there.
- A namespace made anew on a path where an earlier attempt failed (deleted
  from outside while its macvlan parent is gone, then the parent comes back)
  gets new listeners: the proxy follows the namespace's identity, not the
  text of a reconcile report.

Needs root and yggdrasil; skipped otherwise."""

import re
import threading
import time
from pathlib import Path

import pytest

import node as gridnode
from conftest import Deadline, scaled
from node import in_ns, ip, link_exists, wait_until

_why_not = gridnode.have_prerequisites()
pytestmark = pytest.mark.skipif(_why_not is not None, reason=_why_not or "")

HTTPS_PORT = 8443  # inside the gateway namespace: nothing else listens there
HTTP_PORT = 8080
PUBLIC_ADDR = gridnode.PUBLIC_V4.split("/")[0]
HOST = "web.gw1.example.net"
WLID = "37-8-web"
PERIODIC_CHECK = 3  # seconds between the daemon's own namespace checks (daemon/gwns.c)


def listening_ports(ns):
    """TCP ports something listens on inside namespace @ns (`ss -ltn`)."""
    out = in_ns(ns, ["ss", "-Hltn"]).stdout
    ports = set()
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 4 and f[0] == "LISTEN":
            ports.add(int(f[3].rsplit(":", 1)[1]))
    return ports


def ns_inode(name):
    return (Path(gridnode.NETNS_RUN) / name).stat().st_ino


def through_gateway(grid, timeout=3):
    """One HTTPS request from the node namespace to the gateway's public
    address, terminated there and sent on over Yggdrasil to the workload.
    Returns (ok, detail)."""
    p = in_ns(grid.node_ns, ["curl", "-sS", "-k", "--max-time", str(timeout), "--resolve",
                             "%s:%d:%s" % (HOST, HTTPS_PORT, PUBLIC_ADDR),
                             "https://%s:%d/" % (HOST, HTTPS_PORT)], check=False, timeout=timeout + 5)
    want = grid.expected_body_prefix() + grid.subnet_host(10)
    return p.returncode == 0 and p.stdout.strip() == want, (p.returncode, p.stdout, p.stderr)


def wait_through_gateway(grid, daemon, timeout=20):
    dl = Deadline(timeout, "a request through the gateway")
    while True:
        ok, detail = through_gateway(grid)
        if ok:
            return
        if dl.expired:
            raise AssertionError("no request through the gateway: %r\n%s" % (detail, daemon.log_tail(30)))
        time.sleep(0.1)


class Prober:
    """Requests through the gateway in a loop on a thread, every failure kept."""

    def __init__(self, grid):
        self.grid = grid
        self.stop_ev = threading.Event()
        self.done = 0
        self.failures = []
        self.t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop_ev.is_set():
            ok, detail = through_gateway(self.grid)
            self.done += 1
            if not ok:
                self.failures.append(detail)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.stop_ev.set()
        self.t.join(scaled(15))


def gauge(env, grid, name):
    """The value of an unlabelled gauge from GET /metrics (the daemon, and
    its metrics endpoint, live in the node namespace)."""
    text = in_ns(grid.node_ns, ["curl", "-sS", "--max-time", "5",
                                "http://127.0.0.1:%d/metrics" % env.metrics_port]).stdout
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    assert m, "no %s in /metrics:\n%s" % (name, text)
    return float(m.group(1))


def gateway_config(grid, gw_name, **ns_over):
    cfg = grid.gateway_config(gw_name, **ns_over)
    cfg["proxy"] = {"address": "::", "https_port": str(HTTPS_PORT), "http_port": str(HTTP_PORT)}
    return cfg


@pytest.fixture
def serving(env, grid):
    """gatewayd on the grid node, serving a terminated workload on Yggdrasil
    through the gateway namespace."""
    gw_name = grid.new_gateway_name()
    daemon = grid.make_daemon(env)
    try:
        env.start_daemon(gateway_config(grid, gw_name))
        grid.configure_uplinks(timeout=15)
        assert env.deploy_name(WLID, "web", [grid.workload_url.rstrip("/")]) == HOST
        wait_through_gateway(grid, daemon)
        yield gw_name
    finally:
        env.daemon.stop()
        grid.remove_gateway(gw_name)


@pytest.mark.timeout_s(90)
@pytest.mark.parametrize("key", ["public_link", "ygg_link"])
def test_unusable_link_reload_keeps_serving(env, grid, serving, key):
    gw_name = serving
    d = env.daemon
    ino = ns_inode(gw_name)
    assert listening_ports(gw_name) >= {HTTPS_PORT, HTTP_PORT}

    # 1. A parent link that does not exist: refused before anything is torn
    #    down, and requests keep flowing during the reload and after it (for
    #    longer than the daemon's periodic check, which would act on a file
    #    it had accepted).
    mark = d.mark()
    with Prober(grid) as prober:
        env.reload(gateway_config(grid, gw_name, **{key: "macvlan:nosuchdev0"}))
        dl = Deadline(PERIODIC_CHECK + 1, "a reload refused for good")
        while not dl.expired:
            time.sleep(0.2)
    assert prober.done >= 3 and prober.failures == [], (prober.done, prober.failures[:3])
    assert ns_inode(gw_name) == ino
    assert listening_ports(gw_name) >= {HTTPS_PORT, HTTP_PORT}
    assert d.running
    line = d.wait_log(r"Refusing the new configuration, keeping the old one: .*nosuchdev0",
                      timeout=10, since=mark)
    assert "not found in the host namespace" in line, line

    # The refusal is recorded; the node itself stays healthy.
    h = env.bus.info().data["Health"]
    assert h["Reload"]["Result"] == "failed" and "nosuchdev0" in h["Reload"]["Error"], h
    assert h["Reload"]["Time"] is not None
    assert h["Namespace"]["Ready"] is True and h["Healthy"] is True, h
    assert gauge(env, grid, "gatewayd_reload_success") == 0
    assert gauge(env, grid, "gatewayd_reload_timestamp_seconds") > 0
    assert gauge(env, grid, "gatewayd_proxy_serving") == 1

    # 2. The good file again: applied, nothing torn down, still listening.
    mark = d.mark()
    env.reload(gateway_config(grid, gw_name))
    d.wait_log(r"Configuration reloaded", timeout=10, since=mark)
    wait_through_gateway(grid, d, timeout=10)
    assert ns_inode(gw_name) == ino
    assert listening_ports(gw_name) >= {HTTPS_PORT, HTTP_PORT}
    h = env.bus.info().data["Health"]
    assert h["Reload"]["Result"] == "ok" and h["Reload"]["Error"] == "", h
    assert h["Healthy"] is True, h
    assert gauge(env, grid, "gatewayd_reload_success") == 1
    assert gauge(env, grid, "gatewayd_proxy_serving") == 1
    with d.cond:
        torn = [l for _, l in d.lines[mark:] if "removed" in l or "deleted namespace" in l]
    assert torn == []


def http_answer(grid):
    """The HTTP status the gateway's own :HTTP_PORT answers from the node
    namespace ("000" when nothing answers)."""
    p = in_ns(grid.node_ns, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2",
                             "-H", "Host: nobody.example.org", "http://%s:%d/" % (PUBLIC_ADDR, HTTP_PORT)],
              check=False, timeout=10)
    return p.stdout.strip()


def configure_public_uplink(grid, timeout=10):
    """The node's side of the public veth (the ygg link is a macvlan here)."""
    wait_until(lambda: link_exists(grid.pub_host, grid.node_ns), timeout,
               "host-side veth %s in %s" % (grid.pub_host, grid.node_ns))
    ip("addr", "replace", gridnode.GATEWAY_V4 + "/24", "dev", grid.pub_host, ns=grid.node_ns)
    ip("link", "set", grid.pub_host, "up", ns=grid.node_ns)


@pytest.mark.timeout_s(90)
def test_namespace_made_anew_after_a_failed_repair_gets_listeners(env, grid):
    """The repair path: the namespace is deleted from outside while the
    parent of its ygg macvlan is gone. The daemon's next run makes a new
    namespace and fails on the macvlan; the run after the parent is back
    completes it without making it anew. The proxy must still move its
    listeners into it."""
    gw_name = grid.new_gateway_name()
    parent, peer = "mv" + grid.tag, "mw" + grid.tag
    d = grid.make_daemon(env)

    def add_parent():
        ip("link", "add", parent, "type", "veth", "peer", "name", peer, ns=grid.node_ns)
        ip("link", "set", parent, "up", ns=grid.node_ns)

    try:
        add_parent()
        env.start_daemon(gateway_config(grid, gw_name, ygg_link="macvlan:" + parent))
        configure_public_uplink(grid)
        wait_until(lambda: http_answer(grid) != "000", 15, "the gateway's :%d" % HTTP_PORT,
                   detail=lambda: d.log_tail(30))
        assert listening_ports(gw_name) >= {HTTPS_PORT, HTTP_PORT}

        mark = d.mark()
        ip("link", "del", parent, ns=grid.node_ns)
        gridnode.netns_del(gw_name)
        d.wait_log(r"Gateway namespace %s is not ready: .*%s" % (re.escape(gw_name), parent),
                   timeout=15, since=mark)
        assert gridnode.netns_exists(gw_name)  # made anew, unfinished
        h = env.bus.info().data["Health"]
        assert h["Namespace"]["Ready"] is False and parent in h["Namespace"]["Error"], h
        assert h["Healthy"] is False
        assert not any(l["Bound"] for l in h["Listeners"] if l["Name"] in ("https", "http")), h
        assert gauge(env, grid, "gatewayd_proxy_serving") == 0

        mark = d.mark()
        add_parent()
        d.wait_log(r"Gateway namespace %s is ready" % re.escape(gw_name), timeout=15, since=mark)
        configure_public_uplink(grid)
        wait_until(lambda: listening_ports(gw_name) >= {HTTPS_PORT, HTTP_PORT}, 15,
                   "listeners in the new namespace %s" % gw_name, detail=lambda: d.log_tail(30))
        wait_until(lambda: http_answer(grid) != "000", 15, "the gateway's :%d again" % HTTP_PORT,
                   detail=lambda: d.log_tail(30))
        wait_until(lambda: env.bus.info().data["Health"]["Healthy"], 10, "a healthy gateway",
                   detail=lambda: env.bus.info().data["Health"])
        assert gauge(env, grid, "gatewayd_proxy_serving") == 1
    finally:
        env.daemon.stop()
        grid.remove_gateway(gw_name)
        ip("link", "del", parent, ns=grid.node_ns, check=False)


@pytest.mark.timeout_s(120)
def test_every_path_that_makes_the_namespace_anew_moves_the_listeners(env, grid, serving):
    """A repair after `ip netns del`, the capability switched off and on, and
    a SIGHUP to other (valid) links each make a new namespace; each time the
    listeners are in it and a request through the gateway works."""
    gw_name = serving
    d = env.daemon

    def check(what, since):
        grid.configure_uplinks(timeout=15)
        wait_until(lambda: listening_ports(gw_name) >= {HTTPS_PORT, HTTP_PORT}, 15,
                   "listeners in %s after %s" % (gw_name, what), detail=lambda: d.log_tail(30))
        wait_through_gateway(grid, d)
        assert ns_inode(gw_name) != since, what
        assert gauge(env, grid, "gatewayd_proxy_serving") == 1, what
        assert env.bus.info().data["Health"]["Healthy"] is True, what

    ino = ns_inode(gw_name)
    gridnode.netns_del(gw_name)
    wait_until(lambda: gridnode.netns_exists(gw_name) and ns_inode(gw_name) != ino, 15,
               "namespace %s repaired" % gw_name, detail=lambda: d.log_tail(30))
    check("a repair", ino)

    ino = ns_inode(gw_name)
    off = gateway_config(grid, gw_name)
    off["gateway"] = dict(off["gateway"], enabled="no")
    env.reload(off)
    wait_until(lambda: not gridnode.netns_exists(gw_name), 15, "namespace %s removed" % gw_name)
    env.reload(gateway_config(grid, gw_name))
    wait_until(lambda: gridnode.netns_exists(gw_name), 15, "namespace %s rebuilt" % gw_name)
    check("the switch off and on", ino)

    # Other links (the ygg veth's host end renamed): checked, torn down, rebuilt.
    ino = ns_inode(gw_name)
    other = "gz" + grid.tag
    try:
        env.reload(gateway_config(grid, gw_name, ygg_link="veth:" + other))
        wait_until(lambda: link_exists(other, grid.node_ns), 15, "veth %s" % other)
        ip("addr", "replace", "%s/64" % grid.ygg_router, "dev", other, "nodad", ns=grid.node_ns)
        ip("link", "set", other, "up", ns=grid.node_ns)
        wait_until(lambda: listening_ports(gw_name) >= {HTTPS_PORT, HTTP_PORT}, 15,
                   "listeners after new links", detail=lambda: d.log_tail(30))
        configure_public_uplink(grid)
        wait_through_gateway(grid, d)
        assert ns_inode(gw_name) != ino
        assert env.bus.info().data["Health"]["Reload"]["Result"] == "ok"
    finally:
        ip("link", "del", other, ns=grid.node_ns, check=False)

# SPDX-License-Identifier: Apache-2.0
"""Health reports of the gateway namespace and of the listeners inside it
(issue 10, item 3), on a grid node made of namespaces (node.py): GET
/healthz answers 503 with the reason while the namespace is not ready, and
while a socket of someone else holds the configured port inside it; the
gauges, Info and `gatewayctl status` say the same, and which overlays
(Yggdrasil, Mycelium) are up.

Needs root and yggdrasil; skipped otherwise."""

import re
import subprocess
import sys

import pytest

import node as gridnode
from conftest import GATEWAYCTL, Deadline, scaled
from node import LineProc, in_ns, ip, nsenter_argv

_why_not = gridnode.have_prerequisites()
pytestmark = pytest.mark.skipif(_why_not is not None, reason=_why_not or "")

HTTPS_PORT = 8443
HTTP_PORT = 8080
HELD_PORT = 9443

HOLDER = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.bind(("::", int(sys.argv[1])))
s.listen(1)
print("LISTENING", flush=True)
time.sleep(600)
"""


def get(env, grid, path):
    """(status, body) of GET @path on the metrics listener, which is in the
    node namespace with the daemon."""
    p = in_ns(grid.node_ns, ["curl", "-sS", "--max-time", "5", "-w", "\n%{http_code}",
                             "http://127.0.0.1:%d%s" % (env.metrics_port, path)])
    body, _, code = p.stdout.rpartition("\n")
    return int(code), body


def wait_healthz(env, grid, status, pattern=None, timeout=15):
    dl = Deadline(timeout, "/healthz %d /%s/" % (status, pattern or ""))
    while True:
        got = get(env, grid, "/healthz")
        if got[0] == status and (pattern is None or re.search(pattern, got[1], re.M)):
            return got[1]
        if dl.expired:
            raise AssertionError("/healthz is %r, wanted %d /%s/; log:\n%s"
                                 % (got, status, pattern, env.daemon.log_tail(30)))


def series(env, grid, name):
    status, text = get(env, grid, "/metrics")
    assert status == 200, (status, text)
    return {m.group(1) or "": float(m.group(2))
            for m in re.finditer(r"^%s(\{[^}]*\})? (\S+)$" % re.escape(name), text, re.M)}


def status_text(env):
    p = subprocess.run([str(GATEWAYCTL), "--broker", env.redis.url, "status"], capture_output=True,
                       text=True, timeout=scaled(15), stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p
    return p.stdout


def config(grid, gw_name, https_port=HTTPS_PORT, **ns_over):
    cfg = grid.gateway_config(gw_name, **ns_over)
    cfg["proxy"] = {"address": "::", "https_port": str(https_port), "http_port": str(HTTP_PORT)}
    return cfg


def listening_ports(ns):
    out = in_ns(ns, ["ss", "-Hltn"]).stdout
    return {int(l.split()[3].rsplit(":", 1)[1]) for l in out.splitlines() if l.startswith("LISTEN")}


@pytest.mark.timeout_s(60)
def test_namespace_not_ready(env, grid):
    gw_name = grid.new_gateway_name()
    parent = "nsd" + grid.tag
    path = "%s/%s" % (gridnode.NETNS_RUN, gw_name)
    grid.make_daemon(env)
    try:
        env.start_daemon(config(grid, gw_name, public_link="macvlan:" + parent))
        body = wait_healthz(env, grid, 503, r"^namespace ")
        assert re.search(r"^namespace %s: not ready: parent link %s of macvlan public not found in the "
                         r"host namespace" % (re.escape(path), parent), body, re.M), body
        assert re.search(r"^https \[::\]:%d in %s: not bound: waiting for the gateway namespace: parent link"
                         % (HTTPS_PORT, re.escape(path)), body, re.M), body
        assert series(env, grid, "gatewayd_namespace_ready") == {"": 0}
        assert series(env, grid, "gatewayd_healthy") == {"": 0}
        assert series(env, grid, "gatewayd_proxy_serving") == {"": 0}
        h = env.bus.info().data["Health"]
        assert h["Namespace"]["Managed"] is True and h["Namespace"]["Ready"] is False, h
        assert parent in h["Namespace"]["Error"] and h["Namespace"]["Path"] == path, h
        assert re.search(r"^namespace: not ready since \S+Z: parent link %s .* \(%s\)$"
                         % (parent, re.escape(path)), status_text(env), re.M)

        # The parent appears: the daemon's own checks build the namespace,
        # the listeners open in it, and the reports turn.
        ip("link", "add", parent, "type", "veth", "peer", "name", parent + "p", ns=grid.node_ns)
        ip("link", "set", parent, "up", ns=grid.node_ns)
        assert wait_healthz(env, grid, 200, timeout=20) == "ok\n"
        assert listening_ports(gw_name) >= {HTTPS_PORT, HTTP_PORT}
        assert series(env, grid, "gatewayd_namespace_ready") == {"": 1}
        assert series(env, grid, "gatewayd_proxy_serving") == {"": 1}
        assert re.search(r"^namespace: ready since \S+Z \(%s\)$" % re.escape(path), status_text(env), re.M)
    finally:
        env.daemon.stop()
        grid.remove_gateway(gw_name)
        ip("link", "del", parent, ns=grid.node_ns, check=False)


@pytest.mark.timeout_s(90)
def test_port_held_inside_the_namespace(env, grid, tmp_path):
    gw_name = grid.new_gateway_name()
    path = "%s/%s" % (gridnode.NETNS_RUN, gw_name)
    grid.make_daemon(env)
    holder = None
    try:
        env.start_daemon(config(grid, gw_name))
        grid.configure_uplinks(timeout=15)
        assert wait_healthz(env, grid, 200) == "ok\n"

        # Someone else listens on the port the next file asks for.
        holder = LineProc("holder", nsenter_argv(gw_name, [sys.executable, "-c", HOLDER, str(HELD_PORT)]),
                          str(tmp_path / "holder.log"))
        holder.wait_line(r"^LISTENING$", 10)
        env.reload(config(grid, gw_name, https_port=HELD_PORT))
        body = wait_healthz(env, grid, 503, r"^https .*Address already in use")
        want = (r"^https \[::\]:%d in %s: not bound: bind \[::\]:%d in %s: Address already in use$"
                % (HELD_PORT, re.escape(path), HELD_PORT, re.escape(path)))
        assert re.search(want, body, re.M), body
        # The engine keeps what it had: http on its unchanged address is
        # still served, and says so.
        assert body.count("\n") == 1, body
        assert series(env, grid, "gatewayd_listener_up") == {
            '{listener="https"}': 0, '{listener="http"}': 1, '{listener="metrics"}': 1}
        assert HTTP_PORT in listening_ports(gw_name)
        by = {l["Name"]: l for l in env.bus.info().data["Health"]["Listeners"]}
        assert by["https"]["Bound"] is False and "Address already in use" in by["https"]["Error"]
        assert by["http"]["Bound"] is True
        assert re.search(r"^listener https: not bound since \S+Z: bind .*Address already in use \(\[::\]:%d in %s\)$"
                         % (HELD_PORT, re.escape(path)), status_text(env), re.M)

        # The holder goes: the retry binds, and the reports turn.
        holder.kill()
        holder = None
        assert wait_healthz(env, grid, 200, timeout=40) == "ok\n"
        assert HELD_PORT in listening_ports(gw_name)
        assert series(env, grid, "gatewayd_listener_up")['{listener="https"}'] == 1
    finally:
        if holder:
            holder.kill()
        env.daemon.stop()
        grid.remove_gateway(gw_name)


@pytest.mark.timeout_s(90)
def test_issue_12_overlays_reported(env, grid):
    """Which overlays are up, in Info, `gatewayctl status` and the gauges:
    down with the namespace's reason while it cannot be built (here: the
    Mycelium macvlan's parent is missing), up once it is, and Mycelium "not
    configured" (no series) once its keys are gone."""
    gw_name = grid.new_gateway_name()
    parent = "nsm" + grid.tag
    grid.make_daemon(env)
    myc_addr = gridnode.MYC_ADDRESS
    try:
        env.start_daemon(config(grid, gw_name, mycelium=True, mycelium_link="macvlan:" + parent))
        wait_healthz(env, grid, 503, r"^namespace .*%s" % parent)
        by = {o["Name"]: o for o in env.bus.info().data["Health"]["Overlays"]}
        assert set(by) == {"ygg", "mycelium"}, by
        for name in ("ygg", "mycelium"):
            assert by[name]["Configured"] is True and by[name]["Up"] is False, by
            assert "parent link %s of macvlan mycelium not found" % parent in by[name]["Error"], by
        assert by["mycelium"]["Address"] == myc_addr and by["mycelium"]["Prefix"] == "400::/7", by
        assert by["mycelium"]["Router"] == gridnode.MYC_ROUTER, by
        assert by["ygg"]["Address"] == grid.ygg_address and by["ygg"]["Prefix"] == "200::/7", by
        assert series(env, grid, "gatewayd_overlay_up") == {
            '{overlay="ygg"}': 0, '{overlay="mycelium"}': 0}
        text = status_text(env)
        assert re.search(r"^overlay mycelium: down since \S+Z: parent link %s .* \(%s\)$"
                         % (parent, re.escape(myc_addr)), text, re.M), text

        # The parent appears: both overlays are up.
        ip("link", "add", parent, "type", "veth", "peer", "name", parent + "p", ns=grid.node_ns)
        ip("link", "set", parent, "up", ns=grid.node_ns)
        assert wait_healthz(env, grid, 200, timeout=20) == "ok\n"
        assert series(env, grid, "gatewayd_overlay_up") == {
            '{overlay="ygg"}': 1, '{overlay="mycelium"}': 1}
        by = {o["Name"]: o for o in env.bus.info().data["Health"]["Overlays"]}
        assert by["mycelium"]["Up"] is True and by["mycelium"]["Error"] == "", by
        assert parent in by["mycelium"]["LastError"], by
        text = status_text(env)
        assert re.search(r"^overlay ygg: up since \S+Z \(%s\)$" % re.escape(grid.ygg_address), text, re.M), text
        assert re.search(r"^overlay mycelium: up since \S+Z \(%s\)$" % re.escape(myc_addr), text, re.M), text

        # Mycelium's keys gone: not configured, no series; Yggdrasil up.
        env.reload(config(grid, gw_name))
        assert wait_healthz(env, grid, 200, timeout=20) == "ok\n"
        assert series(env, grid, "gatewayd_overlay_up") == {'{overlay="ygg"}': 1}
        text = status_text(env)
        assert re.search(r"^overlay mycelium: not configured$", text, re.M), text
        assert re.search(r"^overlay ygg: up since ", text, re.M), text
    finally:
        env.daemon.stop()
        grid.remove_gateway(gw_name)
        ip("link", "del", parent, ns=grid.node_ns, check=False)

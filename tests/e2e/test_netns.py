# SPDX-License-Identifier: Apache-2.0
"""The gateway network namespace, end to end, on a grid node made of
namespaces with real Yggdrasil (node.py, docs/topology.md).

gatewayd runs in the node namespace (`nsenter --net`), creates the gateway
namespace under /run/netns with a public veth and a ygg veth, keeps it as
configured (drift is repaired and logged), removes and rebuilds it when the
gateway is switched off and on, and reaches workloads over the overlay.

One node per module (under a second to build here); one gatewayd, one
gateway namespace and one Redis per test. Needs root and yggdrasil; the
module is skipped otherwise.
Run one test by hand: see docs/topology.md.
"""

import ipaddress
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REPO, Deadline, scaled
import node as gridnode
from node import in_ns, ip, ip_json, link_exists, netns_exists, snapshot, sysctl, wait_until

_why_not = gridnode.have_prerequisites()
pytestmark = pytest.mark.skipif(_why_not is not None, reason=_why_not or "")

NETNS_CONNECT = Path(os.environ.get("NETNS_CONNECT") or REPO / "build" / "netns" / "netns-connect")

PERIODIC_CHECK = 3  # seconds between the daemon's own checks (daemon/gwns.c)
REPAIR_TIMEOUT = 10  # "within a few seconds", with room for a loaded CI machine
WLID = "37-1-myapp"
# The gateway namespace's own port sysctls (docs/internals/netns.md): local
# ports for backend connections and TIME_WAIT reuse (issue 11).
PORT_SYSCTLS = {"net.ipv4.ip_local_port_range": "10000 65535", "net.ipv4.tcp_tw_reuse": "1"}


# ---------------------------------------------------------------------------
# Fixtures


class Gateway:
    """One gatewayd (in the node ns) and the gateway namespace it owns."""

    def __init__(self, env, grid, name):
        self.env = env
        self.grid = grid
        self.name = name
        self.mycelium = False  # configure the Mycelium link too (issue 12)
        self.daemon = grid.make_daemon(env)

    def config(self, enabled="yes", **ns_over):
        return self.grid.gateway_config(self.name, enabled=enabled, mycelium=self.mycelium, **ns_over)

    def start(self, enabled="yes", **ns_over):
        self.env.start_daemon(self.config(enabled, **ns_over))
        return self

    def reload(self, enabled="yes", **ns_over):
        self.env.reload(self.config(enabled, **ns_over))

    def wait_ready(self, timeout=REPAIR_TIMEOUT):
        """Wait until the namespace is exactly as configured, then give the
        node's side of the veths its addresses."""
        self.wait_good(timeout, "gateway namespace %s as configured" % self.name)
        self.grid.configure_uplinks(timeout, mycelium=self.mycelium)

    def wait_good(self, timeout, what):
        wait_until(lambda: not self.problems(), timeout, what, detail=self.explain)

    def explain(self):
        return "problems: %s\ngatewayd log:\n%s" % (self.problems(), self.daemon.log_tail(30))

    def problems(self):
        """What differs from the configuration (empty when all is right)."""
        if not netns_exists(self.name):
            return ["namespace %s does not exist" % self.name]
        try:
            return namespace_problems(self.name, self.grid, self.mycelium)
        except AssertionError as e:  # it vanished while we looked
            return ["cannot read namespace %s: %s" % (self.name, e)]


@pytest.fixture
def gateway(env, grid):
    gw = Gateway(env, grid, grid.new_gateway_name())
    try:
        yield gw
    finally:
        # Stop the daemon first: it would repair what we remove.
        env.daemon.stop()
        grid.remove_gateway(gw.name)


@pytest.fixture
def ready(gateway):
    """A daemon with the gateway namespace built and the uplinks configured."""
    gateway.start()
    gateway.wait_ready()
    return gateway


# ---------------------------------------------------------------------------
# Reading a namespace


def _links(ns):
    return {li["ifname"]: li for li in ip_json("link", "show", ns=ns)}


def _addrs(ns, dev):
    """{"addr/len", ...} of scope global on @dev."""
    out = set()
    for li in ip_json("addr", "show", "dev", dev, ns=ns):
        for a in li.get("addr_info", []):
            if a.get("scope") == "global":
                out.add("%s/%d" % (ipaddress.ip_address(a["local"]), a["prefixlen"]))
    return out


def _norm(x):
    """Canonical text of an address ("a/len" keeps its host part)."""
    try:
        return str(ipaddress.ip_interface(x)) if "/" in x else str(ipaddress.ip_address(x))
    except ValueError:
        return x


def _route(ns, family, dst):
    """The main-table route to @dst ("default" or a prefix) or None."""
    for r in ip_json(family, "route", "show", ns=ns):
        if r.get("dst") == dst:
            return r
    return None


def namespace_problems(ns, grid, mycelium=False):
    p = []
    links = _links(ns)
    for name in ("lo", "public", "ygg") + (("mycelium",) if mycelium else ()):
        if name not in links:
            p.append("no link %s" % name)
        elif "UP" not in links[name].get("flags", []):
            p.append("%s is not up (flags %s)" % (name, links[name].get("flags")))
    want = {"public": {gridnode.PUBLIC_V4, gridnode.PUBLIC_V6}, "ygg": {_norm(grid.ygg_address)}}
    routes = [("-4", "default", gridnode.GATEWAY_V4, "public"),
              ("-6", "default", gridnode.GATEWAY_V6, "public"),
              ("-6", "200::/7", grid.ygg_router, "ygg")]
    if mycelium:
        want["mycelium"] = {_norm(gridnode.MYC_ADDRESS)}
        routes.append(("-6", "400::/7", gridnode.MYC_ROUTER, "mycelium"))
    for dev, addrs in want.items():
        if dev in links:
            have = _addrs(ns, dev)
            for a in sorted(addrs - have):
                p.append("%s lacks %s (has %s)" % (dev, a, sorted(have)))
    for fam, dst, via, dev in routes:
        r = _route(ns, fam, dst)
        if r is None:
            p.append("no route %s %s" % (fam, dst))
        elif _norm(r.get("gateway", "")) != _norm(via) or r.get("dev") != dev:
            p.append("route %s is %r, want via %s dev %s" % (dst, r, via, dev))
    for key in ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"):
        v = sysctl(ns, key)
        if v != "0":
            p.append("%s = %s" % (key, v))
    for key, want in PORT_SYSCTLS.items():
        v = " ".join(sysctl(ns, key).split())
        if v != want:
            p.append("%s = %s, want %s" % (key, v, want))
    return p


# Connect once; print the errno name (or CONNECTED).
PROBE = r"""
import errno, socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
s.settimeout(3)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    print("CONNECTED")
except OSError as e:
    print(errno.errorcode.get(e.errno, "timeout" if isinstance(e, socket.timeout) else str(e)))
"""


def no_tentative(ns):
    """True when no address of @ns is still in duplicate address detection
    (the kernel's link-local addresses are; they change state once)."""
    for li in ip_json("addr", "show", ns=ns):
        for a in li.get("addr_info", []):
            if a.get("tentative"):
                return False
    return True


def repair_lines(daemon, since):
    with daemon.cond:
        return [l for _, l in daemon.lines[since:] if "repair" in l.lower()]


# ---------------------------------------------------------------------------
# The topology alone (no gatewayd): a hand-made namespace routed like the
# gateway's reaches the workload over the overlay.


def test_topology_handmade_gateway_reaches_workload(grid):
    name = grid.new_gateway_name() + "-hm"
    host = "hy" + grid.tag
    try:
        grid.make_handmade_gateway(name, host)
        body = grid.fetch(name, timeout=10)
        # The workload saw the gateway's own overlay address.
        assert body.strip() == grid.expected_body_prefix() + grid.subnet_host(10), body
        assert in_ns(name, ["cat", "/proc/sys/net/ipv6/conf/all/forwarding"]).stdout.strip() == "0"
    finally:
        grid.remove_handmade_gateway(name, host)
    assert not netns_exists(name) and not link_exists(host, grid.node_ns)


# ---------------------------------------------------------------------------
# 1. The namespace after start


def test_namespace_after_start(ready, grid):
    ns = ready.name
    assert netns_exists(ns)
    assert ready.problems() == []
    links = _links(ns)
    assert "UP" in links["lo"]["flags"]
    assert _addrs(ns, "public") == {"203.0.113.10/24", "2001:db8:1::10/64"}
    assert _addrs(ns, "ygg") == {"%s/64" % grid.subnet_host(10)}
    r4 = _route(ns, "-4", "default")
    assert (r4["gateway"], r4["dev"]) == ("203.0.113.1", "public"), r4
    r6 = _route(ns, "-6", "default")
    assert (_norm(r6["gateway"]), r6["dev"]) == ("2001:db8:1::1", "public"), r6
    ry = _route(ns, "-6", "200::/7")
    assert (_norm(ry["gateway"]), ry["dev"]) == (grid.ygg_router, "ygg"), ry
    assert sysctl(ns, "net.ipv4.ip_forward") == "0"
    assert sysctl(ns, "net.ipv6.conf.all.forwarding") == "0"
    # The node's ends of the veths are in the node namespace, not the host's.
    assert link_exists(grid.pub_host, grid.node_ns) and link_exists(grid.ygg_host, grid.node_ns)
    assert not link_exists(grid.pub_host) and not link_exists(grid.ygg_host)
    # The public addresses are on the wire: from the node (the "upstream
    # router"), a closed port answers with a reset (not unreachable, not a
    # timeout).
    wait_until(lambda: no_tentative(ns), 5, "DAD to finish in %s" % ns)
    for addr in ("203.0.113.10", "2001:db8:1::10"):
        p = in_ns(grid.node_ns, [gridnode.PYTHON, "-c", PROBE, addr, "9"], check=False)
        assert p.stdout.strip() == "ECONNREFUSED", (addr, p.stdout, p.stderr)


@pytest.mark.timeout_s(60)
def test_issue_11_port_sysctls(ready, grid):
    """The gateway namespace's ip_local_port_range and tcp_tw_reuse are the
    documented values after it is made, after a change from outside (drift)
    and in a namespace made anew."""
    ns = ready.name
    d = ready.daemon
    for key, want in PORT_SYSCTLS.items():
        assert " ".join(sysctl(ns, key).split()) == want, key
    # The node's namespace keeps the kernel's values: only the gateway's own
    # are set.
    assert " ".join(sysctl(grid.node_ns, "net.ipv4.ip_local_port_range").split()) != \
        PORT_SYSCTLS["net.ipv4.ip_local_port_range"]
    mark = d.mark()
    in_ns(ns, ["sh", "-c", "echo '32768 60999' > /proc/sys/net/ipv4/ip_local_port_range; "
               "echo 2 > /proc/sys/net/ipv4/tcp_tw_reuse"])
    ready.wait_good(REPAIR_TIMEOUT, "the port sysctls repaired")
    d.wait_log(r"(?i)repair.*net\.ipv4\.ip_local_port_range=10000 65535", timeout=REPAIR_TIMEOUT,
               since=mark)
    d.wait_log(r"(?i)repair.*net\.ipv4\.tcp_tw_reuse=1", timeout=REPAIR_TIMEOUT, since=mark)

    path = Path(gridnode.NETNS_RUN) / ns
    old_ino = path.stat().st_ino
    ip("netns", "del", ns)
    wait_until(lambda: path.exists() and path.stat().st_ino != old_ino, REPAIR_TIMEOUT,
               "a new namespace at %s" % path, detail=ready.explain)
    ready.wait_good(REPAIR_TIMEOUT, "namespace %s re-created" % ns)
    for key, want in PORT_SYSCTLS.items():
        assert " ".join(sysctl(ns, key).split()) == want, key
    assert d.running


# ---------------------------------------------------------------------------
# 2. Idempotency


@pytest.mark.timeout_s(40)
def test_reload_changes_nothing(ready):
    ns = ready.name
    wait_until(lambda: no_tentative(ns), 5, "DAD to finish in %s" % ns)
    before = snapshot(ns)
    mark = ready.daemon.mark()
    for _ in range(2):
        ready.reload()
    # Nothing announces "I changed nothing": watch for a bounded window that
    # spans the daemon's periodic check, comparing every observation, so
    # that a flap is caught too.
    dl = Deadline(PERIODIC_CHECK + 0.5, "a stable namespace")
    while not dl.expired:
        assert snapshot(ns) == before
        time.sleep(min(0.2, dl.left()))
    assert snapshot(ns) == before
    assert repair_lines(ready.daemon, mark) == []
    assert ready.daemon.running


def test_restart_adopts_namespace(ready):
    """A restarted daemon takes over the namespace it left (SIGTERM keeps
    it, so established connections of the node survive) and changes
    nothing."""
    ns = ready.name
    wait_until(lambda: no_tentative(ns), 5, "DAD to finish in %s" % ns)
    before = snapshot(ns)
    ready.daemon.stop()
    assert snapshot(ns) == before
    mark = ready.daemon.mark()
    ready.daemon.start()
    ready.daemon.wait_log(r"Gateway namespace %s is ready" % re.escape(ns), timeout=REPAIR_TIMEOUT,
                          since=mark)
    assert snapshot(ns) == before
    with ready.daemon.cond:
        changes = [l for _, l in ready.daemon.lines[mark:] if re.search(r"Gateway namespace \S+: ", l)]
    assert changes == [] and repair_lines(ready.daemon, mark) == []


# ---------------------------------------------------------------------------
# 3. Drift is repaired


DRIFTS = [
    # (what, commands run in the gateway ns, regexes of the log lines naming it)
    ("address", [["addr", "del", gridnode.PUBLIC_V4, "dev", "public"]], [r"address 203\.0\.113\.10/24"]),
    ("default routes", [["-4", "route", "del", "default"], ["-6", "route", "del", "default"]],
     [r"route default via 203\.0\.113\.1\b", r"route default via 2001:db8:1::1\b"]),
    ("public down", [["link", "set", "public", "down"]], [r"\bpublic\b.*\bup\b"]),
    ("overlay route", [["-6", "route", "del", "200::/7"]], [r"route 200::/7"]),
]


@pytest.mark.timeout_s(60)
def test_drift_is_repaired(ready, grid):
    ns = ready.name
    d = ready.daemon
    for what, cmds, rxs in DRIFTS:
        mark = d.mark()
        for c in cmds:  # each fails unless it really changes something
            ip(*c, ns=ns)
        ready.wait_good(REPAIR_TIMEOUT, "repair of %s" % what)
        for rx in rxs:
            line = d.wait_log(r"(?i)repair.*%s" % rx, timeout=REPAIR_TIMEOUT, since=mark)
            print("%s repaired: %s" % (what, line))
        assert d.running

    # The namespace itself: `ip netns del` (unmounts /run/netns/<gw>).
    path = Path(gridnode.NETNS_RUN) / ns
    old_ino = path.stat().st_ino  # the nsfs inode identifies the namespace
    mark = d.mark()
    ip("netns", "del", ns)
    wait_until(lambda: path.exists() and path.stat().st_ino != old_ino, REPAIR_TIMEOUT,
               "a new namespace at %s" % path, detail=ready.explain)
    ready.wait_good(REPAIR_TIMEOUT, "namespace %s re-created" % ns)
    d.wait_log(r"(?i)repair.*namespace %s\b" % re.escape(ns), timeout=REPAIR_TIMEOUT, since=mark)
    # Rebuilt for real: new veths, and the overlay works again from it.
    grid.configure_uplinks()
    assert grid.fetch(ns, timeout=10).strip() == grid.expected_body_prefix() + grid.subnet_host(10)
    assert d.running


@pytest.mark.timeout_s(60)
def test_issue_10_repeated_drift_is_logged_once(ready, grid):
    """The same repair over and over (a flapping link, or anyone on the node
    deleting a route in a loop) is logged once and then counted: "…
    (repeated N times)" when the window ends or at stop."""
    ns = ready.name
    d = ready.daemon
    mark = d.mark()
    for i in range(5):
        ip("-6", "route", "del", "200::/7", ns=ns)
        ready.wait_good(REPAIR_TIMEOUT, "repair %d of the overlay route" % i)
    with d.cond:
        lines = [l for _, l in d.lines[mark:] if re.search(r"drifted, repaired: .*route 200::/7", l)]
    assert len(lines) == 1, lines
    d.stop()
    d.wait_log(r"drifted, repaired: .*route 200::/7.* \(repeated 4 times\)", since=mark)
    d.start()
    ready.wait_good(REPAIR_TIMEOUT, "the namespace after the restart")


# ---------------------------------------------------------------------------
# 4. Switching the gateway off and on


@pytest.mark.timeout_s(40)
def test_toggle_removes_and_rebuilds(ready, grid, env):
    backend = "http://[%s]:%d" % (grid.workload_addr, grid.http_port)
    rep = env.bus.set_named_proxy(WLID, "myapp", [backend])
    assert rep.ok, rep
    ready.reload(enabled="no")
    wait_until(lambda: not (Path(gridnode.NETNS_RUN) / ready.name).exists(),
               REPAIR_TIMEOUT, "namespace %s removed" % ready.name, detail=ready.explain)
    wait_until(lambda: not link_exists(grid.pub_host, grid.node_ns) and not link_exists(grid.ygg_host, grid.node_ns),
               REPAIR_TIMEOUT, "host-side veths removed", detail=ready.explain)
    assert ready.daemon.running
    ready.reload(enabled="yes")
    ready.wait_ready()
    assert ready.problems() == []
    ids = [p["ID"] for p in (env.bus.list_proxies().data or [])]
    assert ids == [WLID]


# ---------------------------------------------------------------------------
# 5. Reachability of a workload from inside the gateway namespace


def test_curl_from_gateway_namespace(ready, grid):
    """Routing sanity: the gateway namespace reaches the workload over the
    overlay, from its own <subnet>::10."""
    body = grid.fetch(ready.name, timeout=10)
    assert body.strip() == grid.expected_body_prefix() + grid.subnet_host(10), body


def test_netns_socket_api_reaches_workload(ready, grid):
    assert NETNS_CONNECT.is_file() and os.access(NETNS_CONNECT, os.X_OK), \
        "netns-connect not built at %s (ninja -C build, or set NETNS_CONNECT)" % NETNS_CONNECT
    grid.fetch(ready.name, timeout=10)  # the overlay path is up
    argv = [str(NETNS_CONNECT), "--netns", "%s/%s" % (gridnode.NETNS_RUN, ready.name),
            "--connect", "[%s]:%d" % (grid.workload_addr, grid.http_port),
            "--send", "GET / HTTP/1.0\r\n\r\n"]
    # Run from the host's network namespace: only the socket API puts the
    # connection into the gateway namespace.
    p = subprocess.run(argv, capture_output=True, timeout=scaled(10))
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, "netns-connect failed (%d): %s %s" % (p.returncode, p.stderr, out)
    assert out.startswith("HTTP/1.0 200"), out
    assert grid.expected_body_prefix() + grid.subnet_host(10) in out, out


# ---------------------------------------------------------------------------
# 6. A namespace that cannot be built: specific errors, daemon keeps serving


def test_missing_macvlan_parent(gateway, env, grid):
    gateway.start(public_link="macvlan:doesnotexist0")
    d = gateway.daemon
    d.wait_log(r"(?i)namespace.*not ready.*doesnotexist0", timeout=REPAIR_TIMEOUT)
    st = env.bus.status()
    assert st.ok, st
    assert d.running
    rep = env.bus.set_named_proxy(WLID, "myapp", ["http://[300:1:2::3]:9000"])
    assert not rep.ok, rep
    assert "namespace" in rep.error and "doesnotexist0" in rep.error, rep.error
    print("SetNamedProxy error: %r" % rep.error)
    assert env.bus.status().ok and d.running

    # Once the parent exists the daemon's own checks build the namespace.
    try:
        # (a veth: this kernel may lack the dummy driver)
        ip("link", "add", "doesnotexist0", "type", "veth", "peer", "name", "dne-peer0", ns=grid.node_ns)
        ip("link", "set", "doesnotexist0", "up", ns=grid.node_ns)
        gateway.wait_good(REPAIR_TIMEOUT, "namespace built on the late macvlan parent")
        info = ip_json("-d", "link", "show", "dev", "public", ns=gateway.name)[0]
        assert info["linkinfo"]["info_kind"] == "macvlan", info
        assert not link_exists(grid.pub_host, grid.node_ns)  # no veth this time
        rep = env.bus.set_named_proxy(WLID, "myapp", ["http://[300:1:2::3]:9000"])
        assert rep.ok, rep
    finally:
        d.stop()
        ip("link", "del", "doesnotexist0", ns=grid.node_ns, check=False)



# ---------------------------------------------------------------------------
# 7. Mycelium beside Yggdrasil (issue 12): the node routes 400::/7 to the
# workload over plain IPv6 (node.py); the gateway needs the link, an address
# from the node's Mycelium subnet and the route.


@pytest.fixture
def ready_myc(gateway):
    """A daemon with both overlays configured, the namespace built and the
    uplinks configured."""
    gateway.mycelium = True
    gateway.start()
    gateway.wait_ready()
    return gateway


def myc_body(grid):
    """What the Mycelium workload answers a request from the gateway's own
    Mycelium address."""
    return grid.expected_body_prefix() + grid.myc_gateway_addr()


def test_mycelium_namespace_after_start(ready_myc, grid):
    ns = ready_myc.name
    assert ready_myc.problems() == []
    assert _addrs(ns, "mycelium") == {gridnode.MYC_ADDRESS}
    rm = _route(ns, "-6", "400::/7")
    assert (_norm(rm["gateway"]), rm["dev"]) == (gridnode.MYC_ROUTER, "mycelium"), rm
    # Yggdrasil is as it was.
    assert _addrs(ns, "ygg") == {"%s/64" % grid.subnet_host(10)}
    ry = _route(ns, "-6", "200::/7")
    assert (_norm(ry["gateway"]), ry["dev"]) == (grid.ygg_router, "ygg"), ry
    assert sysctl(ns, "net.ipv6.conf.mycelium.accept_ra") == "0"
    assert link_exists(grid.myc_host, grid.node_ns) and not link_exists(grid.myc_host)
    # A workload bound only to a 4xx address is reached over the Mycelium
    # link, from the gateway's Mycelium address; the Yggdrasil one too.
    assert grid.fetch(ns, url=grid.myc_workload_url, timeout=10).strip() == myc_body(grid)
    assert grid.fetch(ns, timeout=10).strip() == grid.expected_body_prefix() + grid.subnet_host(10)


MYC_DRIFTS = [
    # (what, commands run in the gateway ns, regexes of the log lines naming it)
    ("mycelium route", [["-6", "route", "del", "400::/7"]], [r"route 400::/7 via 4a1:b2c3:d4e5:f6a7::1\b"]),
    ("mycelium address", [["addr", "del", gridnode.MYC_ADDRESS, "dev", "mycelium"]],
     [r"address 4a1:b2c3:d4e5:f6a7::10/64"]),
    ("mycelium down", [["link", "set", "mycelium", "down"]], [r"\bmycelium\b.*\bup\b"]),
]


@pytest.mark.timeout_s(60)
def test_mycelium_drift_is_repaired(ready_myc, grid):
    ns = ready_myc.name
    d = ready_myc.daemon
    drifts = MYC_DRIFTS + [
        # 400::/7 through the wrong overlay's link.
        ("mycelium route via ygg", [["-6", "route", "replace", "400::/7", "via", grid.ygg_router, "dev", "ygg"]],
         [r"removed route 400::/7 via %s" % re.escape(grid.ygg_router)]),
    ]
    for what, cmds, rxs in drifts:
        mark = d.mark()
        for c in cmds:  # each fails unless it really changes something
            ip(*c, ns=ns)
        ready_myc.wait_good(REPAIR_TIMEOUT, "repair of %s" % what)
        for rx in rxs:
            line = d.wait_log(r"(?i)repair.*%s" % rx, timeout=REPAIR_TIMEOUT, since=mark)
            print("%s repaired: %s" % (what, line))
        assert d.running

    # The link itself deleted: a new veth pair (whose node end the node
    # addresses again), and the overlay works again.
    mark = d.mark()
    ip("link", "del", "mycelium", ns=ns)
    ready_myc.wait_good(REPAIR_TIMEOUT, "the mycelium link re-created")
    d.wait_log(r"(?i)repair.*created veth %s with peer mycelium" % grid.myc_host, timeout=REPAIR_TIMEOUT,
               since=mark)
    grid.configure_uplinks(mycelium=True)
    assert grid.fetch(ns, url=grid.myc_workload_url, timeout=10).strip() == myc_body(grid)
    assert d.running


@pytest.mark.timeout_s(40)
def test_mycelium_toggle_removes_and_rebuilds(ready_myc, grid, env):
    ready_myc.reload(enabled="no")
    wait_until(lambda: not (Path(gridnode.NETNS_RUN) / ready_myc.name).exists(),
               REPAIR_TIMEOUT, "namespace %s removed" % ready_myc.name, detail=ready_myc.explain)
    wait_until(lambda: not any(link_exists(l, grid.node_ns) for l in (grid.pub_host, grid.ygg_host, grid.myc_host)),
               REPAIR_TIMEOUT, "host-side veths removed", detail=ready_myc.explain)
    ready_myc.reload(enabled="yes")
    ready_myc.wait_ready()
    assert ready_myc.problems() == []
    assert grid.fetch(ready_myc.name, url=grid.myc_workload_url, timeout=10).strip() == myc_body(grid)


@pytest.mark.timeout_s(120)
def test_mycelium_added_in_place_and_removed(ready, grid, env):
    """Mycelium added to a running Yggdrasil-only gateway by a SIGHUP: its
    link is checked first (a missing macvlan parent is refused as a whole),
    then built in place, without touching the namespace in use. Removed
    again, in place too; and a restart without its keys removes a link an
    earlier run left."""
    ns = ready.name
    d = ready.daemon
    path = Path(gridnode.NETNS_RUN) / ns
    ino = path.stat().st_ino
    assert "mycelium" not in _links(ns)

    # A link that cannot be made: refused, nothing changes.
    mark = d.mark()
    ready.mycelium = True
    ready.reload(mycelium_link="macvlan:nosuchdev0")
    line = d.wait_log(r"Refusing the new configuration, keeping the old one: .*nosuchdev0", timeout=10,
                      since=mark)
    assert "parent link nosuchdev0 of macvlan mycelium not found" in line, line
    assert env.bus.info().data["Health"]["Reload"]["Result"] == "failed"
    assert path.stat().st_ino == ino and "mycelium" not in _links(ns)

    # The good one: built in place.
    mark = d.mark()
    ready.reload()
    ready.wait_ready()
    assert ready.problems() == []
    assert path.stat().st_ino == ino
    assert grid.fetch(ns, url=grid.myc_workload_url, timeout=10).strip() == myc_body(grid)
    with d.cond:
        torn = [l for _, l in d.lines[mark:] if "deleted" in l or "removed" in l]
    assert torn == []
    # What the file asked for is logged as done, not as drift repaired.
    d.wait_log(r"Gateway namespace %s: added route 400::/7 via" % re.escape(ns), since=mark)
    assert repair_lines(d, mark) == []
    assert env.bus.info().data["Health"]["Reload"]["Result"] == "ok"

    # Removed: in place too, the link with its host end and its route; the
    # rest of the namespace is untouched.
    mark = d.mark()
    ready.mycelium = False
    ready.reload()
    d.wait_log(r"Gateway namespace %s: deleted veth mycelium in namespace %s \(not configured\)"
               % (re.escape(ns), re.escape(ns)), timeout=REPAIR_TIMEOUT, since=mark)
    wait_until(lambda: not link_exists(grid.myc_host, grid.node_ns), REPAIR_TIMEOUT,
               "host end %s removed" % grid.myc_host, detail=ready.explain)
    assert "mycelium" not in _links(ns) and _route(ns, "-6", "400::/7") is None
    assert ready.problems() == []
    with d.cond:
        torn = [l for _, l in d.lines[mark:] if "namespace %s removed" % ns in l or "created namespace" in l]
    assert torn == [] and repair_lines(d, mark) == []
    assert path.stat().st_ino == ino

    # A link left by an earlier run whose file had Mycelium goes at start.
    ready.mycelium = True
    ready.reload()
    ready.wait_ready()
    d.stop()
    assert "mycelium" in _links(ns)
    mark = d.mark()
    ready.mycelium = False
    ready.start()
    d.wait_log(r"Gateway namespace %s: deleted veth mycelium in namespace %s \(not configured\)"
               % (re.escape(ns), re.escape(ns)), timeout=REPAIR_TIMEOUT, since=mark)
    ready.wait_ready()
    assert "mycelium" not in _links(ns) and not link_exists(grid.myc_host, grid.node_ns)
    assert grid.fetch(ns, timeout=10).strip() == grid.expected_body_prefix() + grid.subnet_host(10)

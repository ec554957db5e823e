# SPDX-License-Identifier: Apache-2.0
"""A Zero-OS grid node built from network namespaces, with real Yggdrasil
and a stand-in for Mycelium.

    [node ns]      gatewayd runs here (nsenter --net); yggdrasil A listens on
                   tcp://10.231.0.1:12345 (veth wl0); IPv6 forwarding on;
                   400::/7 routed to the workload over plain IPv6 (veth myc0)
      ├── wl0 ── node0 [workload ns]  yggdrasil B peered to A; an HTTP server
      │                               bound only to B's 200:… address
      ├── myc0 ── myc1 [workload ns]  5c2:1:2:3::2 (a Mycelium address); an
      │                               HTTP server bound only to it
      ├── gp<pid>  host end of the gateway's public veth (the daemon makes it):
      │            203.0.113.1/24, 2001:db8:1::1/64 — the "upstream router"
      ├── gy<pid>  host end of the gateway's ygg veth: <A's subnet>::1/64
      └── gm<pid>  host end of the gateway's mycelium veth (when configured):
                   4a1:b2c3:d4e5:f6a7::1/64, the node's Mycelium subnet
    [gateway ns]   created by gatewayd under /run/netns

Mycelium is not packaged in Debian. What the gateway needs from it is a
route for 400::/7, an address from the node's subnet and the link, so the
node routes 400::/7 to the workload namespace itself, as mycelium's tun
would (docs/topology.md).

See docs/topology.md. Every name carries the test process' PID so that two
runs never meet; everything is removed by name, every process is killed by
its PID, and all traffic stays inside the namespaces made here.

Readiness is event-driven: Yggdrasil and the HTTP server are waited for on
lines of their own output; the daemon (NodeGatewayd) on sd_notify READY=1
through conftest's Gatewayd. Only things that announce nothing (a link that
the daemon creates, a repair) are polled, each with a Deadline.
"""

import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from conftest import Deadline, Gatewayd, scaled

NETNS_RUN = "/run/netns"
YGGDRASIL = shutil.which("yggdrasil") or "/usr/sbin/yggdrasil"
YGGDRASILCTL = shutil.which("yggdrasilctl") or "/usr/sbin/yggdrasilctl"
NSENTER = shutil.which("nsenter") or "/usr/bin/nsenter"
PYTHON = "/usr/bin/python3"

# The node's "upstream" as seen by the gateway (the [gateway] section).
PUBLIC_V4 = "203.0.113.10/24"
GATEWAY_V4 = "203.0.113.1"
PUBLIC_V6 = "2001:db8:1::10/64"
GATEWAY_V6 = "2001:db8:1::1"
# The Yggdrasil peering link between the node and the workload.
NODE_LINK_V4 = "10.231.0.1/24"
WL_LINK_V4 = "10.231.0.2/24"
YGG_PORT = 12345
# Mycelium, stood in for by plain IPv6 routing (400::/7 is Mycelium's).
MYC_SUBNET = "4a1:b2c3:d4e5:f6a7::/64"  # the node's Mycelium /64
MYC_ADDRESS = "4a1:b2c3:d4e5:f6a7::10/64"  # the gateway's (mycelium_address)
MYC_ROUTER = "4a1:b2c3:d4e5:f6a7::1"  # the node's side (mycelium_router)
MYC_WORKLOAD = "5c2:1:2:3::2"  # a workload on another node's subnet: only 400::/7 reaches it
MYC_NODE_LINK = "fd31:0:0:1::1/64"  # node ↔ workload, the stand-in for the overlay
MYC_WL_LINK = "fd31:0:0:1::2/64"


def have_prerequisites():
    """None when this machine can build a node, else the reason it cannot."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, veth, tun)"
    if not (os.path.isfile(YGGDRASIL) and os.access(YGGDRASIL, os.X_OK)):
        return "needs yggdrasil (Debian package 'yggdrasil')"
    return None


# ---------------------------------------------------------------------------
# Commands


def run(argv, check=True, timeout=10, input=None):
    """Run a short command; its output is returned as text. Raises with the
    command's stderr when it fails and @check."""
    p = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=scaled(timeout))
    if check and p.returncode != 0:
        raise AssertionError("%s failed (%d): %s%s" % (" ".join(argv), p.returncode, p.stderr, p.stdout))
    return p


def ip(*args, ns=None, check=True):
    argv = ["ip"] + (["-n", ns] if ns else []) + list(args)
    return run(argv, check=check)


def ip_json(*args, ns=None):
    """`ip -j [-n ns] args...` decoded (a list; [] for an empty dump)."""
    out = ip("-j", *args, ns=ns).stdout.strip()
    return json.loads(out) if out else []


def nsenter_argv(ns, argv):
    """@argv run in network namespace @ns only (mounts untouched; see
    testing-notes.md: `ip netns exec` would hide namespaces made by @argv)."""
    return [NSENTER, "--net=%s/%s" % (NETNS_RUN, ns), *argv]


def in_ns(ns, argv, check=True, timeout=10):
    return run(nsenter_argv(ns, argv), check=check, timeout=timeout)


def netns_exists(name):
    """True when /run/netns/<name> is a live namespace (not an empty file
    left behind by a mount that failed or was made in another mount ns)."""
    p = Path(NETNS_RUN) / name
    if not p.exists():
        return False
    return run(["nsenter", "--net=%s" % p, "true"], check=False).returncode == 0


def netns_del(name):
    """Remove a namespace by name; missing is fine."""
    if (Path(NETNS_RUN) / name).exists():
        ip("netns", "del", name, check=False)


def link_exists(name, ns=None):
    return ip("link", "show", "dev", name, ns=ns, check=False).returncode == 0


def sysctl(ns, key):
    """A sysctl read inside @ns from /proc (per network namespace)."""
    path = "/proc/sys/" + key.replace(".", "/")
    return in_ns(ns, ["cat", path]).stdout.strip()


def wait_until(pred, timeout, what, interval=0.05, detail=None):
    """Poll @pred (returning a truthy value when done) until @timeout
    seconds (scaled); returns the value. For states nothing announces.
    On timeout the message ends with detail() when given."""
    dl = Deadline(timeout, what)
    while True:
        v = pred()
        if v:
            return v
        if dl.expired:
            raise AssertionError("timed out after %.1fs waiting for %s%s"
                                 % (dl.seconds, what, "\n" + str(detail()) if detail else ""))
        time.sleep(min(interval, dl.left()))


# ---------------------------------------------------------------------------
# Processes whose output tells their state


class LineProc:
    """A process (started by us) whose merged stdout/stderr lines are kept,
    mirrored to @logpath, and can be waited for."""

    def __init__(self, name, argv, logpath, env=None):
        self.name = name
        self.argv = argv
        self.logpath = logpath
        self.lines = []
        self.cond = threading.Condition()
        self._log = open(logpath, "a", errors="replace")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=env)
        self._thread = threading.Thread(target=self._reader, name="out-" + name, daemon=True)
        self._thread.start()

    def _reader(self):
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self._log.write(line + "\n")
            self._log.flush()
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_line(self, pattern, timeout=10):
        """The first match of regex @pattern in a line of output."""
        rx = re.compile(pattern)
        dl = Deadline(timeout, "%s to print /%s/" % (self.name, pattern))
        with self.cond:
            while True:
                for line in self.lines:
                    m = rx.search(line)
                    if m:
                        return m
                if self.proc.poll() is not None and not self._thread.is_alive():
                    raise AssertionError("%s exited (%s) before printing /%s/:\n%s"
                                         % (self.name, self.proc.returncode, pattern, self.tail()))
                if dl.expired:
                    raise AssertionError("timed out after %.1fs waiting for %s to print /%s/:\n%s"
                                         % (dl.seconds, self.name, pattern, self.tail()))
                self.cond.wait(min(0.2, dl.left()))

    def tail(self, n=40):
        with self.cond:
            return "\n".join(self.lines[-n:])

    def kill(self):
        """SIGTERM, then SIGKILL; by PID (nsenter execs, so it is ours)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(scaled(5))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._thread.join(scaled(5))
        self._log.close()


class Yggdrasil:
    """One yggdrasil router in a namespace, with its admin socket in @workdir."""

    def __init__(self, label, ns, workdir, ifname, listen=(), peers=()):
        self.label = label
        self.ns = ns
        self.ifname = ifname
        self.workdir = Path(workdir)
        self.admin = str(self.workdir / ("ygg-%s.sock" % label))
        self.conf = self.workdir / ("ygg-%s.json" % label)
        c = json.loads(run([YGGDRASIL, "-genconf", "-json"]).stdout)
        c.update({
            "Listen": list(listen),
            "Peers": list(peers),
            "AdminListen": "unix://" + self.admin,
            "IfName": ifname,
            "MulticastInterfaces": [],
            "NodeInfo": None,
        })
        self.conf.write_text(json.dumps(c, indent=2))
        self.proc = None
        self.address = None  # its own 200:… address
        self.subnet = None  # an ipaddress.IPv6Network (/64 under 300::/8)

    def start(self, timeout=10):
        self.proc = LineProc("yggdrasil-" + self.label,
                             nsenter_argv(self.ns, [YGGDRASIL, "-useconffile", str(self.conf)]),
                             str(self.workdir / ("ygg-%s.log" % self.label)))
        self.address = self.proc.wait_line(r"Your IPv6 address is (\S+)", timeout).group(1)
        self.subnet = ipaddress.IPv6Network(self.proc.wait_line(r"Your IPv6 subnet is (\S+)", timeout).group(1))
        # The tun interface has its address once it is up (printed before
        # "Your IPv6 ..." lines, but check the kernel, not the log).
        wait_until(lambda: self._has_address(), timeout, "%s on %s" % (self.address, self.ifname))
        return self

    def _has_address(self):
        for a in ip_json("addr", "show", "dev", self.ifname, ns=self.ns):
            for ai in a.get("addr_info", []):
                if ai.get("local") == self.address and not ai.get("tentative"):
                    return True
        return False

    def wait_peer(self, timeout=10):
        """A line 'Connected inbound|outbound TCP: <addr>@…'; returns <addr>."""
        return self.proc.wait_line(r"Connected (?:inbound|outbound) TCP: ([0-9a-f:]+)@", timeout).group(1)

    def getself(self):
        """yggdrasilctl getSelf (JSON), a second source for address/subnet."""
        out = run([YGGDRASILCTL, "-json", "-endpoint", "unix://" + self.admin, "getSelf"]).stdout
        return json.loads(out)

    def stop(self):
        if self.proc:
            self.proc.kill()


HTTP_SERVER = r"""
import errno, socket, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
addr, token = sys.argv[1], sys.argv[2]

class H(BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("gridnode-ok %s client=%s\n" % (token, self.client_address[0])).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, fmt, *a):
        sys.stderr.write("request from %s: %s\n" % (self.client_address[0], fmt % a))

class S(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True

end = time.monotonic() + float(sys.argv[3])
while True:  # the overlay address may still be settling
    try:
        srv = S((addr, 0), H)
        break
    except OSError as e:
        if e.errno != errno.EADDRNOTAVAIL or time.monotonic() > end:
            raise
        time.sleep(0.05)
print("LISTENING %d" % srv.server_address[1], flush=True)
srv.serve_forever()
"""


# ---------------------------------------------------------------------------
# The daemon, run inside the node namespace


class NodeGatewayd(Gatewayd):
    """conftest's Gatewayd (same sd_notify readiness, logs, restart) run as
    `nsenter --net=/run/netns/<node> gatewayd …`. nsenter execs, so the PID
    that SIGHUP/SIGTERM go to is gatewayd's own."""

    def __init__(self, node_ns, workdir, sockdir, redis_server):
        super().__init__(workdir, sockdir, redis_server)
        self.node_ns = node_ns

    def argv(self, workers=None, extra=()):
        return nsenter_argv(self.node_ns, super().argv(workers, extra))


# ---------------------------------------------------------------------------
# The node


class GridNode:
    """The topology above. up() builds it (≈3 s), down() removes it by name.

    Names: node ns ``gwt-node-<pid>``, workload ns ``gwt-wl-<pid>``,
    gateway namespaces ``gwt-gw-<pid>-<n>`` (new_gateway_name()), host-side
    veth ends ``gp<pid>`` / ``gy<pid>`` / ``gm<pid>`` (≤ 9 characters)."""

    def __init__(self, workdir, tag=None):
        self.tag = str(tag if tag is not None else os.getpid())
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.node_ns = "gwt-node-" + self.tag
        self.wl_ns = "gwt-wl-" + self.tag
        self.pub_host = "gp" + self.tag
        self.ygg_host = "gy" + self.tag
        self.myc_host = "gm" + self.tag
        assert max(len(self.pub_host), len(self.ygg_host), len(self.myc_host)) <= 15
        self._gw_seq = 0
        self.ygg_a = self.ygg_b = self.http = self.myc_http = None
        self.http_port = self.myc_http_port = None
        self.token = "tok%s-%d" % (self.tag, int(time.time()))
        self.made_ns = []

    # -- names and addresses ------------------------------------------------
    def new_gateway_name(self):
        self._gw_seq += 1
        return "gwt-gw-%s-%d" % (self.tag, self._gw_seq)

    @property
    def subnet(self):
        return self.ygg_a.subnet

    def subnet_host(self, n):
        """<A's subnet>::<n> as text (n is written in hex, like ::10)."""
        return str(self.subnet.network_address + int(str(n), 16))

    @property
    def ygg_address(self):
        """The gateway's overlay address (with prefix length)."""
        return "%s/64" % self.subnet_host(10)

    @property
    def ygg_router(self):
        return self.subnet_host(1)

    @property
    def workload_addr(self):
        return self.ygg_b.address

    @property
    def workload_url(self):
        return "http://[%s]:%d/" % (self.workload_addr, self.http_port)

    @property
    def myc_workload_url(self):
        """The HTTP server on the workload's Mycelium address only."""
        return "http://[%s]:%d/" % (MYC_WORKLOAD, self.myc_http_port)

    @staticmethod
    def myc_gateway_addr():
        """The gateway's Mycelium address, without the prefix length."""
        return MYC_ADDRESS.split("/")[0]

    def expected_body_prefix(self):
        return "gridnode-ok %s client=" % self.token

    # -- build / remove ----------------------------------------------------------
    def _add_ns(self, name):
        netns_del(name)  # a leftover of a crashed run of this very PID
        ip("netns", "add", name)
        self.made_ns.append(name)
        ip("link", "set", "lo", "up", ns=name)

    def up(self, timeout=20):
        dl = Deadline(timeout, "grid node")
        self._add_ns(self.node_ns)
        self._add_ns(self.wl_ns)
        ip("link", "add", "wl0", "type", "veth", "peer", "name", "node0", "netns", self.wl_ns, ns=self.node_ns)
        ip("addr", "add", NODE_LINK_V4, "dev", "wl0", ns=self.node_ns)
        ip("link", "set", "wl0", "up", ns=self.node_ns)
        ip("addr", "add", WL_LINK_V4, "dev", "node0", ns=self.wl_ns)
        ip("link", "set", "node0", "up", ns=self.wl_ns)
        in_ns(self.node_ns, ["sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1"])

        # A listens first: a peer that could not connect retries only after
        # about a minute.
        self.ygg_a = Yggdrasil("a", self.node_ns, self.workdir, "ygg-a",
                               listen=["tcp://%s:%d" % (NODE_LINK_V4.split("/")[0], YGG_PORT)])
        self.ygg_a.start(dl.left())
        self.ygg_b = Yggdrasil("b", self.wl_ns, self.workdir, "ygg-b",
                               peers=["tcp://%s:%d" % (NODE_LINK_V4.split("/")[0], YGG_PORT)])
        self.ygg_b.start(dl.left())
        assert self.ygg_b.wait_peer(dl.left()) == self.ygg_a.address
        assert self.ygg_a.wait_peer(dl.left()) == self.ygg_b.address
        me = self.ygg_a.getself()
        assert me.get("subnet") == str(self.subnet), (me, self.subnet)

        self.http = LineProc("http", nsenter_argv(self.wl_ns, [PYTHON, "-u", "-c", HTTP_SERVER,
                                                               self.workload_addr, self.token, "10"]),
                             str(self.workdir / "http.log"))
        self.http_port = int(self.http.wait_line(r"^LISTENING (\d+)$", dl.left()).group(1))

        # The overlay carries HTTP from the node itself (warms the path too).
        body = self.fetch(self.node_ns, timeout=dl.left())
        assert body.startswith(self.expected_body_prefix()), body

        # Mycelium's part: 400::/7 between the node and the workload over a
        # veth of plain IPv6, in both directions; the gateway's Mycelium
        # subnet is on gm<pid> (configure_uplinks()), more specific than /7.
        ip("link", "add", "myc0", "type", "veth", "peer", "name", "myc1", "netns", self.wl_ns, ns=self.node_ns)
        ip("addr", "add", MYC_NODE_LINK, "dev", "myc0", "nodad", ns=self.node_ns)
        ip("link", "set", "myc0", "up", ns=self.node_ns)
        ip("addr", "add", MYC_WL_LINK, "dev", "myc1", "nodad", ns=self.wl_ns)
        ip("addr", "add", MYC_WORKLOAD + "/64", "dev", "myc1", "nodad", ns=self.wl_ns)
        ip("link", "set", "myc1", "up", ns=self.wl_ns)
        ip("-6", "route", "add", "400::/7", "via", MYC_WL_LINK.split("/")[0], "dev", "myc0", ns=self.node_ns)
        ip("-6", "route", "add", "400::/7", "via", MYC_NODE_LINK.split("/")[0], "dev", "myc1", ns=self.wl_ns)
        self.myc_http = LineProc("http-myc", nsenter_argv(self.wl_ns, [PYTHON, "-u", "-c", HTTP_SERVER,
                                                                       MYC_WORKLOAD, self.token, "10"]),
                                 str(self.workdir / "http-myc.log"))
        self.myc_http_port = int(self.myc_http.wait_line(r"^LISTENING (\d+)$", dl.left()).group(1))
        body = self.fetch(self.node_ns, url=self.myc_workload_url, timeout=dl.left())
        assert body.startswith(self.expected_body_prefix()), body
        return self

    def down(self):
        """Kill our processes by PID, remove our namespaces by name."""
        errors = []
        for p in (self.myc_http, self.http, self.ygg_b, self.ygg_a):
            try:
                if isinstance(p, Yggdrasil):
                    p.stop()
                elif p is not None:
                    p.kill()
            except Exception as e:  # noqa: BLE001 - keep tearing down
                errors.append(e)
        for name in reversed(self.made_ns):
            netns_del(name)
        self.made_ns = []
        if errors:
            raise errors[0]

    # -- traffic -----------------------------------------------------------
    def fetch(self, ns, url=None, timeout=10):
        """GET the workload from namespace @ns with curl; retried until
        @timeout (the first packets over a fresh overlay path may be lost).
        Returns the body."""
        url = url or self.workload_url
        dl = Deadline(timeout, "GET %s from %s" % (url, ns))
        last = None
        while True:
            p = in_ns(ns, ["curl", "-g", "-sS", "--max-time", "2", url], check=False,
                      timeout=5)
            if p.returncode == 0:
                return p.stdout
            last = p.stderr.strip()
            if dl.expired:
                raise AssertionError("GET %s from %s failed for %.1fs: %s\nhttp server:\n%s"
                                     % (url, ns, dl.seconds, last, self.http.tail()))
            time.sleep(min(0.1, dl.left()))

    # -- the gateway's side ---------------------------------------------------
    def namespace_config(self, gw_name, mycelium=False, **over):
        """The daemon's [namespace] section for gateway namespace @gw_name;
        with the Mycelium link too when @mycelium."""
        sec = {
            "name": gw_name,
            "netns_dir": NETNS_RUN,
            "public_link": "veth:" + self.pub_host,
            "ygg_link": "veth:" + self.ygg_host,
            "ygg_address": self.ygg_address,
            "ygg_router": self.ygg_router,
        }
        if mycelium:
            sec.update({
                "mycelium_link": "veth:" + self.myc_host,
                "mycelium_address": MYC_ADDRESS,
                "mycelium_router": MYC_ROUTER,
            })
        sec.update(over)
        return sec

    def gateway_config(self, gw_name, enabled="yes", mycelium=False, **ns_over):
        """conftest-style overrides for a daemon with a gateway namespace."""
        return {
            "gateway": {
                "enabled": enabled,
                "public_config": "file",
                "public_ipv4": PUBLIC_V4,
                "gateway_ipv4": GATEWAY_V4,
                "public_ipv6": PUBLIC_V6,
                "gateway_ipv6": GATEWAY_V6,
                "domain": "gw1.example.net",
            },
            "names": {"validation": "off"},
            "namespace": self.namespace_config(gw_name, mycelium, **ns_over),
        }

    def configure_uplinks(self, timeout=10, mycelium=False):
        """Give the daemon-made host-side veth ends the node's side of the
        addressing (idempotent: after a rebuild they are new links); the
        Mycelium one too when @mycelium."""
        links = [self.pub_host, self.ygg_host] + ([self.myc_host] if mycelium else [])
        wait_until(lambda: all(link_exists(l, self.node_ns) for l in links),
                   timeout, "host-side veths %s in %s" % ("/".join(links), self.node_ns))
        n = self.node_ns
        ip("addr", "replace", GATEWAY_V4 + "/24", "dev", self.pub_host, ns=n)
        ip("addr", "replace", GATEWAY_V6 + "/64", "dev", self.pub_host, "nodad", ns=n)
        ip("link", "set", self.pub_host, "up", ns=n)
        ip("addr", "replace", "%s/64" % self.ygg_router, "dev", self.ygg_host, "nodad", ns=n)
        ip("link", "set", self.ygg_host, "up", ns=n)
        if mycelium:
            ip("addr", "replace", "%s/64" % MYC_ROUTER, "dev", self.myc_host, "nodad", ns=n)
            ip("link", "set", self.myc_host, "up", ns=n)

    def remove_gateway(self, gw_name):
        """Remove what a daemon made for @gw_name, by name (the daemon must
        be stopped first, or it would repair it)."""
        for link in (self.pub_host, self.ygg_host, self.myc_host):
            if link_exists(link, self.node_ns):
                ip("link", "del", link, ns=self.node_ns, check=False)
        netns_del(gw_name)

    def make_daemon(self, harness):
        """Swap @harness' (conftest.Harness) daemon for one that runs in the
        node namespace; same state dir, notify socket and log handling."""
        old = harness.daemon
        d = NodeGatewayd(self.node_ns, old.workdir, old.sockdir, old.redis)
        old.close()
        harness.daemon = d
        return d

    # -- a gateway namespace made by hand (checks the topology alone) --------
    def make_handmade_gateway(self, name, host_link):
        """The ygg half of a gateway namespace, built with ip(8) exactly as
        gatewayd should build it: veth <host_link> (node side, <subnet>::1)
        ↔ ygg (<subnet>::10/64, 200::/7 via <subnet>::1)."""
        netns_del(name)
        ip("netns", "add", name)
        ip("link", "set", "lo", "up", ns=name)
        ip("link", "add", host_link, "type", "veth", "peer", "name", "ygg", "netns", name, ns=self.node_ns)
        ip("addr", "add", "%s/64" % self.ygg_router, "dev", host_link, "nodad", ns=self.node_ns)
        ip("link", "set", host_link, "up", ns=self.node_ns)
        ip("addr", "add", self.ygg_address, "dev", "ygg", "nodad", ns=name)
        ip("link", "set", "ygg", "up", ns=name)
        ip("-6", "route", "add", "200::/7", "via", self.ygg_router, "dev", "ygg", ns=name)

    def remove_handmade_gateway(self, name, host_link):
        if link_exists(host_link, self.node_ns):
            ip("link", "del", host_link, ns=self.node_ns, check=False)
        netns_del(name)


# ---------------------------------------------------------------------------
# Snapshots of a namespace


def snapshot(ns):
    """Every link, address and route of @ns as `ip -j` gives them, plus the
    forwarding sysctls: equal snapshots mean nothing changed."""
    links = ip_json("link", "show", ns=ns)
    for li in links:
        li.pop("stats64", None)
        li.pop("stats", None)
    return {
        "link": links,
        "addr": ip_json("addr", "show", ns=ns),
        "route4": ip_json("-4", "route", "show", "table", "all", ns=ns),
        "route6": ip_json("-6", "route", "show", "table", "all", ns=ns),
        "ip_forward": sysctl(ns, "net.ipv4.ip_forward"),
        "forwarding6": sysctl(ns, "net.ipv6.conf.all.forwarding"),
    }

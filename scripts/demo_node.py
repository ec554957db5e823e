#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The grid node of scripts/demo.sh, built by tests/e2e/node.py and
tests/e2e/acme_env.py (used as libraries, unchanged; see docs/topology.md):

    <node ns>      yggdrasil A (listens on 10.231.0.1:12345); gatewayd runs
                   here, started by demo.sh; unbound on :53, the node's
                   resolver, serving the parent zones of <domain> and of the
                   FQDNs with the farmer's records (docs/dns-delegation.md)
                   and following the delegation of _acme-challenge.<domain>
                   to gatewayd's responder; pebble (ACME on :14000, its
                   root at <workdir>/acme/pebble/pebble-root.pem)
    <wl ns>        yggdrasil B peered to A; an HTTP server and an HTTPS server
                   (its own certificate for <tls name>, from a throwaway CA
                   written to <workdir>/ca.pem) bound only to B's 200:… address
    <gw ns>        made by gatewayd; its host-side veth ends <pub>/<ygg> get
                   their addresses from here once gatewayd has made them

It runs as a coprocess of demo.sh and reports on stdout, one line each:

    VAR <NAME> <value>   facts about the node (addresses, port, PIDs, the ACME
                         directory and root), then
    READY                the node is up, the workload answers over Yggdrasil,
                         unbound and pebble serve
    UPLINKS              the gateway's host-side veth ends are addressed
    PATH <reply>         the workload answered a GET from inside <gw ns>
    KEPT                 after a KEEP line on stdin (demo.sh --keep): from
                         now on its stdout and stderr go to
                         <workdir>/helper.log and EOF on stdin is ignored
    ERR <message>        something failed; the node is torn down, exit 1

Then it waits for SIGTERM, SIGHUP or EOF on stdin (before KEEP) and tears
everything down: its processes (pebble, unbound, the workloads, yggdrasil)
by PID, then the gateway's links and all namespaces by name (gatewayd must
be stopped first, or it would repair what is removed). It stays the parent
of those processes: they log through its pipes.
SIGINT is ignored: on Ctrl-C demo.sh's trap stops gatewayd first and then
this process."""

import argparse
import os
import signal
import sys
import traceback
from pathlib import Path

E2E = Path(__file__).resolve().parent.parent / "tests" / "e2e"
sys.path.insert(0, str(E2E))

import acme_env  # noqa: E402
import node as gridnode  # noqa: E402
from node import PYTHON, GridNode, LineProc, link_exists, netns_del, nsenter_argv  # noqa: E402
from tlsback import CA  # noqa: E402

TLSBACK = str(E2E / "tlsback.py")


class DemoNode(GridNode):
    """GridNode with the demo's names instead of the tests' gwt-*-<pid>."""

    def __init__(self, workdir, node_ns, wl_ns, gw_ns, pub_link, ygg_link):
        super().__init__(workdir, tag="demo")
        self.node_ns, self.wl_ns, self.gw_ns = node_ns, wl_ns, gw_ns
        self.pub_host, self.ygg_host = pub_link, ygg_link
        for link in (pub_link, ygg_link):
            assert 0 < len(link) <= 15, "link name too long: %s" % link

    def new_gateway_name(self):
        return self.gw_ns

    def start_tls(self, tls_name, timeout):
        """The passthrough workload: HTTPS on B's overlay address with a
        certificate for @tls_name that only the workload holds."""
        ca = CA("gatewayd demo CA")
        crt, key = ca.issue(tls_name).write(str(self.workdir), "tls-workload")
        self.tls_ca = str(self.workdir / "ca.pem")
        Path(self.tls_ca).write_bytes(ca.pem)
        self.tls = LineProc("https", nsenter_argv(self.wl_ns, [PYTHON, "-u", TLSBACK, "serve",
                                                                self.workload_addr, crt, key,
                                                                str(timeout), self.token]),
                            str(self.workdir / "https.log"))
        self.tls_port = int(self.tls.wait_line(r"^LISTENING (\d+)$", timeout).group(1))

    def start_acme(self, domain, fqdns, resolver_dir, timeout):
        """unbound and pebble in the node namespace. The resolver serves the
        parent zones with the records docs/dns-delegation.md tells a farmer
        to create for @domain (A/AAAA, a wildcard CNAME, the NS delegation
        of _acme-challenge) and an A/AAAA record for each FQDN in @fqdns,
        all at the gateway's public addresses. unbound's files go to
        @resolver_dir (below /var/lib/unbound: Debian's AppArmor profile for
        unbound, enforced where AppArmor is on, allows nothing else)."""
        zones = sorted({n.split(".", 1)[1] for n in [domain, *fqdns]})
        self.acme = acme_env.AcmeEnv(self.node_ns, self.workdir / "acme", zones=zones, resolver_dir=resolver_dir)
        r = self.acme.resolver
        r.point(domain)
        r.set("*." + domain, "CNAME", domain)
        r.set("_acme-challenge." + domain, "NS", domain)
        for f in fqdns:
            r.point(f)
        self.acme.start(timeout)
        # The zone files unbound serves: the domain's parent zone, the first FQDN's.
        self.zone_files = [str(r._zone_file(r.zone_of(n))) for n in [domain, *fqdns]]

    def down(self):
        try:
            if getattr(self, "acme", None) is not None:
                self.acme.stop()
                self.acme = None
        finally:
            if getattr(self, "tls", None) is not None:
                self.tls.kill()
                self.tls = None
            super().down()

    def remove_leftovers(self):
        """What a run killed before its cleanup may have left, by name."""
        for ns in (self.gw_ns, self.wl_ns, self.node_ns):
            netns_del(ns)

    def teardown(self):
        try:
            self.down()  # processes by PID; node and workload ns by name
        finally:
            if link_exists(self.pub_host, self.node_ns) or link_exists(self.ygg_host, self.node_ns):
                self.remove_gateway(self.gw_ns)
            netns_del(self.gw_ns)
            for ns in (self.wl_ns, self.node_ns):
                netns_del(ns)


class Stop(Exception):
    pass


def keep(logpath):
    """Say KEPT, then write to @logpath instead of demo.sh's pipe and
    terminal: both go away with demo.sh."""
    say("KEPT")
    fd = os.open(logpath, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    for target in (1, 2):
        os.dup2(fd, target)
    os.close(fd)


def say(*words):
    print(*words, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--node-ns", required=True)
    ap.add_argument("--wl-ns", required=True)
    ap.add_argument("--gw-ns", required=True)
    ap.add_argument("--pub-link", required=True)
    ap.add_argument("--ygg-link", required=True)
    ap.add_argument("--tls-name", required=True, help="the name the HTTPS workload has a certificate for")
    ap.add_argument("--domain", required=True, help="the gateway domain (its records go to the resolver)")
    ap.add_argument("--fqdn", action="append", default=[], help="an FQDN pointed at the gateway (repeatable)")
    ap.add_argument("--resolver-dir", required=True, help="unbound's files (below /var/lib/unbound for AppArmor)")
    ap.add_argument("--timeout", type=float, default=20, help="seconds for each step")
    a = ap.parse_args()

    why_not = gridnode.have_prerequisites() or acme_env.have_prerequisites(a.resolver_dir)
    if why_not:
        say("ERR", why_not)
        return 1

    def on_signal(signum, frame):
        raise Stop(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    g = DemoNode(a.workdir, a.node_ns, a.wl_ns, a.gw_ns, a.pub_link, a.ygg_link)
    rc = 0
    try:
        g.remove_leftovers()
        g.up(a.timeout)
        g.start_tls(a.tls_name, a.timeout)
        g.start_acme(a.domain, a.fqdn, a.resolver_dir, a.timeout)
        env = g.acme
        for k, v in (("NODE_YGG_ADDRESS", g.ygg_a.address), ("NODE_YGG_SUBNET", g.subnet),
                     ("WORKLOAD_ADDRESS", g.workload_addr), ("WORKLOAD_PORT", g.http_port),
                     ("GW_YGG_ADDRESS", g.ygg_address), ("GW_YGG_ROUTER", g.ygg_router),
                     ("YGG_A_PID", g.ygg_a.proc.proc.pid), ("YGG_B_PID", g.ygg_b.proc.proc.pid),
                     ("HTTP_PID", g.http.proc.pid), ("HTTP_TOKEN", g.token),
                     ("TLS_PORT", g.tls_port), ("TLS_PID", g.tls.proc.pid), ("TLS_CA", g.tls_ca),
                     ("UNBOUND_PID", env.resolver.proc.proc.pid), ("PEBBLE_PID", env.pebble.proc.proc.pid),
                     ("RESOLVER", env.resolver.address), ("ZONE_FILE", g.zone_files[0]),
                     ("FQDN_ZONE_FILE", g.zone_files[-1]),
                     ("ACME_DIRECTORY", env.pebble.directory_url), ("ACME_CA", env.https.ca),
                     ("PEBBLE_ROOT", env.root_file()), ("PEBBLE_LOG", env.pebble.proc.logpath),
                     ("UNBOUND_LOG", env.resolver.proc.logpath)):
            say("VAR", k, v)
        say("READY")
        # gatewayd (started by demo.sh now) makes the veth pairs.
        g.configure_uplinks(a.timeout)
        say("UPLINKS")
        # Retried until the deadline: the gateway's overlay address may still
        # be in DAD, and the first packets over a fresh path may be lost.
        say("PATH", g.fetch(g.gw_ns, timeout=a.timeout).strip())
        # Until EOF (demo.sh is gone) or a signal; or KEEP: demo.sh goes,
        # the node stays until SIGTERM (demo.sh --stop).
        for line in sys.stdin:
            if line.strip() == "KEEP":
                keep(Path(a.workdir) / "helper.log")
                while True:
                    signal.pause()
    except Stop:
        pass
    except BrokenPipeError:
        pass  # demo.sh is gone
    except Exception as e:  # noqa: BLE001 - report, then tear down
        traceback.print_exc()
        msg = " ".join(str(e).split())[:400]
        try:
            say("ERR", msg or type(e).__name__)
        except BrokenPipeError:
            pass
        rc = 1
    finally:
        # A second SIGTERM must not cut the teardown short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        try:
            g.teardown()
        except Exception:  # noqa: BLE001
            traceback.print_exc()
            rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())

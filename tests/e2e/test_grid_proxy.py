# SPDX-License-Identifier: Apache-2.0
"""The proxy on a grid node (node.py, docs/topology.md): gatewayd in the node
namespace manages the gateway namespace and listens inside it; a TLS backend
is bound only to a real Yggdrasil address in the workload namespace; a
client in the node namespace connects to the gateway's public address with
SNI and gets the backend's certificate and bytes over the overlay, and the
bus Metrics count exactly the raw bytes the client sent and received.

A Mycelium backend (node.py routes 400::/7 to the workload) is served the
same way.

Needs root and yggdrasil; skipped otherwise."""

import json
import os
import ssl
import sys

import pytest

import node as gridnode
from conftest import Deadline, scaled
from node import LineProc, in_ns, nsenter_argv
from tlsback import CA

_why_not = gridnode.have_prerequisites()
pytestmark = pytest.mark.skipif(_why_not is not None, reason=_why_not or "")

TLSBACK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tlsback.py")
NAME = "grid"
FQDN = NAME + ".gw1.example.net"  # a name workload: the fake DNS is not reachable from the node
WLID = "37-7-grid"
HTTPS_PORT = 8443  # inside the gateway namespace: nothing else listens there
PUBLIC_ADDR = gridnode.PUBLIC_V4.split("/")[0]


@pytest.fixture(scope="module")
def tls_backend(grid):
    """A TLS echo server on the workload's Yggdrasil address only."""
    ca = CA()
    crt, key = ca.issue(FQDN).write(str(grid.workdir), "grid-backend")
    ca_path = grid.workdir / "grid-ca.pem"
    ca_path.write_bytes(ca.pem)
    proc = LineProc("tls-backend", nsenter_argv(grid.wl_ns, [sys.executable, "-u", TLSBACK, "serve",
                                                             grid.workload_addr, crt, key, "10"]),
                    str(grid.workdir / "tls-backend.log"))
    try:
        port = int(proc.wait_line(r"^LISTENING (\d+)$", 15).group(1))
        leaf_der = ssl.PEM_cert_to_DER_cert(open(crt).read())
        yield {"backend": "[%s]:%d" % (grid.workload_addr, port), "ca": str(ca_path), "der": leaf_der}
    finally:
        proc.kill()


def client(grid, sni, n, timeout=20):
    """A TLS client in the node namespace to the gateway's public address,
    retried until @timeout (the namespace and listeners come up
    asynchronously). Returns its JSON result."""
    dl = Deadline(timeout, "a passthrough connection for %s" % sni)
    while True:
        p = in_ns(grid.node_ns, [sys.executable, TLSBACK, "client", PUBLIC_ADDR, str(HTTPS_PORT), sni,
                                 grid.tls_ca, str(n)], check=False, timeout=15)
        if p.returncode == 0:
            return json.loads(p.stdout)
        if dl.expired:
            raise AssertionError("no passthrough connection for %s: %s%s" % (sni, p.stdout, p.stderr))


def test_passthrough_over_yggdrasil(env, grid, tls_backend):
    grid.tls_ca = tls_backend["ca"]
    gw_name = grid.new_gateway_name()
    daemon = grid.make_daemon(env)
    cfg = grid.gateway_config(gw_name)
    cfg["proxy"] = {"address": "::", "https_port": str(HTTPS_PORT), "http_port": "0"}
    try:
        env.start_daemon(cfg)
        grid.configure_uplinks(timeout=15)
        assert env.deploy_name(WLID, NAME, [tls_backend["backend"]], tls_passthrough=True) == FQDN
        r = client(grid, FQDN, 20000, timeout=scaled(20))
        # The backend's certificate, through the gateway namespace's ygg link.
        assert bytes.fromhex(r["peer"]) == tls_backend["der"]
        dl = Deadline(10, "Metrics for %s" % WLID)
        while True:
            m = env.bus.metrics().data
            got = (m["Request"].get(WLID), m["Response"].get(WLID))
            if got == (r["sent"], r["received"]):
                break
            if dl.expired:
                raise AssertionError("Metrics %r, client %r" % (got, r))
        # An unknown name is closed, not sent to some default.
        p = in_ns(grid.node_ns, [sys.executable, TLSBACK, "client", PUBLIC_ADDR, str(HTTPS_PORT),
                                 "nobody.example.org", grid.tls_ca, "10"], check=False, timeout=15)
        assert p.returncode == 1 and p.stdout.startswith("ERROR"), p.stdout
        assert "Proxy serving" in daemon.log_text()

        # The namespace deleted from outside: gatewayd makes a new one and
        # listens in it (the old listeners hold only the dead namespace).
        mark = daemon.mark()
        gridnode.netns_del(gw_name)
        daemon.wait_log(r"Gateway namespace %s.*created namespace" % gw_name, timeout=15, since=mark)
        daemon.wait_log(r"Proxy serving https \[::\]:%d in /run/netns/%s" % (HTTPS_PORT, gw_name),
                        timeout=15, since=mark)
        grid.configure_uplinks(timeout=15)
        r2 = client(grid, FQDN, 100, timeout=scaled(20))
        assert bytes.fromhex(r2["peer"]) == tls_backend["der"]
    finally:
        env.daemon.stop()
        grid.remove_gateway(gw_name)


def test_terminated_over_yggdrasil(env, grid):
    """curl -k through the gateway's :443 (its self-signed wildcard
    certificate) to the HTTP workload on Yggdrasil; :80 redirects."""
    gw_name = grid.new_gateway_name()
    daemon = grid.make_daemon(env)
    cfg = grid.gateway_config(gw_name)
    cfg["proxy"] = {"address": "::", "https_port": str(HTTPS_PORT), "http_port": "8080"}
    host = "web.gw1.example.net"
    try:
        env.start_daemon(cfg)
        grid.configure_uplinks(timeout=15)
        assert env.deploy_name("37-8-web", "web", [grid.workload_url.rstrip("/")]) == host
        dl = Deadline(20, "GET https://%s/ through the gateway" % host)
        while True:
            p = in_ns(grid.node_ns, ["curl", "-sS", "-k", "--max-time", "3", "--resolve",
                                     "%s:%d:%s" % (host, HTTPS_PORT, PUBLIC_ADDR),
                                     "https://%s:%d/" % (host, HTTPS_PORT)], check=False, timeout=10)
            if p.returncode == 0:
                break
            if dl.expired:
                raise AssertionError("curl failed: %s\n%s" % (p.stderr, daemon.log_tail(30)))
        # The workload saw the gateway's overlay address as its client.
        assert p.stdout.strip() == grid.expected_body_prefix() + grid.subnet_host(10), p.stdout
        s = in_ns(grid.node_ns, ["sh", "-c", "openssl s_client -connect %s:%d -servername %s </dev/null "
                                 "2>/dev/null | openssl x509 -noout -subject"
                                 % (PUBLIC_ADDR, HTTPS_PORT, host)], check=False, timeout=20)
        assert "*.gw1.example.net" in s.stdout, s.stdout
        r = in_ns(grid.node_ns, ["curl", "-sS", "--max-time", "5", "-o", "/dev/null", "-w",
                                 "%{http_code} %{redirect_url}", "--resolve",
                                 "%s:8080:%s" % (host, PUBLIC_ADDR), "http://%s:8080/x?y=1" % host],
                  check=False, timeout=10)
        assert r.stdout.split()[0] == "308", r.stdout
        m = env.bus.metrics().data
        assert m["Request"]["37-8-web"] > 0 and m["Response"]["37-8-web"] > 0, m
    finally:
        env.daemon.stop()
        grid.remove_gateway(gw_name)


def test_terminated_over_mycelium(env, grid):
    """Issue 12: a workload whose backend is bound only to a Mycelium
    (400::/7) address is served through the gateway: the gateway namespace
    reaches it over its Mycelium link, from its own Mycelium address."""
    gw_name = grid.new_gateway_name()
    daemon = grid.make_daemon(env)
    cfg = grid.gateway_config(gw_name, mycelium=True)
    cfg["proxy"] = {"address": "::", "https_port": str(HTTPS_PORT), "http_port": "0"}
    host = "myc.gw1.example.net"
    try:
        env.start_daemon(cfg)
        grid.configure_uplinks(timeout=15, mycelium=True)
        assert env.deploy_name("37-9-myc", "myc", [grid.myc_workload_url.rstrip("/")]) == host
        dl = Deadline(20, "GET https://%s/ through the gateway" % host)
        while True:
            p = in_ns(grid.node_ns, ["curl", "-sS", "-k", "--max-time", "3", "--resolve",
                                     "%s:%d:%s" % (host, HTTPS_PORT, PUBLIC_ADDR),
                                     "https://%s:%d/" % (host, HTTPS_PORT)], check=False, timeout=10)
            if p.returncode == 0 and p.stdout.startswith("gridnode-ok"):
                break
            if dl.expired:
                raise AssertionError("curl failed: %s %s\n%s" % (p.stdout, p.stderr, daemon.log_tail(30)))
        assert p.stdout.strip() == grid.expected_body_prefix() + grid.myc_gateway_addr(), p.stdout
        m = env.bus.metrics().data
        assert m["Request"]["37-9-myc"] > 0 and m["Response"]["37-9-myc"] > 0, m
    finally:
        env.daemon.stop()
        grid.remove_gateway(gw_name)

# SPDX-License-Identifier: Apache-2.0
"""Trusted certificates from a real ACME server (issue 8): Debian's pebble
and a real recursive resolver (unbound) that follows the farmer's
delegation of `_acme-challenge.<domain>` to the gateway's public address,
all inside the grid node's namespaces (tests/e2e/acme_env.py).

- An FQDN workload gets its own certificate by HTTP-01, answered by the
  engine on :80; curl verifies it against pebble's root.
- Name workloads share one `*.<domain>` + `<domain>` certificate by DNS-01,
  answered by gatewayd's own responder on :53 of the gateway namespace; a
  second name reuses it with no new order.
- A restart serves the stored certificates with no new order.
- A short-lived certificate is renewed and swapped in while a download
  that started before continues; a renewal whose challenge is rejected
  backs off, shows its error in `gatewayctl certs`, and the name keeps the
  certificate it has.
"""

import hashlib
import json
import os
import re
import subprocess
import sys
import time

import pytest

import acme_env
import node as gridnode
from conftest import GATEWAYCTL, Deadline, scaled
from node import LineProc, in_ns, nsenter_argv

_why_not = gridnode.have_prerequisites() or acme_env.have_prerequisites()
pytestmark = pytest.mark.skipif(_why_not is not None, reason=_why_not or "")

HTTPBACK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "httpback.py")
DOMAIN = "gw1.example.net"  # node.py's gateway domain
PUBLIC_V4 = gridnode.PUBLIC_V4.split("/")[0]
PUBLIC_V6 = gridnode.PUBLIC_V6.split("/")[0]


@pytest.fixture(scope="module")
def backend(grid):
    """httpback.py on the workload's Yggdrasil address (slow bodies)."""
    proc = LineProc("httpback", nsenter_argv(grid.wl_ns, [sys.executable, "-u", HTTPBACK, grid.workload_addr]),
                    str(grid.workdir / "httpback.log"))
    try:
        port = int(proc.wait_line(r"^LISTENING (\d+)$", 15).group(1))
        yield "http://[%s]:%d" % (grid.workload_addr, port)
    finally:
        proc.kill()


def start_acme(grid, tmp, **pebble):
    env = acme_env.AcmeEnv(grid.node_ns, tmp, zones=["example.org", "example.net"], **pebble)
    r = env.resolver
    r.point("app.example.org")
    r.point("bad.example.org")
    r.point(DOMAIN)
    # What docs/dns-delegation.md tells the farmer to create.
    r.delegate("_acme-challenge." + DOMAIN, DOMAIN)
    env.start()
    return env


@pytest.fixture
def acme(grid, tmp_path):
    env = start_acme(grid, tmp_path / "acme")
    try:
        yield env
    finally:
        env.stop()


def start_gateway(env, grid, acme, gw_name, extra=None):
    grid.make_daemon(env)
    cfg = grid.gateway_config(gw_name)
    cfg["proxy"] = {"address": "::", "https_port": "443", "http_port": "80"}
    cfg.update(acme.gatewayd_config())
    cfg["acme"]["enabled"] = "yes"
    cfg["acme"]["email"] = "farmer@example.net"
    for k, v in (extra or {}).items():
        cfg.setdefault(k, {}).update(v)
    env.start_daemon(cfg)
    grid.configure_uplinks(timeout=15)


def certs(env):
    p = subprocess.run([str(GATEWAYCTL), "--broker", env.redis.url, "--json", "certs"], capture_output=True,
                       text=True, timeout=scaled(15))
    assert p.returncode == 0, (p.stdout, p.stderr)
    return {c["Name"]: c for c in json.loads(p.stdout)}


def wait_cert(env, name, pred, timeout, what):
    dl = Deadline(timeout, "certificate %s: %s" % (name, what))
    while True:
        c = certs(env).get(name)
        if c and pred(c):
            return c
        if dl.expired:
            raise AssertionError("certificate %s never %s: %r\n%s" % (name, what, c, env.daemon.log_tail(40)))
        time.sleep(0.2)


def curl(grid, host, cafile, path="/", addr=PUBLIC_V4, extra=(), timeout=10):
    """curl in the node namespace to the gateway, verifying against @cafile
    (None: -k). Returns the CompletedProcess."""
    argv = ["curl", "-sS", "--max-time", str(timeout), "--resolve",
            "%s:443:%s" % (host, addr if ":" not in addr else "[%s]" % addr)]
    argv += ["--cacert", cafile] if cafile else ["-k"]
    argv += list(extra) + ["https://%s%s" % (host, path)]
    return in_ns(grid.node_ns, argv, check=False, timeout=timeout + 5)


def served_serial(grid, host, addr=PUBLIC_V4):
    """The serial of the leaf the gateway serves for @host (SNI)."""
    p = in_ns(grid.node_ns, ["sh", "-c", "openssl s_client -connect %s:443 -servername %s </dev/null 2>/dev/null"
                             " | openssl x509 -noout -serial" % (addr if ":" not in addr else "[%s]" % addr, host)],
              check=False, timeout=15)
    m = re.search(r"serial=([0-9A-F]+)", p.stdout)
    assert m, p.stdout + p.stderr
    return m.group(1)


def scrape(env, grid):
    p = in_ns(grid.node_ns, ["curl", "-sS", "--max-time", "5", "http://127.0.0.1:%d/metrics" % env.metrics_port])
    return p.stdout


@pytest.mark.timeout_s(90)
def test_fqdn_http01_and_restart(env, grid, backend, acme):
    gw_name = grid.new_gateway_name()
    try:
        start_gateway(env, grid, acme, gw_name)
        mark = acme.pebble.order_mark()
        env.deploy_fqdn("37-1-app", "app.example.org", [backend], ips=(PUBLIC_V4,))
        c = wait_cert(env, "app.example.org", lambda c: c["State"] == "valid", scaled(60), "valid")
        assert c["Challenge"] == "http-01" and c["Workloads"] == 1
        assert c["NotAfter"] > time.time() + 86400
        assert c["RenewAt"] > time.time() and c["LastError"] == ""
        assert len(acme.pebble.orders_since(mark)) == 1
        root = acme.root_file()
        # Trusted: no -k, over both address families.
        for addr in (PUBLIC_V4, PUBLIC_V6):
            p = curl(grid, "app.example.org", root, "/echo", addr=addr)
            assert p.returncode == 0, p.stderr
            assert json.loads(p.stdout)["path"] == "/echo"
        # The stored pair: one file, 0600, under the state directory.
        pem = env.daemon.root / "certs" / "acme" / "app.example.org.pem"
        assert oct(pem.stat().st_mode & 0o777) == "0o600"
        assert b"PRIVATE KEY" in pem.read_bytes()
        metrics = scrape(env, grid)
        assert re.search(r'traefik_tls_certs_not_after\{cn="app.example.org",sans="app.example.org"\} \d+', metrics)
        assert 'gatewayd_acme_orders_total{result="valid"} 1' in metrics
        env.daemon.wait_log(r"Obtained the certificate for app.example.org \(issuer .*Pebble")
        serial = served_serial(grid, "app.example.org")

        # A restart serves the stored certificate: pebble sees no new order.
        mark = acme.pebble.order_mark()
        env.daemon.restart()
        grid.configure_uplinks(timeout=15)
        wait_cert(env, "app.example.org", lambda c: c["State"] == "valid", scaled(20), "valid after restart")
        dl = Deadline(scaled(20), "HTTPS after the restart")
        while curl(grid, "app.example.org", root, "/echo").returncode != 0:
            assert not dl.expired
            time.sleep(0.2)
        assert served_serial(grid, "app.example.org") == serial
        time.sleep(2)
        assert acme.pebble.orders_since(mark) == []

        # Deleting the last workload of the name stops its renewals and
        # removes its files.
        assert env.bus.delete_named_proxy("37-1-app").ok
        assert "app.example.org" not in certs(env)
        assert not pem.exists()
    finally:
        env.daemon.stop()
        grid.remove_gateway(gw_name)


@pytest.mark.timeout_s(90)
def test_wildcard_dns01_shared_by_names(env, grid, backend, acme):
    gw_name = grid.new_gateway_name()
    host = "web." + DOMAIN
    try:
        start_gateway(env, grid, acme, gw_name)
        # The responder answers for the delegated zone on both families,
        # UDP and TCP, before any order (the farmer's dig check).
        for addr in (PUBLIC_V4, PUBLIC_V6):
            for tcp in (False, True):
                dl = Deadline(scaled(15), "SOA from the responder at %s" % addr)
                while True:
                    try:
                        server = "[%s]:53" % addr if ":" in addr else "%s:53" % addr
                        rep = acme_env.dns_query(grid.node_ns, server, "_acme-challenge." + DOMAIN, "SOA",
                                                 tcp=tcp)
                        break
                    except (OSError, TimeoutError):
                        if dl.expired:
                            raise
                        time.sleep(0.2)
                assert rep.header.aa and rep.header.rcode == 0
                assert acme_env.answers(rep, "SOA")
        mark = acme.pebble.order_mark()
        assert env.deploy_name("37-2-web", "web", [backend]) == host
        c = wait_cert(env, "*." + DOMAIN, lambda c: c["State"] == "valid", scaled(60), "valid")
        assert c["Challenge"] == "dns-01"
        assert len(acme.pebble.orders_since(mark)) == 1
        root = acme.root_file()
        p = curl(grid, host, root, "/echo")
        assert p.returncode == 0, p.stderr
        # A second name is served with it at once: no new order.
        mark = acme.pebble.order_mark()
        assert env.deploy_name("37-3-api", "api", [backend]) == "api." + DOMAIN
        p = curl(grid, "api." + DOMAIN, root, "/echo")
        assert p.returncode == 0, p.stderr
        assert served_serial(grid, "api." + DOMAIN) == served_serial(grid, host)
        assert certs(env)["*." + DOMAIN]["Workloads"] == 2
        # Deleting every name keeps the domain's wildcard (and its renewals).
        assert env.bus.delete_named_proxy("37-2-web").ok and env.bus.delete_named_proxy("37-3-api").ok
        c = certs(env)["*." + DOMAIN]
        assert c["State"] == "valid" and c["Workloads"] == 0
        time.sleep(1)
        assert acme.pebble.orders_since(mark) == []
        # The queries were counted.
        assert re.search(r'gatewayd_dns_answers_total\{rcode="NOERROR"\} [1-9]', scrape(env, grid))
    finally:
        env.daemon.stop()
        grid.remove_gateway(gw_name)


@pytest.mark.timeout_s(240)
def test_renewal_swaps_under_a_download_and_a_failed_renewal_backs_off(env, grid, backend, tmp_path):
    """pebble issues 60-second certificates: renewal is due at about half.
    A download started before the renewal finishes intact on the old
    certificate while new handshakes get the new one. Then the name's
    address is broken so the next renewal's challenge is rejected: backoff,
    a visible error, and the still-valid certificate stays served."""
    acme = start_acme(grid, tmp_path / "acme", validity=60, authz_reuse=0)
    gw_name = grid.new_gateway_name()
    try:
        start_gateway(env, grid, acme, gw_name)
        env.deploy_fqdn("37-4-app", "app.example.org", [backend], ips=(PUBLIC_V4,))
        c = wait_cert(env, "app.example.org", lambda c: c["State"] == "valid", scaled(60), "valid")
        root = acme.root_file()
        first = served_serial(grid, "app.example.org")
        issued_at = c["NotBefore"]

        # 48 MiB at 16 KiB per 2 ms: about 6 s of transfer, started before
        # the renewal is due, verified by hash.
        size = 48 << 20
        out = tmp_path / "download"
        dl_proc = subprocess.Popen(nsenter_argv(grid.node_ns, [
            "curl", "-sS", "--max-time", "120", "--cacert", root, "--limit-rate", "1M",
            "--resolve", "app.example.org:443:%s" % PUBLIC_V4, "-o", str(out),
            "https://app.example.org/slow/%d/1" % size]))
        c = wait_cert(env, "app.example.org", lambda c: c["NotBefore"] > issued_at, scaled(90), "renewed")
        env.daemon.wait_log(r"Renewed the certificate for app.example.org")
        second = served_serial(grid, "app.example.org")
        assert second != first
        assert dl_proc.poll() is None, "the download should still be running across the swap"
        assert dl_proc.wait(timeout=scaled(150)) == 0
        import httpback
        assert hashlib.sha256(out.read_bytes()).hexdigest() == hashlib.sha256(httpback.pattern(size)).hexdigest()

        # Break HTTP-01: pebble validates over IPv6 first and only there,
        # where nothing of the gateway listens.
        acme.resolver.point("app.example.org", PUBLIC_V4, gridnode.GATEWAY_V6)
        acme.resolver.commit()
        c = wait_cert(env, "app.example.org", lambda c: c["State"] == "failed", scaled(90), "failed")
        assert "connection" in c["LastError"], c
        assert c["LastErrorTime"] > 0
        # Backoff: the next attempt minutes away, not at once.
        assert c["NextAttempt"] - time.time() > 200, c
        env.daemon.wait_log(r"ACME order for app.example.org failed: .*connection")
        # Still served with the certificate it has (valid for a while yet).
        assert served_serial(grid, "app.example.org") == second
        p = curl(grid, "app.example.org", root, "/echo")
        assert p.returncode == 0, p.stderr
        p = subprocess.run([str(GATEWAYCTL), "--broker", env.redis.url, "certs"], capture_output=True, text=True,
                           timeout=scaled(15))
        assert p.returncode == 0
        line = [l for l in p.stdout.splitlines() if l.startswith("app.example.org")][0]
        assert "failed" in line and "connection" in line, p.stdout
    finally:
        env.daemon.stop()
        grid.remove_gateway(gw_name)
        acme.stop()

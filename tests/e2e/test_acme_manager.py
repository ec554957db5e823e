# SPDX-License-Identifier: Apache-2.0
"""The certificate manager (issue 8) against pebble and unbound, beyond the
happy paths of test_acme.py: a damaged issued file, SIGHUP turning [acme]
off and on, orders running side by side where one fails, HTTP-01 over
each address family, the resolver replaced while the ACME client waits
for an answer, and names whose certificate cannot be stored.

Each test has its own pebble (a new CA) and gateway namespace; the grid
node is shared by the module.
"""

import json
import os
import re
import socket
import threading
import time

import pytest

import acme_env
import node as gridnode
from conftest import Deadline, scaled
from node import in_ns
from test_acme import DOMAIN, PUBLIC_V4, PUBLIC_V6, backend, certs, curl, scrape, served_serial, wait_cert  # noqa: F401

_why_not = gridnode.have_prerequisites() or acme_env.have_prerequisites()
pytestmark = pytest.mark.skipif(_why_not is not None, reason=_why_not or "")


def new_acme(grid, tmp, names=(), **pebble):
    """pebble + unbound; @names: (name, *ips) to point (no ips: both of the
    gateway's public addresses)."""
    env = acme_env.AcmeEnv(grid.node_ns, tmp, zones=["example.org", "example.net"], **pebble)
    r = env.resolver
    for n in names:
        name, ips = (n, ()) if isinstance(n, str) else (n[0], n[1:])
        r.point(name, *ips)
    r.point(DOMAIN)
    r.delegate("_acme-challenge." + DOMAIN, DOMAIN)
    env.start()
    return env


class Gateway:
    """gatewayd in the grid node with [acme] pointed at @acme; cfg is the
    overrides dict (change it and call reload())."""

    def __init__(self, env, grid, acme, extra=None):
        self.env, self.grid, self.acme = env, grid, acme
        self.name = grid.new_gateway_name()
        grid.make_daemon(env)
        cfg = grid.gateway_config(self.name)
        cfg["proxy"] = {"address": "::", "https_port": "443", "http_port": "80"}
        cfg.update(acme.gatewayd_config())
        cfg["acme"]["enabled"] = "yes"
        cfg["acme"]["email"] = "farmer@example.net"
        for k, v in (extra or {}).items():
            cfg.setdefault(k, {}).update(v)
        self.cfg = cfg

    def start(self):
        self.env.start_daemon(self.cfg)
        self.grid.configure_uplinks(timeout=15)
        return self

    def reload(self):
        self.env.reload(self.cfg)

    def close(self):
        try:
            self.env.daemon.stop()
        finally:
            self.grid.remove_gateway(self.name)


def pem_path(env, name):
    return env.daemon.root / "certs" / "acme" / (name + ".pem")


def wait_https(grid, host, root, timeout=20):
    dl = Deadline(scaled(timeout), "HTTPS for %s verified by pebble's root" % host)
    while True:
        p = curl(grid, host, root, "/echo")
        if p.returncode == 0:
            return p
        if dl.expired:
            raise AssertionError("https://%s never verified: %s" % (host, p.stderr))
        time.sleep(0.2)


@pytest.mark.timeout_s(90)
def test_damaged_issued_file_is_moved_aside_and_ordered_again(env, grid, backend, tmp_path):
    acme = new_acme(grid, tmp_path / "acme", names=["app.example.org"], authz_reuse=0)
    gw = Gateway(env, grid, acme)
    try:
        gw.start()
        env.deploy_fqdn("38-1-app", "app.example.org", [backend], ips=(PUBLIC_V4,))
        wait_cert(env, "app.example.org", lambda c: c["State"] == "valid", scaled(30), "valid")
        root = acme.root_file()
        first = served_serial(grid, "app.example.org")
        pem = pem_path(env, "app.example.org")
        text = pem.read_text()

        # Stopped, the file loses the middle of its certificate (a torn
        # write by something else, a bad disk block).
        env.daemon.stop()
        pem.write_text(text[:200] + text[400:])
        mark = acme.pebble.order_mark()
        log_mark = env.daemon.mark()
        env.daemon.start()
        grid.configure_uplinks(timeout=15)
        env.daemon.wait_log(r"Moved the damaged certificate file .*app\.example\.org\.pem aside", since=log_mark)
        aside = [p for p in pem.parent.iterdir() if p.name.startswith("app.example.org.pem.corrupt-")]
        assert len(aside) == 1 and aside[0].read_text() == text[:200] + text[400:]

        # A new certificate, at once (not after a backoff), stored and served.
        c = wait_cert(env, "app.example.org", lambda c: c["State"] == "valid", scaled(30), "valid again")
        assert c["LastError"] == "", c
        assert len(acme.pebble.orders_since(mark)) == 1
        assert pem.exists() and pem.read_text() != text
        wait_https(grid, "app.example.org", root)
        assert served_serial(grid, "app.example.org") != first
        env.daemon.wait_log(r"Obtained the certificate for app\.example\.org", since=log_mark)
    finally:
        gw.close()
        acme.stop()


@pytest.mark.timeout_s(90)
def test_sighup_acme_off_then_on(env, grid, backend, tmp_path):
    """[acme] enabled = no: nothing is ordered, stored certificates are
    still served; = yes again: what is due is ordered, what is valid is not."""
    acme = new_acme(grid, tmp_path / "acme", names=["app.example.org", "two.example.org"], authz_reuse=0)
    gw = Gateway(env, grid, acme)
    try:
        gw.cfg["acme"]["enabled"] = "no"
        gw.start()
        env.deploy_fqdn("38-2-app", "app.example.org", [backend], ips=(PUBLIC_V4,))
        time.sleep(1.5)
        c = certs(env)["app.example.org"]
        assert c["State"] == "self-signed" and c["NextAttempt"] == 0, c
        assert acme.pebble.orders() == []

        gw.cfg["acme"]["enabled"] = "yes"
        gw.reload()
        wait_cert(env, "app.example.org", lambda c: c["State"] == "valid", scaled(30), "valid")
        root = acme.root_file()
        wait_https(grid, "app.example.org", root)
        serial = served_serial(grid, "app.example.org")

        # Off again: a name deployed now stays self-signed, the issued one
        # is still served, and nothing reaches the CA.
        gw.cfg["acme"]["enabled"] = "no"
        gw.reload()
        mark = acme.pebble.order_mark()
        env.deploy_fqdn("38-3-two", "two.example.org", [backend], ips=(PUBLIC_V4,))
        time.sleep(1.5)
        assert acme.pebble.orders_since(mark) == []
        listed = certs(env)
        assert listed["app.example.org"]["State"] == "valid"
        assert listed["two.example.org"]["State"] == "self-signed"
        assert served_serial(grid, "app.example.org") == serial
        wait_https(grid, "app.example.org", root)

        # On: only the name without a certificate is ordered.
        gw.cfg["acme"]["enabled"] = "yes"
        gw.reload()
        wait_cert(env, "two.example.org", lambda c: c["State"] == "valid", scaled(30), "valid")
        assert len(acme.pebble.orders_since(mark)) == 1
        assert served_serial(grid, "app.example.org") == serial
        wait_https(grid, "two.example.org", root)
    finally:
        gw.close()
        acme.stop()


@pytest.mark.timeout_s(90)
def test_orders_side_by_side_one_fails_http01_on_each_family(env, grid, backend, tmp_path):
    """Three FQDN orders at once: v4.example.org has only an A record (pebble
    validates over IPv4), v6.example.org only AAAA (over IPv6), and
    bad.example.org's AAAA points where nothing listens (its challenge is
    refused). The failure backs off and is shown; the others are issued."""
    acme = new_acme(grid, tmp_path / "acme", authz_reuse=0,
                    names=[("v4.example.org", PUBLIC_V4), ("v6.example.org", PUBLIC_V6),
                           ("bad.example.org", PUBLIC_V4, gridnode.GATEWAY_V6)])
    gw = Gateway(env, grid, acme)
    try:
        gw.start()
        for i, name in enumerate(("bad.example.org", "v4.example.org", "v6.example.org")):
            env.deploy_fqdn("38-%d-x" % (10 + i), name, [backend], ips=(PUBLIC_V4,))
        bad = wait_cert(env, "bad.example.org", lambda c: c["State"] == "failed", scaled(40), "failed")
        assert "connection" in bad["LastError"], bad
        assert bad["NextAttempt"] - time.time() > 200, bad
        for name in ("v4.example.org", "v6.example.org"):
            c = wait_cert(env, name, lambda c: c["State"] == "valid", scaled(40), "valid")
            assert c["LastError"] == "", c
        root = acme.root_file()
        p = curl(grid, "v4.example.org", root, "/echo", addr=PUBLIC_V4)
        assert p.returncode == 0, p.stderr
        p = curl(grid, "v6.example.org", root, "/echo", addr=PUBLIC_V6)
        assert p.returncode == 0, p.stderr
        # pebble dials the first address of AAAA-then-A: the only record of
        # each name decided the family the token was fetched over.
        asked = {(n, t) for _, n, t in acme.resolver.queries()}
        assert ("v4.example.org", "A") in asked and ("v6.example.org", "AAAA") in asked, asked
        env.daemon.wait_log(r"ACME order for bad\.example\.org failed: .*connection")
        metrics = scrape(env, grid)
        assert 'gatewayd_acme_orders_total{result="valid"} 2' in metrics
        assert 'gatewayd_acme_orders_total{result="invalid"} 1' in metrics
        assert 'gatewayd_acme_certificates{state="failed"} 1' in metrics
        # The still self-signed name is served with what it has.
        p = curl(grid, "bad.example.org", None, "/echo")
        assert p.returncode == 0, p.stderr
    finally:
        gw.close()
        acme.stop()


class SilentDns:
    """A UDP "resolver" in @ns that reads queries and never answers (what a
    resolver behind a dead link looks like); names() is what it was asked."""

    def __init__(self, ns):
        self.sock = acme_env.ns_socket(ns, socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.asked = []
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        from dnslib import DNSRecord
        while not self._stop:
            try:
                data, _ = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                self.asked.append(str(DNSRecord.parse(data).q.qname).rstrip("."))
            except Exception:  # noqa: BLE001 - not a query: ignore it
                pass

    def close(self):
        self._stop = True
        self._thread.join(2)
        self.sock.close()


@pytest.mark.timeout_s(90)
def test_resolver_replaced_while_the_acme_client_resolves(env, grid, backend, tmp_path):
    """SIGHUP replaces [dns] resolver while the ACME client waits for the
    CA's address from the old one: the lookup is made again with the new
    resolver (the old one and its queries are gone), the order goes on,
    and nothing touches the freed query (ASan)."""
    acme = new_acme(grid, tmp_path / "acme", names=["app.example.org"], authz_reuse=0)
    silent = SilentDns(grid.node_ns)
    gw = Gateway(env, grid, acme)
    try:
        gw.cfg["acme"]["enabled"] = "no"
        gw.start()
        # The FQDN check needs the working resolver.
        env.deploy_fqdn("38-20-app", "app.example.org", [backend], ips=(PUBLIC_V4,))
        good = gw.cfg["dns"]["resolver"]
        gw.cfg["dns"]["resolver"] = silent.address
        gw.cfg["acme"]["enabled"] = "yes"
        gw.reload()
        dl = Deadline(scaled(10), "the ACME client asking the silent resolver")
        while acme_env.PEBBLE_NAME not in silent.asked:
            assert not dl.expired, silent.asked
            time.sleep(0.05)
        gw.cfg["dns"]["resolver"] = good
        gw.reload()
        c = wait_cert(env, "app.example.org", lambda c: c["State"] == "valid", scaled(20), "valid")
        assert c["LastError"] == "", c
        wait_https(grid, "app.example.org", acme.root_file())
        # Turning ACME off closes the client's connections (the stop path
        # of a lookup, had one been left behind).
        gw.cfg["acme"]["enabled"] = "no"
        gw.reload()
    finally:
        gw.close()
        silent.close()
        acme.stop()


# 244 bytes: a valid DNS name, but "<name>.pem" is longer than the store's
# file names may be (write_file_atomic() needs room for its temporary name).
LONG = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 40, "example.org"])


@pytest.mark.timeout_s(60)
def test_name_whose_certificate_cannot_be_stored_is_not_ordered(env, grid, backend, tmp_path):
    """A certificate the store cannot keep would be issued, thrown away and
    ordered again after every backoff (spending the CA's issuance limits):
    such a name is not ordered; the reason is shown; the name is served
    self-signed, and the other names are not held up."""
    assert len(LONG) == 244
    acme = new_acme(grid, tmp_path / "acme", names=[LONG, "app.example.org"], authz_reuse=0)
    gw = Gateway(env, grid, acme)
    try:
        gw.start()
        env.deploy_fqdn("38-30-long", LONG, [backend], ips=(PUBLIC_V4,))
        env.deploy_fqdn("38-31-app", "app.example.org", [backend], ips=(PUBLIC_V4,))
        wait_cert(env, "app.example.org", lambda c: c["State"] == "valid", scaled(30), "valid")
        c = wait_cert(env, LONG, lambda c: c["LastError"] != "", scaled(10), "an error")
        assert "too long" in c["LastError"], c
        assert c["State"] == "failed" and c["NextAttempt"] == 0, c
        # Only app.example.org reached the CA.
        assert len(acme.pebble.orders()) == 1
        time.sleep(1)
        assert len(acme.pebble.orders()) == 1
        assert not any(p.name.startswith("aaaa") for p in pem_path(env, "x").parent.iterdir())
        p = curl(grid, LONG, None, "/echo")
        assert p.returncode == 0, p.stderr
    finally:
        gw.close()
        acme.stop()


@pytest.mark.timeout_s(90)
def test_no_order_while_its_challenge_cannot_be_answered(env, grid, backend, tmp_path):
    """An order whose challenge nobody would answer only spends the CA's
    failed-validation limits and starts a backoff: with [proxy] http_port
    = 0 no HTTP-01 order is made, with [dns] listen_port = 0 no DNS-01
    one (each shows why). Configured but not bound yet (here :8080 is
    taken in the gateway namespace), the order waits for the listener and
    starts once it serves, with no backoff."""
    acme = new_acme(grid, tmp_path / "acme", names=["app.example.org"], authz_reuse=0, http_port=8080)
    gw = Gateway(env, grid, acme)
    try:
        gw.cfg["proxy"]["http_port"] = "0"
        gw.cfg["dns"]["listen_port"] = "0"
        gw.start()
        env.deploy_fqdn("38-40-app", "app.example.org", [backend], ips=(PUBLIC_V4,))
        assert env.deploy_name("38-41-web", "web", [backend]) == "web." + DOMAIN
        fqdn = wait_cert(env, "app.example.org", lambda c: c["LastError"] != "", scaled(10), "an error")
        wild = wait_cert(env, "*." + DOMAIN, lambda c: c["LastError"] != "", scaled(10), "an error")
        assert "http_port" in fqdn["LastError"] and "listen_port" in wild["LastError"], (fqdn, wild)
        # Nothing happens before a SIGHUP: no next attempt to show.
        assert fqdn["NextAttempt"] == 0 and wild["NextAttempt"] == 0, (fqdn, wild)
        time.sleep(1.5)
        assert acme.pebble.orders() == []
        listed = certs(env)
        assert listed["app.example.org"]["State"] == "self-signed", listed
        assert listed["*." + DOMAIN]["State"] == "self-signed", listed

        # :8080 taken in the gateway namespace: the engine cannot bind it
        # (it retries); the responder can bind :53.
        held = acme_env.ns_socket(gw.name, socket.AF_INET6, socket.SOCK_STREAM)
        try:
            held.bind(("::", 8080))
            gw.cfg["proxy"]["http_port"] = "8080"
            gw.cfg["dns"]["listen_port"] = "53"
            gw.reload()
            wait_cert(env, "*." + DOMAIN, lambda c: c["State"] == "valid", scaled(30), "valid")
            time.sleep(2)
            assert certs(env)["app.example.org"]["State"] == "self-signed"
            assert len(acme.pebble.orders()) == 1  # the wildcard's
        finally:
            held.close()
        c = wait_cert(env, "app.example.org", lambda c: c["State"] == "valid", scaled(40), "valid")
        assert len(acme.pebble.orders()) == 2
        wait_https(grid, "app.example.org", acme.root_file())
    finally:
        gw.close()
        acme.stop()


@pytest.mark.timeout_s(90)
def test_damaged_account_key_makes_a_new_account(env, grid, backend, tmp_path):
    """A damaged account key is moved aside and a new key made; the account
    URL stored for the old key is no use with it (the CA would refuse
    every request signed by the new key under the old account's URL):
    a new account is registered and certificates are issued again."""
    acme = new_acme(grid, tmp_path / "acme", names=["app.example.org", "two.example.org"], authz_reuse=0)
    gw = Gateway(env, grid, acme)
    try:
        gw.start()
        env.deploy_fqdn("38-50-app", "app.example.org", [backend], ips=(PUBLIC_V4,))
        wait_cert(env, "app.example.org", lambda c: c["State"] == "valid", scaled(30), "valid")
        acme_dir = env.daemon.root / "acme"
        first_url = json.loads((acme_dir / "account.json").read_text())["url"]

        env.daemon.stop()
        (acme_dir / "account.key").write_text("-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n")
        log_mark = env.daemon.mark()
        env.daemon.start()
        grid.configure_uplinks(timeout=15)
        env.daemon.wait_log(r"The ACME account key .* is damaged; moved aside", since=log_mark)
        assert any(p.name.startswith("account.key.corrupt-") for p in acme_dir.iterdir())
        env.deploy_fqdn("38-51-two", "two.example.org", [backend], ips=(PUBLIC_V4,))
        c = wait_cert(env, "two.example.org", lambda c: c["State"] in ("valid", "failed"), scaled(30), "done")
        assert c["State"] == "valid", c
        assert json.loads((acme_dir / "account.json").read_text())["url"] != first_url
        # The certificate issued before still serves.
        assert certs(env)["app.example.org"]["State"] == "valid"
    finally:
        gw.close()
        acme.stop()


@pytest.mark.timeout_s(90)
def test_domain_from_the_networker(env, grid, backend, tmp_path):
    """public_config = bus (the default) with no [gateway] domain: the
    gateway domain is the networker's. Its _acme-challenge zone is answered
    before any order (the farmer's dig check), and its wildcard stays (and
    is renewed) when the last name workload goes, as with a domain from
    the file."""
    acme = new_acme(grid, tmp_path / "acme", authz_reuse=0)
    gw = Gateway(env, grid, acme)
    try:
        g = gw.cfg["gateway"]
        for k in ("public_ipv4", "gateway_ipv4", "public_ipv6", "gateway_ipv6", "domain"):
            g[k] = None  # merge_config: removed
        g["public_config"] = "bus"
        env.net.set_config(ipv4=gridnode.PUBLIC_V4, gw4=gridnode.GATEWAY_V4, ipv6=gridnode.PUBLIC_V6,
                           gw6=gridnode.GATEWAY_V6, domain=DOMAIN)
        gw.start()
        dl = Deadline(scaled(15), "SOA for _acme-challenge.%s from the responder" % DOMAIN)
        while True:
            try:
                rep = acme_env.dns_query(grid.node_ns, "%s:53" % PUBLIC_V4, "_acme-challenge." + DOMAIN, "SOA")
                if rep.header.rcode == 0 and acme_env.answers(rep, "SOA"):
                    break
            except OSError:
                pass
            assert not dl.expired, "the responder does not answer for the networker's domain"
            time.sleep(0.2)
        assert rep.header.aa

        assert env.deploy_name("38-60-web", "web", [backend]) == "web." + DOMAIN
        wait_cert(env, "*." + DOMAIN, lambda c: c["State"] == "valid", scaled(30), "valid")
        mark = acme.pebble.order_mark()
        assert env.bus.delete_named_proxy("38-60-web").ok
        c = certs(env).get("*." + DOMAIN)
        assert c and c["State"] == "valid" and c["Workloads"] == 0, c
        # After a restart too: the networker answers after the manager has
        # started, and the stored wildcard is taken up then, not ordered.
        env.daemon.restart()
        grid.configure_uplinks(timeout=15)
        wait_cert(env, "*." + DOMAIN, lambda c: c["State"] == "valid" and c["Workloads"] == 0, scaled(20),
                  "kept after the restart")
        time.sleep(1)
        assert acme.pebble.orders_since(mark) == []
    finally:
        gw.close()
        acme.stop()


@pytest.mark.timeout_s(60)
def test_damaged_backoff_state(env, grid, backend, tmp_path):
    """acme/state.json with a next attempt no backoff could have set (a
    flipped digit: 30,000 years ahead) must not stop a name's orders for
    good: it is held to what the scheduler ever writes (a Retry-After of
    at most 7 days). A file that does not parse is moved aside."""
    acme = new_acme(grid, tmp_path / "acme", names=["app.example.org"])
    gw = Gateway(env, grid, acme)
    try:
        gw.cfg["acme"]["enabled"] = "no"
        gw.start()
        env.deploy_fqdn("38-70-app", "app.example.org", [backend], ips=(PUBLIC_V4,))
        env.daemon.stop()
        state = env.daemon.root / "acme" / "state.json"
        now = int(time.time())
        state.write_text(json.dumps({"app.example.org": {
            "failures": 2, "next_attempt": now + 10 ** 12, "last_error": "newOrder: serverInternal",
            "last_error_at": now - 60, "ari_next": now + 10 ** 12}}))
        gw.cfg["acme"]["enabled"] = "yes"
        env.write_config(gw.cfg)
        env.daemon.start()
        c = certs(env)["app.example.org"]
        assert c["State"] == "failed" and c["LastError"] == "newOrder: serverInternal", c
        assert 0 < c["NextAttempt"] <= time.time() + 7 * 86400 + 60, c

        env.daemon.stop()
        state.write_text('{"app.example.org": {"failures": 2, "next_att')
        log_mark = env.daemon.mark()
        env.daemon.start()
        env.daemon.wait_log(r"state\.json .*moved aside", since=log_mark)
        assert any(p.name.startswith("state.json.corrupt-") for p in state.parent.iterdir())
        assert certs(env)["app.example.org"]["State"] == "self-signed"
    finally:
        gw.close()
        acme.stop()


@pytest.mark.timeout_s(60)
def test_capability_off_then_on(env, grid, backend, tmp_path):
    """[gateway] enabled = no: nothing is ordered (even with [acme] on);
    back on, the listeners come up again and what is due is ordered once
    they serve."""
    acme = new_acme(grid, tmp_path / "acme", names=["app.example.org"], authz_reuse=0)
    gw = Gateway(env, grid, acme)
    try:
        gw.cfg["acme"]["enabled"] = "no"
        gw.start()
        env.deploy_fqdn("38-80-app", "app.example.org", [backend], ips=(PUBLIC_V4,))
        gw.cfg["gateway"]["enabled"] = "no"
        gw.cfg["acme"]["enabled"] = "yes"
        gw.reload()
        time.sleep(1.5)
        assert acme.pebble.orders() == []
        assert certs(env)["app.example.org"]["State"] == "self-signed"
        gw.cfg["gateway"]["enabled"] = "yes"
        gw.reload()
        grid.configure_uplinks(timeout=15)
        c = wait_cert(env, "app.example.org", lambda c: c["State"] in ("valid", "failed"), scaled(30), "done")
        assert c["State"] == "valid", c
        assert len(acme.pebble.orders()) == 1
        wait_https(grid, "app.example.org", acme.root_file())
    finally:
        gw.close()
        acme.stop()


class RateLimitingCa:
    """A stand-in ACME server (pebble cannot send rateLimited): directory,
    nonces and accounts as RFC 8555 says, and every newOrder answered 429
    urn:ietf:params:acme:error:rateLimited with Retry-After: @retry_after.
    HTTPS with @https (acme_env.HttpsCert), on 127.0.0.1 of @ns. Signatures
    are not checked: only what the daemon does with the answer is tested."""

    def __init__(self, ns, https, retry_after=3600):
        import http.server
        import ssl

        ca = self
        self.new_orders = 0
        self.retry_after = retry_after

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _send(self, status, body=b"", ctype="application/json", headers=()):
                self.send_response(status)
                self.send_header("Replay-Nonce", "n%d" % time.monotonic_ns())
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_HEAD(self):
                self._send(200)

            def do_GET(self):
                if self.path == "/dir":
                    base = "https://127.0.0.1:%d" % ca.port
                    self._send(200, json.dumps({"newNonce": base + "/nonce", "newAccount": base + "/acct",
                                                "newOrder": base + "/order", "revokeCert": base + "/revoke",
                                                "keyChange": base + "/key"}).encode())
                else:
                    self._send(200 if self.path == "/nonce" else 404)

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path == "/acct":
                    self._send(201, b'{"status":"valid"}',
                               headers=[("Location", "https://127.0.0.1:%d/acct/1" % ca.port)])
                elif self.path == "/order":
                    ca.new_orders += 1
                    self._send(429, json.dumps({"type": "urn:ietf:params:acme:error:rateLimited",
                                                "detail": "too many certificates for this name"}).encode(),
                               ctype="application/problem+json", headers=[("Retry-After", str(ca.retry_after))])
                else:
                    self._send(404)

        sock = acme_env.ns_socket(ns, socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        self.port = sock.getsockname()[1]
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(https.cert), str(https.key))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
        self.server.socket.close()
        self.server.socket = ctx.wrap_socket(sock, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def directory(self):
        return "https://127.0.0.1:%d/dir" % self.port

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.mark.timeout_s(60)
def test_rate_limited_order_honours_retry_after(env, grid, backend, tmp_path):
    """newOrder answered 429 rateLimited with Retry-After: 3600: the name
    is next tried in an hour (not after the 5-minute backoff), the problem
    is shown and logged once, counted as rate_limited, and a restart does
    not ask again before that."""
    acme = new_acme(grid, tmp_path / "acme", names=["app.example.org"])
    ca = RateLimitingCa(grid.node_ns, acme.https)
    gw = Gateway(env, grid, acme)
    try:
        gw.cfg["acme"]["directory"] = ca.directory
        gw.start()
        env.deploy_fqdn("38-90-app", "app.example.org", [backend], ips=(PUBLIC_V4,))
        c = wait_cert(env, "app.example.org", lambda c: c["State"] == "failed", scaled(20), "failed")
        assert "rateLimited" in c["LastError"] and "too many certificates" in c["LastError"], c
        assert 3600 - 60 <= c["NextAttempt"] - time.time() <= 3600 + 60, c
        assert ca.new_orders == 1
        metrics = scrape(env, grid)
        assert 'gatewayd_acme_orders_total{result="rate_limited"} 1' in metrics, metrics
        assert len(re.findall(r"warn: ACME order for app\.example\.org failed: .*rateLimited",
                              env.daemon.log_text())) == 1
        # Kept across a restart (state.json is written within 5 s, and at stop).
        env.daemon.stop()
        env.daemon.start()
        time.sleep(1.5)
        c = certs(env)["app.example.org"]
        assert c["State"] == "failed" and c["NextAttempt"] - time.time() > 3000, c
        assert ca.new_orders == 1
    finally:
        gw.close()
        ca.close()
        acme.stop()


@pytest.mark.timeout_s(60)
def test_stop_with_orders_in_flight(env, grid, backend, tmp_path):
    """SIGTERM while HTTP-01 and DNS-01 orders run: they are cancelled
    (their challenges removed through the hooks before the responder and
    the engine go), the daemon exits cleanly (LeakSanitizer under ASan) and
    the next start orders them again."""
    acme = new_acme(grid, tmp_path / "acme", authz_reuse=0,
                    names=["one.example.org", "two.example.org", "three.example.org"])
    gw = Gateway(env, grid, acme)
    try:
        gw.start()
        for i, name in enumerate(("one.example.org", "two.example.org", "three.example.org")):
            env.deploy_fqdn("38-10%d-x" % i, name, [backend], ips=(PUBLIC_V4,))
        env.deploy_name("38-104-web", "web", [backend])
        acme.pebble.wait_for(lambda p: len(p.orders()) >= 4, scaled(15), "four orders at pebble")
        env.daemon.stop()
        assert env.daemon.proc.returncode == 0
        env.daemon.start()
        grid.configure_uplinks(timeout=15)
        for name in ("one.example.org", "two.example.org", "three.example.org", "*." + DOMAIN):
            wait_cert(env, name, lambda c: c["State"] == "valid", scaled(30), "valid")
    finally:
        gw.close()
        acme.stop()


def healthz(env, grid):
    p = in_ns(grid.node_ns, ["curl", "-sS", "--max-time", "5", "-w", "\n%{http_code}",
                             "http://127.0.0.1:%d/healthz" % env.metrics_port])
    body, _, code = p.stdout.rpartition("\n")
    return int(code), body


@pytest.mark.timeout_s(60)
def test_responder_that_cannot_bind_is_unhealthy(env, grid, backend, tmp_path):
    """[dns] listen_port set by SIGHUP to a port something else holds in the
    gateway namespace: /healthz says the dns listener is not bound and why
    (it said nothing: the check stayed "not wanted" from listen_port = 0),
    and once the port is free the responder binds and is healthy."""
    acme = new_acme(grid, tmp_path / "acme")
    gw = Gateway(env, grid, acme)
    try:
        gw.cfg["acme"]["enabled"] = "no"
        gw.cfg["dns"]["listen_port"] = "0"
        gw.start()
        dl = Deadline(scaled(15), "healthy")
        while healthz(env, grid)[0] != 200:
            assert not dl.expired, healthz(env, grid)
            time.sleep(0.2)
        held = acme_env.ns_socket(gw.name, socket.AF_INET6, socket.SOCK_DGRAM)
        try:
            held.bind(("::", 5353))
            gw.cfg["dns"]["listen_port"] = "5353"
            gw.reload()
            env.daemon.wait_log(r"_acme-challenge responder cannot listen on .*5353")
            code, body = healthz(env, grid)
            assert code == 503 and re.search(r"^dns .*5353.*: not bound: .*in use", body, re.M), (code, body)
        finally:
            held.close()
        dl = Deadline(scaled(15), "the responder bound once the port is free")
        while healthz(env, grid)[0] != 200:
            assert not dl.expired, healthz(env, grid)
            time.sleep(0.2)
        rep = acme_env.dns_query(grid.node_ns, "%s:5353" % PUBLIC_V4, "_acme-challenge." + DOMAIN, "SOA")
        assert rep.header.rcode == 0 and acme_env.answers(rep, "SOA")
    finally:
        gw.close()
        acme.stop()


@pytest.mark.timeout_s(60)
def test_renamed_and_passthrough_mid_order(env, grid, backend, tmp_path):
    """An FQDN workload renamed, and another switched to passthrough, while
    their orders run: the orders are cancelled, the old names leave the
    list with no files, the new name is issued, and the daemon stays clean
    (ASan)."""
    acme = new_acme(grid, tmp_path / "acme", authz_reuse=0,
                    names=["old.example.org", "new.example.org", "pass.example.org"])
    gw = Gateway(env, grid, acme)
    try:
        gw.start()
        env.deploy_fqdn("38-110-r", "old.example.org", [backend], ips=(PUBLIC_V4,))
        env.deploy_fqdn("38-111-p", "pass.example.org", [backend], ips=(PUBLIC_V4,))
        # Right after pebble saw both orders (before they can finish).
        acme.pebble.wait_for(lambda p: len(p.orders()) >= 2, scaled(10), "two orders")
        env.deploy_fqdn("38-110-r", "new.example.org", [backend], ips=(PUBLIC_V4,))
        assert env.bus.set_fqdn_proxy("38-111-p", "pass.example.org", ["[%s]:443" % grid.workload_addr],
                                      tls_passthrough=True).ok
        listed = certs(env)
        assert "old.example.org" not in listed and "pass.example.org" not in listed, listed
        wait_cert(env, "new.example.org", lambda c: c["State"] == "valid", scaled(30), "valid")
        assert not pem_path(env, "old.example.org").exists()
        assert not pem_path(env, "pass.example.org").exists()
        time.sleep(1)
        assert set(certs(env)) == {"new.example.org"}
        wait_https(grid, "new.example.org", acme.root_file())
    finally:
        gw.close()
        acme.stop()


@pytest.mark.timeout_s(90)
def test_directory_changed_by_sighup_mid_order(env, grid, backend, tmp_path):
    """[acme] directory changed while an order runs: the order is cancelled
    and made again with the new CA, under a new account of that CA; what
    the old CA issued keeps being served."""
    acme = new_acme(grid, tmp_path / "acme", authz_reuse=0, names=["app.example.org", "two.example.org"])
    other = acme_env.Pebble(grid.node_ns, tmp_path / "pebble2", acme.https, acme.resolver, acme_port=14001,
                            mgmt_port=15001, authz_reuse=0)
    gw = Gateway(env, grid, acme)
    try:
        other.start()
        gw.start()
        env.deploy_fqdn("38-120-app", "app.example.org", [backend], ips=(PUBLIC_V4,))
        wait_cert(env, "app.example.org", lambda c: c["State"] == "valid", scaled(30), "valid")
        env.deploy_fqdn("38-121-two", "two.example.org", [backend], ips=(PUBLIC_V4,))
        acme.pebble.wait_for(lambda p: len(p.orders()) >= 2, scaled(10), "the second order")
        gw.cfg["acme"]["directory"] = other.directory_url
        gw.reload()
        c = wait_cert(env, "two.example.org", lambda c: c["State"] == "valid", scaled(30), "valid")
        assert c["LastError"] == "", c
        assert len(other.orders()) == 1
        account = json.loads((env.daemon.root / "acme" / "account.json").read_text())
        assert account["directory"] == other.directory_url
        wait_https(grid, "two.example.org", other.root_file())
        wait_https(grid, "app.example.org", acme.root_file())
    finally:
        gw.close()
        other.stop()
        acme.stop()


@pytest.mark.timeout_s(60)
def test_unreadable_account_key_does_not_stop_the_gateway(env, grid, backend, tmp_path):
    """An account key that cannot be read (here: a directory in its place)
    turns ACME off with an error; the gateway itself starts and serves its
    workloads. A SIGHUP after the operator fixed it turns ACME on."""
    acme = new_acme(grid, tmp_path / "acme", names=["app.example.org"], authz_reuse=0)
    gw = Gateway(env, grid, acme)
    try:
        gw.cfg["acme"]["enabled"] = "no"
        gw.start()
        env.deploy_fqdn("38-130-app", "app.example.org", [backend], ips=(PUBLIC_V4,))
        env.daemon.stop()
        key = env.daemon.root / "acme" / "account.key"
        key.unlink()
        key.mkdir()
        gw.cfg["acme"]["enabled"] = "yes"
        env.write_config(gw.cfg)
        log_mark = env.daemon.mark()
        env.daemon.start()
        grid.configure_uplinks(timeout=15)
        env.daemon.wait_log(r"error: .*ACME account key .*account\.key", since=log_mark)
        p = curl(grid, "app.example.org", None, "/echo")
        assert p.returncode == 0, p.stderr
        time.sleep(1)
        assert certs(env)["app.example.org"]["State"] == "self-signed"
        assert acme.pebble.orders() == []

        key.rmdir()
        gw.reload()
        wait_cert(env, "app.example.org", lambda c: c["State"] == "valid", scaled(30), "valid")
    finally:
        gw.close()
        acme.stop()

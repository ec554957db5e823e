# SPDX-License-Identifier: Apache-2.0
"""The ACME test environment (acme_env.py) proven with a real third-party
ACME client, Debian's lego, before gatewayd has one:

    [node ns gwt-acme-<pid>]      unbound + pebble (acme_env.AcmeEnv)
      └── ap<pid> 203.0.113.1 / 2001:db8:1::1
            └── pub [stand-in gateway ns gwt-acmegw-<pid>]
                    203.0.113.10 / 2001:db8:1::10: lego (HTTP-01 on :80),
                    an authoritative DNS stand-in (:53) serving the TXT
                    records lego's exec provider writes, openssl s_server

HTTP-01: pebble resolves the name through unbound and fetches the token
from the stand-in's address. DNS-01: pebble asks unbound, which follows the
NS delegation of _acme-challenge.<domain> to the stand-in. Each success
has a twin that must fail (name pointing elsewhere, delegation removed), so
the successes cannot be accidents. Needs root, pebble, unbound and lego."""

import datetime
import glob
import os
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

import acme_env
from acme_env import GATEWAY_IPS, PEBBLE_NAME, ROUTER_IPS, AcmeEnv, answers
from conftest import scaled
from node import (GATEWAY_V4, GATEWAY_V6, PUBLIC_V4, PUBLIC_V6, LineProc, in_ns, ip, netns_del, netns_exists,
                  nsenter_argv)

LEGO = "/usr/bin/lego"
OPENSSL = "/usr/bin/openssl"
PYTHON = "/usr/bin/python3"


def _why_not():
    why = acme_env.have_prerequisites()
    if why is None and not os.access(LEGO, os.X_OK):
        why = "needs lego (Debian package 'lego')"
    return why


pytestmark = pytest.mark.skipif(_why_not() is not None, reason=_why_not() or "")

FQDN = "app.example.org"  # an FQDN workload: HTTP-01
DOMAIN = "gw1.example.net"  # the gateway's managed domain: the wildcard by DNS-01
ZONES = ["example.org", "example.net"]
VALIDITY = 300  # seconds: pebble's certificateValidityPeriod for these tests
LEGO_TIMEOUT = 60


# ---------------------------------------------------------------------------
# A node namespace and a stand-in for the gateway namespace


class MiniNode:
    """Two namespaces joined by one veth, addressed like node.py's public
    link; removed by name."""

    def __init__(self, tag=None):
        tag = str(tag if tag is not None else os.getpid())
        self.node_ns = "gwt-acme-" + tag
        self.gw_ns = "gwt-acmegw-" + tag
        self.link = "ap" + tag
        self.made = []

    def up(self):
        for ns in (self.node_ns, self.gw_ns):
            netns_del(ns)  # a leftover of a crashed run of this very PID
            ip("netns", "add", ns)
            self.made.append(ns)
            ip("link", "set", "lo", "up", ns=ns)
        ip("link", "add", self.link, "type", "veth", "peer", "name", "pub", "netns", self.gw_ns, ns=self.node_ns)
        ip("addr", "add", GATEWAY_V4 + "/24", "dev", self.link, ns=self.node_ns)
        ip("addr", "add", GATEWAY_V6 + "/64", "dev", self.link, "nodad", ns=self.node_ns)
        ip("link", "set", self.link, "up", ns=self.node_ns)
        ip("addr", "add", PUBLIC_V4, "dev", "pub", ns=self.gw_ns)
        ip("addr", "add", PUBLIC_V6, "dev", "pub", "nodad", ns=self.gw_ns)
        ip("link", "set", "pub", "up", ns=self.gw_ns)
        ip("route", "add", "default", "via", GATEWAY_V4, ns=self.gw_ns)
        ip("-6", "route", "add", "default", "via", GATEWAY_V6, ns=self.gw_ns)
        return self

    def down(self):
        for ns in reversed(self.made):
            netns_del(ns)
        self.made = []


# The authoritative stand-in for gatewayd's DNS responder: zones given on the
# command line; TXT records read from a file ("<name> <value>" lines, written
# by the lego exec hook below) at every query; every query printed.
AUTH_SERVER = r"""
import sys, time
from dnslib import QTYPE, RCODE, RR, NS, SOA, TXT
from dnslib.server import BaseResolver, DNSLogger, DNSServer

txt_file, zones, addrs = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split(",")

def txts(name):
    try:
        lines = open(txt_file).read().splitlines()
    except FileNotFoundError:
        return []
    return [l.split(" ", 1)[1] for l in lines if l.split(" ", 1)[0] == name]

class R(BaseResolver):
    def resolve(self, req, handler):
        q = req.q
        name = str(q.qname).rstrip(".").lower()
        qtype = QTYPE[q.qtype]
        print("QUERY %s %s %s" % (handler.client_address[0], name, qtype), flush=True)
        r = req.reply()
        apex = next((z for z in zones if name == z or name.endswith("." + z)), None)
        if apex is None:
            r.header.rcode = RCODE.REFUSED
            return r
        r.header.aa = 1
        soa = RR(apex + ".", QTYPE.SOA, ttl=0,
                 rdata=SOA("ns1.standin.invalid.", "hostmaster.standin.invalid.", (1, 3600, 600, 86400, 0)))
        if qtype == "TXT":
            for v in txts(name):
                r.add_answer(RR(q.qname, QTYPE.TXT, rdata=TXT(v), ttl=300))
        elif qtype == "SOA" and name == apex:
            r.add_answer(soa)
        elif qtype == "NS" and name == apex:
            r.add_answer(RR(q.qname, QTYPE.NS, rdata=NS("ns1.standin.invalid."), ttl=0))
        if not r.rr:
            r.add_auth(soa)
        return r

quiet = DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
for a in addrs:
    for tcp in (False, True):
        DNSServer(R(), address=a, port=53, tcp=tcp, logger=quiet).start_thread()
print("LISTENING", flush=True)
while True:
    time.sleep(3600)
"""

# lego's exec DNS provider calls this with: present|cleanup <fqdn.> <value>.
EXEC_HOOK = r"""#!/usr/bin/python3
import fcntl, sys
action, fqdn, value = sys.argv[1:4]
entry = "%s %s" % (fqdn.rstrip(".").lower(), value)
with open(%(log)r, "a") as log:
    log.write("%s %s\n" % (action, entry))
with open(%(txt)r, "a+") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    f.seek(0)
    lines = [l for l in f.read().splitlines() if l]
    if action == "present":
        lines.append(entry)
    elif action == "cleanup":
        lines = [l for l in lines if l != entry]
    f.seek(0)
    f.truncate()
    f.write("".join(l + "\n" for l in lines))
"""


class AuthStandIn:
    def __init__(self, ns, workdir, zones):
        self.dir = Path(workdir)
        self.txt = self.dir / "standin-txt"
        self.hook = self.dir / "lego-exec-hook"
        self.hook_log = self.dir / "lego-exec-hook.log"
        self.txt.write_text("")
        self.hook.write_text(EXEC_HOOK.replace("%(log)r", repr(str(self.hook_log)))
                             .replace("%(txt)r", repr(str(self.txt))))
        self.hook.chmod(0o755)
        self.proc = LineProc("dns-standin", nsenter_argv(ns, [PYTHON, "-u", "-c", AUTH_SERVER, str(self.txt),
                                                              ",".join(zones), ",".join(GATEWAY_IPS)]),
                             str(self.dir / "dns-standin.log"))
        self.proc.wait_line(r"^LISTENING$", 10)

    def lego_env(self):
        # lego's exec provider is "sequential": it waits EXEC_SEQUENCE_INTERVAL
        # (default 60 s) between the challenges of one order.
        return {"EXEC_PATH": str(self.hook), "EXEC_SEQUENCE_INTERVAL": "1"}

    def queries(self):
        """(client, name, type) of every query, as far as printed yet."""
        with self.proc.cond:
            return [tuple(l.split()[1:]) for l in self.proc.lines if l.startswith("QUERY ")]

    def wait_for(self, pred, timeout=5, what="the DNS stand-in's log"):
        return acme_env.wait_output(self.proc, lambda: pred(self), timeout, what)

    def set_txt(self, name, *values):
        self.txt.write_text("".join("%s %s\n" % (name, v) for v in values))

    def kill(self):
        self.proc.kill()


@pytest.fixture
def mini():
    m = MiniNode()
    try:
        yield m.up()
    finally:
        m.down()


@pytest.fixture
def acme(mini, tmp_path):
    env = AcmeEnv(mini.node_ns, tmp_path / "acme", zones=ZONES, validity=VALIDITY, authz_reuse=0)
    with env:
        yield env


@pytest.fixture
def standin(mini, tmp_path):
    s = AuthStandIn(mini.gw_ns, tmp_path, ["_acme-challenge." + DOMAIN, "_acme-challenge." + FQDN])
    try:
        yield s
    finally:
        s.kill()


# ---------------------------------------------------------------------------
# lego, and checking what it got


def lego(mini, acme, path, domains, solver, env=None):
    """lego run in the stand-in gateway namespace; the CompletedProcess."""
    argv = [LEGO, "--server", acme.pebble.directory_url_ip, "--accept-tos", "--email", "e2e@example.org",
            "--path", str(path)]
    for d in domains:
        argv += ["--domains", d]
    e = dict(os.environ, LEGO_CA_CERTIFICATES=str(acme.https.ca), **(env or {}))
    try:
        return subprocess.run(nsenter_argv(mini.gw_ns, argv + list(solver) + ["run"]), env=e, capture_output=True,
                              text=True, timeout=scaled(LEGO_TIMEOUT), stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as ex:  # killed by subprocess.run
        raise AssertionError("lego did not finish within %ss:\n%s\npebble:\n%s"
                             % (LEGO_TIMEOUT, (ex.stderr or b"").decode(errors="replace")[-3000:],
                                acme.pebble.proc.tail(30)))


def lego_cert(path):
    """(certificate bundle, key, issuer) lego saved under @path."""
    crts = [c for c in glob.glob(str(Path(path) / "certificates" / "*.crt")) if not c.endswith(".issuer.crt")]
    assert len(crts) == 1, crts
    stem = crts[0][:-len(".crt")]
    return crts[0], stem + ".key", stem + ".issuer.crt"


def serve_and_curl(mini, acme, tmp_path, crt, key, issuer, names):
    """openssl s_server with lego's certificate on the stand-in's :443; curl
    from the node namespace must verify it for each of @names against
    pebble's root, and must not against another CA."""
    srv = LineProc("s_server", nsenter_argv(mini.gw_ns, [OPENSSL, "s_server", "-accept", "443", "-cert", crt,
                                                        "-key", key, "-cert_chain", issuer, "-www"]),
                   str(tmp_path / "s_server.log"))
    try:
        srv.wait_line(r"ACCEPT", 10)
        root = str(acme.root_file())
        for name in names:
            p = in_ns(mini.node_ns, ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5",
                                     "--cacert", root, "--resolve", "%s:443:%s" % (name, GATEWAY_IPS[0]),
                                     "https://%s/" % name], check=False)
            assert p.returncode == 0 and p.stdout == "200", (name, p.returncode, p.stdout, p.stderr)
        # The same request trusting another CA fails: curl really verified.
        p = in_ns(mini.node_ns, ["curl", "-sS", "-o", "/dev/null", "--max-time", "5", "--cacert", str(acme.https.ca),
                                 "--resolve", "%s:443:%s" % (names[0], GATEWAY_IPS[0]), "https://%s/" % names[0]],
                  check=False)
        assert p.returncode == 60, (p.returncode, p.stderr)  # CURLE_PEER_FAILED_VERIFICATION
    finally:
        srv.kill()


def leaf_lifetime(crt):
    leaf = x509.load_pem_x509_certificate(Path(crt).read_bytes())
    return leaf.not_valid_after - leaf.not_valid_before, leaf


# ---------------------------------------------------------------------------
# The resolver alone


@pytest.mark.parametrize("family", [4, 6])
def test_resolver_follows_the_delegation(acme, standin, family):
    """TXT of _acme-challenge.<fqdn> comes from the stand-in at the gateway's
    address of one family, asked by unbound itself; records can change."""
    name = "_acme-challenge." + FQDN
    gw_ip = GATEWAY_IPS[0] if family == 4 else GATEWAY_IPS[1]
    router_ip = ROUTER_IPS[0] if family == 4 else ROUTER_IPS[1]
    r = acme.resolver
    r.point(FQDN).delegate(name, "ns1." + DOMAIN, gw_ip).commit()
    standin.set_txt(name, "token-1")

    reply = r.query(name, "TXT")
    assert answers(reply, "TXT") == ["token-1"], reply
    standin.wait_for(lambda s: (router_ip, name, "TXT") in s.queries())
    assert all(q[0] == router_ip for q in standin.queries()), standin.queries()

    # Nothing is cached: a new value is seen at once.
    standin.set_txt(name, "token-2", "token-3")
    assert sorted(answers(r.query(name, "TXT"), "TXT")) == ["token-2", "token-3"]

    # The parent zone's own records, and changing them.
    assert sorted(answers(r.query(FQDN, "A")) + answers(r.query(FQDN, "AAAA"))) == sorted(GATEWAY_IPS)
    r.point(FQDN, "198.51.100.7").commit()
    assert answers(r.query(FQDN, "A")) == ["198.51.100.7"]
    assert answers(r.query(FQDN, "AAAA")) == []
    assert sorted(answers(r.query(PEBBLE_NAME, "A")) + answers(r.query(PEBBLE_NAME, "AAAA"))) == sorted(ROUTER_IPS)
    # Wildcards (name workloads), and a zone added while running.
    r.point("*." + DOMAIN, GATEWAY_IPS[0]).add_zone("late.test").point("x.late.test", "198.51.100.9").commit()
    assert answers(r.query("anyname." + DOMAIN, "A")) == [GATEWAY_IPS[0]]
    assert answers(r.query("x.late.test", "A")) == ["198.51.100.9"]

    # Without the delegation the name does not exist, and the stand-in is
    # not asked again.
    before = len(standin.queries())
    r.undelegate(name).commit()
    reply = r.query(name, "TXT")
    assert reply.header.rcode == 3, reply  # NXDOMAIN
    assert len(standin.queries()) == before


# ---------------------------------------------------------------------------
# lego against pebble


@pytest.mark.timeout_s(90)
def test_http01_certificate_with_lego(acme, mini, tmp_path):
    acme.resolver.point(FQDN).commit()
    mark = acme.pebble.order_mark()
    p = lego(mini, acme, tmp_path / "lego", [FQDN], ["--http", "--http.port", ":80"])
    assert p.returncode == 0, p.stderr[-3000:]

    acme.pebble.wait_for(lambda pb: pb.issued(), what="the certificate in pebble's log")
    assert len(acme.pebble.orders_since(mark)) == 1, acme.pebble.orders()
    assert len(acme.pebble.issued()) == 1
    # pebble fetched the token from the name, i.e. from the stand-in.
    assert len(acme.pebble.validations()) == 3, acme.pebble.validations()
    assert all("//%s:80/.well-known/acme-challenge/" % FQDN in u for u in acme.pebble.validations())
    assert [res for _, res in acme.pebble.authz_results()] == ["VALID"]

    crt, key, issuer = lego_cert(tmp_path / "lego")
    lifetime, leaf = leaf_lifetime(crt)
    assert lifetime == datetime.timedelta(seconds=VALIDITY - 1), lifetime
    assert leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName) == [FQDN]
    serve_and_curl(mini, acme, tmp_path, crt, key, issuer, [FQDN])


@pytest.mark.timeout_s(90)
def test_http01_fails_when_the_name_points_elsewhere(acme, mini, tmp_path):
    """The router side has nothing on :80: connection refused, authz invalid."""
    acme.resolver.point(FQDN, GATEWAY_V4).commit()
    p = lego(mini, acme, tmp_path / "lego", [FQDN], ["--http", "--http.port", ":80"])
    assert p.returncode != 0
    assert "urn:ietf:params:acme:error:connection" in p.stderr, p.stderr[-3000:]
    acme.pebble.wait_for(lambda pb: pb.authz_results(), what="the failed validation in pebble's log")
    assert [res for _, res in acme.pebble.authz_results()] == ["INVALID"]
    assert len(acme.pebble.orders()) == 1 and acme.pebble.issued() == []


@pytest.mark.timeout_s(90)
def test_dns01_wildcard_through_the_delegation(acme, mini, standin, tmp_path):
    """*.<domain> + <domain>: two challenges under one name (one after the
    other: lego's exec provider is sequential), served by the stand-in at
    the gateway's address, found by pebble through unbound."""
    name = "_acme-challenge." + DOMAIN
    acme.resolver.delegate(name).commit()
    p = lego(mini, acme, tmp_path / "lego", ["*." + DOMAIN, DOMAIN],
             ["--dns", "exec", "--dns.disable-cp", "--dns.resolvers", "%s:53" % ROUTER_IPS[0]],
             env=standin.lego_env())
    assert p.returncode == 0, p.stderr[-3000:]

    hook = standin.hook_log.read_text().splitlines()
    assert len([h for h in hook if h.startswith("present %s " % name)]) == 2, hook
    assert standin.txt.read_text() == "", "lego's cleanup ran"
    acme.pebble.wait_for(lambda pb: pb.issued(), what="the certificate in pebble's log")
    # pebble asked unbound three times per challenge (its three concurrent
    # validation attempts); unbound merges identical queries in flight, so
    # the stand-in sees at least one per challenge, from unbound.
    acme.resolver.wait_for(lambda r: r.queries().count(("127.0.0.1", name, "TXT")) >= 6)
    assert acme.resolver.queries().count(("127.0.0.1", name, "TXT")) == 6, acme.resolver.queries()
    txt_from_unbound = [q for q in standin.queries() if q[1:] == (name, "TXT")]
    assert len(txt_from_unbound) >= 2 and all(q[0] in ROUTER_IPS for q in txt_from_unbound), standin.queries()
    assert [res for _, res in acme.pebble.authz_results()] == ["VALID", "VALID"]
    assert len(acme.pebble.orders()) == 1 and len(acme.pebble.issued()) == 1

    crt, key, issuer = lego_cert(tmp_path / "lego")
    lifetime, leaf = leaf_lifetime(crt)
    assert lifetime == datetime.timedelta(seconds=VALIDITY - 1)
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert sorted(sans) == sorted(["*." + DOMAIN, DOMAIN])
    serve_and_curl(mini, acme, tmp_path, crt, key, issuer, ["anyname." + DOMAIN, DOMAIN])


@pytest.mark.timeout_s(90)
@pytest.mark.parametrize("how", ["no-delegation", "wrong-txt"])
def test_dns01_fails_without_the_delegation(acme, mini, standin, tmp_path, how):
    """No NS for _acme-challenge.<domain>: NXDOMAIN; or, instead, a TXT with
    the wrong value in the parent zone. Either way the stand-in (which
    would answer correctly) is never asked."""
    name = "_acme-challenge." + DOMAIN
    if how == "wrong-txt":
        acme.resolver.set(name, "TXT", "not-the-key-authorization").commit()
    p = lego(mini, acme, tmp_path / "lego", ["*." + DOMAIN],
             ["--dns", "exec", "--dns.disable-cp", "--dns.resolvers", "%s:53" % ROUTER_IPS[0]],
             env=standin.lego_env())
    assert p.returncode != 0
    assert "urn:ietf:params:acme:error:unauthorized" in p.stderr, p.stderr[-3000:]
    if how == "no-delegation":
        # pebble 2.4 prints the rcode with %q: '\x03' is NXDOMAIN.
        assert "returned an unsuccessful response: '\\\\x03'" in p.stderr, p.stderr[-3000:]
    else:
        assert "Correct value not found for DNS challenge" in p.stderr, p.stderr[-3000:]
    acme.pebble.wait_for(lambda pb: pb.authz_results(), what="the failed validation in pebble's log")
    assert [res for _, res in acme.pebble.authz_results()] == ["INVALID"]
    assert standin.queries() == []


# ---------------------------------------------------------------------------
# pebble's lifecycle, and cleaning up


def test_pebble_restart_is_a_new_ca(acme):
    root1 = acme.root_file().read_bytes()
    assert acme.pebble.orders() == []
    acme.pebble.restart()
    assert acme.root_file().read_bytes() != root1
    assert acme.pebble.runs == 2
    cfg = acme.gatewayd_config()
    assert cfg["acme"]["directory"] == "https://%s:14000/dir" % PEBBLE_NAME
    assert cfg["dns"]["resolver"] == "127.0.0.1:53"


def test_everything_is_removed(tmp_path):
    m = MiniNode(tag="%d-c" % os.getpid())
    m.up()
    try:
        env = AcmeEnv(m.node_ns, tmp_path / "acme", zones=ZONES).start()
        pids = [env.pebble.proc.proc.pid, env.resolver.proc.proc.pid]
        env.stop()
        for pid in pids:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
        # unbound stopped cleanly on SIGTERM (it leaves its control socket
        # file behind, in the test's directory).
        assert "service stopped" in (env.resolver.dir / "unbound.log").read_text()
        assert not env.resolver.pidfile.exists()
    finally:
        m.down()
    assert not netns_exists(m.node_ns) and not netns_exists(m.gw_ns)

# SPDX-License-Identifier: Apache-2.0
"""A real ACME server and a real recursive resolver for e2e tests, run
inside a network namespace the test owns (the node namespace of node.py, or
the small one of test_acme_env.py).

    [node ns]  unbound   0.0.0.0/:: port 53 (interface-automatic): answers
               │         from its auth-zones (the test's parent zones) and
               │         *iterates* into delegations found there, e.g.
               │         _acme-challenge.app.example.org NS ns1.gw1.example.net
               │         → A/AAAA 203.0.113.10 / 2001:db8:1::10
               pebble    ACME on :14000, management on :15000 (HTTPS, a cert
               │         made here for pebble.acme.test, 127.0.0.1, ::1 and
               │         the router addresses); validates HTTP-01 on :80,
               │         TLS-ALPN-01 on :443, DNS-01 by asking unbound
               └── gw-pub 203.0.113.1 / 2001:db8:1::1 ──► [gateway ns]
                                 203.0.113.10 / 2001:db8:1::10: the gateway
                                 (or a stand-in) answers the challenges

Why a real resolver: DNS-01 for the managed domain is answered by
gatewayd's own DNS responder inside the gateway namespace. The only honest
way to prove that works is what happens on the Internet: the CA asks a
recursive resolver, the resolver finds `_acme-challenge.<domain> NS …` in
the parent zone and asks the gateway's public address. A fake resolver
that answers the TXT itself would prove nothing about the responder.

Usage (gatewayd side, once it exists)::

    env = AcmeEnv(node.node_ns, tmp / "acme", zones=["example.org", "example.net"])
    env.start()
    env.resolver.point("app.example.org")              # → the gateway's IPs
    env.resolver.delegate("_acme-challenge.gw1.example.net", "ns1.gw1.example.net")
    env.resolver.commit()
    cfg = env.gatewayd_config()   # [acme] directory/ca_file, [dns] resolver/listen_port
    ... env.pebble.order_mark(), env.pebble.orders_since(mark), env.root_file() for curl --cacert
    env.stop()

Facts about Debian's pebble 2.4.0 (read in letsencrypt/pebble at tag
v2.4.0: cmd/pebble/main.go, ca/ca.go, wfe/wfe.go, va/va.go; confirmed in
the binary's strings and its log):

- Config keys (JSON, case-insensitive): listenAddress,
  managementListenAddress, certificate, privateKey, httpPort, tlsPort,
  ocspResponderURL, externalAccountBindingRequired, externalAccountMACKeys,
  domainBlocklist, certificateValidityPeriod (seconds; leaf NotAfter =
  NotBefore + period - 1 s; default 157766400 = 5 years; only set at start).
- Environment: PEBBLE_VA_NOSLEEP=1 (no random 0-4 s sleep before each
  validation), PEBBLE_VA_SLEEPTIME, PEBBLE_VA_ALWAYS_VALID=1 (no validation
  at all: every challenge passes), PEBBLE_WFE_NONCEREJECT (percent of good
  nonces rejected as badNonce, default 5), PEBBLE_AUTHZREUSE (percent,
  default 50: a new order reuses a *valid* authorization of the same account
  and identifier; valid authorizations live 1 h. The test is
  `rand.Intn(100) > percent` → new authz, so 0 still reuses 1 % of the
  time and 100 always reuses), PEBBLE_WFE_ORDERS_PER_PAGE,
  PEBBLE_CHAIN_LENGTH (number of intermediates, default 1, 0 panics),
  PEBBLE_ALTERNATE_ROOTS.
- Root and intermediate keys are generated at every start: a restarted
  pebble is a new CA that also forgot every account, order and authz.
  The root is at https://<mgmt>/roots/0, the signing intermediate at
  /intermediates/0 (the certificate URL returns leaf + intermediates).
- Validation: three concurrent attempts per challenge, all must pass (an
  HTTP-01 responder sees three GETs, the resolver three TXT queries);
  15 s timeout. With -dnsserver, HTTP-01 and TLS-ALPN-01 ask AAAA first,
  then A, and dial only the first address: a name with an AAAA record is
  validated over IPv6 only. The resolver is asked by UDP with RD set.
  Wildcard identifiers get only dns-01; other names get http-01,
  tls-alpn-01 and dns-01.
- One log line per new order: `Added order "<id>" to the db` (then
  `There are now N orders in the db`); `Issued certificate serial <hex>
  for order <id>`; `authz <id> set VALID|INVALID by completed challenge
  <id>`; every newly created authorization logs `There are now N
  authorizations in the db` (a reused one logs nothing). Pebble.orders()
  counts the first: "no new order after a restart" is
  `pebble.orders_since(mark) == []`.
- No ARI (renewalInfo, added in pebble v2.6.0) and no profiles (v2.7.0):
  ARI and profile selection can only be unit-tested against a fake server.
  No `replaces` field in newOrder either. The management port has no order
  listing; /cert-status-by-serial/<serial> exists (revocation status).

Ways to make a challenge fail on purpose (all fast, no timeouts):
- HTTP-01: `resolver.point(fqdn, GATEWAY_V4)` — the name resolves to the
  router side, where nothing listens on :80 → connection refused →
  urn:ietf:params:acme:error:connection.
- DNS-01: `resolver.undelegate(name)` → NXDOMAIN (pebble says "DNS
  lookup for … returned an unsuccessful response: '\\x03'", the rcode
  printed with %q), or `resolver.set(name, "TXT", "wrong")` (without a
  delegation) → "Correct value not found for DNS challenge"; both
  urn:ietf:params:acme:error:unauthorized.
- Pointing at an address where nothing answers is slow: pebble waits up
  to 15 s, and unbound keeps retrying a delegated server that does not
  answer (no SERVFAIL within a minute).
- pebble's `domainBlocklist` makes newOrder fail (rejectedIdentifier), not
  a challenge.
Remember authorization reuse above: a name that validated less than an
hour ago may get no new challenge at all (set authz_reuse=0 and check
authz_created() around the attempt).

unbound quirks handled here:
- Its built-in local zones answer NXDOMAIN for test. and invalid.
  (RFC 6761): "local-zone: ... nodefault" so that test zones can be used.
- No DNSSEC (module-config "iterator"), no root trust anchor.
- No cache that outlives a test step: cache-max-ttl 0 and
  cache-max-negative-ttl 0 (a TXT the delegated server gives a TTL of 300
  is asked for again on the next query), and commit() flushes.
- A delegated server that swallowed queries (timeouts, not "port
  unreachable") is backed off: measured, the first answer after it
  recovered took ~1.5 s with unbound's defaults, ~0.35 s with
  infra-host-ttl 1 + infra-keep-probing, ~10 ms after flush() (which also
  drops queries still waiting on it). A delegated server that never
  answers gets no SERVFAIL within a minute: the client times out.
- Identical queries in flight are merged: pebble's three concurrent TXT
  lookups usually reach the delegated server as one.
- do-not-query-localhost stays on: a delegation must point at a real
  interface address. With an NS name *inside* the delegated zone (glue),
  unbound also asks the delegated server for that name's A/AAAA; with an
  NS name in one of the auth-zones (what delegate() does by default) it
  does not.
- so-reuseport off, so that a port clash fails at start; it listens on
  0.0.0.0/:: with interface-automatic (replies leave from the address
  asked), so addresses added later (the daemon's gw-pub end) work too.
"""

import ctypes
import datetime
import http.client
import ipaddress
import json
import os
import re
import shutil
import socket
import ssl
import threading
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from dnslib import QTYPE, DNSRecord

from conftest import Deadline, scaled
from node import GATEWAY_V4, GATEWAY_V6, NETNS_RUN, PUBLIC_V4, PUBLIC_V6, LineProc, nsenter_argv, run

PEBBLE = shutil.which("pebble") or "/usr/bin/pebble"
UNBOUND = shutil.which("unbound") or "/usr/sbin/unbound"
UNBOUND_CONTROL = shutil.which("unbound-control") or "/usr/sbin/unbound-control"

# The gateway's public addresses (what names point at, where delegations go).
GATEWAY_IPS = (PUBLIC_V4.split("/")[0], PUBLIC_V6.split("/")[0])
# The node side of the public link ("upstream router"): where the gateway
# namespace reaches pebble and the resolver.
ROUTER_IPS = (GATEWAY_V4, GATEWAY_V6)
PEBBLE_NAME = "pebble.acme.test"
PEBBLE_ZONE = "acme.test"
ACME_PORT = 14000
MGMT_PORT = 15000
# What the environment itself uses inside the namespace: it exists before
# the daemon made the public link (pebble and unbound listen on all).
LOCAL_IP = "127.0.0.1"


# A directory Debian's AppArmor profile for unbound lets it read and write
# (owner rw): a resolver_dir below it works with the profile enforced.
UNBOUND_APPARMOR_DIR = "/var/lib/unbound"


def have_prerequisites(resolver_dir=None):
    """None when this machine can run the ACME environment (with the
    resolver's files in @resolver_dir, see AcmeEnv), else why not."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for path, pkg in ((PEBBLE, "pebble"), (UNBOUND, "unbound"), (UNBOUND_CONTROL, "unbound")):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            return "needs %s (Debian package '%s')" % (path, pkg)
    # Debian ships an AppArmor profile for /usr/sbin/unbound that allows
    # only /etc/unbound and /var/lib/unbound; enforced, our temp config is
    # unreadable (one below UNBOUND_APPARMOR_DIR is not).
    if resolver_dir is not None and Path(resolver_dir).resolve().is_relative_to(UNBOUND_APPARMOR_DIR):
        return None
    try:
        with open("/sys/kernel/security/apparmor/profiles") as f:
            if any(line.startswith("unbound (enforce)") for line in f):
                return "AppArmor enforces unbound's profile (it cannot read a test's config)"
    except OSError:
        pass
    return None


# ---------------------------------------------------------------------------
# Sockets inside a namespace (no process per query)

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


def ns_socket(ns, family, type_):
    """A socket created in network namespace @ns (it stays there for its
    life). Made on a short-lived thread that setns()es itself, so the test
    process' own namespace never changes."""
    out = {}

    def work():
        try:
            fd = os.open(os.path.join(NETNS_RUN, ns), os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    e = ctypes.get_errno()
                    raise OSError(e, "setns(%s): %s" % (ns, os.strerror(e)))
            finally:
                os.close(fd)
            out["sock"] = socket.socket(family, type_)
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            out["err"] = e

    t = threading.Thread(target=work, name="setns-" + ns)
    t.start()
    t.join()
    if "err" in out:
        raise out["err"]
    return out["sock"]


def _family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def dns_query(ns, server, name, qtype="A", timeout=3.0, tcp=False):
    """Ask @server ("ip:port" or (ip, port)) from inside @ns; the parsed
    reply (dnslib.DNSRecord). Raises socket.timeout when nothing answers."""
    host, port = split_hostport(server) if isinstance(server, str) else server
    q = DNSRecord.question(name, qtype)
    packet = q.pack()
    s = ns_socket(ns, _family(host), socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
    try:
        s.settimeout(scaled(timeout))
        if tcp:
            s.connect((host, port))
            s.sendall(len(packet).to_bytes(2, "big") + packet)
            n = int.from_bytes(_recv_exact(s, 2), "big")
            reply = _recv_exact(s, n)
        else:
            s.sendto(packet, (host, port))
            while True:
                reply, _ = s.recvfrom(65535)
                if reply[:2] == packet[:2]:
                    break
    finally:
        s.close()
    return DNSRecord.parse(reply)


def _recv_exact(s, n):
    b = b""
    while len(b) < n:
        d = s.recv(n - len(b))
        if not d:
            raise ConnectionError("short DNS/TCP reply")
        b += d
    return b


def answers(reply, qtype=None):
    """The rdata of @reply's answer records (of @qtype when given) as text;
    TXT records without their quotes."""
    out = []
    for rr in reply.rr:
        t = QTYPE[rr.rtype]
        if qtype and t != qtype:
            continue
        if t == "TXT":
            out.append(b"".join(rr.rdata.data).decode())
        else:
            out.append(str(rr.rdata).rstrip(".") if t in ("NS", "CNAME") else str(rr.rdata))
    return out


def split_hostport(hp):
    """"1.2.3.4:53" / "[2001:db8::1]:53" → (host, port)."""
    m = re.fullmatch(r"\[([^\]]+)\]:(\d+)|([^:]+):(\d+)", hp)
    if not m:
        raise ValueError("not host:port: %r" % hp)
    return (m.group(1), int(m.group(2))) if m.group(1) else (m.group(3), int(m.group(4)))


def https_get(ns, addr, port, path, cafile, host=None, timeout=5.0):
    """GET https://<host>:<port><path> connecting to @addr from inside @ns,
    verifying against @cafile. Returns (status, body bytes)."""
    ctx = ssl.create_default_context(cafile=str(cafile))

    class Conn(http.client.HTTPSConnection):
        def connect(self):
            s = ns_socket(ns, _family(addr), socket.SOCK_STREAM)
            try:
                s.settimeout(self.timeout)
                s.connect((addr, port))
                self.sock = ctx.wrap_socket(s, server_hostname=host or addr)
            except BaseException:
                s.close()
                raise

    c = Conn(host or addr, port, context=ctx, timeout=scaled(timeout))
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def wait_output(proc, pred, timeout, what):
    """Wait until pred() is truthy, re-checking whenever @proc (a LineProc)
    prints a line; returns pred()'s value."""
    dl = Deadline(timeout, what)
    with proc.cond:  # an RLock: pred() may read the lines too
        while True:
            v = pred()
            if v:
                return v
            if dl.expired:
                raise AssertionError("timed out after %.1fs waiting for %s:\n%s" % (dl.seconds, what, proc.tail()))
            proc.cond.wait(min(0.2, dl.left()))


# ---------------------------------------------------------------------------
# pebble's own HTTPS certificate


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


class HttpsCert:
    """A throwaway CA (ca.pem: what gatewayd's `ca_file` and curl trust) and
    the leaf pebble serves its ACME and management endpoints with."""

    def __init__(self, workdir, names=(PEBBLE_NAME,), ips=("127.0.0.1", "::1") + ROUTER_IPS):
        d = Path(workdir)
        self.ca = d / "pebble-https-ca.pem"
        self.cert = d / "pebble-https.pem"
        self.key = d / "pebble-https.key"
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gatewayd e2e pebble HTTPS CA")])
        start, end = _now() - datetime.timedelta(hours=1), _now() + datetime.timedelta(days=2)
        ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
              .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(start).not_valid_after(end)
              .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
              .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                             critical=True)
              .sign(ca_key, hashes.SHA256()))
        key = ec.generate_private_key(ec.SECP256R1())
        sans = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        leaf = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
                .issuer_name(ca_name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(end)
                .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .sign(ca_key, hashes.SHA256()))
        self.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        self.cert.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
        self.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        os.chmod(self.key, 0o600)


# ---------------------------------------------------------------------------
# unbound: a recursive resolver with the test's parent zones


def _norm(name):
    return name.rstrip(".").lower()


def _is_under(name, apex):
    return name == apex or name.endswith("." + apex)


class Resolver:
    """unbound in @ns, listening on every address of the namespace (port
    @port), with one auth-zone (for-upstream) per parent zone. Records are
    kept here and written to zone files by commit(), which reloads them
    through unbound-control (unix socket in @workdir) and flushes the cache.

    Names are absolute without the final dot; a record belongs to the
    longest zone apex it ends with (records below a delegation are glue)."""

    def __init__(self, ns, workdir, zones=(), port=53):
        self.ns = ns
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.conf = self.dir / "unbound.conf"
        self.ctl = self.dir / "unbound.ctl"
        self.pidfile = self.dir / "unbound.pid"
        self.zones = {}  # apex -> {name: {rtype: [values]}}
        self._serial = int(time.time()) & 0x7FFFFFFF
        self._dirty = set()
        self._config_changed = False
        self.proc = None
        for z in zones:
            self.add_zone(z)

    # -- addresses ---------------------------------------------------------
    @property
    def address(self):
        """From the namespace itself (pebble, gatewayd in the node ns)."""
        return "127.0.0.1:%d" % self.port

    @property
    def router_address(self):
        """From the gateway namespace (via the public link)."""
        return "%s:%d" % (ROUTER_IPS[0], self.port)

    # -- records -----------------------------------------------------------
    def add_zone(self, apex):
        """A parent zone served from local data (SOA/NS made up). Added
        after start(), the configuration is reloaded by commit()."""
        apex = _norm(apex)
        if apex not in self.zones:
            self.zones[apex] = {}
            self._dirty.add(apex)
            self._config_changed = True
        return self

    def zone_of(self, name):
        name = _norm(name)
        best = None
        for apex in self.zones:
            if _is_under(name, apex) and (best is None or len(apex) > len(best)):
                best = apex
        if best is None:
            raise ValueError("%s is in none of the resolver's zones %s" % (name, sorted(self.zones)))
        return best

    def set(self, name, rtype, *values):
        """Replace the @rtype RRset of @name (no values: remove it). Values
        are zone-file rdata; names in NS/CNAME may omit the final dot; TXT
        values are plain strings (quoted here)."""
        name, rtype = _norm(name), rtype.upper()
        apex = self.zone_of(name)
        node = self.zones[apex].setdefault(name, {})
        if values:
            node[rtype] = [str(v) for v in values]
        else:
            node.pop(rtype, None)
            if not node:
                del self.zones[apex][name]
        self._dirty.add(apex)
        return self

    def get(self, name, rtype):
        name = _norm(name)
        return list(self.zones[self.zone_of(name)].get(name, {}).get(rtype.upper(), []))

    def remove(self, name):
        """Every record of @name."""
        name = _norm(name)
        apex = self.zone_of(name)
        if self.zones[apex].pop(name, None) is not None:
            self._dirty.add(apex)
        return self

    def point(self, name, *ips):
        """A/AAAA of @name := @ips (default: the gateway's public IPs)."""
        ips = ips or GATEWAY_IPS
        v4 = [i for i in ips if ipaddress.ip_address(i).version == 4]
        v6 = [i for i in ips if ipaddress.ip_address(i).version == 6]
        self.set(name, "A", *v4)
        return self.set(name, "AAAA", *v6)

    def delegate(self, name, ns_name=None, *ips):
        """@name NS @ns_name, and @ns_name's A/AAAA := @ips (default: the
        gateway's public IPs), in whichever zone holds it (glue when it is
        below @name). Default @ns_name: "ns1." + @name's zone apex, outside
        the delegated zone, so unbound does not ask the delegated server
        for it."""
        name = _norm(name)
        ns_name = _norm(ns_name or "ns1." + self.zone_of(name))
        self.set(name, "NS", ns_name)
        return self.point(ns_name, *ips)

    def undelegate(self, name):
        return self.set(name, "NS")

    def _zone_text(self, apex):
        lines = ["$ORIGIN %s." % apex, "$TTL 0",
                 "@ IN SOA ns.%s. hostmaster.%s. %d 3600 600 86400 0" % (apex, apex, self._serial),
                 "@ IN NS ns.%s." % apex]
        for name in sorted(self.zones[apex]):
            for rtype, values in sorted(self.zones[apex][name].items()):
                for v in values:
                    if rtype == "TXT":
                        v = '"%s"' % v.replace("\\", "\\\\").replace('"', '\\"')
                    elif rtype in ("NS", "CNAME") and not v.endswith("."):
                        v += "."
                    lines.append("%s. IN %s %s" % (name, rtype, v))
        return "\n".join(lines) + "\n"

    def _zone_file(self, apex):
        return self.dir / ("%s.zone" % apex)

    def _write_zones(self):
        self._serial += 1
        for apex in sorted(self._dirty):
            tmp = self._zone_file(apex).with_suffix(".tmp")
            tmp.write_text(self._zone_text(apex))
            os.replace(tmp, self._zone_file(apex))
        changed, self._dirty = self._dirty, set()
        return changed

    def _write_config(self):
        d = str(self.dir)
        zones = "".join(
            'auth-zone:\n  name: "%s"\n  zonefile: "%s"\n  for-upstream: yes\n  for-downstream: no\n'
            "  fallback-enabled: no\n" % (apex, self._zone_file(apex)) for apex in sorted(self.zones))
        self.conf.write_text(f"""# written by tests/e2e/acme_env.py
server:
  verbosity: 1
  interface: 0.0.0.0
  interface: ::0
  interface-automatic: yes
  port: {self.port}
  so-reuseport: no
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "{d}"
  pidfile: "{self.pidfile}"
  use-syslog: no
  logfile: ""
  log-time-ascii: yes
  log-queries: yes
  access-control: 0.0.0.0/0 allow
  access-control: ::/0 allow
  module-config: "iterator"
  # unbound answers NXDOMAIN for test. and invalid. (RFC 6761) by default
  local-zone: "test." nodefault
  local-zone: "invalid." nodefault
  num-threads: 1
  msg-cache-size: 1m
  rrset-cache-size: 1m
  cache-max-ttl: 0
  cache-max-negative-ttl: 0
  infra-host-ttl: 1
  infra-keep-probing: yes
remote-control:
  control-enable: yes
  control-interface: "{self.ctl}"
{zones}""")
        self._config_changed = False

    def control(self, *args, check=True):
        """unbound-control against this instance; returns its stdout."""
        return run([UNBOUND_CONTROL, "-c", str(self.conf), *args], check=check).stdout

    def commit(self):
        """Write what changed and make unbound serve it, with nothing cached."""
        if self.proc is None:
            self._write_zones()
            return self
        if self._config_changed:
            self._write_zones()
            self._write_config()
            self.control("reload")
        else:
            for apex in self._write_zones():
                self.control("auth_zone_reload", apex)
        self.flush()
        return self

    def flush(self):
        """Forget cached answers and what unbound learnt about servers
        (a delegated server that did not answer is asked again at once)."""
        self.control("flush_zone", ".")
        self.control("flush_infra", "all")
        self.control("flush_requestlist")

    # -- lifecycle ---------------------------------------------------------
    def start(self, timeout=10):
        if not self.zones:
            raise ValueError("a resolver without zones would only iterate from the root")
        self._dirty |= set(self.zones)
        self._write_zones()
        self._write_config()
        run([shutil.which("unbound-checkconf") or "/usr/sbin/unbound-checkconf", str(self.conf)])
        self.proc = LineProc("unbound", nsenter_argv(self.ns, [UNBOUND, "-d", "-c", str(self.conf)]),
                             str(self.dir / "unbound.log"))
        try:
            self.proc.wait_line(r"start of service", timeout)
            # It answers (from the namespace, like its clients).
            dl = Deadline(timeout, "unbound to answer")
            while True:
                try:
                    dns_query(self.ns, self.address, next(iter(self.zones)), "SOA", timeout=0.5)
                    return self
                except OSError:
                    if dl.expired or self.proc.proc.poll() is not None:
                        raise AssertionError("unbound does not answer:\n" + self.proc.tail())
                    time.sleep(0.05)
        except BaseException:
            self.stop()
            raise

    def stop(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc = None

    def query(self, name, qtype="A", timeout=3.0):
        return dns_query(self.ns, self.address, name, qtype, timeout)

    def queries(self):
        """(client, name, type) of every query unbound was asked (log-queries)."""
        rx = re.compile(r"info: (\S+) (\S+)\. (\S+) IN$")
        with self.proc.cond:
            lines = list(self.proc.lines)
        return [m.groups() for m in map(rx.search, lines) if m]

    def wait_for(self, pred, timeout=10, what="unbound's log"):
        """Wait until pred(self) is truthy (e.g. on queries()); its value."""
        return wait_output(self.proc, lambda: pred(self), timeout, what)


# ---------------------------------------------------------------------------
# pebble


class Pebble:
    """Debian's pebble in @ns, configured for a gateway: validation on :80
    and :443 of whatever the resolver says, DNS through @resolver.
    @address is the one in directory_url_ip (the router side by default,
    reachable from the gateway namespace); pebble listens on all addresses.

    @validity: certificate lifetime in seconds (certificateValidityPeriod);
    @nonce_reject / @authz_reuse: percentages (None: pebble's defaults 5 and
    50); @always_valid: skip validation; @chain_length: intermediates;
    @blocklist: domainBlocklist."""

    def __init__(self, ns, workdir, https, resolver, address=ROUTER_IPS[0], acme_port=ACME_PORT,
                 mgmt_port=MGMT_PORT, http_port=80, tls_port=443, validity=None, nonce_reject=None,
                 authz_reuse=None, always_valid=False, chain_length=None, blocklist=()):
        self.ns = ns
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.https = https
        self.resolver = resolver
        self.address = address
        self.acme_port = acme_port
        self.mgmt_port = mgmt_port
        self.config_path = self.dir / "pebble.json"
        self.root_path = self.dir / "pebble-root.pem"
        self.chain_path = self.dir / "pebble-intermediates.pem"
        self.settings = dict(http_port=http_port, tls_port=tls_port, validity=validity, nonce_reject=nonce_reject,
                             authz_reuse=authz_reuse, always_valid=always_valid, chain_length=chain_length,
                             blocklist=list(blocklist))
        self.proc = None
        self.runs = 0

    @property
    def directory_url(self):
        """By name (resolved by the test's resolver to @address)."""
        return "https://%s:%d/dir" % (PEBBLE_NAME, self.acme_port)

    @property
    def directory_url_ip(self):
        return "https://%s:%d/dir" % (self._hostport_ip(), self.acme_port)

    def _hostport_ip(self):
        return "[%s]" % self.address if ":" in self.address else self.address

    def _config(self):
        s = self.settings
        c = {
            "listenAddress": "0.0.0.0:%d" % self.acme_port,
            "managementListenAddress": "0.0.0.0:%d" % self.mgmt_port,
            "certificate": str(self.https.cert),
            "privateKey": str(self.https.key),
            "httpPort": s["http_port"],
            "tlsPort": s["tls_port"],
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
        if s["validity"] is not None:
            c["certificateValidityPeriod"] = int(s["validity"])
        if s["blocklist"]:
            c["domainBlocklist"] = s["blocklist"]
        return {"pebble": c}

    def _env(self):
        s = self.settings
        env = {k: v for k, v in os.environ.items() if not k.startswith("PEBBLE_")}
        env["PEBBLE_VA_NOSLEEP"] = "1"
        if s["nonce_reject"] is not None:
            env["PEBBLE_WFE_NONCEREJECT"] = str(s["nonce_reject"])
        if s["authz_reuse"] is not None:
            env["PEBBLE_AUTHZREUSE"] = str(s["authz_reuse"])
        if s["always_valid"]:
            env["PEBBLE_VA_ALWAYS_VALID"] = "1"
        if s["chain_length"] is not None:
            if int(s["chain_length"]) < 1:
                raise ValueError("pebble 2.4 panics with PEBBLE_CHAIN_LENGTH < 1")
            env["PEBBLE_CHAIN_LENGTH"] = str(s["chain_length"])
        return env

    def start(self, timeout=15, **settings):
        """Start (with @settings overriding the constructor's); returns once
        the management port served the root, which is then in root_file."""
        assert self.proc is None, "pebble already running"
        for k, v in settings.items():
            if k not in self.settings:
                raise TypeError("unknown pebble setting %r" % k)
            self.settings[k] = v
        self.config_path.write_text(json.dumps(self._config(), indent=2))
        self.runs += 1
        self.proc = LineProc("pebble", nsenter_argv(self.ns, [PEBBLE, "-config", str(self.config_path),
                                                              "-dnsserver", self.resolver.address]),
                             str(self.dir / "pebble.log"), env=self._env())
        try:
            return self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout):
        # Printed just before the listeners are opened: poll them after it.
        self.proc.wait_line(r"ACME directory available at", timeout)
        with self.proc.cond:
            self._first_line = len(self.proc.lines)
        dl = Deadline(timeout, "pebble to serve")
        while True:
            try:
                self.download_roots()
                st, body = https_get(self.ns, LOCAL_IP, self.acme_port, "/dir", self.https.ca, timeout=2)
                if st == 200 and b"newOrder" in body:
                    return self
            except (OSError, ssl.SSLError, http.client.HTTPException, AssertionError):
                pass
            if self.proc.proc.poll() is not None or dl.expired:
                raise AssertionError("pebble does not serve its directory:\n" + self.proc.tail())
            time.sleep(0.05)

    def stop(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc = None

    def restart(self, **settings):
        """A new pebble: new root, no accounts, no orders (see above)."""
        self.stop()
        return self.start(**settings)

    # -- roots ---------------------------------------------------------------
    def download_roots(self, path=None, intermediates=True):
        """Fetch /roots/0 from the management port into @path (default
        root_file) and, with @intermediates, /intermediates/0 into
        chain_path. Returns the root's path."""
        path = Path(path or self.root_path)
        st, body = https_get(self.ns, LOCAL_IP, self.mgmt_port, "/roots/0", self.https.ca)
        if st != 200 or b"BEGIN CERTIFICATE" not in body:
            raise AssertionError("pebble /roots/0: %d %r" % (st, body[:200]))
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(body)
        os.replace(tmp, path)
        if intermediates:
            st, body = https_get(self.ns, LOCAL_IP, self.mgmt_port, "/intermediates/0", self.https.ca)
            if st != 200:
                raise AssertionError("pebble /intermediates/0: %d %r" % (st, body[:200]))
            self.chain_path.write_bytes(body)
        return path

    def root_file(self):
        return self.root_path

    # -- what it did (its log) ----------------------------------------------
    def _lines(self):
        with self.proc.cond:
            return list(self.proc.lines[self._first_line:])

    def _matches(self, rx):
        rx = re.compile(rx)
        return [m for m in map(rx.search, self._lines()) if m]

    def orders(self):
        """IDs of the orders this pebble run created, in order."""
        return [m.group(1) for m in self._matches(r'Added order "([^"]+)" to the db')]

    def order_mark(self):
        return len(self.orders())

    def orders_since(self, mark):
        return self.orders()[mark:]

    def issued(self):
        """(serial hex, order id) of every certificate issued."""
        return [m.groups() for m in self._matches(r"Issued certificate serial (\S+) for order (\S+)")]

    def authz_created(self):
        """How many new authorizations were made (reused ones are not)."""
        return len(self._matches(r"There are now \d+ authorizations in the db"))

    def authz_results(self):
        """(authz id, "VALID"|"INVALID") for every completed validation."""
        return [m.groups() for m in self._matches(r"authz (\S+) set (VALID|INVALID) by completed challenge")]

    def validations(self):
        """URLs pebble fetched for HTTP-01 (three per challenge)."""
        return [m.group(1) for m in self._matches(r"Attempting to validate w/ HTTP: (\S+)")]

    def wait_for(self, pred, timeout=10, what="pebble log"):
        """Wait until pred(self) is truthy (re-checked on each log line);
        returns its value. Log lines reach us a little after pebble acted."""
        return wait_output(self.proc, lambda: pred(self), timeout, what)


# ---------------------------------------------------------------------------
# Both, for a node


class AcmeEnv:
    """unbound + pebble in @ns. @zones: the parent zones the resolver
    serves (names the tests use must fall in one of them); pebble's own
    name (pebble.acme.test → @pebble_address) is added. @resolver_dir:
    where unbound's files go (default <workdir>/unbound; one below
    UNBOUND_APPARMOR_DIR works where AppArmor enforces unbound's profile).
    @pebble: Pebble keyword settings. Usable as a context manager."""

    def __init__(self, ns, workdir, zones=(), dns_port=53, pebble_address=ROUTER_IPS[0], pebble_ips=ROUTER_IPS,
                 resolver_dir=None, **pebble):
        self.ns = ns
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.resolver = Resolver(ns, resolver_dir or self.dir / "unbound", zones=list(zones) + [PEBBLE_ZONE],
                                 port=dns_port)
        self.resolver.point(PEBBLE_NAME, *pebble_ips)
        self.https = None
        self.pebble_address = pebble_address
        self.pebble_settings = pebble
        self.pebble = None

    def start(self, timeout=20):
        dl = Deadline(timeout, "ACME environment")
        try:
            self.https = HttpsCert(self.dir)
            self.resolver.start(dl.left())
            self.pebble = Pebble(self.ns, self.dir / "pebble", self.https, self.resolver, address=self.pebble_address,
                                 **self.pebble_settings)
            self.pebble.start(dl.left())
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        """Kill pebble and unbound (by PID); files stay in workdir."""
        errors = []
        for step in (self.pebble.stop if self.pebble else None, self.resolver.stop):
            if step is None:
                continue
            try:
                step()
            except Exception as e:  # noqa: BLE001 - keep tearing down
                errors.append(e)
        if errors:
            raise errors[0]

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def root_file(self):
        """pebble's current root (for curl --cacert); re-fetched after a
        pebble restart by Pebble.start()."""
        return self.pebble.root_file()

    def gatewayd_config(self, by_name=True):
        """conftest-style overrides for gatewayd: the ACME directory (by
        name through the resolver, or by IP), the CA that verifies pebble's
        HTTPS, the resolver, the responder's port."""
        return {
            "acme": {"directory": self.pebble.directory_url if by_name else self.pebble.directory_url_ip,
                     "ca_file": str(self.https.ca)},
            "dns": {"resolver": self.resolver.address, "listen_port": "53"},
        }

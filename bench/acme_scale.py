#!/usr/bin/python3
"""Scale of the certificate manager (issue 8): N FQDN workloads on one node,
each with a stored certificate that an ACME server issued.

What it measures (gatewayd only; see bench/README.md "acme_scale.py"):
  * start-up: time to READY=1 and until ListCertificates shows all N entries
    valid, for N workloads restored from state files with their issued
    certificates in <root>/certs/acme/;
  * memory: VmRSS (and the heap in use, via gdb's mallinfo2 when gdb is
    there) of the daemon with N passthrough workloads (no certificates),
    with N self-signed certificates (ACME off), with N issued ones (ACME off
    and on); per certificate = the difference / N;
  * renewal spread: RenewAt of every entry (`gatewayctl --json certs`): the
    most renewals in any one second, minute and hour, for certificates
    issued over weeks and for the worst case of all N issued in one minute
    (90-day and 6-day lifetimes);
  * ACME traffic: every request the daemon made to the local ACME directory
    (a tiny HTTPS server in this script); with valid stored certificates not
    one order may be made;
  * SetFQDNProxy round trip (p50/p99) and the daemon's CPU per call with N
    certificates managed, interleaved with a daemon that manages --small.

Everything runs in a network namespace of its own (unshare(CLONE_NEWNET) of
this process; it dies with it): the daemon, its Redis, a fake DNS resolver
and the ACME server all listen on its 127.0.0.1, so no packet leaves. Every
process is started by this script, tracked by PID and stopped on exit, on
error and on SIGINT/SIGTERM; the temporary directory is removed unless
--keep-tmp.

Usage (as root; a release or debugoptimized build):
  /usr/bin/python3 bench/acme_scale.py [--n 10000] [--small 100] [--calls 50]
      [--ari] [--heaptrack] [--keep-tmp] [--out bench/results]
  GATEWAYD / GATEWAYCTL select the binaries (default build/daemon/gatewayd,
  build/cli/gatewayctl). Needs python3-cryptography, python3-redis,
  python3-dnslib, redis-server.
"""
import argparse
import base64
import bisect
import ctypes
import datetime
import http.server
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCH_DIR)
sys.path.insert(0, os.path.join(REPO_DIR, "tests", "e2e"))
import fakes  # noqa: E402  (tests/e2e: the fake DNS resolver)
import gobus  # noqa: E402  (tests/e2e: the Go-compatible zbus client)

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402

GATEWAYD = os.environ.get("GATEWAYD") or os.path.join(REPO_DIR, "build", "daemon", "gatewayd")
GATEWAYCTL = os.environ.get("GATEWAYCTL") or os.path.join(REPO_DIR, "build", "cli", "gatewayctl")
CLK_TCK = os.sysconf("SC_CLK_TCK")
CLONE_NEWNET = 0x40000000
PUBLIC_IP = "198.51.100.2"  # the gateway's public IPv4 (TEST-NET-2); FQDNs resolve to it
DOMAIN = "bench.invalid"
BACKEND = "http://[300:1:2::3]:9000"  # never contacted
BACKEND_PT = "[300:1:2::3]:443"
DAY = 86400


def fqdn_of(i):
    return "app%d.tenant%d.example.org" % (i, i % 100)


def wlid_of(i):
    return "%d-%d-web" % (1000 + i % 500, 100000 + i)


# --------------------------------------------------------------------------
# processes: everything started here is tracked and stopped by PID
# --------------------------------------------------------------------------
_procs = []


def spawn(argv, **kw):
    p = subprocess.Popen(argv, start_new_session=True, **kw)
    _procs.append(p)
    return p


def stop(p, sig=signal.SIGTERM, grace=10.0):
    if p.poll() is None:
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(5)
    if p in _procs:
        _procs.remove(p)


def cleanup():
    while _procs:
        try:
            stop(_procs[-1])
        except Exception:  # noqa: BLE001 - never leave the others running
            _procs.pop()


def _on_signal(signum, frame):
    raise KeyboardInterrupt("signal %d" % signum)


def own_netns():
    """Move this process (still single-threaded) into a new network namespace
    with only lo: every socket and child made afterwards lives there, and
    the namespace goes away with the last of them."""
    libc = ctypes.CDLL(None, use_errno=True)
    if threading.active_count() != 1:
        raise RuntimeError("own_netns() must run before any thread starts")
    if libc.unshare(CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET) (run as root)")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, timeout=10)


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def heap_in_use(pid):
    """Bytes malloc has handed out and not got back (mallinfo2().uordblks +
    hblkhd, all arenas), read by attaching gdb for a moment; None without
    gdb or glibc's debug symbols."""
    if not shutil.which("gdb"):
        return None
    try:
        p = subprocess.run(["gdb", "-p", str(pid), "-batch", "-nx", "-ex",
                            "p (unsigned long) mallinfo2().uordblks", "-ex",
                            "p (unsigned long) mallinfo2().hblkhd"],
                           capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return None
    vals = re.findall(r"^\$\d+ = (\d+)$", p.stdout, re.M)
    return int(vals[0]) + int(vals[1]) if len(vals) == 2 else None


# --------------------------------------------------------------------------
# certificates: a test CA shaped like Let's Encrypt's (RSA-4096 root, an
# ECDSA intermediate, P-256 leaves with the usual extensions and an SCT-sized
# blob), so the stored files and the parsed objects have realistic sizes
# --------------------------------------------------------------------------
def _now():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def _name(cn, o=None):
    attrs = ([x509.NameAttribute(NameOID.ORGANIZATION_NAME, o)] if o else []) + \
        [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    return x509.Name(attrs)


def _pem_key(k):
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                           serialization.NoEncryption())


def _pem_cert(c):
    return c.public_bytes(serialization.Encoding.PEM)


class TestCA:
    def __init__(self):
        now = _now()
        self.root_key = rsa.generate_private_key(public_exponent=65537, key_size=4096)
        root_name = _name("Bench Root X1", "Bench Security Research Group")
        self.root = (x509.CertificateBuilder().subject_name(root_name).issuer_name(root_name)
                     .public_key(self.root_key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(days=3650))
                     .not_valid_after(now + datetime.timedelta(days=3650))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                                    critical=True)
                     .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.root_key.public_key()),
                                    critical=False)
                     .sign(self.root_key, hashes.SHA256()))
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = _name("Bench E1", "Bench ACME CA")
        self.ski = x509.SubjectKeyIdentifier.from_public_key(self.key.public_key())
        self.cert = (x509.CertificateBuilder().subject_name(self.name).issuer_name(root_name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(days=365))
                     .not_valid_after(now + datetime.timedelta(days=3 * 365))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                     .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                                    critical=True)
                     .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                           ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                     .add_extension(self.ski, critical=False)
                     .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.root_key.public_key()),
                                    critical=False)
                     .add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
                         x509.oid.AuthorityInformationAccessOID.CA_ISSUERS,
                         x509.UniformResourceIdentifier("http://x1.i.bench.invalid/"))]), critical=False)
                     .add_extension(x509.CertificatePolicies([x509.PolicyInformation(
                         x509.ObjectIdentifier("2.23.140.1.2.1"), None)]), critical=False)
                     .add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
                         [x509.UniformResourceIdentifier("http://x1.c.bench.invalid/")], None, None, None)]),
                         critical=False)
                     .sign(self.root_key, hashes.SHA256()))
        self.pem = _pem_cert(self.cert)
        self.aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(self.ski)
        self.rng = random.Random(8)

    def issue(self, name, not_before, lifetime_s):
        """A chain (leaf + intermediate) and its key, as the daemon stores
        it: one PEM, chain then PKCS#8 key. Returns (pem bytes, ARI id)."""
        k = ec.generate_private_key(ec.SECP256R1())
        serial = x509.random_serial_number()
        sct = bytes([0x04, 0x81, 0xf0]) + self.rng.randbytes(0xf0)  # an SCT list's size
        c = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(self.name)
             .public_key(k.public_key()).serial_number(serial)
             .not_valid_before(not_before)
             .not_valid_after(not_before + datetime.timedelta(seconds=lifetime_s - 1))
             .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                            critical=True)
             .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(k.public_key()), critical=False)
             .add_extension(self.aki, critical=False)
             .add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
                 x509.oid.AuthorityInformationAccessOID.CA_ISSUERS,
                 x509.UniformResourceIdentifier("http://e1.i.bench.invalid/"))]), critical=False)
             .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
             .add_extension(x509.CertificatePolicies([x509.PolicyInformation(
                 x509.ObjectIdentifier("2.23.140.1.2.1"), None)]), critical=False)
             .add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2"), sct),
                            critical=False)
             .sign(self.key, hashes.SHA256()))
        pem = _pem_cert(c) + self.pem + _pem_key(k)
        return pem, ari_id(self.ski.digest, serial)


def ari_id(key_id, serial):
    """RFC 9773 §4.1: base64url(AKI keyIdentifier) "." base64url(serial DER
    content), as acme/cert.c computes it."""
    n = max(1, (serial.bit_length() + 8) // 8)  # DER INTEGER: a leading 0 when the top bit is set
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()  # noqa: E731
    return b64(key_id) + "." + b64(serial.to_bytes(n, "big"))


def self_signed(name):
    k = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    c = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
         .public_key(k.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(hours=1))
         .not_valid_after(now + datetime.timedelta(days=397))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
         .sign(k, hashes.SHA256()))
    return _pem_cert(c), _pem_key(k)


def server_cert(wd):
    """The ACME server's own HTTPS certificate for 127.0.0.1 and the CA file
    the daemon trusts it by ([acme] ca_file)."""
    now = _now()
    ck = ec.generate_private_key(ec.SECP256R1())
    cn = _name("bench acme server CA")
    ca = (x509.CertificateBuilder().subject_name(cn).issuer_name(cn).public_key(ck.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ck, hashes.SHA256()))
    k = ec.generate_private_key(ec.SECP256R1())
    import ipaddress
    c = (x509.CertificateBuilder().subject_name(_name("127.0.0.1")).issuer_name(cn).public_key(k.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
         .not_valid_after(now + datetime.timedelta(days=30))
         .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                        critical=False)
         .sign(ck, hashes.SHA256()))
    paths = {n: os.path.join(wd, n) for n in ("acme-ca.pem", "acme-srv.pem", "acme-srv.key")}
    with open(paths["acme-ca.pem"], "wb") as f:
        f.write(_pem_cert(ca))
    with open(paths["acme-srv.pem"], "wb") as f:
        f.write(_pem_cert(c))
    with open(paths["acme-srv.key"], "wb") as f:
        f.write(_pem_key(k))
    return paths


# --------------------------------------------------------------------------
# the ACME server: answers the directory, nonces and (with --ari)
# renewalInfo; refuses orders and accounts; records every request
# --------------------------------------------------------------------------
class AcmeServer:
    def __init__(self, paths, ari=False):
        self.ari = ari
        self.windows = {}  # ARI id -> (start, end) Unix seconds
        self.requests = []  # (monotonic time, method, path, identifiers)
        self.lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _reply(self, code, body=b"", ctype="application/json"):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Replay-Nonce", base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode())
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _problem(self, code, typ, detail):
                self._reply(code, json.dumps({"type": "urn:ietf:params:acme:error:" + typ,
                                              "detail": detail}).encode(), "application/problem+json")

            def _record(self, idents=None):
                with owner.lock:
                    owner.requests.append((time.monotonic(), self.command, self.path, idents))

            def do_HEAD(self):
                self._record()
                self._reply(200 if self.path == "/nonce" else 404)

            def do_GET(self):
                self._record()
                if self.path == "/directory":
                    return self._reply(200, json.dumps(owner.directory()).encode())
                if self.path == "/nonce":
                    return self._reply(204)
                if self.path.startswith("/renewal-info/") and owner.ari:
                    w = owner.windows.get(self.path[len("/renewal-info/"):])
                    if not w:
                        return self._problem(404, "malformed", "unknown certificate")
                    fmt = lambda t: datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(  # noqa: E731
                        "%Y-%m-%dT%H:%M:%SZ")
                    return self._reply(200, json.dumps({"suggestedWindow": {"start": fmt(w[0]),
                                                                            "end": fmt(w[1])}}).encode())
                self._problem(404, "malformed", "not here")

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(min(n, 1 << 20))
                idents = None
                if self.path == "/new-order":
                    try:
                        jws = json.loads(body)
                        pl = jws["payload"]
                        pl = json.loads(base64.urlsafe_b64decode(pl + "=" * (-len(pl) % 4)))
                        idents = [i["value"] for i in pl.get("identifiers", [])]
                    except (ValueError, KeyError, TypeError):
                        idents = ["?"]
                self._record(idents)
                # Nothing is issued here: every order is refused (and counted).
                self._problem(403, "unauthorized", "bench server: no orders")

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(paths["acme-srv.pem"], paths["acme-srv.key"])
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.url = "https://127.0.0.1:%d/directory" % self.port
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                       daemon=True)
        self.thread.start()

    def directory(self):
        base = "https://127.0.0.1:%d" % self.port
        d = {"newNonce": base + "/nonce", "newAccount": base + "/new-account",
             "newOrder": base + "/new-order", "revokeCert": base + "/revoke", "keyChange": base + "/key-change",
             "meta": {}}
        if self.ari:
            d["renewalInfo"] = base + "/renewal-info"
        return d

    def since(self, t0):
        with self.lock:
            return [r for r in self.requests if r[0] >= t0]

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def summarize_requests(reqs):
    by = {}
    for _, m, path, _ in reqs:
        key = "%s %s" % (m, re.sub(r"^/renewal-info/.*", "/renewal-info/<id>", path))
        by[key] = by.get(key, 0) + 1
    return by


# --------------------------------------------------------------------------
# state directories, as the daemon writes them
# --------------------------------------------------------------------------
def write_workloads(root, templates, n, passthrough=False):
    tmpl = templates["passthrough" if passthrough else "terminate"]
    d = os.path.join(root, "workloads")
    os.makedirs(d, mode=0o700, exist_ok=True)
    for i in range(n):
        wl = dict(tmpl, id=wlid_of(i), fqdn=fqdn_of(i))
        with open(os.path.join(d, "wl-%s.json" % wlid_of(i)), "w") as f:
            json.dump(wl, f, indent=2)


def write_account(root, directory_url):
    d = os.path.join(root, "acme")
    os.makedirs(d, mode=0o700, exist_ok=True)
    with open(os.path.join(d, "account.key"), "wb") as f:
        f.write(_pem_key(ec.generate_private_key(ec.SECP256R1())))
    with open(os.path.join(d, "account.json"), "w") as f:
        json.dump({"directory": directory_url, "url": directory_url.rsplit("/", 1)[0] + "/acct/1"}, f)
    for n in os.listdir(d):
        os.chmod(os.path.join(d, n), 0o600)


def write_issued(root, pems):
    d = os.path.join(root, "certs", "acme")
    os.makedirs(d, mode=0o700, exist_ok=True)
    os.chmod(os.path.join(root, "certs"), 0o700)
    for name, pem in pems.items():
        fd = os.open(os.path.join(d, name + ".pem"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)


def write_self_signed(root, n):
    d = os.path.join(root, "certs")
    os.makedirs(d, mode=0o700, exist_ok=True)
    for i in range(n):
        crt, key = self_signed(fqdn_of(i))
        with open(os.path.join(d, fqdn_of(i) + ".crt"), "wb") as f:
            f.write(crt)
        fd = os.open(os.path.join(d, fqdn_of(i) + ".key"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)


def make_pems(ca, n, plan, now):
    """plan(i, rng) -> (notBefore datetime, lifetime seconds). Returns
    ({fqdn: pem}, {ari id: (notBefore, notAfter)})."""
    rng = random.Random(n)
    pems, meta = {}, {}
    for i in range(n):
        nb, life = plan(i, rng, now)
        pem, aid = ca.issue(fqdn_of(i), nb, life)
        pems[fqdn_of(i)] = pem
        meta[aid] = (int(nb.timestamp()), int(nb.timestamp()) + life - 1)
    return pems, meta


def plan_spread(i, rng, now):
    """Issued over weeks, none due yet: 80 % 90-day certificates issued in
    the last 55 days (renewal at 2/3 = day 60, up to 1.8 days earlier), 10 %
    45-day ones in the last 28 days, 10 % 6-day ones in the last 2 days."""
    k = i % 10
    if k == 8:
        life, back = 45 * DAY, 28 * DAY
    elif k == 9:
        life, back = 6 * DAY, 2 * DAY
    else:
        life, back = 90 * DAY, 55 * DAY
    return now - datetime.timedelta(seconds=rng.randrange(3600, back)), life


def plan_same_minute(life, age):
    def plan(i, rng, now):
        return now - datetime.timedelta(seconds=age) + datetime.timedelta(seconds=rng.randrange(60)), life
    return plan


# --------------------------------------------------------------------------
# one daemon
# --------------------------------------------------------------------------
class Daemon:
    def __init__(self, wd, name, root, cfg, wrapper=()):
        self.wd, self.name, self.root = wd, name, root
        self.sock = os.path.join(wd, name + "-redis.sock")
        self.redis = spawn(["redis-server", "--port", "0", "--unixsocket", self.sock, "--save", "",
                            "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.sock):
            if time.monotonic() > deadline or self.redis.poll() is not None:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)
        self.conf = os.path.join(wd, name + ".conf")
        with open(self.conf, "w") as f:
            for sec, kv in cfg.items():
                f.write("[%s]\n" % sec + "".join("%s = %s\n" % (k, v) for k, v in kv.items()))
        nsock_path = os.path.join(wd, name + "-notify.sock")
        self.nsock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.nsock.bind(nsock_path)
        self.log = open(os.path.join(wd, name + ".log"), "w")
        env = dict(os.environ, NOTIFY_SOCKET=nsock_path)
        self.t0 = time.monotonic()
        self.proc = spawn(list(wrapper) + [GATEWAYD, "--broker", "unix://" + self.sock, "--root", root,
                                           "--config", self.conf, "--log-target", "stderr"],
                          stdout=self.log, stderr=self.log, env=env)
        self.pid = self.proc.pid
        self.bus = None

    def wait_ready(self, timeout):
        self.nsock.settimeout(0.5)
        deadline = self.t0 + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited with %d; see %s" % (self.name, self.proc.returncode, self.log.name))
            try:
                msg = self.nsock.recv(4096).decode()
            except socket.timeout:
                continue
            if "READY=1" in msg.split("\n"):
                t = time.monotonic() - self.t0
                self.bus = gobus.GoBus(self.sock)
                return t
        raise RuntimeError("%s: no READY=1 within %d s" % (self.name, timeout))

    def certs(self, timeout=120):
        p = subprocess.run([GATEWAYCTL, "--broker", "unix://" + self.sock, "--timeout", str(timeout),
                            "--json", "certs"], capture_output=True, text=True, timeout=timeout + 10)
        if p.returncode != 0:
            raise RuntimeError("gatewayctl certs: %d %s" % (p.returncode, p.stderr.strip()[-300:]))
        return json.loads(p.stdout)

    def wait_certs(self, pred, timeout):
        """Poll ListCertificates until pred(list) holds; returns (seconds
        since spawn, the list)."""
        deadline = self.t0 + timeout
        while True:
            lst = self.certs()
            t = time.monotonic() - self.t0
            if pred(lst):
                return t, lst
            if time.monotonic() > deadline:
                raise RuntimeError("%s: certificates not as expected after %d s" % (self.name, timeout))
            time.sleep(0.2)

    def stop(self):
        if self.bus:
            self.bus.close()
        stop(self.proc)
        stop(self.redis)
        self.nsock.close()
        self.log.close()


def base_config(https_port, dns, acme_url=None, ca_file=None, acme_on=False):
    cfg = {
        "gateway": {"enabled": "yes", "domain": DOMAIN, "public_config": "file",
                    "public_ipv4": PUBLIC_IP + "/24", "gateway_ipv4": "198.51.100.254"},
        "names": {"validation": "off"},
        "proxy": {"address": "127.0.0.1", "https_port": str(https_port), "http_port": "0", "workers": "1"},
        "metrics": {"listen": ""},
        "dns": {"resolver": dns.address, "listen_port": "0", "timeout": "2s"},
        "acme": {"enabled": "yes" if acme_on else "no"},
        "log": {"level": "warning"},
    }
    if acme_url:
        cfg["acme"].update(directory=acme_url, ca_file=ca_file)
    return cfg


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def served_issuer(port, name):
    """The leaf the proxy presents for SNI @name: (issuer CN, serial)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname=name) as t:
            der = t.getpeercert(binary_form=True)
    c = x509.load_der_x509_certificate(der)
    return c.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value, c.serial_number


# --------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------
def max_in_window(times, w):
    """The most entries of sorted @times in any half-open window of @w
    seconds (sliding, not aligned to clock boundaries)."""
    best, j = 0, 0
    for i in range(len(times)):
        while times[i] - times[j] >= w:
            j += 1
        best = max(best, i - j + 1)
    return best


def spread(lst, now):
    ts = sorted(c["RenewAt"] for c in lst if c.get("RenewAt"))
    if not ts:
        return {}
    return {"n": len(ts), "first_in_h": round((ts[0] - now) / 3600, 1),
            "span_h": round((ts[-1] - ts[0]) / 3600, 2),
            "max_per_s": max_in_window(ts, 1), "max_per_min": max_in_window(ts, 60),
            "max_per_h": max_in_window(ts, 3600),
            "due_24h": bisect.bisect_right(ts, now + DAY)}


def states(lst):
    out = {}
    for c in lst:
        out[c["State"]] = out.get(c["State"], 0) + 1
    return out


def pctl(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


# --------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------
def seed_templates(wd, dns):
    """State files exactly as the daemon writes them: deploy one terminated
    and one passthrough FQDN workload over the bus and keep their files."""
    root = os.path.join(wd, "seed")
    dns.add("seed.example.org", PUBLIC_IP)
    dns.add("seedpt.example.org", PUBLIC_IP)
    d = Daemon(wd, "seed", root, base_config(free_port(), dns))
    try:
        d.wait_ready(60)
        r1 = d.bus.set_fqdn_proxy("1-1-seed", "seed.example.org", [BACKEND], timeout=20)
        r2 = d.bus.set_fqdn_proxy("1-2-seedpt", "seedpt.example.org", [BACKEND_PT], tls_passthrough=True,
                                  timeout=20)
        if not (r1.ok and r2.ok):
            raise RuntimeError("seed deploys failed: %r %r" % (r1, r2))
    finally:
        d.stop()
    with open(os.path.join(root, "workloads", "wl-1-1-seed.json")) as f:
        t = json.load(f)
    with open(os.path.join(root, "workloads", "wl-1-2-seedpt.json")) as f:
        tp = json.load(f)
    shutil.rmtree(root)
    return {"terminate": t, "passthrough": tp}


class FileWatch:
    """Counts the writes of a file that is replaced atomically (a new inode
    each time), polling every 50 ms, and remembers its last size."""

    def __init__(self, path):
        self.path, self.writes, self.size, self.seen = path, 0, 0, None
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop_ev.wait(0.05):
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                continue
            if (st.st_ino, st.st_mtime_ns) != self.seen:
                self.seen = (st.st_ino, st.st_mtime_ns)
                self.writes += 1
                self.size = st.st_size

    def stop(self):
        self.stop_ev.set()
        self.thread.join()
        return {"writes": self.writes, "bytes": self.size}


def run_config(wd, label, root, cfg, n, expect_state, acme=None, settle=3.0, timeout=600, keep=False):
    """Start a daemon on @root, wait for READY=1 and for ListCertificates to
    show @n entries in @expect_state (None: the workloads only), measure."""
    port = int(cfg["proxy"]["https_port"])
    t_acme0 = time.monotonic()
    state = os.path.join(root, "acme", "state.json")
    if os.path.exists(state):
        os.unlink(state)
    watch = FileWatch(state)
    d = Daemon(wd, label, root, cfg)
    res = {"label": label}
    try:
        res["ready_s"] = round(d.wait_ready(timeout), 3)
        if expect_state:
            t, lst = d.wait_certs(lambda l: sum(c["State"] == expect_state for c in l) >= n, timeout)
            res["all_certs_s"] = round(t, 3)
        else:
            lst = d.certs()
        time.sleep(settle)
        lst = d.certs()
        res["states"] = states(lst)
        res["rss_kb"] = rss_kb(d.pid)
        res["heap_bytes"] = heap_in_use(d.pid)
        res["cpu_s"] = round(cpu_s(d.pid), 2)
        res["list"] = lst
        res["port"] = port
        res["state_json"] = watch.stop()
        if acme:
            res["acme_requests"] = summarize_requests(acme.since(t_acme0))
            res["orders_for"] = sorted({i for r in acme.since(t_acme0) if r[3] for i in r[3]})
        if keep:
            res["daemon"] = d
            return res
    except BaseException:
        watch.stop()
        d.stop()
        raise
    d.stop()
    return res


def setfqdn_rounds(big, small, dns, calls):
    """Interleaved SetFQDNProxy of new names on the daemon with N
    certificates and on the one with --small: bus round trip and the
    daemon's CPU per call (the pass after the reply included)."""
    out = {}
    for d in (big, small):
        out[d.name] = {"lat_ms": [], "cpu0": cpu_s(d.pid)}
    for i in range(calls):
        for d in ((big, small) if i % 2 == 0 else (small, big)):
            name = "new%d.%s.example.net" % (i, d.name)
            dns.add(name, PUBLIC_IP)
            t = time.perf_counter()
            r = d.bus.set_fqdn_proxy("%d-%d-new" % (9000 + i, 900000 + i), name, [BACKEND], timeout=20)
            out[d.name]["lat_ms"].append((time.perf_counter() - t) * 1000)
            if not r.ok:
                raise RuntimeError("SetFQDNProxy on %s failed: %r" % (d.name, r))
            time.sleep(0.05)  # let the pass after the reply run before the next call
    time.sleep(1.0)
    # Calls i of both daemons ran back to back: their difference cancels
    # most of what the shared disk (fsync) and the other tenants add.
    diff = [b - s for b, s in zip(out[big.name]["lat_ms"], out[small.name]["lat_ms"])]
    for d in (big, small):
        o = out[d.name]
        o["cpu_per_call_ms"] = round((cpu_s(d.pid) - o.pop("cpu0")) * 1000 / calls, 2)
        lat = o.pop("lat_ms")
        o["p50_ms"] = round(statistics.median(lat), 2)
        o["p99_ms"] = round(pctl(lat, 99), 2)
        o["calls"] = calls
    out["paired_diff_p50_ms"] = round(statistics.median(diff), 3)
    return out


def heaptrack_split(wd, label, root, cfg, n):
    """Start the daemon under heaptrack on a fresh @root, let it load
    everything (READY=1 comes after every certificate is loaded and every
    entry made), then SIGKILL it: what is live at that moment is reported
    as leaked, and attributed to the store, the manager and the rest by
    call stack. No bus call is made (its reply buffers would count)."""
    out = os.path.join(wd, "heaptrack-" + label)
    d = Daemon(wd, label, root, cfg, wrapper=["heaptrack", "-o", out])
    try:
        d.wait_ready(600)
        time.sleep(2)
        for p in _children(d.pid):
            if _comm(p) == "gatewayd":
                os.kill(p, signal.SIGKILL)
        d.proc.wait(120)
    finally:
        d.stop()
    files = [f for f in os.listdir(wd) if f.startswith("heaptrack-" + label)]
    if not files:
        return {"error": "no heaptrack output"}
    folded = os.path.join(wd, "folded-" + label)
    subprocess.run(["heaptrack_print", "-f", os.path.join(wd, files[0]), "--print-flamegraph", folded,
                    "--flamegraph-cost-type", "leaked", "--print-leaks=0", "--print-peaks=0",
                    "--print-allocators=0", "--print-temporary=0"],
                   capture_output=True, timeout=600)
    groups = {"store (gw_certs_get: proxy_cert + cache entry)": ("gw_certs_get",),
              "manager (mcert_*: entries, hash map)": ("mcert_", "cert_ref", "ref_one"),
              "workloads (registry, routes)": ("wl_registry", "gw_manager_restore", "route_put",
                                               "gw_state_load", "routes_publish", "proxy_routes")}
    sums = {g: 0 for g in groups}
    sums["other"] = 0
    with open(folded) as f:
        for line in f:
            stack, _, cost = line.rstrip("\n").rpartition(" ")
            try:
                cost = int(cost)
            except ValueError:
                continue
            for g, keys in groups.items():
                if any(k in stack for k in keys):
                    sums[g] += cost
                    break
            else:
                sums["other"] += cost
    return {g: {"bytes": v, "per_cert": round(v / n, 1)} for g, v in sums.items()}


def _children(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for tid in os.listdir("/proc/%d/task" % p):
                with open("/proc/%d/task/%s/children" % (p, tid)) as f:
                    todo += [int(x) for x in f.read().split()]
        except FileNotFoundError:
            pass
    return out


def _comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except FileNotFoundError:
        return ""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10000, help="FQDN workloads with issued certificates")
    ap.add_argument("--small", type=int, default=100, help="certificates of the comparison daemon")
    ap.add_argument("--calls", type=int, default=50, help="SetFQDNProxy calls per daemon")
    ap.add_argument("--ari", action="store_true", help="also a run whose directory offers renewalInfo")
    ap.add_argument("--heaptrack", action="store_true", help="also split the heap by owner with heaptrack")
    ap.add_argument("--watch", type=float, default=10.0, help="seconds to watch for ACME requests after start")
    ap.add_argument("--timeout", type=float, default=1800, help="the whole run, seconds")
    ap.add_argument("--out", default=os.path.join(BENCH_DIR, "results"))
    ap.add_argument("--keep-tmp", action="store_true")
    ap.add_argument("--tmpfs", action="store_true",
                    help="state directories in /dev/shm: fsync costs nothing, so round trips show the "
                         "daemon's own work (the disk of a shared VM adds milliseconds of noise)")
    a = ap.parse_args()
    if not (1 <= a.n <= 100000 and 1 <= a.small <= a.n and 1 <= a.calls <= 1000 and 0 <= a.watch <= 600
            and 60 <= a.timeout <= 7200):
        ap.error("--n 1..100000, --small 1..n, --calls 1..1000, --watch 0..600, --timeout 60..7200")
    if os.geteuid() != 0:
        sys.exit("run as root (it makes a network namespace)")
    for exe in (GATEWAYD, GATEWAYCTL):
        if not os.access(exe, os.X_OK):
            sys.exit("%s not found: build first, or set GATEWAYD / GATEWAYCTL" % exe)
    for tool in ("redis-server", "ip") + (("heaptrack", "heaptrack_print") if a.heaptrack else ()):
        if not shutil.which(tool):
            sys.exit("%s not found" % tool)

    own_netns()  # first: before any thread
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    signal.signal(signal.SIGALRM, _on_signal)
    signal.alarm(int(a.timeout))
    wd = tempfile.mkdtemp(prefix="gw-acme-scale-", dir="/dev/shm" if a.tmpfs else None)
    started = datetime.datetime.now(datetime.timezone.utc)
    R = {"meta": {"started": started.isoformat(), "n": a.n, "small": a.small, "calls": a.calls, "tmpfs": a.tmpfs,
                  "gatewayd": GATEWAYD, "argv": sys.argv,
                  "version": subprocess.run(["git", "-C", REPO_DIR, "describe", "--always", "--dirty"],
                                            capture_output=True, text=True).stdout.strip(),
                  "loadavg_start": open("/proc/loadavg").read().split()[:3]}}
    dns = acme = acme_ari = None
    rc = 0
    try:
        dns = fakes.FakeDns().start()
        for i in range(a.n):
            dns.add(fqdn_of(i), PUBLIC_IP)
        paths = server_cert(wd)
        acme = AcmeServer(paths)
        log = lambda *m: print("[%6.1fs]" % (time.monotonic() - T0), *m, file=sys.stderr, flush=True)  # noqa: E731

        log("seed: state file templates from the daemon")
        templates = seed_templates(wd, dns)

        log("test CA and %d issued certificates (spread over weeks)" % a.n)
        ca = TestCA()
        now = _now()
        t = time.monotonic()
        pems, meta = make_pems(ca, a.n, plan_spread, now)
        R["meta"]["gen_s_per_cert"] = round((time.monotonic() - t) / a.n, 5)
        R["meta"]["pem_bytes_avg"] = round(sum(len(p) for p in pems.values()) / a.n)
        R["meta"]["intermediate_der_bytes"] = len(ca.cert.public_bytes(serialization.Encoding.DER))

        roots = {k: os.path.join(wd, "root-" + k) for k in ("pt", "ss", "is", "small", "w90", "w6", "ari")}
        write_workloads(roots["pt"], templates, a.n, passthrough=True)
        write_workloads(roots["ss"], templates, a.n)
        log("%d self-signed certificates" % a.n)
        write_self_signed(roots["ss"], a.n)
        write_workloads(roots["is"], templates, a.n)
        write_issued(roots["is"], pems)
        write_account(roots["is"], acme.url)
        write_workloads(roots["small"], templates, a.small)
        write_issued(roots["small"], {k: pems[k] for k in map(fqdn_of, range(a.small))})
        write_account(roots["small"], acme.url)

        port = free_port()
        off = base_config(port, dns)
        on = base_config(port, dns, acme.url, paths["acme-ca.pem"], acme_on=True)

        log("P: %d passthrough workloads (no certificates)" % a.n)
        R["pt"] = run_config(wd, "pt", roots["pt"], off, a.n, None)
        log("S: %d terminated, self-signed certificates stored, ACME off" % a.n)
        R["ss"] = run_config(wd, "ss", roots["ss"], off, a.n, "self-signed")
        log("I-off: %d issued certificates stored, ACME off" % a.n)
        R["is_off"] = run_config(wd, "is_off", roots["is"], off, a.n, "valid")
        log("I-on: %d issued certificates stored, ACME on" % a.n)
        R["is_on"] = run_config(wd, "is_on", roots["is"], on, a.n, "valid", acme=acme,
                                settle=a.watch, keep=True)
        big = R["is_on"].pop("daemon")
        try:
            # Served: the issued leaf, for a sample of names.
            sample = random.Random(1).sample(range(a.n), min(50, a.n))
            ok = 0
            want = {}
            for i in sample:
                want[fqdn_of(i)] = x509.load_pem_x509_certificate(pems[fqdn_of(i)]).serial_number
            for name, serial in want.items():
                iss, ser = served_issuer(port, name)
                ok += iss == "Bench E1" and ser == serial
            R["is_on"]["served_issued"] = "%d/%d" % (ok, len(want))
            log("small: %d issued certificates, ACME on (SetFQDNProxy comparison)" % a.small)
            on_small = base_config(free_port(), dns, acme.url, paths["acme-ca.pem"], acme_on=True)
            R["small"] = run_config(wd, "small", roots["small"], on_small, a.small, "valid", acme=None,
                                    keep=True)
            small = R["small"].pop("daemon")
            try:
                log("SetFQDNProxy x %d on each, interleaved" % a.calls)
                R["setfqdn"] = setfqdn_rounds(big, small, dns, a.calls)
            finally:
                small.stop()
        finally:
            big.stop()
        R["is_on"]["spread"] = spread(R["is_on"]["list"], int(now.timestamp()))

        for key, life, age in (("w90", 90 * DAY, 10 * DAY), ("w6", 6 * DAY, 1 * DAY)):
            log("worst case %s: %d certificates of %d days issued within one minute" % (key, a.n, life // DAY))
            wp, _ = make_pems(ca, a.n, plan_same_minute(life, age), now)
            write_workloads(roots[key], templates, a.n)
            write_issued(roots[key], wp)
            write_account(roots[key], acme.url)
            R[key] = run_config(wd, key, roots[key], on, a.n, "valid", acme=acme, settle=a.watch)
            R[key]["spread"] = spread(R[key]["list"], int(now.timestamp()))
            shutil.rmtree(roots[key])

        if a.ari:
            log("ARI: the directory offers renewalInfo")
            acme_ari = AcmeServer(paths, ari=True)
            for aid, (nb, na) in meta.items():
                at = nb + (na - nb) * 2 // 3
                acme_ari.windows[aid] = (at - (na - nb) // 30, at)
            write_workloads(roots["ari"], templates, a.n)
            write_issued(roots["ari"], pems)
            write_account(roots["ari"], acme_ari.url)
            cfg = base_config(free_port(), dns, acme_ari.url, paths["acme-ca.pem"], acme_on=True)
            R["ari"] = run_config(wd, "ari", roots["ari"], cfg, a.n, "valid", acme=acme_ari, settle=a.watch)
            R["ari"]["spread"] = spread(R["ari"]["list"], int(now.timestamp()))

        if a.heaptrack:
            log("heaptrack: the live heap of I-on by owner")
            roots["ht"] = os.path.join(wd, "root-ht")
            write_workloads(roots["ht"], templates, a.n)
            write_issued(roots["ht"], pems)
            write_account(roots["ht"], acme.url)
            cfg = base_config(free_port(), dns, acme.url, paths["acme-ca.pem"], acme_on=True)
            R["heaptrack"] = heaptrack_split(wd, "ht", roots["ht"], cfg, a.n)
    except KeyboardInterrupt as e:
        print("\ninterrupted (%s): stopping everything this run started" % e, file=sys.stderr)
        R["meta"]["interrupted"] = True
        rc = 1
    except Exception as e:  # noqa: BLE001 - reported, then cleaned up
        print("\nerror: %r: stopping everything this run started" % e, file=sys.stderr)
        R["meta"]["error"] = repr(e)
        rc = 1
    finally:
        signal.alarm(0)
        cleanup()
        for s in (acme, acme_ari, dns):
            if s:
                try:
                    s.stop()
                except Exception:  # noqa: BLE001
                    pass
        if a.keep_tmp:
            print("kept %s" % wd, file=sys.stderr)
        else:
            shutil.rmtree(wd, ignore_errors=True)

    for k in list(R):
        if isinstance(R[k], dict):
            R[k].pop("list", None)
    R["meta"]["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    md = report(R, a)
    os.makedirs(a.out, exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    with open(os.path.join(a.out, "acme-scale-%s.json" % stamp), "w") as f:
        json.dump(R, f, indent=1, ensure_ascii=False)
    with open(os.path.join(a.out, "acme-scale-%s.md" % stamp), "w") as f:
        f.write(md + "\n")
    print(md)
    return rc


def report(R, a):
    n = a.n
    L = ["# acme_scale: %d FQDN workloads with stored issued certificates" % n, "",
         "`%s` (%s, load %s → %s)" % (" ".join(R["meta"]["argv"]), R["meta"].get("version"),
                                     " ".join(R["meta"].get("loadavg_start", [])),
                                     " ".join(R["meta"].get("loadavg_end", []))), ""]
    if R["meta"].get("error") or R["meta"].get("interrupted"):
        L += ["**Incomplete**: %s" % (R["meta"].get("error") or "interrupted"), ""]
    L += ["| run | READY=1 (s) | all listed (s) | states | VmRSS (KiB) | heap in use (KiB) | CPU at start (s) |",
          "|---|---:|---:|---|---:|---:|---:|"]
    names = {"pt": "P: passthrough, no certificates", "ss": "S: self-signed stored, ACME off",
             "is_off": "I-off: issued stored, ACME off", "is_on": "I-on: issued stored, ACME on",
             "small": "small: %d issued, ACME on" % a.small, "w90": "W90: 90-day, all issued in one minute",
             "w6": "W6: 6-day, all issued in one minute", "ari": "ARI: I-on, directory with renewalInfo"}
    for k, label in names.items():
        r = R.get(k)
        if not r or "ready_s" not in r:
            continue
        hb = r.get("heap_bytes")
        L.append("| %s | %.2f | %s | %s | %d | %s | %.2f |" % (
            label, r["ready_s"], "%.2f" % r["all_certs_s"] if "all_certs_s" in r else "–",
            ", ".join("%s %d" % kv for kv in sorted(r.get("states", {}).items())) or "–",
            r["rss_kb"], "%d" % (hb // 1024) if hb else "–", r["cpu_s"]))
    L.append("")
    base = R.get("pt")
    if base and "rss_kb" in base:
        L += ["Memory per certificate (difference to P, / %d):" % n, ""]
        for k in ("ss", "is_off", "is_on"):
            r = R.get(k)
            if not r or "rss_kb" not in r:
                continue
            line = "- %s: VmRSS %.0f B" % (names[k], (r["rss_kb"] - base["rss_kb"]) * 1024 / n)
            if r.get("heap_bytes") and base.get("heap_bytes"):
                line += ", heap %.0f B" % ((r["heap_bytes"] - base["heap_bytes"]) / n)
            L.append(line)
        L.append("")
    if R.get("heaptrack"):
        L += ["Live heap of I-on by owner (heaptrack; SIGKILL 2 s after READY=1, no bus call made):", ""]
        for g, v in R["heaptrack"].items():
            if isinstance(v, dict):
                L.append("- %s: %d KiB, %.0f B per certificate" % (g, v["bytes"] // 1024, v["per_cert"]))
        L.append("")
    L += ["Renewal times (RenewAt) — the most renewals in any sliding window:", "",
          "| run | certificates | first due in (h) | span (h) | max / s | max / min | max / h | due in 24 h |",
          "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for k in ("is_on", "w90", "w6", "ari"):
        s = (R.get(k) or {}).get("spread")
        if s:
            L.append("| %s | %d | %.1f | %.2f | %d | %d | %d | %d |" % (
                names[k], s["n"], s["first_in_h"], s["span_h"], s["max_per_s"], s["max_per_min"],
                s["max_per_h"], s["due_24h"]))
    L.append("")
    L += ["ACME requests made by the daemon during each run (%.0f s watched after start):" % a.watch, ""]
    for k in ("is_on", "w90", "w6", "ari"):
        r = R.get(k)
        if r and "acme_requests" in r:
            sj = r.get("state_json", {})
            L.append("- %s: %s; names ordered: %d; acme/state.json written %d× (%d bytes)" % (
                names[k], json.dumps(r["acme_requests"], sort_keys=True) if r["acme_requests"] else "none",
                len(r.get("orders_for", [])), sj.get("writes", 0), sj.get("bytes", 0)))
    if R.get("is_on", {}).get("served_issued"):
        L.append("- served on :443 (sample): the issued leaf for %s names" % R["is_on"]["served_issued"])
    L.append("")
    sf = R.get("setfqdn")
    if sf:
        L += ["SetFQDNProxy of a new name (bus round trip; the daemon's CPU per call includes the "
              "scheduling pass after the reply), interleaved:", "",
              "| daemon | certificates | p50 (ms) | p99 (ms) | CPU per call (ms) |", "|---|---:|---:|---:|---:|"]
        for k, cnt in (("is_on", n), ("small", a.small)):
            v = sf.get(k)
            if v:
                L.append("| %s | %d | %.2f | %.2f | %.2f |" % (k, cnt, v["p50_ms"], v["p99_ms"],
                                                               v["cpu_per_call_ms"]))
        L += ["", "Median of the paired differences (call i on is_on − call i on small): %.3f ms" %
              sf["paired_diff_p50_ms"]]
        L.append("")
    L.append("Issued PEM (chain + key) %s bytes on average; intermediate %s bytes DER; generation %s ms per "
             "certificate." % (R["meta"].get("pem_bytes_avg"), R["meta"].get("intermediate_der_bytes"),
                               round(R["meta"].get("gen_s_per_cert", 0) * 1000, 2)))
    return "\n".join(L)


T0 = time.monotonic()

if __name__ == "__main__":
    sys.exit(main())

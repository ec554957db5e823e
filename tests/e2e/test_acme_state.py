# SPDX-License-Identifier: Apache-2.0
"""acme/state.json at scale (issue 8): the file holds every managed
certificate, so what changes often must not rewrite it often.

An ARI answer (RFC 9773 renewalInfo) only moves a certificate's next ARI
check; with 10,000 certificates rechecked every 6 hours such answers come
every 2 s, and a write per answer rewrote 1.2 MB every 5 s
(bench/acme_scale.py). They are written within the hour and at a clean
stop instead.

The ACME server here is a small HTTPS server on 127.0.0.1 that answers the
directory and renewalInfo and refuses everything else.
"""

import base64
import datetime
import http.server
import ipaddress
import json
import os
import ssl
import subprocess
import threading
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import GATEWAYCTL, Deadline, needs_gatewayd, scaled

pytestmark = needs_gatewayd

WL = "37-1976-web"
FQDN = "app.example.org"
DAY = 86400


def _cert(subject, key, issuer=None, issuer_key=None, ca=False, san=None, days=90, aki=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    b = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer.subject if issuer else name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=days))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if san:
        b = b.add_extension(x509.SubjectAlternativeName([san]), critical=False)
    if aki:
        b = b.add_extension(aki, critical=False)
    return b.sign(issuer_key or key, hashes.SHA256())


def _pem(c):
    return c.public_bytes(serialization.Encoding.PEM)


def _key_pem(k):
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                           serialization.NoEncryption())


def _b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class AriServer:
    """The directory (with renewalInfo) and one window per known ARI ID."""

    def __init__(self, tmp):
        self.windows = {}
        self.requests = []
        self.lock = threading.Lock()
        ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
        ca = _cert("test ACME server CA", ca_key, ca=True)
        srv = _cert("127.0.0.1", key, ca, ca_key, san=x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
        self.ca_file = os.path.join(tmp, "acme-ca.pem")
        crt, kf = os.path.join(tmp, "acme-srv.pem"), os.path.join(tmp, "acme-srv.key")
        for path, data in ((self.ca_file, _pem(ca)), (crt, _pem(srv)), (kf, _key_pem(key))):
            with open(path, "wb") as f:
                f.write(data)
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _reply(self, code, body, extra=()):
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Replay-Nonce", _b64(os.urandom(16)))
                for k, v in extra:
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _serve(self):
                with owner.lock:
                    owner.requests.append((self.command, self.path))
                base = "https://127.0.0.1:%d" % owner.port
                if self.path == "/directory":
                    d = {k: base + "/" + k for k in ("newNonce", "newAccount", "newOrder", "revokeCert",
                                                     "keyChange", "renewalInfo")}
                    return self._reply(200, json.dumps(d).encode())
                w = owner.windows.get(self.path[len("/renewalInfo/"):])
                if self.path.startswith("/renewalInfo/") and w:
                    fmt = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))  # noqa: E731
                    body = {"suggestedWindow": {"start": fmt(w[0]), "end": fmt(w[1])}}
                    return self._reply(200, json.dumps(body).encode(), [("Retry-After", "21600")])
                self._reply(403, json.dumps({"type": "urn:ietf:params:acme:error:unauthorized",
                                             "detail": "test server"}).encode())

            do_GET = do_HEAD = do_POST = _serve

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(crt, kf)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.url = "https://127.0.0.1:%d/directory" % self.port
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def ari_requests(self):
        with self.lock:
            return [p for m, p in self.requests if p.startswith("/renewalInfo/")]

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def ari(tmp_path):
    s = AriServer(str(tmp_path))
    try:
        yield s
    finally:
        s.stop()


def issue(root, name, ca, ca_key):
    """An issued chain (leaf with an AKI, so it has an ARI ID) stored as the
    daemon stores one; returns the ARI ID."""
    key = ec.generate_private_key(ec.SECP256R1())
    aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    leaf = _cert(name, key, ca, ca_key, san=x509.DNSName(name), aki=aki)
    d = os.path.join(root, "certs", "acme")
    os.makedirs(d, mode=0o700, exist_ok=True)
    fd = os.open(os.path.join(d, name + ".pem"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(_pem(leaf) + _pem(ca) + _key_pem(key))
    serial = leaf.serial_number
    return _b64(aki.key_identifier) + "." + _b64(serial.to_bytes((serial.bit_length() + 8) // 8, "big"))


def certs(env):
    p = subprocess.run([str(GATEWAYCTL), "--broker", env.redis.url, "--json", "certs"], capture_output=True,
                       text=True, timeout=scaled(15))
    assert p.returncode == 0, (p.stdout, p.stderr)
    return {c["Name"]: c for c in json.loads(p.stdout)}


def start_with_ari(env, ari):
    """An FQDN workload deployed over the bus, its issued certificate
    stored, the daemon started with ACME on; returns (state.json path, ARI
    ID) once the server's window is applied."""
    env.start_daemon()
    env.deploy_fqdn(WL, FQDN)
    env.daemon.stop()
    root = str(env.daemon.root)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("Test Issuing CA", ca_key, ca=True, days=365)
    ari_id = issue(root, FQDN, ca, ca_key)
    now = int(time.time())
    ari.windows[ari_id] = (now + 10 * DAY, now + 11 * DAY)
    with open(os.path.join(root, "acme", "account.json"), "w") as f:
        json.dump({"directory": ari.url, "url": "https://127.0.0.1:%d/acct/1" % ari.port}, f)
    state = os.path.join(root, "acme", "state.json")
    assert not os.path.exists(state)

    env.start_daemon({"acme": {"enabled": "yes", "directory": ari.url, "ca_file": ari.ca_file}})
    dl = Deadline(scaled(20), "the ARI window applied")
    while True:
        c = certs(env).get(FQDN)
        if c and c["State"] == "valid" and now + 10 * DAY <= c["RenewAt"] <= now + 11 * DAY:
            break
        dl.check("%r, requests %r" % (c, ari.requests))
        time.sleep(0.2)
    assert ari.ari_requests() == ["/renewalInfo/" + ari_id]
    return state, ari_id


def test_ari_answer_does_not_rewrite_the_state_file(env, ari):
    state, _ = start_with_ari(env, ari)
    # Before, the answer was written 5 s later (STATE_SAVE_MS), like a
    # failure; now within the hour, or at the stop.
    time.sleep(7)
    assert not os.path.exists(state), "an ARI answer rewrote %s" % state
    # A failed order (this server refuses them) is still written within
    # 5 s, ARI times included: the pending hour does not delay it.
    env.deploy_fqdn("37-1977-new", "new.example.org")
    dl = Deadline(scaled(15), "state.json after a failed order")
    while not os.path.exists(state):
        dl.check()
        time.sleep(0.2)
    with open(state) as f:
        saved = json.load(f)
    assert saved["new.example.org"]["failures"] == 1
    assert saved[FQDN]["failures"] == 0
    assert saved[FQDN]["ari_next"] >= time.time() + 5 * 3600


def test_saved_ari_times_survive_a_restart(env, ari):
    """state.json keeps "last_error": null for a certificate without an
    error; such an entry was refused when loaded, so every restart asked
    the CA again for every certificate."""
    state, ari_id = start_with_ari(env, ari)
    env.daemon.stop()
    with open(state) as f:
        assert json.load(f)[FQDN]["last_error"] is None
    env.daemon.start()
    assert certs(env)[FQDN]["State"] == "valid"
    time.sleep(2)
    assert ari.ari_requests() == ["/renewalInfo/" + ari_id]

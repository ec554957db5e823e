# SPDX-License-Identifier: Apache-2.0
"""TLS backends and clients for the passthrough tests.

- CA / Leaf: a throwaway CA and leaf certificates (python3-cryptography).
- EchoServer: a TLS echo server in a thread (loopback tests), or run as a
  script inside another namespace:
      python3 tlsback.py serve <host> <cert.pem> <key.pem> <seconds to wait for host> [token]
  prints "LISTENING <port>" once it accepts, then serves until killed. With
  a token it answers each HTTP/1.x request on the TLS connection with
  "tls-ok <token> client=<client address>" instead of echoing.
- Client: a TLS client over a plain socket through memory BIOs, so that the
  test knows the exact raw bytes it sent and received (what the gateway
  relays and counts for a passthrough route). As a script:
      python3 tlsback.py client <host> <port> <sni> <ca.pem> <bytes to echo>
  prints one JSON line {"sent", "received", "peer" (DER, hex)} or exits 1
  with the error.
"""

import datetime
import errno
import json
import socket
import ssl
import sys
import threading
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


class Leaf:
    def __init__(self, cert, key):
        self.cert = cert
        self.key = key
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        self.key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption())
        self.der = cert.public_bytes(serialization.Encoding.DER)

    def write(self, directory, stem):
        """Write <stem>.crt and <stem>.key into @directory; returns the paths."""
        crt, key = "%s/%s.crt" % (directory, stem), "%s/%s.key" % (directory, stem)
        with open(crt, "wb") as f:
            f.write(self.cert_pem)
        with open(key, "wb") as f:
            f.write(self.key_pem)
        return crt, key


class CA:
    def __init__(self, name="gatewayd e2e test CA"):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (x509.CertificateBuilder()
                     .subject_name(self.name).issuer_name(self.name)
                     .public_key(self.key.public_key())
                     .serial_number(x509.random_serial_number())
                     .not_valid_before(_now() - datetime.timedelta(hours=1))
                     .not_valid_after(_now() + datetime.timedelta(days=7))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, *names):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
                .issuer_name(self.name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(_now() - datetime.timedelta(hours=1))
                .not_valid_after(_now() + datetime.timedelta(days=7))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .sign(self.key, hashes.SHA256()))
        return Leaf(cert, key)

    def client_context(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cadata=self.pem.decode())
        return ctx


def server_context(certfile, keyfile):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certfile, keyfile)
    return ctx


def _serve_conn(ctx, raw, token=None):
    try:
        peer = raw.getpeername()[0]
        with ctx.wrap_socket(raw, server_side=True) as c:
            buf = b""
            while True:
                d = c.recv(65536)
                if not d:
                    break
                if token is None:
                    c.sendall(d)
                    continue
                buf += d
                while b"\r\n\r\n" in buf:
                    _, buf = buf.split(b"\r\n\r\n", 1)
                    body = ("tls-ok %s client=%s\n" % (token, peer)).encode()
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                              b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                if len(buf) > 65536:
                    break
    except (OSError, ssl.SSLError):
        pass
    finally:
        raw.close()


class EchoServer:
    """TLS echo server on @host, port chosen by the kernel, one thread per
    connection. Every accepted connection is counted in @accepted."""

    def __init__(self, certfile, keyfile, host="127.0.0.1", token=None):
        self.ctx = server_context(certfile, keyfile)
        self.token = token
        self.certfile = certfile
        self.host = host
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def backend(self):
        """The workload's backend text (ip:port)."""
        return ("[%s]:%d" if ":" in self.host else "%s:%d") % (self.host, self.port)

    def start(self):
        self._thread.start()
        return self

    def _run(self):
        while not self._stop:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=_serve_conn, args=(self.ctx, raw, self.token), daemon=True).start()

    def stop(self):
        self._stop = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self._thread.join(5)


class Client:
    """TLS over a plain TCP socket through memory BIOs: @sent / @received are
    the exact raw bytes on the wire (TLS records included)."""

    def __init__(self, addr, ctx, sni, timeout=10.0):
        fam = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(addr)
        self.inc = ssl.MemoryBIO()
        self.out = ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.inc, self.out, server_hostname=sni)
        self.sent = 0
        self.received = 0
        self.eof = False
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                self._fill()
        self._flush()

    def _flush(self):
        d = self.out.read()
        if d:
            self.sock.sendall(d)
            self.sent += len(d)

    def _fill(self):
        d = self.sock.recv(65536)
        if not d:
            self.eof = True
            raise ConnectionResetError("the gateway closed the connection")
        self.received += len(d)
        self.inc.write(d)

    def peer_der(self):
        return self.tls.getpeercert(binary_form=True)

    def send(self, data):
        self.tls.write(data)
        self._flush()

    def recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            try:
                buf += self.tls.read(n - len(buf))
            except ssl.SSLWantReadError:
                self._flush()
                self._fill()
        return buf

    def echo(self, data):
        self.send(data)
        got = self.recv_exact(len(data))
        assert got == data
        return got

    def finish(self):
        """Half-close and read until the gateway closes: every byte the
        backend sent is then counted on both sides."""
        self.sock.shutdown(socket.SHUT_WR)
        while True:
            d = self.sock.recv(65536)
            if not d:
                break
            self.received += len(d)
        self.sock.close()

    def wait_closed(self):
        """Read (discarding plaintext) until the gateway closes; True on EOF
        or reset."""
        try:
            while True:
                d = self.sock.recv(65536)
                if not d:
                    return True
                self.received += len(d)
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()


def serve(host, certfile, keyfile, wait, token=None):
    end = time.monotonic() + wait
    while True:  # an overlay address may still be settling
        try:
            srv = EchoServer(certfile, keyfile, host, token)
            break
        except OSError as e:
            if e.errno != errno.EADDRNOTAVAIL or time.monotonic() > end:
                raise
            time.sleep(0.05)
    print("LISTENING %d" % srv.port, flush=True)
    srv._run()


def client(host, port, sni, cafile, n):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile)
    try:
        c = Client((host, port), ctx, sni, timeout=10)
        peer = c.peer_der()
        c.echo(b"g" * n)
        c.finish()
    except (OSError, ssl.SSLError) as e:
        print("ERROR %s" % e, flush=True)
        sys.exit(1)
    print(json.dumps({"sent": c.sent, "received": c.received, "peer": peer.hex()}), flush=True)


def main():
    a = sys.argv
    if a[1] == "serve":
        serve(a[2], a[3], a[4], float(a[5]), a[6] if len(a) > 6 else None)
    elif a[1] == "client":
        client(a[2], int(a[3]), a[4], a[5], int(a[6]))
    else:
        sys.exit("usage: tlsback.py serve|client ...")


if __name__ == "__main__":
    main()

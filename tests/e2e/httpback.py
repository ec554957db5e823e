# SPDX-License-Identifier: Apache-2.0
"""A real HTTP/1.1 backend for the proxy e2e tests (threads, keep-alive).

Paths:
  /echo[...]          200, JSON: method, path, headers (as received, in order)
  /bytes/<n>          200, n deterministic bytes (Content-Length)
  /chunked/<n>        200, n deterministic bytes, chunked, in 7-KiB chunks
  /slow/<n>/<ms>      200, n bytes (Content-Length) in 16-KiB pieces, ms between pieces
  /upload             (POST/PUT) 200, JSON: length and sha256 of the body
                      (Content-Length or chunked request bodies), and the
                      trailer fields of a chunked one, if any ("trailers")
  /status/<code>      that status, short body
  /trailers[/<kind>]  200, "hello world" chunked, then trailer fields: grpc-status,
                      grpc-message, x-sum (with OWS) and two that must not be
                      trailers (set-cookie, content-type); kind "drip": the
                      trailer section written a few bytes at a time; kind
                      "forbidden": only fields that must not be trailers
  /.well-known/acme-challenge/<t>  200, "backend-token:<t>"
Every request is recorded in .requests (method, path, headers).
"""

import hashlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def pattern(n, seed=0):
    """n deterministic bytes."""
    block = bytes((i * 31 + seed) & 0xFF for i in range(65536))
    reps, rest = divmod(n, len(block))
    return block * reps + block[:rest]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def _record(self):
        self.server.owner.requests.append(
            {"method": self.command, "path": self.path, "headers": list(self.headers.items()),
             "client": self.client_address[0]})

    def _send(self, code, body, ctype="application/octet-stream", extra=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _read_body(self):
        self.trailers = []
        h = hashlib.sha256()
        n = 0
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                line = self.rfile.readline(1024)
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while True:
                        t = self.rfile.readline(1024)
                        if t in (b"\r\n", b"\n", b""):
                            break
                        self.trailers.append(t.decode().rstrip("\r\n"))
                    break
                left = size
                while left:
                    b = self.rfile.read(min(left, 1 << 16))
                    if not b:
                        raise ConnectionError("short chunk")
                    h.update(b)
                    n += len(b)
                    left -= len(b)
                self.rfile.readline(16)
        else:
            left = int(self.headers.get("Content-Length") or 0)
            while left:
                b = self.rfile.read(min(left, 1 << 16))
                if not b:
                    raise ConnectionError("short body")
                h.update(b)
                n += len(b)
                left -= len(b)
        return n, h.hexdigest()

    def _route(self):
        self._record()
        p = self.path.split("?")[0]
        parts = p.strip("/").split("/")
        if p.startswith("/echo"):
            if self.command in ("POST", "PUT"):
                self._read_body()
            body = json.dumps({"method": self.command, "path": self.path,
                               "headers": list(self.headers.items()),
                               "backend": self.server.owner.name}).encode()
            return self._send(200, body, "application/json")
        if parts[0] == "bytes":
            return self._send(200, pattern(int(parts[1])))
        if parts[0] == "chunked":
            data = pattern(int(parts[1]))
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(data), 7 * 1024):
                c = data[i:i + 7 * 1024]
                self.wfile.write(b"%x\r\n" % len(c) + c + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
            return None
        if parts[0] == "trailers":
            kind = parts[1] if len(parts) > 1 else ""
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Trailer", "grpc-status")
            self.end_headers()
            self.wfile.write(b"6\r\nhello \r\n5\r\nworld\r\n")
            if kind == "forbidden":
                tr = b"0\r\nContent-Length: 3\r\nSet-Cookie: s=1\r\n\r\n"
            else:
                tr = (b"0\r\nGrpc-Status: 0\r\nSet-Cookie: s=1\r\nGrpc-Message: all good\r\n"
                      b"Content-Type: text/x\r\nX-Sum:  abc \r\n\r\n")
            if kind == "drip":
                for i in range(0, len(tr), 7):
                    self.wfile.write(tr[i:i + 7])
                    time.sleep(0.01)
            else:
                self.wfile.write(tr)
            return None
        if parts[0] == "slow":
            n, ms = int(parts[1]), int(parts[2])
            data = pattern(n)
            self.send_response(200)
            self.send_header("Content-Length", str(n))
            self.end_headers()
            for i in range(0, n, 16384):
                self.wfile.write(data[i:i + 16384])
                self.wfile.flush()
                time.sleep(ms / 1000.0)
            return None
        if parts[0] == "upload":
            n, digest = self._read_body()
            j = {"length": n, "sha256": digest}
            if self.trailers:
                j["trailers"] = self.trailers
            return self._send(200, json.dumps(j).encode(), "application/json")
        if parts[0] == "status":
            return self._send(int(parts[1]), b"status %s\n" % parts[1].encode(), "text/plain")
        if p.startswith("/.well-known/acme-challenge/"):
            return self._send(200, b"backend-token:" + parts[-1].encode(), "text/plain")
        return self._send(404, b"no such path\n", "text/plain")

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _route


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # An HTTP/2 client's 100 concurrent streams are 100 backend connections
    # at once: socketserver's default backlog of 5 would drop SYNs.
    request_queue_size = 256


class _Server6(_Server):
    address_family = socket.AF_INET6


class Backend:
    """Start with Backend(name).start(host, port=0); .port, .url, .stop()."""

    def __init__(self, name="backend"):
        self.name = name
        self.requests = []
        self.srv = None
        self.thread = None

    def start(self, host="127.0.0.1", port=0):
        cls = _Server6 if ":" in host else _Server
        self.srv = cls((host, port), _Handler)
        self.srv.owner = self
        self.host = host
        self.port = self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()
        return self

    @property
    def url(self):
        h = "[%s]" % self.host if ":" in self.host else self.host
        return "http://%s:%d" % (h, self.port)

    def stop(self):
        if self.srv:
            self.srv.shutdown()
            self.srv.server_close()
            self.srv = None


if __name__ == "__main__":
    # `httpback.py HOST`: serve on HOST (an IPv6 address may still be
    # settling, e.g. a fresh overlay address), print "LISTENING <port>".
    import errno
    import sys

    deadline = time.monotonic() + 10
    while True:
        try:
            b = Backend("main").start(sys.argv[1])
            break
        except OSError as e:
            if e.errno != errno.EADDRNOTAVAIL or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    print("LISTENING %d" % b.port, flush=True)
    b.thread.join()

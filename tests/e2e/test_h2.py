# SPDX-License-Identifier: Apache-2.0
"""HTTP/2 to clients end to end (issue 9): ALPN h2 on terminated routes,
real clients (curl --http2, nghttp, h2load) and hand-built frame sequences
(hyperframe + hpack, the libraries of python3-h2) for the hostile ones,
through the daemon's :443 to real HTTP/1.1 backends.

The network set-up (a namespace of the test's own, backends on a veth) is
test_http_proxy.py's; its fixtures are imported."""

import hashlib
import os
import json
import socket
import subprocess
import time

import pytest
from hpack import Encoder
from hyperframe.frame import (ContinuationFrame, DataFrame, Frame, GoAwayFrame, HeadersFrame, PingFrame,
                              RstStreamFrame, SettingsFrame, WindowUpdateFrame)

from conftest import Deadline, needs_gatewayd, scaled
from httpback import Backend, pattern
from test_http_proxy import (BACKEND_IP, FQDN, backend, gw, private_net, tls_conn,  # noqa: F401 (fixtures)
                             wait_counters)

pytestmark = needs_gatewayd

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
CURL = ["curl", "--http2", "-sS", "--max-time", str(int(scaled(30)))]
ENHANCE_YOUR_CALM = 0xB
REFUSED_STREAM = 0x7


def curl(gw, path, args=(), check=True):
    argv = CURL + ["-k", "--resolve", "%s:%d:127.0.0.1" % (FQDN, gw.https),
                   "https://%s:%d%s" % (FQDN, gw.https, path)] + list(args)
    r = subprocess.run(argv, capture_output=True, timeout=scaled(60))
    if check:
        assert r.returncode == 0, (argv, r.returncode, r.stderr)
    return r


class Raw:
    """An HTTP/2 client that sends exactly the frames it is told to and
    reads frames back; counts the bytes of every frame of a stream (9-byte
    header + payload) both ways, as the gateway's counters do."""

    def __init__(self, port, sni=FQDN, settings=None, rcvbuf=None):
        self.s = tls_conn(port, sni, alpn=("h2", "http/1.1"), rcvbuf=rcvbuf)
        assert self.s.selected_alpn_protocol() == "h2"
        self.enc = Encoder()
        self.buf = b""
        self.eof = False
        self.sent = {}
        self.recv = {}
        sf = SettingsFrame(0)
        for k, v in (settings or {}).items():
            sf.settings[k] = v
        self.s.sendall(PREFACE + sf.serialize())

    def send(self, *frames):
        blob = b""
        for f in frames:
            b = f.serialize()
            if f.stream_id:
                self.sent[f.stream_id] = self.sent.get(f.stream_id, 0) + len(b)
            blob += b
        self.s.sendall(blob)

    def hblock(self, path, method="GET", authority=FQDN, extra=()):
        return self.enc.encode([(":method", method), (":scheme", "https"), (":authority", authority),
                                (":path", path)] + list(extra))

    def get(self, sid, path, end_stream=True, **kw):
        f = HeadersFrame(sid, self.hblock(path, **kw))
        f.flags.add("END_HEADERS")
        if end_stream:
            f.flags.add("END_STREAM")
        self.send(f)

    def frame(self, timeout=None):
        """The next frame, or None at EOF / after @timeout."""
        self.s.settimeout(timeout or scaled(10))
        try:
            while True:
                if len(self.buf) >= 9:
                    f, n = Frame.parse_frame_header(memoryview(self.buf[:9]))
                    if len(self.buf) >= 9 + n:
                        f.parse_body(memoryview(self.buf[9:9 + n]))
                        self.buf = self.buf[9 + n:]
                        if f.stream_id:
                            self.recv[f.stream_id] = self.recv.get(f.stream_id, 0) + 9 + n
                        if isinstance(f, SettingsFrame) and "ACK" not in f.flags:
                            try:
                                self.s.sendall(SettingsFrame(0, flags=["ACK"]).serialize())
                            except OSError:
                                pass
                        return f
                d = self.s.recv(65536)
                if not d:
                    self.eof = True
                    return None
                self.buf += d
        except socket.timeout:
            return None
        except OSError:  # reset, TLS EOF: the connection ended
            self.eof = True
            return None

    def responses(self, sids, ack_data=True):
        """Read until every stream of @sids ended: {sid: (status, headers, body)}; other frames
        seen go to self.others."""
        from hpack import Decoder
        dec = getattr(self, "dec", None) or Decoder()
        self.dec = dec
        out = {sid: [None, {}, b""] for sid in sids}
        left = set(sids)
        self.others = []
        while left:
            f = self.frame()
            assert f is not None, "connection ended with streams %r open" % sorted(left)
            if isinstance(f, HeadersFrame):
                hdrs = {k.decode(): v.decode() for k, v in dec.decode(f.data, raw=True)}
                if f.stream_id in out:
                    if ":status" in hdrs:
                        out[f.stream_id][0] = int(hdrs[":status"])
                    out[f.stream_id][1].update(hdrs)
            elif isinstance(f, DataFrame):
                if f.stream_id in out:
                    out[f.stream_id][2] += f.data
                if ack_data and f.flow_controlled_length:
                    try:
                        self.s.sendall(WindowUpdateFrame(0, f.flow_controlled_length).serialize())
                        if "END_STREAM" not in f.flags:
                            self.send(WindowUpdateFrame(f.stream_id, f.flow_controlled_length))
                    except OSError:
                        pass  # the server may close once its last stream ended (GOAWAY)
            elif isinstance(f, RstStreamFrame):
                if f.stream_id in out and f.stream_id in left:
                    if out[f.stream_id][0] is None:
                        out[f.stream_id][0] = ("rst", f.error_code)
                    left.discard(f.stream_id)
                continue
            else:
                self.others.append(f)
                continue
            if "END_STREAM" in f.flags:
                left.discard(f.stream_id)
        return {k: tuple(v) for k, v in out.items()}

    def until_goaway(self, limit=100000):
        """Frames until GOAWAY (returned) or EOF (None)."""
        for _ in range(limit):
            f = self.frame()
            if f is None or isinstance(f, GoAwayFrame):
                return f
        return None

    def close(self):
        self.s.close()


# ---- ALPN and the normal paths ----

def test_alpn_h2_and_http11_only_clients(gw, backend):
    gw.env.deploy_fqdn("37-1-app", FQDN, [backend.url])
    s = tls_conn(gw.https, FQDN, alpn=("h2", "http/1.1"))
    assert s.selected_alpn_protocol() == "h2"
    s.close()
    # A client that knows only HTTP/1.1 gets it, and so does one without ALPN.
    for alpn in (("http/1.1",), None):
        s = tls_conn(gw.https, FQDN, alpn=alpn)
        assert s.selected_alpn_protocol() in (None, "http/1.1")
        s.sendall(b"GET /bytes/5 HTTP/1.1\r\nHost: %s\r\n\r\n" % FQDN.encode())
        d = b""
        while b"\r\n\r\n" not in d:
            d += s.recv(4096)
        assert d.startswith(b"HTTP/1.1 200 ")
        s.close()
    r = curl(gw, "/echo?x=1", args=["-w", "\n%{http_version}", "-H", "X-Custom: kept",
                                    "-H", "X-Forwarded-For: 192.0.2.9", "-b", "a=1; b=2"])
    body, ver = r.stdout.rsplit(b"\n", 1)
    assert ver == b"2"
    j = json.loads(body)
    h = {}
    for k, v in j["headers"]:
        h.setdefault(k.lower(), []).append(v)
    # The same forwarding fields as HTTP/1.1 (test_http_proxy.py).
    assert j["path"] == "/echo?x=1" and j["method"] == "GET"
    assert h["host"] == ["%s:%d" % (FQDN, gw.https)]
    assert h["x-forwarded-proto"] == ["https"]
    assert h["x-forwarded-for"] == ["192.0.2.9, 127.0.0.1"]
    assert h["x-real-ip"] == ["127.0.0.1"]
    assert h["x-forwarded-host"] == ["%s:%d" % (FQDN, gw.https)]
    assert h["x-custom"] == ["kept"]
    assert h["cookie"] == ["a=1; b=2"]
    # HEAD: the length of the GET, no body (END_STREAM on the HEADERS).
    r = curl(gw, "/bytes/1234", args=["-I"])
    assert r.stdout.startswith(b"HTTP/2 200") and b"content-length: 1234" in r.stdout.lower(), r.stdout


def test_misdirected_and_connect_refused(gw, backend):
    gw.env.deploy_fqdn("37-1-app", FQDN, [backend.url])
    gw.env.deploy_fqdn("37-2-other", "other.example.org", [backend.url])
    c = Raw(gw.https)
    c.get(1, "/echo")
    # A route of ours, but not covered by this connection's certificate
    # (coalescing must not reach it), and an unknown name: 421.
    c.get(3, "/echo", authority="other.example.org")
    c.get(5, "/echo", authority="nope.example.org")
    # CONNECT: not a forward proxy.
    f = HeadersFrame(7, c.enc.encode([(":method", "CONNECT"), (":authority", "example.com:443")]))
    f.flags.add("END_HEADERS")
    c.send(f)
    r = c.responses([1, 3, 5, 7])
    assert r[1][0] == 200 and json.loads(r[1][2])["path"] == "/echo"
    assert r[3][0] == 421 and r[5][0] == 421
    assert r[7][0] == 405
    # The connection still serves.
    c.get(9, "/bytes/100")
    assert c.responses([9])[9][2] == pattern(100)
    c.close()


def test_page_load_100_streams_by_hash(gw, backend, tmp_path):
    gw.env.deploy_fqdn("37-1-app", FQDN, [backend.url])
    c = Raw(gw.https)
    sizes = {2 * i + 1: (i * 7919) % 200000 for i in range(100)}
    for sid, n in sizes.items():
        c.get(sid, "/bytes/%d" % n if sid % 4 == 1 else "/chunked/%d" % n)
    r = c.responses(list(sizes))
    for sid, n in sizes.items():
        st, _, body = r[sid]
        assert st == 200, (sid, st)
        assert hashlib.sha256(body).digest() == hashlib.sha256(pattern(n)).digest(), sid
    c.close()
    # nghttp (its own HPACK, priorities and window handling) and h2load.
    # nghttp (its own HPACK, priorities and window handling) has no
    # --resolve and takes the SNI from the URI: it runs with an /etc/hosts
    # of its own (a private mount namespace).
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n127.0.0.1 %s\n" % FQDN)
    urls = ["https://%s:%d/bytes/%d" % (FQDN, gw.https, n) for n in (1, 20000, 300000)]
    p = subprocess.run(["unshare", "-m", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec nghttp -n -s "$@"',
                        str(hosts)] + urls, capture_output=True, timeout=scaled(60))
    assert p.returncode == 0, p.stderr
    assert p.stdout.count(b"/bytes/") == 3, p.stdout
    p = subprocess.run(["h2load", "-n", "2000", "-c", "4", "-m", "100", "--connect-to=127.0.0.1:%d" % gw.https,
                        "https://%s:%d/bytes/64" % (FQDN, gw.https)],
                       capture_output=True, timeout=scaled(120))
    assert p.returncode == 0, p.stderr
    assert b"2000 succeeded, 0 failed, 0 errored" in p.stdout, p.stdout
    assert b"2000 2xx" in p.stdout, p.stdout


def test_big_upload_and_download_by_hash(gw, backend):
    gw.env.deploy_fqdn("37-1-app", FQDN, [backend.url])
    n = 48 << 20
    r = curl(gw, "/bytes/%d" % n)
    assert len(r.stdout) == n and hashlib.sha256(r.stdout).digest() == hashlib.sha256(pattern(n)).digest()
    r = curl(gw, "/chunked/%d" % (5 << 20))
    assert r.stdout == pattern(5 << 20)
    up = pattern(32 << 20, seed=7)
    # With Content-Length, and without (curl -T - streams: chunked to the backend).
    for extra in (["--data-binary", "@-"], ["-T", "-"]):
        r = subprocess.run(CURL + ["-k", "--resolve", "%s:%d:127.0.0.1" % (FQDN, gw.https),
                                   "-H", "Content-Type: application/octet-stream"] + extra
                           + ["https://%s:%d/upload" % (FQDN, gw.https)],
                           input=up, capture_output=True, timeout=scaled(120))
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout) == {"length": len(up), "sha256": hashlib.sha256(up).hexdigest()}


def test_counters_exact(gw, backend):
    gw.env.deploy_fqdn("37-1-app", FQDN, [backend.url])
    c = Raw(gw.https)
    for sid, n in ((1, 10), (3, 30000), (5, 0)):
        c.get(sid, "/bytes/%d" % n)
    # No WINDOW_UPDATE of ours: a stream's may cross its end (not counted).
    r = c.responses([1, 3, 5], ack_data=False)
    assert [r[s][0] for s in (1, 3, 5)] == [200, 200, 200]
    body = pattern(5000, seed=3)
    f = HeadersFrame(7, c.hblock("/upload", method="POST", extra=[("content-length", "5000")]))
    f.flags.add("END_HEADERS")
    d = DataFrame(7, body)
    d.flags.add("END_STREAM")
    c.send(f, d)
    r = c.responses([7], ack_data=False)
    assert r[7][0] == 200 and json.loads(r[7][2])["length"] == 5000
    c.close()
    wait_counters(gw, "37-1-app", sent=sum(c.sent.values()), recv=sum(c.recv.values()))


def test_request_trailers_and_backend_failure(gw, backend):
    gw.env.deploy_fqdn("37-1-app", FQDN, [backend.url])
    c = Raw(gw.https)
    # A body without content-length, ended by trailers: chunked to the
    # backend, the trailers after the last chunk (a field that must not be
    # a trailer, authorization, is dropped; nghttp2 itself refuses
    # content-length and pseudo-fields there).
    f = HeadersFrame(1, c.hblock("/upload", method="POST"))
    f.flags.add("END_HEADERS")
    t = HeadersFrame(1, c.enc.encode([("x-checksum", "abc"), ("authorization", "x"), ("x-two", "2")]))
    t.flags.add("END_HEADERS")
    t.flags.add("END_STREAM")
    c.send(f, DataFrame(1, b"hello "), DataFrame(1, b"world"), t)
    r = c.responses([1])
    assert r[1][0] == 200 and json.loads(r[1][2]) == {
        "length": 11, "sha256": hashlib.sha256(b"hello world").hexdigest(),
        "trailers": ["x-checksum: abc", "x-two: 2"]}
    # With content-length, HTTP/1.1 has no place for them: dropped.
    f = HeadersFrame(3, c.hblock("/upload", method="POST", extra=[("content-length", "5")]))
    f.flags.add("END_HEADERS")
    t = HeadersFrame(3, c.enc.encode([("x-checksum", "abc")]))
    t.flags.add("END_HEADERS")
    t.flags.add("END_STREAM")
    c.send(f, DataFrame(3, b"hello"), t)
    r = c.responses([3])
    assert r[3][0] == 200 and json.loads(r[3][2]) == {
        "length": 5, "sha256": hashlib.sha256(b"hello").hexdigest()}
    c.close()
    dead = Backend("dead").start(BACKEND_IP)
    url = dead.url
    dead.stop()
    gw.env.deploy_fqdn("37-1-app", FQDN, [url])
    c = Raw(gw.https)
    c.get(1, "/echo")
    assert c.responses([1])[1][0] == 502
    c.close()


def _stream_frames(c, sid):
    """Frames of stream @sid until its END_STREAM (or a reset): [(frame, decoded fields or None)]."""
    from hpack import Decoder
    dec = getattr(c, "dec", None) or Decoder()
    c.dec = dec
    out = []
    while True:
        f = c.frame()
        assert f is not None, "connection ended in stream %d" % sid
        if f.stream_id != sid:
            continue
        fields = None
        if isinstance(f, HeadersFrame):
            fields = [(k.decode(), v.decode()) for k, v in dec.decode(f.data, raw=True)]
        out.append((f, fields))
        if "END_STREAM" in f.flags or isinstance(f, RstStreamFrame):
            return out


def test_response_trailers(gw, backend, tmp_path):
    gw.env.deploy_fqdn("37-1-app", FQDN, [backend.url])
    want = [("grpc-status", "0"), ("grpc-message", "all good"), ("x-sum", "abc")]
    c = Raw(gw.https)
    # A chunked backend response with trailers: the last DATA does not end
    # the stream, a trailing HEADERS does, with the fields that may be
    # trailers (lower-cased, OWS gone); set-cookie and content-type dropped.
    # "drip": the trailer section reaches the gateway in 7-byte pieces.
    for sid, path in ((1, "/trailers"), (3, "/trailers/drip"), (5, "/trailers/forbidden")):
        c.get(sid, path)
        fr = _stream_frames(c, sid)
        assert isinstance(fr[0][0], HeadersFrame) and dict(fr[0][1])[":status"] == "200"
        assert "END_STREAM" not in fr[0][0].flags
        body = b"".join(f.data for f, _ in fr if isinstance(f, DataFrame))
        assert body == b"hello world", (sid, body)
        datas = [f for f, _ in fr if isinstance(f, DataFrame)]
        if path.endswith("forbidden"):
            # Nothing may be passed on: END_STREAM on the DATA, as without trailers.
            assert isinstance(fr[-1][0], DataFrame) and "END_STREAM" in fr[-1][0].flags, fr
            assert [f for f, _ in fr[1:] if isinstance(f, HeadersFrame)] == []
            continue
        last, fields = fr[-1]
        assert isinstance(last, HeadersFrame), fr
        assert "END_STREAM" in last.flags and "END_HEADERS" in last.flags
        assert fields == want, fields
        assert all("END_STREAM" not in f.flags for f in datas)
    c.close()
    # The trailing HEADERS frames count among the stream's bytes (as they
    # crossed the wire), exactly.
    wait_counters(gw, "37-1-app", sent=sum(c.sent.values()), recv=sum(c.recv.values()))
    # A real client: nghttp shows the trailing HEADERS and its fields.
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n127.0.0.1 %s\n" % FQDN)
    p = subprocess.run(["unshare", "-m", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec nghttp -v "$@"',
                        str(hosts), "https://%s:%d/trailers" % (FQDN, gw.https)],
                       capture_output=True, timeout=scaled(60))
    assert p.returncode == 0, p.stderr
    out = p.stdout.decode()
    assert "hello world" in out and "grpc-status: 0" in out and "x-sum: abc" in out, out
    assert "set-cookie" not in out, out
    # nghttp prints each field as it is decoded, then the frame: the one
    # after the trailer fields is a HEADERS frame that ends the stream.
    j = out.index("recv HEADERS frame", out.index("grpc-status: 0"))
    assert "END_STREAM" in out[j:out.index("\n", out.index("\n", j) + 1)], out


# ---- defences (each fails without its limit) ----

def test_max_concurrent_streams_100(gw, backend):
    gw.env.deploy_fqdn("37-1-app", FQDN, [backend.url])
    c = Raw(gw.https)
    f = c.frame()
    assert isinstance(f, SettingsFrame) and f.settings.get(SettingsFrame.MAX_CONCURRENT_STREAMS) == 100
    # 100 slow streams at once are served; one more (the client ignores
    # the setting) is refused (without the setting all 101 would be
    # served).
    sids = [2 * i + 1 for i in range(100)]
    for sid in sids:
        c.get(sid, "/slow/10/300")
    r = c.responses(sids)
    assert all(r[s][0] == 200 for s in sids)
    c.close()
    c = Raw(gw.https)
    sids = [2 * i + 1 for i in range(101)]
    for sid in sids:
        c.get(sid, "/slow/40000/1000")  # three pieces: >= 2 s
    r = c.responses(sids)
    assert r[201][0] == ("rst", REFUSED_STREAM), r[201]
    assert all(r[s][0] == 200 for s in sids[:-1])
    c.close()


def test_rapid_reset_goaway(gw, backend):
    gw.env.deploy_fqdn("37-1-app", FQDN, [backend.url])
    c = Raw(gw.https)
    frames = []
    for i in range(500):
        f = HeadersFrame(2 * i + 1, c.hblock("/slow/10/1000"))
        f.flags.add("END_HEADERS")
        f.flags.add("END_STREAM")
        frames += [f, RstStreamFrame(2 * i + 1, error_code=8)]
    try:
        c.send(*frames)
    except OSError:
        pass
    g = c.until_goaway()
    # nghttp2's stream reset rate limit (burst 200, then 50/s): INTERNAL_ERROR;
    # its default (burst 1000) would take all 500.
    assert g is not None and g.error_code == 2 and g.last_stream_id < 999, g
    c.close()
    # Others are still served.
    assert curl(gw, "/bytes/3").stdout == pattern(3)


def test_continuation_flood_ends_connection(gw, backend):
    gw.env.deploy_fqdn("37-1-app", FQDN, [backend.url])
    c = Raw(gw.https)
    # Six small CONTINUATION frames: well under the header limits, but a
    # default max_head (16 KiB) never needs more than 1 + 2 (nghttp2's own
    # bound is 8 and would let these through).
    assert isinstance(c.frame(), SettingsFrame)  # and acknowledged: nothing interleaves below
    f = HeadersFrame(1, c.hblock("/echo"))
    frames = [f] + [ContinuationFrame(1, c.enc.encode([("x-a%d" % i, "b")])) for i in range(6)]
    try:
        c.send(*frames)
    except OSError:
        pass
    g = c.frame(timeout=scaled(5))
    while g is not None and not isinstance(g, GoAwayFrame):
        g = c.frame(timeout=scaled(5))
    # At the bound nghttp2 fails the session: the connection ends at once.
    assert g is None or g.error_code != 0, g
    if g is not None:
        assert c.frame(timeout=scaled(5)) is None
    assert c.eof
    c.close()


def test_hpack_bomb_and_large_header_list_431(gw, backend):
    gw.env.deploy_fqdn("37-1-app", FQDN, [backend.url])
    c = Raw(gw.https)
    # One 4000-byte field enters the dynamic table; each further reference
    # costs one byte on the wire and 4000 decoded: 200 of them decode to
    # 800 KB from a 200-byte block.
    big = ("x-big", "v" * 4000)
    block = c.enc.encode([(":method", "GET"), (":scheme", "https"), (":authority", FQDN), (":path", "/echo"),
                          big])
    idx = c.enc.encode([big])  # now an indexed field: one or two bytes
    assert len(idx) <= 2
    f = HeadersFrame(1, block + idx * 200)
    f.flags.add("END_HEADERS")
    f.flags.add("END_STREAM")
    c.send(f)
    r = c.responses([1])
    assert r[1][0] == 431
    # The connection survives and serves the next request.
    c.get(3, "/bytes/7")
    assert c.responses([3])[3][2] == pattern(7)
    c.close()


def test_glitch_budget_goaway(gw, backend):
    gw.env.deploy_fqdn("37-1-app", FQDN, [backend.url])
    c = Raw(gw.https)
    # Each of these streams is malformed (an upper-case field name): the
    # server resets it. Fine once; a budget of 100 per connection.
    frames = []
    for i in range(150):
        f = HeadersFrame(2 * i + 1, c.hblock("/echo", extra=[("X-Upper", "1")]))
        f.flags.add("END_HEADERS")
        f.flags.add("END_STREAM")
        frames.append(f)
    try:
        c.send(*frames)
    except OSError:
        pass
    g = c.until_goaway()
    assert g is not None and g.error_code == ENHANCE_YOUR_CALM, g
    c.close()


def test_ping_flood_ends_connection(gw, backend):
    gw.env.deploy_fqdn("37-1-app", FQDN, [backend.url])
    c = Raw(gw.https)
    # PINGs in bulk, their ACKs never read: the queue of ACKs is bounded.
    blob = b"".join(PingFrame(0, opaque_data=b"%08d" % i).serialize() for i in range(2000))
    try:
        for _ in range(20):
            c.s.sendall(blob)
    except OSError:
        pass
    g = c.until_goaway()
    assert c.eof or (g is not None and g.error_code != 0)
    c.close()


def test_max_requests_per_connection(gw, backend):
    gw.env.deploy_fqdn("37-1-app", FQDN, [backend.url])
    c = Raw(gw.https)
    sid = 1
    for batch in range(10):
        sids = []
        for _ in range(100):
            c.get(sid, "/bytes/1")
            sids.append(sid)
            sid += 2
        r = c.responses(sids)
        assert all(v[0] == 200 for v in r.values())
    assert any(isinstance(f, GoAwayFrame) and f.last_stream_id == 1999 for f in c.others), c.others
    # Stream 2001 is beyond the GOAWAY: not served, and the connection ends.
    try:
        c.get(2001, "/bytes/1")
    except OSError:
        pass
    assert c.until_goaway() is None and c.eof
    c.close()


def test_last_response_survives_unread_client_frames(gw, backend):
    """The connection ends after its last stream (here the 1000th, past
    GOAWAY); a frame the client sent meanwhile (a PING, a WINDOW_UPDATE) is
    not read by then. Closing with unread bytes makes the kernel reset the
    connection and drop what it had not yet sent: the tail of the last
    response. The gateway half-closes and drains instead (as HTTP/1.1's
    linger does), so the response arrives whole and then EOF."""
    gw.env.deploy_fqdn("37-1-app", FQDN, [backend.url])
    big = 8 << 20
    c = Raw(gw.https, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 2**31 - 1}, rcvbuf=4096)
    c.send(WindowUpdateFrame(0, 2**31 - 1 - 65535))
    sid = 1
    for batch in range(10):
        sids = [sid + 2 * i for i in range(100 if batch < 9 else 99)]
        for s in sids:
            c.get(s, "/bytes/1")
        sid = sids[-1] + 2
        assert all(v[0] == 200 for v in c.responses(sids, ack_data=False).values())
    c.get(sid, "/bytes/%d" % big)
    time.sleep(scaled(1))  # the response fills the socket buffers; the gateway stops reading
    c.send(PingFrame(0, b"12345678"))
    r = c.responses([sid], ack_data=False)
    assert r[sid][0] == 200 and len(r[sid][2]) == big and r[sid][2] == pattern(big)
    assert any(isinstance(f, GoAwayFrame) and f.last_stream_id == sid for f in c.others), c.others
    assert c.until_goaway() is None and c.eof
    c.close()


def test_padded_upload_keeps_window(gw, backend):
    """Request DATA is acknowledged only once the backend took it (no
    automatic window updates); padding carries no data for the backend but
    counts against the window, so it must be given back too, or a client
    that pads stalls once it padded a window's worth."""
    gw.env.deploy_fqdn("37-1-app", FQDN, [backend.url])
    c = Raw(gw.https)
    assert isinstance(c.frame(), SettingsFrame)
    chunk, pad, n = pattern(1000, seed=5), 250, 400  # 100 KB of padding: beyond one window
    f = HeadersFrame(1, c.hblock("/upload", method="POST", extra=[("content-length", str(n * len(chunk)))]))
    f.flags.add("END_HEADERS")
    c.send(f)
    conn_win = stream_win = 65535
    sent = 0
    deadline = Deadline(20, "padded upload")
    while sent < n:
        cost = len(chunk) + pad + 1
        if min(conn_win, stream_win) < cost:
            fr = c.frame(timeout=scaled(5))
            deadline.check("window stuck at conn %d stream %d after %d frames" % (conn_win, stream_win, sent))
            if isinstance(fr, WindowUpdateFrame):
                if fr.stream_id == 0:
                    conn_win += fr.window_increment
                elif fr.stream_id == 1:
                    stream_win += fr.window_increment
            elif isinstance(fr, SettingsFrame) and "ACK" not in fr.flags:
                w = fr.settings.get(SettingsFrame.INITIAL_WINDOW_SIZE)
                if w is not None:
                    stream_win += w - 65535
            continue
        d = DataFrame(1, chunk)
        d.flags.add("PADDED")
        d.pad_length = pad
        sent += 1
        if sent == n:
            d.flags.add("END_STREAM")
        c.send(d)
        conn_win -= cost
        stream_win -= cost
    r = c.responses([1])
    body = pattern(1000, seed=5) * n
    assert r[1][0] == 200 and json.loads(r[1][2]) == {"length": len(body),
                                                      "sha256": hashlib.sha256(body).hexdigest()}
    c.close()


def test_random_frames_never_crash(gw, backend):
    """Seeded garbage after a valid preface: random frame types, flags,
    stream IDs and payloads (some on open streams), on 150 connections. The
    daemon must answer each with a clean end (GOAWAY, reset, EOF) and keep
    serving."""
    import random
    gw.env.deploy_fqdn("37-1-app", FQDN, [backend.url])
    rnd = random.Random(int(os.environ.get("H2_FUZZ_SEED", "9")))
    for _ in range(150):
        c = Raw(gw.https)
        blob = b""
        if rnd.random() < 0.5:
            f = HeadersFrame(1, c.hblock("/slow/100/50"))
            f.flags.add("END_HEADERS")
            blob += f.serialize()
        for _ in range(rnd.randint(1, 40)):
            n = rnd.choice([0, 1, 4, 5, 8, 9, 13, 64, 300, 17000])
            payload = bytes(rnd.getrandbits(8) for _ in range(n))
            typ = rnd.choice([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0x20])
            sid = rnd.choice([0, 1, 1, 3, 2, 0x7FFFFFFF])
            hd = bytes([n >> 16 & 0xFF, n >> 8 & 0xFF, n & 0xFF, typ, rnd.getrandbits(8)]) + sid.to_bytes(4, "big")
            blob += hd + payload
        try:
            c.s.sendall(blob)
        except OSError:
            pass
        for _ in range(200):
            if c.frame(timeout=scaled(2)) is None:
                break
        c.close()
    assert gw.env.daemon.running
    assert curl(gw, "/bytes/5").stdout == pattern(5)

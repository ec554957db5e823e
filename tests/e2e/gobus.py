# SPDX-License-Identifier: Apache-2.0
"""A zbus client (and server-side helpers) that puts the same bytes on the
wire as the Go stubs of zos (threefoldtech/zbus v1.0.1 + vmihailenco/msgpack
v4.0.4), see docs protocol-zbus-gateway.md §1-§3.

Two encoders live here:

* ``msgpack.packb(x, use_bin_type=True)`` for everything made only of str,
  bin, bool, nil, arrays, maps and float64 (Request, GatewayNameProxy,
  GatewayFQDNProxy, replies): python-msgpack then gives Go-identical bytes
  (§3.3) as long as dicts are built in Go struct-field order and nested
  documents are passed as ``bytes``.
* ``goenc()`` for values with Go integers, which Go always writes at the
  fixed width of their type (``U32`` -> ce, ``U64`` -> cf, ``I64`` -> d3,
  ...). Used by the fake peers (Contract, SubstrateError).
"""

import struct
import time
import uuid

import msgpack
import redis

# ---------------------------------------------------------------------------
# Go-typed integers and a fixed-width encoder


class _GoInt(int):
    code = None
    fmt = None

    def __repr__(self):
        return "%s(%d)" % (type(self).__name__, int(self))


class U8(_GoInt):
    code, fmt = 0xCC, ">B"


class U16(_GoInt):
    code, fmt = 0xCD, ">H"


class U32(_GoInt):
    code, fmt = 0xCE, ">I"


class U64(_GoInt):
    code, fmt = 0xCF, ">Q"


class I8(_GoInt):
    code, fmt = 0xD0, ">b"


class I16(_GoInt):
    code, fmt = 0xD1, ">h"


class I32(_GoInt):
    code, fmt = 0xD2, ">i"


class I64(_GoInt):
    code, fmt = 0xD3, ">q"


def _map_header(n):
    if n < 16:
        return bytes([0x80 | n])
    if n < 0x10000:
        return b"\xde" + struct.pack(">H", n)
    return b"\xdf" + struct.pack(">I", n)


def _array_header(n):
    if n < 16:
        return bytes([0x90 | n])
    if n < 0x10000:
        return b"\xdc" + struct.pack(">H", n)
    return b"\xdd" + struct.pack(">I", n)


class Raw(bytes):
    """Bytes spliced verbatim into a goenc() document (already msgpack)."""


def goenc(v):
    """Encode like Go's msgpack.Marshal: dicts keep insertion order (= struct
    field order), Go-typed ints (U32, U64, I64, ...) are fixed width, plain
    Python ints are encoded as Go ``int`` (d3 + 8 bytes), bytes -> bin,
    str -> str, None -> c0, float -> float64."""
    if isinstance(v, Raw):
        return bytes(v)
    if isinstance(v, bool):
        return b"\xc3" if v else b"\xc2"
    if isinstance(v, _GoInt):
        return bytes([v.code]) + struct.pack(v.fmt, int(v))
    if isinstance(v, int):
        return b"\xd3" + struct.pack(">q", v)
    if isinstance(v, dict):
        return _map_header(len(v)) + b"".join(goenc(k) + goenc(x) for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return _array_header(len(v)) + b"".join(goenc(x) for x in v)
    # str, bytes, None, float, Timestamp: identical in both libraries (§3.3).
    return msgpack.packb(v, use_bin_type=True)


# ---------------------------------------------------------------------------
# Argument types (§3.1). Field order = Go struct order.


def name_proxy(name, backends, tls_passthrough=False, network=None):
    """GatewayNameProxy as a dict in Go field order (GatewayBase inlined)."""
    return {
        "TLSPassthrough": bool(tls_passthrough),
        "Backends": None if backends is None else list(backends),
        "Network": network,
        "Name": name,
    }


def fqdn_proxy(fqdn, backends, tls_passthrough=False, network=None):
    return {
        "TLSPassthrough": bool(tls_passthrough),
        "Backends": None if backends is None else list(backends),
        "Network": network,
        "FQDN": fqdn,
    }


def pack(v):
    """One independent msgpack document, as zbus newTuple builds each input."""
    return msgpack.packb(v, use_bin_type=True)


def unpack(b):
    """Decode a msgpack document; ext -1 becomes msgpack.Timestamp."""
    return msgpack.unpackb(b, raw=False, strict_map_key=False, timestamp=0)


def encode_request(req_id, obj_name, obj_version, method, inputs, reply_to=None):
    """The zbus Request map, keys in Go order. @inputs is a list of bytes
    (each already a msgpack document)."""
    return msgpack.packb(
        {
            "ID": req_id,
            "Inputs": [bytes(i) for i in inputs],
            "Object": {"Name": obj_name, "Version": obj_version},
            "ReplyTo": req_id if reply_to is None else reply_to,
            "Method": method,
        },
        use_bin_type=True,
    )


def encode_response(req_id, data=None, error=None, proto_error=None):
    """The zbus Response: @data is the already-packed Output.Data (bytes) or
    None for c0; @error a str for Output.Error.Message or None."""
    return msgpack.packb(
        {
            "ID": req_id,
            "Output": {
                "Data": None if data is None else bytes(data),
                "Error": None if error is None else {"Message": error},
            },
            "Error": proto_error,
        },
        use_bin_type=True,
    )


def decode_request(raw):
    """Decode a Request the way the Go server does (exact keys, unknown keys
    skipped). Returns a dict with ID, Inputs (list of bytes), Object, ReplyTo,
    Method; raises ValueError when it is not a Request."""
    m = unpack(raw)
    if not isinstance(m, dict):
        raise ValueError("request is not a map")
    obj = m.get("Object") or {}
    inputs = m.get("Inputs") or []
    return {
        "ID": m.get("ID") or "",
        "Inputs": [bytes(i) if isinstance(i, (bytes, bytearray)) else i.encode() for i in inputs],
        "Object": {"Name": obj.get("Name") or "", "Version": obj.get("Version") or ""},
        "ReplyTo": m.get("ReplyTo") or "",
        "Method": m.get("Method") or "",
    }


class Reply:
    """A decoded zbus Response."""

    def __init__(self, raw, key, elapsed):
        self.raw = raw
        self.key = key
        self.elapsed = elapsed
        m = unpack(raw)
        assert isinstance(m, dict), "response is not a map: %r" % (m,)
        self.map = m
        self.id = m.get("ID")
        out = m.get("Output") or {}
        self.output = out
        self.data_raw = out.get("Data")
        err = out.get("Error")
        self.error = None
        if err is not None:
            self.error = err.get("Message")
        self.proto_error = m.get("Error")

    @property
    def data(self):
        """Output.Data decoded (None when Data is c0)."""
        if self.data_raw is None:
            return None
        return unpack(self.data_raw)

    @property
    def ok(self):
        # Go stubs: an error only when Output.Error is set with a non-empty Message.
        return not self.error and self.proto_error is None

    def __repr__(self):
        return "Reply(id=%r, data=%r, error=%r, proto_error=%r)" % (
            self.id,
            self.data_raw,
            self.error,
            self.proto_error,
        )


class BusTimeout(AssertionError):
    pass


class GoBus:
    """A zbus client behaving like zbus' RedisClient.RequestContext."""

    def __init__(self, socket_path):
        self.socket_path = socket_path
        self.r = redis.Redis(unix_socket_path=socket_path)

    def close(self):
        self.r.close()

    # -- raw primitives --------------------------------------------------
    def push(self, queue, payload):
        self.r.rpush(queue, payload)

    def send(self, module, obj, version, method, inputs, req_id=None, reply_to=None, queue=None):
        """RPUSH a request (to <module>.<obj>@<version>, or @queue when given:
        the server dispatches on Object, not on the queue); returns its reply
        key (ReplyTo)."""
        req_id = req_id or str(uuid.uuid4())
        reply_to = reply_to or req_id
        if queue is None:
            queue = "%s.%s@%s" % (module, obj, version) if version else "%s.%s" % (module, obj)
        self.r.rpush(queue, encode_request(req_id, obj, version, method, inputs, reply_to))
        return reply_to

    def wait_reply(self, key, timeout=5.0, t0=None):
        """BLPOP <key> 1 in a loop (as the Go client) until @timeout seconds."""
        t0 = time.monotonic() if t0 is None else t0
        deadline = t0 + timeout
        while True:
            res = self.r.blpop([key], 1)
            if res is not None:
                return Reply(res[1], key, time.monotonic() - t0)
            if time.monotonic() >= deadline:
                raise BusTimeout("no reply on %s within %.1fs" % (key, timeout))

    def call(self, module, obj, version, method, inputs, timeout=5.0, req_id=None, reply_to=None, queue=None):
        t0 = time.monotonic()
        key = self.send(module, obj, version, method, inputs, req_id=req_id, reply_to=reply_to, queue=queue)
        return self.wait_reply(key, timeout, t0)

    def no_reply(self, key):
        """True when nothing was pushed to @key (checked without waiting)."""
        return self.r.llen(key) == 0

    def call_with_ttl(self, module, obj, version, method, inputs, timeout=5.0):
        """Send a request and observe its reply key through keyspace
        notifications (no polling): returns (Reply, TTL seconds of the reply
        key right after the server's EXPIRE)."""
        self.r.config_set("notify-keyspace-events", "Kgl")
        key = str(uuid.uuid4())
        ps = self.r.pubsub()
        try:
            ps.subscribe("__keyspace@0__:" + key)
            t0 = time.monotonic()
            deadline = t0 + timeout
            while True:  # the subscribe confirmation
                m = ps.get_message(timeout=max(0.0, deadline - time.monotonic()))
                if m and m["type"] == "subscribe":
                    break
                if time.monotonic() >= deadline:
                    raise BusTimeout("no subscribe confirmation")
            self.send(module, obj, version, method, inputs, req_id=key)
            while True:
                m = ps.get_message(timeout=max(0.0, deadline - time.monotonic()))
                if m and m["type"] == "message" and m["data"] == b"expire":
                    break
                if time.monotonic() >= deadline:
                    raise BusTimeout("no EXPIRE on reply key %s within %.1fs" % (key, timeout))
            ttl = self.r.ttl(key)
            raw = self.r.lpop(key)
            assert raw is not None, "EXPIRE seen but reply list %s is empty" % key
            return Reply(raw, key, time.monotonic() - t0), ttl
        finally:
            ps.close()

    # -- gateway.manager@0.0.1 -----------------------------------------
    def gw(self, method, *args, timeout=5.0, module="gateway"):
        return self.call(module, "manager", "0.0.1", method, [pack(a) for a in args], timeout=timeout)

    def set_named_proxy(self, wlid, name, backends, tls_passthrough=False, network=None, timeout=5.0):
        return self.gw("SetNamedProxy", wlid, name_proxy(name, backends, tls_passthrough, network),
                       timeout=timeout)

    def set_fqdn_proxy(self, wlid, fqdn, backends, tls_passthrough=False, network=None, timeout=5.0):
        return self.gw("SetFQDNProxy", wlid, fqdn_proxy(fqdn, backends, tls_passthrough, network),
                       timeout=timeout)

    def delete_named_proxy(self, wlid, timeout=5.0):
        return self.gw("DeleteNamedProxy", wlid, timeout=timeout)

    def metrics(self, timeout=5.0):
        return self.gw("Metrics", timeout=timeout)

    def list_proxies(self, timeout=5.0):
        return self.gw("ListProxies", timeout=timeout)

    def get_proxy(self, wlid, timeout=5.0):
        return self.gw("GetProxy", wlid, timeout=timeout)

    def info(self, timeout=5.0):
        return self.gw("Info", timeout=timeout)

    def status(self, module="gateway", timeout=3.0):
        """zbus RedisClient.Status: Method "", Inputs [] on <module>.zbus@1.0."""
        return self.call(module, "zbus", "1.0", "", [], timeout=timeout)


# ---------------------------------------------------------------------------
# Server side, for the fake peers


def serve_once(r, queues, handler, block=0.2):
    """BLPOP one request from @queues, call handler(request) -> (data_bytes|None,
    error_str|None) and push the reply like zbus' server (RPUSH + EXPIRE 300).
    Returns the decoded request, or None when nothing arrived."""
    res = r.blpop(queues, block)
    if res is None:
        return None
    try:
        req = decode_request(res[1])
    except Exception:
        return None
    data, err = handler(req)
    reply = encode_response(req["ID"], data, err)
    p = r.pipeline(transaction=False)
    p.rpush(req["ReplyTo"], reply)
    p.expire(req["ReplyTo"], 300)
    p.execute()
    return req

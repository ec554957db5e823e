#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A fake gatewayd for testing zbus clients such as gatewayctl.

It serves the zbus queues of the gateway module on a real Redis:

  gateway.manager@0.0.1   SetNamedProxy, SetFQDNProxy, DeleteNamedProxy,
                          Metrics, plus the gatewayd operator methods
                          ListProxies, GetProxy and Info
  gateway.zbus@1.0        the zbus status object (own thread, answers while
                          the workers are busy)

Replies follow docs/protocol-zbus-gateway.md: RPUSH <ReplyTo> then EXPIRE 300;
Output.Data is the msgpack of the single non-error result, Output.Error a
{"Message": ...} map, top-level Error a protocol error string. Requests are
checked the way the Go client builds them (ID == ReplyTo is a v4 uuid, every
Input is a bin holding one msgpack document); a violation is answered with a
protocol error starting with "fake_gateway:" and logged.

Behaviour knobs for tests: --slow METHOD=SEC (keep the worker busy),
--no-reply METHOD, --fail METHOD=MESSAGE (Output.Error),
--protocol-error METHOD=MESSAGE (top-level Error), --preload FILE.json (a list
of ProxyInfo-like objects, see load_preload), --log FILE (one JSON line per
request). It prints "ready" on stdout once connected and exits on SIGTERM or
SIGINT.

Needs only Debian's python3-redis and python3-msgpack.
"""

import argparse
import json
import re
import signal
import sys
import threading
import time
import urllib.parse

import msgpack
import redis

MODULE = "gateway"
OBJECT = {"Name": "manager", "Version": "0.0.1"}
STATUS_OBJECT = {"Name": "zbus", "Version": "1.0"}
MANAGER_QUEUE = "gateway.manager@0.0.1"
STATUS_QUEUE = "gateway.zbus@1.0"
REPLY_TTL = 300
UUID4_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
WLID_RE = re.compile(r"^(\d+)-(\d+)-(\S+)")

stop = threading.Event()


def now_ts():
    return msgpack.Timestamp.from_unix_nano(time.time_ns())


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


def connect(url):
    """Open a connection the way zbus parses the broker URL (§1.1)."""
    u = urllib.parse.urlsplit(url)
    # zbus sends the *user name* part of the userinfo as the password.
    password = urllib.parse.unquote(u.username) if u.username else None
    if u.scheme == "unix":
        return redis.Redis(unix_socket_path=u.path, password=password)
    if u.scheme == "tcp":
        return redis.Redis(host=u.hostname, port=u.port, password=password)
    raise SystemExit(f"unknown scheme '{u.scheme}' expecting tcp or unix")


class ProtocolError(Exception):
    """Answered as the top-level Error, like zbus' own dispatch errors."""


class MethodError(Exception):
    """Answered as Output.Error.Message."""


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.proxies = {}  # wlid -> ProxyInfo dict (Go field names)
        self.workers = [{"State": "free", "StartTime": now_ts(), "Action": ""}
                        for _ in range(args.workers)]
        self.log_lock = threading.Lock()
        self.log = open(args.log, "a", buffering=1) if args.log else None

    def set_worker(self, i, state, action):
        with self.lock:
            self.workers[i] = {"State": state, "StartTime": now_ts(), "Action": action}

    def record(self, entry):
        if self.log:
            with self.log_lock:
                self.log.write(json.dumps(entry, default=repr) + "\n")


def proxy_info(wlid, kind, fqdn, name, cfg, created=None):
    t = created or now_ts()
    return {
        "ID": wlid,
        "Kind": kind,
        "FQDN": fqdn,
        "Name": name,
        "Backends": list(cfg.get("Backends") or []),
        "TLSPassthrough": bool(cfg.get("TLSPassthrough", False)),
        "Network": cfg.get("Network"),
        "Created": t,
        "Updated": now_ts(),
        "RequestBytes": 0.0,
        "ResponseBytes": 0.0,
    }


def load_preload(state, path):
    """FILE is a JSON list of {"ID", "Kind", "FQDN", "Name", "Backends",
    "TLSPassthrough", "Network", "RequestBytes", "ResponseBytes"}; missing
    keys take the defaults of a fresh proxy."""
    with open(path) as f:
        items = json.load(f)
    for it in items:
        kind = it.get("Kind", "name")
        pi = proxy_info(it["ID"], kind, it["FQDN"], it.get("Name"), it)
        pi["RequestBytes"] = float(it.get("RequestBytes", 0))
        pi["ResponseBytes"] = float(it.get("ResponseBytes", 0))
        state.proxies[it["ID"]] = pi


def expect_args(inputs, n):
    if len(inputs) != n:
        raise ProtocolError(f"invalid number of arguments expecting {n} got {len(inputs)}")


def expect_str(v, i):
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    if v is None:
        return ""
    if not isinstance(v, str):
        raise ProtocolError(f"invalid argument type [{i}] expecting string got")
    return v


def expect_proxy(v, i, key):
    tname = "zos.GatewayFQDNProxy" if key == "FQDN" else "zos.GatewayNameProxy"
    if v is None:
        return {"TLSPassthrough": False, "Backends": None, "Network": None, key: ""}
    if not isinstance(v, dict):
        raise ProtocolError(f"invalid argument type [{i}] expecting {tname} got")
    tp = v.get("TLSPassthrough", False)
    if not isinstance(tp, bool):
        raise ProtocolError(f"invalid argument type [{i}] expecting {tname} got")
    backends = v.get("Backends")
    if backends is not None and not isinstance(backends, list):
        raise ProtocolError(f"invalid argument type [{i}] expecting {tname} got")
    return {
        "TLSPassthrough": tp,
        "Backends": backends,
        "Network": v.get("Network"),
        key: expect_str(v.get(key), i),
    }


class Manager:
    """The gateway.manager@0.0.1 methods. Each returns (data, error_message)
    where data is the single non-error result (or None for error-only
    methods, meaning Output.Data = nil)."""

    def __init__(self, state):
        self.state = state

    def SetNamedProxy(self, inputs):
        expect_args(inputs, 2)
        wlid = expect_str(inputs[0], 0)
        cfg = expect_proxy(inputs[1], 1, "Name")
        # Same order of checks as zos (§4.1); Data is "" on failure.
        if not cfg["Backends"]:
            raise MethodError("at least one backend is needed got '0'", "")
        if not WLID_RE.match(wlid):
            raise MethodError("invalid workload id: input does not match format", "")
        fqdn = f"{cfg['Name']}.{self.state.args.domain}"
        with self.state.lock:
            for other in self.state.proxies.values():
                if other["FQDN"] == fqdn and other["ID"] != wlid:
                    raise MethodError(f"domain already registered: {fqdn}", "")
            old = self.state.proxies.get(wlid)
            self.state.proxies[wlid] = proxy_info(wlid, "name", fqdn, cfg["Name"], cfg,
                                                  old and old["Created"])
        return fqdn

    def SetFQDNProxy(self, inputs):
        expect_args(inputs, 2)
        wlid = expect_str(inputs[0], 0)
        cfg = expect_proxy(inputs[1], 1, "FQDN")
        if not cfg["Backends"]:
            raise MethodError("at least one backend is needed got '0'")
        fqdn = cfg["FQDN"]
        if fqdn.endswith(self.state.args.domain):
            raise MethodError("can't create a fqdn workload with a subdomain of the "
                              "gateway's managed domain")
        with self.state.lock:
            for other in self.state.proxies.values():
                if other["FQDN"] == fqdn and other["ID"] != wlid:
                    raise MethodError(f"domain already registered: {fqdn}")
            old = self.state.proxies.get(wlid)
            self.state.proxies[wlid] = proxy_info(wlid, "fqdn", fqdn, None, cfg,
                                                  old and old["Created"])
        return None

    def DeleteNamedProxy(self, inputs):
        expect_args(inputs, 1)
        wlid = expect_str(inputs[0], 0)
        with self.state.lock:
            self.state.proxies.pop(wlid, None)  # unknown IDs succeed (§4.4)
        return None

    def Metrics(self, inputs):
        expect_args(inputs, 0)
        req, resp = {}, {}
        with self.state.lock:
            for p in self.state.proxies.values():
                if p["TLSPassthrough"]:
                    continue  # TCP routers have no HTTP byte counters (§4.5)
                if p["RequestBytes"]:
                    req[p["ID"]] = float(p["RequestBytes"])
                if p["ResponseBytes"]:
                    resp[p["ID"]] = float(p["ResponseBytes"])
        return {"Request": req or None, "Response": resp or None}

    def ListProxies(self, inputs):
        expect_args(inputs, 0)
        with self.state.lock:
            return [dict(p) for _, p in sorted(self.state.proxies.items())]

    def GetProxy(self, inputs):
        expect_args(inputs, 1)
        wlid = expect_str(inputs[0], 0)
        with self.state.lock:
            p = self.state.proxies.get(wlid)
            if p is None:
                # ProxyInfo zero value as Data, like a Go method returning (T, error).
                raise MethodError(f"proxy with workload id '{wlid}' not found", {
                    "ID": "", "Kind": "", "FQDN": "", "Name": None, "Backends": None,
                    "TLSPassthrough": False, "Network": None,
                    "Created": msgpack.Timestamp(0, 0), "Updated": msgpack.Timestamp(0, 0),
                    "RequestBytes": 0.0, "ResponseBytes": 0.0})
            return dict(p)

    def Info(self, inputs):
        expect_args(inputs, 0)
        with self.state.lock:
            n = len(self.state.proxies)
        return {
            "Version": "0.0.0-fake",
            "Enabled": True,
            "Domain": self.state.args.domain,
            "Workloads": n,
            "PublicConfig": "file",
            "PublicIPv4": "185.69.166.10/24",
            "PublicIPv6": "",
            "NameValidation": "off",
            "Bus": MANAGER_QUEUE,
        }


def check_request(raw):
    """Decode and check a request as the Go client builds it (§2.3)."""
    try:
        req = msgpack.unpackb(raw, raw=False, timestamp=3)
    except Exception as e:  # noqa: BLE001 - any decode failure
        raise ProtocolError(f"fake_gateway: undecodable request: {e}") from None
    if not isinstance(req, dict):
        raise ProtocolError("fake_gateway: request is not a map")
    keys = list(req.keys())
    if keys != ["ID", "Inputs", "Object", "ReplyTo", "Method"]:
        raise ProtocolError(f"fake_gateway: request keys {keys} differ from the Go client's")
    if not isinstance(req["ID"], str) or not UUID4_RE.match(req["ID"]):
        raise ProtocolError(f"fake_gateway: ID {req['ID']!r} is not a lower-case v4 uuid")
    if req["ReplyTo"] != req["ID"]:
        raise ProtocolError("fake_gateway: ReplyTo differs from ID")
    if not isinstance(req["Inputs"], list):
        raise ProtocolError("fake_gateway: Inputs is not an array")
    inputs = []
    for i, doc in enumerate(req["Inputs"]):
        if not isinstance(doc, bytes):
            raise ProtocolError(f"fake_gateway: Inputs[{i}] is not a bin")
        try:
            inputs.append(msgpack.unpackb(doc, raw=False))
        except Exception as e:  # noqa: BLE001
            raise ProtocolError(f"fake_gateway: Inputs[{i}] is not one msgpack document: {e}")
    return req, inputs


def reply(conn, reply_to, req_id, data, error, protocol_error):
    out = {"Data": None if data is _NIL else pack(data),
           "Error": None if error is None else {"Message": error}}
    msg = pack({"ID": req_id, "Output": out, "Error": protocol_error})
    pipe = conn.pipeline(transaction=False)
    pipe.rpush(reply_to, msg)
    pipe.expire(reply_to, REPLY_TTL)
    pipe.execute()


_NIL = object()  # Output.Data = nil (error-only methods, protocol errors)


def knob(table, method):
    return table.get(method) if table else None


def serve_worker(state, index):
    conn = connect(state.args.broker)
    mgr = Manager(state)
    args = state.args
    while not stop.is_set():
        item = conn.blpop([MANAGER_QUEUE], timeout=1)
        if item is None:
            continue
        raw = item[1]
        entry = {"queue": MANAGER_QUEUE, "raw": raw.hex()}
        try:
            req, inputs = check_request(raw)
        except ProtocolError as e:
            entry["violation"] = str(e)
            state.record(entry)
            print(e, file=sys.stderr, flush=True)
            # Without a decodable ReplyTo there is no one to answer (§1.2).
            try:
                r = msgpack.unpackb(raw, raw=False)
                reply(conn, r["ReplyTo"], r.get("ID", ""), _NIL, None, str(e))
            except Exception:  # noqa: BLE001
                pass
            continue
        method = req["Method"]
        entry.update({"id": req["ID"], "method": method, "object": req["Object"],
                      "inputs": inputs})
        state.record(entry)
        state.set_worker(index, "busy", f"[manager@0.0.1].{method}()")
        try:
            delay = knob(args.slow, method)
            if delay:
                stop.wait(float(delay))
            if method in (args.no_reply or []):
                continue
            data, error, perr = _NIL, None, None
            if req["Object"] != OBJECT:
                perr = "unknown object"
            elif knob(args.protocol_error, method):
                perr = args.protocol_error[method]
            elif not method or not hasattr(Manager, method) or method.startswith("_"):
                # zbus sends this as the top-level Error, which crashes Go
                # callers (§7); gatewayd puts it in Output.Error, and so do we.
                error = "not a function"
            else:
                try:
                    result = getattr(mgr, method)(inputs)
                    data = _NIL if result is None else result
                    if knob(args.fail, method):
                        error = args.fail[method]
                except MethodError as e:
                    error = e.args[0]
                    if len(e.args) > 1:
                        data = e.args[1]
                except ProtocolError as e:
                    perr = str(e)
            if method == "SetNamedProxy" and error is not None and data is _NIL:
                data = ""  # zos always sends the fqdn string, "" on failure (§2.4)
            reply(conn, req["ReplyTo"], req["ID"], data, error, perr)
        finally:
            state.set_worker(index, "free", "")


def serve_status(state):
    conn = connect(state.args.broker)
    while not stop.is_set():
        item = conn.blpop([STATUS_QUEUE], timeout=1)
        if item is None:
            continue
        raw = item[1]
        entry = {"queue": STATUS_QUEUE, "raw": raw.hex()}
        try:
            req, inputs = check_request(raw)
        except ProtocolError as e:
            entry["violation"] = str(e)
            state.record(entry)
            print(e, file=sys.stderr, flush=True)
            continue
        entry.update({"id": req["ID"], "method": req["Method"], "object": req["Object"],
                      "inputs": inputs})
        state.record(entry)
        if "status" in (state.args.no_reply or []):
            continue
        with state.lock:
            data = {"Objects": [dict(OBJECT)], "Workers": [dict(w) for w in state.workers]}
        reply(conn, req["ReplyTo"], req["ID"], data, None, None)


def kv_list(items):
    out = {}
    for it in items or []:
        k, sep, v = it.partition("=")
        if not sep:
            raise SystemExit(f"expected METHOD=VALUE, got {it!r}")
        out[k] = v
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--broker", default="unix:///var/run/redis.sock")
    ap.add_argument("--domain", default="gent01.dev.grid.tf")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--slow", action="append", metavar="METHOD=SEC")
    ap.add_argument("--no-reply", action="append", metavar="METHOD",
                    help="never answer METHOD ('status' for the status object)")
    ap.add_argument("--fail", action="append", metavar="METHOD=MESSAGE")
    ap.add_argument("--protocol-error", action="append", metavar="METHOD=MESSAGE")
    ap.add_argument("--preload", metavar="FILE.json")
    ap.add_argument("--log", metavar="FILE", help="append one JSON line per request")
    args = ap.parse_args()
    args.slow = kv_list(args.slow)
    args.fail = kv_list(args.fail)
    args.protocol_error = kv_list(args.protocol_error)
    if args.workers < 1:
        raise SystemExit("invalid number of workers")

    state = State(args)
    if args.preload:
        load_preload(state, args.preload)
    try:
        connect(args.broker).ping()
    except redis.RedisError as e:
        raise SystemExit(f"could not establish connection: {e}")

    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threads = [threading.Thread(target=serve_status, args=(state,), daemon=True)]
    threads += [threading.Thread(target=serve_worker, args=(state, i), daemon=True)
                for i in range(args.workers)]
    for t in threads:
        t.start()
    print("ready", flush=True)
    while not stop.is_set():
        stop.wait(0.5)
    for t in threads:
        t.join(timeout=3)


if __name__ == "__main__":
    main()

# SPDX-License-Identifier: Apache-2.0
"""Fake zos bus peers (api-gateway, provision, network) and a fake DNS server.

Each bus peer is a thread with its own Redis connection pool that BLPOPs its
queue and answers with Go-identical bytes (gobus.goenc for Go integers).
Every request is handled on its own thread, so a request held on purpose
(``hold``) does not block the others, like a zbus server with many workers.
The peers reconnect when Redis goes away (Redis restart tests).
"""

import ipaddress
import socket
import threading
import time

import redis
from dnslib import AAAA, QTYPE, RCODE, RR, A, DNSError
from dnslib.server import BaseResolver, DNSLogger, DNSServer

import gobus
from gobus import I64, U32, U64, goenc


class Call:
    def __init__(self, method, args, raw_inputs):
        self.method = method
        self.args = args
        self.raw_inputs = raw_inputs
        self.time = time.monotonic()

    def __repr__(self):
        return "Call(%s%r)" % (self.method, tuple(self.args))


class BusPeer:
    """Base class: subclasses define handle_<Method>(call) -> (data, error)."""

    module = obj = version = None

    def __init__(self, socket_path):
        self.socket_path = socket_path
        self.queue = "%s.%s@%s" % (self.module, self.obj, self.version)
        self.calls = []
        self.cond = threading.Condition()
        self._stop = threading.Event()
        self._held = []  # (predicate, release event)
        self._thread = None
        self._workers = []
        self.errors = []

    # -- lifecycle -------------------------------------------------------
    def start(self):
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="fake-" + self.queue, daemon=True)
        self._thread.start()
        return self

    def request_stop(self):
        """Begin stopping without waiting (stop several peers in parallel)."""
        self._stop.set()
        self.release_all()

    def stop(self):
        self.request_stop()
        if self._thread:
            self._thread.join(5)
            self._thread = None
        for t in self._workers:
            t.join(5)
        self._workers = []

    def _run(self):
        r = None
        while not self._stop.is_set():
            try:
                if r is None:
                    r = redis.Redis(unix_socket_path=self.socket_path)
                res = r.blpop([self.queue], 0.2)
            except (redis.ConnectionError, redis.TimeoutError, OSError, AttributeError):
                # AttributeError: python3-redis 4.3's error path for a reset
                # unix socket connection raises it instead of ConnectionError.
                r = None
                # Redis is down (restart tests): retry soon.
                self._stop.wait(0.05)
                continue
            if res is None:
                continue
            t = threading.Thread(target=self._handle, args=(r, res[1]), daemon=True)
            self._workers = [w for w in self._workers if w.is_alive()]
            self._workers.append(t)
            t.start()

    def _handle(self, r, raw):
        try:
            req = gobus.decode_request(raw)
            args = [gobus.unpack(i) for i in req["Inputs"]]
        except Exception as e:  # noqa: BLE001 - recorded for the test
            self.errors.append("undecodable request %r: %s" % (raw[:64], e))
            return
        call = Call(req["Method"], args, req["Inputs"])
        call.request = req
        with self.cond:
            self.calls.append(call)
            self.cond.notify_all()
        self._maybe_hold(call)
        fn = getattr(self, "handle_" + req["Method"], None)
        if fn is None:
            data, err = None, "not a function"
        else:
            try:
                data, err = fn(call)
            except Exception as e:  # noqa: BLE001
                self.errors.append("%s: %r" % (call, e))
                data, err = None, "fake peer failed: %s" % e
        reply = gobus.encode_response(req["ID"], data, err)
        try:
            p = r.pipeline(transaction=False)
            p.rpush(req["ReplyTo"], reply)
            p.expire(req["ReplyTo"], 300)
            p.execute()
        except (redis.ConnectionError, OSError):
            pass
        with self.cond:
            call.answered = time.monotonic()
            self.cond.notify_all()

    # -- holding requests (to keep a daemon call in flight) ----------------
    def hold(self, predicate=lambda call: True):
        """Requests matching @predicate wait until release(); returns the event."""
        ev = threading.Event()
        self._held.append((predicate, ev))
        return ev

    def release_all(self):
        for _, ev in self._held:
            ev.set()
        self._held = []

    def _maybe_hold(self, call):
        for pred, ev in list(self._held):
            if pred(call):
                # Never hold forever: a test that forgets to release fails elsewhere.
                ev.wait(60)

    # -- observing ---------------------------------------------------------
    def wait_for(self, predicate, deadline, what="a call"):
        """Wait (on a condition variable, no polling) until predicate(calls)
        is true; returns its value. @deadline is a conftest.Deadline."""
        with self.cond:
            while True:
                v = predicate(self.calls)
                if v:
                    return v
                left = deadline.left()
                if left <= 0:
                    raise AssertionError("%s: timed out waiting for %s; calls: %r" % (self.queue, what, self.calls))
                self.cond.wait(left)

    def calls_of(self, method):
        with self.cond:
            return [c for c in self.calls if c.method == method]


# ---------------------------------------------------------------------------
# api-gateway.api-gateway@0.0.1


def substrate_error(err=None, code=0):
    return {"Err": err, "Code": I64(code)}


def contract_map(contract_id, twin, state="created", name="", version=4, grace_block=0):
    """tfchain-client-go Contract, as Go's msgpack writes it (§4.8)."""
    return {
        "Version": U32(version),
        "State": {
            "IsCreated": state == "created",
            "IsDeleted": state == "deleted",
            "AsDeleted": {
                "IsCanceledByUser": state == "deleted",
                "IsOutOfFunds": False,
                "IsNoReason": False,
            },
            "IsGracePeriod": state == "grace",
            "AsGracePeriodBlockNumber": U64(grace_block),
        },
        "ContractID": U64(contract_id),
        "TwinID": U32(twin),
        "ContractType": {
            "IsNodeContract": False,
            "NodeContract": {
                "Node": U32(0),
                "DeploymentHash": bytes(32),
                "DeploymentData": "",
                "PublicIPsCount": U32(0),
                "PublicIPs": None,
            },
            "IsNameContract": True,
            "NameContract": {"Name": name},
            "IsRentContract": False,
            "RentContract": {"Node": U32(0)},
        },
        "SolutionProviderID": {},
    }


class NameContract:
    """What the fake chain knows about a name."""

    def __init__(self, contract_id, twin, state="created"):
        self.contract_id = contract_id
        self.twin = twin
        self.state = state  # created | grace | deleted
        self.lookup_error = None  # (code, text) for GetContractIDByNameRegistration
        self.get_error = None  # (code, text) for GetContract


class ApiGatewayFake(BusPeer):
    module, obj, version = "api-gateway", "api-gateway", "0.0.1"

    def __init__(self, socket_path):
        super().__init__(socket_path)
        self.names = {}
        self._next_id = 1000

    def reserve(self, name, twin, state="created", contract_id=None):
        if contract_id is None:
            self._next_id += 1
            contract_id = self._next_id
        c = NameContract(contract_id, twin, state)
        self.names[name] = c
        return c

    def by_id(self, cid):
        for n, c in self.names.items():
            if c.contract_id == cid:
                return n, c
        return None, None

    def handle_GetContractIDByNameRegistration(self, call):
        name = call.args[0]
        if isinstance(name, bytes):
            name = name.decode()
        c = self.names.get(name)
        if c is None:
            return goenc([U64(0), substrate_error("contract not found: object not found", 1)]), None
        if c.lookup_error:
            code, text = c.lookup_error
            return goenc([U64(0), substrate_error(text, code)]), None
        return goenc([U64(c.contract_id), substrate_error()]), None

    def handle_GetContract(self, call):
        cid = int(call.args[0])
        name, c = self.by_id(cid)
        if c is None or c.state == "gone":
            # Zero Contract + NotFound.
            zero = contract_map(0, 0, state="none")
            return goenc([zero, substrate_error("contract not found: object not found", 1)]), None
        if c.get_error:
            code, text = c.get_error
            zero = contract_map(0, 0, state="none")
            return goenc([zero, substrate_error(text, code)]), None
        return goenc([contract_map(cid, c.twin, c.state, name), substrate_error()]), None

    def lookups(self, name=None):
        return [
            c
            for c in self.calls_of("GetContractIDByNameRegistration")
            if name is None or c.args[0] in (name, name.encode())
        ]


# ---------------------------------------------------------------------------
# provision.provision@0.0.1


class ProvisionFake(BusPeer):
    module, obj, version = "provision", "provision", "0.0.1"

    def handle_DecommissionCached(self, call):
        return None, None

    def decommissions(self):
        return [(c.args[0], c.args[1]) for c in self.calls_of("DecommissionCached")]


# ---------------------------------------------------------------------------
# network.network@0.0.1


def ipnet(cidr):
    """gridtypes.IPNet as msgpack sees it: {"IP": bin, "Mask": bin}."""
    if cidr is None:
        return {"IP": None, "Mask": None}
    n = ipaddress.ip_interface(cidr)
    return {"IP": n.ip.packed, "Mask": n.network.netmask.packed}


def public_config(ipv4=None, ipv6=None, gw4=None, gw6=None, domain="", v4_16=False):
    """PublicConfig (§6) in Go field order. @v4_16 writes IPv4 as 16-byte
    v4-mapped (as Go's ParseCIDR does) instead of netlink's 4 bytes."""
    v4 = ipnet(ipv4)
    if v4_16 and ipv4:
        v4 = {"IP": b"\0" * 10 + b"\xff\xff" + v4["IP"], "Mask": b"\xff" * 12 + v4["Mask"]}
    g4 = ipaddress.ip_address(gw4).packed if gw4 else None
    if v4_16 and g4:
        g4 = b"\0" * 10 + b"\xff\xff" + g4
    return {
        "Type": "",
        "IPv4": v4,
        "IPv6": ipnet(ipv6),
        "GW4": g4,
        "GW6": ipaddress.ip_address(gw6).packed if gw6 else None,
        "Domain": domain,
    }


class NetworkFake(BusPeer):
    module, obj, version = "network", "network", "0.0.1"

    def __init__(self, socket_path):
        super().__init__(socket_path)
        self.config = public_config()
        self.error = "no public configuration"

    def set_config(self, **kw):
        self.config = public_config(**kw)
        self.error = None

    def set_error(self, text="no public configuration"):
        self.config = public_config()
        self.error = text

    def handle_GetPublicConfig(self, call):
        return goenc(self.config), self.error


# ---------------------------------------------------------------------------
# DNS


class _Resolver(BaseResolver):
    def __init__(self, owner):
        self.owner = owner

    def resolve(self, request, handler):
        reply = request.reply()
        qname = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        self.owner._record(qname, qtype)
        if qname in self.owner.drop:
            # dnslib's handler logs DNSError (quietly here) and sends nothing:
            # the client sees a dead server and times out.
            raise DNSError("dropped on purpose")
        recs = self.owner.records.get(qname)
        if recs is None:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        for ip in recs:
            addr = ipaddress.ip_address(ip)
            if addr.version == 4 and qtype in ("A", "ANY"):
                reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(ip), ttl=5))
            elif addr.version == 6 and qtype in ("AAAA", "ANY"):
                reply.add_answer(RR(request.q.qname, QTYPE.AAAA, rdata=AAAA(ip), ttl=5))
        return reply


class _QuietLogger(DNSLogger):
    def __init__(self):
        super().__init__(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)


class FakeDns:
    """A DNS server on 127.0.0.1, UDP bound to port 0 (port read back) and TCP
    on the same port number when that is free. records: name -> [ip, ...];
    other names get NXDOMAIN; names in ``drop`` are never answered."""

    def __init__(self):
        self.records = {}
        self.drop = set()
        self.queries = []
        self._lock = threading.Lock()
        self.udp = None
        self.tcp = None
        self.port = None

    def _record(self, name, qtype):
        with self._lock:
            self.queries.append((name, qtype))

    def add(self, name, *ips):
        self.records[name.rstrip(".").lower()] = list(ips)

    def start(self):
        res = _Resolver(self)
        self.udp = DNSServer(res, address="127.0.0.1", port=0, logger=_QuietLogger())
        self.port = self.udp.server.server_address[1]
        self._serve(self.udp)
        try:
            self.tcp = DNSServer(res, address="127.0.0.1", port=self.port, tcp=True, logger=_QuietLogger())
            self._serve(self.tcp)
        except OSError:
            self.tcp = None
        return self

    @staticmethod
    def _serve(s):
        # A short poll interval keeps shutdown() fast.
        s.thread = threading.Thread(target=s.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        s.thread.start()

    def stop(self):
        for s in (self.udp, self.tcp):
            if s:
                s.stop()
                s.server.server_close()
        self.udp = self.tcp = None

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port


def dns_query(port, name, qtype="A", timeout=2.0):
    """A tiny UDP client (for testing the fake itself)."""
    from dnslib import DNSRecord

    q = DNSRecord.question(name, qtype)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        s.sendto(q.pack(), ("127.0.0.1", port))
        data, _ = s.recvfrom(4096)
    finally:
        s.close()
    return DNSRecord.parse(data)

# SPDX-License-Identifier: Apache-2.0
"""zbus protocol behaviour of gatewayd: envelopes, status object, protocol
errors, reply keys, robustness against garbage (protocol doc §1-§3, §7)."""

import os
import time
import uuid

import msgpack
import pytest

import gobus
from conftest import (DOMAIN, GATEWAY_QUEUE, MULT, STATUS_QUEUE, Deadline, needs_gatewayd)

pytestmark = needs_gatewayd

WL = "37-1976-myapp"
BACKENDS = ["http://[300:1:2::3]:9000"]


# ---- status object ------------------------------------------------------------


def test_status_object(node):
    rep = node.bus.status()
    assert rep.proto_error is None and rep.error is None, rep
    assert rep.raw[:1] == b"\x83"
    st = rep.data
    assert list(st.keys()) == ["Objects", "Workers"]
    assert st["Objects"] == [{"Name": "manager", "Version": "0.0.1"}]
    assert len(st["Workers"]) == 1
    w = st["Workers"][0]
    assert list(w.keys()) == ["State", "StartTime", "Action"]
    assert w["State"] == "free" and w["Action"] == ""
    # Must be a msgpack timestamp ext (-1): Go's decoder rejects nil there.
    assert isinstance(w["StartTime"], msgpack.Timestamp), w
    assert abs(w["StartTime"].to_unix() - time.time()) < 3600


def test_status_reply_id_and_reply_to(node):
    rid, key = str(uuid.uuid4()), "status-reply-" + str(uuid.uuid4())
    rep = node.bus.call("gateway", "zbus", "1.0", "", [], req_id=rid, reply_to=key)
    assert rep.id == rid
    assert node.bus.no_reply(rid)


@pytest.mark.parametrize("workers", [2, 4])
def test_status_lists_every_worker(env, workers):
    env.start_daemon(workers=workers)
    st = env.bus.status().data
    assert len(st["Workers"]) == workers
    assert all(w["State"] == "free" for w in st["Workers"])


def test_status_answers_fast_while_worker_busy(env):
    env.start_daemon(workers=1)
    env.reserve("slowapp", 37)
    hold = env.api.hold()
    t_sent = time.time()
    key = env.bus.send("gateway", "manager", "0.0.1", "SetNamedProxy",
                       [gobus.pack(WL), gobus.pack(gobus.name_proxy("slowapp", BACKENDS))])
    env.api.wait_for(lambda calls: calls, Deadline(5), "the daemon's name-contract lookup")

    t0 = time.monotonic()
    rep = env.bus.status()
    elapsed = time.monotonic() - t0
    assert elapsed < 0.1 * MULT, "status took %.3fs while a worker was busy" % elapsed
    w = rep.data["Workers"]
    assert len(w) == 1
    assert w[0]["State"] == "busy"
    assert w[0]["Action"] == "[manager@0.0.1].SetNamedProxy()"
    assert w[0]["StartTime"].to_unix() >= t_sent - 1

    hold.set()
    r = env.bus.wait_reply(key, 5)
    assert r.ok and r.data == "slowapp." + DOMAIN, r
    w = env.bus.status().data["Workers"][0]
    assert w["State"] == "free" and w["Action"] == ""


def test_second_worker_serves_while_first_is_busy(env):
    env.start_daemon(workers=2)
    env.reserve("slowapp", 37)
    hold = env.api.hold()
    key = env.bus.send("gateway", "manager", "0.0.1", "SetNamedProxy",
                       [gobus.pack(WL), gobus.pack(gobus.name_proxy("slowapp", BACKENDS))])
    env.api.wait_for(lambda calls: calls, Deadline(5), "the daemon's name-contract lookup")
    # FQDN proxies need no api-gateway call: the free worker handles it now.
    env.deploy_fqdn("37-1977-web", "web.example.org")
    states = sorted(w["State"] for w in env.bus.status().data["Workers"])
    assert states == ["busy", "free"]
    hold.set()
    assert env.bus.wait_reply(key, 5).ok


# ---- protocol errors (always in Output.Error, never top-level Error) ---------------


def _raw_call(bus, obj, version, method, inputs, queue=GATEWAY_QUEUE):
    return bus.call("gateway", obj, version, method, inputs, queue=queue)


def test_unknown_object(node):
    rep = _raw_call(node.bus, "nosuch", "0.0.1", "Info", [])
    assert rep.proto_error is None
    assert rep.error == "unknown object"
    rep = _raw_call(node.bus, "manager", "9.9.9", "Info", [])
    assert rep.error == "unknown object" and rep.proto_error is None


@pytest.mark.parametrize("method", ["NoSuchMethod", "", "setNamedProxy", "Status"])
def test_not_a_function(node, method):
    rep = _raw_call(node.bus, "manager", "0.0.1", method, [])
    assert rep.proto_error is None
    assert rep.error == "not a function"


@pytest.mark.parametrize("method,args,want", [
    ("SetNamedProxy", [WL], "invalid number of arguments expecting 2 got 1"),
    ("SetFQDNProxy", [], "invalid number of arguments expecting 2 got 0"),
    ("DeleteNamedProxy", [], "invalid number of arguments expecting 1 got 0"),
    ("DeleteNamedProxy", [WL, WL], "invalid number of arguments expecting 1 got 2"),
    ("Metrics", [1], "invalid number of arguments expecting 0 got 1"),
])
def test_wrong_number_of_arguments(node, method, args, want):
    rep = _raw_call(node.bus, "manager", "0.0.1", method, [gobus.pack(a) for a in args])
    assert rep.proto_error is None
    assert rep.error == want


@pytest.mark.parametrize("method,typ", [("SetNamedProxy", "zos.GatewayNameProxy"),
                                        ("SetFQDNProxy", "zos.GatewayFQDNProxy")])
@pytest.mark.parametrize("bad", ["a string", 42, True])
def test_wrong_argument_type(node, method, typ, bad):
    rep = _raw_call(node.bus, "manager", "0.0.1", method, [gobus.pack(WL), gobus.pack(bad)])
    assert rep.proto_error is None
    assert rep.error == "invalid argument type [1] expecting %s got" % typ
    assert node.bus.list_proxies().data in ([], None)


def test_set_named_proxy_error_still_sends_empty_string_data(node):
    # Go stubs decode Data into the string result even on error (§2.4).
    rep = node.bus.set_named_proxy(WL, "myapp", [])
    assert rep.data_raw == b"\xa0"
    assert rep.raw == gobus.encode_response(rep.id, gobus.pack(""), "at least one backend is needed got '0'")


def test_success_reply_bytes_exact(node):
    node.reserve("myapp", 37)
    rep = node.bus.set_named_proxy(WL, "myapp", BACKENDS)
    assert rep.raw == gobus.encode_response(rep.id, gobus.pack("myapp." + DOMAIN))
    node.dns.add("app.example.org", "203.0.113.10")
    rep = node.bus.set_fqdn_proxy("37-1977-web", "app.example.org", BACKENDS)
    assert rep.raw == gobus.encode_response(rep.id)  # Output {Data: c0, Error: c0}
    rep = node.bus.delete_named_proxy("37-1977-web")
    assert rep.raw == gobus.encode_response(rep.id)


def test_reply_key_gets_ttl(node):
    rep, ttl = node.bus.call_with_ttl("gateway", "manager", "0.0.1", "Info", [])
    assert rep.ok
    assert 0 < ttl <= 300
    rep, ttl = node.bus.call_with_ttl("gateway", "zbus", "1.0", "", [])
    assert rep.ok and 0 < ttl <= 300


def test_reply_goes_to_reply_to_not_id(node):
    rid, key = str(uuid.uuid4()), "custom-reply-key-" + str(uuid.uuid4())
    rep = node.bus.call("gateway", "manager", "0.0.1", "Info", [], req_id=rid, reply_to=key)
    assert rep.id == rid
    assert node.bus.no_reply(rid)


def test_go_decoder_leniency(node):
    """str/bin interchangeable, keys in any order, unknown keys skipped,
    compact or wide integers (§2.2)."""
    node.reserve("lenient", 37)
    proxy = {"Name": b"lenient", "Extra": {"x": [1, 2]}, "Backends": [b"http://[300:1:2::3]:9000"],
             "TLSPassthrough": False, "Network": None}
    rep = _raw_call(node.bus, "manager", "0.0.1", "SetNamedProxy", [gobus.pack(WL.encode()), gobus.pack(proxy)])
    assert rep.ok, rep
    assert rep.data == "lenient." + DOMAIN
    info = node.bus.get_proxy(WL).data
    assert info["Backends"] == BACKENDS and info["Name"] == "lenient"


def test_missing_fields_take_zero_values(node):
    node.dns.add("zero.example.org", "203.0.113.10")
    rep = _raw_call(node.bus, "manager", "0.0.1", "SetFQDNProxy",
                    [gobus.pack("37-1-zero"), gobus.pack({"FQDN": "zero.example.org", "Backends": BACKENDS})])
    assert rep.ok, rep
    info = node.bus.get_proxy("37-1-zero").data
    assert info["TLSPassthrough"] is False and info["Network"] is None


# ---- robustness ------------------------------------------------------------------


def test_garbage_is_ignored(node):
    valid = gobus.encode_request("x", "manager", "0.0.1", "Info", [])
    big_id = str(uuid.uuid4())
    big = gobus.encode_request(big_id, "manager", "0.0.1", "SetNamedProxy",
                               [gobus.pack(WL), gobus.pack(gobus.name_proxy("big", ["http://1.2.3.4/" + "a" * (2 << 20)]))])
    assert len(big) > 2 << 20
    garbage = [
        os.urandom(200),
        b"",
        b"\xc1",  # never-used msgpack code
        valid[: len(valid) // 2],  # truncated
        gobus.pack(12345),
        gobus.pack({}),
        gobus.pack({"ID": 1, "Inputs": "nope", "Object": [], "ReplyTo": None, "Method": 7}),
        gobus.pack([1, 2, 3]),
        b"\xdd\xff\xff\xff\xff",  # array32 claiming 4G elements
        b"\xdf\x7f\xff\xff\xff",  # map32 claiming 2G pairs
        os.urandom(2 << 20),
        big,
    ]
    for g in garbage:
        node.bus.push(GATEWAY_QUEUE, g)
        if g is not big:  # the status object answers any request, whatever its Object
            node.bus.push(STATUS_QUEUE, g)
    # FIFO with one worker: once this is answered every garbage item was consumed.
    rep = node.bus.info(timeout=10)
    assert rep.ok
    assert node.daemon.running
    assert node.bus.no_reply(big_id)
    assert node.bus.r.llen(GATEWAY_QUEUE) == 0
    assert node.bus.status().ok
    assert node.bus.get_proxy(WL).error  # the oversized request was not applied


def _rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_issue_10_request_without_reply_to_is_freed(node):
    """A request without ReplyTo cannot be answered: it is dropped and freed.
    It used to keep its whole decoded payload (200 x 900 KB grew RSS by
    178 MB); under ASan, LeakSanitizer at the daemon's exit catches it."""
    pid = node.daemon.proc.pid
    big = gobus.encode_request("noreply", "manager", "0.0.1", "Info", [gobus.pack(b"x" * 900_000)],
                               reply_to="")
    node.bus.info(timeout=10)
    before = _rss_kib(pid)
    for _ in range(200):
        node.bus.push(GATEWAY_QUEUE, big)
    # FIFO with one worker: answered means every request before it was taken.
    assert node.bus.info(timeout=30).ok
    assert node.bus.r.llen(GATEWAY_QUEUE) == 0
    assert node.bus.r.llen(GATEWAY_QUEUE + ":inflight") == 0
    grown = _rss_kib(pid) - before
    if not os.environ.get("GW_SANITIZED"):  # ASan's quarantine keeps freed memory resident
        assert grown < 40 * 1024, "RSS grew by %d KiB for 200 dropped requests" % grown
    # Logged, but not once per request.
    assert node.daemon.log_text().count("without ReplyTo") == 1


def test_issue_10_overlong_method_is_not_a_function(node):
    """zbus answers any unknown method with "not a function", however long
    its name; gatewayd dropped names over 4 KiB silently."""
    rep = _raw_call(node.bus, "manager", "0.0.1", "M" * 5000, [])
    assert rep.proto_error is None
    assert rep.error == "not a function"
    assert node.bus.info().ok


def test_truncated_argument_document(node):
    arg = gobus.pack(gobus.name_proxy("myapp", BACKENDS))
    rep = _raw_call(node.bus, "manager", "0.0.1", "SetNamedProxy", [gobus.pack(WL), arg[:-3]])
    assert rep.proto_error is None
    assert rep.error, "a truncated argument must be refused"
    assert node.daemon.running and node.bus.info().ok


def test_request_pushed_while_daemon_down_is_answered(env):
    env.write_config()
    env.reserve("early", 37)
    k1 = env.bus.send("gateway", "manager", "0.0.1", "Info", [])
    k2 = env.bus.send("gateway", "manager", "0.0.1", "SetNamedProxy",
                      [gobus.pack(WL), gobus.pack(gobus.name_proxy("early", BACKENDS))])
    k3 = env.bus.send("gateway", "zbus", "1.0", "", [])
    env.daemon.start()
    assert env.bus.wait_reply(k1, 5).ok
    r2 = env.bus.wait_reply(k2, 5)
    assert r2.ok and r2.data == "early." + DOMAIN
    assert env.bus.wait_reply(k3, 5).ok


def test_unix_and_tcp_broker_urls_only(env):
    """The --broker scheme must be unix or tcp (zbus newRedisPool)."""
    env.write_config()
    env.daemon.redis.url, saved = "http://127.0.0.1:1", env.daemon.redis.url
    try:
        env.daemon.spawn()
        rc = env.daemon.wait_exit(10)
    finally:
        env.daemon.redis.url = saved
    assert rc != 0
    assert "http" in env.daemon.log_text()

# SPDX-License-Identifier: Apache-2.0
"""Unit tests of the harness itself (gobus encoder, fake peers, fake DNS).
They need redis-server but not gatewayd."""

import time
import uuid

import msgpack
import pytest

import fakes
import gobus
from conftest import Deadline
from gobus import I64, U32, U64, goenc

UUID = "6f1b1c9e-2a4d-4c6b-9a57-1f0e3b2d4c5a"

V1 = bytes.fromhex("ad33372d313937362d6d79617070")
V2 = bytes.fromhex(
    "84"
    "ae544c53506173737468726f756768c2"
    "a84261636b656e647391b8687474703a2f2f5b3330303a313a323a3a335d3a39303030"
    "a74e6574776f726bc0"
    "a44e616d65a56d79617070"
)
V3 = bytes.fromhex(
    "85a24944d92436663162316339652d326134642d346336622d396135372d316630653362326434633561a6496e7075747392c40ead33372d"
    "313937362d6d79617070c44884ae544c53506173737468726f756768c2a84261636b656e647391b8687474703a2f2f5b3330303a313a323a"
    "3a335d3a39303030a74e6574776f726bc0a44e616d65a56d79617070a64f626a65637482a44e616d65a76d616e61676572a756657273696f"
    "6ea5302e302e31a75265706c79546fd92436663162316339652d326134642d346336622d396135372d316630653362326434633561a64d65"
    "74686f64ad5365744e616d656450726f7879"
)
SUCCESS_REPLY = bytes.fromhex(
    "83a24944d924" + UUID.encode().hex() + "a64f757470757482a444617461c419b86d796170702e67656e7430312e646576"
    "2e677269642e7466a54572726f72c0a54572726f72c0"
)
METRICS_DATA = bytes.fromhex("82a752657175657374" "81ad33372d313937362d6d79617070cb406cc00000000000" "a8526573706f6e7365c0")


def test_vector_v1_wlid():
    assert gobus.pack("37-1976-myapp") == V1
    assert len(V1) == 14


def test_vector_v2_gateway_name_proxy():
    b = gobus.pack(gobus.name_proxy("myapp", ["http://[300:1:2::3]:9000"]))
    assert b == V2
    assert len(b) == 72


def test_vector_v3_request():
    req = gobus.encode_request(UUID, "manager", "0.0.1", "SetNamedProxy",
                               [gobus.pack("37-1976-myapp"),
                                gobus.pack(gobus.name_proxy("myapp", ["http://[300:1:2::3]:9000"]))])
    assert len(req) == 242
    assert req == V3


def test_vector_success_reply():
    r = gobus.encode_response(UUID, gobus.pack("myapp.gent01.dev.grid.tf"))
    assert len(r) == 96
    assert r == SUCCESS_REPLY
    rep = gobus.Reply(r, UUID, 0)
    assert rep.ok and rep.data == "myapp.gent01.dev.grid.tf" and rep.id == UUID


def test_vector_error_reply():
    text = "node doesn't support name proxy (doesn't have a domain)"
    assert len(text) == 55
    r = gobus.encode_response(UUID, gobus.pack(""), text)
    assert len(r) == 137
    assert bytes.fromhex("a444617461c401a0") in r
    assert bytes.fromhex("81a74d657373616765d937") in r


def test_vector_metrics_data():
    assert gobus.pack({"Request": {"37-1976-myapp": 230.0}, "Response": None}) == METRICS_DATA


def test_vector_fqdn_proxy_field_order():
    b = gobus.pack(gobus.fqdn_proxy("example.com", None))
    assert b == bytes.fromhex("84ae544c53506173737468726f756768c2a84261636b656e6473c0a74e6574776f726bc0a44651444e"
                              "ab6578616d706c652e636f6d")


def test_goenc_fixed_width_ints():
    assert goenc(U64(42)) == bytes.fromhex("cf000000000000002a")
    assert goenc(U32(7)) == bytes.fromhex("ce00000007")
    assert goenc(0) == bytes.fromhex("d30000000000000000")
    assert goenc(fakes.substrate_error()) == bytes.fromhex("82a3457272c0a4436f6465d30000000000000000")
    assert goenc(I64(-1)) == bytes.fromhex("d3ffffffffffffffff")
    # Everything else as python-msgpack.
    v = {"a": [True, None, b"\x01", "x" * 40, 1.5]}
    assert goenc(v) == msgpack.packb(v, use_bin_type=True)


def test_goenc_contract_decodes():
    c = gobus.unpack(goenc(fakes.contract_map(12, 37, "grace", "myapp")))
    assert c["TwinID"] == 37 and c["ContractID"] == 12
    assert c["State"]["IsGracePeriod"] is True and c["State"]["IsCreated"] is False
    assert c["ContractType"]["NodeContract"]["DeploymentHash"] == bytes(32)
    assert c["SolutionProviderID"] == {}
    raw = goenc(fakes.contract_map(12, 37))
    assert bytes.fromhex("a65477696e4944ce00000025") in raw  # "TwinID" ce 37
    assert raw.endswith(bytes.fromhex("b2536f6c7574696f6e50726f76696465724944") + b"\x80")


def test_status_example_decodes():
    data = bytes.fromhex(
        "82a74f626a656374739182a44e616d65a76d616e61676572a756657273696f6ea5302e302e31a7576f726b65727391"
        "83a55374617465a466726565a9537461727454696d65d7ff1d6f34546553f100a6416374696f6ea0")
    assert len(data) == 87
    st = gobus.unpack(data)
    ts = st["Workers"][0]["StartTime"]
    assert isinstance(ts, msgpack.Timestamp)
    assert (ts.seconds, ts.nanoseconds) == (1700000000, 123456789)


def test_public_config_example():
    pc = fakes.public_config(ipv4="185.69.166.10/24", gw4="185.69.166.1", domain="gent01.dev.grid.tf")
    b = goenc(pc)
    assert len(b) == 90
    assert b.startswith(bytes.fromhex("86a454797065a0a449507634" "82a24950c404b945a60a"))


# ---- fakes over a real redis -------------------------------------------------


@pytest.fixture
def rbus(tmp_path, sockdir):
    from conftest import RedisServer

    r = RedisServer(sockdir, str(tmp_path)).start()
    b = gobus.GoBus(r.sock)
    yield r, b
    b.close()
    r.kill()


def test_fake_api_gateway_roundtrip(rbus):
    r, bus = rbus
    api = fakes.ApiGatewayFake(r.sock).start()
    try:
        c = api.reserve("myapp", 37)
        rep = bus.call("api-gateway", "api-gateway", "0.0.1", "GetContractIDByNameRegistration",
                       [gobus.pack("myapp")])
        assert rep.ok
        # Go fixed-width bytes on the wire.
        assert rep.data_raw == goenc([U64(c.contract_id), fakes.substrate_error()])
        cid, serr = rep.data
        assert cid == c.contract_id and serr == {"Err": None, "Code": 0}

        rep = bus.call("api-gateway", "api-gateway", "0.0.1", "GetContract", [goenc(U64(cid))])
        contract, serr = rep.data
        assert contract["TwinID"] == 37 and contract["State"]["IsCreated"] and serr["Code"] == 0

        rep = bus.call("api-gateway", "api-gateway", "0.0.1", "GetContractIDByNameRegistration",
                       [gobus.pack("nope")])
        assert rep.data == [0, {"Err": "contract not found: object not found", "Code": 1}]
        rep = bus.call("api-gateway", "api-gateway", "0.0.1", "GetContract", [gobus.pack(99999)])
        assert rep.data[1]["Code"] == 1
        assert [c.args[0] for c in api.lookups()] == ["myapp", "nope"]
    finally:
        api.stop()


def test_fake_hold_and_release(rbus):
    r, bus = rbus
    api = fakes.ApiGatewayFake(r.sock).start()
    try:
        api.reserve("slow", 1)
        api.reserve("fast", 1)
        ev = api.hold(lambda c: c.args and c.args[0] == "slow")
        k = bus.send("api-gateway", "api-gateway", "0.0.1", "GetContractIDByNameRegistration", [gobus.pack("slow")])
        api.wait_for(lambda calls: calls, Deadline(5), "the slow call")
        t0 = time.monotonic()
        rep = bus.call("api-gateway", "api-gateway", "0.0.1", "GetContractIDByNameRegistration",
                       [gobus.pack("fast")])
        assert rep.ok and time.monotonic() - t0 < 1
        assert bus.r.llen(k) == 0
        ev.set()
        assert bus.wait_reply(k, 5).ok
    finally:
        api.stop()


def test_fake_provision_and_network(rbus):
    r, bus = rbus
    prov = fakes.ProvisionFake(r.sock).start()
    net = fakes.NetworkFake(r.sock).start()
    try:
        rep = bus.call("provision", "provision", "0.0.1", "DecommissionCached",
                       [gobus.pack("1-2-x"), gobus.pack("why")])
        assert rep.ok and rep.data_raw is None
        assert rep.raw == gobus.encode_response(rep.id, None, None)
        assert prov.decommissions() == [("1-2-x", "why")]

        rep = bus.call("network", "network", "0.0.1", "GetPublicConfig", [])
        assert rep.error == "no public configuration"
        net.set_config(ipv4="203.0.113.10/24", gw4="203.0.113.1", ipv6="2001:db8:1::10/64", domain="d.example")
        rep = bus.call("network", "network", "0.0.1", "GetPublicConfig", [])
        assert rep.ok
        pc = rep.data
        assert pc["IPv4"] == {"IP": bytes([203, 0, 113, 10]), "Mask": bytes([255, 255, 255, 0])}
        assert len(pc["IPv6"]["IP"]) == 16 and pc["GW6"] is None and pc["Domain"] == "d.example"
        # The reply key gets a TTL like zbus' server gives it.
        rep, ttl = bus.call_with_ttl("network", "network", "0.0.1", "GetPublicConfig", [])
        assert rep.ok and 0 < ttl <= 300
    finally:
        prov.stop()
        net.stop()


def test_fake_peer_survives_redis_restart(rbus):
    r, bus = rbus
    prov = fakes.ProvisionFake(r.sock).start()
    try:
        r.restart()
        bus2 = gobus.GoBus(r.sock)
        rep = bus2.call("provision", "provision", "0.0.1", "DecommissionCached",
                        [gobus.pack("1-2-x"), gobus.pack("why")], timeout=5)
        assert rep.ok
        bus2.close()
    finally:
        prov.stop()


def test_fake_dns():
    dns = fakes.FakeDns().start()
    try:
        dns.add("a.example.org", "203.0.113.10", "2001:db8:1::10")
        rep = fakes.dns_query(dns.port, "a.example.org", "A")
        assert [str(rr.rdata) for rr in rep.rr] == ["203.0.113.10"]
        rep = fakes.dns_query(dns.port, "A.Example.Org", "AAAA")
        assert [str(rr.rdata) for rr in rep.rr] == ["2001:db8:1::10"]
        rep = fakes.dns_query(dns.port, "missing.example.org", "A")
        assert rep.header.rcode == 3  # NXDOMAIN
        dns.drop.add("dead.example.org")
        with pytest.raises(OSError):
            fakes.dns_query(dns.port, "dead.example.org", "A", timeout=0.3)
        assert ("a.example.org", "A") in dns.queries
    finally:
        dns.stop()


def test_request_decoder_accepts_go_request():
    req = gobus.decode_request(V3)
    assert req["ID"] == UUID and req["ReplyTo"] == UUID and req["Method"] == "SetNamedProxy"
    assert req["Inputs"] == [V1, V2]
    assert req["Object"] == {"Name": "manager", "Version": "0.0.1"}


def test_uuid_is_v4_lowercase():
    u = str(uuid.uuid4())
    assert len(u) == 36 and u == u.lower()


def test_config_writer():
    from conftest import DEFAULT_CONFIG, merge_config, render_config

    cfg = merge_config(DEFAULT_CONFIG, {"gateway": {"enabled": "no", "domain": None}, "log": None,
                                        "namespace": {"netns_dir": "/tmp/x"}})
    assert "domain" not in cfg["gateway"] and "log" not in cfg
    assert DEFAULT_CONFIG["gateway"]["domain"]  # the default is not mutated
    text = render_config(cfg)
    assert "[gateway]\nenabled = no\n" in text
    assert "[namespace]\nnetns_dir = /tmp/x\n" in text
    assert "resolver" not in text  # None values are left out


def test_deadline_multiplier(monkeypatch):
    import conftest

    monkeypatch.setattr(conftest, "MULT", 3.0)
    d = conftest.Deadline(2)
    assert 5.5 < d.left() <= 6.0
    assert not d.expired

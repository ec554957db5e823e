# SPDX-License-Identifier: Apache-2.0
"""SetNamedProxy: validation order and texts (protocol doc §4.1, §4.3, §4.8),
idempotency, updates, domain collisions."""

import msgpack
import pytest

import gobus
from conftest import DOMAIN, PUBLIC_IPV4, PUBLIC_IPV6, needs_gatewayd

pytestmark = needs_gatewayd

WL = "37-1976-myapp"
BACKENDS = ["http://[300:1:2::3]:9000"]
NO_BACKENDS = "at least one backend is needed got '0'"
CONTRACT = "failed to verify name contract: "


def names(bus):
    return sorted(p["ID"] for p in (bus.list_proxies().data or []))


def test_success_returns_fqdn_and_is_visible(node):
    c = node.reserve("myapp", 37)
    rep = node.bus.set_named_proxy(WL, "myapp", BACKENDS)
    assert rep.ok, rep
    assert rep.data == "myapp." + DOMAIN
    # The daemon asked the chain like zos does.
    assert [x.args[0] for x in node.api.lookups()] == ["myapp"]
    gets = node.api.calls_of("GetContract")
    assert [int(g.args[0]) for g in gets] == [c.contract_id]

    info = node.bus.get_proxy(WL)
    assert info.ok, info
    p = info.data
    assert p["ID"] == WL and p["Kind"] == "name" and p["FQDN"] == "myapp." + DOMAIN
    assert p["Name"] == "myapp" and p["Backends"] == BACKENDS
    assert p["TLSPassthrough"] is False and p["Network"] is None
    assert isinstance(p["Created"], msgpack.Timestamp) and isinstance(p["Updated"], msgpack.Timestamp)
    assert isinstance(p["RequestBytes"], float) and isinstance(p["ResponseBytes"], float)
    lst = node.bus.list_proxies().data
    assert lst == [p]
    assert node.bus.info().data["Workloads"] == 1


def test_grace_period_contract_is_accepted(node):
    node.reserve("graceapp", 37, state="grace")
    rep = node.bus.set_named_proxy("37-1-graceapp", "graceapp", BACKENDS)
    assert rep.ok and rep.data == "graceapp." + DOMAIN


@pytest.mark.parametrize("backends", [[], None])
def test_backends_empty_checked_first(node, backends):
    # Invalid workload ID and unreserved name: the backend check still comes first.
    rep = node.bus.set_named_proxy("garbage", "nope", backends)
    assert rep.error == NO_BACKENDS
    assert rep.data == ""
    assert node.api.calls == []


@pytest.mark.parametrize("wlid,err", [
    ("37-1976", "unexpected EOF"),
    # Go's %s verb hits EOF in notEOF(), which panics io.EOF (not
    # io.ErrUnexpectedEOF as for a missing literal): the text is plain "EOF".
    ("37-1976-", "EOF"),
    ("", "EOF"),
    ("abc", "expected integer"),
    ("-37-1976-x", "expected integer"),
    ("37_1976_x", "input does not match format"),
    ("37-x-y", "expected integer"),
])
def test_invalid_workload_id(node, wlid, err):
    node.reserve("myapp", 37)
    rep = node.bus.set_named_proxy(wlid, "myapp", BACKENDS)
    assert rep.error == "invalid workload id: " + err
    assert rep.data == ""
    assert node.api.calls == [], "the workload ID is checked before the chain"


def test_issue_10_refused_call_logs_the_raw_id(node):
    """The refusal's log line names the ID as sent, escaped, even when it is
    what failed to parse (it printed an empty ID)."""
    node.reserve("myapp", 37)
    assert node.bus.set_named_proxy("ab\x1b[31mc", "myapp", BACKENDS).error.startswith(
        "invalid workload id: ")
    node.daemon.wait_log(r'SetNamedProxy "ab\\x1b\[31mc" refused: invalid workload id')
    assert node.bus.set_named_proxy("", "myapp", BACKENDS).error == "invalid workload id: EOF"
    node.daemon.wait_log(r'SetNamedProxy "" refused: invalid workload id: EOF')


def test_workload_id_name_part_may_contain_dashes(node):
    node.reserve("dashed", 37)
    rep = node.bus.set_named_proxy("37-1976-my-app-x", "dashed", BACKENDS)
    assert rep.ok, rep


def test_gateway_disabled(env):
    env.start_daemon({"gateway": {"enabled": "no"}})
    env.reserve("myapp", 37)
    rep = env.bus.set_named_proxy(WL, "myapp", BACKENDS)
    assert rep.error.startswith("gateway is not supported on this node: "), rep
    assert rep.data == ""
    # Earlier checks keep their order.
    assert env.bus.set_named_proxy("bad", "myapp", []).error == NO_BACKENDS
    assert env.bus.set_named_proxy("bad", "myapp", BACKENDS).error == "invalid workload id: expected integer"
    env.dns.add("web.example.org", PUBLIC_IPV4)
    rep = env.bus.set_fqdn_proxy(WL, "web.example.org", BACKENDS)
    assert rep.error.startswith("gateway is not supported on this node: ")
    assert env.api.calls == []
    assert env.bus.info().data["Enabled"] is False
    # Deleting still works (provisiond must be able to clean up).
    assert env.bus.delete_named_proxy(WL).ok
    assert env.bus.list_proxies().data in ([], None)


def test_no_public_config_from_bus(env):
    env.net.set_error("no public configuration")
    env.start_daemon({"gateway": {"public_config": "bus", "public_ipv4": None, "gateway_ipv4": None,
                                  "public_ipv6": None, "gateway_ipv6": None}})
    env.reserve("myapp", 37)
    rep = env.bus.set_named_proxy(WL, "myapp", BACKENDS)
    assert rep.error == "gateway is not supported on this node: no public configuration"
    assert env.net.calls_of("GetPublicConfig"), "the networker was not asked"
    # The node gets a public config: the next call succeeds (zos asks the networker per call).
    env.net.set_config(ipv4=PUBLIC_IPV4 + "/24", gw4="203.0.113.1", domain=DOMAIN)
    rep = env.bus.set_named_proxy(WL, "myapp", BACKENDS)
    assert rep.ok and rep.data == "myapp." + DOMAIN, rep


def test_public_config_from_bus_with_16_byte_ipv4(env):
    env.net.set_config(ipv4=PUBLIC_IPV4 + "/24", gw4="203.0.113.1", domain=DOMAIN, v4_16=True)
    env.start_daemon({"gateway": {"public_config": "bus", "public_ipv4": None, "gateway_ipv4": None,
                                  "public_ipv6": None, "gateway_ipv6": None}})
    env.reserve("myapp", 37)
    rep = env.bus.set_named_proxy(WL, "myapp", ["http://%s:80" % PUBLIC_IPV4])
    assert "backend http://%s:80 points to the node's own public IP address" % PUBLIC_IPV4 in rep.error
    env.dns.add("web.example.org", PUBLIC_IPV4)
    assert env.bus.set_fqdn_proxy("37-2-web", "web.example.org", BACKENDS).ok


def test_info_shows_public_config_from_bus(env):
    env.net.set_config(ipv4=PUBLIC_IPV4 + "/24", gw4="203.0.113.1", ipv6=PUBLIC_IPV6 + "/64",
                       gw6="2001:db8:1::1", domain=DOMAIN)
    env.start_daemon({"gateway": {"public_config": "bus", "public_ipv4": None, "gateway_ipv4": None,
                                  "public_ipv6": None, "gateway_ipv6": None}})
    env.deploy_name(WL, "myapp")  # the daemon has asked the networker by now
    info = env.bus.info().data
    assert info["Domain"] == DOMAIN
    assert PUBLIC_IPV4 in info["PublicIPv4"] and PUBLIC_IPV6 in info["PublicIPv6"], info


def test_networker_not_answering(env):
    env.net.stop()
    env.start_daemon({"gateway": {"public_config": "bus", "public_ipv4": None, "gateway_ipv4": None,
                                  "public_ipv6": None, "gateway_ipv6": None},
                      "bus": {"call_timeout": "1s"}})
    env.reserve("myapp", 37)
    rep = env.bus.set_named_proxy(WL, "myapp", BACKENDS, timeout=10)
    assert rep.error.startswith("gateway is not supported on this node: "), rep
    assert env.bus.status().ok


def test_no_domain(env):
    env.start_daemon({"gateway": {"domain": None}})
    rep = env.bus.set_named_proxy(WL, "myapp", BACKENDS)
    assert rep.error == "node doesn't support name proxy (doesn't have a domain)"
    assert env.api.calls == [], "the domain is checked before the name contract"
    # FQDN proxies do not need a domain.
    env.deploy_fqdn("37-2-web", "web.example.org")


# ---- name contract (§4.8) ------------------------------------------------------


def test_contract_not_reserved(node):
    rep = node.bus.set_named_proxy(WL, "myapp", BACKENDS)
    assert rep.error == CONTRACT + "a name contract with the given name must be reserved first"
    assert rep.data == ""
    assert node.api.calls_of("GetContract") == []


@pytest.mark.parametrize("state", ["deleted", "none"])
def test_contract_in_wrong_state(node, state):
    node.reserve("myapp", 37, state=state)
    rep = node.bus.set_named_proxy(WL, "myapp", BACKENDS)
    assert rep.error == CONTRACT + "the name contract must be in Created or GracePeriod state"


def test_contract_twin_mismatch(node):
    node.reserve("myapp", 38)
    rep = node.bus.set_named_proxy(WL, "myapp", BACKENDS)
    assert rep.error == CONTRACT + "twin id mismatch"


def test_contract_id_then_not_found(node):
    c = node.reserve("myapp", 37)
    c.state = "gone"
    rep = node.bus.set_named_proxy(WL, "myapp", BACKENDS)
    assert rep.error == CONTRACT + "contract by name returned %d, but retrieving it results in 'not found' error" % c.contract_id


def test_contract_lookup_other_error(node):
    c = node.reserve("myapp", 37)
    c.lookup_error = (-1, "failed to connect to substrate")
    rep = node.bus.set_named_proxy(WL, "myapp", BACKENDS)
    assert rep.error == CONTRACT + "failed to connect to substrate"


def test_contract_get_other_error(node):
    c = node.reserve("myapp", 37)
    c.get_error = (4, "failed to decode contract")
    rep = node.bus.set_named_proxy(WL, "myapp", BACKENDS)
    assert rep.error == CONTRACT + "failed to decode contract"


def test_api_gateway_not_answering(env):
    env.api.stop()
    env.start_daemon({"bus": {"call_timeout": "1s"}})
    rep = env.bus.set_named_proxy(WL, "myapp", BACKENDS, timeout=10)
    assert rep.error, rep
    assert rep.data == ""
    assert env.bus.get_proxy(WL).error
    assert env.bus.status().ok


def test_validation_off_skips_chain(env):
    env.start_daemon({"names": {"validation": "off"}})
    rep = env.bus.set_named_proxy(WL, "unreserved", BACKENDS)
    assert rep.ok and rep.data == "unreserved." + DOMAIN
    assert env.api.calls == []
    assert env.bus.info().data["NameValidation"] == "off"


def test_contract_checked_before_backends(node):
    rep = node.bus.set_named_proxy(WL, "myapp", ["http://localhost:80"])
    assert rep.error == CONTRACT + "a name contract with the given name must be reserved first"


# ---- backends (§4.3 step 1) ---------------------------------------------------------


def one_error(b, cause):
    return "1 error occurred:\n\t* failed to validate backend '%s': %s\n\n" % (b, cause)


@pytest.mark.parametrize("backend,cause", [
    ("https://1.1.1.1:443", "scheme expected to be http"),
    ("ftp://1.1.1.1", "scheme expected to be http"),
    ("http://localhost:80", "invalid ip address in backend: localhost"),
    ("http://127.0.0.1:80", "invalid ip address in backend: 127.0.0.1"),
    ("http://[::1]:80", "invalid ip address in backend: ::1"),
    ("http://example.com", "invalid ip address in backend: example.com"),
])
def test_backend_invalid_http(node, backend, cause):
    node.reserve("myapp", 37)
    rep = node.bus.set_named_proxy(WL, "myapp", [backend])
    assert rep.error == one_error(backend, cause)
    assert rep.data == ""
    assert node.bus.get_proxy(WL).error


def test_backend_url_parse_error(node):
    node.reserve("myapp", 37)
    rep = node.bus.set_named_proxy(WL, "myapp", ["1.1.1.1:10"])
    assert rep.error.startswith("1 error occurred:\n\t* failed to validate backend '1.1.1.1:10': "
                                "failed to parse backend with error: "), rep.error
    assert "first path segment in URL cannot contain colon" in rep.error
    assert rep.error.endswith("\n\n")


@pytest.mark.parametrize("backend,tail", [
    ("example.com:443", "with error: invalid ip"),
    ("1.1.1.1:abc", "with error: invalid port in backend: abc"),
    ("1.1.1.1:70000", "with error: port '70000' must be <= 65535"),
    ("1.1.1.1", "missing port in address"),
    ("http://1.1.1.1:80", None),
])
def test_backend_invalid_passthrough(node, backend, tail):
    node.reserve("myapp", 37)
    rep = node.bus.set_named_proxy(WL, "myapp", [backend], tls_passthrough=True)
    head = "1 error occurred:\n\t* failed to validate backend '%s': failed to parse backend %s with error: " % (
        backend, backend)
    assert rep.error.startswith(head), rep.error
    assert rep.error.endswith("\n\n")
    if tail:
        assert rep.error[:-2].endswith(tail), rep.error


def test_several_backend_errors_are_collected(node):
    node.reserve("myapp", 37)
    bad = ["https://1.1.1.1", "http://[300:1:2::3]:9000", "http://localhost"]
    rep = node.bus.set_named_proxy(WL, "myapp", bad)
    assert rep.error == ("2 errors occurred:\n"
                         "\t* failed to validate backend 'https://1.1.1.1': scheme expected to be http\n"
                         "\t* failed to validate backend 'http://localhost': invalid ip address in backend: localhost\n"
                         "\n")


@pytest.mark.parametrize("backend,tls", [
    ("http://%s:80" % PUBLIC_IPV4, False),
    ("http://[%s]:80" % PUBLIC_IPV6, False),
    ("%s:443" % PUBLIC_IPV4, True),
    ("[%s]:443" % PUBLIC_IPV6, True),
])
def test_backend_pointing_to_own_ip(node, backend, tls):
    node.reserve("myapp", 37)
    rep = node.bus.set_named_proxy(WL, "myapp", [backend], tls_passthrough=tls)
    assert "backend %s points to the node's own public IP address" % backend in (rep.error or ""), rep


@pytest.mark.parametrize("backends,tls", [
    (["127.0.0.1:443"], True),  # loopback is not refused in passthrough mode
    (["[300:1:2::3]:443", "10.0.0.1:8443"], True),
    (["http://0.0.0.0"], False),
    (["http://10.1.2.3:8080/some/path?q=1", "HTTP://[300:1:2::4]"], False),
])
def test_backend_accepted(node, backends, tls):
    node.reserve("myapp", 37)
    rep = node.bus.set_named_proxy(WL, "myapp", backends, tls_passthrough=tls)
    assert rep.ok, rep
    p = node.bus.get_proxy(WL).data
    assert p["Backends"] == backends and p["TLSPassthrough"] is tls


# ---- idempotency, updates, collisions -----------------------------------------------


def test_idempotent_resend(node):
    node.reserve("myapp", 37)
    r1 = node.bus.set_named_proxy(WL, "myapp", BACKENDS)
    before = node.bus.get_proxy(WL).data
    r2 = node.bus.set_named_proxy(WL, "myapp", BACKENDS)
    assert r1.ok and r2.ok, (r1, r2)
    assert r1.data == r2.data == "myapp." + DOMAIN
    after = node.bus.get_proxy(WL).data
    assert after["Created"] == before["Created"]
    assert names(node.bus) == [WL]


def test_other_workload_cannot_take_the_domain(node):
    node.reserve("myapp", 37)
    assert node.bus.set_named_proxy(WL, "myapp", BACKENDS).ok
    rep = node.bus.set_named_proxy("37-1977-other", "myapp", BACKENDS)
    assert rep.error == "domain already registered: myapp." + DOMAIN
    assert rep.data == ""
    assert names(node.bus) == [WL]
    assert node.bus.get_proxy(WL).data["Backends"] == BACKENDS


def test_update_backends_replaces_them(node):
    node.reserve("myapp", 37)
    assert node.bus.set_named_proxy(WL, "myapp", BACKENDS).ok
    before = node.bus.get_proxy(WL).data
    new = ["http://[300:1:2::5]:8080", "http://10.0.0.7"]
    rep = node.bus.set_named_proxy(WL, "myapp", new)
    assert rep.ok and rep.data == "myapp." + DOMAIN
    after = node.bus.get_proxy(WL).data
    assert after["Backends"] == new
    assert after["Created"] == before["Created"]
    assert after["Updated"].to_unix_nano() >= before["Updated"].to_unix_nano()
    # Switching to passthrough is an update too.
    rep = node.bus.set_named_proxy(WL, "myapp", ["[300:1:2::5]:443"], tls_passthrough=True)
    assert rep.ok
    p = node.bus.get_proxy(WL).data
    assert p["TLSPassthrough"] is True and p["Backends"] == ["[300:1:2::5]:443"]
    assert names(node.bus) == [WL]


def test_failed_update_keeps_the_old_workload(node):
    node.reserve("myapp", 37)
    assert node.bus.set_named_proxy(WL, "myapp", BACKENDS).ok
    rep = node.bus.set_named_proxy(WL, "myapp", ["https://1.1.1.1"])
    assert rep.error
    assert node.bus.get_proxy(WL).data["Backends"] == BACKENDS


def test_rename_releases_the_old_domain(node):
    node.reserve("first", 37)
    node.reserve("second", 37)
    assert node.bus.set_named_proxy(WL, "first", BACKENDS).data == "first." + DOMAIN
    assert node.bus.set_named_proxy(WL, "second", BACKENDS).data == "second." + DOMAIN
    p = node.bus.get_proxy(WL).data
    assert p["Name"] == "second" and p["FQDN"] == "second." + DOMAIN
    rep = node.bus.set_named_proxy("37-1977-other", "first", BACKENDS)
    assert rep.ok, rep


# ---- delete, get, list, metrics, info ---------------------------------------------------


def test_delete(node):
    node.deploy_name(WL, "myapp")
    rep = node.bus.delete_named_proxy(WL)
    assert rep.ok and rep.data_raw is None
    assert node.bus.get_proxy(WL).error == "proxy with workload id '%s' not found" % WL
    assert node.bus.list_proxies().data in ([], None)
    assert node.bus.info().data["Workloads"] == 0
    # The domain is free again for another workload.
    rep = node.bus.set_named_proxy("37-5-x", "myapp", BACKENDS)
    assert rep.ok and rep.data == "myapp." + DOMAIN, rep


@pytest.mark.parametrize("wlid", ["37-9999-unknown", "garbage", ""])
def test_delete_unknown_succeeds(node, wlid):
    rep = node.bus.delete_named_proxy(wlid)
    assert rep.ok, rep
    assert rep.raw == gobus.encode_response(rep.id)


def test_get_proxy_not_found(node):
    rep = node.bus.get_proxy("1-2-nothing")
    assert rep.error == "proxy with workload id '1-2-nothing' not found"
    assert rep.proto_error is None


def test_list_proxies(node):
    assert node.bus.list_proxies().data in ([], None)
    node.deploy_name("37-1-a", "a")
    node.deploy_name("38-2-b", "b", backends=["[300::1]:443"], tls_passthrough=True)
    node.deploy_fqdn("39-3-c", "c.example.org")
    lst = {p["ID"]: p for p in node.bus.list_proxies().data}
    assert sorted(lst) == ["37-1-a", "38-2-b", "39-3-c"]
    assert lst["37-1-a"]["Kind"] == "name" and lst["37-1-a"]["FQDN"] == "a." + DOMAIN
    assert lst["38-2-b"]["TLSPassthrough"] is True
    assert lst["39-3-c"]["Kind"] == "fqdn" and lst["39-3-c"]["FQDN"] == "c.example.org"
    assert lst["39-3-c"]["Name"] is None
    for p in lst.values():
        assert set(p) >= {"ID", "Kind", "FQDN", "Name", "Backends", "TLSPassthrough", "Network", "Created",
                          "Updated", "RequestBytes", "ResponseBytes"}


def test_metrics(node):
    rep = node.bus.metrics()
    assert rep.ok
    assert rep.data_raw[:1] == b"\x82"
    m = rep.data
    assert list(m) == ["Request", "Response"]
    node.deploy_name(WL, "myapp")
    m = node.bus.metrics().data
    for k in ("Request", "Response"):
        assert m[k] is None or isinstance(m[k], dict)
        for wl, v in (m[k] or {}).items():
            assert wl == WL and isinstance(v, float)


def test_info(node):
    i = node.bus.info().data
    assert isinstance(i["Version"], str) and i["Version"]
    assert i["Enabled"] is True
    assert i["Domain"] == DOMAIN
    assert i["Workloads"] == 0
    assert PUBLIC_IPV4 in i["PublicIPv4"] and PUBLIC_IPV6 in i["PublicIPv6"]
    assert i["NameValidation"] == "bus"
    assert "gateway.manager@0.0.1" in str(i["Bus"])

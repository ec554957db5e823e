# SPDX-License-Identifier: Apache-2.0
"""SetFQDNProxy (protocol doc §4.2): managed-domain refusal, DNS check against
the fake resolver, collisions, backends."""

import time

import pytest

from conftest import DOMAIN, MULT, PUBLIC_IPV4, PUBLIC_IPV6, needs_gatewayd

pytestmark = needs_gatewayd

WL = "37-1976-web"
FQDN = "app.example.org"
BACKENDS = ["http://[300:1:2::3]:9000"]
DNS_ERR = "failed to verify domain dns record: "
NOT_OURS = DNS_ERR + "host doesn't point to the gateway ip"
SUBDOMAIN = "can't create a fqdn workload with a subdomain of the gateway's managed domain"


@pytest.mark.parametrize("ips", [
    [PUBLIC_IPV4],
    [PUBLIC_IPV6],
    ["198.51.100.7", PUBLIC_IPV4],
    ["2001:db8:9::1", PUBLIC_IPV6, "198.51.100.7"],
])
def test_success_when_dns_points_to_us(node, ips):
    node.dns.add(FQDN, *ips)
    rep = node.bus.set_fqdn_proxy(WL, FQDN, BACKENDS)
    assert rep.ok, rep
    assert rep.data_raw is None
    assert any(q[0] == FQDN for q in node.dns.queries), "the configured resolver was not asked"
    p = node.bus.get_proxy(WL).data
    assert p["Kind"] == "fqdn" and p["FQDN"] == FQDN and p["Name"] is None
    assert p["Backends"] == BACKENDS and p["TLSPassthrough"] is False
    assert node.api.calls == [], "FQDN proxies need no name contract"


@pytest.mark.parametrize("ips", [["198.51.100.7"], ["2001:db8:9::1"], ["203.0.113.11", "2001:db8:1::11"]])
def test_dns_points_elsewhere(node, ips):
    node.dns.add(FQDN, *ips)
    rep = node.bus.set_fqdn_proxy(WL, FQDN, BACKENDS)
    assert rep.error == NOT_OURS
    assert rep.data_raw is None
    assert node.bus.get_proxy(WL).error


def test_nxdomain(node):
    rep = node.bus.set_fqdn_proxy(WL, "missing.example.org", BACKENDS)
    assert rep.error.startswith(DNS_ERR), rep
    assert rep.error != NOT_OURS
    assert any(q[0] == "missing.example.org" for q in node.dns.queries)


def test_dns_timeout(env):
    env.start_daemon({"dns": {"timeout": "500ms"}})
    env.dns.drop.add(FQDN)
    t0 = time.monotonic()
    rep = env.bus.set_fqdn_proxy(WL, FQDN, BACKENDS, timeout=15)
    assert rep.error.startswith(DNS_ERR), rep
    assert rep.error != NOT_OURS
    assert time.monotonic() - t0 < 10 * MULT
    assert env.bus.status().ok


@pytest.mark.parametrize("fqdn", ["app." + DOMAIN, DOMAIN, "deep.app." + DOMAIN, "my" + DOMAIN])
def test_subdomain_of_managed_domain_refused(node, fqdn):
    node.dns.add(fqdn, PUBLIC_IPV4)
    rep = node.bus.set_fqdn_proxy(WL, fqdn, BACKENDS)
    assert rep.error == SUBDOMAIN
    assert not any(q[0] == fqdn for q in node.dns.queries), "domain check comes before DNS"


def test_no_backends(node):
    rep = node.bus.set_fqdn_proxy(WL, FQDN, [])
    assert rep.error == "at least one backend is needed got '0'"
    assert node.dns.queries == []


def test_workload_id_is_not_parsed(node):
    """zos only parses the workload ID of an FQDN proxy for private networks."""
    node.dns.add(FQDN, PUBLIC_IPV4)
    rep = node.bus.set_fqdn_proxy("not-a-workload-id", FQDN, BACKENDS)
    assert rep.ok, rep
    assert node.bus.get_proxy("not-a-workload-id").data["FQDN"] == FQDN


def test_dns_checked_before_backends(node):
    node.dns.add(FQDN, "198.51.100.7")
    rep = node.bus.set_fqdn_proxy(WL, FQDN, ["https://1.1.1.1"])
    assert rep.error == NOT_OURS


def test_backends_validated(node):
    node.dns.add(FQDN, PUBLIC_IPV4)
    rep = node.bus.set_fqdn_proxy(WL, FQDN, ["1.1.1.1:99999"], tls_passthrough=True)
    assert rep.error == ("1 error occurred:\n\t* failed to validate backend '1.1.1.1:99999': failed to parse "
                         "backend 1.1.1.1:99999 with error: port '99999' must be <= 65535\n\n")
    rep = node.bus.set_fqdn_proxy(WL, FQDN, ["%s:443" % PUBLIC_IPV4], tls_passthrough=True)
    assert "points to the node's own public IP address" in rep.error
    rep = node.bus.set_fqdn_proxy(WL, FQDN, ["[300:1:2::3]:443"], tls_passthrough=True)
    assert rep.ok, rep
    assert node.bus.get_proxy(WL).data["TLSPassthrough"] is True


def test_domain_taken_by_other_workload(node):
    node.deploy_fqdn(WL, FQDN)
    rep = node.bus.set_fqdn_proxy("37-1977-other", FQDN, BACKENDS)
    assert rep.error == "domain already registered: " + FQDN
    assert sorted(p["ID"] for p in node.bus.list_proxies().data) == [WL]


def test_idempotent_and_update(node):
    node.deploy_fqdn(WL, FQDN)
    created = node.bus.get_proxy(WL).data["Created"]
    assert node.bus.set_fqdn_proxy(WL, FQDN, BACKENDS).ok
    new = ["http://10.0.0.8:8080"]
    assert node.bus.set_fqdn_proxy(WL, FQDN, new).ok
    p = node.bus.get_proxy(WL).data
    assert p["Backends"] == new and p["Created"] == created
    assert len(node.bus.list_proxies().data) == 1


def test_delete_frees_fqdn(node):
    node.deploy_fqdn(WL, FQDN)
    assert node.bus.delete_named_proxy(WL).ok
    assert node.bus.get_proxy(WL).error
    rep = node.bus.set_fqdn_proxy("37-1977-other", FQDN, BACKENDS)
    assert rep.ok, rep


def test_resolver_change_on_reload(env):
    """[dns] resolver is applied on SIGHUP."""
    from fakes import FakeDns

    env.start_daemon()
    other = FakeDns().start()
    try:
        other.add(FQDN, PUBLIC_IPV4)
        env.dns.add(FQDN, "198.51.100.7")
        assert env.bus.set_fqdn_proxy(WL, FQDN, BACKENDS).error == NOT_OURS
        env.reload({"dns": {"resolver": other.address}})
        rep = env.bus.set_fqdn_proxy(WL, FQDN, BACKENDS)
        assert rep.ok, rep
        assert any(q[0] == FQDN for q in other.queries)
    finally:
        other.stop()

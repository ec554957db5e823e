# SPDX-License-Identifier: Apache-2.0
"""The periodic name-contract check (zos nameContractsValidator, §4.8):
DecommissionCached on the provision module for name workloads whose contract
became invalid, never blocking the bus workers."""

import time

import pytest

import gobus
from conftest import DOMAIN, MULT, Deadline, needs_gatewayd

pytestmark = needs_gatewayd

BACKENDS = ["http://[300:1:2::3]:9000"]
INTERVAL = {"names": {"revalidate_interval": "2s"}}

NOT_RESERVED = "a name contract with the given name must be reserved first"
BAD_STATE = "the name contract must be in Created or GracePeriod state"
MISMATCH = "twin id mismatch"


def lookups_after(env, name, t):
    return [c for c in env.api.lookups(name) if c.time > t]


def wait_decommission(env, wlid, timeout=10):
    dl = Deadline(timeout, "DecommissionCached(%s)" % wlid)
    calls = env.prov.wait_for(lambda calls: [c for c in calls if c.method == "DecommissionCached"
                                             and c.args[0] == wlid], dl, "DecommissionCached(%s)" % wlid)
    return calls[0]


@pytest.mark.timeout_s(45)
@pytest.mark.parametrize("breakage,reason", [
    ("delete", BAD_STATE),
    ("unreserve", NOT_RESERVED),
    ("transfer", MISMATCH),
])
def test_invalid_contract_is_decommissioned(env, breakage, reason):
    env.start_daemon(INTERVAL)
    env.deploy_name("37-1-alpha", "alpha")
    env.deploy_name("37-2-keep", "keep")
    env.deploy_fqdn("37-3-web", "web.example.org")
    if breakage == "delete":
        env.api.names["alpha"].state = "deleted"
    elif breakage == "unreserve":
        del env.api.names["alpha"]
    else:
        env.api.names["alpha"].twin = 99
    call = wait_decommission(env, "37-1-alpha")
    wlid, why = call.args
    assert isinstance(wlid, str) and isinstance(why, str)
    assert reason in why, why
    assert len(call.raw_inputs) == 2
    assert call.request["Object"] == {"Name": "provision", "Version": "0.0.1"}
    # Wait for one more full round that checks "keep" and make sure it was spared.
    t = time.monotonic()
    env.api.wait_for(lambda calls: [c for c in calls if c.method == "GetContractIDByNameRegistration"
                                    and c.args[0] == "keep" and c.time > t], Deadline(10), "another round")
    assert {d[0] for d in env.prov.decommissions()} == {"37-1-alpha"}
    # FQDN workloads are never checked against the chain.
    assert not env.api.lookups("web.example.org") and not env.api.lookups("web")


@pytest.mark.timeout_s(45)
def test_grace_period_and_chain_errors_are_not_decommissioned(env):
    env.start_daemon(INTERVAL)
    env.deploy_name("37-1-grace", "grace")
    env.deploy_name("37-2-flaky", "flaky")
    env.deploy_name("37-3-dead", "dead")
    env.api.names["grace"].state = "grace"
    env.api.names["flaky"].lookup_error = (-1, "substrate unreachable")
    env.api.names["dead"].state = "deleted"
    wait_decommission(env, "37-3-dead")
    # Two more rounds that cover both survivors.
    for _ in range(2):
        t = time.monotonic()
        for n in ("grace", "flaky"):
            env.api.wait_for(lambda calls, n=n: [c for c in calls if c.method == "GetContractIDByNameRegistration"
                                                 and c.args[0] == n and c.time > t], Deadline(10), "round for " + n)
    assert {d[0] for d in env.prov.decommissions()} == {"37-3-dead"}


@pytest.mark.timeout_s(45)
def test_revalidation_does_not_block_workers(env):
    env.start_daemon(INTERVAL, workers=1)
    env.deploy_name("37-1-alpha", "alpha")
    t = time.monotonic()
    hold = env.api.hold(lambda c: c.method == "GetContractIDByNameRegistration" and c.args[0] == "alpha"
                        and c.time > t)
    try:
        env.api.wait_for(lambda calls: [c for c in calls if c.args and c.args[0] == "alpha" and c.time > t],
                         Deadline(10), "the revalidation of alpha")
        # The revalidation is stuck on the chain; the single bus worker must still serve.
        t0 = time.monotonic()
        env.deploy_fqdn("37-2-web", "web.example.org")
        env.reserve("beta", 37)
        rep = env.bus.set_named_proxy("37-3-beta", "beta", BACKENDS)
        assert rep.ok and rep.data == "beta." + DOMAIN, rep
        assert env.bus.delete_named_proxy("37-2-web").ok
        assert time.monotonic() - t0 < 3 * MULT
        w = env.bus.status().data["Workers"]
        assert [x["State"] for x in w] == ["free"]
    finally:
        hold.set()


@pytest.mark.timeout_s(45)
def test_decommission_callback_can_delete(env):
    """provisiond answers DecommissionCached by uninstalling, which calls
    DeleteNamedProxy back: that must not deadlock the daemon."""
    env.start_daemon(INTERVAL, workers=1)
    env.deploy_name("37-1-alpha", "alpha")
    bus = gobus.GoBus(env.redis.sock)
    orig = env.prov.handle_DecommissionCached

    def uninstall(call):
        rep = bus.delete_named_proxy(call.args[0], timeout=10)
        assert rep.ok, rep
        return orig(call)

    env.prov.handle_DecommissionCached = uninstall
    try:
        env.api.names["alpha"].state = "deleted"
        call = wait_decommission(env, "37-1-alpha")
        env.prov.wait_for(lambda calls: getattr(call, "answered", None), Deadline(15), "uninstall to finish")
        assert env.bus.get_proxy("37-1-alpha").error
        assert env.prov.errors == []
    finally:
        bus.close()


def test_revalidation_interval_reload(env):
    env.start_daemon()  # 1h: nothing should happen soon
    env.deploy_name("37-1-alpha", "alpha")
    env.api.names["alpha"].state = "deleted"
    env.reload(INTERVAL)
    wait_decommission(env, "37-1-alpha", timeout=10)

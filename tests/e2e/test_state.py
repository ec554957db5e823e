# SPDX-License-Identifier: Apache-2.0
"""Durability: persisted before the reply, restored after kill -9, Redis
restarts, lifecycle signals."""

import signal
import subprocess
import urllib.request

import pytest

import gobus
from conftest import DOMAIN, GATEWAYCTL, Deadline, needs_gatewayd

pytestmark = needs_gatewayd

BACKENDS = ["http://[300:1:2::3]:9000"]


def snapshot(bus):
    lst = bus.list_proxies().data or []
    return sorted(lst, key=lambda p: p["ID"])


def deploy_mix(node):
    node.deploy_name("37-1-alpha", "alpha")
    node.deploy_name("38-2-beta", "beta", backends=["[300:1:2::9]:443", "10.0.0.2:443"], tls_passthrough=True)
    node.deploy_fqdn("39-3-web", "web.example.org", backends=["http://10.0.0.3", "http://[300::3]:81"])
    node.deploy_fqdn("39-4-web6", "web6.example.org", ips=["2001:db8:1::10"], backends=["[300::4]:8443"],
                     tls_passthrough=True)


def test_kill9_right_after_reply_loses_nothing(node):
    deploy_mix(node)
    before = snapshot(node.bus)
    node.reserve("gamma", 37)
    rep = node.bus.set_named_proxy("37-5-gamma", "gamma", BACKENDS, tls_passthrough=False)
    assert rep.ok, rep
    # The reply is out: the workload must already be on disk. No other call in between.
    node.daemon.kill(signal.SIGKILL)
    node.daemon.start()
    after = snapshot(node.bus)
    assert [p for p in after if p["ID"] != "37-5-gamma"] == before
    gamma = [p for p in after if p["ID"] == "37-5-gamma"]
    assert len(gamma) == 1 and gamma[0]["FQDN"] == "gamma." + DOMAIN and gamma[0]["Backends"] == BACKENDS
    assert node.bus.info().data["Workloads"] == 5
    # And a delete is durable the same way.
    assert node.bus.delete_named_proxy("37-5-gamma").ok
    node.daemon.kill(signal.SIGKILL)
    node.daemon.start()
    assert snapshot(node.bus) == before


def test_restore_keeps_domains_reserved(node):
    deploy_mix(node)
    node.daemon.restart()
    rep = node.bus.set_named_proxy("37-9-thief", "alpha", BACKENDS)
    assert rep.error == "domain already registered: alpha." + DOMAIN
    node.dns.add("web.example.org", "203.0.113.10")
    rep = node.bus.set_fqdn_proxy("39-9-thief", "web.example.org", BACKENDS)
    assert rep.error == "domain already registered: web.example.org"
    # Same workload, same spec: still idempotent after the restart.
    rep = node.bus.set_named_proxy("37-1-alpha", "alpha", BACKENDS)
    assert rep.ok and rep.data == "alpha." + DOMAIN


def test_delete_and_update_survive_restart(node):
    deploy_mix(node)
    assert node.bus.delete_named_proxy("38-2-beta").ok
    assert node.bus.set_named_proxy("37-1-alpha", "alpha", ["http://10.9.9.9:9"]).ok
    before = snapshot(node.bus)
    node.daemon.restart()
    after = snapshot(node.bus)
    assert after == before
    assert [p["ID"] for p in after] == ["37-1-alpha", "39-3-web", "39-4-web6"]
    assert after[0]["Backends"] == ["http://10.9.9.9:9"]
    # The deleted name is free.
    assert node.bus.set_named_proxy("38-7-beta", "beta", BACKENDS).ok


def test_graceful_stop_and_restart(node):
    deploy_mix(node)
    before = snapshot(node.bus)
    mark = node.daemon.notify_mark()
    node.daemon.signal(signal.SIGTERM)
    assert node.daemon.wait_exit(10) == 0
    assert any("STOPPING=1" in m.split("\n") for _, m in node.daemon.notify[mark:])
    node.daemon.start()
    assert snapshot(node.bus) == before


def test_state_survives_several_restarts_and_workers(node):
    deploy_mix(node)
    before = snapshot(node.bus)
    for workers in (3, 1):
        node.daemon.restart(workers=workers)
        assert snapshot(node.bus) == before
        assert len(node.bus.status().data["Workers"]) == workers


def test_redis_restart(node):
    node.deploy_name("37-1-alpha", "alpha")
    node.redis.restart()  # same socket path; the old data is gone
    bus = gobus.GoBus(node.redis.sock)
    try:
        # The request waits in Redis until the daemon has reconnected.
        rep = bus.info(timeout=20)
        assert rep.ok, rep
        assert bus.status().ok
        node.reserve("delta", 37)
        rep = bus.set_named_proxy("37-2-delta", "delta", BACKENDS, timeout=10)
        assert rep.ok and rep.data == "delta." + DOMAIN, rep
        assert sorted(p["ID"] for p in bus.list_proxies().data) == ["37-1-alpha", "37-2-delta"]
    finally:
        bus.close()
    assert node.daemon.running


@pytest.mark.timeout_s(60)
def test_redis_restart_right_after_ready(node):
    """Redis dies just after the daemon came up (reconnect while the first
    BLPOPs are being issued); repeated to catch a racy reconnect."""
    for i in range(6):
        if i:
            node.daemon.restart()
        node.redis.restart()
        bus = gobus.GoBus(node.redis.sock)
        try:
            rep = bus.info(timeout=10)
            assert rep.ok, rep
            assert bus.status(timeout=5).ok
        finally:
            bus.close()


def test_redis_down_for_a_while(node):
    assert node.bus.info().ok  # fully serving (the racy early case is tested above)
    node.redis.kill()
    mark = node.daemon.mark()
    # The daemon notices (it logs, it must not exit) ...
    node.daemon.wait_log(r"(?i)redis|bus|reconnect|connect", timeout=10, since=mark)
    assert node.daemon.running
    node.redis.start()
    bus = gobus.GoBus(node.redis.sock)
    try:
        assert bus.info(timeout=20).ok
    finally:
        bus.close()


def test_status_notifications(node):
    msgs = [m for _, m in node.daemon.notify]
    assert any(line.startswith("STATUS=") for m in msgs for line in m.split("\n")), msgs
    assert any("READY=1" in m.split("\n") for m in msgs)


def test_restart_waits_for_queued_requests(node):
    """Requests queued while the daemon restarts are all served afterwards."""
    node.daemon.kill(signal.SIGKILL)
    keys = []
    for i in range(5):
        node.reserve("q%d" % i, 37)
        keys.append(node.bus.send("gateway", "manager", "0.0.1", "SetNamedProxy",
                                  [gobus.pack("37-%d-q" % i), gobus.pack(gobus.name_proxy("q%d" % i, BACKENDS))]))
    node.daemon.start()
    dl = Deadline(10)
    for i, k in enumerate(keys):
        rep = node.bus.wait_reply(k, dl.left())
        assert rep.ok and rep.data == "q%d.%s" % (i, DOMAIN), rep
    assert len(snapshot(node.bus)) == 5


def test_sigterm_with_redis_down(node):
    assert node.bus.info().ok
    node.redis.kill()
    node.daemon.signal(signal.SIGTERM)
    assert node.daemon.wait_exit(10) == 0


def test_sigterm_with_a_call_in_flight(node):
    """SIGTERM does not wait for a bus call stuck on the chain."""
    node.reserve("slow", 37)
    hold = node.api.hold()
    try:
        node.bus.send("gateway", "manager", "0.0.1", "SetNamedProxy",
                      [gobus.pack("37-1-slow"), gobus.pack(gobus.name_proxy("slow", BACKENDS))])
        node.api.wait_for(lambda calls: calls, Deadline(5), "the lookup")
        node.daemon.signal(signal.SIGTERM)
        assert node.daemon.wait_exit(10) == 0
    finally:
        hold.set()
    # Nothing half-done was persisted.
    node.daemon.start()
    assert node.bus.get_proxy("37-1-slow").error or node.bus.get_proxy("37-1-slow").data["FQDN"] == "slow." + DOMAIN


def test_request_taken_but_unanswered_survives_kill9(node):
    """A request the daemon took from Redis but had not answered when it was
    killed (here: waiting on api-gateway) is handled after the restart: it
    sits in the :inflight list, not lost."""
    node.reserve("slow", 37)
    hold = node.api.hold(lambda call: call.method == "GetContractIDByNameRegistration")
    try:
        key = node.bus.send("gateway", "manager", "0.0.1", "SetNamedProxy",
                            [gobus.pack("37-9-slow"), gobus.pack(gobus.name_proxy("slow", BACKENDS))])
        node.api.wait_for(lambda calls: any(c.method == "GetContractIDByNameRegistration" for c in calls),
                          Deadline(10), "the daemon to ask api-gateway")
        r = node.redis.client()
        assert r.llen("gateway.manager@0.0.1") == 0
        assert r.llen("gateway.manager@0.0.1:inflight") == 1
        node.daemon.kill()  # SIGKILL with the call in flight
        assert node.bus.no_reply(key)
    finally:
        hold.set()
    node.daemon.start()
    rep = node.bus.wait_reply(key, timeout=10)
    assert rep.ok and rep.data == "slow." + DOMAIN, rep
    assert node.redis.client().llen("gateway.manager@0.0.1:inflight") == 0
    assert [p["ID"] for p in snapshot(node.bus)] == ["37-9-slow"]


def test_issue_10_corrupt_state_file_is_set_aside(node):
    """A corrupt workload file must not silently drop a workload the bus once
    confirmed: the daemon still starts and serves the rest, the file is moved
    aside (not lost, not loaded again) and the warning names the workload."""
    node.deploy_name("37-1-alpha", "alpha")
    node.deploy_name("37-2-beta", "beta")
    node.daemon.stop()
    wl_dir = node.daemon.root / "workloads"
    victim = wl_dir / "wl-37-2-beta.json"
    victim.write_text('{"version": 1, "kind": "name", "id": "37-2-be')
    mark = node.daemon.mark()
    node.daemon.start()
    ids = [p["ID"] for p in snapshot(node.bus)]
    assert ids == ["37-1-alpha"]
    assert not victim.exists()
    aside = [p.name for p in wl_dir.iterdir() if p.name.startswith("wl-37-2-beta.json.corrupt-")]
    assert len(aside) == 1, list(wl_dir.iterdir())
    node.daemon.wait_log(r'corrupt state of workload "37-2-beta" \(it must be deployed again\)', since=mark)
    node.daemon.wait_log(r"1 corrupt workload state file\(s\) set aside", since=mark)
    # Visible to the operator: Info, gatewayctl status, the gauge.
    health = node.bus.info().data["Health"]
    assert health["CorruptStateFiles"] == 1 and health["CorruptWorkloads"] == ["37-2-beta"]
    p = subprocess.run([str(GATEWAYCTL), "--broker", node.redis.url, "status"], capture_output=True,
                       text=True, timeout=15)
    assert "corrupt state files: 1 (their workloads must be deployed again)" in p.stdout, p.stdout
    assert "corrupt workload: 37-2-beta" in p.stdout, p.stdout
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % node.metrics_port, timeout=5) as r:
        assert "gatewayd_state_corrupt_files 1" in r.read().decode()
    # The next start does not report the file as newly corrupt again.
    node.daemon.stop()
    mark = node.daemon.mark()
    node.daemon.start()
    assert [p["ID"] for p in snapshot(node.bus)] == ["37-1-alpha"]
    node.daemon.wait_log(r"1 corrupt workload state file\(s\) set aside", since=mark)
    with node.daemon.cond:
        later = [l for _, l in node.daemon.lines[mark:]]
    assert not [l for l in later if "corrupt state of workload" in l]
    # Deploying the workload again works and writes a fresh file.
    node.deploy_name("37-2-beta", "beta")
    assert victim.exists()

# SPDX-License-Identifier: Apache-2.0
"""Proxies over a user's private network (`Network` set, protocol doc §4.6):
the network ID derivation and the "network must exist" check. Real network
namespaces are made with `unshare --net=FILE` in a per-test netns_dir."""

import hashlib
import os
import shutil
import subprocess

import pytest

from conftest import DOMAIN, PUBLIC_IPV4, needs_gatewayd

pytestmark = needs_gatewayd

B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
BACKENDS = ["http://10.1.2.3:8080"]


def net_id(twin, name):
    """zos NetworkID: base58(md5("<twin>:<name>"))[:13] (jbenet/go-base58)."""
    b = hashlib.md5(("%d:%s" % (twin, name)).encode()).digest()
    n, s = int.from_bytes(b, "big"), ""
    while n:
        n, r = divmod(n, 58)
        s = B58[r] + s
    return ("1" * (len(b) - len(b.lstrip(b"\0"))) + s)[:13]


def test_net_id_vector():
    assert net_id(37, "mynet") == "VhXa1GWNNKDvv"


class NetnsDir:
    def __init__(self, path):
        self.path = path
        self.made = []

    def __str__(self):
        return str(self.path)

    def make(self, twin, name):
        """A real, persistent network namespace at <dir>/n-<netid>."""
        p = self.path / ("n-" + net_id(twin, name))
        p.touch()
        subprocess.run(["unshare", "--net=%s" % p, "true"], check=True, timeout=10)
        self.made.append(p)
        return p


@pytest.fixture
def netns_dir(tmp_path):
    d = NetnsDir(tmp_path / "netns")
    d.path.mkdir()
    try:
        yield d
    finally:
        for p in d.made:
            subprocess.run(["umount", "-l", str(p)], check=False)


needs_unshare = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                                   reason="needs root and unshare(1) to create network namespaces")


def missing(twin, name):
    return "failed to get user network: couldn't load network with id (%s): " % net_id(twin, name)


def test_network_must_exist(env, netns_dir):
    env.start_daemon({"namespace": {"netns_dir": str(netns_dir)}})
    env.reserve("myapp", 37)
    rep = env.bus.set_named_proxy("37-1-myapp", "myapp", BACKENDS, network="mynet")
    assert rep.error.startswith(missing(37, "mynet")), rep
    assert rep.data == ""
    env.dns.add("app.example.org", PUBLIC_IPV4)
    rep = env.bus.set_fqdn_proxy("37-2-app", "app.example.org", BACKENDS, network="mynet")
    assert rep.error.startswith(missing(37, "mynet")), rep
    assert env.bus.list_proxies().data in ([], None)


def test_empty_network_name_is_not_nil(env, netns_dir):
    """"" is a set (empty) network name and takes the private-network path."""
    env.start_daemon({"namespace": {"netns_dir": str(netns_dir)}})
    env.reserve("myapp", 37)
    rep = env.bus.set_named_proxy("37-1-myapp", "myapp", BACKENDS, network="")
    assert rep.error.startswith(missing(37, "")), rep


def test_backends_checked_before_network(env, netns_dir):
    env.start_daemon({"namespace": {"netns_dir": str(netns_dir)}})
    env.reserve("myapp", 37)
    rep = env.bus.set_named_proxy("37-1-myapp", "myapp", ["https://10.1.2.3"], network="mynet")
    assert rep.error.startswith("1 error occurred:\n\t* failed to validate backend 'https://10.1.2.3'"), rep


def test_fqdn_with_network_parses_workload_id(env, netns_dir):
    env.start_daemon({"namespace": {"netns_dir": str(netns_dir)}})
    env.dns.add("app.example.org", PUBLIC_IPV4)
    rep = env.bus.set_fqdn_proxy("no-twin-here", "app.example.org", BACKENDS, network="mynet")
    assert rep.error.startswith("invalid workload id: "), rep


@needs_unshare
def test_existing_network(env, netns_dir):
    netns_dir.make(37, "mynet")
    env.start_daemon({"namespace": {"netns_dir": str(netns_dir)}})
    env.reserve("myapp", 37)
    rep = env.bus.set_named_proxy("37-1-myapp", "myapp", BACKENDS, network="mynet")
    assert rep.ok and rep.data == "myapp." + DOMAIN, rep
    p = env.bus.get_proxy("37-1-myapp").data
    assert p["Network"] == "mynet" and p["Backends"] == BACKENDS
    # Another twin's network of the same name is a different network.
    env.reserve("other", 38)
    rep = env.bus.set_named_proxy("38-1-other", "other", BACKENDS, network="mynet")
    assert rep.error.startswith(missing(38, "mynet")), rep
    # Network survives a restart.
    env.daemon.restart()
    assert env.bus.get_proxy("37-1-myapp").data["Network"] == "mynet"

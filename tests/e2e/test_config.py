# SPDX-License-Identifier: Apache-2.0
"""Configuration file: start-up errors, SIGHUP live reload, refused reloads."""

import os
import re
import subprocess

import pytest

from conftest import DOMAIN, GATEWAYD, PUBLIC_IPV4, REPO, render_config, needs_gatewayd, scaled

pytestmark = needs_gatewayd

WL = "37-1976-myapp"
BACKENDS = ["http://[300:1:2::3]:9000"]


def start_expect_failure(env, text):
    path = env.daemon.write_config(text)
    env.daemon.spawn()
    rc = env.daemon.wait_exit(10)
    assert rc != 0, "gatewayd accepted a bad configuration"
    assert not any("READY=1" in m.split("\n") for _, m in env.daemon.notify), "READY=1 sent with a bad config"
    return str(path), env.daemon.log_text()


@pytest.mark.parametrize("body,line,section,key,reason", [
    ("[gateway]\nenabled = maybe\n", 2, "gateway", "enabled", "invalid boolean 'maybe'"),
    ("[gateway]\nenabled = yes\nflavour = vanilla\n", 3, "gateway", "flavour", "unknown key"),
    ("[dns]\ntimeout = soon\n", 2, "dns", "timeout", "invalid duration 'soon'"),
    ("[names]\nvalidation = sometimes\n", 2, "names", "validation", "invalid value 'sometimes'"),
    ("# comment\n\n[names]\nrevalidate_interval = 1x\n", 4, "names", "revalidate_interval", "invalid duration"),
    ("[gateway]\ndomain = GW1.Example.Net\n", 2, "gateway", "domain", "upper-case"),
    ("[gateway]\npublic_ipv4 = 203.0.113.10\n", 2, "gateway", "public_ipv4", "missing '/<prefix length>'"),
    ("[dns]\nresolver = dns.example.net:53\n", 2, "dns", "resolver", "invalid resolver"),
    ("[bus]\nmax_payload = lots\n", 2, "bus", "max_payload", "invalid size"),
    ("[gateway]\nenabled = yes\nenabled = no\n", 3, "gateway", "enabled", "duplicate key"),
])
def test_bad_config_exits_with_location(env, body, line, section, key, reason):
    path, log = start_expect_failure(env, body)
    want = "%s:%d: [%s] %s: " % (path, line, section, key)
    assert want in log, "expected %r in:\n%s" % (want, log)
    msg = log[log.index(want):].split("\n")[0]
    assert reason in msg, msg


def test_unknown_section(env):
    path, log = start_expect_failure(env, "[gateway]\nenabled = no\n[wat]\nx = 1\n")
    assert re.search(re.escape(path) + r":3: \[wat\]", log), log


def test_cross_key_error(env):
    # public_ipv4 without gateway_ipv4: a check across keys.
    path, log = start_expect_failure(env, "[gateway]\nenabled = yes\npublic_config = file\ndomain = %s\n"
                                     "public_ipv4 = %s/24\n" % (DOMAIN, PUBLIC_IPV4))
    assert "%s: [gateway] gateway_ipv4: " % path in log, log


def test_missing_config_file(env):
    env.daemon.config_path = env.daemon.workdir / "does-not-exist.conf"
    env.daemon.spawn()
    assert env.daemon.wait_exit(10) != 0
    assert str(env.daemon.config_path) in env.daemon.log_text()


def test_sighup_disable_then_enable(env):
    env.start_daemon()
    env.deploy_name(WL, "myapp")
    env.reload({"gateway": {"enabled": "no"}})
    assert env.bus.info().data["Enabled"] is False
    env.reserve("second", 37)
    rep = env.bus.set_named_proxy("37-2-second", "second", BACKENDS)
    assert rep.error.startswith("gateway is not supported on this node: "), rep
    # Existing workloads are kept (and can be deleted).
    assert [p["ID"] for p in env.bus.list_proxies().data] == [WL]
    env.reload({"gateway": {"enabled": "yes"}})
    assert env.bus.info().data["Enabled"] is True
    rep = env.bus.set_named_proxy("37-2-second", "second", BACKENDS)
    assert rep.ok and rep.data == "second." + DOMAIN, rep
    assert env.daemon.running


def test_sighup_enable_from_disabled_start(env):
    env.start_daemon({"gateway": {"enabled": "no"}})
    env.reserve("myapp", 37)
    assert env.bus.set_named_proxy(WL, "myapp", BACKENDS).error
    env.reload({})
    rep = env.bus.set_named_proxy(WL, "myapp", BACKENDS)
    assert rep.ok, rep


def test_sighup_domain_change(env):
    env.start_daemon()
    env.reload({"gateway": {"domain": "gw2.example.net"}})
    assert env.bus.info().data["Domain"] == "gw2.example.net"
    env.reserve("myapp", 37)
    rep = env.bus.set_named_proxy(WL, "myapp", BACKENDS)
    assert rep.ok and rep.data == "myapp.gw2.example.net", rep
    # FQDNs under the new domain are refused, under the old one accepted.
    env.dns.add("x.gw1.example.net", PUBLIC_IPV4)
    assert env.bus.set_fqdn_proxy("37-3-x", "x.gw1.example.net", BACKENDS).ok
    env.dns.add("y.gw2.example.net", PUBLIC_IPV4)
    rep = env.bus.set_fqdn_proxy("37-4-y", "y.gw2.example.net", BACKENDS)
    assert rep.error == "can't create a fqdn workload with a subdomain of the gateway's managed domain"


def test_sighup_public_ip_change(env):
    env.start_daemon()
    env.dns.add("app.example.org", "198.51.100.20")
    assert env.bus.set_fqdn_proxy("37-1-app", "app.example.org", BACKENDS).error
    env.reload({"gateway": {"public_ipv4": "198.51.100.20/24", "gateway_ipv4": "198.51.100.1"}})
    assert "198.51.100.20" in env.bus.info().data["PublicIPv4"]
    rep = env.bus.set_fqdn_proxy("37-1-app", "app.example.org", BACKENDS)
    assert rep.ok, rep


def test_sighup_validation_mode(env):
    env.start_daemon()
    assert env.bus.set_named_proxy(WL, "unreserved", BACKENDS).error
    env.reload({"names": {"validation": "off"}})
    assert env.bus.info().data["NameValidation"] == "off"
    assert env.bus.set_named_proxy(WL, "unreserved", BACKENDS).ok


def test_sighup_bad_config_is_refused(env):
    env.start_daemon()
    env.deploy_name(WL, "myapp")
    good = env.daemon.config_path.read_text()
    mark = env.daemon.mark()
    bad = good.replace("enabled = yes", "enabled = perhaps")
    assert bad != good
    line = bad.split("\n").index("enabled = perhaps") + 1
    env.reload(text=bad)
    want = "%s:%d: [gateway] enabled: invalid boolean 'perhaps'" % (env.daemon.config_path, line)
    env.daemon.wait_log(re.escape(want), timeout=5, since=mark)
    assert env.daemon.running
    info = env.bus.info().data
    assert info["Enabled"] is True and info["Domain"] == DOMAIN
    env.reserve("second", 37)
    assert env.bus.set_named_proxy("37-2-second", "second", BACKENDS).ok
    # A later good file is applied.
    env.reload({"gateway": {"domain": "gw3.example.net"}})
    assert env.bus.info().data["Domain"] == "gw3.example.net"


def test_sighup_unreadable_config_is_refused(env):
    env.start_daemon()
    env.daemon.config_path.unlink()
    mark = env.daemon.notify_mark()
    import signal

    env.daemon.signal(signal.SIGHUP)
    env.daemon.wait_notify("READY=1", since=mark)
    assert env.daemon.running
    assert env.bus.info().data["Enabled"] is True


def test_sigterm_exits_cleanly(node):
    node.daemon.stop()
    assert node.daemon.proc.returncode == 0


def test_config_file_render_roundtrip(env):
    # Sanity check of the harness' INI writer against the daemon's parser.
    text = render_config(env.make_config({"bus": {"max_payload": "1M"}}))
    env.daemon.write_config(text)
    env.daemon.start()
    assert env.bus.info().data["Domain"] == DOMAIN


# ---------------------------------------------------------------------------
# Issue 11: gatewayd --check-config, and every error once at start-up

BAD_FILE = """[gateway]
enabled = yes
public_config = file
public_ipv4 = 203.0.113.10/24
[proxy]
http_prot = 8080
https_port = 70000
[dns]
timeout = soon
[log]
level = loud
"""
# Each error of BAD_FILE, in line order; the missing gateway_ipv4 is a check across keys.
BAD_ERRORS = [
    "{p}:6: [proxy] http_prot: unknown key (did you mean 'http_port'?)",
    "{p}:7: [proxy] https_port: 70000 is out of range (0 to 65535)",
    "{p}:9: [dns] timeout: invalid duration 'soon' (expected a number with an optional unit ms, s, m, h or d)",
    "{p}:11: [log] level: invalid value 'loud' (expected debug, info, notice, warning or error)",
    "{p}: [gateway] gateway_ipv4: required when public_ipv4 is set (the gateway namespace needs a default route)",
]


def check_config(*args):
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "JOURNAL_STREAM")}
    return subprocess.run([str(GATEWAYD), *args], capture_output=True, text=True, timeout=scaled(10),
                          stdin=subprocess.DEVNULL, env=env)


@pytest.mark.parametrize("flag", ["--check-config", "-t"])
def test_issue_11_check_config_valid(env, flag):
    path = env.write_config()
    p = check_config(flag, "--config", str(path))
    assert p.returncode == 0, p
    assert p.stdout == "%s: OK\n" % path and p.stderr == ""


def test_issue_11_check_config_every_error_once(env, tmp_path):
    path = env.daemon.write_config(BAD_FILE)
    p = check_config("--config", str(path), "--check-config")
    assert p.returncode == 1, p
    lines = p.stderr.splitlines()
    assert lines[:-1] == [e.format(p=path) for e in BAD_ERRORS], p.stderr
    assert lines[-1] == "gatewayd: %s: not valid, a reload would be refused" % path
    assert p.stdout == ""


def test_issue_11_check_config_starts_nothing(env, tmp_path):
    # Nothing but the file is looked at: no state directory, no broker, no notify socket.
    path = env.write_config()
    root = tmp_path / "no-such-root"
    p = check_config("-t", "--config", str(path), "--root", str(root), "--broker", "unix:///nonexistent/redis.sock")
    assert p.returncode == 0, p
    assert not root.exists()


def test_issue_11_check_config_unreadable(env, tmp_path):
    missing = tmp_path / "missing.conf"
    p = check_config("--check-config", "--config", str(missing))
    assert p.returncode == 1, p
    assert p.stderr == "%s: No such file or directory\n" % missing
    d = tmp_path / "a-directory.conf"
    d.mkdir()
    p = check_config("--check-config", "--config", str(d))
    assert p.returncode == 1 and p.stderr == "%s: not a regular file\n" % d, p


def test_issue_11_check_config_dist_example():
    example = REPO / "dist" / "gatewayd.conf.example"
    p = check_config("--check-config", "--config", str(example))
    assert p.returncode == 0, p


def test_issue_11_check_config_usage(env):
    path = env.write_config()
    p = check_config("--check-config", "--config", str(path), "extra")
    assert p.returncode == 2 and p.stderr == "gatewayd: unexpected argument 'extra'\n", p


def test_issue_11_start_reports_each_error_once(env):
    # Measured before issue 11: only the first error, and printed twice.
    path, log = start_expect_failure(env, BAD_FILE)
    for e in BAD_ERRORS:
        want = e.format(p=path)
        assert sum(want in line for line in log.splitlines()) == 1, "%r in:\n%s" % (want, log)


def test_issue_11_sighup_logs_every_error(env):
    env.start_daemon()
    mark = env.daemon.mark()
    env.reload(text=BAD_FILE)
    path = env.daemon.config_path
    for e in BAD_ERRORS:
        env.daemon.wait_log(re.escape("Refusing the new configuration, keeping the old one: " + e.format(p=path)),
                            timeout=5, since=mark)
    assert env.daemon.running
    assert env.bus.info().data["Domain"] == DOMAIN

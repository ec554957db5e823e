# SPDX-License-Identifier: Apache-2.0
"""gatewayctl against a real gatewayd: deploy/list/show/delete/metrics/status,
--json, daemon errors passed through verbatim with exit status 1."""

import json
import os
import re
import subprocess
import time

import pytest

import gobus
from conftest import DOMAIN, GATEWAYCTL, GATEWAYD, MULT, PUBLIC_IPV4, REPO, Deadline, needs_gatewayctl, needs_gatewayd, scaled

pytestmark = [needs_gatewayd, needs_gatewayctl]

WL = "37-1976-myapp"
BACKEND = "http://[300:1:2::3]:9000"


def ctl(env, *args, broker=True, timeout=15, extra_env=None):
    argv = [str(GATEWAYCTL)]
    if broker:
        argv += ["--broker", env.redis.url]
    e = dict(os.environ)
    e.pop("GATEWAYCTL_BROKER", None)
    if extra_env:
        e.update(extra_env)
    return subprocess.run(argv + list(args), capture_output=True, text=True, timeout=scaled(timeout),
                          stdin=subprocess.DEVNULL, env=e)


def ok(p):
    assert p.returncode == 0, "rc=%d stdout=%r stderr=%r" % (p.returncode, p.stdout, p.stderr)
    return p


def test_deploy_name(node):
    node.reserve("myapp", 37)
    p = ok(ctl(node, "deploy", "name", WL, "myapp", BACKEND, "http://10.0.0.2:8080"))
    assert p.stdout.strip() == "myapp." + DOMAIN
    info = node.bus.get_proxy(WL).data
    assert info["Backends"] == [BACKEND, "http://10.0.0.2:8080"] and info["TLSPassthrough"] is False
    assert info["Network"] is None


def test_deploy_name_passthrough_json(node):
    node.reserve("myapp", 37)
    p = ok(ctl(node, "--json", "deploy", "name", WL, "myapp", "[300:1:2::3]:443", "--passthrough"))
    out = json.loads(p.stdout)
    assert out == "myapp." + DOMAIN or "myapp." + DOMAIN in json.dumps(out)
    assert node.bus.get_proxy(WL).data["TLSPassthrough"] is True


def test_deploy_fqdn(node):
    node.dns.add("app.example.org", PUBLIC_IPV4)
    ok(ctl(node, "deploy", "fqdn", "37-2-web", "app.example.org", BACKEND))
    p = node.bus.get_proxy("37-2-web").data
    assert p["Kind"] == "fqdn" and p["FQDN"] == "app.example.org"


@pytest.mark.parametrize("json_mode", [False, True])
def test_daemon_error_is_verbatim(node, json_mode):
    args = ["deploy", "name", WL, "nope", BACKEND]
    p = ctl(node, *(["--json"] + args if json_mode else args))
    assert p.returncode == 1, p
    want = "failed to verify name contract: a name contract with the given name must be reserved first"
    if json_mode:
        assert json.loads(p.stdout) == {"error": want}
    else:
        assert p.stderr.strip() == want
        assert p.stdout == ""


def test_multiline_daemon_error_is_verbatim(node):
    node.reserve("myapp", 37)
    p = ctl(node, "deploy", "name", WL, "myapp", "https://1.1.1.1", "http://localhost")
    assert p.returncode == 1
    want = ("2 errors occurred:\n\t* failed to validate backend 'https://1.1.1.1': scheme expected to be http\n"
            "\t* failed to validate backend 'http://localhost': invalid ip address in backend: localhost\n\n")
    assert want.rstrip("\n") in p.stderr
    p = ctl(node, "--json", "deploy", "name", WL, "myapp", "https://1.1.1.1", "http://localhost")
    assert p.returncode == 1 and json.loads(p.stdout) == {"error": want}


def test_list(node):
    node.deploy_name("37-1-alpha", "alpha")
    node.deploy_fqdn("38-2-web", "web.example.org", backends=["10.0.0.9:443"], tls_passthrough=True)
    p = ok(ctl(node, "list"))
    lines = p.stdout.strip().split("\n")
    assert all(h in lines[0] for h in ("ID", "KIND", "FQDN"))
    assert len(lines) == 3
    body = "\n".join(lines[1:])
    assert "37-1-alpha" in body and "alpha." + DOMAIN in body and "38-2-web" in body
    assert "web.example.org" in body and "10.0.0.9:443" in body

    p = ok(ctl(node, "list", "--json"))
    got = sorted(json.loads(p.stdout), key=lambda x: x["ID"])
    want = sorted(node.bus.list_proxies().data, key=lambda x: x["ID"])
    assert [g["ID"] for g in got] == [w["ID"] for w in want]
    for g, w in zip(got, want):
        for k in ("Kind", "FQDN", "Name", "Backends", "TLSPassthrough", "Network"):
            assert g[k] == w[k], k
        assert g["Created"].startswith(time.strftime("%Y-", time.gmtime(w["Created"].seconds)))


def test_list_empty(node):
    p = ok(ctl(node, "list", "--json"))
    assert json.loads(p.stdout) in ([], None)
    ok(ctl(node, "list"))


def test_show(node):
    node.deploy_name(WL, "myapp")
    p = ok(ctl(node, "show", WL))
    assert WL in p.stdout and "myapp." + DOMAIN in p.stdout and BACKEND in p.stdout
    p = ok(ctl(node, "show", WL, "--json"))
    d = json.loads(p.stdout)
    assert d["ID"] == WL and d["FQDN"] == "myapp." + DOMAIN and d["Backends"] == [BACKEND]


def test_show_unknown(node):
    p = ctl(node, "show", "1-2-none")
    assert p.returncode == 1
    assert p.stderr.strip() == "proxy with workload id '1-2-none' not found"
    p = ctl(node, "--json", "show", "1-2-none")
    assert p.returncode == 1
    assert json.loads(p.stdout) == {"error": "proxy with workload id '1-2-none' not found"}


def test_delete(node):
    node.deploy_name(WL, "myapp")
    ok(ctl(node, "delete", WL))
    assert node.bus.get_proxy(WL).error
    ok(ctl(node, "delete", WL))  # unknown IDs succeed
    ok(ctl(node, "--json", "delete", "9-9-nothing"))


def test_metrics(node):
    node.deploy_name(WL, "myapp")
    ok(ctl(node, "metrics"))
    d = json.loads(ok(ctl(node, "metrics", "--json")).stdout)
    assert set(d) == {"Request", "Response"}
    for k in d:
        assert d[k] is None or all(isinstance(v, (int, float)) for v in d[k].values())


def test_status(node):
    p = ok(ctl(node, "status"))
    assert "manager@0.0.1" in p.stdout and "free" in p.stdout
    d = json.loads(ok(ctl(node, "status", "--json")).stdout)
    text = json.dumps(d)
    assert "Workers" in text and "manager" in text and DOMAIN in text


def test_status_while_busy(node):
    node.reserve("slowapp", 37)
    hold = node.api.hold()
    try:
        key = node.bus.send("gateway", "manager", "0.0.1", "SetNamedProxy",
                            [gobus.pack(WL), gobus.pack(gobus.name_proxy("slowapp", [BACKEND]))])
        node.api.wait_for(lambda calls: calls, Deadline(5), "the lookup")
        t0 = time.monotonic()
        p = ok(ctl(node, "status", "--timeout", "1"))
        assert time.monotonic() - t0 < 5 * MULT
        assert "busy" in p.stdout and "SetNamedProxy" in p.stdout
    finally:
        hold.set()
    assert node.bus.wait_reply(key, 5).ok


def test_broker_from_environment(node):
    p = ok(ctl(node, "list", broker=False, extra_env={"GATEWAYCTL_BROKER": node.redis.url}))
    assert "ID" in p.stdout


@pytest.mark.parametrize("args", [[], ["deploy"], ["deploy", "name", WL], ["frobnicate"], ["show"],
                                  ["list", "--no-such-option"]])
def test_usage_errors(node, args):
    p = ctl(node, *args)
    assert p.returncode == 2, p


def test_broker_unreachable(env):
    p = ctl(env, "--broker", "unix://" + os.path.join(env.sockdir, "nothing.sock"), "list", broker=False)
    assert p.returncode == 3, p
    assert p.stderr


def test_no_reply_in_time(env):
    # Redis is up but no daemon serves the queue.
    t0 = time.monotonic()
    p = ctl(env, "--timeout", "1", "list")
    assert p.returncode == 3, p
    assert time.monotonic() - t0 < 5 * MULT
    p = ctl(env, "--timeout", "1", "--json", "list")
    assert p.returncode == 3 and "error" in json.loads(p.stdout)


# ---------------------------------------------------------------------------
# Issue 11: gatewayctl reload (the bus Reload); issue 12: the commit in --version and Info


def test_issue_11_reload_applies(node):
    node.write_config({"gateway": {"domain": "gw2.example.net"}})
    mark = node.daemon.notify_mark()
    p = ok(ctl(node, "reload"))
    assert p.stdout == "reloaded %s\n" % node.daemon.config_path and p.stderr == ""
    # The answer comes once the reload has ended, not when it was asked for.
    assert node.bus.info().data["Domain"] == "gw2.example.net"
    node.daemon.wait_notify("RELOADING=1", since=mark)
    node.write_config({"gateway": {"domain": "gw3.example.net"}})
    assert json.loads(ok(ctl(node, "--json", "reload")).stdout) == str(node.daemon.config_path)
    assert node.bus.info().data["Domain"] == "gw3.example.net"


@pytest.mark.parametrize("json_mode", [False, True])
def test_issue_11_reload_refused(node, json_mode):
    path = node.daemon.config_path
    good = path.read_text()
    bad = good.replace("enabled = yes", "enabled = perhaps").replace("[log]", "[log]\nlevel_ = x")
    path.write_text(bad)
    lines = bad.split("\n")
    want = ("%s:%d: [gateway] enabled: invalid boolean 'perhaps' (expected yes/no, true/false, on/off or 1/0)\n"
            "%s:%d: [log] level_: unknown key (did you mean 'level'?)"
            % (path, lines.index("enabled = perhaps") + 1, path, lines.index("level_ = x") + 1))
    p = ctl(node, *(["--json", "reload"] if json_mode else ["reload"]))
    assert p.returncode == 1, p
    if json_mode:
        assert json.loads(p.stdout) == {"error": want}
    else:
        assert p.stderr == want + "\n" and p.stdout == ""
    # The running configuration stays.
    assert node.daemon.running
    info = node.bus.info().data
    assert info["Enabled"] is True and info["Domain"] == DOMAIN
    # The bus method is the same, for the node's own tooling.
    r = node.bus.gw("Reload")
    assert r.error == want, r


def test_issue_11_reload_usage(node):
    assert ctl(node, "reload", "now").returncode == 2
    r = node.bus.gw("Reload", "now")
    assert r.error == "invalid number of arguments expecting 0 got 1", r


def test_issue_11_reload_no_daemon(env):
    p = ctl(env, "--timeout", "1", "reload")
    assert p.returncode == 3, p


def test_issue_12_version_has_commit(node):
    d = subprocess.run([str(GATEWAYD), "--version"], capture_output=True, text=True, timeout=scaled(10))
    c = ok(ctl(node, "--version", broker=False))
    m = re.fullmatch(r"gatewayd (\S+) \(commit (\S+)\)\n", d.stdout)
    assert m, d.stdout
    version, commit = m.groups()
    assert commit != "", d.stdout
    assert c.stdout == "gatewayctl %s (commit %s)\n" % (version, commit)
    info = node.bus.info().data
    assert info["Version"] == version and info["Commit"] == commit, info
    assert "commit: %s\n" % commit in ok(ctl(node, "status")).stdout


BASH_COMPLETION = "/usr/share/bash-completion/bash_completion"
COMPLETE = r'''
. "$BASH_COMPLETION"
. "$COMPLETION"
COMP_LINE=$LINE COMP_POINT=${#LINE}
COMP_WORDS=($LINE)
[[ $LINE == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
_gatewayctl gatewayctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
printf '%s\n' "${COMPREPLY[@]}"
'''


def complete(env, line):
    """What dist/gatewayctl.bash-completion offers for @line, with this
    build's gatewayctl first on PATH."""
    e = dict(os.environ, BASH_COMPLETION=BASH_COMPLETION, LINE=line,
             COMPLETION=str(REPO / "dist" / "gatewayctl.bash-completion"),
             PATH="%s:%s" % (GATEWAYCTL.parent, os.environ.get("PATH", "")))
    p = subprocess.run(["bash", "-c", COMPLETE], capture_output=True, text=True, env=e, timeout=scaled(15))
    assert p.returncode == 0, p
    return p.stdout.split()


@pytest.mark.skipif(not os.path.exists(BASH_COMPLETION), reason="bash-completion is not installed")
def test_issue_12_bash_completion(node):
    # The commands come from gatewayctl --help: each one offered is one gatewayctl knows.
    commands = complete(node, "gatewayctl ")
    assert {"deploy", "delete", "list", "show", "metrics", "status", "reload", "help"} <= set(commands), commands
    for c in commands:
        assert ctl(node, *(["help", c] if c != "help" else ["help"]), broker=False).returncode == 0, c
    assert complete(node, "gatewayctl --json re") == ["reload"]
    assert complete(node, "gatewayctl deploy ") == ["name", "fqdn"]
    assert "--passthrough" in complete(node, "gatewayctl deploy name --")
    assert complete(node, "gatewayctl help st") == ["status"]
    # Workload IDs come from the daemon, on the broker of the command line.
    node.deploy_name(WL, "myapp")
    assert complete(node, "gatewayctl --broker %s delete " % node.redis.url) == [WL]
    assert complete(node, "gatewayctl show --broker %s 37-" % node.redis.url) == [WL]
    assert complete(node, "gatewayctl --broker %s show %s " % (node.redis.url, WL)) == []

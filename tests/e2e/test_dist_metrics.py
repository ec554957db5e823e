# SPDX-License-Identifier: Apache-2.0
"""The shipped Grafana dashboard (dist/grafana/gatewayd.json) and alerting
rules (dist/prometheus/alerts.yml) against a live daemon: both parse, every
gatewayd_* and traefik_* metric they name is a family of a real scrape (a
daemon serving a workload that had traffic); and, with Prometheus'
promtool, every rule and every dashboard query is valid PromQL."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import needs_gatewayd, scaled
from httpback import Backend
from test_http_proxy import BACKEND_IP, private_net, read_response, tls_conn  # noqa: F401
from test_metrics import scrape

pytestmark = needs_gatewayd

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "dist" / "grafana" / "gatewayd.json"
ALERTS = REPO / "dist" / "prometheus" / "alerts.yml"
FQDN = "app.example.org"

# Series Prometheus makes itself for every target, never in a scrape.
SYNTHETIC = {"up"}
NAME = re.compile(r"\b((?:gatewayd|traefik)_[a-zA-Z0-9_]+)")


def strings(node):
    """Every string in a parsed JSON/YAML document."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from strings(k)
            yield from strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from strings(v)


def named_metrics(doc):
    return {m for s in strings(doc) for m in NAME.findall(s)}


def families(text):
    """Metric names a scrape exposes: each family (# TYPE) and, for
    histograms, its _bucket/_sum/_count series."""
    out = set()
    for line in text.splitlines():
        m = re.match(r"^# TYPE (\S+) (\S+)$", line)
        if m:
            out.add(m.group(1))
            if m.group(2) == "histogram":
                out |= {m.group(1) + s for s in ("_bucket", "_sum", "_count")}
        elif line and not line.startswith("#"):
            out.add(re.match(r"^(\w+)", line).group(1))
    return out


def dashboard_exprs(doc):
    out = []
    for p in doc["panels"]:
        for t in p.get("targets", []):
            out.append(t["expr"])
    for v in doc["templating"]["list"]:
        q = v.get("query")
        if isinstance(q, dict):
            out.append(q["query"])
    return out


def test_dashboard_and_rules_parse():
    doc = json.loads(DASHBOARD.read_text())
    assert doc["uid"] == "gatewayd" and doc["panels"]
    names = {v["name"] for v in doc["templating"]["list"]}
    assert {"datasource", "node"} <= names
    node = next(v for v in doc["templating"]["list"] if v["name"] == "node")
    assert node["multi"] and node["includeAll"], "1-100 nodes: pick several or all"
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    for p in doc["panels"]:
        if p["type"] == "row":
            continue
        assert p["targets"], p["title"]
        for t in p["targets"]:
            # Every query is scoped to the chosen nodes.
            assert 'instance=~"$node"' in t["expr"], (p["title"], t["expr"])
    rules = yaml.safe_load(ALERTS.read_text())
    alerts = [r for g in rules["groups"] for r in g["rules"]]
    assert alerts and all({"alert", "expr", "labels", "annotations"} <= set(r) for r in alerts)
    assert len({r["alert"] for r in alerts}) == len(alerts)
    # What issue 11 asks the rules to cover.
    exprs = " ".join(r["expr"] for r in alerts)
    for m in ("gatewayd_healthy", "traefik_tls_certs_not_after", "gatewayd_acme_orders_total",
              "traefik_service_requests_total", "gatewayd_limit_rejections_total",
              "gatewayd_backend_up"):
        assert m in exprs, m


def promql_rules(tmp_path):
    """The dashboard's queries as recording rules (Grafana's variables
    replaced), so promtool parses them."""
    doc = json.loads(DASHBOARD.read_text())
    rules = []
    for i, e in enumerate(dashboard_exprs(doc)):
        if e.startswith("label_values("):
            m = re.match(r"label_values\((.*), *(\w+)\)$", e)
            assert m, e
            e = "count by (%s) (%s)" % (m.group(2), m.group(1))
        e = e.replace("$__rate_interval", "5m").replace("$node", ".*").replace("$service", ".*")
        assert "$" not in e.replace("${1}", ""), e
        rules.append({"record": "gatewayd_dashboard:q%d" % i, "expr": e})
    p = tmp_path / "dashboard-rules.yml"
    p.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    return p


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool (Debian: prometheus) missing")
def test_promql_is_valid(tmp_path):
    for f in (ALERTS, promql_rules(tmp_path)):
        r = subprocess.run(["promtool", "check", "rules", str(f)], capture_output=True, text=True,
                           timeout=scaled(60))
        assert r.returncode == 0, (f, r.stdout, r.stderr)


@pytest.fixture
def backend(private_net):  # noqa: F811
    b = Backend("b1").start(BACKEND_IP)
    yield b
    b.stop()


def test_every_metric_named_exists_in_a_live_scrape(private_net, env, backend):  # noqa: F811
    env.start_daemon({"proxy": {"workers": "1"}})
    env.deploy_fqdn("37-1-app", FQDN, [backend.url])
    s = tls_conn(env.https_port, FQDN)
    s.sendall(b"GET /status/200 HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % FQDN.encode())
    assert read_response(s)[0] == 200
    s.close()
    exposed = families(scrape(env))
    assert "traefik_service_requests_total" in exposed
    named = named_metrics(json.loads(DASHBOARD.read_text())) | \
        named_metrics(yaml.safe_load(ALERTS.read_text()))
    assert "traefik_service_request_duration_seconds_bucket" in named
    missing = named - exposed - SYNTHETIC
    assert not missing, "named but not exported: %s" % sorted(missing)

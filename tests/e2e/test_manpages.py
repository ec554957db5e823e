# SPDX-License-Identifier: Apache-2.0
"""Issue 12: the manual pages (docs/man/*.scd) name every command and option
the binaries have and every key of the configuration file's table
(daemon/config.c), so that a new one cannot ship undocumented."""

import os
import re
import subprocess

import pytest

from conftest import GATEWAYCTL, GATEWAYD, REPO, needs_gatewayctl, needs_gatewayd, scaled

MAN = REPO / "docs" / "man"


def run_help(binary):
    env = {k: v for k, v in os.environ.items() if k != "GATEWAYCTL_BROKER"}
    p = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=scaled(10), env=env)
    assert p.returncode == 0, p
    return p.stdout


def entries(page):
    """The terms of the page's definition lists: lines that start with '*'."""
    return [l for l in (MAN / page).read_text().splitlines() if l.startswith("*")]


def options(help_text):
    return sorted(set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+|-[a-z])\b", help_text)))


@needs_gatewayd
def test_gatewayd_options_documented():
    terms = "\n".join(entries("gatewayd.8.scd"))
    for opt in options(run_help(GATEWAYD)):
        assert "*%s*" % opt in terms, "gatewayd %s is not in docs/man/gatewayd.8.scd" % opt


@needs_gatewayctl
def test_gatewayctl_commands_and_options_documented():
    text = run_help(GATEWAYCTL)
    terms = entries("gatewayctl.8.scd")
    commands = re.findall(r"^  ([a-z][a-z-]*)", text.split("Commands:\n", 1)[1].split("\n\n", 1)[0], re.M)
    assert "reload" in commands, text
    for c in commands:
        assert any(re.match(r"\*%s[* ]" % c, t) for t in terms), \
            "gatewayctl command %r is not in docs/man/gatewayctl.8.scd" % c
    for opt in options(text.split("Common options", 1)[1]):
        assert any("*%s*" % opt in t for t in terms), "gatewayctl %s is not in docs/man/gatewayctl.8.scd" % opt


def test_config_keys_documented():
    table = re.findall(r'^\s*\{"([a-z]+)", "([a-z_0-9]+)", parse_', (REPO / "daemon" / "config.c").read_text(), re.M)
    assert len(table) > 20, "the key table of daemon/config.c was not found"
    page = (MAN / "gatewayd.conf.5.scd").read_text()
    sections = dict(re.findall(r"^# \[([a-z]+)\]\n(.*?)(?=^# |\Z)", page, re.M | re.S))
    assert set(sections) == {s for s, _ in table}, "sections of gatewayd.conf.5.scd: %s" % sorted(sections)
    for section, key in table:
        assert re.search(r"^\*%s\* = " % key, sections[section], re.M), \
            "[%s] %s is not in docs/man/gatewayd.conf.5.scd" % (section, key)

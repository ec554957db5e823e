# SPDX-License-Identifier: Apache-2.0
"""Process limits the daemon sets for itself."""

import resource
import subprocess
import time

from conftest import GATEWAYD, Deadline, needs_gatewayd

pytestmark = needs_gatewayd


def _nofile(pid):
    for line in open("/proc/%d/limits" % pid):
        if line.startswith("Max open files"):
            f = line.split()
            return int(f[3]), int(f[4])
    raise AssertionError("no open-files line")


def test_soft_fd_limit_raised_to_hard(env):
    """Started with a soft limit of 1024 (what zinit and shells leave), the
    daemon serves connections with the hard limit instead."""

    def limits():
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 4096))

    env.write_config()
    argv = env.daemon.argv()
    p = subprocess.Popen(argv, preexec_fn=limits, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True)
    try:
        deadline = Deadline(10, "the fd limit raised")
        while _nofile(p.pid) != (4096, 4096):
            assert p.poll() is None, p.stderr.read()
            deadline.check("limits %r" % (_nofile(p.pid),))
            time.sleep(0.05)
    finally:
        p.terminate()
        p.wait(10)
    assert "Open-file limit raised to 4096" in p.stderr.read()

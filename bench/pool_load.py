#!/usr/bin/python3
"""Connection reuse under load (issue 11): many concurrent keep-alive clients
through gatewayd to one backend for minutes, while other workloads are
deployed and deleted over the bus every 100 ms.

Reports: wrk's requests, non-2xx/3xx responses and socket errors (target:
0), the new backend connections the origin accepted (nginx stub_status),
TIME_WAIT sockets (the run's namespace, /proc/net/sockstat: peak and at the
end) and the proxy's CPU time (utime+stime of the daemon, total and per
request). One gatewayd binary per run; run it once per build to compare.

Setup as bench/run.py (docs/performance.md, bench/README.md): a private mount
and network namespace (the node's stand-in) with the origin nginx on a veth
(198.51.100.1) and gatewayd (one worker, `http_plain = yes`, its own Redis)
on 127.0.0.1; gatewayd pinned to core 0, origin, wrk and the bus loop to
core 1. The namespace keeps the kernel's port sysctls (ip_local_port_range
32768 60999, tcp_tw_reuse 2): gatewayd sets its own gateway namespace's, but
here it runs without one, so only the pool is measured.

Usage (as root, after `bench/setup.sh`):
  /usr/bin/python3 bench/pool_load.py [--binary build/daemon/gatewayd] [--conns 2000] [--secs 300]
"""
import argparse
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH_DIR)
import run  # noqa: E402  (the harness: namespaces, process bookkeeping, helpers)

sys.path.insert(0, os.path.join(run.REPO_DIR, "tests", "e2e"))
import gobus  # noqa: E402  (the Go-compatible zbus client)


def origin_conf(wd, ports, key, crt):
    """The origin of run.py (/64 and /16k) plus stub_status on its own port."""
    www = f"{wd}/www"
    os.makedirs(www, exist_ok=True)
    with open(f"{www}/64", "wb") as f:
        f.write(b"x" * 63 + b"\n")
    os.chmod(f"{www}/64", 0o644)
    body = f"""
    server {{
        listen {run.ORIGIN_IP}:{ports['origin_http']} backlog=8192;
        root {www};
        default_type application/octet-stream;
        location / {{ }}
    }}
    server {{
        listen {run.ORIGIN_IP}:{ports['origin_status']};
        location / {{ stub_status; }}
    }}"""
    return run.nginx_conf(wd, "origin", key, crt, body)


def origin_accepts(ports):
    url = "http://%s:%d/" % (run.ORIGIN_IP, ports["origin_status"])
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    # "Active connections: N \nserver accepts handled requests\n A H R \n..."
    m = re.search(r"^\s*(\d+)\s+(\d+)\s+(\d+)\s*$", text, re.M)
    return int(m.group(1))


def sockstat_tw():
    """TIME_WAIT sockets of this thread's network namespace."""
    with open("/proc/self/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                f = line.split()
                return int(f[f.index("tw") + 1])
    return 0


class Churn(threading.Thread):
    """Deploy or delete another name workload over the bus every @period s."""

    def __init__(self, sock, backend, period, stop):
        super().__init__(daemon=True)
        self.bus = gobus.GoBus(sock)
        self.backend = backend
        self.period = period
        self.stop = stop
        self.calls = self.failed = 0

    def run(self):
        i = 0
        nxt = time.monotonic()
        while not self.stop.is_set():
            k = (i // 2) % 50
            wlid, name = "2-%d-churn%d" % (k, k), "churn%d" % k
            try:
                if i % 2 == 0:
                    r = self.bus.set_named_proxy(wlid, name, [self.backend], timeout=5)
                else:
                    r = self.bus.delete_named_proxy(wlid, timeout=5)
                self.failed += not r.ok
            except Exception:  # noqa: BLE001 - counted
                self.failed += 1
            self.calls += 1
            i += 1
            nxt += self.period
            time.sleep(max(0.0, nxt - time.monotonic()))
        self.bus.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=run.GATEWAYD_BIN, help="the gatewayd to measure")
    ap.add_argument("--label", default=None, help="name of this run in the report (default: the binary)")
    ap.add_argument("--conns", type=int, default=2000, help="concurrent wrk connections (64..10000)")
    ap.add_argument("--threads", type=int, default=2, help="wrk threads (1..8)")
    ap.add_argument("--secs", type=int, default=300, help="duration (5..3600 s)")
    ap.add_argument("--churn-ms", type=int, default=100, help="bus deploy/delete period (10..10000 ms)")
    ap.add_argument("--base-port", type=int, default=19000)
    ap.add_argument("--out", default=os.path.join(BENCH_DIR, "results"))
    a = ap.parse_args()
    if not (64 <= a.conns <= 10000 and 1 <= a.threads <= 8 and 5 <= a.secs <= 3600
            and 10 <= a.churn_ms <= 10000):
        ap.error("conns 64..10000, threads 1..8, secs 5..3600, churn-ms 10..10000")
    if not os.access(a.binary, os.X_OK):
        sys.exit("no gatewayd at %s" % a.binary)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, run._on_signal)
    run.raise_nofile(max(65536, 4 * a.conns))

    wd = tempfile.mkdtemp(prefix="gw-poolbench-")
    os.chmod(wd, 0o755)
    bp = a.base_port
    ports = {"origin_http": bp + 80, "origin_status": bp + 81, "gw_http": bp + 380, "gw_https": bp + 743}
    log = open(os.path.join(wd, "processes.log"), "w")
    res = {"binary": a.binary, "label": a.label or a.binary, "conns": a.conns, "threads": a.threads,
           "secs": a.secs, "churn_ms": a.churn_ms,
           "started": datetime.datetime.now(datetime.timezone.utc).isoformat()}
    stop = threading.Event()
    try:
        run.bench_netns(wd)
        key, crt, _ = run.make_cert(wd)
        env = {"wd": wd, "ports": ports, "key": key, "crt": crt, "log": log}
        origin = run.spawn("origin", ["taskset", "-c", run.LOAD_CPU, "nginx", "-p", wd, "-c",
                                      origin_conf(wd, ports, key, crt)],
                           stdout=log, stderr=log)
        run.wait_port(ports["origin_http"], proc=origin, host=run.ORIGIN_IP)
        backend = "http://%s:%d" % (run.ORIGIN_IP, ports["origin_http"])
        gw = run._gatewayd_instance(env, "gw", ports["gw_https"], ports["gw_http"], backend, False,
                                    binary=a.binary)
        run.wait_port(ports["gw_http"], proc=gw)
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            res["ip_local_port_range"] = " ".join(f.read().split())
        with open("/proc/sys/net/ipv4/tcp_tw_reuse") as f:
            res["tcp_tw_reuse"] = f.read().strip()

        churn = Churn(os.path.join(wd, "gw.sock"), backend, a.churn_ms / 1000.0, stop)
        url = "http://%s:%d/64" % (run.SNI, ports["gw_http"])
        argv = ["taskset", "-c", run.LOAD_CPU, "wrk", "-t%d" % a.threads, "-c%d" % a.conns,
                "-d%ds" % a.secs, "--timeout", "5s", "--latency", "-H", "Host: " + run.SNI, url]
        res["wrk"] = " ".join(argv[3:])
        acc0 = origin_accepts(ports)
        pids = run.proc_tree(gw.pid)
        cpu0 = run.cpu_ticks(pids)
        churn.start()
        t0 = time.monotonic()
        wrk = run.spawn("wrk", argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        tw_max = 0
        while wrk.poll() is None:
            tw_max = max(tw_max, sockstat_tw())
            if time.monotonic() - t0 > a.secs + 60:
                raise RuntimeError("wrk did not finish")
            time.sleep(1)
        out, err = wrk.communicate()
        run.stop(wrk)
        elapsed = time.monotonic() - t0
        cpu1 = run.cpu_ticks(pids)
        acc1 = origin_accepts(ports)
        tw_end = sockstat_tw()
        stop.set()
        churn.join(10)
        if wrk.returncode != 0:
            raise RuntimeError("wrk exited %d: %s" % (wrk.returncode, err.strip()[-500:]))
        m = re.search(r"(\d+) requests in", out)
        reqs = int(m.group(1))
        se = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        cpu_s = (cpu1 - cpu0) / run.CLK_TCK
        res.update({
            "requests": reqs,
            "rate": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "non_2xx_3xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": dict(zip(("connect", "read", "write", "timeout"),
                                      (int(x) for x in se.groups()))) if se else {},
            "backend_connections_opened": acc1 - acc0,
            "time_wait_peak": tw_max, "time_wait_end": tw_end,
            "proxy_cpu_s": round(cpu_s, 1), "proxy_cpu_us_per_req": round(cpu_s * 1e6 / max(reqs, 1), 2),
            "proxy_cpu_share": round(cpu_s / elapsed, 3),
            "bus_calls": churn.calls, "bus_failed": churn.failed,
            "wrk_output": out,
        })
    finally:
        stop.set()
        run.cleanup()
        log.close()

    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, "pool-%s.json" % datetime.datetime.now(datetime.timezone.utc)
                        .strftime("%Y%m%dT%H%M%SZ"))
    with open(path, "w") as f:
        json.dump(res, f, indent=1)
    print("| run | requests | req/s | non-2xx/3xx | socket errors | new backend conns | "
          "TIME_WAIT peak / end | proxy CPU s (µs/req) | bus calls (failed) |")
    print("|---|---|---|---|---|---|---|---|---|")
    se = res["socket_errors"]
    print("| %s | %d | %.0f | %d | %s | %d | %d / %d | %.1f (%.1f) | %d (%d) |" % (
        res["label"], res["requests"], res["rate"], res["non_2xx_3xx"],
        " ".join("%s %d" % kv for kv in se.items()) if se else "0",
        res["backend_connections_opened"], res["time_wait_peak"], res["time_wait_end"],
        res["proxy_cpu_s"], res["proxy_cpu_us_per_req"], res["bus_calls"], res["bus_failed"]))
    print("(%s; %s)" % (res["wrk"], path))


if __name__ == "__main__":
    main()

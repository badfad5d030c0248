#!/usr/bin/env python3
"""The web role under load (docs/benchmarks.md, "Web role"), in one run:

  1. REST submit with keep-alive: `wrk` POSTs one task per request to /api/v1/tasks, then
     100 tasks per request, against `yard-master --memory --workers 2 --web`. Requests/s,
     tasks/s and wrk's latency percentiles; every task is checked as counted by the core.
  2. The cost of the dashboard's live stream on the master's throughput: N echo tasks
     submitted with `yard submit --each-line` and timed until all succeeded (as
     benchmarks/quick_throughput.sh), on a master with the web role on and no SSE client,
     then with --sse-clients streams open at the --sse-interval. Ratio of the two rates.

Each figure is the median of --runs runs.

Usage: benchmarks/web_bench.py [--build build-rel] [--duration 10] [--connections 16]
       [--tasks 100000] [--sse-clients 5] [--sse-interval 100ms] [--runs 3] [--json]
"""
import argparse
import http.client
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = %s
"""


def start_master(bin_dir, workdir, sse_interval):
    conf = os.path.join(workdir, "master.toml")
    with open(conf, "w") as f:
        f.write(f'[web]\nlisten = "127.0.0.1:0"\nthreads = 8\nmax_sse_clients = 64\n'
                f'sse_interval = "{sse_interval}"\n')
    ready = os.path.join(workdir, "ready.json")
    if os.path.exists(ready):
        os.remove(ready)
    proc = subprocess.Popen(
        # --max-queued: batched submits outrun the two workers for the whole wrk run.
        [os.path.join(bin_dir, "yard-master"), "--memory", "--workers", "2", "--config", conf,
         "--max-queued", "20000000",
         "--client-endpoint", "tcp://127.0.0.1:0", "--worker-endpoint", "tcp://127.0.0.1:0",
         "--ready-file", ready, "--log-level", "error"],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(workdir, "master.log"), "ab"))
    deadline = time.monotonic() + 10
    while not os.path.exists(ready):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError("yard-master did not start")
        time.sleep(0.05)
    with open(ready) as f:
        info = json.load(f)
    while stats(bin_dir, info["client_endpoint"]).get("workers.connected", 0) < 2:
        time.sleep(0.05)
    return proc, info


def stop_master(proc):
    proc.send_signal(signal.SIGTERM)
    if proc.wait(timeout=30) != 0:
        raise RuntimeError(f"yard-master exited {proc.returncode}")


def stats(bin_dir, endpoint):
    r = subprocess.run([os.path.join(bin_dir, "yard"), "--master", endpoint, "--json", "stats"],
                       capture_output=True, text=True, timeout=30, check=True)
    return json.loads(r.stdout)


def wait_succeeded(bin_dir, endpoint, n, timeout=300):
    deadline = time.monotonic() + timeout
    while stats(bin_dir, endpoint).get("tasks.succeeded", 0) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"not all {n} tasks succeeded")
        time.sleep(0.02)


def wrk_submit(bin_dir, workdir, duration, connections, per_request):
    """Requests/s, tasks/s and latency (ms) of POST /api/v1/tasks with keep-alive."""
    proc, info = start_master(bin_dir, workdir, "500ms")
    try:
        spec = {"type": "echo", "payload": "x" * 100}
        body = spec if per_request == 1 else {"tasks": [spec] * per_request}
        script = os.path.join(workdir, "submit.lua")
        with open(script, "w") as f:
            f.write(LUA % json.dumps(json.dumps(body)))
        r = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency",
                            "-s", script, info["web_url"] + "/api/v1/tasks"],
                           capture_output=True, text=True, timeout=duration + 60, check=True)
        out = r.stdout
        reqs = int(re.search(r"(\d+) requests in", out).group(1))
        secs = float(re.search(r"requests in ([\d.]+)s", out).group(1))
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        if non2xx:
            raise RuntimeError(f"wrk saw {non2xx.group(1)} refused requests:\n{out}")

        def ms(label):
            m = re.search(rf"\s{label}%\s+([\d.]+)(us|ms|s)", out)
            v = float(m.group(1))
            return {"us": v / 1000, "ms": v, "s": v * 1000}[m.group(2)]

        # Every acknowledged task is in the core (wrk counts only completed requests).
        submitted = stats(bin_dir, info["client_endpoint"])["tasks.submitted"]
        if submitted < reqs * per_request:
            raise RuntimeError(f"{reqs * per_request} acknowledged, core has {submitted}")
        return {"requests_per_s": reqs / secs, "tasks_per_s": reqs * per_request / secs,
                "p50_ms": ms(50), "p90_ms": ms(90), "p99_ms": ms(99)}
    finally:
        stop_master(proc)


class SseClient(threading.Thread):
    """Reads /api/v1/events until stopped; counts snapshots."""

    def __init__(self, url):
        super().__init__(daemon=True)
        m = re.match(r"http://([^:]+):(\d+)", url)
        self.conn = http.client.HTTPConnection(m.group(1), int(m.group(2)), timeout=30)
        self.events = 0

    def run(self):
        self.conn.request("GET", "/api/v1/events")
        resp = self.conn.getresponse()
        try:
            while True:
                line = resp.fp.readline()
                if not line:
                    return
                if line.startswith(b"event: snapshot"):
                    self.events += 1
        except (OSError, ValueError):
            return

    def close(self):
        try:
            self.conn.sock.shutdown(2)
        except OSError:
            pass


def throughput(bin_dir, workdir, tasks, sse_clients, sse_interval):
    """Tasks/s of `tasks` echo tasks through the CLI, with `sse_clients` live streams open."""
    proc, info = start_master(bin_dir, workdir, sse_interval)
    clients = [SseClient(info["web_url"]) for _ in range(sse_clients)]
    try:
        for c in clients:
            c.start()
        deadline = time.monotonic() + 10
        while any(c.events == 0 for c in clients):
            if time.monotonic() > deadline:
                raise RuntimeError("the SSE streams sent nothing")
            time.sleep(0.05)
        payloads = os.path.join(workdir, "payloads")
        with open(payloads, "w") as f:
            for i in range(tasks):
                f.write(f"{i:099d}\n")
        start = time.monotonic()
        subprocess.run([os.path.join(bin_dir, "yard"), "--master", info["client_endpoint"],
                        "--json", "submit", "echo", "--payload-file", payloads, "--each-line"],
                       capture_output=True, check=True, timeout=300)
        wait_succeeded(bin_dir, info["client_endpoint"], tasks)
        took = time.monotonic() - start
        events = [c.events for c in clients]
        return {"tasks_per_s": tasks / took, "snapshots_per_client": min(events) if events else 0}
    finally:
        for c in clients:
            c.close()
        stop_master(proc)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build-rel")
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--tasks", type=int, default=100000)
    ap.add_argument("--sse-clients", type=int, default=5)
    ap.add_argument("--sse-interval", default="100ms")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    bin_dir = os.path.join(os.path.abspath(a.build), "bin")
    results = {"single": [], "batch100": [], "no_sse": [], "sse": []}
    with tempfile.TemporaryDirectory(prefix="yard-web-bench.") as workdir:
        for run in range(a.runs):
            print(f"run {run + 1}/{a.runs} ...", file=sys.stderr, flush=True)
            results["single"].append(wrk_submit(bin_dir, workdir, a.duration, a.connections, 1))
            results["batch100"].append(
                wrk_submit(bin_dir, workdir, a.duration, a.connections, 100))
            results["no_sse"].append(throughput(bin_dir, workdir, a.tasks, 0, a.sse_interval))
            results["sse"].append(
                throughput(bin_dir, workdir, a.tasks, a.sse_clients, a.sse_interval))

    def median(rows, key):
        return statistics.median(r[key] for r in rows)

    summary = {
        "rest_single": {k: median(results["single"], k) for k in results["single"][0]},
        "rest_batch100": {k: median(results["batch100"], k) for k in results["batch100"][0]},
        "cli_tasks_per_s_no_sse": median(results["no_sse"], "tasks_per_s"),
        "cli_tasks_per_s_with_sse": median(results["sse"], "tasks_per_s"),
        "sse_clients": a.sse_clients, "sse_interval": a.sse_interval, "runs": a.runs,
        "all": results,
    }
    summary["sse_ratio"] = summary["cli_tasks_per_s_with_sse"] / summary["cli_tasks_per_s_no_sse"]
    if a.json:
        print(json.dumps(summary, indent=1))
        return
    for name in ("rest_single", "rest_batch100"):
        s = summary[name]
        print(f"{name:14} {s['requests_per_s']:10,.0f} req/s {s['tasks_per_s']:10,.0f} tasks/s"
              f"  p50 {s['p50_ms']:.2f} ms  p90 {s['p90_ms']:.2f} ms  p99 {s['p99_ms']:.2f} ms")
    print(f"CLI submit, no SSE          {summary['cli_tasks_per_s_no_sse']:10,.0f} tasks/s")
    print(f"CLI submit, {a.sse_clients} SSE @ {a.sse_interval:6} {summary['cli_tasks_per_s_with_sse']:10,.0f}"
          f" tasks/s  (ratio {summary['sse_ratio']:.2f})")


if __name__ == "__main__":
    main()

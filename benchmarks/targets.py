#!/usr/bin/env python3
"""Yard against the targets of DESIGN.md section 9, with yard-bench, in one run
(docs/benchmarks.md, "yard-bench").

Runs yard-bench for each target (--runs times, medians), then an open-loop rate sweep for
the throughput-vs-latency plot, a payload-size sweep and MQTT ingest at QoS 0 and 1 (beside
the broker alone). Writes every yard-bench JSON to
--out, prints a Markdown table, and draws --out/throughput_latency.png with gnuplot (Debian
gnuplot-nox) when it is installed.

Usage: benchmarks/targets.py [--build build-rel] [--runs 3] [--out /tmp/yard-targets]
       [--scale 1.0]   (task counts multiplied by this: 0.1 for a quick look)
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys


def bench(bin_dir, out_dir, name, args):
    cmd = [os.path.join(bin_dir, "yard-bench"), *args, "--json", "--no-progress"]
    print(f"  {name}: yard-bench {' '.join(args)}", file=sys.stderr, flush=True)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise RuntimeError(f"{name}: exit {r.returncode}\n{r.stderr}")
    result = json.loads(r.stdout)
    with open(os.path.join(out_dir, name + ".json"), "w") as f:
        json.dump(result, f, indent=1)
    return result


def median_of(results, get):
    return statistics.median(get(r) for r in results)


def fmt(v, unit=""):
    if unit == "us":
        return f"{v:.0f} µs" if v < 1000 else f"{v / 1000:.2f} ms"
    if unit == "MiB":
        return f"{v / 2**20:.0f} MiB"
    return f"{v:,.0f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build-rel")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", default="/tmp/yard-targets")
    ap.add_argument("--scale", type=float, default=1.0)
    a = ap.parse_args()
    bin_dir = os.path.join(os.path.abspath(a.build), "bin")
    os.makedirs(a.out, exist_ok=True)

    def n(count):
        return str(max(1000, int(count * a.scale)))

    cases = [
        # (name, target text, yard-bench args, what to read, unit, target check)
        ("memory", "≥ 300,000 tasks/s", ["--memory", "--tasks", n(500000), "--compare"]),
        ("none", "≥ 150,000 tasks/s", ["--durability", "none", "--tasks", n(500000), "--compare"]),
        ("fsync", "≥ 50,000 tasks/s", ["--durability", "fsync", "--tasks", n(200000), "--compare"]),
        ("rtt_memory", "p50 ≤ 200 µs, p99 ≤ 500 µs",
         ["--memory", "--workload", "latency", "--tasks", n(5000)]),
        ("rtt_fsync", "(durable, for reference)",
         ["--durability", "fsync", "--workload", "latency", "--tasks", n(2000)]),
    ]
    results = {}
    for run in range(a.runs):
        print(f"run {run + 1}/{a.runs}", file=sys.stderr)
        for name, _, args in cases:
            results.setdefault(name, []).append(
                bench(bin_dir, a.out, f"{name}.{run + 1}", args))
    # Memory with 1M queued tasks, once per state kind.
    fills = {s: bench(bin_dir, a.out, f"fill_{s}", args) for s, args in (
        ("none", ["--durability", "none", "--workload", "fill", "--tasks", n(1000000)]),
        ("memory", ["--memory", "--workload", "fill", "--tasks", n(1000000)]))}
    rates = [20000, 50000, 100000, 150000, 200000, 250000, 300000, 350000, 400000]
    sweep = bench(bin_dir, a.out, "rate_sweep",
                  ["--memory", "--workload", "rate", "--rate", ",".join(map(str, rates)),
                   "--tasks", n(200000)])
    sizes = {s: bench(bin_dir, a.out, f"payload_{s}",
                      ["--memory", "--payload-bytes", str(s), "--tasks",
                       n(200000 if s <= 1024 else 20000)])
             for s in (16, 1024, 65536)}
    mqtt = {q: bench(bin_dir, a.out, f"mqtt_qos{q}",
                     ["--workload", "mqtt", "--qos", str(q), "--tasks", n(100000), "--compare"])
            for q in (0, 1)}

    phase = lambda r: r["phases"][0]  # noqa: E731
    print("| target | yard-bench | measured (median of %d) | runs | limits in the same run |"
          % a.runs)
    print("|---|---|---|---|---|")
    for name, target, args in cases:
        rs = results[name]
        if name.startswith("rtt"):
            p50 = median_of(rs, lambda r: phase(r)["latency_us"]["p50"])
            p99 = median_of(rs, lambda r: phase(r)["latency_us"]["p99"])
            runs = " · ".join(f"{fmt(phase(r)['latency_us']['p50'], 'us')}/"
                              f"{fmt(phase(r)['latency_us']['p99'], 'us')}" for r in rs)
            measured = f"p50 {fmt(p50, 'us')}, p99 {fmt(p99, 'us')}"
            limits = ""
        else:
            tps = median_of(rs, lambda r: phase(r)["tasks_per_s"])
            runs = " · ".join(fmt(phase(r)["tasks_per_s"]) for r in rs)
            cpu_m = median_of(rs, lambda r: phase(r)["cpu_us_per_task"]["master"])
            cpu_w = median_of(rs, lambda r: phase(r)["cpu_us_per_task"]["workers"])
            p50 = median_of(rs, lambda r: phase(r)["latency_us"]["p50"])
            measured = (f"{fmt(tps)} tasks/s (CPU/task: master {cpu_m:.1f} µs, workers "
                        f"{cpu_w:.1f} µs; latency p50 {fmt(p50, 'us')} at the default "
                        f"--inflight)")
            limits = "; ".join(
                f"{l['name']}: {fmt(statistics.median(x['per_second'] for r in rs for x in r['limits'] if x['name'] == l['name']))}/s "
                f"(Yard {statistics.median(x['yard_ratio'] for r in rs for x in r['limits'] if x['name'] == l['name']):.3f})"
                for l in rs[0].get("limits", []))
        print(f"| {name}: {target} | `{' '.join(args)}` | {measured} | {runs} | {limits} |")
    for s, r in fills.items():
        p = phase(r)
        print(f"| RSS with {p['tasks']:,} queued ({s}): ≤ 400 MB | `--workload fill` | "
              f"{fmt(p['master_rss_bytes'], 'MiB')} | | |")
    idle = results["none"][0]["idle_rss_bytes"]
    print(f"| idle RSS: ≤ 50 MB each | (any run) | master {fmt(idle['master'], 'MiB')}, "
          f"worker {fmt(idle['worker_max'], 'MiB')} | | |")
    print("\n| offered tasks/s | achieved | p50 | p99 | p99.9 |")
    print("|---|---|---|---|---|")
    rows = []
    for p in sweep["phases"]:
        l = p["latency_us"]
        rows.append((p["offered_per_s"], p["tasks_per_s"], l["p50"], l["p99"]))
        print(f"| {fmt(p['offered_per_s'])} | {fmt(p['tasks_per_s'])} | {fmt(l['p50'], 'us')} "
              f"| {fmt(l['p99'], 'us')} | {fmt(l['p999'], 'us')} |")
    print("\n| payload | tasks/s | p50 |")
    print("|---|---|---|")
    for s, r in sizes.items():
        p = phase(r)
        print(f"| {s} B | {fmt(p['tasks_per_s'])} | {fmt(p['latency_us']['p50'], 'us')} |")

    print("\n| MQTT ingest | messages/s | tasks/s | p50 | broker alone | Yard's ratio |")
    print("|---|---|---|---|---|---|")
    for q, r in mqtt.items():
        p = phase(r)
        broker = r["limits"][0]
        print(f"| QoS {q} | {fmt(p['messages_per_s'])} | {fmt(p['tasks_per_s'])} | "
              f"{fmt(p['latency_us']['p50'], 'us')} | {fmt(broker['per_second'])}/s | "
              f"{broker['yard_ratio']:.2f} |")

    data = os.path.join(a.out, "sweep.dat")
    with open(data, "w") as f:
        for offered, achieved, p50, p99 in rows:
            f.write(f"{offered} {achieved} {p50 / 1000} {p99 / 1000}\n")
    if shutil.which("gnuplot"):
        png = os.path.join(a.out, "throughput_latency.png")
        script = f"""
set terminal pngcairo size 900,520 font "sans,11"
set output "{png}"
set title "Yard, --memory, master + 2 workers, 100 B echo tasks: open-loop rate sweep"
set xlabel "achieved throughput (tasks/s)"
set ylabel "latency, submit to end at the master (ms)"
set logscale y
set grid
set key top left
set format x "%.0s%c"
plot "{data}" using 2:3 with linespoints lw 2 pt 7 title "p50", \\
     "{data}" using 2:4 with linespoints lw 2 pt 5 title "p99"
"""
        subprocess.run(["gnuplot"], input=script, text=True, check=True)
        print(f"\nplot: {png}", file=sys.stderr)


if __name__ == "__main__":
    main()

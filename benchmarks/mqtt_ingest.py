#!/usr/bin/env python3
"""MQTT ingest -> task done, beside mosquitto's own rate, in one run (docs/benchmarks.md).

For QoS 0 and QoS 1, each run does the following:
  1. broker alone: `yard-devices --raw` publishes N telemetry messages and its own subscriber
     receives them (publish -> broker -> subscriber, the most the broker can pass);
  2. Yard: a fresh `yard-master --memory --workers 2` with the mqtt role subscribed at the
     same QoS, the same N messages published by `yard-devices`. Timed from the start of
     publishing until the core reports every task succeeded.
Step 2 runs twice: one task per message (rule -> echo), and batched (100 readings per device
-> one telemetry.stats task). Each figure is the median of --runs runs; ratios are Yard's rate
over the broker's rate in the same run.

Usage: benchmarks/mqtt_ingest.py [--build build-rel] [--messages 100000] [--devices 100]
       [--runs 3] [--json]
"""
import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(workdir):
    port = free_port()
    conf = os.path.join(workdir, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                "max_queued_messages 10000000\nmax_inflight_messages 1000\n"
                "set_tcp_nodelay true\n")
    proc = subprocess.Popen(["mosquitto", "-c", conf], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port
        time.sleep(0.05)
    raise RuntimeError("mosquitto did not start")


def devices(bin_dir, port, qos, messages, n_devices, *extra):
    r = subprocess.run([os.path.join(bin_dir, "yard-devices"), "--broker",
                        f"tcp://127.0.0.1:{port}", "--devices", str(n_devices), "--count",
                        str(messages // n_devices), "--qos", str(qos), "--json", *extra],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"yard-devices {extra}: exit {r.returncode}: {r.stdout}{r.stderr}")
    return json.loads(r.stdout)


def yard_stats(bin_dir, endpoint):
    r = subprocess.run([os.path.join(bin_dir, "yard"), "--master", endpoint, "--json", "stats"],
                       capture_output=True, text=True, timeout=30, check=True)
    return json.loads(r.stdout)


def yard_run(bin_dir, port, qos, messages, n_devices, batched, workdir):
    rule = ('[[mqtt.rules]]\ntopic = "telemetry/#"\ntype = "telemetry.stats"\n'
            'batch_count = 100\nbatch_window = "1s"\n') if batched else (
            '[[mqtt.rules]]\ntopic = "telemetry/#"\ntype = "echo"\nformat = "raw"\n')
    conf = os.path.join(workdir, "master.toml")
    with open(conf, "w") as f:
        f.write(f'[mqtt]\nbrokers = ["tcp://127.0.0.1:{port}"]\nqos = {qos}\n'
                # One client id for every run: its session (clean session off) is drained at
                # the end of each run; a new id per run would leave sessions that the broker
                # keeps queuing for, slowing every later run.
                f'client_id = "yard-bench-{os.getpid()}"\n'
                f'pause_above = {10 * messages}\n' + rule)
    ready = os.path.join(workdir, "ready.json")
    if os.path.exists(ready):
        os.remove(ready)
    master = subprocess.Popen([os.path.join(bin_dir, "yard-master"), "--memory", "--workers", "2",
                               "--client-endpoint", "tcp://127.0.0.1:0",
                               "--worker-endpoint", "tcp://127.0.0.1:0", "--ready-file", ready,
                               "--config", conf, "--log-level", "warn"],
                              stdout=subprocess.DEVNULL, stderr=open(
                                  os.path.join(workdir, "master.log"), "ab"))
    try:
        deadline = time.monotonic() + 15
        while not os.path.exists(ready):
            if time.monotonic() > deadline or master.poll() is not None:
                raise RuntimeError("master did not start")
            time.sleep(0.05)
        endpoint = json.load(open(ready))["client_endpoint"]
        while True:
            s = yard_stats(bin_dir, endpoint)
            if s.get("mqtt.connected") == 1 and s.get("workers.connected", 2) >= 2:
                break
            time.sleep(0.05)
        time.sleep(0.3)  # subscriptions and workers settle
        start = time.monotonic()
        sent = devices(bin_dir, port, qos, messages, n_devices)
        want = sent["sent"]
        # Done when every message is a finished task; QoS 0 may lose messages on the way,
        # so a run also ends after 2 s without progress (timed to the last progress).
        last, last_change = -1, time.monotonic()
        while True:
            s = yard_stats(bin_dir, endpoint)
            done = s.get("mqtt.messages_committed", 0) if batched else s.get("tasks.succeeded", 0)
            now = time.monotonic()
            if done != last:
                last, last_change = done, now
            if s.get("tasks.active", 0) == 0 and (done >= want or now - last_change > 2):
                break
            if now - start > 300:
                raise RuntimeError(f"not done after 300 s: {done}/{want}")
            time.sleep(0.01)
        elapsed = last_change - start
        return {"messages": want, "received": s.get("mqtt.received", 0), "done": done,
                "tasks": s.get("tasks.succeeded", 0), "seconds": elapsed,
                "msgs_per_s": done / elapsed, "publish_msgs_per_s": sent["msgs_per_s"]}
    finally:
        master.send_signal(signal.SIGTERM)
        if master.wait(60) != 0:
            raise RuntimeError(f"master exited {master.returncode}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--build", default=os.path.join(root, "build"))
    ap.add_argument("--messages", type=int, default=100000)
    ap.add_argument("--devices", type=int, default=100)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    bin_dir = os.path.join(a.build, "bin")
    results = {}
    with tempfile.TemporaryDirectory(prefix="yard-mqtt-bench.") as workdir:
        broker, port = start_broker(workdir)
        try:
            for run in range(a.runs):
                for qos in (0, 1):
                    raw = devices(bin_dir, port, qos, a.messages, a.devices, "--raw")
                    plain = yard_run(bin_dir, port, qos, a.messages, a.devices, False, workdir)
                    batched = yard_run(bin_dir, port, qos, a.messages, a.devices, True, workdir)
                    row = results.setdefault(qos, [])
                    row.append({"broker": raw["received_per_s"],
                                "broker_received": raw["received"],
                                "yard": plain["msgs_per_s"], "yard_batched": batched["msgs_per_s"],
                                "yard_received": plain["received"]})
                    if not a.json:
                        print(f"run {run + 1} qos {qos}: broker {raw['received_per_s']:,.0f}/s "
                              f"({raw['received']}/{a.messages} received), yard one task per "
                              f"message {plain['msgs_per_s']:,.0f}/s, batched "
                              f"{batched['msgs_per_s']:,.0f}/s", file=sys.stderr)
        finally:
            broker.terminate()
            broker.wait()
    summary = {}
    for qos, rows in results.items():
        med = {k: statistics.median(r[k] for r in rows) for k in ("broker", "yard", "yard_batched")}
        ratios = [r["yard"] / r["broker"] for r in rows]
        ratios_b = [r["yard_batched"] / r["broker"] for r in rows]
        summary[f"qos{qos}"] = {**med, "ratio": statistics.median(ratios),
                                "ratio_batched": statistics.median(ratios_b), "runs": rows}
    if a.json:
        print(json.dumps({"messages": a.messages, "devices": a.devices, **summary}, indent=1))
        return
    print(f"\n{a.messages} messages from {a.devices} devices, median of {a.runs} runs")
    print(f"{'QoS':>3} {'broker alone':>14} {'Yard: task/msg':>15} {'ratio':>6} "
          f"{'Yard: batched':>14} {'ratio':>6}")
    for qos in (0, 1):
        s = summary[f"qos{qos}"]
        print(f"{qos:>3} {s['broker']:>12,.0f}/s {s['yard']:>13,.0f}/s {s['ratio']:>6.2f} "
              f"{s['yard_batched']:>12,.0f}/s {s['ratio_batched']:>6.2f}")


if __name__ == "__main__":
    main()

"""Property test of per-key ordering (docs/jobs.md): many keys, random task durations, random
worker SIGKILLs and a master SIGKILL + restart. Every task must complete, and the workers' own
event log must show that no task of a key started before an execution of its predecessor
ended."""
import collections
import os
import random
import signal
import subprocess
import sys
import time

import yardlib

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "order_worker.py")
KEYS = 30
PER_KEY = 12


def start_worker(master_endpoint, name, log_dir, env):
    out = open(os.path.join(log_dir, f"order-worker-{name}.log"), "ab")
    p = subprocess.Popen(["/usr/bin/python3", WORKER, "--connect", master_endpoint, "--id", name,
                          "--credit", "8"], stdout=out, stderr=subprocess.STDOUT, env=env)
    out.close()
    return p


def test_per_key_order_holds_through_worker_kills_and_a_master_restart(tmp_path):
    rng = random.Random(20261125)
    events = tmp_path / "events.log"
    env = dict(os.environ, YARD_ORDER_LOG=str(events))
    cport, wport = yardlib.free_port(), yardlib.free_port()
    args = ["--heartbeat", "200ms", "--retry-backoff", "10ms", "--max-attempts", "100"]
    master = yardlib.Master(tmp_path, *args, client_port=cport, worker_port=wport)
    workers = {}
    serial = 0

    def spawn():
        nonlocal serial
        name = f"ow{serial}"
        serial += 1
        workers[name] = start_worker(master.worker_endpoint, name, tmp_path, env)

    try:
        for _ in range(4):
            spawn()
        client = yardlib.ClientConn(master.client_endpoint)
        yardlib.wait_until(lambda: len(client.workers()) == 4, 20, "4 workers joined")
        # Interleaved submission: within a key, submit order is SEQ order.
        specs = [{"type": "order.log", "key": f"k{k}", "max_attempts": 100,
                  "payload": f"k{k} {seq} {rng.randint(0, 40)}".encode()}
                 for seq in range(PER_KEY) for k in range(KEYS)]
        rng.shuffle(specs)
        specs.sort(key=lambda s: int(s["payload"].split()[1]))  # keeps SEQ order per key
        ids = client.submit(specs)

        def done():
            try:
                return sum(t["state"] == "succeeded" for t in client.get(ids))
            except AssertionError:
                return 0

        restarted = False
        deadline = time.monotonic() + 120
        while done() < len(ids):
            assert time.monotonic() < deadline, "tasks did not all finish"
            time.sleep(0.3)
            victim = rng.choice(sorted(workers))
            workers.pop(victim).send_signal(signal.SIGKILL)
            spawn()
            if not restarted and done() >= len(ids) // 3:
                master.proc.send_signal(signal.SIGKILL)
                master.proc.wait()
                client.close()
                time.sleep(0.5)
                master = yardlib.Master(tmp_path, *args, client_port=cport, worker_port=wport)
                client = yardlib.ClientConn(master.client_endpoint)
                restarted = True
        assert restarted, "the master restart happened"
        assert all(t["state"] == "succeeded" for t in client.get(ids))
        client.close()
    finally:
        for p in workers.values():
            p.send_signal(signal.SIGKILL)
            p.wait()
        master.stop()
    assert master.exit_code == 0

    starts = collections.defaultdict(list)
    ends = collections.defaultdict(list)
    for line in events.read_text().splitlines():
        ns, event, key, seq = line.split()
        (starts if event == "start" else ends)[(key, int(seq))].append(int(ns))
    for k in range(KEYS):
        key = f"k{k}"
        for seq in range(PER_KEY):
            assert ends[(key, seq)], f"{key} #{seq} never completed on a worker"
            if seq > 0:
                assert min(starts[(key, seq)]) > min(ends[(key, seq - 1)]), \
                    f"{key} #{seq} started before #{seq - 1} ended"
    killed_mid_task = sum(len(starts[k]) > len(ends[k]) for k in starts)
    print(f"{len(ids)} tasks over {KEYS} keys; {serial - 4} worker kills; "
          f"{killed_mid_task} tasks lost an execution to a kill", file=sys.stderr)

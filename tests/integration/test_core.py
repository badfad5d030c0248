"""Integration tests of the core engine with the real binaries (yard-master, yard-worker, yard).

Each test runs its processes in its own temp dir, on port 0, waits on conditions with
deadlines, and ends every process with SIGTERM, asserting exit code 0.
"""
import json
import os
import signal
import socket
import subprocess
import time

import msgpack
import zmq

import yardlib

BIN = yardlib.bin_dir()


def cli(master, *args, timeout=60):
    """Runs `yard --master M ARGS`; returns (exit code, stdout, stderr)."""
    p = yardlib.yard(master, *args, check=False, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def test_ten_thousand_tasks_complete_exactly_once(tmp_path):
    with yardlib.Master(tmp_path) as master:
        workers = [yardlib.Worker(tmp_path, master.worker_endpoint, f"w{i}") for i in range(3)]
        client = yardlib.ClientConn(master.client_endpoint)
        yardlib.wait_until(lambda: len(client.workers()) == 3, 10, "3 workers joined")

        payloads = [f"task-{i:05d}" for i in range(10_000)]
        lines = tmp_path / "payloads.txt"
        lines.write_text("\n".join(payloads) + "\n")
        code, out, err = cli(master.client_endpoint, "--json", "submit", "echo",
                             "--payload-file", str(lines), "--each-line")
        assert code == 0, err
        ids = json.loads(out)["ids"]
        assert len(ids) == 10_000 and len(set(ids)) == 10_000

        yardlib.wait_until(lambda: client.stats().get("tasks.succeeded", 0) == 10_000, 60,
                           "all 10,000 tasks succeeded")
        tasks = client.get(ids)
        for task_id, payload, t in zip(ids, payloads, tasks):
            assert t["id"] == task_id
            assert t["state"] == "succeeded"
            assert t["result"] == payload.encode()
            assert t["attempt"] == 1, "every task ran exactly once"
        stats = client.stats()
        assert stats["results.received"] == 10_000
        assert stats.get("results.duplicate", 0) == 0
        assert stats["tasks.dispatches"] == 10_000
        # Every worker took part.
        assert all(w["completed"] > 0 for w in client.workers())
        for w in workers:
            assert w.stop() == 0
    assert master.exit_code == 0


def test_tasks_of_a_killed_worker_complete_elsewhere(tmp_path):
    with yardlib.Master(tmp_path, "--heartbeat", "200ms") as master:
        victim = yardlib.Worker(tmp_path, master.worker_endpoint, "victim", "--threads", "4")
        survivor = yardlib.Worker(tmp_path, master.worker_endpoint, "survivor", "--threads", "4")
        client = yardlib.ClientConn(master.client_endpoint)
        yardlib.wait_until(lambda: len(client.workers()) == 2, 10, "2 workers joined")
        ids = client.submit([{"type": "sleep", "payload": b"20"} for _ in range(400)])
        yardlib.wait_until(lambda: client.stats().get("tasks.succeeded", 0) >= 40, 30,
                           "the run is under way")
        victim.kill()  # SIGKILL mid-run: its tasks must be requeued
        yardlib.wait_until(lambda: client.stats().get("tasks.succeeded", 0) == 400, 60,
                           "every task completed")
        assert all(t["state"] == "succeeded" for t in client.get(ids))
        stats = client.stats()
        assert stats["workers.lost"] == 1
        assert stats["workers.connected"] == 1
        assert survivor.stop() == 0
    assert master.exit_code == 0


def test_tasks_of_a_stopped_worker_move_past_their_lease(tmp_path):
    with yardlib.Master(tmp_path, "--heartbeat", "200ms") as master:
        stuck = yardlib.Worker(tmp_path, master.worker_endpoint, "stuck", "--threads", "2")
        client = yardlib.ClientConn(master.client_endpoint)
        yardlib.wait_until(lambda: len(client.workers()) == 1, 10, "worker joined")
        ids = client.submit([{"type": "sleep", "payload": b"300", "timeout_ms": 500}
                             for _ in range(4)])
        yardlib.wait_until(lambda: client.stats().get("tasks.running", 0) > 0, 10, "dispatched")
        stuck.proc.send_signal(signal.SIGSTOP)
        helper = yardlib.Worker(tmp_path, master.worker_endpoint, "helper", "--threads", "2")
        yardlib.wait_until(lambda: all(t["state"] == "succeeded" for t in client.get(ids)), 30,
                           "tasks moved to the other worker")
        assert all(t["worker"] == "helper" for t in client.get(ids))
        stats = client.stats()
        assert stats.get("leases.expired", 0) + stats.get("workers.lost", 0) >= 1
        stuck.proc.send_signal(signal.SIGCONT)
        # It comes back, learns its session is gone, and joins again.
        yardlib.wait_until(lambda: len(client.workers()) == 2, 15, "stopped worker rejoined")
        assert stuck.stop() == 0
        assert helper.stop() == 0
    assert master.exit_code == 0


def _send_raw_tcp(endpoint, data):
    host, port = endpoint.replace("tcp://", "").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=2) as s:
        s.sendall(data)
        time.sleep(0.05)


def test_garbage_on_both_ports_is_rejected_and_the_master_keeps_serving(tmp_path):
    with yardlib.Master(tmp_path, "--max-message-bytes", "65536",
                        "--max-payload-bytes", "16384") as master:
        worker = yardlib.Worker(tmp_path, master.worker_endpoint, "good")
        client = yardlib.ClientConn(master.client_endpoint)
        yardlib.wait_until(lambda: len(client.workers()) == 1, 10, "worker joined")

        for ep in (master.worker_endpoint, master.client_endpoint):
            _send_raw_tcp(ep, os.urandom(4096))               # not even ZMTP
            _send_raw_tcp(ep, b"\xff" + b"\x00" * 8 + b"\x7f" + os.urandom(64))

        ctx = zmq.Context.instance()
        bad_worker = ctx.socket(zmq.DEALER)
        bad_worker.setsockopt(zmq.LINGER, 0)
        bad_worker.connect(master.worker_endpoint)
        bad_client = ctx.socket(zmq.DEALER)
        bad_client.setsockopt(zmq.LINGER, 0)
        bad_client.connect(master.client_endpoint)
        hello_body = msgpack.packb(["dup", 1, ["echo"], 1, 1, "h", 1, []], use_bin_type=True)
        frames = [
            [b"only-one-frame"],                                   # malformed_frame
            [b"XX\x01\x01", b"\x90"],                              # malformed_header
            [b"YD\x09\x01", hello_body],                           # bad_version
            [b"YD\x01\x70", b"\x90"],                              # unknown_command (required)
            [b"YD\x01\x01", b"\xdd\xff\xff\xff\xff"],             # malformed_body (huge array)
            [b"YD\x01\x01", os.urandom(100)],                      # malformed_body (noise)
            [b"YD\x01\x01", b"\x91" * 200],                        # malformed_body (deep)
            [b"YD\x01\x03", msgpack.packb([[]])],                  # unexpected_command (TASKS)
            [b"YD\x01\x01", b"\xc4" + b"x" * 70000],               # too_large
        ]
        for f in frames:
            bad_worker.send_multipart(f)
        for f in frames:
            bad_client.send_multipart(f)
        bad_worker.send_multipart([b"YD\x01\x90", b"\x90"])        # unknown optional: ignored

        # A second worker claiming the good worker's id is refused while it is alive.
        good_id = client.workers()[0]["id"]
        dup = ctx.socket(zmq.DEALER)
        dup.setsockopt(zmq.LINGER, 0)
        dup.connect(master.worker_endpoint)
        dup.send_multipart([b"YD\x01\x01", msgpack.packb(
            [good_id, 99, ["echo"], 1, 1, "h", 1, []], use_bin_type=True)])
        assert dup.poll(5000)
        header, body = dup.recv_multipart()[:2]
        assert header == b"YD\x01\x09"
        assert msgpack.unpackb(body)[0] == 4  # duplicate_worker

        # The client port answers each bad request with an ERROR.
        errors = 0
        while bad_client.poll(2000):
            header, body = bad_client.recv_multipart()[:2]
            assert header == b"YD\x01\x2f"
            errors += 1
            if errors == len(frames):
                break
        assert errors == len(frames)

        def counted():
            s = client.stats()
            return all(s.get("rejected." + r, 0) >= 2 for r in (
                "malformed_frame", "malformed_header", "bad_version", "unknown_command",
                "malformed_body", "unexpected_command", "too_large")) and \
                s.get("rejected.duplicate_worker", 0) == 1 and \
                s.get("ignored.optional_command", 0) == 1
        yardlib.wait_until(counted, 10, "every rejection counted")

        # Still serving everyone else.
        code, out, err = cli(master.client_endpoint, "submit", "echo", "still here", "--wait")
        assert code == 0, err
        assert out == "still here\n"
        for s in (bad_worker, bad_client, dup):
            s.close()
        assert worker.stop() == 0
    assert master.exit_code == 0


def test_standalone_master_with_embedded_workers(tmp_path):
    with yardlib.Master(tmp_path, "--workers", "2") as master:
        client = yardlib.ClientConn(master.client_endpoint)
        yardlib.wait_until(lambda: len(client.workers()) == 2, 15, "2 embedded workers joined")
        code, out, err = cli(master.client_endpoint, "submit", "echo", "hello", "--wait")
        assert (code, out) == (0, "hello\n"), err
        code, out, _ = cli(master.client_endpoint, "--json", "submit", "telemetry.stats",
                           "[1, 2, 3, 4, 100]", "--wait")
        assert code == 0
        result = json.loads(json.loads(out)["result"])
        assert result == {"count": 5, "min": 1.0, "max": 100.0, "mean": 22.0, "p50": 3.0,
                          "p95": 100.0}
        # An embedded worker that dies is restarted.
        pid = client.workers()[0]["pid"]
        os.kill(pid, signal.SIGKILL)
        yardlib.wait_until(lambda: len(client.workers()) == 2 and
                           pid not in [w["pid"] for w in client.workers()], 20,
                           "embedded worker restarted")
    assert master.exit_code == 0


def test_cli_errors_and_exit_codes(tmp_path):
    code, _, err = cli("tcp://127.0.0.1:1", "--connect-timeout", "300ms", "stats")
    assert code == 3 and "cannot reach master" in err
    code, _, err = cli("tcp://127.0.0.1:1", "submit")
    assert code == 2
    with yardlib.Master(tmp_path) as master:
        m = master.client_endpoint
        code, _, err = cli(m, "status", "12345")
        assert code == 1 and "no task 12345" in err
        code, _, err = cli(m, "submit", "echo", "x", "--priority", "12")
        assert code == 2
        code, _, err = cli(m, "submit", "echo", "x", "--timeout", "soon")
        assert code == 2 and "--timeout" in err
        # No worker handles this type: the task waits, and can be cancelled.
        code, out, _ = cli(m, "submit", "nobody.handles.this", "x")
        assert code == 0
        task_id = out.strip()
        code, out, _ = cli(m, "--json", "status", task_id)
        assert json.loads(out)["state"] == "queued"
        code, out, _ = cli(m, "wait", task_id, "--timeout", "200ms")
        assert code == 3
        code, out, _ = cli(m, "cancel", task_id)
        assert code == 0 and "cancelled" in out
        code, _, err = cli(m, "cancel", task_id)
        assert code == 1 and "already finished" in err
        code, _, err = cli(m, "result", task_id)
        assert code == 1
    assert master.exit_code == 0
    bad = tmp_path / "bad.toml"
    bad.write_text('[master]\ntimout = "3s"\n')
    p = subprocess.run([os.path.join(BIN, "yard-master"), "--config", str(bad)],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 2 and "master.timout" in p.stderr
    p = subprocess.run([os.path.join(BIN, "yard-master"), "--workers", "many"],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 2 and "--workers" in p.stderr


def test_retries_then_dead_letter_and_per_key_order(tmp_path):
    with yardlib.Master(tmp_path, "--retry-backoff", "100ms") as master:
        w = [yardlib.Worker(tmp_path, master.worker_endpoint, f"w{i}", "--threads", "4")
             for i in range(2)]
        client = yardlib.ClientConn(master.client_endpoint)
        yardlib.wait_until(lambda: len(client.workers()) == 2, 10, "workers joined")
        failing = client.submit([{"type": "fail", "payload": b"x", "max_attempts": 3}])[0]
        keyed = client.submit([{"type": "sleep", "payload": b"5", "key": "device-7"}
                               for _ in range(30)])
        yardlib.wait_until(lambda: all(t["state"] == "succeeded" for t in client.get(keyed)),
                           30, "keyed tasks done")
        yardlib.wait_until(lambda: client.get([failing])[0]["state"] == "dead", 10,
                           "failing task gave up")
        t = client.get([failing])[0]
        assert t["failures"] == 3 and "gave up after 3" in t["error"]
        assert t["run_after_us"] > t["submitted_us"], "retries waited out a back-off"
        done = client.get(keyed)
        for a, b in zip(done, done[1:]):
            assert a["finished_us"] <= b["dispatched_us"], "one at a time, in submit order"
        for x in w:
            assert x.stop() == 0
    assert master.exit_code == 0

"""Durable state with the real binaries: SIGKILL the master in the middle of a 100,000-task run,
in each durability mode and at several points, restart it on the same data dir, and check that
every task whose submit was acknowledged completes. Also: workers killed mid-run, idempotency
keys and dead letters across a restart, and data dirs the master must refuse.
"""
import json
import os
import subprocess
import threading
import time

import pytest

import yardlib

TASKS = 100_000
BATCH = 1000


class Submitter(threading.Thread):
    """Submits `total` echo tasks in batches and records the ids of acknowledged batches only.
    Stops at the first error (the master was killed under it)."""

    def __init__(self, endpoint, total):
        super().__init__(daemon=True)
        self.endpoint = endpoint
        self.total = total
        self.acked = []
        self.error = None

    def run(self):
        conn = yardlib.ClientConn(self.endpoint, timeout=5)
        try:
            for start in range(0, self.total, BATCH):
                n = min(BATCH, self.total - start)
                tasks = [{"type": "echo", "payload": b"t%d" % (start + i)} for i in range(n)]
                self.acked += conn.call(0x20, [[[t["type"], t["payload"], "", 5, 0, 0, ""]
                                                for t in tasks]], 0x21)[1]
        except Exception as e:  # noqa: BLE001 - the kill shows up as any transport error
            self.error = e
        finally:
            conn.close()


def stat(conn, name):
    return conn.stats().get(name, 0)


def wait_all_succeeded(conn, ids, timeout):
    """Polls until every id is terminal; returns {state: count} and the ids the master lost."""
    deadline = time.monotonic() + timeout
    pending = list(ids)
    states = {}
    lost = []
    while pending:
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(pending)} acknowledged tasks still not finished")
        still = []
        for i in range(0, len(pending), 1000):
            chunk = pending[i:i + 1000]
            for tid, t in zip(chunk, conn.get(chunk)):
                if t is None:
                    lost.append(tid)
                elif t["state"] in ("queued", "dispatched"):
                    still.append(tid)
                else:
                    states[t["state"]] = states.get(t["state"], 0) + 1
        pending = still
        if pending:
            time.sleep(0.2)
    return states, lost


def start_workers(tmp_path, endpoint, n, prefix="w"):
    return [yardlib.Worker(tmp_path, endpoint, f"{prefix}{i}", "--threads", "2")
            for i in range(n)]


@pytest.mark.parametrize("kill_at", ["submit", "dispatch", "results"])
@pytest.mark.parametrize("mode", ["fsync", "interval", "none"])
def test_sigkill_master_loses_no_acknowledged_task(tmp_path, mode, kill_at):
    cport, wport = yardlib.free_port(), yardlib.free_port()
    args = ["--durability", mode, "--heartbeat", "200ms"]
    master = yardlib.Master(tmp_path, *args, client_port=cport, worker_port=wport)
    workers = start_workers(tmp_path, master.worker_endpoint, 2)
    conn = yardlib.ClientConn(master.client_endpoint)
    sub = Submitter(master.client_endpoint, TASKS)
    sub.start()
    # Kill points: while submits are still arriving; once all are in and about a third ran
    # (dispatch in full flow); once most ran (result commits in full flow).
    if kill_at == "submit":
        yardlib.wait_until(lambda: len(sub.acked) >= 30_000, 60, "30k submits acknowledged")
    elif kill_at == "dispatch":
        sub.join(120)
        yardlib.wait_until(lambda: stat(conn, "tasks.succeeded") >= TASKS // 3, 60,
                           "a third of the tasks done")
    else:
        sub.join(120)
        yardlib.wait_until(lambda: stat(conn, "tasks.succeeded") >= TASKS * 2 // 3, 60,
                           "two thirds of the tasks done")
    before = stat(conn, "tasks.succeeded")
    master.kill()
    sub.join(30)
    conn.close()
    acked = list(sub.acked)
    assert acked, "nothing was acknowledged before the kill"

    master = yardlib.Master(tmp_path, *args, client_port=cport, worker_port=wport)
    try:
        conn = yardlib.ClientConn(master.client_endpoint)
        states, lost = wait_all_succeeded(conn, acked, 180)
        assert lost == [], f"{len(lost)} acknowledged tasks lost, e.g. {lost[:5]}"
        assert states == {"succeeded": len(acked)}, states
        stats = conn.stats()
        dup = stats.get("results.duplicate", 0) + stats.get("results.late_accepted", 0)
        print(f"\n{mode}/{kill_at}: {len(acked)} acknowledged, {before} done before the kill, "
              f"{stats.get('recovery.tasks', 0)} recovered in {stats.get('recovery.ms', 0)} ms, "
              f"all succeeded; repeated results after restart: {dup}")
        assert "state epoch 2:" in master.log(), "the restart reports its recovery"
        conn.close()
    finally:
        for w in workers:
            assert w.stop() == 0, w.log()
        assert master.stop() == 0, master.log()


def test_sigkilled_workers_lose_no_task(tmp_path):
    with yardlib.Master(tmp_path, "--heartbeat", "200ms", "--retry-backoff", "50ms") as master:
        workers = start_workers(tmp_path, master.worker_endpoint, 3)
        conn = yardlib.ClientConn(master.client_endpoint)
        ids = conn.submit([{"type": "sleep", "payload": b"5"} for _ in range(3000)])
        yardlib.wait_until(lambda: stat(conn, "tasks.succeeded") >= 500, 60, "500 done")
        workers[0].kill()
        workers[1].kill()
        workers.append(yardlib.Worker(tmp_path, master.worker_endpoint, "w-new", "--threads", "2"))
        states, lost = wait_all_succeeded(conn, ids, 120)
        assert lost == []
        assert states == {"succeeded": len(ids)}, states
        # Each killed worker is noticed by missed heartbeats or by a failed send to it.
        yardlib.wait_until(lambda: stat(conn, "workers.connected") == 2, 10, "kills noticed")
        conn.close()
        for w in workers[2:]:
            assert w.stop() == 0
    assert master.exit_code == 0


def test_idempotency_key_survives_a_restart(tmp_path):
    with yardlib.Master(tmp_path) as master:
        conn = yardlib.ClientConn(master.client_endpoint)
        first = conn.submit([{"type": "echo", "payload": b"x", "idempotency_key": "order-9"}])
        conn.close()
    assert master.exit_code == 0
    with yardlib.Master(tmp_path) as master:
        conn = yardlib.ClientConn(master.client_endpoint)
        again = conn.submit([{"type": "echo", "payload": b"x", "idempotency_key": "order-9"}])
        other = conn.submit([{"type": "echo", "payload": b"x", "idempotency_key": "order-10"}])
        assert again == first
        assert other != first
        assert conn.get(first)[0]["idempotency_key"] == "order-9"
        conn.close()
    assert master.exit_code == 0


yard = yardlib.yard


def test_dead_letters_survive_a_restart_and_can_be_requeued_and_purged(tmp_path):
    args = ["--retry-backoff", "10ms", "--max-attempts", "2"]
    with yardlib.Master(tmp_path, *args, "--workers", "1") as master:
        conn = yardlib.ClientConn(master.client_endpoint)
        ids = conn.submit([{"type": "fail", "payload": b"boom %d" % i} for i in range(3)])
        for tid in ids:
            assert conn.wait(tid, 20000)["state"] == "dead"
        conn.close()
    assert master.exit_code == 0

    with yardlib.Master(tmp_path, *args) as master:
        listed = yard(master, "--json", "dead", "list")
        dead = json.loads(listed.stdout)
        assert [t["id"] for t in dead] == ids
        assert all(t["attempt"] == 2 and "gave up after 2" in t["error"] for t in dead)
        shown = json.loads(yard(master, "--json", "dead", "show", str(ids[0])).stdout)
        assert shown["payload"] == "boom 0"
        assert yard(master, "dead", "show", "999999", check=False).returncode == 1
        assert "requeued 1 dead letter" in yard(master, "dead", "requeue", str(ids[0])).stdout
        conn = yardlib.ClientConn(master.client_endpoint)
        assert conn.get([ids[0]])[0]["state"] in ("queued", "dispatched")
        assert "purged 2 dead letters" in yard(master, "dead", "purge").stdout
        assert conn.get([ids[1]]) == [None]
        assert "(no dead letters)" in yard(master, "dead", "list").stdout
        conn.close()
    assert master.exit_code == 0


def test_master_refuses_a_directory_that_is_not_its_own(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    log = tmp_path / "m.log"
    r = subprocess.run([os.path.join(yardlib.bin_dir(), "yard-master"), "--data-dir",
                        str(foreign), "--client-endpoint", "tcp://127.0.0.1:0",
                        "--worker-endpoint", "tcp://127.0.0.1:0"],
                       stdout=open(log, "wb"), stderr=subprocess.STDOUT, timeout=30)
    assert r.returncode == 1
    assert "not a Yard data directory" in log.read_text()
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_master_reports_an_unwritable_data_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    log = tmp_path / "m.log"
    r = subprocess.run([os.path.join(yardlib.bin_dir(), "yard-master"), "--data-dir",
                        str(blocker / "data"), "--client-endpoint", "tcp://127.0.0.1:0",
                        "--worker-endpoint", "tcp://127.0.0.1:0"],
                       stdout=open(log, "wb"), stderr=subprocess.STDOUT, timeout=30)
    assert r.returncode == 1
    text = log.read_text()
    assert "cannot open the task state" in text and str(blocker) in text, text

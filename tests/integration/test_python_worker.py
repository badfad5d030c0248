"""The Python example worker (written from docs/protocol.md) against the real master."""
import os
import signal
import subprocess

import yardlib

WORKER = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "python_worker",
                      "yard_worker.py")


def test_python_worker_completes_tasks(tmp_path):
    with yardlib.Master(tmp_path) as master:
        log = open(tmp_path / "python-worker.log", "wb")
        worker = subprocess.Popen(["/usr/bin/python3", WORKER, "--connect",
                                   master.worker_endpoint, "--id", "py1"],
                                  stdout=subprocess.PIPE, stderr=log)
        assert worker.stdout.readline().strip() == b"ready"
        client = yardlib.ClientConn(master.client_endpoint)
        payloads = [f"reading {i}".encode() for i in range(200)]
        ids = client.submit([{"type": "py.upper", "payload": p} for p in payloads])
        bad, good_sum = client.submit([{"type": "py.sum", "payload": b"{not json"},
                                       {"type": "py.sum", "payload": b"[1, 2, 3.5]"}])
        yardlib.wait_until(
            lambda: all(t["state"] in ("succeeded", "failed")
                        for t in client.get(ids + [bad, good_sum])), 30, "all tasks finished")
        for p, t in zip(payloads, client.get(ids)):
            assert t["state"] == "succeeded" and t["result"] == p.upper()
        bad_t, sum_t = client.get([bad, good_sum])
        assert bad_t["state"] == "failed" and "not JSON" in bad_t["error"]
        assert bad_t["attempt"] == 1, "a permanent failure is not retried"
        assert sum_t["state"] == "succeeded" and sum_t["result"] == b"6.5"
        assert [w["id"] for w in client.workers()] == ["py1"]

        worker.send_signal(signal.SIGTERM)
        assert worker.wait(15) == 0
        log.close()
        yardlib.wait_until(lambda: client.stats()["workers.connected"] == 0, 10,
                           "worker said goodbye")
        assert client.stats().get("workers.disconnected", 0) == 1
    assert master.exit_code == 0

"""Jobs and scheduling end to end (docs/jobs.md): the real master and workers driven through
the `yard` CLI. Every test ends the master with SIGTERM and checks it exits 0."""
import json
import signal
import time

import yardlib

yard = yardlib.yard


def jobj(master, *args, check=True):
    return json.loads(yard(master, "--json", *args, check=check).stdout)


def wait_job(master, job_id, timeout=60):
    yardlib.wait_until(
        lambda: jobj(master, "job", "status", str(job_id))["state"] not in ("running", "reducing"),
        timeout, f"job {job_id} finished")
    return jobj(master, "job", "status", str(job_id))


def test_a_million_line_file_split_into_1000_tasks(tmp_path):
    big = tmp_path / "big.txt"
    big.write_text("".join(f"{i:06d}\n" for i in range(1_000_000)))
    with yardlib.Master(tmp_path, "--workers", "2", "--memory") as master:
        r = yard(master, "job", "submit", "echo", "--payload-file", str(big), "--split",
                 "lines:1000", "--aggregate", "count", "--wait", timeout=120)
        assert r.stdout.strip() == "1000000"
        jobs = yard(master, "--json", "list", "--job", "1", "--all").stdout
        parts = json.loads(jobs)["tasks"]
        assert len(parts) == 1000 and all(p["state"] == "succeeded" for p in parts)
        status = jobj(master, "job", "status", "1")
        assert status["state"] == "succeeded" and status["parts"] == 1000
        assert status["progress"]["succeeded"] == 1000
    assert master.exit_code == 0


def test_aggregators_over_a_range(tmp_path):
    with yardlib.Master(tmp_path, "--workers", "1", "--memory") as master:
        expect = {"sum": "5050", "min": "1", "max": "100", "count": "100",
                  "collect": json.dumps(list(range(1, 101)), separators=(",", ":"))}
        for agg, want in expect.items():
            r = yard(master, "--json", "job", "submit", "echo", "--split", "range:1..100",
                     "--aggregate", agg)
            job = json.loads(r.stdout)
            assert job["parts"] == 100
            assert wait_job(master, job["job_id"])["state"] == "succeeded"
            assert yard(master, "job", "result", str(job["job_id"])).stdout == want, agg
    assert master.exit_code == 0


def test_failure_policies(tmp_path):
    # `sleep` fails permanently on a payload that is not a number: part 2 of 4.
    lines = "5\n5\nbad\n5\n"
    with yardlib.Master(tmp_path, "--workers", "1", "--memory") as master:
        ff = json.loads(yard(master, "--json", "job", "submit", "sleep", "--payload", lines,
                             "--split", "lines:1", "--aggregate", "concat").stdout)["job_id"]
        j = wait_job(master, ff)
        assert j["state"] == "failed" and "part 2" in j["error"]
        r = yard(master, "job", "result", str(ff), check=False)
        assert r.returncode == 1 and "part 2" in r.stderr

        cont = json.loads(yard(master, "--json", "job", "submit", "sleep", "--payload", lines,
                               "--split", "lines:1", "--aggregate", "concat", "--policy",
                               "continue").stdout)["job_id"]
        j = wait_job(master, cont)
        assert j["state"] == "partial"
        assert [f["part"] for f in j["failures"]] == [2]
        assert j["progress"] == {"queued": 0, "running": 0, "succeeded": 3, "failed": 1,
                                 "cancelled": 0}
        r = yard(master, "job", "result", str(cont))
        assert r.stdout == "5\n5\n5\n" and "part 2" in r.stderr
    assert master.exit_code == 0


def test_bad_jobs_are_refused_and_create_nothing(tmp_path):
    with yardlib.Master(tmp_path, "--memory", "--max-job-tasks", "10") as master:
        cases = [(["--split", "words:3", "--payload", "a"], "unknown splitter"),
                 (["--split", "range:9..1"], "greater than B"),
                 (["--split", "lines:1", "--payload", ""], "empty"),
                 (["--split", "lines:1", "--payload", "\n" * 11], "over the limit of 10"),
                 (["--split", "lines:1", "--payload", "a", "--aggregate", "median"],
                  "unknown aggregator")]
        for args, why in cases:
            r = yard(master, "job", "submit", "echo", *args, check=False)
            assert r.returncode == 1, args
            assert why in r.stderr, (args, r.stderr)
        stats = jobj(master, "stats")
        assert stats.get("tasks.submitted", 0) == 0 and stats.get("jobs.submitted", 0) == 0
        assert stats["rejected.invalid_job"] == len(cases)
    assert master.exit_code == 0


def test_cancel_reaches_a_running_handler_and_whole_jobs(tmp_path):
    with yardlib.Master(tmp_path, "--workers", "1", "--memory") as master:
        tid = int(yard(master, "submit", "sleep", "60000").stdout)
        yardlib.wait_until(lambda: jobj(master, "status", str(tid))["state"] == "dispatched",
                           10, "the sleep started")
        yard(master, "cancel", str(tid))
        assert jobj(master, "status", str(tid))["state"] == "cancelled"
        # The worker's sleep saw its cancel flag and answered long before its minute was up.
        yardlib.wait_until(lambda: jobj(master, "stats").get("results.after_cancel", 0) == 1,
                           10, "the worker reported the cancelled execution")

        job = json.loads(yard(master, "--json", "job", "submit", "sleep", "--split",
                              "range:60000..60003").stdout)
        yardlib.wait_until(
            lambda: jobj(master, "job", "status", str(job["job_id"]))["progress"]["running"] > 0,
            10, "a part started")
        cancelled = jobj(master, "job", "cancel", str(job["job_id"]))
        assert cancelled["state"] == "cancelled"
        assert cancelled["progress"]["cancelled"] == 4
        parts = json.loads(yard(master, "--json", "list", "--job", str(job["job_id"])).stdout)
        assert {t["state"] for t in parts["tasks"]} == {"cancelled"}
    assert master.exit_code == 0


def test_delay_deadline_and_lease_renewal(tmp_path):
    with yardlib.Master(tmp_path, "--workers", "1", "--memory") as master:
        delayed = int(yard(master, "submit", "echo", "x", "--delay", "700ms").stdout)
        late = yard(master, "submit", "nobody-runs-this", "x", "--deadline", "300ms").stdout
        long = int(yard(master, "submit", "sleep-extend", "1500", "--timeout", "400ms",
                        "--max-attempts", "1").stdout)
        t = jobj(master, "wait", str(delayed))
        assert t["state"] == "succeeded"
        assert t["dispatched_us"] - t["submitted_us"] >= 700_000, "not run before its delay"
        e = jobj(master, "wait", late.strip(), check=False)  # exit 1: it did not succeed
        assert e["state"] == "expired" and "deadline" in e["error"]
        s = jobj(master, "wait", str(long))
        assert s["state"] == "succeeded" and s["attempt"] == 1, "EXTEND kept the lease"
        assert jobj(master, "stats")["leases.extended"] >= 2
    assert master.exit_code == 0


def test_required_tags_route_to_tagged_workers(tmp_path):
    with yardlib.Master(tmp_path, "--memory") as master:
        plain = yardlib.Worker(tmp_path, master.worker_endpoint, "plain")
        gpu = yardlib.Worker(tmp_path, master.worker_endpoint, "gpu", "--tag", "gpu")
        yardlib.wait_until(lambda: len(jobj(master, "workers")) == 2, 10, "2 workers")
        ids = [int(yard(master, "submit", "echo", str(i), "--require", "gpu").stdout)
               for i in range(20)]
        for i in ids:
            t = jobj(master, "wait", str(i))
            assert t["state"] == "succeeded" and t["worker"] == "gpu"
        other = int(yard(master, "submit", "echo", "x", "--require", "tpu").stdout)
        time.sleep(0.3)
        assert jobj(master, "status", str(other))["state"] == "queued"
        plain.stop()
        gpu.stop()
        assert plain.exit_code == 0 and gpu.exit_code == 0
    assert master.exit_code == 0


def test_list_filters_and_pages(tmp_path):
    with yardlib.Master(tmp_path, "--workers", "1", "--memory") as master:
        client = yardlib.ClientConn(master.client_endpoint)
        ids = client.submit([{"type": "echo", "payload": b"x", "key": f"dev-{i % 3}"}
                             for i in range(30)])
        client.submit([{"type": "nobody-runs-this", "payload": b"y"}])
        yardlib.wait_until(lambda: all(t["state"] == "succeeded" for t in client.get(ids)), 20,
                           "30 tasks done")
        client.close()
        by_key = json.loads(yard(master, "--json", "list", "--key", "dev-1", "--all").stdout)
        assert [t["id"] for t in by_key["tasks"]] == ids[1::3]
        page = json.loads(yard(master, "--json", "list", "--state", "succeeded", "--limit",
                               "7").stdout)
        assert [t["id"] for t in page["tasks"]] == ids[:7] and page["more"]
        nxt = json.loads(yard(master, "--json", "list", "--state", "succeeded", "--limit", "7",
                              "--after", str(page["next_after_id"])).stdout)
        assert [t["id"] for t in nxt["tasks"]] == ids[7:14]
        queued = json.loads(yard(master, "--json", "list", "--state", "queued").stdout)
        assert [t["type"] for t in queued["tasks"]] == ["nobody-runs-this"]
        r = yard(master, "list", "--state", "sleeping", check=False)
        assert r.returncode == 2 and "expired" in r.stderr
    assert master.exit_code == 0


def test_an_open_job_survives_a_master_crash(tmp_path):
    cport, wport = yardlib.free_port(), yardlib.free_port()
    master = yardlib.Master(tmp_path, "--workers", "1", "--worker-threads", "1",
                            client_port=cport, worker_port=wport)
    job = json.loads(yard(master, "--json", "job", "submit", "sleep", "--split",
                          "range:1..40:1", "--aggregate", "sum").stdout)
    yardlib.wait_until(
        lambda: jobj(master, "job", "status", str(job["job_id"]))["progress"]["succeeded"] >= 5,
        30, "some parts done")
    master.proc.send_signal(signal.SIGKILL)
    master.proc.wait()
    master.stop()
    with yardlib.Master(tmp_path, "--workers", "1", client_port=cport,
                        worker_port=wport) as again:
        j = wait_job(again, job["job_id"])
        assert j["state"] == "succeeded"
        assert yard(again, "job", "result", str(job["job_id"])).stdout == str(sum(range(1, 41)))
    assert again.exit_code == 0

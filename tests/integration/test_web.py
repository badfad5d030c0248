"""The web role's REST API, SSE stream, metrics and health probes
(master/plugins/web/README.md, docs/api/openapi.yaml) against the real yard-master and workers,
over real HTTP (urllib, http.client and raw sockets).

Every test starts its own master on port 0 (web role on 127.0.0.1:0, the bound URL read from
the ready file) in its own temp dir, waits on conditions with deadlines, and ends every process
with SIGTERM, asserting exit code 0."""
import base64
import contextlib
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import time
import urllib.request

import pytest
import yaml

import yardlib
from yardlib import SseStream, raw_http, wait_until

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
README = os.path.join(ROOT, "master", "plugins", "web", "README.md")
OPENAPI = os.path.join(ROOT, "docs", "api", "openapi.yaml")

# Short intervals so that the whole file runs in well under a minute.
FAST = 'sse_interval = "200ms"\nio_timeout = "1s"\nrequest_timeout = "3s"\n'

ADMIN, WRITER, READER, WRITE_ONLY = ("admin-token-0001", "writer-token-001",
                                     "reader-token-001", "writeonly-tok-01")
TOKENS = f"""
[[web.tokens]]
token = "{ADMIN}"
scopes = ["read", "write", "admin"]
name = "ops"

[[web.tokens]]
token = "{WRITER}"
scopes = ["read", "write"]
name = "writer"

[[web.tokens]]
token = "{READER}"
scopes = ["read"]
name = "viewer"

[[web.tokens]]
token = "{WRITE_ONLY}"
scopes = ["write"]
name = "pusher"
"""

FAR = 600_000  # delay_ms that keeps a task queued (scheduled) for the whole test


# --------------------------------------------------------------------------------- helpers

class Api:
    """The REST API of one master: call(method, path, body) -> (status, headers, body)."""

    def __init__(self, url, token=None):
        self.url, self.token = url, token

    def call(self, method, path, body=None, token="default", headers=None, timeout=10):
        tok = self.token if token == "default" else token
        return yardlib.http(method, self.url + path, body, tok, headers, timeout)

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.call("POST", path, body, **kw)

    def delete(self, path, **kw):
        return self.call("DELETE", path, **kw)

    def ok(self, method, path, body=None, status=200, **kw):
        """A call that must answer `status`; returns the body."""
        st, _, b = self.call(method, path, body, **kw)
        assert st == status, f"{method} {path}: {st} {b}"
        return b

    def submit(self, *specs, **kw):
        if len(specs) == 1:
            return [self.ok("POST", "/api/v1/tasks", specs[0], 201, **kw)["id"]]
        ids = self.ok("POST", "/api/v1/tasks", {"tasks": list(specs)}, 201, **kw)["ids"]
        assert len(ids) == len(specs)
        return ids

    def task(self, task_id, **kw):
        return self.ok("GET", f"/api/v1/tasks/{task_id}", **kw)

    def wait_ended(self, *ids, timeout=15, **kw):
        """Waits (with ?wait) until every task has ended; returns their results."""
        out = []
        for i in ids:
            deadline = time.monotonic() + timeout
            while True:
                st, _, b = self.get(f"/api/v1/tasks/{i}/result?wait=5s", **kw)
                if st == 200:
                    out.append(b)
                    break
                assert st == 409, (i, st, b)
                assert time.monotonic() < deadline, f"task {i} did not end"
        return out

    def counters(self, **kw):
        return self.ok("GET", "/api/v1/stats", **kw)["counters"]

    def list_all(self, query="", base="/api/v1/tasks", limit=None, **kw):
        """Every page of a paged list until next_cursor is null; returns the items."""
        items, cursor, pages = [], None, 0
        while True:
            params = [p for p in (query, f"limit={limit}" if limit else "",
                                  f"cursor={cursor}" if cursor else "") if p]
            page = self.ok("GET", base + ("?" + "&".join(params) if params else ""), **kw)
            assert set(page) >= {"tasks", "next_cursor"}, page
            if limit:
                assert len(page["tasks"]) <= limit
            items += page["tasks"]
            cursor = page["next_cursor"]
            pages += 1
            assert pages < 1000, "paging does not end"
            if cursor is None:
                return items
            assert isinstance(cursor, str) and cursor, page


def assert_error(status, headers, body, want_status, codes, names=()):
    """An error response: the status, JSON {"error": {"code", "message"}}, the code one of
    `codes`, and the message naming each of `names`."""
    codes = {codes} if isinstance(codes, str) else set(codes)
    assert status == want_status, (status, body)
    assert "json" in (headers.get("Content-Type") or ""), headers.get("Content-Type")
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), body
    assert body["error"].get("code") in codes, body
    assert isinstance(body["error"].get("message"), str), body
    for n in names:
        assert n in body["error"]["message"], (n, body)


@contextlib.contextmanager
def web(tmp_path, web_config=FAST, *extra, workers=(), embedded=0, token=None):
    """A master with the web role (and workers: named `workers` as processes, or `embedded`
    ones started by the master). Yields (master, Api, [Worker]); stops all with SIGTERM and
    asserts exit code 0."""
    args = list(extra) + ["--memory"] + (["--workers", str(embedded)] if embedded else [])
    master = yardlib.web_master(str(tmp_path), web_config, *args)
    procs = []
    try:
        for name in workers:
            procs.append(yardlib.Worker(str(tmp_path), master.worker_endpoint, name,
                                        "--threads", "4"))
        yield master, Api(master.web_url, token), procs
    finally:
        codes = [w.stop() for w in procs]
        master.stop()
    assert codes == [0] * len(procs), codes
    assert master.exit_code == 0, master.log()[-3000:]


def request_bytes(method, path, headers=(), body=b""):
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    for h in headers:
        head += h + "\r\n"
    return head.encode() + b"\r\n" + body


def host_port(url):
    host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    return host, int(port)


def until_next_second():
    """Sleeps past the next whole Unix second; returns it."""
    t = int(time.time()) + 1
    while time.time() < t + 0.05:
        time.sleep(0.02)
    return t


# ------------------------------------------------------------------------- health, flags

def test_health_ready_and_the_web_flag_over_the_config(tmp_path):
    # The config says a port nobody may bind; --web overrides it (flags over the config).
    conf = tmp_path / "flags.toml"
    conf.write_text('[web]\nlisten = "127.0.0.1:1"\nsse_interval = "200ms"\n')
    master = yardlib.Master(str(tmp_path), "--memory", "--config", str(conf),
                            "--web", "127.0.0.1:0")
    try:
        assert master.web_url and re.fullmatch(r"http://127\.0\.0\.1:\d+", master.web_url)
        assert not master.web_url.endswith(":1")
        st, h, body = yardlib.http("GET", master.web_url + "/healthz")
        assert (st, body.strip()) == (200, "ok")
        assert h["Content-Type"].startswith("text/plain")
        st, h, body = yardlib.http("GET", master.web_url + "/readyz")
        assert (st, body.strip()) == (200, "ready")
        st, h, body = yardlib.http("GET", master.web_url + "/")
        assert st == 200 and h["Content-Type"].startswith("text/html")
    finally:
        master.stop()
    assert master.exit_code == 0

    # `--web` alone switches the role on, with the defaults.
    master = yardlib.Master(str(tmp_path), "--memory", "--web", "127.0.0.1:0")
    try:
        assert yardlib.http("GET", master.web_url + "/healthz")[0] == 200
    finally:
        master.stop()
    assert master.exit_code == 0


def test_config_errors_token_env_and_enabled_false(tmp_path, monkeypatch):
    conf = tmp_path / "bad.toml"
    head = '[web]\nlisten = "127.0.0.1:0"\n'
    for text, name in ((head + "bogus = 1\n", "bogus"),
                       ('[web]\nlisten = "nonsense"\n', "listen"),
                       (head + 'max_body_bytes = "big"\n', "max_body_bytes"),
                       (head + 'io_timeout = "soon"\n', "io_timeout"),
                       (head + 'sse_interval = "0s"\n', "sse_interval"),
                       (head + 'tls_cert_file = "/nonexistent/cert.pem"\n', "tls_"),
                       (head + '[[web.tokens]]\ntoken = "short"\nscopes = ["read"]\n', "token"),
                       (head + '[[web.tokens]]\ntoken = "long-enough-1"\nscopes = ["root"]\n',
                        "scopes"),
                       (head + '[[web.tokens]]\ntoken = "long-enough-1"\nscopes = ["read"]\n'
                        '[[web.tokens]]\ntoken = "long-enough-1"\nscopes = ["admin"]\n', "token"),
                       (head + '[[web.tokens]]\ntoken_env = "YARD_TEST_UNSET_TOKEN"\n'
                        'scopes = ["read"]\n', "YARD_TEST_UNSET_TOKEN")):
        conf.write_text(text)
        r = subprocess.run([os.path.join(yardlib.bin_dir(), "yard-master"), "--memory",
                            "--client-endpoint", "tcp://127.0.0.1:0", "--worker-endpoint",
                            "tcp://127.0.0.1:0", "--config", str(conf)],
                           capture_output=True, text=True, timeout=15)
        assert r.returncode == 2 and name in r.stderr, (text, r.returncode, r.stderr)

    # `enabled = false`: the section is there, the role is not.
    conf.write_text(head + "enabled = false\n")
    with yardlib.Master(str(tmp_path), "--memory", "--config", str(conf)) as master:
        assert master.web_url is None
        master.stop()
    assert master.exit_code == 0

    # token_env: the token comes from the environment.
    monkeypatch.setenv("YARD_TEST_WEB_TOKEN", "from-the-environment")
    with web(tmp_path, FAST + '[[web.tokens]]\ntoken_env = "YARD_TEST_WEB_TOKEN"\n'
             'scopes = ["read"]\n') as (_, api, _w):
        assert api.get("/api/v1/stats", token="from-the-environment")[0] == 200
        assert api.get("/api/v1/stats", token="YARD_TEST_WEB_TOKEN")[0] == 401


def test_tls(tmp_path):
    key, cert = str(tmp_path / "key.pem"), str(tmp_path / "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key,
                    "-out", cert], check=True, capture_output=True, timeout=30)
    with web(tmp_path, FAST + f'tls_cert_file = "{cert}"\ntls_key_file = "{key}"\n' + TOKENS,
             token=READER) as (master, api, _w):
        assert master.web_url.startswith("https://127.0.0.1:"), master.web_url
        ctx = ssl.create_default_context(cafile=cert)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                             urllib.request.HTTPSHandler(context=ctx))
        with opener.open(master.web_url + "/healthz", timeout=5) as r:
            assert r.status == 200 and r.read().strip() == b"ok"
        req = urllib.request.Request(master.web_url + "/api/v1/queue",
                                     headers={"Authorization": f"Bearer {READER}"})
        with opener.open(req, timeout=5) as r:
            assert r.status == 200 and "active" in json.loads(r.read())
        # Plain HTTP on the TLS port gets no HTTP answer.
        plain = "http://" + master.web_url.split("//", 1)[1]
        r = raw_http(plain, request_bytes("GET", "/healthz"), timeout=5)
        assert r is None or r.status != 200


# ----------------------------------------------------------------------------------- tasks

def test_submit_one_and_a_batch_get_with_history_and_result(tmp_path):
    with web(tmp_path, FAST, embedded=1) as (_, api, _w):
        st, h, body = api.post("/api/v1/tasks", {"type": "echo", "payload": "hello",
                                                 "key": "dev-1", "priority": 2})
        assert st == 201 and set(body) == {"id"} and isinstance(body["id"], int), body
        assert "json" in h["Content-Type"]
        one = body["id"]
        st, _, body = api.post("/api/v1/tasks", {"tasks": [
            {"type": "echo", "payload": f"b{i}"} for i in range(3)]})
        assert st == 201 and set(body) == {"ids"}, body
        batch = body["ids"]
        assert len(batch) == 3 and batch == sorted(batch) and batch[0] > one

        [res] = api.wait_ended(one)
        assert res == {"id": one, "state": "succeeded", "result": "hello", "error": ""}
        assert [r["result"] for r in api.wait_ended(*batch)] == ["b0", "b1", "b2"]

        t = api.task(one)
        for field in ("id", "type", "state", "priority", "key", "attempt", "failures",
                      "max_attempts", "timeout_ms", "error", "worker", "submitted_us",
                      "dispatched_us", "finished_us", "result", "history"):
            assert field in t, (field, t)
        assert (t["id"], t["type"], t["state"], t["priority"], t["key"]) == \
            (one, "echo", "succeeded", 2, "dev-1")
        assert t["attempt"] == 1 and t["failures"] == 0 and t["result"] == "hello"
        assert t["submitted_us"] <= t["dispatched_us"] <= t["finished_us"]
        assert "payload" not in t and "payload_base64" not in t
        hist = t["history"]
        assert [e["event"] for e in hist] == ["submitted", "dispatched", "succeeded"], hist
        assert [e["at_us"] for e in hist] == [t["submitted_us"], t["dispatched_us"],
                                              t["finished_us"]]
        assert hist[1]["worker"] == t["worker"] and t["worker"]
        assert hist[1]["attempt"] == 1

        # ?payload=true: the payload of a task that has not ended (the store keeps none of
        # tasks that ended, but of dead letters: docs/architecture.md).
        [waiting] = api.submit({"type": "echo", "payload": "later", "delay_ms": FAR})
        t = api.task(f"{waiting}?payload=true")
        assert t["payload"] == "later" and "history" in t
        assert "payload" not in api.task(waiting)
        assert "payload" not in api.task(f"{waiting}?payload=false")
        api.ok("DELETE", f"/api/v1/tasks/{waiting}")


def test_task_spec_fields_and_payload_encodings(tmp_path):
    with web(tmp_path, FAST, "--retry-backoff", "10ms", embedded=1) as (_, api, _w):
        # Bytes that are not UTF-8 travel as base64 both ways.
        [raw] = api.submit({"type": "echo", "payload_base64": base64.b64encode(
            b"\xff\x00\xfe").decode()})
        # A JSON value that is not a string is sent as its JSON text.
        [js] = api.submit({"type": "echo", "payload": {"a": [1, 2], "b": None}})
        [idem] = api.submit({"type": "echo", "payload": "once", "idempotency_key": "idem-1"})
        st, _, again = api.post("/api/v1/tasks", {"type": "echo", "payload": "once",
                                                  "idempotency_key": "idem-1"})
        assert st == 201 and again == {"id": idem}
        r_raw, r_js, _ = api.wait_ended(raw, js, idem)
        assert r_raw["state"] == "succeeded" and "result" not in r_raw
        assert base64.b64decode(r_raw["result_base64"]) == b"\xff\x00\xfe"
        assert json.loads(r_js["result"]) == {"a": [1, 2], "b": None}
        t = api.task(raw)
        assert base64.b64decode(t["result_base64"]) == b"\xff\x00\xfe" and "result" not in t
        [raw_waiting, js_waiting] = api.submit(
            {"type": "echo", "delay_ms": FAR, "payload_base64": base64.b64encode(
                b"\xff\x00\xfe").decode()},
            {"type": "echo", "delay_ms": FAR, "payload": {"a": [1, 2]}})
        t = api.task(f"{raw_waiting}?payload=true")
        assert base64.b64decode(t["payload_base64"]) == b"\xff\x00\xfe" and "payload" not in t
        assert json.loads(api.task(f"{js_waiting}?payload=true")["payload"]) == {"a": [1, 2]}
        for i in (raw_waiting, js_waiting):
            api.ok("DELETE", f"/api/v1/tasks/{i}")
        assert api.task(idem)["idempotency_key"] == "idem-1"

        # Optional fields appear when set: scheduled tasks, deadlines, requirements.
        later = int(time.time()) + 3600
        day = (int(time.time()) // 86400 + 2) * 86400   # midnight UTC, in two days or so
        iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(day))
        iso2 = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(day + 7200))
        [d1, d2, d3, d4] = api.submit(
            {"type": "echo", "delay_ms": FAR, "deadline_ms": FAR + 60_000},
            {"type": "echo", "not_before": later},
            {"type": "echo", "not_before": iso + "Z", "max_attempts": 7,
             "timeout_ms": 1234, "priority": 0},
            {"type": "echo", "not_before": iso2 + "+02:00", "requires": ["gpu"]})
        t1, t2, t3, t4 = (api.task(i) for i in (d1, d2, d3, d4))
        assert t1["state"] == "queued" and t1["run_after_us"] > time.time() * 1e6
        assert t1["deadline_us"] > t1["run_after_us"]
        assert t2["run_after_us"] == later * 1_000_000
        assert t3["run_after_us"] == day * 1_000_000 and t4["run_after_us"] == day * 1_000_000
        assert (t3["max_attempts"], t3["timeout_ms"], t3["priority"]) == (7, 1234, 0)
        assert t4["requirements"] == ["gpu"]
        assert "run_after_us" not in api.task(js) and "requirements" not in api.task(js)
        # The history of a task that has not run yet: submitted, then when it may run.
        for t in (t1, t2):
            assert [e["event"] for e in t["history"]] == ["submitted", "scheduled"], t
            assert t["history"][1]["at_us"] == t["run_after_us"], t
        for i in (d1, d2, d3, d4):
            api.ok("DELETE", f"/api/v1/tasks/{i}")

        # A task retried after a failure says so in its dispatched event and failures.
        [retried] = api.submit({"type": "fail", "payload": "again", "max_attempts": 2})
        [res] = api.wait_ended(retried)
        assert res["state"] == "dead" and res["error"], res
        t = api.task(retried)
        assert t["failures"] == 2 and t["attempt"] == 2
        disp = [e for e in t["history"] if e["event"] == "dispatched"]
        assert len(disp) == 1 and disp[0]["attempt"] == 2
        assert t["history"][-1]["event"] == "dead" and t["history"][-1]["error"] == t["error"]
        # A permanent failure ends as failed.
        [perm] = api.submit({"type": "fail", "payload": "permanent", "max_attempts": 3})
        [res] = api.wait_ended(perm)
        assert res["state"] == "failed" and "failed on purpose" in res["error"]
        assert api.task(perm)["history"][-1]["event"] == "failed"


def test_result_wait_conflict_and_cancel(tmp_path):
    with web(tmp_path, FAST, embedded=1) as (_, api, _w):
        [queued] = api.submit({"type": "echo", "delay_ms": FAR})
        st, h, body = api.get(f"/api/v1/tasks/{queued}/result")
        assert_error(st, h, body, 409, "conflict")
        t0 = time.monotonic()
        st, h, body = api.get(f"/api/v1/tasks/{queued}/result?wait=300ms")
        assert_error(st, h, body, 409, "conflict")
        assert 0.25 <= time.monotonic() - t0 < 3

        # ?wait returns as soon as the task ends, not at the end of the wait.
        [slow] = api.submit({"type": "sleep", "payload": "300"})
        t0 = time.monotonic()
        st, _, body = api.get(f"/api/v1/tasks/{slow}/result?wait=10s")
        assert st == 200 and body["state"] == "succeeded" and body["result"] == "300", body
        assert time.monotonic() - t0 < 5
        for bad in ("61s", "forever", "-1s"):
            st, h, body = api.get(f"/api/v1/tasks/{slow}/result?wait={bad}")
            assert_error(st, h, body, 400, "bad_query", ["wait"])

        # Cancel a queued task, then a running one.
        st, _, body = api.delete(f"/api/v1/tasks/{queued}")
        assert st == 200 and body == {"id": queued, "state": "cancelled"}, body
        [running] = api.submit({"type": "sleep", "payload": "20000"})
        wait_until(lambda: api.task(running)["state"] == "dispatched", 10, "the sleep running")
        st, _, body = api.delete(f"/api/v1/tasks/{running}")
        assert st == 200 and body == {"id": running, "state": "cancelled"}, body
        for i in (queued, running):
            assert api.get(f"/api/v1/tasks/{i}/result")[2]["state"] == "cancelled"
            assert api.task(i)["history"][-1]["event"] == "cancelled"

        # Cancelling what has ended: 409, and the body gives its state.
        for i, state in ((queued, "cancelled"), (slow, "succeeded")):
            st, h, body = api.delete(f"/api/v1/tasks/{i}")
            assert_error(st, h, body, 409, "conflict")
            assert state in body["error"]["message"] or state in (
                body.get("state"), body["error"].get("state")), body
        assert api.task(slow)["state"] == "succeeded"


def test_list_filters_and_paging(tmp_path):
    with web(tmp_path, FAST, "--retry-backoff", "10ms", embedded=1) as (_, api, _w):
        ok_k1 = api.submit(*[{"type": "echo", "key": "k1", "payload": str(i)} for i in range(3)])
        ok_k2 = api.submit(*[{"type": "echo", "key": "k2"} for _ in range(2)])
        [failed] = api.submit({"type": "fail", "payload": "permanent"})
        [dead] = api.submit({"type": "fail", "payload": "x", "max_attempts": 1})
        [expired] = api.submit({"type": "echo", "requires": ["nobody-has-this"],
                                "deadline_ms": 50})
        [queued, cancelled] = api.submit({"type": "echo", "delay_ms": FAR},
                                         {"type": "echo", "delay_ms": FAR})
        api.ok("DELETE", f"/api/v1/tasks/{cancelled}")
        [running] = api.submit({"type": "sleep", "payload": "30000"})
        job = api.ok("POST", "/api/v1/jobs", {"type": "echo", "split": "range:1..4",
                                              "aggregate": "sum"}, 201)
        api.wait_ended(*ok_k1, *ok_k2, failed, dead, expired)
        wait_until(lambda: api.task(running)["state"] == "dispatched", 10, "the sleep running")
        parts = list(range(job["first_task_id"], job["first_task_id"] + job["parts"]))
        api.wait_ended(*parts)
        everything = api.list_all()
        ids = [t["id"] for t in everything]
        assert ids == sorted(ids) and len(ids) == len(set(ids))  # id order, oldest first
        assert set(ids) == set(ok_k1 + ok_k2 + parts + [failed, dead, expired, queued,
                                                         cancelled, running])

        def listed(query):
            return [t["id"] for t in api.list_all(query)]
        assert listed("state=failed") == [failed]
        assert listed("state=dead") == [dead]
        assert listed("state=expired") == [expired]
        assert listed("state=queued") == [queued]
        assert listed("state=cancelled") == [cancelled]
        assert listed("state=dispatched") == [running]
        assert listed("state=succeeded") == sorted(ok_k1 + ok_k2 + parts)
        assert all(t["state"] == "succeeded" for t in api.list_all("state=succeeded"))
        assert listed("type=fail") == [failed, dead]
        assert listed("type=sleep") == [running]
        assert listed("key=k1") == ok_k1
        assert listed("key=k2&state=succeeded") == ok_k2
        assert listed("type=echo&key=k1&state=failed") == []
        by_job = api.list_all(f"job={job['job_id']}")
        assert [t["id"] for t in by_job] == parts
        assert all(t["job_id"] == job["job_id"] for t in by_job)
        assert sorted(t["part"] for t in by_job) == list(range(len(parts)))

        # Paging: every page at most `limit`, all pages together are the whole list.
        for limit in (1, 2, 3, 1000):
            assert [t["id"] for t in api.list_all(limit=limit)] == ids
        assert [t["id"] for t in api.list_all("type=echo", limit=2)] == listed("type=echo")
        page = api.ok("GET", "/api/v1/tasks?limit=2")
        assert len(page["tasks"]) == 2 and page["next_cursor"] is not None
        page = api.ok("GET", "/api/v1/tasks?limit=1000")
        assert page["next_cursor"] is None and len(page["tasks"]) == len(ids)

        # since / until: submit time, Unix seconds or ISO-8601 with a zone.
        cut = until_next_second()
        after = api.submit({"type": "echo", "key": "late"}, {"type": "echo", "key": "late"})
        api.wait_ended(*after)
        iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(cut))
        iso_plus2 = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(cut + 7200)) + "%2B02:00"
        for since in (str(cut), iso, iso_plus2):
            assert listed(f"since={since}") == after, since
            assert listed(f"until={since}") == ids, since
        assert listed(f"since={cut - 3600}&until={cut}&key=k1") == ok_k1
        assert listed("since=2000-01-01T00:00:00Z") == ids + after
        assert listed("until=2000-01-01T00:00:00Z") == []
        api.ok("DELETE", f"/api/v1/tasks/{running}")

        # Wrong query parameters: 400 bad_query naming the parameter.
        for query, name in (("state=bogus", "state"), ("limit=0", "limit"),
                            ("limit=1001", "limit"), ("limit=ten", "limit"),
                            ("cursor=xyz", "cursor"), ("job=abc", "job"),
                            ("since=yesterday", "since"), ("until=12:00", "until"),
                            ("since=2026-01-01T00:00:00", "since")):
            st, h, body = api.get("/api/v1/tasks?" + query)
            assert_error(st, h, body, 400, "bad_query", [name])


# ------------------------------------------------------------------------------------ jobs

def test_jobs_submit_get_tasks_and_cancel(tmp_path):
    with web(tmp_path, FAST, embedded=1) as (_, api, _w):
        st, _, job = api.post("/api/v1/jobs", {"type": "echo", "split": "range:1..10",
                                               "aggregate": "sum"})
        assert st == 201 and set(job) == {"job_id", "parts", "first_task_id"}, job
        assert job["parts"] == 10
        jid = job["job_id"]
        wait_until(lambda: api.ok("GET", f"/api/v1/jobs/{jid}")["state"] == "succeeded", 15,
                   "the job succeeded")
        j = api.ok("GET", f"/api/v1/jobs/{jid}")
        for field in ("id", "type", "state", "policy", "split", "aggregate", "parts",
                      "first_task_id", "progress", "error", "failures", "submitted_us",
                      "finished_us", "result"):
            assert field in j, (field, j)
        assert (j["id"], j["type"], j["split"], j["aggregate"], j["parts"]) == \
            (jid, "echo", "range:1..10", "sum", 10)
        assert j["policy"] == "fail-fast" and j["result"] == "55"
        assert j["progress"] == {"queued": 0, "running": 0, "succeeded": 10, "failed": 0,
                                 "cancelled": 0}
        assert j["finished_us"] >= j["submitted_us"] > 0
        j = api.ok("GET", f"/api/v1/jobs/{jid}?result=false")
        assert "result" not in j and j["state"] == "succeeded"

        parts = api.list_all(base=f"/api/v1/jobs/{jid}/tasks", limit=3)
        assert [t["id"] for t in parts] == list(range(job["first_task_id"],
                                                       job["first_task_id"] + 10))
        assert [t["part"] for t in parts] == list(range(10))
        assert all(t["job_id"] == jid and t["state"] == "succeeded" for t in parts)
        assert [api.task(t["id"])["result"] for t in parts] == [str(i) for i in range(1, 11)]

        st, h, body = api.delete(f"/api/v1/jobs/{jid}")
        assert_error(st, h, body, 409, "conflict")

        # A job whose parts wait: cancelled, with its parts.
        st, _, job2 = api.post("/api/v1/jobs", {"type": "echo", "payload": "a\nb\nc\n",
                                                "split": "lines:1", "delay_ms": FAR,
                                                "policy": "continue", "aggregate": "concat"})
        assert st == 201 and job2["parts"] == 3, job2
        j = api.ok("GET", f"/api/v1/jobs/{job2['job_id']}")
        assert j["state"] == "running" and j["policy"] == "continue"
        assert j["progress"]["queued"] == 3
        st, _, j = api.delete(f"/api/v1/jobs/{job2['job_id']}")
        assert st == 200 and j["id"] == job2["job_id"] and j["state"] == "cancelled", j
        wait_until(lambda: all(t["state"] == "cancelled" for t in api.list_all(
            base=f"/api/v1/jobs/{job2['job_id']}/tasks")), 10, "the parts cancelled")
        st, h, body = api.delete(f"/api/v1/jobs/{job2['job_id']}")
        assert_error(st, h, body, 409, "conflict")

        for method, path in (("GET", "/api/v1/jobs/999999"),
                             ("DELETE", "/api/v1/jobs/999999")):
            st, h, body = api.call(method, path)
            assert_error(st, h, body, 404, "not_found")
        st, h, body = api.get("/api/v1/jobs/999999/tasks")
        assert_error(st, h, body, 404, "not_found")
        for spec, name in (({"type": "echo"}, "split"),
                           ({"type": "echo", "split": "words:3"}, "split"),
                           ({"type": "echo", "split": "lines:1", "policy": "maybe"}, "policy"),
                           ({"type": "echo", "split": "lines:1", "idempotency_key": "x"},
                            "idempotency_key"),
                           ({"split": "lines:1"}, "type")):
            st, h, body = api.post("/api/v1/jobs", spec)
            assert_error(st, h, body, 400, "bad_field", [name])


# ----------------------------------------------------------------- workers, stats, queue

def test_workers_with_health_and_stats(tmp_path):
    with web(tmp_path, FAST, "--heartbeat", "200ms", "--liveness", "50",
             workers=["w1"]) as (_, api, workers):
        def one_worker():
            ws = api.ok("GET", "/api/v1/workers")["workers"]
            return len(ws) == 1 and ws[0]["health"] == "ok"
        wait_until(one_worker, 15, "the worker listed as ok")
        ids = api.submit(*[{"type": "echo", "payload": str(i)} for i in range(5)])
        api.wait_ended(*ids)
        [w] = api.ok("GET", "/api/v1/workers")["workers"]
        for field in ("id", "host", "pid", "handlers", "slots", "credit", "inflight",
                      "completed", "failed", "connected_us", "last_seen_ms", "health",
                      "rate_per_s"):
            assert field in w, (field, w)
        assert w["id"] == "w1" and w["host"] and w["pid"] > 0
        assert {"echo", "sleep", "fail", "cpu"} <= set(w["handlers"])
        assert w["slots"] == 4 and w["inflight"] == 0 and w["completed"] == 5
        assert w["failed"] == 0 and w["connected_us"] > 0 and w["last_seen_ms"] >= 0
        assert w["health"] == "ok"
        assert w["rate_per_s"] is None or isinstance(w["rate_per_s"], (int, float))
        # Once sampled twice, the rate is a number.
        wait_until(lambda: isinstance(api.ok("GET", "/api/v1/workers")["workers"][0]
                                      ["rate_per_s"], (int, float)), 5, "a worker rate")

        c = api.counters()
        assert c["tasks.submitted"] == 5 and c["tasks.succeeded"] == 5
        assert all(isinstance(v, (int, float)) for v in c.values())

        # A worker that goes quiet: late after two heartbeats (200ms), silent after four.
        workers[0].proc.send_signal(signal.SIGSTOP)
        try:
            seen = []

            def health():
                [w] = api.ok("GET", "/api/v1/workers")["workers"]
                if not seen or seen[-1][0] != w["health"]:
                    seen.append((w["health"], w["last_seen_ms"]))
                return w["health"] == "silent"
            try:
                wait_until(health, 2.5, "the stopped worker silent")
            except AssertionError:
                pass
            assert [h for h, _ in seen] == ["ok", "late", "silent"], seen
            for h, last_seen in seen:
                assert h != "late" or 400 <= last_seen <= 4000, seen
        finally:
            workers[0].proc.send_signal(signal.SIGCONT)
        wait_until(lambda: api.ok("GET", "/api/v1/workers")["workers"][0]["health"] == "ok", 5,
                   "the worker ok again")


def test_core_refusals_are_bad_fields_naming_the_field(tmp_path):
    """What the core refuses (its limits) is 400 bad_field too. The plugin's own checks name
    the API's field; checks only the core makes come with the core's message (README)."""
    far = int(time.time()) + 400 * 86400
    with web(tmp_path, FAST, "--max-payload-bytes", "100", "--max-job-tasks", "5") as (_, api,
                                                                                       _w):
        for path, body, name in (
                ("/api/v1/tasks", {"type": "echo", "payload": "x" * 200}, "payload"),
                ("/api/v1/tasks", {"tasks": [{"type": "echo"},
                                             {"type": "echo", "payload": "x" * 200}]}, "payload"),
                ("/api/v1/tasks", {"type": "x" * 300}, "type"),
                ("/api/v1/tasks", {"type": "echo", "key": "k" * 1000}, "key"),
                ("/api/v1/tasks", {"type": "echo", "deadline_ms": 1, "delay_ms": 10}, "deadline"),
                ("/api/v1/jobs", {"type": "echo", "split": "range:9..1"}, "split"),
                ("/api/v1/jobs", {"type": "echo", "split": "lines:1"}, "payload"),
                ("/api/v1/tasks", {"type": "echo", "not_before": far}, "not_before"),
                ("/api/v1/jobs", {"type": "echo", "split": "range:1..10"}, "split"),
                ("/api/v1/jobs", {"type": "echo", "split": "lines:1", "payload": "a",
                                  "aggregate": "nope"}, "aggregate")):
            st, h, b = api.post(path, body)
            assert_error(st, h, b, 400, "bad_field")
            msg = b["error"]["message"]
            core_words = {"not_before": "not-before", "aggregate": "aggregator"}
            if name == "split" and "10" in str(body):
                assert "--max-job-tasks" in msg, msg
            else:
                assert core_words.get(name, name) in msg, (name, msg)
        assert api.ok("GET", "/api/v1/tasks") == {"tasks": [], "next_cursor": None}


def test_queue_depth_by_priority_and_type(tmp_path):
    with web(tmp_path, FAST) as (_, api, _w):   # no worker: everything waits
        def nonzero(d):
            return {k: v for k, v in d.items() if v}
        q = api.ok("GET", "/api/v1/queue")
        assert set(q) >= {"queued", "ready", "running", "scheduled", "active", "by_priority",
                          "by_type"}, q
        assert [q[k] for k in ("queued", "ready", "running", "scheduled", "active")] == \
            [0] * 5, q
        assert nonzero(q["by_priority"]) == {} and nonzero(q["by_type"]) == {}, q
        api.submit(*[{"type": "echo", "priority": 2} for _ in range(3)],
                   {"type": "sleep", "priority": 7, "payload": "1"},
                   {"type": "sleep", "priority": 7, "payload": "1"})
        api.submit({"type": "cpu", "delay_ms": FAR, "priority": 7})
        q = api.ok("GET", "/api/v1/queue")
        assert (q["ready"], q["running"], q["scheduled"]) == (5, 0, 1), q
        assert q["queued"] == 6 and q["active"] == 6, q
        by_priority = nonzero(q["by_priority"])
        assert by_priority.get("2") == 3 and by_priority.get("7") in (2, 3), q
        assert set(by_priority) == {"2", "7"}, q
        assert nonzero(q["by_type"]) == {"echo": 3, "sleep": 2, "cpu": 1}, q


def test_queue_full_is_429_with_retry_after(tmp_path):
    # 429 for all three operations that list it in the openapi file (submit, job, requeue).
    with web(tmp_path, FAST, "--max-queued", "2", "--retry-backoff", "10ms",
             embedded=1) as (_, api, _w):
        [dead] = api.submit({"type": "fail", "payload": "x", "max_attempts": 1})
        api.wait_ended(dead)
        api.submit({"type": "echo", "delay_ms": FAR}, {"type": "echo", "delay_ms": FAR})
        for method, path, body in (
                ("POST", "/api/v1/tasks", {"type": "echo"}),
                ("POST", "/api/v1/tasks", {"tasks": [{"type": "echo"}]}),
                ("POST", "/api/v1/jobs", {"type": "echo", "split": "range:1..2"}),
                ("POST", f"/api/v1/dead/{dead}/requeue", None),
                ("POST", "/api/v1/dead/requeue", {"all": True})):
            st, h, b = api.call(method, path, body)
            assert_error(st, h, b, 429, "queue_full")
            assert h["Retry-After"] == "1", dict(h)
        assert api.ok("GET", "/api/v1/queue")["active"] == 2
        assert api.counters().get("web.rejected.queue_full", 0) == 5


# ---------------------------------------------------------------------------- dead letters

def test_dead_letters_list_show_requeue_and_purge(tmp_path):
    with web(tmp_path, FAST, "--retry-backoff", "10ms", embedded=1) as (_, api, _w):
        dead = api.submit(*[{"type": "fail", "payload": f"x{i}", "max_attempts": 1}
                            for i in range(5)])
        [ok] = api.submit({"type": "echo"})
        api.wait_ended(*dead, ok)
        assert [t["id"] for t in api.list_all(base="/api/v1/dead")] == dead
        assert [t["id"] for t in api.list_all(base="/api/v1/dead", limit=2)] == dead
        assert all(t["state"] == "dead" for t in api.list_all(base="/api/v1/dead"))

        d = api.ok("GET", f"/api/v1/dead/{dead[0]}")
        assert d["id"] == dead[0] and d["state"] == "dead" and d["error"]
        assert d["history"][-1]["event"] == "dead"
        for path in (f"/api/v1/dead/{ok}", "/api/v1/dead/999999"):
            st, h, body = api.get(path)
            assert_error(st, h, body, 404, "not_found")

        def dispatched(i):
            return api.task(i)["dispatched_us"]

        def all_dead_again(ids, before):
            return all(api.task(i)["state"] == "dead" and dispatched(i) > before[i]
                       for i in ids)
        before = {i: dispatched(i) for i in dead}
        # One, by id: it runs again (and fails again).
        assert api.ok("POST", f"/api/v1/dead/{dead[0]}/requeue") == {"count": 1}
        wait_until(lambda: all_dead_again(dead[:1], before), 15, "the requeued task ran")
        # Several by id, then all.
        assert api.ok("POST", "/api/v1/dead/requeue", {"ids": dead[1:3]}) == {"count": 2}
        wait_until(lambda: all_dead_again(dead[:3], before), 15, "the requeued tasks ran")
        before = {i: dispatched(i) for i in dead}
        assert api.ok("POST", "/api/v1/dead/requeue", {"all": True}) == {"count": 5}
        wait_until(lambda: all_dead_again(dead, before), 15, "all requeued tasks ran")

        for method, path, body in (("POST", f"/api/v1/dead/{ok}/requeue", None),
                                   ("POST", "/api/v1/dead/999999/requeue", None),
                                   ("DELETE", f"/api/v1/dead/{ok}", None),
                                   ("DELETE", "/api/v1/dead/999999", None)):
            st, h, b = api.call(method, path, body)
            assert_error(st, h, b, 404, "not_found")
        for path, body, code in (("/api/v1/dead/requeue", {}, "bad_field"),
                                 ("/api/v1/dead/requeue", {"ids": "x"}, "bad_field"),
                                 ("/api/v1/dead/requeue", {"ids": [1], "all": True},
                                  "bad_field"),
                                 ("/api/v1/dead/purge", {"all": "yes"}, "bad_field"),
                                 ("/api/v1/dead/purge", {"what": 1}, "bad_field"),
                                 ("/api/v1/dead/purge", b"[1, 2]", "bad_json"),
                                 ("/api/v1/dead/requeue", b"all", "bad_json")):
            st, h, b = api.post(path, body)
            assert_error(st, h, b, 400, code)

        # Forget one, then one by id, then all.
        assert api.ok("DELETE", f"/api/v1/dead/{dead[0]}") == {"count": 1}
        st, h, body = api.get(f"/api/v1/dead/{dead[0]}")
        assert_error(st, h, body, 404, "not_found")
        assert api.ok("POST", "/api/v1/dead/purge", {"ids": [dead[1]]}) == {"count": 1}
        assert [t["id"] for t in api.list_all(base="/api/v1/dead")] == dead[2:]
        assert api.ok("POST", "/api/v1/dead/purge", {"all": True}) == {"count": 3}
        assert api.ok("GET", "/api/v1/dead") == {"tasks": [], "next_cursor": None}
        assert api.ok("POST", "/api/v1/dead/purge", {"all": True}) == {"count": 0}
        assert api.task(ok)["state"] == "succeeded"


# ------------------------------------------------------------------------------- devices

def test_device_tasks_newest_first(tmp_path):
    with web(tmp_path, FAST, embedded=1) as (_, api, _w):
        mine = api.submit(*[{"type": "echo", "key": "dev-7", "payload": str(i)}
                            for i in range(5)])
        api.submit({"type": "echo", "key": "dev-8"}, {"type": "echo", "key": "dev-70"})
        many = api.submit(*[{"type": "echo", "key": "dev-9"} for _ in range(25)])
        api.wait_ended(*mine, many[-1])
        d = api.ok("GET", "/api/v1/devices/dev-7/tasks")
        assert d["device"] == "dev-7" and d["complete"] is True, d
        assert [t["id"] for t in d["tasks"]] == mine[::-1]
        assert all(t["key"] == "dev-7" for t in d["tasks"])
        d = api.ok("GET", "/api/v1/devices/dev-7/tasks?limit=2")
        assert [t["id"] for t in d["tasks"]] == mine[::-1][:2]
        d = api.ok("GET", "/api/v1/devices/dev-9/tasks")   # default limit 20
        assert [t["id"] for t in d["tasks"]] == many[::-1][:20]
        d = api.ok("GET", "/api/v1/devices/dev-9/tasks?limit=200")
        assert [t["id"] for t in d["tasks"]] == many[::-1]
        d = api.ok("GET", "/api/v1/devices/nobody/tasks")
        assert d == {"device": "nobody", "tasks": [], "complete": True}
        for q in ("limit=0", "limit=201", "limit=x"):
            st, h, body = api.get("/api/v1/devices/dev-7/tasks?" + q)
            assert_error(st, h, body, 400, "bad_query", ["limit"])


# ------------------------------------------------------------------------------ live events

SNAPSHOT_KEYS = {"t_us", "counters", "rates", "latency_ms", "queue", "workers", "jobs",
                 "failures", "dead"}


def test_events_stream_snapshots(tmp_path):
    with web(tmp_path, 'sse_interval = "1s"\n', "--retry-backoff", "10ms",
             embedded=1) as (_, api, _w):
        ok = api.submit(*[{"type": "echo"} for _ in range(3)])
        [dead] = api.submit({"type": "fail", "payload": "x", "max_attempts": 1})
        job = api.ok("POST", "/api/v1/jobs", {"type": "echo", "split": "range:1..2",
                                              "delay_ms": FAR}, 201)
        api.wait_ended(*ok, dead)
        t0 = time.monotonic()
        with SseStream(api.url) as s:
            assert s.status == 200
            assert s.headers["Content-Type"].startswith("text/event-stream")
            event, data = s.next_event()
            first = time.monotonic() - t0
            assert first < 0.9, f"the first snapshot came after {first:.2f}s, not at once"
            assert event == "snapshot"
            snaps = [json.loads(data)]
            while not (snaps[-1]["counters"].get("tasks.succeeded") == 3 and len(snaps) >= 2):
                assert len(snaps) < 6, snaps[-1]["counters"]
                event, data = s.next_event()
                assert event == "snapshot"
                snaps.append(json.loads(data))
        snap = snaps[-1]
        assert set(snap) >= SNAPSHOT_KEYS, sorted(snap)
        assert snap["t_us"] > snaps[0]["t_us"] > 1_600_000_000_000_000
        assert set(snap["rates"]) >= {"submitted", "succeeded", "failed", "dead"}
        assert all(isinstance(v, (int, float)) for v in snap["rates"].values())
        assert set(snap["latency_ms"]) >= {"p50", "p90", "p99", "count"}
        assert set(snap["queue"]) >= {"queued", "ready", "running", "scheduled", "active",
                                      "by_priority", "by_type"}
        assert snap["queue"]["scheduled"] == 2
        [w] = snap["workers"]
        assert {"id", "health", "rate_per_s", "completed"} <= set(w) and w["health"] == "ok"
        assert [j["id"] for j in snap["jobs"]] == [job["job_id"]]
        assert "result" not in snap["jobs"][0] and snap["jobs"][0]["state"] == "running"
        assert [t["id"] for t in snap["failures"]] == [dead]
        assert snap["failures"][0]["state"] == "dead"
        assert snap["dead"] == 1
        assert snap["counters"]["tasks.submitted"] >= 4


def test_too_many_sse_clients_get_503(tmp_path):
    with web(tmp_path, 'sse_interval = "200ms"\nmax_sse_clients = 2\n') as (_, api, _w):
        streams = [SseStream(api.url), SseStream(api.url)]
        try:
            for s in streams:
                assert s.status == 200 and s.next_event()[0] == "snapshot"
            # One snapshot every sse_interval (200ms).
            times = []
            for _ in range(4):
                assert streams[0].next_event()[0] == "snapshot"
                times.append(time.monotonic())
            gaps = [b - a for a, b in zip(times, times[1:])]
            assert all(0.1 < g < 0.8 for g in gaps), gaps
            for _ in range(2):
                st, h, body = api.get("/api/v1/events")
                assert_error(st, h, body, 503, "unavailable")
                assert h["Retry-After"] == "5"
            # Other requests are still served.
            assert api.get("/api/v1/stats")[0] == 200
            # A stream that closes frees its place.
            streams.pop(0).close()

            def third_opens():
                s = SseStream(api.url)
                if s.status == 200:
                    streams.append(s)
                    return True
                assert s.status == 503, s.status
                s.close()
                time.sleep(0.1)
                return False
            wait_until(third_opens, 10, "a new stream once one closed")
            assert streams[-1].next_event()[0] == "snapshot"
            assert api.counters().get("web.rejected.unavailable", 0) >= 2
        finally:
            for s in streams:
                s.close()


# --------------------------------------------------------------------------------- metrics

LABELS = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"'
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:' + LABELS + r'(?:,' + LABELS +
                    r')*,?)?\})? (\S+)(?: -?\d+)?$')


def parse_metrics(text):
    """Prometheus text format 0.0.4, every line checked: {(name, ((label, value), ...)):
    value} and {family: type}."""
    samples, types = {}, {}
    for line in text.split("\n"):
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            assert len(parts) >= 3 and parts[1] in ("HELP", "TYPE"), line
            if parts[1] == "TYPE":
                assert parts[3] in ("counter", "gauge", "histogram", "summary", "untyped"), line
                assert parts[2] not in types, f"two TYPE lines for {parts[2]}"
                types[parts[2]] = parts[3]
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = tuple(sorted(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"',
                                         m.group(2) or "")))
        key = (m.group(1), labels)
        assert key not in samples, f"a sample twice: {line}"
        samples[key] = float(m.group(3))
    for name, _ in samples:
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in types or types.get(family) in ("histogram", "summary"), \
            f"{name} has no TYPE line"
    return samples, types


def sample(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def check_histogram(samples, types, name):
    assert types.get(name) == "histogram", (name, types.get(name))
    series = {}
    for (n, labels), v in samples.items():
        if n == name + "_bucket":
            rest = tuple(kv for kv in labels if kv[0] != "le")
            le = dict(labels)["le"]
            series.setdefault(rest, []).append((float(le), v))
    assert series, f"no buckets of {name}"
    for rest, buckets in series.items():
        buckets.sort()
        assert buckets[-1][0] == float("inf"), buckets
        counts = [v for _, v in buckets]
        assert counts == sorted(counts), f"{name}{rest}: buckets not cumulative"
        assert samples[(name + "_count", rest)] == counts[-1]
        assert (name + "_sum", rest) in samples
    return series


def test_metrics(tmp_path):
    n = 7
    with web(tmp_path, FAST, "--retry-backoff", "10ms", embedded=1) as (_, api, _w):
        ids = api.submit(*[{"type": "echo", "payload": str(i)} for i in range(n)])
        [dead] = api.submit({"type": "fail", "payload": "x", "max_attempts": 2})  # 1 retry
        [queued] = api.submit({"type": "sleep", "priority": 3, "payload": "1",
                               "requires": ["nobody-has-this"]})
        api.wait_ended(*ids, dead)
        assert api.post("/api/v1/tasks", {"type": 1})[0] == 400   # a rejection
        assert api.get("/api/v1/tasks/999999")[0] == 404
        counters = api.counters()
        got = {}

        def scraped():
            # yard_dead_letters is a gauge of the sampler (every sse_interval): it may lag.
            st, h, text = api.get("/metrics")
            assert st == 200, text
            assert h["Content-Type"].startswith("text/plain"), h["Content-Type"]
            assert "version=0.0.4" in h["Content-Type"], h["Content-Type"]
            got["samples"], got["types"] = parse_metrics(text)
            return sample(got["samples"], "yard_dead_letters") == 1
        wait_until(scraped, 5, "yard_dead_letters 1")
        samples, types = got["samples"], got["types"]

        assert sample(samples, "yard_tasks_total", state="succeeded") == n
        assert sample(samples, "yard_tasks_total", state="dead") == 1
        assert types["yard_tasks_total"] == "counter"
        assert sample(samples, "yard_tasks_by_type_total", type="echo", state="succeeded") == n
        assert sample(samples, "yard_tasks_by_type_total", type="fail", state="dead") == 1
        assert sample(samples, "yard_queue_depth", priority="3") == 1
        assert sample(samples, "yard_tasks_active", type="sleep") == 1
        assert types["yard_queue_depth"] == "gauge"
        assert any(k[0] == "yard_worker_inflight" and dict(k[1]).get("worker")
                   for k in samples), "no yard_worker_inflight{worker=...}"
        assert sample(samples, "yard_retries_total") == 1
        assert types["yard_retries_total"] == "counter"
        assert sample(samples, "yard_rejected_total", source="web", reason="bad_field") == 1
        latency = check_histogram(samples, types, "yard_task_latency_seconds")
        assert sum(b[-1][1] for b in latency.values()) >= n

        http_reqs = [dict(k[1]) for k in samples if k[0] == "yard_http_requests_total"]
        assert types.get("yard_http_requests_total") == "counter"
        assert all({"route", "status"} <= set(l) for l in http_reqs), http_reqs
        assert {"200", "201", "404"} <= {l["status"] for l in http_reqs}, http_reqs
        assert any("/api/v1/tasks" in l["route"] for l in http_reqs), http_reqs
        submits = sum(v for k, v in samples.items() if k[0] == "yard_http_requests_total" and
                      dict(k[1])["status"] == "201")
        assert submits == 3
        check_histogram(samples, types, "yard_http_request_duration_seconds")
        # Every other core and plugin counter as yard_<name> (dots become underscores).
        names = {k[0] for k in samples} | set(types)
        for name in counters:
            if name.startswith(("tasks.", "task_latency_us.", "rejected.", "web.rejected.")):
                continue   # yard_tasks_total{state=...}, yard_rejected_total{reason=...}, ...
            m = "yard_" + re.sub(r"[^a-zA-Z0-9_]", "_", name)
            assert m in names or m + "_total" in names, f"{name}: no {m} in /metrics"
        api.ok("DELETE", f"/api/v1/tasks/{queued}")


# ------------------------------------------------------------------------------------ auth

def test_auth_scopes_access_token_and_refusal_counters(tmp_path):
    with web(tmp_path, FAST + TOKENS, embedded=1) as (_, api, _w):
        refused = {"missing": 0, "unknown": 0, "scope": 0}

        def expect(method, path, token, status, body=None):
            st, h, b = api.call(method, path, body, token=token)
            if status == 401:
                assert_error(st, h, b, 401, "unauthorized")
                assert h["WWW-Authenticate"].startswith("Bearer"), dict(h)
                refused["missing" if token is None else "unknown"] += 1
            elif status == 403:
                assert_error(st, h, b, 403, "forbidden")
                refused["scope"] += 1
            else:
                assert st == status, (method, path, token, st, b)
            return b

        [done] = api.submit({"type": "echo", "payload": "x"}, token=WRITER)
        api.wait_ended(done, token=READER)
        reads = ["/api/v1/tasks", f"/api/v1/tasks/{done}", f"/api/v1/tasks/{done}/result",
                 "/api/v1/workers", "/api/v1/stats", "/api/v1/queue", "/api/v1/dead",
                 "/api/v1/devices/d1/tasks", "/metrics"]
        for path in reads:
            expect("GET", path, None, 401)
            expect("GET", path, "not-a-known-token", 401)
            expect("GET", path, WRITE_ONLY, 403)
            for tok in (READER, WRITER, ADMIN):
                expect("GET", path, tok, 200)

        spec = {"type": "echo", "delay_ms": FAR}
        expect("POST", "/api/v1/tasks", None, 401, spec)
        expect("POST", "/api/v1/tasks", READER, 403, spec)
        expect("POST", "/api/v1/jobs", READER, 403, {"type": "echo", "split": "range:1..2"})
        [q] = [expect("POST", "/api/v1/tasks", WRITE_ONLY, 201, spec)["id"]]
        expect("DELETE", f"/api/v1/tasks/{q}", READER, 403)
        assert api.task(q, token=READER)["state"] == "queued"
        expect("DELETE", f"/api/v1/tasks/{q}", WRITER, 200)
        job = expect("POST", "/api/v1/jobs", WRITER, 201, {"type": "echo", "split": "range:1..2",
                                                            "delay_ms": FAR})
        expect("DELETE", f"/api/v1/jobs/{job['job_id']}", READER, 403)
        expect("DELETE", f"/api/v1/jobs/{job['job_id']}", WRITER, 200)

        for method, path, body in (("POST", "/api/v1/dead/purge", {"all": True}),
                                   ("POST", "/api/v1/dead/requeue", {"all": True}),
                                   ("POST", "/api/v1/dead/1/requeue", None),
                                   ("DELETE", "/api/v1/dead/1", None)):
            expect(method, path, WRITER, 403, body)
            expect(method, path, READER, 403, body)
            expect(method, path, None, 401, body)
        assert expect("POST", "/api/v1/dead/purge", ADMIN, 200, {"all": True}) == {"count": 0}
        assert expect("POST", "/api/v1/dead/requeue", ADMIN, 200, {"all": True}) == {"count": 0}

        # No token needed: the probes and the dashboard's files.
        for path in ("/healthz", "/readyz", "/", "/static/app.js", "/static/style.css"):
            assert api.get(path, token=None)[0] == 200, path

        # The SSE stream: a header, or ?access_token= (there only).
        with SseStream(api.url, token=READER) as s:
            assert s.status == 200 and s.next_event()[0] == "snapshot"
        with SseStream(api.url, f"/api/v1/events?access_token={READER}") as s:
            assert s.status == 200
            event, data = s.next_event()
            assert event == "snapshot" and set(json.loads(data)) >= SNAPSHOT_KEYS
        for path, status, kind in (("/api/v1/events", 401, "missing"),
                                   ("/api/v1/events?access_token=wrong-token-123", 401,
                                    "unknown"),
                                   (f"/api/v1/events?access_token={WRITE_ONLY}", 403, "scope")):
            with SseStream(api.url, path) as s:
                assert s.status == status, (path, s.status)
                body = s.body()
                assert body["error"]["code"] == ("unauthorized" if status == 401
                                                 else "forbidden"), body
                if status == 401:
                    assert s.headers["WWW-Authenticate"].startswith("Bearer")
            refused[kind] += 1
        # ?access_token= is for the stream only.
        expect("GET", f"/api/v1/stats?access_token={READER}", None, 401)

        def counted():
            c = api.counters(token=READER)
            return {k: c.get(f"web.auth_refused.{k}", 0) for k in refused}
        wait_until(lambda: counted() == refused, 5, f"refusals counted as {refused}")
        # An Authorization header that is not Bearer is no token.
        st, h, b = api.call("GET", "/api/v1/stats", token=None,
                            headers={"Authorization": f"Basic {READER}"})
        assert_error(st, h, b, 401, "unauthorized")


def test_public_metrics_needs_no_token(tmp_path):
    with web(tmp_path, FAST + "public_metrics = true\n" + TOKENS) as (_, api, _w):
        st, _, text = api.get("/metrics")
        assert st == 200
        samples, _ = parse_metrics(text)
        assert sample(samples, "yard_dead_letters") == 0
        st, h, body = api.get("/api/v1/stats")
        assert_error(st, h, body, 401, "unauthorized")


# ----------------------------------------------------------------------------- bad input

def test_bad_json_and_bad_fields(tmp_path):
    with web(tmp_path, FAST) as (_, api, _w):
        bad_json = [b"", b"{", b"{not json}", b"[1, 2]", b'"echo"', b"null", b"42",
                    b'{"type": "echo",}', b"\xff\xfe"]
        for body in bad_json:
            st, h, b = api.post("/api/v1/tasks", body)
            assert_error(st, h, b, 400, "bad_json")
            st, h, b = api.post("/api/v1/jobs", body)
            assert_error(st, h, b, 400, "bad_json")

        cases = [({}, "type"), ({"type": 5}, "type"), ({"type": ""}, "type"),
                 ({"type": None}, "type"),
                 ({"type": "echo", "priority": 10}, "priority"),
                 ({"type": "echo", "priority": -1}, "priority"),
                 ({"type": "echo", "priority": "1"}, "priority"),
                 ({"type": "echo", "priority": 1.5}, "priority"),
                 ({"type": "echo", "max_attempts": -1}, "max_attempts"),
                 ({"type": "echo", "timeout_ms": "10s"}, "timeout_ms"),
                 ({"type": "echo", "delay_ms": True}, "delay_ms"),
                 ({"type": "echo", "deadline_ms": [1]}, "deadline_ms"),
                 ({"type": "echo", "key": 7}, "key"),
                 ({"type": "echo", "idempotency_key": {}}, "idempotency_key"),
                 ({"type": "echo", "requires": "gpu"}, "requires"),
                 ({"type": "echo", "requires": [1]}, "requires"),
                 ({"type": "echo", "not_before": "tomorrow"}, "not_before"),
                 ({"type": "echo", "not_before": "2026-01-01T00:00:00"}, "not_before"),
                 ({"type": "echo", "not_before": [2026]}, "not_before"),
                 ({"type": "echo", "payload_base64": "not base64!"}, "payload_base64"),
                 ({"type": "echo", "payload": "a", "payload_base64": "YQ=="}, "payload"),
                 ({"type": "echo", "bogus": 1}, "bogus"),
                 ({"type": "echo", "split": "lines:1"}, "split"),
                 ({"tasks": "echo"}, "tasks"),
                 ({"tasks": [{"type": "echo"}, {"type": 7}]}, "type"),
                 ({"tasks": [{"type": "echo"}, "echo"]}, "tasks"),
                 ({"tasks": [{"type": "echo"}], "type": "echo"}, ""),
                 ({"tasks": [{"type": "e"}] * 10_001}, "tasks")]
        for spec, name in cases:
            st, h, b = api.post("/api/v1/tasks", spec)
            assert_error(st, h, b, 400, "bad_field", [name])
        # Nothing was created by the refused requests.
        assert api.ok("GET", "/api/v1/tasks") == {"tasks": [], "next_cursor": None}
        c = api.counters()
        assert c.get("tasks.submitted", 0) == 0
        assert c.get("web.rejected.bad_json") == 2 * len(bad_json), c
        assert c.get("web.rejected.bad_field") == len(cases), c

        # Bad ids in a path, bad query values.
        for path, name in (("/api/v1/tasks/1?payload=maybe", "payload"),
                           ("/api/v1/jobs/1?result=2", "result")):
            st, h, b = api.get(path)
            assert_error(st, h, b, 400, "bad_query", [name])


def test_not_found_and_method_not_allowed(tmp_path):
    with web(tmp_path, FAST) as (_, api, _w):
        for method, path in (("GET", "/api/v1/tasks/999999"),
                             ("GET", "/api/v1/tasks/999999/result"),
                             ("DELETE", "/api/v1/tasks/999999"),
                             ("GET", "/api/v1/jobs/999999"),
                             ("GET", "/api/v1/nope"), ("GET", "/api/v2/tasks"),
                             ("GET", "/api/v1/tasks/1/bogus"), ("GET", "/nope.html"),
                             ("GET", "/static/nope.js"), ("POST", "/api/v1/nope")):
            st, h, b = api.call(method, path)
            assert_error(st, h, b, 404, "not_found")
        for method, path in (("PUT", "/api/v1/tasks"), ("PATCH", "/api/v1/tasks"),
                             ("DELETE", "/api/v1/tasks"), ("POST", "/api/v1/tasks/1"),
                             ("PUT", "/api/v1/tasks/1"), ("POST", "/api/v1/tasks/1/result"),
                             ("GET", "/api/v1/jobs"), ("POST", "/api/v1/jobs/1"),
                             ("POST", "/api/v1/workers"), ("DELETE", "/api/v1/stats"),
                             ("PUT", "/api/v1/queue"), ("POST", "/api/v1/events"),
                             ("POST", "/metrics"), ("POST", "/healthz"), ("DELETE", "/readyz"),
                             ("POST", "/api/v1/devices/d1/tasks")):
            st, h, b = api.call(method, path, b"{}" if method in ("POST", "PUT", "PATCH")
                                else None)
            assert_error(st, h, b, 405, "method_not_allowed")
            assert method not in h.get("Allow", "") and h.get("Allow"), (method, path, dict(h))


def test_body_over_max_body_bytes_is_413(tmp_path):
    with web(tmp_path, FAST + "max_body_bytes = 1024\n") as (_, api, _w):
        small = {"type": "echo", "payload": "x" * 800}
        assert api.post("/api/v1/tasks", small)[0] == 201
        big = {"type": "echo", "payload": "x" * 3000}
        for path in ("/api/v1/tasks", "/api/v1/jobs", "/api/v1/dead/requeue",
                     "/api/v1/dead/purge"):
            st, h, b = api.post(path, big)
            assert_error(st, h, b, 413, "too_large")
        # Refused from the announced length, before the body is read: only the head is sent.
        t0 = time.monotonic()
        r = raw_http(api.url, request_bytes("POST", "/api/v1/tasks", [
            "Content-Type: application/json", "Content-Length: 50000000"], b'{"type":'),
            timeout=5)
        assert r is not None and r.status == 413, r and (r.status, r.body)
        assert time.monotonic() - t0 < 3
        assert r.json()["error"]["code"] == "too_large"
        assert len(api.ok("GET", "/api/v1/tasks")["tasks"]) == 1
        assert api.counters().get("web.rejected.too_large", 0) == 5


def test_chunked_body_over_max_body_bytes_is_413(tmp_path):
    with web(tmp_path, FAST + "max_body_bytes = 1024\n") as (_, api, _w):
        chunk = b"x" * 1500
        body = b'5\r\n{"a":\r\n' + b"%x\r\n" % len(chunk) + chunk + b"\r\n0\r\n\r\n"
        r = raw_http(api.url, request_bytes("POST", "/api/v1/tasks", [
            "Content-Type: application/json", "Transfer-Encoding: chunked"], body))
        assert r is not None and r.status == 413, r and (r.status, r.body)
        assert r.json()["error"]["code"] == "too_large"


def test_path_traversal_on_static_files(tmp_path):
    with web(tmp_path, FAST) as (_, api, _w):
        r = raw_http(api.url, request_bytes("GET", "/static/app.js"))
        assert r.status == 200 and r.body
        for path in ("/static/../../etc/passwd", "/static/../../../../../../etc/passwd",
                     "/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
                     "/static/%2e%2e/%2e%2e/etc/passwd", "/static/..%2f..%2fetc%2fpasswd",
                     "/static/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/static//etc/passwd",
                     "/static/app.js/../../../etc/passwd",
                     "/static/%252e%252e/etc/passwd", "/etc/passwd"):
            r = raw_http(api.url, request_bytes("GET", path))
            assert r is not None, path
            assert r.status == 404, (path, r.status, r.body[:200])
            assert b"root:" not in r.body and b"/bin/" not in r.body, path
        assert api.get("/healthz")[0] == 200


def test_slow_client_is_dropped_while_others_are_served(tmp_path):
    with web(tmp_path, 'sse_interval = "200ms"\nio_timeout = "1s"\n') as (_, api, _w):
        slow = []
        for data in (b"GET /api/v1/stats HTTP/1.1\r\nHost: 127.0.0.1\r\n",   # half a head
                     request_bytes("POST", "/api/v1/tasks", ["Content-Length: 100",
                                                             "Content-Type: application/json"],
                                   b'{"type": "ec')):   # a tenth of the body
            s = socket.create_connection(host_port(api.url), timeout=6)
            s.sendall(data)
            slow.append(s)
        t0 = time.monotonic()
        try:
            for _ in range(5):
                t = time.monotonic()
                assert api.get("/healthz")[0] == 200
                assert api.get("/api/v1/queue")[0] == 200
                assert time.monotonic() - t < 1.0, "a request waited on the slow clients"
            for s in slow:
                got = yardlib._read_until_close(s)    # the server closes it
                assert b" 201 " not in got.split(b"\r\n")[0], got
            dropped = time.monotonic() - t0
            assert dropped < 4, f"the slow clients were dropped after {dropped:.1f}s"
        finally:
            for s in slow:
                s.close()
        assert api.ok("GET", "/api/v1/tasks")["tasks"] == []
        assert api.get("/healthz")[0] == 200


def test_remote_core_unreachable_is_503_and_not_ready(tmp_path):
    port = yardlib.free_port()
    conf = tmp_path / "web-role.toml"
    conf.write_text(f'[web]\nlisten = "127.0.0.1:{port}"\nrequest_timeout = "500ms"\n'
                    'sse_interval = "200ms"\n')
    with yardlib.Master(str(tmp_path), "--memory") as core:
        role = yardlib.Process([os.path.join(yardlib.bin_dir(), "yard-master"),
                                "--remote-core", core.client_endpoint, "--config", str(conf)],
                               str(tmp_path / "role.log"))
        api = Api(f"http://127.0.0.1:{port}")
        try:
            def up():
                assert role.proc.poll() is None, role.log()
                try:
                    return api.get("/readyz", timeout=2)[0] == 200
                except OSError:
                    return False
            wait_until(up, 15, "the web role ready")
            [tid] = api.submit({"type": "echo", "delay_ms": FAR})
            assert api.task(tid)["state"] == "queued"

            core.proc.send_signal(signal.SIGSTOP)
            try:
                for method, path, body in (("GET", "/api/v1/stats", None),
                                           ("GET", f"/api/v1/tasks/{tid}", None),
                                           ("POST", "/api/v1/tasks", {"type": "echo"})):
                    t0 = time.monotonic()
                    st, h, b = api.call(method, path, body)
                    assert_error(st, h, b, 503, "unavailable")
                    assert h["Retry-After"] == "5"
                    assert 0.4 <= time.monotonic() - t0 < 3
                st, _, body = api.get("/readyz")
                assert st == 503 and body.strip() and body.strip() != "ready", body
                st, _, body = api.get("/healthz")
                assert (st, body.strip()) == (200, "ok")
            finally:
                core.proc.send_signal(signal.SIGCONT)
            wait_until(lambda: api.get("/readyz")[0] == 200, 10, "ready again")
            # Late answers to the requests that timed out are not taken for later ones.
            for _ in range(5):
                t = api.task(tid)
                assert t["id"] == tid and t["state"] == "queued", t
                assert "counters" in api.ok("GET", "/api/v1/stats")
                assert "workers" in api.ok("GET", "/api/v1/workers")
        finally:
            assert role.stop() == 0
        core.stop()
    assert core.exit_code == 0


# ------------------------------------------------------------------------ the openapi file

def load_openapi():
    with open(OPENAPI) as f:
        return yaml.safe_load(f)


def operations(spec):
    """[(path, method, operation)] of the openapi file."""
    return [(path, method, op) for path, item in spec["paths"].items()
            for method, op in item.items() if method in ("get", "post", "put", "patch",
                                                         "delete")]


def readme_routes():
    """[(METHOD, full path, scope)] of the README's tables."""
    out = []
    with open(README) as f:
        for line in f:
            m = re.match(r"^\| `(GET|POST|PUT|PATCH|DELETE) (/\S*)` \| (\w+) \|", line)
            if m:
                out.append((m.group(1), "/api/v1" + m.group(2), m.group(3)))
    return out


def test_readme_routes_are_in_the_openapi_file():
    spec = load_openapi()
    routes = readme_routes()
    assert len(routes) >= 17, routes
    for method, path, scope in routes:
        assert path in spec["paths"], f"{method} {path} of the README is not in openapi.yaml"
        op = spec["paths"][path].get(method.lower())
        assert op is not None, f"{method} {path} of the README is not in openapi.yaml"
        assert op.get("x-scope") == scope, (method, path, scope, op.get("x-scope"))
    # The routes the README names outside its tables.
    for path, scope in (("/api/v1/events", "read"), ("/metrics", "read"), ("/healthz", "none"),
                        ("/readyz", "none"), ("/", "none")):
        assert spec["paths"][path]["get"]["x-scope"] == scope, path
    # And the other way: every operation of the file is one the README describes.
    documented = {(m.lower(), p) for m, p, _ in routes} | {
        ("get", p) for p in ("/api/v1/events", "/metrics", "/healthz", "/readyz", "/")}
    assert {(m, p) for p, m, _ in operations(spec)} == documented


def resolve(spec, node):
    while isinstance(node, dict) and "$ref" in node:
        target = spec
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def schema_problems(spec, schema, value, where="$"):
    """What in `value` does not fit the openapi `schema` (required properties, types, enums,
    recursively); [] when it fits."""
    schema = resolve(spec, schema)
    if value is None:
        return [] if schema.get("nullable") or not schema else [f"{where}: null"]
    if "allOf" in schema:
        return [p for s in schema["allOf"] for p in schema_problems(spec, s, value, where)]
    if "oneOf" in schema:
        results = [schema_problems(spec, s, value, where) for s in schema["oneOf"]]
        return [] if any(not r for r in results) else min(results, key=len)
    problems = []
    t = schema.get("type")
    checks = {"object": lambda v: isinstance(v, dict), "array": lambda v: isinstance(v, list),
              "string": lambda v: isinstance(v, str),
              "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
              "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
              "boolean": lambda v: isinstance(v, bool)}
    if t and not checks[t](value):
        return [f"{where}: expected {t}, got {type(value).__name__} {json.dumps(value)[:80]}"]
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                problems.append(f"{where}: no {name!r}")
        for name, sub in (schema.get("properties") or {}).items():
            if name in value:
                problems += schema_problems(spec, sub, value[name], f"{where}.{name}")
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name, v in value.items():
                if name not in (schema.get("properties") or {}):
                    problems += schema_problems(spec, extra, v, f"{where}.{name}")
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            problems += schema_problems(spec, schema["items"], v, f"{where}[{i}]")
    return problems


@contextlib.contextmanager
def openapi_env(tmp_path):
    """A master with tokens, a small max_body_bytes, a worker, and one of each thing the
    routes need: ids of a succeeded and a queued task, an ended and a running job, four dead
    letters."""
    with web(tmp_path, FAST + "max_body_bytes = 4096\n" + TOKENS, "--retry-backoff", "10ms",
             embedded=1, token=ADMIN) as (master, api, workers):
        [done, queued, cancel] = api.submit({"type": "echo", "payload": "x", "key": "dev-1"},
                                            {"type": "echo", "delay_ms": FAR},
                                            {"type": "echo", "delay_ms": FAR})
        dead = api.submit(*[{"type": "fail", "payload": "x", "max_attempts": 1}
                            for _ in range(4)])
        job_done = api.ok("POST", "/api/v1/jobs", {"type": "echo", "split": "range:1..3",
                                                   "aggregate": "sum"}, 201)["job_id"]
        job_running = api.ok("POST", "/api/v1/jobs", {"type": "echo", "split": "range:1..2",
                                                      "delay_ms": FAR}, 201)["job_id"]
        api.wait_ended(done, *dead)
        wait_until(lambda: api.ok("GET", f"/api/v1/jobs/{job_done}")["state"] == "succeeded",
                   10, "the job ended")
        ids = dict(done=done, queued=queued, cancel=cancel, dead=dead, job_done=job_done,
                   job_running=job_running)
        yield master, api, ids


def route_requests(ids):
    """For every operation of the openapi file, a request that must succeed, in an order
    where each finds what it needs: {(path, method): (concrete path, body)}."""
    d = ids["dead"]
    return {
        ("/", "get"): ("/", None),
        ("/healthz", "get"): ("/healthz", None),
        ("/readyz", "get"): ("/readyz", None),
        ("/metrics", "get"): ("/metrics", None),
        ("/api/v1/events", "get"): ("/api/v1/events", None),
        ("/api/v1/tasks", "get"): ("/api/v1/tasks?limit=2", None),
        ("/api/v1/tasks/{id}", "get"): (f"/api/v1/tasks/{ids['done']}?payload=true", None),
        ("/api/v1/tasks/{id}/result", "get"): (f"/api/v1/tasks/{ids['done']}/result", None),
        ("/api/v1/jobs/{id}", "get"): (f"/api/v1/jobs/{ids['job_done']}", None),
        ("/api/v1/jobs/{id}/tasks", "get"): (f"/api/v1/jobs/{ids['job_done']}/tasks", None),
        ("/api/v1/workers", "get"): ("/api/v1/workers", None),
        ("/api/v1/stats", "get"): ("/api/v1/stats", None),
        ("/api/v1/queue", "get"): ("/api/v1/queue", None),
        ("/api/v1/dead", "get"): ("/api/v1/dead", None),
        ("/api/v1/dead/{id}", "get"): (f"/api/v1/dead/{d[0]}", None),
        ("/api/v1/devices/{device}/tasks", "get"): ("/api/v1/devices/dev-1/tasks", None),
        ("/api/v1/tasks", "post"): ("/api/v1/tasks", {"type": "echo", "payload": "hello",
                                                      "key": "dev-1", "priority": 5}),
        ("/api/v1/jobs", "post"): ("/api/v1/jobs", {"type": "echo", "payload": "a\nb\nc\n",
                                                    "split": "lines:1", "aggregate": "count"}),
        ("/api/v1/tasks/{id}", "delete"): (f"/api/v1/tasks/{ids['cancel']}", None),
        ("/api/v1/jobs/{id}", "delete"): (f"/api/v1/jobs/{ids['job_running']}", None),
        ("/api/v1/dead/{id}", "delete"): (f"/api/v1/dead/{d[0]}", None),
        ("/api/v1/dead/{id}/requeue", "post"): (f"/api/v1/dead/{d[1]}/requeue", None),
        ("/api/v1/dead/requeue", "post"): ("/api/v1/dead/requeue", {"ids": [d[2]]}),
        ("/api/v1/dead/purge", "post"): ("/api/v1/dead/purge", {"ids": [d[3]]}),
    }


def fill(path, ids, value):
    return path.replace("{id}", str(value)).replace("{device}", "dev-1")


def error_requests(spec, ids):
    """{(path, method, status): (token, method, concrete path, body, codes)}: one request for
    each 400/401/403/404/409/413 the openapi file lists. The others are produced elsewhere:
    429 by test_queue_full_is_429_with_retry_after (POST tasks, jobs, dead requeues), 503 by
    test_too_many_sse_clients_get_503 (events) and test_remote_core_unreachable_is_503_and_
    not_ready (every route that asks the core; /readyz too), 500 by no well-behaved request."""
    done, queued, job_done = ids["done"], ids["queued"], ids["job_done"]
    bad = {  # 400
        ("/api/v1/tasks", "post"): ("/api/v1/tasks", b"{not json", "bad_json"),
        ("/api/v1/tasks", "get"): ("/api/v1/tasks?limit=0", None, "bad_query"),
        ("/api/v1/tasks/{id}", "get"): (f"/api/v1/tasks/{done}?payload=maybe", None,
                                        "bad_query"),
        ("/api/v1/tasks/{id}", "delete"): ("/api/v1/tasks/abc", None, ("bad_query",
                                                                       "bad_field")),
        ("/api/v1/tasks/{id}/result", "get"): (f"/api/v1/tasks/{done}/result?wait=soon", None,
                                               "bad_query"),
        ("/api/v1/jobs", "post"): ("/api/v1/jobs", {"type": "echo"}, "bad_field"),
        ("/api/v1/jobs/{id}", "get"): (f"/api/v1/jobs/{job_done}?result=maybe", None,
                                       "bad_query"),
        ("/api/v1/jobs/{id}", "delete"): ("/api/v1/jobs/abc", None, ("bad_query", "bad_field")),
        ("/api/v1/jobs/{id}/tasks", "get"): (f"/api/v1/jobs/{job_done}/tasks?limit=0", None,
                                             "bad_query"),
        ("/api/v1/dead", "get"): ("/api/v1/dead?cursor=x", None, "bad_query"),
        ("/api/v1/dead/{id}", "get"): ("/api/v1/dead/abc", None, ("bad_query", "bad_field")),
        ("/api/v1/dead/{id}", "delete"): ("/api/v1/dead/abc", None, ("bad_query",
                                                                     "bad_field")),
        ("/api/v1/dead/{id}/requeue", "post"): ("/api/v1/dead/abc/requeue", None,
                                                ("bad_query", "bad_field")),
        ("/api/v1/dead/requeue", "post"): ("/api/v1/dead/requeue", {}, "bad_field"),
        ("/api/v1/dead/purge", "post"): ("/api/v1/dead/purge", {"ids": "x"}, "bad_field"),
        ("/api/v1/devices/{device}/tasks", "get"): ("/api/v1/devices/dev-1/tasks?limit=0",
                                                    None, "bad_query"),
    }
    missing = {  # 404
        ("/api/v1/tasks/{id}", "get"): "/api/v1/tasks/999999",
        ("/api/v1/tasks/{id}", "delete"): "/api/v1/tasks/999999",
        ("/api/v1/tasks/{id}/result", "get"): "/api/v1/tasks/999999/result",
        ("/api/v1/jobs/{id}", "get"): "/api/v1/jobs/999999",
        ("/api/v1/jobs/{id}", "delete"): "/api/v1/jobs/999999",
        ("/api/v1/jobs/{id}/tasks", "get"): "/api/v1/jobs/999999/tasks",
        ("/api/v1/dead/{id}", "get"): f"/api/v1/dead/{done}",   # a task that is not dead
        ("/api/v1/dead/{id}", "delete"): "/api/v1/dead/999999",
        ("/api/v1/dead/{id}/requeue", "post"): "/api/v1/dead/999999/requeue",
    }
    conflict = {  # 409
        ("/api/v1/tasks/{id}", "delete"): f"/api/v1/tasks/{done}",
        ("/api/v1/tasks/{id}/result", "get"): f"/api/v1/tasks/{queued}/result",
        ("/api/v1/jobs/{id}", "delete"): f"/api/v1/jobs/{job_done}",
    }
    lacking = {"read": WRITE_ONLY, "write": READER, "admin": WRITER}
    big = {"type": "echo", "payload": "x" * 6000}
    out = {}
    for path, method, op in operations(spec):
        concrete = fill(path, ids, done)
        body = {"all": True} if method == "post" else None
        for status in op["responses"]:
            status = int(status)
            key = (path, method, status)
            if status == 400 and (path, method) in bad:
                p, b, codes = bad[(path, method)]
                out[key] = (ADMIN, method, p, b, codes)
            elif status == 401 and op.get("x-scope") != "none":
                out[key] = (None, method, concrete, body, "unauthorized")
            elif status == 403 and op.get("x-scope") in lacking:
                out[key] = (lacking[op["x-scope"]], method, concrete, body, "forbidden")
            elif status == 404 and (path, method) in missing:
                out[key] = (ADMIN, method, missing[(path, method)], None, "not_found")
            elif status == 409 and (path, method) in conflict:
                out[key] = (ADMIN, method, conflict[(path, method)], None, "conflict")
            elif status == 413 and "requestBody" in op:
                out[key] = (ADMIN, method, concrete, big, "too_large")
    return out


def test_openapi_routes_and_error_statuses(tmp_path):
    spec = load_openapi()
    with openapi_env(tmp_path) as (_, api, ids):
        # Every 400/401/403/404/409/413 the file lists for an operation, produced.
        produced = error_requests(spec, ids)
        listed = {(p, m, int(s)) for p, m, op in operations(spec) for s in op["responses"]
                  if int(s) in (400, 401, 403, 404, 409, 413)}
        assert listed - set(produced) == set(), "no request made for these"
        failures = []
        for (path, method, status), (token, m, concrete, body, codes) in sorted(
                produced.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
            st, h, b = api.call(m.upper(), concrete, body, token=token)
            try:
                assert_error(st, h, b, status, codes)
                if status == 401:
                    assert h["WWW-Authenticate"].startswith("Bearer")
                ok = True
            except AssertionError as e:
                ok = False
                failure = f"{m.upper()} {concrete} (for {path} {status}): got {st} {b} [{e}]"
            if not ok:
                failures.append(failure)
        assert not failures, "\n".join(failures)

        # Every path and method of the file is a route: a request that must succeed does,
        # with a status the file lists; and another method on the same path is 405.
        requests = route_requests(ids)
        assert set(requests) == {(p, m) for p, m, _ in operations(spec)}
        for (path, method), (concrete, body) in requests.items():
            op = spec["paths"][path][method]
            ok_statuses = {int(s) for s in op["responses"] if str(s).startswith("2")}
            if path == "/api/v1/events":
                with SseStream(api.url, concrete, token=ADMIN) as s:
                    assert s.status in ok_statuses, (path, s.status)
                    assert s.next_event()[0] == "snapshot"
                continue
            st, h, b = api.call(method.upper(), concrete, body)
            assert st in ok_statuses, (method, concrete, st, b)
            content = op["responses"][str(st)].get("content")
            if content:
                ctype = next(iter(content))
                assert h["Content-Type"].startswith(ctype), (path, h["Content-Type"], ctype)
        for path in spec["paths"]:
            allowed = {m for p, m, _ in operations(spec) if p == path}
            other = next(m for m in ("put", "patch", "post", "delete") if m not in allowed)
            st, h, b = api.call(other.upper(), fill(path, ids, ids["done"]),
                                b"{}" if other != "delete" else None)
            assert_error(st, h, b, 405, "method_not_allowed")


def test_openapi_response_schemas(tmp_path):
    """The JSON of every successful response (and of the SSE snapshot) fits the schema the
    file gives it."""
    spec = load_openapi()
    with openapi_env(tmp_path) as (_, api, ids):
        wait_until(lambda: api.ok("GET", "/api/v1/workers")["workers"] and isinstance(
            api.ok("GET", "/api/v1/workers")["workers"][0]["rate_per_s"], (int, float)), 5,
            "a sampled worker")
        problems = []
        for (path, method), (concrete, body) in route_requests(ids).items():
            op = spec["paths"][path][method]
            if path == "/api/v1/events":
                with SseStream(api.url, concrete, token=ADMIN) as s:
                    data = json.loads(s.next_event()[1])
                problems += schema_problems(spec, op["x-event-schema"], data, "snapshot")
                continue
            st, h, b = api.call(method.upper(), concrete, body)
            resp = op["responses"].get(str(st)) or op["responses"].get(st)
            assert resp, (path, method, st, b)
            schema = (resp.get("content") or {}).get("application/json", {}).get("schema")
            if schema:
                problems += schema_problems(spec, schema, b, f"{method.upper()} {path}")
    assert not problems, "\n".join(problems)

"""The web plugin's dashboard (master/plugins/web/README.md) in a real headless Chromium,
driven over the Chrome DevTools Protocol: the real yard-master with its web role, real
workers, the page fed by the live SSE stream. Every test checks that the page logged no
console error or warning and threw no exception, saves a screenshot (also into
$YARD_SCREENSHOT_DIR as dashboard.png when that is set), ends the browser, and ends every
yard process with SIGTERM, asserting exit code 0. Skipped when chromium is not installed."""
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time

import pytest

from yardlib import Master, Worker, http, wait_until

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")


# ------------------------------------------------------------------------------------ REST

def web_url(master, workdir):
    url = getattr(master, "web_url", None)
    if not url:
        with open(os.path.join(workdir, "ready.json")) as f:
            url = json.load(f)["web_url"]
    assert url.startswith("http://127.0.0.1:"), url
    return url


def submit(url, specs, token=None):
    status, _, body = http("POST", url + "/api/v1/tasks", {"tasks": specs}, token)
    assert status == 201, body
    assert len(body["ids"]) == len(specs)
    return body["ids"]


def workers_ok(url, n, token=None):
    status, _, body = http("GET", url + "/api/v1/workers", token=token)
    return status == 200 and len(body["workers"]) == n and all(
        w["health"] == "ok" for w in body["workers"])


# ------------------------------------------------------------------------------ the browser

class Browser:
    """Headless Chromium on a DevTools port of its own choosing, one page driven over CDP.
    Collects console errors and warnings, exceptions and error log entries in `problems`."""

    def __init__(self, workdir):
        import websocket  # Debian python3-websocket

        self.dir = os.path.join(workdir, "chromium")
        os.makedirs(self.dir, exist_ok=True)
        self._log = open(os.path.join(workdir, "chromium.log"), "ab")
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
             "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
             "--disable-extensions", "--disable-background-networking", "--disable-sync",
             "--no-proxy-server",
             "--remote-debugging-port=0", f"--user-data-dir={self.dir}", "about:blank"],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        self.ids = itertools.count(1)
        self.problems = []
        self.ws = None
        try:
            port_file = os.path.join(self.dir, "DevToolsActivePort")

            def port_known():
                if self.proc.poll() is not None:
                    raise AssertionError("chromium exited at start: " + self._read_log())
                try:
                    with open(port_file) as f:
                        return len(f.read().split("\n")) >= 2
                except FileNotFoundError:
                    return False
            wait_until(port_known, 30, "chromium's DevToolsActivePort file")
            with open(port_file) as f:
                port = int(f.read().split("\n")[0])
            pages = []

            def page_listed():
                _, _, targets = http("GET", f"http://127.0.0.1:{port}/json/list")
                pages[:] = [t for t in targets if t.get("type") == "page"]
                return bool(pages)
            wait_until(page_listed, 15, "a page target")
            self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=15,
                                                  suppress_origin=True)
            for domain in ("Page", "Runtime", "Log"):
                self.call(f"{domain}.enable")
            self.call("Emulation.setDeviceMetricsOverride", width=1400, height=1000,
                      deviceScaleFactor=1, mobile=False)
        except BaseException:
            self.close()
            raise

    def _read_log(self):
        with open(self._log.name, "rb") as f:
            return f.read().decode(errors="replace")[-4000:]

    def _event(self, msg):
        method, p = msg.get("method"), msg.get("params", {})
        if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning",
                                                                      "assert"):
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"])
            self.problems.append(f"console.{p['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            text = d.get("exception", {}).get("description") or d.get("text", "")
            self.problems.append(f"exception: {text} ({d.get('url', '')}:{d.get('lineNumber')})")
        elif method == "Log.entryAdded" and p["entry"]["level"] in ("error", "warning"):
            e = p["entry"]
            self.problems.append(
                f"log {e['level']} ({e['source']}): {e['text']} {e.get('url', '')}")

    def call(self, method, timeout=15, **params):
        """Sends one command; returns its result, handling the events that come first."""
        cid = next(self.ids)
        self.ws.send(json.dumps({"id": cid, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no answer to {method} within {timeout}s")
            self.ws.settimeout(left)
            msg = json.loads(self.ws.recv())
            if msg.get("id") == cid:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self._event(msg)

    def eval(self, expression):
        """The value of a JS expression in the page (promises awaited)."""
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                      awaitPromise=True)
        if "exceptionDetails" in r:
            raise AssertionError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def text(self, selector):
        return self.eval(f"(document.querySelector({json.dumps(selector)}) || {{}}).textContent")

    def open(self, url):
        self.call("Page.navigate", url="about:blank")  # a fresh document even for a #fragment
        self.call("Page.navigate", url=url)
        wait_until(lambda: self.eval("document.readyState === 'complete' && "
                                     f"location.href.startsWith({json.dumps(url.split('#')[0])})"),
                   15, f"{url} loaded")

    def fill(self, values):
        """Sets form fields: {"#id": "value"}."""
        for sel, value in values.items():
            assert self.eval(f"(() => {{ const e = document.querySelector({json.dumps(sel)});"
                             f" if (!e) return false; e.value = {json.dumps(value)};"
                             " return true; })()"), f"no element {sel}"

    def submit_form(self, selector):
        assert self.eval(f"(() => {{ const f = document.querySelector({json.dumps(selector)});"
                         " if (!f) return false; f.requestSubmit(); return true; })()"), selector

    def screenshot(self, *paths):
        data = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        for p in paths:
            with open(p, "wb") as f:
                f.write(data)

    def assert_clean(self, allowed=()):
        """No console errors or warnings, exceptions or error log entries so far, besides
        those matching one of the `allowed` regexes; clears the list."""
        self.call("Runtime.evaluate", expression="0")  # handle the events queued until now
        bad = [p for p in self.problems if not any(re.search(a, p) for a in allowed)]
        self.problems = []
        assert not bad, "the page logged problems:\n" + "\n".join(bad)

    def close(self):
        if self.ws is not None:
            try:
                self.ws.close()
            except Exception:
                pass
        if self.proc.poll() is None:
            # The launcher script execs chromium, whose helpers share its process group.
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


@pytest.fixture
def browser(tmp_path):
    b = Browser(str(tmp_path))
    try:
        yield b
    finally:
        b.close()


def stat(b, name):
    """A headline number as an int (None while it is not a number yet)."""
    t = b.text(f"#stat-{name}") or ""
    return int(t) if t.isdigit() else None


def save_screenshot(b, tmp_path, publish=False):
    """Into the test's temp dir; with `publish`, also $YARD_SCREENSHOT_DIR/dashboard.png."""
    paths = [os.path.join(tmp_path, "dashboard.png")]
    out = os.environ.get("YARD_SCREENSHOT_DIR")
    if publish and out:
        os.makedirs(out, exist_ok=True)
        paths.append(os.path.join(out, "dashboard.png"))
    b.screenshot(*paths)


@contextlib.contextmanager
def ended_at_exit(procs):
    """Ends every process in `procs` with SIGTERM when the block is left, also when it
    failed (then the block's error is what the test reports); when the block passed,
    asserts that each exited with 0."""
    try:
        yield
    except BaseException:
        for p in procs:
            try:
                p.stop()
            except Exception:
                pass
        raise
    codes = [p.stop() for p in procs]
    assert codes == [0] * len(procs), codes


class Feeder(threading.Thread):
    """Submits a mix of tasks over REST for `seconds` (rising and falling rate), so the
    charts, queue and rates show live data."""

    def __init__(self, url, seconds, token=None):
        super().__init__(daemon=True)
        self.url, self.seconds, self.token = url, seconds, token
        self.error = None
        self.started = None

    def phase(self):
        """How far it is, from 0 to 1."""
        if self.started is None:
            return 0.0
        return min(1.0, (time.monotonic() - self.started) / self.seconds)

    def run(self):
        try:
            self.started = start = time.monotonic()
            n = 0
            while time.monotonic() - start < self.seconds:
                phase = self.phase()
                batch = int(20 + 120 * (1 - abs(2 * phase - 1)))
                specs = [{"type": "echo", "payload": f"feed-{n + i}"} for i in range(batch)]
                specs += [{"type": "sleep", "payload": "30", "priority": 7,
                           "key": f"dev-{n % 5}"} for _ in range(batch // 10)]
                specs += [{"type": "cpu", "payload": "200000", "priority": 3}
                          for _ in range(batch // 10)]
                submit(self.url, specs, self.token)
                n += batch
                time.sleep(0.1)
        except Exception as e:  # reported by the test
            self.error = e


# ---------------------------------------------------------------------------------- tests

def test_dashboard_shows_live_state_and_drives_the_api(tmp_path, browser):
    with Master(str(tmp_path), "--memory", "--web", "127.0.0.1:0", "--heartbeat",
                "200ms") as master:
        url = web_url(master, str(tmp_path))
        workers = [Worker(str(tmp_path), master.worker_endpoint, f"w{i}", "--threads", "2")
                   for i in (1, 2)]
        with ended_at_exit(workers):
            wait_until(lambda: workers_ok(url, 2), 15, "2 healthy workers")

            status, headers, body = http("GET", url + "/")
            assert status == 200 and "<canvas" in body
            assert headers["Content-Type"].startswith("text/html")
            for path, ctype in (("/static/app.js", "javascript"),
                                ("/static/style.css", "text/css")):
                status, headers, _ = http("GET", url + path)
                assert status == 200 and ctype in headers["Content-Type"], (path, headers)

            b = browser
            b.open(url + "/")
            wait_until(lambda: b.text("#conn") == "live", 15, "#conn says live")
            wait_until(lambda: stat(b, "workers") == 2, 10, "#stat-workers is 2")

            ids = submit(url, [{"type": "echo", "payload": f"dash-{i}"} for i in range(200)])
            wait_until(lambda: stat(b, "succeeded") == 200, 30, "#stat-succeeded reaches 200")
            assert stat(b, "submitted") == 200
            assert stat(b, "failed") == 0 and stat(b, "dead") == 0

            # One row per worker, keyed by its id, with its health and the work it did.
            rows = b.eval("Array.from(document.querySelectorAll('#workers tbody tr[data-worker]'))"
                          ".map(r => [r.dataset.worker,"
                          " Array.from(r.cells).map(c => c.textContent)])")
            assert sorted(r[0] for r in rows) == ["w1", "w2"], rows
            for _, cells in rows:
                assert cells[0] in ("w1", "w2") and cells[2] == "ok", cells
                assert re.fullmatch(r"\d+ / 2", cells[3]), cells
            wait_until(lambda: sum(int(x) for x in b.eval(
                "Array.from(document.querySelectorAll('#workers tbody tr')).map(r => "
                "r.cells[4].textContent)")) == 200, 10, "workers' completed adds up to 200")

            # The lookup form: the task's fields and its history as a timeline.
            b.fill({"#lookup-id": str(ids[0])})
            b.submit_form("#lookup-form")
            wait_until(lambda: b.eval("document.querySelectorAll('#lookup-result li')"
                                      ".length") >= 3, 10, "the lookup timeline")
            events = b.eval("Array.from(document.querySelectorAll('#lookup-result li'))"
                            ".map(li => li.textContent)")
            assert events[0].startswith("submitted"), events
            assert re.match(r"dispatched to worker w[12]", events[1]), events
            assert events[-1].startswith("succeeded"), events
            assert "+" in events[-1] and "ms" in events[-1], events   # time since the dispatch
            result = b.text("#lookup-result")
            assert "dash-0" in result and "echo" in result

            b.fill({"#lookup-id": "999999"})
            b.submit_form("#lookup-form")
            wait_until(lambda: "404" in (b.text("#lookup-result") or ""), 10, "lookup of no task")
            assert "not_found" in b.text("#lookup-result")

            # The submit form: a batch of three, shown as ids that the API knows.
            b.fill({"#submit-type": "echo", "#submit-payload": "from the page",
                    "#submit-key": "k1", "#submit-priority": "2", "#submit-count": "3"})
            b.submit_form("#submit-form")
            wait_until(lambda: "Submitted 3 tasks" in (b.text("#submit-result") or ""), 10,
                       "#submit-result shows the ids")
            page_ids = [int(x) for x in re.findall(r"\d+", b.text("#submit-result"))[1:]]
            assert len(page_ids) == 3 and min(page_ids) > max(ids), b.text("#submit-result")
            for i in page_ids:
                status, _, t = http("GET", f"{url}/api/v1/tasks/{i}")
                assert status == 200 and t["type"] == "echo" and t["key"] == "k1"
                assert t["priority"] == 2
            wait_until(lambda: stat(b, "succeeded") == 203, 15, "the page's tasks ran")

            # A bad submit is refused in the page, before it is sent.
            b.fill({"#submit-type": "echo", "#submit-count": "1", "#submit-priority": "5"})
            b.eval("document.getElementById('submit-type').value = ' '")
            b.submit_form("#submit-form")
            wait_until(lambda: "type" in (b.text("#submit-result") or ""), 10, "a local error")
            assert b.eval("document.getElementById('submit-result').classList.contains('error')")

            # A task that fails for good (a permanent error: failed at once, no retries) and one
            # that runs out of attempts (a dead letter): both in the failures list; the dead
            # letter requeued from the page.
            failed_id, dead_id = submit(url, [
                {"type": "fail", "payload": "permanent"},
                {"type": "fail", "payload": "retryable", "max_attempts": 1}])
            wait_until(lambda: stat(b, "dead") == 1 and stat(b, "failed") == 1, 15,
                       "#stat-failed and #stat-dead are 1")

            def failure_states():
                return dict(b.eval("Array.from(document.querySelectorAll('#failures li'))"
                                   ".map(li => [+li.querySelector('a[data-task]').dataset.task,"
                                   " li.querySelector('.badge').textContent])"))
            wait_until(lambda: failure_states() == {failed_id: "failed", dead_id: "dead"}, 10,
                       "both failures listed")
            assert "failed on purpose (permanent)" in b.text("#failures")
            dead_row = f"#dead tr[data-dead=\"{dead_id}\"]"
            wait_until(lambda: b.eval(f"!!document.querySelector('{dead_row} button')"), 15,
                       "the dead letter is listed")
            assert b.eval("document.querySelectorAll('#dead tr[data-dead]').length") == 1
            b.eval(f"document.querySelector('{dead_row} button').click()")
            wait_until(lambda: f"Task {dead_id} requeued" in (b.text("#dead-msg") or ""), 10,
                       "requeued")

            def counters():
                return http("GET", url + "/api/v1/stats")[2]["counters"]
            wait_until(lambda: counters().get("tasks.requeued") == 1 and
                       counters().get("tasks.dead") == 2 and
                       http("GET", f"{url}/api/v1/tasks/{dead_id}")[2]["state"] == "dead", 15,
                       "the requeued task ran and failed again")
            b.eval("document.getElementById('dead-refresh').click()")
            wait_until(lambda: b.eval(f"!!document.querySelector('{dead_row}')"), 10,
                       "the refreshed dead letters list")
            assert stat(b, "dead") == 1

            # Jobs and tasks flowing, for the jobs panel, the charts and the picture: a cpu
            # sweep, a line count (succeeds at once) and a sum with one line that is not a
            # number (ends partial: one part failed), then a stream of tasks for 8 s.
            job_ids = []
            for spec in ({"type": "cpu", "split": "range:100000..3000000:100000",
                          "aggregate": "max", "priority": 6},
                         {"type": "echo", "payload": "".join(f"line {i}\n" for i in range(60)),
                          "split": "lines:5", "aggregate": "count"},
                         {"type": "echo", "payload": "1\n2\n3\nfour\n5\n6\n",
                          "split": "lines:1", "aggregate": "sum", "policy": "continue"}):
                status, _, job = http("POST", url + "/api/v1/jobs", spec)
                assert status == 201, job
                job_ids.append(job["job_id"])
            # While tasks flow the page renders once per snapshot, not per task: the
            # headline number changes at most once per sse_interval (500 ms).
            b.eval("window.__mutations = 0; window.__since = performance.now();"
                   "new MutationObserver(r => { window.__mutations += r.length; }).observe("
                   "document.getElementById('stat-submitted'),"
                   " {childList: true, characterData: true, subtree: true})")
            feeder = Feeder(url, 8)
            feeder.start()

            def job_rows():
                """{job id: [state, "done / parts", succeeded %, failed %]} as shown."""
                return {int(r[0]): r[1:] for r in b.eval(
                    "Array.from(document.querySelectorAll('#jobs [data-job]')).map(d => "
                    "[d.dataset.job, d.querySelector('.badge').textContent,"
                    " d.querySelector('.count').textContent,"
                    " parseFloat(d.querySelector('.p-ok').style.width) || 0,"
                    " parseFloat(d.querySelector('.p-bad').style.width) || 0])")}
            wait_until(lambda: set(job_ids) <= set(job_rows()), 10, "the jobs' progress bars")
            wait_until(lambda: job_rows()[job_ids[0]][:3] == ["succeeded", "30 / 30", 100], 15,
                       "the cpu sweep done, its bar full")
            wait_until(lambda: job_rows()[job_ids[1]][:3] == ["succeeded", "12 / 12", 100], 15,
                       "the line count done, its bar full")
            wait_until(lambda: job_rows()[job_ids[2]][0] == "partial", 15, "the sum partial")
            _, count, ok, bad = job_rows()[job_ids[2]]
            assert count == "6 / 6 (1 failed)", count
            assert abs(ok - 500 / 6) < 0.1 and abs(bad - 100 / 6) < 0.1, (ok, bad)
            wait_until(lambda: float(b.text("#stat-rate")) > 0, 10, "a succeeded rate")

            b.fill({"#lookup-id": str(ids[7])})
            b.submit_form("#lookup-form")
            wait_until(lambda: b.eval("document.querySelectorAll('#lookup-result li')"
                                      ".length") >= 3, 10, "the lookup timeline")

            # Late in the stream, a sleep sweep (8 parts of 0.1 to 0.8 s; one key, so one at
            # a time, leaving the other slots to the stream): the picture shows it under way
            # and the stream's rise and fall, then its bar fills.
            wait_until(lambda: feeder.phase() > 0.7 or not feeder.is_alive(), 15,
                       "the stream 70% through")
            status, _, job = http("POST", url + "/api/v1/jobs", {
                "type": "sleep", "split": "range:100..800:100", "aggregate": "max",
                "key": "sweep"})
            assert status == 201, job
            sweep = job["job_id"]
            wait_until(lambda: sweep in job_rows() and job_rows()[sweep][0] == "running" and
                       0 < job_rows()[sweep][2] < 100, 10, "the sleep sweep under way")
            assert b.text("#conn") == "live"
            save_screenshot(b, tmp_path, publish=True)

            feeder.join(30)
            assert feeder.error is None, feeder.error
            assert stat(b, "submitted") > 2000
            mutations, ms = b.eval("[window.__mutations, performance.now() - window.__since]")
            assert 3 <= mutations <= ms / 500 + 3, (mutations, ms)
            # No per-task DOM: the page stays small however many tasks went by.
            assert b.eval("document.getElementsByTagName('*').length") < 1500

            # The throughput chart drew its lines: pixels of the submitted and succeeded
            # colours (one readback of the canvas).
            sub, ok = b.eval(
                "(() => { const c = document.getElementById('chart-rate');"
                " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                " const n = [0, 0], rgb = [[0x5a, 0xa9, 0xe6], [0x4c, 0xc3, 0x8a]];"
                " for (let i = 0; i < d.length; i += 4) rgb.forEach((k, j) => {"
                " if (d[i + 3] > 128 && Math.abs(d[i] - k[0]) + Math.abs(d[i + 1] - k[1]) +"
                " Math.abs(d[i + 2] - k[2]) < 60) n[j]++; }); return n; })()")
            assert sub > 50 and ok > 50, (sub, ok)

            wait_until(lambda: job_rows()[sweep][:3] == ["succeeded", "8 / 8", 100], 15,
                       "the sleep sweep done")
            assert http("GET", f"{url}/api/v1/jobs/{sweep}")[2]["result"] == "800"
            assert b.text("#conn") == "live"
            b.assert_clean(allowed=[r"status of 404 .*/api/v1/tasks/999999"])
        master.stop()
    assert master.exit_code == 0


AUTH_CONFIG = """
[web]
listen = "127.0.0.1:0"
sse_interval = "250ms"

[[web.tokens]]
token = "admin-token-1"
scopes = ["read", "write", "admin"]
name = "ops"

[[web.tokens]]
token = "view-token-1"
scopes = ["read"]
name = "viewer"
"""


def test_dashboard_with_tokens(tmp_path, browser):
    conf = tmp_path / "master.toml"
    conf.write_text(AUTH_CONFIG)
    with Master(str(tmp_path), "--memory", "--config", str(conf)) as master:
        url = web_url(master, str(tmp_path))
        worker = Worker(str(tmp_path), master.worker_endpoint, "solo")
        with ended_at_exit([worker]):
            status, headers, body = http("GET", url + "/api/v1/events")
            assert status == 401 and body["error"]["code"] == "unauthorized"
            assert headers["WWW-Authenticate"].startswith("Bearer")
            assert http("GET", url + "/")[0] == 200   # the page itself needs no token
            wait_until(lambda: workers_ok(url, 1, "view-token-1"), 15, "the worker joined")
            submit(url, [{"type": "echo", "payload": str(i)} for i in range(50)], "admin-token-1")

            # No token: the page asks for one.
            b = browser
            b.open(url + "/")
            wait_until(lambda: b.eval("!document.getElementById('token-form').hidden"), 15,
                       "the token prompt")
            assert b.text("#conn") == "reconnecting"
            b.assert_clean(allowed=[r"status of 401", r"EventSource.*401"])

            # A read-only token in the fragment: stored, taken out of the URL, live data.
            b.open(url + "/#token=view-token-1")
            wait_until(lambda: b.text("#conn") == "live", 15, "#conn says live")
            assert b.eval("location.hash") == ""
            assert b.eval("localStorage.getItem('yard.token')") == "view-token-1"
            assert b.eval("document.getElementById('token-form').hidden")
            wait_until(lambda: stat(b, "succeeded") == 50, 20, "#stat-succeeded reaches 50")
            wait_until(lambda: b.eval("document.querySelectorAll('#workers tr[data-worker]')"
                                      ".length") == 1, 10, "the worker's row")

            # Submitting needs the write scope: the page shows the 403.
            b.fill({"#submit-type": "echo", "#submit-payload": "nope", "#submit-count": "2"})
            b.submit_form("#submit-form")
            wait_until(lambda: "403" in (b.text("#submit-result") or ""), 10, "the 403 error")
            assert "forbidden" in b.text("#submit-result")
            assert b.eval("document.getElementById('submit-result').classList.contains('error')")
            assert stat(b, "submitted") == 50

            # The stored token survives a reload; the prompt replaces it.
            b.open(url + "/")
            wait_until(lambda: b.text("#conn") == "live", 15, "live with the stored token")
            b.eval("document.getElementById('token-button').click()")
            b.fill({"#token-input": "admin-token-1"})
            b.submit_form("#token-form")
            wait_until(lambda: b.eval("localStorage.getItem('yard.token')") == "admin-token-1", 5,
                       "the new token stored")
            wait_until(lambda: b.text("#conn") == "live", 15, "live with the new token")
            b.fill({"#submit-type": "echo", "#submit-payload": "yes", "#submit-count": "2"})
            b.submit_form("#submit-form")
            wait_until(lambda: "Submitted 2 tasks" in (b.text("#submit-result") or ""), 10,
                       "the admin's submit")
            wait_until(lambda: stat(b, "succeeded") == 52, 15, "the page's tasks ran")
            save_screenshot(b, tmp_path)
            b.assert_clean(allowed=[r"status of 403 .*/api/v1/tasks"])

        master.stop()
    assert master.exit_code == 0

"""Helpers for Yard's integration tests: start the real binaries on port 0 in a temp dir,
speak the client protocol (docs/protocol.md) from Python, wait on conditions with deadlines.
"""
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import msgpack
import zmq

STATES = ["queued", "dispatched", "succeeded", "failed", "cancelled", "dead", "expired"]
TASK_FIELDS = ["id", "type", "state", "priority", "key", "attempt", "failures", "max_attempts",
               "timeout_ms", "payload", "result", "error", "worker", "submitted_us",
               "dispatched_us", "finished_us", "run_after_us", "idempotency_key", "deadline_us",
               "requirements", "job_id", "part"]
WORKER_FIELDS = ["id", "host", "pid", "handlers", "slots", "credit", "inflight", "completed",
                 "failed", "connected_us", "last_seen_ms"]


def bin_dir():
    d = os.environ.get("YARD_BIN_DIR")
    if not d:
        d = os.path.join(os.path.dirname(__file__), "..", "..", "build", "bin")
    return os.path.abspath(d)


def wait_until(predicate, timeout, what):
    """Polls `predicate` until it is true; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for: {what}")
        time.sleep(0.02)


class Process:
    """A child process whose output goes to a log file; stop() sends SIGTERM, returns the code."""

    def __init__(self, args, log_path):
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT)
        self.exit_code = None

    def stop(self, timeout=20):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.exit_code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{self.log_path}: did not exit within {timeout}s of SIGTERM")
        finally:
            self._log.close()
        return self.exit_code

    def kill(self):
        self.proc.kill()
        self.exit_code = self.proc.wait()
        self._log.close()

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(method, url, body=None, token=None, headers=None, timeout=10):
    """One HTTP request with urllib; returns (status, headers, body). `body` is sent as JSON
    unless it is bytes or str; the reply is parsed as JSON when it says it is JSON, else
    returned as text. HTTP errors come back as their status and body, not as exceptions."""
    data = body
    hdrs = dict(headers or {})
    if body is not None:
        if not isinstance(body, (bytes, str)):
            data = json.dumps(body)
        if isinstance(data, str):
            data = data.encode()
        hdrs.setdefault("Content-Type", "application/json")
    if token is not None:
        hdrs["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with _NO_PROXY.open(req, timeout=timeout) as r:
            status, reply_headers, raw = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, reply_headers, raw = e.code, e.headers, e.read()
    text = raw.decode(errors="replace")
    if "json" in (reply_headers.get("Content-Type") or ""):
        try:
            return status, reply_headers, json.loads(text)
        except ValueError:
            pass
    return status, reply_headers, text


def free_port():
    """A TCP port free right now, for a master that must come back on the same port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Master(Process):
    """yard-master, on port 0 unless endpoints are given, with its state in workdir/data
    unless --memory or --data-dir is given; endpoints read from its ready file. A context
    manager that stops it with SIGTERM on exit (and checks nothing: tests assert
    `exit_code == 0`). Each start appends to workdir/master.log."""

    def __init__(self, workdir, *extra, client_port=0, worker_port=0):
        ready = os.path.join(workdir, "ready.json")
        if os.path.exists(ready):
            os.remove(ready)
        state = [] if ("--memory" in extra or "--data-dir" in extra) else [
            "--data-dir", os.path.join(workdir, "data")]
        super().__init__([os.path.join(bin_dir(), "yard-master"),
                          "--client-endpoint", f"tcp://127.0.0.1:{client_port}",
                          "--worker-endpoint", f"tcp://127.0.0.1:{worker_port}",
                          "--ready-file", ready, *state, *extra],
                         os.path.join(workdir, "master.log"))
        wait_until(lambda: os.path.exists(ready) or self.proc.poll() is not None, 15,
                   "master ready file")
        if self.proc.poll() is not None:
            raise AssertionError("master exited at start:\n" + self.log())
        with open(ready) as f:
            info = json.load(f)
        self.client_endpoint = info["client_endpoint"]
        self.worker_endpoint = info["worker_endpoint"]
        self.web_url = info.get("web_url")  # the web role's "http://HOST:PORT", when on

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.exit_code is None:
            self.stop()


class Worker(Process):
    def __init__(self, workdir, endpoint, name, *extra):
        super().__init__([os.path.join(bin_dir(), "yard-worker"), "--connect", endpoint,
                          "--id", name, *extra],
                         os.path.join(workdir, f"worker-{name}.log"))


def yard(master, *args, check=True, timeout=60, input=None):
    """Runs the `yard` CLI against `master` (a Master or a client endpoint); returns the
    CompletedProcess (text). With check, a non-zero exit fails the test with its stderr."""
    endpoint = master.client_endpoint if isinstance(master, Master) else master
    r = subprocess.run([os.path.join(bin_dir(), "yard"), "--master", endpoint, *args],
                       capture_output=True, text=True, timeout=timeout, input=input)
    if check:
        assert r.returncode == 0, f"yard {' '.join(args)}: exit {r.returncode}: {r.stderr}"
    return r


class ClientConn:
    """The client port protocol over a DEALER socket (docs/protocol.md)."""

    def __init__(self, endpoint, timeout=10):
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.timeout_ms = int(timeout * 1000)
        self.next_req = 1

    def close(self):
        self.sock.close()

    def call(self, command, fields, reply_command, extra_wait_ms=0):
        req = self.next_req
        self.next_req += 1
        self.sock.send_multipart([b"YD\x01" + bytes([command]),
                                  msgpack.packb([req, *fields], use_bin_type=True)])
        deadline = time.monotonic() + (self.timeout_ms + extra_wait_ms) / 1000
        while True:
            left = int((deadline - time.monotonic()) * 1000)
            if left <= 0 or not self.sock.poll(left):
                raise TimeoutError(f"no reply to command 0x{command:02x}")
            header, body = self.sock.recv_multipart()[:2]
            msg = msgpack.unpackb(body, raw=False, strict_map_key=False)
            if msg[0] != req:
                continue
            if header[3] == 0x2F:
                raise RuntimeError(f"master error {msg[1]}: {msg[2]}")
            assert header[3] == reply_command, header
            return msg

    @staticmethod
    def _task(t):
        if t is None:
            return None
        d = dict(zip(TASK_FIELDS, t))
        d["state"] = STATES[d["state"]]
        return d

    def submit(self, tasks):
        """tasks: dicts with type, payload (bytes) and optional key, priority, max_attempts,
        timeout_ms, idempotency_key, delay_ms, not_before_us, deadline_ms, requirements.
        Returns the ids."""
        specs = [[t["type"], t.get("payload", b""), t.get("key", ""), t.get("priority", 5),
                  t.get("max_attempts", 0), t.get("timeout_ms", 0),
                  t.get("idempotency_key", ""), t.get("delay_ms", 0), t.get("not_before_us", 0),
                  t.get("deadline_ms", 0), t.get("requirements", [])] for t in tasks]
        ids = []
        for i in range(0, len(specs), 1000):
            ids += self.call(0x20, [specs[i:i + 1000]], 0x21)[1]
        return ids

    def get(self, ids, with_payload=False):
        out = []
        for i in range(0, len(ids), 1000):
            out += [self._task(t) for t in self.call(0x22, [ids[i:i + 1000], with_payload],
                                                      0x23)[1]]
        return out

    def wait(self, task_id, timeout_ms):
        return self._task(self.call(0x24, [task_id, timeout_ms], 0x23, timeout_ms)[1][0])

    def cancel(self, task_id):
        return STATES[self.call(0x26, [task_id], 0x27)[1]]

    def workers(self):
        return [dict(zip(WORKER_FIELDS, w)) for w in self.call(0x28, [], 0x29)[1]]

    def stats(self):
        return self.call(0x2A, [], 0x2B)[1]


class Broker(Process):
    """A real mosquitto on a free port (or `port`), with its own config, persistence and log
    in `workdir`. stop() is SIGTERM (it saves its persistence file); kill() is SIGKILL."""

    def __init__(self, workdir, port=None, name="broker"):
        self.port = port or free_port()
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        conf = os.path.join(self.dir, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(f"listener {self.port} 127.0.0.1\n"
                    "allow_anonymous true\n"
                    "persistence true\n"
                    f"persistence_location {self.dir}/\n"
                    "max_queued_messages 1000000\n"
                    "max_inflight_messages 1000\n"
                    "set_tcp_nodelay true\n"
                    "log_dest stdout\n" + ROOT_STAYS_ROOT)
        super().__init__(["mosquitto", "-c", conf], os.path.join(self.dir, "mosquitto.log"))
        self.url = f"tcp://127.0.0.1:{self.port}"
        wait_until(self._accepting, 10, f"mosquitto on port {self.port}")

    def _accepting(self):
        if self.proc.poll() is not None:
            raise AssertionError("mosquitto exited at start:\n" + self.log())
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.exit_code is None:
            self.stop()


# mosquitto started as root drops to the `mosquitto` user, which cannot read or write the
# private temp dirs the tests give it (persistence, password files): stay root instead.
ROOT_STAYS_ROOT = "user root\n" if os.geteuid() == 0 else ""


def devices(broker, *args, check=True, timeout=120):
    """Runs yard-devices against `broker` with --json; returns (exit code, summary dict)."""
    r = subprocess.run([os.path.join(bin_dir(), "yard-devices"), "--broker", broker.url,
                        "--json", *args], capture_output=True, text=True, timeout=timeout)
    if check:
        assert r.returncode == 0, f"yard-devices {' '.join(args)}: exit {r.returncode}: " \
            f"{r.stdout}{r.stderr}"
    return r.returncode, (json.loads(r.stdout) if r.stdout.strip() else {})


def mqtt_pub(broker, topic, payload, qos=1):
    subprocess.run(["mosquitto_pub", "-p", str(broker.port), "-q", str(qos), "-t", topic,
                    "-s"], input=payload if isinstance(payload, bytes) else payload.encode(),
                   check=True, timeout=10)


class MqttSub(Process):
    """mosquitto_sub on `topic`, printing "topic payload" lines to a log. Returns once it is
    subscribed (a probe on `probe_topic`, which must match `topic`, came back)."""

    def __init__(self, workdir, broker, topic, probe_topic, name="sub"):
        super().__init__(["mosquitto_sub", "-p", str(broker.port), "-q", "1", "-v", "-t", topic],
                         os.path.join(workdir, f"{name}.log"))
        self.probe_topic = probe_topic

        def probed():
            mqtt_pub(broker, probe_topic, "probe")
            time.sleep(0.1)
            return any(l.startswith(probe_topic) for l in self.log().splitlines())
        wait_until(probed, 10, f"mosquitto_sub subscribed to {topic}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.exit_code is None:
            self.stop()

    def lines(self):
        """(topic, payload) pairs received, the probes left out."""
        out = []
        for line in self.log().splitlines():
            topic, _, payload = line.partition(" ")
            if topic and topic != self.probe_topic:
                out.append((topic, payload))
        return out


# ------------------------------------------------------------------------------ the web role

def web_master(workdir, web_config="", *extra):
    """A Master with the web role on 127.0.0.1:0. `web_config` is TOML appended to a [web]
    section written to workdir/master.toml (e.g. limits, then [[web.tokens]] tables)."""
    conf = os.path.join(workdir, "master.toml")
    with open(conf, "w") as f:
        f.write('[web]\nlisten = "127.0.0.1:0"\n' + web_config)
    master = Master(workdir, "--config", conf, *extra)
    if not master.web_url:
        master.stop()
        raise AssertionError("the ready file has no web_url:\n" + master.log())
    return master


class RawResponse:
    def __init__(self, status, reason, headers, body):
        self.status, self.reason, self.headers, self.body = status, reason, headers, body

    def json(self):
        return json.loads(self.body)


def _read_until_close(sock):
    out = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return out
        if not chunk:
            return out
        out += chunk


def raw_http(url, data, timeout=5):
    """Sends `data` (bytes: a whole request, as is, to the host and port of `url`) on a new
    TCP connection and reads one response: a RawResponse with lower-case header names, or
    None when the server closed the connection without answering."""
    host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        buf = b""
        while b"\r\n\r\n" not in buf:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return None if not buf else RawResponse(0, "truncated", {}, buf)
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        _, status, reason = (lines[0].split(" ", 2) + [""])[:3]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            n = int(headers["content-length"])
            while len(rest) < n:
                chunk = s.recv(65536)
                if not chunk:
                    break
                rest += chunk
            body = rest[:n]
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body, raw = b"", rest
            while True:
                while b"\r\n" not in raw:
                    chunk = s.recv(65536)
                    if not chunk:
                        return RawResponse(int(status), reason, headers, body)
                    raw += chunk
                size_line, _, raw = raw.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                while len(raw) < size + 2:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    raw += chunk
                if size == 0:
                    break
                body += raw[:size]
                raw = raw[size + 2:]
        else:
            body = rest + _read_until_close(s)
        return RawResponse(int(status), reason, headers, body)


class SseStream:
    """A GET of an SSE stream (http.client, so chunked encoding is handled) that stays open:
    `status` and `headers` at once, then next_event() -> (event, data). Close it with close()
    (or use it as a context manager)."""

    def __init__(self, url, path="/api/v1/events", token=None, timeout=5):
        import http.client
        hostport = url.split("//", 1)[1].split("/", 1)[0]
        host, port = hostport.rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
        headers = {"Accept": "text/event-stream"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        self.conn.request("GET", path, headers=headers)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.headers = self.resp.headers

    def body(self):
        """The whole body of a response that is not a stream (an error)."""
        raw = self.resp.read().decode(errors="replace")
        try:
            return json.loads(raw)
        except ValueError:
            return raw

    def next_event(self):
        """The next event as (name, data); the name is "message" when the event has none."""
        event, data = None, []
        while True:
            line = self.resp.readline()
            if not line:
                raise EOFError("the SSE stream ended")
            line = line.decode().rstrip("\r\n")
            if line == "":
                if event is not None or data:
                    return event or "message", "\n".join(data)
                continue
            if line.startswith(":"):
                continue  # a comment (keep-alive)
            field, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)

    def close(self):
        try:
            self.resp.close()
        finally:
            self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

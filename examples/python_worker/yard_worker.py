#!/usr/bin/env python3
"""A Yard worker in Python, written from docs/protocol.md alone.

Needs Debian's python3-zmq and python3-msgpack. Single-threaded: it runs each task as it
arrives, which suits the short handlers below. Handlers:
  echo      output = payload
  py.upper  output = payload upper-cased
  py.sum    payload: JSON array of numbers; output: their sum as JSON
            (bad JSON or a non-number: fail_permanent)
"""
import argparse
import json
import os
import random
import signal
import socket
import sys
import time

import msgpack
import zmq

# Commands (docs/protocol.md §3).
HELLO, WELCOME, TASKS, RESULTS, CREDIT, ACK, HEARTBEAT, EXTEND, DISCONNECT = range(1, 10)
# Outcomes and disconnect reasons.
OK, FAIL_RETRY, FAIL_PERMANENT, RELEASED = range(4)
SHUTDOWN, UNKNOWN_SESSION, HEARTBEAT_TIMEOUT, DUPLICATE_WORKER = 0, 1, 6, 4


class PermanentError(Exception):
    """A handler failure that must not be retried."""


def h_echo(payload):
    return payload


def h_upper(payload):
    return payload.upper()


def h_sum(payload):
    try:
        values = json.loads(payload)
    except ValueError as e:
        raise PermanentError(f"py.sum: payload is not JSON: {e}")
    if not isinstance(values, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise PermanentError("py.sum: payload must be a JSON array of numbers")
    return json.dumps(sum(values)).encode()


HANDLERS = {"echo": h_echo, "py.upper": h_upper, "py.sum": h_sum}


def frame(command, fields):
    return [bytes([0x59, 0x44, 0x01, command]), msgpack.packb(fields, use_bin_type=True)]


class Worker:
    def __init__(self, endpoint, worker_id, credit):
        self.endpoint = endpoint
        self.worker_id = worker_id
        self.window = credit
        self.incarnation = random.getrandbits(63)
        self.ctx = zmq.Context.instance()
        self.sock = None
        self.active = False
        self.heartbeat_s = 1.0
        self.liveness = 3
        self.last_recv = self.last_send = self.hello_at = time.monotonic()
        self.backoff = 0.0
        self.unacked = {}  # (id, attempt) -> result fields
        self.stopping = False
        self.announced = False

    def send(self, command, fields):
        self.sock.send_multipart(frame(command, fields))
        self.last_send = time.monotonic()

    def connect(self):
        if self.sock is not None:
            self.sock.close(linger=0)
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(self.endpoint)
        self.hello()

    def hello(self):
        # Nothing is held between tasks here, so the whole window is free credit.
        self.active = False
        self.hello_at = time.monotonic()
        self.send(HELLO, [self.worker_id, self.incarnation, sorted(HANDLERS), 1, self.window,
                          socket.gethostname(), os.getpid(), []])

    def reconnect_later(self, why):
        self.backoff = min(max(self.backoff * 2, 0.1), 5.0)
        print(f"master {self.endpoint}: {why}; reconnecting in {self.backoff:.1f}s",
              file=sys.stderr, flush=True)
        time.sleep(self.backoff)
        self.connect()

    def run_task(self, task):
        task_id, attempt, ttype, payload = task[0], task[1], task[2], task[3]
        start = time.monotonic()
        handler = HANDLERS.get(ttype)
        outcome, output, error = OK, b"", ""
        if self.stopping:
            outcome, error = RELEASED, "worker stopping"
        elif handler is None:
            outcome, error = FAIL_PERMANENT, f"no handler for {ttype!r}"
        else:
            try:
                output = handler(bytes(payload))
            except PermanentError as e:
                outcome, error = FAIL_PERMANENT, str(e)
            except Exception as e:  # a handler bug: let the master retry elsewhere
                outcome, error = FAIL_RETRY, f"{type(e).__name__}: {e}"
        duration_us = int((time.monotonic() - start) * 1e6)
        return [task_id, attempt, outcome, output, error, duration_us]

    def handle(self, header, body):
        if len(header) != 4 or header[:3] != b"YD\x01":
            return
        command = header[3]
        msg = msgpack.unpackb(body, raw=False)
        if command == WELCOME:
            self.active = True
            self.backoff = 0.0
            self.heartbeat_s = max(msg[1], 10) / 1000.0
            self.liveness = max(msg[2], 1)
            if self.unacked:  # resend what the master never acknowledged
                self.send(RESULTS, [0, list(self.unacked.values())])
            if not self.announced:
                print("ready", flush=True)
                self.announced = True
        elif command == TASKS:
            results = [self.run_task(t) for t in msg[0]]
            for r in results:
                self.unacked[(r[0], r[1])] = r
            # One credit back per result; none while draining.
            self.send(RESULTS, [0 if self.stopping else len(results), results])
        elif command == ACK:
            for task_id, attempt in msg[0]:
                self.unacked.pop((task_id, attempt), None)
        elif command == DISCONNECT:
            reason = msg[0]
            if reason in (UNKNOWN_SESSION, HEARTBEAT_TIMEOUT):
                self.hello()
            elif reason == DUPLICATE_WORKER:
                sys.exit(f"master refused worker id {self.worker_id!r}: {msg[1]}")
            else:
                self.reconnect_later(f"master said disconnect ({reason}: {msg[1]})")
        # HEARTBEAT and unknown optional commands need nothing.

    def run(self):
        self.connect()
        drain_until = None
        while True:
            now = time.monotonic()
            if self.stopping and drain_until is None:
                drain_until = now + 5.0
            if self.stopping and (not self.unacked or now > drain_until):
                if self.active:
                    self.send(DISCONNECT, [SHUTDOWN, "worker stopping"])
                self.sock.close(linger=0)
                return 0
            silence = self.liveness * self.heartbeat_s
            if not self.active and now - self.hello_at > silence:
                self.reconnect_later("no WELCOME")
                continue
            if self.active and now - self.last_recv > silence:
                self.reconnect_later("master silent")
                self.last_recv = time.monotonic()
                continue
            if self.active and now - self.last_send >= self.heartbeat_s:
                self.send(HEARTBEAT, [])
            if self.sock.poll(int(min(self.heartbeat_s, 0.1) * 1000)):
                while True:
                    try:
                        parts = self.sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self.last_recv = time.monotonic()
                    if len(parts) >= 2:
                        self.handle(parts[0], parts[1])


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connect", default="tcp://127.0.0.1:7071", help="master worker endpoint")
    ap.add_argument("--id", default=f"python-{socket.gethostname()}-{os.getpid()}")
    ap.add_argument("--credit", type=int, default=16, help="tasks prefetched")
    args = ap.parse_args()
    worker = Worker(args.connect, args.id, args.credit)

    def stop(signum, frame):
        worker.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return worker.run()


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""A Python worker (the example worker from examples/python_worker) with one more handler,
`order.log`, for the per-key ordering property test. Its payload is "KEY SEQ MS": it appends
"<ns> start KEY SEQ" to $YARD_ORDER_LOG, sleeps MS milliseconds, appends "<ns> end KEY SEQ"
and returns the payload. Every line is one O_APPEND write, so several workers can share the
log, and a SIGKILLed worker leaves a start without an end.
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "examples", "python_worker"))
import yard_worker  # noqa: E402

LOG = os.environ["YARD_ORDER_LOG"]


def log(event, key, seq):
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{time.time_ns()} {event} {key} {seq}\n".encode())
    finally:
        os.close(fd)


def order_log(payload):
    key, seq, ms = payload.decode().split()
    log("start", key, seq)
    time.sleep(int(ms) / 1000)
    log("end", key, seq)
    return payload


yard_worker.HANDLERS["order.log"] = order_log

if __name__ == "__main__":
    sys.exit(yard_worker.main())

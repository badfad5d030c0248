"""The mqtt plugin end to end (master/plugins/mqtt/README.md): a real mosquitto on a free
port, the real yard-master with its mqtt role, real workers, and the yard-devices simulator.
Every test ends the master with SIGTERM and checks that it exits 0."""
import json
import os
import signal
import time

import yardlib
from yardlib import Broker, Master, devices, mqtt_pub, wait_until

RULES = """
[[mqtt.rules]]
topic = "telemetry/batched"
type = "telemetry.stats"
batch_count = 5
batch_window = "300ms"

[[mqtt.rules]]
topic = "telemetry/#"
type = "echo"

[[mqtt.rules]]
topic = "requests/echo"
type = "echo"

[[mqtt.rules]]
topic = "requests/count"
type = "echo"
split = "json-array:2"
aggregate = "count"
"""


def mqtt_master(tmp, broker, *extra, settings="", client_id=None):
    """A master with the mqtt role on `broker`, returned once that role is connected;
    `settings` go in the [mqtt] section."""
    conf = os.path.join(tmp, "master.toml")
    with open(conf, "w") as f:
        f.write(f'[mqtt]\nbrokers = ["{broker.url}"]\n'
                f'client_id = "{client_id or "yard-test-" + str(os.getpid())}"\n'
                'stats_interval = "50ms"\n' + settings + RULES)
    master = Master(tmp, "--config", conf, *extra)
    wait_until(lambda: stats(master).get("mqtt.connected") == 1, 10, "mqtt connected")
    return master


def stats(master):
    conn = yardlib.ClientConn(master.client_endpoint)
    try:
        return conn.stats()
    finally:
        conn.close()


def all_tasks(master, with_payload=True):
    """Every task in id order, with payloads."""
    listing = json.loads(yardlib.yard(master, "--json", "list", "--all").stdout)["tasks"]
    ids = [t["id"] for t in listing]
    conn = yardlib.ClientConn(master.client_endpoint)
    try:
        out = []
        for i in range(0, len(ids), 500):
            out += conn.get(ids[i:i + 500], with_payload)
        return out
    finally:
        conn.close()


def seqs_by_device(tasks):
    """device -> the telemetry seq numbers in task id order (from the payload, or from the
    echo result once the finished task no longer keeps its payload)."""
    out = {}
    for t in sorted(tasks, key=lambda t: t["id"]):
        text = t["payload"] or t["result"]
        if t["type"] != "echo" or not text.startswith(b"{"):
            continue
        body = json.loads(text)
        if "seq" in body:
            out.setdefault(t["key"], []).append(body["seq"])
    return out


def test_telemetry_of_100_devices_becomes_tasks_in_device_order(tmp_path):
    with Broker(tmp_path) as broker, mqtt_master(tmp_path, broker, "--memory", "--workers",
                                                 "2") as master:
        _, summary = devices(broker, "--devices", "100", "--count", "20", "--qos", "1")
        assert summary["sent"] == 2000 and summary["acked"] == 2000
        wait_until(lambda: stats(master).get("mqtt.messages_committed", 0) == 2000, 30,
                   "2000 messages committed")
        wait_until(lambda: stats(master).get("tasks.succeeded", 0) == 2000, 60, "tasks done")
        by_device = seqs_by_device(all_tasks(master))
        assert len(by_device) == 100
        for device, seqs in by_device.items():
            assert seqs == list(range(1, 21)), f"{device}: {seqs}"
        s = stats(master)
        assert not any(k.startswith("mqtt.rejected") for k in s), s
        master.stop()
    assert master.exit_code == 0


def test_request_reply_round_trip_for_tasks_and_jobs(tmp_path):
    with Broker(tmp_path) as broker, mqtt_master(tmp_path, broker, "--memory", "--workers",
                                                 "2") as master:
        _, summary = devices(broker, "--devices", "5", "--count", "0", "--requests", "4",
                             "--request-payload", "hello")
        assert summary["requests"] == 20
        assert summary["replied"] == 20 and summary["ok"] == 20, summary
        with yardlib.MqttSub(tmp_path, broker, "yard/devices/+/responses/#",
                             "yard/devices/probe/responses/p") as sub:
            mqtt_pub(broker, "yard/devices/d1/requests/count",
                     '{"request_id":"s1","payload":[1,2,3,4,5]}')
            wait_until(lambda: sub.lines(), 20, "the job's reply")
            topic, payload = sub.lines()[0]
        assert topic == "yard/devices/d1/responses/s1"
        reply = json.loads(payload)
        assert reply["state"] == "succeeded" and reply["result"] == 5 and reply["parts"] == 3
        master.stop()
    assert master.exit_code == 0


def test_batching_window_by_count_and_by_time(tmp_path):
    with Broker(tmp_path) as broker, mqtt_master(tmp_path, broker, "--memory", "--workers",
                                                 "1") as master:
        for i in range(12):
            mqtt_pub(broker, "yard/devices/d1/telemetry/batched", json.dumps({"value": i}))
        wait_until(lambda: stats(master).get("tasks.succeeded", 0) == 3, 20, "three batches")
        results = [json.loads(t["result"]) for t in all_tasks(master)]
        # Two batches by count, the rest by time, each in arrival order.
        assert [(r["count"], r["min"], r["max"]) for r in results] == [(5, 0, 4), (5, 5, 9),
                                                                       (2, 10, 11)]
        assert stats(master)["mqtt.batches"] == 3
        master.stop()
    assert master.exit_code == 0


def test_broker_restart_reconnects_and_loses_nothing(tmp_path):
    """A broker restart loses nothing. QoS 1 is at least once: a persistent broker that saves
    its state before it has read the plugin's last PUBACKs sends those messages again (DUP)
    after the restart, and they become tasks a second time. The test counts them."""
    broker = Broker(tmp_path)
    try:
        with mqtt_master(tmp_path, broker, "--memory", "--workers", "2",
                         settings='reconnect_min = "50ms"\nreconnect_max = "500ms"\n') as master:
            devices(broker, "--devices", "10", "--count", "50")
            wait_until(lambda: stats(master).get("mqtt.messages_committed", 0) == 500, 30,
                       "first 500")
            assert broker.stop() == 0
            wait_until(lambda: stats(master).get("mqtt.connected") == 0, 10, "plugin sees the loss")
            broker = Broker(tmp_path, port=broker.port)
            wait_until(lambda: stats(master).get("mqtt.connects", 0) == 2, 15, "plugin reconnects")
            devices(broker, "--devices", "10", "--count", "50", "--prefix", "after-")

            def all_in():
                by_device = seqs_by_device(all_tasks(master))
                return len(by_device) == 20 and all(
                    sorted(set(seqs)) == list(range(1, 51)) for seqs in by_device.values())
            wait_until(all_in, 30, "every message of the 20 devices")
            by_device = seqs_by_device(all_tasks(master))
            redelivered = sum(len(seqs) - 50 for seqs in by_device.values())
            print(f"\nbroker restart: {redelivered} message(s) delivered again by the broker")
            for seqs in by_device.values():
                # First deliveries are in order; a redelivery repeats a run already seen.
                firsts = [s for i, s in enumerate(seqs) if s not in seqs[:i]]
                assert firsts == list(range(1, 51))
            master.stop()
        assert master.exit_code == 0
    finally:
        broker.stop()


def test_broker_keeps_messages_while_the_master_is_down(tmp_path):
    """Clean session off, QoS 1: what devices send while the master is away arrives later."""
    with Broker(tmp_path) as broker:
        master = mqtt_master(tmp_path, broker, client_id="yard-keep")
        assert master.stop() == 0
        devices(broker, "--devices", "4", "--count", "25")
        with mqtt_master(tmp_path, broker, "--workers", "1", client_id="yard-keep") as master:
            wait_until(lambda: stats(master).get("mqtt.messages_committed", 0) == 100, 30,
                       "the 100 messages sent while the master was down")
            by_device = seqs_by_device(all_tasks(master))
            assert len(by_device) == 4
            assert all(seqs == list(range(1, 26)) for seqs in by_device.values())
            master.stop()
        assert master.exit_code == 0


def test_backpressure_pauses_reading_and_resumes(tmp_path):
    settings = "pause_above = 200\nresume_below = 100\nmax_buffered = 50\n"
    with Broker(tmp_path) as broker, mqtt_master(tmp_path, broker, "--memory",
                                                 settings=settings) as master:
        devices(broker, "--devices", "10", "--count", "300")  # 3000: the broker takes them all
        wait_until(lambda: stats(master).get("mqtt.paused") == 1, 20, "intake paused")
        time.sleep(1)
        s = stats(master)
        # No worker: the queue stays near the high-water mark, the rest waits in the broker.
        assert 200 <= s["tasks.active"] <= 200 + 50 + 200, s
        assert s["mqtt.pauses"] >= 1
        rss_kb = int(open(f"/proc/{master.proc.pid}/status").read().split("VmRSS:")[1].split()[0])
        print(f"\npaused with {s['tasks.active']} tasks active, master RSS {rss_kb // 1024} MB")
        assert rss_kb < 200 * 1024
        worker = yardlib.Worker(tmp_path, master.worker_endpoint, "w1")
        wait_until(lambda: stats(master).get("tasks.succeeded", 0) == 3000, 60, "all 3000 done")
        wait_until(lambda: stats(master)["mqtt.paused"] == 0, 5, "intake resumed")
        assert stats(master)["mqtt.messages_committed"] == 3000
        by_device = seqs_by_device(all_tasks(master, with_payload=True))
        assert all(seqs == list(range(1, 301)) for seqs in by_device.values())
        assert worker.stop() == 0
        master.stop()
    assert master.exit_code == 0


def test_malformed_input_is_counted_answered_and_harmless(tmp_path):
    with Broker(tmp_path) as broker, mqtt_master(
            tmp_path, broker, "--memory", "--workers", "1",
            settings="max_payload_bytes = 1024\n") as master:
        with yardlib.MqttSub(tmp_path, broker, "yard/devices/+/responses/#",
                             "yard/devices/probe/responses/p") as sub:
            mqtt_pub(broker, "yard/devices/d1/telemetry", "{not json")
            mqtt_pub(broker, "yard/devices/d1/telemetry", "x" * 5000)
            mqtt_pub(broker, "yard/devices/bad id/telemetry", "{}")
            mqtt_pub(broker, "yard/devices/d1/requests/launch", '{"request_id":"r1"}')
            mqtt_pub(broker, "yard/devices/d1/requests/echo", '{"payload":"no id"}')
            mqtt_pub(broker, "yard/devices/d1/requests/echo", "{broken")
            mqtt_pub(broker, "yard/devices/d1/requests/echo", '{"request_id":"ok","payload":"fine"}')
            wait_until(lambda: len(sub.lines()) == 2, 20, "two replies")
            replies = {t: json.loads(p) for t, p in sub.lines()}
            assert replies["yard/devices/d1/responses/r1"]["error"]["code"] == "unknown_request_type"
            assert replies["yard/devices/d1/responses/ok"]["result"] == "fine"
        s = stats(master)
        assert s["mqtt.rejected.bad_json"] == 2
        assert s["mqtt.rejected.too_large"] == 1
        assert s["mqtt.rejected.bad_device_id"] == 1
        assert s["mqtt.rejected.unknown_request_type"] == 1
        assert s["mqtt.rejected.missing_request_id"] == 1
        assert s["tasks.submitted"] == 1
        log = master.log()
        assert "rejected (bad_json)" in log
        master.stop()
    assert master.exit_code == 0


def test_master_sigkill_with_qos1_in_flight(tmp_path):
    """Reports what a SIGKILL of the master loses: only messages libmosquitto acknowledged
    on receipt that the plugin had not yet committed (at most max_buffered), never a
    message the plugin's own commit covered; devices' order survives the restart."""
    settings = "max_buffered = 200\n"
    with Broker(tmp_path) as broker:
        master = mqtt_master(tmp_path, broker, "--workers", "1", settings=settings,
                             client_id="yard-crash")
        sim = yardlib.Process([os.path.join(yardlib.bin_dir(), "yard-devices"), "--broker",
                               broker.url, "--devices", "20", "--count", "500", "--rate", "4000",
                               "--json"], os.path.join(tmp_path, "devices.log"))
        wait_until(lambda: stats(master).get("mqtt.messages_committed", 0) >= 2000, 30,
                   "traffic flowing")
        committed_before = stats(master)["mqtt.messages_committed"]
        master.kill()
        master = mqtt_master(tmp_path, broker, "--workers", "1", settings=settings,
                             client_id="yard-crash")
        assert sim.proc.wait(60) == 0
        wait_until(lambda: stats(master).get("tasks.queued", 1) == 0 and
                   stats(master).get("mqtt.buffered", 1) == 0, 30, "the backlog drained")
        time.sleep(0.5)
        by_device = seqs_by_device(all_tasks(master))
        got = sum(len(s) for s in by_device.values())
        lost = 10000 - got
        print(f"\nSIGKILL with QoS 1 in flight: {got} of 10000 kept, {lost} lost "
              f"({committed_before} committed when killed)")
        assert got >= committed_before  # nothing the plugin had committed is gone
        assert 0 <= lost <= 200         # at most what it held uncommitted
        for device, seqs in by_device.items():
            assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), device
        master.stop()
        assert master.exit_code == 0


def test_bad_mqtt_config_stops_the_master_naming_the_key(tmp_path):
    conf = tmp_path / "bad.toml"
    conf.write_text('[mqtt]\nbrokers = ["tcp://127.0.0.1:1883"]\n'
                    '[[mqtt.rules]]\ntopic = "telemetry"\ntype = "t"\nbatch_count = 0\n')
    r = yardlib.subprocess.run([os.path.join(yardlib.bin_dir(), "yard-master"), "--memory",
                                "--config", str(conf)], capture_output=True, text=True,
                               timeout=20)
    assert r.returncode == 2
    assert "mqtt.rules[0].batch_count" in r.stderr
    r = yardlib.subprocess.run([os.path.join(yardlib.bin_dir(), "yard-master"),
                                "--list-plugins"], capture_output=True, text=True, timeout=20)
    assert r.returncode == 0 and r.stdout.startswith("mqtt\t")


def test_fails_over_to_the_next_broker(tmp_path):
    dead = yardlib.free_port()  # nothing listens there
    with Broker(tmp_path) as broker:
        conf = tmp_path / "master.toml"
        conf.write_text(f'[mqtt]\nbrokers = ["tcp://127.0.0.1:{dead}", "{broker.url}"]\n'
                        'reconnect_min = "50ms"\nstats_interval = "50ms"\n')
        with Master(tmp_path, "--memory", "--workers", "1", "--config", str(conf)) as master:
            wait_until(lambda: stats(master).get("mqtt.connected") == 1, 15, "connected to #2")
            assert stats(master)["mqtt.connect_failures"] >= 1
            _, summary = devices(broker, "--devices", "2", "--count", "0", "--requests", "2")
            assert summary["ok"] == 4
            master.stop()
        assert master.exit_code == 0


def test_mqtt5_correlation_data_and_response_topic(tmp_path):
    with Broker(tmp_path) as broker, mqtt_master(tmp_path, broker, "--memory", "--workers", "1",
                                                 settings="protocol = 5\n") as master:
        with yardlib.MqttSub(tmp_path, broker, "app/replies/#", "app/replies/probe") as sub:
            yardlib.subprocess.run(
                ["mosquitto_pub", "-p", str(broker.port), "-V", "mqttv5", "-q", "1",
                 "-t", "yard/devices/d5/requests/echo", "-m", '{"payload":"v5 hello"}',
                 "-D", "publish", "correlation-data", "corr-77",
                 "-D", "publish", "response-topic", "app/replies/d5"], check=True, timeout=10)
            wait_until(lambda: sub.lines(), 20, "the reply on the response topic")
            topic, payload = sub.lines()[0]
        assert topic == "app/replies/d5"
        reply = json.loads(payload)
        assert reply["request_id"] == "corr-77"
        assert reply["state"] == "succeeded" and reply["result"] == "v5 hello"
        master.stop()
    assert master.exit_code == 0


def test_mqtt_role_in_its_own_process_against_a_remote_core(tmp_path):
    """--remote-core: the mqtt role runs without a core and reaches the core over TCP."""
    with Broker(tmp_path) as broker, Master(tmp_path, "--memory", "--workers", "1") as core:
        conf = tmp_path / "mqtt-role.toml"
        conf.write_text(f'[mqtt]\nbrokers = ["{broker.url}"]\nclient_id = "yard-role"\n' + RULES)
        role = yardlib.Process([os.path.join(yardlib.bin_dir(), "yard-master"), "--remote-core",
                                core.client_endpoint, "--config", str(conf)],
                               os.path.join(tmp_path, "role.log"))
        wait_until(lambda: "mqtt: connected" in role.log(), 15, "the mqtt role connected")
        with yardlib.MqttSub(tmp_path, broker, "yard/devices/+/responses/#",
                             "yard/devices/probe/responses/p") as sub:
            def answered():
                mqtt_pub(broker, "yard/devices/r1/requests/echo",
                         '{"request_id":"q1","payload":"over tcp"}')
                time.sleep(0.2)
                return sub.lines()
            wait_until(answered, 20, "a request answered through the remote core")
            reply = json.loads(sub.lines()[0][1])
        assert reply["state"] == "succeeded" and reply["result"] == "over tcp"
        devices(broker, "--devices", "5", "--count", "20")
        wait_until(lambda: stats(core).get("tasks.succeeded", 0) >= 101, 30, "telemetry tasks")
        by_device = seqs_by_device(all_tasks(core))
        assert all(seqs == list(range(1, 21)) for seqs in by_device.values())
        assert len(by_device) == 5
        assert role.stop() == 0
        core.stop()
    assert core.exit_code == 0


def make_tls_broker_files(d):
    """A CA and a server certificate for 127.0.0.1 (openssl), and a password file with
    user yard / password s3cret (mosquitto_passwd). Returns the paths."""
    run = lambda *a: yardlib.subprocess.run(a, check=True, capture_output=True, timeout=60)
    ca_key, ca, key, csr, cert = (str(d / n) for n in
                                  ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=yard-test-ca", "-keyout", ca_key, "-out", ca)
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", key, "-out", csr)
    ext = d / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    run("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
        "-days", "2", "-extfile", str(ext), "-out", cert)
    passwd = str(d / "passwd")
    run("mosquitto_passwd", "-c", "-b", passwd, "yard", "s3cret")
    return ca, cert, key, passwd


def test_tls_and_password_to_the_broker(tmp_path):
    ca, cert, key, passwd = make_tls_broker_files(tmp_path)
    port = yardlib.free_port()
    conf = tmp_path / "tls-broker.conf"
    conf.write_text(f"listener {port} 127.0.0.1\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\n"
                    f"allow_anonymous false\npassword_file {passwd}\n" + yardlib.ROOT_STAYS_ROOT)
    broker = yardlib.Process(["mosquitto", "-c", str(conf)], str(tmp_path / "tls-broker.log"))
    try:
        def accepting():
            with yardlib.socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0
        wait_until(accepting, 10, "the TLS broker")
        for password, works in (("wrong", False), ("s3cret", True)):
            mconf = tmp_path / f"master-{password}.toml"
            mconf.write_text(f'[mqtt]\nbrokers = ["mqtts://127.0.0.1:{port}"]\n'
                             f'tls_ca_file = "{ca}"\nusername = "yard"\npassword = "{password}"\n'
                             'reconnect_min = "50ms"\nstats_interval = "50ms"\n')
            with Master(tmp_path, "--memory", "--workers", "1", "--config", str(mconf)) as master:
                if not works:
                    wait_until(lambda: stats(master).get("mqtt.connect_failures", 0) >= 1, 15,
                               "the broker refusing the password")
                    assert stats(master).get("mqtt.connected", 0) == 0
                    assert "refused the connection" in master.log()
                else:
                    wait_until(lambda: stats(master).get("mqtt.connected") == 1, 15,
                               "connected over TLS with the password")
                    sub = yardlib.Process(
                        ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "--cafile", ca, "-u", "yard", "-P",
                         "s3cret", "-q", "1", "-v", "-C", "1", "-t", "yard/devices/+/responses/#"],
                        str(tmp_path / "tls-sub.log"))
                    def answered():
                        yardlib.subprocess.run(
                            ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "--cafile", ca, "-u", "yard", "-P",
                             "s3cret", "-q", "1", "-t", "yard/devices/t1/requests/echo",
                             "-m", '{"request_id":"tls1","payload":"secret hello"}'],
                            check=True, timeout=10)
                        time.sleep(0.2)
                        return "tls1" in sub.log()
                    wait_until(answered, 20, "a request answered over TLS")
                    assert '"result":"secret hello"' in sub.log()
                    sub.stop()
                master.stop()
            assert master.exit_code == 0
    finally:
        broker.stop()

#!/usr/bin/env python3
"""Does an MQTT PUBACK from a NATS 2.9 cluster cover a JetStream stream of the same subjects?

The question behind option (b) of issue 22 (collectors as one durable JetStream consumer of a
stream `WARD` capturing `ward.v1.>`, agents still publishing MQTT QoS 1): the agent forgets a
message at the PUBACK, so the PUBACK must mean "stored in WARD". This probe starts 3 nodes,
creates WARD (3 replicas, file storage) over the NATS protocol (a minimal client: the protocol
is text), publishes N QoS 1 messages with `publish-observations` to a node other than WARD's
leader at a steady rate, `kill -9`s WARD's stream leader mid-stream, restarts it, and compares
the messages WARD holds with those the publisher saw acknowledged.

    python3 bench/nats_stream_probe.py [N] [RATE]     (defaults 3000, 300)
    PROBE_KILL=0 python3 bench/nats_stream_probe.py   (baseline: no kill)

Needs nats-server on PATH and target/debug/publish-observations (cargo build -p ward-tests).
Prints one line: acknowledged, stored in WARD, lost.
"""
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
RATE = sys.argv[2] if len(sys.argv) > 2 else "300"
BASE = 40000 + random.randrange(10000)
tmp = tempfile.mkdtemp(prefix="nats-probe-")


def port(kind, i):
    return BASE + {"client": 10, "cluster": 20, "mqtt": 30, "http": 40}[kind] + i


def conf(i):
    routes = ", ".join(f"nats://127.0.0.1:{port('cluster', k)}" for k in range(3))
    return (
        f"server_name: n{i}\nlisten: 127.0.0.1:{port('client', i)}\n"
        f"http: 127.0.0.1:{port('http', i)}\njetstream {{ store_dir: \"{tmp}/js{i}\" }}\n"
        f"cluster {{ name: ward, listen: 127.0.0.1:{port('cluster', i)}, routes: [{routes}] }}\n"
        f"mqtt {{ listen: 127.0.0.1:{port('mqtt', i)} }}\n"
    )


procs = {}


def start(i):
    path = f"{tmp}/n{i}.conf"
    with open(path, "w") as f:
        f.write(conf(i))
    procs[i] = subprocess.Popen(
        ["nats-server", "-c", path],
        stdout=open(f"{tmp}/n{i}.log", "a"),
        stderr=subprocess.STDOUT,
    )


def request(i, subject, payload=b"", timeout=5.0):
    """One request over the NATS protocol to node i; the reply's JSON."""
    s = socket.create_connection(("127.0.0.1", port("client", i)), timeout=timeout)
    buf = b""

    def line():
        nonlocal buf
        while b"\r\n" not in buf:
            buf += s.recv(65536)
        l, buf = buf.split(b"\r\n", 1)
        return l

    line()  # INFO
    s.sendall(
        b'CONNECT {"verbose":false,"pedantic":false}\r\nSUB _INBOX.probe 1\r\n'
        + f"PUB {subject} _INBOX.probe {len(payload)}\r\n".encode()
        + payload
        + b"\r\nPING\r\n"
    )
    while True:
        l = line()
        if l.startswith(b"PING"):
            s.sendall(b"PONG\r\n")
        elif l.startswith(b"MSG"):
            size = int(l.split()[-1])
            while len(buf) < size + 2:
                buf += s.recv(65536)
            body = buf[:size]
            s.close()
            return json.loads(body)
        elif l.startswith(b"-ERR"):
            raise RuntimeError(l.decode())


def stream_info(i):
    return request(i, "$JS.API.STREAM.INFO.WARD")


def wait(what, check, timeout=60):
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            v = check()
            if v:
                return v
        except (OSError, RuntimeError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    sys.exit(f"probe: timed out waiting for {what} (logs in {tmp})")


for i in range(3):
    start(i)
wait("the meta leader", lambda: request(0, "$JS.API.INFO").get("type"))
created = wait(
    "stream WARD",
    lambda: request(
        0,
        "$JS.API.STREAM.CREATE.WARD",
        json.dumps(
            {"name": "WARD", "subjects": ["ward.v1.>"], "num_replicas": 3, "storage": "file"}
        ).encode(),
    ).get("config"),
)
leader_name = wait("WARD's leader", lambda: stream_info(0)["cluster"].get("leader"))
leader = int(leader_name[1:])
publish_to = (leader + 1) % 3
acked_file = f"{tmp}/acked"
pub = subprocess.Popen(
    [
        f"{ROOT}/target/debug/publish-observations",
        f"127.0.0.1:{port('mqtt', publish_to)}",
        str(N),
        "4",
        "probe",
    ],
    env={**os.environ, "WARD_ACKED_FILE": acked_file, "WARD_PUBLISH_RATE": RATE},
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
)
KILL = os.environ.get("PROBE_KILL", "1") != "0"  # PROBE_KILL=0: the baseline, no fault
time.sleep(N / float(RATE) / 3)
if KILL:
    procs[leader].kill()
    procs[leader].wait()
    time.sleep(1)
    start(leader)
out, err = pub.communicate()
acked = len(open(acked_file).read().split())
survivor = (leader + 2) % 3
time.sleep(3)  # let the restarted node catch up before counting
stored = wait("WARD's state", lambda: stream_info(survivor)["state"]["messages"] + 0 or -1)
for p in procs.values():
    p.kill()
print(
    f"probe: WARD leader n{leader} {'killed mid-stream' if KILL else 'not killed'}; publisher on n{publish_to} "
    f"({'completed' if pub.returncode == 0 else 'connection lost: ' + err.decode().strip()[:120]}); "
    f"acknowledged {acked}, stored in WARD {max(stored, 0)}, lost {max(acked - max(stored, 0), 0)} "
    f"(logs in {tmp})"
)

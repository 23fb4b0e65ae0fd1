#!/usr/bin/env python3
"""POCT1-A (CLSI POCT1-A2) peers for the `poct1a` capture scenario, on TCP sockets.

There is no open POCT1-A device or data manager in the package registries, so both ends replay
public sample messages (protocols/testdata/poct1a/, see its README): the device's HEL.R01 is
Nova Biomedical's StatStrip hello from its DML interface specification §6.2.4, its OBS.R01 the
specification's §6.4.2 observation with canary patient and operator values, its DST.R01 a
HemoScreen middleware's status sample; the data manager answers with the specification's
ACK.R01 and REQ.R01 samples.

    poct1a_peers.py manager --ip IP --port PORT [--seconds N]
    poct1a_peers.py device --ip IP --port PORT

The device (TCP client) sends HEL, waits for the ACK, sends DST, waits for the REQ, sends OBS,
waits for the ACK, sends EOT and waits for END; each message is one XML document.
"""
import argparse
import os
import socket
import sys
import time

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "protocols",
                    "testdata", "poct1a")


def sample(name):
    with open(os.path.join(DATA, name), "rb") as f:
        return f.read().strip()


REQ = (b'<REQ.R01><HDR><HDR.message_type V="REQ.R01" SN="POCT1" SV="1" />'
       b'<HDR.control_id V="9003" /><HDR.version_id V="POCT1" />'
       b'<HDR.creation_dttm V="2024-01-15T10:30:03.000+08:00" /></HDR>'
       b'<REQ><REQ.request_cd V="ROBS" /></REQ></REQ.R01>')
EOT = (b'<EOT.R01><HDR><HDR.control_id V="5" /><HDR.version_id V="POCT1" />'
       b'<HDR.creation_dttm V="2024-01-01T10:00:10+00:00" /></HDR>'
       b'<EOT><EOT.topic_cd V="OBS" SN="POCT1" SV="1" /></EOT></EOT.R01>')
END = (b'<END.R01><HDR><HDR.control_id V="9004" /><HDR.version_id V="POCT1" />'
       b'<HDR.creation_dttm V="2024-01-01T10:00:11+00:00" /></HDR>'
       b'<TRM><TRM.reason_cd V="NRM" /></TRM></END.R01>')


def read_message(conn, buf):
    """One XML document: up to the closing tag of its root element."""
    while True:
        s = buf.lstrip()
        if s.startswith(b"<"):
            name = s[1:].split(b">", 1)[0].split()[0].rstrip(b"/")
            close = b"</" + name + b">"
            if close in s:
                end = s.index(close) + len(close)
                return name.decode(), s[end:]
        chunk = conn.recv(4096)
        if not chunk:
            raise SystemExit("connection closed mid-message")
        buf += chunk


def manager(args):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((args.ip, args.port))
    srv.listen(1)
    srv.settimeout(args.seconds)
    print("listening", flush=True)
    conn, _ = srv.accept()
    conn.settimeout(args.seconds)
    buf = b""
    ack = sample("ack.xml")
    while True:
        name, buf = read_message(conn, buf)
        print("got", name, flush=True)
        if name == "HEL.R01" or name == "OBS.R01":
            conn.sendall(ack + b"\r\n")
        elif name == "DST.R01":
            conn.sendall(REQ + b"\r\n")
        elif name == "EOT.R01":
            conn.sendall(END + b"\r\n")
            break
    time.sleep(0.2)
    conn.close()
    print("conversation done", flush=True)


def device(args):
    s = socket.create_connection((args.ip, args.port), timeout=5)
    buf = b""
    for msg, want in [(sample("hel.xml"), "ACK.R01"), (sample("dst.xml"), "REQ.R01"),
                      (sample("obs.xml"), "ACK.R01"), (EOT, "END.R01")]:
        s.sendall(msg + b"\r\n")
        name, buf = read_message(s, buf)
        if name != want:
            sys.exit("expected %s, got %s" % (want, name))
        print("got", name, flush=True)
    s.close()


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    for n in ("manager", "device"):
        c = sub.add_parser(n)
        c.add_argument("--ip", required=True)
        c.add_argument("--port", type=int, required=True)
        c.add_argument("--seconds", type=float, default=8)
    args = p.parse_args()
    {"manager": manager, "device": device}[args.cmd](args)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""B. Braun Space communication (BCC) peers for the `bcc` capture scenario, on TCP sockets.

No open SpaceCom exists, so both ends follow the framing of the public open-source BCC client
KaiWU17TUM/icu_devices (`icu_devices/src/bcc.cpp`, `bbraun_const.h`): SOH, the frame length as
five digits, STX, bed id, '>', payload, ETX, the byte sum (SOH..ETX, mod 256) as five digits,
EOT; then D->EX, E->EE, d->ex, e->ee stuffing. The client's two requests are exactly what that
client writes (`1/1/1>ADMIN:ALIVE`, `1/1/1>MEM:GET`); the SpaceCom's answer is built here from
records (`relative time,address,PARAMETER,value`, RS-separated) named in `bbraun_const.h`, with
canary values in the patient and nurse records ward must skip. Identity values are fictional.

    bcc_peers.py testdata DIR
    bcc_peers.py spacecom --ip IP --port PORT [--seconds N]
    bcc_peers.py client --ip IP --port PORT
"""
import argparse
import os
import socket
import sys

SOH, STX, ETX, EOT, ACK, RS = 0x01, 0x02, 0x03, 0x04, 0x06, 0x1E


def frame(bed_id, payload):
    body = bed_id + b">" + payload
    total = 15 + len(bed_id) + len(payload)
    raw = bytes([SOH]) + b"%05d" % total + bytes([STX]) + body + bytes([ETX])
    raw += b"%05d" % (sum(raw) % 256) + bytes([EOT])
    out = bytearray()
    for b in raw:
        out += {0x44: b"EX", 0x45: b"EE", 0x64: b"ex", 0x65: b"ee"}.get(b, bytes([b]))
    return bytes(out)


ALIVE = frame(b"1/1/1", b"ADMIN:ALIVE")
MEMGET = frame(b"1/1/1", b"MEM:GET")
RECORDS = [
    (b"0", b"1", b"VERSION", b"3.0"),
    (b"0", b"1", b"FMNOR", b"1"),
    (b"12", b"1/1", b"GNMODEL", b"Perfusor Space"),
    (b"12", b"1/1", b"INSERNUM", b"123456"),
    (b"12", b"1/1", b"INDTNR", b"8713030"),
    (b"12", b"1/1", b"PATID", b"CANARY-MRN-BCC-0001"),
    (b"12", b"1/1", b"PATIDBADGE", b"CANARYBCC^JOHNSMITH"),
    (b"12", b"1/1", b"NURSEID", b"CANARYBCC^NURSING"),
    (b"12", b"1/1", b"INSOL", b"Propofol 1%"),
    (b"12", b"1/1", b"INRT", b"5,0"),
]
RESPONSE = frame(b"1/1/1", bytes([RS]).join(b",".join(r) for r in RECORDS))


def testdata(args):
    os.makedirs(args.dir, exist_ok=True)
    for name, b in [("alive", ALIVE), ("memget", MEMGET), ("response", RESPONSE)]:
        with open(os.path.join(args.dir, name + ".bin"), "wb") as f:
            f.write(b)


def read_frame(conn):
    buf = b""
    while not buf.endswith(bytes([EOT])):
        chunk = conn.recv(1)
        if not chunk:
            raise SystemExit("connection closed mid-frame")
        if not buf and chunk[0] == ACK:
            continue
        buf += chunk
    return buf


def spacecom(args):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((args.ip, args.port))
    srv.listen(1)
    srv.settimeout(args.seconds)
    print("listening", flush=True)
    conn, _ = srv.accept()
    conn.settimeout(args.seconds)
    for want in (ALIVE, MEMGET):
        got = read_frame(conn)
        if got != want:
            sys.exit("unexpected request %r" % got)
        conn.sendall(bytes([ACK]))
        if want == MEMGET:
            conn.sendall(RESPONSE)
    conn.recv(1)  # the client's ACK
    conn.close()
    print("served", flush=True)


def client(args):
    s = socket.create_connection((args.ip, args.port), timeout=5)
    s.sendall(ALIVE)
    if s.recv(1) != bytes([ACK]):
        sys.exit("no ACK")
    s.sendall(MEMGET)
    if s.recv(1) != bytes([ACK]):
        sys.exit("no ACK")
    got = read_frame(s)
    if got != RESPONSE:
        sys.exit("unexpected response")
    s.sendall(bytes([ACK]))
    s.close()
    print("done", flush=True)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("testdata")
    t.add_argument("dir")
    for n in ("spacecom", "client"):
        c = sub.add_parser(n)
        c.add_argument("--ip", required=True)
        c.add_argument("--port", type=int, required=True)
        c.add_argument("--seconds", type=float, default=8)
    args = p.parse_args()
    {"testdata": testdata, "spacecom": spacecom, "client": client}[args.cmd](args)


if __name__ == "__main__":
    main()

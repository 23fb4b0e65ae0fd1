#!/usr/bin/env python3
"""Philips IntelliVue Data Export peers for the `intellivue` capture scenario (UDP sockets).

There is no open IntelliVue monitor to run, so the monitor side replays sample messages built
here in the layouts of the Data Export Interface Programming Guide (4535 642 59271) as the public
open-source clients parse them (xeonfusion/VSCaptureMP, mdpnp's OpenICE IntelliVue driver and
its IntellivueAcceptor simulator, the DICES MP70 driver); the client side sends VSCaptureMP's
public byte arrays (`aarq_msg`, `mds_create_resp_msg`, `poll_request_msg`) unchanged. The
monitor's identity values are fictional; canary patient values sit in patient attributes of the
MDS Create list (family name, patient id) and the bed label, which ward must skip unread.

    intellivue_peers.py testdata DIR        write the messages as .bin files (unit test samples)
    intellivue_peers.py monitor --ip IP --bcast BCAST [--seconds N]
    intellivue_peers.py client --ip IP [--seconds N]

`monitor` broadcasts the Connect Indication to BCAST:24005 once a second and answers an
association request on 24105 with the MDS Create Event Report; `client` waits for the Connect
Indication, associates from an ephemeral port, acknowledges the MDS create and sends one poll.
"""
import argparse
import os
import socket
import struct
import sys
import time

CI_PORT, DATA_PORT = 24005, 24105


def u16(v):
    return struct.pack("!H", v)


def label(text):
    raw = text.encode("ascii") if isinstance(text, str) else text
    if len(raw) % 2:
        raw += b"\x00"  # the guide's strings are padded to an even length
    return u16(len(raw)) + raw


def ava(attr_id, value):
    return u16(attr_id) + u16(len(value)) + value


def attr_list(avas):
    body = b"".join(avas)
    return u16(len(avas)) + u16(len(body)) + body


def prod_spec(entries):
    body = b"".join(u16(t) + u16(c) + label(v) for t, c, v in entries)
    return u16(len(entries)) + u16(len(body)) + body


def event_report(prefix, invoke, command, event_type, event_body):
    era = u16(0x0021) + u16(0) + u16(0) + struct.pack("!I", 0x000ABD00) + u16(event_type)
    era += u16(len(event_body)) + event_body
    roiv = u16(invoke) + u16(command) + u16(len(era)) + era
    return prefix + u16(1) + u16(len(roiv)) + roiv


SERIAL, PART, HW, SW, FW, PROTO = 1, 2, 3, 4, 5, 6
COMP_PRODUCT, COMP_MAIN_BD, COMP_APPL_SW = 0x08, 0x50, 0x58


def connect_indication():
    avas = [
        ava(0x0986, u16(1) + u16(0x1000)),  # NOM_ATTR_SYS_TYPE
        ava(0x092D, prod_spec([
            (SERIAL, COMP_MAIN_BD, "BD00000042"),  # a board's serial: not the monitor's
            (SERIAL, COMP_PRODUCT, "DE71234567"),
            (PART, COMP_PRODUCT, "M8007A"),
            (HW, COMP_PRODUCT, "A.01"),
            (SW, COMP_PRODUCT, "M.00.03"),
            (SW, COMP_APPL_SW, "M.00.03.17"),
            (PROTO, COMP_PRODUCT, "DX-EXP 2.0"),
        ])),
        ava(0x0937, struct.pack("!IHH", 0x00010000, 1, 11)),  # NOM_ATTR_LOCALIZN
        ava(0xF100, bytes.fromhex("0009fb123456") + socket.inet_aton("192.0.2.10")
            + socket.inet_aton("255.255.255.0")),  # NOM_ATTR_NET_ADDR_INFO
        ava(0xF101, u16(1) + u16(8) + u16(5) + u16(1) + u16(DATA_PORT) + u16(0)),
    ]
    # Nomenclature (not checked by ward), then an unconfirmed event report.
    return event_report(b"\x00\x01\x00\x00", 0, 0, 0x0D17, attr_list(avas))


def mds_create():
    avas = [
        ava(0x0986, u16(1) + u16(0x1000)),  # NOM_ATTR_SYS_TYPE
        ava(0x091E, label("CANARYIV^BEDLABEL")),  # NOM_ATTR_ID_BED_LABEL
        ava(0x095C, label("CANARYIV^PATIENT")),  # NOM_ATTR_PT_NAME_FAMILY
        ava(0x095A, label("CANARY-MRN-IV-0001")),  # NOM_ATTR_PT_ID
        ava(0x0928, label("Philips Medical Systems") + label("M8007A")),  # NOM_ATTR_ID_MODEL
        ava(0x0984, label(bytes.fromhex("0009fb123456"))),  # NOM_ATTR_SYS_ID
        ava(0x092D, prod_spec([
            (SERIAL, COMP_PRODUCT, "DE71234567"),
            (PART, COMP_PRODUCT, "M8007A"),
            (SW, COMP_PRODUCT, "M.00.03"),
        ])),
        ava(0x0987, bytes.fromhex("2026120601000000")),  # NOM_ATTR_TIME_ABS
    ]
    body = u16(0x0021) + u16(0) + u16(0) + attr_list(avas)  # MDSCreateInfo
    return event_report(b"\xe1\x00\x00\x02", 1, 1, 0x0D06, body)


# VSCaptureMP's public byte arrays (client side), unchanged.
AARQ = bytes([
    0x0D, 0xEC, 0x05, 0x08, 0x13, 0x01, 0x00, 0x16, 0x01, 0x02, 0x80, 0x00, 0x14, 0x02, 0x00, 0x02,
    0xC1, 0xDC, 0x31, 0x80, 0xA0, 0x80, 0x80, 0x01, 0x01, 0x00, 0x00, 0xA2, 0x80, 0xA0, 0x03, 0x00,
    0x00, 0x01, 0xA4, 0x80, 0x30, 0x80, 0x02, 0x01, 0x01, 0x06, 0x04, 0x52, 0x01, 0x00, 0x01, 0x30,
    0x80, 0x06, 0x02, 0x51, 0x01, 0x00, 0x00, 0x00, 0x00, 0x30, 0x80, 0x02, 0x01, 0x02, 0x06, 0x0C,
    0x2A, 0x86, 0x48, 0xCE, 0x14, 0x02, 0x01, 0x00, 0x00, 0x00, 0x01, 0x01, 0x30, 0x80, 0x06, 0x0C,
    0x2A, 0x86, 0x48, 0xCE, 0x14, 0x02, 0x01, 0x00, 0x00, 0x00, 0x02, 0x01, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x61, 0x80, 0x30, 0x80, 0x02, 0x01, 0x01, 0xA0, 0x80, 0x60, 0x80, 0xA1, 0x80, 0x06,
    0x0C, 0x2A, 0x86, 0x48, 0xCE, 0x14, 0x02, 0x01, 0x00, 0x00, 0x00, 0x03, 0x01, 0x00, 0x00, 0xBE,
    0x80, 0x28, 0x80, 0x06, 0x0C, 0x2A, 0x86, 0x48, 0xCE, 0x14, 0x02, 0x01, 0x00, 0x00, 0x00, 0x01,
    0x01, 0x02, 0x01, 0x02, 0x81, 0x48, 0x80, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x80, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x00, 0x2C, 0x00, 0x01, 0x00, 0x28, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xE8, 0x00, 0x00,
    0x09, 0xC4, 0x00, 0x00, 0x03, 0xE8, 0xFF, 0xFF, 0xFF, 0xFF, 0x60, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x00, 0x0C, 0xF0, 0x01, 0x00, 0x08, 0x88, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
])
MDS_CREATE_RESULT = bytes([
    0xE1, 0x00, 0x00, 0x02, 0x00, 0x02, 0x00, 0x14, 0x00, 0x01, 0x00, 0x01, 0x00, 0x0E, 0x00, 0x21,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x0A, 0xBD, 0x00, 0x0D, 0x06, 0x00, 0x00,
])
POLL_REQUEST = bytes([
    0xE1, 0x00, 0x00, 0x02, 0x00, 0x01, 0x00, 0x1C, 0x00, 0x00, 0x00, 0x07, 0x00, 0x16, 0x00, 0x21,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x16, 0x00, 0x08, 0x00, 0x01, 0x00, 0x01,
    0x00, 0x06, 0x00, 0x00,
])


def testdata(args):
    os.makedirs(args.dir, exist_ok=True)
    for name, b in [("connect-indication", connect_indication()), ("mds-create", mds_create()),
                    ("aarq", AARQ), ("mds-create-result", MDS_CREATE_RESULT),
                    ("poll-request", POLL_REQUEST)]:
        with open(os.path.join(args.dir, name + ".bin"), "wb") as f:
            f.write(b)


def monitor(args):
    ci = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ci.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    ci.bind((args.ip, 0))
    data = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    data.bind((args.ip, DATA_PORT))
    data.settimeout(0.2)
    print("listening", flush=True)
    end, last_ci = time.time() + args.seconds, 0.0
    while time.time() < end:
        if time.time() - last_ci >= 1.0:
            ci.sendto(connect_indication(), (args.bcast, CI_PORT))
            last_ci = time.time()
        try:
            msg, peer = data.recvfrom(2048)
        except socket.timeout:
            continue
        if msg[:1] == b"\x0d":
            data.sendto(mds_create(), peer)
        elif msg == MDS_CREATE_RESULT:
            print("associated", flush=True)
        elif msg == POLL_REQUEST:
            print("polled", flush=True)
            return


def client(args):
    ci = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ci.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ci.bind(("", CI_PORT))
    ci.settimeout(args.seconds)
    msg, (mon_ip, _) = ci.recvfrom(2048)
    print("connect indication from", mon_ip, flush=True)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((args.ip, 0))
    s.settimeout(args.seconds)
    s.sendto(AARQ, (mon_ip, DATA_PORT))
    reply, peer = s.recvfrom(2048)
    if reply[:2] != b"\xe1\x00":
        sys.exit("no MDS create event report")
    print("mds create", len(reply), flush=True)
    s.sendto(MDS_CREATE_RESULT, peer)
    time.sleep(0.1)
    s.sendto(POLL_REQUEST, peer)
    print("done", flush=True)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("testdata")
    t.add_argument("dir")
    m = sub.add_parser("monitor")
    m.add_argument("--ip", required=True)
    m.add_argument("--bcast", required=True)
    m.add_argument("--seconds", type=float, default=6)
    c = sub.add_parser("client")
    c.add_argument("--ip", required=True)
    c.add_argument("--seconds", type=float, default=6)
    args = p.parse_args()
    {"testdata": testdata, "monitor": monitor, "client": client}[args.cmd](args)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""NetBIOS name service (RFC 1001/1002) B-node peer for the `nbns` capture scenario.

`node NAME GROUP --ip IP --bcast BCAST` behaves like a B-node's name service (as nmbd does):
it broadcasts name registration requests for NAME<00>, NAME<20> and the group GROUP<00>
(RFC 1002 §4.2.2, B flag set), then answers broadcast name queries for its unique names with
positive name query responses sent by the owner (§4.2.13, RA clear). The querier in the
scenario is Samba's nmblookup.
"""
import argparse
import socket
import struct
import time

PORT = 137
TYPE_NB, CLASS_IN = 0x20, 1
GROUP_BIT = 0x8000


def encode(name, suffix):
    raw = name.upper().ljust(15)[:15].encode("ascii") + bytes([suffix])
    enc = bytearray()
    for c in raw:
        enc += bytes([ord("A") + (c >> 4), ord("A") + (c & 0xf)])
    return bytes([32]) + bytes(enc) + b"\x00"


def decode(label):
    raw = bytes(((label[i] - 65) << 4) | (label[i + 1] - 65) for i in range(0, 32, 2))
    return raw[:15].decode("ascii", "replace").rstrip(), raw[15]


def registration(trn, name, suffix, group, ip):
    # Opcode 5, RD, B (broadcast); one question, one additional record pointing at it.
    flags = (5 << 11) | 0x0100 | 0x0010
    q = encode(name, suffix) + struct.pack("!HH", TYPE_NB, CLASS_IN)
    rr = b"\xc0\x0c" + struct.pack("!HHIH", TYPE_NB, CLASS_IN, 300000, 6) \
        + struct.pack("!H", GROUP_BIT if group else 0) + socket.inet_aton(ip)
    return struct.pack("!HHHHHH", trn, flags, 1, 0, 0, 1) + q + rr


def node(args):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    s.bind(("", PORT))
    names = [(args.name, 0x00, False), (args.name, 0x20, False), (args.group, 0x00, True)]
    trn = 0x5741
    for name, suffix, group in names:
        trn += 1
        s.sendto(registration(trn, name, suffix, group, args.ip), (args.bcast, PORT))
        time.sleep(0.05)
    print("registered", flush=True)
    s.settimeout(0.2)
    end = time.time() + args.seconds
    while time.time() < end:
        try:
            msg, peer = s.recvfrom(1500)
        except socket.timeout:
            continue
        if len(msg) < 12 + 34 + 4 or peer[0] == args.ip:
            continue
        trn, flags, qd = struct.unpack("!HHH", msg[:6])
        if flags & 0x8000 or (flags >> 11) & 0xf != 0 or qd != 1 or msg[12] != 32:
            continue
        qname, qsuffix = decode(msg[13:45])
        qtype = struct.unpack("!H", msg[46:48])[0]
        if qtype != TYPE_NB or not any(
                qname == n.upper() and qsuffix == sfx and not g for n, sfx, g in names):
            continue
        # Positive name query response from the owner: R, opcode 0, AA, RD; RA clear.
        rflags = 0x8000 | 0x0400 | 0x0100
        rr = msg[12:46] + struct.pack("!HHIH", TYPE_NB, CLASS_IN, 300000, 6) \
            + struct.pack("!H", 0) + socket.inet_aton(args.ip)
        s.sendto(struct.pack("!HHHHHH", trn, rflags, 0, 1, 0, 0) + rr, peer)
        print(f"answered {qname}<{qsuffix:02x}> for {peer[0]}", flush=True)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    n = sub.add_parser("node")
    n.add_argument("name")
    n.add_argument("group")
    n.add_argument("--ip", required=True)
    n.add_argument("--bcast", required=True)
    n.add_argument("--seconds", type=float, default=5)
    args = p.parse_args()
    node(args)


if __name__ == "__main__":
    main()

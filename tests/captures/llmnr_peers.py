#!/usr/bin/env python3
"""LLMNR (RFC 4795) peers for the `llmnr` capture scenario, on raw UDP sockets.

`respond NAME --ip IP` answers, like a Windows host or systemd-resolved would, the A/AAAA
queries for its own single-label NAME sent to 224.0.0.252:5355 (unicast reply from port 5355,
§2.4); `query NAME` sends an A and an AAAA query and prints what came back. Neither ever sends
anything but LLMNR messages inside the capture namespaces.
"""
import argparse
import ipaddress
import random
import socket
import struct
import sys
import time

GROUP, PORT = "224.0.0.252", 5355
TYPE_A, TYPE_AAAA, CLASS_IN = 1, 28, 1


def name_wire(name):
    out = b""
    for label in name.split("."):
        out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\x00"


def parse_question(msg):
    pos, labels = 12, []
    while msg[pos]:
        n = msg[pos]
        labels.append(msg[pos + 1:pos + 1 + n].decode("ascii", "replace"))
        pos += 1 + n
    qtype, qclass = struct.unpack("!HH", msg[pos + 1:pos + 5])
    return ".".join(labels), qtype, qclass, msg[12:pos + 5]


def respond(args):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("", PORT))
    mreq = socket.inet_aton(GROUP) + socket.inet_aton(args.ip)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    s.settimeout(0.2)
    print("listening", flush=True)
    end = time.time() + args.seconds
    while time.time() < end:
        try:
            msg, peer = s.recvfrom(1500)
        except socket.timeout:
            continue
        if len(msg) < 12:
            continue
        ident, flags, qd = struct.unpack("!HHH", msg[:6])
        if flags & 0x8000 or qd != 1:
            continue
        qname, qtype, qclass, question = parse_question(msg)
        # §2.3: answer only for names this host is authoritative for.
        if qname.lower() != args.name.lower() or qclass != CLASS_IN:
            continue
        answers = []
        if qtype == TYPE_A:
            answers.append((TYPE_A, socket.inet_aton(args.ip)))
        elif qtype == TYPE_AAAA and args.ip6:
            answers.append((TYPE_AAAA, ipaddress.IPv6Address(args.ip6).packed))
        body = b""
        for rtype, rdata in answers:
            body += name_wire(args.name) + struct.pack("!HHIH", rtype, CLASS_IN, 30, len(rdata)) + rdata
        header = struct.pack("!HHHHHH", ident, 0x8000, 1, len(answers), 0, 0)
        s.sendto(header + question + body, peer)
        print(f"answered {qname} type {qtype} for {peer[0]}", flush=True)


def query(args):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)  # §2.5: TTL 1 for IPv4
    s.bind((args.ip, 0))
    s.settimeout(1.0)
    ok = True
    for qtype in (TYPE_A, TYPE_AAAA):
        ident = random.randrange(1, 0x10000)
        msg = struct.pack("!HHHHHH", ident, 0, 1, 0, 0, 0) + name_wire(args.name) \
            + struct.pack("!HH", qtype, CLASS_IN)
        s.sendto(msg, (GROUP, PORT))
        try:
            reply, peer = s.recvfrom(1500)
        except socket.timeout:
            print(f"no answer for type {qtype}", flush=True)
            ok = False
            continue
        an = struct.unpack("!H", reply[6:8])[0]
        print(f"resolved {args.name} type {qtype}: {an} answer(s) from {peer[0]}", flush=True)
    return 0 if ok else 1


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("respond")
    r.add_argument("name")
    r.add_argument("--ip", required=True)
    r.add_argument("--ip6")
    r.add_argument("--seconds", type=float, default=5)
    q = sub.add_parser("query")
    q.add_argument("name")
    q.add_argument("--ip", required=True)
    args = p.parse_args()
    sys.exit(respond(args) if args.cmd == "respond" else query(args))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Replays capture files as one endless live pcapng stream on standard output.

    replay.py [--round-seconds S] [--rounds N] FILE...

Every round writes every packet of every FILE (classic pcap or pcapng, any link type) with
fresh, increasing timestamps taken from the clock, then sleeps S seconds (default 0.5).
Each link type gets its own pcapng interface, so Ethernet, Linux SLL/SLL2 and BSD NULL
captures share one stream. `ward-agent read -` reads it as it would `tcpdump -w -`.
--rounds 0 (the default) runs until SIGTERM/SIGINT or until the reader goes away.
"""

import argparse
import signal
import struct
import sys
import time


def read_pcap(data):
    """Yields (linktype, frame) from a classic pcap file."""
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        raise ValueError("not a pcap file")
    linktype = struct.unpack(e + "I", data[20:24])[0] & 0x0FFFFFFF
    off = 24
    while off + 16 <= len(data):
        caplen = struct.unpack(e + "I", data[off + 8 : off + 12])[0]
        off += 16
        yield linktype, data[off : off + caplen]
        off += caplen


def read_pcapng(data):
    """Yields (linktype, frame) from a pcapng file (EPB and SPB packets)."""
    off, e, ifaces = 0, "<", []
    while off + 12 <= len(data):
        btype_raw = data[off : off + 4]
        if btype_raw == b"\x0a\x0d\x0d\x0a":
            e = "<" if data[off + 8 : off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            ifaces = []
        btype, blen = struct.unpack(e + "II", data[off : off + 8])
        body = data[off + 8 : off + blen - 4]
        if btype == 1:  # IDB
            ifaces.append(struct.unpack(e + "H", body[:2])[0])
        elif btype == 6:  # EPB
            if_id, _hi, _lo, caplen, _orig = struct.unpack(e + "IIIII", body[:20])
            yield ifaces[if_id], body[20 : 20 + caplen]
        elif btype == 3 and ifaces:  # SPB
            orig = struct.unpack(e + "I", body[:4])[0]
            yield ifaces[0], body[4 : 4 + orig]
        off += blen


def load(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        return list(read_pcapng(data))
    return list(read_pcap(data))


def block(btype, body):
    pad = (-len(body)) % 4
    n = 12 + len(body) + pad
    return struct.pack("<II", btype, n) + body + b"\0" * pad + struct.pack("<I", n)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--round-seconds", type=float, default=0.5)
    ap.add_argument("--rounds", type=int, default=0)
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()

    packets = []
    for path in args.files:
        packets.extend(load(path))
    linktypes = sorted({lt for lt, _ in packets})
    if_of = {lt: i for i, lt in enumerate(linktypes)}

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))

    out = sys.stdout.buffer
    header = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    for lt in linktypes:
        header += block(1, struct.pack("<HHI", lt, 0, 262144))
    last_us = 0
    rounds = 0
    try:
        out.write(header)
        while not stop and (args.rounds == 0 or rounds < args.rounds):
            buf = bytearray()
            for lt, frame in packets:
                last_us = max(int(time.time() * 1e6), last_us + 1)
                body = struct.pack(
                    "<IIIII",
                    if_of[lt],
                    last_us >> 32,
                    last_us & 0xFFFFFFFF,
                    len(frame),
                    len(frame),
                )
                buf += block(6, body + frame)
            out.write(buf)
            out.flush()
            rounds += 1
            if args.rounds == 0 or rounds < args.rounds:
                time.sleep(args.round_seconds)
    except BrokenPipeError:
        pass
    print(f"replay: {rounds} rounds of {len(packets)} packets", file=sys.stderr)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Rewrite an Ethernet pcap into a BSD loopback / DLT_NULL (linktype 0) pcap.

Linux cannot capture DLT_NULL natively (its loopback device is Ethernet-
framed, and `tcpdump -i lo` gives LINKTYPE_ETHERNET), so generate.sh records
a normal Ethernet capture and this tool re-frames it the way BSD/macOS
`tcpdump -i lo0` would: each IPv4 packet is prefixed by a 4-byte address
family in the *writer's* host byte order (AF_INET = 2).  The file header
is written in the same (little-endian) byte order, so readers must use the
pcap magic to decide how to read the family word.

Frames that are not IPv4 (ARP, ...) are dropped; 802.1Q tags are stripped.
Usage: pcap_to_null.py IN.pcap OUT.pcap
"""
import struct
import sys

LINKTYPE_ETHERNET = 1
LINKTYPE_NULL = 0
AF_INET = 2


def read_pcap(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        raise SystemExit("%s: not a classic pcap file" % path)
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    _, _, _, _, snaplen, linktype = struct.unpack(e + "HHiIII", data[4:24])
    if linktype != LINKTYPE_ETHERNET:
        raise SystemExit("%s: linktype %d, expected Ethernet" % (path, linktype))
    off = 24
    pkts = []
    while off + 16 <= len(data):
        sec, frac, incl, orig = struct.unpack(e + "IIII", data[off:off + 16])
        off += 16
        pkts.append((sec, frac, orig, data[off:off + incl]))
        off += incl
    return nano, snaplen, pkts


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    nano, snaplen, pkts = read_pcap(sys.argv[1])
    out = bytearray()
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out += struct.pack("<IHHiIII", magic, 2, 4, 0, 0, snaplen, LINKTYPE_NULL)
    kept = 0
    for sec, frac, orig, frame in pkts:
        eth_type_off = 12
        etype = struct.unpack(">H", frame[12:14])[0]
        while etype in (0x8100, 0x88A8):
            eth_type_off += 4
            etype = struct.unpack(">H", frame[eth_type_off:eth_type_off + 2])[0]
        if etype != 0x0800:
            continue
        ip = frame[eth_type_off + 2:]
        body = struct.pack("<I", AF_INET) + ip
        orig_len = orig - (eth_type_off + 2) + 4
        out += struct.pack("<IIII", sec, frac, len(body), orig_len) + body
        kept += 1
    with open(sys.argv[2], "wb") as f:
        f.write(out)
    print("%s: %d IPv4 packets -> DLT_NULL" % (sys.argv[2], kept))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Userspace VLAN "switch port" used by generate.sh for the tagged captures.

The kernel generate.sh was written on has no 802.1Q support (CONFIG_VLAN_8021Q,
bridge VLAN filtering and tc act_vlan are all off), so `ip link add ... type
vlan` is not available.  This relay plays the part of a switch with one access
port and one trunk port instead:

  access -> trunk : insert the configured tags (outermost first) after the
                    MAC addresses and send the frame out of the trunk
  trunk  -> access: remove every 802.1Q / 802.1ad / 0x9100 tag and send the
                    bare frame out of the access port

Two relays back to back over a veth "trunk" give tagged frames on the wire
between them while the real peers at both ends stay untagged.

Usage: vlan_relay.py ACCESS_IF TRUNK_IF TPID:VID [TPID:VID ...]
       e.g. vlan_relay.py acc1 trk1 0x88a8:200 0x8100:100   (QinQ)
Runs until killed.  Prints "ready" once both sockets are bound.
"""
import os
import select
import socket
import struct
import sys

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
TAG_TPIDS = (0x8100, 0x88A8, 0x9100)


def open_port(ifname):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((ifname, ETH_P_ALL))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    return s


def strip_tags(frame):
    while len(frame) >= 18 and struct.unpack(">H", frame[12:14])[0] in TAG_TPIDS:
        frame = frame[:12] + frame[16:]
    return frame


def main():
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    access_if, trunk_if = sys.argv[1], sys.argv[2]
    tags = b""
    for spec in sys.argv[3:]:
        tpid, vid = spec.split(":")
        tags += struct.pack(">HH", int(tpid, 0), int(vid) & 0x0FFF)
    access, trunk = open_port(access_if), open_port(trunk_if)
    print("ready", flush=True)
    while True:
        readable, _, _ = select.select([access, trunk], [], [])
        for sock in readable:
            frame, addr = sock.recvfrom(65535)
            if addr[2] == PACKET_OUTGOING:
                continue  # our own transmissions
            if sock is access:
                trunk.send(frame[:12] + tags + frame[12:])
            else:
                access.send(strip_tags(frame))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        os._exit(0)

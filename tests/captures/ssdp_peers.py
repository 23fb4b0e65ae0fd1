#!/usr/bin/env python3
"""SSDP peers for the ssdp scenario (UPnP Device Architecture 2.0 §1).

`device`: a fictional UPnP device (WardTestMed VH300) that joins 239.255.255.250, sends
`ssdp:alive` NOTIFYs and answers M-SEARCHes with a unicast 200 response.
`search`: a control point that multicasts an M-SEARCH and prints the answers it receives.
"""
import argparse
import socket
import struct
import sys
import time

GROUP, PORT = "239.255.255.250", 1900
SERVER = "WardTestOS/1.0 UPnP/1.0 WardTestMed-VH300/3.2"
UUID = "uuid:5741524e-4454-4553-5456-483330300001"
DEVICE_TYPE = "urn:schemas-upnp-org:device:Basic:1"


def notify(ip):
    return (
        "NOTIFY * HTTP/1.1\r\n"
        f"HOST: {GROUP}:{PORT}\r\n"
        "CACHE-CONTROL: max-age=1800\r\n"
        f"LOCATION: http://{ip}:49152/description.xml\r\n"
        f"NT: {DEVICE_TYPE}\r\n"
        "NTS: ssdp:alive\r\n"
        f"SERVER: {SERVER}\r\n"
        f"USN: {UUID}::{DEVICE_TYPE}\r\n"
        # A canary under a header ward must never read.
        "X-WARDTEST-NOTE: CANARY^SSDPPATIENT\r\n"
        "\r\n"
    ).encode()


def response(ip, st):
    return (
        "HTTP/1.1 200 OK\r\n"
        "CACHE-CONTROL: max-age=1800\r\n"
        "EXT:\r\n"
        f"LOCATION: http://{ip}:49152/description.xml\r\n"
        f"SERVER: {SERVER}\r\n"
        f"ST: {st}\r\n"
        f"USN: {UUID}::{DEVICE_TYPE}\r\n"
        "\r\n"
    ).encode()


def device(ip, seconds):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("", PORT))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                 struct.pack("4s4s", socket.inet_aton(GROUP), socket.inet_aton(ip)))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(ip))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 2)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
    s.sendto(notify(ip), (GROUP, PORT))
    print("advertised", flush=True)
    s.settimeout(0.2)
    end = time.time() + seconds
    while time.time() < end:
        try:
            data, peer = s.recvfrom(9000)
        except socket.timeout:
            continue
        if data.startswith(b"M-SEARCH * HTTP/1.1"):
            st = DEVICE_TYPE
            for line in data.decode(errors="replace").split("\r\n"):
                if line.lower().startswith("st:"):
                    st = line[3:].strip()
            if st in ("ssdp:all", "upnp:rootdevice", DEVICE_TYPE):
                s.sendto(response(ip, DEVICE_TYPE), peer)
                print("answered", peer[0], flush=True)
                return 0
    return 1


def search(ip):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    s.bind((ip, 0))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(ip))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 2)
    msg = (
        "M-SEARCH * HTTP/1.1\r\n"
        f"HOST: {GROUP}:{PORT}\r\n"
        'MAN: "ssdp:discover"\r\n'
        "MX: 1\r\n"
        f"ST: {DEVICE_TYPE}\r\n"
        "USER-AGENT: WardTestCP/1.0 UPnP/2.0 WardTestControlPoint/1.0\r\n"
        "\r\n"
    ).encode()
    s.settimeout(0.5)
    for _ in range(6):
        s.sendto(msg, (GROUP, PORT))
        try:
            data, peer = s.recvfrom(9000)
        except socket.timeout:
            continue
        for line in data.decode(errors="replace").split("\r\n"):
            if line.lower().startswith("usn:"):
                print("found", line[4:].strip(), "from", peer[0], flush=True)
                return 0
    return 1


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["device", "search"])
    p.add_argument("--ip", required=True)
    p.add_argument("--seconds", type=float, default=6)
    a = p.parse_args()
    return device(a.ip, a.seconds) if a.mode == "device" else search(a.ip)


if __name__ == "__main__":
    sys.exit(main())

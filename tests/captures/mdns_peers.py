#!/usr/bin/env python3
"""mDNS / DNS-SD peers for the `mdns` capture scenario (python-zeroconf).

`announce`: a fictional test device ("WardTestMed VM-240") registers an `_http._tcp` service
whose TXT carries allow-listed keys (md, manufacturer, fw) and one key ward must never read
(`patient`, holding a canary). `browse`: a second host resolves that instance, so the capture
holds a query and the device's response to it.
"""
import argparse
import socket
import sys
import time

from zeroconf import IPVersion, ServiceInfo, Zeroconf

TYPE = "_http._tcp.local."
INSTANCE = "WardTestMed VM-240 (monitor)"
HOST = "wardtestmed-vm240.local."


def announce(ip: str, seconds: float) -> None:
    zc = Zeroconf(interfaces=[ip], ip_version=IPVersion.V4Only)
    info = ServiceInfo(
        TYPE,
        f"{INSTANCE}.{TYPE}",
        addresses=[socket.inet_aton(ip)],
        port=8080,
        properties={
            "md": "VM-240",
            "manufacturer": "WardTestMed",
            "fw": "2.4.1",
            # Not on ward's TXT allow-list: must never be extracted.
            "patient": "CANARY^MDNSPATIENT",
        },
        server=HOST,
    )
    zc.register_service(info)
    print("registered", flush=True)
    time.sleep(seconds)
    zc.unregister_service(info)
    zc.close()


def browse(ip: str) -> None:
    zc = Zeroconf(interfaces=[ip], ip_version=IPVersion.V4Only)
    info = zc.get_service_info(TYPE, f"{INSTANCE}.{TYPE}", timeout=5000)
    zc.close()
    if info is None:
        sys.exit("not resolved")
    print("resolved", info.server, info.properties.get(b"md"), flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["announce", "browse"])
    p.add_argument("--ip", required=True)
    p.add_argument("--seconds", type=float, default=4.0)
    a = p.parse_args()
    if a.mode == "announce":
        announce(a.ip, a.seconds)
    else:
        browse(a.ip)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Philips IntelliVue Data Export peers for the `intellivue` capture scenario (UDP sockets).

There is no open IntelliVue monitor to run, so both sides replay public byte dumps (sources in
protocols/testdata/intellivue/README.md):

- the monitor's Connect Indication is an IntelliVue MP70's (M8007A), byte for byte as
  somno/einstein's `einstein/test_intellivue.py` (SAMPLE_CONNECT_INDICATION) holds it;
- its MDS Create Event Report follows a real monitor's (`MDS_CREATE_M8000` below, the
  `alerts_resp` literal of a public Python IntelliVue client) with three substitutions of equal
  length: the model label and the system id become the MP70's (its Connect Indication's model
  and MAC address, so one monitor speaks in the capture), and the bed label becomes the ASCII
  canary `CANARYIV^BEDLABEL`;
- its answer to the poll follows a real patient demographics poll result (same client, the
  `demo_resp` literal), whose name and id fields were empty: the family name and patient id now
  carry the canaries `CANARYIV^PATIENT` and `CANARY-MRN-IV-0001` (lengths recomputed), and the
  internal patient id is zeroed;
- the client sends VSCaptureMP's public byte arrays (`aarq_msg`, `mds_create_resp_msg`,
  `poll_request_msg`) unchanged.

A second real Connect Indication (a monitor reporting model 866062, Koshsky/Intellivue-api's `my_assoc` capture) and
the unchanged MDS Create dump are written as unit test samples only.

    intellivue_peers.py testdata DIR        write the messages as .bin files (unit test samples)
    intellivue_peers.py monitor --ip IP --bcast BCAST [--seconds N]
    intellivue_peers.py client --ip IP [--seconds N]

`monitor` broadcasts the Connect Indication to BCAST:24005 once a second, answers an
association request on 24105 with the MDS Create Event Report and a poll with the demographics
result; `client` waits for the Connect Indication, associates from an ephemeral port,
acknowledges the MDS create, sends one poll and waits for its result.
"""
import argparse
import os
import socket
import struct
import sys
import time

CI_PORT, DATA_PORT = 24005, 24105

# --- Public dumps, verbatim (see protocols/testdata/intellivue/README.md) ---------------------
# somno/einstein einstein/test_intellivue.py @ 03472be42e1a16cfdca0cececec6733a482b3111:
# SAMPLE_CONNECT_INDICATION, an IntelliVue MP70 (M8007A) announcing itself.
CI_MP70 = bytes.fromhex(
    "00000100000101c20000000001bc00230000000000d6d4000d1701ae000b01aa0920000400030000098600040001114d"
    "09370008060806080001000bf15a000400000002f136000400000000f27c001a0001800000010012f100000e0009fb09"
    "77bd0a0d2502ffffff00f13500220045004300430020004d004f004e00200052004d0031003500000000000000000000"
    "f100000e0009fb0977bd0a0d2502ffffff00f101002c00050028000100035dc00000000200035dc00000000100015e29"
    "0000000500015e2900000008000182350000092d00dc0006006400010008000c44453232373133303037000900020008"
    "000e4d3830303741000000000000000000030008000820422e30302e30350005007800082d2d2d2d2d2d2d2d00020058"
    "000e532d4d343034362d313730314120000400580008472e30312e3738200007008600010008000c4445323237313330"
    "3037000900020008000e4d3830303741000000000000000000030008000820422e30302e30350005007800082d2d2d2d"
    "2d2d2d2d00020058000e532d4d343034362d313730314120000400580008472e30312e37382000020058000e532d4d34"
    "30340928001400085068696c6970730000074d38303037410000"
)
# Koshsky/Intellivue-api my_assoc @ 8c5e68865e477212f0f1d3ac5067356bc7a79612: a Wireshark hex
# dump of an IntelliVue Connect Indication (model and part number 866062) to 224.0.23.63:24005; its UDP
# payload.
CI_866062 = bytes.fromhex(
    "000001000001019a00000000019400230000000009457f000d170186001001820920000400030000098600040001114d"
    "0937000806080608000f000bf136000420000000f27c001a0001800000010012f100000e0009fb88c1bdc0a8f765ffff"
    "0000f135002200000000000000000000000000000000000000000000000000000000000000000000f100000e0009fb88"
    "c1bdc0a8f765ffff0000f101002c00050028000100035dc04000000200035dc04000000100015e290000000500015e29"
    "0000000a00015dcc0000f35e0010fe800000000000000209fbfffe88c1bd0984000a00080009fbffff88c1bd09280014"
    "00085068696c6970730000083836363036320000092d00680006006400010008000c4445333531413430363100090002"
    "0008000e383636303632000000000000000000030008000820412e30302e33300005007800082d2d2d2d2d2d2d2d0002"
    "0058000e532d4d383030332d3134303241000004005800084c2e30312e31380af12e00120001000e0002000a00010006"
    "0051000000c1f45b000400000000f39c00080800002008000009f15a000400000002"
)
# A public Python IntelliVue client (see the README: the search index that found it did not name
# its repository): the `alerts_resp` literal, a monitor's MDS Create Event Report (model
# "M8000", bed label "MICU1").
MDS_CREATE_M8000 = bytes.fromhex(
    "e10000020001011200010001010c002100000000293b6f000d0600fe002100000000001100f40984000800060009fb03"
    "4912098600040001114d091d000200320928001200085068696c6970730000064d383030300009480004000100000937"
    "0008063206320001000b094600024000090d00020002093500020002098200020002090c0002012cf1fa001400010010"
    "0001000c0006ffffffff0006ffffffff09a700020006091e00240022004d004900430055003100000000000000000000"
    "0000000000000000000000000000098700082018071813234100098f0004293b6f0009850034000100300102002c0005"
    "0028000100210000000100010006000000c9000100090000003c0001002a000000010001003600000001"
)
# Same file: the `demo_resp` literal, the monitor's result to a NOM_MOC_PT_DEMOG poll (the
# demographics were empty: no patient admitted).
DEMOGRAPHICS_RESULT_DUMP = bytes.fromhex(
    "e1000002000200e80001000700e20021000000000c1600d800012523ad00ffffffffffffffff0001002a0000000100c0"
    "0000000100ba0050001600b40921000200500957000200080a1a00020000f001000a0009fb0349121a64031f09620002"
    "00010a1e00020000095d000400020000095f000400020000095c000400020000095a000400020000f2e1000400020000"
    "f129000400020000f12a00040002000009610002000009580008000000000000000009d80006007fffff094009dc0006"
    "007fffff056009df0006007fffff06e009560006007fffff05c0f1ec00020002f2e2000480752095f2e30004808b0d98"
)


def _replace_once(b, old, new):
    """Swaps `old` for `new` (same length, so no length field changes); `old` must occur once."""
    assert len(old) == len(new) and b.count(old) == 1, (old, b.count(old))
    return b.replace(old, new)


MP70_MAC = bytes.fromhex("0009fb0977bd")  # CI_MP70's NOM_ATTR_NET_ADDR_INFO
CANARY_BED_LABEL = b"CANARYIV^BEDLABEL"
CANARY_FAMILY_NAME = b"CANARYIV^PATIENT"
CANARY_PATIENT_ID = b"CANARY-MRN-IV-0001"


def mds_create():
    """MDS_CREATE_M8000 spoken by the MP70 of CI_MP70, with a canary bed label."""
    b = MDS_CREATE_M8000
    # NOM_ATTR_SYS_ID: VariableLabel of 6 octets, the monitor's MAC address.
    b = _replace_once(b, bytes.fromhex("0984000800060009fb034912"),
                      bytes.fromhex("098400080006") + MP70_MAC)
    # NOM_ATTR_ID_MODEL: the model label ("M8000" and a NUL) becomes "M8007A".
    b = _replace_once(b, b"\x00\x06M8000\x00", b"\x00\x06M8007A")
    # NOM_ATTR_ID_BED_LABEL: a 34-octet label ("MICU1" in UTF-16), now an ASCII canary so the
    # canary scan of the capture finds it.
    label = "MICU1".encode("utf-16-be").ljust(34, b"\x00")
    b = _replace_once(b, bytes.fromhex("091e00240022") + label,
                      bytes.fromhex("091e00240022") + CANARY_BED_LABEL.ljust(34, b"\x00"))
    return b


def demographics_result():
    """DEMOGRAPHICS_RESULT_DUMP with canary family name and patient id, internal id zeroed."""
    b = bytearray(DEMOGRAPHICS_RESULT_DUMP)
    # NOM_ATTR_PT_ID_INT (0xf001, 10 octets): the monitor's patient record id.
    at = b.index(bytes.fromhex("f001000a"))
    b[at + 4:at + 14] = bytes(10)
    growth = 0
    for attr_id, value in ((0x095C, CANARY_FAMILY_NAME), (0x095A, CANARY_PATIENT_ID)):
        empty = struct.pack("!HHH", attr_id, 4, 2) + b"\x00\x00"
        at = bytes(b).index(empty)
        new = struct.pack("!HHH", attr_id, 2 + len(value), len(value)) + value
        b[at:at + len(empty)] = new
        growth += len(new) - len(empty)
    # Length fields that span the grown attributes: ROapdus, RORSapdu, ActionResult,
    # PollInfoList, SingleContextPoll, the ObservationPoll's AttributeList.
    for off in (6, 12, 22, 46, 52, 58):
        struct.pack_into("!H", b, off, struct.unpack_from("!H", b, off)[0] + growth)
    return bytes(b)


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
    for name, b in [("connect-indication-mp70", CI_MP70), ("connect-indication-866062", CI_866062),
                    ("mds-create-m8000", MDS_CREATE_M8000), ("mds-create", mds_create()),
                    ("demographics-result", demographics_result()),
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
            ci.sendto(CI_MP70, (args.bcast, CI_PORT))
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
            data.sendto(demographics_result(), peer)
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
    result, _ = s.recvfrom(2048)
    print("poll result", len(result), flush=True)
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

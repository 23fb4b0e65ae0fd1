#!/usr/bin/env python3
"""HL7 v2 / MLLP peers used by generate.sh to record HL7 fixture captures.

Sub-commands:

  write DIR          write the fixture messages to DIR/<name>.hl7, one
                     message per file, segments separated by "\\n" (the
                     format `mllp_send --loose --file` reads).
  server --port P    hl7apy.mllp.MLLPServer answering every message with an
                     AA acknowledgement (one message per connection, which is
                     how hl7apy's server works).
  send-split --host H --port P --file F
                     MLLP client that writes the message in two TCP sends
                     with a pause in between, so the message spans two TCP
                     segments on the wire; waits for and prints the ACK.

Every patient-data value contains the marker CANARY; device identity fields
never do.
"""
import argparse
import os
import socket
import sys
import time

SB, EB, CR = b"\x0b", b"\x1c", b"\x0d"


def seg(name, fields):
    """Build a segment from {field_number: value}; MSH numbering is special
    (MSH-1 is the field separator, MSH-2 the encoding characters)."""
    top = max(fields)
    if name == "MSH":
        out = ["MSH", "^~\\&"] + [""] * (top - 2)
        for k, v in fields.items():
            if k > 2:
                out[k - 1] = v
        return "|".join(out)
    out = [name] + [""] * top
    for k, v in fields.items():
        out[k] = v
    return "|".join(out)


PCD_PROFILE = "IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO"
MONITOR_APP = "MINDRAY_D-SERIES^00A037009A0053DE^EUI-64"
MONITOR_MDS = "0012211839000001^EUI-64"

MESSAGES = {
    # IHE PCD-01 Communicate PCD Data, HL7 v2.6.
    "oru-pcd01": [
        seg("MSH", {3: MONITOR_APP, 4: "WARD_ICU", 5: "WARD_DOC^0012211839000100^EUI-64",
                    6: "WARD_HOSPITAL", 7: "20240102030405+0000",
                    9: "ORU^R01^ORU_R01", 10: "WARD-PCD01-0001", 11: "P", 12: "2.6",
                    15: "AL", 16: "NE", 18: "UNICODE UTF-8", 21: PCD_PROFILE}),
        seg("PID", {3: "CANARY-MRN-HL7-0001^^^WARD_HOSPITAL^MR",
                    5: "CANARYFAMILY^CANARYGIVEN^^^^^L", 7: "19230708", 8: "U"}),
        seg("PV1", {2: "I", 3: "ICU^BED-07^^WARD_HOSPITAL", 7: "CANARYATTENDING^DOCTOR"}),
        seg("OBR", {1: "1", 2: "WARD-PCD01-0001^MINDRAY_D-SERIES^00A037009A0053DE^EUI-64",
                    3: "WARD-PCD01-0001^MINDRAY_D-SERIES^00A037009A0053DE^EUI-64",
                    4: "182777000^monitoring of patient^SNOMED-CT",
                    7: "20240102030400+0000", 16: "CANARYORDERING^PROVIDER"}),
        seg("OBX", {1: "1", 3: "69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC",
                    4: "1.0.0.0", 11: "X", 18: MONITOR_MDS}),
        seg("OBX", {1: "2", 2: "NM", 3: "150456^MDC_PULS_OXIM_SAT_O2^MDC",
                    4: "1.1.1.150456", 5: "97", 6: "262688^MDC_DIM_PERCENT^MDC",
                    7: "90-100", 11: "R", 14: "20240102030400+0000", 18: MONITOR_MDS}),
        seg("OBX", {1: "3", 2: "ST", 3: "68480^MDC_ATTR_ALARM_SOURCE^MDC",
                    4: "1.1.1.68480", 5: "CANARYOBXVALUE", 11: "R", 18: MONITOR_MDS}),
        seg("NTE", {1: "1", 3: "CANARYNTECOMMENT"}),
    ],
    # ADT^A01 (HL7 v2.5) with next of kin, insurance and guarantor.
    "adt-a01": [
        seg("MSH", {3: "WARD_ADT", 4: "WARD_HOSPITAL", 5: "WARD_LIS", 6: "WARD_LAB",
                    7: "20240102030405", 9: "ADT^A01^ADT_A01", 10: "WARD-ADT-0001",
                    11: "P", 12: "2.5"}),
        seg("EVN", {1: "A01", 2: "20240102030405"}),
        seg("PID", {1: "1", 3: "CANARY-MRN-ADT-0001^^^WARD_HOSPITAL^MR",
                    5: "CANARYADT^PATIENT", 7: "19230809", 8: "F",
                    11: "1 CANARY STREET^^CANARYTOWN^^00000"}),
        seg("NK1", {1: "1", 2: "CANARYKIN^RELATIVE", 3: "SPO^Spouse^HL70063"}),
        seg("PV1", {1: "1", 2: "I", 3: "ICU^BED-07^^WARD_HOSPITAL",
                    7: "CANARYADTATTENDING^DOCTOR"}),
        seg("IN1", {1: "1", 2: "PLAN-01", 3: "INS-01", 4: "WARD INSURANCE",
                    16: "CANARYINSURED^PERSON"}),
        seg("GT1", {1: "1", 3: "CANARYGUARANTOR^PERSON"}),
    ],
    # HL7 v2.9 style device participation (PRT) and device (DEV) segments.
    "oru-v29-prt-dev": [
        seg("MSH", {3: "WARD_PUMP_GW^0012211839000002^EUI-64", 4: "WARD_ICU",
                    5: "WARD_EMR", 6: "WARD_HOSPITAL", 7: "20240102030405+0000",
                    9: "ORU^R01^ORU_R01", 10: "WARD-V29-0001", 11: "P", 12: "2.9"}),
        seg("PID", {3: "CANARY-MRN-V29-0001^^^WARD_HOSPITAL^MR",
                    5: "CANARYV29^PATIENT", 7: "19230910"}),
        seg("OBR", {1: "1", 3: "WARD-V29-0001^WARD_PUMP_GW",
                    4: "182777000^monitoring of patient^SNOMED-CT"}),
        seg("OBX", {1: "1", 2: "NM", 3: "157784^MDC_FLOW_FLUID_PUMP^MDC",
                    4: "1.1.1.157784", 5: "12.5", 6: "265266^MDC_DIM_MILLI_L_PER_HR^MDC",
                    11: "R"}),
        seg("PRT", {2: "UC", 4: "EQUIP^Equipment^HL70912",
                    10: "WP500-0099-7731^WARD_INFUSION^0012211839000003^EUI-64",
                    16: "(01)00643169001763(17)160712(21)21A11F4855",
                    20: "WP-0099-7731"}),
        seg("DEV", {1: "A",
                    5: "WARD INFUSION SYSTEMS", 6: "WardPump", 7: "WardPump 500",
                    11: "WP-0099-7731", 16: "4.2.1"}),
    ],
}


def er7(name):
    return "\r".join(MESSAGES[name]) + "\r"


def cmd_write(args):
    os.makedirs(args.dir, exist_ok=True)
    for name, segs in MESSAGES.items():
        with open(os.path.join(args.dir, name + ".hl7"), "w", newline="") as f:
            f.write("\n".join(segs) + "\n")
    return 0


def make_ack(message: str) -> str:
    """AA acknowledgement with swapped sender/receiver; deterministic."""
    msh = message.split("\r", 1)[0].split("|")
    get = lambda n: msh[n - 1] if len(msh) >= n else ""  # noqa: E731
    trigger = get(9).split("^")[1] if "^" in get(9) else ""
    ack = [
        seg("MSH", {3: get(5), 4: get(6), 5: get(3), 6: get(4), 7: get(7),
                    9: "ACK^%s^ACK" % trigger, 10: "ACK-" + get(10),
                    11: get(11), 12: get(12)}),
        seg("MSA", {1: "AA", 2: get(10)}),
    ]
    return "\r".join(ack) + "\r"


def cmd_server(args):
    from hl7apy.mllp import AbstractErrorHandler, AbstractHandler, MLLPServer

    class AckHandler(AbstractHandler):
        def reply(self):
            return (SB + make_ack(self.incoming_message).encode() + EB + CR).decode()

    class ErrHandler(AbstractErrorHandler):
        def reply(self):
            return (SB + make_ack(self.incoming_message).encode() + EB + CR).decode()

    handlers = {
        "ORU^R01^ORU_R01": (AckHandler,),
        "ADT^A01^ADT_A01": (AckHandler,),
        "ERR": (ErrHandler,),
    }
    server = MLLPServer("0.0.0.0", args.port, handlers)
    server.serve_forever()
    return 0


def cmd_send_split(args):
    with open(args.file, newline="") as f:
        text = f.read()
    payload = text.replace("\r\n", "\r").replace("\n", "\r").encode()
    frame = SB + payload + EB + CR
    cut = len(frame) // 2
    s = socket.create_connection((args.host, args.port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(frame[:cut])
    time.sleep(0.3)
    s.sendall(frame[cut:])
    buf = b""
    while not buf.endswith(EB + CR):
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
    s.close()
    sys.stdout.write(buf.strip(SB + EB + CR).decode().replace("\r", "\n") + "\n")
    return 0 if b"MSA|AA|" in buf else 1


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("write")
    s.add_argument("dir")
    s = sub.add_parser("server")
    s.add_argument("--port", type=int, required=True)
    s = sub.add_parser("send-split")
    s.add_argument("--host", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--file", required=True)
    args = p.parse_args()
    return {"write": cmd_write, "server": cmd_server, "send-split": cmd_send_split}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())

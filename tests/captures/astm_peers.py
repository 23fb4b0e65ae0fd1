#!/usr/bin/env python3
"""ASTM E1381/E1394 peers for the ward fixture captures (see generate.sh, scenario_astm).

Both ends are the PyPI package `astm` (python-astm; installed as `astm-2025`, the release of
the same code whose codec runs on Python 3.10+: astm 0.5.0 imports collections.Iterable, and
astmio 1.0.0a3's asyncio client passes a keyword its own encoder does not take):

  astm_peers.py server --host IP --port N --out FILE
      A LIS: astm.server.Server, whose dispatcher decodes every message it ACKs with the
      package's own codec and appends the records to FILE (JSON lines) when the terminator
      record arrives. build_manifest.py reads the Header's fields back from the capture with
      the same codec; FILE is the scenario's proof that the LIS really received them.

  astm_peers.py client --host IP --port N
      An analyzer of a fictional vendor ("WardLab Diagnostics", model WLA-800): astm.client.
      Client sends two sessions (ENQ, frames, EOT): a Header naming the analyzer in H.5's
      manufacturer^product^version^instrument-id layout, then patient, order, two results, a
      comment and the terminator. The second session's records are split into intermediate
      frames (ETB, chunk_size) so the capture has both frame kinds.

Every patient-bearing field holds a canary (CANARYASTM^PATIENT, CANARY-MRN-ASTM-0001, …; the
list is CANARIES below and in build_manifest.py), and so does the Header's access password:
ward must never read any of them.
"""
import argparse
import builtins
import json
import sys

# astm-2025 1.0.0's asynclib still calls two Python 2 builtins when it sends and when it
# discards its input buffer; give them their Python 3 meaning rather than patch the package.
if not hasattr(builtins, "buffer"):
    builtins.buffer = lambda data, offset=0, size=None: memoryview(data)[
        offset:None if size is None else offset + size]
if not hasattr(builtins, "b"):
    builtins.b = lambda s: s.encode("latin-1")

import astm  # noqa: E402
from astm.client import Client  # noqa: E402
from astm.codec import decode_message  # noqa: E402
from astm.server import BaseRecordsDispatcher, Server  # noqa: E402

SENDER = ["WardLab Diagnostics", "WLA-800", "3.2.1", "WLA8-000417"]
RECEIVER = "WARDLIS"
CANARIES = ["CANARYASTM^PATIENT", "CANARY-MRN-ASTM-0001", "CANARY-LAB-ASTM-0001",
            "CANARY-ID3-ASTM-0001", "CANARYASTMMAIDEN", "19231011", "1 CANARYASTM LANE",
            "CANARYASTMDOC^PHYSICIAN", "CANARY-SPECIMEN-ASTM-0001", "CANARYASTMRESULT",
            "CANARYASTMCOMMENT", "CANARYASTMPASSWORD", "CANARY-PHONE-ASTM-0001",
            "CANARYASTMTOWN"]


def records():
    header = ["H", b"\\^&", "WARDMSG-0001", "CANARYASTMPASSWORD", SENDER, None, None,
              None, None, RECEIVER, None, "P", "LIS2-A2", "20260101120000"]
    patient = ["P", "1", "CANARY-MRN-ASTM-0001", "CANARY-LAB-ASTM-0001", "CANARY-ID3-ASTM-0001",
               ["CANARYASTM", "PATIENT"], "CANARYASTMMAIDEN", "19231011", "F", None,
               ["1 CANARYASTM LANE", "CANARYASTMTOWN"], None, "CANARY-PHONE-ASTM-0001",
               ["CANARYASTMDOC", "PHYSICIAN"]]
    order = ["O", "1", "CANARY-SPECIMEN-ASTM-0001", None, [None, None, None, "GLU"], "R",
             "20260101115500", None, None, None, None, None, None, None, None, "Serum"]
    result1 = ["R", "1", [None, None, None, "GLU"], "5.4", "mmol/L", "3.9 to 6.1", "N", None,
               "F", None, "CANARYASTMRESULT", None, "20260101120000", "WLA8-000417"]
    result2 = ["R", "2", [None, None, None, "K"], "4.1", "mmol/L", "3.5 to 5.1", "N", None,
               "F", None, None, None, "20260101120000", "WLA8-000417"]
    comment = ["C", "1", "I", "CANARYASTMCOMMENT", "G"]
    terminator = ["L", "1", "N"]
    return [as_bytes(r) for r in (header, patient, order, result1, result2, comment, terminator)]


class RecordType(bytes):
    """A record's type: bytes for the codec, equal to (and hashing like) the one-letter `str`
    the client's record-order state machine and its terminator test compare it with."""

    def __eq__(self, other):
        return bytes.__eq__(self, other.encode("latin-1") if isinstance(other, str) else other)

    def __hash__(self):
        return hash(self.decode("latin-1"))


def as_bytes(v):
    """The codec tells values from components by `isinstance(x, bytes)`: on Python 3 a `str` is
    iterable and would recurse, so every value goes in as bytes."""
    if isinstance(v, list) and v and isinstance(v[0], str) and len(v[0]) == 1:
        return [RecordType(v[0].encode("latin-1"))] + [as_bytes(x) for x in v[1:]]
    if isinstance(v, str):
        return v.encode("latin-1")
    if isinstance(v, list):
        return [as_bytes(x) for x in v]
    return v


class Recorder(BaseRecordsDispatcher):
    out = None

    def __init__(self, encoding=None):
        super().__init__(encoding)
        self.session = []

    def __call__(self, message):
        _, recs, _ = decode_message(message, self.encoding)
        self.session.extend(recs)
        if any(r and r[0] == "L" for r in recs):
            with open(self.out, "a") as f:
                f.write(json.dumps(self.session) + "\n")
            self.session = []


def serve(args):
    Recorder.out = args.out
    server = Server(host=args.host, port=args.port, dispatcher=Recorder, timeout=30)
    print("astm server on %s:%d" % (args.host, args.port), flush=True)
    server.serve_forever()


def send(args, chunk_size):
    recs = records()

    def emitter():
        for r in recs:
            ok = yield r
            assert ok, "record %s refused" % r[0]

    client = Client(emitter, host=args.host, port=args.port, timeout=10, chunk_size=chunk_size)
    client.run(timeout=1.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("role", choices=["server", "client"])
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.role == "server":
        serve(args)
    else:
        send(args, None)
        send(args, 64)
        print("astm client sent 2 sessions (astm %s)" % astm.__version__)
    return 0


if __name__ == "__main__":
    sys.exit(main())

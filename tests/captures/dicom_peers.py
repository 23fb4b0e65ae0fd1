#!/usr/bin/env python3
"""pynetdicom peers used by generate.sh to record DICOM fixture captures.

Sub-commands (all run inside the network namespaces generate.sh creates):

  scp        --port P --aet AE [--strict]
             Storage/Verification SCP.  --strict sets require_called_aet so an
             association whose Called AE differs from AE is rejected
             (A-ASSOCIATE-RJ, reason 7 "called AE title not recognised").
  scu-mr     --host H --port P --aet CALLING --aec CALLED
             C-ECHO then C-STORE of a synthetic MR image (see mr_dataset()).
  scu-reject-abort --host H --port P --aet CALLING --aec CALLED --bad-aec BAD
             1. associate with Called AE BAD  -> rejected
             2. associate with Called AE CALLED, C-ECHO, then A-ABORT.

Everything is deterministic (fixed UIDs, fixed dates) except what the stack
itself randomises (ports, TCP timestamps).
"""
import argparse
import sys
import time

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, MRImageStorage
from pynetdicom import AE, evt, debug_logger  # noqa: F401
from pynetdicom.sop_class import Verification

UID_ROOT = "2.25.276543210987654321098765432100"


def mr_dataset() -> Dataset:
    """Tiny MR image: 4x4 16-bit pixels, device identity + canary patient."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = UID_ROOT + "101"
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M"]
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = UID_ROOT + "101"
    ds.StudyDate = "20240102"
    ds.StudyTime = "030405"
    ds.AccessionNumber = "CANARY-ACC-PY1"
    ds.ReferringPhysicianName = "CANARYPY^REFERRER"
    ds.Modality = "MR"
    ds.Manufacturer = "WARD PY MEDICAL"
    ds.InstitutionName = "WARD TEST HOSPITAL"
    ds.StationName = "MR-STATION-2"
    ds.ManufacturerModelName = "PyMR 3T"
    ds.PatientName = "CANARY^PYPATIENT"
    ds.PatientID = "CANARY-MRN-PY1"
    ds.PatientBirthDate = "19230607"
    ds.DeviceSerialNumber = "PY-0007"
    ds.SoftwareVersions = "syngo MR XA20"
    ds.StudyInstanceUID = UID_ROOT + "102"
    ds.SeriesInstanceUID = UID_ROOT + "103"
    ds.StudyID = "1"
    ds.SeriesNumber = "1"
    ds.InstanceNumber = "1"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = 4
    ds.Columns = 4
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = bytes(range(32))
    return ds


def cmd_scp(args) -> int:
    ae = AE(ae_title=args.aet)
    ae.require_called_aet = bool(args.strict)
    ae.add_supported_context(Verification)
    ae.add_supported_context(MRImageStorage, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])

    def on_store(event):
        # Accept and discard: the capture is what matters.
        _ = event.dataset
        return 0x0000

    ae.start_server(("0.0.0.0", args.port), block=True,
                    evt_handlers=[(evt.EVT_C_STORE, on_store)])
    return 0


def cmd_scu_mr(args) -> int:
    ae = AE(ae_title=args.aet)
    ae.add_requested_context(Verification)
    ae.add_requested_context(MRImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate(args.host, args.port, ae_title=args.aec)
    if not assoc.is_established:
        print("association failed", file=sys.stderr)
        return 1
    st = assoc.send_c_echo()
    ok = st and st.Status == 0
    st = assoc.send_c_store(mr_dataset())
    ok = ok and st and st.Status == 0
    assoc.release()
    return 0 if ok else 1


def cmd_scu_reject_abort(args) -> int:
    ae = AE(ae_title=args.aet)
    ae.add_requested_context(Verification)
    # 1. Wrong called AE title -> A-ASSOCIATE-RJ.
    assoc = ae.associate(args.host, args.port, ae_title=args.bad_aec)
    if not assoc.is_rejected:
        print("expected a rejection", file=sys.stderr)
        return 1
    time.sleep(0.2)
    # 2. Correct AE, one C-ECHO, then A-ABORT instead of A-RELEASE.
    assoc = ae.associate(args.host, args.port, ae_title=args.aec)
    if not assoc.is_established:
        print("association failed", file=sys.stderr)
        return 1
    st = assoc.send_c_echo()
    if not st or st.Status != 0:
        return 1
    assoc.abort()
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("scp")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--aet", required=True)
    s.add_argument("--strict", action="store_true")
    s = sub.add_parser("scu-mr")
    s.add_argument("--host", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--aet", required=True)
    s.add_argument("--aec", required=True)
    s = sub.add_parser("scu-reject-abort")
    s.add_argument("--host", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--aet", required=True)
    s.add_argument("--aec", required=True)
    s.add_argument("--bad-aec", required=True)
    args = p.parse_args()
    return {"scp": cmd_scp, "scu-mr": cmd_scu_mr,
            "scu-reject-abort": cmd_scu_reject_abort}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())

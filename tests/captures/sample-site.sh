#!/usr/bin/env bash
# Record examples/sample-site.pcap: a small clinical VLAN (10.20.30.0/24) simulated with network
# namespaces and REAL protocol peers, for the one-command demo (see examples/README.md).
#
#   sudo env "PATH=$PATH" tests/captures/sample-site.sh [OUT.pcap]
#
# Every device is its own network namespace with a fixed MAC (real vendor OUIs) and a veth
# port on one Linux bridge ("the access switch", namespace wss-sw). The capture is taken on
# the bridge itself in promiscuous mode, which sees every frame entering the switch once: a
# SPAN of the whole VLAN. A router namespace (10.20.30.1, also the DHCP server, dnsmasq)
# connects the VLAN to a "WAN" namespace holding two public-looking addresses (203.0.113.5,
# the vendor's remote-service host; 198.51.100.7, a vendor cloud). Nothing leaves the
# namespaces: no link to the host's network exists.
#
# Peers: dcmtk storescu/storescp/echoscu/findscu/wlmscpfs, pydicom-made datasets, hl7apy's MLLP
# server (tests/captures/hl7_peers.py) with the `hl7` package's mllp_send as client, dnsmasq +
# ISC dhclient, OpenSSH sshd + ssh (key auth), openssl s_server + curl (TLS).
# Patient-data values all contain the marker CANARY; the demo greps the agent's output for it.
#
# Environment: PYTHON (needs pydicom, pynetdicom, hl7apy, hl7), DCMTK_BIN (default /usr/bin),
# KEEP_WORK=1 keeps the scratch directory.
set -euo pipefail

if [[ ${EUID} -ne 0 ]]; then
    echo "sample-site.sh: must run as root (network namespaces, tcpdump)" >&2
    exit 1
fi

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${1:-$ROOT/examples/sample-site.pcap}
DCMTK=${DCMTK_BIN:-/usr/bin}
export LC_ALL=C TZ=UTC

NS_PREFIX=wss-
SW=${NS_PREFIX}sw
NET=10.20.30
WORK=$(mktemp -d /tmp/ward-sample-site.XXXXXX)
BG_PIDS=()
CAP_PID=
START=$(date +%s)

log() { printf '[sample-site %3ss] %s\n' "$(($(date +%s) - START))" "$*"; }
die() { echo "sample-site.sh: $*" >&2; exit 1; }

# ----------------------------------------------------------- the devices ----
# name      MAC                 address (dhcp = leased from the router's dnsmasq)
DEVICES=(
    "fw      00:00:0c:4a:21:01   $NET.1"      # Cisco router / firewall, DHCP server
    "ct      00:01:e3:5c:71:0a   $NET.11"     # Siemens SOMATOM go.Up CT
    "us      44:4b:5d:20:88:71   $NET.12"     # GE LOGIQ E10 ultrasound, PC module before the upgrade
    "us2     44:4b:5d:20:88:a4   $NET.12"     # the same ultrasound after the upgrade (new PC module)
    "pacs    00:14:22:a1:50:50   $NET.50"     # Dell server: PACS (DICOM archive + HTTPS web viewer)
    "ris     00:14:22:a1:50:51   $NET.51"     # Dell server: RIS modality worklist
    "mgw     00:a0:37:6e:00:60   $NET.60"     # Mindray eGateway (HL7 PCD-01 sender)
    "engine  00:14:22:a1:50:70   $NET.70"     # Dell server: HL7 interface engine
    "mon1    00:a0:37:9a:53:03   dhcp"        # Mindray BeneVision N17, ICU bed 3
    "mon2    00:a0:37:9a:53:04   dhcp"        # Mindray BeneVision N17, ICU bed 4
    "pump1   00:12:21:3c:0e:11   dhcp"        # B. Braun SpaceStation, ICU bed 3
    "pump2   00:12:21:3c:0e:12   dhcp"        # B. Braun SpaceStation, ICU bed 4
    "ws      00:14:22:b7:07:07   dhcp"        # Dell radiology reading workstation (Windows)
)
WAN_NS=${NS_PREFIX}wan
VENDOR_IP=203.0.113.5      # vendor remote-service host (TEST-NET-3)
CLOUD_IP=198.51.100.7      # vendor cloud (TEST-NET-2)

# --------------------------------------------------------------- helpers ----
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
ns_of() { echo "${NS_PREFIX}$1"; }

all_ns() { ip netns list 2>/dev/null | awk '{print $1}' | grep "^${NS_PREFIX}" || true; }

ns_down() {
    local ns p
    for ns in $(all_ns); do
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -TERM "$p" 2>/dev/null || true; done
    done
    sleep 0.2
    for ns in $(all_ns); do
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
}

cleanup() {
    local rc=$?
    set +e
    [[ -n $CAP_PID ]] && kill -INT "$CAP_PID" 2>/dev/null
    for p in "${BG_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${BG_PIDS[@]}" $CAP_PID; do wait "$p" 2>/dev/null; done
    ns_down
    if [[ ${KEEP_WORK:-0} == 1 || $rc -ne 0 ]]; then echo "scratch kept in $WORK"; else rm -rf "$WORK"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

find_python() {
    local c
    for c in "${PYTHON:-}" python3 python3.11 python; do
        [[ -n $c ]] || continue
        command -v "$c" >/dev/null 2>&1 || continue
        if "$c" -c 'import pydicom, pynetdicom, hl7apy, hl7' >/dev/null 2>&1; then
            "$c" -c 'import sys; print(sys.executable)'
            return 0
        fi
    done
    return 1
}
PY=$(find_python) || die "no python3 with pydicom, pynetdicom, hl7apy and hl7 (pip install pydicom pynetdicom hl7apy hl7)"
MLLP_SEND=$(dirname "$PY")/mllp_send
[[ -x $MLLP_SEND ]] || die "mllp_send (pip package hl7) not found next to $PY"
for t in tcpdump capinfos dnsmasq ethtool dhclient openssl curl ssh ssh-keygen; do
    command -v "$t" >/dev/null || die "missing tool: $t"
done
[[ -x /usr/sbin/sshd ]] || die "missing /usr/sbin/sshd (apt-get install openssh-server)"
for t in storescu storescp echoscu findscu wlmscpfs dump2dcm; do
    [[ -x $DCMTK/$t ]] || die "missing dcmtk tool $DCMTK/$t"
done
[[ $("$DCMTK/storescu" --version 2>&1) == *dcmtk* ]] || die "$DCMTK/storescu is not dcmtk's"

# bg NS LOGNAME CMD...: run CMD in NS in the background, remember its pid.
bg() {
    local ns=$1 name=$2; shift 2
    ip netns exec "$ns" "$@" >"$WORK/$name.log" 2>&1 &
    BG_PIDS+=($!)
    LAST_BG=$!
}

stop_bg() {
    local p=$1 keep=() q
    kill -TERM "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    for q in "${BG_PIDS[@]}"; do [[ $q == "$p" ]] || keep+=("$q"); done
    BG_PIDS=("${keep[@]}")
}

wait_port() { # NS PORT [tcp|udp]
    local ns=$1 port=$2 proto=${3:-tcp} i flag=-Hltn
    [[ $proto == udp ]] && flag=-Hlun
    for i in $(seq 1 200); do
        [[ -n $(nsx "$ns" ss $flag "sport = :$port") ]] && return 0
        sleep 0.05
    done
    die "nothing listening on $proto/$port in $ns (see $WORK/*.log)"
}

offload_off() { nsx "$1" ethtool -K "$2" tx off tso off gso off gro off >/dev/null 2>&1 || true; }

ns_new() {
    ip netns add "$1"
    nsx "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    nsx "$1" ip link set lo up
}

# plug NAME MAC: a namespace for the device with eth0 on a bridge port of the switch.
plug() {
    local name=$1 mac=$2 ns
    ns=$(ns_of "$name")
    ns_new "$ns"
    ip link add name eth0 netns "$ns" address "$mac" type veth peer name "p-$name" netns "$SW"
    offload_off "$ns" eth0
    offload_off "$SW" "p-$name"
    nsx "$SW" ip link set "p-$name" master br0 up
    nsx "$ns" ip link set eth0 up
}

# static NAME ADDR: address and default route through the router.
static() {
    local ns; ns=$(ns_of "$1")
    nsx "$ns" ip addr add "$2/24" dev eth0
    [[ $1 == fw ]] || nsx "$ns" ip route add default via "$NET.1"
}

# ------------------------------------------------------------- topology ----
build_site() {
    ns_down
    ns_new "$SW"
    nsx "$SW" ip link add br0 type bridge stp_state 0 forward_delay 0
    nsx "$SW" ip link set br0 up
    local line name mac addr
    for line in "${DEVICES[@]}"; do
        read -r name mac addr <<<"$line"
        plug "$name" "$mac"
        [[ $addr == dhcp ]] || static "$name" "$addr"
    done
    # The replacement PC module of the ultrasound is not cabled yet.
    nsx "$(ns_of us2)" ip link set eth0 down
    # Router: forwards between the VLAN and the WAN namespace.
    ns_new "$WAN_NS"
    ip link add name eth1 netns "$(ns_of fw)" address 00:00:0c:4a:21:02 type veth \
        peer name eth0 netns "$WAN_NS" address 02:57:41:4e:00:01
    offload_off "$(ns_of fw)" eth1; offload_off "$WAN_NS" eth0
    nsx "$(ns_of fw)" ip addr add 203.0.113.1/24 dev eth1
    nsx "$(ns_of fw)" ip addr add 198.51.100.1/24 dev eth1
    nsx "$(ns_of fw)" ip link set eth1 up
    nsx "$(ns_of fw)" sysctl -qw net.ipv4.ip_forward=1
    nsx "$WAN_NS" ip addr add "$VENDOR_IP/24" dev eth0
    nsx "$WAN_NS" ip addr add "$CLOUD_IP/24" dev eth0
    nsx "$WAN_NS" ip link set eth0 up
    nsx "$WAN_NS" ip route add "$NET.0/24" via 203.0.113.1
}

# ------------------------------------------------------------- test data ----
prepare_data() {
    mkdir -p "$WORK/dicom/ct" "$WORK/dicom/us-old" "$WORK/dicom/us-new" "$WORK/dicom/ct2" \
        "$WORK/wlistdb/RIS_WLM" "$WORK/store" "$WORK/hl7" "$WORK/ssh" "$WORK/tls" "$WORK/www"
    "$PY" - "$WORK" <<'PYEOF'
"""Datasets and messages for the sample site. Device identity attributes are real-looking;
every patient-data value contains CANARY."""
import math, os, sys
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

work = sys.argv[1]
CT_SOP = "1.2.840.10008.5.1.4.1.1.2"
US_SOP = "1.2.840.10008.5.1.4.1.1.6.1"


def image(path, sop, modality, rows, cols, bits, pixels, ident, patient, study, series, n):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL" if modality == "CT" else ""]
    ds.SOPClassUID = sop
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20250312"
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "101500"
    ds.AccessionNumber = patient["acc"]
    ds.Modality = modality
    ds.Manufacturer = ident["manufacturer"]
    ds.InstitutionName = "EXAMPLE GENERAL HOSPITAL"
    ds.ReferringPhysicianName = "CANARY^REFERRER"
    ds.StationName = ident["station"]
    ds.StudyDescription = patient["desc"]
    ds.ManufacturerModelName = ident["model"]
    ds.PatientName = patient["name"]
    ds.PatientID = patient["mrn"]
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.DeviceSerialNumber = ident["serial"]
    ds.SoftwareVersions = ident["software"]
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = n
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = cols
    ds.BitsAllocated = bits
    ds.BitsStored = 12 if bits == 16 else 8
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    if modality == "CT":
        ds.SliceThickness = "5"
        ds.KVP = "120"
        ds.RescaleIntercept = "-1024"
        ds.RescaleSlope = "1"
        ds.WindowCenter = "40"
        ds.WindowWidth = "400"
    ds.PixelData = pixels
    ds.save_as(path, enforce_file_format=True)


def ct_pixels(rows, cols, k):
    out = bytearray()
    for y in range(rows):
        for x in range(cols):
            r = math.hypot(x - cols / 2, y - rows / 2)
            v = 1064 if r < cols * (0.30 + 0.02 * k) else (24 if r < cols * 0.45 else 0)
            v += (x * 7 + y * 3 + k * 11) % 40
            out += int(v).to_bytes(2, "little")
    return bytes(out)


def us_pixels(rows, cols, k):
    out = bytearray()
    for y in range(rows):
        for x in range(cols):
            inside = abs(x - cols / 2) < y * 0.7
            out.append(((x * 13 + y * 7 + k * 29) % 97 + 60) if inside else 0)
    return bytes(out)


CT = dict(manufacturer="SIEMENS", model="SOMATOM go.Up", serial="107345",
          software="syngo CT VA30A", station="CTGOUP107345")
US_OLD = dict(manufacturer="GE Healthcare", model="LOGIQ E10", serial="LE10208871",
              software="R3.1.2", station="LOGIQE10-US02")
US_NEW = dict(US_OLD, software="R3.2.0")

pat = [
    dict(name="CANARY^CTPATIENT^ONE", mrn="CANARY-MRN-1001", acc="CANARY-ACC-1001", desc="CT HEAD WO CONTRAST"),
    dict(name="CANARY^USPATIENT^TWO", mrn="CANARY-MRN-1002", acc="CANARY-ACC-1002", desc="US ABDOMEN COMPLETE"),
    dict(name="CANARY^USPATIENT^THREE", mrn="CANARY-MRN-1003", acc="CANARY-ACC-1003", desc="US CAROTID DOPPLER"),
    dict(name="CANARY^CTPATIENT^FOUR", mrn="CANARY-MRN-1004", acc="CANARY-ACC-1004", desc="CT CHEST WO CONTRAST"),
]
for d, ident, p, n, kind in (("ct", CT, pat[0], 6, "CT"), ("us-old", US_OLD, pat[1], 3, "US"),
                             ("us-new", US_NEW, pat[2], 3, "US"), ("ct2", CT, pat[3], 4, "CT")):
    study, series = generate_uid(), generate_uid()
    for i in range(1, n + 1):
        path = os.path.join(work, "dicom", d, "img%02d.dcm" % i)
        if kind == "CT":
            image(path, CT_SOP, "CT", 128, 128, 16, ct_pixels(128, 128, i), ident, p, study, series, i)
        else:
            image(path, US_SOP, "US", 120, 160, 8, us_pixels(120, 160, i), ident, p, study, series, i)

# Modality worklist entries (dcmtk dump format, for dump2dcm).
WL = """(0008,0005) CS [ISO_IR 100]
(0008,0050) SH [{acc}]
(0010,0010) PN [{name}]
(0010,0020) LO [{mrn}]
(0010,0030) DA [19700101]
(0010,0040) CS [O]
(0020,000d) UI [{study}]
(0032,1060) LO [{desc}]
(0040,0100) SQ
(fffe,e000) -
(0008,0060) CS [{mod}]
(0040,0001) AE [{aet}]
(0040,0002) DA [20250312]
(0040,0003) TM [101500]
(0040,0006) PN [CANARY^PERFORMINGPHYSICIAN]
(0040,0007) LO [{desc}]
(0040,0009) SH [SPS-{acc}]
(0040,0010) SH [{station}]
(fffe,e00d) -
(fffe,e0dd) -
(0040,1001) SH [RP-{acc}]
(0040,1003) SH [ROUTINE]
"""
Q = """(0008,0005) CS [ISO_IR 100]
(0008,0050) SH []
(0010,0010) PN []
(0010,0020) LO []
(0020,000d) UI []
(0032,1060) LO []
(0040,0100) SQ
(fffe,e000) -
(0008,0060) CS [{mod}]
(0040,0001) AE [{aet}]
(0040,0002) DA []
(0040,0003) TM []
(0040,0007) LO []
(0040,0009) SH []
(0040,0010) SH []
(fffe,e00d) -
(fffe,e0dd) -
(0040,1001) SH []
"""
for i, (p, mod, aet, st) in enumerate(((pat[0], "CT", "CT_GOUP_01", CT["station"]),
                                       (pat[3], "CT", "CT_GOUP_01", CT["station"]),
                                       (pat[1], "US", "US_LOGIQ_02", US_OLD["station"]),
                                       (pat[2], "US", "US_LOGIQ_02", US_OLD["station"]))):
    with open(os.path.join(work, "wl-%d.dump" % i), "w") as f:
        f.write(WL.format(study=generate_uid(), mod=mod, aet=aet, station=st, **p))
for mod, aet in (("CT", "CT_GOUP_01"), ("US", "US_LOGIQ_02")):
    with open(os.path.join(work, "query-%s.dump" % mod.lower()), "w") as f:
        f.write(Q.format(mod=mod, aet=aet))

# HL7 v2.6 IHE PCD-01 ORU^R01 from the Mindray eGateway, one per bed and cycle: OBX-18 carries
# the bedside monitor's EUI-64; PRT/DEV (v2.7+ device segments, IHE PCD TF) describe the gateway.
def seg(name, fields):
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

APP = "MINDRAY_EGATEWAY^00A0376EFFFE0060^EUI-64"
PROFILE = "IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO"
beds = [("BED-03", "00A0379AFFFE5303", "CANARY-MRN-2003", "CANARYICU^PATIENTTHREE"),
        ("BED-04", "00A0379AFFFE5304", "CANARY-MRN-2004", "CANARYICU^PATIENTFOUR")]
n = 0
for cycle in range(12):
    for bed, eui, mrn, name in beds:
        n += 1
        ts = "20250312%02d%02d%02d+0000" % (10, 16 + cycle // 6, (cycle % 6) * 10)
        mds = eui + "^EUI-64"
        msg = [
            seg("MSH", {3: APP, 4: "ICU_NORTH", 5: "MIRTH_CONNECT", 6: "EXAMPLE_GENERAL",
                        7: ts, 9: "ORU^R01^ORU_R01", 10: "EGW-%06d" % n, 11: "P", 12: "2.6",
                        15: "AL", 16: "NE", 18: "UNICODE UTF-8", 21: PROFILE}),
            seg("PID", {3: mrn + "^^^EXAMPLE_GENERAL^MR", 5: name + "^^^^L", 7: "19700101", 8: "U"}),
            seg("PV1", {2: "I", 3: "ICU^%s^^EXAMPLE_GENERAL" % bed}),
            seg("OBR", {1: "1", 2: "EGW-%06d^MINDRAY_EGATEWAY^00A0376EFFFE0060^EUI-64" % n,
                        3: "EGW-%06d^MINDRAY_EGATEWAY^00A0376EFFFE0060^EUI-64" % n,
                        4: "182777000^monitoring of patient^SNOMED-CT", 7: ts}),
            seg("OBX", {1: "1", 3: "69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC",
                        4: "1.0.0.0", 11: "X", 18: mds}),
            seg("OBX", {1: "2", 2: "NM", 3: "147842^MDC_ECG_HEART_RATE^MDC", 4: "1.1.1.147842",
                        5: str(70 + (n * 7) % 25), 6: "264864^MDC_DIM_BEAT_PER_MIN^MDC",
                        7: "50-120", 11: "R", 14: ts, 18: mds}),
            seg("OBX", {1: "3", 2: "NM", 3: "150456^MDC_PULS_OXIM_SAT_O2^MDC", 4: "1.1.1.150456",
                        5: str(94 + n % 5), 6: "262688^MDC_DIM_PERCENT^MDC", 7: "90-100",
                        11: "R", 14: ts, 18: mds}),
            seg("NTE", {1: "1", 3: "CANARYNOTE nurse comment for " + name}),
            seg("PRT", {2: "UC", 4: "EQUIP^Equipment^HL70912",
                        10: "EGW-0060^MINDRAY_EGATEWAY^00A0376EFFFE0060^EUI-64"}),
            seg("DEV", {1: "A", 5: "Mindray", 6: "eGateway", 7: "BeneLink eGateway",
                        11: "EGW2307060", 16: "2.4.1"}),
        ]
        with open(os.path.join(work, "hl7", "oru-%03d.hl7" % n), "w", newline="") as f:
            f.write("\n".join(msg) + "\n")
PYEOF
    local f i
    for f in "$WORK"/wl-*.dump; do
        "$DCMTK/dump2dcm" -q +te "$f" "$WORK/wlistdb/RIS_WLM/$(basename "$f" .dump).wl"
    done
    : >"$WORK/wlistdb/RIS_WLM/lockfile"
    for f in ct us; do "$DCMTK/dump2dcm" -q +te "$WORK/query-$f.dump" "$WORK/query-$f.dcm"; done

    # SSH: the vendor's key, authorised on the CT's service account.
    ssh-keygen -q -t ed25519 -N '' -C 'remote-service@vendor.example' -f "$WORK/ssh/vendor_key"
    ssh-keygen -q -t ed25519 -N '' -C 'ctgoup107345' -f "$WORK/ssh/host_ed25519"
    cp "$WORK/ssh/vendor_key.pub" "$WORK/ssh/authorized_keys"
    cat >"$WORK/ssh/sshd_config" <<EOF
ListenAddress $NET.11
Port 22
HostKey $WORK/ssh/host_ed25519
PidFile $WORK/ssh/sshd.pid
AuthorizedKeysFile $WORK/ssh/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
X11Forwarding no
PrintMotd no
EOF
    mkdir -p /run/sshd
    # TLS: PACS web viewer and the vendor cloud, self-signed.
    for i in pacs cloud; do
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=$i.example.invalid" \
            -keyout "$WORK/tls/$i.key" -out "$WORK/tls/$i.pem" >/dev/null 2>&1
    done
    # DHCP clients.
    dhcp_conf mon1 "N17-ICU-BED03" "Mindray BeneVision N17" 00:a0:37:9a:53:03
    dhcp_conf mon2 "N17-ICU-BED04" "Mindray BeneVision N17" 00:a0:37:9a:53:04
    dhcp_conf pump1 "SPACESTATION-ICU03" "BBraun-SpaceStation" 00:12:21:3c:0e:11
    dhcp_conf pump2 "SPACESTATION-ICU04" "BBraun-SpaceStation" 00:12:21:3c:0e:12
    dhcp_conf ws "RAD-WS-07" "MSFT 5.0" 00:14:22:b7:07:07
}

# dhcp_conf NAME HOSTNAME VENDOR_CLASS MAC
dhcp_conf() {
    local cid; cid=$(echo "$4" | sed 's/:0\([0-9a-f]\)/:\1/g; s/^0\([0-9a-f]\)/\1/')
    {
        echo "send host-name \"$2\";"
        echo "send vendor-class-identifier \"$3\";"
        echo "send dhcp-client-identifier 1:$cid;"
        if [[ $3 == "MSFT 5.0" ]]; then
            # Windows 10/11 parameter request list order (1,3,6,15,31,33,43,44,46,47,119,121,249,252).
            echo "option rfc3442-classless-static-routes code 121 = array of unsigned integer 8;"
            echo "option ms-classless-static-routes code 249 = array of unsigned integer 8;"
            echo "option wpad code 252 = string;"
            echo "request subnet-mask, routers, domain-name-servers, domain-name, router-discovery,"
            echo "        static-routes, vendor-encapsulated-options, netbios-name-servers,"
            echo "        netbios-node-type, netbios-scope, domain-search,"
            echo "        rfc3442-classless-static-routes, ms-classless-static-routes, wpad;"
        else
            echo "request subnet-mask, routers, domain-name-servers, ntp-servers, host-name, domain-name;"
        fi
        echo "timeout 20;"
        echo "retry 5;"
    } >"$WORK/dhclient-$1.conf"
}

# lease NAME: DHCP DISCOVER..ACK with ISC dhclient, then configure the leased address.
lease() {
    local name=$1 ns i addr
    ns=$(ns_of "$name")
    bg "$ns" "dhclient-$name" dhclient -4 -1 -d -v -cf "$WORK/dhclient-$name.conf" \
        -lf "$WORK/dhclient-$name.leases" -pf "$WORK/dhclient-$name.pid" -sf /bin/true eth0
    local dh=$LAST_BG
    for i in $(seq 1 400); do
        grep -qs "^bound to" "$WORK/dhclient-$name.log" && break
        kill -0 "$dh" 2>/dev/null || break
        sleep 0.05
    done
    addr=$(awk '/^bound to/ {print $3; exit}' "$WORK/dhclient-$name.log")
    [[ -n $addr ]] || { cat "$WORK/dhclient-$name.log" >&2; die "$name got no lease"; }
    stop_bg "$dh"
    nsx "$ns" ip addr add "$addr/24" dev eth0
    nsx "$ns" ip route add default via "$NET.1"
    log "$name leased $addr"
}

mllp() { # FILE...: the eGateway sends each message on its own connection
    local f
    for f in "$@"; do
        nsx "$(ns_of mgw)" "$MLLP_SEND" --loose -p 2575 -f "$f" "$NET.70" >>"$WORK/mllp_send.log"
    done
}

ct() { nsx "$(ns_of ct)" "$DCMTK/$1" -aet CT_GOUP_01 "${@:2}"; }
us() { nsx "$(ns_of "$US_NS")" "$DCMTK/$1" -aet US_LOGIQ_02 "${@:2}"; }

# ------------------------------------------------------------------ run ----
prepare_data
build_site
log "site up: $(all_ns | wc -l) namespaces; python $PY"

# Servers.
bg "$(ns_of fw)" dnsmasq dnsmasq --no-daemon --conf-file=/dev/null --port=0 \
    --interface=eth0 --bind-interfaces --except-interface=lo \
    --dhcp-range=$NET.100,$NET.199,255.255.255.0,12h \
    --dhcp-option=option:router,$NET.1 --dhcp-option=option:ntp-server,$NET.1 \
    --domain=icu.example-general.invalid \
    --dhcp-leasefile="$WORK/dnsmasq.leases" --no-ping --pid-file= --user=root --log-dhcp
bg "$(ns_of pacs)" storescp "$DCMTK/storescp" -dhl -aet PACS_ARCHIVE -od "$WORK/store" 104
bg "$(ns_of pacs)" pacs-web openssl s_server -quiet -accept 443 -www \
    -cert "$WORK/tls/pacs.pem" -key "$WORK/tls/pacs.key"
bg "$(ns_of ris)" wlmscpfs "$DCMTK/wlmscpfs" -dhl -s -dfp "$WORK/wlistdb" 11112
bg "$(ns_of engine)" mllp-server "$PY" "$HERE/hl7_peers.py" server --port 2575
bg "$(ns_of ct)" sshd /usr/sbin/sshd -D -e -f "$WORK/ssh/sshd_config"
bg "$WAN_NS" cloud openssl s_server -quiet -accept "$CLOUD_IP:443" -www \
    -cert "$WORK/tls/cloud.pem" -key "$WORK/tls/cloud.key"
wait_port "$(ns_of fw)" 67 udp; wait_port "$(ns_of pacs)" 104; wait_port "$(ns_of pacs)" 443
wait_port "$(ns_of ris)" 11112; wait_port "$(ns_of engine)" 2575; wait_port "$(ns_of ct)" 22
wait_port "$WAN_NS" 443

# The SPAN: every frame entering the switch.
: >"$WORK/tcpdump.log"
ip netns exec "$SW" tcpdump -i br0 -s 0 -B 65536 -U -n -Z root --immediate-mode \
    -w "$WORK/sample-site.pcap" 2>"$WORK/tcpdump.log" &
CAP_PID=$!
for i in $(seq 1 100); do
    grep -q "listening on" "$WORK/tcpdump.log" && break
    sleep 0.05
done
grep -q "listening on" "$WORK/tcpdump.log" || { cat "$WORK/tcpdump.log" >&2; die "tcpdump did not start"; }
log "capturing on $SW:br0"

# 1. Morning: monitors, pumps and the workstation come up and lease addresses.
for d in mon1 mon2 pump1 pump2 ws; do lease "$d"; sleep 1; done

# 2. The eGateway forwards vitals of both beds every 10 s (background, ~2 minutes).
( for c in $(seq 0 11); do
      mllp "$WORK/hl7/oru-$(printf %03d $((2 * c + 1))).hl7" "$WORK/hl7/oru-$(printf %03d $((2 * c + 2))).hl7"
      sleep 10
  done ) &
HL7_LOOP=$!

# 3. CT: verification, worklist, a head study to the PACS.
ct echoscu -aec PACS_ARCHIVE "$NET.50" 104
ct findscu -W -aec RIS_WLM "$NET.51" 11112 "$WORK/query-ct.dcm" >"$WORK/findscu-ct.log" 2>&1
grep -q "CANARY^CTPATIENT" "$WORK/findscu-ct.log" || die "CT worklist query returned no match"
ct storescu -aec PACS_ARCHIVE "$NET.50" 104 "$WORK"/dicom/ct/*.dcm
log "CT study stored"

# 4. Ultrasound (software R3.1.2): worklist, then an abdomen study.
US_NS=us
us findscu -W -aec RIS_WLM "$NET.51" 11112 "$WORK/query-us.dcm" >"$WORK/findscu-us.log" 2>&1
grep -q "CANARY^USPATIENT" "$WORK/findscu-us.log" || die "US worklist query returned no match"
us storescu -aec PACS_ARCHIVE "$NET.50" 104 "$WORK"/dicom/us-old/*.dcm
log "US study stored (R3.1.2)"

# 5. Reading workstation opens the PACS web viewer; pump 1 phones home to the vendor cloud.
for i in 1 2 3; do
    nsx "$(ns_of ws)" curl -ks --max-time 5 -o /dev/null "https://$NET.50/" || die "workstation: PACS web viewer unreachable"
    sleep 2
done
for i in 1 2; do
    nsx "$(ns_of pump1)" curl -ks --max-time 5 -o /dev/null "https://$CLOUD_IP/" || die "pump1: cloud unreachable"
    sleep 3
done
log "HTTPS sessions done"

# 6. The vendor's remote-service session into the CT (SSH, key authentication).
nsx "$WAN_NS" ssh -F /dev/null -i "$WORK/ssh/vendor_key" -o BatchMode=yes \
    -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=5 \
    "root@$NET.11" 'uname -sr; cat /proc/loadavg; ls /' >"$WORK/ssh-session.log" 2>&1 \
    || { cat "$WORK/ssh-session.log" >&2; die "vendor ssh session failed"; }
log "vendor SSH session into the CT done"
sleep 5

# 7. Ultrasound upgrade: the field engineer swaps the PC module (new MAC, same serial) and
#    installs R3.2.0; the next study goes out from the new module.
nsx "$(ns_of us)" ip link set eth0 down
sleep 8
nsx "$(ns_of us2)" ip link set eth0 up
nsx "$(ns_of us2)" ip neigh flush all
for n in pacs ris fw; do nsx "$(ns_of $n)" ip neigh flush all; done
sleep 2
US_NS=us2
us echoscu -aec PACS_ARCHIVE "$NET.50" 104
us findscu -W -aec RIS_WLM "$NET.51" 11112 "$WORK/query-us.dcm" >"$WORK/findscu-us2.log" 2>&1
us storescu -aec PACS_ARCHIVE "$NET.50" 104 "$WORK"/dicom/us-new/*.dcm
log "US study stored (R3.2.0, new PC module)"

# 8. CT: the next patient.
sleep 5
ct findscu -W -aec RIS_WLM "$NET.51" 11112 "$WORK/query-ct.dcm" >"$WORK/findscu-ct2.log" 2>&1
ct storescu -aec PACS_ARCHIVE "$NET.50" 104 "$WORK"/dicom/ct2/*.dcm
log "second CT study stored"

wait "$HL7_LOOP"
[[ $(grep -c "MSA|AA|" "$WORK/mllp_send.log") -eq 24 ]] || die "expected 24 HL7 ACKs: $(grep -c 'MSA|AA|' "$WORK/mllp_send.log")"
nsx "$(ns_of ws)" curl -ks --max-time 5 -o /dev/null "https://$NET.50/" || true

sleep 0.5
kill -INT "$CAP_PID"
wait "$CAP_PID" || true
CAP_PID=
got=$(awk '/packets captured/ {print $1}' "$WORK/tcpdump.log")
want=$(awk '/packets received by filter/ {print $1}' "$WORK/tcpdump.log")
[[ -n $got && $got -gt 0 && $got == "$want" ]] || die "capture incomplete: $(cat "$WORK/tcpdump.log")"
stored=$(find "$WORK/store" -type f | wc -l)
[[ $stored -eq 16 ]] || die "PACS stored $stored images, expected 16"

mkdir -p "$(dirname "$OUT")"
cp "$WORK/sample-site.pcap" "$OUT"
log "wrote $OUT ($(stat -c %s "$OUT") bytes, $got packets, $stored images stored, 24 HL7 ACKs)"
capinfos -a -e -u "$OUT" | sed -n '2,10p'

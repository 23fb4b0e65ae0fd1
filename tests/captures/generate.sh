#!/usr/bin/env bash
# Regenerate the ward fixture captures in tests/fixtures/.
#
#   sudo env "PATH=$PATH" tests/captures/generate.sh
#
# Builds two network namespaces (a "device" side and a "server" side) joined
# by a veth pair with fixed MAC addresses (for the VLAN scenarios a third
# "switch" namespace sits in between, see ns_up_switched), runs real protocol
# peers in them
# (dcmtk, pynetdicom, hl7apy's MLLP server, the `hl7` package's mllp_send,
# dnsmasq, ISC dhclient, curl and a Python HTTP server, OpenSSH, openssl s_server/s_client,
# Samba's nmblookup, raw-socket LLMNR/NetBIOS peers, minidlna and async-upnp-client's
# upnp-client, dig against dnsmasq, lldpd, sdc11073's SDC provider and consumer, the `astm`
# package's ASTM client and server, UDP IntelliVue data export peers, TCP POCT1-A and B. Braun
# BCC peers), records each scenario with tcpdump and writes the
# pcaps plus manifest.json.  No traffic ever leaves the namespaces: they have
# no link to the host's network and no default route.
#
# Environment overrides:
#   PYTHON     python interpreter with pynetdicom, hl7apy and hl7 installed
#              (default: the first python3 on PATH that has them)
#   DCMTK_BIN  directory holding the dcmtk tools (default /usr/bin; pynetdicom
#              installs its own storescu/echoscu/findscu which must not be used)
#   OUT_DIR    where to write the fixtures (default: tests/fixtures)
#   KEEP_WORK=1  keep the scratch directory for debugging
#   WARD_NS_TAG  suffix for the namespace names, so two runs (two checkouts) can
#                record at the same time without tearing down each other's
#   WARD_SCENARIOS  space-separated scenario names (e.g. "dhcp hl7_mllp") to run
#                only those, while developing one; needs OUT_DIR (a partial run
#                must never replace the committed fixtures and manifest)
set -euo pipefail

if [[ ${EUID} -ne 0 ]]; then
    echo "generate.sh: must run as root (network namespaces, tcpdump)" >&2
    exit 1
fi

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${OUT_DIR:-$(cd "$HERE/.." && pwd)/fixtures}
DCMTK=${DCMTK_BIN:-/usr/bin}
export LC_ALL=C TZ=UTC

TAG=${WARD_NS_TAG:+-$WARD_NS_TAG}
NS_A=wardcap-dev$TAG    # device / client side
NS_B=wardcap-srv$TAG    # server side
NS_S=wardcap-sw$TAG     # "switch" for the VLAN scenarios
IF_A=vdev
IF_B=vsrv
IP_A=192.0.2.10         # TEST-NET-1 (RFC 5737), only ever inside the namespaces
IP_B=192.0.2.20
MAC_SRV=02:57:41:52:44:20   # locally administered, "WARD" in ASCII

WORK=$(mktemp -d /tmp/ward-captures.XXXXXX)
STAGE=$WORK/out         # fixtures land here; copied to $OUT only if all succeeded
BG_PIDS=()
CAP_PID=
START=$(date +%s)

log() { printf '[generate %3ss] %s\n' "$(($(date +%s) - START))" "$*"; }
die() { echo "generate.sh: $*" >&2; exit 1; }

ns_down() {
    local ns
    for ns in "$NS_A" "$NS_B" "$NS_S"; do
        if [[ -e /run/netns/$ns ]]; then
            # Kill anything still running inside (only our own peers live there).
            local p
            for p in $(ip netns pids "$ns" 2>/dev/null); do kill -TERM "$p" 2>/dev/null || true; done
            sleep 0.1
            for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
            ip netns del "$ns" 2>/dev/null || true
        fi
    done
}

cleanup() {
    local rc=$?
    set +e
    [[ -n $CAP_PID ]] && kill -INT "$CAP_PID" 2>/dev/null
    for p in "${BG_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${BG_PIDS[@]}" $CAP_PID; do wait "$p" 2>/dev/null; done
    ns_down
    if [[ ${KEEP_WORK:-0} == 1 ]]; then echo "scratch kept in $WORK"; else rm -rf "$WORK"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- tools ----
find_python() {
    local c
    for c in "${PYTHON:-}" python3 python3.11 python; do
        [[ -n $c ]] || continue
        command -v "$c" >/dev/null 2>&1 || continue
        if "$c" -c 'import pynetdicom, hl7apy, hl7, cryptography' >/dev/null 2>&1; then
            "$c" -c 'import sys; print(sys.executable)'
            return 0
        fi
    done
    return 1
}
PY=$(find_python) || die "no python3 with pynetdicom, hl7apy, hl7 and cryptography (pip install pynetdicom hl7apy hl7 cryptography); set PYTHON=..."
MLLP_SEND=$(dirname "$PY")/mllp_send
[[ -x $MLLP_SEND ]] || die "mllp_send (pip package hl7) not found next to $PY"
for t in tcpdump tshark editcap capinfos dnsmasq ethtool dhclient curl ssh ssh-keygen openssl timeout nmblookup dig lldpd lldpcli; do
    command -v "$t" >/dev/null || die "missing tool: $t"
done
MINIDLNAD=$(command -v minidlnad || echo /usr/sbin/minidlnad)
[[ -x $MINIDLNAD ]] || die "missing tool: minidlnad (apt package minidlna)"
UPNP_CLIENT=$(dirname "$PY")/upnp-client
[[ -x $UPNP_CLIENT ]] || UPNP_CLIENT=$(command -v upnp-client) \
    || die "missing tool: upnp-client (pip package async-upnp-client)"
for t in storescu storescp echoscu findscu wlmscpfs dump2dcm; do
    [[ -x $DCMTK/$t ]] || die "missing dcmtk tool $DCMTK/$t"
done
[[ $("$DCMTK/storescu" --version 2>&1) == *dcmtk* ]] || die "$DCMTK/storescu is not dcmtk's"

# ------------------------------------------------------------ namespaces ----
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# ns_up MAC_DEVICE [MAC_SERVER]: fresh namespaces and a veth pair between them.
ns_up() {
    local mac_a=$1 mac_b=${2:-$MAC_SRV} ns
    ns_down
    for ns in "$NS_A" "$NS_B"; do
        ip netns add "$ns"
        nsx "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
        nsx "$ns" ip link set lo up
    done
    ip link add name "$IF_A" netns "$NS_A" address "$mac_a" type veth \
        peer name "$IF_B" netns "$NS_B" address "$mac_b"
    # No offloads: real checksums and MTU-sized segments in the captures.
    nsx "$NS_A" ethtool -K "$IF_A" tx off tso off gso off gro off >/dev/null 2>&1 || true
    nsx "$NS_B" ethtool -K "$IF_B" tx off tso off gso off gro off >/dev/null 2>&1 || true
    nsx "$NS_A" ip link set "$IF_A" up
    nsx "$NS_B" ip link set "$IF_B" up
}

# ns_up_switched MAC_DEVICE TPID:VID...: like ns_up, but the device and the
# server are joined through a "switch" namespace in which two vlan_relay.py
# processes carry the frames over a tagged veth trunk (trk1 <-> trk2):
#   A:vdev <-> S:acc1 [relay] S:trk1 <=tagged=> S:trk2 [relay] S:acc2 <-> B:vsrv
# The kernel here has no 802.1Q support, so the tags are pushed/popped in
# userspace; see vlan_relay.py.  Capture on S:trk1.
ns_up_switched() {
    local mac_a=$1 ns i; shift
    ns_down
    for ns in "$NS_A" "$NS_B" "$NS_S"; do
        ip netns add "$ns"
        nsx "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
        nsx "$ns" ip link set lo up
    done
    ip link add name "$IF_A" netns "$NS_A" address "$mac_a" type veth \
        peer name acc1 netns "$NS_S" address 02:57:41:52:44:31
    ip link add name "$IF_B" netns "$NS_B" address "$MAC_SRV" type veth \
        peer name acc2 netns "$NS_S" address 02:57:41:52:44:32
    ip link add name trk1 netns "$NS_S" address 02:57:41:52:44:41 type veth \
        peer name trk2 netns "$NS_S" address 02:57:41:52:44:42
    nsx "$NS_A" ethtool -K "$IF_A" tx off tso off gso off gro off >/dev/null 2>&1 || true
    nsx "$NS_B" ethtool -K "$IF_B" tx off tso off gso off gro off >/dev/null 2>&1 || true
    for i in acc1 acc2 trk1 trk2; do
        nsx "$NS_S" ethtool -K "$i" tx off tso off gso off gro off rxvlan off txvlan off >/dev/null 2>&1 || true
        nsx "$NS_S" ip link set "$i" mtu 1600 up
    done
    nsx "$NS_A" ip link set "$IF_A" up
    nsx "$NS_B" ip link set "$IF_B" up
    bg "$NS_S" relay1 "$PY" -u "$HERE/vlan_relay.py" acc1 trk1 "$@"
    bg "$NS_S" relay2 "$PY" -u "$HERE/vlan_relay.py" acc2 trk2 "$@"
    for i in $(seq 1 100); do
        grep -q ready "$WORK/relay1.log" && grep -q ready "$WORK/relay2.log" && return 0
        sleep 0.05
    done
    die "vlan relays did not start"
}

# addr NS IFACE CIDR
addr() { nsx "$1" ip addr add "$3" dev "$2"; nsx "$1" ip link set "$2" up; }

offload_off() { nsx "$1" ethtool -K "$2" tx off tso off gso off gro off >/dev/null 2>&1 || true; }

# ------------------------------------------------------ background procs ----
# bg NS LOGNAME CMD...: run CMD in NS in the background, remember its pid.
bg() {
    local ns=$1 name=$2; shift 2
    # `ip netns exec` execs the command, so $! is the peer's own pid (a shell
    # function here would fork a subshell and $! would be that subshell).
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

stop_all_bg() { local p; for p in "${BG_PIDS[@]}"; do stop_bg "$p"; done; }

wait_port() { # NS PORT [tcp|udp]
    local ns=$1 port=$2 proto=${3:-tcp} i flag=-Hltn
    [[ $proto == udp ]] && flag=-Hlun
    for i in $(seq 1 100); do
        [[ -n $(nsx "$ns" ss $flag "sport = :$port") ]] && return 0
        sleep 0.05
    done
    die "nothing listening on $proto/$port in $ns (see $WORK/*.log)"
}

# cap_start NS IFACE NAME [tcpdump args...]: start recording into $WORK/NAME.
cap_start() {
    local ns=$1 ifc=$2 name=$3 i; shift 3
    : >"$WORK/$name.tcpdump.log"
    # --immediate-mode: without it TPACKET_V3 holds packets in a ring block
    # for up to a second and SIGINT would drop the unread tail.
    # -B: with -s 0 on "any" libpcap sizes each ring slot for 256 KiB, so the
    # default 2 MiB ring only holds ~8 packets and bursts would be dropped.
    ip netns exec "$ns" tcpdump -i "$ifc" -s 0 -B 65536 -U -n -Z root --immediate-mode "$@" -w "$WORK/$name" \
        2>"$WORK/$name.tcpdump.log" &
    CAP_PID=$!
    CAP_NAME=$name
    for i in $(seq 1 100); do
        grep -q "listening on" "$WORK/$name.tcpdump.log" && return 0
        kill -0 "$CAP_PID" 2>/dev/null || break
        sleep 0.05
    done
    cat "$WORK/$name.tcpdump.log" >&2
    die "tcpdump did not start for $name"
}

# cap_stop: let the last FIN/ACKs land, stop tcpdump cleanly, publish the file.
cap_stop() {
    sleep 0.3
    kill -INT "$CAP_PID"
    wait "$CAP_PID" || true
    CAP_PID=
    local got want
    got=$(awk '/packets captured/ {print $1}' "$WORK/$CAP_NAME.tcpdump.log")
    want=$(awk '/packets received by filter/ {print $1}' "$WORK/$CAP_NAME.tcpdump.log")
    [[ -n $got && $got -gt 0 && $got == "$want" ]] \
        || die "capture $CAP_NAME incomplete: $(cat "$WORK/$CAP_NAME.tcpdump.log")"
    cp "$WORK/$CAP_NAME" "$STAGE/$CAP_NAME"
    log "recorded $CAP_NAME ($(stat -c %s "$STAGE/$CAP_NAME") bytes, $(capinfos -c -M "$STAGE/$CAP_NAME" | awk -F': *' '/Number of packets/ {print $2}') packets)"
}

# ------------------------------------------------------------ test data ----
prepare_data() {
    mkdir -p "$WORK/dicom" "$WORK/wlistdb/WARD_WLM" "$WORK/store" "$WORK/hl7"
    "$DCMTK/dump2dcm" -q +te "$HERE/data/ct-image.dump" "$WORK/dicom/ct-image.dcm"
    "$DCMTK/dump2dcm" -q +te "$HERE/data/worklist-query.dump" "$WORK/dicom/worklist-query.dcm"
    "$DCMTK/dump2dcm" -q +te "$HERE/data/worklist.dump" "$WORK/wlistdb/WARD_WLM/ward-ct-0001.wl"
    : >"$WORK/wlistdb/WARD_WLM/lockfile"
    "$PY" "$HERE/hl7_peers.py" write "$WORK/hl7"
}

# ------------------------------------------------------------- scenarios ----
scenario_mdns() {
    # python-zeroconf on both ends (mdns_peers.py): a fictional monitor ("WardTestMed VM-240")
    # registers an _http._tcp service (probe, announcements) with allow-listed TXT keys and a
    # canary under a key ward must not read; a second host resolves the instance (query and
    # response). Multicast over the veth needs a route for 224.0.0.0/4.
    ns_up 02:57:41:52:44:12
    addr "$NS_A" "$IF_A" "$IP_A/24"; addr "$NS_B" "$IF_B" "$IP_B/24"
    nsx "$NS_A" ip route add 224.0.0.0/4 dev "$IF_A"
    nsx "$NS_B" ip route add 224.0.0.0/4 dev "$IF_B"
    cap_start "$NS_B" "$IF_B" mdns.pcap udp port 5353
    bg "$NS_A" mdns-device "$PY" -u "$HERE/mdns_peers.py" announce --ip "$IP_A" --seconds 6
    local i
    for i in $(seq 1 100); do grep -q registered "$WORK/mdns-device.log" && break; sleep 0.05; done
    nsx "$NS_B" "$PY" "$HERE/mdns_peers.py" browse --ip "$IP_B" >"$WORK/mdns-browse.log" 2>&1 \
        || die "mdns browse failed: $(cat "$WORK/mdns-browse.log" "$WORK/mdns-device.log")"
    wait "$LAST_BG" || true
    cap_stop
    stop_all_bg
    grep -q 'resolved wardtestmed-vm240.local.' "$WORK/mdns-browse.log" \
        || die "mdns resolve failed: $(cat "$WORK/mdns-browse.log")"
}

scenario_ssdp() {
    # ssdp_peers.py on both ends: a fictional UPnP device (WardTestMed VH300) multicasts an
    # ssdp:alive NOTIFY and answers the control point's M-SEARCH with a unicast 200 response.
    # Multicast over the veth needs a route for 224.0.0.0/4.
    ns_up 02:57:41:52:44:13
    addr "$NS_A" "$IF_A" "$IP_A/24"; addr "$NS_B" "$IF_B" "$IP_B/24"
    nsx "$NS_A" ip route add 224.0.0.0/4 dev "$IF_A"
    nsx "$NS_B" ip route add 224.0.0.0/4 dev "$IF_B"
    cap_start "$NS_B" "$IF_B" ssdp.pcap udp port 1900
    bg "$NS_A" ssdp-device "$PY" -u "$HERE/ssdp_peers.py" device --ip "$IP_A" --seconds 6
    local i
    for i in $(seq 1 100); do grep -q advertised "$WORK/ssdp-device.log" && break; sleep 0.05; done
    nsx "$NS_B" "$PY" "$HERE/ssdp_peers.py" search --ip "$IP_B" >"$WORK/ssdp-search.log" 2>&1 \
        || die "ssdp search failed: $(cat "$WORK/ssdp-search.log" "$WORK/ssdp-device.log")"
    wait "$LAST_BG" || true
    cap_stop
    stop_all_bg
    grep -q 'found uuid:5741524e' "$WORK/ssdp-search.log" \
        || die "ssdp search failed: $(cat "$WORK/ssdp-search.log")"
}

scenario_upnp() {
    # A real UPnP MediaServer (minidlna) and a real control point (async-upnp-client's
    # upnp-client): minidlna advertises itself over SSDP; upnp-client fetches its device
    # description (rootDesc.xml, the body ward reads) and service descriptions over HTTP and
    # calls a SOAP action (a text/xml body that is not a description). A Browse request's
    # ObjectID and a curl request's path, query, cookie and body carry the canary patient. minidlna's manufacturer is its author's name, built in; the
    # friendly name, model name/number and serial are set in its configuration.
    ns_up 02:57:41:52:44:1f
    addr "$NS_A" "$IF_A" "$IP_A/24"; addr "$NS_B" "$IF_B" "$IP_B/24"
    nsx "$NS_A" ip route add 224.0.0.0/4 dev "$IF_A"
    nsx "$NS_B" ip route add 224.0.0.0/4 dev "$IF_B"
    mkdir -p "$WORK/minidlna/media" "$WORK/minidlna/db"
    cat >"$WORK/minidlna/minidlna.conf" <<CONF
media_dir=$WORK/minidlna/media
db_dir=$WORK/minidlna/db
log_dir=$WORK/minidlna
network_interface=$IF_A
port=8200
inotify=no
notify_interval=900
uuid=5741524e-4454-4553-544d-533530300001
friendly_name=WardTestMed Media Station
model_name=WardTestMed MS-500
model_number=MS-500
serial=WTMMS500-0042
CONF
    cap_start "$NS_B" "$IF_B" upnp.pcap
    bg "$NS_A" minidlna "$MINIDLNAD" -S -f "$WORK/minidlna/minidlna.conf" -P "$WORK/minidlna/pid"
    wait_port "$NS_A" 8200
    # minidlna answers 404 to a description URL with a query, so the canaries travel in the
    # Browse action's SOAP body and in curl's request instead.
    local url="http://$IP_A:8200/rootDesc.xml"
    nsx "$NS_B" "$UPNP_CLIENT" --timeout 5 call-action "$url" ContentDirectory/GetSystemUpdateID \
        >"$WORK/upnp-client.log" 2>&1 || die "upnp-client failed: $(cat "$WORK/upnp-client.log" "$WORK/minidlna.log")"
    nsx "$NS_B" "$UPNP_CLIENT" --timeout 5 call-action "$url" ContentDirectory/Browse \
        ObjectID=CANARY^UPNPPATIENT BrowseFlag=BrowseMetadata Filter='*' StartingIndex=0 \
        RequestedCount=1 SortCriteria= >>"$WORK/upnp-client.log" 2>&1 || true
    nsx "$NS_B" curl -sS -o /dev/null -w '%{http_code}\n' \
        -b "patient=CANARY^UPNPPATIENT; mrn=CANARY-MRN-UPNP-0001" \
        --data-binary "name=CANARY^UPNPPATIENT&mrn=CANARY-MRN-UPNP-0001" \
        "http://$IP_A:8200/MediaItems/CANARY-MRN-UPNP-0001?name=CANARY%5EUPNPPATIENT" >"$WORK/upnp-curl.log" || true
    cap_stop
    stop_all_bg
    grep -q '"GetSystemUpdateID"\|"Id"' "$WORK/upnp-client.log" \
        || die "upnp-client call failed: $(cat "$WORK/upnp-client.log")"
}

scenario_snmp() {
    # net-snmp's snmpd in the device namespace answers snmpget -v2c and -v1 from the other
    # namespace for sysDescr.0, sysObjectID.0 and sysName.0 of a fictional print server
    # (enterprise 32473, IANA's documentation PEN, RFC 5612). The community is a canary: it is
    # on the wire in every message and must reach no output.
    ns_up 02:57:41:52:44:14
    addr "$NS_A" "$IF_A" "$IP_A/24"; addr "$NS_B" "$IF_B" "$IP_B/24"
    cat >"$WORK/snmpd.conf" <<EOC
rocommunity CANARY^SNMPCOMMUNITY 192.0.2.0/24
sysDescr WardTestNet WX-200 Print Server, firmware 4.1.7
sysObjectID .1.3.6.1.4.1.32473.7.200
sysName wardtestnet-wx200.example
sysLocation WardTest lab
sysContact WardTest admin
EOC
    cap_start "$NS_B" "$IF_B" snmp.pcap udp port 161
    bg "$NS_A" snmpd snmpd -f -Lo -C -c "$WORK/snmpd.conf" -p "$WORK/snmpd.pid" "udp:$IP_A:161"
    local v i
    for i in $(seq 1 100); do nsx "$NS_A" ss -uln | grep -q ":161 " && break; sleep 0.05; done
    for v in 2c 1; do
        nsx "$NS_B" snmpget -v "$v" -c 'CANARY^SNMPCOMMUNITY' -On -t 2 -r 1 "$IP_A" \
            .1.3.6.1.2.1.1.1.0 .1.3.6.1.2.1.1.2.0 .1.3.6.1.2.1.1.5.0 \
            >>"$WORK/snmpget.log" 2>&1 || die "snmpget -v$v failed: $(cat "$WORK/snmpget.log" "$WORK/snmpd.log")"
    done
    cap_stop
    stop_all_bg
    grep -q 'wardtestnet-wx200' "$WORK/snmpget.log" || die "snmpget: no sysName: $(cat "$WORK/snmpget.log")"
}

scenario_llmnr() {
    # llmnr_peers.py on raw UDP sockets (RFC 4795; systemd-resolved cannot run in a namespace):
    # a fictional pump answers for its single-label name WARDLLMNR-PUMP7 (A, and AAAA with a
    # configured documentation address); a workstation queries both to 224.0.0.252:5355 and
    # gets unicast replies.
    ns_up 02:57:41:52:44:15
    addr "$NS_A" "$IF_A" "$IP_A/24"; addr "$NS_B" "$IF_B" "$IP_B/24"
    nsx "$NS_A" ip route add 224.0.0.0/4 dev "$IF_A"
    nsx "$NS_B" ip route add 224.0.0.0/4 dev "$IF_B"
    cap_start "$NS_B" "$IF_B" llmnr.pcap udp port 5355
    bg "$NS_A" llmnr-device "$PY" -u "$HERE/llmnr_peers.py" respond WARDLLMNR-PUMP7 \
        --ip "$IP_A" --ip6 2001:db8::15 --seconds 4
    local i
    for i in $(seq 1 100); do grep -q listening "$WORK/llmnr-device.log" && break; sleep 0.05; done
    nsx "$NS_B" "$PY" "$HERE/llmnr_peers.py" query WARDLLMNR-PUMP7 --ip "$IP_B" \
        >"$WORK/llmnr-query.log" 2>&1 \
        || die "llmnr query failed: $(cat "$WORK/llmnr-query.log" "$WORK/llmnr-device.log")"
    cap_stop
    stop_all_bg
}

scenario_nbns() {
    # A B-node (nbns_peers.py, raw UDP as nmbd's name service behaves) broadcasts registrations
    # for WARDNB-PUMP9<00>, WARDNB-PUMP9<20> and the group WARDTESTGRP<00>; Samba's nmblookup in
    # the other namespace resolves WARDNB-PUMP9 by broadcast and the owner answers.
    ns_up 02:57:41:52:44:17
    nsx "$NS_A" ip addr add "$IP_A/24" brd + dev "$IF_A"
    nsx "$NS_B" ip addr add "$IP_B/24" brd + dev "$IF_B"
    cap_start "$NS_B" "$IF_B" nbns.pcap udp port 137
    bg "$NS_A" nbns-device "$PY" -u "$HERE/nbns_peers.py" node WARDNB-PUMP9 WARDTESTGRP \
        --ip "$IP_A" --bcast 192.0.2.255 --seconds 4
    local i
    for i in $(seq 1 100); do grep -q registered "$WORK/nbns-device.log" && break; sleep 0.05; done
    nsx "$NS_B" nmblookup -s /dev/null -B 192.0.2.255 WARDNB-PUMP9 >"$WORK/nmblookup.log" 2>&1 \
        || die "nmblookup failed: $(cat "$WORK/nmblookup.log" "$WORK/nbns-device.log")"
    grep -q "192.0.2.10 WARDNB-PUMP9<00>" "$WORK/nmblookup.log" \
        || die "nmblookup got no answer: $(cat "$WORK/nmblookup.log")"
    cap_stop
    stop_all_bg
}

scenario_lldp() {
    # lldpd (Debian's 1.0.16) in the device namespace announces a fictional IP phone: LLDP with
    # LLDP-MED (-M 3: class III, communication device endpoint) and its inventory TLVs, and CDP
    # (-ccc: CDPv2 sent although no CDP peer is seen; -l: LLDP sent beside it). System name,
    # description, CDP platform and the inventory come from lldpcli commands in the -O file.
    # The server side only records: LLDP and CDP are one-way announcements.
    ns_up 02:57:41:52:44:1d
    addr "$NS_A" "$IF_A" "$IP_A/24"
    # lldpcli (which applies the -O file and answers on the control socket) drops to the
    # _lldpd user: the file and socket live in a directory it can traverse, not in $WORK (0700).
    local ldir
    ldir=$(mktemp -d /tmp/ward-lldpd.XXXXXX)
    chmod 755 "$ldir"
    cat >"$ldir/lldpd.conf" <<EOC
configure system hostname wardtest-phone7.example
configure system description "WardTestTel WT-7 IP Phone, firmware FW-2024.3"
configure system platform "WardTestTel WT-7"
configure inventory hardware-revision "HW-B2"
configure inventory firmware-revision "FW-2024.3"
configure inventory software-revision "7.4.1"
configure inventory serial-number "WT7-000042"
configure inventory manufacturer "WardTestTel"
configure inventory model "WT-7"
configure inventory asset "ASSET-7781"
configure lldp tx-interval 1
EOC
    cap_start "$NS_B" "$IF_B" lldp.pcap ether proto 0x88cc or ether dst 01:00:0c:cc:cc:cc
    bg "$NS_A" lldpd lldpd -d -l -ccc -M 3 -I "$IF_A" -C "$IF_A" -m "$IP_A" \
        -u "$ldir/lldpd.sock" -O "$ldir/lldpd.conf"
    local ld=$LAST_BG i
    # Two announcements of each protocol, then a clean stop (lldpd's shutdown LLDPDU, TTL 0).
    for i in $(seq 1 100); do
        [[ $(nsx "$NS_A" lldpcli -u "$ldir/lldpd.sock" show statistics summary 2>/dev/null \
            | awk '/Transmitted/ {print $NF}') -ge 4 ]] && break
        kill -0 "$ld" 2>/dev/null || break
        sleep 0.1
    done
    stop_bg "$ld"
    cap_stop
    stop_all_bg
    rm -rf "$ldir"
    [[ $(tcpdump -r "$STAGE/lldp.pcap" -n 'ether proto 0x88cc' 2>/dev/null | wc -l) -ge 2 ]] \
        || die "lldpd sent no LLDP: $(cat "$WORK/lldpd.log")"
    [[ $(tcpdump -r "$STAGE/lldp.pcap" -n 'ether dst 01:00:0c:cc:cc:cc' 2>/dev/null | wc -l) -ge 1 ]] \
        || die "lldpd sent no CDP: $(cat "$WORK/lldpd.log")"
}

scenario_intellivue() {
    # intellivue_peers.py on UDP sockets (no open IntelliVue monitor exists): the "monitor"
    # replays public dumps of real monitors' messages (protocols/testdata/intellivue/README.md):
    # it broadcasts an MP70's Connect Indication to 24005 and answers the client's association
    # request (VSCaptureMP's public aarq bytes) on 24105 with an MDS Create Event Report (a canary
    # bed label); the client acknowledges it and sends one poll, answered with a demographics
    # poll result carrying canary patient attributes.
    ns_up 02:57:41:52:44:18
    nsx "$NS_A" ip addr add "$IP_A/24" brd + dev "$IF_A"
    nsx "$NS_B" ip addr add "$IP_B/24" brd + dev "$IF_B"
    cap_start "$NS_B" "$IF_B" intellivue.pcap udp port 24005 or udp port 24105
    bg "$NS_A" intellivue-monitor "$PY" -u "$HERE/intellivue_peers.py" monitor --ip "$IP_A" \
        --bcast 192.0.2.255 --seconds 6
    local i
    for i in $(seq 1 100); do grep -q listening "$WORK/intellivue-monitor.log" && break; sleep 0.05; done
    nsx "$NS_B" "$PY" "$HERE/intellivue_peers.py" client --ip "$IP_B" --seconds 4 \
        >"$WORK/intellivue-client.log" 2>&1 \
        || die "intellivue client failed: $(cat "$WORK/intellivue-client.log" "$WORK/intellivue-monitor.log")"
    wait "$LAST_BG" || true
    cap_stop
    stop_all_bg
    grep -q polled "$WORK/intellivue-monitor.log" \
        || die "intellivue: no association: $(cat "$WORK/intellivue-monitor.log")"
}

scenario_poct1a() {
    # poct1a_peers.py on TCP sockets (no open POCT1-A device or data manager exists): a
    # point-of-care meter in the device namespace connects to a data manager on an arbitrary
    # port (POCT1-A has none assigned) and sends the public samples in protocols/testdata/poct1a
    # (hello, status, an observation with canary patient and operator values, end of topic);
    # the manager acknowledges and requests as the POCT1-A2 dialog prescribes.
    ns_up 02:57:41:52:44:19
    addr "$NS_A" "$IF_A" "$IP_A/24"; addr "$NS_B" "$IF_B" "$IP_B/24"
    bg "$NS_B" poct1a-manager "$PY" -u "$HERE/poct1a_peers.py" manager --ip "$IP_B" --port 7011
    wait_port "$NS_B" 7011
    cap_start "$NS_B" "$IF_B" poct1a.pcap tcp port 7011
    nsx "$NS_A" "$PY" "$HERE/poct1a_peers.py" device --ip "$IP_B" --port 7011 \
        >"$WORK/poct1a-device.log" 2>&1 \
        || die "poct1a device failed: $(cat "$WORK/poct1a-device.log" "$WORK/poct1a-manager.log")"
    wait "$LAST_BG" || true
    cap_stop
    stop_all_bg
    grep -q "conversation done" "$WORK/poct1a-manager.log" \
        || die "poct1a: dialog incomplete: $(cat "$WORK/poct1a-manager.log")"
}

scenario_bcc() {
    # bcc_peers.py on TCP sockets (no open SpaceCom exists): a "SpaceCom" in the device
    # namespace listens on 4001 and answers the client's ADMIN:ALIVE and MEM:GET (the requests
    # the public icu_devices BCC client writes) with a frame of pump records, canary patient and
    # nurse records included.
    ns_up 02:57:41:52:44:1a
    addr "$NS_A" "$IF_A" "$IP_A/24"; addr "$NS_B" "$IF_B" "$IP_B/24"
    bg "$NS_A" bcc-spacecom "$PY" -u "$HERE/bcc_peers.py" spacecom --ip "$IP_A" --port 4001
    wait_port "$NS_A" 4001
    cap_start "$NS_B" "$IF_B" bcc.pcap tcp port 4001
    nsx "$NS_B" "$PY" "$HERE/bcc_peers.py" client --ip "$IP_A" --port 4001 \
        >"$WORK/bcc-client.log" 2>&1 \
        || die "bcc client failed: $(cat "$WORK/bcc-client.log" "$WORK/bcc-spacecom.log")"
    wait "$LAST_BG" || true
    cap_stop
    stop_all_bg
    grep -q served "$WORK/bcc-spacecom.log" || die "bcc: no answer: $(cat "$WORK/bcc-spacecom.log")"
}

DCM_CT=( -aet WARD_CT01 )

scenario_dns() {
    # dnsmasq as the site's DNS server, dig (bind9-dnsutils) as the device's resolver: the
    # fictional WardTestMed device looks up its vendor's update host (A and AAAA), then a
    # TeamViewer router name (an alias dnsmasq maps to a local relay, so nothing leaves the
    # namespaces) and a name that does not exist (NXDOMAIN).
    ns_up 02:57:41:52:44:53
    addr "$NS_A" "$IF_A" "$IP_A/24"; addr "$NS_B" "$IF_B" "$IP_B/24"
    bg "$NS_B" dnsmasq-dns dnsmasq --no-daemon --conf-file=/dev/null --port=53 \
        --listen-address="$IP_B" --bind-interfaces --no-resolv --no-hosts --pid-file= \
        --user=root --log-queries --local=/wardtestmed.example/ \
        --host-record=update.wardtestmed.example,192.0.2.30,2001:db8::30 \
        --host-record=relay.wardtestmed.example,192.0.2.77 \
        --cname=router15.teamviewer.com,relay.wardtestmed.example
    wait_port "$NS_B" 53 udp
    cap_start "$NS_B" "$IF_B" dns.pcap udp port 53
    local q
    for q in "update.wardtestmed.example A" "update.wardtestmed.example AAAA" \
             "router15.teamviewer.com A" "nosuch.wardtestmed.example A"; do
        # shellcheck disable=SC2086 # name and type are two words on purpose
        nsx "$NS_A" dig @"$IP_B" +tries=1 +time=2 $q >>"$WORK/dig.log" 2>&1 \
            || die "dig $q failed: $(cat "$WORK/dig.log" "$WORK/dnsmasq-dns.log")"
    done
    grep -q 'status: NXDOMAIN' "$WORK/dig.log" || die "dig: no NXDOMAIN: $(cat "$WORK/dig.log")"
    grep -q 'relay.wardtestmed.example' "$WORK/dig.log" || die "dig: no CNAME: $(cat "$WORK/dig.log")"
    cap_stop
    stop_all_bg
}

scenario_dicom_dcmtk() {
    ns_up 02:57:41:52:44:0a
    addr "$NS_A" "$IF_A" "$IP_A/24"; addr "$NS_B" "$IF_B" "$IP_B/24"
    bg "$NS_B" storescp "$DCMTK/storescp" -aet WARD_PACS -od "$WORK/store" 11112
    bg "$NS_B" wlmscpfs "$DCMTK/wlmscpfs" -s -dfp "$WORK/wlistdb" 11113
    wait_port "$NS_B" 11112; wait_port "$NS_B" 11113
    cap_start "$NS_B" "$IF_B" dicom-dcmtk.pcap
    nsx "$NS_A" "$DCMTK/echoscu" "${DCM_CT[@]}" -aec WARD_PACS "$IP_B" 11112
    # Explicit VR little endian: storescu's default proposal (dozens of storage
    # SOP classes, so the A-ASSOCIATE-RQ is a ~9.5 KB PDU spanning several TCP
    # segments); storescp prefers explicit VR.
    nsx "$NS_A" "$DCMTK/storescu" "${DCM_CT[@]}" -aec WARD_PACS "$IP_B" 11112 "$WORK/dicom/ct-image.dcm"
    # Implicit VR little endian only (-xi), proposing just the CT context (-R).
    nsx "$NS_A" "$DCMTK/storescu" -xi -R "${DCM_CT[@]}" -aec WARD_PACS "$IP_B" 11112 "$WORK/dicom/ct-image.dcm"
    nsx "$NS_A" "$DCMTK/findscu" -W "${DCM_CT[@]}" -aec WARD_WLM "$IP_B" 11113 \
        "$WORK/dicom/worklist-query.dcm" >"$WORK/findscu.log" 2>&1
    grep -q "CANARY^WORKLISTPATIENT" "$WORK/findscu.log" || die "worklist query returned no match"
    cap_stop
    stop_all_bg
}

scenario_dicom_pynetdicom() {
    ns_up 02:57:41:52:44:0b
    addr "$NS_A" "$IF_A" "$IP_A/24"; addr "$NS_B" "$IF_B" "$IP_B/24"
    bg "$NS_B" pyscp "$PY" "$HERE/dicom_peers.py" scp --port 4242 --aet WARD_PYSCP
    wait_port "$NS_B" 4242
    cap_start "$NS_B" "$IF_B" dicom-pynetdicom.pcap
    nsx "$NS_A" "$PY" "$HERE/dicom_peers.py" scu-mr --host "$IP_B" --port 4242 \
        --aet WARD_MR02 --aec WARD_PYSCP
    cap_stop
    stop_all_bg
}

scenario_dicom_reject_abort() {
    ns_up 02:57:41:52:44:0c
    addr "$NS_A" "$IF_A" "$IP_A/24"; addr "$NS_B" "$IF_B" "$IP_B/24"
    bg "$NS_B" pyscp-strict "$PY" "$HERE/dicom_peers.py" scp --port 11112 --aet WARD_STRICT --strict
    wait_port "$NS_B" 11112
    cap_start "$NS_B" "$IF_B" dicom-reject-abort.pcap
    nsx "$NS_A" "$PY" "$HERE/dicom_peers.py" scu-reject-abort --host "$IP_B" --port 11112 \
        --aet WARD_MR02 --aec WARD_STRICT --bad-aec WARD_UNKNOWN
    cap_stop
    stop_all_bg
}

hl7_server_up() {
    bg "$NS_B" mllp-server "$PY" "$HERE/hl7_peers.py" server --port 2575
    wait_port "$NS_B" 2575
}

mllp_send() { # FILE (one message per connection: hl7apy's server closes after the ACK)
    nsx "$NS_A" "$MLLP_SEND" --loose -p 2575 -f "$WORK/hl7/$1.hl7" "$IP_B" >>"$WORK/mllp_send.log"
}

scenario_hl7_mllp() {
    # The device side uses a MAC in Mindray's OUI (00:A0:37), as a monitor would.
    ns_up 00:a0:37:9a:53:de
    addr "$NS_A" "$IF_A" "$IP_A/24"; addr "$NS_B" "$IF_B" "$IP_B/24"
    hl7_server_up
    cap_start "$NS_B" "$IF_B" hl7-mllp.pcap
    mllp_send oru-pcd01
    mllp_send adt-a01
    # v2.9 PRT/DEV message, written in two TCP sends 300 ms apart.
    nsx "$NS_A" "$PY" "$HERE/hl7_peers.py" send-split --host "$IP_B" --port 2575 \
        --file "$WORK/hl7/oru-v29-prt-dev.hl7" >>"$WORK/mllp_send.log"
    cap_stop
    stop_all_bg
    [[ $(grep -c "MSA|AA|" "$WORK/mllp_send.log" | tr -d ' ') -ge 1 ]] || die "no HL7 ACKs"
}

scenario_hl7_vlan() {
    ns_up_switched 00:a0:37:9a:53:df 0x8100:100
    addr "$NS_A" "$IF_A" "$IP_A/24"; addr "$NS_B" "$IF_B" "$IP_B/24"
    hl7_server_up
    cap_start "$NS_S" trk1 hl7-mllp-vlan.pcap
    mllp_send oru-pcd01
    cap_stop
    stop_all_bg
}

scenario_qinq() {
    # 802.1ad service tag 200 outside, 802.1Q customer tag 100 inside.
    ns_up_switched 02:57:41:52:44:0d 0x88a8:200 0x8100:100
    addr "$NS_A" "$IF_A" "$IP_A/24"; addr "$NS_B" "$IF_B" "$IP_B/24"
    bg "$NS_B" storescp-qinq "$DCMTK/storescp" -aet WARD_PACS -od "$WORK/store" 11112
    wait_port "$NS_B" 11112
    cap_start "$NS_S" trk1 qinq.pcap
    nsx "$NS_A" "$DCMTK/echoscu" -aet WARD_QINQ01 -aec WARD_PACS "$IP_B" 11112
    cap_stop
    stop_all_bg
}

scenario_hl7_sll2() {
    ns_up 00:a0:37:9a:53:e0
    addr "$NS_A" "$IF_A" "$IP_A/24"; addr "$NS_B" "$IF_B" "$IP_B/24"
    hl7_server_up
    cap_start "$NS_A" any hl7-sll2.pcap -y LINUX_SLL2
    mllp_send adt-a01
    cap_stop
    stop_all_bg
}

scenario_dicom_sll() {
    ns_up 02:57:41:52:44:0e
    addr "$NS_A" "$IF_A" "$IP_A/24"; addr "$NS_B" "$IF_B" "$IP_B/24"
    bg "$NS_B" storescp-sll "$DCMTK/storescp" -aet WARD_PACS -od "$WORK/store" 11112
    wait_port "$NS_B" 11112
    cap_start "$NS_A" any dicom-sll.pcap -y LINUX_SLL
    nsx "$NS_A" "$DCMTK/echoscu" "${DCM_CT[@]}" -aec WARD_PACS "$IP_B" 11112
    nsx "$NS_A" "$DCMTK/storescu" "${DCM_CT[@]}" -aec WARD_PACS "$IP_B" 11112 "$WORK/dicom/ct-image.dcm"
    cap_stop
    stop_all_bg
}

scenario_dhcp() {
    # B. Braun OUI 00:12:21 on the "infusion pump".
    ns_up 00:12:21:aa:bb:01
    addr "$NS_B" "$IF_B" 192.0.2.1/24
    rm -f "$WORK/dnsmasq.leases"
    bg "$NS_B" dnsmasq dnsmasq --no-daemon --conf-file=/dev/null --port=0 \
        --interface="$IF_B" --bind-interfaces --except-interface=lo \
        --dhcp-range=192.0.2.100,192.0.2.199,255.255.255.0,1h \
        --dhcp-leasefile="$WORK/dnsmasq.leases" --no-ping --pid-file= \
        --user=root --log-dhcp
    wait_port "$NS_B" 67 udp
    cap_start "$NS_B" "$IF_B" dhcp.pcap
    # ISC dhclient (not busybox udhcpc: udhcpc always sends its parameter
    # request list sorted).  -sf /bin/true: do not touch the interface.
    # Stop it with SIGTERM once bound (no DHCPRELEASE on the wire).
    bg "$NS_A" dhclient dhclient -4 -1 -d -v -cf "$HERE/data/dhclient.conf" \
        -lf "$WORK/dhclient.leases" -pf "$WORK/dhclient.pid" -sf /bin/true "$IF_A"
    local dh=$LAST_BG i
    for i in $(seq 1 300); do
        grep -qs "^bound to" "$WORK/dhclient.log" && break
        kill -0 "$dh" 2>/dev/null || break
        sleep 0.05
    done
    grep -q "^bound to" "$WORK/dhclient.log" || { cat "$WORK/dhclient.log" >&2; die "dhclient got no lease"; }
    stop_bg "$dh"
    cap_stop
    stop_all_bg
}

scenario_dhcp_hostile() {
    # A device that names itself with markup (dhclient-hostile.conf): the console must show
    # the host name as text (issue 21). Same peers as scenario_dhcp, another MAC.
    ns_up 02:57:41:52:44:3c
    addr "$NS_B" "$IF_B" 192.0.2.1/24
    # Its own dhclient lease file: with scenario_dhcp's (same interface name) it would first
    # ask for that lease again (INIT-REBOOT) and the exchange would differ run to run.
    rm -f "$WORK/dnsmasq.leases" "$WORK/dhclient-hostile.leases"
    bg "$NS_B" dnsmasq dnsmasq --no-daemon --conf-file=/dev/null --port=0 \
        --interface="$IF_B" --bind-interfaces --except-interface=lo \
        --dhcp-range=192.0.2.100,192.0.2.199,255.255.255.0,1h \
        --dhcp-leasefile="$WORK/dnsmasq.leases" --no-ping --pid-file= \
        --user=root --log-dhcp
    wait_port "$NS_B" 67 udp
    cap_start "$NS_B" "$IF_B" dhcp-hostile.pcap
    bg "$NS_A" dhclient-hostile dhclient -4 -1 -d -v -cf "$HERE/data/dhclient-hostile.conf" \
        -lf "$WORK/dhclient-hostile.leases" -pf "$WORK/dhclient-hostile.pid" -sf /bin/true "$IF_A"
    local dh=$LAST_BG i
    for i in $(seq 1 300); do
        grep -qs "^bound to" "$WORK/dhclient-hostile.log" && break
        kill -0 "$dh" 2>/dev/null || break
        sleep 0.05
    done
    grep -q "^bound to" "$WORK/dhclient-hostile.log" || { cat "$WORK/dhclient-hostile.log" >&2; die "dhclient got no lease"; }
    stop_bg "$dh"
    cap_stop
    stop_all_bg
}

scenario_dhcpv6() {
    # dnsmasq as a DHCPv6 server, ISC dhclient -6 as the client (dhclient6.conf: vendor class
    # and FQDN). IPv6 is switched back on for this scenario only, without DAD so the link-local
    # addresses are usable at once.
    ns_up 02:57:41:52:44:16
    local ns ifc
    for ns in "$NS_A" "$NS_B"; do
        nsx "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0 \
            net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
    done
    for ifc in "$NS_A:$IF_A" "$NS_B:$IF_B"; do
        nsx "${ifc%%:*}" sysctl -qw "net.ipv6.conf.${ifc#*:}.disable_ipv6=0" "net.ipv6.conf.${ifc#*:}.accept_dad=0"
        nsx "${ifc%%:*}" ip link set "${ifc#*:}" down
        nsx "${ifc%%:*}" ip link set "${ifc#*:}" up
    done
    nsx "$NS_B" ip -6 addr add 2001:db8::1/64 dev "$IF_B" nodad
    rm -f "$WORK/dnsmasq6.leases"
    bg "$NS_B" dnsmasq6 dnsmasq --no-daemon --conf-file=/dev/null --port=0 \
        --interface="$IF_B" --bind-interfaces --except-interface=lo \
        --dhcp-range=2001:db8::100,2001:db8::1ff,64,1h \
        --dhcp-leasefile="$WORK/dnsmasq6.leases" --pid-file= \
        --user=root --log-dhcp
    wait_port "$NS_B" 547 udp
    for i in $(seq 1 100); do
        [[ -n $(nsx "$NS_A" ip -6 addr show dev "$IF_A" scope link) ]] && break; sleep 0.05
    done
    cap_start "$NS_B" "$IF_B" dhcpv6.pcap udp port 546 or udp port 547
    # -D LL: a DUID from the link-layer address alone (DUID-LLT adds the time, so the
    # manifest would change with every run).
    bg "$NS_A" dhclient6 dhclient -6 -D LL -1 -d -v -cf "$HERE/data/dhclient6.conf" \
        -lf "$WORK/dhclient6.leases" -pf "$WORK/dhclient6.pid" -sf /bin/true "$IF_A"
    local dh=$LAST_BG i
    for i in $(seq 1 300); do
        grep -qs "Bound to lease" "$WORK/dhclient6.log" && break
        kill -0 "$dh" 2>/dev/null || break
        sleep 0.05
    done
    grep -q "Bound to lease" "$WORK/dhclient6.log" || { cat "$WORK/dhclient6.log" "$WORK/dnsmasq6.log" >&2; die "dhclient -6 got no lease"; }
    stop_bg "$dh"
    cap_stop
    stop_all_bg
}

scenario_http() {
    # A fictional vendor's embedded web server ("WardTestMed", http_peers.py) on a port that is
    # not 80: ward finds HTTP by structure. curl first (GET with the canary patient in path,
    # query and cookie -> 401 naming the realm; then on the same keep-alive connection a POST
    # with the canaries in the body -> 200), then a "monitor" posting with http.client.
    ns_up 02:57:41:52:44:0f
    addr "$NS_A" "$IF_A" "$IP_A/24"; addr "$NS_B" "$IF_B" "$IP_B/24"
    bg "$NS_B" http-server "$PY" -u "$HERE/http_peers.py" server --host "$IP_B" --port 8080
    wait_port "$NS_B" 8080
    cap_start "$NS_B" "$IF_B" http.pcap
    nsx "$NS_A" curl -sS -o /dev/null -w '%{http_code}\n' \
        -b "patient=CANARY^HTTPPATIENT; mrn=CANARY-MRN-HTTP-0001" \
        "http://$IP_B:8080/patients/CANARY-MRN-HTTP-0001/vitals?name=CANARY%5EHTTPPATIENT&dob=19230102" \
        --next -sS -o /dev/null -w '%{http_code}\n' -u nurse:ward \
        --data-binary "name=CANARY^HTTPPATIENT&mrn=CANARY-MRN-HTTP-0001&dob=19230102" \
        "http://$IP_B:8080/patients/CANARY-MRN-HTTP-0001/observations" >"$WORK/curl.log"
    nsx "$NS_A" "$PY" "$HERE/http_peers.py" client --host "$IP_B" --port 8080 >>"$WORK/curl.log"
    cap_stop
    stop_all_bg
    grep -q '^401$' "$WORK/curl.log" && grep -q '^200$' "$WORK/curl.log" \
        && grep -q '^status 200$' "$WORK/curl.log" || die "http exchange failed: $(cat "$WORK/curl.log")"
}

scenario_fhir() {
    # fhir_peers.py: a minimal HL7 FHIR R4 server without TLS and a fictional infusion pump
    # ("WardTestMed WTP-700") on one keep-alive connection: it POSTs its own Device resource
    # (application/fhir+json), a Patient and an Observation carrying the canary patient, reads the
    # Patient back (canaries in the path, query and response) and searches Devices (a Bundle).
    ns_up 02:57:41:52:44:1c
    addr "$NS_A" "$IF_A" "$IP_A/24"; addr "$NS_B" "$IF_B" "$IP_B/24"
    bg "$NS_B" fhir-server "$PY" -u "$HERE/fhir_peers.py" server --host "$IP_B" --port 8090
    wait_port "$NS_B" 8090
    cap_start "$NS_B" "$IF_B" fhir.pcap
    nsx "$NS_A" "$PY" "$HERE/fhir_peers.py" client --host "$IP_B" --port 8090 >"$WORK/fhir.log" 2>&1 \
        || die "fhir client failed: $(cat "$WORK/fhir.log")"
    cap_stop
    stop_all_bg
    grep -q '^POST Device 201$' "$WORK/fhir.log" && grep -q '^GET Device 200 1$' "$WORK/fhir.log" \
        || die "fhir exchange failed: $(cat "$WORK/fhir.log")"
}

scenario_ssh() {
    # OpenSSH server and client: the two identification strings, key exchange, then a login
    # that fails (no credentials are offered); only the banners matter.
    ns_up 02:57:41:52:44:10
    addr "$NS_A" "$IF_A" "$IP_A/24"; addr "$NS_B" "$IF_B" "$IP_B/24"
    mkdir -p /run/sshd
    ssh-keygen -q -t ed25519 -N '' -C ward-fixture -f "$WORK/ssh_host_ed25519_key"
    bg "$NS_B" sshd "$(command -v sshd || echo /usr/sbin/sshd)" -D -e -f /dev/null \
        -h "$WORK/ssh_host_ed25519_key" -o ListenAddress="$IP_B" -o Port=22 \
        -o PidFile=none -o UsePAM=no -o PasswordAuthentication=no
    wait_port "$NS_B" 22
    cap_start "$NS_B" "$IF_B" ssh.pcap
    nsx "$NS_A" ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=no \
        -o UserKnownHostsFile=/dev/null -o ConnectTimeout=5 -o IdentitiesOnly=yes \
        -o IdentityFile=/dev/null -p 22 wardtest@"$IP_B" true >"$WORK/ssh.log" 2>&1 || true
    cap_stop
    stop_all_bg
    grep -q "Permission denied" "$WORK/ssh.log" || die "ssh did not reach authentication: $(cat "$WORK/ssh.log")"
}

# tls_certs DIR: a test CA and two server certificates with fixed serials and validity
# (`openssl ca`, so the manifest's certificate facts are the same on every run). The names are
# fictional: "Ward Test Medical" and its "WardVent 900" ventilator, "Ward Infusion Systems".
tls_certs() {
    local d=$1
    mkdir -p "$d"
    : >"$d/index.txt"
    cat >"$d/ca.cnf" <<EOF
[ca]
default_ca = ward
[ward]
database = $d/index.txt
new_certs_dir = $d
serial = $d/serial
default_md = sha256
policy = any
unique_subject = no
copy_extensions = copy
[any]
countryName = optional
organizationName = optional
organizationalUnitName = optional
commonName = supplied
EOF
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
        -subj "/C=DE/O=Ward Test Medical/CN=Ward Test Medical Device CA" \
        -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
    # The ventilator's certificate, issued by the CA.
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -subj "/C=DE/O=Ward Test Medical/OU=WardVent 900/CN=wardvent-900-0815.ward.test" \
        -addext "subjectAltName=DNS:wardvent-900-0815.ward.test" \
        -keyout "$d/vent.key" -out "$d/vent.csr" 2>/dev/null
    echo 5741524400000815 >"$d/serial"
    openssl ca -batch -notext -config "$d/ca.cnf" -cert "$d/ca.pem" -keyfile "$d/ca.key" \
        -startdate 20260101000000Z -enddate 20360101000000Z \
        -in "$d/vent.csr" -out "$d/vent.pem" 2>>"$d/openssl.log"
    # A device's own self-signed certificate, as many embedded web interfaces generate.
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -subj "/O=Ward Infusion Systems/OU=WardPump 500/CN=wardpump-500-7731" \
        -keyout "$d/pump.key" -out "$d/pump.csr" 2>/dev/null
    echo 7731 >"$d/serial"
    openssl ca -batch -notext -selfsign -config "$d/ca.cnf" -keyfile "$d/pump.key" \
        -startdate 20250601000000Z -enddate 20450601000000Z \
        -in "$d/pump.csr" -out "$d/pump.pem" 2>>"$d/openssl.log"
}

# tls_get PORT SNI ALPN VERSION_FLAG: one HTTPS request from the device side whose path, query
# and cookie name a patient (the canaries must stay sealed inside the encrypted records).
tls_get() {
    printf 'GET /patients/CANARYTLS%%5EPATIENT?mrn=CANARY-MRN-TLS-0001 HTTP/1.0\r\nCookie: patient=CANARYTLS^QUOKKACOOKIE\r\n\r\n' \
        | nsx "$NS_A" timeout 10 openssl s_client -connect "$IP_B:$1" -servername "$2" -alpn "$3" "$4" \
            -CAfile "$WORK/tls/ca.pem" -quiet -ign_eof >>"$WORK/s_client.log" 2>&1 || true
}

scenario_tls() {
    ns_up 02:57:41:52:44:11
    addr "$NS_A" "$IF_A" "$IP_A/24"; addr "$NS_B" "$IF_B" "$IP_B/24"
    tls_certs "$WORK/tls"
    # DICOM's TLS port and an HTTPS port: the protocol is found by structure, not port.
    bg "$NS_B" s_server-vent openssl s_server -accept 2762 -cert "$WORK/tls/vent.pem" \
        -key "$WORK/tls/vent.key" -alpn http/1.1 -www
    bg "$NS_B" s_server-pump openssl s_server -accept 8443 -cert "$WORK/tls/pump.pem" \
        -key "$WORK/tls/pump.key" -alpn http/1.1 -www -tls1_2
    wait_port "$NS_B" 2762; wait_port "$NS_B" 8443
    cap_start "$NS_B" "$IF_B" tls.pcap
    tls_get 2762 wardvent-900-0815.ward.test h2,http/1.1 -tls1_2
    tls_get 2762 wardvent-900-0815.ward.test h2,http/1.1 -tls1_3
    tls_get 8443 wardpump-500-7731 http/1.1 -tls1_2
    cap_stop
    stop_all_bg
}

scenario_sdc() {
    # sdc_peers.py: sdc11073 (IEEE 11073 SDC) on both ends, without TLS and without HTTP
    # compression. The provider (a fictional WardTestMed WardOx 300 SpO2 monitor, MDS class
    # MDC_DEV_ANALY_SAT_O2_MDS) multicasts its Hello with the location scope set by set_location;
    # the consumer probes 239.255.255.250:3702, gets a ProbeMatch, fetches the DPWS metadata
    # (ThisModel/ThisDevice) and the MDIB (the patient context carries the CANARY names) over
    # HTTP, and unsubscribes; the provider's Bye ends it. Multicast needs a 224.0.0.0/4 route.
    ns_up 02:57:41:52:44:1b
    addr "$NS_A" "$IF_A" "$IP_A/24"; addr "$NS_B" "$IF_B" "$IP_B/24"
    nsx "$NS_A" ip route add 224.0.0.0/4 dev "$IF_A"
    nsx "$NS_B" ip route add 224.0.0.0/4 dev "$IF_B"
    cap_start "$NS_B" "$IF_B" sdc.pcap
    bg "$NS_A" sdc-provider "$PY" -u "$HERE/sdc_peers.py" provider --ip "$IP_A" --seconds 12
    local prov=$LAST_BG i
    for i in $(seq 1 400); do grep -qs published "$WORK/sdc-provider.log" && break; sleep 0.05; done
    grep -q published "$WORK/sdc-provider.log" || die "sdc provider did not start: $(cat "$WORK/sdc-provider.log")"
    nsx "$NS_B" "$PY" -u "$HERE/sdc_peers.py" consumer --ip "$IP_B" --seconds 10 >"$WORK/sdc-consumer.log" 2>&1 \
        || die "sdc consumer failed: $(cat "$WORK/sdc-consumer.log" "$WORK/sdc-provider.log")"
    wait "$prov" || true
    cap_stop
    stop_all_bg
    grep -q '^metadata WardTestMed WardOx 300 WOX300-0042' "$WORK/sdc-consumer.log" \
        || die "sdc metadata not read: $(cat "$WORK/sdc-consumer.log")"
}

scenario_astm() {
    # A lab analyzer of a fictional vendor and a LIS, both the PyPI package `astm` (astm_peers.py:
    # astm.client.Client and astm.server.Server) on a port that is not a well-known one: ward finds
    # ASTM by structure. Two sessions: whole frames, then records split into intermediate (ETB)
    # frames. Canary patients in every patient-bearing field; the LIS writes what it decoded.
    "$PY" -c 'import astm' 2>/dev/null || die "python package astm missing (pip install astm-2025==1.0.0)"
    ns_up 02:57:41:52:44:a5
    addr "$NS_A" "$IF_A" "$IP_A/24"; addr "$NS_B" "$IF_B" "$IP_B/24"
    rm -f "$WORK/astm-lis.jsonl"
    bg "$NS_B" astm-lis "$PY" -u "$HERE/astm_peers.py" server --host "$IP_B" --port 15200 \
        --out "$WORK/astm-lis.jsonl"
    wait_port "$NS_B" 15200
    cap_start "$NS_B" "$IF_B" astm.pcap
    nsx "$NS_A" timeout 30 "$PY" "$HERE/astm_peers.py" client --host "$IP_B" --port 15200 \
        >"$WORK/astm-client.log" 2>&1 || die "astm client failed: $(cat "$WORK/astm-client.log")"
    sleep 0.3
    cap_stop
    stop_all_bg
    [[ $(grep -c '"WLA-800"' "$WORK/astm-lis.jsonl" 2>/dev/null) == 2 ]] \
        || die "the LIS did not receive both ASTM sessions: $(cat "$WORK/astm-lis.jsonl" "$WORK/astm-client.log" 2>&1)"
}

derived() {
    editcap -F pcapng "$STAGE/dicom-dcmtk.pcap" "$STAGE/dicom-dcmtk.pcapng"
    log "derived dicom-dcmtk.pcapng ($(stat -c %s "$STAGE/dicom-dcmtk.pcapng") bytes)"
    "$PY" "$HERE/pcap_to_null.py" "$STAGE/hl7-mllp.pcap" "$STAGE/hl7-null.pcap" >/dev/null
    log "derived hl7-null.pcap ($(stat -c %s "$STAGE/hl7-null.pcap") bytes)"
}

# ------------------------------------------------------------------ main ----
mkdir -p "$OUT" "$STAGE"
prepare_data
log "python: $PY; dcmtk: $DCMTK"

SCENARIOS=(dicom_dcmtk dicom_pynetdicom dicom_reject_abort hl7_mllp hl7_vlan qinq hl7_sll2
           dicom_sll dhcp dhcp_hostile http ssh tls mdns ssdp upnp snmp llmnr nbns dhcpv6 dns lldp sdc astm intellivue poct1a bcc fhir)
if [[ -n ${WARD_SCENARIOS:-} ]]; then
    [[ -n ${OUT_DIR:-} ]] || die "WARD_SCENARIOS needs OUT_DIR: a partial run must not replace tests/fixtures"
    read -r -a SCENARIOS <<<"$WARD_SCENARIOS"
fi
for s in "${SCENARIOS[@]}"; do
    declare -F "scenario_$s" >/dev/null || die "no scenario $s"
    "scenario_$s"
done
ns_down
if [[ -z ${WARD_SCENARIOS:-} ]]; then
    derived
fi

# Third-party captures are not copied: build_manifest.py reads the `public/...` entries from
# ../shared/captures/public/ beside the checkout (or $PUBLIC_CAPTURES).
WARD_ONLY_PRESENT=$([[ -n ${WARD_SCENARIOS:-} ]] && echo 1 || echo 0) "$PY" "$HERE/build_manifest.py" "$STAGE"

# Everything recorded and verified: publish.
rm -f "$OUT"/*.pcap "$OUT"/*.pcapng "$OUT"/manifest.json
cp -r "$STAGE"/. "$OUT"/
caps=("$STAGE"/*.pcap "$STAGE"/*.pcapng)
log "done: ${#caps[@]} captures and manifest.json in $OUT"

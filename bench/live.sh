#!/usr/bin/env bash
# Live capture loss: the site mix replayed with tcpreplay over a veth pair between two network
# namespaces, at fixed rates and at top speed, into ward-agent capture and into tcpdump and
# ndpiReader on the same interface. For each rate and reader: packets sent, received by the
# reader and lost. Writes bench/results/live-<date>.md, prints it, and splices it into
# docs/BENCHMARKS.md (section "live").
#
#   bench/live.sh [PACKETS]          # default 200000
#
# Environment (optional):
#   RATES               Mbit/s values and/or "top" (default "100 500 1000 2000 5000 top")
#   READERS             subset of "ward tcpdump ndpi" (default: all three)
#   WORKERS             ward-agent worker counts to run (default "1 2")
#   BUSY                1 (default): a spinning shell loop keeps one more core busy for the whole
#                       run (the issue's condition: "another process keeps the other core busy");
#                       0: only whatever else runs on the machine
#   OLD_AGENT           a ward-agent binary from before issue 16 (pnet, one recvfrom per frame),
#                       run as a further reader when set, e.g. built from commit 7a2aead
#   WARD_LIVE_CAPTURE   capture to replay (default /tmp/ward-live-site.pcap, built with
#                       make-mixed-capture's site mix when missing)
#   BENCH_RESULTS_DIR   where the report goes (default bench/results)
#   BENCH_DOCS          document whose "live" section gets the report (default
#                       docs/BENCHMARKS.md; empty: do not touch it)
#
# Needs root, iproute2, tcpreplay, tcpdump, capinfos (wireshark-common); ndpiReader
# (libndpi-bin) when "ndpi" is among READERS. Loss is counted as sent minus received, and split
# where the reader says why: ward-agent reports ring drops (kernel) and queue drops (decoder
# queue); tcpdump "dropped by kernel"; ndpiReader reports no drops. Frames the receiving veth
# itself dropped (its rx_dropped: the per-CPU backlog was full before any socket saw them) are
# shown apart: no reader can see those.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

PACKETS=${1:-200000}
[[ $PACKETS =~ ^[0-9]+$ && $PACKETS -gt 0 ]] || { echo "live.sh: PACKETS must be a positive whole number" >&2; exit 2; }
read -r -a RATES <<< "${RATES:-100 500 1000 2000 5000 top}"
read -r -a READERS <<< "${READERS:-ward tcpdump ndpi}"
read -r -a WORKER_COUNTS <<< "${WORKERS:-1 2}"
CAP=${WARD_LIVE_CAPTURE:-/tmp/ward-live-site.pcap}
RESULTS=${BENCH_RESULTS_DIR:-$ROOT/bench/results}
[[ $(id -u) == 0 ]] || { echo "live.sh: needs root (network namespaces, raw sockets)" >&2; exit 2; }
for t in ip tcpreplay tcpdump capinfos; do
  command -v "$t" >/dev/null || { echo "live.sh: $t is missing" >&2; exit 2; }
done

cargo build --release -q -p ward-agent -p ward-tests
AGENT=$ROOT/target/release/ward-agent
if [[ ! -s $CAP ]]; then
  # The site mix averages ~800 bytes a frame: size the capture for PACKETS frames and a margin.
  ./target/release/make-mixed-capture "$CAP" $(( PACKETS * 1000 / 1048576 + 8 )) site
fi
TOTAL=$(capinfos -c -M "$CAP" | awk -F: '/Number of packets/ {gsub(/ /,"",$2); print $2}')
(( TOTAL >= PACKETS )) || { echo "live.sh: $CAP has $TOTAL packets, fewer than $PACKETS" >&2; exit 2; }
cat "$CAP" > /dev/null

TAG=${WARD_NS_TAG:-$$}
NS_TX=wlive-tx-$TAG
NS_RX=wlive-rx-$TAG
WORK=$(mktemp -d /tmp/ward-live-bench.XXXXXX)
chmod 0777 "$WORK"
BUSY_PID=
cleanup() {
  [[ -n $BUSY_PID ]] && kill "$BUSY_PID" 2>/dev/null
  for ns in "$NS_TX" "$NS_RX"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
for ns in "$NS_TX" "$NS_RX"; do
  ip netns add "$ns"
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
ip link add lv-tx0 netns "$NS_TX" type veth peer name lv-rx0 netns "$NS_RX"
ip -n "$NS_TX" link set lv-tx0 up
ip -n "$NS_RX" link set lv-rx0 up
if [[ ${BUSY:-1} == 1 ]]; then
  bash -c 'while :; do :; done' &
  BUSY_PID=$!
fi
rxstat() { ip netns exec "$NS_RX" cat "/sys/class/net/lv-rx0/statistics/$1"; }

# Sends PACKETS frames at RATE; prints the number tcpreplay reports as sent and the rate it
# reached (Mbit/s).
replay() {
  local rate=$1 speed
  if [[ $rate == top ]]; then speed=(--topspeed); else speed=(--mbps="$rate"); fi
  ip netns exec "$NS_TX" tcpreplay -q "${speed[@]}" --limit="$PACKETS" -i lv-tx0 "$CAP" 2>&1 \
    | awk '/Actual:/ {a = $2} /Rated:/ {for (i = 2; i <= NF; i++) if ($i ~ /^Mbps/) m = $(i-1)} END {printf "%s %.0f\n", a, m}'
}

wait_for() { # FILE PATTERN SECONDS
  local i
  for (( i = 0; i < $3 * 20; i++ )); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  echo "live.sh: timed out waiting for '$2' in $1" >&2; cat "$1" >&2; return 1
}

ROWS=()
add_row() { ROWS+=("| $1 | $2 | $3 | $4 | $5 | $6 | $7 | $8 | $(cut -d' ' -f1 /proc/loadavg) |"); }
loss() { python3 -c "import sys; s,r=int(sys.argv[1]),int(sys.argv[2]); print(f'{max(s-r,0)*100/s:.2f} %' if s else '-')" "$1" "$2"; }

run_ward() { # RATE WORKERS [BINARY LABEL OUTPUT]
  local rate=$1 workers=$2 bin=${3:-$AGENT} label=${4:-} output=${5:-/dev/null} log=$WORK/ward.log pid sent reached rx0 ifdrop rss line
  rm -f "$log"
  local extra=()
  [[ $workers != old ]] && extra=(--workers "$workers")
  rx0=$(rxstat rx_dropped)
  ip netns exec "$NS_RX" "$bin" capture --interface lv-rx0 --output "jsonl:$output" \
    --spool-dir "$WORK/spool" --stats-interval 1 --log-format json --log-level info \
    "${extra[@]}" > /dev/null 2> "$log" &
  pid=$!
  wait_for "$log" '"capturing"' 20
  read -r sent reached < <(replay "$rate")
  sleep 1.5
  rss=$(awk '/VmHWM/ {print int($2/1024)}' "/proc/$pid/status")
  kill -TERM "$pid"; wait "$pid" || true
  ifdrop=$(( $(rxstat rx_dropped) - rx0 ))
  line=$(grep '"message":"stats"' "$log" | tail -1)
  local reported
  read -r got reported < <(python3 -c '
import json, sys
f = json.loads(sys.argv[1])["fields"]
if "ring_drops" in f:
    print(f["packets"], "ring %d, queue %d" % (f["ring_drops"], f["queue_drops"]))
else:  # before issue 16: socket drops plus queue drops in one number
    print(f["packets"], "kernel+queue %d" % f["kernel_drops"])' "$line")
  add_row "$rate ($reached)" "${label:-ward-agent, $workers worker(s)}" "$sent" "$got" "$(loss "$sent" "$got")" \
    "$reported" "$ifdrop" "$rss MiB"
}

run_tcpdump() { # RATE
  local rate=$1 log=$WORK/tcpdump.log pid sent reached rx0 ifdrop got kdrop
  rm -f "$log"
  rx0=$(rxstat rx_dropped)
  # -B in KiB: the same 64 MiB ring as ward-agent's default.
  ip netns exec "$NS_RX" tcpdump -i lv-rx0 -nn -s 65535 -B 65536 -w /dev/null 2> "$log" &
  pid=$!
  wait_for "$log" 'listening on' 20
  read -r sent reached < <(replay "$rate")
  sleep 1.5
  kill -INT "$pid"; wait "$pid" || true
  ifdrop=$(( $(rxstat rx_dropped) - rx0 ))
  got=$(awk '/packets captured/ {print $1}' "$log")
  kdrop=$(awk '/dropped by kernel/ {print $1}' "$log")
  add_row "$rate ($reached)" "tcpdump -B 65536" "$sent" "$got" "$(loss "$sent" "$got")" "kernel $kdrop" "$ifdrop" "-"
}

run_ndpi() { # RATE
  local rate=$1 log=$WORK/ndpi.log pid sent reached rx0 ifdrop got secs
  rm -f "$log"
  rx0=$(rxstat rx_dropped)
  # ndpiReader stops after -s seconds: long enough for the replay at this rate plus a margin.
  if [[ $rate == top ]]; then secs=8; else secs=$(( $(stat -c %s "$CAP") * 8 / (rate * 1000000) * PACKETS / TOTAL + 5 )); fi
  ip netns exec "$NS_RX" ndpiReader -i lv-rx0 -s "$secs" > "$log" 2>&1 &
  pid=$!
  sleep 2
  read -r sent reached < <(replay "$rate")
  wait "$pid" || true
  ifdrop=$(( $(rxstat rx_dropped) - rx0 ))
  got=$(awk '/packets total/ {for (i = 1; i <= NF; i++) if ($i == "of") print $(i+1)}' "$log" | head -1)
  got=${got:-0}
  add_row "$rate ($reached)" "ndpiReader -i" "$sent" "$got" "$(loss "$sent" "$got")" "not reported" "$ifdrop" "-"
}

for rate in "${RATES[@]}"; do
  for reader in "${READERS[@]}"; do
    case $reader in
      ward)
        if [[ -n ${OLD_AGENT:-} ]]; then run_ward "$rate" old "$OLD_AGENT" "ward-agent before issue 16 (pnet)"; fi
        for w in "${WORKER_COUNTS[@]}"; do run_ward "$rate" "$w"; done ;;
      tcpdump) run_tcpdump "$rate" ;;
      ndpi)
        if command -v ndpiReader >/dev/null; then run_ndpi "$rate"; fi ;;
    esac
  done
done

# Identification: the devices of a live run at IDENT_RATE (default 1000 Mbit/s, 1 worker) against
# `ward-agent read` of exactly the frames replayed.
IDENT=
if [[ " ${READERS[*]} " == *" ward "* ]] && command -v editcap >/dev/null; then
  IDENT_RATE=${IDENT_RATE:-1000}
  editcap -r "$CAP" "$WORK/part.pcap" "1-$PACKETS"
  run_ward "$IDENT_RATE" 1 "$AGENT" "ward-agent, 1 worker(s), identification run" "$WORK/live.jsonl"
  "$AGENT" read --output "jsonl:$WORK/read.jsonl" --spool-dir "$WORK/spool-read" --log-level warn \
    "$WORK/part.pcap"
  IDENT=$(python3 - "$WORK/live.jsonl" "$WORK/read.jsonl" "$IDENT_RATE" <<'PY'
import json, sys

def strip(v):
    if isinstance(v, dict):
        return {k: strip(x) for k, x in v.items() if "seen" not in k and "time" not in k}
    if isinstance(v, list):
        return [strip(x) for x in v]
    return v

def devices(path):
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                for d in json.loads(line).get("devices", []):
                    out[d["key"]] = strip(d)
    return out

live, offline = devices(sys.argv[1]), devices(sys.argv[2])
same = sum(1 for k, d in offline.items() if live.get(k) == d)
only_read = sorted(set(offline) - set(live))
only_live = sorted(set(live) - set(offline))
differ = sorted(k for k in set(live) & set(offline) if live[k] != offline[k])
print(f"Identification at {sys.argv[3]} Mbit/s, 1 worker: {len(live)} devices live, {len(offline)} from "
      f"`ward-agent read` of the same frames; {same} identical (time fields aside), "
      f"{len(only_read)} only in read, {len(only_live)} only live, {len(differ)} with other facts"
      + (f" (e.g. {', '.join((only_read + only_live + differ)[:3])})" if only_read or only_live or differ else "") + ".")
PY
)
fi

mkdir -p "$RESULTS"
OUT=$RESULTS/live-$(date -u +%Y%m%d-%H%M%S).md
{
  echo "# Live capture loss (bench/live.sh)"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" \
    "(other work shares the machine), kernel $(uname -r), libpcap $(dpkg-query -W -f='${Version}' libpcap0.8 2>/dev/null || echo '?')."
  echo "$PACKETS frames of the make-mixed-capture site mix ($(basename "$CAP")) per run, replayed with tcpreplay"
  echo "from one network namespace over a veth pair into the other, where the reader listens."
  echo "Rate: tcpreplay's target in Mbit/s (top = --topspeed), in brackets the rate it reached. RSS: ward-agent's peak resident memory"
  echo "with the default 64 MiB ring. rx_dropped: growth of the receiving veth's rx_dropped counter"
  echo "during the run; here these are frames the host's stack discarded after the packet sockets got"
  echo "them (IPv6 is disabled in the namespace), not reader losses. Load: 1-minute load average after"
  echo "the run. $( [[ ${BUSY:-1} == 1 ]] && echo 'A spinning shell loop kept one more core busy throughout.' )"
  echo "Lost = sent - received."
  echo
  if ! command -v ndpiReader >/dev/null; then echo; echo "ndpiReader (package libndpi-bin) is not installed: not measured."; fi
  echo
  echo "| rate | reader | sent | received | lost | drops reported | rx_dropped | RSS | load |"
  echo "|---|---|---:|---:|---:|---|---:|---:|---:|"
  printf '%s\n' "${ROWS[@]}"
  if [[ -n $IDENT ]]; then echo; echo "$IDENT"; fi
} > "$OUT"
cat "$OUT"
BENCH_DOCS=${BENCH_DOCS-$ROOT/docs/BENCHMARKS.md}
if [[ -n $BENCH_DOCS ]]; then python3 bench/lib/splice.py "$BENCH_DOCS" live "$OUT"; fi

#!/usr/bin/env bash
# Throughput of `ward-agent read` on a large mixed capture built from the fixtures (addresses
# rewritten per copy) plus bulk traffic: packets/s and Gbit/s on one core.
#
#   scripts/bench-agent.sh [SIZE_MIB] [BULK]   # defaults 1024, 3
#
# BULK: bulk frames per replayed fixture frame (3: a quarter of the packets are DICOM/HL7/DHCP
# exchanges, a dense worst case; 19: 5 %).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-1024}
BULK=${2:-3}
CAP=${WARD_BENCH_CAPTURE:-/tmp/ward-mixed-${SIZE}-${BULK}.pcap}
cargo build --release -q -p ward-agent -p ward-tests
if [[ ! -s $CAP ]]; then
  ./target/release/make-mixed-capture "$CAP" "$SIZE" "$BULK"
fi
PACKETS=$(capinfos -c -M "$CAP" | awk -F: '/Number of packets/ {gsub(/ /,"",$2); print $2}')
BYTES=$(stat -c %s "$CAP")
# Page the file in first so the run measures ward, not the disk.
cat "$CAP" > /dev/null
START=$(date +%s.%N)
taskset -c 0 ./target/release/ward-agent read --output jsonl:/dev/null --log-level warn \
  --spool-dir /tmp/ward-bench-spool "$CAP"
END=$(date +%s.%N)
python3 - "$START" "$END" "$PACKETS" "$BYTES" <<'PY'
import sys
start, end, packets, size = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
secs = end - start
print(f"{packets} packets, {size/2**20:.0f} MiB in {secs:.2f} s on one core: "
      f"{packets/secs/1e6:.2f} M packets/s, {size*8/secs/1e9:.2f} Gbit/s")
PY

#!/usr/bin/env bash
# Throughput of `ward-agent read` on a large mixed capture built from the fixtures (addresses
# rewritten per copy) plus bulk traffic: packets/s and Gbit/s on one core.
#
#   scripts/bench-agent.sh [SIZE_MIB] [MIX]   # defaults 1024, site
#
# MIX: site (a hospital network) or dense[:N] (fixture exchanges back to back, the worst case);
# see tests/src/bin/make-mixed-capture.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-1024}
MIX=${2:-site}
CAP=${WARD_BENCH_CAPTURE:-/tmp/ward-mixed-${SIZE}-${MIX}.pcap}
cargo build --release -q -p ward-agent -p ward-tests
if [[ ! -s $CAP ]]; then
  ./target/release/make-mixed-capture "$CAP" "$SIZE" "$MIX"
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

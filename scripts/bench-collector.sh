#!/usr/bin/env bash
# Ingest benchmark: observations/s from MQTT into SQLite.
#
#   scripts/bench-collector.sh [MESSAGES] [DEVICES_PER_MESSAGE] [embedded|mosquitto]
#
# Publishes MESSAGES synthetic ward.observation.v1 messages (QoS 1) with DEVICES_PER_MESSAGE
# device records each (devices drawn from a pool of 5000, as a real agent's deltas update
# known devices), and times from the first publish until the collector has committed all of
# them. Release build; prints messages/s and device records/s.
set -euo pipefail
N=${1:-50000}
PER=${2:-1}
MODE=${3:-embedded}
cd "$(dirname "$0")/.."
cargo build -q --release -p ward-collector -p ward-tests --bin ward-collector --bin publish-observations
BIN=target/release
TMP=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$TMP"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
if [ "$MODE" = mosquitto ]; then
  mport=$port
  printf 'user root\npersistence false\nmax_queued_messages 0\nmax_inflight_messages 0\nlistener %s 127.0.0.1\nallow_anonymous true\n' "$mport" > "$TMP/m.conf"
  /usr/sbin/mosquitto -c "$TMP/m.conf" >"$TMP/m.log" 2>&1 &
  sleep 0.5
  WARD_COLLECTOR_LOG=warn $BIN/ward-collector --db "$TMP/ward.db" serve --no-http --broker "mqtt://127.0.0.1:$mport" --client-id bench >"$TMP/c.log" 2>&1 &
else
  WARD_COLLECTOR_LOG=warn $BIN/ward-collector --db "$TMP/ward.db" serve --no-http --listen "127.0.0.1:$port" >"$TMP/c.log" 2>&1 &
fi
cpid=$!
sleep 1
start=$(date +%s.%N)
$BIN/publish-observations "127.0.0.1:$port" "$N" "$PER" bench
pub_done=$(date +%s.%N)
while :; do
  kill -0 $cpid 2>/dev/null || { echo "collector exited:"; cat "$TMP/c.log"; exit 1; }
  n=$(WARD_COLLECTOR_LOG=error $BIN/ward-collector --db "$TMP/ward.db" status | python3 -c 'import json,sys; print(json.load(sys.stdin)["messages"])')
  [ "$n" -ge "$N" ] && break
  sleep 0.1
done
end=$(date +%s.%N)
python3 - "$start" "$pub_done" "$end" "$N" "$PER" "$MODE" <<'PY'
import sys
s, p, e, n, per, mode = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
t = e - s
print(f"{mode}: {n} messages x {per} device records committed in {t:.2f} s "
      f"(publish acked after {p-s:.2f} s): {n/t:,.0f} messages/s, {n*per/t:,.0f} device records/s")
PY
ls -la "$TMP"/ward.db* | awk '{s+=$5} END {print "database size:", s/1048576, "MiB"}'
kill -TERM $cpid; wait $cpid || true

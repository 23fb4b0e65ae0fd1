#!/usr/bin/env bash
# Observations/s through a 3-node NATS cluster (JetStream, MQTT listeners) into one collector
# on SQLite, next to the same load through one Mosquitto: how much the clustered broker costs.
#
#   bench/nats.sh                 # N=20000 messages of 4 device records, debug build
#   N=50000 PROFILE=release bench/nats.sh
#
# Per broker: a collector (`serve --broker …`, persistent session, acks after commit), then
# `publish-observations` sends N messages QoS 1 as fast as the broker acknowledges them (to
# node 1 of the cluster; the collector reads through node 0). Prints the publisher's
# acknowledged rate and the end-to-end rate (first publish → last message committed, polled
# with `ward-collector status`). Needs nats-server and mosquitto on PATH.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
N=${N:-20000}
PER=${PER:-4}
PROFILE=${PROFILE:-debug}
command -v nats-server > /dev/null || { echo "nats.sh: apt-get install nats-server" >&2; exit 2; }
command -v mosquitto > /dev/null || { echo "nats.sh: apt-get install mosquitto" >&2; exit 2; }
if [[ $PROFILE == release ]]; then
  cargo build --release -q -p ward-collector -p ward-tests
else
  cargo build -q -p ward-collector -p ward-tests
fi
BIN=$ROOT/target/$PROFILE
TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do { kill -9 "$p" && wait "$p"; } 2> /dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
BASE=$(( 20000 + RANDOM % 20000 ))

stored() { "$BIN/ward-collector" --db "$1" status 2> /dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["messages"])' 2> /dev/null || echo 0; }

run() { # run MODE COLLECTOR_URL PUBLISH_HOSTPORT
  local mode=$1 url=$2 pub=$3 db=$TMP/$1.db
  WARD_COLLECTOR_LOG=info "$BIN/ward-collector" --db "$db" serve --broker "$url" --client-id "bench-$mode" --no-http > "$TMP/$mode-collector.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do grep -q '"subscribed"\|subscribed filters' "$TMP/$mode-collector.log" && break; sleep 0.1; done
  local t0 t1 out
  t0=$(date +%s.%N)
  out=$("$BIN/publish-observations" "$pub" "$N" "$PER" "bench-$mode" 5000)
  while [[ $(stored "$db") -lt $N ]]; do sleep 0.2; done
  t1=$(date +%s.%N)
  kill -TERM "${PIDS[-1]}"; wait "${PIDS[-1]}" 2> /dev/null || true
  python3 -c "import sys; n,t=int(sys.argv[1]),float(sys.argv[3])-float(sys.argv[2]); print(f'$mode: {sys.argv[4]} | end to end {n} messages ({n*$PER} device records) in {t:.1f} s: {n/t:.0f} messages/s')" "$N" "$t0" "$t1" "$out"
}

# One Mosquitto (persistence on, unlimited in-flight, as the tests configure it).
mkdir -p "$TMP/mosq"
printf 'user root\nlog_dest stderr\npersistence true\npersistence_location %s/\nautosave_interval 1\nmax_queued_messages 0\nmax_inflight_messages 0\nmessage_size_limit 0\nset_tcp_nodelay true\nallow_anonymous true\nlistener %s 127.0.0.1\n' "$TMP/mosq" "$BASE" > "$TMP/mosq/m.conf"
mosquitto -c "$TMP/mosq/m.conf" > "$TMP/mosq/m.log" 2>&1 &
PIDS+=($!)
sleep 0.5
run mosquitto "mqtt://127.0.0.1:$BASE" "127.0.0.1:$BASE"

# Three NATS nodes: ports BASE+10+i (client), +20+i (cluster), +30+i (MQTT), +40+i (monitor).
routes=""
for i in 0 1 2; do routes+="nats://127.0.0.1:$((BASE + 20 + i)),"; done
for i in 0 1 2; do
  cat > "$TMP/n$i.conf" << EOF
server_name: n$i
listen: 127.0.0.1:$((BASE + 10 + i))
http: 127.0.0.1:$((BASE + 40 + i))
jetstream { store_dir: "$TMP/js$i" }
cluster { name: ward, listen: 127.0.0.1:$((BASE + 20 + i)), routes: [${routes%,}] }
mqtt { listen: 127.0.0.1:$((BASE + 30 + i)), ack_wait: "10s", max_ack_pending: 4096 }
EOF
  nats-server -c "$TMP/n$i.conf" > "$TMP/n$i.log" 2>&1 &
  PIDS+=($!)
done
for _ in $(seq 100); do
  curl -s "127.0.0.1:$((BASE + 40))/jsz" | grep -q '"leader": "n' && break
  sleep 0.2
done
urls="mqtt://127.0.0.1:$((BASE + 30)),mqtt://127.0.0.1:$((BASE + 31)),mqtt://127.0.0.1:$((BASE + 32))"
run nats "$urls" "127.0.0.1:$((BASE + 31))"
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); profile $PROFILE; nats-server $(nats-server --version | awk '{print $2}')"

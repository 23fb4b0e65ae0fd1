#!/usr/bin/env bash
# Ingest benchmark on PostgreSQL: device records/s from MQTT into one PostgreSQL database with
# 1 or more collectors sharing it (issue 22).
#
#   scripts/bench-collector-postgres.sh [MESSAGES] [DEVICES_PER_MESSAGE] [COLLECTORS] [URL]
#
# Starts COLLECTORS `ward-collector serve` processes, each with its embedded broker, on one
# database: URL, or a throw-away PostgreSQL this script starts (Debian's server, initdb +
# pg_ctl as the `postgres` user in a temp dir, durability as configured by default). Publishes
# MESSAGES/COLLECTORS synthetic observation messages (QoS 1, DEVICES_PER_MESSAGE device records
# each, devices from a pool of 5000 per publisher) to each collector at once, and times from the
# first publish until every message is committed. Release build; prints messages/s and device
# records/s.
set -euo pipefail
N=${1:-20000}
PER=${2:-1}
C=${3:-1}
URL=${4:-}
cd "$(dirname "$0")/.."
cargo build -q --release -p ward-collector -p ward-tests --bin ward-collector --bin publish-observations
BIN=target/release
TMP=$(mktemp -d)
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
as_pg() { if [[ $(id -u) -eq 0 ]]; then chown -R postgres "$TMP"; runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  if [[ -z "$URL" && -d "$TMP/pg" ]]; then as_pg "$PG_BIN/pg_ctl" -D "$TMP/pg" -m fast stop >/dev/null 2>&1 || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT
if [[ -z "$URL" ]]; then
  [[ -x "$PG_BIN/initdb" ]] || { echo "missing PostgreSQL server: apt-get install postgresql" >&2; exit 1; }
  pgport=$(free_port)
  as_pg "$PG_BIN/initdb" -D "$TMP/pg" -U ward --auth=trust -E UTF8 >/dev/null
  as_pg "$PG_BIN/pg_ctl" -D "$TMP/pg" -l "$TMP/pg.log" -w -o "-p $pgport -k $TMP -c listen_addresses=127.0.0.1" start >/dev/null
  URL="postgres://ward@127.0.0.1:$pgport/postgres"
fi
pids=()
ports=()
for i in $(seq 1 "$C"); do
  port=$(free_port)
  WARD_COLLECTOR_LOG=warn $BIN/ward-collector --db "$URL" serve --no-http --listen "127.0.0.1:$port" >"$TMP/c$i.log" 2>&1 &
  pids+=($!)
  ports+=("$port")
done
sleep 2
start=$(date +%s.%N)
pubs=()
for i in $(seq 1 "$C"); do
  $BIN/publish-observations "127.0.0.1:${ports[$((i - 1))]}" "$((N / C))" "$PER" "bench-$i" &
  pubs+=($!)
done
for p in "${pubs[@]}"; do wait "$p"; done
pub_done=$(date +%s.%N)
total=$(((N / C) * C))
while :; do
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || { echo "a collector exited:"; cat "$TMP"/c*.log; exit 1; }; done
  n=$(WARD_COLLECTOR_LOG=error $BIN/ward-collector --db "$URL" status | python3 -c 'import json,sys; print(json.load(sys.stdin)["messages"])')
  [ "$n" -ge "$total" ] && break
  sleep 0.2
done
end=$(date +%s.%N)
python3 - "$start" "$pub_done" "$end" "$total" "$PER" "$C" <<'PY'
import sys
s, p, e, n, per, c = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
t = e - s
print(f"postgresql, {c} collector(s): {n} messages x {per} device records committed in {t:.2f} s "
      f"(publish acked after {p-s:.2f} s): {n/t:,.0f} messages/s, {n*per/t:,.0f} device records/s")
PY
for p in "${pids[@]}"; do kill -TERM "$p"; done

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
# records/s, then where the time went: CPU seconds of PostgreSQL's processes and of the
# collectors over the run, and (with the script's own server, which loads pg_stat_statements)
# statements executed per device record and the most frequent ones.
#
# With BENCH_EVALUATE=0 the collectors evaluate only at start (debounce and interval one hour):
# ingest alone, without the evaluator's transactions competing for the write lock.
set -euo pipefail
N=${1:-20000}
PER=${2:-1}
C=${3:-1}
URL=${4:-}
cd "$(dirname "$0")/.."
cargo build -q --release -p ward-collector -p ward-tests --bin ward-collector --bin publish-observations
BIN=target/release
TMP=$(mktemp -d)
. bench/lib/pg.sh
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  if [[ -z "$URL" ]]; then pg_stop "$TMP"; fi
  rm -rf "$TMP"
}
trap cleanup EXIT
if [[ -z "$URL" ]]; then
  pg_start "$TMP" "-c shared_preload_libraries=pg_stat_statements"
  URL=$PG_URL
  OWN_PG=1
fi
# CPU seconds (user + system) of the given processes and, for PostgreSQL's postmaster, of its
# backends (a backend that exited is not counted: the collectors' pooled sessions live
# throughout).
cpu() {
  python3 - "$@" <<'PY'
import os, sys
tick = os.sysconf("SC_CLK_TCK")
pids = set(int(p) for p in sys.argv[1:])
if "PGPID" in os.environ:
    pm = int(os.environ["PGPID"])
    pids.add(pm)
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                f = open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(f[1]) == pm:
                pids.add(int(d))
total = 0
for p in pids:
    try:
        f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        continue
    total += int(f[11]) + int(f[12])
print(f"{total / tick:.2f}")
PY
}
pgcpu() { if [[ -n "${OWN_PG:-}" ]]; then PGPID=$(head -1 "$TMP/pg/postmaster.pid") cpu; else echo "n/a"; fi; }
serve_env=()
if [[ "${BENCH_EVALUATE:-1}" == 0 ]]; then
  printf '[ingest]\nevaluate_debounce_secs = 3600\nevaluate_interval_secs = 3600\n' >"$TMP/ingest-only.toml"
  serve_env=(WARD_COLLECTOR_CONFIG="$TMP/ingest-only.toml")
fi
pids=()
ports=()
for i in $(seq 1 "$C"); do
  port=$(free_port)
  env "${serve_env[@]}" WARD_COLLECTOR_LOG=warn $BIN/ward-collector --db "$URL" serve --no-http --listen "127.0.0.1:$port" >"$TMP/c$i.log" 2>&1 &
  pids+=($!)
  ports+=("$port")
done
sleep 2
if [[ -n "${OWN_PG:-}" ]]; then
  psql -q -X "$URL" -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" -c "SELECT pg_stat_statements_reset()" >/dev/null
fi
pg_cpu0=$(pgcpu)
coll_cpu0=$(cpu "${pids[@]}")
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
pg_cpu1=$(pgcpu)
coll_cpu1=$(cpu "${pids[@]}")
python3 - "$start" "$pub_done" "$end" "$total" "$PER" "$C" "$pg_cpu0" "$pg_cpu1" "$coll_cpu0" "$coll_cpu1" <<'PY'
import sys
s, p, e, n, per, c = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
t = e - s
print(f"postgresql, {c} collector(s): {n} messages x {per} device records committed in {t:.2f} s "
      f"(publish acked after {p-s:.2f} s): {n/t:,.0f} messages/s, {n*per/t:,.0f} device records/s")
def used(a, b):
    try:
        return f"{float(b) - float(a):.1f} s ({(float(b) - float(a)) / t:.2f} cores)"
    except ValueError:
        return "n/a"
print(f"CPU over the run: PostgreSQL {used(sys.argv[7], sys.argv[8])}, "
      f"collectors {used(sys.argv[9], sys.argv[10])}, wall {t:.1f} s")
PY
if [[ -n "${OWN_PG:-}" ]]; then
  # Statements of the run (the status polling's included: a handful per poll).
  psql -q -X -A -t -F ' ' "$URL" -c "SELECT sum(calls), round(sum(calls)::numeric / $((total * PER)), 2) FROM pg_stat_statements" |
    awk '{print "statements: " $1 " (" $2 " per device record)"}'
  psql -q -X -A -t -F ' | ' "$URL" -c "SELECT calls, round(total_exec_time::numeric, 0) || ' ms', left(regexp_replace(query, '\s+', ' ', 'g'), 90) FROM pg_stat_statements ORDER BY calls DESC LIMIT 8"
fi
for p in "${pids[@]}"; do kill -TERM "$p"; done

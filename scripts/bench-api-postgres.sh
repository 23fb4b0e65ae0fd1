#!/usr/bin/env bash
# API latency at scale on PostgreSQL (issue 22): p50/p99 and bytes of the device list and the
# device detail with N devices, and what one evaluation of that inventory costs (time, RSS).
#
#   scripts/bench-api-postgres.sh [DEVICES] [REQUESTS]
#
# Builds an inventory of DEVICES synthetic devices: SEED of them (default 62 500) as
# ward.observation.v1 JSON lines from `publish-observations` replayed with `ward-collector
# ingest` in PARALLEL chunks (default 2, each under an agent of its own), then — ingest into
# PostgreSQL runs at a few hundred device records/s here, most of an hour for a million — copied in SQL
# until there are DEVICES, each copy with identities of its own (MAC, IP, serial, AE title,
# sighting key). Imports a contract covering them all, which evaluates (the first pass writes
# every link, flag and summary; timed, with its peak RSS), starts `serve` as a collector that
# leaves evaluating to another (the lease, see below), and times REQUESTS sequential GETs of
# each kind over one keep-alive connection: the device list
# (first page, random deep pages, filters, the console's search) and the device detail of
# random ids. Release build.
#
# The database: WARD_BENCH_PG_URL=postgres://… (kept; an inventory already holding DEVICES
# devices is measured as it is, an empty one is built first), or a throw-away PostgreSQL this
# script starts and deletes (Debian's server, initdb + pg_ctl as the `postgres` user in a temp
# dir on a free port; durability off and 1 GiB of shared buffers: it only has to hold the
# inventory while it is read).
set -euo pipefail
N=${1:-1000000}
R=${2:-1000}
P=${PARALLEL:-2}
SEED=${SEED:-62500}
URL=${WARD_BENCH_PG_URL:-}
cd "$(dirname "$0")/.."
cargo build -q --release -p ward-collector -p ward-tests --bin ward-collector --bin publish-observations
BIN=$PWD/target/release
TMP=$(mktemp -d)
. bench/lib/pg.sh
OWN_PG=
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  if [[ -n "$OWN_PG" ]]; then pg_stop "$TMP"; fi
  rm -rf "$TMP"
}
trap cleanup EXIT
if [[ -z "$URL" ]]; then
  pg_start "$TMP" "-c shared_buffers=1GB -c max_wal_size=8GB -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  OWN_PG=1
  URL=$PG_URL
fi
export WARD_COLLECTOR_LOG=warn
W="$BIN/ward-collector --db $URL"
have=$($W status | python3 -c 'import json,sys; print(json.load(sys.stdin)["devices"])')
echo "PostgreSQL $(pg_version), $have devices stored; load: $(uptime | sed 's/.*load average: //')"
if [[ "$have" -eq 0 ]]; then
  M=$((N < SEED ? N : SEED))
  $BIN/publish-observations - "$M" 1 bench "$M" > "$TMP/obs.jsonl"
  (cd "$TMP" && split -n "l/$P" -d obs.jsonl chunk.)
  t0=$(date +%s.%N)
  i=0
  for f in "$TMP"/chunk.*; do
    i=$((i + 1))
    sed -i "s/\"agent_id\":\"bench\"/\"agent_id\":\"bench-$i\"/" "$f"
    $W ingest "$f" > /dev/null &
  done
  wait $(jobs -p)
  t1=$(date +%s.%N)
  rm -f "$TMP"/obs.jsonl "$TMP"/chunk.*
  echo "ingest: $M device records in $P parallel chunks, $(python3 -c "print(f'{$t1-$t0:.0f} s, {$M/($t1-$t0):,.0f} records/s')")"
  if [[ "$N" -gt "$M" ]]; then
    t0=$(date +%s.%N)
    psql -q "$URL" -v m="$M" -v n="$N" > /dev/null <<'SQL'
\set ON_ERROR_STOP on
BEGIN;
CREATE TEMP TABLE copies AS SELECT k * :m AS off FROM generate_series(1, (:n - 1) / :m) k;
CREATE FUNCTION pg_temp.mac(j BIGINT) RETURNS TEXT LANGUAGE sql IMMUTABLE AS
  $$ SELECT '00:1b:' || regexp_replace(lpad(to_hex(j), 8, '0'), '(..)(..)(..)(..)', '\1:\2:\3:\4') $$;
INSERT INTO devices (id, first_us, last_us, merged_into)
  SELECT d.id + c.off, d.first_us, d.last_us, d.merged_into + c.off
  FROM devices d, copies c WHERE d.id + c.off <= :n;
INSERT INTO identities (kind, value, device_id, first_us, last_us, agent_id)
  SELECT i.kind, CASE i.kind
      WHEN 'mac' THEN pg_temp.mac(i.device_id + c.off)
      WHEN 'ip' THEN '11.' || ((i.device_id + c.off) >> 16 & 255) || '.'
        || ((i.device_id + c.off) >> 8 & 255) || '.' || ((i.device_id + c.off) & 255)
      WHEN 'serial' THEN 'SN-' || lpad((i.device_id + c.off)::text, 7, '0')
      ELSE i.value || '-' || (i.device_id + c.off) END,
    i.device_id + c.off, i.first_us, i.last_us, i.agent_id
  FROM identities i, copies c WHERE i.device_id + c.off <= :n;
INSERT INTO attributes (device_id, name, value, first_us, last_us, count, site, agent_id)
  SELECT a.device_id + c.off, a.name, CASE a.name
      WHEN 'dicom.device_serial_number' THEN 'SN-' || lpad((a.device_id + c.off)::text, 7, '0')
      WHEN 'dicom.calling_ae' THEN a.value || '-' || (a.device_id + c.off)
      ELSE a.value END,
    a.first_us, a.last_us, a.count, a.site, a.agent_id
  FROM attributes a, copies c WHERE a.device_id + c.off <= :n;
INSERT INTO sightings (site, agent_id, key, device_id, vlan, first_us, last_us)
  SELECT s.site, s.agent_id, 'mac:' || pg_temp.mac(s.device_id + c.off), s.device_id + c.off,
    s.vlan, s.first_us, s.last_us
  FROM sightings s, copies c WHERE s.device_id + c.off <= :n;
INSERT INTO services (device_id, direction, transport, port, app, peers, first_us, last_us, count)
  SELECT s.device_id + c.off, s.direction, s.transport, s.port, s.app, s.peers, s.first_us,
    s.last_us, s.count
  FROM services s, copies c WHERE s.device_id + c.off <= :n;
INSERT INTO service_peers (device_id, direction, transport, port, peer)
  SELECT s.device_id + c.off, s.direction, s.transport, s.port, s.peer
  FROM service_peers s, copies c WHERE s.device_id + c.off <= :n;
INSERT INTO classifications (device_id, last_us, record)
  SELECT s.device_id + c.off, s.last_us, s.record
  FROM classifications s, copies c WHERE s.device_id + c.off <= :n;
INSERT INTO version_episodes (device_id, value, first_us, last_us, site, agent_id, fields)
  SELECT s.device_id + c.off, s.value, s.first_us, s.last_us, s.site, s.agent_id, s.fields
  FROM version_episodes s, copies c WHERE s.device_id + c.off <= :n;
SELECT setval(pg_get_serial_sequence('devices', 'id'), (SELECT max(id) FROM devices));
COMMIT;
VACUUM ANALYZE;
SQL
    t1=$(date +%s.%N)
    echo "copied in SQL to $N devices: $(python3 -c "print(f'{$t1-$t0:.0f} s')")"
  fi
  cat > "$TMP/c.yaml" <<'YAML'
contracts:
  - id: C-1
    supplier: WARD TEST MEDICAL
    products: ["WardScan *"]
    end_of_support: 2030-01-01
    permitted_services: ["dicom tcp/104 outbound"]
YAML
  /usr/bin/time -f "contract import + first evaluation (every link, flag and summary written): %e s, max RSS %M KiB" \
    $W contracts import "$TMP/c.yaml" > /dev/null
elif [[ "$have" -lt $((N * 99 / 100)) ]]; then
  echo "the database holds $have devices, fewer than $N: give an empty database or DEVICES <= $have" >&2
  exit 1
fi
N=$($W status | python3 -c 'import json,sys; print(json.load(sys.stdin)["devices"])')
TOKEN=$($W token create --name "bench-$$" --role clinical_engineering)
port=$(free_port)
bport=$(free_port)
# The collector measured serves the API only: another collector holds the evaluator's lease (as
# on a cluster where one collector evaluates). At a million devices an evaluation holds the
# whole inventory in memory — 17 GiB for the first pass here, and the start-up pass of `serve`
# was killed by the kernel at 19 GiB on this 23 GiB machine — so it is measured on its own:
# the contract import above, and with EVALUATE=1 one more pass (`ward-collector evaluate`).
if [[ "${EVALUATE:-0}" == 1 ]]; then
  /usr/bin/time -f "evaluation of $N devices (ward-collector evaluate, nothing changed): %e s, max RSS %M KiB" \
    $W evaluate > /dev/null
fi
psql -q "$URL" -c "INSERT INTO leases (name, holder, expires_us, acquired_us)
  VALUES ('evaluator', 'bench-api-postgres', (extract(epoch FROM now()) + 86400)::bigint * 1000000, 0)
  ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_us = excluded.expires_us"
$W serve --listen "127.0.0.1:$bport" --http "127.0.0.1:$port" --evaluate-interval 3600 &
serve_pid=$!
for _ in $(seq 1 100); do
  python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$port),0.2)" 2>/dev/null && break
  sleep 0.1
done
python3 - "$port" "$TOKEN" "$N" "$R" "$serve_pid" <<'PY'
import http.client, json, random, re, sys, time, urllib.parse
port, token, n, r, pid = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
auth = {"Authorization": f"Bearer {token}"}
def request(method, path, headers=None, body=None):
    c.request(method, path, body=body, headers=headers or {})
    resp = c.getresponse()
    return resp, resp.read()
# The console's search (the API's device list has no search parameter): sign in as a browser.
resp, _ = request("GET", "/signin")
csrf = re.search(r'ward_signin=([0-9a-f]{64})', resp.getheader("set-cookie")).group(1)
resp, _ = request("POST", "/signin", {
    "Cookie": f"ward_signin={csrf}", "Content-Type": "application/x-www-form-urlencoded",
    "Sec-Fetch-Site": "same-origin"}, urllib.parse.urlencode({"token": token, "csrf": csrf}))
assert resp.status == 303, resp.status
jar = {"Cookie": "ward_session=" + re.search(r'ward_session=([0-9a-f]{64})', resp.getheader("set-cookie")).group(1)}
def get(path, headers, ok=(200,)):
    t = time.perf_counter()
    resp, body = request("GET", path, headers)
    dt = time.perf_counter() - t
    assert resp.status in ok, (path, resp.status, body[:200])
    return dt, len(body), body
total = json.loads(get("/api/v1/devices?limit=1", auth)[2])["total"]
assert total >= n * 0.99, total
random.seed(1)
print(f"{total} devices, {r} sequential requests of each kind")
print(f"{'request':62} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'bytes':>8}")
def run(name, paths, headers=auth, ok=(200,)):
    res = [get(p, headers, ok) for p in paths]
    lat = sorted(x[0] * 1000 for x in res)
    size = sorted(x[1] for x in res)[len(res) // 2]
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
    print(f"{name:62} {p(0.5):8.2f} {p(0.99):8.2f} {lat[-1]:8.2f} {size:8}")
deep = lambda fmt: [fmt.format(random.randrange(0, total)) for _ in range(r)]
run("GET /api/v1/devices (first page, 100)", ["/api/v1/devices"] * r)
run("GET /api/v1/devices?offset=<random> (100)", deep("/api/v1/devices?offset={}"))
run("GET /api/v1/devices?type=ct&offset=<random>", deep("/api/v1/devices?type=ct&offset={}"))
run("GET /api/v1/devices?manufacturer=ward (first page)", ["/api/v1/devices?manufacturer=ward"] * r)
run("GET /api/v1/devices?site=bench (first page)", ["/api/v1/devices?site=bench"] * r)
run("GET /api/v1/devices?flag=not_in_asset_register&offset=<random>", deep("/api/v1/devices?flag=not_in_asset_register&offset={}"))
run("GET /api/v1/devices?flag=service_not_permitted (none)", ["/api/v1/devices?flag=service_not_permitted"] * r)
run("GET /devices?q=SN-<random serial> (console search, 50)", [f"/devices?q=SN-{random.randrange(0, min(n, 62500)):06}" for _ in range(r)], jar)
# Ids run from 1 with the odd gap (a merge): a missing one answers 404, timed all the same.
run("GET /api/v1/devices/<random id>", [f"/api/v1/devices/{random.randrange(1, total + 1)}" for _ in range(r)], ok=(200, 404))
hwm = re.search(r"VmHWM:\s+(\d+) kB", open(f"/proc/{pid}/status").read()).group(1)
print(f"the serving collector's peak RSS: {int(hwm) // 1024} MiB")
PY
psql -q "$URL" -c "DELETE FROM leases WHERE name = 'evaluator' AND holder = 'bench-api-postgres'"

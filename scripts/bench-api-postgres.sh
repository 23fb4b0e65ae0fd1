#!/usr/bin/env bash
# API latency at scale on PostgreSQL (issue 22): p50/p99 and bytes of the device list and the
# device detail with N devices, and what one evaluation of that inventory costs (time, RSS).
#
#   scripts/bench-api-postgres.sh [DEVICES] [REQUESTS]
#
# Builds an inventory of DEVICES synthetic devices: ward.observation.v1 JSON lines from
# `publish-observations` replayed with `ward-collector ingest` in PARALLEL chunks (default 2;
# each chunk under an agent of its own, so the chunks share no agent row), imports a contract
# covering them (which evaluates: the first pass writes every link and summary), times one more
# evaluation (the pass `serve` repeats after new data) under /usr/bin/time, starts `serve`, waits
# for its start-up evaluation, and times REQUESTS sequential GETs of each kind over one
# keep-alive connection: the device list (first page, random deep pages, filters, a search) and
# the device detail of random ids. Release build.
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
URL=${WARD_BENCH_PG_URL:-}
cd "$(dirname "$0")/.."
cargo build -q --release -p ward-collector -p ward-tests --bin ward-collector --bin publish-observations
BIN=$PWD/target/release
TMP=$(mktemp -d)
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
as_pg() { if [[ $(id -u) -eq 0 ]]; then chown -R postgres "$TMP"; runuser -u postgres -- "$@"; else "$@"; fi; }
OWN_PG=
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  if [[ -n "$OWN_PG" ]]; then as_pg "$PG_BIN/pg_ctl" -D "$TMP/pg" -m fast stop >/dev/null 2>&1 || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT
if [[ -z "$URL" ]]; then
  [[ -x "$PG_BIN/initdb" ]] || { echo "missing PostgreSQL server: apt-get install postgresql" >&2; exit 1; }
  pgport=$(free_port)
  as_pg "$PG_BIN/initdb" -D "$TMP/pg" -U ward --auth=trust -E UTF8 >/dev/null
  as_pg "$PG_BIN/pg_ctl" -D "$TMP/pg" -l "$TMP/pg.log" -w -o "-p $pgport -k $TMP -c listen_addresses=127.0.0.1 \
    -c shared_buffers=1GB -c max_wal_size=8GB -c fsync=off -c synchronous_commit=off -c full_page_writes=off" start >/dev/null
  OWN_PG=1
  URL="postgres://ward@127.0.0.1:$pgport/postgres"
fi
export WARD_COLLECTOR_LOG=warn
W="$BIN/ward-collector --db $URL"
have=$($W status | python3 -c 'import json,sys; print(json.load(sys.stdin)["devices"])')
echo "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}'), $have devices stored; load: $(uptime | sed 's/.*load average: //')"
if [[ "$have" -eq 0 ]]; then
  $BIN/publish-observations - "$N" 1 bench "$N" > "$TMP/obs.jsonl"
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
  echo "ingest: $N device records in $P parallel chunks, $(python3 -c "print(f'{$t1-$t0:.0f} s, {$N/($t1-$t0):,.0f} records/s')")"
  cat > "$TMP/c.yaml" <<'YAML'
contracts:
  - id: C-1
    supplier: WARD TEST MEDICAL
    products: ["WardScan *"]
    end_of_support: 2030-01-01
    permitted_services: ["dicom tcp/104 outbound"]
YAML
  /usr/bin/time -f "contract import + first evaluation (every link and summary written): %e s, max RSS %M KiB" \
    $W contracts import "$TMP/c.yaml" > /dev/null
elif [[ "$have" -lt $((N * 99 / 100)) ]]; then
  echo "the database holds $have devices, fewer than $N: give an empty database or DEVICES <= $have" >&2
  exit 1
fi
N=$($W status | python3 -c 'import json,sys; print(json.load(sys.stdin)["devices"])')
/usr/bin/time -f "evaluation of $N devices (ward-collector evaluate, nothing changed): %e s, max RSS %M KiB" \
  $W evaluate > /dev/null
TOKEN=$($W token create --name "bench-$$" --role clinical_engineering)
port=$(free_port)
bport=$(free_port)
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
# The collector evaluates once when it starts: measure after it, not against it.
t = time.time()
while not re.search(r"^ward_collector_evaluations_total [1-9]", request("GET", "/metrics", auth)[1].decode(), re.M):
    time.sleep(0.5)
hwm = re.search(r"VmHWM:\s+(\d+) kB", open(f"/proc/{pid}/status").read()).group(1)
print(f"serve's start-up evaluation: {time.time() - t:.0f} s; the collector's peak RSS after it {int(hwm) // 1024} MiB")
# The console's search (the API's device list has no search parameter): sign in as a browser.
resp, _ = request("GET", "/signin")
csrf = re.search(r'ward_signin=([0-9a-f]{64})', resp.getheader("set-cookie")).group(1)
resp, _ = request("POST", "/signin", {
    "Cookie": f"ward_signin={csrf}", "Content-Type": "application/x-www-form-urlencoded",
    "Sec-Fetch-Site": "same-origin"}, urllib.parse.urlencode({"token": token, "csrf": csrf}))
assert resp.status == 303, resp.status
jar = {"Cookie": "ward_session=" + re.search(r'ward_session=([0-9a-f]{64})', resp.getheader("set-cookie")).group(1)}
def get(path, headers):
    t = time.perf_counter()
    resp, body = request("GET", path, headers)
    dt = time.perf_counter() - t
    assert resp.status == 200, (path, resp.status, body[:200])
    return dt, len(body), body
total = json.loads(get("/api/v1/devices?limit=1", auth)[2])["total"]
assert total >= n * 0.99, total
random.seed(1)
print(f"{total} devices, {r} sequential requests of each kind")
print(f"{'request':62} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'bytes':>8}")
def run(name, paths, headers=auth):
    res = [get(p, headers) for p in paths]
    lat = sorted(x[0] * 1000 for x in res)
    size = sorted(x[1] for x in res)[len(res) // 2]
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
    print(f"{name:62} {p(0.5):8.2f} {p(0.99):8.2f} {lat[-1]:8.2f} {size:8}")
deep = lambda fmt: [fmt.format(random.randrange(0, total)) for _ in range(r)]
run("GET /api/v1/devices (first page, 100)", ["/api/v1/devices"] * r)
run("GET /api/v1/devices?offset=<random> (100)", deep("/api/v1/devices?offset={}"))
run("GET /api/v1/devices?type=ct&offset=<random>", deep("/api/v1/devices?type=ct&offset={}"))
run("GET /api/v1/devices?manufacturer=ward (first page)", ["/api/v1/devices?manufacturer=ward"] * r)
run("GET /api/v1/devices?site=bench&flag=service_not_permitted", ["/api/v1/devices?site=bench&flag=service_not_permitted"] * r)
run("GET /devices?q=SN-<random serial> (console search, 50)", [f"/devices?q=SN-{random.randrange(0, n):06}" for _ in range(r)], jar)
run("GET /api/v1/devices/<random id>", [f"/api/v1/devices/{random.randrange(1, total + 1)}" for _ in range(r)])
PY

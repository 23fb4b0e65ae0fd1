#!/usr/bin/env bash
# API latency at scale: p50/p99 of the device list and device detail with N devices.
#
#   scripts/bench-api.sh [DEVICES] [REQUESTS]
#
# Builds an inventory of DEVICES synthetic devices (ward.observation.v1 JSON lines replayed with
# `ward-collector ingest`), imports a contract covering them, evaluates (links, flags,
# summaries), starts `ward-collector serve`, and times REQUESTS sequential requests of each kind
# over one keep-alive connection. Release build.
set -euo pipefail
N=${1:-100000}
R=${2:-1000}
cd "$(dirname "$0")/.."
cargo build -q --release -p ward-collector -p ward-tests --bin ward-collector --bin publish-observations
BIN=target/release
TMP=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$TMP"' EXIT
export WARD_COLLECTOR_LOG=warn
$BIN/publish-observations - "$N" 1 bench "$N" > "$TMP/obs.jsonl"
t0=$(date +%s.%N)
$BIN/ward-collector --db "$TMP/ward.db" ingest "$TMP/obs.jsonl" > /dev/null
t1=$(date +%s.%N)
cat > "$TMP/c.yaml" <<'YAML'
contracts:
  - id: C-1
    supplier: WARD TEST MEDICAL
    products: ["WardScan *"]
    end_of_support: 2030-01-01
    permitted_services: ["dicom tcp/104 outbound"]
YAML
$BIN/ward-collector --db "$TMP/ward.db" contracts import "$TMP/c.yaml" > /dev/null
t2=$(date +%s.%N)
TOKEN=$($BIN/ward-collector --db "$TMP/ward.db" token create --name bench --role clinical_engineering)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
bport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
$BIN/ward-collector --db "$TMP/ward.db" serve --listen "127.0.0.1:$bport" --http "127.0.0.1:$port" --evaluate-interval 3600 &
sleep 1
python3 - "$port" "$TOKEN" "$N" "$R" "$t0" "$t1" "$t2" <<'PY'
import http.client, json, random, sys, time
port, token, n, r = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
t0, t1, t2 = map(float, sys.argv[5:8])
print(f"{n} devices: ingest {t1-t0:.1f} s, contract import + evaluation {t2-t1:.1f} s")
c = http.client.HTTPConnection("127.0.0.1", port)
h = {"Authorization": f"Bearer {token}"}
def get(path):
    t = time.perf_counter()
    c.request("GET", path, headers=h)
    resp = c.getresponse(); body = resp.read()
    assert resp.status == 200, (path, resp.status, body[:200])
    return time.perf_counter() - t, body
total = json.loads(get("/api/v1/devices?limit=1")[1])["total"]
assert total >= n * 0.99, total
random.seed(1)
def run(name, paths):
    lat = sorted(get(p)[0] * 1000 for p in paths)
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
    print(f"{name}: {len(lat)} requests, p50 {p(0.5):.2f} ms, p99 {p(0.99):.2f} ms, max {lat[-1]:.2f} ms")
run("device list (100 per page, random offset)", [f"/api/v1/devices?limit=100&offset={random.randrange(0, total)}" for _ in range(r)])
run("device list filtered (type=ct, manufacturer=ward)", [f"/api/v1/devices?type=ct&manufacturer=ward&limit=100&offset={random.randrange(0, total)}" for _ in range(r)])
run("device detail (random id)", [f"/api/v1/devices/{random.randrange(1, total + 1)}" for _ in range(r)])
PY

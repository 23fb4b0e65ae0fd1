#!/usr/bin/env bash
# Web console page times at scale: server time p50/p99 and transferred size of every console
# page with N devices (issue 21; the numbers go into docs/BENCHMARKS.md, section "console").
#
#   bench/console.sh [DEVICES] [REQUESTS]
#
# Builds an inventory of DEVICES synthetic devices the way scripts/bench-api.sh does
# (ward.observation.v1 JSON lines from `publish-observations`, replayed with
# `ward-collector ingest`), imports a contract covering part of them and evaluates (links,
# flags, summaries), starts `ward-collector serve`, signs in to the console like a browser
# (the sign-in form's double-submit token, then the session cookie), and times REQUESTS
# sequential GETs of each page over one keep-alive connection on loopback (what that measures
# is the server's time: request written to response read). Release build. Not a test: run by
# hand, on a quiet machine when the numbers matter.
set -euo pipefail
N=${1:-100000}
R=${2:-200}
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
    quantity: 1000
    permitted_services: ["dicom tcp/104 outbound"]
YAML
$BIN/ward-collector --db "$TMP/ward.db" contracts import "$TMP/c.yaml" > /dev/null
t2=$(date +%s.%N)
TOKEN=$($BIN/ward-collector --db "$TMP/ward.db" token create --name bench --role clinical_engineering)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
bport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
$BIN/ward-collector --db "$TMP/ward.db" serve --listen "127.0.0.1:$bport" --http "127.0.0.1:$port" --evaluate-interval 3600 &
for _ in $(seq 1 100); do
  python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$port),0.2)" 2>/dev/null && break
  sleep 0.1
done
python3 - "$port" "$TOKEN" "$N" "$R" "$t0" "$t1" "$t2" <<'PY'
import http.client, random, re, sys, time, urllib.parse
port, token, n, r = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
t0, t1, t2 = map(float, sys.argv[5:8])
print(f"{n} devices: ingest {t1-t0:.1f} s, contract import + evaluation {t2-t1:.1f} s")
c = http.client.HTTPConnection("127.0.0.1", port)
# The collector evaluates once when it starts (seconds at this size): measure after it, not
# against it.
while True:
    c.request("GET", "/metrics", headers={"Authorization": f"Bearer {token}"})
    m = c.getresponse().read().decode()
    if re.search(r"^ward_collector_evaluations_total [1-9]", m, re.M):
        break
    time.sleep(0.5)
def request(method, path, headers=None, body=None):
    c.request(method, path, body=body, headers=headers or {})
    resp = c.getresponse()
    return resp, resp.read()
# Sign in as a browser does: the form's token in a cookie and in the form.
resp, body = request("GET", "/signin")
csrf = re.search(r'ward_signin=([0-9a-f]{64})', resp.getheader("set-cookie")).group(1)
resp, _ = request("POST", "/signin", {
    "Cookie": f"ward_signin={csrf}", "Content-Type": "application/x-www-form-urlencoded",
    "Sec-Fetch-Site": "same-origin"}, urllib.parse.urlencode({"token": token, "csrf": csrf}))
assert resp.status == 303, resp.status
session = re.search(r'ward_session=([0-9a-f]{64})', resp.getheader("set-cookie")).group(1)
jar = {"Cookie": f"ward_session={session}"}
def get(path):
    t = time.perf_counter()
    resp, body = request("GET", path, jar)
    dt = time.perf_counter() - t
    assert resp.status == 200, (path, resp.status, body[:200])
    head = sum(len(k) + len(v) + 4 for k, v in resp.getheaders()) + 17
    return dt, head + len(body)
random.seed(1)
total = n
print(f"{'page':58} {'requests':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'bytes':>9}")
def run(name, paths):
    res = [get(p) for p in paths]
    lat = sorted(x[0] * 1000 for x in res)
    size = sorted(x[1] for x in res)[len(res) // 2]
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
    print(f"{name:58} {len(lat):8} {p(0.5):8.2f} {p(0.99):8.2f} {lat[-1]:8.2f} {size:9}")
def rnd(fmt, hi):
    return [fmt.format(random.randrange(0, hi)) for _ in range(r)]
run("/ (overview)", ["/"] * r)
run("/devices (first page)", ["/devices"] * r)
run("/devices?offset=<random> (50 per page)", rnd("/devices?offset={}", total))
run("/devices?sort=last_seen&offset=<random>", rnd("/devices?sort=last_seen&offset={}", total))
run("/devices?type=ct&manufacturer=ward&contract=(any)", ["/devices?type=ct&manufacturer=ward&contract=%28any%29"] * r)
run("/devices?q=<random serial> (search)", [f"/devices?q=SN-{random.randrange(0, total):06}" for _ in range(r)])
run("/devices/<random id>", [f"/devices/{random.randrange(1, total + 1)}" for _ in range(r)])
run("/flags (open, first page)", ["/flags"] * r)
run("/flags?status=all&offset=<random>", rnd("/flags?status=all&offset={}", total))
run("/contracts", ["/contracts"] * r)
run("/assets", ["/assets"] * r)
run("/agents", ["/agents"] * r)
run("/patch-sla", ["/patch-sla"] * r)
run("/static/console.css", ["/static/console.css"] * r)
run("/devices.csv (export of all devices)", ["/devices.csv"] * 3)
PY

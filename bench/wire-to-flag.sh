#!/usr/bin/env bash
# Wire-to-flag latency (issue 22): from an observation published over MQTT (QoS 1) to the flag
# it causes being visible through the API, p50/p99, with an inventory of N devices.
#
#   bench/wire-to-flag.sh [--postgres] [DEVICES] [SAMPLES]
#
# Builds an inventory of DEVICES synthetic devices (ward.observation.v1 JSON lines from
# `publish-observations`, replayed with `ward-collector ingest`) and a contract covering them
# that permits one service (DICOM, tcp/104 outbound); starts `ward-collector serve` (embedded
# broker, default evaluation settings) on SQLite, or with --postgres on a throw-away PostgreSQL
# this script starts (Debian's server, initdb + pg_ctl as the `postgres` user on a free port,
# durability off), and waits for its start-up evaluation. Then, SAMPLES times, one at a time:
# one message re-reporting a random device of the inventory now also using a service the
# contract does not permit (tcp/<20000+k>), published at QoS 1 over one MQTT connection, and
# `GET /api/v1/flags?kind=service_not_permitted` polled every 10 ms until its flag is there.
# Between samples a random pause of 0–GAP seconds (default 2), so that samples land at every
# phase of the evaluator's cycle. BACKGROUND=<messages/s> adds a steady stream of ordinary
# deltas for the inventory's devices (a live site: the evaluator then always has new data).
#
# DEBOUNCE=<seconds> sets `[ingest] evaluate_debounce_secs` (default: the collector's default).
# WARD_BENCH_PG_URL=postgres://… measures on that database (kept) instead of a throw-away one:
# empty, it is filled first; holding the DEVICES devices of an earlier run, they are measured as
# they are (at a million devices, filling takes most of half an hour).
#
# Prints publish → PUBACK (the embedded broker acknowledges after the commit) and publish →
# flag visible, p50/p99/max. Release build.
set -euo pipefail
PG=
if [[ "${1:-}" == --postgres ]]; then PG=1; shift; fi
N=${1:-1000}
S=${2:-50}
GAP=${GAP:-2}
BG=${BACKGROUND:-0}
cd "$(dirname "$0")/.."
cargo build -q --release -p ward-collector -p ward-tests --bin ward-collector --bin publish-observations
BIN=$PWD/target/release
TMP=$(mktemp -d)
. bench/lib/pg.sh
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  pg_stop "$TMP"
  rm -rf "$TMP"
}
trap cleanup EXIT
if [[ -n "${WARD_BENCH_PG_URL:-}" ]]; then
  PG=1
  DB=$WARD_BENCH_PG_URL
elif [[ -n "$PG" ]]; then
  pg_start "$TMP" "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  DB=$PG_URL
else
  DB="$TMP/ward.db"
fi
export WARD_COLLECTOR_LOG=warn
W="$BIN/ward-collector --db $DB"
# The same N devices every time (publish-observations is deterministic): a database this script
# filled before (WARD_BENCH_PG_URL, kept) already holds them and their contract.
$BIN/publish-observations - "$N" 1 bench "$N" > "$TMP/obs.jsonl"
have=$($W status | python3 -c 'import json,sys; print(json.load(sys.stdin)["devices"])')
if [[ "$have" -lt "$N" ]]; then
  $W ingest "$TMP/obs.jsonl" > /dev/null
  cat > "$TMP/c.yaml" <<'YAML'
contracts:
  - id: C-1
    supplier: WARD TEST MEDICAL
    products: ["WardScan *"]
    end_of_support: 2030-01-01
    permitted_services: ["dicom tcp/104 outbound"]
YAML
  $W contracts import "$TMP/c.yaml" > /dev/null
fi
TOKEN=$($W token create --name bench --role clinical_engineering)
port=$(free_port)
bport=$(free_port)
CFG=()
if [[ -n "${DEBOUNCE:-}" ]]; then
  printf '[ingest]\nevaluate_debounce_secs = %s\n' "$DEBOUNCE" > "$TMP/collector.toml"
  CFG=(--config "$TMP/collector.toml")
fi
$W "${CFG[@]}" serve --listen "127.0.0.1:$bport" --http "127.0.0.1:$port" > "$TMP/serve.log" 2>&1 &
for _ in $(seq 1 100); do
  python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$port),0.2)" 2>/dev/null && break
  sleep 0.1
done
if [[ "$BG" != 0 ]]; then
  WARD_PUBLISH_RATE=$BG $BIN/publish-observations "127.0.0.1:$bport" 100000000 1 background "$N" > /dev/null &
fi
echo "$(if [[ -n "$PG" ]]; then echo "PostgreSQL $(pg_version)"; else echo SQLite; fi), $N devices, $S samples, pause 0-$GAP s, background $BG messages/s, debounce ${DEBOUNCE:-default}; load: $(uptime | sed 's/.*load average: //')"
python3 - "$port" "$bport" "$TOKEN" "$S" "$GAP" "$TMP/obs.jsonl" <<'PY'
import http.client, json, random, re, socket, struct, sys, time
port, bport, token, samples, gap, obs = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
api = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
auth = {"Authorization": f"Bearer {token}"}
def get(path):
    global api
    # The server closes a keep-alive connection left idle (picking the samples from a million
    # lines takes a while): one retry on a new connection.
    for attempt in (0, 1):
        try:
            api.request("GET", path, headers=auth)
            resp = api.getresponse(); body = resp.read()
            break
        except (http.client.RemoteDisconnected, ConnectionError):
            if attempt: raise
            api.close(); api = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    assert resp.status == 200, (path, resp.status, body[:200])
    return body
# The collector evaluates once when it starts: sample after it.
while not re.search(rb"^ward_collector_evaluations_total [1-9]", get("/metrics"), re.M):
    time.sleep(0.2)
random.seed(1)
lines = open(obs).read().splitlines()
picks = [json.loads(random.choice(lines)) for _ in range(samples)]
del lines

# MQTT 3.1.1, just what a QoS 1 publisher needs: CONNECT, PUBLISH, PUBACK.
def rlen(n):
    out = b""
    while True:
        b, n = n % 128, n // 128
        out += bytes([b | (0x80 if n else 0)])
        if not n: return out
def s16(b): return struct.pack(">H", len(b)) + b
mq = socket.create_connection(("127.0.0.1", bport))
mq.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
body = s16(b"MQTT") + bytes([4, 0x02]) + struct.pack(">H", 60) + s16(b"wire-to-flag")
mq.sendall(bytes([0x10]) + rlen(len(body)) + body)
def read_packet():
    h = mq.recv(1)
    n, mult = 0, 1
    while True:
        b = mq.recv(1)[0]; n += (b & 0x7f) * mult; mult *= 128
        if not b & 0x80: break
    data = b""
    while len(data) < n: data += mq.recv(n - len(data))
    return h[0], data
assert read_packet() == (0x20, b"\x00\x00"), "CONNACK refused"

kinds = "/api/v1/flags?kind=service_not_permitted&status=open&limit=1"
base = json.loads(get(kinds))["total"]
acked, visible = [], []
instance = f"wire-to-flag-{int(time.time())}"
# A service port of this run's own per sample: a database kept from an earlier run
# (WARD_BENCH_PG_URL) already has the flags of the ports that run used.
salt = int(time.time()) % 1500 * 30
for k, o in enumerate(picks, 1):
    now = int(time.time() * 1e6)
    d = o["devices"][0]
    d["seen"]["last_us"] = now
    d["services_used"].append({"transport": "tcp", "port": 20000 + (salt + k) % 45000, "app": None, "peers": 1,
        "peer_addresses": ["10.0.0.9"], "seen": {"first_us": now, "last_us": now, "count": 1}})
    o.update(agent_id="wire-to-flag", instance=instance, seq=k, time_us=now)
    payload = json.dumps(o).encode()
    topic = b"ward/v1/bench/wire-to-flag/devices"
    pkt = s16(topic) + struct.pack(">H", k % 65535 + 1) + payload
    t0 = time.perf_counter()
    mq.sendall(bytes([0x32]) + rlen(len(pkt)) + pkt)
    h, _ = read_packet()
    assert h == 0x40, h
    acked.append(time.perf_counter() - t0)
    while json.loads(get(kinds))["total"] < base + k:
        time.sleep(0.01)
    visible.append(time.perf_counter() - t0)
    time.sleep(random.uniform(0, gap))
def show(name, xs):
    xs = sorted(x * 1000 for x in xs)
    p = lambda q: xs[min(len(xs) - 1, int(q * len(xs)))]
    print(f"{name:34} p50 {p(0.5):8.1f} ms   p99 {p(0.99):8.1f} ms   max {xs[-1]:8.1f} ms")
print(f"{samples} samples")
show("publish -> PUBACK (committed)", acked)
show("publish -> flag in /api/v1/flags", visible)
m = get("/metrics").decode()
print(re.search(r"^ward_collector_evaluations_total .*$", m, re.M).group(0))
PY

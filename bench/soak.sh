#!/usr/bin/env bash
# Soak test: agent -> real mosquitto -> ward-collector for MINUTES, with the broker and the
# collector killed -9 and restarted at random times, then checks that nothing was lost,
# duplicated or leaked. Prints one line `SOAK PASS ...` or `SOAK FAIL: reason` and exits 0/1.
#
#   bench/soak.sh [MINUTES]          # default 10
#   SOAK_SECONDS=60 bench/soak.sh    # duration in seconds (overrides MINUTES)
#   bench/soak.sh --nats [MINUTES]   # the broker is a 3-node NATS JetStream cluster (its MQTT
#                                    # listeners): the agent on node 0, the collector with all
#                                    # three nodes in --broker; a broker kill is kill -9 of a
#                                    # random node. Writes no docs section unless BENCH_DOCS is set.
#   SOAK_COLLECTORS=3 SOAK_DB=postgres://ward@db:5432/ward bench/soak.sh --nats [MINUTES]
#                                    # three collectors on one PostgreSQL database (a schema of
#                                    # the run's own, dropped afterwards), collector i starting
#                                    # at node i of the list, each with its own client id; a
#                                    # collector kill is kill -9 of a random one. NATS has no
#                                    # $share: each receives every message (high availability).
#
# Environment (all optional):
#   SOAK_DB              PostgreSQL URL of the collectors' database (default: SQLite in the
#                        temporary directory); the run creates a schema there and drops it
#   SOAK_COLLECTORS      collectors (default 1; more than 1 needs --nats)
#   SOAK_CAPTURES        capture files replayed (default: tests/fixtures/*.pcap*,
#                        examples/sample-site.pcap and a SOAK_SITE_MIB capture of the site mix)
#   SOAK_SITE_MIB        size of the generated site-mix capture in the default set (default 8:
#                        ~10 000 packets, ~150 devices, CT studies and HL7 feeds; 0: none)
#   SOAK_ROUND_SECONDS   pause between two replays of all captures (default 0.5)
#   SOAK_SAMPLE_SECONDS  RSS sampling period (default: 5, less for short runs)
#   SOAK_SNAPSHOT_SECONDS  agent snapshot period (default 2: a full snapshot this often keeps
#                        messages in flight when a kill lands; the agent's default is 300)
#   SOAK_SEED            seed of the kill schedule (default: random; printed)
#   SOAK_RSS_TOLERANCE   allowed RSS growth, last vs first quarter (default 0.20)
#   SOAK_KEEP=1          keep the temporary directory (logs, databases, rss.tsv) and print its path
#   SOAK_AGENT_LOG       the agent's --log-level (default warn,ward_agent::run=info: its `stats`
#                        line every 5 s, with devices, flows, table_bytes and spool_depth)
#   SOAK_AGENT_WRAP      command put before the agent, for memory investigations, e.g.
#                        "heaptrack -o /tmp/agent" (the RSS samples are then the wrapper's)
#   SOAK_NOTE            a line on the run's conditions for the report (e.g. what else ran)
#   SOAK_PROFILE         cargo profile of the binaries (default release; debug for a smoke run)
#   BENCH_RESULTS_DIR    where the report goes (default bench/results)
#   BENCH_DOCS           document whose "soak" section gets the report (default
#                        docs/BENCHMARKS.md; empty: do not touch it, e.g. for smoke runs)
#
# Timeline (fractions of the duration): 0-10 % warm-up; 10-25 % first RSS window; kills
# between 25 % and 65 %; 75-100 % last RSS window. The agent is one long-lived
# `ward-agent read -` fed by bench/lib/replay.py (the captures as a live pcapng stream with
# fresh timestamps), so its RSS is meaningful; it is never killed. rss.tsv: elapsed s, agent
# VmRSS, collector VmRSS, agent RssAnon, agent RssFile (kB), spooled messages. The agent's
# first window is before the first kill on purpose: memory held after recovering from a
# backlog counts against the agent (a spool backlog sent 32 snapshots at a time once left
# +7.6 MiB resident; docs/BENCHMARKS.md).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

NATS=0
if [[ ${1:-} == --nats ]]; then NATS=1; shift; fi
MINUTES=${1:-10}
[[ $MINUTES =~ ^[0-9]+$ ]] || { echo "soak.sh: MINUTES must be a whole number, got '$MINUTES'" >&2; exit 2; }
DURATION=${SOAK_SECONDS:-$((MINUTES * 60))}
[[ $DURATION =~ ^[0-9]+$ && $DURATION -ge 30 ]] || { echo "soak.sh: duration must be >= 30 s (SOAK_SECONDS)" >&2; exit 2; }
ROUND=${SOAK_ROUND_SECONDS:-0.5}
SAMPLE=${SOAK_SAMPLE_SECONDS:-$(( DURATION >= 200 ? 5 : (DURATION >= 80 ? 2 : 1) ))}
SEED=${SOAK_SEED:-$(( (RANDOM << 15) | RANDOM ))}
RANDOM=$SEED

need() { command -v "$1" > /dev/null 2>&1 || { echo "soak.sh: missing '$1': $2" >&2; exit 2; }; }
need mosquitto "install it: apt-get install mosquitto"
if ((NATS)); then need nats-server "install it: apt-get install nats-server"; need curl "install it: apt-get install curl"; fi
need python3 "install Python 3"
need cargo "install Rust (rustup)"

COLLECTORS=${SOAK_COLLECTORS:-1}
[[ $COLLECTORS =~ ^[1-3]$ ]] || { echo "soak.sh: SOAK_COLLECTORS must be 1, 2 or 3" >&2; exit 2; }
((COLLECTORS == 1 || NATS)) || { echo "soak.sh: several collectors need --nats (a Mosquitto site shares with \$share groups instead)" >&2; exit 2; }
if [[ -n ${SOAK_DB:-} ]]; then need psql "install it: apt-get install postgresql-client"; fi

SITE_MIB=${SOAK_SITE_MIB:-8}
[[ $SITE_MIB =~ ^[0-9]+$ ]] || { echo "soak.sh: SOAK_SITE_MIB must be a whole number" >&2; exit 2; }

PROFILE=${SOAK_PROFILE:-release}
echo "soak: building ward-agent and ward-collector ($PROFILE)" >&2
if [[ $PROFILE == release ]]; then
  cargo build --release -q -p ward-agent -p ward-collector -p ward-tests
else
  cargo build -q -p ward-agent -p ward-collector -p ward-tests
fi
SRC_STATE="commit $(git rev-parse --short HEAD 2> /dev/null || echo unknown)$(git diff --quiet HEAD -- agent protocols collector 2> /dev/null || echo ', with uncommitted changes under agent/, protocols/ or collector/')"
if [[ -n ${SOAK_CAPTURES:-} ]]; then
  read -r -a CAPTURES <<< "$SOAK_CAPTURES"
else
  CAPTURES=(tests/fixtures/*.pcap* examples/sample-site.pcap)
  if ((SITE_MIB > 0)); then
    # Deterministic: the same size gives the same file, so it is reused between runs.
    SITE_CAP=/tmp/ward-soak-site-$SITE_MIB.pcap
    [[ -s $SITE_CAP ]] || "./target/$PROFILE/make-mixed-capture" "$SITE_CAP" "$SITE_MIB" site
    CAPTURES+=("$SITE_CAP")
  fi
fi
for c in "${CAPTURES[@]}"; do
  [[ -s $c ]] || { echo "soak.sh: capture '$c' is missing or empty" >&2; exit 2; }
done
AGENT=$ROOT/target/$PROFILE/ward-agent
COLLECTOR=$ROOT/target/$PROFILE/ward-collector

TMP=$(mktemp -d /tmp/ward-soak.XXXXXX)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
MQ_PID='' AGENT_PID='' FEED_PID=''
# COLL_PIDS[i]: collector i (the RSS samples are collector 0's).
COLL_PIDS=()
DB=$TMP/ward.db PG_SCHEMA=''
NATS_PIDS=('' '' '') DOWN_NODE='' DOWN_COLL=''

stop_pid() { # PID [SIGNAL]: signal one process we started and reap it (10 s, then KILL)
  local pid=$1 sig=${2:-TERM} i
  [[ -n $pid ]] || return 0
  kill -0 "$pid" 2> /dev/null || { wait "$pid" 2> /dev/null || true; return 0; }
  kill "-$sig" "$pid" 2> /dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2> /dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2> /dev/null && kill -KILL "$pid" 2> /dev/null
  wait "$pid" 2> /dev/null || true
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_pid "$FEED_PID"
  stop_pid "$AGENT_PID"
  for p in "${COLL_PIDS[@]}"; do stop_pid "$p"; done
  stop_pid "$MQ_PID"
  for p in "${NATS_PIDS[@]}"; do stop_pid "$p"; done
  if [[ -n $PG_SCHEMA && ${SOAK_KEEP:-0} != 1 ]]; then
    psql "$SOAK_DB" -qc "DROP SCHEMA $PG_SCHEMA CASCADE" > /dev/null 2>&1 || true
  fi
  if [[ ${SOAK_KEEP:-0} == 1 ]]; then
    echo "soak: kept $TMP" >&2
  else
    rm -rf "$TMP"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() { echo "SOAK FAIL: $*"; exit 1; }

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
BROKER=mqtt://127.0.0.1:$PORT
COLL_BROKER=$BROKER
if ((NATS)); then
  # Three nodes: JetStream store, routes to all, an MQTT listener each; node 0's MQTT port is
  # $PORT, the agent's.
  NMQTT=("$PORT" "$(free_port)" "$(free_port)")
  NCLUSTER=("$(free_port)" "$(free_port)" "$(free_port)")
  NHTTP=("$(free_port)" "$(free_port)" "$(free_port)")
  routes=$(printf 'nats://127.0.0.1:%s, ' "${NCLUSTER[@]}")
  for i in 0 1 2; do
    cat > "$TMP/n$i.conf" << EOF
server_name: n$i
listen: 127.0.0.1:$(free_port)
http: 127.0.0.1:${NHTTP[$i]}
jetstream { store_dir: "$TMP/js$i" }
cluster { name: ward, listen: 127.0.0.1:${NCLUSTER[$i]}, routes: [${routes%, }] }
mqtt { listen: 127.0.0.1:${NMQTT[$i]}, ack_wait: "10s", max_ack_pending: 4096 }
EOF
  done
  COLL_BROKER=$(printf 'mqtt://127.0.0.1:%s,' "${NMQTT[@]}")
  COLL_BROKER=${COLL_BROKER%,}
  BENCH_DOCS=${BENCH_DOCS-}
fi
mkdir -p "$TMP/mosquitto" "$TMP/spool"
# Persistence written after every change (mosquitto has no write-ahead log: this is as durable
# as it gets); no queue limits, so a collector that is down for a while loses nothing.
cat > "$TMP/mosquitto.conf" << EOF
listener $PORT 127.0.0.1
allow_anonymous true
user $(id -un)
persistence true
persistence_location $TMP/mosquitto/
autosave_interval 1
autosave_on_changes true
max_queued_messages 0
max_queued_bytes 0
max_inflight_messages 0
log_dest stderr
log_type error
log_type warning
EOF

wait_port() { # [PORT], default $PORT
  python3 - "${1:-$PORT}" << 'PY'
import socket, sys, time
for _ in range(100):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(1)
PY
}
start_nats_node() { # I: start node I, wait for its MQTT listener
  nats-server -c "$TMP/n$1.conf" >> "$TMP/n$1.log" 2>&1 &
  NATS_PIDS[$1]=$!
  wait_port "${NMQTT[$1]}" || fail "NATS node $1 did not listen on ${NMQTT[$1]} (see log: $(tail -3 "$TMP/n$1.log"))"
}
wait_nats_cluster() { # until every node has its routes and sees a JetStream meta leader
  local i ok try
  for ((try = 0; try < 150; try++)); do
    ok=1
    for i in 0 1 2; do
      curl -s "127.0.0.1:${NHTTP[$i]}/routez" | grep -q '"num_routes": 2' || ok=0
      curl -s "127.0.0.1:${NHTTP[$i]}/jsz" | grep -q '"leader": "n' || ok=0
    done
    ((ok)) && return 0
    sleep 0.2
  done
  fail "the NATS cluster did not form (see $TMP/n*.log)"
}
start_broker() {
  if ((NATS)); then
    if [[ -n $DOWN_NODE ]]; then
      start_nats_node "$DOWN_NODE"
      DOWN_NODE=''
    else
      for i in 0 1 2; do start_nats_node "$i"; done
    fi
    wait_nats_cluster
    return
  fi
  mosquitto -c "$TMP/mosquitto.conf" >> "$TMP/mosquitto.log" 2>&1 &
  MQ_PID=$!
  wait_port || fail "mosquitto did not listen on port $PORT (see log: $(tail -3 "$TMP/mosquitto.log"))"
}
start_collector() { # I: collector I, its own client id, node I first in its broker list
  local i=$1 id=soak broker=$COLL_BROKER
  if ((COLLECTORS > 1)); then
    id=soak-$i
    broker=$(for k in 0 1 2; do printf 'mqtt://127.0.0.1:%s,' "${NMQTT[$(((i + k) % 3))]}"; done)
    broker=${broker%,}
  fi
  "$COLLECTOR" serve --broker "$broker" --client-id "$id" --no-http --db "$DB" \
    --log-level 'warn,ward_collector=info' >> "$TMP/collector-$i.log" 2>&1 &
  COLL_PIDS[i]=$!
}
rss_kb() { # PID [FIELD]: a /proc/PID/status field in kB (default VmRSS), or "-"
  local v=''
  if [[ -n $1 ]]; then v=$(awk -v f="${2:-VmRSS}:" '$1 == f {print $2}' "/proc/$1/status" 2> /dev/null) || true; fi
  echo "${v:--}"
}

# 1. The oracle: the captures read offline, ingested into a fresh database.
"$AGENT" read "${CAPTURES[@]}" --output "jsonl:$TMP/offline.jsonl" --site soak --agent-id soak-1 \
  --spool-dir "$TMP/offline-spool" --log-level warn
"$COLLECTOR" --db "$TMP/ref.db" --log-level warn ingest "$TMP/offline.jsonl" > /dev/null
"$COLLECTOR" --db "$TMP/ref.db" --log-level warn devices --json > "$TMP/ref-devices.json"

# 2. Broker, collectors, agent fed by the replayer.
if [[ -n ${SOAK_DB:-} ]]; then
  # A schema of the run's own in the given database, selected through the URL's search_path.
  PG_SCHEMA=soak_$$_$SEED
  psql "$SOAK_DB" -qc "CREATE SCHEMA $PG_SCHEMA" > /dev/null || fail "cannot create schema $PG_SCHEMA in SOAK_DB"
  DB="$SOAK_DB$([[ $SOAK_DB == *\?* ]] && echo '&' || echo '?')options=-c%20search_path%3D$PG_SCHEMA"
fi
start_broker
for ((c = 0; c < COLLECTORS; c++)); do start_collector "$c"; done
mkfifo "$TMP/feed"
printf 'batch_interval_secs = 1\nsnapshot_interval_secs = %s\nstats_interval_secs = 5\n' \
  "${SOAK_SNAPSHOT_SECONDS:-2}" > "$TMP/agent.toml"
python3 bench/lib/replay.py --round-seconds "$ROUND" "${CAPTURES[@]}" > "$TMP/feed" 2> "$TMP/replay.log" &
FEED_PID=$!
${SOAK_AGENT_WRAP:-} "$AGENT" read - --config "$TMP/agent.toml" --output "$BROKER" --site soak --agent-id soak-1 \
  --spool-dir "$TMP/spool" --log-level "${SOAK_AGENT_LOG:-warn,ward_agent::run=info}" < "$TMP/feed" > "$TMP/agent.log" 2>&1 &
AGENT_PID=$!
echo "soak: ${DURATION} s, seed $SEED, broker $BROKER, $COLLECTORS collector(s) on $([[ -n $PG_SCHEMA ]] && echo "PostgreSQL schema $PG_SCHEMA" || echo SQLite), RSS every ${SAMPLE} s, dir $TMP" >&2

# 3. Run: sample RSS, kill -9 and restart broker / collector (alternately) at random times.
KILL_FROM=$((DURATION * 25 / 100)) KILL_UNTIL=$((DURATION * 65 / 100))
KMIN=$((DURATION / 30 > 2 ? DURATION / 30 : 2))
KMAX=$((DURATION / 10 > KMIN + 1 ? DURATION / 10 : KMIN + 1))
DOWN_MAX=$((DURATION / 30 > 10 ? 10 : (DURATION / 30 > 1 ? DURATION / 30 : 1)))
rand_between() { echo $(($1 + RANDOM % ($2 - $1 + 1))); }
next_kill=$((KILL_FROM + $(rand_between 0 "$KMIN")))
next_target=$((RANDOM % 2)) # 0 broker, 1 collector
down='' restart_at=0 kills_broker=0 kills_collector=0 next_sample=0
: > "$TMP/rss.tsv"
SECONDS=0
while ((SECONDS < DURATION)); do
  now=$SECONDS
  kill -0 "$AGENT_PID" 2> /dev/null || fail "the agent exited during the run: $(tail -3 "$TMP/agent.log")"
  kill -0 "$FEED_PID" 2> /dev/null || fail "the replayer exited during the run: $(tail -3 "$TMP/replay.log")"
  if ((now >= next_sample)); then
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$now" "$(rss_kb "$AGENT_PID")" "$(rss_kb "${COLL_PIDS[0]}")" \
      "$(rss_kb "$AGENT_PID" RssAnon)" "$(rss_kb "$AGENT_PID" RssFile)" "$(find "$TMP/spool" -name '*.msg' | wc -l)" >> "$TMP/rss.tsv"
    next_sample=$((now + SAMPLE))
  fi
  if [[ -z $down ]] && ((now >= next_kill && now < KILL_UNTIL)); then
    if ((next_target == 0)) && ((NATS)); then
      DOWN_NODE=$((RANDOM % 3))
      kill -KILL "${NATS_PIDS[$DOWN_NODE]}"; wait "${NATS_PIDS[$DOWN_NODE]}" 2> /dev/null || true
      NATS_PIDS[DOWN_NODE]=''
      down=broker kills_broker=$((kills_broker + 1))
      echo "soak: t=${now}s NATS node $DOWN_NODE killed" >&2
    elif ((next_target == 0)); then
      kill -KILL "$MQ_PID"; wait "$MQ_PID" 2> /dev/null || true
      down=broker kills_broker=$((kills_broker + 1)) MQ_PID=''
    else
      DOWN_COLL=$((RANDOM % COLLECTORS))
      kill -KILL "${COLL_PIDS[$DOWN_COLL]}"; wait "${COLL_PIDS[$DOWN_COLL]}" 2> /dev/null || true
      COLL_PIDS[DOWN_COLL]=''
      down=collector kills_collector=$((kills_collector + 1))
      echo "soak: t=${now}s collector $DOWN_COLL killed" >&2
    fi
    restart_at=$((now + $(rand_between 1 "$DOWN_MAX")))
    echo "soak: t=${now}s kill -9 $down (back at t=${restart_at}s)" >&2
    next_target=$((1 - next_target))
  fi
  if [[ -n $down ]] && ((now >= restart_at)); then
    if [[ $down == broker ]]; then
      start_broker
    else
      start_collector "$DOWN_COLL"
      # The RSS window of the collector starts after collector 0's last start.
      if ((DOWN_COLL == 0)); then echo "$SECONDS" >> "$TMP/collector-starts"; fi
    fi
    down=''
    next_kill=$((SECONDS + $(rand_between "$KMIN" "$KMAX")))
  fi
  for ((c = 0; c < COLLECTORS; c++)); do
    if [[ -n ${COLL_PIDS[$c]} ]] && ! kill -0 "${COLL_PIDS[$c]}" 2> /dev/null; then
      fail "collector $c died on its own: $(tail -3 "$TMP/collector-$c.log")"
    fi
  done
  sleep 1
done
if [[ $down == broker ]]; then start_broker; fi
if [[ $down == collector ]]; then start_collector "$DOWN_COLL"; fi

# 4. Stop the input; the agent flushes and exits; then drain what is left in its spool.
stop_pid "$FEED_PID"; FEED_PID=''
for ((i = 0; i < 300; i++)); do kill -0 "$AGENT_PID" 2> /dev/null || break; sleep 0.2; done
agent_rc=0
if kill -0 "$AGENT_PID" 2> /dev/null; then
  fail "the agent did not exit within 60 s of the end of its input"
fi
wait "$AGENT_PID" || agent_rc=$?
AGENT_PID=''
((agent_rc == 0)) || fail "the agent exited with status $agent_rc: $(tail -3 "$TMP/agent.log")"
spool_depth() { find "$TMP/spool" -name '*.msg' | wc -l; }
printf '\xd4\xc3\xb2\xa1\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\x00\x00\x01\x00\x00\x00' > "$TMP/empty.pcap"
for ((i = 0; i < 12 && $(spool_depth) > 0; i++)); do
  echo "soak: $(spool_depth) message(s) still spooled; draining" >&2
  "$AGENT" read "$TMP/empty.pcap" --output "$BROKER" --site soak --agent-id soak-1 \
    --spool-dir "$TMP/spool" --log-level warn >> "$TMP/agent.log" 2>&1 || true
done
(($(spool_depth) == 0)) || fail "the agent's spool did not drain: $(spool_depth) message(s) left"
corrupt=$(find "$TMP/spool" -name '*.corrupt' | wc -l)
((corrupt == 0)) || fail "$corrupt corrupt spool file(s)"

# 5. Wait until the collector has stored everything (message count stable), stop it cleanly.
last='' stable=0
for ((i = 0; i < 60 && stable < 3; i++)); do
  sleep 1
  cur=$("$COLLECTOR" --db "$DB" --log-level error agents 2> /dev/null | tr -d ' \n' || true)
  if [[ -n $cur && $cur == "$last" ]]; then stable=$((stable + 1)); else stable=0; fi
  last=$cur
done
for ((c = 0; c < COLLECTORS; c++)); do stop_pid "${COLL_PIDS[$c]}"; COLL_PIDS[c]=''; done
stop_pid "$MQ_PID"; MQ_PID=''

# 6. Judge.
"$COLLECTOR" --db "$DB" --log-level warn devices --json > "$TMP/devices.json"
"$COLLECTOR" --db "$DB" --log-level warn agents > "$TMP/agents.json"
"$COLLECTOR" --db "$DB" --log-level warn status > "$TMP/status.json"
verdict_rc=0
python3 bench/lib/soak_check.py "$TMP" "$DURATION" "$kills_broker" "$kills_collector" | tee "$TMP/verdict.txt" || verdict_rc=$?

RESULTS=${BENCH_RESULTS_DIR:-$ROOT/bench/results}
mkdir -p "$RESULTS"
OUT=$RESULTS/soak-$(date +%Y-%m-%d-%H%M).md
{
  echo "# Soak run, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo '```'
  tail -1 "$TMP/verdict.txt"
  echo '```'
  echo
  NATS_ARG=$( ((NATS)) && echo ' --nats' || true)
  if [[ -n ${SOAK_SECONDS:-} ]]; then CMD="SOAK_SEED=$SEED SOAK_SECONDS=$SOAK_SECONDS bench/soak.sh$NATS_ARG"; else CMD="SOAK_SEED=$SEED bench/soak.sh$NATS_ARG $MINUTES"; fi
  echo "- Command: \`$CMD\` (the seed reproduces the kill schedule)"
  echo "- Captures replayed every ${ROUND} s as a live pcapng stream: $(printf '`%s` ' "${CAPTURES[@]}")"
  echo "- Kills (kill -9, then restart after $( ((DOWN_MAX > 1)) && echo "1-$DOWN_MAX" || echo 1) s): $kills_broker broker, $kills_collector collector, between 25 % and 65 % of the run"
  awk -v d="$DURATION" '
    { i = int($1 * 10 / d); if (i > 9) i = 9
      if ($2 != "-") { s[i] += $2; n[i]++ }
      if ($6 != "" && $6 > m[i]) m[i] = $6 }
    END {
      printf "- Agent RSS, mean of each tenth of the run (MiB):"
      for (i = 0; i < 10; i++) printf " %s", (n[i] ? sprintf("%.1f", s[i] / n[i] / 1024) : "-")
      printf "\n- Spooled messages, most in each tenth:"
      for (i = 0; i < 10; i++) printf " %d", m[i]
      printf "\n"
    }' "$TMP/rss.tsv"
  echo "- Collectors: $COLLECTORS, on $([[ -n $PG_SCHEMA ]] && echo "PostgreSQL $(psql "$SOAK_DB" -Atc 'SHOW server_version' 2> /dev/null)" || echo SQLite)$( ((COLLECTORS > 1)) && echo ' (each receives every message: NATS has no $share)' || true)"
  echo "- Collector: $(jq -c . "$TMP/status.json" 2> /dev/null || tr -d ' \n' < "$TMP/status.json")"
  echo "- Source: $SRC_STATE"
  echo "- Versions: $("$AGENT" --version), $("$COLLECTOR" --version), $({ mosquitto -h 2> /dev/null || true; } | head -1)$( ((NATS)) && echo ", broker: 3-node $(nats-server --version)" || true)"
  echo "- Machine: $(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2; exit}'), $(nproc) cores; load average at the start $LOAD_START, at the end $(cut -d' ' -f1-3 /proc/loadavg)"
  if [[ -n ${SOAK_NOTE:-} ]]; then echo "- Conditions: $SOAK_NOTE"; fi
} > "$OUT"
echo "soak: report written to $OUT" >&2
BENCH_DOCS=${BENCH_DOCS-$ROOT/docs/BENCHMARKS.md}
if [[ -n $BENCH_DOCS ]]; then python3 bench/lib/splice.py "$BENCH_DOCS" soak "$OUT"; fi
exit "$verdict_rc"

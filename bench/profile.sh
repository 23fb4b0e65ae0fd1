#!/usr/bin/env bash
# Where ward-agent's time goes on a capture: builds the agent with frame pointers, records it
# with `perf record --call-graph fp` on one core, and prints the share of samples under each
# stage of the frame path (inclusive), plus the top self-time symbols.
#
#   bench/profile.sh [CAPTURE]     # default: /tmp/ward-mixed-1024-site.pcap (bench/compare.sh's)
#
# Needs perf (apt-get install linux-perf) and permission to use it (root, or
# kernel.perf_event_paranoid <= 1). Output: bench/results/profile-<date>.md (also printed), and
# the "profile" section of docs/BENCHMARKS.md (BENCH_DOCS; empty: do not touch it).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
CAP=${1:-/tmp/ward-mixed-1024-site.pcap}
RESULTS=${BENCH_RESULTS_DIR:-$ROOT/bench/results}
command -v perf > /dev/null || { echo "profile.sh: missing perf (apt-get install linux-perf)" >&2; exit 2; }
[[ -s $CAP ]] || { echo "profile.sh: no capture at $CAP (bench/compare.sh builds one)" >&2; exit 2; }

TMP=$(mktemp -d /tmp/ward-profile.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
echo "profile: building ward-agent with frame pointers (target/profile-fp)" >&2
RUSTFLAGS="-C force-frame-pointers=yes" CARGO_TARGET_DIR="$ROOT/target/profile-fp" \
  cargo build --release -q -p ward-agent
AGENT=$ROOT/target/profile-fp/release/ward-agent
cat "$CAP" > /dev/null
perf record -q --call-graph fp -F 2000 -o "$TMP/perf.data" -- taskset -c 0 \
  "$AGENT" read "$CAP" --output jsonl:/dev/null --log-level warn --spool-dir "$TMP/spool" 2> "$TMP/record.err"

mkdir -p "$RESULTS"
OUT=$RESULTS/profile-$(date +%Y-%m-%d-%H%M).md
{
  echo "# Profile of ward-agent read $(basename "$CAP"), $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "Share of CPU samples (\`bench/profile.sh $CAP\`; perf, frame pointers, one core)."
  echo
  echo '```'
  echo "Stages (inclusive: the stage and everything it calls)"
  perf report -i "$TMP/perf.data" --children --stdio -g none --percent-limit 0.5 2> /dev/null |
    awk '/%/ {
      sym = $0; sub(/.*\] /, "", sym)
      split("ward_agent::pcap::read_packets|reading the capture (pcap parsing, read syscalls, all that follows)#"\
            "PcapReaderIterator>::refill|  refilling the read buffer (read syscall: page-cache copy)#"\
            "ward_agent::engine::Engine::process|  per-packet engine (all below)#"\
            "ward_protocols::frame::decode|    link/IP/transport decoding (etherparse)#"\
            "ward_agent::devices::DeviceTable::observe_frame|    device table: per-frame (MAC/IP/service bookkeeping)#"\
            "ward_protocols::dissect::Dissector::process|    dissector: flow table, reassembly, decoders#"\
            "ward_protocols::dissect::pump|      application decoders (DICOM, HL7)#"\
            "ward_protocols::dicom::DicomDecoder as ward_protocols::StreamDecoder>::feed|        DICOM#"\
            "ward_protocols::hl7::Hl7Decoder as ward_protocols::StreamDecoder>::feed|        HL7#"\
            "ward_agent::devices::DeviceTable::observe_evidence|    device table: attributing evidence#"\
            "ward_agent::run::Loop::publish|publishing (classification, records, JSON)#"\
            "ward_agent::rules::RuleSet::classify|  classification (rules)#"\
            "ward_agent::rules::RuleSet::bundled|start-up: compiling the bundled rules", rows, "#")
      for (i in rows) {
        split(rows[i], kv, "|")
        if (index(sym, kv[1]) > 0 && !(kv[1] in seen)) { seen[kv[1]] = 1; share[i] = $1; name[i] = kv[2] }
      }
    }
    END { for (i = 1; i <= 13; i++) if (i in share) printf "%8s  %s\n", share[i], name[i] }'
  echo
  echo "Top self time"
  perf report -i "$TMP/perf.data" --no-children --stdio -g none --percent-limit 1.5 2> /dev/null |
    awk '/%/ {sym = $0; sub(/.*\] /, "", sym); printf "%8s  %s\n", $1, substr(sym, 1, 110)}' | head -25
  echo '```'
} > "$OUT"
cat "$OUT"
echo "profile written to $OUT" >&2
BENCH_DOCS=${BENCH_DOCS-$ROOT/docs/BENCHMARKS.md}
if [[ -n $BENCH_DOCS ]]; then python3 bench/lib/splice.py "$BENCH_DOCS" profile "$OUT"; fi

#!/usr/bin/env bash
# ward-agent vs ndpiReader vs tshark on one large mixed capture, single core: wall time,
# packets/s, Gbit/s, peak RSS, and what each tool identified (DICOM, HL7, devices).
# Writes bench/results/compare-<date>.md, prints it, and prints ward pps / ndpiReader pps.
#
#   bench/compare.sh [SIZE_MIB] [RUNS]     # defaults 1024, 3
#
# Environment (optional):
#   MIX                 traffic mix of the generated capture: site (default; a hospital network,
#                       see tests/src/bin/make-mixed-capture.rs) or dense[:N] (fixture exchanges
#                       back to back: the worst case for per-flow and per-device work)
#   WARD_BENCH_CAPTURE  capture path (default /tmp/ward-mixed-SIZE-MIX.pcap, shared with
#                       scripts/bench-agent.sh); built when missing, reused (and kept) otherwise
#   COMPARE_TOOLS       subset of "ward ndpi tshark" (default: all three)
#   BENCH_RESULTS_DIR   where the report goes (default bench/results)
#   BENCH_DOCS          document whose "compare-site" / "compare-dense" section gets the report
#                       (default docs/BENCHMARKS.md; empty: do not touch it, e.g. for smoke runs)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

SIZE=${1:-1024}
RUNS=${2:-3}
MIX=${MIX:-site}
[[ $MIX =~ ^(site|dense(:[0-9]+)?)$ ]] || { echo "compare.sh: MIX must be site, dense or dense:N" >&2; exit 2; }
[[ $SIZE =~ ^[0-9]+$ && $SIZE -gt 0 ]] || { echo "compare.sh: SIZE_MIB must be a positive whole number" >&2; exit 2; }
[[ $RUNS =~ ^[0-9]+$ && $RUNS -gt 0 ]] || { echo "compare.sh: RUNS must be a positive whole number" >&2; exit 2; }
CAP=${WARD_BENCH_CAPTURE:-/tmp/ward-mixed-$SIZE-$MIX.pcap}
RESULTS=${BENCH_RESULTS_DIR:-$ROOT/bench/results}
read -r -a TOOLS <<< "${COMPARE_TOOLS:-ward ndpi tshark}"

missing=()
need() { command -v "$1" > /dev/null 2>&1 || missing+=("$1 ($2)"); }
need cargo "Rust toolchain, rustup"
need python3 "Python 3"
need capinfos "apt-get install tshark"
need taskset "apt-get install util-linux"
need lscpu "apt-get install util-linux"
[[ -x /usr/bin/time ]] || missing+=("/usr/bin/time (apt-get install time)")
for t in "${TOOLS[@]}"; do
  case $t in
    ward) ;;
    ndpi) need ndpiReader "apt-get install libndpi-bin" ;;
    tshark) need tshark "apt-get install tshark" ;;
    *) echo "compare.sh: unknown tool '$t' in COMPARE_TOOLS (ward, ndpi, tshark)" >&2; exit 2 ;;
  esac
done
if ((${#missing[@]} > 0)); then
  printf 'compare.sh: missing %s\n' "${missing[@]}" >&2
  exit 2
fi

TMP=$(mktemp -d /tmp/ward-compare.XXXXXX)
CHILD=''
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $CHILD ]] && kill -0 "$CHILD" 2> /dev/null; then
    kill -TERM "$CHILD" 2> /dev/null || true
    wait "$CHILD" 2> /dev/null || true
  fi
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "compare: building ward-agent and the capture generator (release)" >&2
cargo build --release -q -p ward-agent -p ward-tests
AGENT=$ROOT/target/release/ward-agent
if [[ ! -s $CAP ]]; then
  echo "compare: generating $CAP ($SIZE MiB, MIX=$MIX)" >&2
  ./target/release/make-mixed-capture "$CAP" "$SIZE" "$MIX"
else
  echo "compare: reusing $CAP (delete it to regenerate)" >&2
fi
info=$(capinfos -M -c -d -s "$CAP")
PACKETS=$(awk -F: '/Number of packets/ {gsub(/[^0-9]/, "", $2); print $2}' <<< "$info")
DATA_BYTES=$(awk -F: '/Data size/ {gsub(/[^0-9]/, "", $2); print $2}' <<< "$info")
FILE_BYTES=$(stat -c %s "$CAP")

NDPI_VERSION=''
NDPI_PROTOCOLS=''
if command -v ndpiReader > /dev/null; then
  ndpi_help=$(ndpiReader -h 2>&1 || true)
  NDPI_VERSION=$(grep -o -m1 'nDPI [0-9][0-9.]*' <<< "$ndpi_help" | cut -d' ' -f2 || true)
  # The protocol list printed by -h: "  Id Name  L4  Breed  Category".
  NDPI_PROTOCOLS=$(awk '/supported protocols/ {on = 1; next} on && $1 ~ /^[0-9]+$/ {print $2}' <<< "$ndpi_help" | tr '\n' ' ')
fi

WARD_CMD=("$AGENT" read "$CAP" --output jsonl:/dev/null --log-level warn --spool-dir "$TMP/spool")
NDPI_CMD=(ndpiReader -i "$CAP")
TSHARK_CMD=(tshark -n -r "$CAP" --enable-heuristic dicom_tcp --enable-heuristic hl7_tcp
  -d 'tcp.port==6661,hl7' -Y 'dicom || hl7' -T fields -e tcp.stream -e frame.protocols)

run_timed() { # TOOL RUN CMD...: one pinned run; appends "tool run wall_s rss_kb" to runs.tsv
  local tool=$1 run=$2 start end rc=0 rss wall
  shift 2
  start=$(date +%s.%N)
  /usr/bin/time -v -o "$TMP/$tool.$run.time" taskset -c 0 "$@" > "$TMP/$tool.$run.out" 2> "$TMP/$tool.$run.err" &
  CHILD=$!
  wait "$CHILD" || rc=$?
  CHILD=''
  end=$(date +%s.%N)
  if ((rc != 0)); then
    echo "compare.sh: $tool run $run failed (exit $rc): $*" >&2
    tail -5 "$TMP/$tool.$run.err" >&2
    exit 1
  fi
  rss=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$TMP/$tool.$run.time")
  wall=$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.3f", b - a}')
  printf '%s\t%s\t%s\t%s\n' "$tool" "$run" "$wall" "$rss" >> "$TMP/runs.tsv"
  echo "compare: $tool run $run: $wall s, peak RSS $((rss / 1024)) MiB" >&2
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
cat "$CAP" > /dev/null # page the file in, so the runs measure the tools, not the disk
: > "$TMP/runs.tsv"
for ((r = 1; r <= RUNS; r++)); do
  for t in "${TOOLS[@]}"; do
    case $t in
      ward) run_timed ward "$r" "${WARD_CMD[@]}" ;;
      ndpi) run_timed ndpi "$r" "${NDPI_CMD[@]}" ;;
      tshark) run_timed tshark "$r" "${TSHARK_CMD[@]}" ;;
    esac
  done
done
WARD_IDENT_CMD=()
if [[ " ${TOOLS[*]} " == *" ward "* ]]; then
  # What ward identified: one more, untimed, run writing its JSON lines.
  WARD_IDENT_CMD=("$AGENT" read "$CAP" --output "jsonl:$TMP/ward.jsonl" --log-level warn --spool-dir "$TMP/spool")
  taskset -c 0 "${WARD_IDENT_CMD[@]}"
fi
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
# The generated capture carries patient-name canaries (DICOM PatientName, HL7 PID): count them
# in the capture and in what ward published, which must be none.
CANARY_CAPTURE=$(grep -a -o CANARY "$CAP" | wc -l || true)
CANARY_WARD=''
if [[ -s $TMP/ward.jsonl ]]; then CANARY_WARD=$(grep -a -o CANARY "$TMP/ward.jsonl" | wc -l || true); fi

q() { # ARGS...: a shell-quoted command line, readable (single quotes only where needed)
  local a out=()
  for a in "$@"; do
    if [[ $a =~ ^[A-Za-z0-9_./:=,@+-]+$ ]]; then out+=("$a"); else out+=("'${a//\'/\'\\\'\'}'"); fi
  done
  echo "${out[*]}"
}
export COMPARE_DATE COMPARE_CAPTURE COMPARE_PACKETS COMPARE_DATA_BYTES COMPARE_FILE_BYTES \
  COMPARE_MIX COMPARE_RUNS COMPARE_NDPI_VERSION COMPARE_NDPI_PROTOCOLS COMPARE_LOAD_BEFORE \
  COMPARE_LOAD_AFTER COMPARE_SCRIPT COMPARE_CPU COMPARE_CORES COMPARE_WARD_VERSION \
  COMPARE_TSHARK_VERSION COMPARE_WARD_CMD COMPARE_NDPI_CMD COMPARE_TSHARK_CMD \
  COMPARE_WARD_IDENT_CMD COMPARE_CANARY_CAPTURE COMPARE_CANARY_WARD
COMPARE_CANARY_CAPTURE=$CANARY_CAPTURE COMPARE_CANARY_WARD=$CANARY_WARD
COMPARE_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
COMPARE_CAPTURE=$CAP COMPARE_PACKETS=$PACKETS COMPARE_DATA_BYTES=$DATA_BYTES
COMPARE_FILE_BYTES=$FILE_BYTES COMPARE_MIX=$MIX COMPARE_RUNS=$RUNS
COMPARE_NDPI_VERSION=$NDPI_VERSION COMPARE_NDPI_PROTOCOLS=$NDPI_PROTOCOLS
COMPARE_LOAD_BEFORE=$LOAD_BEFORE COMPARE_LOAD_AFTER=$LOAD_AFTER
COMPARE_SCRIPT="bench/compare.sh $SIZE $RUNS (MIX=$MIX)"
COMPARE_CPU=$(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2; exit}')
COMPARE_CORES=$(nproc)
COMPARE_WARD_VERSION=$("$AGENT" --version)
COMPARE_TSHARK_VERSION=$(tshark --version 2> /dev/null | head -1 || echo "tshark not installed")
COMPARE_WARD_CMD=''
COMPARE_NDPI_CMD=''
COMPARE_TSHARK_CMD=''
COMPARE_WARD_IDENT_CMD=''
for t in "${TOOLS[@]}"; do
  case $t in
    ward)
      COMPARE_WARD_CMD=$(q "${WARD_CMD[@]}")
      COMPARE_WARD_IDENT_CMD=$(q "${WARD_IDENT_CMD[@]}")
      ;;
    ndpi) COMPARE_NDPI_CMD=$(q "${NDPI_CMD[@]}") ;;
    tshark) COMPARE_TSHARK_CMD=$(q "${TSHARK_CMD[@]}") ;;
  esac
done

mkdir -p "$RESULTS"
OUT=$RESULTS/compare-$(date +%Y-%m-%d-%H%M).md
python3 bench/lib/compare_report.py "$TMP" > "$OUT"
cat "$OUT"
echo
echo "report written to $OUT"
BENCH_DOCS=${BENCH_DOCS-$ROOT/docs/BENCHMARKS.md}
if [[ -n $BENCH_DOCS ]]; then python3 bench/lib/splice.py "$BENCH_DOCS" "compare-${MIX%%:*}" "$OUT"; fi
grep -o 'ward pps / ndpiReader pps = \*\*[0-9.]*\*\*' "$OUT" | tr -d '*' || true

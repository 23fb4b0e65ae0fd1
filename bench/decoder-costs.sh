#!/usr/bin/env bash
# What each protocol decoder costs ward-agent on a capture: instructions executed in each
# decoder's own code (callgrind, so the numbers hold on a loaded machine, unlike wall time),
# next to the frame path, the device table, rule matching and output, per packet and as a share
# of the run. Pair it with `cargo bench -p ward-protocols --bench decode` (time per message of
# each decoder alone) and bench/compare.sh (the whole agent against ndpiReader).
#
#   bench/decoder-costs.sh [CAPTURE]   # default /tmp/ward-mixed-256-site.pcap, built when missing
#
# Needs valgrind (apt-get install valgrind) and capinfos (apt-get install tshark). Output:
# bench/results/decoder-costs-<date>.md (also printed), and the "decoder-costs" section of
# docs/BENCHMARKS.md (BENCH_DOCS; empty: do not touch it).
#
# A decoder's row counts its entry points with their callees (x509-parser under TLS, memchr,
# allocation) and its code inlined into the dissector; the other rows are exclusive counts.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
CAP=${1:-/tmp/ward-mixed-256-site.pcap}
RESULTS=${BENCH_RESULTS_DIR:-$ROOT/bench/results}
BENCH_DOCS=${BENCH_DOCS-docs/BENCHMARKS.md}
for tool in valgrind callgrind_annotate capinfos python3 cargo; do
  command -v "$tool" > /dev/null || { echo "decoder-costs.sh: missing $tool (apt-get install valgrind tshark)" >&2; exit 2; }
done

TMP=$(mktemp -d /tmp/ward-decoder-costs.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
echo "decoder-costs: building ward-agent and the capture generator (release)" >&2
cargo build --release -q -p ward-agent -p ward-tests
if [[ ! -s $CAP ]]; then
  echo "decoder-costs: generating $CAP (256 MiB site mix)" >&2
  ./target/release/make-mixed-capture "$CAP" 256 site > /dev/null
fi
PACKETS=$(capinfos -c -M "$CAP" | awk -F: '/Number of packets/ {gsub(/[^0-9]/, "", $2); print $2}')
echo "decoder-costs: callgrind over $CAP ($PACKETS packets; about a minute per 256 MiB)" >&2
valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.out" \
  ./target/release/ward-agent read "$CAP" --output jsonl:/dev/null --log-level warn \
  --spool-dir "$TMP/spool" 2> "$TMP/valgrind.err"

mkdir -p "$RESULTS"
OUT=$RESULTS/decoder-costs-$(date +%Y-%m-%d-%H%M).md
callgrind_annotate --threshold=100 "$TMP/cg.out" > "$TMP/annotate.txt" 2> /dev/null
callgrind_annotate --threshold=100 --inclusive=yes "$TMP/cg.out" > "$TMP/inclusive.txt" 2> /dev/null
python3 - "$TMP/annotate.txt" "$PACKETS" "$CAP" "$TMP/inclusive.txt" > "$OUT" <<'EOF'
import re
import sys

path, packets, cap, inclusive = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
# The protocol modules: every file under protocols/src that holds a decoder.
DECODERS = {
    "dicom", "hl7", "dhcp", "http", "ssh", "tls", "mdns", "ssdp", "snmp", "llmnr", "nbns",
    "dhcpv6", "dns", "lldp", "cdp", "upnp", "astm", "poct1a", "sdc", "intellivue", "bcc", "fhir",
}
groups = {}
inlined = {}
total = 0
line_re = re.compile(r"^\s*([\d,]+) \([ \d.]+%\)\s+(\S+?):(.*)$")
for line in open(path, encoding="utf-8", errors="replace"):
    m = line_re.match(line)
    if not m:
        continue
    ir = int(m.group(1).replace(",", ""))
    src = m.group(2)
    if "PROGRAM TOTALS" in line:
        continue
    total += ir
    func = m.group(3)
    # The source file names the code that ran (inlined code keeps its own file); the function
    # is the symbol it was inlined into. A decoder gets both its file and its symbols.
    pf = re.search(r"/protocols/src/(\w+)(?:\.rs|/)", src)
    pfn = re.search(r"ward_protocols::(\w+)::", func)
    afn = re.search(r"ward_agent::(\w+)", func)
    c = re.search(r"index\.crates\.io-[0-9a-f]+/([A-Za-z_-]+?)-\d", src)
    cfn = re.search(r"^<?([a-z_][a-z0-9_]*)::", func)
    if pfn and pfn.group(1) in DECODERS:
        # Counted with callees below, from the decoder's own symbols.
        continue
    if pf and pf.group(1) in DECODERS:
        # Decoder code inlined into the dissector (probes, mostly).
        inlined[pf.group(1)] = inlined.get(pf.group(1), 0) + ir
        continue
    elif pfn:
        key = ("frame path", "protocols::" + pfn.group(1))
    elif pf:
        key = ("frame path", "protocols::" + pf.group(1))
    elif afn:
        key = ("agent", "agent::" + afn.group(1))
    elif c:
        key = ("library", c.group(1))
    elif "libc.so" in line:
        key = ("library", "libc (memcpy, malloc)")
    elif cfn:
        key = ("library", cfn.group(1))
    else:
        key = ("other", "the rest")
    groups[key] = groups.get(key, 0) + ir

# A decoder's entry points (stream `feed`, datagram `extract`, probes) are its own symbols: the
# largest inclusive count among them holds its callees (x509-parser, memchr, allocation) without
# counting a callee twice.
with_callees = {}
for line in open(inclusive, encoding="utf-8", errors="replace"):
    m = line_re.match(line)
    if not m:
        continue
    pfn = re.search(r"ward_protocols::(\w+)::", m.group(3))
    if pfn and pfn.group(1) in DECODERS:
        ir = int(m.group(1).replace(",", ""))
        name = pfn.group(1)
        # Several entry points per decoder (probe and decode): keep each distinct symbol's
        # largest, then add them.
        sym = m.group(3).split(" [")[0]
        with_callees.setdefault(name, {})
        with_callees[name][sym] = max(with_callees[name].get(sym, 0), ir)
for name in set(with_callees) | set(inlined):
    syms = with_callees.get(name, {})
    # Entry points only: a symbol whose count is contained in a bigger one of the same decoder
    # is a callee (a parse helper under `feed`); the biggest is taken, plus probe symbols.
    top = max(syms.values(), default=0)
    probes = sum(v for k, v in syms.items() if "probe" in k or "looks_like" in k)
    main = top if top > probes else 0
    groups[("decoder", name)] = main + probes + inlined.get(name, 0)
    total += 0

print(f"# Decoder costs on {cap.rsplit('/', 1)[-1]}")
print()
print(f"`bench/decoder-costs.sh {cap}`: callgrind instruction counts of one "
      f"`ward-agent read` ({packets:,} packets, {total:,} instructions in all, start-up included).")
print()
print("| kind | component | instructions | per packet | share |")
print("|---|---|---:|---:|---:|")
for (kind, name), ir in sorted(groups.items(), key=lambda kv: (kv[0][0] != "decoder", -kv[1])):
    if ir * 1000 < total and kind != "decoder":
        continue
    print(f"| {kind} | {name} | {ir:,} | {ir / packets:.1f} | {100 * ir / total:.2f} % |")
print()
print("Rows under 0.1 % are left out except decoders. A decoder's row is everything its entry "
      "points ran, callees included (its probes, `feed` or `extract`, the parsers and "
      "libraries they call) plus its code inlined into the dissector; the other rows are "
      "exclusive counts by symbol, so a library a decoder calls also appears in its own row. "
      "Per packet is over all packets of the capture.")
EOF
cat "$OUT"
if [[ -n $BENCH_DOCS ]]; then python3 bench/lib/splice.py "$BENCH_DOCS" decoder-costs "$OUT"; fi

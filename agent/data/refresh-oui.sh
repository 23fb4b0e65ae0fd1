#!/bin/sh
# Regenerates agent/data/oui.tsv, the IEEE MAC address block registry bundled into ward-agent
# (see REFRESH.md). Reads the CSV exports of the four IEEE registries:
#
#   MA-L  (24-bit OUI)        oui.csv
#   MA-M  (28-bit)            mam.csv
#   MA-S  (36-bit)            oui36.csv
#   IAB   (36-bit, legacy)    iab.csv
#
# Usage:
#   agent/data/refresh-oui.sh                 # from Debian's ieee-data (/usr/share/ieee-data)
#   agent/data/refresh-oui.sh DIR             # from the four CSV files in DIR
#   agent/data/refresh-oui.sh --download      # fetch the CSVs from standards-oui.ieee.org first
#
# Output: one line per assignment, "HEX<TAB>Organization Name", sorted by HEX, where HEX is 6
# (MA-L), 7 (MA-M) or 9 (MA-S/IAB) upper-case hex digits. Addresses are dropped. Names are
# whitespace-normalised; an assignment listed more than once (a few historical MA-L blocks)
# gets its distinct names joined with " / ". Requires python3 (for a correct CSV parser).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out="$here/oui.tsv"
src=/usr/share/ieee-data
label="Debian ieee-data"
tmp=""
cleanup() { [ -n "$tmp" ] && rm -rf "$tmp"; return 0; }
trap cleanup EXIT

case "${1:-}" in
--download)
    tmp=$(mktemp -d)
    for pair in oui/oui.csv:oui.csv oui28/mam.csv:mam.csv oui36/oui36.csv:oui36.csv iab/iab.csv:iab.csv; do
        url="https://standards-oui.ieee.org/${pair%%:*}"
        echo "fetching $url" >&2
        curl -fsSL --retry 3 -A "ward-agent refresh-oui.sh" -o "$tmp/${pair#*:}" "$url"
    done
    src=$tmp
    label="standards-oui.ieee.org, downloaded $(date -u +%Y-%m-%d)"
    ;;
"") ;;
*)
    src=$1
    label="$1"
    ;;
esac

if [ "$src" = /usr/share/ieee-data ]; then
    if [ ! -f "$src/oui.csv" ]; then
        echo "missing $src/oui.csv: apt-get install ieee-data, or use --download" >&2
        exit 1
    fi
    version=$(dpkg-query -W -f '${Version}' ieee-data 2>/dev/null || echo unknown)
    label="$label $version"
fi

python3 - "$src" "$label" "$out" <<'PY'
import csv, re, sys

src, label, out = sys.argv[1:4]
names = {}
counts = {}
for registry, filename, width in (
    ("MA-L", "oui.csv", 6),
    ("MA-M", "mam.csv", 7),
    ("MA-S", "oui36.csv", 9),
    ("IAB", "iab.csv", 9),
):
    with open(f"{src}/{filename}", encoding="utf-8", newline="") as f:
        rows = csv.reader(f)
        header = next(rows)
        if header[:3] != ["Registry", "Assignment", "Organization Name"]:
            sys.exit(f"{filename}: unexpected header {header}")
        n = 0
        for row in rows:
            if len(row) < 3:
                continue
            hexa = row[1].strip().upper()
            if len(hexa) != width or not re.fullmatch(r"[0-9A-F]+", hexa):
                sys.exit(f"{filename}: bad assignment {row[1]!r}")
            name = " ".join(row[2].split())
            if not name:
                continue
            names.setdefault(hexa, set()).add(name)
            n += 1
        counts[registry] = n

with open(out, "w", encoding="utf-8", newline="\n") as f:
    f.write("# IEEE MAC address block registries (MA-L, MA-M, MA-S, IAB): assignment<TAB>organisation.\n")
    f.write(f"# Source: {label}. Regenerate with agent/data/refresh-oui.sh (see REFRESH.md).\n")
    f.write("# Rows: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + "\n")
    for hexa in sorted(names):
        f.write(f"{hexa}\t{' / '.join(sorted(names[hexa]))}\n")
print(f"wrote {out}: {len(names)} assignments", file=sys.stderr)
PY

#!/usr/bin/env python3
"""Turns the raw outputs of bench/compare.sh into its Markdown report (printed on stdout).

    compare_report.py DIR

DIR holds runs.tsv (tool, run, wall seconds, peak RSS kB), ward.jsonl (one untimed
`ward-agent read --output jsonl:` of the capture), ndpi.1.out (ndpiReader's stdout) and
tshark.1.out (`-T fields -e tcp.stream -e frame.protocols` of the DICOM/HL7 frames). The
capture, machine and version facts come from COMPARE_* environment variables.
"""

import json
import os
import re
import statistics
import sys
from collections import defaultdict

TOOLS = [("ward", "ward-agent"), ("ndpi", "ndpiReader"), ("tshark", "tshark")]


MIXES = {
    "site": "a hospital network: departments of rewritten fixture and sample-site devices, each "
            "with a CT scanner storing a study over DICOM, an HL7 ORU feed over MLLP, monitors "
            "streaming UDP, pumps, workstations on HTTPS, DHCP, ARP, DNS, NTP, syslog",
    "dense": "fixture exchanges back to back with a few bulk frames after each: the worst case "
             "for per-flow and per-device work",
}


def env(name, default=""):
    return os.environ.get("COMPARE_" + name, default)


def spread(values, fmt):
    med = statistics.median(values)
    if len(values) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def ward_ident(path):
    """Last record per device key, then counts."""
    last = {}
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            for d in rec.get("devices") or []:
                last[d["key"]] = d
    out = {"devices": len(last), "manufacturer": 0, "model": 0}
    offered, used = defaultdict(set), defaultdict(set)
    for key, d in last.items():
        c = d.get("classification") or {}
        out["manufacturer"] += bool(c.get("manufacturer"))
        out["model"] += bool(c.get("model"))
        for s in d.get("services_offered") or []:
            offered[s.get("app")].add((key, s.get("transport"), s.get("port")))
        for s in d.get("services_used") or []:
            used[s.get("app")].add(key)
    for app in ("dicom", "hl7"):
        out[app + "_offered"] = len(offered[app])
        out[app + "_clients"] = len(used[app])
    return out


def ndpi_ident(path):
    """Rows of ndpiReader's "Detected protocols" table: name -> (packets, flows)."""
    rows, on = {}, False
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("Detected protocols"):
                on = True
                continue
            if on:
                m = re.match(r"\s+(\S+)\s+packets:\s*(\d+)\s+bytes:\s*\d+\s+flows:\s*(\d+)", line)
                if not m:
                    break
                rows[m.group(1)] = (int(m.group(2)), int(m.group(3)))
    return rows


def tshark_ident(path):
    dicom, hl7 = set(), set()
    with open(path, errors="replace") as f:
        for line in f:
            stream, _, protos = line.rstrip("\n").partition("\t")
            layers = protos.split(":")
            if "dicom" in layers:
                dicom.add(stream)
            if "hl7" in layers:
                hl7.add(stream)
    return len(dicom), len(hl7)


def main():
    d = sys.argv[1]
    packets, data_bytes = int(env("PACKETS")), int(env("DATA_BYTES"))
    runs = defaultdict(list)
    with open(os.path.join(d, "runs.tsv")) as f:
        for line in f:
            tool, _run, wall, rss = line.split()
            runs[tool].append((float(wall), int(rss)))

    lines = []
    w = lines.append
    w(f"# ward-agent vs ndpiReader vs tshark, {env('DATE')}")
    w("")
    w(f"Capture `{env('CAPTURE')}`: {packets:,} packets, {data_bytes / 2**20:,.0f} MiB of packet "
      f"data ({int(env('FILE_BYTES')) / 2**20:,.0f} MiB file), built by `make-mixed-capture` with "
      f"MIX={env('MIX')} ({MIXES.get(env('MIX').split(':')[0], '')}). Each tool read the same file {env('RUNS')} time(s), one at a time, "
      "pinned to one core (`taskset -c 0`), file in the page cache. Median (min–max).")
    w("")
    w("| tool | wall s | M packets/s | Gbit/s | peak RSS MiB |")
    w("|---|---:|---:|---:|---:|")
    pps = {}
    for key, name in TOOLS:
        if key not in runs:
            continue
        walls = [r[0] for r in runs[key]]
        rss = [r[1] / 1024 for r in runs[key]]
        rates = [packets / x for x in walls]
        gbits = [data_bytes * 8 / x / 1e9 for x in walls]
        pps[key] = packets / statistics.median(walls)
        w(f"| {name} | {spread(walls, '{:.2f}')} | "
          f"{spread([r / 1e6 for r in rates], '{:.2f}')} | {spread(gbits, '{:.2f}')} | "
          f"{spread(rss, '{:.0f}')} |")
    w("")
    ratios = []
    for key, name in TOOLS[1:]:
        if "ward" in pps and key in pps:
            ratios.append(f"ward pps / {name} pps = **{pps['ward'] / pps[key]:.2f}**")
    if ratios:
        w("; ".join(ratios) + " (from the medians).")
        w("")

    w("## What each identified")
    w("")
    w("| tool | DICOM | HL7 | devices / flows |")
    w("|---|---|---|---|")
    if os.path.exists(os.path.join(d, "ward.jsonl")):
        wi = ward_ident(os.path.join(d, "ward.jsonl"))
        w(f"| ward-agent | {wi['dicom_offered']:,} services offered (device, port); "
          f"{wi['dicom_clients']:,} devices using DICOM | {wi['hl7_offered']:,} services offered; "
          f"{wi['hl7_clients']:,} devices using HL7 | {wi['devices']:,} devices, "
          f"{wi['manufacturer']:,} with a manufacturer, {wi['model']:,} with a model |")
    if os.path.exists(os.path.join(d, "ndpi.1.out")):
        rows = ndpi_ident(os.path.join(d, "ndpi.1.out"))
        known = env("NDPI_PROTOCOLS").split()
        cells = []
        for proto in ("DICOM", "HL7"):
            if proto in known:
                cells.append(f"{rows.get(proto, (0, 0))[1]:,} flows")
            else:
                cells.append(f"not an nDPI {env('NDPI_VERSION')} protocol")
        total = sum(f for _, f in rows.values())
        detected = ", ".join(f"{n} {f:,}" for n, (_, f) in
                             sorted(rows.items(), key=lambda kv: -kv[1][1]))
        w(f"| ndpiReader | {cells[0]} | {cells[1]} | {total:,} flows: {detected} |")
    if os.path.exists(os.path.join(d, "tshark.1.out")):
        td, th = tshark_ident(os.path.join(d, "tshark.1.out"))
        w(f"| tshark | {td:,} TCP streams with DICOM frames | {th:,} TCP streams with HL7 frames | – |")
    w("")
    w("ward counts devices and the services they offer or use (last record per device key of "
      "its JSON lines); tshark counts TCP streams (`tcp.stream`) with at least one frame "
      "dissected as DICOM / HL7; ndpiReader's column is its \"Detected protocols\" table.")
    w("")
    w("## Setup")
    w("")
    w(f"- Machine: {env('CPU')}, {env('CORES')} cores; load average before {env('LOAD_BEFORE')}, "
      f"after {env('LOAD_AFTER')} (other work on the machine inflates the times)")
    w(f"- Versions: {env('WARD_VERSION')}; nDPI {env('NDPI_VERSION')}; {env('TSHARK_VERSION')}")
    if env('CANARY_WARD'):
        w(f"- Patient-name canaries (`CANARY…` in DICOM PatientName and HL7 PID): "
          f"{int(env('CANARY_CAPTURE') or 0):,} in the capture, {int(env('CANARY_WARD')):,} in "
          "ward's published records")
    w(f"- Script: `{env('SCRIPT')}`")
    w("- Commands (each under `/usr/bin/time -v taskset -c 0`):")
    for key in ("WARD_CMD", "NDPI_CMD", "TSHARK_CMD"):
        if env(key):
            w(f"  - `{env(key)}`")
    if env("WARD_IDENT_CMD"):
        w(f"- Untimed, for ward's identification: `{env('WARD_IDENT_CMD')}`")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

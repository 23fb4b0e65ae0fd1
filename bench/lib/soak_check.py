#!/usr/bin/env python3
"""Judges a soak run (bench/soak.sh): prints one `SOAK PASS ...` or `SOAK FAIL: ...` line.

    soak_check.py DIR DURATION_S KILLS_BROKER KILLS_COLLECTOR

DIR holds what soak.sh left there:
  offline.jsonl      `ward-agent read CAPTURES --output jsonl:` run once, offline
  ref-devices.json   `ward-collector devices --json` after `ingest offline.jsonl` (the oracle)
  devices.json       `ward-collector devices --json` of the soak database
  agents.json        `ward-collector agents` of the soak database
  status.json        `ward-collector status` of the soak database
  rss.tsv            elapsed_s, agent RSS kB, collector RSS kB ("-" when not running), agent
                     RssAnon kB, agent RssFile kB, spooled messages
  agent.log          the agent's log, with its periodic `stats` lines (devices, flows, heap
                     of the device and flow tables, spool depth)
  collector-starts   elapsed_s of each collector restart, one per line (absent: never restarted)
Environment: SOAK_RSS_TOLERANCE (0.20), SOAK_WARMUP_FRACTION (0.10).
"""

import json
import os
import re
import statistics
import sys
from datetime import datetime


def load(path):
    with open(path) as f:
        return json.load(f)


def sig(dev):
    """A device's identity: the agent device keys it was built from."""
    return frozenset(s["key"] for s in dev.get("sightings", []))


# Derived by the agent's classifier: their history depends on how packets were batched (the
# offline run flushes after every file and may record an intermediate "unknown"), so the soak
# must have the final offline value and nothing the offline run never had, not the same set.
DERIVED = {"device_type", "manufacturer", "model", "software_version"}


def facts(dev):
    """Attribute name -> set of values, and the set of services (timestamps left out)."""
    attrs = {
        name: frozenset(str(v.get("value")) for v in (vals or []))
        for name, vals in (dev.get("attributes") or {}).items()
    }
    services = frozenset(
        (s.get("app"), s.get("direction"), s.get("transport"), s.get("port"))
        for s in dev.get("services") or []
    )
    return attrs, services


def offline_macs(path):
    macs = set()
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            for d in rec.get("devices") or []:
                if d.get("mac"):
                    macs.add(d["mac"])
    return macs


def rss_windows(d, duration, warmup):
    """(first, last, label, peak) RSS samples per process to compare, and the sample count.

    The agent lives through the whole run: its samples after the warm-up up to 25 % against
    those from 75 %. The collector is killed and restarted, and a restarted process begins from
    its own baseline (recovery after a backlog leaves the allocator holding more than a process
    that grew slowly), so comparing two processes says nothing about leaks: the last process is
    compared with itself, its first quarter after the warm-up against its last quarter."""
    rows = []
    with open(os.path.join(d, "rss.tsv")) as f:
        for line in f:
            t, a, c = line.split()[:3]
            rows.append((float(t), a, c))
    starts = [0.0]
    try:
        with open(os.path.join(d, "collector-starts")) as f:
            starts += [float(x) for x in f.read().split()]
    except FileNotFoundError:
        pass
    out = {}
    first = [int(r[1]) for r in rows if warmup <= r[0] < 0.25 * duration and r[1] != "-"]
    last = [int(r[1]) for r in rows if r[0] >= 0.75 * duration and r[1] != "-"]
    peak = max([int(r[1]) for r in rows if r[0] >= warmup and r[1] != "-"], default=0)
    out["agent"] = (first, last, "", peak)
    s0 = max(starts) + warmup
    span = duration - s0
    first = [int(r[2]) for r in rows if s0 <= r[0] < s0 + span / 4 and r[2] != "-"]
    last = [int(r[2]) for r in rows if r[0] >= duration - span / 4 and r[2] != "-"]
    if span < 0.1 * duration:
        first = []
    label = f" (process started at t={max(starts):.0f} s)" if max(starts) > 0 else ""
    peak = max([int(r[2]) for r in rows if r[0] >= s0 and r[2] != "-"], default=0)
    out["collector"] = (first, last, label, peak)
    return out, len(rows)


STAT = re.compile(r"\b(devices|flows|table_bytes|spool_depth)=(\d+)\b")


def agent_tables(d, warmup):
    """What the agent holds, from its `stats` lines after the warm-up: (first, last, max) of
    devices, flows, table heap bytes and spool depth; None without stats lines."""
    rows = []
    try:
        with open(os.path.join(d, "agent.log"), errors="replace") as f:
            for line in f:
                if " stats " not in line:
                    continue
                try:
                    t = datetime.fromisoformat(line.split()[0].replace("Z", "+00:00"))
                except ValueError:
                    continue
                rows.append((t, {k: int(v) for k, v in STAT.findall(line)}))
    except FileNotFoundError:
        return None
    if not rows:
        return None
    t0 = rows[0][0]
    rows = [v for t, v in rows if (t - t0).total_seconds() >= warmup] or [rows[-1][1]]
    keys = ("devices", "flows", "table_bytes", "spool_depth")
    return {k: (rows[0].get(k, 0), rows[-1].get(k, 0), max(r.get(k, 0) for r in rows)) for k in keys}


def main():
    d, duration = sys.argv[1], float(sys.argv[2])
    kills_broker, kills_collector = int(sys.argv[3]), int(sys.argv[4])
    tol = float(os.environ.get("SOAK_RSS_TOLERANCE", "0.20"))
    warmup = float(os.environ.get("SOAK_WARMUP_FRACTION", "0.10")) * duration
    fail, notes = [], []

    ref = load(os.path.join(d, "ref-devices.json"))["devices"]
    got = load(os.path.join(d, "devices.json"))["devices"]
    agents = load(os.path.join(d, "agents.json"))
    status = load(os.path.join(d, "status.json"))

    # Every device of the offline run, with the same facts.
    ref_by = {sig(x): x for x in ref}
    got_by = {sig(x): x for x in got}
    missing = [sorted(s) for s in ref_by if s not in got_by]
    extra = [sorted(s) for s in got_by if s not in ref_by]
    if missing:
        fail.append(f"{len(missing)} offline device(s) missing: {missing[:3]}")
    if extra:
        fail.append(f"{len(extra)} device(s) not in the offline run: {extra[:3]}")
    for s, rdev in ref_by.items():
        gdev = got_by.get(s)
        if gdev is None:
            continue
        (ra, rs), (ga, gs) = facts(rdev), facts(gdev)
        bad = []
        for k in sorted(set(ra) | set(ga)):
            r, g = ra.get(k, frozenset()), ga.get(k, frozenset())
            if k in DERIVED:
                final = max(rdev["attributes"].get(k) or [{}], key=lambda v: v.get("last_us", 0))
                ok = g <= r and (not r or str(final.get("value")) in g)
            else:
                ok = r == g
            if not ok:
                bad.append(k)
        if bad:
            fail.append(f"device {sorted(s)[0]}: facts differ: " + ", ".join(
                f"{k} offline={sorted(ra.get(k, []))[:3]} soak={sorted(ga.get(k, []))[:3]}"
                for k in bad[:3]))
        if rs != gs:
            fail.append(f"device {sorted(s)[0]}: services differ: offline={sorted(rs)} soak={sorted(gs)}")

    # No duplicates: as many devices as the oracle, each MAC in one device only.
    if len(got) != len(ref):
        fail.append(f"{len(got)} devices, offline oracle has {len(ref)}")
    if status.get("devices") != len(got):
        fail.append(f"status says {status.get('devices')} devices, devices --json lists {len(got)}")
    owner = {}
    for dev in got:
        for mac in dev.get("macs") or []:
            if mac in owner:
                fail.append(f"MAC {mac} in devices {owner[mac]} and {dev.get('id')}")
            owner[mac] = dev.get("id")
    lost_macs = offline_macs(os.path.join(d, "offline.jsonl")) - set(owner)
    if lost_macs:
        fail.append(f"MACs of the offline run absent: {sorted(lost_macs)[:5]}")

    # Nothing lost between the agent and the store.
    rows = [a for a in agents if a.get("agent_id") == "soak-1"]
    if not rows:
        fail.append("agent soak-1 unknown to the collector")
    messages = sum(a.get("messages", 0) for a in rows)
    lost = sum(a.get("missing", 0) for a in rows)
    if lost != 0:
        fail.append(f"missing = {lost} message(s) for agent soak-1")

    # Memory flat.
    windows, samples = rss_windows(d, duration, warmup)
    mem = []
    for name, (first, last, label, peak) in windows.items():
        if not first or not last:
            fail.append(f"{name} RSS: too few samples (first {len(first)}, last {len(last)})")
            continue
        f_mib, l_mib = statistics.mean(first) / 1024, statistics.mean(last) / 1024
        change = l_mib / f_mib - 1
        mem.append(f"{name}{label} RSS {f_mib:.1f}->{l_mib:.1f} MiB ({change:+.0%}, "
                   f"peak {peak / 1024:.1f})")
        if change > tol:
            fail.append(f"{name}{label} RSS grew {change:+.0%} (first-quarter mean {f_mib:.1f} MiB, "
                        f"last-quarter {l_mib:.1f} MiB, tolerance {tol:.0%})")
        elif change < -tol:
            notes.append(f"{name} RSS fell {change:+.0%}")

    tables = agent_tables(d, warmup)
    if tables:
        dv, fl, tb, sp = (tables[k] for k in ("devices", "flows", "table_bytes", "spool_depth"))
        mem.append(f"agent tables after warm-up: devices {dv[0]}->{dv[1]}, flows {fl[0]}->{fl[1]} "
                   f"(max {fl[2]}), table heap {tb[0] / 1024:.0f}->{tb[1] / 1024:.0f} KiB "
                   f"(max {tb[2] / 1024:.0f}), spool depth max {sp[2]}")
    detail = (f"{duration:.0f} s, {kills_broker} broker + {kills_collector} collector kill -9, "
              f"{len(got)} devices, {messages} messages, missing {lost}, "
              + ", ".join(mem) + f", {samples} RSS samples")
    if notes:
        detail += " (note: " + "; ".join(notes) + ")"
    if fail:
        print("SOAK FAIL: " + "; ".join(fail) + f" [{detail}]")
        sys.exit(1)
    print("SOAK PASS " + detail)


if __name__ == "__main__":
    main()

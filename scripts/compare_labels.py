#!/usr/bin/env python3
"""compare_labels.py - the network.protocol of every alert and flow-end record, two builds.

Usage: scripts/compare_labels.py --old BIN --new BIN [--rules DIR] [--show N] [--set K=V]... DIR|FILE...

Each capture (*.pcap, *.pcapng under the given directories) is replayed by both sensors with
the shipped rules plus a catch-all Sigma rule (every DestinationHostname and QueryName), so
that nearly every named flow yields records. Records are matched by a key that does not
depend on event.id: (capture, event.action, network.community_id, rule.id, evidence kind,
evidence name, evidence frame), one list of labels per key (records under one key keep their
order). Prints every key whose labels differ (old -> new), then a summary per transition
(e.g. "udp: (none) -> dns"). Exit 0 when nothing differs, 1 when labels differ, 2 on error
(a sensor crash or exit status above 1, or a key present in one build only).
"""
import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile

CATCH_ALL = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e", "data",
                              "every_name.yml")).read()

ACTIONS = ("raised", "flow_end")


def captures(paths):
    for p in paths:
        if os.path.isfile(p):
            yield p
            continue
        for root, _, files in os.walk(p):
            for f in sorted(files):
                if f.endswith((".pcap", ".pcapng")):
                    yield os.path.join(root, f)


def replay(binary, cap, rules, extra, tmp):
    out = os.path.join(tmp, "out.jsonl")
    if os.path.exists(out):
        os.unlink(out)
    cmd = [binary, "-q", "-r", cap, "-R", os.path.join(tmp, "every.yml"), "-R", rules,
           "--redis", "none", "--alerts", out]
    for s in extra:
        cmd += ["--set", s]
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600)
    if r.returncode > 1:
        raise RuntimeError("%s %s: exit %d: %s" % (binary, cap, r.returncode,
                                                    r.stderr.decode(errors="replace")[-400:]))
    labels = collections.defaultdict(list)
    if not os.path.exists(out):
        return labels
    for line in open(out, encoding="utf-8"):
        rec = json.loads(line)
        act = rec.get("event.action")
        if act not in ACTIONS:
            continue
        key = (act, rec.get("network.community_id"), rec.get("rule.id"),
               rec.get("tunnelwatch.evidence.kind"), rec.get("tunnelwatch.evidence.name"),
               rec.get("tunnelwatch.evidence.frame"))
        labels[key].append((rec.get("network.transport"), rec.get("network.protocol")))
    return labels


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--old", required=True)
    ap.add_argument("--new", required=True)
    ap.add_argument("--rules", default=os.path.join(os.path.dirname(__file__), "..", "conf", "rules"))
    ap.add_argument("--show", type=int, default=40)
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("paths", nargs="+")
    a = ap.parse_args()
    diffs, missing, records, files = [], [], 0, 0
    trans = collections.Counter()
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "every.yml"), "w") as f:
            f.write(CATCH_ALL)
        for cap in captures(a.paths):
            files += 1
            old = replay(a.old, cap, a.rules, a.set, tmp)
            new = replay(a.new, cap, a.rules, a.set, tmp)
            for key in sorted(set(old) | set(new), key=repr):
                o, n = old.get(key, []), new.get(key, [])
                records += max(len(o), len(n))
                if len(o) != len(n):
                    missing.append((cap, key, len(o), len(n)))
                    continue
                for (to, lo), (_, ln) in zip(o, n):
                    if lo != ln:
                        diffs.append((cap, key, lo, ln))
                        trans["%s %s: %s -> %s" % (key[0], to, lo or "(none)", ln or "(none)")] += 1
    for cap, key, lo, ln in diffs[: a.show]:
        print("%s\t%s\t%s\t%s\t%s -> %s" % (cap, key[0], key[1], key[4], lo, ln))
    for cap, key, no, nn in missing[: a.show]:
        print("%s\t%s\t%s\t%s\trecords %d -> %d" % (cap, key[0], key[1], key[4], no, nn))
    print("captures %d, records %d, label differences %d, keys in one build only %d"
          % (files, records, len(diffs), len(missing)))
    for t, n in trans.most_common():
        print("  %6d  %s" % (n, t))
    return 2 if missing else 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())

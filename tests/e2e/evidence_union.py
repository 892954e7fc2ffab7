#!/usr/bin/env python3
"""evidence_union.py MERGED --union PCAP... | MERGED --same OTHER - checks a --write-evidence
file. --union: MERGED holds exactly the union of the per-incident PCAPs as packet multisets,
timestamps included (a packet several files hold counts as often as the file holding it most
often has it), in non-decreasing time order. --same: MERGED and OTHER hold the same packets
(bytes, caplen, len; live timestamps differ between runs). Prints one line."""
import collections, os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from evidence_check import read_pcap  # noqa: E402


def main():
    merged, mode, others = sys.argv[1], sys.argv[2], sys.argv[3:]
    got = read_pcap(merged)
    if mode == "--same":
        a = collections.Counter(p[2:] for p in got)
        b = collections.Counter(p[2:] for p in read_pcap(others[0]))
        if a != b:
            sys.exit("FAIL %s: %d packets, %s: %d (%d only in the first, %d only in the second)" % (
                merged, len(got), others[0], sum(b.values()), sum((a - b).values()), sum((b - a).values())))
        print("ok %s: the same %d packets as %s" % (merged, len(got), others[0]))
        return
    want = collections.Counter()
    held = 0
    for path in others:
        c = collections.Counter(read_pcap(path))
        held += sum(c.values())
        want |= c  # the multiset union: the larger count
    have = collections.Counter(got)
    if have != want:
        sys.exit("FAIL %s: %d packets, the union of %d files has %d (%d missing, %d extra)" % (
            merged, len(got), len(others), sum(want.values()), sum((want - have).values()),
            sum((have - want).values())))
    ts = [(p[0], p[1]) for p in got]
    if ts != sorted(ts):
        sys.exit("FAIL %s: packets out of time order" % merged)
    if not got:
        sys.exit("FAIL %s: no packet" % merged)
    print("ok %s: %d packets = the union of %d incident files (%d packets, %d held twice), in time order" % (
        merged, len(got), len(others), held, held - len(got)))


main()

#!/usr/bin/env python3
"""Lines up hookvault's syncs from a `perf trace -e fdatasync,fsync` log.

    bench/sync-overlap.py TRACE [SLOW_MS=3]

bench/ab-nodit TRACE_SYNCS=1 writes such a log per run. Prints, per thread and
file descriptor, how many syncs, their mean and slowest; then, of the WAL syncs
(the hv-sync thread's) slower than SLOW_MS, how many ran while another sync
(the checkpointer's of the database file, the writer's) was running, and the
slowest ones with what they overlapped. Answers: do slow WAL syncs wait behind
the checkpoint's?
"""
import re
import sys
from collections import defaultdict

LINE = re.compile(r"\s*([\d.]+) \(\s*([\d.]+) ms\): (\S+)/(\d+) (\w+)\(fd: (\d+)")


def main():
    path = sys.argv[1]
    slow_ms = float(sys.argv[2]) if len(sys.argv) > 2 else 3.0
    calls = []  # (start_ms, took_ms, thread, fd)
    with open(path) as f:
        for line in f:
            m = LINE.match(line)
            if m:
                calls.append((float(m[1]), float(m[2]), m[3], int(m[6])))
    if not calls:
        print("no syncs in", path)
        return
    by = defaultdict(list)
    for c in calls:
        by[(c[2], c[3])].append(c[1])
    for (thread, fd), took in sorted(by.items(), key=lambda kv: -len(kv[1])):
        print(f"{thread} fd={fd} syncs={len(took)} mean_ms={sum(took) / len(took):.3f} "
              f"slowest_ms={max(took):.1f} over_{slow_ms:g}ms={sum(t > slow_ms for t in took)}")
    # The WAL is the file the syncer syncs most often.
    wal_fd = max((k for k in by if k[0] == "hv-sync"), key=lambda k: len(by[k]), default=None)
    if wal_fd is None:
        return
    wal = [c for c in calls if (c[2], c[3]) == wal_fd]
    others = [c for c in calls if (c[2], c[3]) != wal_fd]
    slow = [c for c in wal if c[1] > slow_ms]

    def overlapping(s):
        return [o for o in others if o[0] < s[0] + s[1] and o[0] + o[1] > s[0]]

    hit = [s for s in slow if overlapping(s)]
    quick = [c for c in wal if c[1] <= slow_ms]
    quick_hit = sum(1 for c in quick if overlapping(c))
    print(f"WAL syncs over {slow_ms:g} ms: {len(slow)}, of them {len(hit)} overlapped another sync; "
          f"WAL syncs at most {slow_ms:g} ms: {len(quick)}, of them {quick_hit} overlapped one")
    for s in sorted(slow, key=lambda c: -c[1])[:5]:
        o = ", ".join(f"{x[2]} fd={x[3]} {x[1]:.1f} ms" for x in overlapping(s)) or "nothing"
        print(f"  at {s[0]:.0f} ms: {s[1]:.1f} ms, overlapped {o}")


if __name__ == "__main__":
    main()

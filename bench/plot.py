#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# Plot a benchmark's results file (lines "JOB SERVER IOPS MIB/S", one per
# run, as bench/lib.sh's bench_record writes them; BENCH_RESULTS=FILE keeps
# it) as grouped bars: per job the median MiB/s of each server, relative to
# the first server named.
#
#   bench/plot.py RESULTS OUT.png "TITLE" SERVER...
#
# Needs python3-matplotlib (Debian's /usr/bin/python3).
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    results, out, title, servers = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    rows = [line.split() for line in open(results) if line.strip()]
    jobs = []
    for r in rows:
        if r[0] not in jobs:
            jobs.append(r[0])

    def med(job, server):
        v = [float(r[3]) for r in rows if r[0] == job and r[1] == server]
        return statistics.median(v) if v else 0.0

    width = 0.8 / len(servers)
    fig, ax = plt.subplots(figsize=(11, 4.5))
    for k, s in enumerate(servers):
        ratios = [med(j, s) / med(j, servers[0]) if med(j, servers[0]) else 0 for j in jobs]
        xs = [i + (k - (len(servers) - 1) / 2) * width for i in range(len(jobs))]
        bars = ax.bar(xs, ratios, width, label=s)
        for x, j, b in zip(xs, jobs, bars):
            ax.annotate("%.0f" % med(j, s), (x, b.get_height()), ha="center",
                        va="bottom", fontsize=6, rotation=90)
    ax.axhline(1.0, color="grey", linewidth=0.6)
    ax.set_xticks(range(len(jobs)))
    ax.set_xticklabels(jobs, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("MiB/s relative to %s (labels: MiB/s)" % servers[0])
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# udm's NBD server against nbdkit's file plugin: the same file on tmpfs, the
# same fio jobs (ioengine=nbd, one connection), run alternately so that
# neither server profits from a quieter moment, IOPS and bandwidth printed
# with the udm/nbdkit ratio per job (median over the rounds, which shrugs
# off a round disturbed by other load on the machine).
#
#   bench/nbd-vs-nbdkit.sh [--serve PATH] [--rounds N] [--runtime SECONDS]
#
# PATH is the built udm-nbd-serve (default: $UDM_NBD_SERVE, else
# build-nbd/ or build/ tests/nbd/udm-nbd-serve).  A full run (3 rounds,
# 5 s per job) takes about two minutes.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
serve=${UDM_NBD_SERVE:-}
rounds=3
runtime=5
size_mb=1024
while [ $# -gt 0 ]; do
  case $1 in
    --serve) serve=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --runtime) runtime=$2; shift 2 ;;
    --size-mb) size_mb=$2; shift 2 ;;
    *) echo "usage: $0 [--serve PATH] [--rounds N] [--runtime S] [--size-mb N]" >&2
       exit 2 ;;
  esac
done
if [ -z "$serve" ]; then
  for b in build-nbd build; do
    if [ -x "$here/../$b/tests/nbd/udm-nbd-serve" ]; then
      serve=$here/../$b/tests/nbd/udm-nbd-serve
      break
    fi
  done
fi
[ -x "$serve" ] || { echo "$0: no udm-nbd-serve; build it or pass --serve" >&2; exit 2; }
for t in fio nbdkit python3; do
  command -v $t >/dev/null || { echo "$0: $t is not installed" >&2; exit 2; }
done

work=$(mktemp -d /dev/shm/udm-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
img=$work/disk.img
# Allocated, not sparse: reads must touch real pages for both servers.
dd if=/dev/zero of="$img" bs=1M count="$size_mb" status=none
sectors=$(( size_mb * 2048 ))

jobs=(
  "randread-4k-qd32 --rw=randread --bs=4k --iodepth=32"
  "seqread-1m-qd4 --rw=read --bs=1M --iodepth=4"
  "seqwrite-1m-qd4 --rw=write --bs=1M --iodepth=4"
)
fio_common="--ioengine=nbd --numjobs=1 --time_based --runtime=$runtime --ramp_time=1"
fio_common="$fio_common --size=${size_mb}M --output-format=json --group_reporting"

run_udm() { # name fio-args...  -> json on stdout
  local name=$1; shift
  "$serve" --socket "$work/udm.sock" --table disk="0 $sectors linear $img 0" \
    --run "fio --name=$name $fio_common $* --uri=\"\$uri\""
}
run_nbdkit() {
  local name=$1; shift
  # A fresh socket each time: nbdkit leaves its socket file behind.
  nbdkit --exit-with-parent -U "$work/nbdkit-$name-$round.sock" file "$img" \
    --run "fio --name=$name $fio_common $* --uri=\"\$uri\""
}

results=$work/results
: > "$results"
for round in $(seq 1 "$rounds"); do
  for job in "${jobs[@]}"; do
    set -- $job
    name=$1; shift
    for server in udm nbdkit; do
      json=$("run_$server" "$name" "$@")
      printf '%s' "$json" | python3 -c '
import json, sys
text = sys.stdin.read()
d = json.loads(text[text.find("{"):])
j = d["jobs"][0]
io = j["write"] if j["write"]["io_bytes"] > j["read"]["io_bytes"] else j["read"]
print(sys.argv[1], sys.argv[2], io["iops"], io["bw"] / 1024.0)
' "$name" "$server" >> "$results"
      tail -1 "$results" | awk -v r="$round" \
        '{printf "round %s  %-18s %-7s %10.0f IOPS %9.1f MiB/s\n", r, $1, $2, $3, $4}'
    done
  done
done

echo
python3 - "$results" <<'PY'
import sys
from collections import defaultdict
from statistics import median
acc = defaultdict(list)
order = []
for line in open(sys.argv[1]):
    job, server, iops, mib = line.split()
    if job not in order:
        order.append(job)
    acc[(job, server)].append((float(iops), float(mib)))
print("%-18s %12s %12s %10s %10s %7s" % ("job", "udm IOPS", "nbdkit IOPS",
                                          "udm MiB/s", "nbdkit", "ratio"))
for job in order:
    u = acc[(job, "udm")]
    k = acc[(job, "nbdkit")]
    ui, ki = median([x[0] for x in u]), median([x[0] for x in k])
    ub, kb = median([x[1] for x in u]), median([x[1] for x in k])
    print("%-18s %12.0f %12.0f %10.1f %10.1f %6.2fx" % (job, ui, ki, ub, kb, ui / ki))
PY

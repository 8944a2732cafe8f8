#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The mirror target against linear on the same files, in the same run:
# fio through udm's NBD server (ioengine=nbd) on a linear table over file a
# and on a two-leg mirror (core log, nosync) over files a and b, alternately
# per round; the ratios mirror/linear are printed per job (medians over the
# rounds).  Then the resync rate: a new mirror copying leg a onto leg b
# (udmd, "udm wait --progress" until in sync) against a plain copy of a file
# of the same size (dd, 512 KiB blocks), MiB/s of each and their ratio.
#
#   bench/mirror.sh [--serve PATH] [--rounds N] [--runtime SECONDS] [--size-mb N]
#                   [--leg-delay MS]
#
# --leg-delay MS puts each file behind a delay target of MS milliseconds (a
# udm device stacked with udm:NAME), for linear and mirror alike: legs that
# are latency-bound and independent, as two disks or two remote servers
# are.  On tmpfs alone both legs share the same two CPUs and the same
# memory bus, so a mirror write costs two page-cache copies where linear
# makes one; with independent legs the fan-out's parallelism is what shows.
# The resync comparison is skipped in this mode.
#
# The files live in /dev/shm (UDM_BENCH_DIR overrides), so the numbers are
# udm's own costs rather than a disk's.  A run (3 rounds, 5 s per job, 1 GiB)
# takes about three minutes.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
rounds=3
runtime=5
size_mb=1024
leg_delay=
args=()
while [ $# -gt 0 ]; do
  case $1 in
    --leg-delay) leg_delay=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
bench_options "${args[@]}"
bench_find serve tests/nbd/udm-nbd-serve
udm_cli= udmd=
bench_find udm_cli cli/udm
bench_find udmd daemon/udmd
bench_need fio python3 dd

work=$(mktemp -d "${UDM_BENCH_DIR:-/dev/shm}/udm-bench-mirror.XXXXXX")
trap 'kill "${daemon:-}" 2>/dev/null; rm -rf "$work"' EXIT
sectors=$(( size_mb * 2048 ))
# Allocated, not sparse: reads must touch real pages.
dd if=/dev/urandom of="$work/a.img" bs=1M count="$size_mb" status=none
cp "$work/a.img" "$work/b.img"

jobs=(
  "randwrite-4k-qd32 --rw=randwrite --bs=4k --iodepth=32"
  "seqwrite-1m-qd4 --rw=write --bs=1M --iodepth=4"
  "randread-4k-qd32 --rw=randread --bs=4k --iodepth=32"
  "seqread-1m-qd4 --rw=read --bs=1M --iodepth=4"
)
fio_common="--ioengine=nbd $(bench_fio_opts)"
legs=()
if [ -n "$leg_delay" ]; then
  legs=(--table "lega=0 $sectors delay $work/a.img 0 $leg_delay"
        --table "legb=0 $sectors delay $work/b.img 0 $leg_delay")
  dev_a=udm:lega dev_b=udm:legb
else
  dev_a=$work/a.img dev_b=$work/b.img
fi
declare -A tables=(
  [linear]="0 $sectors linear $dev_a 0"
  [mirror]="0 $sectors mirror core 2 1024 nosync 2 $dev_a 0 $dev_b 0"
)

run() { # table-name name fio-args... -> json on stdout
  bench_serve_fio "$2" "${legs[@]}" --table disk="${tables[$1]}" -- "${@:3}"
}

results=$work/results
bench_rounds --run run linear mirror
bench_report linear mirror -- mirror/linear
[ -n "$leg_delay" ] && exit 0

# ---- resync against a plain copy ----
export UDM_RUNTIME_DIR=$work/rt
"$udmd" -f 2>"$work/udmd.log" &
daemon=$!
for i in $(seq 100); do [ -S "$UDM_RUNTIME_DIR/control.sock" ] && break; sleep 0.1; done
now() { date +%s.%N; }
printf '\n%-18s %12s %12s %11s\n' "copy (MiB/s)" resync dd resync/dd
for round in $(seq 1 "$rounds"); do
  rm -f "$work/b.img" "$work/c.img"
  truncate -s "${size_mb}M" "$work/b.img"
  t0=$(now)
  "$udm_cli" create m --table "0 $sectors mirror core 1 1024 2 $work/a.img 0 $work/b.img 0"
  "$udm_cli" wait --progress m 2>/dev/null
  t1=$(now)
  "$udm_cli" remove m
  cmp "$work/a.img" "$work/b.img" || { echo "$0: the resync left the legs different" >&2; exit 1; }
  t2=$(now)
  dd if="$work/a.img" of="$work/c.img" bs=512K status=none
  t3=$(now)
  python3 -c 'import sys
s, a, b, c, d = map(float, sys.argv[1:])
r, p = s / (b - a), s / (d - c)
print("round %-12s %12.1f %12.1f %10.2fx" % (sys.argv[1] and "", r, p, r / p))' \
    "$size_mb" "$t0" "$t1" "$t2" "$t3" | sed "s/^round /round $round/"
done

#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# multipath: two paths round-robin against one.  Two nbdkit servers export
# the same file on tmpfs, each reached by one NBD connection (an `nbd:`
# path with connections=1, as one queue per path); fio (ioengine=nbd)
# runs through udm-nbd-serve on three tables, alternately, for ROUNDS:
#   linear   linear over path 1 (no multipath: the path alone)
#   mp-1     multipath with path 1 only (the target's cost)
#   mp-2     multipath round-robin over paths 1 and 2
# and prints per job the median MiB/s and the ratios mp-2/mp-1 and
# mp-1/linear.
#
#   bench/multipath.sh [--serve PATH] [--rounds N] [--runtime SECONDS] [--size-mb N]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
rounds=3
runtime=4
size_mb=512
bench_options "$@"
bench_find serve tests/nbd/udm-nbd-serve
bench_need fio nbdkit python3

work=$(mktemp -d /dev/shm/udm-bench.XXXXXX)
trap bench_cleanup EXIT
img=$work/disk.img
dd if=/dev/zero of="$img" bs=1M count="$size_mb" status=none
sectors=$(( size_mb * 2048 ))
for n in 1 2; do
  bench_daemon "$work/s$n.sock" nbdkit -f -U "$work/s$n.sock" file "$img"
done
path() { echo "nbd:nbd+unix:///?socket=$work/s$1.sock&connections=1"; }
declare -A tables=(
  [linear]="0 $sectors linear $(path 1) 0"
  [mp-1]="0 $sectors multipath 0 0 1 1 round-robin 0 1 1 $(path 1) 1"
  [mp-2]="0 $sectors multipath 0 0 1 1 round-robin 0 2 1 $(path 1) 1 $(path 2) 1"
)

jobs=(
  "randread-4k-qd32 --rw=randread --bs=4k --iodepth=32"
  "randwrite-4k-qd32 --rw=randwrite --bs=4k --iodepth=32"
  "seqread-1m-qd8 --rw=read --bs=1M --iodepth=8"
)
fio_common="--ioengine=nbd $(bench_fio_opts)"

run() { # table-name name fio-args... -> json on stdout
  bench_serve_fio "$2" --table disk="${tables[$1]}" -- "${@:3}"
}

results=$work/results
bench_rounds --run run linear mp-1 mp-2
bench_report linear mp-1 mp-2 -- mp-2/mp-1 mp-1/linear

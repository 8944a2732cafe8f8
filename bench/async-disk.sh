#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The asynchronous core on a real disk (issue 11): one file on the machine's
# disk, opened with O_DIRECT by every contender, the same fio jobs:
#   udm     a linear device over raw:FILE?direct=on, udm's NBD server
#           (tests/nbd/udm-nbd-serve), fio ioengine=nbd, one connection
#   qsd     qemu-storage-daemon, file driver aio=io_uring cache.direct=on,
#           its NBD export on a Unix socket, the same fio client
#   fio     fio's own io_uring engine on the file, direct=1: the ceiling
#   base    (with --baseline PATH) the udm-nbd-serve of an earlier build
# 4K random read and write at QD1, QD32 and QD128; 1M sequential read and
# write at QD8.  Runs alternate (udm, qsd, fio, base, udm, ...) for ROUNDS
# rounds; per job the median and the ratios udm/qsd, udm/fio, udm/base.
#
#   bench/async-disk.sh [--serve PATH] [--baseline PATH] [--rounds N]
#                       [--runtime SECONDS] [--size-mb N] [--tmpfs]
#
# --tmpfs puts the file in /dev/shm and drops O_DIRECT (tmpfs has none):
# there the CPU is everything, which is where a change of the request path
# shows.  BENCH_DIR picks the disk folder (default /var/tmp); BENCH_JOBS, an
# extended regular expression, keeps only the jobs whose names match.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
rounds=3
runtime=5
size_mb=2048
baseline=
tmpfs=0
args=()
while [ $# -gt 0 ]; do
  case $1 in
    --baseline) baseline=$2; shift 2 ;;
    --tmpfs) tmpfs=1; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
bench_options "${args[@]}"
bench_find serve tests/nbd/udm-nbd-serve
bench_need fio qemu-storage-daemon python3

if [ "$tmpfs" = 1 ]; then
  work=$(mktemp -d /dev/shm/udm-bench.XXXXXX)
  direct=0 udm_dev_prefix= qsd_cache=off
else
  work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/udm-bench.XXXXXX")
  direct=1 udm_dev_prefix=raw: qsd_cache=on
fi
trap 'rm -rf "$work"' EXIT
img=$work/disk.img
dd if=/dev/zero of="$img" bs=1M count="$size_mb" status=none conv=fsync
sectors=$(( size_mb * 2048 ))
backing=$img
[ "$direct" = 1 ] && backing="raw:$img?direct=on"

jobs=(
  "randread-4k-qd1 --rw=randread --bs=4k --iodepth=1"
  "randread-4k-qd32 --rw=randread --bs=4k --iodepth=32"
  "randread-4k-qd128 --rw=randread --bs=4k --iodepth=128"
  "randwrite-4k-qd1 --rw=randwrite --bs=4k --iodepth=1"
  "randwrite-4k-qd32 --rw=randwrite --bs=4k --iodepth=32"
  "randwrite-4k-qd128 --rw=randwrite --bs=4k --iodepth=128"
  "seqread-1m-qd8 --rw=read --bs=1M --iodepth=8"
  "seqwrite-1m-qd8 --rw=write --bs=1M --iodepth=8"
)
if [ -n "${BENCH_JOBS:-}" ]; then
  kept=()
  for job in "${jobs[@]}"; do
    [[ ${job%% *} =~ $BENCH_JOBS ]] && kept+=("$job")
  done
  [ ${#kept[@]} -gt 0 ] || { echo "BENCH_JOBS='$BENCH_JOBS' matches no job" >&2; exit 1; }
  jobs=("${kept[@]}")
fi
fio_common=$(bench_fio_opts)

run_nbd() { # name fio-args...
  bench_serve_fio "$1" --table disk="0 $sectors linear $backing 0" -- --ioengine=nbd "${@:2}"
}
run_udm() { run_nbd "$@"; }
run_base() { serve=$baseline run_nbd "$@"; }
run_qsd() {
  local name=$1; shift
  local sock=$work/qsd-$name-$round.sock
  bench_qsd "$work/qsd.pid" \
    --blockdev "driver=file,node-name=f,filename=$img,aio=io_uring,cache.direct=$qsd_cache" \
    --nbd-server "addr.type=unix,addr.path=$sock" \
    --export type=nbd,id=e,node-name=f,name=disk,writable=on
  fio --name="$name" --ioengine=nbd $fio_common "$@" \
    --uri="nbd+unix:///disk?socket=$sock" || true
  bench_qsd_stop "$work/qsd.pid"
}
run_fio() {
  local name=$1; shift
  fio --name="$name" --ioengine=io_uring --direct=$direct --filename="$img" \
    $fio_common "$@"
}

servers=(udm qsd fio)
[ -n "$baseline" ] && servers+=(base)
results=$work/results
bench_rounds "${servers[@]}"
pairs=(udm/qsd udm/fio)
[ -n "$baseline" ] && pairs+=(udm/base)
bench_report "${servers[@]}" -- "${pairs[@]}"
[ -n "${BENCH_RESULTS:-}" ] && cp "$results" "$BENCH_RESULTS"
exit 0

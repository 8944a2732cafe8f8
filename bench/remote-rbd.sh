#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# udm over rbd: against qemu-storage-daemon's rbd driver on the same image
# of a single-node Ceph cluster started here (tests/remote/ceph-cluster.sh:
# one memstore OSD, so the cluster is RAM, not disk).  Each side exports the
# image over NBD on a Unix socket (udm: a linear table over rbd:POOL/IMAGE;
# qsd: --blockdev driver=rbd and an NBD export); fio (ioengine=nbd) runs the
# same jobs on each in turn, one server at a time, medians over the rounds.
#
#   bench/remote-rbd.sh [--serve PATH] [--rounds N] [--runtime SECONDS] [--size-mb N]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
rounds=3
runtime=5
size_mb=256
bench_options "$@"
bench_find serve tests/nbd/udm-nbd-serve
bench_need fio qemu-storage-daemon python3 ceph-mon ceph-osd ceph-mgr rbd

work=$(mktemp -d /dev/shm/udm-bench.XXXXXX)
fail() { echo "$0: $*" >&2; exit 1; }
remote_cleanup() {
  [ -s "$work/q.pid" ] && kill -9 "$(cat "$work/q.pid")" 2>/dev/null
  rm -rf "$work"
}
. "$here/../tests/remote/ceph-cluster.sh"
ceph_start "$work/ceph"
ceph_pool bench
rbd create --size "${size_mb}M" bench/disk || fail "rbd create"
sectors=$(( size_mb * 2048 ))

jobs=(
  "randread-4k-qd32 --rw=randread --bs=4k --iodepth=32"
  "randwrite-4k-qd32 --rw=randwrite --bs=4k --iodepth=32"
  "seqread-1m-qd4 --rw=read --bs=1M --iodepth=4"
  "seqwrite-1m-qd4 --rw=write --bs=1M --iodepth=4"
)
fio_common="--ioengine=nbd $(bench_fio_opts)"

run_udm() { # name fio-args... -> json on stdout
  bench_serve_fio "$1" --table disk="0 $sectors linear rbd:bench/disk?conf=$CEPH_CONF&id=admin 0" \
    -- "${@:2}"
}
run_qsd() {
  local name=$1; shift
  rm -f "$work/q.sock"
  bench_qsd "$work/q.pid" \
    --blockdev "driver=rbd,node-name=r,pool=bench,image=disk,conf=$CEPH_CONF,user=admin" \
    --nbd-server addr.type=unix,addr.path="$work/q.sock" \
    --export type=nbd,id=e,node-name=r,name=r,writable=on
  fio --name="$name" $fio_common "$@" --uri="nbd+unix:///r?socket=$work/q.sock"
  bench_qsd_stop "$work/q.pid"
}

# Written once whole, so that reads find objects on both sides.
round=0
run_qsd fill --rw=write --bs=4M --iodepth=4 --time_based=0 --runtime=0 >/dev/null

results=$work/results
bench_rounds udm qsd
bench_report udm qsd -- udm/qsd

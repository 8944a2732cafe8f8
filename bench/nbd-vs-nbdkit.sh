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
# build-rel/ or build/ tests/nbd/udm-nbd-serve).  A full run (3 rounds,
# 5 s per job) takes about two minutes.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
rounds=3
runtime=5
size_mb=1024
bench_options "$@"
bench_find serve tests/nbd/udm-nbd-serve
bench_need fio nbdkit python3

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
fio_common="--ioengine=nbd $(bench_fio_opts)"

run_udm() { # name fio-args...  -> json on stdout
  bench_serve_fio "$1" --table disk="0 $sectors linear $img 0" -- "${@:2}"
}
run_nbdkit() { bench_nbdkit_fio "$1" file "$img" -- "${@:2}"; }

results=$work/results
bench_rounds udm nbdkit
bench_report udm nbdkit -- udm/nbdkit

#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# udm over nbd: against the same export read directly: nbdkit's file plugin
# serves a file on tmpfs over a Unix socket; fio (ioengine=nbd, one
# connection) runs the same jobs against nbdkit itself ("direct") and
# against udm's export of a linear table over nbd:URI to it, with udm's
# default connections (4: nbdkit allows multi-conn) and with one.  The ratio
# udm/direct is the cost of the extra hop (udm's NBD server, its core, its
# NBD client), medians over the rounds.
#
#   bench/remote-nbd.sh [--serve PATH] [--rounds N] [--runtime SECONDS] [--size-mb N]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
rounds=3
runtime=5
size_mb=512
bench_options "$@"
bench_find serve tests/nbd/udm-nbd-serve
bench_need fio nbdkit python3

work=$(mktemp -d /dev/shm/udm-bench.XXXXXX)
trap bench_cleanup EXIT
img=$work/disk.img
dd if=/dev/zero of="$img" bs=1M count="$size_mb" status=none
sectors=$(( size_mb * 2048 ))
bench_daemon "$work/k.sock" nbdkit -f -U "$work/k.sock" file "$img"
direct="nbd+unix:///?socket=$work/k.sock"

jobs=(
  "randread-4k-qd32 --rw=randread --bs=4k --iodepth=32"
  "randwrite-4k-qd32 --rw=randwrite --bs=4k --iodepth=32"
  "seqread-1m-qd4 --rw=read --bs=1M --iodepth=4"
  "seqwrite-1m-qd4 --rw=write --bs=1M --iodepth=4"
)
fio_common="--ioengine=nbd $(bench_fio_opts)"

run_udm() { # name fio-args... -> json on stdout
  bench_serve_fio "$1" --table disk="0 $sectors linear nbd:$direct 0" -- "${@:2}"
}
run_udm1() {
  bench_serve_fio "$1" --table disk="0 $sectors linear nbd:$direct&connections=1 0" -- "${@:2}"
}
run_direct() {
  local name=$1; shift
  fio --name="$name" $fio_common "$@" --uri="$direct"
}

results=$work/results
bench_rounds udm udm1 direct
bench_report udm udm1 direct -- udm/direct udm1/direct

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
trap 'kill $(cat "$work/k.pid" 2>/dev/null) 2>/dev/null; rm -rf "$work"' EXIT
img=$work/disk.img
dd if=/dev/zero of="$img" bs=1M count="$size_mb" status=none
sectors=$(( size_mb * 2048 ))
nbdkit -P "$work/k.pid" -U "$work/k.sock" file "$img"
for i in $(seq 100); do [ -s "$work/k.pid" ] && break; sleep 0.05; done
direct="nbd+unix:///?socket=$work/k.sock"

jobs=(
  "randread-4k-qd32 --rw=randread --bs=4k --iodepth=32"
  "randwrite-4k-qd32 --rw=randwrite --bs=4k --iodepth=32"
  "seqread-1m-qd4 --rw=read --bs=1M --iodepth=4"
  "seqwrite-1m-qd4 --rw=write --bs=1M --iodepth=4"
)
fio_common="--ioengine=nbd --numjobs=1 --time_based --runtime=$runtime --ramp_time=1"
fio_common="$fio_common --size=${size_mb}M --output-format=json --group_reporting"

run_udm() { # name fio-args... -> json on stdout
  local name=$1; shift
  "$serve" --socket "$work/udm.sock" --table disk="0 $sectors linear nbd:$direct 0" \
    --run "fio --name=$name $fio_common $* --uri=\"\$uri\""
}
run_udm1() {
  local name=$1; shift
  "$serve" --socket "$work/udm.sock" \
    --table disk="0 $sectors linear nbd:$direct&connections=1 0" \
    --run "fio --name=$name $fio_common $* --uri=\"\$uri\""
}
run_direct() {
  local name=$1; shift
  fio --name="$name" $fio_common "$@" --uri="$direct"
}

results=$work/results
: > "$results"
for round in $(seq 1 "$rounds"); do
  for job in "${jobs[@]}"; do
    set -- $job
    name=$1; shift
    for server in udm udm1 direct; do
      "run_$server" "$name" "$@" | bench_record "$name" "$server"
    done
  done
done
bench_report udm udm1 direct -- udm/direct udm1/direct

#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The era target over NBD against linear on the same tmpfs: 4K random writes
# at QD32 through "era <meta> <origin> 128" (64 KiB era blocks; the metadata
# a file beside the origin, on the same medium) and through "linear" on the
# origin alone.  Two jobs: "fresh" starts every round on new metadata, so
# each era block's first write waits for a metadata commit; "warm" first
# writes the whole device sequentially in the same device lifetime, so the
# timed writes find their blocks marked in the current era.
# Rounds alternate, median printed with the ratio.  Target (docs/benchmarks.md):
# era >= 90% of linear.
#
#   bench/era.sh [--serve PATH] [--rounds N] [--runtime SECONDS] [--size-mb N]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
rounds=3
runtime=4
size_mb=256
bench_options "$@"
bench_find serve tests/nbd/udm-nbd-serve
bench_need fio python3

work=$(mktemp -d /dev/shm/udm-bench-era.XXXXXX)
trap 'rm -rf "$work"' EXIT
img=$work/origin.img
meta=$work/meta.img
dd if=/dev/zero of="$img" bs=1M count="$size_mb" status=none
sectors=$(( size_mb * 2048 ))

fio_common="--ioengine=nbd --numjobs=1 --rw=randwrite --bs=4k --iodepth=32"
fio_common="$fio_common --size=${size_mb}M --output-format=json --group_reporting"
timed="--time_based --runtime=$runtime"
mark="fio --name=mark --ioengine=nbd --rw=write --bs=1M --iodepth=4 --size=${size_mb}M --output=/dev/null"

# serve_fio TABLE NAME WARM: the timed job on a fresh device; WARM=1 runs a
# sequential pass over the whole device first, in the same device lifetime
# (a new device, like a resume, starts a new era with nothing marked).
serve_fio() {
  local table=$1 name=$2 warm=$3 pre=
  [ "$warm" = 1 ] && pre="$mark --uri=\"\$uri\" && "
  "$serve" --socket "$work/udm.sock" --table disk="$table" \
    --run "${pre}fio --name=$name $fio_common $timed --uri=\"\$uri\""
}

results=$work/results
: > "$results"
for round in $(seq 1 "$rounds"); do
  for job in fresh warm; do
    warm=0
    [ "$job" = warm ] && warm=1
    truncate -s 0 "$meta"; truncate -s 64M "$meta"
    serve_fio "0 $sectors era $meta $img 128" "randwrite-4k-$job" $warm \
      | bench_record "randwrite-4k-$job" era
    serve_fio "0 $sectors linear $img 0" "randwrite-4k-$job" $warm \
      | bench_record "randwrite-4k-$job" linear
  done
done
era_check "$meta" >/dev/null 2>&1 && echo "era_check: clean" || echo "era_check: FAILED"
bench_report era linear -- era/linear

#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The cache target over NBD: the origin is a slow device (a delay target,
# 1 ms on every request, over a tmpfs file), the cache device a tmpfs file.
# Jobs, 4 KiB random reads at QD16 (fio, ioengine=nbd):
#   - "hot": a hot set of 16 MiB (a quarter of the 64 MiB cache) read
#     through "cache ... smq" after a warm-up pass in the same device
#     lifetime, against "linear" on the cache file itself (the cache
#     device's own IOPS).  Target (docs/benchmarks.md): cache >= 80 %.
#   - "cold": the whole 256 MiB origin read through a cache made on fresh
#     metadata, against "linear" on the slow origin alone.  Target: cache
#     costs at most 10 % (cache/origin >= 0.90).
#   - "hot-disk", "cold-disk": the same with the origin an O_DIRECT file on
#     disk (raw:FILE?direct=on, in $BENCH_DIR, default /var/tmp) instead of
#     the delay target.
# "peer" is the cache device alone in the hot jobs and the origin alone in
# the cold ones.  Rounds alternate, medians printed with the ratios.
#
#   bench/cache.sh [--serve PATH] [--rounds N] [--runtime SECONDS] [--size-mb N]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
rounds=3
runtime=4
size_mb=256
bench_options "$@"
bench_find serve tests/nbd/udm-nbd-serve
bench_need fio python3

work=$(mktemp -d /dev/shm/udm-bench-cache.XXXXXX)
disk=$(mktemp -d "${BENCH_DIR:-/var/tmp}/udm-bench-cache.XXXXXX")
trap 'rm -rf "$work" "$disk"' EXIT
dd if=/dev/zero of="$disk/origin.img" bs=1M count="$size_mb" status=none conv=fsync
direct="raw:$disk/origin.img?direct=on"
origin=$work/origin.img
cdev=$work/cache.img
meta=$work/meta.img
dd if=/dev/zero of="$origin" bs=1M count="$size_mb" status=none
dd if=/dev/zero of="$cdev" bs=1M count=64 status=none
sectors=$(( size_mb * 2048 ))
slow="0 $sectors delay $origin 0 1"

fio_common="--ioengine=nbd --numjobs=1 --rw=randread --bs=4k --iodepth=16"
fio_common="$fio_common --output-format=json --group_reporting"
timed="--time_based --runtime=$runtime"
warm="fio --name=warm --ioengine=nbd --rw=randread --bs=4k --iodepth=16 --size=16M"
warm="$warm --time_based --runtime=$(( runtime * 2 )) --output=/dev/null"

# serve_fio NAME PRE SIZE TABLE...: fio on export "dev" (the last table).
serve_fio() {
  local name=$1 pre=$2 size=$3
  shift 3
  local args=() t
  for t in "$@"; do args+=(--table "$t"); done
  "$serve" --socket "$work/udm.sock" "${args[@]}" \
    --run "u=\"nbd+unix:///dev?socket=\$sock\"; ${pre:+$pre --uri=\"\$u\" && }fio --name=$name $fio_common --size=$size $timed --uri=\"\$u\""
}

fresh_meta() { truncate -s 0 "$meta"; truncate -s 16M "$meta"; }

results=$work/results
: > "$results"
for round in $(seq 1 "$rounds"); do
  fresh_meta
  serve_fio randread-4k-hot "$warm" 16M "slow=$slow" \
    "dev=0 $sectors cache $meta $cdev udm:slow 64 1 writeback smq 0" \
    | bench_record randread-4k-hot cache
  serve_fio randread-4k-hot "" 16M "dev=0 131072 linear $cdev 0" \
    | bench_record randread-4k-hot peer
  fresh_meta
  serve_fio randread-4k-cold "" "${size_mb}M" "slow=$slow" \
    "dev=0 $sectors cache $meta $cdev udm:slow 64 1 writeback smq 0" \
    | bench_record randread-4k-cold cache
  serve_fio randread-4k-cold "" "${size_mb}M" "slow=$slow" "dev=0 $sectors linear udm:slow 0" \
    | bench_record randread-4k-cold peer
  fresh_meta
  serve_fio randread-4k-hot-disk "$warm" 16M \
    "dev=0 $sectors cache $meta $cdev $direct 64 1 writeback smq 0" \
    | bench_record randread-4k-hot-disk cache
  serve_fio randread-4k-hot-disk "" 16M "dev=0 131072 linear $cdev 0" \
    | bench_record randread-4k-hot-disk peer
  fresh_meta
  serve_fio randread-4k-cold-disk "" "${size_mb}M" \
    "dev=0 $sectors cache $meta $cdev $direct 64 1 writeback smq 0" \
    | bench_record randread-4k-cold-disk cache
  serve_fio randread-4k-cold-disk "" "${size_mb}M" "dev=0 $sectors linear $direct 0" \
    | bench_record randread-4k-cold-disk peer
done
cache_check "$meta" >/dev/null 2>&1 && echo "cache_check: clean" || echo "cache_check: FAILED"
bench_report cache peer -- cache/peer

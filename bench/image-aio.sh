#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# qcow2 random reads on the asynchronous driver path against the pool path
# and against qemu-storage-daemon's qcow2 driver, same run, same image (an
# uncompressed qcow2 of random data, 64 KiB clusters, every cluster
# allocated), same fio client (ioengine=nbd, one connection):
#   udm-aio   udm-nbd-serve, table "linear qcow2:IMG": the driver's aio()
#             path (L2 tables cached after the warm-up, data reads on the
#             engine: io_uring, or the threads engine)
#   udm-pool  the same with UDM_IMAGE_AIO=off: every request runs the
#             driver's blocking pread on the engine's pool (the path before
#             driver API 2)
#   qsd       qemu-storage-daemon, file aio=io_uring + qcow2 driver, its NBD
#             export on a Unix socket
# 4K random read at QD1, QD32 and QD128.  Runs alternate for ROUNDS rounds;
# per job the median MiB/s and the ratios aio/pool and aio/qsd.  The image
# lives in $BENCH_DIR (default /var/tmp; the page cache holds it after the
# first round) or, with --tmpfs, in /dev/shm.
#
#   bench/image-aio.sh [--tmpfs] [--serve PATH] [--rounds N] [--runtime S]
#                      [--size-mb N]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
rounds=3
runtime=5
size_mb=256
tmpfs=0
args=()
for a in "$@"; do
  if [ "$a" = --tmpfs ]; then tmpfs=1; else args+=("$a"); fi
done
bench_options ${args[@]+"${args[@]}"}
bench_find serve tests/nbd/udm-nbd-serve
bench_need fio qemu-img qemu-storage-daemon python3

if [ "$tmpfs" = 1 ]; then
  work=$(mktemp -d /dev/shm/udm-image-aio.XXXXXX)
else
  work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/udm-image-aio.XXXXXX")
fi
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
head -c $((size_mb << 20)) /dev/urandom > "$work/src.raw"
qemu-img convert -f raw -O qcow2 -o cluster_size=65536 "$work/src.raw" "$work/img.qcow2"
rm -f "$work/src.raw"
img=$work/img.qcow2
sectors=$((size_mb * 2048))
results=$work/results
: > "$results"
echo "image: $(( $(stat -c %s "$img") >> 20 )) MiB qcow2 in $work (random data, 64 KiB clusters)"

jobs=(
  "randread-4k-qd1 --rw=randread --bs=4k --iodepth=1"
  "randread-4k-qd32 --rw=randread --bs=4k --iodepth=32"
  "randread-4k-qd128 --rw=randread --bs=4k --iodepth=128"
)
fio_common="--numjobs=1 --time_based --runtime=$runtime --ramp_time=1 --size=${size_mb}M"
fio_common="$fio_common --output-format=json --group_reporting"

run_udm() { # name aio(on|off) fio-args...
  local name=$1 aio=$2; shift 2
  UDM_IMAGE_AIO=$aio "$serve" --socket "$work/udm.sock" --readonly \
    --table img="0 $sectors linear qcow2:$img 0" \
    --run "fio --name=$name --ioengine=nbd $fio_common --uri=\"\$uri\" $*"
}
run_qsd() { # name fio-args...
  local name=$1; shift
  local sock=$work/q.sock pidf=$work/q.pid
  rm -f "$sock"
  qemu-storage-daemon \
    --blockdev "driver=file,node-name=f,filename=$img,aio=io_uring,read-only=on" \
    --blockdev "driver=qcow2,node-name=q,file=f,read-only=on" \
    --nbd-server "addr.type=unix,addr.path=$sock" \
    --export type=nbd,id=e,node-name=q,name=img \
    --pidfile "$pidf" --daemonize
  fio --name="$name" --ioengine=nbd $fio_common "$@" --uri="nbd+unix:///img?socket=$sock"
  local pid; pid=$(cat "$pidf")
  kill "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
}

for round in $(seq "$rounds"); do
  for j in "${jobs[@]}"; do
    set -- $j; name=$1; shift
    run_udm "$name" on "$@" | bench_record "$name" udm-aio
    run_udm "$name" off "$@" | bench_record "$name" udm-pool
    run_qsd "$name" "$@" | bench_record "$name" qsd
  done
done
bench_report udm-aio udm-pool qsd -- udm-aio/udm-pool udm-aio/qsd

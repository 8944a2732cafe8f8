#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Image drivers over NBD: the same zstd-compressed qcow2 read through udm
# (udm-nbd-serve, table "linear qcow2:IMG") and through `qemu-nbd --read-only`,
# same fio jobs (ioengine=nbd, one connection), run alternately, MB/s and IOPS
# printed with the udm/qemu-nbd ratio; then the same data as udmz through udm
# against the qcow2 through udm.
#
#   bench/image-read.sh [--serve PATH] [--udm-image PATH] [--rounds N]
#                       [--runtime SECONDS] [--size-mb N]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
rounds=2
runtime=6
size_mb=512
bench_options "$@"
bench_find serve tests/nbd/udm-nbd-serve
bench_find udm_image tools/udm-image/udm-image
bench_need fio qemu-img qemu-nbd python3

work=$(mktemp -d /dev/shm/udm-image-bench.XXXXXX)
trap '[ -z "${KEEP:-}" ] || work=; bench_cleanup' EXIT
# Disk-like data: a quarter zeros, a quarter random, half repetitive text.
python3 - "$work/src.raw" "$size_mb" <<'PY'
import os, random, sys
r = random.Random(1)
words = [bytes(r.choice(b'abcdefghijklmnopqrstuvwxyz ') for _ in range(r.randrange(2, 12)))
         for _ in range(2000)]
with open(sys.argv[1], 'wb') as f:
    for i in range(int(sys.argv[2])):
        k = i % 4
        if k == 0: f.write(bytes(1 << 20))
        elif k == 1: f.write(os.urandom(1 << 20))
        else:
            t = b' '.join(r.choice(words) for _ in range(200000))
            f.write((t * 2)[:1 << 20])
PY
qemu-img convert -c -f raw -O qcow2 -o compression_type=zstd "$work/src.raw" "$work/img.qcow2"
"$udm_image" convert "$work/src.raw" "$work/img.udmz" >/dev/null
rm -f "$work/src.raw"
sectors=$(( size_mb * 2048 ))
echo "data: ${size_mb} MiB; zstd qcow2 $(( $(stat -c %s "$work/img.qcow2") >> 20 )) MiB," \
     "udmz $(( $(stat -c %s "$work/img.udmz") >> 20 )) MiB"

jobs=(
  "seqread-1m-qd4 --rw=read --bs=1M --iodepth=4"
  "randread-4k-qd32 --rw=randread --bs=4k --iodepth=32"
)
fio_common="--ioengine=nbd $(bench_fio_opts)"

run_udm() { # spec name fio-args... -> json
  bench_serve_fio "$2" --readonly --table img="0 $sectors linear $1 0" -- "${@:3}"
}
run_qemu() { # name fio-args... -> json
  local name=$1; shift
  rm -f "$work/q.sock"
  bench_daemon "$work/q.sock" qemu-nbd --read-only --persistent -f qcow2 --cache=writeback \
    -k "$work/q.sock" -x img "$work/img.qcow2"
  fio --name="$name" $fio_common --uri="nbd+unix:///img?socket=$work/q.sock" "$@"
  bench_daemon_stop "$bench_pid"
}
metric() { # json-file -> "MB/s IOPS" (of reads: these jobs only read)
  bench_fio_io "$1" | awk '{ printf "%.1f %.0f\n", $3 / 1e6, $1 }'
}
mean() { python3 -c 'import sys; v=[float(x) for x in sys.argv[1:]]; print("%.1f" % (sum(v)/len(v)))' "$@"; }

printf '%-18s %14s %14s %14s %8s %10s\n' job "udm qcow2" "qemu-nbd" "udm udmz" "udm/qemu" "udmz/qcow2"
for j in "${jobs[@]}"; do
  set -- $j; name=$1; shift
  uq=(); qq=(); uz=()
  for r in $(seq "$rounds"); do
    run_udm "qcow2:$work/img.qcow2" "$name" "$@" > "$work/u.json"
    run_qemu "$name" "$@" > "$work/q.json"
    run_udm "udmz:$work/img.udmz" "$name" "$@" > "$work/z.json"
    uq+=("$(metric "$work/u.json")"); qq+=("$(metric "$work/q.json")"); uz+=("$(metric "$work/z.json")")
  done
  col() { local i=$1; shift; for m in "$@"; do echo "$m" | cut -d' ' -f"$i"; done; }
  if [[ $name == seq* ]]; then i=1; unit=MB/s; else i=2; unit=IOPS; fi
  a=$(mean $(col $i "${uq[@]}")); b=$(mean $(col $i "${qq[@]}")); c=$(mean $(col $i "${uz[@]}"))
  printf '%-18s %9s %4s %9s %4s %9s %4s %7.2fx %9.2fx\n' "$name" "$a" "$unit" "$b" "$unit" "$c" "$unit" \
    "$(python3 -c "print($a/$b)")" "$(python3 -c "print($c/$a)")"
done

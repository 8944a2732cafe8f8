#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Block device (FUSE + loop) benchmark.  fio (libaio, direct=1) on four
# block devices over one file:
#   udm      a udm linear device over FILE, exported as a FUSE file by
#            tests/fuse/udm-fuse-serve and attached as a loop device
#   loop     FILE itself on a plain loop device (losetup --direct-io=on):
#            the physical limit of this machine
#   nbdfuse  FILE served by nbdkit's file plugin, made a file by nbdfuse,
#            and a loop device (--direct-io=on) over that file: a peer
#   qsd      FILE through qemu-storage-daemon's FUSE export (file driver,
#            aio=io_uring, cache.direct as udm's) and a loop device over the
#            exported file: the other peer
# All four are set up at once and the runs alternate (udm, loop, nbdfuse,
# qsd, udm, ...) for ROUNDS rounds, so that a busy machine weighs on each alike;
# per job the median of the rounds and the ratios are printed.
#
#   bench/blockdev.sh [BUILD-DIR]      (default: build; root, /dev/fuse, loop)
#
# Environment: SIZE of the file (default 1G), RUNTIME per run in seconds
# (default 5), ROUNDS (default 3), BENCH_DIR for the file (default /var/tmp:
# a disk, since the plain loop device needs O_DIRECT), THREADS (the
# export's worker threads; its default otherwise), UDM_DIRECT=on to make
# udm open FILE with O_DIRECT (default: the page cache, as nbdkit's file
# plugin does by default).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
build=${1:-build}
serve=$build/tests/fuse/udm-fuse-serve
[ -x "$serve" ] || { echo "no $serve: build first (ninja -C $build)" >&2; exit 1; }
for t in fio losetup nbdkit nbdfuse fusermount3 timeout qemu-storage-daemon; do
  command -v $t >/dev/null || { echo "$t is not installed" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "needs root (loop devices)" >&2; exit 1; }

size=${SIZE:-1G}
runtime=${RUNTIME:-5}
rounds=${ROUNDS:-3}
threads_opt=${THREADS:+--threads $THREADS}
backing_opt=${UDM_DIRECT:+?direct=$UDM_DIRECT}
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/udm-bench.XXXXXX")
img=$work/disk.img
results=$work/results
qsd_direct=off
[ "${UDM_DIRECT:-off}" = on ] && qsd_direct=on
cleanup() {
  local d
  for d in $(losetup -j "$img" -O NAME -n 2>/dev/null) $(losetup -j "$work/nbd/nbd" -O NAME -n 2>/dev/null) \
           $(losetup -j "$work/qsd.img" -O NAME -n 2>/dev/null); do
    losetup -d "$d" 2>/dev/null || true
  done
  mountpoint -q "$work/nbd" 2>/dev/null && fusermount3 -u "$work/nbd" 2>/dev/null || true
  bench_qsd_stop "$work/qsd.pid"
  bench_cleanup
}
trap cleanup EXIT

# Real, allocated data: reads must reach data, not holes.
echo "preparing a $size file in $work" >&2
fio --name=fill --filename="$img" --size="$size" --rw=write --bs=1M --direct=1 \
  --ioengine=libaio --iodepth=8 --output=/dev/null

# The peer: nbdkit (foreground, killed at the end) and nbdfuse (exits on unmount).
bench_daemon "$work/nbd.sock" nbdkit -f -U "$work/nbd.sock" file "$img"
nbdkit_pid=$bench_pid
mkdir -p "$work/nbd"
nbdfuse -P "$work/nbdfuse.pid" "$work/nbd" --unix "$work/nbd.sock" &
for _ in $(seq 100); do [ -s "$work/nbdfuse.pid" ] && break; sleep 0.1; done
# The other peer: qemu-storage-daemon's FUSE export over a file of its own.
: > "$work/qsd.img"
bench_qsd "$work/qsd.pid" \
  --blockdev "driver=file,node-name=f,filename=$img,aio=io_uring,cache.direct=$qsd_direct" \
  --export "type=fuse,id=e,node-name=f,mountpoint=$work/qsd.img,writable=on"

# Runs inside the udm host, which sets $dev; the other two are made here.
cat >"$work/runs.sh" <<EOF
set -euo pipefail
jobs=(
  "seq-write-1M --rw=write --bs=1M --iodepth=8"
  "seq-read-1M --rw=read --bs=1M --iodepth=8"
  "rand-read-4K --rw=randread --bs=4k --iodepth=32"
)
loop=\$(losetup --direct-io=on -f --show "$img")
nbd=\$(losetup --direct-io=on -f --show "$work/nbd/nbd")
qsd=\$(losetup --direct-io=on -f --show "$work/qsd.img")
dio() { cat "/sys/block/\$(basename "\$1")/loop/dio"; }
echo "direct I/O of the loop devices: udm \$(dio \$dev), loop \$(dio \$loop), nbdfuse \$(dio \$nbd), qsd \$(dio \$qsd)" >&2
for round in \$(seq $rounds); do
  for j in "\${jobs[@]}"; do
    name=\${j%% *}
    for cfg in udm loop nbdfuse qsd; do
      case \$cfg in udm) d=\$dev ;; loop) d=\$loop ;; nbdfuse) d=\$nbd ;; qsd) d=\$qsd ;; esac
      sync
      echo 3 >/proc/sys/vm/drop_caches
      # terse v3: fields 7/8 read KiB/s, IOPS; 48/49 write KiB/s, IOPS
      timeout -k 10 $((runtime + 120)) fio --name="\$name" --filename="\$d" \
        --ioengine=libaio --direct=1 --time_based --runtime=$runtime --ramp_time=1 \
        --size=$size --numjobs=1 --output-format=terse --terse-version=3 \${j#* } |
        awk -F';' -v c=\$cfg -v n=\$name -v r=\$round \
          '{ printf "%s %s %s %.1f %.0f\n", n, c, r, (\$7 + \$48) / 1024, \$8 + \$49 }' |
        tee -a "$results" >&2
    done
  done
done
losetup -d "\$loop" "\$nbd" "\$qsd"
EOF

timeout -k 10 $((rounds * 12 * (runtime + 30) + 300)) "$serve" --dir "$work/dev" $threads_opt \
  --table "disk=0 $(($(stat -c %s "$img") / 512)) linear raw:$img$backing_opt 0" \
  --attach disk --run "bash $work/runs.sh"
fusermount3 -u "$work/nbd" 2>/dev/null || true # nbdfuse may have gone already
bench_daemon_stop "$nbdkit_pid"
bench_qsd_stop "$work/qsd.pid"

echo
echo "median of $rounds rounds of ${runtime}s; MiB/s (4K random read: IOPS)"
printf "%-14s %10s %10s %10s %10s %9s %12s %8s\n" job udm loop nbdfuse qsd udm/loop udm/nbdfuse udm/qsd
for job in seq-write-1M seq-read-1M rand-read-4K; do
  col=4
  [ $job = rand-read-4K ] && col=5
  med() {
    awk -v j=$job -v c=$1 -v k=$col '$1 == j && $2 == c { print $k }' "$results" | sort -g |
      awk '{ v[NR] = $1 } END { print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
  }
  awk -v j=$job -v u="$(med udm)" -v l="$(med loop)" -v f="$(med nbdfuse)" -v q="$(med qsd)" 'BEGIN {
    printf "%-14s %10.0f %10.0f %10.0f %10.0f %8.2fx %11.2fx %7.2fx\n", j, u, l, f, q, u / l, u / f, u / q }'
done

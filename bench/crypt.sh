#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The crypt target over NBD: "crypt aes-xts-plain64" against "linear" on the
# same tmpfs file (both served by udm-nbd-serve), and against nbdkit's luks
# filter on a LUKS1 volume of the same size.  The same fio jobs
# (ioengine=nbd), run alternately, median of the rounds, ratios printed.
# Targets (docs/benchmarks.md): crypt >= 90% of linear, >= 2x nbdkit luks.
#
#   bench/crypt.sh [--serve PATH] [--rounds N] [--runtime SECONDS] [--size-mb N]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
rounds=3
runtime=4
size_mb=512
bench_options "$@"
bench_find serve tests/nbd/udm-nbd-serve
bench_need fio nbdkit python3 cryptsetup

work=$(mktemp -d /dev/shm/udm-bench-crypt.XXXXXX)
trap 'rm -rf "$work"' EXIT
img=$work/disk.img
luks=$work/luks.img
dd if=/dev/zero of="$img" bs=1M count="$size_mb" status=none
dd if=/dev/zero of="$luks" bs=1M count=$((size_mb + 16)) status=none
printf 'bench-pass' > "$work/pass"
cryptsetup luksFormat --batch-mode --type luks1 --cipher aes-xts-plain64 --key-size 512 \
  --pbkdf-force-iterations 1000 --key-file "$work/pass" "$luks"
sectors=$(( size_mb * 2048 ))
key=$(head -c 64 /dev/urandom | od -An -tx1 | tr -d ' \n')

jobs=(
  "randread-4k-qd32 --rw=randread --bs=4k --iodepth=32"
  "seqread-1m-qd4 --rw=read --bs=1M --iodepth=4"
  "seqwrite-1m-qd4 --rw=write --bs=1M --iodepth=4"
)
fio_common="--ioengine=nbd $(bench_fio_opts)"

run_linear() { bench_serve_fio "$1" --table disk="0 $sectors linear $img 0" -- "${@:2}"; }
run_crypt() {
  bench_serve_fio "$1" --table disk="0 $sectors crypt aes-xts-plain64 $key 0 $img 0" \
    -- "${@:2}"
}
run_nbdkit_luks() {
  bench_nbdkit_fio "$1" --filter=luks file "$luks" passphrase=bench-pass -- "${@:2}"
}

results=$work/results
bench_rounds crypt linear nbdkit_luks
bench_report crypt linear nbdkit_luks -- crypt/linear crypt/nbdkit_luks

#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# NBD over TLS: udm's server with X.509 TLS against nbdkit's file plugin
# with the same certificates (both --tls=require), and against udm in clear,
# all on TCP to localhost, the same file on tmpfs, the same fio jobs
# (ioengine=nbd, one connection, an nbds:// URI), run alternately; median
# over the rounds and the ratios udm-tls/nbdkit-tls and udm-tls/udm-plain.
#
#   bench/nbd-tls.sh [--serve PATH] [--rounds N] [--runtime SECONDS] [--size-mb N]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/../tests/nbd/tls-lib.sh"
rounds=3
runtime=5
size_mb=1024
bench_options "$@"
bench_find serve tests/nbd/udm-nbd-serve
bench_need fio nbdkit python3 certtool

work=$(mktemp -d /dev/shm/udm-bench-tls.XXXXXX)
trap 'rm -rf "$work"' EXIT
img=$work/disk.img
dd if=/dev/zero of="$img" bs=1M count="$size_mb" status=none
sectors=$(( size_mb * 2048 ))
make_certs "$work/certs"
# fio's libnbd refuses file paths in URIs; it finds client credentials in
# $HOME/.pki/libnbd by default, so fio runs with HOME=$work.
mkdir -p "$work/.pki" && ln -s "$work/certs" "$work/.pki/libnbd"

jobs=(
  "randread-4k-qd32 --rw=randread --bs=4k --iodepth=32"
  "seqread-1m-qd4 --rw=read --bs=1M --iodepth=4"
  "seqwrite-1m-qd4 --rw=write --bs=1M --iodepth=4"
)
fio_common="--ioengine=nbd $(bench_fio_opts)"

run_udm_tls() { # name fio-args...  -> json on stdout
  local name=$1 port; shift
  port=$(free_port)
  "$serve" --socket "$work/udm.sock" --tcp "127.0.0.1:$port" --tls require \
    --tls-certificates "$work/certs" --table disk="0 $sectors linear $img 0" \
    --run "HOME=$work $(bench_fio_cmd "$name" "nbds://localhost:$port/disk" "$@")"
}
run_udm_plain() {
  local name=$1 port; shift
  port=$(free_port)
  "$serve" --socket "$work/udm.sock" --tcp "127.0.0.1:$port" \
    --table disk="0 $sectors linear $img 0" \
    --run "$(bench_fio_cmd "$name" "nbd://localhost:$port/disk" "$@")"
}
run_nbdkit_tls() {
  local name=$1 port; shift
  port=$(free_port)
  nbdkit --exit-with-parent -i 127.0.0.1 -p "$port" --tls=require \
    --tls-certificates="$work/certs" file "$img" \
    --run "HOME=$work $(bench_fio_cmd "$name" "nbds://localhost:$port/" "$@")"
}

results=$work/results
bench_rounds udm_tls nbdkit_tls udm_plain
bench_report udm_tls nbdkit_tls udm_plain -- udm_tls/nbdkit_tls udm_tls/udm_plain

#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# qcow2 images made by qemu-img/qemu-io, every byte read through udm (a linear
# table over qcow2:PATH) equals `qemu-img convert -O raw` of the same image:
# v2 and v3, zlib and zstd compression, zero clusters, holes, extended L2
# entries, odd cluster sizes, a size that is not a multiple of the cluster.
source "$(dirname "$0")/lib.sh"
need qemu-img qemu-io python3 cmp

# A 24 MiB source with data, holes (never written) and zero-filled data.
pattern "$tmp/data" 4
truncate -s 24M "$tmp/src.raw"
dd if="$tmp/data" of="$tmp/src.raw" bs=1M seek=0 count=3 conv=notrunc status=none
dd if="$tmp/data" of="$tmp/src.raw" bs=1M skip=1 seek=9 count=2 conv=notrunc status=none
dd if="$tmp/data" of="$tmp/src.raw" bs=4k skip=7 seek=4000 count=3 conv=notrunc status=none
dd if=/dev/urandom of="$tmp/src.raw" bs=64k seek=300 count=5 conv=notrunc status=none
dd if="$tmp/data" of="$tmp/src.raw" bs=512 skip=1 seek=49151 count=1 conv=notrunc status=none

check() { # check NAME [image-dump args]: udm's bytes == qemu's bytes
  local img=$tmp/$1.qcow2; shift
  qemu-img convert -f qcow2 -O raw "$img" "$tmp/ref.raw"
  dump "qcow2:$img" "$tmp/udm.raw" --extents "$tmp/extents" "$@" >/dev/null ||
    fail "$img: udm could not read it"
  cmp "$tmp/ref.raw" "$tmp/udm.raw" || fail "$img: udm and qemu-img read different bytes"
  # Every extent udm calls zero reads as zeros.
  python3 - "$tmp/ref.raw" "$tmp/extents" <<'PY' || fail "$img: a ZERO extent holds data"
import sys
data = open(sys.argv[1], 'rb').read()
pos = 0
for line in open(sys.argv[2]):
    off, n, flags = map(int, line.split())
    assert off == pos, ("gap", off, pos)
    if flags & 2:
        assert data[off:off + n].count(0) == n, ("zero extent with data", off, n)
    pos = off + n
assert pos == len(data), ("extents stop early", pos, len(data))
PY
  echo "ok: $(basename "$img") $*"
}

qemu-img convert -f raw -O qcow2 -o compat=0.10 "$tmp/src.raw" "$tmp/v2.qcow2"
check v2
qemu-img convert -f raw -O qcow2 -o compat=1.1 "$tmp/src.raw" "$tmp/v3.qcow2"
check v3 --threads 4
qemu-img convert -c -f raw -O qcow2 -o compat=0.10 "$tmp/src.raw" "$tmp/v2-zlib.qcow2"
check v2-zlib
qemu-img convert -c -f raw -O qcow2 -o compression_type=zlib "$tmp/src.raw" "$tmp/zlib.qcow2"
check zlib --threads 4
qemu-img convert -c -f raw -O qcow2 -o compression_type=zstd "$tmp/src.raw" "$tmp/zstd.qcow2"
check zstd --threads 4
qemu-img convert -f raw -O qcow2 -o extended_l2=on,cluster_size=128k "$tmp/src.raw" "$tmp/extl2.qcow2"
check extl2
qemu-img convert -c -f raw -O qcow2 -o extended_l2=on,compression_type=zstd "$tmp/src.raw" "$tmp/extl2-zstd.qcow2"
check extl2-zstd
qemu-img convert -f raw -O qcow2 -o cluster_size=512 "$tmp/src.raw" "$tmp/c512.qcow2"
check c512
qemu-img convert -c -f raw -O qcow2 -o cluster_size=2M "$tmp/src.raw" "$tmp/c2m.qcow2"
check c2m
qemu-img convert -c -f raw -O qcow2 -o cluster_size=4k "$tmp/src.raw" "$tmp/c4k.qcow2"
check c4k

# Zero clusters (v3 "all zeros" flag) and zeroed subclusters, written by qemu-io
# over data, next to never-written holes; a size that is not cluster-aligned.
for opts in compat=1.1 extended_l2=on,cluster_size=64k; do
  name=zero-${opts%%[,=]*}
  qemu-img create -q -f qcow2 -o "$opts" "$tmp/$name.qcow2" 20971520
  qemu-img resize -q "$tmp/$name.qcow2" 20972032 # 20M + 512
  qemu-io -f qcow2 "$tmp/$name.qcow2" \
    -c "write -P 0x5a 0 4M" -c "write -z 1M 1M" -c "write -z 2M 4k" \
    -c "write -P 0xc3 8M 64k" -c "write -z 8M 8k" -c "write -z 12M 2M" \
    -c "write -P 0x11 20M 512" -c "write -z 3M 192k" -c "write -P 0x77 3200k 12k" >/dev/null
  qemu-img map --output=json -f qcow2 "$tmp/$name.qcow2" | grep -q '"zero": true, "data": false' ||
    fail "$name: qemu-io made no zero clusters"
  check "$name"
done

# The NBD export of an image compares equal to the image (when NBD is built).
if [ -n "${UDM_NBD_SERVE:-}" ]; then
  for name in zstd extl2 zero-extended_l2; do
    img=$tmp/$name.qcow2
    n=$(sectors "qcow2:$img")
    timeout 100 "$UDM_NBD_SERVE" --socket "$tmp/nbd.sock" --readonly \
      --table img="0 $n linear qcow2:$img 0" \
      --run "qemu-img compare -f qcow2 -F raw '$img' \"\$uri\"" ||
      fail "$name: qemu-img compare of the NBD export says different"
    echo "ok: qemu-img compare $name against the NBD export"
  done
else
  echo "note: udm-nbd-serve not built; NBD comparison not run"
fi
echo PASS

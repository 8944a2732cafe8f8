#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Asynchronous image drivers (tests/drivers/test-image-aio.c), for each I/O
# engine: 256 reads in flight on a qcow2 image and on udmz images return the
# right bytes; the hot path (L2 tables / chunks cached, stored chunks) runs no
# pool job, alone and under a stack of 3 udm devices; UDM_IMAGE_AIO=off sends
# every request to the pool; compressed clusters and zstd chunks (pool work)
# still read right; a driver built for API version 1 still loads and works.
source "$(dirname "$0")/lib.sh"
need qemu-img python3

head -c $((24 << 20)) /dev/urandom > "$tmp/rand.raw"
pattern "$tmp/pat.raw" 8
qemu-img convert -f raw -O qcow2 -o cluster_size=65536 "$tmp/rand.raw" "$tmp/rand.qcow2"
# Sparse: unallocated clusters and zero clusters read as zeros on the hot path.
truncate -s $((24 << 20)) "$tmp/sparse.raw"
dd if="$tmp/rand.raw" of="$tmp/sparse.raw" bs=1M count=4 seek=8 conv=notrunc status=none
qemu-img convert -f raw -O qcow2 -o cluster_size=4096 "$tmp/sparse.raw" "$tmp/sparse.qcow2"
qemu-img convert -c -f raw -O qcow2 "$tmp/pat.raw" "$tmp/pat-c.qcow2"
"$UDM_IMAGE" convert --chunk-size 65536 "$tmp/rand.raw" "$tmp/rand.udmz" >/dev/null
"$UDM_IMAGE" convert --chunk-size 4096 "$tmp/rand.raw" "$tmp/rand4k.udmz" >/dev/null
"$UDM_IMAGE" convert --chunk-size 65536 "$tmp/pat.raw" "$tmp/pat.udmz" >/dev/null

for engine in io_uring threads; do
  export UDM_IO_ENGINE=$engine
  if [ $engine = io_uring ] && ! "$TEST_IMAGE_AIO" bytes "raw:$tmp/pat.raw" "$tmp/pat.raw" \
       >/dev/null 2>&1; then
    echo "io_uring refused here: threads engine only"
    continue
  fi
  echo "== engine $engine"
  "$TEST_IMAGE_AIO" hot "qcow2:$tmp/rand.qcow2" "$tmp/rand.raw" || fail "qcow2 hot ($engine)"
  "$TEST_IMAGE_AIO" hot "qcow2:$tmp/sparse.qcow2" "$tmp/sparse.raw" ||
    fail "sparse qcow2 hot ($engine)"
  "$TEST_IMAGE_AIO" hot "udmz:$tmp/rand.udmz" "$tmp/rand.raw" || fail "udmz hot ($engine)"
  "$TEST_IMAGE_AIO" hot "udmz:$tmp/rand4k.udmz" "$tmp/rand.raw" ||
    fail "udmz 4K chunks hot ($engine)"
  # Page-cache reads are copied on the submitting thread by default; with
  # UDM_IMAGE_AIO=engine they go through the engine (its operations counted).
  UDM_IMAGE_AIO=engine "$TEST_IMAGE_AIO" hot "qcow2:$tmp/rand.qcow2" "$tmp/rand.raw" ||
    fail "qcow2 hot through the engine ($engine)"
  UDM_IMAGE_AIO=engine "$TEST_IMAGE_AIO" hot "udmz:$tmp/rand.udmz" "$tmp/rand.raw" ||
    fail "udmz hot through the engine ($engine)"
  UDM_IMAGE_AIO=off "$TEST_IMAGE_AIO" pool "qcow2:$tmp/rand.qcow2" "$tmp/rand.raw" ||
    fail "qcow2 with UDM_IMAGE_AIO=off ($engine)"
  UDM_IMAGE_AIO=off "$TEST_IMAGE_AIO" pool "udmz:$tmp/rand.udmz" "$tmp/rand.raw" ||
    fail "udmz with UDM_IMAGE_AIO=off ($engine)"
  "$TEST_IMAGE_AIO" bytes "qcow2:$tmp/pat-c.qcow2" "$tmp/pat.raw" ||
    fail "compressed qcow2 ($engine)"
  "$TEST_IMAGE_AIO" bytes "udmz:$tmp/pat.udmz" "$tmp/pat.raw" || fail "zstd udmz ($engine)"
  "$TEST_IMAGE_AIO" old-api "$tmp/rand.raw" || fail "API version 1 driver ($engine)"
done

msg=$(UDM_IMAGE_AIO=maybe "$TEST_IMAGE_AIO" bytes "qcow2:$tmp/rand.qcow2" "$tmp/rand.raw" 2>&1) &&
  fail "UDM_IMAGE_AIO=maybe accepted"
grep -q "UDM_IMAGE_AIO='maybe' is not 'on', 'off' or 'engine'" <<<"$msg" || fail "message: $msg"
echo "ok: asynchronous image drivers"

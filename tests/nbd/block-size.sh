#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# NBD_INFO_BLOCK_SIZE carries the device's logical block size: a crypt
# device with sector_size:4096 (and a linear stacked on it) advertises a
# minimum of 4096, a plain linear 512; the preferred size is at least 4096.
# A client that sends less than a block anyway (libnbd with STRICT_ALIGN
# off) is served: the core read-modify-writes, and the neighbours keep
# their bytes (docs/nbd.md).
source "$(dirname "$0")/lib.sh"
require nbdinfo truncate
PY=$(libnbd_python)
scratch

truncate -s 4M "$WORK/crypt.img" "$WORK/plain.img"
key=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
key=$key$key
serve --table c4k="0 8192 crypt aes-xts-plain64 $key 0 $WORK/crypt.img 0 1 sector_size:4096" \
      --table up="0 4096 linear udm:c4k 4096" \
      --table plain="0 8192 linear $WORK/plain.img 0" \
      --run '
  set -e
  for e in c4k up plain; do
    nbdinfo --json "nbd+unix:///$e?socket=$sock" > "$WORK/$e.json"
  done
  cd / && "'"$PY"'" - "$uri" <<PY
import nbd, os, sys
h = nbd.NBD()
h.set_strict_mode(h.get_strict_mode() & ~nbd.STRICT_ALIGN)
h.connect_uri(sys.argv[1])
assert h.get_block_size(nbd.SIZE_MINIMUM) == 4096
before = os.urandom(3 * 4096)
h.pwrite(before, 0)
h.pwrite(b"\xa5" * 512, 512)              # one sector inside crypt sector 0
h.pwrite(b"odd bytes", 8192 - 4)          # across crypt sectors 1 and 2
want = bytearray(before)
want[512:1024] = b"\xa5" * 512
want[8188:8197] = b"odd bytes"
assert h.pread(512, 512) == b"\xa5" * 512
assert h.pread(3 * 4096, 0) == bytes(want), "a neighbour changed"
assert h.pread(9, 8188) == b"odd bytes"
h.shutdown()
PY
' || fail "a client failed"

"$PY" - "$WORK" <<'PY' || fail "advertised block sizes"
import json, sys
def sizes(name):
    e = json.load(open(f"{sys.argv[1]}/{name}.json"))["exports"][0]
    return (e["block_size_minimum"], e["block_size_preferred"], e["block_size_maximum"])
assert sizes("c4k") == (4096, 4096, 33554432), sizes("c4k")
assert sizes("up") == (4096, 4096, 33554432), sizes("up")
assert sizes("plain") == (512, 4096, 33554432), sizes("plain")
PY
echo PASS

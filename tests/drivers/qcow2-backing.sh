#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# qcow2 backing chains: raw and qcow2 backing files (the recorded format is
# honoured), relative names resolved against the image, chains that leave the
# image's directory refused unless ?backing=allow-any, cycles refused,
# ?backing=none, a backing file shorter than the image.
source "$(dirname "$0")/lib.sh"
need qemu-img qemu-io python3 cmp

d=$tmp/images
mkdir -p "$d/sub" "$tmp/elsewhere"
same() { # same SPEC IMAGE: udm reads SPEC as qemu-img reads IMAGE
  qemu-img convert -O raw "$2" "$tmp/ref.raw"
  dump "$1" "$tmp/udm.raw" >/dev/null || fail "$1: udm could not read it"
  cmp "$tmp/ref.raw" "$tmp/udm.raw" || fail "$1: bytes differ from qemu-img's"
  echo "ok: $1"
}
refused() { # refused SPEC SECTORS WORDS: the table fails and the message says WORDS
  local msg
  msg=$("$IMAGE_DUMP" --expect-load-error --table "0 $2 linear $1 0") ||
    fail "$1: loaded, but must be refused"
  grep -q -- "$3" <<<"$msg" || fail "$1: message '$msg' does not say '$3'"
  echo "ok: refused $1: $msg"
}

# raw <- qcow2 (relative name "sub/base.raw") <- qcow2 (relative "mid.qcow2")
pattern "$tmp/data" 2
truncate -s 8M "$d/sub/base.raw"
dd if="$tmp/data" of="$d/sub/base.raw" bs=1M count=2 conv=notrunc status=none
(cd "$d" && qemu-img create -q -f qcow2 -b sub/base.raw -F raw mid.qcow2 8M)
qemu-io -f qcow2 "$d/mid.qcow2" -c "write -P 0x22 1M 512k" -c "write -z 1536k 64k" \
  -c "write -P 0x23 5M 64k" >/dev/null
(cd "$d" && qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 top.qcow2 12M)
qemu-io -f qcow2 "$d/top.qcow2" -c "write -P 0x33 1280k 128k" -c "write -z 0 4k" \
  -c "write -P 0x34 10M 4k" >/dev/null
same "qcow2:$d/mid.qcow2" "$d/mid.qcow2"
same "qcow2:$d/top.qcow2" "$d/top.qcow2"     # 12M over an 8M chain: zeros past it
(cd "$d/sub" && same "qcow2:../top.qcow2" ../top.qcow2)

# backing=none: unallocated clusters read as zeros, not from the backing file.
sectors_top=$(sectors "qcow2:$d/top.qcow2")
"$IMAGE_DUMP" --table "0 $sectors_top linear qcow2:$d/top.qcow2?backing=none 0" \
  "$tmp/none.raw" >/dev/null || fail "backing=none"
cmp -s -i 131072 -n 917504 "$tmp/ref.raw" /dev/zero && fail "the test range is zero anyway"
cmp -i 131072 -n 917504 "$tmp/none.raw" /dev/zero || fail "backing=none still read the backing file"
echo "ok: backing=none"

# A chain that leaves the directory of the image named in the table.
truncate -s 8M "$tmp/elsewhere/outside.raw"
(cd "$d" && qemu-img create -q -f qcow2 -b ../elsewhere/outside.raw -F raw escape.qcow2 8M)
refused "qcow2:$d/escape.qcow2" 16384 "outside"
same "qcow2:$d/escape.qcow2?backing=allow-any" "$d/escape.qcow2"
ln -s "$tmp/elsewhere/outside.raw" "$d/link.raw"       # a symlink does not help
(cd "$d" && qemu-img create -q -f qcow2 -b link.raw -F raw escape2.qcow2 8M)
refused "qcow2:$d/escape2.qcow2" 16384 "outside"
(cd "$d" && qemu-img create -q -f qcow2 -b /etc/passwd -F raw absolute.qcow2 1M)
refused "qcow2:$d/absolute.qcow2" 2048 "outside"

# The backing format is never guessed: without the header extension, refused.
(cd "$d" && qemu-img create -q -f qcow2 -b sub/base.raw -F raw nofmt.qcow2 8M)
python3 - "$d/nofmt.qcow2" <<'PY'
import struct, sys
f = open(sys.argv[1], 'r+b'); h = bytearray(f.read(65536))
pos = struct.unpack('>I', h[100:104])[0]
while True:
    t, n = struct.unpack('>II', h[pos:pos + 8])
    if t == 0: sys.exit("no backing format extension")
    if t == 0xe2792aca:
        h[pos:pos + 4] = struct.pack('>I', 0x7fffffff)  # now an unknown extension
        break
    pos += 8 + (n + 7) // 8 * 8
f.seek(0); f.write(h)
PY
refused "qcow2:$d/nofmt.qcow2" 16384 "backing-format"
same "qcow2:$d/nofmt.qcow2?backing-format=raw" "$d/nofmt.qcow2"
refused "qcow2:$d/mid.qcow2?backing=sideways" 16384 "unknown or invalid option"

# Cycles: an image that is its own backing file, and a -> b -> a.
qemu-img create -q -f qcow2 "$d/a.qcow2" 1M
(cd "$d" && qemu-img create -q -f qcow2 -b a.qcow2 -F qcow2 b.qcow2 1M)
(cd "$d" && qemu-img rebase -u -b b.qcow2 -F qcow2 a.qcow2)
refused "qcow2:$d/a.qcow2" 2048 "cycle"
qemu-img create -q -f qcow2 "$d/self.qcow2" 1M
(cd "$d" && qemu-img rebase -u -b self.qcow2 -F qcow2 self.qcow2)
refused "qcow2:$d/self.qcow2" 2048 "cycle"
echo PASS

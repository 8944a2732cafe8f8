#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Damaged qcow2 images: each is refused with a message that names the
# problem, or (damage inside tables read on demand) fails the reads that meet
# it with EIO while `udm-image verify` names it.  Never a crash.  The damaged
# files are also fuzz seeds: set UDM_CORPUS_OUT=DIR to keep them.
source "$(dirname "$0")/lib.sh"
need qemu-img qemu-io python3

pattern "$tmp/data" 1
truncate -s 1M "$tmp/src.raw"
dd if="$tmp/data" of="$tmp/src.raw" bs=4k count=12 conv=notrunc status=none
# Small clusters keep the seeds small.
qemu-img convert -f raw -O qcow2 -o cluster_size=4k "$tmp/src.raw" "$tmp/plain.qcow2"
qemu-img convert -c -f raw -O qcow2 -o cluster_size=4k,compression_type=zlib "$tmp/src.raw" "$tmp/zlib.qcow2"
qemu-img convert -c -f raw -O qcow2 -o cluster_size=4k,compression_type=zstd "$tmp/src.raw" "$tmp/zstd.qcow2"
CORRUPT="python3 $DRIVERS_TEST_DIR/corrupt.py"

survived() { # the exit status of a program that must not have crashed
  [ "$1" -lt 128 ] || fail "$2 crashed (status $1)"
}
refused() { # refused KIND BASE WORDS
  local img=$tmp/$1.qcow2 msg st=0
  $CORRUPT "$1" "$tmp/$2.qcow2" "$img"
  msg=$("$IMAGE_DUMP" --expect-load-error --table "0 2048 linear qcow2:$img 0") || st=$?
  survived $st "image-dump on $1"
  [ $st -eq 0 ] || fail "$1: the table loaded"
  grep -q -- "$3" <<<"$msg" || fail "$1: message '$msg' does not say '$3'"
  st=0; "$UDM_IMAGE" info "qcow2:$img" >/dev/null 2>&1 || st=$?
  survived $st "udm-image info on $1"
  [ $st -ne 0 ] || fail "udm-image info accepted $1"
  echo "ok: $1: $msg"
  keep "$img"
}
read_fails() { # read_fails KIND BASE WORDS: opens, reads meet EIO, verify names it
  local img=$tmp/$1.qcow2 st=0 msg
  $CORRUPT "$1" "$tmp/$2.qcow2" "$img"
  "$IMAGE_DUMP" --bad "$tmp/bad" --table "0 2048 linear qcow2:$img 0" "$tmp/out" \
    >/dev/null || st=$?
  survived $st "image-dump on $1"
  [ $st -eq 0 ] || fail "$1: image-dump failed to open or read"
  [ -s "$tmp/bad" ] || fail "$1: every read succeeded"
  st=0; msg=$("$UDM_IMAGE" verify "qcow2:$img" 2>&1) || st=$?
  survived $st "udm-image verify on $1"
  [ $st -eq 1 ] || fail "$1: verify exit status $st, want 1"
  grep -q -- "$3" <<<"$msg" || fail "$1: verify said '$msg', not '$3'"
  echo "ok: $1: reads fail with EIO ($(wc -l < "$tmp/bad") ranges); verify: $(echo "$msg" | head -1)"
  keep "$img"
}
keep() {
  if [ -n "${UDM_CORPUS_OUT:-}" ]; then cp "$1" "$UDM_CORPUS_OUT/qcow2-$(basename "$1")"; fi
}

refused truncated-header plain "shorter than a qcow2 header"
refused bad-magic plain "bad magic"
refused version-4 plain "version 4 is not supported"
refused cluster-bits plain "invalid cluster_bits"
refused l1-past-eof plain "L1 table at offset"
refused l1-entry-past-eof plain "L1 table entry 0 points"
refused l1-entry-misaligned plain "not cluster-aligned"
refused unknown-incompat plain "unknown incompatible feature bit 20"
refused external-data-file plain "external data file"
refused huge-extension plain "longer than the header cluster"
read_fails l2-entry-past-eof plain "past the end of the file"
read_fails l2-entry-misaligned plain "misaligned"
read_fails compressed-garbage zlib "does not decompress"
read_fails compressed-garbage zstd "does not decompress"
read_fails truncated-data plain "past the end of the file"

# Encrypted images are refused, never read as ciphertext.
# The driver refuses by the header's crypt_method (offset 32: 1 = AES, 2 =
# LUKS).  qemu-img's own encrypted images need a PBKDF2 timing run that this
# kind of VM often cannot do ("Unable to get accurate CPU usage"), so the
# fixtures are qemu-img images with that field set, which is all it reads.
qemu-img create -q -f qcow2 "$tmp/enc-base.qcow2" 1M
for method in 1 2; do
  cp "$tmp/enc-base.qcow2" "$tmp/enc-$method.qcow2"
  printf "\\x00\\x00\\x00\\x0$method" |
    dd of="$tmp/enc-$method.qcow2" bs=1 seek=32 conv=notrunc status=none
  msg=$("$IMAGE_DUMP" --expect-load-error --table "0 2048 linear qcow2:$tmp/enc-$method.qcow2 0") ||
    fail "an encrypted image (crypt_method $method) loaded"
  grep -q "encrypted" <<<"$msg" || fail "encrypted ($method): '$msg'"
  echo "ok: crypt_method $method: $msg"
done
# (not kept as a seed: its LUKS header makes it 2 MiB)
echo PASS

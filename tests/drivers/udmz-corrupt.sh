#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Damaged udmz images: each refused with a message that names the problem,
# or (damage in a chunk) its reads fail with EIO while verify names the chunk.
# Never a crash.  UDM_CORPUS_OUT=DIR keeps the files as fuzz seeds.
source "$(dirname "$0")/lib.sh"
need python3

pattern "$tmp/data" 1
truncate -s 256k "$tmp/src.raw"
dd if="$tmp/data" of="$tmp/src.raw" bs=4k count=40 conv=notrunc status=none
printf '0 +\n0 4096 +\n4096 512 -\n4608 8192 +\n12800 1024 -\n13824 248320 +\n' > "$tmp/map"
"$UDM_IMAGE" convert --chunk-size 4096 --mapfile "$tmp/map" "$tmp/src.raw" "$tmp/good.udmz" >/dev/null
CORRUPT="python3 $DRIVERS_TEST_DIR/udmz-corrupt.py"
keep() {
  if [ -n "${UDM_CORPUS_OUT:-}" ]; then cp "$1" "$UDM_CORPUS_OUT/udmz-$(basename "$1")"; fi
}
survived() { [ "$1" -lt 128 ] || fail "$2 crashed (status $1)"; }
refused() { # refused KIND WORDS
  local img=$tmp/$1.udmz msg st=0
  $CORRUPT "$1" "$tmp/good.udmz" "$img"
  msg=$("$IMAGE_DUMP" --expect-load-error --table "0 512 linear udmz:$img 0") || st=$?
  survived $st "image-dump on $1"
  [ $st -eq 0 ] || fail "$1: the table loaded"
  grep -q -- "$2" <<<"$msg" || fail "$1: message '$msg' does not say '$2'"
  st=0; "$UDM_IMAGE" verify "udmz:$img" >/dev/null 2>&1 || st=$?
  survived $st "verify on $1"
  [ $st -eq 1 ] || fail "$1: verify status $st"
  echo "ok: $1: $msg"
  keep "$img"
}
read_fails() { # read_fails KIND WORDS
  local img=$tmp/$1.udmz msg st=0
  $CORRUPT "$1" "$tmp/good.udmz" "$img"
  "$IMAGE_DUMP" --bad "$tmp/bad" --table "0 512 linear udmz:$img?bad=zero 0" "$tmp/out" \
    >/dev/null || st=$?
  survived $st "image-dump on $1"
  [ $st -eq 0 ] || fail "$1: did not open"
  [ -s "$tmp/bad" ] || fail "$1: every read succeeded (bad=zero must not hide damage)"
  st=0; msg=$("$UDM_IMAGE" verify "udmz:$img" 2>&1) || st=$?
  survived $st "verify on $1"
  [ $st -eq 1 ] || fail "$1: verify status $st"
  grep -q -- "$2" <<<"$msg" || fail "$1: verify said '$msg'"
  echo "ok: $1: EIO on $(cat "$tmp/bad"); verify: $(echo "$msg" | head -1)"
  keep "$img"
}
keep "$tmp/good.udmz"
refused truncated "no udmz trailer"
refused truncated-header "too short for a udmz image"
refused bad-magic "bad magic"
refused header-crc "header checksum mismatch"
refused trailer-crc "trailer checksum mismatch"
refused index-crc "checksum mismatch in the chunk index"
refused chunk-past-eof "points past the end of the file"
refused chunk-kind "unknown kind"
refused index-past-eof "chunk index .* lies outside the file"
refused badmap-unsorted "unsorted, overlapping"
read_fails chunk-data "chunk 0 (bytes 0+4096): checksum mismatch"
read_fails undecodable-chunk "chunk 0 (bytes 0+4096): checksum mismatch or undecodable"
echo PASS

#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# udmz end to end: udm-image convert (raw + ddrescue mapfile -> udmz), info,
# verify, then a udm device over it returns the source's bytes, EIO exactly on
# the bad ranges (or zeros / a fill byte with bad=zero|fill:0xNN, counted as
# bad-block hits), and extents that say BAD there.
source "$(dirname "$0")/lib.sh"
need python3 cmp

pattern "$tmp/data" 2
truncate -s 10M "$tmp/src.raw"                       # holes make zero chunks
dd if="$tmp/data" of="$tmp/src.raw" bs=1M count=2 conv=notrunc status=none
dd if=/dev/urandom of="$tmp/src.raw" bs=4k seek=1000 count=100 conv=notrunc status=none
dd if="$tmp/data" of="$tmp/src.raw" bs=4k seek=2559 count=1 conv=notrunc status=none
# A mapfile as GNU ddrescue writes it: every status, hex and decimal numbers.
cat > "$tmp/map" <<'MAP'
# Mapfile. Created by GNU ddrescue version 1.27
# Command line: ddrescue /dev/sdz disk.img disk.map
# current_pos  current_status  current_pass
0x00A00000     +               1
#      pos        size  status
0x00000000  0x00010000  +
0x00010000  0x00000200  -
0x00010200  0x00100000  +
0x00110200  0x00001000  /
0x00111200  0x00001000  *
0x00112200  0x001EDE00  +
3145728  4096  ?
0x00301000  0x006FF000  +
MAP
# The bad ranges that mapfile names (everything not '+'), merged.
printf '65536 512\n1114624 8192\n3145728 4096\n' > "$tmp/expected-bad"

for cs in 4096 131072 1048576; do
  out=$tmp/img-$cs.udmz
  "$UDM_IMAGE" convert --mapfile "$tmp/map" --chunk-size $cs --meta case=unit-test \
    --logical-block-size 512 --physical-block-size 4096 "$tmp/src.raw" "$out" >/dev/null
  "$UDM_IMAGE" info "$out" > "$tmp/info"
  head -1 "$tmp/info" | grep -qx "Format: udmz" || fail "info: first line $(head -1 "$tmp/info")"
  for want in "Virtual size: 10485760" "Chunk size: $cs" "Physical block size: 4096" \
              "Bad ranges: 3" "Bad bytes: 12800" "Meta case: unit-test" "Meta source: $tmp/src.raw"; do
    grep -qx "$want" "$tmp/info" || fail "info lacks '$want': $(cat "$tmp/info")"
  done
  "$UDM_IMAGE" verify "$out" >/dev/null || fail "verify of a sound image"

  # bad=eio (default): every sector of the bad ranges fails, every other reads right.
  dump "udmz:$out" "$tmp/eio.raw" --bad "$tmp/bad" --extents "$tmp/ext" --threads 3 > "$tmp/hits" ||
    fail "dump udmz (chunk $cs)"
  cmp "$tmp/bad" "$tmp/expected-bad" || fail "EIO ranges $(cat "$tmp/bad") differ from the mapfile's"
  python3 - "$tmp/src.raw" "$tmp/eio.raw" "$tmp/expected-bad" "$tmp/ext" <<'PY' || fail "bytes or extents (chunk $cs)"
import sys
src, got = open(sys.argv[1], 'rb').read(), bytearray(open(sys.argv[2], 'rb').read())
bad = [tuple(map(int, l.split())) for l in open(sys.argv[3])]
want = bytearray(src)
for off, n in bad:
    want[off:off + n] = bytes(n)          # image-dump writes zeros where reads fail
assert got == want, "good data differs"
badext = [(o, n) for o, n, fl in (map(int, l.split()) for l in open(sys.argv[4])) if fl & 4]
assert badext == bad, ("BAD extents", badext, bad)
PY
  grep -q "^bad_block_hits [1-9]" "$tmp/hits" || fail "no bad-block hits counted: $(cat "$tmp/hits")"

  # bad=zero and bad=fill: the reads succeed, good bytes around bad ones included.
  dump "udmz:$out?bad=zero" "$tmp/zero.raw" --bad "$tmp/bad2" > "$tmp/hits" || fail "bad=zero"
  [ ! -s "$tmp/bad2" ] || fail "bad=zero still failed reads: $(cat "$tmp/bad2")"
  cmp "$tmp/zero.raw" "$tmp/eio.raw" || fail "bad=zero data"
  hits=$(awk '{print $2}' "$tmp/hits")
  [ "$hits" -ge 3 ] || fail "bad=zero counted $hits hits"
  dump "udmz:$out?bad=fill:0xab" "$tmp/fill.raw" > /dev/null || fail "bad=fill"
  python3 - "$tmp/src.raw" "$tmp/fill.raw" "$tmp/expected-bad" <<'PY' || fail "bad=fill:0xab data"
import sys
src, got = bytearray(open(sys.argv[1], 'rb').read()), open(sys.argv[2], 'rb').read()
for l in open(sys.argv[3]):
    off, n = map(int, l.split()); src[off:off + n] = b'\xab' * n
assert got == src
PY
  echo "ok: chunk size $cs: $(grep -E '^Stored bytes' "$tmp/info"), $hits hits with bad=zero"
done

# Reads of parts of chunks go through the chunk cache (16 MiB: 256 chunks of
# 64 KiB).  24 MiB of them, in 12 KiB pieces that straddle chunks, from three
# threads at once: the cache fills, evicts and reuses what it evicts.
pattern "$tmp/big.raw" 16
dd if=/dev/urandom of="$tmp/big.raw" bs=1M count=8 oflag=append conv=notrunc status=none
"$UDM_IMAGE" convert --chunk-size 65536 "$tmp/big.raw" "$tmp/big.udmz" >/dev/null
for threads in 1 3; do
  dump "udmz:$tmp/big.udmz" "$tmp/big.out" --piece 12288 --threads $threads >/dev/null ||
    fail "dump in 12 KiB pieces ($threads threads)"
  cmp "$tmp/big.raw" "$tmp/big.out" || fail "12 KiB pieces ($threads threads) differ"
done
echo "ok: partial-chunk reads through the cache, 384 chunks"

# Options: the core's bad= is checked, unknown driver options are refused.
msg=$("$IMAGE_DUMP" --expect-load-error --table "0 2048 linear udmz:$out?bad=maybe 0") ||
  fail "bad=maybe accepted"
grep -q "invalid bad-block policy" <<<"$msg" || fail "bad=maybe: $msg"
msg=$("$IMAGE_DUMP" --expect-load-error --table "0 2048 linear udmz:$out?colour=blue 0") ||
  fail "unknown option accepted"
grep -q "unknown option 'colour'" <<<"$msg" || fail "colour=blue: $msg"
msg=$("$IMAGE_DUMP" --expect-load-error --table "0 2048 linear vhdx:$out 0") || fail "vhdx accepted"
grep -q "unknown image format 'vhdx'.*known: raw, qcow2, udmz" <<<"$msg" || fail "vhdx: $msg"
echo "ok: option errors"

# The formats list; a size that is not a multiple of 512 converts, but
# cannot back a table.
"$UDM_IMAGE" formats | grep -q "^udmz " || fail "formats lacks udmz"
head -c 1000 "$tmp/data" > "$tmp/odd.raw"
"$UDM_IMAGE" convert "$tmp/odd.raw" "$tmp/odd.udmz" >/dev/null
msg=$("$UDM_IMAGE" table "udmz:$tmp/odd.udmz" 2>&1) && fail "odd size: a table was made"
grep -q "not a multiple of 512" <<<"$msg" || fail "odd size: $msg"
# Empty mapfile content and a malformed line are clear errors.
printf '# nothing\n' > "$tmp/empty.map"
msg=$("$UDM_IMAGE" convert --mapfile "$tmp/empty.map" "$tmp/src.raw" "$tmp/x.udmz" 2>&1) &&
  fail "empty mapfile accepted"
grep -q "no status line" <<<"$msg" || fail "empty mapfile: $msg"
printf '0 +\n0 10 +\n5 10 Q\n' > "$tmp/badline.map"
msg=$("$UDM_IMAGE" convert --mapfile "$tmp/badline.map" "$tmp/src.raw" "$tmp/x.udmz" 2>&1) &&
  fail "malformed mapfile accepted"
grep -q "badline.map:3: expected 'pos size status'" <<<"$msg" || fail "mapfile line: $msg"
[ ! -e "$tmp/x.udmz" ] || fail "a failed convert left an image"
echo PASS

#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The recovery story, end to end, with the real tools:
#  1. a udm device with `error` segments stands in for a failing disk;
#  2. it is exported over NBD (udm-nbd-serve) and shown to GNU ddrescue as a
#     file by nbdfuse (ddrescue reads paths, not NBD URIs);
#  3. ddrescue images it and writes its mapfile;
#  4. udm-image convert turns image + mapfile into udmz;
#  5. a udm device over the udmz returns the good data byte for byte, EIO
#     exactly on the ranges ddrescue marked bad, and with bad=zero, zeros
#     there with the hits counted.
source "$(dirname "$0")/lib.sh"
need ddrescue nbdfuse fusermount3 python3 cmp timeout
if [ -z "${UDM_NBD_SERVE:-}" ]; then
  [ "${CI:-}" = "true" ] && fail "udm-nbd-serve is not built"
  echo "SKIP: udm-nbd-serve (nbd/) is not built"; exit 77
fi
if [ ! -w /dev/fuse ]; then
  [ "${CI:-}" = "true" ] && fail "/dev/fuse is not usable"
  echo "SKIP: /dev/fuse is not usable here"; exit 77
fi

# The healthy contents, and the table of the failing disk: 32 MiB whose bad
# areas are error segments (4 KiB-aligned, as FUSE reads whole pages).
pattern "$tmp/healthy.raw" 32
cat > "$tmp/table" <<TABLE
0 2048 linear $tmp/healthy.raw 0
2048 16 error
2064 18416 linear $tmp/healthy.raw 2064
20480 128 error
20608 20352 linear $tmp/healthy.raw 20608
40960 8 error
40968 24568 linear $tmp/healthy.raw 40968
TABLE
printf '%s\n' "1048576 8192" "10485760 65536" "20971520 4096" > "$tmp/errors"

mkdir "$tmp/mnt"
cleanup_hooks+=("fusermount3 -u '$tmp/mnt' 2>/dev/null")
timeout --kill-after=5 240 "$UDM_NBD_SERVE" --socket "$tmp/nbd.sock" --readonly \
  --table failing="$(cat "$tmp/table")" --run "
  set -e
  nbdfuse -r -P '$tmp/fuse.pid' '$tmp/mnt/failing' \"\$uri\" &
  for i in \$(seq 100); do [ -s '$tmp/fuse.pid' ] && break; sleep 0.1; done
  [ -s '$tmp/fuse.pid' ] || { echo 'nbdfuse did not start' >&2; exit 1; }
  st=0
  ddrescue -b 512 -r 1 '$tmp/mnt/failing' '$tmp/rescued.img' '$tmp/rescued.map' \
    > '$tmp/ddrescue.log' 2>&1 || st=\$?
  fusermount3 -u '$tmp/mnt'
  wait
  exit \$st
" || { cat "$tmp/ddrescue.log" >&2 || true; fail "ddrescue over nbdfuse over udm-nbd-serve"; }
echo "ok: ddrescue made its mapfile:"
grep -v '^#' "$tmp/rescued.map"

# The bad ranges in ddrescue's own words: every block not '+'.
python3 - "$tmp/rescued.map" > "$tmp/ddrescue-bad" <<'PY'
import sys
lines = [l.split() for l in open(sys.argv[1]) if l.strip() and not l.startswith('#')]
out = []
for pos, size, st in lines[1:]:
    pos, size = int(pos, 0), int(size, 0)
    if st != '+':
        if out and out[-1][0] + out[-1][1] == pos: out[-1][1] += size
        else: out.append([pos, size])
for p, s in out: print(p, s)
PY
cmp "$tmp/ddrescue-bad" "$tmp/errors" ||
  fail "ddrescue's bad ranges $(tr '\n' ' ' < "$tmp/ddrescue-bad") are not the error segments"

"$UDM_IMAGE" convert --mapfile "$tmp/rescued.map" "$tmp/rescued.img" "$tmp/rescued.udmz"
"$UDM_IMAGE" info "$tmp/rescued.udmz" | grep -E "^(Format|Bad ranges|Bad bytes)"
"$UDM_IMAGE" verify "$tmp/rescued.udmz" >/dev/null || fail "verify"

dump "udmz:$tmp/rescued.udmz" "$tmp/read.raw" --bad "$tmp/eio" --threads 2 >/dev/null ||
  fail "reading the udmz"
cmp "$tmp/eio" "$tmp/ddrescue-bad" ||
  fail "EIO ranges $(tr '\n' ' ' < "$tmp/eio") are not ddrescue's $(tr '\n' ' ' < "$tmp/ddrescue-bad")"
python3 - "$tmp/healthy.raw" "$tmp/read.raw" "$tmp/ddrescue-bad" <<'PY' || fail "good data differs"
import sys
want, got = bytearray(open(sys.argv[1], 'rb').read()), open(sys.argv[2], 'rb').read()
for l in open(sys.argv[3]):
    off, n = map(int, l.split()); want[off:off + n] = bytes(n)
assert got == want
PY
echo "ok: good data byte for byte, EIO exactly on ddrescue's bad ranges"

dump "udmz:$tmp/rescued.udmz?bad=zero" "$tmp/zero.raw" --bad "$tmp/eio2" > "$tmp/hits" ||
  fail "bad=zero"
[ ! -s "$tmp/eio2" ] || fail "bad=zero still fails reads"
cmp "$tmp/zero.raw" "$tmp/read.raw" || fail "bad=zero data"
grep -q "^bad_block_hits [1-9]" "$tmp/hits" || fail "no hits counted"
echo "ok: bad=zero reads zeros there ($(cat "$tmp/hits"))"
echo PASS

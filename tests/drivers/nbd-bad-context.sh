#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# NBD block status shows where an image's bad blocks are: a client that
# negotiates udm's "udm:bad" metadata context (next to base:allocation) gets
# bit 0 set exactly on the ranges the ddrescue mapfile marked bad.
source "$(dirname "$0")/lib.sh"
need python3
if [ -z "${UDM_NBD_SERVE:-}" ]; then
  [ "${CI:-}" = "true" ] && fail "udm-nbd-serve is not built"
  echo "SKIP: udm-nbd-serve (nbd/) is not built"; exit 77
fi
PY=
for p in /usr/bin/python3 python3; do
  if (cd / && "$p" -c 'import nbd' 2>/dev/null); then PY=$p; break; fi
done
if [ -z "$PY" ]; then
  [ "${CI:-}" = "true" ] && fail "python3-libnbd is missing"
  echo "SKIP: python3-libnbd is not installed"; exit 77
fi

truncate -s 4M "$tmp/src.raw"
dd if=/dev/urandom of="$tmp/src.raw" bs=1M count=1 conv=notrunc status=none
printf '0 +\n0 0x10000 +\n0x10000 0x3000 -\n0x13000 0x1ED000 +\n0x200000 0x1000 -\n0x201000 0x1FF000 +\n' \
  > "$tmp/map"
"$UDM_IMAGE" convert --chunk-size 65536 --mapfile "$tmp/map" "$tmp/src.raw" "$tmp/img.udmz" \
  >/dev/null || fail "convert"

cat > "$tmp/check.py" <<'PY'
import nbd, os, sys
h = nbd.NBD()
h.add_meta_context("base:allocation")
h.add_meta_context("udm:bad")
h.connect_uri(os.environ["uri"])
if not h.can_meta_context("udm:bad") or not h.can_meta_context("base:allocation"):
    sys.exit("the server did not agree to both contexts")
size = h.get_size()
seen = {"base:allocation": [], "udm:bad": []}
off = 0
while off < size:
    got = {}
    def cb(ctx, start, entries, err):
        got[ctx] = (start, entries)
        return 0
    h.block_status(size - off, off, cb)
    if set(got) != set(seen):
        sys.exit("block status answered for %r" % sorted(got))
    step = min(sum(e[0::2]) for _, e in got.values())
    for ctx, (start, entries) in got.items():
        pos = start
        for length, flags in zip(entries[0::2], entries[1::2]):
            seen[ctx].append((pos, length, flags))
            pos += length
    off += step
bad = []
for pos, length, flags in seen["udm:bad"]:
    if flags & 1:
        if bad and bad[-1][0] + bad[-1][1] == pos:
            bad[-1] = (bad[-1][0], bad[-1][1] + length)
        else:
            bad.append((pos, length))
bad = sorted(set(bad))
want = [(0x10000, 0x3000), (0x200000, 0x1000)]
if bad != want:
    sys.exit("udm:bad says %r, the mapfile %r" % (bad, want))
# base:allocation still describes data and holes, and never calls bad ranges zero.
for pos, length, flags in seen["base:allocation"]:
    for b0, bl in want:
        if pos < b0 + bl and b0 < pos + length and flags & 2:
            sys.exit("base:allocation calls bad range %#x zero" % b0)
# A client that asks only for base:allocation still gets one context.
h2 = nbd.NBD()
h2.add_meta_context("base:allocation")
h2.connect_uri(os.environ["uri"])
ctxs = []
h2.block_status(65536, 0, lambda c, s, e, err: ctxs.append(c) or 0)
if ctxs != ["base:allocation"]:
    sys.exit("a base:allocation-only client got %r" % ctxs)
# LIST shows both.
h3 = nbd.NBD()
h3.set_opt_mode(True)
h3.connect_uri(os.environ["uri"])
listed = []
h3.opt_list_meta_context(lambda name: listed.append(name) or 0)
h3.opt_abort()
if sorted(listed) != ["base:allocation", "udm:bad"]:
    sys.exit("LIST_META_CONTEXT gave %r" % listed)
print("udm:bad ranges", [(hex(a), hex(b)) for a, b in bad])
PY
"$UDM_NBD_SERVE" --socket "$tmp/sock" --table "bad=0 8192 linear udmz:$tmp/img.udmz 0" \
  --run "$PY $tmp/check.py" || fail "block status with udm:bad"
echo PASS

# SPDX-License-Identifier: LGPL-2.1-or-later
# Stacking through NBD: a linear device over a striped device over three
# files.  Data written through the top export must land in the three files
# exactly where a layout computed here, independently of udm, says.
source "$(dirname "$0")/lib.sh"
require nbdcopy truncate cmp
PY=python3
command -v "$PY" >/dev/null || require python3
scratch

for i in 0 1 2; do truncate -s 8M "$WORK/f$i"; done
head -c 20M /dev/urandom > "$WORK/data"
# striped: 3 stripes, 128-sector (64 KiB) chunks, each file from sector 0:
#   24 MiB = 49152 sectors (3 files x 16384 sectors).
# top: 20 MiB linear at sector 2048 (1 MiB) of the striped device.
serve --table st="0 49152 striped 3 128 $WORK/f0 0 $WORK/f1 0 $WORK/f2 0" \
      --table top="0 40960 linear udm:st 2048" --run '
  set -e
  top="nbd+unix:///top?socket=$sock"
  nbdcopy "$WORK/data" "$top"
  nbdcopy "$top" "$WORK/top.out"
  nbdcopy "nbd+unix:///st?socket=$sock" "$WORK/st.out"
' || fail "a client failed"

cmp "$WORK/data" "$WORK/top.out" || fail "top export does not read back"

"$PY" - "$WORK" <<'PY' || fail "layout check"
import sys
w = sys.argv[1]
chunk, stripes, top_start = 64 * 1024, 3, 1024 * 1024
data = open(w + "/data", "rb").read()
files = [bytearray(8 << 20) for _ in range(stripes)]
striped = bytearray(24 << 20)
for pos in range(0, len(data), chunk):          # top offsets, chunk-aligned here
    y = top_start + pos                         # offset in the striped device
    n = y // chunk
    f, off = n % stripes, (n // stripes) * chunk + y % chunk
    piece = data[pos:pos + chunk]
    files[f][off:off + len(piece)] = piece
    striped[y:y + len(piece)] = piece
for i in range(stripes):
    if open("%s/f%d" % (w, i), "rb").read() != bytes(files[i]):
        sys.exit("file f%d differs from the computed layout" % i)
if open(w + "/st.out", "rb").read() != bytes(striped):
    sys.exit("striped export differs from the computed layout")
PY
echo PASS

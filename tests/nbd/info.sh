# SPDX-License-Identifier: LGPL-2.1-or-later
# nbdinfo sees the exports as udm made them: size, the export list, and block
# status that shows the holes of a sparse file and the zero target as holes.
source "$(dirname "$0")/lib.sh"
require nbdinfo truncate dd awk
scratch

img=$WORK/sparse.img
truncate -s 64M "$img"
# Data at 1 MiB (4 KiB) and at 32 MiB (64 KiB); the rest stays a hole.
head -c 4096 /dev/urandom | dd of="$img" bs=4096 seek=256 conv=notrunc status=none
head -c 65536 /dev/urandom | dd of="$img" bs=65536 seek=512 conv=notrunc status=none

serve --table disk="0 $(sectors "$img") linear $img 0" \
      --table nothing="0 2048 zero" \
      --run '
  set -e
  nbdinfo --size "$uri" > "$WORK/size"
  nbdinfo --size "nbd+unix:///nothing?socket=$sock" > "$WORK/zsize"
  nbdinfo --list "nbd+unix:///?socket=$sock" > "$WORK/list"
  nbdinfo --map "$uri" > "$WORK/map"
  nbdinfo --map "nbd+unix:///nothing?socket=$sock" > "$WORK/zmap"
' || fail "a client failed"

[ "$(cat "$WORK/size")" = 67108864 ] || fail "size of disk: $(cat "$WORK/size")"
[ "$(cat "$WORK/zsize")" = 1048576 ] || fail "size of nothing: $(cat "$WORK/zsize")"
grep -q '^export="disk":' "$WORK/list" || fail "disk missing from the list"
grep -q '^export="nothing":' "$WORK/list" || fail "nothing missing from the list"
grep -q 'block_size_maximum: 33554432' "$WORK/list" || fail "no block size info"

# tmpfs and ext4 report holes at page granularity, so the layout is exact.
cat > "$WORK/map.expected" <<MAP
0 1048576 3
1048576 4096 0
1052672 32501760 3
33554432 65536 0
33619968 33488896 3
MAP
awk '{print $1, $2, $3}' "$WORK/map" > "$WORK/map.got"
diff -u "$WORK/map.expected" "$WORK/map.got" || fail "block status of the sparse file"

echo "0 1048576 3" > "$WORK/zmap.expected"
awk '{print $1, $2, $3}' "$WORK/zmap" > "$WORK/zmap.got"
diff -u "$WORK/zmap.expected" "$WORK/zmap.got" || fail "block status of the zero target"
echo PASS

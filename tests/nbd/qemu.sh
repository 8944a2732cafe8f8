# SPDX-License-Identifier: LGPL-2.1-or-later
# qemu's NBD client: qemu-img info/convert/compare and qemu-io pattern
# writes verified by pattern reads.
source "$(dirname "$0")/lib.sh"
require qemu-img qemu-io truncate cmp
scratch

head -c 16M /dev/urandom > "$WORK/image.raw"
truncate -s 32M "$WORK/backing"
serve --table disk="0 65536 linear $WORK/backing 0" --run '
  set -e
  qemu-img info --output=json "$uri" > "$WORK/info.json"
  qemu-img convert -n -f raw -O raw "$WORK/image.raw" "$uri"
  # The export is 32M, the image 16M: compare checks the rest reads as zeros.
  qemu-img compare -f raw -F raw "$WORK/image.raw" "$uri"
  qemu-io -f raw "$uri" \
    -c "write -P 0xab 20M 1M" -c "read -P 0xab 20M 1M" \
    -c "write -P 0x5c 24M 4k" -c "read -P 0x5c 24M 4k" \
    -c "write -z 28M 2M" -c "read -P 0 28M 2M" \
    -c "write -P 0x11 30M 512" -c "read -P 0x11 30M 512" \
    -c "read -P 0 31M 1M" -c "flush" > "$WORK/qemu-io.log"
  cat "$WORK/qemu-io.log"
  qemu-img convert -f raw -O raw "$uri" "$WORK/out.raw"
' || fail "a qemu client failed"

grep -q '"virtual-size": 33554432' "$WORK/info.json" || fail "qemu-img info: $(cat "$WORK/info.json")"
if grep -q "Pattern verification failed" "$WORK/qemu-io.log"; then
  cat "$WORK/qemu-io.log" >&2
  fail "qemu-io pattern verification"
fi
cmp -n 16777216 "$WORK/image.raw" "$WORK/out.raw" || fail "converted image differs"
cmp "$WORK/backing" "$WORK/out.raw" || fail "export and backing file differ"
# The patterns landed where qemu-io put them.
cmp -n 1048576 <(head -c 1048576 /dev/zero | tr '\0' '\253') \
    <(dd if="$WORK/backing" bs=1M skip=20 count=1 status=none) || fail "0xab at 20M"
echo PASS

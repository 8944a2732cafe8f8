# SPDX-License-Identifier: LGPL-2.1-or-later
# Discard on the block device (blkdiscard, and fstrim of a mounted ext4)
# deallocates the sparse backing files, and the discarded range reads as
# zeros through the block device and the FUSE file.
. "$(dirname "$0")/functions.sh"
requires_blockdev
requires blkdiscard fstrim mkfs.ext4 cmp

check_discard() { # TABLE BACKING-FILES...: blkdiscard half of what was written
  local table=$1
  shift
  inner <<EOS
max=\$(cat /sys/block/\$(basename \$dev)/queue/discard_max_bytes)
[ "\$max" -gt 0 ] || fail "\$dev does not advertise discard"
dd if=/dev/urandom of="\$dev" bs=1M count=96 oflag=direct status=none
before=\$(allocated $*)
blkdiscard -o 0 -l 48M "\$dev"
after=\$(allocated $*)
echo "allocated: \$before before, \$after after blkdiscard of 48 MiB"
[ \$((before - after)) -ge \$((40 << 20)) ] || fail "blkdiscard freed only \$((before - after)) bytes"
cmp -n \$((48 << 20)) "\$dev" /dev/zero || fail "discarded range of \$dev is not zeros"
cmp -n \$((48 << 20)) "\$file" /dev/zero || fail "discarded range of \$file is not zeros"
EOS
  serve --table "disk=$table" --attach disk --run "bash $tmp/inner.sh"
}

sparse "$tmp/d0" 256M
check_discard "0 $((256 * 2048)) linear $tmp/d0 0" "$tmp/d0"
for i in 1 2 3; do sparse "$tmp/d$i" 64M; done
check_discard "0 $((3 * 64 * 2048)) striped 3 128 $tmp/d1 0 $tmp/d2 0 $tmp/d3 0" \
  "$tmp/d1" "$tmp/d2" "$tmp/d3"

# fstrim: files written then deleted on ext4 give their blocks back.
sparse "$tmp/d0" 256M
mkdir -p "$tmp/mnt"
inner <<EOS
mkfs.ext4 -q -F -E nodiscard "\$dev"
mount "\$dev" "$tmp/mnt"
head -c 96M /dev/urandom >"$tmp/mnt/junk"
sync
before=\$(allocated "$tmp/d0")
rm "$tmp/mnt/junk"
sync
fstrim -v "$tmp/mnt"
after=\$(allocated "$tmp/d0")
echo "allocated: \$before before, \$after after fstrim"
[ \$((before - after)) -ge \$((80 << 20)) ] || fail "fstrim freed only \$((before - after)) bytes"
umount "$tmp/mnt"
e2fsck -fn "\$dev"
EOS
serve --table "disk=0 $((256 * 2048)) linear $tmp/d0 0" --attach disk --run "bash $tmp/inner.sh"
echo PASS

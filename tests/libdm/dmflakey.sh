#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A filesystem crash test driven the way fstests' common/dmflakey drives
# dmsetup (Debian's, on udm's libdevmapper): a flakey device over a file,
# mkfs and mount, write and fsync, "dmsetup suspend --nolockfs", load the
# drop_writes table, resume, write more, unmount, load the plain table
# back, mount: everything fsynced before the switch is there, what came
# after is not, and fsck finds the filesystem clean.
. "$(dirname "$0")/lib.sh"
set -o pipefail
need dmsetup
need mkfs.ext4
need e2fsck
need blockdev
need_blockdev
start_udmd

sparse "$WORK/scratch" 256M
size=$((256 * 2048))
FLAKEY_TABLE="0 $size flakey $WORK/scratch 0 180 0"
FLAKEY_TABLE_DROP="0 $size flakey $WORK/scratch 0 0 180 1 drop_writes"
dev=$DM_DEV_DIR/mapper/flakey-test

# common/dmflakey's _load_flakey_table
load_flakey_table() {
  dm suspend --nolockfs flakey-test || fail "suspend --nolockfs"
  dm load flakey-test --table "$1" || fail "load $1"
  dm resume flakey-test || fail "resume"
}

dm create flakey-test --table "$FLAKEY_TABLE" || fail "create"
timeout 60 mkfs.ext4 -q -F "$dev" || fail "mkfs.ext4"
mkdir "$WORK/mnt"
timeout 30 mount "$dev" "$WORK/mnt" || fail "mount"
for i in 1 2 3; do
  head -c $((i * 100000)) /dev/urandom >"$WORK/src$i"
  dd if="$WORK/src$i" of="$WORK/mnt/kept$i" bs=64k conv=fsync status=none || fail "write kept$i"
done
mkdir "$WORK/mnt/dir"
sync -f "$WORK/mnt" # the directory too

load_flakey_table "$FLAKEY_TABLE_DROP"
grep -q "drop_writes" <<<"$(dm table flakey-test)" || fail "drop_writes not loaded: $(dm table flakey-test)"
head -c 300000 /dev/urandom >"$WORK/mnt/lost" || fail "write after the switch"
dd if="$WORK/src1" of="$WORK/mnt/dir/lost2" conv=fsync status=none || fail "fsync after the switch"
timeout 30 umount "$WORK/mnt" || fail "umount"

load_flakey_table "$FLAKEY_TABLE"
# The block device's page cache dies with its last close, at umount; a
# passing open of the device by another program (tests run in parallel)
# can keep it, and its pages (the dropped writes) would then be read back
# as if they were on the disk.  Drop it, as that last close would have.
blockdev --flushbufs "$dev" || fail "blockdev --flushbufs"
grep -q "^0 $size flakey $WORK/scratch 0 180 0" <<<"$(dm table flakey-test)" ||
  fail "the plain table is not back: $(dm table flakey-test)"
timeout 30 mount "$dev" "$WORK/mnt" || fail "mount after the crash"
for i in 1 2 3; do
  cmp "$WORK/src$i" "$WORK/mnt/kept$i" || fail "kept$i, fsynced before the switch, differs"
done
[ -d "$WORK/mnt/dir" ] || fail "dir, synced before the switch, is gone"
[ ! -e "$WORK/mnt/lost" ] && [ ! -e "$WORK/mnt/dir/lost2" ] || { ls -lR "$WORK/mnt" >&2; cmp "$WORK/src1" "$WORK/mnt/dir/lost2" >&2; }; [ ! -e "$WORK/mnt/lost" ] && [ ! -e "$WORK/mnt/dir/lost2" ] ||
  fail "writes after the switch to drop_writes reached the disk"
timeout 30 umount "$WORK/mnt" || fail "umount"
timeout 60 e2fsck -fn "$dev" >"$WORK/fsck" 2>&1 || fail "e2fsck: $(cat "$WORK/fsck")"
dm remove flakey-test || fail "remove"
[ -z "$(loops_under_work)" ] || fail "loop devices left: $(loops_under_work)"
echo ok

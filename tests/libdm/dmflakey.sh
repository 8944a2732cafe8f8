#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A filesystem crash test driven the way fstests' common/dmflakey drives
# dmsetup (Debian's, on udm's libdevmapper): a flakey device over a file,
# mkfs and mount, write and fsync, "dmsetup suspend --nolockfs", load the
# drop_writes table, resume, write more, unmount, load the plain table
# back, mount: everything fsynced before the switch is there, what came
# after is not, and fsck finds the filesystem clean.
PRIVATE_MOUNTS=1 # see tests/cli/lib.sh and wait_fs_gone
. "$(dirname "$0")/lib.sh"
set -o pipefail
need dmsetup
need mkfs.ext4
need e2fsck
need /usr/bin/python3
need_blockdev
start_udmd

sparse "$WORK/scratch" 256M
size=$((256 * 2048))
FLAKEY_TABLE="0 $size flakey $WORK/scratch 0 180 0"
FLAKEY_TABLE_DROP="0 $size flakey $WORK/scratch 0 0 180 1 drop_writes"
dev=$DM_DEV_DIR/mapper/flakey-test

# umount(8) can return with the filesystem still alive: a copy of its mount
# in another mount namespace, made while it was mounted, keeps the
# superblock with its unwritten changes.  The remount then takes that same
# live superblock (no "mounted filesystem" line in the kernel log, no
# journal recovery) with the files written under drop_writes in its memory,
# and its final writes go through the plain table: seen while another
# test ran "ip netns exec", and made at will with "unshare -m sleep 2" in a
# loop beside this test.  Our own namespace (PRIVATE_MOUNTS) keeps
# others from copying the mount; this checks it.  The filesystem is gone when the device
# can be opened exclusively (the kernel claims it for a mounted filesystem).
wait_fs_gone() {
  local i
  for i in $(seq 300); do
    /usr/bin/python3 -c 'import os, sys; os.close(os.open(sys.argv[1], os.O_RDONLY | os.O_EXCL))' \
      "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  fail "the filesystem on $1 still holds it 30 s after umount: $(grep -l "^[^ ]* [^ ]* $(devno "$1") " /proc/[0-9]*/mountinfo 2>/dev/null | head -5)"
}

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
# The mounted filesystem holds the device open, as the kernel counts it.
grep -qx "Open count:        1" <<<"$(dm info flakey-test)" ||
  fail "open count of the mounted device: $(dm info flakey-test)"
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
wait_fs_gone "$dev" # its last writes go to the drop_writes table

load_flakey_table "$FLAKEY_TABLE"
grep -q "^0 $size flakey $WORK/scratch 0 180 0" <<<"$(dm table flakey-test)" ||
  fail "the plain table is not back: $(dm table flakey-test)"
timeout 30 mount "$dev" "$WORK/mnt" || fail "mount after the crash"
for i in 1 2 3; do
  cmp "$WORK/src$i" "$WORK/mnt/kept$i" || fail "kept$i, fsynced before the switch, differs"
done
[ -d "$WORK/mnt/dir" ] || fail "dir, synced before the switch, is gone"
[ ! -e "$WORK/mnt/lost" ] && [ ! -e "$WORK/mnt/dir/lost2" ] ||
  fail "writes after the switch to drop_writes reached the disk"
timeout 30 umount "$WORK/mnt" || fail "umount"
wait_fs_gone "$dev"
grep -qx "Open count:        0" <<<"$(dm info flakey-test)" ||
  fail "open count after umount: $(dm info flakey-test)"
timeout 60 e2fsck -fn "$dev" >"$WORK/fsck" 2>&1 || fail "e2fsck: $(cat "$WORK/fsck")"
dm remove flakey-test || fail "remove"
[ -z "$(loops_under_work)" ] || fail "loop devices left: $(loops_under_work)"
echo ok

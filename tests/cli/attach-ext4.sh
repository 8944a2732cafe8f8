# SPDX-License-Identifier: LGPL-2.1-or-later
# udm create --attach: ext4 on the block device of a linear device survives
# umount, e2fsck and remount; info and RUNTIME/block/NAME show the
# attachment; remove refuses an attached device, remove -f detaches it.
. "$(dirname "$0")/lib.sh"
need_blockdev
need mkfs.ext4
need e2fsck
start_udmd
sparse "$WORK/a.img" 128M
dev=$(udm create data --attach --table "0 $((128 * 2048)) linear $WORK/a.img 0") ||
  fail "create --attach"
case "$dev" in /dev/*) ;; *) fail "create --attach printed '$dev', not a block device";; esac
[ -b "$dev" ] || fail "$dev is not a block device"
expect_eq "block device size" $((128 << 20)) "$(blockdev --getsize64 "$dev")"
expect_eq "logical block size" 512 "$(blockdev --getss "$dev")"
expect_eq "symlink" "$dev" "$(readlink "$UDM_RUNTIME_DIR/block/data")"
udm info data | grep -qx "Block device:      $dev" || fail "info lacks the block device: $(udm info data)"
udm info --json data | grep -qF "\"block_device\": \"$dev\"" || fail "info --json lacks the block device"
expect_fail "already attached at $dev" udm attach data

timeout 60 mkfs.ext4 -q -F "$dev" || fail "mkfs.ext4"
mkdir "$WORK/mnt"
timeout 30 mount "$dev" "$WORK/mnt" || fail "mount"
make_tree "$WORK/mnt" "$WORK/sums" ext4
timeout 30 umount "$WORK/mnt" || fail "umount"
timeout 60 e2fsck -fn "$dev" >"$WORK/fsck" 2>&1 || fail "e2fsck: $(cat "$WORK/fsck")"
timeout 30 mount "$dev" "$WORK/mnt" || fail "remount"
check_tree "$WORK/mnt" "$WORK/sums"

# Mounted: remove refuses; detach says the device is busy and leaves it
# to go when its last user closes it, as losetup -d does.
expect_fail "remove data: the device is attached at $dev (udm detach data first, or remove -f)" \
  udm remove data
expect_fail "$dev is in use" udm detach data
check_tree "$WORK/mnt" "$WORK/sums"
timeout 30 umount "$WORK/mnt" || fail "umount"
for i in $(seq 300); do loop_bound "$dev" || break; sleep 0.1; done # autoclear drains through FUSE: slow on a loaded machine
loop_bound "$dev" && fail "$dev stayed bound after its last user left"
udm info data | grep -q "^Block device" && fail "info still shows a block device"
[ -e "$UDM_RUNTIME_DIR/block/data" ] && fail "the symlink outlived the attachment"

# Attached again: the same bytes; an idle device detaches at once.
dev=$(udm attach data) || fail "attach again"
timeout 30 mount -o ro "$dev" "$WORK/mnt" || fail "mount after attaching again"
check_tree "$WORK/mnt" "$WORK/sums"
timeout 30 umount "$WORK/mnt" || fail "umount"
udm detach data || fail "detach"
loop_bound "$dev" && fail "$dev is still bound after detach"
[ -e "$UDM_RUNTIME_DIR/block/data" ] && fail "detach left the symlink"
expect_fail "detach data: the device is not attached" udm detach data

dev=$(udm attach data) || fail "attach a third time"
udm remove -f data || fail "remove -f of an attached device"
loop_bound "$dev" && fail "remove -f left $dev bound"
[ -e "$UDM_RUNTIME_DIR/block/data" ] && fail "remove -f left the symlink"
expect_fail "device data does not exist" udm info data
expect_fail "device nosuch does not exist" udm attach nosuch

# A reload that resizes an attached device resizes its block device.
udm create grow --table "0 2048 linear $WORK/a.img 0" || fail "create grow"
dev=$(udm attach grow) || fail "attach grow"
expect_eq "size before" $((1 << 20)) "$(blockdev --getsize64 "$dev")"
udm load grow --table "0 8192 linear $WORK/a.img 0" && udm resume grow || fail "reload grow"
expect_eq "size after growing" $((4 << 20)) "$(blockdev --getsize64 "$dev")"
udm remove -f grow || fail "remove -f grow"

# A read-only device gives a read-only block device.
udm create ro --readonly --table "0 2048 linear $WORK/a.img 0" || fail "create ro"
dev=$(udm attach ro) || fail "attach ro"
expect_eq "read-only block device" 1 "$(blockdev --getro "$dev")"
dd if=/dev/zero of="$dev" bs=512 count=1 oflag=direct status=none 2>/dev/null &&
  fail "a write to the read-only $dev succeeded"
udm detach ro || fail "detach ro"
udm remove ro || fail "remove ro after detach"
echo ok

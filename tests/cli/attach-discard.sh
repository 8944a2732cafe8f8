# SPDX-License-Identifier: LGPL-2.1-or-later
# Discard from an attached block device (blkdiscard; fstrim of a mounted
# ext4) punches holes in the sparse backing files of linear and striped
# devices, and the range reads back as zeros.
. "$(dirname "$0")/lib.sh"
need_blockdev
need blkdiscard
need fstrim
need mkfs.ext4
start_udmd

# blkdiscard_frees NAME TABLE FILES...: write 96 MiB, discard the first 48.
blkdiscard_frees() {
  local name=$1 table=$2 dev before after
  shift 2
  dev=$(udm create "$name" --attach --table "$table") || fail "create --attach $name"
  timeout 60 dd if=/dev/urandom of="$dev" bs=1M count=96 oflag=direct status=none ||
    fail "write $dev"
  before=$(allocated "$@")
  timeout 60 blkdiscard -o 0 -l 48M "$dev" || fail "blkdiscard $dev"
  after=$(allocated "$@")
  [ $((before - after)) -ge $((40 << 20)) ] ||
    fail "$name: blkdiscard freed only $((before - after)) bytes ($before before, $after after)"
  timeout 60 cmp -n $((48 << 20)) "$dev" /dev/zero || fail "$name: the discarded range is not zeros"
  cmp -n $((48 << 20)) "$UDM_RUNTIME_DIR/dev/$name" /dev/zero ||
    fail "$name: the discarded range of the FUSE file is not zeros"
  udm remove -f "$name" || fail "remove -f $name"
  loop_bound "$dev" && fail "$dev still bound"
  return 0
}

sparse "$WORK/l" 128M
blkdiscard_frees lin "0 $((128 * 2048)) linear $WORK/l 0" "$WORK/l"
for i in 1 2 3; do sparse "$WORK/s$i" 48M; done
blkdiscard_frees str "0 $((3 * 48 * 2048)) striped 3 128 $WORK/s1 0 $WORK/s2 0 $WORK/s3 0" \
  "$WORK/s1" "$WORK/s2" "$WORK/s3"

# fstrim: what deleted files held goes back to the backing file.
sparse "$WORK/e" 256M
dev=$(udm create ext --attach --table "0 $((256 * 2048)) linear $WORK/e 0") || fail "create ext"
timeout 60 mkfs.ext4 -q -F -E nodiscard "$dev" || fail "mkfs.ext4"
mkdir "$WORK/mnt"
timeout 30 mount "$dev" "$WORK/mnt" || fail "mount"
timeout 60 dd if=/dev/urandom of="$WORK/mnt/junk" bs=1M count=96 status=none || fail "write junk"
sync
before=$(allocated "$WORK/e")
rm "$WORK/mnt/junk"
sync
timeout 60 fstrim "$WORK/mnt" || fail "fstrim"
after=$(allocated "$WORK/e")
[ $((before - after)) -ge $((80 << 20)) ] ||
  fail "fstrim freed only $((before - after)) bytes ($before before, $after after)"
timeout 30 umount "$WORK/mnt" || fail "umount"
timeout 60 e2fsck -fn "$dev" >"$WORK/fsck" 2>&1 || fail "e2fsck: $(cat "$WORK/fsck")"
echo ok

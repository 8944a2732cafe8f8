# SPDX-License-Identifier: LGPL-2.1-or-later
# What dm-flakey is for (xfstests' flakey tests), on an attached device:
# ext4 on flakey, files written and fsynced; the table switched to
# drop_writes (always down: writes succeed but are dropped, reads pass);
# more files written, some fsynced; unmount (its writes dropped too): a
# power cut.  Back on a passing table the filesystem is consistent and
# every file fsynced before the switch is intact.
PRIVATE_MOUNTS=1 # no other mount namespace may keep the filesystem alive after umount
. "$(dirname "$0")/lib.sh"
need_blockdev
need mkfs.ext4
need e2fsck
start_udmd
sparse "$WORK/disk" 256M
size=$((256 * 2048))
dev=$(udm create fl --attach --table "0 $size flakey $WORK/disk 0 86400 1") ||
  fail "create --attach flakey"
timeout 60 mkfs.ext4 -q -F "$dev" || fail "mkfs.ext4"
mkdir "$WORK/mnt"
timeout 30 mount "$dev" "$WORK/mnt" || fail "mount"

# Before the switch: every file and its directory fsynced.
mkdir "$WORK/mnt/kept"
for i in $(seq 1 12); do
  make_file "$WORK/mnt/kept/f$i" $((i * 61)) "kept.$i"
  timeout 30 sync "$WORK/mnt/kept/f$i" || fail "fsync kept/f$i"
done
timeout 30 sync "$WORK/mnt/kept" "$WORK/mnt" || fail "fsync the directories"
(cd "$WORK/mnt" && sha256sum kept/*) >"$WORK/kept.sums"

udm load fl --table "0 $size flakey $WORK/disk 0 0 1 1 drop_writes" || fail "load drop_writes"
udm resume fl || fail "resume drop_writes"
udm table fl | grep -q "flakey $WORK/disk 0 0 1 1 drop_writes" || fail "table: $(udm table fl)"

# While down: writes "succeed", fsync too, and nothing reaches the disk.
before=$(sha256sum <"$WORK/disk")
mkdir "$WORK/mnt/lost"
for i in $(seq 1 8); do make_file "$WORK/mnt/lost/g$i" 200 "lost.$i"; done
for i in 1 2 3; do
  make_file "$WORK/mnt/lost/s$i" 100 "synced.$i"
  timeout 30 sync "$WORK/mnt/lost/s$i" || fail "an fsync while writes are dropped failed"
done
make_file "$WORK/mnt/kept/f1" 50 overwritten # an fsynced file, changed after the switch
timeout 30 sync "$WORK/mnt/kept/f1" || fail "fsync of kept/f1 while dropped"
timeout 30 umount "$WORK/mnt" || fail "umount while writes are dropped"
timeout 30 blockdev --flushbufs "$dev" # nothing the kernel cached may hide the disk
expect_eq "the backing file after dropped writes" "$before" "$(sha256sum <"$WORK/disk")"

# Back up: a plain linear table over the same file.
udm load fl --table "0 $size linear $WORK/disk 0" || fail "load linear"
udm resume fl || fail "resume linear"
# The journal holds what was committed: e2fsck replays it (on a copy, so
# that the mount below sees the crash too) and finds nothing to repair but
# the superblock's free counts, which ext4 only keeps up to date on a clean
# unmount (mount recomputes them from the group descriptors).
cp --sparse=always "$WORK/disk" "$WORK/copy"
timeout 60 e2fsck -fy "$WORK/copy" >"$WORK/fsck" 2>&1
rc=$?
[ $rc -le 1 ] || fail "e2fsck -fy after the crash exited $rc: $(cat "$WORK/fsck")"
grep -q "recovering journal" "$WORK/fsck" || fail "no journal to recover: $(cat "$WORK/fsck")"
problems=$(awk '/\? yes$/ { print (/^[A-Z][a-z]*\? yes$/ ? prev : $0) } NF { prev = $0 }' \
  "$WORK/fsck" | grep -vE '^Free (blocks|inodes) count wrong \(')
[ -z "$problems" ] || fail "e2fsck found damage after the crash: $problems"
timeout 60 e2fsck -fn "$WORK/copy" >"$WORK/fsck" 2>&1 || fail "e2fsck -fn after replay: $(cat "$WORK/fsck")"

timeout 30 mount "$dev" "$WORK/mnt" || fail "mount after the crash"
(cd "$WORK/mnt" && sha256sum --quiet -c "$WORK/kept.sums") ||
  fail "a file fsynced before the switch is damaged"
[ -e "$WORK/mnt/lost/s1" ] && fail "a file written while writes were dropped survived"
timeout 30 umount "$WORK/mnt" || fail "umount"
timeout 60 e2fsck -fn "$dev" >"$WORK/fsck" 2>&1 || fail "e2fsck -fn after remount: $(cat "$WORK/fsck")"
udm remove -f fl || fail "remove -f"
echo ok

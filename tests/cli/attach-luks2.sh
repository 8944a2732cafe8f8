#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A LUKS2 volume that cryptsetup formats with its default sector size (4096
# bytes on a file with cryptsetup 2.6), opened with udm open and attached:
# the block device has 4096-byte logical blocks, as a dm-crypt device would,
# and ext4 on it survives umount, e2fsck and remount.  Then a crypt table
# reloaded from 512- to 4096-byte sectors while attached: the block device
# follows.
. "$(dirname "$0")/lib.sh"
need_blockdev
need cryptsetup
need mkfs.ext4
need e2fsck
need blockdev

truncate -s 64M "$WORK/vol"
printf 'correct horse' >"$WORK/key"
timeout 60 cryptsetup luksFormat --batch-mode --type luks2 --pbkdf pbkdf2 \
  --pbkdf-force-iterations 1000 --key-file "$WORK/key" "$WORK/vol" ||
  fail "cryptsetup luksFormat"
cryptsetup luksDump "$WORK/vol" >"$WORK/dump" || fail "luksDump"
grep -qE '^[[:space:]]+sector: 4096 \[bytes\]' "$WORK/dump" ||
  fail "cryptsetup did not choose 4096-byte sectors: $(grep sector: "$WORK/dump")"

start_udmd
udm open --type luks2 --key-file "$WORK/key" "$WORK/vol" sec || fail "udm open"
udm table sec | grep -q ' 1 sector_size:4096$' || fail "table: $(udm table sec)"
udm info sec | grep -qx "Logical block size: 4096" || fail "info sec: $(udm info sec)"
dev=$(udm attach sec) || fail "attach"
expect_eq "logical block size of $dev" 4096 "$(blockdev --getss "$dev")"
expect_eq "size of $dev" "$(udm info --json sec | sed -n 's/.*"size": \([0-9]*\).*/\1/p')" \
  "$(blockdev --getsize64 "$dev")"

timeout 60 mkfs.ext4 -q -F "$dev" || fail "mkfs.ext4"
mkdir "$WORK/mnt"
timeout 30 mount "$dev" "$WORK/mnt" || fail "mount"
make_tree "$WORK/mnt" "$WORK/sums" luks2
sync
timeout 30 umount "$WORK/mnt" || fail "umount"
timeout 60 e2fsck -fn "$dev" >"$WORK/fsck" 2>&1 || fail "e2fsck: $(cat "$WORK/fsck")"
grep -q 'Block size:[[:space:]]*4096' < <(dumpe2fs -h "$dev" 2>/dev/null) ||
  fail "ext4 did not get 4096-byte blocks"
timeout 30 mount "$dev" "$WORK/mnt" || fail "remount"
check_tree "$WORK/mnt" "$WORK/sums"
timeout 30 umount "$WORK/mnt" || fail "umount after remount"
udm detach sec || fail "detach"
udm close sec || fail "close"
expect_fail "device sec does not exist" udm info sec

# The volume opens again with the files in it (the ciphertext is on $WORK/vol).
udm open --type luks2 --key-file "$WORK/key" "$WORK/vol" again || fail "udm open again"
dev=$(udm attach again) || fail "attach again"
timeout 30 mount -o ro "$dev" "$WORK/mnt" || fail "mount after opening again"
check_tree "$WORK/mnt" "$WORK/sums"
timeout 30 umount "$WORK/mnt" || fail "umount"
udm detach again && udm close again || fail "detach and close again"

# A reload that changes the crypt sector size of an attached device.
truncate -s 8M "$WORK/plain.img"
k=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
udm create re --table "0 16384 crypt aes-xts-plain64 $k$k 0 $WORK/plain.img 0" ||
  fail "create re"
dev=$(udm attach re) || fail "attach re"
expect_eq "block size with 512-byte crypt sectors" 512 "$(blockdev --getss "$dev")"
udm load re --table "0 16384 crypt aes-xts-plain64 $k$k 0 $WORK/plain.img 0 1 sector_size:4096" &&
  udm resume re || fail "reload re with 4096-byte sectors"
expect_eq "block size after the reload" 4096 "$(blockdev --getss "$dev")"
head -c 1M /dev/urandom >"$WORK/data"
dd if="$WORK/data" of="$dev" bs=1M oflag=direct status=none || fail "write to $dev"
cmp <(dd if="$dev" bs=1M count=1 iflag=direct status=none) "$WORK/data" ||
  fail "read back from $dev"
udm remove -f re || fail "remove -f re"
echo ok

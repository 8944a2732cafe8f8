# SPDX-License-Identifier: LGPL-2.1-or-later
# dust through a block device, as the kernel's dust is used: bad blocks read
# fine until "enable", then fail with EIO while good blocks still read, and
# read again after "disable".  Needs root, /dev/fuse and loop devices (CI has
# them; elsewhere the test says SKIP instead of passing with nothing run).
. "$(dirname "$0")/lib.sh"
need_blockdev
start_udmd
make_file "$WORK/a.img" 1024 a
udm create dd --table "0 2048 dust $WORK/a.img 0 4096" || fail "create dust"
udm message dd 0 addbadblock 5 || fail "addbadblock 5"

# message MSG...: run udm message, stdout in $out, exit status in $rc.
message() {
  out=$(udm message dd 0 "$@" 2>"$WORK/err")
  rc=$?
}

dev=$(udm attach dd) || fail "attach dust"
timeout 20 dd if="$dev" of=/dev/null bs=4096 skip=5 count=1 iflag=direct status=none ||
  fail "a bad block failed a read before enable"
message enable
expect_eq "enable" "0:" "$rc:$out"
timeout 20 dd if="$dev" of=/dev/null bs=4096 skip=5 count=1 iflag=direct 2>"$WORK/dd" &&
  fail "a read of bad block 5 succeeded"
grep -q "Input/output error" "$WORK/dd" || fail "not EIO: $(cat "$WORK/dd")"
timeout 20 dd if="$dev" of=/dev/null bs=4096 skip=4 count=1 iflag=direct status=none ||
  fail "a read of good block 4 failed"
message disable
timeout 20 dd if="$dev" of=/dev/null bs=4096 skip=5 count=1 iflag=direct status=none ||
  fail "a bad block failed a read after disable"
udm detach dd || fail "detach"
echo ok

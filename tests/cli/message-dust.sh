# SPDX-License-Identifier: LGPL-2.1-or-later
# udm message prints a target's reply and exits as dmsetup message does:
# the reply on stdout and 0, or 1 with one line naming the error.  (What
# dust's bad blocks do to a block device: dust-blockdev-eio.sh.)
. "$(dirname "$0")/lib.sh"
start_udmd
make_file "$WORK/a.img" 1024 a
udm create dd --table "0 2048 dust $WORK/a.img 0 4096" || fail "create dust"

# message MSG...: run udm message, stdout in $out, exit status in $rc.
message() {
  out=$(udm message dd 0 "$@" 2>"$WORK/err")
  rc=$?
}
message addbadblock 5
expect_eq "addbadblock status" 0 "$rc"
expect_eq "addbadblock prints nothing" "" "$out"
message addbadblock 7
message queryblock 5
expect_eq "queryblock status" 0 "$rc"
expect_eq "queryblock reply" "dust_query_block: block 5 found in badblocklist" "$out"
message queryblock 6
expect_eq "queryblock of a good block" "dust_query_block: block 6 not found in badblocklist" "$out"
message countbadblocks
expect_eq "countbadblocks" "countbadblocks: 2 badblock(s) found" "$out"
message listbadblocks
expect_eq "listbadblocks" "5
7" "$out"
expect_eq "one line per reply, no extra newline" "$(printf '5\n7\n')" "$(udm message dd 0 listbadblocks)"

expect_fail "message dd: dust: block 5 is already in the bad block list" udm message dd 0 addbadblock 5
[ -s "$WORK/out" ] && fail "a failed message printed a reply"
expect_fail "not in the bad block list" udm message dd 0 removebadblock 6
expect_fail "unrecognised message 'frobnicate'" udm message dd 0 frobnicate
expect_fail "invalid block number 'x'" udm message dd 0 queryblock x
expect_fail "device nosuch does not exist" udm message nosuch 0 countbadblocks
"$UDM" message dd 2>/dev/null; [ $? = 2 ] || fail "message without a message is a usage error"

message removebadblock 7
expect_eq "removebadblock" "0:" "$rc:$out"
message countbadblocks
expect_eq "count after remove" "countbadblocks: 1 badblock(s) found" "$out"

message clearbadblocks
expect_eq "clearbadblocks" "dust_clear_badblocks: badblocks cleared" "$out"
message clearbadblocks
expect_eq "clearbadblocks again" "dust_clear_badblocks: no badblocks found" "$out"
echo ok

# SPDX-License-Identifier: LGPL-2.1-or-later
# load builds an inactive table without touching the live one; resume swaps.
. "$(dirname "$0")/lib.sh"
need nbdcopy
start_udmd
make_file "$WORK/a.img" 512 a
make_file "$WORK/b.img" 512 b

udm create d --table "0 1024 linear $WORK/a.img 0" || fail "create"
expect_eq "bytes before" "$(file_sum "$WORK/a.img")" "$(dev_sum d)"
udm load d --table "0 1024 linear $WORK/b.img 0" || fail "load"
udm info d | grep -qx "Tables present:    LIVE & INACTIVE" || fail "no inactive table after load"
expect_eq "live table unchanged by load" "0 1024 linear $WORK/a.img 0" "$(udm table d)"
expect_eq "inactive table" "0 1024 linear $WORK/b.img 0" "$(udm table --inactive d)"
expect_eq "bytes unchanged by load" "$(file_sum "$WORK/a.img")" "$(dev_sum d)"
udm resume d || fail "resume"
udm info d | grep -qx "Tables present:    LIVE" || fail "inactive table left after resume"
expect_eq "live table after resume" "0 1024 linear $WORK/b.img 0" "$(udm table d)"
expect_eq "bytes after resume" "$(file_sum "$WORK/b.img")" "$(dev_sum d)"

# reload is load; a table file and standard input work as in dmsetup.
echo "0 512 linear $WORK/a.img 512" >"$WORK/t"
udm reload d "$WORK/t" || fail "reload from a file"
udm resume d || fail "resume"
expect_eq "bytes from the table file" "$(file_sum "$WORK/a.img" 512 512)" "$(dev_sum d)"
echo "0 1024 linear $WORK/a.img 0" | udm load d || fail "load from stdin"
udm resume d || fail "resume"
expect_eq "table from stdin" "0 1024 linear $WORK/a.img 0" "$(udm table d)"
echo ok

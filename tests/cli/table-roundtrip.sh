# SPDX-License-Identifier: LGPL-2.1-or-later
# 'udm table X' loads back into a device with the same table and bytes.
. "$(dirname "$0")/lib.sh"
need nbdcopy
need_python_nbd
start_udmd
make_file "$WORK/a.img" 512 a
make_file "$WORK/b.img" 512 b

udm create x --table "0 512 striped 2 8 $WORK/a.img 0 $WORK/b.img 16
512 128 zero
640 256 linear $WORK/a.img 700
896 8 error" || fail "create x"
udm table x >"$WORK/x.table" || fail "table x"
udm create y "$WORK/x.table" || fail "create y from the table of x"
expect_eq "same table" "$(cat "$WORK/x.table")" "$(udm table y)"
# Skip the error segment: reads there fail by design.
sum_x=$(dev_sum_range x 0 896)
sum_y=$(dev_sum_range y 0 896)
[ ${#sum_x} = 64 ] || fail "cannot read x"
expect_eq "same bytes" "$sum_x" "$sum_y"
expect_eq "linear part" "$(file_sum "$WORK/a.img" 700 256)" "$(dev_sum_range y 640 256)"

# Stacked devices round-trip too (udm:NAME stays udm:NAME).
udm create s --table "0 256 linear udm:x 640" || fail "create s"
udm table s >"$WORK/s.table"
udm create t <"$WORK/s.table" || fail "create t from stdin"
expect_eq "stacked table" "0 256 linear udm:x 640" "$(udm table t)"
expect_eq "stacked bytes" "$(file_sum "$WORK/a.img" 700 256)" "$(dev_sum t)"
echo ok

# SPDX-License-Identifier: LGPL-2.1-or-later
# Bad tables are refused with one line naming the cause, and the live
# device keeps serving its old table and its old bytes.
. "$(dirname "$0")/lib.sh"
need nbdcopy
start_udmd
make_file "$WORK/a.img" 512 a
A="$WORK/a.img"
TABLE="0 1024 linear $A 0"
udm create live --table "$TABLE" || fail "create live"
udm create other --table "0 8 zero" || fail "create other"
SUM=$(dev_sum live)
expect_eq "bytes at the start" "$(file_sum "$A")" "$SUM"

still_intact() {
  expect_eq "live table after '$1'" "$TABLE" "$(udm table live)"
  udm info live | grep -qx "Tables present:    LIVE" || fail "an inactive table was left by '$1'"
  udm info live | grep -qx "State:             ACTIVE" || fail "live is not active after '$1'"
  expect_eq "live bytes after '$1'" "$SUM" "$(dev_sum live)"
}

# bad_table KEY TABLE: load refuses TABLE saying KEY; live is untouched.
bad_table() {
  expect_fail "load live: $1" udm load live --table "$2"
  still_intact "$2"
}

bad_table "line 1: unknown target type 'nosuch'" "0 1024 nosuch"
bad_table "line 2: start sector 16 leaves a gap: the previous segment ends at 8" "0 8 zero
16 8 zero"
bad_table "line 2: start sector 8 overlaps the previous segment, which ends at 16" "0 16 zero
8 8 zero"
bad_table "line 1: invalid length '0'" "0 0 zero"
bad_table "line 1: invalid start sector 'x'" "x 8 zero"
bad_table "line 1: invalid length '100x'" "0 100x zero"
bad_table "line 1: linear: invalid device sector '100x'" "0 8 linear $A 100x"
bad_table "line 1: linear: invalid argument count 1" "0 8 linear $A"
bad_table "line 1: linear: cannot open for reading and writing $WORK/missing: No such file or directory" \
  "0 8 linear $WORK/missing 0"
bad_table "line 1: linear: device $A is too small: the table needs sectors 0..2047 (2048 sectors) but it has 1024" \
  "0 2048 linear $A 0"
bad_table "line 1: striped: target length 9 not divisible by number of stripes 2" \
  "0 9 striped 2 8 $A 0 $A 16"
bad_table "line 1: striped: target length 24 not divisible by chunk size 8 times 2 stripes" \
  "0 24 striped 2 8 $A 0 $A 16"
bad_table "line 1: striped: 2 stripes need 4 '<dev> <offset>' words, 2 given" "0 16 striped 2 8 $A 0"
bad_table "line 1: striped: invalid chunk size '0'" "0 16 striped 2 0 $A 0 $A 16"
bad_table "line 1: striped: invalid chunk size 'x'" "0 16 striped 2 x $A 0 $A 16"
bad_table "line 1: linear: no udm device named 'ghost'" "0 8 linear udm:ghost 0"
bad_table "the table is empty" ""
bad_table "the table is empty" "# just a comment"
# A bad table later in the text: nothing of it sticks.
bad_table "line 3: unknown target type 'nosuch'" "0 8 zero
8 8 zero
16 8 nosuch"

# The same tables through create leave no device behind.
expect_fail "load new: line 1: unknown target type 'nosuch'" udm create new --table "0 8 nosuch"
expect_fail "new" udm info new
expect_eq "devices" "live	(253:0)
other	(253:1)" "$(udm ls)"

# A cycle: A over B, then B reloaded over A.
udm create B --table "0 8 zero" || fail "create B"
udm create A --table "0 8 linear udm:B 0" || fail "create A"
expect_fail "load B: line 1: linear: using udm device 'A' here would make a cycle" \
  udm load B --table "0 8 linear udm:A 0"
expect_eq "B keeps its table" "0 8 zero " "$(udm table B)"
expect_fail "load A: line 1: linear: using udm device 'A' here would make a cycle" \
  udm load A --table "0 8 linear udm:A 0"

# Names.
expect_fail "invalid device name 'a/b'" udm create a/b --table "0 8 zero"
expect_fail "device nosuchdev does not exist" udm load nosuchdev --table "0 8 zero"
expect_fail "cannot open table file $WORK/nofile" udm load live "$WORK/nofile"
expect_fail "message live: target 'linear' does not take messages" udm message live 0 hello
expect_fail "sector" udm message live x hello
still_intact "the other failures"
echo ok

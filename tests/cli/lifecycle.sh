# SPDX-License-Identifier: LGPL-2.1-or-later
# create / ls / table / status / info / remove print what dmsetup prints.
. "$(dirname "$0")/lib.sh"
need nbdcopy
start_udmd
make_file "$WORK/a.img" 1024 a

expect_eq "ls with no devices" "No devices found" "$(udm ls)"
expect_eq "table with no devices" "No devices found" "$(udm table)"
udm create one --table "0 2048 linear $WORK/a.img 0" || fail "create one"
udm create two --uuid UDM-two-1 --readonly --table "0 1024 linear $WORK/a.img 1024
1024 8 zero" || fail "create two"
udm create three --notable || fail "create --notable"

expect_eq "ls" "one	(253:0)
two	(253:1)
three	(253:2)" "$(udm ls)"
expect_eq "table one" "0 2048 linear $WORK/a.img 0" "$(udm table one)"
expect_eq "table (all)" "one: 0 2048 linear $WORK/a.img 0
two: 0 1024 linear $WORK/a.img 1024
two: 1024 8 zero 
three: " "$(udm table)"
expect_eq "status one (trailing blank as dmsetup)" "0 2048 linear " "$(udm status one)"
expect_eq "info one" "Name:              one
State:             ACTIVE
Read Ahead:        256
Tables present:    LIVE
Open count:        0
Event number:      $(udm info one | sed -n 's/^Event number: *//p')
Major, minor:      253, 0
Number of targets: 1

END" "$(udm info one; echo END)"
udm info two | grep -qx "State:             ACTIVE (READ-ONLY)" || fail "two is not read-only: $(udm info two)"
udm info two | grep -qx "UUID: UDM-two-1" || fail "two has no uuid line"
udm info two | grep -qx "Number of targets: 2" || fail "two has not 2 targets"
udm info three | grep -qx "Tables present:    None" || fail "three has a table"
[ "$(udm info | grep -c '^Name:')" = 3 ] || fail "info lists not 3 devices"

# Real bytes through NBD (on a device of its own: remove-busy checks when
# an NBD client's close lets a device go).
udm create bytes --table "0 2048 linear $WORK/a.img 0" || fail "create bytes"
expect_eq "bytes" "$(file_sum "$WORK/a.img" 0 2048)" "$(dev_sum bytes)"
udm remove -f bytes || fail "remove -f bytes"

udm suspend one || fail "suspend"
udm info one | grep -qx "State:             SUSPENDED" || fail "not suspended"
udm resume one || fail "resume"
udm info one | grep -qx "State:             ACTIVE" || fail "not resumed"

udm remove two three || fail "remove two three"
expect_eq "ls after remove" "one	(253:0)" "$(udm ls)"
expect_fail "two" udm remove two
expect_fail "two" udm table two
expect_fail "device 'one' already exists" udm create one --table "0 8 zero"
udm remove one || fail "remove one"
expect_eq "ls at the end" "No devices found" "$(udm ls)"

# Usage errors exit 2.
udm create 2>/dev/null; [ $? = 2 ] || fail "create without a name is not a usage error"
udm frobnicate 2>/dev/null; [ $? = 2 ] || fail "unknown verb is not a usage error"
udm ls --bogus 2>/dev/null; [ $? = 2 ] || fail "unknown option is not a usage error"
udm create --help | grep -q "^Usage: udm create" || fail "create --help"
udm --version | grep -q "^udm " || fail "--version"
expect_eq "uri" "nbd+unix:///one?socket=$UDM_RUNTIME_DIR/nbd.sock" "$(udm uri one)"
echo ok

# SPDX-License-Identifier: LGPL-2.1-or-later
# nbd: tables through udmd and the udm command: created, shown by `udm
# table` as written and loaded back to a device with the same bytes; a
# reload onto a server that is not there is refused and the live device
# keeps working; a reload onto another server is swapped in by resume.
. "$(dirname "$0")/../cli/lib.sh"
need nbdkit
need nbdcopy
need_python_nbd
make_file "$WORK/a.img" 1024 a
make_file "$WORK/b.img" 1024 b
nbdkit -P "$WORK/a.pid" -U "$WORK/a.sock" file "$WORK/a.img" || fail "nbdkit a"
nbdkit -P "$WORK/b.pid" -U "$WORK/b.sock" file "$WORK/b.img" || fail "nbdkit b"
for f in a b; do
  for i in $(seq 100); do [ -s "$WORK/$f.pid" ] && break; sleep 0.05; done
done
trap 'kill $(cat "$WORK/a.pid" "$WORK/b.pid" 2>/dev/null) 2>/dev/null; cleanup' EXIT
start_udmd

a="nbd:nbd+unix:///?socket=$WORK/a.sock&retries=2"
udm create x --table "0 2048 linear $a 0" || fail "create x over nbd:"
expect_eq "table as written" "0 2048 linear $a 0" "$(udm table x)"
udm table x >"$WORK/x.table"
udm create y "$WORK/x.table" || fail "create y from x's table"
expect_eq "bytes of the server" "$(file_sum "$WORK/a.img")" "$(dev_sum x)"
expect_eq "same bytes from the reloaded table" "$(dev_sum x)" "$(dev_sum y)"

expect_fail "cannot connect to NBD server nbd+unix:///?socket=$WORK/none.sock" \
  udm load x --table "0 2048 linear nbd:nbd+unix:///?socket=$WORK/none.sock 0"
expect_eq "live table untouched" "0 2048 linear $a 0" "$(udm table x)"
expect_eq "live device still reads" "$(file_sum "$WORK/a.img")" "$(dev_sum x)"

udm load x --table "0 2048 linear nbd:nbd+unix:///?socket=$WORK/b.sock 0" || fail "load b"
udm resume x || fail "resume onto b"
expect_eq "swapped to the other server" "$(file_sum "$WORK/b.img")" "$(dev_sum x)"
udm remove y && udm remove x || fail "remove"
echo ok

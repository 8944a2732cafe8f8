# SPDX-License-Identifier: LGPL-2.1-or-later
# A mirror's resync seen from the command line: "udm status" gives the
# in-sync ratio, "udm message NAME 0 resync_rate BYTES" throttles it, and
# "udm wait --progress NAME" reports the progress until every region is in
# sync, then exits 0 with the legs identical.  A device whose status has no
# ratio is refused.
. "$(dirname "$0")/lib.sh"
start_udmd
head -c 8M /dev/urandom >"$WORK/a.img"
sparse "$WORK/b.img" 8M
size=$((8 * 2048))
# Leg b behind a 50 ms write delay, and suspended while the mirror is made
# and throttled: its resync writes are held, so no region can finish before
# the status below, however slow the machine (a sanitizer build under load).
udm create slow --table "0 $size delay $WORK/b.img 0 0 $WORK/b.img 0 50" || fail "create slow"
udm suspend slow || fail "suspend slow"
udm create m --table "0 $size mirror core 1 1024 2 $WORK/a.img 0 udm:slow 0" ||
  fail "create mirror"
udm message m 0 resync_rate 4194304 || fail "resync_rate" # 4 MiB/s: about 2 s
status=$(udm status m) || fail "status"
grep -Eq "^0 $size mirror 2 $WORK/a.img udm:slow 0/16 1 AA 1 core\$" <<<"$status" ||
  fail "status while leg b is suspended: $status"
udm resume slow || fail "resume slow"

timeout 60 "$UDM" wait --progress m 2>"$WORK/progress" || fail "wait --progress: $(cat "$WORK/progress")"
lines=$(wc -l <"$WORK/progress")
[ "$lines" -ge 3 ] || fail "wait --progress printed $lines line(s): $(cat "$WORK/progress")"
expect_eq "the last progress line" "m: 100% (16/16)" "$(tail -n 1 "$WORK/progress")"
grep -Eqv '^m: [0-9]+% \([0-9]+/16\)$' "$WORK/progress" &&
  fail "unexpected progress lines: $(cat "$WORK/progress")"
# Percentages only grow.
sed 's/^m: //; s/%.*//' "$WORK/progress" | sort -c -n ||
  fail "progress went backwards: $(cat "$WORK/progress")"
udm status m | grep -q " 16/16 1 AA 1 core\$" || fail "status after: $(udm status m)"
udm remove m || fail "remove m"
udm remove slow || fail "remove slow"
cmp "$WORK/a.img" "$WORK/b.img" || fail "the legs differ after the resync"

udm create z --table "0 8 zero" || fail "create zero"
expect_fail "reports no progress" "$UDM" wait --progress z
"$UDM" wait --progress z 3 2>"$WORK/err"
expect_eq "wait --progress NAME EVENT_NR: exit status" 2 "$?"
grep -qF "takes no EVENT_NR" "$WORK/err" || fail "wait --progress z 3: $(cat "$WORK/err")"
echo ok

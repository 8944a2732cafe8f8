# SPDX-License-Identifier: LGPL-2.1-or-later
# A second udmd on the same runtime directory is refused, clearly.
. "$(dirname "$0")/lib.sh"
start_udmd
udm create d --table "0 8 zero" || fail "create"
timeout $T "$UDMD" -f 2>"$WORK/err2"
rc=$?
[ $rc = 1 ] || fail "second udmd -f exited $rc"
grep -q "another udmd (pid $DAEMON_PID) is already running on $UDM_RUNTIME_DIR" "$WORK/err2" ||
  fail "message: $(cat "$WORK/err2")"
timeout $T "$UDMD" 2>"$WORK/err3"
rc=$?
[ $rc = 1 ] || fail "second udmd (daemonising) exited $rc"
grep -q "another udmd" "$WORK/err3" || fail "message: $(cat "$WORK/err3")"
# The first one still serves, with its device.
expect_eq "ls" "d	(253:0)" "$(udm ls)"
[ -S "$UDM_RUNTIME_DIR/control.sock" ] || fail "the second daemon removed the socket"
echo ok

# SPDX-License-Identifier: LGPL-2.1-or-later
# SIGTERM makes udmd exit within its --stop-timeout even when a request is
# stuck for good: here a table naming a file on a FUSE server that does not
# answer (a second udmd, stopped with SIGSTOP).  The sockets go with it.
. "$(dirname "$0")/lib.sh"
need_blockdev

# The second daemon, whose export will not answer.
other_rt="$WORK/other"
UDM_RUNTIME_DIR=$other_rt "$UDMD" -f 2>>"$WORK/other.log" &
OTHER_PID=$!
for i in $(seq 100); do
  [ -S "$other_rt/control.sock" ] && break
  sleep 0.1
done
UDM_RUNTIME_DIR=$other_rt udm create x --table "0 8 zero" || fail "create x in the other udmd"
[ -e "$other_rt/dev/x" ] || fail "the other udmd has no export"

start_udmd --stop-timeout 2
kill -STOP "$OTHER_PID"
# Every thread of it stopped before the request is made: a FUSE request that
# a thread of the server had already taken would be waited for
# uninterruptibly, and then not even SIGKILL ends our udmd.
for i in $(seq 100); do
  running=0
  for st in /proc/"$OTHER_PID"/task/*/stat; do
    state=$(sed 's/.*) //' "$st" 2>/dev/null | cut -d' ' -f1)
    [ "$state" = T ] || [ "$state" = t ] || running=1
  done
  [ "$running" = 0 ] && break
  sleep 0.05
done
udm create stuck --table "0 8 linear $other_rt/dev/x 0" 2>/dev/null &
client=$!
sleep 1
kill -0 "$client" 2>/dev/null || fail "the create over a stopped FUSE server did not wait"
stop_udmd # fails unless udmd is gone within 10 s
[ "$DAEMON_STATUS" = 1 ] || fail "udmd exited $DAEMON_STATUS after a stuck shutdown, expected 1"
grep -q "did not finish within 2 s" "$WORK/udmd.log" || fail "udmd did not say why it exited"
[ -e "$UDM_RUNTIME_DIR/control.sock" ] && fail "control.sock left behind"
[ -e "$UDM_RUNTIME_DIR/nbd.sock" ] && fail "nbd.sock left behind"
wait "$client" 2>/dev/null

kill -CONT "$OTHER_PID"
kill -TERM "$OTHER_PID"
wait "$OTHER_PID"

# A daemon started afterwards on the same directory clears what was left.
start_udmd
udm create d --table "0 8 zero" || fail "create after the forced exit"
[ -e "$UDM_RUNTIME_DIR/dev/d" ] || fail "no export after the forced exit"
stop_udmd
[ "$DAEMON_STATUS" = 0 ] || fail "udmd exited $DAEMON_STATUS on an ordinary SIGTERM"
echo ok

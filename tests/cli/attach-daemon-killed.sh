# SPDX-License-Identifier: LGPL-2.1-or-later
# udmd killed with SIGKILL while a device is attached: I/O on the block
# device fails promptly (nothing hangs), 'udm detach NAME' without a daemon
# detaches the leftover and clears the dead export, and a new udmd cleans
# up what a dead one left.
. "$(dirname "$0")/lib.sh"
need_blockdev
sparse "$WORK/a.img" 64M
table="0 $((64 * 2048)) linear $WORK/a.img 0"
# start_udmd waits for the sockets to appear: not for the dead daemon's.
restart_udmd() {
  rm -f "$UDM_RUNTIME_DIR/control.sock" "$UDM_RUNTIME_DIR/nbd.sock"
  start_udmd
}

start_udmd
dev=$(udm create d --attach --table "$table") || fail "create --attach"
timeout 20 dd if="$dev" of=/dev/null bs=4k count=1 iflag=direct status=none ||
  fail "$dev unreadable while udmd runs"
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=

timeout -k 5 30 dd if="$dev" of=/dev/null bs=4k count=1 skip=100 iflag=direct status=none 2>/dev/null
rc=$?
[ $rc != 124 ] && [ $rc != 137 ] || fail "I/O on $dev hung after udmd died"
[ $rc != 0 ] || fail "I/O on $dev succeeded with no daemon"
timeout -k 5 30 ls "$UDM_RUNTIME_DIR/dev" >/dev/null 2>&1
rc=$?
[ $rc != 124 ] && [ $rc != 137 ] || fail "the dead export hung"

udm detach d 2>"$WORK/err" || fail "detach without a daemon: $(cat "$WORK/err")"
grep -qF "udmd is not running on $UDM_RUNTIME_DIR; detached $dev" "$WORK/err" ||
  fail "detach did not say what it did: $(cat "$WORK/err")"
loop_bound "$dev" && fail "$dev is still bound after detach"
[ -e "$UDM_RUNTIME_DIR/block/d" ] && fail "the symlink is left"
grep -q " $UDM_RUNTIME_DIR/dev " /proc/mounts && fail "the dead export is still mounted"
expect_fail "nothing is attached to $UDM_RUNTIME_DIR/dev/d" udm detach d

# A new daemon detaches the leftovers of a dead one before it mounts.
restart_udmd
dev=$(udm create d --attach --table "$table") || fail "create --attach after restart"
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=
loop_bound "$dev" || fail "$dev went away with the daemon"
restart_udmd
loop_bound "$dev" && fail "the new udmd left $dev attached"
grep -qF "detached $dev, left attached to $UDM_RUNTIME_DIR/dev/d by a dead udmd" \
  "$WORK/udmd.log" || fail "the new udmd did not log the leftover"
[ -e "$UDM_RUNTIME_DIR/block/d" ] && fail "the new udmd left the old symlink"
dev=$(udm create d --attach --table "$table") || fail "create --attach in the new udmd"
timeout 20 dd if="$dev" of=/dev/null bs=1M count=4 iflag=direct status=none ||
  fail "$dev unreadable in the new udmd"
stop_udmd
[ "$DAEMON_STATUS" = 0 ] || fail "udmd exited $DAEMON_STATUS"
loop_bound "$dev" && fail "SIGTERM left $dev attached"
grep -q " $UDM_RUNTIME_DIR/dev " /proc/mounts && fail "SIGTERM left the export mounted"
echo ok

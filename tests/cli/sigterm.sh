# SPDX-License-Identifier: LGPL-2.1-or-later
# SIGTERM (and SIGINT): devices removed, sockets gone, exit 0 -- even with
# I/O held by a suspended device.
. "$(dirname "$0")/lib.sh"
need nbdcopy
make_file "$WORK/a.img" 512 a
start_udmd
udm create d --table "0 1024 linear $WORK/a.img 0" || fail "create"
udm create e --table "0 512 linear udm:d 0" || fail "create stacked"
udm suspend d || fail "suspend"
base=$(udm info -c -o open --noheadings d)
timeout 30 nbdcopy "$(udm uri d)" "$WORK/copy" 2>/dev/null &
reader=$!
# Shut down once the reader has the export open (its read is then held);
# e, stacked on d, already counts as one opener.
opened() { [ "$(udm info -c -o open --noheadings d)" -gt "$1" ] 2>/dev/null; }
wait_until opened "$base" || fail "the reader never opened d"
stop_udmd
[ "$DAEMON_STATUS" = 0 ] || fail "udmd exited $DAEMON_STATUS on SIGTERM"
[ -e "$UDM_RUNTIME_DIR/control.sock" ] && fail "control.sock left behind"
[ -e "$UDM_RUNTIME_DIR/nbd.sock" ] && fail "nbd.sock left behind"
wait $reader && fail "the held read succeeded after shutdown"
cmp -s "$WORK/a.img" "$WORK/copy" 2>/dev/null && fail "held I/O was served by a dead device"

start_udmd
udm create d --table "0 8 zero" || fail "create after restart"
kill -INT "$DAEMON_PID"
for i in $(seq 100); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
wait "$DAEMON_PID"
rc=$?
DAEMON_PID=
[ $rc = 0 ] || fail "udmd exited $rc on SIGINT"
[ -e "$UDM_RUNTIME_DIR/control.sock" ] && fail "control.sock left after SIGINT"
echo ok

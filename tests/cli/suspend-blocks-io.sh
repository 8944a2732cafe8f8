# SPDX-License-Identifier: LGPL-2.1-or-later
# While a device is suspended, I/O waits; resume lets it finish.
. "$(dirname "$0")/lib.sh"
need nbdcopy
start_udmd
make_file "$WORK/a.img" 512 a
udm create d --table "0 1024 linear $WORK/a.img 0" || fail "create"
udm suspend d || fail "suspend"

timeout 30 nbdcopy "$(udm uri d)" "$WORK/copy" &
reader=$!
sleep 1.5
kill -0 $reader 2>/dev/null || fail "a read finished while the device was suspended"
[ -s "$WORK/copy" ] && cmp -s "$WORK/copy" "$WORK/a.img" && fail "data came through a suspended device"
udm resume d || fail "resume"
wait $reader || fail "the read failed after resume"
cmp "$WORK/copy" "$WORK/a.img" || fail "wrong bytes after resume"

# The same through a captive daemon: suspend from inside udm run.
"$UDM" run --table "e=0 1024 linear $WORK/a.img 0" -- sh -c '
  "$UDM" suspend e || exit 10
  timeout 30 nbdcopy "$uri" "$0/copy2" & r=$!
  sleep 1
  kill -0 $r || exit 11
  "$UDM" resume e || exit 12
  wait $r || exit 13' "$WORK"
rc=$?
[ $rc = 0 ] || fail "captive suspend check exited $rc"
cmp "$WORK/copy2" "$WORK/a.img" || fail "wrong bytes in the captive copy"
echo ok

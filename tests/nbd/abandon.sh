#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A client that sends 256 requests to udmd over a slow (delay) device and
# hangs up without reading a reply: udmd neither crashes nor leaks (the
# ASan build checks the leaks at exit), the requests it had read still
# complete (the abandoned writes reach the file), it lets the device go once
# every completion has arrived (remove without --force works), and it still
# serves a new client.
. "$(dirname "$0")/../cli/lib.sh"
need_python_nbd
start_udmd
TESTDIR=$(cd "$(dirname "$0")" && pwd)
sparse "$WORK/backing" 8M
udm create slow --table "0 16384 delay $WORK/backing 0 300" || fail "create slow"
udm create fast --table "0 16384 linear $WORK/backing 0" || fail "create fast"

timeout "$T" "$PY_NBD" -I "$TESTDIR/aio.py" abandon "$UDM_RUNTIME_DIR/nbd.sock" slow 256 ||
  fail "the abrupt client"
kill -0 "$DAEMON_PID" || fail "udmd died"

# A new client, on the slow device and another one.
for dev in slow fast; do
  timeout "$T" "$PY_NBD" -I - "$(udm uri "$dev")" <<'PY' || fail "a new client on $dev"
import nbd, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
data = bytes(range(256)) * 16
h.pwrite(data, 1 << 20)
assert h.pread(len(data), 1 << 20) == data, "read back other bytes"
h.shutdown()
PY
done

# The abandoned connection holds slow open until its requests complete.
for i in $(seq 100); do
  udm info slow | grep -q "^Open count: *0" && break
  sleep 0.1
done
udm info slow | grep -q "^Open count: *0" ||
  fail "slow still open 10 s after its client left: $(udm info slow)"
timeout "$T" "$PY_NBD" -I "$TESTDIR/aio.py" abandoned "$WORK/backing" 256 ||
  fail "the requests in flight when the client left"
udm remove slow || fail "remove slow after the abandoned requests"
udm remove fast || fail "remove fast"
expect_eq "devices left" "No devices found" "$(udm ls)"
stop_udmd
[ "$DAEMON_STATUS" = 0 ] || fail "udmd exited $DAEMON_STATUS (a leak under ASan?)"
! grep -q "Sanitizer" "$WORK/udmd.log" || fail "sanitizer report in udmd's log"
echo PASS

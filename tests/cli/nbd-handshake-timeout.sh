# SPDX-License-Identifier: LGPL-2.1-or-later
# udmd --nbd-handshake-timeout: an NBD client that never chooses an export
# is closed after that many seconds; a bad value is refused at start.
. "$(dirname "$0")/lib.sh"
need python3

timeout 10 "$UDMD" -f --nbd-handshake-timeout 0 2>"$WORK/err" && fail "a zero timeout was accepted"
grep -q "not a number of seconds from 1 to 86400" "$WORK/err" ||
  fail "bad --nbd-handshake-timeout: $(cat "$WORK/err")"
timeout 10 "$UDMD" -f --stop-timeout 1x 2>"$WORK/err" && fail "a bad --stop-timeout was accepted"

start_udmd --nbd-handshake-timeout 1
waited=$(timeout 20 python3 - "$UDM_RUNTIME_DIR/nbd.sock" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.settimeout(15)
greeting = b""
while len(greeting) < 18:
    greeting += s.recv(18 - len(greeting))
t0 = time.monotonic()
try:
    data = s.recv(1)
except ConnectionResetError:
    data = b""
print("data" if data else "%.1f" % (time.monotonic() - t0))
PY
) || fail "the idle NBD client got no answer"
case "$waited" in
  0.[89]* | 1.* | 2.*) ;;
  *) fail "an idle NBD handshake was closed after '$waited' s, expected about 1 s" ;;
esac
stop_udmd
echo ok

# SPDX-License-Identifier: LGPL-2.1-or-later
# udm wait NAME [EVENT_NR] as dmsetup wait: back at once when the event
# number already differs, asleep while it does not, and failing when the
# device is removed.  Of the built-in targets only mirror raises events
# (tests/cli/mirror-*.sh, tests/targets/test-mirror.c; nor do the kernel's
# flakey, dust, delay, linear, striped, crypt, zero or error), so the wake-up
# on an event is tested through the C API in tests/unit/test-events.c; here
# the daemon's side: a sleeping wait holds no lock (other requests go on),
# ends when its client goes away or the daemon stops, and the control op's
# timeout.
. "$(dirname "$0")/lib.sh"
start_udmd
udm create d --table "0 8 zero" || fail "create"
expect_eq "event number in info" "Event number:      0" \
  "$(udm info d | grep '^Event number')"

# A number that differs from the device's: back at once, silently.
out=$(udm wait d 3 2>&1) || fail "wait d 3 failed: $out"
expect_eq "wait prints nothing" "" "$out"

# The current number (0, also the default): it sleeps...  Once udmd has a
# thread for the waiter's connection, the request is in.
threads() { ls "/proc/$DAEMON_PID/task" 2>/dev/null | wc -l; }
more_threads() { [ "$(threads)" -gt "$1" ]; }
before=$(threads)
"$UDM" wait d 2>"$WORK/wait.err" &
waiter=$!
if [ -d "/proc/$DAEMON_PID/task" ]; then
  wait_until more_threads "$before" || fail "no connection thread for wait d"
else
  sleep 1 # no /proc (macOS): nothing to wait on
fi
kill -0 $waiter 2>/dev/null || fail "wait d returned without an event"
# ... without holding up anything else, a second waiter included.
"$UDM" wait d 0 2>"$WORK/wait2.err" &
waiter2=$!
udm info d >/dev/null || fail "info while a wait sleeps"
udm create e --table "0 8 zero" || fail "create while a wait sleeps"
kill -0 $waiter 2>/dev/null || fail "the wait ended on another device's activity"
# ... until the device is removed.
udm remove d || fail "remove while waited on"
for i in $(seq 50); do kill -0 $waiter 2>/dev/null || break; sleep 0.1; done
wait $waiter
rc=$?
expect_eq "wait on a removed device: exit status" 1 "$rc"
grep -qF "wait d: the device was removed" "$WORK/wait.err" ||
  fail "wait on a removed device: $(cat "$WORK/wait.err")"
wait $waiter2 && fail "the second waiter succeeded on a removed device"

# Bad input.
expect_fail "device nosuch does not exist" udm wait nosuch
"$UDM" wait e x 2>"$WORK/err"; [ $? = 2 ] || fail "a bad event number is a usage error"
expect_eq "bad event number message" "udm: wait: invalid event number 'x' (0 to 4294967295)" \
  "$(cat "$WORK/err")"
"$UDM" wait e 4294967296 2>/dev/null; [ $? = 2 ] || fail "an event number over 32 bits is a usage error"
"$UDM" wait 2>/dev/null; [ $? = 2 ] || fail "wait without a name is a usage error"

# A client that goes away while waiting leaves no thread behind in udmd.
if [ -d "/proc/$DAEMON_PID/task" ]; then
  before=$(threads)
  "$UDM" wait e 2>/dev/null &
  waiter=$!
  wait_until more_threads "$before" || fail "no connection thread for the waiting client"
  kill -9 $waiter
  wait $waiter 2>/dev/null
  for i in $(seq 30); do [ "$(threads)" -le "$before" ] && break; sleep 0.1; done
  [ "$(threads)" -le "$before" ] ||
    fail "the thread of a waiting client that died is still there ($(threads) > $before)"
fi

# dmsetup's spellings: --noflush is accepted, -u UUID and -j/-m select.
udm create u --uuid UDM-wait-u --table "0 8 zero" || fail "create u"
out=$(udm wait --noflush -u UDM-wait-u 5 2>&1) || fail "wait --noflush -u UUID 5: $out"
expect_eq "wait -u prints nothing" "" "$out"
udm wait -j 253 -m "$(udm info -c -o minor --noheadings u)" 7 || fail "wait -j -m 7"

# Ctrl-C ends a sleeping wait at once, and udmd lets go of it (no thread left).
if [ -d "/proc/$DAEMON_PID/task" ]; then
  before=$(ls "/proc/$DAEMON_PID/task" | wc -l)
  # A background job of a non-interactive shell ignores SIGINT: start it in its own.
  setsid "$UDM" wait u 2>"$WORK/int.err" &
  waiter=$!
  wait_until more_threads "$before" || fail "no connection thread for wait u"
  kill -0 $waiter 2>/dev/null || fail "wait u returned without an event"
  kill -INT $waiter
  for i in $(seq 30); do kill -0 $waiter 2>/dev/null || break; sleep 0.1; done
  kill -0 $waiter 2>/dev/null && fail "wait did not end on SIGINT"
  wait $waiter
  rc=$?
  expect_eq "wait ended by SIGINT (128 + 2)" 130 "$rc"
  expect_eq "nothing on stderr after Ctrl-C" "" "$(cat "$WORK/int.err")"
  for i in $(seq 30); do [ "$(ls "/proc/$DAEMON_PID/task" | wc -l)" -le "$before" ] && break; sleep 0.1; done
  [ "$(ls "/proc/$DAEMON_PID/task" | wc -l)" -le "$before" ] ||
    fail "udmd kept the thread of a wait ended by Ctrl-C"
  udm info u >/dev/null || fail "udmd does not answer after a Ctrl-C'd wait"
fi
udm remove u || fail "remove u"

# The control op: timeout=MS, and a request sent ahead during a wait is
# answered after it (it neither ends the wait nor is lost).
timeout 30 python3 -I - "$UDM_RUNTIME_DIR/control.sock" <<'PY' || fail "control op wait"
import socket, struct, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])

def send(*fields):
    body = b"".join(struct.pack(">I", len(f)) + f for f in fields)
    s.sendall(struct.pack(">I", len(body)) + body)

def exact(n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        assert c, "connection closed"
        b += c
    return b

def answer():
    body = exact(struct.unpack(">I", exact(4))[0])
    out, i = {}, 0
    while i < len(body):
        n = struct.unpack(">I", body[i:i + 4])[0]
        k, _, v = body[i + 4:i + 4 + n].partition(b"=")
        out.setdefault(k.decode(), v.decode())
        i += 4 + n
    return out

send(b"op=hello", b"version=1")
assert answer()["status"] == "0"
t0 = time.monotonic()
send(b"op=wait", b"name=e", b"event_nr=0", b"timeout=700")
send(b"op=info", b"name=e")
a = answer()
took = time.monotonic() - t0
assert a["errno"] == "ETIMEDOUT", a
assert a["message"] == "wait e: no event after event 0 within 700 ms", a
assert 0.6 < took < 5, took
a = answer()
assert a["status"] == "0" and a["event_nr"] == "0", a
send(b"op=wait", b"name=e", b"event_nr=9", b"timeout=0")
a = answer()
assert a["status"] == "0" and a["event_nr"] == "0", a
send(b"op=wait", b"name=e", b"timeout=-1")
a = answer()
assert a["errno"] == "EINVAL" and "argument timeout: '-1' is not a number of milliseconds" in a["message"], a
send(b"op=wait", b"name=e", b"event_nr=4294967296")
a = answer()
assert a["errno"] == "EINVAL" and "is not an event number (0 to 4294967295)" in a["message"], a
PY

# SIGTERM while clients wait (one with a request sent ahead, still
# unread): the daemon stops anyway, and the clients fail.
"$UDM" wait e 2>"$WORK/wait.err" &
waiter=$!
timeout 30 python3 -I - "$UDM_RUNTIME_DIR/control.sock" "$WORK/ahead.ready" <<'PY' &
import socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
def send(*fields):
    body = b"".join(struct.pack(">I", len(f)) + f for f in fields)
    s.sendall(struct.pack(">I", len(body)) + body)
send(b"op=hello", b"version=1")
send(b"op=wait", b"name=e")
send(b"op=info", b"name=e")
open(sys.argv[2], "w").close()
s.settimeout(25)
try:
    while s.recv(4096):  # the hello's answer, then the end of the connection
        pass
except ConnectionResetError:  # udmd closed with the request sent ahead unread
    pass
PY
ahead=$!
for i in $(seq 100); do [ -e "$WORK/ahead.ready" ] && break; sleep 0.1; done
[ -e "$WORK/ahead.ready" ] || fail "the client with a request sent ahead did not start"
sleep 0.3
stop_udmd
expect_eq "udmd exit status with waiting clients" 0 "$DAEMON_STATUS"
for i in $(seq 50); do kill -0 $waiter 2>/dev/null || break; sleep 0.1; done
wait $waiter && fail "a wait succeeded when the daemon stopped"
wait $ahead || fail "the client with a request sent ahead saw no end of its connection"
echo ok

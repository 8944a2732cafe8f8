#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# udmd --nbd-max-connections 4: four clients are served; the next ones are
# accepted and closed before the greeting (NBD's newstyle handshake has no
# way to refuse a client earlier), which the client sees as the server
# hanging up (libnbd 1.14 says "recv: server disconnected unexpectedly", or
# "external event 0 is invalid in state CONNECT.START" when the hang-up
# beats its connect); udmd logs one line naming the limit (rate-limited:
# five refusals in a row make one line); once a client leaves, a new one is
# served.  A limit out of range is refused before udmd starts.
. "$(dirname "$0")/../cli/lib.sh"
need_python_nbd
need nbdinfo

for bad in 0 65537 4x ""; do
  "$UDMD" -f --nbd-max-connections "$bad" >"$WORK/out" 2>"$WORK/err" &&
    fail "udmd --nbd-max-connections '$bad' started"
  grep -qF -- "--nbd-max-connections: '$bad' is not a number from 1 to 65536" "$WORK/err" ||
    fail "--nbd-max-connections '$bad': $(cat "$WORK/err")"
done

start_udmd --nbd-max-connections 4
sparse "$WORK/backing" 1M
udm create disk --table "0 2048 linear $WORK/backing 0" || fail "create disk"
uri=$(udm uri disk)

"$PY_NBD" -I - "$uri" "$UDM_RUNTIME_DIR/nbd.sock" >"$WORK/py.out" 2>&1 <<'PY' || fail "$(cat "$WORK/py.out")"
import socket, subprocess, sys, time
import nbd
uri, path = sys.argv[1:3]
held = []
for i in range(4):
    h = nbd.NBD()
    h.connect_uri(uri)
    h.pread(512, 0)   # answered: the server has ended its side of the handshake
    held.append(h)
for i in range(3):
    h = nbd.NBD()
    try:
        h.connect_uri(uri)
    except nbd.Error as e:
        print("client over the limit:", e.string)
    else:
        sys.exit("connection %d was served over the limit of 4" % (5 + i))
# What any client sees: the end of the connection, before the greeting.
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(30)
s.connect(path)
got = s.recv(18)
if got:
    sys.exit("over the limit, the server sent %r" % got)
print("raw client over the limit: the connection ends before the greeting")
s.close()
r = subprocess.run(["nbdinfo", "--size", uri], capture_output=True, text=True, timeout=30)
if r.returncode == 0:
    sys.exit("nbdinfo was served over the limit of 4")
print("nbdinfo over the limit:", r.stderr.strip())
held.pop().shutdown()
deadline = time.monotonic() + 30
while True:   # the slot is free once the server has seen the client go
    h = nbd.NBD()
    try:
        h.connect_uri(uri)
        break
    except nbd.Error:
        if time.monotonic() > deadline:
            sys.exit("no client served 30 s after one of the four left")
        time.sleep(0.05)
if h.get_size() != 1048576:
    sys.exit("size %d" % h.get_size())
print("served again once a client left")
PY
cat "$WORK/py.out"
lines=$(grep -c "NBD: .* closed unanswered" "$WORK/udmd.log")
expect_eq "log lines about refused connections" 1 "$lines"
grep -q "udmd: NBD: 1 new connection(s) closed unanswered: 4 connections at once is the limit$" \
  "$WORK/udmd.log" || fail "the log line: $(grep NBD: "$WORK/udmd.log")"
stop_udmd
[ "$DAEMON_STATUS" = 0 ] || fail "udmd exited $DAEMON_STATUS"
echo PASS

# SPDX-License-Identifier: LGPL-2.1-or-later
# remove refuses a device another table uses, and an open one without -f.
. "$(dirname "$0")/lib.sh"
need_python_nbd
start_udmd
make_file "$WORK/a.img" 512 a
udm create low --table "0 1024 linear $WORK/a.img 0" || fail "create low"
udm create high --table "0 512 linear udm:low 512" || fail "create high"
expect_fail "remove low: the device is used by the table of another device" udm remove low
expect_fail "remove low: the device is used" udm remove --force low
expect_eq "low still there" "0 1024 linear $WORK/a.img 0" "$(udm table low)"
udm remove high || fail "remove high"
udm remove low || fail "remove low once high is gone"

# An NBD client holds the device open.
udm create busy --table "0 1024 linear $WORK/a.img 0" || fail "create busy"
mkfifo "$WORK/go"
timeout 60 "$PY_NBD" -I - "$(udm uri busy)" "$WORK/go" <<'PY' &
import nbd, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
h.pread(512, 0)
open(sys.argv[2]).read()  # hold the connection until told to go
try:
    h.pread(512, 0)
    print("read after forced removal succeeded")
except nbd.Error:
    pass
PY
client=$!
for i in $(seq 100); do
  udm info busy | grep -q "^Open count: *1" && break
  sleep 0.1
done
udm info busy | grep -q "^Open count: *1" || fail "the NBD client does not hold busy open"
expect_fail "remove busy: the device is open (open count 1)" udm remove busy
udm table busy >/dev/null || fail "busy vanished after a refused remove"
udm remove -f busy || fail "remove -f busy"
expect_fail "busy" udm info busy
echo go >"$WORK/go"
wait $client || fail "the client failed"

# Once its NBD client has gone, a device is no longer open (bounded wait:
# the server notices the hang-up asynchronously).
udm create used --table "0 1024 linear $WORK/a.img 0" || fail "create used"
expect_eq "bytes" "$(file_sum "$WORK/a.img")" "$(dev_sum used)"
for i in $(seq 50); do
  udm info used | grep -q "^Open count: *0" && break
  sleep 0.1
done
udm info used | grep -q "^Open count: *0" ||
  fail "open count stays $(udm info used | sed -n 's/^Open count: *//p') after the NBD client left"
udm remove used || fail "remove used after its client left"
echo ok

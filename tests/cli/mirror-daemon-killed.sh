# SPDX-License-Identifier: LGPL-2.1-or-later
# kill -9 of udmd while a client writes to a mirror with a disk log.  Leg b
# sits behind a 1 s write delay, so writes are in flight on it when the
# daemon dies: the client writes batches of 16 (NBD, concurrently), flushes,
# and records each acknowledged batch in a journal; then it starts a burst
# of writes it never waits for, sees their regions marked dirty in the log
# (so they are on their way to the legs), and the daemon is killed.  The legs then
# differ, and the log on disk calls their regions dirty.  After a restart
# the same mirror resyncs those regions: the legs end identical, and every
# write acknowledged before a completed flush is there.
. "$(dirname "$0")/lib.sh"
need_python_nbd
start_udmd
size=$((64 * 2048))
sparse "$WORK/a.img" 64M
sparse "$WORK/b.img" 64M
sparse "$WORK/log.img" 1M
mirror() { # the table: leg b, then log options
  echo "0 $size mirror disk $2 $WORK/log.img 1024 ${3:-}${3:+ }2 $WORK/a.img 0 $1 0"
}
udm create slow --table "0 $size delay $WORK/b.img 0 0 $WORK/b.img 0 1000" || fail "create slow"
# Both legs are zeros: nosync (the log starts clean).
udm create m --table "$(mirror udm:slow 3 nosync)" || fail "create"

cat >"$WORK/writer.py" <<'PY'
import hashlib, nbd, os, sys, time
uri, journal, marker, log = sys.argv[1:5]
blocks = (64 << 20) // 4096
h = nbd.NBD()
h.connect_uri(uri)
j = open(journal, "a")
keep = []  # buffers must outlive their commands

def block(i):
    return (i * 7919 % blocks) * 4096, hashlib.sha256(b"%d" % i).digest() * 128

def start(i):
    off, data = block(i)
    keep.append(nbd.Buffer.from_bytearray(bytearray(data)))
    return h.aio_pwrite(keep[-1], off)

i = 0
for batch in range(2):
    for k in range(16):
        start(i + k)
    while h.aio_in_flight() > 0:
        h.poll(-1)
    h.flush()
    j.write("".join("%d\n" % (i + k) for k in range(16)))
    j.flush()
    os.fsync(j.fileno())
    i += 16
def dirty():
    with open(log, "rb") as f:
        b = f.read(1024 + 16)[1024:]
    return sum(8 - bin(x).count("1") for x in b)

while dirty():  # the batches' regions cleaned: what is dirty next is the burst's
    time.sleep(0.01)
for k in range(64):  # never acknowledged: in flight when the daemon dies
    start(i + k)
while dirty() == 0:  # marked, so sent to the legs right after
    h.poll(10)
h.poll(100)  # leg a has them by now; leg b holds them for a second
open(marker, "w").close()
while True:
    h.poll(-1)
PY
: >"$WORK/journal"
"$PY_NBD" -I "$WORK/writer.py" "$("$UDM" uri m)" "$WORK/journal" "$WORK/marker" "$WORK/log.img" \
  2>"$WORK/writer.err" &
writer=$!
for i in $(seq 3000); do
  [ -e "$WORK/marker" ] && break
  kill -0 $writer 2>/dev/null || fail "the writer died: $(cat "$WORK/writer.err")"
  sleep 0.01
done
[ -e "$WORK/marker" ] || fail "the writer did not get to its burst: $(cat "$WORK/writer.err")"
kill -9 "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=
kill $writer 2>/dev/null
wait $writer 2>/dev/null
acked=$(wc -l <"$WORK/journal")
expect_eq "writes acknowledged before the kill" 32 "$acked"
cmp -s "$WORK/a.img" "$WORK/b.img" && fail "the legs agree after the kill: nothing was in flight"

# The log on disk calls the regions of the writes in flight dirty.
dirty=$("$PY_NBD" -I - "$WORK/log.img" <<'PY'
import sys
b = open(sys.argv[1], "rb").read()
print(sum(8 - bin(x).count("1") for x in b[1024:1024 + 128 // 8]))
PY
)
[ "$dirty" -ge 1 ] || fail "no region dirty in the log after a kill during writes"

rm -f "$UDM_RUNTIME_DIR/control.sock" "$UDM_RUNTIME_DIR/nbd.sock" # the dead daemon's
start_udmd
udm create m --table "$(mirror "$WORK/b.img" 2)" || fail "create after the restart"
timeout 60 "$UDM" wait --progress m 2>/dev/null || fail "resync after the restart"
udm status m | grep -q " 128/128 1 AA 3 disk $WORK/log.img A\$" || fail "status: $(udm status m)"
udm remove m || fail "remove"
cmp "$WORK/a.img" "$WORK/b.img" || fail "the legs differ after the resync"
"$PY_NBD" -I - "$WORK/b.img" "$WORK/journal" <<'PY' || fail "an acknowledged write is missing"
import hashlib, sys
img = open(sys.argv[1], "rb")
blocks = (64 << 20) // 4096
bad = 0
for line in open(sys.argv[2]):
    i = int(line)
    img.seek((i * 7919 % blocks) * 4096)
    if img.read(4096) != hashlib.sha256(b"%d" % i).digest() * 128:
        bad += 1
if bad:
    print("%d acknowledged writes lost" % bad)
    sys.exit(1)
PY
echo "ok ($acked writes acknowledged, $dirty regions dirty at the kill)"

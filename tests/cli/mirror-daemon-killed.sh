# SPDX-License-Identifier: LGPL-2.1-or-later
# kill -9 of udmd while a client writes to a mirror with a disk log (NBD,
# a flush after every 16 writes).  After a restart, the same table resyncs
# the regions the log calls dirty: the legs end identical, and every write
# acknowledged before a completed flush is there.
. "$(dirname "$0")/lib.sh"
need_python_nbd
start_udmd
size=$((64 * 2048))
sparse "$WORK/a.img" 64M
sparse "$WORK/b.img" 64M
sparse "$WORK/log.img" 1M
table="0 $size mirror disk 2 $WORK/log.img 1024 2 $WORK/a.img 0 $WORK/b.img 0"
udm create m --table "$table" || fail "create"
timeout 60 "$UDM" wait --progress m 2>/dev/null || fail "first resync"

# The writer: 4 KiB blocks at scattered offsets, each with its own bytes;
# after every 16 writes a flush, then their numbers go to the journal.
cat >"$WORK/writer.py" <<'PY'
import hashlib, nbd, os, sys
uri, journal, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
h = nbd.NBD()
h.connect_uri(uri)
blocks = size // 4096
j = open(journal, "a")
done = []
for i in range(blocks):
    off = (i * 7919 % blocks) * 4096
    data = (hashlib.sha256(b"%d" % i).digest() * 128)
    h.pwrite(data, off)
    done.append(i)
    if len(done) == 16:
        h.flush()
        j.write("".join("%d\n" % k for k in done))
        j.flush()
        os.fsync(j.fileno())
        done = []
PY
: >"$WORK/journal"
"$PY_NBD" -I "$WORK/writer.py" "$("$UDM" uri m)" "$WORK/journal" $((64 << 20)) 2>"$WORK/writer.err" &
writer=$!
for i in $(seq 100); do
  [ "$(wc -l <"$WORK/journal" 2>/dev/null || echo 0)" -ge 256 ] && break
  sleep 0.05
done
kill -0 $writer 2>/dev/null || fail "the writer ended before the kill: $(cat "$WORK/writer.err")"
kill -9 "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=
wait $writer 2>/dev/null
acked=$(wc -l <"$WORK/journal")
[ "$acked" -ge 256 ] || fail "only $acked writes acknowledged before the kill"

# The log on disk still calls some regions dirty: writes were in flight.
dirty=$("$PY_NBD" -I - "$WORK/log.img" <<'PY'
import sys
b = open(sys.argv[1], "rb").read()
regions = 128
bits = b[1024:1024 + regions // 8]
print(sum(8 - bin(x).count("1") for x in bits))
PY
)
[ "$dirty" -ge 1 ] || fail "no region dirty in the log after a kill during writes"

start_udmd
udm create m --table "$table" || fail "create after the restart"
timeout 60 "$UDM" wait --progress m 2>/dev/null || fail "resync after the restart"
udm status m | grep -q " 128/128 1 AA 3 disk $WORK/log.img A\$" || fail "status: $(udm status m)"
udm remove m || fail "remove"
cmp "$WORK/a.img" "$WORK/b.img" || fail "the legs differ after the resync"
"$PY_NBD" -I - "$WORK/a.img" "$WORK/journal" <<'PY' || fail "an acknowledged write is missing"
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

# SPDX-License-Identifier: LGPL-2.1-or-later
# What udm sends an NBD server for each kind of request, seen in nbdkit's
# log: FUA writes, write-zeroes with and without unmap, trim, flush; FUA
# emulated by a flush on a server without FUA; zeros written on a server
# without WRITE_ZEROES; the server's block sizes honoured (minimum as the
# device's block size, maximum as the largest request).
source "$(dirname "$0")/lib.sh"
require nbdkit qemu-io nbdinfo
remote_scratch

# qio COMMAND...: qemu-io over $uri, writeback cache so that FUA is only what we ask.
cat > "$WORK/qio" <<'QIO'
#!/bin/bash
args=()
for c in "$@"; do args+=(-c "$c"); done
exec qemu-io -f raw -t writeback "${args[@]}" "$uri"
QIO
chmod +x "$WORK/qio"
export PATH="$WORK:$PATH"

# log FILE PATTERN: how many lines of nbdkit's log match (requests, not replies).
count() { grep -E "$2" "$1" | grep -vc '\.\.\.[A-Za-z]* id=' || true; }

# 1. Everything mapped one to one on a server that has it all.
start_nbdkit "$WORK/k1.pid" -U "$WORK/k1.sock" --filter=log memory 16M logfile="$WORK/k1.log"
serve --table d="0 32768 linear nbd:nbd+unix:///?socket=$WORK/k1.sock 0" --run '
  set -e
  qio "write -P 0x11 0 64k" "write -f -P 0x22 64k 64k" "write -z 128k 64k" \
      "write -z -u 192k 64k" "discard 256k 64k" "flush" "read -P 0x22 64k 64k" >/dev/null
' || fail "qemu-io over nbd: failed"
stop_pidfile "$WORK/k1.pid"
log=$WORK/k1.log
[ "$(count "$log" 'Write id=.* offset=0x0 count=0x10000 fua=0')" = 1 ] || fail "plain write not seen as Write fua=0"
[ "$(count "$log" 'Write id=.* offset=0x10000 count=0x10000 fua=1')" = 1 ] || fail "FUA write not seen as Write fua=1"
[ "$(count "$log" 'Zero id=.* offset=0x20000 count=0x10000 trim=0')" = 1 ] || fail "write-zeroes without unmap not seen as Zero trim=0"
[ "$(count "$log" 'Zero id=.* offset=0x30000 count=0x10000 trim=1')" = 1 ] || fail "write-zeroes with unmap not seen as Zero trim=1"
[ "$(count "$log" 'Trim id=.* offset=0x40000 count=0x10000')" = 1 ] || fail "discard not seen as Trim"
[ "$(count "$log" 'Flush id=')" -ge 1 ] || fail "flush not seen as Flush"
# memory allows multi-conn: udm opened 4 connections.
[ "$(count "$log" 'connection=[0-9]+ Connect ')" = 4 ] || fail "expected 4 connections (multi-conn)"

# 2. No FUA on the server: a FUA write is a write and then a flush.
#    No WRITE_ZEROES: zeros are written.  One connection: no multi-conn.
start_nbdkit "$WORK/k2.pid" -U "$WORK/k2.sock" --filter=log --filter=nozero --filter=fua \
  --filter=multi-conn memory 16M zeromode=none multi-conn-mode=disable logfile="$WORK/k2.log"
serve --table d="0 32768 linear nbd:nbd+unix:///?socket=$WORK/k2.sock 0" --run '
  set -e
  qio "write -P 0x33 0 128k" "write -f -P 0x44 0 64k" "write -z 64k 64k" >/dev/null
  qio "read -P 0x44 0 64k" "read -P 0 64k 64k" >/dev/null
' || fail "qemu-io over a server without FUA and WRITE_ZEROES failed"
stop_pidfile "$WORK/k2.pid"
log=$WORK/k2.log
grep -E 'Write id=.* offset=0x0 count=0x10000 fua=0 \.\.\.' -A2 "$log" | grep -q 'Flush id=' ||
  fail "FUA without server FUA: no flush after the write"
[ "$(count "$log" 'Zero id=')" = 0 ] || fail "Zero sent to a server without WRITE_ZEROES"
[ "$(count "$log" 'Write id=.* offset=0x10000 count=0x10000')" = 1 ] || fail "write-zeroes not written as zeros"
[ "$(count "$log" 'connection=[0-9]+ Connect ')" = 1 ] || fail "more than one connection without multi-conn"

# 3. Block sizes: minimum 4096 becomes the device's block size, and no
#    request is larger than the maximum of 64 KiB.
start_nbdkit "$WORK/k3.pid" -U "$WORK/k3.sock" --filter=log --filter=blocksize-policy \
  memory 16M blocksize-minimum=4096 blocksize-preferred=4096 blocksize-maximum=65536 \
  blocksize-error-policy=error logfile="$WORK/k3.log"
dev="nbd:nbd+unix:///?socket=$WORK/k3.sock"
serve --table d="0 32768 linear $dev 0" --run '
  set -e
  nbdinfo "$uri" | grep -q "block_size_minimum: 4096"
  qio "write -P 0x55 0 1M" "read -P 0x55 0 1M" >/dev/null
' || fail "a server with 4096-byte blocks and 64 KiB requests: failed"
stop_pidfile "$WORK/k3.pid"
log=$WORK/k3.log
[ "$(count "$log" 'Write id=.* count=0x10000 ')" = 16 ] || fail "1 MiB write not split in 16 requests of 64 KiB"
! grep -E '(Write|Read) id=.* count=0x([2-9a-f][0-9a-f]{4}|[0-9a-f]{6,})' "$log" ||
  fail "a request larger than the server's maximum"
start_nbdkit "$WORK/k4.pid" -U "$WORK/k4.sock" --filter=blocksize-policy memory 16M \
  blocksize-minimum=4096 blocksize-error-policy=error
out=$(serve --table d="0 32760 linear nbd:nbd+unix:///?socket=$WORK/k4.sock 1" --run true 2>&1) &&
  fail "a table at sector 1 of a 4096-byte-block export was accepted"
echo "$out" | grep -q "line 1: linear: .*logical block size of 4096 bytes" ||
  fail "misaligned table: unclear error: $out"
echo PASS

# SPDX-License-Identifier: LGPL-2.1-or-later
# A lost NBD server: udm reconnects within its retry bound and the requests
# that waited complete (also with fio writing and verifying across a kill
# and restart); a server gone for good gives EIO, not a hang; one that comes
# back later serves the next request.
source "$(dirname "$0")/lib.sh"
require nbdkit qemu-io fio truncate timeout
remote_scratch
fio --enghelp 2>/dev/null | grep -qw nbd || require fio-nbd-engine

truncate -s 64M "$WORK/disk.img"
cat > "$WORK/server" <<'SH'
#!/bin/bash
# server start|kill: the nbdkit behind the table.
set -e
cd "$WORK"
case $1 in
  start) rm -f k.sock k.pid; nbdkit -P k.pid -U k.sock file disk.img
         for i in $(seq 100); do [ -s k.pid ] && break; sleep 0.05; done ;;
  kill) pid=$(cat k.pid); kill -9 "$pid"; while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done ;;
esac
SH
chmod +x "$WORK/server"
export PATH="$WORK:$PATH"
server start
trap 'kill -9 $(cat "$WORK/k.pid") 2>/dev/null; remote_cleanup' EXIT

# 20 attempts 200 ms apart: a server back within about 4 s is found again.
dev="nbd:nbd+unix:///?socket=$WORK/k.sock&retries=20&retry-delay=200"
cat > "$WORK/steps" <<'SH'
set -e
qemu-io -f raw -c "write -P 0x61 0 1M" "$uri" >/dev/null
echo "1. killed, restarted 1 s later: a read waits for it"
server kill
(sleep 1; server start) &
timeout 30 qemu-io -f raw -c "read -P 0x61 0 1M" "$uri" > "$WORK/read1" || {
  cat "$WORK/read1"; echo "read across a restart failed"; exit 1; }
wait
echo "2. fio writes and verifies while the server is killed and restarted"
(sleep 1; server kill; sleep 0.5; server start) &
fio --name=across --ioengine=nbd --uri="$uri" --offset=16M --size=16M --rw=randwrite --bs=4k \
  --iodepth=16 --rate=4m --verify=crc32c --do_verify=1 --verify_fatal=1 \
  --verify_state_save=0 --output-format=terse --minimal > "$WORK/fio" || {
  echo "fio across a restart failed"; exit 1; }
wait
echo "3. killed for good: EIO once the attempts are used up, not a hang"
server kill
sleep 5
rc=0
timeout 20 qemu-io -f raw -c "read 0 4k" "$uri" > "$WORK/read3" 2>&1 || rc=$?
[ "$rc" != 124 ] || { echo "a read on a lost server hangs"; exit 1; }
grep -q "Input/output error" "$WORK/read3" || { cat "$WORK/read3"; echo "no EIO from a lost server"; exit 1; }
echo "4. the server is back: the next request connects again"
server start
timeout 30 qemu-io -f raw -c "read -P 0x61 0 1M" "$uri" > "$WORK/read4" || {
  cat "$WORK/read4"; echo "no reconnect to a server that came back"; exit 1; }
SH
serve --table d="0 131072 linear $dev 0" --run "bash $WORK/steps" || fail "reconnect test failed"
echo PASS

# SPDX-License-Identifier: LGPL-2.1-or-later
# fio verify through one udm table over two NBD servers: the first half on
# nbdkit (file plugin) over a Unix socket, the second on qemu-storage-daemon
# over TCP on loopback.  Then the servers' files hold what udm shows.
source "$(dirname "$0")/lib.sh"
require fio nbdkit qemu-storage-daemon nbdcopy truncate cmp
remote_scratch
fio --enghelp 2>/dev/null | grep -qw nbd || require fio-nbd-engine

truncate -s 32M "$WORK/a.img" "$WORK/b.img"
start_nbdkit "$WORK/k.pid" -U "$WORK/k.sock" file "$WORK/a.img"
port=$(free_port)
start_qsd "$WORK/q.pid" \
  --blockdev driver=file,node-name=b,filename="$WORK/b.img" \
  --nbd-server addr.type=inet,addr.host=127.0.0.1,addr.port="$port" \
  --export type=nbd,id=e,node-name=b,name=b,writable=on

table="0 65536 linear nbd:nbd+unix:///?socket=$WORK/k.sock 0
65536 65536 linear nbd:nbd://127.0.0.1:$port/b 0"
serve --table disk="$table" --run '
  set -e
  common="--ioengine=nbd --uri=$uri --size=64M --verify=crc32c --do_verify=1"
  common="$common --verify_fatal=1 --verify_state_save=0 --output-format=terse --minimal"
  fio --name=randwrite --rw=randwrite --bs=4k --iodepth=32 $common > "$WORK/fio1"
  fio --name=bigwrite --rw=write --bs=1M --iodepth=8 $common > "$WORK/fio2"
  fio --name=mixed --rw=randrw --bsrange=512-256k --iodepth=16 $common > "$WORK/fio3"
  nbdcopy "$uri" "$WORK/udm.img"
' || fail "fio through nbd: backing failed (verification or I/O error)"

# What udm shows is what the servers hold, each half on its own server.
cmp -n 33554432 "$WORK/udm.img" "$WORK/a.img" || fail "nbdkit's file differs from udm's first half"
cmp -i 33554432:0 -n 33554432 "$WORK/udm.img" "$WORK/b.img" ||
  fail "qemu-storage-daemon's file differs from udm's second half"
echo PASS

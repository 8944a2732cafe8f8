# SPDX-License-Identifier: LGPL-2.1-or-later
# fio with verify=crc32c on an attached block device (random writes, then
# a verify-only pass), and the same bytes through NBD, the FUSE file
# RUNTIME/dev/NAME and the backing file.
. "$(dirname "$0")/lib.sh"
need_blockdev
need fio
need nbdcopy
start_udmd
sparse "$WORK/a.img" 64M
dev=$(udm create d --attach --table "0 $((64 * 2048)) linear $WORK/a.img 0") ||
  fail "create --attach"
common="--name=verify --filename=$dev --size=64M --ioengine=libaio --direct=1 --iodepth=16
  --bsrange=4k-128k --rw=randwrite --verify=crc32c --verify_fatal=1 --randseed=4242"
timeout 240 fio $common --do_verify=1 --output="$WORK/fio1" ||
  fail "fio randwrite+verify: $(cat "$WORK/fio1")"
timeout 240 fio $common --verify_only --output="$WORK/fio2" ||
  fail "fio verify_only: $(cat "$WORK/fio2")"

timeout 60 dd if="$dev" of="$WORK/blk" bs=1M iflag=direct status=none || fail "read $dev"
timeout 60 nbdcopy "$(udm uri d)" "$WORK/nbd" || fail "nbdcopy"
cmp "$WORK/blk" "$WORK/nbd" || fail "the block device and NBD differ"
cmp "$WORK/blk" "$UDM_RUNTIME_DIR/dev/d" || fail "the block device and the FUSE file differ"
cmp "$WORK/blk" "$WORK/a.img" || fail "the block device and the backing file differ"
cmp -s -n $((64 << 20)) "$WORK/blk" /dev/zero && fail "fio wrote nothing"
udm detach d || fail "detach"
udm remove d || fail "remove after detach"
echo ok

# SPDX-License-Identifier: LGPL-2.1-or-later
# fio with verify=crc32c through a udmd-served writeback cache on its
# attached block device, while promotions and demotions churn (a 4 MiB
# cache in front of a 32 MiB origin): random writes then their verify, hot
# reads of an 8 MiB region, a second verify-only pass (now partly hits), the same bytes through NBD;
# after the removal, cache_check is clean and a cleaner table writes every
# dirty block back so that the origin alone holds them.
. "$(dirname "$0")/lib.sh"
need_blockdev
need fio
need nbdcopy
need cache_check
start_udmd
sparse "$WORK/meta.img" 8M
sparse "$WORK/cache.img" 4M
sparse "$WORK/origin.img" 32M
table() { echo "0 $((32 * 2048)) cache $WORK/meta.img $WORK/cache.img $WORK/origin.img 64 1 writeback $1"; }
dev=$(udm create c --attach --table "$(table 'smq 0')") || fail "create --attach"
common="--name=verify --filename=$dev --size=32M --ioengine=libaio --direct=1 --iodepth=16
  --bsrange=4k-64k --rw=randwrite --verify=crc32c --verify_fatal=1 --randseed=4243"
timeout 240 fio $common --do_verify=1 --output="$WORK/fio1" ||
  fail "fio randwrite+verify: $(cat "$WORK/fio1")"
# A hot 8 MiB region read at random: smq promotes it, and since it is twice
# the cache, demotes as it goes.
timeout 120 fio --name=hot --filename="$dev" --size=8M --ioengine=libaio --direct=1 \
  --iodepth=16 --bs=4k --rw=randread --time_based --runtime=3 --output="$WORK/fio-hot" ||
  fail "fio hot reads: $(cat "$WORK/fio-hot")"
timeout 240 fio $common --verify_only --output="$WORK/fio2" ||
  fail "fio verify_only: $(cat "$WORK/fio2")"
# <used>/<total> <rh> <rm> <wh> <wm> <demotions> <promotions> <dirty>
read -r _ _ _ _ _ _ used rh rm wh wm dem pro dirty _ <<<"$(udm status c)"
echo "cache: $used cached, read hits $rh misses $rm, write hits $wh misses $wm, demotions $dem, promotions $pro, dirty $dirty"
[ "$pro" -gt 0 ] && [ "$dem" -gt 0 ] && [ "$rh" -gt 0 ] ||
  fail "no churn: promotions $pro, demotions $dem, read hits $rh"
timeout 60 dd if="$dev" of="$WORK/blk" bs=1M iflag=direct status=none || fail "read $dev"
timeout 60 nbdcopy "$(udm uri c)" "$WORK/nbd" || fail "nbdcopy"
cmp "$WORK/blk" "$WORK/nbd" || fail "the block device and NBD differ"
udm detach c || fail "detach"
udm remove c || fail "remove"
cache_check -q "$WORK/meta.img" || fail "cache_check after the removal"
udm create c --table "$(table 'cleaner 0')" || fail "create with cleaner"
no_dirty() { [ "$(udm status c | awk '{print $14}')" = 0 ]; }
wait_until no_dirty || fail "the cleaner left dirty blocks: $(udm status c)"
udm remove c || fail "remove the cleaner"
cmp "$WORK/blk" "$WORK/origin.img" || fail "the origin alone does not hold every byte"
cache_check -q "$WORK/meta.img" || fail "cache_check after the cleaner"
echo ok

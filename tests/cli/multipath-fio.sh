# SPDX-License-Identifier: LGPL-2.1-or-later
# multipath through an attached block device, with two udm devices (linear
# over one file) as its paths: fio writes and verifies while the paths fail
# in turn (error table loaded into one, then linear back and
# reinstate_path), and no error reaches fio.  Then queue_if_no_path with
# both paths down: a read waits, through a suspend and a noflush resume,
# and completes with the right bytes once a path is reinstated; another
# fails with EIO at fail_if_no_path.
. "$(dirname "$0")/lib.sh"
need_blockdev
need fio
start_udmd
S=$((64 * 2048))
sparse "$WORK/a.img" 64M
udm create p1 --table "0 $S linear $WORK/a.img 0" || fail "create p1"
udm create p2 --table "0 $S linear $WORK/a.img 0" || fail "create p2"
dev=$(udm create mp --attach --table "0 $S multipath 0 0 1 1 round-robin 0 2 1 udm:p1 1 udm:p2 1") ||
  fail "create --attach mp"

down() { udm load "$1" --table "0 $S error" && udm resume "$1" || fail "error table into $1"; }
up() {
  udm load "$1" --table "0 $S linear $WORK/a.img 0" && udm resume "$1" || fail "linear into $1"
  udm message mp 0 reinstate_path "udm:$1" || fail "reinstate_path udm:$1"
}

common="--name=verify --filename=$dev --size=64M --ioengine=libaio --direct=1 --iodepth=16
  --bsrange=4k-128k --rw=randwrite --verify=crc32c --verify_fatal=1 --randseed=77"
# paths_are WANT: INFO status shows the two paths' states as WANT ("A F").
paths_are() { [ "$(udm status mp | awk '{print $15, $18}')" = "$1" ]; }
# failed_or_fio_done WANT: paths are WANT, or fio has ended.
failed_or_fio_done() { paths_are "$1" || ! kill -0 $fio_pid 2>/dev/null; }

timeout 240 fio $common --do_verify=1 --loops=6 --output="$WORK/fio1" &
fio_pid=$!
downs=0
for p in p1 p2 p1 p2; do
  sleep 0.3
  kill -0 $fio_pid 2>/dev/null || break
  down $p
  downs=$((downs + 1))
  # Up again once fio's own I/O has failed the path, not after a time.
  want="F A"
  [ $p = p2 ] && want="A F"
  T=60 wait_until failed_or_fio_done "$want" || fail "$p down: paths $(udm status mp)"
  up $p
done
wait $fio_pid || fail "fio while paths failed: $(cat "$WORK/fio1")"
status=$(udm status mp)
fails=$(echo "$status" | awk '{print $16 + $19}')
[ "$downs" -ge 1 ] || fail "fio ended before a path went down (make it longer)"
[ "$fails" -ge 1 ] || fail "no path failed under fio: $status"
timeout 240 fio $common --verify_only --output="$WORK/fio2" ||
  fail "fio verify_only: $(cat "$WORK/fio2")"
echo "fio verify passed while paths failed ($fails path failures): $status"

# queue_if_no_path: both paths down, a read waits ...
udm message mp 0 queue_if_no_path || fail "queue_if_no_path"
down p1
down p2
timeout 60 dd if="$dev" of="$WORK/held" bs=1M count=4 iflag=direct status=none &
dd_pid=$!
# The read fails both paths, then waits.
wait_until paths_are "F F" || fail "paths $(udm status mp) with both down and a read"
kill -0 $dd_pid 2>/dev/null || fail "the read did not wait with every path down"
# ... across a suspend and a noflush resume (the I/O stays held) ...
udm suspend mp || fail "suspend with I/O held"
udm resume --noflush mp || fail "noflush resume with I/O held"
sleep 0.5
kill -0 $dd_pid 2>/dev/null || fail "the held read ended at resume with no path"
# ... and completes once a path is back.
up p2
wait $dd_pid || fail "the held read failed after reinstate_path"
cmp "$WORK/held" <(head -c 4M "$WORK/a.img") || fail "the held read returned wrong bytes"
echo "held read completed after reinstate_path"

# fail_if_no_path fails a held read.
down p2
timeout 60 dd if="$dev" of=/dev/null bs=4096 count=1 skip=9 iflag=direct 2>"$WORK/dd" &
dd_pid=$!
wait_until paths_are "F F" || fail "paths $(udm status mp) with both down and a second read"
kill -0 $dd_pid 2>/dev/null || fail "the second read did not wait"
udm message mp 0 fail_if_no_path || fail "fail_if_no_path"
wait $dd_pid && fail "the held read succeeded after fail_if_no_path"
grep -q "Input/output error" "$WORK/dd" || fail "not EIO: $(cat "$WORK/dd")"
up p1
up p2
udm detach mp || fail "detach"
udm remove mp || fail "remove"
echo ok

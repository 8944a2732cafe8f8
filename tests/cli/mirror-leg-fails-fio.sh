# SPDX-License-Identifier: LGPL-2.1-or-later
# A mirror leg on a stacked device that starts failing while fio writes and
# verifies through an attached block device, with handle_errors:
#   keep_log  the mirror goes on on the surviving leg by itself;
#   repair    the failed writes are held and an event raised; a watcher does
#             what dmeventd does (udm wait until a leg shows D, then a table
#             without the leg) and the held writes complete on the new table.
# Either way fio sees no error and verifies every block, the status shows
# the leg as D, and the surviving leg holds all the data.
. "$(dirname "$0")/lib.sh"
need_blockdev
need fio
start_udmd
size=$((64 * 2048))

run_variant() {
  local variant=$1 features=$2 watcher= dev
  sparse "$WORK/a.img" 64M
  sparse "$WORK/b.img" 64M
  udm create leg --table "0 $size linear $WORK/b.img 0" || fail "$variant: create leg"
  dev=$(udm create m --attach --table \
    "0 $size mirror core 2 1024 nosync 2 $WORK/a.img 0 udm:leg 0 $features") ||
    fail "$variant: create --attach mirror"
  if [ "$variant" = repair ]; then
    (
      # Every event, until the status shows a leg whose writes failed (a
      # read failing on the dead leg comes first when fio is verifying).
      n=0
      while :; do
        timeout 120 "$UDM" wait m "$n" || exit 1
        n=$("$UDM" info m | awk '/^Event number/ {print $3}')
        "$UDM" status m >"$WORK/status.$variant" || exit 1
        grep -q " 1 AD 1 core\$" "$WORK/status.$variant" && break
      done
      "$UDM" load m --table "0 $size linear $WORK/a.img 0" || exit 1
      "$UDM" resume m || exit 1
    ) 2>"$WORK/watcher.err" &
    watcher=$!
  fi
  local common="--filename=$dev --size=64M --ioengine=libaio --direct=1 --iodepth=16
    --bsrange=4k-128k --rw=randwrite --verify=crc32c --verify_fatal=1"
  timeout 240 fio --name=a --randseed=1 $common --do_verify=1 --output="$WORK/fio-a" &
  local fio_a=$!
  sleep 1
  # The leg dies under the mirror: every later read and write of it fails.
  udm load leg --table "0 $size error" || fail "$variant: load error leg"
  udm resume leg || fail "$variant: resume error leg"
  wait $fio_a || fail "$variant: fio across the failure: $(cat "$WORK/fio-a")"
  # A second pass starts after the failure, whatever the timing of the first.
  timeout 240 fio --name=b --randseed=2 $common --do_verify=1 --output="$WORK/fio-b" ||
    fail "$variant: fio after the failure: $(cat "$WORK/fio-b")"
  if [ -n "$watcher" ]; then
    wait $watcher || fail "repair: the watcher failed: $(cat "$WORK/watcher.err")"
  else
    udm status m >"$WORK/status.$variant" || fail "$variant: status"
  fi
  grep -Eq "^0 $size mirror 2 $WORK/a.img udm:leg [0-9]+/128 1 AD 1 core\$" "$WORK/status.$variant" ||
    fail "$variant: status after the failure: $(cat "$WORK/status.$variant")"
  timeout 240 fio --name=b --randseed=2 $common --verify_only --output="$WORK/fio-v" ||
    fail "$variant: verify_only: $(cat "$WORK/fio-v")"
  timeout 60 dd if="$dev" of="$WORK/blk" bs=1M iflag=direct status=none || fail "read $dev"
  cmp "$WORK/blk" "$WORK/a.img" || fail "$variant: the surviving leg misses data"
  cmp -s -n $((64 << 20)) "$WORK/blk" /dev/zero && fail "$variant: fio wrote nothing"
  udm detach m || fail "$variant: detach"
  udm remove m || fail "$variant: remove"
  udm remove leg || fail "$variant: remove leg"
  echo "$variant: ok ($(cat "$WORK/status.$variant"))"
}

run_variant keep_log "2 handle_errors keep_log"
run_variant repair "1 handle_errors"
echo ok

#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 256 writes, then 256 reads, in flight at once on one connection over a
# table whose segments answer at different speeds (linear segments between
# delay segments of 20 to 120 ms): replies come back out of submission
# order, and each carries its own request's bytes (aio.py order).  Then
# qemu-io, another client, does the same with aio_write / aio_read -P.
source "$(dirname "$0")/lib.sh"
require truncate qemu-io
PY=$(libnbd_python)
scratch

seg=4096 # sectors: 2 MiB
table=""
delays=(0 40 0 120 0 80 0 20)
for i in "${!delays[@]}"; do
  start=$((i * seg))
  if [ "${delays[$i]}" = 0 ]; then
    table+="$start $seg linear $WORK/backing $start"$'\n'
  else
    table+="$start $seg delay $WORK/backing $start ${delays[$i]}"$'\n'
  fi
done
truncate -s $((${#delays[@]} * seg * 512)) "$WORK/backing"
serve --table disk="$table" \
  --run "'$PY' '$TESTDIR/aio.py' order \"\$uri\" '$WORK/backing' $((seg * 512))" ||
  fail "out-of-order completion"

# qemu-io: 64 aio writes of distinct patterns (one per 64 KiB slot, the
# slots spread over the segments), aio_flush, then 64 aio reads checking them.
writes=() reads=()
for i in $(seq 0 63); do
  off=$(( (i % 8) * seg * 512 + (i / 8) * 65536 + 1048576 ))
  writes+=(-c "aio_write -P $((i + 1)) $off 64k")
  reads+=(-c "aio_read -P $((i + 1)) $off 64k")
done
serve --table disk="$table" \
  --run "qemu-io -f raw \"\$uri\" $(printf "'%s' " "${writes[@]}") -c aio_flush \
           $(printf "'%s' " "${reads[@]}") -c aio_flush" > "$WORK/qemu-io.log" 2>&1 ||
  fail "qemu-io: $(tail -5 "$WORK/qemu-io.log")"
if grep -q "Pattern verification failed\|error" "$WORK/qemu-io.log"; then
  cat "$WORK/qemu-io.log" >&2
  fail "qemu-io: aio pattern verification"
fi
[ "$(grep -c "^read 65536/65536 bytes" "$WORK/qemu-io.log")" = 64 ] ||
  fail "qemu-io: not 64 reads: $(head -5 "$WORK/qemu-io.log")"
echo PASS

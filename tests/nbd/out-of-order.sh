#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 256 writes, then 256 reads, in flight at once on one connection over a
# table whose segments answer at different speeds (linear segments between
# delay segments of 20 to 120 ms): replies come back out of submission
# order, and each carries its own request's bytes (aio.py order).
source "$(dirname "$0")/lib.sh"
require truncate
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
echo PASS

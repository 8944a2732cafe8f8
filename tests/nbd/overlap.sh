#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 256 reads at once over a delay target of 500 ms finish in about one delay,
# not 256 of them, nor 256 / threads: requests in flight overlap without a
# thread each.  The bound (5 s) is generous: this checks that requests
# overlap, it is no benchmark.  The time is printed as a measurement.
source "$(dirname "$0")/lib.sh"
require truncate
PY=$(libnbd_python)
scratch

truncate -s 1M "$WORK/backing"
serve --table disk="0 2048 delay $WORK/backing 0 500" \
  --run "'$PY' '$TESTDIR/aio.py' overlap \"\$uri\" 256 4096 > '$WORK/seconds'" ||
  fail "256 reads over a delay target"
secs=$(cat "$WORK/seconds")
echo "256 reads of 4 KiB, delay 500 ms, one connection: $secs s"
awk -v s="$secs" 'BEGIN { exit !(s < 5.0) }' ||
  fail "256 reads took $secs s: requests over the delay target did not overlap"
echo PASS

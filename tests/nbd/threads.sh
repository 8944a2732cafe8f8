#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A request in flight costs memory, not a thread: udmd has as many threads
# (/proc/PID/task) with 256 requests in flight on a connection as with one,
# each counted while its load runs (over a delay target, so the requests
# really are in flight).
. "$(dirname "$0")/../cli/lib.sh"
need_python_nbd
[ -d "/proc/self/task" ] || { [ "${CI:-}" = true ] && fail "no /proc/PID/task"; echo "SKIP: no /proc/PID/task"; exit 77; }
start_udmd
TESTDIR=$(cd "$(dirname "$0")" && pwd)
sparse "$WORK/backing" 8M
udm create slow --table "0 16384 delay $WORK/backing 0 50" || fail "create slow"
uri=$(udm uri slow)

threads_at() { # QD -> udmd's thread count in the middle of 4 s of load at QD
  timeout 30 "$PY_NBD" -I "$TESTDIR/aio.py" load "$uri" "$1" 4 &
  local client=$! n
  sleep 2
  n=$(ls "/proc/$DAEMON_PID/task" | wc -l)
  wait "$client" || fail "load at queue depth $1"
  echo "$n"
}
threads_at 1 >/dev/null # the first connection starts whatever udmd starts on first use
qd1=$(threads_at 1)
qd256=$(threads_at 256)
echo "udmd threads: $qd1 at queue depth 1, $qd256 at queue depth 256"
[ "$qd256" = "$qd1" ] || fail "udmd's threads grew with the queue depth: $qd1 -> $qd256"
echo PASS

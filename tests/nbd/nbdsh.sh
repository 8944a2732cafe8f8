# SPDX-License-Identifier: LGPL-2.1-or-later
# libnbd (python3-libnbd) drives every command: read/write with FUA, flush,
# cache, trim, write-zeroes (NO_HOLE, FAST_ZERO), block status (REQ_ONE),
# errors for out-of-range requests, EPERM on a read-only export, EIO from the
# error target, and simple (non-structured) replies.
source "$(dirname "$0")/lib.sh"
require truncate
PY=$(libnbd_python)
scratch

truncate -s 64M "$WORK/backing"
serve --table disk="0 131072 linear $WORK/backing 0" --table bad="0 2048 error" \
  --run "'$PY' '$TESTDIR/ops.py' rw \"\$uri\" &&
         '$PY' '$TESTDIR/ops.py' simple \"\$uri\" &&
         '$PY' '$TESTDIR/ops.py' eio \"nbd+unix:///bad?socket=\$sock\"" ||
  fail "read-write export"
serve --readonly --table disk="0 131072 linear $WORK/backing 0" \
  --run "'$PY' '$TESTDIR/ops.py' ro \"\$uri\"" || fail "read-only export"
echo PASS

#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# NBD_CMD_DISC right behind 64 writes to a slow (delay 300 ms) device: the
# server finishes the requests in flight, answers them, then closes (the
# NBD spec's order); the writes are in the backing file.
source "$(dirname "$0")/lib.sh"
require truncate
PY=$(libnbd_python)
scratch

truncate -s 1M "$WORK/backing"
serve --table disk="0 2048 delay $WORK/backing 0 300" \
  --run "'$PY' '$TESTDIR/aio.py' disc \"\$sock\" disk 64" ||
  fail "requests in flight at NBD_CMD_DISC"
"$PY" - "$WORK/backing" <<'PY' || fail "the writes before NBD_CMD_DISC are not in the file"
import struct, sys
data = open(sys.argv[1], "rb").read()
for i in range(64):
    want = b"".join(struct.pack(">II", i, k) for k in range(512))
    assert data[i * 4096:(i + 1) * 4096] == want, i
PY
echo PASS

#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A client sends thousands of reads at once and leaves the replies unread
# for a while: the server's socket fills, the reader's non-blocking sends
# come up short (32768 reads of 512 bytes: small batches the reader sends
# itself) or the sender waits (2048 of 16 KiB); every reply then arrives
# whole, once, with its request's bytes.
source "$(dirname "$0")/lib.sh"
require head
PY=$(libnbd_python)
scratch

head -c 8M /dev/urandom > "$WORK/backing"
serve --table disk="0 16384 linear $WORK/backing 0" \
  --run "'$PY' '$TESTDIR/aio.py' flood \"\$sock\" disk '$WORK/backing' 32768 512 &&
         '$PY' '$TESTDIR/aio.py' flood \"\$sock\" disk '$WORK/backing' 2048 16384" ||
  fail "replies to a client that reads them late"
echo PASS

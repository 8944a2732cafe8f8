# SPDX-License-Identifier: LGPL-2.1-or-later
# nbdcopy round trips (several connections, many requests in flight) keep
# every byte: file -> udm export -> file, and the backing file holds the data
# at the offset the linear table names.
source "$(dirname "$0")/lib.sh"
require nbdcopy truncate cmp dd
scratch

head -c 48M /dev/urandom > "$WORK/src"
truncate -s 64M "$WORK/backing"
# The export starts 1 MiB (2048 sectors) into the backing file.
serve --table disk="0 98304 linear $WORK/backing 2048" --run '
  set -e
  nbdcopy --connections=4 --requests=16 "$WORK/src" "$uri"
  nbdcopy --connections=4 "$uri" "$WORK/out"
  nbdcopy --connections=1 --request-size=65536 "$uri" "$WORK/out1"
' || fail "nbdcopy failed"

cmp "$WORK/src" "$WORK/out" || fail "read back differs (4 connections)"
cmp "$WORK/src" "$WORK/out1" || fail "read back differs (1 connection, 64K requests)"
dd if="$WORK/backing" bs=1M skip=1 count=48 status=none > "$WORK/placed"
cmp "$WORK/src" "$WORK/placed" || fail "backing file does not hold the data at 1 MiB"
# Nothing was written before the export's start.
cmp -n 1048576 "$WORK/backing" /dev/zero || fail "bytes before the export were touched"
echo PASS

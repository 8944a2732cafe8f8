# SPDX-License-Identifier: LGPL-2.1-or-later
# fio's NBD engine, many requests in flight, every block verified (crc32c).
source "$(dirname "$0")/lib.sh"
require fio truncate
scratch
grep -qw nbd <<<"$(fio --enghelp 2>/dev/null)" || require fio-nbd-engine

truncate -s 64M "$WORK/backing"
serve --table disk="0 131072 linear $WORK/backing 0" --run '
  set -e
  common="--ioengine=nbd --uri=$uri --size=64M --verify=crc32c --do_verify=1"
  common="$common --verify_fatal=1 --verify_state_save=0 --output-format=terse --minimal"
  fio --name=randwrite --rw=randwrite --bs=4k --iodepth=32 $common > "$WORK/fio1"
  fio --name=seqwrite --rw=write --bs=1M --iodepth=8 $common > "$WORK/fio2"
  fio --name=mixed --rw=randrw --bsrange=512-128k --iodepth=16 $common > "$WORK/fio3"
' || fail "fio failed (verification or I/O error)"
echo PASS

#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 'udm image ...' runs udm-image: formats are listed, a qcow2 image made by
# qemu-img is recognised, and its table gives a device with the image's bytes.
source "$(dirname "$0")/lib.sh"
need qemu-img

out=$(udm image formats) || fail "udm image formats failed"
grep -q "^qcow2" <<<"$out" || fail "no qcow2 in: $out"
grep -q "^udmz" <<<"$out" || fail "no udmz in: $out"

head -c 1048576 /dev/urandom > data.raw
qemu-img convert -q -f raw -O qcow2 data.raw img.qcow2
info=$(udm image info "$WORK/img.qcow2") || fail "udm image info failed"
[ "$(echo "$info" | head -n 1)" = "Format: qcow2" ] || fail "first line of info: $info"

table=$(udm image table "qcow2:$WORK/img.qcow2") || fail "udm image table failed"
[ "$table" = "0 2048 linear qcow2:$WORK/img.qcow2 0" ] || fail "table: $table"

udm run --table "q=$table" -- sh -c 'nbdcopy "$uri" out.raw' || fail "reading through NBD"
cmp data.raw out.raw || fail "the device does not read back the image's bytes"

st=0
udm image nosuchverb >/dev/null 2>&1 || st=$?
[ "$st" -ne 0 ] || fail "an unknown image verb succeeded"
echo PASS

#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The end of the recovery story: an ext4 image with a damaged range (as
# ddrescue's mapfile records it) becomes a udmz image; 'udm create --image
# --readonly --attach' gives a read-only block device that mounts, every
# file reads back intact, the damaged range fails with EIO, and 'udm info'
# counts the bad-block hits.
source "$(dirname "$0")/lib.sh"
need mkfs.ext4
need sha256sum
need_blockdev

# A 32 MiB ext4 with known files, made without mounting (mkfs -d).
mkdir files
for i in 1 2 3 4 5; do head -c $((i * 40000)) /dev/urandom > "files/f$i"; done
(cd files && sha256sum f*) > sums
truncate -s 32M fs.raw
mkfs.ext4 -q -b 4096 -E nodiscard -d files fs.raw || fail "mkfs.ext4"
# The last MiB is unused by so small a filesystem: ddrescue marks it bad.
printf '# Mapfile\n0x0 +\n0x0 0x01F00000 +\n0x01F00000 0x00100000 -\n' > fs.map
udm image convert --mapfile fs.map fs.raw fs.udmz >/dev/null || fail "convert"
udm image verify "udmz:$WORK/fs.udmz" >/dev/null || fail "verify of a good image"

# Relative image paths are made absolute for the daemon.
dev=$(udm create rescued --image udmz:fs.udmz --readonly --attach) || fail "create --image"
[ -b "$dev" ] || fail "not a block device: $dev"
udm table rescued | grep -q "^0 65536 linear udmz:$WORK/fs.udmz 0\$" ||
  fail "table: $(udm table rescued)"
mkdir mnt
timeout "$T" mount -o ro "$dev" mnt || fail "mount -o ro of the rescued image"
(cd mnt && sha256sum -c --quiet ../sums) || { umount mnt; fail "files differ"; }
timeout "$T" umount mnt || fail "umount"

st=0
timeout "$T" dd if="$dev" of=/dev/null bs=4096 skip=$((0x1F00000 / 4096)) count=16 \
  iflag=direct status=none 2>/dev/null || st=$?
[ "$st" -ne 0 ] || fail "reading the bad range succeeded"
timeout "$T" dd if="$dev" of=/dev/null bs=4096 count=16 iflag=direct status=none ||
  fail "reading a good range failed"
udm info rescued | grep -q "^Bad blocks hit: *[1-9]" || fail "info: $(udm info rescued)"
udm info --json rescued | python3 -c '
import json, sys
d = json.load(sys.stdin)
d = d[0] if isinstance(d, list) else d
sys.exit(0 if d["bad_block_hits"] > 0 else 1)' || fail "json bad_block_hits"
udm remove -f rescued || fail "remove"
echo PASS

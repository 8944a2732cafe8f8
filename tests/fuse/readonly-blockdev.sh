# SPDX-License-Identifier: LGPL-2.1-or-later
# A read-only udm device is a 0400 file that refuses writers, and attaches
# as a read-only block device: reads give the backing bytes, writes fail.
. "$(dirname "$0")/functions.sh"
requires_blockdev
requires blockdev cmp

head -c 32M /dev/urandom >"$tmp/d0"
inner <<EOS
[ "\$(blockdev --getro "\$dev")" = 1 ] || fail "\$dev is not read-only"
[ "\$(stat -c %a "\$file")" = 400 ] || fail "\$file has mode \$(stat -c %a "\$file")"
cmp "\$dev" "$tmp/d0" || fail "\$dev does not read the backing file"
cmp "\$file" "$tmp/d0" || fail "\$file does not read the backing file"
if err=\$(dd if=/dev/zero of="\$dev" bs=4k count=1 oflag=direct conv=notrunc 2>&1); then
  fail "a write to \$dev succeeded"
fi
echo "write to \$dev: \$err"
echo "\$err" | grep -Eq "Read-only file system|Operation not permitted|Permission denied" ||
  fail "unexpected error: \$err"
if err=\$(dd if=/dev/zero of="\$file" bs=4k count=1 conv=notrunc 2>&1); then
  fail "a write to \$file succeeded"
fi
echo "write to \$file: \$err"
echo "\$err" | grep -q "Read-only file system" || fail "unexpected error: \$err"
EOS
serve --readonly --table "disk=0 $((32 * 2048)) linear $tmp/d0 0" --attach disk \
  --run "bash $tmp/inner.sh"
echo PASS

# SPDX-License-Identifier: LGPL-2.1-or-later
# A reload that grows an attached device grows its FUSE file and, once the
# attach is told, its block device; data written before is still there.
. "$(dirname "$0")/functions.sh"
requires_blockdev
requires blockdev cmp

sparse "$tmp/d0" 128M
inner <<EOS
[ "\$(blockdev --getsize64 "\$dev")" = \$((64 << 20)) ] || fail "initial size"
head -c 1M /dev/urandom >"$tmp/data"
dd if="$tmp/data" of="\$dev" bs=1M oflag=direct status=none
echo "reload disk 0 $((128 * 2048)) linear $tmp/d0 0" >&\$ctl_w
read -r reply <&\$ctl_r
[ "\$reply" = ok ] || fail "reload: \$reply"
[ "\$(stat -c %s "\$file")" = \$((128 << 20)) ] || fail "file size after reload"
[ "\$(blockdev --getsize64 "\$dev")" = \$((128 << 20)) ] || fail "block device size after reload"
dd if="$tmp/data" of="\$dev" bs=1M seek=127 oflag=direct status=none
cmp -n 1M "\$dev" "$tmp/data" || fail "data at the start"
cmp -n 1M -i \$((127 << 20)):0 "\$dev" "$tmp/data" || fail "data in the grown part"
# A device in use by the loop driver cannot be removed.
echo "remove disk" >&\$ctl_w
read -r reply <&\$ctl_r
case \$reply in error:*) echo "remove while attached: \$reply" ;; *) fail "removed while attached" ;; esac
EOS
serve --table "disk=0 $((64 * 2048)) linear $tmp/d0 0" --attach disk --run "bash $tmp/inner.sh"
echo PASS

# SPDX-License-Identifier: LGPL-2.1-or-later
# udm run --attach: xfs on the block device of a striped device over three
# files, checked by xfs_repair -n and a remount; $dev is set, and the block
# device is detached before the private daemon goes.
. "$(dirname "$0")/lib.sh"
need_blockdev
need mkfs.xfs
need xfs_repair
export TMPDIR="$WORK"
for i in 1 2 3; do sparse "$WORK/d$i" 128M; done
table="0 $((3 * 128 * 2048)) striped 3 128 $WORK/d1 0 $WORK/d2 0 $WORK/d3 0"
mkdir "$WORK/mnt"
cat >"$WORK/inner.sh" <<EOS
set -eu
$(declare -f fail make_tree check_tree make_file)
WORK=$WORK TEST=$TEST
[ -b "\$dev" ] || fail "\\\$dev='\$dev' is not a block device"
echo "\$dev" >"$WORK/dev"
[ "\$(readlink "\$UDM_RUNTIME_DIR/block/s")" = "\$dev" ] || fail "no symlink block/s -> \$dev"
timeout 120 mkfs.xfs -q -f "\$dev"
timeout 30 mount "\$dev" "$WORK/mnt"
make_tree "$WORK/mnt" "$WORK/sums" xfs
timeout 60 umount "$WORK/mnt"
timeout 120 xfs_repair -n "\$dev" >"$WORK/repair" 2>&1 || fail "xfs_repair -n: \$(cat "$WORK/repair")"
timeout 30 mount "\$dev" "$WORK/mnt"
check_tree "$WORK/mnt" "$WORK/sums"
timeout 60 umount "$WORK/mnt"
EOS
timeout 300 "$UDM" run --table "s=$table" --attach s -- bash "$WORK/inner.sh" ||
  fail "the command under udm run failed"
dev=$(cat "$WORK/dev")
loop_bound "$dev" && fail "udm run left $dev bound"
[ -z "$(ls -d "$WORK"/udm-run.* 2>/dev/null)" ] || fail "runtime directories left"

# A second run over the same files mounts the same filesystem.
timeout 120 "$UDM" run --table "s=$table" --attach=s -- sh -c '
  mount -o ro "$dev" "$0/mnt" || exit 1
  (cd "$0/mnt" && sha256sum --quiet -c "$0/sums"); rc=$?
  umount "$0/mnt"; exit $rc' "$WORK" || fail "the files differ in a second run"

# Attaching a device that does not exist: exit 1, the command never runs.
expect_fail "device nosuch does not exist" \
  timeout 60 "$UDM" run --table "s=$table" --attach nosuch -- touch "$WORK/ran"
[ -e "$WORK/ran" ] && fail "the command ran although attach failed"
"$UDM" run --table "s=$table" --attach 2>/dev/null; [ $? = 2 ] || fail "--attach without NAME is a usage error"
echo ok

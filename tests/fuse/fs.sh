# SPDX-License-Identifier: LGPL-2.1-or-later
# fs_test FSTYPE LAYOUT: a filesystem on a udm device attached as a loop
# device over its FUSE file.  mkfs, a tree of files with known checksums,
# fsck clean, remounted and checked; then a second host (new export, new
# loop device) mounts the same backing files and checks again.
. "$(dirname "${BASH_SOURCE[0]}")/functions.sh"

fs_test() {
  local fs=$1 layout=$2 table mkfs fsck
  requires_blockdev
  requires sha256sum timeout mount umount
  case $fs in
  ext4) requires mkfs.ext4 e2fsck; mkfs="mkfs.ext4 -q -F"; fsck="e2fsck -fn" ;;
  xfs) requires mkfs.xfs xfs_repair; mkfs="mkfs.xfs -q -f"; fsck="xfs_repair -n" ;;
  esac
  case $layout in
  linear)
    sparse "$tmp/d0" 512M
    table="0 $((512 * 2048)) linear $tmp/d0 0"
    ;;
  striped)
    local i
    for i in 0 1 2; do sparse "$tmp/d$i" 200M; done
    table="0 $((3 * 200 * 2048)) striped 3 128 $tmp/d0 0 $tmp/d1 0 $tmp/d2 0"
    ;;
  esac
  mkdir -p "$tmp/mnt"

  inner <<EOS
echo "device \$dev, direct I/O \$dio"
$mkfs "\$dev"
mount "\$dev" "$tmp/mnt"
make_tree "$tmp/mnt" "$tmp/sums"
umount "$tmp/mnt"
$fsck "\$dev"
mount "\$dev" "$tmp/mnt"
check_tree "$tmp/mnt" "$tmp/sums"
umount "$tmp/mnt"
EOS
  serve --table "disk=$table" --attach disk --run "bash $tmp/inner.sh"

  inner <<EOS
mount "\$dev" "$tmp/mnt"
check_tree "$tmp/mnt" "$tmp/sums"
umount "$tmp/mnt"
$fsck "\$dev"
EOS
  serve --table "disk=$table" --attach disk --run "bash $tmp/inner.sh"
  # Each stripe got its share: the files are not empty.
  if [ "$layout" = striped ]; then
    for i in 0 1 2; do
      [ "$(allocated "$tmp/d$i")" -gt $((8 << 20)) ] || fail "stripe $i holds no data"
    done
  fi
  echo "PASS: $fs on $layout"
}

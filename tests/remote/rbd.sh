# SPDX-License-Identifier: LGPL-2.1-or-later
# rbd: backing on a real single-node Ceph cluster the test starts itself
# (ceph-cluster.sh): fio writes and verifies through a udm table over an RBD
# image; `rbd export` of the image equals what udm shows; a snapshot maps
# read-only with the bytes of its time; bad names, options, pools, images
# and snapshots, and an unreachable cluster, are refused clearly.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ceph-cluster.sh"
require ceph-mon ceph-mgr ceph-osd ceph-authtool monmaptool ceph rbd fio nbdcopy nbdinfo \
  qemu-io cmp
remote_scratch
grep -qw nbd <<<"$(fio --enghelp 2>/dev/null)" || require fio-nbd-engine

SECONDS=0
ceph_start "$WORK/ceph"
ceph_pool udmpool
rbd create --size 64M udmpool/disk || fail "rbd create"
echo "cluster up in ${SECONDS}s"

opts="conf=$CEPH_CONF&id=admin&keyring=$CEPH_DIR/keyring"
serve --table d="0 131072 linear rbd:udmpool/disk?$opts 0" --run '
  set -e
  common="--ioengine=nbd --uri=$uri --size=64M --verify=crc32c --do_verify=1"
  common="$common --verify_fatal=1 --verify_state_save=0 --output-format=terse --minimal"
  fio --name=randwrite --rw=randwrite --bs=4k --iodepth=32 --size=16M $common > "$WORK/fio1"
  fio --name=mixed --rw=randrw --bsrange=512-1M --iodepth=8 $common > "$WORK/fio2"
  qemu-io -f raw -c "write -z 60M 1M" -c "discard 61M 1M" -c "write -f -P 0x5e 62M 64k" \
    -c flush "$uri" >/dev/null
  nbdcopy "$uri" "$WORK/udm.img"
' || fail "fio through rbd: backing failed"
rbd export udmpool/disk "$WORK/export.img" >/dev/null 2>&1 || fail "rbd export"
cmp "$WORK/udm.img" "$WORK/export.img" || fail "rbd export differs from what udm shows"
cmp -i $((60 << 20)) -n $((2 << 20)) "$WORK/export.img" /dev/zero || fail "zeroed/discarded range not zero"
echo "fio and export checked at ${SECONDS}s"

# A snapshot: read-only, with the bytes of its time.
rbd snap create udmpool/disk@before >/dev/null 2>&1 || fail "rbd snap create"
serve --table d="0 131072 linear rbd:udmpool/disk?$opts 0" --run '
  qemu-io -f raw -c "write -P 0xa5 0 1M" "$uri" >/dev/null' || fail "write after the snapshot"
serve --table d="0 131072 linear rbd:udmpool/disk@before?$opts 0" --run '
  set -e
  nbdinfo "$uri" | grep -q "is_read_only: true"
  ! qemu-io -f raw -c "write 0 4k" "$uri" >/dev/null 2>&1
  nbdcopy "$uri" "$WORK/snap.img"
' || fail "the snapshot did not map read-only"
cmp "$WORK/snap.img" "$WORK/udm.img" || fail "the snapshot does not hold the bytes of its time"

# refused DEVICE EXPECTED-MESSAGE (an extended regex)
refused() {
  local out
  out=$(serve --table d="0 2048 linear $1 0" --run true 2>&1) && fail "accepted: $1"
  grep -Eq "line 1: linear: (.*: )?$2" <<<"$out" || fail "unclear error for $1: $out"
}
refused "rbd:disk" "bad RBD name 'rbd:disk': expected rbd:POOL/IMAGE.*no '/' between pool and image"
refused "rbd:/disk" "bad RBD name 'rbd:/disk'.*the pool is missing"
refused "rbd:udmpool/" "bad RBD name 'rbd:udmpool/'.*the image is missing"
refused "rbd:udmpool/disk@" "no snapshot name after '@'"
refused "rbd:udmpool/disk?$opts&user=x" "unknown RBD option 'user'"
refused "rbd:nopool/disk?$opts" "no pool 'nopool' in the Ceph cluster"
refused "rbd:udmpool/nodisk?$opts" "no image 'nodisk' in pool 'udmpool'"
refused "rbd:udmpool/disk@nosnap?$opts" "no image 'disk' with a snapshot 'nosnap'"
refused "rbd:udmpool/disk?conf=$WORK/none.conf" "cannot read the Ceph configuration $WORK/none.conf"
refused "rbd:udmpool/disk?$opts&mon_host=v2:127.0.0.1:$(free_port)&connect-timeout=1" \
  "cannot connect to the Ceph cluster as client.admin"
echo "done in ${SECONDS}s"
echo PASS

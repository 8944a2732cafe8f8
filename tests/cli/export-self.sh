# SPDX-License-Identifier: LGPL-2.1-or-later
# A table (or udm open) naming a file of udm's own FUSE export -- by path,
# relative, through symlinks, '..', a bind mount, RUNTIME/block/NAME or the
# attached loop device -- stacks on that udm device (with the cycle checks
# of udm:NAME) instead of making udmd wait on itself for good; paths that
# cannot be a device (the export directory, below a device file, an image
# inside the export) are refused clearly.  Every call is bounded, so a
# daemon that hangs fails the test instead of hanging it.
. "$(dirname "$0")/lib.sh"
need_blockdev
need nbdcopy
need qemu-img
RT=$UDM_RUNTIME_DIR
make_file "$WORK/a.img" 1024 a
# A plugin directory or key directory in the export is never read (that too
# waited on udmd).
UDM_DRIVER_PATH="$RT/dev" UDM_KEYS_DIR="$RT/dev" start_udmd
want=$(file_sum "$WORK/a.img")

udm create a --table "0 2048 linear $WORK/a.img 0" || fail "create a"

# stacks NAME SPEC: create NAME over SPEC; it reads a's bytes; udmd still answers.
stacks() {
  udm create "$1" --table "0 2048 linear $2 0" || fail "create $1 over $2"
  expect_eq "bytes of $1 over $2" "$want" "$(dev_sum "$1")"
  udm table "$1" | grep -qF " $2 0" || fail "table of $1 does not keep '$2': $(udm table "$1")"
  udm ls >/dev/null || fail "udmd stopped answering after $1"
}

stacks b "$RT/dev/a"
stacks b2 "raw:$RT/dev/a"
stacks rel rt/dev/a # udmd -f runs in $WORK
stacks dots "$RT/block/../dev/a"
stacks dots2 "$RT/dev/../dev/./a"
ln -s "$RT/dev" "$WORK/exp"
ln -s rt/block/../dev/a "$WORK/link-a" # relative, with ..
stacks viadir "$WORK/exp/a"
stacks vialink "$WORK/link-a"
# Holders are counted as for udm:a: a cannot go while they use it.
expect_fail "used by the table of another device (7 references)" udm remove a

# The device itself and cycles, by export path.
expect_fail "cycle" udm create self --table "0 2048 linear $RT/dev/self 0"
udm ls | grep -q '^self' && fail "a failed create left device self behind"
expect_fail "would make a cycle of devices" udm load a --table "0 2048 linear $RT/dev/a 0"
expect_fail "cycle" udm load a --table "0 2048 linear $RT/dev/b 0"
expect_fail "cycle" udm load a --table "0 2048 linear $WORK/exp/a 0"

# Paths that lead into the export but name no device.
expect_fail "no udm device named 'nosuch'" udm create n1 --table "0 8 linear $RT/dev/nosuch 0"
expect_fail "export directory" udm create n2 --table "0 8 linear $RT/dev/. 0"
expect_fail "not a directory" udm create n3 --table "0 8 linear $RT/dev/a/x 0"
expect_fail "image driver cannot read a udm device" \
  udm create n4 --table "0 8 linear qcow2:$RT/dev/a 0"

expect_fail "unknown image format 'nosuchfmt'" \
  udm create n6 --table "0 8 linear nosuchfmt:$WORK/a.img 0"
expect_fail "$RT/dev/a leads to udm's own export (device 'a'), which a target cannot read" \
  udm create n7 --table "0 8 crypt aes-xts-plain64 :64:logon:a 0 $WORK/a.img 0"

# A qcow2 image whose backing file is in the export: the driver must not
# even resolve that path.
timeout "$T" qemu-img create -q -f qcow2 -b "$RT/dev/a" -F raw "$WORK/top.qcow2" 1M ||
  fail "qemu-img create over the export"
expect_fail "backing file '$RT/dev/a': $RT/dev/a is the file of udm device 'a'" \
  udm create n5 --table "0 2048 linear qcow2:$WORK/top.qcow2?backing=allow-any 0"

# A bind mount of the export is the export (same file system).
mkdir "$WORK/bind"
if mount --bind "$RT/dev" "$WORK/bind" 2>/dev/null; then
  stacks viabind "$WORK/bind/a"
  udm remove viabind || fail "remove viabind"
  umount "$WORK/bind" || fail "umount the bind mount"
fi

# The block device of a (the loop device over RUNTIME/dev/a), and its link.
dev=$(udm attach a) || fail "attach a"
stacks blk "$RT/block/a"
stacks loop "$dev"
expect_fail "cycle" udm load a --table "0 2048 linear $dev 0"
udm detach a || fail "detach a"

# udm open on a file of the export: the crypt table names the export path.
head -c 64 /dev/urandom >"$WORK/key"
udm open --type plain -d "$WORK/key" -c aes-xts-plain64 -s 512 "$RT/dev/a" pa ||
  fail "open over the export"
udm open --type plain -d "$WORK/key" -c aes-xts-plain64 -s 512 "$WORK/a.img" pf ||
  fail "open over the file"
expect_eq "plain over the export and over the file" "$(dev_sum pf)" "$(dev_sum pa)"
udm info a | grep -q . || fail "udmd stopped answering after open"

stop_udmd
[ "$DAEMON_STATUS" = 0 ] || fail "udmd exited $DAEMON_STATUS on SIGTERM"
echo ok

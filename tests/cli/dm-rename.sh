# SPDX-License-Identifier: LGPL-2.1-or-later
# udm rename as dmsetup rename: stacked tables keep using the device and
# print its new name, the FUSE file and the block device's link follow, a
# name in use is refused, and --setuuid sets a uuid only once.
. "$(dirname "$0")/lib.sh"
need nbdcopy
start_udmd
make_file "$WORK/a.img" 1024 a

udm create low --table "0 2048 linear $WORK/a.img 0" || fail "create low"
udm create mid --table "0 1024 linear udm:low 512" || fail "create mid"
udm create top --table "0 512 linear /dev/mapper/mid 0
512 8 linear $UDM_RUNTIME_DIR/dev/mid 8" || fail "create top"
before=$(dev_sum top)

udm rename mid middle || fail "rename mid middle"
expect_eq "ls after rename" "low	(253:0)
middle	(253:1)
top	(253:2)" "$(udm ls)"
# The stacked table names the device, not its old name: /dev/mapper/NEW,
# or udm:NEW where it went through the export.
expect_eq "the stacked table prints the new name" "0 512 linear /dev/mapper/middle 0
512 8 linear udm:middle 8" "$(udm table top)"
expect_eq "the renamed device's own table" "0 1024 linear udm:low 512" "$(udm table middle)"
expect_eq "bytes through the stack after the rename" "$before" "$(dev_sum top)"
# What table prints loads again and gives the same device.
udm load top --table "$(udm table top)" && udm resume top || fail "reload top's printed table"
expect_eq "bytes after reloading the printed table" "$before" "$(dev_sum top)"
expect_eq "info of the new name" "Name:              middle" "$(udm info middle | head -1)"
expect_fail "device mid does not exist" udm info mid

# The FUSE file follows, when there is an export.
if [ -d "$UDM_RUNTIME_DIR/dev" ] && mountpoint -q "$UDM_RUNTIME_DIR/dev"; then
  [ -f "$UDM_RUNTIME_DIR/dev/middle" ] || fail "no file dev/middle after the rename"
  [ -e "$UDM_RUNTIME_DIR/dev/mid" ] && fail "dev/mid is still there"
  expect_eq "the file holds the device" "$(dev_sum middle)" "$(file_sum "$UDM_RUNTIME_DIR/dev/middle")"
  # Only udm rename renames devices: a rename in the export is refused.
  mv "$UDM_RUNTIME_DIR/dev/low" "$UDM_RUNTIME_DIR/dev/other" 2>/dev/null &&
    fail "mv in the export renamed a device"
  expect_eq "mv did not rename" "low" "$(udm ls | cut -f1 | head -1)"
fi

# A name in use is refused, and nothing changes.
expect_fail "rename low: a device named 'top' already exists" udm rename low top
expect_eq "ls after the refused rename" "low	(253:0)
middle	(253:1)
top	(253:2)" "$(udm ls)"
expect_fail "invalid device name 'a/b'" udm rename low a/b
expect_fail "device nosuch does not exist" udm rename nosuch x
"$UDM" rename low 2>/dev/null; [ $? = 2 ] || fail "rename with one argument is a usage error"
# Renaming to its own name changes nothing (as the kernel).
udm rename low low || fail "rename to the same name"

# --setuuid: only for a device without one; a uuid in use is refused.
udm rename low --setuuid UDM-low-1 || fail "setuuid"
expect_eq "uuid set" "UUID: UDM-low-1" "$(udm info low | grep '^UUID')"
expect_fail "already has uuid 'UDM-low-1'" udm rename low --setuuid UDM-low-2
udm rename low --setuuid UDM-low-1 || fail "setting the same uuid again"
expect_fail "uuid 'UDM-low-1' is already used by device 'low'" udm rename top --setuuid UDM-low-1
# -u selects the device by uuid, as dmsetup's rename -u UUID NEW_NAME.
udm rename -u UDM-low-1 bottom || fail "rename -u UUID"
expect_eq "table of top after its lower devices were renamed" "0 512 linear /dev/mapper/middle 0
512 8 linear udm:middle 8" "$(udm table top)"
expect_eq "middle uses the renamed bottom" "0 1024 linear udm:bottom 512" "$(udm table middle)"

# An attached device: its block device stays, the link RUNTIME/block/NAME moves.
if [ "$(id -u)" = 0 ] && [ -c /dev/fuse ] && [ -c /dev/loop-control ]; then
  dev=$(udm attach top) || fail "attach top"
  udm rename top summit || fail "rename an attached device"
  [ -L "$UDM_RUNTIME_DIR/block/top" ] && fail "the old link block/top stays"
  expect_eq "the link follows" "$dev" "$(readlink "$UDM_RUNTIME_DIR/block/summit")"
  udm info summit | grep -qx "Block device:      $dev" || fail "info lost the block device"
  # The loop device's backing file is the renamed file (the kernel's name followed).
  expect_eq "backing file" "$UDM_RUNTIME_DIR/dev/summit" \
    "$(cat "/sys/block/$(basename "$dev")/loop/backing_file")"
  expect_eq "bytes of the block device" "$before" "$(file_sum "$dev")"
  udm detach summit || fail "detach after the rename"
  [ -L "$UDM_RUNTIME_DIR/block/summit" ] && fail "the link stays after detach"
fi
echo ok

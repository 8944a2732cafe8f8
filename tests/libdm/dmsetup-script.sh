#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The kernel comparison of dmsetup on udm's libdevmapper: a shell script
# written for dmsetup (tests/kernel/scripts/dmsetup-basics.sh: create,
# table, info -c, suspend, load, resume, rename, deps, remove_all, ls) runs
# with Debian's dmsetup on this library, and prints the lines the kernel
# VM's dmsetup printed for it (tests/kernel/scenarios/dmsetup-script.kernel,
# recorded by tests/kernel/record-kernel and checked against the kernel by
# the kernel suite on every run), major:minor
# of device-mapper devices aside (the kernel's 253:N, here the attached
# loop devices' numbers).  The disk is a loop device, as in the VM.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
need dmsetup
need losetup
need_blockdev
start_udmd
sparse "$WORK/disk.img" 1M
disk=$(losetup -f --show "$WORK/disk.img") || fail "losetup"
trap 'st=$?; losetup -d "$disk"; (exit $st); cleanup' EXIT
out=$(with_libdm sh "$here/../kernel/scripts/dmsetup-basics.sh" "$disk" 2>"$WORK/err") ||
  fail "the script failed: $(cat "$WORK/err")"
# Device numbers other than the disk's (already DISK) become MAJ, MIN.
numbers() { sed -E -e 's/[ 	]*$//' -e 's/\([0-9]+, [0-9]+\)/(MAJ, MIN)/g'; }
expected=$(sed -n '/^exec sh @\/dmsetup-basics.sh /,/^[^ ]/{/^  /s/^  //p}' \
  "$here/../kernel/scenarios/dmsetup-script.kernel")
grep -qx done <<<"$expected" || fail "dmsetup-script.kernel holds no complete run of the script"
expect_eq "the script's lines" "$(numbers <<<"$expected")" \
  "$(printf '%s\n' "$out" | numbers)"
expect_eq "nothing on stderr" "" "$(cat "$WORK/err")"
echo ok

#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The kernel comparison of dmsetup's verbs on udm's libdevmapper:
# tests/kernel/scripts/dmsetup-verbs.sh (version, targets, create, ls
# --tree, table --showkeys, status, info long and -c columns, deps,
# message, wait, rename, mknodes, suspend, resume, remove) runs with
# Debian's dmsetup on this library and a udmd, and prints what the VM's
# dmsetup printed on the kernel: tests/kernel/scenarios/dmsetup-libdm.kernel,
# recorded by tests/kernel/record-kernel and checked against the kernel by
# the kernel suite on every run.  The script shows every device number as
# the device it belongs to ({NAME}, DISK), so the kernel's 253:N and the
# attached loop devices' numbers compare.  Two lines differ by design
# (docs/libdevmapper.md): "Library version" (this library's, not Debian's
# libdevmapper in the VM) and the targets' versions (udm's own, as "udm
# targets" says; docs/architecture.md), and udm lists only its targets.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
set -o pipefail
need dmsetup
need losetup
need_blockdev
check_uses_libdm "$(command -v dmsetup)"
start_udmd
recorded=$here/../kernel/scenarios/dmsetup-libdm.kernel
[ -s "$recorded" ] || fail "no recorded kernel output at $recorded"
sparse "$WORK/disk.img" 1M
disk=$(losetup -f --show "$WORK/disk.img") || fail "losetup"
trap 'st=$?; losetup -d "$disk"; (exit $st); cleanup' EXIT
out=$(LC_ALL=C with_libdm sh "$here/../kernel/scripts/dmsetup-verbs.sh" "$disk" 2>"$WORK/err") ||
  fail "the script failed: $(cat "$WORK/err")"

# The kernel's lines: those under the exec line, unindented.
sed -n '/^kernel: exec sh @\/dmsetup-verbs.sh /,/^[^ ]/{/^  /s/^  //p}' "$recorded" >"$WORK/kernel"
grep -q '^done$' "$WORK/kernel" || fail "$recorded holds no complete run of the script"
printf '%s\n' "$out" | sed 's/[ 	]*$//' >"$WORK/udm"

# The targets: udm's own versions, and only the types both have.
targets() { sed -n '/^== targets$/,/^== /{/^== /!p}' "$1"; }
names() { targets "$1" | cut -d' ' -f1 | sort; }
comm -12 <(names "$WORK/kernel") <(names "$WORK/udm") >"$WORK/common"
[ "$(wc -l <"$WORK/common")" -ge 8 ] || fail "too few target types in common: $(cat "$WORK/common")"
vless() { targets "$1" | sed -E 's/ v[0-9]+\.[0-9]+\.[0-9]+$/ vX.Y.Z/' | grep -wFf "$WORK/common" | sort; }
expect_eq "target lines (versions aside)" "$(vless "$WORK/kernel")" "$(vless "$WORK/udm")"
grep -qx 'Library version:   1\.02\.[0-9]* (udm [0-9.]*)' "$WORK/udm" ||
  fail "library version: $(grep Library "$WORK/udm")"
rest() { sed -e '/^== targets$/,/^== /{/^== /!d}' -e '/^Library version: /d' "$1"; }
diff -u <(rest "$WORK/kernel") <(rest "$WORK/udm") >"$WORK/diff" ||
  fail "dmsetup on udm's libdevmapper printed otherwise than on the kernel:
$(cat "$WORK/diff")"
expect_eq "nothing on stderr" "" "$(cat "$WORK/err")"
[ -z "$(ls "$DM_DEV_DIR/mapper")" ] || fail "nodes left: $(ls "$DM_DEV_DIR/mapper")"
echo ok

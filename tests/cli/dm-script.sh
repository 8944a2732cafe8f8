# SPDX-License-Identifier: LGPL-2.1-or-later
# A shell script written for dmsetup (tests/kernel/scripts/dmsetup-basics.sh)
# runs unchanged against udmd, with a "dmsetup" on PATH that is udm, and
# prints the lines the kernel VM's dmsetup printed for it: those of
# tests/kernel/scenarios/dmsetup-script.kernel (recorded by
# tests/kernel/record-kernel; the kernel suite checks on every run that the
# kernel still prints them, and compares the two sides of the scenario
# again).  Trailing blanks are dropped there, and here too.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
start_udmd
sparse "$WORK/disk.img" 1M
mkdir "$WORK/bin"
ln -s "$UDM" "$WORK/bin/dmsetup"
out=$(PATH="$WORK/bin:$PATH" timeout 60 sh "$here/../kernel/scripts/dmsetup-basics.sh" "$WORK/disk.img" 2>"$WORK/err") ||
  fail "the script failed: $(cat "$WORK/err")"
expected=$(sed -n '/^exec sh @\/dmsetup-basics.sh /,/^[^ ]/{/^  /s/^  //p}' \
  "$here/../kernel/scenarios/dmsetup-script.kernel")
grep -qx done <<<"$expected" || fail "dmsetup-script.kernel holds no complete run of the script"
expect_eq "the script's lines" "$expected" "$(printf '%s\n' "$out" | sed 's/[ 	]*$//')"
expect_eq "nothing on stderr" "" "$(cat "$WORK/err")"
echo ok

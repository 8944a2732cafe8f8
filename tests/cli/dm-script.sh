# SPDX-License-Identifier: LGPL-2.1-or-later
# A shell script written for dmsetup (tests/kernel/scripts/dmsetup-basics.sh)
# runs unchanged against udmd, with a "dmsetup" on PATH that is udm, and
# prints the lines the kernel VM's dmsetup printed for it
# (tests/cli/dm-script.expected, recorded from
# tests/kernel/scenarios/dmsetup-script.scn under Linux 6.12, where the
# kernel suite compares the two sides again on every run; trailing blanks
# are dropped there, and here too).
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
start_udmd
sparse "$WORK/disk.img" 1M
mkdir "$WORK/bin"
ln -s "$UDM" "$WORK/bin/dmsetup"
out=$(PATH="$WORK/bin:$PATH" timeout 60 sh "$here/../kernel/scripts/dmsetup-basics.sh" "$WORK/disk.img" 2>"$WORK/err") ||
  fail "the script failed: $(cat "$WORK/err")"
expect_eq "the script's lines" "$(cat "$here/dm-script.expected")" "$(printf '%s\n' "$out" | sed 's/[ 	]*$//')"
expect_eq "nothing on stderr" "" "$(cat "$WORK/err")"
echo ok

#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# udm-image convert and verify report progress through the tools' one
# progress display (tools/common/progress.c, as udm wait --progress): a line
# per percent on standard error with --progress, a bar redrawn in place on a
# terminal, nothing at all in a script without --progress; standard output
# keeps only the result.
source "$(dirname "$0")/lib.sh"
need script

head -c 4194304 /dev/urandom >"$tmp/src.raw"

# --progress off a terminal: lines, rising to 100%, on stderr only.
"$UDM_IMAGE" convert --progress --chunk-size 64K "$tmp/src.raw" "$tmp/a.udmz" \
  >"$tmp/out" 2>"$tmp/err" || fail "convert --progress: $(cat "$tmp/err")"
grep -q "^$tmp/a.udmz: 4194304 bytes in 64 chunks" "$tmp/out" || fail "convert output: $(cat "$tmp/out")"
[ "$(wc -l <"$tmp/out")" = 1 ] || fail "progress on stdout: $(cat "$tmp/out")"
tail -1 "$tmp/err" | grep -qx "convert $tmp/src.raw: 100% (4194304/4194304)" ||
  fail "convert: no 100% line: $(tail -3 "$tmp/err")"
grep -qx "convert $tmp/src.raw: 50% (2097152/4194304)" "$tmp/err" || fail "convert: no 50% line"
n=$(grep -c "^convert $tmp/src.raw: [0-9]*% " "$tmp/err")
[ "$n" -ge 50 ] || fail "convert: only $n progress lines"
awk -F'[:%]' '{ if ($2 + 0 < last) exit 1; last = $2 + 0 }' "$tmp/err" || fail "convert: percentages go back"

"$UDM_IMAGE" verify --progress "$tmp/a.udmz" >"$tmp/out" 2>"$tmp/err" ||
  fail "verify --progress: $(cat "$tmp/err")"
grep -qx "$tmp/a.udmz: OK" "$tmp/out" || fail "verify output: $(cat "$tmp/out")"
tail -1 "$tmp/err" | grep -qx "verify $tmp/a.udmz: 100% (4194304/4194304)" ||
  fail "verify: no 100% line: $(tail -3 "$tmp/err")"
n=$(grep -c "^verify $tmp/a.udmz: [0-9]*% " "$tmp/err")
[ "$n" -ge 50 ] || fail "verify: only $n progress lines"

# In a script (no terminal, no --progress): quiet.
"$UDM_IMAGE" convert "$tmp/src.raw" "$tmp/b.udmz" >/dev/null 2>"$tmp/err" || fail "convert"
[ -s "$tmp/err" ] && fail "convert printed progress in a script: $(head -3 "$tmp/err")"
"$UDM_IMAGE" verify "$tmp/b.udmz" >/dev/null 2>"$tmp/err" || fail "verify"
[ -s "$tmp/err" ] && fail "verify printed progress in a script: $(head -3 "$tmp/err")"

# On a terminal (script(1) gives one): the bar, redrawn in place, ending at 100%.
script -qec "'$UDM_IMAGE' verify '$tmp/b.udmz' 2>&1 >/dev/null" "$tmp/typescript" \
  >/dev/null </dev/null || fail "verify on a terminal"
tr '\r' '\n' <"$tmp/typescript" >"$tmp/screen"
grep -q "^verify $tmp/b.udmz \[#*\.*\] *[0-9.]*% " "$tmp/screen" || fail "no bar: $(head -c 300 "$tmp/typescript")"
grep -q "^verify $tmp/b.udmz \[#\{40\}\] 100.0% 4194304/4194304" "$tmp/screen" ||
  fail "the bar does not reach 100%: $(tail -c 300 "$tmp/typescript")"
echo "ok: progress lines with --progress, a bar on a terminal, quiet in scripts"

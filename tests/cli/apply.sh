# SPDX-License-Identifier: LGPL-2.1-or-later
# udm apply FILE (udmtab(5)): bad lines refused as FILE:LINE with nothing
# changed; --dry-run prints the plan and changes nothing; apply creates what
# is missing (a table file, an inline table, an image, a crypt table whose key
# is a reference into udmd's key directory); a second apply changes nothing
# and says so; a changed table is reloaded (the data stays), a table written
# differently but the same is left; devices the file does not name are left
# alone; a device that differs in readonly is refused without change;
# "attach" attaches once, and again after a detach.
. "$(dirname "$0")/lib.sh"
need_blockdev
mkdir "$WORK/keys" "$WORK/tables"
head -c 64 /dev/urandom >"$WORK/keys/vol1"
make_file "$WORK/disk.img" 1024 disk
truncate -s 1M "$WORK/secret.img"
printf '0 1024 linear %s 0\n1024 1024 zero\n' "$WORK/disk.img" >"$WORK/tables/data.table"
UDM_KEYS_DIR="$WORK/keys" start_udmd
# A table as udm prints it, without dmsetup's blank after a target with no parameters.
tbl() { udm table "$1" | sed 's/ *$//'; }

tab="$WORK/udmtab"
cat >"$tab" <<EOF
# name   table                                   options
data     $WORK/tables/data.table                 -
z        "0 16 zero"                             readonly,uuid=Z-1
img      image=raw:$WORK/disk.img
secret   "0 2048 crypt aes-xts-plain64 :64:logon:vol1 0 $WORK/secret.img 0"
EOF

# Bad lines: each refused naming FILE:LINE, nothing created.
bad() { # bad LINE-TEXT EXPECTED-MESSAGE
  { head -2 "$tab"; printf '%s\n' "$1"; } >"$WORK/bad"
  udm apply "$WORK/bad" >"$WORK/out" 2>"$WORK/err" && fail "apply took: $1"
  grep -qF "$WORK/bad:3: $2" "$WORK/err" || fail "'$1': $(cat "$WORK/err")"
  grep -q "nothing changed" "$WORK/err" || fail "'$1': no 'nothing changed'"
  [ -s "$WORK/out" ] && fail "'$1' printed a plan: $(cat "$WORK/out")"
  expect_eq "devices after a bad file ($1)" "" "$(udm ls 2>&1 | grep -v 'No devices found')"
}
bad "k \"0 8 crypt aes-xts-plain64 $(printf '%064d' 7) 0 $WORK/secret.img 0\"" \
  "device k: a crypt key written in the table"
bad "x $WORK/tables/missing.table" "cannot open table file $WORK/tables/missing.table"
bad "x tables/data.table" "'tables/data.table' is not a table"
bad "x \"0 8 zero\" attach,frobnicate" "unknown option 'frobnicate'"
bad "x \"0 8 zero" "a quoted table is not closed"
bad "x" "device x has no table"
bad "x \"0 8 zero\" \"ro" "an unclosed quote after the table"
bad "data \"0 8 zero\"" "device data is already named on line 2"
bad "x \"0 8 zero\" - extra" "unexpected 'extra' after the options"
bad "x image=raw:disk.img" "image=raw:disk.img: the image path must be absolute"
udm apply "$WORK/none" 2>"$WORK/err" && fail "apply of a missing file"
grep -qF "apply: cannot open $WORK/none: No such file" "$WORK/err" || fail "missing file: $(cat "$WORK/err")"

# The plan, printed, changes nothing.
out=$(udm apply --dry-run "$tab") || fail "dry run: $out"
expect_eq "dry run" "would create data
would create z
would create img
would create secret" "$out"
expect_eq "devices after the dry run" "" "$(udm ls 2>&1 | grep -v 'No devices found')"

out=$(udm apply "$tab") || fail "apply: $out"
expect_eq "first apply" "create data
create z
create img
create secret" "$out"
expect_eq "data's table" "0 1024 linear $WORK/disk.img 0
1024 1024 zero" "$(tbl data)"
info=$(udm info z)
grep -q "^State: *ACTIVE (READ-ONLY)" <<<"$info" || fail "z is not read-only: $info"
grep -q "^UUID: *Z-1" <<<"$info" || fail "z lacks its uuid: $info"
expect_eq "img over the whole image" "0 2048 linear raw:$WORK/disk.img 0" "$(tbl img)"
expect_eq "the crypt key stays a reference" "0 2048 crypt aes-xts-plain64 :64:logon:vol1 0 $WORK/secret.img 0" \
  "$(tbl secret)"

# Idempotent: the second apply changes nothing and says so.
udm create other --table "0 8 zero"
out=$(udm apply "$tab") || fail "second apply: $out"
expect_eq "second apply" "unchanged data
unchanged z
unchanged img
unchanged secret
nothing to do: the 4 devices of $tab are as it says" "$out"
expect_eq "the device the file does not name" "0 8 zero" "$(tbl other)"

# A changed table file: reloaded (dry run first); the same table written with
# other blanks is not a change.
printf '0   1024 linear %s 0\n\n# grown\n1024 2048 zero\n' "$WORK/disk.img" >"$WORK/tables/data.table"
out=$(udm apply -n "$tab") || fail "dry run after a change: $out"
expect_eq "dry run after a change" "would reload data (its table differs)
unchanged z
unchanged img
unchanged secret" "$out"
expect_eq "size before the reload" "1024 1024 zero" "$(tbl data | tail -1)"
out=$(udm apply "$tab") || fail "apply after a change: $out"
expect_eq "apply after a change" "reload data
unchanged z
unchanged img
unchanged secret" "$out"
expect_eq "data's new table" "0 1024 linear $WORK/disk.img 0
1024 2048 zero" "$(tbl data)"
out=$(udm apply "$tab") || fail "apply again: $out"
grep -q "^nothing to do" <<<"$out" || fail "third apply changed something: $out"
# The same table written otherwise (a length with a leading zero): loaded,
# found the same as the live one, cleared; not a change.
sed -i 's#^z .*#z "0 016 zero" readonly,uuid=Z-1#' "$tab"
out=$(udm apply "$tab") || fail "apply of z written otherwise: $out"
expect_eq "z written otherwise" "unchanged data
unchanged z (the same table, written differently)
unchanged img
unchanged secret
nothing to do: the 4 devices of $tab are as it says" "$out"
grep -q "Tables present: *LIVE$" <<<"$(udm info z)" || fail "z kept an inactive table: $(udm info z)"

# A device that exists read-write where the file says readonly: refused, nothing changed.
sed -i "s#^data .*#data $WORK/tables/data.table readonly#" "$tab"
sed -i 's#^z .*#z "0 32 zero" readonly,uuid=Z-1#' "$tab"
udm apply "$tab" >"$WORK/out" 2>"$WORK/err" && fail "apply took a readonly conflict"
grep -qF "$tab:2: device data exists read-write, the file says readonly: remove it first" \
  "$WORK/err" || fail "conflict: $(cat "$WORK/err")"
expect_eq "z untouched by a refused apply" "0 16 zero" "$(tbl z)"

# attach: attached with the creation, left on the second run, attached again
# after a detach (the device itself unchanged).
printf 'blk "0 2048 zero" attach\n' >"$WORK/blk.tab"
out=$(udm apply "$WORK/blk.tab") || fail "apply with attach: $out"
dev=$(sed -n 's/^attach blk: //p' <<<"$out")
expect_eq "apply with attach" "create blk
attach blk: $dev" "$out"
[ -b "$dev" ] || fail "attach blk printed $dev, not a block device"
expect_eq "attached blk, second run" "unchanged blk
nothing to do: the 1 device of $WORK/blk.tab is as it says" "$(udm apply "$WORK/blk.tab")"
udm detach blk || fail "detach blk"
out=$(udm apply "$WORK/blk.tab") || fail "apply after a detach: $out"
grep -qx "attach blk: /dev/.*" <<<"$out" || fail "apply after a detach: $out"
expect_eq "one line after a detach" 1 "$(wc -l <<<"$out")"
udm detach blk || fail "detach blk again"
echo ok

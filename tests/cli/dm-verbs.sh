# SPDX-License-Identifier: LGPL-2.1-or-later
# The smaller dmsetup verbs and options, each with its exact output: clear,
# wipe_table, mknodes, udevcookies, target-version, --target on ls, table
# and status, table/create --concise, device selection by -u UUID and
# -j MAJOR -m MINOR, and the udev options accepted by every verb.
. "$(dirname "$0")/lib.sh"
need nbdcopy
start_udmd
make_file "$WORK/a.img" 1024 a

udm create one --table "0 2048 linear $WORK/a.img 0" || fail "create one"
udm create two --uuid UDM-two --table "0 8 zero
8 16 linear /dev/mapper/one 0" || fail "create two"

# clear drops the inactive table only.
udm load one --table "0 8 zero" || fail "load one"
expect_eq "attr with an inactive table" "one:LI-w" "$(udm info -c -o name,attr --noheadings one)"
udm clear one || fail "clear one"
expect_eq "attr after clear" "one:L--w" "$(udm info -c -o name,attr --noheadings one)"
expect_eq "the live table stays" "0 2048 linear $WORK/a.img 0" "$(udm table one)"
expect_fail "device nosuch does not exist" udm clear nosuch

# --target on table, status and ls.
expect_eq "table --target zero" "two: 0 8 zero " "$(udm table --target zero)"
expect_eq "table --target linear two" "8 16 linear /dev/mapper/one 0" "$(udm table --target linear two)"
expect_eq "status --target linear" "one: 0 2048 linear 
two: 8 16 linear " "$(udm status --target linear)"
expect_eq "table --target with no match" "" "$(udm table --target striped)"
expect_eq "ls --target zero" "two	(253, 1)" "$(udm ls --target zero)"
expect_eq "ls --target linear" "one	(253, 0)
two	(253, 1)" "$(udm ls --target linear)"
expect_eq "ls --target --json" '[
  {"name": "two", "major": 253, "minor": 1}]' "$(udm ls --target zero --json)"

# --concise: every device on one line; create --concise makes them again.
expect_eq "table --concise" "one,,0,rw,0 2048 linear $WORK/a.img 0;two,UDM-two,1,rw,0 8 zero ,8 16 linear /dev/mapper/one 0" \
  "$(udm table --concise)"
expect_eq "table --concise two" "two,UDM-two,1,rw,0 8 zero ,8 16 linear /dev/mapper/one 0" "$(udm table --concise two)"
expect_eq "table --concise --target zero" "two,UDM-two,1,rw,0 8 zero " "$(udm table --concise --target zero)"
udm create --concise 'c\,1,,,ro,0 8 zero,8 8 error;c2,UDM-c2,,,0 4 linear udm:one 0' ||
  fail "create --concise"
expect_eq "quoting and flags" "c\\,1,,2,ro,0 8 zero ,8 8 error " "$(udm table --concise 'c,1')"
expect_eq "from standard input" "" "$(printf 'd,,,rw,0 8 zero\n' | udm create --concise)"
expect_eq "the devices made" "one	(253:0)
two	(253:1)
c,1	(253:2)
c2	(253:3)
d	(253:4)" "$(udm ls)"
expect_eq "read-only from ro" "c,1:L--r" "$(udm info -c -o name,attr --noheadings 'c,1')"
"$UDM" create --concise 'e,,,rw' 2>"$WORK/err"; [ $? = 2 ] || fail "four fields are a usage error"
expect_eq "four fields" "udm: create --concise: five comma-separated fields are required for each device (name,uuid,minor,flags,table): 'e' has 4" "$(cat "$WORK/err")"
expect_fail "udm chooses minor numbers itself (minor 7 asked for)" udm create --concise 'e,,7,rw,0 8 zero'
expect_fail "invalid flags 'rx'" udm create --concise 'e,,,rx,0 8 zero'
# A device whose table fails is not made, and the ones after it neither.
expect_fail "load f: line 1" udm create --concise 'f,,,,0 8 nosuchtarget;g,,,,0 8 zero'
udm info f >/dev/null 2>&1 && fail "f was made"
udm info g >/dev/null 2>&1 && fail "g was made"
udm remove 'c,1' c2 d || fail "remove the concise devices"

# wipe_table: an error table of the same size, made live.
udm create w --table "0 16 linear $WORK/a.img 0" || fail "create w"
udm wipe_table w || fail "wipe_table w"
expect_eq "wiped table" "0 16 error " "$(udm table w)"
udm create w2 --notable || fail "create w2"
expect_fail "wipe_table w2: the device has no live table" udm wipe_table w2
udm load w --table "0 16 zero" && udm resume w || fail "reload w"
udm wipe_table --noflush --nolockfs -f -j 253 -m "$(udm info -c -o minor --noheadings w)" ||
  fail "wipe_table with options"
expect_eq "wiped by number" "0 16 error " "$(udm table w)"
udm remove w w2 || fail "remove w w2"

# Selection by -u UUID and -j MAJOR -m MINOR on the verbs that name a device.
udm suspend -u UDM-two || fail "suspend -u"
expect_eq "suspended by uuid" "two:L-sw" "$(udm info -c -o name,attr --noheadings two)"
udm resume -j 253 -m 1 || fail "resume -j -m"
expect_eq "resumed by number" "two:L--w" "$(udm info -c -o name,attr --noheadings two)"
expect_eq "table -u" "0 8 zero 
8 16 linear /dev/mapper/one 0" "$(udm table -u UDM-two)"
udm load -u UDM-two --table "0 8 zero" && udm resume two || fail "load -u"
expect_eq "loaded by uuid" "0 8 zero " "$(udm table two)"
expect_fail "no device has number 253:9" udm info -j 253 -m 9
expect_fail "no device has number 7:1" udm info -j 7 -m 1
expect_fail "-j MAJOR and -m MINOR select a device together" udm info -m 1
expect_fail "not both" udm info -u UDM-two -j 253 -m 1
udm remove -u UDM-two || fail "remove -u"

# The udev options are accepted, and change nothing.
udm create --noudevsync u --table "0 8 zero" --verifyudev || fail "create --noudevsync --verifyudev"
udm remove u --noudevsync --noudevrules || fail "remove --noudevsync"
# Options before the verb, as dmsetup takes them.
udm --noudevsync create v --table "0 8 zero" || fail "--noudevsync create"
expect_eq "options before the verb" "v:L--w" "$(udm -C -o name,attr --noheadings info v)"
udm -f --verifyudev remove v || fail "-f remove"
udm info v >/dev/null 2>&1 && fail "v stays after -f remove"

# mknodes: the block device links follow the attachments.
if [ "$(id -u)" = 0 ] && [ -c /dev/fuse ] && [ -c /dev/loop-control ]; then
  dev=$(udm attach one) || fail "attach one"
  rm "$UDM_RUNTIME_DIR/block/one"
  ln -s /nowhere "$UDM_RUNTIME_DIR/block/stale"
  udm mknodes || fail "mknodes"
  expect_eq "mknodes remade the link" "$dev" "$(readlink "$UDM_RUNTIME_DIR/block/one")"
  [ -L "$UDM_RUNTIME_DIR/block/stale" ] && fail "mknodes left a stale link"
  ln -sf /nowhere "$UDM_RUNTIME_DIR/block/one"
  udm mknodes one || fail "mknodes one"
  expect_eq "mknodes NAME corrected the link" "$dev" "$(readlink "$UDM_RUNTIME_DIR/block/one")"
  udm detach one || fail "detach one"
fi
udm mknodes || fail "mknodes without attachments"

# udevcookies: udm makes none; target-version: as targets prints it.
expect_eq "udevcookies" "Cookie       Semid      Value      Last semop time           Last change time" \
  "$(udm udevcookies)"
expect_eq "udevcookies --json" "[]" "$(udm udevcookies --json)"
expect_eq "target-version" "$(udm targets | grep -E '^(linear|zero) ')" "$(udm target-version linear zero)"
expect_eq "target-version --json" "[
  $(udm targets --json | grep '"name": "zero"' | sed 's/^ *//; s/,$//; s/\]$//')]" \
  "$(udm target-version --json zero)"
expect_fail "target-version: unknown target type 'nosuch'" udm target-version nosuch
"$UDM" target-version 2>/dev/null; [ $? = 2 ] || fail "target-version needs a type"
# dmsetup verbs udm does not offer say so, and why.
"$UDM" measure one 2>"$WORK/err"; [ $? = 2 ] || fail "measure is a usage error"
expect_eq "measure" "udm: measure: not offered: udm's targets give no IMA measurements (the kernel's dm-ima)" \
  "$(cat "$WORK/err")"
echo ok

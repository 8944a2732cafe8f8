# SPDX-License-Identifier: LGPL-2.1-or-later
# udm deps and udm ls --tree print what dmsetup prints for the same stack:
# udm devices as (253, MINOR), files by their path; -o devname and
# blkdevname; the tree's drawing options; --json.
. "$(dirname "$0")/lib.sh"
export LANG=C LC_ALL=C # dmsetup draws the tree in ASCII outside UTF-8 locales
start_udmd
sparse "$WORK/a.img" 1M
sparse "$WORK/b.img" 1M

udm create low --table "0 2048 linear $WORK/a.img 0" || fail "create low"
udm create mid --uuid UDM-mid --table "0 1024 linear udm:low 0
1024 1024 linear $WORK/b.img 0" || fail "create mid"
udm create top --table "0 512 linear /dev/mapper/mid 0
512 512 linear /dev/mapper/low 0" || fail "create top"
udm create lone --notable || fail "create lone"

# Devices in the order the kernel lists a table's: the last opened first.
expect_eq "deps (all)" "low: 1 dependencies	: ($WORK/a.img)
mid: 2 dependencies	: ($WORK/b.img) (253, 0)
top: 2 dependencies	: (253, 0) (253, 1)
lone: 0 dependencies	:" "$(udm deps)"
expect_eq "deps top" "2 dependencies	: (253, 0) (253, 1)" "$(udm deps top)"
expect_eq "deps -o devname" "2 dependencies	: (low) (mid)" "$(udm deps -o devname top)"
expect_eq "deps -o devno" "2 dependencies	: (253, 0) (253, 1)" "$(udm deps -o devno top)"
expect_eq "deps of two devices" "top: 2 dependencies	: (253, 0) (253, 1)
low: 1 dependencies	: ($WORK/a.img)" "$(udm deps top low)"
expect_eq "deps -u UUID" "2 dependencies	: ($WORK/b.img) (253, 0)" "$(udm deps -u UDM-mid)"
expect_eq "deps -j 253 -m 2" "2 dependencies	: (253, 0) (253, 1)" "$(udm deps -j 253 -m 2)"
expect_eq "deps --json" '[
  {"name": "top", "deps": [{"path": "/dev/mapper/low", "device": "low", "major": 253, "minor": 0}, {"path": "/dev/mapper/mid", "device": "mid", "major": 253, "minor": 1}]}]' \
  "$(udm deps --json top)"
expect_fail "device nosuch does not exist" udm deps nosuch
"$UDM" deps -o size top 2>"$WORK/err"; [ $? = 2 ] || fail "deps -o size is a usage error"
expect_eq "deps -o size" "udm: deps: option -o size: expected devno, devname or blkdevname" \
  "$(cat "$WORK/err")"
# The inactive table's devices with --inactive.
udm load lone --table "0 8 linear udm:top 0" || fail "load lone"
expect_eq "deps --inactive" "1 dependencies	: (253, 2)" "$(udm deps --inactive lone)"
expect_eq "deps of a device whose table is inactive" "0 dependencies	:" "$(udm deps lone)"
udm clear lone || fail "clear lone"

expect_eq "ls --tree" "top (253:2)
 |-low (253:0)
 |  \`- ($WORK/a.img)
 \`-mid (253:1)
    |- ($WORK/b.img)
    \`-low (253:0)
       \`- ($WORK/a.img)
lone (253:3)" "$(udm ls --tree)"
expect_eq "ls --tree -o inverted" " ($WORK/a.img)
 \`-low (253:0)
    |-mid (253:1)
    |  \`-top (253:2)
    \`-top (253:2)
 ($WORK/b.img)
 \`-mid (253:1)
    \`-top (253:2)
lone (253:3)" "$(udm ls --tree -o inverted)"
expect_eq "ls --tree -o nodevice,active,rw,open,uuid" "top [ACTIVE, RW, 0, ]
 |-low [ACTIVE, RW, 2, ]
 \`-mid [ACTIVE, RW, 1, UDM-mid]
    \`-low [ACTIVE, RW, 2, ]
lone [ACTIVE, RW, 0, ]" "$(udm ls --tree -o nodevice,active,rw,open,uuid)"
expect_eq "ls --tree -o compact,notrunc" "top (253:2)-+-low (253:0)--- ($WORK/a.img)
            \`-mid (253:1)-+- ($WORK/b.img)
                          \`-low (253:0)--- ($WORK/a.img)
lone (253:3)" "$(udm ls --tree -o compact,notrunc)"
# table and status draw nothing more (as in dmsetup), but end compact drawing.
expect_eq "ls --tree -o compact,table" "$(udm ls --tree)" "$(udm ls --tree -o compact,table)"
expect_eq "ls --tree -o utf" "top (253:2)
 ├─low (253:0)
 │  └─ ($WORK/a.img)" "$(udm ls --tree -o utf | head -3)"
# Lines longer than the terminal (80 columns when not one) end in "...".
long=$(printf 'n%.0s' $(seq 90))
udm create "$long" --table "0 8 zero" || fail "create a long name"
expect_eq "a long line is cut" "$(printf 'n%.0s' $(seq 79))..." "$(udm ls --tree | grep '^nnn')"
expect_eq "-o notrunc" "$long (253:4)" "$(udm ls --tree -o notrunc | grep '^nnn')"
udm remove "$long" || fail "remove the long name"
"$UDM" ls --tree -o bogus 2>"$WORK/err"; [ $? = 2 ] || fail "a bad tree option is a usage error"
expect_eq "bad tree option" "udm: Tree option not recognised: bogus." "$(cat "$WORK/err")"
expect_eq "ls --tree --json" '[
  {"name": "low", "major": 253, "minor": 0, "top": false, "uses": [{"path": "'"$WORK"'/a.img", "device": null, "major": null, "minor": null}]},
  {"name": "mid", "major": 253, "minor": 1, "top": false, "uses": [{"path": "'"$WORK"'/b.img", "device": null, "major": null, "minor": null}, {"path": "udm:low", "device": "low", "major": 253, "minor": 0}]},
  {"name": "top", "major": 253, "minor": 2, "top": true, "uses": [{"path": "/dev/mapper/low", "device": "low", "major": 253, "minor": 0}, {"path": "/dev/mapper/mid", "device": "mid", "major": 253, "minor": 1}]},
  {"name": "lone", "major": 253, "minor": 3, "top": true, "uses": []}]' "$(udm ls --tree --json)"

# A block device below: its number, and its kernel name with -o devname.
if [ "$(id -u)" = 0 ] && [ -c /dev/fuse ] && [ -c /dev/loop-control ]; then
  loop=$(udm attach low) || fail "attach low"
  # A table naming the attached block device stacks on the udm device itself.
  udm create onlow --table "0 8 linear $loop 0" || fail "create onlow"
  expect_eq "deps on low's block device" "1 dependencies	: (253, 0)" "$(udm deps onlow)"
  udm remove onlow || fail "remove onlow"
  # Another block device: its number, and its kernel name with -o devname.
  plain=$(losetup -f --show "$WORK/b.img") || fail "losetup"
  udm create onloop --table "0 8 linear $plain 0" || { losetup -d "$plain"; fail "create onloop"; }
  no=$(stat -c '%t %T' "$plain" | { read -r M m; echo "$((0x$M)), $((0x$m))"; })
  expect_eq "deps on a block device" "1 dependencies	: ($no)" "$(udm deps onloop)"
  expect_eq "deps -o devname on a block device" "1 dependencies	: ($(basename "$plain"))" \
    "$(udm deps -o devname onloop)"
  expect_eq "tree leaf of a block device" " \`- (${no/, /:})" "$(udm ls --tree | sed -n '/^onloop/{n;p}')"
  udm deps -o blkdevname top | grep -qF "($(basename "$loop"))" ||
    fail "blkdevname does not name low's block device: $(udm deps -o blkdevname top)"
  expect_eq "ls -o blkdevname" "low	($(basename "$loop"))" "$(udm ls -o blkdevname | head -1)"
  udm remove onloop || fail "remove onloop"
  losetup -d "$plain"
  udm detach low || fail "detach low"
fi
expect_eq "ls -o devname" "low	(low)" "$(udm ls -o devname | head -1)"
echo ok

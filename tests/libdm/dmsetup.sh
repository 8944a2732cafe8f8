#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Debian's dmsetup, unmodified, on udm's libdevmapper: every verb of the
# issue, with dmsetup's own output formats.  Device numbers are the attached
# block devices' (DM_DEV_DIR/mapper/NAME links to them); a table naming an
# attached udm device stacks on it directly (udm's own table says udm:NAME).
. "$(dirname "$0")/lib.sh"
set -o pipefail
need dmsetup
need_blockdev
check_uses_libdm "$(command -v dmsetup)"
start_udmd
sparse "$WORK/f" 8M

out=$(dm version) || fail "version"
grep -qx 'Library version:   1.02.196 (udm [0-9.]*)' <<<"$out" || fail "version: $out"
grep -qx 'Driver version:    4.48.0' <<<"$out" || fail "version: $out"
expect_eq "targets" "$(udm targets)" "$(dm targets)"
expect_eq "ls without devices" "No devices found" "$(dm ls)"

dm create a --table "0 16384 linear $WORK/f 0" || fail "create a"
node=$DM_DEV_DIR/mapper/a
[ -b "$node" ] || fail "$node is not a block device"
na=$(devno "$node")
expect_eq "ls" "a	(${na})" "$(dm ls)"
expect_eq "table a" "0 16384 linear $WORK/f 0" "$(dm table a)"
expect_eq "status a" "0 16384 linear " "$(dm status a)"
# dmsetup measure asks status with the IMA flag (dm_task_ima_measurement)
expect_eq "measure a" "0 16384 linear target_name=linear,target_version=1.5.0,device_name=$WORK/f,start=0;" \
  "$(dm measure a)"
expect_eq "info a" "Name:              a
State:             ACTIVE
Read Ahead:        256
Tables present:    LIVE
Open count:        0
Event number:      0
Major, minor:      ${na/:/, }
Number of targets: 1" "$(dm info a)"

# Stacking by path and by number: udm stacks directly on a.
dm create b --table "0 100 linear $node 8" || fail "create b over $node"
dm create c --table "0 100 linear $na 16" || fail "create c over $na"
expect_eq "table b" "0 100 linear $na 8" "$(dm table b)"
expect_eq "udm's table of b" "0 100 linear udm:a 8" "$(udm table b)"
expect_eq "udm's table of c" "0 100 linear udm:a 16" "$(udm table c)"
expect_eq "deps b" "1 dependencies	: (${na/:/, })" "$(dm deps b)"
expect_eq "deps -o devname b" "1 dependencies	: (a)" "$(dm deps -o devname b)"
grep -qx "Open count:        2" < <(dm info a) || fail "a is not held by b and c: $(dm info a)"
nb=$(devno "$DM_DEV_DIR/mapper/b")
expect_eq "ls" "a	(${na})
b	(${nb})
c	($(devno "$DM_DEV_DIR/mapper/c"))" "$(dm ls)"
nc=$(devno "$DM_DEV_DIR/mapper/c")
expect_eq "ls --tree" "b (${nb})
 \`-a (${na})
c (${nc})
 \`-a (${na})" "$(LANG=C dm ls --tree)"
expect_eq "ls --tree -o inverted" "a (${na})
 |-b (${nb})
 \`-c (${nc})" "$(LANG=C dm ls --tree -o inverted)"
dm remove c || fail "remove c"
[ ! -e "$DM_DEV_DIR/mapper/c" ] || fail "the node of c stayed"

# The data goes through: what is written to b lands on a's file at 8 sectors.
head -c 4096 /dev/urandom >"$WORK/blk"
dd if="$WORK/blk" of="$DM_DEV_DIR/mapper/b" bs=4096 oflag=direct status=none || fail "write b"
cmp -n 4096 "$WORK/blk" <(dd if="$WORK/f" bs=512 skip=8 count=8 status=none) ||
  fail "the data written to b is not in a's file at sector 8"

# suspend, load, resume
for opt in "" --nolockfs --noflush "--nolockfs --noflush"; do
  dm suspend $opt b || fail "suspend $opt"
  grep -qx "State:             SUSPENDED" < <(dm info b) || fail "not suspended after suspend $opt"
  dm resume b || fail "resume after suspend $opt"
  grep -qx "State:             ACTIVE" < <(dm info b) || fail "not active after resume"
done
dm load b --table "0 200 zero" || fail "load"
grep -qx "Tables present:    LIVE & INACTIVE" < <(dm info b) || fail "info after load: $(dm info b)"
expect_eq "table --inactive" "0 200 zero " "$(dm table --inactive b)"
dm suspend b && dm resume b || fail "suspend and resume b"
expect_eq "table after resume" "0 200 zero " "$(dm table b)"
expect_eq "size of the block device after a bigger table" 102400 \
  "$(blockdev --getsize64 "$DM_DEV_DIR/mapper/b")"

# message and status of a target that answers them
dm create d --table "0 2048 dust $WORK/f 0 4096" || fail "create dust"
dm message d 0 addbadblock 5 || fail "message addbadblock"
expect_eq "message reply" "dust_query_block: block 5 found in badblocklist" \
  "$(dm message d 0 queryblock 5)"
expect_eq "status of dust" "0 2048 dust $WORK/f bypass verbose" "$(dm status d)"

# table --showkeys: dmsetup hides crypt keys itself unless asked
k=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
dm create k --table "0 64 crypt aes-xts-plain64 $k 0 $node 0" || fail "create crypt"
expect_eq "table of a crypt device" \
  "0 64 crypt aes-xts-plain64 0000000000000000000000000000000000000000000000000000000000000000 0 $na 0" \
  "$(dm table k)"
expect_eq "table --showkeys" "0 64 crypt aes-xts-plain64 $k 0 $na 0" "$(dm table --showkeys k)"
dm remove k || fail "remove k"

# rename: the node follows, udm's tables over it follow
dm rename b e || fail "rename"
[ -b "$DM_DEV_DIR/mapper/e" ] && [ ! -e "$DM_DEV_DIR/mapper/b" ] || fail "the node did not follow the rename"
expect_eq "ls after rename" "a	(${na})
e	(${nb})
d	($(devno "$DM_DEV_DIR/mapper/d"))" "$(dm ls)"
dm rename e --setuuid U-1 || fail "rename --setuuid"
grep -qx "UUID: U-1" < <(dm info e) || fail "uuid not set: $(dm info e)"

# wait: returns at once for an event number other than the device's
ev=$(dm info a | sed -n 's/^Event number: *//p')
dm wait a $((ev + 1)) || fail "wait"

# mknodes remakes a node that went missing
rm "$DM_DEV_DIR/mapper/a"
dm mknodes a || fail "mknodes"
expect_eq "node after mknodes" "$na" "$(devno "$DM_DEV_DIR/mapper/a")"

# info of a missing device, remove of one
out=$(dm info nosuch 2>&1)
expect_eq "info nosuch" "Device does not exist.
Command failed." "$out"
out=$(dm remove nosuch 2>&1) && fail "remove nosuch succeeded"
grep -q "device nosuch does not exist" <<<"$out" || fail "remove nosuch: $out"

# field names as libdevmapper matches them: no case, no '_'
expect_eq "info -c with field names spelt otherwise" "a:$na:256" \
  "$(dm info -c --noheadings --separator : -o NAME,devno,readahead a 2>&1)"

# what the library does not offer fails, naming the call (dmsetup stats:
# its --units first, then the stats handle)
out=$(dm stats list 2>&1) && fail "stats list succeeded: $out"
grep -q "^dm_stats_create: not supported by udm.s libdevmapper" <<<"$out" || fail "stats list: $out"
out=$(dm info -c -S name=a 2>&1) && fail "info -S succeeded: $out"
grep -q "^dm_report_init_with_selection: selection (-S) is not supported" <<<"$out" || fail "info -S: $out"

dm remove d e a || fail "remove"
expect_eq "ls at the end" "No devices found" "$(dm ls)"
[ -z "$(ls "$DM_DEV_DIR/mapper")" ] || fail "nodes left: $(ls "$DM_DEV_DIR/mapper")"
[ -z "$(loops_under_work)" ] || fail "loop devices left: $(loops_under_work)"
echo ok

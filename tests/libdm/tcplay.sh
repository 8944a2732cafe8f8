#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Debian's tcplay, unmodified, on udm's libdevmapper: -m maps a TrueCrypt
# volume (a cascade of three crypt devices, each stacked on the next) and
# -u unmaps it, on a loop device over a file and on an attached udm device.
# The plaintext is what "udm open --type tcrypt" shows of the same volume
# (the VM comparison with the kernel's mapping of this volume is
# tests/kernel/scenarios/crypt-tcplay-open.scn, for udm open), and a block
# written through tcplay's mapping reads back through udm open's.
. "$(dirname "$0")/lib.sh"
set -o pipefail
need tcplay
need losetup
need_blockdev
check_uses_libdm "$(command -v tcplay)"
start_udmd

# The volume tcplay made once (crypt-tcplay-open.scn): SHA-512,
# AES-Twofish-Serpent, passphrase kpass.
hdr=$(sed -n '/^disk tc /{n;s/^exec --stdin \([^ ]*\) dd .*/\1/p;q}' \
  "$(dirname "$0")/../kernel/scenarios/crypt-tcplay-open.scn")
[ ${#hdr} = 2048 ] || fail "no TrueCrypt header in crypt-tcplay-open.scn"
head -c 4M /dev/urandom >"$WORK/tc.img"
printf "$hdr" | dd of="$WORK/tc.img" bs=512 count=1 conv=notrunc status=none
sum() { timeout 60 dd if="$1" bs=1M iflag=direct status=none | sha256sum | cut -d' ' -f1; }

for on in loop attached; do
  if [ $on = loop ]; then
    src=$(losetup -f --show "$WORK/tc.img") || fail "losetup"
  else
    udm create src --table "0 8192 linear $WORK/tc.img 0" || fail "create src"
    src=$(udm attach src) || fail "attach src"
  fi
  out=$(printf 'kpass\n' | with_libdm tcplay -m tcv -d "$src" 2>&1) || fail "tcplay -m on the $on: $out"
  node=$DM_DEV_DIR/mapper/tcv
  [ -b "$node" ] || fail "no block device at $node"
  expect_eq "devices of the cascade" "$(echo $([ $on = attached ] && echo src) tcv tcv.0 tcv.1)" \
    "$(echo $(dm ls | cut -f1 | sort))"
  # The cascade stacks within udm: each crypt device on the next, the last on the source.
  grep -qE " (udm:|/dev/mapper/)tcv.0 " <<<"$(udm table tcv)" || fail "tcv is not stacked on tcv.0: $(udm table tcv)"
  [ $on = attached ] && { grep -q " udm:src " <<<"$(udm table --showkeys tcv.1)" ||
    fail "tcv.1 is not stacked on src: $(udm table tcv.1)"; }
  head -c 65536 /dev/urandom >"$WORK/blk"
  dd if="$WORK/blk" of="$node" bs=65536 seek=5 oflag=direct status=none || fail "write"
  s1=$(sum "$node")
  with_libdm tcplay -u tcv || fail "tcplay -u on the $on"
  [ ! -e "$node" ] || fail "$node stayed after tcplay -u"
  if [ $on = loop ]; then
    losetup -d "$src"
  else
    udm detach src && udm remove src || fail "remove src"
  fi
  expect_eq "devices after tcplay -u" "No devices found" "$(dm ls)"

  udm open --type tcrypt "$WORK/tc.img" utc <<<kpass || fail "udm open"
  dev=$(udm attach utc) || fail "attach utc"
  expect_eq "plaintext through tcplay and udm open ($on)" "$s1" "$(sum "$dev")"
  cmp <(dd if="$dev" bs=65536 skip=5 count=1 iflag=direct status=none) "$WORK/blk" ||
    fail "the block written through tcplay's mapping differs through udm open"
  udm detach utc && udm close utc || fail "close utc"
done
[ -z "$(loops_under_work)" ] || fail "loop devices left: $(loops_under_work)"
echo ok

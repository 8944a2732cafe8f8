#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Debian's cryptsetup, unmodified, on udm's libdevmapper: open --type plain,
# luks1, luks2 and tcrypt, and close, on a file (cryptsetup makes its own
# loop device) and on an attached udm device (the crypt table stacks on it
# directly).  The plaintext is what "udm open" shows of the same volume,
# and what is written through one is read through the other.
. "$(dirname "$0")/lib.sh"
set -o pipefail
need cryptsetup
need_blockdev
check_uses_libdm "$(command -v cryptsetup)"
start_udmd
cs() { with_libdm cryptsetup "$@"; }

# The volumes: plain, LUKS1, LUKS2 (fast PBKDF2), and two TrueCrypt
# volumes whose headers tcplay made once, passphrase kpass: "tcrypt",
# SHA-512 and the AES-Twofish-Serpent cascade
# (tests/kernel/scenarios/crypt-tcplay-open.scn), and "tcaes", SHA-512 and
# AES alone (tcrypt-aes.hdr.b64, from "tcplay -c -a SHA512 -b AES-256-XTS").
# cryptsetup decrypts a TrueCrypt header with its crypto backend (Debian's
# is OpenSSL) where that has the cipher, else with the kernel's (AF_ALG);
# so tcaes opens without AF_ALG, once --hash and --cipher keep cryptsetup
# from trying the other ciphers first (it gives up at the first one that
# needs the kernel), and the cascade needs AF_ALG for Twofish and Serpent.
printf 'correct horse' >"$WORK/pass"
head -c 64 /dev/urandom >"$WORK/key"
for v in plain luks1 luks2 tcrypt tcaes; do sparse "$WORK/$v.img" 20M; done
for v in luks1 luks2; do
  timeout 60 cryptsetup luksFormat --batch-mode --type $v --pbkdf pbkdf2 \
    --pbkdf-force-iterations 1000 --key-file "$WORK/pass" "$WORK/$v.img" || fail "luksFormat $v"
done
hdr=$(sed -n '/^disk tc /{n;s/^exec --stdin \([^ ]*\) dd .*/\1/p;q}' \
  "$(dirname "$0")/../kernel/scenarios/crypt-tcplay-open.scn")
[ ${#hdr} = 2048 ] || fail "no TrueCrypt header in crypt-tcplay-open.scn"
printf "$hdr" | dd of="$WORK/tcrypt.img" bs=512 count=1 conv=notrunc status=none
base64 -d "$(dirname "$0")/tcrypt-aes.hdr.b64" | dd of="$WORK/tcaes.img" conv=notrunc status=none ||
  fail "tcrypt-aes.hdr.b64"

# TYPE SOURCE NAME: cryptsetup open with TYPE's options.
cs_open() {
  case $1 in
  plain) cs open --type plain --cipher aes-xts-plain64 --key-size 512 --key-file "$WORK/key" "$2" "$3" ;;
  luks1) cs open --type luks1 --key-file "$WORK/pass" "$2" "$3" ;;
  # LUKS2 keys go to the kernel keyring unless told otherwise, and the
  # keyring's logon keys cannot be read back by udm (docs/libdevmapper.md).
  luks2) cs open --type luks2 --disable-keyring --key-file "$WORK/pass" "$2" "$3" ;;
  tcrypt) printf 'kpass\n' | cs open --type tcrypt "$2" "$3" ;;
  tcaes) printf 'kpass\n' | cs open --type tcrypt --hash sha512 --cipher aes "$2" "$3" ;;
  esac
}
# TYPE SOURCE NAME: udm open, the same volume.
udm_open() {
  case $1 in
  plain) udm open --type plain -c aes-xts-plain64 -s 512 --key-file "$WORK/key" "$2" "$3" ;;
  luks1 | luks2) udm open --type "$1" --key-file "$WORK/pass" "$2" "$3" ;;
  tcrypt | tcaes) udm open --type tcrypt "$2" "$3" <<<kpass ;;
  esac
}
sum() { timeout 60 dd if="$1" bs=1M iflag=direct status=none | sha256sum | cut -d' ' -f1; }

for v in plain luks1 luks2 tcrypt tcaes; do
  for on in file attached; do
    src=$WORK/$v.img
    if [ $on = attached ]; then
      udm create "src$v" --table "0 40960 linear $WORK/$v.img 0" || fail "create src$v"
      src=$(udm attach "src$v") || fail "attach src$v"
    fi
    if ! out=$(cs_open $v "$src" "c$v" 2>&1); then
      # The cascade's header needs the kernel's crypto API (AF_ALG), which
      # some kernels lack: nothing of udm is involved yet.
      if [ $v = tcrypt ] && grep -q "Required kernel crypto interface not available" <<<"$out"; then
        echo "NOTE: no AF_ALG on this kernel: cryptsetup cannot decrypt the Twofish and Serpent of the cascade's TrueCrypt header; the cascade is not tested (the AES volume is)"
        [ $on = attached ] && { udm detach "src$v" && udm remove "src$v" || fail "remove src$v"; }
        continue
      fi
      fail "cryptsetup open --type $v on the $on: $out"
    fi
    node=$DM_DEV_DIR/mapper/c$v
    [ -b "$node" ] || fail "$v on the $on: no block device at $node"
    if [ $on = attached ]; then
      grep -q " udm:src$v " <<<"$(udm table --showkeys "c$v")" ||
        fail "$v: the crypt table does not stack on src$v: $(udm table "c$v")"
    fi
    grep -q "is active" <<<"$(cs status "c$v")" || fail "cryptsetup status c$v: $(cs status "c$v")"
    # Write through cryptsetup's mapping, read through udm open's.
    head -c 65536 /dev/urandom >"$WORK/blk"
    dd if="$WORK/blk" of="$node" bs=65536 seek=3 oflag=direct status=none || fail "write $v"
    s1=$(sum "$node")
    cs close "c$v" || fail "cryptsetup close c$v ($on)"
    [ ! -e "$node" ] || fail "$node stayed after close"
    if [ $on = attached ]; then
      udm detach "src$v" && udm remove "src$v" || fail "remove src$v"
    fi
    udm_open $v "$WORK/$v.img" "u$v" || fail "udm open $v"
    dev=$(udm attach "u$v") || fail "attach u$v"
    expect_eq "$v on the $on: plaintext through cryptsetup and udm open" "$s1" "$(sum "$dev")"
    cmp <(dd if="$dev" bs=65536 skip=3 count=1 iflag=direct status=none) "$WORK/blk" ||
      fail "$v on the $on: the block written through cryptsetup differs through udm open"
    udm detach "u$v" && udm close "u$v" || fail "close u$v"
  done
done
expect_eq "devices at the end" "No devices found" "$(dm ls)"
[ -z "$(loops_under_work)" ] || fail "loop devices left: $(loops_under_work)"
echo ok

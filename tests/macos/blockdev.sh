#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# macOS only (.github/workflows/macos.yml; cannot run on Linux): block
# devices through hdiutil, first over a plain file, then over a udm device's
# FUSE file (docs/macos.md).
#   1. hdiutil attach -nomount of a raw image (CRawDiskImage class): bytes
#      written through /dev/diskN are in the file after detach, and read
#      back through a new attachment.
#   2. The same through udm: "udm create --attach" of a linear device; the
#      bytes written through /dev/diskN reach the backing file at the
#      table's offset once detached (writes through the disk-image layer
#      over FUSE files have been reported lost in some setups), and read back
#      after "udm attach" again.
#   3. HFS+ on that device: newfs_hfs, mount, files written, unmount,
#      detach, attach again, fsck_hfs, mount, the same files.
# Needs root (hdiutil's devices, mount), a FUSE with the libfuse3 API
# (FUSE-T or macFUSE) and udm built: UDM and UDMD name the programs
# (default: build/cli/udm, build/daemon/udmd).
#   sudo tests/macos/blockdev.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
UDM=${UDM:-$here/../../build/cli/udm}
UDMD=${UDMD:-$here/../../build/daemon/udmd}

if [ "$(uname -s)" != Darwin ]; then
  echo "blockdev.sh: macOS only (hdiutil)"
  exit 77
fi
[ "$(id -u)" -eq 0 ] || { echo "blockdev.sh: needs root (sudo)"; exit 1; }
for p in "$UDM" "$UDMD"; do
  [ -x "$p" ] || { echo "blockdev.sh: $p is not built"; exit 1; }
done

WORK=$(mktemp -d /tmp/udm-blockdev.XXXXXX)
export UDM_RUNTIME_DIR=$WORK/rt
DAEMON_PID=
ATTACHED=()   # /dev/diskN attached by part 1, to detach on failure
MOUNTED=()

cleanup() {
  local status=$? m d
  for m in "${MOUNTED[@]+"${MOUNTED[@]}"}"; do diskutil unmount force "$m" >/dev/null 2>&1 || true; done
  for d in "${ATTACHED[@]+"${ATTACHED[@]}"}"; do hdiutil detach -force "$d" >/dev/null 2>&1 || true; done
  if [ -n "$DAEMON_PID" ]; then
    "$UDM" remove -f data >/dev/null 2>&1 || true
    kill "$DAEMON_PID" 2>/dev/null || true
    wait "$DAEMON_PID" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ] && [ -f "$WORK/udmd.log" ]; then
    echo "--- udmd.log"
    tail -n 50 "$WORK/udmd.log"
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

step() { echo "--- $*"; }

# attach_raw FILE: attach FILE as a raw disk image, unmounted; prints /dev/diskN.
attach_raw() {
  local out
  out=$(hdiutil attach -nomount -imagekey diskimage-class=CRawDiskImage "$1") || return 1
  # awk reads all of it: no early exit, no SIGPIPE under pipefail.
  awk '$1 ~ /^\/dev\/disk[0-9]+$/ && !found { print $1; found = 1 }' <<<"$out"
}

# pattern FILE BYTES SEED: BYTES of deterministic, seed-dependent data.
pattern() {
  perl -e 'my ($n, $s) = @ARGV; my $b = ""; my $i = 0;
           while (length($b) < $n) { $b .= pack("N", ($i++ * 2654435761 + $s) & 0xffffffff) }
           print substr($b, 0, $n)' "$2" "$3" >"$1"
}

# same_bytes WHAT A B: fail unless files A and B are equal.
same_bytes() {
  cmp -s "$2" "$3" || fail "$1: the bytes differ ($(cmp "$2" "$3" 2>&1 | head -n 1))"
}

# ---- 1. hdiutil's raw image class over a plain file ----
step "raw image over a plain file"
mkfile -n 64m "$WORK/plain.img"
pattern "$WORK/p1" $((1 << 20)) 1
dev=$(attach_raw "$WORK/plain.img") || fail "hdiutil attach of $WORK/plain.img"
[ -n "$dev" ] || fail "hdiutil attach of a raw image printed no /dev/diskN"
ATTACHED+=("$dev")
[ -b "$dev" ] || fail "$dev is not a block device"
dd if="$WORK/p1" of="$dev" bs=1m seek=3 conv=notrunc 2>/dev/null || fail "dd to $dev"
sync
hdiutil detach "$dev" >/dev/null || fail "hdiutil detach $dev"
ATTACHED=()
dd if="$WORK/plain.img" of="$WORK/back" bs=1m skip=3 count=1 2>/dev/null
same_bytes "plain file after detach" "$WORK/p1" "$WORK/back"
dev=$(attach_raw "$WORK/plain.img") || fail "hdiutil attach again"
[ -n "$dev" ] || fail "hdiutil attach again printed no /dev/diskN"
ATTACHED+=("$dev")
dd if="$dev" of="$WORK/back" bs=1m skip=3 count=1 2>/dev/null || fail "dd from $dev"
same_bytes "read back through a new attachment" "$WORK/p1" "$WORK/back"
hdiutil detach "$dev" >/dev/null || fail "hdiutil detach $dev"
ATTACHED=()

# ---- 2. a udm device: FUSE file, hdiutil, /dev/diskN ----
step "udm create --attach"
"$UDMD" -f -v 2>>"$WORK/udmd.log" &
DAEMON_PID=$!
for _ in $(seq 100); do
  [ -S "$UDM_RUNTIME_DIR/control.sock" ] && break
  kill -0 "$DAEMON_PID" 2>/dev/null || fail "udmd died: $(cat "$WORK/udmd.log")"
  sleep 0.1
done
[ -S "$UDM_RUNTIME_DIR/control.sock" ] || fail "udmd made no control socket within 10 s"
mkfile -n 80m "$WORK/backing.img"
# 64 MiB from 8 MiB into the backing file.
dev=$("$UDM" create data --attach --table "0 $((64 * 2048)) linear $WORK/backing.img $((8 * 2048))") ||
  fail "udm create --attach"
case "$dev" in /dev/disk[0-9]*) ;; *) fail "udm create --attach printed '$dev'" ;; esac
[ -b "$dev" ] || fail "$dev is not a block device"
info=$("$UDM" info data) || fail "udm info data"
grep -q "^Block device: *$dev\$" <<<"$info" || fail "udm info lacks $dev: $info"
pattern "$WORK/p2" $((2 << 20)) 2
dd if="$WORK/p2" of="$dev" bs=1m seek=5 conv=notrunc 2>/dev/null || fail "dd to $dev"
sync
"$UDM" detach data || fail "udm detach"
dd if="$WORK/backing.img" of="$WORK/back" bs=1m skip=$((8 + 5)) count=2 2>/dev/null
same_bytes "backing file after detach (the write went through FUSE)" "$WORK/p2" "$WORK/back"
dev=$("$UDM" attach data) || fail "udm attach"
dd if="$dev" of="$WORK/back" bs=1m skip=5 count=2 2>/dev/null || fail "dd from $dev"
same_bytes "read back through a new attachment" "$WORK/p2" "$WORK/back"

# ---- 3. HFS+ on the udm device ----
step "HFS+ on $dev"
newfs_hfs -v udmtest "$dev" >/dev/null || fail "newfs_hfs $dev"
# DiskArbitration may mount a new file system by itself: take it back.
diskutil unmount "$dev" >/dev/null 2>&1 || true
mkdir "$WORK/mnt"
diskutil mount -mountPoint "$WORK/mnt" "$dev" >/dev/null || fail "mount HFS+ from $dev"
MOUNTED+=("$WORK/mnt")
mkdir "$WORK/mnt/dir"
for i in 1 2 3; do pattern "$WORK/mnt/dir/f$i" $((i * 300000)) $((10 + i)); done
(cd "$WORK/mnt" && find dir -type f -exec shasum {} + | sort) >"$WORK/sums"
diskutil unmount "$WORK/mnt" >/dev/null || fail "unmount HFS+"
MOUNTED=()
"$UDM" detach data || fail "udm detach after HFS+"
dev=$("$UDM" attach data) || fail "udm attach after HFS+"
diskutil unmount "$dev" >/dev/null 2>&1 || true
fsck_hfs -fn "$dev" >"$WORK/fsck" 2>&1 || fail "fsck_hfs: $(cat "$WORK/fsck")"
diskutil mount -mountPoint "$WORK/mnt" "$dev" >/dev/null || fail "mount HFS+ again"
MOUNTED+=("$WORK/mnt")
(cd "$WORK/mnt" && find dir -type f -exec shasum {} + | sort) >"$WORK/sums2"
same_bytes "HFS+ files after detach and attach" "$WORK/sums" "$WORK/sums2"
diskutil unmount "$WORK/mnt" >/dev/null || fail "unmount HFS+"
MOUNTED=()
"$UDM" detach data || fail "udm detach"
"$UDM" remove data || fail "udm remove"
echo "ok: hdiutil raw image, udm device through /dev/diskN, HFS+"
